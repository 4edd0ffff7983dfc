/* check.c - fsck for dmiofs: the invariants mounting does not already
 * enforce.  Opening the store has checked the superblocks, the checkpoint,
 * the log and that no two extents share a block; this reads every copy of
 * every block against its checksum, so mirrors that disagree are found,
 * and walks the tree (reachability, link counts, parents).  A problem
 * with a file names it by its paths, as its owner knows it, with the
 * inode number beside them. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "extmap.h"
#include "check.h"
#include "apply.h"
#include "devices.h"

#define LABEL_NAMES_MAX 4 /* a file's names spelled out in a message; the rest are counted */

/* Where one name of an inode is: the directory holding it, and the name,
 * which points into that directory's table (see names_forget). */
struct name_ref {
	uint64_t dir;
	const char *name;
};

struct walk {
	struct store *st;
	const struct check_options *opt;
	struct check_report *rep;
	GHashTable *names;   /* ino -> number of names found */
	GHashTable *subdirs; /* dir ino -> subdirectories found */
	/* Every name reachable from the root, built when a message first
	 * needs a path (a clean check never does): */
	GHashTable *refs;      /* ino -> GArray of struct name_ref */
	GHashTable *dir_paths; /* dir ino -> its path ("" for the root) */
	uint64_t label_ino;    /* the inode label describes, 0 for none */
	char *label;
};

/* ---- saying it -------------------------------------------------------------------- */

static void say(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	char *line;

	if (!w->opt->say)
		return;
	va_start(ap, fmt);
	line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	w->opt->say(w->opt->ctx, line);
	g_free(line);
}

static void problem(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	char *what;

	w->rep->problems++;
	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	say(w, "problem: %s", what);
	g_free(what);
}

static void fixed(struct walk *w, const char *what)
{
	w->rep->repaired++;
	say(w, "  repaired: %s", what);
}

static void progress(struct walk *w, enum check_pass pass, uint64_t done, uint64_t total)
{
	if (w->opt->progress)
		w->opt->progress(w->opt->ctx, pass, done, total);
}

/* Sticky: once asked to stop, every later step is skipped too. */
static bool stopped(struct walk *w)
{
	if (!w->rep->canceled && w->opt->stop && w->opt->stop(w->opt->ctx))
		w->rep->canceled = true;
	return w->rep->canceled;
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

/* ---- paths, for messages ---------------------------------------------------------- */

static void free_refs(gpointer refs)
{
	g_array_free(refs, TRUE);
}

/* Every name reachable from the root, in one walk (meta_name_inodes finds
 * one name each; a file's problem concerns all its hard links). */
static void names_build(struct walk *w)
{
	struct dinode *root = meta_inode(&w->st->meta, ROOT_INO), *dir;
	GQueue unwalked = G_QUEUE_INIT;

	w->refs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_refs);
	w->dir_paths = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	if (!root)
		return;
	g_hash_table_insert(w->dir_paths, GSIZE_TO_POINTER(ROOT_INO), g_strdup(""));
	g_queue_push_tail(&unwalked, root);
	while ((dir = g_queue_pop_head(&unwalked))) {
		const char *path = g_hash_table_lookup(w->dir_paths, GSIZE_TO_POINTER(dir->ino));
		GHashTableIter it;
		gpointer name, child;

		g_hash_table_iter_init(&it, dir->u.entries);
		while (g_hash_table_iter_next(&it, &name, &child)) {
			struct dinode *c = child;
			gpointer key = GSIZE_TO_POINTER(c->ino);
			GArray *refs = g_hash_table_lookup(w->refs, key);
			struct name_ref ref = { dir->ino, name };

			if (!refs) {
				refs = g_array_sized_new(FALSE, FALSE, sizeof(ref), 1);
				g_hash_table_insert(w->refs, key, refs);
			}
			g_array_append_val(refs, ref);
			/* A directory's second name (a problem of its own) is
			 * not walked again: a loop would never end. */
			if (S_ISDIR(c->mode) && !g_hash_table_contains(w->dir_paths, key)) {
				g_hash_table_insert(w->dir_paths, key, g_strdup_printf("%s/%s", path, (char *)name));
				g_queue_push_tail(&unwalked, c);
			}
		}
	}
}

/* The index points into the directories' tables: a repair that adds or
 * removes a name drops it, and the next message builds it again. */
static void names_forget(struct walk *w)
{
	if (w->refs) {
		g_hash_table_destroy(w->refs);
		g_hash_table_destroy(w->dir_paths);
	}
	w->refs = w->dir_paths = NULL;
	g_clear_pointer(&w->label, g_free);
	w->label_ino = 0;
}

static gint compare_paths(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The paths of ino from the root, sorted (g_ptr_array_unref). */
static GPtrArray *inode_paths(struct walk *w, uint64_t ino)
{
	GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);
	GArray *refs;

	if (ino == ROOT_INO) {
		g_ptr_array_add(paths, g_strdup("/"));
		return paths;
	}
	if (!w->refs)
		names_build(w);
	refs = g_hash_table_lookup(w->refs, GSIZE_TO_POINTER(ino));
	for (guint i = 0; refs && i < refs->len; i++) {
		const struct name_ref *r = &g_array_index(refs, struct name_ref, i);
		const char *dir = g_hash_table_lookup(w->dir_paths, GSIZE_TO_POINTER(r->dir));

		g_ptr_array_add(paths, g_strdup_printf("%s/%s", dir, r->name));
	}
	g_ptr_array_sort(paths, compare_paths);
	return paths;
}

/* Between the names after the first: "; also /c, /d and /e". */
static const char *name_separator(guint i, guint shown, guint all)
{
	if (i == 1)
		return "; also ";
	return i + 1 == shown && shown == all ? " and " : ", ";
}

/* "/a/b (inode 12)", "/a/b (inode 12; also /c and /d)", "/a/b (inode 12;
 * also /c, /d, /e and 3 more names)", or, for an inode no directory
 * reachable from the root names, "inode 12 (no name: orphan)". */
static char *inode_label_new(struct walk *w, uint64_t ino)
{
	GPtrArray *paths = inode_paths(w, ino);
	guint shown = MIN(paths->len, LABEL_NAMES_MAX);
	GString *s = g_string_new(NULL);

	if (!paths->len) {
		g_string_printf(s, "inode %llu (no name: orphan)", (unsigned long long)ino);
	} else {
		g_string_printf(s, "%s (inode %llu", (char *)paths->pdata[0], (unsigned long long)ino);
		for (guint i = 1; i < shown; i++)
			g_string_append_printf(s, "%s%s", name_separator(i, shown, paths->len),
					       (char *)paths->pdata[i]);
		if (paths->len > shown)
			g_string_append_printf(s, " and %u more names", paths->len - shown);
		g_string_append_c(s, ')');
	}
	g_ptr_array_unref(paths);
	return g_string_free(s, FALSE);
}

/* inode_label_new, kept for the next message: a damaged file usually has
 * many bad blocks in a row.  Valid until the next call. */
static const char *inode_label(struct walk *w, uint64_t ino)
{
	if (!w->label || w->label_ino != ino) {
		g_free(w->label);
		w->label = inode_label_new(w, ino);
		w->label_ino = ino;
	}
	return w->label;
}

/* ---- superblocks -------------------------------------------------------------------- */

static void check_superblocks(struct walk *w)
{
	struct store *st = w->st;

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
			/* Opening read-write has already rewritten it. */
			if (w->opt->repair)
				fixed(w, "superblock rewritten from the newest one");
		} else if (d->sb_stale && w->opt->verbose) {
			/* What a power cut between writing the two copies leaves:
			 * not damage; the next mount rewrites the older one. */
			say(w, "note: %s: one superblock copy is older than the other (a write was cut short); "
			       "mounting rewrites it",
			    d->path);
		}
		if (d->state != DEV_HEALTHY) {
			problem(w, "%s: device %u is %s: the file system is degraded", d->path, i,
				dev_state_name(d->state));
			w->rep->degraded++;
		}
	}
}

/* ---- pass 1, data: every copy of every block ------------------------------------------ */

#define CHECK_BATCH 256 /* blocks read at once */

struct copy_state {
	uint8_t *buf;
	bool readable;
};

static void read_copies(struct walk *w, struct dinode *in, const struct extent *e, const struct chunk *c,
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
			problem(w, "%s: blocks %llu..%llu cannot be read from %s", inode_label(w, in->ino),
				(unsigned long long)(e->fblock + from), (unsigned long long)(e->fblock + from + n - 1),
				d->path);
	}
}

static void check_extent_part(struct walk *w, struct dinode *in, const struct extent *e, const struct chunk *c,
			      uint32_t from, uint32_t n, struct copy_state *copies)
{
	struct store *st = w->st;

	read_copies(w, in, e, c, from, n, copies);
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
			problem(w, "%s: block %llu: the copy on %s does not match its checksum%s",
				inode_label(w, in->ino), (unsigned long long)(e->fblock + from + b), d->path,
				good < 0 ? " (no copy does)" : "");
			if (!w->opt->repair || good < 0)
				continue;
			if (!devs_write_same(st->client, d, 1, offset, copies[good].buf + (size_t)b * DMIOFS_BLOCK,
					     DMIOFS_BLOCK, DMIO_REQ_FUA, &bits))
				fixed(w, "copy rewritten from a good one");
		}
	}
}

static void check_file_data(struct walk *w, struct dinode *in, struct copy_state *copies, uint64_t total)
{
	struct ext_pos p;
	uint32_t i = 0;

	for (const struct extent *e = ext_first(in, &p); e; e = ext_next(in, &p), i++) {
		struct chunk *c = alloc_chunk(&w->st->alloc, e->chunk);

		w->rep->extents++;
		if (!c) {
			problem(w, "%s: extent %u names chunk %u, which does not exist", inode_label(w, in->ino), i,
				e->chunk);
			continue;
		}
		for (uint32_t from = 0; from < e->nblocks && !stopped(w); from += CHECK_BATCH) {
			check_extent_part(w, in, e, c, from, MIN(CHECK_BATCH, e->nblocks - from), copies);
			progress(w, CHECK_PASS_DATA, w->rep->blocks_checked, total);
		}
	}
}

/* Blocks the data pass will read (each once, however many copies). */
static uint64_t data_blocks(struct store *st)
{
	GHashTableIter it;
	gpointer value;
	uint64_t total = 0;

	g_hash_table_iter_init(&it, st->meta.inodes);
	while (g_hash_table_iter_next(&it, &value, NULL)) {
		struct dinode *in = value;

		if (S_ISREG(in->mode))
			total += in->blocks;
	}
	return total;
}

static void check_data(struct walk *w)
{
	struct copy_state copies[DMIOFS_MAX_COPIES];
	uint64_t total = data_blocks(w->st);
	GHashTableIter it;
	gpointer value;

	for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
		copies[k].buf = dio_alloc((size_t)CHECK_BATCH * DMIOFS_BLOCK);
	progress(w, CHECK_PASS_DATA, 0, total);
	g_hash_table_iter_init(&it, w->st->meta.inodes);
	while (!stopped(w) && g_hash_table_iter_next(&it, &value, NULL)) {
		struct dinode *in = value;

		if (S_ISREG(in->mode))
			check_file_data(w, in, copies, total);
	}
	if (!w->rep->canceled)
		progress(w, CHECK_PASS_DATA, total, total);
	for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
		dio_free(copies[k].buf);
}

/* ---- pass 2, names: the tree from the root -------------------------------------------- */

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
				char *where = inode_label_new(w, dir->ino);

				problem(w, "%s: a directory with a second name, \"%s\" in %s", inode_label(w, c->ino),
					(char *)name, where);
				g_free(where);
				continue;
			}
			if (c->parent != dir) {
				char *where = inode_label_new(w, dir->ino);

				problem(w, "%s: its parent is not %s, the directory that names it",
					inode_label(w, c->ino), where);
				g_free(where);
			}
			g_queue_push_tail(unwalked, c);
		}
		count(w->names, c->ino);
	}
}

static uint64_t count_directories(struct store *st)
{
	GHashTableIter it;
	gpointer value;
	uint64_t n = 0;

	g_hash_table_iter_init(&it, st->meta.inodes);
	while (g_hash_table_iter_next(&it, &value, NULL))
		n += S_ISDIR(((struct dinode *)value)->mode);
	return n;
}

static void walk_tree(struct walk *w)
{
	struct dinode *root = meta_inode(&w->st->meta, ROOT_INO);
	uint64_t total = count_directories(w->st);
	GQueue unwalked = G_QUEUE_INIT;
	struct dinode *dir;

	progress(w, CHECK_PASS_NAMES, 0, total);
	g_queue_push_tail(&unwalked, root);
	while (!stopped(w) && (dir = g_queue_pop_head(&unwalked))) {
		w->rep->directories++;
		walk_dir(w, dir, &unwalked);
		progress(w, CHECK_PASS_NAMES, w->rep->directories, total);
	}
	g_queue_clear(&unwalked);
}

/* ---- pass 3, links: reachability and link counts ------------------------------------- */

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
	if (!store_log(w->st, r)) {
		char *where = g_strdup_printf("given the name /lost+found/%s", name);

		names_forget(w);
		fixed(w, where);
		g_free(where);
	}
out:
	g_byte_array_free(r, TRUE);
}

static void check_inode(struct walk *w, struct dinode *in, GPtrArray *unreachable)
{
	uint64_t names = counted(w->names, in->ino);
	uint32_t want;

	w->rep->inodes++;
	if (in->ino == ROOT_INO)
		names = 1;
	if (!names) {
		if (in->nlink)
			g_ptr_array_add(unreachable, in);
		else if (w->opt->verbose)
			say(w, "note: inode %llu has no name (open-unlinked at a crash); mounting frees it",
			    (unsigned long long)in->ino);
		return;
	}
	want = S_ISDIR(in->mode) ? 2 + (uint32_t)counted(w->subdirs, in->ino) : (uint32_t)names;
	if (in->nlink != want) {
		problem(w, "%s: link count %u, but %u %s", inode_label(w, in->ino), in->nlink, want,
			S_ISDIR(in->mode) ? "expected (two, plus one per subdirectory)"
					  : want == 1 ? "name refers to it" : "names refer to it");
		if (w->opt->repair)
			set_nlink(w, in, want);
	}
	if (S_ISLNK(in->mode) && !in->u.target)
		problem(w, "%s: a symlink without a target", inode_label(w, in->ino));
}

static void check_inodes(struct walk *w)
{
	GPtrArray *unreachable = g_ptr_array_new();
	uint64_t total = g_hash_table_size(w->st->meta.inodes);
	GHashTableIter it;
	gpointer value;

	progress(w, CHECK_PASS_LINKS, 0, total);
	g_hash_table_iter_init(&it, w->st->meta.inodes);
	while (!stopped(w) && g_hash_table_iter_next(&it, &value, NULL)) {
		check_inode(w, value, unreachable);
		if (w->rep->inodes % 1024 == 0)
			progress(w, CHECK_PASS_LINKS, w->rep->inodes, total);
	}
	/* Rescues add to the table iterated above: only now. */
	for (guint i = 0; i < unreachable->len; i++) {
		struct dinode *in = g_ptr_array_index(unreachable, i);

		problem(w, "%s: link count %u, but no directory reachable from the root names it",
			inode_label(w, in->ino), in->nlink);
		if (w->opt->repair)
			rescue(w, in);
	}
	if (!w->rep->canceled)
		progress(w, CHECK_PASS_LINKS, total, total);
	g_ptr_array_free(unreachable, TRUE);
}

int store_check(struct store *st, const struct check_options *opt, struct check_report *rep)
{
	struct walk w = {
		.st = st,
		.opt = opt,
		.rep = rep,
		.names = g_hash_table_new(g_direct_hash, g_direct_equal),
		.subdirs = g_hash_table_new(g_direct_hash, g_direct_equal),
	};

	memset(rep, 0, sizeof(*rep));
	check_superblocks(&w);
	/* Data first and without the lock (nothing else runs in fsck): it is
	 * nearly all the time a check takes (see enum check_pass). */
	check_data(&w);
	g_mutex_lock(&st->lock);
	/* The link counts are judged by the names the walk found: a walk cut
	 * short would make every file it did not reach look unreachable. */
	if (!stopped(&w))
		walk_tree(&w);
	if (!stopped(&w))
		check_inodes(&w);
	g_mutex_unlock(&st->lock);
	names_forget(&w);
	g_hash_table_destroy(w.names);
	g_hash_table_destroy(w.subdirs);
	return 0;
}
