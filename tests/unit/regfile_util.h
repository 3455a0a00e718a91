/*
 * Helpers shared by the registry-file tests: a failing CHECK, temporary
 * data directories, and synthetic certificates whose every field is derived
 * from (CA, index) so that a reader can verify what it got.
 */
#ifndef VOUCH_TESTS_REGFILE_UTIL_H
#define VOUCH_TESTS_REGFILE_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "registry/regfile.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,	\
			__LINE__, #c);					\
		exit(1);						\
	}								\
} while (0)

#define CHECK_RC(expr, want) do {					\
	long long rc_ = (long long)(expr);				\
	if (rc_ != (long long)(want)) {					\
		fprintf(stderr, "%s:%d: %s = %lld, want %lld (%s)\n",	\
			__FILE__, __LINE__, #expr, rc_,			\
			(long long)(want), #want);			\
		exit(1);						\
	}								\
} while (0)

static inline void tu_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static inline char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *p = malloc(4096);

	snprintf(p, 4096, "%s/vouch-reg-XXXXXX", base);
	if (!mkdtemp(p)) {
		perror("mkdtemp");
		exit(1);
	}
	return p;
}

/* 32 bytes derived from (a, b). */
static inline void tu_id(uint8_t out[32], uint64_t a, uint64_t b)
{
	for (int i = 0; i < 4; i++) {
		uint64_t h = XXH3_64bits_withSeed(&a, sizeof a, b * 4 + (uint64_t)i + 1);
		memcpy(out + 8 * i, &h, 8);
	}
}

/* A synthetic device certificate number n of CA ca. */
struct tu_dev {
	struct reg_dev_in in;
	uint8_t serial[8];
	char cn[32], ou[16];
	uint8_t der[300];
};

static inline void tu_dev_make(struct tu_dev *d, const uint8_t ca_id[32],
			       uint64_t n, enum reg_how how,
			       enum reg_status status)
{
	memset(d, 0, sizeof(*d));
	tu_id(d->in.id, n, 7);
	memcpy(d->in.issuer, ca_id, 32);
	for (int i = 0; i < 8; i++)
		d->serial[i] = (uint8_t)(n >> (8 * (7 - i)));
	d->serial[0] |= 0x40;   /* never all-zero, fixed length */
	snprintf(d->cn, sizeof d->cn, "dev-%llu", (unsigned long long)n);
	snprintf(d->ou, sizeof d->ou, "ou%llu", (unsigned long long)(n % 7));
	for (size_t i = 0; i < sizeof d->der; i++)
		d->der[i] = (uint8_t)(n * 31 + i);
	d->in.serial = d->serial;
	d->in.serial_len = sizeof d->serial;
	d->in.cn = d->cn;
	d->in.o = "vouch-test";
	d->in.ou = d->ou;
	d->in.not_before = 1700000000;
	d->in.not_after = 1700000000 + (int64_t)(n % 1000) * 86400;
	d->in.status = status;
	d->in.how = how;
	d->in.der = d->der;
	d->in.der_len = sizeof d->der;
}

/* Whether a snapshot's fixed fields are those of tu_dev_make(.., n, ..). */
static inline bool tu_dev_matches(const struct reg_device *got, uint64_t n)
{
	struct tu_dev want;

	tu_dev_make(&want, got->issuer, n, REG_MANUAL, 0);
	return memcmp(got->id, want.in.id, 32) == 0 &&
	       got->serial_len == sizeof want.serial &&
	       memcmp(got->serial, want.serial, sizeof want.serial) == 0 &&
	       strcmp(got->cn, want.cn) == 0 && got->cn_len == strlen(want.cn) &&
	       strcmp(got->o, "vouch-test") == 0 &&
	       strcmp(got->ou, want.ou) == 0 &&
	       got->not_before == want.in.not_before &&
	       got->not_after == want.in.not_after &&
	       got->der_len == sizeof want.der &&
	       memcmp(got->der, want.der, sizeof want.der) == 0 &&
	       got->status >= REG_ACTIVE && got->status <= REG_REVOKED &&
	       strlen(got->client_id) == got->client_id_len;
}

/* A CA number n. */
struct tu_ca {
	struct reg_ca_in in;
	uint8_t serial[4];
	char cn[32];
	uint8_t der[200];
};

static inline void tu_ca_make(struct tu_ca *c, uint64_t n, bool auto_register,
			      enum reg_status auto_status)
{
	memset(c, 0, sizeof(*c));
	tu_id(c->in.id, n, 3);
	c->serial[0] = 0x11;
	c->serial[1] = (uint8_t)n;
	c->serial[2] = (uint8_t)(n >> 8);
	c->serial[3] = 0x22;
	snprintf(c->cn, sizeof c->cn, "ca-%llu", (unsigned long long)n);
	for (size_t i = 0; i < sizeof c->der; i++)
		c->der[i] = (uint8_t)(n + i * 7);
	c->in.serial = c->serial;
	c->in.serial_len = sizeof c->serial;
	c->in.cn = c->cn;
	c->in.o = "vouch-test";
	c->in.not_before = 1600000000;
	c->in.not_after = 1900000000;
	c->in.auto_register = auto_register;
	c->in.auto_status = auto_status;
	c->in.der = c->der;
	c->in.der_len = sizeof c->der;
}

static inline double tu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
