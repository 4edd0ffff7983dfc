/* rangelock.c - see rangelock.h. */
#include "meta.h"
#include "rangelock.h"
#include "store.h"

static bool overlap(const struct range_op *a, const struct range_op *b)
{
	return a->first <= b->last && b->first <= a->last;
}

/* Does op overlap any entry of list before stop? */
static bool overlaps_list(const struct range_op *list, const struct range_op *op, const struct range_op *stop)
{
	for (; list && list != stop; list = list->next)
		if (overlap(list, op))
			return true;
	return false;
}

bool range_acquire(struct dinode *in, struct range_op *op)
{
	struct range_op **tail;

	if (!in->io)
		in->io = g_new0(struct inode_io, 1);
	op->ready_next = NULL;
	if (!overlaps_list(in->io->active, op, NULL) && !overlaps_list(in->io->waiting, op, NULL)) {
		op->next = in->io->active;
		in->io->active = op;
		return true;
	}
	op->next = NULL;
	for (tail = &in->io->waiting; *tail; tail = &(*tail)->next)
		;
	*tail = op;
	return false;
}

struct range_op *range_release(struct dinode *in, struct range_op *op)
{
	struct range_op **link, *ready = NULL, **ready_tail = &ready;

	for (link = &in->io->active; *link; link = &(*link)->next)
		if (*link == op) {
			*link = op->next;
			break;
		}
	/* In order, every waiting op clear of the running ones and of those
	 * ahead of it that still wait may go. */
	link = &in->io->waiting;
	while (*link) {
		struct range_op *w = *link;

		if (overlaps_list(in->io->active, w, NULL) || overlaps_list(in->io->waiting, w, w)) {
			link = &w->next;
			continue;
		}
		*link = w->next;
		w->next = in->io->active;
		in->io->active = w;
		w->ready_next = NULL;
		*ready_tail = w;
		ready_tail = &w->ready_next;
	}
	if (!in->io->active && !in->io->waiting) {
		g_free(in->io);
		in->io = NULL;
	}
	return ready;
}

void range_run_started(gpointer op, gpointer unused)
{
	struct range_op *r = op;

	(void)unused;
	r->start(r);
}

void range_start_ready(struct store *st, struct range_op *ready)
{
	while (ready) {
		struct range_op *next = ready->ready_next;

		g_thread_pool_push(st->starter, ready, NULL);
		ready = next;
	}
}

static void wake_waiter(struct range_op *op)
{
	struct range_wait *w = (struct range_wait *)op;

	g_mutex_lock(&w->st->lock);
	w->go = true;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->st->lock);
}

void range_acquire_wait(struct store *st, struct dinode *in, uint64_t first, uint64_t last, struct range_wait *w)
{
	w->op.first = first;
	w->op.last = last;
	w->op.start = wake_waiter;
	w->st = st;
	w->go = range_acquire(in, &w->op);
	while (!w->go)
		g_cond_wait(&w->cond, &st->lock);
}
