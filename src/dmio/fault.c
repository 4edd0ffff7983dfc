/* fault.c - fault injection at the device layer: the userspace counterpart
 * of dm-flakey, dm-error and zinject.  Rules on a device match reads, writes
 * or flushes in a sector range; a rule that fires fails the I/O with EIO,
 * drops a write while reporting success, flips bits in data read, or delays
 * the completion.  Rules are set and cleared at run time. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct fault_rule {
	struct fault_rule *next;
	int id;
	struct dmio_fault spec;
	uint64_t matches; /* I/Os that fell in the rule's range and ops */
	uint64_t hits;    /* of those, the ones it acted on */
	GRand *rand;
};

void fault_set_init(struct fault_set *set)
{
	pthread_mutex_init(&set->lock, NULL);
	atomic_store(&set->nrules, 0);
	set->head = NULL;
	set->next_id = 1;
}

static void rule_free(struct fault_rule *rule)
{
	if (rule->rand)
		g_rand_free(rule->rand);
	free(rule);
}

void fault_set_destroy(struct fault_set *set)
{
	dmio_fault_clear_set(set);
	pthread_mutex_destroy(&set->lock);
}

static int rule_validate(const struct dmio_fault *r)
{
	unsigned int all_ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH;

	if (!r->ops || (r->ops & ~all_ops))
		return -EINVAL;
	if (!(r->probability >= 0.0 && r->probability <= 1.0))
		return -EINVAL;
	if (r->sector + r->count < r->sector)
		return -EINVAL;
	switch (r->action) {
	case DMIO_FAULT_EIO:
		return 0;
	case DMIO_FAULT_DROP: /* only what writes data or makes it durable can be dropped */
		return (r->ops & DMIO_FAULT_READ) ? -EINVAL : 0;
	case DMIO_FAULT_CORRUPT:
		return r->ops == DMIO_FAULT_READ ? 0 : -EINVAL;
	case DMIO_FAULT_DELAY:
		return r->delay_ms ? 0 : -EINVAL;
	}
	return -EINVAL;
}

DMIO_EXPORT int dmio_fault_add(struct block_device *bdev, const struct dmio_fault *spec)
{
	struct fault_set *set;
	struct fault_rule *rule, **tail;
	int err;

	if (!bdev || !spec)
		return -EINVAL;
	err = rule_validate(spec);
	if (err)
		return err;
	rule = calloc(1, sizeof(*rule));
	if (!rule)
		return -ENOMEM;
	rule->spec = *spec;
	if (spec->probability > 0.0)
		rule->rand = g_rand_new_with_seed((guint32)(spec->seed ? spec->seed ^ (spec->seed >> 32) : 0x5eed));
	set = &bdev->faults;
	pthread_mutex_lock(&set->lock);
	rule->id = set->next_id++;
	for (tail = &set->head; *tail; tail = &(*tail)->next)
		;
	*tail = rule;
	atomic_fetch_add(&set->nrules, 1);
	pthread_mutex_unlock(&set->lock);
	return rule->id;
}

DMIO_EXPORT int dmio_fault_remove(struct block_device *bdev, int id)
{
	struct fault_set *set;
	struct fault_rule **link, *found = NULL;

	if (!bdev)
		return -EINVAL;
	set = &bdev->faults;
	pthread_mutex_lock(&set->lock);
	for (link = &set->head; *link; link = &(*link)->next) {
		if ((*link)->id == id) {
			found = *link;
			*link = found->next;
			atomic_fetch_sub(&set->nrules, 1);
			break;
		}
	}
	pthread_mutex_unlock(&set->lock);
	if (!found)
		return -ENOENT;
	rule_free(found);
	return 0;
}

void dmio_fault_clear_set(struct fault_set *set)
{
	struct fault_rule *rule;

	pthread_mutex_lock(&set->lock);
	rule = set->head;
	set->head = NULL;
	atomic_store(&set->nrules, 0);
	pthread_mutex_unlock(&set->lock);
	while (rule) {
		struct fault_rule *next = rule->next;

		rule_free(rule);
		rule = next;
	}
}

DMIO_EXPORT void dmio_fault_clear(struct block_device *bdev)
{
	if (bdev)
		dmio_fault_clear_set(&bdev->faults);
}

DMIO_EXPORT int64_t dmio_fault_hits(struct block_device *bdev, int id)
{
	struct fault_set *set;
	struct fault_rule *rule;
	int64_t hits = -ENOENT;

	if (!bdev)
		return -EINVAL;
	set = &bdev->faults;
	pthread_mutex_lock(&set->lock);
	for (rule = set->head; rule; rule = rule->next)
		if (rule->id == id)
			hits = (int64_t)rule->hits;
	pthread_mutex_unlock(&set->lock);
	return hits;
}

/* Does this I/O fall in the rule's ops and range?  Flushes have no range. */
static bool rule_matches(const struct dmio_fault *r, unsigned int op, sector_t sector, sector_t count)
{
	sector_t end;

	if (!(r->ops & op))
		return false;
	if (op == DMIO_FAULT_FLUSH)
		return true;
	end = r->count ? r->sector + r->count : UINT64_MAX;
	return sector < end && sector + count > r->sector;
}

/* Count the match, then decide whether the rule acts on it. */
static bool rule_fires(struct fault_rule *rule)
{
	const struct dmio_fault *r = &rule->spec;
	uint64_t n = ++rule->matches;

	if (n <= r->skip)
		return false;
	if (r->every > 1 && (n - r->skip) % r->every)
		return false;
	if (r->limit && rule->hits >= r->limit)
		return false;
	if (rule->rand && g_rand_double(rule->rand) >= r->probability)
		return false;
	rule->hits++;
	return true;
}

static void apply(const struct dmio_fault *r, sector_t sector, sector_t count, struct fault_verdict *v)
{
	sector_t first, end;

	switch (r->action) {
	case DMIO_FAULT_EIO:
		v->fail = true;
		break;
	case DMIO_FAULT_DROP:
		v->drop = true;
		break;
	case DMIO_FAULT_DELAY:
		if (r->delay_ms > v->delay_ms)
			v->delay_ms = r->delay_ms;
		break;
	case DMIO_FAULT_CORRUPT:
		first = r->sector > sector ? r->sector : sector;
		end = r->count ? r->sector + r->count : UINT64_MAX;
		if (end > sector + count)
			end = sector + count;
		if (v->ncorrupt < FAULT_MAX_CORRUPT) {
			v->corrupt[v->ncorrupt++] = (struct fault_range){ first, end };
		} else { /* too many rules on one piece: widen the last range */
			struct fault_range *last = &v->corrupt[FAULT_MAX_CORRUPT - 1];

			if (first < last->first)
				last->first = first;
			if (end > last->end)
				last->end = end;
		}
		break;
	}
}

void fault_check(struct fault_set *set, unsigned int op, sector_t sector, sector_t count,
		 struct fault_verdict *verdict)
{
	struct fault_rule *rule;

	memset(verdict, 0, sizeof(*verdict));
	if (!atomic_load(&set->nrules))
		return;
	pthread_mutex_lock(&set->lock);
	for (rule = set->head; rule; rule = rule->next)
		if (rule_matches(&rule->spec, op, sector, count) && rule_fires(rule))
			apply(&rule->spec, sector, count, verdict);
	pthread_mutex_unlock(&set->lock);
	if (verdict->fail)
		verdict->drop = false;
}

/* ---- the text form: "action=eio,ops=read+write,sector=8,count=8,every=2" -- */

/* "read+write": every name must be known and none may be empty. */
static int parse_ops(const char *value, unsigned int *ops)
{
	gchar **names = g_strsplit_set(value, "+|/", -1);
	int err = names[0] ? 0 : -EINVAL;

	*ops = 0;
	for (gchar **name = names; *name && !err; name++) {
		if (!strcmp(*name, "read"))
			*ops |= DMIO_FAULT_READ;
		else if (!strcmp(*name, "write"))
			*ops |= DMIO_FAULT_WRITE;
		else if (!strcmp(*name, "flush"))
			*ops |= DMIO_FAULT_FLUSH;
		else if (!strcmp(*name, "all"))
			*ops |= DMIO_FAULT_READ | DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH;
		else
			err = -EINVAL;
	}
	g_strfreev(names);
	return err;
}

static int parse_action(const char *value, enum dmio_fault_action *action)
{
	static const struct {
		const char *name;
		enum dmio_fault_action action;
	} names[] = {
		{ "eio", DMIO_FAULT_EIO },
		{ "error", DMIO_FAULT_EIO },
		{ "drop", DMIO_FAULT_DROP },
		{ "corrupt", DMIO_FAULT_CORRUPT },
		{ "delay", DMIO_FAULT_DELAY },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		if (!strcmp(value, names[i].name)) {
			*action = names[i].action;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_u64(const char *value, uint64_t *out)
{
	char *end;

	bool hex = value[0] == '0' && (value[1] == 'x' || value[1] == 'X');

	/* Decimal, or hexadecimal with 0x: never octal, never signed. */
	if (hex ? !g_ascii_isxdigit(value[2]) : !g_ascii_isdigit(value[0]))
		return -EINVAL;
	errno = 0;
	*out = strtoull(value, &end, hex ? 16 : 10);
	return (errno || *end) ? -EINVAL : 0;
}

static int parse_uint(const char *value, unsigned int *out)
{
	uint64_t v;
	int err = parse_u64(value, &v);

	if (err || v > UINT32_MAX)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

static int parse_probability(const char *value, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(value, &end);
	if (errno || *end || !*value || isnan(*out) || *out < 0.0 || *out > 1.0)
		return -EINVAL;
	return 0;
}

static int parse_pair(const char *key, const char *value, struct dmio_fault *r)
{
	if (!strcmp(key, "action"))
		return parse_action(value, &r->action);
	if (!strcmp(key, "ops"))
		return parse_ops(value, &r->ops);
	if (!strcmp(key, "sector"))
		return parse_u64(value, &r->sector);
	if (!strcmp(key, "count"))
		return parse_u64(value, &r->count);
	if (!strcmp(key, "skip"))
		return parse_uint(value, &r->skip);
	if (!strcmp(key, "every"))
		return parse_uint(value, &r->every);
	if (!strcmp(key, "probability") || !strcmp(key, "prob"))
		return parse_probability(value, &r->probability);
	if (!strcmp(key, "limit"))
		return parse_uint(value, &r->limit);
	if (!strcmp(key, "delay") || !strcmp(key, "delay_ms"))
		return parse_uint(value, &r->delay_ms);
	if (!strcmp(key, "seed"))
		return parse_u64(value, &r->seed);
	return -EINVAL;
}

DMIO_EXPORT int dmio_fault_parse(const char *spec, struct dmio_fault *rule)
{
	struct dmio_fault r = { 0 };
	gchar **items;
	int err = 0;

	if (!spec || !rule || !*spec)
		return -EINVAL;
	items = g_strsplit(spec, ",", -1);
	for (gchar **item = items; *item && !err; item++) {
		char *eq = strchr(*item, '=');

		if (!eq || eq == *item) {
			err = -EINVAL;
			break;
		}
		*eq = '\0';
		err = parse_pair(*item, eq + 1, &r);
	}
	g_strfreev(items);
	if (err)
		return err;
	if (!r.ops) /* ops not given: the action says which make sense */
		r.ops = r.action == DMIO_FAULT_CORRUPT ? DMIO_FAULT_READ
			: r.action == DMIO_FAULT_DROP  ? DMIO_FAULT_WRITE
						       : DMIO_FAULT_READ | DMIO_FAULT_WRITE;
	err = rule_validate(&r);
	if (err)
		return err;
	*rule = r;
	return 0;
}
