/* mkfs.h - making a new file system on a set of devices. */
#ifndef DMIOFS_MKFS_H
#define DMIOFS_MKFS_H

#include <glib.h>
#include <stdint.h>

#include "format.h"

struct format_options {
	uint32_t copies;     /* 0: 2, or 1 with one device */
	const char *label;
	uint64_t meta_bytes; /* 0: default */
	uint32_t uid, gid;   /* owner of the root directory */
	uint32_t root_reserve_permille; /* of the capacity, for root only; 0: none */
};

struct format_report {
	uint8_t fs_uuid[16];
	uint32_t copies, ndevices;
	uint8_t dev_uuid[DMIOFS_MAX_DEVICES][16];
	uint64_t dev_bytes[DMIOFS_MAX_DEVICES];
	uint64_t capacity;   /* usable bytes, every byte stored `copies` times */
	uint64_t root_reserve; /* bytes of the capacity only root may fill */
	struct layout layout;
};

/* The devices must already be vetted (not in use by another file
 * system): this writes superblocks, an empty metadata area and a root
 * directory.  On failure *why names the device and the reason. */
int store_format(const char *const *paths, uint32_t n, const struct format_options *opt,
		 struct format_report *report, GString *why);

#endif
