/* fsck.dmiofs - check a dmiofs file system, and repair it.
 *
 * The helper fsck(8) runs: fsck.dmiofs for "fsck -t dmiofs", and, through
 * a link of that name, fsck.fuse.dmiofs for an /etc/fstab line of type
 * fuse.dmiofs.  Options, output and exit status are e2fsck's, so fsck(8),
 * systemd-fsck and scripts written for e2fsck drive it as they are: -a/-p
 * repair what needs no judgement, -n changes nothing, -y repairs all, -C
 * reports progress, and the exit status adds the conditions up. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "../store/check.h"
#include "../store/fsops.h"
#include "../store/mounts.h"
#include "../store/scan.h"
#include "../store/store.h"

/* e2fsck's exit status, which fsck(8) ORs across its helpers.  Two are
 * never ours: 2 (reboot: nothing of ours is mounted while it runs) and
 * 128 (shared-library error: the dynamic loader fails before we run). */
enum {
	FSCK_OK = 0,
	FSCK_CORRECTED = 1,
	FSCK_UNCORRECTED = 4,
	FSCK_ERROR = 8,
	FSCK_USAGE = 16,
	FSCK_CANCELED = 32,
};

enum mode {
	MODE_CHECK, /* -n, the default: read-only */
	MODE_PREEN, /* -p, -a: repair what needs no judgement, as at boot */
	MODE_YES,   /* -y: repair all, even by falling back to an older checkpoint */
};

struct options {
	enum mode mode;
	bool verbose;
	int progress_fd;    /* -C: -1 none, 0 a bar on standard output, N lines to fd N */
	bool progress_held; /* -C -N: quiet until SIGUSR1 (fsck(8) lets one helper draw at a time) */
};

static const char *prog = "fsck.dmiofs"; /* the name we were called by */

/* ---- signals ------------------------------------------------------------------------ */

static GThread *signal_taker;  /* runs until the process ends */
static gint cancel_requested; /* SIGINT, SIGTERM */
static gint progress_wanted;  /* SIGUSR1 sets it, SIGUSR2 clears it */

static sigset_t handled_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	return set;
}

static gpointer signal_thread(gpointer data)
{
	sigset_t set = handled_signals();
	int sig;

	(void)data;
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGUSR1 || sig == SIGUSR2) {
			g_atomic_int_set(&progress_wanted, sig == SIGUSR1);
			continue;
		}
		if (g_atomic_int_get(&cancel_requested)) {
			fflush(stdout);
			_exit(FSCK_CANCELED);
		}
		g_atomic_int_set(&cancel_requested, 1);
	}
	return NULL;
}

/* One thread takes the signals with sigwait(), never a handler, which
 * would interrupt libdmio's waits in whatever thread it ran on.  Blocked
 * here, before any other thread exists, so that every thread inherits
 * the mask.  A first SIGINT or SIGTERM (Ctrl-C, or fsck(8) passing one
 * on) stops the check at its next step and the exit status says 32; a
 * second ends the process at once, which the metadata log makes safe
 * even in the middle of repairs. */
static void signals_start(void)
{
	sigset_t set = handled_signals();

	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal_taker = g_thread_new("signals", signal_thread, NULL);
	/* A front end that closed its end of -C's descriptor (or of our
	 * output) is no reason to stop checking, nor repairing. */
	signal(SIGPIPE, SIG_IGN);
}

static bool check_canceled(void *ctx)
{
	(void)ctx;
	return g_atomic_int_get(&cancel_requested);
}

/* ---- options ------------------------------------------------------------------------ */

#define USAGE_LINE "usage: %s [-n | -p | -a | -y] [-f] [-v] [-C FD] DEV[:DEV...] [DEV...]\n"

static void usage(void)
{
	printf(USAGE_LINE
		"  -n         check only, change nothing (the default)\n"
		"  -p, -a     repair what needs no judgement, without questions (fsck -A at boot)\n"
		"  -y         repair everything that can be repaired\n"
		"  -f         accepted for fsck(8): every check always runs\n"
		"  -v         say more\n"
		"  -C FD      progress: 0 a bar on standard output; N \"pass done total device\" lines to fd N\n"
		"  -V         print the version\n"
		"See fsck.dmiofs(8).\n",
		prog);
}

/* A usage error: what is wrong, then the usage line (-h says more). */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n" USAGE_LINE, prog);
	return FSCK_USAGE;
}

/* -C's argument: a descriptor, negative when fsck(8) asks us to wait for
 * SIGUSR1 before reporting on it. */
static bool parse_progress(const char *arg, struct options *opt)
{
	char *end;
	long fd = strtol(arg, &end, 10);

	if (!*arg || *end || fd > INT_MAX || fd < -INT_MAX)
		return false;
	opt->progress_held = fd < 0;
	opt->progress_fd = (int)(fd < 0 ? -fd : fd);
	return opt->progress_fd == 0 || fcntl(opt->progress_fd, F_GETFD) >= 0;
}

static bool set_mode(struct options *opt, enum mode mode, bool *given)
{
	if (*given && opt->mode != mode)
		return false;
	opt->mode = mode;
	*given = true;
	return true;
}

/* getopt, not GOption: fsck(8) glues -C's descriptor to it (-C0, -C-3),
 * which GOption does not parse.  FSCK_OK to go on, else the exit status. */
static int parse_options(int argc, char **argv, struct options *opt, bool *done)
{
	static const struct option longs[] = {
		{ "no", no_argument, NULL, 'n' },	  { "preen", no_argument, NULL, 'p' },
		{ "auto", no_argument, NULL, 'a' },	  { "yes", no_argument, NULL, 'y' },
		{ "force", no_argument, NULL, 'f' },	  { "verbose", no_argument, NULL, 'v' },
		{ "progress", required_argument, NULL, 'C' }, { "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },	  { NULL, 0, NULL, 0 },
	};
	bool mode_given = false, ok = true;
	int c;

	*opt = (struct options){ .mode = MODE_CHECK, .progress_fd = -1 };
	*done = false;
	opterr = 0;
	while (ok && (c = getopt_long(argc, argv, "anpyfvC:Vh", longs, NULL)) != -1) {
		switch (c) {
		case 'n':
			ok = set_mode(opt, MODE_CHECK, &mode_given);
			break;
		case 'a':
		case 'p':
			ok = set_mode(opt, MODE_PREEN, &mode_given);
			break;
		case 'y':
			ok = set_mode(opt, MODE_YES, &mode_given);
			break;
		case 'f': /* every check always runs: see "Clean file systems" in the man page */
			break;
		case 'v':
			opt->verbose = true;
			break;
		case 'C':
			if (!parse_progress(optarg, opt))
				return usage_error("-C %s: not an open file descriptor", optarg);
			break;
		case 'V':
			printf("%s (dmiofs) %s\n", prog, PACKAGE_VERSION);
			*done = true;
			return FSCK_OK;
		case 'h':
			usage();
			*done = true;
			return FSCK_OK;
		default:
			if (optopt == 'C')
				return usage_error("-C needs a file descriptor");
			if (optopt)
				return usage_error("-%c: unknown option", optopt);
			return usage_error("%s: unknown option", argv[optind - 1]);
		}
	}
	if (!ok)
		return usage_error("only one of -n, -p (-a) and -y may be given");
	if (optind >= argc)
		return usage_error("no device given");
	return FSCK_OK;
}

/* ---- the report --------------------------------------------------------------------- */

/* What a run shows, and where. */
struct run {
	const struct options *opt;
	char *device;       /* the devices joined by ':', as fsck(8) and /etc/fstab name them */
	int pass;           /* the pass last reported (enum check_pass), 0 before the first */
	int shown;          /* per mille of it last reported, -1 for none */
	gint64 drawn_at;    /* when the bar was last drawn */
	bool bar_shown;     /* a bar is on the line: erased before anything else is printed */
};

#define BAR_WIDTH 40
#define BAR_INTERVAL_US 100000 /* at most ten redraws a second */

/* e2fsck's share of the whole for each pass, in per mille, that fsck
 * front ends draw their bars with; our last pass ends the bar. */
static const int pass_starts[] = { 0, 0, 700, 900, 1000 };

static void erase_bar(struct run *run)
{
	if (!run->bar_shown)
		return;
	printf("\r%*s\r", (int)(strlen(run->device) + BAR_WIDTH + 12), "");
	fflush(stdout);
	run->bar_shown = false;
}

static void draw_bar(struct run *run, int overall)
{
	static const char filled[] = "========================================";
	int n = overall * BAR_WIDTH / 1000;

	printf("\r%s: |%.*s%*s| %5.1f%%", run->device, n, filled, BAR_WIDTH - n, "", overall / 10.0);
	fflush(stdout);
	run->bar_shown = true;
	run->drawn_at = g_get_monotonic_time();
}

/* "PASS DONE TOTAL DEVICE", e2fsck's line for the front end on -C N. */
static void write_progress_line(struct run *run, int pass, uint64_t done, uint64_t total)
{
	char *line = g_strdup_printf("%d %llu %llu %s\n", pass, (unsigned long long)done, (unsigned long long)total,
				     run->device);
	ssize_t ignored = write(run->opt->progress_fd, line, strlen(line));

	(void)ignored; /* see signals_start on a front end gone away */
	g_free(line);
}

static void on_progress(void *ctx, enum check_pass pass, uint64_t done, uint64_t total)
{
	struct run *run = ctx;
	int permille = total ? (int)(done * 1000 / total) : 1000;
	int overall = pass_starts[pass] + (pass_starts[pass + 1] - pass_starts[pass]) * permille / 1000;
	bool changed = (int)pass != run->pass || permille != run->shown;

	if (!g_atomic_int_get(&progress_wanted)) {
		erase_bar(run);
		return;
	}
	if (!changed)
		return;
	if (run->opt->progress_fd > 0) {
		write_progress_line(run, pass, done, total);
	} else if (pass == CHECK_PASS_LINKS && permille == 1000) {
		erase_bar(run); /* done: the summary takes the line */
	} else if (g_get_monotonic_time() - run->drawn_at >= BAR_INTERVAL_US) {
		draw_bar(run, overall);
	} else {
		return; /* not shown: the next call draws it */
	}
	run->pass = pass;
	run->shown = permille;
}

static void on_line(void *ctx, const char *line)
{
	struct run *run = ctx;

	erase_bar(run);
	/* Preening, fsck(8) may run several helpers at once: every line
	 * says which file system it is about, as e2fsck -p's do. */
	if (run->opt->mode == MODE_PREEN)
		printf("%s: %s\n", run->device, line);
	else
		printf("%s\n", line);
}

static void print_line(struct run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void print_line(struct run *run, const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	on_line(run, line);
	g_free(line);
}

static void print_details(struct run *run, const struct store *st, const struct check_report *rep)
{
	uint32_t present = 0;

	for (uint32_t k = 0; k < st->ndevices; k++)
		present += st->dev[k].bdev != NULL;
	print_line(run, "superblocks: both copies of %u device(s) read", present);
	print_line(run, "metadata: checkpoint %llu loaded, the log replayed to commit %llu",
		   (unsigned long long)st->ckpt_seq, (unsigned long long)st->durable_seq);
	print_line(run, "data: %llu extents, %llu blocks read on every healthy copy and checked",
		   (unsigned long long)rep->extents, (unsigned long long)rep->blocks_checked);
	print_line(run, "tree: %llu directories walked, %llu inodes checked (reachability, link counts)",
		   (unsigned long long)rep->directories, (unsigned long long)rep->inodes);
}

/* Problems that are errors for the exit status.  Preening (at boot), a
 * device missing or not healthy is not: the file system mounts degraded,
 * as it is made to, and says so loudly there; exit 4 would stop the boot
 * for something no fsck can mend. */
static uint64_t errors_found(const struct options *opt, const struct check_report *rep)
{
	return opt->mode == MODE_PREEN ? rep->problems - rep->degraded : rep->problems;
}

/* e2fsck's last line: "DEV: clean, 11/65536 files, 12955/262144 blocks". */
static void print_summary(struct run *run, struct store *st, const struct check_report *rep)
{
	struct statvfs sv;
	GString *s = g_string_new(NULL);

	fs_statfs(st, &sv);
	if (rep->canceled)
		g_string_printf(s, "%s canceled, the check is incomplete; %llu problem%s found so far, %llu repaired",
				prog, (unsigned long long)rep->problems, rep->problems == 1 ? "" : "s",
				(unsigned long long)rep->repaired);
	else if (!rep->problems)
		g_string_append(s, "clean");
	else if (rep->problems == rep->degraded)
		g_string_append(s, "degraded");
	else
		g_string_append_printf(s, "%llu problem%s, %llu repaired", (unsigned long long)rep->problems,
				       rep->problems == 1 ? "" : "s", (unsigned long long)rep->repaired);
	printf("%s: %s, %llu/%llu files, %llu/%llu blocks\n", run->device, s->str,
	       (unsigned long long)(sv.f_files - sv.f_ffree), (unsigned long long)sv.f_files,
	       (unsigned long long)(sv.f_blocks - sv.f_bfree), (unsigned long long)sv.f_blocks);
	g_string_free(s, TRUE);
}

static void print_advice(struct run *run, const struct check_report *rep)
{
	if (rep->degraded)
		print_line(run, "a device is missing, failed or being caught up: mount the file system (it mounts "
				"degraded), then see dmiofs-ctl status; replace a device that is gone");
	if (rep->problems - rep->degraded > rep->repaired) {
		if (run->opt->mode == MODE_CHECK)
			print_line(run, "run %s -y to repair what can be repaired", prog);
		else
			print_line(run, "what is left cannot be repaired here: see the problems above");
	}
}

/* fsck(8) adds the conditions up. */
static int exit_status(const struct options *opt, const struct check_report *rep)
{
	return (rep->repaired ? FSCK_CORRECTED : 0) | (rep->repaired < errors_found(opt, rep) ? FSCK_UNCORRECTED : 0) |
	       (rep->canceled ? FSCK_CANCELED : 0);
}

/* ---- opening and checking ------------------------------------------------------------ */

static void plain_messages(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void)domain;
	(void)level;
	(void)data;
	fprintf(stderr, "%s: %s\n", prog, message);
}

/* Opening found a device in use.  A mounted dmiofs is not checked from
 * its devices: its daemon keeps them locked, and holds metadata newer
 * than they do; its scrub checks it online.  Anything else may be a
 * daemon still finishing an unmount. */
static void explain_busy(char **paths, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		char *mnt = dmiofs_mounted_at(paths[i]);

		if (mnt) {
			fprintf(stderr, "%s: unmount %s first; to check the file system while it is mounted, run "
					"dmiofs-ctl scrub start %s --wait\n",
				prog, mnt, mnt);
			g_free(mnt);
			return;
		}
	}
	fprintf(stderr, "%s: unmount the file system first\n", prog);
}

static int open_file_system(char **paths, uint32_t n, const struct options *opt, struct store **st)
{
	struct store_options so = {
		.read_only = opt->mode == MODE_CHECK,
		/* Going back to an older checkpoint loses what was written
		 * since: a judgement -p leaves to a person (-y). */
		.allow_rollback = opt->mode == MODE_YES,
		.verbose = opt->verbose,
		/* fsck reads every copy itself: no catch-up or rebuild meanwhile */
		.no_background = true,
	};
	GString *why = g_string_new(NULL);
	int err = store_open((const char *const *)paths, n, &so, st, why);

	if (err) {
		fprintf(stderr, "%s: %s\n", prog, why->str);
		if (err == -EBUSY)
			explain_busy(paths, n);
	}
	g_string_free(why, TRUE);
	/* Metadata that does not load is damage found and left; the rest
	 * (devices that cannot be opened, do not belong, ...) stops us. */
	return !err ? FSCK_OK : err == -EUCLEAN ? FSCK_UNCORRECTED : FSCK_ERROR;
}

static int check(struct run *run, struct store *st)
{
	const struct options *opt = run->opt;
	struct check_options co = {
		.repair = opt->mode != MODE_CHECK,
		.verbose = opt->verbose,
		.say = on_line,
		.progress = opt->progress_fd >= 0 ? on_progress : NULL,
		.stop = check_canceled,
		.ctx = run,
	};
	struct check_report rep;
	char uuid[37];
	int err;

	uuid_format(st->sb.fs_uuid, uuid);
	if (opt->mode != MODE_PREEN || opt->verbose)
		printf("%s: checking %s (%u devices, %u copies)%s\n", prog, uuid, st->ndevices, st->copies,
		       opt->mode == MODE_CHECK ? ", read-only" : "");
	store_check(st, &co, &rep);
	erase_bar(run);
	if (opt->verbose)
		print_details(run, st, &rep);
	print_summary(run, st, &rep);
	print_advice(run, &rep);
	err = store_close(st);
	if (err && co.repair) {
		fprintf(stderr, "%s: writing the repairs failed: %s\n", prog, g_strerror(-err));
		return exit_status(opt, &rep) | FSCK_UNCORRECTED;
	}
	return exit_status(opt, &rep);
}

int main(int argc, char **argv)
{
	struct options opt;
	struct run run = { .opt = &opt, .shown = -1 };
	struct store *st;
	char **paths;
	GString *why;
	uint32_t n;
	bool done;
	int status;

	prog = g_path_get_basename(argv[0]);
	status = parse_options(argc, argv, &opt, &done);
	if (status || done)
		return status;
	g_atomic_int_set(&progress_wanted, opt.progress_fd >= 0 && !opt.progress_held);
	signals_start();
	g_log_set_default_handler(plain_messages, NULL);
	/* As dmiofs takes them: fsck(8) hands over one block device for an
	 * fstab line of UUID= or LABEL=, which stands for its file system. */
	why = g_string_new(NULL);
	paths = scan_resolve_sources(argv + optind, argc - optind, why);
	if (!paths) {
		fprintf(stderr, "%s: %s\n", prog, why->str);
		g_string_free(why, TRUE);
		return FSCK_ERROR;
	}
	g_string_free(why, TRUE);
	n = g_strv_length(paths);
	run.device = g_strjoinv(":", paths);
	status = open_file_system(paths, n, &opt, &st);
	g_strfreev(paths);
	if (status) {
		status |= check_canceled(NULL) ? FSCK_CANCELED : 0;
	} else if (check_canceled(NULL)) {
		store_close(st);
		printf("%s: %s canceled before the check began\n", run.device, prog);
		status = FSCK_CANCELED;
	} else {
		status = check(&run, st);
	}
	g_free(run.device);
	return status;
}
