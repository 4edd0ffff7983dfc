/* mounts.c - see mounts.h.  A dmiofs mount's source in /proc/mounts is
 * the source as the user gave it (so mount -a recognises an fstab line);
 * the devices in use are read from the root's user.dmio.devices.  Mounts
 * of older versions show "dmiofs:DEV:DEV..." instead. */
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <glib.h>

#include "devlist.h"
#include "mounts.h"

static bool same_file(const struct stat *a, const char *path)
{
	struct stat b;

	if (stat(path, &b))
		return false;
	if (S_ISBLK(a->st_mode) && S_ISBLK(b.st_mode))
		return a->st_rdev == b.st_rdev;
	return a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

/* /proc/mounts escapes spaces and a few others as \ooo. */
static char *unescape(const char *s)
{
	GString *out = g_string_new(NULL);

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			g_string_append_c(out, (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0')));
			s += 3;
		} else {
			g_string_append_c(out, *s);
		}
	}
	return g_string_free(out, FALSE);
}

/* The device paths of the dmiofs mounted at mnt: from the source of an
 * older version's mount, else from user.dmio.devices ("... path=P"). */
static gchar **devices_of_mount(const char *src, const char *mnt)
{
	GPtrArray *out = g_ptr_array_new();
	char buf[16384];
	ssize_t len;

	if (g_str_has_prefix(src, "dmiofs:")) {
		char *devs = unescape(src + 7);
		gchar **paths;

		g_strdelimit(devs, ";", ','); /* that version swapped commas out */
		paths = devlist_split(devs);
		g_free(devs);
		g_ptr_array_free(out, TRUE);
		return paths;
	}
	len = getxattr(mnt, "user.dmio.devices", buf, sizeof(buf) - 1);
	if (len > 0) {
		gchar **lines;

		buf[len] = '\0';
		lines = g_strsplit(buf, "\n", -1);
		for (gchar **l = lines; *l; l++) {
			char *p = strstr(*l, " path=");

			if (p && p[6])
				g_ptr_array_add(out, g_strdup(p + 6));
		}
		g_strfreev(lines);
	}
	g_ptr_array_add(out, NULL);
	return (gchar **)g_ptr_array_free(out, FALSE);
}

char *dmiofs_mounted_at(const char *path)
{
	FILE *f = fopen("/proc/mounts", "re");
	char line[8192], *found = NULL;
	struct stat st;

	if (!f)
		return NULL;
	if (stat(path, &st)) {
		fclose(f);
		return NULL;
	}
	while (!found && fgets(line, sizeof(line), f)) {
		char src[4096], mnt[4096], type[256];
		char *where;
		gchar **paths;

		if (sscanf(line, "%4095s %4095s %255s", src, mnt, type) != 3 || strcmp(type, "fuse.dmiofs"))
			continue;
		where = unescape(mnt);
		paths = devices_of_mount(src, where);
		for (gchar **p = paths; *p && !found; p++)
			if (same_file(&st, *p))
				found = g_strdup(where);
		g_strfreev(paths);
		g_free(where);
	}
	fclose(f);
	return found;
}

GPtrArray *dmiofs_mount_points(void)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	FILE *f = fopen("/proc/mounts", "re");
	char line[8192];

	while (f && fgets(line, sizeof(line), f)) {
		char src[4096], mnt[4096], type[256];

		if (sscanf(line, "%4095s %4095s %255s", src, mnt, type) == 3 && !strcmp(type, "fuse.dmiofs"))
			g_ptr_array_add(out, unescape(mnt));
	}
	if (f)
		fclose(f);
	return out;
}

char *mount_type_at(const char *path)
{
	char *abs = realpath(path, NULL), *found = NULL;
	FILE *f = fopen("/proc/mounts", "re");
	char line[8192];

	while (abs && f && fgets(line, sizeof(line), f)) {
		char src[4096], mnt[4096], type[256];
		char *m;

		if (sscanf(line, "%4095s %4095s %255s", src, mnt, type) != 3)
			continue;
		m = unescape(mnt);
		if (!strcmp(m, abs)) { /* the last mount on a point is the one seen */
			g_free(found);
			found = g_strdup(type);
		}
		g_free(m);
	}
	if (f)
		fclose(f);
	free(abs);
	return found;
}

char *mount_devno_at(const char *path)
{
	char *abs = realpath(path, NULL), *found = NULL;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];

	while (abs && f && fgets(line, sizeof(line), f)) {
		char devno[64], point[4096];
		char *m;

		if (sscanf(line, "%*s %*s %63s %*s %4095s", devno, point) != 2)
			continue;
		m = unescape(point);
		if (!strcmp(m, abs)) { /* the last mount on a point is the one seen */
			g_free(found);
			found = g_strdup(devno);
		}
		g_free(m);
	}
	if (f)
		fclose(f);
	free(abs);
	return found;
}

bool devno_mounted(const char *devno)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	bool yes = false;

	while (f && !yes && fgets(line, sizeof(line), f)) {
		char d[64];

		yes = sscanf(line, "%*s %*s %63s", d) == 1 && !strcmp(d, devno);
	}
	if (f)
		fclose(f);
	return yes;
}
