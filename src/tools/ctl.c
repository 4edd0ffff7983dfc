/* dmiofs-ctl - look at a mounted dmiofs file system.
 *
 *   dmiofs-ctl status MOUNTPOINT [--json]
 *   dmiofs-ctl layout FILE
 *
 * status reads the root's user.dmio.status and user.dmio.devices; exit
 * status 0 healthy, 2 degraded (so scripts can alert), 1 on error.
 * layout prints a file's whole user.dmio.layout, joining its pages. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include <glib.h>

static char *read_xattr(const char *path, const char *name)
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

/* "key=value" per line into a table. */
static GHashTable *parse_lines(const char *text)
{
	GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	gchar **lines = g_strsplit(text, "\n", -1);

	for (gchar **l = lines; *l; l++) {
		char *eq = strchr(*l, '=');

		if (eq)
			g_hash_table_insert(t, g_strndup(*l, (gsize)(eq - *l)), g_strdup(eq + 1));
	}
	g_strfreev(lines);
	return t;
}

/* One device line: space-separated key=value, path= last (may hold spaces). */
static GHashTable *parse_device(const char *line)
{
	GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	const char *path = strstr(line, " path=");
	char *head = path ? g_strndup(line, (gsize)(path - line)) : g_strdup(line);
	gchar **words = g_strsplit(head, " ", -1);

	for (gchar **w = words; *w; w++) {
		char *eq = strchr(*w, '=');

		if (eq)
			g_hash_table_insert(t, g_strndup(*w, (gsize)(eq - *w)), g_strdup(eq + 1));
	}
	if (path)
		g_hash_table_insert(t, g_strdup("path"), g_strdup(path + 6));
	g_strfreev(words);
	g_free(head);
	return t;
}

static const char *get(GHashTable *t, const char *key)
{
	const char *v = g_hash_table_lookup(t, key);

	return v ? v : "";
}

static char *human(const char *bytes)
{
	return g_format_size_full(g_ascii_strtoull(bytes, NULL, 10), G_FORMAT_SIZE_IEC_UNITS);
}

static void json_string(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", c);
		else if (c < 0x20)
			g_string_append_printf(out, "\\u%04x", c);
		else
			g_string_append_c(out, (char)c);
	}
	g_string_append_c(out, '"');
}

/* Keys whose values are text whatever they look like. */
static const char *const text_keys[] = { "status", "uuid", "label", "state", "path", NULL };

/* A value as JSON: a whole decimal number as a number, yes/no as a
 * boolean, anything else (and every text key) as a string. */
static void json_value(GString *out, const char *key, const char *v)
{
	const char *p = v;

	if (g_strv_contains(text_keys, key)) {
		json_string(out, v);
		return;
	}
	if (!strcmp(v, "yes") || !strcmp(v, "no")) {
		g_string_append(out, strcmp(v, "yes") ? "false" : "true");
		return;
	}
	while (g_ascii_isdigit(*p))
		p++;
	if (*v && !*p && (v[0] != '0' || !v[1]))
		g_string_append(out, v);
	else
		json_string(out, v);
}

static void json_member(GString *out, const char *key, const char *name, const char *value, bool *first)
{
	g_string_append_printf(out, "%s\"%s\":", *first ? "" : ",", name);
	json_value(out, key, value);
	*first = false;
}

/* Every key of a table: those of order first, then the rest sorted, so
 * keys that later versions add appear too.  rename gives a key's JSON
 * name. */
static void json_members(GString *out, GHashTable *t, const char *const *order, const char *(*rename)(const char *),
			 bool *first)
{
	GList *keys = g_list_sort(g_hash_table_get_keys(t), (GCompareFunc)strcmp);

	for (int i = 0; order[i]; i++)
		if (g_hash_table_contains(t, order[i]))
			json_member(out, order[i], rename(order[i]), get(t, order[i]), first);
	for (GList *k = keys; k; k = k->next)
		if (!g_strv_contains(order, k->data))
			json_member(out, k->data, rename(k->data), get(t, k->data), first);
	g_list_free(keys);
}

static const char *status_key(const char *key)
{
	return !strcmp(key, "devices") ? "device_count" : key;
}

static const char *device_key(const char *key)
{
	return !strcmp(key, "device") ? "index" : key;
}

static void print_json(GHashTable *status, GPtrArray *devices)
{
	static const char *const status_order[] = { "status", "uuid", "label", "copies", "devices", NULL };
	static const char *const device_order[] = { "device", "state", "size", "used", NULL };
	GString *out = g_string_new("{");
	bool first = true;

	json_members(out, status, status_order, status_key, &first);
	g_string_append(out, ",\"devices\":[");
	for (guint d = 0; d < devices->len; d++) {
		bool dfirst = true;

		g_string_append(out, d ? ",{" : "{");
		json_members(out, g_ptr_array_index(devices, d), device_order, device_key, &dfirst);
		g_string_append_c(out, '}');
	}
	g_string_append(out, "]}\n");
	fputs(out->str, stdout);
	g_string_free(out, TRUE);
}

static void print_table(const char *mnt, GHashTable *status, GPtrArray *devices)
{
	char *cap = human(get(status, "capacity")), *used = human(get(status, "used")),
	     *avail = human(get(status, "free"));
	bool degraded = strcmp(get(status, "status"), "healthy");

	printf("dmiofs %s%s%s%s at %s: %s\n", get(status, "uuid"), *get(status, "label") ? " (label \"" : "",
	       get(status, "label"), *get(status, "label") ? "\")" : "", mnt, degraded ? "DEGRADED" : "healthy");
	printf("  copies %s, capacity %s, used %s, free %s, files %s%s\n", get(status, "copies"), cap, used, avail,
	       get(status, "files"), !strcmp(get(status, "read_only"), "yes") ? ", read-only" : "");
	printf("  %-4s %-8s %10s %10s %6s %6s %6s %6s %8s  %s\n", "DEV", "STATE", "SIZE", "USED", "READ", "WRITE",
	       "FLUSH", "CSUM", "REPAIRED", "PATH");
	for (guint d = 0; d < devices->len; d++) {
		GHashTable *dev = g_ptr_array_index(devices, d);
		char *size = human(get(dev, "size")), *dused = human(get(dev, "used"));

		printf("  %-4s %-8s %10s %10s %6s %6s %6s %6s %8s  %s\n", get(dev, "device"), get(dev, "state"), size,
		       dused, get(dev, "read_errors"), get(dev, "write_errors"), get(dev, "flush_errors"),
		       get(dev, "checksum_errors"), get(dev, "repaired"), get(dev, "path"));
		g_free(size);
		g_free(dused);
	}
	g_free(cap);
	g_free(used);
	g_free(avail);
}

static int status_command(const char *mnt, bool json)
{
	char *status_text = read_xattr(mnt, "user.dmio.status");
	char *devices_text = read_xattr(mnt, "user.dmio.devices");
	GHashTable *status;
	GPtrArray *devices;
	gchar **lines;
	int ret;

	if (!status_text || !devices_text) {
		fprintf(stderr, "dmiofs-ctl: %s: %s (is it the root of a mounted dmiofs?)\n", mnt,
			errno == ENODATA || errno == ENOTSUP ? "no dmiofs status here" : g_strerror(errno));
		g_free(status_text);
		g_free(devices_text);
		return 1;
	}
	status = parse_lines(status_text);
	devices = g_ptr_array_new_with_free_func((GDestroyNotify)g_hash_table_destroy);
	lines = g_strsplit(devices_text, "\n", -1);
	for (gchar **l = lines; *l; l++)
		if (**l)
			g_ptr_array_add(devices, parse_device(*l));
	g_strfreev(lines);
	if (json)
		print_json(status, devices);
	else
		print_table(mnt, status, devices);
	ret = strcmp(get(status, "status"), "healthy") ? 2 : 0;
	g_hash_table_destroy(status);
	g_ptr_array_free(devices, TRUE);
	g_free(status_text);
	g_free(devices_text);
	return ret;
}

/* Every page of the file's layout, as one text with one header. */
static int layout_command(const char *path)
{
	GString *lines = g_string_new(NULL);
	char *header = NULL, *name = g_strdup("user.dmio.layout");
	unsigned long shown = 0;

	while (name) {
		char *text = read_xattr(path, name);
		gchar **l;
		char *next = NULL;

		if (!text) {
			fprintf(stderr, "dmiofs-ctl: %s: %s: %s\n", path, name,
				errno == ENODATA ? "no layout (not a regular file on dmiofs?)" : g_strerror(errno));
			g_free(name);
			g_free(header);
			g_string_free(lines, TRUE);
			return 1;
		}
		l = g_strsplit(text, "\n", -1);
		for (gchar **p = l; *p; p++) {
			if (!**p)
				continue;
			if (g_str_has_prefix(*p, "size=")) {
				if (!header)
					header = g_strdup(*p);
			} else if (g_str_has_prefix(*p, "more ")) {
				const char *n = strstr(*p, " name=");

				next = n ? g_strdup(n + 6) : NULL;
			} else {
				if (g_str_has_prefix(*p, "extent "))
					shown++;
				g_string_append_printf(lines, "%s\n", *p);
			}
		}
		g_strfreev(l);
		g_free(text);
		g_free(name);
		name = next;
	}
	/* The header of page 0, its page fields made whole. */
	if (header) {
		char *cut = strstr(header, " first=");

		if (cut)
			*cut = '\0';
		printf("%s first=0 shown=%lu\n", header, shown);
	}
	fputs(lines->str, stdout);
	g_free(header);
	g_string_free(lines, TRUE);
	return 0;
}

int main(int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &json, "print one JSON object", NULL },
		{ NULL },
	};
	GOptionContext *ctx = g_option_context_new("status MOUNTPOINT | layout FILE - look at a mounted dmiofs file system");
	GError *error = NULL;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx, "Exit status: 0 healthy, 2 degraded, 1 error.  See dmiofs-ctl(8).");
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		fprintf(stderr, "dmiofs-ctl: %s\n", error->message);
		return 1;
	}
	g_option_context_free(ctx);
	if (argc == 3 && !strcmp(argv[1], "status"))
		return status_command(argv[2], json);
	if (argc == 3 && !strcmp(argv[1], "layout"))
		return layout_command(argv[2]);
	fprintf(stderr, "usage: dmiofs-ctl status MOUNTPOINT [--json]\n       dmiofs-ctl layout FILE\n");
	return 1;
}
