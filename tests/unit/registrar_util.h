/*
 * Helpers shared by the registrar tests: a broker runtime with real SPSC
 * rings and no shard threads (the test pops what the registrar posted), and
 * real certificates made with tls/pki (CAs, devices, verification
 * certificates) so that parsing and signature checks run for real.
 */
#ifndef VOUCH_TESTS_REGISTRAR_UTIL_H
#define VOUCH_TESTS_REGISTRAR_UTIL_H

#include <sys/eventfd.h>

#include "core/shard-t.h"
#include "core/spsc.h"
#include "registry/registrar.h"
#include "tls/cert.h"
#include "tls/pki.h"

#include "regfile_util.h"

/* ---- a runtime without threads ------------------------------------------ */

static inline struct broker_rt *frt_new(int n, uint32_t ring_cap)
{
	struct broker_rt *rt = calloc(1, sizeof *rt);

	CHECK(rt);
	rt->n = n;
	rt->shards = calloc((size_t)n, sizeof *rt->shards);
	rt->rings = calloc((size_t)n * (size_t)(n + 1), sizeof *rt->rings);
	CHECK(rt->shards && rt->rings);
	for (int i = 0; i < n; i++) {
		rt->shards[i].id = i;
		rt->shards[i].rt = rt;
		rt->shards[i].eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(rt->shards[i].eventfd >= 0);
	}
	for (int i = 0; i < n * (n + 1); i++)
		CHECK(spsc_init(&rt->rings[i], ring_cap) == 0);
	return rt;
}

/* Pop one message the registrar (the external producer) posted to `to`. */
static inline int frt_pop(struct broker_rt *rt, int to, struct xmsg *m)
{
	return spsc_pop_mt(&rt->rings[to * (rt->n + 1) + rt->n], m);
}

static inline void frt_free_payload(const struct xmsg *m)
{
	if (m->type == RX_CERT_STATUS || m->type == RX_CA_STATUS || m->type == RX_EVENT)
		free(m->p);
}

/* Drop everything queued for every shard (payloads freed). */
static inline void frt_drain(struct broker_rt *rt)
{
	struct xmsg m;

	for (int s = 0; s < rt->n; s++)
		while (frt_pop(rt, s, &m))
			frt_free_payload(&m);
}

static inline void frt_free(struct broker_rt *rt)
{
	frt_drain(rt);
	for (int i = 0; i < rt->n * (rt->n + 1); i++)
		spsc_destroy(&rt->rings[i]);
	for (int i = 0; i < rt->n; i++)
		close(rt->shards[i].eventfd);
	free(rt->rings);
	free(rt->shards);
	free(rt);
}

/* ---- certificates ------------------------------------------------------- */

struct tcert {
	uint8_t der[TLS_PKI_DER_MAX];
	size_t len;
	uint8_t id[TLS_CERT_ID_LEN];
	struct tls_pki_key *key;        /* owned (NULL when not kept) */
};

static inline struct tls_pki_key *tkey(void)
{
	struct tls_pki_key *k = NULL;

	CHECK(tls_pki_key_generate(TLS_KEY_EC, 256, &k) == 0);
	return k;
}

/* Issue a certificate of `kind` named `cn`, for a new key (kept in
 * out->key) or for `key` when given, signed by `ca` (NULL: self-signed). */
static inline void tcert_issue(struct tcert *out, enum tls_pki_kind kind,
			       const char *cn, const char *o, const char *ou,
			       const struct tcert *ca, struct tls_pki_key *key)
{
	struct tls_pki_spec spec;
	struct tls_pki_issuer iss;
	int n;

	memset(out, 0, sizeof *out);
	out->key = key ? NULL : tkey();
	tls_pki_spec_init(&spec, kind, time(NULL), 365);
	spec.subject.cn = cn;
	spec.subject.o = o;
	spec.subject.ou = ou;
	if (ca) {
		iss = (struct tls_pki_issuer){ ca->der, ca->len, ca->key };
	}
	n = tls_pki_issue(&spec, key ? key : out->key, ca ? &iss : NULL, out->der,
			  sizeof out->der);
	if (n <= 0)
		fprintf(stderr, "tls_pki_issue: %d\n", n);
	CHECK(n > 0);
	out->len = (size_t)n;
	CHECK(tls_cert_id(out->der, out->len, out->id) == 0);
}

static inline void tcert_free(struct tcert *c)
{
	tls_pki_key_free(c->key);
	c->key = NULL;
}

/* PEM of a certificate, malloc'd. */
static inline char *tcert_pem(const struct tcert *c)
{
	size_t cap = tls_pem_size("CERTIFICATE", c->len);
	char *s = malloc(cap);

	CHECK(s && tls_pem_encode("CERTIFICATE", c->der, c->len, s, cap) > 0);
	return s;
}

static inline void thex(const uint8_t *p, size_t n, char *out)
{
	tls_hex(p, n, out);
}

/* A signup request as a shard would make it. */
static inline struct signup_req *tsignup(const struct tcert *dev, const struct tcert *ca,
					 uint32_t slot, uint32_t gen, int shard)
{
	struct signup_req *r = malloc(sizeof *r + dev->len);

	CHECK(r);
	r->shard = shard;
	r->conn_slot = slot;
	r->conn_gen = gen;
	memcpy(r->cert_id, dev->id, REG_ID_LEN);
	memcpy(r->ca_id, ca->id, REG_ID_LEN);
	r->der_len = (uint32_t)dev->len;
	memcpy(r->der, dev->der, dev->len);
	return r;
}

#endif
