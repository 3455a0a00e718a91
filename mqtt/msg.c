/*
 * Shared messages and the encoding of outbound packets. A PUBLISH is
 * encoded once into its vmsg (topic, forwarded v5 properties, payload);
 * each delivery writes only a small header of its own (fixed header, topic
 * or alias, packet id, per-delivery properties) and then queues a
 * reference to the shared bytes: no per-subscriber copy of a payload.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"

struct vmsg *vmsg_new(const uint8_t *topic, uint32_t tlen, const struct mqtt_props *props,
		      const uint8_t *payload, uint32_t plen, uint8_t qos, bool retain,
		      uint64_t origin, uint64_t now_ms)
{
	struct mqtt_props fw;
	size_t psz = 0;
	if (props) {
		memset(&fw, 0, sizeof fw);
		static const int keep[] = { MQTT_PROP_PAYLOAD_FORMAT, MQTT_PROP_CONTENT_TYPE,
					    MQTT_PROP_RESPONSE_TOPIC, MQTT_PROP_CORRELATION_DATA,
					    MQTT_PROP_USER_PROPERTY };
		for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
			if (MQTT_HAS(props, keep[i]))
				MQTT_SET(&fw, keep[i]);
		fw.payload_format = props->payload_format;
		fw.content_type = props->content_type;
		fw.response_topic = props->response_topic;
		fw.correlation_data = props->correlation_data;
		fw.user = props->user;
		fw.user_len = props->user_len;
		fw.n_user = props->n_user;
		if (fw.present)
			psz = mqtt_props_size(&fw);
	}
	struct vmsg *m = malloc(sizeof *m + tlen + psz + plen);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->topic_len = tlen;
	m->payload_len = plen;
	m->origin = origin;
	m->qos = qos;
	m->retain = retain;
	m->expire_at_ms = 0;
	if (props && MQTT_HAS(props, MQTT_PROP_MESSAGE_EXPIRY))
		m->expire_at_ms = now_ms + (uint64_t)props->message_expiry * 1000u;
	memcpy(m->data, topic, tlen);
	m->props_len = 0;
	if (psz) {
		uint8_t *p = m->data + tlen;
		mqtt_props_encode(&fw, p, psz);
		/* drop the length prefix: deliveries write their own */
		int pre = mqtt_varint_size((uint32_t)(psz - 1));
		while (pre < (int)psz && mqtt_varint_size((uint32_t)(psz - (size_t)pre)) != pre)
			pre++;
		memmove(p, p + pre, psz - (size_t)pre);
		m->props_len = (uint32_t)(psz - (size_t)pre);
	}
	if (plen)
		memcpy(m->data + tlen + m->props_len, payload, plen);
	return m;
}

void vmsg_ref_mt(struct vmsg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void vmsg_unref_mt(struct vmsg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

void vmsg_release_ref_mt(void *ref)
{
	vmsg_unref_mt(ref);
}

/* Outbound topic alias: the alias of a topic for this connection, assigning
 * a new one while the client's Topic Alias Maximum allows. */
struct alias_ent {
	uint16_t alias;
	uint16_t len;
	char topic[];
};

static void alias_key(const void *v, const void **k, size_t *len)
{
	const struct alias_ent *e = v;
	*k = e->topic;
	*len = e->len;
}

static uint16_t alias_for(struct mconn *mc, const uint8_t *topic, uint16_t tlen, bool *is_new)
{
	*is_new = false;
	if (!mc->s || mc->s->client_alias_max == 0 || tlen == 0)
		return 0;
	if (!mc->alias_out.key_of)
		hmap_init(&mc->alias_out, alias_key);
	struct alias_ent *e = hmap_get(&mc->alias_out, topic, tlen);
	if (e)
		return e->alias;
	if (mc->alias_out_next >= mc->s->client_alias_max)
		return 0;
	e = malloc(sizeof *e + tlen);
	if (!e)
		return 0;
	e->alias = ++mc->alias_out_next;
	e->len = tlen;
	memcpy(e->topic, topic, tlen);
	if (hmap_put(&mc->alias_out, e) != 0) {
		free(e);
		mc->alias_out_next--;
		return 0;
	}
	*is_new = true;
	return e->alias;
}

int send_publish(struct shard *sh, struct mconn *mc, const struct delivery *d, bool dup)
{
	const struct vmsg *m = d->m;
	struct session *s = mc->s;
	uint32_t expiry_left = 0;
	if (m->expire_at_ms) {
		if (sh->now_ms >= m->expire_at_ms)
			return -ETIME;
		expiry_left = (uint32_t)((m->expire_at_ms - sh->now_ms + 999) / 1000);
	}
	uint8_t props[8 + 5 * DELIVERY_SUBIDS];
	uint32_t np = 0;
	uint16_t tlen_enc = (uint16_t)m->topic_len;
	uint32_t tail = m->payload_len;
	uint32_t alias = 0;
	bool alias_new = false;
	if (mc->version == MQTT_V5) {
		alias = alias_for(mc, vmsg_topic(m), (uint16_t)m->topic_len, &alias_new);
		if (alias && !alias_new)
			tlen_enc = 0;
		if (alias) {
			props[np++] = MQTT_PROP_TOPIC_ALIAS;
			props[np++] = (uint8_t)(alias >> 8);
			props[np++] = (uint8_t)alias;
		}
		if (m->expire_at_ms) {
			props[np++] = MQTT_PROP_MESSAGE_EXPIRY;
			props[np++] = (uint8_t)(expiry_left >> 24);
			props[np++] = (uint8_t)(expiry_left >> 16);
			props[np++] = (uint8_t)(expiry_left >> 8);
			props[np++] = (uint8_t)expiry_left;
		}
		for (uint8_t i = 0; i < d->n_sub_ids; i++) {
			props[np++] = MQTT_PROP_SUBSCRIPTION_ID;
			np += (uint32_t)mqtt_varint_put(props + np, d->sub_ids[i]);
		}
		tail = m->props_len + m->payload_len;
	}
	uint32_t proplen = np + (mc->version == MQTT_V5 ? m->props_len : 0);
	uint32_t rem = 2u + tlen_enc + (d->qos ? 2u : 0u) + tail;
	if (mc->version == MQTT_V5)
		rem += (uint32_t)mqtt_varint_size(proplen) + np;
	uint64_t total = 1u + (uint64_t)mqtt_varint_size(rem) + rem;
	if (rem > 268435455u || total > s->client_max_packet) {
		if (alias_new) {
			/* the client never learnt this alias: forget it */
			struct alias_ent *e = hmap_get(&mc->alias_out, vmsg_topic(m), m->topic_len);
			if (e) {
				hmap_del(&mc->alias_out, e);
				free(e);
				mc->alias_out_next--;
			}
		}
		return -EMSGSIZE;
	}
	struct conn *c = mc->c;
	uint8_t *h = conn_reserve(sh, c, 5 + 2);
	if (!h)
		return -ENOMEM;
	uint32_t k = 0;
	h[k++] = (uint8_t)(MQTT_PUBLISH << 4 | (dup ? 8 : 0) | d->qos << 1 | (d->retain ? 1 : 0));
	k += (uint32_t)mqtt_varint_put(h + k, rem);
	h[k++] = (uint8_t)(tlen_enc >> 8);
	h[k++] = (uint8_t)tlen_enc;
	conn_commit(sh, c, k);
	if (tlen_enc && conn_write(sh, c, vmsg_topic(m), tlen_enc) != 0)
		return -ENOMEM;
	h = conn_reserve(sh, c, 2 + 4 + np);
	if (!h)
		return -ENOMEM;
	k = 0;
	if (d->qos) {
		h[k++] = (uint8_t)(d->pid >> 8);
		h[k++] = (uint8_t)d->pid;
	}
	if (mc->version == MQTT_V5) {
		k += (uint32_t)mqtt_varint_put(h + k, proplen);
		memcpy(h + k, props, np);
		k += np;
	}
	conn_commit(sh, c, k);
	if (tail) {
		vmsg_ref_mt(d->m);
		const uint8_t *src = mc->version == MQTT_V5 ? vmsg_props(m) : vmsg_payload(m);
		if (conn_write_ref(sh, c, src, tail, d->m) != 0)
			return -ENOMEM;
	}
	atomic_store_explicit(&sh->stats.msgs_out,
			      atomic_load_explicit(&sh->stats.msgs_out, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	return 0;
}

int send_packet(struct shard *sh, struct conn *c, const struct mqtt_packet *p, uint8_t version)
{
	size_t n = mqtt_encoded_size(p, version);
	if (n == 0 || n > OUTBLK_SIZE) {
		/* large control packets (long reason strings) are rare */
		uint8_t *tmp = malloc(n ? n : 1);
		if (!tmp)
			return -ENOMEM;
		size_t w = mqtt_encode(p, version, tmp, n);
		int rc = w ? conn_write(sh, c, tmp, (uint32_t)w) : -EINVAL;
		free(tmp);
		return rc;
	}
	uint8_t *dst = conn_reserve(sh, c, (uint32_t)n);
	if (!dst)
		return -ENOMEM;
	size_t w = mqtt_encode(p, version, dst, n);
	conn_commit(sh, c, (uint32_t)w);
	return w ? 0 : -EINVAL;
}

static void reason_prop(struct mqtt_props *pr, const struct mconn *mc, const char *reason_str)
{
	if (reason_str && mc->problem_info) {
		MQTT_SET(pr, MQTT_PROP_REASON_STRING);
		pr->reason_string.p = (const uint8_t *)reason_str;
		pr->reason_string.len = (uint16_t)strlen(reason_str);
	}
}

int send_ack(struct shard *sh, struct mconn *mc, uint8_t type, uint16_t pid, uint8_t reason,
	     const char *reason_str)
{
	struct mqtt_packet p;
	memset(&p, 0, sizeof p);
	p.type = type;
	p.u.ack.packet_id = pid;
	p.u.ack.reason = reason;
	if (reason >= 0x80)
		reason_prop(&p.u.ack.props, mc, reason_str);
	return send_packet(sh, mc->c, &p, mc->version);
}

int send_disconnect(struct shard *sh, struct mconn *mc, uint8_t reason, const char *reason_str)
{
	if (mc->version != MQTT_V5)
		return 0; /* 3.1.1 has no server DISCONNECT: just close */
	struct mqtt_packet p;
	memset(&p, 0, sizeof p);
	p.type = MQTT_DISCONNECT;
	p.u.disconnect.reason = reason;
	/* [MQTT-3.14.2-?] reason strings only when the client asked for them */
	reason_prop(&p.u.disconnect.props, mc, reason_str);
	return send_packet(sh, mc->c, &p, MQTT_V5);
}
