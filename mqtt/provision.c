/*
 * Provisioning by CSR, the shard's half: a PUBLISH on
 * $SYS/provisioning/create-from-csr (the one $SYS topic clients may
 * publish to) from a client identified by a certificate becomes a
 * struct provision_req on the shard's request ring; the registrar
 * (registry/provision.c) signs, registers and answers on the response
 * topic. The PUBACK only says whether the request was taken.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "registry/provision.h"
#include "registry/registrar.h"

bool provision_is_topic(const uint8_t *t, size_t len)
{
	return len == sizeof PROVISION_TOPIC - 1 && memcmp(t, PROVISION_TOPIC, len) == 0;
}

/* A v5 response topic the answer may go to: a topic name (no wildcards),
 * and nothing under '$' but the v3.1.1 answer topics of provisioning, so
 * that answers cannot pose as the broker's events. */
static bool resp_ok(const uint8_t *t, size_t len)
{
	static const char own[] = PROVISION_TOPIC "/";

	if (len == 0 || len > 256 || memchr(t, '+', len) || memchr(t, '#', len) ||
	    memchr(t, '\0', len))
		return false;
	return t[0] != '$' || (len > sizeof own - 1 && !memcmp(t, own, sizeof own - 1));
}

uint8_t provision_request(struct bshard *bs, struct mconn *mc, const struct mqtt_publish *pp)
{
	struct shard *sh = bs->sh;
	struct vouch_app *app = sh->rt->app;
	const struct session *s = mc->s;
	struct provision_req *rq;
	struct mqtt_str resp = { 0 }, corr = { 0 };
	uint8_t *d;

	if (!mc->has_cert || !app || !app->registrar)
		return MQTT_RC_NOT_AUTHORIZED;  /* a claim certificate is the credential */
	if (pp->payload_len == 0 || pp->payload_len > PROVISION_PAYLOAD_MAX)
		return MQTT_RC_PAYLOAD_FORMAT_INVALID;
	if (mc->version == MQTT_V5 && MQTT_HAS(&pp->props, MQTT_PROP_RESPONSE_TOPIC)) {
		resp = pp->props.response_topic;
		if (!resp_ok(resp.p, resp.len))
			return MQTT_RC_TOPIC_NAME_INVALID;
		if (MQTT_HAS(&pp->props, MQTT_PROP_CORRELATION_DATA))
			corr = pp->props.correlation_data;
	}
	rq = malloc(sizeof *rq + resp.len + corr.len + s->cid_len + pp->payload_len);
	if (!rq)
		return MQTT_RC_UNSPECIFIED;
	memcpy(rq->claim_id, mc->cert_id, sizeof rq->claim_id);
	rq->resp_len = resp.len;
	rq->corr_len = corr.len;
	rq->cid_len = s->cid_len;
	rq->payload_len = pp->payload_len;
	d = rq->data;
	if (resp.len)
		memcpy(d, resp.p, resp.len);
	d += resp.len;
	if (corr.len)
		memcpy(d, corr.p, corr.len);
	d += corr.len;
	memcpy(d, s->client_id, s->cid_len);
	d += s->cid_len;
	memcpy(d, pp->payload, pp->payload_len);
	if (registrar_post_mt(app->registrar, sh->id, RQ_PROVISION, rq) != 0) {
		free(rq);
		return MQTT_RC_QUOTA_EXCEEDED;
	}
	return 0;
}
