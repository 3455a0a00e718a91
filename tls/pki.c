/*
 * tls/pki.c - key pairs and certificate generation for vouchctl and the
 * tests (API in tls/pki.h).
 *
 * wolfCrypt builds and signs the certificates (wc_MakeCert_ex,
 * wc_SignCert_ex) and does all key arithmetic. Two things we do ourselves,
 * between "make" and "sign", because the broker depends on them:
 *  - Names. The subject Name is encoded here (any UTF-8 up to 64 bytes per
 *    attribute), and the issuer Name is the issuer's subject copied byte
 *    for byte, so the broker finds a device's CA by comparing bytes. We
 *    encode the TBSCertificate with placeholder names and splice ours in
 *    before wolfCrypt signs it.
 *  - Dates. Cert.beforeDate/afterDate take raw ASN.1 times, so expired and
 *    not-yet-valid certificates are as easy as valid ones.
 */
#include "tls/pki.h"
#include "tls/cert.h"
#include "tls/der.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tls_pki_key {
	enum tls_key_type type;
	int bits;
	bool priv;
	union {
		RsaKey rsa;
		ecc_key ecc;
	} u;
};

static const uint8_t oid_rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const uint8_t oid_ec[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const uint8_t oid_p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t oid_at_c[] = { 0x55, 0x04, 0x06 };
static const uint8_t oid_at_st[] = { 0x55, 0x04, 0x08 };
static const uint8_t oid_at_l[] = { 0x55, 0x04, 0x07 };
static const uint8_t oid_at_o[] = { 0x55, 0x04, 0x0a };
static const uint8_t oid_at_ou[] = { 0x55, 0x04, 0x0b };
static const uint8_t oid_at_cn[] = { 0x55, 0x04, 0x03 };

/* ---- keys ------------------------------------------------------------- */

static struct tls_pki_key *key_alloc(enum tls_key_type type)
{
	struct tls_pki_key *k = calloc(1, sizeof *k);
	int rc;

	if (!k)
		return NULL;
	k->type = type;
	rc = type == TLS_KEY_RSA ? wc_InitRsaKey(&k->u.rsa, NULL)
				 : wc_ecc_init(&k->u.ecc);
	if (rc != 0) {
		free(k);
		return NULL;
	}
	return k;
}

/* See tls/pki.h. Any thread. */
void tls_pki_key_free(struct tls_pki_key *k)
{
	if (!k)
		return;
	if (k->type == TLS_KEY_RSA)
		wc_FreeRsaKey(&k->u.rsa);
	else
		wc_ecc_free(&k->u.ecc);
	/* wolfCrypt zeroes the numbers it frees; this covers the rest. */
	memset(k, 0, sizeof *k);
	free(k);
}

/* Bits of an EC key from its curve; 0 for curves we do not issue with. */
static int ecc_bits(ecc_key *e)
{
	switch (wc_ecc_get_curve_id(e->idx)) {
	case ECC_SECP256R1:
		return 256;
	case ECC_SECP384R1:
		return 384;
	default:
		return 0;
	}
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_generate_rng(enum tls_key_type type, int bits,
			     struct WC_RNG *rng, struct tls_pki_key **out)
{
	struct tls_pki_key *k;
	int rc;

	*out = NULL;
	if (type == TLS_KEY_RSA) {
		if (bits == 0)
			bits = 2048;
		if (bits != 2048 && bits != 3072 && bits != 4096)
			return -EINVAL;
	} else if (type == TLS_KEY_EC) {
		if (bits == 0)
			bits = 256;
		if (bits != 256 && bits != 384)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	k = key_alloc(type);
	if (!k)
		return -ENOMEM;
	if (type == TLS_KEY_RSA)
		rc = wc_MakeRsaKey(&k->u.rsa, bits, WC_RSA_EXPONENT, rng);
	else
		rc = wc_ecc_make_key_ex(rng, bits / 8, &k->u.ecc,
					bits == 256 ? ECC_SECP256R1 : ECC_SECP384R1);
	if (rc != 0) {
		tls_pki_key_free(k);
		return -EIO;
	}
	k->bits = bits;
	k->priv = true;
	*out = k;
	return 0;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_generate(enum tls_key_type type, int bits,
			 struct tls_pki_key **out)
{
	WC_RNG rng;
	int rc;

	*out = NULL;
	if (wc_InitRng(&rng) != 0)
		return -EIO;
	rc = tls_pki_key_generate_rng(type, bits, &rng, out);
	wc_FreeRng(&rng);
	return rc;
}

static int rsa_finish(struct tls_pki_key *k)
{
	k->bits = wc_RsaEncryptSize(&k->u.rsa) * 8;
	if (k->bits < 2048 || k->bits > 4096)
		return -EOPNOTSUPP;
	return 0;
}

static int ecc_finish(struct tls_pki_key *k)
{
	k->bits = ecc_bits(&k->u.ecc);
	return k->bits ? 0 : -EOPNOTSUPP;
}

static int load_rsa_pkcs1(const uint8_t *der, size_t len, struct tls_pki_key **out)
{
	struct tls_pki_key *k = key_alloc(TLS_KEY_RSA);
	word32 idx = 0;
	int rc;

	if (!k)
		return -ENOMEM;
	if (wc_RsaPrivateKeyDecode(der, &idx, &k->u.rsa, (word32)len) != 0 ||
	    idx != len) {
		tls_pki_key_free(k);
		return -EINVAL;
	}
	k->priv = true;
	rc = rsa_finish(k);
	if (rc < 0) {
		tls_pki_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

/* SEC1 ECPrivateKey; `curve` is the curve id from a PKCS#8 wrapper or
 * ECC_CURVE_DEF when the key itself names it. */
static int load_ec_sec1(const uint8_t *der, size_t len, int curve,
			struct tls_pki_key **out)
{
	struct tls_pki_key *k = key_alloc(TLS_KEY_EC);
	word32 idx = 0;
	int rc;

	if (!k)
		return -ENOMEM;
	if (curve != ECC_CURVE_DEF &&
	    wc_ecc_set_curve(&k->u.ecc, curve == ECC_SECP256R1 ? 32 : 48, curve) != 0) {
		tls_pki_key_free(k);
		return -EIO;
	}
	if (wc_EccPrivateKeyDecode(der, &idx, &k->u.ecc, (word32)len) != 0 ||
	    idx != len) {
		tls_pki_key_free(k);
		return -EINVAL;
	}
	k->priv = true;
	rc = ecc_finish(k);
	/* A SEC1 key may come without its public point: compute it. */
	if (rc == 0 && k->u.ecc.type == ECC_PRIVATEKEY_ONLY &&
	    wc_ecc_make_pub(&k->u.ecc, NULL) != 0)
		rc = -EINVAL;
	if (rc == 0 && wc_ecc_check_key(&k->u.ecc) != 0)
		rc = -EINVAL;
	if (rc < 0) {
		tls_pki_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_from_der(const uint8_t *der, size_t len, struct tls_pki_key **out)
{
	struct tls_der d, a;
	struct tls_tlv top, ver, second, oid, params, pk;

	*out = NULL;
	if (len == 0 || len > UINT32_MAX)
		return -EINVAL;
	tls_der_init(&d, der, len);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &top) < 0 || tls_der_more(&d))
		return -EINVAL;
	tls_der_enter(&d, &top);
	if (tls_der_expect(&d, TLS_DER_INTEGER, &ver) < 0 || tls_der_next(&d, &second) < 0)
		return -EINVAL;
	switch (second.tag) {
	case TLS_DER_INTEGER: /* PKCS#1 RSAPrivateKey: version, modulus, ... */
		return load_rsa_pkcs1(der, len, out);
	case TLS_DER_OCTET_STRING: /* SEC1 ECPrivateKey: version 1, key, ... */
		return load_ec_sec1(der, len, ECC_CURVE_DEF, out);
	case TLS_DER_SEQUENCE: /* PKCS#8: version, AlgorithmIdentifier, key */
		break;
	default:
		return -EINVAL;
	}
	if (tls_der_expect(&d, TLS_DER_OCTET_STRING, &pk) < 0)
		return -EINVAL;
	tls_der_enter(&a, &second);
	if (tls_der_expect(&a, TLS_DER_OID, &oid) < 0)
		return -EINVAL;
	if (tls_der_oid_is(&oid, oid_rsa, sizeof oid_rsa))
		return load_rsa_pkcs1(pk.val, pk.len, out);
	if (!tls_der_oid_is(&oid, oid_ec, sizeof oid_ec))
		return -EOPNOTSUPP;
	if (tls_der_expect(&a, TLS_DER_OID, &params) < 0)
		return -EINVAL;
	if (tls_der_oid_is(&params, oid_p256, sizeof oid_p256))
		return load_ec_sec1(pk.val, pk.len, ECC_SECP256R1, out);
	if (tls_der_oid_is(&params, oid_p384, sizeof oid_p384))
		return load_ec_sec1(pk.val, pk.len, ECC_SECP384R1, out);
	return -EOPNOTSUPP;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_from_pem(const char *pem, size_t len, struct tls_pki_key **out)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	size_t pos = 0;
	uint8_t *der;
	int rc;

	*out = NULL;
	der = malloc(len ? len : 1);
	if (!der)
		return -ENOMEM;
	for (;;) {
		rc = tls_pem_next(pem, len, &pos, label, sizeof label, der, len);
		if (rc < 0)
			break;
		if (!strcmp(label, "PRIVATE KEY") || !strcmp(label, "RSA PRIVATE KEY") ||
		    !strcmp(label, "EC PRIVATE KEY")) {
			rc = tls_pki_key_from_der(der, (size_t)rc, out);
			break;
		}
		if (!strcmp(label, "ENCRYPTED PRIVATE KEY")) {
			rc = -EOPNOTSUPP;
			break;
		}
	}
	/* Traditional PEM encryption puts headers in the block. */
	if (rc == -EINVAL && memmem(pem, len, "Proc-Type: 4,ENCRYPTED", 22))
		rc = -EOPNOTSUPP;
	memset(der, 0, len ? len : 1);
	free(der);
	return rc;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_from_spki(const uint8_t *spki, size_t len, struct tls_pki_key **out)
{
	enum tls_key_type type;
	struct tls_pki_key *k;
	word32 idx = 0;
	int bits, rc;

	*out = NULL;
	if (tls_spki_key(spki, len, &type, &bits) < 0)
		return -EINVAL;
	if (type != TLS_KEY_RSA && type != TLS_KEY_EC)
		return -EOPNOTSUPP;
	k = key_alloc(type);
	if (!k)
		return -ENOMEM;
	if (type == TLS_KEY_RSA) {
		rc = wc_RsaPublicKeyDecode(spki, &idx, &k->u.rsa, (word32)len) ? -EINVAL
									      : rsa_finish(k);
	} else {
		rc = wc_EccPublicKeyDecode(spki, &idx, &k->u.ecc, (word32)len) ? -EINVAL
									       : ecc_finish(k);
		if (rc == 0 && wc_ecc_check_key(&k->u.ecc) != 0)
			rc = -EINVAL;
	}
	if (rc < 0) {
		tls_pki_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

/* See tls/pki.h. Any thread. */
enum tls_key_type tls_pki_key_type(const struct tls_pki_key *k)
{
	return k->type;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_bits(const struct tls_pki_key *k)
{
	return k->bits;
}

/* See tls/pki.h. Any thread. */
bool tls_pki_key_has_private(const struct tls_pki_key *k)
{
	return k->priv;
}

/* wolfCrypt takes keys through non-const pointers even to read them. */
static void *key_ptr(const struct tls_pki_key *k)
{
	return k->type == TLS_KEY_RSA ? (void *)&k->u.rsa : (void *)&k->u.ecc;
}

static int key_wc_type(const struct tls_pki_key *k)
{
	return k->type == TLS_KEY_RSA ? RSA_TYPE : ECC_TYPE;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_spki(const struct tls_pki_key *k, uint8_t *out, size_t cap)
{
	int rc;

	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	if (k->type == TLS_KEY_RSA)
		rc = wc_RsaKeyToPublicDer(key_ptr(k), out, (word32)cap);
	else
		rc = wc_EccPublicKeyToDer(key_ptr(k), out, (word32)cap, 1);
	if (rc == BUFFER_E)
		return -ENOSPC;
	return rc > 0 ? rc : -EIO;
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_pkcs8(const struct tls_pki_key *k, uint8_t *der, size_t cap)
{
	static const uint8_t zero;
	uint8_t *inner;
	struct tls_derw w;
	size_t top, alg;
	int n;

	if (!k->priv)
		return -EINVAL;
	inner = malloc(TLS_PKI_KEY_DER_MAX);
	if (!inner)
		return -ENOMEM;
	/* The inner key: PKCS#1 RSAPrivateKey or SEC1 ECPrivateKey without
	 * the curve (it goes in the AlgorithmIdentifier, RFC 5915 3). */
	if (k->type == TLS_KEY_RSA)
		n = wc_RsaKeyToDer(key_ptr(k), inner, TLS_PKI_KEY_DER_MAX);
	else
		n = wc_EccPrivateKeyToDer(key_ptr(k), inner, TLS_PKI_KEY_DER_MAX);
	if (n <= 0) {
		free(inner);
		return -EIO;
	}
	tls_derw_init(&w, der, cap);
	top = tls_derw_begin(&w);
	tls_derw_tlv(&w, TLS_DER_INTEGER, &zero, 1); /* version 0 */
	alg = tls_derw_begin(&w);
	if (k->type == TLS_KEY_RSA) {
		tls_derw_tlv(&w, TLS_DER_OID, oid_rsa, sizeof oid_rsa);
		tls_derw_tlv(&w, TLS_DER_NULL, NULL, 0);
	} else {
		tls_derw_tlv(&w, TLS_DER_OID, oid_ec, sizeof oid_ec);
		if (k->bits == 256)
			tls_derw_tlv(&w, TLS_DER_OID, oid_p256, sizeof oid_p256);
		else
			tls_derw_tlv(&w, TLS_DER_OID, oid_p384, sizeof oid_p384);
	}
	tls_derw_end(&w, TLS_DER_SEQUENCE, alg);
	tls_derw_tlv(&w, TLS_DER_OCTET_STRING, inner, (size_t)n);
	tls_derw_end(&w, TLS_DER_SEQUENCE, top);
	memset(inner, 0, TLS_PKI_KEY_DER_MAX);
	free(inner);
	return tls_derw_result(&w);
}

/* See tls/pki.h. Any thread. */
int tls_pki_key_pem(const struct tls_pki_key *k, char *out, size_t cap)
{
	uint8_t *der = malloc(TLS_PKI_KEY_DER_MAX);
	int n;

	if (!der)
		return -ENOMEM;
	n = tls_pki_key_pkcs8(k, der, TLS_PKI_KEY_DER_MAX);
	if (n > 0)
		n = tls_pem_encode("PRIVATE KEY", der, (size_t)n, out, cap);
	memset(der, 0, TLS_PKI_KEY_DER_MAX);
	free(der);
	return n;
}

/* 0 if the private key `k` belongs to the SubjectPublicKeyInfo `spki`. */
static int key_matches(const struct tls_pki_key *k, const struct tls_span *spki)
{
	uint8_t buf[1024];
	int n = tls_pki_key_spki(k, buf, sizeof buf);

	if (n < 0)
		return n;
	if ((size_t)n != spki->len || memcmp(buf, spki->ptr, spki->len) != 0)
		return -EKEYREJECTED;
	return 0;
}

/* ---- names, dates, extensions ----------------------------------------- */

/* Append one single-valued RDN; s NULL or "" appends nothing. */
static int put_rdn(struct tls_derw *w, const uint8_t *oid, size_t oid_len,
		   uint8_t str_tag, const char *s)
{
	size_t n, set, seq;

	if (!s || !*s)
		return 0;
	n = strlen(s);
	if (n > TLS_CERT_NAME_MAX)
		return -ENAMETOOLONG;
	set = tls_derw_begin(w);
	seq = tls_derw_begin(w);
	tls_derw_tlv(w, TLS_DER_OID, oid, oid_len);
	tls_derw_tlv(w, str_tag, s, n);
	tls_derw_end(w, TLS_DER_SEQUENCE, seq);
	tls_derw_end(w, TLS_DER_SET, set);
	return 0;
}

/*
 * Encode a Name in the usual order (C, ST, L, O, OU, CN), country as
 * PrintableString and the rest as UTF8String (RFC 5280 4.1.2.6).
 */
static int encode_name(const struct tls_pki_name *n, uint8_t *out, size_t cap)
{
	struct tls_derw w;
	size_t top;
	int rc = 0, chk;

	if (n->c && *n->c) {
		if (strlen(n->c) != 2 || !((n->c[0] >= 'A' && n->c[0] <= 'Z') ||
					   (n->c[0] >= 'a' && n->c[0] <= 'z')) ||
		    !((n->c[1] >= 'A' && n->c[1] <= 'Z') || (n->c[1] >= 'a' && n->c[1] <= 'z')))
			return -EINVAL;
	}
	tls_derw_init(&w, out, cap);
	top = tls_derw_begin(&w);
	rc = put_rdn(&w, oid_at_c, sizeof oid_at_c, TLS_DER_PRINTABLE_STRING, n->c);
	if (!rc)
		rc = put_rdn(&w, oid_at_st, sizeof oid_at_st, TLS_DER_UTF8_STRING, n->st);
	if (!rc)
		rc = put_rdn(&w, oid_at_l, sizeof oid_at_l, TLS_DER_UTF8_STRING, n->l);
	if (!rc)
		rc = put_rdn(&w, oid_at_o, sizeof oid_at_o, TLS_DER_UTF8_STRING, n->o);
	if (!rc)
		rc = put_rdn(&w, oid_at_ou, sizeof oid_at_ou, TLS_DER_UTF8_STRING, n->ou);
	if (!rc)
		rc = put_rdn(&w, oid_at_cn, sizeof oid_at_cn, TLS_DER_UTF8_STRING, n->cn);
	if (rc < 0)
		return rc;
	if (w.len == top)
		return -EINVAL; /* an empty subject identifies nothing */
	tls_derw_end(&w, TLS_DER_SEQUENCE, top);
	rc = tls_derw_result(&w);
	if (rc < 0)
		return rc;
	/* The parser is the judge of what is valid UTF-8 in a name. */
	chk = tls_name_fields(out, (size_t)rc, NULL, NULL, NULL);
	return chk < 0 ? chk : rc;
}

/* UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
static int encode_time(int64_t t, uint8_t *out, int *len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char s[64];
	int y;

	if (!gmtime_r(&tt, &tm))
		return -EINVAL;
	y = tm.tm_year + 1900;
	if (y >= 1950 && y < 2050) {
		snprintf(s, sizeof s, "%02d%02d%02d%02d%02d%02dZ", y % 100,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		out[0] = TLS_DER_UTC_TIME;
	} else if (y >= 0 && y <= 9999) {
		snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02dZ", y,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		out[0] = TLS_DER_GENERALIZED_TIME;
	} else {
		return -EINVAL;
	}
	out[1] = (uint8_t)strlen(s);
	memcpy(out + 2, s, out[1]);
	*len = 2 + out[1];
	return 0;
}

/* subjectAltName GeneralNames: dNSName [2] and iPAddress [7]. */
static int encode_san(const struct tls_pki_spec *s, uint8_t *out, size_t cap)
{
	struct tls_derw w;
	size_t top;

	if (s->n_dns > TLS_PKI_MAX_SAN || s->n_ip > TLS_PKI_MAX_SAN)
		return -EINVAL;
	tls_derw_init(&w, out, cap);
	top = tls_derw_begin(&w);
	for (size_t i = 0; i < s->n_dns; i++) {
		size_t n = s->dns[i] ? strlen(s->dns[i]) : 0;

		if (n == 0 || n > 253)
			return -EINVAL;
		for (size_t j = 0; j < n; j++)
			if ((unsigned char)s->dns[i][j] <= ' ' || (unsigned char)s->dns[i][j] >= 0x7f)
				return -EINVAL;
		tls_derw_tlv(&w, 0x82, s->dns[i], n);
	}
	for (size_t i = 0; i < s->n_ip; i++) {
		uint8_t a[16];

		if (!s->ip[i])
			return -EINVAL;
		if (inet_pton(AF_INET, s->ip[i], a) == 1)
			tls_derw_tlv(&w, 0x87, a, 4);
		else if (inet_pton(AF_INET6, s->ip[i], a) == 1)
			tls_derw_tlv(&w, 0x87, a, 16);
		else
			return -EINVAL;
	}
	if (w.len == top)
		return 0;
	tls_derw_end(&w, TLS_DER_SEQUENCE, top);
	return tls_derw_result(&w);
}

/*
 * Replace children of the SEQUENCE at buf[0..len) (a TBSCertificate or a
 * CertificationRequestInfo): child `ia` by a[alen] and child `ib` by
 * b[blen] (index -1: none). Returns the new length or -errno.
 */
static int splice_children(uint8_t *buf, size_t len, size_t cap, int ia,
			   const uint8_t *a, size_t alen, int ib,
			   const uint8_t *b, size_t blen)
{
	struct tls_der d;
	struct tls_tlv top, t;
	struct tls_derw w;
	uint8_t *tmp;
	size_t mark;
	int i = 0, rc;

	tls_der_init(&d, buf, len);
	if (tls_der_expect(&d, TLS_DER_SEQUENCE, &top) < 0 || tls_der_more(&d))
		return -EIO;
	tmp = malloc(cap);
	if (!tmp)
		return -ENOMEM;
	tls_derw_init(&w, tmp, cap);
	mark = tls_derw_begin(&w);
	tls_der_enter(&d, &top);
	while (tls_der_more(&d)) {
		if (tls_der_next(&d, &t) < 0) {
			free(tmp);
			return -EIO;
		}
		if (i == ia)
			tls_derw_raw(&w, a, alen);
		else if (i == ib)
			tls_derw_raw(&w, b, blen);
		else
			tls_derw_raw(&w, t.tlv, t.tlv_len);
		i++;
	}
	tls_derw_end(&w, TLS_DER_SEQUENCE, mark);
	rc = tls_derw_result(&w);
	if (rc > 0)
		memcpy(buf, tmp, (size_t)rc);
	free(tmp);
	return rc;
}

static int sig_type_for(const struct tls_pki_key *signer)
{
	if (signer->type == TLS_KEY_RSA)
		return CTC_SHA256wRSA;
	return signer->bits == 384 ? CTC_SHA384wECDSA : CTC_SHA256wECDSA;
}

/* wolfCrypt error -> -errno for callers. */
static int wc_err(int rc)
{
	if (rc == BUFFER_E)
		return -ENOSPC;
	if (rc == MEMORY_E)
		return -ENOMEM;
	return -EIO;
}

/* See tls/pki.h. Any thread. */
void tls_pki_spec_init(struct tls_pki_spec *s, enum tls_pki_kind kind,
		       int64_t now, int days)
{
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->not_before = now - TLS_PKI_BACKDATE;
	s->not_after = now + (int64_t)days * 86400;
	s->path_len = kind == TLS_PKI_INTERMEDIATE_CA ? 0 : -1;
}

/*
 * The common path of tls_pki_issue() and tls_pki_sign_csr(): the subject
 * comes as an encoded Name.
 */
static int issue(const struct tls_pki_spec *spec, const uint8_t *subject,
		 size_t subject_len, const struct tls_pki_key *key,
		 const struct tls_pki_issuer *issuer, WC_RNG *caller_rng,
		 uint8_t *der, size_t cap)
{
	struct tls_cert_info *ci = NULL;
	const struct tls_pki_key *signer;
	const uint8_t *iname;
	size_t ilen;
	Cert *c = NULL;
	WC_RNG own, *rng = caller_rng;
	bool rng_ok = false;
	const char *ku;
	int rc, n;

	if (!spec || !key || !der || spec->not_after <= spec->not_before)
		return -EINVAL;
	if (spec->kind > TLS_PKI_VERIFICATION || spec->serial_len > sizeof spec->serial)
		return -EINVAL;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	ci = malloc(sizeof *ci);
	c = malloc(sizeof *c);
	if (!ci || !c) {
		rc = -ENOMEM;
		goto out;
	}

	/* Who signs, and under which name. */
	if (issuer) {
		rc = tls_cert_parse(issuer->cert, issuer->cert_len, ci);
		if (rc < 0)
			goto out;
		rc = -EINVAL;
		if (!ci->is_ca || !issuer->key || !issuer->key->priv)
			goto out;
		rc = key_matches(issuer->key, &ci->spki);
		if (rc < 0)
			goto out;
		signer = issuer->key;
		iname = ci->subject.ptr;
		ilen = ci->subject.len;
	} else {
		rc = -EINVAL;
		if (!key->priv)
			goto out;
		signer = key;
		iname = subject;
		ilen = subject_len;
	}

	rc = -EIO;
	if (wc_InitCert(c) != 0)
		goto out;
	if (!rng) {
		if (wc_InitRng(&own) != 0)
			goto out;
		rng = &own;
		rng_ok = true;
	}
	/* Placeholders; the real names are spliced in below. */
	strcpy(c->subject.commonName, "-");
	strcpy(c->issuer.commonName, "-");
	c->selfSigned = issuer == NULL;
	c->sigType = sig_type_for(signer);

	if (spec->serial_len) {
		memcpy(c->serial, spec->serial, spec->serial_len);
		c->serialSz = (int)spec->serial_len;
	} else {
		if (wc_RNG_GenerateBlock(rng, c->serial, TLS_PKI_SERIAL_LEN) != 0)
			goto out;
		/* Positive (top bit clear) and a full 16 bytes long. */
		c->serial[0] = (uint8_t)((c->serial[0] & 0x7f) | 0x01);
		c->serialSz = TLS_PKI_SERIAL_LEN;
	}
	{
		/* RFC 5280 4.1.2.2: positive. The bytes are a magnitude, so
		 * only zero is out; wolfCrypt pads a set top bit itself. */
		uint8_t any = 0;

		for (int i = 0; i < c->serialSz; i++)
			any |= c->serial[i];
		if (!any) {
			rc = -EINVAL;
			goto out;
		}
	}

	rc = encode_time(spec->not_before, c->beforeDate, &c->beforeDateSz);
	if (rc == 0)
		rc = encode_time(spec->not_after, c->afterDate, &c->afterDateSz);
	if (rc < 0)
		goto out;

	switch (spec->kind) {
	case TLS_PKI_ROOT_CA:
	case TLS_PKI_INTERMEDIATE_CA:
		c->isCA = 1;
		if (spec->path_len >= 0) {
			if (spec->path_len > 255) {
				rc = -EINVAL;
				goto out;
			}
			c->pathLen = (byte)spec->path_len;
			c->pathLenSet = 1;
		}
		ku = "keyCertSign,cRLSign";
		break;
	case TLS_PKI_DEVICE:
	case TLS_PKI_SERVER:
		ku = key->type == TLS_KEY_RSA ? "digitalSignature,keyEncipherment"
					      : "digitalSignature";
		break;
	default:
		ku = "digitalSignature";
		break;
	}
	/* basicConstraints on every certificate: CA:FALSE for end entities. */
	c->basicConstSet = 1;
	rc = -EIO;
	if (wc_SetKeyUsage(c, ku) != 0)
		goto out;
	if (spec->kind == TLS_PKI_DEVICE && wc_SetExtKeyUsage(c, "clientAuth") != 0)
		goto out;
	if (spec->kind == TLS_PKI_SERVER && wc_SetExtKeyUsage(c, "serverAuth") != 0)
		goto out;
	n = encode_san(spec, c->altNames, sizeof c->altNames);
	if (n < 0) {
		rc = n;
		goto out;
	}
	c->altNamesSz = n;
	if (wc_SetSubjectKeyIdFromPublicKey_ex(c, key_wc_type(key), key_ptr(key)) != 0)
		goto out;
	if (issuer)
		n = wc_SetAuthKeyIdFromCert(c, issuer->cert, (int)issuer->cert_len);
	else
		n = wc_SetAuthKeyIdFromPublicKey_ex(c, key_wc_type(key), key_ptr(key));
	if (n != 0)
		goto out;

	n = wc_MakeCert_ex(c, der, (word32)cap, key_wc_type(key), key_ptr(key), rng);
	if (n < 0) {
		rc = wc_err(n);
		goto out;
	}
	/* TBSCertificate children: [0] version, serial, signature, issuer (3),
	 * validity, subject (5), ... */
	n = splice_children(der, (size_t)c->bodySz, cap, 3, iname, ilen, 5,
			    subject, subject_len);
	if (n < 0) {
		rc = n;
		goto out;
	}
	n = wc_SignCert_ex(n, c->sigType, der, (word32)cap, key_wc_type(signer),
			   key_ptr(signer), rng);
	if (n < 0) {
		rc = wc_err(n);
		goto out;
	}
	/* Read back what we made: it must parse and carry our names. */
	rc = tls_cert_parse(der, (size_t)n, ci);
	if (rc < 0 || ci->subject.len != subject_len ||
	    memcmp(ci->subject.ptr, subject, subject_len) != 0) {
		rc = -EIO;
		goto out;
	}
	rc = n;
out:
	if (rng_ok)
		wc_FreeRng(&own);
	free(c);
	free(ci);
	return rc;
}

/* See tls/pki.h. Any thread. */
int tls_pki_issue_rng(const struct tls_pki_spec *spec,
		      const struct tls_pki_key *subject_key,
		      const struct tls_pki_issuer *issuer, struct WC_RNG *rng,
		      uint8_t *der, size_t cap)
{
	uint8_t name[1024];
	int n;

	if (!spec)
		return -EINVAL;
	n = encode_name(&spec->subject, name, sizeof name);
	if (n < 0)
		return n;
	return issue(spec, name, (size_t)n, subject_key, issuer, rng, der, cap);
}

/* See tls/pki.h. Any thread. */
int tls_pki_issue(const struct tls_pki_spec *spec,
		  const struct tls_pki_key *subject_key,
		  const struct tls_pki_issuer *issuer, uint8_t *der, size_t cap)
{
	return tls_pki_issue_rng(spec, subject_key, issuer, NULL, der, cap);
}

/* See tls/pki.h. Any thread. */
int tls_pki_make_csr(const struct tls_pki_name *subject,
		     const struct tls_pki_key *key, uint8_t *der, size_t cap)
{
	uint8_t name[1024];
	Cert *c;
	WC_RNG rng;
	int n, rc;

	if (!subject || !key || !key->priv)
		return -EINVAL;
	n = encode_name(subject, name, sizeof name);
	if (n < 0)
		return n;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	c = malloc(sizeof *c);
	if (!c)
		return -ENOMEM;
	if (wc_InitCert(c) != 0 || wc_InitRng(&rng) != 0) {
		free(c);
		return -EIO;
	}
	strcpy(c->subject.commonName, "-");
	c->version = 0; /* PKCS#10 v1; wc_InitCert() set up X.509 v3 */
	c->sigType = sig_type_for(key);
	rc = wc_MakeCertReq_ex(c, der, (word32)cap, key_wc_type(key), key_ptr(key));
	if (rc < 0) {
		rc = wc_err(rc);
		goto out;
	}
	/* CertificationRequestInfo: version, subject (1), SPKI, attributes. */
	rc = splice_children(der, (size_t)c->bodySz, cap, 1, name, (size_t)n, -1,
			     NULL, 0);
	if (rc < 0)
		goto out;
	rc = wc_SignCert_ex(rc, c->sigType, der, (word32)cap, key_wc_type(key),
			    key_ptr(key), &rng);
	if (rc < 0)
		rc = wc_err(rc);
out:
	wc_FreeRng(&rng);
	free(c);
	return rc;
}

/* See tls/pki.h. Any thread. */
int tls_pki_sign_csr(const uint8_t *csr, size_t csr_len,
		     const struct tls_pki_spec *spec,
		     const struct tls_pki_issuer *issuer,
		     uint8_t *der, size_t cap)
{
	struct tls_csr_info ci;
	struct tls_pki_key *k;
	int rc;

	rc = tls_csr_parse(csr, csr_len, &ci);
	if (rc < 0)
		return rc;
	rc = tls_csr_verify(&ci);
	if (rc < 0)
		return rc;
	rc = tls_pki_key_from_spki(ci.spki.ptr, ci.spki.len, &k);
	if (rc < 0)
		return rc;
	rc = issue(spec, ci.subject.ptr, ci.subject.len, k, issuer, NULL, der, cap);
	tls_pki_key_free(k);
	return rc;
}

/* ---- files ------------------------------------------------------------ */

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

/* See tls/pki.h. Any thread. */
int tls_pki_file_write(const char *path, const void *data, size_t len,
		       mode_t mode, bool overwrite)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + sizeof ".tmpXXXXXX");
	const uint8_t *p = data;
	int fd, rc = 0;

	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmpXXXXXX", sizeof ".tmpXXXXXX");
	/* mkstemp creates the file 0600: a key is never readable by others,
	 * not even for a moment. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		free(tmp);
		return rc;
	}
	if (fchmod(fd, mode) < 0)
		rc = -errno;
	while (rc == 0 && len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			break;
		}
		p += w;
		len -= (size_t)w;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0) {
		if (overwrite) {
			if (rename(tmp, path) < 0)
				rc = -errno;
		} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
			rc = -errno;
			/* Filesystems without RENAME_NOREPLACE: link() also
			 * refuses to replace. */
			if (rc == -EINVAL || rc == -ENOSYS) {
				rc = link(tmp, path) < 0 ? -errno : 0;
				unlink(tmp);
			}
		}
	}
	if (rc < 0)
		unlink(tmp);
	else
		rc = fsync_dir_of(path);
	free(tmp);
	return rc;
}

/* See tls/pki.h. Any thread. */
int tls_pki_file_read(const char *path, size_t max, char **data, size_t *len)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd, rc = 0;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return 0;
}

/* See tls/pki.h. */
int tls_pki_pem_pair_matches(const char *crt, size_t crt_len, const char *key,
			     size_t key_len)
{
	uint8_t der[TLS_PKI_DER_MAX], spki[2048];
	struct tls_cert_info ci;
	struct tls_pki_key *k = NULL;
	int n = tls_cert_pem_to_der(crt, crt_len, der, sizeof der);

	if (n <= 0 || tls_cert_parse(der, (size_t)n, &ci) != 0)
		return -EBADMSG;
	int rc = tls_pki_key_from_pem(key, key_len, &k);
	if (rc != 0)
		return rc;
	n = tls_pki_key_spki(k, spki, sizeof spki);
	tls_pki_key_free(k);
	return n > 0 && (size_t)n == ci.spki.len && !memcmp(spki, ci.spki.ptr, ci.spki.len);
}
