/* mkfs.dmiofs - make a mirrored dmiofs file system on image files or
 * block devices.  Every device is probed first (libblkid, and our own
 * superblocks): one that holds a file system, a partition table or another
 * dmiofs is refused unless --force, and so are duplicates and devices too
 * small.  Nothing is written until every device has passed.
 *
 * Exit status: 0 made, 1 refused or failed, 2 bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <glib.h>

#include "config.h"
#include "../store/devlist.h"
#include "../store/format.h"
#include "dmio.h"
#include "../store/mkfs.h"
#include "../store/probe.h"
#include "../store/scan.h"
#include "size.h"

enum { MKFS_MADE = 0, MKFS_FAILED = 1, MKFS_USAGE = 2 };

#define DEFAULT_ROOT_RESERVE_PERMILLE 50 /* 5%, as mkfs.ext4 */

static const char usage_line[] =
	"usage: mkfs.dmiofs [-k COPIES] [-L LABEL] [-M SIZE] [-m PERCENT] [--preallocate] [-f] [-q] [-V] [-h]"
	" DEVICE[:DEVICE...]...\n";

struct options {
	gint copies;
	gchar *label;
	gchar *meta_size;
	gchar *reserve;
	gboolean preallocate;
	gboolean force;
	gboolean quiet;
	gboolean version;
};

/* Bad usage: what is wrong in one line, then every option; exit status 2. */
static int G_GNUC_PRINTF(1, 2) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mkfs.dmiofs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_line, stderr);
	return MKFS_USAGE;
}

/* The devices: each argument names one, or several joined by ':', the way
 * dmiofs takes them (dmiofs A:B MNT), so both ways and a mix of them
 * work; a path that holds ':' cannot be given, an NBD URI can
 * (devlist_split).  NULL, with the argument
 * named, when one has an empty name in it ("a::b", "a:"). */
static char **device_list(int argc, char **argv, uint32_t *n, const char **bad)
{
	GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);

	for (int i = 0; i < argc; i++) {
		char **parts = devlist_split(argv[i]);

		for (char **p = parts; *p; p++) {
			if (!**p) {
				*bad = argv[i];
				g_strfreev(parts);
				g_ptr_array_free(paths, TRUE);
				return NULL;
			}
			g_ptr_array_add(paths, g_strdup(*p));
		}
		g_strfreev(parts);
	}
	*n = paths->len;
	g_ptr_array_set_free_func(paths, NULL);
	g_ptr_array_add(paths, NULL);
	return (char **)g_ptr_array_free(paths, FALSE);
}

/* Everything that can be judged from the options and the number of
 * devices alone; fo gets the values.  MKFS_MADE when all is well. */
static int check_options(const struct options *o, uint32_t n, struct format_options *fo)
{
	if (o->copies != INT_MIN && o->copies < 1)
		return usage_error("--copies %d: every block needs at least one copy", o->copies);
	if (n > DMIOFS_MAX_DEVICES)
		return usage_error("%u devices given; a file system has at most %d", n, DMIOFS_MAX_DEVICES);
	if (o->copies != INT_MIN && (uint32_t)o->copies > n)
		return usage_error("%d copies need %d distinct devices; %u given", o->copies, o->copies, n);
	if (o->copies > DMIOFS_MAX_COPIES)
		return usage_error("--copies %d: at most %d", o->copies, DMIOFS_MAX_COPIES);
	/* One copy is a file system that loses files when its device dies:
	 * fine for a try-out, never by accident. */
	if (n == 1 && o->copies == INT_MIN)
		return usage_error("one device given: the file system would have no redundancy (every file is lost "
				   "if that device fails); give a second device, or --copies 1 to accept that");
	if (o->meta_size && parse_size(o->meta_size, &fo->meta_bytes))
		return usage_error("--meta-size %s: not a size (e.g. 64M, 1G)", o->meta_size);
	if (o->meta_size && fo->meta_bytes < (8u << 20))
		return usage_error("--meta-size %s: the metadata area needs at least 8M", o->meta_size);
	fo->root_reserve_permille = DEFAULT_ROOT_RESERVE_PERMILLE;
	if (o->reserve && (parse_percent_permille(o->reserve, &fo->root_reserve_permille) ||
			   fo->root_reserve_permille > DMIOFS_ROOT_RESERVE_MAX))
		return usage_error("--reserve %s: a percentage of the capacity from 0 to %d, with at most one "
				   "decimal (e.g. 5, 0.5)",
				   o->reserve, DMIOFS_ROOT_RESERVE_MAX / 10);
	if (o->label && strlen(o->label) > DMIOFS_LABEL_MAX)
		return usage_error("--label: at most %u bytes", DMIOFS_LABEL_MAX);
	/* A label is printed, and handed to udev as a property line: no
	 * control characters, and valid UTF-8. */
	for (const char *p = o->label; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return usage_error("--label: no control characters (newline, tab, ...)");
	if (o->label && !g_utf8_validate(o->label, -1, NULL))
		return usage_error("--label: not valid UTF-8");
	fo->copies = o->copies == INT_MIN ? 0 : (uint32_t)o->copies;
	fo->label = o->label;
	return MKFS_MADE;
}

/* Refuse what cannot or must not be formatted; 0 when every device passes. */
static int vet_devices(char **paths, uint32_t n, gboolean force)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	int bad = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct stat st;
		char *key, *what;

		if (dmio_bdev_path_is_remote(paths[i])) {
			key = g_strdup_printf("u%s", paths[i]); /* an export: its URI names it */
		} else if (stat(paths[i], &st)) {
			fprintf(stderr, "mkfs.dmiofs: %s: %s\n", paths[i], g_strerror(errno));
			bad++;
			continue;
		} else if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
			fprintf(stderr, "mkfs.dmiofs: %s: not a block device or a regular file (nor an NBD URI)\n", paths[i]);
			bad++;
			continue;
		} else {
			key = S_ISBLK(st.st_mode) ? g_strdup_printf("b%lu", (unsigned long)st.st_rdev)
						  : g_strdup_printf("f%lu:%lu", (unsigned long)st.st_dev,
								    (unsigned long)st.st_ino);
		}
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
static int preflight(char **paths, uint32_t n, uint64_t meta_bytes)
{
	uint64_t need = layout_min_bytes(meta_bytes);
	int bad = 0;

	for (uint32_t i = 0; i < n; i++) {
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

/* ---- sparse image files --------------------------------------------------- */

/* Bytes of an image file that the file system holding it has not
 * allocated (0 for a block device). */
static uint64_t unallocated_bytes(const struct stat *st)
{
	uint64_t allocated = (uint64_t)st->st_blocks * 512;

	if (!S_ISREG(st->st_mode) || allocated >= (uint64_t)st->st_size)
		return 0;
	return (uint64_t)st->st_size - allocated;
}

/* A sparse image takes its space only when written: should the file
 * system holding it fill up first, a write to it fails and dmiofs fails
 * that device for good.  Say so for every image more than a tenth
 * unallocated. */
static void warn_sparse(char **paths, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct stat st;
		uint64_t hole;
		char *h, *size;

		if (stat(paths[i], &st) || (hole = unallocated_bytes(&st)) <= (uint64_t)st.st_size / 10)
			continue;
		h = g_format_size_full(hole, G_FORMAT_SIZE_IEC_UNITS);
		size = g_format_size_full((uint64_t)st.st_size, G_FORMAT_SIZE_IEC_UNITS);
		fprintf(stderr,
			"mkfs.dmiofs: warning: %s is sparse: %s of its %s are not allocated; if the file system "
			"holding it fills up, writes to it fail and dmiofs fails the device for good; use "
			"--preallocate to allocate it now\n",
			paths[i], h, size);
		g_free(h);
		g_free(size);
	}
}

/* The images on the file system of device dev and what they lack. */
struct host_fs {
	dev_t dev;
	uint64_t need;
	GString *images;
	const char *any; /* one of them, for statvfs */
};

/* Is there room for every image to be allocated whole?  Counted per file
 * system holding them, before anything is allocated. */
static int check_room(char **paths, uint32_t n)
{
	struct host_fs fs[DMIOFS_MAX_DEVICES];
	uint32_t nfs = 0;
	int bad = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct stat st;
		uint32_t k = 0;

		if (stat(paths[i], &st) || !unallocated_bytes(&st))
			continue;
		while (k < nfs && fs[k].dev != st.st_dev)
			k++;
		if (k == nfs)
			fs[nfs++] = (struct host_fs){ st.st_dev, 0, g_string_new(NULL), paths[i] };
		fs[k].need += unallocated_bytes(&st);
		g_string_append_printf(fs[k].images, "%s%s", fs[k].images->len ? ", " : "", paths[i]);
	}
	for (uint32_t k = 0; k < nfs; k++) {
		struct statvfs sv;
		uint64_t room;

		if (statvfs(fs[k].any, &sv))
			continue; /* fallocate will say */
		/* root may take the blocks a file system keeps back for it */
		room = (uint64_t)(geteuid() ? sv.f_bavail : sv.f_bfree) * sv.f_frsize;
		if (room < fs[k].need) {
			char *need = g_format_size_full(fs[k].need, G_FORMAT_SIZE_IEC_UNITS);
			char *has = g_format_size_full(room, G_FORMAT_SIZE_IEC_UNITS);

			fprintf(stderr,
				"mkfs.dmiofs: %s: cannot preallocate: %s more are needed on the file system holding "
				"them, which has %s free; nothing was written\n",
				fs[k].images->str, need, has);
			g_free(need);
			g_free(has);
			bad++;
		}
	}
	for (uint32_t k = 0; k < nfs; k++)
		g_string_free(fs[k].images, TRUE);
	return bad ? -ENOSPC : 0;
}

/* Allocate one image file whole (fallocate mode 0: its contents stay as
 * they are), so it never fails for want of space. */
static int preallocate_one(const char *path)
{
	struct stat st;
	int fd, err = 0;

	if (dmio_bdev_path_is_remote(path))
		return 0; /* the server's storage is the server's */
	fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st))
		err = -errno;
	else if (unallocated_bytes(&st) && fallocate(fd, 0, 0, st.st_size))
		err = -errno;
	if (fd >= 0)
		close(fd);
	if (err)
		fprintf(stderr, "mkfs.dmiofs: %s: cannot preallocate it: %s%s; nothing was written\n", path,
			g_strerror(-err), err == -EOPNOTSUPP ? " (the file system holding it cannot)" : "");
	return err;
}

/* --preallocate: room for all first, so a shortage stops the run before
 * any image has grown. */
static int preallocate(char **paths, uint32_t n)
{
	int err = check_room(paths, n);

	for (uint32_t i = 0; i < n && !err; i++)
		err = preallocate_one(paths[i]);
	return err;
}

/* ---- the report ------------------------------------------------------------- */

static void print_report(const struct format_report *r, char **paths, const char *label, uint32_t reserve_permille)
{
	char uuid[37], *cap = g_format_size_full(r->capacity, G_FORMAT_SIZE_IEC_UNITS);
	char *reserve = g_format_size_full(r->root_reserve, G_FORMAT_SIZE_IEC_UNITS);
	char *percent = reserve_permille % 10 ? g_strdup_printf("%u.%u", reserve_permille / 10, reserve_permille % 10)
					      : g_strdup_printf("%u", reserve_permille / 10);

	uuid_format(r->fs_uuid, uuid);
	printf("dmiofs: created file system %s%s%s%s\n", uuid, label && *label ? " (label \"" : "",
	       label && *label ? label : "", label && *label ? "\")" : "");
	if (r->copies == 1)
		printf("  copies:   1 (no redundancy: every block is stored once)\n");
	else
		printf("  copies:   %u (every block is stored on %u distinct devices)\n", r->copies, r->copies);
	printf("  devices:  %u\n", r->ndevices);
	for (uint32_t i = 0; i < r->ndevices; i++) {
		char *size = g_format_size_full(r->dev_bytes[i], G_FORMAT_SIZE_IEC_UNITS);

		uuid_format(r->dev_uuid[i], uuid);
		printf("    %u  %s  %s  device %s\n", i, paths[i], size, uuid);
		g_free(size);
	}
	printf("  capacity: %s usable\n", cap);
	if (reserve_permille)
		printf("  reserved: %s of it (%s%%) only root may fill\n", reserve, percent);
	else
		printf("  reserved: none (every user may fill the file system)\n");
	g_free(cap);
	g_free(reserve);
	g_free(percent);
}

/* Block devices made members get their /dev/disk/by-uuid and by-label
 * links now (udev makes them too where it runs), so that UUID= and LABEL=
 * in /etc/fstab work at once, as they do after mkfs.ext4. */
static void link_members(char **paths, uint32_t n)
{
	GPtrArray *members;
	struct stat st;
	bool any = false;
	int err;

	for (uint32_t i = 0; i < n; i++)
		any |= !stat(paths[i], &st) && S_ISBLK(st.st_mode);
	if (!any || geteuid() != 0)
		return;
	members = scan_members();
	err = scan_make_links(members);
	if (err)
		fprintf(stderr, "mkfs.dmiofs: warning: cannot link the members in /dev/disk (%s); run dmiofs-ctl scan\n",
			g_strerror(-err));
	g_ptr_array_free(members, TRUE);
}

int main(int argc, char **argv)
{
	struct options o = { .copies = INT_MIN }; /* not given */
	GOptionEntry entries[] = {
		{ "copies", 'k', 0, G_OPTION_ARG_INT, &o.copies,
		  "copies of every block (default 2; one device needs --copies 1)", "COPIES" },
		{ "label", 'L', 0, G_OPTION_ARG_STRING, &o.label, "a label for the file system (up to 63 bytes)", "LABEL" },
		{ "meta-size", 'M', 0, G_OPTION_ARG_STRING, &o.meta_size,
		  "metadata area per device (default 1/32 of the smallest, 8M..64G)", "SIZE" },
		{ "reserve", 'm', 0, G_OPTION_ARG_STRING, &o.reserve,
		  "percent of the capacity only root may fill (default 5, 0..50)", "PERCENT" },
		{ "preallocate", 0, 0, G_OPTION_ARG_NONE, &o.preallocate,
		  "allocate image files whole before formatting (no sparse images)", NULL },
		{ "force", 'f', 0, G_OPTION_ARG_NONE, &o.force, "overwrite devices that hold a file system or partition table", NULL },
		{ "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "print nothing on success", NULL },
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &o.version, "print the version and exit", NULL },
		{ NULL },
	};
	GOptionContext *ctx = g_option_context_new("DEVICE[:DEVICE...]... - make a mirrored dmiofs file system");
	struct format_options fo = { 0 };
	struct format_report report;
	GError *error = NULL;
	GString *why = g_string_new(NULL);
	const char *bad = NULL;
	char **paths;
	uint32_t n = 0;
	int status, err;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx, "Devices are separate arguments, or joined by ':' as dmiofs takes "
					      "them.\nExit status: 0 made, 1 refused or failed, 2 bad usage.  See "
					      "mkfs.dmiofs(8).");
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		status = usage_error("%s", error->message);
		g_error_free(error);
		g_option_context_free(ctx);
		return status;
	}
	g_option_context_free(ctx);
	if (o.version) {
		printf("mkfs.dmiofs %s\n", PACKAGE_VERSION);
		return MKFS_MADE;
	}
	paths = device_list(argc - 1, argv + 1, &n, &bad);
	if (!paths)
		return usage_error("\"%s\": an empty device name (devices are joined by ':')", bad);
	if (!n)
		status = usage_error("no device given");
	else
		status = check_options(&o, n, &fo);
	if (status == MKFS_MADE && (vet_devices(paths, n, o.force) || preflight(paths, n, fo.meta_bytes) ||
				    (o.preallocate && preallocate(paths, n))))
		status = MKFS_FAILED;
	if (status == MKFS_MADE)
		warn_sparse(paths, n);
	if (status == MKFS_MADE && o.force)
		for (uint32_t i = 0; i < n; i++)
			if ((err = probe_wipe(paths[i])))
				fprintf(stderr, "mkfs.dmiofs: %s: wiping old signatures failed: %s\n", paths[i],
					g_strerror(-err));
	if (status == MKFS_MADE) {
		fo.uid = getuid();
		fo.gid = getgid();
		err = store_format((const char *const *)paths, n, &fo, &report, why);
		if (err)
			fprintf(stderr, "mkfs.dmiofs: %s\n", why->str);
		else if (!o.quiet)
			print_report(&report, paths, o.label, fo.root_reserve_permille);
		status = err ? MKFS_FAILED : MKFS_MADE;
		if (!err)
			link_members(paths, n);
	}
	g_strfreev(paths);
	g_string_free(why, TRUE);
	g_free(o.label);
	g_free(o.meta_size);
	g_free(o.reserve);
	return status;
}
