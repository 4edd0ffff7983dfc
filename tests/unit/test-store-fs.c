/* test-store-fs.c - the mirrored store end to end, without FUSE, on image
 * files: store_format two images, store_open, create and change names,
 * attributes and xattrs through the fs_* operations, write and read with
 * data_write/data_read, store_close, open again and find everything.
 * Also: a "power cut" (the images copied while the store is open, after
 * store_sync) keeps every synced change, also across a wrapped log ring
 * and with a read-only mount; blocks an uncommitted overwrite let go of
 * are not reused; rename flags and refusals; an unlinked open file keeps
 * its data until its last release; partial, scattered and refused
 * writes; ENOSPC and the space coming back; truncate zeroes the tail of
 * the last block; fallocate; SEEK_DATA/SEEK_HOLE; a corrupted copy of a
 * block is detected by its checksum, read from the other copy, counted
 * and rewritten; a device failing writes leaves the file system degraded
 * but working, and the file's error record names the failed copy.
 *
 * Every test body runs in a child process (g_test_trap_subprocess) under a
 * time limit while the parent owns the temporary folder: a failed
 * assertion or a hang fails only its own test, and the images always go. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "extmap.h"
#include "data.h"
#include "fsops.h"
#include "inspect.h"
#include "scrub.h"
#include "status.h"
#include "journal.h"
#include "mkfs.h"
#include "store.h"
#include "testutil.h"
#include "dmio.h"

#define MiB (1ull << 20)
#define TiB (1ull << 40)
#define BLK DMIOFS_BLOCK
#define IMG_BYTES (64 * MiB)
#define WAIT_US (20 * G_USEC_PER_SEC)

/* ---- running a body in a child, the folder in the parent ---------------- */


/* ---- images and mounting ---------------------------------------------------- */

static const struct caller WHO = { .uid = 1000, .gid = 1000, .umask = 022 };
static const struct store_options OPTS = { .commit_interval_ms = 60000 }; /* commits only when asked */

struct fs {
	uint32_t n;
	char *paths[3];
	struct store *st;
	struct store_options opt; /* for the next mount */
};

/* A sparse image file of bytes. */
static char *image_new(const char *dir, const char *name, uint64_t bytes)
{
	char *path = g_build_filename(dir, name, NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(ftruncate(fd, (off_t)bytes), ==, 0);
	close(fd);
	return path;
}

static struct store *mount_opts(char *const *paths, uint32_t n, const struct store_options *opts)
{
	GString *why = g_string_new(NULL);
	struct store *st = NULL;
	int err = store_open((const char *const *)paths, n, opts, &st, why);

	if (err)
		g_printerr("# store_open: %s (%s)\n", g_strerror(-err), why->str);
	g_assert_cmpint(err, ==, 0);
	g_assert_nonnull(st);
	g_string_free(why, TRUE);
	return st;
}

static struct store *mount_paths(char *const *paths, uint32_t n)
{
	return mount_opts(paths, n, &OPTS);
}

/* n fresh 64 MiB images, formatted with `copies` copies, and mounted. */
static void fs_new_n(struct fs *f, const char *dir, uint32_t n, uint32_t copies)
{
	struct format_options fo = { .copies = copies, .label = "unit", .uid = 1000, .gid = 1000 };
	struct format_report rep;
	GString *why = g_string_new(NULL);
	int err;

	memset(f, 0, sizeof(*f));
	f->n = n;
	f->opt = OPTS;
	for (uint32_t i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "d%u.img", i);
		f->paths[i] = image_new(dir, name, IMG_BYTES);
	}
	err = store_format((const char *const *)f->paths, n, &fo, &rep, why);
	if (err)
		g_printerr("# store_format: %s (%s)\n", g_strerror(-err), why->str);
	g_assert_cmpint(err, ==, 0);
	g_assert_cmpuint(rep.copies, ==, copies);
	g_assert_cmpuint(rep.ndevices, ==, n);
	g_assert_cmpuint(rep.layout.chunk_bytes, ==, MiB);
	/* (64 - 9 - 1) chunk slots of 1 MiB per device, each chunk stored `copies` times */
	g_assert_cmpuint(rep.capacity, ==, 54 * n / copies * MiB);
	g_string_free(why, TRUE);
	f->st = mount_opts(f->paths, n, &f->opt);
}

/* Two fresh images, two copies. */
static void fs_new(struct fs *f, const char *dir)
{
	fs_new_n(f, dir, 2, 2);
}

static void fs_close(struct fs *f)
{
	g_assert_cmpint(store_close(f->st), ==, 0);
	f->st = NULL;
}

static void fs_reopen(struct fs *f)
{
	fs_close(f);
	f->st = mount_opts(f->paths, f->n, &f->opt);
}

static void fs_free(struct fs *f)
{
	if (f->st)
		fs_close(f);
	for (uint32_t i = 0; i < f->n; i++)
		g_free(f->paths[i]);
}

/* A copy of a file, as a power cut would leave it. */
static char *copy_image(const char *src, const char *dir, const char *name)
{
	char *dst = g_build_filename(dir, name, NULL);
	int in = open(src, O_RDONLY | O_CLOEXEC), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char *buf = g_malloc(MiB);
	ssize_t n;

	g_assert_cmpint(in, >=, 0);
	g_assert_cmpint(out, >=, 0);
	while ((n = read(in, buf, MiB)) > 0)
		g_assert_cmpint(write(out, buf, (size_t)n), ==, n);
	g_assert_cmpint(n, ==, 0);
	close(in);
	close(out);
	g_free(buf);
	return dst;
}

static char *file_digest(const char *path)
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	guchar *buf = g_malloc(MiB);
	ssize_t n;
	char *out;

	g_assert_cmpint(fd, >=, 0);
	while ((n = read(fd, buf, MiB)) > 0)
		g_checksum_update(c, buf, n);
	g_assert_cmpint(n, ==, 0);
	close(fd);
	out = g_strdup(g_checksum_get_string(c));
	g_checksum_free(c);
	g_free(buf);
	return out;
}

/* ---- names ---------------------------------------------------------------------- */

static uint64_t do_mknod(struct store *st, uint64_t parent, const char *name, mode_t mode)
{
	struct stat s;

	g_assert_cmpint(fs_mknod(st, parent, name, mode, 0, &WHO, &s), ==, 0);
	g_assert_cmphex(s.st_mode, ==, mode);
	g_assert_cmpuint(s.st_nlink, ==, 1);
	return s.st_ino;
}

static uint64_t do_mkdir(struct store *st, uint64_t parent, const char *name)
{
	struct stat s;

	g_assert_cmpint(fs_mkdir(st, parent, name, 0755, &WHO, &s), ==, 0);
	g_assert_true(S_ISDIR(s.st_mode));
	g_assert_cmpuint(s.st_nlink, ==, 2);
	return s.st_ino;
}

/* The inode a name leads to, or 0; the lookup reference is given back. */
static uint64_t lookup(struct store *st, uint64_t parent, const char *name)
{
	struct stat s;
	int err = fs_lookup(st, parent, name, &s);

	if (err) {
		g_assert_cmpint(err, ==, -ENOENT);
		return 0;
	}
	fs_forget(st, s.st_ino, 1);
	return s.st_ino;
}

static struct stat getattr(struct store *st, uint64_t ino)
{
	struct stat s;

	g_assert_cmpint(fs_getattr(st, ino, &s), ==, 0);
	return s;
}

/* ---- data, waiting for the callbacks ----------------------------------------------- */

struct waiter {
	GMutex lock;
	GCond cond;
	bool done;
	ssize_t result;
	GByteArray *data;
};

static void waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->data = g_byte_array_new();
}

static void waiter_clear(struct waiter *w)
{
	g_byte_array_free(w->data, TRUE);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
}

static void waiter_wait(struct waiter *w)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_US;

	g_mutex_lock(&w->lock);
	while (!w->done)
		if (!g_cond_wait_until(&w->cond, &w->lock, deadline))
			break;
	g_assert_true(w->done);
	g_mutex_unlock(&w->lock);
}

static void write_done(void *ctx, ssize_t result)
{
	struct waiter *w = ctx;

	g_mutex_lock(&w->lock);
	g_assert_false(w->done); /* exactly once */
	w->result = result;
	w->done = true;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static void read_done(void *ctx, int err, const char *buf, size_t len)
{
	struct waiter *w = ctx;

	g_mutex_lock(&w->lock);
	g_assert_false(w->done);
	w->result = err ? err : (ssize_t)len;
	if (!err)
		g_byte_array_append(w->data, (const guint8 *)buf, (guint)len);
	w->done = true;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static ssize_t do_write(struct store *st, uint64_t ino, uint64_t off, const void *buf, size_t len)
{
	struct waiter w;
	struct iovec iov = { (void *)buf, len };
	ssize_t r;

	waiter_init(&w);
	data_write(st, ino, off, &iov, 1, write_done, &w);
	waiter_wait(&w);
	r = w.result;
	waiter_clear(&w);
	return r;
}

static void write_ok(struct store *st, uint64_t ino, uint64_t off, const void *buf, size_t len)
{
	g_assert_cmpint(do_write(st, ino, off, buf, len), ==, (ssize_t)len);
}

static ssize_t do_writev(struct store *st, uint64_t ino, uint64_t off, const struct iovec *iov, int n)
{
	struct waiter w;
	ssize_t r;

	waiter_init(&w);
	data_write(st, ino, off, iov, n, write_done, &w);
	waiter_wait(&w);
	r = w.result;
	waiter_clear(&w);
	return r;
}

/* Read into out (size bytes available); the count read or -errno. */
static ssize_t do_read(struct store *st, uint64_t ino, uint64_t off, size_t size, void *out)
{
	struct waiter w;
	ssize_t r;

	waiter_init(&w);
	data_read(st, ino, off, size, read_done, &w);
	waiter_wait(&w);
	r = w.result;
	if (r >= 0) {
		g_assert_cmpuint(w.data->len, ==, (size_t)r);
		g_assert_cmpuint((size_t)r, <=, size);
		if (r)
			memcpy(out, w.data->data, (size_t)r);
	}
	waiter_clear(&w);
	return r;
}

/* The file holds exactly want[0, len) from off. */
static void assert_health(struct store *st, const char *want)
{
	struct fs_status s;

	store_status(st, &s);
	g_assert_cmpstr(status_health(&s), ==, want);
	fs_status_clear(&s);
}

static void assert_reads(struct store *st, uint64_t ino, uint64_t off, const void *want, size_t len)
{
	uint8_t *got = g_malloc(len + 1);
	ssize_t r = do_read(st, ino, off, len, got);

	g_assert_cmpint(r, ==, (ssize_t)len);
	g_assert_cmpmem(got, len, want, len);
	g_free(got);
}

static void assert_reads_zero(struct store *st, uint64_t ino, uint64_t off, size_t len)
{
	uint8_t *zero = g_malloc0(len);

	assert_reads(st, ino, off, zero, len);
	g_free(zero);
}

static uint8_t *pattern(size_t len, uint32_t seed)
{
	uint8_t *p = g_malloc(len);

	tu_pattern(p, len, seed);
	return p;
}

/* ---- the whole life of a small tree ---------------------------------------------------- */

struct tree {
	uint64_t dir, sub, file, big, sym, fifo;
};

#define BIG_BYTES (3 * MiB + 5000) /* more than one chunk, more than one I/O buffer */

static void build_tree(struct store *st, struct tree *t)
{
	uint8_t *head = pattern(300 * 1024, 1), *far = pattern(5000, 2), *big = pattern(BIG_BYTES, 3);
	struct stat s, attr;

	t->dir = do_mkdir(st, ROOT_INO, "dir");
	t->sub = do_mkdir(st, t->dir, "sub");
	t->file = do_mknod(st, t->dir, "file", S_IFREG | 0644);
	write_ok(st, t->file, 0, head, 300 * 1024);
	write_ok(st, t->file, MiB + 123, far, 5000); /* a hole in between */
	t->big = do_mknod(st, ROOT_INO, "big", S_IFREG | 0600);
	write_ok(st, t->big, 0, big, BIG_BYTES);
	g_assert_cmpint(fs_symlink(st, ROOT_INO, "sym", "dir/file", &WHO, &s), ==, 0);
	t->sym = s.st_ino;
	g_assert_true(S_ISLNK(s.st_mode));
	g_assert_cmpuint(s.st_size, ==, 8);
	t->fifo = do_mknod(st, t->sub, "fifo", S_IFIFO | 0640);
	g_assert_cmpint(fs_link(st, t->file, ROOT_INO, "hard", &s), ==, 0);
	g_assert_cmpuint(s.st_nlink, ==, 2);
	g_assert_cmpint(fs_setxattr(st, t->file, "user.colour", "blue", 4, 0), ==, 0);
	g_assert_cmpint(fs_setxattr(st, t->dir, "user.empty", "", 0, 0), ==, 0);
	memset(&attr, 0, sizeof(attr));
	attr.st_mode = 0604;
	attr.st_mtim.tv_sec = 1234567890;
	attr.st_mtim.tv_nsec = 42;
	g_assert_cmpint(fs_setattr(st, t->big, &attr, SET_MODE | SET_MTIME, &s), ==, 0);
	g_assert_cmphex(s.st_mode, ==, S_IFREG | 0604);
	g_free(head);
	g_free(far);
	g_free(big);
}

static void check_tree(struct store *st, const struct tree *t)
{
	uint8_t *head = pattern(300 * 1024, 1), *far = pattern(5000, 2), *big = pattern(BIG_BYTES, 3);
	struct stat s;
	char *target = NULL, value[16];
	struct dir_listing *l;
	bool seen[4] = { false };

	g_assert_cmpuint(lookup(st, ROOT_INO, "dir"), ==, t->dir);
	g_assert_cmpuint(lookup(st, t->dir, "sub"), ==, t->sub);
	g_assert_cmpuint(lookup(st, t->dir, "file"), ==, t->file);
	g_assert_cmpuint(lookup(st, ROOT_INO, "hard"), ==, t->file);
	g_assert_cmpuint(lookup(st, ROOT_INO, "big"), ==, t->big);
	g_assert_cmpuint(lookup(st, ROOT_INO, "sym"), ==, t->sym);
	g_assert_cmpuint(lookup(st, t->sub, "fifo"), ==, t->fifo);
	g_assert_cmpuint(lookup(st, ROOT_INO, "file"), ==, 0);

	s = getattr(st, ROOT_INO);
	g_assert_cmpuint(s.st_nlink, ==, 3); /* ".", "..", dir/.. */
	g_assert_cmpuint(s.st_uid, ==, 1000);
	s = getattr(st, t->dir);
	g_assert_cmpuint(s.st_nlink, ==, 3);
	g_assert_cmpuint(s.st_uid, ==, WHO.uid);
	s = getattr(st, t->file);
	g_assert_cmpuint(s.st_nlink, ==, 2);
	g_assert_cmpuint(s.st_size, ==, MiB + 123 + 5000);
	g_assert_cmpuint(s.st_blocks, ==, (75 + 2) * (BLK / 512)); /* the hole takes nothing */
	s = getattr(st, t->big);
	g_assert_cmphex(s.st_mode, ==, S_IFREG | 0604);
	g_assert_cmpuint(s.st_size, ==, BIG_BYTES);
	g_assert_cmpint(s.st_mtim.tv_sec, ==, 1234567890);
	g_assert_cmpint(s.st_mtim.tv_nsec, ==, 42);
	s = getattr(st, t->fifo);
	g_assert_cmphex(s.st_mode, ==, S_IFIFO | 0640);

	assert_reads(st, t->file, 0, head, 300 * 1024);
	assert_reads_zero(st, t->file, 300 * 1024, MiB + 123 - 300 * 1024);
	assert_reads(st, t->file, MiB + 123, far, 5000);
	assert_reads(st, t->file, 300 * 1024 - 10, head + 300 * 1024 - 10, 10);
	assert_reads(st, t->big, 0, big, BIG_BYTES);
	assert_reads(st, t->big, 2 * MiB - 7, big + 2 * MiB - 7, 100);
	{
		uint8_t tail[64];

		/* at and after the end: short, then empty */
		g_assert_cmpint(do_read(st, t->file, MiB + 123 + 4990, sizeof(tail), tail), ==, 10);
		g_assert_cmpmem(tail, 10, far + 4990, 10);
		g_assert_cmpint(do_read(st, t->file, MiB + 123 + 5000, sizeof(tail), tail), ==, 0);
		g_assert_cmpint(do_read(st, t->file, 10 * MiB, sizeof(tail), tail), ==, 0);
		g_assert_cmpint(do_read(st, t->dir, 0, sizeof(tail), tail), ==, -EISDIR);
		g_assert_cmpint(do_read(st, 9999, 0, sizeof(tail), tail), ==, -ENOENT);
	}

	g_assert_cmpint(fs_readlink(st, t->sym, &target), ==, 0);
	g_assert_cmpstr(target, ==, "dir/file");
	g_free(target);
	g_assert_cmpint(fs_getxattr(st, t->file, "user.colour", value, sizeof(value)), ==, 4);
	g_assert_cmpmem(value, 4, "blue", 4);
	g_assert_cmpint(fs_getxattr(st, t->dir, "user.empty", value, sizeof(value)), ==, 0);
	g_assert_cmpint(fs_getxattr(st, t->dir, "user.none", value, sizeof(value)), ==, -ENODATA);

	g_assert_cmpint(fs_opendir(st, ROOT_INO, &l), ==, 0);
	g_assert_cmpuint(l->n, ==, 2 + 4);
	g_assert_cmpstr(l->e[0].name, ==, ".");
	g_assert_cmpstr(l->e[1].name, ==, "..");
	for (uint32_t i = 2; i < l->n; i++) {
		static const char *const names[] = { "dir", "big", "sym", "hard" };

		for (int k = 0; k < 4; k++)
			if (!strcmp(l->e[i].name, names[k])) {
				g_assert_false(seen[k]);
				seen[k] = true;
			}
	}
	for (int k = 0; k < 4; k++)
		g_assert_true(seen[k]);
	fs_dir_listing_free(l);
	g_free(head);
	g_free(far);
	g_free(big);
}

static void body_persist(const char *dir)
{
	struct fs f;
	struct tree t;
	struct statvfs sv, sv2;
	char *rev[2];

	fs_new(&f, dir);
	g_assert_cmpint(fs_statfs(f.st, &sv), ==, 0);
	g_assert_cmpuint(sv.f_blocks, ==, 54 * MiB / BLK);
	g_assert_cmpuint(sv.f_bfree, ==, sv.f_blocks);
	build_tree(f.st, &t);
	check_tree(f.st, &t);
	g_assert_cmpint(fs_statfs(f.st, &sv), ==, 0);
	g_assert_cmpuint(sv.f_bfree, ==, sv.f_blocks - 77 - (BIG_BYTES + BLK - 1) / BLK);

	fs_reopen(&f);
	check_tree(f.st, &t);
	g_assert_cmpint(fs_statfs(f.st, &sv2), ==, 0);
	g_assert_cmpuint(sv2.f_bfree, ==, sv.f_bfree);
	g_assert_cmpuint(sv2.f_files, ==, sv.f_files);
	g_assert_cmpuint(sv2.f_ffree, ==, sv.f_ffree);
	fs_close(&f);

	/* the devices in another order: assembled by their index */
	rev[0] = f.paths[1];
	rev[1] = f.paths[0];
	f.st = mount_paths(rev, 2);
	g_assert_cmpstr(f.st->dev[0].path, ==, f.paths[0]);
	check_tree(f.st, &t);
	fs_free(&f);
}

/* ---- refusals of the name operations ------------------------------------------------------ */

static void body_names(const char *dir)
{
	struct fs f;
	struct stat s;
	char long_name[DMIOFS_NAME_MAX + 2];
	uint64_t d, file;

	fs_new(&f, dir);
	d = do_mkdir(f.st, ROOT_INO, "d");
	file = do_mknod(f.st, d, "f", S_IFREG | 0644);
	g_assert_cmpint(fs_mkdir(f.st, ROOT_INO, "d", 0755, &WHO, &s), ==, -EEXIST);
	g_assert_cmpint(fs_mknod(f.st, d, "f", S_IFREG | 0644, 0, &WHO, &s), ==, -EEXIST);
	g_assert_cmpint(fs_mknod(f.st, file, "x", S_IFREG | 0644, 0, &WHO, &s), ==, -ENOTDIR);
	g_assert_cmpint(fs_mknod(f.st, 9999, "x", S_IFREG | 0644, 0, &WHO, &s), ==, -ENOENT);
	g_assert_cmpint(fs_mknod(f.st, d, "a/b", S_IFREG | 0644, 0, &WHO, &s), ==, -EINVAL);
	g_assert_cmpint(fs_mknod(f.st, d, "x", S_IFDIR | 0644, 0, &WHO, &s), ==, -EINVAL);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[DMIOFS_NAME_MAX + 1] = '\0';
	g_assert_cmpint(fs_mknod(f.st, d, long_name, S_IFREG | 0644, 0, &WHO, &s), ==, -ENAMETOOLONG);
	long_name[DMIOFS_NAME_MAX] = '\0';
	g_assert_cmpint(fs_mknod(f.st, d, long_name, S_IFREG | 0644, 0, &WHO, &s), ==, 0);
	g_assert_cmpint(fs_rmdir(f.st, ROOT_INO, "d"), ==, -ENOTEMPTY);
	g_assert_cmpint(fs_rmdir(f.st, d, "f"), ==, -ENOTDIR);
	g_assert_cmpint(fs_unlink(f.st, ROOT_INO, "d"), ==, -EISDIR);
	g_assert_cmpint(fs_unlink(f.st, d, "nothing"), ==, -ENOENT);
	g_assert_cmpint(fs_link(f.st, d, ROOT_INO, "dirlink", &s), ==, -EPERM);
	g_assert_cmpint(fs_setxattr(f.st, file, "user.dmio.layout", "x", 1, 0), ==, -EPERM);
	g_assert_cmpint(fs_setxattr(f.st, file, "user.a", "1", 1, XATTR_REPLACE), ==, -ENODATA);
	g_assert_cmpint(fs_setxattr(f.st, file, "user.a", "1", 1, XATTR_CREATE), ==, 0);
	g_assert_cmpint(fs_setxattr(f.st, file, "user.a", "2", 1, XATTR_CREATE), ==, -EEXIST);
	g_assert_cmpint(fs_removexattr(f.st, file, "user.a"), ==, 0);
	g_assert_cmpint(fs_removexattr(f.st, file, "user.a"), ==, -ENODATA);
	{
		/* BSD group semantics under a set-group-ID directory */
		const struct caller other = { .uid = 2000, .gid = 3000, .umask = 022 };
		struct stat attr = { .st_mode = 02775 };
		uint64_t sg;

		sg = do_mkdir(f.st, ROOT_INO, "sg");
		g_assert_cmpint(fs_setattr(f.st, sg, &attr, SET_MODE, &s), ==, 0);
		g_assert_cmphex(s.st_mode, ==, S_IFDIR | 02775);
		g_assert_cmpint(fs_mknod(f.st, sg, "f", S_IFREG | 0644, 0, &other, &s), ==, 0);
		g_assert_cmpuint(s.st_uid, ==, 2000);
		g_assert_cmpuint(s.st_gid, ==, 1000);
		g_assert_cmpint(fs_mkdir(f.st, sg, "d", 0755, &other, &s), ==, 0);
		g_assert_cmpuint(s.st_gid, ==, 1000);
		g_assert_cmphex(s.st_mode & 07777, ==, 02755);
		g_assert_cmpint(fs_mknod(f.st, d, "plain", S_IFREG | 0644, 0, &other, &s), ==, 0);
		g_assert_cmpuint(s.st_gid, ==, 3000);
		g_assert_cmpint(fs_unlink(f.st, d, "plain"), ==, 0);
	}
	/* rmdir once empty; the parent's link count follows */
	g_assert_cmpint(fs_unlink(f.st, d, "f"), ==, 0);
	g_assert_cmpint(fs_unlink(f.st, d, long_name), ==, 0);
	g_assert_cmpuint(getattr(f.st, ROOT_INO).st_nlink, ==, 4);
	g_assert_cmpint(fs_rmdir(f.st, ROOT_INO, "d"), ==, 0);
	g_assert_cmpuint(getattr(f.st, ROOT_INO).st_nlink, ==, 3);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "d"), ==, 0);
	fs_reopen(&f);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "d"), ==, 0);
	g_assert_cmpuint(getattr(f.st, ROOT_INO).st_nlink, ==, 3);
	fs_free(&f);
}

/* ---- a power cut ------------------------------------------------------------------------------ */

static void body_crash(const char *dir)
{
	struct fs f;
	struct tree t;
	uint8_t *p = pattern(64 * 1024, 9), *q = pattern(8192, 10);
	uint64_t gone, renamed, open_unlinked;
	char *copies[2];
	struct store *cst;
	struct stat s;
	char value[8];

	fs_new(&f, dir);
	build_tree(f.st, &t);
	/* more changes of every kind, then fsync */
	gone = do_mknod(f.st, ROOT_INO, "gone", S_IFREG | 0644);
	write_ok(f.st, gone, 0, p, 8192);
	renamed = do_mknod(f.st, t.dir, "before", S_IFREG | 0644);
	write_ok(f.st, renamed, 0, p, 64 * 1024);
	write_ok(f.st, renamed, 4096, q, 8192); /* an overwrite: copy-on-write */
	g_assert_cmpint(fs_rename(f.st, t.dir, "before", t.sub, "after", 0), ==, 0);
	g_assert_cmpint(fs_unlink(f.st, ROOT_INO, "gone"), ==, 0);
	g_assert_cmpint(data_truncate(f.st, t.big, 2 * MiB + 1), ==, 0);
	g_assert_cmpint(fs_setxattr(f.st, t.sub, "user.k", "v", 1, 0), ==, 0);
	open_unlinked = do_mknod(f.st, ROOT_INO, "open", S_IFREG | 0644);
	write_ok(f.st, open_unlinked, 0, p, 4096);
	g_assert_cmpint(fs_open(f.st, open_unlinked, false), ==, 0);
	g_assert_cmpint(fs_unlink(f.st, ROOT_INO, "open"), ==, 0);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	g_assert_cmpuint(f.st->pending->len, ==, 0);

	/* the power goes: what is on the images now is all there is */
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	/* changes after the sync may or may not survive; they must not break it */
	do_mknod(f.st, ROOT_INO, "late", S_IFREG | 0644);

	/* a read-only mount replays the log in memory and writes nothing */
	{
		char *before[2] = { file_digest(copies[0]), file_digest(copies[1]) };
		struct store_options ro = OPTS;
		uint8_t buf[16];

		ro.read_only = true;
		cst = mount_opts(copies, 2, &ro);
		g_assert_cmpuint(lookup(cst, t.sub, "after"), ==, renamed);
		assert_reads(cst, renamed, 4096, q, 8192);
		g_assert_cmpuint(lookup(cst, ROOT_INO, "gone"), ==, 0);
		g_assert_cmpint(fs_mknod(cst, ROOT_INO, "x", S_IFREG | 0644, 0, &WHO, &s), ==, -EROFS);
		g_assert_cmpint(do_write(cst, renamed, 0, buf, sizeof(buf)), ==, -EROFS);
		g_assert_cmpint(data_truncate(cst, renamed, 0), ==, -EROFS);
		g_assert_cmpint(store_close(cst), ==, 0);
		for (int i = 0; i < 2; i++) {
			char *after = file_digest(copies[i]);

			g_assert_cmpstr(after, ==, before[i]);
			g_free(after);
			g_free(before[i]);
		}
	}

	cst = mount_paths(copies, 2);
	/* the tree as built, with the synced changes */
	g_assert_cmpuint(lookup(cst, ROOT_INO, "gone"), ==, 0);
	g_assert_null(meta_inode(&cst->meta, gone));
	g_assert_cmpuint(lookup(cst, t.dir, "before"), ==, 0);
	g_assert_cmpuint(lookup(cst, t.sub, "after"), ==, renamed);
	assert_reads(cst, renamed, 0, p, 4096);
	assert_reads(cst, renamed, 4096, q, 8192);
	assert_reads(cst, renamed, 4096 + 8192, p + 4096 + 8192, 64 * 1024 - 4096 - 8192);
	g_assert_cmpuint(getattr(cst, t.big).st_size, ==, 2 * MiB + 1);
	g_assert_cmpint(fs_getxattr(cst, t.sub, "user.k", value, sizeof(value)), ==, 1);
	/* the open, unlinked file had no name: freed at mount */
	g_assert_cmpint(fs_getattr(cst, open_unlinked, &s), ==, -ENOENT);
	{
		/* the file system is consistent enough to keep working */
		uint64_t more = do_mknod(cst, ROOT_INO, "after-crash", S_IFREG | 0644);

		write_ok(cst, more, 0, q, 8192);
		assert_reads(cst, more, 0, q, 8192);
	}
	{
		/* the tree as built (big was truncated: check its head only) */
		uint8_t *big = pattern(BIG_BYTES, 3);

		uint8_t *head = pattern(300 * 1024, 1), *far = pattern(5000, 2);

		assert_reads(cst, t.big, 0, big, 2 * MiB + 1);
		assert_reads(cst, t.file, 0, head, 300 * 1024);
		assert_reads(cst, t.file, MiB + 123, far, 5000);
		g_free(big);
		g_free(head);
		g_free(far);
		g_assert_cmpuint(lookup(cst, ROOT_INO, "hard"), ==, t.file);
		g_assert_cmpuint(lookup(cst, t.sub, "fifo"), ==, t.fifo);
	}
	g_assert_cmpint(store_close(cst), ==, 0);

	/* and the copies mount again, cleanly */
	cst = mount_paths(copies, 2);
	g_assert_cmpuint(lookup(cst, t.sub, "after"), ==, renamed);
	g_assert_cmpuint(lookup(cst, ROOT_INO, "after-crash"), !=, 0);
	g_assert_cmpint(store_close(cst), ==, 0);

	fs_release(f.st, open_unlinked);
	fs_free(&f);
	g_free(copies[0]);
	g_free(copies[1]);
	g_free(p);
	g_free(q);
}

/* Enough synced commits to wrap the log ring (2 MiB) and make the
 * committer write checkpoints in between, then a power cut. */
static void body_crash_log_wrap(const char *dir)
{
	struct fs f;
	char *copies[2];
	struct store *cst;
	uint64_t ino[600];
	uint8_t block[BLK];
	uint64_t ckpts;

	fs_new(&f, dir);
	ckpts = f.st->checkpoints;
	for (int i = 0; i < 600; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%03d", i);
		ino[i] = do_mknod(f.st, ROOT_INO, name, S_IFREG | 0644);
		if (i % 7 == 0) {
			memset(block, i & 0xFF, sizeof(block));
			write_ok(f.st, ino[i], (uint64_t)i * BLK, block, sizeof(block));
		}
		g_assert_cmpint(store_sync(f.st), ==, 0);
	}
	g_assert_cmpuint(f.st->commits + f.st->checkpoints - ckpts, >=, 600); /* one per sync */
	g_assert_cmpuint(f.st->checkpoints, >, ckpts); /* the ring filled up: the committer checkpointed */
	g_assert_cmpuint(f.st->log_pos, <, f.st->log_used); /* and the ring wrapped since */
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	cst = mount_paths(copies, 2);
	for (int i = 0; i < 600; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%03d", i);
		g_assert_cmpuint(lookup(cst, ROOT_INO, name), ==, ino[i]);
		if (i % 7 == 0) {
			memset(block, i & 0xFF, sizeof(block));
			assert_reads(cst, ino[i], (uint64_t)i * BLK, block, sizeof(block));
			assert_reads_zero(cst, ino[i], 0, (size_t)i * BLK);
		}
	}
	g_assert_cmpint(store_close(cst), ==, 0);
	fs_free(&f);
	g_free(copies[0]);
	g_free(copies[1]);
}

/* ---- rename ------------------------------------------------------------------------------------- */

static void body_rename(const char *dir)
{
	struct fs f;
	uint64_t a, b, sub, f1, f2, c, x, e, e2, h;
	struct stat s;

	fs_new(&f, dir);
	a = do_mkdir(f.st, ROOT_INO, "a");
	b = do_mkdir(f.st, ROOT_INO, "b");
	sub = do_mkdir(f.st, a, "sub");
	f1 = do_mknod(f.st, a, "f1", S_IFREG | 0644);
	f2 = do_mknod(f.st, b, "f2", S_IFREG | 0644);
	c = do_mkdir(f.st, ROOT_INO, "c");
	x = do_mknod(f.st, c, "x", S_IFREG | 0644);
	e = do_mkdir(f.st, ROOT_INO, "e");
	e2 = do_mkdir(f.st, b, "e2");

	/* flags */
	g_assert_cmpint(fs_rename(f.st, a, "f1", b, "f2", FS_RENAME_NOREPLACE), ==, -EEXIST);
	g_assert_cmpint(fs_rename(f.st, a, "f1", b, "f2", FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE), ==, -EINVAL);
	g_assert_cmpint(fs_rename(f.st, a, "f1", b, "f2", 0x4), ==, -EINVAL);
	g_assert_cmpint(fs_rename(f.st, a, "f1", b, "none", FS_RENAME_EXCHANGE), ==, -ENOENT);
	g_assert_cmpint(fs_rename(f.st, a, "none", b, "f3", 0), ==, -ENOENT);
	g_assert_cmpint(fs_rename(f.st, a, "f1", b, "f3", FS_RENAME_NOREPLACE), ==, 0);
	g_assert_cmpuint(lookup(f.st, a, "f1"), ==, 0);
	g_assert_cmpuint(lookup(f.st, b, "f3"), ==, f1);
	g_assert_cmpint(fs_rename(f.st, b, "f3", a, "f1", 0), ==, 0);

	/* exchange two files in different directories */
	g_assert_cmpint(fs_rename(f.st, a, "f1", b, "f2", FS_RENAME_EXCHANGE), ==, 0);
	g_assert_cmpuint(lookup(f.st, a, "f1"), ==, f2);
	g_assert_cmpuint(lookup(f.st, b, "f2"), ==, f1);
	g_assert_cmpuint(getattr(f.st, f1).st_nlink, ==, 1);
	g_assert_cmpuint(getattr(f.st, f2).st_nlink, ==, 1);
	/* exchange a directory and a file across parents: ".." moves */
	g_assert_cmpuint(getattr(f.st, a).st_nlink, ==, 3);
	g_assert_cmpuint(getattr(f.st, b).st_nlink, ==, 3);
	g_assert_cmpint(fs_rename(f.st, a, "sub", b, "f2", FS_RENAME_EXCHANGE), ==, 0);
	g_assert_cmpuint(lookup(f.st, b, "f2"), ==, sub);
	g_assert_cmpuint(lookup(f.st, a, "sub"), ==, f1);
	g_assert_cmpuint(getattr(f.st, a).st_nlink, ==, 2);
	g_assert_cmpuint(getattr(f.st, b).st_nlink, ==, 4);
	{
		struct dir_listing *l;

		g_assert_cmpint(fs_opendir(f.st, sub, &l), ==, 0);
		g_assert_cmpuint(l->e[1].ino, ==, b); /* ".." */
		fs_dir_listing_free(l);
	}
	g_assert_cmpint(fs_rename(f.st, b, "f2", a, "sub", FS_RENAME_EXCHANGE), ==, 0); /* and back */
	g_assert_cmpuint(getattr(f.st, a).st_nlink, ==, 3);
	g_assert_cmpuint(getattr(f.st, b).st_nlink, ==, 3);

	/* into itself or below */
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "a", sub, "a", 0), ==, -EINVAL);
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "a", a, "a2", 0), ==, -EINVAL);
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "a", sub, "x", FS_RENAME_NOREPLACE), ==, -EINVAL);
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "a", sub, "f1", FS_RENAME_EXCHANGE), ==, -ENOENT);
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "a", a, "f1", FS_RENAME_EXCHANGE), ==, -EINVAL);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "a"), ==, a);

	/* over directories and files */
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "e", ROOT_INO, "c", 0), ==, -ENOTEMPTY);
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "e", c, "x", 0), ==, -ENOTDIR);
	g_assert_cmpint(fs_rename(f.st, c, "x", ROOT_INO, "e", 0), ==, -EISDIR);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "c"), ==, c);
	g_assert_cmpuint(lookup(f.st, c, "x"), ==, x);
	g_assert_cmpuint(getattr(f.st, ROOT_INO).st_nlink, ==, 6); /* a b c e */
	/* an empty directory may be replaced; it takes its ".." with it */
	g_assert_cmpint(fs_rename(f.st, ROOT_INO, "e", b, "e2", 0), ==, 0);
	g_assert_cmpuint(lookup(f.st, b, "e2"), ==, e);
	g_assert_cmpuint(getattr(f.st, ROOT_INO).st_nlink, ==, 5);
	g_assert_cmpuint(getattr(f.st, b).st_nlink, ==, 3);
	g_assert_cmpuint(getattr(f.st, e2).st_nlink, ==, 0);
	fs_forget(f.st, e2, 1); /* the kernel lets go: the inode goes */
	g_assert_cmpint(fs_getattr(f.st, e2, &s), ==, -ENOENT);

	/* over a file: the replaced one loses a link */
	h = do_mknod(f.st, c, "y", S_IFREG | 0644);
	g_assert_cmpint(fs_link(f.st, h, ROOT_INO, "y-too", &s), ==, 0);
	g_assert_cmpint(fs_rename(f.st, c, "x", c, "y", 0), ==, 0);
	g_assert_cmpuint(lookup(f.st, c, "y"), ==, x);
	g_assert_cmpuint(lookup(f.st, c, "x"), ==, 0);
	g_assert_cmpuint(getattr(f.st, h).st_nlink, ==, 1);
	/* two names of one inode: nothing happens, both stay */
	g_assert_cmpint(fs_link(f.st, x, ROOT_INO, "x-too", &s), ==, 0);
	g_assert_cmpint(fs_rename(f.st, c, "y", ROOT_INO, "x-too", 0), ==, 0);
	g_assert_cmpuint(lookup(f.st, c, "y"), ==, x);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "x-too"), ==, x);
	g_assert_cmpuint(getattr(f.st, x).st_nlink, ==, 2);

	/* all of it survives a remount */
	fs_reopen(&f);
	g_assert_cmpuint(lookup(f.st, a, "f1"), ==, f2);
	g_assert_cmpuint(lookup(f.st, a, "sub"), ==, sub);
	g_assert_cmpuint(lookup(f.st, b, "f2"), ==, f1);
	g_assert_cmpuint(lookup(f.st, b, "e2"), ==, e);
	g_assert_cmpuint(lookup(f.st, c, "y"), ==, x);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "y-too"), ==, h);
	g_assert_cmpuint(getattr(f.st, ROOT_INO).st_nlink, ==, 5);
	g_assert_cmpuint(getattr(f.st, a).st_nlink, ==, 3);
	g_assert_cmpuint(getattr(f.st, b).st_nlink, ==, 3);
	g_assert_cmpuint(getattr(f.st, x).st_nlink, ==, 2);
	g_assert_cmpuint(getattr(f.st, h).st_nlink, ==, 1);
	g_assert_cmpint(fs_getattr(f.st, e2, &s), ==, -ENOENT);
	{
		struct dir_listing *l;

		g_assert_cmpint(fs_opendir(f.st, e, &l), ==, 0);
		g_assert_cmpuint(l->e[1].ino, ==, b); /* ".": moved from the root into b */
		fs_dir_listing_free(l);
	}
	fs_free(&f);
}

/* Free blocks as statfs counts them. */
/* What files may still fill (f_bavail: the reserve kept for truncates
 * and punches on a full file system is not theirs). */
static uint64_t avail_blocks(struct store *st)
{
	struct statvfs sv;

	g_assert_cmpint(fs_statfs(st, &sv), ==, 0);
	g_assert_cmpuint(sv.f_bfree, ==, sv.f_bavail + MIN(sv.f_bfree, st->alloc.reserve));
	return sv.f_bavail;
}

/* ---- an unlinked open file ------------------------------------------------------------------------ */

static void body_unlink_open(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(40 * BLK, 5);
	uint64_t ino, free_before, free_written;
	struct stat s;

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	free_before = avail_blocks(f.st);
	write_ok(f.st, ino, 0, p, 40 * BLK);
	free_written = f.st->alloc.free_blocks;
	fs_forget(f.st, ino, 1); /* only the open handle holds it now */
	g_assert_cmpint(fs_open(f.st, ino, false), ==, 0);
	g_assert_cmpint(fs_unlink(f.st, ROOT_INO, "f"), ==, 0);
	g_assert_cmpuint(lookup(f.st, ROOT_INO, "f"), ==, 0);
	s = getattr(f.st, ino);
	g_assert_cmpuint(s.st_nlink, ==, 0);
	g_assert_cmpuint(s.st_size, ==, 40 * BLK);
	/* still readable and writable through the handle, data intact */
	assert_reads(f.st, ino, 0, p, 40 * BLK);
	write_ok(f.st, ino, 40 * BLK, p, 100);
	assert_reads(f.st, ino, 40 * BLK, p, 100);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	assert_reads(f.st, ino, 0, p, 40 * BLK);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 0);

	/* the last release frees it; its blocks wait for the commit */
	fs_release(f.st, ino);
	g_assert_cmpint(fs_getattr(f.st, ino, &s), ==, -ENOENT);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 41);
	g_assert_cmpuint(f.st->alloc.free_blocks, ==, free_written - 1);
	g_assert_cmpint(store_sync_frees(f.st), ==, 0);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 0);
	g_assert_cmpuint(avail_blocks(f.st), ==, free_before);
	{
		uint8_t buf[16];

		g_assert_cmpint(do_read(f.st, ino, 0, sizeof(buf), buf), ==, -ENOENT);
		g_assert_cmpint(do_write(f.st, ino, 0, buf, sizeof(buf)), ==, -ENOENT);
	}
	fs_reopen(&f);
	g_assert_cmpint(fs_getattr(f.st, ino, &s), ==, -ENOENT);

	/* unlinked while the kernel still looks it up: gone at the last forget */
	ino = do_mknod(f.st, ROOT_INO, "g", S_IFREG | 0644);
	write_ok(f.st, ino, 0, p, BLK);
	g_assert_cmpint(fs_unlink(f.st, ROOT_INO, "g"), ==, 0);
	assert_reads(f.st, ino, 0, p, BLK);
	fs_forget(f.st, ino, 1);
	g_assert_cmpint(fs_getattr(f.st, ino, &s), ==, -ENOENT);
	fs_free(&f);
	g_free(p);
}

/* ---- truncate --------------------------------------------------------------------------------------- */

static void body_truncate(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(3 * BLK, 6);
	uint64_t ino;
	struct stat attr, s;

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	write_ok(f.st, ino, 0, p, 3 * BLK);
	g_assert_cmpint(data_truncate(f.st, ino, 5000), ==, 0);
	s = getattr(f.st, ino);
	g_assert_cmpuint(s.st_size, ==, 5000);
	g_assert_cmpuint(s.st_blocks, ==, 2 * (BLK / 512)); /* the third block is gone */
	assert_reads(f.st, ino, 0, p, 5000);
	/* growing again: what was cut off reads as zeroes */
	g_assert_cmpint(data_truncate(f.st, ino, 3 * BLK), ==, 0);
	assert_reads(f.st, ino, 0, p, 5000);
	assert_reads_zero(f.st, ino, 5000, 3 * BLK - 5000);
	/* the same through setattr, and by writing past the end */
	memset(&attr, 0, sizeof(attr));
	attr.st_size = 4100;
	g_assert_cmpint(fs_setattr(f.st, ino, &attr, SET_SIZE, &s), ==, 0);
	g_assert_cmpuint(s.st_size, ==, 4100);
	write_ok(f.st, ino, 5 * BLK, "end", 3);
	assert_reads(f.st, ino, 0, p, 4100);
	assert_reads_zero(f.st, ino, 4100, 5 * BLK - 4100);
	assert_reads(f.st, ino, 5 * BLK, "end", 3);
	/* and after a remount */
	fs_reopen(&f);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 5 * BLK + 3);
	assert_reads(f.st, ino, 0, p, 4100);
	assert_reads_zero(f.st, ino, 4100, 5 * BLK - 4100);
	/* to zero: no blocks left */
	g_assert_cmpint(data_truncate(f.st, ino, 0), ==, 0);
	s = getattr(f.st, ino);
	g_assert_cmpuint(s.st_size, ==, 0);
	g_assert_cmpuint(s.st_blocks, ==, 0);
	g_assert_cmpint(data_truncate(f.st, ino, 2 * BLK), ==, 0);
	assert_reads_zero(f.st, ino, 0, 2 * BLK);
	/* truncate on open(O_TRUNC) */
	write_ok(f.st, ino, 0, p, 100);
	g_assert_cmpint(fs_open(f.st, ino, true), ==, 0);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 0);
	fs_release(f.st, ino);
	fs_free(&f);
	g_free(p);
}

/* Truncating a sparse file whose data lies past 16 TiB (2^32 blocks)
 * must unmap that data too: growing the file again reads zeroes. */
static void body_truncate_far(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(BLK, 7);
	const uint64_t far = 20 * TiB;
	uint64_t ino;
	struct dinode *in;

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "sparse", S_IFREG | 0644);
	write_ok(f.st, ino, 0, p, BLK);
	write_ok(f.st, ino, far, p, BLK);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, far + BLK);
	g_assert_cmpuint(getattr(f.st, ino).st_blocks, ==, 2 * (BLK / 512));
	assert_reads(f.st, ino, far, p, BLK);
	g_assert_cmpint(data_truncate(f.st, ino, 0), ==, 0);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 0);
	in = meta_inode(&f.st->meta, ino);
	if (in->nextents)
		g_printerr("# after truncate to 0: %u extent(s) still mapped, the first at byte %llu\n", in->nextents,
			   (unsigned long long)ext_last(in)->fblock * BLK);
	/* growing it again must not bring the old bytes back */
	g_assert_cmpint(data_truncate(f.st, ino, far + BLK), ==, 0);
	assert_reads_zero(f.st, ino, far, BLK);
	g_assert_cmpuint(getattr(f.st, ino).st_blocks, ==, 0);
	fs_free(&f);
	g_free(p);
}

/* ---- SEEK_DATA / SEEK_HOLE ------------------------------------------------------------------------------ */

static void seek_is(struct store *st, uint64_t ino, uint64_t off, int whence, int64_t want)
{
	uint64_t out = 0xDEAD;
	int err = data_seek(st, ino, off, whence, &out);

	if (want < 0) {
		g_assert_cmpint(err, ==, (int)want);
	} else {
		g_assert_cmpint(err, ==, 0);
		g_assert_cmpuint(out, ==, (uint64_t)want);
	}
}

static void body_seek(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(2 * BLK, 8);
	uint64_t ino, other;

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	seek_is(f.st, ino, 0, SEEK_DATA, -ENXIO); /* empty */
	seek_is(f.st, ino, 0, SEEK_HOLE, -ENXIO);
	write_ok(f.st, ino, 0, p, 2 * BLK);      /* data [0, 8K) */
	write_ok(f.st, ino, MiB, p, BLK);        /* data [1M, 1M+4K) */
	g_assert_cmpint(data_truncate(f.st, ino, 2 * MiB), ==, 0); /* hole to 2M */
	other = do_mknod(f.st, ROOT_INO, "g", S_IFREG | 0644);
	write_ok(f.st, other, 0, p, 2 * BLK); /* its blocks follow ino's in the chunk */
	write_ok(f.st, ino, 2 * BLK, p, BLK); /* [8K, 12K): contiguous in the file, not in the chunk */

	seek_is(f.st, ino, 0, SEEK_DATA, 0);
	seek_is(f.st, ino, 5000, SEEK_DATA, 5000);
	seek_is(f.st, ino, 0, SEEK_HOLE, 3 * BLK); /* across two extents */
	seek_is(f.st, ino, 5000, SEEK_HOLE, 3 * BLK);
	seek_is(f.st, ino, 3 * BLK, SEEK_HOLE, 3 * BLK);
	seek_is(f.st, ino, 3 * BLK, SEEK_DATA, MiB);
	seek_is(f.st, ino, MiB - 1, SEEK_DATA, MiB);
	seek_is(f.st, ino, MiB, SEEK_HOLE, MiB + BLK);
	seek_is(f.st, ino, MiB + 100, SEEK_DATA, MiB + 100);
	seek_is(f.st, ino, MiB + BLK, SEEK_DATA, -ENXIO);
	seek_is(f.st, ino, MiB + BLK, SEEK_HOLE, MiB + BLK);
	seek_is(f.st, ino, 2 * MiB - 1, SEEK_HOLE, 2 * MiB - 1);
	seek_is(f.st, ino, 2 * MiB, SEEK_DATA, -ENXIO);
	seek_is(f.st, ino, 2 * MiB, SEEK_HOLE, -ENXIO);
	seek_is(f.st, ino, 0, 77, -EINVAL);
	seek_is(f.st, ROOT_INO, 0, SEEK_DATA, -EINVAL);
	seek_is(f.st, 9999, 0, SEEK_DATA, -ENOENT);

	/* a punched hole shows, and reads as zeroes */
	g_assert_cmpint(data_fallocate(f.st, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BLK, BLK), ==, 0);
	seek_is(f.st, ino, 0, SEEK_HOLE, BLK);
	seek_is(f.st, ino, BLK, SEEK_DATA, 2 * BLK);
	assert_reads_zero(f.st, ino, BLK, BLK);
	assert_reads(f.st, ino, 0, p, BLK);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 2 * MiB);
	/* a partial-block punch zeroes bytes but keeps the block */
	g_assert_cmpint(data_fallocate(f.st, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 200), ==, 0);
	seek_is(f.st, ino, 0, SEEK_HOLE, BLK);
	assert_reads(f.st, ino, 0, p, 100);
	assert_reads_zero(f.st, ino, 100, 200);
	assert_reads(f.st, ino, 300, p + 300, BLK - 300);
	fs_reopen(&f);
	seek_is(f.st, ino, 0, SEEK_HOLE, BLK);
	seek_is(f.st, ino, 3 * BLK, SEEK_DATA, MiB);
	fs_free(&f);
	g_free(p);
}

/* ---- checksums, fail-over and repair ------------------------------------------------------------------------ */

/* Where copy k of file block fblock of ino lies: the device and byte offset. */
static void locate(struct store *st, uint64_t ino, uint64_t fblock, uint32_t k, uint32_t *dev, uint64_t *offset)
{
	struct dinode *in;
	const struct extent *e;
	const struct chunk *c;
	struct ext_pos pos;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	g_assert_nonnull(in);
	e = ext_seek(in, fblock, &pos);
	g_assert_nonnull(e);
	g_assert_cmpuint(e->fblock, <=, fblock);
	c = alloc_chunk(&st->alloc, e->chunk);
	g_assert_nonnull(c);
	g_assert_cmpuint(k, <, c->ncopies);
	*dev = c->stripes[k].dev;
	*offset = c->stripes[k].offset + (uint64_t)(e->cblock + (fblock - e->fblock)) * BLK;
	g_mutex_unlock(&st->lock);
}

static uint64_t dev_count(struct store *st, uint32_t dev, int kind)
{
	uint64_t n;

	g_mutex_lock(&st->lock);
	n = st->dev[dev].err.count[kind];
	g_mutex_unlock(&st->lock);
	return n;
}

/* Wait up to 10 s for the copy at (path, offset) to hold want. */
static bool copy_becomes(const char *path, uint64_t offset, const uint8_t *want, size_t len)
{
	uint8_t *got = g_malloc(len);
	bool same = false;

	for (int i = 0; i < 1000 && !same; i++) {
		tu_raw_read(path, offset, got, len);
		same = !memcmp(got, want, len);
		if (!same)
			g_usleep(10000);
	}
	g_free(got);
	return same;
}

static void body_checksum_repair(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(16 * BLK, 11), junk[BLK], raw[BLK];
	uint64_t ino, off0, off1;
	uint32_t dev0, dev1, other;
	char *layout = NULL, *errors = NULL, *sector;
	struct dinode *in;

	/* Bad copies are said in the log: warnings are expected. */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	write_ok(f.st, ino, 0, p, 16 * BLK);
	fs_reopen(&f); /* no read has happened: the first goes to copy 0 */

	locate(f.st, ino, 3, 0, &dev0, &off0);
	locate(f.st, ino, 3, 1, &dev1, &off1);
	g_assert_cmpuint(dev0, !=, dev1);
	other = dev1;
	/* the layout xattr names the same place */
	g_assert_cmpint(inspect_xattr(f.st, ino, XATTR_LAYOUT, &layout), ==, 0);
	sector = g_strdup_printf("copy=0 device=%u state=healthy sector=%llu", dev0,
				 (unsigned long long)((off0 - 3 * BLK) >> 9));
	if (!strstr(layout, sector))
		g_printerr("# layout:\n%s# wanted: %s\n", layout, sector);
	g_assert_nonnull(strstr(layout, sector));
	g_free(sector);
	g_free(layout);
	/* both copies hold the data */
	tu_raw_read(f.st->dev[dev0].path, off0, raw, BLK);
	g_assert_cmpmem(raw, BLK, p + 3 * BLK, BLK);
	tu_raw_read(f.st->dev[dev1].path, off1, raw, BLK);
	g_assert_cmpmem(raw, BLK, p + 3 * BLK, BLK);

	/* rot one copy of block 3, behind the store's back */
	memcpy(junk, p + 3 * BLK, BLK);
	junk[100] ^= 0x01;
	tu_raw_write(f.st->dev[dev0].path, off0, junk, BLK);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_CSUM), ==, 0);

	/* the read is right all the same */
	assert_reads(f.st, ino, 0, p, 16 * BLK);
	if (dev_count(f.st, dev0, ERR_CSUM) == 0)
		g_printerr("# the read was served by copy 1: the damaged copy 0 was never read\n");
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_CSUM), ==, 1);
	g_assert_cmpuint(dev_count(f.st, other, ERR_CSUM), ==, 0);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_READ), ==, 0);
	g_mutex_lock(&f.st->lock);
	in = meta_inode(&f.st->meta, ino);
	g_assert_nonnull(in->errors);
	g_assert_cmpuint(in->errors->count[ERR_CSUM], ==, 1);
	g_assert_cmpuint(in->errors->last_op, ==, 1);
	g_assert_cmphex(in->errors->last_bits, ==, 1); /* copy 0 */
	g_mutex_unlock(&f.st->lock);
	/* and the damaged copy is rewritten from the good one */
	g_assert_true(copy_becomes(f.st->dev[dev0].path, off0, p + 3 * BLK, BLK));
	for (int i = 0; i < 500 && dev_count(f.st, dev0, ERR_REPAIRED) == 0; i++)
		g_usleep(10000);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_REPAIRED), ==, 1);
	g_assert_cmpuint(dev_count(f.st, other, ERR_REPAIRED), ==, 0);
	tu_raw_read(f.st->dev[dev1].path, off1, raw, BLK);
	g_assert_cmpmem(raw, BLK, p + 3 * BLK, BLK);
	g_assert_cmpint(inspect_xattr(f.st, ino, XATTR_ERRORS, &errors), ==, 0);
	g_assert_nonnull(strstr(errors, "checksum_errors=1\n"));
	g_assert_nonnull(strstr(errors, "last_op=read\n"));
	g_free(errors);

	/* reading again finds nothing wrong */
	assert_reads(f.st, ino, 0, p, 16 * BLK);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_CSUM), ==, 1);

	/* the counters are persistent */
	fs_reopen(&f);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_CSUM), ==, 1);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_REPAIRED), ==, 1);
	g_assert_cmpuint(dev_count(f.st, other, ERR_CSUM), ==, 0);
	assert_reads(f.st, ino, 0, p, 16 * BLK);
	g_assert_cmpuint(dev_count(f.st, dev0, ERR_CSUM), ==, 1);
	fs_free(&f);
	g_free(p);
}

/* Each copy rotten in a different block of the same extent: every block
 * still has a good copy, so the file must still read right (and both
 * copies be repaired). */
static void body_checksum_both_copies(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(16 * BLK, 12), junk[BLK];
	uint64_t ino, off_a, off_b;
	uint32_t dev_a, dev_b;
	uint8_t *got = g_malloc(16 * BLK);
	ssize_t r;

	/* Bad copies are said in the log: warnings are expected. */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	write_ok(f.st, ino, 0, p, 16 * BLK);
	g_assert_cmpuint(meta_inode(&f.st->meta, ino)->nextents, ==, 1); /* one extent */
	fs_reopen(&f);
	locate(f.st, ino, 2, 0, &dev_a, &off_a);
	locate(f.st, ino, 9, 1, &dev_b, &off_b);
	memcpy(junk, p + 2 * BLK, BLK);
	junk[0] ^= 0x80;
	tu_raw_write(f.st->dev[dev_a].path, off_a, junk, BLK);
	memcpy(junk, p + 9 * BLK, BLK);
	junk[BLK - 1] ^= 0x80;
	tu_raw_write(f.st->dev[dev_b].path, off_b, junk, BLK);

	r = do_read(f.st, ino, 0, 16 * BLK, got);
	if (r < 0)
		g_printerr("# the read failed (%s) although every block has a good copy\n", g_strerror((int)-r));
	g_assert_cmpint(r, ==, 16 * BLK);
	g_assert_cmpmem(got, 16 * BLK, p, 16 * BLK);
	g_assert_true(copy_becomes(f.st->dev[dev_a].path, off_a, p + 2 * BLK, BLK));
	g_assert_true(copy_becomes(f.st->dev[dev_b].path, off_b, p + 9 * BLK, BLK));
	fs_free(&f);
	g_free(got);
	g_free(p);
}


/* Blocks let go of by an uncommitted overwrite are not reused before
 * the commit: after a power cut the old extent still holds its data. */
static void body_crash_freed_blocks(const char *dir)
{
	struct fs f;
	uint8_t *p1 = pattern(4 * BLK, 30), *p2 = pattern(4 * BLK, 31), *p3 = pattern(64 * BLK, 32);
	uint64_t a, b, old_off, off;
	uint32_t old_dev, dev;
	char *copies[2];
	struct store *cst;

	fs_new(&f, dir);
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p1, 4 * BLK);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	locate(f.st, a, 0, 0, &old_dev, &old_off);
	write_ok(f.st, a, 0, p2, 4 * BLK); /* copy-on-write: the old 4 blocks wait */
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 4);
	b = do_mknod(f.st, ROOT_INO, "b", S_IFREG | 0644);
	write_ok(f.st, b, 0, p3, 64 * BLK);
	for (uint64_t blk = 0; blk < 64; blk++) {
		locate(f.st, b, blk, 0, &dev, &off);
		g_assert_false(dev == old_dev && off >= old_off && off < old_off + 4 * BLK);
	}
	assert_reads(f.st, a, 0, p2, 4 * BLK);

	/* the power goes before the overwrite is committed */
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	cst = mount_paths(copies, 2);
	assert_reads(cst, a, 0, p1, 4 * BLK);
	g_assert_cmpuint(lookup(cst, ROOT_INO, "b"), ==, 0);
	g_assert_cmpint(store_close(cst), ==, 0);

	/* once committed, the old blocks are free again */
	g_assert_cmpint(store_sync_frees(f.st), ==, 0);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 0);
	fs_free(&f);
	g_free(copies[0]);
	g_free(copies[1]);
	g_free(p1);
	g_free(p2);
	g_free(p3);
}

/* The commit interval of the lazy-commit cases: long enough that the
 * test takes the lock after a lazy commit before the committer, finding
 * nothing new for a whole interval, flushes it. */
#define LAZY_TEST_INTERVAL_MS 200

/* Lock taken and held once the committer has written everything pending
 * and nothing is on its way; moved: log_pos must differ from this. */
static void lock_when_committed(struct store *st, uint64_t moved_from)
{
	g_mutex_lock(&st->lock);
	while (st->committing || st->pending->len || st->log_pos == moved_from) {
		g_mutex_unlock(&st->lock);
		g_usleep(1000);
		g_mutex_lock(&st->lock);
	}
}

/* The committer's own commits go out with no flush (lazy): the blocks an
 * overwrite frees wait for a commit that flushes, and after a power cut
 * a lazy commit counts only if its data is on the devices. */
static void zero_copies(struct store *st, char *const *images, uint64_t ino, uint32_t nblocks)
{
	uint8_t *zeros = g_malloc0((size_t)nblocks * BLK);

	for (uint32_t k = 0; k < 2; k++) {
		uint32_t dev;
		uint64_t off;
		int fd;

		locate(st, ino, 0, k, &dev, &off);
		fd = open(images[dev], O_WRONLY | O_CLOEXEC);
		g_assert_cmpint(fd, >=, 0);
		g_assert_cmpint(pwrite(fd, zeros, (size_t)nblocks * BLK, (off_t)off), ==, (ssize_t)nblocks * BLK);
		close(fd);
	}
	g_free(zeros);
}

static void body_crash_lazy_commit(const char *dir)
{
	struct fs f;
	uint8_t *p1 = pattern(4 * BLK, 40), *p2 = pattern(4 * BLK, 41);
	char *copies[2], *lost[2];
	struct store *cst;
	uint64_t a, synced_at;

	fs_new(&f, dir);
	f.opt.commit_interval_ms = LAZY_TEST_INTERVAL_MS;
	fs_reopen(&f);
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p1, 4 * BLK);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	lock_when_committed(f.st, UINT64_MAX);
	synced_at = f.st->log_pos;
	g_mutex_unlock(&f.st->lock);
	write_ok(f.st, a, 0, p2, 4 * BLK); /* copy-on-write: the old 4 blocks wait */

	/* The committer writes it lazily; the lock held keeps the commit
	 * that would flush it (an interval later) from starting. */
	lock_when_committed(f.st, synced_at);
	g_assert_cmpint(f.st->lazy_since, !=, 0);
	g_assert_cmpuint(f.st->durable_seq, <, f.st->next_seq - 1);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 4);
	/* the power goes now: the devices kept everything */
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	g_mutex_unlock(&f.st->lock);

	/* or lost the lazy commit's data, and kept the commit */
	lost[0] = copy_image(copies[0], dir, "l0.img");
	lost[1] = copy_image(copies[1], dir, "l1.img");
	zero_copies(f.st, lost, a, 4);

	cst = mount_paths(copies, 2);
	g_assert_false(cst->log_left_out);
	assert_reads(cst, a, 0, p2, 4 * BLK);
	g_assert_cmpint(store_close(cst), ==, 0);

	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL); /* it warns that it leaves it out */
	cst = mount_paths(lost, 2);
	g_assert_true(cst->log_left_out);
	assert_reads(cst, a, 0, p1, 4 * BLK);
	g_assert_cmpint(store_close(cst), ==, 0);
	/* and the log goes on from there */
	cst = mount_paths(lost, 2);
	g_assert_false(cst->log_left_out);
	assert_reads(cst, a, 0, p1, 4 * BLK);
	g_assert_cmpint(store_close(cst), ==, 0);

	/* a sync flushes the lazy commit: the old blocks are free again */
	g_assert_cmpint(store_sync_frees(f.st), ==, 0);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 0);
	fs_free(&f);
	for (int i = 0; i < 2; i++) {
		g_free(copies[i]);
		g_free(lost[i]);
	}
	g_free(p1);
	g_free(p2);
}

static void zero_log(char *const *images, uint64_t from, uint64_t to)
{
	uint8_t *zeros = g_malloc0(to - from);

	for (int i = 0; i < 2; i++) {
		int fd = open(images[i], O_WRONLY | O_CLOEXEC);

		g_assert_cmpint(fd, >=, 0);
		g_assert_cmpint(pwrite(fd, zeros, to - from, (off_t)from), ==, (ssize_t)(to - from));
		close(fd);
	}
	g_free(zeros);
}

/* A device cache that lost one lazy commit and kept the next: the mount
 * goes on from the lost one's place, and once a new commit of the same
 * size is there, the old next one sits where the log expects its
 * successor, with the right seq.  It chains to the lost commit, not the
 * new one, so it never counts. */
static void body_crash_lazy_leftover(const char *dir)
{
	struct fs f;
	uint8_t *p0 = pattern(8 * BLK, 50), *d1 = pattern(BLK, 51), *d2 = pattern(BLK, 52), *d3 = pattern(BLK, 53);
	char *copies[2], *again[2];
	uint64_t a, p1, p2, log_offset;
	struct store *cst;

	fs_new(&f, dir);
	f.opt.commit_interval_ms = LAZY_TEST_INTERVAL_MS;
	fs_reopen(&f);
	log_offset = f.st->layout.log_offset;
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p0, 8 * BLK);
	/* A checkpoint last: a replay that finds L1 lost then applies
	 * nothing, so the mount writes no checkpoint (which would take L1's
	 * seq) and the log goes on with L1's seq at L1's place. */
	fs_reopen(&f);
	lock_when_committed(f.st, UINT64_MAX);
	p1 = f.st->log_pos;
	g_mutex_unlock(&f.st->lock);

	write_ok(f.st, a, 0, d1, BLK); /* lazy commit L1 at p1 */
	lock_when_committed(f.st, p1);
	g_assert_cmpint(f.st->lazy_since, !=, 0);
	p2 = f.st->log_pos;
	g_mutex_unlock(&f.st->lock);
	write_ok(f.st, a, 4 * BLK, d2, BLK); /* lazy commit L2 at p2 */
	lock_when_committed(f.st, p2);
	g_assert_cmpint(f.st->lazy_since, !=, 0);
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	g_mutex_unlock(&f.st->lock);
	zero_log(copies, log_offset + p1, log_offset + p2); /* L1 lost, L2 kept */

	cst = mount_paths(copies, 2);
	assert_reads(cst, a, 0, p0, 8 * BLK);
	g_assert_cmpuint(cst->log_pos, ==, p1);
	write_ok(cst, a, 0, d3, BLK);
	g_assert_cmpint(store_sync(cst), ==, 0);
	g_assert_cmpuint(cst->log_pos, ==, p2); /* the old L2 is next in line */
	g_mutex_lock(&cst->lock);
	again[0] = copy_image(copies[0], dir, "a0.img");
	again[1] = copy_image(copies[1], dir, "a1.img");
	g_mutex_unlock(&cst->lock);
	g_assert_cmpint(store_close(cst), ==, 0);

	cst = mount_paths(again, 2);
	assert_reads(cst, a, 0, d3, BLK);
	assert_reads(cst, a, BLK, p0 + BLK, 7 * BLK); /* not L2's d2 */
	g_assert_cmpint(store_close(cst), ==, 0);

	fs_free(&f);
	for (int i = 0; i < 2; i++) {
		g_free(copies[i]);
		g_free(again[i]);
	}
	g_free(p0);
	g_free(d1);
	g_free(d2);
	g_free(d3);
}

/* Two lazy commits, the second freeing the first's blocks, and a power
 * cut: the mount checks their data and applies them.  When no checkpoint
 * follows (a full metadata area), the blocks they freed are free in
 * memory at once; reused before a commit settles the two, the next
 * replay would check them again, find the first's blocks rewritten and
 * leave both out, going back to a state whose blocks are reused too.  So
 * the mount writes an ordered commit first: a power cut right after it
 * finds nothing left to check. */
static void body_crash_full_meta_mount(const char *dir)
{
	struct fs f;
	uint8_t *p1 = pattern(4 * BLK, 70), *p2 = pattern(4 * BLK, 71), *p3 = pattern(4 * BLK, 72);
	struct store_options opts = OPTS;
	char *copies[2], *again[2];
	uint64_t a, at;
	struct store *cst;

	fs_new(&f, dir);
	f.opt.commit_interval_ms = LAZY_TEST_INTERVAL_MS;
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p1, 4 * BLK);
	fs_reopen(&f); /* a checkpoint: the log starts empty */
	lock_when_committed(f.st, UINT64_MAX);
	at = f.st->log_pos;
	g_mutex_unlock(&f.st->lock);
	write_ok(f.st, a, 0, p2, 4 * BLK); /* lazy commit L1 */
	lock_when_committed(f.st, at);
	at = f.st->log_pos;
	g_mutex_unlock(&f.st->lock);
	write_ok(f.st, a, 0, p3, 4 * BLK); /* lazy commit L2 frees L1's blocks */
	lock_when_committed(f.st, at);
	g_assert_cmpint(f.st->lazy_since, !=, 0); /* neither is flushed yet */
	/* the power goes: the devices kept everything */
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	g_mutex_unlock(&f.st->lock);
	fs_free(&f);

	opts.no_mount_checkpoint = true;
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL); /* it warns that the area is full */
	cst = mount_opts(copies, 2, &opts);
	g_assert_false(cst->log_left_out);
	g_assert_cmpuint(cst->replay_checked, ==, 2);
	g_mutex_lock(&cst->lock);
	g_assert_cmpuint(cst->settled_seq, ==, cst->durable_seq);
	/* the power goes again, right after the mount */
	again[0] = copy_image(copies[0], dir, "a0.img");
	again[1] = copy_image(copies[1], dir, "a1.img");
	g_mutex_unlock(&cst->lock);
	assert_reads(cst, a, 0, p3, 4 * BLK);
	g_assert_cmpint(store_close(cst), ==, 0);

	opts.read_only = true; /* replays, writes nothing */
	cst = mount_opts(again, 2, &opts);
	g_assert_cmpuint(cst->replay_checked, ==, 0); /* the ordered commit vouches for L1 and L2 */
	assert_reads(cst, a, 0, p3, 4 * BLK);
	g_assert_cmpint(store_close(cst), ==, 0);
	for (int i = 0; i < 2; i++) {
		g_free(copies[i]);
		g_free(again[i]);
	}
	g_free(p1);
	g_free(p2);
	g_free(p3);
}

/* Where copy 0 of blocks [0, n) of ino lie, as (device, offset) pairs. */
static void locate_all(struct store *st, uint64_t ino, uint32_t n, uint32_t *dev, uint64_t *off)
{
	for (uint32_t i = 0; i < n; i++)
		locate(st, ino, i, 0, &dev[i], &off[i]);
}

static bool block_among(uint32_t dev, uint64_t off, const uint32_t *devs, const uint64_t *offs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (devs[i] == dev && offs[i] == off)
			return true;
	return false;
}

/* An fsync's unordered commit U right after a lazy commit L, nothing
 * after U: a replay after a power cut checks the data of both (U's flush
 * may not have finished).  U is answered for, but the blocks L and U
 * free must wait for a commit that settles them: reused, they would make
 * L fail its check, and U, answered for, would be left out with it.
 * Whether the committer comes in between is timing: tried until it
 * does not. */
static void body_crash_unordered_after_lazy(const char *dir)
{
	struct fs f;
	uint8_t *p1 = pattern(4 * BLK, 60), *p2 = pattern(4 * BLK, 61), *p3 = pattern(4 * BLK, 62);
	uint8_t *pb = pattern(64 * BLK, 63);
	uint32_t freed_dev[8], b_dev[64];
	uint64_t freed_off[8], b_off[64], a = 0, b, lazy_seq, synced_at;
	char *copies[2], name[16];
	struct store *cst;
	bool set_up = false;

	fs_new(&f, dir);
	f.opt.commit_interval_ms = LAZY_TEST_INTERVAL_MS;
	fs_reopen(&f);
	for (int attempt = 0; attempt < 20 && !set_up; attempt++) {
		g_snprintf(name, sizeof(name), "a%d", attempt);
		a = do_mknod(f.st, ROOT_INO, name, S_IFREG | 0644);
		write_ok(f.st, a, 0, p1, 4 * BLK);
		g_assert_cmpint(store_sync_frees(f.st), ==, 0);
		lock_when_committed(f.st, UINT64_MAX);
		synced_at = f.st->log_pos;
		g_mutex_unlock(&f.st->lock);
		locate_all(f.st, a, 4, freed_dev, freed_off);
		write_ok(f.st, a, 0, p2, 4 * BLK); /* L frees p1's blocks */
		lock_when_committed(f.st, synced_at);
		lazy_seq = f.st->next_seq - 1;
		set_up = f.st->lazy_since != 0;
		g_mutex_unlock(&f.st->lock);
		locate_all(f.st, a, 4, freed_dev + 4, freed_off + 4);
		if (!set_up)
			continue;
		write_ok(f.st, a, 0, p3, 4 * BLK); /* U frees L's */
		g_assert_cmpint(store_sync(f.st), ==, 0);
		g_mutex_lock(&f.st->lock);
		set_up = f.st->durable_seq == lazy_seq + 1 && f.st->last_unordered == f.st->durable_seq &&
			 f.st->next_seq == f.st->durable_seq + 1;
		if (set_up) /* answered for, and nothing it or L freed is free yet */
			g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 8);
		g_mutex_unlock(&f.st->lock);
	}
	g_assert_true(set_up);

	/* New data written now goes elsewhere, as long as nothing settled U */
	b = do_mknod(f.st, ROOT_INO, "b", S_IFREG | 0644);
	write_ok(f.st, b, 0, pb, 64 * BLK);
	locate_all(f.st, b, 64, b_dev, b_off);
	g_mutex_lock(&f.st->lock);
	if (f.st->settled_seq < f.st->durable_seq) /* still: it was when they were allocated */
		for (uint32_t i = 0; i < 64; i++)
			g_assert_false(block_among(b_dev[i], b_off[i], freed_dev, freed_off, 8));
	/* the power goes: the devices kept everything */
	copies[0] = copy_image(f.paths[0], dir, "c0.img");
	copies[1] = copy_image(f.paths[1], dir, "c1.img");
	g_mutex_unlock(&f.st->lock);
	cst = mount_paths(copies, 2);
	g_assert_false(cst->log_left_out);
	assert_reads(cst, a, 0, p3, 4 * BLK);
	g_assert_cmpint(store_close(cst), ==, 0);

	/* a sync that asks for the frees settles them */
	g_assert_cmpint(store_sync_frees(f.st), ==, 0);
	g_mutex_lock(&f.st->lock);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 0);
	g_mutex_unlock(&f.st->lock);
	fs_free(&f);
	for (int i = 0; i < 2; i++)
		g_free(copies[i]);
	g_free(p1);
	g_free(p2);
	g_free(p3);
	g_free(pb);
}

/* ---- partial and scattered writes ------------------------------------------------------------------ */

static void body_overwrite(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(5 * BLK, 20), *q = pattern(6000, 21), *expect = g_malloc0(5 * BLK + 10);
	uint64_t ino;
	struct iovec iov[3];
	struct stat s;

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	write_ok(f.st, ino, 0, p, 5 * BLK);
	memcpy(expect, p, 5 * BLK);
	/* inside one block: the old bytes on both sides are kept */
	write_ok(f.st, ino, 100, q, 100);
	memcpy(expect + 100, q, 100);
	assert_reads(f.st, ino, 0, expect, 5 * BLK);
	/* across three blocks, unaligned at both ends */
	write_ok(f.st, ino, 4000, q, 5000);
	memcpy(expect + 4000, q, 5000);
	assert_reads(f.st, ino, 0, expect, 5 * BLK);
	/* over the end of the file */
	write_ok(f.st, ino, 5 * BLK - 10, q + 1000, 20);
	memcpy(expect + 5 * BLK - 10, q + 1000, 20);
	s = getattr(f.st, ino);
	g_assert_cmpuint(s.st_size, ==, 5 * BLK + 10);
	g_assert_cmpuint(s.st_blocks, ==, 6 * (BLK / 512));
	assert_reads(f.st, ino, 0, expect, 5 * BLK + 10);
	/* scattered memory */
	iov[0] = (struct iovec){ q, 10 };
	iov[1] = (struct iovec){ q + 10, BLK };
	iov[2] = (struct iovec){ q + 10 + BLK, 1 };
	g_assert_cmpint(do_writev(f.st, ino, 7, iov, 3), ==, 10 + BLK + 1);
	memcpy(expect + 7, q, 10 + BLK + 1);
	assert_reads(f.st, ino, 0, expect, 5 * BLK + 10);
	/* an inside overwrite changes no size */
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 5 * BLK + 10);
	/* refused writes */
	g_assert_cmpint(do_write(f.st, ino, 1ull << 60, "x", 1), ==, -EFBIG);
	g_assert_cmpint(do_write(f.st, ino, (1ull << 60) - 1, "xy", 2), ==, -EFBIG);
	g_assert_cmpint(do_write(f.st, ROOT_INO, 0, "x", 1), ==, -EISDIR);
	g_assert_cmpint(do_write(f.st, ino, 0, "", 0), ==, 0);
	fs_reopen(&f);
	assert_reads(f.st, ino, 0, expect, 5 * BLK + 10);
	fs_free(&f);
	g_free(p);
	g_free(q);
	g_free(expect);
}

static void body_fallocate(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(3 * BLK, 22);
	uint64_t ino;
	struct stat s;

	fs_new(&f, dir);
	ino = do_mknod(f.st, ROOT_INO, "f", S_IFREG | 0644);
	g_assert_cmpint(data_fallocate(f.st, ino, 0, 0, 3 * BLK), ==, 0);
	s = getattr(f.st, ino);
	g_assert_cmpuint(s.st_size, ==, 3 * BLK);
	assert_reads_zero(f.st, ino, 0, 3 * BLK);
	g_assert_cmpint(data_fallocate(f.st, ino, FALLOC_FL_KEEP_SIZE, 0, 10 * BLK), ==, 0);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 3 * BLK);
	g_assert_cmpint(data_fallocate(f.st, ino, 0, 0, 100 * MiB), ==, -ENOSPC); /* 54 MiB in all */
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 3 * BLK);
	g_assert_cmpint(data_fallocate(f.st, ino, FALLOC_FL_PUNCH_HOLE, 0, BLK), ==, -EOPNOTSUPP);
	g_assert_cmpint(data_fallocate(f.st, ino, 0x100, 0, BLK), ==, -EOPNOTSUPP);
	g_assert_cmpint(data_fallocate(f.st, ino, 0, 0, 0), ==, -EINVAL);
	g_assert_cmpint(data_fallocate(f.st, ROOT_INO, 0, 0, BLK), ==, -EISDIR);
	/* zeroing a range inside, unaligned */
	write_ok(f.st, ino, 0, p, 3 * BLK);
	g_assert_cmpint(data_fallocate(f.st, ino, FALLOC_FL_ZERO_RANGE, 1000, 4000), ==, 0);
	assert_reads(f.st, ino, 0, p, 1000);
	assert_reads_zero(f.st, ino, 1000, 4000);
	assert_reads(f.st, ino, 5000, p + 5000, 3 * BLK - 5000);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 3 * BLK);
	/* and past the end, which grows the file */
	g_assert_cmpint(data_fallocate(f.st, ino, FALLOC_FL_ZERO_RANGE, 3 * BLK, BLK + 100), ==, 0);
	g_assert_cmpuint(getattr(f.st, ino).st_size, ==, 4 * BLK + 100);
	assert_reads_zero(f.st, ino, 3 * BLK, BLK + 100);
	fs_reopen(&f);
	assert_reads(f.st, ino, 0, p, 1000);
	assert_reads_zero(f.st, ino, 1000, 4000);
	assert_reads(f.st, ino, 5000, p + 5000, 3 * BLK - 5000);
	fs_free(&f);
	g_free(p);
}

/* ---- a leg that fails writes ------------------------------------------------------------------------- */

static int add_write_fault(struct store *st, uint32_t dev)
{
	struct dmio_fault rule = { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO,
				   .sector = st->layout.data_offset >> 9, .count = 0 };
	int id = dmio_fault_add(st->dev[dev].bdev, &rule);

	g_assert_cmpint(id, >=, 0);
	return id;
}

/* The copy of ino's chunk (holding fblock) that lies on dev. */
static uint32_t copy_on(struct store *st, uint64_t ino, uint64_t fblock, uint32_t dev)
{
	for (uint32_t k = 0; k < st->copies; k++) {
		uint32_t d;
		uint64_t off;

		locate(st, ino, fblock, k, &d, &off);
		if (d == dev)
			return k;
	}
	g_assert_not_reached();
	return 0;
}

static void body_degraded_write(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(8 * BLK, 40), *q = pattern(4 * BLK, 41);
	uint64_t a, b;
	uint32_t k;
	char *errors = NULL, *status = NULL, *want;
	struct rec_counters e;

	/* the store warns (a device failed): expected here */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	fs_new(&f, dir);
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p, 8 * BLK);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	assert_health(f.st, "healthy");

	add_write_fault(f.st, 1);
	b = do_mknod(f.st, ROOT_INO, "b", S_IFREG | 0644);
	write_ok(f.st, b, 0, q, 4 * BLK); /* one leg is enough */
	g_assert_cmpuint(f.st->dev[1].state, ==, DEV_FAILED);
	g_assert_cmpuint(f.st->dev[0].state, ==, DEV_HEALTHY);
	assert_health(f.st, "degraded");
	g_assert_cmpuint(dev_count(f.st, 1, ERR_WRITE), ==, 1);
	g_assert_cmpuint(dev_count(f.st, 0, ERR_WRITE), ==, 0);
	k = copy_on(f.st, b, 0, 1);
	g_mutex_lock(&f.st->lock);
	g_assert_nonnull(meta_inode(&f.st->meta, b)->errors);
	e = *meta_inode(&f.st->meta, b)->errors;
	g_mutex_unlock(&f.st->lock);
	g_assert_cmpuint(e.count[ERR_WRITE], ==, 1);
	g_assert_cmpuint(e.last_op, ==, 2);
	g_assert_cmphex(e.last_bits, ==, 1ull << k);
	g_assert_cmpint(inspect_xattr(f.st, b, XATTR_ERRORS, &errors), ==, 0);
	want = g_strdup_printf("last_failed copy=%u device=1 ", k);
	g_assert_nonnull(strstr(errors, "last_op=write\n"));
	g_assert_nonnull(strstr(errors, want));
	g_free(want);
	g_free(errors);
	/* everything reads right from the survivor, and keeps doing so */
	assert_reads(f.st, a, 0, p, 8 * BLK);
	assert_reads(f.st, b, 0, q, 4 * BLK);
	write_ok(f.st, a, BLK, q, BLK);
	memcpy(p + BLK, q, BLK);
	g_assert_cmpint(store_sync(f.st), ==, 0);
	dmio_fault_clear(f.st->dev[1].bdev);

	/* the failed state and the counters outlive the mount, read-only */
	f.opt.read_only = true;
	fs_reopen(&f);
	g_assert_cmpuint(f.st->dev[1].state, ==, DEV_RETURNING);
	g_assert_cmpuint(f.st->dev[1].left_at, ==, 0);
	assert_health(f.st, "degraded");
	g_assert_cmpint(inspect_xattr(f.st, ROOT_INO, XATTR_STATUS, &status), ==, 0);
	g_assert_nonnull(strstr(status, "status=degraded\n"));
	g_assert_nonnull(strstr(status, "healthy_devices=1\n"));
	g_free(status);
	g_assert_cmpuint(dev_count(f.st, 1, ERR_WRITE), ==, 1);
	assert_reads(f.st, a, 0, p, 8 * BLK);
	assert_reads(f.st, b, 0, q, 4 * BLK);
	fs_free(&f);
	g_free(p);
	g_free(q);
}

/* With three copies, one device already failed and another failing a
 * write: the file's error record must name the copy (and so the device)
 * that failed, not its position among the copies still written. */
static void body_error_bits_name_the_copy(const char *dir)
{
	struct fs f;
	uint64_t a, c;
	uint32_t dev_of[3];
	char *errors = NULL, *want;
	struct rec_counters e;

	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	fs_new_n(&f, dir, 3, 3);
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, "first", 5);
	for (uint32_t k = 0; k < 3; k++) {
		uint64_t off;

		locate(f.st, a, 0, k, &dev_of[k], &off);
	}
	/* copy 0's device fails a write and is failed */
	add_write_fault(f.st, dev_of[0]);
	write_ok(f.st, a, BLK, "second", 6);
	g_assert_cmpuint(f.st->dev[dev_of[0]].state, ==, DEV_FAILED);
	/* then copy 2's device fails one, in the same chunk */
	add_write_fault(f.st, dev_of[2]);
	c = do_mknod(f.st, ROOT_INO, "c", S_IFREG | 0644);
	write_ok(f.st, c, 0, "third", 5);
	g_assert_cmpuint(f.st->dev[dev_of[2]].state, ==, DEV_FAILED);
	g_assert_cmpuint(f.st->dev[dev_of[1]].state, ==, DEV_HEALTHY);
	g_assert_cmpuint(copy_on(f.st, c, 0, dev_of[2]), ==, 2);
	g_mutex_lock(&f.st->lock);
	e = *meta_inode(&f.st->meta, c)->errors;
	g_mutex_unlock(&f.st->lock);
	g_assert_cmpuint(e.last_op, ==, 2);
	g_assert_cmpint(inspect_xattr(f.st, c, XATTR_ERRORS, &errors), ==, 0);
	if (e.last_bits != 1u << 2)
		g_printerr("# errors of the file:\n%s", errors);
	want = g_strdup_printf("last_failed copy=2 device=%u ", dev_of[2]);
	g_assert_cmphex(e.last_bits, ==, 1u << 2);
	g_assert_nonnull(strstr(errors, want));
	g_free(want);
	g_free(errors);
	assert_reads(f.st, c, 0, "third", 5);
	dmio_fault_clear(f.st->dev[dev_of[0]].bdev);
	dmio_fault_clear(f.st->dev[dev_of[2]].bdev);
	fs_free(&f);
}


/* Filling the file system: ENOSPC, no change from a refused write, and
 * space let go of is found again (the write waits for the commit that
 * frees it). */
static void body_enospc(const char *dir)
{
	struct fs f;
	uint8_t *mb = pattern(MiB, 50);
	uint64_t big, small, other, usable;
	uint64_t written = 0;
	ssize_t r = 0;

	fs_new(&f, dir);
	/* every chunk of both devices, but the reserve */
	usable = 54 * MiB - f.st->alloc.reserve * BLK;
	g_assert_cmpuint(f.st->alloc.reserve, >, 0);
	g_assert_cmpuint(avail_blocks(f.st), ==, usable / BLK);
	big = do_mknod(f.st, ROOT_INO, "big", S_IFREG | 0644);
	for (int i = 0; i < 100; i++) {
		r = do_write(f.st, big, written, mb, MiB);
		if (r != (ssize_t)MiB)
			break;
		written += MiB;
	}
	g_assert_cmpint(r, ==, -ENOSPC);
	g_assert_cmpuint(written, ==, usable / MiB * MiB);
	while ((r = do_write(f.st, big, written, mb, BLK)) == (ssize_t)BLK) /* the last blocks one by one */
		written += BLK;
	g_assert_cmpint(r, ==, -ENOSPC);
	g_assert_cmpuint(written, ==, usable);
	g_assert_cmpuint(avail_blocks(f.st), ==, 0);
	g_assert_cmpuint(getattr(f.st, big).st_size, ==, usable);
	small = do_mknod(f.st, ROOT_INO, "small", S_IFREG | 0644);
	g_assert_cmpint(do_write(f.st, small, 0, "x", 1), ==, -ENOSPC);
	g_assert_cmpuint(getattr(f.st, small).st_size, ==, 0);
	/* an overwrite needs new blocks too (copy-on-write) */
	g_assert_cmpint(do_write(f.st, big, 0, mb, BLK), ==, -ENOSPC);
	assert_reads(f.st, big, 52 * MiB, mb, MiB);

	/* give back half of it; the next write waits for the commit */
	g_assert_cmpint(data_truncate(f.st, big, 27 * MiB), ==, 0);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, (usable - 27 * MiB) / BLK);
	other = do_mknod(f.st, ROOT_INO, "other", S_IFREG | 0644);
	write_ok(f.st, other, 0, mb, MiB);
	g_assert_cmpuint(f.st->alloc.pending_blocks, ==, 0);
	assert_reads(f.st, other, 0, mb, MiB);
	assert_reads(f.st, big, 26 * MiB, mb, MiB);
	/* a write larger than the space left: refused whole (the space stays
	 * free), or short (what it says it wrote is there) */
	{
		uint64_t before = avail_blocks(f.st);
		uint8_t *huge = g_malloc(40 * MiB);

		g_assert_cmpuint(before, ==, (usable - 28 * MiB) / BLK);
		memset(huge, 0x5C, 40 * MiB);
		r = do_write(f.st, small, 0, huge, 40 * MiB);
		if (r < 0) {
			g_assert_cmpint(r, ==, -ENOSPC);
			g_assert_cmpuint(avail_blocks(f.st), ==, before);
			g_assert_cmpuint(getattr(f.st, small).st_size, ==, 0);
		} else {
			g_assert_cmpint(r, >, 0);
			g_assert_cmpint(r, <=, (ssize_t)(usable - 28 * MiB));
			g_assert_cmpuint(getattr(f.st, small).st_size, ==, (uint64_t)r);
			assert_reads(f.st, small, 0, huge, (size_t)r);
			g_assert_cmpint(data_truncate(f.st, small, 0), ==, 0);
			g_assert_cmpint(store_sync(f.st), ==, 0);
		}
		g_free(huge);
	}
	fs_reopen(&f);
	g_assert_cmpuint(avail_blocks(f.st), ==, (usable - 28 * MiB) / BLK);
	assert_reads(f.st, other, 0, mb, MiB);
	fs_free(&f);
	g_free(mb);
}

/* ---- the day a disk fails: missing, returning, split, scrub ---------------------------- */

/* Wait (a bounded while) for the background worker to make st healthy. */
static void wait_healthy(struct store *st)
{
	for (int i = 0; i < 1000; i++) {
		struct fs_status s;
		bool healthy;

		store_status(st, &s);
		healthy = !s.degraded;
		fs_status_clear(&s);
		if (healthy)
			return;
		g_usleep(10000);
	}
	assert_health(st, "healthy");
}

/* Mount with device `away` left out (its path names no file). */
static void mount_without(struct fs *f, uint32_t away)
{
	char *kept = f->paths[away];

	f->paths[away] = g_strconcat(kept, ".away", NULL);
	f->st = mount_opts(f->paths, f->n, &f->opt);
	g_free(f->paths[away]);
	f->paths[away] = kept;
}

/* A device missing at mount: the file system mounts degraded, writes go
 * to the device present and what the other missed is recorded block by
 * block; back again, it is caught up on exactly that, and then holds
 * everything alone. */
static void body_missing_then_back(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(16 * BLK, 61), *q = pattern(8 * BLK, 62);
	uint64_t a, b;

	/* A device missing, a split brain, a bad copy: warnings are expected. */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

	fs_new(&f, dir);
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p, 16 * BLK);
	fs_close(&f);

	mount_without(&f, 1);
	g_assert_cmpuint(f.st->dev[1].state, ==, DEV_MISSING);
	g_assert_null(f.st->dev[1].bdev);
	assert_health(f.st, "degraded");
	assert_reads(f.st, a, 0, p, 16 * BLK);
	b = do_mknod(f.st, ROOT_INO, "b", S_IFREG | 0644);
	write_ok(f.st, b, 0, q, 8 * BLK);
	write_ok(f.st, a, 3 * BLK, q, 2 * BLK);
	memcpy(p + 3 * BLK, q, 2 * BLK);
	/* the ten blocks written while it was away, and nothing else */
	g_assert_cmpuint(f.st->alloc.dev_stale[1], ==, 10);
	fs_close(&f);

	f.st = mount_opts(f.paths, f.n, &f.opt);
	wait_healthy(f.st);
	g_assert_cmpuint(f.st->dev[1].state, ==, DEV_HEALTHY);
	g_assert_cmpuint(f.st->alloc.dev_stale[1], ==, 0);
	fs_close(&f);

	/* device 1 alone holds everything now */
	mount_without(&f, 0);
	assert_reads(f.st, a, 0, p, 16 * BLK);
	assert_reads(f.st, b, 0, q, 8 * BLK);
	fs_free(&f);
	g_free(p);
	g_free(q);
}

/* Two parts each written alone are refused together, whatever is given
 * first; -o keep chooses one part's history, and the other is rewritten. */
static void body_split_brain(const char *dir)
{
	struct fs f;
	GString *why = g_string_new(NULL);
	struct store *st = NULL;
	uint64_t x, y;

	/* A device missing, a split brain, a bad copy: warnings are expected. */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

	fs_new(&f, dir);
	fs_close(&f);
	mount_without(&f, 1);
	x = do_mknod(f.st, ROOT_INO, "x", S_IFREG | 0644);
	write_ok(f.st, x, 0, "only on device 0", 16);
	fs_close(&f);
	mount_without(&f, 0);
	y = do_mknod(f.st, ROOT_INO, "y", S_IFREG | 0644);
	write_ok(f.st, y, 0, "only on device 1", 16);
	fs_close(&f);

	g_assert_cmpint(store_open((const char *const *)f.paths, 2, &f.opt, &st, why), ==, -EUCLEAN);
	g_assert_nonnull(strstr(why->str, "split brain"));
	g_assert_nonnull(strstr(why->str, f.paths[0]));
	g_assert_nonnull(strstr(why->str, f.paths[1]));
	g_string_free(why, TRUE);

	f.opt.keep = f.paths[1];
	f.st = mount_opts(f.paths, f.n, &f.opt);
	wait_healthy(f.st);
	g_mutex_lock(&f.st->lock);
	g_assert_nonnull(meta_inode(&f.st->meta, y));
	g_mutex_unlock(&f.st->lock);
	assert_reads(f.st, y, 0, "only on device 1", 16);
	fs_close(&f);
	f.opt.keep = NULL;
	mount_without(&f, 1);
	assert_reads(f.st, y, 0, "only on device 1", 16);
	fs_free(&f);
	(void)x;
}

/* Wait for the scrub to finish. */
static void wait_scrubbed(struct store *st)
{
	for (int i = 0; i < 1000; i++) {
		uint32_t state;

		g_mutex_lock(&st->lock);
		state = st->scrub.state;
		g_mutex_unlock(&st->lock);
		if (state == SCRUB_IDLE)
			return;
		g_usleep(10000);
	}
	g_assert_cmpuint(st->scrub.state, ==, SCRUB_IDLE);
}

/* A scrub reads every copy: a block rotten on one is found, counted on
 * its device and its file, made good, and a second scrub finds nothing. */
static void body_scrub(const char *dir)
{
	struct fs f;
	uint8_t *p = pattern(300 * BLK, 63), junk[BLK];
	GString *why = g_string_new(NULL);
	uint64_t a, off;
	uint32_t dev;
	int fd;

	/* A device missing, a split brain, a bad copy: warnings are expected. */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

	fs_new(&f, dir);
	a = do_mknod(f.st, ROOT_INO, "a", S_IFREG | 0644);
	write_ok(f.st, a, 0, p, 300 * BLK);
	locate(f.st, a, 290, 1, &dev, &off);
	fs_close(&f);
	memset(junk, 0x5a, sizeof(junk));
	fd = open(f.paths[dev], O_WRONLY | O_CLOEXEC);
	g_assert_cmpint(pwrite(fd, junk, BLK, (off_t)off), ==, BLK);
	close(fd);

	f.st = mount_opts(f.paths, f.n, &f.opt);
	/* a scrub crawling at a byte a second (after its first piece of
	 * two) is still running when asked to start again; a cancel stops it */
	g_assert_cmpint(scrub_control(f.st, "start", 1, why), ==, 0);
	g_assert_cmpint(scrub_control(f.st, "start", 0, why), ==, -EALREADY);
	g_assert_cmpint(scrub_control(f.st, "cancel", 0, why), ==, 0);
	g_assert_cmpuint(f.st->scrub.result, ==, SCRUB_CANCELLED);
	g_assert_cmpint(scrub_control(f.st, "start", 0, why), ==, 0);
	wait_scrubbed(f.st);
	g_assert_cmpuint(f.st->scrub.result, ==, SCRUB_FINISHED);
	g_assert_cmpuint(f.st->scrub.found, ==, 1);
	g_assert_cmpuint(f.st->scrub.fixed, ==, 1);
	g_assert_cmpuint(f.st->scrub.unfixed, ==, 0);
	g_assert_cmpuint(f.st->scrub.checked, ==, 2 * 300 * BLK);
	g_assert_cmpuint(dev_count(f.st, dev, ERR_CSUM), ==, 1);
	g_assert_cmpuint(dev_count(f.st, dev, ERR_REPAIRED), ==, 1);
	g_assert_cmpuint(dev_count(f.st, 1 - dev, ERR_CSUM), ==, 0);
	g_assert_cmpint(scrub_control(f.st, "start", 0, why), ==, 0);
	wait_scrubbed(f.st);
	g_assert_cmpuint(f.st->scrub.found, ==, 0);
	g_assert_cmpint(scrub_control(f.st, "pause", 0, why), ==, -EINVAL);
	fs_close(&f);
	/* the copy on the device that rotted is good again by itself */
	mount_without(&f, 1 - dev);
	assert_reads(f.st, a, 0, p, 300 * BLK);
	fs_free(&f);
	g_string_free(why, TRUE);
	g_free(p);
}

/* ---- main ---------------------------------------------------------------------------------------------------- */

#define CASE(path, fn) tu_add_guarded("/store-fs/" path, fn, 60)

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	CASE("persist", body_persist);
	CASE("names", body_names);
	CASE("crash/synced-changes", body_crash);
	CASE("crash/log-wrap", body_crash_log_wrap);
	CASE("crash/freed-blocks-wait-for-commit", body_crash_freed_blocks);
	CASE("crash/lazy-commit", body_crash_lazy_commit);
	CASE("crash/lazy-leftover", body_crash_lazy_leftover);
	CASE("crash/unordered-after-lazy", body_crash_unordered_after_lazy);
	CASE("crash/full-meta-mount", body_crash_full_meta_mount);
	CASE("write/partial-and-scattered", body_overwrite);
	CASE("fallocate", body_fallocate);
	CASE("write/enospc", body_enospc);
	CASE("rename", body_rename);
	CASE("unlink-open", body_unlink_open);
	CASE("truncate/zero-tail", body_truncate);
	CASE("truncate/beyond-16TiB", body_truncate_far);
	CASE("seek", body_seek);
	CASE("checksum/repair", body_checksum_repair);
	CASE("checksum/both-copies-different-blocks", body_checksum_both_copies);
	CASE("degraded/write-fails-on-one-leg", body_degraded_write);
	CASE("degraded/error-bits-name-the-copy", body_error_bits_name_the_copy);
	CASE("degraded/missing-then-back", body_missing_then_back);
	CASE("degraded/split-brain", body_split_brain);
	CASE("scrub/finds-and-repairs", body_scrub);
	return g_test_run();
}
