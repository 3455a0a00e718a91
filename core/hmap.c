/*
 * Hash map with linear probing and tombstones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/hmap.h"

uint64_t hmap_hash(const void *k, size_t len)
{
	uint64_t h = XXH3_64bits(k, len);
	return h < 2 ? h + 2 : h;
}

void hmap_init(struct hmap *m, void (*key_of)(const void *, const void **, size_t *))
{
	memset(m, 0, sizeof *m);
	m->key_of = key_of;
}

void hmap_free(struct hmap *m)
{
	free(m->e);
	m->e = NULL;
	m->cap = m->n = m->used = 0;
}

static int eq(const struct hmap *m, const void *v, const void *k, size_t len)
{
	const void *vk;
	size_t vl;
	m->key_of(v, &vk, &vl);
	return vl == len && memcmp(vk, k, len) == 0;
}

void *hmap_get(const struct hmap *m, const void *k, size_t len)
{
	if (!m->cap)
		return NULL;
	uint64_t h = hmap_hash(k, len);
	for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct hmap_ent *e = &m->e[i];
		if (e->h == 0)
			return NULL;
		if (e->h == h && e->v && eq(m, e->v, k, len))
			return e->v;
	}
}

static int grow(struct hmap *m)
{
	uint32_t nc = m->cap ? m->cap * 2 : 64;
	if (m->n * 4 < m->cap)
		nc = m->cap; /* mostly tombstones: rebuild at the same size */
	struct hmap_ent *ne = calloc(nc, sizeof *ne);
	if (!ne)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->cap; i++) {
		struct hmap_ent *e = &m->e[i];
		if (e->h < 2 || !e->v)
			continue;
		uint32_t j = (uint32_t)e->h & (nc - 1);
		while (ne[j].h)
			j = (j + 1) & (nc - 1);
		ne[j] = *e;
	}
	free(m->e);
	m->e = ne;
	m->cap = nc;
	m->used = m->n;
	return 0;
}

int hmap_put(struct hmap *m, void *v)
{
	if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) != 0)
		return -ENOMEM;
	const void *k;
	size_t len;
	m->key_of(v, &k, &len);
	uint64_t h = hmap_hash(k, len);
	uint32_t i = (uint32_t)h & (m->cap - 1);
	while (m->e[i].h >= 2 && m->e[i].v)
		i = (i + 1) & (m->cap - 1);
	if (m->e[i].h == 0)
		m->used++;
	m->e[i].h = h;
	m->e[i].v = v;
	m->n++;
	return 0;
}

int hmap_del(struct hmap *m, const void *v)
{
	if (!m->cap)
		return -ENOENT;
	const void *k;
	size_t len;
	m->key_of(v, &k, &len);
	uint64_t h = hmap_hash(k, len);
	for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct hmap_ent *e = &m->e[i];
		if (e->h == 0)
			return -ENOENT;
		if (e->v == v) {
			e->h = 1;
			e->v = NULL;
			m->n--;
			return 0;
		}
	}
}

void *hmap_next(const struct hmap *m, uint32_t *i)
{
	while (*i < m->cap) {
		const struct hmap_ent *e = &m->e[(*i)++];
		if (e->h >= 2 && e->v)
			return e->v;
	}
	return NULL;
}
