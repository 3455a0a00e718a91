/*
 * tools/ctl_pki.c - `vouchctl pki ...`: the local PKI helper that replaces
 * the openssl ritual of the clouds' device-certificate guides (make a CA,
 * a verification certificate whose CN is a registration code, RSA or EC
 * device certificates, chain files, PKCS#8 keys) with one command each.
 * Everything happens in local files; no broker is involved. The work is
 * done by tls/pki.c and tls/cert.c; this file is options, files and output.
 */
#include "tools/ctl.h"
#include "tls/cert.h"
#include "tls/pki.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX (1u << 20) /* certificates, keys, CSRs, chains: 1 MiB is plenty */

/* Long-only options; values above any character. */
enum {
	O_OUT = 0x200, O_NAME, O_CN, O_O, O_OU, O_C, O_ST, O_L, O_KEY, O_BITS,
	O_DAYS, O_CA_CERT, O_CA_KEY, O_CHAIN, O_SERIAL, O_NOT_BEFORE_DAYS,
	O_EXPIRED, O_FORCE, O_DNS, O_IP, O_CODE, O_PATH_LEN, O_KEY_IN,
	O_KEY_OUT, O_CSR, O_PROFILE,
};

#define OPT(n, a, v) { n, a, NULL, v }
#define SUBJECT_OPTS                                                         \
	OPT("cn", required_argument, O_CN), OPT("o", required_argument, O_O),   \
	OPT("ou", required_argument, O_OU), OPT("c", required_argument, O_C),   \
	OPT("st", required_argument, O_ST), OPT("l", required_argument, O_L)
#define KEY_OPTS                                                             \
	OPT("key", required_argument, O_KEY), OPT("bits", required_argument, O_BITS), \
	OPT("key-in", required_argument, O_KEY_IN)
#define ISSUE_OPTS                                                           \
	OPT("out", required_argument, O_OUT), OPT("name", required_argument, O_NAME), \
	OPT("days", required_argument, O_DAYS), OPT("serial", required_argument, O_SERIAL), \
	OPT("force", no_argument, O_FORCE), SUBJECT_OPTS, KEY_OPTS
#define CA_OPTS                                                              \
	OPT("ca-cert", required_argument, O_CA_CERT),                         \
	OPT("ca-key", required_argument, O_CA_KEY)
#define END_OPTS { NULL, 0, NULL, 0 }

static const struct option opts_ca[] = { ISSUE_OPTS, END_OPTS };
static const struct option opts_intermediate[] = {
	ISSUE_OPTS, CA_OPTS, OPT("path-len", required_argument, O_PATH_LEN), END_OPTS
};
static const struct option opts_device[] = {
	ISSUE_OPTS, CA_OPTS, OPT("chain", required_argument, O_CHAIN),
	OPT("not-before-days", required_argument, O_NOT_BEFORE_DAYS),
	OPT("expired", no_argument, O_EXPIRED), END_OPTS
};
static const struct option opts_server[] = {
	ISSUE_OPTS, CA_OPTS, OPT("chain", required_argument, O_CHAIN),
	OPT("dns", required_argument, O_DNS), OPT("ip", required_argument, O_IP),
	OPT("not-before-days", required_argument, O_NOT_BEFORE_DAYS),
	OPT("expired", no_argument, O_EXPIRED), END_OPTS
};
static const struct option opts_verification[] = {
	ISSUE_OPTS, CA_OPTS, OPT("code", required_argument, O_CODE), END_OPTS
};
static const struct option opts_csr[] = {
	SUBJECT_OPTS, KEY_OPTS, OPT("key-out", required_argument, O_KEY_OUT),
	OPT("out", required_argument, O_OUT), OPT("force", no_argument, O_FORCE),
	END_OPTS
};
static const struct option opts_sign_csr[] = {
	CA_OPTS, OPT("csr", required_argument, O_CSR), OPT("out", required_argument, O_OUT),
	OPT("days", required_argument, O_DAYS), OPT("serial", required_argument, O_SERIAL),
	OPT("profile", required_argument, O_PROFILE), OPT("force", no_argument, O_FORCE),
	OPT("not-before-days", required_argument, O_NOT_BEFORE_DAYS),
	OPT("expired", no_argument, O_EXPIRED), END_OPTS
};

/* Everything any pki command accepts, parsed into one place. */
struct pki_args {
	const char *out, *name, *ca_cert, *ca_key, *chain, *serial, *code;
	const char *key_in, *key_out, *csr, *profile;
	struct tls_pki_name subj;
	enum tls_key_type key_type;
	long bits, days, not_before_days, path_len;
	bool days_set, nbd_set, expired, force, path_len_set;
	const char *dns[TLS_PKI_MAX_SAN];
	size_t n_dns;
	const char *ip[TLS_PKI_MAX_SAN];
	size_t n_ip;
};

static const struct ctl_cmd *self_cmd(const struct ctl_ctx *ctx)
{
	for (const struct ctl_cmd *c = ctl_pki_group.cmds; c->name; c++)
		if (!strcmp(c->name, ctx->cmd))
			return c;
	return NULL;
}

/* Parse argv into a; returns CTL_OK, CTL_USAGE, or -1 after --help. */
static int parse_args(struct ctl_ctx *ctx, int argc, char **argv,
		      const struct option *opts, struct pki_args *a)
{
	const struct ctl_cmd *cmd = self_cmd(ctx);
	int c;

	memset(a, 0, sizeof *a);
	a->key_type = TLS_KEY_EC;
	a->path_len = -1;
	while ((c = ctl_getopt(ctx, cmd, argc, argv, opts)) != -1) {
		switch (c) {
		case CTL_OPT_HELP:
			return -1;
		case CTL_OPT_BAD:
			return CTL_USAGE;
		case O_OUT: a->out = optarg; break;
		case O_NAME: a->name = optarg; break;
		case O_CN: a->subj.cn = optarg; break;
		case O_O: a->subj.o = optarg; break;
		case O_OU: a->subj.ou = optarg; break;
		case O_C: a->subj.c = optarg; break;
		case O_ST: a->subj.st = optarg; break;
		case O_L: a->subj.l = optarg; break;
		case O_CA_CERT: a->ca_cert = optarg; break;
		case O_CA_KEY: a->ca_key = optarg; break;
		case O_CHAIN: a->chain = optarg; break;
		case O_SERIAL: a->serial = optarg; break;
		case O_CODE: a->code = optarg; break;
		case O_KEY_IN: a->key_in = optarg; break;
		case O_KEY_OUT: a->key_out = optarg; break;
		case O_CSR: a->csr = optarg; break;
		case O_PROFILE: a->profile = optarg; break;
		case O_EXPIRED: a->expired = true; break;
		case O_FORCE: a->force = true; break;
		case O_KEY:
			if (!strcmp(optarg, "rsa"))
				a->key_type = TLS_KEY_RSA;
			else if (!strcmp(optarg, "ec") || !strcmp(optarg, "ecc"))
				a->key_type = TLS_KEY_EC;
			else
				return ctl_usage(ctx, "--key must be rsa or ec, not '%s'", optarg);
			break;
		case O_BITS:
			if (ctl_parse_int(optarg, 1, 16384, &a->bits) < 0)
				return ctl_usage(ctx, "bad --bits '%s'", optarg);
			break;
		case O_DAYS:
			if (ctl_parse_int(optarg, 1, 36500, &a->days) < 0)
				return ctl_usage(ctx, "--days must be 1..36500, not '%s'", optarg);
			a->days_set = true;
			break;
		case O_NOT_BEFORE_DAYS:
			if (ctl_parse_int(optarg, -36500, 36500, &a->not_before_days) < 0)
				return ctl_usage(ctx, "bad --not-before-days '%s'", optarg);
			a->nbd_set = true;
			break;
		case O_PATH_LEN:
			if (ctl_parse_int(optarg, 0, 255, &a->path_len) < 0)
				return ctl_usage(ctx, "--path-len must be 0..255");
			a->path_len_set = true;
			break;
		case O_DNS:
			if (a->n_dns == TLS_PKI_MAX_SAN)
				return ctl_usage(ctx, "at most %d --dns", TLS_PKI_MAX_SAN);
			a->dns[a->n_dns++] = optarg;
			break;
		case O_IP:
			if (a->n_ip == TLS_PKI_MAX_SAN)
				return ctl_usage(ctx, "at most %d --ip", TLS_PKI_MAX_SAN);
			a->ip[a->n_ip++] = optarg;
			break;
		default:
			return ctl_usage(ctx, "unexpected option");
		}
	}
	if (a->bits) {
		bool ok = a->key_type == TLS_KEY_RSA
				  ? (a->bits == 2048 || a->bits == 3072 || a->bits == 4096)
				  : (a->bits == 256 || a->bits == 384);
		if (!ok)
			return ctl_usage(ctx, "--bits %ld is not offered for %s keys "
					 "(rsa: 2048 3072 4096, ec: 256 384)",
					 a->bits, a->key_type == TLS_KEY_RSA ? "rsa" : "ec");
	}
	if (a->expired && a->nbd_set)
		return ctl_usage(ctx, "--expired and --not-before-days exclude each other");
	return CTL_OK;
}

/* ---- files ------------------------------------------------------------ */

/* See tools/ctl.h. */
int ctl_load_cert(const struct ctl_ctx *ctx, const char *path, uint8_t **der, size_t *len)
{
	char *data;
	size_t n;
	int rc = tls_pki_file_read(path, FILE_MAX, &data, &n);

	if (rc < 0)
		return ctl_fail(ctx, "cannot read %s: %s", path, strerror(-rc));
	*der = malloc(n ? n : 1);
	if (!*der) {
		free(data);
		return ctl_fail(ctx, "out of memory");
	}
	if (n > 0 && (uint8_t)data[0] == 0x30) {
		memcpy(*der, data, n);
		rc = (int)n;
	} else {
		rc = tls_cert_pem_to_der(data, n, *der, n);
	}
	free(data);
	if (rc < 0) {
		free(*der);
		*der = NULL;
		return ctl_fail(ctx, "%s: no certificate (%s)", path,
				rc == -ENOENT ? "no CERTIFICATE block" : strerror(-rc));
	}
	*len = (size_t)rc;
	return CTL_OK;
}

/* See tools/ctl.h. */
int ctl_load_key(const struct ctl_ctx *ctx, const char *path, struct tls_pki_key **k,
		 char **pem, size_t *pem_len)
{
	struct tls_pki_key *tmp = NULL;
	char *data;
	size_t n;
	int rc = tls_pki_file_read(path, FILE_MAX, &data, &n);

	if (rc < 0)
		return ctl_fail(ctx, "cannot read %s: %s", path, strerror(-rc));
	rc = tls_pki_key_from_pem(data, n, k ? k : &tmp);
	tls_pki_key_free(tmp);
	if (rc == 0 && pem) {
		*pem = data;
		*pem_len = n;
		return CTL_OK;
	}
	memset(data, 0, n);
	free(data);
	if (rc == -ENOENT)
		return ctl_fail(ctx, "%s: no private key in it", path);
	if (rc == -EOPNOTSUPP)
		return ctl_fail(ctx, "%s: unsupported key (encrypted, or not "
				"RSA 2048-4096 / EC P-256 / P-384)", path);
	if (rc < 0)
		return ctl_fail(ctx, "%s: unreadable private key (%s)", path, strerror(-rc));
	return CTL_OK;
}

static char *path_join(const char *dir, const char *name, const char *ext)
{
	char *p;

	if (asprintf(&p, "%s/%s%s", dir, name, ext) < 0)
		return NULL;
	return p;
}

/* PEM-encode DER into a new string. */
static char *pem_of(const char *label, const uint8_t *der, size_t len)
{
	size_t cap = tls_pem_size(label, len);
	char *s = malloc(cap);

	if (s && tls_pem_encode(label, der, len, s, cap) < 0) {
		free(s);
		s = NULL;
	}
	return s;
}

static int write_file(const struct ctl_ctx *ctx, const char *path,
		      const char *data, mode_t mode, bool force)
{
	int rc = tls_pki_file_write(path, data, strlen(data), mode, force);

	if (rc == -EEXIST)
		return ctl_fail(ctx, "%s exists (--force replaces it)", path);
	if (rc < 0)
		return ctl_fail(ctx, "cannot write %s: %s", path, strerror(-rc));
	return CTL_OK;
}

/* Refuse early, before any file is written, if a target exists. */
static int check_free(const struct ctl_ctx *ctx, const char *const *paths,
		      size_t n, bool force)
{
	for (size_t i = 0; i < n; i++)
		if (paths[i] && !force && access(paths[i], F_OK) == 0)
			return ctl_fail(ctx, "%s exists (--force replaces it)", paths[i]);
	return CTL_OK;
}

static int ensure_dir(const struct ctl_ctx *ctx, const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0755) == 0)
		return CTL_OK;
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return CTL_OK;
	return ctl_fail(ctx, "cannot create directory %s: %s", dir, strerror(errno));
}

/* ---- describing certificates ------------------------------------------ */

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char *h;
	json_t *j;

	if (!n)
		return json_null();
	h = malloc(2 * n + 1);
	if (!h)
		return NULL;
	tls_hex(p, n, h);
	j = json_string(h);
	free(h);
	return j;
}

static json_t *name_json(const struct tls_span *s)
{
	char buf[2048];

	if (tls_name_format(s->ptr, s->len, buf, sizeof buf) < 0)
		return json_string("?");
	return json_string(buf);
}

static json_t *time_json(int64_t t)
{
	char buf[32];

	if (tls_time_format(t, buf, sizeof buf) < 0)
		return json_integer(t);
	return json_string(buf);
}

static json_t *ku_json(const struct tls_cert_info *ci)
{
	static const char *const names[] = {
		"digitalSignature", "nonRepudiation", "keyEncipherment",
		"dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign",
		"encipherOnly", "decipherOnly",
	};
	json_t *a;

	if (!ci->has_key_usage)
		return json_null();
	a = json_array();
	for (unsigned i = 0; a && i < 9; i++)
		if (ci->key_usage & (1u << i))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

static json_t *eku_json(const struct tls_cert_info *ci)
{
	json_t *a;

	if (!ci->ext_key_usage)
		return json_null();
	a = json_array();
	if (a && (ci->ext_key_usage & TLS_EKU_SERVER_AUTH))
		json_array_append_new(a, json_string("serverAuth"));
	if (a && (ci->ext_key_usage & TLS_EKU_CLIENT_AUTH))
		json_array_append_new(a, json_string("clientAuth"));
	if (a && (ci->ext_key_usage & TLS_EKU_ANY))
		json_array_append_new(a, json_string("any"));
	if (a && (ci->ext_key_usage & TLS_EKU_OTHER))
		json_array_append_new(a, json_string("other"));
	return a;
}

/* Add the description of a parsed certificate to object o. */
static void cert_fields(json_t *o, const struct tls_cert_info *ci)
{
	int64_t now = time(NULL);
	bool self = ci->issuer.len == ci->subject.len &&
		    !memcmp(ci->issuer.ptr, ci->subject.ptr, ci->subject.len) &&
		    tls_cert_check_sig(ci, ci) == 0;

	json_object_set_new(o, "id", hex_json(ci->id, sizeof ci->id));
	json_object_set_new(o, "serial", hex_json(ci->serial, ci->serial_len));
	json_object_set_new(o, "subject", name_json(&ci->subject));
	json_object_set_new(o, "issuer", name_json(&ci->issuer));
	json_object_set_new(o, "cn", json_string(ci->cn));
	json_object_set_new(o, "o", json_string(ci->o));
	json_object_set_new(o, "ou", json_string(ci->ou));
	json_object_set_new(o, "issuer_cn", json_string(ci->issuer_cn));
	json_object_set_new(o, "not_before", time_json(ci->not_before));
	json_object_set_new(o, "not_after", time_json(ci->not_after));
	json_object_set_new(o, "validity", json_string(now < ci->not_before ? "not yet valid"
						      : now > ci->not_after ? "expired"
									    : "valid"));
	json_object_set_new(o, "ca", json_boolean(ci->is_ca));
	json_object_set_new(o, "path_len", ci->path_len >= 0 ? json_integer(ci->path_len)
							     : json_null());
	json_object_set_new(o, "self_signed", json_boolean(self));
	json_object_set_new(o, "key_type", json_string(tls_key_type_name(ci->key_type)));
	json_object_set_new(o, "key_bits", json_integer(ci->key_bits));
	json_object_set_new(o, "signature", json_string(tls_sig_alg_name(ci->sig_alg)));
	json_object_set_new(o, "key_usage", ku_json(ci));
	json_object_set_new(o, "ext_key_usage", eku_json(ci));
	json_object_set_new(o, "skid", hex_json(ci->skid.ptr, ci->skid.len));
	json_object_set_new(o, "akid", hex_json(ci->akid.ptr, ci->akid.len));
}

static void csr_fields(json_t *o, const struct tls_csr_info *ci)
{
	json_object_set_new(o, "subject", name_json(&ci->subject));
	json_object_set_new(o, "cn", json_string(ci->cn));
	json_object_set_new(o, "o", json_string(ci->o));
	json_object_set_new(o, "ou", json_string(ci->ou));
	json_object_set_new(o, "key_type", json_string(tls_key_type_name(ci->key_type)));
	json_object_set_new(o, "key_bits", json_integer(ci->key_bits));
	json_object_set_new(o, "signature", json_string(tls_sig_alg_name(ci->sig_alg)));
	json_object_set_new(o, "signature_ok", json_boolean(tls_csr_verify(ci) == 0));
}

/* ---- issuing ---------------------------------------------------------- */

struct chain_ctx {
	char *pem;       /* accumulated chain */
	uint8_t ids[16][TLS_CERT_ID_LEN];
	size_t n;
	int err;
};

/* Append a certificate to the chain unless it is already in it. */
static int chain_add(const uint8_t *der, size_t len, void *arg)
{
	struct chain_ctx *cc = arg;
	struct tls_cert_info ci;
	char *pem, *joined;

	if (tls_cert_parse(der, len, &ci) < 0) {
		cc->err = -EINVAL;
		return -EINVAL;
	}
	for (size_t i = 0; i < cc->n; i++)
		if (!memcmp(cc->ids[i], ci.id, TLS_CERT_ID_LEN))
			return 0;
	if (cc->n == sizeof cc->ids / sizeof cc->ids[0]) {
		cc->err = -E2BIG;
		return -E2BIG;
	}
	memcpy(cc->ids[cc->n++], ci.id, TLS_CERT_ID_LEN);
	pem = pem_of("CERTIFICATE", der, len);
	if (!pem || asprintf(&joined, "%s%s", cc->pem ? cc->pem : "", pem) < 0) {
		free(pem);
		cc->err = -ENOMEM;
		return -ENOMEM;
	}
	free(pem);
	free(cc->pem);
	cc->pem = joined;
	return 0;
}

/*
 * The chain file: leaf, then the issuing CA (as the clouds' guides build
 * client_chain.crt), then the certificates of --chain (more intermediates),
 * each once.
 */
static int build_chain(const struct ctl_ctx *ctx, const uint8_t *leaf, size_t leaf_len,
		       const uint8_t *ca, size_t ca_len, const char *extra,
		       char **out)
{
	struct chain_ctx cc = { 0 };

	*out = NULL;
	if (chain_add(leaf, leaf_len, &cc) < 0 || chain_add(ca, ca_len, &cc) < 0)
		return ctl_fail(ctx, "cannot build the chain: %s", strerror(-cc.err));
	if (extra) {
		char *data;
		size_t n;
		int rc = tls_pki_file_read(extra, FILE_MAX, &data, &n);

		if (rc < 0) {
			free(cc.pem);
			return ctl_fail(ctx, "cannot read %s: %s", extra, strerror(-rc));
		}
		rc = tls_cert_pem_all(data, n, chain_add, &cc);
		free(data);
		if (rc <= 0) {
			free(cc.pem);
			return ctl_fail(ctx, "%s: %s", extra,
					rc == 0 ? "no certificates in it"
						: strerror(cc.err ? -cc.err : -rc));
		}
	}
	*out = cc.pem;
	return CTL_OK;
}

/* Validity window from --days, --not-before-days and --expired. */
static void set_window(struct tls_pki_spec *s, const struct pki_args *a, int64_t now,
		       long days)
{
	if (a->expired) {
		/* Ended a day ago, having lasted `days`. */
		s->not_after = now - 86400;
		s->not_before = s->not_after - days * 86400;
	} else if (a->nbd_set) {
		s->not_before = now + a->not_before_days * 86400;
		s->not_after = s->not_before + days * 86400;
	}
}

static int set_serial(const struct ctl_ctx *ctx, struct tls_pki_spec *s, const char *hex)
{
	int n;

	if (!hex)
		return CTL_OK;
	n = tls_unhex(hex, s->serial, sizeof s->serial);
	if (n > 0) {
		/* A magnitude: drop leading zeros; zero itself is not allowed. */
		int z = 0;

		while (z < n && s->serial[z] == 0)
			z++;
		memmove(s->serial, s->serial + z, (size_t)(n - z));
		n -= z;
	}
	if (n <= 0 || (n == 20 && (s->serial[0] & 0x80)))
		return ctl_usage(ctx, "--serial must be a nonzero hex number of at most "
				 "20 bytes (159 bits)");
	s->serial_len = (size_t)n;
	return CTL_OK;
}

static const char *issue_error(int rc)
{
	switch (rc) {
	case -EKEYREJECTED:
		return "the CA key does not belong to the CA certificate";
	case -ENAMETOOLONG:
		return "a subject field is longer than 64 bytes";
	case -EINVAL:
		return "invalid request (subject empty or malformed, country not "
		       "two letters, bad IP, or the CA certificate is not a CA)";
	default:
		return strerror(-rc);
	}
}

static int run_issue(struct ctl_ctx *ctx, int argc, char **argv,
		     const struct option *opts, enum tls_pki_kind kind,
		     const char *default_name, long default_days)
{
	struct pki_args a;
	struct tls_pki_spec spec;
	struct tls_pki_key *key = NULL, *ca_key = NULL;
	struct tls_pki_issuer issuer, *ip = NULL;
	uint8_t *ca_der = NULL, *der = NULL;
	size_t ca_len = 0;
	char *crt_path = NULL, *key_path = NULL, *chain_path = NULL;
	char *crt_pem = NULL, *key_pem = NULL, *chain_pem = NULL;
	bool chain = kind == TLS_PKI_DEVICE || kind == TLS_PKI_SERVER;
	int rc, n;
	json_t *o;

	rc = parse_args(ctx, argc, argv, opts, &a);
	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if (optind < argc)
		return ctl_usage(ctx, "unexpected argument '%s'", argv[optind]);
	if (!a.out)
		return ctl_usage(ctx, "--out DIR is required");
	if (kind != TLS_PKI_ROOT_CA && (!a.ca_cert || !a.ca_key))
		return ctl_usage(ctx, "--ca-cert and --ca-key are required");
	if (kind == TLS_PKI_VERIFICATION && !a.code)
		return ctl_usage(ctx, "--code CODE (the CA registration code) is required");
	if (!a.name)
		a.name = default_name;
	if (!*a.name || strchr(a.name, '/'))
		return ctl_usage(ctx, "--name must be a plain file name");

	tls_pki_spec_init(&spec, kind, time(NULL), a.days_set ? a.days : default_days);
	set_window(&spec, &a, time(NULL), a.days_set ? a.days : default_days);
	rc = set_serial(ctx, &spec, a.serial);
	if (rc)
		return rc;
	spec.subject = a.subj;
	if (kind == TLS_PKI_VERIFICATION) {
		if (a.subj.cn)
			return ctl_usage(ctx, "the verification certificate's CN is --code");
		spec.subject.cn = a.code;
	} else if (!spec.subject.cn) {
		spec.subject.cn = a.name;
	}
	if (a.path_len_set)
		spec.path_len = (int)a.path_len;
	if (kind == TLS_PKI_SERVER && !a.n_dns && !a.n_ip) {
		a.dns[a.n_dns++] = "localhost";
		a.ip[a.n_ip++] = "127.0.0.1";
	}
	memcpy(spec.dns, a.dns, sizeof a.dns);
	spec.n_dns = a.n_dns;
	memcpy(spec.ip, a.ip, sizeof a.ip);
	spec.n_ip = a.n_ip;

	crt_path = path_join(a.out, a.name, ".crt");
	key_path = a.key_in ? NULL : path_join(a.out, a.name, ".key");
	if (chain)
		chain_path = path_join(a.out, a.name, ".chain.crt");
	if (!crt_path || (!a.key_in && !key_path) || (chain && !chain_path)) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	{
		const char *targets[] = { crt_path, key_path, chain_path };

		rc = check_free(ctx, targets, 3, a.force);
		if (rc)
			goto out;
	}

	if (kind != TLS_PKI_ROOT_CA) {
		rc = ctl_load_cert(ctx, a.ca_cert, &ca_der, &ca_len);
		if (rc == CTL_OK)
			rc = ctl_load_key(ctx, a.ca_key, &ca_key, NULL, NULL);
		if (rc)
			goto out;
		issuer = (struct tls_pki_issuer){ ca_der, ca_len, ca_key };
		ip = &issuer;
	}
	if (a.key_in) {
		rc = ctl_load_key(ctx, a.key_in, &key, NULL, NULL);
		if (rc)
			goto out;
	} else {
		n = tls_pki_key_generate(a.key_type, (int)a.bits, &key);
		if (n < 0) {
			rc = ctl_fail(ctx, "key generation failed: %s", strerror(-n));
			goto out;
		}
		key_pem = malloc(TLS_PKI_KEY_DER_MAX * 2);
		if (!key_pem || tls_pki_key_pem(key, key_pem, TLS_PKI_KEY_DER_MAX * 2) < 0) {
			rc = ctl_fail(ctx, "cannot encode the private key");
			goto out;
		}
	}

	der = malloc(TLS_PKI_DER_MAX);
	if (!der) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	n = tls_pki_issue(&spec, key, ip, der, TLS_PKI_DER_MAX);
	if (n < 0) {
		rc = ctl_fail(ctx, "cannot issue: %s", issue_error(n));
		goto out;
	}
	crt_pem = pem_of("CERTIFICATE", der, (size_t)n);
	if (!crt_pem) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	if (chain) {
		rc = build_chain(ctx, der, (size_t)n, ca_der, ca_len, a.chain, &chain_pem);
		if (rc)
			goto out;
	}

	rc = ensure_dir(ctx, a.out);
	if (!rc && key_pem)
		rc = write_file(ctx, key_path, key_pem, 0600, a.force);
	if (!rc)
		rc = write_file(ctx, crt_path, crt_pem, 0644, a.force);
	if (!rc && chain_pem)
		rc = write_file(ctx, chain_path, chain_pem, 0644, a.force);
	if (rc)
		goto out;

	{
		struct tls_cert_info ci;

		if (tls_cert_parse(der, (size_t)n, &ci) < 0) {
			rc = ctl_fail(ctx, "internal error: the new certificate does not parse");
			goto out;
		}
		o = json_object();
		if (o) {
			json_object_set_new(o, "certificate", json_string(crt_path));
			json_object_set_new(o, "key", json_string(key_path ? key_path : a.key_in));
			if (chain_path)
				json_object_set_new(o, "chain", json_string(chain_path));
			if (kind == TLS_PKI_VERIFICATION)
				json_object_set_new(o, "code", json_string(a.code));
			cert_fields(o, &ci);
		}
		rc = ctl_emit(ctx, o);
	}
out:
	if (key_pem) {
		memset(key_pem, 0, TLS_PKI_KEY_DER_MAX * 2);
		free(key_pem);
	}
	free(crt_pem);
	free(chain_pem);
	free(crt_path);
	free(key_path);
	free(chain_path);
	free(der);
	free(ca_der);
	tls_pki_key_free(key);
	tls_pki_key_free(ca_key);
	return rc;
}

static int cmd_ca(struct ctl_ctx *ctx, int argc, char **argv)
{
	return run_issue(ctx, argc, argv, opts_ca, TLS_PKI_ROOT_CA, "ca", 3650);
}

static int cmd_intermediate(struct ctl_ctx *ctx, int argc, char **argv)
{
	return run_issue(ctx, argc, argv, opts_intermediate, TLS_PKI_INTERMEDIATE_CA,
			 "intermediate", 1825);
}

static int cmd_device(struct ctl_ctx *ctx, int argc, char **argv)
{
	return run_issue(ctx, argc, argv, opts_device, TLS_PKI_DEVICE, "device", 365);
}

static int cmd_server(struct ctl_ctx *ctx, int argc, char **argv)
{
	return run_issue(ctx, argc, argv, opts_server, TLS_PKI_SERVER, "server", 365);
}

static int cmd_verification(struct ctl_ctx *ctx, int argc, char **argv)
{
	return run_issue(ctx, argc, argv, opts_verification, TLS_PKI_VERIFICATION,
			 "verification", 365);
}

/* ---- CSRs ------------------------------------------------------------- */

static int cmd_csr(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct pki_args a;
	struct tls_pki_key *key = NULL;
	uint8_t der[TLS_PKI_DER_MAX];
	char *csr_pem = NULL, *key_pem = NULL;
	int rc, n;
	json_t *o;

	rc = parse_args(ctx, argc, argv, opts_csr, &a);
	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if (optind < argc)
		return ctl_usage(ctx, "unexpected argument '%s'", argv[optind]);
	if (!a.out)
		return ctl_usage(ctx, "--out FILE (the CSR) is required");
	if (!a.key_out == !a.key_in)
		return ctl_usage(ctx, "give either --key-out FILE (new key) or --key-in FILE");
	if (!a.subj.cn)
		return ctl_usage(ctx, "--cn is required");
	{
		const char *targets[] = { a.out, a.key_out };

		rc = check_free(ctx, targets, 2, a.force);
		if (rc)
			return rc;
	}
	if (a.key_in) {
		rc = ctl_load_key(ctx, a.key_in, &key, NULL, NULL);
		if (rc)
			return rc;
	} else {
		n = tls_pki_key_generate(a.key_type, (int)a.bits, &key);
		if (n < 0)
			return ctl_fail(ctx, "key generation failed: %s", strerror(-n));
		key_pem = malloc(TLS_PKI_KEY_DER_MAX * 2);
		if (!key_pem || tls_pki_key_pem(key, key_pem, TLS_PKI_KEY_DER_MAX * 2) < 0) {
			rc = ctl_fail(ctx, "cannot encode the private key");
			goto out;
		}
	}
	n = tls_pki_make_csr(&a.subj, key, der, sizeof der);
	if (n < 0) {
		rc = ctl_fail(ctx, "cannot make the CSR: %s", issue_error(n));
		goto out;
	}
	csr_pem = pem_of("CERTIFICATE REQUEST", der, (size_t)n);
	if (!csr_pem) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	if (key_pem) {
		rc = write_file(ctx, a.key_out, key_pem, 0600, a.force);
		if (rc)
			goto out;
	}
	rc = write_file(ctx, a.out, csr_pem, 0644, a.force);
	if (rc)
		goto out;
	o = json_object();
	if (o) {
		struct tls_csr_info ci;

		json_object_set_new(o, "csr", json_string(a.out));
		json_object_set_new(o, "key", json_string(a.key_out ? a.key_out : a.key_in));
		if (tls_csr_parse(der, (size_t)n, &ci) == 0)
			csr_fields(o, &ci);
	}
	rc = ctl_emit(ctx, o);
out:
	if (key_pem) {
		memset(key_pem, 0, TLS_PKI_KEY_DER_MAX * 2);
		free(key_pem);
	}
	free(csr_pem);
	tls_pki_key_free(key);
	return rc;
}

static int cmd_sign_csr(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct pki_args a;
	struct tls_pki_spec spec;
	struct tls_pki_key *ca_key = NULL;
	struct tls_pki_issuer issuer;
	enum tls_pki_kind kind = TLS_PKI_DEVICE;
	uint8_t *ca_der = NULL, *csr_der = NULL, der[TLS_PKI_DER_MAX];
	size_t ca_len, csr_len = 0;
	char *data = NULL, *pem = NULL;
	int rc, n;
	json_t *o;

	rc = parse_args(ctx, argc, argv, opts_sign_csr, &a);
	if (rc)
		return rc < 0 ? CTL_OK : rc;
	if (optind < argc)
		return ctl_usage(ctx, "unexpected argument '%s'", argv[optind]);
	if (!a.ca_cert || !a.ca_key || !a.csr || !a.out)
		return ctl_usage(ctx, "--ca-cert, --ca-key, --csr and --out are required");
	if (a.profile) {
		if (!strcmp(a.profile, "device"))
			kind = TLS_PKI_DEVICE;
		else if (!strcmp(a.profile, "server"))
			kind = TLS_PKI_SERVER;
		else if (!strcmp(a.profile, "verification"))
			kind = TLS_PKI_VERIFICATION;
		else if (!strcmp(a.profile, "intermediate"))
			kind = TLS_PKI_INTERMEDIATE_CA;
		else
			return ctl_usage(ctx, "--profile must be device, server, "
					 "verification or intermediate");
	}
	tls_pki_spec_init(&spec, kind, time(NULL), a.days_set ? a.days : 365);
	set_window(&spec, &a, time(NULL), a.days_set ? a.days : 365);
	rc = set_serial(ctx, &spec, a.serial);
	if (rc)
		return rc;
	{
		const char *targets[] = { a.out };

		rc = check_free(ctx, targets, 1, a.force);
		if (rc)
			return rc;
	}

	rc = tls_pki_file_read(a.csr, FILE_MAX, &data, &csr_len);
	if (rc < 0)
		return ctl_fail(ctx, "cannot read %s: %s", a.csr, strerror(-rc));
	csr_der = malloc(csr_len ? csr_len : 1);
	if (!csr_der) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	if (csr_len && (uint8_t)data[0] == 0x30) {
		memcpy(csr_der, data, csr_len);
	} else {
		char label[TLS_PEM_LABEL_MAX + 1];
		size_t pos = 0;

		do
			n = tls_pem_next(data, csr_len, &pos, label, sizeof label,
					 csr_der, csr_len);
		while (n >= 0 && strcmp(label, "CERTIFICATE REQUEST") &&
		       strcmp(label, "NEW CERTIFICATE REQUEST"));
		if (n < 0) {
			rc = ctl_fail(ctx, "%s: no CERTIFICATE REQUEST block", a.csr);
			goto out;
		}
		csr_len = (size_t)n;
	}
	rc = ctl_load_cert(ctx, a.ca_cert, &ca_der, &ca_len);
	if (!rc)
		rc = ctl_load_key(ctx, a.ca_key, &ca_key, NULL, NULL);
	if (rc)
		goto out;
	issuer = (struct tls_pki_issuer){ ca_der, ca_len, ca_key };
	n = tls_pki_sign_csr(csr_der, csr_len, &spec, &issuer, der, sizeof der);
	if (n == -EBADMSG) {
		rc = ctl_fail(ctx, "%s: the CSR's signature does not verify "
			      "(tampered, or made without its key)", a.csr);
		goto out;
	}
	if (n < 0) {
		rc = ctl_fail(ctx, "cannot sign %s: %s", a.csr,
			      n == -EOPNOTSUPP ? "unsupported algorithm" : issue_error(n));
		goto out;
	}
	pem = pem_of("CERTIFICATE", der, (size_t)n);
	if (!pem) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	rc = write_file(ctx, a.out, pem, 0644, a.force);
	if (rc)
		goto out;
	o = json_object();
	if (o) {
		struct tls_cert_info ci;

		json_object_set_new(o, "certificate", json_string(a.out));
		if (tls_cert_parse(der, (size_t)n, &ci) == 0)
			cert_fields(o, &ci);
	}
	rc = ctl_emit(ctx, o);
out:
	free(pem);
	free(data);
	free(csr_der);
	free(ca_der);
	tls_pki_key_free(ca_key);
	return rc;
}

/* ---- show ------------------------------------------------------------- */

struct show_ctx {
	const char *file;
	json_t *list;
	int bad;
};

static void show_one(struct show_ctx *sc, const uint8_t *der, size_t len, bool csr)
{
	json_t *o = json_object();

	if (!o)
		return;
	json_object_set_new(o, "file", json_string(sc->file));
	if (!csr) {
		struct tls_cert_info ci;
		int rc = tls_cert_parse(der, len, &ci);

		json_object_set_new(o, "type", json_string("certificate"));
		if (rc == 0) {
			cert_fields(o, &ci);
		} else {
			json_object_set_new(o, "error", json_string(rc == -ENAMETOOLONG
					? "a name field is longer than 64 bytes"
					: "not a valid DER certificate"));
			sc->bad++;
		}
	} else {
		struct tls_csr_info ci;
		int rc = tls_csr_parse(der, len, &ci);

		json_object_set_new(o, "type", json_string("csr"));
		if (rc == 0) {
			csr_fields(o, &ci);
		} else {
			json_object_set_new(o, "error", json_string("not a valid DER PKCS#10 request"));
			sc->bad++;
		}
	}
	json_array_append_new(sc->list, o);
}

static int show_file(const struct ctl_ctx *ctx, struct show_ctx *sc, const char *path)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	size_t n, pos = 0;
	char *data;
	uint8_t *der;
	int rc, found = 0;

	rc = tls_pki_file_read(path, FILE_MAX, &data, &n);
	if (rc < 0)
		return ctl_fail(ctx, "cannot read %s: %s", path, strerror(-rc));
	sc->file = path;
	der = malloc(n ? n : 1);
	if (!der) {
		free(data);
		return ctl_fail(ctx, "out of memory");
	}
	if (n && (uint8_t)data[0] == 0x30) {
		struct tls_cert_info ci;

		/* DER: a certificate, else perhaps a request. */
		show_one(sc, (uint8_t *)data, n,
			 tls_cert_parse((uint8_t *)data, n, &ci) != 0 &&
			 tls_csr_parse((uint8_t *)data, n, &(struct tls_csr_info){ 0 }) == 0);
		found = 1;
	} else {
		while ((rc = tls_pem_next(data, n, &pos, label, sizeof label, der, n)) >= 0) {
			if (!strcmp(label, "CERTIFICATE"))
				show_one(sc, der, (size_t)rc, false);
			else if (!strcmp(label, "CERTIFICATE REQUEST") ||
				 !strcmp(label, "NEW CERTIFICATE REQUEST"))
				show_one(sc, der, (size_t)rc, true);
			else
				continue;
			found++;
		}
		if (rc != -ENOENT) {
			free(der);
			free(data);
			return ctl_fail(ctx, "%s: broken PEM (%s)", path, strerror(-rc));
		}
	}
	free(der);
	free(data);
	if (!found)
		return ctl_fail(ctx, "%s: no certificate or CSR in it", path);
	return CTL_OK;
}

static int cmd_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct show_ctx sc = { 0 };
	int c, rc = CTL_OK;

	while ((c = ctl_getopt(ctx, self_cmd(ctx), argc, argv, NULL)) != -1) {
		if (c == CTL_OPT_HELP)
			return CTL_OK;
		return CTL_USAGE;
	}
	if (optind >= argc)
		return ctl_usage(ctx, "which file?");
	sc.list = json_array();
	if (!sc.list)
		return ctl_fail(ctx, "out of memory");
	for (int i = optind; i < argc; i++)
		if (show_file(ctx, &sc, argv[i]) != CTL_OK)
			rc = CTL_ERR;
	if (ctl_emit(ctx, sc.list) != CTL_OK || sc.bad)
		rc = CTL_ERR;
	return rc;
}

/* ---- the group -------------------------------------------------------- */

#define SUBJECT_HELP                                                         \
	"  --cn CN --o O --ou OU --c CC --st ST --l L\n"                      \
	"                subject attributes (UTF-8, at most 64 bytes each)\n"
#define KEY_HELP                                                             \
	"  --key rsa|ec  key type (default ec); --bits 2048|3072|4096 for rsa,\n" \
	"                256|384 for ec (default 2048 / 256)\n"                 \
	"  --key-in F    certify an existing private key instead of a new one\n"
#define ISSUE_HELP                                                           \
	"  --out DIR     where NAME.crt and NAME.key (PKCS#8, mode 0600) go\n" \
	"  --name NAME   file name stem, and the CN unless --cn\n"             \
	"  --days N      validity in days\n"                                      \
	"  --serial HEX  serial number (default: 16 random bytes)\n"             \
	"  --force       replace existing files\n" SUBJECT_HELP KEY_HELP
#define CA_HELP                                                              \
	"  --ca-cert F --ca-key F   the issuing CA (PEM or DER certificate; PEM\n" \
	"                key: PKCS#8, RSA or EC)\n"
#define WINDOW_HELP                                                          \
	"  --not-before-days N  start N days from now (negative: in the past)\n" \
	"  --expired     make a certificate that expired yesterday\n"

static const struct ctl_cmd pki_cmds[] = {
	{ "ca", "--out DIR [--name NAME] [--cn CN] [--o O] [--ou OU] [--key rsa|ec] [--days N]",
	  "make a self-signed CA (CA:TRUE, keyCertSign, cRLSign)",
	  ISSUE_HELP "  (default name 'ca', 3650 days)\n", cmd_ca },
	{ "intermediate", "--ca-cert F --ca-key F --out DIR --name NAME [--path-len N] ...",
	  "make an intermediate CA signed by a CA",
	  CA_HELP ISSUE_HELP "  --path-len N  pathLenConstraint (default 0)\n"
	  "  (default 1825 days)\n", cmd_intermediate },
	{ "device", "--ca-cert F --ca-key F --out DIR --name NAME [--key rsa|ec] [--days N] "
	  "[--not-before-days N | --expired] [--chain F]",
	  "issue a device certificate (clientAuth); prints its certificate ID",
	  CA_HELP ISSUE_HELP WINDOW_HELP
	  "  --chain F     more intermediates for NAME.chain.crt\n"
	  "  NAME.chain.crt holds the device certificate, the issuing CA and the\n"
	  "  certificates of --chain. (default 365 days)\n", cmd_device },
	{ "server", "--ca-cert F --ca-key F --out DIR --name NAME [--dns NAME]... [--ip ADDR]...",
	  "issue the broker's certificate (serverAuth, subjectAltName)",
	  CA_HELP ISSUE_HELP WINDOW_HELP
	  "  --dns NAME --ip ADDR   subjectAltName entries, repeatable (default\n"
	  "                DNS:localhost, IP:127.0.0.1)\n"
	  "  --chain F     more intermediates for NAME.chain.crt\n", cmd_server },
	{ "verification", "--ca-cert F --ca-key F --code CODE --out DIR [--name NAME]",
	  "make the CA proof-of-possession certificate: CN=CODE, signed by the CA key",
	  CA_HELP ISSUE_HELP "  --code CODE   the registration code the broker gave\n"
	  "  (default name 'verification')\n", cmd_verification },
	{ "csr", "(--key-out F | --key-in F) --cn CN --out F [--o O] [--ou OU] [--key rsa|ec]",
	  "make a PKCS#10 certificate signing request (and a new key)",
	  "  --out F       the CSR (PEM)\n"
	  "  --key-out F   write a new private key there (PKCS#8, 0600)\n"
	  SUBJECT_HELP KEY_HELP "  --force       replace existing files\n", cmd_csr },
	{ "sign-csr", "--ca-cert F --ca-key F --csr F --out F [--days N] [--profile P]",
	  "check a CSR's signature and issue a certificate for it",
	  CA_HELP "  --csr F       the request (PEM or DER)\n"
	  "  --out F       the certificate (PEM)\n"
	  "  --profile P   device (default), server, verification, intermediate\n"
	  "  --days N --serial HEX --force\n" WINDOW_HELP, cmd_sign_csr },
	{ "devices", "--ca-cert F --ca-key F --out DIR --count N [--prefix P] [--start K] "
	  "[--days N] [--threads T] [--force]",
	  "issue many device certificates at once, for load tests (no fsync)",
	  ctl_pki_devices_help, ctl_pki_devices },
	{ "show", "FILE...", "describe certificates (chains too) and CSRs: ID, serial, "
	  "subject, issuer, validity, CA", NULL, cmd_show },
	{ NULL, NULL, NULL, NULL, NULL },
};

const struct ctl_group ctl_pki_group = {
	.name = "pki",
	.summary = "local PKI helper: CAs, device and server certificates, CSRs",
	.cmds = pki_cmds,
};
