/* test-stress.c - libdmio under concurrency: many threads with many
 * asynchronous requests in flight on the default client and a private one,
 * callbacks that chain new requests, a client with the smallest pool, and
 * clients created and destroyed while others work.  Every byte is checked
 * at the end against what was last written there, with raw reads.
 *
 * Every test body runs in a child process (g_test_trap_subprocess) under a
 * time limit while the parent owns the temporary folder: a deadlock fails
 * the test instead of hanging it, and the images go away whatever happens. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* scale: the sanitizer build runs about half the work */
#define SCALE(normal, asan) (UNDER_ASAN ? (asan) : (normal))

#define BLOCK 4096u
#define NDEV 3
#define NTHREADS 8
#define POP_TIMEOUT_US (30 * G_USEC_PER_SEC) /* no completion for this long: lost or deadlocked */

/* ---- running a body in a child, the folder in the parent ---------------- */


/* ---- data ----------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

#define INITIAL_FILL 0x5A

/* The 4 KiB block `idx` of the buffer written with `seed`; seed 0 is the
 * images' initial fill. */
static void gen_block(void *dst, uint32_t seed, uint32_t idx)
{
	uint64_t w[BLOCK / 8];
	uint64_t base = mix64(((uint64_t)seed << 32) | idx);

	if (!seed) {
		memset(dst, INITIAL_FILL, BLOCK);
		return;
	}
	for (unsigned int k = 0; k < BLOCK / 8; k++)
		w[k] = base ^ (k * 0xD1B54A32D192ED03ull);
	memcpy(dst, w, BLOCK);
}

static void gen_buffer(char *dst, size_t len, uint32_t seed)
{
	for (size_t k = 0; k < len / BLOCK; k++)
		gen_block(dst + k * BLOCK, seed, (uint32_t)k);
}

/* What each 4 KiB block of a device should hold: the write (seed) and the
 * block of its buffer. */
struct tag {
	uint32_t seed;
	uint32_t idx;
};

/* Compare a device's [first, first + nblocks) blocks with their tags. */
static void verify_blocks(const char *path, uint64_t first, uint64_t nblocks, const struct tag *tags)
{
	size_t chunk = 4u << 20;
	char *got = g_malloc(chunk), want[BLOCK];

	for (uint64_t done = 0; done < nblocks;) {
		uint64_t n = MIN(nblocks - done, chunk / BLOCK);

		tu_raw_read(path, (first + done) * BLOCK, got, n * BLOCK);
		for (uint64_t b = 0; b < n; b++) {
			const struct tag *t = &tags[done + b];

			gen_block(want, t->seed, t->idx);
			if (memcmp(got + b * BLOCK, want, BLOCK))
				g_error("%s: block %" G_GUINT64_FORMAT " (byte %" G_GUINT64_FORMAT
					") does not hold block %u of write %u",
					path, first + done + b, (first + done + b) * BLOCK, t->idx, t->seed);
		}
		done += n;
	}
	g_free(got);
}

struct devices {
	char *path[NDEV];
	struct block_device *bdev[NDEV];
};

static void devices_open(struct devices *d, const char *dir, uint64_t bytes)
{
	for (int i = 0; i < NDEV; i++) {
		char name[16];

		g_snprintf(name, sizeof(name), "s%d.img", i);
		d->path[i] = tu_image_new(dir, name, bytes, INITIAL_FILL);
		d->bdev[i] = dmio_bdev_open(d->path[i], O_RDWR);
		g_assert_nonnull(d->bdev[i]);
	}
}

static void devices_close(struct devices *d)
{
	for (int i = 0; i < NDEV; i++) {
		struct dmio_bdev_stats st;

		dmio_bdev_get_stats(d->bdev[i], &st);
		g_assert_cmpuint(st.inflight, ==, 0);
		g_assert_cmpuint(st.errors, ==, 0);
		dmio_bdev_close(d->bdev[i]);
		g_free(d->path[i]);
	}
}

/* ---- 1. many threads, mixed requests ------------------------------------ */

#define MIX_SLICE_BLOCKS 2048u /* 8 MiB of each device per thread */
#define MIX_MAX_BLOCKS 64u     /* 256 KiB */
#define MIX_DEPTH 16
#define MIX_WRITES SCALE(1000, 500)
#define MIX_MAX_BVEC 9

struct mix_worker;

struct mix_op {
	struct mix_worker *w;
	bool write;           /* the phase in flight: the write, or the read back */
	unsigned int nreg;
	unsigned int dev[3];
	uint32_t first[3];    /* slice-relative first block of each region */
	unsigned int nblocks;
	uint32_t seed;
	struct io_region where[3];
	char *wmem, *data;    /* the written bytes, at some alignment */
	char *rmem, *rdata;   /* where the read back lands */
	struct page_list pl[MIX_MAX_BLOCKS + 2];
	struct bio_vec bv[MIX_MAX_BVEC + 1];
	atomic_uint calls;
	unsigned long bits;
	bool inflight;
};

struct mix_worker {
	unsigned int id;
	struct devices *devs;
	struct dm_io_client *client; /* NULL: the seed calls, on the default client */
	GAsyncQueue *done;
	GRand *rand;
	struct tag *tags[NDEV];
	uint8_t *busy[NDEV];
	struct mix_op ops[MIX_DEPTH];
	unsigned int writes, reads, bounced;
};

static void mix_notify(unsigned long error, void *context)
{
	struct mix_op *op = context;

	op->bits = error;
	atomic_fetch_add(&op->calls, 1);
	g_async_queue_push(op->w->done, op);
}

static bool range_busy(const uint8_t *busy, uint32_t first, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (busy[first + i])
			return true;
	return false;
}

/* Place each region of a new write where no request of this thread is in
 * flight, so the order of completions is the order of the data. */
static bool mix_plan_write(struct mix_worker *w, struct mix_op *op)
{
	op->nreg = 2 + (unsigned int)g_rand_int_range(w->rand, 0, 2);
	op->nblocks = (unsigned int)g_rand_int_range(w->rand, 1, MIX_MAX_BLOCKS + 1);
	for (unsigned int r = 0; r < op->nreg; r++) {
		bool found = false;
		unsigned int dev = 0;
		uint32_t first = 0;

		for (int tries = 0; tries < 32 && !found; tries++) {
			dev = (unsigned int)g_rand_int_range(w->rand, 0, NDEV);
			first = (uint32_t)g_rand_int_range(w->rand, 0, (gint32)(MIX_SLICE_BLOCKS - op->nblocks + 1));
			found = !range_busy(w->busy[dev], first, op->nblocks);
		}
		if (!found) {
			for (unsigned int q = 0; q < r; q++)
				memset(w->busy[op->dev[q]] + op->first[q], 0, op->nblocks);
			return false;
		}
		memset(w->busy[dev] + first, 1, op->nblocks);
		op->dev[r] = dev;
		op->first[r] = first;
		op->where[r] = (struct io_region){ w->devs->bdev[dev],
						   ((sector_t)w->id * MIX_SLICE_BLOCKS + first) * (BLOCK >> 9),
						   (sector_t)op->nblocks * (BLOCK >> 9) };
	}
	return true;
}

/* Some memory is aligned, some only to 512 bytes, some to nothing. */
static size_t mix_misalign(struct mix_worker *w)
{
	switch (g_rand_int_range(w->rand, 0, 4)) {
	case 0:
	case 1:
		return 0;
	case 2:
		return 512 * (size_t)g_rand_int_range(w->rand, 1, 8);
	default:
		return (size_t)g_rand_int_range(w->rand, 1, BLOCK);
	}
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Describe [data, data + len) as a page list, a bio_vec array or a buffer. */
static struct dm_io_memory mix_describe(struct mix_worker *w, struct mix_op *op, char *data, size_t len)
{
	struct dm_io_memory mem = { .type = DM_IO_VMA, .ptr.vma = data };

	switch (g_rand_int_range(w->rand, 0, 3)) {
	case 0:
		break;
	case 1: {
		unsigned int n = (unsigned int)g_rand_int_range(w->rand, 1, MIX_MAX_BVEC + 1);
		size_t cuts[MIX_MAX_BVEC + 1], from = 0;

		for (unsigned int i = 0; i + 1 < n; i++) /* duplicates make empty entries: fine */
			cuts[i] = g_rand_boolean(w->rand) ? (size_t)g_rand_int_range(w->rand, 0, (gint32)len)
							  : BLOCK * (size_t)g_rand_int_range(w->rand, 0, (gint32)(len / BLOCK));
		qsort(cuts, n - 1, sizeof(cuts[0]), cmp_size);
		cuts[n - 1] = len;
		for (unsigned int i = 0; i < n; i++) {
			char *p = data + from;

			op->bv[i].bv_page = dmio_virt_to_page(p);
			op->bv[i].bv_offset = (unsigned int)((uintptr_t)p & (BLOCK - 1));
			op->bv[i].bv_len = (unsigned int)(cuts[i] - from);
			from = cuts[i];
		}
		op->bv[n] = (struct bio_vec){ NULL, 0, 0 };
		mem = (struct dm_io_memory){ .type = DM_IO_BVEC, .ptr.bvec = op->bv };
		break;
	}
	default: {
		char *base = (char *)dmio_virt_to_page(data);
		unsigned int off = (unsigned int)(data - base);
		unsigned int npages = (unsigned int)((off + len + BLOCK - 1) / BLOCK);

		for (unsigned int i = 0; i < npages; i++) {
			op->pl[i].page = dmio_virt_to_page(base + (size_t)i * BLOCK);
			op->pl[i].next = i + 1 < npages ? &op->pl[i + 1] : NULL;
		}
		mem = (struct dm_io_memory){ .type = DM_IO_PAGE_LIST, .offset = off, .ptr.pl = op->pl };
		break;
	}
	}
	return mem;
}

static void mix_submit(struct mix_worker *w, struct mix_op *op, int rw, char *data, unsigned int nreg,
		       struct io_region *where)
{
	size_t len = (size_t)op->nblocks * BLOCK;
	struct dm_io_memory mem = mix_describe(w, op, data, len);
	int ret = -1;

	if ((uintptr_t)data & 511)
		w->bounced++;
	op->inflight = true; /* before: the callback may run at once */
	if (w->client) {
		struct dm_io_request req = {
			.bi_op = rw,
			.mem = mem,
			.notify = { .fn = mix_notify, .context = op },
			.client = w->client,
		};

		ret = dm_io(&req, nreg, where, NULL);
	} else if (mem.type == DM_IO_PAGE_LIST) {
		ret = dm_io_async(nreg, where, rw, mem.ptr.pl, mem.offset, mix_notify, op);
	} else if (mem.type == DM_IO_BVEC) {
		ret = dm_io_async_bvec(nreg, where, rw, mem.ptr.bvec, mix_notify, op);
	} else {
		ret = dm_io_async_vm(nreg, where, rw, mem.ptr.vma, mix_notify, op);
	}
	g_assert_cmpint(ret, ==, 0);
}

static void mix_start_write(struct mix_worker *w, struct mix_op *op, uint32_t seed)
{
	op->write = true;
	op->seed = seed;
	op->data = op->wmem + mix_misalign(w);
	gen_buffer(op->data, (size_t)op->nblocks * BLOCK, seed);
	mix_submit(w, op, DMIO_WRITE, op->data, op->nreg, op->where);
}

static void mix_start_read(struct mix_worker *w, struct mix_op *op)
{
	unsigned int r = (unsigned int)g_rand_int_range(w->rand, 0, (gint32)op->nreg);

	op->write = false;
	op->rdata = op->rmem + mix_misalign(w);
	memset(op->rdata, 0xEE, (size_t)op->nblocks * BLOCK);
	mix_submit(w, op, DMIO_READ, op->rdata, 1, &op->where[r]);
}

static gpointer mix_worker_main(gpointer data)
{
	struct mix_worker *w = data;
	struct mix_op *free_ops[MIX_DEPTH];
	unsigned int nfree = MIX_DEPTH, started = 0, inflight = 0;

	for (unsigned int i = 0; i < MIX_DEPTH; i++)
		free_ops[i] = &w->ops[i];
	while (started < MIX_WRITES || inflight) {
		struct mix_op *op;

		while (nfree && started < MIX_WRITES) {
			op = free_ops[nfree - 1];
			if (!mix_plan_write(w, op))
				break; /* wait for space to come free */
			nfree--;
			inflight++;
			mix_start_write(w, op, (w->id + 1) << 20 | ++started);
		}
		op = g_async_queue_timeout_pop(w->done, POP_TIMEOUT_US);
		if (!op)
			g_error("thread %u: no completion in 30 s with %u requests in flight", w->id, inflight);
		g_assert_true(op->inflight);
		op->inflight = false;
		g_assert_cmpuint(atomic_exchange(&op->calls, 0), ==, 1);
		g_assert_cmpuint(op->bits, ==, 0);
		if (op->write) {
			w->writes++;
			for (unsigned int r = 0; r < op->nreg; r++)
				for (unsigned int b = 0; b < op->nblocks; b++)
					w->tags[op->dev[r]][op->first[r] + b] = (struct tag){ op->seed, b };
			mix_start_read(w, op);
			continue;
		}
		w->reads++;
		g_assert_cmpmem(op->rdata, (size_t)op->nblocks * BLOCK, op->data, (size_t)op->nblocks * BLOCK);
		for (unsigned int r = 0; r < op->nreg; r++)
			memset(w->busy[op->dev[r]] + op->first[r], 0, op->nblocks);
		free_ops[nfree++] = op;
		inflight--;
	}
	return NULL;
}

static void test_mixed(const char *dir)
{
	struct devices d;
	struct dm_io_client *client;
	struct mix_worker *w = g_new0(struct mix_worker, NTHREADS);
	GThread *thread[NTHREADS];

	devices_open(&d, dir, (uint64_t)NTHREADS * MIX_SLICE_BLOCKS * BLOCK);
	g_assert_cmpint(dm_io_get(256), ==, 0);
	client = dm_io_client_create(256);
	g_assert_nonnull(client);
	for (unsigned int t = 0; t < NTHREADS; t++) {
		w[t].id = t;
		w[t].devs = &d;
		w[t].client = t % 2 ? client : NULL;
		w[t].done = g_async_queue_new();
		w[t].rand = g_rand_new_with_seed(g_test_rand_int() ^ t);
		for (int i = 0; i < NDEV; i++) {
			w[t].tags[i] = g_new0(struct tag, MIX_SLICE_BLOCKS);
			w[t].busy[i] = g_malloc0(MIX_SLICE_BLOCKS);
		}
		for (int i = 0; i < MIX_DEPTH; i++) {
			w[t].ops[i].w = &w[t];
			w[t].ops[i].wmem = tu_aligned(MIX_MAX_BLOCKS * BLOCK + BLOCK);
			w[t].ops[i].rmem = tu_aligned(MIX_MAX_BLOCKS * BLOCK + BLOCK);
		}
	}
	for (unsigned int t = 0; t < NTHREADS; t++)
		thread[t] = g_thread_new("mix", mix_worker_main, &w[t]);
	for (unsigned int t = 0; t < NTHREADS; t++)
		g_thread_join(thread[t]);

	for (unsigned int t = 0; t < NTHREADS; t++) {
		g_assert_cmpuint(w[t].writes, ==, MIX_WRITES);
		g_assert_cmpuint(w[t].reads, ==, MIX_WRITES);
		g_assert_cmpuint(w[t].bounced, >, 0);
		for (int i = 0; i < NDEV; i++)
			verify_blocks(d.path[i], (uint64_t)t * MIX_SLICE_BLOCKS, MIX_SLICE_BLOCKS, w[t].tags[i]);
	}
	dm_io_client_destroy(client);
	dm_io_put(256);
	devices_close(&d);
	for (unsigned int t = 0; t < NTHREADS; t++) {
		for (int i = 0; i < NDEV; i++) {
			g_free(w[t].tags[i]);
			g_free(w[t].busy[i]);
		}
		for (int i = 0; i < MIX_DEPTH; i++) {
			free(w[t].ops[i].wmem);
			free(w[t].ops[i].rmem);
		}
		g_rand_free(w[t].rand);
		g_async_queue_unref(w[t].done);
	}
	g_free(w);
}

/* ---- 2. callbacks that submit the next request --------------------------- */

#define CHAINS 128     /* per client */
#define CHAIN_LEN 30   /* requests: write, read back, write, ... */
#define CHAIN_BYTES 8192u

struct chain_test;

struct chain {
	struct chain_test *t;
	struct dm_io_client *client; /* NULL: seed calls on the default client */
	unsigned int id;
	unsigned int step;
	struct io_region where[2];
	char *buf, *rbuf; /* rbuf is misaligned for some chains */
	atomic_uint calls[CHAIN_LEN];
};

struct chain_test {
	struct devices *devs;
	atomic_uint completed, errors, mismatches, submit_failures, deadlock_refused;
	GMutex lock;
	GCond cond;
	unsigned int chains_done;
};

static uint32_t chain_seed(const struct chain *c, unsigned int step)
{
	return 0x10000u + c->id * 64 + step + (c->client ? 0x8000u : 0);
}

static void chain_notify(unsigned long error, void *context);

static int chain_submit(struct chain *c)
{
	bool write = c->step % 2 == 0;

	if (write)
		gen_buffer(c->buf, CHAIN_BYTES, chain_seed(c, c->step));
	else
		memset(c->rbuf, 0, CHAIN_BYTES);
	if (c->client) {
		struct dm_io_request req = {
			.bi_op = write ? DMIO_WRITE : DMIO_READ,
			.mem = { .type = DM_IO_VMA, .ptr.vma = write ? c->buf : c->rbuf },
			.notify = { .fn = chain_notify, .context = c },
			.client = c->client,
		};

		return dm_io(&req, write ? 2 : 1, &c->where[write ? 0 : c->step / 2 % 2], NULL);
	}
	return write ? dm_io_async_vm(2, c->where, DMIO_WRITE, c->buf, chain_notify, c)
		     : dm_io_async_vm(1, &c->where[c->step / 2 % 2], DMIO_READ, c->rbuf, chain_notify, c);
}

static void chain_notify(unsigned long error, void *context)
{
	struct chain *c = context;
	struct chain_test *t = c->t;

	atomic_fetch_add(&c->calls[c->step], 1);
	if (error)
		atomic_fetch_add(&t->errors, 1);
	if (c->step % 2 && memcmp(c->rbuf, c->buf, CHAIN_BYTES))
		atomic_fetch_add(&t->mismatches, 1);
	if (c->step == 1) {
		/* a synchronous call on the client whose callback this is
		 * would wait for itself: refused */
		struct dm_io_request req = {
			.bi_op = DMIO_READ,
			.mem = { .type = DM_IO_VMA, .ptr.vma = c->rbuf },
			.client = c->client,
		};

		if (dm_io(&req, 1, c->where, NULL) == -EDEADLK)
			atomic_fetch_add(&t->deadlock_refused, 1);
	}
	atomic_fetch_add(&t->completed, 1);
	if (++c->step < CHAIN_LEN) {
		if (chain_submit(c) == 0)
			return;
		atomic_fetch_add(&t->submit_failures, 1);
	}
	g_mutex_lock(&t->lock);
	t->chains_done++;
	g_cond_broadcast(&t->cond);
	g_mutex_unlock(&t->lock);
}

static void test_chained_callbacks(const char *dir)
{
	struct devices d;
	struct chain_test t = { .devs = &d };
	struct dm_io_client *client;
	struct chain *chains = g_new0(struct chain, 2 * CHAINS);
	gint64 deadline;
	struct tag *tags;

	devices_open(&d, dir, 2u * CHAINS * CHAIN_BYTES);
	g_mutex_init(&t.lock);
	g_cond_init(&t.cond);
	client = dm_io_client_create(0);
	g_assert_nonnull(client);
	for (unsigned int i = 0; i < 2 * CHAINS; i++) {
		struct chain *c = &chains[i];
		sector_t sector = (sector_t)i * (CHAIN_BYTES >> 9);

		c->t = &t;
		c->client = i % 2 ? client : NULL;
		c->id = i;
		c->where[0] = (struct io_region){ d.bdev[i % NDEV], sector, CHAIN_BYTES >> 9 };
		c->where[1] = (struct io_region){ d.bdev[(i + 1) % NDEV], sector, CHAIN_BYTES >> 9 };
		c->buf = tu_aligned(CHAIN_BYTES);
		c->rbuf = (char *)tu_aligned(CHAIN_BYTES + BLOCK) + (i % 4 == 3 ? 1 + i % 511 : 0);
	}
	/* the main thread starts each chain; the completion threads keep it going */
	for (unsigned int i = 0; i < 2 * CHAINS; i++)
		g_assert_cmpint(chain_submit(&chains[i]), ==, 0);

	deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
	g_mutex_lock(&t.lock);
	while (t.chains_done < 2 * CHAINS)
		if (!g_cond_wait_until(&t.cond, &t.lock, deadline))
			break;
	g_mutex_unlock(&t.lock);
	g_assert_cmpuint(t.chains_done, ==, 2 * CHAINS);
	g_usleep(50000); /* a second callback would show up here */
	g_assert_cmpuint(atomic_load(&t.completed), ==, 2 * CHAINS * CHAIN_LEN);
	for (unsigned int i = 0; i < 2 * CHAINS; i++)
		for (unsigned int s = 0; s < CHAIN_LEN; s++)
			g_assert_cmpuint(atomic_load(&chains[i].calls[s]), ==, 1);
	g_assert_cmpuint(atomic_load(&t.submit_failures), ==, 0);
	g_assert_cmpuint(atomic_load(&t.errors), ==, 0);
	g_assert_cmpuint(atomic_load(&t.mismatches), ==, 0);
	g_assert_cmpuint(atomic_load(&t.deadlock_refused), ==, 2 * CHAINS);

	/* each chain's last write is on both its regions */
	tags = g_new0(struct tag, CHAIN_BYTES / BLOCK);
	for (unsigned int i = 0; i < 2 * CHAINS; i++) {
		for (unsigned int b = 0; b < CHAIN_BYTES / BLOCK; b++)
			tags[b] = (struct tag){ chain_seed(&chains[i], CHAIN_LEN - 2), b };
		for (int r = 0; r < 2; r++)
			verify_blocks(d.path[(i + (unsigned int)r) % NDEV], chains[i].where[r].sector / (BLOCK >> 9),
				      CHAIN_BYTES / BLOCK, tags);
	}
	g_free(tags);

	dm_io_client_destroy(client);
	devices_close(&d);
	for (unsigned int i = 0; i < 2 * CHAINS; i++) {
		free(chains[i].buf);
		free((void *)dmio_virt_to_page(chains[i].rbuf));
	}
	g_free(chains);
	g_mutex_clear(&t.lock);
	g_cond_clear(&t.cond);
}

/* ---- 3. the smallest pool under misaligned 1 MiB writes ------------------ */

#define TINY_SLOTS 3
#define TINY_DEPTH 2
#define TINY_WRITES SCALE(12, 8)
#define MIB (1u << 20)

struct tiny_worker;

struct tiny_op {
	struct tiny_worker *w;
	unsigned int slot;
	bool write;
	uint32_t seed;
	char *wmem, *rmem; /* written and read at odd addresses */
	atomic_uint calls;
	unsigned long bits;
};

struct tiny_worker {
	unsigned int id;
	struct devices *devs;
	struct dm_io_client *client;
	GAsyncQueue *done;
	struct tiny_op ops[TINY_DEPTH];
	uint32_t last_seed[TINY_SLOTS];
	unsigned int writes, reads;
};

static void tiny_notify(unsigned long error, void *context)
{
	struct tiny_op *op = context;

	op->bits = error;
	atomic_fetch_add(&op->calls, 1);
	g_async_queue_push(op->w->done, op);
}

static struct io_region tiny_region(struct tiny_worker *w, unsigned int slot, int dev)
{
	/* device 1 holds the slots in the other order */
	unsigned int n = w->id * TINY_SLOTS + slot;

	if (dev)
		n = NTHREADS * TINY_SLOTS - 1 - n;
	return (struct io_region){ w->devs->bdev[dev], (sector_t)n * (MIB >> 9), MIB >> 9 };
}

static void tiny_submit(struct tiny_worker *w, struct tiny_op *op)
{
	struct io_region where[2] = { tiny_region(w, op->slot, 0), tiny_region(w, op->slot, 1) };
	char *data = op->write ? op->wmem + 1 + w->id : op->rmem + 3;
	struct dm_io_request req = {
		.bi_op = op->write ? DMIO_WRITE : DMIO_READ,
		.mem = { .type = DM_IO_VMA, .ptr.vma = data },
		.notify = { .fn = tiny_notify, .context = op },
		.client = w->client,
	};

	if (op->write)
		gen_buffer(data, MIB, op->seed);
	else
		memset(data, 0, MIB);
	g_assert_cmpint(dm_io(&req, op->write ? 2 : 1, op->write ? where : &where[op->seed % 2], NULL), ==, 0);
}

static gpointer tiny_worker_main(gpointer data)
{
	struct tiny_worker *w = data;
	unsigned int started = 0, inflight = 0;

	for (unsigned int i = 0; i < TINY_DEPTH; i++) {
		struct tiny_op *op = &w->ops[i];

		op->slot = i;
		op->write = true;
		op->seed = (w->id + 1) << 16 | ++started;
		tiny_submit(w, op);
		inflight++;
	}
	while (inflight) {
		struct tiny_op *op = g_async_queue_timeout_pop(w->done, POP_TIMEOUT_US);

		if (!op)
			g_error("thread %u: no completion in 30 s with %u requests in flight", w->id, inflight);
		g_assert_cmpuint(atomic_exchange(&op->calls, 0), ==, 1);
		g_assert_cmpuint(op->bits, ==, 0);
		if (op->write) {
			w->writes++;
			w->last_seed[op->slot] = op->seed;
			op->write = false;
			tiny_submit(w, op);
			continue;
		}
		w->reads++;
		g_assert_cmpmem(op->rmem + 3, MIB, op->wmem + 1 + w->id, MIB);
		if (started == TINY_WRITES) {
			inflight--;
			continue;
		}
		/* the next slot the other request is not using */
		G_STATIC_ASSERT(TINY_DEPTH == 2 && TINY_SLOTS > TINY_DEPTH);
		op->slot = (op->slot + 1) % TINY_SLOTS;
		if (op->slot == w->ops[op == &w->ops[0]].slot)
			op->slot = (op->slot + 1) % TINY_SLOTS;
		op->write = true;
		op->seed = (w->id + 1) << 16 | ++started;
		tiny_submit(w, op);
	}
	return NULL;
}

static void test_tiny_pool(const char *dir)
{
	struct devices d;
	struct dm_io_client *client = dm_io_client_create(0);
	struct tiny_worker *w = g_new0(struct tiny_worker, NTHREADS);
	GThread *thread[NTHREADS];
	struct tag *tags = g_new0(struct tag, MIB / BLOCK);

	g_assert_nonnull(client);
	devices_open(&d, dir, (uint64_t)NTHREADS * TINY_SLOTS * MIB);
	for (unsigned int t = 0; t < NTHREADS; t++) {
		w[t].id = t;
		w[t].devs = &d;
		w[t].client = client;
		w[t].done = g_async_queue_new();
		for (int i = 0; i < TINY_DEPTH; i++) {
			w[t].ops[i].w = &w[t];
			w[t].ops[i].wmem = tu_aligned(MIB + BLOCK);
			w[t].ops[i].rmem = tu_aligned(MIB + BLOCK);
		}
	}
	for (unsigned int t = 0; t < NTHREADS; t++)
		thread[t] = g_thread_new("tiny", tiny_worker_main, &w[t]);
	for (unsigned int t = 0; t < NTHREADS; t++)
		g_thread_join(thread[t]);

	for (unsigned int t = 0; t < NTHREADS; t++) {
		g_assert_cmpuint(w[t].writes, ==, TINY_WRITES);
		g_assert_cmpuint(w[t].reads, ==, TINY_WRITES);
		for (unsigned int s = 0; s < TINY_SLOTS; s++) {
			g_assert_cmpuint(w[t].last_seed[s], !=, 0);
			for (unsigned int b = 0; b < MIB / BLOCK; b++)
				tags[b] = (struct tag){ w[t].last_seed[s], b };
			for (int dev = 0; dev < 2; dev++)
				verify_blocks(d.path[dev], tiny_region(&w[t], s, dev).sector / (BLOCK >> 9), MIB / BLOCK,
					      tags);
		}
	}
	/* the pool is whole again */
	pthread_mutex_lock(&client->lock);
	g_assert_cmpuint(client->pages.nfree, ==, client->pages.total);
	g_assert_cmpuint(client->pieces.nfree, ==, client->pieces.total);
	g_assert_null(client->waitq_head);
	pthread_mutex_unlock(&client->lock);
	dm_io_client_destroy(client);
	devices_close(&d);
	for (unsigned int t = 0; t < NTHREADS; t++) {
		for (int i = 0; i < TINY_DEPTH; i++) {
			free(w[t].ops[i].wmem);
			free(w[t].ops[i].rmem);
		}
		g_async_queue_unref(w[t].done);
	}
	g_free(tags);
	g_free(w);
}

/* ---- 4. clients coming and going ---------------------------------------- */

#define BG_THREADS 2
#define BG_DEPTH 4
#define BG_BLOCKS 16u           /* 64 KiB a request */
#define BG_SLOTS (BG_DEPTH * 4) /* per thread, on devices 0 and 1 */

struct bg_worker;

struct bg_op {
	struct bg_worker *w;
	unsigned int slot;
	bool write;
	uint32_t seed;
	char *mem;
	atomic_uint calls;
	unsigned long bits;
};

struct bg_worker {
	unsigned int id;
	struct devices *devs;
	struct dm_io_client *client;
	GAsyncQueue *done;
	atomic_bool *stop;
	struct bg_op ops[BG_DEPTH];
	uint32_t last_seed[BG_SLOTS];
	unsigned int completed;
};

static void bg_notify(unsigned long error, void *context)
{
	struct bg_op *op = context;

	op->bits = error;
	atomic_fetch_add(&op->calls, 1);
	g_async_queue_push(op->w->done, op);
}

static void bg_submit(struct bg_worker *w, struct bg_op *op)
{
	sector_t sector = ((sector_t)w->id * BG_SLOTS + op->slot) * BG_BLOCKS * (BLOCK >> 9);
	struct io_region where[2] = { { w->devs->bdev[0], sector, BG_BLOCKS * (BLOCK >> 9) },
				      { w->devs->bdev[1], sector, BG_BLOCKS * (BLOCK >> 9) } };
	struct dm_io_request req = {
		.bi_op = op->write ? DMIO_WRITE : DMIO_READ,
		.mem = { .type = DM_IO_VMA, .ptr.vma = op->mem },
		.notify = { .fn = bg_notify, .context = op },
		.client = w->client,
	};

	if (op->write)
		gen_buffer(op->mem, BG_BLOCKS * BLOCK, op->seed);
	else
		memset(op->mem, 0, BG_BLOCKS * BLOCK);
	g_assert_cmpint(dm_io(&req, op->write ? 2 : 1, &where[op->write ? 0 : op->seed % 2], NULL), ==, 0);
}

static gpointer bg_worker_main(gpointer data)
{
	struct bg_worker *w = data;
	unsigned int inflight = 0, next_slot = 0, started = 0;
	char *want = g_malloc(BG_BLOCKS * BLOCK);

	for (unsigned int i = 0; i < BG_DEPTH; i++) {
		w->ops[i].slot = next_slot++;
		w->ops[i].write = true;
		w->ops[i].seed = 0x40000000u | (w->id << 24) | ++started;
		bg_submit(w, &w->ops[i]);
		inflight++;
	}
	while (inflight) {
		struct bg_op *op = g_async_queue_timeout_pop(w->done, POP_TIMEOUT_US);

		if (!op)
			g_error("background thread %u: no completion in 30 s", w->id);
		g_assert_cmpuint(atomic_exchange(&op->calls, 0), ==, 1);
		g_assert_cmpuint(op->bits, ==, 0);
		w->completed++;
		if (op->write) {
			w->last_seed[op->slot] = op->seed;
			op->write = false;
			bg_submit(w, op);
			continue;
		}
		gen_buffer(want, BG_BLOCKS * BLOCK, op->seed);
		g_assert_cmpmem(op->mem, BG_BLOCKS * BLOCK, want, BG_BLOCKS * BLOCK);
		if (atomic_load(w->stop)) {
			inflight--;
			continue;
		}
		/* slots in flight are op-slot + k*BG_DEPTH apart: stepping by
		 * BG_DEPTH keeps them disjoint */
		op->slot = (op->slot + BG_DEPTH) % BG_SLOTS;
		op->write = true;
		op->seed = 0x40000000u | (w->id << 24) | ++started;
		bg_submit(w, op);
	}
	g_free(want);
	return NULL;
}

static void test_destroy_while_busy(const char *dir)
{
	struct devices d;
	char *mpath = tu_image_new(dir, "m.img", 4u << 20, 0);
	struct block_device *mine;
	struct bg_worker w[BG_THREADS];
	GThread *thread[BG_THREADS];
	atomic_bool stop = false;
	struct dmio_fault slow = { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_DELAY, .delay_ms = 20 };
	char *buf = tu_aligned(65536 + BLOCK), *back = tu_aligned(65536);
	unsigned int rounds = SCALE(24, 16);
	struct tag *tags = g_new0(struct tag, BG_BLOCKS);

	devices_open(&d, dir, (uint64_t)BG_THREADS * BG_SLOTS * BG_BLOCKS * BLOCK);
	mine = dmio_bdev_open(mpath, O_RDWR);
	g_assert_nonnull(mine);
	g_assert_cmpint(dmio_fault_add(mine, &slow), >, 0);
	memset(w, 0, sizeof(w));
	for (unsigned int t = 0; t < BG_THREADS; t++) {
		w[t].id = t;
		w[t].devs = &d;
		w[t].client = dm_io_client_create(t ? 64 : 0);
		g_assert_nonnull(w[t].client);
		w[t].done = g_async_queue_new();
		w[t].stop = &stop;
		for (int i = 0; i < BG_DEPTH; i++) {
			w[t].ops[i].w = &w[t];
			w[t].ops[i].mem = tu_aligned(BG_BLOCKS * BLOCK);
		}
		thread[t] = g_thread_new("bg", bg_worker_main, &w[t]);
	}

	/* meanwhile: clients made, used and destroyed with I/O still in flight */
	for (unsigned int i = 0; i < rounds; i++) {
		struct dm_io_client *c = dm_io_client_create(i % 3 ? 64 : 0);
		struct io_region where = { mine, 128 * (sector_t)(i % 16), 128 };
		struct dm_io_request req = {
			.bi_op = DMIO_WRITE,
			.mem = { .type = DM_IO_VMA, .ptr.vma = buf + (i % 2) },
			.client = c,
		};
		struct tu_waiter tw;

		g_assert_nonnull(c);
		tu_waiter_init(&tw);
		tu_pattern(buf + (i % 2), 65536, i);
		req.notify = (struct dm_io_notify){ tu_waiter_notify, &tw };
		g_assert_cmpint(dm_io(&req, 1, &where, NULL), ==, 0);
		dm_io_client_destroy(c); /* waits for the delayed write */
		g_assert_cmpuint(tw.calls, ==, 1);
		g_assert_cmpuint(tw.bits, ==, 0);
		tu_waiter_clear(&tw);
		tu_raw_read(mpath, where.sector * 512, back, 65536);
		g_assert_cmpmem(back, 65536, buf + (i % 2), 65536);
	}
	atomic_store(&stop, true);
	for (unsigned int t = 0; t < BG_THREADS; t++) {
		g_thread_join(thread[t]);
		g_assert_cmpuint(w[t].completed, >=, 2 * BG_DEPTH);
		dm_io_client_destroy(w[t].client);
		for (unsigned int s = 0; s < BG_SLOTS; s++) {
			if (!w[t].last_seed[s])
				continue;
			for (unsigned int b = 0; b < BG_BLOCKS; b++)
				tags[b] = (struct tag){ w[t].last_seed[s], b };
			for (int dev = 0; dev < 2; dev++)
				verify_blocks(d.path[dev], ((uint64_t)t * BG_SLOTS + s) * BG_BLOCKS, BG_BLOCKS, tags);
		}
		for (int i = 0; i < BG_DEPTH; i++)
			free(w[t].ops[i].mem);
		g_async_queue_unref(w[t].done);
	}
	dmio_bdev_close(mine);
	devices_close(&d);
	free(buf);
	free(back);
	g_free(tags);
	g_free(mpath);
}

static unsigned int count_dir(const char *path)
{
	DIR *dir = opendir(path);
	unsigned int n = 0;
	struct dirent *e;

	g_assert_nonnull(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* libaio rings show up in the process's memory map as "/[aio]". */
static unsigned int count_aio_rings(void)
{
	char *maps = NULL, *p;
	unsigned int n = 0;

	g_assert_true(g_file_get_contents("/proc/self/maps", &maps, NULL, NULL));
	for (p = maps; (p = strstr(p, "/[aio]")); p++)
		n++;
	g_free(maps);
	return n;
}

/* Each client holds an aio context, an eventfd and a thread: 200 of them,
 * one after the other, leave nothing behind. */
static void test_create_destroy_many(const char *dir)
{
	char *path = tu_image_new(dir, "c.img", 4u << 20, 0);
	struct block_device *bdev = dmio_bdev_open(path, O_RDWR);
	char *buf = tu_aligned(8192), *back = tu_aligned(8192 + BLOCK);
	unsigned int rings, fds, threads, many = SCALE(200, 200);
	struct dm_io_client *live[8];

	g_assert_nonnull(bdev);
	for (int warm = 0; warm < 2; warm++) { /* let GLib make its own threads first */
		struct dm_io_client *c = dm_io_client_create(0);
		struct io_region where = { bdev, 0, 8 };
		struct dm_io_request req = { .bi_op = DMIO_DISCARD, .client = c };

		g_assert_nonnull(c);
		g_assert_cmpint(dm_io(&req, 1, &where, NULL), ==, 0);
		dm_io_client_destroy(c);
	}
	rings = count_aio_rings();
	fds = count_dir("/proc/self/fd");
	threads = count_dir("/proc/self/task");

	/* several alive at once: one ring each */
	for (int i = 0; i < 8; i++) {
		live[i] = dm_io_client_create(0);
		g_assert_nonnull(live[i]);
	}
	g_assert_cmpuint(count_aio_rings(), ==, rings + 8);
	g_assert_cmpuint(count_dir("/proc/self/fd"), ==, fds + 8);
	g_assert_cmpuint(count_dir("/proc/self/task"), ==, threads + 8);
	for (int i = 0; i < 8; i++)
		dm_io_client_destroy(live[i]);
	g_assert_cmpuint(count_aio_rings(), ==, rings);

	for (unsigned int i = 0; i < many; i++) {
		struct dm_io_client *c = dm_io_client_create((i % 4) * 64);
		struct io_region where = { bdev, 8 * (sector_t)(i % 64), 16 };
		struct dm_io_request req = { .mem = { .type = DM_IO_VMA }, .client = c };
		unsigned long bits = ~0UL;

		g_assert_nonnull(c);
		tu_pattern(buf, 8192, i);
		req.bi_op = DMIO_WRITE;
		req.mem.ptr.vma = buf;
		g_assert_cmpint(dm_io(&req, 1, &where, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		req.bi_op = DMIO_READ;
		req.mem.ptr.vma = back + (i % 3); /* bounced now and then */
		g_assert_cmpint(dm_io(&req, 1, &where, &bits), ==, 0);
		g_assert_cmpmem(back + (i % 3), 8192, buf, 8192);
		if (i % 50 == 0) { /* a worker thread too */
			struct dm_io_request zero = { .bi_op = DMIO_WRITE_ZEROES, .client = c };

			g_assert_cmpint(dm_io(&zero, 1, &where, NULL), ==, 0);
		}
		dm_io_client_destroy(c);
	}
	g_assert_cmpuint(count_aio_rings(), ==, rings);
	g_assert_cmpuint(count_dir("/proc/self/fd"), ==, fds);
	/* GLib may keep a few idle pool threads of its own */
	g_assert_cmpuint(count_dir("/proc/self/task"), <=, threads + 4);
	dmio_bdev_close(bdev);
	free(buf);
	free(back);
	g_free(path);
}

int main(int argc, char **argv)
{

	g_test_init(&argc, &argv, NULL);
	tu_add_guarded("/stress/mixed-threads", test_mixed, 150);
	tu_add_guarded("/stress/chained-callbacks", test_chained_callbacks, 150);
	tu_add_guarded("/stress/tiny-pool", test_tiny_pool, 150);
	tu_add_guarded("/stress/client/destroy-while-others-busy", test_destroy_while_busy, 150);
	tu_add_guarded("/stress/client/create-destroy-many", test_create_destroy_many, 150);
	return g_test_run();
}
