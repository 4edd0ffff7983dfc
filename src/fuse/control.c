/* control.c - the control channel (control.h).
 *
 * One thread accepts connections on a unix socket; a connection carries
 * one request, a JSON object on one line ({"command": "status", ...}),
 * and gets one answer on one line: {"ok": true, "result": ...} or
 * {"ok": false, "error": "what is wrong", "errno": N}.  Requests are
 * short: long work (scrub, rebuilds) runs in the store's background
 * worker, and dmiofs-ctl --wait asks for status until it is done. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "../store/admin.h"
#include "../store/fsops.h"
#include "../store/members.h"
#include "../store/scrub.h"
#include "../store/status.h"
#include "control.h"

#define REQUEST_MAX (64 * 1024)
#define CLIENT_TIMEOUT_S 10 /* a client that says nothing does not hold the channel */

struct control {
	struct store *st;
	char *mountpoint;
	char *path;
	int listen_fd;
	int wake[2]; /* a byte here stops the thread */
	GThread *thread;
};

/* Who is asking. */
struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

/* What a handler has to work with, and gives back. */
struct request {
	struct control *c;
	const struct peer *who;
	JsonObject *args;
	JsonNode *result; /* set by the handler on success */
	GString *why;     /* set by the handler on failure */
};

/* ---- who may do what ----------------------------------------------------------------- */

static bool in_group(const struct peer *p, gid_t gid)
{
	char path[64], line[4096];
	bool found = p->gid == gid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
	f = fopen(path, "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *tok, *save;

		if (strncmp(line, "Groups:", 7))
			continue;
		for (tok = strtok_r(line + 7, " \t\n", &save); tok && !found; tok = strtok_r(NULL, " \t\n", &save))
			found = (gid_t)strtoul(tok, NULL, 10) == gid;
	}
	if (f)
		fclose(f);
	return found;
}

/* May the caller read the mount's root, as the kernel would judge? */
static bool may_look(struct control *c, const struct peer *p)
{
	struct stat root;

	if (p->uid == 0)
		return true;
	if (fs_getattr(c->st, 1, &root))
		return false;
	if (p->uid == root.st_uid)
		return root.st_mode & S_IRUSR;
	if (in_group(p, root.st_gid))
		return root.st_mode & S_IRGRP;
	return root.st_mode & S_IROTH;
}

/* ---- handlers ---------------------------------------------------------------------- */

static const char *arg_string(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ? json_node_get_string(n)
											       : NULL;
}

static gint64 arg_int(JsonObject *o, const char *name, gint64 dflt)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : dflt;
}

static double arg_double(JsonObject *o, const char *name, double dflt)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_double(n) : dflt;
}

static bool arg_bool(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_boolean(n);
}

static int do_status(struct request *r)
{
	struct fs_status s;

	store_status(r->c->st, &s);
	r->result = status_to_json(&s);
	fs_status_clear(&s);
	return 0;
}

static int do_errors(struct request *r)
{
	if (arg_bool(r->args, "reset")) {
		int err;

		if (r->who->uid != 0) {
			g_string_append(r->why, "resetting the counters is for root only");
			return -EPERM;
		}
		err = admin_reset_errors(r->c->st, r->why);
		if (err)
			return err;
	}
	r->result = admin_errors(r->c->st);
	return 0;
}

static int do_inject(struct request *r)
{
	struct store *st = r->c->st;
	const char *spec = arg_string(r->args, "device");
	uint32_t dev = UINT32_MAX;
	int err = 0;

	if (arg_bool(r->args, "list")) {
		r->result = admin_injected(st);
		return 0;
	}
	if (r->who->uid != 0) {
		g_string_append(r->why, "fault drills are for root only");
		return -EPERM;
	}
	if (spec) {
		g_mutex_lock(&st->lock);
		err = admin_find_device(st, spec, &dev, r->why);
		g_mutex_unlock(&st->lock);
		if (err)
			return err;
	}
	if (arg_bool(r->args, "clear")) {
		err = admin_clear_injected(st, dev);
	} else {
		struct drill d = {
			.kind = (char *)arg_string(r->args, "fault"),
			.first = (sector_t)arg_int(r->args, "first", 0),
			.count = (sector_t)arg_int(r->args, "count", 0),
			.every = (unsigned int)arg_int(r->args, "every", 0),
			.rate = arg_double(r->args, "rate", 0),
		};

		if (!spec || !d.kind) {
			g_string_append(r->why, "inject wants a device and a fault");
			return -EINVAL;
		}
		err = admin_inject(st, dev, &d, r->why);
	}
	if (!err)
		r->result = admin_injected(st);
	return err;
}

static int do_scrub(struct request *r)
{
	const char *action = arg_string(r->args, "action");
	struct fs_status s;
	int err;

	if (!action) {
		g_string_append(r->why, "scrub wants an action");
		return -EINVAL;
	}
	if (strcmp(action, "status")) {
		if (r->who->uid != 0) {
			g_string_append(r->why, "starting, pausing, resuming or cancelling a scrub is for root only");
			return -EPERM;
		}
		err = scrub_control(r->c->st, action, (uint64_t)MAX(arg_int(r->args, "rate", 0), 0), r->why);
		if (err)
			return err;
	}
	store_status(r->c->st, &s);
	r->result = scrub_to_json(&s);
	fs_status_clear(&s);
	return 0;
}

/* The device changes: root only; the answer is the status, in which
 * dmiofs-ctl --wait follows the copies being made. */
static int device_change(struct request *r, const char *what)
{
	struct store *st = r->c->st;
	const char *dev = arg_string(r->args, "device"), *old = arg_string(r->args, "old");
	bool force = arg_bool(r->args, "force");
	uint32_t index;
	int err;

	if (r->who->uid != 0) {
		g_string_append_printf(r->why, "%s is for root only", what);
		return -EPERM;
	}
	if (!dev || (!strcmp(what, "replace") && !old)) {
		g_string_append_printf(r->why, "%s wants %s", what, !strcmp(what, "replace") ? "old and new" : "a device");
		return -EINVAL;
	}
	if (!strcmp(what, "add"))
		err = members_add(st, dev, force, &index, r->why);
	else if (!strcmp(what, "replace"))
		err = members_replace(st, old, dev, force, r->why);
	else
		err = members_remove(st, dev, r->why);
	if (!err)
		err = do_status(r);
	return err;
}

static int do_add(struct request *r)
{
	return device_change(r, "add");
}

static int do_replace(struct request *r)
{
	return device_change(r, "replace");
}

static int do_remove(struct request *r)
{
	return device_change(r, "remove");
}

/* mount -o remount,ro|rw, through dmiofs-ctl remount: the kernel's side
 * is changed by the caller (before going read-only, after going
 * writable); this is the store's. */
static int do_remount(struct request *r)
{
	int err;

	if (r->who->uid != 0) {
		g_string_append(r->why, "remount is for root only");
		return -EPERM;
	}
	err = store_remount(r->c->st, arg_bool(r->args, "read_only"), r->why);
	if (!err) {
		g_message("%s: remounted %s", r->c->mountpoint, arg_bool(r->args, "read_only") ? "read-only" : "read-write");
		err = do_status(r);
	}
	return err;
}

struct command {
	const char *name;
	int (*run)(struct request *r);
};

static const struct command commands[] = {
	{ "status", do_status },
	{ "errors", do_errors },
	{ "inject", do_inject },
	{ "scrub", do_scrub },
	{ "add", do_add },
	{ "replace", do_replace },
	{ "remove", do_remove },
	{ "remount", do_remount },
};

/* ---- the channel ---------------------------------------------------------------- */

static char *answer(const struct request *r, int err)
{
	JsonBuilder *b = json_builder_new();
	JsonGenerator *g = json_generator_new();
	JsonNode *root;
	char *text;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "ok");
	json_builder_add_boolean_value(b, !err);
	if (err) {
		json_builder_set_member_name(b, "error");
		json_builder_add_string_value(b, r->why->len ? r->why->str : g_strerror(-err));
		json_builder_set_member_name(b, "errno");
		json_builder_add_int_value(b, -err);
	} else {
		json_builder_set_member_name(b, "result");
		json_builder_add_value(b, r->result ? json_node_copy(r->result) : json_node_new(JSON_NODE_NULL));
	}
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(g, root);
	text = json_generator_to_data(g, NULL);
	json_node_unref(root);
	g_object_unref(g);
	g_object_unref(b);
	return text;
}

/* Run one request (a line of JSON); the answer to send. */
static char *serve(struct control *c, const struct peer *who, const char *line)
{
	struct request r = { .c = c, .who = who, .why = g_string_new(NULL) };
	JsonParser *parser = json_parser_new();
	const char *name = NULL;
	char *text;
	int err = -EINVAL;

	if (!json_parser_load_from_data(parser, line, -1, NULL) || !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
		g_string_append(r.why, "the request is not a JSON object");
	} else {
		r.args = json_node_get_object(json_parser_get_root(parser));
		name = arg_string(r.args, "command");
		err = -EOPNOTSUPP;
		for (size_t i = 0; i < G_N_ELEMENTS(commands) && name; i++)
			if (!strcmp(commands[i].name, name))
				err = 0;
		if (err)
			g_string_append_printf(r.why, "%s: no such command", name ? name : "(none)");
	}
	if (!err && !may_look(c, who)) {
		g_string_append_printf(r.why, "permission denied: you may not read %s", c->mountpoint);
		err = -EACCES;
	}
	for (size_t i = 0; !err && i < G_N_ELEMENTS(commands); i++)
		if (!strcmp(commands[i].name, name)) {
			err = commands[i].run(&r);
			break;
		}
	text = answer(&r, err);
	if (r.result)
		json_node_unref(r.result);
	g_string_free(r.why, TRUE);
	g_object_unref(parser);
	return text;
}

static bool read_line(int fd, GString *line)
{
	char buf[4096];
	ssize_t n;

	while (!memchr(line->str, '\n', line->len) && line->len < REQUEST_MAX) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return line->len > 0 && n == 0;
		g_string_append_len(line, buf, n);
	}
	return memchr(line->str, '\n', line->len) != NULL;
}

static void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n <= 0)
			return; /* the client went away: nothing to tell it */
		s += n;
		len -= (size_t)n;
	}
}

static void handle_connection(struct control *c, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = { CLIENT_TIMEOUT_S, 0 };
	GString *line = g_string_new(NULL);

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) && read_line(fd, line)) {
		struct peer who = { cred.uid, cred.gid, cred.pid };
		char *text = serve(c, &who, line->str);

		write_all(fd, text, strlen(text));
		write_all(fd, "\n", 1);
		g_free(text);
	}
	g_string_free(line, TRUE);
	close(fd);
}

static gpointer control_main(gpointer data)
{
	struct control *c = data;
	struct pollfd fds[2] = { { c->listen_fd, POLLIN, 0 }, { c->wake[0], POLLIN, 0 } };

	for (;;) {
		int fd;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[1].revents)
			break;
		if (!(fds[0].revents & POLLIN))
			continue;
		fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			handle_connection(c, fd);
	}
	return NULL;
}

/* Root's sockets live in /run/dmiofs; a user's in their runtime folder. */
static char *socket_dir(void)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (getuid() == 0)
		return g_strdup("/run/dmiofs");
	if (rt && *rt)
		return g_build_filename(rt, "dmiofs", NULL);
	return g_strdup_printf("/tmp/dmiofs-%u", (unsigned int)getuid());
}

static int listen_on(struct control *c, GString *why)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(c->path) >= sizeof(addr.sun_path)) {
		g_string_append_printf(why, "%s: too long for a socket", c->path);
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, c->path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Named by our pid: a socket left here is a dead daemon's. */
	unlink(c->path);
	if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    chmod(c->path, 0666) || listen(c->listen_fd, 16)) {
		int err = -errno;

		g_string_append_printf(why, "cannot listen on %s: %s", c->path, g_strerror(errno));
		return err;
	}
	return 0;
}

struct control *control_start(struct store *st, const char *mountpoint, GString *why)
{
	struct control *c = g_new0(struct control, 1);
	char *dir = socket_dir(), uuid[37];

	c->st = st;
	c->mountpoint = g_strdup(mountpoint);
	c->listen_fd = c->wake[0] = c->wake[1] = -1;
	uuid_format(st->sb.fs_uuid, uuid);
	/* The pid too: a copy of the file system (same UUID) mounted at the
	 * same time has a daemon and a socket of its own. */
	c->path = g_strdup_printf("%s/%s-%d.sock", dir, uuid, (int)getpid());
	if (g_mkdir_with_parents(dir, getuid() == 0 ? 0755 : 0700)) {
		g_string_append_printf(why, "cannot make %s: %s", dir, g_strerror(errno));
		g_free(dir);
		control_stop(c);
		return NULL;
	}
	g_free(dir);
	if (listen_on(c, why) || pipe2(c->wake, O_CLOEXEC)) {
		control_stop(c);
		return NULL;
	}
	c->thread = g_thread_new("dmiofs-control", control_main, c);
	return c;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	if (c->thread) {
		if (write(c->wake[1], "", 1) < 0)
			g_warning("cannot stop the control channel: %s", g_strerror(errno));
		g_thread_join(c->thread);
	}
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	g_free(c->path);
	g_free(c->mountpoint);
	g_free(c);
}

const char *control_path(const struct control *c)
{
	return c->path;
}
