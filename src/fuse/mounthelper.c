/* mounthelper.c - see mounthelper.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <glib.h>

#include "mounthelper.h"

/* dmiofs-ctl as installed; DMIOFS_CTL names another (the tests' build). */
static const char *ctl_path(void)
{
	const char *env = secure_getenv("DMIOFS_CTL"); /* not from a caller of a set-user-ID program */

	return env && *env ? env : BINDIR "/dmiofs-ctl";
}

static bool as_mount_helper;

int mounthelper_exit_status(int status)
{
	return as_mount_helper && status == 1 ? 32 : status;
}

int mounthelper_translate(int *argc, char ***argv)
{
	const char *base = strrchr((*argv)[0], '/') ? strrchr((*argv)[0], '/') + 1 : (*argv)[0];
	GPtrArray *out;
	GString *opts;
	int i;

	if (strcmp(base, MOUNT_HELPER_NAME))
		return -1;
	as_mount_helper = true;
	/* The new argv lives as long as the program: never freed. */
	out = g_ptr_array_new();
	opts = g_string_new(NULL);
	g_ptr_array_add(out, "dmiofs");
	for (i = 1; i < *argc; i++) {
		const char *a = (*argv)[i];

		if (a[0] != '-' || !a[1]) {
			g_ptr_array_add(out, (char *)a);
		} else if (!strcmp(a, "-o") || !strcmp(a, "-t") || !strcmp(a, "-N")) {
			if (i + 1 >= *argc) {
				fprintf(stderr, MOUNT_HELPER_NAME ": %s needs a value\n", a);
				return 2;
			}
			if (a[1] == 'N') {
				fprintf(stderr, MOUNT_HELPER_NAME ": -N (another mount namespace) is not supported\n");
				return 2;
			}
			if (a[1] == 'o')
				g_string_append_printf(opts, "%s%s", opts->len ? "," : "", (*argv)[i + 1]);
			i++; /* -t fuse.dmiofs: what we are */
		} else {
			for (const char *f = a + 1; *f; f++) {
				if (*f == 'f')
					return 0; /* "fake": everything but the mount itself; there is nothing else */
				if (*f == 'v')
					g_string_append_printf(opts, "%sverbose", opts->len ? "," : "");
				else if (*f != 's' && *f != 'n') { /* sloppy, no mtab: nothing to do */
					fprintf(stderr, MOUNT_HELPER_NAME ": unknown option -%c\n", *f);
					return 2;
				}
			}
		}
	}
	if (opts->len) {
		g_ptr_array_add(out, "-o");
		g_ptr_array_add(out, g_string_free(opts, FALSE));
	} else {
		g_string_free(opts, TRUE);
	}
	*argc = (int)out->len;
	g_ptr_array_add(out, NULL);
	*argv = (char **)g_ptr_array_free(out, FALSE);
	return -1;
}

int mounthelper_remount(const char *mountpoint, int read_only)
{
	const char *ctl = ctl_path();
	struct statvfs sv;

	if (read_only < 0) /* neither ro nor rw: as it is now */
		read_only = !statvfs(mountpoint, &sv) && (sv.f_flag & ST_RDONLY);
	execl(ctl, "dmiofs-ctl", "remount", mountpoint, read_only ? "ro" : "rw", (char *)NULL);
	fprintf(stderr, "dmiofs: remount: cannot run %s: %s\n", ctl, g_strerror(errno));
	return 1;
}
