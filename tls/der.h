/*
 * tls/der.h - a small strict DER reader and writer, internal to tls/.
 *
 * The reader walks a buffer one TLV at a time and never reads outside it:
 * definite lengths only, minimal length encodings only, single-byte tags
 * only. Everything it hands back points into the caller's buffer. The writer
 * appends TLVs to a caller-owned buffer and remembers an overflow instead of
 * failing at every call, so encoders check once at the end.
 *
 * Used by tls/cert.c (certificate and CSR parsing) and tls/pki.c (names,
 * extensions and key containers for generation). Pure functions on caller
 * memory: any thread.
 */
#ifndef VOUCH_TLS_DER_H
#define VOUCH_TLS_DER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Universal and context tags used by X.509, PKCS#8 and PKCS#10. */
enum {
	TLS_DER_BOOLEAN = 0x01,
	TLS_DER_INTEGER = 0x02,
	TLS_DER_BIT_STRING = 0x03,
	TLS_DER_OCTET_STRING = 0x04,
	TLS_DER_NULL = 0x05,
	TLS_DER_OID = 0x06,
	TLS_DER_UTF8_STRING = 0x0c,
	TLS_DER_PRINTABLE_STRING = 0x13,
	TLS_DER_T61_STRING = 0x14,
	TLS_DER_IA5_STRING = 0x16,
	TLS_DER_UTC_TIME = 0x17,
	TLS_DER_GENERALIZED_TIME = 0x18,
	TLS_DER_UNIVERSAL_STRING = 0x1c,
	TLS_DER_BMP_STRING = 0x1e,
	TLS_DER_SEQUENCE = 0x30,
	TLS_DER_SET = 0x31,
	TLS_DER_CTX0 = 0xa0, /* [0] constructed */
	TLS_DER_CTX1 = 0xa1,
	TLS_DER_CTX3 = 0xa3,
};

/* A cursor over a run of TLVs: [p, end). */
struct tls_der {
	const uint8_t *p;
	const uint8_t *end;
};

/* One element: tag, the whole TLV [tlv, tlv + tlv_len) and its value. */
struct tls_tlv {
	uint8_t tag;
	const uint8_t *tlv;
	size_t tlv_len;
	const uint8_t *val;
	size_t len;
};

static inline void tls_der_init(struct tls_der *d, const uint8_t *p, size_t n)
{
	d->p = p;
	d->end = p + n;
}

/* Step into a constructed element: the cursor then walks its children. */
static inline void tls_der_enter(struct tls_der *d, const struct tls_tlv *t)
{
	d->p = t->val;
	d->end = t->val + t->len;
}

static inline bool tls_der_more(const struct tls_der *d)
{
	return d->p < d->end;
}

/*
 * tls_der_next - read the next TLV at the cursor and advance past it.
 * Returns 0, -ENOENT at the end of the run, -EINVAL on malformed input
 * (truncation, indefinite or non-minimal length, multi-byte tag).
 */
int tls_der_next(struct tls_der *d, struct tls_tlv *t);

/*
 * tls_der_expect - like tls_der_next() but the element must carry `tag`.
 * Returns 0 or -EINVAL (also at the end of the run).
 */
int tls_der_expect(struct tls_der *d, uint8_t tag, struct tls_tlv *t);

/*
 * tls_der_peek - 1 if the next element exists and carries `tag`, else 0.
 * Does not validate or advance.
 */
int tls_der_peek(const struct tls_der *d, uint8_t tag);

/* 1 if the OID element `t` has exactly the encoded body `oid` (n bytes). */
bool tls_der_oid_is(const struct tls_tlv *t, const uint8_t *oid, size_t n);

/* Writer over a caller buffer; `overflow` is sticky. */
struct tls_derw {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool overflow;
};

static inline void tls_derw_init(struct tls_derw *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

/* Append raw bytes (an already encoded element). */
void tls_derw_raw(struct tls_derw *w, const void *p, size_t n);

/* Append one primitive TLV. */
void tls_derw_tlv(struct tls_derw *w, uint8_t tag, const void *val, size_t n);

/*
 * Constructed elements: remember tls_derw_begin()'s mark, append the
 * children, then tls_derw_end() slides them up and writes the header.
 */
size_t tls_derw_begin(struct tls_derw *w);
void tls_derw_end(struct tls_derw *w, uint8_t tag, size_t mark);

/* Append an INTEGER from unsigned big-endian magnitude bytes. */
void tls_derw_uint(struct tls_derw *w, const uint8_t *mag, size_t n);

/* Result: the encoded length, or -ENOSPC if anything did not fit. */
static inline int tls_derw_result(const struct tls_derw *w)
{
	return w->overflow ? -ENOSPC : (int)w->len;
}

#endif
