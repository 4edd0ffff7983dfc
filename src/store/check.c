/* check.c - fsck for dmiofs: the invariants mounting does not already
 * enforce.  Opening the store has checked the superblocks, the checkpoint,
 * the log and that no two extents share a block; this walks the tree
 * (reachability, link counts, parents) and reads every copy of every
 * block against its checksum, so mirrors that disagree are found. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "apply.h"
#include "devices.h"

struct walk {
	struct store *st;
	GHashTable *names;   /* ino -> number of names found */
	GHashTable *subdirs; /* dir ino -> subdirectories found */
	FILE *out;
	struct check_report *rep;
	bool repair, verbose;
};

static void problem(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct walk *w, const char *fmt, ...)
{
	va_list ap;

	w->rep->problems++;
	fputs("problem: ", w->out);
	va_start(ap, fmt);
	vfprintf(w->out, fmt, ap);
	va_end(ap);
	fputc('\n', w->out);
}

static void fixed(struct walk *w, const char *what)
{
	w->rep->repaired++;
	fprintf(w->out, "  repaired: %s\n", what);
}

static void count(GHashTable *t, uint64_t ino)
{
	gpointer key = GSIZE_TO_POINTER(ino);

	g_hash_table_insert(t, key, GSIZE_TO_POINTER(GPOINTER_TO_SIZE(g_hash_table_lookup(t, key)) + 1));
}

static uint64_t counted(GHashTable *t, uint64_t ino)
{
	return GPOINTER_TO_SIZE(g_hash_table_lookup(t, GSIZE_TO_POINTER(ino)));
}

/* ---- superblocks -------------------------------------------------------- */

static void check_superblocks(struct walk *w)
{
	struct store *st = w->st;
	bool rewrite = false;

	for (uint32_t i = 0; i < st->ndevices; i++) {
		const struct sdev *d = &st->dev[i];
		char uuid[37];

		if (!d->bdev && d->state != DEV_REMOVED) {
			uuid_format(st->sb.devs[i].uuid, uuid);
			problem(w, "device %u (%s) is missing: the file system is degraded", i, uuid);
			w->rep->degraded++;
		}
		if (!d->bdev)
			continue;
		if (!d->sb_primary_ok || !d->sb_backup_ok) {
			problem(w, "%s: the %s superblock copy is damaged", d->path,
				!d->sb_primary_ok && !d->sb_backup_ok ? "primary and backup"
				: !d->sb_primary_ok		       ? "primary"
								       : "backup");
			rewrite = true;
		} else if (d->sb_stale && w->verbose) {
			/* What a power cut between writing the two copies leaves:
			 * not damage; the next mount rewrites the older one. */
			fprintf(w->out, "note: %s: one superblock copy is older than the other (a write was cut "
					"short); mounting rewrites it\n",
				d->path);
		}
		if (d->state != DEV_HEALTHY) {
			problem(w, "%s: device %u is %s: the file system is degraded", d->path, i,
				dev_state_name(d->state));
			w->rep->degraded++;
		}
	}
	/* Opening read-write has already rewritten them. */
	if (rewrite && w->repair)
		fixed(w, "superblocks rewritten on every healthy device");
}

/* ---- the tree -------------------------------------------------------------- */

static void walk_dir(struct walk *w, struct dinode *dir, GQueue *unwalked)
{
	GHashTableIter it;
	gpointer name, child;

	g_hash_table_iter_init(&it, dir->u.entries);
	while (g_hash_table_iter_next(&it, &name, &child)) {
		struct dinode *c = child;

		if (S_ISDIR(c->mode)) {
			count(w->subdirs, dir->ino);
			if (counted(w->names, c->ino)) {
				problem(w, "directory %llu has a second name \"%s\" in directory %llu",
					(unsigned long long)c->ino, (char *)name, (unsigned long long)dir->ino);
				continue;
			}
			if (c->parent != dir)
				problem(w, "directory %llu: its parent is not directory %llu that names it",
					(unsigned long long)c->ino, (unsigned long long)dir->ino);
			g_queue_push_tail(unwalked, c);
		}
		count(w->names, c->ino);
	}
}

static void walk_tree(struct walk *w)
{
	struct dinode *root = meta_inode(&w->st->meta, ROOT_INO);
	GQueue unwalked = G_QUEUE_INIT;
	struct dinode *dir;

	g_queue_push_tail(&unwalked, root);
	while ((dir = g_queue_pop_head(&unwalked))) {
		w->rep->directories++;
		walk_dir(w, dir, &unwalked);
	}
}

static void set_nlink(struct walk *w, struct dinode *in, uint32_t nlink)
{
	GByteArray *r = g_byte_array_new();
	struct rec_inode ri;

	inode_to_rec(in, &ri);
	ri.nlink = nlink;
	rec_put_inode(r, &ri);
	if (!store_log(w->st, r))
		fixed(w, "link count corrected");
	g_byte_array_free(r, TRUE);
}

/* Put an unreachable inode in /lost+found, named after its number. */
static void rescue(struct walk *w, struct dinode *in)
{
	struct dinode *root = meta_inode(&w->st->meta, ROOT_INO), *lf = dir_lookup(root, "lost+found");
	GByteArray *r = g_byte_array_new();
	char name[32];

	if (!lf) {
		struct rec_inode d = { 0 }, rr;

		inode_to_rec(root, &rr);
		d.ino = w->st->meta.next_ino;
		d.mode = S_IFDIR | 0700;
		d.nlink = 2;
		d.atime = d.mtime = d.ctime = rr.mtime;
		rec_put_inode(r, &d);
		rec_put_link(r, REC_LINK, ROOT_INO, d.ino, "lost+found", 10);
		rr.nlink++;
		rec_put_inode(r, &rr);
		if (store_log(w->st, r))
			goto out;
		g_byte_array_set_size(r, 0);
		lf = dir_lookup(root, "lost+found");
	}
	g_snprintf(name, sizeof(name), "#%llu", (unsigned long long)in->ino);
	rec_put_link(r, REC_LINK, lf->ino, in->ino, name, strlen(name));
	if (S_ISDIR(in->mode)) {
		struct rec_inode l;

		inode_to_rec(lf, &l);
		l.nlink++;
		rec_put_inode(r, &l);
	}
	if (!store_log(w->st, r))
		fixed(w, "moved to /lost+found");
out:
	g_byte_array_free(r, TRUE);
}

struct inode_pass {
	struct walk *w;
	GPtrArray *unreachable;
};

static void check_inode(gpointer key, gpointer value, gpointer data)
{
	struct inode_pass *p = data;
	struct walk *w = p->w;
	struct dinode *in = value;
	uint64_t names = counted(w->names, in->ino);
	uint32_t want;

	(void)key;
	w->rep->inodes++;
	if (in->ino == ROOT_INO)
		names = 1;
	if (!names) {
		if (in->nlink)
			g_ptr_array_add(p->unreachable, in);
		else if (w->verbose)
			fprintf(w->out, "note: inode %llu has no name (open-unlinked at a crash); mounting frees it\n",
				(unsigned long long)in->ino);
		return;
	}
	want = S_ISDIR(in->mode) ? 2 + (uint32_t)counted(w->subdirs, in->ino) : (uint32_t)names;
	if (in->nlink != want) {
		problem(w, "inode %llu: link count %u, but %u found", (unsigned long long)in->ino, in->nlink, want);
		if (w->repair)
			set_nlink(w, in, want);
	}
	if (S_ISLNK(in->mode) && !in->u.target)
		problem(w, "symlink %llu has no target", (unsigned long long)in->ino);
}

static void check_inodes(struct walk *w)
{
	struct inode_pass p = { w, g_ptr_array_new() };

	g_hash_table_foreach(w->st->meta.inodes, check_inode, &p);
	for (guint i = 0; i < p.unreachable->len; i++) {
		struct dinode *in = g_ptr_array_index(p.unreachable, i);

		problem(w, "inode %llu (link count %u) cannot be reached from the root",
			(unsigned long long)in->ino, in->nlink);
		if (w->repair)
			rescue(w, in);
	}
	g_ptr_array_free(p.unreachable, TRUE);
}

/* ---- data: every copy of every block ------------------------------------------ */

#define CHECK_BATCH 256 /* blocks read at once */

struct copy_state {
	uint8_t *buf;
	bool readable;
};

static void check_extent_part(struct walk *w, struct dinode *in, const struct extent *e, const struct chunk *c,
			      uint32_t from, uint32_t n, struct copy_state *copies)
{
	struct store *st = w->st;

	for (uint32_t k = 0; k < c->ncopies; k++) {
		struct sdev *d = &st->dev[c->stripes[k].dev];
		uint64_t offset = c->stripes[k].offset + (uint64_t)(e->cblock + from) * DMIOFS_BLOCK;

		/* A stale copy (its device was away) is not expected to match:
		 * the catch-up rewrites it, and the mount counts it. */
		bool wanted = dev_written(d) && !alloc_stale_count(c, k, e->cblock + from, n);

		copies[k].readable = wanted && !dev_read(st->client, d, offset, copies[k].buf, (size_t)n * DMIOFS_BLOCK);
		if (wanted && !copies[k].readable)
			problem(w, "inode %llu: blocks %llu..%llu cannot be read from %s", (unsigned long long)in->ino,
				(unsigned long long)(e->fblock + from), (unsigned long long)(e->fblock + from + n - 1),
				d->path);
	}
	for (uint32_t b = 0; b < n; b++) {
		uint32_t want = ext_csums_const(e)[from + b];
		int good = -1;
		uint32_t bad = 0;

		for (uint32_t k = 0; k < c->ncopies; k++) {
			if (!copies[k].readable)
				continue;
			if (dmiofs_crc(copies[k].buf + (size_t)b * DMIOFS_BLOCK, DMIOFS_BLOCK) == want) {
				if (good < 0)
					good = (int)k;
			} else {
				bad |= 1u << k;
			}
		}
		w->rep->blocks_checked++;
		for (uint32_t k = 0; k < c->ncopies; k++) {
			struct sdev *d = &st->dev[c->stripes[k].dev];
			uint64_t offset = c->stripes[k].offset + (uint64_t)(e->cblock + from + b) * DMIOFS_BLOCK;
			unsigned long bits;

			if (!(bad & (1u << k)))
				continue;
			problem(w, "inode %llu block %llu: the copy on %s does not match its checksum%s",
				(unsigned long long)in->ino, (unsigned long long)(e->fblock + from + b), d->path,
				good < 0 ? " (no copy does)" : "");
			if (!w->repair || good < 0)
				continue;
			if (!devs_write_same(st->client, d, 1, offset, copies[good].buf + (size_t)b * DMIOFS_BLOCK,
					     DMIOFS_BLOCK, DMIO_REQ_FUA, &bits))
				fixed(w, "copy rewritten from a good one");
		}
	}
}

static void check_file_data(gpointer key, gpointer value, gpointer data)
{
	struct walk *w = data;
	struct dinode *in = value;
	struct copy_state copies[DMIOFS_MAX_COPIES];

	(void)key;
	if (!S_ISREG(in->mode) || !in->next)
		return;
	for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
		copies[k].buf = dio_alloc((size_t)CHECK_BATCH * DMIOFS_BLOCK);
	for (uint32_t i = 0; i < in->next; i++) {
		const struct extent *e = &in->u.ext[i];
		struct chunk *c = alloc_chunk(&w->st->alloc, e->chunk);

		w->rep->extents++;
		if (!c) {
			problem(w, "inode %llu: extent %u names chunk %u, which does not exist",
				(unsigned long long)in->ino, i, e->chunk);
			continue;
		}
		for (uint32_t from = 0; from < e->nblocks; from += CHECK_BATCH)
			check_extent_part(w, in, e, c, from, MIN(CHECK_BATCH, e->nblocks - from), copies);
	}
	for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
		dio_free(copies[k].buf);
}

int store_check(struct store *st, bool repair, bool verbose, FILE *out, struct check_report *rep)
{
	struct walk w = {
		.st = st,
		.names = g_hash_table_new(g_direct_hash, g_direct_equal),
		.subdirs = g_hash_table_new(g_direct_hash, g_direct_equal),
		.out = out,
		.rep = rep,
		.repair = repair,
		.verbose = verbose,
	};

	memset(rep, 0, sizeof(*rep));
	check_superblocks(&w);
	g_mutex_lock(&st->lock);
	walk_tree(&w);
	check_inodes(&w);
	g_mutex_unlock(&st->lock);
	/* Data last, without the lock: nothing else runs in fsck. */
	g_hash_table_foreach(st->meta.inodes, check_file_data, &w);
	g_hash_table_destroy(w.names);
	g_hash_table_destroy(w.subdirs);
	return 0;
}
