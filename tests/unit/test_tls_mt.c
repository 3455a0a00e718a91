/*
 * tests/unit/test_tls_mt.c - the _mt side of tls/server.h under
 * concurrency (also run under ThreadSanitizer).
 *
 * Worker threads, each with its own fake shard, do full and resumed
 * handshakes (TLS 1.3 tickets, TLS 1.2 session IDs) in a loop, while a
 * registrar-like thread adds trust anchors, replaces the anchor set,
 * rotates ticket keys, flips the fingerprint hook and reads counters, and
 * the main thread reloads the certificate. Every handshake must succeed
 * with the right identity (a resumption may turn into a full handshake
 * when the anchors or keys changed in between: both are fine).
 */
#include "tls_harness.h"

#include <pthread.h>

#define WORKERS 3
#define ROUNDS 12
#define EXTRA_CAS 6

static struct made srv_cert, dev_ca, dev_ec, extra[EXTRA_CAS];
static struct tls_server *srv;
static _Atomic int workers_left = WORKERS;
static _Atomic int handshakes, resumed;

static bool known_all(void *ctx, const uint8_t id[TLS_CERT_ID_LEN])
{
	(void)ctx;
	return memcmp(id, dev_ec.id, TLS_CERT_ID_LEN) == 0;
}

/* One connection: handshake (resuming *sess if set), echo, keep the
 * session for next time. */
static void one(struct shard *sh, WOLFSSL_CTX *cctx, WOLFSSL_SESSION **sess)
{
	struct link *l = calloc(1, sizeof *l);
	MUST(l);
	link_open(l, sh, srv, cctx);
	l->up.echo = true;
	if (*sess)
		MUST(wolfSSL_set_session(l->cl, *sess) == WOLFSSL_SUCCESS);
	int e = handshake(l);
	if (e != 0)
		fprintf(stderr, "handshake: client error %d (TLS %x, %s)\n", e,
			wolfSSL_version(l->cl), *sess ? "resuming" : "full");
	CHECK_INT(e, 0);
	CHECK_INT(roundtrip(l, "CONNECT mt"), 0);
	const struct tls_identity *id = tls_conn_identity(l->c);
	CHECK(id != NULL);
	if (id) {
		CHECK(memcmp(id->cert_id, dev_ec.id, TLS_CERT_ID_LEN) == 0);
		CHECK(id->der_len == dev_ec.len && !memcmp(id->der, dev_ec.der, dev_ec.len));
		CHECK_INT(id->resumed, wolfSSL_session_reused(l->cl));
		atomic_fetch_add(&handshakes, 1);
		if (id->resumed)
			atomic_fetch_add(&resumed, 1);
	}
	wolfSSL_SESSION_free(*sess);
	*sess = wolfSSL_get1_session(l->cl);
	link_close(l);
	free(l);
}

static void *worker(void *arg)
{
	int n = (int)(intptr_t)arg;
	struct shard sh;
	shard_init(&sh);
	sh.id = n;
	WOLFSSL_CTX *c13 = client_ctx(0x0304, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_CTX *c12 = client_ctx(0x0303, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_SESSION *s13 = NULL, *s12 = NULL;
	for (int i = 0; i < ROUNDS; i++) {
		one(&sh, c13, &s13);
		one(&sh, c12, &s12);
	}
	wolfSSL_SESSION_free(s13);
	wolfSSL_SESSION_free(s12);
	wolfSSL_CTX_free(c13);
	wolfSSL_CTX_free(c12);
	CHECK_INT(sh.n_conns, 0);
	shard_fini(&sh);
	tls_thread_exit();
	atomic_fetch_sub(&workers_left, 1);
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	int i = 0;
	while (atomic_load(&workers_left) > 0) {
		struct made *x = &extra[i % EXTRA_CAS];
		CHECK_INT(tls_server_add_ca_mt(srv, x->der, x->len), 0);
		if (i % 10 == 0) {
			const uint8_t *set[] = { dev_ca.der, x->der };
			size_t lens[] = { dev_ca.len, x->len };
			CHECK_INT(tls_server_set_cas_mt(srv, set, lens, 2), 0);
		}
		if (i % 15 == 7)
			tls_server_rotate_ticket_key_mt(srv);
		tls_server_set_known_mt(srv, i % 2 ? known_all : NULL, NULL);
		struct tls_stats st;
		tls_server_stats_mt(srv, &st);
		CHECK_INT(st.fail[TLS_FAIL_UNKNOWN_CA], 0);
		i++;
		usleep(10000);
	}
	tls_thread_exit();
	return NULL;
}

int main(void)
{
	now = (int64_t)time(NULL);
	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	server_files("test_tls_mt", &srv_cert);
	make(&dev_ca, TLS_PKI_ROOT_CA, "Devices CA", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&dev_ec, TLS_PKI_DEVICE, "dev-ec", TLS_KEY_EC, 256, &dev_ca, 0, 0);
	for (int i = 0; i < EXTRA_CAS; i++) {
		char cn[32];
		snprintf(cn, sizeof cn, "Extra CA %d", i);
		make(&extra[i], TLS_PKI_ROOT_CA, cn, TLS_KEY_EC, 256, NULL, 0, 0);
	}
	char err[256] = "";
	MUST(tls_server_new(&srv, cert_path, key_path, true, err, sizeof err) == 0);
	MUST(tls_server_add_ca_mt(srv, dev_ca.der, dev_ca.len) == 0);

	pthread_t w[WORKERS], ch;
	for (int i = 0; i < WORKERS; i++)
		MUST(pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i) == 0);
	MUST(pthread_create(&ch, NULL, churn, NULL) == 0);
	/* SIGHUP-like reloads from this (main) thread meanwhile */
	int reloads = 0;
	while (atomic_load(&workers_left) > 0) {
		err[0] = 0;
		int rc = tls_server_reload(srv, err, sizeof err);
		if (rc != 0)
			fprintf(stderr, "reload: %s\n", err);
		CHECK_INT(rc, 0);
		reloads++;
		usleep(5000);
	}
	for (int i = 0; i < WORKERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(ch, NULL);

	struct tls_stats st;
	tls_server_stats_mt(srv, &st);
	CHECK_INT(atomic_load(&handshakes), WORKERS * ROUNDS * 2);
	CHECK_INT(st.handshakes_full + st.handshakes_resumed, WORKERS * ROUNDS * 2);
	CHECK_INT(st.handshakes_resumed, atomic_load(&resumed));
	fprintf(stderr, "test_tls_mt: %d handshakes (%d resumed), %d reloads, "
		"%llu tickets rejected, %llu signature checks skipped\n",
		atomic_load(&handshakes), atomic_load(&resumed), reloads,
		(unsigned long long)st.tickets_rejected,
		(unsigned long long)st.sig_checks_skipped);
	tls_server_free(srv);
	struct made *all[] = { &srv_ca, &srv_cert, &dev_ca, &dev_ec };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		tls_pki_key_free(all[i]->key);
	for (int i = 0; i < EXTRA_CAS; i++)
		tls_pki_key_free(extra[i].key);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	tls_thread_exit();
	wolfSSL_Cleanup();
	if (failures) {
		fprintf(stderr, "test_tls_mt: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_tls_mt: ok\n");
	return 0;
}
