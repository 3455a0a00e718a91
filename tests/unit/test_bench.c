/*
 * tests/unit/test_bench.c - the parts of vouch-bench that decide what its
 * reports say and which certificates it uses, linked from bench/hist.o and
 * bench/tls.o (see the Makefile):
 *
 *  - the latency histogram (bench/hist.c) against an exact, sorted
 *    reference over several distributions: every percentile within the
 *    documented 1.6 %, exact below 128 ns, the exact maximum at p = 100,
 *    never outside [min, max]; count, min, max and mean exact; merging
 *    equals adding every sample to one histogram; the empty histogram;
 *  - the certificate pool (bench/tls.c): a directory of pairs made with
 *    the real PKI functions (tls/pki.h), with the files vouch-bench must
 *    skip (NAME.chain.crt, a .crt without a key) and those it must refuse
 *    (a key of another certificate, a non-PEM file, an empty directory).
 */
#include "bench/bench.h"
#include "tls/cert.h"
#include "tls/pki.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

#include "check.h"

/* A mismatched pair must be refused when the pool loads (bench/tls.c
 * compares the key's public half with the certificate's itself:
 * wolfSSL_CTX_check_private_key() lets an EC key of another certificate
 * through in Debian's wolfSSL 5.5). */

/* A mismatched pair was loaded (got >= 0) or refused (got < 0, message err). */
static void mismatch_result(int line, int got, const char *err, const char *want_msg)
{
	if (got >= 0) {
		fprintf(stderr, "test_bench.c:%d: a mismatched key was accepted\n", line);
		failures++;
		return;
	}
	if (got != -EINVAL || !strstr(err, want_msg)) {
		fprintf(stderr, "test_bench.c:%d: got %d \"%s\", want -EINVAL \"%s\"\n",
			line, got, err, want_msg);
		failures++;
	}
}

#define MUST(c)                                                               \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: MUST(%s) failed\n", __FILE__,  \
				__LINE__, #c);                                \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* ---- histograms ------------------------------------------------------- */

/* xorshift64*: the same samples every run. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in (0, 1]. */
static double rnd_unit(void)
{
	return ((double)(rnd() >> 11) + 1.0) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentiles checked, in thousandths of a percent (exact rank arithmetic). */
static const uint64_t pcts_milli[] = {
	1, 1000, 10000, 25000, 50000, 75000, 90000, 95000, 99000, 99900,
	99990, 99999, 100000,
};

/*
 * The exact percentile: the smallest sample with at least p % of the
 * samples at or below it, i.e. sorted[ceil(p * n / 100) - 1].
 */
static uint64_t exact_pct(const uint64_t *sorted, size_t n, uint64_t p_milli)
{
	uint64_t rank = (p_milli * (uint64_t)n + 99999) / 100000;

	if (rank < 1)
		rank = 1;
	return sorted[rank - 1];
}

/* h against the samples v[n] (any order; sorted here). */
static void check_hist(const char *what, const struct hist *h, uint64_t *v, size_t n)
{
	long double sum = 0;
	int bad = 0;

	qsort(v, n, sizeof *v, cmp_u64);
	CHECK_INT(h->count, n);
	CHECK_INT(h->min, v[0]);
	CHECK_INT(h->max, v[n - 1]);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	double mean = (double)(sum / n);
	if (fabs(hist_mean(h) - mean) > mean * 1e-9) {
		fprintf(stderr, "%s: mean %.3f, want %.3f\n", what, hist_mean(h), mean);
		failures++;
	}
	for (size_t i = 0; i < sizeof pcts_milli / sizeof pcts_milli[0]; i++) {
		double p = (double)pcts_milli[i] / 1000.0;
		uint64_t want = exact_pct(v, n, pcts_milli[i]);
		uint64_t got = hist_pct(h, p);
		uint64_t diff = got > want ? got - want : want - got;

		/* within 1/64 (the header's 1.6 %); exact for small values */
		bool ok = want < 128 ? got == want : diff * 64 <= want;
		if (p >= 100.0)
			ok = got == v[n - 1];
		if (!ok || got < v[0] || got > v[n - 1]) {
			if (bad++ < 5)
				fprintf(stderr, "%s: p%g = %llu, want %llu (1.6 %%: +-%llu)\n",
					what, p, (unsigned long long)got,
					(unsigned long long)want,
					(unsigned long long)(want / 64));
			failures++;
		}
	}
}

static void fill_check(const char *what, uint64_t *v, size_t n)
{
	struct hist *h = malloc(sizeof *h);

	MUST(h);
	hist_init(h);
	for (size_t i = 0; i < n; i++)
		hist_add(h, v[i]);
	check_hist(what, h, v, n);
	free(h);
}

#define NS 200000

static void test_hist_distributions(void)
{
	uint64_t *v = malloc(NS * sizeof *v);

	MUST(v);
	/* uniform over 1 us .. 10 ms */
	for (size_t i = 0; i < NS; i++)
		v[i] = 1000 + rnd() % 10000000;
	fill_check("uniform", v, NS);

	/* exponential, mean 50 us: a long tail */
	for (size_t i = 0; i < NS; i++)
		v[i] = (uint64_t)(-log(rnd_unit()) * 50000.0);
	fill_check("exponential", v, NS);

	/* every value below 300: the exact buckets and the first log ones */
	for (size_t i = 0; i < NS; i++)
		v[i] = rnd() % 300;
	fill_check("small", v, NS);

	/* log-uniform over 1 ns .. 2^40 ns: every bucket size */
	for (size_t i = 0; i < NS; i++)
		v[i] = (uint64_t)exp2(rnd_unit() * 40.0);
	fill_check("log-uniform", v, NS);

	/* 20 us +- 1 us, and a few huge outliers: p99.999 and max are theirs */
	for (size_t i = 0; i < NS; i++)
		v[i] = 19000 + rnd() % 2000;
	v[17] = 10ull * 1000000000;   /* 10 s */
	v[4242] = 1ull << 50;
	v[NS - 1] = UINT64_MAX - 7;   /* the top bucket */
	fill_check("outliers", v, NS);

	/* ten distinct small values: the rank rule itself (p25 is the 3rd) */
	for (size_t i = 0; i < 10; i++)
		v[i] = 10 * (10 - i);
	fill_check("ten", v, 10);

	/* one sample, and one value many times: exact everywhere */
	v[0] = 123456789;
	fill_check("single", v, 1);
	for (size_t i = 0; i < 1000; i++)
		v[i] = 777777;
	fill_check("constant", v, 1000);
	v[0] = 0;
	fill_check("zero", v, 1);
	free(v);
}

static void test_hist_empty(void)
{
	struct hist *h = malloc(sizeof *h), *e = malloc(sizeof *e);

	MUST(h && e);
	hist_init(h);
	hist_init(e);
	CHECK_INT(h->count, 0);
	CHECK_INT(hist_pct(h, 50), 0);
	CHECK_INT(hist_pct(h, 100), 0);
	CHECK(hist_mean(h) == 0.0);
	/* merging empties stays empty; an empty source changes nothing */
	hist_merge(h, e);
	CHECK_INT(h->count, 0);
	CHECK_INT(hist_pct(h, 99), 0);
	hist_add(h, 5000);
	hist_merge(h, e);
	CHECK_INT(h->count, 1);
	CHECK_INT(h->min, 5000);
	CHECK_INT(hist_pct(h, 50), 5000);
	/* into an empty destination: its min is the source's, not 0 */
	hist_merge(e, h);
	CHECK_INT(e->min, 5000);
	CHECK_INT(e->max, 5000);
	CHECK_INT(hist_pct(e, 1), 5000);
	free(h);
	free(e);
}

/* Samples spread over K histograms, as over K loop threads, then merged:
 * the same as one histogram of everything, bucket for bucket. */
static void test_hist_merge(void)
{
	enum { K = 4, N = 50000 };
	struct hist *part = calloc(K, sizeof *part), *all = malloc(sizeof *all),
		    *merged = malloc(sizeof *merged);
	uint64_t *v = malloc(N * sizeof *v);

	MUST(part && all && merged && v);
	hist_init(all);
	hist_init(merged);
	for (int k = 0; k < K; k++)
		hist_init(&part[k]);
	for (size_t i = 0; i < N; i++) {
		/* the parts see different ranges: min and max come from
		 * different parts */
		int k = (int)(rnd() % K);

		v[i] = (uint64_t)(k + 1) * 1000 + rnd() % (100000u << k);
		hist_add(&part[k], v[i]);
		hist_add(all, v[i]);
	}
	for (int k = 0; k < K; k++)
		hist_merge(merged, &part[k]);
	CHECK_INT(merged->count, all->count);
	CHECK_INT(merged->min, all->min);
	CHECK_INT(merged->max, all->max);
	CHECK(fabs(merged->sum - all->sum) <= all->sum * 1e-12);
	CHECK(memcmp(merged->b, all->b, sizeof all->b) == 0);
	for (size_t i = 0; i < sizeof pcts_milli / sizeof pcts_milli[0]; i++) {
		double p = (double)pcts_milli[i] / 1000.0;

		CHECK_INT(hist_pct(merged, p), hist_pct(all, p));
	}
	check_hist("merged", merged, v, N);
	free(part);
	free(all);
	free(merged);
	free(v);
}

/* ---- the certificate pool --------------------------------------------- */

static time_t now;
static char root[] = "/tmp/vouch-test-bench.XXXXXX";

struct pair {
	struct tls_pki_key *key;
	char *crt_pem, *key_pem;
};

static struct tls_pki_key *ca_key;
static uint8_t ca_der[TLS_PKI_DER_MAX];
static size_t ca_len;
static char *ca_pem;

static char *pem_of(const uint8_t *der, size_t len)
{
	size_t cap = tls_pem_size("CERTIFICATE", len);
	char *s = malloc(cap);

	MUST(s && tls_pem_encode("CERTIFICATE", der, len, s, cap) > 0);
	return s;
}

static void make_ca(void)
{
	struct tls_pki_spec s;
	int n;

	MUST(tls_pki_key_generate(TLS_KEY_EC, 256, &ca_key) == 0);
	tls_pki_spec_init(&s, TLS_PKI_ROOT_CA, now, 30);
	s.subject.cn = "bench test CA";
	n = tls_pki_issue(&s, ca_key, NULL, ca_der, sizeof ca_der);
	MUST(n > 0);
	ca_len = (size_t)n;
	ca_pem = pem_of(ca_der, ca_len);
}

/* A device certificate for cn, signed by the CA, with a new key. */
static struct pair make_device(const char *cn)
{
	struct pair p;
	struct tls_pki_spec s;
	struct tls_pki_issuer is = { ca_der, ca_len, ca_key };
	uint8_t der[TLS_PKI_DER_MAX];
	int n;

	MUST(tls_pki_key_generate(TLS_KEY_EC, 256, &p.key) == 0);
	tls_pki_spec_init(&s, TLS_PKI_DEVICE, now, 30);
	s.subject.cn = cn;
	n = tls_pki_issue(&s, p.key, &is, der, sizeof der);
	MUST(n > 0);
	p.crt_pem = pem_of(der, (size_t)n);
	p.key_pem = malloc(TLS_PKI_KEY_DER_MAX * 2);
	MUST(p.key_pem && tls_pki_key_pem(p.key, p.key_pem, TLS_PKI_KEY_DER_MAX * 2) > 0);
	return p;
}

static void pair_free(struct pair *p)
{
	tls_pki_key_free(p->key);
	free(p->crt_pem);
	free(p->key_pem);
}

static char *path_of(const char *dir, const char *name)
{
	char *p;

	MUST(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void put(const char *dir, const char *name, const char *data)
{
	char *p = path_of(dir, name);

	MUST(tls_pki_file_write(p, data, strlen(data), 0600, true) == 0);
	free(p);
}

static char *subdir(const char *name)
{
	char *d = path_of(root, name);

	MUST(mkdir(d, 0700) == 0);
	return d;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = path_of(dir, de->d_name);
		if (unlink(p) != 0)
			rm_tree(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static bool has(const char *s, const char *needle)
{
	if (strstr(s, needle))
		return true;
	fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", s, needle);
	return false;
}

/* What vouch-bench finds in a directory that vouchctl filled. */
static void test_pool_dir(void)
{
	char *dir = subdir("good"), err[512];
	struct pair dev[4];
	struct bpool pool = { 0 };
	char *chain;
	int n;

	/* made out of order: the pool is sorted by name */
	dev[2] = make_device("dev2");
	dev[0] = make_device("dev0");
	dev[1] = make_device("dev1");
	dev[3] = make_device("dev3");
	for (int i = 0; i < 4; i++) {
		char name[32];

		snprintf(name, sizeof name, "dev%d.crt", i);
		if (i == 3) {
			/* a .crt may itself hold the chain */
			MUST(asprintf(&chain, "%s%s", dev[3].crt_pem, ca_pem) > 0);
			put(dir, name, chain);
			free(chain);
		} else {
			put(dir, name, dev[i].crt_pem);
		}
		snprintf(name, sizeof name, "dev%d.key", i);
		put(dir, name, dev[i].key_pem);
	}
	/* vouchctl's chain file beside dev1 */
	MUST(asprintf(&chain, "%s%s", dev[1].crt_pem, ca_pem) > 0);
	put(dir, "dev1.chain.crt", chain);
	free(chain);
	/* a NAME.chain.crt with a NAME.chain.key: skipped for its name alone */
	{
		struct pair z = make_device("z");

		put(dir, "z.chain.crt", z.crt_pem);
		put(dir, "z.chain.key", z.key_pem);
		pair_free(&z);
	}
	put(dir, "ca.crt", ca_pem);          /* no ca.key: skipped */
	put(dir, "orphan.key", dev[0].key_pem); /* no orphan.crt */
	put(dir, "notes.txt", "not a certificate\n");
	put(dir, ".crt", "nameless\n");       /* no NAME at all */

	err[0] = 0;
	n = bpool_load_dir(&pool, dir, err, sizeof err);
	CHECK_INT(n, 4);
	CHECK_INT(pool.n, 4);
	for (size_t i = 0; i < pool.n && i < 4; i++) {
		char name[8];

		snprintf(name, sizeof name, "dev%zu", i);
		CHECK_STR(pool.v[i].name, name);
		CHECK_INT(pool.v[i].key_len, strlen(dev[i].key_pem));
		CHECK(memcmp(pool.v[i].key, dev[i].key_pem, pool.v[i].key_len) == 0);
		CHECK(pool.v[i].crt_len >= strlen(dev[i].crt_pem));
		CHECK(memcmp(pool.v[i].crt, dev[i].crt_pem, strlen(dev[i].crt_pem)) == 0);
	}
	if (pool.n == 4)
		CHECK_INT(pool.v[3].crt_len, strlen(dev[3].crt_pem) + strlen(ca_pem));
	bpool_free(&pool);
	CHECK_INT(pool.n, 0);
	CHECK(pool.v == NULL);

	/* one pair, as --cert/--key */
	{
		char *crt = path_of(dir, "dev2.crt"), *key = path_of(dir, "dev2.key");
		char *wrong = path_of(dir, "dev1.key"), *none = path_of(dir, "none.key");

		CHECK_INT(bpool_load_pair(&pool, crt, key, err, sizeof err), 1);
		CHECK_INT(pool.n, 1);
		if (pool.n)
			CHECK_STR(pool.v[0].name, crt);
		bpool_free(&pool);

		err[0] = 0;
		mismatch_result(__LINE__, bpool_load_pair(&pool, crt, wrong, err, sizeof err),
				err, "the key does not match the certificate");
		bpool_free(&pool);

		err[0] = 0;
		CHECK_INT(bpool_load_pair(&pool, crt, none, err, sizeof err), -ENOENT);
		CHECK(has(err, "none.key"));
		CHECK_INT(pool.n, 0);
		free(crt);
		free(key);
		free(wrong);
		free(none);
	}
	for (int i = 0; i < 4; i++)
		pair_free(&dev[i]);
	free(dir);
}

/* What it must refuse, each with a message that names the culprit. */
static void test_pool_errors(void)
{
	struct pair a = make_device("a"), b = make_device("b");
	struct bpool pool = { 0 };
	char err[512], *dir;

	/* a key of another certificate */
	dir = subdir("mismatch");
	put(dir, "a.crt", a.crt_pem);
	put(dir, "a.key", a.key_pem);
	put(dir, "b.crt", b.crt_pem);
	put(dir, "b.key", a.key_pem);
	err[0] = 0;
	mismatch_result(__LINE__, bpool_load_dir(&pool, dir, err, sizeof err), err,
			"b: the key does not match the certificate");
	bpool_free(&pool);
	free(dir);

	/* not PEM */
	dir = subdir("garbage");
	put(dir, "g.crt", "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n");
	put(dir, "g.key", a.key_pem);
	err[0] = 0;
	CHECK_INT(bpool_load_dir(&pool, dir, err, sizeof err), -EINVAL);
	CHECK(has(err, "g: not a PEM certificate"));
	bpool_free(&pool);
	free(dir);

	dir = subdir("badkey");
	put(dir, "k.crt", a.crt_pem);
	put(dir, "k.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
	err[0] = 0;
	CHECK_INT(bpool_load_dir(&pool, dir, err, sizeof err), -EINVAL);
	CHECK(has(err, "k: not a PEM private key"));
	bpool_free(&pool);
	free(dir);

	/* an empty certificate file */
	dir = subdir("emptyfile");
	put(dir, "e.crt", "");
	put(dir, "e.key", a.key_pem);
	err[0] = 0;
	CHECK(bpool_load_dir(&pool, dir, err, sizeof err) < 0);
	CHECK(has(err, "e.crt: empty or too large"));
	bpool_free(&pool);
	free(dir);

	/* nothing usable: empty, or only certificates without keys */
	dir = subdir("empty");
	err[0] = 0;
	CHECK_INT(bpool_load_dir(&pool, dir, err, sizeof err), -ENOENT);
	CHECK(has(err, "no NAME.crt with a NAME.key"));
	CHECK_INT(pool.n, 0);
	put(dir, "ca.crt", ca_pem);
	put(dir, "x.chain.crt", a.crt_pem);
	put(dir, "x.chain.key", a.key_pem);
	err[0] = 0;
	CHECK_INT(bpool_load_dir(&pool, dir, err, sizeof err), -ENOENT);
	CHECK(has(err, "no NAME.crt with a NAME.key"));
	free(dir);

	/* no such directory */
	dir = path_of(root, "missing");
	err[0] = 0;
	CHECK_INT(bpool_load_dir(&pool, dir, err, sizeof err), -ENOENT);
	CHECK(has(err, dir));
	CHECK_INT(pool.n, 0);
	free(dir);

	pair_free(&a);
	pair_free(&b);
}

int main(void)
{
	test_hist_distributions();
	test_hist_empty();
	test_hist_merge();

	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	now = time(NULL);
	MUST(mkdtemp(root) != NULL);
	make_ca();
	test_pool_dir();
	test_pool_errors();
	rm_tree(root);
	tls_pki_key_free(ca_key);
	free(ca_pem);
	wolfSSL_Cleanup();

	if (failures) {
		fprintf(stderr, "test_bench: %d failures\n", failures);
		return 1;
	}
	printf("test_bench: ok\n");
	return 0;
}
