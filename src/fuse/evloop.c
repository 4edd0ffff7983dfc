/* evloop.c - the FUSE session served by an event loop: the completion
 * thread of the store's data client (dm_io_client_watch(3)) reads the
 * requests from /dev/fuse itself, starts reads and writes, reaps their
 * I/O and answers them.  Under load it goes from one request or
 * completion to the next without sleeping, where libfuse's worker threads
 * cost two thread switches a request: one to wake the worker that reads
 * it, one to wake the completion thread that answers it.
 *
 * With several loops (-o event_loops=N), each is the completion thread of
 * a data client of its own (a lane, data_serve_fd): all wait on the one
 * descriptor, the kernel wakes one idle loop per request, and the I/O a
 * loop starts completes on it.
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

/* What the loops share. */
struct evloops {
	struct fuse_session *se;
	GThreadPool *pool;
	GMutex lock;
	GCond ended_cond;
	unsigned int running; /* loops not yet ended */
};

struct evloop {
	struct evloops *all;
	struct fuse_buf buf; /* the loop's own, reused */
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
	struct evloops *all = user_data;
	struct fuse_buf *b = data;

	fuse_session_process_buf(all->se, b);
	g_free(b->mem);
	g_free(b);
}

static void end(struct evloops *all)
{
	g_mutex_lock(&all->lock);
	all->running--;
	g_cond_signal(&all->ended_cond);
	g_mutex_unlock(&all->lock);
}

/* On the data's completion thread, whenever /dev/fuse is readable: serve
 * a batch of requests.  Non-zero once the session is over. */
static int serve_requests(void *ctx)
{
	struct evloop *l = ctx;
	struct fuse_session *se = l->all->se;

	for (int i = 0; i < BATCH; i++) {
		int res = fuse_session_receive_buf(se, &l->buf);
		struct fuse_buf *copy;

		if (res == -EAGAIN || res == -EINTR)
			return 0;
		if (res <= 0 || fuse_session_exited(se)) { /* unmounted (0 or ENODEV), or a signal */
			if (res < 0 && res != -ENODEV)
				g_warning("reading FUSE requests: %s", g_strerror(-res));
			end(l->all);
			return 1;
		}
		if (served_inline(l->buf.mem, (size_t)res)) {
			fuse_session_process_buf(se, &l->buf);
			continue;
		}
		copy = g_new0(struct fuse_buf, 1);
		copy->size = (size_t)res;
		copy->mem = g_memdup2(l->buf.mem, (size_t)res);
		g_thread_pool_push(l->all->pool, copy, NULL);
	}
	return 0;
}

int evloop_run(struct dmiofs *fs, unsigned int nloops, unsigned int max_threads)
{
	struct evloops all = { .se = fs->se };
	struct evloop *loops = g_new0(struct evloop, nloops);
	int fd = fuse_session_fd(fs->se), flags = fcntl(fd, F_GETFL);
	unsigned int started = 0;
	int err = 0;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		g_free(loops);
		return -errno;
	}
	g_mutex_init(&all.lock);
	g_cond_init(&all.ended_cond);
	all.pool = g_thread_pool_new(serve_in_pool, &all, (gint)max_threads, FALSE, NULL);
	/* Every loop waits on the one descriptor; the kernel wakes one that
	 * is idle for each request.  If one cannot start, all stop. */
	all.running = nloops;
	for (; started < nloops; started++) {
		loops[started].all = &all;
		err = data_serve_fd(fs->st, started, fd, serve_requests, &loops[started]);
		if (err)
			break;
	}
	/* The loops end by themselves at unmount; a signal only marks the
	 * session exited, which is looked at here. */
	g_mutex_lock(&all.lock);
	while (!err && all.running == nloops && !fuse_session_exited(fs->se))
		g_cond_wait_until(&all.ended_cond, &all.lock, g_get_monotonic_time() + G_TIME_SPAN_SECOND / 10);
	g_mutex_unlock(&all.lock);
	for (unsigned int i = 0; i < started; i++)
		data_serve_fd(fs->st, i, -1, NULL, NULL);
	g_thread_pool_free(all.pool, FALSE, TRUE);
	for (unsigned int i = 0; i < nloops; i++)
		free(loops[i].buf.mem); /* libfuse's malloc */
	g_free(loops);
	g_cond_clear(&all.ended_cond);
	g_mutex_clear(&all.lock);
	return err;
}
