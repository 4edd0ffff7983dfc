/* writelog.c - recording writes, the kernel's dm-log-writes in userspace:
 * every write, flush, discard and write-zeroes that completes on an
 * attached device is appended to a file, data included, in completion
 * order, so that any prefix of it can be replayed onto copies of the
 * devices as they were: what a power cut at that instant would have left.
 *
 * The file is a 64-byte header, then entries: a 64-byte header each and,
 * for a write, its data (dmio_write_log(3) has the layout).  Integers are
 * little-endian; checksums are CRC32C as dmiofs stores them, so a reader
 * may use ISA-L's crc32_iscsi(buf, len, 0xFFFFFFFF). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define WLOG_HEADER_SIZE 64 /* the file's header and every entry's */
#define WLOG_VERSION 1

static const char file_magic[8] = { 'D', 'M', 'I', 'O', 'W', 'L', 'O', 'G' };
static const char entry_magic[8] = { 'D', 'M', 'I', 'O', 'W', 'E', 'N', 'T' };

/* Byte offsets of the fields of the file header... */
enum { F_MAGIC = 0, F_VERSION = 8, F_ENTRY_SIZE = 12, F_CRC = 60 };
/* ...and of an entry header. */
enum {
	E_MAGIC = 0,
	E_SEQ = 8,
	E_TIME = 16,
	E_OFFSET = 24,
	E_LENGTH = 32,
	E_DEV = 40,
	E_KIND = 44,
	E_FLAGS = 46,
	E_DATA_CRC = 48,
	E_CRC = 60,
};

enum wlog_kind { WLOG_WRITE = 1, WLOG_FLUSH = 2, WLOG_DISCARD = 3, WLOG_ZEROES = 4 };
#define WLOG_FUA 0x1 /* complete only once durable (RWF_DSYNC, or fdatasync after) */

struct dmio_write_log {
	pthread_mutex_t lock;  /* one append at a time: sequence, time and bytes agree */
	int fd;
	char *path;
	uint64_t seq;          /* of the last entry written (the first is 1) */
	uint64_t bytes;        /* the file's size: whole entries only */
	int error;             /* the first write error; recording stopped there */
	unsigned int attached; /* devices recording into it */
};

/* What one entry says, before it has a place in the sequence. */
struct wlog_entry {
	uint64_t offset, length; /* bytes; 0, 0 for a flush */
	uint32_t dev_id;
	uint16_t kind, flags;
	uint32_t data_crc;       /* writes only */
};

/* ---- CRC32C --------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_fill(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int bit = 0; bit < 8; bit++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
}

/* libdmio depends on no checksum library: a table a byte at a time is
 * fast enough for a recording meant for tests. */
uint32_t writelog_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&crc_table_once, crc_table_fill);
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return crc;
}

static uint32_t iov_crc32c(const struct iovec *iov, unsigned int n)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (unsigned int i = 0; i < n; i++)
		crc = writelog_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	return crc;
}

/* ---- encoding --------------------------------------------------------------- */

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* The header's CRC covers all of it with its own four bytes zero, as
 * dmiofs's own headers do. */
static void seal_header(unsigned char *head, size_t crc_at)
{
	put_le32(head + crc_at, 0);
	put_le32(head + crc_at, writelog_crc32c(0xFFFFFFFFu, head, WLOG_HEADER_SIZE));
}

static void encode_file_header(unsigned char *head)
{
	memset(head, 0, WLOG_HEADER_SIZE);
	memcpy(head + F_MAGIC, file_magic, sizeof(file_magic));
	put_le32(head + F_VERSION, WLOG_VERSION);
	put_le32(head + F_ENTRY_SIZE, WLOG_HEADER_SIZE);
	seal_header(head, F_CRC);
}

static void encode_entry(unsigned char *head, const struct wlog_entry *e, uint64_t seq, uint64_t time_ns)
{
	memset(head, 0, WLOG_HEADER_SIZE);
	memcpy(head + E_MAGIC, entry_magic, sizeof(entry_magic));
	put_le64(head + E_SEQ, seq);
	put_le64(head + E_TIME, time_ns);
	put_le64(head + E_OFFSET, e->offset);
	put_le64(head + E_LENGTH, e->length);
	put_le32(head + E_DEV, e->dev_id);
	put_le16(head + E_KIND, e->kind);
	put_le16(head + E_FLAGS, e->flags);
	put_le32(head + E_DATA_CRC, e->data_crc);
	seal_header(head, E_CRC);
}

/* ---- the file ----------------------------------------------------------------- */

/* Write every byte of iov[0, n) (which it consumes), or return -errno. */
static int write_all(int fd, struct iovec *iov, unsigned int n)
{
	while (n) {
		ssize_t done = writev(fd, iov, (int)n);

		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -errno;
		if (done == 0)
			return -EIO; /* no progress and no reason: do not spin */
		while (n && (size_t)done >= iov->iov_len) {
			done -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= (size_t)done;
		}
	}
	return 0;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A log with a gap would replay a state that never existed: after the
 * first error nothing more is recorded, and the torn entry is cut off so
 * the file still holds whole entries only. */
static void stop_recording(struct dmio_write_log *log, int err)
{
	log->error = err;
	dmio_log(DMIO_LOG_ERR, "write log %s: %s; recording stopped after entry %llu", log->path, strerror(-err),
		 (unsigned long long)log->seq);
	if (ftruncate(log->fd, (off_t)log->bytes))
		dmio_log(DMIO_LOG_ERR, "write log %s: cannot cut off the torn last entry: %s", log->path,
			 strerror(errno));
}

/* The sequence number and the time are taken under the lock, so both
 * grow with the file: a reader may compare an entry's time with clocks
 * read elsewhere (CLOCK_MONOTONIC) and trust the order. */
static void log_append(struct dmio_write_log *log, const struct wlog_entry *e, const struct iovec *data,
		       unsigned int ndata)
{
	unsigned char head[WLOG_HEADER_SIZE];
	struct iovec iov[1 + DMIO_PIECE_MAX_IOV];
	int err;

	pthread_mutex_lock(&log->lock);
	if (!log->error) {
		encode_entry(head, e, log->seq + 1, monotonic_ns());
		iov[0] = (struct iovec){ .iov_base = head, .iov_len = sizeof(head) };
		if (ndata)
			memcpy(iov + 1, data, ndata * sizeof(*data));
		err = write_all(log->fd, iov, ndata + 1);
		if (err) {
			stop_recording(log, err);
		} else {
			log->seq++;
			log->bytes += sizeof(head) + (e->kind == WLOG_WRITE ? e->length : 0);
		}
	}
	pthread_mutex_unlock(&log->lock);
}

static uint16_t kind_of(enum piece_op op)
{
	switch (op) {
	case PIECE_FLUSH:
		return WLOG_FLUSH;
	case PIECE_DISCARD:
		return WLOG_DISCARD;
	case PIECE_ZEROES:
		return WLOG_ZEROES;
	default:
		return WLOG_WRITE;
	}
}

static struct wlog_entry entry_of(const struct dmio_piece *piece)
{
	bool flush = piece->op == PIECE_FLUSH;
	struct wlog_entry e = {
		.offset = flush ? 0 : piece->offset,
		.length = flush ? 0 : piece->bytes,
		.kind = kind_of(piece->op),
		/* A pre-flush piece inherits its request's FUA, which means
		 * nothing for a flush. */
		.flags = piece->fua && !flush ? WLOG_FUA : 0,
	};

	if (piece->op == PIECE_WRITE)
		e.data_crc = iov_crc32c(piece->iov, piece->niov);
	return e;
}

void writelog_note_piece(const struct dmio_piece *piece)
{
	struct block_device *bdev = piece->bdev;
	struct wlog_entry e = entry_of(piece); /* the data's CRC outside both locks */
	bool write = piece->op == PIECE_WRITE;
	struct dmio_write_log *log;

	pthread_mutex_lock(&bdev->log_lock);
	log = atomic_load_explicit(&bdev->log, memory_order_relaxed);
	if (log) {
		e.dev_id = bdev->log_dev_id;
		log_append(log, &e, write ? piece->iov : NULL, write ? piece->niov : 0);
	}
	pthread_mutex_unlock(&bdev->log_lock);
}

/* ---- the calls ------------------------------------------------------------------ */

static void log_free(struct dmio_write_log *log)
{
	free(log->path);
	free(log);
}

DMIO_EXPORT struct dmio_write_log *dmio_write_log_create(const char *path)
{
	unsigned char head[WLOG_HEADER_SIZE];
	struct iovec iov = { .iov_base = head, .iov_len = sizeof(head) };
	struct dmio_write_log *log;
	int err;

	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	log = calloc(1, sizeof(*log));
	if (!log || !(log->path = strdup(path))) {
		free(log);
		errno = ENOMEM;
		return NULL;
	}
	log->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (log->fd < 0) {
		err = errno;
		log_free(log);
		errno = err;
		return NULL;
	}
	encode_file_header(head);
	err = write_all(log->fd, &iov, 1);
	if (err) {
		close(log->fd);
		log_free(log);
		errno = -err;
		return NULL;
	}
	log->bytes = sizeof(head);
	pthread_mutex_init(&log->lock, NULL);
	return log;
}

DMIO_EXPORT int dmio_write_log_attach(struct dmio_write_log *log, struct block_device *bdev, uint32_t dev_id)
{
	int err = 0;

	if (!log || !bdev)
		return -EINVAL;
	pthread_mutex_lock(&bdev->log_lock);
	if (atomic_load_explicit(&bdev->log, memory_order_relaxed)) {
		err = -EBUSY;
	} else {
		pthread_mutex_lock(&log->lock);
		log->attached++;
		pthread_mutex_unlock(&log->lock);
		bdev->log_dev_id = dev_id;
		atomic_store_explicit(&bdev->log, log, memory_order_relaxed);
	}
	pthread_mutex_unlock(&bdev->log_lock);
	return err;
}

DMIO_EXPORT void dmio_write_log_detach(struct block_device *bdev)
{
	struct dmio_write_log *log;

	if (!bdev)
		return;
	/* Taking log_lock waits for an append in progress on this device;
	 * once it is dropped, none can start. */
	pthread_mutex_lock(&bdev->log_lock);
	log = atomic_load_explicit(&bdev->log, memory_order_relaxed);
	atomic_store_explicit(&bdev->log, NULL, memory_order_relaxed);
	if (log) {
		pthread_mutex_lock(&log->lock);
		log->attached--;
		pthread_mutex_unlock(&log->lock);
	}
	pthread_mutex_unlock(&bdev->log_lock);
}

DMIO_EXPORT int dmio_write_log_close(struct dmio_write_log *log)
{
	unsigned int attached;
	int err;

	if (!log)
		return -EINVAL;
	pthread_mutex_lock(&log->lock);
	attached = log->attached;
	pthread_mutex_unlock(&log->lock);
	if (attached)
		return -EBUSY; /* freeing it would leave devices pointing at nothing */
	err = log->error;
	if (close(log->fd) && !err)
		err = -errno;
	pthread_mutex_destroy(&log->lock);
	log_free(log);
	return err;
}
