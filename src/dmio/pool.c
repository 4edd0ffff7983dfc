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

void *pool_alloc_chain(const struct obj_pool *pool, unsigned int count, unsigned int *made)
{
	void *chain = NULL;

	for (*made = 0; *made < count; (*made)++) {
		void *obj = NULL;

		if (posix_memalign(&obj, pool->align, pool->obj_size))
			break;
		/* Touch every page now: faults are expensive on the I/O path. */
		memset(obj, 0, pool->obj_size);
		*(void **)obj = chain;
		chain = obj;
	}
	return chain;
}

void pool_adopt_chain(struct obj_pool *pool, void *chain)
{
	while (chain) {
		void *next = *(void **)chain;

		pool->total++;
		push_free(pool, chain);
		chain = next;
	}
}

void pool_set_target(struct obj_pool *pool, unsigned int target)
{
	pool->target = target;
	while (pool->total > target && pool->nfree) {
		free(pop_free(pool));
		pool->total--;
	}
}

int pool_resize(struct obj_pool *pool, unsigned int target)
{
	int err = 0;

	if (pool->total < target) {
		unsigned int want = target - pool->total, made;

		pool_adopt_chain(pool, pool_alloc_chain(pool, want, &made));
		if (made < want)
			err = -ENOMEM;
	}
	pool_set_target(pool, target);
	return err;
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
