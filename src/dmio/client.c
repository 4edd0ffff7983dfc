/* client.c - a dm-io client: the pools its requests draw on, its libaio
 * context and the completion thread that reaps it.
 *
 * Every resource a request needs on the I/O path (request object, pieces,
 * bounce pages) is taken from pools filled when the client is created or
 * resized.  When a pool runs dry the request is parked on the client's wait
 * queue instead of blocking, and the completion thread resumes it as pieces
 * come back: submission never waits on the completion side, so callbacks may
 * submit new I/O. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define RING_SIZE 512  /* aio events per client; pieces never exceed it */
#define MIN_PAGES 64   /* bounce pages: 256 KiB */
#define MIN_PIECES 128
#define MIN_IOS 128
#define REAP_BATCH 64

static __thread const struct dm_io_client *completion_client;

bool client_on_completion_thread(const struct dm_io_client *client)
{
	return completion_client == client;
}

void client_wake(struct dm_io_client *client)
{
	uint64_t one = 1;

	/* The counter only says "look": a failed write means it is already
	 * non-zero, and the thread will look anyway. */
	if (write(client->efd, &one, sizeof(one)) < 0)
		return;
}

/* ---- pools -------------------------------------------------------------- */

struct pool_targets {
	unsigned int pages, pieces, ios;
};

static struct pool_targets targets_for(unsigned int num_pages)
{
	struct pool_targets t = {
		.pages = num_pages > MIN_PAGES ? num_pages : MIN_PAGES,
		.pieces = MIN_PIECES + num_pages / 8,
		.ios = MIN_IOS + num_pages / 8,
	};

	if (t.pieces > RING_SIZE)
		t.pieces = RING_SIZE;
	return t;
}

/* Grow one pool to target: allocate (and fault in) outside the lock, so
 * I/O goes on meanwhile, then hand the objects over under it. */
static int grow_pool(struct dm_io_client *client, struct obj_pool *pool, unsigned int target)
{
	unsigned int missing, made;
	void *chain;

	pthread_mutex_lock(&client->lock);
	missing = pool->total < target ? target - pool->total : 0;
	pthread_mutex_unlock(&client->lock);
	chain = missing ? pool_alloc_chain(pool, missing, &made) : NULL;
	pthread_mutex_lock(&client->lock);
	pool_adopt_chain(pool, chain);
	pthread_mutex_unlock(&client->lock);
	return missing && made < missing ? -ENOMEM : 0;
}

static int size_pools(struct dm_io_client *client, unsigned int num_pages)
{
	struct pool_targets t = targets_for(num_pages);
	int err = grow_pool(client, &client->pages, t.pages);

	if (!err)
		err = grow_pool(client, &client->pieces, t.pieces);
	if (!err)
		err = grow_pool(client, &client->ios, t.ios);
	/* Set the targets, trimming any surplus: objects in use go back
	 * to the heap as they return. */
	pthread_mutex_lock(&client->lock);
	pool_set_target(&client->pages, t.pages);
	pool_set_target(&client->pieces, t.pieces);
	pool_set_target(&client->ios, t.ios);
	pthread_mutex_unlock(&client->lock);
	return err;
}

struct dmio_io *client_get_io(struct dm_io_client *client)
{
	struct dmio_io *io;

	pthread_mutex_lock(&client->lock);
	while (!(io = pool_get(&client->ios))) {
		if (client_on_completion_thread(client)) {
			/* Waiting here would stop the completions that free
			 * request objects: borrow one from the heap instead. */
			io = calloc(1, sizeof(*io));
			if (!io) {
				pthread_mutex_unlock(&client->lock);
				return NULL;
			}
			io->from_heap = true;
			break;
		}
		pthread_cond_wait(&client->io_freed, &client->lock);
	}
	client->active_ios++;
	pthread_mutex_unlock(&client->lock);
	return io;
}

void client_put_io(struct dm_io_client *client, struct dmio_io *io)
{
	pthread_mutex_lock(&client->lock);
	if (io->from_heap) {
		free(io);
	} else {
		io->from_heap = false;
		pool_put(&client->ios, io);
	}
	if (--client->active_ios == 0)
		pthread_cond_broadcast(&client->idle);
	pthread_cond_signal(&client->io_freed);
	pthread_mutex_unlock(&client->lock);
}

struct dmio_piece *client_get_piece(struct dm_io_client *client)
{
	struct dmio_piece *piece;

	pthread_mutex_lock(&client->lock);
	piece = pool_get(&client->pieces);
	pthread_mutex_unlock(&client->lock);
	return piece;
}

unsigned int client_get_bounce(struct dm_io_client *client, struct dmio_piece *piece, unsigned int want)
{
	unsigned int n = 0;

	pthread_mutex_lock(&client->lock);
	for (; n < want; n++) {
		void *page = pool_get(&client->pages);

		if (!page)
			break;
		piece->iov[n].iov_base = page;
	}
	pthread_mutex_unlock(&client->lock);
	piece->nbounce = n;
	return n;
}

void client_put_piece(struct dm_io_client *client, struct dmio_piece *piece)
{
	pthread_mutex_lock(&client->lock);
	for (unsigned int i = 0; i < piece->nbounce; i++)
		pool_put(&client->pages, piece->iov[i].iov_base);
	piece->nbounce = 0;
	pool_put(&client->pieces, piece);
	pthread_mutex_unlock(&client->lock);
}

/* ---- the wait queue ----------------------------------------------------- */

static void waitq_add(struct dm_io_client *client, struct dmio_io *io, bool at_head)
{
	if (at_head) {
		io->next = client->waitq_head;
		client->waitq_head = io;
		if (!client->waitq_tail)
			client->waitq_tail = io;
		return;
	}
	io->next = NULL;
	if (client->waitq_tail)
		client->waitq_tail->next = io;
	else
		client->waitq_head = io;
	client->waitq_tail = io;
}

static struct dmio_io *waitq_pop(struct dm_io_client *client)
{
	struct dmio_io *io = client->waitq_head;

	if (io) {
		client->waitq_head = io->next;
		if (!client->waitq_head)
			client->waitq_tail = NULL;
	}
	return io;
}

/* Park io unless what it lacks came back meanwhile.  Returns true when
 * parked: the completion thread owns it from then on. */
bool client_wait_for_resources(struct dm_io_client *client, struct dmio_io *io, bool at_head, bool need_pages)
{
	bool parked = false;

	pthread_mutex_lock(&client->lock);
	if (!client->pieces.nfree || (need_pages && !client->pages.nfree)) {
		waitq_add(client, io, at_head);
		parked = true;
	}
	pthread_mutex_unlock(&client->lock);
	return parked;
}

/* A new request queues behind parked ones, so none starves. */
bool client_queue_behind_waiters(struct dm_io_client *client, struct dmio_io *io)
{
	bool parked = false;

	pthread_mutex_lock(&client->lock);
	if (client->waitq_head) {
		waitq_add(client, io, false);
		parked = true;
	}
	pthread_mutex_unlock(&client->lock);
	if (parked)
		client_wake(client);
	return parked;
}

static void pump_waiters(struct dm_io_client *client)
{
	for (;;) {
		struct dmio_io *io;
		bool stuck;

		pthread_mutex_lock(&client->lock);
		io = client->pieces.nfree ? waitq_pop(client) : NULL;
		pthread_mutex_unlock(&client->lock);
		if (!io)
			return;
		io_pump(io, true);
		pthread_mutex_lock(&client->lock);
		stuck = client->waitq_head == io;
		pthread_mutex_unlock(&client->lock);
		if (stuck)
			return;
	}
}

/* ---- pieces finished off the ring: injected results, worker jobs -------- */

void client_push_done(struct dm_io_client *client, struct dmio_piece *piece)
{
	piece->next = NULL;
	pthread_mutex_lock(&client->lock);
	if (client->done_tail)
		client->done_tail->next = piece;
	else
		client->done_head = piece;
	client->done_tail = piece;
	pthread_mutex_unlock(&client->lock);
	client_wake(client);
}

static void drain_done(struct dm_io_client *client)
{
	struct dmio_piece *piece;

	pthread_mutex_lock(&client->lock);
	piece = client->done_head;
	client->done_head = client->done_tail = NULL;
	pthread_mutex_unlock(&client->lock);
	while (piece) {
		struct dmio_piece *next = piece->next;

		piece_complete(piece);
		piece = next;
	}
}

static void worker_main(gpointer data, gpointer user_data)
{
	struct dmio_piece *piece = data;

	piece_run_sync(piece);
	client_push_done(user_data, piece);
}

void client_run_worker(struct dm_io_client *client, struct dmio_piece *piece)
{
	GThreadPool *worker;

	pthread_mutex_lock(&client->lock);
	if (!client->worker)
		client->worker = g_thread_pool_new(worker_main, client, 4, FALSE, NULL);
	worker = client->worker;
	pthread_mutex_unlock(&client->lock);
	g_thread_pool_push(worker, piece, NULL);
}

/* ---- injected delays (completion thread only) ---------------------------- */

static gint by_due(gconstpointer a, gconstpointer b, gpointer unused)
{
	const struct dmio_piece *pa = a, *pb = b;

	(void)unused;
	return pa->due_us < pb->due_us ? -1 : pa->due_us > pb->due_us;
}

void client_delay_piece(struct dm_io_client *client, struct dmio_piece *piece)
{
	piece->delayed = true;
	piece->due_us = g_get_monotonic_time() + (gint64)piece->fault.delay_ms * 1000;
	g_queue_insert_sorted(&client->delayed, piece, by_due, NULL);
}

static void run_due_delays(struct dm_io_client *client)
{
	gint64 now = g_get_monotonic_time();
	struct dmio_piece *piece;

	while ((piece = g_queue_peek_head(&client->delayed)) && piece->due_us <= now) {
		g_queue_pop_head(&client->delayed);
		piece_complete(piece);
	}
}

/* ---- the completion thread ---------------------------------------------- */

/* Watch new_fd instead of the one watched now (-1: none), under
 * watch_lock or on the completion thread.  The descriptor joins the
 * client's epoll set with EPOLLEXCLUSIVE: when several clients watch one
 * descriptor, each event wakes one of those waiting, not all of them. */
static int watch_replace(struct dm_io_client *client, int new_fd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	if (client->watch_fd >= 0)
		epoll_ctl(client->epfd, EPOLL_CTL_DEL, client->watch_fd, NULL); /* may be closed: no matter */
	client->watch_fd = -1;
	if (new_fd < 0)
		return 0;
	if (client->epfd < 0) {
		client->epfd = epoll_create1(EPOLL_CLOEXEC);
		ev.data.fd = client->efd;
		if (client->epfd < 0 || epoll_ctl(client->epfd, EPOLL_CTL_ADD, client->efd, &ev) < 0) {
			int err = -errno;

			if (client->epfd >= 0)
				close(client->epfd);
			client->epfd = -1;
			return err;
		}
	}
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.fd = new_fd;
	if (epoll_ctl(client->epfd, EPOLL_CTL_ADD, new_fd, &ev) < 0)
		return -errno;
	client->watch_fd = new_fd;
	return 0;
}

/* Call the watcher, unless it stopped meanwhile; it stops for good when
 * it says so. */
static void serve_watched(struct dm_io_client *client, int fd)
{
	pthread_mutex_lock(&client->watch_lock);
	client->plugged = true;
	if (client->watch_fd == fd && client->watch_fn(client->watch_ctx))
		watch_replace(client, -1);
	client->plugged = false;
	io_unplug(client);
	pthread_mutex_unlock(&client->watch_lock);
}

/* Sleep until the ring or a wake-up has news, the first injected delay
 * is due, or the watched descriptor is readable (which is served here).
 * False when only the watched descriptor woke it: nothing to reap. */
static bool wait_for_events(struct dm_io_client *client)
{
	struct dmio_piece *next = g_queue_peek_head(&client->delayed);
	struct epoll_event ev[2];
	int timeout = -1, n, watched;
	bool news = false;
	uint64_t count;

	pthread_mutex_lock(&client->watch_lock);
	watched = client->watch_fd;
	pthread_mutex_unlock(&client->watch_lock);
	if (next) {
		gint64 wait_us = next->due_us - g_get_monotonic_time();

		if (wait_us <= 0)
			return true;
		timeout = (int)((wait_us + 999) / 1000);
	}
	if (watched < 0) {
		struct pollfd pfd = { .fd = client->efd, .events = POLLIN };

		if (next && poll(&pfd, 1, timeout) <= 0)
			return true; /* a delay is due (or a signal): look at everything */
		/* the common case: one blocking read */
		while (read(client->efd, &count, sizeof(count)) < 0 && errno == EINTR)
			;
		return true;
	}
	n = epoll_wait(client->epfd, ev, 2, timeout);
	if (n <= 0)
		return true; /* a delay is due (or a signal): look at everything */
	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd != client->efd) {
			serve_watched(client, ev[i].data.fd);
			continue;
		}
		news = true;
		while (read(client->efd, &count, sizeof(count)) < 0 && errno == EINTR)
			;
	}
	return news;
}

static void reap_ring(struct dm_io_client *client)
{
	struct io_event events[REAP_BATCH];
	struct timespec no_wait = { 0, 0 };
	int n;

	do {
		n = io_getevents(client->ctx, 0, REAP_BATCH, events, &no_wait);
		for (int i = 0; i < n; i++) {
			struct dmio_piece *piece = events[i].data;

			piece->res = (long)events[i].res;
			piece_complete(piece);
		}
	} while (n == REAP_BATCH || n == -EINTR);
}

static bool finished(struct dm_io_client *client)
{
	bool done;

	pthread_mutex_lock(&client->lock);
	done = client->stopping && client->active_ios == 0;
	pthread_mutex_unlock(&client->lock);
	return done;
}

static void *completion_main(void *arg)
{
	struct dm_io_client *client = arg;

	completion_client = client;
	while (!finished(client)) {
		if (!wait_for_events(client))
			continue;
		reap_ring(client);
		drain_done(client);
		run_due_delays(client);
		pump_waiters(client);
	}
	return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

static void client_free(struct dm_io_client *client)
{
	unsigned int leaked = pool_destroy(&client->pieces) + pool_destroy(&client->pages) +
			      pool_destroy(&client->ios);

	if (leaked)
		dmio_log(DMIO_LOG_ERR, "client destroyed with %u objects still in use", leaked);
	if (client->epfd >= 0)
		close(client->epfd);
	if (client->efd >= 0)
		close(client->efd);
	pthread_cond_destroy(&client->idle);
	pthread_cond_destroy(&client->io_freed);
	pthread_mutex_destroy(&client->watch_lock);
	pthread_mutex_destroy(&client->lock);
	free(client);
}

DMIO_EXPORT struct dm_io_client *dm_io_client_create(unsigned int num_pages)
{
	struct dm_io_client *client = calloc(1, sizeof(*client));
	int err;

	if (!client) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&client->lock, NULL);
	pthread_cond_init(&client->io_freed, NULL);
	pthread_cond_init(&client->idle, NULL);
	pool_init(&client->pieces, sizeof(struct dmio_piece), 64);
	pool_init(&client->pages, DMIO_PAGE_SIZE, DMIO_PAGE_SIZE);
	pool_init(&client->ios, sizeof(struct dmio_io), 64);
	g_queue_init(&client->delayed);
	pthread_mutex_init(&client->watch_lock, NULL);
	client->watch_fd = -1;
	client->epfd = -1;
	client->efd = eventfd(0, EFD_CLOEXEC);
	err = client->efd < 0 ? -errno : size_pools(client, num_pages);
	if (!err) {
		client->ring_size = RING_SIZE;
		err = io_setup(RING_SIZE, &client->ctx);
		if (err == -EAGAIN)
			dmio_log(DMIO_LOG_ERR, "io_setup: the system's aio limit (fs.aio-max-nr) is used up");
	}
	if (!err) {
		err = -pthread_create(&client->thread, NULL, completion_main, client);
		if (err)
			io_destroy(client->ctx);
	}
	if (err) {
		client_free(client);
		errno = -err;
		return NULL;
	}
	return client;
}

DMIO_EXPORT int dm_io_client_resize(unsigned int num_pages, struct dm_io_client *client)
{
	int err;

	if (!client)
		return -EINVAL;
	err = size_pools(client, num_pages);
	client_wake(client); /* parked requests may fit now */
	return err;
}

DMIO_EXPORT int dm_io_client_watch(struct dm_io_client *client, int fd, dm_io_watch_fn fn, void *context)
{
	bool own_thread;
	int err;

	if (!client || (fd >= 0 && !fn))
		return -EINVAL;
	/* From the completion thread (fn itself, or a callback) the lock may
	 * be ours already, and no fn can be running elsewhere. */
	own_thread = client_on_completion_thread(client);
	if (!own_thread)
		pthread_mutex_lock(&client->watch_lock);
	err = watch_replace(client, fd);
	client->watch_fn = client->watch_fd >= 0 ? fn : NULL;
	client->watch_ctx = client->watch_fd >= 0 ? context : NULL;
	if (!own_thread)
		pthread_mutex_unlock(&client->watch_lock);
	client_wake(client); /* wait on the new descriptor, or stop waiting on the old */
	return err;
}

DMIO_EXPORT void dm_io_client_destroy(struct dm_io_client *client)
{
	if (!client)
		return;
	if (client_on_completion_thread(client)) {
		dmio_log(DMIO_LOG_ERR, "dm_io_client_destroy called from its own completion callback: refused");
		return;
	}
	pthread_mutex_lock(&client->lock);
	client->stopping = true;
	while (client->active_ios)
		pthread_cond_wait(&client->idle, &client->lock);
	pthread_mutex_unlock(&client->lock);
	client_wake(client);
	pthread_join(client->thread, NULL);
	if (client->worker)
		g_thread_pool_free(client->worker, FALSE, TRUE);
	io_destroy(client->ctx);
	client_free(client);
}
