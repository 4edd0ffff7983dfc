/* test-remote.c - devices that are NBD exports: what dmio_bdev_open learns
 * from the server, data through every memory path, mirrored writes over a
 * local image and an export, flush, FUA, discard and write-zeroes, splitting
 * at the server's largest request, many requests in flight, and the errors:
 * a server that fails I/O, one that dies, one that exports read-only, one
 * that is not there.
 *
 * Each case runs in a child process with its own temporary folder and
 * nbdkit servers (memory, file and eval plugins; error, blocksize-policy
 * and log filters), on unix sockets in that folder; the servers die with
 * the child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

#define EXPORT_BYTES (16u << 20)
#define TIMEOUT_S 120

static struct block_device *open_ok(const char *path, int flags)
{
	struct block_device *bdev = dmio_bdev_open(path, flags);

	if (!bdev)
		g_error("dmio_bdev_open(%s): %s", path, g_strerror(errno));
	return bdev;
}

/* Open the export at uri (EXPORT_BYTES), write 4 KiB of pattern seed at
 * sector, read it back the same, and close it. */
static void open_write_read_back(const char *uri, sector_t sector, uint32_t seed)
{
	struct block_device *bdev = open_ok(uri, O_RDWR);
	struct io_region r = { bdev, sector, 8 };
	char *buf = tu_aligned(4096), *back = tu_aligned(4096);
	unsigned long bits;

	g_assert_cmpuint(dmio_bdev_sectors(bdev), ==, EXPORT_BYTES >> 9);
	tu_pattern(buf, 4096, seed);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, 0);
	g_assert_cmpmem(back, 4096, buf, 4096);
	dmio_bdev_close(bdev);
	free(buf);
	free(back);
}

/* The file plugin again over an existing image, on the same socket name. */
static char *serve_image_again(struct tu_nbd *s, const char *dir, const char *name, const char *path)
{
	const char *args[] = { "file", path, NULL };

	tu_nbd_start(s, dir, name, args);
	return g_strdup(path);
}

/* A file plugin over an image in dir: what the server writes can be read
 * back from the file directly.  extra: --filter=... options, and the
 * filters' parameters, which go after the plugin's. */
static char *serve_image(struct tu_nbd *s, const char *dir, const char *name, int fill, const char *const *extra)
{
	char *img_name = g_strdup_printf("%s.img", name);
	char *path = tu_image_new(dir, img_name, EXPORT_BYTES, fill);
	const char *args[8];
	unsigned int n = 0;

	for (unsigned int i = 0; extra && extra[i]; i++)
		if (g_str_has_prefix(extra[i], "--filter="))
			args[n++] = extra[i];
	args[n++] = "file";
	args[n++] = path;
	for (unsigned int i = 0; extra && extra[i]; i++)
		if (!g_str_has_prefix(extra[i], "--filter="))
			args[n++] = extra[i];
	args[n] = NULL;
	tu_nbd_start(s, dir, name, args);
	g_free(img_name);
	return path;
}

static void test_properties(const char *dir)
{
	static const char *const memory[] = { "memory", "16M", NULL };
	static const char *const limited[] = { "--filter=blocksize-policy", "memory", "16M", "blocksize-minimum=4096",
					       "blocksize-preferred=4096", "blocksize-maximum=65536", NULL };
	struct tu_nbd a = { 0 }, b = { 0 };
	struct block_device *bdev;

	tu_nbd_start(&a, dir, "a", memory);
	bdev = open_ok(a.uri, O_RDWR);
	g_assert_cmpstr(dmio_bdev_path(bdev), ==, a.uri);
	g_assert_cmpint(dmio_bdev_is_remote(bdev), ==, 1);
	g_assert_cmpint(dmio_bdev_is_blockdev(bdev), ==, 0);
	g_assert_cmpuint(dmio_bdev_sectors(bdev), ==, EXPORT_BYTES / DMIO_SECTOR_SIZE);
	g_assert_cmpuint(dmio_bdev_logical_block_size(bdev), ==, DMIO_SECTOR_SIZE);
	g_assert_cmpuint(dmio_bdev_max_io_sectors(bdev), ==, 2048);
	dmio_bdev_close(bdev);

	/* The server's block sizes become the device's. */
	tu_nbd_start(&b, dir, "b", limited);
	bdev = open_ok(b.uri, O_RDWR);
	g_assert_cmpuint(dmio_bdev_logical_block_size(bdev), ==, 4096);
	g_assert_cmpuint(dmio_bdev_max_io_sectors(bdev), ==, 65536 / DMIO_SECTOR_SIZE);
	dmio_bdev_close(bdev);
	tu_nbd_stop(&a, SIGTERM);
	tu_nbd_stop(&b, SIGTERM);
}

/* One write fans out to a local image and an export; both files hold it,
 * and it reads back through each region, whatever the memory path. */
static void test_mirror(const char *dir)
{
	struct tu_nbd s = { 0 };
	char *remote_img = serve_image(&s, dir, "r", 0, NULL);
	char *local_img = tu_image_new(dir, "l.img", EXPORT_BYTES, 0);
	struct block_device *local = open_ok(local_img, O_RDWR), *remote = open_ok(s.uri, O_RDWR);
	size_t len = 256 * 1024 + 4096;
	char *raw = g_malloc(len + 1), *data = raw + 1; /* misaligned on purpose */
	char *back = tu_aligned(len); /* the bio_vecs below name its pages */
	struct io_region where[2] = { { local, 2048, len / 512 }, { remote, 2048, len / 512 } };
	unsigned long bits = ~0UL;
	struct bio_vec bv[3];
	struct page_list *pl = tu_page_list_new(2);

	tu_pattern(data, len, 7);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(data), 2, where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	tu_assert_image_holds(local_img, 2048 * 512, data, len);
	tu_assert_image_holds(remote_img, 2048 * 512, data, len);
	memset(back, 0, len);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &where[1], &bits), ==, 0);
	g_assert_cmpmem(back, len, data, len);

	/* bio_vec: three segments of odd sizes, read from the export. */
	memset(back, 0, len);
	bv[0] = (struct bio_vec){ .bv_page = dmio_virt_to_page(back), .bv_len = 1536, .bv_offset = 0 };
	bv[1] = (struct bio_vec){ .bv_page = dmio_virt_to_page(back + 8192), .bv_len = 512, .bv_offset = 0 };
	bv[2] = (struct bio_vec){ .bv_page = dmio_virt_to_page(back + 16384), .bv_len = 2048, .bv_offset = 0 };
	where[1].count = 8;
	g_assert_cmpint(dm_io_sync_bvec(1, &where[1], DMIO_READ, bv, &bits), ==, 0);
	g_assert_cmpmem(back, 1536, data, 1536);
	g_assert_cmpmem(back + 8192, 512, data + 1536, 512);
	g_assert_cmpmem(back + 16384, 2048, data + 2048, 2048);

	/* A page list with an offset into its first page, written. */
	where[1].count = 8;
	g_assert_cmpint(dm_io_sync(1, &where[1], DMIO_WRITE, pl, 512, &bits), ==, 0);
	tu_assert_image_holds(remote_img, 2048 * 512, (char *)dmio_page_address(pl->page) + 512, 4096 - 512);

	tu_page_list_free(pl);
	dmio_bdev_close(local);
	dmio_bdev_close(remote);
	tu_nbd_stop(&s, SIGTERM);
	g_free(raw);
	free(back);
	g_free(local_img);
	g_free(remote_img);
}

static void test_flush_fua_zeroes(const char *dir)
{
	struct tu_nbd s = { 0 };
	char *img = serve_image(&s, dir, "r", 0x55, NULL);
	struct block_device *remote = open_ok(s.uri, O_RDWR);
	char *buf = tu_aligned(65536);
	struct io_region r = { remote, 0, 128 };
	unsigned long bits = ~0UL;
	struct dmio_bdev_stats before;

	tu_pattern(buf, 65536, 3);
	dmio_bdev_get_stats(remote, &before);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, tu_kmem(buf), 1, &r, &bits),
			==, 0);
	g_assert_cmpuint(tu_stats_since(remote, &before).flushes, ==, 1);
	tu_assert_image_holds(img, 0, buf, 65536);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_FLUSH, 0, tu_kmem(NULL), 1, &r, &bits), ==, 0);

	/* write-zeroes reads back as zeroes; a discard succeeds. */
	r.count = 64;
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE_ZEROES, 0, tu_kmem(NULL), 1, &r, &bits), ==, 0);
	tu_assert_image_filled(img, 0, 0, 32768);
	tu_assert_image_holds(img, 32768, buf + 32768, 32768);
	r.sector = 1024;
	g_assert_cmpint(tu_io_sync(NULL, DMIO_DISCARD, 0, tu_kmem(NULL), 1, &r, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);

	dmio_bdev_close(remote);
	tu_nbd_stop(&s, SIGTERM);
	free(buf);
	g_free(img);
}

/* A server that cannot write zeroes, nor FUA (the eval plugin, its
 * scripts working on an image): zeroes are written as data, and a FUA
 * write is followed by a flush, which the log filter shows. */
static void test_without_zero_and_fua(const char *dir)
{
	char *img = tu_image_new(dir, "e.img", EXPORT_BYTES, 0x77);
	char *log = g_build_filename(dir, "server.log", NULL);
	char *logfile = g_strdup_printf("logfile=%s", log);
	char *pread = g_strdup_printf("pread=dd if=%s bs=512 skip=$(($4/512)) count=$(($3/512)) status=none", img);
	char *pwrite = g_strdup_printf("pwrite=dd of=%s bs=512 seek=$(($4/512)) conv=notrunc status=none", img);
	char *flush = g_strdup_printf("flush=sync %s", img);
	const char *args[] = { "--filter=log", "--filter=nozero", "eval", logfile, "get_size=echo 16777216", pread, pwrite, flush,
			       "can_write=exit 0", "can_flush=exit 0", "can_fua=echo none", "can_zero=exit 3",
			       NULL };
	struct tu_nbd s = { 0 };
	struct block_device *remote;
	char *buf = tu_aligned(8192), *text = NULL;
	struct io_region r = { NULL, 16, 16 };
	unsigned long bits = ~0UL;

	tu_nbd_start(&s, dir, "e", args);
	remote = open_ok(s.uri, O_RDWR);
	r.bdev = remote;
	tu_pattern(buf, 8192, 9);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, DMIO_REQ_FUA, tu_kmem(buf), 1, &r, &bits), ==, 0);
	tu_assert_image_holds(img, 16 * 512, buf, 8192);
	g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
	g_assert_nonnull(strstr(text, "Flush"));
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE_ZEROES, 0, tu_kmem(NULL), 1, &r, &bits), ==, 0);
	tu_assert_image_filled(img, 16 * 512, 0, 8192);
	tu_assert_image_filled(img, 32 * 512, 0x77, 4096);

	dmio_bdev_close(remote);
	tu_nbd_stop(&s, SIGTERM);
	free(buf);
	g_free(text);
	g_free(flush);
	g_free(pwrite);
	g_free(pread);
	g_free(logfile);
	g_free(log);
	g_free(img);
}

/* A request longer than the server's largest is cut into pieces of it. */
static void test_split(const char *dir)
{
	static const char *const filters[] = { "--filter=blocksize-policy", "blocksize-maximum=65536", NULL };
	struct tu_nbd s = { 0 };
	char *img = serve_image(&s, dir, "r", 0, filters);
	struct block_device *remote = open_ok(s.uri, O_RDWR);
	size_t len = 1u << 20;
	char *buf = tu_aligned(len), *back = tu_aligned(len);
	struct io_region r = { remote, 0, len / 512 };
	struct dmio_bdev_stats before;
	unsigned long bits;

	tu_pattern(buf, len, 11);
	dmio_bdev_get_stats(remote, &before);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, 0);
	g_assert_cmpuint(tu_stats_since(remote, &before).writes, ==, 16);
	g_assert_cmpuint(tu_stats_since(remote, &before).reads, ==, 16);
	g_assert_cmpmem(back, len, buf, len);
	tu_assert_image_holds(img, 0, buf, len);
	dmio_bdev_close(remote);
	tu_nbd_stop(&s, SIGTERM);
	free(buf);
	free(back);
	g_free(img);
}

/* Many requests in flight from several threads, on two exports: every
 * one completes once, and what was written reads back. */
struct storm {
	struct block_device *dev[2];
	unsigned int thread;
};

#define STORM_OPS 400
#define STORM_SLOTS 64 /* 4 KiB blocks per thread */

static gpointer storm_thread(gpointer data)
{
	struct storm *st = data;
	struct tu_waiter w;
	char *bufs = tu_aligned(STORM_SLOTS * 4096);
	char *want = g_malloc(4096);

	tu_waiter_init(&w);
	for (unsigned int i = 0; i < STORM_SLOTS; i++)
		tu_pattern(bufs + i * 4096, 4096, st->thread * 1000 + i);
	for (unsigned int op = 0; op < STORM_OPS; op++) {
		unsigned int slot = op % STORM_SLOTS;
		sector_t sector = (sector_t)(st->thread * STORM_SLOTS + slot) * 8;
		struct io_region where[2] = { { st->dev[0], sector, 8 }, { st->dev[1], sector, 8 } };

		g_assert_cmpint(tu_io_async(NULL, DMIO_WRITE, 0, tu_kmem(bufs + slot * 4096), 2, where,
					    tu_waiter_notify, &w),
				==, 0);
	}
	tu_waiter_wait(&w, STORM_OPS);
	g_assert_cmpuint(w.all_bits, ==, 0);
	for (unsigned int slot = 0; slot < STORM_SLOTS; slot++) {
		for (unsigned int d = 0; d < 2; d++) {
			struct io_region r = { st->dev[d], (sector_t)(st->thread * STORM_SLOTS + slot) * 8, 8 };
			unsigned long bits;

			memset(want, 0, 4096);
			g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(want), 1, &r, &bits), ==, 0);
			g_assert_cmpmem(want, 4096, bufs + slot * 4096, 4096);
		}
	}
	tu_waiter_clear(&w);
	free(bufs);
	g_free(want);
	return NULL;
}

static void test_many_in_flight(const char *dir)
{
	static const char *const memory[] = { "memory", "16M", NULL };
	struct tu_nbd a = { 0 }, b = { 0 };
	struct storm st[4];
	GThread *th[4];

	tu_nbd_start(&a, dir, "a", memory);
	tu_nbd_start(&b, dir, "b", memory);
	st[0].dev[0] = open_ok(a.uri, O_RDWR);
	st[0].dev[1] = open_ok(b.uri, O_RDWR);
	for (unsigned int i = 0; i < 4; i++) {
		st[i].dev[0] = st[0].dev[0];
		st[i].dev[1] = st[0].dev[1];
		st[i].thread = i;
		th[i] = g_thread_new("storm", storm_thread, &st[i]);
	}
	for (unsigned int i = 0; i < 4; i++)
		g_thread_join(th[i]);
	dmio_bdev_close(st[0].dev[0]);
	dmio_bdev_close(st[0].dev[1]);
	tu_nbd_stop(&a, SIGTERM);
	tu_nbd_stop(&b, SIGTERM);
}

/* The server fails reads: the region's bit is set, the memory is zeroed,
 * and the device counts the errors. */
static void test_server_errors(const char *dir)
{
	static const char *const failing[] = { "--filter=error", "memory", "16M", "error=EIO",
					       "error-pread-rate=100%", NULL };
	struct tu_nbd s = { 0 };
	struct block_device *remote;
	char *buf = tu_aligned(4096);
	struct io_region r;
	unsigned long bits = 0;
	struct dmio_bdev_stats stats;

	tu_nbd_start(&s, dir, "r", failing);
	remote = open_ok(s.uri, O_RDWR);
	r = (struct io_region){ remote, 8, 8 };
	memset(buf, 0xAB, 4096);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(buf), 1, &r, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1);
	tu_assert_bytes(buf, 0, 4096);
	dmio_bdev_get_stats(remote, &stats);
	g_assert_cmpuint(stats.errors, ==, 1);
	dmio_bdev_close(remote);
	tu_nbd_stop(&s, SIGTERM);
	free(buf);
}

/* The server dies: writes to the mirror still reach the local leg, the
 * remote region's bit is set, and the device closes without hanging. */
static void test_server_dies(const char *dir)
{
	static const char *const memory[] = { "memory", "16M", NULL };
	struct tu_nbd s = { 0 };
	char *local_img = tu_image_new(dir, "l.img", EXPORT_BYTES, 0);
	struct block_device *local = open_ok(local_img, O_RDWR), *remote;
	char *buf = tu_aligned(65536);
	struct io_region where[2];
	unsigned long bits = 0;

	tu_nbd_start(&s, dir, "r", memory);
	remote = open_ok(s.uri, O_RDWR);
	where[0] = (struct io_region){ local, 0, 128 };
	where[1] = (struct io_region){ remote, 0, 128 };
	tu_pattern(buf, 65536, 5);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 2, where, &bits), ==, 0);
	tu_nbd_stop(&s, SIGKILL);
	for (unsigned int i = 0; i < 3; i++) {
		g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 2, where, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 2);
	}
	tu_assert_image_holds(local_img, 0, buf, 65536);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(buf), 1, &where[1], &bits), ==, -EIO);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_FLUSH, 0, tu_kmem(NULL), 2, where, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 2);
	dmio_bdev_close(remote);
	dmio_bdev_close(local);
	free(buf);
	g_free(local_img);
}

static void wait_disconnected(struct block_device *bdev)
{
	gint64 until = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

	while (dmio_bdev_is_connected(bdev)) {
		g_assert_cmpint(g_get_monotonic_time(), <, until);
		g_usleep(10000);
	}
}

/* The server dies and comes back: the device says it lost its
 * connection, reconnects to the same export and does I/O again; a server
 * back with another size is refused. */
static void test_reconnect(const char *dir)
{
	struct tu_nbd s = { 0 };
	char *img = serve_image(&s, dir, "r", 0, NULL);
	struct block_device *remote = open_ok(s.uri, O_RDWR);
	char *buf = tu_aligned(8192), *back = tu_aligned(8192);
	struct io_region r = { remote, 64, 16 };
	unsigned long bits = 0;
	char *other = NULL;
	int err;

	g_assert_cmpint(dmio_bdev_is_connected(remote), ==, 1);
	g_assert_cmpint(dmio_bdev_reconnect(remote), ==, 0); /* alive: nothing to do */
	tu_pattern(buf, 8192, 21);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	tu_nbd_stop(&s, SIGKILL);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, -EIO);
	wait_disconnected(remote); /* libnbd fails the commands, then marks the handle dead */
	err = dmio_bdev_reconnect(remote);
	g_assert_true(err == -ENOENT || err == -ECONNREFUSED);

	/* back, serving the same image: I/O works again */
	g_free(serve_image_again(&s, dir, "r", img));
	g_assert_cmpint(dmio_bdev_reconnect(remote), ==, 0);
	g_assert_cmpint(dmio_bdev_is_connected(remote), ==, 1);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, 0);
	g_assert_cmpmem(back, 8192, buf, 8192);
	tu_pattern(buf, 8192, 22);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, DMIO_REQ_FUA, tu_kmem(buf), 1, &r, &bits), ==, 0);
	tu_assert_image_holds(img, 64 * 512, buf, 8192);

	/* let go on purpose: the connection closes, and comes back on asking */
	g_assert_cmpint(dmio_bdev_disconnect(remote), ==, 0);
	wait_disconnected(remote);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, -EIO);
	g_assert_cmpint(dmio_bdev_reconnect(remote), ==, 0);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, 0);
	g_assert_cmpmem(back, 8192, buf, 8192);

	/* back with another size: refused, and the device stays down */
	tu_nbd_stop(&s, SIGKILL);
	other = tu_image_new(dir, "other.img", EXPORT_BYTES * 2, 0);
	g_free(serve_image_again(&s, dir, "r", other));
	wait_disconnected(remote);
	g_assert_cmpint(dmio_bdev_reconnect(remote), ==, -EMEDIUMTYPE);
	g_assert_cmpint(dmio_bdev_is_connected(remote), ==, 0);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(back), 1, &r, &bits), ==, -EIO);

	dmio_bdev_close(remote);
	tu_nbd_stop(&s, SIGTERM);
	free(buf);
	free(back);
	g_free(other);
	g_free(img);
}

/* A server that takes the connection and never says a word (a listening
 * socket nobody accepts from): reconnecting gives up after the device's
 * timeout, and opening after the one it is opened with, with ETIMEDOUT,
 * instead of waiting for ever. */
static void test_connect_timeout(const char *dir)
{
	static const char *const memory[] = { "memory", "16M", NULL };
	struct tu_nbd s = { 0 };
	struct block_device *remote;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int silent;
	gint64 t0, took_ms;
	char *uri;

	tu_nbd_start(&s, dir, "r", memory);
	remote = open_ok(s.uri, O_RDWR);
	g_assert_cmpint(dmio_bdev_set_timeout(remote, 1), ==, 0);
	g_strlcpy(addr.sun_path, s.socket, sizeof(addr.sun_path));
	uri = g_strdup(s.uri);
	tu_nbd_stop(&s, SIGKILL);
	/* the server's socket path, now held by one that never answers */
	unlink(addr.sun_path);
	silent = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(silent, >=, 0);
	g_assert_cmpint(bind(silent, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
	g_assert_cmpint(listen(silent, 8), ==, 0);
	wait_disconnected(remote);
	t0 = g_get_monotonic_time();
	g_assert_cmpint(dmio_bdev_reconnect(remote), ==, -ETIMEDOUT);
	took_ms = (g_get_monotonic_time() - t0) / 1000;
	g_assert_cmpint(took_ms, >=, 900);
	g_assert_cmpint(took_ms, <, 10000);
	dmio_bdev_close(remote);

	t0 = g_get_monotonic_time();
	errno = 0;
	g_assert_null(dmio_bdev_open_timeout(uri, O_RDWR, 1));
	g_assert_cmpint(errno, ==, ETIMEDOUT);
	took_ms = (g_get_monotonic_time() - t0) / 1000;
	g_assert_cmpint(took_ms, >=, 900);
	g_assert_cmpint(took_ms, <, 10000);
	close(silent);
	g_free(uri);
}

/* TLS with a pre-shared key: the export opens through nbds+unix://; a
 * plain URI to a server that requires TLS fails, an nbds:// URI to a
 * server without TLS fails rather than fall back to plain text, and a key
 * file others can read is refused before anything is sent. */
static void test_tls(const char *dir)
{
	char *psk = g_build_filename(dir, "keys.psk", NULL);
	char *psk_arg = g_strdup_printf("--tls-psk=%s", psk);
	const char *tls_args[] = { "--tls=require", psk_arg, "memory", "16M", NULL };
	static const char *const plain_args[] = { "memory", "16M", NULL };
	struct tu_nbd tls = { 0 }, plain = { 0 };
	char *uri, *no_fallback;

	g_assert_true(g_file_set_contents(psk, "alice:0123456789abcdef0123456789abcdef\n", -1, NULL));
	g_assert_cmpint(chmod(psk, 0600), ==, 0);
	tu_nbd_start(&tls, dir, "tls", tls_args);
	tu_nbd_start(&plain, dir, "plain", plain_args);
	uri = g_strdup_printf("nbds+unix://alice@/?socket=%s&tls-psk-file=%s", tls.socket, psk);
	no_fallback = g_strdup_printf("nbds+unix://alice@/?socket=%s&tls-psk-file=%s", plain.socket, psk);

	open_write_read_back(uri, 0, 31);
	g_assert_null(dmio_bdev_open(tls.uri, O_RDWR));    /* plain text to a TLS-only server */
	g_assert_null(dmio_bdev_open(no_fallback, O_RDWR)); /* TLS asked for, not offered */
	g_assert_cmpint(chmod(psk, 0644), ==, 0);
	errno = 0;
	g_assert_null(dmio_bdev_open(uri, O_RDWR));
	g_assert_cmpint(errno, ==, EACCES);

	tu_nbd_stop(&tls, SIGTERM);
	tu_nbd_stop(&plain, SIGTERM);
	g_free(no_fallback);
	g_free(uri);
	g_free(psk_arg);
	g_free(psk);
}

/* Certificates for TLS, made by tests/make-certs.sh (openssl): DIR/srv
 * for the server, DIR/cli for a client, DIR/anon a client with the CA
 * alone, DIR/stranger a CA that signed none of them. */
static void make_certificates(const char *dir)
{
	const char *top = g_getenv("top_srcdir");
	char *script = g_build_filename(top ? top : ".", "tests", "make-certs.sh", NULL);
	const char *argv[] = { "sh", script, dir, NULL };
	GError *error = NULL;
	int status = 0;

	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, &error))
		g_error("sh: %s", error->message);
	if (!g_spawn_check_wait_status(status, &error))
		g_error("%s (is openssl installed?): %s", script, error->message);
	g_free(script);
}

/* TLS with X.509 certificates: the server's certificate is checked
 * against the CA in the URI's tls-certificates directory, and the server
 * (--tls-verify-peer) checks ours. */
static void test_tls_certificates(const char *dir)
{
	char *srv = g_build_filename(dir, "srv", NULL), *cli = g_build_filename(dir, "cli", NULL);
	char *stranger = g_build_filename(dir, "stranger", NULL), *anon = g_build_filename(dir, "anon", NULL);
	char *key = g_build_filename(cli, "client-key.pem", NULL);
	char *certs_arg = g_strdup_printf("--tls-certificates=%s", srv);
	const char *tls_args[] = { "--tls=require", certs_arg, "--tls-verify-peer", "memory", "16M", NULL };
	struct tu_nbd tls = { 0 };
	char *uri, *untrusted, *anonymous;

	make_certificates(dir);
	tu_nbd_start(&tls, dir, "x509", tls_args);
	uri = g_strdup_printf("nbds+unix:///?socket=%s&tls-certificates=%s", tls.socket, cli);
	untrusted = g_strdup_printf("nbds+unix:///?socket=%s&tls-certificates=%s", tls.socket, stranger);
	anonymous = g_strdup_printf("nbds+unix:///?socket=%s&tls-certificates=%s", tls.socket, anon);

	open_write_read_back(uri, 8, 37);

	/* A server whose certificate our CA did not sign, seen from the
	 * client; a client with no certificate, seen from the server; and
	 * plain text to a server that requires TLS: all refused. */
	g_assert_null(dmio_bdev_open(untrusted, O_RDWR));
	g_assert_null(dmio_bdev_open(anonymous, O_RDWR));
	g_assert_null(dmio_bdev_open(tls.uri, O_RDWR));
	/* The client's key readable by others: refused before it is used. */
	g_assert_cmpint(chmod(key, 0640), ==, 0);
	errno = 0;
	g_assert_null(dmio_bdev_open(uri, O_RDWR));
	g_assert_cmpint(errno, ==, EACCES);

	tu_nbd_stop(&tls, SIGTERM);
	g_free(anonymous);
	g_free(untrusted);
	g_free(uri);
	g_free(certs_arg);
	g_free(anon);
	g_free(key);
	g_free(stranger);
	g_free(cli);
	g_free(srv);
}

static void test_refusals(const char *dir)
{
	static const char *const readonly[] = { "-r", "memory", "16M", NULL };
	struct tu_nbd s = { 0 };
	char *missing = g_strdup_printf("nbd+unix:///?socket=%s/nobody.sock", dir);
	struct block_device *bdev;
	char *buf = tu_aligned(4096);
	struct io_region r;
	unsigned long bits = 0;

	errno = 0;
	g_assert_null(dmio_bdev_open(missing, O_RDWR));
	g_assert_cmpint(errno, ==, ENOENT);
	errno = 0;
	g_assert_null(dmio_bdev_open("nbd+unix:///", O_RDWR)); /* no socket named */
	g_assert_cmpint(errno, !=, 0);
	tu_nbd_start(&s, dir, "ro", readonly);
	errno = 0;
	g_assert_null(dmio_bdev_open(s.uri, O_RDWR));
	g_assert_cmpint(errno, ==, EROFS);
	bdev = open_ok(s.uri, O_RDONLY);
	r = (struct io_region){ bdev, 0, 8 };
	g_assert_cmpint(tu_io_sync(NULL, DMIO_READ, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1);
	dmio_bdev_close(bdev);
	tu_nbd_stop(&s, SIGTERM);
	free(buf);
	g_free(missing);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	tu_add_guarded("/remote/properties", test_properties, TIMEOUT_S);
	tu_add_guarded("/remote/mirror", test_mirror, TIMEOUT_S);
	tu_add_guarded("/remote/flush-fua-zeroes", test_flush_fua_zeroes, TIMEOUT_S);
	tu_add_guarded("/remote/without-zero-and-fua", test_without_zero_and_fua, TIMEOUT_S);
	tu_add_guarded("/remote/split", test_split, TIMEOUT_S);
	tu_add_guarded("/remote/many-in-flight", test_many_in_flight, TIMEOUT_S);
	tu_add_guarded("/remote/server-errors", test_server_errors, TIMEOUT_S);
	tu_add_guarded("/remote/server-dies", test_server_dies, TIMEOUT_S);
	tu_add_guarded("/remote/reconnect", test_reconnect, TIMEOUT_S);
	tu_add_guarded("/remote/connect-timeout", test_connect_timeout, TIMEOUT_S);
	tu_add_guarded("/remote/tls", test_tls, TIMEOUT_S);
	tu_add_guarded("/remote/tls-certificates", test_tls_certificates, TIMEOUT_S);
	tu_add_guarded("/remote/refusals", test_refusals, TIMEOUT_S);
	return g_test_run();
}
