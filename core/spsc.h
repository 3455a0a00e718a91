/*
 * SPSC rings. Exactly one producer thread calls spsc_push and exactly one
 * consumer thread calls spsc_pop; the two may run concurrently (_mt).
 *
 * Wake-up protocol: the consumer calls spsc_arm() and then drains the ring
 * until empty; a producer, after pushing, calls spsc_should_wake() and wakes
 * the consumer only when it returns true. Both sides use sequentially
 * consistent operations on `armed` and the indexes, so a message is never
 * left in the ring with the consumer asleep and no wake on its way.
 */
#ifndef VOUCH_CORE_SPSC_H
#define VOUCH_CORE_SPSC_H

#include <stdbool.h>

#include "core/spsc-t.h"

/* capacity is rounded up to a power of two. 0 or -ENOMEM. Any thread,
 * before the ring is shared. */
int spsc_init(struct spsc *q, uint32_t capacity);
void spsc_destroy(struct spsc *q);

/* Producer only. Returns 0, or -EAGAIN when full (the caller keeps the
 * message in its own backlog and retries; it never blocks). */
int spsc_push_mt(struct spsc *q, const struct xmsg *m);
/* Consumer only. Returns 1 with *m filled, 0 when empty. */
int spsc_pop_mt(struct spsc *q, struct xmsg *m);

/* Consumer: announce that it will drain now and wants a wake for anything
 * pushed afterwards. */
void spsc_arm_mt(struct spsc *q);
/* Producer, after pushes: true when the consumer must be woken. */
bool spsc_should_wake_mt(struct spsc *q);

#endif
