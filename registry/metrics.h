/*
 * Metrics in the Prometheus text exposition format 0.0.4 (registry/
 * metrics.c), served by the admin API at GET /metrics. Every number is
 * read where it already lives: the shards' relaxed-atomic counters, the
 * TLS server's counters, the registrar's own signup counts, the registry's
 * per-status counts and jemalloc's statistics. Nothing is kept twice.
 */
#ifndef VOUCH_REGISTRY_METRICS_H
#define VOUCH_REGISTRY_METRICS_H

#include <stddef.h>

struct registrar;

#define METRICS_PATH            "/metrics"
#define METRICS_CONTENT_TYPE    "text/plain; version=0.0.4; charset=utf-8"

/*
 * Render every metric of registrar g (its shards when g->rt is set, its
 * TLS server when g->tls is set) as one text exposition. On success *out
 * is a malloc'd, NUL-terminated buffer of *len bytes that the caller
 * frees. Registrar thread (it reads the registrar's own counters).
 * 0 or -ENOMEM.
 */
int metrics_render(struct registrar *g, char **out, size_t *len);

#endif
