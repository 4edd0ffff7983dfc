/* waiter.h - waiting for one callback: the thread that started an
 * asynchronous operation sleeps until its callback reports the result.
 * The one way the store waits for a callback (syncs, zeroing writes,
 * copies). */
#ifndef DMIOFS_WAITER_H
#define DMIOFS_WAITER_H

#include <glib.h>
#include <stdbool.h>

struct waiter {
	GMutex lock;
	GCond cond;
	bool done;
	long result;
};

static inline void waiter_init(struct waiter *w)
{
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->done = false;
	w->result = 0;
}

/* From the callback: wake the waiter with result. */
static inline void waiter_done(struct waiter *w, long result)
{
	g_mutex_lock(&w->lock);
	w->result = result;
	w->done = true;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

/* Sleep until waiter_done; the result.  The waiter is spent (clear it). */
static inline long waiter_wait(struct waiter *w)
{
	g_mutex_lock(&w->lock);
	while (!w->done)
		g_cond_wait(&w->cond, &w->lock);
	g_mutex_unlock(&w->lock);
	return w->result;
}

static inline void waiter_clear(struct waiter *w)
{
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
}

#endif
