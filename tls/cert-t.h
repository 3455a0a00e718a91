/*
 * tls/cert-t.h - types of the X.509 certificate and PKCS#10 request parser
 * (functions in tls/cert.h).
 *
 * The certificate ID used everywhere in vouch (registry key, fingerprint
 * cache key, admin API) is the SHA-256 of the certificate's DER encoding.
 */
#ifndef VOUCH_TLS_CERT_T_H
#define VOUCH_TLS_CERT_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_CERT_ID_LEN 32     /* SHA-256 of the DER */
#define TLS_CERT_ID_HEX 65     /* 64 hex digits and a NUL */
#define TLS_CERT_SERIAL_MAX 32 /* RFC 5280 says 20; leave room for sloppy CAs */
#define TLS_CERT_NAME_MAX 64   /* bytes of UTF-8 in cn, o, ou, issuer_cn */

/*
 * A byte range inside the DER buffer given to the parser. It points into the
 * caller's memory and is valid exactly as long as that buffer is; len == 0
 * (and ptr == NULL) when the element is absent.
 */
struct tls_span {
	const uint8_t *ptr;
	size_t len;
};

enum tls_key_type {
	TLS_KEY_NONE = 0,
	TLS_KEY_RSA,
	TLS_KEY_EC,      /* id-ecPublicKey; key_bits is the curve size */
	TLS_KEY_ED25519,
	TLS_KEY_ED448,
	TLS_KEY_OTHER,   /* parsed, but we cannot verify with it */
};

enum tls_sig_alg {
	TLS_SIG_UNKNOWN = 0,
	TLS_SIG_RSA_SHA1, /* parsed for display; refused for verification */
	TLS_SIG_RSA_SHA256,
	TLS_SIG_RSA_SHA384,
	TLS_SIG_RSA_SHA512,
	TLS_SIG_ECDSA_SHA1, /* likewise refused */
	TLS_SIG_ECDSA_SHA256,
	TLS_SIG_ECDSA_SHA384,
	TLS_SIG_ECDSA_SHA512,
	TLS_SIG_RSA_PSS,
	TLS_SIG_ED25519,
};

/* keyUsage bits, numbered as the X.509 named bits (RFC 5280 4.2.1.3). */
enum {
	TLS_KU_DIGITAL_SIGNATURE = 1u << 0,
	TLS_KU_NON_REPUDIATION = 1u << 1,
	TLS_KU_KEY_ENCIPHERMENT = 1u << 2,
	TLS_KU_DATA_ENCIPHERMENT = 1u << 3,
	TLS_KU_KEY_AGREEMENT = 1u << 4,
	TLS_KU_KEY_CERT_SIGN = 1u << 5,
	TLS_KU_CRL_SIGN = 1u << 6,
	TLS_KU_ENCIPHER_ONLY = 1u << 7,
	TLS_KU_DECIPHER_ONLY = 1u << 8,
};

/* extendedKeyUsage purposes we recognise (RFC 5280 4.2.1.12). */
enum {
	TLS_EKU_SERVER_AUTH = 1u << 0,
	TLS_EKU_CLIENT_AUTH = 1u << 1,
	TLS_EKU_ANY = 1u << 2,
	TLS_EKU_OTHER = 1u << 3,
};

/*
 * What tls_cert_parse() extracts from one certificate. Strings are
 * NUL-terminated UTF-8 (converted from PrintableString, IA5String,
 * TeletexString as Latin-1, BMPString, UniversalString), empty when the
 * attribute is absent; when a name has the attribute more than once, the
 * first one is taken. Every tls_span points into the caller's DER.
 */
struct tls_cert_info {
	uint8_t id[TLS_CERT_ID_LEN];          /* SHA-256 of the whole DER */
	uint8_t serial[TLS_CERT_SERIAL_MAX];  /* magnitude, no leading zeros */
	size_t serial_len;
	int version;                          /* 1, 2 or 3 */

	char cn[TLS_CERT_NAME_MAX + 1];       /* subject commonName */
	char o[TLS_CERT_NAME_MAX + 1];        /* subject organizationName */
	char ou[TLS_CERT_NAME_MAX + 1];       /* subject organizationalUnitName */
	char issuer_cn[TLS_CERT_NAME_MAX + 1];

	/*
	 * Whole Name elements (SEQUENCE header included). An issuing CA is
	 * found by comparing `issuer` with CA certificates' `subject`
	 * byte for byte.
	 */
	struct tls_span subject;
	struct tls_span issuer;
	struct tls_span skid;   /* subjectKeyIdentifier: the key id bytes */
	struct tls_span akid;   /* authorityKeyIdentifier keyIdentifier bytes */
	struct tls_span spki;   /* SubjectPublicKeyInfo element */
	struct tls_span tbs;    /* TBSCertificate element: what is signed */
	struct tls_span sig;    /* signature bits (BIT STRING without pad octet) */

	int64_t not_before;     /* unix seconds, UTC */
	int64_t not_after;

	bool is_ca;             /* basicConstraints cA TRUE */
	int path_len;           /* basicConstraints pathLenConstraint, -1 if none */
	bool has_key_usage;
	uint16_t key_usage;     /* TLS_KU_* */
	uint8_t ext_key_usage;  /* TLS_EKU_*, 0 when the extension is absent */

	enum tls_key_type key_type;
	int key_bits;           /* RSA modulus bits, EC curve bits, 0 unknown */
	enum tls_sig_alg sig_alg;
};

/* What tls_csr_parse() extracts from a PKCS#10 CertificationRequest. */
struct tls_csr_info {
	char cn[TLS_CERT_NAME_MAX + 1];
	char o[TLS_CERT_NAME_MAX + 1];
	char ou[TLS_CERT_NAME_MAX + 1];
	struct tls_span subject; /* whole Name element */
	struct tls_span spki;
	struct tls_span info;    /* CertificationRequestInfo: what is signed */
	struct tls_span sig;
	enum tls_key_type key_type;
	int key_bits;
	enum tls_sig_alg sig_alg;
};

/* Called once per certificate by tls_cert_pem_all(); nonzero stops. */
typedef int (*tls_cert_each_fn)(const uint8_t *der, size_t len, void *arg);

#endif
