/* namei.c - names, attributes, directories and xattrs (fsops.h).
 *
 * Every operation checks everything first, then builds the records of its
 * change and hands them to store_log(), which applies them to memory and
 * appends them to the log in one piece: an operation is in one commit or
 * in none. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "apply.h"
#include "data.h"
#include "fsops.h"
#include "journal.h"

#define LINK_MAX_COUNT 65000
#define XATTR_VALUE_MAX 65536
#define XATTR_TOTAL_MAX (256 * 1024)
#define XATTR_LIST_MAX 65536 /* the most listxattr(2) can return: names beyond are unreadable */
#define VIRTUAL_XATTR_PREFIX "user.dmio."

static struct rec_time now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (struct rec_time){ ts.tv_sec, (uint32_t)ts.tv_nsec };
}

static void fs_stat_of(const struct dinode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = (off_t)in->size;
	st->st_blksize = 128 * 1024;
	st->st_blocks = (blkcnt_t)(in->blocks * (DMIOFS_BLOCK / 512));
	st->st_atim = (struct timespec){ in->atime.sec, in->atime.nsec };
	st->st_mtim = (struct timespec){ in->mtime.sec, in->mtime.nsec };
	st->st_ctim = (struct timespec){ in->ctime.sec, in->ctime.nsec };
}

static int writable(struct store *st)
{
	if (st->opt.read_only)
		return -EROFS;
	return st->broken;
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (!len)
		return -ENOENT;
	if (len > DMIOFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (!strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static int get_dir(struct store *st, uint64_t ino, struct dinode **out)
{
	struct dinode *dir = meta_inode(&st->meta, ino);

	if (!dir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	if (!dir->nlink)
		return -ENOENT; /* removed while the kernel still held it */
	*out = dir;
	return 0;
}

/* Is there room in the checkpoint slot for more metadata? */
static int metadata_room(struct store *st, uint64_t more)
{
	return store_meta_room(st, more, META_SHARE_NAMES);
}

/* Records for an inode with some fields changed by the caller. */
static void put_inode(GByteArray *r, const struct rec_inode *in)
{
	rec_put_inode(r, in);
}

static struct rec_inode rec_of(const struct dinode *in)
{
	struct rec_inode r;

	inode_to_rec(in, &r);
	return r;
}

/* A directory's own times move when its entries change. */
static void put_dir_touched(GByteArray *r, const struct dinode *dir, int nlink_delta, struct rec_time t)
{
	struct rec_inode d = rec_of(dir);

	d.nlink = (uint32_t)((int)d.nlink + nlink_delta);
	d.mtime = d.ctime = t;
	put_inode(r, &d);
}

/* Free the inode once nothing refers to it (lock held). */
static int log_and_free(struct store *st, GByteArray *r)
{
	int err = store_log(st, r);

	g_byte_array_free(r, TRUE);
	return err;
}

/* ---- lookups -------------------------------------------------------------- */

int fs_getattr(struct store *st, uint64_t ino, struct stat *out)
{
	struct dinode *in;
	int err = 0;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (in)
		fs_stat_of(in, out);
	else
		err = -ENOENT;
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_lookup(struct store *st, uint64_t parent, const char *name, struct stat *out)
{
	struct dinode *dir, *child;
	int err;

	if (strlen(name) > DMIOFS_NAME_MAX)
		return -ENAMETOOLONG;
	g_mutex_lock(&st->lock);
	err = get_dir(st, parent, &dir);
	if (!err) {
		child = dir_lookup(dir, name);
		if (child) {
			child->nlookup++;
			fs_stat_of(child, out);
		} else {
			err = -ENOENT;
		}
	}
	g_mutex_unlock(&st->lock);
	return err;
}

void fs_forget(struct store *st, uint64_t ino, uint64_t n)
{
	struct dinode *in;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		store_release_inode(st, in);
	}
	g_mutex_unlock(&st->lock);
}

/* ---- creating --------------------------------------------------------------- */

/* Check the parent and name, and fill the new inode's identity. */
static int prepare_new(struct store *st, uint64_t parent, const char *name, mode_t mode,
		       const struct caller *who, struct dinode **dir, struct rec_inode *in)
{
	int err = writable(st);

	if (!err)
		err = check_name(name);
	if (!err)
		err = get_dir(st, parent, dir);
	if (!err && dir_lookup(*dir, name))
		err = -EEXIST;
	if (!err)
		err = metadata_room(st, 512 + strlen(name));
	if (err)
		return err;
	memset(in, 0, sizeof(*in));
	in->ino = st->meta.next_ino;
	in->mode = mode;
	in->uid = who->uid;
	in->gid = who->gid;
	/* BSD group semantics on set-group-ID directories. */
	if ((*dir)->mode & S_ISGID) {
		in->gid = (*dir)->gid;
		if (S_ISDIR(mode))
			in->mode |= S_ISGID;
	}
	in->nlink = 1;
	in->atime = in->mtime = in->ctime = now();
	return 0;
}

static int finish_new(struct store *st, GByteArray *r, uint64_t ino, struct stat *out)
{
	int err = log_and_free(st, r);
	struct dinode *in;

	if (err)
		return err;
	in = meta_inode(&st->meta, ino);
	in->nlookup++;
	fs_stat_of(in, out);
	return 0;
}

int fs_mknod(struct store *st, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
	     const struct caller *who, struct stat *out)
{
	struct dinode *dir;
	struct rec_inode in;
	GByteArray *r;
	int err;

	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		return -EINVAL;
	}
	g_mutex_lock(&st->lock);
	err = prepare_new(st, parent, name, mode, who, &dir, &in);
	if (!err) {
		r = g_byte_array_new();
		in.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
		put_inode(r, &in);
		rec_put_link(r, REC_LINK, parent, in.ino, name, strlen(name));
		put_dir_touched(r, dir, 0, in.ctime);
		err = finish_new(st, r, in.ino, out);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_mkdir(struct store *st, uint64_t parent, const char *name, mode_t mode, const struct caller *who,
	     struct stat *out)
{
	struct dinode *dir;
	struct rec_inode in;
	GByteArray *r;
	int err;

	g_mutex_lock(&st->lock);
	err = prepare_new(st, parent, name, S_IFDIR | (mode & 07777), who, &dir, &in);
	if (!err && dir->nlink >= LINK_MAX_COUNT)
		err = -EMLINK;
	if (!err) {
		r = g_byte_array_new();
		in.nlink = 2;
		put_inode(r, &in);
		rec_put_link(r, REC_LINK, parent, in.ino, name, strlen(name));
		put_dir_touched(r, dir, +1, in.ctime);
		err = finish_new(st, r, in.ino, out);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_symlink(struct store *st, uint64_t parent, const char *name, const char *target,
	       const struct caller *who, struct stat *out)
{
	size_t len = strlen(target);
	struct dinode *dir;
	struct rec_inode in;
	GByteArray *r;
	int err;

	if (!len)
		return -ENOENT;
	if (len >= PATH_MAX)
		return -ENAMETOOLONG;
	g_mutex_lock(&st->lock);
	err = prepare_new(st, parent, name, S_IFLNK | 0777, who, &dir, &in);
	if (!err)
		err = metadata_room(st, len);
	if (!err) {
		r = g_byte_array_new();
		in.size = len;
		put_inode(r, &in);
		rec_put_symlink(r, in.ino, target, len);
		rec_put_link(r, REC_LINK, parent, in.ino, name, strlen(name));
		put_dir_touched(r, dir, 0, in.ctime);
		err = finish_new(st, r, in.ino, out);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_link(struct store *st, uint64_t ino, uint64_t newparent, const char *newname, struct stat *out)
{
	struct dinode *dir, *in;
	struct rec_inode ri;
	GByteArray *r;
	int err;

	g_mutex_lock(&st->lock);
	err = writable(st);
	if (!err)
		err = check_name(newname);
	if (!err)
		err = get_dir(st, newparent, &dir);
	in = meta_inode(&st->meta, ino);
	if (!err && !in)
		err = -ENOENT;
	if (!err && S_ISDIR(in->mode))
		err = -EPERM;
	if (!err && in->nlink >= LINK_MAX_COUNT)
		err = -EMLINK;
	if (!err && !in->nlink)
		err = -ENOENT; /* linkat of an unlinked file (not O_TMPFILE) */
	if (!err && dir_lookup(dir, newname))
		err = -EEXIST;
	if (!err)
		err = metadata_room(st, 64 + strlen(newname));
	if (!err) {
		r = g_byte_array_new();
		ri = rec_of(in);
		ri.nlink++;
		ri.ctime = now();
		rec_put_link(r, REC_LINK, newparent, ino, newname, strlen(newname));
		put_inode(r, &ri);
		put_dir_touched(r, dir, 0, ri.ctime);
		err = finish_new(st, r, ino, out);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

/* ---- removing ----------------------------------------------------------------- */

static bool dir_empty(struct dinode *dir)
{
	return g_hash_table_size(dir->u.entries) == 0;
}

/* Records dropping one name of child (it stays until its last user goes). */
static void put_drop_name(GByteArray *r, const struct dinode *child, struct rec_time t)
{
	struct rec_inode c = rec_of(child);

	c.nlink = S_ISDIR(child->mode) ? 0 : c.nlink - 1;
	c.ctime = t;
	put_inode(r, &c);
}

static int remove_name(struct store *st, uint64_t parent, const char *name, bool want_dir)
{
	struct dinode *dir, *child = NULL;
	GByteArray *r;
	struct rec_time t = now();
	int err = writable(st);

	if (!err && strlen(name) > DMIOFS_NAME_MAX)
		err = -ENAMETOOLONG;
	if (!err)
		err = get_dir(st, parent, &dir);
	if (!err && !(child = dir_lookup(dir, name)))
		err = -ENOENT;
	if (!err && want_dir && !S_ISDIR(child->mode))
		err = -ENOTDIR;
	if (!err && !want_dir && S_ISDIR(child->mode))
		err = -EISDIR;
	if (!err && want_dir && !dir_empty(child))
		err = -ENOTEMPTY;
	if (err)
		return err;
	r = g_byte_array_new();
	rec_put_link(r, REC_UNLINK, parent, child->ino, name, strlen(name));
	put_drop_name(r, child, t);
	put_dir_touched(r, dir, want_dir ? -1 : 0, t);
	err = log_and_free(st, r);
	if (!err)
		store_release_inode(st, child);
	return err;
}

int fs_unlink(struct store *st, uint64_t parent, const char *name)
{
	int err;

	g_mutex_lock(&st->lock);
	err = remove_name(st, parent, name, false);
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_rmdir(struct store *st, uint64_t parent, const char *name)
{
	int err;

	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	g_mutex_lock(&st->lock);
	err = remove_name(st, parent, name, true);
	g_mutex_unlock(&st->lock);
	return err;
}

/* ---- rename ----------------------------------------------------------------- */

/* Is dir the same as, or inside, ancestor? */
static bool inside(const struct dinode *dir, const struct dinode *ancestor)
{
	for (; dir; dir = dir->ino == ROOT_INO ? NULL : dir->parent)
		if (dir == ancestor)
			return true;
	return false;
}

struct rename_args {
	struct dinode *from_dir, *to_dir, *src, *dst;
	const char *name, *newname;
	unsigned int flags;
};

static int rename_check(struct rename_args *a)
{
	if (a->flags & FS_RENAME_EXCHANGE) {
		if (!a->dst)
			return -ENOENT;
		if (S_ISDIR(a->src->mode) && inside(a->to_dir, a->src))
			return -EINVAL;
		if (S_ISDIR(a->dst->mode) && inside(a->from_dir, a->dst))
			return -EINVAL;
		return 0;
	}
	if (a->dst && (a->flags & FS_RENAME_NOREPLACE))
		return -EEXIST;
	if (S_ISDIR(a->src->mode) && inside(a->to_dir, a->src))
		return -EINVAL; /* into itself */
	if (!a->dst)
		return a->to_dir != a->from_dir && S_ISDIR(a->src->mode) && a->to_dir->nlink >= LINK_MAX_COUNT
			       ? -EMLINK
			       : 0;
	if (S_ISDIR(a->src->mode) && !S_ISDIR(a->dst->mode))
		return -ENOTDIR;
	if (!S_ISDIR(a->src->mode) && S_ISDIR(a->dst->mode))
		return -EISDIR;
	if (S_ISDIR(a->dst->mode) && !dir_empty(a->dst))
		return -ENOTEMPTY;
	return 0;
}

/* Parents' link counts and times after moving src (and dst, exchanged). */
static void put_parents(GByteArray *r, const struct rename_args *a, struct rec_time t)
{
	int from_delta = 0, to_delta = 0;

	if (a->from_dir != a->to_dir) {
		if (S_ISDIR(a->src->mode)) {
			from_delta--;
			to_delta++;
		}
		if ((a->flags & FS_RENAME_EXCHANGE) && S_ISDIR(a->dst->mode)) {
			from_delta++;
			to_delta--;
		}
	}
	/* A replaced directory takes its ".." link to to_dir with it. */
	if (!(a->flags & FS_RENAME_EXCHANGE) && a->dst && S_ISDIR(a->dst->mode))
		to_delta--;
	put_dir_touched(r, a->from_dir, from_delta + (a->from_dir == a->to_dir ? to_delta : 0), t);
	if (a->from_dir != a->to_dir)
		put_dir_touched(r, a->to_dir, to_delta, t);
}

static void rename_records(GByteArray *r, const struct rename_args *a)
{
	struct rec_time t = now();
	struct rec_inode s = rec_of(a->src);

	rec_put_link(r, REC_UNLINK, a->from_dir->ino, a->src->ino, a->name, strlen(a->name));
	if (a->dst)
		rec_put_link(r, REC_UNLINK, a->to_dir->ino, a->dst->ino, a->newname, strlen(a->newname));
	rec_put_link(r, REC_LINK, a->to_dir->ino, a->src->ino, a->newname, strlen(a->newname));
	s.ctime = t;
	put_inode(r, &s);
	if (a->dst && (a->flags & FS_RENAME_EXCHANGE)) {
		struct rec_inode d = rec_of(a->dst);

		rec_put_link(r, REC_LINK, a->from_dir->ino, a->dst->ino, a->name, strlen(a->name));
		d.ctime = t;
		put_inode(r, &d);
	} else if (a->dst) {
		put_drop_name(r, a->dst, t);
	}
	put_parents(r, a, t);
}

int fs_rename(struct store *st, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
	      unsigned int flags)
{
	struct rename_args a = { .name = name, .newname = newname, .flags = flags };
	GByteArray *r;
	int err;

	if ((flags & ~(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE)) ||
	    ((flags & FS_RENAME_NOREPLACE) && (flags & FS_RENAME_EXCHANGE)))
		return -EINVAL;
	g_mutex_lock(&st->lock);
	err = writable(st);
	if (!err)
		err = check_name(newname);
	if (!err && strlen(name) > DMIOFS_NAME_MAX)
		err = -ENAMETOOLONG;
	if (!err)
		err = get_dir(st, parent, &a.from_dir);
	if (!err)
		err = get_dir(st, newparent, &a.to_dir);
	if (!err && !(a.src = dir_lookup(a.from_dir, name)))
		err = -ENOENT;
	if (!err) {
		a.dst = dir_lookup(a.to_dir, newname);
		err = rename_check(&a);
	}
	if (!err && a.dst == a.src) { /* two names of one inode: nothing to do */
		g_mutex_unlock(&st->lock);
		return 0;
	}
	if (!err)
		err = metadata_room(st, 256);
	if (!err) {
		r = g_byte_array_new();
		rename_records(r, &a);
		err = log_and_free(st, r);
		if (!err && a.dst && !(flags & FS_RENAME_EXCHANGE))
			store_release_inode(st, a.dst);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

/* ---- attributes ---------------------------------------------------------------- */

static void apply_setattr(struct rec_inode *ri, const struct stat *attr, unsigned int to_set, struct rec_time t)
{
	if (to_set & SET_MODE)
		ri->mode = (ri->mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & SET_UID)
		ri->uid = attr->st_uid;
	if (to_set & SET_GID)
		ri->gid = attr->st_gid;
	if (to_set & SET_ATIME_NOW)
		ri->atime = t;
	else if (to_set & SET_ATIME)
		ri->atime = (struct rec_time){ attr->st_atim.tv_sec, (uint32_t)attr->st_atim.tv_nsec };
	if (to_set & SET_MTIME_NOW)
		ri->mtime = t;
	else if (to_set & SET_MTIME)
		ri->mtime = (struct rec_time){ attr->st_mtim.tv_sec, (uint32_t)attr->st_mtim.tv_nsec };
	ri->ctime = (to_set & SET_CTIME) ? (struct rec_time){ attr->st_ctim.tv_sec, (uint32_t)attr->st_ctim.tv_nsec }
					  : t;
}

int fs_setattr(struct store *st, uint64_t ino, const struct stat *attr, unsigned int to_set, struct stat *out)
{
	struct dinode *in;
	struct rec_inode ri;
	GByteArray *r;
	int err;

	if (to_set & SET_SIZE) {
		if (attr->st_size < 0)
			return -EINVAL;
		err = data_truncate(st, ino, (uint64_t)attr->st_size);
		if (err)
			return err;
	}
	g_mutex_lock(&st->lock);
	err = writable(st);
	in = meta_inode(&st->meta, ino);
	if (!err && !in)
		err = -ENOENT;
	if (!err && (to_set & ~SET_SIZE)) {
		r = g_byte_array_new();
		ri = rec_of(in);
		apply_setattr(&ri, attr, to_set, now());
		put_inode(r, &ri);
		err = log_and_free(st, r);
	}
	if (!err)
		fs_stat_of(in, out);
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_readlink(struct store *st, uint64_t ino, char **target)
{
	struct dinode *in;
	int err = 0;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in)
		err = -ENOENT;
	else if (!S_ISLNK(in->mode) || !in->u.target)
		err = -EINVAL;
	else
		*target = g_strdup(in->u.target);
	g_mutex_unlock(&st->lock);
	return err;
}

int fs_open(struct store *st, uint64_t ino, bool truncate)
{
	struct dinode *in;
	int err = 0;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in)
		err = -ENOENT;
	else
		in->nopen++;
	g_mutex_unlock(&st->lock);
	if (!err && truncate) {
		err = data_truncate(st, ino, 0);
		if (err)
			fs_release(st, ino);
	}
	return err;
}

void fs_release(struct store *st, uint64_t ino)
{
	struct dinode *in;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (in) {
		if (in->nopen)
			in->nopen--;
		store_release_inode(st, in);
	}
	g_mutex_unlock(&st->lock);
}

int fs_statfs(struct store *st, struct statvfs *out)
{
	uint64_t total, avail, kept, per_file = 200;

	memset(out, 0, sizeof(*out));
	g_mutex_lock(&st->lock);
	alloc_space(&st->alloc, &total, &avail);
	out->f_bsize = DMIOFS_BLOCK;
	out->f_frsize = DMIOFS_BLOCK;
	out->f_blocks = total;
	out->f_bfree = avail;
	/* As ext4 does with its reserve: free, but not for everyone's files
	 * to fill (root may fill the root reserve; only the zeroing of
	 * truncates and punches on a full file system takes the last few). */
	kept = alloc_kept_back(&st->alloc, st->sb.root_reserve_permille, false);
	out->f_bavail = avail > kept ? avail - kept : 0;
	/* Inodes are limited by the checkpoint slot, not by a table. */
	out->f_files = st->meta.nfiles + (st->layout.ckpt_bytes / 64 * META_SHARE_NAMES > store_meta_bytes(st)
						  ? (st->layout.ckpt_bytes / 64 * META_SHARE_NAMES - store_meta_bytes(st)) / per_file
						  : 0);
	out->f_ffree = out->f_files - st->meta.nfiles;
	out->f_favail = out->f_ffree;
	memcpy(&out->f_fsid, st->sb.fs_uuid, sizeof(out->f_fsid));
	out->f_namemax = DMIOFS_NAME_MAX;
	if (st->opt.read_only)
		out->f_flag |= ST_RDONLY;
	g_mutex_unlock(&st->lock);
	return 0;
}

/* ---- directories ---------------------------------------------------------------- */

int fs_opendir(struct store *st, uint64_t ino, struct dir_listing **out)
{
	struct dinode *dir;
	struct dir_listing *l;
	GHashTableIter it;
	gpointer name, child;
	uint32_t i = 2;
	int err;

	g_mutex_lock(&st->lock);
	dir = meta_inode(&st->meta, ino);
	/* A removed directory still open (a shell's current directory) lists
	 * as empty, not as an error. */
	err = !dir ? -ENOENT : !S_ISDIR(dir->mode) ? -ENOTDIR : 0;
	if (err) {
		g_mutex_unlock(&st->lock);
		return err;
	}
	l = g_malloc(sizeof(*l) + (2 + g_hash_table_size(dir->u.entries)) * sizeof(struct dir_entry));
	l->e[0] = (struct dir_entry){ g_strdup("."), dir->ino, S_IFDIR };
	l->e[1] = (struct dir_entry){ g_strdup(".."),
				      dir->ino == ROOT_INO || !dir->nlink ? dir->ino : dir->parent->ino, S_IFDIR };
	g_hash_table_iter_init(&it, dir->u.entries);
	while (g_hash_table_iter_next(&it, &name, &child)) {
		const struct dinode *c = child;

		l->e[i++] = (struct dir_entry){ g_strdup(name), c->ino, c->mode & S_IFMT };
	}
	l->n = i;
	g_mutex_unlock(&st->lock);
	*out = l;
	return 0;
}

void fs_dir_listing_free(struct dir_listing *l)
{
	if (!l)
		return;
	for (uint32_t i = 0; i < l->n; i++)
		g_free(l->e[i].name);
	g_free(l);
}

/* ---- xattrs -------------------------------------------------------------------------- */

static struct xattr *xattr_get(struct dinode *in, const char *name)
{
	for (struct xattr *x = in->xattrs; x; x = x->next)
		if (!strcmp(x->name, name))
			return x;
	return NULL;
}

static size_t xattr_total(const struct dinode *in)
{
	size_t total = 0;

	for (const struct xattr *x = in->xattrs; x; x = x->next)
		total += strlen(x->name) + 1 + x->len;
	return total;
}

/* Bytes listxattr(2) needs for the names. */
static size_t xattr_list_bytes(const struct dinode *in)
{
	size_t total = 0;

	for (const struct xattr *x = in->xattrs; x; x = x->next)
		total += strlen(x->name) + 1;
	return total;
}

/* Namespaces stored as given.  ACLs (system.posix_acl_*) are refused
 * rather than kept unenforced: a file would look protected and not be. */
static int xattr_namespace_ok(const char *name)
{
	static const char *const prefixes[] = { "user.", "trusted.", "security." };

	for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return name[strlen(prefixes[i])] ? 0 : -EINVAL;
	return -EOPNOTSUPP;
}

int fs_setxattr(struct store *st, uint64_t ino, const char *name, const void *value, size_t len, int flags)
{
	size_t name_len = strlen(name);
	struct dinode *in;
	struct xattr *old;
	GByteArray *r;
	int err;

	if (!strncmp(name, VIRTUAL_XATTR_PREFIX, strlen(VIRTUAL_XATTR_PREFIX)))
		return -EPERM; /* read-only names maintained by dmiofs */
	err = xattr_namespace_ok(name);
	if (err)
		return err;
	if (!name_len || name_len > XATTR_NAME_MAX)
		return -ERANGE;
	if (len > XATTR_VALUE_MAX)
		return -E2BIG;
	g_mutex_lock(&st->lock);
	err = writable(st);
	in = meta_inode(&st->meta, ino);
	if (!err && !in)
		err = -ENOENT;
	old = err ? NULL : xattr_get(in, name);
	if (!err && (flags & XATTR_CREATE) && old)
		err = -EEXIST;
	if (!err && (flags & XATTR_REPLACE) && !old)
		err = -ENODATA;
	if (!err && xattr_total(in) - (old ? strlen(old->name) + 1 + old->len : 0) + name_len + 1 + len >
			    XATTR_TOTAL_MAX)
		err = -ENOSPC;
	/* A name the list could not hold would make every listxattr fail
	 * (E2BIG), and cp -a or getfattr -d lose them all: refuse it, as
	 * ext4 does. */
	if (!err && !old && xattr_list_bytes(in) + name_len + 1 > XATTR_LIST_MAX)
		err = -ENOSPC;
	if (!err)
		err = metadata_room(st, name_len + len + 32);
	if (!err) {
		struct rec_inode ri = rec_of(in);

		r = g_byte_array_new();
		rec_put_xattr_set(r, ino, name, name_len, value, (uint32_t)len);
		ri.ctime = now();
		put_inode(r, &ri);
		err = log_and_free(st, r);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

ssize_t fs_getxattr(struct store *st, uint64_t ino, const char *name, void *value, size_t size)
{
	struct dinode *in;
	struct xattr *x;
	ssize_t ret;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in)
		ret = -ENOENT;
	else if (!(x = xattr_get(in, name)))
		ret = -ENODATA;
	else if (size && size < x->len)
		ret = -ERANGE;
	else {
		if (size)
			memcpy(value, x->value, x->len);
		ret = (ssize_t)x->len;
	}
	g_mutex_unlock(&st->lock);
	return ret;
}

ssize_t fs_listxattr(struct store *st, uint64_t ino, char *list, size_t size)
{
	struct dinode *in;
	size_t need = 0;
	ssize_t ret;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in) {
		g_mutex_unlock(&st->lock);
		return -ENOENT;
	}
	for (struct xattr *x = in->xattrs; x; x = x->next)
		need += strlen(x->name) + 1;
	if (size && size < need) {
		ret = -ERANGE;
	} else {
		if (size)
			for (struct xattr *x = in->xattrs; x; x = x->next) {
				size_t n = strlen(x->name) + 1;

				memcpy(list, x->name, n);
				list += n;
			}
		ret = (ssize_t)need;
	}
	g_mutex_unlock(&st->lock);
	return ret;
}

int fs_removexattr(struct store *st, uint64_t ino, const char *name)
{
	struct dinode *in;
	GByteArray *r;
	int err;

	if (!strncmp(name, VIRTUAL_XATTR_PREFIX, strlen(VIRTUAL_XATTR_PREFIX)))
		return -EPERM;
	g_mutex_lock(&st->lock);
	err = writable(st);
	in = meta_inode(&st->meta, ino);
	if (!err && !in)
		err = -ENOENT;
	if (!err && !xattr_get(in, name))
		err = -ENODATA;
	if (!err) {
		struct rec_inode ri = rec_of(in);

		r = g_byte_array_new();
		rec_put_xattr_del(r, ino, name, strlen(name));
		ri.ctime = now();
		put_inode(r, &ri);
		err = log_and_free(st, r);
	}
	g_mutex_unlock(&st->lock);
	return err;
}
