/*
 * tls/der.c - strict DER reader and a small DER writer (see tls/der.h).
 *
 * The reader is the bottom of the certificate parser that runs on every new
 * device certificate, so it is written to be fuzzed: every length is checked
 * against the remaining bytes before it is used, and nothing is read past
 * `end`.
 */
#include "tls/der.h"

#include <errno.h>
#include <string.h>

/* See tls/der.h. Pure; any thread. */
int tls_der_next(struct tls_der *d, struct tls_tlv *t)
{
	const uint8_t *p = d->p;
	size_t avail, len, nlen;

	if (p >= d->end)
		return -ENOENT;
	avail = (size_t)(d->end - p);
	if (avail < 2)
		return -EINVAL;
	t->tag = p[0];
	/* High tag numbers (low five bits all set) never occur in our formats. */
	if ((t->tag & 0x1f) == 0x1f)
		return -EINVAL;
	if (p[1] < 0x80) {
		len = p[1];
		nlen = 0;
	} else {
		nlen = p[1] & 0x7f;
		/* 0x80 is the BER indefinite form; more than 4 bytes is absurd here. */
		if (nlen == 0 || nlen > 4 || avail < 2 + nlen)
			return -EINVAL;
		/* DER: minimal length octets, no leading zero, no long form < 128. */
		if (p[2] == 0)
			return -EINVAL;
		len = 0;
		for (size_t i = 0; i < nlen; i++)
			len = (len << 8) | p[2 + i];
		if (len < 0x80)
			return -EINVAL;
	}
	if (len > avail - 2 - nlen)
		return -EINVAL;
	t->tlv = p;
	t->val = p + 2 + nlen;
	t->len = len;
	t->tlv_len = 2 + nlen + len;
	d->p = t->val + len;
	return 0;
}

/* See tls/der.h. Pure; any thread. */
int tls_der_expect(struct tls_der *d, uint8_t tag, struct tls_tlv *t)
{
	int rc = tls_der_next(d, t);

	if (rc < 0 || t->tag != tag)
		return -EINVAL;
	return 0;
}

/* See tls/der.h. Pure; any thread. */
int tls_der_peek(const struct tls_der *d, uint8_t tag)
{
	return d->p < d->end && d->p[0] == tag;
}

/* See tls/der.h. Pure; any thread. */
bool tls_der_oid_is(const struct tls_tlv *t, const uint8_t *oid, size_t n)
{
	return t->tag == TLS_DER_OID && t->len == n && memcmp(t->val, oid, n) == 0;
}

static size_t hdr_len(size_t n)
{
	if (n < 0x80)
		return 2;
	if (n <= 0xff)
		return 3;
	if (n <= 0xffff)
		return 4;
	if (n <= 0xffffff)
		return 5;
	return 6;
}

static void put_hdr(uint8_t *p, uint8_t tag, size_t n)
{
	size_t h = hdr_len(n);

	p[0] = tag;
	if (h == 2) {
		p[1] = (uint8_t)n;
		return;
	}
	p[1] = (uint8_t)(0x80 | (h - 2));
	for (size_t i = h - 1; i >= 2; i--) {
		p[i] = (uint8_t)n;
		n >>= 8;
	}
}

/* See tls/der.h. Caller's buffer; any thread. */
void tls_derw_raw(struct tls_derw *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/* See tls/der.h. Caller's buffer; any thread. */
void tls_derw_tlv(struct tls_derw *w, uint8_t tag, const void *val, size_t n)
{
	size_t h = hdr_len(n);

	if (w->overflow || h + n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	put_hdr(w->buf + w->len, tag, n);
	if (n)
		memcpy(w->buf + w->len + h, val, n);
	w->len += h + n;
}

/* See tls/der.h. Caller's buffer; any thread. */
size_t tls_derw_begin(struct tls_derw *w)
{
	return w->len;
}

/* See tls/der.h. Caller's buffer; any thread. */
void tls_derw_end(struct tls_derw *w, uint8_t tag, size_t mark)
{
	size_t n, h;

	if (w->overflow)
		return;
	n = w->len - mark;
	h = hdr_len(n);
	if (h > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memmove(w->buf + mark + h, w->buf + mark, n);
	put_hdr(w->buf + mark, tag, n);
	w->len += h;
}

/* See tls/der.h. Caller's buffer; any thread. */
void tls_derw_uint(struct tls_derw *w, const uint8_t *mag, size_t n)
{
	uint8_t tmp[1 + 64];

	while (n > 1 && mag[0] == 0) {
		mag++;
		n--;
	}
	if (n == 0 || n > 64) {
		w->overflow = true;
		return;
	}
	/* A set top bit would read as negative: prefix a zero octet. */
	tmp[0] = 0;
	memcpy(tmp + 1, mag, n);
	if (mag[0] & 0x80)
		tls_derw_tlv(w, TLS_DER_INTEGER, tmp, n + 1);
	else
		tls_derw_tlv(w, TLS_DER_INTEGER, tmp + 1, n);
}
