/*
 * tools/ctl.h - what vouchctl's command groups share: the dispatch table
 * types, the per-invocation context, and helpers for usage errors, runtime
 * errors and output (readable text by default, JSON with --json).
 *
 * A group is a `struct ctl_group` with a NULL-terminated table of commands.
 * The built-in `pki` group lives in tools/ctl_pki.c. The admin API groups
 * (`ca`, `cert`, ...) plug in without touching the dispatcher: define
 *
 *	const struct ctl_group *const ctl_api_groups[] = { &ctl_ca_group, ..., NULL };
 *
 * in a tools/ctl_*.c file; tools/vouchctl.c picks it up through a weak
 * reference (and simply has no API groups while nobody defines it).
 *
 * Conventions every command follows: `--help` prints its usage on stdout
 * and exits 0; bad usage prints one line on stderr and exits 2 (use
 * ctl_usage()); a runtime failure prints one line on stderr and exits 1
 * (ctl_fail()); results go through ctl_emit() so that --json works the
 * same everywhere. vouchctl is single-threaded.
 */
#ifndef VOUCH_TOOLS_CTL_H
#define VOUCH_TOOLS_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes. */
enum { CTL_OK = 0, CTL_ERR = 1, CTL_USAGE = 2 };

struct ctl_ctx {
	bool json;          /* --json: machine-readable output */
	const char *group;  /* e.g. "pki" */
	const char *cmd;    /* e.g. "device" */
};

struct ctl_cmd {
	const char *name;
	const char *synopsis; /* one line: options and arguments */
	const char *summary;  /* one line: what it does */
	const char *help;     /* option details for --help, may be NULL */
	/* argv[0] is the command name; returns a CTL_* exit code. */
	int (*run)(struct ctl_ctx *ctx, int argc, char **argv);
};

struct ctl_group {
	const char *name;
	const char *summary;
	const struct ctl_cmd *cmds; /* terminated by an entry with name NULL */
};

extern const struct ctl_group ctl_pki_group;
extern const struct ctl_group ctl_crl_group;    /* tools/ctl_crl.c */
extern const struct ctl_group ctl_policy_group;   /* tools/ctl_policy.c */

/* `vouchctl pki devices` (tools/ctl_pki_bulk.c): the command and its
 * --help text, for the pki group's table. It runs worker threads of its
 * own, which touch no ctx and no stdio. */
int ctl_pki_devices(struct ctl_ctx *ctx, int argc, char **argv);
extern const char ctl_pki_devices_help[];

/* ctl_load_cert - a certificate file, PEM (its first certificate) or DER,
 * as DER in a new buffer. CTL_OK, or a runtime failure (one line on
 * stderr). */
int ctl_load_cert(const struct ctl_ctx *ctx, const char *path, uint8_t **der, size_t *len);

/* ctl_load_key - read and check a PEM private key file: the parsed key into
 * *k when k is given; the PEM text itself into *pem (the caller wipes and
 * frees it) when pem is given. CTL_OK, or a runtime failure (one line on
 * stderr). */
struct tls_pki_key;
int ctl_load_key(const struct ctl_ctx *ctx, const char *path, struct tls_pki_key **k,
		 char **pem, size_t *pem_len);

/* A certificate ID operand: 64 hex digits (':' allowed), lowercased into
 * out. CTL_OK, or a usage error (exit 2) with one line on stderr. */
int ctl_id_arg(struct ctl_ctx *ctx, const char *s, char out[65]);

/*
 * ctl_api_call - one admin API call (tools/ctl_api.c): url and token_file
 * may be NULL ($VOUCH_URL / $VOUCH_TOKEN_FILE / the default). body (may be
 * NULL) is taken. CTL_OK with the parsed answer in *out (the caller's
 * reference), or CTL_ERR after printing the server's message.
 */
int ctl_api_call(struct ctl_ctx *ctx, const char *url, const char *token_file,
		 const char *method, const char *path, json_t *body, json_t **out);

/* Admin API groups, NULL-terminated; weak: absent until someone adds them. */
extern const struct ctl_group *const ctl_api_groups[] __attribute__((weak));

/*
 * ctl_usage - print "vouchctl <group> <cmd>: <message> (try --help)" on
 * stderr as one line and return CTL_USAGE.
 */
int ctl_usage(const struct ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ctl_fail - print "vouchctl <group> <cmd>: <message>" on stderr and
 * return CTL_ERR. */
int ctl_fail(const struct ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ctl_print_help - the --help text of one command, on stdout. */
void ctl_print_help(const struct ctl_ctx *ctx, const struct ctl_cmd *cmd);

/*
 * ctl_getopt - getopt_long() over a command's argv with vouchctl's common
 * rules: "--json" sets ctx->json, "--help"/"-h" prints the help and makes
 * ctl_getopt return -2 (the command then exits 0), an unknown option or a
 * missing argument is reported with ctl_usage() and returns -3 (exit 2).
 * Other options are returned as getopt_long() does (their `val`); -1 at the
 * end, with optind at the first operand. `opts` need not list json/help.
 * Reset optind = 0 before the first call for each command.
 */
int ctl_getopt(struct ctl_ctx *ctx, const struct ctl_cmd *cmd, int argc,
	       char **argv, const struct option *opts);
#define CTL_OPT_HELP (-2)
#define CTL_OPT_BAD (-3)

/*
 * ctl_emit - print a result object and release it (takes the reference).
 * With --json: the JSON document on one line. Otherwise: one
 * "key: value" line per member, keys aligned, nested objects as
 * "key.sub", arrays joined with ", ", null members left out.
 * Returns CTL_OK, or CTL_ERR if `v` is NULL (allocation failed).
 */
int ctl_emit(const struct ctl_ctx *ctx, json_t *v);

/* ctl_parse_int - strict decimal in [min, max]; 0 or -EINVAL. */
int ctl_parse_int(const char *s, long min, long max, long *out);

#endif
