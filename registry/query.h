/*
 * Finding device certificates: filtered, paged lists answered from
 * secondary indexes that the registry keeps exact on every change (see
 * query.c for the structures and their costs).
 *
 * Threads. Every function here is for the registry's ONE writer thread (the
 * registrar: the admin API and the signups run on it). The indexes are
 * writer-only structures, updated by the registry's own write path, so a
 * query sees the writer's view: every change made so far, committed or not.
 *
 * Order. A list is in registration order (oldest registration first), which
 * never changes for the certificates already listed, so pages are stable:
 * a new registration goes to the end, and a deletion only removes its row.
 */
#ifndef VOUCH_REGISTRY_QUERY_H
#define VOUCH_REGISTRY_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/regfile-t.h"

/* A text filter on CN, O or OU: the exact value, or (prefix) every value
 * that starts with it. s == NULL: no filter. Byte-wise, case-sensitive. */
struct reg_qtext {
	const char *s;
	size_t len;
	bool prefix;
};

/* A query: every filter given must hold (AND). Build it with
 * reg_query_init(), then set the filters wanted. */
struct reg_query {
	const uint8_t *id;              /* this certificate ID, or NULL */
	const uint8_t *serial;          /* this serial (no leading zero bytes), or NULL */
	size_t serial_len;
	/* Issued by one of these CAs (certificate IDs). by_ca with n_ca == 0
	 * matches nothing (a CA serial that names no CA). */
	bool by_ca;
	const uint8_t (*ca)[REG_ID_LEN];
	size_t n_ca;
	enum reg_status status;         /* 0 = any */
	struct reg_qtext cn, o, ou;
	const char *client_id;          /* bound to exactly this client ID, or NULL (not indexed: a check) */
	/* Validity ranges, unix seconds, both ends inclusive; reg_query_init
	 * opens them (INT64_MIN .. INT64_MAX). */
	int64_t nb_from, nb_to;         /* not before */
	int64_t na_from, na_to;         /* not after */
	uint64_t offset, limit;         /* the page: skip offset matches, then at most limit */
};

/* No filter, offset 0, limit 100. */
void reg_query_init(struct reg_query *q);

/*
 * Count the certificates that match q (*total, exact) and call fn for each
 * one of the page [offset, offset + limit), in registration order. fn
 * returns 0 to go on, anything else stops the page (returned). Writer
 * thread. Returns 0, fn's value, or -ENOMEM (nothing was called then).
 */
int reg_query(struct registry *r, const struct reg_query *q, uint64_t *total,
	      int (*fn)(void *ctx, const struct reg_device *d), void *ctx);

/* Finish building every index now (they are otherwise finished by the
 * first query that needs them). Writer thread. 0 or -ENOMEM. */
int reg_query_build(struct registry *r);

/* Bytes of memory the indexes hold. Writer thread. */
size_t reg_query_mem(const struct registry *r);

#endif
