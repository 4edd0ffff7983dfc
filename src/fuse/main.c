/* dmiofs - mount a mirrored dmiofs file system with FUSE.
 *
 *   dmiofs [-f] [-o OPTIONS] DEV[:DEV...] [DEV...] MOUNTPOINT
 *   dmiofs [-f] [-o OPTIONS] UUID=<uuid>|LABEL=<label> MOUNTPOINT
 *
 * Also mount(8)'s helper for /etc/fstab, installed as mount.fuse.dmiofs:
 *   /dev/sdb:/dev/sdc  /srv/data  fuse.dmiofs  defaults  0 0
 * (mounthelper.c translates its arguments; -o remount goes to dmiofs-ctl).
 *
 * In the background (the default) the parent waits until the file system
 * is mounted, or prints why it could not be, so errors reach the user. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../store/data.h"
#include "../store/events.h"
#include "../store/scan.h"
#include "control.h"
#include "daemonlog.h"
#include "dmiofs.h"
#include "evloop.h"
#include "mounthelper.h"

struct options {
	GPtrArray *args;   /* the sources, then the mount point */
	char *source;      /* the sources as given, joined by ':' */
	char *mountpoint;
	int foreground;
	int debug;
	int single_thread;
	unsigned int max_threads;
	unsigned int max_idle_threads;
	unsigned int max_background;
	int no_clone_fd;
	int no_event_loop;
	unsigned int event_loops;
	int read_only;
	int verbose;
	int writeback;
	int no_writeback;
	unsigned int commit_ms;
	int heal_delay;          /* as the store takes it: 0 default, -1 at once */
	uint64_t rebuild_rate;   /* bytes/s */
	int no_degraded;
	char *keep;
	char *write_mostly;
	unsigned int nbd_timeout;
	char *event_program;
	char *log_writes;
	char *log_file;
	int remount;
	int ro_or_rw_given;
	int show_help;
	int show_version;
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_SINGLE, KEY_DROP, KEY_COMMIT, KEY_HEAL_DELAY, KEY_NBD_TIMEOUT,
       KEY_REBUILD_RATE, KEY_MAX_THREADS, KEY_MAX_IDLE_THREADS, KEY_MAX_BACKGROUND,
       KEY_EVENT_LOOPS };

/* The FUSE worker threads: 64 at most, 16 kept idle, each reading its
 * own clone of /dev/fuse.  Measured best on 2 cores (bench/RESULTS.md);
 * the limit bounds how many requests the store works on at once. */
#define DEFAULT_MAX_THREADS 64
#define DEFAULT_MAX_IDLE_THREADS 16
#define MOST_THREADS 1024
/* The kernel's limit of asynchronous requests (reads, direct I/O) in
 * flight to the daemon; libfuse takes at most 65535.  The kernel's own
 * default, 12, holds a queue of 32 direct requests to 12: 64 gave 10-25 %
 * more 4 KiB random reads and writes on 2 cores (bench/RESULTS.md). */
#define MOST_BACKGROUND 65535
#define DEFAULT_MAX_BACKGROUND 64
/* One event loop: on 2 cores a second one, on a core of its own with a
 * data client of its own, gained nothing for 4 KiB random I/O from four
 * jobs and cost 10-20 % in metadata from four threads (bench/RESULTS.md):
 * the cores are busy with the kernel's side of FUSE, not the loop. */
#define DEFAULT_EVENT_LOOPS 1

#define OPT(t, p, v) { t, offsetof(struct options, p), v }

static const struct fuse_opt option_spec[] = {
	/* The last of ro and rw wins, as for mount(8) (fstab's "ro" then a
	 * remount's "rw"); the kernel is told by add_mount_options. */
	OPT("ro", read_only, 1),
	OPT("rw", read_only, 0),
	OPT("ro", ro_or_rw_given, 1),
	OPT("rw", ro_or_rw_given, 1),
	OPT("verbose", verbose, 1),
	OPT("writeback", writeback, 1),
	OPT("no_writeback", no_writeback, 1),
	OPT("nodegraded", no_degraded, 1),
	OPT("degraded", no_degraded, 0),
	OPT("keep=%s", keep, 0),
	OPT("write_mostly=%s", write_mostly, 0),
	OPT("event_program=%s", event_program, 0),
	OPT("log_writes=%s", log_writes, 0),
	OPT("log=%s", log_file, 0),
	OPT("remount", remount, 1),
	FUSE_OPT_KEY("commit=", KEY_COMMIT),
	FUSE_OPT_KEY("heal_delay=", KEY_HEAL_DELAY),
	FUSE_OPT_KEY("nbd_timeout=", KEY_NBD_TIMEOUT),
	FUSE_OPT_KEY("rebuild_rate=", KEY_REBUILD_RATE),
	FUSE_OPT_KEY("max_threads=", KEY_MAX_THREADS),
	FUSE_OPT_KEY("max_idle_threads=", KEY_MAX_IDLE_THREADS),
	FUSE_OPT_KEY("max_background=", KEY_MAX_BACKGROUND),
	FUSE_OPT_KEY("event_loops=", KEY_EVENT_LOOPS),
	OPT("clone_fd", no_clone_fd, 0),
	OPT("no_clone_fd", no_clone_fd, 1),
	OPT("event_loop", no_event_loop, 0),
	OPT("no_event_loop", no_event_loop, 1),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	/* mount(8) and fstab words that mean nothing to FUSE */
	FUSE_OPT_KEY("defaults", KEY_DROP),
	FUSE_OPT_KEY("auto", KEY_DROP),
	FUSE_OPT_KEY("noauto", KEY_DROP),
	FUSE_OPT_KEY("user", KEY_DROP),
	FUSE_OPT_KEY("nouser", KEY_DROP),
	FUSE_OPT_KEY("users", KEY_DROP),
	FUSE_OPT_KEY("_netdev", KEY_DROP),
	FUSE_OPT_KEY("nofail", KEY_DROP),
	FUSE_OPT_KEY("x-systemd.", KEY_DROP),
	FUSE_OPT_KEY("comment=", KEY_DROP),
	FUSE_OPT_END
};

/* The number after name= in arg, min to max; says what is wrong. */
static int option_number(const char *arg, const char *unit, unsigned long min, unsigned long max, unsigned long *out)
{
	const char *v = strchr(arg, '=') + 1;
	char *end;

	errno = 0;
	*out = g_ascii_isdigit(*v) ? strtoul(v, &end, 10) : 0;
	if (!g_ascii_isdigit(*v) || errno || *end || *out < min || *out > max) {
		fprintf(stderr, "dmiofs: %s: want %s, %lu to %lu\n", arg, unit, min, max);
		return -1;
	}
	return 0;
}

static int handle_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	unsigned long v;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		g_ptr_array_add(o->args, g_strdup(arg));
		return 0;
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 1; /* libfuse prints the requests too */
	case KEY_SINGLE:
		o->single_thread = 1;
		return 0;
	case KEY_DROP:
		return 0;
	case KEY_COMMIT:
		return option_number(arg, "milliseconds", 0, 24 * 3600 * 1000ul, &v) ? -1 : (o->commit_ms = (unsigned int)v, 0);
	case KEY_HEAL_DELAY:
		if (option_number(arg, "seconds", 0, 366 * 24 * 3600ul, &v))
			return -1;
		o->heal_delay = v ? (int)v : -1;
		return 0;
	case KEY_NBD_TIMEOUT:
		if (option_number(arg, "seconds", 1, 24 * 3600ul, &v))
			return -1;
		o->nbd_timeout = (unsigned int)v;
		return 0;
	case KEY_REBUILD_RATE:
		if (option_number(arg, "megabytes per second", 0, 1000000ul, &v))
			return -1;
		o->rebuild_rate = v * 1000000ull;
		return 0;
	case KEY_MAX_THREADS:
	case KEY_MAX_IDLE_THREADS:
		if (option_number(arg, "a number of threads", 1, MOST_THREADS, &v))
			return -1;
		if (key == KEY_MAX_THREADS)
			o->max_threads = (unsigned int)v;
		else
			o->max_idle_threads = (unsigned int)v;
		return 0;
	case KEY_MAX_BACKGROUND:
		if (option_number(arg, "a number of requests", 1, MOST_BACKGROUND, &v))
			return -1;
		o->max_background = (unsigned int)v;
		return 0;
	case KEY_EVENT_LOOPS:
		if (option_number(arg, "a number of event loops", 1, STORE_MAX_LANES, &v))
			return -1;
		o->event_loops = (unsigned int)v;
		return 0;
	case FUSE_OPT_KEY_OPT:
		/* fstab words with a value or a family prefix */
		if (g_str_has_prefix(arg, "x-systemd.") || g_str_has_prefix(arg, "x-mount.") ||
		    g_str_has_prefix(arg, "comment="))
			return 0;
		return 1;
	default:
		return 1;
	}
}

static void usage(void)
{
	printf("usage: dmiofs [-f] [-d] [-s] [-o OPTION[,OPTION...]] DEV[:DEV...] [DEV...] MOUNTPOINT\n"
	       "       dmiofs [-f] [-d] [-s] [-o OPTION[,OPTION...]] UUID=<uuid>|LABEL=<label> MOUNTPOINT\n"
	       "       dmiofs -h | -V\n\n"
	       "Mount the dmiofs file system on DEV... (block devices or image files, separate or\n"
	       "joined by ':') at MOUNTPOINT.  One block device, UUID= or LABEL= stands for every\n"
	       "member found on the machine's block devices.\n\n"
	       "  -f                 stay in the foreground\n"
	       "  -d, -o debug       foreground, and print every FUSE request\n"
	       "  -s                 one thread\n"
	       "  -o event_loop      reads, writes and most other requests are served by the thread\n"
	       "                     that reaps the data's I/O (the default)\n"
	       "  -o event_loops=N   N event loops, each with a data client and a thread of its\n"
	       "                     own, take the requests in turn (default " G_STRINGIFY(DEFAULT_EVENT_LOOPS) ", at most " G_STRINGIFY(STORE_MAX_LANES) ")\n"
	       "  -o no_event_loop   libfuse's worker threads serve every request instead\n"
	       "  -o max_threads=N   at most N threads serve the requests the event loop hands\n"
	       "                     on, or all of them (default " G_STRINGIFY(DEFAULT_MAX_THREADS) ")\n"
	       "  -o max_idle_threads=N  no_event_loop: keep at most N of them waiting (default " G_STRINGIFY(
		       DEFAULT_MAX_IDLE_THREADS) ")\n"
	       "  -o max_background=N  at most N asynchronous requests (reads, direct I/O) in flight\n"
	       "                     from the kernel (default " G_STRINGIFY(DEFAULT_MAX_BACKGROUND) ")\n"
	       "  -o no_clone_fd     no_event_loop: the threads share one /dev/fuse descriptor\n"
	       "                     (default: one each)\n"
	       "  -o ro              read-only: nothing is written to the devices\n"
	       "  -o commit=MS       commit metadata at least every MS milliseconds (default 5000)\n"
	       "  -o writeback       kernel writeback cache: faster small writes, but a full file\n"
	       "                     system drops written data instead of failing write(2)\n"
	       "  -o no_writeback    no kernel writeback cache (the default)\n"
	       "  -o nodegraded      refuse to mount with a device missing (default: mount degraded\n"
	       "                     when the devices present hold a copy of everything)\n"
	       "  -o keep=DEV        after a split brain, keep the history of DEV's part; the other\n"
	       "                     part's devices are rewritten from it\n"
	       "  -o write_mostly=DEV[:DEV...]  read DEV only when no other copy can serve (a\n"
	       "                     remote or slow device); DEV: index, path, URI or UUID\n"
	       "  -o nbd_timeout=S   an NBD export leaving commands unanswered S seconds (default\n"
	       "                     30) has its connection dropped: it fails, and is reconnected\n"
	       "  -o heal_delay=S    a device failed or missing this long (default 60 s) has its\n"
	       "                     copies made again on the others, when they can hold them\n"
	       "  -o rebuild_rate=M  catch-up and rebuilds copy at most M MB/s (default 64)\n"
	       "  -o event_program=PATH  run PATH on every event (device failed, missing, back,\n"
	       "                     caught up, repaired, scrub and rebuild done, split brain)\n"
	       "  -o log_writes=PATH record every write and flush to the devices in PATH, for\n"
	       "                     power-cut tests (dmio_write_log(3)); slow\n"
	       "  -o log=PATH        in the background, log to PATH (default: syslog when /dev/log\n"
	       "                     listens, else " DAEMONLOG_DEFAULT_FILE ")\n"
	       "  -o remount,ro|rw   make a mounted dmiofs read-only or writable again\n"
	       "  -o verbose         say what mounting found\n"
	       "  -o OPTION          other FUSE mount options (allow_other, ...)\n\n"
	       "See dmiofs(8).\n");
}

/* ---- background ----------------------------------------------------------- */

/* Fork before any thread exists; the parent waits for a word from the
 * child: "" when mounted, or the reason it failed. */
static int fork_and_wait(int *report_fd)
{
	int pipefd[2];
	pid_t pid;
	char msg[1024];
	ssize_t n, got = 0;

	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		*report_fd = pipefd[1];
		return 0;
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
		got += n;
	msg[got] = '\0';
	if (got == 0) {
		fprintf(stderr, "dmiofs: the daemon exited before mounting\n");
		_exit(mounthelper_exit_status(1));
	}
	if (strcmp(msg, "ok")) {
		fprintf(stderr, "dmiofs: %s\n", msg);
		_exit(mounthelper_exit_status(1));
	}
	_exit(0);
}

static void report(int fd, const char *msg)
{
	if (fd < 0) {
		if (strcmp(msg, "ok"))
			fprintf(stderr, "dmiofs: %s\n", msg);
		return;
	}
	if (write(fd, msg, strlen(msg)) < 0)
		return;
	close(fd);
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	if (chdir("/"))
		return;
}

/* ---- mounting --------------------------------------------------------------- */

/* Every device the sources (all arguments but the mount point) name. */
static char **devices_of(GPtrArray *args, GString *why)
{
	return scan_resolve_sources((char *const *)args->pdata, (int)args->len - 1, why);
}

/* The mount point is a directory we can reach (libfuse's /dev/fd/N, a
 * FUSE device opened by mount.fuse3, is left to libfuse). */
static bool mountpoint_usable(const char *mountpoint, GString *why)
{
	unsigned int fd;
	char end;
	struct stat st;

	if (sscanf(mountpoint, "/dev/fd/%u%c", &fd, &end) == 1)
		return true;
	if (stat(mountpoint, &st)) {
		g_string_printf(why, "cannot mount on %s: %s", mountpoint, g_strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		g_string_printf(why, "cannot mount on %s: not a directory", mountpoint);
		return false;
	}
	return true;
}

/* An option value as fuse_opt_parse reads it: ',' and '\\' escaped. */
static char *escape_option(const char *value)
{
	GString *out = g_string_new(NULL);

	for (const char *p = value; *p; p++) {
		if (*p == ',' || *p == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *p);
	}
	return g_string_free(out, FALSE);
}

/* The source shows in /proc/mounts exactly as given, so that mount -a
 * and findmnt recognise an fstab line as mounted. */
static void add_mount_options(struct fuse_args *args, const char *source, bool read_only)
{
	char *escaped = escape_option(source);
	char *fsname = g_strdup_printf("-ofsname=%s", escaped);
	fuse_opt_add_arg(args, fsname);
	fuse_opt_add_arg(args, "-osubtype=dmiofs");
	fuse_opt_add_arg(args, "-odefault_permissions");
	/* The kernel checks permissions, so letting others in is safe; a
	 * root-mounted store is for every user, and like a local file system
	 * keeps its device nodes and set-user-ID programs working (an
	 * explicit -o nodev or nosuid, coming after, still wins). */
	if (getuid() == 0) {
		fuse_opt_add_arg(args, "-oallow_other");
		fuse_opt_insert_arg(args, 1, "-osuid,dev");
	}
	if (read_only)
		fuse_opt_add_arg(args, "-oro");
	g_free(fsname);
	g_free(escaped);
}

/* The event program is run by path from any folder: it must be there
 * and executable now, not found missing on the day a disk fails. */
static bool event_program_usable(char *program, GString *why)
{
	if (!program)
		return true;
	if (!g_path_is_absolute(program) || access(program, X_OK)) {
		g_string_printf(why, "event_program=%s: %s", program,
				!g_path_is_absolute(program) ? "give an absolute path" : g_strerror(errno));
		return false;
	}
	return true;
}

static struct events *start_events(const struct options *o)
{
	char *abs = realpath(o->mountpoint, NULL);
	struct events *ev = events_new(o->event_program, abs ? abs : o->mountpoint);

	free(abs);
	return ev;
}

/* The control channel; without it the mount still works (status can be
 * read from the xattrs), so a failure is said, not fatal. */
static struct control *start_control(struct store *st, const char *mountpoint)
{
	GString *why = g_string_new(NULL);
	char *abs = realpath(mountpoint, NULL);
	struct control *c = control_start(st, abs ? abs : mountpoint, why);

	if (!c)
		g_warning("no control channel: dmiofs-ctl cannot reach this mount (its user.dmio.* xattrs still "
			  "say its status): %s",
			  why->str);
	g_string_free(why, TRUE);
	free(abs);
	return c;
}

static int run(struct options *o, struct fuse_args *args, int report_fd)
{
	struct store_options so = { .read_only = o->read_only,
				    .commit_interval_ms = o->commit_ms,
				    .verbose = o->verbose,
				    .no_degraded = o->no_degraded,
				    .keep = o->keep,
				    .write_mostly = o->write_mostly,
				    .nbd_timeout = o->nbd_timeout,
				    .heal_delay = o->heal_delay,
				    .rebuild_rate = o->rebuild_rate };
	/* The writeback cache is opt-in.  With it the kernel accepts write(2)
	 * into its page cache and hands the data over later, so a full file
	 * system cannot fail the write: the kernel drops the data at writeback
	 * while write(2) goes on succeeding and the file's size grows without
	 * bound (dd to a full mount never ends).  The kernel also keeps its own
	 * mtime and st_blocks then, which drift from what is stored.  Without
	 * it every write reaches the store before it returns, and ENOSPC is
	 * reported to the writer. */
	struct dmiofs fs = { .writeback = o->writeback && !o->no_writeback && !o->read_only,
			     .timeout = 86400.0,
			     .max_background = o->max_background };
	GString *why = g_string_new(NULL);
	char **paths = devices_of(o->args, why);
	struct fuse_loop_config *cfg;
	struct events *events = NULL;
	int err, ret = 1;

	/* Opening the store writes to the devices (the clean flag); check the
	 * mount point and the FUSE options first, so that a mistake leaves
	 * them untouched.  The session calls into the store only once mounted. */
	add_mount_options(args, o->source, o->read_only);
	if (!paths || !mountpoint_usable(o->mountpoint, why) || !event_program_usable(o->event_program, why)) {
		err = -EINVAL;
	} else if (!(fs.se = fuse_session_new(args, &dmiofs_ops, sizeof(dmiofs_ops), &fs))) {
		g_string_printf(why, "cannot start a FUSE session (bad mount options?)");
		err = -EINVAL;
	} else if (o->log_writes && !(so.write_log = dmio_write_log_create(o->log_writes))) {
		g_string_printf(why, "log_writes=%s: %s", o->log_writes, g_strerror(errno));
		fuse_session_destroy(fs.se);
		err = -EINVAL;
	} else {
		so.events = events = start_events(o);
		err = store_open((const char *const *)paths, g_strv_length(paths), &so, &fs.st, why);
		if (err)
			fuse_session_destroy(fs.se);
	}
	g_strfreev(paths);
	if (err) {
		/* In the background the parent prints it; the log keeps it too. */
		if (report_fd >= 0)
			daemonlog_quietly(why->str);
		report(report_fd, why->str);
		events_free(events); /* a split brain's program still runs */
		if (so.write_log)
			dmio_write_log_close(so.write_log);
		g_string_free(why, TRUE);
		return 1;
	}
	if (fuse_set_signal_handlers(fs.se)) {
		report(report_fd, "cannot set signal handlers");
		goto destroy;
	}
	if (fuse_session_mount(fs.se, o->mountpoint)) {
		g_string_printf(why, "cannot mount on %s (does it exist, and is /dev/fuse usable?)", o->mountpoint);
		report(report_fd, why->str);
		goto remove_handlers;
	}
	fs.control = start_control(fs.st, o->mountpoint);
	if (report_fd >= 0)
		g_message("mounted %s at %s; messages go to %s", o->source, o->mountpoint, daemonlog_destination());
	report(report_fd, "ok");
	if (report_fd >= 0) {
		daemonlog_detached();
		detach_stdio();
	}
	if (o->single_thread) {
		ret = fuse_session_loop(fs.se);
	} else if (!o->no_event_loop) {
		ret = evloop_run(&fs, o->event_loops, o->max_threads);
		if (ret < 0) {
			g_warning("cannot serve the FUSE session: %s", g_strerror(-ret));
			ret = -1;
		}
	} else {
		cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, !o->no_clone_fd);
		fuse_loop_cfg_set_idle_threads(cfg, o->max_idle_threads);
		fuse_loop_cfg_set_max_threads(cfg, o->max_threads);
		ret = fuse_session_loop_mt(fs.se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(fs.se);
	dmiofs_drain(&fs);
	control_stop(fs.control);
	if (ret > 0) /* stopped by a signal (SIGTERM, SIGINT, SIGHUP): a clean unmount */
		ret = 0;
remove_handlers:
	fuse_remove_signal_handlers(fs.se);
destroy:
	fuse_session_destroy(fs.se);
	err = store_close(fs.st);
	if (err) {
		g_critical("unmounting left the file system unclean: %s", g_strerror(-err));
		ret = 1;
	}
	events_free(events);
	if (so.write_log && (err = dmio_write_log_close(so.write_log))) {
		g_critical("the write log %s is incomplete: %s", o->log_writes, g_strerror(-err));
		ret = 1;
	}
	g_string_free(why, TRUE);
	return ret ? 1 : 0;
}

/* Everything run() is not given: what the other paths out must free. */
static int finish(struct fuse_args *args, struct options *o, int ret)
{
	ret = mounthelper_exit_status(ret);
	fuse_opt_free_args(args);
	g_ptr_array_free(o->args, TRUE);
	g_free(o->source);
	free(o->log_file);
	free(o->keep);
	free(o->write_mostly);
	free(o->event_program);
	free(o->log_writes);
	return ret;
}

/* The sources (all arguments but the last, the mount point), joined by
 * ':' as they are shown in /proc/mounts. */
static char *source_of(GPtrArray *args)
{
	GString *out = g_string_new(NULL);

	for (guint i = 0; i + 1 < args->len; i++)
		g_string_append_printf(out, "%s%s", i ? ":" : "", (char *)g_ptr_array_index(args, i));
	return g_string_free(out, FALSE);
}

static int bad_usage(struct fuse_args *args, struct options *o, const char *what)
{
	fprintf(stderr, "dmiofs: %s\nusage: dmiofs [-f] [-o OPTION[,OPTION...]] DEV[:DEV...] [DEV...] MOUNTPOINT "
		"(see dmiofs --help)\n", what);
	return finish(args, o, 2);
}

int main(int argc, char **argv)
{
	struct fuse_args args;
	struct options o = { .args = g_ptr_array_new_with_free_func(g_free),
			     .max_threads = DEFAULT_MAX_THREADS,
			     .max_background = DEFAULT_MAX_BACKGROUND,
			     .event_loops = DEFAULT_EVENT_LOOPS,
			     .max_idle_threads = DEFAULT_MAX_IDLE_THREADS };
	int report_fd = -1;
	int helper_exit = mounthelper_translate(&argc, &argv);

	if (helper_exit >= 0) {
		g_ptr_array_free(o.args, TRUE);
		return helper_exit;
	}
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	if (fuse_opt_parse(&args, &o, option_spec, handle_option))
		return bad_usage(&args, &o, "bad arguments");
	if (o.show_help) {
		usage();
		return finish(&args, &o, 0);
	}
	if (o.show_version) {
		printf("dmiofs %s\n", PACKAGE_VERSION);
		return finish(&args, &o, 0);
	}
	if (o.args->len < (o.remount ? 1u : 2u))
		return bad_usage(&args, &o, o.args->len ? "no mount point given" : "no device and no mount point given");
	o.mountpoint = g_ptr_array_index(o.args, o.args->len - 1);
	if (o.remount) /* mount -o remount,ro MOUNTPOINT; without ro or rw it stays as it is */
		return finish(&args, &o, mounthelper_remount(o.mountpoint, o.ro_or_rw_given ? o.read_only : -1));
	o.source = source_of(o.args);
	if (o.foreground) {
		daemonlog_foreground();
	} else {
		GString *why = g_string_new(NULL);
		int err = fork_and_wait(&report_fd);

		if (err) {
			fprintf(stderr, "dmiofs: cannot go to the background: %s\n", g_strerror(-err));
			g_string_free(why, TRUE);
			return finish(&args, &o, 1);
		}
		if (daemonlog_background(o.log_file, why)) {
			report(report_fd, why->str);
			g_string_free(why, TRUE);
			return finish(&args, &o, 1);
		}
		g_string_free(why, TRUE);
	}
	return finish(&args, &o, run(&o, &args, report_fd));
}
