/*
 * MQTT 3.1.1 / 5.0 packet codec: bytes in, structs out, and back.
 *
 * The decoder is tri-state (a whole packet consumed, need more bytes, or
 * malformed with a reason from enum mqtt_err) and validates everything the
 * two OASIS specifications require of a packet taken on its own: fixed
 * header flags, minimal variable byte integers, UTF-8 of every string, the
 * CONNECT flag rules, v5 properties (allowed per packet, not repeated, in
 * range), topic names and filters, packet identifiers, reason codes and
 * trailing bytes. What needs session state or the direction of travel is
 * left to the caller. Decoded strings are views into the input; nothing is
 * allocated; every read is bounded by the packet's end, which is never past
 * the caller's buffer. The encoder writes the canonical form (properties in
 * identifier order, short forms of the v5 acknowledgements).
 *
 * libc only, no state: any thread.
 *
 * Spec references: [MQTT-x.y.z-n] numbers are MQTT 5.0's unless marked
 * "3.1.1"; most statements carry the same number in both.
 */
#include <stddef.h>
#include <string.h>

#include "mqtt/codec.h"

#define ERR(e) (-(int)(e))

/* ------------------------------------------------------------------ */
/* Error table                                                         */
/* ------------------------------------------------------------------ */

/*
 * One row per decode error: the v5 reason code a server sends (CONNACK
 * before the session exists, DISCONNECT after) and a text for logs.
 *
 * Choices where the spec leaves room:
 * - A topic filter the decoder refuses gets 0x8F (Topic Filter invalid): the
 *   spec never calls a badly placed wildcard a Malformed Packet, and 0x8F is
 *   a valid DISCONNECT reason. Likewise a wildcard or empty topic name gets
 *   0x90 (Topic Name invalid).
 * - MQTT_ERR_PROPERTY is an identifier unknown or not allowed in the packet,
 *   which 2.2.2.2 calls malformed (0x81); a repeated property is a protocol
 *   error (MQTT_ERR_PROTOCOL, 0x82).
 * - MQTT_ERR_SUB_OPTIONS covers the reserved option bits (malformed,
 *   [MQTT-3.8.3-5]) and QoS 3 / Retain Handling 3 (which v5 calls protocol
 *   errors); it maps to 0x81.
 * - A bad protocol name maps to 0x84: we do not speak whatever it is.
 */
static const struct {
	uint8_t reason;
	const char *text;
} err_tab[MQTT_ERR__COUNT] = {
	[MQTT_ERR_NONE] = { MQTT_RC_SUCCESS, "no error" },
	[MQTT_ERR_REMAINING_LENGTH] = { MQTT_RC_MALFORMED,
		"malformed variable byte integer" },
	[MQTT_ERR_TOO_LARGE] = { MQTT_RC_PACKET_TOO_LARGE, "packet too large" },
	[MQTT_ERR_RESERVED_FLAGS] = { MQTT_RC_MALFORMED,
		"reserved flags wrong for the packet type" },
	[MQTT_ERR_BAD_TYPE] = { MQTT_RC_MALFORMED,
		"packet type not allowed" },
	[MQTT_ERR_SHORT] = { MQTT_RC_MALFORMED, "packet shorter than its fields" },
	[MQTT_ERR_TRAILING] = { MQTT_RC_MALFORMED, "trailing bytes in packet" },
	[MQTT_ERR_UTF8] = { MQTT_RC_MALFORMED, "invalid UTF-8 string" },
	[MQTT_ERR_PROTOCOL_NAME] = { MQTT_RC_UNSUPPORTED_VERSION,
		"unknown protocol name" },
	[MQTT_ERR_PROTOCOL_VERSION] = { MQTT_RC_UNSUPPORTED_VERSION,
		"unsupported protocol version" },
	[MQTT_ERR_CONNECT_FLAGS] = { MQTT_RC_MALFORMED, "invalid CONNECT flags" },
	[MQTT_ERR_QOS] = { MQTT_RC_MALFORMED, "QoS 3" },
	[MQTT_ERR_TOPIC_NAME] = { MQTT_RC_TOPIC_NAME_INVALID,
		"invalid topic name" },
	[MQTT_ERR_TOPIC_FILTER] = { MQTT_RC_TOPIC_FILTER_INVALID,
		"invalid topic filter" },
	[MQTT_ERR_PACKET_ID] = { MQTT_RC_PROTOCOL_ERROR,
		"packet identifier zero" },
	[MQTT_ERR_NO_TOPICS] = { MQTT_RC_PROTOCOL_ERROR, "no topic filter" },
	[MQTT_ERR_SUB_OPTIONS] = { MQTT_RC_MALFORMED,
		"invalid subscription options" },
	[MQTT_ERR_PROPERTY] = { MQTT_RC_MALFORMED,
		"property not allowed in this packet" },
	[MQTT_ERR_PROPERTY_VALUE] = { MQTT_RC_PROTOCOL_ERROR,
		"property value out of range" },
	[MQTT_ERR_REASON_CODE] = { MQTT_RC_PROTOCOL_ERROR,
		"reason code not allowed for the packet" },
	[MQTT_ERR_PROTOCOL] = { MQTT_RC_PROTOCOL_ERROR, "protocol error" },
};

/*
 * Reason code for a decode error. Unknown values give 0x81 (malformed).
 * Any thread.
 */
uint8_t mqtt_err_reason(enum mqtt_err err)
{
	if ((unsigned)err >= MQTT_ERR__COUNT)
		return MQTT_RC_MALFORMED;
	return err_tab[err].reason;
}

/* Text for a decode error, never NULL. Any thread. */
const char *mqtt_err_str(enum mqtt_err err)
{
	if ((unsigned)err >= MQTT_ERR__COUNT)
		return "unknown error";
	return err_tab[err].text;
}

/*
 * v3.1.1 CONNACK return code (3.2.2.3) for a v5 reason code: 0 accepted,
 * 1 unacceptable protocol version, 2 identifier rejected, 3 server
 * unavailable, 4 bad user name or password, 5 not authorized. Codes with
 * no v3.1.1 twin become 3 (rate limits, busy, shutting down, ...), except
 * those that are about who the client is, which become 5. Any thread.
 */
uint8_t mqtt_connack_v3_code(uint8_t v5_reason)
{
	switch (v5_reason) {
	case MQTT_RC_SUCCESS:
		return 0;
	case MQTT_RC_UNSUPPORTED_VERSION:
		return 1;
	case MQTT_RC_CLIENTID_NOT_VALID:
		return 2;
	case MQTT_RC_BAD_USER_OR_PASS:
		return 4;
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_BANNED:
	case MQTT_RC_BAD_AUTH_METHOD:
		return 5;
	default:
		return 3;
	}
}

/* The inverse for the six defined v3.1.1 codes; -1 for the reserved ones. */
static int connack_v5_reason(uint8_t v3)
{
	static const uint8_t map[6] = {
		MQTT_RC_SUCCESS, MQTT_RC_UNSUPPORTED_VERSION,
		MQTT_RC_CLIENTID_NOT_VALID, MQTT_RC_SERVER_UNAVAILABLE,
		MQTT_RC_BAD_USER_OR_PASS, MQTT_RC_NOT_AUTHORIZED,
	};
	return v3 < 6 ? map[v3] : -1;
}

/* ------------------------------------------------------------------ */
/* UTF-8 and topics                                                    */
/* ------------------------------------------------------------------ */

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/*
 * [MQTT-1.5.4-1] well-formed UTF-8, no surrogates; [MQTT-1.5.4-2] no
 * U+0000. ASCII runs are checked eight bytes at a time (a word with no high
 * bit and no zero byte); the rest follows the RFC 3629 table, each lead
 * byte fixing the allowed range of the byte after it. Any thread.
 */
int mqtt_utf8_valid(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;

	while (p < end) {
		while (end - p >= 8) {
			uint64_t x;

			memcpy(&x, p, 8);
			if ((x | ((x - ONES) & ~x)) & HIGHS)
				break;
			p += 8;
		}
		if (p >= end)
			break;
		uint8_t c = *p;
		size_t left = (size_t)(end - p);

		if (c < 0x80) {
			if (c == 0)
				return 0;       /* [MQTT-1.5.4-2] */
			p++;
			continue;
		}
		if (c < 0xC2)                   /* continuation or overlong */
			return 0;
		if (c < 0xE0) {
			if (left < 2 || (p[1] & 0xC0) != 0x80)
				return 0;
			p += 2;
			continue;
		}
		if (c < 0xF0) {
			if (left < 3)
				return 0;
			uint8_t c1 = p[1];

			if (c == 0xE0 && c1 < 0xA0)     /* overlong */
				return 0;
			if (c == 0xED && c1 > 0x9F)     /* surrogates */
				return 0;
			if ((c1 & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
				return 0;
			p += 3;
			continue;
		}
		if (c < 0xF5) {
			if (left < 4)
				return 0;
			uint8_t c1 = p[1];

			if (c == 0xF0 && c1 < 0x90)     /* overlong */
				return 0;
			if (c == 0xF4 && c1 > 0x8F)     /* above U+10FFFF */
				return 0;
			if ((c1 & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
			    (p[3] & 0xC0) != 0x80)
				return 0;
			p += 4;
			continue;
		}
		return 0;
	}
	return 1;
}

/*
 * A topic name is at least one character [MQTT-4.7.3-1] and has no
 * wildcard [MQTT-3.3.2-2]. Any thread.
 */
int mqtt_topic_name_valid(const uint8_t *p, size_t len)
{
	if (len == 0)
		return 0;
	return !memchr(p, '+', len) && !memchr(p, '#', len);
}

/* Wildcard placement [MQTT-4.7.1-1] ('#' alone in the last level) and
 * [MQTT-4.7.1-2] ('+' alone in its level). */
static int filter_levels_valid(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (c == '+') {
			if ((i > 0 && p[i - 1] != '/') ||
			    (i + 1 < len && p[i + 1] != '/'))
				return 0;
		} else if (c == '#') {
			if ((i > 0 && p[i - 1] != '/') || i + 1 != len)
				return 0;
		}
	}
	return 1;
}

static bool is_shared(const uint8_t *p, size_t len)
{
	return len >= 7 && memcmp(p, "$share/", 7) == 0;
}

/*
 * A topic filter: not empty [MQTT-4.7.3-1], wildcards placed right; a
 * shared subscription $share/{ShareName}/{filter} has a non-empty ShareName
 * without '+', '#' or '/', then '/' and a non-empty valid filter
 * [MQTT-4.8.2-1] [MQTT-4.8.2-2]. The $share form is checked for both
 * protocol versions (brokers accept it from 3.1.1 clients too). Any thread.
 */
int mqtt_topic_filter_valid(const uint8_t *p, size_t len)
{
	if (len == 0)
		return 0;
	if (is_shared(p, len)) {
		const uint8_t *g = p + 7, *end = p + len;
		const uint8_t *slash = memchr(g, '/', (size_t)(end - g));

		if (!slash || slash == g)
			return 0;
		for (const uint8_t *q = g; q < slash; q++)
			if (*q == '+' || *q == '#')
				return 0;
		p = slash + 1;
		len = (size_t)(end - p);
		if (len == 0)
			return 0;
	}
	return filter_levels_valid(p, len);
}

/* ------------------------------------------------------------------ */
/* Variable byte integers and the fixed header                          */
/* ------------------------------------------------------------------ */

/* Bytes needed for v <= MQTT_MAX_REMAINING. Any thread. */
int mqtt_varint_size(uint32_t v)
{
	if (v < 128)
		return 1;
	if (v < 16384)
		return 2;
	if (v < 2097152)
		return 3;
	return 4;
}

/* Write v (<= MQTT_MAX_REMAINING) to out, which has room for 4 bytes.
 * Returns the bytes written. Any thread. */
int mqtt_varint_put(uint8_t *out, uint32_t v)
{
	int n = 0;

	do {
		uint8_t b = v & 0x7F;

		v >>= 7;
		if (v && n < 3)
			b |= 0x80;
		out[n++] = b;
	} while (v && n < 4);
	return n;
}

/*
 * Read a variable byte integer from p[0..avail). Returns the bytes used,
 * 0 when it runs past avail, or -MQTT_ERR_REMAINING_LENGTH when it is
 * longer than four bytes or not minimal [MQTT-1.5.5-1].
 */
static inline int varint_get(const uint8_t *p, size_t avail, uint32_t *v)
{
	uint32_t x = 0;

	for (int i = 0; i < 4; i++) {
		if ((size_t)i >= avail)
			return 0;
		uint8_t b = p[i];

		x |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			if (b == 0 && i > 0)    /* a longer form than needed */
				return ERR(MQTT_ERR_REMAINING_LENGTH);
			*v = x;
			return i + 1;
		}
	}
	return ERR(MQTT_ERR_REMAINING_LENGTH);
}

/*
 * Fixed header: type and flags of byte 0, remaining length after it.
 * Returns 2..5 (header length), 0 for more bytes, or
 * -MQTT_ERR_REMAINING_LENGTH. Any thread.
 */
int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *type,
		      uint8_t *flags, uint32_t *remaining)
{
	if (len < 2)
		return 0;
	uint32_t rem;
	int n = varint_get(buf + 1, len - 1, &rem);

	if (n <= 0)
		return n;
	*type = buf[0] >> 4;
	*flags = buf[0] & 0x0F;
	*remaining = rem;
	return n + 1;
}

/* ------------------------------------------------------------------ */
/* Decoding helpers: a cursor bounded by the end of the current field   */
/* ------------------------------------------------------------------ */

struct cur {
	const uint8_t *p;
	const uint8_t *end;
};

static inline size_t cur_left(const struct cur *c)
{
	return (size_t)(c->end - c->p);
}

static inline int get_u8(struct cur *c, uint8_t *v)
{
	if (c->p >= c->end)
		return ERR(MQTT_ERR_SHORT);
	*v = *c->p++;
	return 0;
}

static inline int get_u16(struct cur *c, uint16_t *v)
{
	if (cur_left(c) < 2)
		return ERR(MQTT_ERR_SHORT);
	*v = (uint16_t)(c->p[0] << 8 | c->p[1]);
	c->p += 2;
	return 0;
}

static inline int get_u32(struct cur *c, uint32_t *v)
{
	if (cur_left(c) < 4)
		return ERR(MQTT_ERR_SHORT);
	*v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 |
	     (uint32_t)c->p[2] << 8 | c->p[3];
	c->p += 4;
	return 0;
}

static inline int get_varint(struct cur *c, uint32_t *v)
{
	int n = varint_get(c->p, cur_left(c), v);

	if (n == 0)
		return ERR(MQTT_ERR_SHORT);
	if (n < 0)
		return n;
	c->p += n;
	return 0;
}

/* Binary Data (1.5.6): two-byte length, then bytes. */
static inline int get_bin(struct cur *c, struct mqtt_str *s)
{
	uint16_t n;

	if (get_u16(c, &n))
		return ERR(MQTT_ERR_SHORT);
	if (cur_left(c) < n)
		return ERR(MQTT_ERR_SHORT);
	s->p = c->p;
	s->len = n;
	c->p += n;
	return 0;
}

/* UTF-8 Encoded String (1.5.4). */
static inline int get_utf8(struct cur *c, struct mqtt_str *s)
{
	int e = get_bin(c, s);

	if (e)
		return e;
	if (!mqtt_utf8_valid(s->p, s->len))
		return ERR(MQTT_ERR_UTF8);
	return 0;
}

/* ------------------------------------------------------------------ */
/* v5 properties                                                        */
/* ------------------------------------------------------------------ */

#define P(id) (1ull << MQTT_PROP_##id)

/* Where each property may appear (2.2.2.2, table 2-4). */
#define PROPS_CONNECT (P(SESSION_EXPIRY) | P(RECEIVE_MAXIMUM) | \
	P(MAXIMUM_PACKET_SIZE) | P(TOPIC_ALIAS_MAXIMUM) | \
	P(REQUEST_RESPONSE_INFO) | P(REQUEST_PROBLEM_INFO) | \
	P(USER_PROPERTY) | P(AUTH_METHOD) | P(AUTH_DATA))
#define PROPS_WILL (P(WILL_DELAY) | P(PAYLOAD_FORMAT) | P(MESSAGE_EXPIRY) | \
	P(CONTENT_TYPE) | P(RESPONSE_TOPIC) | P(CORRELATION_DATA) | \
	P(USER_PROPERTY))
#define PROPS_CONNACK (P(SESSION_EXPIRY) | P(RECEIVE_MAXIMUM) | \
	P(MAXIMUM_QOS) | P(RETAIN_AVAILABLE) | P(MAXIMUM_PACKET_SIZE) | \
	P(ASSIGNED_CLIENT_ID) | P(TOPIC_ALIAS_MAXIMUM) | P(REASON_STRING) | \
	P(USER_PROPERTY) | P(WILDCARD_SUB_AVAILABLE) | \
	P(SUB_ID_AVAILABLE) | P(SHARED_SUB_AVAILABLE) | \
	P(SERVER_KEEPALIVE) | P(RESPONSE_INFO) | P(SERVER_REFERENCE) | \
	P(AUTH_METHOD) | P(AUTH_DATA))
#define PROPS_PUBLISH (P(PAYLOAD_FORMAT) | P(MESSAGE_EXPIRY) | \
	P(TOPIC_ALIAS) | P(RESPONSE_TOPIC) | P(CORRELATION_DATA) | \
	P(USER_PROPERTY) | P(SUBSCRIPTION_ID) | P(CONTENT_TYPE))
#define PROPS_ACK (P(REASON_STRING) | P(USER_PROPERTY))
#define PROPS_SUBSCRIBE (P(SUBSCRIPTION_ID) | P(USER_PROPERTY))
#define PROPS_UNSUBSCRIBE (P(USER_PROPERTY))
#define PROPS_DISCONNECT (P(SESSION_EXPIRY) | P(REASON_STRING) | \
	P(USER_PROPERTY) | P(SERVER_REFERENCE))
#define PROPS_AUTH (P(AUTH_METHOD) | P(AUTH_DATA) | P(REASON_STRING) | \
	P(USER_PROPERTY))

/* By value type, for sizes and for skipping. */
#define PROPS_BYTE (P(PAYLOAD_FORMAT) | P(REQUEST_PROBLEM_INFO) | \
	P(REQUEST_RESPONSE_INFO) | P(MAXIMUM_QOS) | P(RETAIN_AVAILABLE) | \
	P(WILDCARD_SUB_AVAILABLE) | P(SUB_ID_AVAILABLE) | \
	P(SHARED_SUB_AVAILABLE))
#define PROPS_U16 (P(SERVER_KEEPALIVE) | P(RECEIVE_MAXIMUM) | \
	P(TOPIC_ALIAS_MAXIMUM) | P(TOPIC_ALIAS))
#define PROPS_U32 (P(MESSAGE_EXPIRY) | P(SESSION_EXPIRY) | P(WILL_DELAY) | \
	P(MAXIMUM_PACKET_SIZE))
#define PROPS_STR (P(CONTENT_TYPE) | P(RESPONSE_TOPIC) | \
	P(CORRELATION_DATA) | P(ASSIGNED_CLIENT_ID) | P(AUTH_METHOD) | \
	P(AUTH_DATA) | P(RESPONSE_INFO) | P(SERVER_REFERENCE) | \
	P(REASON_STRING))
#define PROPS_KNOWN (PROPS_BYTE | PROPS_U16 | PROPS_U32 | PROPS_STR | \
	P(SUBSCRIPTION_ID) | P(USER_PROPERTY))

/*
 * Clear a property set; sub_ids[] (last) is governed by n_sub_ids. Field by
 * field because this is on every decode: gcc turns a 200-byte memset into
 * `rep stos`, whose start-up cost was half of a whole PUBLISH decode, while
 * these stores merge into a few wide moves. The assertion fails when a
 * field is added to struct mqtt_props: clear it here too.
 */
_Static_assert(offsetof(struct mqtt_props, sub_ids) == 200,
	       "struct mqtt_props changed: update props_clear()");

static inline void props_clear(struct mqtt_props *pr)
{
	const struct mqtt_str none = { NULL, 0 };

	pr->present = 0;
	pr->payload_format = 0;
	pr->request_problem_info = 0;
	pr->request_response_info = 0;
	pr->max_qos = 0;
	pr->retain_available = 0;
	pr->wildcard_sub_available = 0;
	pr->sub_id_available = 0;
	pr->shared_sub_available = 0;
	pr->server_keepalive = 0;
	pr->receive_maximum = 0;
	pr->topic_alias_maximum = 0;
	pr->topic_alias = 0;
	pr->message_expiry = 0;
	pr->session_expiry = 0;
	pr->will_delay = 0;
	pr->max_packet_size = 0;
	pr->content_type = none;
	pr->response_topic = none;
	pr->correlation_data = none;
	pr->assigned_client_id = none;
	pr->auth_method = none;
	pr->auth_data = none;
	pr->response_info = none;
	pr->server_reference = none;
	pr->reason_string = none;
	pr->user = NULL;
	pr->user_len = 0;
	pr->n_user = 0;
	pr->n_sub_ids = 0;
	pr->user_interleaved = false;
}

/* The mqtt_str field of a string or binary property, or NULL. */
static struct mqtt_str *prop_str(struct mqtt_props *pr, unsigned id)
{
	switch (id) {
	case MQTT_PROP_CONTENT_TYPE:       return &pr->content_type;
	case MQTT_PROP_RESPONSE_TOPIC:     return &pr->response_topic;
	case MQTT_PROP_CORRELATION_DATA:   return &pr->correlation_data;
	case MQTT_PROP_ASSIGNED_CLIENT_ID: return &pr->assigned_client_id;
	case MQTT_PROP_AUTH_METHOD:        return &pr->auth_method;
	case MQTT_PROP_AUTH_DATA:          return &pr->auth_data;
	case MQTT_PROP_RESPONSE_INFO:      return &pr->response_info;
	case MQTT_PROP_SERVER_REFERENCE:   return &pr->server_reference;
	case MQTT_PROP_REASON_STRING:      return &pr->reason_string;
	default:                           return NULL;
	}
}

static const struct mqtt_str *prop_cstr(const struct mqtt_props *pr,
					unsigned id)
{
	return prop_str((struct mqtt_props *)pr, id);
}

/* A byte property that must be 0 or 1 (all but none of them). */
static int get_bool_prop(struct cur *c, uint8_t *v)
{
	if (get_u8(c, v))
		return ERR(MQTT_ERR_SHORT);
	return *v > 1 ? ERR(MQTT_ERR_PROPERTY_VALUE) : 0;
}

/*
 * Decode a property block (length first) at c into pr, which must be
 * cleared. allowed: the identifiers this packet may carry; max_sub_ids:
 * how many Subscription Identifiers it may carry (PUBLISH many, SUBSCRIBE
 * one).
 */
static int props_decode(struct cur *c, struct mqtt_props *pr,
			uint64_t allowed, unsigned max_sub_ids)
{
	uint32_t plen;
	int e = get_varint(c, &plen);

	if (e)
		return e;
	if (plen > cur_left(c))
		return ERR(MQTT_ERR_SHORT);
	struct cur pc = { c->p, c->p + plen };
	const uint8_t *ufirst = NULL, *uend = NULL;
	size_t ubytes = 0;

	c->p = pc.end;
	while (pc.p < pc.end) {
		const uint8_t *start = pc.p;
		/* Identifiers are variable byte integers; all defined
		 * ones are one byte, so a set high bit is unknown. */
		unsigned id = *pc.p++;

		if (id >= 64 || !((allowed >> id) & 1))
			return ERR(MQTT_ERR_PROPERTY);   /* 2.2.2.2 */
		uint64_t bit = 1ull << id;

		if ((pr->present & bit) && id != MQTT_PROP_USER_PROPERTY &&
		    id != MQTT_PROP_SUBSCRIPTION_ID)
			return ERR(MQTT_ERR_PROTOCOL);   /* repeated: a protocol error */
		pr->present |= bit;

		switch (id) {
		case MQTT_PROP_PAYLOAD_FORMAT:
			e = get_bool_prop(&pc, &pr->payload_format);
			break;
		case MQTT_PROP_REQUEST_PROBLEM_INFO:
			e = get_bool_prop(&pc, &pr->request_problem_info);
			break;
		case MQTT_PROP_REQUEST_RESPONSE_INFO:
			e = get_bool_prop(&pc, &pr->request_response_info);
			break;
		case MQTT_PROP_MAXIMUM_QOS:
			e = get_bool_prop(&pc, &pr->max_qos);
			break;
		case MQTT_PROP_RETAIN_AVAILABLE:
			e = get_bool_prop(&pc, &pr->retain_available);
			break;
		case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
			e = get_bool_prop(&pc, &pr->wildcard_sub_available);
			break;
		case MQTT_PROP_SUB_ID_AVAILABLE:
			e = get_bool_prop(&pc, &pr->sub_id_available);
			break;
		case MQTT_PROP_SHARED_SUB_AVAILABLE:
			e = get_bool_prop(&pc, &pr->shared_sub_available);
			break;
		case MQTT_PROP_SERVER_KEEPALIVE:
			e = get_u16(&pc, &pr->server_keepalive);
			break;
		case MQTT_PROP_RECEIVE_MAXIMUM:
			e = get_u16(&pc, &pr->receive_maximum);
			if (!e && pr->receive_maximum == 0)
				e = ERR(MQTT_ERR_PROPERTY_VALUE);
			break;
		case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
			e = get_u16(&pc, &pr->topic_alias_maximum);
			break;
		case MQTT_PROP_TOPIC_ALIAS:
			e = get_u16(&pc, &pr->topic_alias);
			if (!e && pr->topic_alias == 0)  /* [MQTT-3.3.2-8] */
				e = ERR(MQTT_ERR_PROPERTY_VALUE);
			break;
		case MQTT_PROP_MESSAGE_EXPIRY:
			e = get_u32(&pc, &pr->message_expiry);
			break;
		case MQTT_PROP_SESSION_EXPIRY:
			e = get_u32(&pc, &pr->session_expiry);
			break;
		case MQTT_PROP_WILL_DELAY:
			e = get_u32(&pc, &pr->will_delay);
			break;
		case MQTT_PROP_MAXIMUM_PACKET_SIZE:
			e = get_u32(&pc, &pr->max_packet_size);
			if (!e && pr->max_packet_size == 0)
				e = ERR(MQTT_ERR_PROPERTY_VALUE);
			break;
		case MQTT_PROP_CORRELATION_DATA:
		case MQTT_PROP_AUTH_DATA:
			e = get_bin(&pc, prop_str(pr, id));
			break;
		case MQTT_PROP_RESPONSE_TOPIC:
			e = get_utf8(&pc, &pr->response_topic);
			/* [MQTT-3.3.2-14]: a topic name, no wildcards */
			if (!e && !mqtt_topic_name_valid(pr->response_topic.p,
						pr->response_topic.len))
				e = ERR(MQTT_ERR_TOPIC_NAME);
			break;
		case MQTT_PROP_SUBSCRIPTION_ID: {
			uint32_t sid;

			e = get_varint(&pc, &sid);
			if (e)
				break;
			if (sid == 0)                    /* 3.3.2.3.8 */
				return ERR(MQTT_ERR_PROPERTY_VALUE);
			if (pr->n_sub_ids >= max_sub_ids)
				return ERR(MQTT_ERR_PROTOCOL); /* repeated */
			pr->sub_ids[pr->n_sub_ids++] = sid;
			break;
		}
		case MQTT_PROP_USER_PROPERTY: {
			struct mqtt_str k, v;

			e = get_utf8(&pc, &k);          /* [MQTT-1.5.7-1] */
			if (!e)
				e = get_utf8(&pc, &v);
			if (e)
				break;
			if (pr->n_user == UINT16_MAX)
				return ERR(MQTT_ERR_TOO_LARGE);
			if (!ufirst)
				ufirst = start;
			uend = pc.p;
			ubytes += (size_t)(pc.p - start);
			pr->n_user++;
			break;
		}
		default:        /* the other strings */
			e = get_utf8(&pc, prop_str(pr, id));
			break;
		}
		if (e)
			return e;
	}
	if (ufirst) {
		pr->user = ufirst;
		pr->user_len = (uint32_t)(uend - ufirst);
		pr->user_interleaved = ubytes != pr->user_len;
	}
	/* Authentication Data without a Method is a protocol error
	 * (3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3). */
	if (MQTT_HAS(pr, MQTT_PROP_AUTH_DATA) &&
	    !MQTT_HAS(pr, MQTT_PROP_AUTH_METHOD))
		return ERR(MQTT_ERR_PROTOCOL);
	return 0;
}

/* Size of one property value, skipping it, for mqtt_user_props_next. */
static int prop_skip(struct cur *c, unsigned id)
{
	uint64_t bit = id < 64 ? 1ull << id : 0;
	struct mqtt_str s;
	uint32_t v;

	if (bit & PROPS_BYTE)
		return cur_left(c) >= 1 ? (c->p += 1, 0) : -1;
	if (bit & PROPS_U16)
		return cur_left(c) >= 2 ? (c->p += 2, 0) : -1;
	if (bit & PROPS_U32)
		return cur_left(c) >= 4 ? (c->p += 4, 0) : -1;
	if (bit & PROPS_STR)
		return get_bin(c, &s) ? -1 : 0;
	if (bit & P(SUBSCRIPTION_ID))
		return get_varint(c, &v) ? -1 : 0;
	return -1;
}

/* See codec.h. Any thread. */
int mqtt_user_props_next(const struct mqtt_props *props, uint32_t *off,
			 struct mqtt_str *key, struct mqtt_str *value)
{
	if (!props->user || *off >= props->user_len)
		return 0;
	struct cur c = { props->user + *off, props->user + props->user_len };

	while (c.p < c.end) {
		unsigned id = *c.p++;

		if (id == MQTT_PROP_USER_PROPERTY) {
			if (get_bin(&c, key) || get_bin(&c, value))
				break;
			*off = (uint32_t)(c.p - props->user);
			return 1;
		}
		if (prop_skip(&c, id))
			break;
	}
	*off = props->user_len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reason codes allowed per packet (v5)                                 */
/* ------------------------------------------------------------------ */

/* A 256-bit set of reason codes as four words. */
struct rcset {
	uint64_t w[4];
};

#define RC(x) ((x) < 64 ? 1ull << (x) : 0)
#define RC_HI(x) (((x) >= 128 && (x) < 192) ? 1ull << ((x) - 128) : 0)

static const struct rcset rc_connack = { {
	RC(0x00), 0,
	RC_HI(0x80) | RC_HI(0x81) | RC_HI(0x82) | RC_HI(0x83) | RC_HI(0x84) |
	RC_HI(0x85) | RC_HI(0x86) | RC_HI(0x87) | RC_HI(0x88) | RC_HI(0x89) |
	RC_HI(0x8A) | RC_HI(0x8C) | RC_HI(0x90) | RC_HI(0x95) | RC_HI(0x97) |
	RC_HI(0x99) | RC_HI(0x9A) | RC_HI(0x9B) | RC_HI(0x9C) | RC_HI(0x9D) |
	RC_HI(0x9F), 0 } };
static const struct rcset rc_puback = { {       /* and PUBREC */
	RC(0x00) | RC(0x10), 0,
	RC_HI(0x80) | RC_HI(0x83) | RC_HI(0x87) | RC_HI(0x90) | RC_HI(0x91) |
	RC_HI(0x97) | RC_HI(0x99), 0 } };
static const struct rcset rc_pubrel = { {       /* and PUBCOMP */
	RC(0x00), 0, RC_HI(0x92), 0 } };
static const struct rcset rc_suback = { {
	RC(0x00) | RC(0x01) | RC(0x02), 0,
	RC_HI(0x80) | RC_HI(0x83) | RC_HI(0x87) | RC_HI(0x8F) | RC_HI(0x91) |
	RC_HI(0x97) | RC_HI(0x9E) | RC_HI(0xA1) | RC_HI(0xA2), 0 } };
static const struct rcset rc_suback_v3 = { {
	RC(0x00) | RC(0x01) | RC(0x02), 0, RC_HI(0x80), 0 } };
static const struct rcset rc_unsuback = { {
	RC(0x00) | RC(0x11), 0,
	RC_HI(0x80) | RC_HI(0x83) | RC_HI(0x87) | RC_HI(0x8F) | RC_HI(0x91),
	0 } };
static const struct rcset rc_disconnect = { {
	RC(0x00) | RC(0x04), 0,
	RC_HI(0x80) | RC_HI(0x81) | RC_HI(0x82) | RC_HI(0x83) | RC_HI(0x87) |
	RC_HI(0x89) | RC_HI(0x8B) | RC_HI(0x8C) | RC_HI(0x8D) | RC_HI(0x8E) |
	RC_HI(0x8F) |
	RC_HI(0x90) | RC_HI(0x93) | RC_HI(0x94) | RC_HI(0x95) | RC_HI(0x96) |
	RC_HI(0x97) | RC_HI(0x98) | RC_HI(0x99) | RC_HI(0x9A) | RC_HI(0x9B) |
	RC_HI(0x9C) | RC_HI(0x9D) | RC_HI(0x9E) | RC_HI(0x9F) | RC_HI(0xA0) |
	RC_HI(0xA1) | RC_HI(0xA2), 0 } };
static const struct rcset rc_auth = { {
	RC(0x00) | RC(0x18) | RC(0x19), 0, 0, 0 } };

static inline bool rc_ok(const struct rcset *s, uint8_t rc)
{
	return (s->w[rc >> 6] >> (rc & 63)) & 1;
}

/* ------------------------------------------------------------------ */
/* Packet bodies                                                        */
/* ------------------------------------------------------------------ */

static int dec_connect(struct cur *c, struct mqtt_connect *k)
{
	struct mqtt_str name;
	uint8_t level, fl;
	int e;

	memset(k, 0, sizeof *k);        /* CONNECT is rare: clear it all */

	if ((e = get_bin(c, &name)) || (e = get_u8(c, &level)))
		return e;
	if (name.len == 4 && memcmp(name.p, "MQTT", 4) == 0) {
		k->version = level;
		if (level != MQTT_V311 && level != MQTT_V5)
			return ERR(MQTT_ERR_PROTOCOL_VERSION);  /* [MQTT-3.1.2-2] */
	} else if (name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0) {
		k->version = level;     /* MQTT 3.1: not spoken here */
		return ERR(MQTT_ERR_PROTOCOL_VERSION);
	} else {
		return ERR(MQTT_ERR_PROTOCOL_NAME);             /* [MQTT-3.1.2-1] */
	}
	bool v5 = level == MQTT_V5;

	if ((e = get_u8(c, &fl)))
		return e;
	if (fl & 0x01)
		return ERR(MQTT_ERR_CONNECT_FLAGS);             /* [MQTT-3.1.2-3] */
	k->clean = fl & 0x02;
	k->will = fl & 0x04;
	k->will_qos = (fl >> 3) & 3;
	k->will_retain = fl & 0x20;
	k->has_password = fl & 0x40;
	k->has_username = fl & 0x80;
	if (!k->will && (k->will_qos || k->will_retain))
		/* [MQTT-3.1.2-11] [MQTT-3.1.2-13] (3.1.1: -13, -15) */
		return ERR(MQTT_ERR_CONNECT_FLAGS);
	if (k->will_qos == 3)
		return ERR(MQTT_ERR_QOS);       /* [MQTT-3.1.2-12] (3.1.1: -14) */
	if (!v5 && k->has_password && !k->has_username)
		return ERR(MQTT_ERR_CONNECT_FLAGS);     /* 3.1.1 [MQTT-3.1.2-22] */
	if ((e = get_u16(c, &k->keepalive)))
		return e;
	if (v5 && (e = props_decode(c, &k->props, PROPS_CONNECT, 0)))
		return e;
	if ((e = get_utf8(c, &k->client_id)))          /* [MQTT-3.1.3-4] */
		return e;
	if (k->will) {
		if (v5 && (e = props_decode(c, &k->will_props, PROPS_WILL, 0)))
			return e;
		if ((e = get_utf8(c, &k->will_topic)))
			return e;
		if (!mqtt_topic_name_valid(k->will_topic.p, k->will_topic.len))
			return ERR(MQTT_ERR_TOPIC_NAME);
		if ((e = get_bin(c, &k->will_payload)))
			return e;
	}
	if (k->has_username && (e = get_utf8(c, &k->username)))
		return e;                               /* 3.1.3.5 */
	if (k->has_password && (e = get_bin(c, &k->password)))
		return e;
	return 0;
}

static int dec_connack(struct cur *c, bool v5, struct mqtt_connack *a)
{
	uint8_t fl, rc;
	int e;

	props_clear(&a->props);
	if ((e = get_u8(c, &fl)) || (e = get_u8(c, &rc)))
		return e;
	if (fl & 0xFE)
		return ERR(MQTT_ERR_RESERVED_FLAGS);    /* [MQTT-3.2.2-1] */
	a->session_present = fl & 1;
	if (v5) {
		if (!rc_ok(&rc_connack, rc))
			return ERR(MQTT_ERR_REASON_CODE);
		a->reason = rc;
		if ((e = props_decode(c, &a->props, PROPS_CONNACK, 0)))
			return e;
	} else {
		int r = connack_v5_reason(rc);

		if (r < 0)
			return ERR(MQTT_ERR_REASON_CODE);
		a->reason = (uint8_t)r;
	}
	if (a->session_present && a->reason)
		return ERR(MQTT_ERR_PROTOCOL);  /* [MQTT-3.2.2-6] (3.1.1: -4) */
	return 0;
}

static int dec_publish(struct cur *c, uint8_t flags, bool v5,
		       struct mqtt_publish *pb)
{
	int e;

	pb->qos = (flags >> 1) & 3;
	pb->dup = flags & 8;
	pb->retain = flags & 1;
	pb->packet_id = 0;
	props_clear(&pb->props);
	if ((e = get_bin(c, &pb->topic)))
		return e;
	if (!mqtt_utf8_valid(pb->topic.p, pb->topic.len))
		return ERR(MQTT_ERR_UTF8);              /* [MQTT-3.3.2-1] */
	if (pb->qos) {
		if ((e = get_u16(c, &pb->packet_id)))
			return e;
		if (pb->packet_id == 0)
			return ERR(MQTT_ERR_PACKET_ID); /* [MQTT-2.2.1-3] */
	}
	if (v5 && (e = props_decode(c, &pb->props, PROPS_PUBLISH,
				    MQTT_MAX_SUB_IDS)))
		return e;
	if (pb->topic.len == 0) {
		/* 3.3.2.1: empty only with a Topic Alias (v5); without one it is
		 * a protocol error (v3.1.1 [MQTT-4.7.3-1]: malformed name) */
		if (!v5)
			return ERR(MQTT_ERR_TOPIC_NAME);
		if (!MQTT_HAS(&pb->props, MQTT_PROP_TOPIC_ALIAS))
			return ERR(MQTT_ERR_PROTOCOL);
	} else if (!mqtt_topic_name_valid(pb->topic.p, pb->topic.len)) {
		return ERR(MQTT_ERR_TOPIC_NAME);        /* [MQTT-3.3.2-2] */
	}
	pb->payload = c->p;
	pb->payload_len = (uint32_t)cur_left(c);
	c->p = c->end;
	return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. v3.1.1 lengths were checked already. */
static int dec_ack(struct cur *c, uint8_t type, bool v5, struct mqtt_ack *a)
{
	int e;

	a->reason = 0;
	props_clear(&a->props);
	if ((e = get_u16(c, &a->packet_id)))
		return e;
	if (a->packet_id == 0)
		return ERR(MQTT_ERR_PACKET_ID);
	if (!v5 || c->p == c->end)
		return 0;       /* 3.4.2.1: no reason code means success */
	a->reason = *c->p++;
	const struct rcset *ok = type == MQTT_PUBACK || type == MQTT_PUBREC ?
				 &rc_puback : &rc_pubrel;

	if (!rc_ok(ok, a->reason))
		return ERR(MQTT_ERR_REASON_CODE);       /* [MQTT-3.4.2-1] */
	if (c->p == c->end)
		return 0;       /* 3.4.2.2: no property length means none */
	return props_decode(c, &a->props, PROPS_ACK, 0);
}

/* Check one subscription options byte (3.8.3.1). */
static int check_sub_options(uint8_t o, bool v5, bool shared)
{
	if (!v5)        /* 3.1.1 [MQTT-3-8.3-4]: bits 2-7 zero, QoS 0..2 */
		return (o & 0xFC) || MQTT_SUBOPT_QOS(o) == 3 ?
		       ERR(MQTT_ERR_SUB_OPTIONS) : 0;
	if (o & 0xC0)
		return ERR(MQTT_ERR_SUB_OPTIONS);       /* [MQTT-3.8.3-5] */
	if (MQTT_SUBOPT_QOS(o) == 3 || MQTT_SUBOPT_RETAIN_HANDLING(o) == 3)
		return ERR(MQTT_ERR_SUB_OPTIONS);       /* 3.8.3.1 */
	if (shared && (o & MQTT_SUBOPT_NO_LOCAL))
		return ERR(MQTT_ERR_PROTOCOL);          /* [MQTT-3.8.3-4] */
	return 0;
}

/* SUBSCRIBE (with_options) and UNSUBSCRIBE. */
static int dec_subscribe(struct cur *c, bool v5, bool with_options,
			 struct mqtt_subscribe *s)
{
	int e;

	props_clear(&s->props);
	s->count = 0;
	if ((e = get_u16(c, &s->packet_id)))
		return e;
	if (s->packet_id == 0)
		return ERR(MQTT_ERR_PACKET_ID);         /* [MQTT-2.2.1-3] */
	if (v5 && (e = props_decode(c, &s->props, with_options ?
				    PROPS_SUBSCRIBE : PROPS_UNSUBSCRIBE, 1)))
		return e;
	s->list = c->p;
	s->list_len = (uint32_t)cur_left(c);
	if (c->p == c->end)     /* [MQTT-3.8.3-2] [MQTT-3.10.3-2] */
		return ERR(MQTT_ERR_NO_TOPICS);
	while (c->p < c->end) {
		struct mqtt_str f;
		uint8_t o;

		if ((e = get_bin(c, &f)))
			return e;
		if (!mqtt_utf8_valid(f.p, f.len))
			return ERR(MQTT_ERR_UTF8);      /* [MQTT-3.8.3-1] */
		if (!mqtt_topic_filter_valid(f.p, f.len))
			return ERR(MQTT_ERR_TOPIC_FILTER);
		if (with_options) {
			if ((e = get_u8(c, &o)))
				return e;
			if ((e = check_sub_options(o, v5,
						   is_shared(f.p, f.len))))
				return e;
		}
		if (s->count == UINT16_MAX)
			return ERR(MQTT_ERR_TOO_LARGE);
		s->count++;
	}
	return 0;
}

/* SUBACK and UNSUBACK (the v3.1.1 UNSUBACK is just a packet id). */
static int dec_suback(struct cur *c, uint8_t type, bool v5,
		      struct mqtt_suback *s)
{
	int e;

	props_clear(&s->props);
	s->codes = NULL;
	s->count = 0;
	if ((e = get_u16(c, &s->packet_id)))
		return e;
	if (s->packet_id == 0)
		return ERR(MQTT_ERR_PACKET_ID);
	if (!v5 && type == MQTT_UNSUBACK)
		return 0;
	if (v5 && (e = props_decode(c, &s->props, PROPS_ACK, 0)))
		return e;
	size_t n = cur_left(c);

	if (n == 0)
		return ERR(MQTT_ERR_NO_TOPICS); /* one code per filter, >= 1 */
	if (n > UINT16_MAX)
		return ERR(MQTT_ERR_TOO_LARGE);
	const struct rcset *ok = type == MQTT_UNSUBACK ? &rc_unsuback :
				 v5 ? &rc_suback : &rc_suback_v3;

	for (size_t i = 0; i < n; i++)
		if (!rc_ok(ok, c->p[i]))
			return ERR(MQTT_ERR_REASON_CODE);
	s->codes = c->p;
	s->count = (uint16_t)n;
	c->p = c->end;
	return 0;
}

/* DISCONNECT and AUTH (v5; the v3.1.1 DISCONNECT is empty). */
static int dec_disconnect(struct cur *c, uint8_t type, bool v5,
			  struct mqtt_disconnect *d)
{
	d->reason = 0;
	props_clear(&d->props);
	if (!v5 || c->p == c->end)
		return 0;       /* 3.14.2.1, 3.15.2.1: absent means 0x00 */
	d->reason = *c->p++;
	if (!rc_ok(type == MQTT_AUTH ? &rc_auth : &rc_disconnect, d->reason))
		return ERR(MQTT_ERR_REASON_CODE);
	if (c->p == c->end)
		return 0;
	return props_decode(c, &d->props, type == MQTT_AUTH ? PROPS_AUTH :
			    PROPS_DISCONNECT, 0);
}

/* ------------------------------------------------------------------ */
/* mqtt_decode                                                          */
/* ------------------------------------------------------------------ */

/*
 * Checks of the first byte alone [MQTT-2.1.3-1]: the reserved flags, the
 * PUBLISH QoS and DUP bits, and the type.
 */
static int check_first_byte(uint8_t type, uint8_t flags, bool v5)
{
	switch (type) {
	case 0:
		return ERR(MQTT_ERR_BAD_TYPE);
	case MQTT_PUBLISH:
		if (((flags >> 1) & 3) == 3)
			return ERR(MQTT_ERR_QOS);       /* [MQTT-3.3.1-4] */
		if ((flags & 8) && !(flags & 6))
			return ERR(MQTT_ERR_PROTOCOL);  /* [MQTT-3.3.1-2] */
		return 0;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		/* [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] */
		return flags == 2 ? 0 : ERR(MQTT_ERR_RESERVED_FLAGS);
	case MQTT_AUTH:
		if (!v5)
			return ERR(MQTT_ERR_BAD_TYPE);  /* no AUTH in 3.1.1 */
		/* fall through */
	default:
		return flags == 0 ? 0 : ERR(MQTT_ERR_RESERVED_FLAGS);
	}
}

/*
 * Packets whose remaining length is fixed, checked from the header so a
 * bogus length is refused before its body is awaited. Returns the exact
 * length, or -1 when it varies.
 */
static int fixed_remaining(uint8_t type, bool v5)
{
	switch (type) {
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		return 0;
	case MQTT_DISCONNECT:
		return v5 ? -1 : 0;
	case MQTT_CONNACK:
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		return v5 ? -1 : 2;
	default:
		return -1;
	}
}

/* See codec.h. Any thread. */
ssize_t mqtt_decode(const uint8_t *buf, size_t len, uint8_t version,
		    uint32_t max_size, struct mqtt_packet *out)
{
	if (len == 0)
		return 0;
	uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0F;
	bool v5 = version == MQTT_V5;
	int e;

	out->type = type;
	out->flags = flags;
	out->remaining = 0;
	if ((e = check_first_byte(type, flags, v5)))
		return e;

	uint32_t rem;
	int n = varint_get(buf + 1, len - 1, &rem);

	if (n <= 0)
		return n;               /* need more, or a bad length */
	size_t hl = 1 + (size_t)n;

	out->remaining = rem;
	if (max_size && hl + rem > max_size)
		return ERR(MQTT_ERR_TOO_LARGE);
	int fixed = fixed_remaining(type, v5);

	if (fixed >= 0 && rem != (uint32_t)fixed)
		return ERR(rem < (uint32_t)fixed ? MQTT_ERR_SHORT :
			   MQTT_ERR_TRAILING);
	if (len - hl < rem)
		return 0;

	struct cur c = { buf + hl, buf + hl + rem };

	switch (type) {
	case MQTT_CONNECT:      /* decoded with its own protocol level */
		e = dec_connect(&c, &out->u.connect);
		break;
	case MQTT_CONNACK:
		e = dec_connack(&c, v5, &out->u.connack);
		break;
	case MQTT_PUBLISH:
		e = dec_publish(&c, flags, v5, &out->u.publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		e = dec_ack(&c, type, v5, &out->u.ack);
		break;
	case MQTT_SUBSCRIBE:
		e = dec_subscribe(&c, v5, true, &out->u.subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		e = dec_subscribe(&c, v5, false, &out->u.subscribe);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		e = dec_suback(&c, type, v5, &out->u.suback);
		break;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		e = dec_disconnect(&c, type, v5, &out->u.disconnect);
		break;
	default:                /* PINGREQ, PINGRESP: no body */
		e = 0;
		break;
	}
	if (e)
		return e;
	if (c.p != c.end)
		return ERR(MQTT_ERR_TRAILING);
	return (ssize_t)(hl + rem);
}

/* ------------------------------------------------------------------ */
/* Topic lists                                                          */
/* ------------------------------------------------------------------ */

/* See codec.h. Any thread. */
void mqtt_topics_begin(struct mqtt_topics_iter *it,
		       const struct mqtt_subscribe *s, bool with_options)
{
	it->p = s->list;
	it->end = s->list ? s->list + s->list_len : NULL;
	it->with_options = with_options;
}

/* See codec.h. Bounds-checked, so a hand-built list cannot overrun. */
int mqtt_topics_next(struct mqtt_topics_iter *it, struct mqtt_str *filter,
		     uint8_t *options)
{
	struct cur c = { it->p, it->end };

	if (!c.p || c.p >= c.end || get_bin(&c, filter))
		return 0;
	if (it->with_options) {
		uint8_t o;

		if (get_u8(&c, &o))
			return 0;
		if (options)
			*options = o;
	}
	it->p = c.p;
	return 1;
}

static inline uint8_t *put_u16(uint8_t *o, uint16_t v)
{
	o[0] = (uint8_t)(v >> 8);
	o[1] = (uint8_t)v;
	return o + 2;
}

static inline uint8_t *put_u32(uint8_t *o, uint32_t v)
{
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
	return o + 4;
}

static inline uint8_t *put_bytes(uint8_t *o, const void *p, size_t n)
{
	if (n)
		memcpy(o, p, n);
	return o + n;
}

static inline uint8_t *put_str(uint8_t *o, const struct mqtt_str *s)
{
	o = put_u16(o, s->len);
	return put_bytes(o, s->p, s->len);
}

/* See codec.h. Any thread. */
size_t mqtt_topics_put(uint8_t *out, size_t cap, const void *filter,
		       size_t len, bool with_options, uint8_t options)
{
	size_t need = 2 + len + (with_options ? 1 : 0);

	if (len > UINT16_MAX || need > cap)
		return 0;
	uint8_t *o = put_u16(out, (uint16_t)len);

	o = put_bytes(o, filter, len);
	if (with_options)
		*o = options;
	return need;
}

/* See codec.h. Any thread. */
size_t mqtt_user_prop_put(uint8_t *out, size_t cap, const void *key,
			  size_t key_len, const void *value, size_t value_len)
{
	size_t need = 5 + key_len + value_len;

	if (key_len > UINT16_MAX || value_len > UINT16_MAX || need > cap)
		return 0;
	uint8_t *o = out;

	*o++ = MQTT_PROP_USER_PROPERTY;
	o = put_u16(o, (uint16_t)key_len);
	o = put_bytes(o, key, key_len);
	o = put_u16(o, (uint16_t)value_len);
	put_bytes(o, value, value_len);
	return need;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */
/* ------------------------------------------------------------------ */

#define TOO_BIG SIZE_MAX

static inline bool has_user(const struct mqtt_props *pr)
{
	return MQTT_HAS(pr, MQTT_PROP_USER_PROPERTY) && pr->user &&
	       pr->user_len;
}

/*
 * Bytes of the user properties as they will be written: only the (0x26,
 * key, value) triples of the run, found by walking it, so that a run that
 * still holds other properties (user_interleaved, possibly lost when a
 * caller copied user/user_len alone) never smuggles them into the output.
 * A triple is a few instructions to step over.
 */
static size_t user_size(const struct mqtt_props *pr)
{
	if (!has_user(pr))
		return 0;
	size_t n = 0;
	uint32_t off = 0;
	struct mqtt_str k, v;

	while (mqtt_user_props_next(pr, &off, &k, &v))
		n += 5u + k.len + v.len;
	return n;
}

/* Size of the property values, without the length prefix. */
static size_t props_body_size(const struct mqtt_props *pr)
{
	uint64_t m = pr->present & PROPS_KNOWN;

	if (!m)
		return 0;
	size_t n = 2 * (size_t)__builtin_popcountll(m & PROPS_BYTE) +
		   3 * (size_t)__builtin_popcountll(m & PROPS_U16) +
		   5 * (size_t)__builtin_popcountll(m & PROPS_U32);
	uint64_t s = m & PROPS_STR;

	while (s) {
		unsigned id = (unsigned)__builtin_ctzll(s);

		s &= s - 1;
		n += 3u + prop_cstr(pr, id)->len;
	}
	if (m & P(SUBSCRIPTION_ID))
		for (unsigned i = 0; i < pr->n_sub_ids && i < MQTT_MAX_SUB_IDS;
		     i++)
			n += 1u + (size_t)mqtt_varint_size(pr->sub_ids[i]);
	return n + user_size(pr);
}

/* See codec.h: 0 when the block is too large to encode. Any thread. */
size_t mqtt_props_size(const struct mqtt_props *props)
{
	size_t n = props_body_size(props);

	n = n > MQTT_MAX_REMAINING ? TOO_BIG :
	    (size_t)mqtt_varint_size((uint32_t)n) + n;

	return n == TOO_BIG ? 0 : n;
}

/* Write the property block; the caller has checked the room. */
static uint8_t *props_put(uint8_t *o, const struct mqtt_props *pr,
			  size_t body)
{
	uint64_t m = pr->present & PROPS_KNOWN;

	o += mqtt_varint_put(o, (uint32_t)body);
	while (m) {
		unsigned id = (unsigned)__builtin_ctzll(m);
		uint64_t bit = 1ull << id;

		m &= m - 1;
		if (id == MQTT_PROP_USER_PROPERTY)
			continue;       /* last, below */
		if (id == MQTT_PROP_SUBSCRIPTION_ID) {
			for (unsigned i = 0; i < pr->n_sub_ids &&
			     i < MQTT_MAX_SUB_IDS; i++) {
				*o++ = (uint8_t)id;
				o += mqtt_varint_put(o, pr->sub_ids[i]);
			}
			continue;
		}
		*o++ = (uint8_t)id;
		if (bit & PROPS_STR) {
			o = put_str(o, prop_cstr(pr, id));
			continue;
		}
		switch (id) {
		case MQTT_PROP_PAYLOAD_FORMAT:
			*o++ = pr->payload_format;
			break;
		case MQTT_PROP_REQUEST_PROBLEM_INFO:
			*o++ = pr->request_problem_info;
			break;
		case MQTT_PROP_REQUEST_RESPONSE_INFO:
			*o++ = pr->request_response_info;
			break;
		case MQTT_PROP_MAXIMUM_QOS:
			*o++ = pr->max_qos;
			break;
		case MQTT_PROP_RETAIN_AVAILABLE:
			*o++ = pr->retain_available;
			break;
		case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
			*o++ = pr->wildcard_sub_available;
			break;
		case MQTT_PROP_SUB_ID_AVAILABLE:
			*o++ = pr->sub_id_available;
			break;
		case MQTT_PROP_SHARED_SUB_AVAILABLE:
			*o++ = pr->shared_sub_available;
			break;
		case MQTT_PROP_SERVER_KEEPALIVE:
			o = put_u16(o, pr->server_keepalive);
			break;
		case MQTT_PROP_RECEIVE_MAXIMUM:
			o = put_u16(o, pr->receive_maximum);
			break;
		case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
			o = put_u16(o, pr->topic_alias_maximum);
			break;
		case MQTT_PROP_TOPIC_ALIAS:
			o = put_u16(o, pr->topic_alias);
			break;
		case MQTT_PROP_MESSAGE_EXPIRY:
			o = put_u32(o, pr->message_expiry);
			break;
		case MQTT_PROP_SESSION_EXPIRY:
			o = put_u32(o, pr->session_expiry);
			break;
		case MQTT_PROP_WILL_DELAY:
			o = put_u32(o, pr->will_delay);
			break;
		case MQTT_PROP_MAXIMUM_PACKET_SIZE:
			o = put_u32(o, pr->max_packet_size);
			break;
		}
	}
	if (has_user(pr)) {     /* the triples only, as user_size() counts */
		uint32_t off = 0;
		struct mqtt_str k, v;

		while (mqtt_user_props_next(pr, &off, &k, &v)) {
			*o++ = MQTT_PROP_USER_PROPERTY;
			o = put_str(o, &k);
			o = put_str(o, &v);
		}
	}
	return o;
}

/* See codec.h. Any thread. */
size_t mqtt_props_encode(const struct mqtt_props *props, uint8_t *out,
			 size_t cap)
{
	size_t body = props_body_size(props);

	if (body > MQTT_MAX_REMAINING)
		return 0;
	size_t n = (size_t)mqtt_varint_size((uint32_t)body) + body;

	if (n > cap)
		return 0;
	props_put(out, props, body);
	return n;
}

/* Block size (length prefix included) for a body of n bytes, or TOO_BIG. */
static inline size_t block_size(size_t n)
{
	if (n > MQTT_MAX_REMAINING)
		return TOO_BIG;
	return (size_t)mqtt_varint_size((uint32_t)n) + n;
}

/* Property body sizes worked out by body_size() for mqtt_encode(), so that
 * the properties are measured once. */
struct psizes {
	size_t props;
	size_t will;
};

/* Property block size (prefix included) for v5 with *body set to the size
 * of its values; 0 for v3.1.1. */
static inline size_t vprops(const struct mqtt_props *pr, bool v5, size_t *body)
{
	if (!v5)
		return 0;
	*body = props_body_size(pr);
	return block_size(*body);
}

/* Sum sizes, keeping TOO_BIG sticky. */
static inline size_t add(size_t a, size_t b)
{
	return (a == TOO_BIG || b == TOO_BIG || a + b > MQTT_MAX_REMAINING) ?
	       TOO_BIG : a + b;
}

/* The protocol level CONNECT is encoded with. */
static inline uint8_t connect_level(const struct mqtt_packet *p,
				    uint8_t version)
{
	return version ? version : p->u.connect.version;
}

/* Remaining length of p for a version, or TOO_BIG; *ps gets the sizes of
 * the property values. */
static size_t body_size(const struct mqtt_packet *p, uint8_t version,
			struct psizes *ps)
{
	bool v5 = version == MQTT_V5;
	size_t n;

	ps->props = ps->will = 0;

	switch (p->type) {
	case MQTT_CONNECT: {
		const struct mqtt_connect *k = &p->u.connect;
		uint8_t lv = connect_level(p, version);

		if (lv != MQTT_V311 && lv != MQTT_V5)
			return TOO_BIG;
		v5 = lv == MQTT_V5;
		n = add(10 + 2 + (size_t)k->client_id.len,
			vprops(&k->props, v5, &ps->props));
		if (k->will) {
			n = add(n, vprops(&k->will_props, v5, &ps->will));
			n = add(n, 4 + (size_t)k->will_topic.len +
				   k->will_payload.len);
		}
		if (k->has_username)
			n = add(n, 2 + (size_t)k->username.len);
		if (k->has_password)
			n = add(n, 2 + (size_t)k->password.len);
		return n;
	}
	case MQTT_CONNACK:
		return add(2, vprops(&p->u.connack.props, v5, &ps->props));
	case MQTT_PUBLISH: {
		const struct mqtt_publish *pb = &p->u.publish;

		n = 2 + (size_t)pb->topic.len + (pb->qos ? 2 : 0);
		n = add(n, vprops(&pb->props, v5, &ps->props));
		return add(n, pb->payload_len);
	}
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: {
		const struct mqtt_ack *a = &p->u.ack;

		if (!v5)
			return 2;
		ps->props = props_body_size(&a->props);
		if (ps->props == 0)
			return a->reason ? 3 : 2;       /* 3.4.2.1 short forms */
		return add(3, block_size(ps->props));
	}
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: {
		const struct mqtt_subscribe *s = &p->u.subscribe;

		return add(add(2, vprops(&s->props, v5, &ps->props)),
			   s->list_len);
	}
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: {
		const struct mqtt_suback *s = &p->u.suback;

		if (!v5 && p->type == MQTT_UNSUBACK)
			return 2;
		return add(add(2, vprops(&s->props, v5, &ps->props)),
			   s->count);
	}
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		return 0;
	case MQTT_AUTH:
		if (!v5)
			return TOO_BIG;
		/* fall through */
	case MQTT_DISCONNECT: {
		const struct mqtt_disconnect *d = &p->u.disconnect;

		if (!v5)
			return 0;
		ps->props = props_body_size(&d->props);
		if (ps->props == 0)
			return d->reason ? 1 : 0;       /* 3.14.2.1 */
		return add(1, block_size(ps->props));
	}
	default:
		return TOO_BIG;
	}
}

/* See codec.h. Any thread. */
size_t mqtt_encoded_size(const struct mqtt_packet *p, uint8_t version)
{
	struct psizes ps;
	size_t body = body_size(p, version, &ps);

	if (body == TOO_BIG)
		return 0;
	return 1 + (size_t)mqtt_varint_size((uint32_t)body) + body;
}

static inline uint8_t v3_suback_code(uint8_t rc)
{
	return rc <= 2 ? rc : 0x80;     /* 3.1.1 3.9.3 */
}

/* See codec.h. Any thread. */
size_t mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out,
		   size_t cap)
{
	struct psizes ps;
	size_t body = body_size(p, version, &ps);

	if (body == TOO_BIG)
		return 0;
	size_t total = 1 + (size_t)mqtt_varint_size((uint32_t)body) + body;

	if (total > cap)
		return 0;
	bool v5 = version == MQTT_V5;
	uint8_t *o = out;
	uint8_t flags = 0;

	if (p->type == MQTT_PUBLISH)
		flags = (uint8_t)((p->u.publish.dup ? 8 : 0) |
				  (p->u.publish.qos & 3) << 1 |
				  (p->u.publish.retain ? 1 : 0));
	else if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE ||
		 p->type == MQTT_UNSUBSCRIBE)
		flags = 2;
	*o++ = (uint8_t)(p->type << 4 | flags);
	o += mqtt_varint_put(o, (uint32_t)body);

	switch (p->type) {
	case MQTT_CONNECT: {
		const struct mqtt_connect *k = &p->u.connect;
		uint8_t lv = connect_level(p, version);

		v5 = lv == MQTT_V5;
		o = put_u16(o, 4);
		o = put_bytes(o, "MQTT", 4);
		*o++ = lv;
		*o++ = (uint8_t)((k->has_username ? 0x80 : 0) |
				 (k->has_password ? 0x40 : 0) |
				 (k->will && k->will_retain ? 0x20 : 0) |
				 (k->will ? (k->will_qos & 3) << 3 : 0) |
				 (k->will ? 0x04 : 0) |
				 (k->clean ? 0x02 : 0));
		o = put_u16(o, k->keepalive);
		if (v5)
			o = props_put(o, &k->props, ps.props);
		o = put_str(o, &k->client_id);
		if (k->will) {
			if (v5)
				o = props_put(o, &k->will_props, ps.will);
			o = put_str(o, &k->will_topic);
			o = put_str(o, &k->will_payload);
		}
		if (k->has_username)
			o = put_str(o, &k->username);
		if (k->has_password)
			o = put_str(o, &k->password);
		break;
	}
	case MQTT_CONNACK: {
		const struct mqtt_connack *a = &p->u.connack;

		*o++ = a->session_present ? 1 : 0;
		*o++ = v5 ? a->reason : mqtt_connack_v3_code(a->reason);
		if (v5)
			o = props_put(o, &a->props, ps.props);
		break;
	}
	case MQTT_PUBLISH: {
		const struct mqtt_publish *pb = &p->u.publish;

		o = put_str(o, &pb->topic);
		if (pb->qos)
			o = put_u16(o, pb->packet_id);
		if (v5)
			o = props_put(o, &pb->props, ps.props);
		o = put_bytes(o, pb->payload, pb->payload_len);
		break;
	}
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: {
		const struct mqtt_ack *a = &p->u.ack;

		o = put_u16(o, a->packet_id);
		if (body >= 3)
			*o++ = a->reason;
		if (body >= 4)
			o = props_put(o, &a->props, ps.props);
		break;
	}
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: {
		const struct mqtt_subscribe *s = &p->u.subscribe;

		o = put_u16(o, s->packet_id);
		if (v5)
			o = props_put(o, &s->props, ps.props);
		o = put_bytes(o, s->list, s->list_len);
		break;
	}
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: {
		const struct mqtt_suback *s = &p->u.suback;

		o = put_u16(o, s->packet_id);
		if (!v5 && p->type == MQTT_UNSUBACK)
			break;
		if (v5) {
			o = props_put(o, &s->props, ps.props);
			o = put_bytes(o, s->codes, s->count);
		} else {
			for (unsigned i = 0; i < s->count; i++)
				*o++ = v3_suback_code(s->codes[i]);
		}
		break;
	}
	case MQTT_DISCONNECT:
	case MQTT_AUTH: {
		const struct mqtt_disconnect *d = &p->u.disconnect;

		if (body >= 1)
			*o++ = d->reason;
		if (body >= 2)
			o = props_put(o, &d->props, ps.props);
		break;
	}
	default:
		break;
	}
	return (size_t)(o - out) == total ? total : 0;
}
