/* evloop.c - the FUSE session served by an event loop: the completion
 * thread of the store's data client (dm_io_client_watch(3)) reads the
 * requests from /dev/fuse itself, starts reads and writes, reaps their
 * I/O and answers them.  Under load it goes from one request or
 * completion to the next without sleeping, where libfuse's worker threads
 * cost two thread switches a request: one to wake the worker that reads
 * it, one to wake the completion thread that answers it.
 *
 * A request that may wait for the data's I/O (truncation, fallocate,
 * open with O_TRUNC, and the control xattrs) must not run on that thread,
 * nor may anything that can wait long: those go to a pool of threads,
 * each with its own copy of the request. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "../store/data.h"
#include "evloop.h"

#define BATCH 16 /* requests served before completions are reaped again */

struct evloop {
	struct fuse_session *se;
	GThreadPool *pool;
	struct fuse_buf buf; /* the loop's own, reused */
	GMutex lock;
	GCond ended_cond;
	bool ended;
};

/* Requests that only touch memory, or start I/O and answer from its
 * completion (FSYNC waits for the log through its own client). */
static bool served_inline(const struct fuse_in_header *in, size_t len)
{
	switch (in->opcode) {
	case FUSE_READ:
	case FUSE_WRITE:
	case FUSE_LOOKUP:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_GETATTR:
	case FUSE_READLINK:
	case FUSE_MKNOD:
	case FUSE_MKDIR:
	case FUSE_SYMLINK:
	case FUSE_LINK:
	case FUSE_UNLINK:
	case FUSE_RMDIR:
	case FUSE_RENAME:
	case FUSE_RENAME2:
	case FUSE_CREATE:
	case FUSE_FLUSH:
	case FUSE_RELEASE:
	case FUSE_FSYNC:
	case FUSE_OPENDIR:
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
	case FUSE_RELEASEDIR:
	case FUSE_FSYNCDIR:
	case FUSE_STATFS:
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
		return true;
	case FUSE_OPEN: /* truncating is writing */
		return len >= sizeof(*in) + sizeof(struct fuse_open_in) &&
		       !(((const struct fuse_open_in *)(in + 1))->flags & O_TRUNC);
	default:
		return false;
	}
}

static void serve_in_pool(gpointer data, gpointer user_data)
{
	struct evloop *l = user_data;
	struct fuse_buf *b = data;

	fuse_session_process_buf(l->se, b);
	g_free(b->mem);
	g_free(b);
}

static void end(struct evloop *l)
{
	g_mutex_lock(&l->lock);
	l->ended = true;
	g_cond_signal(&l->ended_cond);
	g_mutex_unlock(&l->lock);
}

/* On the data's completion thread, whenever /dev/fuse is readable: serve
 * a batch of requests.  Non-zero once the session is over. */
static int serve_requests(void *ctx)
{
	struct evloop *l = ctx;

	for (int i = 0; i < BATCH; i++) {
		int res = fuse_session_receive_buf(l->se, &l->buf);
		struct fuse_buf *copy;

		if (res == -EAGAIN || res == -EINTR)
			return 0;
		if (res <= 0 || fuse_session_exited(l->se)) { /* unmounted (0), or a signal */
			if (res < 0)
				g_warning("reading FUSE requests: %s", g_strerror(-res));
			end(l);
			return 1;
		}
		if (served_inline(l->buf.mem, (size_t)res)) {
			fuse_session_process_buf(l->se, &l->buf);
			continue;
		}
		copy = g_new0(struct fuse_buf, 1);
		copy->size = (size_t)res;
		copy->mem = g_memdup2(l->buf.mem, (size_t)res);
		g_thread_pool_push(l->pool, copy, NULL);
	}
	return 0;
}

int evloop_run(struct dmiofs *fs, unsigned int max_threads)
{
	struct evloop l = { .se = fs->se };
	int fd = fuse_session_fd(fs->se), flags = fcntl(fd, F_GETFL);
	int err;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	g_mutex_init(&l.lock);
	g_cond_init(&l.ended_cond);
	l.pool = g_thread_pool_new(serve_in_pool, &l, (gint)max_threads, FALSE, NULL);
	err = data_serve_fd(fs->st, fd, serve_requests, &l);
	if (!err) {
		/* The loop ends by itself at unmount; a signal only marks the
		 * session exited, which is looked at here. */
		g_mutex_lock(&l.lock);
		while (!l.ended && !fuse_session_exited(fs->se))
			g_cond_wait_until(&l.ended_cond, &l.lock, g_get_monotonic_time() + G_TIME_SPAN_SECOND / 10);
		g_mutex_unlock(&l.lock);
		data_serve_fd(fs->st, -1, NULL, NULL);
	}
	g_thread_pool_free(l.pool, FALSE, TRUE);
	free(l.buf.mem); /* libfuse's malloc */
	g_cond_clear(&l.ended_cond);
	g_mutex_clear(&l.lock);
	return err;
}
