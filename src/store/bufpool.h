/* bufpool.h - aligned I/O buffers kept for reuse: allocating and faulting
 * in fresh memory for every request costs more than the I/O on these
 * machines.  Two sizes: small requests must not pin a megabyte each. */
#ifndef DMIOFS_BUFPOOL_H
#define DMIOFS_BUFPOOL_H

#include <glib.h>
#include <stddef.h>

struct bufclass {
	GSList *free;
	size_t size;         /* every buffer of the class has this size */
	unsigned int nfree, max_free;
};

struct bufpool {
	GMutex lock;
	struct bufclass small, large;
	size_t size;         /* the largest pooled request */
};

/* Pool requests up to size bytes; keep at most max_large buffers of that
 * size and max_small small ones when idle. */
void bufpool_init(struct bufpool *p, size_t size, unsigned int max_large, unsigned int max_small);
void bufpool_destroy(struct bufpool *p);
/* At least len bytes, 4 KiB aligned; NULL when out of memory. */
void *bufpool_get(struct bufpool *p, size_t len);
void bufpool_put(struct bufpool *p, void *buf, size_t len);

#endif
