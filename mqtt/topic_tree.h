/*
 * Subscription tree: MQTT topic filters -> subscription entries, and the
 * matching of a PUBLISH's topic name against them (section 4.7), including
 * shared subscriptions (section 4.8.2) and weighted picking of one member of
 * a shared group.
 *
 * Single-threaded: a tree belongs to one shard and every function here runs
 * on that shard's thread only. No locks.
 *
 * Callbacks of tt_match() must not subscribe or unsubscribe on the tree being
 * matched (those calls return -EBUSY while a match runs on that tree, and so
 * does a nested tt_match on it); defer such changes until tt_match returns.
 * Pointers handed to callbacks (entries, groups) stay valid until the next
 * subscribe/unsubscribe on the tree.
 */
#ifndef VOUCH_MQTT_TOPIC_TREE_H
#define VOUCH_MQTT_TOPIC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/topic_tree-t.h"

/* A new empty tree, or NULL when out of memory. */
struct tt_tree *tt_new(void);
/* Frees the tree and every entry and group in it (owners are not touched).
 * NULL is accepted. Iterative: any depth is fine. */
void tt_free(struct tt_tree *t);

#define TT_CREATED     1u  /* the owner had no entry for this filter (and group) before */
#define TT_FIRST       2u  /* the filter (for shared: this group at this filter) had no entries before */
#define TT_LAST        4u  /* after unsubscribe: the filter (or group) has no entries left */

/*
 * Adds or replaces the (filter, group, owner) entry. filter is the full MQTT
 * filter as the client sent it, possibly "$share/grp/a/+/b"; non-shared
 * entries and each group at a filter are counted separately for TT_FIRST.
 * The entry is copied; a weight of 0 is stored as 1.
 * Returns 0 and sets *flags (may be NULL) to TT_CREATED / TT_FIRST; -EINVAL
 * for a malformed filter ('+' or '#' not a whole level, '#' not last, bad
 * $share form); -ENOMEM (tree unchanged); -EBUSY inside tt_match.
 */
int tt_subscribe(struct tt_tree *t, const char *filter, size_t len,
		 const struct tt_sub *s, unsigned *flags);

/*
 * Removes the (filter, group, owner) entry and prunes nodes left empty.
 * Returns 0 and sets *flags (may be NULL) to TT_LAST when the filter (or
 * group) has no entries left; -ENOENT if the owner had no such entry;
 * -EINVAL for a malformed filter; -EBUSY inside tt_match. Never allocates.
 */
int tt_unsubscribe(struct tt_tree *t, const char *filter, size_t len,
		   void *owner, unsigned *flags);

typedef void (*tt_sub_fn)(void *ctx, const struct tt_sub *s);
typedef void (*tt_group_fn)(void *ctx, struct tt_group *g);

/*
 * Matches a topic NAME. Every matching non-shared entry is reported through
 * on_sub, one by one; every matching shared group once through on_group (the
 * caller then picks with tt_group_pick or inspects it). Either callback may
 * be NULL (the call is then only counted). An owner with several matching
 * filters is reported once per filter.
 * '$' rule: a topic starting with '$' is not matched by filters starting
 * with '+' or '#' [MQTT-4.7.2-1]. "a/#" matches "a" too.
 * Returns the number of callbacks made, or -EBUSY if called from a callback
 * of a tt_match on the same tree. Never allocates; no recursion.
 */
int tt_match(struct tt_tree *t, const char *topic, size_t len,
	     tt_sub_fn on_sub, tt_group_fn on_group, void *ctx);

/* A stable 64-bit key of a group: XXH3 of "group\0filter-without-$share-prefix",
 * equal across trees and shards (never 0). */
uint64_t tt_group_key(const struct tt_group *g);
/* The same key computed from a "$share/g/f" string; 0 if not a (valid) shared filter. */
uint64_t tt_group_key_of(const char *filter, size_t len);

/*
 * Picks one member of a group: smooth weighted round-robin (nginx-style)
 * over the members' weights, so that over many picks each member's share is
 * proportional to its weight and successive picks interleave (plain
 * round-robin, O(1) per pick, while every weight is 1).
 * skip: optional predicate; members for which skip(ctx, s) is true are not
 * picked (e.g. an offline session or a full queue); NULL picks among all.
 * Returns the member, or NULL if the group has none left to pick.
 */
const struct tt_sub *tt_group_pick(struct tt_group *g,
				   bool (*skip)(void *ctx, const struct tt_sub *s),
				   void *ctx);

/* Calls fn for every member of the group; returns the number of members. */
int tt_group_foreach(struct tt_group *g, tt_sub_fn fn, void *ctx);

/* Number of members of the group. */
uint32_t tt_group_size(const struct tt_group *g);

/* The group's name (not NUL-terminated); *len gets its length. */
const char *tt_group_name(const struct tt_group *g, size_t *len);

/* Number of entries in the tree, all filters and groups together. */
size_t tt_count(const struct tt_tree *t);

/*
 * The group of a "$share/g/f" filter, or NULL if it has no members (or the
 * filter is not a valid shared filter).
 */
struct tt_group *tt_group_find(struct tt_tree *t, const char *filter, size_t len);

/*
 * The owner's entry for (filter, group), or NULL. The pointer is valid until
 * the next subscribe/unsubscribe on the tree.
 */
const struct tt_sub *tt_lookup(struct tt_tree *t, const char *filter, size_t len,
			       void *owner);

/*
 * Number of entries of a filter: for "$share/g/f" the members of group g at
 * f, otherwise the non-shared entries of f. -EINVAL if malformed.
 */
int tt_filter_count(struct tt_tree *t, const char *filter, size_t len);

/*
 * Splits a shared filter. Returns 1 for "$share/<group>/<rest>" with a
 * non-empty group free of '+', '#' (and '/') and a non-empty rest, setting
 * the outputs (views into filter; outputs may be NULL); 0 if the filter is
 * not shared (outputs untouched); -EINVAL if it starts with "$share/" but is
 * malformed [MQTT-4.8.2-1] [MQTT-4.8.2-2].
 */
int tt_parse_shared(const char *filter, size_t len, const char **group,
		    size_t *glen, const char **rest, size_t *rlen);

/*
 * Checks a topic filter (without any $share prefix): '+' and '#' must each
 * be a whole level, '#' the last one [MQTT-4.7.1-1] [MQTT-4.7.1-2]; the
 * filter must not be empty [MQTT-4.7.3-1]. Returns its number of levels, or
 * -EINVAL.
 */
int tt_filter_levels(const char *filter, size_t len);

#endif
