/*
 * The registrar as it runs in vouchd: its own thread (registrar_start),
 * the admin API over real HTTP on 127.0.0.1 (libcurl), and two "shard"
 * threads that submit signups through registrar_submit_mt and consume what
 * the registrar posts to them, all at once. Run under ThreadSanitizer too
 * (the _mt suffix).
 *
 *   - HTTP: health, tokens (401), registration code, CA registration with
 *     proof of possession from PEM files, manual registration, list, state
 *     rules (409), 404/405/400, bodies over the bound (413, with
 *     Content-Length and chunked), JSON content type on every answer
 *   - signups from two shards while the API is used: every signup gets one
 *     answer; registrations stay within burst + rate * elapsed; every
 *     registration reaches every shard as a notice
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "registry/regfile.h"

#include "registrar_util.h"
#include "curl_buf.h"

#define TOKEN "t0ken-for-tests"
#define NDEV 60
#define RATE 20
#define BURST 5

static int port;

/* One request; returns the status, *out the parsed JSON answer. */
static long http(const char *method, const char *path, const char *token,
		 const char *body, size_t blen, bool chunked, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = { 0 };
	char url[512], auth[128];
	long status = 0;
	char *ctype = NULL;
	json_error_t je;

	CHECK(c);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		if (chunked)
			h = curl_slist_append(h, "Transfer-Encoding: chunked");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		if (!chunked)
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fprintf(stderr, "%s %s: %s\n", method, path, curl_easy_strerror(rc));
	CHECK(rc == CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	CHECK(ctype && !strcmp(ctype, "application/json"));
	*out = json_loadb(b.p ? b.p : "", b.n, 0, &je);
	if (!*out)
		fprintf(stderr, "%s %s: not JSON: %s\n", method, path, b.p ? b.p : "");
	CHECK(*out);
	if (status >= 400) {
		CHECK(json_is_string(json_object_get(*out, "error")));
		CHECK(json_is_string(json_object_get(*out, "message")));
	}
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

struct stream {
	size_t left;
};

static size_t on_read(char *p, size_t sz, size_t n, void *ctx)
{
	struct stream *st = ctx;
	size_t k = sz * n < st->left ? sz * n : st->left;

	memset(p, ' ', k);
	st->left -= k;
	return k;
}

/* POST `total` bytes chunked, as a client that never stops would: the
 * daemon must cut it (no answer) rather than read forever. Returns the
 * HTTP status, 0 when the connection was closed without one. */
static long http_stream(const char *path, size_t total)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct stream st = { total };
	struct buf b = { 0 };
	char url[512], auth[128];
	long status = 0;

	CHECK(c);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", TOKEN);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Transfer-Encoding: chunked");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &st);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static long http_json(const char *method, const char *path, json_t *body, json_t **out)
{
	char *s = json_dumps(body, JSON_COMPACT);
	long st;

	CHECK(s);
	st = http(method, path, TOKEN, s, strlen(s), false, out);
	free(s);
	json_decref(body);
	return st;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	CHECK(json_is_string(v));
	return json_string_value(v);
}

/* ---- shards ---------------------------------------------------------------- */

static struct registrar *G;
static struct broker_rt *RT;
static struct tcert ca, dev[NDEV];
static _Atomic int outcome[NDEV];
static _Atomic int answered, notices[2], events;
static _Atomic bool go, done;
static uint64_t t_first;
static _Atomic uint64_t t_last;

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *shard_main(void *arg)
{
	int sh = (int)(intptr_t)arg, next = sh;
	uint64_t deadline = mono() + 60ull * 1000000000ull, due = mono();
	struct xmsg m;

	while (!atomic_load(&go))
		usleep(1000);
	while (mono() < deadline) {
		/* One signup every 50 ms, shard 0 the even certificates. */
		if (next < NDEV && mono() >= due) {
			struct signup_req *r = tsignup(&dev[next], &ca, (uint32_t)next, 7, sh);

			CHECK_RC(registrar_submit_mt(G, sh, r), 0);
			next += 2;
			due += 50 * 1000000ull;
		}
		while (frt_pop(RT, sh, &m)) {
			if (m.type == RX_SIGNUP_DONE) {
				CHECK(m.a < NDEV && (int)m.a % 2 == sh && m.b == 7);
				CHECK(atomic_exchange(&outcome[m.a], (int)(m.c & 0xff)) == 0);
				if (atomic_fetch_add(&answered, 1) + 1 == NDEV)
					atomic_store(&t_last, mono());
			} else if (m.type == RX_CERT_STATUS) {
				atomic_fetch_add(&notices[sh], 1);
			} else if (m.type == RX_EVENT) {
				CHECK(sh == 0);
				atomic_fetch_add(&events, 1);
			}
			frt_free_payload(&m);
		}
		if (next >= NDEV && atomic_load(&answered) == NDEV &&
		    atomic_load(&done))
			break;
		usleep(500);
	}
	CHECK(mono() < deadline);
	return NULL;
}

int main(void)
{
	char *dir = tu_tmpdir(), err[256], tokfile[4200], code[40], path[256], hex[65];
	struct registry *reg;
	struct tls_pki_key *dk = tkey();
	struct tcert ver, mdev;
	pthread_t th[2];
	json_t *o, *b;
	FILE *f;

	CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0);
	snprintf(tokfile, sizeof tokfile, "%s/tokens", dir);
	f = fopen(tokfile, "w");
	CHECK(f);
	fprintf(f, "tests:" TOKEN "\n");
	fclose(f);
	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);
	RT = frt_new(2, 16);
	struct registrar_cfg cfg = {
		.admin_listen = "127.0.0.1:0", .admin_token_file = tokfile,
		.signup_rate = RATE, .signup_burst = BURST, .data_dir = dir,
	};
	if (registrar_start(&G, reg, RT, NULL, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "registrar_start: %s\n", err);
		return 1;
	}
	port = registrar_admin_port(G);
	CHECK(port > 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, shard_main, (void *)(intptr_t)i) == 0);

	/* Health, tokens. */
	CHECK_RC(http("GET", "/healthz", NULL, NULL, 0, false, &o), 200);
	CHECK(!strcmp(jstr(o, "status"), "ok"));
	json_decref(o);
	CHECK_RC(http("GET", "/api/v1/cas", NULL, NULL, 0, false, &o), 401);
	json_decref(o);
	CHECK_RC(http("GET", "/api/v1/cas", "wrong", NULL, 0, false, &o), 401);
	json_decref(o);

	/* Proof of possession with the code the API gives. */
	CHECK_RC(http("GET", "/api/v1/registration-code", TOKEN, NULL, 0, false, &o), 200);
	snprintf(code, sizeof code, "%s", jstr(o, "registrationCode"));
	json_decref(o);
	tcert_issue(&ca, TLS_PKI_ROOT_CA, "HTTP Test CA", "Vouch", NULL, NULL, NULL);
	tcert_issue(&ver, TLS_PKI_VERIFICATION, code, NULL, NULL, &ca, NULL);
	char *ca_pem = tcert_pem(&ca), *ver_pem = tcert_pem(&ver);
	b = json_pack("{s:s, s:s, s:b}", "caCertificate", ca_pem,
		      "verificationCertificate", ca_pem, "autoRegistration", 1);
	CHECK_RC(http_json("POST", "/api/v1/cas", b, &o), 400);    /* CN is not the code */
	json_decref(o);
	b = json_pack("{s:s, s:s, s:b}", "caCertificate", ca_pem,
		      "verificationCertificate", ver_pem, "autoRegistration", 1);
	CHECK_RC(http_json("POST", "/api/v1/cas", b, &o), 201);
	tls_hex(ca.id, 32, hex);
	CHECK(!strcmp(jstr(o, "certificateId"), hex));
	CHECK(!strcmp(jstr(o, "createdBy"), "admin:tests"));
	json_decref(o);

	/* Signups from both shards start now, while the API is used. */
	for (int i = 0; i < NDEV; i++) {
		char cn[16];

		snprintf(cn, sizeof cn, "dev-%02d", i);
		tcert_issue(&dev[i], TLS_PKI_DEVICE, cn, NULL, NULL, &ca, dk);
	}
	t_first = mono();
	atomic_store(&go, true);

	/* Errors over HTTP. */
	CHECK_RC(http("GET", "/api/v1/nothing", TOKEN, NULL, 0, false, &o), 404);
	json_decref(o);
	CHECK_RC(http("PATCH", "/api/v1/cas", TOKEN, "{}", 2, false, &o), 405);
	json_decref(o);
	CHECK_RC(http("POST", "/api/v1/certificates", TOKEN, "{\"certificate\"", 14, false, &o), 400);
	json_decref(o);
	{
		size_t n = 300 * 1024;
		char *big = malloc(n + 1);

		CHECK(big);
		memset(big, ' ', n);
		big[0] = '{';
		big[n - 1] = '}';
		big[n] = '\0';
		CHECK_RC(http("POST", "/api/v1/certificates", TOKEN, big, n, false, &o), 413);
		json_decref(o);
		CHECK_RC(http("POST", "/api/v1/certificates", TOKEN, big, n, true, &o), 413);
		json_decref(o);
		free(big);
	}
	/* A body without end is cut, not read forever. */
	CHECK_RC(http_stream("/api/v1/certificates", 64u << 20), 0);
	/* The daemon still serves after the refusals. */
	CHECK_RC(http("GET", "/healthz", NULL, NULL, 0, false, &o), 200);
	json_decref(o);

	/* Manual registration and the state rules. */
	tcert_issue(&mdev, TLS_PKI_DEVICE, "manual-1", "IoV", NULL, &ca, NULL);
	char *mp = tcert_pem(&mdev);
	b = json_pack("{s:s, s:s}", "certificate", mp, "clientId", "m-1");
	CHECK_RC(http_json("POST", "/api/v1/certificates", b, &o), 201);
	char mhex[65];
	snprintf(mhex, sizeof mhex, "%s", jstr(o, "certificateId"));
	json_decref(o);
	snprintf(path, sizeof path, "/api/v1/certificates/%s", mhex);
	CHECK_RC(http("DELETE", path, TOKEN, NULL, 0, false, &o), 409);
	json_decref(o);
	snprintf(path, sizeof path, "/api/v1/certificates/%s/revoke", mhex);
	CHECK_RC(http("POST", path, TOKEN, NULL, 0, false, &o), 200);
	CHECK(!strcmp(jstr(o, "status"), "REVOKED"));
	json_decref(o);
	snprintf(path, sizeof path, "/api/v1/certificates/%s/activate", mhex);
	CHECK_RC(http("POST", path, TOKEN, NULL, 0, false, &o), 409);
	json_decref(o);
	snprintf(path, sizeof path, "/api/v1/certificates/%s/history", mhex);
	CHECK_RC(http("GET", path, TOKEN, NULL, 0, false, &o), 200);
	CHECK(json_array_size(json_object_get(o, "events")) == 2);
	json_decref(o);

	/* Wait for every signup to be answered (bounded by the shards). */
	atomic_store(&done, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_RC(atomic_load(&answered), NDEV);

	int registered = 0, over = 0;
	for (int i = 0; i < NDEV; i++) {
		struct reg_device d;
		int oc = atomic_load(&outcome[i]);

		if (oc == SIGNUP_REGISTERED) {
			registered++;
			CHECK_RC(reg_dev_get_mt(reg, dev[i].id, &d), 0);
			CHECK(d.how == REG_AUTO);
		} else {
			CHECK_RC(oc, SIGNUP_OVER_LIMIT);
			CHECK_RC(reg_dev_get_mt(reg, dev[i].id, &d), -ENOENT);
			over++;
		}
	}
	double secs = (double)(atomic_load(&t_last) - t_first) / 1e9;
	printf("signups: %d registered, %d over the limit in %.2f s (bound %.1f)\n",
	       registered, over, secs, BURST + RATE * secs);
	CHECK(registered >= BURST);
	CHECK(registered <= BURST + (int)(RATE * secs) + 1);
	CHECK(over > 0);        /* 60 in ~1.5 s is well over 5 + 20/s */
	/* Every registration (and the manual one with its change) reached
	 * every shard; shard 0 published them. */
	CHECK(atomic_load(&notices[0]) >= registered);
	CHECK(atomic_load(&notices[1]) >= registered);
	CHECK(atomic_load(&events) >= registered);

	/* The listing agrees with the shards' answers. */
	snprintf(path, sizeof path, "/api/v1/certificates?ca=%s&limit=1000", hex);
	CHECK_RC(http("GET", path, TOKEN, NULL, 0, false, &o), 200);
	CHECK_RC(json_integer_value(json_object_get(o, "total")), registered + 1);
	json_decref(o);

	registrar_stop(G);
	frt_free(RT);
	CHECK_RC(reg_close(reg), 0);
	free(ca_pem);
	free(ver_pem);
	free(mp);
	tcert_free(&ca);
	tcert_free(&ver);
	tcert_free(&mdev);
	for (int i = 0; i < NDEV; i++)
		tcert_free(&dev[i]);
	tls_pki_key_free(dk);
	unlink(tokfile);
	tu_rmdir(dir);
	free(dir);
	curl_global_cleanup();
	printf("test_registrar_http_mt: all passed\n");
	return 0;
}
