/*
 * Open-addressing hash map from a byte-string key to a pointer, hashed with
 * XXH3. The key bytes live in the value (the caller supplies key_of), so an
 * entry is two words. Single-threaded (one owner).
 */
#ifndef VOUCH_CORE_HMAP_H
#define VOUCH_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_ent {
	uint64_t h;      /* 0 = empty; tombstones are h == 1 with v == NULL */
	void *v;
};

struct hmap {
	struct hmap_ent *e;
	uint32_t cap;    /* power of two */
	uint32_t n;      /* live entries */
	uint32_t used;   /* live + tombstones */
	/* the key bytes of a stored value */
	void (*key_of)(const void *v, const void **k, size_t *len);
};

uint64_t hmap_hash(const void *k, size_t len);
void hmap_init(struct hmap *m, void (*key_of)(const void *, const void **, size_t *));
void hmap_free(struct hmap *m);
void *hmap_get(const struct hmap *m, const void *k, size_t len);
/* Insert (key must not be present). 0 or -ENOMEM. */
int hmap_put(struct hmap *m, void *v);
/* Remove the entry whose value is v. 0 or -ENOENT. */
int hmap_del(struct hmap *m, const void *v);
/* Iterate: i from 0; returns the next value or NULL at the end. */
void *hmap_next(const struct hmap *m, uint32_t *i);

#endif
