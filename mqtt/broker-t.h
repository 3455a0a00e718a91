/*
 * The MQTT layer's state: per-shard broker state, sessions, per-connection
 * protocol state and the shared, reference-counted message.
 */
#ifndef VOUCH_MQTT_BROKER_T_H
#define VOUCH_MQTT_BROKER_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/hmap.h"
#include "core/shard-t.h"
#include "mqtt/codec-t.h"
#include "mqtt/policy-t.h"

struct tt_tree;
struct rt_store;
struct pol_set;

/*
 * A message as published: topic, the v5 properties that travel with it
 * (encoded once, without their length prefix) and the payload, in one
 * allocation shared by reference among every shard and session that
 * delivers it. Immutable after creation except for `refs`.
 */
struct vmsg {
	_Atomic uint32_t refs;
	uint32_t topic_len;
	uint32_t props_len;        /* v5 properties to forward, encoded */
	uint32_t payload_len;
	uint64_t origin;           /* publishing session id (no-local), 0 = broker */
	uint64_t expire_at_ms;     /* monotonic; 0 = never */
	uint8_t qos;
	bool retain;
	uint8_t data[];            /* topic | props | payload */
};

static inline const uint8_t *vmsg_topic(const struct vmsg *m) { return m->data; }
static inline const uint8_t *vmsg_props(const struct vmsg *m) { return m->data + m->topic_len; }
static inline const uint8_t *vmsg_payload(const struct vmsg *m) { return m->data + m->topic_len + m->props_len; }

#define DELIVERY_SUBIDS 8

/* One message waiting to be sent to a session, or in flight. */
struct delivery {
	struct vmsg *m;            /* holds one reference */
	uint16_t pid;
	uint8_t qos;
	uint8_t state;             /* enum dstate */
	bool retain;
	uint8_t n_sub_ids;
	uint32_t sub_ids[DELIVERY_SUBIDS];
};

enum dstate { D_QUEUED = 0, D_WAIT_PUBACK, D_WAIT_PUBREC, D_WAIT_PUBCOMP };

/* A ring buffer of deliveries, in order. */
struct dring {
	struct delivery *v;
	uint32_t head, n, cap;
};

/* One subscription of a session, kept to unsubscribe on session end and to
 * answer re-subscription. */
struct sub_rec {
	char *filter;              /* as sent, NUL-terminated */
	uint16_t len;
	uint8_t options;
	uint32_t sub_id;
};

struct mconn;

/* Fields are ordered by size, so that the struct has no holes: it is in
 * every session, and 248 bytes fit jemalloc's 256-byte class (352 took
 * the 384-byte one). */
struct session {
	char *client_id;
	uint64_t sid;              /* broker-wide unique */
	struct mconn *mc;          /* live connection, or NULL */
	uint16_t cid_len;
	uint8_t version;
	bool connected;
	uint32_t expiry_s;         /* session expiry interval */
	uint32_t slot, gen;        /* in the shard's session table (timers) */
	uint64_t expire_at_ms;     /* when offline; 0 = not scheduled */
	/* subscriptions */
	struct sub_rec *subs;
	uint32_t n_subs, cap_subs;
	/* outbound: in flight (in order), then queued */
	struct dring inflight;
	struct dring queue;
	uint32_t client_recv_max;  /* the client's Receive Maximum */
	uint32_t client_max_packet;
	uint16_t client_alias_max;
	uint16_t next_pid;
	/* delivery aggregation during one match */
	int32_t agg_index;
	uint64_t match_epoch;
	/* inbound QoS 2 packet ids awaiting PUBREL */
	uint16_t *qos2_in;
	uint32_t n_qos2_in, cap_qos2_in;
	/* will */
	struct vmsg *will;
	uint64_t will_at_ms;       /* scheduled will, 0 = none */
	uint32_t will_delay_s;
	bool pump_listed;          /* on the shard's pump list */
	bool bound;                /* its client ID is bound to the certificate below */
	uint8_t bound_cert[32];
	struct session *pump_next;
	struct pol_conn pol;       /* authorization (mqtt/policy.c) */
};

/* Per-connection MQTT state (c->upper). Ordered by size, no holes: 190
 * bytes, jemalloc's 192-byte class. */
struct mconn {
	struct conn *c;
	struct session *s;
	uint64_t last_rx_ms;
	uint64_t connected_at_ms;  /* unix ms of the CONNACK */
	/* inbound topic aliases: alias -> topic */
	char **alias_in;
	uint16_t *alias_in_len;
	/* outbound topic aliases: topic -> alias */
	struct hmap alias_out;
	struct ackq *acks;         /* PUBACK/PUBREC waiting for other shards (puback.c) */
	char *bound_id;            /* the certificate's bound client ID, or NULL */
	char *cert_cn;             /* the certificate's CN, or NULL */
	uint32_t server_alias_max; /* aliases the client may use */
	uint16_t keepalive;        /* seconds, as granted */
	uint16_t alias_out_next;
	int16_t handoff_to;        /* home shard while being handed over */
	uint8_t version;           /* 0 until CONNECT */
	bool connected;            /* CONNACK sent with success */
	bool handoff;              /* being moved to the home shard */
	bool clean_disconnect;
	bool problem_info;         /* v5 Request Problem Information */
	uint8_t close_reason;      /* why we are closing (presence, logs) */
	bool announced;            /* presence "connected" posted */
	bool got_disconnect;       /* the client sent DISCONNECT */
	uint8_t pr_reason;         /* set when the broker knows better (enum presence_reason) */
	/* identity (mutual TLS), decided once, before the session */
	uint8_t id_state;          /* enum id_state */
	uint8_t id_refusal;        /* v5 reason code when refused */
	bool has_cert;
	uint8_t cert_id[32];
	uint8_t ca_id[32];
};

enum id_state {
	ID_NONE = 0,       /* not decided yet */
	ID_PENDING,        /* waiting for the registrar */
	ID_ACCEPTED,
	ID_REFUSED,
};

/* What the MQTT layer reaches of the identity side (broker_rt.app). */
struct registry;
struct registrar;
struct tls_server;
struct vouch_app {
	struct registry *reg;
	struct registrar *registrar;
	struct tls_server *tls;
	const struct vouch_config *cfg;
};

struct fp_cache;
struct bind_tab;

/* A retained or shared-subscription bookkeeping count per group (shard-local). */
struct share_count {
	uint64_t key;
	uint32_t count;
};

struct agg {
	struct session *s;
	uint8_t qos;
	bool retain;
	uint8_t n_sub_ids;
	uint32_t sub_ids[DELIVERY_SUBIDS];
};

/* Per-shard broker state (sh->upper). */
struct bshard {
	struct shard *sh;
	struct tt_tree *local;     /* this shard's sessions' subscriptions */
	struct tt_tree *summary;   /* which shards have subscribers, per filter */
	struct rt_store *retained; /* replica of the retained messages */
	struct hmap sessions;      /* client id -> session (home shard only) */
	struct session **sess_slots;
	uint32_t n_sess_slots, cap_sess_slots;
	uint32_t *sess_free;
	uint32_t n_sess_free;
	uint64_t sid_seq;
	/* shared groups: local member count per group key */
	struct share_count *shares;
	uint32_t n_shares, cap_shares;
	/* delivery aggregation scratch */
	uint64_t epoch;
	struct agg *agg;
	uint32_t n_agg, cap_agg;
	/* routing scratch, per match */
	uint64_t route_mask;
	uint64_t *route_keys;      /* (shard << 56) | (key >> 8) pairs */
	uint32_t n_route_keys, cap_route_keys;
	const uint64_t *want_keys; /* local delivery: shared groups assigned here */
	uint32_t n_want_keys;
	struct vmsg *cur_msg;
	/* sessions with something queued to pump at turn end */
	struct session *pump_head;
	uint64_t last_sys_ms;
	struct fp_cache *fp;       /* certificate fingerprint cache */
	struct pol_set *pol_set;   /* policies and attachments (one reference) */
	struct bind_tab *bind;     /* client IDs homed here bound to certificates (binding.c) */
	uint32_t presence_unwoken; /* presence messages posted since the last registrar wake */
	/* acknowledgements after routing (puback.c) */
	struct cref_fifo *confirm_to; /* per shard: connections whose ROUTEs await its confirmation */
	uint64_t *owed;            /* per shard: its ROUTEs delivered here, not yet confirmed */
	uint64_t owed_mask;        /* shards with owed[] > 0 */
};

/* Cross-shard message types (struct xmsg.type). */
enum bx_type {
	BX_ROUTE = 1,      /* p = vmsg (one ref); a = ROUTE_* flags | from shard << 8; b, c = shared group keys */
	BX_SUMMARY,        /* p = malloc'd NUL-terminated filter; a = from shard; b = weight (0 = remove) */
	BX_RETAIN,         /* p = vmsg (one ref) to retain; empty payload deletes */
	BX_HANDOFF,        /* p = struct conn_xfer * */
	BX_CONFIRM,        /* a = from shard; c = ROUTE_CONFIRM ROUTEs it has delivered (puback.c) */
};

/* BX_ROUTE flags (xmsg.a, low byte) */
#define ROUTE_NORMAL  1u   /* for the shard's normal (not shared) subscribers */
#define ROUTE_CONFIRM 2u   /* the publisher's acknowledgement waits for this shard */

/* Timer kinds (core uses 0). */
enum bt_kind {
	BT_CONNECT = 1,    /* id/gen = connection */
	BT_KEEPALIVE,      /* id/gen = connection */
	BT_SESSION,        /* id/gen = session slot */
	BT_WILL,           /* id/gen = session slot */
	BT_SYS,
	BT_PRESENCE,       /* wake the registrar for the presence messages posted */
};

#endif
