/*
 * tls/cert-int.h - pieces of the certificate parser (tls/cert.c) that the
 * CRL parser (tls/crl.c) reuses, so that both read times, signature
 * algorithms and BIT STRINGs by the same strict rules. Internal to tls/.
 * Pure functions on caller memory: any thread.
 */
#ifndef VOUCH_TLS_CERT_INT_H
#define VOUCH_TLS_CERT_INT_H

#include <stdint.h>

#include "tls/cert-t.h"
#include "tls/der.h"

/* UTCTime or GeneralizedTime element to unix seconds. 0 or -EINVAL. */
int tls_der_time(const struct tls_tlv *t, int64_t *out);

/* A signature AlgorithmIdentifier SEQUENCE to an enum (unknown
 * algorithms give TLS_SIG_UNKNOWN). 0 or -EINVAL when malformed. */
int tls_der_sig_alg(const struct tls_tlv *alg, enum tls_sig_alg *out);

/* A BIT STRING with no unused bits: its bytes. 0 or -EINVAL. */
int tls_der_bit_bytes(const struct tls_tlv *t, struct tls_span *out);

#endif
