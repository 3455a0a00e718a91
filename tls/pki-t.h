/*
 * tls/pki-t.h - types of the PKI helper (functions in tls/pki.h): keys,
 * certificate profiles and what an issuing CA is.
 */
#ifndef VOUCH_TLS_PKI_T_H
#define VOUCH_TLS_PKI_T_H

#include "tls/cert-t.h"

/* An RSA or EC key pair, or just a public key (from a CSR). Opaque. */
struct tls_pki_key;

/* The certificate profiles vouchctl knows; each fixes the extensions. */
enum tls_pki_kind {
	/* Self-signed CA: basicConstraints CA:TRUE, keyCertSign+cRLSign. */
	TLS_PKI_ROOT_CA,
	/* CA signed by a CA: as above with pathLenConstraint (default 0). */
	TLS_PKI_INTERMEDIATE_CA,
	/* Device (mutual TLS client): CA:FALSE, digitalSignature
	 * (+keyEncipherment for RSA keys), extendedKeyUsage clientAuth. */
	TLS_PKI_DEVICE,
	/* The broker's own certificate: as a device but serverAuth, SAN. */
	TLS_PKI_SERVER,
	/* CA proof of possession: CN is the registration code,
	 * digitalSignature only, signed by the CA's key. */
	TLS_PKI_VERIFICATION,
};

/* Subject attributes; NULL or "" leaves an attribute out. Each is at most
 * TLS_CERT_NAME_MAX bytes of UTF-8; c is two letters. */
struct tls_pki_name {
	const char *c;
	const char *st;
	const char *l;
	const char *o;
	const char *ou;
	const char *cn;
};

#define TLS_PKI_MAX_SAN 8        /* DNS names and IP addresses each */
#define TLS_PKI_SERIAL_LEN 16    /* random serials: 16 bytes, positive */
#define TLS_PKI_BACKDATE 300     /* default notBefore is now minus this */
#define TLS_PKI_DER_MAX 8192     /* enough for any certificate we make */
#define TLS_PKI_KEY_DER_MAX 4096 /* PKCS#8 of an RSA-4096 key fits */

/*
 * What to put in a certificate. tls_pki_spec_init() fills defaults: a
 * random serial, notBefore = now - TLS_PKI_BACKDATE, notAfter = now + days.
 * Dates may be moved anywhere (past, future) for expired and not-yet-valid
 * test certificates.
 */
struct tls_pki_spec {
	enum tls_pki_kind kind;
	struct tls_pki_name subject;
	int64_t not_before;              /* unix seconds */
	int64_t not_after;
	uint8_t serial[20];              /* magnitude; RFC 5280 caps it at 20 */
	size_t serial_len;               /* 0: TLS_PKI_SERIAL_LEN random bytes */
	int path_len;                    /* intermediate CAs; -1: no limit */
	const char *dns[TLS_PKI_MAX_SAN]; /* subjectAltName dNSName */
	size_t n_dns;
	const char *ip[TLS_PKI_MAX_SAN];  /* subjectAltName iPAddress, text */
	size_t n_ip;
};

/* A CA that signs: its certificate (DER) and its private key. */
struct tls_pki_issuer {
	const uint8_t *cert;
	size_t cert_len;
	const struct tls_pki_key *key;
};

#endif
