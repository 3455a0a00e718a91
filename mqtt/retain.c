/*
 * Retained-message store: a trie of topic levels (children in a level map,
 * mqtt/lmap.h) whose nodes may hold one opaque value. rt_match walks the
 * trie depth-first along a filter with an explicit stack, rebuilding each
 * matching topic's name in a buffer as it goes; both the stack and the
 * buffer belong to the store and are sized by rt_put to the deepest and
 * longest topic ever stored, so a match neither allocates nor recurses.
 * Single-threaded.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/lmap.h"
#include "mqtt/retain.h"

struct rt_node {
	struct lmap_node hd;     /* must be first; level bytes follow the node */
	struct lmap kids;
	union {
		void *val;                 /* the retained value, or NULL */
		struct rt_node *next_free; /* only while rt_free runs */
	};
};

#define KOFF sizeof(struct rt_node)

enum rt_kind {
	F_MATCH,   /* n matched the filter's levels before pos */
	F_PLUS,    /* '+' at n: each child, then the filter from pos */
	F_ALL,     /* '#' at n: each descendant */
};

struct rt_frame {
	struct rt_node *n;
	size_t pos;        /* filter offset of the next level */
	uint32_t tlen;     /* topic name of n = buf[0 .. tlen) */
	uint32_t i;        /* next child position (F_PLUS, F_ALL) */
	uint8_t kind;
	bool nodollar;     /* skip children starting with '$' (first level) */
};

struct rt_store {
	struct rt_node *root;
	size_t count;
	struct rt_frame *stk;    /* >= deepest topic's levels + 2 */
	uint32_t stk_cap;
	char *buf;               /* >= longest topic */
	size_t buf_cap;
	bool busy;               /* an rt_match is running */
};

static struct rt_node *node_new(const char *s, size_t len)
{
	struct rt_node *n = calloc(1, KOFF + len + 1);

	if (!n)
		return NULL;
	n->hd.len = (uint16_t)len;
	n->hd.h = lmap_hash(s, len);
	memcpy((char *)n + KOFF, s, len);
	return n;
}

/* See mqtt/retain.h. */
struct rt_store *rt_new(void)
{
	struct rt_store *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->root = node_new("", 0);
	r->stk_cap = 16;
	r->stk = malloc(r->stk_cap * sizeof(*r->stk));
	r->buf_cap = 256;
	r->buf = malloc(r->buf_cap);
	if (!r->root || !r->stk || !r->buf) {
		free(r->root);
		free(r->stk);
		free(r->buf);
		free(r);
		return NULL;
	}
	return r;
}

/* See mqtt/retain.h. Breadth-first through a list threaded through the
 * nodes (values are released first, freeing their field for the link). */
void rt_free(struct rt_store *r, void (*release)(void *val))
{
	if (!r)
		return;
	struct rt_node *head = r->root, *tail = r->root;

	head->next_free = NULL;
	while (head) {
		struct rt_node *n = head;
		uint32_t span = lmap_span(&n->kids);

		for (uint32_t i = 0; i < span; i++) {
			struct rt_node *c = (struct rt_node *)lmap_at(&n->kids, i);

			if (!c)
				continue;
			if (c->val && release)
				release(c->val);
			c->next_free = NULL;
			tail->next_free = c;
			tail = c;
		}
		head = n->next_free;
		lmap_free(&n->kids);
		free(n);
	}
	free(r->stk);
	free(r->buf);
	free(r);
}

/* See mqtt/retain.h. */
size_t rt_count(const struct rt_store *r)
{
	return r->count;
}

static inline const char *next_level(const char *f, size_t len, size_t *pos, size_t *l)
{
	const char *s = f + *pos;
	const char *e = memchr(s, '/', len - *pos);

	*l = e ? (size_t)(e - s) : len - *pos;
	*pos += *l + 1;
	return s;
}

/* Top of the run of value-less single-child nodes above a path's end. */
struct cut {
	struct rt_node *top, *parent;
};

static inline void cut_step(struct cut *cut, struct rt_node *parent, struct rt_node *n)
{
	if (!n->val && n->kids.n == 1) {
		if (!cut->top) {
			cut->top = n;
			cut->parent = parent;
		}
	} else {
		cut->top = NULL;
	}
}

/* Removes leaf (child of lparent) if it is empty, with the chain above it. */
static void prune(struct rt_store *r, struct cut *cut, struct rt_node *lparent,
		  struct rt_node *leaf)
{
	if (leaf == r->root || leaf->val || leaf->kids.n)
		return;
	struct rt_node *top = cut->top ? cut->top : leaf;

	lmap_remove(&(cut->top ? cut->parent : lparent)->kids, &top->hd);
	for (struct rt_node *n = top, *nx; n; n = nx) {
		nx = n == leaf ? NULL : (struct rt_node *)lmap_first(&n->kids);
		lmap_free(&n->kids);
		free(n);
	}
}

/* Walks (create: and builds) the path of topic; NULL if absent (or out of
 * memory when creating, after pruning what was made). */
static struct rt_node *path(struct rt_store *r, const char *topic, size_t len,
			    bool create, struct cut *cut, struct rt_node **parent)
{
	struct rt_node *n = r->root, *p = NULL;
	size_t pos = 0;

	cut->top = NULL;
	while (pos <= len) {
		size_t l;
		const char *s = next_level(topic, len, &pos, &l);
		struct rt_node *c = (struct rt_node *)lmap_find(&n->kids, s, l, KOFF);

		if (!c) {
			if (!create)
				return NULL;
			c = node_new(s, l);
			if (c && lmap_insert(&n->kids, &c->hd)) {
				free(c);
				c = NULL;
			}
			if (!c) {
				prune(r, cut, p, n);
				return NULL;
			}
		}
		if (n != r->root)
			cut_step(cut, p, n);
		p = n;
		n = c;
	}
	*parent = p;
	return n;
}

/* Grows the match stack and topic buffer for a topic of len bytes. */
static int reserve(struct rt_store *r, const char *topic, size_t len)
{
	uint32_t levels = 1;

	for (const char *p = topic, *e = topic + len; (p = memchr(p, '/', (size_t)(e - p))); p++)
		levels++;
	if (levels + 2 > r->stk_cap) {
		uint32_t cap = r->stk_cap;

		while (cap < levels + 2)
			cap *= 2;
		struct rt_frame *ns = realloc(r->stk, cap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		r->stk = ns;
		r->stk_cap = cap;
	}
	if (len > r->buf_cap) {
		size_t cap = r->buf_cap;

		while (cap < len)
			cap *= 2;
		char *nb = realloc(r->buf, cap);

		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->buf_cap = cap;
	}
	return 0;
}

/* See mqtt/retain.h. */
int rt_put(struct rt_store *r, const char *topic, size_t len, void *val, void **old)
{
	struct cut cut;
	struct rt_node *n, *parent;

	*old = NULL;
	if (r->busy)
		return -EBUSY;
	if (len > UINT16_MAX)
		return -EINVAL;
	if (!val) {
		n = path(r, topic, len, false, &cut, &parent);
		if (!n || !n->val)
			return 0;
		*old = n->val;
		n->val = NULL;
		r->count--;
		prune(r, &cut, parent, n);
		return 0;
	}
	if (reserve(r, topic, len))
		return -ENOMEM;
	n = path(r, topic, len, true, &cut, &parent);
	if (!n)
		return -ENOMEM;
	*old = n->val;
	if (!n->val)
		r->count++;
	n->val = val;
	return 0;
}

/* See mqtt/retain.h. */
void *rt_set(struct rt_store *r, const char *topic, size_t len, void *val)
{
	void *old;

	return rt_put(r, topic, len, val, &old) ? val : old;
}

/* See mqtt/retain.h. */
void *rt_get(struct rt_store *r, const char *topic, size_t len)
{
	struct rt_node *n = r->root;
	size_t pos = 0;

	while (pos <= len) {
		size_t l;
		const char *s = next_level(topic, len, &pos, &l);

		n = (struct rt_node *)lmap_find(&n->kids, s, l, KOFF);
		if (!n)
			return NULL;
	}
	return n->val;
}

/* Appends c's level to the topic name buf[0 .. tlen) of its parent. */
static inline uint32_t put_level(char *buf, uint32_t tlen, bool top, const struct rt_node *c)
{
	if (!top)
		buf[tlen++] = '/';
	memcpy(buf + tlen, lmap_key(&c->hd, KOFF), c->hd.len);
	return tlen + c->hd.len;
}

/* See mqtt/retain.h. Every frame on the stack is at a distinct depth, so
 * the stack holds at most the deepest topic's levels + 1 frames. */
int rt_match(struct rt_store *r, const char *filter, size_t len, rt_match_fn fn, void *ctx)
{
	if (r->busy)
		return -EBUSY;
	r->busy = true;

	struct rt_frame *stk = r->stk;
	struct rt_node *root = r->root;
	char *buf = r->buf;
	uint32_t sp = 1;
	int cnt = 0;

	stk[0] = (struct rt_frame){ .n = root, .kind = F_MATCH };
	while (sp) {
		struct rt_frame *f = &stk[sp - 1];
		struct rt_node *n = f->n;

		if (f->kind == F_MATCH) {
			if (f->pos > len) {
				/* filter consumed: n's own topic matches */
				if (n->val) {
					if (fn)
						fn(ctx, buf, f->tlen, n->val);
					cnt++;
				}
				sp--;
				continue;
			}
			size_t l;
			const char *s = next_level(filter, len, &f->pos, &l);

			if (l == 1 && (s[0] == '#' || s[0] == '+')) {
				/* [MQTT-4.7.2-1] wildcards at the first level skip '$' topics */
				f->nodollar = n == root;
				f->i = 0;
				f->kind = s[0] == '#' ? F_ALL : F_PLUS;
				if (s[0] == '#' && n != root && n->val) {
					/* "a/#" matches "a" [4.7.1.2] */
					if (fn)
						fn(ctx, buf, f->tlen, n->val);
					cnt++;
				}
				continue;
			}
			struct rt_node *c = (struct rt_node *)lmap_find(&n->kids, s, l, KOFF);

			if (!c) {
				sp--;
				continue;
			}
			f->tlen = put_level(buf, f->tlen, n == root, c);
			f->n = c;
			continue;
		}
		/* F_PLUS, F_ALL: the next child */
		uint32_t span = lmap_span(&n->kids);
		struct rt_node *c = NULL;

		while (f->i < span) {
			c = (struct rt_node *)lmap_at(&n->kids, f->i++);
			if (c && !(f->nodollar && c->hd.len && lmap_key(&c->hd, KOFF)[0] == '$'))
				break;
			c = NULL;
		}
		if (!c) {
			sp--;
			continue;
		}
		uint32_t tlen = put_level(buf, f->tlen, n == root, c);

		if (f->kind == F_PLUS) {
			stk[sp++] = (struct rt_frame){ .n = c, .pos = f->pos, .tlen = tlen,
						       .kind = F_MATCH };
			continue;
		}
		if (c->val) {
			if (fn)
				fn(ctx, buf, tlen, c->val);
			cnt++;
		}
		if (c->kids.n)
			stk[sp++] = (struct rt_frame){ .n = c, .tlen = tlen, .kind = F_ALL };
	}
	r->busy = false;
	return cnt;
}
