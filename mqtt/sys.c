/*
 * $SYS/broker statistics, published retained by shard 0 every
 * --sys-interval seconds from the counters every shard keeps (relaxed
 * atomic loads of counters written only by their owners: no locks).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mqtt/broker.h"

static void sys_publish(struct bshard *bs, const char *topic, uint64_t value)
{
	char payload[32];
	int n = snprintf(payload, sizeof payload, "%" PRIu64, value);
	struct vmsg *m = vmsg_new((const uint8_t *)topic, (uint32_t)strlen(topic), NULL,
				  (const uint8_t *)payload, (uint32_t)n, 0, true, 0, bs->sh->now_ms);
	if (!m)
		return;
	route_publish(bs, m, NULL);
	vmsg_unref_mt(m);
}

static uint64_t ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

void sys_tick(struct bshard *bs)
{
	struct broker_rt *rt = bs->sh->rt;
	uint64_t conns = 0, in = 0, out = 0, dropped = 0, bin = 0, bout = 0, queued = 0, refused = 0;
	char topic[96];
	for (int i = 0; i < rt->n; i++) {
		struct shard_stats *st = &rt->shards[i].stats;
		uint64_t c = ld(&st->conns), mi = ld(&st->msgs_in), mo = ld(&st->msgs_out);
		conns += c;
		in += mi;
		out += mo;
		dropped += ld(&st->dropped);
		bin += ld(&st->bytes_in);
		bout += ld(&st->bytes_out);
		queued += ld(&st->queued);
		refused += ld(&st->refused);
		snprintf(topic, sizeof topic, "$SYS/broker/shard/%d/connections", i);
		sys_publish(bs, topic, c);
		snprintf(topic, sizeof topic, "$SYS/broker/shard/%d/messages", i);
		sys_publish(bs, topic, mi + mo);
		snprintf(topic, sizeof topic, "$SYS/broker/shard/%d/messages/received", i);
		sys_publish(bs, topic, mi);
		snprintf(topic, sizeof topic, "$SYS/broker/shard/%d/messages/sent", i);
		sys_publish(bs, topic, mo);
		snprintf(topic, sizeof topic, "$SYS/broker/shard/%d/loop/turns", i);
		sys_publish(bs, topic, ld(&st->turns));
	}
	sys_publish(bs, "$SYS/broker/clients/connected", conns);
	sys_publish(bs, "$SYS/broker/connections/refused", refused);
	sys_publish(bs, "$SYS/broker/messages/received", in);
	sys_publish(bs, "$SYS/broker/messages/sent", out);
	sys_publish(bs, "$SYS/broker/messages/dropped", dropped);
	sys_publish(bs, "$SYS/broker/messages/queued", queued);
	sys_publish(bs, "$SYS/broker/bytes/received", bin);
	sys_publish(bs, "$SYS/broker/bytes/sent", bout);
	sys_publish(bs, "$SYS/broker/uptime", (bs->sh->now_ms - rt->started_ms) / 1000u);
	sys_publish(bs, "$SYS/broker/shards", (uint64_t)rt->n);
}
