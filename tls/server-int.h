/*
 * tls/server-int.h - what tls/server.c and tls/conn.c share and nothing
 * outside tls/ may see: struct tls_server, the per-connection state, the
 * shared identity records and the hooks between the two files.
 *
 * Locking (every lock is held for a few hundred nanoseconds at most, never
 * across a wolfSSL handshake step or a system call that can block):
 *   ctx_lock   rwlock: the current WOLFSSL_CTX (read side held during
 *              wolfSSL_new, write side to swap it)
 *   wr_lock    writers of CTX and trust anchors (add_ca, set_cas, reload)
 *   ca_lock    the anchor list read by shards to find a leaf's issuer
 *   tk_lock    ticket keys
 *   id_lock    identity records (hash + LRU)
 *   ss_lock    TLS 1.2 session-ID cache
 *   hook_lock  the known-fingerprint hook
 */
#ifndef VOUCH_TLS_SERVER_INT_H
#define VOUCH_TLS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "tls/server.h"

/* Ticket keys rotate every TLS_TICKET_ROTATE_S; a key decrypts for two
 * periods; sessions and tickets live TLS_SESSION_LIFETIME_S. */
#define TLS_TICKET_ROTATE_S (4 * 3600)
#define TLS_SESSION_LIFETIME_S (4 * 3600)
#define TLS_IDCACHE_MAX 16384      /* identity records kept for resumption */
#define TLS_IDCACHE_BUCKETS 16384
#define TLS_SESSCACHE_MAX 4096     /* TLS 1.2 session-ID resumption */
#define TLS_SESSCACHE_BUCKETS 4096
#define TLS_SESSCACHE_ENTRY_MAX 16384 /* serialized session, chain included */

/*
 * A certificate the broker has seen a client prove (or an issuer of one):
 * immutable after creation except `issuer`, which is set once under
 * id_lock. Reference-counted: the cache holds one reference while the
 * record is in its table, each connection whose identity it is holds one.
 */
struct tls_idrec {
	struct tls_idrec *hnext;           /* hash chain (id_lock) */
	struct tls_idrec *lprev, *lnext;   /* LRU, most recent first (id_lock) */
	_Atomic uint32_t refs;
	bool in_table;                     /* id_lock */
	struct tls_idrec *issuer;          /* a reference, or NULL (id_lock) */
	uint8_t id[TLS_CERT_ID_LEN];
	/* trust anchors only: where the subject and subjectKeyIdentifier
	 * lie in der (to match a leaf's issuer without parsing) */
	uint32_t subj_off, subj_len, skid_off, skid_len;
	uint32_t len;
	uint8_t der[];
};

struct tls_tkey {
	uint8_t name[8];                   /* random, in the ticket's key_name */
	uint8_t key[32];                   /* ChaCha20-Poly1305 */
	int64_t born;                      /* CLOCK_MONOTONIC seconds */
	bool valid;
};

struct tls_sess;

/* A certificate signature wolfSSL asked ecc_verify_cb to check while it
 * processed the client's Certificate message: decided in verify_cb, which
 * wolfSSL calls next and which sees the certificate (verify_cb in
 * server.c). */
struct tls_psig {
	uint16_t sig_len, hash_len, key_len;
	uint8_t b[];                       /* sig, hash, key */
};

struct tls_server {
	char cert_file[4096];
	char key_file[4096];
	bool require_cert;

	pthread_rwlock_t ctx_lock;
	WOLFSSL_CTX *ctx;                  /* for new handshakes (ctx_lock) */

	pthread_mutex_t wr_lock;
	pthread_mutex_t ca_lock;
	struct tls_idrec **cas;            /* trust anchors, as records */
	size_t n_cas, cap_cas;
	_Atomic uint32_t trust_epoch;      /* +1 when anchors are removed */

	pthread_mutex_t tk_lock;
	struct tls_tkey tk_cur, tk_prev;

	pthread_mutex_t id_lock;
	struct tls_idrec **id_tab;
	struct tls_idrec *lru_head, *lru_tail;
	size_t id_n;

	pthread_mutex_t ss_lock;
	struct tls_sess **ss_tab;
	struct tls_sess *ss_old, *ss_new;  /* FIFO for eviction */
	size_t ss_n;

	pthread_mutex_t hook_lock;
	tls_known_fn known;
	void *known_ctx;

	struct {
		_Atomic uint64_t full, resumed, refused, tickets, tickets_rejected,
			skipped;
		_Atomic uint64_t fail[TLS_FAIL_N];
	} st;
};

/* Per connection: c->tr_ctx. Moves between shards with the connection. */
struct tls_conn {
	WOLFSSL *ssl;
	struct tls_server *srv;
	struct shard *sh;                  /* owner now: set on each entry */
	struct conn *c;
	/* ciphertext received and not yet read by wolfSSL */
	uint8_t *cin;
	uint32_t cin_off, cin_len, cin_cap;
	/* zero-copy input of the current on_bytes call */
	const uint8_t *src;
	uint32_t src_len;
	bool seen;                         /* some bytes arrived */
	bool hs_done;
	bool failed;                       /* fatal error: no more TLS I/O */
	bool refused;                      /* alert sent: drop further output */
	bool ticket_due;                   /* TLS 1.3: send a ticket at the
					      first flush of plaintext */
	bool ca_leaf;                      /* verify callback: CA as leaf */
	bool tk_rejected;                  /* counted a refused ticket */
	uint8_t fail;                      /* enum tls_fail, once failed */
	/* wolfSSL decrypts a TLS 1.3 ticket in place, once per candidate
	 * suite, and wipes it in between: the first result, replayed */
	uint8_t *tk_plain;
	const uint8_t *tk_ptr;
	int tk_inlen, tk_outlen, tk_ret;
	uint8_t tk_mac[16];
	bool rec_chain;                    /* rec comes from this handshake's
					      chain (not from a resumption) */
	/* During the handshake only (tls_server_hs_forget): the client's
	 * leaf and the next certificate it presented, copied by verify_cb
	 * (wolfSSL keeps no chain without SESSION_CERTS, which would cost
	 * 37 KB per connection for its whole life), and a pending
	 * certificate signature. */
	uint8_t *peer;                     /* leaf DER, then the next one */
	uint32_t peer_len, peer_next_len;
	struct tls_psig *psig;
	bool certs_seen;                   /* verify_cb has seen the leaf */
	bool sig_bad;                      /* a pending signature failed */
	struct tls_idrec *rec;             /* identity record (a reference) */
	struct tls_idrec *issuer;          /* its issuer (a reference) */
	struct tls_identity ident;
};

/* server.c, for conn.c. All run on the connection's shard thread. */

/* A WOLFSSL for a new connection from the current CTX (it holds its own
 * reference on that CTX), or NULL on -ENOMEM. */
WOLFSSL *tls_server_new_ssl(struct tls_server *srv);
/* Drop one reference on an identity record (NULL is fine); the last one
 * frees it and drops its issuer. */
void tls_idrec_unref(struct tls_idrec *r);
/* The identity of a full handshake, from the certificates verify_cb
 * copied (tc->peer): tc->rec and tc->issuer get references to the records
 * of the leaf and of its issuer (the next certificate presented, else the
 * matching anchor). No certificate: both NULL. 0, -EINVAL, -ENOMEM. */
int tls_server_identity_from_chain(struct tls_server *srv, struct tls_conn *tc);
/* Free what only the handshake needed (tc->peer, tc->psig). */
void tls_server_hs_forget(struct tls_conn *tc);
/* Why a handshake failed, from wolfSSL's error and what our callbacks
 * saw. */
enum tls_fail tls_server_classify(struct tls_conn *tc, int wolf_err);
static inline void tls_count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

#endif
