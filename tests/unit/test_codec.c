/*
 * Unit tests of the MQTT 3.1.1 / 5.0 codec (mqtt/codec.h).
 *
 * - Hand-written byte vectors (spec examples and friends) decode to the
 *   right fields.
 * - Packets of every type and version, with many variants, are built as
 *   structs, encoded, decoded and compared field by field.
 * - Every vector is decoded whole and at every truncated length, copied so
 *   that it ends exactly at a PROT_NONE page: an over-read faults.
 * - Every malformed case gives its -MQTT_ERR_* and reason code; every v5
 *   property is tried in every packet type (allowed or refused, repeated,
 *   out of range).
 * - UTF-8 is checked against a reference decoder on every 1..3-byte input.
 * - Mutations of the vectors go through the fuzz harness's round trip.
 *
 * Prints one line per failure and a summary; exit status 1 on failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mqtt/codec.h"
#include "tests/fuzz/codec_check.h"

static int n_checks, n_failed;

#define CHECK(cond, ...) do { \
	n_checks++; \
	if (!(cond)) { \
		n_failed++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

/* ------------------------------------------------------------------ */
/* Guard page: inputs end right before a PROT_NONE page                  */
/* ------------------------------------------------------------------ */

#define GUARD_AREA (512u * 1024u)

static uint8_t *g_area;         /* GUARD_AREA usable bytes, then a hole */

static void guard_init(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *m = mmap(NULL, GUARD_AREA + pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED || mprotect(m + GUARD_AREA, pg, PROT_NONE)) {
		perror("guard mmap");
		exit(2);
	}
	g_area = m;
}

/* Copy b[0..n) so that it ends at the guard page; returns the copy. */
static const uint8_t *guard_place(const uint8_t *b, size_t n)
{
	if (n > GUARD_AREA) {
		fprintf(stderr, "vector too large for the guard area\n");
		exit(2);
	}
	uint8_t *d = g_area + GUARD_AREA - n;

	memmove(d, b, n);
	return d;
}

static ssize_t gdecode(const uint8_t *b, size_t n, uint8_t ver, uint32_t max,
		       struct mqtt_packet *out)
{
	return mqtt_decode(guard_place(b, n), n, ver, max, out);
}

/* Prefix lengths worth trying for an n-byte vector (all for small ones). */
static bool try_prefix(size_t k, size_t n)
{
	return n <= 4096 || k < 300 || k + 300 > n || k % 997 == 0;
}

/*
 * Decode a whole vector and all its proper prefixes against the guard;
 * prefixes must say "need more" (0) or, for a malformed vector, give the
 * same error early. Returns the result of the whole decode, *out filled.
 */
static ssize_t decode_all(const char *name, const uint8_t *b, size_t n,
			  uint8_t ver, uint32_t max, struct mqtt_packet *out)
{
	struct mqtt_packet tmp;
	ssize_t whole = gdecode(b, n, ver, max, &tmp);

	for (size_t k = 0; k < n; k++) {
		if (!try_prefix(k, n))
			continue;
		struct mqtt_packet q;
		ssize_t r = gdecode(b, k, ver, max, &q);

		if (whole > 0)
			CHECK(r == 0, "%s: prefix %zu/%zu gave %zd", name, k, n, r);
		else
			CHECK(r == 0 || r == whole,
			      "%s: prefix %zu/%zu gave %zd, whole %zd",
			      name, k, n, r, whole);
		if (r != 0 && (whole > 0 || r != whole))
			break;  /* one line per vector is enough */
	}
	/* Decode last so that *out's views point into live guard memory. */
	return gdecode(b, n, ver, max, out);
}

/* ------------------------------------------------------------------ */
/* Byte builder                                                         */
/* ------------------------------------------------------------------ */

struct bb {
	size_t n, cap;
	uint8_t *b;
};

static struct bb *bb_new(void)
{
	struct bb *x = malloc(sizeof *x);

	if (!x)
		exit(2);
	x->n = 0;
	x->cap = 256;
	x->b = malloc(x->cap);
	if (!x->b)
		exit(2);
	return x;
}

static void bb_free(struct bb *x)
{
	free(x->b);
	free(x);
}

static void bb_room(struct bb *x, size_t more)
{
	if (x->n + more <= x->cap)
		return;
	while (x->n + more > x->cap)
		x->cap *= 2;
	x->b = realloc(x->b, x->cap);
	if (!x->b)
		exit(2);
}

static void u8(struct bb *x, unsigned v)
{
	bb_room(x, 1);
	x->b[x->n++] = (uint8_t)v;
}
static void u16(struct bb *x, unsigned v) { u8(x, v >> 8); u8(x, v); }
static void u32(struct bb *x, uint32_t v) { u16(x, v >> 16); u16(x, v & 0xFFFF); }
static void raw(struct bb *x, const void *p, size_t n)
{
	if (!n)
		return;
	bb_room(x, n);
	memcpy(x->b + x->n, p, n);
	x->n += n;
}
static void strn(struct bb *x, const void *p, size_t n) { u16(x, (unsigned)n); raw(x, p, n); }
static void str(struct bb *x, const char *s) { strn(x, s, strlen(s)); }
static void vint(struct bb *x, uint32_t v)
{
	bb_room(x, 4);
	x->n += (size_t)mqtt_varint_put(x->b + x->n, v);
}
static void hex(struct bb *x, const char *h)
{
	while (*h) {
		if (*h == ' ') {
			h++;
			continue;
		}
		unsigned v;

		sscanf(h, "%2x", &v);
		u8(x, v);
		h += 2;
	}
}
/* A property block: varint length then the bytes of p. */
static void props(struct bb *x, const struct bb *p) { vint(x, (uint32_t)p->n); raw(x, p->b, p->n); }

/* Frame a body into a packet with the given first byte. */
static struct bb *frame(unsigned first, const struct bb *body)
{
	struct bb *x = bb_new();

	u8(x, first);
	vint(x, (uint32_t)body->n);
	raw(x, body->b, body->n);
	return x;
}

static struct bb *from_hex(const char *h)
{
	struct bb *x = bb_new();

	hex(x, h);
	return x;
}

/* An empty property block. */
static struct bb no_props;

static struct mqtt_str S(const char *s)
{
	return (struct mqtt_str){ (const uint8_t *)s, (uint16_t)strlen(s) };
}

static bool str_is(const struct mqtt_str *s, const char *c)
{
	return s->len == strlen(c) && memcmp(s->p, c, s->len) == 0;
}

/* ------------------------------------------------------------------ */
/* Hand-written vectors                                                 */
/* ------------------------------------------------------------------ */

static ssize_t dec_hex(const char *name, const char *h, uint8_t ver,
		       struct mqtt_packet *p)
{
	struct bb *x = from_hex(h);
	ssize_t r = decode_all(name, x->b, x->n, ver, 0, p);

	CHECK(r == (ssize_t)x->n, "%s: decode gave %zd, want %zu (%s)", name,
	      r, x->n, r < 0 ? mqtt_err_str((enum mqtt_err)-r) : "");
	bb_free(x);
	return r;
}

static void test_spec_vectors(void)
{
	struct mqtt_packet p;

	/* 3.1.1 CONNECT: clean session, keep alive 60, client "test". */
	if (dec_hex("v3 connect", "10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 74 65 73 74",
		    0, &p) > 0) {
		CHECK(p.type == MQTT_CONNECT && p.u.connect.version == 4 &&
		      p.u.connect.clean && !p.u.connect.will &&
		      p.u.connect.keepalive == 60 &&
		      str_is(&p.u.connect.client_id, "test") &&
		      !p.u.connect.has_username && !p.u.connect.has_password &&
		      p.u.connect.props.present == 0, "v3 connect fields");
	}
	/* 3.1.1 CONNECT with will (QoS 1, retain), user name and password. */
	if (dec_hex("v3 connect full",
		    "10 22 00 04 4d 51 54 54 04 ee 00 0a 00 02 63 31"
		    " 00 03 77 2f 74 00 03 62 79 65 00 04 75 73 65 72 00 02 70 77",
		    0, &p) > 0) {
		struct mqtt_connect *c = &p.u.connect;

		CHECK(c->clean && c->will && c->will_qos == 1 && c->will_retain &&
		      c->has_username && c->has_password && c->keepalive == 10 &&
		      str_is(&c->client_id, "c1") && str_is(&c->will_topic, "w/t") &&
		      str_is(&c->will_payload, "bye") && str_is(&c->username, "user") &&
		      str_is(&c->password, "pw"), "v3 connect full fields");
	}
	/* 5.0 CONNECT: Session Expiry 10, Receive Maximum 20. */
	if (dec_hex("v5 connect",
		    "10 17 00 04 4d 51 54 54 05 02 00 3c 08 11 00 00 00 0a 21 00 14"
		    " 00 02 63 31", 0, &p) > 0) {
		struct mqtt_connect *c = &p.u.connect;

		CHECK(c->version == 5 && c->clean && c->keepalive == 60 &&
		      MQTT_HAS(&c->props, MQTT_PROP_SESSION_EXPIRY) &&
		      c->props.session_expiry == 10 &&
		      MQTT_HAS(&c->props, MQTT_PROP_RECEIVE_MAXIMUM) &&
		      c->props.receive_maximum == 20 &&
		      !MQTT_HAS(&c->props, MQTT_PROP_MAXIMUM_PACKET_SIZE) &&
		      str_is(&c->client_id, "c1"), "v5 connect fields");
	}
	/* 5.0 CONNECT decoded on a v3.1.1 connection still uses level 5. */
	if (dec_hex("v5 connect on v4", "10 0d 00 04 4d 51 54 54 05 00 00 00 00 00 00",
		    MQTT_V311, &p) > 0)
		CHECK(p.u.connect.version == 5 && !p.u.connect.clean &&
		      p.u.connect.client_id.len == 0, "v5 connect, empty id");
	/* 5.0 CONNECT without user name but with a password is fine in v5. */
	dec_hex("v5 password only", "10 11 00 04 4d 51 54 54 05 40 00 00 00 00 00 00 02 70 77",
		0, &p);

	/* CONNACK */
	if (dec_hex("v3 connack", "20 02 01 00", MQTT_V311, &p) > 0)
		CHECK(p.u.connack.session_present && p.u.connack.reason == 0, "connack");
	if (dec_hex("v3 connack refused", "20 02 00 05", MQTT_V311, &p) > 0)
		CHECK(p.u.connack.reason == MQTT_RC_NOT_AUTHORIZED, "v3 rc 5 -> 0x87");
	if (dec_hex("v3 connack version", "20 02 00 01", MQTT_V311, &p) > 0)
		CHECK(p.u.connack.reason == MQTT_RC_UNSUPPORTED_VERSION, "v3 rc 1 -> 0x84");
	if (dec_hex("v5 connack", "20 03 00 00 00", MQTT_V5, &p) > 0)
		CHECK(p.u.connack.reason == 0 && p.u.connack.props.present == 0,
		      "v5 connack");
	if (dec_hex("v5 connack props", "20 08 00 00 05 21 00 0a 24 01", MQTT_V5, &p) > 0)
		CHECK(p.u.connack.props.receive_maximum == 10 &&
		      p.u.connack.props.max_qos == 1, "v5 connack props");
	if (dec_hex("v5 connack refused", "20 03 00 87 00", MQTT_V5, &p) > 0)
		CHECK(p.u.connack.reason == 0x87, "v5 connack reason");

	/* PUBLISH */
	if (dec_hex("v3 publish qos0", "30 0a 00 03 61 2f 62 68 65 6c 6c 6f", MQTT_V311, &p) > 0)
		CHECK(p.u.publish.qos == 0 && !p.u.publish.dup && !p.u.publish.retain &&
		      str_is(&p.u.publish.topic, "a/b") && p.u.publish.payload_len == 5 &&
		      memcmp(p.u.publish.payload, "hello", 5) == 0, "publish qos0");
	if (dec_hex("v3 publish qos1 dup retain", "3b 07 00 01 78 00 0a 68 69", MQTT_V311, &p) > 0)
		CHECK(p.u.publish.qos == 1 && p.u.publish.dup && p.u.publish.retain &&
		      p.u.publish.packet_id == 10 && p.u.publish.payload_len == 2,
		      "publish qos1 flags");
	if (dec_hex("v3 publish qos2 empty payload", "34 05 00 01 78 ff ff", MQTT_V311, &p) > 0)
		CHECK(p.u.publish.qos == 2 && p.u.publish.packet_id == 0xFFFF &&
		      p.u.publish.payload_len == 0, "publish qos2");
	if (dec_hex("v5 publish alias", "30 07 00 00 03 23 00 01 7a", MQTT_V5, &p) > 0)
		CHECK(p.u.publish.topic.len == 0 && p.u.publish.props.topic_alias == 1 &&
		      p.u.publish.payload_len == 1, "v5 publish alias");
	if (dec_hex("v5 publish no props", "30 06 00 01 74 00 6f 6b", MQTT_V5, &p) > 0)
		CHECK(p.u.publish.props.present == 0 && p.u.publish.payload_len == 2,
		      "v5 publish no props");
	/* Server to client: several subscription identifiers. */
	if (dec_hex("v5 publish sub ids", "30 0b 00 01 74 07 0b 01 0b 80 01 0b 7f", MQTT_V5, &p) > 0)
		CHECK(p.u.publish.props.n_sub_ids == 3 && p.u.publish.props.sub_ids[0] == 1 &&
		      p.u.publish.props.sub_ids[1] == 128 && p.u.publish.props.sub_ids[2] == 127,
		      "sub ids");
	/* Interleaved user properties. */
	if (dec_hex("v5 publish user interleaved",
		    "30 18 00 01 74 14 26 00 01 61 00 01 62 02 00 00 00 05 26 00 01 63 00 02 64 64",
		    MQTT_V5, &p) > 0) {
		struct mqtt_props *pr = &p.u.publish.props;
		struct mqtt_str k, v;
		uint32_t off = 0;

		CHECK(pr->n_user == 2 && pr->user_interleaved && pr->message_expiry == 5,
		      "interleaved flags");
		CHECK(mqtt_user_props_next(pr, &off, &k, &v) && str_is(&k, "a") &&
		      str_is(&v, "b"), "user 1");
		CHECK(mqtt_user_props_next(pr, &off, &k, &v) && str_is(&k, "c") &&
		      str_is(&v, "dd"), "user 2");
		CHECK(!mqtt_user_props_next(pr, &off, &k, &v), "user end");
		/* Re-encode gives one contiguous run. */
		uint8_t buf[64];
		size_t n = mqtt_encode(&p, MQTT_V5, buf, sizeof buf);
		struct mqtt_packet q;

		CHECK(n == 26, "interleaved re-encode size %zu", n);
		CHECK(mqtt_decode(buf, n, MQTT_V5, 0, &q) == (ssize_t)n &&
		      !q.u.publish.props.user_interleaved &&
		      q.u.publish.props.user_len == 15 && q.u.publish.props.n_user == 2 &&
		      !cc_packet(&p, &q, MQTT_V5), "interleaved round trip");
	}

	/* Acknowledgements */
	if (dec_hex("v3 puback", "40 02 00 01", MQTT_V311, &p) > 0)
		CHECK(p.u.ack.packet_id == 1 && p.u.ack.reason == 0, "puback");
	if (dec_hex("v5 puback short", "40 02 00 01", MQTT_V5, &p) > 0)
		CHECK(p.u.ack.reason == 0 && p.u.ack.props.present == 0, "v5 puback short");
	if (dec_hex("v5 puback reason", "40 03 00 01 10", MQTT_V5, &p) > 0)
		CHECK(p.u.ack.reason == 0x10, "v5 puback reason");
	if (dec_hex("v5 puback long", "40 04 00 01 00 00", MQTT_V5, &p) > 0)
		CHECK(p.u.ack.reason == 0, "v5 puback long");
	if (dec_hex("v5 pubrec reason string", "50 09 00 02 80 05 1f 00 02 6e 6f", MQTT_V5, &p) > 0)
		CHECK(p.u.ack.reason == 0x80 && str_is(&p.u.ack.props.reason_string, "no"),
		      "pubrec reason string");
	dec_hex("v3 pubrel", "62 02 00 01", MQTT_V311, &p);
	if (dec_hex("v5 pubrel not found", "62 03 00 01 92", MQTT_V5, &p) > 0)
		CHECK(p.u.ack.reason == 0x92, "pubrel 0x92");
	dec_hex("v3 pubcomp", "70 02 ff ff", MQTT_V311, &p);

	/* SUBSCRIBE: the 3.1.1 spec example (a/b QoS 1, c/d QoS 2). */
	if (dec_hex("v3 subscribe", "82 0e 00 0a 00 03 61 2f 62 01 00 03 63 2f 64 02",
		    MQTT_V311, &p) > 0) {
		struct mqtt_topics_iter it;
		struct mqtt_str f;
		uint8_t o = 0xFF;

		CHECK(p.u.subscribe.packet_id == 10 && p.u.subscribe.count == 2, "sub count");
		mqtt_topics_begin(&it, &p.u.subscribe, true);
		CHECK(mqtt_topics_next(&it, &f, &o) && str_is(&f, "a/b") && o == 1, "sub 1");
		CHECK(mqtt_topics_next(&it, &f, &o) && str_is(&f, "c/d") && o == 2, "sub 2");
		CHECK(!mqtt_topics_next(&it, &f, &o), "sub end");
	}
	if (dec_hex("v5 subscribe", "82 16 00 01 02 0b 05 00 0e 24 73 68 61 72 65 2f 67 2f 73 2f 2b 2f 23 2a",
		    MQTT_V5, &p) > 0) {
		struct mqtt_topics_iter it;
		struct mqtt_str f;
		uint8_t o;

		CHECK(p.u.subscribe.props.n_sub_ids == 1 && p.u.subscribe.props.sub_ids[0] == 5,
		      "v5 sub id");
		mqtt_topics_begin(&it, &p.u.subscribe, true);
		CHECK(mqtt_topics_next(&it, &f, &o) && str_is(&f, "$share/g/s/+/#") &&
		      o == 0x2a && MQTT_SUBOPT_QOS(o) == 2 && (o & MQTT_SUBOPT_RETAIN_AS_PUB) &&
		      MQTT_SUBOPT_RETAIN_HANDLING(o) == 2 && !(o & MQTT_SUBOPT_NO_LOCAL),
		      "v5 shared entry");
	}
	if (dec_hex("v3 suback", "90 05 00 0a 00 01 80", MQTT_V311, &p) > 0)
		CHECK(p.u.suback.count == 3 && p.u.suback.codes[2] == 0x80, "suback");
	if (dec_hex("v5 suback", "90 06 00 0a 00 02 8f a2", MQTT_V5, &p) > 0)
		CHECK(p.u.suback.count == 3 && p.u.suback.codes[1] == 0x8f, "v5 suback");
	if (dec_hex("v3 unsubscribe", "a2 0a 00 0b 00 03 61 2f 62 00 01 23", MQTT_V311, &p) > 0) {
		struct mqtt_topics_iter it;
		struct mqtt_str f;

		CHECK(p.u.subscribe.count == 2, "unsub count");
		mqtt_topics_begin(&it, &p.u.subscribe, false);
		CHECK(mqtt_topics_next(&it, &f, NULL) && str_is(&f, "a/b"), "unsub 1");
		CHECK(mqtt_topics_next(&it, &f, NULL) && str_is(&f, "#"), "unsub 2");
		CHECK(!mqtt_topics_next(&it, &f, NULL), "unsub end");
	}
	if (dec_hex("v3 unsuback", "b0 02 00 0b", MQTT_V311, &p) > 0)
		CHECK(p.u.suback.packet_id == 11 && p.u.suback.count == 0, "v3 unsuback");
	if (dec_hex("v5 unsuback", "b0 05 00 0b 00 00 11", MQTT_V5, &p) > 0)
		CHECK(p.u.suback.count == 2 && p.u.suback.codes[1] == 0x11, "v5 unsuback");

	dec_hex("pingreq", "c0 00", MQTT_V311, &p);
	CHECK(p.type == MQTT_PINGREQ, "pingreq type");
	dec_hex("pingresp", "d0 00", MQTT_V5, &p);
	dec_hex("v3 disconnect", "e0 00", MQTT_V311, &p);
	if (dec_hex("v5 disconnect empty", "e0 00", MQTT_V5, &p) > 0)
		CHECK(p.u.disconnect.reason == 0, "v5 disconnect empty");
	if (dec_hex("v5 disconnect will", "e0 01 04", MQTT_V5, &p) > 0)
		CHECK(p.u.disconnect.reason == 4, "v5 disconnect with will");
	if (dec_hex("v5 disconnect props", "e0 07 00 05 11 00 00 00 00", MQTT_V5, &p) > 0)
		CHECK(MQTT_HAS(&p.u.disconnect.props, MQTT_PROP_SESSION_EXPIRY), "disc props");
	dec_hex("v5 auth empty", "f0 00", MQTT_V5, &p);
	if (dec_hex("v5 auth", "f0 0a 18 08 15 00 05 53 43 52 41 4d", MQTT_V5, &p) > 0)
		CHECK(p.u.disconnect.reason == 0x18 &&
		      str_is(&p.u.disconnect.props.auth_method, "SCRAM"), "auth");

	/* Two packets back to back: the first is consumed alone. */
	{
		struct bb *x = from_hex("c0 00 30 03 00 01 61");

		CHECK(gdecode(x->b, x->n, MQTT_V311, 0, &p) == 2 && p.type == MQTT_PINGREQ,
		      "back to back 1");
		CHECK(gdecode(x->b + 2, x->n - 2, MQTT_V311, 0, &p) == 5 &&
		      p.type == MQTT_PUBLISH, "back to back 2");
		bb_free(x);
	}
}

/* ------------------------------------------------------------------ */
/* Malformed input                                                      */
/* ------------------------------------------------------------------ */

static void expect_err_x(const char *name, const struct bb *x, uint8_t ver,
			 uint32_t max, enum mqtt_err want)
{
	struct mqtt_packet p;
	ssize_t r = decode_all(name, x->b, x->n, ver, max, &p);

	CHECK(r == -(ssize_t)want, "%s: got %zd (%s), want -%d (%s)", name, r,
	      r < 0 ? mqtt_err_str((enum mqtt_err)-r) : "ok", want,
	      mqtt_err_str(want));
}

static void expect_err_hex(const char *name, const char *h, uint8_t ver,
			   enum mqtt_err want)
{
	struct bb *x = from_hex(h);

	expect_err_x(name, x, ver, 0, want);
	bb_free(x);
}

static void expect_err_body(const char *name, unsigned first,
			    const struct bb *body, uint8_t ver,
			    enum mqtt_err want)
{
	struct bb *x = frame(first, body);

	expect_err_x(name, x, ver, 0, want);
	bb_free(x);
}

static void expect_ok_body(const char *name, unsigned first,
			   const struct bb *body, uint8_t ver)
{
	struct bb *x = frame(first, body);
	struct mqtt_packet p;
	ssize_t r = decode_all(name, x->b, x->n, ver, 0, &p);

	CHECK(r == (ssize_t)x->n, "%s: got %zd (%s), want ok", name, r,
	      r < 0 ? mqtt_err_str((enum mqtt_err)-r) : "");
	bb_free(x);
}

/* A CONNECT body: name, level, flags, keep alive, [props], client id and
 * whatever `tail` holds (will, user, password). */
static struct bb *connect_body(const char *name, unsigned level,
			       unsigned flags, const struct bb *pr,
			       const char *client, const struct bb *tail)
{
	struct bb *x = bb_new();

	str(x, name);
	u8(x, level);
	u8(x, flags);
	u16(x, 30);
	if (pr)
		props(x, pr);
	str(x, client);
	if (tail)
		raw(x, tail->b, tail->n);
	return x;
}

static void test_malformed(void)
{
	struct bb *b, *t, *pr;
	struct mqtt_packet p;

	/* Fixed header */
	expect_err_hex("type 0", "00 00", MQTT_V311, MQTT_ERR_BAD_TYPE);
	expect_err_hex("auth on v4", "f0 00", MQTT_V311, MQTT_ERR_BAD_TYPE);
	expect_err_hex("auth before connect", "f0 00", 0, MQTT_ERR_BAD_TYPE);
	expect_err_hex("pingreq flags", "c1 00", MQTT_V311, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("connect flags", "18 00", 0, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("puback flags", "48 02 00 01", MQTT_V5, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("pubrel flags 0", "60 02 00 01", MQTT_V311, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("pubrel flags 3", "63 02 00 01", MQTT_V5, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("subscribe flags 0", "80 06 00 01 00 01 61 00", MQTT_V311,
		       MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("unsubscribe flags 0", "a0 05 00 01 00 01 61", MQTT_V311,
		       MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("disconnect flags", "e2 00", MQTT_V5, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("auth flags", "f1 00", MQTT_V5, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("publish qos 3", "36 05 00 01 61 00 01", MQTT_V311, MQTT_ERR_QOS);
	expect_err_hex("publish dup qos 0 v4", "38 03 00 01 61", MQTT_V311, MQTT_ERR_PROTOCOL);
	expect_err_hex("publish dup qos 0 v5", "38 04 00 01 61 00", MQTT_V5, MQTT_ERR_PROTOCOL);
	expect_err_hex("length 5 bytes", "30 80 80 80 80 01", MQTT_V311,
		       MQTT_ERR_REMAINING_LENGTH);
	expect_err_hex("length 4 continued", "30 ff ff ff ff", MQTT_V311,
		       MQTT_ERR_REMAINING_LENGTH);
	expect_err_hex("length non-minimal 2", "c0 80 00", MQTT_V311,
		       MQTT_ERR_REMAINING_LENGTH);
	expect_err_hex("length non-minimal 3", "30 85 80 00", MQTT_V311,
		       MQTT_ERR_REMAINING_LENGTH);
	expect_err_hex("length non-minimal 4", "30 80 80 80 00", MQTT_V311,
		       MQTT_ERR_REMAINING_LENGTH);
	expect_err_hex("pingreq body", "c0 01 00", MQTT_V311, MQTT_ERR_TRAILING);
	expect_err_hex("pingresp body", "d0 01 00", MQTT_V5, MQTT_ERR_TRAILING);
	expect_err_hex("v3 disconnect body", "e0 01 00", MQTT_V311, MQTT_ERR_TRAILING);
	expect_err_hex("v3 puback long", "40 03 00 01 00", MQTT_V311, MQTT_ERR_TRAILING);
	expect_err_hex("v3 puback short", "40 01 00", MQTT_V311, MQTT_ERR_SHORT);
	expect_err_hex("v3 connack long", "20 03 00 00 00", MQTT_V311, MQTT_ERR_TRAILING);
	expect_err_hex("v3 unsuback long", "b0 03 00 01 00", MQTT_V311, MQTT_ERR_TRAILING);
	/* Refused from the header alone, before the body arrives. */
	CHECK(gdecode((const uint8_t *)"\xc0\x05", 2, MQTT_V311, 0, &p) ==
	      -MQTT_ERR_TRAILING, "pingreq length refused early");
	CHECK(gdecode((const uint8_t *)"\x40\x7f", 2, MQTT_V311, 0, &p) ==
	      -MQTT_ERR_TRAILING, "v3 puback length refused early");
	CHECK(gdecode((const uint8_t *)"\x30\xff\xff\xff\x7f", 5, MQTT_V311, 0, &p) == 0,
	      "max length waits for body");
	CHECK(p.type == MQTT_PUBLISH && p.remaining == MQTT_MAX_REMAINING,
	      "header fields filled while waiting");
	CHECK(gdecode((const uint8_t *)"\x30\xff\xff\xff\x7f", 5, MQTT_V311, 1000, &p) ==
	      -MQTT_ERR_TOO_LARGE, "too large refused from header");
	CHECK(p.type == MQTT_PUBLISH, "type set on error");
	CHECK(gdecode((const uint8_t *)"\x30\xff", 2, MQTT_V311, 100, &p) == 0,
	      "size unknown yet");
	/* Size limit at the boundary. */
	{
		struct bb *x = from_hex("30 0a 00 03 61 2f 62 68 65 6c 6c 6f");

		CHECK(gdecode(x->b, x->n, MQTT_V311, 12, &p) == 12, "max = size ok");
		CHECK(gdecode(x->b, x->n, MQTT_V311, 11, &p) == -MQTT_ERR_TOO_LARGE,
		      "max = size - 1 refused");
		CHECK(gdecode(x->b, 2, MQTT_V311, 11, &p) == -MQTT_ERR_TOO_LARGE,
		      "refused with the header only");
		bb_free(x);
	}

	/* CONNECT */
	b = connect_body("MQTX", 4, 2, NULL, "c", NULL);
	expect_err_body("protocol name", 0x10, b, 0, MQTT_ERR_PROTOCOL_NAME);
	bb_free(b);
	b = connect_body("mqtt", 4, 2, NULL, "c", NULL);
	expect_err_body("protocol name case", 0x10, b, 0, MQTT_ERR_PROTOCOL_NAME);
	bb_free(b);
	b = connect_body("MQIsdp", 3, 2, NULL, "c", NULL);
	expect_err_body("MQIsdp 3", 0x10, b, 0, MQTT_ERR_PROTOCOL_VERSION);
	{
		struct bb *x = frame(0x10, b);

		CHECK(gdecode(x->b, x->n, 0, 0, &p) == -MQTT_ERR_PROTOCOL_VERSION &&
		      p.type == MQTT_CONNECT && p.u.connect.version == 3,
		      "MQIsdp reports level 3");
		bb_free(x);
	}
	bb_free(b);
	b = connect_body("MQTT", 3, 2, NULL, "c", NULL);
	expect_err_body("MQTT level 3", 0x10, b, 0, MQTT_ERR_PROTOCOL_VERSION);
	bb_free(b);
	b = connect_body("MQTT", 6, 2, NULL, "c", NULL);
	{
		struct bb *x = frame(0x10, b);

		CHECK(gdecode(x->b, x->n, 0, 0, &p) == -MQTT_ERR_PROTOCOL_VERSION &&
		      p.u.connect.version == 6, "MQTT level 6 reported");
		bb_free(x);
	}
	bb_free(b);
	CHECK(mqtt_err_reason(MQTT_ERR_PROTOCOL_VERSION) == 0x84 &&
	      mqtt_connack_v3_code(mqtt_err_reason(MQTT_ERR_PROTOCOL_VERSION)) == 0x01,
	      "unsupported version answers 0x84 / 0x01");
	b = connect_body("MQTT", 4, 0x03, NULL, "c", NULL);
	expect_err_body("connect reserved bit", 0x10, b, 0, MQTT_ERR_CONNECT_FLAGS);
	bb_free(b);
	b = connect_body("MQTT", 5, 0x03, &no_props, "c", NULL);
	expect_err_body("v5 connect reserved bit", 0x10, b, 0, MQTT_ERR_CONNECT_FLAGS);
	bb_free(b);
	b = connect_body("MQTT", 4, 0x0a, NULL, "c", NULL);
	expect_err_body("will qos without will", 0x10, b, 0, MQTT_ERR_CONNECT_FLAGS);
	bb_free(b);
	b = connect_body("MQTT", 4, 0x22, NULL, "c", NULL);
	expect_err_body("will retain without will", 0x10, b, 0, MQTT_ERR_CONNECT_FLAGS);
	bb_free(b);
	t = bb_new();
	str(t, "w");
	str(t, "m");
	b = connect_body("MQTT", 4, 0x1e, NULL, "c", t);
	expect_err_body("will qos 3", 0x10, b, 0, MQTT_ERR_QOS);
	bb_free(b);
	b = connect_body("MQTT", 4, 0x16, NULL, "c", t);
	expect_ok_body("will qos 2", 0x10, b, 0);
	bb_free(b);
	bb_free(t);
	t = from_hex("00 02 70 77");
	b = connect_body("MQTT", 4, 0x42, NULL, "c", t);
	expect_err_body("v3 password without user", 0x10, b, 0, MQTT_ERR_CONNECT_FLAGS);
	bb_free(b);
	b = connect_body("MQTT", 5, 0x42, &no_props, "c", t);
	expect_ok_body("v5 password without user", 0x10, b, 0);
	bb_free(b);
	bb_free(t);
	b = connect_body("MQTT", 4, 0x02, NULL, "c\xc0\x80", NULL);
	expect_err_body("client id overlong nul", 0x10, b, 0, MQTT_ERR_UTF8);
	bb_free(b);
	b = connect_body("MQTT", 4, 0x02, NULL, "\xed\xa0\x80", NULL);
	expect_err_body("client id surrogate", 0x10, b, 0, MQTT_ERR_UTF8);
	bb_free(b);
	b = bb_new();
	str(b, "MQTT"); u8(b, 4); u8(b, 2); u16(b, 0); strn(b, "a\0b", 3);
	expect_err_body("client id U+0000", 0x10, b, 0, MQTT_ERR_UTF8);
	bb_free(b);
	t = bb_new();
	str(t, "w/#");
	str(t, "m");
	b = connect_body("MQTT", 4, 0x06, NULL, "c", t);
	expect_err_body("will topic wildcard", 0x10, b, 0, MQTT_ERR_TOPIC_NAME);
	bb_free(b);
	bb_free(t);
	t = bb_new();
	str(t, "");
	str(t, "m");
	b = connect_body("MQTT", 4, 0x06, NULL, "c", t);
	expect_err_body("will topic empty", 0x10, b, 0, MQTT_ERR_TOPIC_NAME);
	bb_free(b);
	bb_free(t);
	b = connect_body("MQTT", 4, 0x82, NULL, "c", NULL);
	expect_err_body("user flag, no user", 0x10, b, 0, MQTT_ERR_SHORT);
	bb_free(b);
	t = from_hex("00");
	b = connect_body("MQTT", 4, 0x02, NULL, "c", t);
	expect_err_body("connect trailing", 0x10, b, 0, MQTT_ERR_TRAILING);
	bb_free(b);
	bb_free(t);
	b = from_hex("00 04 4d 51 54 54 04 02 00");
	expect_err_body("connect cut in keep alive", 0x10, b, 0, MQTT_ERR_SHORT);
	bb_free(b);
	b = from_hex("00 04 4d 51 54");
	expect_err_body("connect cut in name", 0x10, b, 0, MQTT_ERR_SHORT);
	bb_free(b);
	pr = from_hex("11 00 00 00 01 11 00 00 00 02");
	b = connect_body("MQTT", 5, 2, pr, "c", NULL);
	expect_err_body("repeated session expiry", 0x10, b, 0, MQTT_ERR_PROTOCOL);
	bb_free(b);
	bb_free(pr);
	pr = from_hex("7f 00");
	b = connect_body("MQTT", 5, 2, pr, "c", NULL);
	expect_err_body("unknown property 0x7f", 0x10, b, 0, MQTT_ERR_PROPERTY);
	bb_free(b);
	bb_free(pr);
	pr = from_hex("80 01 00");
	b = connect_body("MQTT", 5, 2, pr, "c", NULL);
	expect_err_body("two-byte property id", 0x10, b, 0, MQTT_ERR_PROPERTY);
	bb_free(b);
	bb_free(pr);
	b = connect_body("MQTT", 5, 2, NULL, "c", NULL);
	b->n -= 3;      /* drop the client id: props length runs off */
	u8(b, 0x09);
	expect_err_body("props longer than packet", 0x10, b, 0, MQTT_ERR_SHORT);
	bb_free(b);
	pr = from_hex("21 00");
	b = connect_body("MQTT", 5, 2, pr, "c", NULL);
	expect_err_body("property cut short", 0x10, b, 0, MQTT_ERR_SHORT);
	bb_free(b);
	bb_free(pr);
	b = bb_new();
	str(b, "MQTT"); u8(b, 5); u8(b, 2); u16(b, 0); hex(b, "80 00"); str(b, "c");
	expect_err_body("non-minimal props length", 0x10, b, 0, MQTT_ERR_REMAINING_LENGTH);
	bb_free(b);
	/* Will properties: payload format 2, and a CONNECT-only property. */
	t = bb_new();
	hex(t, "02 01 02");
	str(t, "w");
	str(t, "m");
	b = connect_body("MQTT", 5, 0x06, &no_props, "c", t);
	expect_err_body("will payload format 2", 0x10, b, 0, MQTT_ERR_PROPERTY_VALUE);
	bb_free(b);
	bb_free(t);
	t = bb_new();
	hex(t, "05 11 00 00 00 01");
	str(t, "w");
	str(t, "m");
	b = connect_body("MQTT", 5, 0x06, &no_props, "c", t);
	expect_err_body("session expiry in will", 0x10, b, 0, MQTT_ERR_PROPERTY);
	bb_free(b);
	bb_free(t);
	t = bb_new();
	hex(t, "05 18 00 00 00 01");
	str(t, "w");
	str(t, "m");
	b = connect_body("MQTT", 5, 0x06, &no_props, "c", t);
	expect_ok_body("will delay in will", 0x10, b, 0);
	bb_free(b);
	bb_free(t);
	pr = from_hex("18 00 00 00 01");
	b = connect_body("MQTT", 5, 2, pr, "c", NULL);
	expect_err_body("will delay in connect", 0x10, b, 0, MQTT_ERR_PROPERTY);
	bb_free(b);
	bb_free(pr);

	/* PUBLISH */
	b = bb_new(); str(b, "a/+"); raw(b, "x", 1);
	expect_err_body("topic +", 0x30, b, MQTT_V311, MQTT_ERR_TOPIC_NAME);
	bb_free(b);
	b = bb_new(); str(b, "#"); raw(b, "x", 1);
	expect_err_body("topic #", 0x30, b, MQTT_V311, MQTT_ERR_TOPIC_NAME);
	bb_free(b);
	b = bb_new(); str(b, "a/b#"); u8(b, 0);
	expect_err_body("topic # v5", 0x30, b, MQTT_V5, MQTT_ERR_TOPIC_NAME);
	bb_free(b);
	b = bb_new(); str(b, ""); raw(b, "x", 1);
	expect_err_body("topic empty v3", 0x30, b, MQTT_V311, MQTT_ERR_TOPIC_NAME);
	bb_free(b);
	b = bb_new(); str(b, ""); u8(b, 0);
	expect_err_body("topic empty v5 no alias", 0x30, b, MQTT_V5, MQTT_ERR_PROTOCOL);
	bb_free(b);
	b = bb_new(); str(b, "a\xff"); raw(b, "x", 1);
	expect_err_body("topic bad utf8", 0x30, b, MQTT_V311, MQTT_ERR_UTF8);
	bb_free(b);
	b = bb_new(); str(b, "a"); u16(b, 0);
	expect_err_body("qos1 packet id 0", 0x32, b, MQTT_V311, MQTT_ERR_PACKET_ID);
	bb_free(b);
	b = bb_new(); str(b, "a"); u16(b, 0); u8(b, 0);
	expect_err_body("qos2 packet id 0 v5", 0x34, b, MQTT_V5, MQTT_ERR_PACKET_ID);
	bb_free(b);
	b = bb_new(); str(b, "a"); u8(b, 0);
	expect_err_body("qos1 packet id cut", 0x32, b, MQTT_V311, MQTT_ERR_SHORT);
	bb_free(b);
	b = from_hex("00 05 61");
	expect_err_body("topic longer than packet", 0x30, b, MQTT_V311, MQTT_ERR_SHORT);
	bb_free(b);
	b = from_hex("00");
	expect_err_body("topic length cut", 0x30, b, MQTT_V311, MQTT_ERR_SHORT);
	bb_free(b);
	b = bb_new(); str(b, "a");
	expect_err_body("v5 publish without props length", 0x30, b, MQTT_V5, MQTT_ERR_SHORT);
	bb_free(b);
#define PUB5(name, prop_hex, want) do { \
		struct bb *pp = from_hex(prop_hex), *bd = bb_new(); \
		str(bd, "t"); props(bd, pp); raw(bd, "pl", 2); \
		expect_err_body(name, 0x30, bd, MQTT_V5, want); \
		bb_free(pp); bb_free(bd); \
	} while (0)
	PUB5("topic alias 0", "23 00 00", MQTT_ERR_PROPERTY_VALUE);
	PUB5("sub id 0", "0b 00", MQTT_ERR_PROPERTY_VALUE);
	PUB5("sub id non-minimal", "0b 81 00", MQTT_ERR_REMAINING_LENGTH);
	PUB5("sub id 5 bytes", "0b 81 81 81 81 01", MQTT_ERR_REMAINING_LENGTH);
	PUB5("payload format 2", "01 02", MQTT_ERR_PROPERTY_VALUE);
	PUB5("session expiry in publish", "11 00 00 00 01", MQTT_ERR_PROPERTY);
	PUB5("repeated topic alias", "23 00 01 23 00 02", MQTT_ERR_PROTOCOL);
	PUB5("repeated message expiry", "02 00 00 00 01 02 00 00 00 01", MQTT_ERR_PROTOCOL);
	PUB5("repeated content type", "03 00 01 61 03 00 01 62", MQTT_ERR_PROTOCOL);
	PUB5("response topic wildcard", "08 00 03 61 2f 23", MQTT_ERR_TOPIC_NAME);
	PUB5("response topic empty", "08 00 00", MQTT_ERR_TOPIC_NAME);
	PUB5("content type bad utf8", "03 00 02 c3 28", MQTT_ERR_UTF8);
	PUB5("user key nul", "26 00 01 00 00 01 61", MQTT_ERR_UTF8);
	PUB5("user value bad", "26 00 01 61 00 01 80", MQTT_ERR_UTF8);
	PUB5("user value cut", "26 00 01 61 00 05 61", MQTT_ERR_SHORT);
	{
		/* 32 subscription identifiers fit, 33 do not. */
		struct bb *pp = bb_new(), *bd;

		for (int i = 1; i <= 32; i++) {
			u8(pp, 0x0b);
			vint(pp, (uint32_t)i * 1000);
		}
		bd = bb_new(); str(bd, "t"); props(bd, pp);
		expect_ok_body("32 sub ids", 0x30, bd, MQTT_V5);
		bb_free(bd);
		u8(pp, 0x0b);
		u8(pp, 1);
		bd = bb_new(); str(bd, "t"); props(bd, pp);
		expect_err_body("33 sub ids", 0x30, bd, MQTT_V5, MQTT_ERR_PROTOCOL);
		bb_free(bd);
		bb_free(pp);
	}
#undef PUB5

	/* Acknowledgements */
	expect_err_hex("v3 puback id 0", "40 02 00 00", MQTT_V311, MQTT_ERR_PACKET_ID);
	expect_err_hex("v5 pubcomp id 0", "70 02 00 00", MQTT_V5, MQTT_ERR_PACKET_ID);
	expect_err_hex("v5 puback 0x92", "40 03 00 01 92", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 pubrec 0x04", "50 03 00 01 04", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 pubrel 0x10", "62 03 00 01 10", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 pubcomp 0x80", "70 03 00 01 80", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 puback topic alias", "40 07 00 01 00 03 23 00 01", MQTT_V5,
		       MQTT_ERR_PROPERTY);
	expect_err_hex("v5 puback reason string utf8", "40 08 00 01 80 04 1f 00 01 ff",
		       MQTT_V5, MQTT_ERR_UTF8);
	expect_err_hex("v5 puback props cut", "40 05 00 01 80 02 1f", MQTT_V5, MQTT_ERR_SHORT);
	expect_err_hex("v5 puback trailing", "40 05 00 01 80 00 00", MQTT_V5, MQTT_ERR_TRAILING);
	expect_err_hex("v5 puback 1 byte", "40 01 00", MQTT_V5, MQTT_ERR_SHORT);

	/* SUBSCRIBE */
	expect_err_hex("subscribe id 0", "82 06 00 00 00 01 61 00", MQTT_V311, MQTT_ERR_PACKET_ID);
	expect_err_hex("subscribe no topics", "82 02 00 01", MQTT_V311, MQTT_ERR_NO_TOPICS);
	expect_err_hex("v5 subscribe no topics", "82 03 00 01 00", MQTT_V5, MQTT_ERR_NO_TOPICS);
	expect_err_hex("subscribe no options", "82 05 00 01 00 01 61", MQTT_V311, MQTT_ERR_SHORT);
	expect_err_hex("subscribe filter cut", "82 05 00 01 00 03 61", MQTT_V311, MQTT_ERR_SHORT);
#define SUBF(name, ver, filter, opt, want) do { \
		struct bb *bd = bb_new(); \
		u16(bd, 1); if (ver == MQTT_V5) u8(bd, 0); \
		str(bd, filter); u8(bd, opt); \
		if (want == MQTT_ERR_NONE) expect_ok_body(name, 0x82, bd, ver); \
		else expect_err_body(name, 0x82, bd, ver, want); \
		bb_free(bd); \
	} while (0)
	SUBF("filter empty", MQTT_V311, "", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("filter a/#/b", MQTT_V311, "a/#/b", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("filter a#", MQTT_V311, "a#", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("filter a+", MQTT_V5, "a+", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("filter +a", MQTT_V5, "+a/b", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("filter ##", MQTT_V5, "##", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("filter bad utf8", MQTT_V5, "a/\xe0\x80\x80", 0, MQTT_ERR_UTF8);
	SUBF("share empty group", MQTT_V5, "$share//a", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("share no filter", MQTT_V5, "$share/g", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("share empty filter", MQTT_V5, "$share/g/", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("share group +", MQTT_V5, "$share/g+/a", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("share group #", MQTT_V311, "$share/#/a", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("share bad filter", MQTT_V5, "$share/g/a#", 0, MQTT_ERR_TOPIC_FILTER);
	SUBF("share ok", MQTT_V5, "$share/g/#", 1, MQTT_ERR_NONE);
	SUBF("share ok v3", MQTT_V311, "$share/g/+/x", 1, MQTT_ERR_NONE);
	SUBF("$shared is not shared", MQTT_V5, "$sharex", 0x04, MQTT_ERR_NONE);
	SUBF("v3 option bit 2", MQTT_V311, "a", 0x04, MQTT_ERR_SUB_OPTIONS);
	SUBF("v3 option bit 7", MQTT_V311, "a", 0x80, MQTT_ERR_SUB_OPTIONS);
	SUBF("v3 qos 3", MQTT_V311, "a", 0x03, MQTT_ERR_SUB_OPTIONS);
	SUBF("v5 qos 3", MQTT_V5, "a", 0x03, MQTT_ERR_SUB_OPTIONS);
	SUBF("v5 bit 6", MQTT_V5, "a", 0x40, MQTT_ERR_SUB_OPTIONS);
	SUBF("v5 bit 7", MQTT_V5, "a", 0x81, MQTT_ERR_SUB_OPTIONS);
	SUBF("v5 retain handling 3", MQTT_V5, "a", 0x30, MQTT_ERR_SUB_OPTIONS);
	SUBF("v5 all options", MQTT_V5, "a/+/#", 0x2e, MQTT_ERR_NONE);
	SUBF("v5 no local", MQTT_V5, "a", 0x04, MQTT_ERR_NONE);
	SUBF("v5 no local shared", MQTT_V5, "$share/g/a", 0x04, MQTT_ERR_PROTOCOL);
#undef SUBF
	expect_err_hex("v5 subscribe two sub ids", "82 0b 00 01 04 0b 01 0b 02 00 01 61 00",
		       MQTT_V5, MQTT_ERR_PROTOCOL);
	expect_err_hex("v5 subscribe sub id 0", "82 09 00 01 02 0b 00 00 01 61 00",
		       MQTT_V5, MQTT_ERR_PROPERTY_VALUE);
	expect_err_hex("v5 subscribe reason string", "82 0b 00 01 04 1f 00 01 61 00 01 61 00",
		       MQTT_V5, MQTT_ERR_PROPERTY);
	expect_err_hex("second filter bad", "82 0b 00 01 00 01 61 00 00 02 61 2b 00",
		       MQTT_V311, MQTT_ERR_TOPIC_FILTER);

	/* UNSUBSCRIBE */
	expect_err_hex("unsubscribe id 0", "a2 05 00 00 00 01 61", MQTT_V311, MQTT_ERR_PACKET_ID);
	expect_err_hex("unsubscribe no topics", "a2 02 00 01", MQTT_V311, MQTT_ERR_NO_TOPICS);
	expect_err_hex("v5 unsubscribe no topics", "a2 03 00 01 00", MQTT_V5, MQTT_ERR_NO_TOPICS);
	expect_err_hex("unsubscribe bad filter", "a2 06 00 01 00 02 23 61", MQTT_V311,
		       MQTT_ERR_TOPIC_FILTER);
	expect_err_hex("v5 unsubscribe sub id", "a2 08 00 01 02 0b 01 00 01 61", MQTT_V5,
		       MQTT_ERR_PROPERTY);
	expect_err_hex("unsubscribe filter cut", "a2 05 00 01 00 02 61", MQTT_V311,
		       MQTT_ERR_SHORT);

	/* SUBACK / UNSUBACK */
	expect_err_hex("v3 suback code 3", "90 03 00 01 03", MQTT_V311, MQTT_ERR_REASON_CODE);
	expect_err_hex("v3 suback code 0x87", "90 03 00 01 87", MQTT_V311, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 suback code 0x10", "90 04 00 01 00 10", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("suback empty", "90 02 00 01", MQTT_V311, MQTT_ERR_NO_TOPICS);
	expect_err_hex("suback id 0", "90 03 00 00 00", MQTT_V311, MQTT_ERR_PACKET_ID);
	expect_err_hex("v5 unsuback code 1", "b0 04 00 01 00 01", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 unsuback empty", "b0 03 00 01 00", MQTT_V5, MQTT_ERR_NO_TOPICS);

	/* CONNACK */
	expect_err_hex("v3 connack flags", "20 02 02 00", MQTT_V311, MQTT_ERR_RESERVED_FLAGS);
	expect_err_hex("v3 connack code 6", "20 02 00 06", MQTT_V311, MQTT_ERR_REASON_CODE);
	expect_err_hex("v3 connack present + refused", "20 02 01 05", MQTT_V311,
		       MQTT_ERR_PROTOCOL);
	expect_err_hex("v5 connack 0x10", "20 03 00 10 00", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 connack present + refused", "20 03 01 80 00", MQTT_V5,
		       MQTT_ERR_PROTOCOL);
	expect_err_hex("v5 connack no props length", "20 02 00 00", MQTT_V5, MQTT_ERR_SHORT);
	expect_err_hex("v5 connack will delay", "20 08 00 00 05 18 00 00 00 01", MQTT_V5,
		       MQTT_ERR_PROPERTY);
	expect_err_hex("v5 connack max qos 2", "20 05 00 00 02 24 02", MQTT_V5,
		       MQTT_ERR_PROPERTY_VALUE);
	expect_err_hex("v5 connack retain available 2", "20 05 00 00 02 25 02", MQTT_V5,
		       MQTT_ERR_PROPERTY_VALUE);
	expect_err_hex("v5 connack auth data alone", "20 07 00 00 04 16 00 01 61", MQTT_V5,
		       MQTT_ERR_PROTOCOL);

	/* DISCONNECT / AUTH */
	expect_err_hex("v5 disconnect 0x05", "e0 01 05", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 disconnect 0x84", "e0 01 84", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 disconnect 0x91", "e0 01 91", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 connack 0x8b", "20 03 00 8b 00", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 disconnect receive max", "e0 05 00 03 21 00 01", MQTT_V5,
		       MQTT_ERR_PROPERTY);
	expect_err_hex("v5 disconnect trailing", "e0 03 00 00 00", MQTT_V5, MQTT_ERR_TRAILING);
	expect_err_hex("v5 auth 0x80", "f0 01 80", MQTT_V5, MQTT_ERR_REASON_CODE);
	expect_err_hex("v5 auth data no method", "f0 06 18 04 16 00 01 61", MQTT_V5,
		       MQTT_ERR_PROTOCOL);
	expect_err_hex("v5 auth session expiry", "f0 07 18 05 11 00 00 00 01", MQTT_V5,
		       MQTT_ERR_PROPERTY);
}

/* ------------------------------------------------------------------ */
/* Every property in every packet                                       */
/* ------------------------------------------------------------------ */

enum ptype_kind { K_BYTE, K_U16, K_U32, K_VARINT, K_UTF8, K_BIN, K_PAIR };

#define WILL 0          /* "packet type" 0 stands for the will properties */
#define PK(t) (1u << (t))

/* Table 2-4 of MQTT 5.0, written out independently of codec.c. */
static const struct {
	uint8_t id;
	uint8_t kind;
	uint32_t where;
} prop_table[] = {
	{ 0x01, K_BYTE, PK(MQTT_PUBLISH) | PK(WILL) },
	{ 0x02, K_U32, PK(MQTT_PUBLISH) | PK(WILL) },
	{ 0x03, K_UTF8, PK(MQTT_PUBLISH) | PK(WILL) },
	{ 0x08, K_UTF8, PK(MQTT_PUBLISH) | PK(WILL) },
	{ 0x09, K_BIN, PK(MQTT_PUBLISH) | PK(WILL) },
	{ 0x0B, K_VARINT, PK(MQTT_PUBLISH) | PK(MQTT_SUBSCRIBE) },
	{ 0x11, K_U32, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_DISCONNECT) },
	{ 0x12, K_UTF8, PK(MQTT_CONNACK) },
	{ 0x13, K_U16, PK(MQTT_CONNACK) },
	{ 0x15, K_UTF8, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_AUTH) },
	{ 0x16, K_BIN, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_AUTH) },
	{ 0x17, K_BYTE, PK(MQTT_CONNECT) },
	{ 0x18, K_U32, PK(WILL) },
	{ 0x19, K_BYTE, PK(MQTT_CONNECT) },
	{ 0x1A, K_UTF8, PK(MQTT_CONNACK) },
	{ 0x1C, K_UTF8, PK(MQTT_CONNACK) | PK(MQTT_DISCONNECT) },
	{ 0x1F, K_UTF8, PK(MQTT_CONNACK) | PK(MQTT_PUBACK) | PK(MQTT_PUBREC) |
		PK(MQTT_PUBREL) | PK(MQTT_PUBCOMP) | PK(MQTT_SUBACK) |
		PK(MQTT_UNSUBACK) | PK(MQTT_DISCONNECT) | PK(MQTT_AUTH) },
	{ 0x21, K_U16, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) },
	{ 0x22, K_U16, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) },
	{ 0x23, K_U16, PK(MQTT_PUBLISH) },
	{ 0x24, K_BYTE, PK(MQTT_CONNACK) },
	{ 0x25, K_BYTE, PK(MQTT_CONNACK) },
	{ 0x26, K_PAIR, 0xFFFF & ~(PK(MQTT_PINGREQ) | PK(MQTT_PINGRESP)) },
	{ 0x27, K_U32, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) },
	{ 0x28, K_BYTE, PK(MQTT_CONNACK) },
	{ 0x29, K_BYTE, PK(MQTT_CONNACK) },
	{ 0x2A, K_BYTE, PK(MQTT_CONNACK) },
};

/* Append property `id` with a small valid value (v). */
static void put_prop(struct bb *x, uint8_t id, uint8_t kind, unsigned v)
{
	u8(x, id);
	switch (kind) {
	case K_BYTE: u8(x, v); break;
	case K_U16: u16(x, v); break;
	case K_U32: u32(x, v); break;
	case K_VARINT: vint(x, v); break;
	case K_UTF8: str(x, "x"); break;
	case K_BIN: strn(x, "\0\1", 2); break;
	case K_PAIR: str(x, "k"); str(x, "v"); break;
	}
}

/* A v5 packet of type t (WILL: a CONNECT with will) carrying props pr. */
static struct bb *v5_packet(unsigned t, const struct bb *pr)
{
	struct bb *b = bb_new(), *x;
	unsigned first = t << 4;

	switch (t) {
	case WILL:
		str(b, "MQTT"); u8(b, 5); u8(b, 0x06); u16(b, 0);
		u8(b, 0); str(b, "c"); props(b, pr); str(b, "w"); str(b, "m");
		first = 0x10;
		break;
	case MQTT_CONNECT:
		str(b, "MQTT"); u8(b, 5); u8(b, 0x02); u16(b, 0);
		props(b, pr); str(b, "c");
		break;
	case MQTT_CONNACK:
		u8(b, 0); u8(b, 0); props(b, pr);
		break;
	case MQTT_PUBLISH:
		str(b, "t"); props(b, pr); raw(b, "pay", 3);
		break;
	case MQTT_PUBREL:
		first |= 2;
		/* fall through */
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		u16(b, 1); u8(b, 0); props(b, pr);
		break;
	case MQTT_SUBSCRIBE:
		first |= 2;
		u16(b, 1); props(b, pr); str(b, "a/#"); u8(b, 1);
		break;
	case MQTT_UNSUBSCRIBE:
		first |= 2;
		u16(b, 1); props(b, pr); str(b, "a/#");
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		u16(b, 1); props(b, pr); u8(b, 0);
		break;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		u8(b, 0); props(b, pr);
		break;
	}
	x = frame(first, b);
	bb_free(b);
	return x;
}

static const unsigned prop_packets[] = {
	WILL, MQTT_CONNECT, MQTT_CONNACK, MQTT_PUBLISH, MQTT_PUBACK,
	MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP, MQTT_SUBSCRIBE, MQTT_SUBACK,
	MQTT_UNSUBSCRIBE, MQTT_UNSUBACK, MQTT_DISCONNECT, MQTT_AUTH,
};

static void try_props(const char *what, unsigned t, uint8_t id,
		      const struct bb *pr, enum mqtt_err want)
{
	struct bb *x = v5_packet(t, pr);
	struct mqtt_packet p;
	char name[96];
	ssize_t r;

	snprintf(name, sizeof name, "%s: property 0x%02x in type %u", what, id, t);
	r = decode_all(name, x->b, x->n, MQTT_V5, 0, &p);
	if (want == MQTT_ERR_NONE)
		CHECK(r == (ssize_t)x->n, "%s: got %zd (%s), want ok", name, r,
		      r < 0 ? mqtt_err_str((enum mqtt_err)-r) : "");
	else
		CHECK(r == -(ssize_t)want, "%s: got %zd, want -%d", name, r, want);
	bb_free(x);
}

static void test_every_property(void)
{
	for (unsigned i = 0; i < sizeof prop_packets / sizeof prop_packets[0]; i++) {
		unsigned t = prop_packets[i];

		for (unsigned j = 0; j < sizeof prop_table / sizeof prop_table[0]; j++) {
			uint8_t id = prop_table[j].id, kind = prop_table[j].kind;
			bool allowed = prop_table[j].where & PK(t);
			struct bb *pr = bb_new();
			enum mqtt_err want;

			put_prop(pr, id, kind, 1);
			want = !allowed ? MQTT_ERR_PROPERTY :
			       id == MQTT_PROP_AUTH_DATA ? MQTT_ERR_PROTOCOL :
			       MQTT_ERR_NONE;
			try_props("single", t, id, pr, want);
			if (allowed && id == MQTT_PROP_AUTH_DATA) {
				put_prop(pr, MQTT_PROP_AUTH_METHOD, K_UTF8, 1);
				try_props("data+method", t, id, pr, MQTT_ERR_NONE);
			}
			/* Twice: only user properties, and subscription
			 * identifiers in PUBLISH, may repeat. */
			if (allowed && id != MQTT_PROP_AUTH_DATA) {
				put_prop(pr, id, kind, 2);
				want = id == MQTT_PROP_USER_PROPERTY ||
				       (id == MQTT_PROP_SUBSCRIPTION_ID &&
					t == MQTT_PUBLISH) ? MQTT_ERR_NONE :
				       MQTT_ERR_PROTOCOL;
				try_props("twice", t, id, pr, want);
			}
			/* Range: 0 and 2 for the bytes, 0 where 0 is not allowed. */
			if (allowed && kind == K_BYTE) {
				struct bb *q = bb_new();

				put_prop(q, id, kind, 0);
				try_props("byte 0", t, id, q, MQTT_ERR_NONE);
				q->n = 0;
				put_prop(q, id, kind, 2);
				try_props("byte 2", t, id, q, MQTT_ERR_PROPERTY_VALUE);
				bb_free(q);
			}
			if (allowed && (id == MQTT_PROP_RECEIVE_MAXIMUM ||
					id == MQTT_PROP_MAXIMUM_PACKET_SIZE ||
					id == MQTT_PROP_TOPIC_ALIAS ||
					id == MQTT_PROP_SUBSCRIPTION_ID)) {
				struct bb *q = bb_new();

				put_prop(q, id, kind, 0);
				try_props("zero", t, id, q, MQTT_ERR_PROPERTY_VALUE);
				bb_free(q);
			}
			if (allowed && (id == MQTT_PROP_TOPIC_ALIAS_MAXIMUM ||
					id == MQTT_PROP_SESSION_EXPIRY ||
					id == MQTT_PROP_SERVER_KEEPALIVE)) {
				struct bb *q = bb_new();

				put_prop(q, id, kind, 0);
				try_props("zero ok", t, id, q, MQTT_ERR_NONE);
				bb_free(q);
			}
			/* A value cut short by the end of the property block. */
			{
				struct bb *q = bb_new();

				put_prop(q, id, kind, 300);
				q->n--;
				if (kind == K_VARINT)
					q->b[q->n - 1] |= 0x80;
				try_props("cut", t, id, q, allowed ?
					  MQTT_ERR_SHORT : MQTT_ERR_PROPERTY);
				bb_free(q);
			}
			bb_free(pr);
		}
		/* Every identifier that is not a property at all. */
		for (unsigned id = 0; id < 128; id++) {
			bool known = false;

			for (unsigned j = 0; j < sizeof prop_table / sizeof prop_table[0]; j++)
				known |= prop_table[j].id == id;
			if (known)
				continue;
			struct bb *q = bb_new();

			u8(q, id);
			u8(q, 0);
			try_props("unknown", t, (uint8_t)id, q, MQTT_ERR_PROPERTY);
			bb_free(q);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Encode -> decode round trips                                         */
/* ------------------------------------------------------------------ */

static uint8_t user_run[4][256];

/* Build n user properties into slot's buffer. */
static void set_users(struct mqtt_props *pr, unsigned slot, unsigned n)
{
	size_t len = 0;
	char k[16], v[32];

	for (unsigned i = 0; i < n; i++) {
		snprintf(k, sizeof k, "key%u", i);
		snprintf(v, sizeof v, "val\xc3\xa9%u-%u", slot, i);
		len += mqtt_user_prop_put(user_run[slot] + len,
					  sizeof user_run[slot] - len,
					  k, strlen(k), v, strlen(v));
	}
	pr->user = n ? user_run[slot] : NULL;
	pr->user_len = (uint32_t)len;
	pr->n_user = (uint16_t)n;
	if (n)
		MQTT_SET(pr, MQTT_PROP_USER_PROPERTY);
}

/* Set every property allowed in packet type t (WILL for will props). */
static void fill_props(struct mqtt_props *pr, unsigned t, unsigned seed)
{
	memset(pr, 0, sizeof *pr);
	for (unsigned j = 0; j < sizeof prop_table / sizeof prop_table[0]; j++) {
		if (!(prop_table[j].where & PK(t)))
			continue;
		uint8_t id = prop_table[j].id;

		MQTT_SET(pr, id);
		switch (id) {
		case 0x01: pr->payload_format = 1; break;
		case 0x02: pr->message_expiry = 3600 + seed; break;
		case 0x03: pr->content_type = S("text/plain"); break;
		case 0x08: pr->response_topic = S("reply/to/me"); break;
		case 0x09: pr->correlation_data = (struct mqtt_str){
				(const uint8_t *)"\0\1\2\3", 4 }; break;
		case 0x0B:
			pr->n_sub_ids = t == MQTT_PUBLISH ? 3 : 1;
			for (unsigned i = 0; i < pr->n_sub_ids; i++)
				pr->sub_ids[i] = (i == 1) ? MQTT_MAX_REMAINING :
						 127 + i * 20000 + seed;
			break;
		case 0x11: pr->session_expiry = 0xFFFFFFFF - seed; break;
		case 0x12: pr->assigned_client_id = S("auto-1234"); break;
		case 0x13: pr->server_keepalive = 120; break;
		case 0x15: pr->auth_method = S("SCRAM-SHA-1"); break;
		case 0x16: pr->auth_data = (struct mqtt_str){
				(const uint8_t *)"\xff\x00\x80", 3 }; break;
		case 0x17: pr->request_problem_info = 0; break;
		case 0x18: pr->will_delay = 30; break;
		case 0x19: pr->request_response_info = 1; break;
		case 0x1A: pr->response_info = S("resp/"); break;
		case 0x1C: pr->server_reference = S("other.example:8883"); break;
		case 0x1F: pr->reason_string = S("because \xe2\x82\xac"); break;
		case 0x21: pr->receive_maximum = 65535; break;
		case 0x22: pr->topic_alias_maximum = 10; break;
		case 0x23: pr->topic_alias = 7; break;
		case 0x24: pr->max_qos = 1; break;
		case 0x25: pr->retain_available = 0; break;
		case 0x26: set_users(pr, seed % 4, 3); break;
		case 0x27: pr->max_packet_size = 1 << 20; break;
		case 0x28: pr->wildcard_sub_available = 1; break;
		case 0x29: pr->sub_id_available = 0; break;
		case 0x2A: pr->shared_sub_available = 1; break;
		}
	}
}

static uint8_t enc_buf[300000];

/*
 * Encode p for ver, check size and cap handling, then decode (whole, every
 * prefix, against the guard) and compare field by field; re-encoding the
 * decoded packet must give the same bytes.
 */
static void roundtrip(const char *name, const struct mqtt_packet *p, uint8_t ver)
{
	size_t sz = mqtt_encoded_size(p, ver);

	CHECK(sz > 0, "%s: encoded size 0", name);
	if (!sz)
		return;
	size_t n = mqtt_encode(p, ver, enc_buf, sizeof enc_buf);

	CHECK(n == sz, "%s: encode %zu, size %zu", name, n, sz);
	CHECK(mqtt_encode(p, ver, enc_buf + sz, sz - 1) == 0,
	      "%s: encode into cap-1 succeeded", name);
	CHECK(mqtt_encode(p, ver, enc_buf + sz, 0) == 0, "%s: cap 0", name);

	uint8_t t, f;
	uint32_t rem;
	int hl = mqtt_fixed_header(enc_buf, n, &t, &f, &rem);

	CHECK(hl >= 2 && (size_t)hl + rem == n && t == p->type, "%s: header", name);

	uint8_t dver = p->type == MQTT_CONNECT ? 0 : ver;
	struct mqtt_packet q;
	ssize_t r = decode_all(name, enc_buf, n, dver, 0, &q);

	CHECK(r == (ssize_t)n, "%s: decode gave %zd (%s)", name, r,
	      r < 0 ? mqtt_err_str((enum mqtt_err)-r) : "");
	if (r != (ssize_t)n)
		return;
	const char *why = cc_packet(p, &q, ver);

	CHECK(!why, "%s: field %s differs", name, why ? why : "");
	CHECK(mqtt_decode(enc_buf, n, dver, (uint32_t)n, &q) == (ssize_t)n,
	      "%s: max = size", name);
	CHECK(mqtt_decode(enc_buf, n, dver, (uint32_t)n - 1, &q) ==
	      -MQTT_ERR_TOO_LARGE, "%s: max = size - 1", name);
	/* q's views point into enc_buf; re-encode elsewhere. */
	r = mqtt_decode(enc_buf, n, dver, 0, &q);
	static uint8_t again[300000];
	size_t n2 = mqtt_encode(&q, ver, again, sizeof again);

	CHECK(n2 == n && memcmp(again, enc_buf, n) == 0,
	      "%s: re-encoding differs", name);
}

static void test_roundtrip_connect(void)
{
	static const uint8_t vers[] = { MQTT_V311, MQTT_V5 };
	char name[128];

	for (unsigned vi = 0; vi < 2; vi++) {
		uint8_t v = vers[vi];

		for (unsigned will = 0; will < 4; will++) {       /* none, qos 0..2 */
			for (unsigned up = 0; up < 4; up++) {    /* none, u, u+p, p */
				if (up == 3 && v != MQTT_V5)
					continue;
				for (unsigned fl = 0; fl < 2; fl++) {
					struct mqtt_packet p;
					struct mqtt_connect *c = &p.u.connect;

					memset(&p, 0, sizeof p);
					p.type = MQTT_CONNECT;
					c->version = v;
					c->clean = fl;
					c->keepalive = (uint16_t)(fl ? 0 : 65535);
					c->client_id = fl ? S("") : S("device-\xe6\x97\xa5-42");
					if (will) {
						c->will = true;
						c->will_qos = (uint8_t)(will - 1);
						c->will_retain = fl;
						c->will_topic = S("status/device-42");
						c->will_payload = (struct mqtt_str){
							(const uint8_t *)"off\0line", 8 };
					}
					c->has_username = up == 1 || up == 2;
					c->has_password = up >= 2;
					c->username = S("alice");
					c->password = (struct mqtt_str){
						(const uint8_t *)"\x00\xffsecret", 8 };
					if (v == MQTT_V5 && fl) {
						fill_props(&c->props, MQTT_CONNECT, 1);
						if (will)
							fill_props(&c->will_props, WILL, 2);
					}
					snprintf(name, sizeof name,
						 "connect v%u will%u up%u fl%u", v, will, up, fl);
					roundtrip(name, &p, v);
				}
			}
		}
	}
	/* CONNECT with version 0 passed to the encoder uses c->version. */
	struct mqtt_packet p;

	memset(&p, 0, sizeof p);
	p.type = MQTT_CONNECT;
	p.u.connect.version = MQTT_V5;
	p.u.connect.client_id = S("x");
	CHECK(mqtt_encode(&p, 0, enc_buf, sizeof enc_buf) == 16 && enc_buf[8] == 5 &&
	      enc_buf[12] == 0, "connect level from struct");
	p.u.connect.version = 3;
	CHECK(mqtt_encoded_size(&p, 0) == 0 && mqtt_encode(&p, 0, enc_buf, 100) == 0,
	      "connect level 3 cannot be encoded");
}

static void test_roundtrip_others(void)
{
	static const uint8_t vers[] = { MQTT_V311, MQTT_V5 };
	static uint8_t payload[70000];
	char name[128];
	struct mqtt_packet p;

	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7 + 3);

	for (unsigned vi = 0; vi < 2; vi++) {
		uint8_t v = vers[vi];
		bool v5 = v == MQTT_V5;

		/* CONNACK */
		static const uint8_t reasons[] = { 0x00, 0x84, 0x85, 0x88, 0x86, 0x87 };

		for (unsigned i = 0; i < sizeof reasons; i++) {
			for (unsigned pr = 0; pr < 2; pr++) {
				memset(&p, 0, sizeof p);
				p.type = MQTT_CONNACK;
				p.u.connack.reason = reasons[i];
				p.u.connack.session_present = i == 0 && pr;
				if (pr)
					fill_props(&p.u.connack.props, MQTT_CONNACK, i);
				snprintf(name, sizeof name, "connack v%u rc%02x p%u", v,
					 reasons[i], pr);
				roundtrip(name, &p, v);
			}
		}

		/* PUBLISH */
		for (unsigned qos = 0; qos < 3; qos++) {
			for (unsigned fl = 0; fl < 4; fl++) {
				for (unsigned pl = 0; pl < 3; pl++) {
					memset(&p, 0, sizeof p);
					p.type = MQTT_PUBLISH;
					struct mqtt_publish *pb = &p.u.publish;

					pb->qos = (uint8_t)qos;
					pb->dup = qos && (fl & 1);
					pb->retain = fl & 2;
					pb->packet_id = (uint16_t)(qos ? 1 + fl * 1000 : 0);
					pb->topic = S("sensors/\xc3\xa9t\xc3\xa9/temp");
					pb->payload = payload;
					pb->payload_len = pl == 0 ? 0 : pl == 1 ? 5 : sizeof payload;
					if (v5 && fl >= 2)
						fill_props(&pb->props, MQTT_PUBLISH, fl);
					snprintf(name, sizeof name, "publish v%u qos%u fl%u pl%u",
						 v, qos, fl, pl);
					roundtrip(name, &p, v);
				}
			}
		}
		if (v5) {
			/* Topic alias and empty topic; many user properties;
			 * the full 32 subscription identifiers. */
			memset(&p, 0, sizeof p);
			p.type = MQTT_PUBLISH;
			p.u.publish.topic = S("");
			p.u.publish.payload = payload;
			p.u.publish.payload_len = 3;
			MQTT_SET(&p.u.publish.props, MQTT_PROP_TOPIC_ALIAS);
			p.u.publish.props.topic_alias = 65535;
			roundtrip("publish alias only", &p, v);
			set_users(&p.u.publish.props, 3, 12);
			MQTT_SET(&p.u.publish.props, MQTT_PROP_SUBSCRIPTION_ID);
			p.u.publish.props.n_sub_ids = MQTT_MAX_SUB_IDS;
			for (unsigned i = 0; i < MQTT_MAX_SUB_IDS; i++)
				p.u.publish.props.sub_ids[i] = 1u << (i % 28);
			roundtrip("publish 12 users 32 sub ids", &p, v);
		}

		/* PUBACK, PUBREC, PUBREL, PUBCOMP */
		static const uint8_t acks[] = { MQTT_PUBACK, MQTT_PUBREC,
						MQTT_PUBREL, MQTT_PUBCOMP };

		for (unsigned a = 0; a < 4; a++) {
			for (unsigned form = 0; form < 4; form++) {
				memset(&p, 0, sizeof p);
				p.type = acks[a];
				p.u.ack.packet_id = (uint16_t)(0xFFFF - form);
				if (form & 1)
					p.u.ack.reason = acks[a] <= MQTT_PUBREC ? 0x91 : 0x92;
				if (form & 2)
					fill_props(&p.u.ack.props, acks[a], form);
				snprintf(name, sizeof name, "ack%u v%u form%u", acks[a], v, form);
				roundtrip(name, &p, v);
				size_t want = !v5 ? 4 : form == 0 ? 4 : form == 1 ? 5 : 0;

				if (want)
					CHECK(mqtt_encoded_size(&p, v) == want,
					      "%s: short form size", name);
			}
		}

		/* SUBSCRIBE / UNSUBSCRIBE */
		static uint8_t list[512];
		static const char *filters[] = { "a/b", "+/x/#", "#", "$share/grp/s/+",
						 "\xe2\x82\xac/+", "/", "$SYS/#" };

		for (unsigned unsub = 0; unsub < 2; unsub++) {
			for (unsigned nf = 1; nf <= 7; nf += 3) {
				size_t len = 0;

				for (unsigned i = 0; i < nf; i++) {
					uint8_t o = (uint8_t)(i % 3);

					if (v5 && i % 2 && strncmp(filters[i], "$share/", 7))
						o |= MQTT_SUBOPT_NO_LOCAL;
					if (v5)
						o |= (uint8_t)(MQTT_SUBOPT_RETAIN_AS_PUB * (i & 1) |
							       (i % 3) << 4);
					len += mqtt_topics_put(list + len, sizeof list - len,
							       filters[i], strlen(filters[i]),
							       !unsub, o);
				}
				for (unsigned pr = 0; pr < 2; pr++) {
					memset(&p, 0, sizeof p);
					p.type = unsub ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;
					p.u.subscribe.packet_id = (uint16_t)(nf * 100 + pr);
					p.u.subscribe.list = list;
					p.u.subscribe.list_len = (uint32_t)len;
					p.u.subscribe.count = (uint16_t)nf;
					if (pr)
						fill_props(&p.u.subscribe.props, p.type, nf);
					snprintf(name, sizeof name, "%s v%u n%u p%u",
						 unsub ? "unsubscribe" : "subscribe", v, nf, pr);
					roundtrip(name, &p, v);
				}
			}
		}

		/* SUBACK / UNSUBACK */
		static const uint8_t sub_codes_v3[] = { 0, 1, 2, 0x80 };
		static const uint8_t sub_codes_v5[] = { 0, 1, 2, 0x80, 0x83, 0x87, 0x8F,
							0x91, 0x97, 0x9E, 0xA1, 0xA2 };
		static const uint8_t unsub_codes[] = { 0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91 };

		for (unsigned un = 0; un < 2; un++) {
			for (unsigned pr = 0; pr < 2; pr++) {
				memset(&p, 0, sizeof p);
				p.type = un ? MQTT_UNSUBACK : MQTT_SUBACK;
				p.u.suback.packet_id = 77;
				p.u.suback.codes = un ? unsub_codes : v5 ? sub_codes_v5 : sub_codes_v3;
				p.u.suback.count = un ? sizeof unsub_codes :
						   v5 ? sizeof sub_codes_v5 : sizeof sub_codes_v3;
				if (pr)
					fill_props(&p.u.suback.props, p.type, pr);
				snprintf(name, sizeof name, "%s v%u p%u", un ? "unsuback" : "suback",
					 v, pr);
				roundtrip(name, &p, v);
			}
		}

		/* PINGREQ, PINGRESP */
		memset(&p, 0, sizeof p);
		p.type = MQTT_PINGREQ;
		roundtrip("pingreq", &p, v);
		CHECK(mqtt_encode(&p, v, enc_buf, 2) == 2 && enc_buf[0] == 0xC0 &&
		      enc_buf[1] == 0, "pingreq bytes");
		p.type = MQTT_PINGRESP;
		roundtrip("pingresp", &p, v);

		/* DISCONNECT, AUTH */
		for (unsigned au = 0; au < (v5 ? 2u : 1u); au++) {
			for (unsigned form = 0; form < 4; form++) {
				memset(&p, 0, sizeof p);
				p.type = au ? MQTT_AUTH : MQTT_DISCONNECT;
				if (form & 1)
					p.u.disconnect.reason = au ? 0x18 : 0x8E;
				if (form & 2)
					fill_props(&p.u.disconnect.props, p.type, form);
				snprintf(name, sizeof name, "%s v%u form%u",
					 au ? "auth" : "disconnect", v, form);
				roundtrip(name, &p, v);
				size_t want = !v5 ? 2 : form == 0 ? 2 : form == 1 ? 3 : 0;

				if (want)
					CHECK(mqtt_encoded_size(&p, v) == want,
					      "%s: short form size", name);
			}
		}
	}
}

/* Exact bytes of the encoder's version-specific choices. */
static void test_encode_bytes(void)
{
	struct mqtt_packet p;
	uint8_t b[64];

	memset(&p, 0, sizeof p);
	p.type = MQTT_CONNACK;
	p.u.connack.reason = MQTT_RC_QUOTA_EXCEEDED;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 4 &&
	      !memcmp(b, "\x20\x02\x00\x03", 4), "v3 connack maps 0x97 -> 3");
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 5 &&
	      !memcmp(b, "\x20\x03\x00\x97\x00", 5), "v5 connack keeps 0x97");
	p.u.connack.reason = MQTT_RC_BANNED;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 4 && b[3] == 5, "banned -> 5");
	p.u.connack.reason = 0;
	p.u.connack.session_present = true;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 4 &&
	      !memcmp(b, "\x20\x02\x01\x00", 4), "connack session present");
	CHECK(mqtt_connack_v3_code(0x00) == 0 && mqtt_connack_v3_code(0x84) == 1 &&
	      mqtt_connack_v3_code(0x85) == 2 && mqtt_connack_v3_code(0x88) == 3 &&
	      mqtt_connack_v3_code(0x89) == 3 && mqtt_connack_v3_code(0x86) == 4 &&
	      mqtt_connack_v3_code(0x87) == 5 && mqtt_connack_v3_code(0x9F) == 3,
	      "connack v3 code table");

	static const uint8_t codes[] = { 0, 1, 2, 0x80, 0x87, 0x8F, 0xA2 };

	memset(&p, 0, sizeof p);
	p.type = MQTT_SUBACK;
	p.u.suback.packet_id = 5;
	p.u.suback.codes = codes;
	p.u.suback.count = sizeof codes;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 11 &&
	      !memcmp(b, "\x90\x09\x00\x05\x00\x01\x02\x80\x80\x80\x80", 11),
	      "v3 suback maps failures to 0x80");
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 12 &&
	      !memcmp(b, "\x90\x0a\x00\x05\x00\x00\x01\x02\x80\x87\x8f\xa2", 12),
	      "v5 suback keeps codes");
	p.type = MQTT_UNSUBACK;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 4 &&
	      !memcmp(b, "\xb0\x02\x00\x05", 4), "v3 unsuback has no codes");

	memset(&p, 0, sizeof p);
	p.type = MQTT_PUBREL;
	p.u.ack.packet_id = 0x1234;
	p.u.ack.reason = 0x92;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 4 &&
	      !memcmp(b, "\x62\x02\x12\x34", 4), "v3 pubrel drops reason");
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 5 &&
	      !memcmp(b, "\x62\x03\x12\x34\x92", 5), "v5 pubrel reason only");
	p.u.ack.reason = 0;
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 4 &&
	      !memcmp(b, "\x62\x02\x12\x34", 4), "v5 pubrel short form");
	p.u.ack.props.reason_string = S("r");
	MQTT_SET(&p.u.ack.props, MQTT_PROP_REASON_STRING);
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 10 &&
	      !memcmp(b, "\x62\x08\x12\x34\x00\x04\x1f\x00\x01r", 10),
	      "v5 pubrel reason 0 with props");

	memset(&p, 0, sizeof p);
	p.type = MQTT_DISCONNECT;
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 2 && !memcmp(b, "\xe0\x00", 2),
	      "v5 disconnect empty");
	p.u.disconnect.reason = 0x8E;
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 3 &&
	      !memcmp(b, "\xe0\x01\x8e", 3), "v5 disconnect reason");
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 2 && !memcmp(b, "\xe0\x00", 2),
	      "v3 disconnect");
	p.type = MQTT_AUTH;
	CHECK(mqtt_encoded_size(&p, MQTT_V311) == 0 &&
	      mqtt_encode(&p, MQTT_V311, b, sizeof b) == 0, "no AUTH in v3");
	p.type = 0;
	CHECK(mqtt_encoded_size(&p, MQTT_V5) == 0, "type 0 cannot be encoded");

	/* PUBLISH flags and the v3 encoder ignoring properties. */
	memset(&p, 0, sizeof p);
	p.type = MQTT_PUBLISH;
	p.u.publish.qos = 2;
	p.u.publish.dup = true;
	p.u.publish.retain = true;
	p.u.publish.packet_id = 9;
	p.u.publish.topic = S("t");
	p.u.publish.payload = (const uint8_t *)"x";
	p.u.publish.payload_len = 1;
	MQTT_SET(&p.u.publish.props, MQTT_PROP_MESSAGE_EXPIRY);
	p.u.publish.props.message_expiry = 1;
	CHECK(mqtt_encode(&p, MQTT_V311, b, sizeof b) == 8 &&
	      !memcmp(b, "\x3d\x06\x00\x01t\x00\x09x", 8), "v3 publish bytes");
	CHECK(mqtt_encode(&p, MQTT_V5, b, sizeof b) == 14 &&
	      !memcmp(b, "\x3d\x0c\x00\x01t\x00\x09\x05\x02\x00\x00\x00\x01x", 14),
	      "v5 publish bytes");
	/* A present bit without data writes nothing for user props/sub ids. */
	MQTT_SET(&p.u.publish.props, MQTT_PROP_USER_PROPERTY);
	MQTT_SET(&p.u.publish.props, MQTT_PROP_SUBSCRIPTION_ID);
	CHECK(mqtt_encoded_size(&p, MQTT_V5) == 14, "empty user/sub id bits");

	/* Property block alone. */
	struct mqtt_props pr;

	memset(&pr, 0, sizeof pr);
	CHECK(mqtt_props_size(&pr) == 1 && mqtt_props_encode(&pr, b, 1) == 1 && b[0] == 0,
	      "empty props block");
	MQTT_SET(&pr, MQTT_PROP_RECEIVE_MAXIMUM);
	pr.receive_maximum = 0x0102;
	MQTT_SET(&pr, MQTT_PROP_PAYLOAD_FORMAT);
	pr.payload_format = 1;
	CHECK(mqtt_props_size(&pr) == 6 && mqtt_props_encode(&pr, b, 5) == 0 &&
	      mqtt_props_encode(&pr, b, 6) == 6 &&
	      !memcmp(b, "\x05\x01\x01\x21\x01\x02", 6), "props block, id order");

	/* Remaining length at the 1/2-byte boundary: 127 and 128. */
	static uint8_t big[300];

	memset(&p, 0, sizeof p);
	p.type = MQTT_PUBLISH;
	p.u.publish.topic = S("t");
	p.u.publish.payload = big;
	p.u.publish.payload_len = 124;
	CHECK(mqtt_encoded_size(&p, MQTT_V311) == 129, "rem 127");
	p.u.publish.payload_len = 125;
	CHECK(mqtt_encoded_size(&p, MQTT_V311) == 131, "rem 128");
	roundtrip("publish rem 128", &p, MQTT_V311);

	/* Too large for the protocol. */
	p.u.publish.payload_len = MQTT_MAX_REMAINING;
	CHECK(mqtt_encoded_size(&p, MQTT_V311) == 0 &&
	      mqtt_encode(&p, MQTT_V311, b, sizeof b) == 0, "over protocol max");
	p.u.publish.payload_len = MQTT_MAX_REMAINING - 3;
	CHECK(mqtt_encoded_size(&p, MQTT_V311) == MQTT_MAX_REMAINING + 5,
	      "exactly protocol max");

	/* Helpers refuse what does not fit. */
	CHECK(mqtt_topics_put(b, 5, "abc", 3, true, 0) == 0 &&
	      mqtt_topics_put(b, 6, "abc", 3, true, 1) == 6 &&
	      !memcmp(b, "\x00\x03" "abc\x01", 6), "topics_put");
	CHECK(mqtt_user_prop_put(b, 6, "k", 1, "v", 1) == 0 &&
	      mqtt_user_prop_put(b, 7, "k", 1, "v", 1) == 7 &&
	      !memcmp(b, "\x26\x00\x01k\x00\x01v", 7), "user_prop_put");
}

/* ------------------------------------------------------------------ */
/* Varints, fixed header, error table                                    */
/* ------------------------------------------------------------------ */

static void test_varint(void)
{
	static const struct {
		uint32_t v;
		int n;
		const char *bytes;
	} t[] = {
		{ 0, 1, "\x00" }, { 127, 1, "\x7f" }, { 128, 2, "\x80\x01" },
		{ 16383, 2, "\xff\x7f" }, { 16384, 3, "\x80\x80\x01" },
		{ 2097151, 3, "\xff\xff\x7f" }, { 2097152, 4, "\x80\x80\x80\x01" },
		{ 268435455, 4, "\xff\xff\xff\x7f" },
	};

	for (unsigned i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint8_t b[8] = { 0x30 };
		int n = mqtt_varint_put(b + 1, t[i].v);

		CHECK(n == t[i].n && mqtt_varint_size(t[i].v) == t[i].n &&
		      !memcmp(b + 1, t[i].bytes, (size_t)n), "varint %u", t[i].v);
		uint8_t ty, fl;
		uint32_t rem = 0;
		const uint8_t *g = guard_place(b, (size_t)n + 1);

		CHECK(mqtt_fixed_header(g, (size_t)n + 1, &ty, &fl, &rem) == n + 1 &&
		      rem == t[i].v && ty == 3 && fl == 0, "fixed header %u", t[i].v);
		for (int k = 0; k <= n; k++) {
			g = guard_place(b, (size_t)k);
			CHECK(mqtt_fixed_header(g, (size_t)k, &ty, &fl, &rem) == 0,
			      "fixed header prefix %d of %u", k, t[i].v);
		}
	}
	uint8_t ty, fl;
	uint32_t rem;

	CHECK(mqtt_fixed_header((const uint8_t *)"\x30\x80\x80\x80\x80", 5, &ty, &fl, &rem) ==
	      -MQTT_ERR_REMAINING_LENGTH, "fixed header 5 bytes");
	CHECK(mqtt_fixed_header((const uint8_t *)"\x30\x80\x00", 3, &ty, &fl, &rem) ==
	      -MQTT_ERR_REMAINING_LENGTH, "fixed header non-minimal");
	/* Any value round-trips through put and the header reader. */
	for (uint32_t v = 1; v < MQTT_MAX_REMAINING; v = v * 3 + 1) {
		uint8_t b[8] = { 0xC0 };
		int n = mqtt_varint_put(b + 1, v);

		CHECK(mqtt_fixed_header(b, (size_t)n + 1, &ty, &fl, &rem) == n + 1 &&
		      rem == v && n == mqtt_varint_size(v), "varint %u", v);
	}
}

static void test_err_table(void)
{
	static const uint8_t want[MQTT_ERR__COUNT] = {
		[MQTT_ERR_NONE] = 0x00,
		[MQTT_ERR_REMAINING_LENGTH] = 0x81,
		[MQTT_ERR_TOO_LARGE] = 0x95,
		[MQTT_ERR_RESERVED_FLAGS] = 0x81,
		[MQTT_ERR_BAD_TYPE] = 0x81,
		[MQTT_ERR_SHORT] = 0x81,
		[MQTT_ERR_TRAILING] = 0x81,
		[MQTT_ERR_UTF8] = 0x81,
		[MQTT_ERR_PROTOCOL_NAME] = 0x84,
		[MQTT_ERR_PROTOCOL_VERSION] = 0x84,
		[MQTT_ERR_CONNECT_FLAGS] = 0x81,
		[MQTT_ERR_QOS] = 0x81,
		[MQTT_ERR_TOPIC_NAME] = 0x90,
		[MQTT_ERR_TOPIC_FILTER] = 0x8F,
		[MQTT_ERR_PACKET_ID] = 0x82,
		[MQTT_ERR_NO_TOPICS] = 0x82,
		[MQTT_ERR_SUB_OPTIONS] = 0x81,
		[MQTT_ERR_PROPERTY] = 0x81,
		[MQTT_ERR_PROPERTY_VALUE] = 0x82,
		[MQTT_ERR_REASON_CODE] = 0x82,
		[MQTT_ERR_PROTOCOL] = 0x82,
	};

	for (int e = 0; e < MQTT_ERR__COUNT; e++) {
		const char *s = mqtt_err_str((enum mqtt_err)e);

		CHECK(mqtt_err_reason((enum mqtt_err)e) == want[e],
		      "reason of error %d is 0x%02x, want 0x%02x", e,
		      mqtt_err_reason((enum mqtt_err)e), want[e]);
		CHECK(s && *s && strcmp(s, "unknown error"), "text of error %d", e);
		/* Every failure code is a valid v5 DISCONNECT reason. */
		if (e)
			CHECK(want[e] >= 0x80, "error %d has a failure code", e);
	}
	CHECK(mqtt_err_reason(MQTT_ERR__COUNT) == 0x81 &&
	      !strcmp(mqtt_err_str(MQTT_ERR__COUNT), "unknown error"), "out of range");
}

/* ------------------------------------------------------------------ */
/* UTF-8 and topics                                                     */
/* ------------------------------------------------------------------ */

/* Reference: decode code points one at a time, RFC 3629 strictly. */
static int ref_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t c = p[i], cp;
		size_t len;

		if (c < 0x80) { cp = c; len = 1; }
		else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; len = 2; }
		else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; len = 3; }
		else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; len = 4; }
		else return 0;
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };

		if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
		    cp == 0)
			return 0;
		i += len;
	}
	return 1;
}

static void test_utf8(void)
{
	static const struct {
		const char *s;
		size_t n;
		int ok;
	} t[] = {
		{ "", 0, 1 }, { "hello/world", 11, 1 }, { "a\0b", 3, 0 },
		{ "\xc3\xa9", 2, 1 }, { "\xc0\x80", 2, 0 }, { "\xc1\xbf", 2, 0 },
		{ "\xe0\x9f\xbf", 3, 0 }, { "\xe0\xa0\x80", 3, 1 },
		{ "\xed\x9f\xbf", 3, 1 }, { "\xed\xa0\x80", 3, 0 }, { "\xed\xbf\xbf", 3, 0 },
		{ "\xef\xbb\xbf", 3, 1 }, /* BOM is a character [MQTT-1.5.4-3] */
		{ "\xef\xbf\xbf", 3, 1 }, { "\xf0\x8f\xbf\xbf", 4, 0 },
		{ "\xf0\x90\x80\x80", 4, 1 }, { "\xf4\x8f\xbf\xbf", 4, 1 },
		{ "\xf4\x90\x80\x80", 4, 0 }, { "\xf5\x80\x80\x80", 4, 0 },
		{ "\xff", 1, 0 }, { "\x80", 1, 0 }, { "\xc3", 1, 0 }, { "\xe2\x82", 2, 0 },
		{ "\xf0\x9f\x98", 3, 0 }, { "\xf0\x9f\x98\x80", 4, 1 },
		{ "abcdefgh\xc3\xa9", 10, 1 }, { "abcdefgh\xc3", 9, 0 },
		{ "abcdefghijklmno\x7f", 16, 1 },
	};

	for (unsigned i = 0; i < sizeof t / sizeof t[0]; i++) {
		const uint8_t *g = guard_place((const uint8_t *)t[i].s, t[i].n);

		CHECK(mqtt_utf8_valid(g, t[i].n) == t[i].ok, "utf8 case %u", i);
		CHECK(ref_utf8(g, t[i].n) == t[i].ok, "reference utf8 case %u", i);
	}

	/* Every 1, 2 and 3 byte string against the reference, ending at the
	 * guard page, after 0 and after 9 ASCII bytes (the word path). */
	uint8_t b[16];
	unsigned mism = 0;

	for (unsigned pre = 0; pre <= 9; pre += 9) {
		memset(b, 'a', pre);
		for (uint32_t x = 0; x < (1u << 24); x++) {
			size_t n = x < 256 ? 1 : x < 65536 ? 2 : 3;

			b[pre] = (uint8_t)(x >> (8 * (n - 1)));
			if (n > 1) b[pre + 1] = (uint8_t)(x >> (8 * (n - 2)));
			if (n > 2) b[pre + 2] = (uint8_t)x;
			const uint8_t *g = guard_place(b, pre + n);

			if (mqtt_utf8_valid(g, pre + n) != ref_utf8(g, pre + n) &&
			    mism++ < 5)
				CHECK(0, "utf8 mismatch on %06x after %u", x, pre);
		}
	}
	CHECK(mism == 0, "utf8 mismatches: %u", mism);
	/* Random 4..40 byte strings, biased towards lead and continuation
	 * bytes so that valid multi-byte characters turn up. */
	uint32_t seed = 12345;
	uint8_t s[40];

	for (unsigned i = 0; i < 2000000; i++) {
		size_t n = 4 + i % 37;

		for (size_t k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			uint8_t r = (uint8_t)(seed >> 16);

			switch ((seed >> 28) & 3) {
			case 0: s[k] = (uint8_t)(0x80 | (r & 0x3F)); break;
			case 1: s[k] = (uint8_t)(0xC0 | (r & 0x3F)); break;
			case 2: s[k] = (uint8_t)('a' + r % 26); break;
			default: s[k] = r; break;
			}
		}
		if (mqtt_utf8_valid(s, n) != ref_utf8(s, n) && mism++ < 5)
			CHECK(0, "random utf8 mismatch at %u", i);
	}
	/* One bad byte at every position of a long ASCII string. */
	uint8_t l[70];

	for (unsigned pos = 0; pos < sizeof l; pos++) {
		static const uint8_t bad[] = { 0x00, 0x80, 0xC0, 0xFF, 0xED };

		for (unsigned k = 0; k < sizeof bad; k++) {
			memset(l, 'x', sizeof l);
			l[pos] = bad[k];
			const uint8_t *g = guard_place(l, sizeof l);

			CHECK(!mqtt_utf8_valid(g, sizeof l), "bad 0x%02x at %u", bad[k], pos);
		}
		memset(l, 'x', sizeof l);
		if (pos + 4 <= sizeof l) {
			memcpy(l + pos, "\xf0\x9f\x98\x80", 4);
			CHECK(mqtt_utf8_valid(guard_place(l, sizeof l), sizeof l),
			      "emoji at %u", pos);
		}
	}
}

static void test_topics(void)
{
	static const struct {
		const char *s;
		int name, filter;
	} t[] = {
		{ "", 0, 0 }, { "a", 1, 1 }, { "a/b/c", 1, 1 }, { "/", 1, 1 },
		{ "//", 1, 1 }, { "a b/c", 1, 1 }, { "$SYS/x", 1, 1 },
		{ "#", 0, 1 }, { "+", 0, 1 }, { "a/#", 0, 1 }, { "a/+/b", 0, 1 },
		{ "+/+", 0, 1 }, { "/#", 0, 1 }, { "+/#", 0, 1 }, { "a/+/#", 0, 1 },
		{ "a#", 0, 0 }, { "a/#/b", 0, 0 }, { "#/", 0, 0 }, { "a/b#", 0, 0 },
		{ "a+", 0, 0 }, { "+a", 0, 0 }, { "a/+b/c", 0, 0 }, { "++", 0, 0 },
		{ "##", 0, 0 }, { "#+", 0, 0 },
		{ "$share/g/a", 1, 1 }, { "$share/g/#", 0, 1 }, { "$share/g/+/x", 0, 1 },
		{ "$share/g", 1, 0 }, { "$share/g/", 1, 0 }, { "$share//a", 1, 0 },
		{ "$share/+/a", 0, 0 }, { "$share/#/a", 0, 0 }, { "$share/g+/a", 0, 0 },
		{ "$share/g/a#", 0, 0 }, { "$share/", 1, 0 }, { "$share", 1, 1 },
		{ "$sharex/a", 1, 1 }, { "$share/g//", 1, 1 },
	};

	for (unsigned i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t n = strlen(t[i].s);
		const uint8_t *g = guard_place((const uint8_t *)t[i].s, n);

		CHECK(mqtt_topic_name_valid(g, n) == t[i].name, "name \"%s\"", t[i].s);
		CHECK(mqtt_topic_filter_valid(g, n) == t[i].filter, "filter \"%s\"", t[i].s);
	}
}

/* ------------------------------------------------------------------ */
/* Implementation limits and the iterators on odd input                  */
/* ------------------------------------------------------------------ */

static void test_limits(void)
{
	struct mqtt_packet p;
	struct bb *b, *x;
	ssize_t r;

	/* 65535 topic filters fit a SUBSCRIBE's count; one more does not. */
	b = bb_new();
	u16(b, 1);
	for (unsigned i = 0; i < 65535; i++) {
		str(b, "a");
		u8(b, 1);
	}
	x = frame(0x82, b);
	r = decode_all("65535 filters", x->b, x->n, MQTT_V311, 0, &p);
	CHECK(r == (ssize_t)x->n && p.u.subscribe.count == 65535, "65535 filters: %zd", r);
	bb_free(x);
	str(b, "a");
	u8(b, 1);
	expect_err_body("65536 filters", 0x82, b, MQTT_V311, MQTT_ERR_TOO_LARGE);
	bb_free(b);

	/* The same for SUBACK codes. */
	b = bb_new();
	u16(b, 1);
	u8(b, 0);
	for (unsigned i = 0; i < 65535; i++)
		u8(b, 0x80);
	x = frame(0x90, b);
	r = decode_all("65535 codes", x->b, x->n, MQTT_V5, 0, &p);
	CHECK(r == (ssize_t)x->n && p.u.suback.count == 65535, "65535 codes: %zd", r);
	bb_free(x);
	u8(b, 0);
	expect_err_body("65536 codes", 0x90, b, MQTT_V5, MQTT_ERR_TOO_LARGE);
	bb_free(b);

	/* And for user properties (empty key and value are valid). */
	struct bb *pr = bb_new();

	for (unsigned i = 0; i < 65535; i++)
		hex(pr, "26 00 00 00 00");
	b = bb_new();
	str(b, "t");
	props(b, pr);
	x = frame(0x30, b);
	r = decode_all("65535 user props", x->b, x->n, MQTT_V5, 0, &p);
	CHECK(r == (ssize_t)x->n && p.u.publish.props.n_user == 65535 &&
	      p.u.publish.props.user_len == 65535u * 5, "65535 user props: %zd", r);
	bb_free(x);
	bb_free(b);
	hex(pr, "26 00 00 00 00");
	b = bb_new();
	str(b, "t");
	props(b, pr);
	expect_err_body("65536 user props", 0x30, b, MQTT_V5, MQTT_ERR_TOO_LARGE);
	bb_free(b);
	bb_free(pr);

	/* User properties between every kind of other property. */
	if (dec_hex("users interleaved with all kinds",
		    "30 2e 00 01 74 2a 26 00 00 00 01 31 01 01 26 00 00 00 01 32"
		    " 23 00 05 26 00 00 00 01 33 03 00 02 63 74 26 00 00 00 01 34"
		    " 0b 05 26 00 00 00 01 35", MQTT_V5, &p) > 0) {
		struct mqtt_props *ps = &p.u.publish.props;
		struct mqtt_str k, v;
		uint32_t off = 0;
		unsigned n = 0;

		while (mqtt_user_props_next(ps, &off, &k, &v)) {
			n++;
			CHECK(k.len == 0 && v.len == 1 && v.p[0] == '0' + n, "pair %u", n);
		}
		CHECK(n == 5 && ps->n_user == 5 && ps->user_interleaved &&
		      ps->payload_format == 1 && ps->topic_alias == 5 &&
		      str_is(&ps->content_type, "ct") && ps->n_sub_ids == 1 &&
		      ps->sub_ids[0] == 5, "interleaved fields");
		CHECK(off == ps->user_len, "iterator ends at the run's end");
		struct bb *ix = from_hex("30 2e 00 01 74 2a 26 00 00 00 01 31 01 01 26 00 00"
			" 00 01 32 23 00 05 26 00 00 00 01 33 03 00 02 63 74 26 00 00 00 01"
			" 34 0b 05 26 00 00 00 01 35");

		CHECK(ix->n == 48 && cc_roundtrip(guard_place(ix->b, ix->n), ix->n) > 0,
		      "interleaved round trip");
		/* A caller that copies user/user_len/n_user into a fresh set
		 * (forwarding) and loses the interleaved flag must still get
		 * only the user properties out. */
		const uint8_t *g = guard_place(ix->b, ix->n);
		struct mqtt_packet d, e;

		CHECK(mqtt_decode(g, ix->n, MQTT_V5, 0, &d) == 48, "decode again");
		memset(&e, 0, sizeof e);
		e.type = MQTT_PUBLISH;
		e.u.publish.topic = S("t");
		MQTT_SET(&e.u.publish.props, MQTT_PROP_USER_PROPERTY);
		e.u.publish.props.user = d.u.publish.props.user;
		e.u.publish.props.user_len = d.u.publish.props.user_len;
		e.u.publish.props.n_user = d.u.publish.props.n_user;
		uint8_t ob[64];
		size_t on = mqtt_encode(&e, MQTT_V5, ob, sizeof ob);
		struct mqtt_packet f;

		CHECK(on == 2 + 3 + 1 + 5 * 6 && mqtt_decode(ob, on, MQTT_V5, 0, &f) == (ssize_t)on &&
		      f.u.publish.props.present == (1ull << MQTT_PROP_USER_PROPERTY) &&
		      f.u.publish.props.n_user == 5 && !f.u.publish.props.user_interleaved,
		      "copied run without the flag writes only user properties (%zu)", on);
		bb_free(ix);
	}

	/* Iterators on hand-built runs that are cut short or odd. */
	struct mqtt_props up;
	struct mqtt_str k, v;
	uint32_t off = 0;

	memset(&up, 0, sizeof up);
	up.user = guard_place((const uint8_t *)"\x26\x00\x01" "a\x00\x05" "b", 7);
	up.user_len = 7;
	CHECK(!mqtt_user_props_next(&up, &off, &k, &v) && off == 7, "cut user run");
	off = 0;
	up.user = guard_place((const uint8_t *)"\x7f\x00", 2);
	up.user_len = 2;
	CHECK(!mqtt_user_props_next(&up, &off, &k, &v) && off == 2, "unknown id in run");
	off = 0;
	up.user = guard_place((const uint8_t *)"\x21\x00", 2);
	CHECK(!mqtt_user_props_next(&up, &off, &k, &v), "cut u16 in run");
	off = 0;
	up.user = NULL;
	CHECK(!mqtt_user_props_next(&up, &off, &k, &v), "no run");

	struct mqtt_subscribe sub;
	struct mqtt_topics_iter it;
	uint8_t o;

	memset(&sub, 0, sizeof sub);
	mqtt_topics_begin(&it, &sub, true);
	CHECK(!mqtt_topics_next(&it, &k, &o), "empty list");
	sub.list = guard_place((const uint8_t *)"\x00\x01" "a", 3);
	sub.list_len = 3;
	mqtt_topics_begin(&it, &sub, true);
	CHECK(!mqtt_topics_next(&it, &k, &o), "list without options byte");
	mqtt_topics_begin(&it, &sub, false);
	CHECK(mqtt_topics_next(&it, &k, NULL) && str_is(&k, "a") &&
	      !mqtt_topics_next(&it, &k, NULL), "same list as unsubscribe");
	sub.list = guard_place((const uint8_t *)"\x00\x05" "a", 3);
	mqtt_topics_begin(&it, &sub, false);
	CHECK(!mqtt_topics_next(&it, &k, NULL), "filter longer than list");

	/*
	 * A property block too large for the protocol: 2048 user properties
	 * of 65535-byte key and value (131075 bytes each) are just over
	 * MQTT_MAX_REMAINING; 2047 fit. A sparse mapping: only the pages
	 * holding the triples' headers are touched, sizing reads nothing else.
	 */
	const size_t tri = 5 + 2 * 65535u, ntri = 2048;
	uint8_t *run = mmap(NULL, tri * ntri, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	CHECK(run != MAP_FAILED, "sparse mapping");
	if (run == MAP_FAILED)
		return;
	for (size_t i = 0; i < ntri; i++) {
		uint8_t *t3 = run + i * tri;

		t3[0] = MQTT_PROP_USER_PROPERTY;
		t3[1] = t3[2] = 0xFF;
		t3[3 + 65535] = t3[4 + 65535] = 0xFF;
	}
	CHECK(tri * ntri > MQTT_MAX_REMAINING &&
	      tri * (ntri - 1) <= MQTT_MAX_REMAINING, "sizes straddle the maximum");
	memset(&up, 0, sizeof up);
	MQTT_SET(&up, MQTT_PROP_USER_PROPERTY);
	up.user = run;
	up.user_len = (uint32_t)(tri * ntri);
	up.n_user = (uint16_t)ntri;
	CHECK(mqtt_props_size(&up) == 0 && mqtt_props_encode(&up, enc_buf, 16) == 0,
	      "props block over the protocol maximum");
	memset(&p, 0, sizeof p);
	p.type = MQTT_PUBLISH;
	p.u.publish.topic = S("t");
	p.u.publish.props = up;
	CHECK(mqtt_encoded_size(&p, MQTT_V5) == 0 &&
	      mqtt_encode(&p, MQTT_V5, enc_buf, sizeof enc_buf) == 0,
	      "publish with oversized props");
	CHECK(mqtt_encoded_size(&p, MQTT_V311) == 5, "v3 ignores the props");
	p.type = MQTT_PUBACK;
	p.u.ack.packet_id = 1;
	p.u.ack.props = up;
	CHECK(mqtt_encoded_size(&p, MQTT_V5) == 0, "puback with oversized props");
	p.type = MQTT_DISCONNECT;
	p.u.disconnect.props = up;
	CHECK(mqtt_encoded_size(&p, MQTT_V5) == 0, "disconnect with oversized props");
	up.user_len = (uint32_t)(tri * (ntri - 1));     /* one fewer: it fits */
	up.n_user = (uint16_t)(ntri - 1);
	CHECK(mqtt_props_size(&up) == tri * (ntri - 1) + 4, "props block just under");
	memset(&p, 0, sizeof p);
	p.type = MQTT_PUBLISH;
	p.u.publish.topic = S("t");
	p.u.publish.props = up;
	CHECK(mqtt_encoded_size(&p, MQTT_V5) == 1 + 4 + 3 + 4 + tri * (ntri - 1),
	      "publish just under the maximum");
	CHECK(mqtt_encode(&p, MQTT_V5, enc_buf, sizeof enc_buf) == 0,
	      "does not fit the buffer");
	munmap(run, tri * ntri);
}

/* ------------------------------------------------------------------ */
/* Mutations through the fuzz harness's round trip                       */
/* ------------------------------------------------------------------ */

static void test_mutations(void)
{
	static const char *seeds[] = {
		"10 17 00 04 4d 51 54 54 05 02 00 3c 08 11 00 00 00 0a 21 00 14 00 02 63 31",
		"10 22 00 04 4d 51 54 54 04 ee 00 0a 00 02 63 31 00 03 77 2f 74 00 03 62 79"
		" 65 00 04 75 73 65 72 00 02 70 77",
		"20 08 00 00 05 21 00 0a 24 01",
		"3b 07 00 01 78 00 0a 68 69",
		"30 18 00 01 74 14 26 00 01 61 00 01 62 02 00 00 00 05 26 00 01 63 00 02 64 64",
		"30 0b 00 01 74 07 0b 01 0b 80 01 0b 7f",
		"50 09 00 02 80 05 1f 00 02 6e 6f",
		"82 16 00 01 02 0b 05 00 0e 24 73 68 61 72 65 2f 67 2f 73 2f 2b 2f 23 2a",
		"90 06 00 0a 00 02 8f a2",
		"a2 0a 00 0b 00 03 61 2f 62 00 01 23",
		"b0 05 00 0b 00 00 11",
		"e0 07 00 05 11 00 00 00 00",
		"f0 0a 18 08 15 00 05 53 43 52 41 4d",
	};
	uint32_t seed = 99;
	int decoded = 0;

	for (unsigned s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
		struct bb *x = from_hex(seeds[s]);
		uint8_t m[128];

		for (unsigned it = 0; it < 3000; it++) {
			size_t n = x->n;

			memcpy(m, x->b, n);
			for (unsigned k = 0; k < 1 + it % 3; k++) {
				seed = seed * 1664525 + 1013904223;
				size_t pos = (seed >> 8) % n;

				switch ((seed >> 4) % 4) {
				case 0: m[pos] ^= (uint8_t)(1u << ((seed >> 20) % 8)); break;
				case 1: m[pos] = (uint8_t)(seed >> 24); break;
				case 2: if (n > 2) n--; break;
				case 3: if (n < sizeof m) m[n++] = (uint8_t)(seed >> 16); break;
				}
			}
			decoded += cc_roundtrip(guard_place(m, n), n);
		}
		bb_free(x);
	}
	CHECK(decoded > 1000, "mutations decoded only %d packets", decoded);
	printf("  mutations: %d decoded packets round-tripped\n", decoded);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	guard_init();

	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "varint", test_varint },
		{ "err_table", test_err_table },
		{ "utf8", test_utf8 },
		{ "topics", test_topics },
		{ "spec_vectors", test_spec_vectors },
		{ "malformed", test_malformed },
		{ "every_property", test_every_property },
		{ "roundtrip_connect", test_roundtrip_connect },
		{ "roundtrip_others", test_roundtrip_others },
		{ "encode_bytes", test_encode_bytes },
		{ "limits", test_limits },
		{ "mutations", test_mutations },
	};

	for (unsigned i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		int before = n_failed, checks = n_checks;
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		tests[i].fn();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("%s %s (%d checks, %ld ms)\n", n_failed == before ? "PASS" : "FAIL",
		       tests[i].name, n_checks - checks,
		       (long)((t1.tv_sec - t0.tv_sec) * 1000 +
			      (t1.tv_nsec - t0.tv_nsec) / 1000000));
	}
	printf("test_codec: %d checks, %d failed\n", n_checks, n_failed);
	return n_failed ? 1 : 0;
}
