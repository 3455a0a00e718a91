/*
 * vouchd: flags, start-up, signals and orderly shutdown. The shards do the
 * work; the main thread waits for a signal.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/spsc.h"
#include "mqtt/broker.h"
#include "registry/regfile.h"
#include "registry/registrar.h"
#include "tls/server.h"

static int add_ca(void *ctx, const struct reg_ca *ca)
{
	if (tls_server_add_ca_mt(ctx, ca->der, ca->der_len) != 0)
		log_warn("TLS: cannot use a registered CA as trust anchor");
	return 0;
}

int main(int argc, char **argv)
{
	static struct vouch_config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	int rc = config_parse_args(&cfg, argc, argv, err, sizeof err);
	if (rc == 1) {
		config_usage(stdout);
		return 0;
	}
	if (rc == 0)
		rc = config_finish(&cfg, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	log_set_level((enum log_level)cfg.log_level);
	if (mkdir(cfg.data_dir, 0750) != 0 && errno != EEXIST) {
		fprintf(stderr, "vouchd: --data-dir: cannot create '%s': %s\n", cfg.data_dir, strerror(errno));
		return 2;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	/* shard threads inherit the mask: signals go to the main thread */
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	static struct vouch_app app;
	app.cfg = &cfg;
	if (reg_open(&app.reg, cfg.data_dir, err, sizeof err) != 0) {
		fprintf(stderr, "vouchd: registry: %s\n", err);
		return 1;
	}
	if (err[0])
		log_warn("registry: %s", err);
	struct reg_counts counts;
	reg_counts_mt(app.reg, &counts);
	log_info("registry: %llu CA(s), %llu device certificate(s)",
		 (unsigned long long)counts.cas, (unsigned long long)counts.devices);

	bool any_tls = false;
	for (int i = 0; i < cfg.n_listeners; i++)
		any_tls |= cfg.listeners[i].tls;
	if (any_tls) {
		if (tls_server_new(&app.tls, cfg.cert_file, cfg.key_file, cfg.require_certificate,
				   err, sizeof err) != 0) {
			fprintf(stderr, "vouchd: TLS: %s\n", err);
			reg_close(app.reg);
			return 1;
		}
		/* every registered CA is a trust anchor; an INACTIVE one is
		 * refused by the connect decision, not by the handshake */
		reg_ca_foreach_mt(app.reg, add_ca, app.tls);
		/* a returning device's CA signature is not checked again */
		tls_server_set_known_mt(app.tls, identity_known_mt, NULL);
	}

	static struct broker_rt rt;
	if (rt_init(&rt, &cfg, &broker_ops, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		rt_destroy(&rt);
		reg_close(app.reg);
		return 1;
	}
	rt.app = &app;
	struct registrar_cfg rcfg = {
		.admin_listen = cfg.admin_listen,
		.admin_token_file = cfg.admin_token_file[0] ? cfg.admin_token_file : NULL,
		.signup_rate = cfg.signup_rate,
		.signup_burst = cfg.signup_burst,
		.expiry_warning_days = cfg.expiry_warning_days,
		.data_dir = cfg.data_dir,
		.crl_dir = cfg.crl_dir[0] ? cfg.crl_dir : NULL,
		.issuing_ca = cfg.issuing_ca[0] ? cfg.issuing_ca : NULL,
		.issuing_key = cfg.issuing_key[0] ? cfg.issuing_key : NULL,
	};
	if (registrar_start(&app.registrar, app.reg, &rt, app.tls, &rcfg, err, sizeof err) != 0) {
		fprintf(stderr, "vouchd: %s\n", err);
		rt_destroy(&rt);
		reg_close(app.reg);
		return 1;
	}
	if (registrar_admin_port(app.registrar))
		log_info("admin API on http://%s (port %d)", cfg.admin_listen,
			 registrar_admin_port(app.registrar));
	log_info("%d shards; %s", rt.n, rt.io_desc);
	if (rt.direct_table)
		log_info("direct descriptors: a ring file table of %u entries per shard, so connections do not count against the open-files limit",
			 rt.direct_table);
	else
		log_info("direct descriptors: not used (%s)", rt.direct_why);
	for (int i = 0; i < cfg.n_listeners; i++)
		log_info("listening on %s (%s)", cfg.listeners[i].text, cfg.listeners[i].tls ? "MQTT over TLS" : "MQTT");
	if (rt_start(&rt) != 0) {
		log_error("a shard failed to start");
		return 1;
	}
	log_info("vouchd ready");

	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		if (sig == SIGHUP) {
			if (!app.tls) {
				log_info("SIGHUP: no TLS listener, nothing to reload");
			} else if (tls_server_reload(app.tls, err, sizeof err) != 0) {
				log_error("SIGHUP: keeping the old certificate: %s", err);
			} else {
				log_info("SIGHUP: server certificate and key reloaded");
			}
		}
	}
	rt_stop(&rt);
	registrar_stop(app.registrar);
	/* what the stopped shards left in the rings */
	for (int i = 0; i < rt.n * (rt.n + 1); i++) {
		struct xmsg m;
		while (spsc_pop_mt(&rt.rings[i], &m))
			route_discard_xmsg(&m);
	}
	rt_destroy(&rt);
	if (app.tls)
		tls_server_free(app.tls);
	reg_close(app.reg);
	log_info("stopped");
	return 0;
}
