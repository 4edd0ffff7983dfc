/* remote.c - devices that are NBD exports, opened through libnbd.
 *
 * A URI names the export (nbd://host[:port]/export, nbd+unix:///export?
 * socket=PATH, and their TLS forms nbds:// and nbds+unix://).  The server
 * says how big the export is, its block sizes, and what it can do (flush,
 * FUA, trim, write-zeroes, several connections); that decides how pieces
 * are sent.  libnbd takes one buffer per command, so a piece becomes one
 * NBD command per memory segment (or per REMOTE_CHUNK of a trim or
 * write-zeroes), and completes when the last of them is answered, through
 * the client's done queue like a worker job.  Region error bits, fault
 * injection and the write log work on a remote device as on a local one:
 * they sit above this file.
 *
 * libnbd runs no thread of its own.  Commands are sent by the thread that
 * submits them (the handle's lock serialises senders); each device has one
 * driver thread that polls its connections and hands libnbd what the
 * sockets have to say, which is where replies arrive.  The driver is woken
 * only when a command could not go out whole.  A connection that drops
 * fails the commands in flight on it, and the device's other connections
 * are shut down with it; later commands fail.  dmio_bdev_reconnect() makes new
 * connections once all are dead, to the same export: same size, same
 * block size, still writable. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define REMOTE_MAX_CONNS 4           /* connections when the server allows multi-conn */
#define REMOTE_MAX_REQUEST (1u << 20) /* largest read or write command, unless the server says less */
#define REMOTE_CHUNK (1u << 30)      /* largest trim or write-zeroes command */
#define ZERO_BUF_BYTES (1u << 20)    /* write-zeroes by writing, for servers without it */

struct remote {
	char *uri;
	int access;
	/* conn[] and nconns: senders and the driver hold it to read, a
	 * reconnect to swap them (lock order: this, then libnbd's). */
	pthread_rwlock_t lock;
	pthread_mutex_t reconnect_lock; /* one reconnect at a time */
	atomic_uint epoch;     /* changed at every swap: the driver's poll set is stale */
	struct nbd_handle *conn[REMOTE_MAX_CONNS];
	unsigned int nconns;
	atomic_uint next_conn; /* round robin over the connections, per piece */
	bool can_flush, can_fua, can_trim, can_zero;
	int wake_fd;           /* eventfd: a command waits to go out, or stop */
	atomic_uint timeout_s; /* a connection with commands unanswered this long is dropped (0: never) */
	atomic_bool stopping;
	bool driver_started;
	pthread_t driver;
};

static const char *const uri_schemes[] = {
	"nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://", "nbds+vsock://",
};

bool remote_is_uri(const char *path)
{
	for (size_t i = 0; i < G_N_ELEMENTS(uri_schemes); i++)
		if (g_str_has_prefix(path, uri_schemes[i]))
			return true;
	return false;
}

/* ---- connecting ----------------------------------------------------------- */

/* A secret may be read only when nobody but its owner can read it (as ssh
 * has it): 0, or -EACCES having said what to do. */
static int check_secret(const char *uri, const char *path)
{
	struct stat st;

	if (stat(path, &st)) {
		int err = errno;

		dmio_log(DMIO_LOG_ERR, "%s: the key file %s: %s", uri, path, strerror(err));
		return -err;
	}
	if (st.st_mode & 077) {
		dmio_log(DMIO_LOG_ERR, "%s: the key file %s can be read by others (mode %04o): refused; chmod 600 %s",
			 uri, path, (unsigned int)(st.st_mode & 07777), path);
		return -EACCES;
	}
	return 0;
}

/* The secrets a URI's query names: tls-psk-file=FILE, and the client key
 * in tls-certificates=DIR.  libnbd reads them only when allowed to, and
 * is allowed to once they pass. */
static int check_key_files(const char *uri)
{
	const char *query = strchr(uri, '?');
	char **params;
	int err = 0;

	if (!query)
		return 0;
	params = g_strsplit(query + 1, "&", -1);
	for (char **p = params; *p && !err; p++) {
		char *value = strchr(*p, '='), *path;

		if (!value)
			continue;
		path = g_uri_unescape_string(value + 1, NULL);
		if (!path)
			continue;
		if (g_str_has_prefix(*p, "tls-psk-file=")) {
			err = check_secret(uri, path);
		} else if (g_str_has_prefix(*p, "tls-certificates=")) {
			char *key = g_build_filename(path, "client-key.pem", NULL);

			if (g_file_test(key, G_FILE_TEST_EXISTS))
				err = check_secret(uri, key);
			g_free(key);
		}
		g_free(path);
	}
	g_strfreev(params);
	return err;
}

/* Drive a connection and its handshake to the end, or give up after
 * timeout_s (0: wait as long as TCP does): a host that does not answer
 * would otherwise hold the caller for TCP's minutes. */
static int finish_connecting(struct nbd_handle *h, const char *uri, unsigned int timeout_s)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;

	while (nbd_aio_is_connecting(h) == 1) {
		gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;

		if (timeout_s && left_ms <= 0) {
			dmio_log(DMIO_LOG_ERR, "%s: no answer within %u s", uri, timeout_s);
			return -ETIMEDOUT;
		}
		if (nbd_poll(h, timeout_s ? (int)MIN(left_ms, 1000) : -1) == -1)
			break;
	}
	return nbd_aio_is_ready(h) == 1 ? 0 : -EIO;
}

static int connect_one(const char *uri, unsigned int timeout_s, struct nbd_handle **out)
{
	struct nbd_handle *h;
	int err = check_key_files(uri);

	if (err)
		return err;
	h = nbd_create();
	if (!h)
		return -ENOMEM;
	/* The URI refuses to fall back to plain text when it asks for TLS
	 * (nbds://).  libnbd reads the key files the URI names only when
	 * allowed: check_key_files has vetted them. */
	nbd_set_uri_allow_local_file(h, true);
	err = nbd_aio_connect_uri(h, uri) == -1 ? -EIO : finish_connecting(h, uri, timeout_s);
	if (!err) {
		*out = h;
		return 0;
	}
	if (err == -EIO) {
		err = nbd_get_errno() ? -nbd_get_errno() : -EIO;
		dmio_log(DMIO_LOG_ERR, "%s: %s", uri, nbd_get_error());
	}
	nbd_close(h);
	return err;
}

static bool is_power_of_two(int64_t x)
{
	return x > 0 && !(x & (x - 1));
}

/* Size, block sizes and limits as the first connection's server gives them. */
static int learn_export(struct block_device *bdev, struct remote *r, const char *uri, int access)
{
	struct nbd_handle *h = r->conn[0];
	int64_t size = nbd_get_size(h);
	int64_t min_block = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	int64_t max_block = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	uint64_t max_request = REMOTE_MAX_REQUEST;

	if (size < 0 || min_block < 0 || max_block < 0) {
		dmio_log(DMIO_LOG_ERR, "%s: %s", uri, nbd_get_error());
		return -EIO;
	}
	if (access == O_RDWR && nbd_is_read_only(h) == 1) {
		dmio_log(DMIO_LOG_ERR, "%s: the server exports it read-only", uri);
		return -EROFS;
	}
	if (min_block > DMIO_PAGE_SIZE || (min_block && !is_power_of_two(min_block))) {
		dmio_log(DMIO_LOG_ERR, "%s: the server's minimum block size %lld is not supported (at most %u)", uri,
			 (long long)min_block, DMIO_PAGE_SIZE);
		return -EINVAL;
	}
	bdev->sectors = (uint64_t)size >> DMIO_SECTOR_SHIFT;
	bdev->lbs = min_block > DMIO_SECTOR_SIZE ? (unsigned int)min_block : DMIO_SECTOR_SIZE;
	/* Sockets take any address; only the lengths of the commands a piece
	 * is cut into must be whole blocks of the server's. */
	bdev->mem_align = min_block > 1 ? (unsigned int)min_block : 1;
	if (max_block > 0 && (uint64_t)max_block < max_request)
		max_request = (uint64_t)max_block & ~(uint64_t)(bdev->lbs - 1);
	if (max_request < bdev->lbs) {
		dmio_log(DMIO_LOG_ERR, "%s: the server's maximum block size %lld is below its minimum", uri,
			 (long long)max_block);
		return -EINVAL;
	}
	atomic_store(&bdev->max_io_sectors, (unsigned int)(max_request >> DMIO_SECTOR_SHIFT));
	r->can_flush = nbd_can_flush(h) == 1;
	r->can_fua = nbd_can_fua(h) == 1;
	r->can_trim = nbd_can_trim(h) == 1;
	r->can_zero = nbd_can_zero(h) == 1;
	return 0;
}

/* More connections to conn[0]'s export, when the server says they see
 * each other's writes (multi-conn).  One that fails, or sees another
 * size, is left out.  Returns how many there are now. */
static unsigned int connect_more(struct nbd_handle **conn, const char *uri, unsigned int timeout_s)
{
	unsigned int n = 1;

	if (nbd_can_multi_conn(conn[0]) != 1)
		return n;
	while (n < REMOTE_MAX_CONNS) {
		struct nbd_handle *h;

		if (connect_one(uri, timeout_s, &h))
			break;
		if (nbd_get_size(h) != nbd_get_size(conn[0])) {
			dmio_log(DMIO_LOG_WARNING, "%s: a second connection sees another size; using one", uri);
			nbd_close(h);
			break;
		}
		conn[n++] = h;
	}
	return n;
}

/* ---- the driver thread ------------------------------------------------------ */

static void wake_driver(struct remote *r)
{
	uint64_t one = 1;

	/* A failed write means the counter is already non-zero. */
	if (write(r->wake_fd, &one, sizeof(one)) < 0)
		return;
}

static short poll_events(struct nbd_handle *h)
{
	unsigned int dir = nbd_aio_get_direction(h);

	return (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
		       ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
}

static bool alive(struct nbd_handle *h)
{
	return nbd_aio_is_dead(h) != 1 && nbd_aio_is_closed(h) != 1;
}

/* Tell libnbd what a socket has to say.  A connection that fails here is
 * dead: libnbd fails its commands in flight, and says why once. */
static void serve_connection(struct nbd_handle *h, short revents, const char *path)
{
	int ret = 0;

	if (!alive(h))
		return; /* died since the poll set was made: said already */
	if (revents & (POLLIN | POLLHUP | POLLERR))
		ret = nbd_aio_notify_read(h);
	else if (revents & POLLOUT)
		ret = nbd_aio_notify_write(h);
	if (ret < 0)
		dmio_log(DMIO_LOG_ERR, "%s: connection lost: %s", path, nbd_get_error());
}

/* Shut a live connection's socket down: libnbd reads the end, fails what
 * was in flight on it, and the connection is dead. */
static void drop_connection(struct nbd_handle *h)
{
	int fd = alive(h) ? nbd_aio_get_fd(h) : -1;

	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

/* A server that stops answering (a hung host, a network that went dark)
 * would hold its commands forever: TCP gives up only after minutes.  A
 * connection with commands in flight and no reply for timeout_s is shut
 * down, so libnbd fails its commands and the device can be reconnected.
 * Times are taken at each wake-up of the driver, at least every second
 * while a timeout is set. */
struct watch {
	gint64 busy_since; /* since when it has had commands in flight (0: idle) */
	gint64 last_reply; /* when it last had something to read */
};

static void watch_connection(struct remote *r, unsigned int i, struct watch *w, bool replied, const char *path)
{
	unsigned int timeout = atomic_load(&r->timeout_s);
	gint64 now = g_get_monotonic_time();

	if (replied)
		w->last_reply = now;
	if (!timeout || !alive(r->conn[i]) || nbd_aio_in_flight(r->conn[i]) <= 0) {
		w->busy_since = 0;
		return;
	}
	if (!w->busy_since)
		w->busy_since = now;
	if (now - MAX(w->busy_since, w->last_reply) < (gint64)timeout * G_USEC_PER_SEC)
		return;
	dmio_log(DMIO_LOG_ERR, "%s: no answer for %u s: dropping the connection", path, timeout);
	drop_connection(r->conn[i]);
	w->busy_since = w->last_reply = now;
}

/* The connections of a device live and die together: when one is dead,
 * the others are shut down too, so the device reads as disconnected and
 * is reconnected whole, rather than half alive after its server or the
 * network failed. */
static void drop_with_dead(struct remote *r, unsigned int n, const char *path)
{
	bool dead = false, live = false;

	for (unsigned int i = 0; i < n; i++) {
		if (alive(r->conn[i]))
			live = true;
		else
			dead = true;
	}
	if (!dead || !live)
		return;
	dmio_log(DMIO_LOG_WARNING, "%s: a connection was lost: dropping the others too", path);
	for (unsigned int i = 0; i < n; i++)
		drop_connection(r->conn[i]);
}

static void *driver_main(void *arg)
{
	struct block_device *bdev = arg;
	struct remote *r = bdev->remote;
	struct pollfd pfd[REMOTE_MAX_CONNS + 1];
	struct watch watch[REMOTE_MAX_CONNS] = { { 0, 0 } };
	unsigned int watched_epoch = 0;

	while (!atomic_load(&r->stopping)) {
		unsigned int n, epoch;
		uint64_t count;

		pthread_rwlock_rdlock(&r->lock);
		n = r->nconns;
		epoch = atomic_load(&r->epoch);
		for (unsigned int i = 0; i < n; i++) {
			pfd[i].fd = nbd_aio_get_fd(r->conn[i]); /* -1 once dead: poll skips it */
			pfd[i].events = pfd[i].fd >= 0 ? poll_events(r->conn[i]) : 0;
			pfd[i].revents = 0;
		}
		pthread_rwlock_unlock(&r->lock);
		pfd[n] = (struct pollfd){ .fd = r->wake_fd, .events = POLLIN };
		if (poll(pfd, n + 1, atomic_load(&r->timeout_s) ? 1000 : -1) < 0)
			continue; /* EINTR */
		if ((pfd[n].revents & POLLIN) && read(r->wake_fd, &count, sizeof(count)) < 0)
			count = 0; /* nothing was pending after all */
		pthread_rwlock_rdlock(&r->lock);
		if (epoch != watched_epoch) { /* new connections: new watches */
			memset(watch, 0, sizeof(watch));
			watched_epoch = epoch;
		}
		/* After a reconnect the descriptors polled were the old ones. */
		for (unsigned int i = 0; i < n && atomic_load(&r->epoch) == epoch; i++) {
			if (pfd[i].revents)
				serve_connection(r->conn[i], pfd[i].revents, bdev->path);
			watch_connection(r, i, &watch[i], pfd[i].revents & POLLIN, bdev->path);
		}
		if (atomic_load(&r->epoch) == epoch)
			drop_with_dead(r, n, bdev->path);
		pthread_rwlock_unlock(&r->lock);
	}
	return NULL;
}

/* ---- open and close ---------------------------------------------------------- */

int remote_open(struct block_device *bdev, const char *uri, int access, unsigned int timeout_s)
{
	struct remote *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->wake_fd = -1;
	atomic_store(&r->timeout_s, timeout_s);
	pthread_rwlock_init(&r->lock, NULL);
	pthread_mutex_init(&r->reconnect_lock, NULL);
	bdev->remote = r; /* remote_close cleans up whatever was made */
	r->uri = strdup(uri);
	r->access = access;
	if (!r->uri)
		return -ENOMEM;
	err = connect_one(uri, timeout_s, &r->conn[0]);
	if (err)
		return err;
	r->nconns = 1;
	err = learn_export(bdev, r, uri, access);
	if (err)
		return err;
	r->nconns = connect_more(r->conn, uri, timeout_s);
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->wake_fd < 0)
		return -errno;
	err = -pthread_create(&r->driver, NULL, driver_main, bdev);
	r->driver_started = !err;
	return err;
}

/* Say goodbye (NBD_CMD_DISC) on the connections that still live, and
 * wait for their servers to close them, all at once and no longer than
 * the device's timeout: a server gone dark must not hold an unmount.
 * Nothing is in flight: dmio_bdev_close waited for that, and the driver
 * has stopped, so this thread drives the handles. */
static void say_goodbye(struct block_device *bdev)
{
	struct remote *r = bdev->remote;
	unsigned int timeout = atomic_load(&r->timeout_s);
	gint64 deadline = g_get_monotonic_time() + (gint64)(timeout ? timeout : 1) * G_USEC_PER_SEC;

	for (unsigned int i = 0; i < r->nconns; i++)
		if (nbd_aio_is_ready(r->conn[i]) == 1)
			nbd_aio_disconnect(r->conn[i], 0);
	for (;;) {
		struct pollfd pfd[REMOTE_MAX_CONNS];
		unsigned int map[REMOTE_MAX_CONNS], n = 0;
		gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;

		for (unsigned int i = 0; i < r->nconns; i++) {
			int fd = alive(r->conn[i]) ? nbd_aio_get_fd(r->conn[i]) : -1;

			if (fd < 0)
				continue;
			pfd[n] = (struct pollfd){ .fd = fd, .events = poll_events(r->conn[i]) };
			map[n++] = i;
		}
		if (!n || left_ms <= 0)
			return;
		if (poll(pfd, n, (int)MIN(left_ms, 100)) < 0 && errno != EINTR)
			return;
		for (unsigned int k = 0; k < n; k++)
			if (pfd[k].revents)
				serve_connection(r->conn[map[k]], pfd[k].revents, bdev->path);
	}
}

void remote_close(struct block_device *bdev)
{
	struct remote *r = bdev->remote;

	if (!r)
		return;
	if (r->driver_started) {
		atomic_store(&r->stopping, true);
		wake_driver(r);
		pthread_join(r->driver, NULL);
	}
	say_goodbye(bdev);
	for (unsigned int i = 0; i < r->nconns; i++)
		nbd_close(r->conn[i]);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	pthread_rwlock_destroy(&r->lock);
	pthread_mutex_destroy(&r->reconnect_lock);
	free(r->uri);
	free(r);
	bdev->remote = NULL;
}

/* ---- sending a piece ---------------------------------------------------------- */

/* One command of a piece is answered (or could not be sent): the last one
 * finishes the piece. */
static void piece_command_done(struct dmio_piece *piece, int err)
{
	int none = 0;

	if (err)
		atomic_compare_exchange_strong(&piece->remote_err, &none, err);
	if (atomic_fetch_sub(&piece->remote_left, 1) != 1)
		return;
	err = atomic_load(&piece->remote_err);
	piece->res = err ? err : (long)piece->bytes;
	client_push_done(piece->io->client, piece);
}

/* libnbd's completion callback, run with the handle's lock held: it must
 * not call libnbd on that handle, and does not. */
static int command_answered(void *user_data, int *error)
{
	piece_command_done(user_data, *error ? -*error : 0);
	return 1; /* retire the command: nobody asks for it again */
}

/* Result of an nbd_aio_* call: a command that could not be sent is done. */
static void command_sent(struct dmio_piece *piece, int64_t cookie)
{
	if (cookie < 0) {
		int err = nbd_get_errno();

		piece_command_done(piece, err ? -err : -EIO);
	}
}

static unsigned int commands_for(const struct dmio_piece *piece, const struct remote *r)
{
	switch (piece->op) {
	case PIECE_READ:
	case PIECE_WRITE:
		return piece->niov;
	case PIECE_FLUSH:
		return 1;
	case PIECE_DISCARD:
		return r->can_trim ? (unsigned int)((piece->bytes + REMOTE_CHUNK - 1) / REMOTE_CHUNK) : 0;
	default:
		return (unsigned int)((piece->bytes + (r->can_zero ? REMOTE_CHUNK : ZERO_BUF_BYTES) - 1) /
				      (r->can_zero ? REMOTE_CHUNK : ZERO_BUF_BYTES));
	}
}

static void send_data(struct nbd_handle *h, struct dmio_piece *piece, bool fua)
{
	nbd_completion_callback cb = { .callback = command_answered, .user_data = piece };
	uint64_t offset = piece->offset;

	for (unsigned int i = 0; i < piece->niov; i++) {
		void *base = piece->iov[i].iov_base;
		size_t len = piece->iov[i].iov_len;

		if (piece->op == PIECE_READ)
			command_sent(piece, nbd_aio_pread(h, base, len, offset, cb, 0));
		else
			command_sent(piece, nbd_aio_pwrite(h, base, len, offset, cb, fua ? LIBNBD_CMD_FLAG_FUA : 0));
		offset += len;
	}
}

/* Trim or write-zeroes, in chunks the protocol's 32-bit lengths can carry;
 * write-zeroes by writing zeroes where the server cannot do it. */
static void send_ranged(struct nbd_handle *h, struct remote *r, struct dmio_piece *piece)
{
	static const char zeroes[ZERO_BUF_BYTES];
	nbd_completion_callback cb = { .callback = command_answered, .user_data = piece };
	bool zero = piece->op == PIECE_ZEROES;
	uint64_t chunk = zero && !r->can_zero ? ZERO_BUF_BYTES : REMOTE_CHUNK;
	uint32_t fua = piece->fua && r->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;

	if (!zero && !r->can_trim)
		return; /* a discard leaves the content undefined: nothing to do */
	for (uint64_t done = 0; done < piece->bytes; done += chunk) {
		uint64_t len = piece->bytes - done < chunk ? piece->bytes - done : chunk;
		uint64_t offset = piece->offset + done;

		if (!zero)
			command_sent(piece, nbd_aio_trim(h, len, offset, cb, 0));
		else if (r->can_zero)
			command_sent(piece, nbd_aio_zero(h, len, offset, cb, fua));
		else
			command_sent(piece, nbd_aio_pwrite(h, zeroes, len, offset, cb, fua));
	}
}

static void send_flush(struct nbd_handle *h, struct remote *r, struct dmio_piece *piece)
{
	nbd_completion_callback cb = { .callback = command_answered, .user_data = piece };

	/* A server without a flush has no cache to flush. */
	if (r->can_flush)
		command_sent(piece, nbd_aio_flush(h, cb, 0));
	else
		piece_command_done(piece, 0);
}

/* Under r->lock: the next connection still alive, round robin; when none
 * is, any (what is sent there fails at once). */
static struct nbd_handle *pick_connection(struct remote *r)
{
	unsigned int first = atomic_fetch_add(&r->next_conn, 1);

	for (unsigned int i = 0; i < r->nconns; i++) {
		struct nbd_handle *h = r->conn[(first + i) % r->nconns];

		if (alive(h))
			return h;
	}
	return r->conn[0];
}

void remote_submit(struct dmio_piece *piece)
{
	struct remote *r = piece->bdev->remote;
	struct nbd_handle *h;

	pthread_rwlock_rdlock(&r->lock);
	h = pick_connection(r);

	atomic_store(&piece->remote_err, 0);
	/* One more than the commands: the sender's guard, so the piece
	 * cannot finish while its commands are still being sent. */
	atomic_store(&piece->remote_left, commands_for(piece, r) + 1);
	switch (piece->op) {
	case PIECE_READ:
	case PIECE_WRITE:
		send_data(h, piece, piece->fua && r->can_fua);
		break;
	case PIECE_FLUSH:
		send_flush(h, r, piece);
		break;
	default:
		send_ranged(h, r, piece);
		break;
	}
	if (nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE)
		wake_driver(r); /* the socket was full: the driver sends the rest */
	pthread_rwlock_unlock(&r->lock);
	piece_command_done(piece, 0);
}

bool remote_continue(struct dmio_piece *piece)
{
	struct remote *r = piece->bdev->remote;
	struct nbd_handle *h;

	/* FUA the server lacks: the write, then a flush, once. */
	if (!piece->fua || r->can_fua || !r->can_flush || piece->op == PIECE_FLUSH || piece->op == PIECE_READ ||
	    piece->res != (long)piece->bytes)
		return false;
	piece->fua = false;
	atomic_store(&piece->remote_err, 0);
	atomic_store(&piece->remote_left, 2);
	pthread_rwlock_rdlock(&r->lock);
	h = pick_connection(r);
	send_flush(h, r, piece);
	if (nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE)
		wake_driver(r);
	pthread_rwlock_unlock(&r->lock);
	piece_command_done(piece, 0);
	return true;
}

/* ---- connection state and reconnecting ------------------------------------------ */

bool remote_connected(struct block_device *bdev)
{
	struct remote *r = bdev->remote;
	bool any = false;

	pthread_rwlock_rdlock(&r->lock);
	for (unsigned int i = 0; i < r->nconns && !any; i++)
		any = alive(r->conn[i]);
	pthread_rwlock_unlock(&r->lock);
	return any;
}

/* Is the export h connects to the one bdev was opened on, as far as the
 * server says: the same size, a block size the device's regions keep,
 * writable if it was?  Says loudly why not. */
static int same_export(struct block_device *bdev, struct nbd_handle *h)
{
	int64_t size = nbd_get_size(h), min_block = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	struct remote *r = bdev->remote;

	if (size < 0 || min_block < 0)
		return -EIO;
	if ((uint64_t)size >> DMIO_SECTOR_SHIFT != bdev->sectors) {
		dmio_log(DMIO_LOG_ERR, "%s: the server is back with an export of another size (%lld bytes, was %llu): "
				       "refused",
			 bdev->path, (long long)size, (unsigned long long)(bdev->sectors << DMIO_SECTOR_SHIFT));
		return -EMEDIUMTYPE;
	}
	if (min_block > bdev->lbs) {
		dmio_log(DMIO_LOG_ERR, "%s: the server is back with a larger block size (%lld, was %u): refused",
			 bdev->path, (long long)min_block, bdev->lbs);
		return -EMEDIUMTYPE;
	}
	if (r->access == O_RDWR && nbd_is_read_only(h) == 1) {
		dmio_log(DMIO_LOG_ERR, "%s: the server is back, exporting read-only: refused", bdev->path);
		return -EROFS;
	}
	return 0;
}

static int reconnect_locked(struct block_device *bdev)
{
	struct remote *r = bdev->remote;
	struct nbd_handle *fresh[REMOTE_MAX_CONNS] = { NULL }, *old[REMOTE_MAX_CONNS];
	unsigned int nfresh, nold;
	int err;

	if (remote_connected(bdev))
		return 0;
	err = connect_one(r->uri, atomic_load(&r->timeout_s), &fresh[0]);
	if (err)
		return err;
	err = same_export(bdev, fresh[0]);
	if (err) {
		nbd_close(fresh[0]);
		return err;
	}
	nfresh = connect_more(fresh, r->uri, atomic_load(&r->timeout_s));
	pthread_rwlock_wrlock(&r->lock);
	nold = r->nconns;
	memcpy(old, r->conn, sizeof(old));
	memcpy(r->conn, fresh, sizeof(fresh));
	r->nconns = nfresh;
	atomic_fetch_add(&r->epoch, 1);
	pthread_rwlock_unlock(&r->lock);
	wake_driver(r);
	/* Dead, so nothing was in flight on them; nobody holds them now. */
	for (unsigned int i = 0; i < nold; i++)
		nbd_close(old[i]);
	dmio_log(DMIO_LOG_NOTICE, "%s: connected again", bdev->path);
	return 0;
}

void remote_disconnect(struct block_device *bdev)
{
	struct remote *r = bdev->remote;

	/* Ask each server to close (NBD_CMD_DISC after what is in flight);
	 * the handles stay until a reconnect or the close swaps them out. */
	pthread_rwlock_rdlock(&r->lock);
	for (unsigned int i = 0; i < r->nconns; i++)
		if (alive(r->conn[i]))
			nbd_aio_disconnect(r->conn[i], 0);
	pthread_rwlock_unlock(&r->lock);
	wake_driver(r);
}

int remote_reconnect(struct block_device *bdev)
{
	struct remote *r = bdev->remote;
	int err;

	/* Two at once would each swap in connections, and the second would
	 * close the first's, live. */
	pthread_mutex_lock(&r->reconnect_lock);
	err = reconnect_locked(bdev);
	pthread_mutex_unlock(&r->reconnect_lock);
	return err;
}

void remote_set_timeout(struct block_device *bdev, unsigned int seconds)
{
	struct remote *r = bdev->remote;

	atomic_store(&r->timeout_s, seconds);
	wake_driver(r); /* poll with the new period */
}
