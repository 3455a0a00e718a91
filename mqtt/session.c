/*
 * Sessions: what a client ID keeps between connections (subscriptions,
 * messages in flight and queued, QoS 2 state, will). A session lives on the
 * home shard of its client ID, so takeover and resumption are shard-local.
 *
 * Outbound flow: a delivery is sent at once when the client's in-flight
 * window and the socket allow it, else queued (bounded by
 * --max-queued-messages, QoS 0 dropped first), and pumped as acks arrive
 * and the socket drains.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fifo.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/policy.h"
#include "mqtt/topic_tree.h"

/* Output bytes above which new deliveries wait in the session queue. */
#define OUT_HIGH_WATER (256u * 1024u)

static void sess_key(const void *v, const void **k, size_t *len)
{
	const struct session *s = v;
	*k = s->client_id;
	*len = s->cid_len;
}

struct session *session_find(struct bshard *bs, const uint8_t *cid, uint16_t len)
{
	if (!bs->sessions.key_of)
		return NULL;
	return hmap_get(&bs->sessions, cid, len);
}

struct session *session_new(struct bshard *bs, const uint8_t *cid, uint16_t len)
{
	if (!bs->sessions.key_of)
		hmap_init(&bs->sessions, sess_key);
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->client_id = malloc((size_t)len + 1);
	if (!s->client_id) {
		free(s);
		return NULL;
	}
	memcpy(s->client_id, cid, len);
	s->client_id[len] = 0;
	s->cid_len = len;
	s->sid = ((uint64_t)(bs->sh->id + 1) << 48) | ++bs->sid_seq;
	s->agg_index = -1;
	s->client_recv_max = 65535;
	s->client_max_packet = 268435460u;
	if (bs->n_sess_free) {
		s->slot = bs->sess_free[--bs->n_sess_free];
	} else {
		if (bs->n_sess_slots == bs->cap_sess_slots) {
			uint32_t nc = bs->cap_sess_slots ? bs->cap_sess_slots * 2 : 256;
			struct session **ns = realloc(bs->sess_slots, nc * sizeof *ns);
			uint32_t *nf = ns ? realloc(bs->sess_free, nc * sizeof *nf) : NULL;
			if (ns)
				bs->sess_slots = ns;
			if (nf)
				bs->sess_free = nf;
			if (!ns || !nf) {
				free(s->client_id);
				free(s);
				return NULL;
			}
			bs->cap_sess_slots = nc;
		}
		s->slot = bs->n_sess_slots++;
	}
	static __thread uint32_t gen_seq;
	s->gen = ++gen_seq;
	bs->sess_slots[s->slot] = s;
	if (hmap_put(&bs->sessions, s) != 0) {
		bs->sess_slots[s->slot] = NULL;
		bs->sess_free[bs->n_sess_free++] = s->slot;
		free(s->client_id);
		free(s);
		return NULL;
	}
	return s;
}

struct session *session_by_slot(struct bshard *bs, uint32_t slot, uint32_t gen)
{
	if (slot >= bs->n_sess_slots)
		return NULL;
	struct session *s = bs->sess_slots[slot];
	return s && s->gen == gen ? s : NULL;
}

/* ---- delivery rings ---- */

static int dring_push(struct dring *r, const struct delivery *d)
{
	if (r->n == r->cap) {
		struct delivery *nv = fifo_grow(r->v, &r->cap, &r->head, r->n, sizeof *nv, 8);
		if (!nv)
			return -ENOMEM;
		r->v = nv;
	}
	r->v[(r->head + r->n) % r->cap] = *d;
	r->n++;
	return 0;
}

static struct delivery *dring_at(struct dring *r, uint32_t i)
{
	return &r->v[(r->head + i) % r->cap];
}

static void dring_pop(struct dring *r)
{
	r->head = (r->head + 1) % r->cap;
	r->n--;
}

/* Remove entry i, keeping order. */
static void dring_remove(struct dring *r, uint32_t i)
{
	for (uint32_t j = i; j + 1 < r->n; j++)
		*dring_at(r, j) = *dring_at(r, j + 1);
	r->n--;
}

void dring_free(struct dring *r)
{
	for (uint32_t i = 0; i < r->n; i++)
		vmsg_unref_mt(dring_at(r, i)->m);
	free(r->v);
	memset(r, 0, sizeof *r);
}

static void count_drop(struct bshard *bs)
{
	struct shard *sh = bs->sh;
	atomic_store_explicit(&sh->stats.dropped,
			      atomic_load_explicit(&sh->stats.dropped, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static void count_queued(struct bshard *bs, int64_t delta)
{
	struct shard *sh = bs->sh;
	atomic_store_explicit(&sh->stats.queued,
			      atomic_load_explicit(&sh->stats.queued, memory_order_relaxed) + (uint64_t)delta,
			      memory_order_relaxed);
}

static bool pid_in_use(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->inflight.n; i++)
		if (dring_at(&s->inflight, i)->pid == pid)
			return true;
	return false;
}

static uint16_t next_pid(struct session *s)
{
	for (;;) {
		if (++s->next_pid == 0)
			s->next_pid = 1;
		if (!pid_in_use(s, s->next_pid))
			return s->next_pid;
	}
}

static bool socket_full(const struct session *s)
{
	return conn_out_pending(s->mc->c) > OUT_HIGH_WATER;
}

static void list_for_pump(struct bshard *bs, struct session *s)
{
	if (s->pump_listed)
		return;
	s->pump_listed = true;
	s->pump_next = bs->pump_head;
	bs->pump_head = s;
}

/* Send one delivery now. Consumes d's reference unless it goes in flight. */
static void send_now(struct bshard *bs, struct session *s, struct delivery *d)
{
	if (d->qos == 0) {
		int rc = send_publish(bs->sh, s->mc, d, false);
		if (rc == -EMSGSIZE || rc == -ENOMEM)
			count_drop(bs);
		vmsg_unref_mt(d->m);
		return;
	}
	d->pid = next_pid(s);
	d->state = d->qos == 1 ? D_WAIT_PUBACK : D_WAIT_PUBREC;
	int rc = send_publish(bs->sh, s->mc, d, false);
	if (rc != 0) {
		/* too large for this client, or expired: never in flight */
		if (rc != -ETIME)
			count_drop(bs);
		vmsg_unref_mt(d->m);
		return;
	}
	if (dring_push(&s->inflight, d) != 0) {
		vmsg_unref_mt(d->m);
		count_drop(bs);
	}
}

static uint32_t active_inflight(struct session *s)
{
	return s->inflight.n;
}

static bool can_send(struct bshard *bs, struct session *s, uint8_t qos)
{
	(void)bs;
	if (!s->mc || !s->mc->connected || socket_full(s))
		return false;
	return qos == 0 || active_inflight(s) < s->client_recv_max;
}

/* Queue with the bound: QoS 0 is dropped first. Takes d's reference. */
static void enqueue(struct bshard *bs, struct session *s, struct delivery *d)
{
	uint32_t max = bs->sh->cfg->max_queued_messages;
	if (s->queue.n >= max) {
		if (d->qos == 0) {
			vmsg_unref_mt(d->m);
			count_drop(bs);
			return;
		}
		uint32_t i;
		for (i = 0; i < s->queue.n; i++)
			if (dring_at(&s->queue, i)->qos == 0)
				break;
		if (i == s->queue.n) {
			vmsg_unref_mt(d->m);
			count_drop(bs);
			return;
		}
		vmsg_unref_mt(dring_at(&s->queue, i)->m);
		dring_remove(&s->queue, i);
		count_queued(bs, -1);
		count_drop(bs);
	}
	d->state = D_QUEUED;
	if (dring_push(&s->queue, d) != 0) {
		vmsg_unref_mt(d->m);
		count_drop(bs);
		return;
	}
	count_queued(bs, 1);
	if (s->mc)
		list_for_pump(bs, s);
}

void session_deliver(struct bshard *bs, struct session *s, struct vmsg *m, uint8_t qos,
		     bool retain, const uint32_t *sub_ids, uint8_t n_sub_ids)
{
	if (m->expire_at_ms && bs->sh->now_ms >= m->expire_at_ms)
		return;
	struct delivery d;
	memset(&d, 0, sizeof d);
	d.m = m;
	d.qos = qos;
	d.retain = retain;
	if (n_sub_ids > DELIVERY_SUBIDS)
		n_sub_ids = DELIVERY_SUBIDS;
	d.n_sub_ids = n_sub_ids;
	if (n_sub_ids)
		memcpy(d.sub_ids, sub_ids, n_sub_ids * sizeof *sub_ids);
	if (!s->mc && qos == 0) {
		count_drop(bs); /* QoS 0 is not kept for an offline session */
		return;
	}
	vmsg_ref_mt(m);
	if (s->queue.n == 0 && can_send(bs, s, qos))
		send_now(bs, s, &d);
	else
		enqueue(bs, s, &d);
}

void session_pump(struct bshard *bs, struct session *s)
{
	while (s->queue.n) {
		struct delivery *head = dring_at(&s->queue, 0);
		if (!can_send(bs, s, head->qos))
			break;
		struct delivery d = *head;
		dring_pop(&s->queue);
		count_queued(bs, -1);
		send_now(bs, s, &d);
	}
	if (s->queue.n && s->mc)
		list_for_pump(bs, s);
}

void sessions_pump_listed(struct bshard *bs)
{
	struct session *s = bs->pump_head;
	bs->pump_head = NULL;
	while (s) {
		struct session *next = s->pump_next;
		s->pump_listed = false;
		s->pump_next = NULL;
		if (s->mc && s->mc->connected && s->queue.n) {
			if (socket_full(s))
				list_for_pump(bs, s); /* wait for the socket */
			else
				session_pump(bs, s);
		}
		s = next;
	}
}

void session_resend(struct bshard *bs, struct session *s)
{
	for (uint32_t i = 0; i < s->inflight.n; i++) {
		struct delivery *d = dring_at(&s->inflight, i);
		if (d->state == D_WAIT_PUBCOMP) {
			send_ack(bs->sh, s->mc, MQTT_PUBREL, d->pid, 0, NULL);
		} else if (send_publish(bs->sh, s->mc, d, true) != 0) {
			/* expired or now too large: forget it */
			vmsg_unref_mt(d->m);
			dring_remove(&s->inflight, i);
			i--;
		}
	}
	session_pump(bs, s);
}

static int find_inflight(struct session *s, uint16_t pid, uint8_t state)
{
	for (uint32_t i = 0; i < s->inflight.n; i++) {
		struct delivery *d = dring_at(&s->inflight, i);
		if (d->pid == pid && d->state == state)
			return (int)i;
	}
	return -1;
}

static void inflight_done(struct bshard *bs, struct session *s, int i)
{
	vmsg_unref_mt(dring_at(&s->inflight, (uint32_t)i)->m);
	if (i == 0)
		dring_pop(&s->inflight);
	else
		dring_remove(&s->inflight, (uint32_t)i);
	session_pump(bs, s);
}

void session_on_puback(struct bshard *bs, struct session *s, uint16_t pid)
{
	int i = find_inflight(s, pid, D_WAIT_PUBACK);
	if (i >= 0)
		inflight_done(bs, s, i);
}

void session_on_pubrec(struct bshard *bs, struct session *s, uint16_t pid, uint8_t reason)
{
	int i = find_inflight(s, pid, D_WAIT_PUBREC);
	if (i < 0) {
		/* [MQTT-4.3.3] answer with PUBREL anyway; v5 says the id is unknown */
		if (find_inflight(s, pid, D_WAIT_PUBCOMP) >= 0)
			send_ack(bs->sh, s->mc, MQTT_PUBREL, pid, 0, NULL);
		else
			send_ack(bs->sh, s->mc, MQTT_PUBREL, pid, MQTT_RC_PACKET_ID_NOT_FOUND, NULL);
		return;
	}
	if (reason >= 0x80) {
		/* v5: the receiver refused it; the flow ends here */
		inflight_done(bs, s, i);
		return;
	}
	dring_at(&s->inflight, (uint32_t)i)->state = D_WAIT_PUBCOMP;
	send_ack(bs->sh, s->mc, MQTT_PUBREL, pid, 0, NULL);
}

void session_on_pubcomp(struct bshard *bs, struct session *s, uint16_t pid)
{
	int i = find_inflight(s, pid, D_WAIT_PUBCOMP);
	if (i >= 0)
		inflight_done(bs, s, i);
}

void session_publish_will(struct bshard *bs, struct session *s)
{
	struct vmsg *w = s->will;
	s->will = NULL;
	s->will_at_ms = 0;
	if (!w)
		return;
	/* a will is the session's publish: the same policy applies */
	if (pol_may_publish(&s->pol, (const char *)vmsg_topic(w), w->topic_len))
		route_publish(bs, w, NULL);
	vmsg_unref_mt(w);
}

void session_end(struct bshard *bs, struct session *s)
{
	if (s->will)
		session_publish_will(bs, s);
	while (s->n_subs > 0) /* each call removes one sub_rec */
		route_unsubscribe(bs, s, s->subs[s->n_subs - 1].filter, s->subs[s->n_subs - 1].len);
	free(s->subs);
	count_queued(bs, -(int64_t)s->queue.n);
	dring_free(&s->inflight);
	dring_free(&s->queue);
	free(s->qos2_in);
	/* unlink from the pump list */
	if (s->pump_listed) {
		struct session **pp = &bs->pump_head;
		while (*pp && *pp != s)
			pp = &(*pp)->pump_next;
		if (*pp)
			*pp = s->pump_next;
	}
	if (s->mc)
		s->mc->s = NULL;
	hmap_del(&bs->sessions, s);
	bs->sess_slots[s->slot] = NULL;
	bs->sess_free[bs->n_sess_free++] = s->slot;
	pol_conn_clear(&s->pol);
	free(s->client_id);
	free(s);
}
