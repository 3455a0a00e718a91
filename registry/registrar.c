/*
 * The registrar thread: the registry's one writer. It takes the signups
 * that shards queue for unknown certificates (one SPSC ring per shard and
 * an eventfd to wake it), passes them through the signup limiter, writes
 * the ones that pass in one durable batch, and only then answers the
 * shards. It also runs the admin HTTP API (registry/admin.c) in the same
 * poll loop, so that every registry write happens on this one thread
 * without locks.
 *
 * After every change it tells every shard (RX_CERT_STATUS / RX_CA_STATUS,
 * one malloc'd notice per shard) so that caches are never stale and live
 * connections of a disabled certificate or CA are closed at once; lifecycle
 * events go to shard 0 (RX_EVENT) to be published on $SYS. A shard ring
 * that is full keeps the message in a per-shard backlog, retried every
 * turn: a notice is never dropped.
 */
#include "registry/registrar.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "core/fifo.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/spsc.h"
#include "registry/admin.h"
#include "registry/crl.h"
#include "registry/policies.h"
#include "registry/provision.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"
#include "tls/pki.h"
#include "tls/server.h"

/*
 * The TLS server's trust anchors (tls/server.c) are reached through weak
 * references, so that the registry links into programs without the TLS
 * server (tests, tools): the functions are NULL there.
 */
#pragma weak tls_server_add_ca_mt
#pragma weak tls_server_set_cas_mt

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- posting to shards ---------------------------------------------------- */

static void free_payload(const struct xmsg *m)
{
	switch (m->type) {
	case RX_CERT_STATUS:
	case RX_CA_STATUS:
	case RX_EVENT:
		free(m->p);
		break;
	case RX_POLICY:
		pol_set_unref_mt(m->p);
		break;
	default:
		break;
	}
}

static int backlog_push(struct rg_backlog *q, const struct xmsg *m)
{
	if (q->n == q->cap) {
		struct xmsg *v = fifo_grow(q->v, &q->cap, &q->head, q->n, sizeof *v, 64);

		if (!v)
			return -ENOMEM;
		q->v = v;
	}
	q->v[(q->head + q->n) % q->cap] = *m;
	q->n++;
	return 0;
}

/* Retry shard `to`'s backlog, oldest first; stops at the first refusal. */
static void backlog_flush(struct registrar *g, int to)
{
	struct rg_backlog *q = &g->out[to];

	while (q->n && rt_post_external_mt(g->rt, to, &q->v[q->head]) == 0) {
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
}

static bool backlog_pending(const struct registrar *g)
{
	for (int i = 0; i < g->n; i++)
		if (g->out[i].n)
			return true;
	return false;
}

/*
 * Hand m to shard `to`, now or through the backlog (order kept). The
 * payload belongs to the shard from here on. Without memory for the
 * backlog, wait for room in the ring rather than lose the message.
 */
static void post(struct registrar *g, int to, const struct xmsg *m)
{
	struct rg_backlog *q = &g->out[to];

	g->stats.posted++;
	if (q->n == 0 && rt_post_external_mt(g->rt, to, m) == 0)
		return;
	g->stats.deferred++;
	if (backlog_push(q, m) == 0)
		return;
	log_warn("registrar: out of memory for the backlog of shard %d: waiting for its ring", to);
	while (!atomic_load(&g->stop)) {
		backlog_flush(g, to);
		if (q->n == 0 && rt_post_external_mt(g->rt, to, m) == 0)
			return;
		usleep(1000);
	}
	free_payload(m);
}

/* malloc that waits out a transient shortage instead of failing (a notice
 * must not be lost); NULL only when the registrar is stopping. */
static void *alloc_wait(struct registrar *g, size_t n)
{
	void *p;

	while (!(p = malloc(n))) {
		if (atomic_load(&g->stop))
			return NULL;
		usleep(1000);
	}
	return p;
}

static void notify(struct registrar *g, uint32_t type, const struct reg_notice *proto)
{
	for (int s = 0; s < g->n; s++) {
		struct reg_notice *nt = alloc_wait(g, sizeof *nt);

		if (!nt)
			return;
		*nt = *proto;
		post(g, s, &(struct xmsg){ .type = type, .p = nt });
	}
}

/* See registry/registrar-int.h. */
void rg_notify_dev(struct registrar *g, const uint8_t id[REG_ID_LEN])
{
	struct reg_notice nt;
	struct reg_device d;

	memset(&nt, 0, sizeof nt);
	memcpy(nt.id, id, REG_ID_LEN);
	if (reg_dev_get_mt(g->reg, id, &d) == 0) {
		nt.status = d.status;
		if (d.client_id_len <= REG_CLIENT_MAX)
			memcpy(nt.client_id, d.client_id, d.client_id_len);
	}
	notify(g, RX_CERT_STATUS, &nt);
	if (nt.status)
		rg_expiry_check(g, &d);
}

/* See registry/registrar-int.h. */
void rg_notify_ca(struct registrar *g, const uint8_t id[REG_ID_LEN])
{
	struct reg_notice nt;
	struct reg_ca ca;

	memset(&nt, 0, sizeof nt);
	memcpy(nt.id, id, REG_ID_LEN);
	if (reg_ca_get_mt(g->reg, id, &ca) == 0)
		nt.status = ca.status;
	notify(g, RX_CA_STATUS, &nt);
}

/* See registry/policies.h. */
void rg_notify_policy(struct registrar *g)
{
	for (int s = 0; s < g->n; s++) {
		pol_set_ref_mt(g->pol->cur);
		post(g, s, &(struct xmsg){ .type = RX_POLICY, .p = g->pol->cur });
	}
}

/* See registry/registrar-int.h. */
void rg_publish(struct registrar *g, const char *topic, const char *json)
{
	rg_publish_corr(g, topic, json, NULL, 0);
}

/* See registry/registrar-int.h. */
void rg_publish_corr(struct registrar *g, const char *topic, const char *json,
		     const uint8_t *corr, size_t corr_len)
{
	size_t tl = strlen(topic), jl = strlen(json);
	struct reg_event_msg *ev;

	if (g->n == 0 || tl > UINT16_MAX || jl > UINT32_MAX - 1 || corr_len > UINT16_MAX)
		return;
	ev = alloc_wait(g, sizeof *ev + tl + 1 + jl + 1 + corr_len);
	if (!ev)
		return;
	memcpy(ev->data, topic, tl + 1);
	memcpy(ev->data + tl + 1, json, jl + 1);
	ev->topic = ev->data;
	ev->topic_len = (uint32_t)tl;
	ev->json = ev->data + tl + 1;
	ev->len = (uint32_t)jl;
	ev->corr = NULL;
	ev->corr_len = (uint32_t)corr_len;
	if (corr_len) {
		memcpy(ev->data + tl + 1 + jl + 1, corr, corr_len);
		ev->corr = (const uint8_t *)ev->data + tl + 1 + jl + 1;
	}
	post(g, 0, &(struct xmsg){ .type = RX_EVENT, .p = ev });
}

/* See registry/registrar-int.h. */
json_t *rg_dev_json(const struct reg_device *d)
{
	char id[2 * REG_ID_LEN + 1], ca[2 * REG_ID_LEN + 1];
	char serial[2 * REG_SERIAL_MAX + 1];

	tls_hex(d->id, REG_ID_LEN, id);
	tls_hex(d->issuer, REG_ID_LEN, ca);
	tls_hex(d->serial, d->serial_len, serial);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}",
			 "certificateId", id, "caCertificateId", ca,
			 "serialNumber", serial, "commonName", d->cn,
			 "clientId", d->client_id, "timestamp", (json_int_t)time(NULL));
}

/* See registry/registrar-int.h. */
bool rg_publish_json(struct registrar *g, const char *topic, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!s) {
		log_warn("registrar: out of memory for an event on %s", topic);
		return false;
	}
	rg_publish(g, topic, s);
	free(s);
	return true;
}

/* A lifecycle event of certificate d on topic: its record, who made the
 * change and, for a status change (old != 0), the old and new status. */
static void publish_dev(struct registrar *g, const char *topic, const struct reg_device *d,
			enum reg_status old, const char *actor)
{
	json_t *o = rg_dev_json(d);

	if (o && (json_object_set_new(o, "status", json_string(reg_status_name(d->status))) ||
		  json_object_set_new(o, "registeredBy",
				      json_string(d->how == REG_AUTO ? "AUTO" : "MANUAL")) ||
		  json_object_set_new(o, "actor", json_string(actor ? actor : "")) ||
		  (old && (json_object_set_new(o, "oldStatus", json_string(reg_status_name(old))) ||
			   json_object_set_new(o, "newStatus",
					       json_string(reg_status_name(d->status))))))) {
		json_decref(o);
		o = NULL;
	}
	rg_publish_json(g, topic, o);
}

/* See registry/registrar-int.h. */
void rg_publish_dev(struct registrar *g, const char *kind,
		    const struct reg_device *d, const char *actor)
{
	char ca[2 * REG_ID_LEN + 1], topic[160];

	if (g->n == 0)
		return;
	tls_hex(d->issuer, REG_ID_LEN, ca);
	snprintf(topic, sizeof topic, "$SYS/certificates/%s/%s", kind, ca);
	publish_dev(g, topic, d, 0, actor);
}

/* See registry/registrar-int.h. */
void rg_publish_status(struct registrar *g, const struct reg_device *d,
		       enum reg_status old, const char *actor)
{
	char id[2 * REG_ID_LEN + 1], topic[160];

	if (g->n == 0)
		return;
	tls_hex(d->id, REG_ID_LEN, id);
	snprintf(topic, sizeof topic, "$SYS/certificates/status/%s", id);
	publish_dev(g, topic, d, old, actor);
}

/* See registry/registrar-int.h. */
void rg_trust_ca(struct registrar *g, const uint8_t *der, size_t len)
{
	int rc;

	if (!g->tls || !tls_server_add_ca_mt)
		return;
	rc = tls_server_add_ca_mt(g->tls, der, len);
	if (rc < 0)
		log_warn("registrar: cannot add a CA to the TLS trust anchors: %s", strerror(-rc));
}

struct anchors {
	const uint8_t **der;
	size_t *len;
	size_t n, cap;
	bool nomem;
};

static int anchor_each(void *ctx, const struct reg_ca *ca)
{
	struct anchors *a = ctx;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		const uint8_t **d = realloc(a->der, cap * sizeof *d);

		if (d)
			a->der = d;
		size_t *l = d ? realloc(a->len, cap * sizeof *l) : NULL;

		if (!d || !l) {
			a->nomem = true;
			return 1;
		}
		a->len = l;
		a->cap = cap;
	}
	a->der[a->n] = ca->der;
	a->len[a->n++] = ca->der_len;
	return 0;
}

/* See registry/registrar-int.h. */
void rg_trust_reset(struct registrar *g)
{
	struct anchors a = { 0 };
	int rc;

	if (!g->tls || !tls_server_set_cas_mt)
		return;
	reg_ca_foreach_mt(g->reg, anchor_each, &a);
	if (a.nomem)
		rc = -ENOMEM;
	else
		rc = tls_server_set_cas_mt(g->tls, a.der, a.len, a.n);
	if (rc < 0)
		log_warn("registrar: cannot replace the TLS trust anchors: %s (the registry still refuses the CA)",
			 strerror(-rc));
	free(a.der);
	free(a.len);
}

/* ---- the registration code ------------------------------------------------ */

static bool code_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == RG_CODE_LEN;
}

static int code_path(const struct registrar *g, char *p, size_t cap)
{
	int n = snprintf(p, cap, "%s/%s", g->data_dir, RG_CODE_FILE);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int code_new(char out[RG_CODE_LEN + 1])
{
	uint8_t raw[RG_CODE_LEN / 2];
	size_t got = 0;

	while (got < sizeof raw) {
		ssize_t r = getrandom(raw + got, sizeof raw - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	tls_hex(raw, sizeof raw, out);
	return 0;
}

/* See registry/registrar-int.h. */
int rg_code_rotate(struct registrar *g)
{
	char code[RG_CODE_LEN + 1], line[RG_CODE_LEN + 2], path[4096];
	int rc = code_new(code);

	if (rc)
		return rc;
	if (g->data_dir) {
		rc = code_path(g, path, sizeof path);
		if (rc)
			return rc;
		snprintf(line, sizeof line, "%s\n", code);
		rc = tls_pki_file_write(path, line, RG_CODE_LEN + 1, 0600, true);
		if (rc)
			return rc;
	}
	memcpy(g->code, code, sizeof code);
	return 0;
}

/* The kept code, or a new one (kept) when there is none or it is damaged. */
static int code_load(struct registrar *g, char *err, size_t errlen)
{
	char path[4096], *data = NULL;
	size_t len = 0;
	int rc;

	if (g->data_dir) {
		rc = code_path(g, path, sizeof path);
		if (rc == 0)
			rc = tls_pki_file_read(path, 4096, &data, &len);
		if (rc == 0) {
			while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' ||
				       data[len - 1] == ' '))
				data[--len] = '\0';
			if (code_valid(data)) {
				memcpy(g->code, data, RG_CODE_LEN + 1);
				free(data);
				return 0;
			}
			log_warn("registrar: %s is not a registration code: making a new one", path);
		} else if (rc != -ENOENT) {
			snprintf(err, errlen, "registrar: cannot read %s: %s", path, strerror(-rc));
			return rc;
		}
		free(data);
	}
	rc = rg_code_rotate(g);
	if (rc)
		snprintf(err, errlen, "registrar: cannot keep a registration code in %s: %s",
			 g->data_dir ? g->data_dir : "memory", strerror(-rc));
	return rc;
}

/* ---- signups ---------------------------------------------------------- */

/* One signup of the current turn, until it is answered. */
struct pend {
	struct signup_req *req;
	int shard;
	int outcome;            /* enum signup_outcome; 0 = written, to confirm */
	enum reg_status status;
	int dup_of;             /* EXISTS because of pend[dup_of], or -1 */
};

static void answer(struct registrar *g, const struct pend *p)
{
	struct xmsg m = {
		.type = RX_SIGNUP_DONE,
		.a = p->req->conn_slot,
		.b = p->req->conn_gen,
		.c = ((uint64_t)p->status << 8) | (uint64_t)p->outcome,
	};

	switch (p->outcome) {
	case SIGNUP_REGISTERED: g->stats.registered++; break;
	case SIGNUP_OVER_LIMIT: g->stats.over_limit++; break;
	case SIGNUP_REFUSED: g->stats.refused++; break;
	case SIGNUP_EXISTS: g->stats.exists++; break;
	default: g->stats.errors++; break;
	}
	post(g, p->shard, &m);
}

static int refused(int rc)
{
	switch (rc) {
	case -EPERM:            /* CA inactive or refuses automatic registration */
	case -EKEYREVOKED:      /* revocation is final */
	case -ENOENT:           /* CA not registered (any more) */
	case -EINVAL:
	case -ENAMETOOLONG:
	case -EMSGSIZE:
		return SIGNUP_REFUSED;
	default:
		return SIGNUP_ERROR;
	}
}

/* Decide one signup and, when it passes, write it (inside the batch). */
static void signup_one(struct registrar *g, struct pend *ps, int i, uint64_t now_ns)
{
	struct pend *p = &ps[i];
	struct signup_req *rq = p->req;
	struct tls_cert_info ci;
	struct reg_device d;
	struct reg_ca ca;
	struct reg_by by = { .actor = "auto" };
	int rc;

	p->dup_of = -1;
	p->status = 0;
	/* Known already: registered by another connection, an earlier turn
	 * or this one. Costs no token. */
	if (reg_dev_get_mt(g->reg, rq->cert_id, &d) == 0) {
		p->outcome = SIGNUP_EXISTS;
		p->status = d.status;
		return;
	}
	for (int j = 0; j < i; j++) {
		if (ps[j].outcome == 0 &&
		    !memcmp(ps[j].req->cert_id, rq->cert_id, REG_ID_LEN)) {
			p->outcome = SIGNUP_EXISTS;
			p->dup_of = j;
			return;
		}
	}
	/* A CA that refuses makes the answer "refused", whatever the limiter
	 * says (reg_dev_add checks again). */
	if (reg_ca_get_mt(g->reg, rq->ca_id, &ca) != 0 || ca.status != REG_ACTIVE ||
	    !ca.auto_register) {
		p->outcome = SIGNUP_REFUSED;
		return;
	}
	if (rq->der_len == 0 || rq->der_len > REG_DER_MAX ||
	    tls_cert_parse(rq->der, rq->der_len, &ci) != 0 ||
	    memcmp(ci.id, rq->cert_id, REG_ID_LEN) != 0) {
		p->outcome = SIGNUP_REFUSED;
		return;
	}
	if (reg_dev_revoked_mt(g->reg, rq->cert_id) ||
	    reg_serial_revoked_mt(g->reg, rq->ca_id, ci.serial, ci.serial_len)) {
		p->outcome = SIGNUP_REFUSED;    /* revocation is final */
		return;
	}
	if (!reg_limiter_ready(&g->lim, now_ns)) {
		p->outcome = SIGNUP_OVER_LIMIT;
		return;
	}
	struct reg_dev_in in = {
		.serial = ci.serial, .serial_len = ci.serial_len,
		.cn = ci.cn, .o = ci.o, .ou = ci.ou,
		.not_before = ci.not_before, .not_after = ci.not_after,
		.status = 0,    /* the CA's auto_status */
		.how = REG_AUTO,
		.der = rq->der, .der_len = rq->der_len,
	};
	memcpy(in.id, rq->cert_id, REG_ID_LEN);
	memcpy(in.issuer, rq->ca_id, REG_ID_LEN);
	rc = reg_dev_add(g->reg, &in, &by);
	if (rc == 0) {
		reg_limiter_take(&g->lim, now_ns);
		p->outcome = 0;         /* confirmed after the commit */
		return;
	}
	if (rc == -EEXIST) {
		/* Another certificate of this CA holds the serial. */
		p->outcome = SIGNUP_REFUSED;
		return;
	}
	p->outcome = refused(rc);
	if (p->outcome == SIGNUP_ERROR)
		log_error("registrar: cannot register a certificate: %s", strerror(-rc));
}

/* Decide, write (one sync), then answer and notify. Frees the requests. */
static void signups(struct registrar *g, struct pend *ps, int np, uint64_t now_ns)
{
	int rc, brc;

	brc = reg_begin(g->reg);
	for (int i = 0; i < np; i++)
		signup_one(g, ps, i, now_ns);
	/* Without a batch every write was durable on its own. */
	rc = brc == 0 ? reg_commit(g->reg) : 0;
	if (rc)
		log_error("registrar: cannot make signups durable: %s", strerror(-rc));
	for (int i = 0; i < np; i++) {
		struct pend *p = &ps[i];
		struct reg_device d;

		if (p->outcome == 0) {
			if (rc == 0 && reg_dev_get_mt(g->reg, p->req->cert_id, &d) == 0) {
				p->outcome = SIGNUP_REGISTERED;
				p->status = d.status;
			} else {
				p->outcome = SIGNUP_ERROR;
			}
		}
	}
	for (int i = 0; i < np; i++) {
		struct pend *p = &ps[i];
		struct reg_device d;

		if (p->dup_of >= 0) {
			if (ps[p->dup_of].outcome == SIGNUP_REGISTERED)
				p->status = ps[p->dup_of].status;
			else
				p->outcome = ps[p->dup_of].outcome;
		}
		answer(g, p);
		if (p->outcome == SIGNUP_REGISTERED && p->dup_of < 0 &&
		    reg_dev_get_mt(g->reg, p->req->cert_id, &d) == 0) {
			rg_notify_dev(g, p->req->cert_id);
			rg_publish_dev(g, "registered", &d, "auto");
		}
		free(p->req);
	}
}

/* A request other than a signup: its handler owns m->p. */
static void rg_request(struct registrar *g, int shard, const struct xmsg *m)
{
	switch (m->type) {
	case RQ_PRESENCE:
		rg_presence(g, m->p);
		break;
	case RQ_PROVISION:      /* registry/provision.c */
		rg_provision(g, m->p);
		break;
	default:
		log_warn("registrar: request type %u from shard %d ignored", m->type, shard);
		free(m->p);
		break;
	}
}

/* See registry/registrar-int.h. */
int registrar_turn(struct registrar *g, uint64_t now_ns)
{
	struct pend ps[64];
	struct xmsg m;
	int np = 0, ret = 0;
	bool left = false;

	for (int s = 0; s < g->n; s++)
		spsc_arm_mt(&g->in[s]);
	/* Round robin over the shards, RG_TURN_MAX per shard per turn, in
	 * batches of one sync each. */
	for (int s = 0; s < g->n; s++) {
		int k = 0;

		for (; k < RG_TURN_MAX && spsc_pop_mt(&g->in[s], &m); k++) {
			if (m.type != RQ_SIGNUP) {
				rg_request(g, s, &m);
				continue;
			}
			ps[np++] = (struct pend){ .req = m.p, .shard = s };
			if (np == (int)(sizeof ps / sizeof ps[0])) {
				signups(g, ps, np, now_ns);
				np = 0;
			}
		}
		if (k == RG_TURN_MAX)
			left = true;
	}
	if (np)
		signups(g, ps, np, now_ns);
	rg_crl_dir_tick(g, g->crl_dir, now_ns);  /* --crl-dir (registry/crl.c) */
	for (int s = 0; s < g->n; s++)
		backlog_flush(g, s);
	if (left)
		ret |= 1;
	if (backlog_pending(g))
		ret |= 2;
	return ret;
}

/* ---- life cycle ----------------------------------------------------------- */

/* See registry/registrar-int.h. */
int registrar_init(struct registrar **out, struct registry *reg,
		   struct broker_rt *rt, struct tls_server *tls,
		   const struct registrar_cfg *cfg, char *err, size_t errlen)
{
	static const struct registrar_cfg none;
	struct registrar *g;
	uint32_t rate, burst;
	int rc;

	if (errlen)
		err[0] = '\0';
	if (!cfg)
		cfg = &none;
	*out = NULL;
	g = calloc(1, sizeof *g);
	if (!g)
		goto nomem;
	g->reg = reg;
	g->rt = rt;
	g->tls = tls;
	g->n = rt ? rt->n : 0;
	g->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->efd < 0) {
		rc = -errno;
		snprintf(err, errlen, "registrar: eventfd: %s", strerror(errno));
		goto fail;
	}
	if (g->n) {
		g->in = calloc((size_t)g->n, sizeof *g->in);
		g->out = calloc((size_t)g->n, sizeof *g->out);
		if (!g->in || !g->out)
			goto nomem;
		for (int s = 0; s < g->n; s++)
			if (spsc_init(&g->in[s], RG_RING_CAP) != 0)
				goto nomem;
	}
	rate = cfg->signup_rate ? cfg->signup_rate : 15;
	burst = cfg->signup_burst ? cfg->signup_burst : rate;
	if (reg_limiter_init(&g->lim, rate, burst, mono_ns()) != 0)
		goto nomem;
	if (cfg->data_dir && cfg->data_dir[0] && !(g->data_dir = strdup(cfg->data_dir)))
		goto nomem;
	rc = code_load(g, err, errlen);
	if (rc)
		goto fail;
	if (rg_expiry_init(g, cfg->expiry_warning_days) != 0)
		goto nomem;
	rc = pol_store_open(&g->pol, cfg->data_dir, err, errlen);
	if (rc)
		goto fail;
	rc = admin_start(&g->admin, g, cfg, err, errlen);
	if (rc)
		goto fail;
	rc = rg_provision_init(&g->prov, cfg->issuing_ca, cfg->issuing_key, err, errlen);
	if (rc)
		goto fail;
	if (cfg->crl_dir && cfg->crl_dir[0]) {
		rc = rg_crl_dir_open(&g->crl_dir, cfg->crl_dir, err, errlen);
		if (rc)
			goto fail;
	}
	g->admin_port = admin_port(g->admin);
	*out = g;
	return 0;
nomem:
	rc = -ENOMEM;
	snprintf(err, errlen, "registrar: out of memory");
fail:
	registrar_free(g);
	return rc;
}

/* See registry/registrar-int.h. */
void registrar_free(struct registrar *g)
{
	struct xmsg m;

	if (!g)
		return;
	admin_stop(g->admin);
	rg_crl_dir_free(g->crl_dir);
	rg_provision_free(g->prov);
	for (int s = 0; g->in && s < g->n; s++) {
		if (!g->in[s].slots)
			continue;
		while (spsc_pop_mt(&g->in[s], &m))
			free(m.p);
		spsc_destroy(&g->in[s]);
	}
	for (int s = 0; g->out && s < g->n; s++) {
		struct rg_backlog *q = &g->out[s];

		for (uint32_t i = 0; i < q->n; i++)
			free_payload(&q->v[(q->head + i) % q->cap]);
		free(q->v);
	}
	free(g->in);
	free(g->out);
	if (g->efd >= 0)
		close(g->efd);
	free(g->data_dir);
	reg_limiter_free(&g->lim);
	rg_presence_free(g);
	rg_expiry_free(g);
	pol_store_close(g->pol);
	free(g);
}

static void *registrar_main(void *arg)
{
	struct registrar *g = arg;

	log_set_thread_name("registrar");
	while (!atomic_load(&g->stop)) {
		struct pollfd pf[2] = {
			{ .fd = g->efd, .events = POLLIN },
			{ .fd = admin_fd(g->admin), .events = POLLIN },
		};
		int more = registrar_turn(g, mono_ns());

		rg_expiry_tick(g, (int64_t)time(NULL));
		int timeout = 1000, at;

		if (more & 1)
			timeout = 0;
		else if (more & 2)
			timeout = 1;    /* a shard's ring is full: retry soon */
		at = admin_timeout_ms(g->admin);
		if (at >= 0 && at < timeout)
			timeout = at;
		if (poll(pf, pf[1].fd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR) {
			log_error("registrar: poll: %s", strerror(errno));
			usleep(10000);
		}
		if (pf[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(g->efd, &v, sizeof v);

			(void)r;
		}
		admin_run(g->admin);
	}
#ifdef FP_ECC
	/* wolfCrypt keeps a per-thread cache of ECC points from the signature
	 * checks of the admin API: release this thread's before it ends. */
	wc_ecc_fp_free();
#endif
	return NULL;
}

/* See registry/registrar.h. */
int registrar_start(struct registrar **out, struct registry *reg, struct broker_rt *rt,
		    struct tls_server *tls, const struct registrar_cfg *cfg,
		    char *err, size_t errlen)
{
	struct registrar *g;
	int rc = registrar_init(&g, reg, rt, tls, cfg, err, errlen);

	*out = NULL;
	if (rc)
		return rc;
	rc = pthread_create(&g->thread, NULL, registrar_main, g);
	if (rc) {
		snprintf(err, errlen, "registrar: cannot start its thread: %s", strerror(rc));
		registrar_free(g);
		return -rc;
	}
	g->thread_started = true;
	*out = g;
	return 0;
}

/* See registry/registrar.h. */
void registrar_stop(struct registrar *g)
{
	uint64_t one = 1;
	ssize_t w;

	if (!g)
		return;
	atomic_store(&g->stop, true);
	w = write(g->efd, &one, sizeof one);
	(void)w;
	if (g->thread_started)
		pthread_join(g->thread, NULL);
	registrar_free(g);
}

/* See registry/registrar.h. */
int registrar_post_lazy_mt(struct registrar *g, int shard, uint32_t type, void *p)
{
	struct xmsg m = { .type = type, .p = p };

	if (!g || shard < 0 || shard >= g->n || !p)
		return -EINVAL;
	return spsc_push_mt(&g->in[shard], &m);
}

/* See registry/registrar.h. */
void registrar_wake_mt(struct registrar *g)
{
	uint64_t one = 1;
	ssize_t w = write(g->efd, &one, sizeof one);

	(void)w;
}

/* See registry/registrar.h. */
int registrar_post_mt(struct registrar *g, int shard, uint32_t type, void *p)
{
	int rc = registrar_post_lazy_mt(g, shard, type, p);

	if (rc == 0 && spsc_should_wake_mt(&g->in[shard]))
		registrar_wake_mt(g);
	return rc;
}

/* See registry/registrar.h. */
int registrar_submit_mt(struct registrar *g, int shard, struct signup_req *req)
{
	return registrar_post_mt(g, shard, RQ_SIGNUP, req);
}

/* See registry/registrar.h. */
int registrar_admin_port(const struct registrar *g)
{
	return g ? g->admin_port : 0;
}
