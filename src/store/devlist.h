/* devlist.h - device lists: several devices joined by ':', as dmiofs,
 * mkfs.dmiofs, fsck.dmiofs, dmiofs-ctl and /etc/fstab take them. */
#ifndef DMIOFS_DEVLIST_H
#define DMIOFS_DEVLIST_H

/* Split a list at its ':'s, except those inside an NBD URI: a URI ends at
 * the first ':' followed by '/' (an absolute path) or by another URI.
 * Empty names stay in the result ("a::b", "a:"), for the caller to refuse.
 * Free with g_strfreev. */
char **devlist_split(const char *list);

/* A device name as a daemon in another folder must see it: a path made
 * absolute (lexically, without resolving links), a URI as it is.  Free
 * with g_free. */
char *devlist_canonical(const char *dev);

#endif
