/*
 * tls/server.h - mutual TLS (wolfSSL, TLS 1.2 and 1.3) as a transport of
 * the shard runtime.
 *
 * One struct tls_server holds the broker's certificate and key, the trust
 * anchors (registered CA certificates), the session-ticket keys and the
 * caches shared by every shard. Each connection accepted on a TLS listener
 * gets its own WOLFSSL object (tls_conn_start) that never touches the
 * socket: io_uring moves the bytes, wolfSSL reads ciphertext from the
 * connection's buffer and writes ciphertext into its output queue.
 *
 * Threads: tls_server_new/free and tls_server_reload run on the main
 * thread; the _mt functions on any thread; tls_conn_* on the shard that
 * owns the connection.
 */
#ifndef VOUCH_TLS_SERVER_H
#define VOUCH_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/shard-t.h"
#include "tls/server-t.h"

/* The transport installed on TLS connections (c->tr == &tls_transport). */
extern const struct transport tls_transport;

/*
 * tls_server_new - load the broker's certificate (PEM; a chain file, leaf
 * first, is fine) and private key (PEM), and set up a TLS 1.2 + 1.3 server
 * that asks for a client certificate and verifies it against the trust
 * anchors added later (none at first). require_cert: a handshake without a
 * client certificate fails (alert certificate_required in TLS 1.3,
 * handshake_failure in 1.2); otherwise such a client gets no identity.
 * Returns 0 with *out set, or -errno (-ENOENT, -EINVAL for a bad file or a
 * key that does not match the certificate, -ENOMEM) with a message in err.
 * Main thread, before the shards start.
 */
int tls_server_new(struct tls_server **out, const char *cert_file,
		   const char *key_file, bool require_cert, char *err,
		   size_t errlen);

/*
 * tls_server_free - release everything. Only once no connection uses the
 * server any more (after rt_stop). NULL is fine. Main thread.
 */
void tls_server_free(struct tls_server *srv);

/*
 * tls_server_add_ca_mt - add a trust anchor (a CA certificate, DER): new
 * handshakes accept chains that end at it. Adding the same certificate
 * twice is harmless. Returns 0, -EINVAL (not a certificate, or not a CA),
 * -ENOMEM. Any thread (the registrar), while shards handshake.
 */
int tls_server_add_ca_mt(struct tls_server *srv, const uint8_t *der,
			 size_t len);

/*
 * tls_server_set_cas_mt - replace the trust anchors by exactly this set
 * (a CA was deleted or deactivated): builds a new WOLFSSL_CTX and swaps it
 * in for new handshakes; live connections keep theirs. Session tickets and
 * cached sessions issued before the call stop resuming (their clients do a
 * full handshake against the new set). Returns 0 or -errno (-EINVAL: one of
 * the certificates is bad; nothing changed then). Any thread.
 */
int tls_server_set_cas_mt(struct tls_server *srv, const uint8_t *const *ders,
			  const size_t *lens, size_t n);

/*
 * tls_server_reload - SIGHUP: read the certificate and key files again and
 * swap in a new WOLFSSL_CTX for new handshakes, without dropping any
 * connection (each keeps its CTX; an old CTX is freed with its last
 * connection). Trust anchors, ticket keys and caches carry over, so
 * clients keep resuming. Returns 0, or -errno with a message in err (the
 * running configuration is then unchanged). Main thread.
 */
int tls_server_reload(struct tls_server *srv, char *err, size_t errlen);

/*
 * tls_server_set_known_mt - install the fingerprint-cache hook (or NULL).
 * When a client's leaf certificate ID is known good, the CA's ECDSA
 * signature over the leaf is not verified again (wolfSSL's PK verify
 * callback answers for it). Names, dates, the chain to an anchor and the
 * CertificateVerify signature (the proof that the client holds the key)
 * are always checked. RSA signatures are always verified (cheap). Any
 * thread.
 */
void tls_server_set_known_mt(struct tls_server *srv, tls_known_fn known,
			     void *ctx);

/*
 * tls_server_rotate_ticket_key_mt - start a new session-ticket key now
 * (keys also rotate by themselves every few hours). Tickets made with the
 * key before the previous one stop resuming. Any thread.
 */
void tls_server_rotate_ticket_key_mt(struct tls_server *srv);

/* tls_server_stats_mt - counters snapshot. Any thread. */
void tls_server_stats_mt(struct tls_server *srv, struct tls_stats *out);

/*
 * tls_thread_exit - release what wolfCrypt keeps per thread (its ECC point
 * cache). Call at the end of every thread that ran handshakes (a shard's
 * on_stop), or LeakSanitizer reports it.
 */
void tls_thread_exit(void);

/* A short name for a failure reason, for logs ("unknown_ca", ...). */
const char *tls_fail_name(enum tls_fail f);

/*
 * tls_conn_start - attach TLS to a just-accepted connection: sets c->tr and
 * c->tr_ctx. Call from ops->on_open for connections of TLS listeners,
 * before any byte is read. Returns 0 or -ENOMEM (the caller closes the
 * connection). Shard thread of c.
 */
int tls_conn_start(struct shard *sh, struct conn *c, struct tls_server *srv);

/*
 * tls_conn_identity - the client's verified identity, or NULL: not a TLS
 * connection, handshake not done, or no client certificate (only possible
 * without require_cert). Valid until c is freed. Shard thread of c.
 */
const struct tls_identity *tls_conn_identity(const struct conn *c);

/* tls_conn_handshake_done - true once the TLS handshake completed. */
bool tls_conn_handshake_done(const struct conn *c);

/* tls_conn_is_tls - true when c runs over this transport. */
bool tls_conn_is_tls(const struct conn *c);

/*
 * tls_conn_refuse - for refusals decided after the handshake: queue what
 * the layer above already wrote (e.g. a CONNACK with a reason code), then
 * a fatal alert `alert` (e.g. TLS_ALERT_ACCESS_DENIED), and close with a
 * flush. Nothing written afterwards is sent. If the suite is not an AEAD
 * one we can frame ourselves, a close_notify is sent instead. Not a TLS
 * connection or handshake not done: just conn_close(flush). Shard thread.
 */
void tls_conn_refuse(struct shard *sh, struct conn *c, int alert);

#endif
