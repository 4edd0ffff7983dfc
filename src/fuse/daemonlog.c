/* daemonlog.c - see daemonlog.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "dmio.h"
#include "daemonlog.h"

enum sink { SINK_TERMINAL, SINK_SYSLOG, SINK_FILE };

static struct {
	enum sink sink;
	bool terminal_too; /* background, before the parent returned */
	int fd;            /* SINK_FILE */
	char *destination;
} out = { .fd = -1 };

static int syslog_priority(GLogLevelFlags level)
{
	return level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL) ? LOG_ERR
	       : level & G_LOG_LEVEL_WARNING			   ? LOG_WARNING
								   : LOG_NOTICE;
}

static const char *level_word(int priority)
{
	return priority <= LOG_ERR ? "error" : priority == LOG_WARNING ? "warning" : "notice";
}

/* One line, written at once (O_APPEND): lines of several daemons sharing
 * the file never interleave. */
static void to_file(int priority, const char *message)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	char *line;

	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", localtime_r(&now, &tm));
	line = g_strdup_printf("%s dmiofs[%d]: %s: %s\n", stamp, (int)getpid(), level_word(priority), message);
	if (write(out.fd, line, strlen(line)) < 0) {
		/* nowhere left to say it */
	}
	g_free(line);
}

static void say(int priority, const char *message, bool terminal)
{
	if (out.sink == SINK_SYSLOG)
		syslog(priority, "%s", message);
	else if (out.sink == SINK_FILE)
		to_file(priority, message);
	if (out.sink == SINK_TERMINAL || (terminal && out.terminal_too))
		fprintf(stderr, "dmiofs: %s\n", message);
}

static void glib_message(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void)domain;
	(void)data;
	say(syslog_priority(level), message, true);
}

static void dmio_message(int level, const char *message, void *context)
{
	char *line = g_strdup_printf("libdmio: %s", message);

	(void)context;
	say(level, line, true);
	g_free(line);
}

static void install(void)
{
	g_log_set_default_handler(glib_message, NULL);
	dmio_set_log_fn(dmio_message, NULL);
}

void daemonlog_foreground(void)
{
	out.sink = SINK_TERMINAL;
	install();
}

/* Does a syslog daemon listen on /dev/log?  Its mere existence is not
 * enough: a stale socket swallows nothing and says nothing. */
static bool syslog_listening(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && !connect(fd, (struct sockaddr *)&addr, sizeof(addr));

	if (fd >= 0)
		close(fd);
	return ok;
}

int daemonlog_background(const char *log_file, GString *why)
{
	if (!log_file && syslog_listening()) {
		openlog("dmiofs", LOG_PID, LOG_DAEMON);
		out.sink = SINK_SYSLOG;
		out.destination = g_strdup("syslog");
	} else {
		char *user_log = NULL;
		const char *path = log_file ? log_file : DAEMONLOG_DEFAULT_FILE;

		out.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (out.fd < 0 && !log_file && geteuid() != 0) {
			/* A user's mount: /var/log is root's; the user's runtime
			 * (or cache) folder is theirs. */
			user_log = g_build_filename(g_get_user_runtime_dir(), "dmiofs.log", NULL);
			path = user_log;
			out.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		}
		if (out.fd < 0) {
			int err = -errno;

			g_string_printf(why, "cannot open the log file %s: %s%s", path, g_strerror(errno),
					log_file ? "" : " (there is no syslog at /dev/log: give -o log=PATH)");
			g_free(user_log);
			return err;
		}
		out.sink = SINK_FILE;
		out.destination = g_strdup(path);
		g_free(user_log);
	}
	out.terminal_too = true;
	install();
	return 0;
}

void daemonlog_detached(void)
{
	out.terminal_too = false;
}

void daemonlog_quietly(const char *message)
{
	say(LOG_WARNING, message, false);
}

const char *daemonlog_destination(void)
{
	return out.destination ? out.destination : "the terminal";
}
