/*
 * The registry file itself: creating it, opening it (verify every record,
 * tell an interrupted write from damage, build the indexes), appending a
 * record (check it against the current state, write, publish, sync), and
 * closing it. The format is described in regfile-int.h; the operations
 * that decide which record to write are in regfile-ops.c.
 *
 * The file is mapped read-only into a large reserved range of address
 * space, so the mapping never moves as the file grows and a pointer into a
 * record stays valid until reg_close(). The writer writes with pwrite (a
 * full disk is an error code, never a SIGBUS) and syncs with fdatasync.
 * Opening reads the log once, with pread (see load()), and builds the
 * indexes as it goes.
 *
 * Nothing is reclaimed: deleted and superseded records stay, as the
 * history. A status change costs about 100 bytes, a registration about
 * 250 bytes plus its DER.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "registry/query-int.h"
#include "registry/regfile-int.h"
#include "registry/regfile.h"

#define MIB             (UINT64_C(1) << 20)
#define GIB             (UINT64_C(1) << 30)
#define RESERVE_MIN     (64 * GIB)
#define RESERVE_MAX     (UINT64_C(8) << 40)     /* slot offsets are 43 bits */
#define GROW_MIN        (1 * MIB)
#define GROW_MAX        (256 * MIB)

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~UINT64_C(7);
}

static uint64_t round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t regf_checksum(uint64_t salt, const void *rec, uint32_t len)
{
	uint64_t seed = salt ^ ((uint64_t)REGF_REC_MAGIC << 32 | len);

	return XXH3_64bits_withSeed((const uint8_t *)rec + 16, len - 16, seed);
}

static uint64_t hdr_checksum(const struct regf_hdr *h)
{
	return XXH3_64bits(h, offsetof(struct regf_hdr, check));
}

/* ---- record layout --------------------------------------------------- */

struct cursor {
	const uint8_t *p, *e;
	const char *why;
};

static const uint8_t *take_bin(struct cursor *c, size_t n)
{
	const uint8_t *p = c->p;

	if (c->why)
		return NULL;
	if ((size_t)(c->e - c->p) < n) {
		c->why = "a field runs past the record body";
		return NULL;
	}
	c->p += n;
	return p;
}

/* n bytes of text without NUL, then a NUL. */
static const char *take_str(struct cursor *c, size_t n)
{
	const uint8_t *p = take_bin(c, n + 1);

	if (!p)
		return NULL;
	if (p[n] != 0 || memchr(p, 0, n)) {
		c->why = "a text field is not NUL-terminated or holds a NUL";
		return NULL;
	}
	return (const char *)p;
}

static size_t fixed_size(uint16_t type)
{
	switch (type) {
	case REGF_DEV_ADD: return sizeof(struct regf_dev_add);
	case REGF_DEV_STATE: return sizeof(struct regf_dev_state);
	case REGF_DEV_DELETE: return sizeof(struct regf_dev_delete);
	case REGF_REVOKE_SERIAL: return sizeof(struct regf_revoke);
	case REGF_CA_ADD: return sizeof(struct regf_ca_add);
	case REGF_CA_STATE: return sizeof(struct regf_ca_state);
	case REGF_CA_DELETE: return sizeof(struct regf_ca_delete);
	case REGF_CLOSE: return sizeof(struct regf_close);
	}
	return SIZE_MAX;
}

static bool names_ok(size_t cn, size_t o, size_t ou)
{
	return cn <= REG_NAME_MAX && o <= REG_NAME_MAX && ou <= REG_NAME_MAX;
}

int regf_parse(const uint8_t *rec, struct regf_view *v, const char **why)
{
	const struct regf_rec *h = (const void *)rec;
	size_t fixed = fixed_size(h->type);
	struct cursor c;

	memset(v, 0, sizeof(*v));
	v->h = h;
	v->body = rec + sizeof(*h);
	*why = NULL;
	if (fixed == SIZE_MAX) {
		*why = "unknown record type";
		return -EBADMSG;
	}
	if (h->actor_len > REG_ACTOR_MAX || h->body_len > REGF_REC_MAX ||
	    h->len != align8(sizeof(*h) + (uint64_t)h->body_len + h->actor_len + 1)) {
		*why = "record length does not match its fields";
		return -EBADMSG;
	}
	if (h->body_len < fixed) {
		*why = "record body too short for its type";
		return -EBADMSG;
	}
	c.p = rec + sizeof(*h) + fixed;
	c.e = rec + sizeof(*h) + h->body_len;
	c.why = NULL;

	switch (h->type) {
	case REGF_DEV_ADD: {
		const struct regf_dev_add *b = v->body;
		if (b->serial_len == 0 || b->serial_len > REG_SERIAL_MAX ||
		    !names_ok(b->cn_len, b->o_len, b->ou_len) ||
		    b->client_len > REG_CLIENT_MAX || b->der_len == 0 ||
		    b->der_len > REG_DER_MAX) {
			*why = "a field length is out of bounds";
			return -EBADMSG;
		}
		v->serial = take_bin(&c, b->serial_len);
		v->serial_len = b->serial_len;
		v->cn = take_str(&c, v->cn_len = b->cn_len);
		v->o = take_str(&c, v->o_len = b->o_len);
		v->ou = take_str(&c, v->ou_len = b->ou_len);
		v->client = take_str(&c, v->client_len = b->client_len);
		v->der = take_bin(&c, v->der_len = b->der_len);
		break;
	}
	case REGF_DEV_STATE: {
		const struct regf_dev_state *b = v->body;
		if (b->client_len > REG_CLIENT_MAX) {
			*why = "a field length is out of bounds";
			return -EBADMSG;
		}
		v->client = take_str(&c, v->client_len = b->client_len);
		break;
	}
	case REGF_REVOKE_SERIAL: {
		const struct regf_revoke *b = v->body;
		if (b->serial_len == 0 || b->serial_len > REG_SERIAL_MAX) {
			*why = "a field length is out of bounds";
			return -EBADMSG;
		}
		v->serial = take_bin(&c, v->serial_len = b->serial_len);
		break;
	}
	case REGF_CA_ADD: {
		const struct regf_ca_add *b = v->body;
		if (b->serial_len == 0 || b->serial_len > REG_SERIAL_MAX ||
		    !names_ok(b->cn_len, b->o_len, b->ou_len) ||
		    b->der_len == 0 || b->der_len > REG_DER_MAX) {
			*why = "a field length is out of bounds";
			return -EBADMSG;
		}
		v->serial = take_bin(&c, v->serial_len = b->serial_len);
		v->cn = take_str(&c, v->cn_len = b->cn_len);
		v->o = take_str(&c, v->o_len = b->o_len);
		v->ou = take_str(&c, v->ou_len = b->ou_len);
		v->der = take_bin(&c, v->der_len = b->der_len);
		break;
	}
	default:
		break;
	}
	if (!c.why && c.p != c.e)
		c.why = "record body longer than its fields";
	if (c.why) {
		*why = c.why;
		return -EBADMSG;
	}
	c.e = rec + h->len;
	v->actor = take_str(&c, h->actor_len);
	if (c.why) {
		*why = "actor is not NUL-terminated or holds a NUL";
		return -EBADMSG;
	}
	for (; c.p < c.e; c.p++) {
		if (*c.p) {
			*why = "record padding is not zero";
			return -EBADMSG;
		}
	}
	return 0;
}

/* ---- keys and chains -------------------------------------------------- */

void regf_key_of(const struct registry *r, enum regx_kind k, uint64_t off,
		 struct regx_key *key)
{
	const struct regf_rec *h = regf_at(r, off);
	const uint8_t *b = regf_body(h);

	memset(key, 0, sizeof(*key));
	if (k != REGX_SER) {
		key->id = b;    /* every device and CA record starts with its ID */
		return;
	}
	if (h->type == REGF_DEV_ADD) {
		const struct regf_dev_add *a = (const void *)b;
		key->id = a->issuer;
		key->serial = b + sizeof(*a);
		key->serial_len = a->serial_len;
	} else {
		const struct regf_revoke *a = (const void *)b;
		key->id = a->issuer;
		key->serial = b + sizeof(*a);
		key->serial_len = a->serial_len;
	}
}

static uint64_t chain_prev(const struct registry *r, enum regx_kind k,
			   uint64_t off)
{
	const struct regf_rec *h = regf_at(r, off);

	if (k == REGX_SER && h->type == REGF_DEV_ADD)
		return ((const struct regf_dev_add *)regf_body(h))->sprev;
	return h->prev;
}

uint64_t regf_visible(const struct registry *r, enum regx_kind k, uint64_t off,
		      uint64_t limit)
{
	while (off && off >= limit)
		off = chain_prev(r, k, off);
	return off;
}

/* ---- checking a record against the state it applies to ----------------
 * The same checks run for every record the writer appends and for every
 * record read at open, so a file that opens holds only legal histories.
 */

struct plan {
	enum regx_kind k;       /* REGX_DEV or REGX_CA */
	uint64_t h, idx;
	bool is_new;
	bool ser;               /* the record also takes the serial slot */
	uint64_t sh, sidx;
	bool snew;
	int old_status, new_status;     /* for counters; 0 = none */
};

/* Device status actions allowed by DESIGN.md "Certificate states". */
static bool dev_transition_ok(int from, int to)
{
	switch (to) {
	case REG_ACTIVE: return from == REG_INACTIVE || from == REG_PENDING_ACTIVATION;
	case REG_INACTIVE: return from == REG_ACTIVE || from == REG_PENDING_ACTIVATION;
	case REG_REVOKED: return from != REG_REVOKED;
	}
	return false;
}

static bool dev_status_ok(int s)
{
	return s >= REG_ACTIVE && s <= REG_REVOKED;
}

static bool ca_status_ok(int s)
{
	return s == REG_ACTIVE || s == REG_INACTIVE;
}

static bool ca_auto_ok(int s)
{
	return s == REG_ACTIVE || s == REG_PENDING_ACTIVATION;
}

/* The index hashes a record needs (key kind k in [0], serial in [1]), as
 * check() computes them; at open they are computed ahead, to prefetch. */
static void rec_hashes(const struct registry *r, const struct regf_rec *h,
		       uint64_t out[2], enum regx_kind *k)
{
	const uint8_t *b = regf_body(h);
	struct regx_key key = { .id = b };

	*k = REGX_KINDS;
	switch (h->type) {
	case REGF_DEV_ADD: {
		const struct regf_dev_add *a = (const void *)b;
		struct regx_key sk = { a->issuer, b + sizeof(*a), a->serial_len };
		out[1] = regx_hash(r, REGX_SER, &sk);
	}	/* fall through */
	case REGF_DEV_STATE: case REGF_DEV_DELETE:
		*k = REGX_DEV;
		break;
	case REGF_CA_ADD: case REGF_CA_STATE: case REGF_CA_DELETE:
		*k = REGX_CA;
		break;
	case REGF_REVOKE_SERIAL: {
		const struct regf_revoke *a = (const void *)b;
		key.serial = b + sizeof(*a);
		key.serial_len = a->serial_len;
		*k = REGX_SER;
		break;
	}
	default:
		return;
	}
	out[0] = regx_hash(r, *k, &key);
}

/* hint: the record's hashes from rec_hashes(), or NULL to compute them. */
static int check(struct registry *r, const struct regf_view *v,
		 struct plan *p, const char **why, const uint64_t *hint)
{
	const struct regf_rec *h = v->h;
	struct regx_key key = { 0 };
	uint64_t cur = 0, scur = 0;

	memset(p, 0, sizeof(*p));
	switch (h->type) {
	case REGF_CLOSE:
		if (h->prev) {
			*why = "a close mark with a chain";
			return -EBADMSG;
		}
		return 0;
	case REGF_DEV_ADD: case REGF_DEV_STATE: case REGF_DEV_DELETE:
		p->k = REGX_DEV;
		break;
	case REGF_CA_ADD: case REGF_CA_STATE: case REGF_CA_DELETE:
		p->k = REGX_CA;
		break;
	case REGF_REVOKE_SERIAL:
		p->k = REGX_SER;
		break;
	}

	if (p->k == REGX_SER) {
		const struct regf_revoke *b = v->body;
		key.id = b->issuer;
		key.serial = v->serial;
		key.serial_len = v->serial_len;
	} else {
		key.id = v->body;
	}
	p->h = hint ? hint[0] : regx_hash(r, p->k, &key);
	cur = regx_find(r, p->k, &key, p->h, &p->idx);
	p->is_new = cur == 0;
	if (h->prev != cur) {
		*why = "its chain does not continue the key's newest record";
		return -EBADMSG;
	}

	switch (h->type) {
	case REGF_DEV_ADD: {
		const struct regf_dev_add *b = v->body;
		if (!dev_status_ok(b->status) ||
		    (b->how != REG_AUTO && b->how != REG_MANUAL)) {
			*why = "a bad status or registration kind";
			return -EBADMSG;
		}
		if (cur && !regf_is_delete(r, cur)) {
			*why = "the certificate is already registered";
			return -EBADMSG;
		}
		if (cur) {
			struct regx_key ok;
			regf_key_of(r, REGX_SER, regf_rec_base(r, cur), &ok);
			if (memcmp(ok.id, b->issuer, REG_ID_LEN) ||
			    ok.serial_len != v->serial_len ||
			    memcmp(ok.serial, v->serial, v->serial_len)) {
				*why = "a re-registration with another issuer or serial";
				return -EBADMSG;
			}
			if (regf_rec_status(r, cur) == REG_REVOKED && b->status != REG_REVOKED) {
				*why = "a revoked certificate registered again unrevoked";
				return -EBADMSG;
			}
		}
		struct regx_key sk = { b->issuer, v->serial, v->serial_len };
		p->ser = true;
		p->sh = hint ? hint[1] : regx_hash(r, REGX_SER, &sk);
		scur = regx_find(r, REGX_SER, &sk, p->sh, &p->sidx);
		p->snew = scur == 0;
		if (b->sprev != scur) {
			*why = "its serial chain does not continue the serial's newest record";
			return -EBADMSG;
		}
		if (scur && regf_at(r, scur)->type == REGF_REVOKE_SERIAL &&
		    b->status != REG_REVOKED) {
			*why = "a revoked serial registered unrevoked";
			return -EBADMSG;
		}
		if (scur && regf_at(r, scur)->type == REGF_DEV_ADD) {
			struct regx_key ok;
			regf_key_of(r, REGX_DEV, scur, &ok);
			uint64_t last = regx_find(r, REGX_DEV, &ok,
						  regx_hash(r, REGX_DEV, &ok), NULL);
			if (!last || !regf_is_delete(r, last)) {
				*why = "the serial belongs to a registered certificate";
				return -EBADMSG;
			}
			if (regf_rec_status(r, last) == REG_REVOKED &&
			    b->status != REG_REVOKED) {
				*why = "a revoked serial registered unrevoked";
				return -EBADMSG;
			}
		}
		p->new_status = b->status;
		break;
	}
	case REGF_DEV_STATE: {
		const struct regf_dev_state *b = v->body;
		if (!cur || regf_is_delete(r, cur) || b->base != regf_rec_base(r, cur)) {
			*why = "a change to a certificate that is not registered";
			return -EBADMSG;
		}
		p->old_status = regf_rec_status(r, cur);
		p->new_status = b->status;
		if (b->what == REGF_WHAT_STATUS) {
			if (!dev_transition_ok(p->old_status, b->status)) {
				*why = "a status change the state table forbids";
				return -EBADMSG;
			}
		} else if (b->what != REGF_WHAT_BIND || b->status != p->old_status) {
			*why = "a bad kind of change";
			return -EBADMSG;
		}
		break;
	}
	case REGF_DEV_DELETE: {
		const struct regf_dev_delete *b = v->body;
		if (!cur || regf_is_delete(r, cur) || b->base != regf_rec_base(r, cur)) {
			*why = "a deletion of a certificate that is not registered";
			return -EBADMSG;
		}
		p->old_status = regf_rec_status(r, cur);
		if (p->old_status == REG_ACTIVE || b->status != p->old_status) {
			*why = "a deletion the state table forbids";
			return -EBADMSG;
		}
		break;
	}
	case REGF_REVOKE_SERIAL:
		if (cur && regf_at(r, cur)->type == REGF_REVOKE_SERIAL) {
			*why = "a serial revoked twice";
			return -EBADMSG;
		}
		if (cur) {
			struct regx_key ok;
			regf_key_of(r, REGX_DEV, cur, &ok);
			uint64_t last = regx_find(r, REGX_DEV, &ok,
						  regx_hash(r, REGX_DEV, &ok), NULL);
			if (!last || !regf_is_delete(r, last) ||
			    regf_rec_status(r, last) == REG_REVOKED) {
				*why = "a serial revocation that should be a status change";
				return -EBADMSG;
			}
		}
		break;
	case REGF_CA_ADD: {
		const struct regf_ca_add *b = v->body;
		if (cur && !regf_is_delete(r, cur)) {
			*why = "the CA is already registered";
			return -EBADMSG;
		}
		if (!ca_status_ok(b->status) || !ca_auto_ok(b->auto_status) ||
		    b->auto_register > 1) {
			*why = "a bad CA status";
			return -EBADMSG;
		}
		p->new_status = b->status;
		break;
	}
	case REGF_CA_STATE: {
		const struct regf_ca_state *b = v->body;
		if (!cur || regf_is_delete(r, cur) || b->base != regf_rec_base(r, cur)) {
			*why = "a change to a CA that is not registered";
			return -EBADMSG;
		}
		if (!ca_status_ok(b->status) || !ca_auto_ok(b->auto_status) ||
		    b->auto_register > 1 ||
		    (b->what != REGF_WHAT_STATUS && b->what != REGF_WHAT_AUTO)) {
			*why = "a bad CA status";
			return -EBADMSG;
		}
		p->old_status = regf_rec_status(r, cur);
		p->new_status = b->status;
		break;
	}
	case REGF_CA_DELETE: {
		const struct regf_ca_delete *b = v->body;
		if (!cur || regf_is_delete(r, cur) || b->base != regf_rec_base(r, cur)) {
			*why = "a deletion of a CA that is not registered";
			return -EBADMSG;
		}
		p->old_status = regf_rec_status(r, cur);
		if (p->old_status == REG_ACTIVE || b->status != p->old_status) {
			*why = "a deletion of an ACTIVE CA";
			return -EBADMSG;
		}
		break;
	}
	}

	/* Make room for new keys now, so that publishing cannot fail. */
	if (p->is_new && regx_reserve(r, p->k))
		return -ENOMEM;
	if (p->k == REGX_DEV && regq_reserve(r, v))     /* query indexes */
		return -ENOMEM;
	if (p->ser && p->snew && regx_reserve(r, REGX_SER))
		return -ENOMEM;
	return 0;
}

static void publish(struct registry *r, const struct plan *p,
		    const struct regf_view *v, uint64_t off)
{
	_Atomic uint64_t *n = p->k == REGX_CA ? r->n_ca : r->n_dev;
	uint16_t type = v->h->type;

	if (type == REGF_CLOSE)
		return;
	if (p->k == REGX_DEV)
		regq_apply(r, v, off);  /* query indexes */
	if (p->is_new)
		regx_insert(r, p->k, p->h, off);
	else
		regx_update(r, p->k, p->idx, p->h, off);
	if (p->ser) {
		if (p->snew)
			regx_insert(r, REGX_SER, p->sh, off);
		else
			regx_update(r, REGX_SER, p->sidx, p->sh, off);
	}
	if (p->k == REGX_SER)
		return;
	if (p->old_status) {
		atomic_fetch_sub_explicit(&n[p->old_status], 1, memory_order_relaxed);
		if (!p->new_status)
			atomic_fetch_sub_explicit(&n[0], 1, memory_order_relaxed);
	}
	if (p->new_status) {
		atomic_fetch_add_explicit(&n[p->new_status], 1, memory_order_relaxed);
		if (!p->old_status)
			atomic_fetch_add_explicit(&n[0], 1, memory_order_relaxed);
	}
}

/* ---- opening ---------------------------------------------------------- */

struct load {
	uint64_t end, seq;
	uint64_t torn;                  /* bytes of an interrupted write dropped */
	uint16_t last_type;
};

/* Why the avail bytes at p (the file from some offset on) do not start with
 * a whole, intact record (NULL if they do). */
static const char *rec_bad(uint64_t salt, const uint8_t *p, uint64_t avail)
{
	const struct regf_rec *h = (const void *)p;

	if (avail < sizeof(*h))
		return "the file ends inside a record header";
	if (h->magic != REGF_REC_MAGIC)
		return "no record magic";
	if (h->len < sizeof(*h) || h->len % 8 || h->len > align8(REGF_REC_MAX))
		return "an impossible record length";
	if (h->len > avail)
		return "the file ends inside the record";
	if (regf_checksum(salt, h, h->len) != h->check)
		return "checksum mismatch";
	return NULL;
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
	for (; n && ((uintptr_t)p & 7); n--, p++)
		if (*p)
			return false;
	for (; n >= 8; n -= 8, p += 8)
		if (*(const uint64_t *)(const void *)p)
			return false;
	for (; n; n--, p++)
		if (*p)
			return false;
	return true;
}

/*
 * The log stops being valid at bad (the record there should have had
 * sequence number next). If some intact record further on was written when
 * that one was already durable (its synced >= next), the bad bytes were
 * acknowledged data: damage. Otherwise they are the tail of a write that a
 * crash interrupted. Returns the offset of the proving record, or 0.
 */
static uint64_t damage_proof(const struct registry *r, uint64_t bad,
			     uint64_t size, uint64_t next)
{
	for (uint64_t off = bad + 8; off + sizeof(struct regf_rec) <= size;) {
		const struct regf_rec *h = regf_at(r, off);
		if (h->magic != REGF_REC_MAGIC ||
		    rec_bad(r->salt, r->map + off, size - off)) {
			off += 8;
			continue;
		}
		if (h->synced >= next)
			return off;
		off += h->len;
	}
	return 0;
}

#define CLOSE_LEN align8(sizeof(struct regf_rec) + sizeof(struct regf_close) + 1)

/*
 * How many keys of each kind the file holds, to size the tables once: the
 * counts a clean close left in its CLOSE record (the file's last bytes),
 * or, after a crash, a count of ADD records by a walk over the record
 * headers. Only a hint: the tables grow if it is short.
 */
static void key_hint(const struct registry *r, uint64_t size,
		     uint64_t n[REGX_KINDS])
{
	uint64_t cap = size / sizeof(struct regf_rec);

	memset(n, 0, REGX_KINDS * sizeof(n[0]));
	if (size % 8 == 0 && size >= REGF_HDR_SIZE + CLOSE_LEN) {
		const struct regf_rec *h = regf_at(r, size - CLOSE_LEN);
		if (h->magic == REGF_REC_MAGIC && h->len == CLOSE_LEN &&
		    h->type == REGF_CLOSE &&
		    h->body_len == sizeof(struct regf_close) &&
		    regf_checksum(r->salt, h, h->len) == h->check) {
			const struct regf_close *c = regf_body(h);
			n[REGX_DEV] = c->dev_keys < cap ? c->dev_keys : cap;
			n[REGX_SER] = c->ser_keys < cap ? c->ser_keys : cap;
			n[REGX_CA] = c->ca_keys < cap ? c->ca_keys : cap;
			return;
		}
	}
	for (uint64_t off = REGF_HDR_SIZE; off + sizeof(struct regf_rec) <= size;) {
		const struct regf_rec *h = regf_at(r, off);
		if (h->magic != REGF_REC_MAGIC || h->len < sizeof(*h) ||
		    h->len % 8 || h->len > size - off)
			break;
		switch (h->type) {
		case REGF_DEV_ADD: n[REGX_DEV]++; n[REGX_SER]++; break;
		case REGF_REVOKE_SERIAL: n[REGX_SER]++; break;
		case REGF_CA_ADD: n[REGX_CA]++; break;
		}
		off += h->len;
	}
}

/*
 * The log is read with pread into a buffer rather than through the mapping:
 * the kernel copies from the page cache through its own large-page mapping,
 * which is several times faster than walking gigabytes of 4 KiB user pages
 * (a TLB miss per page). The buffer always holds a whole record after a
 * refill.
 */
#define CHUNK   (UINT64_C(8) << 20)
#define BUFSZ   (CHUNK + align8(REGF_REC_MAX))

struct rbuf {
	uint8_t *p;
	uint64_t cap;           /* BUFSZ, or less for a smaller file */
	uint64_t base, len;     /* holds the file's bytes [base, base + len) */
};

/* Refill so that the buffer starts at file offset from. */
static int rbuf_fill(const struct registry *r, struct rbuf *b, uint64_t from,
		     uint64_t size)
{
	uint64_t keep = b->base + b->len > from ? b->base + b->len - from : 0;
	uint64_t want = size - from < b->cap ? size - from : b->cap;

	if (keep)
		memmove(b->p, b->p + (from - b->base), keep);
	b->base = from;
	b->len = keep;
	while (b->len < want) {
		ssize_t n = pread(r->fd, b->p + b->len, want - b->len,
				  (off_t)(from + b->len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;    /* the file shrank under us */
		b->len += (uint64_t)n;
	}
	return 0;
}

/*
 * Read the log in one pass: each record is verified (checksum, sequence,
 * layout) and hashed AHEAD records before it is checked against the state
 * and applied, so the index slots it needs are prefetched by then and its
 * bytes are still in cache. Stops at the first bytes that are not an intact
 * record, and decides whether they are an interrupted write (s->torn) or
 * damage (-EBADMSG).
 */
#define AHEAD 16

static int load(struct registry *r, uint64_t size, struct load *s, char *err,
		size_t errlen)
{
	uint64_t ring_off[AHEAD], ring_h[AHEAD][2];
	uint64_t next = REGF_HDR_SIZE, seq = 0;
	unsigned head = 0, tail = 0;
	const char *why = NULL;         /* the bytes at next are not a record */
	int hard = 0;                   /* the record at next is intact but wrong */
	bool refill = false;
	struct rbuf b = { NULL, size < BUFSZ ? round_up(size, 4096) : BUFSZ, 0, 0 };
	int rc = 0;

	memset(s, 0, sizeof(*s));
	b.p = mmap(NULL, b.cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b.p == MAP_FAILED) {
		errf(err, errlen, "out of memory reading %s", r->path);
		return -ENOMEM;
	}
	if (b.cap == BUFSZ)
		madvise(b.p, b.cap, MADV_HUGEPAGE);
	for (;;) {
		while (!why && !hard && !refill && tail - head < AHEAD && next < size) {
			uint64_t avail = b.base + b.len - next;
			const uint8_t *p = b.p + (next - b.base);
			const struct regf_rec *h = (const void *)p;
			struct regf_view v;
			const char *w;
			enum regx_kind k;

			if (next >= b.base + b.len ||
			    (b.base + b.len < size &&
			     (avail < sizeof(*h) ||
			      (h->len <= align8(REGF_REC_MAX) && h->len > avail)))) {
				refill = true;
				break;
			}
			why = rec_bad(r->salt, p, avail);
			if (why)
				break;
			if (h->seq != seq + 1 || h->synced >= h->seq) {
				errf(err, errlen, "%s: record at offset %llu has sequence number %llu where %llu was due: the file is damaged",
				     r->path, (unsigned long long)next,
				     (unsigned long long)h->seq,
				     (unsigned long long)seq + 1);
				hard = -EBADMSG;
				break;
			}
			if (regf_parse(p, &v, &w)) {
				errf(err, errlen, "%s: record at offset %llu (sequence %llu) is malformed: %s",
				     r->path, (unsigned long long)next,
				     (unsigned long long)h->seq, w);
				hard = -EBADMSG;
				break;
			}
			uint64_t *hh = ring_h[tail % AHEAD];
			rec_hashes(r, h, hh, &k);
			if (k != REGX_KINDS)
				regx_prefetch(r, k, hh[0]);
			if (h->type == REGF_DEV_ADD)
				regx_prefetch(r, REGX_SER, hh[1]);
			ring_off[tail % AHEAD] = next;
			tail++;
			seq = h->seq;
			next += h->len;
		}
		if (head == tail) {
			if (!refill)
				break;
			/* the ring is drained: nothing points into the buffer */
			rc = rbuf_fill(r, &b, next, size);
			if (rc) {
				errf(err, errlen, "cannot read %s: %s", r->path, strerror(-rc));
				goto out;
			}
			refill = false;
			continue;
		}

		/* an earlier inconsistency is reported before a later error */
		uint64_t off = ring_off[head % AHEAD];
		const uint8_t *p = b.p + (off - b.base);
		const struct regf_rec *h = (const void *)p;
		struct regf_view v;
		struct plan pl;
		const char *w = NULL;

		regf_parse(p, &v, &w);
		rc = check(r, &v, &pl, &w, ring_h[head % AHEAD]);
		head++;
		if (rc == -ENOMEM) {
			errf(err, errlen, "%s: out of memory building the indexes", r->path);
			goto out;
		}
		if (rc) {
			errf(err, errlen, "%s: record at offset %llu (sequence %llu) is inconsistent: %s; the file is damaged",
			     r->path, (unsigned long long)off,
			     (unsigned long long)h->seq, w);
			goto out;
		}
		publish(r, &pl, &v, off);
		s->last_type = h->type;
	}
	if (hard) {
		rc = hard;
		goto out;
	}
	s->seq = seq;
	s->end = next;
	if (next >= size || all_zero(r->map + next, size - next))
		goto out;

	uint64_t proof = damage_proof(r, next, size, seq + 1);
	if (proof) {
		errf(err, errlen, "%s: record at offset %llu (sequence %llu) is damaged (%s), and the record at offset %llu was written after it was on disk, so this is not an interrupted write; refusing to open (restore the file from a backup)",
		     r->path, (unsigned long long)next,
		     (unsigned long long)seq + 1, why,
		     (unsigned long long)proof);
		rc = -EBADMSG;
		goto out;
	}
	s->torn = size - next;
out:
	munmap(b.p, b.cap);
	return rc;
}

int64_t regf_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Create a new registry file: written under a temporary name, synced, then
 * linked into place, so a file named path always has a whole header. */
static int create(const char *path, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	struct regf_hdr h;
	int fd, rc = 0;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, REGF_MAGIC, 8);
	h.version = REGF_VERSION;
	h.hdr_size = REGF_HDR_SIZE;
	if (getrandom(&h.salt, sizeof h.salt, 0) != sizeof h.salt)
		h.salt = (uint64_t)regf_clock() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	h.created = regf_clock();
	h.check = hdr_checksum(&h);

	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		errf(err, errlen, "cannot create %s: %s", tmp, strerror(-rc));
		return rc;
	}
	rc = pwrite_all(fd, &h, sizeof h, 0);
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (!rc && link(tmp, path) != 0 && errno != EEXIST) {
		/* filesystems without hard links */
		if (rename(tmp, path) != 0)
			rc = -errno;
	}
	unlink(tmp);
	if (!rc)
		rc = fsync_dir_of(path);
	if (rc)
		errf(err, errlen, "cannot create %s: %s", path, strerror(-rc));
	return rc;
}

static int check_header(const struct registry *r, uint64_t size,
			const struct regf_hdr *h, char *err, size_t errlen)
{
	if (size < REGF_HDR_SIZE) {
		errf(err, errlen, "%s: only %llu bytes, shorter than a registry header: the file is truncated or not a registry",
		     r->path, (unsigned long long)size);
		return -EBADMSG;
	}
	if (memcmp(h->magic, REGF_MAGIC, 8) != 0) {
		errf(err, errlen, "%s: not a vouch registry file (bad magic)", r->path);
		return -EBADMSG;
	}
	if (h->check != hdr_checksum(h)) {
		errf(err, errlen, "%s: the file header is damaged (checksum mismatch)", r->path);
		return -EBADMSG;
	}
	if (h->version != REGF_VERSION || h->hdr_size != REGF_HDR_SIZE) {
		errf(err, errlen, "%s: registry format version %u; this build reads version %u",
		     r->path, h->version, REGF_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* The file was mapped up to old_len and is now len long: map the pages
 * that are new, or put the pages past the end back to PROT_NONE. Pages that
 * stay are not remapped, so what is already faulted in stays so. */
static int map_file(struct registry *r, uint64_t len, uint64_t old_len, int flags)
{
	uint8_t *base = (uint8_t *)r->map;
	uint64_t a = round_up(old_len, 4096), b = round_up(len, 4096);

	if (b > a && mmap(base + a, b - a, PROT_READ, MAP_SHARED | MAP_FIXED | flags,
			  r->fd, (off_t)a) == MAP_FAILED)
		return -errno;
	if (b < a && mmap(base + b, a - b, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
			  -1, 0) == MAP_FAILED)
		return -errno;
	return 0;
}

int reg_open(struct registry **out, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (err && errlen)
		err[0] = 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int rc = -errno;
		errf(err, errlen, "cannot create directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (snprintf(path, sizeof path, "%s/%s", dir, REG_FILE_NAME) >= (int)sizeof path) {
		errf(err, errlen, "data directory path too long");
		return -ENAMETOOLONG;
	}
	return reg_open_file(out, path, err, errlen);
}

static void destroy(struct registry *r)
{
	if (r->map)
		munmap((void *)r->map, r->reserve);
	if (r->fd >= 0)
		close(r->fd);
	for (int k = 0; k < REGX_KINDS; k++)
		regx_free(atomic_load_explicit(&r->tab[k], memory_order_relaxed));
	regq_free(r->q);
	free(r->path);
	free(r);
}

int reg_open_file(struct registry **out, const char *path, char *err,
		  size_t errlen)
{
	struct registry *r;
	struct stat st;
	struct load s;
	uint64_t size, new_size;
	void *base;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	r = aligned_alloc(64, round_up(sizeof(*r), 64));
	if (!r) {
		errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->path = strdup(path);
	if (!r->path) {
		rc = -ENOMEM;
		errf(err, errlen, "out of memory");
		goto fail;
	}

	r->fd = open(path, O_RDWR | O_CLOEXEC);
	if (r->fd < 0 && errno == ENOENT) {
		rc = create(path, err, errlen);
		if (rc)
			goto fail;
		r->fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (r->fd < 0) {
		rc = -errno;
		errf(err, errlen, "cannot open %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (flock(r->fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		if (rc == -EWOULDBLOCK)
			errf(err, errlen, "%s is in use by another process", path);
		else
			errf(err, errlen, "cannot lock %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (fstat(r->fd, &st) != 0) {
		rc = -errno;
		errf(err, errlen, "cannot stat %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		errf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	size = (uint64_t)st.st_size;

	r->reserve = round_up(size * 2 + GROW_MAX, GIB);
	if (r->reserve < RESERVE_MIN)
		r->reserve = RESERVE_MIN;
	if (r->reserve > RESERVE_MAX) {
		rc = -EFBIG;
		errf(err, errlen, "%s: too large (%llu bytes)", path, (unsigned long long)size);
		goto fail;
	}
	base = mmap(NULL, r->reserve, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		errf(err, errlen, "cannot reserve address space for %s: %s", path, strerror(-rc));
		goto fail;
	}
	r->map = base;
	rc = map_file(r, size, 0, 0);
	if (rc) {
		errf(err, errlen, "cannot map %s: %s", path, strerror(-rc));
		goto fail;
	}

	struct regf_hdr hdr;
	memcpy(&hdr, r->map, size < sizeof hdr ? size : sizeof hdr);
	if (size < sizeof hdr)
		memset((uint8_t *)&hdr + size, 0, sizeof hdr - size);
	rc = check_header(r, size, &hdr, err, errlen);
	if (rc)
		goto fail;
	r->salt = hdr.salt;

	uint64_t hint[REGX_KINDS];
	key_hint(r, size, hint);
	r->q = regq_new(hint[REGX_DEV]);
	if (!r->q) {
		rc = -ENOMEM;
		errf(err, errlen, "out of memory for the indexes of %s", path);
		goto fail;
	}
	for (int k = 0; k < REGX_KINDS; k++) {
		struct regx_tab *t = regx_new(hint[k]);
		if (!t) {
			rc = -ENOMEM;
			errf(err, errlen, "out of memory for the indexes of %s", path);
			goto fail;
		}
		atomic_store(&r->tab[k], t);
	}
	rc = load(r, size, &s, err, errlen);
	if (rc)
		goto fail;

	/* Drop an interrupted write, leave room to grow, and make sure all
	 * that is left is on disk before anything new is written after it. */
	new_size = round_up(s.end + GROW_MIN, MIB);
	if (ftruncate(r->fd, (off_t)s.end) != 0 ||
	    ftruncate(r->fd, (off_t)new_size) != 0 || fsync(r->fd) != 0) {
		rc = -errno;
		errf(err, errlen, "cannot resize %s: %s", path, strerror(-rc));
		goto fail;
	}
	rc = map_file(r, new_size, size, 0);
	if (rc) {
		errf(err, errlen, "cannot map %s: %s", path, strerror(-rc));
		goto fail;
	}
	r->size = new_size;
	r->end = s.end;
	r->seq = r->synced_seq = s.seq;
	r->open_seq = s.seq;
	r->last_type = s.last_type;
	atomic_store(&r->n_records, s.seq);
	atomic_store_explicit(&r->durable_seq, s.seq, memory_order_release);
	atomic_store_explicit(&r->durable_end, s.end, memory_order_release);
	if (s.torn)
		errf(err, errlen, "%s: discarded %llu bytes at offset %llu: a write that was interrupted before it was acknowledged",
		     path, (unsigned long long)s.torn, (unsigned long long)s.end);
	*out = r;
	return 0;
fail:
	destroy(r);
	return rc;
}

/* ---- writing ---------------------------------------------------------- */

static int grow_file(struct registry *r, uint64_t need)
{
	uint64_t step = r->size / 4;
	uint64_t ns;

	if (step < GROW_MIN)
		step = GROW_MIN;
	if (step > GROW_MAX)
		step = GROW_MAX;
	ns = round_up(need > r->size + step ? need : r->size + step, MIB);
	if (ns > r->reserve)
		return -EFBIG;
	if (ftruncate(r->fd, (off_t)ns) != 0)
		return -errno;
	if (mmap((uint8_t *)r->map + r->size, ns - r->size, PROT_READ,
		 MAP_SHARED | MAP_FIXED, r->fd, (off_t)r->size) == MAP_FAILED)
		return -errno;
	r->size = ns;
	return 0;
}

/* Make everything written durable, then show it to readers. */
static int sync_now(struct registry *r)
{
	if (r->broken)
		return r->broken;
	if (r->synced_seq == r->seq)
		return 0;
	if (fdatasync(r->fd) != 0) {
		/* The kernel may have dropped the dirty pages: what is on disk
		 * is unknown, so no later write may claim to follow it. */
		r->broken = -EIO;
		return -EIO;
	}
	r->synced_seq = r->seq;
	atomic_store_explicit(&r->durable_end, r->end, memory_order_release);
	atomic_store_explicit(&r->durable_seq, r->seq, memory_order_release);
	return 0;
}

int64_t regf_append(struct registry *r)
{
	struct regf_rec *h = (struct regf_rec *)(void *)r->wbuf;
	uint64_t used = sizeof(*h) + (uint64_t)h->body_len + h->actor_len;
	struct regf_view v;
	struct plan p;
	const char *why;
	uint64_t off;
	int rc;

	if (r->broken)
		return r->broken;
	h->magic = REGF_REC_MAGIC;
	h->len = (uint32_t)align8(used + 1);
	memset(r->wbuf + used, 0, h->len - used);
	h->seq = r->seq + 1;
	h->synced = r->synced_seq;
	h->check = regf_checksum(r->salt, h, h->len);
	if (regf_parse(r->wbuf, &v, &why))
		return -EINVAL;
	rc = check(r, &v, &p, &why, NULL);
	if (rc)
		return rc == -ENOMEM ? rc : -EINVAL;
	if (r->end + h->len > r->size) {
		rc = grow_file(r, r->end + h->len);
		if (rc)
			return rc;
	}
	rc = pwrite_all(r->fd, h, h->len, r->end);
	if (rc)
		return rc;
	off = r->end;
	publish(r, &p, &v, off);
	r->end += h->len;
	r->seq++;
	r->last_type = h->type;
	atomic_fetch_add_explicit(&r->n_records, 1, memory_order_relaxed);
	if (!r->batch) {
		rc = sync_now(r);
		if (rc)
			return rc;
	}
	return (int64_t)off;
}

int reg_begin(struct registry *r)
{
	if (r->broken)
		return r->broken;
	r->batch++;
	return 0;
}

int reg_commit(struct registry *r)
{
	if (r->batch <= 0)
		return -EINVAL;
	if (--r->batch)
		return 0;
	return sync_now(r);
}

int reg_close(struct registry *r)
{
	int rc = 0;

	if (!r)
		return 0;
	if (!r->broken) {
		r->batch = 0;
		rc = sync_now(r);
		/* Mark a clean close, unless nothing happened since the last one. */
		if (!rc && !(r->seq == r->open_seq &&
			     (r->seq == 0 || r->last_type == REGF_CLOSE))) {
			struct regf_rec *h = (struct regf_rec *)(void *)r->wbuf;
			struct regf_close *c = (void *)(h + 1);
			memset(h, 0, sizeof(*h) + sizeof(*c));
			h->type = REGF_CLOSE;
			h->time = regf_clock();
			h->body_len = sizeof(*c);
			c->dev_keys = atomic_load(&r->tab[REGX_DEV])->used;
			c->ser_keys = atomic_load(&r->tab[REGX_SER])->used;
			c->ca_keys = atomic_load(&r->tab[REGX_CA])->used;
			int64_t off = regf_append(r);
			if (off < 0)
				rc = (int)off;
		}
		if (!rc) {
			munmap((void *)r->map, r->reserve);
			r->map = NULL;
			if (ftruncate(r->fd, (off_t)r->end) != 0 || fsync(r->fd) != 0)
				rc = -errno;
		}
	}
	destroy(r);
	return rc;
}
