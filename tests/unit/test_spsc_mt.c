/*
 * SPSC ring tests, also run under ThreadSanitizer (the _mt suffix):
 * order and completeness across threads, full-ring back-pressure, and the
 * arm / should_wake protocol (a consumer that sleeps after arming is always
 * woken for what is pushed later: no lost wake-up).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/spsc.h"

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void test_single_thread(void)
{
	struct spsc q;
	CHECK(spsc_init(&q, 5) == 0, "init");
	CHECK(q.mask == 7, "capacity rounds up to a power of two: mask %u", q.mask);
	struct xmsg m = { 0 }, out;
	CHECK(spsc_pop_mt(&q, &out) == 0, "empty pops nothing");
	for (uint32_t i = 0; i < 8; i++) {
		m.a = i;
		CHECK(spsc_push_mt(&q, &m) == 0, "push %u", i);
	}
	m.a = 99;
	CHECK(spsc_push_mt(&q, &m) == -EAGAIN, "full ring refuses");
	for (uint32_t i = 0; i < 8; i++) {
		CHECK(spsc_pop_mt(&q, &out) == 1 && out.a == i, "pop %u in order", i);
	}
	CHECK(spsc_pop_mt(&q, &out) == 0, "empty again");
	/* wrap-around many times */
	for (uint32_t i = 0; i < 1000; i++) {
		m.a = i;
		m.b = (uint64_t)i * 3;
		CHECK(spsc_push_mt(&q, &m) == 0, "push");
		CHECK(spsc_pop_mt(&q, &out) == 1 && out.a == i && out.b == (uint64_t)i * 3, "pop");
	}
	/* wake protocol, single thread: armed -> one wake, then none until re-armed */
	spsc_arm_mt(&q);
	CHECK(spsc_should_wake_mt(&q), "armed consumer is woken");
	CHECK(!spsc_should_wake_mt(&q), "only once");
	spsc_arm_mt(&q);
	CHECK(spsc_should_wake_mt(&q), "re-armed");
	spsc_destroy(&q);
}

#define N_MSGS 2000000u

struct pc {
	struct spsc q;
	int efd;
	uint64_t wakes, sleeps, timeouts;
};

static void *producer(void *arg)
{
	struct pc *pc = arg;
	struct xmsg m;
	memset(&m, 0, sizeof m);
	for (uint32_t i = 0; i < N_MSGS;) {
		m.a = i;
		m.c = ~(uint64_t)i;
		if (spsc_push_mt(&pc->q, &m) != 0) {
			/* full: make sure the consumer runs */
			if (spsc_should_wake_mt(&pc->q)) {
				uint64_t one = 1;
				ssize_t w = write(pc->efd, &one, sizeof one);
				(void)w;
				pc->wakes++;
			}
			continue;
		}
		i++;
		/* wake in batches, as a shard does at the end of its turn */
		if ((i & 63) == 0 || i == N_MSGS) {
			if (spsc_should_wake_mt(&pc->q)) {
				uint64_t one = 1;
				ssize_t w = write(pc->efd, &one, sizeof one);
				(void)w;
				pc->wakes++;
			}
		}
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct pc *pc = arg;
	uint32_t next = 0;
	struct xmsg m;
	while (next < N_MSGS) {
		spsc_arm_mt(&pc->q);
		int got = 0;
		while (spsc_pop_mt(&pc->q, &m)) {
			if (m.a != next || m.c != ~(uint64_t)next) {
				fprintf(stderr, "FAIL: got %u, want %u\n", m.a, next);
				failures++;
				return NULL;
			}
			next++;
			got++;
		}
		if (got)
			continue;
		/* Empty after arming: sleep until woken. A lost wake-up shows
		 * as a timeout while the producer has pushed more. */
		struct pollfd p = { .fd = pc->efd, .events = POLLIN };
		pc->sleeps++;
		if (poll(&p, 1, 2000) == 0) {
			pc->timeouts++;
			if (spsc_pop_mt(&pc->q, &m)) {
				fprintf(stderr, "FAIL: lost wake-up at %u\n", next);
				failures++;
				return NULL;
			}
		} else {
			uint64_t v;
			ssize_t r = read(pc->efd, &v, sizeof v);
			(void)r;
		}
	}
	return NULL;
}

static void test_threads(uint32_t cap)
{
	struct pc pc;
	memset(&pc, 0, sizeof pc);
	CHECK(spsc_init(&pc.q, cap) == 0, "init");
	pc.efd = eventfd(0, EFD_CLOEXEC);
	pthread_t a, b;
	pthread_create(&b, NULL, consumer, &pc);
	pthread_create(&a, NULL, producer, &pc);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	CHECK(pc.timeouts == 0, "no consumer timeout (lost wake-up) with capacity %u", cap);
	printf("  capacity %u: %u messages, %llu wakes, %llu sleeps\n", cap, N_MSGS,
	       (unsigned long long)pc.wakes, (unsigned long long)pc.sleeps);
	close(pc.efd);
	spsc_destroy(&pc.q);
}

int main(void)
{
	test_single_thread();
	test_threads(16);
	test_threads(8192);
	if (failures) {
		fprintf(stderr, "test_spsc_mt: %d failures\n", failures);
		return 1;
	}
	printf("test_spsc_mt: ok\n");
	return 0;
}
