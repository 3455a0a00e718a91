/*
 * bench-query: times device-certificate queries (reg_query) over a registry
 * of N generated records (default 1,000,000), and what the query indexes
 * cost at open. Not part of `make test`: `make bench-query`, or
 *   build/release/bench-query [DIR [N]]
 * DIR (default a temporary directory, removed at the end) keeps the
 * registry between runs: it is generated only when it holds no devices.
 *
 * Records: 20 CAs (one of them signs 2%), CNs "sensor.building-BB.floor-F.NNNNNNN",
 * 7 OUs, 3 Os, validity spread over 2 years, 60% ACTIVE, 20% INACTIVE, 10%
 * PENDING_ACTIVATION, 10% REVOKED, a 600-byte synthetic DER each.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "registry/query.h"
#include "registry/regfile.h"

#define N_CA 20
#define T0 INT64_C(1750000000)

static const struct reg_by BY = { "bench", T0 };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void id_of(uint8_t out[32], uint64_t n, uint64_t kind)
{
	for (int i = 0; i < 4; i++) {
		uint64_t h = XXH3_64bits_withSeed(&n, sizeof n, kind * 4 + (uint64_t)i + 1);
		memcpy(out + 8 * i, &h, 8);
	}
}

static int ca_of(uint64_t n)
{
	return n % 50 == 0 ? N_CA - 1 : (int)(n % (N_CA - 1));
}

static void serial_of(uint8_t s[8], uint64_t n)
{
	for (int i = 0; i < 8; i++)
		s[i] = (uint8_t)(n >> (8 * (7 - i)));
	s[0] = 0x40;
}

static void cn_of(char *cn, size_t len, uint64_t n)
{
	snprintf(cn, len, "sensor.building-%02" PRIu64 ".floor-%" PRIu64 ".%07" PRIu64,
		 n % 23, n % 9, n);
}

static int generate(struct registry *r, uint64_t n_dev)
{
	static const char *const os[] = { "Acme", "Acme Labs", "Globex" };
	static const int st[] = { 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	uint8_t der[600];

	for (int c = 0; c < N_CA; c++) {
		uint8_t s[2] = { 0x10, (uint8_t)(c % 10) };    /* CAs c, c+10 share */
		struct reg_ca_in in = { .serial = s, .serial_len = 2, .cn = "bench CA",
					.not_before = T0 - 86400 * 365, .not_after = T0 + 86400 * 3650,
					.der = der, .der_len = 100 };
		id_of(in.id, (uint64_t)c, 3);
		memset(der, c, 100);
		if (reg_ca_add(r, &in, &BY))
			return -1;
	}
	for (uint64_t n = 0; n < n_dev; n++) {
		uint8_t serial[8];
		char cn[64], ou[8];
		struct reg_dev_in in = {
			.serial = serial, .serial_len = 8, .cn = cn, .o = os[n % 3], .ou = ou,
			.not_before = T0 - 86400 * 365 + (int64_t)(n % 20000) * 1577,
			.status = (enum reg_status)st[n % 10], .how = REG_MANUAL,
			.der = der, .der_len = sizeof der,
		};
		in.not_after = in.not_before + 86400 * 365;
		id_of(in.id, n, 11);
		id_of(in.issuer, (uint64_t)ca_of(n), 3);
		serial_of(serial, n);
		cn_of(cn, sizeof cn, n);
		snprintf(ou, sizeof ou, "ou%" PRIu64, n % 7);
		memcpy(der, in.id, 32);
		memset(der + 32, (int)n, sizeof der - 32);
		if (n % 10000 == 0 && reg_begin(r))
			return -1;
		if (reg_dev_add(r, &in, &BY) < 0)
			return -1;
		if (n % 10000 == 9999 && reg_commit(r))
			return -1;
	}
	return reg_commit(r) == -EINVAL ? 0 : 0;
}

static int count_page(void *ctx, const struct reg_device *d)
{
	(void)d;
	++*(size_t *)ctx;
	return 0;
}

static void text(struct reg_qtext *t, const char *s, bool prefix)
{
	t->s = s;
	t->len = strlen(s);
	t->prefix = prefix;
}

static void run(struct registry *r, const char *what, const struct reg_query *q)
{
	uint64_t total = 0;
	size_t page = 0;
	int reps = 0;
	double t = now_s(), best = 1e9;

	while (reps < 200 && (reps < 5 || now_s() - t < 1.0)) {
		double t1 = now_s();
		page = 0;
		if (reg_query(r, q, &total, count_page, &page)) {
			fprintf(stderr, "bench-query: %s failed\n", what);
			exit(1);
		}
		double d = now_s() - t1;
		if (d < best)
			best = d;
		reps++;
	}
	printf("  %-44s total %8" PRIu64 "  page %4zu  %8.3f ms (mean of %d), best %.3f ms\n",
	       what, total, page, (now_s() - t) * 1e3 / reps, reps, best * 1e3);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/vouch-bench-query-XXXXXX";
	const char *dir = argc > 1 ? argv[1] : NULL;
	uint64_t n_dev = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	struct registry *r;
	struct reg_counts c;
	char err[512];
	double t;

	if (!dir && !(dir = mkdtemp(tmp))) {
		perror("mkdtemp");
		return 1;
	}
	if (reg_open(&r, dir, err, sizeof err)) {
		fprintf(stderr, "bench-query: %s\n", err);
		return 1;
	}
	reg_counts_mt(r, &c);
	if (c.devices == 0) {
		t = now_s();
		if (generate(r, n_dev)) {
			fprintf(stderr, "bench-query: generating failed\n");
			return 1;
		}
		printf("generated %" PRIu64 " devices in %.1f s\n", n_dev, now_s() - t);
	}
	reg_close(r);

	t = now_s();
	if (reg_open(&r, dir, err, sizeof err)) {
		fprintf(stderr, "bench-query: %s\n", err);
		return 1;
	}
	double open_s = now_s() - t;
	reg_counts_mt(r, &c);
	t = now_s();
	reg_query_build(r);
	double build_s = now_s() - t;
	printf("registry: %" PRIu64 " devices, %" PRIu64 " MB file\n", c.devices, c.file_bytes >> 20);
	printf("open: %.0f ms (rows, status bitmaps and issuer lists included)\n", open_s * 1e3);
	printf("sorting the 5 indexes (first query, or reg_query_build): %.0f ms\n", build_s * 1e3);
	printf("index memory: %.1f MB (%.0f bytes per registration)\n",
	       (double)reg_query_mem(r) / 1e6, (double)reg_query_mem(r) / (double)c.devices);

	uint8_t ca[2][32], id[32], serial[8];
	struct reg_query q;
	char cn[64];
	id_of(ca[0], N_CA - 1, 3);
	id_of(ca[1], 3, 3);
	id_of(id, 777777 % c.devices, 11);
	serial_of(serial, 123457 % c.devices);
	cn_of(cn, sizeof cn, 424242 % c.devices);

	printf("queries (page of 100 unless said):\n");
	reg_query_init(&q);
	run(r, "no filter", &q);
	q.offset = c.devices - 50;
	run(r, "no filter, last page", &q);
	reg_query_init(&q);
	q.status = REG_INACTIVE;
	run(r, "status=INACTIVE", &q);
	q.offset = c.devices / 10;
	run(r, "status=INACTIVE, offset 10%", &q);
	reg_query_init(&q);
	q.id = id;
	run(r, "certificateId", &q);
	reg_query_init(&q);
	q.serial = serial;
	q.serial_len = 8;
	run(r, "serial (any CA)", &q);
	reg_query_init(&q);
	q.by_ca = true;
	q.ca = (const uint8_t (*)[32])ca;
	q.n_ca = 1;
	run(r, "ca (a CA with 2%)", &q);
	q.status = REG_REVOKED;
	run(r, "ca + status=REVOKED", &q);
	reg_query_init(&q);
	q.by_ca = true;
	q.ca = (const uint8_t (*)[32])ca;
	q.n_ca = 2;
	run(r, "two CAs (a CA serial)", &q);
	reg_query_init(&q);
	text(&q.cn, cn, false);
	run(r, "cn exact", &q);
	text(&q.cn, "sensor.building-07.floor-3.", true);
	run(r, "cn prefix (long shared prefix)", &q);
	text(&q.cn, "sensor.building-07.floor-3.00", true);
	run(r, "cn prefix, narrow", &q);
	reg_query_init(&q);
	text(&q.ou, "ou3", false);
	q.status = REG_ACTIVE;
	run(r, "ou exact + status=ACTIVE", &q);
	text(&q.o, "Acme", true);
	run(r, "ou + o prefix + status", &q);
	reg_query_init(&q);
	q.na_from = T0;
	q.na_to = T0 + 30 * 86400;
	q.status = REG_ACTIVE;
	run(r, "expiring within 30 days + ACTIVE", &q);
	reg_query_init(&q);
	q.na_to = T0 - 1;
	run(r, "expired", &q);
	reg_query_init(&q);
	q.na_from = T0;
	run(r, "not expired (every one)", &q);
	text(&q.ou, "ou1", false);
	q.status = REG_ACTIVE;
	run(r, "not expired + ou + ACTIVE", &q);
	reg_query_init(&q);
	q.nb_from = T0 - 86400 * 100;
	q.nb_to = T0 - 86400 * 90;
	text(&q.cn, "sensor.building-1", true);
	q.by_ca = true;
	q.ca = (const uint8_t (*)[32])&ca[1];
	q.n_ca = 1;
	run(r, "not-before range + cn prefix + ca", &q);

	reg_close(r);
	if (dir == tmp) {
		char p[600];
		snprintf(p, sizeof p, "%s/" REG_FILE_NAME, tmp);
		unlink(p);
		rmdir(tmp);
	}
	return 0;
}
