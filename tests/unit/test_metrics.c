/*
 * GET /metrics (registry/metrics.c through admin_metrics in
 * registry/admin.c), against a real registry file and a runtime of real
 * shards' counters without threads:
 *   format   every line is a HELP, a TYPE or a sample of the family just
 *            declared (checked by a strict parser of the 0.0.4 format);
 *            no family twice; counters end in _total
 *   values   per-shard counters, registry counts by status, signup
 *            outcomes, TLS zeros without a TLS server, jemalloc > 0 (not
 *            in the sanitizer builds, which have no jemalloc)
 *   access   the bearer token of the API when a token file is set; 405
 *            for other methods; no shards: families without samples
 */
#include <stdarg.h>

#include <jansson.h>

#include "registry/admin.h"
#include "registry/metrics.h"
#include "registry/registrar-int.h"

#include "registrar_util.h"

#define TOKEN "metrics-s3cret"

/* What a scrape parsed into: one entry per sample. */
struct scrape {
	char name[64][128];     /* families in order */
	char type[64][16];
	int n_fam;
	char key[512][160];     /* "name{label=\"v\"}" or "name" */
	double val[512];
	int n;
};

static bool is_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (i && s[i] >= '0' && s[i] <= '9')))
			return false;
	return n > 0;
}

/* Copy a string that must fit. */
static void cpy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	CHECK(n < cap);
	memcpy(dst, src, n + 1);
}

/* A strict reader of what metrics_render writes; fails the test on any
 * line that the text format 0.0.4 would not accept. */
static void parse(const char *text, size_t len, struct scrape *s)
{
	const char *p = text, *end = text + len;
	char help_of[128] = "";

	memset(s, 0, sizeof *s);
	CHECK(len > 0 && text[len - 1] == '\n');
	CHECK(strlen(text) == len);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char line[512];
		size_t n;

		CHECK(nl);
		n = (size_t)(nl - p);
		CHECK(n > 0 && n < sizeof line);
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (!strncmp(line, "# HELP ", 7)) {
			char *sp = strchr(line + 7, ' ');

			CHECK(sp && is_name(line + 7, (size_t)(sp - line - 7)) && sp[1]);
			*sp = '\0';
			for (int i = 0; i < s->n_fam; i++)
				CHECK(strcmp(s->name[i], line + 7) != 0);       /* once */
			cpy(help_of, sizeof help_of, line + 7);
		} else if (!strncmp(line, "# TYPE ", 7)) {
			char *sp = strchr(line + 7, ' ');

			CHECK(sp);
			*sp = '\0';
			CHECK(!strcmp(line + 7, help_of));      /* HELP, then TYPE */
			CHECK(!strcmp(sp + 1, "counter") || !strcmp(sp + 1, "gauge"));
			CHECK(s->n_fam < 64);
			cpy(s->name[s->n_fam], sizeof s->name[0], line + 7);
			cpy(s->type[s->n_fam], sizeof s->type[0], sp + 1);
			if (!strcmp(sp + 1, "counter")) {
				size_t l = strlen(line + 7);

				CHECK(l > 6 && !strcmp(line + 7 + l - 6, "_total"));
			}
			s->n_fam++;
			help_of[0] = '\0';
		} else {
			char *sp = strrchr(line, ' '), *e, *brace = strchr(line, '{');
			size_t nl_name;

			CHECK(line[0] != '#' && sp && s->n_fam > 0);
			*sp = '\0';
			nl_name = brace ? (size_t)(brace - line) : strlen(line);
			CHECK(is_name(line, nl_name));
			/* a sample of the family just declared */
			CHECK(nl_name == strlen(s->name[s->n_fam - 1]) &&
			      !strncmp(line, s->name[s->n_fam - 1], nl_name));
			if (brace) {
				/* one label: name="value" with plain characters */
				char *eq = strchr(brace, '=');

				CHECK(eq && is_name(brace + 1, (size_t)(eq - brace - 1)));
				CHECK(eq[1] == '"' && line[strlen(line) - 1] == '}' &&
				      line[strlen(line) - 2] == '"');
				CHECK(!strpbrk(eq + 2, "\\\n") && strchr(eq + 2, '"') == line + strlen(line) - 2);
			}
			CHECK(s->n < 512);
			cpy(s->key[s->n], sizeof s->key[0], line);
			s->val[s->n] = strtod(sp + 1, &e);
			CHECK(*e == '\0' && e != sp + 1);
			s->n++;
		}
	}
	CHECK(help_of[0] == '\0');      /* no HELP without its TYPE */
}

/* The value of a sample, or -1 when absent. */
static double val(const struct scrape *s, const char *fmt, ...)
{
	char key[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof key, fmt, ap);
	va_end(ap);
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->key[i], key))
			return s->val[i];
	return -1;
}

static bool has_family(const struct scrape *s, const char *name, const char *type)
{
	for (int i = 0; i < s->n_fam; i++)
		if (!strcmp(s->name[i], name))
			return !strcmp(s->type[i], type);
	return false;
}

static int scrape(struct registrar *g, const char *method, const char *token,
		  struct scrape *out)
{
	struct admin_req rq = { .method = method, .path = "/metrics" };
	char auth[128], *text = NULL;
	size_t len = 0;
	json_t *j = NULL;
	int st;

	if (token) {
		snprintf(auth, sizeof auth, "Bearer %s", token);
		rq.auth = auth;
	}
	st = admin_metrics(g->admin, &rq, &text, &len, &j);
	if (st == 200) {
		CHECK(text && !j);
		parse(text, len, out);
		free(text);
	} else {
		CHECK(!text && j);
		CHECK(json_is_string(json_object_get(j, "error")));
		CHECK(json_is_string(json_object_get(j, "message")));
		json_decref(j);
	}
	return st;
}

static void set(_Atomic uint64_t *v, uint64_t x)
{
	atomic_store_explicit(v, x, memory_order_relaxed);
}

static void test_metrics(void)
{
	char *dir = tu_tmpdir(), err[256], tokfile[4200];
	struct registry *reg;
	struct broker_rt *rt = frt_new(3, 16);
	struct registrar *g;
	struct registrar_cfg cfg = { .data_dir = dir, .admin_token_file = tokfile };
	struct reg_by by = { .actor = "test" };
	static struct tu_ca ca[2];
	static struct tu_dev dev[9];
	static struct scrape s;
	FILE *f;

	snprintf(tokfile, sizeof tokfile, "%s/tokens", dir);
	f = fopen(tokfile, "w");
	CHECK(f);
	fprintf(f, "prom:" TOKEN "\n");
	fclose(f);
	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);

	/* Two CAs (one INACTIVE) and devices of every status:
	 * 4 ACTIVE, 2 INACTIVE, 1 PENDING_ACTIVATION, 2 REVOKED. */
	for (int i = 0; i < 2; i++) {
		tu_ca_make(&ca[i], (uint64_t)i + 1, true, REG_ACTIVE);
		CHECK_RC(reg_ca_add(reg, &ca[i].in, &by), 0);
	}
	CHECK_RC(reg_ca_set_status(reg, ca[1].in.id, REG_INACTIVE, &by), 0);
	static const enum reg_status want[9] = {
		REG_ACTIVE, REG_ACTIVE, REG_ACTIVE, REG_ACTIVE, REG_INACTIVE, REG_INACTIVE,
		REG_PENDING_ACTIVATION, REG_ACTIVE, REG_ACTIVE,
	};
	for (int i = 0; i < 9; i++) {
		tu_dev_make(&dev[i], ca[0].in.id, (uint64_t)i + 100, REG_MANUAL, want[i]);
		CHECK_RC(reg_dev_add(reg, &dev[i].in, &by), 0);
	}
	for (int i = 7; i < 9; i++)
		CHECK_RC(reg_dev_set_status(reg, dev[i].in.id, REG_REVOKED, &by), 0);

	CHECK_RC(registrar_init(&g, reg, rt, NULL, &cfg, err, sizeof err), 0);

	/* The token of the API, and only GET/HEAD. */
	CHECK_RC(scrape(g, "GET", NULL, &s), 401);
	CHECK_RC(scrape(g, "GET", "metrics-s3cre", &s), 401);
	CHECK_RC(scrape(g, "GET", TOKEN "x", &s), 401);
	CHECK_RC(scrape(g, "POST", TOKEN, &s), 405);
	CHECK_RC(scrape(g, "DELETE", TOKEN, &s), 405);
	CHECK_RC(scrape(g, "HEAD", TOKEN, &s), 200);

	/* Counters as the shards and the registrar keep them. */
	set(&rt->shards[0].stats.conns, 3);
	set(&rt->shards[1].stats.conns, 5);
	set(&rt->shards[2].stats.conns, 0);
	set(&rt->shards[1].stats.accepted, 11);
	set(&rt->shards[2].stats.refused, 2);
	set(&rt->shards[0].stats.msgs_in, 1000);
	set(&rt->shards[2].stats.msgs_out, 4000);
	set(&rt->shards[0].stats.bytes_in, 123456789012ull);
	set(&rt->shards[1].stats.bytes_out, 42);
	set(&rt->shards[2].stats.dropped, 17);
	set(&rt->shards[1].stats.queued, 9);
	set(&rt->shards[0].stats.fp_hits, 70);
	set(&rt->shards[2].stats.fp_misses, 8);
	set(&rt->shards[1].stats.presence_dropped, 5);
	g->stats.registered = 6;
	g->stats.exists = 1;
	g->stats.over_limit = 3;
	g->stats.refused = 2;
	g->stats.errors = 0;

	CHECK_RC(scrape(g, "GET", TOKEN, &s), 200);
	CHECK(has_family(&s, "vouch_connections", "gauge"));
	CHECK(has_family(&s, "vouch_messages_queued", "gauge"));
	CHECK(has_family(&s, "vouch_messages_received_total", "counter"));
	CHECK(has_family(&s, "vouch_tls_handshake_failures_total", "counter"));
	CHECK(has_family(&s, "vouch_registry_certificates", "gauge"));
	CHECK(val(&s, "vouch_connections{shard=\"0\"}") == 3);
	CHECK(val(&s, "vouch_connections{shard=\"1\"}") == 5);
	CHECK(val(&s, "vouch_connections{shard=\"2\"}") == 0);
	CHECK(val(&s, "vouch_connections{shard=\"3\"}") == -1);
	CHECK(val(&s, "vouch_connections_accepted_total{shard=\"1\"}") == 11);
	CHECK(val(&s, "vouch_connections_refused_total{shard=\"2\"}") == 2);
	CHECK(val(&s, "vouch_messages_received_total{shard=\"0\"}") == 1000);
	CHECK(val(&s, "vouch_messages_sent_total{shard=\"2\"}") == 4000);
	CHECK(val(&s, "vouch_received_bytes_total{shard=\"0\"}") == 123456789012.0);
	CHECK(val(&s, "vouch_sent_bytes_total{shard=\"1\"}") == 42);
	CHECK(val(&s, "vouch_messages_dropped_total{shard=\"2\"}") == 17);
	CHECK(val(&s, "vouch_messages_queued{shard=\"1\"}") == 9);
	CHECK(val(&s, "vouch_fingerprint_cache_hits_total{shard=\"0\"}") == 70);
	CHECK(val(&s, "vouch_fingerprint_cache_misses_total{shard=\"2\"}") == 8);
	CHECK(val(&s, "vouch_presence_events_dropped_total{shard=\"1\"}") == 5);
	CHECK(val(&s, "vouch_signups_total{outcome=\"registered\"}") == 6);
	CHECK(val(&s, "vouch_signups_total{outcome=\"exists\"}") == 1);
	CHECK(val(&s, "vouch_signups_total{outcome=\"over_limit\"}") == 3);
	CHECK(val(&s, "vouch_signups_total{outcome=\"refused\"}") == 2);
	CHECK(val(&s, "vouch_signups_total{outcome=\"error\"}") == 0);
	CHECK(val(&s, "vouch_registry_certificates{status=\"ACTIVE\"}") == 4);
	CHECK(val(&s, "vouch_registry_certificates{status=\"INACTIVE\"}") == 2);
	CHECK(val(&s, "vouch_registry_certificates{status=\"PENDING_ACTIVATION\"}") == 1);
	CHECK(val(&s, "vouch_registry_certificates{status=\"REVOKED\"}") == 2);
	CHECK(val(&s, "vouch_registry_cas{status=\"ACTIVE\"}") == 1);
	CHECK(val(&s, "vouch_registry_cas{status=\"INACTIVE\"}") == 1);
	CHECK(val(&s, "vouch_registry_records") >= 14);
	CHECK(val(&s, "vouch_registry_file_bytes") > 0);
	/* No TLS server: the handshake families are there, at zero. */
	CHECK(val(&s, "vouch_tls_handshakes_total{type=\"full\"}") == 0);
	CHECK(val(&s, "vouch_tls_handshakes_total{type=\"resumed\"}") == 0);
	CHECK(val(&s, "vouch_tls_handshake_failures_total{reason=\"unknown_ca\"}") == 0);
	CHECK(val(&s, "vouch_tls_handshake_failures_total{reason=\"key_proof\"}") == 0);
	CHECK(val(&s, "vouch_tls_handshake_failures_total{reason=\"none\"}") == -1);
#ifdef VOUCH_NO_JEMALLOC
	CHECK(!has_family(&s, "vouch_jemalloc_allocated_bytes", "gauge"));
	CHECK(val(&s, "vouch_jemalloc_resident_bytes") == -1);
#else
	CHECK(has_family(&s, "vouch_jemalloc_allocated_bytes", "gauge"));
	CHECK(val(&s, "vouch_jemalloc_allocated_bytes") > 0);
	CHECK(val(&s, "vouch_jemalloc_resident_bytes") >= val(&s, "vouch_jemalloc_allocated_bytes"));
#endif

	/* A status change shows at the next scrape. */
	CHECK_RC(reg_dev_set_status(reg, dev[0].in.id, REG_INACTIVE, &by), 0);
	CHECK_RC(scrape(g, "GET", TOKEN, &s), 200);
	CHECK(val(&s, "vouch_registry_certificates{status=\"ACTIVE\"}") == 3);
	CHECK(val(&s, "vouch_registry_certificates{status=\"INACTIVE\"}") == 3);
	registrar_free(g);

	/* Without shards and without a token file: the same families, the
	 * per-shard ones without samples, and no token needed. */
	cfg.admin_token_file = NULL;
	CHECK_RC(registrar_init(&g, reg, NULL, NULL, &cfg, err, sizeof err), 0);
	CHECK_RC(scrape(g, "GET", NULL, &s), 200);
	CHECK(has_family(&s, "vouch_connections", "gauge"));
	CHECK(has_family(&s, "vouch_fingerprint_cache_misses_total", "counter"));
	CHECK(val(&s, "vouch_connections{shard=\"0\"}") == -1);
	CHECK(val(&s, "vouch_signups_total{outcome=\"registered\"}") == 0);
	CHECK(val(&s, "vouch_registry_certificates{status=\"REVOKED\"}") == 2);
	registrar_free(g);

	CHECK_RC(reg_close(reg), 0);
	frt_free(rt);
	unlink(tokfile);
	tu_rmdir(dir);
	free(dir);
	printf("metrics: ok\n");
}

int main(void)
{
	test_metrics();
	printf("test_metrics: all passed\n");
	return 0;
}
