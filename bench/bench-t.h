/*
 * bench/bench-t.h - types of vouch-bench, the MQTT load generator.
 *
 * vouch-bench runs one epoll loop per thread (struct bthread). Each loop
 * owns a fixed set of client connections (struct bconn) for the whole run:
 * nothing a loop owns is touched by another thread. The run as a whole
 * (struct bench) is shared: options and the certificate pool are read-only
 * once the threads start, and the few counters the main thread needs to
 * steer the phases (subscribers ready, messages delivered, ...) are atomics.
 * Statistics proper (histograms, per-connection counts) stay per thread and
 * are merged by the main thread after the loops have ended.
 */
#ifndef VOUCH_BENCH_T_H
#define VOUCH_BENCH_T_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mqtt/codec-t.h"

struct WOLFSSL;
struct WOLFSSL_CTX;

enum bench_mode {
	BENCH_PUBSUB = 1,
	BENCH_CONNECT,
	BENCH_SIGNUP,
	BENCH_HOLD,
};

/* Command-line options, parsed once by the main thread; read-only after. */
struct bench_opts {
	enum bench_mode mode;
	const char *host;
	uint16_t port;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int threads;
	bool json;
	uint8_t version;          /* MQTT_V311 or MQTT_V5 */
	uint16_t keepalive;       /* seconds, in CONNECT */
	double timeout;           /* seconds for TCP+TLS+CONNACK(+SUBACK) */
	int concurrency;          /* connection attempts in progress per thread */
	const char *client_id_prefix; /* NULL: default (plain) or empty (TLS) */

	/* TLS */
	bool tls;
	const char *cafile;       /* verify the server; NULL: no verification */
	const char *cert_dir;     /* pool of NAME.crt / NAME.key */
	const char *cert, *key;   /* one client certificate for all */
	int tls_version;          /* 0 (negotiate), 12 or 13 */

	/* pubsub */
	int publishers, subscribers, topics;
	uint8_t qos;
	uint32_t size;            /* payload bytes */
	double rate;              /* messages/s per publisher, 0 = unpaced */
	double duration;          /* seconds of publishing */
	double drain;             /* at most this long for stragglers after */
	int inflight;             /* QoS 1/2 window per publisher */
	const char *shared;       /* shared subscription group, or NULL */
	const char *topic_prefix;

	/* connect */
	int connections;
	double conn_rate;         /* connections/s, 0 = as fast as possible */
	double hold;              /* seconds to keep them open, 0 = close at once */
	int broker_pid;           /* read its VmRSS before and after, 0 = no */
	bool resume;              /* connect: resume TLS sessions per certificate */
	double ping_interval;     /* hold: seconds between PINGREQ rounds, 0 = default */

	/* connect, signup, hold */
	struct sockaddr_storage *src; /* --source-addrs: bind() before connect() */
	uint32_t nsrc;
	int procs;                /* worker processes, 1 = this one */
	bool quiet;               /* no progress line on stderr */
	uint32_t id_base;         /* client IDs are numbered from here (workers) */
	bool worker;              /* a --procs worker: */
	int ctl_fd, rep_fd;       /* its orders in, its reports out */
};

/*
 * Latency histogram, log-linear: values below 2^(HIST_SUB+1) ns have a
 * bucket each; above, every power of two is split in 2^HIST_SUB buckets,
 * so a reported percentile is within 1/64 (1.6 %) of the true value. The
 * exact minimum, maximum and sum are kept on the side.
 */
#define HIST_SUB 6
#define HIST_BUCKETS ((2 << HIST_SUB) + (63 - HIST_SUB) * (1 << HIST_SUB))

struct hist {
	uint64_t count;
	uint64_t min, max;
	double sum;
	uint64_t b[HIST_BUCKETS];
};

/* A byte buffer: data is p[off .. len), free space p[len .. cap). */
struct bbuf {
	uint8_t *p;
	size_t off, len, cap;
};

enum bconn_state {
	BC_IDLE = 0,   /* not started yet */
	BC_TCP,        /* connect() in progress */
	BC_TLS,        /* TLS handshake in progress */
	BC_MQTT,       /* CONNECT sent, waiting for CONNACK */
	BC_SUB,        /* subscriber: SUBSCRIBE sent, waiting for SUBACK */
	BC_READY,      /* connected (and subscribed) */
	BC_CLOSED,     /* done, successfully or not; fd closed, buffers freed */
};

enum bconn_role {
	ROLE_FLOOD = 0,
	ROLE_PUB,
	ROLE_SUB,
};

/* Why a connection attempt failed or a live connection went away. */
enum bfail {
	BF_TCP = 0,    /* connect() refused or failed */
	BF_TLS,        /* handshake failed */
	BF_CLOSED,     /* peer closed (or reset) before we were done */
	BF_TIMEOUT,    /* no CONNACK / SUBACK within --timeout */
	BF_PROTOCOL,   /* malformed or unexpected packet */
	BF_REFUSED,    /* CONNACK or SUBACK with a failure code */
	BF_DISCONNECT, /* the server sent DISCONNECT */
	BF__COUNT
};

/* One client connection. Owned by its thread for the whole run. */
struct bconn {
	int fd;
	uint8_t state;            /* enum bconn_state */
	uint8_t role;             /* enum bconn_role */
	bool out_armed;           /* EPOLLOUT is in the interest set */
	bool tls_wants_out;       /* wolfSSL needs the socket writable */
	bool dirty;               /* on the thread's flush list */
	uint8_t version;          /* protocol level of this connection */
	uint16_t next_pid;        /* next packet identifier to try */
	uint32_t gidx;            /* index across the run: client ID, cert */
	uint32_t topic;           /* topic index (publishers and subscribers) */
	struct WOLFSSL *ssl;
	int tls_retry;            /* length of a wolfSSL_write to repeat */
	struct bbuf in, out;
	uint64_t t_start;         /* socket() */
	uint64_t t_tcp;           /* TCP connected */
	uint64_t t_tls;           /* TLS handshake done */
	uint64_t t_last_tx;       /* last bytes handed to the socket */
	uint16_t keepalive;       /* seconds (the server's, if it said) */
	uint16_t window;          /* QoS 1/2 in-flight limit (publishers) */
	uint32_t inflight;        /* unacknowledged QoS 1/2 PUBLISHes */
	uint64_t *pid_used;       /* publishers: bitmap of ids in flight */
	uint64_t next_send;       /* publishers: when the next one is due */
	uint32_t fanout;          /* publishers: deliveries one PUBLISH implies */
	uint32_t seq;             /* publishers: last sequence number sent */
	uint64_t sent;            /* publishers: PUBLISHes written */
	uint64_t acked;           /* publishers: QoS 1/2 flows completed */
	uint64_t received;        /* subscribers: PUBLISHes received */
	uint64_t dups;            /* subscribers: sequence not above the last */
	uint32_t *last_seq;       /* subscribers: per publisher */
	bool subscribed;          /* subscribers: SUBACK granted */
	bool was_ready;           /* reached BC_READY at some point */
	bool resume_first;        /* --resume: the full handshake that makes the
				   * certificate's session */
	bool resume_asked;        /* --resume: offered the kept session */
	/* PINGREQs are answered in order: PINGRESP k answers PINGREQ k, and
	 * once a connection is in the rounds every round pings it, so
	 * PINGRESP first_idx + i answers round first_round + i */
	uint32_t npings, npongs;  /* PINGREQs sent (any), PINGRESPs received */
	uint32_t first_round;     /* hold: the first round it was pinged in */
	uint32_t first_idx;       /* hold: ... as its PINGREQ number first_idx */
	uint32_t ping_round;      /* hold: the last round it was pinged in */
	uint32_t pong_round;      /* hold: the last round it answered in time */
};

struct bthread;

/*
 * What a mode does with the connection engine's events. All run on the
 * connection's thread.
 *   may_start  - whether connection c may start now (phase gating)
 *   on_connack - CONNACK accepted (reason 0); the mode may send
 *   on_packet  - any later packet
 *   on_down    - c failed (during setup) or went away (when live)
 *   tick       - once per loop turn; returns the next deadline (monotonic
 *                ns) it needs a wake-up for, or 0 for none
 */
struct bench_ops {
	bool (*may_start)(struct bthread *th, struct bconn *c);
	void (*on_connack)(struct bthread *th, struct bconn *c,
			   const struct mqtt_packet *p);
	void (*on_packet)(struct bthread *th, struct bconn *c,
			  const struct mqtt_packet *p);
	void (*on_down)(struct bthread *th, struct bconn *c, enum bfail why,
			int was_state);
	uint64_t (*tick)(struct bthread *th, uint64_t now);
};

/* A client certificate and its key, PEM, loaded once. */
struct bcert {
	char *name;
	uint8_t *crt, *key;
	size_t crt_len, key_len;
};

struct bpool {
	struct bcert *v;
	size_t n;
};

enum bench_phase {
	PH_SETUP_SUBS = 0,  /* subscribers connect and subscribe */
	PH_SETUP_PUBS,      /* publishers connect */
	PH_RUN,             /* publishing (pubsub) / connecting (connect) */
	PH_DRAIN,           /* publishers stop; stragglers arrive */
	PH_HOLD,            /* connect: keep connections open */
	PH_DONE,            /* disconnect and leave the loops */
};

/* Statistics of one thread, merged by the main thread at the end. */
struct bstats {
	struct hist lat;          /* pubsub: publish to delivery */
	struct hist conn;         /* socket() to CONNACK */
	struct hist tcp;          /* socket() to TCP connected */
	struct hist tls;          /* TCP connected to handshake done */
	uint64_t fail[BF__COUNT]; /* attempts that failed, by cause */
	uint64_t down[BF__COUNT]; /* live connections lost, by cause */
	uint64_t connack[256];    /* CONNACK reason codes */
	uint64_t ok;              /* connections that reached READY */
	uint64_t bytes_in, bytes_out; /* MQTT bytes (TLS: plaintext) */
	uint64_t first_connack, last_connack; /* monotonic ns, 0 = none */
	uint64_t last_recv;       /* last PUBLISH received, monotonic ns */
	uint64_t pub_in, pub_out; /* payload bytes published / delivered */
	uint64_t pub_refused;     /* PUBACK/PUBREC with a failure code */
	uint64_t disconnect_rc[256]; /* reason codes of server DISCONNECTs */
	/* --resume: handshakes by kind, and latency apart */
	struct hist conn_full;    /* socket() to CONNACK, full handshakes */
	struct hist conn_res;     /* socket() to CONNACK, resumed sessions */
	struct hist tls_res;      /* handshake of resumed sessions */
	uint64_t tls_full;        /* no session offered: full handshake */
	uint64_t tls_resumed;     /* offered and resumed */
	uint64_t tls_not_resumed; /* offered, but the server did a full one */
	/* hold: PINGREQ rounds */
	uint64_t pings, pongs;    /* PINGREQs sent, PINGRESPs within --timeout */
	uint64_t pongs_late;      /* PINGRESPs after --timeout */
};

struct bench;

/* One event loop and the connections it owns. */
struct bthread {
	int id;
	pthread_t tid;
	int ep;                   /* epoll descriptor */
	int evfd;                 /* eventfd: the main thread's wake-up */
	struct bench *b;
	struct bconn *conns;
	uint32_t nconns;
	uint32_t next_start;      /* conns[next_start] is the next to start */
	uint32_t connecting;      /* attempts in progress */
	uint32_t open;            /* connections in BC_TCP..BC_READY */
	uint64_t start_at;        /* connect --rate: when the next may start */
	uint64_t start_gap;       /* ns between two starts, 0 = unpaced */
	uint64_t next_scan;       /* next timeout / keep-alive scan */
	uint32_t *dirty;          /* connections with output to flush */
	uint32_t ndirty;
	uint32_t *pubs;           /* pubsub: indexes of the publishers */
	uint32_t npubs;
	uint8_t *payload;         /* publishers' payload template */
	struct WOLFSSL_CTX *ctx;
	/* counts not yet added to the run's atomics (pubsub) */
	uint64_t d_sent, d_expected, d_delivered;
	int64_t d_unacked;
	struct WOLFSSL_SESSION **sess; /* --resume: session per pool certificate */
	uint8_t *sess_state;      /* --resume: 0 none, 1 being made, 2 kept */
	uint64_t *stamps;         /* signup: times of CONNACK 0 */
	uint32_t nstamps;
	_Atomic uint32_t round;   /* hold: last ping round sent */
	_Atomic int seen_phase;   /* last phase this loop has acted on */
	char first_err[160];      /* the first failure's details, for the report */
	struct bstats st;
};

/* The run, shared by all threads. */
struct bench {
	const struct bench_opts *o;
	const struct bench_ops *ops;
	const struct bpool *pool;
	struct bthread *th;
	int nth;
	_Atomic int phase;        /* enum bench_phase */
	_Atomic uint64_t settled; /* connections ready or failed (setup) */
	_Atomic uint64_t ready;   /* connections that reached READY */
	_Atomic uint64_t lost;    /* ready connections that went away */
	_Atomic uint64_t resumed; /* --resume: sessions resumed */
	_Atomic uint32_t round;   /* hold: ping round the loops should be in */
	uint64_t *round_at;       /* hold: when round r started (written before
				   * round is raised to r) */
	_Atomic uint64_t pings, pongs; /* hold: PINGREQs sent, answered in time */
	_Atomic uint64_t sent;    /* pubsub: PUBLISHes written */
	_Atomic uint64_t expected; /* pubsub: deliveries those imply */
	_Atomic uint64_t delivered; /* pubsub: unique PUBLISHes received */
	_Atomic uint64_t unacked; /* pubsub: QoS 1/2 flows in progress */
	_Atomic uint32_t *topic_subs; /* pubsub: subscribers per topic */
	char **topic_names;       /* pubsub: topic of each index */
	uint64_t t0;              /* monotonic ns: the run started */
	uint64_t prog_at;         /* last progress line, monotonic ns */
	uint64_t t_run, t_stop;   /* pubsub: publishing started, stopped */
};

/*
 * What a connect, signup or hold run found: the statistics of every loop
 * merged, and the run's own figures. Workers (--procs) send theirs to the
 * parent as JSON (procs.c), which adds them up into one.
 */
struct cf_out {
	struct bstats st;
	uint64_t attempts;        /* connections tried */
	uint64_t settled;         /* of which settled (ready or failed) */
	uint64_t open_at_end, lost_in_hold;
	uint64_t t0;              /* monotonic ns: first attempt */
	uint64_t t_settled;       /* monotonic ns: the last attempt settled */
	uint32_t rounds;          /* hold: PINGREQ rounds sent */
	uint64_t held_ns;         /* hold: how long it lasted (interrupts) */
	uint64_t last_pinged;     /* hold: connections pinged in the last round */
	uint64_t last_answered;   /* hold: ... that answered it within --timeout */
	long rss_before, rss_after; /* KiB, or -errno; 0 without --broker-pid */
	uint64_t *stamps;         /* signup: CONNACK 0 times, monotonic ns */
	size_t nstamps;
	int nth;                  /* loop threads (per process) */
	int procs;                /* processes that reported */
	bool interrupted, unsettled;
	char first_err[160];
};

/* A progress sample (progress.c): what the status line shows. */
struct bprog {
	uint64_t target, settled, ready, lost, resumed, pings, pongs;
	uint64_t sent, delivered, expected; /* pubsub */
	uint32_t round;
	int phase;
};

#endif
