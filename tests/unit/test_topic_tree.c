/*
 * Unit tests of the subscription tree (mqtt/topic_tree.c): the matching
 * rules of MQTT section 4.7, subscribe/unsubscribe flags, shared groups and
 * their weighted picking, a randomized comparison against a naive matcher,
 * scale (200k subscriptions), 30000-level topics, and allocation failure at
 * every step. The tree's .c files are included so that their allocations
 * can be made to fail; everything else goes through the public header.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- allocation failure injection ---------------------------------------- */

static long alloc_countdown = -1;  /* fail when it reaches 0; -1 = never */
static bool alloc_sticky;          /* keep failing once failed */
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
#include "../../mqtt/topic_tree.c"
#undef malloc
#undef calloc
#undef realloc

#include "topic_cases.h"

/* ---- harness ------------------------------------------------------------- */

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

#define OWN(i) ((void *)(uintptr_t)(i))

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int sub(struct tt_tree *t, const char *f, uintptr_t owner, uint32_t id,
	       uint32_t weight, unsigned *flags)
{
	struct tt_sub s = { .owner = OWN(owner), .sub_id = id, .weight = weight, .options = 1 };

	return tt_subscribe(t, f, strlen(f), &s, flags);
}

static int unsub(struct tt_tree *t, const char *f, uintptr_t owner, unsigned *flags)
{
	return tt_unsubscribe(t, f, strlen(f), OWN(owner), flags);
}

/* Collects what a match reports. */
struct got {
	int subs, groups;
	uint32_t ids[4096];
	int nids;
	struct tt_group *g[64];
};

static void got_sub(void *ctx, const struct tt_sub *s)
{
	struct got *g = ctx;

	g->subs++;
	if (g->nids < 4096)
		g->ids[g->nids++] = s->sub_id;
}

static void got_group(void *ctx, struct tt_group *gr)
{
	struct got *g = ctx;

	if (g->groups < 64)
		g->g[g->groups] = gr;
	g->groups++;
}

static int match(struct tt_tree *t, const char *topic, struct got *g)
{
	memset(g, 0, sizeof(*g));
	return tt_match(t, topic, strlen(topic), got_sub, got_group, g);
}

/* ---- spec table ------------------------------------------------------------ */

static void test_spec_table(void)
{
	for (size_t i = 0; i < sizeof(topic_cases) / sizeof(topic_cases[0]); i++) {
		const struct topic_case *c = &topic_cases[i];
		struct tt_tree *t = tt_new();
		struct got g;
		char shared[256];

		CHECK(sub(t, c->filter, 1, 7, 1, NULL) == 0);
		/* the same filter as a shared subscription matches the same topics */
		snprintf(shared, sizeof(shared), "$share/grp/%s", c->filter);
		CHECK(sub(t, shared, 2, 8, 1, NULL) == 0);
		int n = match(t, c->topic, &g);

		CHECKF(g.subs == c->match && g.groups == c->match && n == 2 * c->match,
		       "filter '%s' topic '%s': subs %d groups %d n %d, want %d",
		       c->filter, c->topic, g.subs, g.groups, n, c->match);
		if (g.subs == 1)
			CHECK(g.ids[0] == 7);
		tt_free(t);
	}
	/* every case at once in one tree: each topic reports exactly its filters */
	struct tt_tree *t = tt_new();
	size_t nc = sizeof(topic_cases) / sizeof(topic_cases[0]);

	for (size_t i = 0; i < nc; i++)
		CHECK(sub(t, topic_cases[i].filter, 1000 + i, (uint32_t)i, 1, NULL) == 0);
	for (size_t i = 0; i < nc; i++) {
		struct got g;
		const char *topic = topic_cases[i].topic;

		match(t, topic, &g);
		for (size_t j = 0; j < nc; j++) {
			if (strcmp(topic_cases[j].topic, topic) != 0)
				continue;
			/* filters may repeat across cases: count those equal to j's */
			int want = 0, have = 0;

			for (size_t k = 0; k < nc; k++)
				if (strcmp(topic_cases[k].filter, topic_cases[j].filter) == 0)
					want += topic_cases[j].match;
			for (int k = 0; k < g.nids; k++)
				if (strcmp(topic_cases[g.ids[k]].filter, topic_cases[j].filter) == 0)
					have++;
			CHECKF(have == want, "all-in-one: filter '%s' topic '%s' have %d want %d",
			       topic_cases[j].filter, topic, have, want);
		}
	}
	tt_free(t);
}

static void test_bad_filters(void)
{
	struct tt_tree *t = tt_new();

	for (size_t i = 0; i < sizeof(bad_filters) / sizeof(bad_filters[0]); i++) {
		unsigned fl = 99;
		int rc = sub(t, bad_filters[i], 1, 0, 1, &fl);

		CHECKF(rc == -EINVAL, "filter '%s' rc %d", bad_filters[i], rc);
		CHECK(fl == 0);
		CHECK(unsub(t, bad_filters[i], 1, NULL) == -EINVAL);
	}
	CHECK(tt_count(t) == 0);
	/* a 65536-byte filter is too long; 65535 is fine */
	char *big = malloc(65537);

	memset(big, 'x', 65536);
	big[65536] = 0;
	struct tt_sub s = { .owner = OWN(1), .weight = 1 };

	CHECK(tt_subscribe(t, big, 65536, &s, NULL) == -EINVAL);
	CHECK(tt_subscribe(t, big, 65535, &s, NULL) == 0);
	struct got g;

	memset(&g, 0, sizeof(g));
	CHECK(tt_match(t, big, 65535, got_sub, got_group, &g) == 1);
	CHECK(tt_match(t, big, 65534, got_sub, got_group, &g) == 0);
	CHECK(tt_unsubscribe(t, big, 65535, OWN(1), NULL) == 0);
	free(big);
	tt_free(t);
}

static void test_parse_shared(void)
{
	const char *g, *r;
	size_t gl, rl;

	CHECK(tt_parse_shared("$share/g/a/b", 12, &g, &gl, &r, &rl) == 1);
	CHECK(gl == 1 && g[0] == 'g' && rl == 3 && memcmp(r, "a/b", 3) == 0);
	CHECK(tt_parse_shared("$share/grp/#", 12, &g, &gl, &r, &rl) == 1);
	CHECK(gl == 3 && memcmp(g, "grp", 3) == 0 && rl == 1 && r[0] == '#');
	CHECK(tt_parse_shared("$share/g//", 10, &g, &gl, &r, &rl) == 1);
	CHECK(rl == 1 && r[0] == '/');
	CHECK(tt_parse_shared("$share/g/a", 10, NULL, NULL, NULL, NULL) == 1);
	CHECK(tt_parse_shared("$share//a", 9, &g, &gl, &r, &rl) == -EINVAL);
	CHECK(tt_parse_shared("$share/g", 8, &g, &gl, &r, &rl) == -EINVAL);
	CHECK(tt_parse_shared("$share/g/", 9, &g, &gl, &r, &rl) == -EINVAL);
	CHECK(tt_parse_shared("$share/", 7, &g, &gl, &r, &rl) == -EINVAL);
	CHECK(tt_parse_shared("$share/a+/x", 11, &g, &gl, &r, &rl) == -EINVAL);
	CHECK(tt_parse_shared("$share/#/x", 10, &g, &gl, &r, &rl) == -EINVAL);
	CHECK(tt_parse_shared("$share", 6, &g, &gl, &r, &rl) == 0);
	CHECK(tt_parse_shared("$sharex/g/a", 11, &g, &gl, &r, &rl) == 0);
	CHECK(tt_parse_shared("$SHARE/g/a", 10, &g, &gl, &r, &rl) == 0);
	CHECK(tt_parse_shared("a/$share/g/a", 12, &g, &gl, &r, &rl) == 0);
	CHECK(tt_parse_shared("$shar", 5, &g, &gl, &r, &rl) == 0);
	/* the view is bounded by len, not by a NUL */
	CHECK(tt_parse_shared("$share/g/abc", 9, &g, &gl, &r, &rl) == -EINVAL);

	CHECK(tt_filter_levels("a", 1) == 1);
	CHECK(tt_filter_levels("a/b/c", 5) == 3);
	CHECK(tt_filter_levels("/", 1) == 2);
	CHECK(tt_filter_levels("#", 1) == 1);
	CHECK(tt_filter_levels("a/#", 3) == 2);
	CHECK(tt_filter_levels("a/#/b", 5) == -EINVAL);
	CHECK(tt_filter_levels("", 0) == -EINVAL);

	/* a "$share" first level without a group is an ordinary filter */
	struct tt_tree *t = tt_new();
	struct got gg;

	CHECK(sub(t, "$share", 1, 5, 1, NULL) == 0);
	CHECK(match(t, "$share", &gg) == 1 && gg.subs == 1);
	tt_free(t);
}

/* ---- flags, replace, unsubscribe --------------------------------------- */

static void test_flags(void)
{
	struct tt_tree *t = tt_new();
	unsigned fl;
	const struct tt_sub *e;

	CHECK(sub(t, "a/b", 1, 11, 1, &fl) == 0 && fl == (TT_CREATED | TT_FIRST));
	CHECK(tt_count(t) == 1);
	/* replace: same owner, new options */
	struct tt_sub s2 = { .owner = OWN(1), .sub_id = 12, .weight = 1, .options = 2 };

	CHECK(tt_subscribe(t, "a/b", 3, &s2, &fl) == 0 && fl == 0);
	CHECK(tt_count(t) == 1);
	e = tt_lookup(t, "a/b", 3, OWN(1));
	CHECK(e && e->sub_id == 12 && e->options == 2);
	CHECK(tt_filter_count(t, "a/b", 3) == 1);
	CHECK(sub(t, "a/b", 2, 13, 1, &fl) == 0 && fl == TT_CREATED);
	CHECK(tt_filter_count(t, "a/b", 3) == 2);
	/* the same owner on a different filter is a new entry */
	CHECK(sub(t, "a/+", 1, 14, 1, &fl) == 0 && fl == (TT_CREATED | TT_FIRST));
	/* shared group at a filter with non-shared entries: first of its group */
	CHECK(sub(t, "$share/g/a/b", 1, 15, 1, &fl) == 0 && fl == (TT_CREATED | TT_FIRST));
	CHECK(sub(t, "$share/g/a/b", 3, 16, 1, &fl) == 0 && fl == TT_CREATED);
	CHECK(sub(t, "$share/g/a/b", 3, 17, 1, &fl) == 0 && fl == 0);
	CHECK(sub(t, "$share/h/a/b", 3, 18, 1, &fl) == 0 && fl == (TT_CREATED | TT_FIRST));
	CHECK(tt_filter_count(t, "$share/g/a/b", 12) == 2);
	CHECK(tt_filter_count(t, "$share/h/a/b", 12) == 1);
	CHECK(tt_filter_count(t, "$share/i/a/b", 12) == 0);
	CHECK(tt_filter_count(t, "x/y", 3) == 0);
	CHECK(tt_filter_count(t, "x/#/y", 5) == -EINVAL);
	e = tt_lookup(t, "$share/g/a/b", 12, OWN(3));
	CHECK(e && e->sub_id == 17);
	CHECK(tt_lookup(t, "$share/g/a/b", 12, OWN(2)) == NULL);
	CHECK(tt_lookup(t, "a/b/c", 5, OWN(1)) == NULL);
	CHECK(tt_count(t) == 6);

	/* unsubscribe */
	CHECK(unsub(t, "a/b", 1, &fl) == 0 && fl == 0);
	CHECK(unsub(t, "a/b", 1, &fl) == -ENOENT && fl == 0);
	CHECK(unsub(t, "a/b/c", 1, &fl) == -ENOENT);
	CHECK(unsub(t, "a", 1, &fl) == -ENOENT);
	CHECK(unsub(t, "$share/g/a/b", 2, &fl) == -ENOENT);
	CHECK(unsub(t, "$share/x/a/b", 1, &fl) == -ENOENT);
	CHECK(unsub(t, "a/b", 2, &fl) == 0 && fl == TT_LAST);
	CHECK(unsub(t, "$share/g/a/b", 1, &fl) == 0 && fl == 0);
	CHECK(unsub(t, "$share/g/a/b", 3, &fl) == 0 && fl == TT_LAST);
	CHECK(tt_group_find(t, "$share/g/a/b", 12) == NULL);
	CHECK(tt_group_find(t, "$share/h/a/b", 12) != NULL);
	CHECK(unsub(t, "$share/h/a/b", 3, &fl) == 0 && fl == TT_LAST);
	CHECK(unsub(t, "a/+", 1, &fl) == 0 && fl == TT_LAST);
	CHECK(tt_count(t) == 0);
	/* pruned: the root has no children left */
	CHECK(t->root->kids.n == 0 && !t->root->plus && !t->root->hash);
	/* resubscribing after a full unsubscribe is FIRST again */
	CHECK(sub(t, "a/b", 2, 0, 1, &fl) == 0 && fl == (TT_CREATED | TT_FIRST));
	/* flags may be NULL */
	CHECK(sub(t, "a/c", 2, 0, 1, NULL) == 0);
	CHECK(unsub(t, "a/c", 2, NULL) == 0);
	/* pruning keeps what others still use: "a" stays for "a/b" */
	CHECK(t->root->kids.n == 1);
	CHECK(sub(t, "a/b/c/d/e", 2, 0, 1, NULL) == 0);
	CHECK(unsub(t, "a/b/c/d/e", 2, NULL) == 0);
	struct tt_node *a = (struct tt_node *)lmap_find(&t->root->kids, "a", 1, KOFF);

	CHECK(a && a->kids.n == 1);
	struct tt_node *b = a ? (struct tt_node *)lmap_find(&a->kids, "b", 1, KOFF) : NULL;

	CHECK(b && b->kids.n == 0 && b->subs.n == 1);
	CHECK(unsub(t, "a/b", 2, &fl) == 0 && fl == TT_LAST);
	CHECK(t->root->kids.n == 0);
	/* weight 0 is stored as 1 */
	CHECK(sub(t, "$share/g/x", 1, 0, 0, NULL) == 0);
	e = tt_lookup(t, "$share/g/x", 10, OWN(1));
	CHECK(e && e->weight == 1);
	tt_free(t);
}

static void test_overlap(void)
{
	struct tt_tree *t = tt_new();
	struct got g;

	CHECK(sub(t, "a/+", 1, 1, 1, NULL) == 0);
	CHECK(sub(t, "a/#", 2, 2, 1, NULL) == 0);
	CHECK(sub(t, "#", 1, 3, 1, NULL) == 0);
	CHECK(sub(t, "a/x", 1, 4, 1, NULL) == 0);
	CHECK(sub(t, "a/x", 2, 5, 1, NULL) == 0);
	CHECK(sub(t, "+/x", 3, 6, 1, NULL) == 0);
	CHECK(sub(t, "+/+", 3, 7, 1, NULL) == 0);
	CHECK(sub(t, "a/x/#", 3, 8, 1, NULL) == 0);
	CHECK(match(t, "a/x", &g) == 8);
	uint32_t seen = 0;

	for (int i = 0; i < g.nids; i++)
		seen |= 1u << g.ids[i];
	CHECK(seen == 0x1fe);
	CHECK(match(t, "a/y", &g) == 4);  /* a/+ a/# # +/+ */
	CHECK(match(t, "a", &g) == 2);    /* a/# (parent) and # */
	CHECK(match(t, "b/x", &g) == 3);  /* # +/x +/+ */
	CHECK(match(t, "$a/x", &g) == 0);
	/* callbacks may be NULL: the count is still right */
	CHECK(tt_match(t, "a/x", 3, NULL, NULL, NULL) == 8);
	tt_free(t);
}

/* Re-entering the tree from a callback is refused, not corrupting. */
struct reenter {
	struct tt_tree *t;
	int sub_rc, unsub_rc, match_rc;
};

static void reenter_cb(void *ctx, const struct tt_sub *s)
{
	struct reenter *r = ctx;

	r->sub_rc = sub(r->t, "z", 9, 0, 1, NULL);
	r->unsub_rc = unsub(r->t, "a", 1, NULL);
	r->match_rc = tt_match(r->t, "a", 1, NULL, NULL, NULL);
}

static void test_reentry(void)
{
	struct tt_tree *t = tt_new();
	struct reenter r = { .t = t };

	CHECK(sub(t, "a", 1, 0, 1, NULL) == 0);
	CHECK(tt_match(t, "a", 1, reenter_cb, NULL, &r) == 1);
	CHECK(r.sub_rc == -EBUSY && r.unsub_rc == -EBUSY && r.match_rc == -EBUSY);
	CHECK(tt_count(t) == 1);
	CHECK(tt_match(t, "a", 1, NULL, NULL, NULL) == 1);
	tt_free(t);
}

/* ---- shared groups ---------------------------------------------------------- */

static struct tt_group *one_group(struct tt_tree *t, const char *topic)
{
	struct got g;

	match(t, topic, &g);
	return g.groups == 1 ? g.g[0] : NULL;
}

static bool skip_owner(void *ctx, const struct tt_sub *s)
{
	return s->owner == ctx;
}

static bool skip_all(void *ctx, const struct tt_sub *s)
{
	return true;
}

static void count_member(void *ctx, const struct tt_sub *s)
{
	(*(int *)ctx)++;
}

static void test_groups(void)
{
	struct tt_tree *t1 = tt_new(), *t2 = tt_new();
	struct got g;

	/* key equality across trees, and with tt_group_key_of */
	CHECK(sub(t1, "$share/g/a/+", 1, 0, 1, NULL) == 0);
	CHECK(sub(t2, "$share/g/a/+", 7, 0, 5, NULL) == 0);
	struct tt_group *g1 = one_group(t1, "a/x"), *g2 = one_group(t2, "a/y");

	CHECK(g1 && g2);
	if (!g1 || !g2)
		return;
	CHECK(tt_group_key(g1) == tt_group_key(g2));
	CHECK(tt_group_key(g1) == tt_group_key_of("$share/g/a/+", 12));
	CHECK(tt_group_key(g1) != 0);
	CHECK(tt_group_key_of("a/+", 3) == 0);
	CHECK(tt_group_key_of("$share//a", 9) == 0);
	CHECK(tt_group_key_of("$share/h/a/+", 12) != tt_group_key(g1));
	CHECK(tt_group_key_of("$share/g/a/#", 12) != tt_group_key(g1));
	/* the key is of "group\0filter": "ab" + "c" differs from "a" + "bc" */
	CHECK(tt_group_key_of("$share/ab/c", 11) != tt_group_key_of("$share/a/bc", 11));
	size_t nl;
	const char *nm = tt_group_name(g1, &nl);

	CHECK(nl == 1 && nm[0] == 'g');
	CHECK(tt_group_find(t1, "$share/g/a/+", 12) == g1);
	CHECK(tt_group_find(t1, "a/+", 3) == NULL);

	/* same name at different filters: different groups */
	CHECK(sub(t1, "$share/g/a/#", 2, 0, 1, NULL) == 0);
	CHECK(sub(t1, "$share/h/a/+", 3, 0, 1, NULL) == 0);
	CHECK(match(t1, "a/x", &g) == 3 && g.groups == 3 && g.subs == 0);
	CHECK(g.g[0] != g.g[1] && g.g[1] != g.g[2] && g.g[0] != g.g[2]);
	uint64_t k0 = tt_group_key(g.g[0]), k1 = tt_group_key(g.g[1]), k2 = tt_group_key(g.g[2]);

	CHECK(k0 != k1 && k1 != k2 && k0 != k2);
	CHECK(match(t1, "a", &g) == 1 && g.groups == 1);  /* only a/# */
	CHECK(tt_group_key(g.g[0]) == tt_group_key_of("$share/g/a/#", 12));
	tt_free(t1);
	tt_free(t2);

	/* smooth weighted round-robin: weights 3 and 1 over 4000 picks */
	struct tt_tree *s = tt_new();

	CHECK(sub(s, "$share/w/t", 1, 0, 3, NULL) == 0);
	CHECK(sub(s, "$share/w/t", 2, 0, 1, NULL) == 0);
	struct tt_group *w = one_group(s, "t");

	CHECK(w != NULL);
	if (!w)
		return;
	CHECK(tt_group_size(w) == 2);
	int members = 0;

	CHECK(tt_group_foreach(w, count_member, &members) == 2 && members == 2);
	int c1 = 0, c2 = 0, run1 = 0, maxrun1 = 0, run2 = 0, maxrun2 = 0;

	for (int i = 0; i < 4000; i++) {
		const struct tt_sub *p = tt_group_pick(w, NULL, NULL);

		CHECK(p != NULL);
		if (!p)
			break;
		if (p->owner == OWN(1)) {
			c1++;
			run1++;
			run2 = 0;
		} else {
			c2++;
			run2++;
			run1 = 0;
		}
		maxrun1 = run1 > maxrun1 ? run1 : maxrun1;
		maxrun2 = run2 > maxrun2 ? run2 : maxrun2;
	}
	CHECKF(c1 == 3000 && c2 == 1000, "c1 %d c2 %d", c1, c2);
	/* interleaved: never four of the heavy one in a row, never two of the light */
	CHECKF(maxrun1 <= 3 && maxrun2 == 1, "runs %d %d", maxrun1, maxrun2);

	/* skip: only the other one is picked; skipping all gives NULL */
	for (int i = 0; i < 10; i++) {
		const struct tt_sub *p = tt_group_pick(w, skip_owner, OWN(1));

		CHECK(p && p->owner == OWN(2));
	}
	CHECK(tt_group_pick(w, skip_all, NULL) == NULL);

	/* change a weight (replace): 3:3 -> even shares over time */
	CHECK(sub(s, "$share/w/t", 2, 0, 3, NULL) == 0);
	w = one_group(s, "t");
	c1 = c2 = 0;
	for (int i = 0; i < 6000; i++) {
		const struct tt_sub *p = tt_group_pick(w, NULL, NULL);

		if (p && p->owner == OWN(1))
			c1++;
		else if (p)
			c2++;
	}
	CHECKF(abs(c1 - c2) <= 6, "after reweight c1 %d c2 %d", c1, c2);

	/* three weights 5:3:2 over 10000 picks: exact shares */
	CHECK(sub(s, "$share/w/t", 1, 0, 5, NULL) == 0);
	CHECK(sub(s, "$share/w/t", 2, 0, 3, NULL) == 0);
	CHECK(sub(s, "$share/w/t", 3, 0, 2, NULL) == 0);
	w = one_group(s, "t");
	int cnt[4] = { 0 };

	/* settle the weights changed mid-cycle, then count whole periods */
	for (int i = 0; i < 1000; i++)
		tt_group_pick(w, NULL, NULL);
	for (int i = 0; i < 10000; i++) {
		const struct tt_sub *p = tt_group_pick(w, NULL, NULL);

		if (p)
			cnt[(uintptr_t)p->owner]++;
	}
	CHECKF(abs(cnt[1] - 5000) <= 10 && abs(cnt[2] - 3000) <= 10 && abs(cnt[3] - 2000) <= 10,
	       "5:3:2 -> %d %d %d", cnt[1], cnt[2], cnt[3]);
	tt_free(s);

	/* weight 1 everywhere (a local tree): plain round-robin, exact and in turn */
	struct tt_tree *l = tt_new();
	int per[1001] = { 0 };

	for (int i = 1; i <= 1000; i++)
		CHECK(sub(l, "$share/rr/x/y", (uintptr_t)i, 0, 1, NULL) == 0);
	w = one_group(l, "x/y");
	CHECK(w && tt_group_size(w) == 1000);
	if (!w)
		return;
	void *prev = NULL;
	bool repeat = false;

	for (int i = 0; i < 100000; i++) {
		const struct tt_sub *p = tt_group_pick(w, NULL, NULL);

		if (!p)
			break;
		per[(uintptr_t)p->owner]++;
		repeat |= p->owner == prev;
		prev = p->owner;
	}
	bool even = true;

	for (int i = 1; i <= 1000; i++)
		even &= per[i] == 100;
	CHECK(even && !repeat);
	/* skip in round-robin mode */
	for (int i = 0; i < 2000; i++) {
		const struct tt_sub *p = tt_group_pick(w, skip_owner, OWN(500));

		CHECK(p && p->owner != OWN(500));
	}
	CHECK(tt_group_pick(w, skip_all, NULL) == NULL);
	/* remove members while the cursor runs past the end */
	for (int i = 1000; i >= 2; i--) {
		tt_group_pick(w, NULL, NULL);
		CHECK(unsub(l, "$share/rr/x/y", (uintptr_t)i, NULL) == 0);
	}
	w = one_group(l, "x/y");
	CHECK(w && tt_group_size(w) == 1);
	if (w) {
		const struct tt_sub *p = tt_group_pick(w, NULL, NULL);

		CHECK(p && p->owner == OWN(1));
	}
	/* one member weighted 2 turns on smooth WRR; removing it turns it off */
	CHECK(sub(l, "$share/rr/x/y", 2, 0, 2, NULL) == 0);
	w = one_group(l, "x/y");
	c1 = c2 = 0;
	for (int i = 0; i < 300; i++) {
		const struct tt_sub *p = tt_group_pick(w, NULL, NULL);

		if (p && p->owner == OWN(1))
			c1++;
		else if (p)
			c2++;
	}
	CHECKF(c1 == 100 && c2 == 200, "1:2 -> %d %d", c1, c2);
	CHECK(unsub(l, "$share/rr/x/y", 2, NULL) == 0);
	w = one_group(l, "x/y");
	CHECK(w && w->nonunit == 0);
	tt_free(l);
}

/* ---- randomized comparison with a naive matcher ------------------------- */

struct ref {
	char filter[64];   /* full filter, maybe $share/... */
	uintptr_t owner;
	uint32_t id;
	bool live;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const lv_topic[] = { "a", "b", "c", "", "$x", "dd" };
static const char *const lv_filter[] = { "a", "b", "c", "", "$x", "dd", "+", "+", "#" };

static void rand_filter(char *out, size_t cap, bool shared)
{
	int depth = 1 + (int)rnd(5);
	size_t o = 0;

	if (shared)
		o += (size_t)snprintf(out, cap, "$share/%c/", "gh"[rnd(2)]);
	for (int i = 0; i < depth; i++) {
		const char *l = lv_filter[rnd(9)];

		if (l[0] == '#' && i != depth - 1)
			l = "+";
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "/" : "", l);
	}
}

static void rand_topic(char *out, size_t cap)
{
	int depth = 1 + (int)rnd(6);
	size_t o = 0;

	for (int i = 0; i < depth; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "/" : "", lv_topic[rnd(6)]);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void collect_member(void *ctx, const struct tt_sub *s)
{
	got_sub(ctx, s);
}

static void group_members(void *ctx, struct tt_group *g)
{
	struct got *gt = ctx;

	gt->groups++;
	tt_group_foreach(g, collect_member, ctx);
}

/* Compares the tree with the reference entries for one topic. */
static bool compare_topic(struct tt_tree *t, struct ref *refs, int nref, const char *topic)
{
	static struct got g;
	static uint32_t want[4096];
	int nw = 0, wgroups = 0;
	char groups_seen[64][80];

	memset(&g, 0, sizeof(g));
	int n = tt_match(t, topic, strlen(topic), got_sub, group_members, &g);

	for (int i = 0; i < nref; i++) {
		const char *gname, *rest;
		size_t gl, rl;

		if (!refs[i].live)
			continue;
		int sh = tt_parse_shared(refs[i].filter, strlen(refs[i].filter), &gname, &gl, &rest, &rl);

		if (!naive_match(sh ? rest : refs[i].filter, topic))
			continue;
		want[nw++] = refs[i].id;
		if (sh) {
			/* count distinct (group, filter) */
			bool seen = false;

			for (int k = 0; k < wgroups && !seen; k++)
				seen = strcmp(groups_seen[k], refs[i].filter) == 0;
			if (!seen && wgroups < 64)
				snprintf(groups_seen[wgroups++], 80, "%s", refs[i].filter);
		}
	}
	qsort(want, (size_t)nw, sizeof(want[0]), cmp_u32);
	qsort(g.ids, (size_t)g.nids, sizeof(g.ids[0]), cmp_u32);
	bool ok = g.nids == nw && memcmp(g.ids, want, (size_t)nw * sizeof(want[0])) == 0 &&
	     g.groups == wgroups;
	/* the return value counts non-shared entries plus groups */
	int members = 0;

	for (int i = 0; i < nref; i++) {
		const char *gn, *rest;
		size_t gl, rl;

		if (refs[i].live &&
		    tt_parse_shared(refs[i].filter, strlen(refs[i].filter), &gn, &gl, &rest, &rl) == 1 &&
		    naive_match(rest, topic))
			members++;
	}
	ok = ok && n == nw - members + wgroups;
	if (!ok)
		fprintf(stderr, "random: topic '%s': got %d ids (%d groups, rc %d), want %d (%d groups)\n",
			topic, g.nids, g.groups, n, nw, wgroups);
	return ok;
}

static void test_random(void)
{
	enum { NREF = 3000, NTOPIC = 3000 };
	struct ref *refs = calloc(NREF, sizeof(*refs));
	struct tt_tree *t = tt_new();
	int nref = 0, bad = 0, live = 0;
	char topic[64];

	for (int round = 0; round < 4; round++) {
		/* add: random filters and owners; some collide (replace) */
		for (int i = 0; i < NREF / 4 && nref < NREF; i++) {
			struct ref r = { .owner = 1 + rnd(40), .id = (uint32_t)nref + 1, .live = true };
			unsigned fl;

			rand_filter(r.filter, sizeof(r.filter), rnd(4) == 0);
			struct tt_sub s = { .owner = OWN(r.owner), .sub_id = r.id, .weight = 1 };

			int rc = tt_subscribe(t, r.filter, strlen(r.filter), &s, &fl);
			size_t fl_len = strlen(r.filter);

			/* an empty filter ("" or "$share/g/") is refused [MQTT-4.7.3-1] */
			if (fl_len == 0 || strcmp(r.filter, "$share/g/") == 0 ||
			    strcmp(r.filter, "$share/h/") == 0) {
				bad += rc != -EINVAL;
				continue;
			}
			if (rc != 0) {
				bad++;
				continue;
			}
			int old = -1;
			bool any = false;

			for (int k = 0; k < nref; k++) {
				if (!refs[k].live || strcmp(refs[k].filter, r.filter) != 0)
					continue;
				any = true;
				if (refs[k].owner == r.owner)
					old = k;
			}
			if (old >= 0) {
				refs[old].live = false;   /* replaced */
				bad += fl != 0;
			} else {
				bad += fl != (TT_CREATED | (any ? 0 : TT_FIRST));
				live++;
			}
			refs[nref++] = r;
		}
		/* remove about a third of what is live */
		for (int k = 0; k < nref; k++) {
			if (!refs[k].live || rnd(3))
				continue;
			unsigned fl;

			if (unsub(t, refs[k].filter, refs[k].owner, &fl) != 0) {
				bad++;
				continue;
			}
			refs[k].live = false;
			live--;
			bool any = false;

			for (int j = 0; j < nref; j++)
				any |= refs[j].live && strcmp(refs[j].filter, refs[k].filter) == 0;
			bad += fl != (any ? 0 : TT_LAST);
			/* a second unsubscribe finds nothing */
			bad += unsub(t, refs[k].filter, refs[k].owner, NULL) != -ENOENT;
		}
		bad += tt_count(t) != (size_t)live;
		for (int i = 0; i < NTOPIC; i++) {
			rand_topic(topic, sizeof(topic));
			bad += !compare_topic(t, refs, nref, topic);
		}
	}
	CHECKF(bad == 0, "%d mismatches", bad);
	for (int k = 0; k < nref; k++)
		if (refs[k].live)
			CHECK(unsub(t, refs[k].filter, refs[k].owner, NULL) == 0);
	CHECK(tt_count(t) == 0);
	CHECK(t->root->kids.n == 0 && !t->root->plus && !t->root->hash);
	tt_free(t);
	free(refs);
}

/* ---- scale --------------------------------------------------------------- */

static void count_cb(void *ctx, const struct tt_sub *s)
{
	(*(long *)ctx) += (long)(uintptr_t)s->owner;
}

static void test_scale(void)
{
	enum { N = 200000, FAN = 20000 };
	struct tt_tree *t = tt_new();
	char f[64];
	double t0 = now_s();
	int bad = 0;

	for (int i = 0; i < N; i++) {
		unsigned fl;

		snprintf(f, sizeof(f), "devices/%d/cmd", i);
		bad += sub(t, f, (uintptr_t)i + 1, 0, 1, &fl) != 0 || fl != (TT_CREATED | TT_FIRST);
	}
	/* one filter with many owners (the owner index path) */
	for (int i = 0; i < FAN; i++)
		bad += sub(t, "fleet/broadcast", (uintptr_t)i + 1, 0, 1, NULL) != 0;
	for (int i = 0; i < FAN; i += 7)  /* replacing is found, not duplicated */
		bad += sub(t, "fleet/broadcast", (uintptr_t)i + 1, 5, 1, NULL) != 0;
	CHECK(sub(t, "devices/+/cmd", 999999, 0, 1, NULL) == 0);
	CHECK(sub(t, "$share/workers/devices/+/cmd", 1, 0, 1, NULL) == 0);
	double t1 = now_s();

	CHECK(bad == 0);
	CHECK(tt_count(t) == N + FAN + 2);
	bad = 0;
	for (int i = 0; i < N; i++) {
		long sum = 0;

		snprintf(f, sizeof(f), "devices/%d/cmd", i);
		int n = tt_match(t, f, strlen(f), count_cb, NULL, &sum);

		bad += n != 3 || sum != i + 1 + 999999;
	}
	long sum = 0;

	CHECK(tt_match(t, "fleet/broadcast", 15, count_cb, NULL, &sum) == FAN);
	CHECK(sum == (long)FAN * (FAN + 1) / 2);
	CHECK(tt_match(t, "devices/x/cmd", 13, NULL, NULL, NULL) == 2);
	CHECK(tt_match(t, "devices/1/cmdx", 14, NULL, NULL, NULL) == 0);
	double t2 = now_s();

	CHECK(bad == 0);
	bad = 0;
	for (int i = 0; i < N; i++) {
		unsigned fl;

		snprintf(f, sizeof(f), "devices/%d/cmd", i);
		bad += unsub(t, f, (uintptr_t)i + 1, &fl) != 0 || fl != TT_LAST;
	}
	for (int i = FAN - 1; i >= 0; i--) {
		unsigned fl;

		bad += unsub(t, "fleet/broadcast", (uintptr_t)i + 1, &fl) != 0 ||
		       fl != (i ? 0 : TT_LAST);
	}
	CHECK(unsub(t, "devices/+/cmd", 999999, NULL) == 0);
	CHECK(unsub(t, "$share/workers/devices/+/cmd", 1, NULL) == 0);
	double t3 = now_s();

	CHECK(bad == 0);
	CHECK(tt_count(t) == 0);
	CHECK(t->root->kids.n == 0);
	printf("  scale: %d subs in %.0f ms, %d matches in %.0f ms (%.0f ns each), "
	       "unsubscribed in %.0f ms\n", N + FAN, (t1 - t0) * 1e3, N, (t2 - t1) * 1e3,
	       (t2 - t1) * 1e9 / N, (t3 - t2) * 1e3);
	tt_free(t);

	/* a tree freed while full (no unsubscribes) leaks nothing */
	t = tt_new();
	for (int i = 0; i < 50000; i++) {
		snprintf(f, sizeof(f), "d/%d/%d", i % 100, i);
		sub(t, f, 1, 0, 1, NULL);
		sub(t, "$share/g/d/+/+", (uintptr_t)i + 1, 0, 1, NULL);
	}
	CHECK(tt_count(t) == 100000);
	tt_free(t);
}

/* ---- deep topics ---------------------------------------------------------- */

static void test_deep(void)
{
	enum { LEVELS = 30000 };
	size_t len = LEVELS * 2 - 1;
	char *a = malloc(len + 1), *p = malloc(len + 1), *mixed = malloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		a[i] = i % 2 ? '/' : 'a';
		p[i] = i % 2 ? '/' : '+';
		mixed[i] = i % 2 ? '/' : (i % 4 ? '+' : 'a');
	}
	a[len] = p[len] = mixed[len] = 0;
	struct tt_tree *t = tt_new();

	/* a deep topic against a shallow tree */
	CHECK(sub(t, "#", 1, 0, 1, NULL) == 0);
	CHECK(sub(t, "a/a/#", 2, 0, 1, NULL) == 0);
	CHECK(tt_match(t, a, len, NULL, NULL, NULL) == 2);
	/* deep filters: all literal, all '+', alternating, and '#' at the end */
	CHECK(sub(t, a, 3, 0, 1, NULL) == 0);
	CHECK(sub(t, p, 4, 0, 1, NULL) == 0);
	CHECK(sub(t, mixed, 5, 0, 1, NULL) == 0);
	char *ph = malloc(len + 3);

	memcpy(ph, p, len);
	memcpy(ph + len, "/#", 3);
	CHECK(sub(t, ph, 6, 0, 1, NULL) == 0);
	CHECK(tt_match(t, a, len, NULL, NULL, NULL) == 6);  /* "/#" matches the parent */
	CHECK(tt_match(t, a, len - 2, NULL, NULL, NULL) == 2);
	CHECK(tt_match(t, p, len, NULL, NULL, NULL) == 3);   /* '+' is literal in a topic name */
	CHECK(tt_count(t) == 6);
	CHECK(unsub(t, mixed, 5, NULL) == 0);
	CHECK(tt_match(t, a, len, NULL, NULL, NULL) == 5);
	/* unsubscribing prunes the 30000-node chain without recursion */
	CHECK(unsub(t, a, 3, NULL) == 0);
	CHECK(tt_count(t) == 4);
	/* freed with deep chains still in place */
	tt_free(t);

	/* a wide-and-deep branching tree: 2^12 matching filters, all reported */
	t = tt_new();
	char f[64];
	int bad = 0;

	for (int m = 0; m < 4096; m++) {
		size_t o = 0;

		for (int i = 0; i < 12; i++)
			o += (size_t)snprintf(f + o, sizeof(f) - o, "%s%c", i ? "/" : "",
					      m >> i & 1 ? '+' : 'a');
		bad += sub(t, f, (uintptr_t)m + 1, 0, 1, NULL) != 0;
	}
	CHECK(bad == 0);
	CHECK(tt_match(t, "a/a/a/a/a/a/a/a/a/a/a/a", 23, NULL, NULL, NULL) == 4096);
	CHECK(tt_match(t, "a/a/a/a/a/a/a/a/a/a/a/b", 23, NULL, NULL, NULL) == 2048);
	tt_free(t);
	free(a);
	free(p);
	free(mixed);
	free(ph);
}

/* ---- level maps: array <-> table transitions ----------------------------- */

static void test_lmap(void)
{
	struct tt_tree *t = tt_new();
	char f[32];
	int bad = 0;

	/* grow one node through 1, 2..8 (array), 9.. (table), then shrink back,
	 * checking every child is found at every size */
	for (int n = 1; n <= 300; n++) {
		snprintf(f, sizeof(f), "x/%d", n);
		bad += sub(t, f, 1, (uint32_t)n, 1, NULL) != 0;
		for (int k = 1; k <= n; k += (n > 40 ? 13 : 1)) {
			struct got g;

			snprintf(f, sizeof(f), "x/%d", k);
			bad += match(t, f, &g) != 1 || g.ids[0] != (uint32_t)k;
		}
	}
	for (int n = 300; n >= 1; n--) {
		snprintf(f, sizeof(f), "x/%d", n);
		bad += unsub(t, f, 1, NULL) != 0;
		for (int k = 1; k < n; k += (n > 40 ? 11 : 1)) {
			struct got g;

			snprintf(f, sizeof(f), "x/%d", k);
			bad += match(t, f, &g) != 1 || g.ids[0] != (uint32_t)k;
		}
		snprintf(f, sizeof(f), "x/%d", n);
		bad += tt_match(t, f, strlen(f), NULL, NULL, NULL) != 0;
	}
	CHECK(bad == 0);
	CHECK(tt_count(t) == 0 && t->root->kids.n == 0);
	tt_free(t);
}

/* ---- allocation failures --------------------------------------------------- */

/* Runs a fixed workload with the n-th allocation failing (or all from the
 * n-th on); every call either succeeds or fails cleanly, and the tree then
 * matches exactly what succeeded. Returns false once n is past the
 * workload's allocations. */
static bool oom_run(long n, bool sticky, int *bad)
{
	enum { NOPS = 120 };
	static char filters[NOPS][40];
	static bool in[NOPS];
	struct tt_tree *t;

	alloc_failures = 0;
	alloc_sticky = sticky;
	alloc_countdown = n;
	t = tt_new();
	if (!t) {
		alloc_countdown = -1;
		return true;
	}
	for (int i = 0; i < NOPS; i++) {
		/* a fan-out node (table + owner index), groups, deep paths */
		if (i % 4 == 0)
			snprintf(filters[i], 40, "fan/%d", i);
		else if (i % 4 == 1)
			snprintf(filters[i], 40, "one/+/x/#");
		else if (i % 4 == 2)
			snprintf(filters[i], 40, "$share/g%d/a/b/c/%d", i % 3, i % 5);
		else
			snprintf(filters[i], 40, "d/%d/e/f/g", i);
		unsigned fl;
		int rc = sub(t, filters[i], (uintptr_t)i + 1, (uint32_t)i + 1, 1 + i % 2, &fl);

		*bad += rc != 0 && rc != -ENOMEM;
		in[i] = rc == 0;
	}
	size_t live = 0;

	for (int i = 0; i < NOPS; i++)
		live += in[i];
	*bad += tt_count(t) != live;
	/* what matches is exactly what went in */
	for (int i = 0; i < NOPS; i++) {
		if (!in[i] || i % 4 == 1)
			continue;
		const char *rest;
		size_t rl;
		int sh = tt_parse_shared(filters[i], strlen(filters[i]), NULL, NULL, &rest, &rl);

		if (!sh) {
			rest = filters[i];
			rl = strlen(rest);
		}
		if (sh) {
			const struct tt_sub *e = tt_lookup(t, filters[i], strlen(filters[i]),
							   OWN(i + 1));
			*bad += !e || e->sub_id != (uint32_t)i + 1;
		} else {
			struct got g;

			memset(&g, 0, sizeof(g));
			tt_match(t, rest, rl, got_sub, NULL, &g);
			*bad += g.nids != 1 || g.ids[0] != (uint32_t)i + 1;
		}
	}
	/* unsubscribe half (never allocates), then free the rest */
	for (int i = 0; i < NOPS; i += 2) {
		int rc = unsub(t, filters[i], (uintptr_t)i + 1, NULL);

		*bad += rc != (in[i] ? 0 : -ENOENT);
	}
	bool more = alloc_failures > 0;

	alloc_countdown = -1;
	tt_free(t);
	return more;
}

static void test_oom(void)
{
	int bad = 0;
	long n;

	for (n = 0; n < 100000 && oom_run(n, false, &bad); n++)
		;
	CHECKF(bad == 0, "one-shot: %d bad", bad);
	CHECK(n > 50);  /* the workload did allocate, and every failure was tried */
	for (n = 0; n < 100000 && oom_run(n, true, &bad); n++)
		;
	CHECKF(bad == 0, "sticky: %d bad", bad);
	/* tt_new itself */
	alloc_countdown = 0;
	alloc_sticky = false;
	CHECK(tt_new() == NULL);
	alloc_countdown = 2;
	CHECK(tt_new() == NULL);
	alloc_countdown = -1;
}

int main(void)
{
	double t0 = now_s();

	test_spec_table();
	test_bad_filters();
	test_parse_shared();
	test_flags();
	test_overlap();
	test_reentry();
	test_groups();
	test_random();
	test_lmap();
	test_scale();
	test_deep();
	test_oom();
	printf("  topic_tree: %.2f s\n", now_s() - t0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
