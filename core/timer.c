/*
 * Timer heap and clocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core/timer.h"

int timer_add(struct timer_heap *h, uint64_t at_ms, uint32_t kind, uint32_t id, uint32_t gen)
{
	if (h->n == h->cap) {
		uint32_t nc = h->cap ? h->cap * 2 : 256;
		struct timer_ent *nv = realloc(h->v, nc * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		h->v = nv;
		h->cap = nc;
	}
	uint32_t i = h->n++;
	struct timer_ent e = { at_ms, kind, id, gen };
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (h->v[p].at_ms <= at_ms)
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = e;
	return 0;
}

int timer_pop_due(struct timer_heap *h, uint64_t now_ms, struct timer_ent *out)
{
	if (h->n == 0 || h->v[0].at_ms > now_ms)
		return 0;
	*out = h->v[0];
	struct timer_ent last = h->v[--h->n];
	uint32_t i = 0;
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		uint64_t mv = last.at_ms;
		if (l < h->n && h->v[l].at_ms < mv) {
			m = l;
			mv = h->v[l].at_ms;
		}
		if (r < h->n && h->v[r].at_ms < mv)
			m = r;
		if (m == i)
			break;
		h->v[i] = h->v[m];
		i = m;
	}
	if (h->n > 0)
		h->v[i] = last;
	return 1;
}

uint64_t timer_next(const struct timer_heap *h)
{
	return h->n ? h->v[0].at_ms : UINT64_MAX;
}

void timer_free(struct timer_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

uint64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t time_wall_s(void)
{
	return (int64_t)time(NULL);
}
