/* pool.c - fixed-size object pools, filled once so the I/O path never
 * allocates.  Shrinking is lazy: objects in use are freed when they return. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void pool_init(struct obj_pool *pool, size_t obj_size, size_t align)
{
	memset(pool, 0, sizeof(*pool));
	pool->obj_size = obj_size < sizeof(void *) ? sizeof(void *) : obj_size;
	pool->align = align < sizeof(void *) ? sizeof(void *) : align;
}

static void push_free(struct obj_pool *pool, void *obj)
{
	*(void **)obj = pool->free;
	pool->free = obj;
	pool->nfree++;
}

static void *pop_free(struct obj_pool *pool)
{
	void *obj = pool->free;

	if (obj) {
		pool->free = *(void **)obj;
		pool->nfree--;
	}
	return obj;
}

int pool_resize(struct obj_pool *pool, unsigned int target)
{
	pool->target = target;
	while (pool->total < target) {
		void *obj = NULL;

		if (posix_memalign(&obj, pool->align, pool->obj_size))
			return -ENOMEM;
		/* Touch every page now: faults are expensive on the I/O path. */
		memset(obj, 0, pool->obj_size);
		pool->total++;
		push_free(pool, obj);
	}
	while (pool->total > target && pool->nfree) {
		free(pop_free(pool));
		pool->total--;
	}
	return 0;
}

void *pool_get(struct obj_pool *pool)
{
	return pop_free(pool);
}

void pool_put(struct obj_pool *pool, void *obj)
{
	if (pool->total > pool->target) {
		free(obj);
		pool->total--;
		return;
	}
	push_free(pool, obj);
}

unsigned int pool_destroy(struct obj_pool *pool)
{
	unsigned int in_use = pool->total - pool->nfree;
	void *obj;

	while ((obj = pop_free(pool)))
		free(obj);
	pool->total = 0;
	pool->target = 0;
	return in_use;
}
