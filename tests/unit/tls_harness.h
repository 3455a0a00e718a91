/*
 * tests/unit/tls_harness.h - what the TLS transport tests share: a fake
 * shard and connection with a recording "layer above", a wolfSSL client
 * wired to the transport through memory, certificate helpers. Included by
 * test_tls.c and test_tls_mt.c (static functions: each test program has
 * its own copy).
 *
 * The fake shard is a struct shard filled by hand (no ring, no thread):
 * the core's output queue, input buffer and close path work on it as they
 * do in the broker; the "kernel" is collect() (reads the wire segments of
 * the queue) and feed() (calls the transport's on_bytes with a buffer that
 * dies afterwards, as a ring buffer does).
 */
#ifndef VOUCH_TESTS_TLS_HARNESS_H
#define VOUCH_TESTS_TLS_HARNESS_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include "core/shard.h"
#include "tls/cert.h"
#include "tls/pki.h"
#include "tls/server.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Atomic int failures;

#include "check.h"

#define MUST(c)                                                               \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: MUST(%s) failed\n", __FILE__,  \
				__LINE__, #c);                                \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* ------------------------------------------------------- certificates */

struct made {
	uint8_t der[TLS_PKI_DER_MAX];
	size_t len;
	struct tls_pki_key *key;
	uint8_t id[TLS_CERT_ID_LEN];
};

static int64_t now;
static char dir[64];
static char cert_path[128], key_path[128];

static void make(struct made *m, enum tls_pki_kind kind, const char *cn,
		 enum tls_key_type kt, int bits, const struct made *issuer,
		 int64_t nb, int64_t na)
{
	struct tls_pki_spec s;
	tls_pki_spec_init(&s, kind, now, 365);
	s.subject = (struct tls_pki_name){ .o = "vouch-test", .cn = cn };
	if (nb || na) {
		s.not_before = nb;
		s.not_after = na;
	}
	if (kind == TLS_PKI_SERVER) {
		s.dns[0] = "localhost";
		s.n_dns = 1;
	}
	MUST(tls_pki_key_generate(kt, bits, &m->key) == 0);
	struct tls_pki_issuer is;
	if (issuer)
		is = (struct tls_pki_issuer){ issuer->der, issuer->len, issuer->key };
	int n = tls_pki_issue(&s, m->key, issuer ? &is : NULL, m->der, sizeof m->der);
	MUST(n > 0);
	m->len = (size_t)n;
	MUST(tls_cert_id(m->der, m->len, m->id) == 0);
}

static void write_pem_cert(const char *path, const struct made *m)
{
	char pem[16384];
	int n = tls_pem_encode("CERTIFICATE", m->der, m->len, pem, sizeof pem);
	MUST(n > 0);
	MUST(tls_pki_file_write(path, pem, (size_t)n, 0644, true) == 0);
}

static void write_pem_key(const char *path, const struct made *m)
{
	char pem[TLS_PKI_KEY_DER_MAX * 2];
	int n = tls_pki_key_pem(m->key, pem, sizeof pem);
	MUST(n > 0);
	MUST(tls_pki_file_write(path, pem, (size_t)n, 0600, true) == 0);
}

static struct made srv_ca; /* the CA clients trust for the server */

/* A fresh directory /tmp/<name>.XXXXXX (dir) with the server's
 * certificate for "localhost", issued by srv_ca (made here), and its key
 * in cert_path and key_path. */
static void server_files(const char *name, struct made *srv_cert)
{
	snprintf(dir, sizeof dir, "/tmp/%s.XXXXXX", name);
	MUST(mkdtemp(dir));
	snprintf(cert_path, sizeof cert_path, "%s/server.crt", dir);
	snprintf(key_path, sizeof key_path, "%s/server.key", dir);
	make(&srv_ca, TLS_PKI_ROOT_CA, "Server CA", TLS_KEY_EC, 256, NULL, 0, 0);
	make(srv_cert, TLS_PKI_SERVER, "localhost", TLS_KEY_EC, 256, &srv_ca, 0, 0);
	write_pem_cert(cert_path, srv_cert);
	write_pem_key(key_path, srv_cert);
}

/* ---------------------------------------------------------- fake shard */

struct upper {
	uint8_t got[1 << 18];
	size_t got_len;
	bool echo;                 /* write back what arrives */
	bool detach_on_input;      /* the first input moves the connection */
	bool detached;
	bool pause_after_first;
	int closed;
};

static struct broker_rt rt;

static uint32_t up_on_input(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n)
{
	struct upper *u = c->upper;
	/* the transport's promise: nothing before the handshake is done */
	MUST(!tls_conn_is_tls(c) || tls_conn_handshake_done(c));
	if (u->detach_on_input && !u->detached) {
		/* like a CONNECT for a client whose home is another shard:
		 * not consumed, the connection is handed over */
		u->detached = true;
		c->state = CONN_DETACHING;
		return 0;
	}
	MUST(u->got_len + n <= sizeof u->got);
	memcpy(u->got + u->got_len, p, n);
	u->got_len += n;
	if (u->echo)
		MUST(conn_write(sh, c, p, n) == 0);
	if (u->pause_after_first) {
		u->pause_after_first = false;
		conn_pause_input(sh, c);
	}
	return n;
}

static void up_on_closed(struct shard *sh, struct conn *c)
{
	(void)sh;
	struct upper *u = c->upper;
	u->closed++;
}

static void up_release_ref(void *ref)
{
	(void)ref;
}

static const struct shard_ops ops = {
	.on_input = up_on_input,
	.on_closed = up_on_closed,
	.release_ref = up_release_ref,
};

static void shard_init(struct shard *sh)
{
	memset(sh, 0, sizeof *sh);
	sh->rt = &rt;
	sh->ops = &ops;
	sh->cap_slots = 64;
	sh->conns = calloc(sh->cap_slots, sizeof *sh->conns);
	sh->free_slots = calloc(sh->cap_slots, sizeof *sh->free_slots);
	MUST(sh->conns && sh->free_slots);
}

static void shard_fini(struct shard *sh)
{
	free(sh->conns);
	free(sh->free_slots);
	timer_free(&sh->timers);
}

static struct conn *fake_conn(struct shard *sh, struct upper *u)
{
	struct conn *c = calloc(1, sizeof *c);
	MUST(c);
	uint32_t slot = sh->n_free ? sh->free_slots[--sh->n_free] : sh->n_slots++;
	MUST(slot < sh->cap_slots);
	c->slot = slot;
	c->gen = slot + 1;
	c->fd = -1;
	sh->conns[slot] = c;
	sh->n_conns++;
	atomic_fetch_add(&rt.conn_count, 1);
	c->upper = u;
	/* 127.0.0.1:<slot> in the logs */
	c->peer.in4.sin_family = AF_INET;
	c->peer.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->peer.in4.sin_port = htons((uint16_t)slot);
	return c;
}

/* ---------------------------------------------------------------- link */

/* A wolfSSL client talking to the transport of one fake connection. */
struct link {
	struct shard *sh;
	struct conn *c;
	struct upper up;
	WOLFSSL *cl;
	uint8_t c2s[1 << 18];
	size_t c2s_len;
	uint8_t s2c[1 << 18];
	size_t s2c_len, s2c_off;
	size_t wire_seen;          /* server wire bytes already moved */
	uint32_t feed_max;         /* bytes per on_bytes (0: all at once) */
	bool srv_failed;           /* on_bytes returned < 0 */
	bool gone;                 /* c freed */
};

static int cl_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	(void)ssl;
	struct link *l = ctx;
	size_t avail = l->s2c_len - l->s2c_off;
	if (avail == 0)
		return l->gone ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(buf, l->s2c + l->s2c_off, n);
	l->s2c_off += n;
	if (l->s2c_off == l->s2c_len)
		l->s2c_off = l->s2c_len = 0;
	return (int)n;
}

static int cl_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	(void)ssl;
	struct link *l = ctx;
	MUST(l->c2s_len + (size_t)sz <= sizeof l->c2s);
	memcpy(l->c2s + l->c2s_len, buf, (size_t)sz);
	l->c2s_len += (size_t)sz;
	return sz;
}

/* Wire bytes queued on c beyond what was moved already. */
static size_t wire_total(struct conn *c)
{
	size_t t = 0;
	for (uint32_t i = 0; i < c->seg_n; i++) {
		struct outseg *s = &c->segs[(c->seg_head + i) % c->seg_cap];
		MUST(s->wire);
		t += s->len;
	}
	return t;
}

/* As the core's start_send: encrypt, then "send" what is new. */
static bool collect(struct link *l)
{
	struct conn *c = l->c;
	if (l->gone || c->seg_n == 0)
		return false;
	if (c->state == CONN_OPEN || c->state == CONN_CLOSING)
		MUST(c->tr->on_flush(l->sh, c) == 0);
	size_t pos = 0;
	bool moved = false;
	for (uint32_t i = 0; i < c->seg_n; i++) {
		struct outseg *s = &c->segs[(c->seg_head + i) % c->seg_cap];
		if (!s->wire)
			continue;
		for (uint32_t k = 0; k < s->len; k++, pos++) {
			if (pos < l->wire_seen)
				continue;
			MUST(l->s2c_len < sizeof l->s2c);
			l->s2c[l->s2c_len++] = s->p[k];
			moved = true;
		}
	}
	if (pos > l->wire_seen)
		l->wire_seen = pos;
	/* a connection closing after its flush: gone once "sent" */
	if (c->state == CONN_CLOSING) {
		conn_close(l->sh, c, false);
		l->gone = true;
	}
	return moved;
}

static bool feed(struct link *l)
{
	if (l->c2s_len == 0 || l->gone)
		return false;
	struct conn *c = l->c;
	size_t off = 0;
	while (off < l->c2s_len && !l->srv_failed &&
	       (c->state == CONN_OPEN || c->state == CONN_DETACHING)) {
		size_t n = l->c2s_len - off;
		if (l->feed_max && n > l->feed_max)
			n = l->feed_max;
		/* the core hands over bytes the kernel owns: a copy that dies */
		uint8_t *tmp = malloc(n);
		MUST(tmp);
		memcpy(tmp, l->c2s + off, n);
		int rc = c->tr->on_bytes(l->sh, c, tmp, (uint32_t)n);
		memset(tmp, 0xee, n);
		free(tmp);
		off += n;
		if (rc != 0) {
			l->srv_failed = true;
			conn_close(l->sh, c, true);
			if (c->state == CONN_SHUTDOWN || l->sh->conns[c->slot] != c)
				l->gone = true;
		}
	}
	l->c2s_len = 0;
	return true;
}

static void pump(struct link *l)
{
	for (int i = 0; i < 1000; i++) {
		bool a = feed(l);
		bool b = collect(l);
		if (!a && !b)
			return;
	}
	MUST(!"pump does not settle");
}

static void link_open(struct link *l, struct shard *sh, struct tls_server *srv,
		      WOLFSSL_CTX *cctx)
{
	memset(l, 0, sizeof *l);
	l->sh = sh;
	l->c = fake_conn(sh, &l->up);
	MUST(tls_conn_start(sh, l->c, srv) == 0);
	CHECK(tls_conn_is_tls(l->c));
	CHECK(!tls_conn_handshake_done(l->c));
	CHECK(tls_conn_identity(l->c) == NULL);
	l->cl = wolfSSL_new(cctx);
	MUST(l->cl);
	wolfSSL_SetIOReadCtx(l->cl, l);
	wolfSSL_SetIOWriteCtx(l->cl, l);
}

static void link_close(struct link *l)
{
	if (!l->gone) {
		conn_close(l->sh, l->c, false);
		l->gone = true;
	}
	CHECK_INT(l->up.closed, 1);
	wolfSSL_free(l->cl);
	l->cl = NULL;
}

/* Client handshake; returns 0 or the client's wolfSSL error. */
static int handshake(struct link *l)
{
	for (int i = 0; i < 100; i++) {
		int r = wolfSSL_connect(l->cl);
		if (r == WOLFSSL_SUCCESS) {
			pump(l);
			return 0;
		}
		int e = wolfSSL_get_error(l->cl, r);
		if (e != WOLFSSL_ERROR_WANT_READ) {
			pump(l);
			return e;
		}
		bool a = feed(l), b = collect(l);
		if (!a && !b)
			return -1; /* stuck */
	}
	return -2;
}

/* Send msg to the server, pump, read the echo. Returns 0, or the client's
 * wolfSSL error (e.g. the server refused its certificate after the
 * client's Finished: TLS 1.3 learns it here). */
static int roundtrip(struct link *l, const char *msg)
{
	size_t n = strlen(msg);
	int w = wolfSSL_write(l->cl, msg, (int)n);
	if (w != (int)n)
		return wolfSSL_get_error(l->cl, w);
	pump(l);
	char buf[4096];
	size_t got = 0;
	for (int i = 0; i < 50 && got < n; i++) {
		int r = wolfSSL_read(l->cl, buf + got, (int)(sizeof buf - got));
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		int e = wolfSSL_get_error(l->cl, r);
		if (e != WOLFSSL_ERROR_WANT_READ)
			return e;
		pump(l);
	}
	if (got != n || memcmp(buf, msg, n) != 0)
		return -3;
	return 0;
}

static int last_alert_rx(WOLFSSL *cl)
{
	WOLFSSL_ALERT_HISTORY h;
	memset(&h, 0, sizeof h);
	wolfSSL_get_alert_history(cl, &h);
	return h.last_rx.level == alert_fatal ? h.last_rx.code : -h.last_rx.code - 1000;
}

/* --------------------------------------------------------- client CTX */

static WOLFSSL_CTX *client_ctx(int version, const struct made *leaf,
			       const struct made *extra, const struct tls_pki_key *key,
			       const char *ciphers)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(version == 0x0304 ? wolfTLSv1_3_client_method()
					   : wolfTLSv1_2_client_method());
	MUST(ctx);
	MUST(wolfSSL_CTX_load_verify_buffer(ctx, srv_ca.der, (long)srv_ca.len,
					    WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS);
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	if (leaf) {
		char pem[32768];
		int n = tls_pem_encode("CERTIFICATE", leaf->der, leaf->len, pem, sizeof pem);
		MUST(n > 0);
		if (extra) {
			int m = tls_pem_encode("CERTIFICATE", extra->der, extra->len,
					       pem + n, sizeof pem - (size_t)n);
			MUST(m > 0);
			n += m;
		}
		MUST(wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)pem,
							      n) == WOLFSSL_SUCCESS);
		uint8_t p8[TLS_PKI_KEY_DER_MAX];
		int kl = tls_pki_key_pkcs8(key ? key : leaf->key, p8, sizeof p8);
		MUST(kl > 0);
		MUST(wolfSSL_CTX_use_PrivateKey_buffer(ctx, p8, kl, WOLFSSL_FILETYPE_ASN1) ==
		     WOLFSSL_SUCCESS);
	}
	if (ciphers)
		MUST(wolfSSL_CTX_set_cipher_list(ctx, ciphers) == WOLFSSL_SUCCESS);
	wolfSSL_CTX_SetIORecv(ctx, cl_recv);
	wolfSSL_CTX_SetIOSend(ctx, cl_send);
	return ctx;
}

#endif
