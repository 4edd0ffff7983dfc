/* seed.c - the seed document's calls: three memory types, each synchronous
 * and asynchronous, on a process-wide default client sized by dm_io_get()
 * and dm_io_put(). */
#include <errno.h>
#include <limits.h>

#include "internal.h"

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dm_io_client *_Atomic default_client;
static unsigned int default_reserve;

struct dm_io_client *dmio_default_client(void)
{
	struct dm_io_client *client = atomic_load(&default_client);

	if (client)
		return client;
	pthread_mutex_lock(&default_lock);
	client = atomic_load(&default_client);
	if (!client) {
		client = dm_io_client_create(default_reserve);
		atomic_store(&default_client, client);
	}
	pthread_mutex_unlock(&default_lock);
	return client;
}

DMIO_EXPORT int dm_io_get(unsigned int num_pages)
{
	struct dm_io_client *client;
	int err = 0;

	pthread_mutex_lock(&default_lock);
	if (num_pages > UINT_MAX - default_reserve) {
		pthread_mutex_unlock(&default_lock);
		return -EINVAL;
	}
	default_reserve += num_pages;
	client = atomic_load(&default_client);
	if (client) {
		err = dm_io_client_resize(default_reserve, client);
	} else {
		client = dm_io_client_create(default_reserve);
		if (client)
			atomic_store(&default_client, client);
		else
			err = -errno;
	}
	if (err)
		default_reserve -= num_pages;
	pthread_mutex_unlock(&default_lock);
	return err;
}

/* The pool shrinks back towards its floor; the client itself stays, since
 * another thread may be using it without a reservation of its own. */
DMIO_EXPORT void dm_io_put(unsigned int num_pages)
{
	struct dm_io_client *client;

	pthread_mutex_lock(&default_lock);
	default_reserve -= num_pages < default_reserve ? num_pages : default_reserve;
	client = atomic_load(&default_client);
	if (client)
		dm_io_client_resize(default_reserve, client);
	pthread_mutex_unlock(&default_lock);
}

static int seed_io(unsigned int num_regions, struct io_region *where, int rw, struct dm_io_memory mem,
		   io_notify_fn fn, void *context, unsigned long *error_bits, bool async)
{
	struct dm_io_request req = {
		.bi_op = rw,
		.mem = mem,
		.notify = { .fn = fn, .context = context },
	};

	if (rw != DMIO_READ && rw != DMIO_WRITE)
		return -EINVAL;
	if (async && !fn)
		return -EINVAL;
	return dm_io(&req, num_regions, where, error_bits);
}

static struct dm_io_memory page_list_mem(struct page_list *pl, unsigned int offset)
{
	return (struct dm_io_memory){ .type = DM_IO_PAGE_LIST, .offset = offset, .ptr.pl = pl };
}

static struct dm_io_memory bvec_mem(struct bio_vec *bvec)
{
	return (struct dm_io_memory){ .type = DM_IO_BVEC, .ptr.bvec = bvec };
}

static struct dm_io_memory vm_mem(void *data)
{
	return (struct dm_io_memory){ .type = DM_IO_VMA, .ptr.vma = data };
}

DMIO_EXPORT int dm_io_sync(unsigned int num_regions, struct io_region *where, int rw, struct page_list *pl,
			   unsigned int offset, unsigned long *error_bits)
{
	return seed_io(num_regions, where, rw, page_list_mem(pl, offset), NULL, NULL, error_bits, false);
}

DMIO_EXPORT int dm_io_async(unsigned int num_regions, struct io_region *where, int rw, struct page_list *pl,
			    unsigned int offset, io_notify_fn fn, void *context)
{
	return seed_io(num_regions, where, rw, page_list_mem(pl, offset), fn, context, NULL, true);
}

DMIO_EXPORT int dm_io_sync_bvec(unsigned int num_regions, struct io_region *where, int rw, struct bio_vec *bvec,
				unsigned long *error_bits)
{
	return seed_io(num_regions, where, rw, bvec_mem(bvec), NULL, NULL, error_bits, false);
}

DMIO_EXPORT int dm_io_async_bvec(unsigned int num_regions, struct io_region *where, int rw,
				 struct bio_vec *bvec, io_notify_fn fn, void *context)
{
	return seed_io(num_regions, where, rw, bvec_mem(bvec), fn, context, NULL, true);
}

DMIO_EXPORT int dm_io_sync_vm(unsigned int num_regions, struct io_region *where, int rw, void *data,
			      unsigned long *error_bits)
{
	return seed_io(num_regions, where, rw, vm_mem(data), NULL, NULL, error_bits, false);
}

DMIO_EXPORT int dm_io_async_vm(unsigned int num_regions, struct io_region *where, int rw, void *data,
			       io_notify_fn fn, void *context)
{
	return seed_io(num_regions, where, rw, vm_mem(data), fn, context, NULL, true);
}
