/*
 * The signup limiter (registry/limiter.h): a token bucket counted in
 * nano-tokens so that a refill of dt nanoseconds adds exactly rate * dt
 * nano-tokens and nothing is lost to rounding, however often it is asked;
 * and a ring of the last `rate` signup times, so that the one-second
 * window holds at most `rate` of them.
 */
#include "registry/limiter.h"

#include <errno.h>
#include <stdlib.h>

#define NS 1000000000ull

/* See registry/limiter.h. */
int reg_limiter_init(struct reg_limiter *l, uint32_t rate, uint32_t burst,
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
	l->win_n = l->win_head = 0;
	l->win = NULL;
	if (rate && !(l->win = calloc(rate, sizeof *l->win)))
		return -ENOMEM;
	return 0;
}

/* See registry/limiter.h. */
void reg_limiter_free(struct reg_limiter *l)
{
	free(l->win);
	l->win = NULL;
}

/* Nanoseconds until the window has room: the oldest of the last `rate`
 * signups must be a full second old. */
static uint64_t window_wait(const struct reg_limiter *l, uint64_t now_ns)
{
	if (l->rate == 0 || l->win_n < l->rate)
		return 0;
	uint64_t due = l->win[l->win_head] + NS;
	return due > now_ns ? due - now_ns : 0;
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
	return l->credit >= NS && window_wait(l, now_ns) == 0;
}

/* See registry/limiter.h. */
bool reg_limiter_take(struct reg_limiter *l, uint64_t now_ns)
{
	if (!reg_limiter_ready(l, now_ns))
		return false;
	l->credit -= NS;
	if (l->rate == 0) {
		/* the burst alone: no window */
	} else if (l->win_n < l->rate) {
		l->win[(l->win_head + l->win_n) % l->rate] = now_ns;
		l->win_n++;
	} else {
		l->win[l->win_head] = now_ns;
		l->win_head = (l->win_head + 1) % (uint32_t)l->rate;
	}
	return true;
}

/* See registry/limiter.h. */
uint64_t reg_limiter_wait_ns(struct reg_limiter *l, uint64_t now_ns)
{
	refill(l, now_ns);
	if (l->rate == 0 || l->cap < NS)
		return UINT64_MAX;
	uint64_t w = window_wait(l, now_ns);
	if (l->credit >= NS)
		return w;
	uint64_t b = (NS - l->credit + l->rate - 1) / l->rate;
	return b > w ? b : w;
}
