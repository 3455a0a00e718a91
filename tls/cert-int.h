/*
 * tls/cert-int.h - pieces of the certificate parser (tls/cert.c) that the
 * CRL parser (tls/crl.c) reuses, so that both read times and the signed
 * envelope by the same strict rules. Internal to tls/.
 * Pure functions on caller memory: any thread.
 */
#ifndef VOUCH_TLS_CERT_INT_H
#define VOUCH_TLS_CERT_INT_H

#include <stdint.h>

#include "tls/cert-t.h"
#include "tls/der.h"

/* UTCTime or GeneralizedTime element to unix seconds. 0 or -EINVAL. */
int tls_der_time(const struct tls_tlv *t, int64_t *out);

/* The signed envelope of certificates, CRLs and PKCS#10 requests:
 * SEQUENCE { tbs SEQUENCE, signature AlgorithmIdentifier, signature BIT
 * STRING (no unused bits) }, filling the whole input. tbs and alg are the
 * two SEQUENCEs, *sig_alg the algorithm (unknown ones give
 * TLS_SIG_UNKNOWN), *sig the signature bytes. 0 or -EINVAL. */
int tls_der_signed(const uint8_t *der, size_t len, struct tls_tlv *tbs, struct tls_tlv *alg,
		   enum tls_sig_alg *sig_alg, struct tls_span *sig);

/* An AuthorityKeyIdentifier extension's value (the OCTET STRING's
 * contents): its keyIdentifier into *akid when present (left alone
 * otherwise). 0 or -EINVAL when malformed. */
int tls_der_akid(const struct tls_tlv *v, struct tls_span *akid);

#endif
