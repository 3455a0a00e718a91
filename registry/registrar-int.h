/*
 * Inside the registrar: its state, shared by registry/registrar.c (the
 * thread, signups, posting to shards) and registry/admin.c (the HTTP API),
 * and the entry points the unit tests drive without starting the thread.
 *
 * Everything here runs on the registrar thread (or, in tests, on the one
 * thread that plays it), except the fields marked "shared".
 */
#ifndef VOUCH_REGISTRY_REGISTRAR_INT_H
#define VOUCH_REGISTRY_REGISTRAR_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/spsc-t.h"
#include "registry/limiter.h"
#include "registry/registrar.h"

#define RG_CODE_LEN     32      /* hex digits of a registration code */
#define RG_RING_CAP     4096    /* requests queued per shard */
#define RG_TURN_MAX     256     /* signups taken from one shard per turn */
#define RG_CODE_FILE    "registration-code"

struct admin;
struct rg_presence;
struct rg_expiry;
struct reg_device;
struct rg_crl_dir;
struct rg_provision;
struct pol_store;

/* A FIFO of messages a shard's ring had no room for (order preserved). */
struct rg_backlog {
	struct xmsg *v;
	uint32_t head, n, cap;
};

/* What the registrar has done, for logs and tests. Registrar thread. */
struct rg_stats {
	uint64_t registered;    /* auto-registrations written */
	uint64_t over_limit;
	uint64_t refused;
	uint64_t exists;
	uint64_t errors;
	uint64_t posted;        /* messages handed to shards */
	uint64_t deferred;      /* of which went through the backlog */
};

struct registrar {
	/* set up before the thread starts, read-only afterwards */
	struct registry *reg;
	struct broker_rt *rt;   /* NULL: no shards (tests, tools) */
	struct tls_server *tls;
	int n;                  /* shards (0 without rt) */
	int admin_port;

	/* shared: shards push, the registrar pops (one SPSC ring per shard) */
	struct spsc *in;        /* n rings of struct xmsg { .p = signup_req } */
	int efd;                /* eventfd that wakes the registrar */
	_Atomic bool stop;

	/* registrar thread only */
	struct reg_limiter lim;
	struct rg_backlog *out; /* per shard */
	struct admin *admin;
	struct rg_crl_dir *crl_dir;     /* --crl-dir watcher (registry/crl.c), or NULL */
	struct rg_provision *prov;      /* provisioning by CSR (registry/provision.c) */
	struct pol_store *pol;  /* authorization policies (registry/policies.c) */
	char *data_dir;         /* NULL: the registration code is not kept */
	char code[RG_CODE_LEN + 1];
	struct rg_stats stats;
	struct rg_presence *pres;       /* registry/presence.c */
	struct rg_expiry *expiry;       /* registry/expiry.c */
	pthread_t thread;
	bool thread_started;
};

/*
 * Build the registrar without starting its thread: rings, eventfd,
 * limiter, registration code (read from or written to data_dir), admin
 * API state (and its HTTP daemon when cfg->admin_listen is set). The
 * CAs registered before start are not made trust anchors here (vouchd's
 * main does that when it creates the TLS server). The calling thread is the
 * registrar thread until registrar_free() (tests drive it with
 * registrar_turn()). 0 or -errno with a message in err.
 */
int registrar_init(struct registrar **out, struct registry *reg,
		   struct broker_rt *rt, struct tls_server *tls,
		   const struct registrar_cfg *cfg, char *err, size_t errlen);

/*
 * One turn of the loop without waiting: take the signups queued by the
 * shards (bounded), decide and write them (one sync), answer, notify, and
 * retry the backlog of posts. now_ns is the limiter's clock. Returns 1 when
 * work is left (the loop must not sleep), else 0. Registrar thread.
 */
int registrar_turn(struct registrar *g, uint64_t now_ns);

/* Free what registrar_init() built (queued signups and posts included).
 * Registrar thread, with the thread joined. NULL is a no-op. */
void registrar_free(struct registrar *g);

/*
 * Tell every shard that a device certificate changed: its current status
 * and bound client ID as the durable registry has them, or status 0 when
 * it is gone. Registrar thread.
 */
void rg_notify_dev(struct registrar *g, const uint8_t id[REG_ID_LEN]);

/* The same for a CA (RX_CA_STATUS; status 0 when deleted). */
void rg_notify_ca(struct registrar *g, const uint8_t id[REG_ID_LEN]);

/* Publish `json` (NUL-terminated) on `topic` through shard 0. Registrar
 * thread. Dropped only when there are no shards. */
void rg_publish(struct registrar *g, const char *topic, const char *json);

/* The same with v5 correlation data (corr_len bytes; an answer to a
 * request that gave a response topic). */
void rg_publish_corr(struct registrar *g, const char *topic, const char *json,
		     const uint8_t *corr, size_t corr_len);

/* The fields every event about device certificate d carries:
 * certificateId, caCertificateId, serialNumber, commonName, clientId,
 * timestamp (now). NULL when out of memory. Any thread. */
json_t *rg_dev_json(const struct reg_device *d);

/* Publish JSON object o (taken; NULL = out of memory, logged) on topic
 * through shard 0. false when nothing was published. Registrar thread. */
bool rg_publish_json(struct registrar *g, const char *topic, json_t *o);

/* Publish a device certificate's lifecycle event `kind` ("registered",
 * "deleted") under $SYS/certificates/<kind>/<CA ID>. d is the record (as
 * of after the change; before, for "deleted"). Status changes go through
 * rg_publish_status. Registrar thread. */
void rg_publish_dev(struct registrar *g, const char *kind,
		    const struct reg_device *d, const char *actor);

/* Publish a device certificate's status change on
 * $SYS/certificates/status/<certificate ID>: d as of after the change, old
 * its status before (0: not known, then only "status" is given). Registrar
 * thread. */
void rg_publish_status(struct registrar *g, const struct reg_device *d,
		       enum reg_status old, const char *actor);

/* ---- registry/presence.c: live clients and their $SYS/presence events -- */

/* Take a shard's presence message (freed here): update the table of live
 * clients and publish $SYS/presence/{connected,disconnected}/<client ID>. */
void rg_presence(struct registrar *g, struct presence_msg *pm);

/* The live clients of a certificate as a JSON array (new reference; NULL
 * when out of memory). */
json_t *rg_presence_clients(struct registrar *g, const uint8_t cert_id[REG_ID_LEN]);

/* Live clients known, and presence events published. */
uint64_t rg_presence_count(const struct registrar *g);

/* Free the table. */
void rg_presence_free(struct registrar *g);

/* ---- registry/expiry.c: $SYS/certificates/expiring events ------------- */

/* Set up with the warning window (0: 30 days). 0 or -ENOMEM. */
int rg_expiry_init(struct registrar *g, uint32_t warning_days);
void rg_expiry_free(struct registrar *g);
/* A certificate changed (d as it is now): warn at once if it is due. */
void rg_expiry_check(struct registrar *g, const struct reg_device *d);
/* From the loop: sweep the registry when due (start-up, then hourly). */
void rg_expiry_tick(struct registrar *g, int64_t now);

/* Make a CA's certificate a TLS trust anchor (when a TLS server is set and
 * supports it). Registrar thread. */
void rg_trust_ca(struct registrar *g, const uint8_t *der, size_t len);

/* Make the TLS trust anchors exactly the registered CAs, whatever their
 * status (after a CA was deleted). Registrar thread. */
void rg_trust_reset(struct registrar *g);

/* Replace the registration code with a new random one, kept in
 * <data_dir>/registration-code. 0 or -errno (the old code stays).
 * Registrar thread. */
int rg_code_rotate(struct registrar *g);

#endif
