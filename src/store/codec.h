/* codec.h - little-endian encoding of on-disk structures into byte
 * buffers, with overflow tracking instead of per-call checks. */
#ifndef DMIOFS_CODEC_H
#define DMIOFS_CODEC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct wbuf {
	uint8_t *p, *end;
	bool overflow;
};

struct rbuf {
	const uint8_t *p, *end;
	bool overflow; /* a read ran past the end: the input is malformed */
};

static inline struct wbuf wbuf_init(void *buf, size_t len)
{
	return (struct wbuf){ buf, (uint8_t *)buf + len, false };
}

static inline struct rbuf rbuf_init(const void *buf, size_t len)
{
	return (struct rbuf){ buf, (const uint8_t *)buf + len, false };
}

static inline bool wbuf_room(struct wbuf *w, size_t n)
{
	if (w->overflow || (size_t)(w->end - w->p) < n) {
		w->overflow = true;
		return false;
	}
	return true;
}

static inline bool rbuf_room(struct rbuf *r, size_t n)
{
	if (r->overflow || (size_t)(r->end - r->p) < n) {
		r->overflow = true;
		return false;
	}
	return true;
}

static inline void put_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (wbuf_room(w, n)) {
		memcpy(w->p, src, n);
		w->p += n;
	}
}

static inline void put_u8(struct wbuf *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static inline void put_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	put_bytes(w, b, 2);
}

static inline void put_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(w, b, 4);
}

static inline void put_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(w, b, 8);
}

/* A length-prefixed (u16) byte string. */
static inline void put_str(struct wbuf *w, const char *s, size_t len)
{
	put_u16(w, (uint16_t)len);
	put_bytes(w, s, len);
}

static inline void put_zeros(struct wbuf *w, size_t n)
{
	if (wbuf_room(w, n)) {
		memset(w->p, 0, n);
		w->p += n;
	}
}

static inline void get_bytes(struct rbuf *r, void *dst, size_t n)
{
	if (rbuf_room(r, n)) {
		memcpy(dst, r->p, n);
		r->p += n;
	} else {
		memset(dst, 0, n);
	}
}

static inline uint8_t get_u8(struct rbuf *r)
{
	uint8_t v;

	get_bytes(r, &v, 1);
	return v;
}

static inline uint16_t get_u16(struct rbuf *r)
{
	uint8_t b[2];

	get_bytes(r, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t get_u32(struct rbuf *r)
{
	uint8_t b[4];
	uint32_t v = 0;

	get_bytes(r, b, 4);
	for (int i = 3; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static inline uint64_t get_u64(struct rbuf *r)
{
	uint8_t b[8];
	uint64_t v = 0;

	get_bytes(r, b, 8);
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* A u16-length string, pointing into the buffer (not terminated). */
static inline const char *get_str(struct rbuf *r, size_t *len)
{
	const char *s;

	*len = get_u16(r);
	if (!rbuf_room(r, *len)) {
		*len = 0;
		return "";
	}
	s = (const char *)r->p;
	r->p += *len;
	return s;
}

static inline void skip_bytes(struct rbuf *r, size_t n)
{
	if (rbuf_room(r, n))
		r->p += n;
}

#endif
