/*
 * Subscription tree: a trie of topic filter levels. Each node keeps its
 * literal children in a level map (mqtt/lmap.h: an array below a handful of
 * children, an XXH3-indexed open-addressing table above), its '+' and '#'
 * children in dedicated fields so matching never hashes them, its
 * non-shared entries in a compact array, and its shared groups in a short
 * list. Matching a topic walks the trie depth-first with an explicit stack
 * owned by the tree and sized at subscribe time to the deepest filter, so a
 * match neither allocates nor recurses, whatever the topic's depth.
 *
 * Entry sets (a node's non-shared entries, a group's members) are arrays of
 * entries by value; once a set grows past SET_IDX_ON entries it also gets an
 * owner index (open addressing over positions), so that subscribing and
 * unsubscribing one of 100k sessions on a single filter stays O(1).
 *
 * Single-threaded: each tree belongs to one shard.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mqtt/lmap.h"
#include "mqtt/topic_tree.h"

/* Owner index built past this many entries, dropped below SET_IDX_OFF. */
#define SET_IDX_ON 16u
#define SET_IDX_OFF 8u

/*
 * A set of entries of `stride` bytes, each starting with a struct tt_sub,
 * with an optional owner index: idx[] holds position + 1 (0 = empty slot).
 * Capacities are stored as logarithms to keep nodes small:
 * array capacity = vlog ? 1 << (vlog - 1) : 0, index slots = 1 << ilog.
 */
struct tt_set {
	void *v;
	uint32_t *idx;
	uint32_t n;
	uint8_t vlog;
	uint8_t ilog;   /* 0 = no index */
};

/* A member of a shared group: the entry and its smooth-WRR current weight. */
struct tt_member {
	struct tt_sub s;
	int64_t cw;
};

struct tt_group {
	struct tt_group *next;  /* next group at the same node */
	uint64_t key;           /* tt_group_key() */
	struct tt_set m;        /* struct tt_member */
	uint32_t rr;            /* round-robin cursor while every weight is 1 */
	uint32_t nonunit;       /* members whose weight is not 1 */
	uint16_t nlen;
	char name[];
};

struct tt_node {
	struct lmap_node hd;     /* must be first; level bytes follow the node */
	struct lmap kids;        /* literal children */
	struct tt_node *plus;    /* the '+' child */
	struct tt_node *hash;    /* the '#' child (has no children itself) */
	union {
		struct tt_group *groups;     /* shared groups at this filter */
		struct tt_node *next_free;   /* only while tt_free runs */
	};
	struct tt_set subs;      /* non-shared entries: struct tt_sub */
};

#define KOFF sizeof(struct tt_node)

/* A pending branch of a match: continue at node n with the level at pos. */
struct tt_frame {
	struct tt_node *n;
	size_t pos;
};

struct tt_tree {
	struct tt_node *root;
	size_t count;            /* entries, all together */
	struct tt_frame *stk;    /* match stack, stk_cap >= deepest filter */
	uint32_t stk_cap;
	bool busy;               /* a tt_match is running */
};

/* ---- entry sets ---------------------------------------------------------- */

static inline struct tt_sub *set_at(const struct tt_set *s, size_t stride, uint32_t i)
{
	return (struct tt_sub *)((char *)s->v + (size_t)i * stride);
}

static inline uint32_t set_cap(const struct tt_set *s)
{
	return s->vlog ? 1u << (s->vlog - 1) : 0;
}

static inline uint32_t owner_hash(const void *owner)
{
	return (uint32_t)XXH3_64bits(&owner, sizeof(owner));
}

static void idx_put(const struct tt_set *s, size_t stride, uint32_t pos)
{
	uint32_t mask = (1u << s->ilog) - 1;
	uint32_t i = owner_hash(set_at(s, stride, pos)->owner) & mask;

	while (s->idx[i])
		i = (i + 1) & mask;
	s->idx[i] = pos + 1;
}

/* (Re)builds the owner index with 1 << ilog slots; on failure drops it
 * (the set then falls back to linear search, still correct). */
static void idx_build(struct tt_set *s, size_t stride, uint8_t ilog)
{
	free(s->idx);
	s->idx = calloc((size_t)1 << ilog, sizeof(*s->idx));
	if (!s->idx) {
		s->ilog = 0;
		return;
	}
	s->ilog = ilog;
	for (uint32_t i = 0; i < s->n; i++)
		idx_put(s, stride, i);
}

/* The slot holding position pos (which must be indexed). */
static uint32_t idx_slot(const struct tt_set *s, size_t stride, uint32_t pos)
{
	uint32_t mask = (1u << s->ilog) - 1;
	uint32_t i = owner_hash(set_at(s, stride, pos)->owner) & mask;

	while (s->idx[i] != pos + 1)
		i = (i + 1) & mask;
	return i;
}

static void idx_del(const struct tt_set *s, size_t stride, uint32_t pos)
{
	uint32_t mask = (1u << s->ilog) - 1, i = idx_slot(s, stride, pos);

	s->idx[i] = 0;
	for (uint32_t j = i;;) {
		j = (j + 1) & mask;
		if (!s->idx[j])
			break;
		uint32_t r = owner_hash(set_at(s, stride, s->idx[j] - 1)->owner) & mask;

		if (i <= j ? (i < r && r <= j) : (i < r || r <= j))
			continue;
		s->idx[i] = s->idx[j];
		s->idx[j] = 0;
		i = j;
	}
}

/* Position of owner's entry, or -1. */
static int64_t set_find(const struct tt_set *s, size_t stride, const void *owner)
{
	if (s->ilog) {
		uint32_t mask = (1u << s->ilog) - 1;

		for (uint32_t i = owner_hash(owner) & mask; s->idx[i]; i = (i + 1) & mask)
			if (set_at(s, stride, s->idx[i] - 1)->owner == owner)
				return s->idx[i] - 1;
		return -1;
	}
	for (uint32_t i = 0; i < s->n; i++)
		if (set_at(s, stride, i)->owner == owner)
			return i;
	return -1;
}

/* Appends a copy of e (owner not present yet), the rest of the element
 * zeroed. Returns its position, or -ENOMEM with the set unchanged. */
static int64_t set_add(struct tt_set *s, size_t stride, const struct tt_sub *e)
{
	if (s->n == UINT32_MAX - 1)
		return -ENOMEM;
	if (s->n == set_cap(s)) {
		uint8_t nl = s->vlog + 1;
		void *nv = realloc(s->v, ((size_t)1 << (nl - 1)) * stride);

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->vlog = nl;
	}
	uint32_t pos = s->n++;
	struct tt_sub *d = set_at(s, stride, pos);

	memset(d, 0, stride);
	*d = *e;
	if (s->ilog) {
		if ((uint64_t)s->n * 2 > (1u << s->ilog))
			idx_build(s, stride, s->ilog + 1);
		else
			idx_put(s, stride, pos);
	} else if (s->n >= SET_IDX_ON) {
		/* slots >= 2n: a probe rarely goes past two slots */
		uint8_t l = 5;

		while ((1u << l) < s->n * 2)
			l++;
		idx_build(s, stride, l);
	}
	return pos;
}

/* Removes the entry at pos; the last entry takes its place. Never fails. */
static void set_del(struct tt_set *s, size_t stride, uint32_t pos)
{
	uint32_t last = s->n - 1;

	if (s->ilog) {
		idx_del(s, stride, pos);
		if (pos != last)
			s->idx[idx_slot(s, stride, last)] = pos + 1;
	}
	if (pos != last)
		memcpy(set_at(s, stride, pos), set_at(s, stride, last), stride);
	s->n = last;
	if (s->n == 0) {
		free(s->v);
		free(s->idx);
		memset(s, 0, sizeof(*s));
		return;
	}
	if (s->ilog && s->n < SET_IDX_OFF) {
		free(s->idx);
		s->idx = NULL;
		s->ilog = 0;
	} else if (s->ilog > 5 && (uint64_t)s->n * 8 < (1u << s->ilog)) {
		idx_build(s, stride, s->ilog - 1);
	}
	/* Shrink the array at a quarter full (hysteresis against thrashing). */
	if (s->vlog > 2 && s->n <= set_cap(s) / 4) {
		void *nv = realloc(s->v, (size_t)(set_cap(s) / 2) * stride);

		if (nv) {
			s->v = nv;
			s->vlog--;
		}
	}
}

static void set_free(struct tt_set *s)
{
	free(s->v);
	free(s->idx);
	memset(s, 0, sizeof(*s));
}

/* ---- shared filters and group keys --------------------------------------- */

/* See mqtt/topic_tree.h. */
int tt_parse_shared(const char *filter, size_t len, const char **group,
		    size_t *glen, const char **rest, size_t *rlen)
{
	static const char pfx[] = "$share/";
	const size_t pl = sizeof(pfx) - 1;

	if (len < pl || memcmp(filter, pfx, pl) != 0)
		return 0;
	const char *g = filter + pl, *end = filter + len;
	const char *sl = memchr(g, '/', (size_t)(end - g));

	/* [MQTT-4.8.2-1] a ShareName of at least one character, followed by '/' */
	if (!sl || sl == g)
		return -EINVAL;
	/* [MQTT-4.8.2-2] no '+' or '#' in the ShareName */
	for (const char *p = g; p < sl; p++)
		if (*p == '+' || *p == '#')
			return -EINVAL;
	/* ... and a Topic Filter after the '/' */
	if (sl + 1 == end)
		return -EINVAL;
	if (group)
		*group = g;
	if (glen)
		*glen = (size_t)(sl - g);
	if (rest)
		*rest = sl + 1;
	if (rlen)
		*rlen = (size_t)(end - sl - 1);
	return 1;
}

/* See mqtt/topic_tree.h. */
int tt_filter_levels(const char *f, size_t len)
{
	if (len == 0 || len > UINT16_MAX) /* [MQTT-4.7.3-1] */
		return -EINVAL;
	int levels = 1;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && f[i] != '/')
			continue;
		size_t l = i - start;
		const char *s = f + start;

		for (size_t k = 0; k < l; k++) {
			if (s[k] == '+' && l != 1)
				return -EINVAL;  /* [MQTT-4.7.1-2] '+' fills a level */
			if (s[k] == '#' && (l != 1 || i != len))
				return -EINVAL;  /* [MQTT-4.7.1-1] '#' alone, last */
		}
		if (i < len)
			levels++;
		start = i + 1;
	}
	return levels;
}

static uint64_t group_key(const char *g, size_t glen, const char *f, size_t flen)
{
	XXH3_state_t st;
	uint64_t k;

	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, g, glen);
	XXH3_64bits_update(&st, "", 1);
	XXH3_64bits_update(&st, f, flen);
	k = XXH3_64bits_digest(&st);
	return k ? k : 1; /* 0 means "not shared" to tt_group_key_of callers */
}

/* See mqtt/topic_tree.h. */
uint64_t tt_group_key_of(const char *filter, size_t len)
{
	const char *g, *r;
	size_t gl, rl;

	if (tt_parse_shared(filter, len, &g, &gl, &r, &rl) != 1)
		return 0;
	return group_key(g, gl, r, rl);
}

/* See mqtt/topic_tree.h. */
uint64_t tt_group_key(const struct tt_group *g)
{
	return g->key;
}

/* See mqtt/topic_tree.h. */
uint32_t tt_group_size(const struct tt_group *g)
{
	return g->m.n;
}

/* See mqtt/topic_tree.h. */
const char *tt_group_name(const struct tt_group *g, size_t *len)
{
	if (len)
		*len = g->nlen;
	return g->name;
}

/* ---- nodes ----------------------------------------------------------------- */

static struct tt_node *node_new(const char *s, size_t len)
{
	struct tt_node *n = calloc(1, KOFF + len + 1);

	if (!n)
		return NULL;
	n->hd.len = (uint16_t)len;
	n->hd.h = lmap_hash(s, len);
	memcpy((char *)n + KOFF, s, len);
	return n;
}

static inline uint32_t node_children(const struct tt_node *n)
{
	return n->kids.n + (n->plus != NULL) + (n->hash != NULL);
}

static inline bool node_has_entries(const struct tt_node *n)
{
	return n->subs.n || n->groups;
}

static void group_free(struct tt_group *g)
{
	set_free(&g->m);
	free(g);
}

/* Frees a node's own payload (entries, groups), not its children. */
static void node_release(struct tt_node *n)
{
	set_free(&n->subs);
	for (struct tt_group *g = n->groups, *nx; g; g = nx) {
		nx = g->next;
		group_free(g);
	}
	n->groups = NULL;
}

/* The one child of a node that has exactly one. */
static struct tt_node *only_child(const struct tt_node *n)
{
	if (n->kids.n)
		return (struct tt_node *)lmap_first(&n->kids);
	return n->plus ? n->plus : n->hash;
}

static void detach(struct tt_node *parent, struct tt_node *c)
{
	if (parent->plus == c)
		parent->plus = NULL;
	else if (parent->hash == c)
		parent->hash = NULL;
	else
		lmap_remove(&parent->kids, &c->hd);
}

/* Where to cut when a path's last node ends up empty: the top of the run of
 * nodes above it that have no entries and no other child. */
struct cut {
	struct tt_node *top, *parent;
};

static inline void cut_step(struct cut *cut, struct tt_node *parent, struct tt_node *n)
{
	if (!node_has_entries(n) && node_children(n) == 1) {
		if (!cut->top) {
			cut->top = n;
			cut->parent = parent;
		}
	} else {
		cut->top = NULL;
	}
}

/* Removes leaf (child of lparent) if it is empty, with the chain above it. */
static void prune(struct tt_tree *t, struct cut *cut, struct tt_node *lparent,
		  struct tt_node *leaf)
{
	if (leaf == t->root || node_has_entries(leaf) || node_children(leaf))
		return;
	struct tt_node *top = cut->top ? cut->top : leaf;

	detach(cut->top ? cut->parent : lparent, top);
	for (struct tt_node *n = top, *nx; n; n = nx) {
		nx = n == leaf ? NULL : only_child(n);
		lmap_free(&n->kids);
		free(n);
	}
}

/* The next level of f at *pos: sets *l; advances *pos past the level and
 * its '/' (to len + 1 after the last level). */
static inline const char *next_level(const char *f, size_t len, size_t *pos, size_t *l)
{
	const char *s = f + *pos;
	const char *e = memchr(s, '/', len - *pos);

	*l = e ? (size_t)(e - s) : len - *pos;
	*pos += *l + 1;
	return s;
}

static inline bool is_wild(const char *s, size_t l, char w)
{
	return l == 1 && s[0] == w;
}

static struct tt_node *child_of(const struct tt_node *n, const char *s, size_t l)
{
	if (is_wild(s, l, '+'))
		return n->plus;
	if (is_wild(s, l, '#'))
		return n->hash;
	return (struct tt_node *)lmap_find(&n->kids, s, l, KOFF);
}

/* Finds the node of filter f (validated), or NULL; fills *cut and *parent
 * for a later prune(). */
static struct tt_node *walk(struct tt_tree *t, const char *f, size_t len,
			    struct cut *cut, struct tt_node **parent)
{
	struct tt_node *n = t->root, *p = NULL;
	size_t pos = 0;

	cut->top = NULL;
	while (pos <= len) {
		size_t l;
		const char *s = next_level(f, len, &pos, &l);
		struct tt_node *c = child_of(n, s, l);

		if (!c)
			return NULL;
		if (n != t->root)
			cut_step(cut, p, n);
		p = n;
		n = c;
	}
	*parent = p;
	return n;
}

/* A view of a filter: group (or NULL) and the rest, checked. */
struct fview {
	const char *g, *f;
	size_t glen, flen;
	int levels;
};

static int parse_filter(const char *filter, size_t len, struct fview *v)
{
	int rc = tt_parse_shared(filter, len, &v->g, &v->glen, &v->f, &v->flen);

	if (rc < 0)
		return rc;
	if (rc == 0) {
		v->g = NULL;
		v->glen = 0;
		v->f = filter;
		v->flen = len;
	}
	if (v->glen > UINT16_MAX)
		return -EINVAL;
	v->levels = tt_filter_levels(v->f, v->flen);
	return v->levels < 0 ? v->levels : 0;
}

static struct tt_group *group_at(const struct tt_node *n, const char *g, size_t glen)
{
	for (struct tt_group *gr = n->groups; gr; gr = gr->next)
		if (gr->nlen == glen && memcmp(gr->name, g, glen) == 0)
			return gr;
	return NULL;
}

static void group_unlink(struct tt_node *n, struct tt_group *g)
{
	struct tt_group **pp = &n->groups;

	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
}

/* ---- public ---------------------------------------------------------------- */

/* See mqtt/topic_tree.h. */
struct tt_tree *tt_new(void)
{
	struct tt_tree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->root = node_new("", 0);
	t->stk_cap = 16;
	t->stk = malloc(t->stk_cap * sizeof(*t->stk));
	if (!t->root || !t->stk) {
		free(t->root);
		free(t->stk);
		free(t);
		return NULL;
	}
	return t;
}

/* See mqtt/topic_tree.h. Frees breadth-first through a list threaded
 * through the nodes themselves, so any depth or width is fine. */
void tt_free(struct tt_tree *t)
{
	if (!t)
		return;
	struct tt_node *head = t->root, *tail = t->root;

	node_release(head);
	head->next_free = NULL;
	while (head) {
		struct tt_node *n = head;
		uint32_t span = lmap_span(&n->kids);

		for (uint32_t i = 0; i < span + 2; i++) {
			struct tt_node *c = i < span ? (struct tt_node *)lmap_at(&n->kids, i)
					   : i == span ? n->plus : n->hash;
			if (!c)
				continue;
			node_release(c);
			c->next_free = NULL;
			tail->next_free = c;
			tail = c;
		}
		head = n->next_free;
		lmap_free(&n->kids);
		free(n);
	}
	free(t->stk);
	free(t);
}

/* See mqtt/topic_tree.h. */
size_t tt_count(const struct tt_tree *t)
{
	return t->count;
}

/* Creates the path of filter f; on failure prunes what it made. */
static struct tt_node *make_path(struct tt_tree *t, const struct fview *v,
				 struct cut *cut, struct tt_node **parent)
{
	struct tt_node *n = t->root, *p = NULL;
	size_t pos = 0;

	cut->top = NULL;
	while (pos <= v->flen) {
		size_t l;
		const char *s = next_level(v->f, v->flen, &pos, &l);
		struct tt_node *c = child_of(n, s, l);

		if (!c) {
			c = node_new(s, l);
			if (c && is_wild(s, l, '+')) {
				n->plus = c;
			} else if (c && is_wild(s, l, '#')) {
				n->hash = c;
			} else if (c && lmap_insert(&n->kids, &c->hd)) {
				free(c);
				c = NULL;
			}
			if (!c) {
				prune(t, cut, p, n);
				return NULL;
			}
		}
		if (n != t->root)
			cut_step(cut, p, n);
		p = n;
		n = c;
	}
	*parent = p;
	return n;
}

static int add_member(struct tt_node *n, const struct fview *v,
		      const struct tt_sub *e, unsigned *flags)
{
	struct tt_group *g = group_at(n, v->g, v->glen);
	bool fresh = false;

	if (!g) {
		g = calloc(1, sizeof(*g) + v->glen);
		if (!g)
			return -ENOMEM;
		g->key = group_key(v->g, v->glen, v->f, v->flen);
		g->nlen = (uint16_t)v->glen;
		memcpy(g->name, v->g, v->glen);
		fresh = true;
	}
	int64_t pos = set_find(&g->m, sizeof(struct tt_member), e->owner);

	if (pos >= 0) {
		struct tt_member *m = (struct tt_member *)set_at(&g->m, sizeof(*m), (uint32_t)pos);

		g->nonunit += (e->weight != 1) - (m->s.weight != 1);
		m->s = *e;
		*flags = 0;
		return 0;
	}
	pos = set_add(&g->m, sizeof(struct tt_member), e);
	if (pos < 0) {
		if (fresh)
			group_free(g);
		return -ENOMEM;
	}
	if (e->weight != 1 && g->nonunit++ == 0) {
		/* leaving plain round-robin: start the weighted one afresh */
		for (uint32_t i = 0; i < g->m.n; i++)
			((struct tt_member *)set_at(&g->m, sizeof(struct tt_member), i))->cw = 0;
	}
	if (fresh) {
		g->next = n->groups;
		n->groups = g;
	}
	*flags = TT_CREATED | (fresh ? TT_FIRST : 0);
	return 1;
}

/* See mqtt/topic_tree.h. */
int tt_subscribe(struct tt_tree *t, const char *filter, size_t len,
		 const struct tt_sub *s, unsigned *flags)
{
	struct fview v;
	struct cut cut;
	struct tt_node *n, *parent;
	struct tt_sub e = *s;
	unsigned fl = 0;
	int rc;

	if (flags)
		*flags = 0;
	if (t->busy)
		return -EBUSY;
	rc = parse_filter(filter, len, &v);
	if (rc)
		return rc;
	if (e.weight == 0)
		e.weight = 1;
	/* Size the match stack now so that tt_match never allocates: a match
	 * keeps at most one pending branch per level of the deepest filter. */
	if ((uint32_t)v.levels + 1 > t->stk_cap) {
		uint32_t cap = t->stk_cap;

		while (cap < (uint32_t)v.levels + 1)
			cap *= 2;
		struct tt_frame *ns = realloc(t->stk, cap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		t->stk = ns;
		t->stk_cap = cap;
	}
	n = make_path(t, &v, &cut, &parent);
	if (!n)
		return -ENOMEM;
	if (v.g) {
		rc = add_member(n, &v, &e, &fl);
	} else {
		int64_t pos = set_find(&n->subs, sizeof(struct tt_sub), e.owner);

		if (pos >= 0) {
			*set_at(&n->subs, sizeof(struct tt_sub), (uint32_t)pos) = e;
			rc = 0;
		} else {
			bool first = n->subs.n == 0;

			pos = set_add(&n->subs, sizeof(struct tt_sub), &e);
			rc = pos < 0 ? (int)pos : 1;
			fl = TT_CREATED | (first ? TT_FIRST : 0);
		}
	}
	if (rc < 0) {
		prune(t, &cut, parent, n);
		return rc;
	}
	t->count += (size_t)rc;
	if (flags)
		*flags = fl;
	return 0;
}

/* See mqtt/topic_tree.h. */
int tt_unsubscribe(struct tt_tree *t, const char *filter, size_t len,
		   void *owner, unsigned *flags)
{
	struct fview v;
	struct cut cut;
	struct tt_node *n, *parent;
	int rc;

	if (flags)
		*flags = 0;
	if (t->busy)
		return -EBUSY;
	rc = parse_filter(filter, len, &v);
	if (rc)
		return rc;
	n = walk(t, v.f, v.flen, &cut, &parent);
	if (!n)
		return -ENOENT;
	bool last;

	if (v.g) {
		struct tt_group *g = group_at(n, v.g, v.glen);
		int64_t pos = g ? set_find(&g->m, sizeof(struct tt_member), owner) : -1;

		if (pos < 0)
			return -ENOENT;
		struct tt_member *m = (struct tt_member *)set_at(&g->m, sizeof(*m), (uint32_t)pos);

		g->nonunit -= m->s.weight != 1;
		set_del(&g->m, sizeof(struct tt_member), (uint32_t)pos);
		last = g->m.n == 0;
		if (last) {
			group_unlink(n, g);
			group_free(g);
		} else if (g->rr >= g->m.n) {
			g->rr = 0;
		}
	} else {
		int64_t pos = set_find(&n->subs, sizeof(struct tt_sub), owner);

		if (pos < 0)
			return -ENOENT;
		set_del(&n->subs, sizeof(struct tt_sub), (uint32_t)pos);
		last = n->subs.n == 0;
	}
	t->count--;
	if (last) {
		if (flags)
			*flags = TT_LAST;
		prune(t, &cut, parent, n);
	}
	return 0;
}

static struct tt_node *find_node(struct tt_tree *t, const char *filter, size_t len,
				 struct fview *v)
{
	struct cut cut;
	struct tt_node *parent;

	if (parse_filter(filter, len, v))
		return NULL;
	return walk(t, v->f, v->flen, &cut, &parent);
}

/* See mqtt/topic_tree.h. */
struct tt_group *tt_group_find(struct tt_tree *t, const char *filter, size_t len)
{
	struct fview v;
	struct tt_node *n = find_node(t, filter, len, &v);

	return n && v.g ? group_at(n, v.g, v.glen) : NULL;
}

/* See mqtt/topic_tree.h. */
const struct tt_sub *tt_lookup(struct tt_tree *t, const char *filter, size_t len,
			       void *owner)
{
	struct fview v;
	struct tt_node *n = find_node(t, filter, len, &v);
	int64_t pos;

	if (!n)
		return NULL;
	if (v.g) {
		struct tt_group *g = group_at(n, v.g, v.glen);

		pos = g ? set_find(&g->m, sizeof(struct tt_member), owner) : -1;
		return pos < 0 ? NULL : set_at(&g->m, sizeof(struct tt_member), (uint32_t)pos);
	}
	pos = set_find(&n->subs, sizeof(struct tt_sub), owner);
	return pos < 0 ? NULL : set_at(&n->subs, sizeof(struct tt_sub), (uint32_t)pos);
}

/* See mqtt/topic_tree.h. */
int tt_filter_count(struct tt_tree *t, const char *filter, size_t len)
{
	struct fview v;
	int rc = parse_filter(filter, len, &v);

	if (rc)
		return rc;
	struct tt_node *n = find_node(t, filter, len, &v);

	if (!n)
		return 0;
	if (v.g) {
		struct tt_group *g = group_at(n, v.g, v.glen);

		return g ? (int)g->m.n : 0;
	}
	return (int)n->subs.n;
}

/* ---- matching -------------------------------------------------------------- */

static inline int report(const struct tt_node *n, tt_sub_fn on_sub,
			 tt_group_fn on_group, void *ctx)
{
	const struct tt_sub *v = n->subs.v;
	int cnt = (int)n->subs.n;

	if (on_sub)
		for (uint32_t i = 0; i < n->subs.n; i++)
			on_sub(ctx, &v[i]);
	for (struct tt_group *g = n->groups; g; g = g->next, cnt++)
		if (on_group)
			on_group(ctx, g);
	return cnt;
}

/*
 * See mqtt/topic_tree.h. Depth-first: at each node, '#' matches what is
 * left, '+' is set aside on the stack, the literal child is followed. Every
 * pending frame is at a distinct depth, so the stack never holds more than
 * the deepest filter's level count (ensured by tt_subscribe).
 */
int tt_match(struct tt_tree *t, const char *topic, size_t len,
	     tt_sub_fn on_sub, tt_group_fn on_group, void *ctx)
{
	if (t->busy)
		return -EBUSY;
	t->busy = true;

	struct tt_frame *stk = t->stk;
	struct tt_node *root = t->root, *n = root;
	/* [MQTT-4.7.2-1] no '+' or '#' at the first level for "$..." topics */
	bool dollar = len && topic[0] == '$';
	uint32_t sp = 0;
	size_t pos = 0;
	int cnt = 0;

	for (;;) {
		if (pos > len) {
			/* topic consumed: this filter, and "<this>/#" [4.7.1.2] */
			cnt += report(n, on_sub, on_group, ctx);
			if (n->hash)
				cnt += report(n->hash, on_sub, on_group, ctx);
		} else {
			size_t l;
			const char *s = next_level(topic, len, &pos, &l);

			if (!(dollar && n == root)) {
				if (n->hash)
					cnt += report(n->hash, on_sub, on_group, ctx);
				if (n->plus) {
					stk[sp].n = n->plus;
					stk[sp].pos = pos;
					sp++;
				}
			}
			struct tt_node *c = (struct tt_node *)lmap_find(&n->kids, s, l, KOFF);

			if (c) {
				n = c;
				continue;
			}
		}
		if (!sp)
			break;
		sp--;
		n = stk[sp].n;
		pos = stk[sp].pos;
	}
	t->busy = false;
	return cnt;
}

/* ---- groups ---------------------------------------------------------------- */

static inline struct tt_member *member(const struct tt_group *g, uint32_t i)
{
	return (struct tt_member *)set_at(&g->m, sizeof(struct tt_member), i);
}

/* See mqtt/topic_tree.h. */
const struct tt_sub *tt_group_pick(struct tt_group *g,
				   bool (*skip)(void *ctx, const struct tt_sub *s),
				   void *ctx)
{
	uint32_t n = g->m.n;

	if (!n)
		return NULL;
	if (!g->nonunit) {
		/* every weight is 1: smooth WRR reduces to round-robin */
		for (uint32_t k = 0, i = g->rr; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
			struct tt_member *m = member(g, i);

			if (skip && skip(ctx, &m->s))
				continue;
			g->rr = i + 1 == n ? 0 : i + 1;
			return &m->s;
		}
		return NULL;
	}
	/* nginx's smooth weighted round-robin: every eligible member gains its
	 * weight, the richest is picked and pays the total back. */
	struct tt_member *best = NULL;
	int64_t total = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct tt_member *m = member(g, i);

		if (skip && skip(ctx, &m->s))
			continue;
		m->cw += m->s.weight;
		total += m->s.weight;
		if (!best || m->cw > best->cw)
			best = m;
	}
	if (!best)
		return NULL;
	best->cw -= total;
	return &best->s;
}

/* See mqtt/topic_tree.h. */
int tt_group_foreach(struct tt_group *g, tt_sub_fn fn, void *ctx)
{
	for (uint32_t i = 0; i < g->m.n; i++)
		fn(ctx, &member(g, i)->s);
	return (int)g->m.n;
}
