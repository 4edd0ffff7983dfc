/* size.h - sizes and shares as people write them: 64M, 1G, 4096; 5, 0.5. */
#ifndef DMIOFS_SIZE_H
#define DMIOFS_SIZE_H

#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>

/* Bytes, with an optional K, M, G or T suffix (powers of 1024). */
static inline int parse_size(const char *s, uint64_t *out)
{
	char *end;
	guint64 v;
	int shift = 0;

	if (!g_ascii_isdigit(*s))
		return -EINVAL;
	errno = 0;
	v = g_ascii_strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (g_ascii_toupper(*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: break;
	}
	if ((*end == 'i' || *end == 'I') && shift)
		end++;
	if ((*end == 'B' || *end == 'b') && end[-1] != *end)
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

/* A percentage with at most one decimal, as mkfs.ext4 -m takes it (5,
 * 0.5, 12.5; a trailing % is allowed), in thousandths. */
static inline int parse_percent_permille(const char *s, uint32_t *out)
{
	uint32_t whole = 0, tenths = 0;

	if (!g_ascii_isdigit(*s))
		return -EINVAL;
	while (g_ascii_isdigit(*s)) {
		whole = whole * 10 + (uint32_t)(*s++ - '0');
		if (whole > 100)
			return -EINVAL;
	}
	if (*s == '.') {
		s++;
		if (!g_ascii_isdigit(*s))
			return -EINVAL;
		tenths = (uint32_t)(*s++ - '0');
	}
	if (*s == '%')
		s++;
	if (*s || whole * 10 + tenths > 1000)
		return -EINVAL;
	*out = whole * 10 + tenths;
	return 0;
}

#endif
