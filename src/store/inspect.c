/* inspect.c - see inspect.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "extmap.h"
#include "inspect.h"
#include "status.h"

bool inspect_is_virtual(const char *name)
{
	return !strncmp(name, "user.dmio.", 10);
}

static void put_region(GString *s, struct store *st, uint32_t extent, uint32_t copy, const struct rec_stripe *sp,
		       uint32_t cblock, uint32_t n)
{
	const struct sdev *d = &st->dev[sp->dev];
	uint64_t offset = sp->offset + (uint64_t)cblock * DMIOFS_BLOCK;

	g_string_append_printf(s, "region extent=%u copy=%u device=%u state=%s sector=%llu count=%llu path=%s\n",
			       extent, copy, sp->dev, dev_state_name(d->state),
			       (unsigned long long)(offset >> 9), (unsigned long long)n * (DMIOFS_BLOCK >> 9),
			       d->path ? d->path : "");
}

/* The kernel refuses xattr values over 64 KiB: a layout longer than
 * this is served in pages, user.dmio.layout.N starting at extent N. */
#define LAYOUT_PAGE_BYTES 60000

static void layout_of(struct store *st, struct dinode *in, uint32_t first, GString *s)
{
	GString *body = g_string_new(NULL);
	uint32_t i = first;
	struct ext_pos p;

	for (const struct extent *e = ext_nth(in, first, &p); e && body->len < LAYOUT_PAGE_BYTES;
	     e = ext_next(in, &p), i++) {
		struct chunk *c = alloc_chunk(&st->alloc, e->chunk);

		g_string_append_printf(body, "extent index=%u offset=%llu length=%llu chunk=%u copies=%u\n", i,
				       (unsigned long long)e->fblock * DMIOFS_BLOCK,
				       (unsigned long long)e->nblocks * DMIOFS_BLOCK, e->chunk, c ? c->ncopies : 0);
		for (uint32_t k = 0; c && k < c->ncopies; k++)
			put_region(body, st, i, k, &c->stripes[k], e->cblock, e->nblocks);
	}
	g_string_append_printf(s, "size=%llu blocks=%llu extents=%u copies=%u first=%u shown=%u\n",
			       (unsigned long long)in->size, (unsigned long long)in->blocks, in->nextents, st->copies,
			       MIN(first, in->nextents), i - MIN(first, in->nextents));
	g_string_append_len(s, body->str, (gssize)body->len);
	if (i < in->nextents)
		g_string_append_printf(s, "more next=%u name=%s.%u\n", i, XATTR_LAYOUT, i);
	g_string_free(body, TRUE);
}

/* "user.dmio.layout" is page 0; "user.dmio.layout.N" starts at extent N. */
static bool layout_page(const char *name, uint32_t *first)
{
	size_t len = strlen(XATTR_LAYOUT);
	char *end;
	unsigned long v;

	if (strncmp(name, XATTR_LAYOUT, len))
		return false;
	if (!name[len]) {
		*first = 0;
		return true;
	}
	if (name[len] != '.' || !g_ascii_isdigit(name[len + 1]))
		return false;
	v = strtoul(name + len + 1, &end, 10);
	if (*end || v > UINT32_MAX)
		return false;
	*first = (uint32_t)v;
	return true;
}

static void counters_of(const struct rec_counters *c, GString *s)
{
	g_string_append_printf(s, "read_errors=%llu\nwrite_errors=%llu\nchecksum_errors=%llu\nrepaired=%llu\n",
			       (unsigned long long)c->count[ERR_READ], (unsigned long long)c->count[ERR_WRITE],
			       (unsigned long long)c->count[ERR_CSUM], (unsigned long long)c->count[ERR_REPAIRED]);
}

static void errors_of(struct store *st, struct dinode *in, GString *s)
{
	struct rec_counters none = { 0 };
	const struct rec_counters *c = in->errors ? in->errors : &none;
	struct chunk *chunk;

	counters_of(c, s);
	if (!c->last_op) {
		g_string_append(s, "last_op=none\n");
		return;
	}
	g_string_append_printf(s, "last_op=%s\nlast_chunk=%u\nlast_bits=0x%llx\n",
			       c->last_op == 1 ? "read" : "write", c->last_chunk, (unsigned long long)c->last_bits);
	chunk = alloc_chunk(&st->alloc, c->last_chunk);
	for (uint32_t k = 0; chunk && k < chunk->ncopies; k++)
		if (c->last_bits & (1ull << k))
			g_string_append_printf(s, "last_failed copy=%u device=%u path=%s\n", k, chunk->stripes[k].dev,
					       st->dev[chunk->stripes[k].dev].path ? st->dev[chunk->stripes[k].dev].path : "");
}

/* The root's status and devices, rendered from the typed status. */
static bool status_xattr(struct store *st, const char *name, GString *out)
{
	struct fs_status s;
	bool status = !strcmp(name, XATTR_STATUS), devices = !strcmp(name, XATTR_DEVICES);

	if (!status && !devices)
		return false;
	store_status(st, &s);
	if (status)
		status_to_text(&s, out);
	else
		devices_to_text(&s, out);
	fs_status_clear(&s);
	return true;
}

int inspect_xattr(struct store *st, uint64_t ino, const char *name, char **out)
{
	GString *s = g_string_new(NULL);
	struct dinode *in;
	uint32_t first;
	int err = 0;

	if (ino == ROOT_INO && status_xattr(st, name, s)) {
		*out = g_string_free(s, FALSE);
		return 0;
	}
	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in)
		err = -ENOENT;
	else if (layout_page(name, &first) && S_ISREG(in->mode))
		layout_of(st, in, first, s);
	else if (!strcmp(name, XATTR_ERRORS))
		errors_of(st, in, s);
	else
		err = -ENODATA;
	g_mutex_unlock(&st->lock);
	if (err) {
		g_string_free(s, TRUE);
		return err;
	}
	*out = g_string_free(s, FALSE);
	return 0;
}
