/*
 * Client IDs bound to certificates. A binding lives in the registry (the
 * device record's client ID); this is the home shard's copy of the ones it
 * is home of, so that a CONNECT as a bound client ID by another identity
 * is refused even when the bound device never connected or its session is
 * gone. Several certificates may be bound to one client ID (a device
 * rotating its certificate): each of them may use it.
 *
 * Kept current by the registrar's notices (every binding change, status
 * change, registration and deletion sends one to every shard, in order,
 * carrying the record as it is after the change) and filled at shard start
 * from the registry. A change the start-up walk misses or sees half-way
 * is applied again by its notice, which the shard reads after the walk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mqtt/binding.h"
#include "mqtt/broker.h"
#include "registry/regfile.h"
#include "registry/registrar.h"

/* A bound client ID and the certificates bound to it (usually one). */
struct bcid {
	struct bnd *first;
	uint16_t len;
	char cid[];
};

struct bnd {
	uint8_t cert[REG_ID_LEN];
	struct bcid *owner;
	struct bnd *next;          /* of the same client ID */
};

struct bind_tab {
	struct hmap by_cid;        /* client ID -> struct bcid */
	struct hmap by_cert;       /* certificate ID -> struct bnd */
};

static void cid_key(const void *v, const void **k, size_t *len)
{
	const struct bcid *c = v;
	*k = c->cid;
	*len = c->len;
}

static void cert_key(const void *v, const void **k, size_t *len)
{
	const struct bnd *b = v;
	*k = b->cert;
	*len = REG_ID_LEN;
}

/* Forget certificate cert's binding, if any. Cannot fail. */
static void drop(struct bind_tab *t, const uint8_t cert[REG_ID_LEN])
{
	struct bnd *b = hmap_get(&t->by_cert, cert, REG_ID_LEN);
	if (!b)
		return;
	hmap_del(&t->by_cert, b);
	struct bcid *c = b->owner;
	for (struct bnd **pp = &c->first; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	free(b);
	if (!c->first) {
		hmap_del(&t->by_cid, c);
		free(c);
	}
}

static int add(struct bind_tab *t, const uint8_t cert[REG_ID_LEN], const char *cid, size_t len)
{
	struct bcid *c = hmap_get(&t->by_cid, cid, len);
	struct bcid *fresh = NULL;
	if (!c) {
		fresh = c = malloc(sizeof *c + len + 1);
		if (!c)
			return -ENOMEM;
		c->first = NULL;
		c->len = (uint16_t)len;
		memcpy(c->cid, cid, len);
		c->cid[len] = 0;
		if (hmap_put(&t->by_cid, c) != 0) {
			free(c);
			return -ENOMEM;
		}
	}
	struct bnd *b = malloc(sizeof *b);
	if (b)
		memcpy(b->cert, cert, REG_ID_LEN);
	if (!b || hmap_put(&t->by_cert, b) != 0) {
		free(b);
		if (fresh) {
			hmap_del(&t->by_cid, fresh);
			free(fresh);
		}
		return -ENOMEM;
	}
	b->owner = c;
	b->next = c->first;
	c->first = b;
	return 0;
}

static bool homed_here(struct bshard *bs, const char *cid, size_t len)
{
	return route_home(bs, (const uint8_t *)cid, len) == bs->sh->id;
}

/* The binding of certificate cert after a change: none, or cid. */
static void set(struct bshard *bs, const uint8_t cert[REG_ID_LEN], const char *cid, size_t len)
{
	struct bind_tab *t = bs->bind;
	struct bnd *was = hmap_get(&t->by_cert, cert, REG_ID_LEN);
	if (was && (was->owner->len != len || memcmp(was->owner->cid, cid, len) != 0)) {
		/* the certificate leaves this client ID: so does its claim on
		 * the session it made (struct session.bound) */
		struct session *s = session_find(bs, (const uint8_t *)was->owner->cid,
						 was->owner->len);
		if (s && s->bound && memcmp(s->bound_cert, cert, REG_ID_LEN) == 0)
			s->bound = false;
	}
	drop(t, cert);
	if (!len || !homed_here(bs, cid, len))
		return;
	if (add(t, cert, cid, len) != 0)
		log_error("binding: out of memory: client ID \"%.*s\" is not protected",
			  (int)len, cid);
}

struct walk {
	struct bshard *bs;
	uint32_t n;
};

static int walk_one(void *ctx, const struct reg_device *d)
{
	struct walk *w = ctx;
	if (!d->client_id_len || !homed_here(w->bs, d->client_id, d->client_id_len))
		return 0;
	set(w->bs, d->id, d->client_id, d->client_id_len);
	w->n++;
	return 0;
}

void bind_shard_start(struct bshard *bs)
{
	struct vouch_app *app = bs->sh->rt->app;
	struct bind_tab *t = calloc(1, sizeof *t);
	if (!t)
		abort(); /* start-up: nothing to lose yet */
	hmap_init(&t->by_cid, cid_key);
	hmap_init(&t->by_cert, cert_key);
	bs->bind = t;
	if (!app || !app->reg)
		return;
	struct walk w = { .bs = bs };
	uint64_t t0 = time_now_ms();
	reg_dev_foreach_mt(app->reg, walk_one, &w);
	if (w.n)
		log_info("shard %d: %u bound client IDs in %llu ms", bs->sh->id, w.n,
			 (unsigned long long)(time_now_ms() - t0));
}

void bind_shard_stop(struct bshard *bs)
{
	struct bind_tab *t = bs->bind;
	if (!t)
		return;
	uint32_t i = 0;
	void *v;
	while ((v = hmap_next(&t->by_cert, &i)))
		free(v);
	i = 0;
	while ((v = hmap_next(&t->by_cid, &i)))
		free(v);
	hmap_free(&t->by_cert);
	hmap_free(&t->by_cid);
	free(t);
	bs->bind = NULL;
}

void bind_on_notice(struct bshard *bs, const struct reg_notice *n)
{
	/* A deleted certificate frees its client ID; any other status keeps
	 * it (an INACTIVE or REVOKED device still owns its name). */
	const char *cid = n->status ? n->client_id : "";
	size_t len = strnlen(cid, REG_CLIENT_MAX);
	set(bs, n->id, cid, len);
	/* A client connected as this ID under another identity loses it now
	 * (v5 DISCONNECT 0x87), as it would at its next CONNECT. */
	if (!len || len > UINT16_MAX || bs->sh->cfg->allow_clientid_mismatch ||
	    !homed_here(bs, cid, len))
		return;
	struct session *s = session_find(bs, (const uint8_t *)cid, (uint16_t)len);
	if (s && s->mc && s->mc->connected && bind_refuses(bs, s->mc, (const uint8_t *)cid, len)) {
		s->mc->pr_reason = PR_CLIENT_ID_BOUND;
		mconn_close(bs->sh, s->mc, MQTT_RC_NOT_AUTHORIZED,
			    "client ID bound to another certificate");
	}
}

bool bind_refuses(struct bshard *bs, const struct mconn *mc, const uint8_t *cid, size_t len)
{
	const struct bcid *c = bs->bind ? hmap_get(&bs->bind->by_cid, cid, len) : NULL;
	if (!c)
		return false;
	if (!mc->has_cert)
		return true;
	for (const struct bnd *b = c->first; b; b = b->next)
		if (memcmp(b->cert, mc->cert_id, REG_ID_LEN) == 0)
			return false;
	return true;
}
