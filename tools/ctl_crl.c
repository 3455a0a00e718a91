/*
 * tools/ctl_crl.c - `vouchctl crl import FILE`: send a CRL file (PEM or
 * DER) to the admin API (POST /api/v1/crls, registry/admin_crl.c), which
 * checks it against its issuing CA and revokes every listed serial.
 */
#include "tools/ctl.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "tls/cert.h"
#include "tls/crl.h"
#include "tls/pki.h"

enum { O_URL = 0x400, O_TOKEN_FILE, O_NAME };

static const struct ctl_cmd crl_cmds[];

static int cmd_import(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "name", required_argument, NULL, O_NAME },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *tf = NULL, *name = NULL;
	char *data = NULL, *pem = NULL, *base;
	json_t *body, *ans;
	size_t len;
	int c, rc;

	while ((c = ctl_getopt(ctx, &crl_cmds[0], argc, argv, opts)) != -1) {
		switch (c) {
		case CTL_OPT_HELP: return CTL_OK;
		case CTL_OPT_BAD: return CTL_USAGE;
		case O_URL: url = optarg; break;
		case O_TOKEN_FILE: tf = optarg; break;
		case O_NAME: name = optarg; break;
		default: return ctl_usage(ctx, "unexpected option");
		}
	}
	if (argc - optind != 1)
		return ctl_usage(ctx, argc - optind ? "one FILE only" : "missing FILE");
	rc = tls_pki_file_read(argv[optind], 2 * (size_t)TLS_CRL_DER_MAX, &data, &len);
	if (rc)
		return ctl_fail(ctx, "cannot read %s: %s", argv[optind],
				rc == -EFBIG ? "too large" : strerror(-rc));
	if (len && (uint8_t)data[0] == 0x30) {
		/* DER: send it as PEM text (the API takes either). */
		size_t cap = tls_pem_size("X509 CRL", len);

		pem = malloc(cap);
		if (!pem || tls_pem_encode("X509 CRL", (uint8_t *)data, len, pem, cap) < 0) {
			free(pem);
			free(data);
			return ctl_fail(ctx, "out of memory");
		}
		free(data);
		data = pem;
	}
	base = basename(argv[optind]);
	body = json_pack("{s:s, s:s}", "crl", data, "name", name ? name : base);
	free(data);
	if (!body)
		return ctl_fail(ctx, "out of memory");
	rc = ctl_api_call(ctx, url, tf, "POST", "/api/v1/crls", body, &ans);
	if (rc != CTL_OK)
		return rc;
	return ctl_emit(ctx, ans);
}

static const struct ctl_cmd crl_cmds[] = {
	{ "import", "[--name LABEL] [--url URL] [--token-file F] FILE",
	  "check a CRL (PEM or DER) against its registered CA and revoke every serial it lists",
	  "  FILE              the CRL; its signature must verify with a registered CA's key\n"
	  "  --name LABEL      recorded in the history as crl:<admin>:<LABEL> (default: FILE's name)\n"
	  "  --url URL         admin API (default $VOUCH_URL or http://127.0.0.1:8081)\n"
	  "  --token-file F    bearer token file (default $VOUCH_TOKEN_FILE)\n",
	  cmd_import },
	{ NULL, NULL, NULL, NULL, NULL },
};

/* See tools/ctl.h. */
const struct ctl_group ctl_crl_group = {
	.name = "crl",
	.summary = "admin API: certificate revocation lists",
	.cmds = crl_cmds,
};
