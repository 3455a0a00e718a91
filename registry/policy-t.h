/*
 * Types of authorization policies: a named document of allow/deny
 * statements over topic filters (with ${variables} taken from the
 * connection's certificate), and a set of them with their attachments to
 * CAs (the default of every certificate the CA signed) and to certificates
 * (which replaces the CA's).
 *
 * Documents and sets are immutable once built and shared by reference
 * count: the registrar builds a new set on every change and hands one
 * reference to each shard, which swaps it in (registry/policies.h).
 */
#ifndef VOUCH_REGISTRY_POLICY_T_H
#define VOUCH_REGISTRY_POLICY_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry/regfile-t.h"

#define POL_NAME_MAX    128     /* [A-Za-z0-9._-], 1..128 */
#define POL_STMT_MAX    64      /* statements per document */
#define POL_TOPICS_MAX  64      /* topic filters per statement */
#define POL_FILTER_MAX  1024    /* bytes of one topic filter template */

/* Actions (a statement's mask). */
enum pol_action {
	POL_PUBLISH = 1,
	POL_SUBSCRIBE = 2,
	POL_RECEIVE = 4,
};

/* Variables a template may use (a document's mask says which it uses). */
enum pol_var {
	POL_V_CLIENTID = 1,
	POL_V_CN = 2,
	POL_V_SERIAL = 4,
	POL_V_OU = 8,
	POL_V_CERTID = 16,
};

struct pol_stmt {
	bool deny;
	uint8_t actions;                /* enum pol_action bits */
	uint32_t n_topics;
	char **topics;                  /* templates, NUL-terminated */
};

/* One named policy. */
struct pol_doc {
	_Atomic uint32_t refs;
	char *name;
	uint64_t rev;                   /* unique per document version (this run) */
	bool admin;                     /* grants the admin role */
	uint32_t vars;                  /* enum pol_var bits used by the templates */
	int64_t created, updated;       /* unix seconds */
	uint32_t n_stmts;
	struct pol_stmt *stmts;
};

/* Where a policy is attached. */
enum pol_target {
	POL_T_CA = 1,
	POL_T_CERT = 2,
};

struct pol_attach {
	uint8_t kind;                   /* enum pol_target */
	uint8_t id[REG_ID_LEN];
	struct pol_doc *doc;            /* holds a reference */
};

/* Every policy and attachment as of one change. */
struct pol_set {
	_Atomic uint32_t refs;
	uint32_t n_docs;
	struct pol_doc **docs;          /* sorted by name; each holds a reference */
	uint32_t n_att;
	struct pol_attach *att;         /* sorted by (kind, id) */
};

#endif
