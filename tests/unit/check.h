/*
 * tests/unit/check.h - the checks of the certificate and TLS unit tests:
 * each failed check prints where and what, and counts in the including
 * file's `failures` (a plain or _Atomic int it declares before this).
 */
#ifndef VOUCH_TESTS_UNIT_CHECK_H
#define VOUCH_TESTS_UNIT_CHECK_H

#include <stdio.h>
#include <string.h>

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #c);                                \
			failures++;                                           \
		}                                                             \
	} while (0)
#define CHECK_INT(a, b)                                                       \
	do {                                                                  \
		long long _a = (long long)(a), _b = (long long)(b);           \
		if (_a != _b) {                                               \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n",     \
				__FILE__, __LINE__, #a, _a, _b);              \
			failures++;                                           \
		}                                                             \
	} while (0)
#define CHECK_STR(a, b)                                                       \
	do {                                                                  \
		const char *_a = (a), *_b = (b);                              \
		if (strcmp(_a, _b) != 0) {                                    \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #a, _a, _b);              \
			failures++;                                           \
		}                                                             \
	} while (0)

#endif
