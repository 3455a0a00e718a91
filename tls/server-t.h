/*
 * tls/server-t.h - types of the mutual-TLS transport (functions in
 * tls/server.h): the identity a client proved, failure reasons, counters.
 *
 * struct tls_server (the WOLFSSL_CTX side: certificate, trust anchors,
 * ticket keys, caches) is opaque; tls/server-int.h has it for tls/ only.
 */
#ifndef VOUCH_TLS_SERVER_T_H
#define VOUCH_TLS_SERVER_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/cert-t.h"

struct tls_server;

/*
 * Who the client is, once the handshake is done. Everything points into
 * state owned by the connection's TLS transport and stays valid until the
 * connection is freed (it moves with the connection between shards).
 */
struct tls_identity {
	uint8_t cert_id[TLS_CERT_ID_LEN];      /* SHA-256 of the leaf DER */
	const uint8_t *der;                    /* the leaf certificate */
	size_t der_len;
	/* The certificate that issued the leaf: the next one of the chain the
	 * client presented, else the trust anchor whose subject (and key id)
	 * matches the leaf's issuer; NULL/0 if neither is known. */
	const uint8_t *issuer_der;
	size_t issuer_der_len;
	bool resumed;                          /* TLS session resumption */
	int version;                           /* 0x0303 or 0x0304 */
	const char *cipher;                    /* wolfSSL's suite name */
};

/* TLS alert descriptions (RFC 8446 6.2) the broker sends on purpose. */
enum {
	TLS_ALERT_CLOSE_NOTIFY = 0,
	TLS_ALERT_HANDSHAKE_FAILURE = 40,
	TLS_ALERT_BAD_CERTIFICATE = 42,
	TLS_ALERT_UNSUPPORTED_CERTIFICATE = 43,
	TLS_ALERT_CERTIFICATE_REVOKED = 44,
	TLS_ALERT_CERTIFICATE_EXPIRED = 45,
	TLS_ALERT_CERTIFICATE_UNKNOWN = 46,
	TLS_ALERT_UNKNOWN_CA = 48,
	TLS_ALERT_ACCESS_DENIED = 49,
	TLS_ALERT_DECRYPT_ERROR = 51,
	TLS_ALERT_INTERNAL_ERROR = 80,
	TLS_ALERT_CERTIFICATE_REQUIRED = 116,
};

/* Why a handshake failed (one counter each in struct tls_stats). */
enum tls_fail {
	TLS_FAIL_NONE = 0,
	TLS_FAIL_UNKNOWN_CA,     /* no path to a trust anchor */
	TLS_FAIL_EXPIRED,        /* a certificate of the chain is expired */
	TLS_FAIL_NOT_YET_VALID,  /* ... or not yet valid */
	TLS_FAIL_BAD_CERT,       /* bad signature, malformed, bad chain */
	TLS_FAIL_CA_AS_LEAF,     /* the client presented a CA certificate */
	TLS_FAIL_NO_CERT,        /* no client certificate, one is required */
	TLS_FAIL_KEY_PROOF,      /* CertificateVerify does not verify: the
				    client does not hold the certificate's key */
	TLS_FAIL_PROTOCOL,       /* anything else: version, ciphers, garbage */
	TLS_FAIL_N
};

/*
 * Counters for metrics, summed over every shard (relaxed atomics inside:
 * a snapshot, not a transaction).
 */
struct tls_stats {
	uint64_t handshakes_full;
	uint64_t handshakes_resumed;     /* tickets and session IDs */
	uint64_t fail[TLS_FAIL_N];       /* by enum tls_fail; [0] unused */
	uint64_t refused;                /* tls_conn_refuse() after handshake */
	uint64_t tickets_issued;
	uint64_t tickets_rejected;       /* unknown key, old trust set, no
					    identity: a full handshake instead */
	uint64_t sig_checks_skipped;     /* CA signature over a known leaf */
	uint64_t idcache_entries;        /* identity records held now */
	uint64_t sesscache_entries;      /* TLS 1.2 session-ID cache */
};

/*
 * The fingerprint-cache hook: true when the certificate with this ID is
 * already known good (registered, active, its CA signature checked
 * before). Called on shard threads, concurrently: it must be thread-safe
 * and must not block.
 */
typedef bool (*tls_known_fn)(void *ctx, const uint8_t cert_id[TLS_CERT_ID_LEN]);

#endif
