/*
 * The shard runtime: threads, io_uring loops, connections, cross-shard
 * messages and timers. Functions without _mt run on the calling shard's own
 * thread only and take that shard as `sh`.
 */
#ifndef VOUCH_CORE_SHARD_H
#define VOUCH_CORE_SHARD_H

#include <stddef.h>

#include "core/shard-t.h"

/* Set up n shards: rings, eventfds, one SO_REUSEPORT socket per listener per
 * shard (so a busy port fails here, with a clear message in err). Main
 * thread. 0 or -errno. */
int rt_init(struct broker_rt *rt, const struct vouch_config *cfg,
	    const struct shard_ops *ops, char *err, size_t errlen);
/* Start the shard threads and wait until all listen. Main thread. */
int rt_start(struct broker_rt *rt);
/* Orderly stop: phase 1 lets every shard act (wills), phase 2 closes
 * connections and exits the loops; then the threads are joined. Main. */
void rt_stop(struct broker_rt *rt);
void rt_destroy(struct broker_rt *rt);

/* Post a message to shard `to` (may be sh->id itself: then it is queued to
 * the shard's own ring and seen next turn). Never blocks: a full ring keeps
 * the message in a per-destination backlog, order preserved. The peer is
 * woken once at the end of the turn. Returns 0 or -ENOMEM. */
int shard_post(struct shard *sh, int to, const struct xmsg *m);
/* Post from the one non-shard producer (registrar/main). Returns 0, or
 * -EAGAIN when the ring is full (the caller retries). Any single thread. */
int rt_post_external_mt(struct broker_rt *rt, int to, const struct xmsg *m);

/* Arm a timer on the shard (see core/timer.h for lazy deletion). */
int shard_timer(struct shard *sh, uint64_t at_ms, uint32_t kind, uint32_t id,
		uint32_t gen);

/* The connection in slot with that generation, or NULL if it is gone. */
struct conn *shard_conn(struct shard *sh, uint32_t slot, uint32_t gen);

/* Queue bytes for sending (copied). 0 or -ENOMEM. */
int conn_write(struct shard *sh, struct conn *c, const void *p, uint32_t n);
/* Reserve n contiguous bytes in the output (n <= OUTBLK_SIZE), to encode
 * into, then conn_commit the number actually written. NULL on -ENOMEM. */
uint8_t *conn_reserve(struct shard *sh, struct conn *c, uint32_t n);
void conn_commit(struct shard *sh, struct conn *c, uint32_t n);
/* Queue a range of a shared object; takes one reference, released through
 * ops->release_ref once sent or dropped. 0 or -ENOMEM (ref released). */
int conn_write_ref(struct shard *sh, struct conn *c, const void *p, uint32_t n,
		   void *ref);
/* Close: with flush, what is queued is sent first (bounded by a deadline),
 * then the socket is shut down; ops->on_closed runs when nothing is in
 * flight any more. Safe to call more than once. */
void conn_close(struct shard *sh, struct conn *c, bool flush);

/* The peer's address as text ("1.2.3.4:5678", "[::1]:5678") in buf, which
 * CONN_PEER_TEXT bytes always hold. Returns buf. */
#define CONN_PEER_TEXT 56
const char *conn_peer_text(const struct conn *c, char *buf, size_t len);
/* The same in a buffer of the enclosing block (for log lines). */
#define CONN_PEER(c) conn_peer_text((c), (char[CONN_PEER_TEXT]){ 0 }, CONN_PEER_TEXT)
/* Stop / restart reading from the socket (backpressure). While paused,
 * what was read already waits in c->in; resuming offers it to the layer
 * above first, then reads more. */
void conn_pause_input(struct shard *sh, struct conn *c);
void conn_resume_input(struct shard *sh, struct conn *c);
/* conn_pause_input for flow control (a publisher held back), counted in
 * vouch_flow_paused_total; nothing if c's input is paused already. */
void conn_pause_flow(struct shard *sh, struct conn *c);
/* Flow control between shards: true while so many messages wait for full
 * rings to other shards that input producing more should stop. */
bool shard_backlogged(const struct shard *sh);
/* Pause c's input until the backlog has drained; then it is resumed
 * (conn_resume_input). */
void conn_wait_backlog(struct shard *sh, struct conn *c);
/* Hand the connection to another shard: input stops, in-flight operations
 * finish, then cb(sh, c) runs with c still valid; cb calls conn_export to
 * take fd, buffers and transport out, after which c is freed silently (no
 * on_closed). Only before any output is queued. */
int conn_detach(struct shard *sh, struct conn *c,
		void (*cb)(struct shard *sh, struct conn *c));
void conn_export(struct shard *sh, struct conn *c, struct conn_xfer *x);
/* Adopt a connection exported by another shard: ops->on_open, then its
 * pending input is offered. Returns 0 or -errno (fd closed then). */
int shard_adopt(struct shard *sh, struct conn_xfer *x);
/* Send an exported connection to shard `to` in message m (whose p is x):
 * like shard_post, except that a direct descriptor travels by MSG_RING into
 * the target ring's table and m is delivered (to ops->on_xmsg) only once it
 * is there. If the move fails later, discard(m) runs on this shard. 0, or
 * -errno with x->fd closed and set to -1 (the caller then discards m). */
int shard_post_conn(struct shard *sh, int to, const struct xmsg *m, struct conn_xfer *x,
		    void (*discard)(const struct xmsg *m));

/* Offer plaintext input to the layer above (transports call this). 0 or
 * -ENOMEM. */
int conn_deliver_input(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n);

/* Transports: queue wire bytes (ciphertext), copied. 0 or -ENOMEM. */
int conn_write_wire(struct shard *sh, struct conn *c, const void *p, uint32_t n);
/* Transports: take every plaintext segment out of the output queue, in
 * order, and call enc(ctx, bytes, len) for each (enc appends the wire bytes
 * with conn_write_wire). Wire order is encryption order. 0 or enc's < 0. */
int conn_encrypt_pending(struct shard *sh, struct conn *c,
			 int (*enc)(void *ctx, const uint8_t *p, uint32_t n), void *ctx);
/* Offer the input kept in c->in again (after a pause of the layer above,
 * e.g. while an identity decision was pending). */
void conn_reoffer_input(struct shard *sh, struct conn *c);

/* Bytes queued for output and not yet sent. */
static inline uint64_t conn_out_pending(const struct conn *c) { return c->out_queued; }

/* Internal to core/: the io backends (io_fast.c, io_compat.c). */
struct io_backend {
	const char *name;
	int (*setup)(struct shard *sh);
	void (*arm_accept)(struct shard *sh, int li);
	void (*arm_recv)(struct shard *sh, struct conn *c);
	/* Where the bytes of a recv completion are; *bid is set for a ring
	 * buffer to give back with recycle(). */
	const uint8_t *(*recv_data)(struct shard *sh, struct conn *c,
				    const struct io_uring_cqe *cqe, int *bid);
	void (*recycle)(struct shard *sh, int bid);
	void (*wake)(struct shard *sh, struct shard *peer);
	void (*teardown)(struct shard *sh);
};
extern const struct io_backend io_fast;
extern const struct io_backend io_compat;

/* user_data layout: op (8 bits) | slot (24 bits) | generation (32 bits) */
enum io_op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_WAKE, OP_EVENTFD, OP_CANCEL,
	     OP_INSTALL,     /* accepted socket into the table */
	     OP_ADOPT,       /* a moved descriptor arrived: bits 8.. = conn_xfer */
	     OP_XFER_SENT,   /* our MSG_RING of one: bits 8.. = conn_xfer */
	     OP_ACCEPT_AGAIN }; /* accept backs off after EMFILE: slot = listener */
static inline uint64_t io_ud(enum io_op op, uint32_t slot, uint32_t gen)
{
	return (uint64_t)op | ((uint64_t)(slot & 0xffffff) << 8) | ((uint64_t)gen << 32);
}
struct io_uring_sqe *shard_sqe(struct shard *sh);

/* core/direct.c: entries for each ring's table, or 0 and *why. */
uint32_t direct_probe(const struct vouch_config *cfg, int shards, const char **why);
void direct_prep_install(struct io_uring_sqe *sqe, int *fdp);
void direct_prep_send(struct io_uring_sqe *sqe, int target_ring_fd, int index, uint64_t target_ud);

#endif
