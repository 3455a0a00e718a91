/*
 * The admin HTTP/JSON API: CA registration with proof of possession, the
 * registration code, and the device-certificate lifecycle (register by
 * hand, query, activate, deactivate, revoke, bind a client ID, delete,
 * history), the self-hosted equivalent of the clouds' consoles.
 *
 * libmicrohttpd runs in external epoll mode: the registrar thread polls
 * admin_fd() with its own eventfd and calls admin_run(), so the handlers
 * below run on the registry's one writer thread and every write is durable
 * before its answer is queued. A write is one registry call, checked in
 * full before it is made: a refused request changes nothing.
 *
 * Answers are JSON; errors are {"error": "<code>", "message": "..."} with
 * 400 (bad JSON or field), 401 (token), 404 (path or ID), 405 (method),
 * 409 (a state rule), 413 (body over ADMIN_BODY_MAX), 500 (I/O). The one
 * exception is GET /metrics, Prometheus text (registry/metrics.c).
 */
#include "registry/admin.h"
#include "registry/admin-int.h"
#include "registry/admin-query.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "core/log.h"
#include "registry/admin_crl.h"
#include "registry/metrics.h"
#include "registry/policies.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"

#define API "/api/v1"
#define PAGE_DEFAULT 100

struct token {
	char *name;             /* actor suffix, NULL for plain "admin" */
	char *secret;
	size_t len;
};

struct admin {
	struct registrar *g;
	struct MHD_Daemon *d;
	int epfd;
	int port;
	struct token *tokens;
	size_t n_tokens;
	bool need_token;        /* a token file was configured */
	int64_t warn_secs;      /* "expiringSoon" window (expiry_warning_days) */
};

/* ---- answers ---------------------------------------------------------------- */

/* See registry/admin-int.h. */
int admin_fail(json_t **out, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	*out = json_pack("{s:s, s:s}", "error", code, "message", msg);
	return status;
}

/* See registry/admin-int.h. */
int admin_oom(json_t **out)
{
	return admin_fail(out, 500, "internal", "out of memory");
}

/* See registry/admin-int.h. */
int admin_ok(json_t **out, int status, json_t *v)
{
	if (!v)
		return admin_oom(out);
	*out = v;
	return status;
}

/* See registry/admin-int.h. */
json_t *admin_jtime(int64_t t)
{
	char s[32];

	return tls_time_format(t, s, sizeof s) > 0 ? json_string(s) : json_null();
}

/* See registry/admin-int.h. */
json_t *admin_jhex(const uint8_t *p, size_t n)
{
	char s[2 * 64 + 1];

	if (n > 64)
		return json_null();
	tls_hex(p, n, s);
	return json_string(s);
}

static json_t *jpem(const uint8_t *der, size_t len)
{
	size_t cap = tls_pem_size("CERTIFICATE", len);
	char *s = malloc(cap);
	json_t *v = NULL;

	if (s && tls_pem_encode("CERTIFICATE", der, len, s, cap) >= 0)
		v = json_string(s);
	free(s);
	return v;
}

/* json_object_set_new for many members; false if any failed. */
static bool put(json_t *o, const char *k, json_t *v)
{
	return v && json_object_set_new(o, k, v) == 0;
}

static json_t *dev_json(const struct admin *a, const struct reg_device *d, bool pem)
{
	int64_t now = time(NULL);
	json_t *o = json_object();
	bool good = o &&
		put(o, "certificateId", admin_jhex(d->id, REG_ID_LEN)) &&
		put(o, "serialNumber", admin_jhex(d->serial, d->serial_len)) &&
		put(o, "caCertificateId", admin_jhex(d->issuer, REG_ID_LEN)) &&
		put(o, "commonName", json_stringn(d->cn, d->cn_len)) &&
		put(o, "organization", json_stringn(d->o, d->o_len)) &&
		put(o, "organizationalUnit", json_stringn(d->ou, d->ou_len)) &&
		put(o, "notBefore", admin_jtime(d->not_before)) &&
		put(o, "notAfter", admin_jtime(d->not_after)) &&
		put(o, "expired", json_boolean(d->not_after < now)) &&
		put(o, "expiringSoon", json_boolean(d->not_after >= now &&
						     d->not_after - now <= a->warn_secs)) &&
		put(o, "status", json_string(reg_status_name(d->status))) &&
		put(o, "clientId", json_stringn(d->client_id, d->client_id_len)) &&
		put(o, "registeredBy", json_string(d->how == REG_AUTO ? "AUTO" : "MANUAL")) &&
		put(o, "createdAt", admin_jtime(d->created)) &&
		put(o, "createdBy", json_string(d->created_by)) &&
		put(o, "updatedAt", admin_jtime(d->updated)) &&
		put(o, "updatedBy", json_string(d->updated_by)) &&
		(!pem || put(o, "certificatePem", jpem(d->der, d->der_len)));

	if (!good) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *ca_json(const struct reg_ca *ca, bool pem)
{
	json_t *o = json_object();
	bool good = o &&
		put(o, "certificateId", admin_jhex(ca->id, REG_ID_LEN)) &&
		put(o, "caCertificateId", admin_jhex(ca->id, REG_ID_LEN)) &&
		put(o, "serialNumber", admin_jhex(ca->serial, ca->serial_len)) &&
		put(o, "commonName", json_stringn(ca->cn, ca->cn_len)) &&
		put(o, "organization", json_stringn(ca->o, ca->o_len)) &&
		put(o, "organizationalUnit", json_stringn(ca->ou, ca->ou_len)) &&
		put(o, "notBefore", admin_jtime(ca->not_before)) &&
		put(o, "notAfter", admin_jtime(ca->not_after)) &&
		put(o, "status", json_string(reg_status_name(ca->status))) &&
		put(o, "autoRegistration", json_boolean(ca->auto_register)) &&
		put(o, "autoStatus", json_string(reg_status_name(ca->auto_status))) &&
		put(o, "createdAt", admin_jtime(ca->created)) &&
		put(o, "createdBy", json_string(ca->created_by)) &&
		put(o, "updatedAt", admin_jtime(ca->updated)) &&
		put(o, "updatedBy", json_string(ca->updated_by)) &&
		(!pem || put(o, "certificatePem", jpem(ca->der, ca->der_len)));

	if (!good) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- request helpers ---------------------------------------------------------- */

/* See registry/admin-int.h. */
int admin_body_object(const struct admin_req *rq, const char *const *allowed,
		       json_t **obj, json_t **out)
{
	json_error_t je;
	const char *k;
	json_t *v, *o;

	*obj = NULL;
	if (!rq->body || rq->body_len == 0)
		return admin_fail(out, 400, "bad_request", "a JSON object body is needed");
	o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return admin_fail(out, 400, "bad_json", "line %d column %d: %s", je.line,
			    je.column, je.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return admin_fail(out, 400, "bad_json", "the body must be a JSON object");
	}
	json_object_foreach(o, k, v) {
		size_t i;

		if (!allowed)
			break;
		for (i = 0; allowed[i] && strcmp(allowed[i], k); i++)
			;
		if (!allowed[i]) {
			int st = admin_fail(out, 400, "bad_field", "unknown member \"%s\"", k);

			json_decref(o);
			return st;
		}
	}
	*obj = o;
	return 0;
}

/* An optional string member: 0 (absent: *s NULL), or 400 with *out. */
static int opt_string(json_t *o, const char *k, const char **s, size_t *len,
		      json_t **out)
{
	json_t *v = json_object_get(o, k);

	*s = NULL;
	if (len)
		*len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return admin_fail(out, 400, "bad_field", "\"%s\" must be a string", k);
	*s = json_string_value(v);
	if (len)
		*len = json_string_length(v);
	return 0;
}

static int opt_bool(json_t *o, const char *k, bool *b, json_t **out)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return admin_fail(out, 400, "bad_field", "\"%s\" must be true or false", k);
	*b = json_is_true(v);
	return 0;
}

/* A status member limited to two values (a, b); absent leaves *st. */
static int opt_status(json_t *o, const char *k, enum reg_status a,
		      enum reg_status b, enum reg_status c, enum reg_status *st,
		      json_t **out)
{
	const char *s;
	enum reg_status v;
	int rc = opt_string(o, k, &s, NULL, out);

	if (rc || !s)
		return rc;
	if (reg_status_parse(s, &v) != 0 || (v != a && v != b && v != c)) {
		if (c)
			return admin_fail(out, 400, "bad_field", "\"%s\" must be %s, %s or %s", k,
				    reg_status_name(a), reg_status_name(b), reg_status_name(c));
		return admin_fail(out, 400, "bad_field", "\"%s\" must be %s or %s", k,
			    reg_status_name(a), reg_status_name(b));
	}
	*st = v;
	return 0;
}

/* A PEM string member holding a certificate, into der (REG_DER_MAX). */
static int pem_member(json_t *o, const char *k, uint8_t *der, size_t *len,
		      json_t **out)
{
	const char *s;
	size_t sl;
	int rc = opt_string(o, k, &s, &sl, out);

	if (rc)
		return rc;
	if (!s)
		return admin_fail(out, 400, "bad_field", "\"%s\" (a PEM certificate) is missing", k);
	rc = tls_cert_pem_to_der(s, sl, der, REG_DER_MAX);
	if (rc == -ENOENT)
		return admin_fail(out, 400, "bad_certificate", "\"%s\" has no CERTIFICATE PEM block", k);
	if (rc == -ENOSPC)
		return admin_fail(out, 400, "bad_certificate", "\"%s\" is over %d bytes of DER", k,
			    REG_DER_MAX);
	if (rc <= 0)
		return admin_fail(out, 400, "bad_certificate", "\"%s\" is not valid PEM", k);
	*len = (size_t)rc;
	return 0;
}

/* See registry/admin-int.h. */
const char *admin_arg(const struct admin_req *rq, const char *k)
{
	for (int i = 0; i < rq->n_args; i++)
		if (!strcmp(rq->arg_key[i], k))
			return rq->arg_val[i] ? rq->arg_val[i] : "";
	return NULL;
}

/* See registry/admin-int.h. */
int admin_parse_id(const char *s, uint8_t id[REG_ID_LEN])
{
	return strlen(s) == 2 * REG_ID_LEN && tls_unhex(s, id, REG_ID_LEN) == REG_ID_LEN ? 0 : -EINVAL;
}

/* See registry/admin-int.h. */
bool admin_is(const struct admin_req *rq, const char *m)
{
	return !strcmp(rq->method, m);
}

/* See registry/admin-int.h. */
int admin_no_method(json_t **out, const struct admin_req *rq)
{
	return admin_fail(out, 405, "method_not_allowed", "%s is not allowed on %s",
		    rq->method, rq->path);
}

/* ---- registration code -------------------------------------------------------- */

static int code_get(struct admin *a, json_t **out)
{
	return admin_ok(out, 200, json_pack("{s:s}", "registrationCode", a->g->code));
}

static int code_rotate(struct admin *a, json_t **out)
{
	int rc = rg_code_rotate(a->g);

	if (rc)
		return admin_fail(out, 500, "internal", "cannot keep the new code: %s", strerror(-rc));
	log_info("admin: registration code rotated");
	return code_get(a, out);
}

/* ---- CAs -------------------------------------------------------------------- */

struct ca_row {
	int64_t created;
	uint8_t id[REG_ID_LEN];
};

struct rows {
	struct ca_row *v;
	size_t n, cap;
	bool nomem;
};

static int row_add(struct rows *r, int64_t created, const uint8_t id[REG_ID_LEN])
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct ca_row *v = realloc(r->v, cap * sizeof *v);

		if (!v) {
			r->nomem = true;
			return 1;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n].created = created;
	memcpy(r->v[r->n].id, id, REG_ID_LEN);
	r->n++;
	return 0;
}

/* Oldest first; the ID breaks ties so that pages are stable. */
static int row_cmp(const void *x, const void *y)
{
	const struct ca_row *a = x, *b = y;

	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	return memcmp(a->id, b->id, REG_ID_LEN);
}

static int ca_collect(void *ctx, const struct reg_ca *ca)
{
	return row_add(ctx, ca->created, ca->id);
}

static int ca_list(struct admin *a, json_t **out)
{
	struct rows r = { 0 };
	json_t *arr = json_array(), *o = NULL;

	reg_ca_foreach_mt(a->g->reg, ca_collect, &r);
	if (r.nomem || !arr)
		goto nomem;
	if (r.n)
		qsort(r.v, r.n, sizeof *r.v, row_cmp);
	for (size_t i = 0; i < r.n; i++) {
		struct reg_ca ca;

		if (reg_ca_get_mt(a->g->reg, r.v[i].id, &ca) == 0 &&
		    json_array_append_new(arr, ca_json(&ca, false)) != 0)
			goto nomem;
	}
	o = json_pack("{s:o, s:I}", "cas", arr, "total", (json_int_t)json_array_size(arr));
	free(r.v);
	return admin_ok(out, 200, o);
nomem:
	free(r.v);
	json_decref(arr);
	return admin_oom(out);
}

static int ca_get(struct admin *a, const uint8_t id[REG_ID_LEN], json_t **out)
{
	struct reg_ca ca;

	if (reg_ca_get_mt(a->g->reg, id, &ca) != 0)
		return admin_fail(out, 404, "not_found", "no such CA certificate");
	return admin_ok(out, 200, ca_json(&ca, true));
}

/* POST /cas: proof of possession, then the record. */
static int ca_register(struct admin *a, const struct admin_req *rq,
		       const struct reg_by *by, json_t **out)
{
	static const char *const fields[] = {
		"caCertificate", "verificationCertificate", "autoRegistration",
		"autoStatus", "status", NULL
	};
	uint8_t *ca_der = NULL, *ver_der = NULL;
	size_t ca_len = 0, ver_len = 0;
	struct tls_cert_info *ci = NULL, *vi = NULL;
	enum reg_status status = REG_ACTIVE, auto_status = REG_ACTIVE;
	bool auto_reg = false;
	int64_t now = time(NULL);
	json_t *o;
	struct reg_ca rec;
	int st, rc;

	st = admin_body_object(rq, fields, &o, out);
	if (st)
		return st;
	ca_der = malloc(REG_DER_MAX);
	ver_der = malloc(REG_DER_MAX);
	ci = malloc(sizeof *ci);
	vi = malloc(sizeof *vi);
	if (!ca_der || !ver_der || !ci || !vi) {
		st = admin_oom(out);
		goto done;
	}
	if ((st = pem_member(o, "caCertificate", ca_der, &ca_len, out)) ||
	    (st = pem_member(o, "verificationCertificate", ver_der, &ver_len, out)) ||
	    (st = opt_bool(o, "autoRegistration", &auto_reg, out)) ||
	    (st = opt_status(o, "autoStatus", REG_ACTIVE, REG_PENDING_ACTIVATION, 0,
			     &auto_status, out)) ||
	    (st = opt_status(o, "status", REG_ACTIVE, REG_INACTIVE, 0, &status, out)))
		goto done;
	rc = tls_cert_parse(ca_der, ca_len, ci);
	if (rc) {
		st = admin_fail(out, 400, "bad_certificate", "caCertificate does not parse: %s",
			  rc == -ENAMETOOLONG ? "a name is too long" : "not a valid X.509 certificate");
		goto done;
	}
	if (!ci->is_ca || (ci->has_key_usage && !(ci->key_usage & TLS_KU_KEY_CERT_SIGN))) {
		st = admin_fail(out, 400, "not_a_ca",
			  "caCertificate is not a CA certificate (basicConstraints cA and keyCertSign are needed)");
		goto done;
	}
	if (ci->not_after < now) {
		st = admin_fail(out, 400, "expired", "caCertificate expired");
		goto done;
	}
	rc = tls_cert_parse(ver_der, ver_len, vi);
	if (rc) {
		st = admin_fail(out, 400, "bad_certificate", "verificationCertificate does not parse");
		goto done;
	}
	/* Proof of possession: a certificate naming the current code, signed
	 * by the CA's own key. */
	if (strcmp(vi->cn, a->g->code) != 0) {
		st = admin_fail(out, 400, "verification_failed",
			  "the verification certificate's CN is not the current registration code");
		goto done;
	}
	rc = tls_cert_check_sig(vi, ci);
	if (rc == -EOPNOTSUPP) {
		st = admin_fail(out, 400, "unsupported_algorithm",
			  "the verification certificate's signature algorithm is not supported");
		goto done;
	}
	if (rc) {
		st = admin_fail(out, 400, "verification_failed",
			  "the verification certificate is not signed by the CA's key");
		goto done;
	}
	if (vi->not_after < now || vi->not_before > now + 300) {
		st = admin_fail(out, 400, "verification_failed",
			  "the verification certificate is not valid now");
		goto done;
	}
	if (reg_ca_get_mt(a->g->reg, ci->id, &rec) == 0) {
		st = admin_fail(out, 409, "conflict", "this CA certificate is registered already");
		goto done;
	}
	struct reg_ca_in in = {
		.serial = ci->serial, .serial_len = ci->serial_len,
		.cn = ci->cn, .o = ci->o, .ou = ci->ou,
		.not_before = ci->not_before, .not_after = ci->not_after,
		.status = status, .auto_register = auto_reg, .auto_status = auto_status,
		.der = ca_der, .der_len = ca_len,
	};
	memcpy(in.id, ci->id, REG_ID_LEN);
	rc = reg_ca_add(a->g->reg, &in, by);
	if (rc == -EEXIST) {
		st = admin_fail(out, 409, "conflict", "this CA certificate is registered already");
		goto done;
	}
	if (rc == -EINVAL || rc == -ENAMETOOLONG || rc == -EMSGSIZE) {
		st = admin_fail(out, 400, "bad_certificate", "the CA certificate cannot be stored: %s",
			  strerror(-rc));
		goto done;
	}
	if (rc) {
		st = admin_fail(out, 500, "internal", "cannot store the CA: %s", strerror(-rc));
		goto done;
	}
	/* Every registered CA is a trust anchor; an INACTIVE one is refused
	 * by the connect decision (a clear CONNACK), not by the handshake. */
	rg_trust_ca(a->g, ca_der, ca_len);
	rg_notify_ca(a->g, ci->id);
	if (reg_ca_get_mt(a->g->reg, ci->id, &rec) != 0) {
		st = admin_fail(out, 500, "internal", "the CA is stored but cannot be read back");
		goto done;
	}
	log_info("admin: CA \"%s\" registered by %s", rec.cn, by->actor);
	st = admin_ok(out, 201, ca_json(&rec, true));
done:
	json_decref(o);
	free(ca_der);
	free(ver_der);
	free(ci);
	free(vi);
	return st;
}

static int ca_status(struct admin *a, const uint8_t id[REG_ID_LEN],
		     enum reg_status s, const struct reg_by *by, json_t **out)
{
	struct reg_ca ca;
	int rc;

	if (reg_ca_get_mt(a->g->reg, id, &ca) != 0)
		return admin_fail(out, 404, "not_found", "no such CA certificate");
	rc = reg_ca_set_status(a->g->reg, id, s, by);
	if (rc == -ENOENT)
		return admin_fail(out, 404, "not_found", "no such CA certificate");
	if (rc)
		return admin_fail(out, 500, "internal", "cannot change the CA: %s", strerror(-rc));
	if (s != ca.status) {
		if (s == REG_ACTIVE)
			rg_trust_ca(a->g, ca.der, ca.der_len);  /* harmless if it is one */
		rg_notify_ca(a->g, id);
	}
	return ca_get(a, id, out);
}

static int ca_auto(struct admin *a, const struct admin_req *rq,
		   const uint8_t id[REG_ID_LEN], const struct reg_by *by, json_t **out)
{
	static const char *const fields[] = { "enabled", "status", NULL };
	enum reg_status initial = 0;
	struct reg_ca ca;
	json_t *o, *en;
	int st, rc;

	if (reg_ca_get_mt(a->g->reg, id, &ca) != 0)
		return admin_fail(out, 404, "not_found", "no such CA certificate");
	st = admin_body_object(rq, fields, &o, out);
	if (st)
		return st;
	en = json_object_get(o, "enabled");
	if (!json_is_boolean(en)) {
		st = admin_fail(out, 400, "bad_field", "\"enabled\" (true or false) is needed");
		goto done;
	}
	st = opt_status(o, "status", REG_ACTIVE, REG_PENDING_ACTIVATION, 0, &initial, out);
	if (st)
		goto done;
	rc = reg_ca_set_auto(a->g->reg, id, json_is_true(en), initial, by);
	if (rc == -ENOENT)
		st = admin_fail(out, 404, "not_found", "no such CA certificate");
	else if (rc == -EINVAL)
		st = admin_fail(out, 400, "bad_field", "invalid automatic registration setting");
	else if (rc)
		st = admin_fail(out, 500, "internal", "cannot change the CA: %s", strerror(-rc));
	else {
		rg_notify_ca(a->g, id);
		st = ca_get(a, id, out);
	}
done:
	json_decref(o);
	return st;
}

static int ca_delete(struct admin *a, const uint8_t id[REG_ID_LEN],
		     const struct reg_by *by, json_t **out)
{
	int rc = reg_ca_delete(a->g->reg, id, by);

	if (rc == -ENOENT)
		return admin_fail(out, 404, "not_found", "no such CA certificate");
	if (rc == -EBUSY)
		return admin_fail(out, 409, "conflict", "the CA is ACTIVE: deactivate it first");
	if (rc)
		return admin_fail(out, 500, "internal", "cannot delete the CA: %s", strerror(-rc));
	rg_trust_reset(a->g);   /* the remaining CAs */
	rg_notify_ca(a->g, id);
	return admin_ok(out, 200, json_pack("{s:o, s:b}", "certificateId", admin_jhex(id, REG_ID_LEN),
				      "deleted", 1));
}

/* ---- device certificates ----------------------------------------------------- */

static int dev_get(struct admin *a, const uint8_t id[REG_ID_LEN], json_t **out)
{
	struct reg_device d;

	json_t *o, *clients;

	if (reg_dev_get_mt(a->g->reg, id, &d) != 0)
		return admin_fail(out, 404, "not_found", "no such certificate");
	o = dev_json(a, &d, true);
	clients = rg_presence_clients(a->g, id);
	/* json_object_set_new takes clients, also when it fails */
	if (!o || !clients || json_object_set_new(o, "clients", clients) != 0) {
		if (!o || !clients)
			json_decref(clients);
		json_decref(o);
		return admin_oom(out);
	}
	return admin_ok(out, 200, o);
}

/* Find the registered CA that issued ci: same name, and its key verifies
 * the signature. */
struct issuer_find {
	const struct tls_cert_info *ci;
	struct tls_cert_info cai;
	uint8_t id[REG_ID_LEN];
	bool found;
};

static int issuer_each(void *ctx, const struct reg_ca *ca)
{
	struct issuer_find *f = ctx;

	if (tls_cert_parse(ca->der, ca->der_len, &f->cai) != 0)
		return 0;
	if (f->cai.subject.len != f->ci->issuer.len ||
	    memcmp(f->cai.subject.ptr, f->ci->issuer.ptr, f->ci->issuer.len) != 0)
		return 0;
	if (tls_cert_check_sig(f->ci, &f->cai) != 0)
		return 0;
	memcpy(f->id, ca->id, REG_ID_LEN);
	f->found = true;
	return 1;
}

#define CHAIN_MAX 4     /* the leaf and up to 3 intermediates */

struct chain {
	uint8_t *der[CHAIN_MAX];
	size_t len[CHAIN_MAX];
	int n;
	bool nomem;
};

static int chain_each(const uint8_t *der, size_t len, void *arg)
{
	struct chain *ch = arg;

	if (ch->n == CHAIN_MAX)
		return 1;
	ch->der[ch->n] = malloc(len ? len : 1);
	if (!ch->der[ch->n]) {
		ch->nomem = true;
		return 1;
	}
	memcpy(ch->der[ch->n], der, len);
	ch->len[ch->n++] = len;
	return 0;
}

/*
 * The registered CA that anchors the leaf ci: it signed the leaf, or it
 * signed one of the intermediates given after the leaf in the PEM, each of
 * which signed the one before (what vouchctl pki device --chain writes).
 * With `only`, that CA and no other. Sets f->found and f->id. 0 or -ENOMEM.
 */
static int find_anchor(struct admin *a, json_t *o, const struct tls_cert_info *ci,
		       const uint8_t *only, struct issuer_find *f)
{
	json_t *pem = json_object_get(o, "certificate");
	struct chain ch = { .n = 0 };
	struct tls_cert_info *infos = NULL;
	const struct tls_cert_info *child = ci;
	struct reg_ca ca;
	int rc = 0;

	f->found = false;
	tls_cert_pem_all(json_string_value(pem), json_string_length(pem), chain_each, &ch);
	if (ch.nomem || !(infos = malloc(CHAIN_MAX * sizeof *infos))) {
		rc = -ENOMEM;
		goto out;
	}
	for (int k = 0;; k++) {
		f->ci = child;
		if (only) {
			if (reg_ca_get_mt(a->g->reg, only, &ca) == 0)
				issuer_each(f, &ca);
		} else {
			reg_ca_foreach_mt(a->g->reg, issuer_each, f);
		}
		if (f->found || k + 1 >= ch.n)
			break;
		/* One more link: the next certificate must be a CA, named as
		 * the child's issuer, whose key signed the child. */
		struct tls_cert_info *up = &infos[k + 1];

		if (tls_cert_parse(ch.der[k + 1], ch.len[k + 1], up) != 0 || !up->is_ca ||
		    up->subject.len != child->issuer.len ||
		    memcmp(up->subject.ptr, child->issuer.ptr, up->subject.len) != 0 ||
		    tls_cert_check_sig(child, up) != 0)
			break;
		child = up;
	}
out:
	free(infos);
	for (int i = 0; i < ch.n; i++)
		free(ch.der[i]);
	return rc;
}

static int dev_register(struct admin *a, const struct admin_req *rq,
			const struct reg_by *by, json_t **out)
{
	static const char *const fields[] = {
		"certificate", "status", "clientId", "caCertificateId", NULL
	};
	enum reg_status status = REG_ACTIVE;
	struct issuer_find *f = NULL;
	struct tls_cert_info *ci = NULL;
	uint8_t *der = NULL;
	size_t len = 0, cl = 0;
	const char *client = NULL, *ca_hex = NULL;
	struct reg_device d;
	json_t *o;
	int st, rc;

	st = admin_body_object(rq, fields, &o, out);
	if (st)
		return st;
	der = malloc(REG_DER_MAX);
	ci = malloc(sizeof *ci);
	f = calloc(1, sizeof *f);
	if (!der || !ci || !f) {
		st = admin_oom(out);
		goto done;
	}
	if ((st = pem_member(o, "certificate", der, &len, out)) ||
	    (st = opt_status(o, "status", REG_ACTIVE, REG_INACTIVE,
			     REG_PENDING_ACTIVATION, &status, out)) ||
	    (st = opt_string(o, "clientId", &client, &cl, out)) ||
	    (st = opt_string(o, "caCertificateId", &ca_hex, NULL, out)))
		goto done;
	if (client && strlen(client) != cl) {
		st = admin_fail(out, 400, "bad_field", "\"clientId\" contains a NUL character");
		goto done;
	}
	if (cl > REG_CLIENT_MAX) {
		st = admin_fail(out, 400, "bad_field", "\"clientId\" is over %d bytes", REG_CLIENT_MAX);
		goto done;
	}
	rc = tls_cert_parse(der, len, ci);
	if (rc) {
		st = admin_fail(out, 400, "bad_certificate", "certificate does not parse: %s",
			  rc == -ENAMETOOLONG ? "a name is too long" : "not a valid X.509 certificate");
		goto done;
	}
	if (ci->is_ca) {
		st = admin_fail(out, 400, "bad_certificate",
			  "this is a CA certificate: register it under /api/v1/cas");
		goto done;
	}
	if (ca_hex && admin_parse_id(ca_hex, f->id) != 0) {
		st = admin_fail(out, 400, "unknown_ca", "caCertificateId is not a registered CA");
		goto done;
	}
	rc = find_anchor(a, o, ci, ca_hex ? f->id : NULL, f);
	if (rc == -ENOMEM) {
		st = admin_oom(out);
		goto done;
	}
	if (!f->found) {
		if (ca_hex)
			st = admin_fail(out, 400, "unknown_ca",
				  "the certificate does not chain to CA %s", ca_hex);
		else
			st = admin_fail(out, 400, "unknown_ca",
				  "the certificate's issuer is not a registered CA, nor signed by one through the intermediates given after it (or a signature does not verify)");
		goto done;
	}
	if (reg_dev_get_mt(a->g->reg, ci->id, &d) == 0) {
		st = admin_fail(out, 409, "conflict", "this certificate is registered already");
		goto done;
	}
	struct reg_dev_in in = {
		.serial = ci->serial, .serial_len = ci->serial_len,
		.cn = ci->cn, .o = ci->o, .ou = ci->ou,
		.not_before = ci->not_before, .not_after = ci->not_after,
		.status = status, .how = REG_MANUAL, .client_id = client,
		.der = der, .der_len = len,
	};
	memcpy(in.id, ci->id, REG_ID_LEN);
	memcpy(in.issuer, f->id, REG_ID_LEN);
	rc = reg_dev_add(a->g->reg, &in, by);
	if (rc == -EEXIST) {
		st = admin_fail(out, 409, "conflict",
			  "another certificate of this CA has the same serial number");
		goto done;
	}
	if (rc == -ENOENT) {
		st = admin_fail(out, 400, "unknown_ca", "the issuing CA is not registered");
		goto done;
	}
	if (rc == -EINVAL || rc == -ENAMETOOLONG || rc == -EMSGSIZE) {
		st = admin_fail(out, 400, "bad_certificate", "the certificate cannot be stored: %s",
			  strerror(-rc));
		goto done;
	}
	if (rc < 0) {
		st = admin_fail(out, 500, "internal", "cannot store the certificate: %s", strerror(-rc));
		goto done;
	}
	/* rc == 1: its serial is revoked on record: stored REVOKED. */
	rg_notify_dev(a->g, ci->id);
	if (reg_dev_get_mt(a->g->reg, ci->id, &d) != 0) {
		st = admin_fail(out, 500, "internal", "the certificate is stored but cannot be read back");
		goto done;
	}
	rg_publish_dev(a->g, "registered", &d, by->actor);
	st = admin_ok(out, 201, dev_json(a, &d, true));
done:
	json_decref(o);
	free(der);
	free(ci);
	free(f);
	return st;
}

/* GET /certificates: answered from the registry's query indexes
 * (registry/query.c); the parameters are parsed in admin-query.c. */
struct dev_page {
	const struct admin *a;
	json_t *arr;
};

static int dev_page_add(void *ctx, const struct reg_device *d)
{
	struct dev_page *p = ctx;

	return json_array_append_new(p->arr, dev_json(p->a, d, false)) ? -ENOMEM : 0;
}

static int dev_list(struct admin *a, const struct admin_req *rq, json_t **out)
{
	struct dev_page p = { a, json_array() };
	struct admq q;
	uint64_t total = 0;
	char msg[256];
	int rc = admq_parse(&q, rq, a->g->reg, time(NULL), msg, sizeof msg);

	if (!rc && p.arr)
		rc = reg_query(a->g->reg, &q.q, &total, dev_page_add, &p);
	admq_free(&q);
	if (rc == -EINVAL) {
		json_decref(p.arr);
		return admin_fail(out, 400, "bad_query", "%s", msg);
	}
	if (rc || !p.arr) {
		json_decref(p.arr);
		return admin_oom(out);
	}
	return admin_ok(out, 200, json_pack("{s:o, s:I, s:I, s:I}", "certificates", p.arr,
				      "total", (json_int_t)total,
				      "limit", (json_int_t)q.q.limit,
				      "offset", (json_int_t)q.q.offset));
}

static int dev_status(struct admin *a, const uint8_t id[REG_ID_LEN],
		      enum reg_status s, const struct reg_by *by, json_t **out)
{
	struct reg_device before, d;
	int rc;

	if (reg_dev_get_mt(a->g->reg, id, &before) != 0)
		return admin_fail(out, 404, "not_found", "no such certificate");
	rc = reg_dev_set_status(a->g->reg, id, s, by);
	if (rc == -ENOENT)
		return admin_fail(out, 404, "not_found", "no such certificate");
	if (rc == -EPERM)
		return admin_fail(out, 409, "conflict", "the certificate is REVOKED, which is final");
	if (rc == -EINVAL)
		return admin_fail(out, 400, "bad_request", "invalid status");
	if (rc)
		return admin_fail(out, 500, "internal", "cannot change the certificate: %s", strerror(-rc));
	if (reg_dev_get_mt(a->g->reg, id, &d) != 0)
		return admin_fail(out, 500, "internal", "the change is stored but cannot be read back");
	if (d.status != before.status) {
		rg_notify_dev(a->g, id);
		rg_publish_status(a->g, &d, before.status, by->actor);
		log_info("admin: certificate \"%s\" %s -> %s by %s", d.cn,
			 reg_status_name(before.status), reg_status_name(d.status), by->actor);
	}
	return admin_ok(out, 200, dev_json(a, &d, true));
}

static int dev_bind(struct admin *a, const struct admin_req *rq,
		    const uint8_t id[REG_ID_LEN], const struct reg_by *by, json_t **out)
{
	static const char *const fields[] = { "clientId", NULL };
	struct reg_device d;
	const char *client = NULL;
	size_t cl = 0;
	json_t *o;
	int st, rc;

	if (reg_dev_get_mt(a->g->reg, id, &d) != 0)
		return admin_fail(out, 404, "not_found", "no such certificate");
	st = admin_body_object(rq, fields, &o, out);
	if (st)
		return st;
	if (!json_object_get(o, "clientId")) {
		st = admin_fail(out, 400, "bad_field", "\"clientId\" is needed (\"\" unbinds)");
		goto done;
	}
	if ((st = opt_string(o, "clientId", &client, &cl, out)))
		goto done;
	rc = reg_dev_bind(a->g->reg, id, client ? client : "", cl, by);
	if (rc == -ENOENT)
		st = admin_fail(out, 404, "not_found", "no such certificate");
	else if (rc == -ENAMETOOLONG)
		st = admin_fail(out, 400, "bad_field", "\"clientId\" is over %d bytes", REG_CLIENT_MAX);
	else if (rc == -EINVAL)
		st = admin_fail(out, 400, "bad_field", "\"clientId\" contains a NUL character");
	else if (rc)
		st = admin_fail(out, 500, "internal", "cannot bind: %s", strerror(-rc));
	else {
		rg_notify_dev(a->g, id);
		st = dev_get(a, id, out);
	}
done:
	json_decref(o);
	return st;
}

static int dev_delete(struct admin *a, const uint8_t id[REG_ID_LEN],
		      const struct reg_by *by, json_t **out)
{
	struct reg_device d;
	int rc;

	if (reg_dev_get_mt(a->g->reg, id, &d) != 0)
		return admin_fail(out, 404, "not_found", "no such certificate");
	rc = reg_dev_delete(a->g->reg, id, by);
	if (rc == -ENOENT)
		return admin_fail(out, 404, "not_found", "no such certificate");
	if (rc == -EBUSY)
		return admin_fail(out, 409, "conflict", "the certificate is ACTIVE: deactivate it first");
	if (rc)
		return admin_fail(out, 500, "internal", "cannot delete: %s", strerror(-rc));
	rg_notify_dev(a->g, id);
	rg_publish_dev(a->g, "deleted", &d, by->actor);
	return admin_ok(out, 200, json_pack("{s:o, s:b}", "certificateId", admin_jhex(id, REG_ID_LEN),
				      "deleted", 1));
}

static const char *kind_name(enum reg_event_kind k)
{
	switch (k) {
	case REG_EV_ADDED: return "REGISTERED";
	case REG_EV_STATUS: return "STATUS";
	case REG_EV_BOUND: return "CLIENT_ID";
	case REG_EV_DELETED: return "DELETED";
	}
	return "?";
}

static int hist_each(void *ctx, const struct reg_event *ev)
{
	json_t *o = json_object();

	if (!o || !put(o, "event", json_string(kind_name(ev->kind))) ||
	    !put(o, "sequence", json_integer((json_int_t)ev->seq)) ||
	    !put(o, "time", admin_jtime(ev->time)) ||
	    !put(o, "actor", json_string(ev->actor ? ev->actor : "")) ||
	    !put(o, "status", json_string(reg_status_name(ev->status))) ||
	    !put(o, "clientId", json_string(ev->client_id ? ev->client_id : "")) ||
	    (ev->kind == REG_EV_ADDED &&
	     !put(o, "registeredBy", json_string(ev->how == REG_AUTO ? "AUTO" : "MANUAL"))) ||
	    json_array_append_new(ctx, o) != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	return 0;
}

static int dev_history(struct admin *a, const uint8_t id[REG_ID_LEN], json_t **out)
{
	json_t *arr = json_array();
	int rc;

	if (!arr)
		return admin_oom(out);
	rc = reg_dev_history_mt(a->g->reg, id, hist_each, arr);
	if (rc == -ENOENT) {
		json_decref(arr);
		return admin_fail(out, 404, "not_found", "this certificate was never registered");
	}
	if (rc) {
		json_decref(arr);
		return admin_oom(out);
	}
	return admin_ok(out, 200, json_pack("{s:o, s:o}", "certificateId", admin_jhex(id, REG_ID_LEN),
				      "events", arr));
}

/* ---- routing ------------------------------------------------------------------ */

/* Constant time in the secret's length: the token check leaks no prefix. */
static bool same_secret(const char *a, size_t al, const char *b, size_t bl)
{
	unsigned char d = al != bl;

	for (size_t i = 0; i < al; i++)
		d |= (unsigned char)(a[i] ^ b[i % (bl ? bl : 1)]);
	return d == 0 && bl;
}

/* 0 with the actor filled, or 401. */
static int authorize(struct admin *a, const struct admin_req *rq, char *actor,
		     size_t cap, json_t **out)
{
	const char *h = rq->auth, *tok;
	const struct token *hit = NULL;

	snprintf(actor, cap, "admin");
	if (!a->need_token)
		return 0;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return admin_fail(out, 401, "unauthorized", "a bearer token is needed");
	tok = h + 7;
	while (*tok == ' ')
		tok++;
	for (size_t i = 0; i < a->n_tokens; i++)
		if (same_secret(tok, strlen(tok), a->tokens[i].secret, a->tokens[i].len) && !hit)
			hit = &a->tokens[i];
	if (!hit)
		return admin_fail(out, 401, "unauthorized", "the bearer token is not valid");
	if (hit->name)
		snprintf(actor, cap, "admin:%s", hit->name);
	return 0;
}

/* See registry/admin.h. */
int admin_handle(struct admin *a, const struct admin_req *rq, json_t **out)
{
	char actor[REG_ACTOR_MAX + 1], seg[4][80];
	struct reg_by by = { .actor = actor };
	uint8_t id[REG_ID_LEN];
	const char *p = rq->path;
	int n = 0, st;

	*out = NULL;
	if (!strcmp(p, "/healthz")) {
		if (!admin_is(rq, "GET") && !admin_is(rq, "HEAD"))
			return admin_no_method(out, rq);
		return admin_ok(out, 200, json_pack("{s:s}", "status", "ok"));
	}
	if (strncmp(p, API "/", strlen(API) + 1) != 0)
		return admin_fail(out, 404, "not_found", "no such path: %s", p);
	st = authorize(a, rq, actor, sizeof actor, out);
	if (st)
		return st;
	if (rq->n_args < 0)
		return admin_fail(out, 400, "bad_query", "too many query parameters");
	/* Split what follows /api/v1/ into at most 4 segments. */
	p += strlen(API) + 1;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (n == 4 || l == 0 || l >= sizeof seg[0])
			return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
		memcpy(seg[n], p, l);
		seg[n++][l] = '\0';
		p += l;
		if (*p == '/')
			p++;    /* a separator, or one trailing slash */
	}
	if (n == 0)
		return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);

	/* authorization policies: registry/policy_api.c */
	if (!strcmp(seg[0], "policies") ||
	    (n == 3 && !strcmp(seg[2], "policy") &&
	     (!strcmp(seg[0], "cas") || !strcmp(seg[0], "certificates"))))
		return pol_admin_handle(a->g, rq, seg, n, &by, out);
	if (!strcmp(seg[0], "registration-code") && n == 1) {
		if (admin_is(rq, "GET"))
			return code_get(a, out);
		if (admin_is(rq, "POST"))
			return code_rotate(a, out);
		return admin_no_method(out, rq);
	}
	if (!strcmp(seg[0], "cas")) {
		if (n == 1) {
			if (admin_is(rq, "GET"))
				return ca_list(a, out);
			if (admin_is(rq, "POST"))
				return ca_register(a, rq, &by, out);
			return admin_no_method(out, rq);
		}
		if (n == 3 && strcmp(seg[2], "activate") && strcmp(seg[2], "deactivate") &&
		    strcmp(seg[2], "auto-registration"))
			return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
		if (n > 3)
			return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
		if (n == 2 && !admin_is(rq, "GET") && !admin_is(rq, "DELETE"))
			return admin_no_method(out, rq);
		if (n == 3 && !admin_is(rq, !strcmp(seg[2], "auto-registration") ? "PUT" : "POST"))
			return admin_no_method(out, rq);
		if (admin_parse_id(seg[1], id) != 0)
			return admin_fail(out, 404, "not_found", "no such CA certificate: %s", seg[1]);
		if (n == 2)
			return admin_is(rq, "GET") ? ca_get(a, id, out) : ca_delete(a, id, &by, out);
		if (!strcmp(seg[2], "activate"))
			return ca_status(a, id, REG_ACTIVE, &by, out);
		if (!strcmp(seg[2], "deactivate"))
			return ca_status(a, id, REG_INACTIVE, &by, out);
		return ca_auto(a, rq, id, &by, out);
	}
	if (!strcmp(seg[0], "crls") && n == 1)     /* registry/admin_crl.c */
		return admin_is(rq, "POST") ? admin_crl_post(a->g, rq, actor, out) : admin_no_method(out, rq);
	if (!strcmp(seg[0], "certificates")) {
		static const struct {
			const char *name, *method;
		} acts[] = {
			{ "activate", "POST" }, { "deactivate", "POST" }, { "revoke", "POST" },
			{ "client-id", "PUT" }, { "history", "GET" },
		};
		size_t k = 0;

		if (n == 1) {
			if (admin_is(rq, "GET"))
				return dev_list(a, rq, out);
			if (admin_is(rq, "POST"))
				return dev_register(a, rq, &by, out);
			return admin_no_method(out, rq);
		}
		if (n > 3)
			return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
		if (n == 3) {
			for (; k < sizeof acts / sizeof acts[0] && strcmp(acts[k].name, seg[2]); k++)
				;
			if (k == sizeof acts / sizeof acts[0])
				return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
			if (!admin_is(rq, acts[k].method))
				return admin_no_method(out, rq);
		} else if (!admin_is(rq, "GET") && !admin_is(rq, "DELETE")) {
			return admin_no_method(out, rq);
		}
		if (admin_parse_id(seg[1], id) != 0)
			return admin_fail(out, 404, "not_found", "no such certificate: %s", seg[1]);
		if (n == 2)
			return admin_is(rq, "GET") ? dev_get(a, id, out) : dev_delete(a, id, &by, out);
		switch (k) {
		case 0: return dev_status(a, id, REG_ACTIVE, &by, out);
		case 1: return dev_status(a, id, REG_INACTIVE, &by, out);
		case 2: return dev_status(a, id, REG_REVOKED, &by, out);
		case 3: return dev_bind(a, rq, id, &by, out);
		default: return dev_history(a, id, out);
		}
	}
	return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
}

/* See registry/admin.h. */
int admin_metrics(struct admin *a, const struct admin_req *rq, char **text, size_t *len,
		  json_t **out)
{
	char actor[REG_ACTOR_MAX + 1];
	int st;

	*text = NULL;
	*out = NULL;
	if (!admin_is(rq, "GET") && !admin_is(rq, "HEAD"))
		return admin_no_method(out, rq);
	st = authorize(a, rq, actor, sizeof actor, out);
	if (st)
		return st;
	if (metrics_render(a->g, text, len) != 0)
		return admin_oom(out);
	return 200;
}

/* ---- HTTP glue ---------------------------------------------------------------- */

/* One request being received. */
struct hreq {
	char *body;
	size_t len;
	size_t dropped;         /* body bytes read past the bound */
	bool too_big;
};

#define ADMIN_DROP_MAX  (16u << 20)

static enum MHD_Result arg_each(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	struct admin_req *rq = cls;

	(void)kind;
	if (rq->n_args < 0)
		return MHD_NO;
	if (rq->n_args == ADMIN_ARGS_MAX) {
		rq->n_args = -1;
		return MHD_NO;
	}
	rq->arg_key[rq->n_args] = key;
	rq->arg_val[rq->n_args] = value;
	rq->n_args++;
	return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t n;

	json_decref(j);
	if (!s) {
		static const char fallback[] =
			"{\"error\":\"internal\",\"message\":\"out of memory\"}";

		status = 500;
		r = MHD_create_response_from_buffer(sizeof fallback - 1, (void *)fallback,
						    MHD_RESPMEM_PERSISTENT);
	} else {
		n = strlen(s);
		r = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
		if (!r)
			free(s);
	}
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	ret = MHD_queue_response(c, (unsigned int)status, r);
	MHD_destroy_response(r);
	return ret;
}

/* /metrics answers text/plain, not JSON (errors stay JSON). */
static enum MHD_Result reply_metrics(struct MHD_Connection *c, struct admin *a,
				     const struct admin_req *rq)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	json_t *j = NULL;
	char *text;
	size_t len;
	int st = admin_metrics(a, rq, &text, &len, &j);

	if (st != 200)
		return reply(c, st, j);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result too_big(struct MHD_Connection *c)
{
	json_t *j = NULL;

	admin_fail(&j, 413, "too_large", "the request body is over %u bytes", ADMIN_BODY_MAX);
	return reply(c, 413, j);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **con_cls)
{
	struct admin *a = cls;
	struct hreq *h = *con_cls;
	struct admin_req rq = { 0 };
	json_t *j = NULL;
	int st;

	(void)version;
	if (!h) {
		const char *cl;

		h = calloc(1, sizeof *h);
		if (!h)
			return MHD_NO;
		*con_cls = h;
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > ADMIN_DROP_MAX) {
			/* Answer before the body: MHD then closes the connection
			 * without reading it (a client still sending may see the
			 * reset rather than the answer). */
			h->too_big = true;
			return too_big(c);
		}
		if (cl && strtoull(cl, NULL, 10) > ADMIN_BODY_MAX)
			h->too_big = true;      /* read, drop, then answer 413 */
		return MHD_YES;
	}
	if (*upload_size) {
		if (!h->too_big) {
			if (h->len + *upload_size > ADMIN_BODY_MAX) {
				/* Over the bound (a chunked body): libmicrohttpd
				 * 0.9.75 cannot answer before the body ends, so
				 * the rest is read and dropped, up to a limit. */
				h->too_big = true;
				free(h->body);
				h->body = NULL;
				h->len = 0;
			} else {
				char *b = realloc(h->body, h->len + *upload_size + 1);

				if (!b)
					return MHD_NO;
				memcpy(b + h->len, upload, *upload_size);
				h->body = b;
				h->len += *upload_size;
				h->body[h->len] = '\0';
			}
		}
		if (h->too_big) {
			h->dropped += *upload_size;
			if (h->dropped > ADMIN_DROP_MAX)
				return MHD_NO;  /* a stream without end: close */
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (h->too_big)
		return too_big(c);
	rq.method = method;
	rq.path = url;
	rq.auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	rq.body = h->body;
	rq.body_len = h->len;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_each, &rq);
	if (!strcmp(url, METRICS_PATH))
		return reply_metrics(c, a, &rq);
	st = admin_handle(a, &rq, &j);
	return reply(c, st, j);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct hreq *h = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (h) {
		free(h->body);
		free(h);
		*con_cls = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warn("admin API: %s", line);
}

/* Tokens: one a line, "name:token" or "token"; '#' comments. */
static int load_tokens(struct admin *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[1024];

	if (!f) {
		int e = errno;

		snprintf(err, errlen, "admin API: cannot read the token file %s: %s", path,
			 strerror(e));
		return -e;
	}
	a->need_token = true;
	while (fgets(line, sizeof line, f)) {
		char *s = line, *e, *colon;
		struct token *t;

		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (!*s || *s == '#')
			continue;
		t = realloc(a->tokens, (a->n_tokens + 1) * sizeof *t);
		if (!t)
			goto nomem;
		a->tokens = t;
		t = &a->tokens[a->n_tokens];
		memset(t, 0, sizeof *t);
		colon = strchr(s, ':');
		if (colon && colon > s && colon[1]) {
			*colon = '\0';
			if (strlen(s) > REG_ACTOR_MAX - 6) {
				snprintf(err, errlen, "admin API: token name '%s' in %s is too long", s, path);
				fclose(f);
				return -ENAMETOOLONG;
			}
			t->name = strdup(s);
			s = colon + 1;
			if (!t->name)
				goto nomem;
		}
		t->secret = strdup(s);
		if (!t->secret) {
			free(t->name);
			goto nomem;
		}
		t->len = strlen(s);
		a->n_tokens++;
	}
	fclose(f);
	if (a->n_tokens == 0) {
		snprintf(err, errlen, "admin API: the token file %s holds no token", path);
		return -EINVAL;
	}
	return 0;
nomem:
	fclose(f);
	snprintf(err, errlen, "admin API: out of memory");
	return -ENOMEM;
}

static int parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len,
			char *err, size_t errlen)
{
	char host[256];
	const char *port, *colon = strrchr(text, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	size_t hl;
	int rc;

	if (!colon || colon == text || !colon[1])
		goto bad;
	port = colon + 1;
	hl = (size_t)(colon - text);
	if (text[0] == '[') {
		if (hl < 3 || text[hl - 1] != ']')
			goto bad;
		text++;
		hl -= 2;
	}
	if (hl >= sizeof host)
		goto bad;
	memcpy(host, text, hl);
	host[hl] = '\0';
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc || !res) {
		snprintf(err, errlen, "admin API: cannot use the address '%s': %s", host,
			 gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(err, errlen, "admin API: listen address must be ADDR:PORT or [V6]:PORT");
	return -EINVAL;
}

/* See registry/admin.h. */
int admin_start(struct admin **out, struct registrar *g,
		const struct registrar_cfg *cfg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const union MHD_DaemonInfo *di;
	struct admin *a;
	unsigned int flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	int rc;

	*out = NULL;
	a = calloc(1, sizeof *a);
	if (!a) {
		snprintf(err, errlen, "admin API: out of memory");
		return -ENOMEM;
	}
	a->g = g;
	a->epfd = -1;
	a->warn_secs = (int64_t)(cfg->expiry_warning_days ? cfg->expiry_warning_days : 30) * 86400;
	if (cfg->admin_token_file && cfg->admin_token_file[0]) {
		rc = load_tokens(a, cfg->admin_token_file, err, errlen);
		if (rc)
			goto fail;
	}
	if (cfg->admin_listen && cfg->admin_listen[0]) {
		rc = parse_listen(cfg->admin_listen, &ss, &sl, err, errlen);
		if (rc)
			goto fail;
		if (ss.ss_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
					MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
					MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
					MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
					MHD_OPTION_END);
		if (!a->d) {
			snprintf(err, errlen, "admin API: cannot listen on %s (in use, or not a local address?)",
				 cfg->admin_listen);
			rc = -EADDRINUSE;
			goto fail;
		}
		di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD);
		a->epfd = di ? di->epoll_fd : -1;
		di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
		a->port = di ? di->port : 0;
		if (a->epfd < 0) {
			snprintf(err, errlen, "admin API: libmicrohttpd has no epoll descriptor");
			rc = -EOPNOTSUPP;
			goto fail;
		}
	}
	*out = a;
	return 0;
fail:
	admin_stop(a);
	return rc;
}

/* See registry/admin.h. */
void admin_stop(struct admin *a)
{
	if (!a)
		return;
	if (a->d)
		MHD_stop_daemon(a->d);
	for (size_t i = 0; i < a->n_tokens; i++) {
		free(a->tokens[i].name);
		if (a->tokens[i].secret) {
			explicit_bzero(a->tokens[i].secret, a->tokens[i].len);
			free(a->tokens[i].secret);
		}
	}
	free(a->tokens);
	free(a);
}

/* See registry/admin.h. */
int admin_fd(const struct admin *a)
{
	return a && a->d ? a->epfd : -1;
}

/* See registry/admin.h. */
int admin_timeout_ms(struct admin *a)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (!a || !a->d || MHD_get_timeout(a->d, &t) != MHD_YES)
		return -1;
	return t > INT_MAX ? INT_MAX : (int)t;
}

/* See registry/admin.h. */
void admin_run(struct admin *a)
{
	if (a && a->d)
		MHD_run(a->d);
}

/* See registry/admin.h. */
int admin_port(const struct admin *a)
{
	return a ? a->port : 0;
}
