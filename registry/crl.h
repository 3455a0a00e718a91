/*
 * Certificate revocation lists applied to the registry (registry/crl.c):
 * one import path shared by the admin API (POST /api/v1/crls,
 * registry/admin_crl.c) and the --crl-dir watcher.
 *
 * An import finds the issuing CA among the registered CAs, checks the CRL's
 * signature with that CA's key, and only then marks every listed serial of
 * the CA REVOKED in one durable batch, including serials never seen (those
 * certificates can then never register). Nothing is written when any check
 * fails. Registrar thread only.
 */
#ifndef VOUCH_REGISTRY_CRL_H
#define VOUCH_REGISTRY_CRL_H

#include <stddef.h>
#include <stdint.h>

#include "registry/regfile-t.h"

struct registrar;
struct rg_crl_dir;

/* What one import did. */
struct rg_crl_result {
	uint8_t ca_id[REG_ID_LEN];      /* the issuing CA */
	char ca_cn[REG_NAME_MAX + 1];
	uint32_t listed;                /* entries in the CRL */
	uint32_t revoked_registered;    /* registered certificates newly REVOKED */
	uint32_t revoked_unseen;        /* serials newly recorded, never seen */
	uint32_t already;               /* already revoked */
	int64_t this_update, next_update;
	bool stale;                     /* nextUpdate is in the past */
};

/*
 * rg_crl_import - apply one CRL file's bytes (PEM "X509 CRL" or DER) as
 * `actor` (e.g. "crl:admin:ops", "crl:ca-2025.crl"). Registrar thread.
 * Returns 0 with *res filled, or with a one-line reason in why[whylen]:
 *   -EINVAL      not a CRL (PEM without an X509 CRL block, bad DER);
 *   -EOPNOTSUPP  a delta or indirect CRL, an unknown critical extension,
 *                a signature algorithm vouch does not verify;
 *   -ENOENT      no registered CA has the CRL's issuer name (and key ID);
 *   -EBADMSG     such a CA exists but its key did not sign the CRL;
 *   -EPERM       the CA's keyUsage does not allow cRLSign;
 *   -EIO, -ENOMEM  writing failed (the registry's own rules apply).
 */
int rg_crl_import(struct registrar *g, const uint8_t *data, size_t len,
		  const char *actor, struct rg_crl_result *res, char *why,
		  size_t whylen);

/*
 * The --crl-dir watcher: rg_crl_dir_open() remembers the directory (it
 * must exist and be readable: -errno with a message otherwise);
 * rg_crl_dir_tick() rescans it at most once per RG_CRL_SCAN_MS and imports
 * each regular file (not starting with '.') once per change of its size,
 * mtime or inode. A file that does not import is retried when it changes;
 * its reason is logged once, after it stayed unchanged for one scan (a
 * file still being written is not reported). Registrar thread.
 */
#define RG_CRL_SCAN_MS 1000
int rg_crl_dir_open(struct rg_crl_dir **out, const char *dir, char *err,
		    size_t errlen);
void rg_crl_dir_tick(struct registrar *g, struct rg_crl_dir *d, uint64_t now_ns);
void rg_crl_dir_free(struct rg_crl_dir *d);

#endif
