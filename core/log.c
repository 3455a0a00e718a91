/*
 * Logging to stderr: timestamp, level, thread context, message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static enum log_level g_level = LOG_INFO;
static __thread char t_name[24] = "main";

void log_set_level(enum log_level lvl) { g_level = lvl; }
enum log_level log_get_level(void) { return g_level; }

int log_parse_level(const char *s, enum log_level *out)
{
	static const char *names[] = { "debug", "info", "warn", "error", "none" };
	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

void log_set_thread_name(const char *name)
{
	snprintf(t_name, sizeof t_name, "%s", name);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *tags[] = { "debug", "info", "warn", "error" };
	if (lvl < g_level || lvl >= LOG_NONE)
		return;
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[lvl], t_name);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

int log_limit_ok(struct log_limit *l, uint64_t now_ms, uint32_t burst,
		 uint32_t interval_ms)
{
	if (now_ms >= l->next_ms) {
		l->tokens = burst;
		l->next_ms = now_ms + interval_ms;
	}
	if (l->tokens > 0) {
		l->tokens--;
		return 1;
	}
	l->suppressed++;
	return 0;
}
