/* mkfs.dmiofs - make a mirrored dmiofs file system on image files or
 * block devices.  Every device is probed first (libblkid, and our own
 * superblocks): one that holds a file system, a partition table or another
 * dmiofs is refused unless --force, and so are duplicates and devices too
 * small.  Nothing is written until every device has passed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "../store/format.h"
#include "dmio.h"
#include "../store/mkfs.h"
#include "../store/probe.h"
#include "size.h"

struct options {
	gint copies;
	gchar *label;
	gchar *meta_size;
	gboolean force;
	gboolean quiet;
};

/* Refuse what cannot or must not be formatted; 0 when every device passes. */
static int vet_devices(char **paths, int n, gboolean force)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	int bad = 0;

	for (int i = 0; i < n; i++) {
		struct stat st;
		char *key, *what;

		if (stat(paths[i], &st)) {
			fprintf(stderr, "mkfs.dmiofs: %s: %s\n", paths[i], g_strerror(errno));
			bad++;
			continue;
		}
		if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
			fprintf(stderr, "mkfs.dmiofs: %s: not a block device or a regular file\n", paths[i]);
			bad++;
			continue;
		}
		key = S_ISBLK(st.st_mode) ? g_strdup_printf("b%lu", (unsigned long)st.st_rdev)
					  : g_strdup_printf("f%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
		if (g_hash_table_contains(seen, key)) {
			fprintf(stderr, "mkfs.dmiofs: %s: the same device as %s; every copy needs its own device\n",
				paths[i], (char *)g_hash_table_lookup(seen, key));
			g_free(key);
			bad++;
			continue;
		}
		g_hash_table_insert(seen, key, g_strdup(paths[i]));
		what = probe_dmiofs(paths[i]);
		if (!what)
			what = probe_signature(paths[i]);
		if (what && !force) {
			fprintf(stderr, "mkfs.dmiofs: %s holds %s; refusing to overwrite it (use --force to destroy it)\n",
				paths[i], what);
			bad++;
		} else if (what) {
			fprintf(stderr, "mkfs.dmiofs: %s: overwriting %s (--force)\n", paths[i], what);
		}
		g_free(what);
	}
	g_hash_table_destroy(seen);
	return bad ? -EINVAL : 0;
}

/* Before --force destroys anything: every device must open exclusively
 * (nothing else uses it) and be large enough. */
static int preflight(char **paths, int n, uint64_t meta_bytes)
{
	uint64_t need = layout_min_bytes(meta_bytes);
	int bad = 0;

	for (int i = 0; i < n; i++) {
		struct block_device *bdev = dmio_bdev_open(paths[i], O_RDWR);
		uint64_t bytes;

		if (!bdev) {
			fprintf(stderr, "mkfs.dmiofs: %s: cannot open: %s%s\n", paths[i], g_strerror(errno),
				errno == EBUSY ? " (mounted, or in use by another program)" : "");
			bad++;
			continue;
		}
		bytes = dmio_bdev_sectors(bdev) << DMIO_SECTOR_SHIFT;
		if (bytes < need) {
			fprintf(stderr, "mkfs.dmiofs: %s (%llu KiB): too small for dmiofs; every device needs at least %llu MiB\n",
				paths[i], (unsigned long long)(bytes >> 10), (unsigned long long)(need >> 20));
			bad++;
		}
		dmio_bdev_close(bdev);
	}
	return bad ? -EINVAL : 0;
}

static void print_report(const struct format_report *r, char **paths, const char *label)
{
	char uuid[37], *cap = g_format_size_full(r->capacity, G_FORMAT_SIZE_IEC_UNITS);

	uuid_format(r->fs_uuid, uuid);
	printf("dmiofs: created file system %s%s%s%s\n", uuid, label && *label ? " (label \"" : "",
	       label && *label ? label : "", label && *label ? "\")" : "");
	printf("  copies:   %u (every block is stored on %u distinct devices)\n", r->copies, r->copies);
	printf("  devices:  %u\n", r->ndevices);
	for (uint32_t i = 0; i < r->ndevices; i++) {
		char *size = g_format_size_full(r->dev_bytes[i], G_FORMAT_SIZE_IEC_UNITS);

		uuid_format(r->dev_uuid[i], uuid);
		printf("    %u  %s  %s  device %s\n", i, paths[i], size, uuid);
		g_free(size);
	}
	printf("  capacity: %s usable\n", cap);
	g_free(cap);
}

int main(int argc, char **argv)
{
	struct options o = { .copies = INT_MIN }; /* not given */
	GOptionEntry entries[] = {
		{ "copies", 'k', 0, G_OPTION_ARG_INT, &o.copies, "copies of every block (default 2; 1 with one device)", "K" },
		{ "label", 'L', 0, G_OPTION_ARG_STRING, &o.label, "a label for the file system (up to 63 bytes)", "L" },
		{ "force", 'f', 0, G_OPTION_ARG_NONE, &o.force, "overwrite devices that hold a file system or partition table", NULL },
		{ "meta-size", 'm', 0, G_OPTION_ARG_STRING, &o.meta_size, "metadata area per device (default 1/32 of the smallest, 8M..64G)", "SIZE" },
		{ "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "print nothing on success", NULL },
		{ NULL },
	};
	GOptionContext *ctx = g_option_context_new("DEVICE... - make a mirrored dmiofs file system");
	struct format_options fo = { 0 };
	struct format_report report;
	GError *error = NULL;
	GString *why = g_string_new(NULL);
	int n, err;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx, "See mkfs.dmiofs(8).");
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		fprintf(stderr, "mkfs.dmiofs: %s\n", error->message);
		return 2;
	}
	g_option_context_free(ctx);
	n = argc - 1;
	if (n < 1) {
		fprintf(stderr, "usage: mkfs.dmiofs [--copies K] [--label L] [--meta-size SIZE] [--force] [--quiet] DEVICE...\n");
		return 2;
	}
	if (o.copies != INT_MIN && o.copies < 1) {
		fprintf(stderr, "mkfs.dmiofs: --copies %d: every block needs at least one copy\n", o.copies);
		return 2;
	}
	if (n > DMIOFS_MAX_DEVICES) {
		fprintf(stderr, "mkfs.dmiofs: %d devices given; a file system has at most %d\n", n, DMIOFS_MAX_DEVICES);
		return 2;
	}
	if (o.copies > n) {
		fprintf(stderr, "mkfs.dmiofs: %d copies need %d distinct devices; %d given\n", o.copies, o.copies, n);
		return 2;
	}
	if (o.copies > DMIOFS_MAX_COPIES) {
		fprintf(stderr, "mkfs.dmiofs: --copies %d: at most %d\n", o.copies, DMIOFS_MAX_COPIES);
		return 2;
	}
	if (o.meta_size && parse_size(o.meta_size, &fo.meta_bytes)) {
		fprintf(stderr, "mkfs.dmiofs: --meta-size %s: not a size (e.g. 64M, 1G)\n", o.meta_size);
		return 2;
	}
	if (o.meta_size && fo.meta_bytes < (8u << 20)) {
		fprintf(stderr, "mkfs.dmiofs: --meta-size %s: the metadata area needs at least 8M\n", o.meta_size);
		return 2;
	}
	if (o.label && strlen(o.label) > DMIOFS_LABEL_MAX) {
		fprintf(stderr, "mkfs.dmiofs: --label: at most %u bytes\n", DMIOFS_LABEL_MAX);
		return 2;
	}
	if (vet_devices(argv + 1, n, o.force) || preflight(argv + 1, n, fo.meta_bytes))
		return 1;
	if (o.force)
		for (int i = 0; i < n; i++)
			if ((err = probe_wipe(argv[i + 1])))
				fprintf(stderr, "mkfs.dmiofs: %s: wiping old signatures failed: %s\n", argv[i + 1],
					g_strerror(-err));
	fo.copies = o.copies == INT_MIN ? 0 : (uint32_t)o.copies;
	fo.label = o.label;
	fo.uid = getuid();
	fo.gid = getgid();
	err = store_format((const char *const *)argv + 1, (uint32_t)n, &fo, &report, why);
	if (err) {
		fprintf(stderr, "mkfs.dmiofs: %s\n", why->str);
		return 1;
	}
	if (!o.quiet)
		print_report(&report, argv + 1, o.label);
	g_string_free(why, TRUE);
	g_free(o.label);
	g_free(o.meta_size);
	return 0;
}
