/*
 * Per-shard certificate fingerprint cache: open addressing keyed by the
 * certificate ID (slot from XXH3, full 32-byte compare), holding what a
 * connecting device's decision needs: status, issuing CA, bound client ID
 * and CN (pointers into the registry mapping, valid while it is open).
 * Owned by one shard; kept current by the registrar's notices, so a cached
 * status is never stale. Shard-local: no locks.
 */
#ifndef VOUCH_REGISTRY_CACHE_H
#define VOUCH_REGISTRY_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "registry/regfile-t.h"

struct fp_entry {
	uint8_t id[REG_ID_LEN];
	uint8_t issuer[REG_ID_LEN];
	uint8_t status;            /* enum reg_status; 0 = empty slot */
	uint8_t tomb;              /* deleted slot */
	uint16_t client_id_len;
	const char *client_id;     /* bound client ID (in the mapping) or "" */
	const char *cn;
};

struct fp_cache {
	struct fp_entry *e;
	uint32_t cap;              /* power of two */
	uint32_t n, used;
	uint64_t hits, misses;     /* owner-written counters */
};

int fp_init(struct fp_cache *c, uint32_t cap);
void fp_free(struct fp_cache *c);
/* The entry of a certificate, or NULL (counts a hit or a miss). */
const struct fp_entry *fp_get(struct fp_cache *c, const uint8_t id[REG_ID_LEN]);
/* Insert or replace from a registry snapshot. 0 or -ENOMEM. */
int fp_put(struct fp_cache *c, const struct reg_device *d);
/* Apply a notice: new status (0 = deleted) and bound client ID; only
 * updates an entry that is present. */
void fp_update(struct fp_cache *c, const uint8_t id[REG_ID_LEN], enum reg_status status,
	       const char *client_id, uint16_t client_id_len);

#endif
