/*
 * tests/fuzz/fuzz_crl.c - libFuzzer harness for the CRL path of the admin
 * API and --crl-dir: tls_crl_decode() (PEM or DER), tls_crl_parse(), the
 * entry walk, and the signature check against a fixed CA.
 *
 * Besides "does not crash", it checks the parser's promises and aborts when
 * one is broken: spans lie inside the input, the walk yields exactly
 * n_revoked entries with serials within bounds, a failed parse leaves the
 * output zeroed.
 * Corpus: tests/fuzz/corpus/fuzz_crl/ (openssl-made CRLs in DER and PEM,
 * v1 and v2, RSA and ECDSA, and damaged variants).
 */
#include "tls/cert.h"
#include "tls/crl.h"

#include <stdlib.h>
#include <string.h>

/* A CA key to check signatures with: the P-256 base point, a valid public key. */
static const uint8_t ca_spki[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x6b, 0x17, 0xd1,
	0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03,
	0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f,
	0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16,
	0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51,
	0xf5,
};

static void span_in(const struct tls_span *s, const uint8_t *data, size_t size)
{
	if (s->len == 0)
		return;
	if (s->ptr < data || s->ptr > data + size || s->len > (size_t)(data + size - s->ptr))
		abort();
}

static void check_der(const uint8_t *data, size_t size)
{
	struct tls_crl_info c;
	struct tls_crl_iter it;
	struct tls_crl_entry e;
	struct tls_cert_info ca;
	size_t n = 0;

	if (tls_crl_parse(data, size, &c) != 0) {
		static const struct tls_crl_info zero;

		if (memcmp(&c, &zero, sizeof c) != 0)
			abort();
		return;
	}
	span_in(&c.issuer, data, size);
	span_in(&c.akid, data, size);
	span_in(&c.crl_number, data, size);
	span_in(&c.tbs, data, size);
	span_in(&c.sig, data, size);
	span_in(&c.revoked, data, size);
	if (memchr(c.issuer_cn, '\0', sizeof c.issuer_cn) == NULL ||
	    (c.version != 1 && c.version != 2) || c.issuer.len == 0)
		abort();
	tls_crl_iter_init(&c, &it);
	while (tls_crl_iter_next(&it, &e)) {
		if (e.serial_len == 0 || e.serial_len > TLS_CERT_SERIAL_MAX)
			abort();
		n++;
	}
	if (n != c.n_revoked)
		abort();
	/* Exercise the signature path with a real key. */
	memset(&ca, 0, sizeof ca);
	ca.spki.ptr = ca_spki;
	ca.spki.len = sizeof ca_spki;
	ca.subject = c.issuer;
	tls_crl_verify(&c, &ca);
	tls_crl_issued_by(&c, &ca);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *der;
	int n;

	check_der(data, size);
	/* The same bytes as an operator's file (PEM or DER). */
	der = malloc(size ? size : 1);
	if (!der)
		return 0;
	n = tls_crl_decode(data, size, der, size);
	if (n > (int)size)
		abort();
	if (n > 0) {
		/* An exact-size copy, so that an over-read is caught. */
		uint8_t *exact = malloc((size_t)n);

		if (exact) {
			memcpy(exact, der, (size_t)n);
			check_der(exact, (size_t)n);
			free(exact);
		}
	}
	free(der);
	return 0;
}
