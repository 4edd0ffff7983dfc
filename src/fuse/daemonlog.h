/* daemonlog.h - where the daemon's messages go.  In the foreground: the
 * terminal.  In the background: syslog when /dev/log takes messages,
 * else a log file (-o log=PATH, default /var/log/dmiofs.log), and also
 * the terminal until the parent that waits for the mount has returned,
 * so nothing said while mounting is lost (daemonlog.c). */
#ifndef DMIOFS_DAEMONLOG_H
#define DMIOFS_DAEMONLOG_H

#include <stdbool.h>

#include <glib.h>

#define DAEMONLOG_DEFAULT_FILE "/var/log/dmiofs.log"

/* Messages to the terminal (standard error) only. */
void daemonlog_foreground(void);
/* Choose the background sink: the file log_file when given, else syslog
 * when /dev/log is there, else DAEMONLOG_DEFAULT_FILE; the terminal too
 * until daemonlog_detached().  0, or a negative errno with why said. */
int daemonlog_background(const char *log_file, GString *why);
/* The terminal is gone (standard error is /dev/null from now on). */
void daemonlog_detached(void);
/* Say a message in the log but not on the terminal (the parent prints
 * it there itself). */
void daemonlog_quietly(const char *message);
/* Where the messages go, for the first message after mounting. */
const char *daemonlog_destination(void);

#endif
