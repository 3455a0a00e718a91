/*
 * Level map: a trie node's children by level (see mqtt/lmap-t.h).
 * Single-threaded: the trie owner's thread only. Nothing here frees nodes;
 * the map only holds pointers to them.
 */
#ifndef VOUCH_MQTT_LMAP_H
#define VOUCH_MQTT_LMAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "mqtt/lmap-t.h"

/* The level bytes of node c, stored koff bytes after its start. */
static inline const char *lmap_key(const struct lmap_node *c, size_t koff)
{
	return (const char *)c + koff;
}

/* The hash stored in lmap_node.h for a level. */
static inline uint32_t lmap_hash(const char *s, size_t len)
{
	return (uint32_t)XXH3_64bits(s, len);
}

/* Number of positions lmap_at() accepts (some may be empty slots). */
static inline uint32_t lmap_span(const struct lmap *m)
{
	return m->cap <= LMAP_SMALL ? m->n : m->cap;
}

/* The child at position i < lmap_span(m), or NULL for an empty slot. */
static inline struct lmap_node *lmap_at(const struct lmap *m, uint32_t i)
{
	if (m->cap == 1)
		return m->kids;
	return ((struct lmap_node **)m->kids)[i];
}

/* Some child of a non-empty map (the only one, for a map of one). */
static inline struct lmap_node *lmap_first(const struct lmap *m)
{
	uint32_t span = lmap_span(m);

	for (uint32_t i = 0; i < span; i++)
		if (lmap_at(m, i))
			return lmap_at(m, i);
	return NULL;
}

static inline int lmap_eq(const struct lmap_node *c, const char *s, size_t len,
			  size_t koff)
{
	return c->len == len && memcmp(lmap_key(c, koff), s, len) == 0;
}

/*
 * Finds the child whose level is s[0..len). Hashes the level only when the
 * node has more than LMAP_SMALL children. Returns the child or NULL.
 * Inline: this is the per-level step of matching every PUBLISH.
 */
static inline struct lmap_node *lmap_find(const struct lmap *m, const char *s,
					  size_t len, size_t koff)
{
	if (m->cap <= 1) {
		struct lmap_node *c = m->kids;

		return c && lmap_eq(c, s, len, koff) ? c : NULL;
	}
	struct lmap_node **v = m->kids;

	if (m->cap <= LMAP_SMALL) {
		for (uint32_t i = 0; i < m->n; i++)
			if (lmap_eq(v[i], s, len, koff))
				return v[i];
		return NULL;
	}
	if (len > UINT16_MAX)
		return NULL;
	uint32_t h = lmap_hash(s, len), mask = m->cap - 1;

	for (uint32_t i = h & mask;; i = (i + 1) & mask) {
		struct lmap_node *c = v[i];

		if (!c)
			return NULL;
		if (c->h == h && lmap_eq(c, s, len, koff))
			return c;
	}
}

/*
 * Adds child c (c->h and c->len already set; no child with the same level
 * may be present). Returns 0 or -ENOMEM, in which case the map is unchanged.
 */
int lmap_insert(struct lmap *m, struct lmap_node *c);

/* Removes child c, which must be present. May shrink the storage; never fails. */
void lmap_remove(struct lmap *m, struct lmap_node *c);

/* Frees the map's own storage (not the children) and empties it. */
void lmap_free(struct lmap *m);

#endif
