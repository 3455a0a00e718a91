/*
 * GET /metrics as vouchd serves it: the registrar on its own thread with
 * the admin API over real HTTP on 127.0.0.1 (libcurl), while two "shard"
 * threads bump their counters the way the shards do (relaxed stores by the
 * owner) and submit signups. Run under ThreadSanitizer too (the _mt
 * suffix): the scrape reads every shard's counters from the registrar
 * thread.
 *
 *   - the answer is text/plain; version=0.0.4 (errors stay JSON: 401
 *     without the token, 405 for POST)
 *   - counters never go back between scrapes taken while they move, and
 *     the last scrape has the final values
 *   - the signup outcomes match what the shards were answered
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "registry/regfile.h"

#include "registrar_util.h"
#include "curl_buf.h"

#define TOKEN "scrape-t0ken"
#define NDEV 24
#define BUMPS 20000

static int port;
static struct registrar *G;
static struct broker_rt *RT;
static struct tcert ca, dev[NDEV];
static _Atomic int registered, over, answered;
static _Atomic bool go;

/* One request: the status, the body in *body (malloc'd), the type in ct. */
static long http(const char *method, const char *token, char **body, char *ct, size_t ctcap)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = { 0 };
	char url[128], auth[128];
	long status = 0;
	char *ctype = NULL;

	CHECK(c);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	CHECK(curl_easy_perform(c) == CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	snprintf(ct, ctcap, "%s", ctype ? ctype : "");
	*body = b.p ? b.p : strdup("");
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

/* The value of the sample named exactly `key` (name and labels). */
static double sample(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return strtod(p + kl + 1, NULL);
	return -1;
}

static uint64_t bump(_Atomic uint64_t *v)
{
	uint64_t n = atomic_load_explicit(v, memory_order_relaxed) + 1;

	atomic_store_explicit(v, n, memory_order_relaxed);
	return n;
}

static void *shard_main(void *arg)
{
	int sh = (int)(intptr_t)arg, next = sh;
	struct shard_stats *st = &RT->shards[sh].stats;
	struct xmsg m;

	while (!atomic_load(&go))
		usleep(1000);
	for (int i = 0; i < BUMPS || atomic_load(&answered) < NDEV; i++) {
		CHECK(i < BUMPS + 60000);       /* 60 s for the answers */
		if (i < BUMPS) {
			bump(&st->msgs_in);
			bump(&st->bytes_in);
			bump(&st->fp_hits);
			atomic_store_explicit(&st->conns, (uint64_t)(i % 100), memory_order_relaxed);
			if (i % 100 == 0)
				usleep(1000);   /* spread over the scrapes */
		}
		if (next < NDEV && i % 500 == 0) {
			CHECK_RC(registrar_submit_mt(G, sh, tsignup(&dev[next], &ca, (uint32_t)next, 3, sh)), 0);
			next += 2;
		}
		while (frt_pop(RT, sh, &m)) {
			if (m.type == RX_SIGNUP_DONE) {
				int oc = (int)(m.c & 0xff);

				CHECK(oc == SIGNUP_REGISTERED || oc == SIGNUP_OVER_LIMIT);
				atomic_fetch_add(oc == SIGNUP_REGISTERED ? &registered : &over, 1);
				atomic_fetch_add(&answered, 1);
			}
			frt_free_payload(&m);
		}
		if (i >= BUMPS)
			usleep(1000);
	}
	atomic_store_explicit(&st->conns, 7u + (uint64_t)sh, memory_order_relaxed);
	return NULL;
}

int main(void)
{
	char *dir = tu_tmpdir(), err[256], tokfile[4200], ct[128], *body;
	struct registry *reg;
	struct tls_pki_key *dk = tkey();
	struct reg_by by = { .actor = "test" };
	struct tls_cert_info ci;
	double last[2] = { 0, 0 };
	pthread_t th[2];
	FILE *f;

	CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0);
	snprintf(tokfile, sizeof tokfile, "%s/tokens", dir);
	f = fopen(tokfile, "w");
	CHECK(f);
	fprintf(f, "prometheus:" TOKEN "\n");
	fclose(f);
	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);

	/* A CA with automatic registration, and its devices. */
	tcert_issue(&ca, TLS_PKI_ROOT_CA, "Metrics CA", "Vouch", NULL, NULL, NULL);
	CHECK(tls_cert_parse(ca.der, ca.len, &ci) == 0);
	struct reg_ca_in in = {
		.serial = ci.serial, .serial_len = ci.serial_len, .cn = ci.cn,
		.not_before = ci.not_before, .not_after = ci.not_after,
		.status = REG_ACTIVE, .auto_register = true, .auto_status = REG_ACTIVE,
		.der = ca.der, .der_len = ca.len,
	};
	memcpy(in.id, ci.id, REG_ID_LEN);
	CHECK_RC(reg_ca_add(reg, &in, &by), 0);
	for (int i = 0; i < NDEV; i++) {
		char cn[16];

		snprintf(cn, sizeof cn, "m-%02d", i);
		tcert_issue(&dev[i], TLS_PKI_DEVICE, cn, NULL, NULL, &ca, dk);
	}

	RT = frt_new(2, 64);
	struct registrar_cfg cfg = {
		.admin_listen = "127.0.0.1:0", .admin_token_file = tokfile,
		.signup_rate = 10, .signup_burst = 4, .data_dir = dir,
	};
	if (registrar_start(&G, reg, RT, NULL, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "registrar_start: %s\n", err);
		return 1;
	}
	port = registrar_admin_port(G);
	CHECK(port > 0);

	/* Errors stay JSON. */
	CHECK_RC(http("GET", NULL, &body, ct, sizeof ct), 401);
	CHECK(!strcmp(ct, "application/json") && strstr(body, "\"unauthorized\""));
	free(body);
	CHECK_RC(http("POST", TOKEN, &body, ct, sizeof ct), 405);
	CHECK(!strcmp(ct, "application/json"));
	free(body);

	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, shard_main, (void *)(intptr_t)i) == 0);
	atomic_store(&go, true);

	/* Scrapes while the counters move: never backwards. */
	for (int k = 0; k < 40; k++) {
		CHECK_RC(http("GET", TOKEN, &body, ct, sizeof ct), 200);
		CHECK(!strncmp(ct, "text/plain; version=0.0.4", 25));
		for (int sh = 0; sh < 2; sh++) {
			char key[80];
			double v;

			snprintf(key, sizeof key, "vouch_messages_received_total{shard=\"%d\"}", sh);
			v = sample(body, key);
			CHECK(v >= last[sh] && v <= BUMPS);
			last[sh] = v;
		}
		free(body);
		usleep(2000);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);

	/* After the threads: the final values. */
	CHECK_RC(http("GET", TOKEN, &body, ct, sizeof ct), 200);
	CHECK(sample(body, "vouch_messages_received_total{shard=\"0\"}") == BUMPS);
	CHECK(sample(body, "vouch_received_bytes_total{shard=\"1\"}") == BUMPS);
	CHECK(sample(body, "vouch_fingerprint_cache_hits_total{shard=\"1\"}") == BUMPS);
	CHECK(sample(body, "vouch_connections{shard=\"0\"}") == 7);
	CHECK(sample(body, "vouch_connections{shard=\"1\"}") == 8);
	CHECK_RC(atomic_load(&answered), NDEV);
	CHECK(atomic_load(&over) > 0);  /* 24 in well under 2 s: over 4 + 10/s */
	CHECK(sample(body, "vouch_signups_total{outcome=\"registered\"}") == atomic_load(&registered));
	CHECK(sample(body, "vouch_signups_total{outcome=\"over_limit\"}") == atomic_load(&over));
	CHECK(sample(body, "vouch_registry_certificates{status=\"ACTIVE\"}") == atomic_load(&registered));
	CHECK(sample(body, "vouch_registry_cas{status=\"ACTIVE\"}") == 1);
	free(body);
	printf("metrics over HTTP: %d registered, %d over the limit\n",
	       atomic_load(&registered), atomic_load(&over));

	registrar_stop(G);
	frt_free(RT);
	CHECK_RC(reg_close(reg), 0);
	tcert_free(&ca);
	for (int i = 0; i < NDEV; i++)
		tcert_free(&dev[i]);
	tls_pki_key_free(dk);
	unlink(tokfile);
	tu_rmdir(dir);
	free(dir);
	curl_global_cleanup();
	printf("test_metrics_http_mt: all passed\n");
	return 0;
}
