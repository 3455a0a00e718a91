/*
 * Fingerprint cache (see cache.h): linear probing, tombstones, doubling.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "registry/cache.h"

int fp_init(struct fp_cache *c, uint32_t cap)
{
	uint32_t n = 64;
	while (n < cap)
		n <<= 1;
	memset(c, 0, sizeof *c);
	c->e = calloc(n, sizeof *c->e);
	if (!c->e)
		return -ENOMEM;
	c->cap = n;
	return 0;
}

void fp_free(struct fp_cache *c)
{
	free(c->e);
	memset(c, 0, sizeof *c);
}

static uint32_t slot_of(const struct fp_cache *c, const uint8_t id[REG_ID_LEN])
{
	return (uint32_t)XXH3_64bits(id, REG_ID_LEN) & (c->cap - 1);
}

static struct fp_entry *find(struct fp_cache *c, const uint8_t id[REG_ID_LEN])
{
	for (uint32_t i = slot_of(c, id);; i = (i + 1) & (c->cap - 1)) {
		struct fp_entry *e = &c->e[i];
		if (!e->status && !e->tomb)
			return NULL;
		if (e->status && memcmp(e->id, id, REG_ID_LEN) == 0)
			return e;
	}
}

const struct fp_entry *fp_get(struct fp_cache *c, const uint8_t id[REG_ID_LEN])
{
	const struct fp_entry *e = c->cap ? find(c, id) : NULL;
	if (e)
		c->hits++;
	else
		c->misses++;
	return e;
}

static int grow(struct fp_cache *c)
{
	uint32_t nc = c->n * 4 < c->cap ? c->cap : c->cap * 2;
	struct fp_entry *ne = calloc(nc, sizeof *ne);
	if (!ne)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->cap; i++) {
		struct fp_entry *e = &c->e[i];
		if (!e->status)
			continue;
		uint32_t j = (uint32_t)XXH3_64bits(e->id, REG_ID_LEN) & (nc - 1);
		while (ne[j].status)
			j = (j + 1) & (nc - 1);
		ne[j] = *e;
	}
	free(c->e);
	c->e = ne;
	c->cap = nc;
	c->used = c->n;
	return 0;
}

int fp_put(struct fp_cache *c, const struct reg_device *d)
{
	struct fp_entry *e = find(c, d->id);
	if (!e) {
		if ((c->used + 1) * 4 >= c->cap * 3 && grow(c) != 0)
			return -ENOMEM;
		uint32_t i = slot_of(c, d->id);
		while (c->e[i].status)
			i = (i + 1) & (c->cap - 1);
		e = &c->e[i];
		if (!e->tomb)
			c->used++;
		c->n++;
	}
	memcpy(e->id, d->id, REG_ID_LEN);
	memcpy(e->issuer, d->issuer, REG_ID_LEN);
	e->status = (uint8_t)d->status;
	e->tomb = 0;
	e->client_id = d->client_id;
	e->client_id_len = (uint16_t)d->client_id_len;
	e->cn = d->cn;
	return 0;
}

void fp_update(struct fp_cache *c, const uint8_t id[REG_ID_LEN], enum reg_status status,
	       const char *client_id, uint16_t client_id_len)
{
	struct fp_entry *e = c->cap ? find(c, id) : NULL;
	if (!e)
		return;
	if (status == 0) {
		e->status = 0;
		e->tomb = 1;
		c->n--;
		return;
	}
	e->status = (uint8_t)status;
	e->client_id = client_id;
	e->client_id_len = client_id_len;
}
