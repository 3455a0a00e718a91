/*
 * Routing across shards without locks.
 *
 * Each shard has a LOCAL subscription tree (its sessions) and a SUMMARY
 * tree saying which shards have subscribers per filter (owner = shard
 * token, weight = members of a shared group on that shard). Subscription
 * changes are broadcast to every shard's summary through the SPSC rings.
 * A PUBLISH is matched against the summary on the publishing shard, which
 * also picks, for every matching shared group, the one shard (weighted by
 * its member count) that delivers it; the message is then handed by
 * reference to each interested shard, which matches its local tree and
 * delivers to its own sessions. Every shard keeps a replica of the
 * retained messages, updated through the same rings so per-publisher order
 * holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/policy.h"
#include "mqtt/retain.h"
#include "mqtt/topic_tree.h"
#include "registry/policies.h"
#include "registry/registrar.h"

static void *shard_token(int id) { return (void *)(uintptr_t)(id + 1); }
static int token_shard(const void *t) { return (int)((uintptr_t)t - 1); }

int route_home(const struct bshard *bs, const uint8_t *cid, size_t len)
{
	return (int)(XXH3_64bits(cid, len) % (uint64_t)bs->sh->rt->n);
}

/* ---- summary ---- */

static void summary_apply(struct bshard *bs, const char *filter, size_t len, int from, uint32_t weight)
{
	if (weight == 0) {
		tt_unsubscribe(bs->summary, filter, len, shard_token(from), NULL);
	} else {
		struct tt_sub s = { .owner = shard_token(from), .weight = weight };
		if (tt_subscribe(bs->summary, filter, len, &s, NULL) != 0)
			log_error("summary: cannot record %.*s", (int)len, filter);
	}
}

static void summary_broadcast(struct bshard *bs, const char *filter, size_t len, uint32_t weight)
{
	struct shard *sh = bs->sh;
	for (int to = 0; to < sh->rt->n; to++) {
		if (to == sh->id) {
			summary_apply(bs, filter, len, sh->id, weight);
			continue;
		}
		char *copy = malloc(len + 1);
		if (!copy)
			continue;
		memcpy(copy, filter, len);
		copy[len] = 0;
		struct xmsg m = { .type = BX_SUMMARY, .a = (uint32_t)sh->id, .p = copy, .b = weight };
		if (shard_post(sh, to, &m) != 0)
			free(copy);
	}
}

static struct share_count *share_get(struct bshard *bs, uint64_t key, bool create)
{
	for (uint32_t i = 0; i < bs->n_shares; i++)
		if (bs->shares[i].key == key)
			return &bs->shares[i];
	if (!create)
		return NULL;
	if (bs->n_shares == bs->cap_shares) {
		uint32_t nc = bs->cap_shares ? bs->cap_shares * 2 : 8;
		struct share_count *nv = realloc(bs->shares, nc * sizeof *nv);
		if (!nv)
			return NULL;
		bs->shares = nv;
		bs->cap_shares = nc;
	}
	struct share_count *e = &bs->shares[bs->n_shares++];
	e->key = key;
	e->count = 0;
	return e;
}

static int sub_rec_find(struct session *s, const char *filter, uint16_t len)
{
	for (uint32_t i = 0; i < s->n_subs; i++)
		if (s->subs[i].len == len && memcmp(s->subs[i].filter, filter, len) == 0)
			return (int)i;
	return -1;
}

int route_subscribe(struct bshard *bs, struct session *s, const char *filter, uint16_t len,
		    uint8_t options, uint32_t sub_id)
{
	struct tt_sub e = { .owner = s, .sub_id = sub_id, .weight = 1, .options = options };
	unsigned flags = 0;
	int i = sub_rec_find(s, filter, len);
	if (i < 0) {
		if (s->n_subs == s->cap_subs) {
			uint32_t nc = s->cap_subs ? s->cap_subs * 2 : 4;
			struct sub_rec *nv = realloc(s->subs, nc * sizeof *nv);
			if (!nv)
				return -ENOMEM;
			s->subs = nv;
			s->cap_subs = nc;
		}
		char *copy = malloc((size_t)len + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, filter, len);
		copy[len] = 0;
		int rc = tt_subscribe(bs->local, copy, len, &e, &flags);
		if (rc != 0) {
			free(copy);
			return rc;
		}
		s->subs[s->n_subs++] = (struct sub_rec){ copy, len, options, sub_id };
	} else {
		int rc = tt_subscribe(bs->local, filter, len, &e, &flags);
		if (rc != 0)
			return rc;
		s->subs[i].options = options;
		s->subs[i].sub_id = sub_id;
	}
	uint64_t key = tt_group_key_of(filter, len);
	if (key) {
		if (flags & TT_CREATED) {
			struct share_count *sc = share_get(bs, key, true);
			if (sc) {
				sc->count++;
				summary_broadcast(bs, filter, len, sc->count);
			}
		}
	} else if (flags & TT_FIRST) {
		summary_broadcast(bs, filter, len, 1);
	}
	return (int)flags;
}

int route_unsubscribe(struct bshard *bs, struct session *s, const char *filter, uint16_t len)
{
	unsigned flags = 0;
	int i = sub_rec_find(s, filter, len);
	if (i < 0)
		return -ENOENT;
	char *own = s->subs[i].filter; /* filter may point at it */
	s->subs[i] = s->subs[--s->n_subs];
	int rc = tt_unsubscribe(bs->local, own, len, s, &flags);
	if (rc == 0) {
		uint64_t key = tt_group_key_of(own, len);
		if (key) {
			struct share_count *sc = share_get(bs, key, false);
			if (sc && sc->count > 0) {
				sc->count--;
				summary_broadcast(bs, own, len, sc->count);
				if (sc->count == 0)
					*sc = bs->shares[--bs->n_shares];
			}
		} else if (flags & TT_LAST) {
			summary_broadcast(bs, own, len, 0);
		}
	}
	free(own);
	return rc;
}

/* ---- local delivery ---- */

/* A new delivery of the current match, or NULL when out of memory. */
static struct agg *agg_push(struct bshard *bs, struct session *s)
{
	if (bs->n_agg == bs->cap_agg) {
		uint32_t nc = bs->cap_agg ? bs->cap_agg * 2 : 64;
		struct agg *nv = realloc(bs->agg, nc * sizeof *nv);
		if (!nv)
			return NULL;
		bs->agg = nv;
		bs->cap_agg = nc;
	}
	struct agg *a = &bs->agg[bs->n_agg++];
	a->s = s;
	a->qos = 0;
	a->retain = false;
	a->n_sub_ids = 0;
	return a;
}

/* The session's one delivery of the current match [MQTT-3.3.4-2]. */
static struct agg *agg_slot(struct bshard *bs, struct session *s)
{
	if (s->match_epoch == bs->epoch)
		return &bs->agg[s->agg_index];
	struct agg *a = agg_push(bs, s);
	if (a) {
		s->match_epoch = bs->epoch;
		s->agg_index = (int32_t)(bs->n_agg - 1);
	}
	return a;
}

static void on_local_sub(void *ctx, const struct tt_sub *e)
{
	struct bshard *bs = ctx;
	struct vmsg *m = bs->cur_msg;
	struct session *s = e->owner;
	/* [MQTT-3.8.3-3] no-local: not back to the publishing session */
	if ((e->options & MQTT_SUBOPT_NO_LOCAL) && s->sid == m->origin)
		return;
	/* only subscriptions that can match a topic the session may not
	 * receive are checked per message (mqtt/policy.c) */
	if ((e->options & POL_SUB_RECV_CHECK) &&
	    !pol_may_receive(&s->pol, (const char *)vmsg_topic(m), m->topic_len))
		return;
	struct agg *a = agg_slot(bs, s);
	if (!a)
		return;
	uint8_t q = MQTT_SUBOPT_QOS(e->options);
	if (q > m->qos)
		q = m->qos;
	if (q > a->qos)
		a->qos = q;
	/* [MQTT-3.3.1-12/13] retain as published */
	if ((e->options & MQTT_SUBOPT_RETAIN_AS_PUB) && m->retain)
		a->retain = true;
	if (e->sub_id && a->n_sub_ids < DELIVERY_SUBIDS)
		a->sub_ids[a->n_sub_ids++] = e->sub_id;
}

/* A member that may not receive the topic is never picked. */
static bool skip_denied(void *ctx, const struct tt_sub *e)
{
	struct vmsg *m = ctx;
	struct session *s = e->owner;
	return (e->options & POL_SUB_RECV_CHECK) &&
	       !pol_may_receive(&s->pol, (const char *)vmsg_topic(m), m->topic_len);
}

static bool skip_offline(void *ctx, const struct tt_sub *e)
{
	const struct session *s = e->owner;
	return !s->mc || skip_denied(ctx, e);
}

static void on_local_group(void *ctx, struct tt_group *g)
{
	struct bshard *bs = ctx;
	uint64_t key = tt_group_key(g);
	bool mine = false;
	for (uint32_t i = 0; i < bs->n_want_keys; i++)
		if (bs->want_keys[i] == key)
			mine = true;
	if (!mine)
		return;
	struct vmsg *m = bs->cur_msg;
	const struct tt_sub *e = tt_group_pick(g, skip_offline, m);
	if (!e)
		e = tt_group_pick(g, skip_denied, m);
	if (!e)
		return;
	uint8_t q = MQTT_SUBOPT_QOS(e->options);
	if (q > m->qos)
		q = m->qos;
	bool retain = (e->options & MQTT_SUBOPT_RETAIN_AS_PUB) && m->retain;
	/* delivered after the match: the tree must not change inside it; a
	 * shared delivery is never merged with the session's others */
	struct agg *a = agg_push(bs, e->owner);
	if (!a)
		return;
	a->qos = q;
	a->retain = retain;
	a->n_sub_ids = e->sub_id ? 1 : 0;
	a->sub_ids[0] = e->sub_id;
}

static void deliver_local(struct bshard *bs, struct vmsg *m, bool normal, const uint64_t *keys,
			  uint32_t nkeys)
{
	bs->epoch++;
	bs->n_agg = 0;
	bs->cur_msg = m;
	bs->want_keys = keys;
	bs->n_want_keys = nkeys;
	tt_match(bs->local, (const char *)vmsg_topic(m), m->topic_len,
		 normal ? on_local_sub : NULL, nkeys ? on_local_group : NULL, bs);
	for (uint32_t i = 0; i < bs->n_agg; i++) {
		struct agg *a = &bs->agg[i];
		session_deliver(bs, a->s, m, a->qos, a->retain, a->sub_ids, a->n_sub_ids);
	}
	bs->n_agg = 0;
	bs->cur_msg = NULL;
}

/* ---- publishing ---- */

static void on_summary_sub(void *ctx, const struct tt_sub *e)
{
	struct bshard *bs = ctx;
	bs->route_mask |= 1ull << token_shard(e->owner);
}

static void on_summary_group(void *ctx, struct tt_group *g)
{
	struct bshard *bs = ctx;
	const struct tt_sub *e = tt_group_pick(g, NULL, NULL);
	if (!e)
		return;
	if (bs->n_route_keys + 2 > bs->cap_route_keys) {
		uint32_t nc = bs->cap_route_keys ? bs->cap_route_keys * 2 : 16;
		uint64_t *nv = realloc(bs->route_keys, nc * sizeof *nv);
		if (!nv)
			return;
		bs->route_keys = nv;
		bs->cap_route_keys = nc;
	}
	bs->route_keys[bs->n_route_keys++] = (uint64_t)token_shard(e->owner);
	bs->route_keys[bs->n_route_keys++] = tt_group_key(g);
}

static void retain_apply(struct bshard *bs, struct vmsg *m)
{
	void *old = rt_set(bs->retained, (const char *)vmsg_topic(m), m->topic_len,
			   m->payload_len ? m : NULL);
	if (!m->payload_len)
		vmsg_unref_mt(m);
	if (old)
		vmsg_unref_mt(old);
}

uint64_t route_publish(struct bshard *bs, struct vmsg *m, const struct conn *publisher)
{
	struct shard *sh = bs->sh;
	int n = sh->rt->n;
	uint64_t confirm = 0;
	if (m->retain) {
		/* [MQTT-3.3.1-5..7] every replica gets the new retained state */
		for (int to = 0; to < n; to++) {
			vmsg_ref_mt(m);
			if (to == sh->id) {
				retain_apply(bs, m);
				continue;
			}
			struct xmsg x = { .type = BX_RETAIN, .p = m };
			if (shard_post(sh, to, &x) != 0)
				vmsg_unref_mt(m);
		}
	}
	bs->route_mask = 0;
	bs->n_route_keys = 0;
	tt_match(bs->summary, (const char *)vmsg_topic(m), m->topic_len, on_summary_sub,
		 on_summary_group, bs);
	for (int to = 0; to < n; to++) {
		bool normal = (bs->route_mask >> to) & 1;
		uint64_t keys[64];
		uint32_t nk = 0;
		for (uint32_t i = 0; i + 1 < bs->n_route_keys && nk < 64; i += 2)
			if ((int)bs->route_keys[i] == to)
				keys[nk++] = bs->route_keys[i + 1];
		if (!normal && nk == 0)
			continue;
		if (to == sh->id) {
			deliver_local(bs, m, normal, keys, nk);
			continue;
		}
		/* one ROUTE per two group keys; the first carries `normal`,
		 * the last asks for the confirmation (puback.c) */
		uint32_t k = 0;
		do {
			uint32_t flags = normal ? ROUTE_NORMAL : 0;
			bool ask = publisher && k + 2 >= nk && puback_ask(bs, to, publisher);
			struct xmsg x = { .type = BX_ROUTE, .p = m,
					  .a = flags | (ask ? ROUTE_CONFIRM : 0) | (uint32_t)sh->id << 8,
					  .b = k < nk ? keys[k] : 0, .c = k + 1 < nk ? keys[k + 1] : 0 };
			vmsg_ref_mt(m);
			if (shard_post(sh, to, &x) != 0) {
				vmsg_unref_mt(m);
				if (ask)
					puback_unask(bs, to);
			} else if (ask) {
				confirm |= 1ull << to;
			}
			normal = false;
			k += 2;
		} while (k < nk);
	}
	return confirm;
}

/* ---- retained messages for a new subscription ---- */

struct ret_ctx {
	struct bshard *bs;
	struct session *s;
	uint8_t qos;
	uint32_t sub_id;
	struct vmsg **found;
	uint32_t n, cap;
};

static void on_retained(void *ctx, const char *topic, size_t tlen, void *val)
{
	(void)topic;
	(void)tlen;
	struct ret_ctx *rc = ctx;
	if (rc->n == rc->cap) {
		uint32_t nc = rc->cap ? rc->cap * 2 : 16;
		struct vmsg **nv = realloc(rc->found, nc * sizeof *nv);
		if (!nv)
			return;
		rc->found = nv;
		rc->cap = nc;
	}
	rc->found[rc->n++] = val;
}

void route_retained(struct bshard *bs, struct session *s, const char *filter, uint16_t len,
		    uint8_t options, uint32_t sub_id)
{
	struct ret_ctx rc = { bs, s, MQTT_SUBOPT_QOS(options), sub_id, NULL, 0, 0 };
	rt_match(bs->retained, filter, len, on_retained, &rc);
	for (uint32_t i = 0; i < rc.n; i++) {
		struct vmsg *m = rc.found[i];
		uint8_t q = rc.qos < m->qos ? rc.qos : m->qos;
		if ((options & POL_SUB_RECV_CHECK) &&
		    !pol_may_receive(&s->pol, (const char *)vmsg_topic(m), m->topic_len))
			continue;
		/* [MQTT-3.3.1-9] retained on subscription: RETAIN set */
		session_deliver(bs, s, m, q, true, sub_id ? &sub_id : NULL, sub_id ? 1 : 0);
	}
	free(rc.found);
}

/* ---- messages from other shards ---- */

void route_on_xmsg(struct bshard *bs, const struct xmsg *x)
{
	switch (x->type) {
	case BX_ROUTE: {
		struct vmsg *m = x->p;
		uint64_t keys[2];
		uint32_t nk = 0;
		if (x->b)
			keys[nk++] = x->b;
		if (x->c)
			keys[nk++] = x->c;
		deliver_local(bs, m, x->a & ROUTE_NORMAL, keys, nk);
		vmsg_unref_mt(m);
		if (x->a & ROUTE_CONFIRM)
			puback_owe(bs, (int)(x->a >> 8));
		break;
	}
	case BX_SUMMARY: {
		char *f = x->p;
		summary_apply(bs, f, strlen(f), (int)x->a, (uint32_t)x->b);
		free(f);
		break;
	}
	case BX_RETAIN:
		retain_apply(bs, x->p);
		break;
	default:
		break;
	}
}

void route_discard_xmsg(const struct xmsg *x)
{
	switch (x->type) {
	case BX_ROUTE:
	case BX_RETAIN:
		vmsg_unref_mt(x->p);
		break;
	case BX_SUMMARY:
		free(x->p);
		break;
	case RX_CERT_STATUS:
	case RX_CA_STATUS:
	case RX_EVENT:
		free(x->p);
		break;
	case RX_POLICY:
		pol_set_unref_mt(x->p);
		break;
	case BX_HANDOFF: {
		struct conn_xfer *cx = x->p;
		if (!cx->direct) /* a direct index is not ours to close here */
			close(cx->fd);
		free(cx->in);
		free(cx->upper);
		free(cx);
		break;
	}
	default:
		break;
	}
}
