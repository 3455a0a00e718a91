/*
 * bench/connect.c - `vouch-bench connect`: a connection flood. Each
 * connection does TCP connect (+ a full TLS handshake with the next
 * certificate of the pool) + CONNECT/CONNACK, paced at --rate connections
 * a second over all loops, or as fast as --concurrency attempts in progress
 * per loop allow. Without --hold a connection says DISCONNECT as soon as
 * its CONNACK is in; with --hold S they all stay open (pinging) until S
 * seconds after the last attempt settled, and with --broker-pid the
 * broker's resident memory before and at the end of the hold gives the
 * memory one connection costs.
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

static uint64_t cf_tick(struct bthread *th, uint64_t now)
{
	return 0;
}

static const struct bench_ops connect_ops = {
	.may_start = cf_may_start,
	.on_connack = cf_on_connack,
	.on_packet = cf_on_packet,
	.on_down = cf_on_down,
	.tick = cf_tick,
};

struct cf_result {
	uint64_t attempts, lost_in_hold, open_at_end;
	double span_s;            /* first attempt to last CONNACK */
	double settle_s;          /* first attempt to the last attempt settled */
	long rss_before, rss_after; /* KiB, or -errno */
};

static uint64_t sum_fail(const uint64_t *v)
{
	uint64_t n = 0;
	for (int i = 0; i < BF__COUNT; i++)
		n += v[i];
	return n;
}

static void report_text(const struct bench *b, const struct bstats *st, const struct cf_result *r)
{
	const struct bench_opts *o = b->o;

	printf("vouch-bench connect: ");
	rep_target(stdout, o);
	if (o->conn_rate > 0)
		printf(", %d connections at %g/s", o->connections, o->conn_rate);
	else
		printf(", %d connections unpaced (%d in progress per thread)", o->connections, o->concurrency);
	printf(", %d thread%s\n", b->nth, b->nth == 1 ? "" : "s");
	printf("  %-12s %llu of %llu in %.3f s: %.1f connects/s\n", "connected",
	       (unsigned long long)st->ok, (unsigned long long)r->attempts, r->span_s,
	       r->span_s > 0 ? (double)st->ok / r->span_s : 0.0);
	printf("  %-12s", "CONNACK");
	bool any = false;
	for (int i = 0; i < 256; i++)
		if (st->connack[i]) {
			printf(" 0x%02x: %llu", i, (unsigned long long)st->connack[i]);
			any = true;
		}
	printf("%s\n", any ? "" : " none");
	printf("  %-12s ", "failures");
	rep_fail_text(stdout, st->fail);
	putchar('\n');
	rep_hist_line(stdout, "connect", &st->conn);
	rep_hist_line(stdout, "  tcp", &st->tcp);
	if (o->tls)
		rep_hist_line(stdout, "  tls", &st->tls);
	if (o->hold > 0)
		printf("  %-12s %llu open for %.1f s, %llu lost meanwhile (%s)\n", "held",
		       (unsigned long long)r->open_at_end, o->hold,
		       (unsigned long long)r->lost_in_hold,
		       r->lost_in_hold ? "see lost_connections in --json" : "none");
	if (o->broker_pid) {
		if (r->rss_before < 0 || r->rss_after < 0) {
			printf("  %-12s cannot read /proc/%d/status\n", "broker RSS", o->broker_pid);
		} else {
			printf("  %-12s %ld KiB before, %ld KiB %s", "broker RSS", r->rss_before,
			       r->rss_after, o->hold > 0 ? "with the connections open" : "after");
			if (o->hold > 0 && r->open_at_end)
				printf(": %.1f KiB per connection",
				       (double)(r->rss_after - r->rss_before) / (double)r->open_at_end);
			putchar('\n');
		}
	}
	const char *e = rep_first_err(b);
	if (e)
		printf("  %-12s %s\n", "first error", e);
}

static void report_json(const struct bench *b, const struct bstats *st, const struct cf_result *r)
{
	const struct bench_opts *o = b->o;
	json_t *j = json_object();
	json_object_set_new(j, "mode", json_string("connect"));
	json_object_set_new(j, "host", json_string(o->host));
	json_object_set_new(j, "port", json_integer(o->port));
	json_object_set_new(j, "tls", json_boolean(o->tls));
	json_object_set_new(j, "mqtt_version", json_integer(o->version));
	json_object_set_new(j, "threads", json_integer(b->nth));
	json_object_set_new(j, "connections", json_integer(o->connections));
	json_object_set_new(j, "rate", json_real(o->conn_rate));
	json_object_set_new(j, "concurrency", json_integer(o->concurrency));
	json_object_set_new(j, "succeeded", json_integer((json_int_t)st->ok));
	json_object_set_new(j, "failed", json_integer((json_int_t)sum_fail(st->fail)));
	json_object_set_new(j, "failures", rep_fail_json(st->fail));
	json_object_set_new(j, "duration_s", json_real(r->span_s));
	json_object_set_new(j, "connects_per_s", json_real(r->span_s > 0 ? (double)st->ok / r->span_s : 0.0));
	json_t *codes = json_object();
	for (int i = 0; i < 256; i++)
		if (st->connack[i]) {
			char k[8];
			snprintf(k, sizeof k, "0x%02x", i);
			json_object_set_new(codes, k, json_integer((json_int_t)st->connack[i]));
		}
	json_object_set_new(j, "connack_codes", codes);
	json_object_set_new(j, "latency", rep_hist_json(&st->conn));
	json_object_set_new(j, "tcp_latency", rep_hist_json(&st->tcp));
	if (o->tls)
		json_object_set_new(j, "tls_latency", rep_hist_json(&st->tls));
	json_object_set_new(j, "hold_s", json_real(o->hold));
	json_object_set_new(j, "open_at_end", json_integer((json_int_t)r->open_at_end));
	json_object_set_new(j, "lost_connections", rep_fail_json(st->down));
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
	const char *e = rep_first_err(b);
	json_object_set_new(j, "first_error", e ? json_string(e) : json_null());
	rep_json_print(j);
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* See bench/bench.h. */
int bench_connect(const struct bench_opts *o, const struct bpool *pool)
{
	struct bench b = { .o = o, .ops = &connect_ops, .pool = pool };
	struct bstats *st = calloc(1, sizeof *st);
	struct cf_result r = { .attempts = (uint64_t)o->connections };
	int rc = BENCH_EXIT_FAIL;

	b.nth = o->threads < o->connections ? o->threads : o->connections;
	b.th = calloc((size_t)b.nth, sizeof *b.th);
	if (!st || !b.th) {
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
	}
	r.rss_before = o->broker_pid ? rep_rss_kb(o->broker_pid) : 0;
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
	bool done = bench_wait_settled(&b, r.attempts, deadline);
	uint64_t settled = bench_now();
	if (done && o->hold > 0) {
		bench_phase(&b, PH_HOLD);
		uint64_t end = settled + (uint64_t)(o->hold * 1e9);
		while (bench_now() < end && !bench_interrupted())
			nap_ms(10);
	}
	r.rss_after = o->broker_pid ? rep_rss_kb(o->broker_pid) : 0;
	bench_finish(&b);
	bench_merge(&b, st);
	r.settle_s = (double)(settled - b.t0) / 1e9;
	r.span_s = st->last_connack > b.t0 ? (double)(st->last_connack - b.t0) / 1e9 : r.settle_s;
	r.lost_in_hold = sum_fail(st->down);
	r.open_at_end = o->hold > 0 && st->ok > r.lost_in_hold ? st->ok - r.lost_in_hold : 0;
	if (!done)
		fprintf(stderr, "vouch-bench: %s; reporting what settled\n",
			bench_interrupted() ? "interrupted" : "attempts did not settle in time");
	if (o->json)
		report_json(&b, st, &r);
	else
		report_text(&b, st, &r);
	rc = st->ok ? 0 : BENCH_EXIT_FAIL;
	if (!st->ok) {
		const char *e = rep_first_err(&b);
		fprintf(stderr, "vouch-bench: no connection succeeded%s%s\n", e ? ": " : "", e ? e : "");
	}
out:
	if (b.th)
		for (int i = 0; i < b.nth; i++)
			bthread_teardown(&b.th[i]);
	free(b.th);
	free(st);
	return rc;
}
