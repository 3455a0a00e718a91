/*
 * SPSC ring implementation (Lamport ring with cached indexes).
 */
#include <errno.h>
#include <stdlib.h>

#include "core/spsc.h"

int spsc_init(struct spsc *q, uint32_t capacity)
{
	uint32_t n = 2;
	while (n < capacity)
		n <<= 1;
	q->slots = calloc(n, sizeof *q->slots);
	if (!q->slots)
		return -ENOMEM;
	q->mask = n - 1;
	atomic_init(&q->tail, 0);
	atomic_init(&q->head, 0);
	atomic_init(&q->armed, true);
	q->head_cache = 0;
	q->tail_cache = 0;
	return 0;
}

void spsc_destroy(struct spsc *q)
{
	free(q->slots);
	q->slots = NULL;
}

int spsc_push_mt(struct spsc *q, const struct xmsg *m)
{
	uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (t - q->head_cache > q->mask) {
		q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (t - q->head_cache > q->mask)
			return -EAGAIN;
	}
	q->slots[t & q->mask] = *m;
	/* seq_cst: pairs with the consumer's arm-then-load (see spsc.h) */
	atomic_store_explicit(&q->tail, t + 1, memory_order_seq_cst);
	return 0;
}

int spsc_pop_mt(struct spsc *q, struct xmsg *m)
{
	uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
	if (h == q->tail_cache) {
		q->tail_cache = atomic_load_explicit(&q->tail, memory_order_seq_cst);
		if (h == q->tail_cache)
			return 0;
	}
	*m = q->slots[h & q->mask];
	atomic_store_explicit(&q->head, h + 1, memory_order_release);
	return 1;
}

void spsc_arm_mt(struct spsc *q)
{
	atomic_store_explicit(&q->armed, true, memory_order_seq_cst);
}

bool spsc_should_wake_mt(struct spsc *q)
{
	if (!atomic_load_explicit(&q->armed, memory_order_seq_cst))
		return false;
	return atomic_exchange_explicit(&q->armed, false, memory_order_seq_cst);
}
