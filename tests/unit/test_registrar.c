/*
 * Registrar tests, single-threaded: the test thread plays the registrar
 * (registrar_init + registrar_turn, no thread) and the shards (a runtime
 * with real SPSC rings and no shard threads), against a real registry in a
 * temporary directory and real certificates.
 *
 *   limiter     exactness of the token bucket on a simulated clock
 *   signups     limiter, outcomes, answers, notices to every shard, events,
 *               shard rings that are full (backlog), durability
 *   admin       the API handler: registration code, CA proof of
 *               possession (right code + key; wrong code, wrong key,
 *               non-CA), the certificate lifecycle and its state rules,
 *               tokens, errors
 */
#include <jansson.h>
#include <stdarg.h>

#include "registry/admin.h"
#include "registry/limiter.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"

#include "registrar_util.h"

#define NS 1000000000ull

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* ---- limiter ---------------------------------------------------------------- */

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Every window [t_i, t_j] between two passes holds at most
 * burst + rate * (t_j - t_i) passes. */
static void check_windows(const uint64_t *t, size_t n, uint64_t rate, uint64_t burst)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i; j < n; j++) {
			uint64_t count = j - i + 1;

			if (count <= burst)
				continue;
			CHECK((count - burst) * NS <= rate * (t[j] - t[i]));
		}
	/* and any one second holds at most `rate` of them, whatever the burst */
	for (size_t i = 0; i + rate < n; i++)
		CHECK(t[i + rate] - t[i] >= NS);
}

/* Re-initialise l (zeroed or initialised before). */
static void relim(struct reg_limiter *l, uint32_t rate, uint32_t burst, uint64_t now)
{
	reg_limiter_free(l);
	CHECK(reg_limiter_init(l, rate, burst, now) == 0);
}

static void test_limiter(void)
{
	struct reg_limiter l = { 0 };
	uint64_t t0 = 5 * NS, passed = 0;

	/* Default shape: rate 15, burst = rate. Continuous demand for 10 s
	 * gets exactly burst + rate * 10. */
	relim(&l, 15, 0, t0);
	for (uint64_t ms = 0; ms <= 10000; ms++)
		while (reg_limiter_take(&l, t0 + ms * 1000000ull))
			passed++;
	CHECK_RC(passed, 15 + 150);

	/* The default shape never lets more than `rate` through in a second:
	 * a full bucket of 15 at t0 - 1 ms and demand every millisecond after
	 * would let 29 through by t0 + 1 s with a bucket alone. */
	relim(&l, 15, 15, t0);
	passed = 0;
	for (uint64_t ms = 0; ms < 1000; ms++)
		while (reg_limiter_take(&l, t0 + ms * 1000000ull))
			passed++;
	CHECK_RC(passed, 15);
	CHECK_RC(reg_limiter_wait_ns(&l, t0 + 999 * 1000000ull), 1000000ull);
	CHECK(reg_limiter_take(&l, t0 + NS));
	reg_limiter_free(&l);

	/* Just before a token is due nothing passes; at the due time one. */
	relim(&l, 3, 2, t0);
	CHECK(reg_limiter_take(&l, t0) && reg_limiter_take(&l, t0));
	CHECK(!reg_limiter_take(&l, t0));
	uint64_t w = reg_limiter_wait_ns(&l, t0);
	CHECK_RC(w, (NS + 2) / 3);
	CHECK(!reg_limiter_take(&l, t0 + w - 1));
	CHECK(reg_limiter_take(&l, t0 + w));
	CHECK(!reg_limiter_ready(&l, t0 + w));
	/* A clock that goes back adds nothing, and does not break later refills. */
	CHECK(!reg_limiter_take(&l, t0));
	/* the bucket has refilled a token, but three passed in this second */
	CHECK(!reg_limiter_take(&l, t0 + w + (NS + 2) / 3));
	CHECK(reg_limiter_take(&l, t0 + NS));

	/* A bucket bigger than the rate: the window holds the third of a
	 * second back although the bucket has tokens. */
	relim(&l, 2, 5, t0);
	CHECK(reg_limiter_take(&l, t0) && reg_limiter_take(&l, t0 + 1));
	CHECK(!reg_limiter_take(&l, t0 + NS - 1));
	CHECK_RC(reg_limiter_wait_ns(&l, t0 + NS - 1), 1);
	CHECK(reg_limiter_take(&l, t0 + NS));

	/* The bucket never holds more than burst. */
	relim(&l, 10, 4, t0);
	passed = 0;
	while (reg_limiter_take(&l, t0 + 1000 * NS))
		passed++;
	CHECK_RC(passed, 4);

	/* Rate 0: the burst, then nothing ever. */
	relim(&l, 0, 2, t0);
	CHECK(reg_limiter_take(&l, t0) && reg_limiter_take(&l, t0));
	CHECK(!reg_limiter_take(&l, t0 + 1000000 * NS));
	CHECK(reg_limiter_wait_ns(&l, t0) == UINT64_MAX);

	/* Random arrivals, several shapes: every window is within bounds. */
	static const uint32_t shapes[][2] = {
		{ 15, 15 }, { 1, 1 }, { 1000, 3 }, { 7, 20 }, { 15, 1 }, { 100, 100 },
	};
	static uint64_t times[20000];
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		uint64_t rate = shapes[s][0], burst = shapes[s][1], t = t0;
		size_t n = 0;

		relim(&l, (uint32_t)rate, (uint32_t)burst, t0);
		for (int k = 0; k < 200000 && n < 20000; k++) {
			t += rnd() % (3 * NS / rate / 2 + 1);
			if (reg_limiter_take(&l, t))
				times[n++] = t;
		}
		CHECK(n > burst);
		check_windows(times, n < 3000 ? n : 3000, rate, burst);

		/* Saturating demand over exactly 10 s, sampled every 100 us: never
		 * over the bound; under it only by what a full bucket loses
		 * between two samples. */
		relim(&l, (uint32_t)rate, (uint32_t)burst, t0);
		passed = 0;
		for (uint64_t us = 0; us <= 10000000; us += 100)
			while (reg_limiter_take(&l, t0 + us * 1000))
				passed++;
		uint64_t full = (burst < rate ? burst : rate) + rate * 10;
		CHECK(passed <= full);
		CHECK(passed >= full - (rate * 10) / 100 - 1);
	}
	reg_limiter_free(&l);
	printf("limiter: ok\n");
}

/* ---- signups ------------------------------------------------------------------ */

struct answer {
	bool got;
	int outcome;
	enum reg_status status;
};

struct seen {
	struct answer ans[4096];        /* by conn_slot */
	int notices[8];                 /* RX_CERT_STATUS per shard */
	int ca_notices[8];
	int events;
	uint8_t last_id[8][REG_ID_LEN];
	enum reg_status last_status[8];
	char last_client[8][REG_CLIENT_MAX + 1];
	char last_topic[160];
	json_t *last_event;
};

static void seen_reset(struct seen *s)
{
	json_decref(s->last_event);
	memset(s, 0, sizeof *s);
}

/* Run the registrar and take everything it posts until it is idle. */
static void pump(struct registrar *g, struct broker_rt *rt, uint64_t now, struct seen *s)
{
	for (int round = 0; round < 10000; round++) {
		int more = registrar_turn(g, now);
		bool any = false;
		struct xmsg m;

		for (int sh = 0; sh < rt->n; sh++) {
			while (frt_pop(rt, sh, &m)) {
				any = true;
				if (m.type == RX_SIGNUP_DONE) {
					CHECK(m.a < 4096);
					CHECK(!s->ans[m.a].got);
					CHECK(m.b == m.a * 3 + 1);      /* generation echoed */
					s->ans[m.a].got = true;
					s->ans[m.a].outcome = (int)(m.c & 0xff);
					s->ans[m.a].status = (enum reg_status)(m.c >> 8);
				} else if (m.type == RX_CERT_STATUS || m.type == RX_CA_STATUS) {
					struct reg_notice *nt = m.p;

					if (m.type == RX_CERT_STATUS)
						s->notices[sh]++;
					else
						s->ca_notices[sh]++;
					memcpy(s->last_id[sh], nt->id, REG_ID_LEN);
					s->last_status[sh] = nt->status;
					memcpy(s->last_client[sh], nt->client_id, sizeof nt->client_id);
				} else if (m.type == RX_EVENT) {
					struct reg_event_msg *ev = m.p;
					json_error_t je;

					CHECK(sh == 0);
					CHECK(strlen(ev->json) == ev->len);
					s->events++;
					snprintf(s->last_topic, sizeof s->last_topic, "%s", ev->topic);
					json_decref(s->last_event);
					s->last_event = json_loadb(ev->json, ev->len, 0, &je);
					CHECK(s->last_event);
				} else {
					CHECK(!"unexpected message type");
				}
				frt_free_payload(&m);
			}
		}
		if (!more && !any)
			return;
	}
	CHECK(!"registrar never went idle");
}

static void add_ca(struct registry *reg, const struct tcert *ca, bool auto_on,
		   enum reg_status auto_status, enum reg_status status)
{
	struct tls_cert_info ci;
	struct reg_by by = { .actor = "test" };

	CHECK(tls_cert_parse(ca->der, ca->len, &ci) == 0);
	struct reg_ca_in in = {
		.serial = ci.serial, .serial_len = ci.serial_len,
		.cn = ci.cn, .o = ci.o, .ou = ci.ou,
		.not_before = ci.not_before, .not_after = ci.not_after,
		.status = status, .auto_register = auto_on, .auto_status = auto_status,
		.der = ca->der, .der_len = ca->len,
	};
	memcpy(in.id, ci.id, REG_ID_LEN);
	CHECK_RC(reg_ca_add(reg, &in, &by), 0);
}

static void submit(struct registrar *g, const struct tcert *dev, const struct tcert *ca,
		   uint32_t slot, int shard)
{
	CHECK_RC(registrar_submit_mt(g, shard, tsignup(dev, ca, slot, slot * 3 + 1, shard)), 0);
}

static void test_signups(void)
{
	char *dir = tu_tmpdir(), err[256];
	struct registry *reg;
	struct broker_rt *rt = frt_new(2, 8);   /* small rings: the backlog is used */
	struct registrar *g;
	struct registrar_cfg cfg = { .signup_rate = 5, .signup_burst = 5, .data_dir = dir };
	static struct tcert ca1, ca2, ca3, ca4, other, dev[60];
	static struct seen s;
	struct tls_pki_key *dk = tkey();
	struct reg_device d;
	struct reg_by by = { .actor = "test" };
	char hex[65];
	uint64_t now;

	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);
	tcert_issue(&ca1, TLS_PKI_ROOT_CA, "CA one", "Vouch", NULL, NULL, NULL);
	tcert_issue(&ca2, TLS_PKI_ROOT_CA, "CA two", "Vouch", NULL, NULL, NULL);
	tcert_issue(&ca3, TLS_PKI_ROOT_CA, "CA three", "Vouch", NULL, NULL, NULL);
	tcert_issue(&ca4, TLS_PKI_ROOT_CA, "CA four", "Vouch", NULL, NULL, NULL);
	tcert_issue(&other, TLS_PKI_ROOT_CA, "Unregistered CA", NULL, NULL, NULL, NULL);
	add_ca(reg, &ca1, true, REG_ACTIVE, REG_ACTIVE);
	add_ca(reg, &ca2, true, REG_PENDING_ACTIVATION, REG_ACTIVE);
	add_ca(reg, &ca3, false, REG_ACTIVE, REG_ACTIVE);
	add_ca(reg, &ca4, true, REG_ACTIVE, REG_INACTIVE);
	for (int i = 0; i < 60; i++) {
		char cn[32];
		const struct tcert *ca = i < 20 || i >= 40 ? &ca1 : i < 25 ? &ca2 :
					 i < 28 ? &ca3 : i < 31 ? &ca4 : &other;

		snprintf(cn, sizeof cn, "SN%04d", i);
		tcert_issue(&dev[i], TLS_PKI_DEVICE, cn, "IoV", "fleet-a", ca, dk);
	}

	CHECK_RC(registrar_init(&g, reg, rt, NULL, &cfg, err, sizeof err), 0);
	now = mono();

	/* Burst 5: of 8 at once (from both shards), 5 register and 3 are over
	 * the limit. */
	for (uint32_t i = 0; i < 8; i++)
		submit(g, &dev[i], &ca1, i, (int)(i % 2));
	pump(g, rt, now, &s);
	int n_reg = 0, last = -1;
	for (int i = 0; i < 8; i++) {
		CHECK(s.ans[i].got);
		if (s.ans[i].outcome == SIGNUP_REGISTERED) {
			n_reg++;
			CHECK_RC(s.ans[i].status, REG_ACTIVE);
			CHECK_RC(reg_dev_get_mt(reg, dev[i].id, &d), 0);
			CHECK(d.how == REG_AUTO && d.status == REG_ACTIVE);
			CHECK(!strcmp(d.created_by, "auto"));
			CHECK(!memcmp(d.issuer, ca1.id, REG_ID_LEN));
			if (!memcmp(s.last_id[1], dev[i].id, REG_ID_LEN))
				last = i;
		} else {
			CHECK_RC(s.ans[i].outcome, SIGNUP_OVER_LIMIT);
			CHECK_RC(reg_dev_get_mt(reg, dev[i].id, &d), -ENOENT);
		}
	}
	CHECK_RC(n_reg, 5);
	CHECK(last >= 0);
	/* Every shard heard of every registration; shard 0 published them. */
	CHECK_RC(s.notices[0], 5);
	CHECK_RC(s.notices[1], 5);
	CHECK_RC(s.last_status[1], REG_ACTIVE);
	CHECK_RC(s.events, 5);
	thex(ca1.id, 32, hex);
	CHECK(!strncmp(s.last_topic, "$SYS/certificates/registered/", 29));
	CHECK(!strcmp(s.last_topic + 29, hex));
	CHECK(!strcmp(json_string_value(json_object_get(s.last_event, "caCertificateId")), hex));
	thex(dev[last].id, 32, hex);
	CHECK(!strcmp(json_string_value(json_object_get(s.last_event, "certificateId")), hex));
	char cn[16];
	snprintf(cn, sizeof cn, "SN%04d", last);
	CHECK(!strcmp(json_string_value(json_object_get(s.last_event, "commonName")), cn));
	CHECK(!strcmp(json_string_value(json_object_get(s.last_event, "status")), "ACTIVE"));
	CHECK(json_is_string(json_object_get(s.last_event, "serialNumber")));
	CHECK(json_integer_value(json_object_get(s.last_event, "timestamp")) > 1600000000);
	CHECK(g->stats.deferred > 0);   /* rings of 8 overflowed into the backlog */

	/* One second later five more tokens: the three refused ones pass. */
	seen_reset(&s);
	for (uint32_t i = 0; i < 8; i++)
		if (reg_dev_get_mt(reg, dev[i].id, &d) != 0)
			submit(g, &dev[i], &ca1, i, 0);
	pump(g, rt, now + NS, &s);
	for (int i = 0; i < 8; i++) {
		CHECK_RC(reg_dev_get_mt(reg, dev[i].id, &d), 0);
		CHECK(!s.ans[i].got || s.ans[i].outcome == SIGNUP_REGISTERED);
	}

	/* Known certificates cost no token: EXISTS with their status. */
	seen_reset(&s);
	CHECK_RC(reg_dev_set_status(reg, dev[0].id, REG_INACTIVE, &by), 0);
	submit(g, &dev[0], &ca1, 0, 1);
	/* The same new certificate twice in one turn: one registration. */
	submit(g, &dev[8], &ca1, 1, 0);
	submit(g, &dev[8], &ca1, 2, 1);
	pump(g, rt, now + NS, &s);
	CHECK(s.ans[0].outcome == SIGNUP_EXISTS && s.ans[0].status == REG_INACTIVE);
	CHECK(s.ans[1].outcome == SIGNUP_REGISTERED && s.ans[1].status == REG_ACTIVE);
	CHECK(s.ans[2].outcome == SIGNUP_EXISTS && s.ans[2].status == REG_ACTIVE);
	CHECK_RC(s.notices[0], 1);
	CHECK_RC(s.events, 1);

	/* The CA decides the initial status; CAs that refuse, inactive CAs and
	 * unregistered CAs write nothing. */
	seen_reset(&s);
	submit(g, &dev[20], &ca2, 20, 0);
	submit(g, &dev[25], &ca3, 25, 0);
	submit(g, &dev[28], &ca4, 28, 1);
	submit(g, &dev[31], &other, 31, 1);
	pump(g, rt, now + NS, &s);
	CHECK(s.ans[20].outcome == SIGNUP_REGISTERED && s.ans[20].status == REG_PENDING_ACTIVATION);
	CHECK_RC(s.ans[25].outcome, SIGNUP_REFUSED);
	CHECK_RC(s.ans[28].outcome, SIGNUP_REFUSED);
	CHECK_RC(s.ans[31].outcome, SIGNUP_REFUSED);
	CHECK_RC(reg_dev_get_mt(reg, dev[25].id, &d), -ENOENT);
	CHECK_RC(reg_dev_get_mt(reg, dev[28].id, &d), -ENOENT);
	CHECK_RC(s.notices[1], 1);

	/* Damaged requests: DER that does not parse, an ID that is not the
	 * DER's. */
	seen_reset(&s);
	struct signup_req *bad = tsignup(&dev[9], &ca1, 9, 28, 0);
	bad->der[10] ^= 0xff;
	CHECK_RC(registrar_submit_mt(g, 0, bad), 0);
	bad = tsignup(&dev[10], &ca1, 10, 31, 0);
	bad->cert_id[0] ^= 1;
	CHECK_RC(registrar_submit_mt(g, 0, bad), 0);
	pump(g, rt, now + NS, &s);
	CHECK_RC(s.ans[9].outcome, SIGNUP_REFUSED);
	CHECK_RC(s.ans[10].outcome, SIGNUP_REFUSED);

	/* Revocation is final: revoked, deleted, then it connects again. */
	seen_reset(&s);
	CHECK_RC(reg_dev_set_status(reg, dev[1].id, REG_REVOKED, &by), 0);
	CHECK_RC(reg_dev_delete(reg, dev[1].id, &by), 0);
	submit(g, &dev[1], &ca1, 1, 0);
	/* Deleted without revocation: registers again. */
	CHECK_RC(reg_dev_delete(reg, dev[0].id, &by), 0);
	submit(g, &dev[0], &ca1, 0, 0);
	pump(g, rt, now + 2 * NS, &s);
	CHECK_RC(s.ans[1].outcome, SIGNUP_REFUSED);
	CHECK_RC(s.ans[0].outcome, SIGNUP_REGISTERED);

	/* Exactness end to end: after a long pause (full bucket of 5), one
	 * new certificate every 100 ms of simulated time for 1.5 s (16
	 * attempts) lets exactly 10 through: 5 at 0-0.4 s, none until the
	 * first of them is a second old, then 5 at 1.0-1.4 s (a bucket alone
	 * would have let 12 through, 9 of them within one second). */
	seen_reset(&s);
	uint64_t t1 = now + 100 * NS;
	int reg_n = 0, over_n = 0;
	for (int k = 0; k <= 15; k++) {
		submit(g, &dev[40 + k], &ca1, (uint32_t)(100 + k), 0);
		pump(g, rt, t1 + (uint64_t)k * NS / 10, &s);
	}
	for (int k = 0; k <= 15; k++) {
		CHECK(s.ans[100 + k].got);
		if (s.ans[100 + k].outcome == SIGNUP_REGISTERED)
			reg_n++;
		else
			CHECK_RC(s.ans[100 + k].outcome, SIGNUP_OVER_LIMIT);
		over_n += s.ans[100 + k].outcome == SIGNUP_OVER_LIMIT;
		CHECK_RC(reg_dev_get_mt(reg, dev[40 + k].id, &d),
			 s.ans[100 + k].outcome == SIGNUP_REGISTERED ? 0 : -ENOENT);
	}
	CHECK_RC(reg_n, 10);
	CHECK_RC(over_n, 6);
	CHECK_RC(s.ans[105].outcome, SIGNUP_OVER_LIMIT);   /* 0.5 s: window full */
	CHECK_RC(s.ans[109].outcome, SIGNUP_OVER_LIMIT);   /* 0.9 s: window full */
	CHECK_RC(s.ans[110].outcome, SIGNUP_REGISTERED);

	/* A shard's full submission ring refuses, never blocks. */
	int pushed = 0, rc;
	for (;;) {
		struct signup_req *r = tsignup(&dev[32], &other, 0, 1, 1);

		rc = registrar_submit_mt(g, 1, r);
		if (rc) {
			free(r);
			break;
		}
		pushed++;
	}
	CHECK_RC(rc, -EAGAIN);
	CHECK(pushed >= RG_RING_CAP);
	CHECK_RC(registrar_submit_mt(g, 2, NULL), -EINVAL);
	/* Left in the ring: freed by registrar_free (ASan checks). */
	registrar_free(g);
	frt_drain(rt);

	/* Durable: a reopened registry has every registration. */
	CHECK_RC(reg_close(reg), 0);
	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);
	for (int i = 2; i < 9; i++)
		CHECK_RC(reg_dev_get_mt(reg, dev[i].id, &d), 0);
	CHECK_RC(reg_dev_get_mt(reg, dev[20].id, &d), 0);
	CHECK_RC(reg_dev_get_mt(reg, dev[9].id, &d), -ENOENT);
	CHECK_RC(reg_dev_get_mt(reg, dev[0].id, &d), 0);
	CHECK_RC(reg_dev_get_mt(reg, dev[1].id, &d), -ENOENT);
	CHECK_RC(reg_close(reg), 0);

	seen_reset(&s);
	frt_free(rt);
	for (int i = 0; i < 60; i++)
		tcert_free(&dev[i]);
	tcert_free(&ca1);
	tcert_free(&ca2);
	tcert_free(&ca3);
	tcert_free(&ca4);
	tcert_free(&other);
	tls_pki_key_free(dk);
	tu_rmdir(dir);
	free(dir);
	printf("signups: ok\n");
}

/* ---- expiry warnings ------------------------------------------------------------ */

/* Register dev by hand with the given status and notAfter. */
static void add_dev(struct registry *reg, const struct tcert *dev, const struct tcert *ca,
		    enum reg_status st, int64_t not_after)
{
	struct tls_cert_info ci;
	struct reg_by by = { .actor = "test" };

	CHECK(tls_cert_parse(dev->der, dev->len, &ci) == 0);
	struct reg_dev_in in = {
		.serial = ci.serial, .serial_len = ci.serial_len,
		.cn = ci.cn, .not_before = ci.not_before, .not_after = not_after,
		.status = st, .how = REG_MANUAL, .der = dev->der, .der_len = dev->len,
	};
	memcpy(in.id, ci.id, REG_ID_LEN);
	memcpy(in.issuer, ca->id, REG_ID_LEN);
	CHECK_RC(reg_dev_add(reg, &in, &by), 0);
}

/* The hourly sweep warns each ACTIVE certificate inside the window once a
 * day; a change inside the window warns at once. */
static void test_expiry(void)
{
	char *dir = tu_tmpdir(), err[256], hex[65];
	struct registry *reg;
	struct broker_rt *rt = frt_new(1, 64);
	struct registrar *g;
	struct registrar_cfg cfg = { .expiry_warning_days = 30 };
	static struct tcert ca, dev[4];
	static struct seen s;
	struct reg_by by = { .actor = "test" };
	/* 06:00 UTC today: the ticks below, up to 3 hours apart, must fall on
	 * the UTC days they mean whatever the hour the test runs at */
	int64_t now = (int64_t)time(NULL) / 86400 * 86400 + 6 * 3600;
	uint64_t mnow = mono();

	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);
	tcert_issue(&ca, TLS_PKI_ROOT_CA, "Expiry CA", NULL, NULL, NULL, NULL);
	add_ca(reg, &ca, true, REG_ACTIVE, REG_ACTIVE);
	for (int i = 0; i < 4; i++) {
		char cn[16];

		snprintf(cn, sizeof cn, "exp%d", i);
		tcert_issue(&dev[i], TLS_PKI_DEVICE, cn, NULL, NULL, &ca, NULL);
	}
	add_dev(reg, &dev[0], &ca, REG_ACTIVE, now + 10 * 86400);      /* due */
	add_dev(reg, &dev[1], &ca, REG_INACTIVE, now + 5 * 86400);     /* not ACTIVE */
	add_dev(reg, &dev[2], &ca, REG_ACTIVE, now + 40 * 86400);      /* outside */
	add_dev(reg, &dev[3], &ca, REG_ACTIVE, now - 86400);           /* expired */
	CHECK_RC(registrar_init(&g, reg, rt, NULL, &cfg, err, sizeof err), 0);

	rg_expiry_tick(g, now);
	pump(g, rt, mnow, &s);
	CHECK_RC(s.events, 1);
	thex(dev[0].id, 32, hex);
	CHECK(!strncmp(s.last_topic, "$SYS/certificates/expiring/", 27));
	CHECK(!strcmp(s.last_topic + 27, hex));
	CHECK(!strcmp(json_string_value(json_object_get(s.last_event, "certificateId")), hex));
	CHECK_RC((int)json_integer_value(json_object_get(s.last_event, "daysLeft")), 10);
	CHECK(json_integer_value(json_object_get(s.last_event, "notAfter")) == now + 10 * 86400);

	/* not due again within the hour; due in an hour, but warned today */
	seen_reset(&s);
	rg_expiry_tick(g, now + 60);
	rg_expiry_tick(g, now + 3600);
	pump(g, rt, mnow, &s);
	CHECK_RC(s.events, 0);

	/* activated inside the window: warned at once (rg_notify_dev) */
	CHECK_RC(reg_dev_set_status(reg, dev[1].id, REG_ACTIVE, &by), 0);
	rg_notify_dev(g, dev[1].id);
	pump(g, rt, mnow, &s);
	CHECK_RC(s.events, 1);
	thex(dev[1].id, 32, hex);
	CHECK(!strcmp(s.last_topic + 27, hex));

	/* the next day both are warned again, once */
	seen_reset(&s);
	rg_expiry_tick(g, now + 86400 + 7200);
	pump(g, rt, mnow, &s);
	CHECK_RC(s.events, 2);
	seen_reset(&s);
	rg_expiry_tick(g, now + 86400 + 3 * 3600);
	pump(g, rt, mnow, &s);
	CHECK_RC(s.events, 0);

	registrar_free(g);
	frt_drain(rt);
	frt_free(rt);
	CHECK_RC(reg_close(reg), 0);
	seen_reset(&s);
	for (int i = 0; i < 4; i++)
		tcert_free(&dev[i]);
	tcert_free(&ca);
	tu_rmdir(dir);
	free(dir);
	printf("expiry: ok\n");
}

/* ---- admin API handler ---------------------------------------------------------- */

static struct registrar *G;
static struct broker_rt *RT;
static struct seen S;

/* Call the handler: "METHOD /path?query", an optional token and body. */
static int call(const char *token, const char *mp, json_t **out, const char *fmt, ...)
{
	char line[512], auth[128], *q, *body = NULL;
	struct admin_req rq = { 0 };
	va_list ap;
	int st;

	snprintf(line, sizeof line, "%s", mp);
	q = strchr(line, ' ');
	CHECK(q);
	*q++ = '\0';
	rq.method = line;
	rq.path = q;
	q = strchr(q, '?');
	if (q) {
		*q++ = '\0';
		while (q && *q) {
			char *amp = strchr(q, '&'), *eq;

			if (amp)
				*amp++ = '\0';
			eq = strchr(q, '=');
			if (eq)
				*eq++ = '\0';
			rq.arg_key[rq.n_args] = q;
			rq.arg_val[rq.n_args++] = eq;
			q = amp;
		}
	}
	if (token) {
		snprintf(auth, sizeof auth, "Bearer %s", token);
		rq.auth = auth;
	}
	if (fmt) {
		va_start(ap, fmt);
		CHECK(vasprintf(&body, fmt, ap) >= 0);
		va_end(ap);
		rq.body = body;
		rq.body_len = strlen(body);
	}
	st = admin_handle(G->admin, &rq, out);
	CHECK(*out);
	if (st >= 400) {
		CHECK(json_is_string(json_object_get(*out, "error")));
		CHECK(json_is_string(json_object_get(*out, "message")));
	}
	free(body);
	pump(G, RT, mono(), &S);
	return st;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	CHECK(json_is_string(v));
	return json_string_value(v);
}

/* A JSON string literal of s (PEM has newlines). */
static char *jq(const char *s)
{
	json_t *v = json_string(s);
	char *out = json_dumps(v, JSON_ENCODE_ANY);

	json_decref(v);
	CHECK(out);
	return out;
}

#define TOK "s3cret-ops"

static int reg_ca_call(const struct tcert *ca, const struct tcert *ver, const char *extra,
		       json_t **out)
{
	char *cp = tcert_pem(ca), *vp = tcert_pem(ver);
	char *cq = jq(cp), *vq = jq(vp);
	int st = call(TOK, "POST /api/v1/cas", out,
		      "{\"caCertificate\": %s, \"verificationCertificate\": %s%s}", cq, vq,
		      extra ? extra : "");

	free(cp);
	free(vp);
	free(cq);
	free(vq);
	return st;
}

static int reg_dev_call(const struct tcert *dev, const char *extra, json_t **out)
{
	char *p = tcert_pem(dev), *q = jq(p);
	int st = call(TOK, "POST /api/v1/certificates", out, "{\"certificate\": %s%s}", q,
		      extra ? extra : "");

	free(p);
	free(q);
	return st;
}

static void test_admin(void)
{
	char *dir = tu_tmpdir(), err[256], path[4200], tokfile[4200], code[40], hex[65];
	char dev_hex[65], *data;
	size_t len;
	struct registry *reg;
	struct registrar_cfg cfg = { .data_dir = dir, .admin_token_file = tokfile };
	static struct tcert ca, ver, bad_ver, impostor, imp_ver, devc, dev2, dev3, dev4, stray, strayca;
	struct reg_ca rca;
	struct reg_device d;
	json_t *o = NULL;
	FILE *f;

	snprintf(tokfile, sizeof tokfile, "%s/tokens", dir);
	f = fopen(tokfile, "w");
	CHECK(f);
	fprintf(f, "# admin tokens\n\nops:" TOK "\nplain-token\n");
	fclose(f);
	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);
	RT = frt_new(2, 64);
	CHECK_RC(registrar_init(&G, reg, RT, NULL, &cfg, err, sizeof err), 0);
	CHECK(admin_fd(G->admin) == -1 && registrar_admin_port(G) == 0);

	/* Health needs no token; the API does. */
	CHECK_RC(call(NULL, "GET /healthz", &o, NULL), 200);
	CHECK(!strcmp(jstr(o, "status"), "ok"));
	json_decref(o);
	CHECK_RC(call(NULL, "GET /api/v1/registration-code", &o, NULL), 401);
	json_decref(o);
	CHECK_RC(call("s3cret-op", "GET /api/v1/registration-code", &o, NULL), 401);
	json_decref(o);
	CHECK_RC(call(TOK "x", "GET /api/v1/registration-code", &o, NULL), 401);
	json_decref(o);
	CHECK_RC(call("plain-token", "GET /api/v1/registration-code", &o, NULL), 200);
	json_decref(o);

	/* The registration code: 32 hex, kept in the data directory, rotated. */
	CHECK_RC(call(TOK, "GET /api/v1/registration-code", &o, NULL), 200);
	snprintf(code, sizeof code, "%s", jstr(o, "registrationCode"));
	json_decref(o);
	CHECK(strlen(code) == 32 && strspn(code, "0123456789abcdef") == 32);
	snprintf(path, sizeof path, "%s/registration-code", dir);
	CHECK_RC(tls_pki_file_read(path, 100, &data, &len), 0);
	CHECK(len == 33 && !strncmp(data, code, 32));
	free(data);
	CHECK_RC(call(TOK, "POST /api/v1/registration-code", &o, NULL), 200);
	CHECK(strcmp(jstr(o, "registrationCode"), code) != 0);
	snprintf(code, sizeof code, "%s", jstr(o, "registrationCode"));
	json_decref(o);
	CHECK_RC(tls_pki_file_read(path, 100, &data, &len), 0);
	CHECK(!strncmp(data, code, 32));
	free(data);
	CHECK_RC(call(TOK, "DELETE /api/v1/registration-code", &o, NULL), 405);
	json_decref(o);

	/* Certificates for proof of possession. */
	tcert_issue(&ca, TLS_PKI_ROOT_CA, "Fleet CA", "Vouch", NULL, NULL, NULL);
	tcert_issue(&ver, TLS_PKI_VERIFICATION, code, NULL, NULL, &ca, NULL);
	tcert_issue(&bad_ver, TLS_PKI_VERIFICATION, "0123456789abcdef0123456789abcdef", NULL,
		    NULL, &ca, NULL);
	/* Same name as the CA, another key: signs a verification certificate
	 * with the right code. */
	tcert_issue(&impostor, TLS_PKI_ROOT_CA, "Fleet CA", "Vouch", NULL, NULL, NULL);
	tcert_issue(&imp_ver, TLS_PKI_VERIFICATION, code, NULL, NULL, &impostor, NULL);
	tcert_issue(&devc, TLS_PKI_DEVICE, "SN0001", "IoV", "line-1", &ca, NULL);
	tcert_issue(&dev2, TLS_PKI_DEVICE, "SN0002", "IoV", "line-2", &ca, NULL);
	tcert_issue(&strayca, TLS_PKI_ROOT_CA, "Stray CA", NULL, NULL, NULL, NULL);
	tcert_issue(&stray, TLS_PKI_DEVICE, "SN0009", NULL, NULL, &strayca, NULL);

	/* Wrong code, wrong key, not a CA: refused, nothing written. */
	CHECK_RC(reg_ca_call(&ca, &bad_ver, NULL, &o), 400);
	CHECK(!strcmp(jstr(o, "error"), "verification_failed"));
	json_decref(o);
	CHECK_RC(reg_ca_call(&ca, &imp_ver, NULL, &o), 400);
	CHECK(!strcmp(jstr(o, "error"), "verification_failed"));
	json_decref(o);
	CHECK_RC(reg_ca_call(&devc, &ver, NULL, &o), 400);
	CHECK(!strcmp(jstr(o, "error"), "not_a_ca"));
	json_decref(o);
	CHECK_RC(reg_ca_get_mt(reg, ca.id, &rca), -ENOENT);
	CHECK_RC(S.ca_notices[0] + S.ca_notices[1], 0);

	/* Bad bodies. */
	CHECK_RC(call(TOK, "POST /api/v1/cas", &o, "{\"caCertificate\": "), 400);
	CHECK(!strcmp(jstr(o, "error"), "bad_json"));
	json_decref(o);
	CHECK_RC(call(TOK, "POST /api/v1/cas", &o, "[1]"), 400);
	json_decref(o);
	CHECK_RC(call(TOK, "POST /api/v1/cas", &o, NULL), 400);
	json_decref(o);
	CHECK_RC(call(TOK, "POST /api/v1/cas", &o, "{\"caCertificate\": \"x\", \"caCertificate\": \"y\"}"), 400);
	json_decref(o);
	CHECK_RC(call(TOK, "POST /api/v1/cas", &o, "{\"caCertificate\": \"not pem\", \"verificationCertificate\": \"x\"}"), 400);
	CHECK(!strcmp(jstr(o, "error"), "bad_certificate"));
	json_decref(o);
	CHECK_RC(reg_ca_call(&ca, &ver, ", \"autoStatus\": \"REVOKED\"", &o), 400);
	json_decref(o);
	CHECK_RC(reg_ca_call(&ca, &ver, ", \"colour\": 1", &o), 400);
	CHECK(!strcmp(jstr(o, "error"), "bad_field"));
	json_decref(o);
	CHECK_RC(reg_ca_call(&ca, &ver, ", \"autoRegistration\": \"yes\"", &o), 400);
	json_decref(o);
	CHECK_RC(reg_ca_get_mt(reg, ca.id, &rca), -ENOENT);

	/* Right code, right key. */
	CHECK_RC(reg_ca_call(&ca, &ver, ", \"autoRegistration\": true, \"autoStatus\": \"PENDING_ACTIVATION\"", &o), 201);
	thex(ca.id, 32, hex);
	CHECK(!strcmp(jstr(o, "certificateId"), hex));
	CHECK(!strcmp(jstr(o, "status"), "ACTIVE"));
	CHECK(!strcmp(jstr(o, "autoStatus"), "PENDING_ACTIVATION"));
	CHECK(json_is_true(json_object_get(o, "autoRegistration")));
	CHECK(!strcmp(jstr(o, "commonName"), "Fleet CA"));
	CHECK(!strcmp(jstr(o, "createdBy"), "admin:ops"));
	{
		uint8_t der[REG_DER_MAX];
		const char *pem = jstr(o, "certificatePem");

		CHECK(tls_cert_pem_to_der(pem, strlen(pem), der, sizeof der) == (int)ca.len);
		CHECK(!memcmp(der, ca.der, ca.len));
	}
	json_decref(o);
	CHECK_RC(reg_ca_get_mt(reg, ca.id, &rca), 0);
	CHECK(rca.auto_register && rca.auto_status == REG_PENDING_ACTIVATION);
	CHECK(S.ca_notices[0] == 1 && S.ca_notices[1] == 1 && S.last_status[1] == REG_ACTIVE);
	CHECK_RC(reg_ca_call(&ca, &ver, NULL, &o), 409);
	json_decref(o);

	/* Reading CAs. */
	CHECK_RC(call(TOK, "GET /api/v1/cas", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 1);
	CHECK(!strcmp(jstr(json_array_get(json_object_get(o, "cas"), 0), "certificateId"), hex));
	json_decref(o);
	snprintf(path, sizeof path, "GET /api/v1/cas/%s", hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/cas/00", &o, NULL), 404);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/cas/0000000000000000000000000000000000000000000000000000000000000000", &o, NULL), 404);
	json_decref(o);
	CHECK_RC(call(TOK, "PUT /api/v1/cas", &o, NULL), 405);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/nothing", &o, NULL), 404);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /elsewhere", &o, NULL), 404);
	json_decref(o);

	/* Manual registration of device certificates. */
	seen_reset(&S);
	CHECK_RC(reg_dev_call(&devc, ", \"clientId\": \"car-1\"", &o), 201);
	thex(devc.id, 32, dev_hex);
	CHECK(!strcmp(jstr(o, "certificateId"), dev_hex));
	CHECK(!strcmp(jstr(o, "caCertificateId"), hex));
	CHECK(!strcmp(jstr(o, "status"), "ACTIVE"));
	CHECK(!strcmp(jstr(o, "registeredBy"), "MANUAL"));
	CHECK(!strcmp(jstr(o, "clientId"), "car-1"));
	CHECK(!strcmp(jstr(o, "commonName"), "SN0001"));
	CHECK(!strcmp(jstr(o, "organization"), "IoV"));
	CHECK(!strcmp(jstr(o, "organizationalUnit"), "line-1"));
	CHECK(!strcmp(jstr(o, "updatedBy"), "admin:ops"));
	CHECK(strlen(jstr(o, "notAfter")) == 20 && jstr(o, "notAfter")[19] == 'Z');
	CHECK(json_is_false(json_object_get(o, "expired")));
	CHECK(json_is_false(json_object_get(o, "expiringSoon")));     /* 365 days */
	json_decref(o);
	CHECK(S.notices[0] == 1 && S.notices[1] == 1 && S.last_status[0] == REG_ACTIVE);
	CHECK(!strcmp(S.last_client[1], "car-1"));
	CHECK_RC(S.events, 1);
	CHECK(!strcmp(jstr(S.last_event, "registeredBy"), "MANUAL"));
	CHECK_RC(reg_dev_call(&devc, NULL, &o), 409);
	json_decref(o);
	CHECK_RC(reg_dev_call(&stray, NULL, &o), 400);
	CHECK(!strcmp(jstr(o, "error"), "unknown_ca"));
	json_decref(o);
	CHECK_RC(reg_dev_call(&ca, NULL, &o), 400);
	json_decref(o);
	CHECK_RC(reg_dev_call(&dev2, ", \"status\": \"PENDING_ACTIVATION\"", &o), 201);
	json_decref(o);
	/* Another certificate of the CA with the same serial: a conflict. */
	{
		struct tls_cert_info ci;
		struct tls_pki_spec spec;
		struct tls_pki_issuer iss = { ca.der, ca.len, ca.key };
		int n;

		CHECK_RC(tls_cert_parse(devc.der, devc.len, &ci), 0);
		memset(&dev3, 0, sizeof dev3);
		dev3.key = tkey();
		tls_pki_spec_init(&spec, TLS_PKI_DEVICE, time(NULL), 30);
		spec.subject.cn = "SN0003";
		memcpy(spec.serial, ci.serial, ci.serial_len);
		spec.serial_len = ci.serial_len;
		n = tls_pki_issue(&spec, dev3.key, &iss, dev3.der, sizeof dev3.der);
		CHECK(n > 0);
		dev3.len = (size_t)n;
		CHECK_RC(tls_cert_id(dev3.der, dev3.len, dev3.id), 0);
	}
	CHECK_RC(reg_dev_call(&dev3, NULL, &o), 409);
	json_decref(o);
	CHECK_RC(reg_dev_get_mt(reg, dev3.id, &d), -ENOENT);

	/* Queries. */
	CHECK_RC(call(TOK, "GET /api/v1/certificates", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 2);
	CHECK(json_array_size(json_object_get(o, "certificates")) == 2);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?status=PENDING_ACTIVATION", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 1);
	CHECK(!strcmp(jstr(json_array_get(json_object_get(o, "certificates"), 0), "commonName"), "SN0002"));
	json_decref(o);
	snprintf(path, sizeof path, "GET /api/v1/certificates?ca=%s&cnPrefix=SN000&limit=1&offset=1", hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 2);
	CHECK(json_array_size(json_object_get(o, "certificates")) == 1);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?ou=line-1", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 1);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?expiringWithinDays=400&expired=false", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 2);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?expiringWithinDays=10", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 0);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?status=BOGUS", &o, NULL), 400);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?limit=0", &o, NULL), 400);
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?colour=red", &o, NULL), 400);
	json_decref(o);
	snprintf(path, sizeof path, "GET /api/v1/certificates/%s", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	CHECK(json_is_string(json_object_get(o, "certificatePem")));
	json_decref(o);

	/* The state rules (DESIGN.md "Certificate states"). */
	seen_reset(&S);
	snprintf(path, sizeof path, "DELETE /api/v1/certificates/%s", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 409);       /* ACTIVE: deactivate first */
	json_decref(o);
	snprintf(path, sizeof path, "POST /api/v1/certificates/%s/deactivate", dev_hex);
	CHECK_RC(call("plain-token", path, &o, NULL), 200);
	CHECK(!strcmp(jstr(o, "status"), "INACTIVE") && !strcmp(jstr(o, "updatedBy"), "admin"));
	json_decref(o);
	CHECK(S.notices[0] == 1 && S.notices[1] == 1 && S.last_status[1] == REG_INACTIVE);
	CHECK(S.events == 1 && !strncmp(S.last_topic, "$SYS/certificates/status/", 25));
	snprintf(path, sizeof path, "PUT /api/v1/certificates/%s/client-id", dev_hex);
	CHECK_RC(call(TOK, path, &o, "{\"clientId\": \"car-7\"}"), 200);
	CHECK(!strcmp(jstr(o, "clientId"), "car-7"));
	json_decref(o);
	CHECK(!strcmp(S.last_client[0], "car-7"));
	{
		char big[REG_CLIENT_MAX + 2];

		memset(big, 'x', sizeof big - 1);
		big[sizeof big - 1] = '\0';
		CHECK_RC(call(TOK, path, &o, "{\"clientId\": \"%s\"}", big), 400);
		json_decref(o);
	}
	CHECK_RC(call(TOK, path, &o, "{}"), 400);
	json_decref(o);
	CHECK_RC(call(TOK, path, &o, "{\"clientId\": \"\"}"), 200);
	CHECK(!strcmp(jstr(o, "clientId"), ""));
	json_decref(o);
	snprintf(path, sizeof path, "POST /api/v1/certificates/%s/revoke", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	CHECK(!strcmp(jstr(o, "status"), "REVOKED"));
	json_decref(o);
	snprintf(path, sizeof path, "POST /api/v1/certificates/%s/activate", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 409);       /* revocation is final */
	json_decref(o);
	snprintf(path, sizeof path, "GET /api/v1/certificates/%s/activate", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 405);
	json_decref(o);
	snprintf(path, sizeof path, "DELETE /api/v1/certificates/%s", dev_hex);
	seen_reset(&S);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	json_decref(o);
	CHECK(S.notices[1] == 1 && S.last_status[1] == 0);
	CHECK_RC(reg_dev_get_mt(reg, devc.id, &d), -ENOENT);
	snprintf(path, sizeof path, "GET /api/v1/certificates/%s", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 404);
	json_decref(o);
	/* History survives the deletion. */
	snprintf(path, sizeof path, "GET /api/v1/certificates/%s/history", dev_hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	{
		json_t *ev = json_object_get(o, "events");
		static const char *const want[] = {
			"REGISTERED", "STATUS", "CLIENT_ID", "CLIENT_ID", "STATUS", "DELETED"
		};

		CHECK_RC(json_array_size(ev), 6);
		for (size_t i = 0; i < 6; i++)
			CHECK(!strcmp(jstr(json_array_get(ev, i), "event"), want[i]));
		CHECK(!strcmp(jstr(json_array_get(ev, 1), "actor"), "admin"));
		CHECK(!strcmp(jstr(json_array_get(ev, 4), "status"), "REVOKED"));
	}
	json_decref(o);
	/* Registered again by hand: stored REVOKED (revocation is on record). */
	CHECK_RC(reg_dev_call(&devc, NULL, &o), 201);
	CHECK(!strcmp(jstr(o, "status"), "REVOKED"));
	json_decref(o);

	/* A certificate close to its end is flagged, and found by the
	 * expiring-within query. */
	{
		struct tls_pki_spec spec;
		struct tls_pki_issuer iss = { ca.der, ca.len, ca.key };
		int n;

		memset(&dev4, 0, sizeof dev4);
		dev4.key = tkey();
		tls_pki_spec_init(&spec, TLS_PKI_DEVICE, time(NULL), 10);
		spec.subject.cn = "SN0004";
		n = tls_pki_issue(&spec, dev4.key, &iss, dev4.der, sizeof dev4.der);
		CHECK(n > 0);
		dev4.len = (size_t)n;
	}
	CHECK_RC(reg_dev_call(&dev4, NULL, &o), 201);
	CHECK(json_is_true(json_object_get(o, "expiringSoon")));
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?expiringWithinDays=10", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 1);
	CHECK(!strcmp(jstr(json_array_get(json_object_get(o, "certificates"), 0), "commonName"), "SN0004"));
	json_decref(o);
	CHECK_RC(call(TOK, "GET /api/v1/certificates?expiringWithinDays=9", &o, NULL), 200);
	CHECK(json_integer_value(json_object_get(o, "total")) == 0);
	json_decref(o);

	/* A device behind an intermediate CA: registered under the CA that
	 * signed the intermediate, when the PEM carries the chain. */
	{
		static struct tcert inter, idev, idev2;
		char *lp, *ip, *both, *q;

		tcert_issue(&inter, TLS_PKI_INTERMEDIATE_CA, "Line CA", NULL, NULL, &ca, NULL);
		tcert_issue(&idev, TLS_PKI_DEVICE, "SN0100", NULL, NULL, &inter, NULL);
		tcert_issue(&idev2, TLS_PKI_DEVICE, "SN0101", NULL, NULL, &inter, NULL);
		CHECK_RC(reg_dev_call(&idev, NULL, &o), 400);   /* leaf alone */
		json_decref(o);
		lp = tcert_pem(&idev);
		ip = tcert_pem(&inter);
		CHECK(asprintf(&both, "%s%s", lp, ip) > 0);
		q = jq(both);
		CHECK_RC(call(TOK, "POST /api/v1/certificates", &o, "{\"certificate\": %s}", q), 201);
		CHECK(!strcmp(jstr(o, "caCertificateId"), hex));
		CHECK(!strcmp(jstr(o, "commonName"), "SN0100"));
		json_decref(o);
		free(lp);
		free(both);
		free(q);
		lp = tcert_pem(&idev2);
		CHECK(asprintf(&both, "%s%s", lp, ip) > 0);
		q = jq(both);
		CHECK_RC(call(TOK, "POST /api/v1/certificates", &o,
			      "{\"certificate\": %s, \"caCertificateId\": \"%s\"}", q, hex), 201);
		json_decref(o);
		CHECK_RC(call(TOK, "POST /api/v1/certificates", &o,
			      "{\"certificate\": %s, \"caCertificateId\": \"%s\"}", q,
			      "00000000000000000000000000000000000000000000000000000000000000aa"), 400);
		json_decref(o);
		free(lp);
		free(ip);
		free(both);
		free(q);
		tcert_free(&inter);
		tcert_free(&idev);
		tcert_free(&idev2);
	}

	/* CA lifecycle: deactivate, auto-registration, delete. */
	seen_reset(&S);
	snprintf(path, sizeof path, "DELETE /api/v1/cas/%s", hex);
	CHECK_RC(call(TOK, path, &o, NULL), 409);
	json_decref(o);
	snprintf(path, sizeof path, "PUT /api/v1/cas/%s/auto-registration", hex);
	CHECK_RC(call(TOK, path, &o, "{\"enabled\": false}"), 200);
	CHECK(json_is_false(json_object_get(o, "autoRegistration")));
	CHECK(!strcmp(jstr(o, "autoStatus"), "PENDING_ACTIVATION"));
	json_decref(o);
	CHECK_RC(call(TOK, path, &o, "{\"enabled\": true, \"status\": \"ACTIVE\"}"), 200);
	CHECK(!strcmp(jstr(o, "autoStatus"), "ACTIVE"));
	json_decref(o);
	CHECK_RC(call(TOK, path, &o, "{\"status\": \"ACTIVE\"}"), 400);
	json_decref(o);
	snprintf(path, sizeof path, "POST /api/v1/cas/%s/deactivate", hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	CHECK(!strcmp(jstr(o, "status"), "INACTIVE"));
	json_decref(o);
	CHECK(S.ca_notices[0] >= 1 && S.last_status[0] == REG_INACTIVE);
	snprintf(path, sizeof path, "POST /api/v1/cas/%s/activate", hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	json_decref(o);
	snprintf(path, sizeof path, "POST /api/v1/cas/%s/deactivate", hex);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	json_decref(o);
	snprintf(path, sizeof path, "DELETE /api/v1/cas/%s", hex);
	seen_reset(&S);
	CHECK_RC(call(TOK, path, &o, NULL), 200);
	json_decref(o);
	CHECK(S.ca_notices[1] == 1 && S.last_status[1] == 0);
	CHECK_RC(reg_ca_get_mt(reg, ca.id, &rca), -ENOENT);

	/* The code survives a restart of the registrar. */
	registrar_free(G);
	cfg.admin_token_file = NULL;
	CHECK_RC(registrar_init(&G, reg, RT, NULL, &cfg, err, sizeof err), 0);
	CHECK(!strcmp(G->code, code));
	CHECK_RC(call(NULL, "GET /api/v1/registration-code", &o, NULL), 200);     /* no token file */
	json_decref(o);
	registrar_free(G);

	/* A token file without tokens, or missing, refuses to start. */
	f = fopen(tokfile, "w");
	fprintf(f, "# nothing\n");
	fclose(f);
	cfg.admin_token_file = tokfile;
	CHECK_RC(registrar_init(&G, reg, RT, NULL, &cfg, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "no token"));
	unlink(tokfile);
	CHECK(registrar_init(&G, reg, RT, NULL, &cfg, err, sizeof err) == -ENOENT);
	/* A bad listen address refuses to start with a message. */
	cfg.admin_token_file = NULL;
	cfg.admin_listen = "nowhere";
	CHECK_RC(registrar_init(&G, reg, RT, NULL, &cfg, err, sizeof err), -EINVAL);
	CHECK(err[0]);

	CHECK_RC(reg_close(reg), 0);
	seen_reset(&S);
	frt_free(RT);
	struct tcert *all[] = { &ca, &ver, &bad_ver, &impostor, &imp_ver, &devc, &dev2, &dev3, &dev4,
				&stray, &strayca };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		tcert_free(all[i]);
	snprintf(path, sizeof path, "%s/registration-code", dir);
	unlink(path);
	tu_rmdir(dir);
	free(dir);
	printf("admin: ok\n");
}

int main(void)
{
	test_limiter();
	test_signups();
	test_expiry();
	test_admin();
	printf("test_registrar: all passed\n");
	return 0;
}
