/* bufpool.h - aligned I/O buffers kept for reuse: allocating and faulting
 * in a fresh megabyte for every request costs more than the I/O on these
 * machines. */
#ifndef DMIOFS_BUFPOOL_H
#define DMIOFS_BUFPOOL_H

#include <glib.h>
#include <stddef.h>

struct bufpool {
	GMutex lock;
	GSList *free;
	size_t size;         /* every pooled buffer has this size */
	unsigned int nfree, max_free;
};

void bufpool_init(struct bufpool *p, size_t size, unsigned int max_free);
void bufpool_destroy(struct bufpool *p);
/* At least len bytes, 4 KiB aligned; NULL when out of memory. */
void *bufpool_get(struct bufpool *p, size_t len);
void bufpool_put(struct bufpool *p, void *buf, size_t len);

#endif
