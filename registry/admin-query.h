/*
 * The query string of GET /api/v1/certificates, parsed into a reg_query
 * (see docs/queries.md for the parameters). Registrar thread.
 */
#ifndef VOUCH_REGISTRY_ADMIN_QUERY_H
#define VOUCH_REGISTRY_ADMIN_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "registry/admin.h"
#include "registry/query.h"

#define ADMQ_PAGE_DEFAULT 100

/* A parsed query and the storage its pointers use. */
struct admq {
	struct reg_query q;
	uint8_t id[REG_ID_LEN], ca[REG_ID_LEN];
	uint8_t serial[REG_SERIAL_MAX];
	uint8_t (*cas)[REG_ID_LEN];     /* the issuers wanted (malloc'd) */
};

/*
 * Parse rq's parameters (now: unix seconds, for "expired" and
 * "expiringWithinDays"; reg resolves "caSerial" to CAs). Returns 0, -EINVAL
 * with a message for the client in msg (an unknown parameter, a bad value),
 * or -ENOMEM. Call admq_free() after either.
 */
int admq_parse(struct admq *a, const struct admin_req *rq,
	       const struct registry *reg, int64_t now, char *msg, size_t msglen);

void admq_free(struct admq *a);

/* Unix seconds, or an RFC 3339 date-time ("2025-01-31T00:00:00Z", with an
 * optional fraction and a Z or +hh:mm / -hh:mm offset). 0 or -EINVAL. */
int admq_time(const char *s, int64_t *out);

#endif
