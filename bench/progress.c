/*
 * bench/progress.c - the status line: once a second while a mode runs,
 * on stderr ("\r"-updated on a terminal, one line a second otherwise),
 * unless --quiet. A --procs worker sends its counts to the parent instead
 * ("P ..." lines on its report pipe, see procs.c), which adds the workers'
 * latest counts up and prints one line. Main thread only.
 */
#include "bench/bench.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* See bench/bench.h. */
void prog_print(const struct bench_opts *o, const struct bprog *p, double el, bool final)
{
	char line[256];
	unsigned long long failed = p->settled > p->ready ? p->settled - p->ready : 0;
	int n;

	if (o->mode == BENCH_PUBSUB && (p->phase == PH_RUN || p->phase == PH_DRAIN))
		n = snprintf(line, sizeof line, "[%3.0fs] %s  sent %llu  delivered %llu/%llu", el,
			     p->phase == PH_RUN ? "publishing" : "draining",
			     (unsigned long long)p->sent, (unsigned long long)p->delivered,
			     (unsigned long long)p->expected);
	else if (o->mode == BENCH_SIGNUP)
		n = snprintf(line, sizeof line, "[%3.0fs] attempted %llu/%llu  registered %llu  "
			     "not registered %llu", el, (unsigned long long)p->settled,
			     (unsigned long long)p->target, (unsigned long long)p->ready, failed);
	else if (p->phase == PH_HOLD)
		n = snprintf(line, sizeof line, "[%3.0fs] open %llu/%llu  ping round %u  "
			     "answered %llu/%llu", el,
			     (unsigned long long)(p->ready > p->lost ? p->ready - p->lost : 0),
			     (unsigned long long)p->target, p->round,
			     (unsigned long long)p->pongs, (unsigned long long)p->pings);
	else
		n = snprintf(line, sizeof line, "[%3.0fs] connected %llu/%llu  failed %llu", el,
			     (unsigned long long)p->ready, (unsigned long long)p->target, failed);
	if (o->resume && n > 0 && (size_t)n < sizeof line)
		snprintf(line + n, sizeof line - (size_t)n, "  resumed %llu",
			 (unsigned long long)p->resumed);
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
	else
		fprintf(stderr, "%s\n", line);
}

/* See bench/bench.h. */
void bench_progress(struct bench *b, bool force)
{
	const struct bench_opts *o = b->o;
	uint64_t now = bench_now();

	if (!force && now - b->prog_at < 1000000000ull)
		return;
	if (!b->prog_at && !force) {
		b->prog_at = now; /* the first line after a second */
		return;
	}
	b->prog_at = now;
	struct bprog p = {
		.target = o->mode == BENCH_PUBSUB ? (uint64_t)o->publishers + (uint64_t)o->subscribers
						  : (uint64_t)o->connections,
		.settled = atomic_load(&b->settled),
		.ready = atomic_load(&b->ready),
		.lost = atomic_load(&b->lost),
		.resumed = atomic_load(&b->resumed),
		.pings = atomic_load(&b->pings),
		.pongs = atomic_load(&b->pongs),
		.round = atomic_load(&b->round),
		.phase = atomic_load(&b->phase),
		.sent = atomic_load(&b->sent),
		.delivered = atomic_load(&b->delivered),
		.expected = atomic_load(&b->expected),
	};
	if (o->worker) {
		dprintf(o->rep_fd, "P %llu %llu %llu %llu %llu %llu %llu %u %d\n",
			(unsigned long long)p.target, (unsigned long long)p.settled,
			(unsigned long long)p.ready, (unsigned long long)p.lost,
			(unsigned long long)p.resumed, (unsigned long long)p.pings,
			(unsigned long long)p.pongs, p.round, p.phase);
		return;
	}
	if (!o->quiet)
		prog_print(o, &p, (double)(now - b->t0) / 1e9, force);
}
