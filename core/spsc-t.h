/*
 * Single-producer single-consumer ring of fixed-size messages: the only way
 * shards (and the registrar) talk to each other. Types only.
 */
#ifndef VOUCH_CORE_SPSC_T_H
#define VOUCH_CORE_SPSC_T_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

/* One message between threads: a type and three words the type defines. */
struct xmsg {
	uint32_t type;
	uint32_t a;
	void *p;
	uint64_t b;
	uint64_t c;
};

/*
 * Producer-owned fields and consumer-owned fields sit on separate cache
 * lines; `tail` is written by the producer only, `head` by the consumer
 * only. `armed` is the consumer's "wake me" flag (see spsc.h).
 */
struct spsc {
	/* read-mostly */
	uint32_t mask;
	struct xmsg *slots;
	/* producer line */
	alignas(64) _Atomic uint32_t tail;
	uint32_t head_cache;           /* producer's last view of head */
	/* consumer line */
	alignas(64) _Atomic uint32_t head;
	uint32_t tail_cache;           /* consumer's last view of tail */
	/* shared: set by the consumer before it drains, cleared by a producer
	 * that decides to wake it */
	alignas(64) atomic_bool armed;
};

#endif
