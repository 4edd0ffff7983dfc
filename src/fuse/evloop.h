/* evloop.h - serving the FUSE session from the thread that reaps file
 * data's I/O (evloop.c). */
#ifndef DMIOFS_EVLOOP_H
#define DMIOFS_EVLOOP_H

#include "dmiofs.h"

/* Serve fs->se until it ends (unmounted, or fuse_session_exit by a
 * signal): reads, writes and the requests that never wait on the data's
 * I/O are answered by nloops event loops (at most STORE_MAX_LANES), each
 * the completion thread of a data client of its own; the others by a pool
 * of at most max_threads threads.  0, or a negative errno value if it
 * could not start. */
int evloop_run(struct dmiofs *fs, unsigned int nloops, unsigned int max_threads);

#endif
