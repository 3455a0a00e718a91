/*
 * tls/server.c - the WOLFSSL_CTX side of mutual TLS (API in tls/server.h):
 * the broker's certificate and key, trust anchors, CTX generations,
 * session tickets that keep the client's identity, the TLS 1.2 session-ID
 * cache, the verify and PK callbacks, counters.
 *
 * CTX generations. New handshakes use srv->ctx; reload and set_cas build a
 * new CTX and swap the pointer. A WOLFSSL holds a reference on its CTX
 * (wolfSSL counts them), so an old CTX lives until its last connection is
 * freed. Everything that must survive a swap (anchors, ticket keys, the
 * caches) lives here in struct tls_server, not in the CTX.
 *
 * Identity across resumption. wolfSSL's ticket has no room for the peer
 * certificate, so our ticket callback wraps wolfSSL's ticket in our own
 * ChaCha20-Poly1305 envelope together with the client's certificate ID
 * (in the 32 bytes of padding wolfSSL leaves in the encrypted part). On
 * resumption the ID finds the certificate in the identity records (a
 * bounded LRU of DERs shared by all shards); if the record is gone, or the
 * trust anchors changed since, the ticket is refused and the client does a
 * full handshake. The TLS 1.2 session-ID cache is ours too (wolfSSL's
 * external-cache callbacks, internal cache off) for the same reasons.
 */
#include "tls/server-int.h"
#include "tls/cert.h"
#include "tls/pki.h"
#include "core/log.h"

#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* TLS 1.3 suites, then TLS 1.2 ECDHE with AEAD only (forward secrecy, and
 * tls_conn_refuse can frame an alert in every one of them). */
static const char tls_ciphers[] =
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
	"TLS13-CHACHA20-POLY1305-SHA256:"
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static const uint8_t ticket_magic[4] = { 'v', 'c', 'h', '1' };
#define TICKET_TRAILER TLS_CERT_ID_LEN
#define TLS_SID_LEN 32 /* TLS 1.2 session IDs (wolfSSL ID_LEN) */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static int64_t wall_s(void)
{
	return (int64_t)time(NULL);
}

static void fill_random(void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = getrandom(b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort(); /* no entropy: nothing safe to do */
		}
		b += r;
		n -= (size_t)r;
	}
}

static struct tls_conn *ssl_conn(WOLFSSL *ssl)
{
	return ssl ? (struct tls_conn *)wolfSSL_GetIOReadCtx(ssl) : NULL;
}

/* ---------------------------------------------------- identity records */

static size_t id_bucket(const uint8_t *id)
{
	uint64_t h;
	memcpy(&h, id, sizeof h); /* SHA-256 output: already uniform */
	return (size_t)(h % TLS_IDCACHE_BUCKETS);
}

static struct tls_idrec *idrec_alloc(const uint8_t *id, const uint8_t *der,
				     size_t len)
{
	if (len > UINT32_MAX)
		return NULL;
	struct tls_idrec *r = calloc(1, sizeof *r + len);
	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	memcpy(r->id, id, TLS_CERT_ID_LEN);
	r->len = (uint32_t)len;
	memcpy(r->der, der, len);
	return r;
}

static void idrec_ref(struct tls_idrec *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void tls_idrec_unref(struct tls_idrec *r)
{
	while (r) {
		if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
			return;
		struct tls_idrec *issuer = r->issuer;
		free(r);
		r = issuer;
	}
}

static void lru_unlink(struct tls_server *srv, struct tls_idrec *r)
{
	if (r->lprev)
		r->lprev->lnext = r->lnext;
	else
		srv->lru_head = r->lnext;
	if (r->lnext)
		r->lnext->lprev = r->lprev;
	else
		srv->lru_tail = r->lprev;
	r->lprev = r->lnext = NULL;
}

static void lru_push(struct tls_server *srv, struct tls_idrec *r)
{
	r->lprev = NULL;
	r->lnext = srv->lru_head;
	if (srv->lru_head)
		srv->lru_head->lprev = r;
	srv->lru_head = r;
	if (!srv->lru_tail)
		srv->lru_tail = r;
}

/* id_lock held */
static struct tls_idrec *id_find(struct tls_server *srv, const uint8_t *id)
{
	for (struct tls_idrec *r = srv->id_tab[id_bucket(id)]; r; r = r->hnext)
		if (memcmp(r->id, id, TLS_CERT_ID_LEN) == 0)
			return r;
	return NULL;
}

/* id_lock held: drop r from the table (the table's reference goes). */
static void id_remove(struct tls_server *srv, struct tls_idrec *r)
{
	struct tls_idrec **pp = &srv->id_tab[id_bucket(r->id)];
	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
	r->hnext = NULL;
	lru_unlink(srv, r);
	r->in_table = false;
	srv->id_n--;
}

/*
 * The record for (id, der), with one reference for the caller: the one in
 * the table, or a new one. `issuer` (may be NULL) becomes the record's
 * issuer if it has none yet. Also returns the record's issuer with a
 * reference in *issuer_out (NULL if none). NULL on -ENOMEM.
 */
static struct tls_idrec *idrec_put(struct tls_server *srv, const uint8_t *id,
				   const uint8_t *der, size_t len,
				   struct tls_idrec *issuer,
				   struct tls_idrec **issuer_out)
{
	struct tls_idrec *fresh = idrec_alloc(id, der, len);
	struct tls_idrec *evicted = NULL;
	if (!fresh)
		return NULL;
	pthread_mutex_lock(&srv->id_lock);
	struct tls_idrec *r = id_find(srv, id);
	if (r) {
		lru_unlink(srv, r);
		lru_push(srv, r);
	} else {
		r = fresh;
		fresh = NULL;
		size_t b = id_bucket(id);
		r->hnext = srv->id_tab[b];
		srv->id_tab[b] = r;
		r->in_table = true;
		lru_push(srv, r);
		srv->id_n++;
		if (srv->id_n > TLS_IDCACHE_MAX) {
			evicted = srv->lru_tail;
			id_remove(srv, evicted);
		}
	}
	if (!r->issuer && issuer && issuer != r) {
		idrec_ref(issuer);
		r->issuer = issuer;
	}
	idrec_ref(r);
	if (issuer_out) {
		*issuer_out = r->issuer;
		if (r->issuer)
			idrec_ref(r->issuer);
	}
	pthread_mutex_unlock(&srv->id_lock);
	free(fresh);
	tls_idrec_unref(evicted);
	return r;
}

/* The record with this ID and its issuer, both with a reference; NULL if
 * not known. */
static struct tls_idrec *idrec_get(struct tls_server *srv, const uint8_t *id,
				   struct tls_idrec **issuer_out)
{
	pthread_mutex_lock(&srv->id_lock);
	struct tls_idrec *r = id_find(srv, id);
	*issuer_out = NULL;
	if (r) {
		lru_unlink(srv, r);
		lru_push(srv, r);
		idrec_ref(r);
		if (r->issuer) {
			idrec_ref(r->issuer);
			*issuer_out = r->issuer;
		}
	}
	pthread_mutex_unlock(&srv->id_lock);
	return r;
}

/* --------------------------------------------------------- identities */

static void conn_set_identity(struct tls_conn *tc, struct tls_idrec *rec,
			      struct tls_idrec *issuer, bool from_chain)
{
	tls_idrec_unref(tc->rec);
	tls_idrec_unref(tc->issuer);
	tc->rec = rec;
	tc->issuer = issuer;
	tc->rec_chain = from_chain;
}

/* The anchor that issued `leaf` (by name and key identifier), with a
 * reference, or NULL. */
static struct tls_idrec *anchor_for(struct tls_server *srv,
				    const struct tls_cert_info *leaf)
{
	struct tls_idrec *found = NULL;
	pthread_mutex_lock(&srv->ca_lock);
	for (size_t i = 0; i < srv->n_cas && !found; i++) {
		struct tls_idrec *a = srv->cas[i];
		if (a->subj_len != leaf->issuer.len ||
		    memcmp(a->der + a->subj_off, leaf->issuer.ptr, a->subj_len) != 0)
			continue;
		if (leaf->akid.len && a->skid_len &&
		    (leaf->akid.len != a->skid_len ||
		     memcmp(leaf->akid.ptr, a->der + a->skid_off, a->skid_len) != 0))
			continue;
		found = a;
		idrec_ref(a);
	}
	pthread_mutex_unlock(&srv->ca_lock);
	return found;
}

int tls_server_identity_from_chain(struct tls_server *srv, struct tls_conn *tc)
{
	if (!tc->peer) {
		conn_set_identity(tc, NULL, NULL, true);
		return 0;
	}
	const uint8_t *der = tc->peer;
	uint32_t len = tc->peer_len;
	struct tls_cert_info leaf;
	if (tls_cert_parse(der, len, &leaf) != 0)
		return -EINVAL;
	struct tls_idrec *issuer = NULL;
	if (tc->peer_next_len) {
		const uint8_t *ider = tc->peer + len;
		uint32_t ilen = tc->peer_next_len;
		struct tls_cert_info ici;
		if (tls_cert_parse(ider, ilen, &ici) == 0 &&
		    ici.subject.len == leaf.issuer.len &&
		    memcmp(ici.subject.ptr, leaf.issuer.ptr, ici.subject.len) == 0) {
			issuer = idrec_put(srv, ici.id, ider, ilen, NULL, NULL);
			if (!issuer)
				return -ENOMEM;
		}
	}
	if (!issuer)
		issuer = anchor_for(srv, &leaf);
	struct tls_idrec *iss_out = NULL;
	struct tls_idrec *rec = idrec_put(srv, leaf.id, der, len, issuer,
					  &iss_out);
	tls_idrec_unref(issuer);
	if (!rec)
		return -ENOMEM;
	conn_set_identity(tc, rec, iss_out, true);
	return 0;
}

/* The identity must be known before wolfSSL_accept returns when a ticket
 * or a cache entry is made for the session (TLS 1.2). */
static int ensure_identity(struct tls_conn *tc)
{
	if (wolfSSL_session_reused(tc->ssl) || tc->rec_chain)
		return 0;
	return tls_server_identity_from_chain(tc->srv, tc);
}

/* A resumption presented this certificate ID: attach its record, unless
 * another ID was attached in the same handshake. 0, or -ENOENT (unknown:
 * refuse the resumption), -EEXIST (conflict). */
static int attach_resumed(struct tls_conn *tc, const uint8_t *id)
{
	static const uint8_t zero[TLS_CERT_ID_LEN];
	if (memcmp(id, zero, TLS_CERT_ID_LEN) == 0) {
		/* a session without a client certificate */
		if (tc->srv->require_cert || tc->rec)
			return -ENOENT;
		return 0;
	}
	if (tc->rec)
		return memcmp(tc->rec->id, id, TLS_CERT_ID_LEN) == 0 ? 0 : -EEXIST;
	struct tls_idrec *iss = NULL;
	struct tls_idrec *rec = idrec_get(tc->srv, id, &iss);
	if (!rec)
		return -ENOENT;
	/* A session outlives nothing: a certificate that expired since makes
	 * the client do a full handshake (and fail it, with the alert). */
	struct tls_cert_info ci;
	int64_t now = wall_s();
	if (tls_cert_parse(rec->der, rec->len, &ci) != 0 || now > ci.not_after ||
	    now < ci.not_before) {
		tls_idrec_unref(rec);
		tls_idrec_unref(iss);
		return -ENOENT;
	}
	conn_set_identity(tc, rec, iss, false);
	return 0;
}

/* ------------------------------------------------------------ tickets */

/* tk_lock held: start a new current key; the current one becomes the
 * previous one. */
static void tk_rotate_locked(struct tls_server *srv)
{
	srv->tk_prev = srv->tk_cur;
	fill_random(srv->tk_cur.name, sizeof srv->tk_cur.name);
	fill_random(srv->tk_cur.key, sizeof srv->tk_cur.key);
	srv->tk_cur.born = mono_s();
	srv->tk_cur.valid = true;
}

void tls_server_rotate_ticket_key_mt(struct tls_server *srv)
{
	pthread_mutex_lock(&srv->tk_lock);
	tk_rotate_locked(srv);
	pthread_mutex_unlock(&srv->tk_lock);
}

static void ticket_aad(uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ],
		       const uint8_t *name, const uint8_t *iv)
{
	memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
	memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
}

static int ticket_encrypt(struct tls_server *srv, struct tls_conn *tc,
			  WOLFSSL *ssl, uint8_t *key_name, uint8_t *iv,
			  uint8_t *mac, uint8_t *ticket, int inlen, int *outlen)
{
	static const uint8_t zero[TLS_CERT_ID_LEN];
	if (inlen < 0 || *outlen - inlen < TICKET_TRAILER) {
		log_error("tls: wolfSSL leaves no room in its ticket for the "
			  "client identity; tickets disabled");
		return WOLFSSL_TICKET_RET_FATAL;
	}
	if (ensure_identity(tc) != 0)
		return WOLFSSL_TICKET_RET_FATAL;
	uint8_t key[32];
	pthread_mutex_lock(&srv->tk_lock);
	if (!srv->tk_cur.valid || mono_s() - srv->tk_cur.born >= TLS_TICKET_ROTATE_S)
		tk_rotate_locked(srv);
	memcpy(key_name, srv->tk_cur.name, 8);
	memcpy(key, srv->tk_cur.key, sizeof key);
	pthread_mutex_unlock(&srv->tk_lock);
	uint32_t epoch = atomic_load_explicit(&srv->trust_epoch, memory_order_acquire);
	key_name[8] = (uint8_t)(epoch >> 24);
	key_name[9] = (uint8_t)(epoch >> 16);
	key_name[10] = (uint8_t)(epoch >> 8);
	key_name[11] = (uint8_t)epoch;
	memcpy(key_name + 12, ticket_magic, sizeof ticket_magic);
	WC_RNG *rng = wolfSSL_GetRNG(ssl);
	if (!rng || wc_RNG_GenerateBlock(rng, iv, WOLFSSL_TICKET_IV_SZ) != 0)
		fill_random(iv, WOLFSSL_TICKET_IV_SZ);
	memcpy(ticket + inlen, tc->rec ? tc->rec->id : zero, TICKET_TRAILER);
	uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
	ticket_aad(aad, key_name, iv);
	memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
	int rc = wc_ChaCha20Poly1305_Encrypt(key, iv, aad, sizeof aad, ticket,
					     (word32)(inlen + TICKET_TRAILER),
					     ticket, mac);
	memset(key, 0, sizeof key);
	if (rc != 0)
		return WOLFSSL_TICKET_RET_FATAL;
	*outlen = inlen + TICKET_TRAILER;
	tls_count(&srv->st.tickets);
	return WOLFSSL_TICKET_RET_OK;
}

static int ticket_decrypt(struct tls_server *srv, struct tls_conn *tc,
			  const uint8_t *key_name, const uint8_t *iv,
			  const uint8_t *mac, uint8_t *ticket, int inlen,
			  int *outlen)
{
	if (tc->tk_plain && tc->tk_ptr == ticket && tc->tk_inlen == inlen &&
	    memcmp(tc->tk_mac, mac, sizeof tc->tk_mac) == 0) {
		memcpy(ticket, tc->tk_plain, (size_t)tc->tk_outlen);
		*outlen = tc->tk_outlen;
		return tc->tk_ret;
	}
	if (inlen < TICKET_TRAILER ||
	    memcmp(key_name + 12, ticket_magic, sizeof ticket_magic) != 0)
		goto reject;
	uint32_t epoch = (uint32_t)key_name[8] << 24 | (uint32_t)key_name[9] << 16 |
			 (uint32_t)key_name[10] << 8 | key_name[11];
	if (epoch != atomic_load_explicit(&srv->trust_epoch, memory_order_acquire))
		goto reject;
	uint8_t key[32];
	bool found = false, old = false;
	int64_t now = mono_s();
	pthread_mutex_lock(&srv->tk_lock);
	if (srv->tk_cur.valid && memcmp(srv->tk_cur.name, key_name, 8) == 0 &&
	    now - srv->tk_cur.born < 2 * TLS_TICKET_ROTATE_S) {
		memcpy(key, srv->tk_cur.key, sizeof key);
		found = true;
		old = now - srv->tk_cur.born >= TLS_TICKET_ROTATE_S;
	} else if (srv->tk_prev.valid && memcmp(srv->tk_prev.name, key_name, 8) == 0 &&
		   now - srv->tk_prev.born < 2 * TLS_TICKET_ROTATE_S) {
		memcpy(key, srv->tk_prev.key, sizeof key);
		found = true;
		old = true;
	}
	pthread_mutex_unlock(&srv->tk_lock);
	if (!found)
		goto reject;
	uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
	ticket_aad(aad, key_name, iv);
	int rc = wc_ChaCha20Poly1305_Decrypt(key, iv, aad, sizeof aad, ticket,
					     (word32)inlen, mac, ticket);
	memset(key, 0, sizeof key);
	if (rc != 0)
		goto reject;
	if (attach_resumed(tc, ticket + inlen - TICKET_TRAILER) != 0)
		goto reject;
	*outlen = inlen - TICKET_TRAILER;
	/* made with an older key: wolfSSL issues a fresh ticket (TLS 1.2) */
	rc = old ? WOLFSSL_TICKET_RET_CREATE : WOLFSSL_TICKET_RET_OK;
	free(tc->tk_plain);
	tc->tk_plain = malloc((size_t)*outlen);
	if (tc->tk_plain) {
		memcpy(tc->tk_plain, ticket, (size_t)*outlen);
		tc->tk_ptr = ticket;
		tc->tk_inlen = inlen;
		tc->tk_outlen = *outlen;
		tc->tk_ret = rc;
		memcpy(tc->tk_mac, mac, sizeof tc->tk_mac);
	}
	return rc;
reject:
	if (!tc->tk_rejected) {
		tc->tk_rejected = true;
		tls_count(&srv->st.tickets_rejected);
	}
	return WOLFSSL_TICKET_RET_REJECT;
}

static int ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
		     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
		     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
		     unsigned char *ticket, int inlen, int *outlen, void *userctx)
{
	struct tls_server *srv = userctx;
	struct tls_conn *tc = ssl_conn(ssl);
	if (!srv || !tc)
		return WOLFSSL_TICKET_RET_FATAL;
	if (enc)
		return ticket_encrypt(srv, tc, ssl, key_name, iv, mac, ticket,
				      inlen, outlen);
	return ticket_decrypt(srv, tc, key_name, iv, mac, ticket, inlen, outlen);
}

/* ---------------------------------------------- TLS 1.2 session-ID cache */

struct tls_sess {
	struct tls_sess *hnext;
	struct tls_sess *fnext;            /* FIFO, oldest first */
	uint8_t sid[TLS_SID_LEN];
	uint8_t cert_id[TLS_CERT_ID_LEN];  /* zero: no client certificate */
	uint32_t epoch;
	int64_t born;                      /* wall seconds */
	uint32_t len;
	bool live;                         /* false once replaced/evicted */
	uint8_t data[];                    /* wolfSSL_i2d_SSL_SESSION */
};

static size_t sid_bucket(const uint8_t *sid)
{
	uint64_t h;
	memcpy(&h, sid, sizeof h); /* random IDs */
	return (size_t)(h % TLS_SESSCACHE_BUCKETS);
}

/* ss_lock held */
static void ss_unhash(struct tls_server *srv, struct tls_sess *s)
{
	struct tls_sess **pp = &srv->ss_tab[sid_bucket(s->sid)];
	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	s->hnext = NULL;
	s->live = false;
	srv->ss_n--;
}

/* ss_lock held: free dead entries at the head of the FIFO and evict the
 * oldest live ones above the limit or past their lifetime. */
static void ss_trim(struct tls_server *srv, int64_t now)
{
	while (srv->ss_old) {
		struct tls_sess *s = srv->ss_old;
		if (s->live && srv->ss_n <= TLS_SESSCACHE_MAX &&
		    now - s->born < TLS_SESSION_LIFETIME_S)
			break;
		if (s->live)
			ss_unhash(srv, s);
		srv->ss_old = s->fnext;
		if (!srv->ss_old)
			srv->ss_new = NULL;
		free(s);
	}
}

static int sess_new_cb(WOLFSSL *ssl, WOLFSSL_SESSION *session)
{
	struct tls_conn *tc = ssl_conn(ssl);
	if (!tc || wolfSSL_SESSION_has_ticket(session))
		return 0; /* resumed through tickets: nothing to keep */
	unsigned int sid_len = 0;
	const unsigned char *sid = wolfSSL_SESSION_get_id(session, &sid_len);
	if (!sid || sid_len != TLS_SID_LEN || ensure_identity(tc) != 0)
		return 0;
	int len = wolfSSL_i2d_SSL_SESSION(session, NULL);
	if (len <= 0 || len > TLS_SESSCACHE_ENTRY_MAX)
		return 0;
	struct tls_sess *s = calloc(1, sizeof *s + (size_t)len);
	if (!s)
		return 0;
	unsigned char *p = s->data;
	if (wolfSSL_i2d_SSL_SESSION(session, &p) != len) {
		free(s);
		return 0;
	}
	s->len = (uint32_t)len;
	memcpy(s->sid, sid, TLS_SID_LEN);
	if (tc->rec)
		memcpy(s->cert_id, tc->rec->id, TLS_CERT_ID_LEN);
	struct tls_server *srv = tc->srv;
	s->epoch = atomic_load_explicit(&srv->trust_epoch, memory_order_acquire);
	s->born = wall_s();
	s->live = true;
	pthread_mutex_lock(&srv->ss_lock);
	size_t b = sid_bucket(s->sid);
	for (struct tls_sess *o = srv->ss_tab[b]; o; o = o->hnext)
		if (memcmp(o->sid, s->sid, TLS_SID_LEN) == 0) {
			ss_unhash(srv, o);
			break;
		}
	s->hnext = srv->ss_tab[b];
	srv->ss_tab[b] = s;
	srv->ss_n++;
	if (srv->ss_new)
		srv->ss_new->fnext = s;
	else
		srv->ss_old = s;
	srv->ss_new = s;
	ss_trim(srv, s->born);
	pthread_mutex_unlock(&srv->ss_lock);
	return 0; /* wolfSSL keeps (and frees) its session object */
}

static WOLFSSL_SESSION *sess_get_cb(WOLFSSL *ssl, const unsigned char *id,
				    int idlen, int *copy)
{
	struct tls_conn *tc = ssl_conn(ssl);
	*copy = 0; /* wolfSSL frees what we return once it copied it */
	if (!tc || idlen != TLS_SID_LEN)
		return NULL;
	struct tls_server *srv = tc->srv;
	uint32_t epoch = atomic_load_explicit(&srv->trust_epoch, memory_order_acquire);
	int64_t now = wall_s();
	uint8_t cert_id[TLS_CERT_ID_LEN];
	uint8_t *data = NULL;
	uint32_t len = 0;
	pthread_mutex_lock(&srv->ss_lock);
	for (struct tls_sess *s = srv->ss_tab[sid_bucket(id)]; s; s = s->hnext) {
		if (memcmp(s->sid, id, TLS_SID_LEN) != 0)
			continue;
		if (s->epoch == epoch && now - s->born < TLS_SESSION_LIFETIME_S &&
		    (data = malloc(s->len)) != NULL) {
			memcpy(data, s->data, s->len);
			len = s->len;
			memcpy(cert_id, s->cert_id, sizeof cert_id);
		}
		break;
	}
	pthread_mutex_unlock(&srv->ss_lock);
	if (!data)
		return NULL;
	WOLFSSL_SESSION *sess = NULL;
	if (attach_resumed(tc, cert_id) == 0) {
		const unsigned char *p = data;
		sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)len);
	}
	free(data);
	return sess;
}

/* ----------------------------------------------------- verify callbacks */

static int digest_for(enum tls_sig_alg alg, const uint8_t *p, size_t n,
		      uint8_t *out, unsigned int *outlen)
{
	switch (alg) {
	case TLS_SIG_ECDSA_SHA256:
		*outlen = 32;
		return wc_Sha256Hash(p, (word32)n, out);
	case TLS_SIG_ECDSA_SHA384:
		*outlen = 48;
		return wc_Sha384Hash(p, (word32)n, out);
	case TLS_SIG_ECDSA_SHA512:
		*outlen = 64;
		return wc_Sha512Hash(p, (word32)n, out);
	default:
		return -1;
	}
}

/* An ECDSA verification with wolfCrypt: 0 and *result 1 when good. */
static int ecc_check(const uint8_t *sig, unsigned int sig_len,
		     const uint8_t *hash, unsigned int hash_len,
		     const uint8_t *key_der, unsigned int key_len, int *result)
{
	ecc_key key;
	word32 idx = 0;
	*result = 0;
	int rc = wc_ecc_init(&key);
	if (rc != 0)
		return rc;
	rc = wc_EccPublicKeyDecode(key_der, &idx, &key, key_len);
	if (rc == 0)
		rc = wc_ecc_verify_hash(sig, sig_len, hash, hash_len, result, &key);
	wc_ecc_free(&key);
	return rc;
}

static bool psig_check(const struct tls_psig *p)
{
	int ok = 0;
	const uint8_t *sig = p->b, *hash = sig + p->sig_len;
	return ecc_check(sig, p->sig_len, hash, p->hash_len,
			 hash + p->hash_len, p->key_len, &ok) == 0 && ok == 1;
}

/*
 * May the CA's signature over the client's leaf be taken as verified?
 * Only when this very verification is of that signature (same signature
 * bytes, same digest of the leaf's TBSCertificate, and a key that is not
 * the leaf's own: that would be the CertificateVerify) and the leaf's ID
 * is known good to the registry.
 */
static bool may_skip(struct tls_conn *tc, const uint8_t *der, size_t len,
		     const struct tls_psig *p)
{
	struct tls_server *srv = tc->srv;
	pthread_mutex_lock(&srv->hook_lock);
	tls_known_fn known = srv->known;
	void *kctx = srv->known_ctx;
	pthread_mutex_unlock(&srv->hook_lock);
	if (!known || tc->hs_done)
		return false;
	const uint8_t *sig = p->b, *hash = sig + p->sig_len;
	const uint8_t *key = hash + p->hash_len;
	struct tls_cert_info leaf;
	if (tls_cert_parse(der, len, &leaf) != 0)
		return false;
	if (leaf.spki.len == p->key_len && memcmp(leaf.spki.ptr, key, p->key_len) == 0)
		return false;
	if (leaf.sig.len != p->sig_len || memcmp(leaf.sig.ptr, sig, p->sig_len) != 0)
		return false;
	uint8_t d[64];
	unsigned int dlen = 0;
	if (digest_for(leaf.sig_alg, leaf.tbs.ptr, leaf.tbs.len, d, &dlen) != 0 ||
	    dlen != p->hash_len || memcmp(d, hash, dlen) != 0)
		return false;
	return known(kctx, leaf.id);
}

/* Decide the pending certificate signature, now that the certificate
 * wolfSSL checked is known (der; the leaf when depth is 0): skipped per
 * may_skip, else verified. false: a bad signature. */
static bool psig_settle(struct tls_conn *tc, const uint8_t *der, size_t len,
			int depth)
{
	struct tls_psig *p = tc->psig;
	if (!p)
		return true;
	tc->psig = NULL;
	bool ok;
	if (depth == 0 && der && may_skip(tc, der, len, p)) {
		tls_count(&tc->srv->st.skipped);
		ok = true;
	} else {
		ok = psig_check(p);
	}
	free(p);
	return ok;
}

/* Keep the client's leaf and the certificate after it (its issuer, if the
 * client sent one) for tls_server_identity_from_chain. */
static int peer_copy(struct tls_conn *tc, const WOLFSSL_BUFFER_INFO *certs,
		     int n)
{
	uint32_t l0 = certs[0].length, l1 = n >= 2 ? certs[1].length : 0;
	uint8_t *p = malloc((size_t)l0 + l1);
	if (!p)
		return -ENOMEM;
	memcpy(p, certs[0].buffer, l0);
	if (l1)
		memcpy(p + l0, certs[1].buffer, l1);
	free(tc->peer);
	tc->peer = p;
	tc->peer_len = l0;
	tc->peer_next_len = l1;
	return 0;
}

void tls_server_hs_forget(struct tls_conn *tc)
{
	free(tc->peer);
	tc->peer = NULL;
	tc->peer_len = tc->peer_next_len = 0;
	free(tc->psig);
	tc->psig = NULL;
}

/*
 * wolfSSL calls this for every certificate of the client's chain
 * (WOLFSSL_VERIFY_CB_ALL_CERTS), the leaf last (depth 0), whether its own
 * checks passed (preverify 1) or not, right after checking it. We never
 * override a failure. We decide the certificate's signature, which
 * ecc_verify_cb left pending, and add one rule: the leaf must not be a CA
 * certificate (bad_certificate). At the leaf we copy it and the next
 * certificate: wolfSSL keeps them only with SESSION_CERTS.
 */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(
		store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *tc = ssl_conn(ssl);
	int depth = store->error_depth;
	bool have = store->certs && depth >= 0 && depth < store->totalCerts;
	if (tc && depth == 0)
		tc->certs_seen = true;
	if (!preverify) {
		if (tc) {
			free(tc->psig); /* refused anyway */
			tc->psig = NULL;
		}
		return 0;
	}
	if (tc) {
		if (!psig_settle(tc, have ? store->certs[depth].buffer : NULL,
				 have ? store->certs[depth].length : 0, depth))
			tc->sig_bad = true;
		if (tc->sig_bad)
			return 0;
	}
	if (depth != 0)
		return 1;
	if (!have)
		return 1; /* no certificate: wolfSSL applies require_cert */
	struct tls_cert_info ci;
	if (tls_cert_parse(store->certs[0].buffer, store->certs[0].length, &ci) != 0)
		return 0; /* wolfSSL took it, our parser (and registry) will not */
	if (ci.is_ca) {
		if (tc)
			tc->ca_leaf = true;
		return 0;
	}
	if (tc && peer_copy(tc, store->certs, store->totalCerts) != 0)
		return 0;
	return 1;
}

/* Leave a certificate's signature for verify_cb to decide: *result 1 for
 * now. A pending one not decided yet (wolfSSL called us twice before
 * verify_cb: not expected) is verified first, its failure remembered. */
static int psig_defer(struct tls_conn *tc, const uint8_t *sig,
		      unsigned int sig_len, const uint8_t *hash,
		      unsigned int hash_len, const uint8_t *key_der,
		      unsigned int key_len, int *result)
{
	if (tc->psig) {
		if (!psig_check(tc->psig))
			tc->sig_bad = true;
		free(tc->psig);
		tc->psig = NULL;
	}
	struct tls_psig *p = NULL;
	if (sig_len <= UINT16_MAX && hash_len <= UINT16_MAX && key_len <= UINT16_MAX)
		p = malloc(sizeof *p + sig_len + hash_len + key_len);
	if (!p)
		return ecc_check(sig, sig_len, hash, hash_len, key_der, key_len, result);
	p->sig_len = (uint16_t)sig_len;
	p->hash_len = (uint16_t)hash_len;
	p->key_len = (uint16_t)key_len;
	memcpy(p->b, sig, sig_len);
	memcpy(p->b + sig_len, hash, hash_len);
	memcpy(p->b + sig_len + hash_len, key_der, key_len);
	tc->psig = p;
	*result = 1;
	return 0;
}

/* wolfSSL's ECC verify PK callback: every ECDSA verification of the
 * handshake comes here. Until verify_cb has seen the leaf these are the
 * signatures of the client's certificates: which certificate is being
 * checked, and whether it is a leaf the registry knows (may_skip), only
 * verify_cb can tell, so they are decided there, before wolfSSL uses the
 * certificate (it adds a verified intermediate as a CA, keeps the leaf
 * only after verify_cb). After it: the CertificateVerify, checked here. */
static int ecc_verify_cb(WOLFSSL *ssl, const unsigned char *sig,
			 unsigned int sig_len, const unsigned char *hash,
			 unsigned int hash_len, const unsigned char *key_der,
			 unsigned int key_len, int *result, void *ctx)
{
	(void)ctx;
	struct tls_conn *tc = ssl_conn(ssl);
	*result = 0;
	if (tc && !tc->hs_done && !tc->certs_seen)
		return psig_defer(tc, sig, sig_len, hash, hash_len, key_der,
				  key_len, result);
	return ecc_check(sig, sig_len, hash, hash_len, key_der, key_len, result);
}

enum tls_fail tls_server_classify(struct tls_conn *tc, int e)
{
	if (tc->ca_leaf)
		return TLS_FAIL_CA_AS_LEAF;
	switch (e) {
	case ASN_NO_SIGNER_E:
		return TLS_FAIL_UNKNOWN_CA;
	case ASN_AFTER_DATE_E:
		return TLS_FAIL_EXPIRED;
	case ASN_BEFORE_DATE_E:
		return TLS_FAIL_NOT_YET_VALID;
	case NO_PEER_CERT:
		return TLS_FAIL_NO_CERT;
	case VERIFY_SIGN_ERROR:
	case SIG_VERIFY_E:
		return TLS_FAIL_KEY_PROOF;
	case KEYUSE_SIGNATURE_E:
	case KEYUSE_ENCIPHER_E:
	case EXTKEYUSE_AUTH_E:
	case ASN_SIG_CONFIRM_E:
	case ASN_PARSE_E:
	case VERIFY_CERT_ERROR:
	case ASN_SIG_OID_E:
	case ASN_SIG_KEY_E:
	case ASN_SIG_HASH_E:
	case MAX_CHAIN_ERROR:
	case ASN_PATHLEN_INV_E:
	case ASN_PATHLEN_SIZE_E:
	case NOT_CA_ERROR:
	case BAD_CERT_MANAGER_ERROR:
		return TLS_FAIL_BAD_CERT;
	default:
		return TLS_FAIL_PROTOCOL;
	}
}

const char *tls_fail_name(enum tls_fail f)
{
	switch (f) {
	case TLS_FAIL_NONE: return "none";
	case TLS_FAIL_UNKNOWN_CA: return "unknown_ca";
	case TLS_FAIL_EXPIRED: return "expired";
	case TLS_FAIL_NOT_YET_VALID: return "not_yet_valid";
	case TLS_FAIL_BAD_CERT: return "bad_certificate";
	case TLS_FAIL_CA_AS_LEAF: return "ca_as_leaf";
	case TLS_FAIL_NO_CERT: return "no_certificate";
	case TLS_FAIL_KEY_PROOF: return "key_proof";
	case TLS_FAIL_PROTOCOL: return "protocol";
	default: return "?";
	}
}

/* ----------------------------------------------------------- CTX build */

/* Load every anchor into a new CTX. wr_lock held (the list is stable). */
static int ctx_load_anchors(struct tls_server *srv, WOLFSSL_CTX *ctx)
{
	for (size_t i = 0; i < srv->n_cas; i++) {
		struct tls_idrec *a = srv->cas[i];
		if (wolfSSL_CTX_load_verify_buffer(ctx, a->der, (long)a->len,
						   WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
			return -EINVAL;
	}
	return 0;
}

/* Read the certificate chain and the key, and check that they belong
 * together (wolfSSL 5.5's own check passes some mismatched EC keys). */
static int read_cert_key(struct tls_server *srv, char **cert, size_t *cert_len,
			 char **key, size_t *key_len, char *err, size_t errlen)
{
	*cert = *key = NULL;
	int rc = tls_pki_file_read(srv->cert_file, 1 << 20, cert, cert_len);
	if (rc != 0) {
		set_err(err, errlen, "tls: cannot read certificate file '%s': %s",
			srv->cert_file, strerror(-rc));
		return rc;
	}
	rc = tls_pki_file_read(srv->key_file, 1 << 20, key, key_len);
	if (rc != 0) {
		set_err(err, errlen, "tls: cannot read key file '%s': %s",
			srv->key_file, strerror(-rc));
		goto fail;
	}
	rc = tls_pki_pem_pair_matches(*cert, *cert_len, *key, *key_len);
	if (rc == -EBADMSG) {
		set_err(err, errlen, "tls: '%s' holds no usable PEM certificate",
			srv->cert_file);
		rc = -EINVAL;
		goto fail;
	}
	if (rc < 0) {
		set_err(err, errlen, "tls: '%s' holds no usable PEM private key%s",
			srv->key_file, rc == -EOPNOTSUPP ?
			" (encrypted keys and exotic curves are not supported)" : "");
		rc = rc == -ENOMEM ? -ENOMEM : -EINVAL;
		goto fail;
	}
	if (rc == 0) {
		set_err(err, errlen, "tls: the key in '%s' does not match the "
			"certificate in '%s'", srv->key_file, srv->cert_file);
		rc = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	free(*cert);
	free(*key);
	*cert = *key = NULL;
	return rc;
}

static WOLFSSL_CTX *ctx_build(struct tls_server *srv, int *rc, char *err,
			      size_t errlen)
{
	char *cert, *key;
	size_t cert_len, key_len;
	*rc = read_cert_key(srv, &cert, &cert_len, &key, &key_len, err, errlen);
	if (*rc != 0)
		return NULL;
	*rc = -EINVAL;
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
	if (!ctx) {
		*rc = -ENOMEM;
		set_err(err, errlen, "tls: out of memory");
		goto fail;
	}
	if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_cipher_list(ctx, tls_ciphers) != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "tls: cannot set protocol versions and ciphers");
		goto fail;
	}
	if (wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)cert,
						     (long)cert_len) != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "tls: wolfSSL does not take the certificates in '%s'",
			srv->cert_file);
		goto fail;
	}
	if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)key, (long)key_len,
					      WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "tls: wolfSSL does not take the key in '%s'",
			srv->key_file);
		goto fail;
	}
	memset(key, 0, key_len);
	free(key);
	free(cert);
	key = cert = NULL;
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER |
			       (srv->require_cert ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			       verify_cb);
	/* with it an empty Certificate gets its alert in TLS 1.2 too */
	wolfSSL_CTX_mutual_auth(ctx, srv->require_cert);
	/* tickets: ours; TLS 1.3 ones are sent by conn.c at the first flush */
	wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb);
	wolfSSL_CTX_set_TicketEncCtx(ctx, srv);
	wolfSSL_CTX_set_num_tickets(ctx, 0);
	wolfSSL_CTX_set_timeout(ctx, TLS_SESSION_LIFETIME_S);
	wolfSSL_CTX_set_TicketHint(ctx, TLS_SESSION_LIFETIME_S);
	/* session IDs: our cache only */
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_SERVER |
					   WOLFSSL_SESS_CACHE_NO_INTERNAL);
	wolfSSL_CTX_sess_set_new_cb(ctx, sess_new_cb);
	wolfSSL_CTX_sess_set_get_cb(ctx, sess_get_cb);
	wolfSSL_CTX_SetEccVerifyCb(ctx, ecc_verify_cb);
	if (ctx_load_anchors(srv, ctx) != 0) {
		set_err(err, errlen, "tls: a trust anchor no longer loads");
		goto fail;
	}
	*rc = 0;
	return ctx;
fail:
	if (key)
		memset(key, 0, key_len);
	free(key);
	free(cert);
	wolfSSL_CTX_free(ctx);
	return NULL;
}

/*
 * Swap in a new CTX for new handshakes; the old one goes with its last
 * connection (wolfSSL counts a reference per WOLFSSL).
 *
 * wolfSSL_CTX_free() must not run on one CTX from two threads at once: in
 * this build it first frees ctx->srp without a lock, whatever the count.
 * So nobody but the swapper (and tls_server_free) calls it: a new WOLFSSL
 * is made under the read side of ctx_lock instead of with a reference of
 * our own, and wolfSSL_free() drops a connection's reference without that
 * step.
 */
static void ctx_swap(struct tls_server *srv, WOLFSSL_CTX *ctx)
{
	pthread_rwlock_wrlock(&srv->ctx_lock);
	WOLFSSL_CTX *old = srv->ctx;
	srv->ctx = ctx;
	pthread_rwlock_unlock(&srv->ctx_lock);
	wolfSSL_CTX_free(old);
}

WOLFSSL *tls_server_new_ssl(struct tls_server *srv)
{
	pthread_rwlock_rdlock(&srv->ctx_lock);
	WOLFSSL *ssl = wolfSSL_new(srv->ctx); /* takes its own reference */
	pthread_rwlock_unlock(&srv->ctx_lock);
	return ssl;
}

/* ----------------------------------------------------------- lifecycle */

int tls_server_new(struct tls_server **out, const char *cert_file,
		   const char *key_file, bool require_cert, char *err,
		   size_t errlen)
{
	*out = NULL;
	if (!cert_file || !key_file) {
		set_err(err, errlen, "tls: a certificate and a key are needed (--cert, --key)");
		return -EINVAL;
	}
	struct tls_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		set_err(err, errlen, "tls: out of memory");
		return -ENOMEM;
	}
	if (strlen(cert_file) >= sizeof srv->cert_file ||
	    strlen(key_file) >= sizeof srv->key_file) {
		free(srv);
		set_err(err, errlen, "tls: file name too long");
		return -ENAMETOOLONG;
	}
	strcpy(srv->cert_file, cert_file);
	strcpy(srv->key_file, key_file);
	srv->require_cert = require_cert;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* a swap waits for no stream of new connections */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&srv->ctx_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&srv->wr_lock, NULL);
	pthread_mutex_init(&srv->ca_lock, NULL);
	pthread_mutex_init(&srv->tk_lock, NULL);
	pthread_mutex_init(&srv->id_lock, NULL);
	pthread_mutex_init(&srv->ss_lock, NULL);
	pthread_mutex_init(&srv->hook_lock, NULL);
	srv->id_tab = calloc(TLS_IDCACHE_BUCKETS, sizeof *srv->id_tab);
	srv->ss_tab = calloc(TLS_SESSCACHE_BUCKETS, sizeof *srv->ss_tab);
	if (!srv->id_tab || !srv->ss_tab) {
		set_err(err, errlen, "tls: out of memory");
		free(srv->id_tab);
		free(srv->ss_tab);
		free(srv);
		return -ENOMEM;
	}
	wolfSSL_Init();
	tk_rotate_locked(srv); /* no other thread yet */
	int rc;
	srv->ctx = ctx_build(srv, &rc, err, errlen);
	if (!srv->ctx) {
		tls_server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

void tls_server_free(struct tls_server *srv)
{
	if (!srv)
		return;
	wolfSSL_CTX_free(srv->ctx);
	for (size_t i = 0; i < srv->n_cas; i++)
		tls_idrec_unref(srv->cas[i]);
	free(srv->cas);
	while (srv->lru_head) {
		struct tls_idrec *r = srv->lru_head;
		id_remove(srv, r);
		tls_idrec_unref(r);
	}
	free(srv->id_tab);
	while (srv->ss_old) {
		struct tls_sess *s = srv->ss_old;
		srv->ss_old = s->fnext;
		free(s);
	}
	free(srv->ss_tab);
	memset(&srv->tk_cur, 0, sizeof srv->tk_cur);
	memset(&srv->tk_prev, 0, sizeof srv->tk_prev);
	pthread_rwlock_destroy(&srv->ctx_lock);
	pthread_mutex_destroy(&srv->wr_lock);
	pthread_mutex_destroy(&srv->ca_lock);
	pthread_mutex_destroy(&srv->tk_lock);
	pthread_mutex_destroy(&srv->id_lock);
	pthread_mutex_destroy(&srv->ss_lock);
	pthread_mutex_destroy(&srv->hook_lock);
	free(srv);
	wolfSSL_Cleanup();
}

/* A CA certificate as a record, checked: parses, is a CA. */
static int anchor_rec(const uint8_t *der, size_t len, struct tls_idrec **out)
{
	struct tls_cert_info ci;
	if (!der || len == 0 || tls_cert_parse(der, len, &ci) != 0 || !ci.is_ca)
		return -EINVAL;
	struct tls_idrec *r = idrec_alloc(ci.id, der, len);
	if (!r)
		return -ENOMEM;
	r->subj_off = (uint32_t)(ci.subject.ptr - der);
	r->subj_len = (uint32_t)ci.subject.len;
	if (ci.skid.len) {
		r->skid_off = (uint32_t)(ci.skid.ptr - der);
		r->skid_len = (uint32_t)ci.skid.len;
	}
	*out = r;
	return 0;
}

int tls_server_add_ca_mt(struct tls_server *srv, const uint8_t *der, size_t len)
{
	struct tls_idrec *a;
	int rc = anchor_rec(der, len, &a);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&srv->wr_lock);
	for (size_t i = 0; i < srv->n_cas; i++)
		if (memcmp(srv->cas[i]->id, a->id, TLS_CERT_ID_LEN) == 0) {
			pthread_mutex_unlock(&srv->wr_lock);
			tls_idrec_unref(a);
			return 0;
		}
	if (srv->n_cas == srv->cap_cas) {
		/* shards read the list under ca_lock: swap in a copy */
		size_t nc = srv->cap_cas ? srv->cap_cas * 2 : 16;
		struct tls_idrec **n = malloc(nc * sizeof *n);
		if (!n) {
			pthread_mutex_unlock(&srv->wr_lock);
			tls_idrec_unref(a);
			return -ENOMEM;
		}
		if (srv->n_cas)
			memcpy(n, srv->cas, srv->n_cas * sizeof *n);
		pthread_mutex_lock(&srv->ca_lock);
		struct tls_idrec **old = srv->cas;
		srv->cas = n;
		srv->cap_cas = nc;
		pthread_mutex_unlock(&srv->ca_lock);
		free(old);
	}
	/* The live CTX's certificate manager locks its own table; wr_lock
	 * keeps the CTX from being swapped meanwhile. */
	int w = wolfSSL_CertManagerLoadCABuffer(wolfSSL_CTX_GetCertManager(srv->ctx),
						der, (long)len, WOLFSSL_FILETYPE_ASN1);
	if (w != WOLFSSL_SUCCESS) {
		pthread_mutex_unlock(&srv->wr_lock);
		tls_idrec_unref(a);
		return -EINVAL;
	}
	pthread_mutex_lock(&srv->ca_lock);
	srv->cas[srv->n_cas++] = a;
	pthread_mutex_unlock(&srv->ca_lock);
	pthread_mutex_unlock(&srv->wr_lock);
	return 0;
}

int tls_server_set_cas_mt(struct tls_server *srv, const uint8_t *const *ders,
			  const size_t *lens, size_t n)
{
	struct tls_idrec **set = calloc(n ? n : 1, sizeof *set);
	if (!set)
		return -ENOMEM;
	size_t k = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct tls_idrec *a;
		rc = anchor_rec(ders[i], lens[i], &a);
		if (rc != 0)
			break;
		bool dup = false;
		for (size_t j = 0; j < k; j++)
			dup |= memcmp(set[j]->id, a->id, TLS_CERT_ID_LEN) == 0;
		if (dup)
			tls_idrec_unref(a);
		else
			set[k++] = a;
	}
	if (rc != 0) {
		for (size_t j = 0; j < k; j++)
			tls_idrec_unref(set[j]);
		free(set);
		return rc;
	}
	pthread_mutex_lock(&srv->wr_lock);
	pthread_mutex_lock(&srv->ca_lock);
	struct tls_idrec **old = srv->cas;
	size_t old_n = srv->n_cas;
	srv->cas = set;
	srv->n_cas = k;
	srv->cap_cas = n ? n : 1;
	pthread_mutex_unlock(&srv->ca_lock);
	WOLFSSL_CTX *ctx = ctx_build(srv, &rc, NULL, 0);
	if (!ctx) {
		/* put the old set back: nothing changed */
		pthread_mutex_lock(&srv->ca_lock);
		srv->cas = old;
		srv->n_cas = old_n;
		srv->cap_cas = old_n ? old_n : 1;
		pthread_mutex_unlock(&srv->ca_lock);
		pthread_mutex_unlock(&srv->wr_lock);
		for (size_t j = 0; j < k; j++)
			tls_idrec_unref(set[j]);
		free(set);
		return rc;
	}
	/* Tickets and cached sessions made under the old set stop resuming
	 * before the new CTX takes handshakes. */
	atomic_fetch_add_explicit(&srv->trust_epoch, 1, memory_order_acq_rel);
	ctx_swap(srv, ctx);
	pthread_mutex_unlock(&srv->wr_lock);
	for (size_t j = 0; j < old_n; j++)
		tls_idrec_unref(old[j]);
	free(old);
	return 0;
}

int tls_server_reload(struct tls_server *srv, char *err, size_t errlen)
{
	int rc;
	pthread_mutex_lock(&srv->wr_lock);
	WOLFSSL_CTX *ctx = ctx_build(srv, &rc, err, errlen);
	if (ctx)
		ctx_swap(srv, ctx);
	pthread_mutex_unlock(&srv->wr_lock);
	return ctx ? 0 : rc;
}

void tls_thread_exit(void)
{
#ifdef FP_ECC
	wc_ecc_fp_free(); /* this thread's cache of ECC points */
#endif
}

void tls_server_set_known_mt(struct tls_server *srv, tls_known_fn known, void *ctx)
{
	pthread_mutex_lock(&srv->hook_lock);
	srv->known = known;
	srv->known_ctx = ctx;
	pthread_mutex_unlock(&srv->hook_lock);
}

void tls_server_stats_mt(struct tls_server *srv, struct tls_stats *out)
{
	memset(out, 0, sizeof *out);
	out->handshakes_full = atomic_load_explicit(&srv->st.full, memory_order_relaxed);
	out->handshakes_resumed = atomic_load_explicit(&srv->st.resumed, memory_order_relaxed);
	out->refused = atomic_load_explicit(&srv->st.refused, memory_order_relaxed);
	out->tickets_issued = atomic_load_explicit(&srv->st.tickets, memory_order_relaxed);
	out->tickets_rejected = atomic_load_explicit(&srv->st.tickets_rejected, memory_order_relaxed);
	out->sig_checks_skipped = atomic_load_explicit(&srv->st.skipped, memory_order_relaxed);
	for (int i = 0; i < TLS_FAIL_N; i++)
		out->fail[i] = atomic_load_explicit(&srv->st.fail[i], memory_order_relaxed);
	pthread_mutex_lock(&srv->id_lock);
	out->idcache_entries = srv->id_n;
	pthread_mutex_unlock(&srv->id_lock);
	pthread_mutex_lock(&srv->ss_lock);
	out->sesscache_entries = srv->ss_n;
	pthread_mutex_unlock(&srv->ss_lock);
}
