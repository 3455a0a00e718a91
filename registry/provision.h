/*
 * Provisioning by CSR (registry/provision.c), the self-hosted certificate
 * vending machine: a device that holds only a claim certificate publishes
 * a PKCS#10 request on $SYS/provisioning/create-from-csr; its shard hands
 * it to the registrar (RQ_PROVISION, struct provision_req), which checks
 * it, signs a device certificate with the issuing CA (--issuing-ca,
 * --issuing-key), registers it and answers on the response topic.
 */
#ifndef VOUCH_REGISTRY_PROVISION_H
#define VOUCH_REGISTRY_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/regfile-t.h"

#define PROVISION_TOPIC "$SYS/provisioning/create-from-csr"
#define PROVISION_PAYLOAD_MAX (64u * 1024)      /* larger requests are refused */
#define PROVISION_DAYS 365                      /* validity of issued certificates */

struct registrar;
struct registrar_cfg;
struct rg_provision;

/*
 * One request, as a shard posts it (one allocation; the registrar frees
 * it). data holds, back to back: the response topic (resp_len bytes; 0 =
 * the v3.1.1 convention, answers on PROVISION_TOPIC/accepted/<client ID>
 * and .../rejected/<client ID>), the correlation data (corr_len), the
 * client ID (cid_len) and the payload (payload_len).
 */
struct provision_req {
	uint8_t claim_id[REG_ID_LEN];   /* the requester's certificate ID */
	uint16_t resp_len;
	uint16_t corr_len;
	uint16_t cid_len;
	uint32_t payload_len;
	uint8_t data[];
};

/*
 * Load the issuing CA's certificate and key (both NULL: provisioning is
 * off, requests are answered with an error). The key must match the
 * certificate and the certificate must be a CA; that it is a registered CA
 * is checked per request (it may be registered after start-up). Registrar
 * thread. 0 or -errno with a message in err.
 */
int rg_provision_init(struct rg_provision **out, const char *ca_file,
		      const char *key_file, char *err, size_t errlen);
void rg_provision_free(struct rg_provision *p);

/* Handle one request (freed here) and answer it. Registrar thread. */
void rg_provision(struct registrar *g, struct provision_req *rq);

#endif
