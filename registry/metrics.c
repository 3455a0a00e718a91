/*
 * GET /metrics: the broker's counters in the Prometheus text exposition
 * format 0.0.4 (one "# HELP" and one "# TYPE" line per family, then its
 * samples, all contiguous). Rendered on the registrar thread on each
 * scrape, from where the numbers already live:
 *   - the shards' struct shard_stats (relaxed atomics written only by their
 *     owners: a scrape is a snapshot, not a transaction), per shard;
 *   - the TLS server's handshake counters (tls_server_stats_mt);
 *   - the registrar's signup outcomes (struct rg_stats, registrar thread);
 *   - the registry's per-status counts (reg_counts_mt);
 *   - jemalloc's allocated and resident bytes, when jemalloc is the
 *     allocator (not in the sanitizer builds).
 * Families whose source is absent (no shards in a unit test) keep their
 * HELP and TYPE lines with no samples, so the set of names is stable.
 */
#include "registry/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef VOUCH_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "core/shard-t.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/server.h"

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, const char *label, const char *value,
		   uint64_t v)
{
	if (label)
		fprintf(f, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, value, v);
	else
		fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* ---- shards ----------------------------------------------------------------- */

static const struct shard_metric {
	const char *name, *type, *help;
	size_t off;
} shard_metrics[] = {
#define SM(n, t, f, h) { n, t, h, offsetof(struct shard_stats, f) }
	SM("vouch_connections", "gauge", conns, "Open client connections, by shard."),
	SM("vouch_connections_accepted_total", "counter", accepted, "Connections accepted, by shard."),
	SM("vouch_connections_direct", "gauge", direct,
	   "Open connections on io_uring direct descriptors (not counted against the open-files limit), by shard."),
	SM("vouch_xshard_backlog", "gauge", backlog,
	   "Messages waiting for a full ring to another shard, by shard (flow control pauses publishers past --max-shard-backlog)."),
	SM("vouch_flow_paused_total", "counter", flow_paused,
	   "Times a connection's input was paused until the shard's cross-shard backlog drained or (3.1.1) its unacknowledged messages came under --receive-maximum, by shard."),
	SM("vouch_connections_refused_total", "counter", refused,
	   "Connections refused at accept (max-connections or shutting down), by shard."),
	SM("vouch_messages_received_total", "counter", msgs_in, "PUBLISH packets received from clients, by shard."),
	SM("vouch_messages_sent_total", "counter", msgs_out, "PUBLISH packets sent to clients, by shard."),
	SM("vouch_received_bytes_total", "counter", bytes_in, "Bytes read from client sockets (TLS included), by shard."),
	SM("vouch_sent_bytes_total", "counter", bytes_out, "Bytes written to client sockets (TLS included), by shard."),
	SM("vouch_messages_dropped_total", "counter", dropped,
	   "Messages dropped because a session's queue was full, by shard."),
	SM("vouch_messages_queued", "gauge", queued, "Messages queued for sessions and not yet sent, by shard."),
	SM("vouch_fingerprint_cache_hits_total", "counter", fp_hits,
	   "Connect decisions answered by the shard's certificate fingerprint cache, by shard."),
	SM("vouch_fingerprint_cache_misses_total", "counter", fp_misses,
	   "Connect decisions that had to read the registry, by shard."),
	SM("vouch_presence_events_dropped_total", "counter", presence_dropped,
	   "Presence events lost because the registrar's ring was full, by shard."),
#undef SM
};

static void shard_family(FILE *f, const struct broker_rt *rt, const struct shard_metric *m)
{
	char shard[16];

	family(f, m->name, m->type, m->help);
	for (int i = 0; rt && i < rt->n; i++) {
		_Atomic uint64_t *v = (_Atomic uint64_t *)((char *)&rt->shards[i].stats + m->off);

		snprintf(shard, sizeof shard, "%d", i);
		sample(f, m->name, "shard", shard, atomic_load_explicit(v, memory_order_relaxed));
	}
}

/* ---- TLS ---------------------------------------------------------------------- */

static void tls_families(FILE *f, struct tls_server *tls)
{
	struct tls_stats st = { 0 };

	if (tls)
		tls_server_stats_mt(tls, &st);
	family(f, "vouch_tls_handshakes_total", "counter",
	       "TLS handshakes completed, by type: full, or resumed (session ticket or ID).");
	sample(f, "vouch_tls_handshakes_total", "type", "full", st.handshakes_full);
	sample(f, "vouch_tls_handshakes_total", "type", "resumed", st.handshakes_resumed);
	family(f, "vouch_tls_handshake_failures_total", "counter",
	       "TLS handshakes that failed, by reason.");
	for (int r = TLS_FAIL_NONE + 1; r < TLS_FAIL_N; r++)
		sample(f, "vouch_tls_handshake_failures_total", "reason",
		       tls_fail_name((enum tls_fail)r), st.fail[r]);
}

/* ---- registrar and registry ------------------------------------------------- */

static void signup_family(FILE *f, const struct rg_stats *s)
{
	family(f, "vouch_signups_total", "counter",
	       "Automatic registrations decided by the registrar, by outcome: registered "
	       "(accepted), exists (registered meanwhile), over_limit and refused "
	       "(refused), error.");
	sample(f, "vouch_signups_total", "outcome", "registered", s->registered);
	sample(f, "vouch_signups_total", "outcome", "exists", s->exists);
	sample(f, "vouch_signups_total", "outcome", "over_limit", s->over_limit);
	sample(f, "vouch_signups_total", "outcome", "refused", s->refused);
	sample(f, "vouch_signups_total", "outcome", "error", s->errors);
}

static void registry_families(FILE *f, const struct registry *reg)
{
	static const enum reg_status dev_st[] = {
		REG_ACTIVE, REG_INACTIVE, REG_PENDING_ACTIVATION, REG_REVOKED,
	};
	struct reg_counts c = { 0 };

	if (reg)
		reg_counts_mt(reg, &c);
	family(f, "vouch_registry_certificates", "gauge",
	       "Device certificates in the registry, by status.");
	for (size_t i = 0; i < sizeof dev_st / sizeof dev_st[0]; i++)
		sample(f, "vouch_registry_certificates", "status", reg_status_name(dev_st[i]),
		       c.dev_status[dev_st[i]]);
	family(f, "vouch_registry_cas", "gauge", "CA certificates in the registry, by status.");
	sample(f, "vouch_registry_cas", "status", reg_status_name(REG_ACTIVE), c.ca_status[REG_ACTIVE]);
	sample(f, "vouch_registry_cas", "status", reg_status_name(REG_INACTIVE), c.ca_status[REG_INACTIVE]);
	family(f, "vouch_registry_records", "gauge",
	       "Records in the registry file (every change is one record).");
	sample(f, "vouch_registry_records", NULL, NULL, c.records);
	family(f, "vouch_registry_file_bytes", "gauge", "Bytes of log in the registry file.");
	sample(f, "vouch_registry_file_bytes", NULL, NULL, c.file_bytes);
}

/* ---- memory ------------------------------------------------------------------- */

#ifndef VOUCH_NO_JEMALLOC
static void memory_families(FILE *f)
{
	uint64_t epoch = 1;
	size_t esz = sizeof epoch, allocated, resident, sz = sizeof(size_t);

	/* jemalloc's statistics are a snapshot refreshed by writing "epoch". */
	if (mallctl("epoch", &epoch, &esz, &epoch, esz) != 0 ||
	    mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0 ||
	    mallctl("stats.resident", &resident, &sz, NULL, 0) != 0)
		return;
	family(f, "vouch_jemalloc_allocated_bytes", "gauge",
	       "Bytes allocated by the application (jemalloc stats.allocated).");
	sample(f, "vouch_jemalloc_allocated_bytes", NULL, NULL, allocated);
	family(f, "vouch_jemalloc_resident_bytes", "gauge",
	       "Bytes in physically resident data pages mapped by jemalloc (stats.resident).");
	sample(f, "vouch_jemalloc_resident_bytes", NULL, NULL, resident);
}
#else
/* Sanitizer builds: the sanitizer's allocator, no jemalloc statistics. */
static void memory_families(FILE *f)
{
	(void)f;
}
#endif

/* See registry/metrics.h. */
int metrics_render(struct registrar *g, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof shard_metrics / sizeof shard_metrics[0]; i++)
		shard_family(f, g->rt, &shard_metrics[i]);
	tls_families(f, g->tls);
	signup_family(f, &g->stats);
	registry_families(f, g->reg);
	memory_families(f);
	/* A stream that failed to grow reports it on fclose (or ferror). */
	if (ferror(f) | fclose(f)) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}
