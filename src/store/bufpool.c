/* bufpool.c - see bufpool.h. */
#include <string.h>

#include "bufpool.h"
#include "devices.h"

#define SMALL_BYTES (64u * 1024 + 2 * 4096) /* a 64 KiB request, misaligned */

void bufpool_init(struct bufpool *p, size_t size, unsigned int max_large, unsigned int max_small)
{
	memset(p, 0, sizeof(*p));
	g_mutex_init(&p->lock);
	p->size = size;
	p->large.size = size;
	p->large.max_free = max_large;
	p->small.size = SMALL_BYTES < size ? SMALL_BYTES : size;
	p->small.max_free = max_small;
}

void bufpool_destroy(struct bufpool *p)
{
	g_slist_free_full(p->small.free, dio_free);
	g_slist_free_full(p->large.free, dio_free);
	p->small.free = p->large.free = NULL;
	g_mutex_clear(&p->lock);
}

static struct bufclass *class_of(struct bufpool *p, size_t len)
{
	if (len > p->size)
		return NULL;
	return len <= p->small.size ? &p->small : &p->large;
}

void *bufpool_get(struct bufpool *p, size_t len)
{
	struct bufclass *c = class_of(p, len);
	void *buf = NULL;

	if (!c)
		return dio_alloc(len);
	g_mutex_lock(&p->lock);
	if (c->free) {
		buf = c->free->data;
		c->free = g_slist_delete_link(c->free, c->free);
		c->nfree--;
	}
	g_mutex_unlock(&p->lock);
	if (!buf) {
		buf = dio_alloc(c->size);
		if (buf) /* touch it now rather than fault page by page during I/O */
			memset(buf, 0, c->size);
	}
	return buf;
}

void bufpool_put(struct bufpool *p, void *buf, size_t len)
{
	struct bufclass *c = class_of(p, len);

	if (!buf)
		return;
	if (c) {
		g_mutex_lock(&p->lock);
		if (c->nfree < c->max_free) {
			c->free = g_slist_prepend(c->free, buf);
			c->nfree++;
			buf = NULL;
		}
		g_mutex_unlock(&p->lock);
	}
	dio_free(buf);
}
