/* channel.c - see channel.h. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../store/mounts.h"
#include "channel.h"

char *read_xattr(const char *path, const char *name)
{
	ssize_t len = getxattr(path, name, NULL, 0);
	char *buf;

	if (len < 0)
		return NULL;
	buf = g_malloc((size_t)len + 1);
	len = getxattr(path, name, buf, (size_t)len);
	if (len < 0) {
		g_free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* The socket of the daemon mounted at mnt, or NULL having said why. */
char *control_socket(const char *mnt)
{
	char *path = read_xattr(mnt, XATTR_CONTROL), *type;
	struct stat st;
	int err = errno;

	if (path)
		return path;
	if (stat(mnt, &st)) {
		fprintf(stderr, "%s: %s: %s\n", g_get_prgname(), mnt, g_strerror(errno));
		return NULL;
	}
	if (err == EACCES || err == EPERM) {
		fprintf(stderr, "%s: %s: permission denied: you may not read the mount point\n", g_get_prgname(), mnt);
		return NULL;
	}
	type = mount_type_at(mnt);
	if (type && strcmp(type, "fuse.dmiofs"))
		fprintf(stderr, "%s: %s: not a dmiofs mount (it is %s)\n", g_get_prgname(), mnt, type);
	else if (!type)
		fprintf(stderr, "%s: %s: not the mount point of a dmiofs file system\n", g_get_prgname(), mnt);
	else
		fprintf(stderr, "%s: %s: the daemon has no control channel (%s)\n", g_get_prgname(), mnt,
			err == ENODATA ? "see its log" : g_strerror(err));
	g_free(type);
	return NULL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static bool send_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n <= 0)
			return false;
		s += n;
		len -= (size_t)n;
	}
	return true;
}

static char *receive_line(int fd)
{
	GString *s = g_string_new(NULL);
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		g_string_append_len(s, buf, n);
	return g_string_free(s, FALSE);
}

/* Send a request (a JSON object built by the caller) to the daemon at
 * mnt; the result node of a successful answer (json_node_unref it), or
 * NULL having said why. */
JsonNode *ask(const char *mnt, JsonBuilder *request)
{
	char *sock = control_socket(mnt), *text = NULL, *reply;
	JsonNode *root = json_builder_get_root(request), *result = NULL;
	JsonGenerator *gen = json_generator_new();
	JsonParser *parser = json_parser_new();
	int fd = -1;

	if (!sock)
		goto out;
	fd = connect_to(sock);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: cannot reach the daemon at %s: %s\n", g_get_prgname(), mnt, sock, g_strerror(-fd));
		goto out;
	}
	json_generator_set_root(gen, root);
	text = json_generator_to_data(gen, NULL);
	if (!send_all(fd, text, strlen(text)) || !send_all(fd, "\n", 1)) {
		fprintf(stderr, "%s: %s: the daemon went away: %s\n", g_get_prgname(), mnt, g_strerror(errno));
		goto out;
	}
	shutdown(fd, SHUT_WR);
	reply = receive_line(fd);
	if (json_parser_load_from_data(parser, reply, -1, NULL) && JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
		JsonObject *o = json_node_get_object(json_parser_get_root(parser));

		if (json_object_get_boolean_member_with_default(o, "ok", FALSE))
			result = json_node_copy(json_object_get_member(o, "result"));
		else
			fprintf(stderr, "%s: %s: %s\n", g_get_prgname(), mnt,
				json_object_get_string_member_with_default(o, "error", "the daemon refused"));
	} else {
		fprintf(stderr, "%s: %s: the daemon's answer is not understood\n", g_get_prgname(), mnt);
	}
	g_free(reply);
out:
	if (fd >= 0)
		close(fd);
	g_free(text);
	g_free(sock);
	json_node_unref(root);
	g_object_unref(gen);
	g_object_unref(parser);
	return result;
}

JsonBuilder *request(const char *command)
{
	JsonBuilder *b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "command");
	json_builder_add_string_value(b, command);
	return b;
}

/* End the request, ask, free the builder. */
JsonNode *ask_and_free(const char *mnt, JsonBuilder *b)
{
	JsonNode *result;

	json_builder_end_object(b);
	result = ask(mnt, b);
	g_object_unref(b);
	return result;
}


pid_t daemon_pid(const char *mnt)
{
	char *sock = control_socket(mnt);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	if (!sock)
		return -1;
	fd = connect_to(sock);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: cannot reach the daemon at %s: %s\n", g_get_prgname(), mnt, sock,
			g_strerror(-fd));
		g_free(sock);
		return -1;
	}
	g_free(sock);
	/* The credentials of the socket's other end are the daemon's. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid <= 0) {
		fprintf(stderr, "%s: %s: cannot tell the daemon's process: %s\n", g_get_prgname(), mnt, g_strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return cred.pid;
}
