/* meta.c - applying records to the in-memory metadata (meta.h), and
 * serialising it back into records for a checkpoint. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "extmap.h"
#include "meta.h"


static void inode_free_contents(struct meta *m, struct dinode *in);

void meta_init(struct meta *m)
{
	memset(m, 0, sizeof(*m));
	/* A set: the inode is its own key (ino is its first field, so the
	 * int64 hash finds it by &ino too), and no value array is kept. */
	m->inodes = g_hash_table_new(g_int64_hash, g_int64_equal);
	m->next_ino = ROOT_INO + 1;
}

static void free_inode_cb(gpointer key, gpointer value, gpointer m)
{
	(void)key;
	inode_free_contents(m, value);
	g_free(value);
}

void meta_destroy(struct meta *m)
{
	if (!m->inodes)
		return;
	m->on_free = NULL;
	g_hash_table_foreach(m->inodes, free_inode_cb, m);
	g_hash_table_destroy(m->inodes);
	m->inodes = NULL;
}

struct dinode *meta_inode(struct meta *m, uint64_t ino)
{
	return g_hash_table_lookup(m->inodes, &ino);
}

uint64_t meta_estimate_bytes(const struct meta *m)
{
	/* An extent's checksums are counted per block (blocks), apart from
	 * its fixed part; a name's bytes apart from its link record. */
	return 4096 + m->counts.inodes * rec_bytes_inode() + m->counts.links * rec_bytes_link(0) +
	       m->counts.name_bytes + m->counts.extents * rec_bytes_extent(0) + m->counts.blocks * 4 +
	       m->counts.other_bytes;
}

/* ---- extents ----------------------------------------------------------- */

/* The extent's checksums as an array the caller owns; the extent has none
 * left until ext_csums_give. */
static uint32_t *ext_csums_take(struct extent *e)
{
	uint32_t *a;

	if (e->nblocks != 1) {
		a = e->csum.many;
		e->csum.many = NULL;
		return a;
	}
	a = g_new(uint32_t, 1);
	a[0] = e->csum.one;
	return a;
}

/* Give the extent n checksums (the array is taken over). */
static void ext_csums_give(struct extent *e, uint32_t n, uint32_t *a)
{
	e->nblocks = n;
	if (n == 1) {
		e->csum.one = a[0];
		g_free(a);
	} else {
		e->csum.many = a;
	}
}

static void ext_free_csums(struct extent *e)
{
	if (e->nblocks != 1)
		g_free(e->csum.many);
}

/* Drop the extent at *p; *p names the next one. */
static void ext_drop(struct meta *m, struct dinode *in, struct ext_pos *p)
{
	ext_free_csums(ext_at(in, p));
	ext_remove(in, p);
	m->counts.extents--;
}

static void ext_add(struct meta *m, struct dinode *in, struct ext_pos *p, const struct extent *e)
{
	ext_insert(in, p, e);
	m->counts.extents++;
}

static void give_back(struct meta *m, struct dinode *in, const struct extent *e, uint64_t from, uint64_t to)
{
	m->counts.blocks -= to - from;
	in->blocks -= to - from;
	if (m->on_free)
		m->on_free(m->free_ctx, e->chunk, e->cblock + (uint32_t)(from - e->fblock), (uint32_t)(to - from));
}

/* Keep only [from, to) of extent e. */
static void ext_trim(struct extent *e, uint64_t from, uint64_t to)
{
	uint32_t skip = (uint32_t)(from - e->fblock), n = (uint32_t)(to - from);
	uint32_t *a = ext_csums_take(e);

	memmove(a, a + skip, n * sizeof(uint32_t));
	e->cblock += skip;
	e->fblock = from;
	ext_csums_give(e, n, g_renew(uint32_t, a, n));
}

/* Unmap [start, end): the blocks go back through on_free. */
static void ext_punch(struct meta *m, struct dinode *in, uint64_t start, uint64_t end)
{
	struct ext_pos p;
	struct extent *e = ext_seek(in, start, &p);

	while (e && e->fblock < end) {
		uint64_t es = e->fblock, ee = es + e->nblocks;
		uint64_t cs = MAX(es, start), ce = MIN(ee, end);

		give_back(m, in, e, cs, ce);
		if (cs > es && ce < ee) { /* a hole in the middle: split */
			struct extent right = *e;

			right.fblock = ce;
			right.cblock = e->cblock + (uint32_t)(ce - es);
			ext_csums_give(&right, (uint32_t)(ee - ce),
				       g_memdup2(ext_csums(e) + (ce - es), (ee - ce) * sizeof(uint32_t)));
			ext_trim(e, es, cs);
			p.at++;
			ext_add(m, in, &p, &right);
			return;
		}
		if (cs > es) {
			ext_trim(e, es, cs);
			e = ext_next(in, &p);
		} else if (ce < ee) {
			ext_trim(e, ce, ee);
			e = ext_next(in, &p);
		} else {
			ext_drop(m, in, &p);
			e = ext_at(in, &p);
		}
	}
}

static bool ext_contiguous(const struct extent *a, const struct extent *b)
{
	return a->chunk == b->chunk && a->fblock + a->nblocks == b->fblock && a->cblock + a->nblocks == b->cblock &&
	       (uint64_t)a->nblocks + b->nblocks <= UINT32_MAX;
}

/* Append b to a (they are contiguous); b keeps no checksums. */
static void ext_merge(struct extent *a, struct extent *b)
{
	uint32_t na = a->nblocks, nb = b->nblocks;
	uint32_t *ca = g_renew(uint32_t, ext_csums_take(a), na + nb), *cb = ext_csums_take(b);

	memcpy(ca + na, cb, nb * sizeof(uint32_t));
	g_free(cb);
	ext_csums_give(a, na + nb, ca);
	b->nblocks = 0;
	b->csum.many = NULL;
}

static void ext_set(struct meta *m, struct dinode *in, const struct rec_extent *r)
{
	struct extent e = {
		.fblock = r->fblock,
		.chunk = r->chunk,
		.cblock = r->cblock,
	};
	uint32_t *csums = g_new(uint32_t, r->nblocks);
	struct extent *prev, *here, *next;
	struct ext_pos p, at;

	for (uint32_t i = 0; i < r->nblocks; i++)
		csums[i] = rec_extent_csum(r, i);
	ext_csums_give(&e, r->nblocks, csums);
	ext_punch(m, in, r->fblock, r->fblock + r->nblocks);
	m->counts.blocks += r->nblocks;
	in->blocks += r->nblocks;
	ext_seek(in, r->fblock, &p); /* where e goes: before the first extent past it */
	at = p;
	prev = ext_prev(in, &at);
	if (prev && ext_contiguous(prev, &e)) {
		ext_merge(prev, &e);
		p = at;
	} else {
		ext_add(m, in, &p, &e);
	}
	here = ext_at(in, &p);
	at = p;
	next = ext_next(in, &at);
	if (next && ext_contiguous(here, next)) {
		ext_merge(here, next);
		ext_drop(m, in, &at);
	}
}

/* ---- inodes -------------------------------------------------------------- */

void inode_to_rec(const struct dinode *in, struct rec_inode *r)
{
	r->ino = in->ino;
	r->mode = in->mode;
	r->uid = in->uid;
	r->gid = in->gid;
	r->nlink = in->nlink;
	r->size = in->size;
	r->rdev = in->rdev;
	r->atime = (struct rec_time){ in->atime.sec, in->atime.nsec };
	r->mtime = (struct rec_time){ in->mtime.sec, in->mtime.nsec };
	r->ctime = (struct rec_time){ in->ctime.sec, in->ctime.nsec };
}

static void inode_free_contents(struct meta *m, struct dinode *in)
{
	struct xattr *x = in->xattrs;

	if (S_ISREG(in->mode)) {
		struct ext_pos p;

		for (struct extent *e = ext_first(in, &p); e; e = ext_next(in, &p)) {
			give_back(m, in, e, e->fblock, e->fblock + e->nblocks);
			ext_free_csums(e);
		}
		m->counts.extents -= in->nextents;
		ext_clear(in);
	} else if (S_ISDIR(in->mode)) {
		if (in->u.entries)
			g_hash_table_destroy(in->u.entries);
	} else if (S_ISLNK(in->mode)) {
		if (in->u.target)
			m->counts.other_bytes -= rec_bytes_symlink(strlen(in->u.target));
		g_free(in->u.target);
	}
	while (x) {
		struct xattr *next = x->next;

		m->counts.other_bytes -= rec_bytes_xattr_set(strlen(x->name), x->len);
		g_free(x->name);
		g_free(x);
		x = next;
	}
	if (in->errors)
		m->counts.other_bytes -= rec_bytes_counters();
	g_free(in->errors);
	m->counts.inodes--;
}

static int apply_inode(struct meta *m, const struct rec_inode *r)
{
	struct dinode *in = meta_inode(m, r->ino);

	if (!r->ino || (r->mode & S_IFMT) == 0)
		return -EUCLEAN;
	if (in && (in->mode & S_IFMT) != (r->mode & S_IFMT))
		return -EUCLEAN; /* an inode never changes type */
	if (!in) {
		in = g_new0(struct dinode, 1);
		in->ino = r->ino;
		if (S_ISDIR(r->mode))
			in->u.entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		g_hash_table_add(m->inodes, in);
		m->counts.inodes++;
		m->nfiles++;
		if (r->ino >= m->next_ino)
			m->next_ino = r->ino + 1;
	}
	in->mode = r->mode;
	in->uid = r->uid;
	in->gid = r->gid;
	in->nlink = r->nlink;
	in->size = r->size;
	in->rdev = r->rdev;
	in->atime = (struct ptime){ r->atime.sec, r->atime.nsec };
	in->mtime = (struct ptime){ r->mtime.sec, r->mtime.nsec };
	in->ctime = (struct ptime){ r->ctime.sec, r->ctime.nsec };
	return 0;
}

static int apply_inode_free(struct meta *m, uint64_t ino)
{
	struct dinode *in = meta_inode(m, ino);

	if (!in || ino == ROOT_INO || in->nnames)
		return -EUCLEAN; /* a name would point at freed memory */
	if (S_ISDIR(in->mode) && g_hash_table_size(in->u.entries))
		return -EUCLEAN;
	g_hash_table_remove(m->inodes, in);
	inode_free_contents(m, in);
	g_free(in);
	m->nfiles--;
	return 0;
}

static bool name_valid(const char *name, size_t len)
{
	if (!len || len > DMIOFS_NAME_MAX || memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

struct dinode *dir_lookup(struct dinode *dir, const char *name)
{
	return g_hash_table_lookup(dir->u.entries, name);
}

static int apply_link(struct meta *m, uint64_t parent_ino, uint64_t ino, const char *name, size_t len)
{
	struct dinode *dir = meta_inode(m, parent_ino), *child = meta_inode(m, ino);
	char *key;

	if (!dir || !child || !S_ISDIR(dir->mode) || !name_valid(name, len))
		return -EUCLEAN;
	key = g_strndup(name, len);
	if (g_hash_table_contains(dir->u.entries, key)) {
		g_free(key);
		return -EUCLEAN;
	}
	g_hash_table_insert(dir->u.entries, key, child);
	child->nnames++;
	if (S_ISDIR(child->mode))
		child->parent = dir;
	m->counts.links++;
	m->counts.name_bytes += len;
	return 0;
}

static int apply_unlink(struct meta *m, uint64_t parent_ino, const char *name, size_t len)
{
	struct dinode *dir = meta_inode(m, parent_ino);
	char *key = g_strndup(name, len);
	struct dinode *child;
	int err = 0;

	if (!dir || !S_ISDIR(dir->mode) || !(child = g_hash_table_lookup(dir->u.entries, key))) {
		err = -EUCLEAN;
	} else {
		g_hash_table_remove(dir->u.entries, key);
		child->nnames--;
		m->counts.links--;
		m->counts.name_bytes -= len;
	}
	g_free(key);
	return err;
}

static int apply_extent(struct meta *m, const struct record *rec)
{
	const struct rec_extent *r = &rec->u.extent;
	struct dinode *in = meta_inode(m, r->ino);

	if (!in || !S_ISREG(in->mode))
		return -EUCLEAN;
	if (rec->type == REC_EXTENT) {
		if (!r->nblocks || r->fblock + r->nblocks < r->fblock)
			return -EUCLEAN;
		ext_set(m, in, r);
	} else {
		if (!r->span || r->fblock + r->span < r->fblock)
			return -EUCLEAN;
		ext_punch(m, in, r->fblock, r->fblock + r->span);
	}
	return 0;
}

static int apply_symlink(struct meta *m, uint64_t ino, const char *target, size_t len)
{
	struct dinode *in = meta_inode(m, ino);

	if (!in || !S_ISLNK(in->mode) || !len || in->u.target)
		return -EUCLEAN;
	in->u.target = g_strndup(target, len);
	m->counts.other_bytes += rec_bytes_symlink(len);
	return 0;
}

static struct xattr **xattr_find(struct dinode *in, const char *name, size_t len)
{
	struct xattr **link;

	for (link = &in->xattrs; *link; link = &(*link)->next)
		if (strlen((*link)->name) == len && !memcmp((*link)->name, name, len))
			return link;
	return link;
}

static int apply_xattr(struct meta *m, const struct record *rec)
{
	struct dinode *in = meta_inode(m, rec->u.xattr.ino);
	struct xattr **link, *old, *x;

	if (!in || !rec->u.xattr.name_len)
		return -EUCLEAN;
	link = xattr_find(in, rec->u.xattr.name, rec->u.xattr.name_len);
	old = *link;
	if (old) {
		*link = old->next;
		m->counts.other_bytes -= rec_bytes_xattr_set(strlen(old->name), old->len);
		g_free(old->name);
		g_free(old);
	} else if (rec->type == REC_XATTR_DEL) {
		return -EUCLEAN;
	}
	if (rec->type == REC_XATTR_DEL)
		return 0;
	x = g_malloc(sizeof(*x) + rec->u.xattr.value_len);
	x->name = g_strndup(rec->u.xattr.name, rec->u.xattr.name_len);
	x->len = rec->u.xattr.value_len;
	memcpy(x->value, rec->u.xattr.value, x->len);
	x->next = in->xattrs;
	in->xattrs = x;
	m->counts.other_bytes += rec_bytes_xattr_set(rec->u.xattr.name_len, x->len);
	return 0;
}

static int apply_file_errors(struct meta *m, const struct rec_counters *c)
{
	struct dinode *in = meta_inode(m, c->id);

	if (!in)
		return -EUCLEAN;
	if (!in->errors) {
		in->errors = g_new0(struct rec_counters, 1);
		m->counts.other_bytes += rec_bytes_counters();
	}
	*in->errors = *c;
	return 0;
}

int meta_apply(struct meta *m, const struct record *rec)
{
	switch (rec->type) {
	case REC_INODE:
		return apply_inode(m, &rec->u.inode);
	case REC_INODE_FREE:
		return apply_inode_free(m, rec->u.ino);
	case REC_LINK:
		return apply_link(m, rec->u.link.parent, rec->u.link.ino, rec->u.link.name, rec->u.link.name_len);
	case REC_UNLINK:
		return apply_unlink(m, rec->u.link.parent, rec->u.link.name, rec->u.link.name_len);
	case REC_EXTENT:
	case REC_PUNCH:
		return apply_extent(m, rec);
	case REC_SYMLINK:
		return apply_symlink(m, rec->u.symlink.ino, rec->u.symlink.target, rec->u.symlink.len);
	case REC_XATTR_SET:
	case REC_XATTR_DEL:
		return apply_xattr(m, rec);
	case REC_FILE_ERRORS:
		return apply_file_errors(m, &rec->u.counters);
	case REC_NEXT_INO:
		if (rec->u.ino > m->next_ino)
			m->next_ino = rec->u.ino;
		return 0;
	default:
		return -EUCLEAN;
	}
}

int meta_apply_all(struct meta *m, const uint8_t *buf, size_t len)
{
	const uint8_t *pos = buf, *end = buf + len;
	struct record rec;
	int ret;

	while ((ret = rec_next(&pos, end, &rec)) > 0) {
		ret = meta_apply(m, &rec);
		if (ret)
			return ret;
	}
	return ret;
}

/* ---- checkpoint serialisation -------------------------------------------- */

struct ser {
	GByteArray *out;
	size_t flush_at;
	meta_flush_fn flush;
	void *ctx;
	int err;
};

static void ser_maybe_flush(struct ser *s)
{
	if (!s->err && s->out->len >= s->flush_at)
		s->err = s->flush(s->ctx, s->out);
}

static void ser_inode(gpointer key, gpointer value, gpointer data)
{
	struct dinode *in = value;
	struct ser *s = data;
	struct rec_inode r;

	(void)key;
	if (s->err)
		return;
	inode_to_rec(in, &r);
	rec_put_inode(s->out, &r);
	if (S_ISLNK(in->mode) && in->u.target)
		rec_put_symlink(s->out, in->ino, in->u.target, strlen(in->u.target));
	for (struct xattr *x = in->xattrs; x; x = x->next)
		rec_put_xattr_set(s->out, in->ino, x->name, strlen(x->name), x->value, x->len);
	if (S_ISREG(in->mode)) {
		struct ext_pos p;

		for (const struct extent *e = ext_first(in, &p); e; e = ext_next(in, &p)) {
			rec_put_extent(s->out, in->ino, e->fblock, e->nblocks, e->chunk, e->cblock, ext_csums_const(e));
			ser_maybe_flush(s);
		}
	}
	if (in->errors)
		rec_put_counters(s->out, REC_FILE_ERRORS, in->errors);
	ser_maybe_flush(s);
}

static void ser_dir(gpointer key, gpointer value, gpointer data)
{
	struct dinode *dir = value;
	struct ser *s = data;
	GHashTableIter it;
	gpointer name, child;

	(void)key;
	if (s->err || !S_ISDIR(dir->mode))
		return;
	g_hash_table_iter_init(&it, dir->u.entries);
	while (!s->err && g_hash_table_iter_next(&it, &name, &child)) {
		rec_put_link(s->out, REC_LINK, dir->ino, ((struct dinode *)child)->ino, name, strlen(name));
		ser_maybe_flush(s);
	}
}

int meta_serialize(struct meta *m, GByteArray *out, size_t flush_at, meta_flush_fn flush, void *ctx)
{
	struct ser s = { out, flush_at, flush, ctx, 0 };

	rec_put_ino(out, REC_NEXT_INO, m->next_ino);
	/* Every inode first, so that every name finds its inode. */
	g_hash_table_foreach(m->inodes, ser_inode, &s);
	g_hash_table_foreach(m->inodes, ser_dir, &s);
	return s.err;
}

/* ---- naming ------------------------------------------------------------- */

struct dir_path {
	struct dinode *dir;
	char *path; /* "" for the root */
};

void meta_name_inodes(struct meta *m, GHashTable *want, guint max)
{
	struct dinode *root = meta_inode(m, ROOT_INO);
	GQueue dirs = G_QUEUE_INIT;
	struct dir_path *dp;
	guint named = 0;

	if (!root)
		return;
	dp = g_new(struct dir_path, 1);
	*dp = (struct dir_path){ root, g_strdup("") };
	g_queue_push_tail(&dirs, dp);
	while ((dp = g_queue_pop_head(&dirs))) {
		GHashTableIter it;
		gpointer name, child;

		g_hash_table_iter_init(&it, dp->dir->u.entries);
		while (named < max && g_hash_table_iter_next(&it, &name, &child)) {
			struct dinode *c = child;
			gpointer key = GSIZE_TO_POINTER(c->ino);
			gpointer old;

			if (g_hash_table_lookup_extended(want, key, NULL, &old) && !old) {
				g_hash_table_insert(want, key, g_strdup_printf("%s/%s", dp->path, (char *)name));
				named++;
			}
			if (S_ISDIR(c->mode)) {
				struct dir_path *sub = g_new(struct dir_path, 1);

				*sub = (struct dir_path){ c, g_strdup_printf("%s/%s", dp->path, (char *)name) };
				g_queue_push_tail(&dirs, sub);
			}
		}
		g_free(dp->path);
		g_free(dp);
		if (named >= max)
			break;
	}
	while ((dp = g_queue_pop_head(&dirs))) {
		g_free(dp->path);
		g_free(dp);
	}
}
