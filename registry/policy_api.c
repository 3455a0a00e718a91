/*
 * The admin API of authorization policies (routed here by admin_handle):
 *
 *   GET    /api/v1/policies                      list
 *   POST   /api/v1/policies                      create (409 if the name exists)
 *   GET    /api/v1/policies/{name}               the document and its attachments
 *   PUT    /api/v1/policies/{name}               replace the document (live sessions follow)
 *   DELETE /api/v1/policies/{name}               delete (409 while attached)
 *   POST   /api/v1/policies/{name}/attach        {"certificateId"} or {"caCertificateId"}
 *   POST   /api/v1/policies/{name}/detach        the same
 *   GET    /api/v1/certificates/{id}/policy      the effective policy and where it comes from
 *   GET    /api/v1/cas/{id}/policy               the CA's default policy
 *
 * Every change builds the next policy set, writes it durably
 * (policies.json) and only then answers and tells the shards, so a refused
 * or failed request changes nothing. Registrar thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "registry/admin.h"
#include "registry/admin-int.h"
#include "registry/policies.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"

/* See registry/policies.h. */
struct pol_set *pol_initial_ref_mt(struct registrar *g)
{
	if (!g || !g->pol || !g->pol->initial)
		return NULL;
	pol_set_ref_mt(g->pol->initial);
	return g->pol->initial;
}

static json_t *attach_json(const struct pol_attach *a)
{
	json_t *o = json_object();

	if (o && json_object_set_new(o, a->kind == POL_T_CA ? "caCertificateId" : "certificateId",
				     admin_jhex(a->id, REG_ID_LEN)) == 0)
		return o;
	json_decref(o);
	return NULL;
}

static json_t *doc_with_attachments(const struct pol_set *s, const struct pol_doc *d)
{
	json_t *o = pol_doc_json(d), *arr = json_array();

	for (uint32_t i = 0; o && arr && i < s->n_att; i++)
		if (s->att[i].doc == d && json_array_append_new(arr, attach_json(&s->att[i])) != 0)
			goto nomem;
	if (o && arr && json_object_set_new(o, "attachments", arr) == 0)
		return o;
nomem:
	json_decref(o);
	json_decref(arr);
	return NULL;
}

/* Make `next` current (durably) and tell the shards; takes next. */
static int commit(struct registrar *g, struct pol_set *next, json_t **out)
{
	int rc;

	if (!next)
		return admin_fail(out, 500, "internal", "out of memory");
	rc = pol_store_commit(g->pol, next);
	if (rc)
		return admin_fail(out, 500, "internal", "cannot write the policies: %s", strerror(-rc));
	rg_notify_policy(g);
	return 0;
}

static int list(struct registrar *g, json_t **out)
{
	const struct pol_set *s = g->pol->cur;
	json_t *arr = json_array();

	for (uint32_t i = 0; arr && i < s->n_docs; i++) {
		const struct pol_doc *d = s->docs[i];
		json_t *e = json_pack("{s:s, s:b, s:I, s:I, s:I}", "name", d->name, "admin", d->admin,
				      "statements", (json_int_t)d->n_stmts, "revision", (json_int_t)d->rev,
				      "attachments", (json_int_t)pol_set_uses_mt(s, d));

		if (json_array_append_new(arr, e) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return admin_ok(out, 200, arr ? json_pack("{s:o, s:I}", "policies", arr, "total",
					     (json_int_t)s->n_docs) : NULL);
}

/* Create (name NULL: from the body) or replace (name from the path). */
static int put_doc(struct registrar *g, const struct admin_req *rq, const char *name,
		   const struct reg_by *by, json_t **out)
{
	char err[512];
	struct pol_doc *d, *old;
	json_t *o;
	int st, rc;

	st = admin_body_object(rq, NULL, &o, out);
	if (st)
		return st;
	json_object_del(o, "revision");         /* what GET shows may be sent back */
	json_object_del(o, "createdAt");
	json_object_del(o, "updatedAt");
	json_object_del(o, "attachments");
	rc = pol_doc_parse(o, name, &d, err, sizeof err);
	json_decref(o);
	if (rc == -ENOMEM)
		return admin_fail(out, 500, "internal", "out of memory");
	if (rc)
		return admin_fail(out, 400, "bad_policy", "%s", err);
	old = pol_set_find_mt(g->pol->cur, d->name);
	if (!name && old) {
		st = admin_fail(out, 409, "conflict", "a policy named %s exists (PUT replaces it)", d->name);
		pol_doc_unref_mt(d);
		return st;
	}
	if (name && !old) {
		st = admin_fail(out, 404, "not_found", "no such policy: %s (POST /api/v1/policies creates it)",
			   name);
		pol_doc_unref_mt(d);
		return st;
	}
	d->rev = ++g->pol->next_rev;
	d->updated = by->now ? by->now : (int64_t)time(NULL);
	d->created = old ? old->created : d->updated;
	st = commit(g, pol_set_with(g->pol->cur, d, NULL, 0, NULL, NULL), out);
	if (st == 0) {
		log_info("policy %s %s by %s", d->name, old ? "replaced" : "created",
			 by->actor ? by->actor : "admin");
		st = admin_ok(out, old ? 200 : 201, doc_with_attachments(g->pol->cur, d));
	}
	pol_doc_unref_mt(d);
	return st;
}

static int del_doc(struct registrar *g, const char *name, const struct reg_by *by, json_t **out)
{
	struct pol_doc *d = pol_set_find_mt(g->pol->cur, name);
	uint32_t uses;
	int st;

	if (!d)
		return admin_fail(out, 404, "not_found", "no such policy: %s", name);
	uses = pol_set_uses_mt(g->pol->cur, d);
	if (uses)
		return admin_fail(out, 409, "conflict", "policy %s is attached to %u CA(s) or certificate(s): detach it first",
			     name, uses);
	st = commit(g, pol_set_with(g->pol->cur, NULL, name, 0, NULL, NULL), out);
	if (st)
		return st;
	log_info("policy %s deleted by %s", name, by->actor ? by->actor : "admin");
	return admin_ok(out, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

/* The target of an attach/detach body: exactly one of the two IDs. */
static int target(const struct admin_req *rq, enum pol_target *kind, uint8_t id[REG_ID_LEN],
		  json_t **out)
{
	json_t *o, *ce, *ca;
	const char *hex;
	int st = admin_body_object(rq, NULL, &o, out);

	if (st)
		return st;
	ce = json_object_get(o, "certificateId");
	ca = json_object_get(o, "caCertificateId");
	if (json_object_size(o) != 1 || (!ce && !ca)) {
		json_decref(o);
		return admin_fail(out, 400, "bad_field",
			     "the body is {\"certificateId\": ID} or {\"caCertificateId\": ID}");
	}
	*kind = ce ? POL_T_CERT : POL_T_CA;
	hex = json_string_value(ce ? ce : ca);
	if (!hex || admin_parse_id(hex, id) != 0)
		st = admin_fail(out, 400, "bad_field", "\"%s\" must be 64 hex digits",
			   ce ? "certificateId" : "caCertificateId");
	json_decref(o);
	return st;
}

static int attach(struct registrar *g, const struct admin_req *rq, const char *name, bool on,
		  const struct reg_by *by, json_t **out)
{
	struct pol_doc *d = pol_set_find_mt(g->pol->cur, name), *prev;
	enum pol_target kind = POL_T_CERT;
	uint8_t id[REG_ID_LEN];
	struct reg_device dev;
	struct reg_ca ca;
	int st;

	if (!d)
		return admin_fail(out, 404, "not_found", "no such policy: %s", name);
	st = target(rq, &kind, id, out);
	if (st)
		return st;
	prev = pol_set_attached_mt(g->pol->cur, kind, id);
	if (on) {
		if (kind == POL_T_CERT && reg_dev_get_mt(g->reg, id, &dev) != 0)
			return admin_fail(out, 404, "not_found", "no such certificate");
		if (kind == POL_T_CA && reg_ca_get_mt(g->reg, id, &ca) != 0)
			return admin_fail(out, 404, "not_found", "no such CA certificate");
	} else if (prev != d) {
		return admin_fail(out, 404, "not_found", "policy %s is not attached to that %s", name,
			     kind == POL_T_CA ? "CA" : "certificate");
	}
	if (!(on && prev == d)) {
		st = commit(g, pol_set_with(g->pol->cur, NULL, NULL, kind, id, on ? d : NULL), out);
		if (st)
			return st;
		log_info("policy %s %s a %s by %s", name, on ? "attached to" : "detached from",
			 kind == POL_T_CA ? "CA" : "certificate", by->actor ? by->actor : "admin");
	}
	json_t *o = json_pack("{s:s, s:o, s:o}", "policy", name,
			      kind == POL_T_CA ? "caCertificateId" : "certificateId", admin_jhex(id, REG_ID_LEN),
			      on ? "replaced" : "detached",
			      on ? (prev && prev != d ? json_string(prev->name) : json_null())
				 : json_true());
	return admin_ok(out, 200, o);
}

/* GET /certificates/{id}/policy or /cas/{id}/policy. */
static int target_policy(struct registrar *g, bool is_ca, const char *hex, json_t **out)
{
	const struct pol_set *s = g->pol->cur;
	uint8_t id[REG_ID_LEN];
	struct reg_device d;
	struct reg_ca ca;
	struct pol_doc *own, *def;

	if (strlen(hex) != 2 * REG_ID_LEN || tls_unhex(hex, id, REG_ID_LEN) != REG_ID_LEN)
		return admin_fail(out, 404, "not_found", "no such %s: %s", is_ca ? "CA certificate" : "certificate",
			     hex);
	if (is_ca) {
		if (reg_ca_get_mt(g->reg, id, &ca) != 0)
			return admin_fail(out, 404, "not_found", "no such CA certificate");
		def = pol_set_attached_mt(s, POL_T_CA, id);
		return admin_ok(out, 200, json_pack("{s:o, s:o}", "caCertificateId", admin_jhex(id, REG_ID_LEN), "policy",
					       def ? json_string(def->name) : json_null()));
	}
	if (reg_dev_get_mt(g->reg, id, &d) != 0)
		return admin_fail(out, 404, "not_found", "no such certificate");
	own = pol_set_attached_mt(s, POL_T_CERT, id);
	def = pol_set_attached_mt(s, POL_T_CA, d.issuer);
	return admin_ok(out, 200, json_pack("{s:o, s:o, s:o, s:o, s:o}", "certificateId", admin_jhex(id, REG_ID_LEN),
				       "caCertificateId", admin_jhex(d.issuer, REG_ID_LEN),
				       "certificatePolicy", own ? json_string(own->name) : json_null(),
				       "caPolicy", def ? json_string(def->name) : json_null(),
				       "effectivePolicy", own ? json_string(own->name) :
						def ? json_string(def->name) : json_null()));
}

/* See registry/policies.h. */
int pol_admin_handle(struct registrar *g, const struct admin_req *rq, char (*seg)[80], int n,
		     const struct reg_by *by, json_t **out)
{
	if (!g->pol)
		return admin_fail(out, 500, "internal", "no policy store");
	if (strcmp(seg[0], "policies") != 0) {
		/* /cas/{id}/policy, /certificates/{id}/policy */
		if (!admin_is(rq, "GET"))
			return admin_no_method(out, rq);
		return target_policy(g, !strcmp(seg[0], "cas"), seg[1], out);
	}
	if (n == 1) {
		if (admin_is(rq, "GET"))
			return list(g, out);
		if (admin_is(rq, "POST"))
			return put_doc(g, rq, NULL, by, out);
		return admin_no_method(out, rq);
	}
	if (n == 2) {
		if (admin_is(rq, "GET")) {
			struct pol_doc *d = pol_set_find_mt(g->pol->cur, seg[1]);

			if (!d)
				return admin_fail(out, 404, "not_found", "no such policy: %s", seg[1]);
			return admin_ok(out, 200, doc_with_attachments(g->pol->cur, d));
		}
		if (admin_is(rq, "PUT"))
			return put_doc(g, rq, seg[1], by, out);
		if (admin_is(rq, "DELETE"))
			return del_doc(g, seg[1], by, out);
		return admin_no_method(out, rq);
	}
	if (n == 3 && (!strcmp(seg[2], "attach") || !strcmp(seg[2], "detach"))) {
		if (!admin_is(rq, "POST"))
			return admin_no_method(out, rq);
		return attach(g, rq, seg[1], !strcmp(seg[2], "attach"), by, out);
	}
	return admin_fail(out, 404, "not_found", "no such path: %s", rq->path);
}
