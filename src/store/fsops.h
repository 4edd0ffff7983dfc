/* fsops.h - file system operations on the store, by inode number: what
 * the FUSE front (or a test) calls.  Each returns 0 or a negative errno. */
#ifndef DMIOFS_FSOPS_H
#define DMIOFS_FSOPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "data.h"
#include "store.h"

/* Who asks: for ownership of new inodes, and for the root reserve. */
struct caller {
	uint32_t uid, gid;
	mode_t umask;
	/* Its data writes clear the file's set-user-ID bit, and set-group-ID
	 * with group execute, as the kernel does for a writer without
	 * CAP_FSETID: for writes the kernel does not vet itself (direct I/O
	 * the FUSE front answers without the page cache). */
	bool clears_setid;
};

/* What a write by an unprivileged writer leaves of a file's mode. */
static inline uint32_t mode_without_setid(uint32_t mode)
{
	mode &= ~(uint32_t)S_ISUID;
	if (mode & S_IXGRP)
		mode &= ~(uint32_t)S_ISGID; /* without group execute it marks mandatory locking */
	return mode;
}

/* Root may fill the root reserve (mkfs.dmiofs -m), as on ext4; so may
 * the daemon's own work, which never comes as a caller. */
static inline bool caller_may_use_root_reserve(const struct caller *who)
{
	return who->uid == 0;
}

/* Attribute changes (fs_setattr). */
#define SET_MODE 0x1
#define SET_UID 0x2
#define SET_GID 0x4
#define SET_SIZE 0x8
#define SET_ATIME 0x10
#define SET_MTIME 0x20
#define SET_ATIME_NOW 0x40
#define SET_MTIME_NOW 0x80
#define SET_CTIME 0x100

/* Rename flags, as renameat2(2). */
#define FS_RENAME_NOREPLACE 0x1
#define FS_RENAME_EXCHANGE 0x2

/* Operations that hand an inode to the kernel count a lookup. */
int fs_getattr(struct store *st, uint64_t ino, struct stat *out);
int fs_lookup(struct store *st, uint64_t parent, const char *name, struct stat *out);
void fs_forget(struct store *st, uint64_t ino, uint64_t nlookup);
int fs_mknod(struct store *st, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
	     const struct caller *who, struct stat *out);
int fs_mkdir(struct store *st, uint64_t parent, const char *name, mode_t mode, const struct caller *who,
	     struct stat *out);
int fs_symlink(struct store *st, uint64_t parent, const char *name, const char *target,
	       const struct caller *who, struct stat *out);
int fs_link(struct store *st, uint64_t ino, uint64_t newparent, const char *newname, struct stat *out);
int fs_unlink(struct store *st, uint64_t parent, const char *name);
int fs_rmdir(struct store *st, uint64_t parent, const char *name);
int fs_rename(struct store *st, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
	      unsigned int flags);
int fs_setattr(struct store *st, uint64_t ino, const struct stat *attr, unsigned int to_set, struct stat *out);
int fs_readlink(struct store *st, uint64_t ino, char **target);
int fs_open(struct store *st, uint64_t ino, bool truncate);
void fs_release(struct store *st, uint64_t ino);
int fs_statfs(struct store *st, struct statvfs *out);

/* data_write and data_fallocate (data.h) on behalf of who: a caller other
 * than root gets ENOSPC where the data would eat into the root reserve.
 * The two plain calls may use it, as root does. */
void data_write_as(struct store *st, const struct caller *who, uint64_t ino, uint64_t off, const struct iovec *iov,
		   int iovcnt, data_write_fn fn, void *ctx);
int data_fallocate_as(struct store *st, const struct caller *who, uint64_t ino, int mode, uint64_t off,
		      uint64_t len);

/* Directory listings are taken whole at opendir, so offsets stay stable
 * while the directory changes. */
struct dir_entry {
	char *name;
	uint64_t ino;
	mode_t type; /* S_IFMT bits */
};

struct dir_listing {
	uint32_t n;
	struct dir_entry e[];
};

int fs_opendir(struct store *st, uint64_t ino, struct dir_listing **out);
void fs_dir_listing_free(struct dir_listing *l);

/* User xattrs (any namespace the kernel lets through is stored). */
int fs_setxattr(struct store *st, uint64_t ino, const char *name, const void *value, size_t len, int flags);
/* Returns the value's length; copies it when size is large enough. */
ssize_t fs_getxattr(struct store *st, uint64_t ino, const char *name, void *value, size_t size);
ssize_t fs_listxattr(struct store *st, uint64_t ino, char *list, size_t size);
int fs_removexattr(struct store *st, uint64_t ino, const char *name);

#endif
