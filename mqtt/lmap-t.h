/*
 * Level map types: the children of a trie node, found by topic level.
 *
 * Both tries of the broker (the subscription tree, mqtt/topic_tree.c, and the
 * retained-message store, mqtt/retain.c) keep a node's children in a
 * struct lmap. A node type starts with a struct lmap_node and stores its
 * level's bytes right after itself, at offset `koff` (= sizeof the node
 * type), so that one allocation holds a node and its level.
 *
 * Shape, chosen for a million children at one node as much as for one:
 *   0 children   kids == NULL
 *   1 child      kids IS the child (no allocation)
 *   2..8         kids is an array, scanned linearly (no hashing)
 *   more         kids is an open-addressing table (linear probing, power of
 *                two slots, load <= 3/4) indexed by the level's XXH3 hash
 */
#ifndef VOUCH_MQTT_LMAP_T_H
#define VOUCH_MQTT_LMAP_T_H

#include <stdint.h>

/* Largest array scanned linearly; above this a node's children are hashed. */
#define LMAP_SMALL 8u

struct lmap_node {
	uint32_t h;     /* low 32 bits of XXH3 of the level */
	uint16_t len;   /* level length in bytes (a topic is at most 65535) */
	uint16_t spare; /* free for the node type's use */
};

struct lmap {
	void *kids;     /* see the shapes above */
	uint32_t n;     /* number of children */
	uint32_t cap;   /* 0, 1, array capacity (<= LMAP_SMALL) or table slots */
};

#endif
