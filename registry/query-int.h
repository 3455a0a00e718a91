/*
 * The registry's hooks into the query indexes (query.c): regfile.c creates
 * them at open, makes room before every device record is written (so that
 * applying it cannot fail) and applies every device record, at open and on
 * every write. Only registry/regfile*.c and query.c include this.
 */
#ifndef VOUCH_REGISTRY_QUERY_INT_H
#define VOUCH_REGISTRY_QUERY_INT_H

#include "registry/regfile-int.h"

struct regq;

/* New, empty indexes, sized for hint registrations. NULL on ENOMEM. */
struct regq *regq_new(uint64_t hint);

/* Free them. NULL is a no-op. */
void regq_free(struct regq *q);

/* Make room for applying the device record v (a DEV_ADD takes a row and an
 * entry in each index). Writer. 0 or -ENOMEM (nothing changed). */
int regq_reserve(struct registry *r, const struct regf_view *v);

/* Apply the device record v, written at off, after regq_reserve(). v may
 * point outside the mapping (the open-time read buffer). Writer. */
void regq_apply(struct registry *r, const struct regf_view *v, uint64_t off);

#endif
