/* memory.c - one walk over the caller's memory, whatever its description:
 * a page list (with an offset into the first page), a bio_vec array, or a
 * contiguous buffer.  Every region of a request restarts the walk at the
 * beginning, so every region receives the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

void mem_cursor_init(struct mem_cursor *cur, const struct dm_io_memory *mem)
{
	cur->type = mem->type;
	switch (mem->type) {
	case DM_IO_PAGE_LIST:
		cur->p.pl = mem->ptr.pl;
		cur->off = mem->offset;
		break;
	case DM_IO_BVEC:
		cur->p.bv = mem->ptr.bvec;
		cur->off = 0;
		break;
	case DM_IO_VMA:
		cur->p.addr = mem->ptr.vma;
		cur->off = 0;
		break;
	case DM_IO_KMEM:
		cur->p.addr = mem->ptr.addr;
		cur->off = 0;
		break;
	}
}

/* Step over exhausted elements so the cursor names a byte that exists. */
static void normalize(struct mem_cursor *cur)
{
	switch (cur->type) {
	case DM_IO_PAGE_LIST:
		while (cur->off >= DMIO_PAGE_SIZE) {
			cur->off -= DMIO_PAGE_SIZE;
			cur->p.pl = cur->p.pl->next;
		}
		break;
	case DM_IO_BVEC:
		while (cur->off >= cur->p.bv->bv_len) {
			cur->off -= cur->p.bv->bv_len;
			cur->p.bv++;
		}
		break;
	default:
		break;
	}
}

void mem_cursor_peek(struct mem_cursor *cur, char **addr, size_t *len)
{
	normalize(cur);
	switch (cur->type) {
	case DM_IO_PAGE_LIST:
		*addr = (char *)dmio_page_address(cur->p.pl->page) + cur->off;
		*len = DMIO_PAGE_SIZE - cur->off;
		break;
	case DM_IO_BVEC:
		*addr = (char *)dmio_page_address(cur->p.bv->bv_page) + cur->p.bv->bv_offset + cur->off;
		*len = cur->p.bv->bv_len - cur->off;
		break;
	default:
		*addr = cur->p.addr + cur->off;
		*len = SIZE_MAX;
		break;
	}
}

void mem_cursor_advance(struct mem_cursor *cur, size_t n)
{
	if (cur->type == DM_IO_VMA || cur->type == DM_IO_KMEM) {
		cur->off += n;
		return;
	}
	while (n) {
		char *addr;
		size_t len;

		mem_cursor_peek(cur, &addr, &len);
		if (len > n)
			len = n;
		cur->off += len;
		n -= len;
	}
}

/* Walk n bytes of memory, calling fn on each contiguous span. */
static void walk(struct mem_cursor *cur, size_t n, void (*fn)(char *mem, size_t len, void *arg), void *arg)
{
	while (n) {
		char *addr;
		size_t len;

		mem_cursor_peek(cur, &addr, &len);
		if (len > n)
			len = n;
		fn(addr, len, arg);
		cur->off += len;
		n -= len;
	}
}

static void copy_to_mem(char *mem, size_t len, void *arg)
{
	const char **src = arg;

	memcpy(mem, *src, len);
	*src += len;
}

static void copy_from_mem(char *mem, size_t len, void *arg)
{
	char **dst = arg;

	memcpy(*dst, mem, len);
	*dst += len;
}

static void zero_mem(char *mem, size_t len, void *arg)
{
	(void)arg;
	memset(mem, 0, len);
}

void mem_cursor_copy_out(struct mem_cursor *cur, const char *src, size_t n)
{
	walk(cur, n, copy_to_mem, &src);
}

void mem_cursor_copy_in(struct mem_cursor *cur, char *dst, size_t n)
{
	walk(cur, n, copy_from_mem, &dst);
}

void mem_cursor_zero(struct mem_cursor *cur, size_t n)
{
	walk(cur, n, zero_mem, NULL);
}

static int check_page_list(struct page_list *pl, uint64_t offset, uint64_t bytes)
{
	uint64_t have = 0;

	for (; have < offset + bytes; pl = pl->next) {
		if (!pl || !pl->page)
			return -EINVAL;
		have += DMIO_PAGE_SIZE;
	}
	return 0;
}

static int check_bvec(const struct bio_vec *bv, uint64_t bytes)
{
	uint64_t have = 0;

	for (; have < bytes; bv++) {
		if (!bv->bv_page && bv->bv_len)
			return -EINVAL;
		have += bv->bv_len;
	}
	return 0;
}

int mem_check(const struct dm_io_memory *mem, uint64_t bytes)
{
	switch (mem->type) {
	case DM_IO_PAGE_LIST:
		if (!mem->ptr.pl)
			return bytes ? -EINVAL : 0;
		return check_page_list(mem->ptr.pl, mem->offset, bytes);
	case DM_IO_BVEC:
		if (!mem->ptr.bvec)
			return bytes ? -EINVAL : 0;
		return check_bvec(mem->ptr.bvec, bytes);
	case DM_IO_VMA:
	case DM_IO_KMEM:
		return (bytes && !mem->ptr.addr) ? -EINVAL : 0;
	}
	return -EINVAL;
}
