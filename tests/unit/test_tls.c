/*
 * tests/unit/test_tls.c - the mutual-TLS transport (tls/server.h) against
 * a wolfSSL client, in memory.
 *
 * The server side is the real transport on a fake shard: a struct shard
 * and struct conn filled by hand, with an "upper layer" (shard_ops) that
 * records the plaintext it is offered. The transport's output is read
 * straight from the connection's segment queue (wire bytes only, in
 * order) and handed to a wolfSSL client through memory I/O callbacks; the
 * client's output goes to the transport's on_bytes, whole or byte by byte.
 *
 * Certificates come from tls/pki.h. Checked: TLS 1.2 and 1.3 handshakes
 * and the identity they give; resumption by TLS 1.3 tickets, TLS 1.2
 * tickets and TLS 1.2 session IDs keeps the identity; the alert for each
 * refusal (unknown CA, expired, not yet valid, CA as leaf, no certificate,
 * bad signature, wrong key); chains with an intermediate; reload, ticket
 * key rotation and trust-anchor replacement against resumption; the
 * fingerprint hook; tls_conn_refuse in every suite; a hand-over to another
 * shard in the middle of the handshake's last flight; paused input.
 */
#include "tls_harness.h"

static struct made srv_cert, srv_cert2, dev_ca, dev_ec, dev_rsa, other_ca,
	dev_other, dev_expired, dev_notyet, ca_leaf, inter, dev_inter, dev_badsig,
	dev2_ca, dev2;

static void make_all(void)
{
	make(&srv_ca, TLS_PKI_ROOT_CA, "Server CA", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&srv_cert, TLS_PKI_SERVER, "localhost", TLS_KEY_EC, 256, &srv_ca, 0, 0);
	make(&srv_cert2, TLS_PKI_SERVER, "localhost-2", TLS_KEY_EC, 256, &srv_ca, 0, 0);
	make(&dev_ca, TLS_PKI_ROOT_CA, "Devices CA", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&dev_ec, TLS_PKI_DEVICE, "dev-ec", TLS_KEY_EC, 256, &dev_ca, 0, 0);
	make(&dev_rsa, TLS_PKI_DEVICE, "dev-rsa", TLS_KEY_RSA, 2048, &dev_ca, 0, 0);
	make(&other_ca, TLS_PKI_ROOT_CA, "Other CA", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&dev_other, TLS_PKI_DEVICE, "dev-other", TLS_KEY_EC, 256, &other_ca, 0, 0);
	make(&dev_expired, TLS_PKI_DEVICE, "dev-expired", TLS_KEY_EC, 256, &dev_ca,
	     now - 30 * 86400, now - 86400);
	make(&dev_notyet, TLS_PKI_DEVICE, "dev-notyet", TLS_KEY_EC, 256, &dev_ca,
	     now + 86400, now + 30 * 86400);
	make(&ca_leaf, TLS_PKI_INTERMEDIATE_CA, "CA as leaf", TLS_KEY_EC, 256, &dev_ca, 0, 0);
	make(&inter, TLS_PKI_INTERMEDIATE_CA, "Devices Intermediate", TLS_KEY_EC, 384,
	     &dev_ca, 0, 0);
	make(&dev_inter, TLS_PKI_DEVICE, "dev-inter", TLS_KEY_EC, 256, &inter, 0, 0);
	/* A second registered CA, to see that removing one keeps the other. */
	make(&dev2_ca, TLS_PKI_ROOT_CA, "Devices CA 2", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&dev2, TLS_PKI_DEVICE, "dev2", TLS_KEY_EC, 256, &dev2_ca, 0, 0);
	/* dev_ec with one bit of the CA's signature flipped: same key. */
	dev_badsig = dev_ec;
	{
		uint8_t p8[TLS_PKI_KEY_DER_MAX];
		int n = tls_pki_key_pkcs8(dev_ec.key, p8, sizeof p8);
		MUST(n > 0);
		MUST(tls_pki_key_from_der(p8, (size_t)n, &dev_badsig.key) == 0);
	}
	dev_badsig.der[dev_badsig.len - 3] ^= 0x01;
	MUST(tls_cert_id(dev_badsig.der, dev_badsig.len, dev_badsig.id) == 0);
}

/* ---------------------------------------------------------------- tests */

static struct shard sh0, sh1;
static struct tls_server *srv;

static void check_identity(struct link *l, const struct made *leaf,
			   const struct made *issuer, bool resumed, int version)
{
	const struct tls_identity *id = tls_conn_identity(l->c);
	CHECK(tls_conn_handshake_done(l->c));
	CHECK(id != NULL);
	if (!id)
		return;
	CHECK(memcmp(id->cert_id, leaf->id, TLS_CERT_ID_LEN) == 0);
	CHECK_INT(id->der_len, leaf->len);
	CHECK(id->der && memcmp(id->der, leaf->der, leaf->len) == 0);
	if (issuer) {
		CHECK_INT(id->issuer_der_len, issuer->len);
		CHECK(id->issuer_der && memcmp(id->issuer_der, issuer->der, issuer->len) == 0);
	}
	CHECK_INT(id->resumed, resumed);
	CHECK_INT(id->version, version);
	CHECK(id->cipher && id->cipher[0]);
}

/* A full handshake and an echo; returns the client's session (for
 * resumption; the caller frees it). */
static WOLFSSL_SESSION *connect_ok(WOLFSSL_CTX *cctx, const struct made *leaf,
				   const struct made *issuer, int version,
				   bool use_ticket, WOLFSSL_SESSION *resume,
				   bool expect_resumed)
{
	struct link *l = calloc(1, sizeof *l);
	MUST(l);
	link_open(l, &sh0, srv, cctx);
	l->up.echo = true;
	if (use_ticket)
		MUST(wolfSSL_UseSessionTicket(l->cl) == WOLFSSL_SUCCESS);
	if (resume)
		MUST(wolfSSL_set_session(l->cl, resume) == WOLFSSL_SUCCESS);
	int e = handshake(l);
	if (e != 0)
		fprintf(stderr, "connect_ok: TLS %x, %s, resume %d: client error %d\n",
			version, use_ticket ? "ticket" : "no ticket", resume != NULL, e);
	CHECK_INT(e, 0);
	CHECK_INT(roundtrip(l, "CONNECT hello"), 0);
	CHECK_INT(wolfSSL_session_reused(l->cl), expect_resumed);
	check_identity(l, leaf, issuer, expect_resumed, version);
	CHECK_INT(roundtrip(l, "PUBLISH 2"), 0);
	CHECK_INT(l->up.got_len, strlen("CONNECT hello") + strlen("PUBLISH 2"));
	WOLFSSL_SESSION *s = wolfSSL_get1_session(l->cl);
	link_close(l);
	free(l);
	return s;
}

/* A handshake the server must refuse with `alert`. */
static void connect_refused(WOLFSSL_CTX *cctx, int alert, enum tls_fail why,
			    uint32_t feed_max)
{
	struct tls_stats before, after;
	tls_server_stats_mt(srv, &before);
	struct link *l = calloc(1, sizeof *l);
	MUST(l);
	link_open(l, &sh0, srv, cctx);
	l->up.echo = true;
	l->feed_max = feed_max;
	int e = handshake(l);
	if (e == 0)
		e = roundtrip(l, "CONNECT refused");
	CHECK(e != 0);
	CHECK(l->srv_failed);
	CHECK(l->gone);
	CHECK_INT(last_alert_rx(l->cl), alert);
	CHECK_INT(l->up.got_len, 0);
	tls_server_stats_mt(srv, &after);
	CHECK_INT(after.fail[why], before.fail[why] + 1);
	link_close(l);
	free(l);
}

static void test_full(void)
{
	WOLFSSL_CTX *c13 = client_ctx(0x0304, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_CTX *c12 = client_ctx(0x0303, &dev_rsa, NULL, NULL, NULL);
	WOLFSSL_SESSION *s;
	s = connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, NULL, false);
	wolfSSL_SESSION_free(s);
	s = connect_ok(c12, &dev_rsa, &dev_ca, 0x0303, false, NULL, false);
	wolfSSL_SESSION_free(s);
	/* byte by byte: partial records, partial handshake messages */
	struct link *l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c13);
	l->up.echo = true;
	l->feed_max = 1;
	CHECK_INT(handshake(l), 0);
	CHECK_INT(roundtrip(l, "CONNECT byte by byte"), 0);
	check_identity(l, &dev_ec, &dev_ca, false, 0x0304);
	/* a large message both ways */
	static char big[100000];
	for (size_t i = 0; i < sizeof big - 1; i++)
		big[i] = (char)('a' + i % 26);
	l->feed_max = 0;
	l->up.got_len = 0;
	CHECK_INT(roundtrip(l, big), 0);
	CHECK_INT(l->up.got_len, sizeof big - 1);
	link_close(l);
	free(l);
	wolfSSL_CTX_free(c13);
	wolfSSL_CTX_free(c12);
}

static void test_resume(void)
{
	struct tls_stats st0, st1;
	tls_server_stats_mt(srv, &st0);
	/* TLS 1.3 tickets */
	WOLFSSL_CTX *c13 = client_ctx(0x0304, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_SESSION *s = connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, NULL, false);
	MUST(s);
	WOLFSSL_SESSION *s2 = connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, s, true);
	/* the resumed connection got a fresh ticket, which resumes too */
	wolfSSL_SESSION_free(connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, s2, true));
	wolfSSL_SESSION_free(s);
	wolfSSL_SESSION_free(s2);

	/* TLS 1.2 tickets, RSA device */
	WOLFSSL_CTX *c12 = client_ctx(0x0303, &dev_rsa, NULL, NULL, NULL);
	s = connect_ok(c12, &dev_rsa, &dev_ca, 0x0303, true, NULL, false);
	MUST(s);
	CHECK(wolfSSL_SESSION_has_ticket(s));
	wolfSSL_SESSION_free(connect_ok(c12, &dev_rsa, &dev_ca, 0x0303, true, s, true));
	wolfSSL_SESSION_free(s);

	/* TLS 1.2 session IDs (no ticket): our session cache */
	s = connect_ok(c12, &dev_rsa, &dev_ca, 0x0303, false, NULL, false);
	MUST(s);
	CHECK(!wolfSSL_SESSION_has_ticket(s));
	wolfSSL_SESSION_free(connect_ok(c12, &dev_rsa, &dev_ca, 0x0303, false, s, true));
	wolfSSL_SESSION_free(s);

	/* chain with an intermediate: the identity's issuer is the
	 * intermediate the client presented, also after resumption */
	WOLFSSL_CTX *ci = client_ctx(0x0304, &dev_inter, &inter, NULL, NULL);
	s = connect_ok(ci, &dev_inter, &inter, 0x0304, false, NULL, false);
	wolfSSL_SESSION_free(connect_ok(ci, &dev_inter, &inter, 0x0304, false, s, true));
	wolfSSL_SESSION_free(s);
	WOLFSSL_CTX *ci12 = client_ctx(0x0303, &dev_inter, &inter, NULL, NULL);
	s = connect_ok(ci12, &dev_inter, &inter, 0x0303, true, NULL, false);
	wolfSSL_SESSION_free(connect_ok(ci12, &dev_inter, &inter, 0x0303, true, s, true));
	wolfSSL_SESSION_free(s);

	tls_server_stats_mt(srv, &st1);
	CHECK_INT(st1.handshakes_resumed - st0.handshakes_resumed, 6);
	CHECK_INT(st1.handshakes_full - st0.handshakes_full, 5);
	CHECK(st1.tickets_issued > st0.tickets_issued);
	CHECK(st1.sesscache_entries >= 1);
	CHECK(st1.idcache_entries >= 4);
	wolfSSL_CTX_free(c13);
	wolfSSL_CTX_free(c12);
	wolfSSL_CTX_free(ci);
	wolfSSL_CTX_free(ci12);
}

static void test_refusals(void)
{
	for (int v = 0x0303; v <= 0x0304; v++) {
		WOLFSSL_CTX *c;
		c = client_ctx(v, &dev_other, NULL, NULL, NULL);
		connect_refused(c, TLS_ALERT_UNKNOWN_CA, TLS_FAIL_UNKNOWN_CA, 0);
		wolfSSL_CTX_free(c);
		c = client_ctx(v, &dev_expired, NULL, NULL, NULL);
		connect_refused(c, TLS_ALERT_CERTIFICATE_EXPIRED, TLS_FAIL_EXPIRED, 0);
		wolfSSL_CTX_free(c);
		/* wolfSSL says certificate_expired for "not yet valid" too */
		c = client_ctx(v, &dev_notyet, NULL, NULL, NULL);
		connect_refused(c, TLS_ALERT_CERTIFICATE_EXPIRED, TLS_FAIL_NOT_YET_VALID, 7);
		wolfSSL_CTX_free(c);
		/* TLS 1.2: wolfSSL's own check that a client certificate
		 * may sign (keyUsage) refuses it first */
		c = client_ctx(v, &ca_leaf, NULL, NULL, NULL);
		connect_refused(c, TLS_ALERT_BAD_CERTIFICATE,
				v == 0x0304 ? TLS_FAIL_CA_AS_LEAF : TLS_FAIL_BAD_CERT, 0);
		wolfSSL_CTX_free(c);
		c = client_ctx(v, &dev_badsig, NULL, NULL, NULL);
		connect_refused(c, TLS_ALERT_BAD_CERTIFICATE, TLS_FAIL_BAD_CERT, 0);
		wolfSSL_CTX_free(c);
		c = client_ctx(v, NULL, NULL, NULL, NULL);
		connect_refused(c, v == 0x0304 ? TLS_ALERT_CERTIFICATE_REQUIRED
				: TLS_ALERT_HANDSHAKE_FAILURE, TLS_FAIL_NO_CERT, 0);
		wolfSSL_CTX_free(c);
		/* an intermediate's chain without the intermediate: no path
		 * (unless wolfSSL cached it from an earlier chain: not here,
		 * this server never saw it before this line... see below) */
	}
}

/* The fingerprint hook: a known leaf's CA signature is not checked again
 * (so a leaf with a broken CA signature passes when declared known: the
 * hook must only say "known" for IDs the registry verified), but the
 * CertificateVerify always is. */
static const uint8_t *known_id;
static int known_calls;
static bool known_cb(void *ctx, const uint8_t id[TLS_CERT_ID_LEN])
{
	(void)ctx;
	known_calls++;
	return known_id && memcmp(id, known_id, TLS_CERT_ID_LEN) == 0;
}

static void test_known(void)
{
	struct tls_stats a, b;
	tls_server_set_known_mt(srv, known_cb, NULL);
	known_id = dev_badsig.id;
	tls_server_stats_mt(srv, &a);
	WOLFSSL_CTX *c = client_ctx(0x0304, &dev_badsig, NULL, NULL, NULL);
	wolfSSL_SESSION_free(connect_ok(c, &dev_badsig, &dev_ca, 0x0304, false, NULL, false));
	wolfSSL_CTX_free(c);
	tls_server_stats_mt(srv, &b);
	CHECK_INT(b.sig_checks_skipped, a.sig_checks_skipped + 1);
	CHECK(known_calls >= 1);

	/* known, but the client does not hold the key: CertificateVerify */
	known_id = dev_ec.id;
	c = client_ctx(0x0304, &dev_ec, NULL, dev_other.key, NULL);
	connect_refused(c, TLS_ALERT_DECRYPT_ERROR, TLS_FAIL_KEY_PROOF, 0);
	wolfSSL_CTX_free(c);
	c = client_ctx(0x0303, &dev_ec, NULL, dev_other.key, NULL);
	connect_refused(c, TLS_ALERT_DECRYPT_ERROR, TLS_FAIL_KEY_PROOF, 0);
	wolfSSL_CTX_free(c);

	/* not known: the bad signature is caught again */
	known_id = NULL;
	c = client_ctx(0x0304, &dev_badsig, NULL, NULL, NULL);
	connect_refused(c, TLS_ALERT_BAD_CERTIFICATE, TLS_FAIL_BAD_CERT, 0);
	wolfSSL_CTX_free(c);
	tls_server_set_known_mt(srv, NULL, NULL);
}

/* Reload with a new server certificate: new handshakes see it, a session
 * from before still resumes; rotation keeps one older key. */
static void test_reload(void)
{
	WOLFSSL_CTX *c13 = client_ctx(0x0304, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_CTX *c12 = client_ctx(0x0303, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_SESSION *s13 = connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, NULL, false);
	WOLFSSL_SESSION *s12 = connect_ok(c12, &dev_ec, &dev_ca, 0x0303, true, NULL, false);
	WOLFSSL_SESSION *sid = connect_ok(c12, &dev_ec, &dev_ca, 0x0303, false, NULL, false);

	/* a connection open across the reload keeps working */
	struct link *l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c13);
	l->up.echo = true;
	CHECK_INT(handshake(l), 0);
	CHECK_INT(roundtrip(l, "before reload"), 0);

	write_pem_cert(cert_path, &srv_cert2);
	write_pem_key(key_path, &srv_cert2);
	char err[256] = "";
	CHECK_INT(tls_server_reload(srv, err, sizeof err), 0);
	CHECK_INT(roundtrip(l, "after reload"), 0);
	link_close(l);
	free(l);

	/* the new certificate is served */
	l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c13);
	l->up.echo = true;
	CHECK_INT(handshake(l), 0);
	WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(l->cl);
	int plen = 0;
	const unsigned char *pder = peer ? wolfSSL_X509_get_der(peer, &plen) : NULL;
	CHECK(pder && (size_t)plen == srv_cert2.len && !memcmp(pder, srv_cert2.der, srv_cert2.len));
	wolfSSL_X509_free(peer);
	link_close(l);
	free(l);

	/* and the sessions from before resume, with their identity */
	wolfSSL_SESSION_free(connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, s13, true));
	wolfSSL_SESSION_free(connect_ok(c12, &dev_ec, &dev_ca, 0x0303, true, s12, true));
	wolfSSL_SESSION_free(connect_ok(c12, &dev_ec, &dev_ca, 0x0303, false, sid, true));

	/* a broken file: reload fails, the running server is unchanged */
	MUST(tls_pki_file_write(key_path, "garbage\n", 8, 0600, true) == 0);
	err[0] = 0;
	CHECK(tls_server_reload(srv, err, sizeof err) < 0);
	CHECK(strstr(err, key_path) != NULL);
	wolfSSL_SESSION_free(connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, NULL, false));
	write_pem_key(key_path, &srv_cert2);

	/* one rotation: the old key still decrypts; two: it is gone */
	tls_server_rotate_ticket_key_mt(srv);
	WOLFSSL_SESSION *again = connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, s13, true);
	wolfSSL_SESSION_free(again);
	tls_server_rotate_ticket_key_mt(srv);
	struct tls_stats a, b;
	tls_server_stats_mt(srv, &a);
	wolfSSL_SESSION_free(connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, s13, false));
	tls_server_stats_mt(srv, &b);
	CHECK_INT(b.tickets_rejected - a.tickets_rejected, 1);
	CHECK_INT(b.handshakes_resumed, a.handshakes_resumed);
	/* TLS 1.2: the server refuses the ticket and starts a full
	 * handshake; the wolfSSL 5.5 client cannot follow (it takes any
	 * ServerHello for an accepted ticket), so only the server side is
	 * checked here */
	l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c12);
	MUST(wolfSSL_UseSessionTicket(l->cl) == WOLFSSL_SUCCESS);
	MUST(wolfSSL_set_session(l->cl, s12) == WOLFSSL_SUCCESS);
	CHECK(handshake(l) != 0);
	if (!l->gone)
		CHECK(!tls_conn_handshake_done(l->c) || !tls_conn_identity(l->c)->resumed);
	link_close(l);
	free(l);
	tls_server_stats_mt(srv, &a);
	CHECK_INT(a.tickets_rejected - b.tickets_rejected, 1);
	CHECK_INT(a.handshakes_resumed, b.handshakes_resumed);
	wolfSSL_SESSION_free(s13);
	wolfSSL_SESSION_free(s12);
	wolfSSL_SESSION_free(sid);
	wolfSSL_CTX_free(c13);
	wolfSSL_CTX_free(c12);
}

/* Replacing the trust anchors: the removed CA's devices fail, even with a
 * ticket or a cached session from before; the kept CA's devices resume. */
static void test_set_cas(void)
{
	MUST(tls_server_add_ca_mt(srv, dev2_ca.der, dev2_ca.len) == 0);
	CHECK_INT(tls_server_add_ca_mt(srv, dev2_ca.der, dev2_ca.len), 0); /* again */
	CHECK_INT(tls_server_add_ca_mt(srv, dev_ec.der, dev_ec.len), -EINVAL); /* not a CA */
	CHECK_INT(tls_server_add_ca_mt(srv, (const uint8_t *)"junk", 4), -EINVAL);
	WOLFSSL_CTX *c1 = client_ctx(0x0304, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_CTX *c1s = client_ctx(0x0303, &dev_ec, NULL, NULL, NULL);
	WOLFSSL_CTX *c2 = client_ctx(0x0304, &dev2, NULL, NULL, NULL);
	WOLFSSL_SESSION *s1 = connect_ok(c1, &dev_ec, &dev_ca, 0x0304, false, NULL, false);
	WOLFSSL_SESSION *s1s = connect_ok(c1s, &dev_ec, &dev_ca, 0x0303, false, NULL, false);
	WOLFSSL_SESSION *s2 = connect_ok(c2, &dev2, &dev2_ca, 0x0304, false, NULL, false);

	/* a bad set changes nothing */
	const uint8_t *bad[] = { dev2_ca.der, (const uint8_t *)"junk" };
	size_t badl[] = { dev2_ca.len, 4 };
	CHECK_INT(tls_server_set_cas_mt(srv, bad, badl, 2), -EINVAL);
	wolfSSL_SESSION_free(connect_ok(c1, &dev_ec, &dev_ca, 0x0304, false, NULL, false));

	const uint8_t *set[] = { dev2_ca.der };
	size_t setl[] = { dev2_ca.len };
	CHECK_INT(tls_server_set_cas_mt(srv, set, setl, 1), 0);
	connect_refused(c1, TLS_ALERT_UNKNOWN_CA, TLS_FAIL_UNKNOWN_CA, 0);
	/* the ticket from before is refused, the full handshake fails */
	struct link *l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c1);
	MUST(wolfSSL_set_session(l->cl, s1) == WOLFSSL_SUCCESS);
	int e = handshake(l);
	if (e == 0)
		e = roundtrip(l, "x");
	CHECK(e != 0);
	CHECK_INT(last_alert_rx(l->cl), TLS_ALERT_UNKNOWN_CA);
	CHECK_INT(wolfSSL_session_reused(l->cl), 0);
	link_close(l);
	/* so is the cached session */
	memset(l, 0, sizeof *l);
	link_open(l, &sh0, srv, c1s);
	MUST(wolfSSL_set_session(l->cl, s1s) == WOLFSSL_SUCCESS);
	e = handshake(l);
	if (e == 0)
		e = roundtrip(l, "x");
	CHECK(e != 0);
	CHECK_INT(last_alert_rx(l->cl), TLS_ALERT_UNKNOWN_CA);
	link_close(l);
	free(l);
	/* dev2's session was made under the old set too: a full handshake,
	 * which passes */
	WOLFSSL_SESSION *s2b = connect_ok(c2, &dev2, &dev2_ca, 0x0304, false, s2, false);
	wolfSSL_SESSION_free(connect_ok(c2, &dev2, &dev2_ca, 0x0304, false, s2b, true));
	wolfSSL_SESSION_free(s2b);

	/* back to both */
	const uint8_t *both[] = { dev_ca.der, dev2_ca.der };
	size_t bothl[] = { dev_ca.len, dev2_ca.len };
	CHECK_INT(tls_server_set_cas_mt(srv, both, bothl, 2), 0);
	wolfSSL_SESSION_free(connect_ok(c1, &dev_ec, &dev_ca, 0x0304, false, NULL, false));
	wolfSSL_SESSION_free(s1);
	wolfSSL_SESSION_free(s1s);
	wolfSSL_SESSION_free(s2);
	wolfSSL_CTX_free(c1);
	wolfSSL_CTX_free(c1s);
	wolfSSL_CTX_free(c2);
}

/* tls_conn_refuse after the handshake: the reply queued before it, then
 * a fatal access_denied the client can decrypt, in every suite. */
static void test_refuse(void)
{
	static const struct {
		int v;
		const char *suite;
	} cases[] = {
		{ 0x0304, "TLS13-AES128-GCM-SHA256" },
		{ 0x0304, "TLS13-AES256-GCM-SHA384" },
		{ 0x0304, "TLS13-CHACHA20-POLY1305-SHA256" },
		{ 0x0303, "ECDHE-ECDSA-AES128-GCM-SHA256" },
		{ 0x0303, "ECDHE-ECDSA-AES256-GCM-SHA384" },
		{ 0x0303, "ECDHE-ECDSA-CHACHA20-POLY1305" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		WOLFSSL_CTX *c = client_ctx(cases[i].v, &dev_ec, NULL, NULL, cases[i].suite);
		struct link *l = calloc(1, sizeof *l);
		link_open(l, &sh0, srv, c);
		CHECK_INT(handshake(l), 0);
		CHECK_INT(wolfSSL_write(l->cl, "CONNECT", 7), 7);
		pump(l);
		CHECK_INT(l->up.got_len, 7);
		/* a reply (say, a CONNACK with a reason code), then the alert */
		CHECK_INT(conn_write(l->sh, l->c, "CONNACK-135", 11), 0);
		struct tls_stats a, b;
		tls_server_stats_mt(srv, &a);
		tls_conn_refuse(l->sh, l->c, TLS_ALERT_ACCESS_DENIED);
		tls_server_stats_mt(srv, &b);
		CHECK_INT(b.refused, a.refused + 1);
		CHECK_INT(conn_write(l->sh, l->c, "AFTER", 5), 0); /* dropped */
		pump(l);
		CHECK(l->gone);
		char buf[64];
		int r = wolfSSL_read(l->cl, buf, sizeof buf);
		CHECK_INT(r, 11);
		CHECK(r == 11 && memcmp(buf, "CONNACK-135", 11) == 0);
		r = wolfSSL_read(l->cl, buf, sizeof buf);
		CHECK(r <= 0);
		if (last_alert_rx(l->cl) != TLS_ALERT_ACCESS_DENIED)
			fprintf(stderr, "refuse: %s %s: client saw %d (err %d)\n",
				cases[i].v == 0x0304 ? "1.3" : "1.2", cases[i].suite,
				last_alert_rx(l->cl), wolfSSL_get_error(l->cl, r));
		CHECK_INT(last_alert_rx(l->cl), TLS_ALERT_ACCESS_DENIED);
		link_close(l);
		free(l);
		wolfSSL_CTX_free(c);
	}
}

/*
 * The CONNECT comes with the client's Finished (TLS 1.3) and the layer
 * above hands the connection to another shard: nothing of ours may be
 * queued then (the core drops output of a detaching connection), bytes
 * that arrive meanwhile are kept, and the new shard resumes.
 */
static void test_handover(void)
{
	WOLFSSL_CTX *c13 = client_ctx(0x0304, &dev_ec, NULL, NULL, NULL);
	struct link *l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c13);
	l->up.detach_on_input = true;
	l->up.echo = true;
	for (int i = 0; i < 20; i++) {
		int r = wolfSSL_connect(l->cl);
		if (r == WOLFSSL_SUCCESS)
			break;
		MUST(wolfSSL_get_error(l->cl, r) == WOLFSSL_ERROR_WANT_READ);
		feed(l);
		collect(l);
	}
	/* Finished and the CONNECT in one flight */
	CHECK_INT(wolfSSL_write(l->cl, "CONNECT-1;", 10), 10);
	size_t seen = l->wire_seen;
	feed(l);
	CHECK(l->up.detached);
	CHECK_INT(l->c->state, CONN_DETACHING);
	CHECK_INT(wire_total(l->c), seen); /* no ticket queued */
	CHECK(tls_conn_handshake_done(l->c));
	CHECK_INT(l->c->in_len, 10); /* the CONNECT, not consumed */
	/* more arrives while the connection moves */
	CHECK_INT(wolfSSL_write(l->cl, "PUBLISH-2;", 10), 10);
	feed(l);
	CHECK_INT(l->up.got_len, 0);
	/* the new shard: export, adopt, offer the kept input, resume */
	struct conn_xfer x;
	conn_export(l->sh, l->c, &x);
	struct conn *old = l->c;
	/* the husk goes as the core frees an exported connection: its
	 * queue is dropped, no transport, no layer above */
	struct upper husk = { 0 };
	old->upper = &husk;
	old->state = CONN_OPEN;
	conn_close(&sh0, old, false);
	CHECK_INT(husk.closed, 1);
	struct conn *c = fake_conn(&sh1, &l->up);
	c->tr = x.tr;
	c->tr_ctx = x.tr_ctx;
	c->in = x.in;
	c->in_len = x.in_len;
	c->in_cap = x.in_cap;
	l->c = c;
	l->sh = &sh1;
	l->wire_seen = 0;
	conn_reoffer_input(&sh1, c);
	CHECK_INT(c->tr->on_bytes(&sh1, c, NULL, 0), 0);
	CHECK_INT(l->up.got_len, 20);
	CHECK(memcmp(l->up.got, "CONNECT-1;PUBLISH-2;", 20) == 0);
	check_identity(l, &dev_ec, &dev_ca, false, 0x0304);
	/* the echo brings the ticket first; it resumes */
	collect(l);
	char buf[64];
	int got = 0;
	for (int i = 0; i < 10 && got < 20; i++) {
		int r = wolfSSL_read(l->cl, buf + got, (int)sizeof buf - got);
		if (r > 0)
			got += r;
		else
			pump(l);
	}
	CHECK_INT(got, 20);
	WOLFSSL_SESSION *s = wolfSSL_get1_session(l->cl);
	link_close(l);
	free(l);
	wolfSSL_SESSION_free(connect_ok(c13, &dev_ec, &dev_ca, 0x0304, false, s, true));
	wolfSSL_SESSION_free(s);
	wolfSSL_CTX_free(c13);
}

/* Input paused by the layer above: plaintext waits in c->in. */
static void test_paused(void)
{
	WOLFSSL_CTX *c12 = client_ctx(0x0303, &dev_ec, NULL, NULL, NULL);
	struct link *l = calloc(1, sizeof *l);
	link_open(l, &sh0, srv, c12);
	CHECK_INT(handshake(l), 0);
	l->up.pause_after_first = true;
	CHECK_INT(wolfSSL_write(l->cl, "one;", 4), 4);
	CHECK_INT(wolfSSL_write(l->cl, "two;", 4), 4);
	CHECK_INT(wolfSSL_write(l->cl, "three;", 6), 6);
	pump(l);
	CHECK_INT(l->up.got_len, 4);
	CHECK(l->c->input_paused);
	CHECK_INT(l->c->in_len, 10);
	l->c->input_paused = false; /* conn_resume_input would arm a recv */
	conn_reoffer_input(l->sh, l->c);
	CHECK_INT(l->up.got_len, 14);
	CHECK(memcmp(l->up.got, "one;two;three;", 14) == 0);
	link_close(l);
	free(l);
	wolfSSL_CTX_free(c12);
}

/* Garbage instead of a ClientHello; a plain MQTT client on a TLS port. */
static void test_garbage(void)
{
	static const struct {
		const char *p;
		size_t n;
		bool waits;          /* a plausible start: wait for more */
	} junk[] = {
		{ "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14, false },
		{ "GET / HTTP/1.1\r\n\r\n", 18, false },
		{ "\x16\x03\x01\x00\x40", 5, true },
		{ "\x16\x03\x01\xff\xff", 5, false },      /* record too long */
		{ "\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9, false }, /* empty hello */
		{ "\x15\x03\x01\x00\x02\x02\x28", 7, false },  /* an alert */
	};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		struct upper up = { 0 };
		struct conn *c = fake_conn(&sh0, &up);
		MUST(tls_conn_start(&sh0, c, srv) == 0);
		int rc = c->tr->on_bytes(&sh0, c, (const uint8_t *)junk[i].p, (uint32_t)junk[i].n);
		if (junk[i].waits)
			CHECK_INT(rc, 0);
		else if (rc >= 0)
			fprintf(stderr, "garbage %zu: rc %d\n", i, rc);
		if (!junk[i].waits)
			CHECK(rc < 0);
		CHECK(!tls_conn_handshake_done(c));
		CHECK(tls_conn_identity(c) == NULL);
		CHECK_INT(up.got_len, 0);
		conn_close(&sh0, c, false);
		CHECK_INT(up.closed, 1);
	}
}

static void test_server_new_errors(void)
{
	struct tls_server *s = NULL;
	char err[512] = "";
	char p[160];
	snprintf(p, sizeof p, "%s/none.crt", dir);
	CHECK_INT(tls_server_new(&s, p, key_path, true, err, sizeof err), -ENOENT);
	CHECK(s == NULL && strstr(err, p));
	/* a key that is not the certificate's */
	char k2[160];
	snprintf(k2, sizeof k2, "%s/other.key", dir);
	write_pem_key(k2, &dev_other);
	err[0] = 0;
	CHECK_INT(tls_server_new(&s, cert_path, k2, true, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "does not match") != NULL);
	err[0] = 0;
	CHECK_INT(tls_server_new(&s, key_path, key_path, true, err, sizeof err), -EINVAL);
	CHECK(err[0] != 0);
	unlink(k2);
}

/* Without require_cert a client may come without a certificate and gets
 * no identity; one with a certificate is still verified. */
static void test_optional_cert(void)
{
	struct tls_server *s2 = NULL;
	char err[256];
	MUST(tls_server_new(&s2, cert_path, key_path, false, err, sizeof err) == 0);
	MUST(tls_server_add_ca_mt(s2, dev_ca.der, dev_ca.len) == 0);
	struct tls_server *keep = srv;
	srv = s2;
	for (int v = 0x0303; v <= 0x0304; v++) {
		WOLFSSL_CTX *c = client_ctx(v, NULL, NULL, NULL, NULL);
		struct link *l = calloc(1, sizeof *l);
		link_open(l, &sh0, srv, c);
		l->up.echo = true;
		if (v == 0x0303)
			MUST(wolfSSL_UseSessionTicket(l->cl) == WOLFSSL_SUCCESS);
		CHECK_INT(handshake(l), 0);
		CHECK_INT(roundtrip(l, "anon"), 0);
		CHECK(tls_conn_handshake_done(l->c));
		CHECK(tls_conn_identity(l->c) == NULL);
		WOLFSSL_SESSION *s = wolfSSL_get1_session(l->cl);
		link_close(l);
		/* resumes, still without identity */
		memset(l, 0, sizeof *l);
		link_open(l, &sh0, srv, c);
		l->up.echo = true;
		if (v == 0x0303)
			MUST(wolfSSL_UseSessionTicket(l->cl) == WOLFSSL_SUCCESS);
		MUST(wolfSSL_set_session(l->cl, s) == WOLFSSL_SUCCESS);
		CHECK_INT(handshake(l), 0);
		CHECK_INT(roundtrip(l, "anon again"), 0);
		CHECK_INT(wolfSSL_session_reused(l->cl), 1);
		CHECK(tls_conn_identity(l->c) == NULL);
		link_close(l);
		free(l);
		wolfSSL_SESSION_free(s);
		wolfSSL_CTX_free(c);
		c = client_ctx(v, &dev_other, NULL, NULL, NULL);
		connect_refused(c, TLS_ALERT_UNKNOWN_CA, TLS_FAIL_UNKNOWN_CA, 0);
		wolfSSL_CTX_free(c);
		c = client_ctx(v, &dev_ec, NULL, NULL, NULL);
		wolfSSL_SESSION_free(connect_ok(c, &dev_ec, &dev_ca, v, false, NULL, false));
		wolfSSL_CTX_free(c);
	}
	srv = keep;
	tls_server_free(s2);
}

/* A session does not outlive its certificate: once the leaf expired,
 * resumption is refused and the full handshake fails. */
static void test_resume_expired(void)
{
	struct made shortlived;
	int64_t t = (int64_t)time(NULL);
	make(&shortlived, TLS_PKI_DEVICE, "dev-short", TLS_KEY_EC, 256, &dev_ca, t - 60, t + 2);
	WOLFSSL_CTX *c13 = client_ctx(0x0304, &shortlived, NULL, NULL, NULL);
	WOLFSSL_CTX *c12 = client_ctx(0x0303, &shortlived, NULL, NULL, NULL);
	WOLFSSL_SESSION *s13 = connect_ok(c13, &shortlived, &dev_ca, 0x0304, false, NULL, false);
	WOLFSSL_SESSION *s12 = connect_ok(c12, &shortlived, &dev_ca, 0x0303, false, NULL, false);
	while ((int64_t)time(NULL) <= t + 2)
		usleep(100 * 1000);
	WOLFSSL_SESSION *ss[] = { s13, s12 };
	WOLFSSL_CTX *cc[] = { c13, c12 };
	for (int i = 0; i < 2; i++) {
		struct tls_stats a, b;
		tls_server_stats_mt(srv, &a);
		struct link *l = calloc(1, sizeof *l);
		link_open(l, &sh0, srv, cc[i]);
		MUST(wolfSSL_set_session(l->cl, ss[i]) == WOLFSSL_SUCCESS);
		int e = handshake(l);
		if (e == 0)
			e = roundtrip(l, "x");
		CHECK(e != 0);
		CHECK_INT(wolfSSL_session_reused(l->cl), 0);
		CHECK_INT(last_alert_rx(l->cl), TLS_ALERT_CERTIFICATE_EXPIRED);
		link_close(l);
		free(l);
		tls_server_stats_mt(srv, &b);
		CHECK_INT(b.fail[TLS_FAIL_EXPIRED], a.fail[TLS_FAIL_EXPIRED] + 1);
		CHECK_INT(b.handshakes_resumed, a.handshakes_resumed);
		wolfSSL_SESSION_free(ss[i]);
		wolfSSL_CTX_free(cc[i]);
	}
	tls_pki_key_free(shortlived.key);
}

/* An intermediate CA registered as the trust anchor (its root unknown):
 * a device presenting only its leaf passes, and the identity's issuer is
 * the anchor. */
static void test_intermediate_anchor(void)
{
	struct tls_server *s2 = NULL;
	char err[256];
	MUST(tls_server_new(&s2, cert_path, key_path, true, err, sizeof err) == 0);
	CHECK_INT(tls_server_add_ca_mt(s2, inter.der, inter.len), 0);
	struct tls_server *keep = srv;
	srv = s2;
	WOLFSSL_CTX *c = client_ctx(0x0304, &dev_inter, NULL, NULL, NULL);
	wolfSSL_SESSION_free(connect_ok(c, &dev_inter, &inter, 0x0304, false, NULL, false));
	wolfSSL_CTX_free(c);
	c = client_ctx(0x0303, &dev_ec, NULL, NULL, NULL);
	connect_refused(c, TLS_ALERT_UNKNOWN_CA, TLS_FAIL_UNKNOWN_CA, 0);
	wolfSSL_CTX_free(c);
	/* the same set through set_cas (a fresh CTX) */
	const uint8_t *set[] = { inter.der };
	size_t setl[] = { inter.len };
	CHECK_INT(tls_server_set_cas_mt(srv, set, setl, 1), 0);
	c = client_ctx(0x0303, &dev_inter, NULL, NULL, NULL);
	wolfSSL_SESSION_free(connect_ok(c, &dev_inter, &inter, 0x0303, false, NULL, false));
	wolfSSL_CTX_free(c);
	srv = keep;
	tls_server_free(s2);
}

int main(void)
{
	now = (int64_t)time(NULL);
	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	snprintf(dir, sizeof dir, "/tmp/test_tls.XXXXXX");
	MUST(mkdtemp(dir));
	snprintf(cert_path, sizeof cert_path, "%s/server.crt", dir);
	snprintf(key_path, sizeof key_path, "%s/server.key", dir);
	make_all();
	write_pem_cert(cert_path, &srv_cert);
	write_pem_key(key_path, &srv_cert);
	shard_init(&sh0);
	shard_init(&sh1);
	sh1.id = 1;

	char err[256] = "";
	int rc = tls_server_new(&srv, cert_path, key_path, true, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "tls_server_new: %d %s\n", rc, err);
	MUST(rc == 0);
	MUST(tls_server_add_ca_mt(srv, dev_ca.der, dev_ca.len) == 0);

	test_server_new_errors();
	test_full();
	test_resume();
	test_refusals();
	test_known();
	test_refuse();
	test_handover();
	test_paused();
	test_garbage();
	test_set_cas();
	test_optional_cert();
	test_intermediate_anchor();
	test_resume_expired();
	test_reload();

	struct tls_stats st;
	tls_server_stats_mt(srv, &st);
	fprintf(stderr, "tls: %llu full, %llu resumed handshakes, %llu tickets, "
		"%llu refused, %llu skipped signature checks\n",
		(unsigned long long)st.handshakes_full,
		(unsigned long long)st.handshakes_resumed,
		(unsigned long long)st.tickets_issued, (unsigned long long)st.refused,
		(unsigned long long)st.sig_checks_skipped);
	CHECK_INT(sh0.n_conns, 0);
	CHECK_INT(sh1.n_conns, 0);
	tls_server_free(srv);
	shard_fini(&sh0);
	shard_fini(&sh1);

	struct made *all[] = { &srv_ca, &srv_cert, &srv_cert2, &dev_ca, &dev_ec, &dev_rsa,
			       &other_ca, &dev_other, &dev_expired, &dev_notyet, &ca_leaf,
			       &inter, &dev_inter, &dev_badsig, &dev2_ca, &dev2 };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		tls_pki_key_free(all[i]->key);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	wolfSSL_Cleanup();
	if (failures) {
		fprintf(stderr, "test_tls: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_tls: ok\n");
	return 0;
}
