/* extmap.c - a file's extents in leaves under a flat index (extmap.h).
 *
 * The dinode holds the map in three fields: nextents (extents in all),
 * nleaves, and u.leaf (the one leaf of a file with nleaves == 1, which
 * is most files) or u.leaves (the index, nleaves pointers, otherwise).
 * Every leaf holds at least one extent; the last extent of each leaf is
 * what the seek's binary search over leaves compares. */
#include <string.h>

#include "extmap.h"

struct ext_leaf {
	uint32_t n, cap;
	struct extent e[];
};

static struct ext_leaf *leaf_of(const struct dinode *in, uint32_t i)
{
	return in->nleaves == 1 ? in->u.leaf : in->u.leaves[i];
}

static void set_leaf(struct dinode *in, uint32_t i, struct ext_leaf *l)
{
	if (in->nleaves == 1)
		in->u.leaf = l;
	else
		in->u.leaves[i] = l;
}

static struct ext_leaf *leaf_new(uint32_t cap)
{
	struct ext_leaf *l = g_malloc(sizeof(*l) + cap * sizeof(struct extent));

	l->n = 0;
	l->cap = cap;
	return l;
}

static uint64_t ext_end(const struct extent *e)
{
	return e->fblock + e->nblocks;
}

static void pos_end(const struct dinode *in, struct ext_pos *p)
{
	p->leaf = in->nleaves ? in->nleaves - 1 : 0;
	p->at = in->nleaves ? leaf_of(in, p->leaf)->n : 0;
}

struct extent *ext_at(const struct dinode *in, const struct ext_pos *p)
{
	struct ext_leaf *l;

	if (p->leaf >= in->nleaves)
		return NULL;
	l = leaf_of(in, p->leaf);
	return p->at < l->n ? &l->e[p->at] : NULL;
}

struct extent *ext_seek(const struct dinode *in, uint64_t fblock, struct ext_pos *p)
{
	uint32_t lo = 0, hi = in->nleaves;
	struct ext_leaf *l;

	while (lo < hi) { /* the first leaf whose last extent ends after fblock */
		uint32_t mid = lo + (hi - lo) / 2;
		struct ext_leaf *m = leaf_of(in, mid);

		if (ext_end(&m->e[m->n - 1]) <= fblock)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == in->nleaves) {
		pos_end(in, p);
		return NULL;
	}
	l = leaf_of(in, lo);
	p->leaf = lo;
	hi = l->n;
	lo = 0;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ext_end(&l->e[mid]) <= fblock)
			lo = mid + 1;
		else
			hi = mid;
	}
	p->at = lo;
	return &l->e[lo];
}

struct extent *ext_first(const struct dinode *in, struct ext_pos *p)
{
	*p = (struct ext_pos){ 0, 0 };
	return ext_at(in, p);
}

struct extent *ext_next(const struct dinode *in, struct ext_pos *p)
{
	if (p->leaf >= in->nleaves)
		return NULL;
	if (p->at + 1 < leaf_of(in, p->leaf)->n) {
		p->at++;
	} else if (p->leaf + 1 < in->nleaves) {
		p->leaf++;
		p->at = 0;
	} else {
		pos_end(in, p);
		return NULL;
	}
	return ext_at(in, p);
}

struct extent *ext_prev(const struct dinode *in, struct ext_pos *p)
{
	if (p->at > 0) {
		p->at--;
	} else if (p->leaf > 0 && p->leaf <= in->nleaves) {
		p->leaf--;
		p->at = leaf_of(in, p->leaf)->n - 1;
	} else {
		return NULL;
	}
	return ext_at(in, p);
}

struct extent *ext_last(const struct dinode *in)
{
	struct ext_leaf *l;

	if (!in->nleaves)
		return NULL;
	l = leaf_of(in, in->nleaves - 1);
	return &l->e[l->n - 1];
}

struct extent *ext_nth(const struct dinode *in, uint32_t n, struct ext_pos *p)
{
	for (uint32_t i = 0; i < in->nleaves; i++) {
		struct ext_leaf *l = leaf_of(in, i);

		if (n < l->n) {
			*p = (struct ext_pos){ i, n };
			return &l->e[n];
		}
		n -= l->n;
	}
	pos_end(in, p);
	return NULL;
}

uint64_t ext_mapped_blocks(const struct dinode *in, uint64_t fblock, uint64_t n)
{
	uint64_t end = fblock + n, mapped = 0;
	struct ext_pos p;

	for (struct extent *e = ext_seek(in, fblock, &p); e && e->fblock < end; e = ext_next(in, &p))
		mapped += MIN(ext_end(e), end) - MAX(e->fblock, fblock);
	return mapped;
}

/* ---- changing the index ---------------------------------------------------- */

/* Put leaf l into the index at i (the leaves from i move up one). */
static void index_insert(struct dinode *in, uint32_t i, struct ext_leaf *l)
{
	struct ext_leaf **index;

	if (in->nleaves == 1) {
		index = g_new(struct ext_leaf *, 2);
		index[0] = in->u.leaf;
	} else {
		index = g_renew(struct ext_leaf *, in->u.leaves, in->nleaves + 1);
	}
	memmove(&index[i + 1], &index[i], (in->nleaves - i) * sizeof(*index));
	index[i] = l;
	in->u.leaves = index;
	in->nleaves++;
}

/* Take leaf i (already freed) out of the index. */
static void index_remove(struct dinode *in, uint32_t i)
{
	struct ext_leaf **index = in->u.leaves;

	if (in->nleaves == 1) {
		in->u.leaf = NULL;
		in->nleaves = 0;
		return;
	}
	memmove(&index[i], &index[i + 1], (in->nleaves - i - 1) * sizeof(*index));
	in->nleaves--;
	if (in->nleaves == 1) {
		in->u.leaf = index[0];
		g_free(index);
	} else {
		in->u.leaves = g_renew(struct ext_leaf *, index, in->nleaves);
	}
}

/* Split the full leaf at p->leaf in two halves; p follows its extent. */
static void leaf_split(struct dinode *in, struct ext_pos *p)
{
	struct ext_leaf *l = leaf_of(in, p->leaf);
	uint32_t keep = l->n / 2;
	struct ext_leaf *r = leaf_new(EXT_LEAF_MAX);

	r->n = l->n - keep;
	memcpy(r->e, &l->e[keep], r->n * sizeof(struct extent));
	l->n = keep;
	index_insert(in, p->leaf + 1, r);
	if (p->at > keep) {
		p->leaf++;
		p->at -= keep;
	}
}

struct extent *ext_insert(struct dinode *in, struct ext_pos *p, const struct extent *e)
{
	struct ext_leaf *l;

	if (!in->nleaves) {
		in->u.leaf = leaf_new(1);
		in->nleaves = 1;
		*p = (struct ext_pos){ 0, 0 };
	}
	l = leaf_of(in, p->leaf);
	if (l->n == EXT_LEAF_MAX) {
		leaf_split(in, p);
		l = leaf_of(in, p->leaf);
	}
	if (l->n == l->cap) {
		l->cap = MIN(2 * l->cap, EXT_LEAF_MAX);
		l = g_realloc(l, sizeof(*l) + l->cap * sizeof(struct extent));
		set_leaf(in, p->leaf, l);
	}
	memmove(&l->e[p->at + 1], &l->e[p->at], (l->n - p->at) * sizeof(struct extent));
	l->e[p->at] = *e;
	l->n++;
	in->nextents++;
	return &l->e[p->at];
}

void ext_remove(struct dinode *in, struct ext_pos *p)
{
	struct ext_leaf *l = leaf_of(in, p->leaf);

	memmove(&l->e[p->at], &l->e[p->at + 1], (l->n - p->at - 1) * sizeof(struct extent));
	l->n--;
	in->nextents--;
	if (!l->n) {
		g_free(l);
		index_remove(in, p->leaf);
		if (p->leaf < in->nleaves)
			p->at = 0;
		else
			pos_end(in, p);
		return;
	}
	if (l->n <= l->cap / 4) { /* a file that shrank gives its memory back */
		l->cap /= 2;
		l = g_realloc(l, sizeof(*l) + l->cap * sizeof(struct extent)); /* l may move */
		set_leaf(in, p->leaf, l);
	}
	if (p->at == l->n && p->leaf + 1 < in->nleaves) {
		p->leaf++;
		p->at = 0;
	}
}

void ext_clear(struct dinode *in)
{
	for (uint32_t i = 0; i < in->nleaves; i++)
		g_free(leaf_of(in, i));
	if (in->nleaves > 1)
		g_free(in->u.leaves);
	in->u.leaf = NULL;
	in->nleaves = 0;
	in->nextents = 0;
}
