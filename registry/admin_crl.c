/*
 * The admin API's CRL import (POST /api/v1/crls): decode the JSON body and
 * hand the CRL to rg_crl_import() (registry/crl.c), which checks it in full
 * before anything is written. Runs on the registrar thread like every
 * admin handler, so the revocations are durable before the answer.
 */
#include "registry/admin_crl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/admin-int.h"
#include "registry/crl.h"
#include "registry/regfile-t.h"
#include "tls/cert.h"

#define CRL_NAME_MAX 64

/* thisUpdate / nextUpdate: 0 is "not in the CRL". */
static json_t *jtime(int64_t t)
{
	return t ? admin_jtime(t) : json_null();
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > CRL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* "crl" as given (PEM) or base64 DER wrapped into a PEM block. */
static char *crl_text(const char *s, size_t n, size_t *len)
{
	static const char head[] = "-----BEGIN X509 CRL-----\n";
	static const char tail[] = "\n-----END X509 CRL-----\n";
	char *t;

	if (memmem(s, n, "-----BEGIN ", 11)) {
		t = malloc(n + 1);
		if (t)
			memcpy(t, s, n + 1);
		*len = n;
		return t;
	}
	t = malloc(sizeof head + n + sizeof tail);
	if (!t)
		return NULL;
	memcpy(t, head, sizeof head - 1);
	memcpy(t + sizeof head - 1, s, n);
	memcpy(t + sizeof head - 1 + n, tail, sizeof tail);
	*len = sizeof head - 1 + n + sizeof tail - 1;
	return t;
}

static int status_of(int rc, const char **code)
{
	switch (rc) {
	case -EINVAL: *code = "bad_crl"; return 400;
	case -EOPNOTSUPP: *code = "unsupported_crl"; return 422;
	case -ENOENT: *code = "unknown_issuer"; return 422;
	case -EBADMSG: *code = "bad_signature"; return 422;
	case -EPERM: *code = "not_a_crl_signer"; return 422;
	default: *code = "internal"; return 500;
	}
}

/* See registry/admin_crl.h. */
int admin_crl_post(struct registrar *g, const struct admin_req *rq,
		   const char *actor, json_t **out)
{
	static const char *const members[] = { "crl", "name", NULL };
	char who[REG_ACTOR_MAX + 1], why[300];
	struct rg_crl_result res;
	json_t *o, *crl, *name;
	const char *code;
	char *text, hex[2 * REG_ID_LEN + 1];
	size_t len;
	int rc, st;

	if (!rq->body || rq->body_len == 0)
		return admin_fail(out, 400, "bad_request", "a JSON object body {\"crl\": ...} is needed");
	if ((st = admin_body_object(rq, members, &o, out)))
		return st;
	crl = json_object_get(o, "crl");
	name = json_object_get(o, "name");
	if (!json_is_string(crl) || json_string_length(crl) == 0) {
		json_decref(o);
		return admin_fail(out, 400, "bad_field",
				"\"crl\" (PEM text or base64 DER) must be a non-empty string");
	}
	if (name && !json_is_null(name) &&
	    (!json_is_string(name) ||
	     !name_ok(json_string_value(name), json_string_length(name)))) {
		json_decref(o);
		return admin_fail(out, 400, "bad_field",
				"\"name\" must be 1 to %d printable characters", CRL_NAME_MAX);
	}
	if (json_is_string(name))
		snprintf(who, sizeof who, "crl:%s:%s", actor, json_string_value(name));
	else
		snprintf(who, sizeof who, "crl:%s", actor);
	text = crl_text(json_string_value(crl), json_string_length(crl), &len);
	json_decref(o);
	if (!text)
		return admin_fail(out, 500, "internal", "out of memory");
	rc = rg_crl_import(g, (const uint8_t *)text, len, who, &res, why, sizeof why);
	free(text);
	if (rc) {
		st = status_of(rc, &code);
		return admin_fail(out, st, code, "%s%s", why, st < 500 ? "; nothing was applied" : "");
	}
	tls_hex(res.ca_id, REG_ID_LEN, hex);
	*out = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:o, s:b, s:s}",
			 "caCertificateId", hex, "caCommonName", res.ca_cn,
			 "listed", (int)res.listed,
			 "revokedRegistered", (int)res.revoked_registered,
			 "revokedUnseen", (int)res.revoked_unseen,
			 "alreadyRevoked", (int)res.already,
			 "thisUpdate", jtime(res.this_update),
			 "nextUpdate", jtime(res.next_update),
			 "stale", res.stale, "actor", who);
	if (!*out)
		return admin_fail(out, 500, "internal", "out of memory");
	return 200;
}
