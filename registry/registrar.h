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

/* A JSON event to publish retained=false on a $SYS topic. */
struct reg_event_msg {
	char topic[160];
	uint32_t len;
	char json[];
};

/* Start the registrar thread (and the admin API). reg is then written only
 * by it. tls may be NULL; when set, newly registered CAs are added to it
 * as trust anchors. Main thread. 0 or -errno with a message in err. */
int registrar_start(struct registrar **out, struct registry *reg, struct broker_rt *rt,
		    struct tls_server *tls, const struct registrar_cfg *cfg,
		    char *err, size_t errlen);
/* Stop and join the thread. Main thread, after the shards stopped. */
void registrar_stop(struct registrar *g);

/* From shard `shard`: queue a signup. Never blocks; -EAGAIN when the ring
 * is full (the shard answers "over the limit"). Any shard thread, each on
 * its own ring. */
int registrar_submit_mt(struct registrar *g, int shard, struct signup_req *req);

/* The TCP port the admin API listens on (useful with admin_listen
 * "127.0.0.1:0"), or 0 when there is no admin API. Any thread, after
 * registrar_start() returned. */
int registrar_admin_port(const struct registrar *g);

#endif
