/*
 * The signup limiter: bounds how many device certificates register
 * automatically ("just in time"), broker-wide.
 *
 * "15 a second" means it: in any window of one second at most `rate`
 * signups pass, whatever the burst (a sliding window over the times of the
 * last `rate` signups). Within that, a token bucket spaces them: at most
 * `burst` back to back, refilled at `rate` a second (integer arithmetic in
 * nanoseconds, no rounding drift). A bucket alone would let burst + rate - 1
 * through in one second. The clock is an argument, so tests run it on
 * simulated time. A limiter is owned by one thread (the registrar) and has
 * no locks.
 */
#ifndef VOUCH_REGISTRY_LIMITER_H
#define VOUCH_REGISTRY_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

struct reg_limiter {
	uint64_t rate;          /* tokens per second */
	uint64_t cap;           /* burst, in nano-tokens (burst * 1e9) */
	uint64_t credit;        /* nano-tokens in the bucket */
	uint64_t last_ns;       /* clock of the last refill */
	uint64_t *win;          /* times of the last `rate` signups, a ring */
	uint32_t win_n, win_head;
};

/*
 * Set up a full bucket: `rate` tokens a second (0 = nothing ever passes),
 * `burst` tokens at most (0 = rate, and at least 1 when rate > 0), as of
 * `now_ns` (any monotonic clock in nanoseconds). Returns 0 or -ENOMEM.
 * Owner thread.
 */
int reg_limiter_init(struct reg_limiter *l, uint32_t rate, uint32_t burst,
		     uint64_t now_ns);

/* Free what reg_limiter_init allocated. */
void reg_limiter_free(struct reg_limiter *l);

/* Whether a token is available at now_ns (refills first). Owner thread. */
bool reg_limiter_ready(struct reg_limiter *l, uint64_t now_ns);

/* Take one token if available: true if taken. Owner thread. */
bool reg_limiter_take(struct reg_limiter *l, uint64_t now_ns);

/* Nanoseconds until a token is available (0 when one is). UINT64_MAX when
 * the rate is 0. Owner thread. */
uint64_t reg_limiter_wait_ns(struct reg_limiter *l, uint64_t now_ns);

#endif
