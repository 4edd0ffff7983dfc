/* control.h - the control channel of a running dmiofs: a unix socket
 * (found through the root's user.dmio.control xattr) that dmiofs-ctl
 * talks JSON on, one request and one answer per connection.  The caller
 * is known by its peer credentials: actions are for root only, looking
 * is for anyone who may read the mount's root (control.c). */
#ifndef DMIOFS_CONTROL_H
#define DMIOFS_CONTROL_H

#include <glib.h>

#include "../store/store.h"

struct control;

/* Listen beside the mount (the socket is named after the file system's
 * UUID); NULL and *why when it cannot. */
struct control *control_start(struct store *st, const char *mountpoint, GString *why);
void control_stop(struct control *c);
/* Where dmiofs-ctl connects. */
const char *control_path(const struct control *c);

#endif
