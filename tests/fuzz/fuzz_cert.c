/*
 * tests/fuzz/fuzz_cert.c - libFuzzer harness for the certificate path the
 * broker runs on every new client certificate and the admin API on every
 * upload: tls_cert_parse() and what follows a successful parse (name
 * rendering, the signature check), the PKCS#10 parser, and the PEM reader
 * fed the same bytes as text.
 *
 * Besides "does not crash", it checks the parser's promises and aborts when
 * one is broken: spans lie inside the input, strings are NUL-terminated
 * within TLS_CERT_NAME_MAX, the ID is the SHA-256 of the input, a failed
 * parse leaves the output zeroed.
 * Corpus: tests/fuzz/corpus/fuzz_cert/ (certificates of every profile made
 * by tls/pki.c, openssl-made ones, CSRs, PEM chains, broken variants).
 */
#include "tls/cert.h"

#include <stdlib.h>
#include <string.h>

static void span_in(const struct tls_span *s, const uint8_t *data, size_t size)
{
	if (s->len == 0)
		return;
	if (s->ptr < data || s->ptr > data + size || s->len > (size_t)(data + size - s->ptr))
		abort();
}

static void name_ok(const char *s)
{
	if (memchr(s, '\0', TLS_CERT_NAME_MAX + 1) == NULL)
		abort();
}

static int each(const uint8_t *der, size_t len, void *arg)
{
	struct tls_cert_info ci;
	int *n = arg;

	if (tls_cert_parse(der, len, &ci) == 0)
		(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_cert_info ci;
	struct tls_csr_info cr;
	uint8_t id[TLS_CERT_ID_LEN];
	char buf[1024];
	int rc, n = 0;

	rc = tls_cert_parse(data, size, &ci);
	if (rc == 0) {
		span_in(&ci.subject, data, size);
		span_in(&ci.issuer, data, size);
		span_in(&ci.skid, data, size);
		span_in(&ci.akid, data, size);
		span_in(&ci.spki, data, size);
		span_in(&ci.tbs, data, size);
		span_in(&ci.sig, data, size);
		name_ok(ci.cn);
		name_ok(ci.o);
		name_ok(ci.ou);
		name_ok(ci.issuer_cn);
		if (ci.serial_len == 0 || ci.serial_len > TLS_CERT_SERIAL_MAX ||
		    ci.version < 1 || ci.version > 3 || ci.subject.len == 0)
			abort();
		if (tls_cert_id(data, size, id) != 0 || memcmp(id, ci.id, sizeof id) != 0)
			abort();
		/* Subjects that parsed are valid names, and render. */
		if (tls_name_fields(ci.subject.ptr, ci.subject.len, NULL, NULL, NULL) != 0)
			abort();
		tls_name_format(ci.subject.ptr, ci.subject.len, buf, sizeof buf);
		tls_name_format(ci.issuer.ptr, ci.issuer.len, buf, sizeof buf);
		tls_time_format(ci.not_before, buf, sizeof buf);
		/* Self-signature: exercises key decoding on hostile keys. */
		tls_cert_check_sig(&ci, &ci);
	} else {
		static const struct tls_cert_info zero = { .path_len = -1 };

		if (memcmp(&ci, &zero, sizeof ci) != 0)
			abort();
	}

	if (tls_csr_parse(data, size, &cr) == 0) {
		span_in(&cr.subject, data, size);
		span_in(&cr.spki, data, size);
		span_in(&cr.info, data, size);
		span_in(&cr.sig, data, size);
		name_ok(cr.cn);
		tls_csr_verify(&cr);
	}

	/* The same bytes as a PEM file. */
	rc = tls_cert_pem_all((const char *)data, size, each, &n);
	if (rc >= 0 && n > rc)
		abort();
	return 0;
}
