/*
 * tls/cert.h - X.509 certificate and PKCS#10 request parsing, certificate
 * IDs (SHA-256 fingerprints), signature checks, PEM and hex helpers.
 *
 * The broker runs tls_cert_parse() on every certificate it has not seen
 * before, and the admin API runs it on every upload, so the parser is strict
 * DER, bounded, allocation-free and fuzzed (tests/fuzz/fuzz_cert.c). All
 * functions here are pure functions of their arguments: any thread may call
 * them concurrently on different (or shared read-only) buffers.
 */
#ifndef VOUCH_TLS_CERT_H
#define VOUCH_TLS_CERT_H

#include "tls/cert-t.h"

/*
 * tls_cert_parse - decode one DER certificate (exactly `len` bytes, no
 * trailing data) into `out`. The tls_span members of `out` point into
 * `der`: keep `der` alive and unchanged while you use them.
 * Returns 0; -EINVAL for anything that is not a well-formed certificate
 * (truncated, non-DER lengths, bad times, bad strings, duplicate known
 * extensions, inner and outer signature algorithms differing);
 * -ENAMETOOLONG when cn/o/ou/issuer CN exceed TLS_CERT_NAME_MAX bytes of
 * UTF-8. Never reads outside [der, der + len). `out` is zeroed on error.
 */
int tls_cert_parse(const uint8_t *der, size_t len, struct tls_cert_info *out);

/* tls_cert_id - SHA-256 of `der` into `id`. Returns 0 or -EIO. */
int tls_cert_id(const uint8_t *der, size_t len, uint8_t id[TLS_CERT_ID_LEN]);

/*
 * tls_cert_check_sig - 0 if `cert`'s signature verifies with `issuer`'s
 * public key (both already parsed; their buffers still alive). Only the
 * signature is checked: not names, dates or CA flags.
 * -EBADMSG if it does not verify (or the issuer's key cannot be used),
 * -EOPNOTSUPP for algorithms we do not verify (SHA-1, RSA-PSS, EdDSA).
 */
int tls_cert_check_sig(const struct tls_cert_info *cert,
		       const struct tls_cert_info *issuer);

/*
 * tls_cert_verify_signed_by - parse both DER certificates and check that
 * `der` is signed by the key of `issuer_der` (see tls_cert_check_sig()).
 * This is the CA proof-of-possession check: the verification certificate
 * must be signed by the CA's key. Returns 0, -EINVAL (either does not
 * parse), -EBADMSG, -EOPNOTSUPP.
 */
int tls_cert_verify_signed_by(const uint8_t *der, size_t len,
			      const uint8_t *issuer_der, size_t ilen);

/*
 * tls_sig_verify - verify `sig` over `data` with the SubjectPublicKeyInfo
 * `spki` under algorithm `alg`. Returns 0, -EBADMSG, -EOPNOTSUPP.
 */
int tls_sig_verify(enum tls_sig_alg alg, const uint8_t *data, size_t dlen,
		   const uint8_t *sig, size_t slen,
		   const uint8_t *spki, size_t spki_len);

/*
 * tls_csr_parse - decode a DER PKCS#10 CertificationRequest (no trailing
 * data). Spans point into `der`. Returns 0, -EINVAL, -ENAMETOOLONG.
 * Does not check the signature: see tls_csr_verify().
 */
int tls_csr_parse(const uint8_t *der, size_t len, struct tls_csr_info *out);

/* tls_csr_verify - 0 if the request is signed by its own key (proof that
 * the requester holds it); -EBADMSG or -EOPNOTSUPP otherwise. */
int tls_csr_verify(const struct tls_csr_info *csr);

/*
 * tls_spki_key - key type and size of a DER SubjectPublicKeyInfo.
 * Returns 0 or -EINVAL.
 */
int tls_spki_key(const uint8_t *spki, size_t len, enum tls_key_type *type,
		 int *bits);

/*
 * tls_name_fields - check a DER Name (whole SEQUENCE) as tls_cert_parse()
 * checks subjects, and copy its first CN, O and OU (each buffer, if not
 * NULL, TLS_CERT_NAME_MAX + 1 bytes). Returns 0, -EINVAL, -ENAMETOOLONG.
 */
int tls_name_fields(const uint8_t *name, size_t len, char *cn, char *o, char *ou);

/*
 * tls_name_format - render a DER Name (whole SEQUENCE, e.g. info.subject)
 * as "C=CN, O=IoV, CN=SN0001" (attributes in encoded order, like openssl
 * -nameopt oneline), escaping ',', '+', '=', '"', '\\', '<', '>', ';'.
 * Returns the string length, -EINVAL if malformed, -ENOSPC if `cap` is
 * too small (out is then truncated but NUL-terminated when cap > 0).
 */
int tls_name_format(const uint8_t *name, size_t len, char *out, size_t cap);

/* Longest PEM label tls_pem_next() accepts, without the NUL. */
#define TLS_PEM_LABEL_MAX 64

/*
 * tls_pem_next - find the next "-----BEGIN <label>-----" block in
 * pem[*pos .. len) and base64-decode it into `der` (cap bytes; the decoded
 * size is at most 3/4 of the block). On success *pos moves past the END
 * line, `label` (if not NULL) gets the label, and the DER length is
 * returned. -ENOENT when no further block exists; -EINVAL on a broken block
 * (missing END, bad base64, PEM headers); -ENOSPC if `der` is too small.
 */
int tls_pem_next(const char *pem, size_t len, size_t *pos, char *label,
		 size_t label_cap, uint8_t *der, size_t cap);

/*
 * tls_pem_encode - write `der` as a PEM block with `label`, 64 columns,
 * LF line ends, NUL-terminated. Returns the length without the NUL or
 * -ENOSPC; tls_pem_size() gives the bytes needed (NUL included).
 */
int tls_pem_encode(const char *label, const uint8_t *der, size_t len,
		   char *out, size_t cap);
size_t tls_pem_size(const char *label, size_t der_len);

/*
 * tls_cert_pem_to_der - decode the first CERTIFICATE block of `pem` (other
 * blocks are skipped). Returns the DER length, -ENOENT if none, -EINVAL,
 * -ENOSPC.
 */
int tls_cert_pem_to_der(const char *pem, size_t len, uint8_t *der, size_t cap);

/*
 * tls_cert_pem_all - call fn(der, len, arg) for each CERTIFICATE block of a
 * PEM file (a chain file: leaf first), in order. The DER given to fn is
 * valid only during the call. Returns the number of certificates, a
 * negative decode error (-EINVAL, -ENOMEM), or fn's nonzero return value,
 * which stops the walk.
 */
int tls_cert_pem_all(const char *pem, size_t len, tls_cert_each_fn fn,
		     void *arg);

/* tls_hex - lowercase hex of p[0..n) into out (2n + 1 bytes, NUL-ended). */
void tls_hex(const uint8_t *p, size_t n, char *out);

/*
 * tls_unhex - parse a NUL-terminated hex string (either case; ':' between
 * byte pairs allowed, as openssl prints serials) into out. Returns the
 * number of bytes, -EINVAL (odd digits, bad characters), -ENOSPC.
 */
int tls_unhex(const char *hex, uint8_t *out, size_t cap);

/*
 * tls_time_format - unix seconds as "2025-01-31T23:59:59Z" (needs 21
 * bytes). Returns the length or -EINVAL/-ENOSPC.
 */
int tls_time_format(int64_t t, char *out, size_t cap);

/* Short names for logs and output: "rsa", "ec", ...; "sha256WithRSA", ... */
const char *tls_key_type_name(enum tls_key_type t);
const char *tls_sig_alg_name(enum tls_sig_alg a);

#endif
