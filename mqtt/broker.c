/*
 * The MQTT protocol engine: the shard_ops the runtime calls, CONNECT and
 * session takeover, and the handlers of every client packet of MQTT 3.1.1
 * and 5.0. A connection is served by the home shard of its client ID: when
 * a CONNECT arrives on another shard the connection is handed over before
 * anything is answered, so a client ID's session, takeover and resumption
 * are all local to one shard and need no lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqtt/binding.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/policy.h"
#include "mqtt/retain.h"
#include "mqtt/topic_tree.h"
#include "registry/cache.h"
#include "registry/registrar.h"
#include "tls/server.h"

static void count_add(_Atomic uint64_t *ctr, uint64_t n)
{
	atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* ---- closing ---- */

void mconn_close(struct shard *sh, struct mconn *mc, uint8_t reason, const char *why)
{
	if (!mc->c || mc->c->state != CONN_OPEN)
		return;
	mc->close_reason = reason;
	if (why && log_limit_ok(&sh->noisy, sh->now_ms, 20, 10000))
		log_info("closing %s (%s): %s", CONN_PEER(mc->c),
			 mc->s ? mc->s->client_id : "before CONNECT", why);
	if (mc->connected && reason >= 0x80)
		send_disconnect(sh, mc, reason, why);
	conn_close(sh, mc->c, true);
}

/* A protocol violation: v5 CONNACK (before the session) or DISCONNECT with
 * the reason code, then close; v3.1.1 just closes [MQTT-4.8.0-1]. */
static void protocol_error(struct shard *sh, struct mconn *mc, uint8_t reason, const char *why)
{
	if (!mc->connected && mc->version == MQTT_V5) {
		struct mqtt_packet p;
		memset(&p, 0, sizeof p);
		p.type = MQTT_CONNACK;
		p.u.connack.reason = reason;
		send_packet(sh, mc->c, &p, MQTT_V5);
	}
	mconn_close(sh, mc, reason, why);
}

static void connack_refuse(struct shard *sh, struct mconn *mc, uint8_t reason, const char *why)
{
	struct mqtt_packet p;
	memset(&p, 0, sizeof p);
	p.type = MQTT_CONNACK;
	p.u.connack.reason = reason;
	if (mc->version == MQTT_V5 && why && mc->problem_info) {
		MQTT_SET(&p.u.connack.props, MQTT_PROP_REASON_STRING);
		p.u.connack.props.reason_string.p = (const uint8_t *)why;
		p.u.connack.props.reason_string.len = (uint16_t)strlen(why);
	}
	send_packet(sh, mc->c, &p, mc->version);
	mconn_close(sh, mc, 0, why);
}

/* ---- CONNECT ---- */

static void handoff_done(struct shard *sh, struct conn *c)
{
	struct mconn *mc = c->upper;
	int to = mc->handoff_to;
	struct conn_xfer *x = malloc(sizeof *x);
	if (!x)
		return; /* not exported: the runtime closes it as usual */
	conn_export(sh, c, x);
	mc->c = NULL;
	mc->handoff = false;
	struct xmsg m = { .type = BX_HANDOFF, .p = x };
	if (shard_post_conn(sh, to, &m, x, route_discard_xmsg) != 0)
		route_discard_xmsg(&m);
}

static bool id_ok_here(struct bshard *bs, const char *id, size_t len)
{
	return route_home(bs, (const uint8_t *)id, len) == bs->sh->id;
}

/* An assigned client identifier whose home is this shard (no handover). */
static void assign_client_id(struct bshard *bs, char *out, size_t cap)
{
	static __thread uint64_t seq;
	do {
		seq++;
		snprintf(out, cap, "vouch-%d-%016llx", bs->sh->id,
			 (unsigned long long)(seq * 0x9E3779B97F4A7C15ull ^ bs->sh->now_ms));
	} while (!id_ok_here(bs, out, strlen(out)));
}

static void session_will_from_connect(struct bshard *bs, struct session *s,
				      const struct mqtt_connect *cp)
{
	if (s->will)
		vmsg_unref_mt(s->will);
	s->will = NULL;
	s->will_at_ms = 0;
	s->will_delay_s = 0;
	if (!cp->will)
		return;
	const struct mqtt_props *wp = cp->version == MQTT_V5 ? &cp->will_props : NULL;
	s->will = vmsg_new(cp->will_topic.p, cp->will_topic.len, wp, cp->will_payload.p,
			   cp->will_payload.len, cp->will_qos, cp->will_retain, s->sid,
			   bs->sh->now_ms);
	if (wp && MQTT_HAS(wp, MQTT_PROP_WILL_DELAY))
		s->will_delay_s = wp->will_delay;
}

/* Returns false when the connection was handed to another shard (the
 * CONNECT is then not consumed: the home shard reads it again). */
static bool handle_connect(struct shard *sh, struct mconn *mc, const struct mqtt_connect *cp)
{
	struct bshard *bs = bsh(sh);
	const struct vouch_config *cfg = sh->cfg;
	mc->version = cp->version;
	mc->problem_info = !(cp->version == MQTT_V5 &&
			     MQTT_HAS(&cp->props, MQTT_PROP_REQUEST_PROBLEM_INFO) &&
			     cp->props.request_problem_info == 0);
	if (cp->version == MQTT_V5 && MQTT_HAS(&cp->props, MQTT_PROP_AUTH_METHOD)) {
		connack_refuse(sh, mc, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication is not supported");
		return true;
	}
	/* The identity (client certificate, registry) is decided once, on the
	 * shard that accepted the connection, before the client ID is known
	 * to be final and before anything of a session is touched. */
	int ids = identity_decide(bs, mc);
	if (ids == ID_PENDING) {
		mc->version = 0; /* read again when the registrar answers */
		return false;
	}
	if (ids == ID_REFUSED) {
		connack_refuse(sh, mc, mc->id_refusal,
			       mc->id_refusal == MQTT_RC_CONNECTION_RATE_EXCEEDED
				       ? "too many new certificates right now, retry later"
				       : "certificate not authorized");
		return true;
	}
	char assigned[40];
	const uint8_t *cid = cp->client_id.p;
	uint16_t cid_len = cp->client_id.len;
	bool was_assigned = false;
	const char *cert_cid = mc->bound_id ? mc->bound_id : mc->cert_cn;
	if (cid_len == 0 && mc->has_cert && cert_cid) {
		/* the certificate's bound client ID, or else its CN */
		cid = (const uint8_t *)cert_cid;
		cid_len = (uint16_t)strlen(cert_cid);
		was_assigned = true;
	} else if (cid_len && mc->bound_id && !cfg->allow_clientid_mismatch &&
		   (cid_len != strlen(mc->bound_id) || memcmp(cid, mc->bound_id, cid_len) != 0)) {
		connack_refuse(sh, mc, MQTT_RC_CLIENTID_NOT_VALID,
			       "client ID differs from the certificate's bound client ID");
		return true;
	} else if (cid_len == 0) {
		if (cp->version == MQTT_V311 && !cp->clean) {
			/* [MQTT-3.1.3-8] */
			connack_refuse(sh, mc, MQTT_RC_CLIENTID_NOT_VALID,
				       "an empty client ID needs clean session");
			return true;
		}
		assign_client_id(bs, assigned, sizeof assigned);
		cid = (const uint8_t *)assigned;
		cid_len = (uint16_t)strlen(assigned);
		was_assigned = true;
	}
	int home = route_home(bs, cid, cid_len);
	if (home != sh->id) {
		mc->version = 0; /* the home shard reads the CONNECT again */
		mc->handoff = true;
		mc->handoff_to = (int16_t)home;
		if (conn_detach(sh, mc->c, handoff_done) != 0)
			mconn_close(sh, mc, 0, "cannot hand over");
		return false;
	}

	uint32_t ka = cp->keepalive;
	bool server_ka = false;
	if (cp->version == MQTT_V5 && (ka == 0 || ka > cfg->max_keepalive)) {
		ka = cfg->max_keepalive;
		server_ka = true;
	}
	mc->keepalive = (uint16_t)ka;

	if (!cfg->allow_clientid_mismatch && bind_refuses(bs, mc, cid, cid_len)) {
		/* bound to a certificate, connected or not: that device's alone */
		connack_refuse(sh, mc, MQTT_RC_CLIENTID_NOT_VALID,
			       "client ID is bound to another certificate");
		return true;
	}
	struct session *s = session_find(bs, cid, cid_len);
	if (s && s->bound && !cfg->allow_clientid_mismatch &&
	    (!mc->has_cert || memcmp(mc->cert_id, s->bound_cert, sizeof s->bound_cert) != 0)) {
		/* a client ID bound to a certificate is that device's alone:
		 * another identity neither takes over nor resumes its session */
		connack_refuse(sh, mc, MQTT_RC_CLIENTID_NOT_VALID,
			       "client ID is bound to another certificate");
		return true;
	}
	if (s && s->mc) {
		/* [MQTT-3.1.4-3] take the session over from the live connection */
		struct mconn *old = s->mc;
		log_info("client %s taken over by %s", s->client_id, CONN_PEER(mc->c));
		s->mc = NULL;
		old->s = NULL;
		old->clean_disconnect = true; /* its will is the session's: decided here */
		send_disconnect(sh, old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
		old->close_reason = MQTT_RC_SESSION_TAKEN_OVER;
		presence_post(bs, old, s->client_id, s->cid_len, false, PR_TAKEN_OVER);
		conn_close(sh, old->c, true);
	}
	bool present = false;
	if (s && (cp->clean || s->version != cp->version)) {
		session_end(bs, s); /* publishes a will still pending */
		s = NULL;
	} else if (s) {
		/* resumed before the will delay ran out: no will [MQTT-3.1.3-9] */
		if (s->will) {
			vmsg_unref_mt(s->will);
			s->will = NULL;
			s->will_at_ms = 0;
		}
		present = true;
	}
	if (!s) {
		s = session_new(bs, cid, cid_len);
		if (!s) {
			connack_refuse(sh, mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
			return true;
		}
	}
	s->mc = mc;
	mc->s = s;
	s->version = cp->version;
	s->bound = mc->has_cert && mc->bound_id && strlen(mc->bound_id) == s->cid_len &&
		   memcmp(mc->bound_id, s->client_id, s->cid_len) == 0;
	if (s->bound)
		memcpy(s->bound_cert, mc->cert_id, sizeof s->bound_cert);
	s->expire_at_ms = 0;
	if (cp->version == MQTT_V5) {
		s->expiry_s = MQTT_HAS(&cp->props, MQTT_PROP_SESSION_EXPIRY) ? cp->props.session_expiry : 0;
		s->client_recv_max = MQTT_HAS(&cp->props, MQTT_PROP_RECEIVE_MAXIMUM) ? cp->props.receive_maximum : 65535;
		s->client_max_packet = MQTT_HAS(&cp->props, MQTT_PROP_MAXIMUM_PACKET_SIZE) ? cp->props.max_packet_size : 268435460u;
		s->client_alias_max = MQTT_HAS(&cp->props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM) ? cp->props.topic_alias_maximum : 0;
		mc->server_alias_max = cfg->topic_alias_maximum;
	} else {
		s->expiry_s = cp->clean ? 0 : UINT32_MAX;
		s->client_recv_max = 65535;
		s->client_max_packet = 268435460u;
		s->client_alias_max = 0;
		mc->server_alias_max = 0;
	}
	session_will_from_connect(bs, s, cp);
	policy_connect(bs, mc, s, present);

	struct mqtt_packet p;
	memset(&p, 0, sizeof p);
	p.type = MQTT_CONNACK;
	p.u.connack.session_present = present;
	p.u.connack.reason = 0;
	if (cp->version == MQTT_V5) {
		struct mqtt_props *pr = &p.u.connack.props;
		MQTT_SET(pr, MQTT_PROP_RECEIVE_MAXIMUM);
		pr->receive_maximum = (uint16_t)cfg->receive_maximum;
		MQTT_SET(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE);
		pr->max_packet_size = cfg->max_packet_size;
		if (cfg->topic_alias_maximum) {
			MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
			pr->topic_alias_maximum = (uint16_t)cfg->topic_alias_maximum;
		}
		MQTT_SET(pr, MQTT_PROP_RETAIN_AVAILABLE);
		pr->retain_available = 1;
		MQTT_SET(pr, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
		pr->wildcard_sub_available = 1;
		MQTT_SET(pr, MQTT_PROP_SUB_ID_AVAILABLE);
		pr->sub_id_available = 1;
		MQTT_SET(pr, MQTT_PROP_SHARED_SUB_AVAILABLE);
		pr->shared_sub_available = 1;
		if (was_assigned) {
			MQTT_SET(pr, MQTT_PROP_ASSIGNED_CLIENT_ID);
			pr->assigned_client_id.p = (const uint8_t *)s->client_id;
			pr->assigned_client_id.len = s->cid_len;
		}
		if (server_ka) {
			MQTT_SET(pr, MQTT_PROP_SERVER_KEEPALIVE);
			pr->server_keepalive = (uint16_t)ka;
		}
	}
	send_packet(sh, mc->c, &p, cp->version);
	mc->connected = true;
	mc->last_rx_ms = sh->now_ms;
	presence_post(bs, mc, s->client_id, s->cid_len, true, 0);
	log_info("client %s connected on shard %d from %s (MQTT %s%s)", s->client_id, sh->id,
		 CONN_PEER(mc->c), cp->version == MQTT_V5 ? "5.0" : "3.1.1",
		 present ? ", session resumed" : "");
	if (ka)
		shard_timer(sh, sh->now_ms + (uint64_t)ka * 1500u, BT_KEEPALIVE, mc->c->slot, mc->c->gen);
	if (present)
		session_resend(bs, s);
	return true;
}

/* ---- PUBLISH and acks ---- */

static bool is_sys_topic(const uint8_t *t, size_t len)
{
	return len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/');
}

static int qos2_find(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->n_qos2_in; i++)
		if (s->qos2_in[i] == pid)
			return (int)i;
	return -1;
}

static void handle_publish(struct shard *sh, struct mconn *mc, const struct mqtt_publish *pp)
{
	struct bshard *bs = bsh(sh);
	struct session *s = mc->s;
	const struct vouch_config *cfg = sh->cfg;
	const uint8_t *topic = pp->topic.p;
	uint16_t tlen = pp->topic.len;
	count_add(&sh->stats.msgs_in, 1);
	if (mc->version == MQTT_V5) {
		if (MQTT_HAS(&pp->props, MQTT_PROP_SUBSCRIPTION_ID)) {
			protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "subscription identifier in PUBLISH");
			return;
		}
		if (MQTT_HAS(&pp->props, MQTT_PROP_TOPIC_ALIAS)) {
			uint16_t a = pp->props.topic_alias;
			/* [MQTT-3.3.2-9] [MQTT-3.3.2-10] */
			if (a == 0 || a > mc->server_alias_max) {
				protocol_error(sh, mc, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
				return;
			}
			if (!mc->alias_in) {
				mc->alias_in = calloc((size_t)mc->server_alias_max + 1, sizeof *mc->alias_in);
				mc->alias_in_len = calloc((size_t)mc->server_alias_max + 1, sizeof *mc->alias_in_len);
				if (!mc->alias_in || !mc->alias_in_len) {
					protocol_error(sh, mc, MQTT_RC_UNSPECIFIED, "out of memory");
					return;
				}
			}
			if (tlen) {
				char *copy = malloc(tlen);
				if (!copy) {
					protocol_error(sh, mc, MQTT_RC_UNSPECIFIED, "out of memory");
					return;
				}
				memcpy(copy, topic, tlen);
				free(mc->alias_in[a]);
				mc->alias_in[a] = copy;
				mc->alias_in_len[a] = tlen;
			} else if (!mc->alias_in[a]) {
				protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
				return;
			} else {
				topic = (const uint8_t *)mc->alias_in[a];
				tlen = mc->alias_in_len[a];
			}
		}
	}
	if (tlen == 0) {
		protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "empty topic without alias");
		return;
	}
	uint8_t ack = pp->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
	uint64_t wait = 0;
	if (pp->qos == 2) {
		if (qos2_find(s, pp->packet_id) >= 0) {
			/* a resend of one we have: acknowledge, never deliver twice */
			puback_send(bs, mc, MQTT_PUBREC, pp->packet_id, 0, NULL, 0);
			return;
		}
		/* [MQTT-3.3.4-7] receive maximum */
		if (s->n_qos2_in >= cfg->receive_maximum) {
			protocol_error(sh, mc, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
			return;
		}
	}
	if (mc->version == MQTT_V5 && MQTT_HAS(&pp->props, MQTT_PROP_PAYLOAD_FORMAT) &&
	    pp->props.payload_format == 1 && !mqtt_utf8_valid(pp->payload, pp->payload_len)) {
		if (pp->qos)
			puback_send(bs, mc, ack, pp->packet_id, MQTT_RC_PAYLOAD_FORMAT_INVALID,
				    "payload is not UTF-8", 0);
		return;
	}
	/* Authorization (mqtt/policy.c). v5: PUBACK/PUBREC 0x87. v3.1.1 has
	 * no negative acknowledgement: QoS 1/2 are acknowledged as usual
	 * (QoS 2 completes its PUBREL/PUBCOMP) and nothing is delivered. */
	bool allowed = policy_may_publish(mc, topic, tlen);
	if (!allowed && (mc->version == MQTT_V5 || pp->qos == 0)) {
		if (pp->qos)
			puback_send(bs, mc, ack, pp->packet_id, MQTT_RC_NOT_AUTHORIZED,
				    is_sys_topic(topic, tlen) ? "$SYS topics are the broker's"
							      : "not authorized by policy", 0);
		return;
	}
	if (allowed && provision_is_topic(topic, tlen)) {    /* mqtt/provision.c */
		uint8_t prc = provision_request(bs, mc, pp);

		if (pp->qos)
			puback_send(bs, mc, ack, pp->packet_id, mc->version == MQTT_V5 ? prc : 0,
				    prc ? "provisioning request refused" : NULL, 0);
		return;
	}
	if (allowed) {
		struct vmsg *m = vmsg_new(topic, tlen, mc->version == MQTT_V5 ? &pp->props : NULL,
					  pp->payload, pp->payload_len, pp->qos, pp->retain, s->sid,
					  sh->now_ms);
		if (!m) {
			if (pp->qos)
				puback_send(bs, mc, ack, pp->packet_id, MQTT_RC_UNSPECIFIED,
					    "out of memory", 0);
			return;
		}
		/* QoS 1/2: acknowledged once the other shards have it (puback.c) */
		wait = route_publish(bs, m, pp->qos ? mc->c : NULL);
		vmsg_unref_mt(m);
	}
	if (pp->qos == 1) {
		puback_send(bs, mc, MQTT_PUBACK, pp->packet_id, 0, NULL, wait);
	} else if (pp->qos == 2) {
		if (s->n_qos2_in == s->cap_qos2_in) {
			uint32_t nc = s->cap_qos2_in ? s->cap_qos2_in * 2 : 8;
			uint16_t *nv = realloc(s->qos2_in, nc * sizeof *nv);
			if (!nv) {
				protocol_error(sh, mc, MQTT_RC_UNSPECIFIED, "out of memory");
				return;
			}
			s->qos2_in = nv;
			s->cap_qos2_in = nc;
		}
		s->qos2_in[s->n_qos2_in++] = pp->packet_id;
		puback_send(bs, mc, MQTT_PUBREC, pp->packet_id, 0, NULL, wait);
	}
}

static void handle_pubrel(struct shard *sh, struct mconn *mc, uint16_t pid)
{
	struct session *s = mc->s;
	int i = qos2_find(s, pid);
	if (i < 0) {
		send_ack(sh, mc, MQTT_PUBCOMP, pid, MQTT_RC_PACKET_ID_NOT_FOUND, "unknown packet identifier");
		return;
	}
	s->qos2_in[i] = s->qos2_in[--s->n_qos2_in];
	send_ack(sh, mc, MQTT_PUBCOMP, pid, 0, NULL);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static void handle_subscribe(struct shard *sh, struct mconn *mc, const struct mqtt_subscribe *sp)
{
	struct bshard *bs = bsh(sh);
	struct session *s = mc->s;
	uint32_t sub_id = 0;
	if (mc->version == MQTT_V5 && MQTT_HAS(&sp->props, MQTT_PROP_SUBSCRIPTION_ID))
		sub_id = sp->props.sub_ids[0];
	uint8_t *codes = malloc(sp->count ? sp->count : 1);
	uint8_t *flags = malloc(sp->count ? sp->count : 1);
	if (!codes || !flags) {
		free(codes);
		free(flags);
		protocol_error(sh, mc, MQTT_RC_UNSPECIFIED, "out of memory");
		return;
	}
	struct mqtt_topics_iter it;
	struct mqtt_str f;
	uint8_t opts;
	uint16_t i = 0;
	mqtt_topics_begin(&it, sp, true);
	while (i < sp->count && mqtt_topics_next(&it, &f, &opts)) {
		if (mc->version != MQTT_V5)
			opts &= 0x03;
		flags[i] = 0;
		int shared = tt_parse_shared((const char *)f.p, f.len, NULL, NULL, NULL, NULL);
		if (shared == 1 && (opts & MQTT_SUBOPT_NO_LOCAL)) {
			/* [MQTT-3.8.3-4] */
			free(codes);
			free(flags);
			protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "no-local on a shared subscription");
			return;
		}
		/* authorization: refused, or allowed with or without a
		 * per-message receive check (mqtt/policy.c) */
		int pd = shared < 0 ? 0 : policy_sub_check(mc, f.p, f.len);
		if (pd < 0) {
			codes[i++] = mc->version == MQTT_V5 ? (uint8_t)sh->cfg->deny_subscribe_code
							    : MQTT_RC_UNSPECIFIED;
			continue;
		}
		int rc = shared < 0 ? -EINVAL
				    : route_subscribe(bs, s, (const char *)f.p, f.len,
						      (uint8_t)(opts | pd), sub_id);
		if (rc == -EINVAL)
			codes[i] = MQTT_RC_TOPIC_FILTER_INVALID;
		else if (rc < 0)
			codes[i] = MQTT_RC_UNSPECIFIED;
		else {
			codes[i] = MQTT_SUBOPT_QOS(opts);
			flags[i] = (uint8_t)(rc | (shared == 1 ? 0x80 : 0) | pd);
		}
		i++;
	}
	struct mqtt_packet p;
	memset(&p, 0, sizeof p);
	p.type = MQTT_SUBACK;
	p.u.suback.packet_id = sp->packet_id;
	p.u.suback.codes = codes;
	p.u.suback.count = i;
	send_packet(sh, mc->c, &p, mc->version);
	/* retained messages after the SUBACK [MQTT-3.3.1-9], never for shared
	 * subscriptions [MQTT-4.8.2-?] */
	mqtt_topics_begin(&it, sp, true);
	for (uint16_t k = 0; k < i && mqtt_topics_next(&it, &f, &opts); k++) {
		if (codes[k] >= 0x80 || (flags[k] & 0x80))
			continue;
		if (mc->version != MQTT_V5)
			opts &= 0x03;
		uint8_t rh = MQTT_SUBOPT_RETAIN_HANDLING(opts);
		if (rh == 0 || (rh == 1 && (flags[k] & TT_CREATED)))
			route_retained(bs, s, (const char *)f.p, f.len,
				       (uint8_t)(opts | (flags[k] & POL_SUB_RECV_CHECK)), sub_id);
	}
	free(codes);
	free(flags);
}

static void handle_unsubscribe(struct shard *sh, struct mconn *mc, const struct mqtt_subscribe *up)
{
	struct bshard *bs = bsh(sh);
	uint8_t *codes = malloc(up->count ? up->count : 1);
	if (!codes) {
		protocol_error(sh, mc, MQTT_RC_UNSPECIFIED, "out of memory");
		return;
	}
	struct mqtt_topics_iter it;
	struct mqtt_str f;
	uint16_t i = 0;
	mqtt_topics_begin(&it, up, false);
	while (i < up->count && mqtt_topics_next(&it, &f, NULL)) {
		int rc = route_unsubscribe(bs, mc->s, (const char *)f.p, f.len);
		codes[i++] = rc == 0 ? 0 : rc == -ENOENT ? MQTT_RC_NO_SUBSCRIPTION_EXISTED
							 : MQTT_RC_UNSPECIFIED;
	}
	struct mqtt_packet p;
	memset(&p, 0, sizeof p);
	p.type = MQTT_UNSUBACK;
	p.u.suback.packet_id = up->packet_id;
	p.u.suback.codes = codes;
	p.u.suback.count = i;
	send_packet(sh, mc->c, &p, mc->version);
	free(codes);
}

static void handle_disconnect(struct shard *sh, struct mconn *mc, const struct mqtt_disconnect *dp)
{
	struct session *s = mc->s;
	uint8_t reason = mc->version == MQTT_V5 ? dp->reason : 0;
	if (mc->version == MQTT_V5 && MQTT_HAS(&dp->props, MQTT_PROP_SESSION_EXPIRY)) {
		if (s->expiry_s == 0 && dp->props.session_expiry != 0) {
			/* [MQTT-3.14.2-2] */
			protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "session expiry set after 0");
			return;
		}
		s->expiry_s = dp->props.session_expiry;
	}
	if (reason == MQTT_RC_DISCONNECT_WITH_WILL) {
		mc->clean_disconnect = false;
	} else {
		/* [MQTT-3.14.4-3] a normal DISCONNECT discards the will */
		if (s->will) {
			vmsg_unref_mt(s->will);
			s->will = NULL;
		}
		mc->clean_disconnect = true;
	}
	mc->close_reason = reason;
	mc->got_disconnect = true;
	conn_close(sh, mc->c, true);
}

/* ---- input ---- */

/* The protocol level of a CONNECT the codec refused, for the answer. */
static int connect_level(const uint8_t *p, size_t n)
{
	uint8_t type, flags;
	uint32_t rem;
	int h = mqtt_fixed_header(p, n, &type, &flags, &rem);
	if (h <= 0 || (size_t)h + 2 > n)
		return -1;
	size_t nl = (size_t)p[h] << 8 | p[h + 1];
	size_t at = (size_t)h + 2 + nl;
	return at < n ? p[at] : -1;
}

static void decode_error(struct shard *sh, struct mconn *mc, enum mqtt_err err,
			 const uint8_t *p, size_t n, const struct mqtt_packet *pkt)
{
	uint8_t reason = mqtt_err_reason(err);
	if (!mc->connected) {
		if (pkt->type != MQTT_CONNECT) {
			mconn_close(sh, mc, 0, "first packet is not CONNECT");
			return;
		}
		int level = connect_level(p, n);
		if (err == MQTT_ERR_PROTOCOL_VERSION) {
			/* [MQTT-3.1.2-2] */
			mc->version = level >= MQTT_V5 ? MQTT_V5 : MQTT_V311;
			connack_refuse(sh, mc, MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol version");
			return;
		}
		if (level == MQTT_V5) {
			mc->version = MQTT_V5;
			connack_refuse(sh, mc, reason, mqtt_err_str(err));
			return;
		}
		mconn_close(sh, mc, 0, mqtt_err_str(err));
		return;
	}
	protocol_error(sh, mc, reason, mqtt_err_str(err));
}

/* Returns false when the packet was not consumed (connection handed over). */
static bool handle_packet(struct shard *sh, struct mconn *mc, const struct mqtt_packet *pkt)
{
	if (!mc->connected && pkt->type != MQTT_CONNECT) {
		/* [MQTT-3.1.0-1] */
		mconn_close(sh, mc, 0, "first packet is not CONNECT");
		return true;
	}
	switch (pkt->type) {
	case MQTT_CONNECT:
		if (mc->connected) {
			/* [MQTT-3.1.0-2] */
			protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
			return true;
		}
		return handle_connect(sh, mc, &pkt->u.connect);
	case MQTT_PUBLISH:
		handle_publish(sh, mc, &pkt->u.publish);
		return true;
	case MQTT_PUBACK:
		session_on_puback(bsh(sh), mc->s, pkt->u.ack.packet_id);
		return true;
	case MQTT_PUBREC:
		session_on_pubrec(bsh(sh), mc->s, pkt->u.ack.packet_id, pkt->u.ack.reason);
		return true;
	case MQTT_PUBREL:
		handle_pubrel(sh, mc, pkt->u.ack.packet_id);
		return true;
	case MQTT_PUBCOMP:
		session_on_pubcomp(bsh(sh), mc->s, pkt->u.ack.packet_id);
		return true;
	case MQTT_SUBSCRIBE:
		handle_subscribe(sh, mc, &pkt->u.subscribe);
		return true;
	case MQTT_UNSUBSCRIBE:
		handle_unsubscribe(sh, mc, &pkt->u.subscribe);
		return true;
	case MQTT_PINGREQ: {
		static const uint8_t pingresp[2] = { MQTT_PINGRESP << 4, 0 };
		conn_write(sh, mc->c, pingresp, 2);
		return true;
	}
	case MQTT_DISCONNECT:
		handle_disconnect(sh, mc, &pkt->u.disconnect);
		return true;
	default:
		/* server-to-client packets, and AUTH without enhanced auth */
		protocol_error(sh, mc, MQTT_RC_PROTOCOL_ERROR, "unexpected packet type");
		return true;
	}
}

static uint32_t on_input(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n)
{
	struct mconn *mc = c->upper;
	if (!mc)
		return n;
	mc->last_rx_ms = sh->now_ms;
	uint32_t used = 0;
	while (used < n && c->state == CONN_OPEN) {
		struct mqtt_packet pkt;
		memset(&pkt, 0, sizeof pkt.type);
		pkt.type = 0;
		ssize_t r = mqtt_decode(p + used, n - used, mc->version, sh->cfg->max_packet_size, &pkt);
		if (r == 0)
			break;
		if (r < 0) {
			decode_error(sh, mc, (enum mqtt_err)-r, p + used, n - used, &pkt);
			return n;
		}
		if (pkt.type == MQTT_PUBLISH && shard_backlogged(sh)) {
			/* other shards are behind: read no more messages
			 * until they catch up (this one is read again then) */
			conn_wait_backlog(sh, c);
			return used;
		}
		if (pkt.type == MQTT_PUBLISH && puback_full(sh, mc)) {
			/* a window of unacknowledged messages (puback.c) */
			puback_wait(sh, mc);
			return used;
		}
		if (!handle_packet(sh, mc, &pkt))
			return used;
		used += (uint32_t)r;
	}
	return c->state == CONN_OPEN ? used : n;
}

/* ---- lifecycle ---- */

static void on_open(struct shard *sh, struct conn *c)
{
	struct mconn *mc = c->upper;
	if (!mc) {
		mc = calloc(1, sizeof *mc);
		if (!mc) {
			conn_close(sh, c, false);
			return;
		}
		c->upper = mc;
	}
	mc->c = c;
	mc->last_rx_ms = sh->now_ms;
	struct vouch_app *app = sh->rt->app;
	if (!c->tr && sh->cfg->listeners[c->listener].tls) {
		if (!app || !app->tls || tls_conn_start(sh, c, app->tls) != 0) {
			conn_close(sh, c, false);
			return;
		}
	}
	shard_timer(sh, c->opened_ms + (uint64_t)sh->cfg->connect_timeout * 1000u, BT_CONNECT,
		    c->slot, c->gen);
}

/* every connection has both: keep them in the size classes they were
 * laid out for (broker-t.h) */
_Static_assert(sizeof(struct session) <= 256, "struct session grew past 256 bytes");
_Static_assert(sizeof(struct mconn) <= 192, "struct mconn grew past 192 bytes");

static void alias_free(void *v) { free(v); }

static void mconn_free(struct mconn *mc)
{
	if (mc->alias_in) {
		for (uint32_t i = 0; i <= mc->server_alias_max; i++)
			free(mc->alias_in[i]);
		free(mc->alias_in);
	}
	free(mc->alias_in_len);
	free(mc->bound_id);
	free(mc->cert_cn);
	puback_free(mc);
	if (mc->alias_out.key_of) {
		uint32_t it = 0;
		void *v;
		while ((v = hmap_next(&mc->alias_out, &it)))
			alias_free(v);
		hmap_free(&mc->alias_out);
	}
	free(mc);
}

static void on_closed(struct shard *sh, struct conn *c)
{
	struct mconn *mc = c->upper;
	c->upper = NULL;
	if (!mc)
		return;
	struct bshard *bs = bsh(sh);
	struct session *s = mc->s;
	if (s && mc->connected) /* presence_post decides whether it is worth a message */
		presence_post(bs, mc, s->client_id, s->cid_len, false, presence_reason(sh, mc));
	if (s && s->mc == mc) {
		s->mc = NULL;
		log_info("client %s disconnected%s", s->client_id,
			 mc->clean_disconnect ? "" : " without DISCONNECT");
		if (s->will && !mc->clean_disconnect) {
			/* [MQTT-3.1.2-8]: due after the will delay or when the
			 * session ends, whichever is first */
			uint32_t delay = s->will_delay_s < s->expiry_s ? s->will_delay_s : s->expiry_s;
			if (delay == 0 || sh->stopping) {
				session_publish_will(bs, s);
			} else {
				s->will_at_ms = sh->now_ms + (uint64_t)delay * 1000u;
				shard_timer(sh, s->will_at_ms, BT_WILL, s->slot, s->gen);
			}
		}
		if (s->expiry_s == 0 || sh->stopping) {
			session_end(bs, s);
		} else if (s->expiry_s != UINT32_MAX) {
			s->expire_at_ms = sh->now_ms + (uint64_t)s->expiry_s * 1000u;
			shard_timer(sh, s->expire_at_ms, BT_SESSION, s->slot, s->gen);
		}
	}
	mconn_free(mc);
}

static void on_timer(struct shard *sh, const struct timer_ent *t)
{
	struct bshard *bs = bsh(sh);
	switch (t->kind) {
	case BT_CONNECT: {
		struct conn *c = shard_conn(sh, t->id, t->gen);
		struct mconn *mc = c ? c->upper : NULL;
		if (mc && !mc->connected && !mc->handoff)
			mconn_close(sh, mc, 0, "no CONNECT within --connect-timeout");
		break;
	}
	case BT_KEEPALIVE: {
		struct conn *c = shard_conn(sh, t->id, t->gen);
		struct mconn *mc = c ? c->upper : NULL;
		if (!mc || !mc->connected || !mc->keepalive)
			break;
		uint64_t deadline = mc->last_rx_ms + (uint64_t)mc->keepalive * 1500u;
		if (c->input_paused) /* we are not reading: not the client's fault */
			deadline = sh->now_ms + (uint64_t)mc->keepalive * 1500u;
		if (sh->now_ms >= deadline)
			mconn_close(sh, mc, MQTT_RC_KEEPALIVE_TIMEOUT, "keep-alive timeout");
		else
			shard_timer(sh, deadline, BT_KEEPALIVE, t->id, t->gen);
		break;
	}
	case BT_SESSION: {
		struct session *s = session_by_slot(bs, t->id, t->gen);
		if (s && !s->mc && s->expire_at_ms && sh->now_ms >= s->expire_at_ms)
			session_end(bs, s);
		break;
	}
	case BT_WILL: {
		struct session *s = session_by_slot(bs, t->id, t->gen);
		if (s && !s->mc && s->will && s->will_at_ms && sh->now_ms >= s->will_at_ms)
			session_publish_will(bs, s);
		break;
	}
	case BT_SYS:
		sys_tick(bs);
		shard_timer(sh, sh->now_ms + (uint64_t)sh->cfg->sys_interval * 1000u, BT_SYS, 0, 0);
		break;
	case BT_PRESENCE:
		presence_wake(bs);
		break;
	}
}

static void on_xmsg(struct shard *sh, const struct xmsg *m)
{
	if (m->type == BX_HANDOFF) {
		struct conn_xfer *x = m->p;
		shard_adopt(sh, x);
		free(x);
		return;
	}
	if (m->type == RX_POLICY) {
		policy_on_xmsg(bsh(sh), m);
		return;
	}
	if (m->type >= RX_SIGNUP_DONE) {
		identity_on_xmsg(bsh(sh), m);
		return;
	}
	if (m->type == BX_CONFIRM) {
		puback_on_confirm(bsh(sh), (int)m->a, m->c);
		return;
	}
	route_on_xmsg(bsh(sh), m);
}

static void on_turn_end(struct shard *sh)
{
	sessions_pump_listed(bsh(sh));
	puback_turn_end(bsh(sh));
}

static void on_start(struct shard *sh)
{
	struct bshard *bs = calloc(1, sizeof *bs);
	if (!bs)
		abort(); /* start-up: nothing to lose yet */
	bs->sh = sh;
	bs->local = tt_new();
	bs->summary = tt_new();
	bs->retained = rt_new();
	bs->fp = calloc(1, sizeof *bs->fp);
	if (!bs->local || !bs->summary || !bs->retained || !bs->fp || fp_init(bs->fp, 1024) != 0 ||
	    puback_shard_start(bs) != 0)
		abort();
	sh->upper = bs;
	identity_shard_start(bs);
	policy_shard_start(bs);
	bind_shard_start(bs);
	if (sh->id == 0) {
		sys_tick(bs);
		shard_timer(sh, sh->now_ms + (uint64_t)sh->cfg->sys_interval * 1000u, BT_SYS, 0, 0);
	}
}

static void retained_release(void *v) { vmsg_unref_mt(v); }

static void on_stop(struct shard *sh)
{
	struct bshard *bs = bsh(sh);
	/* Connections are gone; free the sessions left without telling the
	 * other shards (they are stopping too). */
	for (uint32_t i = 0; i < bs->n_sess_slots; i++) {
		struct session *s = bs->sess_slots[i];
		if (!s)
			continue;
		for (uint32_t k = 0; k < s->n_subs; k++)
			free(s->subs[k].filter);
		free(s->subs);
		dring_free(&s->inflight);
		dring_free(&s->queue);
		free(s->qos2_in);
		if (s->will)
			vmsg_unref_mt(s->will);
		pol_conn_clear(&s->pol);
		free(s->client_id);
		free(s);
	}
	free(bs->sess_slots);
	free(bs->sess_free);
	hmap_free(&bs->sessions);
	tt_free(bs->local);
	tt_free(bs->summary);
	rt_free(bs->retained, retained_release);
	free(bs->shares);
	free(bs->agg);
	free(bs->route_keys);
	puback_shard_stop(bs);
	fp_free(bs->fp);
	free(bs->fp);
	policy_shard_stop(bs);
	bind_shard_stop(bs);
	free(bs);
	sh->upper = NULL;
	tls_thread_exit(); /* wolfCrypt's per-thread caches */
}

static void on_shutdown(struct shard *sh, int phase)
{
	struct bshard *bs = bsh(sh);
	if (phase == 1) {
		/* wills of clients that did not disconnect, and delayed ones:
		 * every session ends with the broker */
		for (uint32_t i = 0; i < bs->n_sess_slots; i++) {
			struct session *s = bs->sess_slots[i];
			if (s && s->will && (s->will_at_ms || s->mc))
				session_publish_will(bs, s);
		}
		return;
	}
	for (uint32_t i = 0; i < sh->n_slots; i++) {
		struct conn *c = sh->conns[i];
		struct mconn *mc = c ? c->upper : NULL;
		if (mc && mc->connected) {
			send_disconnect(sh, mc, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
			mc->clean_disconnect = true;
		}
	}
}

const struct shard_ops broker_ops = {
	.on_start = on_start,
	.on_stop = on_stop,
	.on_open = on_open,
	.on_input = on_input,
	.on_closed = on_closed,
	.on_xmsg = on_xmsg,
	.on_timer = on_timer,
	.on_turn_end = on_turn_end,
	.release_ref = vmsg_release_ref_mt,
	.on_shutdown = on_shutdown,
};
