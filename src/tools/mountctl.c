/* mountctl.c - see mountctl.h. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../store/mounts.h"
#include "../store/scan.h"
#include "channel.h"
#include "mountctl.h"

/* ---- remount -------------------------------------------------------------------- */

#ifndef ST_NOSYMFOLLOW
#define ST_NOSYMFOLLOW 0x2000 /* Linux 5.10; glibc's statvfs.h lacks it */
#endif

/* The flags the mount has now, which a remount must give again or lose. */
static unsigned long kept_flags(const char *mnt)
{
	static const struct {
		unsigned long st, ms;
	} map[] = { { ST_NOSUID, MS_NOSUID },	  { ST_NODEV, MS_NODEV },	{ ST_NOEXEC, MS_NOEXEC },
		    { ST_NOATIME, MS_NOATIME },	  { ST_NODIRATIME, MS_NODIRATIME }, { ST_RELATIME, MS_RELATIME },
		    { ST_SYNCHRONOUS, MS_SYNCHRONOUS }, { ST_NOSYMFOLLOW, MS_NOSYMFOLLOW } };
	struct statvfs sv;
	unsigned long flags = 0;

	if (statvfs(mnt, &sv))
		return 0;
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (sv.f_flag & map[i].st)
			flags |= map[i].ms;
	return flags;
}

static int kernel_remount(const char *mnt, bool read_only)
{
	if (mount(NULL, mnt, NULL, MS_REMOUNT | kept_flags(mnt) | (read_only ? MS_RDONLY : 0), NULL)) {
		int err = errno;

		fprintf(stderr, "%s: %s: the kernel refused to remount it %s: %s%s\n", g_get_prgname(), mnt,
			read_only ? "read-only" : "read-write", g_strerror(err),
			err == EBUSY ? " (files are open for writing: close them first)" : "");
		return -err;
	}
	return 0;
}

static bool ask_daemon_remount(const char *mnt, bool read_only, bool json)
{
	JsonBuilder *b = request("remount");
	JsonNode *r;

	json_builder_set_member_name(b, "read_only");
	json_builder_add_boolean_value(b, read_only);
	r = ask_and_free(mnt, b);
	if (r && json) {
		JsonGenerator *gen = json_generator_new();
		char *text;

		json_generator_set_root(gen, r);
		json_generator_set_pretty(gen, TRUE);
		text = json_generator_to_data(gen, NULL);
		puts(text);
		g_free(text);
		g_object_unref(gen);
	}
	if (r)
		json_node_unref(r);
	return r != NULL;
}

/* Read-only: the kernel first (it waits for writers and refuses new
 * ones), then the daemon checkpoints and marks the devices clean.
 * Writable: the daemon first, so the kernel never lets a write through
 * to a store that refuses it. */
/* Is mnt the mount point of a dmiofs?  Said when not: nothing else may
 * be remounted or unmounted by these commands. */
static bool is_dmiofs_mount(const char *mnt)
{
	char *type = mount_type_at(mnt);
	bool yes = type && !strcmp(type, "fuse.dmiofs");

	if (!yes)
		fprintf(stderr, "%s: %s: %s%s%s\n", g_get_prgname(), mnt,
			type ? "not a dmiofs mount (it is " : "not the mount point of a dmiofs file system", type ? type : "",
			type ? ")" : "");
	g_free(type);
	return yes;
}

int ctl_remount(const char *mnt, bool read_only, bool json)
{
	if (!is_dmiofs_mount(mnt))
		return 1;
	if (read_only) {
		if (kernel_remount(mnt, true))
			return 1;
		if (!ask_daemon_remount(mnt, true, json)) {
			kernel_remount(mnt, false); /* as it was */
			return 1;
		}
		return 0;
	}
	if (!ask_daemon_remount(mnt, false, json))
		return 1;
	if (kernel_remount(mnt, false)) {
		ask_daemon_remount(mnt, true, false); /* as it was */
		return 1;
	}
	return 0;
}

/* ---- unmount --------------------------------------------------------------------- */

/* Wait on the pidfd for the daemon to end, saying now and then what is
 * awaited; without a pidfd (it is gone already, or pidfds are missing),
 * poll the pid. */
static int wait_for_exit(int pidfd, pid_t pid, const char *mnt, bool verbose)
{
	if (pidfd < 0)
		while (!kill(pid, 0) || errno != ESRCH)
			usleep(20000);
	while (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int n = poll(&p, 1, 10000);

		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0)
			fprintf(stderr, "%s: %s: waiting for the daemon (pid %d) to write its last checkpoint\n",
				g_get_prgname(), mnt, (int)pid);
	}
	if (verbose)
		printf("%s: unmounted; the daemon wrote its last checkpoint and let go of the devices\n", mnt);
	return 0;
}

/* A user unmounts a FUSE mount of theirs through fusermount3 (set-user-ID
 * root), as umount(8) of an fstab "user" line runs us without root. */
static bool user_unmount(const char *mnt, int flags)
{
	const char *argv[] = { "fusermount3", "-u", (flags & MNT_DETACH) ? "-z" : "-u", mnt, NULL };
	int status = -1;

	if (geteuid() == 0)
		return false;
	if (!(flags & MNT_DETACH))
		argv[2] = mnt, argv[3] = NULL;
	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		errno = EPERM;
		return false;
	}
	return true;
}

int ctl_unmount(const char *mnt, int flags, bool verbose)
{
	bool forced = flags & (MNT_DETACH | MNT_FORCE);
	char *devno;
	pid_t pid = -1;
	int pidfd = -1, ret = 0;

	if (!is_dmiofs_mount(mnt))
		return 1;
	devno = mount_devno_at(mnt);
	/* Asked before the unmount, when nothing may hang: -l and -f are for
	 * a daemon that does not answer, and are not waited for. */
	if (!forced) {
		pid = daemon_pid(mnt);
		if (pid > 0)
			pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* before it can end and its pid be reused */
	}
	if (umount2(mnt, flags) && !(errno == EPERM && user_unmount(mnt, flags))) {
		fprintf(stderr, "%s: %s: cannot unmount: %s%s\n", g_get_prgname(), mnt, g_strerror(errno),
			errno == EBUSY ? " (files are open on it, or a process works in it: see fuser -vm)" : "");
		ret = 1;
	} else if (forced) {
		/* done: it ends when the last file open on it is closed */
	} else if (pid < 0) { /* a daemon that died leaves a mount that answers nothing */
		fprintf(stderr, "%s: %s: unmounted; no daemon answered, so none was waited for\n", g_get_prgname(), mnt);
	} else if (devno && devno_mounted(devno)) {
		fprintf(stderr, "%s: %s: unmounted; the file system is still mounted elsewhere (a bind mount?), "
				"so its daemon goes on\n", g_get_prgname(), mnt);
	} else {
		ret = wait_for_exit(pidfd, pid, mnt, verbose) ? 1 : 0;
	}
	if (pidfd >= 0)
		close(pidfd);
	g_free(devno);
	return ret;
}

/* umount(8) runs it as: umount.fuse.dmiofs TARGET [-flnrv] [-N NS] [-t TYPE]
 * and does not unmount itself when a helper exists. */
int umount_helper_main(int argc, char **argv)
{
	const char *target = NULL;
	int flags = 0;
	bool verbose = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-') {
			if (target) {
				fprintf(stderr, UMOUNT_HELPER_NAME ": unexpected argument %s\n", a);
				return 2;
			}
			target = a;
		} else if (!strcmp(a, "-t") || !strcmp(a, "-N")) {
			if (a[1] == 'N') {
				fprintf(stderr, UMOUNT_HELPER_NAME ": -N (another mount namespace) is not supported\n");
				return 2;
			}
			i++;
		} else {
			for (const char *f = a + 1; *f; f++) {
				if (*f == 'f')
					flags |= MNT_FORCE;
				else if (*f == 'l')
					flags |= MNT_DETACH;
				else if (*f == 'v')
					verbose = true;
				else if (*f != 'n' && *f != 'r') { /* no mtab; remount ro on failure: nothing to do */
					fprintf(stderr, UMOUNT_HELPER_NAME ": unknown option -%c\n", *f);
					return 2;
				}
			}
		}
	}
	if (!target) {
		fprintf(stderr, "usage: " UMOUNT_HELPER_NAME " MOUNTPOINT [-flnrv]\n");
		return 2;
	}
	return ctl_unmount(target, flags, verbose) ? 32 : 0; /* umount(8)'s "unmount failure" */
}

/* ---- scan ------------------------------------------------------------------------ */

static JsonNode *member_json(GPtrArray *all, const struct member *m, const char *mounted)
{
	JsonBuilder *b = json_builder_new();
	JsonNode *n;
	char uuid[37], dev_uuid[37];

	uuid_format(m->sb.fs_uuid, uuid);
	uuid_format(m->sb.dev_uuid, dev_uuid);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "device");
	json_builder_add_string_value(b, m->path);
	json_builder_set_member_name(b, "uuid");
	json_builder_add_string_value(b, uuid);
	json_builder_set_member_name(b, "label");
	json_builder_add_string_value(b, m->sb.label);
	json_builder_set_member_name(b, "index");
	json_builder_add_int_value(b, m->sb.dev_index);
	json_builder_set_member_name(b, "device_count");
	json_builder_add_int_value(b, scan_device_count(all, m));
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, scan_member_state(all, m));
	json_builder_set_member_name(b, "generation");
	json_builder_add_int_value(b, (gint64)m->sb.generation);
	json_builder_set_member_name(b, "device_uuid");
	json_builder_add_string_value(b, dev_uuid);
	json_builder_set_member_name(b, "mounted_at");
	if (mounted)
		json_builder_add_string_value(b, mounted);
	else
		json_builder_add_null_value(b);
	json_builder_end_object(b);
	n = json_builder_get_root(b);
	g_object_unref(b);
	return n;
}

/* A label read from a device, for the terminal: control characters
 * escaped (no escape sequences), UTF-8 kept when it is valid. */
static char *printable(const char *label)
{
	char high[129];

	for (int c = 0x80; c <= 0xff; c++)
		high[c - 0x80] = (char)c;
	high[128] = '\0';
	return g_strescape(label, g_utf8_validate(label, -1, NULL) ? high : NULL);
}

/* Grouped by file system, as btrfs filesystem show does. */
static void print_members(GPtrArray *all, GPtrArray *mounted)
{
	GHashTable *shown = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < all->len; i++) {
		const struct member *m = g_ptr_array_index(all, i);
		char uuid[37], *label;

		uuid_format(m->sb.fs_uuid, uuid);
		if (g_hash_table_contains(shown, uuid))
			continue;
		g_hash_table_add(shown, g_strdup(uuid));
		label = printable(m->sb.label);
		printf("%sdmiofs UUID=%s%s%s%s, %u devices, %u copies\n", g_hash_table_size(shown) > 1 ? "\n" : "", uuid,
		       label[0] ? " LABEL=\"" : "", label, label[0] ? "\"" : "", scan_device_count(all, m), m->sb.copies);
		g_free(label);
		printf("  %-20s %5s  %-18s %12s  %s\n", "DEVICE", "INDEX", "STATE", "GENERATION", "MOUNTED AT");
		for (guint j = i; j < all->len; j++) {
			const struct member *o = g_ptr_array_index(all, j);

			if (memcmp(o->sb.fs_uuid, m->sb.fs_uuid, 16))
				continue;
			printf("  %-20s %5u  %-18s %12llu  %s\n", o->path, o->sb.dev_index, scan_member_state(all, o),
			       (unsigned long long)o->sb.generation,
			       g_ptr_array_index(mounted, j) ? (char *)g_ptr_array_index(mounted, j) : "-");
		}
	}
	g_hash_table_destroy(shown);
}

int ctl_scan(bool json)
{
	GPtrArray *all = scan_members();
	GPtrArray *mounted = g_ptr_array_new_with_free_func(g_free);
	int ret = 0;

	for (guint i = 0; i < all->len; i++)
		g_ptr_array_add(mounted, dmiofs_mounted_at(((struct member *)g_ptr_array_index(all, i))->path));
	if (json) {
		JsonArray *a = json_array_new();
		JsonNode *root = json_node_new(JSON_NODE_ARRAY);
		JsonGenerator *gen = json_generator_new();
		char *text;

		for (guint i = 0; i < all->len; i++)
			json_array_add_element(a, member_json(all, g_ptr_array_index(all, i), g_ptr_array_index(mounted, i)));
		json_node_take_array(root, a);
		json_generator_set_root(gen, root);
		json_generator_set_pretty(gen, TRUE);
		text = json_generator_to_data(gen, NULL);
		printf("%s\n", text);
		g_free(text);
		g_object_unref(gen);
		json_node_unref(root);
	} else if (!all->len && geteuid() != 0) {
		fprintf(stderr, "%s: no dmiofs member found, but only root may read every block device: run it as root\n",
			g_get_prgname());
		ret = 1;
	} else if (!all->len) {
		printf("no dmiofs member on this machine's block devices (image files are not scanned)\n");
	} else {
		print_members(all, mounted);
	}
	/* As root, the links mount(8) resolves UUID= and LABEL= through. */
	if (geteuid() == 0 && all->len) {
		int err = scan_make_links(all);

		if (err) {
			fprintf(stderr, "%s: cannot make the links in /dev/disk: %s\n", g_get_prgname(), g_strerror(-err));
			ret = 1;
		}
	}
	g_ptr_array_free(mounted, TRUE);
	g_ptr_array_free(all, TRUE);
	return ret;
}

/* A label as a udev property value, made safe as udev makes labels: only
 * printable ASCII other than quotes, '/', '\\', '$' and '`' is kept, the
 * rest becomes '_' (a newline in a label must never start a property of
 * its own: the label comes from the device, which anyone may have written). */
static char *udev_safe(char *label)
{
	for (char *p = label; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || strchr("/\\\"'$`", *p))
			*p = '_';
	return label;
}

/* What udev's IMPORT{program} reads (59-dmiofs.rules): the ID_FS_*
 * properties libblkid gives the file systems it knows, so that udev makes
 * the /dev/disk/by-uuid and by-label links, and systemd the device units,
 * of a member as it does for theirs.  Nothing for a device that is not. */
int ctl_scan_udev(const char *devnode)
{
	struct superblock sb;
	char uuid[37], *label_enc;

	if (scan_device(devnode, &sb))
		return 0;
	uuid_format(sb.fs_uuid, uuid);
	printf("ID_FS_TYPE=dmiofs\nID_FS_USAGE=filesystem\nID_FS_VERSION=1\nID_FS_UUID=%s\nID_FS_UUID_ENC=%s\n", uuid,
	       uuid);
	if (sb.label[0]) {
		label_enc = scan_encode_label(sb.label);
		printf("ID_FS_LABEL_ENC=%s\n", label_enc);
		printf("ID_FS_LABEL=%s\n", udev_safe(sb.label));
		g_free(label_enc);
	}
	return 0;
}
