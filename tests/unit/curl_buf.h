/*
 * tests/unit/curl_buf.h - a libcurl write callback collecting an answer
 * into a NUL-terminated malloc'd buffer, for the unit tests that talk to
 * the admin API over real HTTP. Include after the CHECK macro.
 */
#ifndef VOUCH_TESTS_UNIT_CURL_BUF_H
#define VOUCH_TESTS_UNIT_CURL_BUF_H

#include <stdlib.h>
#include <string.h>

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	struct buf *b = ctx;
	char *q = realloc(b->p, b->n + sz * n + 1);

	CHECK(q);
	memcpy(q + b->n, p, sz * n);
	b->p = q;
	b->n += sz * n;
	b->p[b->n] = '\0';
	return sz * n;
}

#endif
