/*
 * tools/ctl_api.c - vouchctl's admin API groups: `ca` (registration code,
 * CA registration with proof of possession, activation, automatic
 * registration, deletion) and `cert` (manual registration, queries, the
 * status actions, client-ID binding, history), as a client of the broker's
 * HTTP/JSON admin API (registry/admin.c) over libcurl.
 *
 *	vouchctl [--json] <ca|cert> <command> [--url URL] [--token-file F] ...
 *
 * The API's address comes from --url, else $VOUCH_URL, else
 * http://127.0.0.1:8081; the bearer token from --token-file, else
 * $VOUCH_TOKEN_FILE (the file's first token line; "name:token" lines give
 * their token part). Text output is a table for lists and "key: value"
 * lines otherwise; --json prints the API's answer as it came. An HTTP
 * error prints the server's message and exits 1.
 */
#include "tools/ctl.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry/admin-query.h"
#include "tls/cert.h"
#include "tls/pki.h"

#define DEFAULT_URL "http://127.0.0.1:8081"
#define FILE_MAX (1u << 20)
#define TOKEN_MAX 1024

enum {
	O_URL = 0x300, O_TOKEN_FILE, O_CA_CERT, O_VER_CERT, O_AUTO, O_AUTO_STATUS,
	O_STATUS, O_CLIENT_ID, O_CA, O_CN, O_OU, O_SERIAL, O_EXPIRING, O_EXPIRED,
	O_LIMIT, O_OFFSET, O_ROTATE,
};

/* cert list filters passed to the API as they are (it checks them); time
 * ones are checked here too, so a typo is a usage error (docs/queries.md) */
static const struct qpass {
	const char *flag, *key;
	bool time;
} qpass[] = {
	{ "id", "certificateId", false }, { "ca-serial", "caSerial", false },
	{ "cn-prefix", "cnPrefix", false }, { "o", "o", false },
	{ "o-prefix", "oPrefix", false }, { "ou-prefix", "ouPrefix", false },
	{ "not-before-from", "notBeforeFrom", true }, { "not-before-to", "notBeforeTo", true },
	{ "not-after-from", "notAfterFrom", true }, { "not-after-to", "notAfterTo", true },
};
#define N_QPASS (sizeof qpass / sizeof qpass[0])
#define O_QPASS 0x380

#define OPT(n, a, v) { n, a, NULL, v }
#define CONN_OPTS OPT("url", required_argument, O_URL), \
	OPT("token-file", required_argument, O_TOKEN_FILE)
#define END_OPTS { NULL, 0, NULL, 0 }
#define CONN_HELP \
	"  --url URL         admin API (default $VOUCH_URL or " DEFAULT_URL ")\n" \
	"  --token-file F    bearer token file (default $VOUCH_TOKEN_FILE)\n"

/* Everything an API command may be given. */
struct api_args {
	const char *url, *token_file;
	const char *ca_cert, *ver_cert, *auto_status, *status, *client_id, *ca;
	const char *cn, *ou, *serial;
	int auto_on;            /* -1 unset, 0 off, 1 on */
	long expiring, limit, offset;
	bool expired, rotate;
	const char *qpass[N_QPASS];
	char **pos;             /* operands */
	int npos;
};

static const struct ctl_cmd *find_cmd(const struct ctl_ctx *ctx);

/* Parse the command's options; CTL_OK, CTL_USAGE, or -1 after --help. */
static int parse(struct ctl_ctx *ctx, int argc, char **argv, const struct option *opts,
		 int min_pos, int max_pos, struct api_args *a)
{
	const struct ctl_cmd *cmd = find_cmd(ctx);
	int c;

	memset(a, 0, sizeof *a);
	a->auto_on = -1;
	a->expiring = -1;
	a->limit = -1;
	a->offset = -1;
	while ((c = ctl_getopt(ctx, cmd, argc, argv, opts)) != -1) {
		switch (c) {
		case CTL_OPT_HELP:
			return -1;
		case CTL_OPT_BAD:
			return CTL_USAGE;
		}
		if (c >= O_QPASS && c < O_QPASS + (int)N_QPASS) {
			const struct qpass *p = &qpass[c - O_QPASS];
			int64_t t;
			if (p->time && admq_time(optarg, &t))
				return ctl_usage(ctx, "--%s must be unix seconds or an RFC 3339 time such as 2025-01-31T00:00:00Z, not '%s'",
						 p->flag, optarg);
			a->qpass[c - O_QPASS] = optarg;
			continue;
		}
		switch (c) {
		case O_URL: a->url = optarg; break;
		case O_TOKEN_FILE: a->token_file = optarg; break;
		case O_CA_CERT: a->ca_cert = optarg; break;
		case O_VER_CERT: a->ver_cert = optarg; break;
		case O_AUTO_STATUS: a->auto_status = optarg; break;
		case O_STATUS: a->status = optarg; break;
		case O_CLIENT_ID: a->client_id = optarg; break;
		case O_CA: a->ca = optarg; break;
		case O_CN: a->cn = optarg; break;
		case O_OU: a->ou = optarg; break;
		case O_SERIAL: a->serial = optarg; break;
		case O_EXPIRED: a->expired = true; break;
		case O_ROTATE: a->rotate = true; break;
		case O_AUTO:
			if (!strcmp(optarg, "on"))
				a->auto_on = 1;
			else if (!strcmp(optarg, "off"))
				a->auto_on = 0;
			else
				return ctl_usage(ctx, "--auto must be on or off, not '%s'", optarg);
			break;
		case O_EXPIRING:
			if (ctl_parse_int(optarg, 0, 36500, &a->expiring) < 0)
				return ctl_usage(ctx, "--expiring-within must be 0..36500 days");
			break;
		case O_LIMIT:
			if (ctl_parse_int(optarg, 1, 1000, &a->limit) < 0)
				return ctl_usage(ctx, "--limit must be 1..1000");
			break;
		case O_OFFSET:
			if (ctl_parse_int(optarg, 0, 1000000000, &a->offset) < 0)
				return ctl_usage(ctx, "bad --offset '%s'", optarg);
			break;
		default:
			return ctl_usage(ctx, "unexpected option");
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < min_pos)
		return ctl_usage(ctx, "missing operand");
	if (a->npos > max_pos)
		return ctl_usage(ctx, "unexpected operand '%s'", a->pos[max_pos]);
	return CTL_OK;
}

/* A status name for --status / --auto-status, checked against `allowed`
 * (upper-cased; "PENDING" abbreviates PENDING_ACTIVATION). */
static int status_arg(struct ctl_ctx *ctx, const char *opt, const char *s,
		      const char *const *allowed, char *out, size_t cap)
{
	char list[128] = "";
	size_t i;

	for (i = 0; s[i] && i + 1 < cap; i++)
		out[i] = (char)toupper((unsigned char)(s[i] == '-' ? '_' : s[i]));
	out[i] = '\0';
	if (!strcmp(out, "PENDING"))
		snprintf(out, cap, "PENDING_ACTIVATION");
	for (i = 0; allowed[i]; i++) {
		if (!strcmp(out, allowed[i]))
			return CTL_OK;
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			 i ? ", " : "", allowed[i]);
	}
	return ctl_usage(ctx, "%s must be one of %s, not '%s'", opt, list, s);
}

/* See tools/ctl.h. */
int ctl_id_arg(struct ctl_ctx *ctx, const char *s, char out[65])
{
	size_t n = 0;

	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n == 64)
			return ctl_usage(ctx, "a certificate ID is 64 hex digits");
		out[n++] = (char)tolower((unsigned char)*s);
	}
	out[n] = '\0';
	if (n != 64)
		return ctl_usage(ctx, "a certificate ID is 64 hex digits");
	return CTL_OK;
}

/* ---- HTTP ----------------------------------------------------------------- */

struct buf {
	char *p;
	size_t n;
	bool nomem;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t add = sz * n;
	char *q;

	if (b->n + add > (64u << 20))
		return 0;       /* a runaway answer: stop */
	q = realloc(b->p, b->n + add + 1);
	if (!q) {
		b->nomem = true;
		return 0;
	}
	memcpy(q + b->n, p, add);
	b->p = q;
	b->n += add;
	b->p[b->n] = '\0';
	return add;
}

/* The token of a token file: the first line that is not blank or a '#'
 * comment; "name:token" gives token. */
static int read_token(struct ctl_ctx *ctx, const char *path, char *tok, size_t cap)
{
	char *data, *line, *save = NULL;
	size_t len;
	int rc = tls_pki_file_read(path, FILE_MAX, &data, &len);

	if (rc < 0)
		return ctl_fail(ctx, "cannot read the token file %s: %s", path, strerror(-rc));
	for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *s = line, *e, *colon;

		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (!*s || *s == '#')
			continue;
		colon = strchr(s, ':');
		if (colon && colon > s && colon[1])
			s = colon + 1;
		if (strlen(s) >= cap) {
			free(data);
			return ctl_fail(ctx, "the token in %s is too long", path);
		}
		snprintf(tok, cap, "%s", s);
		free(data);
		return CTL_OK;
	}
	free(data);
	return ctl_fail(ctx, "the token file %s holds no token", path);
}

/*
 * One API call: method, path (with query), optional JSON body (taken).
 * On success (2xx) *out is the parsed answer and CTL_OK is returned;
 * otherwise the failure is printed and CTL_ERR returned.
 */
static int api(struct ctl_ctx *ctx, const struct api_args *a, const char *method,
	       const char *path, json_t *body, json_t **out)
{
	const char *base = a->url ? a->url : getenv("VOUCH_URL");
	const char *tf = a->token_file ? a->token_file : getenv("VOUCH_TOKEN_FILE");
	char tok[TOKEN_MAX], *url = NULL, *payload = NULL, *hdr = NULL;
	struct curl_slist *h = NULL;
	struct buf b = { 0 };
	long status = 0;
	json_error_t je;
	CURLcode cc;
	CURL *c = NULL;
	int rc = CTL_ERR;

	*out = NULL;
	if (!base || !*base)
		base = DEFAULT_URL;
	if (tf && *tf && read_token(ctx, tf, tok, sizeof tok) != CTL_OK) {
		json_decref(body);
		return CTL_ERR;
	}
	if (asprintf(&url, "%.*s%s", (int)(strlen(base) - (base[strlen(base) - 1] == '/')),
		     base, path) < 0) {
		url = NULL;
		goto nomem;
	}
	if (body && !(payload = json_dumps(body, JSON_COMPACT)))
		goto nomem;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(c = curl_easy_init()))
		goto nomem;
	h = curl_slist_append(h, "Accept: application/json");
	if (payload)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (tf && *tf) {
		if (asprintf(&hdr, "Authorization: Bearer %s", tok) < 0) {
			hdr = NULL;
			goto nomem;
		}
		h = curl_slist_append(h, hdr);
		explicit_bzero(tok, sizeof tok);
	}
	if (!h)
		goto nomem;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (payload) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		rc = ctl_fail(ctx, "cannot reach the admin API at %s: %s", base,
			      b.nomem ? "out of memory" : curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*out = b.p ? json_loadb(b.p, b.n, 0, &je) : NULL;
	if (status >= 200 && status < 300 && *out) {
		rc = CTL_OK;
		goto done;
	}
	if (status >= 200 && status < 300) {
		rc = ctl_fail(ctx, "the admin API at %s answered something that is not JSON", base);
	} else {
		json_t *m = json_object_get(*out, "message");

		if (json_is_string(m))
			rc = ctl_fail(ctx, "%s (HTTP %ld)", json_string_value(m), status);
		else
			rc = ctl_fail(ctx, "HTTP %ld from %s%s", status, base, path);
	}
	json_decref(*out);
	*out = NULL;
	goto done;
nomem:
	rc = ctl_fail(ctx, "out of memory");
done:
	curl_slist_free_all(h);
	if (c)
		curl_easy_cleanup(c);
	if (hdr) {
		explicit_bzero(hdr, strlen(hdr));
		free(hdr);
	}
	free(url);
	free(payload);
	free(b.p);
	json_decref(body);
	return rc;
}

/* ---- output ------------------------------------------------------------------ */

static const char *sget(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : "";
}

/* Print rows of `arr` (objects) as a table of the given columns. */
static void table(json_t *arr, const char *const *heads, const char *const *keys,
		  size_t ncol)
{
	size_t w[8] = { 0 }, i, k;
	json_t *e;

	for (k = 0; k < ncol; k++)
		w[k] = strlen(heads[k]);
	json_array_foreach(arr, i, e) {
		for (k = 0; k < ncol; k++) {
			json_t *v = json_object_get(e, keys[k]);
			size_t l = json_is_string(v) ? strlen(json_string_value(v)) :
				   json_is_boolean(v) ? 3 : 0;

			if (l > w[k])
				w[k] = l;
		}
	}
	for (k = 0; k < ncol; k++)
		printf("%-*s%s", k + 1 < ncol ? (int)w[k] : 0, heads[k], k + 1 < ncol ? "  " : "\n");
	json_array_foreach(arr, i, e) {
		for (k = 0; k < ncol; k++) {
			json_t *v = json_object_get(e, keys[k]);
			const char *s = json_is_string(v) ? json_string_value(v) :
					json_is_true(v) ? "on" : json_is_false(v) ? "off" : "";

			printf("%-*s%s", k + 1 < ncol ? (int)w[k] : 0, *s ? s : "-",
			       k + 1 < ncol ? "  " : "\n");
		}
	}
}

/* Emit a single record; in text mode the PEM goes last, as a block. */
static int emit_record(struct ctl_ctx *ctx, json_t *o)
{
	char *pem = NULL;
	int rc;

	if (!ctx->json && json_is_string(json_object_get(o, "certificatePem"))) {
		pem = strdup(sget(o, "certificatePem"));
		json_object_del(o, "certificatePem");
	}
	rc = ctl_emit(ctx, o);
	if (pem && rc == CTL_OK)
		fputs(pem, stdout);
	free(pem);
	return rc;
}

/* Read a certificate file (PEM, or DER turned into PEM) into a string. */
static int cert_file(struct ctl_ctx *ctx, const char *path, char **pem)
{
	char *data;
	size_t len;
	int rc = tls_pki_file_read(path, FILE_MAX, &data, &len);

	if (rc < 0)
		return ctl_fail(ctx, "cannot read %s: %s", path, strerror(-rc));
	if (memmem(data, len, "-----BEGIN", 10)) {
		*pem = data;
		return CTL_OK;
	}
	/* DER */
	size_t cap = tls_pem_size("CERTIFICATE", len);
	char *s = malloc(cap);

	if (!s || tls_pem_encode("CERTIFICATE", (const uint8_t *)data, len, s, cap) < 0) {
		free(s);
		free(data);
		return ctl_fail(ctx, "%s is neither PEM nor a certificate", path);
	}
	free(data);
	*pem = s;
	return CTL_OK;
}

/* ---- ca ---------------------------------------------------------------------- */

static const char *const ca_statuses[] = { "ACTIVE", "INACTIVE", NULL };
static const char *const auto_statuses[] = { "ACTIVE", "PENDING_ACTIVATION", NULL };
static const char *const dev_statuses[] = { "ACTIVE", "INACTIVE", "PENDING_ACTIVATION", NULL };
static const char *const any_statuses[] = {
	"ACTIVE", "INACTIVE", "PENDING_ACTIVATION", "REVOKED", NULL
};

static const struct option opts_conn[] = { CONN_OPTS, END_OPTS };
static const struct option opts_code[] = { CONN_OPTS, OPT("rotate", no_argument, O_ROTATE), END_OPTS };
static const struct option opts_ca_register[] = {
	CONN_OPTS, OPT("ca-cert", required_argument, O_CA_CERT),
	OPT("verification-cert", required_argument, O_VER_CERT),
	OPT("auto", required_argument, O_AUTO),
	OPT("auto-status", required_argument, O_AUTO_STATUS),
	OPT("status", required_argument, O_STATUS), END_OPTS
};
static const struct option opts_ca_auto[] = {
	CONN_OPTS, OPT("status", required_argument, O_STATUS), END_OPTS
};

static int cmd_ca_code(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct api_args a;
	json_t *o;
	int rc = parse(ctx, argc, argv, opts_code, 0, 0, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	rc = api(ctx, &a, a.rotate ? "POST" : "GET", "/api/v1/registration-code", NULL, &o);
	if (rc)
		return rc;
	if (ctx->json)
		return ctl_emit(ctx, o);
	puts(sget(o, "registrationCode"));
	json_decref(o);
	return CTL_OK;
}

static int cmd_ca_register(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct api_args a;
	char st[32] = "", ast[32] = "", *cp = NULL, *vp = NULL;
	json_t *body, *o;
	int rc = parse(ctx, argc, argv, opts_ca_register, 0, 0, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if (!a.ca_cert || !a.ver_cert)
		return ctl_usage(ctx, "--ca-cert and --verification-cert are needed");
	if (a.status && (rc = status_arg(ctx, "--status", a.status, ca_statuses, st, sizeof st)))
		return rc;
	if (a.auto_status &&
	    (rc = status_arg(ctx, "--auto-status", a.auto_status, auto_statuses, ast, sizeof ast)))
		return rc;
	if ((rc = cert_file(ctx, a.ca_cert, &cp)) || (rc = cert_file(ctx, a.ver_cert, &vp))) {
		free(cp);
		return rc;
	}
	body = json_pack("{s:s, s:s}", "caCertificate", cp, "verificationCertificate", vp);
	free(cp);
	free(vp);
	if (!body)
		return ctl_fail(ctx, "out of memory");
	if (a.auto_on >= 0)
		json_object_set_new(body, "autoRegistration", json_boolean(a.auto_on));
	if (*ast)
		json_object_set_new(body, "autoStatus", json_string(ast));
	if (*st)
		json_object_set_new(body, "status", json_string(st));
	rc = api(ctx, &a, "POST", "/api/v1/cas", body, &o);
	return rc ? rc : emit_record(ctx, o);
}

static int cmd_ca_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const heads[] = {
		"CA CERTIFICATE ID", "STATUS", "AUTO", "AUTO STATUS", "COMMON NAME", "NOT AFTER"
	};
	static const char *const keys[] = {
		"certificateId", "status", "autoRegistration", "autoStatus", "commonName", "notAfter"
	};
	struct api_args a;
	json_t *o;
	int rc = parse(ctx, argc, argv, opts_conn, 0, 0, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	rc = api(ctx, &a, "GET", "/api/v1/cas", NULL, &o);
	if (rc)
		return rc;
	if (ctx->json)
		return ctl_emit(ctx, o);
	table(json_object_get(o, "cas"), heads, keys, 6);
	json_decref(o);
	return CTL_OK;
}

/* GET/POST/DELETE on /api/v1/<coll>/<id>[/<action>]. */
static int id_call(struct ctl_ctx *ctx, int argc, char **argv, const char *coll,
		   const char *method, const char *action)
{
	struct api_args a;
	char id[65], path[160];
	json_t *o;
	int rc = parse(ctx, argc, argv, opts_conn, 1, 1, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = ctl_id_arg(ctx, a.pos[0], id)))
		return rc;
	snprintf(path, sizeof path, "/api/v1/%s/%s%s%s", coll, id, action ? "/" : "",
		 action ? action : "");
	rc = api(ctx, &a, method, path, NULL, &o);
	return rc ? rc : emit_record(ctx, o);
}

static int cmd_ca_get(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "cas", "GET", NULL);
}

static int cmd_ca_activate(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "cas", "POST", "activate");
}

static int cmd_ca_deactivate(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "cas", "POST", "deactivate");
}

static int cmd_ca_delete(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "cas", "DELETE", NULL);
}

static int cmd_ca_auto(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct api_args a;
	char id[65], path[160], st[32] = "";
	json_t *body, *o;
	int rc = parse(ctx, argc, argv, opts_ca_auto, 2, 2, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = ctl_id_arg(ctx, a.pos[0], id)))
		return rc;
	if (strcmp(a.pos[1], "on") && strcmp(a.pos[1], "off"))
		return ctl_usage(ctx, "say on or off, not '%s'", a.pos[1]);
	if (a.status && (rc = status_arg(ctx, "--status", a.status, auto_statuses, st, sizeof st)))
		return rc;
	body = json_pack("{s:b}", "enabled", !strcmp(a.pos[1], "on"));
	if (!body)
		return ctl_fail(ctx, "out of memory");
	if (*st)
		json_object_set_new(body, "status", json_string(st));
	snprintf(path, sizeof path, "/api/v1/cas/%s/auto-registration", id);
	rc = api(ctx, &a, "PUT", path, body, &o);
	return rc ? rc : emit_record(ctx, o);
}

/* ---- cert -------------------------------------------------------------------- */

static const struct option opts_cert_register[] = {
	CONN_OPTS, OPT("status", required_argument, O_STATUS),
	OPT("client-id", required_argument, O_CLIENT_ID),
	OPT("ca", required_argument, O_CA), END_OPTS
};
static const struct option opts_cert_list[] = {
	CONN_OPTS, OPT("status", required_argument, O_STATUS),
	OPT("ca", required_argument, O_CA), OPT("cn", required_argument, O_CN),
	OPT("ou", required_argument, O_OU), OPT("serial", required_argument, O_SERIAL),
	OPT("client-id", required_argument, O_CLIENT_ID),
	OPT("expiring-within", required_argument, O_EXPIRING),
	OPT("expired", no_argument, O_EXPIRED),
	OPT("limit", required_argument, O_LIMIT), OPT("offset", required_argument, O_OFFSET),
	OPT("id", required_argument, O_QPASS + 0), OPT("ca-serial", required_argument, O_QPASS + 1),
	OPT("cn-prefix", required_argument, O_QPASS + 2), OPT("o", required_argument, O_QPASS + 3),
	OPT("o-prefix", required_argument, O_QPASS + 4), OPT("ou-prefix", required_argument, O_QPASS + 5),
	OPT("not-before-from", required_argument, O_QPASS + 6),
	OPT("not-before-to", required_argument, O_QPASS + 7),
	OPT("not-after-from", required_argument, O_QPASS + 8),
	OPT("not-after-to", required_argument, O_QPASS + 9),
	END_OPTS
};

static int cmd_cert_register(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct api_args a;
	char st[32] = "", ca[65], *pem = NULL;
	json_t *body, *o;
	int rc = parse(ctx, argc, argv, opts_cert_register, 1, 1, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if (a.status && (rc = status_arg(ctx, "--status", a.status, dev_statuses, st, sizeof st)))
		return rc;
	if (a.ca && (rc = ctl_id_arg(ctx, a.ca, ca)))
		return rc;
	if ((rc = cert_file(ctx, a.pos[0], &pem)))
		return rc;
	body = json_pack("{s:s}", "certificate", pem);
	free(pem);
	if (!body)
		return ctl_fail(ctx, "out of memory");
	if (*st)
		json_object_set_new(body, "status", json_string(st));
	if (a.client_id)
		json_object_set_new(body, "clientId", json_string(a.client_id));
	if (a.ca)
		json_object_set_new(body, "caCertificateId", json_string(ca));
	rc = api(ctx, &a, "POST", "/api/v1/certificates", body, &o);
	return rc ? rc : emit_record(ctx, o);
}

/* Append "&key=escaped(value)" to the query. */
static int qadd(char **q, const char *k, const char *v)
{
	char *e = curl_easy_escape(NULL, v, 0), *n = NULL;
	int rc = -ENOMEM;

	if (e && asprintf(&n, "%s%s%s=%s", *q, **q ? "&" : "?", k, e) >= 0) {
		free(*q);
		*q = n;
		rc = 0;
	}
	curl_free(e);
	return rc;
}

static int cmd_cert_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const heads[] = {
		"CERTIFICATE ID", "STATUS", "COMMON NAME", "CLIENT ID", "NOT AFTER", "BY"
	};
	static const char *const keys[] = {
		"certificateId", "status", "commonName", "clientId", "notAfter", "registeredBy"
	};
	struct api_args a;
	char st[32] = "", ca[65], num[32], *q = strdup(""), *path = NULL;
	json_t *o;
	int rc = parse(ctx, argc, argv, opts_cert_list, 0, 0, &a);

	if (rc || !q) {
		free(q);
		return rc < 0 ? CTL_OK : rc ? rc : ctl_fail(ctx, "out of memory");
	}
	if (a.status && (rc = status_arg(ctx, "--status", a.status, any_statuses, st, sizeof st)))
		goto out;
	if (a.ca && (rc = ctl_id_arg(ctx, a.ca, ca)))
		goto out;
	rc = CTL_ERR;
	if ((*st && qadd(&q, "status", st)) || (a.ca && qadd(&q, "ca", ca)) ||
	    (a.cn && qadd(&q, "cn", a.cn)) || (a.ou && qadd(&q, "ou", a.ou)) ||
	    (a.serial && qadd(&q, "serial", a.serial)) ||
	    (a.client_id && qadd(&q, "clientId", a.client_id)) ||
	    (a.expired && qadd(&q, "expired", "true")))
		goto nomem;
	if (a.expiring >= 0 && (snprintf(num, sizeof num, "%ld", a.expiring),
				qadd(&q, "expiringWithinDays", num)))
		goto nomem;
	for (size_t i = 0; i < N_QPASS; i++)
		if (a.qpass[i] && qadd(&q, qpass[i].key, a.qpass[i]))
			goto nomem;
	if (a.limit >= 0 && (snprintf(num, sizeof num, "%ld", a.limit), qadd(&q, "limit", num)))
		goto nomem;
	if (a.offset >= 0 && (snprintf(num, sizeof num, "%ld", a.offset), qadd(&q, "offset", num)))
		goto nomem;
	if (asprintf(&path, "/api/v1/certificates%s", q) < 0) {
		path = NULL;
		goto nomem;
	}
	rc = api(ctx, &a, "GET", path, NULL, &o);
	if (rc)
		goto out;
	if (ctx->json) {
		rc = ctl_emit(ctx, o);
		goto out;
	}
	json_t *arr = json_object_get(o, "certificates");
	table(arr, heads, keys, 6);
	json_int_t total = json_integer_value(json_object_get(o, "total"));
	json_int_t off = json_integer_value(json_object_get(o, "offset"));
	if ((json_int_t)json_array_size(arr) < total)
		printf("(%zu of %lld, from %lld; --offset/--limit for more)\n",
		       json_array_size(arr), (long long)total, (long long)off);
	json_decref(o);
	rc = CTL_OK;
	goto out;
nomem:
	rc = ctl_fail(ctx, "out of memory");
out:
	free(q);
	free(path);
	return rc;
}

static int cmd_cert_get(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "certificates", "GET", NULL);
}

static int cmd_cert_activate(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "certificates", "POST", "activate");
}

static int cmd_cert_deactivate(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "certificates", "POST", "deactivate");
}

static int cmd_cert_revoke(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "certificates", "POST", "revoke");
}

static int cmd_cert_delete(struct ctl_ctx *ctx, int argc, char **argv)
{
	return id_call(ctx, argc, argv, "certificates", "DELETE", NULL);
}

static int cmd_cert_bind(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct api_args a;
	char id[65], path[160];
	json_t *body, *o;
	int rc = parse(ctx, argc, argv, opts_conn, 2, 2, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = ctl_id_arg(ctx, a.pos[0], id)))
		return rc;
	body = json_pack("{s:s}", "clientId", a.pos[1]);
	if (!body)
		return ctl_fail(ctx, "out of memory");
	snprintf(path, sizeof path, "/api/v1/certificates/%s/client-id", id);
	rc = api(ctx, &a, "PUT", path, body, &o);
	return rc ? rc : emit_record(ctx, o);
}

static int cmd_cert_history(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const heads[] = { "TIME", "EVENT", "STATUS", "CLIENT ID", "ACTOR" };
	static const char *const keys[] = { "time", "event", "status", "clientId", "actor" };
	struct api_args a;
	char id[65], path[160];
	json_t *o;
	int rc = parse(ctx, argc, argv, opts_conn, 1, 1, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = ctl_id_arg(ctx, a.pos[0], id)))
		return rc;
	snprintf(path, sizeof path, "/api/v1/certificates/%s/history", id);
	rc = api(ctx, &a, "GET", path, NULL, &o);
	if (rc)
		return rc;
	if (ctx->json)
		return ctl_emit(ctx, o);
	table(json_object_get(o, "events"), heads, keys, 5);
	json_decref(o);
	return CTL_OK;
}

/* ---- tables ------------------------------------------------------------------ */

static const struct ctl_cmd ca_cmds[] = {
	{ "code", "[--rotate]", "print the registration code (or make a new one)",
	  "  --rotate          replace the code by a new one\n" CONN_HELP, cmd_ca_code },
	{ "register", "--ca-cert F --verification-cert F [--auto on|off] [--auto-status S] [--status S]",
	  "register a CA with proof of possession",
	  "  --ca-cert F       the CA certificate (PEM or DER)\n"
	  "  --verification-cert F  a certificate whose CN is the registration code,\n"
	  "                    signed by the CA's key (vouchctl pki verification)\n"
	  "  --auto on|off     allow automatic registration of its devices (default off)\n"
	  "  --auto-status S   ACTIVE or PENDING_ACTIVATION for them (default ACTIVE)\n"
	  "  --status S        ACTIVE or INACTIVE (default ACTIVE)\n" CONN_HELP,
	  cmd_ca_register },
	{ "list", "", "list the registered CAs", CONN_HELP, cmd_ca_list },
	{ "get", "ID", "show a CA", CONN_HELP, cmd_ca_get },
	{ "activate", "ID", "activate a CA", CONN_HELP, cmd_ca_activate },
	{ "deactivate", "ID", "deactivate a CA: every certificate it signed is refused",
	  CONN_HELP, cmd_ca_deactivate },
	{ "auto", "ID on|off [--status S]", "allow or refuse automatic registration",
	  "  --status S        ACTIVE or PENDING_ACTIVATION for new devices\n" CONN_HELP,
	  cmd_ca_auto },
	{ "delete", "ID", "delete an INACTIVE CA", CONN_HELP, cmd_ca_delete },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct ctl_cmd cert_cmds[] = {
	{ "register", "FILE [--status S] [--client-id X] [--ca ID]",
	  "register a device certificate by hand",
	  "  --status S        ACTIVE, INACTIVE or PENDING_ACTIVATION (default ACTIVE)\n"
	  "  --client-id X     bind a client ID\n"
	  "  --ca ID           the issuing CA (default: found by name and signature)\n"
	  CONN_HELP, cmd_cert_register },
	{ "list", "[--id ID] [--status S] [--ca ID] [--ca-serial HEX] [--cn X] [--cn-prefix X] [--o X] [--o-prefix X] [--ou X] [--ou-prefix X] [--serial HEX] [--not-before-from T] [--not-before-to T] [--not-after-from T] [--not-after-to T] [--expiring-within DAYS] [--expired] [--limit N] [--offset N]",
	  "list device certificates (every filter given must hold; see docs/queries.md)",
	  "  --id ID           this certificate ID\n"
	  "  --status S        ACTIVE, INACTIVE, PENDING_ACTIVATION or REVOKED\n"
	  "  --ca ID           issued by this CA (its certificate ID)\n"
	  "  --ca-serial HEX   issued by the CA(s) with this serial number\n"
	  "  --cn X, --o X, --ou X  whose CN / O / OU is exactly X\n"
	  "  --cn-prefix X, --o-prefix X, --ou-prefix X  whose CN / O / OU starts with X\n"
	  "  --serial HEX      with this serial number\n"
	  "  --not-before-from T, --not-before-to T  not-before from / up to T (inclusive)\n"
	  "  --not-after-from T, --not-after-to T    not-after from / up to T (inclusive);\n"
	  "                    T is unix seconds or RFC 3339 (2025-01-31T00:00:00Z)\n"
	  "  --client-id X     bound to this client ID\n"
	  "  --expiring-within DAYS  valid now and expiring within DAYS\n"
	  "  --expired         already expired\n"
	  "  --limit N         at most N (1..1000, default 100)\n"
	  "  --offset N        skip the first N\n" CONN_HELP, cmd_cert_list },
	{ "get", "ID", "show a device certificate", CONN_HELP, cmd_cert_get },
	{ "activate", "ID", "activate (not a REVOKED one)", CONN_HELP, cmd_cert_activate },
	{ "deactivate", "ID", "deactivate: its connections close at once", CONN_HELP,
	  cmd_cert_deactivate },
	{ "revoke", "ID", "revoke, for good", CONN_HELP, cmd_cert_revoke },
	{ "delete", "ID", "delete (not an ACTIVE one)", CONN_HELP, cmd_cert_delete },
	{ "bind", "ID CLIENTID", "bind a client ID ('' unbinds)", CONN_HELP, cmd_cert_bind },
	{ "history", "ID", "show every change of a certificate", CONN_HELP, cmd_cert_history },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct ctl_group ctl_ca_group = {
	.name = "ca",
	.summary = "admin API: CA certificates and the registration code",
	.cmds = ca_cmds,
};

static const struct ctl_group ctl_cert_group = {
	.name = "cert",
	.summary = "admin API: device certificates",
	.cmds = cert_cmds,
};

const struct ctl_group *const ctl_api_groups[] = { &ctl_ca_group, &ctl_cert_group, NULL };

static const struct ctl_cmd *find_cmd(const struct ctl_ctx *ctx)
{
	const struct ctl_cmd *t = !strcmp(ctx->group, "ca") ? ca_cmds : cert_cmds;

	for (; t->name; t++)
		if (!strcmp(t->name, ctx->cmd))
			return t;
	return NULL;
}

/* See tools/ctl.h (for groups defined in other files, `policy`, `crl`). */
int ctl_api_call(struct ctl_ctx *ctx, const char *url, const char *token_file,
		 const char *method, const char *path, json_t *body, json_t **out)
{
	struct api_args a = { .url = url, .token_file = token_file };

	return api(ctx, &a, method, path, body, out);
}
