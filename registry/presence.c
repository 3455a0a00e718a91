/*
 * Who is connected: the registrar's table of live clients, fed by the
 * shards' presence messages (one when a CONNACK accepts a client, one when
 * its connection ends), and the $SYS/presence events published from them.
 *
 * The table answers the admin API's "associated clients" of a certificate
 * without asking the shards: client ID -> entry, and certificate ID -> the
 * entries of that certificate. A shard's messages arrive in the order it
 * posted them (one SPSC ring per shard), and a client ID lives on one home
 * shard, so a takeover's "disconnected" precedes the new "connected"; an
 * entry is still removed only by the connection that made it.
 *
 * Registrar thread only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hmap.h"
#include "core/log.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"

struct live {
	struct live *prev, *next;       /* same certificate */
	uint8_t cert_id[REG_ID_LEN];
	bool has_cert;
	uint8_t version;
	int16_t shard;
	uint32_t slot, gen;
	uint64_t since_ms;
	char peer[64];
	uint16_t cid_len;
	char client_id[];
};

struct cert_live {
	uint8_t id[REG_ID_LEN];
	struct live *head;
};

struct rg_presence {
	struct hmap by_client;          /* struct live */
	struct hmap by_cert;            /* struct cert_live */
	uint64_t events;
};

static void live_key(const void *v, const void **k, size_t *len)
{
	const struct live *l = v;

	*k = l->client_id;
	*len = l->cid_len;
}

static void cert_key(const void *v, const void **k, size_t *len)
{
	*k = ((const struct cert_live *)v)->id;
	*len = REG_ID_LEN;
}

static struct rg_presence *table(struct registrar *g)
{
	if (!g->pres && (g->pres = calloc(1, sizeof *g->pres))) {
		hmap_init(&g->pres->by_client, live_key);
		hmap_init(&g->pres->by_cert, cert_key);
	}
	return g->pres;
}

static void unlink_live(struct rg_presence *t, struct live *l)
{
	hmap_del(&t->by_client, l);
	if (!l->has_cert)
		return;
	struct cert_live *cl = hmap_get(&t->by_cert, l->cert_id, REG_ID_LEN);

	if (l->prev)
		l->prev->next = l->next;
	else if (cl)
		cl->head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	if (cl && !cl->head) {
		hmap_del(&t->by_cert, cl);
		free(cl);
	}
}

static int link_live(struct rg_presence *t, struct live *l)
{
	if (hmap_put(&t->by_client, l) != 0)
		return -1;
	if (!l->has_cert)
		return 0;
	struct cert_live *cl = hmap_get(&t->by_cert, l->cert_id, REG_ID_LEN);

	if (!cl) {
		cl = calloc(1, sizeof *cl);
		if (!cl || (memcpy(cl->id, l->cert_id, REG_ID_LEN), hmap_put(&t->by_cert, cl)) != 0) {
			free(cl);
			hmap_del(&t->by_client, l);
			return -1;
		}
	}
	l->prev = NULL;
	l->next = cl->head;
	if (cl->head)
		cl->head->prev = l;
	cl->head = l;
	return 0;
}

static const char *reason_name(uint8_t r)
{
	switch (r) {
	case PR_CLIENT_DISCONNECT: return "client disconnect";
	case PR_CONNECTION_LOST: return "connection lost";
	case PR_KEEPALIVE_TIMEOUT: return "keep-alive timeout";
	case PR_TAKEN_OVER: return "taken over";
	case PR_CERT_DISABLED: return "certificate disabled";
	case PR_PROTOCOL_ERROR: return "protocol error";
	case PR_SERVER_SHUTDOWN: return "server shutdown";
	case PR_CLIENT_ID_BOUND: return "client ID bound to another certificate";
	default: return "unknown";
	}
}

/*
 * A client ID as one topic level: '/', '+', '#' and '%' (and control
 * bytes) are percent-encoded so that the level can be neither split nor
 * taken for a wildcard. Returns the length written (always < cap), or -1
 * when it does not fit.
 */
static int topic_level(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '/' || ch == '+' || ch == '#' || ch == '%' || ch < 0x20 || ch == 0x7f) {
			if (o + 3 >= cap)
				return -1;
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
		} else {
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return (int)o;
}

static json_t *live_json(const struct live *l)
{
	return json_pack("{s:s%, s:i, s:s, s:s, s:I}",
			 "clientId", l->client_id, (size_t)l->cid_len,
			 "shard", (int)l->shard, "peerAddress", l->peer,
			 "protocolVersion", l->version == 5 ? "5.0" : "3.1.1",
			 "connectedAt", (json_int_t)(l->since_ms / 1000));
}

/* See registry/registrar.h. */
int rg_presence_topic(char *out, size_t cap, bool connected, const char *cid, size_t len)
{
	int n = snprintf(out, cap, "$SYS/presence/%s/", connected ? "connected" : "disconnected");

	if (n < 0 || (size_t)n >= cap)
		return -1;
	int m = topic_level(cid, len, out + n, cap - (size_t)n);
	return m < 0 ? -1 : n + m;
}

static void publish(struct registrar *g, const struct presence_msg *pm, const struct live *l)
{
	char hex[2 * REG_ID_LEN + 1], *topic;
	size_t cap = 40 + 3 * (size_t)pm->cid_len;
	json_t *o;

	topic = malloc(cap);
	if (!topic)
		return;
	if (rg_presence_topic(topic, cap, pm->connected, pm->client_id, pm->cid_len) < 0) {
		free(topic);
		return;
	}
	tls_hex(pm->cert_id, REG_ID_LEN, hex);
	o = json_pack("{s:s%, s:o, s:s, s:i, s:s, s:I, s:I}",
		      "clientId", pm->client_id, (size_t)pm->cid_len,
		      "certificateId", pm->has_cert ? json_string(hex) : json_null(),
		      "peerAddress", pm->peer, "shard", (int)pm->shard,
		      "protocolVersion", pm->version == 5 ? "5.0" : "3.1.1",
		      "connectedAt", (json_int_t)((l ? l->since_ms : pm->since_ms) / 1000),
		      "timestamp", (json_int_t)time(NULL));
	if (o && !pm->connected &&
	    json_object_set_new(o, "reason", json_string(reason_name(pm->reason)))) {
		json_decref(o);
		o = NULL;
	}
	if (rg_publish_json(g, topic, o))
		g->pres->events++;
	free(topic);
}

/* See registry/registrar-int.h. */
void rg_presence(struct registrar *g, struct presence_msg *pm)
{
	struct rg_presence *t = table(g);
	struct live *l;

	if (!t) {
		free(pm);
		return;
	}
	l = hmap_get(&t->by_client, pm->client_id, pm->cid_len);
	if (pm->connected) {
		if (l) {
			/* a "disconnected" was lost (its ring was full): the
			 * newer connection is the one that is live */
			unlink_live(t, l);
			free(l);
		}
		l = calloc(1, sizeof *l + pm->cid_len + 1);
		if (l) {
			memcpy(l->cert_id, pm->cert_id, REG_ID_LEN);
			l->has_cert = pm->has_cert;
			l->version = pm->version;
			l->shard = pm->shard;
			l->slot = pm->conn_slot;
			l->gen = pm->conn_gen;
			l->since_ms = pm->since_ms;
			memcpy(l->peer, pm->peer, sizeof l->peer);
			l->peer[sizeof l->peer - 1] = '\0';
			l->cid_len = pm->cid_len;
			memcpy(l->client_id, pm->client_id, pm->cid_len);
			if (link_live(t, l) != 0) {
				free(l);
				l = NULL;
			}
		}
		if (!l)
			log_warn("registrar: out of memory for the table of live clients");
		publish(g, pm, l);
	} else {
		bool mine = l && l->shard == pm->shard && l->slot == pm->conn_slot &&
			    l->gen == pm->conn_gen;

		publish(g, pm, mine ? l : NULL);
		if (mine) {
			unlink_live(t, l);
			free(l);
		}
	}
	free(pm);
}

/* See registry/registrar-int.h. */
json_t *rg_presence_clients(struct registrar *g, const uint8_t cert_id[REG_ID_LEN])
{
	json_t *arr = json_array();
	struct cert_live *cl;

	if (!arr || !g->pres)
		return arr;
	cl = hmap_get(&g->pres->by_cert, cert_id, REG_ID_LEN);
	for (struct live *l = cl ? cl->head : NULL; l; l = l->next) {
		if (json_array_append_new(arr, live_json(l)) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* See registry/registrar-int.h. */
uint64_t rg_presence_count(const struct registrar *g)
{
	return g->pres ? g->pres->by_client.n : 0;
}

/* See registry/registrar-int.h. */
void rg_presence_free(struct registrar *g)
{
	struct rg_presence *t = g->pres;
	uint32_t it = 0;
	void *v;

	if (!t)
		return;
	while ((v = hmap_next(&t->by_client, &it)))
		free(v);
	it = 0;
	while ((v = hmap_next(&t->by_cert, &it)))
		free(v);
	hmap_free(&t->by_client);
	hmap_free(&t->by_cert);
	free(t);
	g->pres = NULL;
}
