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

	static struct broker_rt rt;
	if (rt_init(&rt, &cfg, &broker_ops, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		rt_destroy(&rt);
		return 1;
	}
	log_info("%d shards; %s", rt.n, rt.io_desc);
	log_info("direct descriptors: not used (a connection moves to the home shard of its client ID)");
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
		if (sig == SIGHUP)
			log_info("SIGHUP: nothing to reload");
	}
	rt_stop(&rt);
	/* what the stopped shards left in the rings */
	for (int i = 0; i < rt.n * (rt.n + 1); i++) {
		struct xmsg m;
		while (spsc_pop_mt(&rt.rings[i], &m))
			route_discard_xmsg(&m);
	}
	rt_destroy(&rt);
	log_info("stopped");
	return 0;
}
