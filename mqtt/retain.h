/*
 * Retained messages: topic name -> opaque value, and the listing of every
 * retained topic that matches a subscription's filter (section 3.3.1.3).
 *
 * Single-threaded: a store belongs to one shard; call everything from that
 * shard's thread. rt_match callbacks must not modify the store they walk
 * (rt_put returns -EBUSY then, rt_set hands the value back); defer changes.
 */
#ifndef VOUCH_MQTT_RETAIN_H
#define VOUCH_MQTT_RETAIN_H

#include <stddef.h>

#include "mqtt/retain-t.h"

/* A new empty store, or NULL when out of memory. */
struct rt_store *rt_new(void);

/* Frees the store; release (may be NULL) is called once per stored value.
 * NULL is accepted. Iterative: any depth is fine. */
void rt_free(struct rt_store *r, void (*release)(void *val));

/*
 * Sets the retained value of a topic name (val NULL deletes). Returns the
 * pointer the caller must now release: the previous value (or NULL if
 * none) — or val itself if it could not be stored (out of memory, topic
 * longer than 65535 bytes, or called from an rt_match callback).
 */
void *rt_set(struct rt_store *r, const char *topic, size_t len, void *val);

/*
 * Like rt_set with an error: stores val (NULL deletes) and puts the
 * previous value (or NULL) in *old. Returns 0, -ENOMEM (store unchanged),
 * -EINVAL (topic longer than 65535 bytes) or -EBUSY (inside rt_match).
 */
int rt_put(struct rt_store *r, const char *topic, size_t len, void *val, void **old);

/* The retained value of a topic name, or NULL. */
void *rt_get(struct rt_store *r, const char *topic, size_t len);

/*
 * Calls fn for every retained topic matching a FILTER ('+' and '#'
 * wildcards; topics starting with '$' are not matched by a first level of
 * '+' or '#' [MQTT-4.7.2-1]; "a/#" matches "a"). The filter should be
 * valid (see tt_filter_levels); a malformed one matches as best it can.
 * fn may be NULL (matches are then only counted).
 * Returns the number of calls, or -EBUSY if nested in another rt_match on
 * the same store. Never allocates; no recursion.
 */
int rt_match(struct rt_store *r, const char *filter, size_t len, rt_match_fn fn, void *ctx);

/* Number of retained values. */
size_t rt_count(const struct rt_store *r);

#endif
