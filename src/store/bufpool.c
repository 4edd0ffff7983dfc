/* bufpool.c - see bufpool.h. */
#include <string.h>

#include "bufpool.h"
#include "devices.h"

void bufpool_init(struct bufpool *p, size_t size, unsigned int max_free)
{
	memset(p, 0, sizeof(*p));
	g_mutex_init(&p->lock);
	p->size = size;
	p->max_free = max_free;
}

void bufpool_destroy(struct bufpool *p)
{
	g_slist_free_full(p->free, dio_free);
	p->free = NULL;
	g_mutex_clear(&p->lock);
}

void *bufpool_get(struct bufpool *p, size_t len)
{
	void *buf = NULL;

	if (len > p->size)
		return dio_alloc(len);
	g_mutex_lock(&p->lock);
	if (p->free) {
		buf = p->free->data;
		p->free = g_slist_delete_link(p->free, p->free);
		p->nfree--;
	}
	g_mutex_unlock(&p->lock);
	if (!buf) {
		buf = dio_alloc(p->size);
		if (buf) /* touch it now rather than fault page by page during I/O */
			memset(buf, 0, p->size);
	}
	return buf;
}

void bufpool_put(struct bufpool *p, void *buf, size_t len)
{
	if (!buf)
		return;
	if (len > p->size) {
		dio_free(buf);
		return;
	}
	g_mutex_lock(&p->lock);
	if (p->nfree < p->max_free) {
		p->free = g_slist_prepend(p->free, buf);
		p->nfree++;
		buf = NULL;
	}
	g_mutex_unlock(&p->lock);
	dio_free(buf);
}
