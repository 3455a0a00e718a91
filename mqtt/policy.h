/*
 * The authorization engine: topic-filter algebra, compiling a policy for a
 * session, and the publish / subscribe / receive decisions; then the
 * broker's side: compiling at CONNECT, live updates from the registrar
 * (RX_POLICY) and the checks the packet handlers and delivery call.
 *
 * Decisions (docs/policies.md):
 *   - no effective policy: everything is allowed, except subscribing to the
 *     admin-only topics ($SYS/certificates/#, $SYS/presence/#) without the
 *     admin role and publishing to $SYS;
 *   - a policy: nothing is allowed unless an allow statement matches and no
 *     deny statement does (deny wins). Publish and receive match the topic;
 *     a subscription is allowed when one allow statement's filter contains
 *     every topic it can match and no deny statement's filter contains it;
 *     topics denied to subscribe to are not received through a wider one;
 *   - $SYS: only $SYS/provisioning/... may be published to, and only when a
 *     policy allows it.
 * Every function runs on the thread of the shard owning the session.
 */
#ifndef VOUCH_MQTT_POLICY_H
#define VOUCH_MQTT_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "mqtt/broker-t.h"
#include "mqtt/policy-t.h"
#include "registry/policy-t.h"

/* ---- filters ---- */

/* Whether filter f matches every topic filter s can match (a topic name is
 * a filter without wildcards: then "f matches the topic"). Both valid. */
bool pol_covers(const char *f, size_t fl, const char *s, size_t sl);
/* Whether some topic is matched by both filters. */
bool pol_overlaps(const char *a, size_t al, const char *b, size_t bl);

/* ---- compiling and deciding ---- */

/* Compile d with the values v. 0 with *out, or -ENOMEM. */
int pol_compile(const struct pol_doc *d, const struct pol_vars *v, struct pol_compiled **out);
void pol_compiled_free(struct pol_compiled *c);

/* The decisions, for topic names / filters as sent (no $share prefix). The
 * cache in pc->c is used and filled. */
bool pol_may_publish(struct pol_conn *pc, const char *t, size_t len);
bool pol_may_receive(struct pol_conn *pc, const char *t, size_t len);
/* -1: refused; 0: allowed, every matching topic receivable;
 * POL_SUB_RECV_CHECK: allowed, check receive per delivered topic. */
int pol_sub_decide(const struct pol_conn *pc, const char *f, size_t len);

/* Free what a session's state holds. */
void pol_conn_clear(struct pol_conn *pc);

/* ---- the broker's side ---- */

void policy_shard_start(struct bshard *bs);
void policy_shard_stop(struct bshard *bs);
/* At CONNECT, once the session is attached to mc: take the connection's
 * identity, compile its effective policy, and when the session was resumed
 * check its subscriptions again. */
void policy_connect(struct bshard *bs, struct mconn *mc, struct session *s, bool present);
/* Checks for the packet handlers (mc connected, with its session). */
bool policy_may_publish(struct mconn *mc, const uint8_t *topic, size_t len);
/* A SUBSCRIBE entry (filter as sent, $share/ allowed): -1 refused, else
 * the bits to add to the entry's options. A malformed filter gives 0 (the
 * subscription code reports it). */
int policy_sub_check(struct mconn *mc, const uint8_t *f, size_t len);
/* RX_POLICY from the registrar: the new set; recompile the sessions whose
 * effective policy changed and drop subscriptions no longer allowed. */
void policy_on_xmsg(struct bshard *bs, const struct xmsg *m);

#endif
