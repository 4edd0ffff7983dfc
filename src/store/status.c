/* status.c - the typed status and its renderings (status.h). */
#include <string.h>

#include "apply.h"
#include "scrub.h"
#include "status.h"

static const char *const count_keys[ERR_KINDS] = {
	[ERR_READ] = "read_errors",
	[ERR_WRITE] = "write_errors",
	[ERR_FLUSH] = "flush_errors",
	[ERR_CSUM] = "checksum_errors",
	[ERR_REPAIRED] = "repaired",
};

static const char *leave_name(uint32_t reason)
{
	static const char *const names[] = { "no", "replaced", "removed", "lost" };

	return reason < G_N_ELEMENTS(names) ? names[reason] : "no";
}

static void device_status(struct store *st, uint32_t k, struct dev_status *d)
{
	const struct sdev *sd = &st->dev[k];

	d->index = k;
	d->state = sd->state;
	d->present = sd->bdev != NULL;
	d->path = g_strdup(sd->path);
	uuid_format(st->sb.devs[k].uuid, d->uuid);
	d->size = st->sb.devs[k].bytes;
	d->used = alloc_dev_used_bytes(&st->alloc, k);
	d->stale = st->alloc.dev_stale[k] * DMIOFS_BLOCK;
	d->left_at = sd->left_at;
	d->leaving = sd->leaving;
	memcpy(d->count, sd->err.count, sizeof(d->count));
	d->remote = sd->bdev ? dmio_bdev_is_remote(sd->bdev) : sd->path && dmio_bdev_path_is_remote(sd->path);
	d->connected = sd->bdev && dmio_bdev_is_connected(sd->bdev);
	d->write_mostly = st->write_mostly & (1u << k);
	if (sd->bdev) {
		struct dmio_bdev_stats stats;

		dmio_bdev_get_stats(sd->bdev, &stats);
		d->read_latency_us = stats.read_latency_us;
	}
}

void store_status(struct store *st, struct fs_status *s)
{
	uint64_t total, avail;

	memset(s, 0, sizeof(*s));
	g_mutex_lock(&st->lock);
	alloc_space(&st->alloc, &total, &avail);
	uuid_format(st->sb.fs_uuid, s->uuid);
	s->label = g_strdup(st->sb.label);
	s->copies = st->copies;
	s->capacity = total * DMIOFS_BLOCK;
	s->used = (total - avail) * DMIOFS_BLOCK;
	s->free = avail * DMIOFS_BLOCK;
	s->root_reserve = alloc_root_reserve(&st->alloc, st->sb.root_reserve_permille) * DMIOFS_BLOCK;
	s->files = st->meta.nfiles;
	s->meta_used = store_meta_bytes(st);
	s->meta_capacity = st->layout.ckpt_bytes;
	s->generation = st->durable_seq;
	s->read_only = st->opt.read_only;
	mender_progress(st, &s->task);
	s->scrub = st->scrub;
	s->scrub_total = scrub_total_bytes(st);
	for (uint32_t k = 0; k < st->ndevices; k++) {
		if (st->dev[k].state == DEV_REMOVED)
			continue;
		device_status(st, k, &s->dev[s->ndev++]);
		s->devices++;
		if (st->dev[k].state == DEV_HEALTHY && st->dev[k].bdev)
			s->healthy++;
		else
			s->degraded = true;
		for (int kind = ERR_READ; kind <= ERR_CSUM; kind++)
			s->errors |= st->dev[k].err.count[kind] != 0;
	}
	g_mutex_unlock(&st->lock);
}

void fs_status_clear(struct fs_status *s)
{
	for (uint32_t i = 0; i < s->ndev; i++)
		g_free(s->dev[i].path);
	g_free(s->label);
	memset(s, 0, sizeof(*s));
}

const char *status_health(const struct fs_status *s)
{
	return s->degraded ? "degraded" : s->errors ? "errors" : "healthy";
}

/* What names a device that is not here: the path it was last seen at, or
 * its identity. */
static const char *device_name(const struct dev_status *d)
{
	return d->path ? d->path : d->uuid;
}

/* ---- JSON ---------------------------------------------------------------------- */

static void json_uint(JsonBuilder *b, const char *name, uint64_t v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, (gint64)v);
}

static void json_str(JsonBuilder *b, const char *name, const char *v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_string_value(b, v);
}

static void json_bool(JsonBuilder *b, const char *name, bool v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_boolean_value(b, v);
}

static void json_scrub(JsonBuilder *b, const struct fs_status *s)
{
	const struct rec_scrub *r = &s->scrub;

	json_builder_begin_object(b);
	json_str(b, "state", scrub_state_name(r->state));
	json_str(b, "last_result", scrub_result_name(r->result));
	json_uint(b, "started", r->started);
	json_uint(b, "ended", r->ended);
	json_uint(b, "rate_limit", r->rate);
	json_uint(b, "checked", r->checked);
	json_uint(b, "total", s->scrub_total);
	json_uint(b, "found", r->found);
	json_uint(b, "fixed", r->fixed);
	json_uint(b, "unfixed", r->unfixed);
	json_builder_end_object(b);
}

JsonNode *scrub_to_json(const struct fs_status *s)
{
	JsonBuilder *b = json_builder_new();
	JsonNode *root;

	json_scrub(b, s);
	root = json_builder_get_root(b);
	g_object_unref(b);
	return root;
}

static void json_task(JsonBuilder *b, const struct mend_progress *t)
{
	json_builder_set_member_name(b, "task");
	json_builder_begin_object(b);
	json_str(b, "name", mend_task_name(t->task));
	json_uint(b, "done", t->done_bytes);
	json_uint(b, "total", t->total_bytes);
	json_uint(b, "copied", t->copied_bytes);
	json_builder_set_member_name(b, "rate");
	json_builder_add_double_value(b, t->rate);
	json_builder_set_member_name(b, "eta");
	if (t->eta < 0)
		json_builder_add_null_value(b);
	else
		json_builder_add_double_value(b, t->eta);
	json_builder_end_object(b);
}

static void json_device(JsonBuilder *b, const struct dev_status *d)
{
	json_builder_begin_object(b);
	json_uint(b, "index", d->index);
	json_str(b, "state", dev_state_name(d->state));
	json_bool(b, "present", d->present);
	json_uint(b, "size", d->size);
	json_uint(b, "used", d->used);
	json_uint(b, "stale", d->stale);
	for (int k = 0; k < ERR_KINDS; k++)
		json_uint(b, count_keys[k], d->count[k]);
	json_uint(b, "left_at", d->left_at);
	json_str(b, "leaving", leave_name(d->leaving));
	json_bool(b, "remote", d->remote);
	if (d->remote)
		json_bool(b, "connected", d->connected);
	json_bool(b, "write_mostly", d->write_mostly);
	json_uint(b, "read_latency_us", d->read_latency_us);
	json_str(b, "uuid", d->uuid);
	json_builder_set_member_name(b, "path");
	if (d->path)
		json_builder_add_string_value(b, d->path);
	else
		json_builder_add_null_value(b);
	json_builder_end_object(b);
}

JsonNode *status_to_json(const struct fs_status *s)
{
	JsonBuilder *b = json_builder_new();
	JsonNode *root;

	json_builder_begin_object(b);
	json_str(b, "status", status_health(s));
	json_str(b, "uuid", s->uuid);
	json_str(b, "label", s->label ? s->label : "");
	json_uint(b, "copies", s->copies);
	json_uint(b, "device_count", s->devices);
	json_uint(b, "healthy_devices", s->healthy);
	json_uint(b, "capacity", s->capacity);
	json_uint(b, "used", s->used);
	json_uint(b, "free", s->free);
	json_uint(b, "root_reserve", s->root_reserve);
	json_uint(b, "files", s->files);
	json_uint(b, "metadata_used", s->meta_used);
	json_uint(b, "metadata_capacity", s->meta_capacity);
	json_uint(b, "generation", s->generation);
	json_bool(b, "read_only", s->read_only);
	json_builder_set_member_name(b, "missing");
	json_builder_begin_array(b);
	for (uint32_t i = 0; i < s->ndev; i++)
		if (!s->dev[i].present)
			json_builder_add_string_value(b, device_name(&s->dev[i]));
	json_builder_end_array(b);
	json_task(b, &s->task);
	json_builder_set_member_name(b, "scrub");
	json_scrub(b, s);
	json_builder_set_member_name(b, "devices");
	json_builder_begin_array(b);
	for (uint32_t i = 0; i < s->ndev; i++)
		json_device(b, &s->dev[i]);
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	g_object_unref(b);
	return root;
}

/* ---- xattr text ------------------------------------------------------------------- */

void status_to_text(const struct fs_status *s, GString *out)
{
	const struct mend_progress *t = &s->task;
	bool first = true;

	g_string_append_printf(out,
			       "status=%s\nuuid=%s\nlabel=%s\ncopies=%u\ndevices=%u\nhealthy_devices=%u\n"
			       "capacity=%llu\nused=%llu\nfree=%llu\nroot_reserve=%llu\nfiles=%llu\nmetadata_used=%llu\n"
			       "metadata_capacity=%llu\ngeneration=%llu\nread_only=%s\n",
			       status_health(s), s->uuid, s->label ? s->label : "", s->copies, s->devices, s->healthy,
			       (unsigned long long)s->capacity, (unsigned long long)s->used, (unsigned long long)s->free,
			       (unsigned long long)s->root_reserve, (unsigned long long)s->files, (unsigned long long)s->meta_used,
			       (unsigned long long)s->meta_capacity, (unsigned long long)s->generation,
			       s->read_only ? "yes" : "no");
	g_string_append(out, "missing=");
	for (uint32_t i = 0; i < s->ndev; i++)
		if (!s->dev[i].present) {
			g_string_append_printf(out, "%s%s", first ? "" : ",", device_name(&s->dev[i]));
			first = false;
		}
	g_string_append_printf(out, "\ntask=%s\ntask_done=%llu\ntask_total=%llu\ntask_rate=%.0f\n", mend_task_name(t->task),
			       (unsigned long long)t->done_bytes, (unsigned long long)t->total_bytes, t->rate);
	if (t->eta >= 0)
		g_string_append_printf(out, "task_eta=%.0f\n", t->eta);
	else
		g_string_append(out, "task_eta=\n");
	g_string_append_printf(out,
			       "scrub=%s\nscrub_last_result=%s\nscrub_checked=%llu\nscrub_total=%llu\nscrub_found=%llu\n"
			       "scrub_fixed=%llu\nscrub_unfixed=%llu\n",
			       scrub_state_name(s->scrub.state), scrub_result_name(s->scrub.result),
			       (unsigned long long)s->scrub.checked, (unsigned long long)s->scrub_total,
			       (unsigned long long)s->scrub.found, (unsigned long long)s->scrub.fixed,
			       (unsigned long long)s->scrub.unfixed);
}

void devices_to_text(const struct fs_status *s, GString *out)
{
	for (uint32_t i = 0; i < s->ndev; i++) {
		const struct dev_status *d = &s->dev[i];

		g_string_append_printf(out, "device=%u state=%s present=%s size=%llu used=%llu stale=%llu", d->index,
				       dev_state_name(d->state), d->present ? "yes" : "no", (unsigned long long)d->size,
				       (unsigned long long)d->used, (unsigned long long)d->stale);
		for (int k = 0; k < ERR_KINDS; k++)
			g_string_append_printf(out, " %s=%llu", count_keys[k], (unsigned long long)d->count[k]);
		g_string_append_printf(out, " left_at=%llu leaving=%s", (unsigned long long)d->left_at,
				       leave_name(d->leaving));
		if (d->remote)
			g_string_append_printf(out, " remote=yes connected=%s", d->connected ? "yes" : "no");
		g_string_append_printf(out, " write_mostly=%s read_latency_us=%llu uuid=%s path=%s\n",
				       d->write_mostly ? "yes" : "no", (unsigned long long)d->read_latency_us, d->uuid,
				       d->path ? d->path : "");
	}
}
