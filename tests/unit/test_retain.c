/*
 * Unit tests of the retained-message store (mqtt/retain.c): set, replace
 * and delete; matching filters with '+', '#' and the '$' rule against the
 * section 4.7 table; the topic names handed to the callback; a randomized
 * comparison against a naive matcher; scale; 30000-level topics; and
 * allocation failure at every step (the store's .c files are included so
 * that their allocations can be made to fail).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long alloc_countdown = -1;  /* fail when it reaches 0; -1 = never */
static bool alloc_sticky;
static long alloc_failures;

static bool alloc_fail(void)
{
	if (alloc_countdown < 0)
		return false;
	if (alloc_countdown == 0) {
		if (!alloc_sticky)
			alloc_countdown = -1;
		alloc_failures++;
		return true;
	}
	alloc_countdown--;
	return false;
}

static void *t_malloc(size_t n) { return alloc_fail() ? NULL : malloc(n); }
static void *t_calloc(size_t a, size_t b) { return alloc_fail() ? NULL : calloc(a, b); }
static void *t_realloc(void *p, size_t n) { return alloc_fail() ? NULL : realloc(p, n); }

#define malloc(n) t_malloc(n)
#define calloc(a, b) t_calloc(a, b)
#define realloc(p, n) t_realloc(p, n)
#include "../../mqtt/lmap.c"
#include "../../mqtt/retain.c"
#undef malloc
#undef calloc
#undef realloc

#include "topic_cases.h"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } else { failed++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECKF(cond, ...) do { \
	if (cond) { passed++; } else { failed++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define VAL(i) ((void *)(uintptr_t)(i))

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *set(struct rt_store *r, const char *t, uintptr_t v)
{
	return rt_set(r, t, strlen(t), VAL(v));
}

/* What a match reported: values, and whether each topic name given to the
 * callback is the one stored with the value (value i <-> names[i]). */
struct got {
	int n;
	uintptr_t vals[8192];
	char *const *names;
	int bad_names;
};

static void got_cb(void *ctx, const char *topic, size_t tlen, void *val)
{
	struct got *g = ctx;
	uintptr_t v = (uintptr_t)val;

	if (g->n < 8192)
		g->vals[g->n] = v;
	g->n++;
	if (g->names) {
		const char *want = g->names[v];

		if (strlen(want) != tlen || memcmp(want, topic, tlen) != 0)
			g->bad_names++;
	}
}

static int match(struct rt_store *r, const char *f, struct got *g, char *const *names)
{
	memset(g, 0, sizeof(*g));
	g->names = names;
	return rt_match(r, f, strlen(f), got_cb, g);
}

static void test_basic(void)
{
	struct rt_store *r = rt_new();

	CHECK(rt_count(r) == 0);
	CHECK(rt_get(r, "a/b", 3) == NULL);
	CHECK(set(r, "a/b", 1) == NULL);
	CHECK(rt_count(r) == 1);
	CHECK(rt_get(r, "a/b", 3) == VAL(1));
	CHECK(rt_get(r, "a", 1) == NULL);
	CHECK(rt_get(r, "a/b/c", 5) == NULL);
	CHECK(rt_get(r, "a/", 2) == NULL);
	/* replace returns the previous value */
	CHECK(set(r, "a/b", 2) == VAL(1));
	CHECK(rt_count(r) == 1);
	CHECK(rt_get(r, "a/b", 3) == VAL(2));
	/* a value at an inner node and below it */
	CHECK(set(r, "a", 3) == NULL);
	CHECK(set(r, "a/b/c", 4) == NULL);
	CHECK(set(r, "a//c", 5) == NULL);
	CHECK(set(r, "/", 6) == NULL);
	CHECK(rt_count(r) == 5);
	CHECK(rt_get(r, "a//c", 4) == VAL(5));
	CHECK(rt_get(r, "/", 1) == VAL(6));
	/* delete */
	CHECK(rt_set(r, "a/b", 3, NULL) == VAL(2));
	CHECK(rt_set(r, "a/b", 3, NULL) == NULL);
	CHECK(rt_set(r, "x/y", 3, NULL) == NULL);
	CHECK(rt_count(r) == 4);
	CHECK(rt_get(r, "a/b", 3) == NULL);
	CHECK(rt_get(r, "a/b/c", 5) == VAL(4));  /* the node stays for a/b/c */
	CHECK(rt_set(r, "a/b/c", 5, NULL) == VAL(4));
	CHECK(rt_set(r, "a//c", 4, NULL) == VAL(5));
	/* pruned back to "a" and "/"'s first level "" */
	CHECK(r->root->kids.n == 2);
	struct rt_node *a = (struct rt_node *)lmap_find(&r->root->kids, "a", 1, KOFF);

	CHECK(a && a->kids.n == 0 && a->val == VAL(3));
	CHECK(rt_set(r, "a", 1, NULL) == VAL(3));
	CHECK(rt_set(r, "/", 1, NULL) == VAL(6));
	CHECK(rt_count(r) == 0 && r->root->kids.n == 0);
	/* rt_put reports the previous value and errors */
	void *old = VAL(99);

	CHECK(rt_put(r, "p", 1, VAL(7), &old) == 0 && old == NULL);
	CHECK(rt_put(r, "p", 1, VAL(8), &old) == 0 && old == VAL(7));
	CHECK(rt_put(r, "p", 1, NULL, &old) == 0 && old == VAL(8));
	CHECK(rt_put(r, "p", 1, NULL, &old) == 0 && old == NULL);
	/* topics of 65535 bytes are fine, longer ones refused (value handed back) */
	char *big = malloc(65537);

	memset(big, 'x', 65536);
	big[100] = '/';
	CHECK(rt_put(r, big, 65536, VAL(9), &old) == -EINVAL && old == NULL);
	CHECK(rt_set(r, big, 65536, VAL(9)) == VAL(9));
	CHECK(rt_set(r, big, 65535, VAL(9)) == NULL);
	CHECK(rt_get(r, big, 65535) == VAL(9));
	struct got g;

	memset(&g, 0, sizeof(g));
	CHECK(rt_match(r, "#", 1, got_cb, &g) == 1 && g.vals[0] == 9);
	CHECK(rt_match(r, "+/+", 3, got_cb, &g) == 1);
	CHECK(rt_set(r, big, 65535, NULL) == VAL(9));
	free(big);
	CHECK(rt_count(r) == 0);
	rt_free(r, NULL);
	rt_free(NULL, NULL);
}

static void test_spec_table(void)
{
	size_t nc = sizeof(topic_cases) / sizeof(topic_cases[0]);

	for (size_t i = 0; i < nc; i++) {
		const struct topic_case *c = &topic_cases[i];
		struct rt_store *r = rt_new();
		char *names[2] = { NULL, (char *)c->topic };
		struct got g;

		CHECK(naive_match(c->filter, c->topic) == c->match);  /* the reference agrees */
		set(r, c->topic, 1);
		int n = match(r, c->filter, &g, names);

		CHECKF(n == c->match && g.n == n && g.bad_names == 0,
		       "filter '%s' topic '%s': %d, want %d", c->filter, c->topic, n, c->match);
		rt_free(r, NULL);
	}
	/* every topic of the table in one store: each filter finds exactly the
	 * topics the naive matcher says, with the right names */
	struct rt_store *r = rt_new();
	char *names[256];
	int nt = 0;

	for (size_t i = 0; i < nc; i++) {
		bool dup = false;

		for (int k = 1; k <= nt; k++)
			dup |= strcmp(names[k], topic_cases[i].topic) == 0;
		if (!dup) {
			names[++nt] = (char *)topic_cases[i].topic;
			CHECK(set(r, names[nt], (uintptr_t)nt) == NULL);
		}
	}
	CHECK(rt_count(r) == (size_t)nt);
	for (size_t i = 0; i < nc; i++) {
		struct got g;
		int want = 0;

		match(r, topic_cases[i].filter, &g, names);
		for (int k = 1; k <= nt; k++)
			want += naive_match(topic_cases[i].filter, names[k]);
		bool each = true;

		for (int k = 0; k < g.n; k++)
			each &= naive_match(topic_cases[i].filter, names[g.vals[k]]);
		CHECKF(g.n == want && each && g.bad_names == 0, "all-in-one filter '%s': %d want %d",
		       topic_cases[i].filter, g.n, want);
	}
	/* '$' topics: only filters starting with '$' find them */
	struct got g;

	rt_free(r, NULL);
	r = rt_new();
	set(r, "$SYS/broker/uptime", 1);
	set(r, "$SYS/broker/load", 2);
	set(r, "$share/x", 3);
	set(r, "normal/topic", 4);
	CHECK(match(r, "#", &g, NULL) == 1 && g.vals[0] == 4);
	CHECK(match(r, "+/#", &g, NULL) == 1);
	CHECK(match(r, "+/+/+", &g, NULL) == 0);
	CHECK(match(r, "+/topic", &g, NULL) == 1);
	CHECK(match(r, "$SYS/#", &g, NULL) == 2);
	CHECK(match(r, "$SYS/+/+", &g, NULL) == 2);
	CHECK(match(r, "$SYS/broker/+", &g, NULL) == 2);
	CHECK(match(r, "$SYS/+/load", &g, NULL) == 1 && g.vals[0] == 2);
	CHECK(match(r, "$share/#", &g, NULL) == 1 && g.vals[0] == 3);
	rt_free(r, NULL);
}

/* ---- randomized against the naive matcher --------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const lv_topic[] = { "a", "b", "c", "", "$x", "dd" };
static const char *const lv_filter[] = { "a", "b", "c", "", "$x", "dd", "+", "+", "#" };

static void rand_path(char *out, size_t cap, bool filter)
{
	int depth = 1 + (int)rnd(filter ? 5 : 6);
	size_t o = 0;

	for (int i = 0; i < depth; i++) {
		const char *l = filter ? lv_filter[rnd(9)] : lv_topic[rnd(6)];

		if (l[0] == '#' && i != depth - 1)
			l = "+";
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "/" : "", l);
	}
}

static void test_random(void)
{
	enum { NT = 4000 };
	static char names_buf[NT + 1][48];
	static char *names[NT + 1];
	static bool live[NT + 1];
	struct rt_store *r = rt_new();
	int bad = 0, nlive = 0, slots = 0;
	char f[48];

	for (int i = 0; i <= NT; i++)
		names[i] = names_buf[i];
	for (int round = 0; round < 5; round++) {
		/* set random topics (new slots), or replace, or delete */
		for (int i = 0; i < 700; i++) {
			char t[48];
			int slot = 0;

			rand_path(t, sizeof(t), false);
			for (int k = 1; k <= slots; k++)
				if (live[k] && strcmp(names[k], t) == 0)
					slot = k;
			if (slot && rnd(2)) {
				bad += rt_set(r, t, strlen(t), NULL) != VAL(slot);
				live[slot] = false;
				nlive--;
				bad += rt_get(r, t, strlen(t)) != NULL;
				continue;
			}
			if (slots == NT)
				break;
			/* a fresh slot: a replace hands back the old slot's value */
			slots++;
			snprintf(names[slots], 48, "%s", t);
			void *old = set(r, t, (uintptr_t)slots);

			bad += old != (slot ? VAL(slot) : NULL);
			if (slot)
				live[slot] = false;
			else
				nlive++;
			live[slots] = true;
		}
		bad += rt_count(r) != (size_t)nlive;
		for (int i = 0; i < 1500; i++) {
			struct got g;

			rand_path(f, sizeof(f), true);
			int n = match(r, f, &g, names);
			int want = 0;

			for (int k = 1; k <= slots; k++)
				want += live[k] && naive_match(f, names[k]);
			bool each = true;

			for (int k = 0; k < g.n && k < 8192; k++)
				each &= live[g.vals[k]] && naive_match(f, names[g.vals[k]]);
			/* no value twice */
			for (int k = 0; k < g.n && each; k++)
				for (int j = k + 1; j < g.n; j++)
					each &= g.vals[k] != g.vals[j];
			if (n != want || !each || g.bad_names) {
				bad++;
				fprintf(stderr, "random: filter '%s': %d, want %d\n", f, n, want);
			}
		}
	}
	CHECKF(bad == 0, "%d mismatches", bad);
	for (int k = 1; k <= slots; k++)
		if (live[k])
			CHECK(rt_set(r, names[k], strlen(names[k]), NULL) == VAL(k));
	CHECK(rt_count(r) == 0 && r->root->kids.n == 0);
	rt_free(r, NULL);
}

/* ---- scale, depth, nesting ------------------------------------------------- */

static int released;

static void release_cb(void *v)
{
	released++;
}

static void count_cb(void *ctx, const char *topic, size_t tlen, void *val)
{
	(*(long *)ctx)++;
}

static void test_scale(void)
{
	enum { N = 100000 };
	struct rt_store *r = rt_new();
	char t[64];
	double t0 = now_s();
	int bad = 0;

	for (int i = 0; i < N; i++) {
		snprintf(t, sizeof(t), "devices/%d/state", i);
		bad += set(r, t, (uintptr_t)i + 1) != NULL;
	}
	double t1 = now_s();
	long n = 0;

	CHECK(rt_match(r, "#", 1, count_cb, &n) == N && n == N);
	n = 0;
	CHECK(rt_match(r, "devices/+/state", 15, count_cb, &n) == N);
	CHECK(rt_match(r, "devices/777/#", 13, count_cb, &n) == 1);
	CHECK(rt_match(r, "devices/777/+", 13, count_cb, &n) == 1);
	CHECK(rt_match(r, "+/777/state", 11, count_cb, &n) == 1);
	double t2 = now_s();

	for (int i = 0; i < N; i++) {
		snprintf(t, sizeof(t), "devices/%d/state", i);
		bad += rt_get(r, t, strlen(t)) != VAL(i + 1);
	}
	for (int i = 0; i < N; i += 2) {
		snprintf(t, sizeof(t), "devices/%d/state", i);
		bad += set(r, t, 0) != VAL(i + 1);
	}
	CHECK(bad == 0);
	CHECK(rt_count(r) == N / 2);
	printf("  retain: %d sets in %.0f ms, full wildcard walks in %.0f ms\n", N,
	       (t1 - t0) * 1e3, (t2 - t1) * 1e3);
	released = 0;
	rt_free(r, release_cb);
	CHECK(released == N / 2);
}

static void test_deep(void)
{
	enum { LEVELS = 30000 };
	size_t len = LEVELS * 2 - 1;
	char *a = malloc(len + 1), *p = malloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		a[i] = i % 2 ? '/' : 'a';
		p[i] = i % 2 ? '/' : '+';
	}
	a[len] = p[len] = 0;
	struct rt_store *r = rt_new();
	struct got g;
	char *names[3] = { NULL, a, a };

	CHECK(rt_set(r, a, len, VAL(1)) == NULL);
	CHECK(rt_set(r, a, len - 2, VAL(2)) == NULL);
	CHECK(rt_get(r, a, len) == VAL(1));
	names[2] = NULL;
	memset(&g, 0, sizeof(g));
	CHECK(rt_match(r, a, len, got_cb, &g) == 1);
	CHECK(rt_match(r, p, len, got_cb, &g) == 1);
	CHECK(rt_match(r, p, len - 2, got_cb, &g) == 1);
	CHECK(rt_match(r, "#", 1, got_cb, &g) == 2);
	CHECK(rt_match(r, "a/#", 3, got_cb, &g) == 2);
	CHECK(rt_match(r, "a/+/#", 5, got_cb, &g) == 2);
	CHECK(rt_match(r, "+", 1, got_cb, &g) == 0);
	/* the topic handed to the callback is the full 30000-level name */
	g.n = 0;
	g.names = names;
	CHECK(rt_match(r, p, len, got_cb, &g) == 1 && g.bad_names == 0);
	/* delete the deeper one: the chain is pruned up to the other */
	CHECK(rt_set(r, a, len, NULL) == VAL(1));
	CHECK(rt_get(r, a, len - 2) == VAL(2));
	CHECK(rt_count(r) == 1);
	released = 0;
	rt_free(r, release_cb);  /* deep chain still there */
	CHECK(released == 1);
	free(a);
	free(p);
}

struct nest {
	struct rt_store *r;
	int match_rc, put_rc;
	void *set_ret;
};

static void nest_cb(void *ctx, const char *topic, size_t tlen, void *val)
{
	struct nest *n = ctx;
	void *old;

	n->match_rc = rt_match(n->r, "#", 1, count_cb, NULL);
	n->put_rc = rt_put(n->r, "z", 1, VAL(5), &old);
	n->set_ret = rt_set(n->r, "z", 1, VAL(6));
}

static void test_nesting(void)
{
	struct rt_store *r = rt_new();
	struct nest n = { .r = r };

	set(r, "a", 1);
	CHECK(rt_match(r, "a", 1, nest_cb, &n) == 1);
	CHECK(n.match_rc == -EBUSY && n.put_rc == -EBUSY && n.set_ret == VAL(6));
	CHECK(rt_count(r) == 1 && rt_get(r, "z", 1) == NULL);
	/* usable again afterwards */
	CHECK(set(r, "z", 7) == NULL);
	CHECK(rt_match(r, "+", 1, NULL, NULL) == 2);
	rt_free(r, NULL);
}

/* ---- allocation failures ----------------------------------------------------- */

static bool oom_run(long n, bool sticky, int *bad)
{
	enum { NOPS = 150 };
	static char topics[NOPS][40];
	static bool in[NOPS];
	struct rt_store *r;

	alloc_failures = 0;
	alloc_sticky = sticky;
	alloc_countdown = n;
	r = rt_new();
	if (!r) {
		alloc_countdown = -1;
		return true;
	}
	for (int i = 0; i < NOPS; i++) {
		if (i % 3 == 0)
			snprintf(topics[i], 40, "fan/%d", i);   /* grows into a table */
		else if (i % 3 == 1)
			snprintf(topics[i], 40, "d/%d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", i);
		else
			snprintf(topics[i], 40, "x/%d", i % 7);  /* replaces */
		void *ret = rt_set(r, topics[i], strlen(topics[i]), VAL(i + 1));

		in[i] = ret != VAL(i + 1);
		if (in[i] && i % 3 == 2) {
			/* the previous value of x/k, if it went in */
			for (int k = i - 3; k >= 0; k -= 3) {
				if (strcmp(topics[k], topics[i]) == 0 && in[k]) {
					*bad += ret != VAL(k + 1);
					in[k] = false;
					break;
				}
			}
		}
	}
	size_t live = 0;

	for (int i = 0; i < NOPS; i++)
		live += in[i];
	*bad += rt_count(r) != live;
	for (int i = 0; i < NOPS; i++)
		if (in[i])
			*bad += rt_get(r, topics[i], strlen(topics[i])) != VAL(i + 1);
	long cnt = 0;

	*bad += rt_match(r, "#", 1, count_cb, &cnt) != (int)live;
	/* deleting never fails, whatever the allocator says */
	for (int i = 0; i < NOPS; i += 2)
		if (in[i])
			*bad += rt_set(r, topics[i], strlen(topics[i]), NULL) != VAL(i + 1);
	bool more = alloc_failures > 0;

	alloc_countdown = -1;
	rt_free(r, NULL);
	return more;
}

static void test_oom(void)
{
	int bad = 0;
	long n;

	for (n = 0; n < 100000 && oom_run(n, false, &bad); n++)
		;
	CHECKF(bad == 0, "one-shot: %d bad", bad);
	CHECK(n > 50);
	for (n = 0; n < 100000 && oom_run(n, true, &bad); n++)
		;
	CHECKF(bad == 0, "sticky: %d bad", bad);
	alloc_sticky = false;
	for (long k = 0; k < 4; k++) {
		alloc_countdown = k;
		struct rt_store *r = rt_new();

		CHECK(r == NULL || k == 3);
		alloc_countdown = -1;
		rt_free(r, NULL);
	}
}

int main(void)
{
	double t0 = now_s();

	test_basic();
	test_spec_table();
	test_random();
	test_scale();
	test_deep();
	test_nesting();
	test_oom();
	printf("  retain: %.2f s\n", now_s() - t0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
