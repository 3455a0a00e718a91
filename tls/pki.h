/*
 * tls/pki.h - the PKI helper behind `vouchctl pki` and the test suites:
 * key pairs, CAs, intermediates, device, server and verification
 * certificates, CSRs, PKCS#8 keys and chain files, in one call each.
 *
 * Nothing here runs in the broker's hot path. Functions keep no global
 * state (each makes its own wolfCrypt RNG), so any thread may call them;
 * a struct tls_pki_key must not be used by two threads at once.
 */
#ifndef VOUCH_TLS_PKI_H
#define VOUCH_TLS_PKI_H

#include <stdbool.h>
#include <sys/types.h>

#include "tls/pki-t.h"

/*
 * tls_pki_key_generate - new key pair: TLS_KEY_RSA with bits 2048, 3072 or
 * 4096, or TLS_KEY_EC with bits 256 (P-256) or 384 (P-384); bits 0 picks
 * 2048 / 256. On success *out is the caller's (tls_pki_key_free()).
 * Returns 0, -EINVAL (unsupported type or size), -ENOMEM, -EIO.
 */
int tls_pki_key_generate(enum tls_key_type type, int bits,
			 struct tls_pki_key **out);

/*
 * tls_pki_key_from_pem - load the first private key of a PEM file:
 * "PRIVATE KEY" (PKCS#8), "RSA PRIVATE KEY" (PKCS#1) or "EC PRIVATE KEY"
 * (SEC1; an "EC PARAMETERS" block before it is skipped). Returns 0,
 * -ENOENT (no key block), -EOPNOTSUPP (encrypted key, other algorithm or
 * curve), -EINVAL (damaged), -ENOMEM.
 */
int tls_pki_key_from_pem(const char *pem, size_t len, struct tls_pki_key **out);

/* tls_pki_key_from_der - the same for one DER key (PKCS#8, PKCS#1, SEC1). */
int tls_pki_key_from_der(const uint8_t *der, size_t len,
			 struct tls_pki_key **out);

/*
 * tls_pki_key_from_spki - a public-only key from a SubjectPublicKeyInfo
 * (a CSR's key). It can be certified but cannot sign.
 */
int tls_pki_key_from_spki(const uint8_t *spki, size_t len,
			  struct tls_pki_key **out);

/* tls_pki_key_free - release a key (NULL is fine); wipes private parts. */
void tls_pki_key_free(struct tls_pki_key *k);

enum tls_key_type tls_pki_key_type(const struct tls_pki_key *k);
int tls_pki_key_bits(const struct tls_pki_key *k);
bool tls_pki_key_has_private(const struct tls_pki_key *k);

/*
 * tls_pki_key_spki - DER SubjectPublicKeyInfo of the key, as it appears
 * in certificates (compare with tls_cert_info.spki to match a key with a
 * certificate). Returns the length, -ENOSPC, -EIO.
 */
int tls_pki_key_spki(const struct tls_pki_key *k, uint8_t *out, size_t cap);

/*
 * tls_pki_pem_pair_matches - whether the PEM private key is the one of the
 * first certificate of the PEM text crt (a chain may follow). wolfSSL's
 * own check (wolfSSL_CTX_check_private_key) lets an EC key of another
 * certificate through in Debian's 5.5. Returns 1, 0 (another key),
 * -EBADMSG when the certificate does not parse, or the error of
 * tls_pki_key_from_pem for the key.
 */
int tls_pki_pem_pair_matches(const char *crt, size_t crt_len, const char *key,
			     size_t key_len);

/*
 * tls_pki_key_pkcs8 / tls_pki_key_pem - the private key as unencrypted
 * PKCS#8 DER, or as PEM "-----BEGIN PRIVATE KEY-----" (NUL-terminated).
 * Return the length, -EINVAL (public-only key), -ENOSPC, -EIO. The PEM
 * needs at most TLS_PKI_KEY_DER_MAX * 3 / 2 bytes.
 */
int tls_pki_key_pkcs8(const struct tls_pki_key *k, uint8_t *der, size_t cap);
int tls_pki_key_pem(const struct tls_pki_key *k, char *out, size_t cap);

/*
 * tls_pki_spec_init - defaults for `kind`: no subject, random serial,
 * valid from now - TLS_PKI_BACKDATE to now + days (days > 0), path_len 0
 * for intermediates and -1 otherwise, no SAN.
 */
void tls_pki_spec_init(struct tls_pki_spec *s, enum tls_pki_kind kind,
		       int64_t now, int days);

/*
 * tls_pki_issue - make the certificate `spec` describes for the public key
 * of `subject_key`, signed by `issuer` (its key must match its
 * certificate, and the certificate must be a CA), or self-signed by
 * `subject_key` when issuer is NULL (then it must hold the private key).
 * The issuer name is copied byte for byte from the issuer's subject, and
 * the authorityKeyIdentifier from its subjectKeyIdentifier, so that
 * chains resolve by exact comparison. Writes DER to der[cap]
 * (TLS_PKI_DER_MAX is always enough).
 * Returns the DER length; -EINVAL (bad spec: empty subject, bad country,
 * bad UTF-8, notAfter <= notBefore, bad IP; issuer not a CA; signer has no
 * private key), -ENAMETOOLONG, -EKEYREJECTED (issuer key does not match
 * its certificate), -ENOSPC, -ENOMEM, -EIO (wolfCrypt failed).
 */
int tls_pki_issue(const struct tls_pki_spec *spec,
		  const struct tls_pki_key *subject_key,
		  const struct tls_pki_issuer *issuer, uint8_t *der, size_t cap);

/*
 * tls_pki_key_generate_rng / tls_pki_issue_rng - the same as
 * tls_pki_key_generate() and tls_pki_issue(), with the caller's wolfCrypt
 * RNG (initialised with wc_InitRng()) instead of a new one per call: what
 * issuing thousands of certificates wants, one RNG per thread. An RNG must
 * not be used by two threads at once. tls_pki_issue_rng() with rng NULL is
 * tls_pki_issue().
 */
struct WC_RNG;
int tls_pki_key_generate_rng(enum tls_key_type type, int bits,
			     struct WC_RNG *rng, struct tls_pki_key **out);
int tls_pki_issue_rng(const struct tls_pki_spec *spec,
		      const struct tls_pki_key *subject_key,
		      const struct tls_pki_issuer *issuer, struct WC_RNG *rng,
		      uint8_t *der, size_t cap);

/*
 * tls_pki_make_csr - PKCS#10 request for `subject`, signed by `key`
 * (which must hold the private key). Returns the DER length or -errno as
 * tls_pki_issue().
 */
int tls_pki_make_csr(const struct tls_pki_name *subject,
		     const struct tls_pki_key *key, uint8_t *der, size_t cap);

/*
 * tls_pki_sign_csr - check the request's self-signature, then issue a
 * certificate for its key and its subject (copied byte for byte; the
 * subject in `spec` is ignored, everything else in `spec` applies).
 * Returns the DER length, -EBADMSG (signature does not verify: tampered
 * request or key not held), -EOPNOTSUPP (algorithm), -EINVAL (not a
 * CSR), or an error of tls_pki_issue().
 */
int tls_pki_sign_csr(const uint8_t *csr, size_t csr_len,
		     const struct tls_pki_spec *spec,
		     const struct tls_pki_issuer *issuer,
		     uint8_t *der, size_t cap);

/*
 * tls_pki_file_write - write data[len] to `path` durably: a temporary
 * file in the same directory created with `mode` (0600 for keys, 0644
 * for certificates), fsync'd, renamed into place, directory fsync'd.
 * Without `overwrite`, an existing file is left alone and -EEXIST
 * returned. Returns 0 or -errno.
 */
int tls_pki_file_write(const char *path, const void *data, size_t len,
		       mode_t mode, bool overwrite);

/*
 * tls_pki_file_read - read a whole file of at most `max` bytes into a new
 * NUL-terminated buffer *data (the caller frees it) of *len bytes.
 * Returns 0, -EFBIG, or -errno.
 */
int tls_pki_file_read(const char *path, size_t max, char **data, size_t *len);

#endif
