/*
 * tests/unit/test_cert.c - the certificate and CSR parser (tls/cert.h).
 *
 * Three sources of input: certificates made by the openssl CLI
 * (cert_vectors.h), so fields and signatures are checked against an
 * independent encoder and signer; hand-built DER for every odd corner
 * (string types, times, extensions, lengths); and mutations of both: every
 * truncation, with the input ending against a PROT_NONE page so that an
 * over-read faults, and every single-bit flip, which must either fail to
 * parse or fail the signature check.
 */
#include "tls/cert.h"
#include "tls/der.h"
#include "cert_vectors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

#include "check.h"

static char hexbuf[4][256];

static const char *hx(int slot, const uint8_t *p, size_t n)
{
	if (n > 120)
		n = 120;
	tls_hex(p, n, hexbuf[slot]);
	return hexbuf[slot];
}

/* DER of the first certificate in a PEM string (static buffers per slot). */
static uint8_t derbuf[8][4096];

static size_t pem_der(int slot, const char *pem)
{
	int n = tls_cert_pem_to_der(pem, strlen(pem), derbuf[slot], sizeof derbuf[slot]);

	if (n <= 0) {
		fprintf(stderr, "cannot decode test vector %d: %d\n", slot, n);
		exit(1);
	}
	return (size_t)n;
}

/* ---- guard pages ------------------------------------------------------ */

struct guard {
	uint8_t *map;
	size_t len, room;
};

static void guard_init(struct guard *g, size_t room)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	g->room = (room + pg - 1) / pg * pg;
	g->len = g->room + pg;
	g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	if (g->map == MAP_FAILED || mprotect(g->map + g->room, pg, PROT_NONE) != 0) {
		perror("mmap");
		exit(1);
	}
}

/* Place p[0..n) so that its last byte is the last readable byte. */
static const uint8_t *guard_put(struct guard *g, const uint8_t *p, size_t n)
{
	uint8_t *dst = g->map + g->room - n;

	memcpy(dst, p, n);
	return dst;
}

static void guard_free(struct guard *g)
{
	munmap(g->map, g->len);
}

/* ---- openssl-made vectors --------------------------------------------- */

static void test_vectors(void)
{
	struct tls_cert_info dev, ca, ecca, rsadev;
	size_t dl = pem_der(0, vec_ecdev_pem), cl = pem_der(1, vec_rsaca_pem);
	size_t el = pem_der(2, vec_ecca_pem), rl = pem_der(3, vec_rsadev_pem);
	char name[512];

	CHECK_INT(tls_cert_parse(derbuf[0], dl, &dev), 0);
	CHECK_INT(tls_cert_parse(derbuf[1], cl, &ca), 0);
	CHECK_INT(tls_cert_parse(derbuf[2], el, &ecca), 0);
	CHECK_INT(tls_cert_parse(derbuf[3], rl, &rsadev), 0);

	CHECK_STR(hx(0, dev.id, sizeof dev.id), VEC_ECDEV_ID);
	CHECK_STR(hx(0, dev.serial, dev.serial_len), VEC_ECDEV_SERIAL);
	CHECK_INT(dev.version, 3);
	CHECK_STR(dev.cn, VEC_ECDEV_CN);
	CHECK_STR(dev.o, "IoV");
	CHECK_STR(dev.ou, "MQTT");
	CHECK_STR(dev.issuer_cn, "RSA Vector CA");
	CHECK_INT(dev.not_before, VEC_ECDEV_NOT_BEFORE);
	CHECK_INT(dev.not_after, VEC_ECDEV_NOT_AFTER);
	CHECK(!dev.is_ca);
	CHECK_INT(dev.path_len, -1);
	CHECK(dev.has_key_usage);
	CHECK_INT(dev.key_usage, TLS_KU_DIGITAL_SIGNATURE);
	CHECK_INT(dev.ext_key_usage, TLS_EKU_CLIENT_AUTH);
	CHECK_INT(dev.key_type, TLS_KEY_EC);
	CHECK_INT(dev.key_bits, 256);
	CHECK_INT(dev.sig_alg, TLS_SIG_RSA_SHA256);
	CHECK_STR(hx(0, dev.skid.ptr, dev.skid.len), VEC_ECDEV_SKID);
	CHECK_STR(hx(0, dev.akid.ptr, dev.akid.len), VEC_RSACA_SKID);
	/* Spans point into the caller's buffer. */
	CHECK(dev.subject.ptr > derbuf[0] && dev.subject.ptr + dev.subject.len <= derbuf[0] + dl);
	CHECK(dev.tbs.ptr == derbuf[0] + 4);
	CHECK(tls_name_format(dev.subject.ptr, dev.subject.len, name, sizeof name) > 0);
	CHECK_STR(name, VEC_ECDEV_SUBJECT);
	/* The issuing CA is found by comparing names byte for byte. */
	CHECK(dev.issuer.len == ca.subject.len &&
	      !memcmp(dev.issuer.ptr, ca.subject.ptr, ca.subject.len));

	CHECK_STR(hx(0, ca.id, sizeof ca.id), VEC_RSACA_ID);
	CHECK_STR(hx(0, ca.serial, ca.serial_len), VEC_RSACA_SERIAL);
	CHECK(ca.is_ca);
	CHECK_INT(ca.key_type, TLS_KEY_RSA);
	CHECK_INT(ca.key_bits, 2048);
	CHECK_INT(ca.not_after, VEC_RSACA_NOT_AFTER);
	CHECK_STR(hx(0, ca.skid.ptr, ca.skid.len), VEC_RSACA_SKID);
	CHECK_STR(ca.o, "Vouch Vectors");
	CHECK_STR(ca.ou, "");

	CHECK_STR(hx(0, rsadev.id, sizeof rsadev.id), VEC_RSADEV_ID);
	CHECK_STR(hx(0, rsadev.serial, rsadev.serial_len), "2a");
	CHECK_INT(rsadev.sig_alg, TLS_SIG_ECDSA_SHA384);
	CHECK_INT(rsadev.key_type, TLS_KEY_RSA);
	CHECK_INT(rsadev.not_after, VEC_RSADEV_NOT_AFTER);
	CHECK_STR(hx(0, rsadev.akid.ptr, rsadev.akid.len), VEC_ECCA_SKID);

	/* Signatures made by openssl: RSA over an EC key, ECDSA over RSA. */
	CHECK_INT(tls_cert_verify_signed_by(derbuf[0], dl, derbuf[1], cl), 0);
	CHECK_INT(tls_cert_verify_signed_by(derbuf[3], rl, derbuf[2], el), 0);
	CHECK_INT(tls_cert_verify_signed_by(derbuf[1], cl, derbuf[1], cl), 0);
	CHECK_INT(tls_cert_verify_signed_by(derbuf[2], el, derbuf[2], el), 0);
	CHECK_INT(tls_cert_check_sig(&dev, &ca), 0);
	/* Wrong issuer: another key of the same type, and another type. */
	CHECK_INT(tls_cert_verify_signed_by(derbuf[0], dl, derbuf[2], el), -EBADMSG);
	CHECK_INT(tls_cert_verify_signed_by(derbuf[3], rl, derbuf[1], cl), -EBADMSG);
	CHECK_INT(tls_cert_verify_signed_by(derbuf[0], dl, derbuf[0], dl), -EBADMSG);
	CHECK_INT(tls_cert_verify_signed_by(derbuf[0], dl - 1, derbuf[1], cl), -EINVAL);

	/* tls_cert_id agrees with the parse. */
	{
		uint8_t id[TLS_CERT_ID_LEN];

		CHECK_INT(tls_cert_id(derbuf[0], dl, id), 0);
		CHECK(!memcmp(id, dev.id, sizeof id));
	}
}

static void test_csr_vector(void)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	uint8_t der[2048], bad[2048];
	size_t pos = 0;
	struct tls_csr_info ci;
	int n = tls_pem_next(vec_ecdev_csr_pem, strlen(vec_ecdev_csr_pem), &pos, label,
			     sizeof label, der, sizeof der);

	CHECK(n > 0);
	CHECK_STR(label, "CERTIFICATE REQUEST");
	CHECK_INT(tls_csr_parse(der, (size_t)n, &ci), 0);
	CHECK_STR(ci.cn, VEC_ECDEV_CN);
	CHECK_STR(ci.ou, "MQTT");
	CHECK_INT(ci.key_type, TLS_KEY_EC);
	CHECK_INT(ci.key_bits, 256);
	CHECK_INT(ci.sig_alg, TLS_SIG_ECDSA_SHA256);
	CHECK_INT(tls_csr_verify(&ci), 0);
	/* A CSR is not a certificate and the other way round. */
	{
		struct tls_cert_info c;

		CHECK_INT(tls_cert_parse(der, (size_t)n, &c), -EINVAL);
		CHECK_INT(tls_csr_parse(derbuf[0], pem_der(0, vec_ecdev_pem), &ci), -EINVAL);
	}
	/* Change one letter of the subject: still a CSR, no longer signed. */
	memcpy(bad, der, (size_t)n);
	{
		uint8_t *p = memmem(bad, (size_t)n, "HangZhou", 8);

		CHECK(p != NULL);
		if (p)
			p[0] = 'X';
	}
	CHECK_INT(tls_csr_parse(bad, (size_t)n, &ci), 0);
	CHECK_INT(tls_csr_verify(&ci), -EBADMSG);

	/* Every truncation fails cleanly. */
	{
		struct guard g;

		guard_init(&g, (size_t)n);
		for (int k = 0; k < n; k++)
			CHECK_INT(tls_csr_parse(guard_put(&g, der, (size_t)k), (size_t)k, &ci),
				  -EINVAL);
		guard_free(&g);
	}
}

/* ---- mutations of real certificates ----------------------------------- */

static void sweep(const uint8_t *der, size_t len, const uint8_t *ca, size_t ca_len)
{
	struct tls_cert_info ci;
	struct guard g;
	uint8_t *m = malloc(len);
	int parsed_flips = 0;

	guard_init(&g, len);
	/* Every proper prefix is refused, and nothing reads past its end. */
	for (size_t k = 0; k < len; k++) {
		int rc = tls_cert_parse(guard_put(&g, der, k), k, &ci);

		if (rc != -EINVAL) {
			fprintf(stderr, "prefix %zu/%zu: rc %d\n", k, len, rc);
			failures++;
		}
	}
	CHECK_INT(tls_cert_parse(guard_put(&g, der, len), len, &ci), 0);
	/* Every single-bit flip: refused by the parser or by the signature. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			int rc;

			memcpy(m, der, len);
			m[i] ^= (uint8_t)(1u << bit);
			rc = tls_cert_parse(guard_put(&g, m, len), len, &ci);
			if (rc != 0)
				continue;
			parsed_flips++;
			rc = tls_cert_verify_signed_by(m, len, ca, ca_len);
			if (rc == 0) {
				fprintf(stderr, "flip at %zu bit %d still verifies\n", i, bit);
				failures++;
			}
		}
	}
	/* The sweep must have reached the signature check often. */
	CHECK(parsed_flips > (int)len / 4);
	guard_free(&g);
	free(m);
}

static void test_mutations(void)
{
	size_t dl = pem_der(0, vec_ecdev_pem), cl = pem_der(1, vec_rsaca_pem);
	size_t el = pem_der(2, vec_ecca_pem), rl = pem_der(3, vec_rsadev_pem);

	sweep(derbuf[0], dl, derbuf[1], cl);
	sweep(derbuf[3], rl, derbuf[2], el);
	sweep(derbuf[2], el, derbuf[2], el);
}

/* ---- hand-built certificates ------------------------------------------ */

static const uint8_t v3[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };
static const uint8_t serial1[] = { 0x02, 0x01, 0x01 };
static const uint8_t alg_ecdsa256[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
					0x3d, 0x04, 0x03, 0x02 };
static const uint8_t alg_ecdsa384[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
					0x3d, 0x04, 0x03, 0x03 };
static const uint8_t sig_any[] = { 0x03, 0x02, 0x00, 0x00 };
static const uint8_t oid_cn[] = { 0x55, 0x04, 0x03 };
static const uint8_t oid_ou[] = { 0x55, 0x04, 0x0b };

struct piece {
	const uint8_t *p;
	size_t n;
};

#define PIECE(a) ((struct piece){ (a), sizeof(a) })

/* A certificate as a list of raw parts; NULL parts are left out. */
struct tcert {
	struct piece version, serial, alg_in, issuer, validity, subject, spki, uids,
		exts, alg_out, sig, trailer;
};

static uint8_t spki_ec[128];
static size_t spki_ec_len;

static struct tcert tcert_default(uint8_t *scratch_issuer, uint8_t *scratch_subject,
				  uint8_t *scratch_validity);

/* Name with one attribute: oid, value tag and bytes. */
static size_t name1(uint8_t *out, size_t cap, const uint8_t *oid, size_t oid_len,
		    uint8_t tag, const void *val, size_t n)
{
	struct tls_derw w;
	size_t a, b, c;

	tls_derw_init(&w, out, cap);
	a = tls_derw_begin(&w);
	b = tls_derw_begin(&w);
	c = tls_derw_begin(&w);
	tls_derw_tlv(&w, TLS_DER_OID, oid, oid_len);
	tls_derw_tlv(&w, tag, val, n);
	tls_derw_end(&w, TLS_DER_SEQUENCE, c);
	tls_derw_end(&w, TLS_DER_SET, b);
	tls_derw_end(&w, TLS_DER_SEQUENCE, a);
	return w.overflow ? 0 : w.len;
}

static size_t validity(uint8_t *out, size_t cap, uint8_t t1, const char *s1, uint8_t t2,
		       const char *s2)
{
	struct tls_derw w;
	size_t a;

	tls_derw_init(&w, out, cap);
	a = tls_derw_begin(&w);
	tls_derw_tlv(&w, t1, s1, strlen(s1));
	tls_derw_tlv(&w, t2, s2, strlen(s2));
	tls_derw_end(&w, TLS_DER_SEQUENCE, a);
	return w.len;
}

static struct tcert tcert_default(uint8_t *si, uint8_t *ss, uint8_t *sv)
{
	struct tcert t = { 0 };

	t.version = PIECE(v3);
	t.serial = PIECE(serial1);
	t.alg_in = PIECE(alg_ecdsa256);
	t.alg_out = PIECE(alg_ecdsa256);
	t.issuer.p = si;
	t.issuer.n = name1(si, 256, oid_cn, 3, TLS_DER_UTF8_STRING, "issuer", 6);
	t.subject.p = ss;
	t.subject.n = name1(ss, 256, oid_cn, 3, TLS_DER_UTF8_STRING, "subject", 7);
	t.validity.p = sv;
	t.validity.n = validity(sv, 64, TLS_DER_UTC_TIME, "240101000000Z",
				TLS_DER_UTC_TIME, "340101000000Z");
	t.spki.p = spki_ec;
	t.spki.n = spki_ec_len;
	t.sig = PIECE(sig_any);
	return t;
}

static size_t tcert_build(const struct tcert *t, uint8_t *out, size_t cap)
{
	struct tls_derw w;
	size_t a, b;

	tls_derw_init(&w, out, cap);
	a = tls_derw_begin(&w);
	b = tls_derw_begin(&w);
	tls_derw_raw(&w, t->version.p, t->version.n);
	tls_derw_raw(&w, t->serial.p, t->serial.n);
	tls_derw_raw(&w, t->alg_in.p, t->alg_in.n);
	tls_derw_raw(&w, t->issuer.p, t->issuer.n);
	tls_derw_raw(&w, t->validity.p, t->validity.n);
	tls_derw_raw(&w, t->subject.p, t->subject.n);
	tls_derw_raw(&w, t->spki.p, t->spki.n);
	tls_derw_raw(&w, t->uids.p, t->uids.n);
	tls_derw_raw(&w, t->exts.p, t->exts.n);
	tls_derw_end(&w, TLS_DER_SEQUENCE, b);
	tls_derw_raw(&w, t->alg_out.p, t->alg_out.n);
	tls_derw_raw(&w, t->sig.p, t->sig.n);
	tls_derw_end(&w, TLS_DER_SEQUENCE, a);
	tls_derw_raw(&w, t->trailer.p, t->trailer.n);
	if (w.overflow) {
		fprintf(stderr, "tcert_build overflow\n");
		exit(1);
	}
	return w.len;
}

/* Build, parse, and return the parse result; the info goes to *ci. */
static int tparse(const struct tcert *t, struct tls_cert_info *ci)
{
	static uint8_t buf[8192];
	static struct guard g;
	size_t n = tcert_build(t, buf, sizeof buf);

	if (!g.map)
		guard_init(&g, sizeof buf);
	return tls_cert_parse(guard_put(&g, buf, n), n, ci);
}

static void test_builder_baseline(void)
{
	uint8_t si[256], ss[256], sv[64];
	struct tcert t = tcert_default(si, ss, sv);
	struct tls_cert_info ci;

	CHECK_INT(tparse(&t, &ci), 0);
	CHECK_STR(ci.cn, "subject");
	CHECK_STR(ci.issuer_cn, "issuer");
	CHECK_INT(ci.not_before, 1704067200);
	CHECK_INT(ci.version, 3);
	CHECK_INT(ci.has_key_usage, 0);
	CHECK_INT(ci.ext_key_usage, 0);
	CHECK(ci.skid.len == 0 && ci.skid.ptr == NULL);
	/* Signature of garbage: parses, never verifies. */
	CHECK_INT(tls_cert_check_sig(&ci, &ci), -EBADMSG);
}

static void test_strings(void)
{
	static const struct {
		uint8_t tag;
		const char *val;
		size_t len;
		int rc;
		const char *want;
	} cases[] = {
		{ TLS_DER_UTF8_STRING, "abc", 3, 0, "abc" },
		{ TLS_DER_UTF8_STRING, "", 0, 0, "" },
		{ TLS_DER_PRINTABLE_STRING, "Dev 1", 5, 0, "Dev 1" },
		{ TLS_DER_IA5_STRING, "a@b", 3, 0, "a@b" },
		{ TLS_DER_IA5_STRING, "a\x80", 2, -EINVAL, NULL },
		{ TLS_DER_T61_STRING, "caf\xe9", 4, 0, "caf\xc3\xa9" },
		{ TLS_DER_BMP_STRING, "\x00\x44\x00\xe9\x00\x76", 6, 0, "D\xc3\xa9v" },
		{ TLS_DER_BMP_STRING, "\x00\x44\x00", 3, -EINVAL, NULL },
		{ TLS_DER_BMP_STRING, "\xd8\x00", 2, -EINVAL, NULL },
		{ TLS_DER_UNIVERSAL_STRING, "\x00\x00\x00\x44\x00\x01\xf6\x00", 8, 0,
		  "D\xf0\x9f\x98\x80" },
		{ TLS_DER_UNIVERSAL_STRING, "\x00\x11\x00\x00", 4, -EINVAL, NULL },
		{ TLS_DER_UTF8_STRING, "\xe8\xae\xbe", 3, 0, "\xe8\xae\xbe" },
		{ TLS_DER_UTF8_STRING, "\xc0\x80", 2, -EINVAL, NULL },        /* overlong NUL */
		{ TLS_DER_UTF8_STRING, "\xc1\xbf", 2, -EINVAL, NULL },        /* overlong 7f */
		{ TLS_DER_UTF8_STRING, "\xe0\x80\xaf", 3, -EINVAL, NULL },    /* overlong '/' */
		{ TLS_DER_UTF8_STRING, "\xf0\x8f\xbf\xbf", 4, -EINVAL, NULL }, /* overlong */
		{ TLS_DER_UTF8_STRING, "\xe8\x2e\xbe", 3, -EINVAL, NULL },    /* bad continuation */
		{ TLS_DER_UTF8_STRING, "\xed\xa0\x80", 3, -EINVAL, NULL },    /* surrogate */
		{ TLS_DER_UTF8_STRING, "\xe8\xae", 2, -EINVAL, NULL },        /* truncated */
		{ TLS_DER_UTF8_STRING, "\xf4\x90\x80\x80", 4, -EINVAL, NULL }, /* > U+10FFFF */
		{ TLS_DER_UTF8_STRING, "\xff", 1, -EINVAL, NULL },
		{ TLS_DER_UTF8_STRING, "a\0b", 3, -EINVAL, NULL },            /* embedded NUL */
		{ TLS_DER_OCTET_STRING, "abc", 3, -EINVAL, NULL },
		{ TLS_DER_INTEGER, "\x01", 1, -EINVAL, NULL },
	};
	uint8_t si[256], ss[512], sv[64];
	struct tls_cert_info ci;
	char big[200];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tcert t = tcert_default(si, ss, sv);
		int rc;

		t.subject.n = name1(ss, sizeof ss, oid_cn, 3, cases[i].tag, cases[i].val,
				    cases[i].len);
		rc = tparse(&t, &ci);
		if (rc != cases[i].rc) {
			fprintf(stderr, "string case %zu: rc %d want %d\n", i, rc, cases[i].rc);
			failures++;
		} else if (rc == 0) {
			CHECK_STR(ci.cn, cases[i].want);
		}
	}

	/* Length limits are in bytes of UTF-8: 64 fit, 65 do not. */
	memset(big, 'a', sizeof big);
	for (size_t n = 63; n <= 65; n++) {
		struct tcert t = tcert_default(si, ss, sv);

		t.subject.n = name1(ss, sizeof ss, oid_ou, 3, TLS_DER_UTF8_STRING, big, n);
		CHECK_INT(tparse(&t, &ci), n <= TLS_CERT_NAME_MAX ? 0 : -ENAMETOOLONG);
		if (n <= TLS_CERT_NAME_MAX)
			CHECK_INT(strlen(ci.ou), n);
	}
	for (size_t i = 0; i < 66; i += 2) {
		big[i] = (char)0xc3;
		big[i + 1] = (char)0xa9;
	}
	{
		struct tcert t = tcert_default(si, ss, sv);

		t.subject.n = name1(ss, sizeof ss, oid_cn, 3, TLS_DER_UTF8_STRING, big, 64);
		CHECK_INT(tparse(&t, &ci), 0);
		t.subject.n = name1(ss, sizeof ss, oid_cn, 3, TLS_DER_UTF8_STRING, big, 66);
		CHECK_INT(tparse(&t, &ci), -ENAMETOOLONG);
		/* BMPString: 33 two-byte characters become 66 bytes of UTF-8. */
		for (size_t i = 0; i < 66; i += 2) {
			big[i] = 0x00;
			big[i + 1] = (char)0xe9;
		}
		t.subject.n = name1(ss, sizeof ss, oid_cn, 3, TLS_DER_BMP_STRING, big, 66);
		CHECK_INT(tparse(&t, &ci), -ENAMETOOLONG);
		/* The issuer's CN has the same limit. */
		t = tcert_default(si, ss, sv);
		memset(big, 'i', 65);
		t.issuer.n = name1(si, 256, oid_cn, 3, TLS_DER_UTF8_STRING, big, 65);
		CHECK_INT(tparse(&t, &ci), -ENAMETOOLONG);
	}
}

static void test_names(void)
{
	/* Two RDNs with a CN each (the first wins), then a multi-valued RDN
	 * holding OU and an unknown attribute with a non-string value. */
	static const uint8_t good[] = {
		0x30, 0x34,
		0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'a', ',', 'b',
		0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 's', 'e', 'c',
		0x31, 0x16,
		0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0b, 0x0c, 0x02, 'o', 'u',
		0x30, 0x09, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x02, 0x02, 0x01, 0x05,
	};
	uint8_t si[256], ss[512], sv[64];
	struct tcert t = tcert_default(si, ss, sv);
	struct tls_cert_info ci;
	char out[256], tiny[8];

	t.subject = PIECE(good);
	CHECK_INT(tparse(&t, &ci), 0);
	CHECK_STR(ci.cn, "a,b");
	CHECK_STR(ci.ou, "ou");
	CHECK(tls_name_format(good, sizeof good, out, sizeof out) > 0);
	CHECK_STR(out, "CN=a\\,b, CN=sec, OU=ou + 1.2.3.4=#02020105");
	CHECK_INT(tls_name_format(good, sizeof good, tiny, sizeof tiny), -ENOSPC);
	CHECK_STR(tiny, "CN=a\\,b");
	CHECK_INT(tls_name_format(good, sizeof good - 1, out, sizeof out), -EINVAL);
	{
		char cn[TLS_CERT_NAME_MAX + 1], ou[TLS_CERT_NAME_MAX + 1];
		uint8_t nb[256];
		size_t n;

		CHECK_INT(tls_name_fields(good, sizeof good, cn, NULL, ou), 0);
		CHECK_STR(cn, "a,b");
		CHECK_STR(ou, "ou");
		CHECK_INT(tls_name_fields(good, sizeof good - 1, cn, NULL, NULL), -EINVAL);
		/* Checked even when the caller does not want the field. */
		n = name1(nb, sizeof nb, oid_ou, 3, TLS_DER_UTF8_STRING, "\xff", 1);
		CHECK_INT(tls_name_fields(nb, n, NULL, NULL, NULL), -EINVAL);
		n = name1(nb, sizeof nb, oid_cn, 3, TLS_DER_UTF8_STRING,
			  "0123456789012345678901234567890123456789012345678901234567890123456789",
			  65);
		CHECK_INT(tls_name_fields(nb, n, NULL, NULL, NULL), -ENAMETOOLONG);
	}

	/* An empty RDN SET is malformed; an empty Name is fine. */
	{
		static const uint8_t empty_set[] = { 0x30, 0x02, 0x31, 0x00 };
		static const uint8_t empty_name[] = { 0x30, 0x00 };

		t.subject = PIECE(empty_set);
		CHECK_INT(tparse(&t, &ci), -EINVAL);
		t.subject = PIECE(empty_name);
		CHECK_INT(tparse(&t, &ci), 0);
		CHECK_STR(ci.cn, "");
		CHECK_INT(tls_name_format(empty_name, 2, out, sizeof out), 0);
	}
}

static void test_times(void)
{
	static const struct {
		uint8_t tag;
		const char *s;
		int rc;
		int64_t want;
	} cases[] = {
		{ TLS_DER_UTC_TIME, "491231235959Z", 0, 2524607999 },
		{ TLS_DER_UTC_TIME, "500101000000Z", 0, -631152000 },
		{ TLS_DER_UTC_TIME, "600101000000Z", 0, -315619200 },
		{ TLS_DER_UTC_TIME, "2401010000Z", 0, 1704067200 }, /* no seconds */
		{ TLS_DER_GENERALIZED_TIME, "20240229120000Z", 0, 1709208000 },
		{ TLS_DER_GENERALIZED_TIME, "20500101000000Z", 0, 2524608000 },
		{ TLS_DER_GENERALIZED_TIME, "20300615083000Z", 0, 1907742600 },
		{ TLS_DER_GENERALIZED_TIME, "20230229120000Z", -EINVAL, 0 },
		{ TLS_DER_GENERALIZED_TIME, "21000229000000Z", -EINVAL, 0 },
		{ TLS_DER_GENERALIZED_TIME, "20000229000000Z", 0, 951782400 },
		{ TLS_DER_UTC_TIME, "240101000000", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "241301000000Z", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "240001000000Z", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "240431000000Z", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "240101240000Z", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "240101006000Z", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "240101000060Z", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "24010100000aZ", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "240101000000+0000", -EINVAL, 0 },
		{ TLS_DER_UTC_TIME, "20240101000000Z", -EINVAL, 0 },
		{ TLS_DER_GENERALIZED_TIME, "240101000000Z", -EINVAL, 0 },
		{ TLS_DER_GENERALIZED_TIME, "20240101000000.5Z", -EINVAL, 0 },
		{ TLS_DER_OCTET_STRING, "240101000000Z", -EINVAL, 0 },
	};
	uint8_t si[256], ss[256], sv[64];
	struct tls_cert_info ci;
	char buf[32];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tcert t = tcert_default(si, ss, sv);
		int rc;

		t.validity.n = validity(sv, sizeof sv, TLS_DER_UTC_TIME, "240101000000Z",
					cases[i].tag, cases[i].s);
		rc = tparse(&t, &ci);
		if (rc != cases[i].rc) {
			fprintf(stderr, "time case %zu (%s): rc %d want %d\n", i, cases[i].s, rc,
				cases[i].rc);
			failures++;
		} else if (rc == 0 && ci.not_after != cases[i].want) {
			fprintf(stderr, "time case %zu (%s): %lld want %lld\n", i, cases[i].s,
				(long long)ci.not_after, (long long)cases[i].want);
			failures++;
		}
	}
	/* Three times in the validity, or one, is malformed. */
	{
		struct tcert t = tcert_default(si, ss, sv);
		static const uint8_t one[] = { 0x30, 0x0f, 0x17, 0x0d, '2', '4', '0', '1', '0',
					       '1', '0', '0', '0', '0', '0', '0', 'Z' };

		t.validity = PIECE(one);
		CHECK_INT(tparse(&t, &ci), -EINVAL);
	}
	CHECK_INT(tls_time_format(0, buf, sizeof buf), 20);
	CHECK_STR(buf, "1970-01-01T00:00:00Z");
	CHECK_INT(tls_time_format(2524607999, buf, sizeof buf), 20);
	CHECK_STR(buf, "2049-12-31T23:59:59Z");
	CHECK_INT(tls_time_format(0, buf, 10), -ENOSPC);
}

/* Extensions: [3] { SEQUENCE { ext... } } from raw extension TLVs. */
static size_t exts(uint8_t *out, size_t cap, const struct piece *e, size_t n)
{
	struct tls_derw w;
	size_t a, b;

	tls_derw_init(&w, out, cap);
	a = tls_derw_begin(&w);
	b = tls_derw_begin(&w);
	for (size_t i = 0; i < n; i++)
		tls_derw_raw(&w, e[i].p, e[i].n);
	tls_derw_end(&w, TLS_DER_SEQUENCE, b);
	tls_derw_end(&w, TLS_DER_CTX3, a);
	return w.len;
}

static void test_extensions(void)
{
	/* basicConstraints critical CA:TRUE pathLen 3 */
	static const uint8_t bc_ca3[] = { 0x30, 0x12, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01,
					  0xff, 0x04, 0x08, 0x30, 0x06, 0x01, 0x01, 0xff, 0x02,
					  0x01, 0x03 };
	static const uint8_t bc_empty[] = { 0x30, 0x09, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x04,
					    0x02, 0x30, 0x00 };
	/* keyUsage digitalSignature + keyEncipherment; and decipherOnly */
	static const uint8_t ku_ds_ke[] = { 0x30, 0x0b, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x04,
					    0x04, 0x03, 0x02, 0x05, 0xa0 };
	static const uint8_t ku_do[] = { 0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x04, 0x05,
					 0x03, 0x03, 0x07, 0x00, 0x80 };
	static const uint8_t ku_bad[] = { 0x30, 0x0b, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x04,
					  0x04, 0x03, 0x02, 0x08, 0xa0 };
	/* EKU serverAuth, clientAuth, 1.2.3 */
	static const uint8_t eku[] = { 0x30, 0x22, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04, 0x1b,
				       0x30, 0x19, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05,
				       0x07, 0x03, 0x01, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05,
				       0x05, 0x07, 0x03, 0x02, 0x06, 0x03, 0x2a, 0x03, 0x04 };
	static const uint8_t skid[] = { 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x07,
					0x04, 0x05, 1, 2, 3, 4, 5 };
	/* AKID keyIdentifier, authorityCertIssuer (empty), serial */
	static const uint8_t akid[] = { 0x30, 0x15, 0x06, 0x03, 0x55, 0x1d, 0x23, 0x04, 0x0e,
					0x30, 0x0c, 0x80, 0x03, 9, 8, 7, 0xa1, 0x00, 0x82,
					0x03, 0x01, 0x02, 0x03 };
	static const uint8_t akid_order[] = { 0x30, 0x10, 0x06, 0x03, 0x55, 0x1d, 0x23, 0x04,
					      0x09, 0x30, 0x07, 0x82, 0x01, 0x01, 0x80, 0x02,
					      9, 8 };
	/* An unknown critical extension: parsed, ignored. */
	static const uint8_t unknown_crit[] = { 0x30, 0x0c, 0x06, 0x03, 0x2a, 0x03, 0x04,
						0x01, 0x01, 0xff, 0x04, 0x02, 0x05, 0x00 };
	static const uint8_t not_octets[] = { 0x30, 0x09, 0x06, 0x03, 0x55, 0x1d, 0x13,
					      0x30, 0x02, 0x30, 0x00 };
	static const uint8_t crit_long[] = { 0x30, 0x0d, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01,
					     0x02, 0x00, 0xff, 0x04, 0x02, 0x30, 0x00 };
	uint8_t si[256], ss[256], sv[64], eb[512];
	struct tls_cert_info ci;
	struct tcert t;

	t = tcert_default(si, ss, sv);
	{
		struct piece e[] = { PIECE(bc_ca3), PIECE(ku_ds_ke), PIECE(eku), PIECE(skid),
				     PIECE(akid), PIECE(unknown_crit) };

		t.exts.p = eb;
		t.exts.n = exts(eb, sizeof eb, e, 6);
		CHECK_INT(tparse(&t, &ci), 0);
		CHECK(ci.is_ca);
		CHECK_INT(ci.path_len, 3);
		CHECK(ci.has_key_usage);
		CHECK_INT(ci.key_usage, TLS_KU_DIGITAL_SIGNATURE | TLS_KU_KEY_ENCIPHERMENT);
		CHECK_INT(ci.ext_key_usage,
			  TLS_EKU_SERVER_AUTH | TLS_EKU_CLIENT_AUTH | TLS_EKU_OTHER);
		CHECK_STR(hx(0, ci.skid.ptr, ci.skid.len), "0102030405");
		CHECK_STR(hx(0, ci.akid.ptr, ci.akid.len), "090807");
	}
	{
		struct piece e[] = { PIECE(bc_empty), PIECE(ku_do) };

		t.exts.n = exts(eb, sizeof eb, e, 2);
		CHECK_INT(tparse(&t, &ci), 0);
		CHECK(!ci.is_ca);
		CHECK_INT(ci.path_len, -1);
		CHECK_INT(ci.key_usage, TLS_KU_DECIPHER_ONLY);
	}
	/* RFC 5280 4.2: no extension twice. */
	{
		struct piece e[] = { PIECE(bc_empty), PIECE(ku_do), PIECE(bc_ca3) };

		t.exts.n = exts(eb, sizeof eb, e, 3);
		CHECK_INT(tparse(&t, &ci), -EINVAL);
	}
	{
		struct piece bad[][1] = { { PIECE(ku_bad) }, { PIECE(akid_order) },
					  { PIECE(not_octets) }, { PIECE(crit_long) } };

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			t.exts.n = exts(eb, sizeof eb, bad[i], 1);
			CHECK_INT(tparse(&t, &ci), -EINVAL);
		}
	}
	/* An empty extension list, and extensions in a v1 certificate. */
	t.exts.n = exts(eb, sizeof eb, NULL, 0);
	CHECK_INT(tparse(&t, &ci), -EINVAL);
	{
		struct piece e[] = { PIECE(bc_empty) };

		t.exts.n = exts(eb, sizeof eb, e, 1);
		t.version.n = 0;
		CHECK_INT(tparse(&t, &ci), -EINVAL);
		t.exts.n = 0;
		CHECK_INT(tparse(&t, &ci), 0);
		CHECK_INT(ci.version, 1);
	}
}

static void test_structure(void)
{
	static const uint8_t v4[] = { 0xa0, 0x03, 0x02, 0x01, 0x03 };
	static const uint8_t serial0[] = { 0x02, 0x00 };
	static const uint8_t serial_lead[] = { 0x02, 0x03, 0x00, 0x80, 0x01 };
	static const uint8_t sig_pad[] = { 0x03, 0x02, 0x01, 0x00 };
	static const uint8_t trailer[] = { 0x00 };
	static const uint8_t uids[] = { 0x81, 0x02, 0x00, 0xaa, 0x82, 0x02, 0x00, 0xbb };
	uint8_t si[256], ss[256], sv[64], big[64];
	struct tls_cert_info ci;
	struct tcert t;

	t = tcert_default(si, ss, sv);
	t.version = PIECE(v4);
	CHECK_INT(tparse(&t, &ci), -EINVAL);

	t = tcert_default(si, ss, sv);
	t.alg_out = PIECE(alg_ecdsa384);
	CHECK_INT(tparse(&t, &ci), -EINVAL); /* inner and outer differ */
	t.alg_in = PIECE(alg_ecdsa384);
	CHECK_INT(tparse(&t, &ci), 0);
	CHECK_INT(ci.sig_alg, TLS_SIG_ECDSA_SHA384);

	t = tcert_default(si, ss, sv);
	t.sig = PIECE(sig_pad);
	CHECK_INT(tparse(&t, &ci), -EINVAL);

	t = tcert_default(si, ss, sv);
	t.trailer = PIECE(trailer);
	CHECK_INT(tparse(&t, &ci), -EINVAL);

	t = tcert_default(si, ss, sv);
	t.uids = PIECE(uids);
	CHECK_INT(tparse(&t, &ci), 0);

	t = tcert_default(si, ss, sv);
	t.serial = PIECE(serial0);
	CHECK_INT(tparse(&t, &ci), -EINVAL);
	t.serial = PIECE(serial_lead);
	CHECK_INT(tparse(&t, &ci), 0);
	CHECK_STR(hx(0, ci.serial, ci.serial_len), "8001");
	/* Serial lengths: 21 octets (sloppy CAs) pass, 33 do not. */
	big[0] = 0x02;
	for (int n = 21; n <= 33; n += 12) {
		big[1] = (uint8_t)n;
		memset(big + 2, 0x11, (size_t)n);
		t.serial.p = big;
		t.serial.n = (size_t)n + 2;
		CHECK_INT(tparse(&t, &ci), n <= TLS_CERT_SERIAL_MAX ? 0 : -EINVAL);
	}

	/* Length encodings: non-minimal long form, indefinite, high tags. */
	{
		uint8_t buf[4096], alt[4200];
		size_t n;
		bool lf;

		t = tcert_default(si, ss, sv);
		n = tcert_build(&t, buf, sizeof buf);
		CHECK_INT(tls_cert_parse(buf, n, &ci), 0);
		lf = buf[1] == 0x81;
		/* The same content with one more (zero) length octet. */
		alt[0] = 0x30;
		alt[1] = lf ? 0x82 : 0x81;
		alt[2] = lf ? 0x00 : buf[1];
		memcpy(alt + 3, buf + 2, n - 2);
		CHECK_INT(tls_cert_parse(alt, n + 1, &ci), -EINVAL);
		/* Indefinite length. */
		memcpy(alt, buf, n);
		alt[1] = 0x80;
		alt[n] = 0;
		alt[n + 1] = 0;
		CHECK_INT(tls_cert_parse(alt, n + 2, &ci), -EINVAL);
		/* High tag number form. */
		memcpy(alt, buf, n);
		alt[0] = 0x3f;
		CHECK_INT(tls_cert_parse(alt, n, &ci), -EINVAL);
		/* The length claims one byte more than there is. */
		memcpy(alt, buf, n);
		alt[lf ? 2 : 1]++;
		CHECK_INT(tls_cert_parse(alt, n, &ci), -EINVAL);
		CHECK_INT(tls_cert_parse(NULL, 0, &ci), -EINVAL);
		CHECK_INT(tls_cert_parse(buf, 0, &ci), -EINVAL);
	}
}

/* The DER reader itself. */
static void test_der(void)
{
	static const struct {
		uint8_t b[8];
		size_t n;
		int rc;
	} cases[] = {
		{ { 0x04, 0x81, 0x05 }, 8, -EINVAL },          /* long form for 5 */
		{ { 0x04, 0x82, 0x00, 0x85 }, 8, -EINVAL },    /* leading zero octet */
		{ { 0x04, 0x80, 0x00, 0x00 }, 4, -EINVAL },    /* indefinite */
		{ { 0x04, 0x85, 1, 1, 1, 1, 1 }, 8, -EINVAL }, /* five length octets */
		{ { 0x1f, 0x01, 0x00 }, 3, -EINVAL },          /* high tag number */
		{ { 0x04, 0x05, 0x01 }, 3, -EINVAL },          /* truncated value */
		{ { 0x04 }, 1, -EINVAL },                      /* truncated header */
		{ { 0x04, 0x82, 0x01 }, 3, -EINVAL },          /* truncated length */
		{ { 0x04, 0x00 }, 2, 0 },
		{ { 0x04, 0x01, 0xaa }, 3, 0 },
	};
	uint8_t big[200] = { 0x04, 0x81, 0x80 };
	struct tls_der d;
	struct tls_tlv t;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tls_der_init(&d, cases[i].b, cases[i].n);
		CHECK_INT(tls_der_next(&d, &t), cases[i].rc);
	}
	tls_der_init(&d, big, 131);
	CHECK_INT(tls_der_next(&d, &t), 0);
	CHECK_INT(t.len, 128);
	CHECK(t.val == big + 3 && t.tlv_len == 131);
	CHECK_INT(tls_der_next(&d, &t), -ENOENT);
	tls_der_init(&d, big, 130);
	CHECK_INT(tls_der_next(&d, &t), -EINVAL);
}

static void test_spki(void)
{
	static const uint8_t ed25519[] = {
		0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
		17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
	};
	static const uint8_t other[] = { 0x30, 0x0a, 0x30, 0x04, 0x06, 0x02, 0x2a, 0x03,
					 0x03, 0x02, 0x00, 0x00 };
	static const uint8_t ec_noparams[] = { 0x30, 0x0f, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86,
					       0x48, 0xce, 0x3d, 0x02, 0x01, 0x03, 0x02, 0x00,
					       0x04 };
	static const uint8_t rsa_garbage[] = { 0x30, 0x13, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86,
					       0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
					       0x00, 0x03, 0x02, 0x00, 0x30 };
	uint8_t si[256], ss[256], sv[64];
	struct tls_cert_info ci, rsadev;
	struct tcert t = tcert_default(si, ss, sv);
	enum tls_key_type kt;
	int bits;

	t.spki = PIECE(ed25519);
	CHECK_INT(tparse(&t, &ci), 0);
	CHECK_INT(ci.key_type, TLS_KEY_ED25519);
	t.spki = PIECE(other);
	CHECK_INT(tparse(&t, &ci), 0);
	CHECK_INT(ci.key_type, TLS_KEY_OTHER);
	CHECK_INT(ci.key_bits, 0);
	t.spki = PIECE(ec_noparams);
	CHECK_INT(tparse(&t, &ci), -EINVAL);
	t.spki = PIECE(rsa_garbage);
	CHECK_INT(tparse(&t, &ci), -EINVAL);

	CHECK_INT(tls_cert_parse(derbuf[3], pem_der(3, vec_rsadev_pem), &rsadev), 0);
	CHECK_INT(tls_spki_key(rsadev.spki.ptr, rsadev.spki.len, &kt, &bits), 0);
	CHECK_INT(kt, TLS_KEY_RSA);
	CHECK_INT(bits, 2048);
	CHECK_INT(tls_spki_key(rsadev.spki.ptr, rsadev.spki.len - 1, &kt, &bits), -EINVAL);
	/* Unsupported algorithms are refused for verification. */
	CHECK_INT(tls_sig_verify(TLS_SIG_RSA_SHA1, (const uint8_t *)"x", 1,
				 (const uint8_t *)"x", 1, rsadev.spki.ptr, rsadev.spki.len),
		  -EOPNOTSUPP);
	CHECK_INT(tls_sig_verify(TLS_SIG_ED25519, (const uint8_t *)"x", 1,
				 (const uint8_t *)"x", 1, ed25519, sizeof ed25519),
		  -EOPNOTSUPP);
}

/* ---- PEM and hex ------------------------------------------------------ */

static int count_cb(const uint8_t *der, size_t len, void *arg)
{
	int *n = arg;
	struct tls_cert_info ci;

	if (tls_cert_parse(der, len, &ci) != 0)
		return -100;
	n[1 + n[0]++ % 4] = ci.cn[0];
	return n[0] == n[5] ? 7 : 0; /* stop after n[5] certificates */
}

static void test_pem(void)
{
	size_t dl = pem_der(0, vec_ecdev_pem);
	char out[4096], *chain, *crlf;
	uint8_t der[4096];
	size_t pos;
	int n, counts[6];

	/* Our encoder writes exactly what openssl writes. */
	CHECK(tls_pem_size("CERTIFICATE", dl) > strlen(vec_ecdev_pem));
	CHECK_INT(tls_pem_encode("CERTIFICATE", derbuf[0], dl, out, sizeof out),
		  strlen(vec_ecdev_pem));
	CHECK_STR(out, vec_ecdev_pem);
	CHECK_INT(tls_pem_encode("CERTIFICATE", derbuf[0], dl, out, 100), -ENOSPC);
	for (size_t k = 0; k < 5; k++) {
		uint8_t small[5] = { 1, 2, 3, 4, 5 }, back[8];
		char pem[256];

		CHECK(tls_pem_encode("X", small, k, pem, sizeof pem) > 0);
		pos = 0;
		CHECK_INT(tls_pem_next(pem, strlen(pem), &pos, NULL, 0, back, sizeof back), k);
		CHECK(!memcmp(back, small, k));
	}

	/* A chain file with text and a key between the certificates. */
	if (asprintf(&chain, "Certificate:\n    Data: ...\n%s%s\nnoise\n%s", vec_ecdev_pem,
		     vec_ecdev_key_sec1, vec_rsaca_pem) < 0)
		exit(1);
	memset(counts, 0, sizeof counts);
	counts[5] = 99;
	CHECK_INT(tls_cert_pem_all(chain, strlen(chain), count_cb, counts), 2);
	CHECK_INT(counts[1], 'S'); /* SN0001 first, then RSA Vector CA */
	CHECK_INT(counts[2], 'R');
	memset(counts, 0, sizeof counts);
	counts[5] = 1;
	CHECK_INT(tls_cert_pem_all(chain, strlen(chain), count_cb, counts), 7);
	CHECK_INT(counts[0], 1);
	CHECK_INT(tls_cert_pem_to_der(vec_ecdev_key_sec1, strlen(vec_ecdev_key_sec1), der,
				      sizeof der), -ENOENT);
	/* CRLF line ends decode to the same DER. */
	crlf = malloc(2 * strlen(chain) + 1);
	n = 0;
	for (const char *p = chain; *p; p++) {
		if (*p == '\n')
			crlf[n++] = '\r';
		crlf[n++] = *p;
	}
	crlf[n] = 0;
	CHECK_INT(tls_cert_pem_to_der(crlf, (size_t)n, der, sizeof der), dl);
	CHECK(!memcmp(der, derbuf[0], dl));
	CHECK_INT(tls_cert_pem_to_der(crlf, (size_t)n, der, dl - 1), -ENOSPC);
	free(crlf);
	free(chain);

	/* Broken blocks. */
	{
		static const struct {
			const char *pem;
			int rc;
		} cases[] = {
			{ "-----BEGIN X-----\nTWE=\n-----END X-----\n", 2 },
			{ "-----BEGIN X-----\nTWE\n-----END X-----\n", 2 },
			{ "-----BEGIN X-----\nTQ==\n-----END X-----\n", 1 },
			{ "-----BEGIN X-----\nTQ==\n\n-----END X-----\n", 1 },
			{ "-----BEGIN X-----\n-----END X-----\n", 0 },
			{ "-----BEGIN X-----\nT===\n-----END X-----\n", -EINVAL },
			{ "-----BEGIN X-----\nTQ==TQ==\n-----END X-----\n", -EINVAL },
			{ "-----BEGIN X-----\nTQ=\n-----END X-----\n", -EINVAL },
			{ "-----BEGIN X-----\nT\n-----END X-----\n", -EINVAL },
			{ "-----BEGIN X-----\nTW!=\n-----END X-----\n", -EINVAL },
			{ "-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nTQ==\n-----END X-----\n",
			  -EINVAL },
			{ "-----BEGIN X-----\nTWE=\n-----END Y-----\n", -EINVAL },
			{ "-----BEGIN X-----\nTWE=\n", -EINVAL },
			{ "-----BEGIN X", -EINVAL },
			{ "-----BEGIN -----\nTWE=\n-----END -----\n", -EINVAL },
			{ "no pem here", -ENOENT },
			{ "", -ENOENT },
		};
		char label[TLS_PEM_LABEL_MAX + 1];

		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			int rc;

			pos = 0;
			rc = tls_pem_next(cases[i].pem, strlen(cases[i].pem), &pos, label,
					  sizeof label, der, sizeof der);
			if (rc != cases[i].rc) {
				fprintf(stderr, "pem case %zu: rc %d want %d\n", i, rc, cases[i].rc);
				failures++;
			}
			if (rc >= 0)
				CHECK_STR(label, "X");
		}
		pos = 0;
		CHECK_INT(tls_pem_next(cases[0].pem, strlen(cases[0].pem), &pos, label, 1,
				       der, sizeof der), -ENOSPC);
	}
}

static void test_hex(void)
{
	uint8_t b[8];
	char s[17];

	tls_hex((const uint8_t *)"\x00\xff\x10\xab", 4, s);
	CHECK_STR(s, "00ff10ab");
	tls_hex(b, 0, s);
	CHECK_STR(s, "");
	CHECK_INT(tls_unhex("C0:FF:ee", b, sizeof b), 3);
	CHECK(b[0] == 0xc0 && b[1] == 0xff && b[2] == 0xee);
	CHECK_INT(tls_unhex("c0ffee0123456789", b, sizeof b), 8);
	CHECK_INT(tls_unhex("c0ffee012345678900", b, sizeof b), -ENOSPC);
	CHECK_INT(tls_unhex("abc", b, sizeof b), -EINVAL);
	CHECK_INT(tls_unhex("zz", b, sizeof b), -EINVAL);
	CHECK_INT(tls_unhex(":ab", b, sizeof b), -EINVAL);
	CHECK_INT(tls_unhex("a b", b, sizeof b), -EINVAL);
	CHECK_INT(tls_unhex("", b, sizeof b), 0);
}

int main(void)
{
	struct tls_cert_info ci;

	/* The EC public key of the openssl device, for hand-built certificates. */
	if (tls_cert_parse(derbuf[7], pem_der(7, vec_ecdev_pem), &ci) != 0 ||
	    ci.spki.len > sizeof spki_ec) {
		fprintf(stderr, "vector does not parse\n");
		return 1;
	}
	memcpy(spki_ec, ci.spki.ptr, ci.spki.len);
	spki_ec_len = ci.spki.len;

	test_vectors();
	test_csr_vector();
	test_builder_baseline();
	test_strings();
	test_names();
	test_times();
	test_extensions();
	test_structure();
	test_der();
	test_spki();
	test_pem();
	test_hex();
	test_mutations();

	if (failures) {
		fprintf(stderr, "test_cert: %d failures\n", failures);
		return 1;
	}
	printf("test_cert: ok\n");
	return 0;
}
