/*
 * Flags and config file. One table describes every option: its flag name
 * (which is also its config-file key), its kind, bounds and help text, so
 * --help, getopt_long and the file parser cannot disagree.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

enum opt_kind { K_U32, K_LISTEN, K_TLS_LISTEN, K_BOOL, K_FLAG, K_STR, K_LOG, K_COMPAT, K_CONFIG, K_HELP,
		K_ROLE, K_DENYCODE };

struct opt {
	const char *name;
	enum opt_kind kind;
	size_t off;          /* offset in struct vouch_config */
	size_t size;         /* for K_STR */
	uint32_t min, max;   /* for K_U32 */
	const char *arg;
	const char *help;
};

#define O(f) offsetof(struct vouch_config, f)
static const struct opt opts[] = {
	{ "listen", K_LISTEN, 0, 0, 0, 0, "ADDR:PORT", "plain MQTT listener (repeatable; default 0.0.0.0:1883)" },
	{ "tls-listen", K_TLS_LISTEN, 0, 0, 0, 0, "ADDR:PORT", "MQTT over TLS listener, mutual TLS (repeatable)" },
	{ "cert", K_STR, O(cert_file), sizeof(((struct vouch_config *)0)->cert_file), 0, 0, "FILE", "server certificate, PEM (default DATA-DIR/server.crt)" },
	{ "key", K_STR, O(key_file), sizeof(((struct vouch_config *)0)->key_file), 0, 0, "FILE", "server private key, PEM (default DATA-DIR/server.key)" },
	{ "require-certificate", K_FLAG, O(require_certificate), 0, 0, 0, "[BOOL]", "TLS clients must present a certificate (default on)" },
	{ "allow-clientid-mismatch", K_FLAG, O(allow_clientid_mismatch), 0, 0, 0, "[BOOL]", "accept a client ID other than the certificate's bound one (default off)" },
	{ "signup-rate", K_U32, O(signup_rate), 0, 1, 100000, "N", "automatic certificate registrations per second, broker-wide (default 15)" },
	{ "signup-burst", K_U32, O(signup_burst), 0, 1, 100000, "N", "automatic registrations back to back (default: the rate)" },
	{ "admin-listen", K_STR, O(admin_listen), sizeof(((struct vouch_config *)0)->admin_listen), 0, 0, "ADDR:PORT", "admin HTTP API (default 127.0.0.1:8081; 'off' disables)" },
	{ "admin-token-file", K_STR, O(admin_token_file), sizeof(((struct vouch_config *)0)->admin_token_file), 0, 0, "FILE", "bearer tokens the admin API requires, one per line (name:token)" },
	{ "expiry-warning-days", K_U32, O(expiry_warning_days), 0, 1, 3650, "DAYS", "days before expiry that certificates are reported as expiring (default 30)" },
	{ "crl-dir", K_STR, O(crl_dir), sizeof(((struct vouch_config *)0)->crl_dir), 0, 0, "DIR", "import CRL files (PEM or DER) dropped in DIR, checked against their CA" },
	{ "issuing-ca", K_STR, O(issuing_ca), sizeof(((struct vouch_config *)0)->issuing_ca), 0, 0, "FILE", "CA certificate (PEM, a registered CA) that signs certificates for $SYS/provisioning/create-from-csr" },
	{ "issuing-key", K_STR, O(issuing_key), sizeof(((struct vouch_config *)0)->issuing_key), 0, 0, "FILE", "private key (PEM) of --issuing-ca" },
	/* authorization policies (docs/policies.md) */
	{ "plain-role", K_ROLE, O(plain_role_admin), 0, 0, 0, "device|admin", "role of connections without a certificate; admin may subscribe to $SYS/certificates/# and $SYS/presence/# (default device)" },
	{ "deny-subscribe-code", K_DENYCODE, O(deny_subscribe_code), 0, 0, 0, "0x80|0x87", "SUBACK code of a subscription a policy refuses, MQTT 5 (default 0x80; v3.1.1 always 0x80)" },
	{ "shards", K_U32, O(shards), 0, 1, VOUCH_MAX_SHARDS, "N", "shard threads, one per core (default: online CPUs)" },
	{ "max-connections", K_U32, O(max_connections), 0, 1, 10000000, "N", "connections broker-wide (default 100000)" },
	{ "max-packet-size", K_U32, O(max_packet_size), 0, 64, 268435455, "BYTES", "largest packet accepted or sent (default 1048576)" },
	{ "receive-maximum", K_U32, O(receive_maximum), 0, 1, 65535, "N", "unacknowledged QoS 1/2 PUBLISHes per client, both ways (default 64)" },
	{ "max-queued-messages", K_U32, O(max_queued_messages), 0, 1, 10000000, "N", "messages queued per client or offline session (default 1000)" },
	{ "max-shard-backlog", K_U32, O(max_shard_backlog), 0, 64, 16777216, "N", "messages a shard holds for busier shards before it stops reading PUBLISHes, until a quarter is left (default 65536)" },
	{ "max-keepalive", K_U32, O(max_keepalive), 0, 1, 65535, "SECONDS", "cap on client keep-alive; announced as Server Keep Alive (default 3600)" },
	{ "connect-timeout", K_U32, O(connect_timeout), 0, 1, 3600, "SECONDS", "close connections that send no CONNECT in time (default 10)" },
	{ "sys-interval", K_U32, O(sys_interval), 0, 1, 86400, "SECONDS", "period of $SYS/broker statistics (default 10)" },
	{ "topic-alias-maximum", K_U32, O(topic_alias_maximum), 0, 0, 65535, "N", "topic aliases a v5 client may use (default 64)" },
	{ "data-dir", K_STR, O(data_dir), sizeof(((struct vouch_config *)0)->data_dir), 0, 0, "DIR", "data directory (default ./vouch-data)" },
	{ "log-level", K_LOG, O(log_level), 0, 0, 0, "LEVEL", "debug, info, warn or error (default info)" },
	{ "io-compat", K_COMPAT, O(io_compat), 0, 0, 0, "5.10", "force the io_uring paths of Linux 5.10 (no multishot, no MSG_RING)" },
	{ "config", K_CONFIG, 0, 0, 0, 0, "FILE", "read options from FILE (keys are these flag names)" },
	{ "help", K_HELP, 0, 0, 0, 0, NULL, "print this help and exit" },
};
#define N_OPTS (sizeof opts / sizeof opts[0])

void config_defaults(struct vouch_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_connections = 100000;
	c->max_packet_size = 1048576;
	c->receive_maximum = 64;
	c->max_queued_messages = 1000;
	c->max_shard_backlog = 65536;
	c->max_keepalive = 3600;
	c->connect_timeout = 10;
	c->sys_interval = 10;
	c->topic_alias_maximum = 64;
	c->log_level = LOG_INFO;
	c->require_certificate = true;
	c->signup_rate = 15;
	c->expiry_warning_days = 30;
	c->deny_subscribe_code = 0x80;
	snprintf(c->admin_listen, sizeof c->admin_listen, "127.0.0.1:8081");
	snprintf(c->data_dir, sizeof c->data_dir, "./vouch-data");
}

void config_usage(FILE *out)
{
	fprintf(out, "usage: vouchd [options]\n\nvouch MQTT 3.1.1/5.0 broker.\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[64];
		snprintf(left, sizeof left, "--%s%s%s", opts[i].name,
			 opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
		fprintf(out, "  %-32s %s\n", left, opts[i].help);
	}
	fprintf(out, "\nA config file has one \"key = value\" per line; keys are the flag names.\n");
}

int config_parse_listener(const char *s, struct vouch_listener *l)
{
	char host[80];
	const char *colon = strrchr(s, ':');
	if (!colon || strlen(s) >= sizeof l->text)
		return -EINVAL;
	size_t hl = (size_t)(colon - s);
	if (hl >= sizeof host)
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = 0;
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		return -EINVAL;
	memset(&l->addr, 0, sizeof l->addr);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = 0;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return -EINVAL;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		l->addrlen = sizeof *a6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
		if (hl == 0 || strcmp(host, "*") == 0)
			strcpy(host, "0.0.0.0");
		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -EINVAL;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		l->addrlen = sizeof *a4;
	}
	snprintf(l->text, sizeof l->text, "%s", s);
	return 0;
}

static int apply(struct vouch_config *c, const struct opt *o, const char *val,
		 int depth, char *err, size_t errlen)
{
	char *base = (char *)c;
	switch (o->kind) {
	case K_U32: {
		char *end;
		errno = 0;
		if (!val || !*val || !isdigit((unsigned char)val[0]))
			goto bad;
		unsigned long long v = strtoull(val, &end, 10);
		if (errno || *end || v < o->min || v > o->max) {
			snprintf(err, errlen, "vouchd: --%s: '%s' is not a number in %u..%u",
				 o->name, val ? val : "", o->min, o->max);
			return -EINVAL;
		}
		if (o->off == O(shards))
			c->shards = (int)v;
		else
			*(uint32_t *)(base + o->off) = (uint32_t)v;
		return 0;
	}
	case K_LISTEN:
	case K_TLS_LISTEN: {
		if (c->n_listeners >= VOUCH_MAX_LISTENERS) {
			snprintf(err, errlen, "vouchd: too many listeners (max %d)", VOUCH_MAX_LISTENERS);
			return -EINVAL;
		}
		struct vouch_listener *l = &c->listeners[c->n_listeners];
		if (!val || config_parse_listener(val, l) != 0) {
			snprintf(err, errlen, "vouchd: --%s: '%s' is not ADDR:PORT", o->name, val ? val : "");
			return -EINVAL;
		}
		l->tls = o->kind == K_TLS_LISTEN;
		c->n_listeners++;
		return 0;
	}
	case K_STR:
		if (!val || !*val || strlen(val) >= o->size)
			goto bad;
		snprintf(base + o->off, o->size, "%s", val);
		return 0;
	case K_BOOL:
	case K_FLAG: {
		bool v;
		if (!val || !strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on"))
			v = true;
		else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off"))
			v = false;
		else
			goto bad;
		*(bool *)(base + o->off) = v;
		return 0;
	}
	case K_LOG: {
		enum log_level l;
		if (!val || log_parse_level(val, &l) != 0)
			goto bad;
		c->log_level = (int)l;
		return 0;
	}
	case K_COMPAT:
		if (!val || (strcmp(val, "5.10") && strcmp(val, "none")))
			goto bad;
		c->io_compat = strcmp(val, "5.10") == 0;
		return 0;
	case K_CONFIG:
		if (depth > 0) {
			snprintf(err, errlen, "vouchd: config: 'config' cannot be nested");
			return -EINVAL;
		}
		return config_load_file(c, val, err, errlen);
	case K_HELP:
		return 1;
	case K_ROLE:
		if (!val || (strcmp(val, "device") && strcmp(val, "admin")))
			goto bad;
		c->plain_role_admin = strcmp(val, "admin") == 0;
		return 0;
	case K_DENYCODE:
		if (val && (!strcasecmp(val, "0x80") || !strcmp(val, "128")))
			c->deny_subscribe_code = 0x80;
		else if (val && (!strcasecmp(val, "0x87") || !strcmp(val, "135")))
			c->deny_subscribe_code = 0x87;
		else
			goto bad;
		return 0;
	}
bad:
	snprintf(err, errlen, "vouchd: --%s: invalid value '%s'", o->name, val ? val : "");
	return -EINVAL;
}

static const struct opt *find_opt(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

int config_load_file(struct vouch_config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = path ? fopen(path, "r") : NULL;
	if (!f) {
		snprintf(err, errlen, "vouchd: --config: cannot open '%s': %s", path ? path : "",
			 strerror(errno));
		return -EINVAL;
	}
	char line[1024];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *p = line;
		char *hash = strchr(p, '#');
		if (hash)
			*hash = 0;
		while (isspace((unsigned char)*p))
			p++;
		char *e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (!*p)
			continue;
		char *eq = strchr(p, '=');
		char *key = p, *val = NULL;
		if (eq) {
			*eq = 0;
			val = eq + 1;
			while (isspace((unsigned char)*val))
				val++;
			char *ke = eq;
			while (ke > key && isspace((unsigned char)ke[-1]))
				*--ke = 0;
		}
		const struct opt *o = find_opt(key);
		if (!o || o->kind == K_HELP || o->kind == K_CONFIG) {
			snprintf(err, errlen, "vouchd: %s:%d: unknown key '%s'", path, lineno, key);
			rc = -EINVAL;
			break;
		}
		if (!val && o->kind != K_FLAG) {
			snprintf(err, errlen, "vouchd: %s:%d: '%s' needs '= value'", path, lineno, key);
			rc = -EINVAL;
			break;
		}
		rc = apply(c, o, val, 1, err, errlen);
		if (rc != 0) {
			char tmp[256];
			snprintf(tmp, sizeof tmp, "%s", err);
			snprintf(err, errlen, "%s (%s:%d)", tmp, path, lineno);
			rc = -EINVAL;
			break;
		}
	}
	fclose(f);
	return rc;
}

int config_parse_args(struct vouch_config *c, int argc, char **argv, char *err, size_t errlen)
{
	struct option lo[N_OPTS + 1];
	for (size_t i = 0; i < N_OPTS; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].kind == K_HELP ? no_argument
			      : opts[i].kind == K_FLAG ? optional_argument : required_argument;
		lo[i].flag = NULL;
		lo[i].val = 1000 + (int)i;
	}
	memset(&lo[N_OPTS], 0, sizeof lo[N_OPTS]);
	opterr = 0;
	optind = 1;
	for (;;) {
		int idx = -1;
		int ch = getopt_long(argc, argv, "h", lo, &idx);
		if (ch == -1)
			break;
		if (ch == 'h')
			return 1;
		if (ch == '?' || ch == ':') {
			const char *bad = argv[optind - 1];
			if (optopt >= 1000)
				snprintf(err, errlen, "vouchd: --%s needs a value", opts[optopt - 1000].name);
			else
				snprintf(err, errlen, "vouchd: unknown option '%s' (see --help)", bad ? bad : "?");
			return -EINVAL;
		}
		const struct opt *o = &opts[ch - 1000];
		int rc = apply(c, o, optarg, 0, err, errlen);
		if (rc != 0)
			return rc;
	}
	if (optind < argc) {
		snprintf(err, errlen, "vouchd: unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int config_finish(struct vouch_config *c, char *err, size_t errlen)
{
	bool plain = false;
	for (int i = 0; i < c->n_listeners; i++)
		plain |= !c->listeners[i].tls;
	if (!plain && c->n_listeners < VOUCH_MAX_LISTENERS && c->n_listeners == 0) {
		config_parse_listener("0.0.0.0:1883", &c->listeners[0]);
		c->n_listeners = 1;
	}
	if (c->signup_burst == 0)
		c->signup_burst = c->signup_rate;
	if (strcmp(c->admin_listen, "off") == 0 || strcmp(c->admin_listen, "none") == 0)
		c->admin_listen[0] = 0;
	if (c->admin_listen[0]) {
		struct vouch_listener tmp;
		if (config_parse_listener(c->admin_listen, &tmp) != 0) {
			snprintf(err, errlen, "vouchd: --admin-listen: '%s' is not ADDR:PORT", c->admin_listen);
			return -EINVAL;
		}
	}
	bool tls = false;
	for (int i = 0; i < c->n_listeners; i++)
		tls |= c->listeners[i].tls;
	if (tls && !c->cert_file[0])
		snprintf(c->cert_file, sizeof c->cert_file, "%.*s/server.crt", PATH_MAX - 12, c->data_dir);
	if (tls && !c->key_file[0])
		snprintf(c->key_file, sizeof c->key_file, "%.*s/server.key", PATH_MAX - 12, c->data_dir);
	if (c->shards <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->shards = n < 1 ? 1 : n > VOUCH_MAX_SHARDS ? VOUCH_MAX_SHARDS : (int)n;
	}
	return 0;
}
