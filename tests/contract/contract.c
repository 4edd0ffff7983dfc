/* contract.c - an outside program, written only against the seed contract
 * of <dmio.h> and built with `pkg-config --cflags --libs dmio`, that checks
 * the behaviours the contract promises on image files, or on NBD exports
 * of them.  Output is TAP.
 * Usage: contract DIR [nbd]   (image files are created in DIR and removed;
 * with nbd, each is served by an nbdkit file plugin on a unix socket in
 * DIR, and the devices are those exports) */
#include <dmio.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define IMG_BYTES (32u << 20)
#define NDEV 3

static int test_no, failures;
static char paths[NDEV][4096];
static struct block_device *dev[NDEV];
static pid_t server[NDEV];

static void ok(int cond, const char *what)
{
	printf("%s %d - %s\n", cond ? "ok" : "not ok", ++test_no, what);
	if (!cond)
		failures++;
}

static void pattern(void *buf, size_t len, unsigned int seed)
{
	unsigned char *p = buf;
	unsigned int x = seed * 2654435761u + 7;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (unsigned char)(x >> 16);
	}
}

static int raw_equals(int d, unsigned long long offset, const void *want, size_t len)
{
	char *got = malloc(len);
	int fd = open(paths[d], O_RDONLY), same;

	same = fd >= 0 && pread(fd, got, len, (off_t)offset) == (ssize_t)len && !memcmp(got, want, len);
	if (fd >= 0)
		close(fd);
	free(got);
	return same;
}

static void *page_aligned(size_t len)
{
	void *p = NULL;

	return posix_memalign(&p, 4096, len) ? NULL : p;
}

/* ---- async completion counting ---- */
struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	unsigned long bits;
};

static void notify(unsigned long error, void *context)
{
	struct waiter *w = context;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	w->bits |= error;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void wait_calls(struct waiter *w, int calls)
{
	pthread_mutex_lock(&w->lock);
	while (w->calls < calls)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void check_fan_out_write(void)
{
	size_t len = 1 << 20;
	char *buf = page_aligned(len);
	struct io_region where[NDEV] = { { dev[0], 0, len / 512 }, { dev[1], 4096, len / 512 }, { dev[2], 8, 8 } };
	unsigned long bits = 99;
	int ret;

	pattern(buf, len, 1);
	ret = dm_io_sync_vm(NDEV, where, DMIO_WRITE, buf, &bits);
	ok(ret == 0 && bits == 0, "vm write to three regions returns 0 with no bits");
	ok(raw_equals(0, 0, buf, len) && raw_equals(1, 4096ull * 512, buf, len) && raw_equals(2, 8 * 512, buf, 4096),
	   "every region holds the same bytes from the start of the memory");
	free(buf);
}

static void check_page_list_offset(void)
{
	struct page_list pl[4];
	unsigned int offset = 1024;
	size_t len = 3 * 4096;
	char *want = malloc(len), *got = malloc(len);
	struct io_region where = { dev[1], 64, len / 512 };
	size_t done = 0;
	int ret;

	for (int i = 0; i < 4; i++) {
		pl[i].page = dmio_page_alloc();
		pl[i].next = i < 3 ? &pl[i + 1] : NULL;
	}
	pattern(want, len, 2);
	for (int i = 0; done < len; i++) {
		size_t start = i ? 0 : offset, n = 4096 - start < len - done ? 4096 - start : len - done;

		memcpy((char *)dmio_page_address(pl[i].page) + start, want + done, n);
		done += n;
	}
	ret = dm_io_sync(1, &where, DMIO_WRITE, pl, offset, NULL);
	ok(ret == 0 && raw_equals(1, 64 * 512, want, len), "page list write honours the offset into the first page");
	for (int i = 0; i < 4; i++)
		memset(dmio_page_address(pl[i].page), 0, 4096);
	ret = dm_io_sync(1, &where, DMIO_READ, pl, offset, NULL);
	done = 0;
	for (int i = 0; done < len; i++) {
		size_t start = i ? 0 : offset, n = 4096 - start < len - done ? 4096 - start : len - done;

		memcpy(got + done, (char *)dmio_page_address(pl[i].page) + start, n);
		done += n;
	}
	ok(ret == 0 && !memcmp(got, want, len), "page list read lands at the offset");
	for (int i = 0; i < 4; i++)
		dmio_page_free(pl[i].page);
	free(want);
	free(got);
}

static void check_bvec(void)
{
	struct page *pg[3] = { dmio_page_alloc(), dmio_page_alloc(), dmio_page_alloc() };
	struct bio_vec bv[3] = { { pg[0], 1536, 512 }, { pg[1], 1024, 3 }, { pg[2], 1536, 2000 } };
	size_t len = 4096, done = 0;
	char *want = malloc(len), *got = malloc(len);
	struct io_region where[2] = { { dev[0], 2048, 8 }, { dev[2], 4096, 8 } };
	int ret;

	pattern(want, len, 3);
	for (int i = 0; i < 3; i++) {
		memcpy((char *)dmio_page_address(pg[i]) + bv[i].bv_offset, want + done, bv[i].bv_len);
		done += bv[i].bv_len;
	}
	ret = dm_io_sync_bvec(2, where, DMIO_WRITE, bv, NULL);
	ok(ret == 0 && raw_equals(0, 2048 * 512, want, len) && raw_equals(2, 4096 * 512, want, len),
	   "bvec write honours each entry's length and offset (misaligned ones too)");
	for (int i = 0; i < 3; i++)
		memset(dmio_page_address(pg[i]), 0, 4096);
	ret = dm_io_sync_bvec(1, &where[0], DMIO_READ, bv, NULL);
	done = 0;
	for (int i = 0; i < 3; i++) {
		memcpy(got + done, (char *)dmio_page_address(pg[i]) + bv[i].bv_offset, bv[i].bv_len);
		done += bv[i].bv_len;
	}
	ok(ret == 0 && !memcmp(got, want, len), "bvec read fills each entry");
	for (int i = 0; i < 3; i++)
		dmio_page_free(pg[i]);
	free(want);
	free(got);
}

static void check_misaligned_memory(void)
{
	size_t len = 3 << 20; /* larger than one piece */
	char *raw = malloc(len + 16), *buf = raw + 5, *back_raw = malloc(len + 16), *back = back_raw + 9;
	struct io_region where[2] = { { dev[0], 8192, len / 512 }, { dev[1], 8192, len / 512 } };
	int ret;

	pattern(buf, len, 4);
	ret = dm_io_sync_vm(2, where, DMIO_WRITE, buf, NULL);
	ok(ret == 0 && raw_equals(0, 8192ull * 512, buf, len) && raw_equals(1, 8192ull * 512, buf, len),
	   "misaligned memory works for writes");
	ret = dm_io_sync_vm(1, &where[1], DMIO_READ, back, NULL);
	ok(ret == 0 && !memcmp(back, buf, len), "misaligned memory works for reads");
	free(raw);
	free(back_raw);
}

static void check_error_bits(void)
{
	char *buf = page_aligned(8192);
	unsigned long long end = IMG_BYTES / 512;
	struct io_region where[3] = { { dev[0], 100, 16 }, { dev[1], end - 8, 16 }, { dev[2], end, 8 } };
	unsigned long bits = 0;
	int ret;

	pattern(buf, 8192, 5);
	ret = dm_io_sync_vm(3, where, DMIO_WRITE, buf, &bits);
	ok(ret == -EIO && bits == 6, "bits 1 and 2 set for regions beyond the device end, sync returns -EIO");
	ok(raw_equals(0, 100 * 512, buf, 8192), "the healthy region was written anyway");
	memset(buf, 0x77, 8192);
	ret = dm_io_sync_vm(1, &where[1], DMIO_READ, buf, &bits);
	{
		int zero = 1;

		for (int i = 0; i < 8192; i++)
			zero &= buf[i] == 0;
		ok(ret == -EIO && bits == 1 && zero, "a failed read returns zeroes, not stale memory");
	}
	free(buf);
}

static void check_zero_count_and_empty(void)
{
	char *buf = page_aligned(4096);
	struct io_region where[2] = { { dev[0], 0, 0 }, { dev[1], 0, 0 } };
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	unsigned long bits = 5;
	char before[4096];
	int fd = open(paths[0], O_RDONLY), ret;

	ok(fd >= 0 && pread(fd, before, sizeof(before), 0) == (ssize_t)sizeof(before), "read image head");
	close(fd);
	memset(buf, 0xC3, 4096);
	ret = dm_io_sync_vm(2, where, DMIO_WRITE, buf, &bits);
	ok(ret == 0 && bits == 0 && raw_equals(0, 0, before, 4096), "count-0 regions do no I/O and set no bit");
	ret = dm_io_async_vm(2, where, DMIO_WRITE, buf, notify, &w);
	wait_calls(&w, 1);
	usleep(50000);
	ok(ret == 0 && w.calls == 1 && w.bits == 0, "async callback runs exactly once when every region is empty");
	free(buf);
}

static void check_refusals(void)
{
	char *buf = page_aligned(4096);
	struct io_region two[2] = { { dev[0], 0, 8 }, { dev[1], 0, 8 } };
	struct io_region many[65];
	struct io_region bad_dev = { NULL, 0, 8 }, overflow = { dev[0], ~0ULL - 3, 8 };
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	int ret;

	for (int i = 0; i < 65; i++)
		many[i] = two[0];
	memset(buf, 0x11, 4096);
	ret = dm_io_async_vm(2, two, DMIO_READ, buf, notify, &w);
	usleep(50000);
	ok(ret < 0 && w.calls == 0, "a read naming two regions is refused without I/O or callback");
	ok(dm_io_sync_vm(0, two, DMIO_WRITE, buf, NULL) == -EINVAL, "no regions: -EINVAL");
	ok(dm_io_sync_vm(65, many, DMIO_WRITE, buf, NULL) == -EINVAL, "65 regions: -EINVAL");
	ok(dm_io_sync_vm(1, two, 42, buf, NULL) == -EINVAL, "unknown rw: -EINVAL");
	ok(dm_io_sync_vm(1, two, DMIO_WRITE, NULL, NULL) == -EINVAL, "NULL memory: -EINVAL");
	ok(dm_io_sync_vm(1, &bad_dev, DMIO_WRITE, buf, NULL) == -EINVAL, "NULL device: -EINVAL");
	ok(dm_io_sync_vm(1, &overflow, DMIO_WRITE, buf, NULL) == -EINVAL, "sector + count overflow: -EINVAL");
	free(buf);
}

static void check_64_regions(void)
{
	struct io_region where[64];
	char *buf = page_aligned(4096);
	unsigned long bits = 1;
	int ret, all = 1;

	pattern(buf, 4096, 6);
	for (int i = 0; i < 64; i++)
		where[i] = (struct io_region){ dev[i % NDEV], 16384 + 8 * (unsigned long long)i, 8 };
	ret = dm_io_sync_vm(64, where, DMIO_WRITE, buf, &bits);
	for (int i = 0; i < 64; i++)
		all &= raw_equals(i % NDEV, (16384 + 8ull * i) * 512, buf, 4096);
	ok(ret == 0 && bits == 0 && all, "a write to 64 regions reaches all of them");
	free(buf);
}

struct stress_arg {
	int id;
	int failures;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	size_t len = 64 * 1024;
	char *buf = page_aligned(len), *back = page_aligned(len);

	for (int i = 0; i < 200; i++) {
		unsigned long long sector = 40960 + (unsigned long long)a->id * 2048 + (unsigned long long)(i % 16) * 128;
		struct io_region where[2] = { { dev[0], sector, len / 512 }, { dev[2], sector, len / 512 } };
		struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

		pattern(buf, len, (unsigned int)(a->id * 1000 + i));
		if (dm_io_async_vm(2, where, DMIO_WRITE, buf, notify, &w)) {
			a->failures++;
			continue;
		}
		wait_calls(&w, 1);
		if (w.bits || dm_io_sync_vm(1, &where[i & 1], DMIO_READ, back, NULL) || memcmp(back, buf, len))
			a->failures++;
	}
	free(buf);
	free(back);
	return NULL;
}

static void check_threads(void)
{
	pthread_t t[8];
	struct stress_arg a[8];
	int failed = 0;

	for (int i = 0; i < 8; i++) {
		a[i] = (struct stress_arg){ i, 0 };
		pthread_create(&t[i], NULL, stress_thread, &a[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		failed += a[i].failures;
	}
	ok(failed == 0, "8 threads x 200 async mirrored writes, each read back and verified");
}

static void copied(int read_err, unsigned long write_err, void *context)
{
	notify(read_err ? ~0UL : write_err, context);
}

/* The copier, as an outside program links it: one region to two. */
static void check_kcopyd(void)
{
	size_t len = 256 * 1024;
	char *buf = page_aligned(len);
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct io_region from = { dev[0], 1 << 14, len / 512 };
	struct io_region to[2] = { { dev[1], 1 << 14, len / 512 }, { dev[2], 1 << 15, len / 512 } };
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	unsigned long bits = 0;

	pattern(buf, len, 7);
	ok(kc != NULL, "dm_kcopyd_client_create makes a copier");
	ok(dm_io_sync_vm(1, &from, DMIO_WRITE, buf, &bits) == 0, "the source is written");
	ok(kc && dm_kcopyd_copy(kc, &from, 2, to, 0, copied, &w) == 0, "dm_kcopyd_copy starts a copy to two regions");
	if (kc)
		wait_calls(&w, 1);
	ok(w.bits == 0 && raw_equals(1, (1ull << 14) * 512, buf, len) && raw_equals(2, (1ull << 15) * 512, buf, len),
	   "both destinations hold the source's bytes, no error reported");
	ok(dm_kcopyd_copy(kc, &from, 0, to, 0, copied, &w) == -EINVAL, "a copy to no destination is refused");
	dm_kcopyd_client_destroy(kc);
	free(buf);
}

/* The write log, as an outside program links it. */
static void check_write_log(const char *dir)
{
	char path[4200];
	struct dmio_write_log *log;
	char *buf = page_aligned(4096);
	struct io_region where = { dev[0], 64, 8 };
	unsigned long bits = 0;
	struct stat st;

	snprintf(path, sizeof(path), "%s/contract-%d.wlog", dir, (int)getpid());
	log = dmio_write_log_create(path);
	ok(log != NULL, "dmio_write_log_create makes a log");
	ok(log && dmio_write_log_attach(log, dev[0], 0) == 0, "dmio_write_log_attach records a device");
	pattern(buf, 4096, 9);
	ok(dm_io_sync_vm(1, &where, DMIO_WRITE, buf, &bits) == 0, "a write to the recorded device");
	dmio_write_log_detach(dev[0]);
	ok(log && dmio_write_log_close(log) == 0, "dmio_write_log_close closes it");
	ok(stat(path, &st) == 0 && st.st_size > 4096, "the log holds the write");
	unlink(path);
	free(buf);
}

/* Serve image d with nbdkit on a unix socket; write the export's URI to
 * uri once the server listens (it writes its pid file then). */
static int serve(const char *dir, int d, char *uri, size_t uri_len)
{
	char sock[4200], pidfile[4200];
	char *argv[] = { "nbdkit", "-f", "--exit-with-parent", "-U", sock, "-P", pidfile, "file", paths[d], NULL };
	struct timespec tick = { 0, 5000000 };

	snprintf(sock, sizeof(sock), "%s/contract-%d-%d.sock", dir, (int)getpid(), d);
	snprintf(pidfile, sizeof(pidfile), "%s/contract-%d-%d.pid", dir, (int)getpid(), d);
	if (posix_spawnp(&server[d], "nbdkit", NULL, NULL, argv, environ))
		return -1;
	for (int i = 0; i < 4000 && access(pidfile, F_OK); i++) {
		if (waitpid(server[d], NULL, WNOHANG) != 0)
			return -1;
		nanosleep(&tick, NULL);
	}
	unlink(pidfile);
	snprintf(uri, uri_len, "nbd+unix:///?socket=%s", sock);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	int nbd = argc > 2 && !strcmp(argv[2], "nbd");
	char uri[4300];

	for (int i = 0; i < NDEV; i++) {
		int fd;

		snprintf(paths[i], sizeof(paths[i]), "%s/contract-%d-%d.img", dir, (int)getpid(), i);
		fd = open(paths[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, IMG_BYTES)) {
			printf("Bail out! cannot create %s: %s\n", paths[i], strerror(errno));
			return 1;
		}
		close(fd);
		if (nbd && serve(dir, i, uri, sizeof(uri))) {
			printf("Bail out! cannot start nbdkit for %s (apt-get install nbdkit)\n", paths[i]);
			return 1;
		}
		dev[i] = dmio_bdev_open(nbd ? uri : paths[i], O_RDWR);
		if (!dev[i]) {
			printf("Bail out! dmio_bdev_open %s: %s\n", nbd ? uri : paths[i], strerror(errno));
			return 1;
		}
	}
	if (nbd)
		ok(dmio_bdev_is_remote(dev[0]) && dmio_bdev_is_remote(dev[NDEV - 1]), "the devices are NBD exports");
	ok(dm_io_get(512) == 0, "dm_io_get reserves pages");
	check_fan_out_write();
	check_page_list_offset();
	check_bvec();
	check_misaligned_memory();
	check_error_bits();
	check_zero_count_and_empty();
	check_refusals();
	check_64_regions();
	check_threads();
	check_kcopyd();
	check_write_log(dir);
	dm_io_put(512);
	for (int i = 0; i < NDEV; i++) {
		dmio_bdev_close(dev[i]);
		if (server[i] > 0) {
			kill(server[i], SIGTERM);
			waitpid(server[i], NULL, 0);
		}
		unlink(paths[i]);
	}
	ok(1, "devices closed");
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
