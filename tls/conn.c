/*
 * tls/conn.c - the per-connection TLS transport (API in tls/server.h).
 *
 * wolfSSL never owns the socket. Ciphertext the shard received is offered
 * to wolfSSL through our recv callback, straight from the kernel's buffer
 * when possible (the rest is kept in tc->cin until wolfSSL wants it); what
 * wolfSSL writes goes through our send callback into the connection's
 * output queue as wire bytes (conn_write_wire), which always accepts. So a
 * wolfSSL call never blocks and never returns WANT_WRITE.
 *
 * Plaintext for the layer above is delivered with conn_deliver_input only
 * after the handshake, so the first bytes it sees are the client's
 * CONNECT. Its output is encrypted at flush time (on_flush ->
 * conn_encrypt_pending), in queue order.
 *
 * A connection may move to another shard (client ID home): while it is
 * CONN_DETACHING we only buffer ciphertext; the new shard calls
 * on_bytes(NULL, 0) to resume. The TLS 1.3 session ticket is sent with the
 * first encrypted output instead of at the end of the handshake, so that
 * nothing of ours is queued when the layer above hands the connection over
 * on the CONNECT that came with the client's Finished.
 */
#include "tls/server-int.h"
#include "core/log.h"
#include "core/shard.h"

#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/error-ssl.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define TLS_CIN_MAX (256u * 1024) /* ciphertext buffered per connection */
#define TLS_READ_CHUNK 16384      /* one record of plaintext */

static int tr_on_bytes(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n);
static int tr_on_flush(struct shard *sh, struct conn *c);
static void tr_on_free(struct shard *sh, struct conn *c);

const struct transport tls_transport = {
	.name = "tls",
	.on_bytes = tr_on_bytes,
	.on_flush = tr_on_flush,
	.on_free = tr_on_free,
};

static _Thread_local uint8_t tls_rbuf[TLS_READ_CHUNK];

/* ------------------------------------------------------ wolfSSL I/O */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	(void)ssl;
	struct tls_conn *tc = ctx;
	if (sz <= 0)
		return 0;
	const uint8_t *from;
	uint32_t avail;
	if (tc->cin_len > tc->cin_off) {
		from = tc->cin + tc->cin_off;
		avail = tc->cin_len - tc->cin_off;
	} else if (tc->src_len) {
		from = tc->src;
		avail = tc->src_len;
	} else {
		return WOLFSSL_CBIO_ERR_WANT_READ;
	}
	uint32_t n = avail < (uint32_t)sz ? avail : (uint32_t)sz;
	memcpy(buf, from, n);
	if (tc->cin_len > tc->cin_off) {
		tc->cin_off += n;
		if (tc->cin_off == tc->cin_len) {
			/* drained: an idle connection keeps no buffer */
			free(tc->cin);
			tc->cin = NULL;
			tc->cin_off = tc->cin_len = tc->cin_cap = 0;
		}
	} else {
		tc->src += n;
		tc->src_len -= n;
	}
	return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	(void)ssl;
	struct tls_conn *tc = ctx;
	if (sz <= 0)
		return 0;
	if (!tc->c || conn_write_wire(tc->sh, tc->c, buf, (uint32_t)sz) != 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	return sz;
}

/* Keep ciphertext for later (partial record, or the connection is moving). */
static int cin_append(struct tls_conn *tc, const uint8_t *p, uint32_t n)
{
	if (n == 0)
		return 0;
	if (tc->cin_off) {
		memmove(tc->cin, tc->cin + tc->cin_off, tc->cin_len - tc->cin_off);
		tc->cin_len -= tc->cin_off;
		tc->cin_off = 0;
	}
	if (tc->cin_len + n > TLS_CIN_MAX)
		return -ENOBUFS;
	if (tc->cin_len + n > tc->cin_cap) {
		uint32_t nc = tc->cin_cap ? tc->cin_cap : 4096;
		while (nc < tc->cin_len + n)
			nc *= 2;
		uint8_t *nb = realloc(tc->cin, nc);
		if (!nb)
			return -ENOMEM;
		tc->cin = nb;
		tc->cin_cap = nc;
	}
	memcpy(tc->cin + tc->cin_len, p, n);
	tc->cin_len += n;
	return 0;
}

/* Plaintext while the layer above paused its input: kept in c->in, as the
 * core does for plain TCP, until it calls conn_reoffer_input. */
static int keep_plain(struct conn *c, const uint8_t *p, uint32_t n)
{
	if (c->in_len + n > c->in_cap) {
		uint32_t nc = c->in_cap ? c->in_cap : 4096;
		while (nc < c->in_len + n)
			nc *= 2;
		uint8_t *nb = realloc(c->in, nc);
		if (!nb)
			return -ENOMEM;
		c->in = nb;
		c->in_cap = nc;
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	return 0;
}

/* ------------------------------------------------------- handshake */

static int hs_failed(struct shard *sh, struct conn *c, struct tls_conn *tc, int e)
{
	tc->failed = true;
	tls_server_hs_forget(tc);
	/* a certificate signature verify_cb found bad: what wolfSSL says
	 * when it checks one itself */
	if (tc->sig_bad && e == VERIFY_CERT_ERROR)
		e = ASN_SIG_CONFIRM_E;
	enum tls_fail f = tls_server_classify(tc, e);
	tc->fail = (uint8_t)f;
	tls_count(&tc->srv->st.fail[f]);
	if (log_limit_ok(&sh->noisy, sh->now_ms, 10, 1000)) {
		char why[WOLFSSL_MAX_ERROR_SZ];
		wolfSSL_ERR_error_string_n((unsigned long)e, why, sizeof why);
		log_info("tls: handshake with %s failed: %s (%s)", CONN_PEER(c),
			 tls_fail_name(f), why);
	}
	wolfSSL_ERR_clear_error();
	return -EPROTO; /* the core closes with a flush: the alert goes out */
}

static void tk_forget(struct tls_conn *tc)
{
	if (tc->tk_plain) {
		memset(tc->tk_plain, 0, (size_t)tc->tk_outlen);
		free(tc->tk_plain);
		tc->tk_plain = NULL;
	}
}

static int hs_complete(struct shard *sh, struct conn *c, struct tls_conn *tc)
{
	tk_forget(tc);
	/* every certificate signature was decided in verify_cb */
	if (tc->psig || tc->sig_bad)
		return hs_failed(sh, c, tc, VERIFY_CERT_ERROR); /* cannot happen */
	bool resumed = wolfSSL_session_reused(tc->ssl);
	if (!resumed && !tc->rec_chain) {
		int rc = tls_server_identity_from_chain(tc->srv, tc);
		if (rc != 0)
			return hs_failed(sh, c, tc, rc == -ENOMEM ? MEMORY_E : ASN_PARSE_E);
	}
	tls_server_hs_forget(tc);
	if (tc->srv->require_cert && !tc->rec)
		return hs_failed(sh, c, tc, NO_PEER_CERT); /* cannot happen */
	tc->hs_done = true;
	struct tls_identity *id = &tc->ident;
	memset(id, 0, sizeof *id);
	if (tc->rec) {
		memcpy(id->cert_id, tc->rec->id, sizeof id->cert_id);
		id->der = tc->rec->der;
		id->der_len = tc->rec->len;
		if (tc->issuer) {
			id->issuer_der = tc->issuer->der;
			id->issuer_der_len = tc->issuer->len;
		}
	}
	id->resumed = resumed;
	id->version = wolfSSL_version(tc->ssl);
	id->cipher = wolfSSL_get_cipher_name(tc->ssl);
	tls_count(resumed ? &tc->srv->st.resumed : &tc->srv->st.full);
	/* TLS 1.3: one ticket, with the first output (see the top) */
	tc->ticket_due = id->version == TLS1_3_VERSION;
	return 0;
}

/* Drive the handshake, then read records while the layer above takes
 * them. 0, or < 0 to close (with a flush). */
static int tls_pump(struct shard *sh, struct conn *c, struct tls_conn *tc)
{
	if (tc->failed)
		return -EPROTO;
	if (!tc->hs_done) {
		int r = wolfSSL_accept(tc->ssl);
		if (r != WOLFSSL_SUCCESS) {
			int e = wolfSSL_get_error(tc->ssl, r);
			if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
				return 0;
			return hs_failed(sh, c, tc, e);
		}
		int rc = hs_complete(sh, c, tc);
		if (rc != 0)
			return rc;
	}
	while (c->state == CONN_OPEN) {
		int n = wolfSSL_read(tc->ssl, tls_rbuf, sizeof tls_rbuf);
		if (n > 0) {
			int rc = c->input_paused ? keep_plain(c, tls_rbuf, (uint32_t)n)
				: conn_deliver_input(sh, c, tls_rbuf, (uint32_t)n);
			if (rc != 0)
				return rc;
			continue;
		}
		int e = wolfSSL_get_error(tc->ssl, n);
		if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
			return 0;
		if (e == WOLFSSL_ERROR_ZERO_RETURN)
			return -ECONNRESET; /* close_notify */
		tc->failed = true;
		if (log_limit_ok(&sh->noisy, sh->now_ms, 10, 1000)) {
			char why[WOLFSSL_MAX_ERROR_SZ];
			wolfSSL_ERR_error_string_n((unsigned long)e, why, sizeof why);
			log_info("tls: %s: %s", CONN_PEER(c), why);
		}
		wolfSSL_ERR_clear_error();
		return -EPROTO;
	}
	return 0;
}

/* ------------------------------------------------------- transport */

static int tr_on_bytes(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n)
{
	struct tls_conn *tc = c->tr_ctx;
	if (!tc)
		return -EINVAL;
	tc->sh = sh;
	tc->c = c;
	if (c->state == CONN_DETACHING)
		return cin_append(tc, p, n); /* resumed on the new shard */
	if (!tc->hs_done && !tc->seen && p && n) {
		tc->seen = true;
		/* Not a TLS handshake record (a plain MQTT client on a TLS port,
		 * an SSLv2 hello): say so now rather than wait for more. */
		if (p[0] != 22) {
			tc->failed = true;
			tc->fail = TLS_FAIL_PROTOCOL;
			tls_count(&tc->srv->st.fail[TLS_FAIL_PROTOCOL]);
			if (log_limit_ok(&sh->noisy, sh->now_ms, 10, 1000))
				log_info("tls: %s does not speak TLS (first byte 0x%02x%s)",
					 CONN_PEER(c), p[0],
					 p[0] == 0x10 ? ": plain MQTT on a TLS port?" : "");
			return -EPROTO;
		}
	}
	tc->src = p;
	tc->src_len = p ? n : 0;
	int rc = tls_pump(sh, c, tc);
	/* what wolfSSL did not read yet: p is the kernel's, copy it */
	int rc2 = cin_append(tc, tc->src, tc->src_len);
	tc->src = NULL;
	tc->src_len = 0;
	return rc != 0 ? rc : rc2;
}

static int enc_drop(void *ctx, const uint8_t *p, uint32_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return 0;
}

static int enc_write(void *ctx, const uint8_t *p, uint32_t n)
{
	struct tls_conn *tc = ctx;
	if (tc->ticket_due) {
		tc->ticket_due = false;
		if (wolfSSL_send_SessionTicket(tc->ssl) != WOLFSSL_SUCCESS) {
			log_debug("tls: %s: no session ticket", CONN_PEER(tc->c));
			wolfSSL_ERR_clear_error();
		}
	}
	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;
		int w = wolfSSL_write(tc->ssl, p, chunk);
		if (w <= 0) {
			tc->failed = true;
			wolfSSL_ERR_clear_error();
			return -EIO;
		}
		p += w;
		n -= (uint32_t)w;
	}
	return 0;
}

static int tr_on_flush(struct shard *sh, struct conn *c)
{
	struct tls_conn *tc = c->tr_ctx;
	if (!tc)
		return -EINVAL;
	tc->sh = sh;
	tc->c = c;
	if (!tc->hs_done || tc->failed || tc->refused)
		return conn_encrypt_pending(sh, c, enc_drop, tc);
	return conn_encrypt_pending(sh, c, enc_write, tc);
}

static void tr_on_free(struct shard *sh, struct conn *c)
{
	(void)sh;
	struct tls_conn *tc = c->tr_ctx;
	if (!tc)
		return;
	tc->c = NULL; /* wolfSSL_free sends nothing, but be sure */
	wolfSSL_free(tc->ssl);
	tk_forget(tc);
	tls_server_hs_forget(tc);
	tls_idrec_unref(tc->rec);
	tls_idrec_unref(tc->issuer);
	free(tc->cin);
	free(tc);
	c->tr_ctx = NULL;
}

/* ------------------------------------------------------------ API */

int tls_conn_start(struct shard *sh, struct conn *c, struct tls_server *srv)
{
	struct tls_conn *tc = calloc(1, sizeof *tc);
	if (!tc)
		return -ENOMEM;
	tc->srv = srv;
	tc->sh = sh;
	tc->c = c;
	tc->ssl = tls_server_new_ssl(srv);
	if (!tc->ssl) {
		free(tc);
		return -ENOMEM;
	}
	wolfSSL_SSLSetIORecv(tc->ssl, io_recv);
	wolfSSL_SSLSetIOSend(tc->ssl, io_send);
	wolfSSL_SetIOReadCtx(tc->ssl, tc);
	wolfSSL_SetIOWriteCtx(tc->ssl, tc);
	c->tr = &tls_transport;
	c->tr_ctx = tc;
	return 0;
}

bool tls_conn_is_tls(const struct conn *c)
{
	return c && c->tr == &tls_transport && c->tr_ctx;
}

const struct tls_identity *tls_conn_identity(const struct conn *c)
{
	if (!tls_conn_is_tls(c))
		return NULL;
	const struct tls_conn *tc = c->tr_ctx;
	return tc->hs_done && tc->rec ? &tc->ident : NULL;
}

bool tls_conn_handshake_done(const struct conn *c)
{
	return tls_conn_is_tls(c) && ((const struct tls_conn *)c->tr_ctx)->hs_done;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static int aes_gcm(const uint8_t *key, int keylen, const uint8_t *nonce,
		   const uint8_t *aad, uint32_t aadlen, const uint8_t *in,
		   uint32_t n, uint8_t *out, uint8_t *tag)
{
	Aes aes;
	int rc = wc_AesInit(&aes, NULL, INVALID_DEVID);
	if (rc != 0)
		return rc;
	rc = wc_AesGcmSetKey(&aes, key, (word32)keylen);
	if (rc == 0)
		rc = wc_AesGcmEncrypt(&aes, out, in, n, nonce, 12, tag, 16, aad, aadlen);
	wc_AesFree(&aes);
	return rc;
}

/*
 * One fatal alert record, protected with the connection's current server
 * write key, appended to the output. wolfSSL 5.5 has no call to send an
 * alert of our choosing, but exposes the keys and the sequence number
 * (ATOMIC_USER), and every suite we allow is an AEAD one whose framing is
 * fixed by the RFCs: TLS 1.3 (RFC 8446 5.2-5.3), TLS 1.2 AES-GCM
 * (RFC 5288) and ChaCha20-Poly1305 (RFC 7905). 0, or -EOPNOTSUPP.
 */
static int send_alert(struct tls_conn *tc, int alert)
{
	WOLFSSL *ssl = tc->ssl;
	int bulk = wolfSSL_GetBulkCipher(ssl);
	int ver = wolfSSL_version(ssl);
	const uint8_t *key = wolfSSL_GetServerWriteKey(ssl);
	const uint8_t *iv = wolfSSL_GetServerWriteIV(ssl);
	int keylen = wolfSSL_GetKeySize(ssl);
	word64 seq = 0;
	wolfSSL_GetSequenceNumber(ssl, &seq);
	if (!key || !iv || keylen <= 0 || (bulk != wolfssl_aes_gcm && bulk != wolfssl_chacha))
		return -EOPNOTSUPP;
	if (bulk == wolfssl_chacha && keylen != 32)
		return -EOPNOTSUPP;
	uint8_t rec[5 + 8 + 3 + 16];
	uint8_t nonce[12];
	uint8_t seqb[8];
	put_be64(seqb, seq);
	size_t len;
	int rc;
	if (ver == TLS1_3_VERSION) {
		/* TLSInnerPlaintext: the alert, then its content type */
		const uint8_t inner[3] = { 2, (uint8_t)alert, 21 };
		memcpy(nonce, iv, 12);
		for (int i = 0; i < 8; i++)
			nonce[4 + i] ^= seqb[i];
		rec[0] = 23; /* opaque_type application_data */
		rec[1] = 3;
		rec[2] = 3;
		rec[3] = 0;
		rec[4] = sizeof inner + 16;
		if (bulk == wolfssl_aes_gcm)
			rc = aes_gcm(key, keylen, nonce, rec, 5, inner, 3, rec + 5,
				     rec + 5 + 3);
		else
			rc = wc_ChaCha20Poly1305_Encrypt(key, nonce, rec, 5, inner, 3,
							 rec + 5, rec + 5 + 3);
		len = 5 + 3 + 16;
	} else if (ver == TLS1_2_VERSION) {
		const uint8_t plain[2] = { 2, (uint8_t)alert };
		uint8_t aad[13];
		memcpy(aad, seqb, 8);
		aad[8] = 21;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = 0;
		aad[12] = sizeof plain;
		rec[0] = 21; /* alert */
		rec[1] = 3;
		rec[2] = 3;
		rec[3] = 0;
		if (bulk == wolfssl_aes_gcm) {
			/* salt from the key block, explicit part on the wire */
			memcpy(nonce, iv, 4);
			memcpy(nonce + 4, seqb, 8);
			rec[4] = 8 + sizeof plain + 16;
			memcpy(rec + 5, seqb, 8);
			rc = aes_gcm(key, keylen, nonce, aad, sizeof aad, plain, 2,
				     rec + 13, rec + 15);
			len = 5 + 8 + 2 + 16;
		} else {
			memcpy(nonce, iv, 12);
			for (int i = 0; i < 8; i++)
				nonce[4 + i] ^= seqb[i];
			rec[4] = sizeof plain + 16;
			rc = wc_ChaCha20Poly1305_Encrypt(key, nonce, aad, sizeof aad,
							 plain, 2, rec + 5, rec + 7);
			len = 5 + 2 + 16;
		}
	} else {
		return -EOPNOTSUPP;
	}
	if (rc != 0)
		return -EOPNOTSUPP;
	return conn_write_wire(tc->sh, tc->c, rec, (uint32_t)len);
}

void tls_conn_refuse(struct shard *sh, struct conn *c, int alert)
{
	if (!tls_conn_is_tls(c)) {
		conn_close(sh, c, true);
		return;
	}
	struct tls_conn *tc = c->tr_ctx;
	tc->sh = sh;
	tc->c = c;
	if (!tc->hs_done || tc->failed || tc->refused || c->state != CONN_OPEN) {
		conn_close(sh, c, true);
		return;
	}
	tls_count(&tc->srv->st.refused);
	/* What the layer above queued goes first (no ticket for a refused
	 * client), then the alert with the next sequence number. */
	tc->ticket_due = false;
	int rc = conn_encrypt_pending(sh, c, enc_write, tc);
	if (rc == 0 && send_alert(tc, alert) != 0) {
		wolfSSL_shutdown(tc->ssl); /* close_notify at least */
		wolfSSL_ERR_clear_error();
	}
	tc->refused = true;
	conn_close(sh, c, true);
}
