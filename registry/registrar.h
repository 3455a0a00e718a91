/*
 * The registrar: the one thread that writes the registry. It owns the
 * signup limiter and the admin HTTP API, makes every change durable before
 * answering, and tells every shard what changed.
 *
 * Shards talk to it through one SPSC ring per shard (registrar_submit_mt);
 * it answers and notifies through the runtime's external-producer rings
 * (rt_post_external_mt), of which it is the only user. Messages it posts
 * carry the xmsg types below; the MQTT layer handles them on each shard.
 */
#ifndef VOUCH_REGISTRY_REGISTRAR_H
#define VOUCH_REGISTRY_REGISTRAR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/shard-t.h"
#include "registry/regfile-t.h"

struct registrar;
struct tls_server;

struct registrar_cfg {
	const char *admin_listen;       /* "127.0.0.1:8081"; NULL or "" = no admin API */
	const char *admin_token_file;   /* NULL = no token required */
	uint32_t signup_rate;           /* signups per second, broker-wide */
	uint32_t signup_burst;          /* bucket size */
	uint32_t expiry_warning_days;
	const char *data_dir;           /* keeps <data_dir>/registration-code; NULL = memory only */
	const char *crl_dir;            /* --crl-dir: CRL files imported when they appear; NULL = none */
	const char *issuing_ca;         /* --issuing-ca / --issuing-key: provisioning by CSR */
	const char *issuing_key;        /* (registry/provision.c); NULL = off */
};

/* What a shard asks of the registrar (struct xmsg.type on its ring; .p is
 * a flat malloc'd payload that the registrar frees). */
enum rg_req {
	RQ_SIGNUP = 1,          /* p = struct signup_req */
	RQ_PRESENCE,            /* p = struct presence_msg */
	RQ_PROVISION,           /* p = struct provision_req (registry/provision.h) */
};

/* A shard asks for the automatic registration of an unknown certificate
 * (allocated by the shard, freed by the registrar). */
struct signup_req {
	int shard;
	uint32_t conn_slot, conn_gen;   /* echoed in the answer */
	uint8_t cert_id[REG_ID_LEN];
	uint8_t ca_id[REG_ID_LEN];      /* the registered CA that anchors it */
	uint32_t der_len;
	uint8_t der[];                  /* the device certificate */
};

/* Why a client's connection ended, for $SYS/presence/disconnected. */
enum presence_reason {
	PR_CLIENT_DISCONNECT = 1,       /* DISCONNECT from the client */
	PR_CONNECTION_LOST,             /* closed without DISCONNECT */
	PR_KEEPALIVE_TIMEOUT,
	PR_TAKEN_OVER,                  /* another connection took the session */
	PR_CERT_DISABLED,               /* its certificate or CA was disabled */
	PR_PROTOCOL_ERROR,
	PR_SERVER_SHUTDOWN,
	PR_CLIENT_ID_BOUND,             /* its client ID was bound to another certificate */
};

/* A client connected (CONNACK sent) or its connection ended. */
struct presence_msg {
	bool connected;
	uint8_t reason;                 /* enum presence_reason, disconnects */
	uint8_t version;                /* MQTT protocol level: 4 or 5 */
	bool has_cert;
	int16_t shard;
	uint32_t conn_slot, conn_gen;   /* tells connections apart */
	uint64_t since_ms;              /* connected at, unix ms */
	uint8_t cert_id[REG_ID_LEN];
	char peer[64];
	uint16_t cid_len;
	char client_id[];               /* cid_len bytes + NUL */
};

/* The $SYS/presence/connected|disconnected/<client ID> topic of a client's
 * event in out (the client ID percent-encoded as one level): its length,
 * or -1 when it does not fit in cap. Any thread. */
int rg_presence_topic(char *out, size_t cap, bool connected, const char *cid, size_t len);

/* xmsg types posted by the registrar to shards (disjoint from the MQTT
 * layer's own). */
enum reg_xmsg {
	RX_SIGNUP_DONE = 100,   /* a = conn_slot, b = conn_gen, c = (status << 8) | outcome (enum signup_outcome) */
	RX_CERT_STATUS,         /* p = struct reg_notice * (one per shard, freed by it) */
	RX_CA_STATUS,           /* p = struct reg_notice * */
	RX_EVENT,               /* p = struct reg_event_msg * (shard 0 only): publish on $SYS */
	RX_POLICY = 120,        /* p = struct pol_set * (one reference per shard): policies changed */
};

enum signup_outcome {
	SIGNUP_REGISTERED = 1,  /* written with `status` */
	SIGNUP_OVER_LIMIT,      /* refused by the limiter: nothing written */
	SIGNUP_REFUSED,         /* CA refuses, revoked serial, conflict: nothing written */
	SIGNUP_ERROR,           /* I/O error */
	SIGNUP_EXISTS,          /* registered meanwhile: `status` is its status */
};

/* A change every shard must apply at once (cache, live connections). */
struct reg_notice {
	uint8_t id[REG_ID_LEN];         /* certificate or CA ID */
	enum reg_status status;         /* new status; 0 = deleted */
	char client_id[REG_CLIENT_MAX + 1]; /* bound client ID after the change */
};

/* A JSON event to publish retained=false on a $SYS topic: one allocation,
 * topic and json point into data (both NUL-terminated). */
struct reg_event_msg {
	const char *topic;
	const char *json;
	uint32_t topic_len;
	uint32_t len;                   /* of json */
	const uint8_t *corr;            /* v5 correlation data (answers), or NULL */
	uint32_t corr_len;
	char data[];
};

/* Start the registrar thread (and the admin API). reg is then written only
 * by it. tls may be NULL; when set, newly registered CAs are added to it
 * as trust anchors. Main thread. 0 or -errno with a message in err. */
int registrar_start(struct registrar **out, struct registry *reg, struct broker_rt *rt,
		    struct tls_server *tls, const struct registrar_cfg *cfg,
		    char *err, size_t errlen);
/* Stop and join the thread. Main thread, after the shards stopped. */
void registrar_stop(struct registrar *g);

/* From shard `shard`: queue a request (enum rg_req) whose payload p the
 * registrar frees. Never blocks; -EAGAIN when the ring is full (p stays
 * the caller's). Any shard thread, each on its own ring. */
int registrar_post_mt(struct registrar *g, int shard, uint32_t type, void *p);
/* The same without waking the registrar, for requests that may wait: the
 * caller calls registrar_wake_mt soon after (one wake for many). */
int registrar_post_lazy_mt(struct registrar *g, int shard, uint32_t type, void *p);
void registrar_wake_mt(struct registrar *g);

/* From shard `shard`: queue a signup. Never blocks; -EAGAIN when the ring
 * is full (the shard answers "over the limit"). Any shard thread, each on
 * its own ring. */
int registrar_submit_mt(struct registrar *g, int shard, struct signup_req *req);

/* The TCP port the admin API listens on (useful with admin_listen
 * "127.0.0.1:0"), or 0 when there is no admin API. Any thread, after
 * registrar_start() returned. */
int registrar_admin_port(const struct registrar *g);

#endif
