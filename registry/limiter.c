/*
 * The signup limiter (registry/limiter.h): a token bucket counted in
 * nano-tokens so that a refill of dt nanoseconds adds exactly rate * dt
 * nano-tokens and nothing is lost to rounding, however often it is asked.
 */
#include "registry/limiter.h"

#define NS 1000000000ull

/* See registry/limiter.h. */
void reg_limiter_init(struct reg_limiter *l, uint32_t rate, uint32_t burst,
		      uint64_t now_ns)
{
	if (burst == 0)
		burst = rate;
	if (burst == 0 && rate > 0)
		burst = 1;
	l->rate = rate;
	l->cap = (uint64_t)burst * NS;
	l->credit = l->cap;
	l->last_ns = now_ns;
}

static void refill(struct reg_limiter *l, uint64_t now_ns)
{
	uint64_t dt, room;

	if (now_ns <= l->last_ns)
		return;         /* a clock that goes back adds nothing */
	dt = now_ns - l->last_ns;
	l->last_ns = now_ns;
	room = l->cap - l->credit;
	if (l->rate == 0 || room == 0)
		return;
	/* dt * rate overflows only past ~584 years / rate: clamp first. */
	if (dt >= (room + l->rate - 1) / l->rate) {
		l->credit = l->cap;
		return;
	}
	l->credit += dt * l->rate;
}

/* See registry/limiter.h. */
bool reg_limiter_ready(struct reg_limiter *l, uint64_t now_ns)
{
	refill(l, now_ns);
	return l->credit >= NS;
}

/* See registry/limiter.h. */
bool reg_limiter_take(struct reg_limiter *l, uint64_t now_ns)
{
	if (!reg_limiter_ready(l, now_ns))
		return false;
	l->credit -= NS;
	return true;
}

/* See registry/limiter.h. */
uint64_t reg_limiter_wait_ns(struct reg_limiter *l, uint64_t now_ns)
{
	refill(l, now_ns);
	if (l->credit >= NS)
		return 0;
	if (l->rate == 0 || l->cap < NS)
		return UINT64_MAX;
	return (NS - l->credit + l->rate - 1) / l->rate;
}
