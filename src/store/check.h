/* check.h - checking every invariant of a file system (fsck.dmiofs). */
#ifndef DMIOFS_CHECK_H
#define DMIOFS_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct check_report {
	uint64_t problems;  /* found */
	uint64_t degraded;  /* of those, devices missing, failed or returning: not for fsck to fix */
	uint64_t repaired;  /* of those, fixed */
	uint64_t inodes, directories, extents, blocks_checked;
};

/* Check st (opened read-only unless repair), printing each problem to
 * out.  With repair, fix what can be fixed.  0, or a negative errno when
 * the check itself could not run. */
int store_check(struct store *st, bool repair, bool verbose, FILE *out, struct check_report *rep);

#endif
