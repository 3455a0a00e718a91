/*
 * Shard and connection types. A shard is one pthread pinned to a core that
 * owns an io_uring ring, its connections and everything the layers above
 * hang on it (sh->upper). Nothing here is touched by another thread except
 * the fields marked "shared", which are atomics on their own cache lines.
 */
#ifndef VOUCH_CORE_SHARD_T_H
#define VOUCH_CORE_SHARD_T_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/config-t.h"
#include "core/log.h"
#include "core/spsc-t.h"
#include "core/timer.h"

struct shard;
struct conn;

/* Output: a connection's bytes to send are a queue of segments, each either
 * a range of one of the connection's own blocks, or a range of a shared,
 * reference-counted object (a message payload) released when sent. */
#define OUTBLK_SIZE 16384
struct outblk {
	struct outblk *next;
	uint32_t used;
	uint32_t refs;             /* segments pointing into this block */
	uint8_t data[OUTBLK_SIZE];
};

struct outseg {
	const uint8_t *p;
	uint32_t len;
	struct outblk *blk;        /* owning block, or NULL for a shared ref */
	void *ref;                 /* shared object to release, or NULL */
	bool wire;                 /* bytes as they go on the wire (a transport's
				      own output); false = plaintext for it */
};

#define CONN_MAX_IOV 16        /* iovecs of an ordinary send */
#define CONN_BIG_IOV 1024      /* for a busy one (UIO_MAXIOV), allocated on demand */

/* The sendmsg of a connection's output: the kernel reads it until the
 * send completes. Allocated while output is queued (an idle connection
 * keeps none: 300 bytes of every connection). */
struct conn_tx {
	struct msghdr mh;
	struct iovec iov[CONN_MAX_IOV];
};

/* A peer's address: IPv4 or IPv6 (28 bytes, not sockaddr_storage's 128). */
union conn_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/*
 * A transport sits between the socket and the MQTT layer: plain TCP passes
 * bytes through; TLS (tls/) decrypts into c->in and encrypts the output.
 */
struct transport {
	const char *name;
	/* Ciphertext (or plaintext) arrived: produce plaintext for on_input.
	 * Returns 0, or < 0 to close the connection. */
	int (*on_bytes)(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n);
	/* Before a send: turn the plaintext segments into wire bytes
	 * (conn_encrypt_pending). Returns 0, or < 0 to close. */
	int (*on_flush)(struct shard *sh, struct conn *c);
	void (*on_free)(struct shard *sh, struct conn *c);
};

enum conn_state {
	CONN_OPEN = 0,
	CONN_CLOSING,      /* flushing what is queued, then shutdown */
	CONN_SHUTDOWN,     /* shutdown(2) done, waiting for in-flight ops */
	CONN_DETACHING,    /* being handed to another shard */
};

struct conn {
	uint32_t slot;
	uint32_t gen;
	int fd;                    /* a descriptor, or with direct an index in
				      the shard ring's file table */
	int install_fd;            /* the kernel writes the table index here */
	bool direct;
	uint8_t state;
	uint8_t listener;          /* index in config listeners */
	bool recv_armed;
	bool send_inflight;
	bool dirty;                /* on the shard's flush list */
	bool input_paused;
	bool reoffer;              /* resumed while a recv was armed: offer c->in when it ends */
	bool close_after_flush;
	bool writing_wire;         /* conn_write_wire in progress */
	uint16_t inflight;         /* SQEs in the kernel for this connection */
	uint32_t dirty_next;       /* flush list link (slot+1, 0 = end) */

	/* input: bytes not yet consumed by the layer above */
	uint8_t *in;
	uint32_t in_len, in_cap;
	uint8_t *raw;              /* compat recv buffer of a transport conn */

	/* output queue (ring of segments) */
	struct outseg *segs;
	uint32_t seg_head, seg_n, seg_cap;
	uint32_t seg_off;          /* bytes of segs[seg_head] already sent */
	struct outblk *blk_tail;   /* block receiving new small writes */
	uint64_t out_queued;       /* bytes queued and not yet sent */
	uint32_t sent_iov_n;       /* iovecs of the send in flight */
	struct conn_tx *tx;        /* while output is queued (an idle
				      connection has none) */
	struct iovec *iov_big;     /* CONN_BIG_IOV entries once the queue is long */

	union conn_addr peer;      /* conn_peer_text() for humans */
	uint64_t opened_ms;
	uint64_t close_deadline_ms;

	const struct transport *tr;
	void *tr_ctx;              /* transport state (wolfSSL session) */
	void *upper;               /* the MQTT layer's state */
	void (*detach_cb)(struct shard *sh, struct conn *c); /* see conn_detach */
};

/* What a connection carries when it moves to another shard. */
struct conn_xfer {
	int fd;                    /* with direct: an index in a ring's table */
	bool direct;
	uint8_t listener;
	union conn_addr peer;
	uint8_t *in;               /* unconsumed input, owned by the transfer */
	uint32_t in_len, in_cap;
	const struct transport *tr;
	void *tr_ctx;
	void *upper;               /* opaque to core */
	uint64_t opened_ms;
	/* direct only (shard_post_conn): the message that carries it, which
	 * the target gets once the descriptor is in its table */
	struct xmsg msg;
	void (*discard)(const struct xmsg *m);
	/* released before the MSG_RING, acquired by the target: the kernel
	 * orders the two, this says so to ThreadSanitizer (costs nothing) */
	_Atomic uint32_t sent;
};

/* The layer above registers these once; they run on the shard's thread. */
struct shard_ops {
	void (*on_start)(struct shard *sh);
	void (*on_stop)(struct shard *sh);
	/* A connection was accepted (or adopted: c->upper then set). */
	void (*on_open)(struct shard *sh, struct conn *c);
	/* Input bytes: consume a prefix, return how many bytes were consumed
	 * (the rest is kept and offered again with more). */
	uint32_t (*on_input)(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n);
	/* The connection is gone (peer closed, error or our close). The upper
	 * layer releases c->upper. No more calls for c. */
	void (*on_closed)(struct shard *sh, struct conn *c);
	void (*on_xmsg)(struct shard *sh, const struct xmsg *m);
	void (*on_timer)(struct shard *sh, const struct timer_ent *t);
	/* End of a loop turn, before output is flushed. */
	void (*on_turn_end)(struct shard *sh);
	/* An output reference has been sent (or dropped). */
	void (*release_ref)(void *ref);
	/* Shutdown phases, see shard.c. */
	void (*on_shutdown)(struct shard *sh, int phase);
};

struct io_backend;

/* Counters read by other threads ($SYS, metrics): written only by the
 * owner with relaxed stores. */
struct shard_stats {
	_Atomic uint64_t conns;
	_Atomic uint64_t accepted;
	_Atomic uint64_t refused;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	_Atomic uint64_t msgs_in;
	_Atomic uint64_t msgs_out;
	_Atomic uint64_t dropped;
	_Atomic uint64_t queued;
	_Atomic uint64_t turns;
	_Atomic uint64_t busy_us;
	_Atomic uint64_t presence_dropped; /* presence events the registrar's ring refused */
	_Atomic uint64_t fp_hits;     /* connect decisions answered by the fingerprint cache */
	_Atomic uint64_t fp_misses;   /* ... that had to read the registry */
	_Atomic uint64_t direct;      /* connections on direct descriptors */
	_Atomic uint64_t backlog;     /* messages waiting for a full ring (gauge) */
	_Atomic uint64_t flow_paused; /* inputs paused until the backlog drained */
};

struct broker_rt;

struct shard {
	/* owner-only */
	int id;
	struct broker_rt *rt;
	const struct vouch_config *cfg;
	const struct shard_ops *ops;
	const struct io_backend *io;
	struct io_uring ring;
	int listen_fds[VOUCH_MAX_LISTENERS];
	bool accept_armed[VOUCH_MAX_LISTENERS];
	struct sockaddr_storage accept_addr[VOUCH_MAX_LISTENERS];
	socklen_t accept_alen[VOUCH_MAX_LISTENERS];
	struct conn **conns;       /* by slot */
	uint32_t n_slots, cap_slots;
	uint32_t *free_slots;
	uint32_t n_free;
	uint32_t n_conns;
	uint32_t dirty_head;       /* flush list (slot+1) */
	struct timer_heap timers;
	uint64_t now_ms;
	uint64_t wake_mask;        /* peers to wake at the end of the turn */
	struct xmsg *backlog[VOUCH_MAX_SHARDS + 1];   /* per destination, when its ring is full */
	uint32_t backlog_n[VOUCH_MAX_SHARDS + 1], backlog_cap[VOUCH_MAX_SHARDS + 1];
	uint32_t backlog_total;    /* sum of backlog_n: flow control's measure */
	struct conn_ref { uint32_t slot, gen; } *flow_wait; /* paused by conn_wait_backlog */
	uint32_t flow_n, flow_cap;
	struct io_uring_buf_ring *bufring;
	uint8_t *bufs;
	uint32_t buf_count, buf_size;
	uint64_t eventfd_val;
	bool eventfd_armed;
	int stopping;              /* shutdown phase seen */
	bool running;
	struct log_limit noisy;
	void *upper;               /* the MQTT layer's per-shard state */
	pthread_t thread;

	/* shared (other threads write): */
	alignas(64) int eventfd;   /* set up before threads start, read-only after */
	int ring_fd;               /* for MSG_RING from peers; read-only after start */
	alignas(64) struct shard_stats stats;
};

/* The set of shards and what crosses between them. */
struct broker_rt {
	const struct vouch_config *cfg;
	int n;
	struct shard *shards;
	/* rings[to * (n+1) + from]: from = n is the non-shard producer
	 * (main/registrar thread), whose pushes are serialized by the caller. */
	struct spsc *rings;
	const struct shard_ops *ops;
	_Atomic int ready;
	_Atomic int phase;         /* shutdown phase requested */
	_Atomic int phase_done;    /* shards that finished the phase */
	_Atomic uint32_t conn_count;
	bool fast_io;
	const char *io_desc;
	uint32_t direct_table;     /* entries of each ring's file table, 0 =
				      regular descriptors only */
	const char *direct_why;    /* why not, when 0 */
	void *app;                 /* the layers above: registry, TLS (opaque) */
	uint64_t started_ms;
	int64_t started_wall;
};

#endif
