/*
 * reg_query against a straightforward reference: a registry of 100,000
 * generated device certificates (5 CAs, texts with long shared prefixes,
 * serials shared across CAs, every status, bound client IDs), and a model
 * of it kept by the test. Every filter, fixed combinations and a few
 * hundred random ones are checked (total and pages) against a filter over
 * the model, in registration order:
 *   1. as built by the writes themselves (indexes sorted by the first query);
 *   2. after reopening (indexes built from the file at open);
 *   3. after changes made once the indexes are sorted: status changes,
 *      revocations (by status and by serial), deletes, re-registrations,
 *      bindings, and 10,000 new registrations (the sorted tails merge);
 *   4. after reopening again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/query.h"
#include "registry/regfile.h"
#include "regfile_util.h"

#define N_DEV   100000
#define N_MORE  10000
#define N_CA    5
#define T0      INT64_C(1700000000)

static const struct reg_by BY = { "admin:test", 1750000000 };

struct mdev {
	uint8_t id[32];
	int ca;
	uint8_t serial[8];
	char cn[64], o[16], ou[8], client[32];
	int64_t nb, na;
	int status;             /* 0 = deleted */
};

static struct mdev *model;
static size_t n_model, cap_model;
static uint8_t ca_id[N_CA][32];
static const uint8_t ca_serial[N_CA][2] = { {1, 1}, {1, 2}, {1, 3}, {1, 1}, {1, 5} };
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The certificate number n; gen is a generation so that re-registrations of
 * a deleted ID keep every field. */
static void gen(struct mdev *m, uint64_t n)
{
	memset(m, 0, sizeof(*m));
	tu_id(m->id, n, 11);
	m->ca = n % 50 == 0 ? 4 : (int)(n % 4);
	/* pairs (2k, 2k+1) of every 1000 share a serial under different CAs */
	uint64_t s = n % 1000 < 2 ? (n & ~UINT64_C(1)) : n;
	for (int i = 0; i < 8; i++)
		m->serial[i] = (uint8_t)(s >> (8 * (7 - i)));
	m->serial[0] = 0x40;
	if (n % 97 == 0)
		m->cn[0] = 0;
	else if (n % 3 == 0)
		snprintf(m->cn, sizeof m->cn, "dev-%06" PRIu64, n);
	else
		snprintf(m->cn, sizeof m->cn, "sensor.building-%02" PRIu64 ".floor-%" PRIu64 ".%06" PRIu64,
			 n % 17, n % 5, n);
	static const char *const os[] = { "Acme", "Acme Labs", "Globex" };
	snprintf(m->o, sizeof m->o, "%s", os[n % 3]);
	if (n % 11)
		snprintf(m->ou, sizeof m->ou, "ou%" PRIu64, n % 7);
	m->nb = T0 + (int64_t)(n % 5000) * 3600;
	m->na = m->nb + (int64_t)(30 + n % 730) * 86400;
	static const int st[] = { 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	m->status = st[n % 10];
	if (n % 13 == 0)
		snprintf(m->client, sizeof m->client, "client-%" PRIu64, n);
}

static int add(struct registry *r, const struct mdev *m)
{
	uint8_t der[48];
	struct reg_dev_in in = {
		.serial = m->serial, .serial_len = 8, .cn = m->cn, .o = m->o,
		.ou = m->ou, .not_before = m->nb, .not_after = m->na,
		.status = (enum reg_status)m->status, .how = REG_MANUAL,
		.client_id = m->client, .der = der, .der_len = sizeof der,
	};

	memcpy(in.id, m->id, 32);
	memcpy(in.issuer, ca_id[m->ca], 32);
	memcpy(der, m->id, 32);
	memset(der + 32, 0x5a, 16);
	int rc = reg_dev_add(r, &in, &BY);
	if (rc >= 0) {
		if (n_model == cap_model) {
			cap_model = cap_model ? cap_model * 2 : 1024;
			model = realloc(model, cap_model * sizeof(*model));
			CHECK(model);
		}
		model[n_model] = *m;
		if (rc == 1)
			model[n_model].status = REG_REVOKED;
		n_model++;
	}
	return rc;
}

/* ---- the reference ---------------------------------------------------------- */

static bool text_ok(const struct reg_qtext *t, const char *v)
{
	size_t len = strlen(v);

	if (!t->s)
		return true;
	if (t->prefix)
		return len >= t->len && !memcmp(v, t->s, t->len);
	return len == t->len && !memcmp(v, t->s, len);
}

static bool ref_ok(const struct reg_query *q, const struct mdev *m)
{
	if (!m->status || (q->status && (int)q->status != m->status))
		return false;
	if (q->id && memcmp(q->id, m->id, 32))
		return false;
	if (q->serial && (q->serial_len != 8 || memcmp(q->serial, m->serial, 8)))
		return false;
	if (q->by_ca) {
		bool in = false;
		for (size_t i = 0; i < q->n_ca; i++)
			in |= !memcmp(q->ca[i], ca_id[m->ca], 32);
		if (!in)
			return false;
	}
	if (!text_ok(&q->cn, m->cn) || !text_ok(&q->o, m->o) || !text_ok(&q->ou, m->ou))
		return false;
	if (q->client_id && strcmp(q->client_id, m->client))
		return false;
	return m->nb >= q->nb_from && m->nb <= q->nb_to &&
	       m->na >= q->na_from && m->na <= q->na_to;
}

struct got {
	uint8_t (*id)[32];
	struct reg_device *d;
	size_t n, cap;
};

static int collect(void *ctx, const struct reg_device *d)
{
	struct got *g = ctx;

	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 256;
		g->id = realloc(g->id, g->cap * 32);
		g->d = realloc(g->d, g->cap * sizeof(*g->d));
		CHECK(g->id && g->d);
	}
	g->d[g->n] = *d;        /* its pointers stay valid until reg_close */
	memcpy(g->id[g->n++], d->id, 32);
	return 0;
}

static size_t n_checked;

/* Check q's total and its page against the model. */
static void check_page(struct registry *r, const struct reg_query *q, const char *what)
{
	struct got g = { 0 };
	uint64_t total = 0, want_total = 0, k = 0;

	CHECK_RC(reg_query(r, q, &total, collect, &g), 0);
	for (size_t i = 0; i < n_model; i++) {
		if (!ref_ok(q, &model[i]))
			continue;
		if (want_total >= q->offset && want_total - q->offset < q->limit) {
			const struct mdev *m = &model[i];
			if (k >= g.n || memcmp(g.id[k], m->id, 32)) {
				fprintf(stderr, "%s: row %" PRIu64 " of the page differs (got %zu rows)\n",
					what, k, g.n);
				exit(1);
			}
			/* the snapshot is the model's */
			const struct reg_device *d = &g.d[k];
			CHECK((int)d->status == m->status && !strcmp(d->cn, m->cn) &&
			      !strcmp(d->ou, m->ou) && !strcmp(d->client_id, m->client) &&
			      d->not_after == m->na && d->not_before == m->nb);
			k++;
		}
		want_total++;
	}
	if (total != want_total || k != g.n) {
		fprintf(stderr, "%s: total %" PRIu64 " (want %" PRIu64 "), page %zu rows (want %" PRIu64 ")\n",
			what, total, want_total, g.n, k);
		exit(1);
	}
	free(g.id);
	free(g.d);
	n_checked++;
}

/* Check q in full and in a few pages. */
static void check_q(struct registry *r, struct reg_query q, const char *what)
{
	q.offset = 0;
	q.limit = UINT64_MAX;
	check_page(r, &q, what);
	q.limit = 50;
	check_page(r, &q, what);
	q.offset = 7;
	q.limit = 1;
	check_page(r, &q, what);
	q.offset = rnd() % 60000;
	q.limit = 1000;
	check_page(r, &q, what);
}

static void text(struct reg_qtext *t, const char *s, bool prefix)
{
	t->s = s;
	t->len = strlen(s);
	t->prefix = prefix;
}

static void fixed_queries(struct registry *r)
{
	struct reg_query q;
	const uint8_t (*cas)[32] = ca_id;
	const struct mdev *m = &model[12345];

	reg_query_init(&q);
	check_q(r, q, "everything");
	for (int s = 1; s <= 4; s++) {
		reg_query_init(&q);
		q.status = (enum reg_status)s;
		check_q(r, q, "status");
		q.ca = cas + 2;
		q.n_ca = 1;
		q.by_ca = true;
		check_q(r, q, "status + ca");
		text(&q.ou, "ou3", false);
		check_q(r, q, "status + ca + ou");
	}
	reg_query_init(&q);
	q.id = m->id;
	check_q(r, q, "id");
	q.status = m->status == 1 ? REG_INACTIVE : REG_ACTIVE;
	check_q(r, q, "id + other status");
	reg_query_init(&q);
	q.serial = model[2000].serial;  /* shared by 2000 and 2001 */
	q.serial_len = 8;
	check_q(r, q, "serial under two CAs");
	q.by_ca = true;
	q.ca = cas + model[2001].ca;
	q.n_ca = 1;
	check_q(r, q, "serial + ca");
	reg_query_init(&q);
	q.by_ca = true;
	q.ca = cas + 4;
	q.n_ca = 1;
	check_q(r, q, "a small CA");
	q.ca = cas;
	q.n_ca = N_CA;
	check_q(r, q, "every CA");
	q.n_ca = 0;
	check_q(r, q, "no CA at all");
	{
		/* CA serial 0101 names CAs 0 and 3 (the admin API resolves it) */
		uint8_t two[2][32];
		memcpy(two[0], ca_id[0], 32);
		memcpy(two[1], ca_id[3], 32);
		reg_query_init(&q);
		q.by_ca = true;
		q.ca = (const uint8_t (*)[32])two;
		q.n_ca = 2;
		check_q(r, q, "two CAs");
		text(&q.cn, "sensor.building-03.", true);
		check_q(r, q, "two CAs + cn prefix");
	}
	static const char *const cn_pre[] = {
		"", "d", "dev-", "dev-0123", "sensor.", "sensor.building-1",
		"sensor.building-16.floor-4.", "sensor.building-16.floor-4.0999", "zzz",
	};
	for (size_t i = 0; i < sizeof cn_pre / sizeof *cn_pre; i++) {
		reg_query_init(&q);
		text(&q.cn, cn_pre[i], true);
		check_q(r, q, "cn prefix");
		q.status = REG_INACTIVE;
		check_q(r, q, "cn prefix + status");
	}
	reg_query_init(&q);
	text(&q.cn, m->cn, false);
	check_q(r, q, "cn exact");
	text(&q.cn, "", false);
	check_q(r, q, "cn empty");
	text(&q.cn, "dev-01234", false);       /* a prefix of some, equal to none */
	check_q(r, q, "cn exact, no match");
	reg_query_init(&q);
	text(&q.o, "Acme", false);
	check_q(r, q, "o exact");
	text(&q.o, "Acme", true);
	check_q(r, q, "o prefix");
	reg_query_init(&q);
	text(&q.ou, "ou", true);
	check_q(r, q, "ou prefix");
	text(&q.ou, "", false);
	check_q(r, q, "ou empty");
	text(&q.ou, "ou6", false);
	text(&q.o, "Globex", false);
	check_q(r, q, "ou + o");
	reg_query_init(&q);
	q.nb_from = T0 + 1000 * 3600;
	q.nb_to = T0 + 1010 * 3600;
	check_q(r, q, "not-before range");
	q.na_from = T0 + 100 * 86400;
	check_q(r, q, "not-before + not-after from");
	reg_query_init(&q);
	q.na_to = T0 + 60 * 86400;
	check_q(r, q, "expired (not after up to)");
	reg_query_init(&q);
	q.na_from = T0 + 400 * 86400;
	q.na_to = T0 + 430 * 86400;
	q.status = REG_ACTIVE;
	check_q(r, q, "expiring within + ACTIVE");
	text(&q.ou, "ou1", false);
	check_q(r, q, "expiring + ACTIVE + ou");
	reg_query_init(&q);
	q.na_from = 5;
	q.na_to = 4;
	check_q(r, q, "empty range");
	reg_query_init(&q);
	q.client_id = model[13 * 77].client;
	check_q(r, q, "client ID");
	q.client_id = "nobody";
	check_q(r, q, "client ID, none");
}

/* A random combination, with values taken from a random certificate. */
static void random_queries(struct registry *r, int n)
{
	char buf[64];

	for (int i = 0; i < n; i++) {
		const struct mdev *m = &model[rnd() % n_model];
		struct reg_query q;
		uint64_t pick = rnd();

		reg_query_init(&q);
		if (pick & 1)
			q.status = (enum reg_status)(1 + rnd() % 4);
		if (pick & 2) {
			q.by_ca = true;
			q.ca = ca_id + m->ca;
			q.n_ca = 1;
		}
		if (pick & 4) {
			size_t len = strlen(m->cn), cut = len ? rnd() % (len + 1) : 0;
			memcpy(buf, m->cn, cut);
			buf[cut] = 0;
			text(&q.cn, buf, rnd() % 4 != 0);
		}
		if (pick & 8)
			text(&q.ou, m->ou, rnd() & 1);
		if (pick & 16)
			text(&q.o, m->o, rnd() & 1);
		if (pick & 32) {
			q.nb_from = m->nb - (int64_t)(rnd() % 200) * 3600;
			q.nb_to = q.nb_from + (int64_t)(rnd() % 400) * 3600;
		}
		if (pick & 64) {
			q.na_from = m->na - (int64_t)(rnd() % 20) * 86400;
			if (rnd() & 1)
				q.na_to = q.na_from + (int64_t)(rnd() % 40) * 86400;
		}
		if ((pick & 0x380) == 0x380) {
			q.serial = m->serial;
			q.serial_len = 8;
		}
		if ((pick & 0x1c00) == 0x1c00)
			q.id = m->id;
		check_q(r, q, "random");
	}
}

/* Changes after the indexes are built and sorted. */
static void change(struct registry *r)
{
	size_t n0 = n_model;
	int moved = 0, deleted = 0, readded = 0;

	CHECK_RC(reg_begin(r), 0);
	for (size_t i = 0; i < n0; i += 37) {
		struct mdev *m = &model[i];
		if (!m->status || m->status == REG_REVOKED)
			continue;
		int to = m->status == REG_ACTIVE ? REG_INACTIVE : REG_ACTIVE;
		if (i % 5 == 0)
			to = REG_REVOKED;
		CHECK_RC(reg_dev_set_status(r, m->id, (enum reg_status)to, &BY), 0);
		m->status = to;
		moved++;
	}
	for (size_t i = 3; i < n0; i += 101) {
		struct mdev *m = &model[i];
		if (m->status == REG_ACTIVE || !m->status)
			continue;
		CHECK_RC(reg_dev_delete(r, m->id, &BY), 0);
		int was = m->status;
		m->status = 0;
		deleted++;
		if (i % 2 && was != REG_REVOKED) {
			struct mdev again = *m;
			again.status = REG_ACTIVE;
			CHECK_RC(add(r, &again), 0);
			readded++;
		}
	}
	/* revoke by serial (a CRL entry) a registered certificate */
	for (size_t i = 5; i < n0; i += 997) {
		struct mdev *m = &model[i];
		if (!m->status || m->status == REG_REVOKED)
			continue;
		CHECK_RC(reg_revoke_serial(r, ca_id[m->ca], m->serial, 8, &BY), 1);
		m->status = REG_REVOKED;
	}
	for (size_t i = 1; i < n0; i += 211) {
		struct mdev *m = &model[i];
		if (!m->status)
			continue;
		snprintf(m->client, sizeof m->client, "bound-%zu", i);
		CHECK_RC(reg_dev_bind(r, m->id, m->client, strlen(m->client), &BY), 0);
	}
	CHECK_RC(reg_commit(r), 0);
	for (uint64_t n = N_DEV; n < N_DEV + N_MORE; n++) {
		struct mdev m;
		if (n % 1000 == 0)
			CHECK_RC(reg_begin(r), 0);
		gen(&m, n);
		CHECK_RC(add(r, &m), m.status == REG_REVOKED ? 0 : 0);
		if (n % 1000 == 999)
			CHECK_RC(reg_commit(r), 0);
	}
	printf("  changed: %d status changes, %d deletes, %d re-registrations, %d new\n",
	       moved, deleted, readded, N_MORE);
}

static struct registry *reopen(struct registry *r, const char *dir)
{
	char err[256];
	double t = tu_now();

	CHECK_RC(reg_close(r), 0);
	CHECK_RC(reg_open(&r, dir, err, sizeof err), 0);
	printf("  reopened in %.0f ms\n", (tu_now() - t) * 1e3);
	return r;
}

int main(void)
{
	char *dir = tu_tmpdir();
	struct registry *r;
	char err[256];
	double t;

	CHECK_RC(reg_open(&r, dir, err, sizeof err), 0);
	for (int c = 0; c < N_CA; c++) {
		struct tu_ca ca;
		tu_ca_make(&ca, (uint64_t)c, false, REG_ACTIVE);
		ca.in.serial = ca_serial[c];
		ca.in.serial_len = 2;
		memcpy(ca_id[c], ca.in.id, 32);
		CHECK_RC(reg_ca_add(r, &ca.in, &BY), 0);
	}
	t = tu_now();
	for (uint64_t n = 0; n < N_DEV; n++) {
		struct mdev m;
		if (n % 1000 == 0)
			CHECK_RC(reg_begin(r), 0);
		gen(&m, n);
		CHECK_RC(add(r, &m), 0);
		if (n % 1000 == 999)
			CHECK_RC(reg_commit(r), 0);
	}
	printf("  %d registrations in %.0f ms\n", N_DEV, (tu_now() - t) * 1e3);

	t = tu_now();
	fixed_queries(r);
	random_queries(r, 150);
	printf("  1. built by writes: %zu checks in %.0f ms\n", n_checked, (tu_now() - t) * 1e3);

	r = reopen(r, dir);
	t = tu_now();
	fixed_queries(r);
	random_queries(r, 150);
	printf("  2. built at open: %zu checks in %.0f ms\n", n_checked, (tu_now() - t) * 1e3);

	change(r);
	t = tu_now();
	fixed_queries(r);
	random_queries(r, 150);
	printf("  3. after changes: %zu checks in %.0f ms\n", n_checked, (tu_now() - t) * 1e3);

	r = reopen(r, dir);
	fixed_queries(r);
	random_queries(r, 100);
	printf("  4. reopened: %zu checks\n", n_checked);

	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
	free(model);
	printf("test_query: ok\n");
	return 0;
}
