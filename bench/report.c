/*
 * bench/report.c - what vouch-bench prints: durations in readable units,
 * percentile lines, the JSON forms of histograms and failure counts, and
 * the broker's resident memory from /proc. Main thread only.
 */
#include "bench/bench.h"
#include "mqtt/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const fail_names[BF__COUNT] = {
	[BF_TCP] = "tcp",
	[BF_TLS] = "tls",
	[BF_CLOSED] = "closed",
	[BF_TIMEOUT] = "timeout",
	[BF_PROTOCOL] = "protocol",
	[BF_REFUSED] = "refused",
	[BF_DISCONNECT] = "disconnect",
};

/* See bench/bench.h. */
const char *rep_fail_name(enum bfail why)
{
	return (unsigned)why < BF__COUNT ? fail_names[why] : "?";
}

/* See bench/bench.h. */
const char *rep_dur(char *buf, size_t len, double ns)
{
	if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
	return buf;
}

/* See bench/bench.h. */
void rep_hist_line(FILE *f, const char *label, const struct hist *h)
{
	char a[32], b[32], c[32], d[32], m[32];

	if (!h->count) {
		fprintf(f, "  %-12s no samples\n", label);
		return;
	}
	fprintf(f, "  %-12s p50 %s  p90 %s  p99 %s  max %s  (mean %s, %llu samples)\n", label,
		rep_dur(a, sizeof a, (double)hist_pct(h, 50)),
		rep_dur(b, sizeof b, (double)hist_pct(h, 90)),
		rep_dur(c, sizeof c, (double)hist_pct(h, 99)),
		rep_dur(d, sizeof d, (double)hist_pct(h, 100)),
		rep_dur(m, sizeof m, hist_mean(h)), (unsigned long long)h->count);
}

static json_t *us(double ns)
{
	return json_real((double)(long long)(ns / 10.0 + 0.5) / 100.0); /* 0.01 us */
}

/* See bench/bench.h. */
json_t *rep_hist_json(const struct hist *h)
{
	json_t *o = json_object();
	json_object_set_new(o, "count", json_integer((json_int_t)h->count));
	json_object_set_new(o, "min_us", us((double)(h->count ? h->min : 0)));
	json_object_set_new(o, "p50_us", us((double)hist_pct(h, 50)));
	json_object_set_new(o, "p90_us", us((double)hist_pct(h, 90)));
	json_object_set_new(o, "p99_us", us((double)hist_pct(h, 99)));
	json_object_set_new(o, "p999_us", us((double)hist_pct(h, 99.9)));
	json_object_set_new(o, "max_us", us((double)hist_pct(h, 100)));
	json_object_set_new(o, "mean_us", us(hist_mean(h)));
	return o;
}

/* See bench/bench.h. */
void rep_json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
	if (s) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

/* See bench/bench.h. */
json_t *rep_fail_json(const uint64_t *counts)
{
	json_t *o = json_object();
	for (int i = 0; i < BF__COUNT; i++)
		if (counts[i])
			json_object_set_new(o, fail_names[i], json_integer((json_int_t)counts[i]));
	return o;
}

/* See bench/bench.h. */
uint8_t rep_wire_code(const struct bench_opts *o, uint8_t rc)
{
	return o->version == MQTT_V5 ? rc : mqtt_connack_v3_code(rc);
}

/* See bench/bench.h. */
void rep_wire_codes(const struct bench_opts *o, const uint64_t *in, uint64_t *out)
{
	memset(out, 0, 256 * sizeof *out);
	for (int i = 0; i < 256; i++)
		out[rep_wire_code(o, (uint8_t)i)] += in[i];
}

/* See bench/bench.h. */
json_t *rep_codes_json(const uint64_t *codes)
{
	json_t *o = json_object();
	for (int i = 0; i < 256; i++)
		if (codes[i]) {
			char k[8];
			snprintf(k, sizeof k, "0x%02x", i);
			json_object_set_new(o, k, json_integer((json_int_t)codes[i]));
		}
	return o;
}

/* See bench/bench.h. */
void rep_fail_text(FILE *f, const uint64_t *counts)
{
	bool any = false;
	for (int i = 0; i < BF__COUNT; i++) {
		if (!counts[i])
			continue;
		fprintf(f, "%s%s %llu", any ? ", " : "", fail_names[i], (unsigned long long)counts[i]);
		any = true;
	}
	if (!any)
		fputs("none", f);
}

/* See bench/bench.h. */
void rep_target(FILE *f, const struct bench_opts *o)
{
	fprintf(f, "%s:%u %s, MQTT %s", o->host, o->port,
		!o->tls ? "plain" : o->tls_version == 12 ? "TLS 1.2" : o->tls_version == 13 ? "TLS 1.3" : "TLS",
		o->version == 5 ? "5.0" : "3.1.1");
}

/* See bench/bench.h. */
const char *rep_first_err(const struct bench *b)
{
	for (int i = 0; i < b->nth; i++)
		if (b->th[i].first_err[0])
			return b->th[i].first_err;
	return NULL;
}

/* See bench/bench.h. */
long rep_rss_kb(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	long kb = -ENOENT;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}
