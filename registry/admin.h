/*
 * The admin HTTP/JSON API (registry/admin.c): libmicrohttpd in external
 * epoll mode, run by the registrar thread, so that every registry write an
 * administrator asks for is made by the registry's one writer, durable
 * before the answer.
 *
 * The request handler is separate from the HTTP glue (admin_handle), so
 * the unit tests call it directly with a request and get the status and
 * the JSON answer back.
 */
#ifndef VOUCH_REGISTRY_ADMIN_H
#define VOUCH_REGISTRY_ADMIN_H

#include <stddef.h>

#include <jansson.h>

struct registrar;
struct registrar_cfg;
struct admin;

#define ADMIN_BODY_MAX  (256u * 1024)   /* request bodies; more is 413 */
#define ADMIN_ARGS_MAX  16              /* query parameters per request */
#define ADMIN_LIST_MAX  1000            /* certificates per page */

/* One request, as the HTTP glue (or a test) hands it over. */
struct admin_req {
	const char *method;             /* "GET", "POST", ... */
	const char *path;               /* "/api/v1/cas", no query */
	const char *auth;               /* Authorization header or NULL */
	const char *arg_key[ADMIN_ARGS_MAX];
	const char *arg_val[ADMIN_ARGS_MAX];
	int n_args;
	const char *body;               /* NULL or body_len bytes */
	size_t body_len;
};

/*
 * Build the admin API of registrar g: read the token file (when
 * cfg->admin_token_file is set; one token a line, optionally "name:token",
 * blank lines and '#' comments skipped) and, when cfg->admin_listen is set
 * ("ADDR:PORT", "[V6]:PORT"; port 0 picks one), start the HTTP daemon
 * without threads of its own. Registrar thread. 0 or -errno with a message
 * in err.
 */
int admin_start(struct admin **out, struct registrar *g,
		const struct registrar_cfg *cfg, char *err, size_t errlen);

/* Stop the daemon (open connections are closed) and free. NULL is a
 * no-op. Registrar thread. */
void admin_stop(struct admin *a);

/* The fd to poll for input (the daemon's epoll fd), or -1. */
int admin_fd(const struct admin *a);

/* How long the loop may sleep before admin_run() must be called again, in
 * ms (-1: until the fd is readable). */
int admin_timeout_ms(struct admin *a);

/* Serve what is ready (accept, read, answer). Registrar thread. */
void admin_run(struct admin *a);

/* The port the daemon listens on, or 0. */
int admin_port(const struct admin *a);

/*
 * Answer one request: returns the HTTP status and sets *out to the JSON
 * answer (the caller's reference). Writes to the registry are made here,
 * on the calling (registrar) thread, and are durable before it returns.
 */
int admin_handle(struct admin *a, const struct admin_req *rq, json_t **out);

/*
 * Answer GET (or HEAD) /metrics, the Prometheus text exposition of
 * registry/metrics.h, which sits outside /api/v1 like /healthz but asks for
 * the same bearer token as the API when a token file is configured.
 * Returns the HTTP status: on 200 *text is the exposition (malloc'd, *len
 * bytes; the caller frees it) and *out is NULL; otherwise *text is NULL and
 * *out the JSON error (the caller's reference). Registrar thread.
 */
int admin_metrics(struct admin *a, const struct admin_req *rq, char **text, size_t *len,
		  json_t **out);

#endif
