/*
 * Presence: a shard tells the registrar when a client is accepted and when
 * its connection ends (registry/presence.c keeps the table of live clients
 * and publishes $SYS/presence/...). One small message each way through the
 * shard's request ring; never blocks: when the ring is full the message is
 * dropped and counted (the registrar replaces a stale entry on the client's
 * next "connected").
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "mqtt/broker.h"
#include "mqtt/topic_tree.h"
#include "registry/registrar.h"

/* How long a presence message may wait for the registrar, and how many
 * (of the RG_RING_CAP a ring holds) before it is woken at once. */
#define PRESENCE_LAG_MS 10
#define PRESENCE_BATCH 256

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether a subscription anywhere in the broker (this shard's summary of
 * all of them) matches the client's presence topic; true when unsure. */
static bool listened(struct bshard *bs, bool connected, const char *cid, size_t len)
{
	char topic[256];
	int n = rg_presence_topic(topic, sizeof topic, connected, cid, len);

	return n < 0 || tt_match(bs->summary, topic, (size_t)n, NULL, NULL, NULL) != 0;
}

void presence_post(struct bshard *bs, struct mconn *mc, const char *cid, size_t len,
		   bool connected, uint8_t reason)
{
	struct shard *sh = bs->sh;
	struct vouch_app *app = sh->rt->app;
	struct presence_msg *pm;

	if (!app || !app->registrar || len > UINT16_MAX)
		return;
	if (connected) {
		mc->connected_at_ms = wall_ms();
		/* The registrar's table of live clients serves the certificate
		 * API; for a client without a certificate the message is only
		 * the $SYS/presence event, which nobody may be listening to
		 * (44 -> 37 us of broker CPU per plain connection without it). */
		if (!mc->has_cert && !listened(bs, true, cid, len))
			return;
		mc->announced = true;
	} else {
		if (!mc->announced && !listened(bs, false, cid, len))
			return;
		mc->announced = false;
	}
	pm = malloc(sizeof *pm + len + 1);
	if (!pm)
		return;
	memset(pm, 0, sizeof *pm);
	pm->connected = connected;
	pm->reason = reason;
	pm->version = mc->version;
	pm->has_cert = mc->has_cert;
	pm->shard = (int16_t)sh->id;
	pm->conn_slot = mc->c->slot;
	pm->conn_gen = mc->c->gen;
	pm->since_ms = mc->connected_at_ms;
	if (mc->has_cert)
		memcpy(pm->cert_id, mc->cert_id, sizeof pm->cert_id);
	conn_peer_text(mc->c, pm->peer, sizeof pm->peer);
	pm->cid_len = (uint16_t)len;
	memcpy(pm->client_id, cid, len);
	pm->client_id[len] = '\0';
	if (registrar_post_lazy_mt(app->registrar, sh->id, RQ_PRESENCE, pm) != 0) {
		free(pm);
		atomic_fetch_add_explicit(&sh->stats.presence_dropped, 1, memory_order_relaxed);
		if (log_limit_ok(&sh->noisy, sh->now_ms, 20, 10000))
			log_warn("presence event dropped: the registrar's ring is full");
		presence_wake(bs);
		return;
	}
	/* Not worth a wake each (a thread switch per connect and per close
	 * when the registrar sleeps): one wake PRESENCE_LAG_MS after the
	 * first, sooner when many wait. */
	if (bs->presence_unwoken++ == 0)
		shard_timer(sh, sh->now_ms + PRESENCE_LAG_MS, BT_PRESENCE, 0, 0);
	else if (bs->presence_unwoken >= PRESENCE_BATCH)
		presence_wake(bs);
}

/* See mqtt/broker.h. */
void presence_wake(struct bshard *bs)
{
	struct vouch_app *app = bs->sh->rt->app;

	if (!bs->presence_unwoken || !app || !app->registrar)
		return;
	bs->presence_unwoken = 0; /* a timer still armed finds nothing to do */
	registrar_wake_mt(app->registrar);
}

uint8_t presence_reason(const struct shard *sh, const struct mconn *mc)
{
	if (sh->stopping)
		return PR_SERVER_SHUTDOWN;
	if (mc->pr_reason)
		return mc->pr_reason;
	if (mc->got_disconnect)
		return PR_CLIENT_DISCONNECT;
	if (mc->close_reason == MQTT_RC_KEEPALIVE_TIMEOUT)
		return PR_KEEPALIVE_TIMEOUT;
	if (mc->close_reason == MQTT_RC_SESSION_TAKEN_OVER)
		return PR_TAKEN_OVER;
	if (mc->id_state == ID_REFUSED && mc->close_reason == MQTT_RC_NOT_AUTHORIZED)
		return PR_CERT_DISABLED;
	if (mc->close_reason >= 0x80)
		return PR_PROTOCOL_ERROR;
	return PR_CONNECTION_LOST;
}
