/*
 * tests/unit/test_tls_sigs.c - the signatures of a client's certificates
 * are decided in tls/server.c's verify callback, where it is known which
 * certificate wolfSSL checked (ecc_verify_cb leaves them pending until
 * then; the chain is not kept by wolfSSL without SESSION_CERTS).
 *
 * Root registered alone; devices present leaf + intermediate:
 * - a forged intermediate (its root's signature broken) is refused with
 *   bad_certificate, and is not taken as a CA afterwards (the same leaf
 *   alone then still has no path: unknown_ca);
 * The same results as when wolfSSL checked every signature itself
 * (checked against the code before the change).
 * - with the fingerprint hook, a known leaf's CA signature is skipped
 *   (once per handshake), the intermediate's never is;
 * - a leaf with a broken signature passes only when known.
 * Both TLS 1.2 and 1.3, whichever wolfSSL the build links.
 */
#include "tls_harness.h"

static struct made root, inter, inter_bad, dev, dev_badsig;
static struct shard sh;
static struct tls_server *srv;
static const uint8_t *known_id;

static bool known_cb(void *ctx, const uint8_t id[TLS_CERT_ID_LEN])
{
	(void)ctx;
	return known_id && memcmp(id, known_id, TLS_CERT_ID_LEN) == 0;
}

/* Handshake and one record each way: 0, or < 0 with *alert the fatal
 * alert the client received (or -1). */
static int connect_dev(int version, const struct made *leaf, const struct made *extra,
		       int *alert)
{
	WOLFSSL_CTX *c = client_ctx(version, leaf, extra, NULL, NULL);
	struct link *l = calloc(1, sizeof *l);
	MUST(l);
	link_open(l, &sh, srv, c);
	l->up.echo = true;
	int e = handshake(l);
	if (e == 0)
		e = roundtrip(l, "CONNECT");
	*alert = e == 0 ? -1 : last_alert_rx(l->cl);
	if (e == 0) {
		const struct tls_identity *id = tls_conn_identity(l->c);
		CHECK(id && memcmp(id->cert_id, leaf->id, TLS_CERT_ID_LEN) == 0);
		CHECK(id && extra && id->issuer_der_len == extra->len &&
		      memcmp(id->issuer_der, extra->der, extra->len) == 0);
	}
	link_close(l);
	free(l);
	wolfSSL_CTX_free(c);
	return e;
}

static void broken(struct made *out, const struct made *in)
{
	*out = *in;
	out->der[out->len - 3] ^= 0x01; /* in the signature value */
	MUST(tls_cert_id(out->der, out->len, out->id) == 0);
}

static struct tls_stats stats(void)
{
	struct tls_stats s;
	tls_server_stats_mt(srv, &s);
	return s;
}

static void sigs_round(int v)
{
	int alert;
	struct tls_stats a = stats();
	/* first: nothing about the intermediate cached yet */
	CHECK(connect_dev(v, &dev, &inter_bad, &alert) != 0);
	CHECK_INT(alert, TLS_ALERT_BAD_CERTIFICATE);
	CHECK(connect_dev(v, &dev, NULL, &alert) != 0);
	CHECK_INT(alert, TLS_ALERT_UNKNOWN_CA);
	/* the first is counted as unknown_ca too: wolfSSL goes on after the
	 * intermediate's alert, and the leaf then has no path (as it did
	 * when wolfSSL checked the signatures itself) */
	struct tls_stats b = stats();
	CHECK_INT(b.fail[TLS_FAIL_UNKNOWN_CA], a.fail[TLS_FAIL_UNKNOWN_CA] + 2);

	CHECK_INT(connect_dev(v, &dev, &inter, &alert), 0);
	CHECK(connect_dev(v, &dev_badsig, &inter, &alert) != 0);
	CHECK_INT(alert, TLS_ALERT_BAD_CERTIFICATE);

	tls_server_set_known_mt(srv, known_cb, NULL);
	known_id = dev.id;
	a = stats();
	CHECK_INT(connect_dev(v, &dev, &inter, &alert), 0);
	b = stats();
	CHECK_INT(b.sig_checks_skipped, a.sig_checks_skipped + 1);
	/* known leaf, forged intermediate: still refused */
	CHECK(connect_dev(v, &dev, &inter_bad, &alert) != 0);
	CHECK_INT(alert, TLS_ALERT_BAD_CERTIFICATE);
	known_id = dev_badsig.id;
	CHECK_INT(connect_dev(v, &dev_badsig, &inter, &alert), 0);
	known_id = NULL;
	CHECK(connect_dev(v, &dev_badsig, &inter, &alert) != 0);
	CHECK_INT(alert, TLS_ALERT_BAD_CERTIFICATE);
	tls_server_set_known_mt(srv, NULL, NULL);
}

static void server_new(void)
{
	char err[256] = "";
	MUST(tls_server_new(&srv, cert_path, key_path, true, err, sizeof err) == 0);
	MUST(tls_server_add_ca_mt(srv, root.der, root.len) == 0);
}

int main(void)
{
	now = (int64_t)time(NULL);
	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	struct made srv_cert;
	server_files("test_tls_sigs", &srv_cert);
	make(&root, TLS_PKI_ROOT_CA, "Devices Root", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&inter, TLS_PKI_INTERMEDIATE_CA, "Devices Issuing", TLS_KEY_EC, 256, &root, 0, 0);
	make(&dev, TLS_PKI_DEVICE, "dev", TLS_KEY_EC, 256, &inter, 0, 0);
	broken(&inter_bad, &inter);
	broken(&dev_badsig, &dev);
	shard_init(&sh);

	/* a server each: wolfSSL keeps a verified intermediate as a CA */
	for (int v = 0x0303; v <= 0x0304; v++) {
		server_new();
		sigs_round(v);
		tls_server_free(srv);
	}

	shard_fini(&sh);
	const struct made *all[] = { &srv_ca, &srv_cert, &root, &inter, &dev };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		tls_pki_key_free(all[i]->key);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	tls_thread_exit();
	if (failures) {
		fprintf(stderr, "test_tls_sigs: %d failures\n", failures);
		return 1;
	}
	printf("test_tls_sigs: ok\n");
	return 0;
}
