/* page.c - 4096-byte pages: a struct page pointer is its memory's address. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

DMIO_EXPORT struct page *dmio_page_alloc(void)
{
	void *mem = NULL;
	int err = posix_memalign(&mem, DMIO_PAGE_SIZE, DMIO_PAGE_SIZE);

	if (err) {
		errno = err;
		return NULL;
	}
	return mem;
}

DMIO_EXPORT void dmio_page_free(struct page *page)
{
	free(page);
}

DMIO_EXPORT void *dmio_page_address(struct page *page)
{
	return page;
}

DMIO_EXPORT struct page *dmio_virt_to_page(const void *addr)
{
	return (struct page *)((uintptr_t)addr & ~(uintptr_t)(DMIO_PAGE_SIZE - 1));
}
