/*
 * bench/hist.c - log-linear latency histograms.
 *
 * A value v (nanoseconds) below 2^(HIST_SUB+1) has a bucket of its own.
 * Above, v = m * 2^s with m in [2^HIST_SUB, 2^(HIST_SUB+1)): the bucket is
 * picked by the exponent s and the top HIST_SUB+1 bits m, so every bucket
 * is at most 1/2^HIST_SUB of its values wide. Recording is a few shifts;
 * merging is an addition per bucket. Each loop thread keeps its own and
 * the main thread merges them when the loops are done.
 */
#include "bench/bench.h"

#include <string.h>

#define LIN (2u << HIST_SUB)   /* values with a bucket each */

static unsigned bucket_of(uint64_t v)
{
	if (v < LIN)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB + 1 */
	unsigned s = e - HIST_SUB;
	unsigned m = (unsigned)(v >> s);                  /* [64, 128) */
	return LIN + (e - HIST_SUB - 1) * (1u << HIST_SUB) + (m - (1u << HIST_SUB));
}

/* Middle of bucket i's range of values. */
static uint64_t bucket_mid(unsigned i)
{
	if (i < LIN)
		return i;
	unsigned k = i - LIN;
	unsigned e = k / (1u << HIST_SUB) + HIST_SUB + 1;
	unsigned s = e - HIST_SUB;
	uint64_t m = (1u << HIST_SUB) + k % (1u << HIST_SUB);
	return (m << s) + ((1ull << s) >> 1);
}

/* See bench/bench.h. */
void hist_init(struct hist *h)
{
	memset(h, 0, sizeof *h);
}

/* See bench/bench.h. */
void hist_add(struct hist *h, uint64_t v)
{
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += (double)v;
	h->b[bucket_of(v)]++;
}

/* See bench/bench.h. */
void hist_merge(struct hist *dst, const struct hist *src)
{
	if (!src->count)
		return;
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
}

/* See bench/bench.h. */
uint64_t hist_pct(const struct hist *h, double p)
{
	if (!h->count)
		return 0;
	if (p >= 100.0)
		return h->max;
	/* the smallest value with at least p % of the samples at or below */
	uint64_t want = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = bucket_mid(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

/* See bench/bench.h. */
double hist_mean(const struct hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
