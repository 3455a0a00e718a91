/*
 * Growing ring buffers (FIFOs of fixed-size entries: head, n, cap), as the
 * output segments of a connection, a session's deliveries, the
 * registrar's backlogs and the acknowledgements waiting for other shards
 * keep them. Each owner keeps its own typed struct and indexing; this is
 * the one place that grows one.
 */
#ifndef VOUCH_CORE_FIFO_H
#define VOUCH_CORE_FIFO_H

#include <stddef.h>
#include <stdint.h>

/* A buffer of twice *cap entries of `size` bytes (first_cap when empty)
 * holding v's n entries from *head on, oldest first: v is freed, *cap
 * and *head (0) are updated. NULL when out of memory (v is kept). */
void *fifo_grow(void *v, uint32_t *cap, uint32_t *head, uint32_t n, size_t size, uint32_t first_cap);

#endif
