/*
 * Authorization policies: parsing and checking documents, immutable sets
 * of policies and attachments, their file (<data dir>/policies.json,
 * replaced atomically and durably on every change), the store the
 * registrar keeps, and the admin API's /policies endpoints
 * (registry/policy_api.c). The engine that applies a policy to a
 * connection is mqtt/policy.c.
 *
 * Threads: documents and sets are immutable; the _mt functions may run on
 * any thread. The store (pol_store_*) and the API belong to the registrar
 * thread.
 */
#ifndef VOUCH_REGISTRY_POLICIES_H
#define VOUCH_REGISTRY_POLICIES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "registry/policy-t.h"

#define POL_FILE_NAME "policies.json"

struct registrar;
struct admin_req;
struct reg_by;

/* ---- documents ---------------------------------------------------------- */

/*
 * Check one topic filter template: a valid MQTT filter ('+' and '#' whole
 * levels, '#' last, not empty, no "$share/") in which ${clientid}, ${cn},
 * ${serial}, ${ou} and ${certid} may stand for (part of) a level. Sets
 * *vars to the variables used. 0, or -EINVAL with a message in err.
 */
int pol_template_check(const char *t, size_t len, uint32_t *vars, char *err, size_t errlen);

/*
 * Build a document from its JSON form {"name", "statements": [{"effect":
 * "allow"|"deny", "actions": [...], "topics": [...]}], "admin"}. name, when
 * not NULL, is the name to use (the document's own "name" member, if any,
 * must then be equal). Every field is checked; unknown members are
 * refused. Returns 0 with *out (one reference; rev and times unset), or
 * -EINVAL with a message naming the member in err, or -ENOMEM.
 */
int pol_doc_parse(json_t *o, const char *name, struct pol_doc **out, char *err, size_t errlen);

/* The document as JSON (name, admin, statements, revision, times); NULL
 * when out of memory. */
json_t *pol_doc_json(const struct pol_doc *d);

/* A name is 1..POL_NAME_MAX of [A-Za-z0-9._-]. */
bool pol_name_valid(const char *s);

void pol_doc_ref_mt(struct pol_doc *d);
void pol_doc_unref_mt(struct pol_doc *d);

/* ---- sets ----------------------------------------------------------------- */

void pol_set_ref_mt(struct pol_set *s);
/* Drop a reference; the last one frees the set. NULL is a no-op. */
void pol_set_unref_mt(struct pol_set *s);

/* The document of this name, or NULL. Any thread. */
struct pol_doc *pol_set_find_mt(const struct pol_set *s, const char *name);

/* The policy attached to (kind, id), or NULL. Any thread. */
struct pol_doc *pol_set_attached_mt(const struct pol_set *s, enum pol_target kind,
				    const uint8_t id[REG_ID_LEN]);

/*
 * The effective policy of a certificate: its own when one is attached,
 * else its CA's default, else NULL. *source (may be NULL) gets POL_T_CERT,
 * POL_T_CA or 0. s may be NULL (no policies). Any thread.
 */
struct pol_doc *pol_set_effective_mt(const struct pol_set *s, const uint8_t cert_id[REG_ID_LEN],
				     const uint8_t ca_id[REG_ID_LEN], int *source);

/* How many attachments name this document. Any thread. */
uint32_t pol_set_uses_mt(const struct pol_set *s, const struct pol_doc *d);

/* ---- the file --------------------------------------------------------------- */

/*
 * Load a set from path. A missing file is an empty set; anything else
 * that is not a complete, valid file (bad JSON, bad document, duplicate
 * name, attachment to an unknown policy) is -EBADMSG with the reason in
 * err. Documents get revisions from *rev (incremented). 0 with *out.
 */
int pol_set_load(const char *path, uint64_t *rev, struct pol_set **out, char *err, size_t errlen);

/* Write the set to path durably (temporary file, fsync, rename, directory
 * fsync). 0 or -errno. */
int pol_set_save(const struct pol_set *s, const char *path);

/* ---- the registrar's store ---------------------------------------------------- */

struct pol_store {
	char *path;                     /* NULL: kept in memory only */
	uint64_t next_rev;
	struct pol_set *cur;            /* the current set (one reference) */
	struct pol_set *initial;        /* the set loaded at start (one reference,
					 * kept until pol_store_close: shards take
					 * theirs from it when they start) */
};

/*
 * Open the store of data_dir (NULL or "": memory only) and load its file.
 * Registrar thread (or main before it starts). 0, or -EBADMSG / -errno
 * with a message in err: a damaged file refuses the start-up.
 */
int pol_store_open(struct pol_store **out, const char *data_dir, char *err, size_t errlen);
void pol_store_close(struct pol_store *st);

/*
 * Make `next` the current set: written durably first; on failure nothing
 * changes and next is released. Takes next's reference. 0 or -errno.
 * Registrar thread.
 */
int pol_store_commit(struct pol_store *st, struct pol_set *next);

/*
 * A new set: a copy of s (NULL = empty) with the document `put` added or
 * replacing the one of its name (NULL: none), the document named `drop`
 * removed (NULL: none), and the attachment of (kind, id) set to `att`
 * (kind 0: no change; att NULL: detach). Takes no reference of put/att
 * (it takes its own). NULL when out of memory.
 */
struct pol_set *pol_set_with(const struct pol_set *s, struct pol_doc *put, const char *drop,
			     enum pol_target kind, const uint8_t *id, struct pol_doc *att);

/* ---- the registrar's side ----------------------------------------------------- */

/* A new reference to the policy set shards start with, or NULL when there
 * is no store. Any thread (the set is never freed before the registrar). */
struct pol_set *pol_initial_ref_mt(struct registrar *g);

/* Tell every shard about the current set (RX_POLICY, one reference each).
 * Registrar thread. */
void rg_notify_policy(struct registrar *g);

/*
 * The admin API of policies: /policies[/{name}[/attach|/detach]] and
 * /cas/{id}/policy, /certificates/{id}/policy (seg: the n path segments
 * after /api/v1/). Returns the HTTP status with *out. Registrar thread.
 */
int pol_admin_handle(struct registrar *g, const struct admin_req *rq, char (*seg)[80], int n,
		     const struct reg_by *by, json_t **out);

#endif
