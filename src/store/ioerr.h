/* ioerr.h - counting I/O errors per device and per file, persistently:
 * the same counters whether live I/O or a scrub found the error. */
#ifndef DMIOFS_IOERR_H
#define DMIOFS_IOERR_H

#include <stdint.h>

#include "store.h"

enum io_op { IO_OP_NONE, IO_OP_READ, IO_OP_WRITE };

/* Count `kind` (ERR_*) on device dev (or none: UINT32_MAX) and on inode
 * ino (0: none), remembering bits as the file's last dm-io error bits.
 * Takes the store lock unless locked is true. */
void ioerr_note(struct store *st, bool locked, uint64_t ino, uint32_t dev, int kind, enum io_op op,
		uint32_t chunk, unsigned long bits);
/* Lock held: mark a device failed after a data write it could not take,
 * into the records of the write (its error is counted by ioerr_note). */
void ioerr_fail_device(struct store *st, uint32_t dev, GByteArray *records);
/* Lock held: the written devices of bits (by index) could not take a
 * metadata write (`what`, for the log) of the commit or checkpoint
 * left_at: count it and fail them. */
void ioerr_fail_devices(struct store *st, unsigned long bits, uint64_t left_at, const char *what);

#endif
