/*
 * tls/crl.c - X.509 CRL parsing and signature checks (API in tls/crl.h).
 *
 * The structure walk uses the strict DER reader of tls/der.c and the time,
 * algorithm and BIT STRING rules of the certificate parser
 * (tls/cert-int.h); the signature goes through tls_sig_verify(), the same
 * wolfCrypt path as certificates and CSRs. Every element is checked once
 * in tls_crl_parse(), so the entry walk afterwards cannot fail.
 */
#include "tls/crl.h"
#include "tls/cert.h"
#include "tls/cert-int.h"
#include "tls/der.h"

#include <errno.h>
#include <string.h>

#define OID_IS(t, o) tls_der_oid_is((t), (o), sizeof(o))

/* crlExtensions (RFC 5280 5.2). */
static const uint8_t oid_akid[] = { 0x55, 0x1d, 0x23 };
static const uint8_t oid_crl_number[] = { 0x55, 0x1d, 0x14 };
static const uint8_t oid_delta[] = { 0x55, 0x1d, 0x1b };
static const uint8_t oid_idp[] = { 0x55, 0x1d, 0x1c };
static const uint8_t oid_ian[] = { 0x55, 0x1d, 0x12 };
static const uint8_t oid_freshest[] = { 0x55, 0x1d, 0x2e };
static const uint8_t oid_aia[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01 };
/* crlEntryExtensions (RFC 5280 5.3). */
static const uint8_t oid_reason[] = { 0x55, 0x1d, 0x15 };
static const uint8_t oid_invalidity[] = { 0x55, 0x1d, 0x18 };
static const uint8_t oid_cert_issuer[] = { 0x55, 0x1d, 0x1d };

#define TAG_ENUMERATED 0x0a

/*
 * Called for each extension with its OID, criticality and OCTET STRING
 * contents. Returns a bit (> 0) naming a known extension, 0 for an unknown
 * one, -EINVAL when a known one is malformed.
 */
typedef int (*ext_fn)(void *ctx, const struct tls_tlv *oid, bool critical,
		      const struct tls_tlv *val);

/* Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension; no known one twice
 * (RFC 5280 4.2). An unknown critical one sets *unknown_critical. */
static int walk_exts(const struct tls_tlv *seq, ext_fn fn, void *ctx,
		     bool *unknown_critical)
{
	struct tls_der d, e;
	struct tls_tlv ext, oid, crit, val;
	unsigned seen = 0;

	if (seq->tag != TLS_DER_SEQUENCE || seq->len == 0)
		return -EINVAL;
	tls_der_enter(&d, seq);
	while (tls_der_more(&d)) {
		bool critical = false;
		int bit;

		if (tls_der_expect(&d, TLS_DER_SEQUENCE, &ext) < 0)
			return -EINVAL;
		tls_der_enter(&e, &ext);
		if (tls_der_expect(&e, TLS_DER_OID, &oid) < 0 || oid.len == 0)
			return -EINVAL;
		if (tls_der_peek(&e, TLS_DER_BOOLEAN)) {
			if (tls_der_next(&e, &crit) < 0 || crit.len != 1)
				return -EINVAL;
			critical = crit.val[0] != 0;
		}
		if (tls_der_expect(&e, TLS_DER_OCTET_STRING, &val) < 0 || tls_der_more(&e))
			return -EINVAL;
		bit = fn(ctx, &oid, critical, &val);
		if (bit < 0 || (unsigned)bit & seen)
			return -EINVAL;
		if (bit == 0 && critical)
			*unknown_critical = true;
		seen |= (unsigned)bit;
	}
	return 0;
}

/* The single element inside an extension's OCTET STRING. */
static int ext_inner(const struct tls_tlv *val, uint8_t tag, struct tls_tlv *t)
{
	struct tls_der d;

	tls_der_enter(&d, val);
	if (tls_der_expect(&d, tag, t) < 0 || tls_der_more(&d))
		return -EINVAL;
	return 0;
}

/* ---- entries ---------------------------------------------------------- */

struct entry_ctx {
	struct tls_crl_entry *e;
	bool indirect;
};

static int entry_ext(void *ctx, const struct tls_tlv *oid, bool critical,
		     const struct tls_tlv *val)
{
	struct entry_ctx *x = ctx;
	struct tls_tlv t;
	int64_t when;

	(void)critical;
	if (OID_IS(oid, oid_reason)) {
		if (ext_inner(val, TAG_ENUMERATED, &t) < 0 || t.len != 1 || t.val[0] > 10 ||
		    t.val[0] == 7)      /* 7 is unused in CRLReason */
			return -EINVAL;
		x->e->reason = t.val[0];
		return 1;
	}
	if (OID_IS(oid, oid_invalidity)) {
		if (ext_inner(val, TLS_DER_GENERALIZED_TIME, &t) < 0 ||
		    tls_der_time(&t, &when) < 0)
			return -EINVAL;
		return 2;
	}
	if (OID_IS(oid, oid_cert_issuer)) {
		if (ext_inner(val, TLS_DER_SEQUENCE, &t) < 0)
			return -EINVAL;
		x->indirect = true;
		return 4;
	}
	return 0;
}

/*
 * One revokedCertificates entry: SEQUENCE { userCertificate INTEGER,
 * revocationDate Time, crlEntryExtensions OPTIONAL }. Sets *has_ext,
 * *indirect and *unknown_critical as it finds them.
 */
static int parse_entry(const struct tls_tlv *seq, struct tls_crl_entry *e,
		       bool *has_ext, bool *indirect, bool *unknown_critical)
{
	struct tls_der d;
	struct tls_tlv ser, date, exts;
	struct entry_ctx x = { .e = e };
	const uint8_t *p;
	size_t n;

	memset(e, 0, sizeof *e);
	e->reason = TLS_CRL_REASON_NONE;
	if (seq->tag != TLS_DER_SEQUENCE)
		return -EINVAL;
	tls_der_enter(&d, seq);
	if (tls_der_expect(&d, TLS_DER_INTEGER, &ser) < 0 || ser.len == 0 ||
	    tls_der_next(&d, &date) < 0 || tls_der_time(&date, &e->revoked_at) < 0)
		return -EINVAL;
	/* The serial as the certificate parser keeps it: no leading zeros. */
	p = ser.val;
	n = ser.len;
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	if (n > TLS_CERT_SERIAL_MAX)
		return -EINVAL;
	memcpy(e->serial, p, n);
	e->serial_len = n;
	if (tls_der_more(&d)) {
		if (tls_der_next(&d, &exts) < 0 || tls_der_more(&d) ||
		    walk_exts(&exts, entry_ext, &x, unknown_critical) < 0)
			return -EINVAL;
		*has_ext = true;
		if (x.indirect)
			*indirect = true;
	}
	return 0;
}

/* ---- the list --------------------------------------------------------- */

static int crl_ext(void *ctx, const struct tls_tlv *oid, bool critical,
		   const struct tls_tlv *val)
{
	struct tls_crl_info *ci = ctx;
	struct tls_tlv t;

	(void)critical;
	if (OID_IS(oid, oid_akid))
		return tls_der_akid(val, &ci->akid) < 0 ? -EINVAL : 1;
	if (OID_IS(oid, oid_crl_number)) {
		if (ext_inner(val, TLS_DER_INTEGER, &t) < 0 || t.len == 0 || t.len > 21)
			return -EINVAL;
		ci->crl_number.ptr = t.val;
		ci->crl_number.len = t.len;
		return 2;
	}
	if (OID_IS(oid, oid_delta)) {
		if (ext_inner(val, TLS_DER_INTEGER, &t) < 0 || t.len == 0)
			return -EINVAL;
		ci->delta = true;
		return 4;
	}
	/* Known, and nothing vouch acts on: their presence is enough. */
	if (OID_IS(oid, oid_idp))
		return 8;
	if (OID_IS(oid, oid_ian))
		return 16;
	if (OID_IS(oid, oid_freshest))
		return 32;
	if (OID_IS(oid, oid_aia))
		return 64;
	return 0;
}

static int parse_tbs(const struct tls_tlv *tbs, const struct tls_tlv *outer_alg,
		     struct tls_crl_info *ci)
{
	struct tls_der d, r;
	struct tls_tlv t, alg, name, ctx0;
	struct tls_crl_entry e;
	bool entry_ext = false;
	int rc;

	tls_der_enter(&d, tbs);
	ci->version = 1;
	if (tls_der_peek(&d, TLS_DER_INTEGER)) {
		/* Version ::= INTEGER { v1(0), v2(1) }; only v2 is ever written. */
		if (tls_der_next(&d, &t) < 0 || t.len != 1 || t.val[0] != 1)
			return -EINVAL;
		ci->version = 2;
	}
	/* RFC 5280 5.1.2.2: must equal the outer signatureAlgorithm. */
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &alg) < 0 ||
	    alg.tlv_len != outer_alg->tlv_len ||
	    memcmp(alg.tlv, outer_alg->tlv, alg.tlv_len) != 0)
		return -EINVAL;
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &name) < 0)
		return -EINVAL;
	rc = tls_name_fields(name.tlv, name.tlv_len, ci->issuer_cn, NULL, NULL);
	if (rc < 0)
		return rc;
	ci->issuer.ptr = name.tlv;
	ci->issuer.len = name.tlv_len;
	if (tls_der_next(&d, &t) < 0 || tls_der_time(&t, &ci->this_update) < 0)
		return -EINVAL;
	if (tls_der_peek(&d, TLS_DER_UTC_TIME) || tls_der_peek(&d, TLS_DER_GENERALIZED_TIME)) {
		if (tls_der_next(&d, &t) < 0 || tls_der_time(&t, &ci->next_update) < 0)
			return -EINVAL;
	}
	if (tls_der_peek(&d, TLS_DER_SEQUENCE)) {
		if (tls_der_next(&d, &t) < 0)
			return -EINVAL;
		/* "When there are no revoked certificates, the revoked
		 * certificates list MUST be absent" (5.1.2.6): so not empty. */
		if (t.len == 0)
			return -EINVAL;
		ci->revoked.ptr = t.val;
		ci->revoked.len = t.len;
		tls_der_enter(&r, &t);
		while (tls_der_more(&r)) {
			if (tls_der_next(&r, &t) < 0 ||
			    parse_entry(&t, &e, &entry_ext, &ci->indirect,
					&ci->unknown_critical) < 0)
				return -EINVAL;
			ci->n_revoked++;
		}
	}
	if (tls_der_peek(&d, TLS_DER_CTX0)) {
		if (tls_der_next(&d, &ctx0) < 0)
			return -EINVAL;
		tls_der_enter(&r, &ctx0);
		if (tls_der_next(&r, &t) < 0 || tls_der_more(&r) ||
		    walk_exts(&t, crl_ext, ci, &ci->unknown_critical) < 0)
			return -EINVAL;
		if (ci->version != 2)
			return -EINVAL;
	}
	/* 5.1.2.1: extensions of any kind need v2. */
	if (entry_ext && ci->version != 2)
		return -EINVAL;
	return tls_der_more(&d) ? -EINVAL : 0;
}

/* See tls/crl.h. Pure; any thread. */
int tls_crl_parse(const uint8_t *der, size_t len, struct tls_crl_info *out)
{
	struct tls_tlv tbs, alg;
	int rc;

	memset(out, 0, sizeof *out);
	if (!der || len == 0 || len > TLS_CRL_DER_MAX)
		return -EINVAL;
	rc = tls_der_signed(der, len, &tbs, &alg, &out->sig_alg, &out->sig);
	if (rc == 0)
		rc = parse_tbs(&tbs, &alg, out);
	if (rc < 0) {
		memset(out, 0, sizeof *out);
		return rc;
	}
	out->tbs.ptr = tbs.tlv;
	out->tbs.len = tbs.tlv_len;
	return 0;
}

/* See tls/crl.h. Pure; any thread. */
int tls_crl_verify(const struct tls_crl_info *crl, const struct tls_cert_info *ca)
{
	return tls_sig_verify(crl->sig_alg, crl->tbs.ptr, crl->tbs.len,
			      crl->sig.ptr, crl->sig.len, ca->spki.ptr, ca->spki.len);
}

/* See tls/crl.h. Pure; any thread. */
bool tls_crl_issued_by(const struct tls_crl_info *crl, const struct tls_cert_info *ca)
{
	if (crl->issuer.len != ca->subject.len ||
	    memcmp(crl->issuer.ptr, ca->subject.ptr, crl->issuer.len) != 0)
		return false;
	if (crl->akid.len && ca->skid.len &&
	    (crl->akid.len != ca->skid.len ||
	     memcmp(crl->akid.ptr, ca->skid.ptr, crl->akid.len) != 0))
		return false;
	return true;
}

/* See tls/crl.h. Pure; any thread. */
void tls_crl_iter_init(const struct tls_crl_info *crl, struct tls_crl_iter *it)
{
	it->d.p = crl->revoked.ptr;
	it->d.end = crl->revoked.ptr ? crl->revoked.ptr + crl->revoked.len : NULL;
}

/* See tls/crl.h. Pure; any thread. */
int tls_crl_iter_next(struct tls_crl_iter *it, struct tls_crl_entry *e)
{
	struct tls_tlv t;
	bool x = false, y = false, z = false;

	if (!it->d.p || !tls_der_more(&it->d) || tls_der_next(&it->d, &t) < 0)
		return 0;
	return parse_entry(&t, e, &x, &y, &z) == 0 ? 1 : 0;
}

/* See tls/crl.h. Pure; any thread. */
int tls_crl_decode(const uint8_t *in, size_t len, uint8_t *der, size_t cap)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	size_t pos = 0;
	int n;

	if (!in || len == 0)
		return -EINVAL;
	/* DER starts with a SEQUENCE tag; PEM is text. */
	if (in[0] == TLS_DER_SEQUENCE) {
		if (len > cap)
			return -ENOSPC;
		memcpy(der, in, len);
		return (int)len;
	}
	for (;;) {
		n = tls_pem_next((const char *)in, len, &pos, label, sizeof label, der, cap);
		if (n < 0)
			return n;
		if (!strcmp(label, "X509 CRL"))
			return n;
	}
}
