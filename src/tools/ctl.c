/* dmiofs-ctl - look at and act on a mounted dmiofs file system.
 *
 *   dmiofs-ctl status [MOUNTPOINT] [--json]
 *   dmiofs-ctl layout FILE
 *   dmiofs-ctl errors MOUNTPOINT [--reset] [--json]
 *   dmiofs-ctl inject MOUNTPOINT DEVICE FAULT [--sectors A-B] [--every N | --rate P]
 *   dmiofs-ctl inject MOUNTPOINT --list | --clear [DEVICE]
 *   dmiofs-ctl scrub start|status|pause|resume|cancel MOUNTPOINT [--rate MB/s] [--wait]
 *   dmiofs-ctl replace MOUNTPOINT OLD NEW [--wait] [--force]
 *   dmiofs-ctl add MOUNTPOINT DEV[:DEV...] [DEV...] [--wait] [--force]
 *   dmiofs-ctl remove MOUNTPOINT DEV [--wait]
 *   dmiofs-ctl remount MOUNTPOINT ro|rw
 *   dmiofs-ctl unmount MOUNTPOINT
 *   dmiofs-ctl scan [--json]
 *
 * It talks JSON to the daemon over the control channel whose socket the
 * mount's root names in user.dmio.control (see dmiofs-ctl(8)); layout
 * reads a file's xattr.  status exits 0 healthy, 2 degraded, 3 errors
 * counted, 1 on error; bad usage exits 2. */
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

#include <glib.h>
#include <json-glib/json-glib.h>

#include "../store/devlist.h"
#include "../store/mounts.h"
#include "channel.h"
#include "mountctl.h"

#define EXIT_USAGE 2
#define EXIT_DEGRADED 2
#define EXIT_ERRORS 3 /* no device lost, but I/O errors counted since the last reset */

struct opts {
	gboolean json, reset, list, clear, version, wait, force, verbose, udev;
	char *sectors, *rate;
	int every;
};

static struct opts opt;

/* ---- small things ------------------------------------------------------------------ */

static void die_usage(void)
{
	fprintf(stderr,
		"usage: dmiofs-ctl status [MOUNTPOINT] [--json]\n"
		"       dmiofs-ctl layout FILE\n"
		"       dmiofs-ctl errors MOUNTPOINT [--reset] [--json]\n"
		"       dmiofs-ctl inject MOUNTPOINT DEVICE FAULT [--sectors A-B] [--every N | --rate P]\n"
		"       dmiofs-ctl inject MOUNTPOINT --list | --clear [DEVICE]\n"
		"       dmiofs-ctl scrub start|status|pause|resume|cancel MOUNTPOINT [--rate MB/s] [--wait]\n"
		"       dmiofs-ctl replace MOUNTPOINT OLD NEW [--wait] [--force]\n"
		"       dmiofs-ctl add MOUNTPOINT DEV[:DEV...] [DEV...] [--wait] [--force]\n"
		"       dmiofs-ctl remove MOUNTPOINT DEV [--wait]\n"
		"       dmiofs-ctl remount MOUNTPOINT ro|rw [--json]\n"
		"       dmiofs-ctl unmount MOUNTPOINT [--verbose]\n"
		"       dmiofs-ctl scan [--json]\n"
		"       dmiofs-ctl scan --udev DEVNODE\n"
		"       dmiofs-ctl -h | -V\n"
		"See dmiofs-ctl(8).\n");
	exit(EXIT_USAGE);
}

static void print_json(JsonNode *node)
{
	JsonGenerator *gen = json_generator_new();
	char *text;

	json_generator_set_root(gen, node);
	text = json_generator_to_data(gen, NULL);
	puts(text);
	g_free(text);
	g_object_unref(gen);
}

/* ---- status ------------------------------------------------------------------------- */

static const char *str(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && !JSON_NODE_HOLDS_NULL(n) && json_node_get_value_type(n) == G_TYPE_STRING ? json_node_get_string(n)
											      : "";
}

static gint64 num(JsonObject *o, const char *name)
{
	return json_object_has_member(o, name) ? json_object_get_int_member(o, name) : 0;
}

/* "1.5 MiB": glib separates number and unit with a no-break space, which
 * takes two bytes and would skew the table's columns. */
static char *human(gint64 bytes)
{
	char *s = g_format_size_full((guint64)MAX(bytes, 0), G_FORMAT_SIZE_IEC_UNITS);
	char *nbsp = strstr(s, "\u00a0");

	if (nbsp) {
		*nbsp = ' ';
		memmove(nbsp + 1, nbsp + 2, strlen(nbsp + 2) + 1);
	}
	return s;
}

static void print_task(JsonObject *s)
{
	JsonObject *t = json_object_get_object_member(s, "task");
	gint64 done, total;
	char *d, *tot, *rate;

	if (!t || !strcmp(str(t, "name"), "idle"))
		return;
	done = num(t, "done");
	total = num(t, "total");
	d = human(done);
	tot = human(total);
	rate = human((gint64)json_object_get_double_member(t, "rate"));
	printf("  %s: %.1f%% (%s of %s), %s/s", str(t, "name"), total ? 100.0 * (double)done / (double)total : 0.0, d,
	       tot, rate);
	if (!JSON_NODE_HOLDS_NULL(json_object_get_member(t, "eta")))
		printf(", %.0f s left", json_object_get_double_member(t, "eta"));
	putchar('\n');
	g_free(d);
	g_free(tot);
	g_free(rate);
}

/* Under the table: what a device's row cannot say (an NBD export and its
 * connection, write-mostly) and how long its reads take lately. */
static void print_device_notes(JsonArray *devs)
{
	for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
		JsonObject *d = json_array_get_object_element(devs, i);
		bool remote = json_object_get_boolean_member_with_default(d, "remote", FALSE);
		bool wm = json_object_get_boolean_member_with_default(d, "write_mostly", FALSE);
		int64_t lat = num(d, "read_latency_us");

		if (!remote && !wm)
			continue;
		printf("  device %lld:", (long long)num(d, "index"));
		if (remote)
			printf(" NBD export, %s",
			       json_object_get_boolean_member_with_default(d, "connected", FALSE) ? "connected"
												   : "not connected");
		if (wm)
			printf("%s write-mostly", remote ? "," : "");
		if (lat)
			printf(", reads take %.2f ms", (double)lat / 1000.0);
		printf("\n");
	}
}

static void print_status_table(const char *mnt, JsonObject *s)
{
	JsonArray *devs = json_object_get_array_member(s, "devices");
	JsonArray *missing = json_object_get_array_member(s, "missing");
	const char *health = str(s, "status");
	char *cap = human(num(s, "capacity")), *used = human(num(s, "used")), *avail = human(num(s, "free"));

	printf("dmiofs %s%s%s%s at %s: %s\n", str(s, "uuid"), *str(s, "label") ? " (label \"" : "", str(s, "label"),
	       *str(s, "label") ? "\")" : "", mnt,
	       !strcmp(health, "degraded") ? "DEGRADED"
	       : !strcmp(health, "errors") ? "ERRORS (I/O errors since the last reset: dmiofs-ctl errors)"
					   : "healthy");
	printf("  copies %lld, capacity %s, used %s, free %s, files %lld%s\n", (long long)num(s, "copies"), cap, used,
	       avail, (long long)num(s, "files"),
	       json_object_get_boolean_member_with_default(s, "read_only", FALSE) ? ", read-only" : "");
	for (guint i = 0; missing && i < json_array_get_length(missing); i++)
		printf("  missing: %s\n", json_array_get_string_element(missing, i));
	print_task(s);
	printf("  %-4s %-9s %10s %10s %6s %6s %6s %6s %8s  %s\n", "DEV", "STATE", "SIZE", "USED", "READ", "WRITE",
	       "FLUSH", "CSUM", "REPAIRED", "PATH");
	for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
		JsonObject *d = json_array_get_object_element(devs, i);
		char *size = human(num(d, "size")), *dused = human(num(d, "used"));

		printf("  %-4lld %-9s %10s %10s %6lld %6lld %6lld %6lld %8lld  %s\n", (long long)num(d, "index"),
		       str(d, "state"), size, dused, (long long)num(d, "read_errors"), (long long)num(d, "write_errors"),
		       (long long)num(d, "flush_errors"), (long long)num(d, "checksum_errors"),
		       (long long)num(d, "repaired"), *str(d, "path") ? str(d, "path") : str(d, "uuid"));
		g_free(size);
		g_free(dused);
	}
	print_device_notes(devs);
	g_free(cap);
	g_free(used);
	g_free(avail);
}

/* 0 healthy, 2 degraded, 3 errors seen: what cron alerts look at. */
static int exit_status_of(const char *health)
{
	return !strcmp(health, "degraded") ? EXIT_DEGRADED : !strcmp(health, "errors") ? EXIT_ERRORS : 0;
}

/* Of two exit statuses, which says worse: an error, degraded, errors. */
static int severity(int exit_status)
{
	static const int rank[] = { [0] = 0, [1] = 3, [EXIT_DEGRADED] = 2, [EXIT_ERRORS] = 1 };

	return exit_status >= 0 && exit_status <= EXIT_ERRORS ? rank[exit_status] : 3;
}

/* Ask for the status and print it (JSON or the table); the answer, or
 * NULL having said why. */
static JsonNode *show_status(const char *mnt)
{
	JsonNode *r = ask_and_free(mnt, request("status"));

	if (r && opt.json)
		print_json(r);
	else if (r)
		print_status_table(mnt, json_node_get_object(r));
	return r;
}

static int status_of(const char *mnt)
{
	JsonNode *r = show_status(mnt);
	int ret;

	if (!r)
		return 1;
	ret = exit_status_of(str(json_node_get_object(r), "status"));
	json_node_unref(r);
	return ret;
}

/* Without a mount point: every dmiofs mounted; the worst exit status. */
static int status_of_all(void)
{
	GPtrArray *mounts = dmiofs_mount_points();
	guint n = mounts->len;
	int worst = n ? 0 : 1;

	if (!mounts->len)
		fprintf(stderr, "dmiofs-ctl: no dmiofs file system is mounted\n");
	if (opt.json && mounts->len)
		printf("[");
	for (guint i = 0; i < mounts->len; i++) {
		int ret;

		if (opt.json && i)
			printf(",");
		else if (i)
			putchar('\n');
		fflush(stdout);
		ret = status_of(g_ptr_array_index(mounts, i));
		worst = severity(ret) > severity(worst) ? ret : worst;
	}
	if (opt.json && mounts->len)
		printf("]\n");
	g_ptr_array_free(mounts, TRUE);
	return worst;
}

/* ---- errors ------------------------------------------------------------------------- */

static void print_counts_row(const char *what, JsonObject *o)
{
	printf("  %6lld %6lld %6lld %6lld %8lld  %s\n", (long long)num(o, "read_errors"), (long long)num(o, "write_errors"),
	       (long long)num(o, "flush_errors"), (long long)num(o, "checksum_errors"), (long long)num(o, "repaired"),
	       what);
}

static int errors_of(const char *mnt)
{
	JsonBuilder *b = request("errors");
	JsonNode *r;
	JsonArray *devs, *files;

	json_builder_set_member_name(b, "reset");
	json_builder_add_boolean_value(b, opt.reset);
	r = ask_and_free(mnt, b);
	if (!r)
		return 1;
	if (opt.json) {
		print_json(r);
		json_node_unref(r);
		return 0;
	}
	devs = json_object_get_array_member(json_node_get_object(r), "devices");
	files = json_object_get_array_member(json_node_get_object(r), "files");
	if (opt.reset)
		printf("counters reset\n");
	printf("  %6s %6s %6s %6s %8s  %s\n", "READ", "WRITE", "FLUSH", "CSUM", "REPAIRED", "DEVICE");
	for (guint i = 0; i < json_array_get_length(devs); i++) {
		JsonObject *d = json_array_get_object_element(devs, i);
		char *what = g_strdup_printf("%lld %s", (long long)num(d, "index"),
					     *str(d, "path") ? str(d, "path") : str(d, "uuid"));

		print_counts_row(what, d);
		g_free(what);
	}
	if (json_array_get_length(files)) {
		printf("  %6s %6s %6s %6s %8s  %s\n", "READ", "WRITE", "FLUSH", "CSUM", "REPAIRED", "FILE");
		for (guint i = 0; i < json_array_get_length(files); i++) {
			JsonObject *f = json_array_get_object_element(files, i);
			char *what = *str(f, "path") ? g_strdup_printf("%s%s", mnt, str(f, "path"))
						     : g_strdup_printf("inode %lld", (long long)num(f, "inode"));

			print_counts_row(what, f);
			g_free(what);
		}
	}
	json_node_unref(r);
	return 0;
}

/* A device as the daemon must see it: an existing path made absolute
 * (its working folder is not ours), anything else (an index, a UUID, a
 * path gone) as given. */
static char *device_arg(const char *dev)
{
	char *abs = realpath(dev, NULL);
	char *out = g_strdup(abs ? abs : dev);

	free(abs);
	return out;
}

/* ---- fault drills -------------------------------------------------------------------- */

static void print_faults(JsonNode *r)
{
	JsonArray *faults = json_object_get_array_member(json_node_get_object(r), "faults");

	if (!json_array_get_length(faults))
		printf("no fault injected\n");
	for (guint i = 0; i < json_array_get_length(faults); i++) {
		JsonObject *f = json_array_get_object_element(faults, i);

		printf("device %lld (%s): %s, %lld hit(s)\n", (long long)num(f, "device"), str(f, "path"), str(f, "fault"),
		       (long long)num(f, "hits"));
	}
}

/* "A-B" (sectors, inclusive) into first and count. */
static bool parse_sectors(const char *s, gint64 *first, gint64 *count)
{
	char *end;
	guint64 a, b;

	a = g_ascii_strtoull(s, &end, 10);
	if (end == s || *end != '-')
		return false;
	s = end + 1;
	b = g_ascii_strtoull(s, &end, 10);
	if (end == s || *end || b < a)
		return false;
	*first = (gint64)a;
	*count = (gint64)(b - a + 1);
	return true;
}

static int inject(const char *mnt, int argc, char **argv)
{
	JsonBuilder *b = request("inject");
	JsonNode *r;

	if (opt.list || opt.clear) {
		if (argc > 1 || (opt.list && argc)) {
			g_object_unref(b);
			die_usage();
		}
		json_builder_set_member_name(b, opt.list ? "list" : "clear");
		json_builder_add_boolean_value(b, TRUE);
		if (argc) {
			char *dev = device_arg(argv[0]);

			json_builder_set_member_name(b, "device");
			json_builder_add_string_value(b, dev);
			g_free(dev);
		}
	} else {
		gint64 first = 0, count = 0;
		double rate = 0;

		if (argc != 2 || (opt.every && opt.rate)) {
			g_object_unref(b);
			die_usage();
		}
		if (opt.sectors && !parse_sectors(opt.sectors, &first, &count)) {
			fprintf(stderr, "dmiofs-ctl: --sectors %s: want A-B, the first and last sector\n", opt.sectors);
			g_object_unref(b);
			return 1;
		}
		if (opt.rate) {
			char *end;

			rate = g_ascii_strtod(opt.rate, &end);
			if (*end == '%')
				rate /= 100, end++;
			if (end == opt.rate || *end || rate < 0 || rate > 1) {
				fprintf(stderr, "dmiofs-ctl: --rate %s: want a probability, 0 to 1 (or 0%% to 100%%)\n",
					opt.rate);
				g_object_unref(b);
				return 1;
			}
		}
		char *dev = device_arg(argv[0]);

		json_builder_set_member_name(b, "device");
		json_builder_add_string_value(b, dev);
		g_free(dev);
		json_builder_set_member_name(b, "fault");
		json_builder_add_string_value(b, argv[1]);
		json_builder_set_member_name(b, "first");
		json_builder_add_int_value(b, first);
		json_builder_set_member_name(b, "count");
		json_builder_add_int_value(b, count);
		json_builder_set_member_name(b, "every");
		json_builder_add_int_value(b, opt.every);
		json_builder_set_member_name(b, "rate");
		json_builder_add_double_value(b, rate);
	}
	r = ask_and_free(mnt, b);
	if (!r)
		return 1;
	if (opt.json)
		print_json(r);
	else
		print_faults(r);
	json_node_unref(r);
	return 0;
}

/* ---- waiting, with progress ------------------------------------------------------------ */

/* How far a piece of work is: done of total bytes, its rate; false once
 * it is over. */
typedef bool (*progress_fn)(JsonObject *status, gint64 *done, gint64 *total, double *rate);

static void show_progress(bool tty, const char *what, gint64 done, gint64 total, double rate, bool last)
{
	double pct = total > 0 ? 100.0 * (double)MIN(done, total) / (double)total : (last ? 100.0 : 0.0);
	char *r = human((gint64)rate), *d = human(done), *t = human(total);
	int bar = (int)(pct / 5);

	if (tty) {
		printf("\r%s [%.*s%*s] %5.1f%%  %s of %s  %s/s", what, bar, "####################", 20 - bar, "", pct, d, t,
		       r);
		if (rate > 0 && total > done)
			printf("  ETA %.0f s   ", (double)(total - done) / rate);
		else
			printf("            ");
		if (last)
			putchar('\n');
	} else {
		printf("%s: %.1f%% (%s of %s), %s/s\n", what, pct, d, t, r);
	}
	fflush(stdout);
	g_free(r);
	g_free(d);
	g_free(t);
}

/* Ask for status until the work is over, showing progress on a terminal
 * (plain lines otherwise, none with --json). */
static int wait_for(const char *mnt, const char *what, progress_fn progress)
{
	bool tty = isatty(STDOUT_FILENO) && !opt.json;
	gint64 last_line = 0, most_done = 0, most_total = 0;
	double last_rate = 0;

	for (;;) {
		JsonNode *r = ask_and_free(mnt, request("status"));
		gint64 done = 0, total = 0;
		double rate = 0;
		bool going;

		if (!r)
			return 1;
		going = progress(json_node_get_object(r), &done, &total, &rate);
		json_node_unref(r);
		/* The work's own figures go when it ends: show it whole. */
		most_total = MAX(most_total, total);
		most_done = MAX(most_done, done);
		if (rate > 0)
			last_rate = rate;
		if (!going) {
			done = total = most_done = most_total;
			rate = last_rate;
		}
		if (!opt.json && (tty || !going || g_get_monotonic_time() - last_line > 5 * G_USEC_PER_SEC)) {
			show_progress(tty, what, done, total, rate, !going);
			last_line = g_get_monotonic_time();
		}
		if (!going)
			return 0;
		g_usleep(tty ? 250000 : 500000);
	}
}

/* ---- scrub -------------------------------------------------------------------------- */

static bool scrub_progress(JsonObject *s, gint64 *done, gint64 *total, double *rate)
{
	JsonObject *sc = json_object_get_object_member(s, "scrub");
	static gint64 first_done = -1, first_time;
	gint64 now = g_get_monotonic_time();

	*done = num(sc, "checked");
	*total = num(sc, "total");
	if (first_done < 0) {
		first_done = *done;
		first_time = now;
	}
	*rate = now > first_time ? (double)(*done - first_done) * G_USEC_PER_SEC / (double)(now - first_time) : 0;
	return !strcmp(str(sc, "state"), "running");
}

static void print_scrub(JsonObject *sc)
{
	char *checked = human(num(sc, "checked")), *total = human(num(sc, "total"));

	const char *found = "%s checked, %lld bad block(s) found, %lld repaired, %lld left bad";

	printf("scrub: %s", str(sc, "state"));
	if (strcmp(str(sc, "state"), "idle")) {
		/* Under way: what this run found so far. */
		printf(", %s of %s checked so far: %lld bad block(s) found, %lld repaired, %lld left bad\n", checked,
		       total, (long long)num(sc, "found"), (long long)num(sc, "fixed"), (long long)num(sc, "unfixed"));
		printf("last result: %s\n", str(sc, "last_result"));
	} else {
		printf("\nlast result: %s", str(sc, "last_result"));
		if (num(sc, "started")) {
			printf(" (");
			printf(found, checked, (long long)num(sc, "found"), (long long)num(sc, "fixed"),
			       (long long)num(sc, "unfixed"));
			printf(")");
		}
		putchar('\n');
	}
	g_free(checked);
	g_free(total);
}

static int scrub(const char *action, const char *mnt)
{
	JsonBuilder *b = request("scrub");
	JsonNode *r;
	double mbs = 0;
	int ret = 0;

	if (opt.rate) {
		char *end;

		mbs = g_ascii_strtod(opt.rate, &end);
		if (end == opt.rate || *end || mbs < 0) {
			fprintf(stderr, "dmiofs-ctl: --rate %s: want megabytes per second\n", opt.rate);
			g_object_unref(b);
			return 1;
		}
	}
	json_builder_set_member_name(b, "action");
	json_builder_add_string_value(b, action);
	json_builder_set_member_name(b, "rate");
	json_builder_add_int_value(b, (gint64)(mbs * 1e6));
	r = ask_and_free(mnt, b);
	if (!r)
		return 1;
	if (opt.wait && strcmp(action, "cancel") && strcmp(action, "pause"))
		ret = wait_for(mnt, "scrub", scrub_progress);
	if (!ret && opt.wait) {
		json_node_unref(r);
		b = request("scrub");
		json_builder_set_member_name(b, "action");
		json_builder_add_string_value(b, "status");
		r = ask_and_free(mnt, b);
		if (!r)
			return 1;
	}
	if (opt.json)
		print_json(r);
	else
		print_scrub(json_node_get_object(r));
	/* Blocks a scrub could not make good are data at risk: say so. */
	if (!ret && num(json_node_get_object(r), "unfixed") && !strcmp(str(json_node_get_object(r), "state"), "idle"))
		ret = EXIT_DEGRADED;
	json_node_unref(r);
	return ret;
}

/* ---- devices ------------------------------------------------------------------------ */

/* Copies being made: a task under way, a device returning or leaving. */
static bool copies_progress(JsonObject *s, gint64 *done, gint64 *total, double *rate)
{
	JsonObject *t = json_object_get_object_member(s, "task");
	JsonArray *devs = json_object_get_array_member(s, "devices");
	bool busy = strcmp(str(t, "name"), "idle");

	for (guint i = 0; i < json_array_get_length(devs); i++) {
		JsonObject *d = json_array_get_object_element(devs, i);

		busy |= !strcmp(str(d, "state"), "returning") && json_object_get_boolean_member(d, "present");
		busy |= strcmp(str(d, "leaving"), "no") != 0;
	}
	*done = num(t, "done");
	*total = num(t, "total");
	*rate = json_object_get_double_member(t, "rate");
	return busy;
}

static int device_change(const char *what, const char *mnt, const char *old_arg, const char *dev_arg)
{
	JsonBuilder *b = request(what);
	char *dev = device_arg(dev_arg), *old = old_arg ? device_arg(old_arg) : NULL;
	JsonNode *r;
	int ret = 0;

	json_builder_set_member_name(b, "device");
	json_builder_add_string_value(b, dev);
	if (old) {
		json_builder_set_member_name(b, "old");
		json_builder_add_string_value(b, old);
	}
	json_builder_set_member_name(b, "force");
	json_builder_add_boolean_value(b, opt.force);
	r = ask_and_free(mnt, b);
	if (r && !opt.json && !opt.wait)
		printf("%s %s: started; dmiofs-ctl status %s shows its progress\n", what, dev_arg, mnt);
	g_free(dev);
	g_free(old);
	if (!r)
		return 1;
	if (opt.wait) {
		json_node_unref(r);
		ret = wait_for(mnt, what, copies_progress);
		r = ret ? NULL : ask_and_free(mnt, request("status"));
		if (!r)
			return 1;
		if (!opt.json)
			print_status_table(mnt, json_node_get_object(r));
	}
	if (opt.json)
		print_json(r);
	json_node_unref(r);
	return ret;
}

/* add MOUNTPOINT DEV[:DEV...] [DEV...]: the device lists as dmiofs and
 * mkfs.dmiofs take them; each joins in turn, and --wait waits once for
 * all of them. */
static int add_devices(const char *mnt, int argc, char **argv)
{
	gboolean wait = opt.wait;
	int ret = 0;

	opt.wait = FALSE;
	for (int i = 0; i < argc && !ret; i++) {
		char **devs = devlist_split(argv[i]);

		for (char **d = devs; *d && !ret; d++)
			if (**d)
				ret = device_change("add", mnt, NULL, *d);
		g_strfreev(devs);
	}
	opt.wait = wait;
	if (!ret && wait) {
		JsonNode *r;

		ret = wait_for(mnt, "add", copies_progress);
		r = ret ? NULL : show_status(mnt);
		if (!r)
			return 1;
		json_node_unref(r);
	}
	return ret;
}

/* ---- layout (an xattr of the file itself) ------------------------------------------------ */

/* Every page of the file's layout, as one text with one header. */
static int layout_of(const char *path)
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

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	GOptionEntry entries[] = {
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &opt.json, "print JSON", NULL },
		{ "reset", 0, 0, G_OPTION_ARG_NONE, &opt.reset, "errors: set the counters back to zero (root)", NULL },
		{ "list", 0, 0, G_OPTION_ARG_NONE, &opt.list, "inject: list the faults injected", NULL },
		{ "clear", 0, 0, G_OPTION_ARG_NONE, &opt.clear, "inject: remove the faults (of DEVICE, or all)", NULL },
		{ "sectors", 0, 0, G_OPTION_ARG_STRING, &opt.sectors, "inject: only sectors A to B of the device", "A-B" },
		{ "every", 0, 0, G_OPTION_ARG_INT, &opt.every, "inject: act on every Nth I/O", "N" },
		{ "rate", 0, 0, G_OPTION_ARG_STRING, &opt.rate,
		  "scrub: read at most R MB/s; inject: act with probability R", "R" },
		{ "wait", 'w', 0, G_OPTION_ARG_NONE, &opt.wait, "wait until the work is done, showing progress", NULL },
		{ "force", 'f', 0, G_OPTION_ARG_NONE, &opt.force, "replace, add: use a device that holds data", NULL },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt.verbose, "unmount: say when it is done", NULL },
		{ "udev", 0, 0, G_OPTION_ARG_NONE, &opt.udev, "scan DEVNODE: the ID_FS_* properties, for udev", NULL },
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &opt.version, "print the version", NULL },
		{ NULL },
	};
	GOptionContext *ctx = g_option_context_new("COMMAND ... - look at and act on a mounted dmiofs file system");
	GError *error = NULL;
	int ret;

	if (!strcmp(base, UMOUNT_HELPER_NAME)) { /* umount(8) runs us so */
		g_set_prgname(UMOUNT_HELPER_NAME);
		g_option_context_free(ctx);
		return umount_helper_main(argc, argv);
	}
	g_set_prgname("dmiofs-ctl");
	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(
		ctx, "Commands: status [MOUNTPOINT], layout FILE, errors MOUNTPOINT, inject MOUNTPOINT ...,\n"
		     "scrub start|status|pause|resume|cancel MOUNTPOINT, replace MOUNTPOINT OLD NEW,\n"
		     "add MOUNTPOINT DEV..., remove MOUNTPOINT DEV, remount MOUNTPOINT ro|rw,\n"
		     "unmount MOUNTPOINT, scan\n"
		     "Exit status of status: 0 healthy, 2 degraded, 3 errors counted, 1 error.\n"
		     "Bad usage exits 2.  See dmiofs-ctl(8).");
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		fprintf(stderr, "dmiofs-ctl: %s\n", error->message);
		g_error_free(error);
		g_option_context_free(ctx);
		die_usage();
	}
	g_option_context_free(ctx);
	if (opt.version) {
		printf("dmiofs-ctl %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (argc < 2)
		die_usage();
	if (!strcmp(argv[1], "status") && argc == 2)
		ret = status_of_all();
	else if (!strcmp(argv[1], "status") && argc == 3)
		ret = status_of(argv[2]);
	else if (!strcmp(argv[1], "layout") && argc == 3)
		ret = layout_of(argv[2]);
	else if (!strcmp(argv[1], "errors") && argc == 3)
		ret = errors_of(argv[2]);
	else if (!strcmp(argv[1], "inject") && argc >= 3)
		ret = inject(argv[2], argc - 3, argv + 3);
	else if (!strcmp(argv[1], "scrub") && argc == 4)
		ret = scrub(argv[2], argv[3]);
	else if (!strcmp(argv[1], "replace") && argc == 5)
		ret = device_change("replace", argv[2], argv[3], argv[4]);
	else if (!strcmp(argv[1], "add") && argc >= 4)
		ret = add_devices(argv[2], argc - 3, argv + 3);
	else if (!strcmp(argv[1], "remove") && argc == 4)
		ret = device_change(argv[1], argv[2], NULL, argv[3]);
	else if (!strcmp(argv[1], "remount") && argc == 4 && (!strcmp(argv[3], "ro") || !strcmp(argv[3], "rw")))
		ret = ctl_remount(argv[2], !strcmp(argv[3], "ro"), opt.json);
	else if (!strcmp(argv[1], "unmount") && argc == 3)
		ret = ctl_unmount(argv[2], 0, opt.verbose);
	else if (!strcmp(argv[1], "scan") && argc == 2 && !opt.udev)
		ret = ctl_scan(opt.json);
	else if (!strcmp(argv[1], "scan") && argc == 3 && opt.udev)
		ret = ctl_scan_udev(argv[2]);
	else
		die_usage();
	g_free(opt.sectors);
	g_free(opt.rate);
	return ret;
}
