/*
 * Subscription tree types. A tree maps MQTT topic filters to subscription
 * entries; each broker shard owns a LOCAL tree (owner = session) and a
 * SUMMARY tree (owner = shard token, weight = the shard's member count in a
 * shared group). See mqtt/topic_tree.h for the functions.
 */
#ifndef VOUCH_MQTT_TOPIC_TREE_T_H
#define VOUCH_MQTT_TOPIC_TREE_T_H

#include <stdint.h>

/* One subscription entry, stored by value. An entry is identified by
 * (filter, shared group or none, owner). */
struct tt_sub {
	void *owner;       /* session (local tree) or shard token (summary) */
	uint32_t sub_id;   /* v5 subscription identifier, 0 = none */
	uint32_t weight;   /* for shared groups: share weight (>=1); 1 in local trees */
	uint8_t options;   /* MQTT subscription options byte (QoS, no-local, RAP, RH) */
};

struct tt_group;           /* a shared-subscription group at one filter: opaque */
struct tt_tree;            /* opaque; made by tt_new() */

#endif
