/*
 * tests/unit/test_pki.c - the PKI helper (tls/pki.h): keys, every
 * certificate profile, CSRs, files.
 *
 * Each certificate made is parsed back (tls/cert.h) and its fields, dates,
 * names and signature relations checked; wolfSSL's own certificate manager
 * then has to accept the chains we build (root -> device, root ->
 * intermediate -> device) and refuse expired, not-yet-valid and foreign
 * ones. Keys made by the openssl CLI (cert_vectors.h) must load and match
 * their certificates.
 */
#include "tls/cert.h"
#include "tls/pki.h"
#include "cert_vectors.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

#include "check.h"

#define MUST(c)                                                               \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: MUST(%s) failed\n", __FILE__,  \
				__LINE__, #c);                                \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* A certificate we made, with its key and parse. */
struct made {
	uint8_t der[TLS_PKI_DER_MAX];
	size_t len;
	struct tls_pki_key *key;
	struct tls_cert_info ci;
};

static int64_t now;

static bool span_eq(const struct tls_span *a, const struct tls_span *b)
{
	return a->len == b->len && (a->len == 0 || !memcmp(a->ptr, b->ptr, a->len));
}

/* The key's SubjectPublicKeyInfo equals the certificate's. */
static bool key_is_certs(const struct tls_pki_key *k, const struct tls_cert_info *ci)
{
	uint8_t spki[1024];
	int n = tls_pki_key_spki(k, spki, sizeof spki);

	return n > 0 && (size_t)n == ci->spki.len && !memcmp(spki, ci->spki.ptr, ci->spki.len);
}

static void make(struct made *m, const struct tls_pki_spec *s, enum tls_key_type kt,
		 int bits, const struct made *issuer)
{
	struct tls_pki_issuer is;
	int n;

	MUST(tls_pki_key_generate(kt, bits, &m->key) == 0);
	if (issuer)
		is = (struct tls_pki_issuer){ issuer->der, issuer->len, issuer->key };
	n = tls_pki_issue(s, m->key, issuer ? &is : NULL, m->der, sizeof m->der);
	if (n <= 0)
		fprintf(stderr, "issue: %d\n", n);
	MUST(n > 0);
	m->len = (size_t)n;
	MUST(tls_cert_parse(m->der, m->len, &m->ci) == 0);
}

/* What every certificate we make must satisfy. */
static void check_common(const struct made *m, const struct tls_pki_spec *s,
			 const struct made *issuer)
{
	const struct tls_cert_info *ci = &m->ci;
	const struct tls_cert_info *ii = issuer ? &issuer->ci : ci;

	CHECK_INT(ci->version, 3);
	CHECK_INT(ci->not_before, s->not_before);
	CHECK_INT(ci->not_after, s->not_after);
	if (s->serial_len == 0) {
		CHECK_INT(ci->serial_len, TLS_PKI_SERIAL_LEN);
		CHECK(!(ci->serial[0] & 0x80));
	}
	CHECK(key_is_certs(m->key, ci));
	CHECK_INT(ci->key_type, tls_pki_key_type(m->key));
	CHECK_INT(ci->key_bits, tls_pki_key_bits(m->key));
	/* Issuer name byte for byte, AKID = issuer's SKID, signed by it. */
	CHECK(span_eq(&ci->issuer, &ii->subject));
	CHECK(ci->skid.len == 20);
	CHECK(span_eq(&ci->akid, &ii->skid));
	CHECK_INT(tls_cert_check_sig(ci, ii), 0);
	CHECK_INT(tls_cert_verify_signed_by(m->der, m->len, issuer ? issuer->der : m->der,
					    issuer ? issuer->len : m->len), 0);
	if (s->subject.cn)
		CHECK_STR(ci->cn, s->subject.cn);
	CHECK_STR(ci->o, s->subject.o ? s->subject.o : "");
	CHECK_STR(ci->ou, s->subject.ou ? s->subject.ou : "");
	CHECK(ci->has_key_usage);
}

static struct made root_ec, root_rsa, inter, dev_ec, dev_rsa, other, srv, verif;

static void test_profiles(void)
{
	struct tls_pki_spec s;

	tls_pki_spec_init(&s, TLS_PKI_ROOT_CA, now, 3650);
	s.subject = (struct tls_pki_name){ .c = "CN", .o = "vouch", .cn = "Vouch Test Root" };
	make(&root_ec, &s, TLS_KEY_EC, 0, NULL);
	check_common(&root_ec, &s, NULL);
	CHECK(root_ec.ci.is_ca);
	CHECK_INT(root_ec.ci.path_len, -1);
	CHECK_INT(root_ec.ci.key_usage, TLS_KU_KEY_CERT_SIGN | TLS_KU_CRL_SIGN);
	CHECK_INT(root_ec.ci.ext_key_usage, 0);
	CHECK_INT(root_ec.ci.key_bits, 256);
	CHECK_INT(root_ec.ci.sig_alg, TLS_SIG_ECDSA_SHA256);
	CHECK_INT(s.not_before, now - TLS_PKI_BACKDATE);
	CHECK_INT(s.not_after, now + 3650 * 86400LL);

	tls_pki_spec_init(&s, TLS_PKI_ROOT_CA, now, 3650);
	s.subject = (struct tls_pki_name){ .o = "vouch", .ou = "rsa", .cn = "Vouch RSA Root" };
	make(&root_rsa, &s, TLS_KEY_RSA, 2048, NULL);
	check_common(&root_rsa, &s, NULL);
	CHECK_INT(root_rsa.ci.sig_alg, TLS_SIG_RSA_SHA256);
	CHECK_INT(root_rsa.ci.key_bits, 2048);

	/* P-384 intermediate under the RSA root: pathLen 0 by default. */
	tls_pki_spec_init(&s, TLS_PKI_INTERMEDIATE_CA, now, 1825);
	s.subject = (struct tls_pki_name){ .o = "vouch", .cn = "Vouch Intermediate" };
	make(&inter, &s, TLS_KEY_EC, 384, &root_rsa);
	check_common(&inter, &s, &root_rsa);
	CHECK(inter.ci.is_ca);
	CHECK_INT(inter.ci.path_len, 0);
	CHECK_INT(inter.ci.key_bits, 384);
	CHECK_INT(inter.ci.sig_alg, TLS_SIG_RSA_SHA256);

	/* RSA device under the P-384 intermediate (ecdsa-with-SHA384). */
	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 365);
	s.subject = (struct tls_pki_name){ .c = "CN", .st = "ZheJiang", .l = "HangZhou",
					   .o = "IoV", .ou = "MQTT", .cn = "SN0001" };
	make(&dev_rsa, &s, TLS_KEY_RSA, 2048, &inter);
	check_common(&dev_rsa, &s, &inter);
	CHECK(!dev_rsa.ci.is_ca);
	CHECK_INT(dev_rsa.ci.key_usage, TLS_KU_DIGITAL_SIGNATURE | TLS_KU_KEY_ENCIPHERMENT);
	CHECK_INT(dev_rsa.ci.ext_key_usage, TLS_EKU_CLIENT_AUTH);
	CHECK_INT(dev_rsa.ci.sig_alg, TLS_SIG_ECDSA_SHA384);
	/* Not signed by the root directly. */
	CHECK_INT(tls_cert_check_sig(&dev_rsa.ci, &root_rsa.ci), -EBADMSG);
	{
		char name[256];

		CHECK(tls_name_format(dev_rsa.ci.subject.ptr, dev_rsa.ci.subject.len, name,
				      sizeof name) > 0);
		CHECK_STR(name, "C=CN, ST=ZheJiang, L=HangZhou, O=IoV, OU=MQTT, CN=SN0001");
	}

	/* EC device under the EC root, UTF-8 subject. */
	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 30);
	s.subject = (struct tls_pki_name){ .o = "IoV", .ou = "\xe8\xae\xbe\xe5\xa4\x87",
					   .cn = "SN0002" };
	make(&dev_ec, &s, TLS_KEY_EC, 256, &root_ec);
	check_common(&dev_ec, &s, &root_ec);
	CHECK_INT(dev_ec.ci.key_usage, TLS_KU_DIGITAL_SIGNATURE);
	CHECK_INT(dev_ec.ci.ext_key_usage, TLS_EKU_CLIENT_AUTH);

	tls_pki_spec_init(&s, TLS_PKI_ROOT_CA, now, 3650);
	s.subject.cn = "Vouch Test Root"; /* same CN, other key */
	make(&other, &s, TLS_KEY_EC, 256, NULL);
	CHECK_INT(tls_cert_check_sig(&dev_ec.ci, &other.ci), -EBADMSG);
	CHECK_INT(tls_cert_verify_signed_by(dev_ec.der, dev_ec.len, other.der, other.len),
		  -EBADMSG);

	/* Server: serverAuth and the subjectAltName entries. */
	tls_pki_spec_init(&s, TLS_PKI_SERVER, now, 365);
	s.subject.cn = "localhost";
	s.dns[s.n_dns++] = "localhost";
	s.dns[s.n_dns++] = "broker.example";
	s.ip[s.n_ip++] = "127.0.0.1";
	s.ip[s.n_ip++] = "::1";
	make(&srv, &s, TLS_KEY_EC, 256, &root_ec);
	check_common(&srv, &s, &root_ec);
	CHECK_INT(srv.ci.ext_key_usage, TLS_EKU_SERVER_AUTH);
	CHECK(memmem(srv.der, srv.len, "\x82\x09localhost", 11) != NULL);
	CHECK(memmem(srv.der, srv.len, "\x82\x0e" "broker.example", 16) != NULL);
	CHECK(memmem(srv.der, srv.len, "\x87\x04\x7f\x00\x00\x01", 6) != NULL);
	CHECK(memmem(srv.der, srv.len, "\x87\x10\x00\x00\x00\x00\x00\x00\x00\x00"
			       "\x00\x00\x00\x00\x00\x00\x00\x01", 18) != NULL);
	/* The subjectAltName extension OID appears only when asked for. */
	CHECK(memmem(srv.der, srv.len, "\x06\x03\x55\x1d\x11", 5) != NULL);
	CHECK(memmem(dev_ec.der, dev_ec.len, "\x06\x03\x55\x1d\x11", 5) == NULL);

	/* Verification certificate: CN is the registration code, own key,
	 * signed by the CA's key. */
	tls_pki_spec_init(&s, TLS_PKI_VERIFICATION, now, 1);
	s.subject.cn = "3f9a1c0e5b7d4a2f8e6c1b0a9d8e7f6a";
	make(&verif, &s, TLS_KEY_EC, 256, &root_ec);
	check_common(&verif, &s, &root_ec);
	CHECK(!verif.ci.is_ca);
	CHECK_INT(verif.ci.key_usage, TLS_KU_DIGITAL_SIGNATURE);
	CHECK_INT(verif.ci.ext_key_usage, 0);
	CHECK(!key_is_certs(root_ec.key, &verif.ci));
	CHECK_INT(tls_cert_verify_signed_by(verif.der, verif.len, root_ec.der, root_ec.len), 0);
	CHECK_INT(tls_cert_verify_signed_by(verif.der, verif.len, other.der, other.len),
		  -EBADMSG);
}

static void test_dates_and_serials(void)
{
	struct tls_pki_spec s;
	struct made m;

	/* Expired and not yet valid, to the second. */
	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 30);
	s.subject.cn = "expired";
	s.not_after = now - 86400;
	s.not_before = s.not_after - 30 * 86400;
	make(&m, &s, TLS_KEY_EC, 256, &root_ec);
	check_common(&m, &s, &root_ec);
	CHECK(m.ci.not_after < now);
	tls_pki_key_free(m.key);

	s.subject.cn = "future";
	s.not_before = now + 2 * 86400;
	s.not_after = s.not_before + 86400;
	make(&m, &s, TLS_KEY_EC, 256, &root_ec);
	check_common(&m, &s, &root_ec);
	CHECK(m.ci.not_before > now);
	tls_pki_key_free(m.key);

	/* Both sides of 1950 and 2050 (UTCTime vs GeneralizedTime). */
	s.subject.cn = "edges";
	s.not_before = -631152001; /* 1949-12-31T23:59:59Z */
	s.not_after = 2524608000 + 3600;
	make(&m, &s, TLS_KEY_EC, 256, &root_ec);
	CHECK_INT(m.ci.not_before, -631152001);
	CHECK_INT(m.ci.not_after, 2524611600);
	CHECK(memmem(m.der, m.len, "\x18\x0f" "19491231235959Z", 17) != NULL);
	CHECK(memmem(m.der, m.len, "\x18\x0f" "20500101010000Z", 17) != NULL);
	tls_pki_key_free(m.key);
	s.not_before = -631152000;
	s.not_after = 2524607999;
	make(&m, &s, TLS_KEY_EC, 256, &root_ec);
	CHECK(memmem(m.der, m.len, "\x17\x0d" "500101000000Z", 15) != NULL);
	CHECK(memmem(m.der, m.len, "\x17\x0d" "491231235959Z", 15) != NULL);
	tls_pki_key_free(m.key);

	/* Given serials: exact, leading zero dropped, top bit padded. */
	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 1);
	s.subject.cn = "serial";
	memcpy(s.serial, "\x01\x02\x03", 3);
	s.serial_len = 3;
	make(&m, &s, TLS_KEY_EC, 256, &root_ec);
	CHECK_INT(m.ci.serial_len, 3);
	CHECK(!memcmp(m.ci.serial, "\x01\x02\x03", 3));
	tls_pki_key_free(m.key);
	memcpy(s.serial, "\x80\x01", 2);
	s.serial_len = 2;
	make(&m, &s, TLS_KEY_EC, 256, &root_ec);
	CHECK(memmem(m.der, m.len, "\x02\x03\x00\x80\x01", 5) != NULL);
	tls_pki_key_free(m.key);

	/* Random serials differ. */
	{
		struct made a, b;

		tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 1);
		s.subject.cn = "twin";
		make(&a, &s, TLS_KEY_EC, 256, &root_ec);
		make(&b, &s, TLS_KEY_EC, 256, &root_ec);
		CHECK(memcmp(a.ci.serial, b.ci.serial, TLS_PKI_SERIAL_LEN) != 0);
		CHECK(memcmp(a.ci.id, b.ci.id, TLS_CERT_ID_LEN) != 0);
		tls_pki_key_free(a.key);
		tls_pki_key_free(b.key);
	}
}

static void test_refusals(void)
{
	struct tls_pki_issuer is = { root_ec.der, root_ec.len, root_ec.key };
	struct tls_pki_issuer wrong = { root_ec.der, root_ec.len, other.key };
	struct tls_pki_issuer not_ca = { dev_ec.der, dev_ec.len, dev_ec.key };
	struct tls_pki_key *k, *pub;
	struct tls_pki_spec s;
	uint8_t der[TLS_PKI_DER_MAX];
	char big[80];

	MUST(tls_pki_key_generate(TLS_KEY_EC, 256, &k) == 0);
	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 1);
	s.subject.cn = "x";
	CHECK(tls_pki_issue(&s, k, &is, der, sizeof der) > 0);
	CHECK_INT(tls_pki_issue(&s, k, &wrong, der, sizeof der), -EKEYREJECTED);
	CHECK_INT(tls_pki_issue(&s, k, &not_ca, der, sizeof der), -EINVAL);
	CHECK_INT(tls_pki_issue(&s, k, &is, der, 100), -ENOSPC);
	{
		struct tls_pki_issuer junk = { (const uint8_t *)"junk", 4, root_ec.key };

		CHECK_INT(tls_pki_issue(&s, k, &junk, der, sizeof der), -EINVAL);
	}

	/* A public-only key can be certified, but cannot sign. */
	MUST(tls_pki_key_from_spki(dev_ec.ci.spki.ptr, dev_ec.ci.spki.len, &pub) == 0);
	CHECK(!tls_pki_key_has_private(pub));
	CHECK(key_is_certs(pub, &dev_ec.ci));
	CHECK(tls_pki_issue(&s, pub, &is, der, sizeof der) > 0);
	CHECK_INT(tls_pki_issue(&s, pub, NULL, der, sizeof der), -EINVAL);
	{
		struct tls_pki_issuer pub_issuer = { root_ec.der, root_ec.len, pub };

		CHECK_INT(tls_pki_issue(&s, k, &pub_issuer, der, sizeof der), -EINVAL);
	}
	CHECK_INT(tls_pki_key_pkcs8(pub, der, sizeof der), -EINVAL);
	tls_pki_key_free(pub);

	/* Subjects. */
	memset(big, 'a', sizeof big);
	big[64] = 0;
	s.subject.cn = big;
	CHECK(tls_pki_issue(&s, k, &is, der, sizeof der) > 0);
	{
		struct tls_cert_info ci;

		CHECK_INT(tls_cert_parse(der, (size_t)tls_pki_issue(&s, k, &is, der, sizeof der),
					 &ci), 0);
		CHECK_STR(ci.cn, big);
	}
	big[64] = 'a';
	big[65] = 0;
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -ENAMETOOLONG);
	s.subject.cn = "\xff";
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.subject.cn = NULL;
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.subject.cn = "";
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.subject.cn = "x";
	s.subject.c = "USA";
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.subject.c = "C1";
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.subject.c = "de";
	CHECK(tls_pki_issue(&s, k, &is, der, sizeof der) > 0);

	/* Dates, serials, SAN. */
	s.not_after = s.not_before;
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	tls_pki_spec_init(&s, TLS_PKI_SERVER, now, 1);
	s.subject.cn = "x";
	s.serial_len = 2; /* two zero bytes */
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.serial_len = 0;
	s.ip[s.n_ip++] = "300.1.1.1";
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.n_ip = 0;
	s.dns[s.n_dns++] = "a b";
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.n_dns = TLS_PKI_MAX_SAN + 1;
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	s.n_dns = 0;
	s.kind = (enum tls_pki_kind)99;
	CHECK_INT(tls_pki_issue(&s, k, &is, der, sizeof der), -EINVAL);
	tls_pki_key_free(k);

	/* Key sizes we do not offer. */
	CHECK_INT(tls_pki_key_generate(TLS_KEY_RSA, 1024, &k), -EINVAL);
	CHECK(k == NULL);
	CHECK_INT(tls_pki_key_generate(TLS_KEY_EC, 521, &k), -EINVAL);
	CHECK_INT(tls_pki_key_generate(TLS_KEY_ED25519, 0, &k), -EINVAL);
}

static void test_keys(void)
{
	static const struct {
		const char *pem;
		const char *cert;
		enum tls_key_type type;
	} vec[] = {
		{ vec_ecdev_key_sec1, vec_ecdev_pem, TLS_KEY_EC },
		{ vec_ecca_key_sec1, vec_ecca_pem, TLS_KEY_EC },
		{ vec_rsadev_key_pkcs8, vec_rsadev_pem, TLS_KEY_RSA },
		{ vec_rsadev_key_pkcs1, vec_rsadev_pem, TLS_KEY_RSA },
	};
	char pem[TLS_PKI_KEY_DER_MAX * 2];
	uint8_t der[TLS_PKI_KEY_DER_MAX], cder[4096];
	struct tls_pki_key *k, *k2;
	struct tls_cert_info ci;

	/* openssl's keys, in each format, match openssl's certificates. */
	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		int n = tls_cert_pem_to_der(vec[i].cert, strlen(vec[i].cert), cder, sizeof cder);

		MUST(n > 0 && tls_cert_parse(cder, (size_t)n, &ci) == 0);
		CHECK_INT(tls_pki_key_from_pem(vec[i].pem, strlen(vec[i].pem), &k), 0);
		if (!k)
			continue;
		CHECK(tls_pki_key_has_private(k));
		CHECK_INT(tls_pki_key_type(k), vec[i].type);
		CHECK(key_is_certs(k, &ci));
		/* Our PKCS#8 of it loads back to the same key. */
		CHECK(tls_pki_key_pem(k, pem, sizeof pem) > 0);
		CHECK(!strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28));
		CHECK_INT(tls_pki_key_from_pem(pem, strlen(pem), &k2), 0);
		if (k2)
			CHECK(key_is_certs(k2, &ci));
		tls_pki_key_free(k2);
		tls_pki_key_free(k);
	}

	/* Generated keys round-trip through PKCS#8 DER and PEM. */
	for (int i = 0; i < 3; i++) {
		enum tls_key_type t = i == 0 ? TLS_KEY_RSA : TLS_KEY_EC;
		struct tls_pki_key *gen = i == 0 ? dev_rsa.key : i == 1 ? dev_ec.key : inter.key;
		const struct tls_cert_info *c = i == 0 ? &dev_rsa.ci : i == 1 ? &dev_ec.ci
									 : &inter.ci;
		int n = tls_pki_key_pkcs8(gen, der, sizeof der);

		CHECK(n > 0);
		CHECK_INT(tls_pki_key_from_der(der, (size_t)n, &k), 0);
		if (k) {
			CHECK_INT(tls_pki_key_type(k), t);
			CHECK_INT(tls_pki_key_bits(k), tls_pki_key_bits(gen));
			CHECK(key_is_certs(k, c));
			tls_pki_key_free(k);
		}
		CHECK_INT(tls_pki_key_pkcs8(gen, der, 10), -ENOSPC);
		CHECK_INT(tls_pki_key_from_der(der, 1, &k), -EINVAL);
	}

	/* An openssl CA signs with our code; its subject is copied exactly. */
	{
		struct tls_pki_spec s;
		struct tls_pki_issuer is;
		struct tls_cert_info ca;
		uint8_t out[TLS_PKI_DER_MAX];
		int cl = tls_cert_pem_to_der(vec_ecca_pem, strlen(vec_ecca_pem), cder, sizeof cder);
		int n;

		MUST(cl > 0 && tls_cert_parse(cder, (size_t)cl, &ca) == 0);
		MUST(tls_pki_key_from_pem(vec_ecca_key_sec1, strlen(vec_ecca_key_sec1), &k) == 0);
		is = (struct tls_pki_issuer){ cder, (size_t)cl, k };
		tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 10);
		s.subject.cn = "signed by openssl's CA";
		n = tls_pki_issue(&s, dev_ec.key, &is, out, sizeof out);
		CHECK(n > 0);
		if (n > 0) {
			CHECK_INT(tls_cert_parse(out, (size_t)n, &ci), 0);
			CHECK(span_eq(&ci.issuer, &ca.subject));
			CHECK(span_eq(&ci.akid, &ca.skid));
			CHECK_INT(tls_cert_verify_signed_by(out, (size_t)n, cder, (size_t)cl), 0);
		}
		tls_pki_key_free(k);
		/* The RSA key does not belong to that CA. */
		MUST(tls_pki_key_from_pem(vec_rsadev_key_pkcs8, strlen(vec_rsadev_key_pkcs8),
					  &k) == 0);
		is.key = k;
		CHECK_INT(tls_pki_issue(&s, dev_ec.key, &is, out, sizeof out), -EKEYREJECTED);
		tls_pki_key_free(k);
	}

	/* Not keys. */
	{
		static const char enc[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nTWFu\n"
					  "-----END ENCRYPTED PRIVATE KEY-----\n";
		static const char trad_enc[] =
			"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
			"DEK-Info: AES-128-CBC,00\n\nTWFu\n-----END RSA PRIVATE KEY-----\n";
		static const char junk[] = "-----BEGIN PRIVATE KEY-----\nTWFu\n"
					   "-----END PRIVATE KEY-----\n";

		CHECK_INT(tls_pki_key_from_pem(enc, strlen(enc), &k), -EOPNOTSUPP);
		CHECK_INT(tls_pki_key_from_pem(trad_enc, strlen(trad_enc), &k), -EOPNOTSUPP);
		CHECK_INT(tls_pki_key_from_pem(junk, strlen(junk), &k), -EINVAL);
		CHECK_INT(tls_pki_key_from_pem(vec_ecdev_pem, strlen(vec_ecdev_pem), &k), -ENOENT);
		CHECK(k == NULL);
	}
}

static void test_csr(void)
{
	struct tls_pki_issuer is = { root_ec.der, root_ec.len, root_ec.key };
	struct tls_pki_name n = { .o = "IoV", .ou = "csr", .cn = "csr-device" };
	struct tls_pki_spec s;
	struct tls_csr_info ci;
	struct tls_cert_info cc;
	uint8_t csr[TLS_PKI_DER_MAX], bad[TLS_PKI_DER_MAX], out[TLS_PKI_DER_MAX];
	struct tls_pki_key *keys[2] = { dev_ec.key, dev_rsa.key };

	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 90);
	s.subject.cn = "ignored: the CSR's subject wins";
	for (int i = 0; i < 2; i++) {
		int len = tls_pki_make_csr(&n, keys[i], csr, sizeof csr), m;
		uint8_t *p;

		CHECK(len > 0);
		if (len <= 0)
			continue;
		CHECK_INT(tls_csr_parse(csr, (size_t)len, &ci), 0);
		CHECK_STR(ci.cn, "csr-device");
		CHECK_STR(ci.ou, "csr");
		CHECK_INT(ci.key_type, tls_pki_key_type(keys[i]));
		CHECK_INT(tls_csr_verify(&ci), 0); /* the parse also checked version 0 */

		m = tls_pki_sign_csr(csr, (size_t)len, &s, &is, out, sizeof out);
		CHECK(m > 0);
		if (m > 0) {
			CHECK_INT(tls_cert_parse(out, (size_t)m, &cc), 0);
			CHECK(span_eq(&cc.subject, &ci.subject));
			CHECK(key_is_certs(keys[i], &cc));
			CHECK(span_eq(&cc.issuer, &root_ec.ci.subject));
			CHECK_INT(cc.ext_key_usage, TLS_EKU_CLIENT_AUTH);
			CHECK_INT(cc.not_after, s.not_after);
			CHECK_INT(tls_cert_check_sig(&cc, &root_ec.ci), 0);
		}

		/* Tampered subject: a valid CSR whose signature no longer holds. */
		memcpy(bad, csr, (size_t)len);
		p = memmem(bad, (size_t)len, "csr-device", 10);
		MUST(p != NULL);
		p[0] = 'X';
		CHECK_INT(tls_pki_sign_csr(bad, (size_t)len, &s, &is, out, sizeof out), -EBADMSG);
		/* Tampered signature. */
		memcpy(bad, csr, (size_t)len);
		bad[len - 2] ^= 0x01;
		CHECK_INT(tls_pki_sign_csr(bad, (size_t)len, &s, &is, out, sizeof out), -EBADMSG);
		CHECK_INT(tls_pki_sign_csr(csr, (size_t)len - 1, &s, &is, out, sizeof out),
			  -EINVAL);
	}
	/* The openssl CSR is accepted too. */
	{
		char label[TLS_PEM_LABEL_MAX + 1];
		size_t pos = 0;
		int len = tls_pem_next(vec_ecdev_csr_pem, strlen(vec_ecdev_csr_pem), &pos, label,
				       sizeof label, csr, sizeof csr);
		int m = tls_pki_sign_csr(csr, (size_t)len, &s, &is, out, sizeof out);

		CHECK(m > 0);
		if (m > 0) {
			CHECK_INT(tls_cert_parse(out, (size_t)m, &cc), 0);
			CHECK_STR(cc.cn, VEC_ECDEV_CN);
		}
	}
	{
		struct tls_pki_key *pub;

		MUST(tls_pki_key_from_spki(dev_ec.ci.spki.ptr, dev_ec.ci.spki.len, &pub) == 0);
		CHECK_INT(tls_pki_make_csr(&n, pub, csr, sizeof csr), -EINVAL);
		tls_pki_key_free(pub);
	}
}

/* wolfSSL's certificate manager must agree with what we built. */
static void test_wolfssl_verify(void)
{
	WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
	struct tls_pki_spec s;
	struct made exp, fut;

	MUST(cm != NULL);
	CHECK_INT(wolfSSL_CertManagerLoadCABuffer(cm, root_ec.der, (long)root_ec.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, dev_ec.der, (long)dev_ec.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, srv.der, (long)srv.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, verif.der, (long)verif.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	/* Signed by a CA the manager does not know. */
	CHECK(wolfSSL_CertManagerVerifyBuffer(cm, dev_rsa.der, (long)dev_rsa.len,
					      WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS);

	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 30);
	s.subject.cn = "expired";
	s.not_after = now - 86400;
	s.not_before = s.not_after - 30 * 86400;
	make(&exp, &s, TLS_KEY_EC, 256, &root_ec);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, exp.der, (long)exp.len,
						  WOLFSSL_FILETYPE_ASN1), ASN_AFTER_DATE_E);
	s.subject.cn = "future";
	s.not_before = now + 86400;
	s.not_after = now + 10 * 86400;
	make(&fut, &s, TLS_KEY_EC, 256, &root_ec);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, fut.der, (long)fut.len,
						  WOLFSSL_FILETYPE_ASN1), ASN_BEFORE_DATE_E);
	tls_pki_key_free(exp.key);
	tls_pki_key_free(fut.key);
	wolfSSL_CertManagerFree(cm);

	/* Same CN as the real root, other key: the device must not verify. */
	cm = wolfSSL_CertManagerNew();
	MUST(cm != NULL);
	CHECK_INT(wolfSSL_CertManagerLoadCABuffer(cm, other.der, (long)other.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK(wolfSSL_CertManagerVerifyBuffer(cm, dev_ec.der, (long)dev_ec.len,
					      WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS);
	wolfSSL_CertManagerFree(cm);

	/* Root -> intermediate -> device; without the intermediate, no path. */
	cm = wolfSSL_CertManagerNew();
	MUST(cm != NULL);
	CHECK_INT(wolfSSL_CertManagerLoadCABuffer(cm, root_rsa.der, (long)root_rsa.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK(wolfSSL_CertManagerVerifyBuffer(cm, dev_rsa.der, (long)dev_rsa.len,
					      WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, inter.der, (long)inter.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK_INT(wolfSSL_CertManagerLoadCABuffer(cm, inter.der, (long)inter.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	CHECK_INT(wolfSSL_CertManagerVerifyBuffer(cm, dev_rsa.der, (long)dev_rsa.len,
						  WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
	wolfSSL_CertManagerFree(cm);
}

static void test_files(void)
{
	char dir[] = "/tmp/vouch-test-pki-XXXXXX", path[256], *data;
	struct stat st;
	size_t len;
	DIR *d;
	struct dirent *e;
	int entries = 0;

	MUST(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/k.key", dir);
	CHECK_INT(tls_pki_file_write(path, "secret\n", 7, 0600, false), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(tls_pki_file_write(path, "other\n", 6, 0600, false), -EEXIST);
	CHECK_INT(tls_pki_file_read(path, 100, &data, &len), 0);
	CHECK_INT(len, 7);
	CHECK_STR(data, "secret\n");
	free(data);
	CHECK_INT(tls_pki_file_write(path, "other\n", 6, 0644, true), 0);
	CHECK_INT(tls_pki_file_read(path, 100, &data, &len), 0);
	CHECK_STR(data, "other\n");
	free(data);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
	CHECK_INT(tls_pki_file_read(path, 5, &data, &len), -EFBIG);
	CHECK(data == NULL);
	CHECK_INT(tls_pki_file_read(dir, 100, &data, &len), -EINVAL);
	snprintf(path, sizeof path, "%s/missing", dir);
	CHECK_INT(tls_pki_file_read(path, 100, &data, &len), -ENOENT);
	snprintf(path, sizeof path, "%s/nodir/x", dir);
	CHECK_INT(tls_pki_file_write(path, "x", 1, 0600, false), -ENOENT);
	/* No temporary files are left behind. */
	d = opendir(dir);
	MUST(d != NULL);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		entries++;
		CHECK_STR(e->d_name, "k.key");
	}
	closedir(d);
	CHECK_INT(entries, 1);
	snprintf(path, sizeof path, "%s/k.key", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	now = time(NULL);

	test_profiles();
	test_dates_and_serials();
	test_refusals();
	test_keys();
	test_csr();
	test_wolfssl_verify();
	test_files();

	tls_pki_key_free(root_ec.key);
	tls_pki_key_free(root_rsa.key);
	tls_pki_key_free(inter.key);
	tls_pki_key_free(dev_ec.key);
	tls_pki_key_free(dev_rsa.key);
	tls_pki_key_free(other.key);
	tls_pki_key_free(srv.key);
	tls_pki_key_free(verif.key);
	wolfSSL_Cleanup();

	if (failures) {
		fprintf(stderr, "test_pki: %d failures\n", failures);
		return 1;
	}
	printf("test_pki: ok\n");
	return 0;
}
