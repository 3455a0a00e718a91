/*
 * bench/signup.c - `vouch-bench signup`: a flood of never-seen device
 * certificates. Every certificate of --cert-dir is used exactly once, in
 * order (round-robin over loops and workers); the broker registers a new
 * certificate on its first connection, at most --signup-rate a second
 * broker-wide, and refuses the others with CONNACK 0x9F (Connection rate
 * exceeded, MQTT 5.0) or 0x03 (Server unavailable, MQTT 3.1.1: the code
 * vouchd sends for it; 3.1.1 has no better one, and the same code also
 * means a registry error there). A registered connection says DISCONNECT
 * at once. The codec hands 3.1.1 return codes over as their 5.0 reason
 * codes (0x03 as 0x88); this report shows the codes as sent on the wire.
 *
 * Each loop keeps the time of every CONNACK 0; the report gives the most
 * registrations seen in any one-second window, which is how a user checks
 * that the broker never lets more than its limit through (CONNACK times
 * seen by the client: a few milliseconds of jitter either way).
 */
#include "bench/bench.h"
#include "mqtt/codec.h"

#include <stdlib.h>
#include <string.h>

static bool su_may_start(struct bthread *th, struct bconn *c)
{
	return atomic_load_explicit(&th->b->phase, memory_order_acquire) == PH_RUN;
}

static void su_on_connack(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	if (th->stamps)
		th->stamps[th->nstamps++] = bench_now();
	bconn_ready(th, c);
	bconn_close(th, c);
}

static void su_on_packet(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
}

static void su_on_down(struct bthread *th, struct bconn *c, enum bfail why, int was)
{
}

static uint64_t su_tick(struct bthread *th, uint64_t now)
{
	return 0;
}

const struct bench_ops signup_ops = {
	.may_start = su_may_start,
	.on_connack = su_on_connack,
	.on_packet = su_on_packet,
	.on_down = su_on_down,
	.tick = su_tick,
};

/* See bench/bench.h. */
uint8_t su_limit_code(const struct bench_opts *o)
{
	return o->version == MQTT_V5 ? MQTT_RC_CONNECTION_RATE_EXCEEDED : MQTT_RC_SERVER_UNAVAILABLE;
}


static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* See bench/bench.h. */
uint64_t su_max_window(uint64_t *stamps, size_t n, uint64_t *at)
{
	uint64_t best = 0;
	size_t i = 0;

	*at = n ? stamps[0] : 0;
	qsort(stamps, n, sizeof *stamps, cmp_u64);
	for (size_t j = 0; j < n; j++) {
		while (stamps[j] - stamps[i] >= 1000000000ull)
			i++;
		if (j - i + 1 > best) {
			best = j - i + 1;
			*at = stamps[i];
		}
	}
	return best;
}

struct su_fig {
	uint64_t attempted, registered, over_limit, other;
	uint64_t fail[BF__COUNT];  /* other failures by cause */
	uint64_t codes[256];       /* CONNACK codes other than 0 and the limit's
				    * (as on the wire) */
	uint64_t max_window;
	double window_at, span, per_s;
};

static void figures(const struct bench_opts *o, const struct cf_out *r, struct su_fig *f)
{
	const struct bstats *st = &r->st;
	uint8_t lim = su_limit_code(o);
	uint64_t at;

	memset(f, 0, sizeof *f);
	f->attempted = r->settled;
	f->registered = st->ok;
	f->over_limit = st->connack[lim];
	memcpy(f->fail, st->fail, sizeof f->fail);
	f->fail[BF_REFUSED] -= f->over_limit < f->fail[BF_REFUSED] ? f->over_limit : f->fail[BF_REFUSED];
	for (int i = 0; i < BF__COUNT; i++)
		f->other += f->fail[i];
	for (int i = 0; i < 256; i++)
		if (i != 0 && i != lim)
			f->codes[rep_wire_code(o, (uint8_t)i)] += st->connack[i];
	f->max_window = su_max_window(r->stamps, r->nstamps, &at);
	f->window_at = r->nstamps && at > r->t0 ? (double)(at - r->t0) / 1e9 : 0.0;
	f->span = r->t_settled > r->t0 ? (double)(r->t_settled - r->t0) / 1e9 : 0.0;
	f->per_s = f->span > 0 ? (double)f->registered / f->span : 0.0;
}

/* See bench/bench.h. */
void su_report(const struct bench_opts *o, const struct cf_out *r)
{
	struct su_fig f;
	figures(o, r, &f);

	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "mode", json_string("signup"));
		json_object_set_new(j, "host", json_string(o->host));
		json_object_set_new(j, "port", json_integer(o->port));
		json_object_set_new(j, "mqtt_version", json_integer(o->version));
		json_object_set_new(j, "threads", json_integer(r->nth));
		json_object_set_new(j, "procs", json_integer(r->procs));
		json_object_set_new(j, "certificates", json_integer(o->connections));
		json_object_set_new(j, "rate", json_real(o->conn_rate));
		json_object_set_new(j, "concurrency", json_integer(o->concurrency));
		json_object_set_new(j, "attempted", json_integer((json_int_t)f.attempted));
		json_object_set_new(j, "registered", json_integer((json_int_t)f.registered));
		json_object_set_new(j, "refused_over_limit", json_integer((json_int_t)f.over_limit));
		json_object_set_new(j, "limit_code", json_integer(rep_wire_code(o, su_limit_code(o))));
		json_object_set_new(j, "other_failed", json_integer((json_int_t)f.other));
		json_object_set_new(j, "other_failures", rep_fail_json(f.fail));
		json_object_set_new(j, "other_connack_codes", rep_codes_json(f.codes));
		json_object_set_new(j, "duration_s", json_real(f.span));
		json_object_set_new(j, "registrations_per_s", json_real(f.per_s));
		json_object_set_new(j, "max_registrations_1s", json_integer((json_int_t)f.max_window));
		json_object_set_new(j, "max_window_start_s", json_real(f.window_at));
		json_object_set_new(j, "latency", rep_hist_json(&r->st.conn));
		json_object_set_new(j, "first_error", r->first_err[0] ? json_string(r->first_err) : json_null());
		rep_json_print(j);
		return;
	}
	printf("vouch-bench signup: ");
	rep_target(stdout, o);
	if (o->conn_rate > 0)
		printf(", %d new certificates at %g/s", o->connections, o->conn_rate);
	else
		printf(", %d new certificates unpaced (%d in progress per thread)", o->connections,
		       o->concurrency);
	printf(", %d thread%s", r->nth, r->nth == 1 ? "" : "s");
	if (r->procs > 1)
		printf(" x %d processes", r->procs);
	putchar('\n');
	printf("  %-12s %llu in %.3f s\n", "attempted", (unsigned long long)f.attempted, f.span);
	printf("  %-12s %llu (CONNACK 0): %.2f/s over the run; at most %llu in any 1 s window "
	       "(from %.3f s)\n", "registered", (unsigned long long)f.registered, f.per_s,
	       (unsigned long long)f.max_window, f.window_at);
	printf("  %-12s %llu (CONNACK 0x%02x)\n", "over limit", (unsigned long long)f.over_limit,
	       rep_wire_code(o, su_limit_code(o)));
	printf("  %-12s %llu: ", "other fail", (unsigned long long)f.other);
	rep_fail_text(stdout, f.fail);
	for (int i = 0; i < 256; i++)
		if (f.codes[i])
			printf("; CONNACK 0x%02x: %llu", i, (unsigned long long)f.codes[i]);
	putchar('\n');
	rep_hist_line(stdout, "connect", &r->st.conn);
	if (r->first_err[0] && f.other)
		printf("  %-12s %s\n", "first error", r->first_err);
}
