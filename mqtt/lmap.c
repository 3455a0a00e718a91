/*
 * Level map: the children of a trie node (subscription tree, retained
 * store), found by level. Small maps are plain arrays scanned without
 * hashing; past LMAP_SMALL children the map becomes an open-addressing table
 * with linear probing, indexed by the XXH3 hash each node keeps, and
 * deletion by backward shift (no tombstones, so lookups never slow down
 * after churn). Single-threaded.
 */
#include <errno.h>
#include <stdlib.h>

#include "mqtt/lmap.h"

/* Below this many children a table turns back into an array. */
#define LMAP_UNHASH (LMAP_SMALL / 2)
#define LMAP_MIN_TABLE 16u

static void table_put(struct lmap_node **v, uint32_t cap, struct lmap_node *c)
{
	uint32_t mask = cap - 1, i = c->h & mask;

	while (v[i])
		i = (i + 1) & mask;
	v[i] = c;
}

/* Moves every child into a new table of cap slots. 0 or -ENOMEM (unchanged). */
static int rehash(struct lmap *m, uint32_t cap)
{
	struct lmap_node **nv = calloc(cap, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	uint32_t span = lmap_span(m);

	for (uint32_t i = 0; i < span; i++) {
		struct lmap_node *c = lmap_at(m, i);

		if (c)
			table_put(nv, cap, c);
	}
	if (m->cap > 1)
		free(m->kids);
	m->kids = nv;
	m->cap = cap;
	return 0;
}

/* See mqtt/lmap.h. Any single trie-owning thread. */
int lmap_insert(struct lmap *m, struct lmap_node *c)
{
	if (m->cap == 0) {
		m->kids = c;
		m->cap = 1;
		m->n = 1;
		return 0;
	}
	if (m->cap == 1) {
		struct lmap_node **v = malloc(2 * sizeof(*v));

		if (!v)
			return -ENOMEM;
		v[0] = m->kids;
		v[1] = c;
		m->kids = v;
		m->cap = 2;
		m->n = 2;
		return 0;
	}
	if (m->cap <= LMAP_SMALL) {
		if (m->n == m->cap) {
			if (m->cap < LMAP_SMALL) {
				struct lmap_node **v = realloc(m->kids, 2 * m->cap * sizeof(*v));

				if (!v)
					return -ENOMEM;
				m->kids = v;
				m->cap *= 2;
			} else {
				int rc = rehash(m, LMAP_MIN_TABLE);

				if (rc)
					return rc;
				table_put(m->kids, m->cap, c);
				m->n++;
				return 0;
			}
		}
		((struct lmap_node **)m->kids)[m->n++] = c;
		return 0;
	}
	if ((uint64_t)(m->n + 1) * 4 > (uint64_t)m->cap * 3) {
		int rc = rehash(m, m->cap * 2);

		if (rc)
			return rc;
	}
	table_put(m->kids, m->cap, c);
	m->n++;
	return 0;
}

/* Table back to an array of LMAP_SMALL once it holds few children. */
static void unhash(struct lmap *m)
{
	struct lmap_node **v = malloc(LMAP_SMALL * sizeof(*v));
	struct lmap_node **t = m->kids;
	uint32_t k = 0;

	if (!v)
		return; /* stay a table: still correct */
	for (uint32_t i = 0; i < m->cap; i++)
		if (t[i])
			v[k++] = t[i];
	free(t);
	m->kids = v;
	m->cap = LMAP_SMALL;
}

/* See mqtt/lmap.h. Any single trie-owning thread. */
void lmap_remove(struct lmap *m, struct lmap_node *c)
{
	if (m->cap == 1) {
		m->kids = NULL;
		m->cap = 0;
		m->n = 0;
		return;
	}
	struct lmap_node **v = m->kids;

	if (m->cap <= LMAP_SMALL) {
		for (uint32_t i = 0; i < m->n; i++) {
			if (v[i] == c) {
				v[i] = v[--m->n];
				break;
			}
		}
		if (m->n == 1) {
			m->kids = v[0];
			m->cap = 1;
			free(v);
		}
		return;
	}
	uint32_t mask = m->cap - 1, i = c->h & mask;

	while (v[i] != c)
		i = (i + 1) & mask;
	/* Backward-shift deletion (Knuth 6.4, algorithm R). */
	v[i] = NULL;
	for (uint32_t j = i;;) {
		j = (j + 1) & mask;
		if (!v[j])
			break;
		uint32_t r = v[j]->h & mask;
		/* v[j] stays if its home r lies cyclically in (i, j]. */
		if (i <= j ? (i < r && r <= j) : (i < r || r <= j))
			continue;
		v[i] = v[j];
		v[j] = NULL;
		i = j;
	}
	m->n--;
	if (m->n <= LMAP_UNHASH)
		unhash(m);
	else if (m->cap > LMAP_MIN_TABLE && (uint64_t)m->n * 8 < m->cap)
		(void)rehash(m, m->cap / 2); /* failure keeps the bigger table */
}

/* See mqtt/lmap.h. */
void lmap_free(struct lmap *m)
{
	if (m->cap > 1)
		free(m->kids);
	m->kids = NULL;
	m->n = 0;
	m->cap = 0;
}
