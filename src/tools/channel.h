/* channel.h - the client's side of the control channel: dmiofs-ctl
 * talks JSON to the daemon over the unix socket whose path the mount's
 * root names in user.dmio.control (see dmiofs-ctl(8)).  Messages name the
 * program (g_get_prgname()). */
#ifndef DMIOFS_CHANNEL_H
#define DMIOFS_CHANNEL_H

#include <glib.h>
#include <json-glib/json-glib.h>

#define XATTR_CONTROL "user.dmio.control"

/* The value of an xattr as a string, or NULL (errno says why). */
char *read_xattr(const char *path, const char *name);
/* The socket of the daemon mounted at mnt, or NULL having said why. */
char *control_socket(const char *mnt);
/* A request: {"command": command, ...}; add members, then ask_and_free. */
JsonBuilder *request(const char *command);
/* Send a request (a JSON object built by the caller) to the daemon at
 * mnt; the result node of a successful answer (json_node_unref it), or
 * NULL having said why. */
JsonNode *ask(const char *mnt, JsonBuilder *request);
/* End the request, ask, free the builder. */
JsonNode *ask_and_free(const char *mnt, JsonBuilder *b);
/* The pid of the daemon serving mnt, or -1 having said why. */
pid_t daemon_pid(const char *mnt);

#endif
