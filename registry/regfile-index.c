/*
 * The registry's lock-free indexes: open-addressing tables (linear probing,
 * XXH3 seeded with the file's salt) from a key to the offset of the newest
 * record of that key. One writer inserts and updates; any number of readers
 * probe concurrently. See regfile-int.h for the slot format and the growth
 * rule.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

#include "registry/regfile-int.h"

static inline uint64_t slot_make(uint64_t h, uint64_t off)
{
	return ((h >> REGX_TAG_SHIFT) << REGX_TAG_SHIFT) | (off >> 3);
}

static inline bool slot_tag_eq(uint64_t v, uint64_t h)
{
	return (v >> REGX_TAG_SHIFT) == (h >> REGX_TAG_SHIFT);
}

/* Hash: the kinds use different seeds so that the tables are independent. */
uint64_t regx_hash(const struct registry *r, enum regx_kind k,
		   const struct regx_key *key)
{
	uint64_t seed = r->salt ^ (0x9E3779B97F4A7C15ull * (uint64_t)(k + 1));

	if (k != REGX_SER)
		return XXH3_64bits_withSeed(key->id, REG_ID_LEN, seed);
	uint8_t buf[REG_ID_LEN + 1 + REG_SERIAL_MAX];
	size_t n = key->serial_len > REG_SERIAL_MAX ? REG_SERIAL_MAX : key->serial_len;
	memcpy(buf, key->id, REG_ID_LEN);
	buf[REG_ID_LEN] = (uint8_t)n;
	memcpy(buf + REG_ID_LEN + 1, key->serial, n);
	return XXH3_64bits_withSeed(buf, REG_ID_LEN + 1 + n, seed);
}

static bool key_eq(const struct registry *r, enum regx_kind k, uint64_t off,
		   const struct regx_key *key)
{
	struct regx_key rk;

	regf_key_of(r, k, off, &rk);
	if (memcmp(rk.id, key->id, REG_ID_LEN) != 0)
		return false;
	if (k != REGX_SER)
		return true;
	return rk.serial_len == key->serial_len &&
	       memcmp(rk.serial, key->serial, key->serial_len) == 0;
}

#define HUGE (UINT64_C(2) << 20)

static uint64_t tab_bytes(uint64_t cap)
{
	return (sizeof(struct regx_tab) + cap * sizeof(uint64_t) + 4095) & ~UINT64_C(4095);
}

/* Tables are mapped, not malloc'd: zeroed for free, and a big one is backed
 * by transparent huge pages (2 MiB aligned), which spares a TLB miss on
 * nearly every probe of a table of millions of slots. */
static struct regx_tab *tab_alloc(uint64_t cap)
{
	uint64_t len = tab_bytes(cap);
	uint64_t extra = len >= 2 * HUGE ? HUGE : 0;
	uint8_t *p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (extra) {
		uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
		if (a > p)
			munmap(p, (size_t)(a - p));
		if (a + len < p + len + extra)
			munmap(a + len, (size_t)(p + len + extra - (a + len)));
		p = a;
		madvise(p, len, MADV_HUGEPAGE);
	}
	struct regx_tab *t = (struct regx_tab *)(void *)p;
	t->mask = cap - 1;
	return t;
}

struct regx_tab *regx_new(uint64_t n)
{
	/* load <= 2/3 with n keys, and at least 1024 slots */
	uint64_t cap = 1024;
	while (cap < n + n / 2 + 1) {
		if (cap > (UINT64_C(1) << 36))
			return NULL;
		cap <<= 1;
	}
	return tab_alloc(cap);
}

void regx_free(struct regx_tab *t)
{
	while (t) {
		struct regx_tab *old = t->retired;
		munmap(t, tab_bytes(t->mask + 1));
		t = old;
	}
}

void regx_prefetch(const struct registry *r, enum regx_kind k, uint64_t h)
{
	const struct regx_tab *t =
		atomic_load_explicit(&r->tab[k], memory_order_relaxed);

	__builtin_prefetch((const void *)&t->slot[h & t->mask]);
}

uint64_t regx_find(const struct registry *r, enum regx_kind k,
		   const struct regx_key *key, uint64_t h, uint64_t *idx)
{
	const struct regx_tab *t =
		atomic_load_explicit(&r->tab[k], memory_order_acquire);
	uint64_t i = h & t->mask;

	for (;;) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_acquire);
		if (v == 0)
			break;
		if (slot_tag_eq(v, h) && key_eq(r, k, regx_slot_off(v), key)) {
			if (idx)
				*idx = i;
			return regx_slot_off(v);
		}
		i = (i + 1) & t->mask;
	}
	if (idx)
		*idx = i;
	return 0;
}

void regx_update(struct registry *r, enum regx_kind k, uint64_t idx,
		 uint64_t h, uint64_t off)
{
	struct regx_tab *t = atomic_load_explicit(&r->tab[k], memory_order_relaxed);

	atomic_store_explicit(&t->slot[idx], slot_make(h, off),
			      memory_order_release);
}

static void put(struct regx_tab *t, uint64_t h, uint64_t off)
{
	uint64_t i = h & t->mask;

	while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
		i = (i + 1) & t->mask;
	atomic_store_explicit(&t->slot[i], slot_make(h, off),
			      memory_order_release);
	t->used++;
}

/* Double the table: every key is re-hashed from its record in the map. The
 * new table is complete before readers can see it. */
static int grow(struct registry *r, enum regx_kind k)
{
	struct regx_tab *t = atomic_load_explicit(&r->tab[k], memory_order_relaxed);
	struct regx_tab *n = tab_alloc((t->mask + 1) * 2);

	if (!n)
		return -ENOMEM;
	for (uint64_t i = 0; i <= t->mask; i++) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (!v)
			continue;
		struct regx_key key;
		regf_key_of(r, k, regx_slot_off(v), &key);
		put(n, regx_hash(r, k, &key), regx_slot_off(v));
	}
	n->retired = t;
	atomic_store_explicit(&r->tab[k], n, memory_order_release);
	return 0;
}

int regx_reserve(struct registry *r, enum regx_kind k)
{
	struct regx_tab *t = atomic_load_explicit(&r->tab[k], memory_order_relaxed);

	/* keep the load under 0.7 so probes stay short */
	if ((t->used + 1) * 10 > (t->mask + 1) * 7)
		return grow(r, k);
	return 0;
}

void regx_insert(struct registry *r, enum regx_kind k, uint64_t h, uint64_t off)
{
	put(atomic_load_explicit(&r->tab[k], memory_order_relaxed), h, off);
}
