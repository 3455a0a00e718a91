/*
 * Command-line flags and config file (keys are the flag names).
 */
#ifndef VOUCH_CORE_CONFIG_H
#define VOUCH_CORE_CONFIG_H

#include <stdio.h>

#include "core/config-t.h"

/* Embedded defaults (no listeners yet: config_finish adds 0.0.0.0:1883). */
void config_defaults(struct vouch_config *c);

/*
 * Parse argv into c. On a bad flag or value writes one line to err and
 * returns -EINVAL; returns 1 when --help was printed (exit 0), else 0.
 * Main thread only, before threads start.
 */
int config_parse_args(struct vouch_config *c, int argc, char **argv,
		      char *err, size_t errlen);

/* Apply a config file: "key = value" lines, '#' comments. Same rules. */
int config_load_file(struct vouch_config *c, const char *path, char *err,
		     size_t errlen);

/* Resolve defaults that depend on the machine (shards = online CPUs). */
int config_finish(struct vouch_config *c, char *err, size_t errlen);

/* Parse "ADDR:PORT" / "[v6]:PORT" into l. Returns 0 or -EINVAL. */
int config_parse_listener(const char *s, struct vouch_listener *l);

void config_usage(FILE *out);

#endif
