/*
 * bench/connect.c - `vouch-bench connect` and `vouch-bench hold`, and the
 * runner they share with `signup` (signup.c).
 *
 * connect: a connection flood. Each connection does TCP connect (+ a TLS
 * handshake with the next certificate of the pool, full or, with --resume,
 * resuming that certificate's session) + CONNECT/CONNACK, paced at --rate
 * connections a second over all loops, or as fast as --concurrency
 * attempts in progress per loop allow. Without --hold a connection says
 * DISCONNECT as soon as its CONNACK is in.
 *
 * hold (= connect --hold S): the connections stay open S seconds after the
 * last attempt settled, and every --ping-interval seconds the main thread
 * starts a round: each loop sends one PINGREQ on every open connection and
 * counts the PINGRESPs that come within --timeout. With --broker-pid the
 * broker's resident memory before the first connection and at the end of
 * the hold gives the memory one connection costs.
 *
 * With --procs the runner runs in each worker process on its share of the
 * connections (procs.c); the main thread's waits are where a worker meets
 * the others (bproc_sync) so that the hold starts and ends together.
 */
#include "bench/bench.h"
#include "mqtt/codec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool cf_may_start(struct bthread *th, struct bconn *c)
{
	return atomic_load_explicit(&th->b->phase, memory_order_acquire) == PH_RUN;
}

static void cf_on_connack(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	bconn_ready(th, c);
	if (th->b->o->hold <= 0)
		bconn_close(th, c);
}

static void cf_on_packet(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	bthread_note(th, "unexpected packet type %u", p->type);
}

static void cf_on_down(struct bthread *th, struct bconn *c, enum bfail why, int was)
{
}

/* A new round: one PINGREQ on every open connection. */
static uint64_t cf_tick(struct bthread *th, uint64_t now)
{
	uint32_t r = atomic_load_explicit(&th->b->round, memory_order_acquire);
	if (r == atomic_load_explicit(&th->round, memory_order_relaxed))
		return 0;
	struct mqtt_packet p = { .type = MQTT_PINGREQ };
	uint64_t n = 0;
	for (uint32_t i = 0; i < th->next_start; i++) {
		struct bconn *c = &th->conns[i];
		if (c->state != BC_READY)
			continue;
		if (bconn_send(th, c, &p) != 0) {
			/* a skipped round would shift the PINGRESP count */
			bthread_note(th, "out of memory for a PINGREQ");
			bconn_down(th, c, BF_PROTOCOL);
			continue;
		}
		c->npings++;
		if (!c->first_round) {
			c->first_round = r;
			c->first_idx = c->npings;
		}
		c->ping_round = r;
		c->t_last_tx = now;
		n++;
	}
	th->st.pings += n;
	atomic_fetch_add_explicit(&th->b->pings, n, memory_order_relaxed);
	atomic_store_explicit(&th->round, r, memory_order_release);
	return 0;
}

static const struct bench_ops connect_ops = {
	.may_start = cf_may_start,
	.on_connack = cf_on_connack,
	.on_packet = cf_on_packet,
	.on_down = cf_on_down,
	.tick = cf_tick,
};

/* See bench/bench.h. */
const struct bench_ops *cf_ops(enum bench_mode m)
{
	return m == BENCH_SIGNUP ? &signup_ops : &connect_ops;
}

static uint64_t sum_fail(const uint64_t *v)
{
	uint64_t n = 0;
	for (int i = 0; i < BF__COUNT; i++)
		n += v[i];
	return n;
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Every loop has sent round r (or the deadline passed). */
static void wait_round_sent(struct bench *b, uint32_t r, uint64_t deadline)
{
	for (;;) {
		int i;
		for (i = 0; i < b->nth; i++)
			if (atomic_load_explicit(&b->th[i].round, memory_order_acquire) != r)
				break;
		if (i == b->nth || bench_now() >= deadline || bench_interrupted())
			return;
		nap_ms(1);
	}
}

/* The hold: rounds of PINGREQs every interval for o->hold seconds (the
 * last one at the end when the interval divides it), then at most
 * --timeout for the last round's answers. Returns the rounds. */
static uint32_t hold(struct bench *b)
{
	const struct bench_opts *o = b->o;
	double iv = bench_ping_interval(o);
	uint64_t start = bench_now(), end = start + (uint64_t)(o->hold * 1e9);
	uint64_t next = start + (uint64_t)(iv * 1e9), last = 0;
	uint32_t r = 0, max = (uint32_t)(o->hold / iv) + 2;

	b->round_at = calloc(max + 1, sizeof *b->round_at);
	if (!b->round_at) {
		fprintf(stderr, "vouch-bench: out of memory\n");
		return 0;
	}
	bench_phase(b, PH_HOLD);
	while (!bench_interrupted()) {
		uint64_t now = bench_now();
		if (next <= end && now >= next && r < max) {
			b->round_at[r + 1] = now;
			atomic_store_explicit(&b->round, ++r, memory_order_release);
			bench_phase(b, PH_HOLD); /* wakes the loops */
			last = now;
			next += (uint64_t)(iv * 1e9);
		}
		if (now >= end && next > end)
			break;
		bench_progress(b, false);
		nap_ms(5);
	}
	if (!r)
		return 0;
	uint64_t tmo = (uint64_t)(o->timeout * 1e9);
	wait_round_sent(b, r, last + tmo);
	while (bench_now() < last + tmo && !bench_interrupted() &&
	       atomic_load(&b->pongs) < atomic_load(&b->pings)) {
		bench_progress(b, false);
		nap_ms(2);
	}
	return r;
}

/* See bench/bench.h. */
int cf_run(const struct bench_opts *o, const struct bpool *pool, struct cf_out *out)
{
	struct bench b = { .o = o, .ops = cf_ops(o->mode), .pool = pool };
	int rc = BENCH_EXIT_FAIL;

	memset(out, 0, sizeof *out);
	out->attempts = (uint64_t)o->connections;
	out->procs = 1;
	b.nth = o->threads < o->connections ? o->threads : o->connections;
	out->nth = b.nth;
	b.th = calloc((size_t)b.nth, sizeof *b.th);
	if (!b.th) {
		fprintf(stderr, "vouch-bench: out of memory\n");
		goto out;
	}
	uint64_t gap = o->conn_rate > 0 ? (uint64_t)(1e9 * b.nth / o->conn_rate) : 0;
	for (int i = 0; i < b.nth; i++) {
		struct bthread *th = &b.th[i];
		uint32_t n = (uint32_t)(o->connections / b.nth + (i < o->connections % b.nth));
		if (bthread_setup(&b, th, i, n) != 0)
			goto out;
		for (uint32_t k = 0; k < n; k++) {
			th->conns[k].gidx = k * (uint32_t)b.nth + (uint32_t)i;
			th->conns[k].role = ROLE_FLOOD;
		}
		th->start_gap = gap;
		if (o->mode == BENCH_SIGNUP && !(th->stamps = calloc(n ? n : 1, sizeof *th->stamps))) {
			fprintf(stderr, "vouch-bench: out of memory\n");
			goto out;
		}
	}
	out->rss_before = o->broker_pid ? rep_rss_kb(o->broker_pid) : 0;
	b.t0 = bench_now();
	for (int i = 0; i < b.nth; i++)
		b.th[i].start_at = b.t0 + gap * (uint64_t)i / (uint64_t)b.nth;
	atomic_store(&b.phase, PH_RUN);
	if (bench_start(&b) != 0) {
		fprintf(stderr, "vouch-bench: cannot start threads\n");
		goto out;
	}
	double waves = 1.0 + (double)o->connections / ((double)o->concurrency * b.nth);
	double pace = o->conn_rate > 0 ? (double)o->connections / o->conn_rate : 0.0;
	uint64_t deadline = b.t0 + (uint64_t)((pace + o->timeout * waves + 2.0) * 1e9);
	bool done = bench_wait_settled(&b, out->attempts, deadline);
	out->t_settled = bench_now();
	/* workers: the hold starts when every worker has settled */
	bproc_sync(o, 'S', &b);
	if (done && o->hold > 0) {
		uint64_t h0 = bench_now();
		out->rounds = hold(&b);
		out->held_ns = bench_now() - h0;
	}
	if (o->hold > 0)
		bproc_sync(o, 'H', &b); /* the parent reads the broker's memory */
	out->rss_after = o->broker_pid ? rep_rss_kb(o->broker_pid) : 0;
	bench_progress(&b, true);
	bench_finish(&b);
	bench_merge(&b, &out->st);
	out->t0 = b.t0;
	out->settled = atomic_load(&b.settled);
	out->lost_in_hold = sum_fail(out->st.down);
	out->open_at_end = o->hold > 0 && out->st.ok > out->lost_in_hold ? out->st.ok - out->lost_in_hold : 0;
	out->interrupted = bench_interrupted();
	out->unsettled = !done;
	const char *e = rep_first_err(&b);
	if (e)
		snprintf(out->first_err, sizeof out->first_err, "%s", e);
	size_t nst = 0;
	for (int i = 0; i < b.nth; i++) {
		const struct bthread *th = &b.th[i];
		nst += th->nstamps;
		for (uint32_t k = 0; out->rounds && k < th->nconns; k++) {
			out->last_pinged += th->conns[k].ping_round == out->rounds;
			out->last_answered += th->conns[k].pong_round == out->rounds;
		}
	}
	if (nst && (out->stamps = malloc(nst * sizeof *out->stamps)))
		for (int i = 0; i < b.nth; i++) {
			if (!b.th[i].nstamps)
				continue;
			memcpy(out->stamps + out->nstamps, b.th[i].stamps,
			       b.th[i].nstamps * sizeof *out->stamps);
			out->nstamps += b.th[i].nstamps;
		}
	rc = 0;
out:
	if (b.th)
		for (int i = 0; i < b.nth; i++)
			bthread_teardown(&b.th[i]);
	free(b.th);
	free(b.round_at);
	return rc;
}

/* See bench/bench.h. */
double cf_span(const struct cf_out *r)
{
	double settle = r->t_settled > r->t0 ? (double)(r->t_settled - r->t0) / 1e9 : 0.0;
	return r->st.last_connack > r->t0 ? (double)(r->st.last_connack - r->t0) / 1e9 : settle;
}

static void report_text(const struct bench_opts *o, const struct cf_out *r)
{
	const struct bstats *st = &r->st;
	double span = cf_span(r);
	uint64_t codes[256];

	rep_wire_codes(o, st->connack, codes);
	printf("vouch-bench %s: ", o->mode == BENCH_HOLD ? "hold" : "connect");
	rep_target(stdout, o);
	if (o->conn_rate > 0)
		printf(", %d connections at %g/s", o->connections, o->conn_rate);
	else
		printf(", %d connections unpaced (%d in progress per thread)", o->connections, o->concurrency);
	printf(", %d thread%s", r->nth, r->nth == 1 ? "" : "s");
	if (r->procs > 1)
		printf(" x %d processes", r->procs);
	putchar('\n');
	printf("  %-12s %llu of %llu in %.3f s: %.1f connects/s\n", "connected",
	       (unsigned long long)st->ok, (unsigned long long)r->attempts, span,
	       span > 0 ? (double)st->ok / span : 0.0);
	printf("  %-12s", "CONNACK");
	bool any = false;
	for (int i = 0; i < 256; i++)
		if (codes[i]) {
			printf(" 0x%02x: %llu", i, (unsigned long long)codes[i]);
			any = true;
		}
	printf("%s\n", any ? "" : " none");
	printf("  %-12s ", "failures");
	rep_fail_text(stdout, st->fail);
	putchar('\n');
	if (o->resume)
		printf("  %-12s %llu full, %llu resumed, %llu offered but not resumed\n", "TLS sessions",
		       (unsigned long long)st->tls_full, (unsigned long long)st->tls_resumed,
		       (unsigned long long)st->tls_not_resumed);
	rep_hist_line(stdout, "connect", &st->conn);
	if (o->resume) {
		rep_hist_line(stdout, "  full", &st->conn_full);
		rep_hist_line(stdout, "  resumed", &st->conn_res);
	}
	rep_hist_line(stdout, "  tcp", &st->tcp);
	if (o->tls)
		rep_hist_line(stdout, "  tls", &st->tls);
	if (o->resume)
		rep_hist_line(stdout, "  tls resumed", &st->tls_res);
	if (o->hold > 0) {
		printf("  %-12s %llu open at the end of %.1f s, %llu lost meanwhile (%s)\n", "held",
		       (unsigned long long)r->open_at_end, (double)r->held_ns / 1e9,
		       (unsigned long long)r->lost_in_hold,
		       r->lost_in_hold ? "see lost_connections in --json" : "none");
		if (r->rounds)
			printf("  %-12s %u rounds every %g s; last round: %llu of %llu answered "
			       "within %g s; %llu PINGREQs, %llu answered in time, %llu late\n",
			       "pings", r->rounds, bench_ping_interval(o),
			       (unsigned long long)r->last_answered, (unsigned long long)r->last_pinged,
			       o->timeout, (unsigned long long)st->pings,
			       (unsigned long long)st->pongs, (unsigned long long)st->pongs_late);
		else
			printf("  %-12s none (the hold is shorter than --ping-interval %g s)\n", "pings",
			       bench_ping_interval(o));
	}
	if (o->broker_pid) {
		if (r->rss_before < 0 || r->rss_after < 0) {
			printf("  %-12s cannot read /proc/%d/status\n", "broker RSS", o->broker_pid);
		} else {
			printf("  %-12s %ld KiB before, %ld KiB %s", "broker RSS", r->rss_before,
			       r->rss_after, o->hold > 0 ? "with the connections open" : "after");
			if (o->hold > 0 && r->open_at_end)
				printf(": %.0f bytes per connection",
				       1024.0 * (double)(r->rss_after - r->rss_before) / (double)r->open_at_end);
			putchar('\n');
		}
	}
	if (r->first_err[0])
		printf("  %-12s %s\n", "first error", r->first_err);
}

static void report_json(const struct bench_opts *o, const struct cf_out *r)
{
	const struct bstats *st = &r->st;
	double span = cf_span(r);
	json_t *j = json_object();
	json_object_set_new(j, "mode", json_string(o->mode == BENCH_HOLD ? "hold" : "connect"));
	json_object_set_new(j, "host", json_string(o->host));
	json_object_set_new(j, "port", json_integer(o->port));
	json_object_set_new(j, "tls", json_boolean(o->tls));
	json_object_set_new(j, "mqtt_version", json_integer(o->version));
	json_object_set_new(j, "threads", json_integer(r->nth));
	json_object_set_new(j, "procs", json_integer(r->procs));
	json_object_set_new(j, "connections", json_integer(o->connections));
	json_object_set_new(j, "rate", json_real(o->conn_rate));
	json_object_set_new(j, "concurrency", json_integer(o->concurrency));
	json_object_set_new(j, "succeeded", json_integer((json_int_t)st->ok));
	json_object_set_new(j, "failed", json_integer((json_int_t)sum_fail(st->fail)));
	json_object_set_new(j, "failures", rep_fail_json(st->fail));
	json_object_set_new(j, "duration_s", json_real(span));
	json_object_set_new(j, "connects_per_s", json_real(span > 0 ? (double)st->ok / span : 0.0));
	uint64_t codes[256];
	rep_wire_codes(o, st->connack, codes);
	/* as on the wire: 3.1.1 return codes at MQTT 3.1.1 */
	json_object_set_new(j, "connack_codes", rep_codes_json(codes));
	json_object_set_new(j, "latency", rep_hist_json(&st->conn));
	json_object_set_new(j, "tcp_latency", rep_hist_json(&st->tcp));
	if (o->tls)
		json_object_set_new(j, "tls_latency", rep_hist_json(&st->tls));
	if (o->resume) {
		json_t *s = json_object();
		json_object_set_new(s, "full", json_integer((json_int_t)st->tls_full));
		json_object_set_new(s, "resumed", json_integer((json_int_t)st->tls_resumed));
		json_object_set_new(s, "not_resumed", json_integer((json_int_t)st->tls_not_resumed));
		json_object_set_new(s, "full_latency", rep_hist_json(&st->conn_full));
		json_object_set_new(s, "resumed_latency", rep_hist_json(&st->conn_res));
		json_object_set_new(s, "resumed_tls_latency", rep_hist_json(&st->tls_res));
		json_object_set_new(j, "sessions", s);
	}
	json_object_set_new(j, "hold_s", json_real(o->hold));
	json_object_set_new(j, "held_s", json_real((double)r->held_ns / 1e9));
	json_object_set_new(j, "interrupted", json_boolean(r->interrupted));
	json_object_set_new(j, "open_at_end", json_integer((json_int_t)r->open_at_end));
	json_object_set_new(j, "lost_connections", rep_fail_json(st->down));
	if (o->hold > 0) {
		json_t *p = json_object();
		json_object_set_new(p, "interval_s", json_real(bench_ping_interval(o)));
		json_object_set_new(p, "rounds", json_integer(r->rounds));
		json_object_set_new(p, "sent", json_integer((json_int_t)st->pings));
		json_object_set_new(p, "answered", json_integer((json_int_t)st->pongs));
		json_object_set_new(p, "late", json_integer((json_int_t)st->pongs_late));
		json_object_set_new(p, "last_round_pinged", json_integer((json_int_t)r->last_pinged));
		json_object_set_new(p, "last_round_answered", json_integer((json_int_t)r->last_answered));
		json_object_set_new(j, "pings", p);
	}
	if (o->broker_pid) {
		json_t *m = json_object();
		json_object_set_new(m, "pid", json_integer(o->broker_pid));
		json_object_set_new(m, "before_kib", r->rss_before >= 0 ? json_integer(r->rss_before) : json_null());
		json_object_set_new(m, "after_kib", r->rss_after >= 0 ? json_integer(r->rss_after) : json_null());
		if (o->hold > 0 && r->open_at_end && r->rss_before >= 0 && r->rss_after >= 0)
			json_object_set_new(m, "per_connection_bytes",
					    json_real(1024.0 * (double)(r->rss_after - r->rss_before) / (double)r->open_at_end));
		json_object_set_new(j, "broker_rss", m);
	}
	json_object_set_new(j, "first_error", r->first_err[0] ? json_string(r->first_err) : json_null());
	rep_json_print(j);
}

/* See bench/bench.h. */
int cf_finish(const struct bench_opts *o, struct cf_out *r)
{
	if (r->unsettled)
		fprintf(stderr, "vouch-bench: %s; reporting what settled\n",
			r->interrupted ? "interrupted" : "attempts did not settle in time");
	else if (r->interrupted)
		fprintf(stderr, "vouch-bench: interrupted; reporting what it saw\n");
	if (o->mode == BENCH_SIGNUP)
		su_report(o, r);
	else if (o->json)
		report_json(o, r);
	else
		report_text(o, r);
	if (o->mode != BENCH_SIGNUP && !r->st.ok) {
		fprintf(stderr, "vouch-bench: no connection succeeded%s%s\n",
			r->first_err[0] ? ": " : "", r->first_err);
		return BENCH_EXIT_FAIL;
	}
	if (o->mode == BENCH_SIGNUP && !r->st.ok && !r->st.connack[su_limit_code(o)]) {
		fprintf(stderr, "vouch-bench: no certificate got an answer from the broker%s%s\n",
			r->first_err[0] ? ": " : "", r->first_err);
		return BENCH_EXIT_FAIL;
	}
	return 0;
}

/* See bench/bench.h. */
int bench_connect(const struct bench_opts *o, const struct bpool *pool)
{
	struct cf_out *r = calloc(1, sizeof *r);
	if (!r) {
		fprintf(stderr, "vouch-bench: out of memory\n");
		return BENCH_EXIT_FAIL;
	}
	int rc = o->procs > 1 ? bproc_run(o, pool, r) : cf_run(o, pool, r);
	if (!rc)
		rc = cf_finish(o, r);
	free(r->stamps);
	free(r);
	return rc;
}
