/*
 * tls/cert.c - X.509 and PKCS#10 parsing, certificate IDs, signature
 * checks, PEM, hex and time helpers (API in tls/cert.h).
 *
 * The structure walk is our own strict DER reader (tls/der.c) so that the
 * parse is allocation-free, bounded and hands back spans into the caller's
 * buffer; wolfCrypt does the arithmetic: SHA-256 for certificate IDs, public
 * key decoding and RSA / ECDSA signature verification.
 */
#include "tls/cert.h"
#include "tls/cert-int.h"
#include "tls/der.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/signature.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Encoded OID bodies. */
static const uint8_t oid_cn[] = { 0x55, 0x04, 0x03 };
static const uint8_t oid_o[] = { 0x55, 0x04, 0x0a };
static const uint8_t oid_ou[] = { 0x55, 0x04, 0x0b };
static const uint8_t oid_rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const uint8_t oid_ec[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const uint8_t oid_p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t oid_p521[] = { 0x2b, 0x81, 0x04, 0x00, 0x23 };
static const uint8_t oid_ed25519[] = { 0x2b, 0x65, 0x70 };
static const uint8_t oid_ed448[] = { 0x2b, 0x65, 0x71 };
static const uint8_t oid_ext_skid[] = { 0x55, 0x1d, 0x0e };
static const uint8_t oid_ext_ku[] = { 0x55, 0x1d, 0x0f };
static const uint8_t oid_ext_bc[] = { 0x55, 0x1d, 0x13 };
static const uint8_t oid_ext_akid[] = { 0x55, 0x1d, 0x23 };
static const uint8_t oid_ext_eku[] = { 0x55, 0x1d, 0x25 };
static const uint8_t oid_eku_any[] = { 0x55, 0x1d, 0x25, 0x00 };
static const uint8_t oid_eku_server[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01 };
static const uint8_t oid_eku_client[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02 };

/* Signature algorithms: PKCS#1 (1.2.840.113549.1.1.x) and ECDSA. */
static const struct {
	uint8_t oid[9];
	uint8_t len;
	enum tls_sig_alg alg;
} sig_oids[] = {
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05 }, 9, TLS_SIG_RSA_SHA1 },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b }, 9, TLS_SIG_RSA_SHA256 },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c }, 9, TLS_SIG_RSA_SHA384 },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d }, 9, TLS_SIG_RSA_SHA512 },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a }, 9, TLS_SIG_RSA_PSS },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01 }, 7, TLS_SIG_ECDSA_SHA1 },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 }, 8, TLS_SIG_ECDSA_SHA256 },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 }, 8, TLS_SIG_ECDSA_SHA384 },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 }, 8, TLS_SIG_ECDSA_SHA512 },
	{ { 0x2b, 0x65, 0x70 }, 3, TLS_SIG_ED25519 },
};

#define OID_IS(t, o) tls_der_oid_is((t), (o), sizeof(o))

/* ---- strings ---------------------------------------------------------- */

/* Append code point cp as UTF-8; -ENAMETOOLONG when out (cap with the NUL)
 * is full, -EINVAL for NUL, surrogates and values past U+10FFFF. */
static int utf8_put(uint32_t cp, char *out, size_t cap, size_t *n)
{
	uint8_t b[4];
	size_t k;

	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return -EINVAL;
	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		k = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | (cp >> 18));
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		k = 4;
	}
	if (*n + k + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(out + *n, b, k);
	*n += k;
	return 0;
}

/* Decode one UTF-8 sequence at p[*i..n); strict (no overlongs). */
static int utf8_get(const uint8_t *p, size_t n, size_t *i, uint32_t *cp)
{
	uint8_t c = p[*i];
	size_t k;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		(*i)++;
		return 0;
	}
	if ((c & 0xe0) == 0xc0) {
		k = 1;
		v = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		k = 2;
		v = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		k = 3;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return -EINVAL;
	}
	if (n - *i - 1 < k)
		return -EINVAL;
	for (size_t j = 1; j <= k; j++) {
		uint8_t cc = p[*i + j];

		if ((cc & 0xc0) != 0x80)
			return -EINVAL;
		v = (v << 6) | (cc & 0x3f);
	}
	if (v < min)
		return -EINVAL;
	*i += k + 1;
	*cp = v;
	return 0;
}

/*
 * Convert an ASN.1 character string to NUL-terminated UTF-8 in out[cap].
 * Returns the length, -EINVAL for non-string tags and bad encodings,
 * -ENAMETOOLONG when it does not fit.
 */
static int asn1_string(uint8_t tag, const uint8_t *p, size_t n, char *out,
		       size_t cap)
{
	size_t o = 0, i = 0;
	uint32_t cp;
	int rc;

	while (i < n) {
		switch (tag) {
		case TLS_DER_UTF8_STRING:
			rc = utf8_get(p, n, &i, &cp);
			if (rc < 0)
				return rc;
			break;
		case TLS_DER_PRINTABLE_STRING:
		case TLS_DER_IA5_STRING:
			if (p[i] >= 0x80)
				return -EINVAL;
			cp = p[i++];
			break;
		case TLS_DER_T61_STRING: /* in practice Latin-1 */
			cp = p[i++];
			break;
		case TLS_DER_BMP_STRING:
			if (n - i < 2)
				return -EINVAL;
			cp = (uint32_t)p[i] << 8 | p[i + 1];
			i += 2;
			break;
		case TLS_DER_UNIVERSAL_STRING:
			if (n - i < 4)
				return -EINVAL;
			cp = (uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 |
			     (uint32_t)p[i + 2] << 8 | p[i + 3];
			i += 4;
			break;
		default:
			return -EINVAL;
		}
		rc = utf8_put(cp, out, cap, &o);
		if (rc < 0)
			return rc;
	}
	out[o] = '\0';
	return (int)o;
}

/* ---- names ------------------------------------------------------------ */

/*
 * Walk a Name (RDNSequence) and copy the first CN, O and OU into the given
 * buffers (any may be NULL). Every RDN and attribute must be well-formed.
 */
static int parse_name(const struct tls_tlv *name, char *cn, char *o, char *ou)
{
	struct tls_der rdns, set, atv;
	struct tls_tlv rdn, seq, oid, val;
	unsigned seen = 0;
	int rc;

	tls_der_enter(&rdns, name);
	while (tls_der_more(&rdns)) {
		if (tls_der_expect(&rdns, TLS_DER_SET, &rdn) < 0 || rdn.len == 0)
			return -EINVAL;
		tls_der_enter(&set, &rdn);
		while (tls_der_more(&set)) {
			char *dst = NULL;
			unsigned bit = 0;

			if (tls_der_expect(&set, TLS_DER_SEQUENCE, &seq) < 0)
				return -EINVAL;
			tls_der_enter(&atv, &seq);
			if (tls_der_expect(&atv, TLS_DER_OID, &oid) < 0 ||
			    oid.len == 0 || tls_der_next(&atv, &val) < 0 ||
			    tls_der_more(&atv))
				return -EINVAL;
			if (OID_IS(&oid, oid_cn)) {
				dst = cn;
				bit = 1;
			} else if (OID_IS(&oid, oid_o)) {
				dst = o;
				bit = 2;
			} else if (OID_IS(&oid, oid_ou)) {
				dst = ou;
				bit = 4;
			}
			if (!dst || (seen & bit))
				continue;
			seen |= bit;
			rc = asn1_string(val.tag, val.val, val.len, dst,
					 TLS_CERT_NAME_MAX + 1);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* See tls/cert.h. Pure; any thread. */
int tls_name_fields(const uint8_t *name, size_t len, char *cn, char *o, char *ou)
{
	struct tls_der d;
	struct tls_tlv t;
	char scratch[3][TLS_CERT_NAME_MAX + 1];

	tls_der_init(&d, name, len);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &t) < 0 || tls_der_more(&d))
		return -EINVAL;
	/* parse_name() only fills buffers it is given: give it all three so
	 * that every CN, O and OU is checked. */
	scratch[0][0] = scratch[1][0] = scratch[2][0] = '\0';
	return parse_name(&t, cn ? cn : scratch[0], o ? o : scratch[1],
			  ou ? ou : scratch[2]);
}

static const struct {
	uint8_t oid[10];
	uint8_t len;
	const char *name;
} attr_names[] = {
	{ { 0x55, 0x04, 0x03 }, 3, "CN" },
	{ { 0x55, 0x04, 0x06 }, 3, "C" },
	{ { 0x55, 0x04, 0x07 }, 3, "L" },
	{ { 0x55, 0x04, 0x08 }, 3, "ST" },
	{ { 0x55, 0x04, 0x09 }, 3, "street" },
	{ { 0x55, 0x04, 0x0a }, 3, "O" },
	{ { 0x55, 0x04, 0x0b }, 3, "OU" },
	{ { 0x55, 0x04, 0x05 }, 3, "serialNumber" },
	{ { 0x55, 0x04, 0x0c }, 3, "title" },
	{ { 0x55, 0x04, 0x2a }, 3, "GN" },
	{ { 0x55, 0x04, 0x04 }, 3, "SN" },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01 }, 9, "emailAddress" },
	{ { 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19 }, 10, "DC" },
	{ { 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01 }, 10, "UID" },
};

struct sbuf {
	char *p;
	size_t cap, len;
	bool full;
};

static void sb_putc(struct sbuf *s, char c)
{
	if (s->len + 1 < s->cap)
		s->p[s->len++] = c;
	else
		s->full = true;
}

static void sb_puts(struct sbuf *s, const char *str)
{
	while (*str)
		sb_putc(s, *str++);
}

/* Dotted form of an OID body, for attributes without a short name. */
static int oid_dotted(const uint8_t *p, size_t n, struct sbuf *s)
{
	uint64_t v = 0;
	bool first = true;
	char num[32];

	if (n == 0 || (p[n - 1] & 0x80))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (v > (UINT64_MAX >> 7))
			return -EINVAL;
		v = (v << 7) | (p[i] & 0x7f);
		if (p[i] & 0x80)
			continue;
		if (first) {
			unsigned a = v < 40 ? 0 : v < 80 ? 1 : 2;

			snprintf(num, sizeof num, "%u.%llu", a,
				 (unsigned long long)(v - 40 * a));
			first = false;
		} else {
			snprintf(num, sizeof num, ".%llu", (unsigned long long)v);
		}
		sb_puts(s, num);
		v = 0;
	}
	return 0;
}

/* See tls/cert.h. Pure; any thread. */
int tls_name_format(const uint8_t *name, size_t len, char *out, size_t cap)
{
	struct sbuf s = { out, cap, 0, false };
	struct tls_der d, rdns, set, atv;
	struct tls_tlv top, rdn, seq, oid, val;
	char v[1024];
	bool first_rdn = true;

	if (cap)
		out[0] = '\0';
	tls_der_init(&d, name, len);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &top) < 0 || tls_der_more(&d))
		return -EINVAL;
	tls_der_enter(&rdns, &top);
	while (tls_der_more(&rdns)) {
		bool first_atv = true;

		if (tls_der_expect(&rdns, TLS_DER_SET, &rdn) < 0 || rdn.len == 0)
			return -EINVAL;
		tls_der_enter(&set, &rdn);
		while (tls_der_more(&set)) {
			const char *sn = NULL;
			int rc;

			if (tls_der_expect(&set, TLS_DER_SEQUENCE, &seq) < 0)
				return -EINVAL;
			tls_der_enter(&atv, &seq);
			if (tls_der_expect(&atv, TLS_DER_OID, &oid) < 0 ||
			    tls_der_next(&atv, &val) < 0 || tls_der_more(&atv))
				return -EINVAL;
			if (!first_rdn || !first_atv)
				sb_puts(&s, first_atv ? ", " : " + ");
			first_atv = false;
			for (size_t i = 0; i < sizeof attr_names / sizeof attr_names[0]; i++)
				if (tls_der_oid_is(&oid, attr_names[i].oid, attr_names[i].len))
					sn = attr_names[i].name;
			if (sn)
				sb_puts(&s, sn);
			else if (oid_dotted(oid.val, oid.len, &s) < 0)
				return -EINVAL;
			sb_putc(&s, '=');
			rc = asn1_string(val.tag, val.val, val.len, v, sizeof v);
			if (rc < 0) {
				/* Not a string we can show: RFC 4514 hex form. */
				static const char hx[] = "0123456789abcdef";

				sb_putc(&s, '#');
				for (size_t i = 0; i < val.tlv_len; i++) {
					sb_putc(&s, hx[val.tlv[i] >> 4]);
					sb_putc(&s, hx[val.tlv[i] & 15]);
				}
				continue;
			}
			for (int i = 0; i < rc; i++) {
				if (strchr(",+=\"\\<>;", v[i]) ||
				    (i == 0 && (v[i] == '#' || v[i] == ' ')) ||
				    (i == rc - 1 && v[i] == ' '))
					sb_putc(&s, '\\');
				sb_putc(&s, v[i]);
			}
		}
		first_rdn = false;
	}
	if (cap)
		out[s.len] = '\0';
	return s.full ? -ENOSPC : (int)s.len;
}

/* ---- times ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (y, m 1-12, d 1-31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int digits(const uint8_t *p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/*
 * UTCTime "YYMMDDHHMM[SS]Z" (RFC 5280 4.1.2.5.1: YY >= 50 is 19YY) or
 * GeneralizedTime "YYYYMMDDHHMMSSZ" to unix seconds.
 */
static int parse_time(const struct tls_tlv *t, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const uint8_t *p = t->val;
	int y, mo, d, h, mi, s = 0, yl;

	if (t->tag == TLS_DER_UTC_TIME) {
		if (t->len != 13 && t->len != 11)
			return -EINVAL;
		yl = 2;
	} else if (t->tag == TLS_DER_GENERALIZED_TIME) {
		if (t->len != 15)
			return -EINVAL;
		yl = 4;
	} else {
		return -EINVAL;
	}
	if (p[t->len - 1] != 'Z')
		return -EINVAL;
	y = digits(p, yl);
	mo = digits(p + yl, 2);
	d = digits(p + yl + 2, 2);
	h = digits(p + yl + 4, 2);
	mi = digits(p + yl + 6, 2);
	if (t->len != 11)
		s = digits(p + yl + 8, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59)
		return -EINVAL;
	if (yl == 2)
		y += y >= 50 ? 1900 : 2000;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -EINVAL;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	return 0;
}

/* See tls/cert.h. Pure; any thread. */
int tls_time_format(int64_t t, char *out, size_t cap)
{
	struct tm tm;
	time_t tt = (time_t)t;
	size_t n;

	if (!gmtime_r(&tt, &tm))
		return -EINVAL;
	n = strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (n == 0)
		return -ENOSPC;
	return (int)n;
}

/* ---- algorithms and keys ---------------------------------------------- */

/* AlgorithmIdentifier of a signature -> enum; unknown algorithms are fine. */
static int parse_sig_alg(const struct tls_tlv *alg, enum tls_sig_alg *out)
{
	struct tls_der d;
	struct tls_tlv oid, params;

	tls_der_enter(&d, alg);
	if (tls_der_expect(&d, TLS_DER_OID, &oid) < 0 || oid.len == 0)
		return -EINVAL;
	if (tls_der_more(&d) && (tls_der_next(&d, &params) < 0 || tls_der_more(&d)))
		return -EINVAL;
	*out = TLS_SIG_UNKNOWN;
	for (size_t i = 0; i < sizeof sig_oids / sizeof sig_oids[0]; i++)
		if (tls_der_oid_is(&oid, sig_oids[i].oid, sig_oids[i].len))
			*out = sig_oids[i].alg;
	return 0;
}

/* BIT STRING with no unused bits (signatures, public keys). */
static int bit_string_bytes(const struct tls_tlv *t, struct tls_span *out)
{
	if (t->tag != TLS_DER_BIT_STRING || t->len < 1 || t->val[0] != 0)
		return -EINVAL;
	out->ptr = t->len > 1 ? t->val + 1 : NULL;
	out->len = t->len - 1;
	return 0;
}

static int parse_spki(const struct tls_tlv *spki, enum tls_key_type *type,
		      int *bits)
{
	struct tls_der d, a, k;
	struct tls_tlv alg, oid, params, key, seq, n;
	struct tls_span kb;
	bool have_params = false;

	*type = TLS_KEY_NONE;
	*bits = 0;
	tls_der_enter(&d, spki);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &alg) < 0 ||
	    tls_der_expect(&d, TLS_DER_BIT_STRING, &key) < 0 || tls_der_more(&d))
		return -EINVAL;
	tls_der_enter(&a, &alg);
	if (tls_der_expect(&a, TLS_DER_OID, &oid) < 0 || oid.len == 0)
		return -EINVAL;
	if (tls_der_more(&a)) {
		if (tls_der_next(&a, &params) < 0 || tls_der_more(&a))
			return -EINVAL;
		have_params = true;
	}
	if (bit_string_bytes(&key, &kb) < 0)
		return -EINVAL;
	if (OID_IS(&oid, oid_rsa)) {
		const uint8_t *m;
		size_t ml;

		*type = TLS_KEY_RSA;
		/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, exponent INTEGER } */
		if (kb.len == 0)
			return -EINVAL;
		tls_der_init(&k, kb.ptr, kb.len);
		if (tls_der_expect(&k, TLS_DER_SEQUENCE, &seq) < 0 || tls_der_more(&k))
			return -EINVAL;
		tls_der_enter(&k, &seq);
		if (tls_der_expect(&k, TLS_DER_INTEGER, &n) < 0 || n.len == 0)
			return -EINVAL;
		m = n.val;
		ml = n.len;
		while (ml > 0 && m[0] == 0) {
			m++;
			ml--;
		}
		if (ml > 0) {
			int top_bits = 8;

			while (!(m[0] & (1u << (top_bits - 1))))
				top_bits--;
			*bits = (int)((ml - 1) * 8) + top_bits;
		}
	} else if (OID_IS(&oid, oid_ec)) {
		*type = TLS_KEY_EC;
		if (!have_params)
			return -EINVAL;
		if (OID_IS(&params, oid_p256))
			*bits = 256;
		else if (OID_IS(&params, oid_p384))
			*bits = 384;
		else if (OID_IS(&params, oid_p521))
			*bits = 521;
	} else if (OID_IS(&oid, oid_ed25519)) {
		*type = TLS_KEY_ED25519;
		*bits = 256;
	} else if (OID_IS(&oid, oid_ed448)) {
		*type = TLS_KEY_ED448;
		*bits = 456;
	} else {
		*type = TLS_KEY_OTHER;
	}
	return 0;
}

/* See tls/cert.h. Pure; any thread. */
int tls_spki_key(const uint8_t *spki, size_t len, enum tls_key_type *type,
		 int *bits)
{
	struct tls_der d;
	struct tls_tlv t;

	tls_der_init(&d, spki, len);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &t) < 0 || tls_der_more(&d))
		return -EINVAL;
	return parse_spki(&t, type, bits);
}

/* ---- extensions ------------------------------------------------------- */

enum { EXT_BC = 1, EXT_KU = 2, EXT_EKU = 4, EXT_SKID = 8, EXT_AKID = 16 };

static int ext_basic_constraints(const struct tls_tlv *v, struct tls_cert_info *ci)
{
	struct tls_der d;
	struct tls_tlv seq, t;

	tls_der_enter(&d, v);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &seq) < 0 || tls_der_more(&d))
		return -EINVAL;
	tls_der_enter(&d, &seq);
	if (tls_der_peek(&d, TLS_DER_BOOLEAN)) {
		if (tls_der_next(&d, &t) < 0 || t.len != 1)
			return -EINVAL;
		ci->is_ca = t.val[0] != 0;
	}
	if (tls_der_more(&d)) {
		int pl = 0;

		if (tls_der_expect(&d, TLS_DER_INTEGER, &t) < 0 || t.len == 0 ||
		    t.len > 2 || (t.val[0] & 0x80) || tls_der_more(&d))
			return -EINVAL;
		for (size_t i = 0; i < t.len; i++)
			pl = pl << 8 | t.val[i];
		ci->path_len = pl;
	}
	return 0;
}

static int ext_key_usage(const struct tls_tlv *v, struct tls_cert_info *ci)
{
	struct tls_der d;
	struct tls_tlv bs;
	unsigned bits = 0;

	tls_der_enter(&d, v);
	if (tls_der_expect(&d, TLS_DER_BIT_STRING, &bs) < 0 || tls_der_more(&d) ||
	    bs.len < 1 || bs.val[0] > 7 || (bs.len == 1 && bs.val[0] != 0))
		return -EINVAL;
	for (unsigned i = 0; i < 9 && i / 8 + 1 < bs.len; i++)
		if (bs.val[1 + i / 8] & (0x80 >> (i % 8)))
			bits |= 1u << i;
	ci->has_key_usage = true;
	ci->key_usage = (uint16_t)bits;
	return 0;
}

static int ext_ext_key_usage(const struct tls_tlv *v, struct tls_cert_info *ci)
{
	struct tls_der d;
	struct tls_tlv seq, oid;

	tls_der_enter(&d, v);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &seq) < 0 || tls_der_more(&d) ||
	    seq.len == 0)
		return -EINVAL;
	tls_der_enter(&d, &seq);
	while (tls_der_more(&d)) {
		if (tls_der_expect(&d, TLS_DER_OID, &oid) < 0 || oid.len == 0)
			return -EINVAL;
		if (OID_IS(&oid, oid_eku_server))
			ci->ext_key_usage |= TLS_EKU_SERVER_AUTH;
		else if (OID_IS(&oid, oid_eku_client))
			ci->ext_key_usage |= TLS_EKU_CLIENT_AUTH;
		else if (OID_IS(&oid, oid_eku_any))
			ci->ext_key_usage |= TLS_EKU_ANY;
		else
			ci->ext_key_usage |= TLS_EKU_OTHER;
	}
	return 0;
}

static int ext_skid(const struct tls_tlv *v, struct tls_cert_info *ci)
{
	struct tls_der d;
	struct tls_tlv os;

	tls_der_enter(&d, v);
	if (tls_der_expect(&d, TLS_DER_OCTET_STRING, &os) < 0 || tls_der_more(&d))
		return -EINVAL;
	if (os.len) {
		ci->skid.ptr = os.val;
		ci->skid.len = os.len;
	}
	return 0;
}

/* See tls/cert-int.h. Pure; any thread. */
int tls_der_akid(const struct tls_tlv *v, struct tls_span *akid)
{
	struct tls_der d;
	struct tls_tlv seq, t;
	int last = -1;

	tls_der_enter(&d, v);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &seq) < 0 || tls_der_more(&d))
		return -EINVAL;
	tls_der_enter(&d, &seq);
	while (tls_der_more(&d)) {
		int n;

		if (tls_der_next(&d, &t) < 0)
			return -EINVAL;
		/* [0] keyIdentifier, [1] authorityCertIssuer, [2] serial; in order. */
		if (t.tag == 0x80)
			n = 0;
		else if (t.tag == 0xa1)
			n = 1;
		else if (t.tag == 0x82)
			n = 2;
		else
			return -EINVAL;
		if (n <= last)
			return -EINVAL;
		last = n;
		if (n == 0 && t.len) {
			akid->ptr = t.val;
			akid->len = t.len;
		}
	}
	return 0;
}

static int parse_extensions(const struct tls_tlv *ctx3, struct tls_cert_info *ci)
{
	struct tls_der d, e;
	struct tls_tlv seq, ext, oid, crit, val;
	unsigned seen = 0;

	tls_der_enter(&d, ctx3);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &seq) < 0 || tls_der_more(&d) ||
	    seq.len == 0)
		return -EINVAL;
	tls_der_enter(&d, &seq);
	while (tls_der_more(&d)) {
		unsigned bit = 0;
		int rc = 0;

		if (tls_der_expect(&d, TLS_DER_SEQUENCE, &ext) < 0)
			return -EINVAL;
		tls_der_enter(&e, &ext);
		if (tls_der_expect(&e, TLS_DER_OID, &oid) < 0 || oid.len == 0)
			return -EINVAL;
		if (tls_der_peek(&e, TLS_DER_BOOLEAN) &&
		    (tls_der_next(&e, &crit) < 0 || crit.len != 1))
			return -EINVAL;
		if (tls_der_expect(&e, TLS_DER_OCTET_STRING, &val) < 0 || tls_der_more(&e))
			return -EINVAL;
		if (OID_IS(&oid, oid_ext_bc)) {
			bit = EXT_BC;
			rc = ext_basic_constraints(&val, ci);
		} else if (OID_IS(&oid, oid_ext_ku)) {
			bit = EXT_KU;
			rc = ext_key_usage(&val, ci);
		} else if (OID_IS(&oid, oid_ext_eku)) {
			bit = EXT_EKU;
			rc = ext_ext_key_usage(&val, ci);
		} else if (OID_IS(&oid, oid_ext_skid)) {
			bit = EXT_SKID;
			rc = ext_skid(&val, ci);
		} else if (OID_IS(&oid, oid_ext_akid)) {
			bit = EXT_AKID;
			rc = tls_der_akid(&val, &ci->akid);
		}
		/* RFC 5280 4.2: a certificate MUST NOT repeat an extension. */
		if (rc < 0 || (seen & bit))
			return -EINVAL;
		seen |= bit;
	}
	return 0;
}

/* ---- certificates ----------------------------------------------------- */

/* INTEGER serial -> magnitude without leading zero octets. */
static int parse_serial(const struct tls_tlv *t, struct tls_cert_info *ci)
{
	const uint8_t *p = t->val;
	size_t n = t->len;

	if (n == 0)
		return -EINVAL;
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	if (n > TLS_CERT_SERIAL_MAX)
		return -EINVAL;
	memcpy(ci->serial, p, n);
	ci->serial_len = n;
	return 0;
}

static int parse_tbs(const struct tls_tlv *tbs, const struct tls_tlv *outer_alg,
		     struct tls_cert_info *ci)
{
	struct tls_der d, v;
	struct tls_tlv t, alg, name, validity, spki;
	int rc;

	tls_der_enter(&d, tbs);
	ci->version = 1;
	if (tls_der_peek(&d, TLS_DER_CTX0)) {
		if (tls_der_next(&d, &t) < 0)
			return -EINVAL;
		tls_der_enter(&v, &t);
		if (tls_der_expect(&v, TLS_DER_INTEGER, &t) < 0 || t.len != 1 ||
		    t.val[0] > 2 || tls_der_more(&v))
			return -EINVAL;
		ci->version = t.val[0] + 1;
	}
	if (tls_der_expect(&d, TLS_DER_INTEGER, &t) < 0 || parse_serial(&t, ci) < 0)
		return -EINVAL;
	/* RFC 5280 4.1.1.2: must equal the outer signatureAlgorithm. */
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &alg) < 0 ||
	    alg.tlv_len != outer_alg->tlv_len ||
	    memcmp(alg.tlv, outer_alg->tlv, alg.tlv_len) != 0)
		return -EINVAL;
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &name) < 0)
		return -EINVAL;
	rc = parse_name(&name, ci->issuer_cn, NULL, NULL);
	if (rc < 0)
		return rc;
	ci->issuer.ptr = name.tlv;
	ci->issuer.len = name.tlv_len;

	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &validity) < 0)
		return -EINVAL;
	tls_der_enter(&v, &validity);
	if (tls_der_next(&v, &t) < 0 || parse_time(&t, &ci->not_before) < 0 ||
	    tls_der_next(&v, &t) < 0 || parse_time(&t, &ci->not_after) < 0 ||
	    tls_der_more(&v))
		return -EINVAL;

	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &name) < 0)
		return -EINVAL;
	rc = parse_name(&name, ci->cn, ci->o, ci->ou);
	if (rc < 0)
		return rc;
	ci->subject.ptr = name.tlv;
	ci->subject.len = name.tlv_len;

	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &spki) < 0 ||
	    parse_spki(&spki, &ci->key_type, &ci->key_bits) < 0)
		return -EINVAL;
	ci->spki.ptr = spki.tlv;
	ci->spki.len = spki.tlv_len;

	/* issuerUniqueID [1] and subjectUniqueID [2], IMPLICIT BIT STRING. */
	if (tls_der_peek(&d, 0x81) && tls_der_next(&d, &t) < 0)
		return -EINVAL;
	if (tls_der_peek(&d, 0x82) && tls_der_next(&d, &t) < 0)
		return -EINVAL;
	if (tls_der_peek(&d, TLS_DER_CTX3)) {
		if (tls_der_next(&d, &t) < 0 || ci->version != 3)
			return -EINVAL;
		rc = parse_extensions(&t, ci);
		if (rc < 0)
			return rc;
	}
	return tls_der_more(&d) ? -EINVAL : 0;
}

/* See tls/cert.h. Pure; any thread. */
int tls_cert_id(const uint8_t *der, size_t len, uint8_t id[TLS_CERT_ID_LEN])
{
	if (len > UINT32_MAX)
		return -EINVAL;
	return wc_Sha256Hash(der, (word32)len, id) == 0 ? 0 : -EIO;
}

/* See tls/cert.h. Pure; any thread. */
int tls_cert_parse(const uint8_t *der, size_t len, struct tls_cert_info *out)
{
	struct tls_tlv tbs, alg;
	int rc;

	memset(out, 0, sizeof *out);
	out->path_len = -1;
	if (!der || len == 0 || len > UINT32_MAX)
		return -EINVAL;
	rc = tls_der_signed(der, len, &tbs, &alg, &out->sig_alg, &out->sig);
	if (rc == 0)
		rc = parse_tbs(&tbs, &alg, out);
	if (rc == 0 && tls_cert_id(der, len, out->id) < 0)
		rc = -EIO;
	if (rc < 0) {
		memset(out, 0, sizeof *out);
		out->path_len = -1;
		return rc;
	}
	out->tbs.ptr = tbs.tlv;
	out->tbs.len = tbs.tlv_len;
	return 0;
}

/* ---- signatures ------------------------------------------------------- */

/* See tls/cert.h. Pure; any thread. */
int tls_sig_verify(enum tls_sig_alg alg, const uint8_t *data, size_t dlen,
		   const uint8_t *sig, size_t slen,
		   const uint8_t *spki, size_t spki_len)
{
	enum wc_HashType h;
	enum tls_key_type want, have;
	int bits, rc;
	word32 idx = 0;

	switch (alg) {
	case TLS_SIG_RSA_SHA256:
		h = WC_HASH_TYPE_SHA256;
		want = TLS_KEY_RSA;
		break;
	case TLS_SIG_RSA_SHA384:
		h = WC_HASH_TYPE_SHA384;
		want = TLS_KEY_RSA;
		break;
	case TLS_SIG_RSA_SHA512:
		h = WC_HASH_TYPE_SHA512;
		want = TLS_KEY_RSA;
		break;
	case TLS_SIG_ECDSA_SHA256:
		h = WC_HASH_TYPE_SHA256;
		want = TLS_KEY_EC;
		break;
	case TLS_SIG_ECDSA_SHA384:
		h = WC_HASH_TYPE_SHA384;
		want = TLS_KEY_EC;
		break;
	case TLS_SIG_ECDSA_SHA512:
		h = WC_HASH_TYPE_SHA512;
		want = TLS_KEY_EC;
		break;
	default:
		/* SHA-1 is collision-broken; PSS and EdDSA are not used here. */
		return -EOPNOTSUPP;
	}
	if (!data || !sig || !spki || dlen > UINT32_MAX || slen == 0 ||
	    slen > UINT32_MAX || spki_len > UINT32_MAX)
		return -EBADMSG;
	if (tls_spki_key(spki, spki_len, &have, &bits) < 0 || have != want)
		return -EBADMSG;

	if (want == TLS_KEY_RSA) {
		RsaKey key;

		if (wc_InitRsaKey(&key, NULL) != 0)
			return -ENOMEM;
		rc = wc_RsaPublicKeyDecode(spki, &idx, &key, (word32)spki_len);
		if (rc == 0)
			rc = wc_SignatureVerify(h, WC_SIGNATURE_TYPE_RSA_W_ENC,
						data, (word32)dlen, sig, (word32)slen,
						&key, sizeof key);
		wc_FreeRsaKey(&key);
	} else {
		ecc_key key;

		if (wc_ecc_init(&key) != 0)
			return -ENOMEM;
		rc = wc_EccPublicKeyDecode(spki, &idx, &key, (word32)spki_len);
		if (rc == 0)
			rc = wc_SignatureVerify(h, WC_SIGNATURE_TYPE_ECC,
						data, (word32)dlen, sig, (word32)slen,
						&key, sizeof key);
		wc_ecc_free(&key);
	}
	return rc == 0 ? 0 : -EBADMSG;
}

/* See tls/cert.h. Pure; any thread. */
int tls_cert_check_sig(const struct tls_cert_info *cert,
		       const struct tls_cert_info *issuer)
{
	return tls_sig_verify(cert->sig_alg, cert->tbs.ptr, cert->tbs.len,
			      cert->sig.ptr, cert->sig.len,
			      issuer->spki.ptr, issuer->spki.len);
}

/* See tls/cert.h. Pure; any thread. */
int tls_cert_verify_signed_by(const uint8_t *der, size_t len,
			      const uint8_t *issuer_der, size_t ilen)
{
	struct tls_cert_info *c = malloc(2 * sizeof *c);
	int rc;

	if (!c)
		return -ENOMEM;
	rc = tls_cert_parse(der, len, &c[0]);
	if (rc == 0)
		rc = tls_cert_parse(issuer_der, ilen, &c[1]);
	if (rc == -ENAMETOOLONG)
		rc = -EINVAL;
	if (rc == 0)
		rc = tls_cert_check_sig(&c[0], &c[1]);
	free(c);
	return rc;
}

/* ---- PKCS#10 ---------------------------------------------------------- */

/* See tls/cert.h. Pure; any thread. */
int tls_csr_parse(const uint8_t *der, size_t len, struct tls_csr_info *out)
{
	struct tls_der d;
	struct tls_tlv info, alg, t, name, spki;
	int rc;

	memset(out, 0, sizeof *out);
	if (!der || len == 0 || len > UINT32_MAX)
		return -EINVAL;
	if (tls_der_signed(der, len, &info, &alg, &out->sig_alg, &out->sig) < 0)
		goto bad;
	out->info.ptr = info.tlv;
	out->info.len = info.tlv_len;

	/* CertificationRequestInfo: version 0, subject, SPKI, [0] attributes. */
	tls_der_enter(&d, &info);
	if (tls_der_expect(&d, TLS_DER_INTEGER, &t) < 0 || t.len != 1 || t.val[0] != 0)
		goto bad;
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &name) < 0)
		goto bad;
	rc = parse_name(&name, out->cn, out->o, out->ou);
	if (rc < 0) {
		memset(out, 0, sizeof *out);
		return rc;
	}
	out->subject.ptr = name.tlv;
	out->subject.len = name.tlv_len;
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &spki) < 0 ||
	    parse_spki(&spki, &out->key_type, &out->key_bits) < 0)
		goto bad;
	out->spki.ptr = spki.tlv;
	out->spki.len = spki.tlv_len;
	if (tls_der_expect(&d, TLS_DER_CTX0, &t) < 0 || tls_der_more(&d))
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof *out);
	return -EINVAL;
}

/* See tls/cert.h. Pure; any thread. */
int tls_csr_verify(const struct tls_csr_info *csr)
{
	return tls_sig_verify(csr->sig_alg, csr->info.ptr, csr->info.len,
			      csr->sig.ptr, csr->sig.len,
			      csr->spki.ptr, csr->spki.len);
}

/* ---- PEM -------------------------------------------------------------- */

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode base64 in p[0..n), ignoring whitespace. Padding is optional, but
 * when present it must complete the last quantum and nothing may follow.
 */
static int b64_decode(const char *p, size_t n, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	size_t o = 0;
	int q = 0, pad = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			if (q < 2 || pad > 2 || q + pad > 4)
				return -EINVAL;
			continue;
		}
		if (pad)
			return -EINVAL;
		v = b64_val(c);
		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		if (++q == 4) {
			if (cap - o < 3)
				return -ENOSPC;
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
			q = 0;
		}
	}
	if ((pad && q + pad != 4) || q == 1)
		return -EINVAL;
	if (q == 2) {
		if (cap - o < 1)
			return -ENOSPC;
		out[o++] = (uint8_t)(acc >> 4);
	} else if (q == 3) {
		if (cap - o < 2)
			return -ENOSPC;
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
	}
	return (int)o;
}

/* See tls/cert.h. Pure; any thread. */
int tls_pem_next(const char *pem, size_t len, size_t *pos, char *label,
		 size_t label_cap, uint8_t *der, size_t cap)
{
	static const char begin[] = "-----BEGIN ";
	static const char dashes[] = "-----";
	char end[sizeof "-----END " + TLS_PEM_LABEL_MAX + sizeof dashes];
	const char *p, *lend, *body, *e;
	size_t ll;
	int rc;

	if (*pos >= len)
		return -ENOENT;
	p = memmem(pem + *pos, len - *pos, begin, sizeof begin - 1);
	if (!p)
		return -ENOENT;
	p += sizeof begin - 1;
	lend = memmem(p, len - (size_t)(p - pem), dashes, sizeof dashes - 1);
	if (!lend)
		return -EINVAL;
	ll = (size_t)(lend - p);
	if (ll == 0 || ll > TLS_PEM_LABEL_MAX || memchr(p, '\n', ll))
		return -EINVAL;
	body = lend + sizeof dashes - 1;
	snprintf(end, sizeof end, "-----END %.*s-----", (int)ll, p);
	e = memmem(body, len - (size_t)(body - pem), end, strlen(end));
	if (!e)
		return -EINVAL;
	rc = b64_decode(body, (size_t)(e - body), der, cap);
	if (rc < 0)
		return rc;
	if (label) {
		if (label_cap <= ll)
			return -ENOSPC;
		memcpy(label, p, ll);
		label[ll] = '\0';
	}
	*pos = (size_t)(e - pem) + strlen(end);
	return rc;
}

/* See tls/cert.h. Pure; any thread. */
size_t tls_pem_size(const char *label, size_t der_len)
{
	size_t b64 = (der_len + 2) / 3 * 4;

	/* BEGIN/END lines, base64 with a newline per 64 columns, NUL. */
	return 2 * (strlen(label) + 16) + b64 + b64 / 64 + 2 + 1;
}

/* See tls/cert.h. Pure; any thread. */
int tls_pem_encode(const char *label, const uint8_t *der, size_t len,
		   char *out, size_t cap)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o, col = 0;
	int n;

	if (cap < tls_pem_size(label, len))
		return -ENOSPC;
	n = snprintf(out, cap, "-----BEGIN %s-----\n", label);
	o = (size_t)n;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;
		size_t k = len - i < 3 ? len - i : 3;

		if (k > 1)
			v |= (uint32_t)der[i + 1] << 8;
		if (k > 2)
			v |= der[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = k > 1 ? tab[(v >> 6) & 63] : '=';
		out[o++] = k > 2 ? tab[v & 63] : '=';
		col += 4;
		if (col == 64) {
			out[o++] = '\n';
			col = 0;
		}
	}
	if (col)
		out[o++] = '\n';
	n = snprintf(out + o, cap - o, "-----END %s-----\n", label);
	return (int)(o + (size_t)n);
}

/* See tls/cert.h. Pure; any thread. */
int tls_cert_pem_to_der(const char *pem, size_t len, uint8_t *der, size_t cap)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	size_t pos = 0;
	int rc;

	for (;;) {
		rc = tls_pem_next(pem, len, &pos, label, sizeof label, der, cap);
		if (rc < 0 || strcmp(label, "CERTIFICATE") == 0)
			return rc;
	}
}

/* See tls/cert.h. Pure; any thread. */
int tls_cert_pem_all(const char *pem, size_t len, tls_cert_each_fn fn,
		     void *arg)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	size_t pos = 0;
	uint8_t *der;
	int rc, count = 0;

	der = malloc(len ? len : 1);
	if (!der)
		return -ENOMEM;
	for (;;) {
		rc = tls_pem_next(pem, len, &pos, label, sizeof label, der, len);
		if (rc == -ENOENT) {
			rc = count;
			break;
		}
		if (rc < 0)
			break;
		if (strcmp(label, "CERTIFICATE") != 0)
			continue;
		count++;
		rc = fn(der, (size_t)rc, arg);
		if (rc != 0)
			break;
	}
	free(der);
	return rc;
}

/* ---- hex and names ---------------------------------------------------- */

/* See tls/cert.h. Pure; any thread. */
void tls_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* See tls/cert.h. Pure; any thread. */
int tls_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*hex) {
		int hi, lo;

		if (*hex == ':' && n > 0) {
			hex++;
			continue;
		}
		hi = hexval(hex[0]);
		if (hi < 0)
			return -EINVAL;
		lo = hexval(hex[1]);
		if (lo < 0)
			return -EINVAL;
		if (n >= cap)
			return -ENOSPC;
		out[n++] = (uint8_t)(hi << 4 | lo);
		hex += 2;
	}
	return (int)n;
}

/* See tls/cert.h. Pure; any thread. */
const char *tls_key_type_name(enum tls_key_type t)
{
	switch (t) {
	case TLS_KEY_RSA:
		return "rsa";
	case TLS_KEY_EC:
		return "ec";
	case TLS_KEY_ED25519:
		return "ed25519";
	case TLS_KEY_ED448:
		return "ed448";
	case TLS_KEY_OTHER:
		return "other";
	default:
		return "none";
	}
}

/* See tls/cert.h. Pure; any thread. */
const char *tls_sig_alg_name(enum tls_sig_alg a)
{
	switch (a) {
	case TLS_SIG_RSA_SHA1:
		return "sha1WithRSAEncryption";
	case TLS_SIG_RSA_SHA256:
		return "sha256WithRSAEncryption";
	case TLS_SIG_RSA_SHA384:
		return "sha384WithRSAEncryption";
	case TLS_SIG_RSA_SHA512:
		return "sha512WithRSAEncryption";
	case TLS_SIG_ECDSA_SHA1:
		return "ecdsa-with-SHA1";
	case TLS_SIG_ECDSA_SHA256:
		return "ecdsa-with-SHA256";
	case TLS_SIG_ECDSA_SHA384:
		return "ecdsa-with-SHA384";
	case TLS_SIG_ECDSA_SHA512:
		return "ecdsa-with-SHA512";
	case TLS_SIG_RSA_PSS:
		return "rsassaPss";
	case TLS_SIG_ED25519:
		return "ED25519";
	default:
		return "unknown";
	}
}

/* ---- shared with tls/crl.c (tls/cert-int.h) ----------------------------- */

/* See tls/cert-int.h. Pure; any thread. */
int tls_der_time(const struct tls_tlv *t, int64_t *out)
{
	return parse_time(t, out);
}

/* See tls/cert-int.h. Pure; any thread. */
int tls_der_signed(const uint8_t *der, size_t len, struct tls_tlv *tbs, struct tls_tlv *alg,
		   enum tls_sig_alg *sig_alg, struct tls_span *sig)
{
	struct tls_der d;
	struct tls_tlv outer, bits;

	tls_der_init(&d, der, len);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &outer) < 0 || tls_der_more(&d))
		return -EINVAL;
	tls_der_enter(&d, &outer);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, tbs) < 0 ||
	    tls_der_expect(&d, TLS_DER_SEQUENCE, alg) < 0 ||
	    tls_der_expect(&d, TLS_DER_BIT_STRING, &bits) < 0 || tls_der_more(&d))
		return -EINVAL;
	if (parse_sig_alg(alg, sig_alg) < 0 || bit_string_bytes(&bits, sig) < 0)
		return -EINVAL;
	return 0;
}
