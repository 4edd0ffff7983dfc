/* admin.c - the administrator's requests (admin.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin.h"
#include "apply.h"

#define FILES_NAMED_MAX 1000 /* errors: files listed by name */
#define DELAY_MS_DEFAULT 100

struct drill_entry {
	uint32_t dev;
	int id;          /* libdmio's rule */
	char *desc;      /* as the user asked */
};

static const char *const count_names[ERR_KINDS] = {
	[ERR_READ] = "read_errors", [ERR_WRITE] = "write_errors", [ERR_FLUSH] = "flush_errors",
	[ERR_CSUM] = "checksum_errors", [ERR_REPAIRED] = "repaired",
};

/* ---- naming a device ------------------------------------------------------------ */

static bool same_file(const char *a, const char *b)
{
	struct stat x, y;

	if (stat(a, &x) || stat(b, &y))
		return false;
	if (S_ISBLK(x.st_mode) && S_ISBLK(y.st_mode))
		return x.st_rdev == y.st_rdev;
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int admin_find_device(struct store *st, const char *spec, uint32_t *index, GString *why)
{
	char *end;
	unsigned long n;
	char uuid[37];

	n = strtoul(spec, &end, 10);
	if (*spec && !*end && n < st->ndevices && st->dev[n].state != DEV_REMOVED) {
		*index = (uint32_t)n;
		return 0;
	}
	for (uint32_t k = 0; k < st->ndevices; k++) {
		if (st->dev[k].state == DEV_REMOVED)
			continue;
		uuid_format(st->sb.devs[k].uuid, uuid);
		if (!g_ascii_strcasecmp(spec, uuid) || (st->dev[k].path && !strcmp(spec, st->dev[k].path)) ||
		    (st->dev[k].path && same_file(spec, st->dev[k].path))) {
			*index = k;
			return 0;
		}
	}
	g_string_append_printf(why, "%s: not a device of this file system (give its index, path or UUID, as "
				    "dmiofs-ctl status lists them)",
			       spec);
	return -ENODEV;
}

/* ---- error counters --------------------------------------------------------------- */

static void json_counts(JsonBuilder *b, const struct rec_counters *c)
{
	for (int k = 0; k < ERR_KINDS; k++) {
		json_builder_set_member_name(b, count_names[k]);
		json_builder_add_int_value(b, (gint64)c->count[k]);
	}
}

static bool any_count(const struct rec_counters *c)
{
	for (int k = 0; k < ERR_KINDS; k++)
		if (c->count[k])
			return true;
	return false;
}

static void collect_erring(gpointer key, gpointer value, gpointer data)
{
	struct dinode *in = value;

	(void)key;
	if (in->errors && any_count(in->errors))
		g_hash_table_insert(data, GSIZE_TO_POINTER(in->ino), NULL);
}

static void json_files(struct store *st, JsonBuilder *b)
{
	GHashTable *erring = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	GHashTableIter it;
	gpointer key, path;

	g_hash_table_foreach(st->meta.inodes, collect_erring, erring);
	meta_name_inodes(&st->meta, erring, FILES_NAMED_MAX);
	json_builder_set_member_name(b, "files");
	json_builder_begin_array(b);
	g_hash_table_iter_init(&it, erring);
	while (g_hash_table_iter_next(&it, &key, &path)) {
		struct dinode *in = meta_inode(&st->meta, GPOINTER_TO_SIZE(key));

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "inode");
		json_builder_add_int_value(b, (gint64)GPOINTER_TO_SIZE(key));
		json_builder_set_member_name(b, "path");
		if (path)
			json_builder_add_string_value(b, path);
		else
			json_builder_add_null_value(b);
		json_counts(b, in->errors);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	g_hash_table_destroy(erring);
}

JsonNode *admin_errors(struct store *st)
{
	JsonBuilder *b = json_builder_new();
	JsonNode *root;
	char uuid[37];

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "devices");
	json_builder_begin_array(b);
	g_mutex_lock(&st->lock);
	for (uint32_t k = 0; k < st->ndevices; k++) {
		if (st->dev[k].state == DEV_REMOVED)
			continue;
		uuid_format(st->sb.devs[k].uuid, uuid);
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "index");
		json_builder_add_int_value(b, k);
		json_builder_set_member_name(b, "path");
		if (st->dev[k].path)
			json_builder_add_string_value(b, st->dev[k].path);
		else
			json_builder_add_null_value(b);
		json_builder_set_member_name(b, "uuid");
		json_builder_add_string_value(b, uuid);
		json_counts(b, &st->dev[k].err);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_files(st, b);
	g_mutex_unlock(&st->lock);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	g_object_unref(b);
	return root;
}

static void reset_file(gpointer key, gpointer value, gpointer data)
{
	struct dinode *in = value;

	(void)key;
	if (in->errors && any_count(in->errors)) {
		struct rec_counters zero = { .id = in->ino };

		rec_put_counters(data, REC_FILE_ERRORS, &zero);
	}
}

int admin_reset_errors(struct store *st, GString *why)
{
	GByteArray *r = g_byte_array_new();
	int err;

	g_mutex_lock(&st->lock);
	for (uint32_t k = 0; k < st->ndevices; k++) {
		struct rec_counters zero = { .id = k };

		if (st->dev[k].state != DEV_REMOVED && any_count(&st->dev[k].err))
			rec_put_counters(r, REC_DEV_COUNTERS, &zero);
	}
	g_hash_table_foreach(st->meta.inodes, reset_file, r);
	err = r->len ? store_log(st, r) : 0;
	g_mutex_unlock(&st->lock);
	g_byte_array_free(r, TRUE);
	if (err)
		g_string_append_printf(why, "the counters cannot be reset: %s", g_strerror(-err));
	return err;
}

/* ---- fault drills ------------------------------------------------------------------- */

/* The libdmio rule for a drill. */
static int drill_rule(const struct drill *d, struct dmio_fault *f, GString *why)
{
	unsigned long ms = DELAY_MS_DEFAULT;

	memset(f, 0, sizeof(*f));
	if (!strcmp(d->kind, "read-error")) {
		f->ops = DMIO_FAULT_READ;
		f->action = DMIO_FAULT_EIO;
	} else if (!strcmp(d->kind, "write-error")) {
		f->ops = DMIO_FAULT_WRITE;
		f->action = DMIO_FAULT_EIO;
	} else if (!strcmp(d->kind, "corrupt")) {
		f->ops = DMIO_FAULT_READ;
		f->action = DMIO_FAULT_CORRUPT;
	} else if (!strcmp(d->kind, "drop-write")) {
		f->ops = DMIO_FAULT_WRITE;
		f->action = DMIO_FAULT_DROP;
	} else if (!strcmp(d->kind, "delay") || g_str_has_prefix(d->kind, "delay=")) {
		char *end;

		if (d->kind[5] == '=') {
			ms = strtoul(d->kind + 6, &end, 10);
			if (!g_ascii_isdigit(d->kind[6]) || *end || !ms || ms > 600000) {
				g_string_append_printf(why, "%s: the delay is in milliseconds, 1 to 600000", d->kind);
				return -EINVAL;
			}
		}
		f->ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE;
		f->action = DMIO_FAULT_DELAY;
		f->delay_ms = (unsigned int)ms;
	} else {
		g_string_append_printf(why, "%s: unknown fault (read-error, write-error, corrupt, drop-write, delay[=MS])",
				       d->kind);
		return -EINVAL;
	}
	if (d->rate < 0 || d->rate > 1) {
		g_string_append(why, "the rate is a probability from 0 to 1");
		return -EINVAL;
	}
	f->sector = d->first;
	f->count = d->count;
	f->every = d->every;
	f->probability = d->rate;
	f->seed = 0x5eedu; /* drills repeat the same way */
	return 0;
}

/* The drill as the user would write it. */
static char *drill_text(const struct drill *d)
{
	GString *s = g_string_new(d->kind);

	if (d->count)
		g_string_append_printf(s, " --sectors %llu-%llu", (unsigned long long)d->first,
				       (unsigned long long)(d->first + d->count - 1));
	if (d->every > 1)
		g_string_append_printf(s, " --every %u", d->every);
	if (d->rate > 0)
		g_string_append_printf(s, " --rate %g", d->rate);
	return g_string_free(s, FALSE);
}

static void drill_free(gpointer p)
{
	struct drill_entry *e = p;

	g_free(e->desc);
	g_free(e);
}

int admin_inject(struct store *st, uint32_t dev, const struct drill *d, GString *why)
{
	struct dmio_fault f;
	struct drill_entry *e;
	int id, err = drill_rule(d, &f, why);

	if (err)
		return err;
	g_mutex_lock(&st->lock);
	if (!st->dev[dev].bdev) {
		g_string_append_printf(why, "device %u is not present: nothing to inject into", dev);
		g_mutex_unlock(&st->lock);
		return -ENODEV;
	}
	id = dmio_fault_add(st->dev[dev].bdev, &f);
	if (id < 0) {
		g_string_append_printf(why, "the fault cannot be added: %s", g_strerror(-id));
		g_mutex_unlock(&st->lock);
		return id;
	}
	if (!st->drills)
		st->drills = g_ptr_array_new_with_free_func(drill_free);
	e = g_new0(struct drill_entry, 1);
	e->dev = dev;
	e->id = id;
	e->desc = drill_text(d);
	g_ptr_array_add(st->drills, e);
	g_message("%s (device %u): fault drill %s injected", st->dev[dev].path, dev, e->desc);
	g_mutex_unlock(&st->lock);
	return 0;
}

JsonNode *admin_injected(struct store *st)
{
	JsonBuilder *b = json_builder_new();
	JsonNode *root;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "faults");
	json_builder_begin_array(b);
	g_mutex_lock(&st->lock);
	for (guint i = 0; st->drills && i < st->drills->len; i++) {
		struct drill_entry *e = g_ptr_array_index(st->drills, i);
		int64_t hits = st->dev[e->dev].bdev ? dmio_fault_hits(st->dev[e->dev].bdev, e->id) : 0;

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "device");
		json_builder_add_int_value(b, e->dev);
		json_builder_set_member_name(b, "path");
		json_builder_add_string_value(b, st->dev[e->dev].path ? st->dev[e->dev].path : "");
		json_builder_set_member_name(b, "fault");
		json_builder_add_string_value(b, e->desc);
		json_builder_set_member_name(b, "hits");
		json_builder_add_int_value(b, hits > 0 ? hits : 0);
		json_builder_end_object(b);
	}
	g_mutex_unlock(&st->lock);
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	g_object_unref(b);
	return root;
}

int admin_clear_injected(struct store *st, uint32_t dev)
{
	g_mutex_lock(&st->lock);
	for (guint i = st->drills ? st->drills->len : 0; i-- > 0;) {
		struct drill_entry *e = g_ptr_array_index(st->drills, i);

		if (dev != UINT32_MAX && e->dev != dev)
			continue;
		if (st->dev[e->dev].bdev)
			dmio_fault_remove(st->dev[e->dev].bdev, e->id);
		g_ptr_array_remove_index(st->drills, i);
	}
	g_mutex_unlock(&st->lock);
	return 0;
}

void admin_free(struct store *st)
{
	if (st->drills)
		g_ptr_array_free(st->drills, TRUE);
	st->drills = NULL;
}
