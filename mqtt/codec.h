/*
 * MQTT 3.1.1 / 5.0 codec: bytes in, structs out, and back. libc only; no
 * allocation; any thread (it has no state).
 */
#ifndef VOUCH_MQTT_CODEC_H
#define VOUCH_MQTT_CODEC_H

#include <sys/types.h>

#include "mqtt/codec-t.h"

/*
 * Decode one packet from buf[0..len).
 *
 * version: the connection's protocol level (MQTT_V311 or MQTT_V5), or 0
 *   before CONNECT (then only a CONNECT decodes with its own version; any
 *   other type is decoded as v3.1.1 so the caller can refuse it). A CONNECT
 *   always decodes with the level it carries; anything but MQTT_V5 means
 *   v3.1.1 for the other types.
 * max_size: largest whole packet accepted (fixed header included); 0 = the
 *   protocol maximum. Checked from the fixed header alone, before the body
 *   has arrived, so a huge packet is refused early.
 * Returns: > 0 the number of bytes consumed (the whole packet) and *out is
 *   filled; 0 when more bytes are needed; < 0 is -(enum mqtt_err), with
 *   *out->type set when the fixed header was readable.
 * Views in *out point into buf.
 * On -MQTT_ERR_PROTOCOL_VERSION, out->u.connect.version holds the level the
 * client asked for (3 for "MQIsdp"), so the caller can answer in the
 * CONNACK format that client understands. Checks that need the direction
 * or session state (a client PUBLISH must not carry a subscription
 * identifier, topic alias maximum, payload format 1 => UTF-8 payload, ...)
 * are the caller's. The decoder reads nothing outside buf[0..len).
 */
ssize_t mqtt_decode(const uint8_t *buf, size_t len, uint8_t version,
		    uint32_t max_size, struct mqtt_packet *out);

/*
 * Read only the fixed header: packet type, flags and remaining length.
 * Returns the header length (2..5) when complete, 0 when more bytes are
 * needed, -MQTT_ERR_REMAINING_LENGTH when the length is malformed.
 */
int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *type,
		      uint8_t *flags, uint32_t *remaining);

/* Next entry of a SUBSCRIBE/UNSUBSCRIBE list. Returns 1 and sets *filter
 * (and *options for SUBSCRIBE), or 0 at the end. */
void mqtt_topics_begin(struct mqtt_topics_iter *it,
		       const struct mqtt_subscribe *s, bool with_options);
int mqtt_topics_next(struct mqtt_topics_iter *it, struct mqtt_str *filter,
		     uint8_t *options);

/*
 * Encoded size of a packet (fixed header included) for a protocol version.
 * For v3.1.1 the properties are ignored. 0 when the packet cannot be encoded
 * (unknown type, AUTH on v3.1.1, more than MQTT_MAX_REMAINING bytes).
 */
size_t mqtt_encoded_size(const struct mqtt_packet *p, uint8_t version);

/*
 * Encode a packet into out[0..cap). Returns bytes written, or 0 when cap is
 * too small or the packet cannot be encoded (see mqtt_encoded_size();
 * nothing useful is written then). p->type selects the body;
 * p->flags is ignored except for PUBLISH, whose flags come from
 * u.publish (qos, dup, retain). For SUBSCRIBE/UNSUBSCRIBE u.subscribe.list
 * must already be an encoded topic list (mqtt_topics_put()), copied as is;
 * for SUBACK/UNSUBACK u.suback.codes holds count codes.
 * A CONNECT is encoded at `version`, or at u.connect.version when version
 * is 0. For v3.1.1 the encoder drops what that version lacks: properties,
 * ack and DISCONNECT reason codes; CONNACK reasons go through
 * mqtt_connack_v3_code() and SUBACK failure codes become 0x80. The v5
 * acknowledgements use their short forms (no reason code when it is 0 and
 * there are no properties; no property length when there are none), and a
 * v5 DISCONNECT or AUTH with reason 0 and no properties has no body.
 * Any thread.
 */
size_t mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out,
		   size_t cap);

/*
 * Encode just the v5 property block (its variable-length size first) of
 * props into out. Returns bytes written or 0 if cap is too small.
 * mqtt_props_size() gives the size including the length prefix (so at
 * least 1), or 0 when the block is larger than MQTT_MAX_REMAINING.
 */
size_t mqtt_props_size(const struct mqtt_props *props);
size_t mqtt_props_encode(const struct mqtt_props *props, uint8_t *out,
			 size_t cap);

/* Variable byte integer: bytes needed, and writer (returns bytes written).
 * v must be <= MQTT_MAX_REMAINING; out must have room for 4 bytes. */
int mqtt_varint_size(uint32_t v);
int mqtt_varint_put(uint8_t *out, uint32_t v);

/*
 * Next user property of props (v5). *off starts at 0 and is advanced.
 * Returns 1 and sets *key and *value, or 0 at the end. Works for decoded
 * properties (also when user_interleaved) and for runs built by hand.
 */
int mqtt_user_props_next(const struct mqtt_props *props, uint32_t *off,
			 struct mqtt_str *key, struct mqtt_str *value);

/*
 * Append one user property (0x26, key, value) to a run being built in
 * out[0..cap). Returns bytes written, or 0 when cap is too small or a
 * string is longer than 65535 bytes.
 */
size_t mqtt_user_prop_put(uint8_t *out, size_t cap, const void *key,
			  size_t key_len, const void *value, size_t value_len);

/*
 * Append one entry to a SUBSCRIBE (with_options) or UNSUBSCRIBE topic list
 * being built in out[0..cap). Returns bytes written, or 0 when cap is too
 * small or the filter is longer than 65535 bytes. The filter is not
 * validated here; the peer's decoder will.
 */
size_t mqtt_topics_put(uint8_t *out, size_t cap, const void *filter,
		       size_t len, bool with_options, uint8_t options);

/* The v5 reason code a server sends for a decode error. */
uint8_t mqtt_err_reason(enum mqtt_err err);
/* A short English text for a decode error (for logs and reason strings). */
const char *mqtt_err_str(enum mqtt_err err);
/* The v3.1.1 CONNACK return code for a v5 CONNACK reason code. */
uint8_t mqtt_connack_v3_code(uint8_t v5_reason);

/* UTF-8 string rules of [MQTT-1.5.4-1..3]: 1 if valid, else 0. Well-formed
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF) and no U+0000. Also the check behind payload format 1. */
int mqtt_utf8_valid(const uint8_t *p, size_t len);
/* Topic name (no wildcards, not empty) and topic filter validity: the
 * structure only (wildcard placement, $share/{group}/{filter}); the UTF-8
 * rules are mqtt_utf8_valid()'s. 1 if valid, else 0. */
int mqtt_topic_name_valid(const uint8_t *p, size_t len);
int mqtt_topic_filter_valid(const uint8_t *p, size_t len);

#endif
