/*
 * Retained-message store types. The store is a trie of topic levels whose
 * values are opaque pointers (the broker keeps a refcounted message there).
 * Functions in mqtt/retain.h.
 */
#ifndef VOUCH_MQTT_RETAIN_T_H
#define VOUCH_MQTT_RETAIN_T_H

#include <stddef.h>

struct rt_store;   /* opaque; made by rt_new() */

/* Called by rt_match for each retained topic matching the filter. topic is
 * not NUL-terminated and valid only during the call. */
typedef void (*rt_match_fn)(void *ctx, const char *topic, size_t tlen, void *val);

#endif
