/* replay-log.c - reads a libdmio write log (dmio_write_log(3)) and replays
 * a prefix of it onto image files: what the devices held when a power cut
 * struck right after a chosen entry.
 *
 *   replay-log LOG --list               the flush points: one line per flush
 *                                       or FUA write, "SEQ TIME_NS DEV flush|fua"
 *   replay-log LOG --dump               every entry: "SEQ TIME_NS DEV KIND
 *                                       FLAGS OFFSET LENGTH"
 *   replay-log LOG --until SEQ IMAGE... apply the writes, discards and
 *                                       write-zeroes of entries 1..SEQ, each
 *                                       to the image of its device number
 *                                       (discards write zeroes)
 *   replay-log LOG --until-flushed SEQ IMAGE...
 *                                       the same, but what a device's cache
 *                                       may lose at the cut is left out: the
 *                                       writes (not FUA), discards and
 *                                       write-zeroes after the device's last
 *                                       flush up to SEQ.  (A write that
 *                                       completed while that flush was on its
 *                                       way counts as flushed: the log holds
 *                                       completions, not submissions.)
 *   replay-log LOG --until-some-lost SEQ IMAGE...
 *                                       the same, but of what a device's
 *                                       cache may lose, about half is lost
 *                                       and half kept, chosen by a hash of
 *                                       the entry and SEQ: caches that
 *                                       wrote some of their blocks back and
 *                                       not others, in no particular order.
 *
 * It reads the file format itself, with stdio and ISA-L's CRC32C, so it
 * depends on nothing of libdmio's.  Every entry is checked (magic, header
 * and data checksums, consecutive sequence numbers, times that never go
 * back, known kinds) before it is used; a malformed log is an error that
 * names the entry and its byte offset.  Exit status: 0 done, 1 a malformed
 * log or a failed image, 2 usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD 64 /* the file's header and every entry's */
#define VERSION 1
#define CRC_AT 60
#define ZERO_CHUNK (1u << 20)

enum kind { KIND_WRITE = 1, KIND_FLUSH = 2, KIND_DISCARD = 3, KIND_ZEROES = 4 };
#define FLAG_FUA 0x1

struct entry {
	uint64_t seq, time_ns, offset, length;
	uint32_t dev_id;
	uint16_t kind, flags;
	uint32_t data_crc;
	unsigned char *data; /* writes: length bytes, malloc'd */
};

struct reader {
	FILE *f;
	const char *path;
	uint64_t size;     /* of the file */
	uint64_t at;       /* byte offset of the next entry */
	uint64_t seq;      /* of the last entry read */
	uint64_t time_ns;  /* of the last entry read */
};

static const char *const kind_names[] = { "?", "write", "flush", "discard", "zeroes" };

/* ---- reading ------------------------------------------------------------------ */

static void malformed(const struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void malformed(const struct reader *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "replay-log: %s: malformed log: entry %" PRIu64 " at byte %" PRIu64 ": ", r->path,
		r->seq + 1, r->at);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t get_le(const unsigned char *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

static uint32_t crc32c(uint32_t crc, const unsigned char *p, uint64_t len)
{
	while (len) { /* ISA-L takes an int length */
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (uint64_t)n;
	}
	return crc;
}

/* As dmiofs's headers: the CRC of all 64 bytes with its own 4 as zero. */
static bool header_crc_ok(const unsigned char *head)
{
	unsigned char copy[HEAD];

	memcpy(copy, head, HEAD);
	memset(copy + CRC_AT, 0, 4);
	return crc32c(0xFFFFFFFFu, copy, HEAD) == get_le(head + CRC_AT, 4);
}

static int reader_open(struct reader *r, const char *path)
{
	unsigned char head[HEAD];
	struct stat st;

	memset(r, 0, sizeof(*r));
	r->path = path;
	r->f = fopen(path, "rb");
	if (!r->f || fstat(fileno(r->f), &st)) {
		fprintf(stderr, "replay-log: %s: %s\n", path, strerror(errno));
		return -1;
	}
	r->size = (uint64_t)st.st_size;
	if (fread(head, 1, HEAD, r->f) != HEAD) {
		fprintf(stderr, "replay-log: %s: not a write log: shorter than its %d-byte header\n", path, HEAD);
		return -1;
	}
	if (memcmp(head, "DMIOWLOG", 8) || !header_crc_ok(head)) {
		fprintf(stderr, "replay-log: %s: not a write log (bad magic or header checksum)\n", path);
		return -1;
	}
	if (get_le(head + 8, 4) != VERSION || get_le(head + 12, 4) != HEAD) {
		fprintf(stderr, "replay-log: %s: write log version %" PRIu64 " with %" PRIu64
				"-byte entry headers; this program reads version %d with %d\n",
			path, get_le(head + 8, 4), get_le(head + 12, 4), VERSION, HEAD);
		return -1;
	}
	r->at = HEAD;
	return 0;
}

static void decode_entry(const unsigned char *h, struct entry *e)
{
	*e = (struct entry){
		.seq = get_le(h + 8, 8),
		.time_ns = get_le(h + 16, 8),
		.offset = get_le(h + 24, 8),
		.length = get_le(h + 32, 8),
		.dev_id = (uint32_t)get_le(h + 40, 4),
		.kind = (uint16_t)get_le(h + 44, 2),
		.flags = (uint16_t)get_le(h + 46, 2),
		.data_crc = (uint32_t)get_le(h + 48, 4),
	};
}

/* What the header says must make sense before anything is read on. */
static int check_entry(const struct reader *r, const struct entry *e)
{
	if (e->seq != r->seq + 1) {
		malformed(r, "sequence number %" PRIu64 " where %" PRIu64 " was due", e->seq, r->seq + 1);
		return -1;
	}
	if (e->time_ns < r->time_ns) {
		malformed(r, "time goes back (%" PRIu64 " ns after %" PRIu64 " ns)", e->time_ns, r->time_ns);
		return -1;
	}
	if (e->kind < KIND_WRITE || e->kind > KIND_ZEROES) {
		malformed(r, "unknown kind %u", e->kind);
		return -1;
	}
	if (e->flags & ~FLAG_FUA) {
		malformed(r, "unknown flags %#x", e->flags);
		return -1;
	}
	if (e->kind == KIND_FLUSH && (e->offset || e->length || e->flags)) {
		malformed(r, "a flush with a range or flags");
		return -1;
	}
	if (e->offset > UINT64_MAX - e->length) {
		malformed(r, "range overflows");
		return -1;
	}
	if (e->kind == KIND_WRITE && e->length > r->size - r->at - HEAD) {
		malformed(r, "the log ends inside its %" PRIu64 " bytes of data", e->length);
		return -1;
	}
	return 0;
}

static int read_data(struct reader *r, struct entry *e)
{
	e->data = malloc(e->length ? e->length : 1);
	if (!e->data) {
		malformed(r, "no memory for %" PRIu64 " bytes of data", e->length);
		return -1;
	}
	if (fread(e->data, 1, e->length, r->f) != e->length) {
		malformed(r, "cannot read its data: %s", ferror(r->f) ? strerror(errno) : "short file");
		return -1;
	}
	if (crc32c(0xFFFFFFFFu, e->data, e->length) != e->data_crc) {
		malformed(r, "data checksum mismatch");
		return -1;
	}
	return 0;
}

/* 1: an entry in *e (free e->data), 0: the end of the log, -1: malformed. */
static int read_entry(struct reader *r, struct entry *e)
{
	unsigned char head[HEAD];
	size_t got = fread(head, 1, HEAD, r->f);

	e->data = NULL;
	if (got == 0 && feof(r->f))
		return 0;
	if (got != HEAD) {
		malformed(r, "the log ends inside its header");
		return -1;
	}
	if (memcmp(head, "DMIOWENT", 8)) {
		malformed(r, "bad magic");
		return -1;
	}
	if (!header_crc_ok(head)) {
		malformed(r, "header checksum mismatch");
		return -1;
	}
	decode_entry(head, e);
	if (check_entry(r, e) || (e->kind == KIND_WRITE && read_data(r, e))) {
		free(e->data);
		e->data = NULL;
		return -1;
	}
	r->seq = e->seq;
	r->time_ns = e->time_ns;
	r->at += HEAD + (e->kind == KIND_WRITE ? e->length : 0);
	return 1;
}

/* ---- listing ------------------------------------------------------------------ */

static bool is_flush_point(const struct entry *e)
{
	return e->kind == KIND_FLUSH || (e->flags & FLAG_FUA);
}

static int list(struct reader *r, bool every_entry)
{
	struct entry e;
	int got;

	while ((got = read_entry(r, &e)) == 1) {
		if (every_entry)
			printf("%" PRIu64 " %" PRIu64 " %" PRIu32 " %s %s %" PRIu64 " %" PRIu64 "\n", e.seq,
			       e.time_ns, e.dev_id, kind_names[e.kind], e.flags & FLAG_FUA ? "fua" : "-", e.offset,
			       e.length);
		else if (is_flush_point(&e))
			printf("%" PRIu64 " %" PRIu64 " %" PRIu32 " %s\n", e.seq, e.time_ns, e.dev_id,
			       e.kind == KIND_FLUSH ? "flush" : "fua");
		free(e.data);
	}
	return got < 0 || fflush(stdout) ? 1 : 0;
}

/* ---- replaying ---------------------------------------------------------------- */

struct image {
	const char *path;
	int fd;
	uint64_t size;
};

static int open_images(struct image *img, char **paths, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		struct stat st;

		img[i].path = paths[i];
		img[i].fd = open(paths[i], O_RDWR | O_CLOEXEC);
		if (img[i].fd < 0 || fstat(img[i].fd, &st)) {
			fprintf(stderr, "replay-log: %s: %s\n", paths[i], strerror(errno));
			return -1;
		}
		img[i].size = (uint64_t)st.st_size;
	}
	return 0;
}

static int write_at(const struct image *img, const unsigned char *buf, uint64_t len, uint64_t offset)
{
	while (len) {
		ssize_t done = pwrite(img->fd, buf, len, (off_t)offset);

		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0) {
			fprintf(stderr, "replay-log: %s: writing at byte %" PRIu64 ": %s\n", img->path, offset,
				done < 0 ? strerror(errno) : "no progress");
			return -1;
		}
		buf += done;
		len -= (uint64_t)done;
		offset += (uint64_t)done;
	}
	return 0;
}

/* A discard leaves the device's content undefined; zeroes are what
 * libdmio's own discard of an image file leaves (a punched hole). */
static int zero_at(const struct image *img, uint64_t len, uint64_t offset)
{
	static const unsigned char zeroes[ZERO_CHUNK];

	while (len) {
		uint64_t n = len < ZERO_CHUNK ? len : ZERO_CHUNK;

		if (write_at(img, zeroes, n, offset))
			return -1;
		len -= n;
		offset += n;
	}
	return 0;
}

static int apply(const struct reader *r, const struct entry *e, const struct image *img, unsigned int nimg)
{
	const struct image *to;

	if (e->kind == KIND_FLUSH)
		return 0;
	if (e->dev_id >= nimg) {
		fprintf(stderr, "replay-log: %s: entry %" PRIu64 " is for device %" PRIu32 ", but %u image%s given\n",
			r->path, e->seq, e->dev_id, nimg, nimg == 1 ? " was" : "s were");
		return -1;
	}
	to = &img[e->dev_id];
	if (e->offset + e->length > to->size) {
		fprintf(stderr, "replay-log: %s: entry %" PRIu64 " writes bytes %" PRIu64 "..%" PRIu64
				", beyond the end of %s (%" PRIu64 " bytes)\n",
			r->path, e->seq, e->offset, e->offset + e->length, to->path, to->size);
		return -1;
	}
	if (e->kind == KIND_WRITE)
		return write_at(to, e->data, e->length, e->offset);
	return zero_at(to, e->length, e->offset);
}

static int close_images(struct image *img, unsigned int n)
{
	int status = 0;

	for (unsigned int i = 0; i < n; i++) {
		if (img[i].fd >= 0 && close(img[i].fd)) {
			fprintf(stderr, "replay-log: %s: %s\n", img[i].path, strerror(errno));
			status = -1;
		}
	}
	return status;
}

/* Entries 1..until: per image, the seq of its last flush (0: none). */
static int last_flushes(struct reader *r, uint64_t until, uint64_t *flushed, unsigned int nimg)
{
	struct entry e;
	int got = 1;

	while (r->seq < until && (got = read_entry(r, &e)) == 1) {
		if (e.kind == KIND_FLUSH && e.dev_id < nimg)
			flushed[e.dev_id] = e.seq;
		free(e.data);
	}
	return got < 0 ? -1 : 0;
}

/* Is the entry one the device's cache may have lost (flushed: the seq of
 * each device's last flush; NULL: nothing is lost)? */
static bool may_be_lost(const struct entry *e, const uint64_t *flushed, unsigned int nimg)
{
	return flushed && e->kind != KIND_FLUSH && !(e->kind == KIND_WRITE && (e->flags & FLAG_FUA)) &&
	       e->dev_id < nimg && e->seq > flushed[e->dev_id];
}

/* Half of the entries, by a hash of the entry and the cut (splitmix64's
 * finalizer): the same cut always loses the same ones. */
static bool picked(uint64_t seq, uint64_t until)
{
	uint64_t z = seq * 0x9e3779b97f4a7c15ull ^ until;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) & 1;
}

static int replay_until(struct reader *r, uint64_t until, char **paths, unsigned int nimg, const uint64_t *flushed,
			bool some)
{
	struct image *img = calloc(nimg, sizeof(*img));
	int status = 0, got = 1;
	struct entry e;

	if (!img) {
		fprintf(stderr, "replay-log: out of memory\n");
		return 1;
	}
	for (unsigned int i = 0; i < nimg; i++)
		img[i].fd = -1;
	if (open_images(img, paths, nimg))
		status = -1;
	while (!status && r->seq < until && (got = read_entry(r, &e)) == 1) {
		if (!may_be_lost(&e, flushed, nimg) || (some && picked(e.seq, until)))
			status = apply(r, &e, img, nimg);
		free(e.data);
	}
	if (!status && got < 0)
		status = -1;
	if (!status && r->seq < until) {
		fprintf(stderr, "replay-log: %s: the log ends at entry %" PRIu64 ", before entry %" PRIu64 "\n",
			r->path, r->seq, until);
		status = -1;
	}
	if (close_images(img, nimg))
		status = -1;
	free(img);
	return status ? 1 : 0;
}

/* ---- the command line --------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: replay-log LOG --list\n"
			"       replay-log LOG --dump\n"
			"       replay-log LOG --until SEQ IMAGE...\n"
			"       replay-log LOG --until-flushed SEQ IMAGE...\n"
			"       replay-log LOG --until-some-lost SEQ IMAGE...\n");
	return 2;
}

static bool parse_seq(const char *s, uint64_t *seq)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*seq = strtoull(s, &end, 10);
	return !errno && !*end;
}

int main(int argc, char **argv)
{
	struct reader r;
	uint64_t until = 0, *flushed = NULL;
	bool some = argc >= 3 && !strcmp(argv[2], "--until-some-lost");
	bool lossy = some || (argc >= 3 && !strcmp(argv[2], "--until-flushed"));
	bool replay = lossy || (argc >= 3 && !strcmp(argv[2], "--until"));
	int status;

	if (argc < 3)
		return usage();
	if (replay) {
		if (argc < 5 || !parse_seq(argv[3], &until))
			return usage();
	} else if ((strcmp(argv[2], "--list") && strcmp(argv[2], "--dump")) || argc != 3) {
		return usage();
	}
	if (reader_open(&r, argv[1])) {
		if (r.f)
			fclose(r.f);
		return 1;
	}
	if (lossy) { /* a first pass finds the flushes */
		flushed = calloc((size_t)(argc - 4), sizeof(*flushed));
		if (!flushed) {
			fprintf(stderr, "replay-log: out of memory\n");
			fclose(r.f);
			return 1;
		}
		status = last_flushes(&r, until, flushed, (unsigned int)(argc - 4));
		fclose(r.f);
		if (status || reader_open(&r, argv[1])) {
			if (!status && r.f)
				fclose(r.f);
			free(flushed);
			return 1;
		}
	}
	if (replay)
		status = replay_until(&r, until, argv + 4, (unsigned int)(argc - 4), flushed, some);
	else
		status = list(&r, !strcmp(argv[2], "--dump"));
	free(flushed);
	fclose(r.f);
	return status;
}
