/* testutil.c - see testutil.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

char *tu_tmpdir_new(void)
{
	GError *error = NULL;
	char *dir = g_dir_make_tmp("dmio-test-XXXXXX", &error);

	g_assert_no_error(error);
	return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_tmpdir_free(char *dir)
{
	if (dir)
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	g_free(dir);
}

char *tu_image_new(const char *dir, const char *name, uint64_t bytes, int fill)
{
	char *path = g_build_filename(dir, name, NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char buf[65536];

	g_assert_cmpint(fd, >=, 0);
	memset(buf, fill, sizeof(buf));
	for (uint64_t off = 0; off < bytes; off += sizeof(buf)) {
		size_t len = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);

		g_assert_cmpint(pwrite(fd, buf, len, (off_t)off), ==, (ssize_t)len);
	}
	g_assert_cmpint(fsync(fd), ==, 0);
	close(fd);
	return path;
}

void tu_pattern(void *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)(x >> 24);
	}
}

void tu_raw_read(const char *path, uint64_t offset, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(pread(fd, buf, len, (off_t)offset), ==, (ssize_t)len);
	close(fd);
}

void tu_raw_write(const char *path, uint64_t offset, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(pwrite(fd, buf, len, (off_t)offset), ==, (ssize_t)len);
	g_assert_cmpint(fsync(fd), ==, 0);
	close(fd);
}

void *tu_aligned(size_t len)
{
	void *p = NULL;

	g_assert_cmpint(posix_memalign(&p, DMIO_PAGE_SIZE, len), ==, 0);
	return p;
}

void tu_assert_image_holds(const char *path, uint64_t offset, const void *want, size_t len)
{
	void *got = g_malloc(len);

	tu_raw_read(path, offset, got, len);
	g_assert_cmpmem(got, len, want, len);
	g_free(got);
}

void tu_assert_image_filled(const char *path, uint64_t offset, int byte, size_t len)
{
	void *want = g_malloc(len);

	memset(want, byte, len);
	tu_assert_image_holds(path, offset, want, len);
	g_free(want);
}

void tu_assert_bytes(const void *mem, int byte, size_t len)
{
	const unsigned char *p = mem;

	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)byte)
			g_assert_cmpuint(i, ==, len); /* names the first differing byte */
}

struct page_list *tu_page_list_new(unsigned int pages)
{
	struct page_list *head = NULL, **tail = &head;

	while (pages--) {
		struct page_list *pl = g_new0(struct page_list, 1);

		pl->page = dmio_page_alloc();
		g_assert_nonnull(pl->page);
		memset(dmio_page_address(pl->page), 0xEE, DMIO_PAGE_SIZE);
		*tail = pl;
		tail = &pl->next;
	}
	return head;
}

void tu_devices_open(struct tu_devices *d, const char *dir, const char *prefix, unsigned int n, uint64_t bytes,
		     int fill)
{
	g_assert_cmpuint(n, <=, TU_MAX_DEVICES);
	d->n = n;
	for (unsigned int i = 0; i < n; i++) {
		char *name = g_strdup_printf("%s%u.img", prefix, i);

		d->path[i] = tu_image_new(dir, name, bytes, fill);
		d->bdev[i] = dmio_bdev_open(d->path[i], O_RDWR);
		g_assert_nonnull(d->bdev[i]);
		g_free(name);
	}
}

void tu_devices_close(struct tu_devices *d)
{
	for (unsigned int i = 0; i < d->n; i++) {
		dmio_fault_clear(d->bdev[i]);
		dmio_bdev_close(d->bdev[i]);
		g_free(d->path[i]);
	}
	d->n = 0;
}

struct dm_io_memory tu_kmem(void *p)
{
	return (struct dm_io_memory){ .type = DM_IO_KMEM, .ptr.addr = p };
}

struct dm_io_memory tu_vma(void *p)
{
	return (struct dm_io_memory){ .type = DM_IO_VMA, .ptr.vma = p };
}

int tu_io_sync(struct dm_io_client *client, int op, unsigned int flags, struct dm_io_memory mem, unsigned int n,
	       struct io_region *where, unsigned long *bits)
{
	struct dm_io_request req = { .bi_op = op, .bi_op_flags = flags, .mem = mem, .client = client };

	return dm_io(&req, n, where, bits);
}

int tu_io_async(struct dm_io_client *client, int op, unsigned int flags, struct dm_io_memory mem, unsigned int n,
		struct io_region *where, io_notify_fn fn, void *context)
{
	struct dm_io_request req = {
		.bi_op = op,
		.bi_op_flags = flags,
		.mem = mem,
		.notify = { .fn = fn, .context = context },
		.client = client,
	};

	return dm_io(&req, n, where, NULL);
}

struct dmio_bdev_stats tu_stats_since(struct block_device *bdev, const struct dmio_bdev_stats *before)
{
	struct dmio_bdev_stats now, d;

	dmio_bdev_get_stats(bdev, &now);
	d.reads = now.reads - before->reads;
	d.writes = now.writes - before->writes;
	d.flushes = now.flushes - before->flushes;
	d.discards = now.discards - before->discards;
	d.read_bytes = now.read_bytes - before->read_bytes;
	d.write_bytes = now.write_bytes - before->write_bytes;
	d.errors = now.errors - before->errors;
	d.inflight = now.inflight;
	return d;
}

void tu_page_list_free(struct page_list *pl)
{
	while (pl) {
		struct page_list *next = pl->next;

		dmio_page_free(pl->page);
		g_free(pl);
		pl = next;
	}
}

struct guarded {
	tu_body_fn body;
	void (*body_nodir)(void);
	unsigned int timeout_s;
};

#define TU_DIR_ENV "DMIOFS_TEST_DIR"

static void run_guarded(gconstpointer data)
{
	const struct guarded *g = data;
	char *dir;

	if (g_test_subprocess()) {
		if (g->body)
			g->body(g_getenv(TU_DIR_ENV));
		else
			g->body_nodir();
		return;
	}
	dir = tu_tmpdir_new();
	g_setenv(TU_DIR_ENV, dir, TRUE);
	g_test_trap_subprocess(NULL, (guint64)g->timeout_s * G_USEC_PER_SEC,
			       G_TEST_SUBPROCESS_INHERIT_STDOUT | G_TEST_SUBPROCESS_INHERIT_STDERR);
	g_unsetenv(TU_DIR_ENV);
	tu_tmpdir_free(dir);
	if (!g_test_trap_has_passed()) {
		g_test_message("the test's child process failed or timed out: see its messages above");
		g_test_fail();
	}
}

void tu_add_guarded(const char *path, tu_body_fn body, unsigned int timeout_s)
{
	struct guarded *g = g_new0(struct guarded, 1);

	g->body = body;
	g->timeout_s = timeout_s;
	g_test_add_data_func_full(path, g, run_guarded, g_free);
}

void tu_add_guarded_nodir(const char *path, void (*body)(void), unsigned int timeout_s)
{
	struct guarded *g = g_new0(struct guarded, 1);

	g->body_nodir = body;
	g->timeout_s = timeout_s;
	g_test_add_data_func_full(path, g, run_guarded, g_free);
}

void tu_waiter_init(struct tu_waiter *w)
{
	memset(w, 0, sizeof(*w));
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
}

void tu_waiter_clear(struct tu_waiter *w)
{
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
}

void tu_waiter_notify(unsigned long error, void *context)
{
	struct tu_waiter *w = context;

	g_mutex_lock(&w->lock);
	w->calls++;
	w->bits = error;
	w->all_bits |= error;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
}

void tu_waiter_wait(struct tu_waiter *w, unsigned int calls)
{
	gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;

	g_mutex_lock(&w->lock);
	while (w->calls < calls)
		if (!g_cond_wait_until(&w->cond, &w->lock, deadline))
			break;
	g_assert_cmpuint(w->calls, >=, calls);
	g_mutex_unlock(&w->lock);
}

/* ---- nbdkit servers ------------------------------------------------------- */

void tu_nbd_start(struct tu_nbd *s, const char *dir, const char *name, const char *const *plugin_args)
{
	char *sock_name = g_strdup_printf("%s.sock", name), *pid_name = g_strdup_printf("%s.pid", name);
	char *pidfile = g_build_filename(dir, pid_name, NULL);
	GPtrArray *argv = g_ptr_array_new();
	GError *error = NULL;
	gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

	s->socket = g_build_filename(dir, sock_name, NULL);
	s->uri = g_strdup_printf("nbd+unix:///?socket=%s", s->socket);
	unlink(pidfile);
	unlink(s->socket); /* a killed server's socket file stays */
	g_ptr_array_add(argv, "nbdkit");
	g_ptr_array_add(argv, "-f");
	g_ptr_array_add(argv, "--exit-with-parent");
	g_ptr_array_add(argv, "-U");
	g_ptr_array_add(argv, s->socket);
	g_ptr_array_add(argv, "-P");
	g_ptr_array_add(argv, pidfile);
	for (unsigned int i = 0; plugin_args[i]; i++)
		g_ptr_array_add(argv, (char *)plugin_args[i]);
	g_ptr_array_add(argv, NULL);
	if (!g_spawn_async(NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL,
			   NULL, &s->pid, &error))
		g_error("cannot start nbdkit (apt-get install nbdkit): %s", error->message);
	/* nbdkit writes its pid file once the socket listens. */
	while (!g_file_test(pidfile, G_FILE_TEST_EXISTS)) {
		g_assert_cmpint(waitpid(s->pid, NULL, WNOHANG), ==, 0); /* it did not die */
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		g_usleep(5000);
	}
	g_ptr_array_free(argv, TRUE);
	g_free(pidfile);
	g_free(pid_name);
	g_free(sock_name);
}

void tu_nbd_stop(struct tu_nbd *s, int sig)
{
	if (s->pid > 0) {
		kill(s->pid, sig);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	g_free(s->socket);
	g_free(s->uri);
	s->socket = s->uri = NULL;
}
