/*
 * POST /api/v1/crls (registry/admin_crl.c): the admin API's CRL import,
 * routed from admin_handle() in registry/admin.c.
 */
#ifndef VOUCH_REGISTRY_ADMIN_CRL_H
#define VOUCH_REGISTRY_ADMIN_CRL_H

#include <jansson.h>

#include "registry/admin.h"

struct registrar;

/*
 * Import the CRL of the request body {"crl": "<PEM, or base64 DER>",
 * "name": "<label, optional>"} as actor "crl:<actor>[:<name>]". Returns the
 * HTTP status with *out set: 200 and the counts; 400 (bad body or not a
 * CRL); 422 (no registered issuer, bad signature, unsupported CRL); 500.
 * Nothing is written unless the CRL parses and its signature verifies.
 * Registrar thread.
 */
int admin_crl_post(struct registrar *g, const struct admin_req *rq,
		   const char *actor, json_t **out);

#endif
