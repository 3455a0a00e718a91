/*
 * tls/crl.h - X.509 certificate revocation lists (RFC 5280 section 5):
 * strict DER parsing, the issuer's signature check, PEM input.
 *
 * Like the certificate parser (tls/cert.h) it is bounded, allocation-free
 * and fuzzed (tests/fuzz/fuzz_crl.c): it never reads outside the buffer it
 * is given. Pure functions of their arguments: any thread.
 */
#ifndef VOUCH_TLS_CRL_H
#define VOUCH_TLS_CRL_H

#include "tls/crl-t.h"

/* Largest DER CRL vouch accepts (about 100,000 entries). */
#define TLS_CRL_DER_MAX (4u << 20)

/*
 * tls_crl_parse - decode one DER CertificateList (exactly `len` bytes).
 * Every revoked entry is checked (serial, date, entry extensions); the
 * spans of `out` point into `der`. Returns 0; -EINVAL for anything that
 * is not a well-formed CRL (truncated, non-DER lengths, bad times, inner
 * and outer signature algorithms differing, repeated extensions, a serial
 * over TLS_CERT_SERIAL_MAX bytes); -ENAMETOOLONG when the issuer CN is over
 * TLS_CERT_NAME_MAX bytes. `out` is zeroed on error. Does not check the
 * signature: see tls_crl_verify().
 */
int tls_crl_parse(const uint8_t *der, size_t len, struct tls_crl_info *out);

/*
 * tls_crl_verify - 0 if the CRL is signed by the key of the CA certificate
 * `ca` (parsed; its buffer alive). Only the signature: the caller matches
 * names and key identifiers. -EBADMSG, -EOPNOTSUPP (SHA-1, PSS, EdDSA).
 */
int tls_crl_verify(const struct tls_crl_info *crl, const struct tls_cert_info *ca);

/* tls_crl_issued_by - whether `ca` may be the CRL's issuer: its subject is
 * the CRL's issuer byte for byte, and when both carry key identifiers the
 * CRL's authorityKeyIdentifier is the CA's subjectKeyIdentifier. */
bool tls_crl_issued_by(const struct tls_crl_info *crl, const struct tls_cert_info *ca);

/* Walk the revoked entries of a CRL parsed by tls_crl_parse() (its buffer
 * alive): next returns 1 with *e filled, 0 at the end. */
void tls_crl_iter_init(const struct tls_crl_info *crl, struct tls_crl_iter *it);
int tls_crl_iter_next(struct tls_crl_iter *it, struct tls_crl_entry *e);

/*
 * tls_crl_decode - a CRL file as given by an operator: PEM ("X509 CRL"
 * block; other blocks before it are skipped) or DER. Writes the DER to
 * der[cap] (a DER input is copied). Returns the DER length; -ENOENT (text
 * without an X509 CRL block), -EINVAL (broken PEM), -ENOSPC (over cap).
 * The result still has to go through tls_crl_parse().
 */
int tls_crl_decode(const uint8_t *in, size_t len, uint8_t *der, size_t cap);

#endif
