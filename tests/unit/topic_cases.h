/*
 * Topic filter / topic name matching cases from MQTT 5.0 section 4.7 (and
 * 3.1.1 section 4.7), shared by the subscription tree and retained store
 * tests: each is checked both ways (filter in the tree, topic matched; topic
 * retained, filter matched).
 */
#ifndef VOUCH_TESTS_TOPIC_CASES_H
#define VOUCH_TESTS_TOPIC_CASES_H

#include <stdbool.h>
#include <string.h>

struct topic_case {
	const char *filter, *topic;
	int match;
};

static const struct topic_case topic_cases[] = {
	/* 4.7.1.2 multi-level wildcard */
	{ "sport/tennis/player1/#", "sport/tennis/player1", 1 },
	{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", 1 },
	{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1 },
	{ "sport/tennis/player1/#", "sport/tennis/player2", 0 },
	{ "sport/tennis/player1/#", "sport/tennis", 0 },
	{ "sport/tennis/player1/#", "sport/tennis/player1x", 0 },
	{ "sport/#", "sport", 1 },
	{ "sport/#", "sport/", 1 },
	{ "sport/#", "sports", 0 },
	{ "sport/#", "sport/tennis/player1", 1 },
	{ "#", "sport", 1 },
	{ "#", "sport/tennis", 1 },
	{ "#", "/", 1 },
	{ "#", "/finance", 1 },
	{ "#", "a/b/c/d/e/f", 1 },
	/* 4.7.1.3 single-level wildcard */
	{ "sport/tennis/+", "sport/tennis/player1", 1 },
	{ "sport/tennis/+", "sport/tennis/player2", 1 },
	{ "sport/tennis/+", "sport/tennis/player1/ranking", 0 },
	{ "sport/tennis/+", "sport/tennis", 0 },
	{ "sport/tennis/+", "sport/tennis/", 1 },
	{ "sport/+", "sport", 0 },
	{ "sport/+", "sport/", 1 },
	{ "+", "sport", 1 },
	{ "+", "/finance", 0 },
	{ "+/+", "/finance", 1 },
	{ "/+", "/finance", 1 },
	{ "/+", "finance", 0 },
	{ "+/tennis/#", "sport/tennis/player1/ranking", 1 },
	{ "+/tennis/#", "sport/tennis", 1 },
	{ "+/tennis/#", "sport/golf", 0 },
	{ "+/#", "a", 1 },
	{ "+/#", "a/b/c", 1 },
	{ "+/+/+", "a//b", 1 },
	{ "+/+/+", "//", 1 },
	{ "+/+/+", "a/b", 0 },
	/* 4.7.2 topics beginning with $ [MQTT-4.7.2-1] */
	{ "#", "$SYS/monitor/Clients", 0 },
	{ "#", "$SYS", 0 },
	{ "+/monitor/Clients", "$SYS/monitor/Clients", 0 },
	{ "+/monitor/Clients", "x/monitor/Clients", 1 },
	{ "+", "$SYS", 0 },
	{ "+/#", "$SYS/a", 0 },
	{ "$SYS/#", "$SYS/monitor/Clients", 1 },
	{ "$SYS/#", "$SYS", 1 },
	{ "$SYS/#", "$SYSX/a", 0 },
	{ "$SYS/monitor/+", "$SYS/monitor/Clients", 1 },
	{ "$SYS/+/Clients", "$SYS/monitor/Clients", 1 },
	{ "a/$x", "a/$x", 1 },
	{ "a/+", "a/$x", 1 },
	{ "a/#", "a/$x/y", 1 },
	/* empty levels and exact matches */
	{ "a//b", "a//b", 1 },
	{ "a//b", "a/b", 0 },
	{ "a//b", "a/x/b", 0 },
	{ "a/+/b", "a//b", 1 },
	{ "a/+/b", "a/x/b", 1 },
	{ "a/+/b", "a/x/y/b", 0 },
	{ "/", "/", 1 },
	{ "/", "//", 0 },
	{ "//", "//", 1 },
	{ "a/", "a/", 1 },
	{ "a/", "a", 0 },
	{ "a/b", "a/b", 1 },
	{ "a/b", "A/b", 0 },
	{ "a/b", "a/b/", 0 },
	{ "a/b", "a/b/c", 0 },
	{ "a/b", "a", 0 },
	{ "/finance", "/finance", 1 },
	{ "finance", "/finance", 0 },
	{ "a/b/#", "a/b", 1 },
	{ "a/b/#", "a", 0 },
};

/* Filters that must be refused [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]. */
static const char *const bad_filters[] = {
	"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/+b", "a/b+",
	"#/", "#/a", "a/#/", "a/##", "++", "+#", "$share/g", "$share/g/",
	"$share//a", "$share/g+/a", "$share/g#/a", "$share/g/a#", "$share/g/#/x",
};

/* Naive matching, straight from section 4.7. */
static inline bool naive_match(const char *f, const char *t)
{
	if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return false;
	for (;;) {
		const char *fe = strchr(f, '/'), *te = strchr(t, '/');
		size_t fl = fe ? (size_t)(fe - f) : strlen(f);
		size_t tl = te ? (size_t)(te - t) : strlen(t);

		if (fl == 1 && f[0] == '#')
			return true;
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
			return false;
		if (!fe && !te)
			return true;
		if (!te)  /* topic ended: only "/#" may remain */
			return strcmp(fe, "/#") == 0;
		if (!fe)
			return false;
		f = fe + 1;
		t = te + 1;
	}
}

#endif
