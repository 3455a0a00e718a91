/*
 * Expiry warnings: $SYS/certificates/expiring/<certificate ID> for each
 * ACTIVE device certificate inside the --expiry-warning-days window, once
 * per certificate per (UTC) day.
 *
 * A certificate is checked when it changes (rg_notify_dev calls
 * rg_expiry_check: a registration or an activation inside the window warns
 * at once) and by a sweep at start-up and then hourly (an indexed query of
 * the ACTIVE certificates whose notAfter is inside the window), so
 * a certificate that enters the window while nothing happens to it is
 * warned within the hour. What was warned today is kept in memory: after a
 * restart a certificate may be warned a second time that day.
 *
 * Registrar thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/hmap.h"
#include "core/log.h"
#include "registry/query.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"

#define SWEEP_EVERY_S   3600

struct warned {
	uint8_t id[REG_ID_LEN];
	int64_t day;
};

struct rg_expiry {
	struct hmap warned;     /* struct warned */
	int64_t window_s;
	int64_t next_sweep;     /* unix seconds; 0 = at the first tick */
	int64_t today;
	uint64_t events;
};

static void warned_key(const void *v, const void **k, size_t *len)
{
	*k = ((const struct warned *)v)->id;
	*len = REG_ID_LEN;
}

static void forget_all(struct rg_expiry *x)
{
	uint32_t it = 0;
	void *v;

	while ((v = hmap_next(&x->warned, &it)))
		free(v);
	hmap_free(&x->warned);
	hmap_init(&x->warned, warned_key);
}

/* See registry/registrar-int.h. */
int rg_expiry_init(struct registrar *g, uint32_t warning_days)
{
	struct rg_expiry *x = calloc(1, sizeof *x);

	if (!x)
		return -ENOMEM;
	hmap_init(&x->warned, warned_key);
	x->window_s = (int64_t)(warning_days ? warning_days : 30) * 86400;
	g->expiry = x;
	return 0;
}

/* See registry/registrar-int.h. */
void rg_expiry_free(struct registrar *g)
{
	if (!g->expiry)
		return;
	forget_all(g->expiry);
	hmap_free(&g->expiry->warned);
	free(g->expiry);
	g->expiry = NULL;
}

static void warn(struct registrar *g, const struct reg_device *d, int64_t now)
{
	char id[2 * REG_ID_LEN + 1], topic[96];
	json_t *o = rg_dev_json(d);

	tls_hex(d->id, REG_ID_LEN, id);
	snprintf(topic, sizeof topic, "$SYS/certificates/expiring/%s", id);
	if (o && (json_object_set_new(o, "notAfter", json_integer(d->not_after)) ||
		  json_object_set_new(o, "daysLeft", json_integer((d->not_after - now) / 86400)) ||
		  json_object_set_new(o, "timestamp", json_integer(now)))) {
		json_decref(o);
		o = NULL;
	}
	if (rg_publish_json(g, topic, o))
		g->expiry->events++;
}

/* Warn about d if it is due: ACTIVE, in the window, not warned today. */
static void check(struct registrar *g, const struct reg_device *d, int64_t now)
{
	struct rg_expiry *x = g->expiry;
	struct warned *w;

	if (d->status != REG_ACTIVE || d->not_after < now || d->not_after > now + x->window_s)
		return;
	if (now / 86400 != x->today) {
		x->today = now / 86400;
		forget_all(x);
	}
	w = hmap_get(&x->warned, d->id, REG_ID_LEN);
	if (w && w->day == x->today)
		return;
	if (!w) {
		w = malloc(sizeof *w);
		if (!w || (memcpy(w->id, d->id, REG_ID_LEN), hmap_put(&x->warned, w)) != 0) {
			free(w);
			return;         /* out of memory: not warned, tried again */
		}
	}
	w->day = x->today;
	warn(g, d, now);
}

/* See registry/registrar-int.h. */
void rg_expiry_check(struct registrar *g, const struct reg_device *d)
{
	if (g->expiry && g->n)
		check(g, d, (int64_t)time(NULL));
}

struct sweep {
	struct registrar *g;
	int64_t now;
};

static int sweep_one(void *ctx, const struct reg_device *d)
{
	struct sweep *sw = ctx;

	check(sw->g, d, sw->now);
	return 0;
}

/* See registry/registrar-int.h. */
void rg_expiry_tick(struct registrar *g, int64_t now)
{
	struct rg_expiry *x = g->expiry;

	if (!x || !g->n || now < x->next_sweep)
		return;
	x->next_sweep = now + SWEEP_EVERY_S;
	/* the ACTIVE certificates inside the window, from the query
	 * indexes (registry/query.h): no scan of the registry */
	struct reg_query q;
	uint64_t total;

	reg_query_init(&q);
	q.status = REG_ACTIVE;
	q.na_from = now;
	q.na_to = now + x->window_s;
	q.limit = UINT64_MAX;
	reg_query(g->reg, &q, &total, sweep_one, &(struct sweep){ g, now });
}
