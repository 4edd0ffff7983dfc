/* readpath.h - plans that read mapped blocks with verification and
 * fail-over (readpath.c); shared by reads and by writes that must merge
 * with old data. */
#ifndef DMIOFS_READPATH_H
#define DMIOFS_READPATH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct rplan;

/* Blocks of one extent in one chunk, read into dst. */
struct rrun {
	struct rplan *plan;
	uint64_t fblock;
	uint32_t n, chunk, cblock;
	uint32_t *csums;
	uint32_t ncopies;
	struct rec_stripe stripes[DMIOFS_MAX_COPIES];
	uint32_t tried, bad, cur; /* copies tried, found bad, being read */
	uint32_t stale;           /* copies that miss some of these blocks: never read */
	uint8_t *dst;
	uint64_t *good;           /* blocks of dst verified (a bitmap) */
	uint32_t ngood;
	uint8_t *spare;           /* later copies are read here, good blocks taken over */
	struct page_list pl;      /* a single-page run read by page list */
};

struct rplan {
	struct store *st;
	uint64_t ino;
	uint32_t nruns;
	struct rrun *runs;
	atomic_uint pending;
	bool failed; /* some run found no good copy */
	bool pages;  /* read through page lists (the runs are single pages) */
	void (*done)(struct rplan *p);
	void *ctx;
};

struct rplan *rplan_new(struct store *st, uint64_t ino);
void rplan_free(struct rplan *p);
/* Lock held: plan reading [fblock, fblock + n) of in into dst; holes are
 * zeroed now. */
void rplan_add(struct rplan *p, struct dinode *in, uint64_t fblock, uint64_t n, uint8_t *dst);
/* Read every run; p->done runs once all have finished. */
void rplan_start(struct rplan *p);
bool rplan_stale(struct rplan *p);

#endif
