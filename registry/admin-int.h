/*
 * registry/admin-int.h - the admin API's answer and request helpers
 * (registry/admin.c), shared by the handlers kept in other files
 * (admin_crl.c, policy_api.c, admin-query.c) so that every endpoint answers
 * and checks its input the same way. Registrar thread.
 */
#ifndef VOUCH_REGISTRY_ADMIN_INT_H
#define VOUCH_REGISTRY_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "registry/admin.h"
#include "registry/regfile-t.h"

/* *out = {"error": code, "message": ...}; returns status. */
int admin_fail(json_t **out, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* 500 "out of memory". */
int admin_oom(json_t **out);

/* *out = v (built by the caller) and status; v NULL means allocation
 * failed: 500. */
int admin_ok(json_t **out, int status, json_t *v);

/* A time as an RFC 3339 string (null when it cannot be formatted). */
json_t *admin_jtime(int64_t t);

/* Bytes as a lowercase hex string (at most 64 bytes). */
json_t *admin_jhex(const uint8_t *p, size_t n);

/* The request's JSON object body, its members checked against allowed
 * (NULL-terminated; NULL allows any). Returns 0 with *obj, or an HTTP
 * status with *out set. */
int admin_body_object(const struct admin_req *rq, const char *const *allowed,
		      json_t **obj, json_t **out);

/* A certificate ID: 64 hex digits. 0 or -EINVAL. */
int admin_parse_id(const char *s, uint8_t id[REG_ID_LEN]);

/* Whether the request's method is m. */
bool admin_is(const struct admin_req *rq, const char *m);

/* 405 naming the method and path. */
int admin_no_method(json_t **out, const struct admin_req *rq);

/* The value of query parameter k ("" when given without one), or NULL. */
const char *admin_arg(const struct admin_req *rq, const char *k);

#endif
