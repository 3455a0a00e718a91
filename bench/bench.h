/*
 * bench/bench.h - functions of vouch-bench, shared between its files:
 * the connection engine (loop.c), histograms (hist.c), TLS and the
 * certificate pool (tls.c), the modes (pubsub.c, connect.c) and the
 * report helpers (report.c). Types are in bench/bench-t.h.
 */
#ifndef VOUCH_BENCH_H
#define VOUCH_BENCH_H

#include <stdio.h>

#include <jansson.h>

#include "bench/bench-t.h"

/* Exit codes: 0 the run completed, 1 it could not (nothing connected,
 * unreadable files), 2 bad command line. */
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

/* Output queued past this many bytes holds a publisher back until the
 * socket drains (back-pressure, also the only window QoS 0 has). */
#define BENCH_OUT_HIGH (64 * 1024)

/* Monotonic clock in nanoseconds. Any thread. */
uint64_t bench_now(void);

/* Whether SIGINT/SIGTERM arrived (main thread polls it). Any thread. */
bool bench_interrupted(void);

/* ---- hist.c: latency histograms; the owner's thread only ---- */

/* Empty h. */
void hist_init(struct hist *h);
/* Record one value (nanoseconds). */
void hist_add(struct hist *h, uint64_t v);
/* Add every sample of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at percentile p (0..100], in nanoseconds, within 1.6 %; the
 * exact maximum for p = 100; 0 when h is empty. */
uint64_t hist_pct(const struct hist *h, double p);
/* Mean in nanoseconds, 0 when empty. */
double hist_mean(const struct hist *h);

/* ---- tls.c: client certificates and wolfSSL contexts ---- */

/*
 * Load every NAME.crt that has a NAME.key beside it in dir (sorted by
 * name) into pool, checking that each pair loads and matches. Returns the
 * number of pairs (> 0), or -errno / -EINVAL with a message in err.
 * Main thread, before the loops start.
 */
int bpool_load_dir(struct bpool *pool, const char *dir, char *err,
		   size_t errlen);
/* Load one certificate (PEM, may hold a chain) and its key into pool.
 * Returns 1 or a negative errno with a message in err. Main thread. */
int bpool_load_pair(struct bpool *pool, const char *crt, const char *key,
		    char *err, size_t errlen);
/* Free what the pool holds. */
void bpool_free(struct bpool *pool);

/*
 * A client context for one loop thread: TLS 1.2/1.3 (o->tls_version),
 * verifying the server against o->cafile when given. No session reuse, so
 * every handshake is a full one. Returns NULL with a message in err.
 * Main thread (wolfSSL_Init() already called).
 */
struct WOLFSSL_CTX *btls_ctx_new(const struct bench_opts *o, char *err,
				 size_t errlen);
/*
 * Give connection c its TLS session on ctx, with certificate
 * pool[c->gidx % n] (round-robin over the run's connections) when the pool
 * is not empty, reading and writing c->fd. Returns 0 or -ENOMEM/-EINVAL.
 * The connection's thread.
 */
int btls_attach(struct WOLFSSL_CTX *ctx, const struct bpool *pool,
		struct bconn *c);

/*
 * --resume (tls.c): thread th keeps one session per certificate of the
 * pool. setup/free: the per-certificate arrays (main thread). may_start:
 * false while the first (full) handshake with c's certificate is in
 * progress, so that later connections have a session to offer. started:
 * c is starting (marks the first one). offer: after btls_attach, offers
 * the kept session. keep: at CONNACK 0, returns whether the session was
 * resumed and keeps the session of a full handshake that was the first
 * or whose offer the server refused. failed: c failed before CONNACK.
 * All but setup/free: the connection's thread.
 */
int btls_resume_setup(struct bthread *th, size_t ncerts);
void btls_resume_free(struct bthread *th, size_t ncerts);
bool btls_resume_may_start(struct bthread *th, struct bconn *c);
void btls_resume_started(struct bthread *th, struct bconn *c);
void btls_resume_offer(struct bthread *th, struct bconn *c);
bool btls_resume_keep(struct bthread *th, struct bconn *c);
void btls_resume_failed(struct bthread *th, struct bconn *c);

/* ---- loop.c: the connection engine ---- */

/*
 * Prepare loop thread th of run b with nconns connections (zeroed, fd -1,
 * version set; the caller fills role/gidx/topic after). Returns 0 or
 * -errno with a message on stderr. Main thread.
 */
int bthread_setup(struct bench *b, struct bthread *th, int id,
		  uint32_t nconns);
/* Free what bthread_setup() and the run left in th. Main thread, after
 * the loop has ended. */
void bthread_teardown(struct bthread *th);
/* Start every loop (pthread_create). Returns 0 or -errno; on error the
 * loops already started are stopped and joined. Main thread. */
int bench_start(struct bench *b);
/* Set the run's phase and wake every loop. Main thread. */
void bench_phase(struct bench *b, enum bench_phase ph);
/* Wait until every loop has acted on the current phase (at most
 * timeout_ns). Returns true when they all have. Main thread. */
bool bench_phase_seen(struct bench *b, uint64_t timeout_ns);
/* Wait until at least target connections have settled (ready or failed),
 * the deadline (monotonic ns) passes, or an interrupt. Returns true when
 * the target was reached. Main thread. */
bool bench_wait_settled(struct bench *b, uint64_t target, uint64_t deadline);
/* Set phase PH_DONE and join every loop. Main thread. */
void bench_finish(struct bench *b);
/* Sum the statistics of every loop into out. Main thread, after
 * bench_finish(). */
void bench_merge(const struct bench *b, struct bstats *out);
/* Add the counts and histograms of s to out (first/last times: min/max). */
void bstats_add(struct bstats *out, const struct bstats *s);

/*
 * Encode p at c's protocol level and queue it on c; it is written at the
 * end of the loop turn, or when the socket can take it. Returns 0, or
 * -EINVAL when the codec refuses the packet, -ENOMEM. The connection's
 * thread.
 */
int bconn_send(struct bthread *th, struct bconn *c,
	       const struct mqtt_packet *p);
/* Mark a connection in setup (BC_MQTT or BC_SUB) as ready: counted as a
 * successful attempt. The connection's thread. */
void bconn_ready(struct bthread *th, struct bconn *c);
/* The connection failed or went away for reason why: counts it, closes it
 * and tells the mode (on_down). No-op on a closed connection. The
 * connection's thread. */
void bconn_down(struct bthread *th, struct bconn *c, enum bfail why);
/* Close a ready connection on purpose: DISCONNECT (and TLS close_notify)
 * written if the socket takes them, then closed. Not counted as a loss.
 * The connection's thread. */
void bconn_close(struct bthread *th, struct bconn *c);
/* Keep the first failure's details for the report (printf-style). The
 * connection's thread. */
void bthread_note(struct bthread *th, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- the modes: run one benchmark, print its report, return an exit
 * code (0, BENCH_EXIT_FAIL). Main thread. ---- */
int bench_pubsub(const struct bench_opts *o, const struct bpool *pool);
/* connect, hold and signup (in one process or --procs workers). */
int bench_connect(const struct bench_opts *o, const struct bpool *pool);

/* ---- connect.c: the runner of connect, hold and signup ---- */

/* The connection engine's callbacks for mode m (connect/hold, signup). */
const struct bench_ops *cf_ops(enum bench_mode m);
extern const struct bench_ops signup_ops;
/* Run o->connections connections of o's mode in this process and fill
 * out (out->stamps is malloc'ed). Returns 0 or BENCH_EXIT_FAIL when the
 * run could not start. Main thread. */
int cf_run(const struct bench_opts *o, const struct bpool *pool, struct cf_out *out);
/* Print the report of a run (text or --json). Returns the exit code. */
int cf_finish(const struct bench_opts *o, struct cf_out *r);
/* Seconds from the first attempt to the last CONNACK (or settled). */
double cf_span(const struct cf_out *r);
/* hold: seconds between two PINGREQ rounds (--ping-interval, else half
 * the keep-alive, else 30). */
double bench_ping_interval(const struct bench_opts *o);

/* ---- signup.c ---- */

/* The CONNACK code of "refused over the signup limit" at o's MQTT version. */
uint8_t su_limit_code(const struct bench_opts *o);
/* The signup report (text or --json). */
void su_report(const struct bench_opts *o, const struct cf_out *r);
/* The most CONNACK times of stamps (n, any order; sorted in place) within
 * any window of one second [t, t + 1 s); *at: the window's first time. */
uint64_t su_max_window(uint64_t *stamps, size_t n, uint64_t *at);

/* ---- procs.c: --procs worker processes ---- */

/*
 * Fork o->procs workers, each running cf_run on its share of the
 * connections and of the certificate pool, and merge what they report into
 * out (as one run). Returns 0 or BENCH_EXIT_FAIL. Main thread, before any
 * other thread exists.
 */
int bproc_run(const struct bench_opts *o, const struct bpool *pool, struct cf_out *out);
/* A worker reached point what ('S' settled, 'H' end of the hold): tell the
 * parent and wait until every worker has (progress goes on meanwhile).
 * No-op outside a worker. Main thread. */
void bproc_sync(const struct bench_opts *o, char what, struct bench *b);

/* ---- progress.c: the status line ---- */

/* Once a second (or now with force): a status line on stderr (unless
 * --quiet), or a progress record to the parent in a worker. Main thread. */
void bench_progress(struct bench *b, bool force);
/* Print p as the status line (elapsed seconds el). final ends the line. */
void prog_print(const struct bench_opts *o, const struct bprog *p, double el, bool final);

/* ---- report.c: output helpers ---- */

/* "1.23 ms" style text for a duration in nanoseconds, into buf. */
const char *rep_dur(char *buf, size_t len, double ns);
/* One line of percentiles: "p50 .. p90 .. p99 .. max .. (mean .., N)". */
void rep_hist_line(FILE *f, const char *label, const struct hist *h);
/* {"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "min_us",
 * "mean_us"} for h; a new reference. */
json_t *rep_hist_json(const struct hist *h);
/* Print j (compact, one line) on stdout and release it. */
void rep_json_print(json_t *j);
/* A short name for a failure cause ("tcp", "tls", ...). */
const char *rep_fail_name(enum bfail why);
/* A CONNACK code as the codec gives it (3.1.1 return codes become 5.0
 * reason codes) as it was on the wire at o's MQTT version. */
uint8_t rep_wire_code(const struct bench_opts *o, uint8_t rc);
/* in[256] counts by codec code -> out[256] by wire code. */
void rep_wire_codes(const struct bench_opts *o, const uint64_t *in, uint64_t *out);
/* The non-zero CONNACK reason codes {"0x00": n, ...}; a new reference. */
json_t *rep_codes_json(const uint64_t *codes);
/* Failure counts by cause as a JSON object; a new reference. */
json_t *rep_fail_json(const uint64_t *counts);
/* Failure counts by cause as text ("tls 3, timeout 1" or "none"). */
void rep_fail_text(FILE *f, const uint64_t *counts);
/* The common part of the headline: address, plain/TLS, MQTT version. */
void rep_target(FILE *f, const struct bench_opts *o);
/* The first failure noted by any loop, or NULL. */
const char *rep_first_err(const struct bench *b);
/* VmRSS of process pid in KiB from /proc/PID/status, or -errno. */
long rep_rss_kb(int pid);

#endif
