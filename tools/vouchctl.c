/*
 * tools/vouchctl.c - vouchctl's entry point: global options, the dispatch
 * table of command groups, and the helpers shared by every group (usage and
 * runtime errors, option parsing, text/JSON output; see tools/ctl.h).
 *
 *	vouchctl [--json] <group> <command> [options] [operands]
 *
 * Groups: `pki` (tools/ctl_pki.c, local files only) and, when linked in,
 * the admin API groups of ctl_api_groups[] (weak; see tools/ctl.h).
 */
#include "tools/ctl.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Built-in groups. The admin API groups come from ctl_api_groups[]. */
static const struct ctl_group *const builtin_groups[] = {
	&ctl_pki_group,
	&ctl_crl_group,         /* tools/ctl_crl.c */
	&ctl_policy_group,      /* tools/ctl_policy.c */
	NULL,
};

static void vmsg(const struct ctl_ctx *ctx, const char *fmt, va_list ap)
{
	fputs("vouchctl", stderr);
	if (ctx && ctx->group)
		fprintf(stderr, " %s", ctx->group);
	if (ctx && ctx->cmd)
		fprintf(stderr, " %s", ctx->cmd);
	fputs(": ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* See tools/ctl.h. */
int ctl_usage(const struct ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(ctx, fmt, ap);
	va_end(ap);
	fputs(" (try --help)\n", stderr);
	return CTL_USAGE;
}

/* See tools/ctl.h. */
int ctl_fail(const struct ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(ctx, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_ERR;
}

/* See tools/ctl.h. */
void ctl_print_help(const struct ctl_ctx *ctx, const struct ctl_cmd *cmd)
{
	printf("usage: vouchctl [--json] %s %s %s\n\n%s\n", ctx->group, cmd->name,
	       cmd->synopsis, cmd->summary);
	if (cmd->help)
		printf("\n%s", cmd->help);
	printf("\n  --json        machine-readable output\n"
	       "  -h, --help    this text\n");
}

/* See tools/ctl.h. */
int ctl_getopt(struct ctl_ctx *ctx, const struct ctl_cmd *cmd, int argc,
	       char **argv, const struct option *opts)
{
	struct option all[64];
	size_t n = 0;
	int c, idx = -1;

	while (opts && opts[n].name && n < 60) {
		all[n] = opts[n];
		n++;
	}
	all[n++] = (struct option){ "json", no_argument, NULL, 0x100 };
	all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	opterr = 0;
	for (;;) {
		c = getopt_long(argc, argv, ":h", all, &idx);
		if (c == 0x100) {
			ctx->json = true;
			continue;
		}
		break;
	}
	if (c == 'h') {
		ctl_print_help(ctx, cmd);
		return CTL_OPT_HELP;
	}
	if (c == '?') {
		if (optopt && optopt != 0x100)
			ctl_usage(ctx, "unknown option -%c", optopt);
		else
			ctl_usage(ctx, "unknown option %s", argv[optind - 1]);
		return CTL_OPT_BAD;
	}
	if (c == ':') {
		ctl_usage(ctx, "option %s needs a value", argv[optind - 1]);
		return CTL_OPT_BAD;
	}
	return c;
}

/* See tools/ctl.h. */
int ctl_parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Text form of a scalar (or of an array of scalars) into a malloc'd string. */
static char *scalar_text(json_t *v)
{
	char *s = NULL;
	size_t i;
	json_t *e;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
			return NULL;
		return s;
	case JSON_REAL:
		if (asprintf(&s, "%g", json_real_value(v)) < 0)
			return NULL;
		return s;
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_ARRAY:
		s = strdup("");
		json_array_foreach(v, i, e) {
			char *t = scalar_text(e), *u = NULL;

			if (!s || !t || asprintf(&u, "%s%s%s", s, i ? ", " : "", t) < 0)
				u = NULL;
			free(s);
			free(t);
			s = u;
		}
		return s;
	default:
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

static size_t key_width(json_t *obj, size_t prefix)
{
	const char *k;
	json_t *v;
	size_t w = 0;

	json_object_foreach(obj, k, v) {
		size_t kw = prefix + strlen(k);

		if (json_is_object(v))
			kw = key_width(v, kw + 1);
		if (kw > w)
			w = kw;
	}
	return w;
}

static void print_object(json_t *obj, const char *prefix, size_t width)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		char key[256];
		char *t;

		snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
		if (json_is_null(v))
			continue;
		if (json_is_object(v)) {
			print_object(v, key, width);
			continue;
		}
		t = scalar_text(v);
		printf("%s:%*s %s\n", key, (int)(width - strlen(key)), "", t ? t : "?");
		free(t);
	}
}

/* See tools/ctl.h. */
int ctl_emit(const struct ctl_ctx *ctx, json_t *v)
{
	size_t i;
	json_t *e;

	if (!v)
		return ctl_fail(ctx, "out of memory");
	if (ctx->json) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		if (s)
			puts(s);
		free(s);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e) {
			if (i)
				putchar('\n');
			if (json_is_object(e))
				print_object(e, "", key_width(e, 0));
			else {
				char *t = scalar_text(e);

				puts(t ? t : "?");
				free(t);
			}
		}
	} else if (json_is_object(v)) {
		print_object(v, "", key_width(v, 0));
	} else {
		char *t = scalar_text(v);

		puts(t ? t : "?");
		free(t);
	}
	json_decref(v);
	return fflush(stdout) == 0 ? CTL_OK : CTL_ERR;
}

static const struct ctl_group *find_group(const char *name)
{
	for (size_t i = 0; builtin_groups[i]; i++)
		if (!strcmp(builtin_groups[i]->name, name))
			return builtin_groups[i];
	if (ctl_api_groups)
		for (size_t i = 0; ctl_api_groups[i]; i++)
			if (!strcmp(ctl_api_groups[i]->name, name))
				return ctl_api_groups[i];
	return NULL;
}

static void print_groups(FILE *f)
{
	fprintf(f, "usage: vouchctl [--json] <group> <command> [options]\n\ngroups:\n");
	for (size_t i = 0; builtin_groups[i]; i++)
		fprintf(f, "  %-12s %s\n", builtin_groups[i]->name, builtin_groups[i]->summary);
	if (ctl_api_groups)
		for (size_t i = 0; ctl_api_groups[i]; i++)
			fprintf(f, "  %-12s %s\n", ctl_api_groups[i]->name,
				ctl_api_groups[i]->summary);
	fprintf(f, "\n'vouchctl <group> --help' lists a group's commands.\n");
}

static void print_group(const struct ctl_group *g)
{
	printf("usage: vouchctl [--json] %s <command> [options]\n\n%s\n\ncommands:\n",
	       g->name, g->summary);
	for (const struct ctl_cmd *c = g->cmds; c->name; c++)
		printf("  %-13s %s\n", c->name, c->summary);
	printf("\n'vouchctl %s <command> --help' shows a command's options.\n", g->name);
}

int main(int argc, char **argv)
{
	struct ctl_ctx ctx = { 0 };
	const struct ctl_group *g;
	int i = 1;

	/* Global options come before the group. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			ctx.json = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			print_groups(stdout);
			return CTL_OK;
		} else if (!strcmp(argv[i], "--url") || !strcmp(argv[i], "--token-file")) {
			/* the admin API's options, also accepted up front: they
			 * become the defaults the API commands read */
			if (i + 1 >= argc)
				return ctl_usage(&ctx, "%s needs a value", argv[i]);
			setenv(!strcmp(argv[i], "--url") ? "VOUCH_URL" : "VOUCH_TOKEN_FILE",
			       argv[i + 1], 1);
			i++;
		} else {
			return ctl_usage(&ctx, "unknown option %s", argv[i]);
		}
	}
	if (i >= argc)
		return ctl_usage(&ctx, "missing group");
	g = find_group(argv[i]);
	if (!g)
		return ctl_usage(&ctx, "unknown group '%s'", argv[i]);
	ctx.group = g->name;
	i++;
	if (i >= argc)
		return ctl_usage(&ctx, "missing command");
	if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
	    !strcmp(argv[i], "help")) {
		print_group(g);
		return CTL_OK;
	}
	for (const struct ctl_cmd *c = g->cmds; c->name; c++) {
		int rc;

		if (strcmp(c->name, argv[i]) != 0)
			continue;
		ctx.cmd = c->name;
		/* Once for every group: PKI work here, TLS for the admin API. */
		if (wolfSSL_Init() != WOLFSSL_SUCCESS)
			return ctl_fail(&ctx, "cannot initialise wolfSSL");
		optind = 0; /* full getopt re-initialisation (glibc) */
		rc = c->run(&ctx, argc - i, argv + i);
		wolfSSL_Cleanup();
		return rc;
	}
	return ctl_usage(&ctx, "unknown command '%s'", argv[i]);
}
