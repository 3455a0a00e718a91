/*
 * Shard-local timers: a binary min-heap of (deadline, kind, id, gen).
 * Entries are never removed early: when one fires, its owner checks the
 * generation and its own real deadline, and re-arms if the deadline moved
 * (lazy deletion), so re-arming a keep-alive costs nothing per packet.
 * Shard-local: no locking.
 */
#ifndef VOUCH_CORE_TIMER_H
#define VOUCH_CORE_TIMER_H

#include <stdint.h>

struct timer_ent {
	uint64_t at_ms;
	uint32_t kind;
	uint32_t id;
	uint32_t gen;
};

struct timer_heap {
	struct timer_ent *v;
	uint32_t n, cap;
};

/* 0 or -ENOMEM. */
int timer_add(struct timer_heap *h, uint64_t at_ms, uint32_t kind, uint32_t id,
	      uint32_t gen);
/* Pop the earliest entry due at or before now_ms: 1 and *out, or 0. */
int timer_pop_due(struct timer_heap *h, uint64_t now_ms, struct timer_ent *out);
/* Earliest deadline, or UINT64_MAX when empty. */
uint64_t timer_next(const struct timer_heap *h);
void timer_free(struct timer_heap *h);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t time_now_ms(void);
/* CLOCK_REALTIME in seconds. */
int64_t time_wall_s(void);

#endif
