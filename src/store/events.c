/* events.c - events to the log and to the administrator's program
 * (events.h).
 *
 * The program runs as the daemon does (root, for a system mount), one
 * event at a time and in order, from a thread of its own: its first
 * argument is the event's name, and DMIOFS_EVENT, DMIOFS_MESSAGE,
 * DMIOFS_UUID, DMIOFS_LABEL, DMIOFS_MOUNTPOINT, DMIOFS_STATUS,
 * DMIOFS_TIME and, for an event about a device, DMIOFS_DEVICE,
 * DMIOFS_DEVICE_PATH and DMIOFS_DEVICE_UUID say the rest.  A program
 * that has not finished after a minute is stopped (SIGALRM). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "store.h"

#define PROGRAM_SECONDS 60
#define FOLD_US G_USEC_PER_SEC
#define FOLD_DEVICES 33 /* no device, and up to 32 */

extern char **environ;

static const char *const names[] = {
	[EVENT_DEVICE_FAILED] = "device-failed", [EVENT_DEVICE_MISSING] = "device-missing",
	[EVENT_DEGRADED] = "degraded",           [EVENT_DEVICE_RETURNED] = "device-returned",
	[EVENT_CAUGHT_UP] = "caught-up",         [EVENT_REPAIRED] = "repaired",
	[EVENT_SCRUB_DONE] = "scrub-done",       [EVENT_REBUILD_DONE] = "rebuild-done",
	[EVENT_SPLIT_BRAIN] = "split-brain",
};

/* A queued run of the program: its whole environment, ready for exec. */
struct job {
	char *name;
	char **env;
};

struct events {
	char *program, *mountpoint;
	GAsyncQueue *queue;  /* struct job *, or the stop marker */
	GThread *thread;
	GMutex lock;         /* the folding below */
	struct fold {
		gint64 last_run;     /* when the program last ran for it */
		unsigned int folded; /* repeats not run since */
	} fold[EVENT_SPLIT_BRAIN + 1][FOLD_DEVICES]; /* by kind, and device + 1 */
};

static struct job stop_marker;

const char *event_name(enum event_kind kind)
{
	return kind < G_N_ELEMENTS(names) ? names[kind] : "unknown";
}

static void job_free(struct job *j)
{
	g_free(j->name);
	g_strfreev(j->env);
	g_free(j);
}

/* fork and exec, everything prepared before: the child of a threaded
 * process may only do async-signal-safe things. */
static void run_job(struct events *ev, struct job *j)
{
	char *argv[] = { ev->program, j->name, NULL };
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		alarm(PROGRAM_SECONDS);
		execve(ev->program, argv, j->env);
		_exit(127);
	}
	if (pid < 0) {
		g_warning("event %s: cannot run %s: %s", j->name, ev->program, g_strerror(errno));
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		g_warning("event %s: %s could not be run", j->name, ev->program);
	else if (WIFSIGNALED(status))
		g_warning("event %s: %s was stopped by signal %d", j->name, ev->program, WTERMSIG(status));
}

static gpointer events_main(gpointer data)
{
	struct events *ev = data;
	struct job *j;

	while ((j = g_async_queue_pop(ev->queue)) != &stop_marker) {
		run_job(ev, j);
		job_free(j);
	}
	return NULL;
}

struct events *events_new(const char *program, const char *mountpoint)
{
	struct events *ev = g_new0(struct events, 1);

	ev->program = g_strdup(program);
	ev->mountpoint = g_strdup(mountpoint ? mountpoint : "");
	g_mutex_init(&ev->lock);
	if (program) {
		ev->queue = g_async_queue_new();
		ev->thread = g_thread_new("dmiofs-events", events_main, ev);
	}
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	if (ev->thread) {
		g_async_queue_push(ev->queue, &stop_marker);
		g_thread_join(ev->thread);
		g_async_queue_unref(ev->queue);
	}
	g_mutex_clear(&ev->lock);
	g_free(ev->program);
	g_free(ev->mountpoint);
	g_free(ev);
}

/* Is this a repeat (the same kind, the same device, within a second of
 * the last run for them) to fold into the next run?  How many repeats
 * the run carries. */
static bool fold(struct events *ev, const struct event *e, unsigned int *carried)
{
	gint64 now = g_get_monotonic_time();
	struct fold *f;
	bool repeat;

	if ((unsigned int)e->kind > EVENT_SPLIT_BRAIN || e->dev + 1 >= FOLD_DEVICES || e->dev < -1)
		return false;
	f = &ev->fold[e->kind][e->dev + 1];
	g_mutex_lock(&ev->lock);
	repeat = f->last_run && now - f->last_run < FOLD_US;
	if (repeat) {
		f->folded++;
	} else {
		*carried = f->folded;
		f->folded = 0;
		f->last_run = now;
	}
	g_mutex_unlock(&ev->lock);
	return repeat;
}

static struct job *job_of(struct events *ev, const struct event *e, const char *message, unsigned int folded)
{
	struct job *j = g_new0(struct job, 1);
	char **env = g_get_environ();

	j->name = g_strdup(event_name(e->kind));
	env = g_environ_setenv(env, "DMIOFS_EVENT", j->name, TRUE);
	env = g_environ_setenv(env, "DMIOFS_MESSAGE", message, TRUE);
	env = g_environ_setenv(env, "DMIOFS_UUID", e->fs_uuid ? e->fs_uuid : "", TRUE);
	env = g_environ_setenv(env, "DMIOFS_LABEL", e->label ? e->label : "", TRUE);
	env = g_environ_setenv(env, "DMIOFS_MOUNTPOINT", ev->mountpoint, TRUE);
	env = g_environ_setenv(env, "DMIOFS_STATUS", e->status ? e->status : "", TRUE);
	{
		char *t = g_strdup_printf("%lld", (long long)time(NULL)), *f = g_strdup_printf("%u", folded);

		env = g_environ_setenv(env, "DMIOFS_TIME", t, TRUE);
		env = g_environ_setenv(env, "DMIOFS_REPEATS", f, TRUE);
		g_free(t);
		g_free(f);
	}
	if (e->dev >= 0) {
		char *d = g_strdup_printf("%d", e->dev);

		env = g_environ_setenv(env, "DMIOFS_DEVICE", d, TRUE);
		env = g_environ_setenv(env, "DMIOFS_DEVICE_PATH", e->dev_path ? e->dev_path : "", TRUE);
		env = g_environ_setenv(env, "DMIOFS_DEVICE_UUID", e->dev_uuid ? e->dev_uuid : "", TRUE);
		g_free(d);
	}
	for (const char *const *x = e->extra; x && *x; x++) {
		const char *eq = strchr(*x, '=');
		char *name;

		if (!eq)
			continue;
		name = g_strndup(*x, (gsize)(eq - *x));
		env = g_environ_setenv(env, name, eq + 1, TRUE);
		g_free(name);
	}
	j->env = env;
	return j;
}

static bool is_bad_news(enum event_kind kind)
{
	return kind == EVENT_DEVICE_FAILED || kind == EVENT_DEVICE_MISSING || kind == EVENT_DEGRADED ||
	       kind == EVENT_SPLIT_BRAIN;
}

void events_emit(struct events *ev, const struct event *e, const char *fmt, ...)
{
	unsigned int carried = 0;
	va_list ap;
	char *message;

	va_start(ap, fmt);
	message = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (e->logged)
		;
	else if (is_bad_news(e->kind))
		g_warning("%s", message);
	else
		g_message("%s", message);
	if (ev && ev->thread && !fold(ev, e, &carried))
		g_async_queue_push(ev->queue, job_of(ev, e, message, carried));
	g_free(message);
}

/* Degraded: some device of the file system is not healthy and here. */
static bool store_degraded(struct store *st)
{
	for (uint32_t k = 0; k < st->ndevices; k++)
		if (st->dev[k].state != DEV_REMOVED && (st->dev[k].state != DEV_HEALTHY || !st->dev[k].bdev))
			return true;
	return false;
}

void store_event(struct store *st, enum event_kind kind, int dev, const char *const *extra, const char *fmt, ...)
{
	char fs_uuid[37], dev_uuid[37];
	struct event e = { .kind = kind, .fs_uuid = fs_uuid, .label = st->sb.label, .dev = dev, .extra = extra };
	va_list ap;
	char *message;

	uuid_format(st->sb.fs_uuid, fs_uuid);
	/* A split brain refuses the mount: the refusal says it, once. */
	e.logged = kind == EVENT_SPLIT_BRAIN;
	/* A device failing is not in the states yet when it is said. */
	e.status = kind == EVENT_DEVICE_FAILED || kind == EVENT_DEGRADED || store_degraded(st) ? "degraded" : "healthy";
	if (dev >= 0 && (uint32_t)dev < st->ndevices) {
		uuid_format(st->sb.devs[dev].uuid, dev_uuid);
		e.dev_path = st->dev[dev].path;
		e.dev_uuid = dev_uuid;
	}
	va_start(ap, fmt);
	message = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	events_emit(st->opt.events, &e, "%s", message);
	g_free(message);
}
