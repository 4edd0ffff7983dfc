/* bench/fusering.c - what the FUSE transport alone costs: /dev/fuse
 * against FUSE over io_uring.
 *
 *   fusering MOUNTPOINT dev|uring
 *
 * Mounts a file system holding one read-only file, "f", of 1 GiB of
 * zeros, and serves it with no device I/O at all, in the foreground until
 * unmounted:
 *
 *   dev    one thread reads each request from /dev/fuse and answers it
 *          with writev, as dmiofs's event loop does (a read and a writev
 *          per request);
 *   uring  FUSE over io_uring (Linux 6.14 and later, with the fuse
 *          module's enable_uring parameter set): a ring and a thread per
 *          CPU, each request fetched and its reply committed through the
 *          ring, many per system call.
 *
 * fio's 4 KiB random reads on the file then measure the ceiling of each
 * transport on this machine (bench/fusering.sh runs them in turn).  A
 * measurement tool, as root: it handles the few requests fio needs and
 * answers the others ENOSYS.  Build: cc -O2 -pthread -o fusering
 * bench/fusering.c -luring (Debian's liburing-dev).  The io_uring
 * interface's structures are the kernel's (include/uapi/linux/fuse.h of
 * 6.14+), defined here since Debian 12's headers predate them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <unistd.h>

#define FILE_SIZE (1ull << 30)
#define MAX_WRITE (1u << 20)
#define BUF_SIZE (MAX_WRITE + 4096)
#define QUEUE_DEPTH 64 /* ring entries per CPU */

/* FUSE over io_uring (kernel uapi, protocol 7.42) */
#define FUSE_OVER_IO_URING_FLAG (1ull << 41)
struct uring_ent_in_out {
	uint64_t flags, commit_id;
	uint32_t payload_sz, padding;
	uint64_t reserved;
};
struct uring_req_header {
	char in_out[128]; /* fuse_in_header in, fuse_out_header out */
	char op_in[128];  /* the op's own header (fuse_read_in, ...) */
	struct uring_ent_in_out ent;
};
struct uring_cmd_req {
	uint64_t flags, commit_id;
	uint16_t qid;
	uint8_t padding[6];
};
enum { URING_CMD_REGISTER = 1, URING_CMD_COMMIT_AND_FETCH = 2 };

/* fuse_init_out as of 7.36 (flags2 and after), newer than Debian 12's */
struct init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
	uint32_t unused[6];
};

static int fuse_fd;
static bool use_uring;
static char zeros[BUF_SIZE];
static unsigned long served_dev, served_ring;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t init_cond = PTHREAD_COND_INITIALIZER;
static bool init_done;

static void fill_attr(uint64_t node, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = node;
	a->blksize = 4096;
	a->mode = node == FUSE_ROOT_ID ? 040755 : 0100444;
	a->nlink = node == FUSE_ROOT_ID ? 2 : 1;
	a->size = node == FUSE_ROOT_ID ? 0 : FILE_SIZE;
	a->blocks = a->size / 512;
}

/* Answer one request: op is the op's header, name what follows a
 * LOOKUP's.  The reply goes to rbuf (or *out points at the zeros): its
 * error, or 1 for a request that gets no reply. */
static int answer(const struct fuse_in_header *in, const void *op, const char *name, char *rbuf, const void **out,
		  size_t *len)
{
	*out = rbuf;
	*len = 0;
	switch (in->opcode) {
	case FUSE_LOOKUP: {
		struct fuse_entry_out *e = (struct fuse_entry_out *)rbuf;

		if (in->nodeid != FUSE_ROOT_ID || strcmp(name, "f"))
			return -ENOENT;
		memset(e, 0, sizeof(*e));
		e->nodeid = 2;
		e->generation = 1;
		e->entry_valid = e->attr_valid = 86400;
		fill_attr(2, &e->attr);
		*len = sizeof(*e);
		return 0;
	}
	case FUSE_GETATTR: {
		struct fuse_attr_out *a = (struct fuse_attr_out *)rbuf;

		memset(a, 0, sizeof(*a));
		a->attr_valid = 86400;
		fill_attr(in->nodeid, &a->attr);
		*len = sizeof(*a);
		return 0;
	}
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		memset(rbuf, 0, sizeof(struct fuse_open_out));
		*len = sizeof(struct fuse_open_out);
		return 0;
	case FUSE_READ: {
		const struct fuse_read_in *r = op;

		*out = zeros;
		*len = r->offset >= FILE_SIZE || r->size > sizeof(zeros) ? 0 : r->size;
		return 0;
	}
	case FUSE_STATFS: {
		struct fuse_statfs_out *s = (struct fuse_statfs_out *)rbuf;

		memset(s, 0, sizeof(*s));
		s->st.bsize = s->st.frsize = 4096;
		s->st.namelen = 255;
		*len = sizeof(*s);
		return 0;
	}
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FLUSH:
	case FUSE_ACCESS:
	case FUSE_READDIR: /* empty */
		return 0;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
		return 1;
	default:
		return -ENOSYS;
	}
}

static void reply_dev(uint64_t unique, int err, const void *out, size_t len)
{
	struct fuse_out_header oh = { .len = (uint32_t)(sizeof(oh) + (err ? 0 : len)), .error = err, .unique = unique };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)out, err ? 0 : len } };

	if (writev(fuse_fd, iov, 2) < 0 && errno != ENOENT) /* ENOENT: the request was interrupted */
		perror("fusering: writev /dev/fuse");
}

static void answer_init(const struct fuse_in_header *in, const struct fuse_init_in *ii)
{
	struct init_out o = { .major = FUSE_KERNEL_VERSION, .minor = ii->minor };

	o.max_readahead = ii->max_readahead;
	o.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT;
	o.flags2 = use_uring ? (uint32_t)(FUSE_OVER_IO_URING_FLAG >> 32) : 0;
	o.max_background = 256;
	o.congestion_threshold = 192;
	o.max_write = MAX_WRITE;
	o.time_gran = 1;
	o.max_pages = MAX_WRITE / 4096;
	reply_dev(in->unique, 0, &o, sizeof(o));
	/* The kernel has taken the reply when writev returns: the rings may
	 * register now. */
	pthread_mutex_lock(&init_lock);
	init_done = true;
	pthread_cond_broadcast(&init_cond);
	pthread_mutex_unlock(&init_lock);
}

/* /dev/fuse: every request in "dev" mode; INIT, and whatever comes before
 * the rings are ready, in "uring" mode.  Ends the program at unmount. */
static void *serve_dev(void *arg)
{
	char *buf = aligned_alloc(4096, BUF_SIZE), *rbuf = malloc(4096);

	(void)arg;
	if (!buf || !rbuf) {
		fprintf(stderr, "fusering: out of memory\n");
		exit(1);
	}
	for (;;) {
		ssize_t n = read(fuse_fd, buf, BUF_SIZE);
		const struct fuse_in_header *in = (const struct fuse_in_header *)buf;
		const void *out;
		size_t len;
		int err;

		if (n < 0 && (errno == EINTR || errno == ENOENT))
			continue;
		if (n < (ssize_t)sizeof(*in))
			break; /* unmounted (ENODEV) */
		if (in->opcode == FUSE_INIT) {
			answer_init(in, (const struct fuse_init_in *)(in + 1));
			continue;
		}
		if (in->opcode == FUSE_DESTROY) {
			reply_dev(in->unique, 0, NULL, 0);
			break;
		}
		__atomic_add_fetch(&served_dev, 1, __ATOMIC_RELAXED);
		err = answer(in, in + 1, (const char *)(in + 1), rbuf, &out, &len);
		if (err <= 0)
			reply_dev(in->unique, err, out, len);
	}
	fprintf(stderr, "fusering: served %lu requests from /dev/fuse, %lu from the rings\n", served_dev, served_ring);
	exit(0);
}

struct queue {
	unsigned int qid; /* = the CPU whose requests it gets */
	struct io_uring ring;
	struct uring_req_header *hdr[QUEUE_DEPTH];
	char *payload[QUEUE_DEPTH];
	struct iovec iov[QUEUE_DEPTH][2];
};

static void queue_cmd(struct queue *q, unsigned int ent, uint32_t cmd, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	struct uring_cmd_req *req;

	if (!sqe) { /* one entry, one SQE: cannot run out */
		fprintf(stderr, "fusering: queue %u has no free SQE\n", q->qid);
		exit(1);
	}
	memset(sqe, 0, 2 * sizeof(*sqe)); /* SQE128 */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fuse_fd;
	sqe->cmd_op = cmd;
	sqe->user_data = ent;
	if (cmd == URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)q->iov[ent];
		sqe->len = 2;
	}
	req = (struct uring_cmd_req *)sqe->cmd;
	req->qid = (uint16_t)q->qid;
	req->commit_id = commit_id;
}

/* Answer the request in entry ent and queue its commit (which also
 * fetches the entry's next request). */
static void serve_entry(struct queue *q, unsigned int ent)
{
	struct uring_req_header *h = q->hdr[ent];
	struct fuse_in_header in = *(const struct fuse_in_header *)h->in_out;
	struct fuse_out_header *oh = (struct fuse_out_header *)h->in_out;
	uint64_t commit_id = h->ent.commit_id;
	const void *out;
	size_t len;
	int err;

	__atomic_add_fetch(&served_ring, 1, __ATOMIC_RELAXED);
	err = answer(&in, h->op_in, q->payload[ent], q->payload[ent], &out, &len);
	if (err > 0) /* no reply wanted; the entry still goes back */
		err = 0;
	if (!err && len && out != q->payload[ent])
		memcpy(q->payload[ent], out, len);
	memset(oh, 0, sizeof(*oh));
	oh->error = err;
	oh->unique = in.unique;
	h->ent.payload_sz = err ? 0 : (uint32_t)len;
	queue_cmd(q, ent, URING_CMD_COMMIT_AND_FETCH, commit_id);
}

static void *serve_ring(void *arg)
{
	struct queue *q = arg;
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE, .cq_entries = 2 * QUEUE_DEPTH };
	cpu_set_t cpu;
	int err;

	/* The kernel hands a queue the requests made on its CPU. */
	CPU_ZERO(&cpu);
	CPU_SET(q->qid, &cpu);
	pthread_setaffinity_np(pthread_self(), sizeof(cpu), &cpu);
	err = io_uring_queue_init_params(QUEUE_DEPTH, &q->ring, &p);
	if (err) {
		fprintf(stderr, "fusering: io_uring_queue_init: %s\n", strerror(-err));
		exit(1);
	}
	for (unsigned int i = 0; i < QUEUE_DEPTH; i++) {
		q->hdr[i] = aligned_alloc(4096, 4096);
		q->payload[i] = aligned_alloc(4096, BUF_SIZE);
		if (!q->hdr[i] || !q->payload[i]) {
			fprintf(stderr, "fusering: out of memory\n");
			exit(1);
		}
		q->iov[i][0] = (struct iovec){ q->hdr[i], sizeof(struct uring_req_header) };
		q->iov[i][1] = (struct iovec){ q->payload[i], BUF_SIZE };
		queue_cmd(q, i, URING_CMD_REGISTER, 0);
	}
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		err = io_uring_submit_and_wait(&q->ring, 1);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "fusering: io_uring_submit_and_wait: %s\n", strerror(-err));
			exit(1);
		}
		io_uring_for_each_cqe(&q->ring, head, cqe) {
			seen++;
			if (cqe->res < 0) { /* ENOTCONN: unmounted */
				if (cqe->res != -ENOTCONN)
					fprintf(stderr, "fusering: queue %u: %s\n", q->qid, strerror(-cqe->res));
				return NULL;
			}
			serve_entry(q, (unsigned int)cqe->user_data);
		}
		io_uring_cq_advance(&q->ring, seen);
	}
}

static bool uring_enabled(void)
{
	char c = 'N';
	FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "r");

	if (f) {
		if (fread(&c, 1, 1, f) != 1)
			c = 'N';
		fclose(f);
	}
	return c == 'Y';
}

int main(int argc, char **argv)
{
	char opts[128];
	pthread_t dev;
	long cpus = sysconf(_SC_NPROCESSORS_CONF);

	if (argc != 3 || (strcmp(argv[2], "dev") && strcmp(argv[2], "uring"))) {
		fprintf(stderr, "usage: fusering MOUNTPOINT dev|uring\n");
		return 2;
	}
	use_uring = !strcmp(argv[2], "uring");
	if (use_uring && !uring_enabled()) {
		fprintf(stderr, "fusering: FUSE over io_uring is off: echo Y > /sys/module/fuse/parameters/enable_uring "
				"(as root; N turns it off again)\n");
		return 1;
	}
	fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fuse_fd < 0) {
		perror("fusering: /dev/fuse");
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fuse_fd);
	if (mount("fusering", argv[1], "fuse.fusering", MS_NOSUID | MS_NODEV, opts)) {
		perror("fusering: mount");
		return 1;
	}
	if (pthread_create(&dev, NULL, serve_dev, NULL)) {
		fprintf(stderr, "fusering: cannot start a thread\n");
		return 1;
	}
	if (use_uring) {
		pthread_mutex_lock(&init_lock);
		while (!init_done)
			pthread_cond_wait(&init_cond, &init_lock);
		pthread_mutex_unlock(&init_lock);
		for (long c = 0; c < cpus; c++) { /* the kernel wants a queue for every CPU */
			struct queue *q = calloc(1, sizeof(*q));
			pthread_t t;

			if (q)
				q->qid = (unsigned int)c;
			if (!q || pthread_create(&t, NULL, serve_ring, q)) {
				fprintf(stderr, "fusering: cannot start queue %ld\n", c);
				return 1;
			}
		}
	}
	pthread_join(dev, NULL);
	return 0;
}
