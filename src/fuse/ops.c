/* ops.c - FUSE low-level operations.  Metadata operations run in the
 * worker thread that received them; reads, writes and fsync are answered
 * from libdmio's completion callback (or the log committer), so no thread
 * waits for a disk. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../store/data.h"
#include "../store/fsops.h"
#include "../store/inspect.h"
#include "../store/journal.h"
#include "control.h"
#include "dmiofs.h"

static struct dmiofs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct caller caller_of(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return (struct caller){ .uid = ctx->uid, .gid = ctx->gid, .umask = ctx->umask };
}

/* What open and create keep in a file handle: the opener's uid (low 32
 * bits), and how its writes are answered. */
#define FH_DIRECT (1ull << 32)      /* FOPEN_DIRECT_IO: the kernel vets nothing */
#define FH_SYNC_WRITES (1ull << 33) /* ... nor syncs: O_SYNC or O_DSYNC is ours */

/* Who writes: the caller, except that the kernel's writeback cache sends
 * the pages it flushes as root (uid 0), whoever wrote them; for those,
 * the opener of the file.  Through a direct handle the kernel neither
 * asks for security.capability nor clears set-user-ID bits before a
 * write: the store clears them for a writer other than root. */
static struct caller writer_of(fuse_req_t req, const struct fuse_file_info *fi)
{
	struct caller who = caller_of(req);

	if (fi->writepage)
		who.uid = (uint32_t)fi->fh;
	else if ((fi->fh & FH_DIRECT) && who.uid != 0)
		who.clears_setid = true;
	return who;
}

static void reply_entry(fuse_req_t req, int err, const struct stat *st)
{
	struct dmiofs *fs = fs_of(req);
	struct fuse_entry_param e;

	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st->st_ino;
	e.attr = *st;
	e.attr_timeout = fs->timeout;
	e.entry_timeout = fs->timeout;
	/* An interrupted request never gives the kernel the lookup we
	 * counted for it: take it back, or the inode would never be freed. */
	if (fuse_reply_entry(req, &e) == -ENOENT)
		fs_forget(fs->st, st->st_ino, 1);
}

static void reply_attr(fuse_req_t req, int err, const struct stat *st)
{
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, st, fs_of(req)->timeout);
}

/* ---- session ------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct dmiofs *fs = userdata;

	conn->want |= FUSE_CAP_ASYNC_READ;
	if (fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		fs->writeback = false;
	/* Whole-megabyte requests: one dm-io request per chunk run. */
	conn->max_write = 1u << 20;
	/* Asynchronous requests (readahead, direct I/O from io_submit) the
	 * kernel keeps in flight; past it, the submitter waits. */
	conn->max_background = fs->max_background;
	conn->max_readahead = 1u << 20;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* Without it the kernel sends O_TRUNC as a SETATTR that also clears
	 * the set-user-ID and set-group-ID bits of a non-root opener. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

/* ---- names ---------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dmiofs *fs = fs_of(req);
	struct stat st;
	int err = fs_lookup(fs->st, parent, name, &st);

	if (err == -ENOENT) { /* we are the only writer: absence may be cached too */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = fs->timeout };

		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, err, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_forget(fs_of(req)->st, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fs_forget(fs_of(req)->st, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	reply_attr(req, fs_getattr(fs_of(req)->st, ino, &st), &st);
}

static unsigned int setattr_flags(int to_set)
{
	unsigned int f = 0;

	if (to_set & FUSE_SET_ATTR_MODE)
		f |= SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID)
		f |= SET_UID;
	if (to_set & FUSE_SET_ATTR_GID)
		f |= SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE)
		f |= SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME)
		f |= SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME)
		f |= SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		f |= SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		f |= SET_MTIME_NOW;
	if (to_set & FUSE_SET_ATTR_CTIME)
		f |= SET_CTIME;
	return f;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	reply_attr(req, fs_setattr(fs_of(req)->st, ino, attr, setattr_flags(to_set), &st), &st);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target = NULL;
	int err = fs_readlink(fs_of(req)->st, ino, &target);

	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_readlink(req, target);
	g_free(target);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct caller who = caller_of(req);
	struct stat st;

	reply_entry(req, fs_mknod(fs_of(req)->st, parent, name, mode, rdev, &who, &st), &st);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct caller who = caller_of(req);
	struct stat st;

	reply_entry(req, fs_mkdir(fs_of(req)->st, parent, name, mode, &who, &st), &st);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct caller who = caller_of(req);
	struct stat st;

	reply_entry(req, fs_symlink(fs_of(req)->st, parent, name, link, &who, &st), &st);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct stat st;

	reply_entry(req, fs_link(fs_of(req)->st, ino, newparent, newname, &st), &st);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -fs_unlink(fs_of(req)->st, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -fs_rmdir(fs_of(req)->st, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	unsigned int f = 0;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		f |= FS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		f |= FS_RENAME_EXCHANGE;
	fuse_reply_err(req, -fs_rename(fs_of(req)->st, parent, name, newparent, newname, f));
}

/* ---- files ----------------------------------------------------------------- */

/* O_DIRECT opens get FOPEN_DIRECT_IO.  The kernel's other direct path
 * asks for the file's security.capability xattr before every write (FUSE
 * cannot promise the kernel that xattrs stay unchanged), a round trip
 * that fio's io_submit waits for: it halved small random writes.  What
 * that path did for us is done here instead: set-user-ID bits are cleared
 * by the store (writer_of), and O_SYNC/O_DSYNC writes are answered once
 * committed (write_with_follow_up).  The kernel drops the cached pages a
 * direct write overlaps, so buffered readers stay coherent; a shared mapping of an
 * O_DIRECT descriptor is refused (ENODEV), as on every FUSE file system
 * with direct handles.  The page cache is kept across opens: nobody else
 * changes the data under us.  No FLUSH on close: written data is on its
 * devices already (the writeback cache, where on, is written back before
 * close regardless). */
static void setup_open(fuse_req_t req, struct fuse_file_info *fi)
{
	fi->fh = fuse_req_ctx(req)->uid; /* see writer_of */
	fi->direct_io = (fi->flags & O_DIRECT) != 0;
	if (fi->direct_io) {
		fi->fh |= FH_DIRECT;
		if (fi->flags & (O_SYNC | O_DSYNC))
			fi->fh |= FH_SYNC_WRITES;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dmiofs *fs = fs_of(req);
	/* op_init turns atomic O_TRUNC off, so the kernel truncates with a
	 * SETATTR first; should a kernel send O_TRUNC here anyway, honour it. */
	int err = fs_open(fs->st, ino, (fi->flags & O_TRUNC) != 0);

	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	setup_open(req, fi);
	if (fuse_reply_open(req, fi) == -ENOENT) /* interrupted: the kernel will not release it */
		fs_release(fs->st, ino);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct dmiofs *fs = fs_of(req);
	struct caller who = caller_of(req);
	struct fuse_entry_param e;
	int err = fs_mknod(fs->st, parent, name, S_IFREG | (mode & 07777), 0, &who, &e.attr);

	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	err = fs_open(fs->st, e.attr.st_ino, false);
	if (err) {
		fs_forget(fs->st, e.attr.st_ino, 1); /* the lookup fs_mknod counted */
		fuse_reply_err(req, -err);
		return;
	}
	e.ino = e.attr.st_ino;
	e.generation = 0;
	e.attr_timeout = e.entry_timeout = fs->timeout;
	setup_open(req, fi);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		fs_release(fs->st, e.ino);
		fs_forget(fs->st, e.ino, 1);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	fs_release(fs_of(req)->st, ino);
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0); /* written data is on its devices already */
}

static void read_done(void *ctx, int err, const char *buf, size_t len)
{
	fuse_req_t req = ctx;
	struct dmiofs *fs = fs_of(req);

	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, buf, len);
	atomic_fetch_sub(&fs->inflight, 1);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dmiofs *fs = fs_of(req);

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	atomic_fetch_add(&fs->inflight, 1);
	data_read(fs->st, ino, (uint64_t)off, size, read_done, req);
}

static void write_done(void *ctx, ssize_t result)
{
	fuse_req_t req = ctx;
	struct dmiofs *fs = fs_of(req);

	if (result < 0)
		fuse_reply_err(req, (int)-result);
	else
		fuse_reply_write(req, (size_t)result);
	atomic_fetch_sub(&fs->inflight, 1);
}

/* A write through a direct handle with more to do after the data is
 * down: commit it (O_SYNC, O_DSYNC), or drop the kernel's cached mode
 * when the write cleared set-user-ID bits. */
struct write_follow_up {
	fuse_req_t req;
	uint64_t ino;
	ssize_t result;
	bool sync, setid;
};

static void follow_up_synced(int err, void *ctx)
{
	struct write_follow_up *w = ctx;

	write_done(w->req, err ? err : w->result);
	g_free(w);
}

static void follow_up_written(void *ctx, ssize_t result)
{
	struct write_follow_up *w = ctx;
	struct dmiofs *fs = fs_of(w->req);

	if (w->setid && result >= 0)
		fuse_lowlevel_notify_inval_inode(fs->se, w->ino, -1, 0); /* attributes only */
	if (w->sync && result >= 0) {
		w->result = result;
		store_sync_async(fs->st, follow_up_synced, w);
		return;
	}
	write_done(w->req, result);
	g_free(w);
}

static void write_with_follow_up(fuse_req_t req, fuse_ino_t ino, off_t off, const struct iovec *iov, size_t n,
				 const struct caller *who, bool sync)
{
	struct dmiofs *fs = fs_of(req);
	struct write_follow_up *w = g_new0(struct write_follow_up, 1);
	struct stat attr;

	w->req = req;
	w->ino = ino;
	w->sync = sync;
	w->setid = who->clears_setid && !fs_getattr(fs->st, ino, &attr) &&
		   mode_without_setid(attr.st_mode) != attr.st_mode;
	data_write_as(fs->st, who, ino, (uint64_t)off, iov, (int)n, follow_up_written, w);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	struct dmiofs *fs = fs_of(req);
	struct caller who = writer_of(req, fi);
	struct iovec small[8], *iov = small;
	size_t n = 0;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (bufv->count - bufv->idx > G_N_ELEMENTS(small))
		iov = g_new(struct iovec, bufv->count - bufv->idx);
	for (size_t i = bufv->idx; i < bufv->count; i++) {
		const struct fuse_buf *b = &bufv->buf[i];
		size_t skip = i == bufv->idx ? bufv->off : 0;

		if (b->flags & FUSE_BUF_IS_FD) { /* splice is off: memory only */
			if (iov != small)
				g_free(iov);
			fuse_reply_err(req, EIO);
			return;
		}
		iov[n].iov_base = (char *)b->mem + skip;
		iov[n].iov_len = b->size - skip;
		n++;
	}
	atomic_fetch_add(&fs->inflight, 1);
	/* data_write_as copies the bytes before it returns */
	if ((fi->fh & FH_SYNC_WRITES) || who.clears_setid)
		write_with_follow_up(req, ino, off, iov, n, &who, (fi->fh & FH_SYNC_WRITES) != 0);
	else
		data_write_as(fs->st, &who, ino, (uint64_t)off, iov, (int)n, write_done, req);
	if (iov != small)
		g_free(iov);
}

static void sync_done(int err, void *ctx)
{
	fuse_req_t req = ctx;
	struct dmiofs *fs = fs_of(req);

	fuse_reply_err(req, -err);
	atomic_fetch_sub(&fs->inflight, 1);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct dmiofs *fs = fs_of(req);

	(void)ino;
	(void)datasync; /* data is durable once written: only the log remains */
	(void)fi;
	atomic_fetch_add(&fs->inflight, 1);
	store_sync_async(fs->st, sync_done, req);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct caller who = caller_of(req);

	(void)fi;
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_err(req, -data_fallocate_as(fs_of(req)->st, &who, ino, mode, (uint64_t)off, (uint64_t)len));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	uint64_t out = 0;
	int err;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	err = data_seek(fs_of(req)->st, ino, (uint64_t)off, whence, &out);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_lseek(req, (off_t)out);
}

/* ---- directories ------------------------------------------------------------ */

/* An open directory: its listing, taken at opendir and again when read
 * from the start (rewinddir shows the directory as it is now), so offsets
 * stay stable between. */
struct dir_handle {
	struct dir_listing *listing;
	bool read; /* a readdir has used this listing */
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = g_new0(struct dir_handle, 1);
	int err = fs_opendir(fs_of(req)->st, ino, &d->listing);

	if (err) {
		g_free(d);
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		fs_dir_listing_free(d->listing);
		g_free(d);
	}
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct dir_listing *l, *fresh = NULL;
	char *buf;
	size_t used = 0;

	/* The kernel serialises readdir on one open directory. */
	if (off <= 0 && d->read && !fs_opendir(fs_of(req)->st, ino, &fresh)) {
		fs_dir_listing_free(d->listing);
		d->listing = fresh;
	}
	d->read = true;
	l = d->listing;
	buf = g_malloc(size);
	for (uint32_t i = off < 0 ? 0 : (uint32_t)off; i < l->n; i++) {
		struct stat st = { .st_ino = l->e[i].ino, .st_mode = l->e[i].type };
		size_t need = fuse_add_direntry(req, buf + used, size - used, l->e[i].name, &st, (off_t)i + 1);

		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	g_free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)ino;
	fs_dir_listing_free(d->listing);
	g_free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	op_fsync(req, ino, datasync, fi);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	fs_statfs(fs_of(req)->st, &sv);
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ------------------------------------------------------------------- */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
			int flags)
{
	fuse_reply_err(req, -fs_setxattr(fs_of(req)->st, ino, name, value, size, flags));
}

static void reply_xattr_value(fuse_req_t req, const void *value, size_t len, size_t size)
{
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct dmiofs *fs = fs_of(req);
	ssize_t len;

	if (ino == FUSE_ROOT_ID && !strcmp(name, XATTR_CONTROL) && fs->control) {
		const char *path = control_path(fs->control);

		reply_xattr_value(req, path, strlen(path), size);
		return;
	}
	if (inspect_is_virtual(name)) {
		char *text = NULL;
		int err = inspect_xattr(fs->st, ino, name, &text);

		if (err)
			fuse_reply_err(req, -err);
		else
			reply_xattr_value(req, text, strlen(text), size);
		g_free(text);
		return;
	}
	len = fs_getxattr(fs->st, ino, name, NULL, 0);
	if (len < 0) {
		fuse_reply_err(req, (int)-len);
	} else if (!size) {
		fuse_reply_xattr(req, (size_t)len);
	} else {
		char *buf = g_malloc(size);

		len = fs_getxattr(fs->st, ino, name, buf, size);
		if (len < 0)
			fuse_reply_err(req, (int)-len);
		else
			fuse_reply_buf(req, buf, (size_t)len);
		g_free(buf);
	}
}

/* Drop trusted.* names from a list for callers who may not read them,
 * as local file systems do.  Returns the new length. */
static size_t hide_trusted(char *list, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t n = strnlen(list + in, len - in) + 1;

		if (strncmp(list + in, "trusted.", 8)) {
			memmove(list + out, list + in, n);
			out += n;
		}
		in += n;
	}
	return out;
}

/* The virtual names are not listed, so cp -a and rsync -X leave them. */
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct dmiofs *fs = fs_of(req);
	bool privileged = fuse_req_ctx(req)->uid == 0;
	ssize_t len = fs_listxattr(fs->st, ino, NULL, 0);
	char *buf;

	if (len < 0) {
		fuse_reply_err(req, (int)-len);
		return;
	}
	buf = g_malloc((size_t)len + 1);
	len = fs_listxattr(fs->st, ino, buf, (size_t)len + 1);
	if (len < 0) {
		fuse_reply_err(req, (int)-len);
	} else {
		size_t shown = privileged ? (size_t)len : hide_trusted(buf, (size_t)len);

		if (!size)
			fuse_reply_xattr(req, shown);
		else if (size < shown)
			fuse_reply_err(req, ERANGE);
		else
			fuse_reply_buf(req, buf, shown);
	}
	g_free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -fs_removexattr(fs_of(req)->st, ino, name));
}

const struct fuse_lowlevel_ops dmiofs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};

void dmiofs_drain(struct dmiofs *fs)
{
	while (atomic_load(&fs->inflight))
		g_usleep(1000);
}
