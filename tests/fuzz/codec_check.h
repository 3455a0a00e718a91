/*
 * Field-by-field comparison of decoded MQTT packets, and the decode ->
 * encode -> decode round trip that the codec fuzz harness and the codec
 * unit test both run on arbitrary input. Header-only (static functions),
 * included by tests/fuzz/fuzz_codec.c and tests/unit/test_codec.c.
 */
#ifndef VOUCH_TESTS_CODEC_CHECK_H
#define VOUCH_TESTS_CODEC_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"

static inline int cc_str_eq(const struct mqtt_str *a, const struct mqtt_str *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* Bits of `present` that the encoder would actually write. */
static inline uint64_t cc_effective(const struct mqtt_props *p)
{
	uint64_t m = p->present & ((1ull << 0x2B) - 1);

	if (!(p->user && p->user_len))
		m &= ~(1ull << MQTT_PROP_USER_PROPERTY);
	if (!p->n_sub_ids)
		m &= ~(1ull << MQTT_PROP_SUBSCRIPTION_ID);
	return m;
}

/* NULL when equal, else the name of the first field that differs. */
static inline const char *cc_props(const struct mqtt_props *a,
				   const struct mqtt_props *b)
{
	uint64_t m = cc_effective(a);

	if (m != cc_effective(b))
		return "props.present";
#define CC_NUM(id, f) \
	if (MQTT_HAS(a, MQTT_PROP_##id) && a->f != b->f) return "props." #f
#define CC_STR(id, f) \
	if (MQTT_HAS(a, MQTT_PROP_##id) && !cc_str_eq(&a->f, &b->f)) \
		return "props." #f
	CC_NUM(PAYLOAD_FORMAT, payload_format);
	CC_NUM(REQUEST_PROBLEM_INFO, request_problem_info);
	CC_NUM(REQUEST_RESPONSE_INFO, request_response_info);
	CC_NUM(MAXIMUM_QOS, max_qos);
	CC_NUM(RETAIN_AVAILABLE, retain_available);
	CC_NUM(WILDCARD_SUB_AVAILABLE, wildcard_sub_available);
	CC_NUM(SUB_ID_AVAILABLE, sub_id_available);
	CC_NUM(SHARED_SUB_AVAILABLE, shared_sub_available);
	CC_NUM(SERVER_KEEPALIVE, server_keepalive);
	CC_NUM(RECEIVE_MAXIMUM, receive_maximum);
	CC_NUM(TOPIC_ALIAS_MAXIMUM, topic_alias_maximum);
	CC_NUM(TOPIC_ALIAS, topic_alias);
	CC_NUM(MESSAGE_EXPIRY, message_expiry);
	CC_NUM(SESSION_EXPIRY, session_expiry);
	CC_NUM(WILL_DELAY, will_delay);
	CC_NUM(MAXIMUM_PACKET_SIZE, max_packet_size);
	CC_STR(CONTENT_TYPE, content_type);
	CC_STR(RESPONSE_TOPIC, response_topic);
	CC_STR(CORRELATION_DATA, correlation_data);
	CC_STR(ASSIGNED_CLIENT_ID, assigned_client_id);
	CC_STR(AUTH_METHOD, auth_method);
	CC_STR(AUTH_DATA, auth_data);
	CC_STR(RESPONSE_INFO, response_info);
	CC_STR(SERVER_REFERENCE, server_reference);
	CC_STR(REASON_STRING, reason_string);
#undef CC_NUM
#undef CC_STR
	if (m & (1ull << MQTT_PROP_SUBSCRIPTION_ID)) {
		if (a->n_sub_ids != b->n_sub_ids)
			return "props.n_sub_ids";
		for (unsigned i = 0; i < a->n_sub_ids; i++)
			if (a->sub_ids[i] != b->sub_ids[i])
				return "props.sub_ids";
	}
	if (m & (1ull << MQTT_PROP_USER_PROPERTY)) {
		uint32_t oa = 0, ob = 0;
		struct mqtt_str ka, va, kb, vb;
		unsigned n = 0;

		for (;;) {
			int ra = mqtt_user_props_next(a, &oa, &ka, &va);
			int rb = mqtt_user_props_next(b, &ob, &kb, &vb);

			if (ra != rb)
				return "props.user (count)";
			if (!ra)
				break;
			if (!cc_str_eq(&ka, &kb) || !cc_str_eq(&va, &vb))
				return "props.user (pair)";
			n++;
		}
		if (n != a->n_user || n != b->n_user)
			return "props.n_user";
	}
	return NULL;
}

static inline uint8_t cc_v3_suback(uint8_t c)
{
	return c <= 2 ? c : 0x80;
}

/*
 * Compare two packets of one protocol version, as far as that version
 * carries them (v3.1.1 has no properties and fewer reason codes).
 */
static inline const char *cc_packet(const struct mqtt_packet *a,
				    const struct mqtt_packet *b,
				    uint8_t version)
{
	bool v5 = version == MQTT_V5;
	const char *e;

	if (a->type != b->type)
		return "type";
	switch (a->type) {
	case MQTT_CONNECT: {
		const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;

		v5 = x->version == MQTT_V5;
		if (x->version != y->version) return "connect.version";
		if (x->clean != y->clean) return "connect.clean";
		if (x->will != y->will) return "connect.will";
		if (x->has_username != y->has_username) return "connect.has_username";
		if (x->has_password != y->has_password) return "connect.has_password";
		if (x->keepalive != y->keepalive) return "connect.keepalive";
		if (!cc_str_eq(&x->client_id, &y->client_id)) return "connect.client_id";
		if (v5 && (e = cc_props(&x->props, &y->props)))
			return e;
		if (x->will) {
			if (x->will_qos != y->will_qos) return "connect.will_qos";
			if (x->will_retain != y->will_retain) return "connect.will_retain";
			if (!cc_str_eq(&x->will_topic, &y->will_topic)) return "connect.will_topic";
			if (!cc_str_eq(&x->will_payload, &y->will_payload)) return "connect.will_payload";
			if (v5 && (e = cc_props(&x->will_props, &y->will_props)))
				return e;
		}
		if (x->has_username && !cc_str_eq(&x->username, &y->username))
			return "connect.username";
		if (x->has_password && !cc_str_eq(&x->password, &y->password))
			return "connect.password";
		return NULL;
	}
	case MQTT_CONNACK: {
		const struct mqtt_connack *x = &a->u.connack, *y = &b->u.connack;

		if (x->session_present != y->session_present) return "connack.session_present";
		if (v5 ? x->reason != y->reason :
		    mqtt_connack_v3_code(x->reason) != mqtt_connack_v3_code(y->reason))
			return "connack.reason";
		return v5 ? cc_props(&x->props, &y->props) : NULL;
	}
	case MQTT_PUBLISH: {
		const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;

		if (x->qos != y->qos) return "publish.qos";
		if (x->dup != y->dup) return "publish.dup";
		if (x->retain != y->retain) return "publish.retain";
		if (x->qos && x->packet_id != y->packet_id) return "publish.packet_id";
		if (!cc_str_eq(&x->topic, &y->topic)) return "publish.topic";
		if (x->payload_len != y->payload_len ||
		    (x->payload_len && memcmp(x->payload, y->payload, x->payload_len)))
			return "publish.payload";
		return v5 ? cc_props(&x->props, &y->props) : NULL;
	}
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: {
		const struct mqtt_ack *x = &a->u.ack, *y = &b->u.ack;

		if (x->packet_id != y->packet_id) return "ack.packet_id";
		if (!v5)
			return NULL;
		if (x->reason != y->reason) return "ack.reason";
		return cc_props(&x->props, &y->props);
	}
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: {
		const struct mqtt_subscribe *x = &a->u.subscribe, *y = &b->u.subscribe;
		bool opt = a->type == MQTT_SUBSCRIBE;
		struct mqtt_topics_iter ix, iy;
		struct mqtt_str fx, fy;
		uint8_t ox = 0, oy = 0;
		unsigned n = 0;

		if (x->packet_id != y->packet_id) return "subscribe.packet_id";
		if (x->count != y->count) return "subscribe.count";
		if (x->list_len != y->list_len ||
		    (x->list_len && memcmp(x->list, y->list, x->list_len)))
			return "subscribe.list";
		mqtt_topics_begin(&ix, x, opt);
		mqtt_topics_begin(&iy, y, opt);
		for (;;) {
			int rx = mqtt_topics_next(&ix, &fx, &ox);
			int ry = mqtt_topics_next(&iy, &fy, &oy);

			if (rx != ry) return "subscribe.walk";
			if (!rx) break;
			if (!cc_str_eq(&fx, &fy) || ox != oy) return "subscribe.entry";
			n++;
		}
		if (n != x->count) return "subscribe.walk count";
		return v5 ? cc_props(&x->props, &y->props) : NULL;
	}
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: {
		const struct mqtt_suback *x = &a->u.suback, *y = &b->u.suback;

		if (x->packet_id != y->packet_id) return "suback.packet_id";
		if (!v5 && a->type == MQTT_UNSUBACK)
			return NULL;
		if (x->count != y->count) return "suback.count";
		for (unsigned i = 0; i < x->count; i++)
			if (v5 ? x->codes[i] != y->codes[i] :
			    cc_v3_suback(x->codes[i]) != cc_v3_suback(y->codes[i]))
				return "suback.codes";
		return v5 ? cc_props(&x->props, &y->props) : NULL;
	}
	case MQTT_DISCONNECT:
	case MQTT_AUTH: {
		const struct mqtt_disconnect *x = &a->u.disconnect, *y = &b->u.disconnect;

		if (!v5)
			return NULL;
		if (x->reason != y->reason) return "disconnect.reason";
		return cc_props(&x->props, &y->props);
	}
	default:
		return NULL;
	}
}

#define CC_FAIL(...) do { \
	fprintf(stderr, "codec_check: " __VA_ARGS__); \
	fprintf(stderr, "\n"); \
	abort(); \
} while (0)

/* The version an encoder should use for a packet decoded at `version`. */
static inline uint8_t cc_encode_version(const struct mqtt_packet *p,
					uint8_t version)
{
	if (p->type == MQTT_CONNECT)
		return p->u.connect.version;
	return version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
}

/*
 * Decode data at each (version, max_size); for every packet that decodes,
 * check the invariants (consumed within bounds, fixed header agrees, the
 * topic list and user properties walk to their counts), encode it again,
 * decode that and compare; a canonical encoding must also be a fixed
 * point. Aborts on any mismatch. Returns how many packets decoded.
 */
static inline int cc_roundtrip(const uint8_t *data, size_t size)
{
	static const uint8_t versions[] = { 0, MQTT_V311, MQTT_V5 };
	static const uint32_t maxes[] = { 0, 64, 4096 };
	int decoded = 0;

	for (unsigned vi = 0; vi < sizeof versions; vi++) {
		for (unsigned mi = 0; mi < sizeof maxes / sizeof maxes[0]; mi++) {
			uint8_t ver = versions[vi];
			struct mqtt_packet p;
			ssize_t r = mqtt_decode(data, size, ver, maxes[mi], &p);

			if (r < 0) {
				if (-r >= MQTT_ERR__COUNT)
					CC_FAIL("error %zd out of range", r);
				if (mqtt_err_str((enum mqtt_err)-r) == NULL)
					CC_FAIL("no text for error %zd", r);
				continue;
			}
			if (r == 0)
				continue;
			if ((size_t)r > size)
				CC_FAIL("consumed %zd of %zu", r, size);
			if (maxes[mi] && (size_t)r > maxes[mi])
				CC_FAIL("consumed %zd over max %u", r, maxes[mi]);
			decoded++;

			uint8_t t, f;
			uint32_t rem;
			int hl = mqtt_fixed_header(data, size, &t, &f, &rem);

			if (hl < 2 || (size_t)hl + rem != (size_t)r ||
			    t != p.type || f != p.flags || rem != p.remaining)
				CC_FAIL("fixed header disagrees");

			/* Every proper prefix needs more. */
			for (ssize_t k = 0; k < r; k++) {
				if (k == 64 && r > 128)
					k = r - 64;
				struct mqtt_packet q;

				if (mqtt_decode(data, (size_t)k, ver, maxes[mi], &q) != 0)
					CC_FAIL("prefix %zd of %zd not 0", k, r);
			}

			if (p.type == MQTT_SUBSCRIBE || p.type == MQTT_UNSUBSCRIBE) {
				struct mqtt_topics_iter it;
				struct mqtt_str fl;
				uint8_t o;
				unsigned n = 0;

				mqtt_topics_begin(&it, &p.u.subscribe,
						  p.type == MQTT_SUBSCRIBE);
				while (mqtt_topics_next(&it, &fl, &o)) {
					if (!mqtt_topic_filter_valid(fl.p, fl.len) ||
					    !mqtt_utf8_valid(fl.p, fl.len))
						CC_FAIL("invalid filter passed");
					n++;
				}
				if (n != p.u.subscribe.count || n == 0)
					CC_FAIL("topic walk %u != %u", n,
						p.u.subscribe.count);
			}
			if (p.type == MQTT_PUBLISH && p.u.publish.topic.len &&
			    !mqtt_topic_name_valid(p.u.publish.topic.p,
						   p.u.publish.topic.len))
				CC_FAIL("invalid topic name passed");

			uint8_t ev = cc_encode_version(&p, ver);
			size_t sz = mqtt_encoded_size(&p, ev);

			if (sz == 0 || sz > (size_t)r)
				CC_FAIL("encoded size %zu for a %zd-byte packet",
					sz, r);
			uint8_t *buf = malloc(sz);

			if (!buf)
				abort();
			if (mqtt_encode(&p, ev, buf, sz - 1) != 0)
				CC_FAIL("encode into a short buffer succeeded");
			if (mqtt_encode(&p, ev, buf, sz) != sz)
				CC_FAIL("encode size mismatch");
			struct mqtt_packet q;
			ssize_t r2 = mqtt_decode(buf, sz, ver, 0, &q);

			if (r2 != (ssize_t)sz)
				CC_FAIL("re-decode gave %zd (%s), type %u ver %u",
					r2, r2 < 0 ? mqtt_err_str((enum mqtt_err)-r2) : "",
					p.type, ver);
			const char *why = cc_packet(&p, &q, ev);

			if (why)
				CC_FAIL("round trip differs in %s (type %u ver %u)",
					why, p.type, ver);
			/* Canonical form: encoding the re-decoded packet gives
			 * the same bytes. */
			uint8_t *buf2 = malloc(sz);

			if (!buf2)
				abort();
			if (mqtt_encode(&q, ev, buf2, sz) != sz ||
			    memcmp(buf, buf2, sz) != 0)
				CC_FAIL("encoding is not a fixed point");
			free(buf2);
			free(buf);
		}
	}
	return decoded;
}

#endif
