/* check.h - checking every invariant of a file system (fsck.dmiofs). */
#ifndef DMIOFS_CHECK_H
#define DMIOFS_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* The passes, numbered in the order they run.  The data pass comes first
 * because it is nearly all the time a check takes: fsck front ends
 * (fsck(8), systemd-fsck) draw their bars with e2fsck's weights, which
 * give pass 1 the first 70%. */
enum check_pass {
	CHECK_PASS_DATA = 1,  /* every copy of every block: blocks */
	CHECK_PASS_NAMES = 2, /* the tree from the root: directories */
	CHECK_PASS_LINKS = 3, /* reachability and link counts: inodes */
};

struct check_report {
	uint64_t problems;  /* found */
	uint64_t degraded;  /* of those, devices missing, failed or returning: not for fsck to fix */
	uint64_t repaired;  /* of those, fixed */
	uint64_t inodes, directories, extents, blocks_checked;
	bool canceled;      /* stopped early (options.stop): the passes after it did not run */
};

/* How to check, and where the report goes.  Every callback may be NULL. */
struct check_options {
	bool repair;  /* fix what can be fixed (st is open read-write) */
	bool verbose; /* notes on what is not a problem, besides the problems */
	/* One line of the report, without its newline: "problem: ...",
	 * "  repaired: ..." or "note: ...". */
	void (*say)(void *ctx, const char *line);
	/* Pass `pass` has done `done` of `total` units (see enum check_pass);
	 * called at its start, as it goes, and at its end. */
	void (*progress)(void *ctx, enum check_pass pass, uint64_t done, uint64_t total);
	/* Asked between steps: true ends the check there (rep->canceled). */
	bool (*stop)(void *ctx);
	void *ctx;
};

/* Check st (opened read-only unless opt->repair), reporting each problem
 * through opt->say, by the paths of the files it touches.  With repair,
 * fix what can be fixed.  0, or a negative errno when the check itself
 * could not run. */
int store_check(struct store *st, const struct check_options *opt, struct check_report *rep);

#endif
