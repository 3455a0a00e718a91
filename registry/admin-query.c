/*
 * GET /api/v1/certificates: from the query string to a reg_query. Every
 * parameter is checked before anything runs; an unknown parameter or a bad
 * value is a 400 with a message naming it. Text filters are exact (cn, o,
 * ou) or by prefix (cnPrefix, oPrefix, ouPrefix); times are unix seconds or
 * RFC 3339; ranges are inclusive; every filter given must hold.
 */
#include "registry/admin-query.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/admin-int.h"
#include "registry/regfile.h"
#include "tls/cert.h"

static const char *const known[] = {
	"certificateId", "serial", "ca", "caSerial", "status",
	"cn", "cnPrefix", "o", "oPrefix", "ou", "ouPrefix", "clientId",
	"notBeforeFrom", "notBeforeTo", "notAfterFrom", "notAfterTo",
	"expiringWithinDays", "expired", "limit", "offset", NULL
};

static int bad(char *msg, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int num(const char *s, long long min, long long max, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	return *s && !*end && !errno && *v >= min && *v <= max ? 0 : -EINVAL;
}

/* Serials are stored without leading zero bytes. */
static int serial_arg(const char *s, uint8_t *out, size_t *len)
{
	int n = tls_unhex(s, out, REG_SERIAL_MAX);
	size_t z = 0;

	if (n <= 0)
		return -EINVAL;
	while (z + 1 < (size_t)n && out[z] == 0)
		z++;
	memmove(out, out + z, (size_t)n - z);
	*len = (size_t)n - z;
	return 0;
}

static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

int admq_time(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	const char *p = s;
	long long v;

	if (*s && (*s == '-' || (*s >= '0' && *s <= '9')) && !num(s, -(1LL << 40), 1LL << 40, &v)) {
		*out = v;
		return 0;
	}
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
	    digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &se))
		return -EINVAL;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;        /* whole seconds: the fraction is dropped */
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = se };
	time_t t = timegm(&tm);
	if (tm.tm_mday != d)
		return -EINVAL;     /* 2025-02-30 */
	*out = (int64_t)t - sign * (oh * 3600 + om * 60);
	return 0;
}

struct ca_match {
	struct admq *a;
	uint8_t serial[REG_SERIAL_MAX];
	size_t len, n;
	bool nomem;
};

static int ca_each(void *ctx, const struct reg_ca *ca)
{
	struct ca_match *m = ctx;
	struct admq *a = m->a;

	if (ca->serial_len != m->len || memcmp(ca->serial, m->serial, m->len) ||
	    (a->q.n_ca && memcmp(ca->id, a->ca, REG_ID_LEN)))
		return 0;
	void *p = realloc(a->cas, (m->n + 1) * sizeof(*a->cas));
	if (!p) {
		m->nomem = true;
		return 1;
	}
	a->cas = p;
	memcpy(a->cas[m->n++], ca->id, REG_ID_LEN);
	return 0;
}

static void text(struct reg_qtext *t, const char *exact, const char *prefix)
{
	t->s = prefix ? prefix : exact;
	t->len = t->s ? strlen(t->s) : 0;
	t->prefix = prefix != NULL;
}

/* Narrow [*from, *to] by the parameters kf and kt. */
static int range(const struct admin_req *rq, const char *kf, const char *kt,
		 int64_t *from, int64_t *to, char *msg, size_t len)
{
	const char *s;

	if ((s = admin_arg(rq, kf)) && admq_time(s, from))
		return bad(msg, len, "\"%s\" must be unix seconds or an RFC 3339 time such as 2025-01-31T00:00:00Z", kf);
	if ((s = admin_arg(rq, kt)) && admq_time(s, to))
		return bad(msg, len, "\"%s\" must be unix seconds or an RFC 3339 time such as 2025-01-31T00:00:00Z", kt);
	return 0;
}

int admq_parse(struct admq *a, const struct admin_req *rq,
	       const struct registry *reg, int64_t now, char *msg, size_t len)
{
	struct reg_query *q = &a->q;
	const char *s;
	long long v;

	memset(a, 0, sizeof(*a));
	reg_query_init(q);
	q->limit = ADMQ_PAGE_DEFAULT;
	for (int i = 0; i < rq->n_args; i++) {
		size_t k;
		for (k = 0; known[k] && strcmp(known[k], rq->arg_key[i]); k++)
			;
		if (!known[k])
			return bad(msg, len, "unknown parameter \"%s\"", rq->arg_key[i]);
	}
	if ((s = admin_arg(rq, "certificateId"))) {
		if (admin_parse_id(s, a->id))
			return bad(msg, len, "\"certificateId\" must be a certificate ID (64 hex digits)");
		q->id = a->id;
	}
	if ((s = admin_arg(rq, "status")) && reg_status_parse(s, &q->status))
		return bad(msg, len, "unknown status \"%s\"", s);
	if ((s = admin_arg(rq, "serial"))) {
		if (serial_arg(s, a->serial, &q->serial_len))
			return bad(msg, len, "\"serial\" must be hex");
		q->serial = a->serial;
	}
	if ((s = admin_arg(rq, "ca"))) {
		if (admin_parse_id(s, a->ca))
			return bad(msg, len, "\"ca\" must be a certificate ID (64 hex digits)");
		q->by_ca = true;
		q->ca = (const uint8_t (*)[REG_ID_LEN])&a->ca;
		q->n_ca = 1;
	}
	if ((s = admin_arg(rq, "caSerial"))) {
		struct ca_match m = { .a = a };
		if (serial_arg(s, m.serial, &m.len))
			return bad(msg, len, "\"caSerial\" must be hex");
		reg_ca_foreach_mt(reg, ca_each, &m);
		if (m.nomem)
			return -ENOMEM;
		q->by_ca = true;
		q->ca = (const uint8_t (*)[REG_ID_LEN])a->cas;
		q->n_ca = m.n;
	}
	text(&q->cn, admin_arg(rq, "cn"), admin_arg(rq, "cnPrefix"));
	text(&q->o, admin_arg(rq, "o"), admin_arg(rq, "oPrefix"));
	text(&q->ou, admin_arg(rq, "ou"), admin_arg(rq, "ouPrefix"));
	if ((admin_arg(rq, "cn") && admin_arg(rq, "cnPrefix")) || (admin_arg(rq, "o") && admin_arg(rq, "oPrefix")) ||
	    (admin_arg(rq, "ou") && admin_arg(rq, "ouPrefix")))
		return bad(msg, len, "give a name exactly or by prefix, not both");
	q->client_id = admin_arg(rq, "clientId");
	if (range(rq, "notBeforeFrom", "notBeforeTo", &q->nb_from, &q->nb_to, msg, len) ||
	    range(rq, "notAfterFrom", "notAfterTo", &q->na_from, &q->na_to, msg, len))
		return -EINVAL;
	if ((s = admin_arg(rq, "expired"))) {
		if (!strcmp(s, "true")) {
			if (q->na_to > now - 1)
				q->na_to = now - 1;
		} else if (!strcmp(s, "false")) {
			if (q->na_from < now)
				q->na_from = now;
		} else {
			return bad(msg, len, "\"expired\" must be true or false");
		}
	}
	if ((s = admin_arg(rq, "expiringWithinDays"))) {
		if (num(s, 0, 36500, &v))
			return bad(msg, len, "\"expiringWithinDays\" must be a number from 0 to 36500");
		if (q->na_from < now)
			q->na_from = now;
		if (q->na_to > now + v * 86400)
			q->na_to = now + v * 86400;
	}
	if ((s = admin_arg(rq, "limit"))) {
		if (num(s, 1, ADMIN_LIST_MAX, &v))
			return bad(msg, len, "\"limit\" must be a number from 1 to %d", ADMIN_LIST_MAX);
		q->limit = (uint64_t)v;
	}
	if ((s = admin_arg(rq, "offset"))) {
		if (num(s, 0, LLONG_MAX, &v))
			return bad(msg, len, "\"offset\" must be a number from 0 to %lld", LLONG_MAX);
		q->offset = (uint64_t)v;
	}
	return 0;
}

void admq_free(struct admq *a)
{
	free(a->cas);
	a->cas = NULL;
}
