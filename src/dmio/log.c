/* log.c - how libdmio tells its user what it decided (e.g. buffered I/O). */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static void log_to_stderr(int level, const char *message, void *context)
{
	(void)context;
	fprintf(stderr, "libdmio%s: %s\n", level <= DMIO_LOG_ERR ? " error" : "", message);
}

static dmio_log_fn log_fn = log_to_stderr;
static void *log_context;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

DMIO_EXPORT void dmio_set_log_fn(dmio_log_fn fn, void *context)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn ? fn : log_to_stderr;
	log_context = context;
	pthread_mutex_unlock(&log_lock);
}

void dmio_log(int level, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_lock);
	log_fn(level, message, log_context);
	pthread_mutex_unlock(&log_lock);
}
