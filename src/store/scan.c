/* scan.c - see scan.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devlist.h"
#include "rawdev.h"
#include "scan.h"

#define SYS_BLOCK "/sys/class/block"

static void member_free(gpointer p)
{
	struct member *m = p;

	g_free(m->path);
	g_free(m);
}

/* The size in bytes /sys says the block device NAME has (0: none, as
 * an unbound loop device or an empty drive). */
static uint64_t sys_block_bytes(const char *name)
{
	char *path = g_strdup_printf(SYS_BLOCK "/%s/size", name), *text = NULL;
	uint64_t sectors = 0;

	if (g_file_get_contents(path, &text, NULL, NULL))
		sectors = g_ascii_strtoull(text, NULL, 10);
	g_free(text);
	g_free(path);
	return sectors * 512;
}

/* The newer valid superblock of the device (primary or backup), as
 * mounting would choose it: 0, or -ENODATA when it holds none.  bytes:
 * the device's size, or 0 to ask the device. */
static int read_superblock(const char *path, uint64_t bytes, struct superblock *out)
{
	uint8_t block[DMIOFS_BLOCK];
	struct superblock sb;
	struct rawdev dev;
	int found = -ENODATA, err = rawdev_open(&dev, path, false);

	if (err)
		return err;
	if (!bytes)
		bytes = dev.bytes;
	if (!rawdev_pread(&dev, block, sizeof(block), 0) && !sb_decode(block, &sb)) {
		*out = sb;
		found = 0;
	}
	/* The backup counts only when it is this device's: the last block of
	 * a whole disk is the backup of a member partition ending there, and
	 * the disk is no member (its dev_bytes would be the partition's). */
	if (bytes >= 2 * DMIOFS_BLOCK && !rawdev_pread(&dev, block, sizeof(block), sb_backup_offset(bytes)) &&
	    !sb_decode(block, &sb) && sb.dev_bytes == (bytes & ~(uint64_t)(DMIOFS_BLOCK - 1)) &&
	    (found || sb.generation > out->generation)) {
		*out = sb;
		found = 0;
	}
	rawdev_close(&dev);
	return found;
}

int scan_device(const char *path, struct superblock *out)
{
	return read_superblock(path, 0, out);
}

/* loop2 before loop10: the order people read. */
static gint by_path(gconstpointer a, gconstpointer b)
{
	const struct member *x = *(struct member *const *)a, *y = *(struct member *const *)b;

	return strverscmp(x->path, y->path);
}

GPtrArray *scan_members(void)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(member_free);
	DIR *dir = opendir(SYS_BLOCK);
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		uint64_t bytes;
		struct member *m;
		char *path;

		if (e->d_name[0] == '.' || !(bytes = sys_block_bytes(e->d_name)))
			continue;
		path = g_strdup_printf("/dev/%s", e->d_name);
		m = g_new0(struct member, 1);
		if (read_superblock(path, bytes, &m->sb)) {
			g_free(path);
			g_free(m);
			continue;
		}
		m->path = path;
		g_ptr_array_add(out, m);
	}
	if (dir)
		closedir(dir);
	g_ptr_array_sort(out, by_path);
	return out;
}

/* The newest superblock of m's file system among those found: its
 * device table says who belongs. */
static const struct member *newest_of(GPtrArray *all, const struct member *m)
{
	const struct member *newest = m;

	for (uint32_t i = 0; i < all->len; i++) {
		const struct member *o = g_ptr_array_index(all, i);

		if (!memcmp(o->sb.fs_uuid, m->sb.fs_uuid, 16) && o->sb.generation > newest->sb.generation)
			newest = o;
	}
	return newest;
}

/* A device removed or replaced keeps its old superblock: it is no member
 * when the newest superblock's table no longer lists it. */
static bool still_member(GPtrArray *all, const struct member *m)
{
	const struct superblock *sb = &newest_of(all, m)->sb;

	for (uint32_t k = 0; k < sb->ndevices && k < DMIOFS_MAX_DEVICES; k++)
		if (!memcmp(sb->devs[k].uuid, m->sb.dev_uuid, 16))
			return sb->devs[k].state != DEV_REMOVED;
	return false;
}

const char *scan_member_state(GPtrArray *all, const struct member *m)
{
	const struct superblock *sb = &newest_of(all, m)->sb;

	for (uint32_t k = 0; k < sb->ndevices && k < DMIOFS_MAX_DEVICES; k++)
		if (!memcmp(sb->devs[k].uuid, m->sb.dev_uuid, 16))
			return dev_state_name(sb->devs[k].state);
	return "no longer a member";
}

uint32_t scan_device_count(GPtrArray *all, const struct member *m)
{
	const struct superblock *sb = &newest_of(all, m)->sb;
	uint32_t n = 0;

	for (uint32_t k = 0; k < sb->ndevices && k < DMIOFS_MAX_DEVICES; k++)
		n += sb->devs[k].state != DEV_REMOVED;
	return n;
}

static bool member_matches(const struct member *m, const char *uuid, const char *label)
{
	char text[37];

	uuid_format(m->sb.fs_uuid, text);
	return uuid ? !g_ascii_strcasecmp(text, uuid) : !strcmp(m->sb.label, label);
}

/* Every member of the file system the uuid (or label) names, ordered by
 * device index; NULL with why said when there is none, or the label
 * names more than one file system. */
static char **members_named(GPtrArray *all, const char *uuid, const char *label, GString *why)
{
	GPtrArray *paths = g_ptr_array_new();
	const struct member *first = NULL;

	for (uint32_t i = 0; i < all->len; i++) {
		const struct member *m = g_ptr_array_index(all, i);

		if (!member_matches(m, uuid, label) || !still_member(all, m))
			continue;
		if (first && memcmp(first->sb.fs_uuid, m->sb.fs_uuid, 16)) {
			char a[37], b[37];

			uuid_format(first->sb.fs_uuid, a);
			uuid_format(m->sb.fs_uuid, b);
			g_string_printf(why,
					"LABEL=%s names two dmiofs file systems (UUID=%s on %s, UUID=%s on %s): "
					"name it by UUID",
					label, a, first->path, b, m->path);
			g_ptr_array_free(paths, TRUE);
			return NULL;
		}
		first = first ? first : m;
		g_ptr_array_add(paths, g_strdup(m->path));
	}
	if (!paths->len) {
		g_string_printf(why,
				"%s%s: no block device holds a member of such a dmiofs file system "
				"(dmiofs-ctl scan lists those found; image files are named by path)",
				uuid ? "UUID=" : "LABEL=", uuid ? uuid : label);
		g_ptr_array_free(paths, TRUE);
		return NULL;
	}
	g_ptr_array_add(paths, NULL);
	return (char **)g_ptr_array_free(paths, FALSE);
}

/* The member the block device at path is, or NULL. */
static const struct member *member_at(GPtrArray *all, const char *path)
{
	struct stat a, b;

	if (stat(path, &a) || !S_ISBLK(a.st_mode))
		return NULL;
	for (uint32_t i = 0; i < all->len; i++) {
		const struct member *m = g_ptr_array_index(all, i);

		if (!stat(m->path, &b) && b.st_rdev == a.st_rdev)
			return m;
	}
	return NULL;
}

/* One block device that is a member stands for its whole file system:
 * itself first (as given), then the others found.  One that was removed
 * (a stale /dev/disk link may still name it) leads to the members only. */
static char **whole_file_system(GPtrArray *all, const char *given, const struct member *m)
{
	GPtrArray *paths = g_ptr_array_new();

	if (still_member(all, m))
		g_ptr_array_add(paths, g_strdup(given));
	for (uint32_t i = 0; i < all->len; i++) {
		const struct member *o = g_ptr_array_index(all, i);

		if (o != m && !memcmp(o->sb.fs_uuid, m->sb.fs_uuid, 16) && still_member(all, o))
			g_ptr_array_add(paths, g_strdup(o->path));
	}
	g_ptr_array_add(paths, NULL);
	return (char **)g_ptr_array_free(paths, FALSE);
}

char **scan_resolve_source(const char *source, bool alone, GString *why)
{
	GPtrArray *all;
	const struct member *m;
	char **out;
	struct stat st;

	if (g_str_has_prefix(source, "UUID=") || g_str_has_prefix(source, "LABEL=")) {
		bool by_uuid = source[0] == 'U';
		const char *value = strchr(source, '=') + 1;

		all = scan_members();
		out = members_named(all, by_uuid ? value : NULL, by_uuid ? NULL : value, why);
		g_ptr_array_free(all, TRUE);
		return out;
	}
	if (!alone || strchr(source, ':') || stat(source, &st) || !S_ISBLK(st.st_mode))
		return devlist_split(source);
	all = scan_members();
	m = member_at(all, source);
	out = m ? whole_file_system(all, source, m) : devlist_split(source);
	g_ptr_array_free(all, TRUE);
	return out;
}

char **scan_resolve_sources(char *const *sources, int n, GString *why)
{
	GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);

	for (int i = 0; i < n; i++) {
		char **found = scan_resolve_source(sources[i], n == 1, why);

		if (!found) {
			g_ptr_array_free(paths, TRUE);
			return NULL;
		}
		for (char **p = found; *p; p++)
			if (**p) /* "a::b" and "a:" name nothing more */
				g_ptr_array_add(paths, devlist_canonical(*p));
		g_strfreev(found);
	}
	g_ptr_array_set_free_func(paths, NULL);
	g_ptr_array_add(paths, NULL);
	return (char **)g_ptr_array_free(paths, FALSE);
}

/* Point dir/name at target, replacing what was there. */
static int link_in(const char *dir, const char *name, const char *target)
{
	char *path = g_build_filename(dir, name, NULL), *tmp = g_strconcat(path, ".dmiofs-new", NULL);
	int err = 0;

	if (g_mkdir_with_parents(dir, 0755) || (unlink(tmp), symlink(target, tmp)) || rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	g_free(tmp);
	g_free(path);
	return err;
}

char *scan_encode_label(const char *label)
{
	GString *out = g_string_new(NULL);
	bool utf8 = g_utf8_validate(label, -1, NULL); /* else every high byte is escaped */

	for (const unsigned char *p = (const unsigned char *)label; *p; p++)
		if (g_ascii_isalnum(*p) || strchr("#+-.:=@_", *p) || (*p >= 0x80 && utf8))
			g_string_append_c(out, (char)*p);
		else
			g_string_append_printf(out, "\\x%02x", *p);
	return g_string_free(out, FALSE);
}

/* The link dir/name leads somewhere that is not a dmiofs member: a file
 * system udev linked under the same label, which is not ours to take. */
static bool links_elsewhere(const char *dir, const char *name)
{
	char *path = g_build_filename(dir, name, NULL);
	struct superblock sb;
	struct stat st;
	bool foreign = !stat(path, &st) && S_ISBLK(st.st_mode) && scan_device(path, &sb) == -ENODATA;

	g_free(path);
	return foreign;
}

/* Links of ours gone stale: to a device that is gone or empty (a loop
 * device detached), or to a member of another dmiofs file system than the
 * name says (a device formatted again).  Links to anything else are
 * udev's, and left alone. */
static void remove_stale_links(const char *dir, bool by_uuid)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		char *path = g_build_filename(dir, name, NULL), *want = NULL;
		struct superblock sb;
		struct stat st;
		bool stale;

		if (stat(path, &st)) {
			stale = errno == ENOENT;
		} else if (!S_ISBLK(st.st_mode) || scan_device(path, &sb)) {
			stale = false;
		} else {
			char uuid[37];

			uuid_format(sb.fs_uuid, uuid);
			want = by_uuid ? g_strdup(uuid) : scan_encode_label(sb.label);
			stale = strcmp(want, name) != 0;
		}
		if (stale)
			unlink(path);
		g_free(want);
		g_free(path);
	}
	if (d)
		g_dir_close(d);
}

int scan_make_links(GPtrArray *members)
{
	GHashTable *done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	int err = 0;

	remove_stale_links("/dev/disk/by-uuid", true);
	remove_stale_links("/dev/disk/by-label", false);

	/* The member with the lowest index stands for its file system: any
	 * member leads the mount to the others. */
	for (uint32_t i = 0; i < members->len; i++) {
		const struct member *m = g_ptr_array_index(members, i), *best = m;
		char uuid[37];
		int e;

		uuid_format(m->sb.fs_uuid, uuid);
		if (g_hash_table_contains(done, uuid) || !still_member(members, m))
			continue;
		for (uint32_t j = i + 1; j < members->len; j++) {
			const struct member *o = g_ptr_array_index(members, j);

			if (!memcmp(o->sb.fs_uuid, m->sb.fs_uuid, 16) && o->sb.dev_index < best->sb.dev_index &&
			    still_member(members, o))
				best = o;
		}
		g_hash_table_add(done, g_strdup(uuid));
		e = link_in("/dev/disk/by-uuid", uuid, best->path);
		if (!e && best->sb.label[0]) {
			char *name = scan_encode_label(best->sb.label);

			if (!links_elsewhere("/dev/disk/by-label", name))
				e = link_in("/dev/disk/by-label", name, best->path);
			g_free(name);
		}
		err = err ? err : e;
	}
	g_hash_table_destroy(done);
	return err;
}
