/*
 * Unit tests of authorization policies: the filter algebra (covers,
 * overlaps) against a naive matcher over every small filter and topic,
 * template and document checks, variable substitution (literal values that
 * cannot widen a filter), the decisions (deny wins, the admin role, $SYS,
 * no policy), the per-session decision cache and its reset, policy sets
 * (precedence certificate > CA, attachments following a replaced
 * document) and the policies.json file (round trip, damage refused).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqtt/policy.h"
#include "registry/policies.h"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } else { failed++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* ---- a naive matcher ---------------------------------------------------- */

static int split(const char *s, char lv[8][8])
{
	int n = 0;
	const char *p = s;

	for (;;) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		memcpy(lv[n], p, l);
		lv[n++][l] = 0;
		if (!e)
			return n;
		p = e + 1;
	}
}

/* MQTT 4.7: filter f matches topic t. */
static bool naive_match(const char *f, const char *t)
{
	char fl[8][8], tl[8][8];
	int fn = split(f, fl), tn = split(t, tl);

	if (tl[0][0] == '$' && (!strcmp(fl[0], "+") || !strcmp(fl[0], "#")))
		return false;
	for (int i = 0; i < fn; i++) {
		if (!strcmp(fl[i], "#"))
			return true;
		if (i >= tn)
			return false;
		if (strcmp(fl[i], "+") && strcmp(fl[i], tl[i]))
			return false;
	}
	return fn == tn;
}

static const char *const alpha_f[] = { "a", "b", "$s", "+", "#" };
static const char *const alpha_t[] = { "a", "b", "$s", "c" };

/* Every valid filter of 1..3 levels over alpha_f. */
static int all_filters(char out[][24])
{
	int n = 0;

	for (int len = 1; len <= 3; len++) {
		int total = 1;

		for (int i = 0; i < len; i++)
			total *= 5;
		for (int x = 0; x < total; x++) {
			char buf[24] = "";
			int v = x;
			bool ok = true;

			for (int i = 0; i < len; i++) {
				const char *l = alpha_f[v % 5];

				v /= 5;
				if (!strcmp(l, "#") && i != len - 1)
					ok = false;
				if (i)
					strcat(buf, "/");
				strcat(buf, l);
			}
			if (ok)
				strcpy(out[n++], buf);
		}
	}
	return n;
}

static int all_topics(char out[][24])
{
	int n = 0;

	for (int len = 1; len <= 4; len++) {
		int total = 1;

		for (int i = 0; i < len; i++)
			total *= 4;
		for (int x = 0; x < total; x++) {
			char buf[24] = "";
			int v = x;

			for (int i = 0; i < len; i++) {
				if (i)
					strcat(buf, "/");
				strcat(buf, alpha_t[v % 4]);
				v /= 4;
			}
			strcpy(out[n++], buf);
		}
	}
	return n;
}

static void test_algebra(void)
{
	static char f[200][24], t[400][24];
	int nf = all_filters(f), nt = all_topics(t);
	int bad_cov = 0, bad_ovl = 0, bad_match = 0;

	for (int i = 0; i < nf; i++) {
		for (int k = 0; k < nt; k++)
			if (pol_covers(f[i], strlen(f[i]), t[k], strlen(t[k])) != naive_match(f[i], t[k]))
				bad_match++;
		for (int j = 0; j < nf; j++) {
			bool cov = true, ovl = false;

			for (int k = 0; k < nt; k++) {
				bool a = naive_match(f[i], t[k]), b = naive_match(f[j], t[k]);

				if (b && !a)
					cov = false;
				if (a && b)
					ovl = true;
			}
			if (pol_covers(f[i], strlen(f[i]), f[j], strlen(f[j])) != cov) {
				if (bad_cov++ < 5)
					fprintf(stderr, "covers(%s, %s) != %d\n", f[i], f[j], cov);
			}
			if (pol_overlaps(f[i], strlen(f[i]), f[j], strlen(f[j])) != ovl) {
				if (bad_ovl++ < 5)
					fprintf(stderr, "overlaps(%s, %s) != %d\n", f[i], f[j], ovl);
			}
		}
	}
	CHECK(nf > 100 && nt > 300);
	CHECK(bad_match == 0);
	CHECK(bad_cov == 0);
	CHECK(bad_ovl == 0);
	/* a few by name */
	CHECK(pol_covers("devices/#", 9, "devices", 7));
	CHECK(!pol_covers("#", 1, "$SYS/broker/uptime", 18));
	CHECK(pol_covers("$SYS/#", 6, "$SYS/+/x", 8));
	CHECK(pol_overlaps("$SYS/#", 6, "$SYS/certificates/#", 19));
	CHECK(!pol_overlaps("+/certificates/#", 16, "$SYS/certificates/#", 19));
	CHECK(pol_covers("a//b", 4, "a//b", 4));
	CHECK(!pol_covers("a/+/b", 5, "a/b", 3));
}

/* ---- templates and documents ------------------------------------------------- */

static int tcheck(const char *t, uint32_t *vars)
{
	char err[256];

	return pol_template_check(t, strlen(t), vars, err, sizeof err);
}

static void test_templates(void)
{
	uint32_t v = 0;

	CHECK(tcheck("devices/${clientid}/#", &v) == 0 && v == POL_V_CLIENTID);
	CHECK(tcheck("a/${cn}-${serial}/${ou}/${certid}", &v) == 0 &&
	      v == (POL_V_CN | POL_V_SERIAL | POL_V_OU | POL_V_CERTID));
	CHECK(tcheck("$SYS/provisioning/create-from-csr", &v) == 0 && v == 0);
	CHECK(tcheck("#", &v) == 0);
	CHECK(tcheck("", &v) == -EINVAL);
	CHECK(tcheck("a/#/b", &v) == -EINVAL);
	CHECK(tcheck("a/b#", &v) == -EINVAL);
	CHECK(tcheck("a/x+/b", &v) == -EINVAL);
	CHECK(tcheck("a/${nope}", &v) == -EINVAL);
	CHECK(tcheck("a/${clientid", &v) == -EINVAL);
	CHECK(tcheck("$share/g/a", &v) == -EINVAL);
	CHECK(pol_template_check("a\0b", 3, &v, (char[64]){ 0 }, 64) == -EINVAL);
}

static struct pol_doc *doc(const char *json, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_loads(json, 0, &je);
	struct pol_doc *d = NULL;

	if (!o)
		return NULL;
	if (pol_doc_parse(o, NULL, &d, err, errlen) != 0)
		d = NULL;
	json_decref(o);
	return d;
}

static bool doc_refused(const char *json, const char *needle)
{
	char err[512] = "";
	struct pol_doc *d = doc(json, err, sizeof err);

	if (d) {
		pol_doc_unref_mt(d);
		return false;
	}
	if (!strstr(err, needle)) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err, needle);
		return false;
	}
	return true;
}

static void test_documents(void)
{
	char err[512];
	struct pol_doc *d = doc("{\"name\":\"dev\",\"statements\":[{\"effect\":\"allow\","
				"\"actions\":[\"publish\",\"receive\"],\"topics\":[\"devices/${clientid}/#\"]}],"
				"\"admin\":false}", err, sizeof err);

	CHECK(d && d->n_stmts == 1 && d->stmts[0].actions == (POL_PUBLISH | POL_RECEIVE) &&
	      !d->stmts[0].deny && !d->admin && d->vars == POL_V_CLIENTID);
	if (d) {
		json_t *j = pol_doc_json(d);

		CHECK(j && !strcmp(json_string_value(json_object_get(j, "name")), "dev"));
		json_decref(j);
		pol_doc_unref_mt(d);
	}
	CHECK(doc_refused("{\"statements\":[]}", "\"name\" is missing"));
	CHECK(doc_refused("{\"name\":\"a b\",\"statements\":[]}", "\"name\" must be"));
	CHECK(doc_refused("{\"name\":\"x\"}", "\"statements\""));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[],\"extra\":1}", "unknown member \"extra\""));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[{\"effect\":\"maybe\",\"actions\":[\"publish\"],"
			  "\"topics\":[\"a\"]}]}", "statements[0]: \"effect\""));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[{\"effect\":\"allow\",\"actions\":[\"connect\"],"
			  "\"topics\":[\"a\"]}]}", "actions[0]"));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"
			  "\"topics\":[]}]}", "\"topics\""));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"
			  "\"topics\":[\"a/#/b\"]}]}", "topics[0]: '#' must be the last level"));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"
			  "\"topics\":[\"a/${user}\"]}]}", "unknown variable ${user}"));
	CHECK(doc_refused("{\"name\":\"x\",\"statements\":[],\"admin\":\"yes\"}", "\"admin\""));
}

/* ---- compiling and deciding ---------------------------------------------- */

static struct pol_doc *must_doc(const char *json)
{
	char err[512] = "";
	struct pol_doc *d = doc(json, err, sizeof err);

	if (!d)
		fprintf(stderr, "doc refused: %s\n", err);
	CHECK(d != NULL);
	return d;
}

static void conn_with(struct pol_conn *pc, const struct pol_doc *d, const struct pol_vars *v)
{
	pol_compiled_free(pc->c);
	pc->c = NULL;
	if (d) {
		CHECK(pol_compile(d, v, &pc->c) == 0);
		pc->admin = d->admin;
		pc->rev = d->rev;
	}
}

#define PUB(pc, t) pol_may_publish(pc, t, strlen(t))
#define RECV(pc, t) pol_may_receive(pc, t, strlen(t))
#define SUB(pc, f) pol_sub_decide(pc, f, strlen(f))

static void test_variables(void)
{
	struct pol_doc *d = must_doc(
		"{\"name\":\"vars\",\"statements\":["
		"{\"effect\":\"allow\",\"actions\":[\"publish\"],\"topics\":[\"c/${clientid}/#\",\"cn/${cn}\","
		"\"s/${serial}\",\"ou/${ou}/+\",\"id/${certid}\",\"mix/${ou}-${cn}\"]}]}");
	struct pol_vars v = { .clientid = "dev1", .cn = "Device One", .serial = "0a1b",
			      .ou = "fleet", .certid = "ab12" };
	struct pol_conn pc = { 0 };

	conn_with(&pc, d, &v);
	CHECK(PUB(&pc, "c/dev1/x/y"));
	CHECK(PUB(&pc, "c/dev1"));
	CHECK(!PUB(&pc, "c/dev2/x"));
	CHECK(PUB(&pc, "cn/Device One"));
	CHECK(PUB(&pc, "s/0a1b"));
	CHECK(PUB(&pc, "ou/fleet/t"));
	CHECK(!PUB(&pc, "ou/fleet"));
	CHECK(PUB(&pc, "id/ab12"));
	CHECK(PUB(&pc, "mix/fleet-Device One"));
	CHECK(!PUB(&pc, "other"));
	/* wildcards and separators in values are literal: never widen */
	struct pol_vars w = { .clientid = "#", .cn = "+", .serial = "", .ou = "a/b", .certid = NULL };

	conn_with(&pc, d, &w);
	CHECK(pc.c && pc.c->n == 0);    /* every template lost its variable */
	CHECK(!PUB(&pc, "c/x/y"));
	CHECK(!PUB(&pc, "c/#"));
	CHECK(!PUB(&pc, "cn/x"));
	CHECK(!PUB(&pc, "ou/a/b"));
	CHECK(!PUB(&pc, "s/"));
	struct pol_vars w2 = { .clientid = "dev+1", .cn = "ok" };

	conn_with(&pc, d, &w2);
	CHECK(pc.c && pc.c->n == 1 && !strcmp(pc.c->st[0].filter, "cn/ok"));
	CHECK(!PUB(&pc, "c/dev1/x"));
	CHECK(PUB(&pc, "cn/ok"));
	pol_conn_clear(&pc);
	pol_doc_unref_mt(d);
}

static void test_decisions(void)
{
	struct pol_doc *d = must_doc(
		"{\"name\":\"dev\",\"statements\":["
		"{\"effect\":\"allow\",\"actions\":[\"publish\",\"subscribe\",\"receive\"],\"topics\":[\"devices/${clientid}/#\"]},"
		"{\"effect\":\"deny\",\"actions\":[\"publish\",\"subscribe\",\"receive\"],\"topics\":[\"devices/${clientid}/secret/#\"]},"
		"{\"effect\":\"allow\",\"actions\":[\"subscribe\"],\"topics\":[\"fleet/#\"]},"
		"{\"effect\":\"allow\",\"actions\":[\"receive\"],\"topics\":[\"fleet/news/#\"]},"
		"{\"effect\":\"allow\",\"actions\":[\"publish\"],\"topics\":[\"$SYS/provisioning/create-from-csr\",\"$SYS/broker/x\"]}]}");
	struct pol_vars v = { .clientid = "d1" };
	struct pol_conn pc = { 0 };

	conn_with(&pc, d, &v);
	/* publish: allow, deny wins, default deny */
	CHECK(PUB(&pc, "devices/d1/t"));
	CHECK(!PUB(&pc, "devices/d1/secret/k"));
	CHECK(!PUB(&pc, "devices/d1/secret"));
	CHECK(!PUB(&pc, "devices/d2/t"));
	CHECK(!PUB(&pc, "fleet/news"));
	/* $SYS: only provisioning, and only granted */
	CHECK(PUB(&pc, "$SYS/provisioning/create-from-csr"));
	CHECK(!PUB(&pc, "$SYS/broker/x"));
	/* subscribe */
	CHECK(SUB(&pc, "devices/d1/#") == POL_SUB_RECV_CHECK);  /* shares topics with secret/# */
	CHECK(SUB(&pc, "devices/d1/+/t") == POL_SUB_RECV_CHECK);
	CHECK(SUB(&pc, "devices/d1/secret") == -1);
	CHECK(SUB(&pc, "devices/d1/a/#") == 0);
	CHECK(SUB(&pc, "devices/d1/secret/x") == -1);
	CHECK(SUB(&pc, "devices/+/a") == -1);   /* not contained in devices/d1/# */
	CHECK(SUB(&pc, "#") == -1);
	CHECK(SUB(&pc, "fleet/news/today") == 0);
	CHECK(SUB(&pc, "fleet/#") == POL_SUB_RECV_CHECK);
	/* receive */
	CHECK(RECV(&pc, "fleet/news/x"));
	CHECK(!RECV(&pc, "fleet/other"));
	CHECK(!RECV(&pc, "devices/d1/secret/k"));
	CHECK(RECV(&pc, "devices/d1/k"));
	/* admin-only topics without the admin role */
	CHECK(!RECV(&pc, "$SYS/certificates/status/x"));
	CHECK(SUB(&pc, "$SYS/presence/#") == -1);
	pol_conn_clear(&pc);

	/* no policy: today's behaviour, but admin-only topics and $SYS publishes */
	struct pol_conn none = { 0 };

	CHECK(PUB(&none, "anything/at/all"));
	CHECK(!PUB(&none, "$SYS/broker/uptime"));
	CHECK(!PUB(&none, "$SYS/provisioning/create-from-csr"));
	CHECK(SUB(&none, "#") == 0);
	CHECK(SUB(&none, "$SYS/broker/#") == 0);
	CHECK(SUB(&none, "$SYS/certificates/#") == -1);
	CHECK(SUB(&none, "$SYS/certificates/status/+") == -1);
	CHECK(SUB(&none, "$SYS/presence/connected/x") == -1);
	CHECK(SUB(&none, "$SYS/#") == POL_SUB_RECV_CHECK);
	CHECK(SUB(&none, "$SYS/+/status/x") == POL_SUB_RECV_CHECK);
	CHECK(!RECV(&none, "$SYS/certificates/status/x"));
	CHECK(RECV(&none, "$SYS/broker/uptime"));
	none.admin = true;
	CHECK(SUB(&none, "$SYS/certificates/#") == 0);
	CHECK(SUB(&none, "$SYS/#") == 0);
	CHECK(RECV(&none, "$SYS/presence/connected/x"));

	/* a policy granting the admin role */
	struct pol_doc *ad = must_doc("{\"name\":\"ops\",\"admin\":true,\"statements\":["
				      "{\"effect\":\"allow\",\"actions\":[\"subscribe\",\"receive\"],\"topics\":[\"$SYS/#\"]}]}");
	struct pol_conn apc = { 0 };

	conn_with(&apc, ad, &v);
	CHECK(apc.admin);
	CHECK(SUB(&apc, "$SYS/certificates/#") == 0);
	CHECK(RECV(&apc, "$SYS/presence/connected/d1"));
	CHECK(!PUB(&apc, "a"));
	CHECK(SUB(&apc, "a/#") == -1);
	pol_conn_clear(&apc);
	pol_doc_unref_mt(ad);
	pol_doc_unref_mt(d);
}

static void test_cache(void)
{
	struct pol_doc *a = must_doc("{\"name\":\"a\",\"statements\":[{\"effect\":\"allow\","
				     "\"actions\":[\"publish\",\"receive\"],\"topics\":[\"t/+/even\"]}]}");
	struct pol_doc *b = must_doc("{\"name\":\"b\",\"statements\":[{\"effect\":\"allow\","
				     "\"actions\":[\"publish\"],\"topics\":[\"t/#\"]},{\"effect\":\"deny\","
				     "\"actions\":[\"publish\"],\"topics\":[\"t/7/even\"]}]}");
	struct pol_vars v = { .clientid = "x" };
	struct pol_conn pc = { 0 };
	char t[64];
	int wrong = 0;

	conn_with(&pc, a, &v);
	/* far more topics than entries: collisions must not mix answers up */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 200; i++) {
			snprintf(t, sizeof t, "t/%d/%s", i, i % 2 ? "odd" : "even");
			wrong += PUB(&pc, t) != !(i % 2);
			wrong += RECV(&pc, t) != !(i % 2);
		}
	}
	CHECK(wrong == 0);
	CHECK(pc.c->cache != NULL);
	/* a long topic is evaluated without the cache */
	char longt[300];

	memset(longt, 'x', sizeof longt);
	memcpy(longt, "t/", 2);
	memcpy(longt + 200, "/even", 6);
	CHECK(PUB(&pc, longt) == true);
	longt[201] = 'o';
	CHECK(PUB(&pc, longt) == false);
	/* a policy change starts from an empty cache */
	CHECK(PUB(&pc, "t/3/odd") == false);
	conn_with(&pc, b, &v);
	CHECK(pc.c->cache == NULL);
	CHECK(PUB(&pc, "t/3/odd") == true);
	CHECK(PUB(&pc, "t/7/even") == false);
	CHECK(RECV(&pc, "t/2/even") == false);
	pol_conn_clear(&pc);
	pol_doc_unref_mt(a);
	pol_doc_unref_mt(b);
}

/* ---- sets and the file ------------------------------------------------------ */

static void test_sets(void)
{
	uint8_t ca[32], c1[32], c2[32];
	char dir[] = "/tmp/vouch-policy-XXXXXX", path[128];
	uint64_t rev = 0;
	struct pol_set *s0, *s1, *s2, *s3, *loaded;
	struct pol_doc *a = must_doc("{\"name\":\"a\",\"statements\":[]}");
	struct pol_doc *b = must_doc("{\"name\":\"b\",\"admin\":true,\"statements\":[]}");
	struct pol_doc *b2 = must_doc("{\"name\":\"b\",\"statements\":[{\"effect\":\"deny\","
				      "\"actions\":[\"receive\"],\"topics\":[\"#\"]}]}");
	char err[512];
	int src;

	memset(ca, 1, 32);
	memset(c1, 2, 32);
	memset(c2, 3, 32);
	a->rev = 1;
	b->rev = 2;
	b2->rev = 3;
	s0 = pol_set_with(NULL, a, NULL, 0, NULL, NULL);
	s1 = pol_set_with(s0, b, NULL, POL_T_CA, ca, a);
	s2 = pol_set_with(s1, NULL, NULL, POL_T_CERT, c1, b);
	CHECK(s0 && s1 && s2 && s2->n_docs == 2 && s2->n_att == 2);
	/* precedence: the certificate's own, else its CA's, else none */
	CHECK(pol_set_effective_mt(s2, c1, ca, &src) == b && src == POL_T_CERT);
	CHECK(pol_set_effective_mt(s2, c2, ca, &src) == a && src == POL_T_CA);
	CHECK(pol_set_effective_mt(s2, c2, c2, &src) == NULL && src == 0);
	CHECK(pol_set_effective_mt(s0, c1, ca, &src) == NULL);
	CHECK(pol_set_effective_mt(NULL, c1, ca, &src) == NULL);
	CHECK(pol_set_uses_mt(s2, a) == 1 && pol_set_uses_mt(s2, b) == 1);
	/* replacing a document: its attachments follow the new version */
	s3 = pol_set_with(s2, b2, NULL, 0, NULL, NULL);
	CHECK(s3 && pol_set_effective_mt(s3, c1, ca, NULL) == b2 && s3->n_docs == 2);
	CHECK(pol_set_effective_mt(s2, c1, ca, NULL) == b);     /* the old set is untouched */
	/* detach */
	struct pol_set *s4 = pol_set_with(s3, NULL, NULL, POL_T_CERT, c1, NULL);

	CHECK(s4 && s4->n_att == 1 && pol_set_effective_mt(s4, c1, ca, NULL) == a);
	/* delete a document */
	struct pol_set *s5 = pol_set_with(s4, NULL, "b", 0, NULL, NULL);

	CHECK(s5 && s5->n_docs == 1 && pol_set_find_mt(s5, "b") == NULL && pol_set_find_mt(s5, "a") == a);

	/* the file: round trip */
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/%s", dir, POL_FILE_NAME);
	CHECK(pol_set_load(path, &rev, &loaded, err, sizeof err) == 0 && loaded->n_docs == 0);
	pol_set_unref_mt(loaded);
	CHECK(pol_set_save(s3, path) == 0);
	CHECK(pol_set_load(path, &rev, &loaded, err, sizeof err) == 0);
	CHECK(loaded->n_docs == 2 && loaded->n_att == 2 && rev == 2);
	struct pol_doc *eff = pol_set_effective_mt(loaded, c1, ca, NULL);

	CHECK(eff && !strcmp(eff->name, "b") && eff->n_stmts == 1 && eff->stmts[0].deny);
	CHECK(pol_set_effective_mt(loaded, c2, ca, NULL) == pol_set_find_mt(loaded, "a"));
	pol_set_unref_mt(loaded);
	/* damage is refused, with the reason */
	static const char *const damaged[] = {
		"{\"version\":1,\"policies\":[",
		"{\"version\":2,\"policies\":[],\"attachments\":[]}",
		"{\"version\":1,\"policies\":[{\"name\":\"x\",\"statements\":[],\"createdAt\":1,\"updatedAt\":1}],"
		"\"attachments\":[{\"certificateId\":\"00\",\"policy\":\"x\"}]}",
		"{\"version\":1,\"policies\":[],\"attachments\":[{\"certificateId\":"
		"\"0000000000000000000000000000000000000000000000000000000000000000\",\"policy\":\"x\"}]}",
		"{\"version\":1,\"policies\":[{\"name\":\"x\",\"statements\":[{\"effect\":\"allow\"}],"
		"\"createdAt\":1,\"updatedAt\":1}],\"attachments\":[]}",
		"[]",
	};
	for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
		FILE *f = fopen(path, "w");

		fputs(damaged[i], f);
		fclose(f);
		err[0] = 0;
		loaded = NULL;
		CHECK(pol_set_load(path, &rev, &loaded, err, sizeof err) == -EBADMSG && !loaded);
		CHECK(strstr(err, path) != NULL);
	}
	/* the store refuses to open on a damaged file */
	struct pol_store *st = NULL;

	CHECK(pol_store_open(&st, dir, err, sizeof err) == -EBADMSG && !st);
	unlink(path);
	CHECK(pol_store_open(&st, dir, err, sizeof err) == 0 && st && st->cur->n_docs == 0);
	pol_set_ref_mt(s3);
	CHECK(pol_store_commit(st, s3) == 0 && st->cur == s3);
	CHECK(access(path, F_OK) == 0);
	pol_store_close(st);
	unlink(path);
	rmdir(dir);

	pol_set_unref_mt(s0);
	pol_set_unref_mt(s1);
	pol_set_unref_mt(s2);
	pol_set_unref_mt(s3);
	pol_set_unref_mt(s4);
	pol_set_unref_mt(s5);
	pol_doc_unref_mt(a);
	pol_doc_unref_mt(b);
	pol_doc_unref_mt(b2);
}

int main(void)
{
	test_algebra();
	test_templates();
	test_documents();
	test_variables();
	test_decisions();
	test_cache();
	test_sets();
	printf("test_policy: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
