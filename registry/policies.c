/*
 * Authorization policy documents, immutable sets of them with their
 * attachments, the policies.json file and the registrar's store (see
 * registry/policies.h). A change never edits a set: it builds the next one,
 * writes it durably, and only then makes it current, so a failed write
 * leaves everything as it was.
 */
#include "registry/policies.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "tls/cert.h"
#include "tls/pki.h"

#define POL_FILE_MAX (64u << 20)
#define POL_FILE_VERSION 1

/* ---- templates ---------------------------------------------------------------- */

static const struct {
	const char *name;
	uint32_t bit;
} vars[] = {
	{ "clientid", POL_V_CLIENTID }, { "cn", POL_V_CN }, { "serial", POL_V_SERIAL },
	{ "ou", POL_V_OU }, { "certid", POL_V_CERTID },
};

/* See registry/policies.h. */
int pol_template_check(const char *t, size_t len, uint32_t *vars_out, char *err, size_t errlen)
{
	uint32_t used = 0;
	size_t i = 0;

	if (len == 0)
		return snprintf(err, errlen, "a topic filter cannot be empty"), -EINVAL;
	if (len > POL_FILTER_MAX)
		return snprintf(err, errlen, "a topic filter is at most %d bytes", POL_FILTER_MAX),
		       -EINVAL;
	if (strlen(t) != len)
		return snprintf(err, errlen, "a topic filter cannot hold a NUL character"), -EINVAL;
	if (len >= 7 && !memcmp(t, "$share/", 7))
		return snprintf(err, errlen, "a policy names topics, not shared subscriptions ($share/)"),
		       -EINVAL;
	while (i <= len) {
		size_t e = i;

		while (e < len && t[e] != '/')
			e++;
		/* level [i, e) */
		if (memchr(t + i, '+', e - i) || memchr(t + i, '#', e - i)) {
			if (e - i != 1)
				return snprintf(err, errlen, "'+' and '#' must be a whole level in \"%s\"", t),
				       -EINVAL;
			if (t[i] == '#' && e != len)
				return snprintf(err, errlen, "'#' must be the last level in \"%s\"", t),
				       -EINVAL;
		}
		for (size_t k = i; k < e; k++) {
			if (t[k] != '$' || k + 1 >= e || t[k + 1] != '{')
				continue;
			const char *close = memchr(t + k, '}', e - k);
			size_t n, v;

			if (!close)
				return snprintf(err, errlen, "unterminated ${ in \"%s\"", t), -EINVAL;
			n = (size_t)(close - (t + k + 2));
			for (v = 0; v < sizeof vars / sizeof vars[0]; v++)
				if (strlen(vars[v].name) == n && !memcmp(vars[v].name, t + k + 2, n))
					break;
			if (v == sizeof vars / sizeof vars[0])
				return snprintf(err, errlen,
						"unknown variable ${%.*s} (known: ${clientid}, ${cn}, ${serial}, ${ou}, ${certid})",
						(int)(n > 40 ? 40 : n), t + k + 2), -EINVAL;
			used |= vars[v].bit;
			k = (size_t)(close - t);
		}
		i = e + 1;
	}
	if (vars_out)
		*vars_out = used;
	return 0;
}

/* See registry/policies.h. */
bool pol_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- documents ------------------------------------------------------------- */

static void doc_free(struct pol_doc *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i < d->n_stmts; i++) {
		for (uint32_t k = 0; k < d->stmts[i].n_topics; k++)
			free(d->stmts[i].topics[k]);
		free(d->stmts[i].topics);
	}
	free(d->stmts);
	free(d->name);
	free(d);
}

void pol_doc_ref_mt(struct pol_doc *d)
{
	atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
}

void pol_doc_unref_mt(struct pol_doc *d)
{
	if (d && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
		doc_free(d);
}

static const char *const action_names[] = { "publish", "subscribe", "receive" };

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int only_members(json_t *o, const char *const *allowed, const char *where, char *err,
			size_t errlen)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;

		for (i = 0; allowed[i] && strcmp(allowed[i], k); i++)
			;
		if (!allowed[i])
			return bad(err, errlen, "%sunknown member \"%s\"", where, k);
	}
	return 0;
}

static int stmt_parse(json_t *o, uint32_t idx, struct pol_stmt *st, uint32_t *vars_used,
		      char *err, size_t errlen)
{
	static const char *const fields[] = { "effect", "actions", "topics", NULL };
	char where[48], msg[400];
	json_t *eff, *acts, *tops, *v;
	size_t i;
	int rc;

	snprintf(where, sizeof where, "statements[%u]: ", idx);
	if (!json_is_object(o))
		return bad(err, errlen, "%sa statement is an object", where);
	rc = only_members(o, fields, where, err, errlen);
	if (rc)
		return rc;
	eff = json_object_get(o, "effect");
	if (!json_is_string(eff) ||
	    (strcmp(json_string_value(eff), "allow") && strcmp(json_string_value(eff), "deny")))
		return bad(err, errlen, "%s\"effect\" must be \"allow\" or \"deny\"", where);
	st->deny = !strcmp(json_string_value(eff), "deny");
	acts = json_object_get(o, "actions");
	if (!json_is_array(acts) || json_array_size(acts) == 0)
		return bad(err, errlen, "%s\"actions\" must be a non-empty array of \"publish\", \"subscribe\", \"receive\"",
			   where);
	json_array_foreach(acts, i, v) {
		size_t a;

		for (a = 0; a < 3; a++)
			if (json_is_string(v) && !strcmp(json_string_value(v), action_names[a]))
				break;
		if (a == 3)
			return bad(err, errlen, "%sactions[%zu] must be \"publish\", \"subscribe\" or \"receive\"",
				   where, i);
		st->actions |= (uint8_t)(1u << a);
	}
	tops = json_object_get(o, "topics");
	if (!json_is_array(tops) || json_array_size(tops) == 0 ||
	    json_array_size(tops) > POL_TOPICS_MAX)
		return bad(err, errlen, "%s\"topics\" must be an array of 1..%d topic filters", where,
			   POL_TOPICS_MAX);
	st->topics = calloc(json_array_size(tops), sizeof *st->topics);
	if (!st->topics)
		return -ENOMEM;
	json_array_foreach(tops, i, v) {
		uint32_t used = 0;

		if (!json_is_string(v))
			return bad(err, errlen, "%stopics[%zu] must be a string", where, i);
		rc = pol_template_check(json_string_value(v), json_string_length(v), &used, msg,
					sizeof msg);
		if (rc)
			return bad(err, errlen, "%stopics[%zu]: %s", where, i, msg);
		st->topics[i] = strdup(json_string_value(v));
		if (!st->topics[i])
			return -ENOMEM;
		st->n_topics++;
		*vars_used |= used;
	}
	return 0;
}

/* See registry/policies.h. */
int pol_doc_parse(json_t *o, const char *name, struct pol_doc **out, char *err, size_t errlen)
{
	static const char *const fields[] = { "name", "statements", "admin", "revision",
					      "createdAt", "updatedAt", "attachments", NULL };
	struct pol_doc *d;
	json_t *jn, *js, *ja, *v;
	size_t i;
	int rc;

	*out = NULL;
	if (!json_is_object(o))
		return bad(err, errlen, "a policy is a JSON object");
	rc = only_members(o, fields, "", err, errlen);
	if (rc)
		return rc;
	jn = json_object_get(o, "name");
	if (jn && !json_is_string(jn))
		return bad(err, errlen, "\"name\" must be a string");
	if (name && jn && strcmp(name, json_string_value(jn)))
		return bad(err, errlen, "\"name\" (%.*s) differs from the policy's name in the path (%s)",
			   POL_NAME_MAX, json_string_value(jn), name);
	if (!name)
		name = jn ? json_string_value(jn) : NULL;
	if (!name)
		return bad(err, errlen, "\"name\" is missing");
	if (!pol_name_valid(name) || (jn && json_string_length(jn) != strlen(name)))
		return bad(err, errlen, "\"name\" must be 1..%d characters of A-Z a-z 0-9 . _ -",
			   POL_NAME_MAX);
	ja = json_object_get(o, "admin");
	if (ja && !json_is_boolean(ja))
		return bad(err, errlen, "\"admin\" must be true or false");
	js = json_object_get(o, "statements");
	if (!json_is_array(js) || json_array_size(js) > POL_STMT_MAX)
		return bad(err, errlen, "\"statements\" must be an array of at most %d statements",
			   POL_STMT_MAX);
	d = calloc(1, sizeof *d);
	if (!d || !(d->name = strdup(name)))
		goto nomem;
	atomic_init(&d->refs, 1);
	d->admin = json_is_true(ja);
	if (json_array_size(js)) {
		d->stmts = calloc(json_array_size(js), sizeof *d->stmts);
		if (!d->stmts)
			goto nomem;
	}
	json_array_foreach(js, i, v) {
		rc = stmt_parse(v, (uint32_t)i, &d->stmts[i], &d->vars, err, errlen);
		d->n_stmts = (uint32_t)i + 1;   /* freed in full on failure */
		if (rc == -ENOMEM)
			goto nomem;
		if (rc) {
			doc_free(d);
			return rc;
		}
	}
	*out = d;
	return 0;
nomem:
	doc_free(d);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

static json_t *time_json(int64_t t)
{
	char s[32];

	return t && tls_time_format(t, s, sizeof s) > 0 ? json_string(s) : json_null();
}

static bool put(json_t *o, const char *k, json_t *v)
{
	return v && json_object_set_new(o, k, v) == 0;
}

/* The document's own members (what the file keeps). */
static json_t *doc_body(const struct pol_doc *d)
{
	json_t *o = json_object(), *sts = json_array();
	bool good = o && sts && put(o, "name", json_string(d->name)) &&
		    put(o, "admin", json_boolean(d->admin));

	for (uint32_t i = 0; good && i < d->n_stmts; i++) {
		const struct pol_stmt *st = &d->stmts[i];
		json_t *so = json_object(), *acts = json_array(), *tops = json_array();

		good = so && acts && tops &&
		       put(so, "effect", json_string(st->deny ? "deny" : "allow"));
		for (int a = 0; good && a < 3; a++)
			if (st->actions & (1u << a))
				good = json_array_append_new(acts, json_string(action_names[a])) == 0;
		for (uint32_t k = 0; good && k < st->n_topics; k++)
			good = json_array_append_new(tops, json_string(st->topics[k])) == 0;
		good = good && put(so, "actions", acts) && put(so, "topics", tops) &&
		       json_array_append_new(sts, so) == 0;
		if (!good) {
			json_decref(so);
			json_decref(acts);
			json_decref(tops);
		}
	}
	if (good && put(o, "statements", sts))
		return o;
	if (!good)
		json_decref(sts);
	json_decref(o);
	return NULL;
}

/* See registry/policies.h. */
json_t *pol_doc_json(const struct pol_doc *d)
{
	json_t *o = doc_body(d);

	if (o && put(o, "revision", json_integer((json_int_t)d->rev)) &&
	    put(o, "createdAt", time_json(d->created)) && put(o, "updatedAt", time_json(d->updated)))
		return o;
	json_decref(o);
	return NULL;
}

/* ---- sets ----------------------------------------------------------------------- */

void pol_set_ref_mt(struct pol_set *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void set_free(struct pol_set *s)
{
	for (uint32_t i = 0; i < s->n_docs; i++)
		pol_doc_unref_mt(s->docs[i]);
	for (uint32_t i = 0; i < s->n_att; i++)
		pol_doc_unref_mt(s->att[i].doc);
	free(s->docs);
	free(s->att);
	free(s);
}

void pol_set_unref_mt(struct pol_set *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		set_free(s);
}

/* See registry/policies.h. */
struct pol_doc *pol_set_find_mt(const struct pol_set *s, const char *name)
{
	uint32_t lo = 0, hi = s ? s->n_docs : 0;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->docs[mid]->name, name);

		if (c == 0)
			return s->docs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int att_cmp(uint8_t ka, const uint8_t *ia, uint8_t kb, const uint8_t *ib)
{
	if (ka != kb)
		return ka < kb ? -1 : 1;
	return memcmp(ia, ib, REG_ID_LEN);
}

/* Index of (kind, id) or of where it would go; *found says which. */
static uint32_t att_pos(const struct pol_set *s, uint8_t kind, const uint8_t *id, bool *found)
{
	uint32_t lo = 0, hi = s ? s->n_att : 0;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = att_cmp(s->att[mid].kind, s->att[mid].id, kind, id);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* See registry/policies.h. */
struct pol_doc *pol_set_attached_mt(const struct pol_set *s, enum pol_target kind,
				    const uint8_t id[REG_ID_LEN])
{
	bool found;
	uint32_t i = att_pos(s, (uint8_t)kind, id, &found);

	return found ? s->att[i].doc : NULL;
}

/* See registry/policies.h. */
struct pol_doc *pol_set_effective_mt(const struct pol_set *s, const uint8_t cert_id[REG_ID_LEN],
				     const uint8_t ca_id[REG_ID_LEN], int *source)
{
	struct pol_doc *d = NULL;

	if (source)
		*source = 0;
	if (!s || s->n_att == 0)
		return NULL;
	if (cert_id && (d = pol_set_attached_mt(s, POL_T_CERT, cert_id))) {
		if (source)
			*source = POL_T_CERT;
		return d;
	}
	if (ca_id && (d = pol_set_attached_mt(s, POL_T_CA, ca_id))) {
		if (source)
			*source = POL_T_CA;
		return d;
	}
	return NULL;
}

/* See registry/policies.h. */
uint32_t pol_set_uses_mt(const struct pol_set *s, const struct pol_doc *d)
{
	uint32_t n = 0;

	for (uint32_t i = 0; s && i < s->n_att; i++)
		n += s->att[i].doc == d;
	return n;
}

static struct pol_set *set_new(uint32_t n_docs, uint32_t n_att)
{
	struct pol_set *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	s->docs = calloc(n_docs ? n_docs : 1, sizeof *s->docs);
	s->att = calloc(n_att ? n_att : 1, sizeof *s->att);
	if (!s->docs || !s->att) {
		free(s->docs);
		free(s->att);
		free(s);
		return NULL;
	}
	return s;
}

/* See registry/policies.h. */
struct pol_set *pol_set_with(const struct pol_set *s, struct pol_doc *put_doc, const char *drop,
			     enum pol_target kind, const uint8_t *id, struct pol_doc *att)
{
	uint32_t nd = s ? s->n_docs : 0, na = s ? s->n_att : 0;
	struct pol_set *n = set_new(nd + 1, na + 1);

	if (!n)
		return NULL;
	/* documents, in name order, with put_doc added or replacing */
	bool placed = !put_doc;

	for (uint32_t i = 0; i < nd; i++) {
		struct pol_doc *d = s->docs[i];
		int c = put_doc ? strcmp(d->name, put_doc->name) : -1;

		if (!placed && c >= 0) {
			pol_doc_ref_mt(put_doc);
			n->docs[n->n_docs++] = put_doc;
			placed = true;
			if (c == 0)
				continue;
		}
		if (drop && !strcmp(d->name, drop))
			continue;
		pol_doc_ref_mt(d);
		n->docs[n->n_docs++] = d;
	}
	if (!placed) {
		pol_doc_ref_mt(put_doc);
		n->docs[n->n_docs++] = put_doc;
	}
	/* attachments: those of a replaced document follow the new version */
	bool att_placed = kind == 0;

	for (uint32_t i = 0; i < na; i++) {
		struct pol_attach a = s->att[i];
		int c = kind ? att_cmp(a.kind, a.id, (uint8_t)kind, id) : -1;

		if (!att_placed && c >= 0) {
			if (att) {
				struct pol_attach b = { .kind = (uint8_t)kind, .doc = att };

				memcpy(b.id, id, REG_ID_LEN);
				n->att[n->n_att++] = b;
				pol_doc_ref_mt(att);
			}
			att_placed = true;
			if (c == 0)
				continue;
		}
		if (put_doc && !strcmp(a.doc->name, put_doc->name))
			a.doc = put_doc;
		pol_doc_ref_mt(a.doc);
		n->att[n->n_att++] = a;
	}
	if (!att_placed && att) {
		struct pol_attach b = { .kind = (uint8_t)kind, .doc = att };

		memcpy(b.id, id, REG_ID_LEN);
		n->att[n->n_att++] = b;
		pol_doc_ref_mt(att);
	}
	return n;
}

/* ---- the file -------------------------------------------------------------------- */

static json_t *set_json(const struct pol_set *s)
{
	json_t *o = json_object(), *docs = json_array(), *atts = json_array();
	bool good = o && docs && atts && put(o, "version", json_integer(POL_FILE_VERSION));

	for (uint32_t i = 0; good && i < s->n_docs; i++) {
		json_t *d = doc_body(s->docs[i]);

		good = d && put(d, "createdAt", json_integer(s->docs[i]->created)) &&
		       put(d, "updatedAt", json_integer(s->docs[i]->updated)) &&
		       json_array_append_new(docs, d) == 0;
	}
	for (uint32_t i = 0; good && i < s->n_att; i++) {
		char hex[2 * REG_ID_LEN + 1];

		tls_hex(s->att[i].id, REG_ID_LEN, hex);
		good = json_array_append_new(atts, json_pack("{s:s, s:s}",
			s->att[i].kind == POL_T_CA ? "caCertificateId" : "certificateId", hex,
			"policy", s->att[i].doc->name)) == 0;
	}
	if (good && put(o, "policies", docs) && put(o, "attachments", atts))
		return o;
	if (!good) {
		json_decref(docs);
		json_decref(atts);
	}
	json_decref(o);
	return NULL;
}

/* See registry/policies.h. */
int pol_set_save(const struct pol_set *s, const char *path)
{
	json_t *o = set_json(s);
	char *text = o ? json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	int rc;

	json_decref(o);
	if (!text)
		return -ENOMEM;
	rc = tls_pki_file_write(path, text, strlen(text), 0600, true);
	free(text);
	return rc;
}

static int load_bad(char *err, size_t errlen, const char *path, const char *what)
{
	snprintf(err, errlen, "%s: %s", path, what);
	return -EBADMSG;
}

static int load_docs(json_t *arr, uint64_t *rev, struct pol_set *s, const char *path, char *err,
		     size_t errlen)
{
	char msg[400], why[520];
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		struct pol_doc *d;
		json_t *c = json_object_get(v, "createdAt"), *u = json_object_get(v, "updatedAt");
		int rc;

		if (!json_is_object(v) || !json_is_integer(c) || !json_is_integer(u))
			return load_bad(err, errlen, path, "a policy without createdAt/updatedAt");
		/* the file's times are numbers; the API shows them as text */
		json_t *copy = json_copy(v);

		if (!copy)
			return -ENOMEM;
		json_object_del(copy, "createdAt");
		json_object_del(copy, "updatedAt");
		rc = pol_doc_parse(copy, NULL, &d, msg, sizeof msg);
		json_decref(copy);
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			snprintf(why, sizeof why, "policies[%zu]: %s", i, msg);
			return load_bad(err, errlen, path, why);
		}
		d->created = json_integer_value(c);
		d->updated = json_integer_value(u);
		d->rev = ++*rev;
		if (s->n_docs && strcmp(s->docs[s->n_docs - 1]->name, d->name) >= 0) {
			snprintf(why, sizeof why, "policies[%zu]: \"%s\" is out of order or twice", i, d->name);
			pol_doc_unref_mt(d);
			return load_bad(err, errlen, path, why);
		}
		s->docs[s->n_docs++] = d;
	}
	return 0;
}

static int load_atts(json_t *arr, struct pol_set *s, const char *path, char *err, size_t errlen)
{
	char why[300];
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		json_t *ce = json_object_get(v, "certificateId"), *ca = json_object_get(v, "caCertificateId");
		json_t *pn = json_object_get(v, "policy");
		struct pol_attach a = { .kind = ce ? POL_T_CERT : POL_T_CA };
		const char *hex = json_string_value(ce ? ce : ca);
		bool found;

		if (!json_is_object(v) || json_object_size(v) != 2 || !hex || strlen(hex) != 2 * REG_ID_LEN ||
		    tls_unhex(hex, a.id, REG_ID_LEN) != REG_ID_LEN || !json_is_string(pn)) {
			snprintf(why, sizeof why, "attachments[%zu] is not {certificateId|caCertificateId, policy}", i);
			return load_bad(err, errlen, path, why);
		}
		a.doc = pol_set_find_mt(s, json_string_value(pn));
		if (!a.doc) {
			snprintf(why, sizeof why, "attachments[%zu] names an unknown policy", i);
			return load_bad(err, errlen, path, why);
		}
		uint32_t at = att_pos(s, a.kind, a.id, &found);

		if (found || at != s->n_att) {
			snprintf(why, sizeof why, "attachments[%zu] is out of order or twice", i);
			return load_bad(err, errlen, path, why);
		}
		pol_doc_ref_mt(a.doc);
		s->att[s->n_att++] = a;
	}
	return 0;
}

/* See registry/policies.h. */
int pol_set_load(const char *path, uint64_t *rev, struct pol_set **out, char *err, size_t errlen)
{
	static const char *const top[] = { "version", "policies", "attachments", NULL };
	char *data = NULL;
	size_t len = 0;
	json_error_t je;
	json_t *o, *docs, *atts;
	struct pol_set *s;
	int rc;

	*out = NULL;
	rc = tls_pki_file_read(path, POL_FILE_MAX, &data, &len);
	if (rc == -ENOENT) {
		*out = set_new(0, 0);
		return *out ? 0 : -ENOMEM;
	}
	if (rc) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	free(data);
	if (!o) {
		char why[300];

		snprintf(why, sizeof why, "not valid JSON (line %d column %d: %s)", je.line, je.column,
			 je.text);
		return load_bad(err, errlen, path, why);
	}
	docs = json_object_get(o, "policies");
	atts = json_object_get(o, "attachments");
	if (!json_is_object(o) || only_members(o, top, "", err, errlen) ||
	    !json_is_integer(json_object_get(o, "version")) || !json_is_array(docs) ||
	    !json_is_array(atts)) {
		json_decref(o);
		return load_bad(err, errlen, path, "not a policies file ({version, policies, attachments})");
	}
	if (json_integer_value(json_object_get(o, "version")) != POL_FILE_VERSION) {
		json_decref(o);
		return load_bad(err, errlen, path, "a policies file of another version");
	}
	s = set_new((uint32_t)json_array_size(docs), (uint32_t)json_array_size(atts));
	if (!s) {
		json_decref(o);
		return -ENOMEM;
	}
	rc = load_docs(docs, rev, s, path, err, errlen);
	if (rc == 0)
		rc = load_atts(atts, s, path, err, errlen);
	json_decref(o);
	if (rc) {
		set_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- the store --------------------------------------------------------------------- */

/* See registry/policies.h. */
int pol_store_open(struct pol_store **out, const char *data_dir, char *err, size_t errlen)
{
	struct pol_store *st = calloc(1, sizeof *st);
	int rc;

	*out = NULL;
	if (!st)
		return -ENOMEM;
	if (data_dir && data_dir[0] && asprintf(&st->path, "%s/%s", data_dir, POL_FILE_NAME) < 0) {
		free(st);
		return -ENOMEM;
	}
	if (st->path) {
		rc = pol_set_load(st->path, &st->next_rev, &st->cur, err, errlen);
		if (rc) {
			free(st->path);
			free(st);
			return rc;
		}
	} else if (!(st->cur = set_new(0, 0))) {
		free(st);
		return -ENOMEM;
	}
	st->initial = st->cur;
	pol_set_ref_mt(st->initial);
	*out = st;
	return 0;
}

void pol_store_close(struct pol_store *st)
{
	if (!st)
		return;
	pol_set_unref_mt(st->cur);
	pol_set_unref_mt(st->initial);
	free(st->path);
	free(st);
}

/* See registry/policies.h. */
int pol_store_commit(struct pol_store *st, struct pol_set *next)
{
	int rc = st->path ? pol_set_save(next, st->path) : 0;

	if (rc) {
		log_error("policies: cannot write %s: %s", st->path, strerror(-rc));
		pol_set_unref_mt(next);
		return rc;
	}
	pol_set_unref_mt(st->cur);
	st->cur = next;
	return 0;
}
