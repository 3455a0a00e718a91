/*
 * Authorization: the engine (filter algebra, compiling a policy for a
 * session, the three decisions with a small per-session cache) and the
 * broker's side of it (CONNECT, live updates, the checks the handlers
 * call). See mqtt/policy.h for the rules and docs/policies.md for users.
 *
 * Cost. A session without an effective policy pays one branch per
 * PUBLISH. With one, the variables were substituted once at CONNECT; a
 * PUBLISH costs a hash and a compare in the session's decision cache (the
 * statements are evaluated once per topic, until the policy changes); a
 * subscription is decided once at SUBSCRIBE, and only one that can match a
 * topic the session may not receive is checked per delivered message.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/log.h"
#include "mqtt/broker.h"
#include "mqtt/policy.h"
#include "mqtt/topic_tree.h"
#include "registry/policies.h"
#include "registry/provision.h"
#include "registry/regfile.h"
#include "registry/registrar.h"
#include "tls/cert.h"

/* ---- filters ------------------------------------------------------------- */

/* The next level of s[0..len) at *pos; false once past the end. */
static bool level(const char *s, size_t len, size_t *pos, const char **lp, size_t *ln)
{
	if (*pos > len)
		return false;
	const char *e = memchr(s + *pos, '/', len - *pos);
	size_t end = e ? (size_t)(e - s) : len;

	*lp = s + *pos;
	*ln = end - *pos;
	*pos = end + 1;
	return true;
}

static bool is_hash(const char *l, size_t n) { return n == 1 && l[0] == '#'; }
static bool is_plus(const char *l, size_t n) { return n == 1 && l[0] == '+'; }
static bool is_wild(const char *l, size_t n) { return is_hash(l, n) || is_plus(l, n); }
/* A first level naming a '$' topic, which wildcards do not match [MQTT-4.7.2-1]. */
static bool is_dollar(const char *l, size_t n) { return n && l[0] == '$' && !is_wild(l, n); }

/* See mqtt/policy.h. */
bool pol_covers(const char *f, size_t fl, const char *s, size_t sl)
{
	size_t fp = 0, sp = 0;
	bool first = true;

	for (;;) {
		const char *a = NULL, *b = NULL;
		size_t an = 0, bn = 0;
		bool fh = level(f, fl, &fp, &a, &an), sh = level(s, sl, &sp, &b, &bn);

		if (fh && is_hash(a, an))
			/* "a/#" also matches "a"; "#" matches no '$' topic */
			return !(first && sh && is_dollar(b, bn));
		if (!fh || !sh)
			return !fh && !sh;
		if (is_hash(b, bn)) {
			/* only "#", or at the first level "+/#" (no topic is
			 * empty, so "#" has no parent there) */
			const char *c;
			size_t cn;

			return first && is_plus(a, an) && level(f, fl, &fp, &c, &cn) &&
			       is_hash(c, cn);
		}
		if (is_plus(b, bn)) {
			if (!is_plus(a, an))
				return false;
		} else if (is_plus(a, an)) {
			if (first && is_dollar(b, bn))
				return false;
		} else if (an != bn || memcmp(a, b, an) != 0) {
			return false;
		}
		first = false;
	}
}

/* See mqtt/policy.h. */
bool pol_overlaps(const char *x, size_t xl, const char *y, size_t yl)
{
	size_t xp = 0, yp = 0;
	bool first = true;

	for (;;) {
		const char *a = NULL, *b = NULL;
		size_t an = 0, bn = 0;
		bool ah = level(x, xl, &xp, &a, &an), bh = level(y, yl, &yp, &b, &bn);
		bool ahash = ah && is_hash(a, an), bhash = bh && is_hash(b, bn);

		if (ahash || bhash) {
			if (first && ((ahash && bh && is_dollar(b, bn)) || (bhash && ah && is_dollar(a, an))))
				return false;
			return true;
		}
		if (!ah || !bh)
			return !ah && !bh;
		if (is_plus(a, an) || is_plus(b, bn)) {
			if (first && (is_dollar(a, an) || is_dollar(b, bn)))
				return false;
		} else if (an != bn || memcmp(a, b, an) != 0) {
			return false;
		}
		first = false;
	}
}

/* ---- compiling ---------------------------------------------------------- */

static const char *var_value(const struct pol_vars *v, const char *name, size_t n)
{
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
		{ "clientid", offsetof(struct pol_vars, clientid) },
		{ "cn", offsetof(struct pol_vars, cn) },
		{ "serial", offsetof(struct pol_vars, serial) },
		{ "ou", offsetof(struct pol_vars, ou) },
		{ "certid", offsetof(struct pol_vars, certid) },
	};

	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strlen(map[i].name) == n && !memcmp(map[i].name, name, n))
			return *(const char *const *)((const char *)v + map[i].off);
	return NULL;
}

/*
 * Substitute the variables of template t. A value is literal: one that is
 * absent, empty, or holds '/', '+', '#' could only widen or shift the
 * filter, so the template then yields nothing (-ENOENT) and its statement
 * matches nothing. 0 with a malloc'd *out, -ENOENT, -ENOMEM.
 */
static int substitute(const char *t, const struct pol_vars *v, char **out, size_t *olen)
{
	size_t cap = strlen(t) + 1, n = 0;
	char *o = malloc(cap);

	if (!o)
		return -ENOMEM;
	for (const char *p = t; *p;) {
		const char *val = NULL;
		size_t vl = 0, adv = 1;

		if (p[0] == '$' && p[1] == '{') {
			const char *close = strchr(p, '}');

			if (close) {
				val = var_value(v, p + 2, (size_t)(close - p - 2));
				if (!val || !*val || strpbrk(val, "/+#")) {
					free(o);
					return -ENOENT;
				}
				vl = strlen(val);
				adv = (size_t)(close - p) + 1;
			}
		}
		if (!val) {
			val = p;
			vl = 1;
		}
		if (n + vl + 1 > cap) {
			size_t nc = (n + vl + 1) * 2;
			char *no = realloc(o, nc);

			if (!no) {
				free(o);
				return -ENOMEM;
			}
			o = no;
			cap = nc;
		}
		memcpy(o + n, val, vl);
		n += vl;
		p += adv;
	}
	o[n] = '\0';
	if (n > UINT16_MAX) {
		free(o);
		return -ENOENT;         /* no MQTT topic is that long */
	}
	*out = o;
	*olen = n;
	return 0;
}

void pol_compiled_free(struct pol_compiled *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->n; i++)
		free(c->st[i].filter);
	free(c->st);
	free(c->cache);
	free(c);
}

/* See mqtt/policy.h. */
int pol_compile(const struct pol_doc *d, const struct pol_vars *v, struct pol_compiled **out)
{
	struct pol_compiled *c = calloc(1, sizeof *c);
	uint32_t total = 0;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	for (uint32_t i = 0; i < d->n_stmts; i++)
		total += d->stmts[i].n_topics;
	if (total && !(c->st = calloc(total, sizeof *c->st))) {
		free(c);
		return -ENOMEM;
	}
	/* deny statements first: the evaluation can stop at the first one
	 * that matches */
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < d->n_stmts; i++) {
			const struct pol_stmt *s = &d->stmts[i];

			if (s->deny != (pass == 0))
				continue;
			for (uint32_t k = 0; k < s->n_topics; k++) {
				char *f;
				size_t fl;
				int rc = substitute(s->topics[k], v, &f, &fl);

				if (rc == -ENOENT)
					continue;
				if (rc) {
					pol_compiled_free(c);
					return rc;
				}
				c->st[c->n++] = (struct pol_cstmt){ .deny = s->deny, .actions = s->actions,
								    .len = (uint16_t)fl, .filter = f };
			}
		}
	}
	*out = c;
	return 0;
}

/* ---- deciding ------------------------------------------------------------- */

static const struct {
	const char *f;
	size_t len;
} admin_only[] = {
	{ "$SYS/certificates/#", 19 },
	{ "$SYS/presence/#", 15 },
};

static bool is_sys(const char *t, size_t len)
{
	return len >= 4 && !memcmp(t, "$SYS", 4) && (len == 4 || t[4] == '/');
}

static bool admin_topic(const char *t, size_t len)
{
	for (size_t i = 0; i < sizeof admin_only / sizeof admin_only[0]; i++)
		if (pol_covers(admin_only[i].f, admin_only[i].len, t, len))
			return true;
	return false;
}

/* Deny wins; nothing allowed unless a statement allows it. A topic denied
 * to subscribe to is not received either: a wider subscription that was
 * allowed does not deliver it. */
static bool eval(const struct pol_compiled *c, uint8_t action, const char *t, size_t len)
{
	uint8_t deny_mask = action == POL_RECEIVE ? (POL_RECEIVE | POL_SUBSCRIBE) : action;

	for (uint32_t i = 0; i < c->n; i++) {
		const struct pol_cstmt *s = &c->st[i];

		if ((s->actions & (s->deny ? deny_mask : action)) &&
		    pol_covers(s->filter, s->len, t, len))
			return !s->deny;        /* denies come first */
	}
	return false;
}

/* eval() through the session's cache. */
static bool cached(struct pol_compiled *c, uint8_t action, const char *t, size_t len)
{
	uint8_t known = action == POL_PUBLISH ? POL_C_PUB_KNOWN : POL_C_RECV_KNOWN;
	uint8_t okbit = action == POL_PUBLISH ? POL_C_PUB_OK : POL_C_RECV_OK;

	if (len > POL_CACHE_TOPIC || c->n == 0)
		return c->n && eval(c, action, t, len);
	if (!c->cache && !(c->cache = calloc(POL_CACHE_N, sizeof *c->cache)))
		return eval(c, action, t, len);
	uint64_t h = XXH3_64bits(t, len);
	struct pol_cache_ent *e = &c->cache[h & (POL_CACHE_N - 1)];

	if (e->h != h || e->len != len || memcmp(e->t, t, len) != 0) {
		e->h = h;
		e->len = (uint16_t)len;
		memcpy(e->t, t, len);
		e->bits = 0;
	}
	if (!(e->bits & known))
		e->bits |= (uint8_t)(known | (eval(c, action, t, len) ? okbit : 0));
	return e->bits & okbit;
}

/* See mqtt/policy.h. */
bool pol_may_publish(struct pol_conn *pc, const char *t, size_t len)
{
	if (is_sys(t, len)) {
		/* $SYS is the broker's: only the provisioning request topic
		 * may be granted (never forged events, statistics or
		 * provisioning answers), and only by a policy */
		if (len != sizeof PROVISION_TOPIC - 1 || memcmp(t, PROVISION_TOPIC, len) != 0 || !pc->c)
			return false;
	} else if (!pc->c) {
		return true;
	}
	return cached(pc->c, POL_PUBLISH, t, len);
}

/* See mqtt/policy.h. */
bool pol_may_receive(struct pol_conn *pc, const char *t, size_t len)
{
	if (!pc->admin && is_sys(t, len) && admin_topic(t, len))
		return false;
	if (!pc->c)
		return true;
	return cached(pc->c, POL_RECEIVE, t, len);
}

/* See mqtt/policy.h. */
int pol_sub_decide(const struct pol_conn *pc, const char *f, size_t len)
{
	bool admin_overlap = false, allowed = false, recv_all = false, recv_deny = false;

	if (!pc->admin) {
		for (size_t i = 0; i < sizeof admin_only / sizeof admin_only[0]; i++) {
			if (pol_covers(admin_only[i].f, admin_only[i].len, f, len))
				return -1;
			admin_overlap |= pol_overlaps(admin_only[i].f, admin_only[i].len, f, len);
		}
	}
	if (!pc->c)
		return admin_overlap ? POL_SUB_RECV_CHECK : 0;
	for (uint32_t i = 0; i < pc->c->n; i++) {
		const struct pol_cstmt *s = &pc->c->st[i];

		if (s->deny) {
			/* inside a denied filter: refused; sharing topics
			 * with one: allowed, those topics not delivered */
			if ((s->actions & POL_SUBSCRIBE) && pol_covers(s->filter, s->len, f, len))
				return -1;
			if ((s->actions & (POL_SUBSCRIBE | POL_RECEIVE)) &&
			    pol_overlaps(s->filter, s->len, f, len))
				recv_deny = true;
			continue;
		}
		if ((s->actions & POL_SUBSCRIBE) && pol_covers(s->filter, s->len, f, len))
			allowed = true;
		if ((s->actions & POL_RECEIVE) && pol_covers(s->filter, s->len, f, len))
			recv_all = true;
	}
	if (!allowed)
		return -1;
	return recv_all && !recv_deny && !admin_overlap ? 0 : POL_SUB_RECV_CHECK;
}

/* See mqtt/policy.h. */
void pol_conn_clear(struct pol_conn *pc)
{
	pol_compiled_free(pc->c);
	if (pc->cert) {
		free(pc->cert->cn);
		free(pc->cert->serial);
		free(pc->cert->ou);
		free(pc->cert);
	}
	memset(pc, 0, sizeof *pc);
}

/* ---- the broker's side -------------------------------------------------- */

static struct vouch_app *app_of(struct bshard *bs)
{
	return bs->sh->rt ? bs->sh->rt->app : NULL;
}

void policy_shard_start(struct bshard *bs)
{
	struct vouch_app *app = app_of(bs);

	bs->pol_set = app && app->registrar ? pol_initial_ref_mt(app->registrar) : NULL;
}

void policy_shard_stop(struct bshard *bs)
{
	pol_set_unref_mt(bs->pol_set);
	bs->pol_set = NULL;
}

/* The certificate's serial (hex) and OU, read once from the registry and
 * only for a policy that uses them: the connect path reads no registry. */
static void load_attrs(struct bshard *bs, struct pol_cert *pc)
{
	struct vouch_app *app = app_of(bs);
	struct reg_device d;

	pc->attrs = true;
	if (!app || !app->reg || reg_dev_get_mt(app->reg, pc->cert_id, &d) != 0)
		return;
	pc->serial = malloc(2 * d.serial_len + 1);
	if (pc->serial)
		tls_hex(d.serial, d.serial_len, pc->serial);
	pc->ou = d.ou_len ? strndup(d.ou, d.ou_len) : NULL;
}

/* Compile the session's effective policy from the shard's current set.
 * Fails closed: a policy that cannot be compiled allows nothing. */
static void recompile(struct bshard *bs, struct session *s)
{
	struct pol_conn *pc = &s->pol;
	struct pol_cert *pcc = pc->cert;
	struct pol_doc *d = pcc ? pol_set_effective_mt(bs->pol_set, pcc->cert_id, pcc->ca_id, NULL)
				: NULL;
	char certid[65];

	pol_compiled_free(pc->c);
	pc->c = NULL;
	pc->rev = 0;
	pc->admin = !pcc && bs->sh->cfg->plain_role_admin;
	if (!d)
		return;
	if ((d->vars & (POL_V_SERIAL | POL_V_OU)) && !pcc->attrs)
		load_attrs(bs, pcc);
	tls_hex(pcc->cert_id, sizeof pcc->cert_id, certid);
	struct pol_vars v = { .clientid = s->client_id, .cn = pcc->cn, .serial = pcc->serial,
			      .ou = pcc->ou, .certid = certid };

	if (pol_compile(d, &v, &pc->c) != 0) {
		pc->c = calloc(1, sizeof *pc->c);      /* no statements: nothing allowed */
		if (!pc->c) {
			/* cannot even deny by policy: the connection goes */
			if (s->mc)
				mconn_close(bs->sh, s->mc, MQTT_RC_UNSPECIFIED, "out of memory for the policy");
			return;
		}
	}
	pc->rev = d->rev;
	pc->admin = d->admin;
}

static uint8_t opts_of(const struct sub_rec *r)
{
	return r->options;
}

/* Check a session's subscriptions against its (new) policy: drop those no
 * longer allowed, and set or clear the per-message receive check. Returns
 * how many were dropped. */
static uint32_t refresh_subs(struct bshard *bs, struct session *s)
{
	uint32_t dropped = 0;

	for (uint32_t i = 0; i < s->n_subs;) {
		struct sub_rec *r = &s->subs[i];
		const char *f = r->filter, *rest = f;
		size_t rl = r->len;

		if (tt_parse_shared(f, r->len, NULL, NULL, &rest, &rl) < 0) {
			i++;
			continue;
		}
		int d = pol_sub_decide(&s->pol, rest, rl);

		if (d < 0) {
			log_info("policy: %s loses its subscription %s", s->client_id, f);
			route_unsubscribe(bs, s, f, r->len); /* moves the last one here */
			dropped++;
			continue;
		}
		uint8_t o = opts_of(r), want = (uint8_t)((o & ~POL_SUB_RECV_CHECK) | d);

		if (o != want)
			route_subscribe(bs, s, f, r->len, want, r->sub_id);
		i++;
	}
	return dropped;
}

/* See mqtt/policy.h. */
void policy_connect(struct bshard *bs, struct mconn *mc, struct session *s, bool present)
{
	struct pol_conn *pc = &s->pol;

	pol_conn_clear(pc);
	if (mc->has_cert) {
		pc->cert = calloc(1, sizeof *pc->cert);
		if (!pc->cert) {
			/* fails closed, as a policy that cannot be compiled */
			pc->c = calloc(1, sizeof *pc->c);
			if (!pc->c)
				mconn_close(bs->sh, mc, MQTT_RC_UNSPECIFIED, "out of memory for the policy");
			return;
		}
		memcpy(pc->cert->cert_id, mc->cert_id, sizeof pc->cert->cert_id);
		memcpy(pc->cert->ca_id, mc->ca_id, sizeof pc->cert->ca_id);
		pc->cert->cn = mc->cert_cn ? strdup(mc->cert_cn) : NULL;
	}
	recompile(bs, s);
	if (present)
		refresh_subs(bs, s);
}

/* See mqtt/policy.h. */
bool policy_may_publish(struct mconn *mc, const uint8_t *topic, size_t len)
{
	return pol_may_publish(&mc->s->pol, (const char *)topic, len);
}

/* See mqtt/policy.h. */
int policy_sub_check(struct mconn *mc, const uint8_t *f, size_t len)
{
	const char *rest = (const char *)f;
	size_t rl = len;

	if (tt_parse_shared((const char *)f, len, NULL, NULL, &rest, &rl) < 0 ||
	    tt_filter_levels(rest, rl) < 0)
		return 0;
	return pol_sub_decide(&mc->s->pol, rest, rl);
}

/* See mqtt/policy.h. */
void policy_on_xmsg(struct bshard *bs, const struct xmsg *m)
{
	uint32_t changed = 0, dropped = 0;

	pol_set_unref_mt(bs->pol_set);
	bs->pol_set = m->p;
	for (uint32_t i = 0; i < bs->n_sess_slots; i++) {
		struct session *s = bs->sess_slots[i];

		if (!s || !s->pol.cert)
			continue;
		struct pol_doc *d = pol_set_effective_mt(bs->pol_set, s->pol.cert->cert_id,
							 s->pol.cert->ca_id, NULL);

		if ((d ? d->rev : 0) == s->pol.rev)
			continue;
		recompile(bs, s);
		dropped += refresh_subs(bs, s);
		changed++;
	}
	if (changed)
		log_info("policy: shard %d applied a change to %u session(s), %u subscription(s) dropped",
			 bs->sh->id, changed, dropped);
}
