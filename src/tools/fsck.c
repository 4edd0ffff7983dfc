/* fsck.dmiofs - check a dmiofs file system, read-only unless -y.
 * Exit status as fsck(8): 0 clean, 1 errors corrected, 4 errors left
 * uncorrected, 8 operational error, 16 usage error. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "../store/check.h"
#include "../store/store.h"

enum { FSCK_OK = 0, FSCK_CORRECTED = 1, FSCK_UNCORRECTED = 4, FSCK_ERROR = 8, FSCK_USAGE = 16 };

static void plain_messages(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void)domain;
	(void)level;
	(void)data;
	fprintf(stderr, "fsck.dmiofs: %s\n", message);
}

static char **device_list(int argc, char **argv, uint32_t *n)
{
	GPtrArray *paths = g_ptr_array_new();

	for (int i = 1; i < argc; i++) {
		char **parts = g_strsplit(argv[i], ":", -1);

		for (char **p = parts; *p; p++)
			if (**p)
				g_ptr_array_add(paths, g_strdup(*p));
		g_strfreev(parts);
	}
	*n = paths->len;
	g_ptr_array_add(paths, NULL);
	return (char **)g_ptr_array_free(paths, FALSE);
}

static uint32_t present_devices(const struct store *st)
{
	uint32_t n = 0;

	for (uint32_t k = 0; k < st->ndevices; k++)
		n += st->dev[k].bdev != NULL;
	return n;
}

int main(int argc, char **argv)
{
	gboolean no = FALSE, yes = FALSE, preen = FALSE, verbose = FALSE, force = FALSE;
	GOptionEntry entries[] = {
		{ "no", 'n', 0, G_OPTION_ARG_NONE, &no, "check only, change nothing (the default)", NULL },
		{ "yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "repair what can be repaired", NULL },
		{ "preen", 'p', 0, G_OPTION_ARG_NONE, &preen, "repair, as fsck -p asks (same as -y)", NULL },
		{ "auto", 'a', 0, G_OPTION_ARG_NONE, &preen, "same as -p", NULL },
		{ "force", 'f', 0, G_OPTION_ARG_NONE, &force, "accepted for fsck(8); every check always runs", NULL },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "say more", NULL },
		{ NULL },
	};
	GOptionContext *ctx = g_option_context_new("DEV[:DEV...] - check a dmiofs file system");
	struct store_options so = { 0 };
	struct check_report rep;
	GError *error = NULL;
	GString *why = g_string_new(NULL);
	struct store *st;
	char **paths, uuid[37];
	uint32_t n;
	bool repair;
	int err, status;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx, "See fsck.dmiofs(8).");
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		fprintf(stderr, "fsck.dmiofs: %s\n", error->message);
		return FSCK_USAGE;
	}
	g_option_context_free(ctx);
	repair = yes || preen;
	if (argc < 2 || (no && repair)) {
		fprintf(stderr, "usage: fsck.dmiofs [-n|-y] [-v] DEV[:DEV...]\n");
		return FSCK_USAGE;
	}
	g_log_set_default_handler(plain_messages, NULL);
	paths = device_list(argc, argv, &n);
	so.read_only = !repair;
	so.allow_rollback = repair;
	so.verbose = verbose;
	/* fsck reads every copy itself: no catch-up or rebuild meanwhile */
	so.no_background = true;
	err = store_open((const char *const *)paths, n, &so, &st, why);
	g_strfreev(paths);
	if (err) {
		fprintf(stderr, "fsck.dmiofs: %s\n", why->str);
		if (err == -EBUSY)
			fprintf(stderr, "fsck.dmiofs: unmount the file system first\n");
		return err == -EUCLEAN ? FSCK_UNCORRECTED : FSCK_ERROR;
	}
	uuid_format(st->sb.fs_uuid, uuid);
	printf("fsck.dmiofs: checking %s (%u devices, %u copies)%s\n", uuid, st->ndevices, st->copies,
	       repair ? "" : ", read-only");
	store_check(st, repair, verbose, stdout, &rep);
	if (verbose) {
		printf("superblocks: both copies of %u device(s) read\n", present_devices(st));
		printf("metadata: checkpoint %llu loaded, the log replayed to commit %llu\n",
		       (unsigned long long)st->ckpt_seq, (unsigned long long)st->durable_seq);
		printf("tree: %llu directories walked, %llu inodes checked (reachability, link counts)\n",
		       (unsigned long long)rep.directories, (unsigned long long)rep.inodes);
		printf("data: %llu extents, %llu blocks read on every healthy copy and checked\n",
		       (unsigned long long)rep.extents, (unsigned long long)rep.blocks_checked);
	}
	err = store_close(st);
	if (err && repair) {
		fprintf(stderr, "fsck.dmiofs: writing the repairs failed: %s\n", g_strerror(-err));
		return FSCK_UNCORRECTED;
	}
	printf("%llu inodes, %llu directories, %llu extents, %llu blocks checked on every copy: ",
	       (unsigned long long)rep.inodes, (unsigned long long)rep.directories, (unsigned long long)rep.extents,
	       (unsigned long long)rep.blocks_checked);
	if (!rep.problems) {
		printf("clean\n");
		status = FSCK_OK;
	} else {
		printf("%llu problem(s), %llu repaired\n", (unsigned long long)rep.problems,
		       (unsigned long long)rep.repaired);
		/* fsck(8) adds the conditions up */
		status = (rep.repaired ? FSCK_CORRECTED : 0) | (rep.repaired < rep.problems ? FSCK_UNCORRECTED : 0);
		if (rep.degraded)
			printf("a device is missing, failed or being caught up: mount the file system (it mounts "
			       "degraded), then see dmiofs-ctl status; replace a device that is gone\n");
		if (!repair && rep.problems > rep.degraded)
			printf("run fsck.dmiofs -y to repair what can be repaired\n");
	}
	g_string_free(why, TRUE);
	return status;
}
