/* dmiofs.h - the FUSE front: low-level operations over the store. */
#ifndef DMIOFS_FUSE_H
#define DMIOFS_FUSE_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../store/store.h"

/* The root's xattr that names the control channel's socket. */
#define XATTR_CONTROL "user.dmio.control"

struct control;

struct dmiofs {
	struct store *st;
	struct control *control;  /* the channel dmiofs-ctl talks to */
	struct fuse_session *se;
	bool writeback;           /* the kernel's writeback cache */
	double timeout;           /* attribute and entry cache, seconds */
	unsigned int max_background; /* asynchronous requests the kernel may have in flight */
	atomic_uint inflight;     /* requests answered from a completion callback */
};

extern const struct fuse_lowlevel_ops dmiofs_ops;

/* Wait until every asynchronous reply has been sent. */
void dmiofs_drain(struct dmiofs *fs);

#endif
