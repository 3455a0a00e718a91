/*
 * Registry operations: the writer's changes (which record a request turns
 * into, by the rules of DESIGN.md "Certificate states") and the readers'
 * lock-free lookups, snapshots, history and iteration.
 *
 * Readers see the durable view: they load durable_end once per call and,
 * from a key's newest record, walk its chain back to the newest record below
 * it. Everything a reader reads is either an atomic index slot or an
 * immutable record, so a snapshot is never torn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "registry/regfile-int.h"
#include "registry/regfile.h"

/* ---- building a record in the writer's buffer --------------------------- */

struct build {
	struct registry *r;
	struct regf_rec *h;
	uint8_t *body, *p;
};

static void *build_start(struct build *b, struct registry *r, uint16_t type,
			 uint64_t prev, int64_t time, size_t fixed)
{
	b->r = r;
	b->h = (struct regf_rec *)(void *)r->wbuf;
	memset(r->wbuf, 0, sizeof(*b->h) + fixed);
	b->h->type = type;
	b->h->prev = prev;
	b->h->time = time;
	b->body = r->wbuf + sizeof(*b->h);
	b->p = b->body + fixed;
	return b->body;
}

static void put_bin(struct build *b, const void *p, size_t n)
{
	if (n)
		memcpy(b->p, p, n);
	b->p += n;
}

static void put_str(struct build *b, const char *s, size_t n)
{
	put_bin(b, s, n);
	*b->p++ = 0;
}

/* Seal and append; returns the record's offset or -errno. */
static int64_t build_finish(struct build *b, const char *actor, size_t actor_len)
{
	b->h->body_len = (uint32_t)(b->p - b->body);
	b->h->actor_len = (uint16_t)actor_len;
	put_bin(b, actor, actor_len);
	return regf_append(b->r);
}

static int check_by(const struct reg_by *by, const char **actor, size_t *len,
		    int64_t *now)
{
	*actor = by && by->actor ? by->actor : "";
	*len = strlen(*actor);
	*now = by && by->now ? by->now : regf_clock();
	return *len > REG_ACTOR_MAX ? -ENAMETOOLONG : 0;
}

static size_t opt_len(const char *s)
{
	return s ? strlen(s) : 0;
}

static const char *opt_str(const char *s)
{
	return s ? s : "";
}

/* ---- lookups (writer: limit = UINT64_MAX; readers: durable_end) ---------- */

static uint64_t latest(const struct registry *r, enum regx_kind k,
		       const struct regx_key *key, uint64_t limit)
{
	uint64_t off = regx_find(r, k, key, regx_hash(r, k, key), NULL);

	return regf_visible(r, k, off, limit);
}

static uint64_t dev_latest(const struct registry *r, const uint8_t *id,
			   uint64_t limit)
{
	struct regx_key key = { .id = id };

	return latest(r, REGX_DEV, &key, limit);
}

static uint64_t ca_latest(const struct registry *r, const uint8_t *id,
			  uint64_t limit)
{
	struct regx_key key = { .id = id };

	return latest(r, REGX_CA, &key, limit);
}

static uint64_t ser_latest(const struct registry *r, const uint8_t *issuer,
			   const uint8_t *serial, size_t len, uint64_t limit)
{
	struct regx_key key = { issuer, serial, len };

	return latest(r, REGX_SER, &key, limit);
}

/* A live (registered, not deleted) record, or 0. */
static uint64_t live(const struct registry *r, uint64_t off)
{
	return off && !regf_is_delete(r, off) ? off : 0;
}

static uint64_t reader_limit(const struct registry *r)
{
	return atomic_load_explicit(&r->durable_end, memory_order_acquire);
}

/* Whether the holder s of a serial slot (as of limit) means "revoked". */
static bool ser_holder_revoked(const struct registry *r, uint64_t s,
			       uint64_t limit)
{
	if (!s)
		return false;
	if (regf_at(r, s)->type == REGF_REVOKE_SERIAL)
		return true;
	uint64_t last = dev_latest(r, regf_body(regf_at(r, s)), limit);
	return last && regf_rec_base(r, last) == s &&
	       regf_rec_status(r, last) == REG_REVOKED;
}

static int view(const struct registry *r, uint64_t off, struct regf_view *v)
{
	const char *why;

	return regf_parse(r->map + off, v, &why) ? -EIO : 0;
}

/* ---- CA changes (writer) ------------------------------------------------ */

static int check_names(const char *cn, const char *o, const char *ou)
{
	if (opt_len(cn) > REG_NAME_MAX || opt_len(o) > REG_NAME_MAX ||
	    opt_len(ou) > REG_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static int check_blobs(size_t serial_len, size_t der_len, const void *serial,
		       const void *der)
{
	if (serial_len == 0 || !serial || der_len == 0 || !der)
		return -EINVAL;
	if (serial_len > REG_SERIAL_MAX)
		return -ENAMETOOLONG;
	if (der_len > REG_DER_MAX)
		return -EMSGSIZE;
	return 0;
}

static int result(int64_t off)
{
	return off < 0 ? (int)off : 0;
}

int reg_ca_add(struct registry *r, const struct reg_ca_in *in,
	       const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc;
	int status = in->status ? (int)in->status : REG_ACTIVE;
	int auto_status = in->auto_status ? (int)in->auto_status : REG_ACTIVE;

	if ((rc = check_by(by, &actor, &alen, &now)) ||
	    (rc = check_names(in->cn, in->o, in->ou)) ||
	    (rc = check_blobs(in->serial_len, in->der_len, in->serial, in->der)))
		return rc;
	if ((status != REG_ACTIVE && status != REG_INACTIVE) ||
	    (auto_status != REG_ACTIVE && auto_status != REG_PENDING_ACTIVATION))
		return -EINVAL;
	uint64_t cur = ca_latest(r, in->id, UINT64_MAX);
	if (live(r, cur))
		return -EEXIST;

	struct build b;
	struct regf_ca_add *f = build_start(&b, r, REGF_CA_ADD, cur, now, sizeof(*f));
	memcpy(f->id, in->id, REG_ID_LEN);
	f->not_before = in->not_before;
	f->not_after = in->not_after;
	f->der_len = (uint32_t)in->der_len;
	f->status = (uint8_t)status;
	f->auto_register = in->auto_register;
	f->auto_status = (uint8_t)auto_status;
	f->serial_len = (uint8_t)in->serial_len;
	f->cn_len = (uint8_t)opt_len(in->cn);
	f->o_len = (uint8_t)opt_len(in->o);
	f->ou_len = (uint8_t)opt_len(in->ou);
	put_bin(&b, in->serial, in->serial_len);
	put_str(&b, opt_str(in->cn), f->cn_len);
	put_str(&b, opt_str(in->o), f->o_len);
	put_str(&b, opt_str(in->ou), f->ou_len);
	put_bin(&b, in->der, in->der_len);
	return result(build_finish(&b, actor, alen));
}

/* The CA's current status, auto_register and auto_status from its newest
 * record. */
static void ca_state(const struct registry *r, uint64_t off, int *status,
		     int *auto_reg, int *auto_status)
{
	const struct regf_rec *h = regf_at(r, off);

	if (h->type == REGF_CA_ADD) {
		const struct regf_ca_add *b = regf_body(h);
		*status = b->status;
		*auto_reg = b->auto_register;
		*auto_status = b->auto_status;
	} else {
		const struct regf_ca_state *b = regf_body(h);
		*status = b->status;
		*auto_reg = b->auto_register;
		*auto_status = b->auto_status;
	}
}

static int ca_change(struct registry *r, const uint8_t *id, int status,
		     int auto_reg, int auto_status, uint8_t what,
		     const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc, s0, a0, as0;

	if ((rc = check_by(by, &actor, &alen, &now)))
		return rc;
	uint64_t cur = live(r, ca_latest(r, id, UINT64_MAX));
	if (!cur)
		return -ENOENT;
	ca_state(r, cur, &s0, &a0, &as0);
	if (status < 0)
		status = s0;
	if (auto_reg < 0)
		auto_reg = a0;
	if (auto_status <= 0)
		auto_status = as0;
	if (status == s0 && auto_reg == a0 && auto_status == as0)
		return 0;

	struct build b;
	struct regf_ca_state *f = build_start(&b, r, REGF_CA_STATE, cur, now, sizeof(*f));
	memcpy(f->id, id, REG_ID_LEN);
	f->base = regf_rec_base(r, cur);
	f->status = (uint8_t)status;
	f->auto_register = (uint8_t)auto_reg;
	f->auto_status = (uint8_t)auto_status;
	f->what = what;
	return result(build_finish(&b, actor, alen));
}

int reg_ca_set_status(struct registry *r, const uint8_t id[REG_ID_LEN],
		      enum reg_status s, const struct reg_by *by)
{
	if (s != REG_ACTIVE && s != REG_INACTIVE)
		return -EINVAL;
	return ca_change(r, id, (int)s, -1, 0, REGF_WHAT_STATUS, by);
}

int reg_ca_set_auto(struct registry *r, const uint8_t id[REG_ID_LEN],
		    bool auto_register, enum reg_status initial,
		    const struct reg_by *by)
{
	if (initial && initial != REG_ACTIVE && initial != REG_PENDING_ACTIVATION)
		return -EINVAL;
	return ca_change(r, id, -1, auto_register, (int)initial,
			 REGF_WHAT_AUTO, by);
}

int reg_ca_delete(struct registry *r, const uint8_t id[REG_ID_LEN],
		  const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc;

	if ((rc = check_by(by, &actor, &alen, &now)))
		return rc;
	uint64_t cur = live(r, ca_latest(r, id, UINT64_MAX));
	if (!cur)
		return -ENOENT;
	int status = regf_rec_status(r, cur);
	if (status == REG_ACTIVE)
		return -EBUSY;

	struct build b;
	struct regf_ca_delete *f = build_start(&b, r, REGF_CA_DELETE, cur, now, sizeof(*f));
	memcpy(f->id, id, REG_ID_LEN);
	f->base = regf_rec_base(r, cur);
	f->status = (uint8_t)status;
	return result(build_finish(&b, actor, alen));
}

/* ---- device changes (writer) --------------------------------------------- */

int reg_dev_add(struct registry *r, const struct reg_dev_in *in,
		const struct reg_by *by)
{
	const char *actor;
	size_t alen, client_len = opt_len(in->client_id);
	int64_t now;
	int rc, ret = 0;
	int status = (int)in->status;

	if ((rc = check_by(by, &actor, &alen, &now)) ||
	    (rc = check_names(in->cn, in->o, in->ou)) ||
	    (rc = check_blobs(in->serial_len, in->der_len, in->serial, in->der)))
		return rc;
	if (client_len > REG_CLIENT_MAX)
		return -ENAMETOOLONG;
	if ((in->how != REG_AUTO && in->how != REG_MANUAL) ||
	    status < 0 || status > REG_REVOKED)
		return -EINVAL;

	uint64_t cur = dev_latest(r, in->id, UINT64_MAX);
	if (live(r, cur))
		return -EEXIST;
	if (cur) {
		/* the same certificate again: same DER, so same issuer+serial */
		struct regx_key ok;
		regf_key_of(r, REGX_SER, regf_rec_base(r, cur), &ok);
		if (memcmp(ok.id, in->issuer, REG_ID_LEN) ||
		    ok.serial_len != in->serial_len ||
		    memcmp(ok.serial, in->serial, in->serial_len))
			return -EINVAL;
	}

	uint64_t ca = live(r, ca_latest(r, in->issuer, UINT64_MAX));
	if (!ca)
		return -ENOENT;
	if (in->how == REG_AUTO) {
		int cs, ca_auto, ca_auto_status;
		ca_state(r, ca, &cs, &ca_auto, &ca_auto_status);
		if (cs != REG_ACTIVE || !ca_auto)
			return -EPERM;
		if (!status)
			status = ca_auto_status;
	} else if (!status) {
		status = REG_ACTIVE;
	}

	/* Revocation is final: by certificate ID, and by (issuer, serial). */
	bool revoked = cur && regf_rec_status(r, cur) == REG_REVOKED;
	uint64_t scur = ser_latest(r, in->issuer, in->serial, in->serial_len,
				   UINT64_MAX);
	if (scur && regf_at(r, scur)->type == REGF_DEV_ADD) {
		uint64_t holder = dev_latest(r, regf_body(regf_at(r, scur)), UINT64_MAX);
		if (live(r, holder))
			return -EEXIST;     /* serials are unique per CA */
	}
	revoked = revoked || ser_holder_revoked(r, scur, UINT64_MAX);
	if (revoked) {
		if (in->how == REG_AUTO)
			return -EKEYREVOKED;
		if (status != REG_REVOKED)
			ret = 1;
		status = REG_REVOKED;
	}

	struct build b;
	struct regf_dev_add *f = build_start(&b, r, REGF_DEV_ADD, cur, now, sizeof(*f));
	memcpy(f->id, in->id, REG_ID_LEN);
	memcpy(f->issuer, in->issuer, REG_ID_LEN);
	f->sprev = scur;
	f->not_before = in->not_before;
	f->not_after = in->not_after;
	f->der_len = (uint32_t)in->der_len;
	f->client_len = (uint16_t)client_len;
	f->status = (uint8_t)status;
	f->how = (uint8_t)in->how;
	f->serial_len = (uint8_t)in->serial_len;
	f->cn_len = (uint8_t)opt_len(in->cn);
	f->o_len = (uint8_t)opt_len(in->o);
	f->ou_len = (uint8_t)opt_len(in->ou);
	put_bin(&b, in->serial, in->serial_len);
	put_str(&b, opt_str(in->cn), f->cn_len);
	put_str(&b, opt_str(in->o), f->o_len);
	put_str(&b, opt_str(in->ou), f->ou_len);
	put_str(&b, opt_str(in->client_id), client_len);
	put_bin(&b, in->der, in->der_len);
	int64_t off = build_finish(&b, actor, alen);
	return off < 0 ? (int)off : ret;
}

/* Append a DEV_STATE for the live record cur with a new status and client. */
static int dev_state(struct registry *r, uint64_t cur, int status,
		     const char *client, size_t client_len, uint8_t what,
		     const char *actor, size_t alen, int64_t now)
{
	struct build b;
	struct regf_dev_state *f = build_start(&b, r, REGF_DEV_STATE, cur, now, sizeof(*f));

	memcpy(f->id, regf_body(regf_at(r, cur)), REG_ID_LEN);
	f->base = regf_rec_base(r, cur);
	f->client_len = (uint16_t)client_len;
	f->status = (uint8_t)status;
	f->what = what;
	put_str(&b, client, client_len);
	return result(build_finish(&b, actor, alen));
}

int reg_dev_set_status(struct registry *r, const uint8_t id[REG_ID_LEN],
		       enum reg_status s, const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc;
	struct regf_view v;

	if (s != REG_ACTIVE && s != REG_INACTIVE && s != REG_REVOKED)
		return -EINVAL;
	if ((rc = check_by(by, &actor, &alen, &now)))
		return rc;
	uint64_t cur = live(r, dev_latest(r, id, UINT64_MAX));
	if (!cur)
		return -ENOENT;
	int old = regf_rec_status(r, cur);
	if (old == (int)s)
		return 0;
	if (old == REG_REVOKED)
		return -EPERM;              /* revocation is final */
	if ((rc = view(r, cur, &v)))
		return rc;
	/* v.client points into the map, which the write buffer does not alias */
	return dev_state(r, cur, (int)s, v.client, v.client_len,
			 REGF_WHAT_STATUS, actor, alen, now);
}

int reg_dev_bind(struct registry *r, const uint8_t id[REG_ID_LEN],
		 const char *client_id, size_t len, const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc;
	struct regf_view v;

	if (len > REG_CLIENT_MAX)
		return -ENAMETOOLONG;
	if (len && (!client_id || memchr(client_id, 0, len)))
		return -EINVAL;
	if ((rc = check_by(by, &actor, &alen, &now)))
		return rc;
	uint64_t cur = live(r, dev_latest(r, id, UINT64_MAX));
	if (!cur)
		return -ENOENT;
	if ((rc = view(r, cur, &v)))
		return rc;
	if (v.client_len == len && (!len || memcmp(v.client, client_id, len) == 0))
		return 0;
	return dev_state(r, cur, regf_rec_status(r, cur), len ? client_id : "",
			 len, REGF_WHAT_BIND, actor, alen, now);
}

int reg_dev_delete(struct registry *r, const uint8_t id[REG_ID_LEN],
		   const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc;

	if ((rc = check_by(by, &actor, &alen, &now)))
		return rc;
	uint64_t cur = live(r, dev_latest(r, id, UINT64_MAX));
	if (!cur)
		return -ENOENT;
	int status = regf_rec_status(r, cur);
	if (status == REG_ACTIVE)
		return -EBUSY;              /* deactivate first */

	struct build b;
	struct regf_dev_delete *f = build_start(&b, r, REGF_DEV_DELETE, cur, now, sizeof(*f));
	memcpy(f->id, id, REG_ID_LEN);
	f->base = regf_rec_base(r, cur);
	f->status = (uint8_t)status;
	return result(build_finish(&b, actor, alen));
}

int reg_revoke_serial(struct registry *r, const uint8_t ca_id[REG_ID_LEN],
		      const uint8_t *serial, size_t len,
		      const struct reg_by *by)
{
	const char *actor;
	size_t alen;
	int64_t now;
	int rc;

	if (len == 0 || !serial)
		return -EINVAL;
	if (len > REG_SERIAL_MAX)
		return -ENAMETOOLONG;
	if ((rc = check_by(by, &actor, &alen, &now)))
		return rc;
	uint64_t scur = ser_latest(r, ca_id, serial, len, UINT64_MAX);
	if (ser_holder_revoked(r, scur, UINT64_MAX))
		return 0;
	if (scur) {
		/* a certificate with this serial: revoke it if registered */
		uint64_t cur = live(r, dev_latest(r, regf_body(regf_at(r, scur)),
						  UINT64_MAX));
		if (cur) {
			struct regf_view v;
			if ((rc = view(r, cur, &v)))
				return rc;
			rc = dev_state(r, cur, REG_REVOKED, v.client, v.client_len,
				       REGF_WHAT_STATUS, actor, alen, now);
			return rc ? rc : 1;
		}
	}

	struct build b;
	struct regf_revoke *f = build_start(&b, r, REGF_REVOKE_SERIAL, scur, now, sizeof(*f));
	memcpy(f->issuer, ca_id, REG_ID_LEN);
	f->serial_len = (uint8_t)len;
	put_bin(&b, serial, len);
	int64_t off = build_finish(&b, actor, alen);
	return off < 0 ? (int)off : 1;
}

/* ---- readers -------------------------------------------------------------- */

/* Fill d from the newest visible record last of a live registration. */
static int dev_snapshot(const struct registry *r, uint64_t last,
			struct reg_device *d)
{
	struct regf_view bv, lv;
	uint64_t base = regf_rec_base(r, last);

	if (view(r, base, &bv) || view(r, last, &lv))
		return -EIO;
	const struct regf_dev_add *b = bv.body;
	memset(d, 0, sizeof(*d));
	memcpy(d->id, b->id, REG_ID_LEN);
	memcpy(d->issuer, b->issuer, REG_ID_LEN);
	d->serial = bv.serial;
	d->serial_len = bv.serial_len;
	d->cn = bv.cn;
	d->cn_len = bv.cn_len;
	d->o = bv.o;
	d->o_len = bv.o_len;
	d->ou = bv.ou;
	d->ou_len = bv.ou_len;
	d->not_before = b->not_before;
	d->not_after = b->not_after;
	d->how = (enum reg_how)b->how;
	d->der = bv.der;
	d->der_len = bv.der_len;
	d->created = bv.h->time;
	d->created_by = bv.actor;
	d->status = (enum reg_status)regf_rec_status(r, last);
	d->client_id = lv.client;
	d->client_id_len = lv.client_len;
	d->updated = lv.h->time;
	d->updated_by = lv.actor;
	d->version = lv.h->seq;
	return 0;
}

static int ca_snapshot(const struct registry *r, uint64_t last, struct reg_ca *c)
{
	struct regf_view bv, lv;
	uint64_t base = regf_rec_base(r, last);
	int status, auto_reg, auto_status;

	if (view(r, base, &bv) || view(r, last, &lv))
		return -EIO;
	const struct regf_ca_add *b = bv.body;
	memset(c, 0, sizeof(*c));
	memcpy(c->id, b->id, REG_ID_LEN);
	c->serial = bv.serial;
	c->serial_len = bv.serial_len;
	c->cn = bv.cn;
	c->cn_len = bv.cn_len;
	c->o = bv.o;
	c->o_len = bv.o_len;
	c->ou = bv.ou;
	c->ou_len = bv.ou_len;
	c->not_before = b->not_before;
	c->not_after = b->not_after;
	c->der = bv.der;
	c->der_len = bv.der_len;
	ca_state(r, last, &status, &auto_reg, &auto_status);
	c->status = (enum reg_status)status;
	c->auto_register = auto_reg;
	c->auto_status = (enum reg_status)auto_status;
	c->created = bv.h->time;
	c->created_by = bv.actor;
	c->updated = lv.h->time;
	c->updated_by = lv.actor;
	c->version = lv.h->seq;
	return 0;
}

int regf_dev_snapshot(const struct registry *r, uint64_t last,
		      struct reg_device *d)
{
	return last ? dev_snapshot(r, last, d) : -EIO;
}

int reg_dev_get_mt(const struct registry *r, const uint8_t id[REG_ID_LEN],
		   struct reg_device *out)
{
	uint64_t last = live(r, dev_latest(r, id, reader_limit(r)));

	return last ? dev_snapshot(r, last, out) : -ENOENT;
}

int reg_dev_by_serial_mt(const struct registry *r,
			 const uint8_t ca_id[REG_ID_LEN], const uint8_t *serial,
			 size_t len, struct reg_device *out)
{
	uint64_t limit = reader_limit(r);

	if (!serial || len == 0 || len > REG_SERIAL_MAX)
		return -ENOENT;
	uint64_t s = ser_latest(r, ca_id, serial, len, limit);
	if (!s || regf_at(r, s)->type != REGF_DEV_ADD)
		return -ENOENT;
	uint64_t last = live(r, dev_latest(r, regf_body(regf_at(r, s)), limit));
	if (!last || regf_rec_base(r, last) != s)
		return -ENOENT;
	return dev_snapshot(r, last, out);
}

int reg_ca_get_mt(const struct registry *r, const uint8_t id[REG_ID_LEN],
		  struct reg_ca *out)
{
	uint64_t last = live(r, ca_latest(r, id, reader_limit(r)));

	return last ? ca_snapshot(r, last, out) : -ENOENT;
}

bool reg_serial_revoked_mt(const struct registry *r,
			   const uint8_t ca_id[REG_ID_LEN],
			   const uint8_t *serial, size_t len)
{
	uint64_t limit = reader_limit(r);

	if (!serial || len == 0 || len > REG_SERIAL_MAX)
		return false;
	return ser_holder_revoked(r, ser_latest(r, ca_id, serial, len, limit),
				  limit);
}

bool reg_dev_revoked_mt(const struct registry *r, const uint8_t id[REG_ID_LEN])
{
	uint64_t limit = reader_limit(r);
	uint64_t last = dev_latest(r, id, limit);
	struct regx_key k;

	if (!last)
		return false;
	if (regf_rec_status(r, last) == REG_REVOKED)
		return true;
	regf_key_of(r, REGX_SER, regf_rec_base(r, last), &k);
	return ser_holder_revoked(r, ser_latest(r, k.id, k.serial, k.serial_len,
						limit), limit);
}

int reg_dev_history_mt(const struct registry *r, const uint8_t id[REG_ID_LEN],
		       int (*fn)(void *ctx, const struct reg_event *ev),
		       void *ctx)
{
	uint64_t *offs = NULL, n = 0, cap = 0;
	int rc = 0;

	for (uint64_t off = dev_latest(r, id, reader_limit(r)); off;
	     off = regf_at(r, off)->prev) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *m = realloc(offs, cap * sizeof(*m));
			if (!m) {
				free(offs);
				return -ENOMEM;
			}
			offs = m;
		}
		offs[n++] = off;
	}
	if (!n)
		return -ENOENT;
	while (n-- && !rc) {
		struct regf_view v;
		struct reg_event ev = { 0 };
		if (view(r, offs[n], &v)) {
			rc = -EIO;
			break;
		}
		ev.seq = v.h->seq;
		ev.time = v.h->time;
		ev.actor = v.actor;
		ev.status = (enum reg_status)regf_rec_status(r, offs[n]);
		ev.client_id = v.client ? v.client : "";
		switch (v.h->type) {
		case REGF_DEV_ADD:
			ev.kind = REG_EV_ADDED;
			ev.how = (enum reg_how)((const struct regf_dev_add *)v.body)->how;
			break;
		case REGF_DEV_STATE:
			ev.kind = ((const struct regf_dev_state *)v.body)->what ==
				  REGF_WHAT_BIND ? REG_EV_BOUND : REG_EV_STATUS;
			break;
		default:
			ev.kind = REG_EV_DELETED;
			break;
		}
		rc = fn(ctx, &ev);
	}
	free(offs);
	return rc;
}

/* Visit the newest visible live record of every key of kind k. */
static int foreach_live(const struct registry *r, enum regx_kind k,
			int (*visit)(const struct registry *r, uint64_t last,
				     void *arg),
			void *arg)
{
	uint64_t limit = reader_limit(r);
	const struct regx_tab *t =
		atomic_load_explicit(&r->tab[k], memory_order_acquire);

	for (uint64_t i = 0; i <= t->mask; i++) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_acquire);
		if (!v)
			continue;
		uint64_t last = live(r, regf_visible(r, k, regx_slot_off(v), limit));
		if (!last)
			continue;
		int rc = visit(r, last, arg);
		if (rc)
			return rc;
	}
	return 0;
}

struct dev_fe {
	int (*fn)(void *ctx, const struct reg_device *d);
	void *ctx;
};

static int dev_visit(const struct registry *r, uint64_t last, void *arg)
{
	struct dev_fe *fe = arg;
	struct reg_device d;
	int rc = dev_snapshot(r, last, &d);

	return rc ? rc : fe->fn(fe->ctx, &d);
}

int reg_dev_foreach_mt(const struct registry *r,
		       int (*fn)(void *ctx, const struct reg_device *d),
		       void *ctx)
{
	struct dev_fe fe = { fn, ctx };

	return foreach_live(r, REGX_DEV, dev_visit, &fe);
}

struct ca_fe {
	int (*fn)(void *ctx, const struct reg_ca *ca);
	void *ctx;
};

static int ca_visit(const struct registry *r, uint64_t last, void *arg)
{
	struct ca_fe *fe = arg;
	struct reg_ca c;
	int rc = ca_snapshot(r, last, &c);

	return rc ? rc : fe->fn(fe->ctx, &c);
}

int reg_ca_foreach_mt(const struct registry *r,
		      int (*fn)(void *ctx, const struct reg_ca *ca), void *ctx)
{
	struct ca_fe fe = { fn, ctx };

	return foreach_live(r, REGX_CA, ca_visit, &fe);
}

uint64_t reg_generation_mt(const struct registry *r)
{
	return atomic_load_explicit(&r->durable_seq, memory_order_acquire);
}

void reg_counts_mt(const struct registry *r, struct reg_counts *out)
{
	memset(out, 0, sizeof(*out));
	out->devices = atomic_load_explicit(&r->n_dev[0], memory_order_relaxed);
	out->cas = atomic_load_explicit(&r->n_ca[0], memory_order_relaxed);
	for (int s = 1; s < REG_STATUS_COUNT; s++) {
		out->dev_status[s] = atomic_load_explicit(&r->n_dev[s], memory_order_relaxed);
		out->ca_status[s] = atomic_load_explicit(&r->n_ca[s], memory_order_relaxed);
	}
	out->records = atomic_load_explicit(&r->n_records, memory_order_relaxed);
	out->file_bytes = atomic_load_explicit(&r->durable_end, memory_order_relaxed);
}

static const char *const status_names[REG_STATUS_COUNT] = {
	[REG_ACTIVE] = "ACTIVE",
	[REG_INACTIVE] = "INACTIVE",
	[REG_PENDING_ACTIVATION] = "PENDING_ACTIVATION",
	[REG_REVOKED] = "REVOKED",
};

const char *reg_status_name(enum reg_status s)
{
	return s >= REG_ACTIVE && s <= REG_REVOKED ? status_names[s] : "?";
}

int reg_status_parse(const char *s, enum reg_status *out)
{
	for (int i = REG_ACTIVE; i <= REG_REVOKED; i++) {
		if (strcasecmp(s, status_names[i]) == 0) {
			*out = (enum reg_status)i;
			return 0;
		}
	}
	return -EINVAL;
}
