/*
 * tools/ctl_policy.c - `vouchctl policy`: authorization policies through
 * the admin API (registry/policy_api.c; docs/policies.md).
 *
 *	vouchctl policy create NAME FILE        FILE: the JSON document ("-" = stdin)
 *	vouchctl policy update NAME FILE        replace it (live sessions follow)
 *	vouchctl policy delete NAME             refused while attached
 *	vouchctl policy list | show NAME
 *	vouchctl policy attach|detach NAME (--cert ID | --ca ID)
 *	vouchctl policy effective ID            a certificate's effective policy
 */
#include "tools/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tls/pki.h"

#define DOC_MAX (256u * 1024)

enum { P_URL = 0x400, P_TOKEN_FILE, P_CERT, P_CA };

static const struct option opts[] = {
	{ "url", required_argument, NULL, P_URL },
	{ "token-file", required_argument, NULL, P_TOKEN_FILE },
	{ "cert", required_argument, NULL, P_CERT },
	{ "ca", required_argument, NULL, P_CA },
	{ NULL, 0, NULL, 0 },
};

struct pargs {
	const char *url, *token_file, *cert, *ca;
	char **pos;
	int npos;
};

static const struct ctl_cmd *find(const struct ctl_ctx *ctx);

/* CTL_OK, CTL_USAGE, or -1 after --help. */
static int parse(struct ctl_ctx *ctx, int argc, char **argv, int npos, struct pargs *a)
{
	int c;

	memset(a, 0, sizeof *a);
	while ((c = ctl_getopt(ctx, find(ctx), argc, argv, opts)) != -1) {
		switch (c) {
		case CTL_OPT_HELP: return -1;
		case CTL_OPT_BAD: return CTL_USAGE;
		case P_URL: a->url = optarg; break;
		case P_TOKEN_FILE: a->token_file = optarg; break;
		case P_CERT: a->cert = optarg; break;
		case P_CA: a->ca = optarg; break;
		default: return ctl_usage(ctx, "unexpected option");
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < npos)
		return ctl_usage(ctx, "missing operand");
	if (a->npos > npos)
		return ctl_usage(ctx, "unexpected operand '%s'", a->pos[npos]);
	return CTL_OK;
}

/* A name operand, checked here so that it can go into a path as is. */
static int name_arg(struct ctl_ctx *ctx, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return ctl_usage(ctx, "a policy name is A-Z a-z 0-9 . _ - only");
	return n && n <= 128 ? CTL_OK : ctl_usage(ctx, "a policy name is 1..128 characters");
}

static int call(struct ctl_ctx *ctx, const struct pargs *a, const char *method, const char *path,
		json_t *body)
{
	json_t *out = NULL;
	int rc = ctl_api_call(ctx, a->url, a->token_file, method, path, body, &out);

	return rc == CTL_OK ? ctl_emit(ctx, out) : rc;
}

static int read_doc(struct ctl_ctx *ctx, const char *path, json_t **doc)
{
	json_error_t je;
	char *data = NULL;
	size_t len = 0;

	if (!strcmp(path, "-")) {
		*doc = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
	} else {
		int rc = tls_pki_file_read(path, DOC_MAX, &data, &len);

		if (rc < 0)
			return ctl_fail(ctx, "cannot read %s: %s", path, strerror(-rc));
		*doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
		free(data);
	}
	if (!*doc)
		return ctl_fail(ctx, "%s: not JSON (line %d: %s)", path, je.line, je.text);
	if (!json_is_object(*doc)) {
		json_decref(*doc);
		return ctl_fail(ctx, "%s: a policy document is a JSON object", path);
	}
	return CTL_OK;
}

static int cmd_put(struct ctl_ctx *ctx, int argc, char **argv, bool create)
{
	struct pargs a;
	json_t *doc = NULL;
	char path[256];
	int rc = parse(ctx, argc, argv, 2, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = name_arg(ctx, a.pos[0])) || (rc = read_doc(ctx, a.pos[1], &doc)))
		return rc;
	if (create) {
		if (json_object_set_new(doc, "name", json_string(a.pos[0])) != 0) {
			json_decref(doc);
			return ctl_fail(ctx, "out of memory");
		}
		return call(ctx, &a, "POST", "/api/v1/policies", doc);
	}
	snprintf(path, sizeof path, "/api/v1/policies/%s", a.pos[0]);
	return call(ctx, &a, "PUT", path, doc);
}

static int cmd_create(struct ctl_ctx *ctx, int argc, char **argv)
{
	return cmd_put(ctx, argc, argv, true);
}

static int cmd_update(struct ctl_ctx *ctx, int argc, char **argv)
{
	return cmd_put(ctx, argc, argv, false);
}

static int cmd_name(struct ctl_ctx *ctx, int argc, char **argv, const char *method)
{
	struct pargs a;
	char path[256];
	int rc = parse(ctx, argc, argv, 1, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = name_arg(ctx, a.pos[0])))
		return rc;
	snprintf(path, sizeof path, "/api/v1/policies/%s", a.pos[0]);
	return call(ctx, &a, method, path, NULL);
}

static int cmd_delete(struct ctl_ctx *ctx, int argc, char **argv)
{
	return cmd_name(ctx, argc, argv, "DELETE");
}

static int cmd_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	return cmd_name(ctx, argc, argv, "GET");
}

static int cmd_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct pargs a;
	int rc = parse(ctx, argc, argv, 0, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	return call(ctx, &a, "GET", "/api/v1/policies", NULL);
}

static int cmd_attach_detach(struct ctl_ctx *ctx, int argc, char **argv, const char *what)
{
	struct pargs a;
	char path[256], id[65];
	int rc = parse(ctx, argc, argv, 1, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = name_arg(ctx, a.pos[0])))
		return rc;
	if (!a.cert == !a.ca)
		return ctl_usage(ctx, "give one of --cert or --ca");
	if ((rc = ctl_id_arg(ctx, a.cert ? a.cert : a.ca, id)))
		return rc;
	snprintf(path, sizeof path, "/api/v1/policies/%s/%s", a.pos[0], what);
	return call(ctx, &a, "POST", path,
		    json_pack("{s:s}", a.cert ? "certificateId" : "caCertificateId", id));
}

static int cmd_attach(struct ctl_ctx *ctx, int argc, char **argv)
{
	return cmd_attach_detach(ctx, argc, argv, "attach");
}

static int cmd_detach(struct ctl_ctx *ctx, int argc, char **argv)
{
	return cmd_attach_detach(ctx, argc, argv, "detach");
}

static int cmd_effective(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct pargs a;
	char path[256], id[65];
	int rc = parse(ctx, argc, argv, 1, &a);

	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if ((rc = ctl_id_arg(ctx, a.pos[0], id)))
		return rc;
	snprintf(path, sizeof path, "/api/v1/certificates/%s/policy", id);
	return call(ctx, &a, "GET", path, NULL);
}

#define CONN_HELP \
	"  --url URL         admin API (default $VOUCH_URL or http://127.0.0.1:8081)\n" \
	"  --token-file F    bearer token file (default $VOUCH_TOKEN_FILE)\n"
#define TARGET_HELP \
	"  --cert ID         a device certificate (its own policy: replaces its CA's)\n" \
	"  --ca ID           a CA (the default policy of every certificate it signed)\n"

static const struct ctl_cmd cmds[] = {
	{ "create", "NAME FILE", "create a policy from a JSON document (FILE, or - for stdin)",
	  CONN_HELP, cmd_create },
	{ "update", "NAME FILE", "replace a policy's document; live sessions follow at once",
	  CONN_HELP, cmd_update },
	{ "delete", "NAME", "delete a policy (refused while it is attached)", CONN_HELP, cmd_delete },
	{ "list", "", "list the policies", CONN_HELP, cmd_list },
	{ "show", "NAME", "show a policy and where it is attached", CONN_HELP, cmd_show },
	{ "attach", "NAME (--cert ID | --ca ID)", "attach a policy to a certificate or a CA",
	  TARGET_HELP CONN_HELP, cmd_attach },
	{ "detach", "NAME (--cert ID | --ca ID)", "detach a policy", TARGET_HELP CONN_HELP,
	  cmd_detach },
	{ "effective", "ID", "a certificate's effective policy and where it comes from",
	  CONN_HELP, cmd_effective },
	{ NULL, NULL, NULL, NULL, NULL },
};

const struct ctl_group ctl_policy_group = {
	.name = "policy",
	.summary = "admin API: authorization policies",
	.cmds = cmds,
};

static const struct ctl_cmd *find(const struct ctl_ctx *ctx)
{
	for (const struct ctl_cmd *c = cmds; c->name; c++)
		if (!strcmp(c->name, ctx->cmd))
			return c;
	return NULL;
}
