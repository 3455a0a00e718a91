/*
 * Acknowledging a QoS 1 or 2 PUBLISH once every shard it went to has
 * queued it.
 *
 * A PUBACK (PUBREC for QoS 2) tells the publisher the broker has taken the
 * message, and the publisher's window (its Receive Maximum) is what keeps
 * it from running ahead. Sent as soon as the publisher's shard had posted
 * the message to the subscribers' shards, it let a publisher outrun a
 * busier subscriber shard: the ring and --max-shard-backlog took the
 * difference and the subscriber's queue (--max-queued-messages) dropped
 * what piled up. So an acknowledgement now waits until each shard the
 * message was routed to has delivered it to its sessions' queues, and the
 * publisher's window holds end to end. A 3.1.1 client has no Receive
 * Maximum: its input pauses while --receive-maximum acknowledgements wait.
 *
 * All of it on shard threads, through the rings, no locks:
 *  - the publishing shard keeps, per connection, its acknowledgements in
 *    the order the PUBLISHes came [MQTT-4.6.0-2] [MQTT-4.6.0-3], each with
 *    the shards still to confirm; and, per other shard, a FIFO of the
 *    connections whose messages it routed there asking for confirmation;
 *  - the other shard counts those ROUTEs as it delivers them, per origin,
 *    and sends the count back once a turn (BX_CONFIRM);
 *  - a ring is FIFO, so the k-th confirmation from a shard is for the
 *    k-th ROUTE that asked it.
 */
#include <stdlib.h>

#include "core/fifo.h"
#include "core/log.h"
#include "mqtt/broker.h"

struct pub_ack {
	uint64_t wait;             /* shards still to confirm */
	const char *why;           /* reason string (a literal) or NULL */
	uint16_t pid;
	uint8_t type;              /* MQTT_PUBACK or MQTT_PUBREC */
	uint8_t reason;
};

struct ackq {
	struct pub_ack *v;         /* ring buffer */
	uint32_t head, n, cap;
	bool paused;               /* input paused at --receive-maximum */
};

/* A FIFO of connection references (one per shard the publishing shard
 * asked for confirmations). */
struct cref_fifo {
	struct cref { uint32_t slot, gen; } *v;
	uint32_t head, n, cap;
};

int puback_shard_start(struct bshard *bs)
{
	int n = bs->sh->rt->n;

	bs->confirm_to = calloc((size_t)n, sizeof *bs->confirm_to);
	bs->owed = calloc((size_t)n, sizeof *bs->owed);
	return bs->confirm_to && bs->owed ? 0 : -1;
}

void puback_shard_stop(struct bshard *bs)
{
	if (bs->confirm_to)
		for (int i = 0; i < bs->sh->rt->n; i++)
			free(bs->confirm_to[i].v);
	free(bs->confirm_to);
	free(bs->owed);
	bs->confirm_to = NULL;
	bs->owed = NULL;
}

/* See mqtt/broker.h. */
bool puback_ask(struct bshard *bs, int to, const struct conn *c)
{
	struct cref_fifo *f = &bs->confirm_to[to];

	if (f->n == f->cap) {
		struct cref *nv = fifo_grow(f->v, &f->cap, &f->head, f->n, sizeof *f->v, 16);

		if (!nv)
			return false;
		f->v = nv;
	}
	f->v[(f->head + f->n) % f->cap] = (struct cref){ c->slot, c->gen };
	f->n++;
	return true;
}

/* See mqtt/broker.h. */
void puback_unask(struct bshard *bs, int to)
{
	bs->confirm_to[to].n--;
}

/* See mqtt/broker.h. */
void puback_owe(struct bshard *bs, int origin)
{
	bs->owed[origin]++;
	bs->owed_mask |= 1ull << origin;
}

/* See mqtt/broker.h. */
void puback_turn_end(struct bshard *bs)
{
	uint64_t m = bs->owed_mask;

	while (m) {
		int to = __builtin_ctzll(m);

		m &= m - 1;
		struct xmsg x = { .type = BX_CONFIRM, .a = (uint32_t)bs->sh->id, .c = bs->owed[to] };
		/* not posted (out of memory): the count waits for the next turn */
		if (shard_post(bs->sh, to, &x) == 0) {
			bs->owed[to] = 0;
			bs->owed_mask &= ~(1ull << to);
		}
	}
}

static bool ackq_push(struct ackq *q, const struct pub_ack *a)
{
	if (q->n == q->cap) {
		struct pub_ack *nv = fifo_grow(q->v, &q->cap, &q->head, q->n, sizeof *q->v, 16);

		if (!nv)
			return false;
		q->v = nv;
	}
	q->v[(q->head + q->n) % q->cap] = *a;
	q->n++;
	return true;
}

/* Sends the acknowledgements at the head that wait for nobody; resumes
 * the input paused for them once half the window is free. An empty queue
 * is freed: most publishers have one message in flight at a time, and an
 * idle connection should not keep the memory of its busiest moment. */
static void release(struct shard *sh, struct mconn *mc)
{
	struct ackq *q = mc->acks;
	bool resume = false;

	while (q->n && q->v[q->head].wait == 0) {
		struct pub_ack *a = &q->v[q->head];

		if (mc->c->state == CONN_OPEN)
			send_ack(sh, mc, a->type, a->pid, a->reason, a->why);
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	if (q->paused && q->n <= sh->cfg->receive_maximum / 2) {
		q->paused = false;
		resume = mc->c->input_paused && mc->c->state == CONN_OPEN;
	}
	if (!q->n && !q->paused)
		puback_free(mc);
	/* last: reading again may handle packets, even close */
	if (resume)
		conn_resume_input(sh, mc->c);
}

/* See mqtt/broker.h. */
void puback_send(struct bshard *bs, struct mconn *mc, uint8_t type, uint16_t pid, uint8_t reason,
		 const char *why, uint64_t wait)
{
	struct shard *sh = bs->sh;
	struct pub_ack a = { .wait = wait, .why = why, .pid = pid, .type = type, .reason = reason };

	if (!wait && (!mc->acks || !mc->acks->n)) {
		send_ack(sh, mc, type, pid, reason, why);
		return;
	}
	if (!mc->acks)
		mc->acks = calloc(1, sizeof *mc->acks);
	if (!mc->acks || !ackq_push(mc->acks, &a)) {
		/* out of memory: acknowledged now, maybe out of order, rather
		 * than never */
		log_error("acknowledgement of packet %u sent early: out of memory", pid);
		send_ack(sh, mc, type, pid, reason, why);
	}
}

/* See mqtt/broker.h. */
bool puback_full(const struct shard *sh, const struct mconn *mc)
{
	return mc->acks && mc->acks->n >= sh->cfg->receive_maximum;
}

/* See mqtt/broker.h. */
void puback_wait(struct shard *sh, struct mconn *mc)
{
	mc->acks->paused = true;
	conn_pause_flow(sh, mc->c);
}

/* Shard `from` has queued the oldest ROUTE of mc that waited for it. */
static void confirmed(struct shard *sh, struct mconn *mc, int from)
{
	struct ackq *q = mc->acks;
	uint64_t bit = 1ull << from;

	if (!q)
		return;
	for (uint32_t i = 0; i < q->n; i++) {
		struct pub_ack *a = &q->v[(q->head + i) % q->cap];

		if (a->wait & bit) {
			a->wait &= ~bit;
			if (i == 0)
				release(sh, mc);
			return;
		}
	}
}

/* See mqtt/broker.h. */
void puback_on_confirm(struct bshard *bs, int from, uint64_t count)
{
	struct shard *sh = bs->sh;
	struct cref_fifo *f = &bs->confirm_to[from];

	for (uint64_t k = 0; k < count; k++) {
		if (!f->n) {
			log_error("shard %d confirmed more messages than it was sent", from);
			return;
		}
		struct cref r = f->v[f->head];

		f->head = (f->head + 1) % f->cap;
		f->n--;
		struct conn *c = shard_conn(sh, r.slot, r.gen);
		if (c && c->upper)
			confirmed(sh, c->upper, from);
	}
}

/* See mqtt/broker.h. */
void puback_free(struct mconn *mc)
{
	if (mc->acks) {
		free(mc->acks->v);
		free(mc->acks);
		mc->acks = NULL;
	}
}
