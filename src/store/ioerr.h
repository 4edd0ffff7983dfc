/* ioerr.h - counting I/O errors per device and per file, persistently:
 * the same counters whether live I/O or a scrub found the error. */
#ifndef DMIOFS_IOERR_H
#define DMIOFS_IOERR_H

#include <stdint.h>

#include "store.h"

enum io_op { IO_OP_NONE, IO_OP_READ, IO_OP_WRITE };

/* What I/O met, and where. */
struct io_fault {
	int kind;           /* ERR_*: what is counted (ERR_REPAIRED: a copy made good) */
	uint32_t dev;       /* the device it is counted on (UINT32_MAX: none) */
	uint64_t ino;       /* the file it is counted on (0: none) */
	uint64_t fblock;    /* the file's blocks [fblock, fblock + n) */
	uint32_t n;
	enum io_op op;      /* the I/O that failed, for the file's record */
	uint32_t chunk;
	unsigned long bits; /* its dm-io error bits, by copy of the chunk */
};

/* Count the fault on its device and file (records), and say it in the
 * log with the device, the file's path and the bytes (a few lines a
 * second at most; the rest are counted in the next line).  Takes the
 * store lock unless locked is true. */
void ioerr_note(struct store *st, bool locked, const struct io_fault *f);
/* Lock held: mark a device failed after a data write it could not take,
 * into the records of the write (its error is counted by ioerr_note). */
void ioerr_fail_device(struct store *st, uint32_t dev, GByteArray *records);
/* Lock held: device dev, an NBD export, lost its connection while no
 * write was failing on it (an idle mount): fail it now, so status says
 * so and it is reconnected and caught up, rather than at its next write.
 * No error is counted: nothing was refused. */
void ioerr_fail_disconnected(struct store *st, uint32_t dev);

/* Lock held: the written devices of bits (by index) could not take a
 * metadata write (`what`, for the log) of the commit or checkpoint
 * left_at: count it and fail them. */
void ioerr_fail_devices(struct store *st, unsigned long bits, uint64_t left_at, const char *what);

/* Lock held: the errors held back from the log by its rate limit, once
 * the second they came in is over (the committer asks at every wake, and
 * wakes for it), so a burst that ends is still counted in the log. */
void ioerr_say_held_back(struct store *st);

/* Lock held: a file's path, for a person ("inode N" when it has no
 * name); g_free it. */
char *ioerr_file_name(struct store *st, uint64_t ino);

/* Lock held: may another fault line be logged now (at most 5 a second)?
 * *held_back says how many were held back before it, to be said with it. */
bool ioerr_log_allowed(struct store *st, unsigned int *held_back);

#endif
