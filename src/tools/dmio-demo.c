/* dmio-demo - a short tour of libdmio: one write fanned out to every image
 * file in a single dm-io request, then each copy read back and compared.
 * With --inject, a fault rule on one device shows its error bit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "dmio.h"

#define DEMO_BYTES (1u << 20)

static int make_image(const char *path, guint64 bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && (guint64)st.st_size < bytes && ftruncate(fd, (off_t)bytes))
		err = -errno;
	close(fd);
	return err;
}

/* A fresh pattern every run, so a copy left over from an earlier run
 * cannot pass for this run's write. */
static void fill_pattern(unsigned char *buf, size_t len)
{
	guint32 seed = g_random_int();

	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + i / 4096 + seed);
}

static struct page_list *page_list_new(unsigned int pages)
{
	struct page_list *head = NULL;

	while (pages--) {
		struct page_list *pl = g_new0(struct page_list, 1);

		pl->page = dmio_page_alloc();
		if (!pl->page)
			g_error("out of memory");
		pl->next = head;
		head = pl;
	}
	return head;
}

static void page_list_free(struct page_list *pl)
{
	while (pl) {
		struct page_list *next = pl->next;

		dmio_page_free(pl->page);
		g_free(pl);
		pl = next;
	}
}

static gboolean page_list_equals(struct page_list *pl, const unsigned char *data, size_t len)
{
	for (size_t off = 0; off < len; off += DMIO_PAGE_SIZE, pl = pl->next)
		if (memcmp(dmio_page_address(pl->page), data + off, DMIO_PAGE_SIZE))
			return FALSE;
	return TRUE;
}

static void close_all(struct block_device **bdev, int n)
{
	for (int i = 0; i < n; i++)
		dmio_bdev_close(bdev[i]);
}

/* Create the images if needed and open them; returns how many opened. */
static int open_images(char **paths, int n, gint size_mib, struct block_device **bdev, struct io_region *where)
{
	for (int i = 0; i < n; i++) {
		int ret = make_image(paths[i], (guint64)size_mib << 20);

		if (ret) {
			fprintf(stderr, "dmio-demo: %s: cannot create image: %s\n", paths[i], strerror(-ret));
			return i;
		}
		bdev[i] = dmio_bdev_open(paths[i], O_RDWR);
		if (!bdev[i]) {
			fprintf(stderr, "dmio-demo: %s: %s\n", paths[i], strerror(errno));
			return i;
		}
		where[i] = (struct io_region){ bdev[i], 0, DEMO_BYTES >> DMIO_SECTOR_SHIFT };
		printf("device %d: %s, %llu sectors, %s I/O\n", i, paths[i],
		       (unsigned long long)dmio_bdev_sectors(bdev[i]), dmio_bdev_is_direct(bdev[i]) ? "direct" : "buffered");
	}
	return n;
}

static int add_fault(struct block_device **bdev, int n, gint dev, const char *spec)
{
	struct dmio_fault rule;

	if (dev < 0 || dev >= n || dmio_fault_parse(spec, &rule) || dmio_fault_add(bdev[dev], &rule) < 0) {
		fprintf(stderr, "dmio-demo: bad --inject-device or --inject rule '%s' (see dmio_fault(3))\n", spec);
		return -EINVAL;
	}
	printf("fault rule on device %d: %s\n", dev, spec);
	return 0;
}

/* Write the pattern to every region at once, then read each back. */
static int write_and_compare(struct io_region *where, int n)
{
	unsigned char *data = aligned_alloc(DMIO_PAGE_SIZE, DEMO_BYTES);
	unsigned long bits = 0;
	int ret, failures = 0;

	if (!data)
		g_error("out of memory");
	fill_pattern(data, DEMO_BYTES);
	ret = dm_io_sync_vm((unsigned int)n, where, DMIO_WRITE, data, &bits);
	printf("write: 1 MiB fanned out to %d region(s) in one request: %s, error bits 0x%lx\n", n,
	       ret ? strerror(-ret) : "ok", bits);
	for (int i = 0; i < n; i++) {
		struct page_list *pl = page_list_new(DEMO_BYTES / DMIO_PAGE_SIZE);
		gboolean same;

		ret = dm_io_sync(1, &where[i], DMIO_READ, pl, 0, &bits);
		same = !ret && page_list_equals(pl, data, DEMO_BYTES);
		printf("read back device %d: %s, error bits 0x%lx, %s\n", i, ret ? strerror(-ret) : "ok", bits,
		       same ? "identical to what was written" : "DIFFERENT from what was written");
		failures += !same;
		page_list_free(pl);
	}
	free(data);
	return failures;
}

int main(int argc, char **argv)
{
	gint size_mib = 64, inject_dev = -1;
	gchar *inject_spec = NULL;
	GOptionEntry entries[] = {
		{ "size", 's', 0, G_OPTION_ARG_INT, &size_mib, "size of image files created (MiB, default 64)", "MIB" },
		{ "inject-device", 'd', 0, G_OPTION_ARG_INT, &inject_dev, "device index for --inject (from 0)", "N" },
		{ "inject", 'i', 0, G_OPTION_ARG_STRING, &inject_spec, "fault rule, see dmio_fault(3)", "SPEC" },
		{ NULL },
	};
	GOptionContext *ctx = g_option_context_new("IMAGE... - fan one write out to every image, read each back");
	GError *error = NULL;
	struct io_region where[DM_IO_MAX_REGIONS];
	struct block_device *bdev[DM_IO_MAX_REGIONS];
	int n, opened, status;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		fprintf(stderr, "dmio-demo: %s\n", error->message);
		g_error_free(error);
		g_option_context_free(ctx);
		return 2;
	}
	g_option_context_free(ctx);
	n = argc - 1;
	if (n < 1 || n > (int)DM_IO_MAX_REGIONS || size_mib < 1) {
		fprintf(stderr, "usage: dmio-demo [--size MIB] [--inject-device N --inject SPEC] IMAGE...\n");
		g_free(inject_spec);
		return 2;
	}
	opened = open_images(argv + 1, n, size_mib, bdev, where);
	if (opened < n) {
		status = 1;
	} else if (inject_spec && add_fault(bdev, n, inject_dev, inject_spec)) {
		status = 2;
	} else if (dm_io_get(DEMO_BYTES / DMIO_PAGE_SIZE)) {
		fprintf(stderr, "dmio-demo: cannot reserve I/O pages\n");
		status = 1;
	} else {
		int failures = write_and_compare(where, n);

		dm_io_put(DEMO_BYTES / DMIO_PAGE_SIZE);
		printf("%s\n", failures ? "some copies differ" : "every copy holds the same bytes");
		status = failures ? 1 : 0;
	}
	close_all(bdev, opened);
	g_free(inject_spec);
	return status;
}
