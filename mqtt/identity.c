/*
 * The connect decision for devices that come in with a client certificate
 * (mutual TLS): after the handshake and before CONNACK, in this order:
 *   1. the issuing CA is INACTIVE (or unknown): refused;
 *   2. the certificate is known: ACTIVE goes on, any other status is
 *      refused with CONNACK 0x87 (v3.1.1: 0x05);
 *   3. unknown, and its CA allows automatic registration: the registrar is
 *      asked (it owns the signup limiter); the CONNECT waits unread in the
 *      connection's input until the answer comes back;
 *   4. unknown, CA without automatic registration: refused.
 * A returning device costs one hash and one compare in the shard's
 * fingerprint cache and no registry read. The registrar's notices keep the
 * cache current and close live connections of a disabled certificate or CA.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/binding.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "registry/cache.h"
#include "registry/regfile.h"
#include "registry/registrar.h"
#include "tls/cert.h"
#include "tls/server.h"

/* The fingerprint cache of the shard running on this thread, for the TLS
 * hook below (called by wolfSSL inside a handshake on that shard). */
static __thread struct fp_cache *t_fp;

void identity_shard_start(struct bshard *bs)
{
	t_fp = bs->fp;
}

bool identity_known_mt(void *ctx, const uint8_t cert_id[32])
{
	(void)ctx;
	if (!t_fp)
		return false;
	const struct fp_entry *e = fp_get(t_fp, cert_id);
	return e && e->status == REG_ACTIVE;
}

static struct vouch_app *app_of(struct bshard *bs)
{
	return bs->sh->rt->app;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static void accept_entry(struct mconn *mc, const struct fp_entry *e)
{
	mc->id_state = ID_ACCEPTED;
	memcpy(mc->ca_id, e->issuer, sizeof mc->ca_id);
	free(mc->bound_id);
	free(mc->cert_cn);
	mc->bound_id = e->client_id_len ? dupn(e->client_id, e->client_id_len) : NULL;
	mc->cert_cn = e->cn && e->cn[0] ? dupn(e->cn, strlen(e->cn)) : NULL;
}

static int refuse(struct mconn *mc, uint8_t reason)
{
	mc->id_state = ID_REFUSED;
	mc->id_refusal = reason;
	return ID_REFUSED;
}

static bool ca_active(struct vouch_app *app, const uint8_t id[32])
{
	struct reg_ca ca;
	return reg_ca_get_mt(app->reg, id, &ca) == 0 && ca.status == REG_ACTIVE;
}

/* Apply a cached/registry status to the decision. */
static int decide_known(struct bshard *bs, struct mconn *mc, const struct fp_entry *e)
{
	struct vouch_app *app = app_of(bs);
	if (!ca_active(app, e->issuer))
		return refuse(mc, MQTT_RC_NOT_AUTHORIZED);
	if (e->status != REG_ACTIVE)
		return refuse(mc, MQTT_RC_NOT_AUTHORIZED);
	accept_entry(mc, e);
	return ID_ACCEPTED;
}

/* Owner-only counter read by the metrics (relaxed, like struct shard_stats). */
static void count_one(_Atomic uint64_t *v)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static const struct fp_entry *lookup(struct bshard *bs, const uint8_t id[32])
{
	const struct fp_entry *e = fp_get(bs->fp, id);
	count_one(e ? &bs->sh->stats.fp_hits : &bs->sh->stats.fp_misses);
	if (e)
		return e;
	struct reg_device d;
	if (reg_dev_get_mt(app_of(bs)->reg, id, &d) != 0)
		return NULL;
	if (fp_put(bs->fp, &d) != 0)
		return NULL;
	return fp_get(bs->fp, id);
}

/* The registered CA above an intermediate: the one whose subject is the
 * intermediate's issuer and whose key signed it. CAs are few; this runs
 * only for a certificate seen for the first time. */
struct anchor_ctx {
	const struct tls_cert_info *inter;
	uint8_t id[32];
	bool found;
};

static int anchor_each(void *ctx, const struct reg_ca *ca)
{
	struct anchor_ctx *a = ctx;
	struct tls_cert_info ci;
	if (tls_cert_parse(ca->der, ca->der_len, &ci) != 0)
		return 0;
	if (ci.subject.len != a->inter->issuer.len ||
	    memcmp(ci.subject.ptr, a->inter->issuer.ptr, ci.subject.len) != 0)
		return 0;
	if (tls_cert_check_sig(a->inter, &ci) != 0)
		return 0;
	memcpy(a->id, ca->id, sizeof a->id);
	a->found = true;
	return 1;
}

/* The registered CA a leaf belongs to: its issuer, or the CA that signed
 * its (unregistered) intermediate issuer. 0 or -ENOENT. */
static int find_ca(struct vouch_app *app, const uint8_t *issuer_der, size_t len, uint8_t id[32])
{
	if (!issuer_der || tls_cert_id(issuer_der, len, id) != 0)
		return -ENOENT;
	struct reg_ca ca;
	if (reg_ca_get_mt(app->reg, id, &ca) == 0)
		return 0;
	struct tls_cert_info inter;
	if (tls_cert_parse(issuer_der, len, &inter) != 0 || !inter.is_ca)
		return -ENOENT;
	struct anchor_ctx a = { .inter = &inter };
	reg_ca_foreach_mt(app->reg, anchor_each, &a);
	if (!a.found)
		return -ENOENT;
	memcpy(id, a.id, 32);
	return 0;
}

int identity_decide(struct bshard *bs, struct mconn *mc)
{
	struct vouch_app *app = app_of(bs);
	struct conn *c = mc->c;
	if (mc->id_state == ID_ACCEPTED && mc->has_cert && app && app->reg) {
		/* Accepted before (on the shard that accepted the connection,
		 * or when the registrar answered), and the CONNECT is read
		 * again, typically on the client ID's home shard after a
		 * hand-over. A notice that disabled the certificate or its CA
		 * may have reached both shards while the connection was on
		 * neither (close_matching found it nowhere): check again. */
		const struct fp_entry *e = lookup(bs, mc->cert_id);
		if (!e)
			return refuse(mc, MQTT_RC_NOT_AUTHORIZED);
		return decide_known(bs, mc, e);
	}
	if (mc->id_state == ID_ACCEPTED || mc->id_state == ID_REFUSED || mc->id_state == ID_PENDING)
		return mc->id_state;
	const struct tls_identity *tid = tls_conn_identity(c);
	if (!tid || !app || !app->reg) {
		/* plain TCP, or TLS without a client certificate (allowed only
		 * when --require-certificate is off) */
		mc->id_state = ID_ACCEPTED;
		return ID_ACCEPTED;
	}
	mc->has_cert = true;
	memcpy(mc->cert_id, tid->cert_id, sizeof mc->cert_id);
	const struct fp_entry *e = lookup(bs, tid->cert_id);
	if (e)
		return decide_known(bs, mc, e);
	/* unknown certificate: who issued it? */
	uint8_t ca_id[32];
	if (find_ca(app, tid->issuer_der, tid->issuer_der_len, ca_id) != 0)
		return refuse(mc, MQTT_RC_NOT_AUTHORIZED);
	struct reg_ca ca;
	if (reg_ca_get_mt(app->reg, ca_id, &ca) != 0 || ca.status != REG_ACTIVE)
		return refuse(mc, MQTT_RC_NOT_AUTHORIZED);
	if (!ca.auto_register || reg_dev_revoked_mt(app->reg, tid->cert_id))
		return refuse(mc, MQTT_RC_NOT_AUTHORIZED);
	memcpy(mc->ca_id, ca_id, sizeof mc->ca_id);
	struct signup_req *req = malloc(sizeof *req + tid->der_len);
	if (!req)
		return refuse(mc, MQTT_RC_SERVER_UNAVAILABLE);
	req->shard = bs->sh->id;
	req->conn_slot = c->slot;
	req->conn_gen = c->gen;
	memcpy(req->cert_id, tid->cert_id, sizeof req->cert_id);
	memcpy(req->ca_id, ca_id, sizeof req->ca_id);
	req->der_len = (uint32_t)tid->der_len;
	memcpy(req->der, tid->der, tid->der_len);
	if (!app->registrar || registrar_submit_mt(app->registrar, bs->sh->id, req) != 0) {
		free(req);
		return refuse(mc, MQTT_RC_CONNECTION_RATE_EXCEEDED);
	}
	mc->id_state = ID_PENDING;
	return ID_PENDING;
}

/* Close every live connection of this shard that a notice disables. */
static void close_matching(struct bshard *bs, const uint8_t id[32], bool by_ca)
{
	struct shard *sh = bs->sh;
	for (uint32_t i = 0; i < sh->n_slots; i++) {
		struct conn *c = sh->conns[i];
		struct mconn *mc = c ? c->upper : NULL;
		if (!mc || !mc->has_cert || mc->id_state != ID_ACCEPTED)
			continue;
		if (memcmp(by_ca ? mc->ca_id : mc->cert_id, id, 32) != 0)
			continue;
		mc->id_state = ID_REFUSED;
		mc->id_refusal = MQTT_RC_NOT_AUTHORIZED;
		mconn_close(sh, mc, MQTT_RC_NOT_AUTHORIZED,
			    by_ca ? "certificate authority disabled" : "certificate disabled");
	}
}

void identity_on_xmsg(struct bshard *bs, const struct xmsg *m)
{
	struct shard *sh = bs->sh;
	struct vouch_app *app = app_of(bs);
	switch (m->type) {
	case RX_SIGNUP_DONE: {
		struct conn *c = shard_conn(sh, m->a, (uint32_t)m->b);
		struct mconn *mc = c ? c->upper : NULL;
		if (!mc || mc->id_state != ID_PENDING)
			break; /* gone meanwhile */
		unsigned outcome = (unsigned)(m->c & 0xff);
		enum reg_status st = (enum reg_status)(m->c >> 8);
		if (outcome == SIGNUP_REGISTERED || outcome == SIGNUP_EXISTS) {
			const struct fp_entry *e = lookup(bs, mc->cert_id);
			if (e && st == REG_ACTIVE && e->status == REG_ACTIVE)
				accept_entry(mc, e);
			else
				refuse(mc, MQTT_RC_NOT_AUTHORIZED);
		} else if (outcome == SIGNUP_OVER_LIMIT) {
			refuse(mc, MQTT_RC_CONNECTION_RATE_EXCEEDED);
		} else if (outcome == SIGNUP_ERROR) {
			refuse(mc, MQTT_RC_SERVER_UNAVAILABLE);
		} else {
			refuse(mc, MQTT_RC_NOT_AUTHORIZED);
		}
		/* the CONNECT waited in the input: read it again */
		conn_reoffer_input(sh, c);
		break;
	}
	case RX_CERT_STATUS: {
		struct reg_notice *n = m->p;
		struct reg_device d;
		if (n->status == 0 || reg_dev_get_mt(app->reg, n->id, &d) != 0)
			fp_update(bs->fp, n->id, 0, NULL, 0);
		else if (fp_get(bs->fp, n->id))
			fp_put(bs->fp, &d);
		if (n->status != REG_ACTIVE)
			close_matching(bs, n->id, false);
		bind_on_notice(bs, n);
		free(n);
		break;
	}
	case RX_CA_STATUS: {
		struct reg_notice *n = m->p;
		if (n->status != REG_ACTIVE)
			close_matching(bs, n->id, true);
		free(n);
		break;
	}
	case RX_EVENT: {
		struct reg_event_msg *ev = m->p;
		struct mqtt_props pr = { 0 };   /* an answer's correlation data */
		if (ev->corr_len) {
			MQTT_SET(&pr, MQTT_PROP_CORRELATION_DATA);
			pr.correlation_data.p = ev->corr;
			pr.correlation_data.len = (uint16_t)ev->corr_len;
		}
		struct vmsg *v = vmsg_new((const uint8_t *)ev->topic, ev->topic_len, ev->corr_len ? &pr : NULL,
					  (const uint8_t *)ev->json, ev->len, 0, false, 0, sh->now_ms);
		if (v) {
			route_publish(bs, v, NULL);
			vmsg_unref_mt(v);
		}
		free(ev);
		break;
	}
	default:
		break;
	}
}
