/*
 * Logging: one line per event on stderr, with a level chosen by the cause.
 * Any thread may log; a line is written with one write(2) so lines from
 * different shards never interleave.
 */
#ifndef VOUCH_CORE_LOG_H
#define VOUCH_CORE_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NONE };

/* Set the threshold (process-wide; call before threads start). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn", "error"; -EINVAL otherwise. */
int log_parse_level(const char *s, enum log_level *out);
/* Name of the calling thread's context, e.g. "shard 3" (thread-local). */
void log_set_thread_name(const char *name);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Rate limiting for per-peer noise: returns 1 when a line may be logged now,
 * allowing `burst` lines and then one per `interval_ms`. The state lives in
 * the caller (shard-local). Suppressed lines are counted in *suppressed.
 */
struct log_limit {
	uint64_t next_ms;
	uint32_t tokens;
	uint32_t suppressed;
};
int log_limit_ok(struct log_limit *l, uint64_t now_ms, uint32_t burst,
		 uint32_t interval_ms);

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_get_level() <= LOG_INFO) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
