/*
 * MQTT 3.1.1 / 5.0 packet types, as the codec produces and consumes them.
 *
 * The codec needs nothing but libc. Decoded strings and binary fields are
 * views (pointer + length) into the caller's input buffer: they stay valid
 * as long as that buffer does. Nothing is allocated by decoding.
 */
#ifndef VOUCH_MQTT_CODEC_T_H
#define VOUCH_MQTT_CODEC_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTT_V311 4
#define MQTT_V5   5

enum mqtt_ptype {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15,
};

/* MQTT 5.0 reason codes (section 2.4). v3.1.1 CONNACK return codes are
 * mapped from these by the encoder (see mqtt_connack_v3_code()). */
enum mqtt_rc {
	MQTT_RC_SUCCESS = 0x00,
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTH = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPL_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_VERSION = 0x84,
	MQTT_RC_CLIENTID_NOT_VALID = 0x85,
	MQTT_RC_BAD_USER_OR_PASS = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTH_METHOD = 0x8C,
	MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMIN_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAX_CONNECT_TIME = 0xA0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* Why the decoder refused its input. mqtt_err_reason() maps each to the
 * MQTT 5.0 reason code a server sends in DISCONNECT (or CONNACK). */
enum mqtt_err {
	MQTT_ERR_NONE = 0,
	MQTT_ERR_REMAINING_LENGTH,  /* a variable byte integer over 4 bytes or
	                               not minimal [MQTT-1.5.5-1] */
	MQTT_ERR_TOO_LARGE,         /* over the maximum packet size (or over
	                               65535 filters, codes or user props) */
	MQTT_ERR_RESERVED_FLAGS,    /* fixed-header flags wrong for the type,
	                               CONNACK flags bits 1-7 */
	MQTT_ERR_BAD_TYPE,          /* type 0, or AUTH on v3.1.1 */
	MQTT_ERR_SHORT,             /* remaining length too small for the fields */
	MQTT_ERR_TRAILING,          /* bytes left over inside the packet */
	MQTT_ERR_UTF8,              /* ill-formed UTF-8 or U+0000 [MQTT-1.5.4] */
	MQTT_ERR_PROTOCOL_NAME,     /* not "MQTT" (or "MQIsdp") */
	MQTT_ERR_PROTOCOL_VERSION,  /* a version we do not speak */
	MQTT_ERR_CONNECT_FLAGS,     /* reserved bit, will flags, user/pass rules */
	MQTT_ERR_QOS,               /* QoS 3 */
	MQTT_ERR_TOPIC_NAME,        /* empty or wildcard in a topic name */
	MQTT_ERR_TOPIC_FILTER,      /* malformed topic filter */
	MQTT_ERR_PACKET_ID,         /* packet identifier zero */
	MQTT_ERR_NO_TOPICS,         /* SUBSCRIBE / UNSUBSCRIBE without a filter
	                               (SUBACK / v5 UNSUBACK without a code) */
	MQTT_ERR_SUB_OPTIONS,       /* reserved subscription option bits, QoS 3,
	                               Retain Handling 3 */
	MQTT_ERR_PROPERTY,          /* unknown property, or not allowed in the packet (malformed) */
	MQTT_ERR_PROPERTY_VALUE,    /* property value out of range */
	MQTT_ERR_REASON_CODE,       /* reason code the packet type does not allow */
	MQTT_ERR_PROTOCOL,          /* other protocol error: DUP on QoS 0, No
	                               Local on a shared subscription, CONNACK
	                               session present with a failure */
	MQTT_ERR__COUNT
};

/* v5 property identifiers (section 2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEPALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER_PROPERTY = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* A length-prefixed string or binary field: a view, not a copy. */
struct mqtt_str {
	const uint8_t *p;
	uint16_t len;
};

#define MQTT_MAX_SUB_IDS 32

/* Largest remaining length (and variable byte integer) [MQTT-1.5.5]. */
#define MQTT_MAX_REMAINING 268435455u

/*
 * The v5 properties of one packet. `present` has bit (1ull << id) set for
 * each property seen (or to be encoded). User properties are kept as the raw
 * encoded run of (0x26, key, value) triples, in order, so that they pass
 * through the broker without being rebuilt. When a peer puts other
 * properties between its user properties the decoder cannot make one run
 * without copying: it then sets user_interleaved and `user` spans from the
 * first user property to the end of the last, other properties included.
 * Walk user properties with mqtt_user_props_next(), which handles both.
 * The encoder writes only the user property triples of the run, so copying
 * user/user_len/n_user into another property set is safe either way.
 *
 * Encoding writes the properties whose bit is set in `present` (user
 * properties: bit set and user_len > 0; subscription identifiers: bit set
 * and n_sub_ids > 0). Fields of absent properties are not read.
 */
struct mqtt_props {
	uint64_t present;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
	uint16_t server_keepalive;
	uint16_t receive_maximum;
	uint16_t topic_alias_maximum;
	uint16_t topic_alias;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t max_packet_size;
	struct mqtt_str content_type;
	struct mqtt_str response_topic;
	struct mqtt_str correlation_data;
	struct mqtt_str assigned_client_id;
	struct mqtt_str auth_method;
	struct mqtt_str auth_data;
	struct mqtt_str response_info;
	struct mqtt_str server_reference;
	struct mqtt_str reason_string;
	const uint8_t *user;     /* raw encoded user properties, or NULL */
	uint32_t user_len;       /* bytes in `user` */
	uint16_t n_user;         /* number of user properties */
	uint8_t n_sub_ids;
	bool user_interleaved;   /* `user` also holds other properties */
	uint32_t sub_ids[MQTT_MAX_SUB_IDS];  /* keep last: not cleared on decode */
};

#define MQTT_HAS(props, id) (((props)->present >> (id)) & 1u)
#define MQTT_SET(props, id) ((props)->present |= (1ull << (id)))

struct mqtt_connect {
	uint8_t version;         /* MQTT_V311 or MQTT_V5 (3 = MQIsdp is refused) */
	bool clean;              /* clean session (3.1.1) / clean start (5.0) */
	bool will;
	uint8_t will_qos;
	bool will_retain;
	bool has_username;
	bool has_password;
	uint16_t keepalive;
	struct mqtt_props props;
	struct mqtt_str client_id;
	struct mqtt_props will_props;
	struct mqtt_str will_topic;
	struct mqtt_str will_payload;
	struct mqtt_str username;
	struct mqtt_str password;
};

struct mqtt_connack {
	bool session_present;
	uint8_t reason;          /* a v5 reason code; mapped for 3.1.1 */
	struct mqtt_props props;
};

struct mqtt_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	uint16_t packet_id;      /* only when qos > 0 */
	struct mqtt_str topic;   /* may be empty in v5 when a topic alias is set */
	struct mqtt_props props;
	const uint8_t *payload;
	uint32_t payload_len;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
	uint16_t packet_id;
	uint8_t reason;
	struct mqtt_props props;
};

/*
 * SUBSCRIBE and UNSUBSCRIBE: the topic list stays encoded; walk it with
 * mqtt_topics_next(). For SUBSCRIBE each entry is (filter, options byte);
 * for UNSUBSCRIBE just the filter. The decoder has validated every entry.
 */
struct mqtt_subscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	const uint8_t *list;
	uint32_t list_len;
	uint16_t count;
};

/* SUBACK and UNSUBACK: one reason code per filter (v3.1.1 UNSUBACK has none). */
struct mqtt_suback {
	uint16_t packet_id;
	struct mqtt_props props;
	const uint8_t *codes;
	uint16_t count;
};

/* DISCONNECT and AUTH. */
struct mqtt_disconnect {
	uint8_t reason;
	struct mqtt_props props;
};

/* Subscription options byte (v5 3.8.3.1; v3.1.1 uses only the QoS bits). */
#define MQTT_SUBOPT_QOS(o)            ((o) & 0x03)
#define MQTT_SUBOPT_NO_LOCAL          0x04
#define MQTT_SUBOPT_RETAIN_AS_PUB     0x08
#define MQTT_SUBOPT_RETAIN_HANDLING(o) (((o) >> 4) & 0x03)

struct mqtt_packet {
	uint8_t type;            /* enum mqtt_ptype */
	uint8_t flags;           /* low nibble of the first byte */
	uint32_t remaining;      /* remaining length */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack;
		struct mqtt_subscribe subscribe;   /* and UNSUBSCRIBE */
		struct mqtt_suback suback;         /* and UNSUBACK */
		struct mqtt_disconnect disconnect; /* and AUTH */
	} u;
};

/* Iterator over a SUBSCRIBE / UNSUBSCRIBE topic list. */
struct mqtt_topics_iter {
	const uint8_t *p;
	const uint8_t *end;
	bool with_options;       /* true for SUBSCRIBE */
};

#endif
