/*
 * bench/pubsub.c - `vouch-bench pubsub`: publishers and subscribers over
 * a set of topics, measuring rates, loss and end-to-end latency.
 *
 * Topology: subscriber s subscribes to topic s % T (or to
 * $share/GROUP/topic with --shared), publisher p publishes on topic p % T,
 * so one topic means everybody hears everybody and T = N = M means pairs.
 * Subscribers connect and subscribe first; publishers connect once every
 * SUBACK is in; then publishing runs for --duration seconds, paced at
 * --rate per publisher or, unpaced, as fast as the QoS 1/2 window
 * (--inflight, capped by the broker's Receive Maximum) and the socket let
 * it. Then the run drains: it waits (at most --drain seconds) for the
 * deliveries and acknowledgements still on their way.
 *
 * Every payload starts with the monotonic time of sending (8 bytes, host
 * order), then the publisher's index and a sequence number (4 bytes each,
 * when --size is 16 or more), so that a subscriber measures the latency of
 * each message and tells new messages from duplicates. Loss is counted per
 * subscription: what the publishers on its topic sent, minus the distinct
 * messages it received.
 */
#include "bench/bench.h"
#include "mqtt/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Packet identifier bitmap of a publisher: 65536 bits. */
#define PID_WORDS (65536 / 64)
/* Most PUBLISHes one publisher queues in one loop turn. */
#define BURST 1024
/* The drain ends early after this long without any progress. */
#define DRAIN_IDLE_NS 1000000000ull

/* Whether subscribers keep the last sequence number of every publisher
 * (to tell duplicates): the payload must hold one, and the table stays
 * under 64 MiB. */
static bool seq_tracking(const struct bench_opts *o)
{
	return o->size >= 16 && (uint64_t)o->publishers * (uint64_t)o->subscribers <= (16u << 20);
}

/* [MQTT-2.3.1-2] a new QoS 1/2 PUBLISH takes an identifier not in use. */
static uint16_t pid_take(struct bconn *c)
{
	for (unsigned i = 0; i < 65535; i++) {
		uint16_t id = c->next_pid;
		c->next_pid = (uint16_t)(id == 65535 ? 1 : id + 1);
		uint64_t bit = 1ull << (id & 63);
		if (!(c->pid_used[id >> 6] & bit)) {
			c->pid_used[id >> 6] |= bit;
			return id;
		}
	}
	return 0;
}

/* A QoS 1/2 flow of c ended (PUBACK, PUBCOMP, or a refusing PUBREC). */
static void flow_done(struct bthread *th, struct bconn *c, uint16_t id, uint8_t reason)
{
	uint64_t bit = 1ull << (id & 63);
	if (!c->pid_used || !id || !(c->pid_used[id >> 6] & bit)) {
		bthread_note(th, "acknowledgement for packet id %u not in flight", id);
		return;
	}
	c->pid_used[id >> 6] &= ~bit;
	c->inflight--;
	c->acked++;
	th->d_unacked--;
	if (reason >= 0x80)
		th->st.pub_refused++;
}

static bool ps_may_start(struct bthread *th, struct bconn *c)
{
	int ph = atomic_load_explicit(&th->b->phase, memory_order_acquire);
	if (c->role == ROLE_SUB)
		return ph <= PH_RUN;
	return ph == PH_SETUP_PUBS || ph == PH_RUN;
}

static void ps_on_connack(struct bthread *th, struct bconn *c, const struct mqtt_packet *cp)
{
	const struct bench_opts *o = th->b->o;

	if (c->role == ROLE_PUB) {
		if (o->qos && !(c->pid_used = calloc(PID_WORDS, sizeof *c->pid_used))) {
			bthread_note(th, "out of memory");
			bconn_down(th, c, BF_PROTOCOL);
		}
		return;
	}
	char filter[512];
	const char *t = th->b->topic_names[c->topic];
	if (o->shared)
		snprintf(filter, sizeof filter, "$share/%s/%s", o->shared, t);
	else
		snprintf(filter, sizeof filter, "%s", t);
	uint8_t list[600];
	size_t n = mqtt_topics_put(list, sizeof list, filter, strlen(filter), true, o->qos);
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE };
	p.u.subscribe.packet_id = 1;
	p.u.subscribe.list = list;
	p.u.subscribe.list_len = (uint32_t)n;
	p.u.subscribe.count = 1;
	c->state = BC_SUB;
	if (!n || bconn_send(th, c, &p) != 0) {
		bthread_note(th, "cannot encode SUBSCRIBE");
		bconn_down(th, c, BF_PROTOCOL);
	}
}

static void send_ack(struct bthread *th, struct bconn *c, uint8_t type, uint16_t id)
{
	struct mqtt_packet p = { .type = type };
	p.u.ack.packet_id = id;
	if (bconn_send(th, c, &p) != 0)
		bthread_note(th, "cannot encode an acknowledgement");
}

static void on_publish(struct bthread *th, struct bconn *c, const struct mqtt_publish *pb)
{
	uint64_t now = bench_now();

	if (pb->qos == 1)
		send_ack(th, c, MQTT_PUBACK, pb->packet_id);  /* [MQTT-4.3.2-2] */
	else if (pb->qos == 2)
		send_ack(th, c, MQTT_PUBREC, pb->packet_id);  /* [MQTT-4.3.3-2] */
	if (c->role != ROLE_SUB) {
		bthread_note(th, "a publisher received a PUBLISH");
		return;
	}
	c->received++;
	th->st.pub_out += pb->payload_len;
	th->st.last_recv = now;
	if (pb->payload_len >= 8) {
		uint64_t ts;
		memcpy(&ts, pb->payload, 8);
		if (ts <= now && ts >= th->b->t0)
			hist_add(&th->st.lat, now - ts);
	}
	bool fresh = true;
	if (pb->payload_len >= 16 && c->last_seq) {
		uint32_t pidx, seq;
		memcpy(&pidx, pb->payload + 8, 4);
		memcpy(&seq, pb->payload + 12, 4);
		if (pidx < (uint32_t)th->b->o->publishers) {
			if (seq > c->last_seq[pidx])
				c->last_seq[pidx] = seq;
			else
				fresh = false;
		}
	}
	if (fresh)
		th->d_delivered++;
	else
		c->dups++;
}

static void ps_on_packet(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_SUBACK: {
		if (c->state != BC_SUB) {
			bthread_note(th, "unexpected SUBACK");
			return;
		}
		uint8_t code = p->u.suback.count ? p->u.suback.codes[0] : 0x80;
		if (code >= 0x80) {
			bthread_note(th, "SUBACK refused: 0x%02x", code);
			bconn_down(th, c, BF_REFUSED);
			return;
		}
		c->subscribed = true;
		atomic_fetch_add_explicit(&th->b->topic_subs[c->topic], 1, memory_order_relaxed);
		bconn_ready(th, c);
		return;
	}
	case MQTT_PUBLISH:
		on_publish(th, c, &p->u.publish);
		return;
	case MQTT_PUBREL:
		send_ack(th, c, MQTT_PUBCOMP, p->u.ack.packet_id); /* [MQTT-4.3.3-2] */
		return;
	case MQTT_PUBACK:
	case MQTT_PUBCOMP:
		flow_done(th, c, p->u.ack.packet_id, p->u.ack.reason);
		return;
	case MQTT_PUBREC:
		if (p->u.ack.reason >= 0x80)
			flow_done(th, c, p->u.ack.packet_id, p->u.ack.reason);
		else
			send_ack(th, c, MQTT_PUBREL, p->u.ack.packet_id); /* [MQTT-4.3.3-1] */
		return;
	default:
		bthread_note(th, "unexpected packet type %u", p->type);
	}
}

static void ps_on_down(struct bthread *th, struct bconn *c, enum bfail why, int was)
{
	if (c->role == ROLE_PUB && c->inflight) {
		th->d_unacked -= c->inflight;
		c->inflight = 0;
	}
}

/* Queue one PUBLISH on publisher c. Returns 0, or -1 when it cannot. */
static int publish_one(struct bthread *th, struct bconn *c)
{
	const struct bench_opts *o = th->b->o;
	uint16_t id = 0;

	if (o->qos && !(id = pid_take(c)))
		return -1;
	uint32_t seq = c->seq + 1;
	uint64_t ts = bench_now();
	memcpy(th->payload, &ts, 8);
	if (o->size >= 16) {
		uint32_t pidx = c->gidx - (uint32_t)o->subscribers;
		memcpy(th->payload + 8, &pidx, 4);
		memcpy(th->payload + 12, &seq, 4);
	}
	const char *t = th->b->topic_names[c->topic];
	struct mqtt_packet p = { .type = MQTT_PUBLISH };
	p.u.publish.qos = o->qos;
	p.u.publish.packet_id = id;
	p.u.publish.topic = (struct mqtt_str){ (const uint8_t *)t, (uint16_t)strlen(t) };
	p.u.publish.payload = th->payload;
	p.u.publish.payload_len = o->size;
	if (bconn_send(th, c, &p) != 0) {
		bthread_note(th, "cannot encode PUBLISH");
		if (id)
			c->pid_used[id >> 6] &= ~(1ull << (id & 63));
		return -1;
	}
	c->seq = seq;
	c->sent++;
	if (o->qos) {
		c->inflight++;
		th->d_unacked++;
	}
	th->d_sent++;
	th->d_expected += c->fanout;
	th->st.pub_in += o->size;
	return 0;
}

/* Publish what is due on c. Returns the next time c needs a turn (now:
 * at once), or 0 when it waits for the socket (EPOLLOUT) or for
 * acknowledgements (EPOLLIN). */
static uint64_t pump(struct bthread *th, struct bconn *c, uint64_t now)
{
	const struct bench *b = th->b;
	const struct bench_opts *o = b->o;
	uint64_t gap = o->rate > 0 ? (uint64_t)(1e9 / o->rate) : 0;

	if (!c->next_send) {
		uint32_t subs = atomic_load_explicit(&b->topic_subs[c->topic], memory_order_relaxed);
		c->fanout = o->shared ? (subs > 0) : subs;
		/* spread the publishers over one period */
		uint32_t pidx = c->gidx - (uint32_t)o->subscribers;
		c->next_send = b->t_run + gap * pidx / (uint64_t)o->publishers;
		if (!c->next_send)
			c->next_send = 1;
	}
	for (int n = 0; n < BURST; n++) {
		/* enough queued: the end of this turn writes it, and unless the
		 * socket is full (EPOLLOUT armed) the next turn goes on */
		if (c->out.len - c->out.off >= BENCH_OUT_HIGH)
			return c->out_armed ? 0 : now;
		if (o->qos && c->inflight >= c->window)
			return 0;
		if (gap) {
			if (now < c->next_send)
				return c->next_send;
			c->next_send += gap;
		}
		if (publish_one(th, c) < 0)
			return 0;
	}
	return now;
}

static uint64_t ps_tick(struct bthread *th, uint64_t now)
{
	struct bench *b = th->b;
	uint64_t dl = 0;

	if (atomic_load_explicit(&b->phase, memory_order_acquire) == PH_RUN) {
		for (uint32_t i = 0; i < th->npubs; i++) {
			struct bconn *c = &th->conns[th->pubs[i]];
			if (c->state != BC_READY)
				continue;
			uint64_t t = pump(th, c, now);
			if (t && (!dl || t < dl))
				dl = t;
		}
	}
	if (th->d_sent) {
		atomic_fetch_add_explicit(&b->sent, th->d_sent, memory_order_relaxed);
		atomic_fetch_add_explicit(&b->expected, th->d_expected, memory_order_relaxed);
		th->d_sent = th->d_expected = 0;
	}
	if (th->d_delivered) {
		atomic_fetch_add_explicit(&b->delivered, th->d_delivered, memory_order_relaxed);
		th->d_delivered = 0;
	}
	if (th->d_unacked) {
		atomic_fetch_add_explicit(&b->unacked, (uint64_t)th->d_unacked, memory_order_relaxed);
		th->d_unacked = 0;
	}
	return dl;
}

static const struct bench_ops pubsub_ops = {
	.may_start = ps_may_start,
	.on_connack = ps_on_connack,
	.on_packet = ps_on_packet,
	.on_down = ps_on_down,
	.tick = ps_tick,
};

/* Results, from the connections' counters after the loops ended. */
struct ps_result {
	uint64_t sent, acked, received, dups, expected, unique, lost;
	uint64_t subs_ready, pubs_ready, subs_lossy;
	uint64_t sub_min, sub_max;  /* distinct messages per subscription */
	uint64_t setup_fail[BF__COUNT];
	double run_s, out_s;
};

static void tally(const struct bench *b, const struct bstats *st, struct ps_result *r)
{
	const struct bench_opts *o = b->o;
	uint64_t *tsent = calloc((size_t)o->topics, sizeof *tsent);
	uint64_t *trecv = calloc((size_t)o->topics, sizeof *trecv);
	uint32_t *tsubs = calloc((size_t)o->topics, sizeof *tsubs);

	for (int i = 0; i < BF__COUNT; i++)
		r->setup_fail[i] = st->fail[i];
	for (int i = 0; i < b->nth; i++) {
		const struct bthread *th = &b->th[i];
		for (uint32_t k = 0; k < th->nconns; k++) {
			const struct bconn *c = &th->conns[k];
			if (c->role == ROLE_PUB) {
				r->sent += c->sent;
				r->acked += c->acked;
				if (tsent)
					tsent[c->topic] += c->sent;
			}
		}
	}
	for (int i = 0; i < b->nth; i++) {
		const struct bthread *th = &b->th[i];
		for (uint32_t k = 0; k < th->nconns; k++) {
			const struct bconn *c = &th->conns[k];
			if (c->role == ROLE_PUB && c->was_ready)
				r->pubs_ready++;
			if (c->role != ROLE_SUB)
				continue;
			r->received += c->received;
			r->dups += c->dups;
			if (!c->subscribed)
				continue;
			r->subs_ready++;
			uint64_t uniq = c->received - c->dups;
			if (r->subs_ready == 1 || uniq < r->sub_min)
				r->sub_min = uniq;
			if (uniq > r->sub_max)
				r->sub_max = uniq;
			if (!tsent)
				continue;
			if (o->shared) {
				trecv[c->topic] += uniq;
				tsubs[c->topic]++;
			} else {
				uint64_t exp = tsent[c->topic];
				r->expected += exp;
				r->unique += uniq;
				if (uniq < exp) {
					r->lost += exp - uniq;
					r->subs_lossy++;
				}
			}
		}
	}
	if (o->shared && tsent) {
		for (int t = 0; t < o->topics; t++) {
			if (!tsubs[t])
				continue;
			r->expected += tsent[t];
			r->unique += trecv[t];
			if (trecv[t] < tsent[t]) {
				r->lost += tsent[t] - trecv[t];
				r->subs_lossy++;
			}
		}
	}
	free(tsent);
	free(trecv);
	free(tsubs);
	r->run_s = (double)(b->t_stop - b->t_run) / 1e9;
	r->out_s = st->last_recv > b->t_run ? (double)(st->last_recv - b->t_run) / 1e9 : r->run_s;
	if (r->out_s <= 0)
		r->out_s = r->run_s;
}

static void report_text(const struct bench *b, const struct bstats *st, const struct ps_result *r)
{
	const struct bench_opts *o = b->o;
	char rate[64];

	if (o->rate > 0)
		snprintf(rate, sizeof rate, "%g msg/s per publisher", o->rate);
	else if (o->qos)
		snprintf(rate, sizeof rate, "unpaced (window %d)", o->inflight);
	else
		snprintf(rate, sizeof rate, "unpaced");
	printf("vouch-bench pubsub: ");
	rep_target(stdout, o);
	printf(", QoS %u, %d publisher%s -> %d subscriber%s%s%s on %d topic%s, %u B, %s, %.1f s, %d thread%s\n",
	       o->qos, o->publishers, o->publishers == 1 ? "" : "s",
	       o->subscribers, o->subscribers == 1 ? "" : "s",
	       o->shared ? " in group " : "", o->shared ? o->shared : "",
	       o->topics, o->topics == 1 ? "" : "s", o->size, rate, o->duration,
	       b->nth, b->nth == 1 ? "" : "s");
	printf("  %-12s %llu msgs  %.1f msg/s  %.2f MiB/s over %.2f s\n", "published",
	       (unsigned long long)r->sent, (double)r->sent / r->run_s,
	       (double)st->pub_in / r->run_s / 1048576.0, r->run_s);
	printf("  %-12s %llu msgs  %.1f msg/s  %.2f MiB/s over %.2f s\n", "delivered",
	       (unsigned long long)r->received, (double)r->received / r->out_s,
	       (double)st->pub_out / r->out_s / 1048576.0, r->out_s);
	printf("  %-12s expected %llu, got %llu distinct: lost %llu (%.3f %%) on %llu of %llu subscription%s; duplicates %llu%s\n",
	       "loss", (unsigned long long)r->expected, (unsigned long long)r->unique,
	       (unsigned long long)r->lost,
	       r->expected ? 100.0 * (double)r->lost / (double)r->expected : 0.0,
	       (unsigned long long)r->subs_lossy, (unsigned long long)(o->shared ? (uint64_t)o->topics : r->subs_ready),
	       r->subs_ready == 1 ? "" : "s", (unsigned long long)r->dups,
	       seq_tracking(o) ? "" : " (not tracked)");
	if (r->subs_ready > 1)
		printf("  %-12s %llu to %llu distinct messages per subscriber\n", "per sub",
		       (unsigned long long)r->sub_min, (unsigned long long)r->sub_max);
	if (o->qos)
		printf("  %-12s %llu of %llu QoS %u flows completed, %llu refused by the broker\n", "acks",
		       (unsigned long long)r->acked, (unsigned long long)r->sent, o->qos,
		       (unsigned long long)st->pub_refused);
	rep_hist_line(stdout, "latency", &st->lat);
	printf("  %-12s %llu of %d subscribers, %llu of %d publishers ready; setup failures: ", "connections",
	       (unsigned long long)r->subs_ready, o->subscribers,
	       (unsigned long long)r->pubs_ready, o->publishers);
	rep_fail_text(stdout, r->setup_fail);
	printf("; lost while running: ");
	rep_fail_text(stdout, st->down);
	putchar('\n');
	const char *e = rep_first_err(b);
	if (e)
		printf("  %-12s %s\n", "first error", e);
}

static void report_json(const struct bench *b, const struct bstats *st, const struct ps_result *r)
{
	const struct bench_opts *o = b->o;
	json_t *j = json_object();
	json_object_set_new(j, "mode", json_string("pubsub"));
	json_object_set_new(j, "host", json_string(o->host));
	json_object_set_new(j, "port", json_integer(o->port));
	json_object_set_new(j, "tls", json_boolean(o->tls));
	json_object_set_new(j, "mqtt_version", json_integer(o->version));
	json_object_set_new(j, "qos", json_integer(o->qos));
	json_object_set_new(j, "publishers", json_integer(o->publishers));
	json_object_set_new(j, "subscribers", json_integer(o->subscribers));
	json_object_set_new(j, "topics", json_integer(o->topics));
	json_object_set_new(j, "shared_group", o->shared ? json_string(o->shared) : json_null());
	json_object_set_new(j, "size", json_integer(o->size));
	json_object_set_new(j, "rate_per_publisher", json_real(o->rate));
	json_object_set_new(j, "inflight", json_integer(o->inflight));
	json_object_set_new(j, "threads", json_integer(b->nth));
	json_object_set_new(j, "duration_s", json_real(r->run_s));
	json_object_set_new(j, "delivery_s", json_real(r->out_s));
	json_object_set_new(j, "sent", json_integer((json_int_t)r->sent));
	json_object_set_new(j, "received", json_integer((json_int_t)r->received));
	json_object_set_new(j, "expected", json_integer((json_int_t)r->expected));
	json_object_set_new(j, "distinct", json_integer((json_int_t)r->unique));
	json_object_set_new(j, "lost", json_integer((json_int_t)r->lost));
	json_object_set_new(j, "loss_pct", json_real(r->expected ? 100.0 * (double)r->lost / (double)r->expected : 0.0));
	json_object_set_new(j, "lossy_subscriptions", json_integer((json_int_t)r->subs_lossy));
	json_object_set_new(j, "duplicates", json_integer((json_int_t)r->dups));
	json_object_set_new(j, "duplicates_tracked", json_boolean(seq_tracking(o)));
	json_object_set_new(j, "subscriber_min", json_integer((json_int_t)r->sub_min));
	json_object_set_new(j, "subscriber_max", json_integer((json_int_t)r->sub_max));
	json_object_set_new(j, "acked", json_integer((json_int_t)r->acked));
	json_object_set_new(j, "refused_by_broker", json_integer((json_int_t)st->pub_refused));
	json_object_set_new(j, "msgs_in_per_s", json_real((double)r->sent / r->run_s));
	json_object_set_new(j, "msgs_out_per_s", json_real((double)r->received / r->out_s));
	json_object_set_new(j, "bytes_in_per_s", json_real((double)st->pub_in / r->run_s));
	json_object_set_new(j, "bytes_out_per_s", json_real((double)st->pub_out / r->out_s));
	json_object_set_new(j, "wire_bytes_sent", json_integer((json_int_t)st->bytes_out));
	json_object_set_new(j, "wire_bytes_received", json_integer((json_int_t)st->bytes_in));
	json_object_set_new(j, "latency", rep_hist_json(&st->lat));
	json_object_set_new(j, "connect_latency", rep_hist_json(&st->conn));
	json_object_set_new(j, "subscribers_ready", json_integer((json_int_t)r->subs_ready));
	json_object_set_new(j, "publishers_ready", json_integer((json_int_t)r->pubs_ready));
	json_object_set_new(j, "setup_failures", rep_fail_json(r->setup_fail));
	json_object_set_new(j, "lost_connections", rep_fail_json(st->down));
	const char *e = rep_first_err(b);
	json_object_set_new(j, "first_error", e ? json_string(e) : json_null());
	rep_json_print(j);
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Deadline for n connection attempts spread over the loops. */
static uint64_t setup_deadline(const struct bench_opts *o, int nth, int n)
{
	double waves = 1.0 + (double)n / ((double)o->concurrency * nth);
	return bench_now() + (uint64_t)((o->timeout * waves + 2.0) * 1e9);
}

static int run(struct bench *b, struct bstats *st, struct ps_result *r)
{
	const struct bench_opts *o = b->o;
	uint64_t subs = (uint64_t)o->subscribers, all = subs + (uint64_t)o->publishers;

	atomic_store(&b->phase, PH_SETUP_SUBS);
	if (bench_start(b) != 0) {
		fprintf(stderr, "vouch-bench: cannot start threads\n");
		return BENCH_EXIT_FAIL;
	}
	bool ok = bench_wait_settled(b, subs, setup_deadline(o, b->nth, o->subscribers));
	uint64_t subs_ready = atomic_load(&b->ready);
	if (ok && subs_ready) {
		bench_phase(b, PH_SETUP_PUBS);
		ok = bench_wait_settled(b, all, setup_deadline(o, b->nth, o->publishers));
	}
	if (!ok || !subs_ready || atomic_load(&b->ready) == subs_ready) {
		bench_finish(b);
		const char *e = rep_first_err(b);
		fprintf(stderr, "vouch-bench: %s%s%s\n",
			bench_interrupted() ? "interrupted during setup"
			: !subs_ready ? "no subscriber could subscribe"
			: !ok ? "setup did not finish in time" : "no publisher could connect",
			e ? ": " : "", e ? e : "");
		return BENCH_EXIT_FAIL;
	}

	b->t_run = bench_now();
	bench_phase(b, PH_RUN);
	uint64_t end = b->t_run + (uint64_t)(o->duration * 1e9);
	while (bench_now() < end && !bench_interrupted()) {
		bench_progress(b, false);
		nap_ms(5);
	}
	b->t_stop = bench_now();
	bench_phase(b, PH_DRAIN);
	(void)bench_phase_seen(b, 2000000000ull);

	/* wait for what is on its way; stop early once complete or idle */
	uint64_t dend = b->t_stop + (uint64_t)(o->drain * 1e9);
	uint64_t last_progress = bench_now(), last_d = 0, last_u = UINT64_MAX;
	for (;;) {
		uint64_t now = bench_now();
		uint64_t d = atomic_load(&b->delivered), u = atomic_load(&b->unacked);
		if ((d >= atomic_load(&b->expected) && u == 0) || now >= dend || bench_interrupted())
			break;
		if (d != last_d || u != last_u) {
			last_d = d;
			last_u = u;
			last_progress = now;
		} else if (now - last_progress > DRAIN_IDLE_NS) {
			break;
		}
		bench_progress(b, false);
		nap_ms(5);
	}
	bench_progress(b, true);
	bench_finish(b);
	bench_merge(b, st);
	tally(b, st, r);
	return 0;
}

/* See bench/bench.h. */
int bench_pubsub(const struct bench_opts *o, const struct bpool *pool)
{
	struct bench b = { .o = o, .ops = &pubsub_ops, .pool = pool };
	int total = o->subscribers + o->publishers;
	int rc = BENCH_EXIT_FAIL;
	struct bstats *st = calloc(1, sizeof *st);
	struct ps_result res = { 0 };
	char prefix[64];
	const char *tp = o->topic_prefix;

	b.t0 = bench_now();
	b.nth = o->threads < total ? o->threads : total;
	b.th = calloc((size_t)b.nth, sizeof *b.th);
	b.topic_subs = calloc((size_t)o->topics, sizeof *b.topic_subs);
	b.topic_names = calloc((size_t)o->topics, sizeof *b.topic_names);
	if (!st || !b.th || !b.topic_subs || !b.topic_names)
		goto out;
	if (!tp) {
		snprintf(prefix, sizeof prefix, "vbench/%d", (int)getpid());
		tp = prefix;
	}
	for (int t = 0; t < o->topics; t++)
		if (asprintf(&b.topic_names[t], "%s/%d", tp, t) < 0) {
			b.topic_names[t] = NULL;
			goto out;
		}
	for (int i = 0; i < b.nth; i++) {
		struct bthread *th = &b.th[i];
		uint32_t n = (uint32_t)(total / b.nth + (i < total % b.nth));
		if (bthread_setup(&b, th, i, n) != 0)
			goto out;
		th->pubs = calloc(n ? n : 1, sizeof *th->pubs);
		th->payload = calloc(1, o->size);
		if (!th->pubs || !th->payload)
			goto out;
		for (uint32_t k = 0; k < o->size; k++)
			th->payload[k] = (uint8_t)('a' + k % 26);
		/* connection g goes to loop g % nth: subscribers come first */
		for (uint32_t k = 0; k < n; k++) {
			struct bconn *c = &th->conns[k];
			uint32_t g = k * (uint32_t)b.nth + (uint32_t)i;
			c->gidx = g;
			if (g < (uint32_t)o->subscribers) {
				c->role = ROLE_SUB;
				c->topic = g % (uint32_t)o->topics;
				if (seq_tracking(o) &&
				    !(c->last_seq = calloc((size_t)o->publishers, sizeof *c->last_seq)))
					goto out;
			} else {
				c->role = ROLE_PUB;
				c->topic = (g - (uint32_t)o->subscribers) % (uint32_t)o->topics;
				th->pubs[th->npubs++] = k;
			}
		}
	}
	rc = run(&b, st, &res);
	if (rc == 0) {
		if (o->json)
			report_json(&b, st, &res);
		else
			report_text(&b, st, &res);
	}
out:
	if (rc && !st)
		fprintf(stderr, "vouch-bench: out of memory\n");
	if (b.th)
		for (int i = 0; i < b.nth; i++)
			bthread_teardown(&b.th[i]);
	if (b.topic_names)
		for (int t = 0; t < o->topics; t++)
			free(b.topic_names[t]);
	free(b.topic_names);
	free((void *)b.topic_subs);
	free(b.th);
	free(st);
	return rc;
}
