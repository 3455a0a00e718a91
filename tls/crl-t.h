/*
 * tls/crl-t.h - types of the X.509 CRL parser (functions in tls/crl.h).
 */
#ifndef VOUCH_TLS_CRL_T_H
#define VOUCH_TLS_CRL_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/cert-t.h"
#include "tls/der.h"

/* CRLReason (RFC 5280 5.3.1); TLS_CRL_REASON_NONE when absent. */
enum {
	TLS_CRL_REASON_NONE = -1,
	TLS_CRL_REASON_REMOVE_FROM_CRL = 8,
};

/*
 * What tls_crl_parse() extracts from a CertificateList. Spans point into
 * the caller's DER. The revoked entries are not copied (a CRL may list
 * many thousands): walk them with tls_crl_iter_*; the parse has already
 * checked every one, so the walk cannot fail.
 */
struct tls_crl_info {
	int version;                    /* 1 or 2 */
	struct tls_span issuer;         /* whole Name element */
	char issuer_cn[TLS_CERT_NAME_MAX + 1];
	int64_t this_update;            /* unix seconds */
	int64_t next_update;            /* 0 when absent */
	struct tls_span akid;           /* authorityKeyIdentifier keyIdentifier */
	struct tls_span crl_number;     /* cRLNumber INTEGER contents, if any */
	struct tls_span tbs;            /* TBSCertList element: what is signed */
	struct tls_span sig;            /* signature bits */
	enum tls_sig_alg sig_alg;
	struct tls_span revoked;        /* revokedCertificates contents (may be empty) */
	size_t n_revoked;
	bool delta;                     /* deltaCRLIndicator present */
	bool indirect;                  /* an entry names another issuer (certificateIssuer) */
	bool unknown_critical;          /* a critical extension we do not know */
};

/* One revoked certificate. */
struct tls_crl_entry {
	uint8_t serial[TLS_CERT_SERIAL_MAX];    /* magnitude, no leading zeros */
	size_t serial_len;
	int64_t revoked_at;                     /* revocationDate, unix seconds */
	int reason;                             /* CRLReason or TLS_CRL_REASON_NONE */
};

/* A walk over the entries of a parsed CRL. */
struct tls_crl_iter {
	struct tls_der d;
};

#endif
