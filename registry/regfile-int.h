/*
 * Inside the registry file: the on-disk format, the in-memory registry and
 * the lock-free indexes. Only registry/regfile*.c and the registry tests
 * include this.
 *
 * File format (version 1), little-endian, every record 8-byte aligned:
 *
 *   offset 0   struct regf_hdr (64 bytes): magic "VOUCHREG", version,
 *              a random 64-bit salt (seeds every checksum and hash), and a
 *              checksum of the header. Written once, at creation (the file
 *              is created under a temporary name and renamed into place).
 *   offset 64  records, back to back, until the end of the log; the file
 *              may be longer (zeros: room grown in advance).
 *
 *   record = struct regf_rec (56 bytes) | body (body_len) | actor | NUL |
 *            zero padding to a multiple of 8 (len)
 *
 * check = XXH3_64(record bytes [16, len), seed = salt ^ (magic << 32 | len)),
 * so magic, length and content are all covered. seq counts records from 1
 * with no gap. synced is the highest seq that was durable when the record
 * was written: it tells an interrupted write (every record after the damage
 * has synced < the damaged one's seq) from damage to acknowledged data
 * (some later record has synced >= it). prev chains the records of one key
 * (certificate ID for device and CA records, issuer + serial for
 * REVOKE_SERIAL), newest to oldest, so history is a walk.
 *
 * Bodies (the fixed part first, then variable fields in this order; text is
 * NUL-terminated, lengths exclude the NUL):
 *   DEV_ADD     regf_dev_add | serial | cn | o | ou | client_id | der
 *   DEV_STATE   regf_dev_state | client_id       (the full mutable state)
 *   DEV_DELETE  regf_dev_delete
 *   REVOKE_SER  regf_revoke | serial
 *   CA_ADD      regf_ca_add | serial | cn | o | ou | der
 *   CA_STATE    regf_ca_state
 *   CA_DELETE   regf_ca_delete
 *   CLOSE       regf_close: a clean close, so that damage to the last
 *               record of a cleanly closed file is caught too; it holds the
 *               number of keys of each index, to size them at the next open.
 */
#ifndef VOUCH_REGISTRY_REGFILE_INT_H
#define VOUCH_REGISTRY_REGFILE_INT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/regfile-t.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the registry file format is little-endian; add byte swapping for this host"
/* Fill d from the newest record last (writer's or reader's view) of a live
 * device registration. 0 or -EIO. Any thread. (regfile-ops.c) */
int regf_dev_snapshot(const struct registry *r, uint64_t last,
		      struct reg_device *d);

#endif

#define REGF_MAGIC      "VOUCHREG"
#define REGF_VERSION    1u
#define REGF_HDR_SIZE   64u
#define REGF_REC_MAGIC  0x52484356u     /* "VCHR" */

struct regf_hdr {
	char magic[8];
	uint32_t version;
	uint32_t hdr_size;
	uint64_t salt;
	int64_t created;
	uint8_t reserved[24];
	uint64_t check;         /* XXH3_64 of bytes [0, 56) */
};

enum regf_type {
	REGF_DEV_ADD = 1,
	REGF_DEV_STATE = 2,
	REGF_DEV_DELETE = 3,
	REGF_REVOKE_SERIAL = 4,
	REGF_CA_ADD = 5,
	REGF_CA_STATE = 6,
	REGF_CA_DELETE = 7,
	REGF_CLOSE = 8,
};

struct regf_rec {
	uint32_t magic;
	uint32_t len;           /* whole record, multiple of 8 */
	uint64_t check;
	uint64_t seq;
	uint64_t synced;
	uint64_t prev;          /* previous record of this key, 0 = none */
	int64_t time;           /* unix seconds */
	uint16_t type;
	uint16_t actor_len;
	uint32_t body_len;
};

/* What a DEV_STATE / CA_STATE record changed (for history). */
#define REGF_WHAT_STATUS 1
#define REGF_WHAT_BIND   2
#define REGF_WHAT_AUTO   3

struct regf_dev_add {
	uint8_t id[REG_ID_LEN];
	uint8_t issuer[REG_ID_LEN];
	uint64_t sprev;         /* previous record holding this (issuer, serial) */
	int64_t not_before, not_after;
	uint32_t der_len;
	uint16_t client_len;
	uint8_t status, how;
	uint8_t serial_len, cn_len, o_len, ou_len;
	uint8_t pad[4];
};

struct regf_dev_state {
	uint8_t id[REG_ID_LEN];
	uint64_t base;          /* the DEV_ADD of this registration */
	uint16_t client_len;
	uint8_t status, what;
	uint8_t pad[4];
};

struct regf_dev_delete {
	uint8_t id[REG_ID_LEN];
	uint64_t base;
	uint8_t status;         /* status when deleted; REVOKED = tombstone */
	uint8_t pad[7];
};

struct regf_revoke {
	uint8_t issuer[REG_ID_LEN];
	uint8_t serial_len;
	uint8_t pad[7];
};

struct regf_ca_add {
	uint8_t id[REG_ID_LEN];
	int64_t not_before, not_after;
	uint32_t der_len;
	uint8_t status, auto_register, auto_status, serial_len;
	uint8_t cn_len, o_len, ou_len;
	uint8_t pad[5];
};

struct regf_ca_state {
	uint8_t id[REG_ID_LEN];
	uint64_t base;
	uint8_t status, auto_register, auto_status, what;
	uint8_t pad[4];
};

struct regf_ca_delete {
	uint8_t id[REG_ID_LEN];
	uint64_t base;
	uint8_t status;
	uint8_t pad[7];
};

/* Keys in the indexes at a clean close: sizes the tables at the next open. */
struct regf_close {
	uint64_t dev_keys, ser_keys, ca_keys;
	uint64_t reserved;
};

_Static_assert(sizeof(struct regf_hdr) == REGF_HDR_SIZE, "header layout");
_Static_assert(sizeof(struct regf_rec) == 56, "record header layout");
_Static_assert(sizeof(struct regf_dev_add) == 104, "dev_add layout");
_Static_assert(sizeof(struct regf_dev_state) == 48, "dev_state layout");
_Static_assert(sizeof(struct regf_dev_delete) == 48, "dev_delete layout");
_Static_assert(sizeof(struct regf_revoke) == 40, "revoke layout");
_Static_assert(sizeof(struct regf_ca_add) == 64, "ca_add layout");
_Static_assert(sizeof(struct regf_ca_state) == 48, "ca_state layout");
_Static_assert(sizeof(struct regf_ca_delete) == 48, "ca_delete layout");
_Static_assert(sizeof(struct regf_close) == 32, "close layout");

/* Largest record: a DEV_ADD with every field at its bound. */
#define REGF_REC_MAX (sizeof(struct regf_rec) + sizeof(struct regf_dev_add) + \
		      REG_SERIAL_MAX + 3 * (REG_NAME_MAX + 1) +              \
		      REG_CLIENT_MAX + 1 + REG_DER_MAX + REG_ACTOR_MAX + 1 + 8)

/* A parsed record: the header, its fixed body, and its variable fields
 * (NULL / 0 when the type has none). */
struct regf_view {
	const struct regf_rec *h;
	const void *body;
	const uint8_t *serial;
	size_t serial_len;
	const char *cn, *o, *ou, *client;
	size_t cn_len, o_len, ou_len, client_len;
	const uint8_t *der;
	size_t der_len;
	const char *actor;
};

/* The checksum of a record of len bytes at rec (len >= 16). */
uint64_t regf_checksum(uint64_t salt, const void *rec, uint32_t len);

/* Parse and check the layout of a record whose header and len have been
 * checked: exact length, NULs, zero padding, enum ranges. 0, or -EBADMSG
 * with *why set to a static reason. Any thread. */
int regf_parse(const uint8_t *rec, struct regf_view *v, const char **why);

/* ---- lock-free open-addressing index ------------------------------------
 * A slot is one 64-bit word: (24-bit hash tag << 40) | (record offset >> 3),
 * 0 = empty. Keys are never removed (a deleted certificate's slot points to
 * its DELETE record), so there are no tombstones and a reader's probe ends
 * at the first empty slot. The writer updates a slot with a store-release;
 * readers load-acquire, and the record behind the offset is immutable.
 * Growing allocates a table twice the size, fills it, publishes it with a
 * store-release and keeps the old one until reg_close(): a reader may still
 * be probing it, and it holds a valid (older) view. The retired tables
 * together are smaller than the live one.
 */
struct regx_tab {
	uint64_t mask;          /* capacity - 1 */
	uint64_t used;          /* occupied slots (writer only) */
	struct regx_tab *retired;
	_Atomic uint64_t slot[];
};

enum regx_kind { REGX_DEV, REGX_SER, REGX_CA, REGX_KINDS };

/* A key: a certificate ID (DEV, CA) or issuer + serial (SER). */
struct regx_key {
	const uint8_t *id;
	const uint8_t *serial;
	size_t serial_len;
};

struct registry {
	/* Read by every thread; written only by the writer (once at open, or
	 * atomically). */
	const uint8_t *map;     /* the file, mapped read-only at a fixed address */
	uint64_t salt;
	_Atomic(struct regx_tab *) tab[REGX_KINDS];
	_Atomic uint64_t durable_end;   /* records below this are on disk */
	_Atomic uint64_t durable_seq;
	_Atomic uint64_t n_dev[REG_STATUS_COUNT];  /* [0] = all */
	_Atomic uint64_t n_ca[REG_STATUS_COUNT];
	_Atomic uint64_t n_records;

	/* Writer only. */
	alignas(64) int fd;
	uint64_t end;           /* end of the log */
	uint64_t size;          /* file size (and mapped length) */
	uint64_t reserve;       /* reserved address space at map */
	uint64_t seq;           /* last record written */
	uint64_t synced_seq;    /* last record known durable */
	int batch;              /* reg_begin() depth */
	int broken;             /* -errno of a failed write/sync, 0 if healthy */
	uint64_t open_seq;      /* seq when opened */
	uint16_t last_type;     /* type of the last record */
	struct regq *q;         /* query indexes (query.c), kept by publish() */
	char *path;
	alignas(8) uint8_t wbuf[REGF_REC_MAX];
};

static inline const struct regf_rec *regf_at(const struct registry *r,
					     uint64_t off)
{
	return (const struct regf_rec *)(const void *)(r->map + off);
}

static inline const void *regf_body(const struct regf_rec *h)
{
	return (const uint8_t *)h + sizeof(*h);
}

#define REGX_TAG_SHIFT 40

/* The record offset a non-empty slot value points to. */
static inline uint64_t regx_slot_off(uint64_t v)
{
	return (v & ((UINT64_C(1) << REGX_TAG_SHIFT) - 1)) << 3;
}

/* The status a device or CA record leaves its certificate in (for a
 * DELETE: the status it had when deleted). */
static inline int regf_rec_status(const struct registry *r, uint64_t off)
{
	const struct regf_rec *h = regf_at(r, off);
	const void *b = regf_body(h);

	switch (h->type) {
	case REGF_DEV_ADD: return ((const struct regf_dev_add *)b)->status;
	case REGF_DEV_STATE: return ((const struct regf_dev_state *)b)->status;
	case REGF_DEV_DELETE: return ((const struct regf_dev_delete *)b)->status;
	case REGF_CA_ADD: return ((const struct regf_ca_add *)b)->status;
	case REGF_CA_STATE: return ((const struct regf_ca_state *)b)->status;
	case REGF_CA_DELETE: return ((const struct regf_ca_delete *)b)->status;
	}
	return 0;
}

/* The ADD record of the registration a device or CA record belongs to. */
static inline uint64_t regf_rec_base(const struct registry *r, uint64_t off)
{
	const struct regf_rec *h = regf_at(r, off);
	const void *b = regf_body(h);

	switch (h->type) {
	case REGF_DEV_STATE: return ((const struct regf_dev_state *)b)->base;
	case REGF_DEV_DELETE: return ((const struct regf_dev_delete *)b)->base;
	case REGF_CA_STATE: return ((const struct regf_ca_state *)b)->base;
	case REGF_CA_DELETE: return ((const struct regf_ca_delete *)b)->base;
	}
	return off;
}

static inline bool regf_is_delete(const struct registry *r, uint64_t off)
{
	uint16_t t = regf_at(r, off)->type;

	return t == REGF_DEV_DELETE || t == REGF_CA_DELETE;
}

/* Hash of a key of a kind (seeded with the file's salt). */
uint64_t regx_hash(const struct registry *r, enum regx_kind k,
		   const struct regx_key *key);
/* A table with room for n keys at a low load. NULL on ENOMEM. */
struct regx_tab *regx_new(uint64_t n);
/* Prefetch the home slot of hash h (open-time pipelining). */
void regx_prefetch(const struct registry *r, enum regx_kind k, uint64_t h);
/* Free a table and the ones it retired. */
void regx_free(struct regx_tab *t);
/* Find key; returns the record offset (0 = absent) and, if idx, the slot.
 * Any thread. */
uint64_t regx_find(const struct registry *r, enum regx_kind k,
		   const struct regx_key *key, uint64_t h, uint64_t *idx);
/* Point the found slot idx (of the current table) at off. Writer. */
void regx_update(struct registry *r, enum regx_kind k, uint64_t idx,
		 uint64_t h, uint64_t off);
/* Make room for one more key (grow now if needed). 0 or -ENOMEM. Writer. */
int regx_reserve(struct registry *r, enum regx_kind k);
/* Add a key that is absent, after regx_reserve(). Writer. */
void regx_insert(struct registry *r, enum regx_kind k, uint64_t h,
		 uint64_t off);

/* Writer internals shared by regfile.c and regfile-ops.c. */

/* unix seconds now */
int64_t regf_clock(void);

/* Append the record built in r->wbuf (header fields type, prev, time,
 * actor_len, body_len filled in, body and actor in place); seals it
 * (len, seq, synced, padding, check), writes it, applies it to the indexes
 * and, outside a batch, syncs. Returns the record's offset (> 0) or -errno. */
int64_t regf_append(struct registry *r);

/* The key of a record for index kind k. */
void regf_key_of(const struct registry *r, enum regx_kind k, uint64_t off,
		 struct regx_key *key);

/* The device/CA record chain of a key after the writer's or a reader's view:
 * limit = UINT64_MAX for the writer, durable_end for readers. Walks back
 * from the newest record to the newest one below limit. */
uint64_t regf_visible(const struct registry *r, enum regx_kind k, uint64_t off,
		      uint64_t limit);

/* Fill d from the newest record last (writer's or reader's view) of a live
 * device registration. 0 or -EIO. Any thread. (regfile-ops.c) */
int regf_dev_snapshot(const struct registry *r, uint64_t last,
		      struct reg_device *d);

#endif
