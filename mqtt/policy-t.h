/*
 * Types of the authorization engine (mqtt/policy.c): a policy compiled for
 * one session (variables substituted once), its small cache of decisions
 * per topic, and the session's authorization state.
 */
#ifndef VOUCH_MQTT_POLICY_T_H
#define VOUCH_MQTT_POLICY_T_H

#include <stdbool.h>
#include <stdint.h>

/* In a local subscription entry's options byte (a bit MQTT reserves, never
 * set by a client: the codec refuses it): the subscription can match
 * topics its session may not receive, so each delivered topic is checked.
 * Without it every topic the subscription matches is receivable. */
#define POL_SUB_RECV_CHECK 0x40

/* One statement of a compiled policy: one topic filter, substituted. */
struct pol_cstmt {
	bool deny;
	uint8_t actions;               /* enum pol_action bits */
	uint16_t len;
	char *filter;
};

#define POL_CACHE_N     16         /* decisions cached per session (direct-mapped) */
#define POL_CACHE_TOPIC 96         /* longer topics are evaluated every time */

#define POL_C_PUB_KNOWN  1u
#define POL_C_PUB_OK     2u
#define POL_C_RECV_KNOWN 4u
#define POL_C_RECV_OK    8u

struct pol_cache_ent {
	uint64_t h;
	uint16_t len;
	uint8_t bits;                  /* POL_C_* */
	char t[POL_CACHE_TOPIC];
};

/* A policy compiled for one session. Statements whose substitution gave no
 * valid filter are left out (they match nothing). */
struct pol_compiled {
	uint32_t n;
	struct pol_cstmt *st;
	struct pol_cache_ent *cache;   /* POL_CACHE_N entries, made on first use */
};

/* The values of the variables for one session (NULL: absent). */
struct pol_vars {
	const char *clientid, *cn, *serial, *ou, *certid;
};

/* The certificate a session connected with (mutual TLS only). */
struct pol_cert {
	uint8_t cert_id[32];
	uint8_t ca_id[32];
	bool attrs;                    /* serial and ou read from the registry */
	char *cn, *serial, *ou;        /* NULL when absent / not read yet */
};

/* A session's authorization state (struct session.pol). The certificate's
 * part is allocated only for a client that has one: most of a fleet's
 * sessions may be plain, and this is in every session. */
struct pol_conn {
	struct pol_compiled *c;        /* NULL: no effective policy (all allowed
					* but the admin-only topics and $SYS publishes) */
	uint64_t rev;                  /* revision of the compiled document, 0 = none */
	struct pol_cert *cert;         /* NULL: no client certificate */
	bool admin;                    /* may subscribe to the admin-only topics */
};

#endif
