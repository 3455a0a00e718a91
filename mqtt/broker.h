/*
 * The MQTT broker layer on top of the shard runtime. Every function here
 * runs on the thread of the shard it is given (bs / sh) unless its name
 * ends in _mt.
 */
#ifndef VOUCH_MQTT_BROKER_H
#define VOUCH_MQTT_BROKER_H

#include "core/shard.h"
#include "mqtt/broker-t.h"

/* The shard_ops that vouchd's main() hands to rt_init. */
extern const struct shard_ops broker_ops;

static inline struct bshard *bsh(struct shard *sh) { return sh->upper; }

/* ---- msg.c: shared messages ---- */

/* A new message with one reference. props may be NULL (v3.1.1); only the
 * properties that travel with a message are kept (payload format, content
 * type, response topic, correlation data, user properties; the message
 * expiry becomes expire_at_ms). NULL on -ENOMEM. */
struct vmsg *vmsg_new(const uint8_t *topic, uint32_t tlen, const struct mqtt_props *props,
		      const uint8_t *payload, uint32_t plen, uint8_t qos, bool retain,
		      uint64_t origin, uint64_t now_ms);
/* Reference counting; any thread (_mt: the count is atomic). */
void vmsg_ref_mt(struct vmsg *m);
void vmsg_unref_mt(struct vmsg *m);
void vmsg_release_ref_mt(void *ref);
/* Encode and queue a PUBLISH of d->m to mc's connection. Returns 0, or
 * -EMSGSIZE when it exceeds the client's Maximum Packet Size (dropped),
 * -ETIME when the message expired, -ENOMEM. */
int send_publish(struct shard *sh, struct mconn *mc, const struct delivery *d, bool dup);
/* Small control packets. */
int send_ack(struct shard *sh, struct mconn *mc, uint8_t type, uint16_t pid, uint8_t reason,
	     const char *reason_str);
int send_disconnect(struct shard *sh, struct mconn *mc, uint8_t reason, const char *reason_str);
int send_packet(struct shard *sh, struct conn *c, const struct mqtt_packet *p, uint8_t version);

/* ---- session.c ---- */
struct session *session_new(struct bshard *bs, const uint8_t *cid, uint16_t len);
struct session *session_find(struct bshard *bs, const uint8_t *cid, uint16_t len);
/* End a session: unsubscribe everything, drop what is queued, publish a
 * pending will, free it. */
void session_end(struct bshard *bs, struct session *s);
struct session *session_by_slot(struct bshard *bs, uint32_t slot, uint32_t gen);
/* Hand a message to a session: sent now, queued, or dropped (counted). */
void session_deliver(struct bshard *bs, struct session *s, struct vmsg *m, uint8_t qos,
		     bool retain, const uint32_t *sub_ids, uint8_t n_sub_ids);
/* Send what the in-flight window and the socket allow. */
void session_pump(struct bshard *bs, struct session *s);
/* On reconnect: resend in-flight PUBLISH (DUP) and PUBREL, then pump. */
void session_resend(struct bshard *bs, struct session *s);
/* Acks from the client. */
void session_on_puback(struct bshard *bs, struct session *s, uint16_t pid);
void session_on_pubrec(struct bshard *bs, struct session *s, uint16_t pid, uint8_t reason);
void session_on_pubcomp(struct bshard *bs, struct session *s, uint16_t pid);
void session_publish_will(struct bshard *bs, struct session *s);
void sessions_pump_listed(struct bshard *bs);
void dring_free(struct dring *r);

/* ---- puback.c: QoS 1/2 acknowledgements after routing ---- */
int puback_shard_start(struct bshard *bs);
void puback_shard_stop(struct bshard *bs);
/* Note that a ROUTE for c's message goes to shard `to` asking for
 * confirmation; false (out of memory): do not ask. */
bool puback_ask(struct bshard *bs, int to, const struct conn *c);
/* The ROUTE just asked for could not be posted after all. */
void puback_unask(struct bshard *bs, int to);
/* A ROUTE_CONFIRM ROUTE from shard `origin` has been delivered here. */
void puback_owe(struct bshard *bs, int origin);
/* Posts the confirmations owed (once a turn). */
void puback_turn_end(struct bshard *bs);
/* BX_CONFIRM: shard `from` delivered `count` more of the ROUTEs asked. */
void puback_on_confirm(struct bshard *bs, int from, uint64_t count);
/* Sends a PUBACK/PUBREC in its turn: once the shards in `wait` have
 * confirmed and every earlier acknowledgement of mc has been sent. */
void puback_send(struct bshard *bs, struct mconn *mc, uint8_t type, uint16_t pid, uint8_t reason,
		 const char *why, uint64_t wait);
/* --receive-maximum acknowledgements wait: read no more PUBLISHes ... */
bool puback_full(const struct shard *sh, const struct mconn *mc);
/* ... pause mc's input until half of them have been sent. */
void puback_wait(struct shard *sh, struct mconn *mc);
void puback_free(struct mconn *mc);

/* ---- route.c ---- */
/* Publish a message broker-wide (retain bookkeeping, summary match,
 * local delivery and posts to other shards). Takes no reference of m.
 * With a publisher connection, the other shards are asked to confirm
 * delivery (puback.c); returns the mask of those that will. */
uint64_t route_publish(struct bshard *bs, struct vmsg *m, const struct conn *publisher);
/* Subscription bookkeeping: local tree + summary broadcast. Returns the
 * tt flags or -errno. */
int route_subscribe(struct bshard *bs, struct session *s, const char *filter, uint16_t len,
		    uint8_t options, uint32_t sub_id);
int route_unsubscribe(struct bshard *bs, struct session *s, const char *filter, uint16_t len);
/* Retained messages for a new subscription. */
void route_retained(struct bshard *bs, struct session *s, const char *filter, uint16_t len,
		    uint8_t options, uint32_t sub_id);
void route_on_xmsg(struct bshard *bs, const struct xmsg *m);
/* Release what a message left in a ring at exit holds. Any thread, after
 * the shards stopped. */
void route_discard_xmsg(const struct xmsg *m);
/* Which shard is home of a client ID. */
int route_home(const struct bshard *bs, const uint8_t *cid, size_t len);

/* ---- sys.c ---- */
void sys_tick(struct bshard *bs);

/* ---- identity.c ---- */
/* The connect decision for a client certificate: ID_ACCEPTED, ID_REFUSED
 * (mc->id_refusal says why) or ID_PENDING (asked the registrar; the
 * CONNECT is read again when it answers). */
int identity_decide(struct bshard *bs, struct mconn *mc);
/* Shard start: the TLS known-certificate hook uses this shard's cache. */
void identity_shard_start(struct bshard *bs);
/* TLS hook (tls_server_set_known_mt): true when the leaf is ACTIVE in the
 * calling shard's fingerprint cache, so its CA signature, verified when it
 * was first seen, is not verified again. Shard threads. */
bool identity_known_mt(void *ctx, const uint8_t cert_id[32]);
/* Registrar messages: signup answers, status notices, $SYS events. */
void identity_on_xmsg(struct bshard *bs, const struct xmsg *m);

/* ---- provision.c ---- */
/* Whether a PUBLISH topic is $SYS/provisioning/create-from-csr. */
bool provision_is_topic(const uint8_t *t, size_t len);
/* Hand a provisioning request to the registrar: 0 when taken, else the
 * reason code for the PUBACK/PUBREC (the answer comes on the response
 * topic). */
uint8_t provision_request(struct bshard *bs, struct mconn *mc, const struct mqtt_publish *pp);

/* ---- presence.c ---- */
/* Tell the registrar that mc's client (client ID cid, len bytes) is
 * connected (reason 0) or that its connection ended (enum
 * presence_reason): the live-client table and $SYS/presence events. */
void presence_post(struct bshard *bs, struct mconn *mc, const char *cid, size_t len,
		   bool connected, uint8_t reason);
/* The BT_PRESENCE timer: wake the registrar for what was posted. */
void presence_wake(struct bshard *bs);
/* Why mc's connection ended, from what the broker saw (on_closed). */
uint8_t presence_reason(const struct shard *sh, const struct mconn *mc);

/* ---- broker.c ---- */
void mconn_close(struct shard *sh, struct mconn *mc, uint8_t reason, const char *why);

#endif
