/*
 * Registry file: every rule of the certificate state table, serial
 * uniqueness, revocation tombstones, binding, batches, history, reopening,
 * interrupted writes (the last record cut at every offset), damage (every
 * byte of a middle record flipped), and a load of many records
 * (200k by default; VOUCH_BIG=1 for the 10M benchmark, timings printed).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/regfile-int.h"
#include "registry/regfile.h"
#include "tests/unit/regfile_util.h"

static const struct reg_by ADMIN = { "admin:alice", 1710000000 };
static const struct reg_by AUTO = { "auto", 1710000001 };

static char err[512];

static struct registry *open_ok(const char *dir)
{
	struct registry *r = NULL;
	int rc = reg_open(&r, dir, err, sizeof err);

	if (rc) {
		fprintf(stderr, "reg_open(%s): %d: %s\n", dir, rc, err);
		exit(1);
	}
	return r;
}

/* An order-independent digest of every visible device and CA. */
struct digest {
	uint64_t sum, n;
};

static int dg_dev(void *ctx, const struct reg_device *d)
{
	struct digest *g = ctx;
	XXH3_state_t *s = XXH3_createState();

	XXH3_64bits_reset(s);
	XXH3_64bits_update(s, d->id, 32);
	XXH3_64bits_update(s, d->issuer, 32);
	XXH3_64bits_update(s, d->serial, d->serial_len);
	XXH3_64bits_update(s, d->cn, d->cn_len + 1);
	XXH3_64bits_update(s, d->client_id, d->client_id_len + 1);
	XXH3_64bits_update(s, d->der, d->der_len);
	XXH3_64bits_update(s, &d->status, sizeof d->status);
	XXH3_64bits_update(s, &d->version, sizeof d->version);
	XXH3_64bits_update(s, &d->updated, sizeof d->updated);
	g->sum += XXH3_64bits_digest(s);
	g->n++;
	XXH3_freeState(s);
	return 0;
}

static int dg_ca(void *ctx, const struct reg_ca *c)
{
	struct digest *g = ctx;
	uint64_t parts[4] = { (uint64_t)c->status, (uint64_t)c->auto_register,
			      (uint64_t)c->auto_status, c->version };

	g->sum += XXH3_64bits(c->id, 32) ^ XXH3_64bits(parts, sizeof parts);
	g->n += 1000000;
	return 0;
}

static uint64_t digest(const struct registry *r)
{
	struct digest g = { 0, 0 };

	CHECK_RC(reg_dev_foreach_mt(r, dg_dev, &g), 0);
	CHECK_RC(reg_ca_foreach_mt(r, dg_ca, &g), 0);
	return g.sum ^ (g.n * 0x9E3779B97F4A7C15ull);
}

static enum reg_status status_of(const struct registry *r, const uint8_t *id)
{
	struct reg_device d;

	if (reg_dev_get_mt(r, id, &d))
		return 0;
	return d.status;
}

static void read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");

	CHECK(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	*buf = malloc(*len + 1);
	CHECK(fread(*buf, 1, *len, f) == *len);
	fclose(f);
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, buf, len) == (ssize_t)len);
	close(fd);
}

static void path_in(char *out, size_t n, const char *dir)
{
	snprintf(out, n, "%s/%s", dir, REG_FILE_NAME);
}

/* ---- CA rules ---------------------------------------------------------- */

static void test_ca_rules(void)
{
	char *dir = tu_tmpdir();
	struct registry *r = open_ok(dir);
	struct tu_ca c;
	struct reg_ca got;

	tu_ca_make(&c, 1, true, REG_PENDING_ACTIVATION);
	CHECK_RC(reg_ca_get_mt(r, c.in.id, &got), -ENOENT);
	CHECK_RC(reg_ca_add(r, &c.in, &ADMIN), 0);
	CHECK_RC(reg_ca_add(r, &c.in, &ADMIN), -EEXIST);
	CHECK_RC(reg_ca_get_mt(r, c.in.id, &got), 0);
	CHECK(got.status == REG_ACTIVE && got.auto_register &&
	      got.auto_status == REG_PENDING_ACTIVATION);
	CHECK(strcmp(got.cn, "ca-1") == 0 && got.der_len == sizeof c.der &&
	      memcmp(got.der, c.der, sizeof c.der) == 0);
	CHECK(strcmp(got.created_by, "admin:alice") == 0 &&
	      got.created == ADMIN.now);

	CHECK_RC(reg_ca_delete(r, c.in.id, &ADMIN), -EBUSY);
	CHECK_RC(reg_ca_set_status(r, c.in.id, REG_REVOKED, &ADMIN), -EINVAL);
	CHECK_RC(reg_ca_set_status(r, c.in.id, REG_PENDING_ACTIVATION, &ADMIN), -EINVAL);
	CHECK_RC(reg_ca_set_auto(r, c.in.id, true, REG_INACTIVE, &ADMIN), -EINVAL);
	uint64_t g0 = reg_generation_mt(r);
	CHECK_RC(reg_ca_set_status(r, c.in.id, REG_ACTIVE, &ADMIN), 0);
	CHECK(reg_generation_mt(r) == g0);      /* no change, no record */
	CHECK_RC(reg_ca_set_auto(r, c.in.id, false, 0, &ADMIN), 0);
	CHECK_RC(reg_ca_get_mt(r, c.in.id, &got), 0);
	CHECK(!got.auto_register && got.auto_status == REG_PENDING_ACTIVATION);
	CHECK(reg_generation_mt(r) == g0 + 1);
	CHECK_RC(reg_ca_set_status(r, c.in.id, REG_INACTIVE, &ADMIN), 0);
	CHECK_RC(reg_ca_get_mt(r, c.in.id, &got), 0);
	CHECK(got.status == REG_INACTIVE);

	struct reg_counts n;
	reg_counts_mt(r, &n);
	CHECK(n.cas == 1 && n.ca_status[REG_INACTIVE] == 1 && n.ca_status[REG_ACTIVE] == 0);

	CHECK_RC(reg_ca_delete(r, c.in.id, &ADMIN), 0);
	CHECK_RC(reg_ca_get_mt(r, c.in.id, &got), -ENOENT);
	CHECK_RC(reg_ca_delete(r, c.in.id, &ADMIN), -ENOENT);
	CHECK_RC(reg_ca_set_status(r, c.in.id, REG_ACTIVE, &ADMIN), -ENOENT);
	reg_counts_mt(r, &n);
	CHECK(n.cas == 0 && n.ca_status[REG_INACTIVE] == 0);

	/* registered again: a fresh registration */
	CHECK_RC(reg_ca_add(r, &c.in, &ADMIN), 0);
	CHECK_RC(reg_ca_get_mt(r, c.in.id, &got), 0);
	CHECK(got.status == REG_ACTIVE && got.auto_register);

	/* bounds */
	struct tu_ca bad;
	tu_ca_make(&bad, 2, false, 0);
	bad.in.cn = "0123456789012345678901234567890123456789012345678901234567890123x";
	CHECK_RC(reg_ca_add(r, &bad.in, &ADMIN), -ENAMETOOLONG);
	tu_ca_make(&bad, 2, false, 0);
	bad.in.status = REG_REVOKED;
	CHECK_RC(reg_ca_add(r, &bad.in, &ADMIN), -EINVAL);
	tu_ca_make(&bad, 2, false, 0);
	bad.in.der_len = REG_DER_MAX + 1;
	CHECK_RC(reg_ca_add(r, &bad.in, &ADMIN), -EMSGSIZE);
	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
}

/* ---- the device state table --------------------------------------------- */

enum action { ACT_ACTIVATE, ACT_DEACTIVATE, ACT_REVOKE, ACT_DELETE };

/* DESIGN.md "Certificate states": expected return and resulting status
 * (0 = deleted) for [from][action]. */
struct outcome {
	int rc;
	enum reg_status after;
};

static const struct outcome table[5][4] = {
	[REG_ACTIVE] = { { 0, REG_ACTIVE }, { 0, REG_INACTIVE },
			 { 0, REG_REVOKED }, { -EBUSY, REG_ACTIVE } },
	[REG_INACTIVE] = { { 0, REG_ACTIVE }, { 0, REG_INACTIVE },
			   { 0, REG_REVOKED }, { 0, 0 } },
	[REG_PENDING_ACTIVATION] = { { 0, REG_ACTIVE }, { 0, REG_INACTIVE },
				     { 0, REG_REVOKED }, { 0, 0 } },
	[REG_REVOKED] = { { -EPERM, REG_REVOKED }, { -EPERM, REG_REVOKED },
			  { 0, REG_REVOKED }, { 0, 0 } },
};

static void test_state_table(void)
{
	char *dir = tu_tmpdir();
	struct registry *r = open_ok(dir);
	struct tu_ca c;
	uint64_t n = 100;

	tu_ca_make(&c, 1, true, REG_ACTIVE);
	CHECK_RC(reg_ca_add(r, &c.in, &ADMIN), 0);
	for (int from = REG_ACTIVE; from <= REG_REVOKED; from++) {
		for (int act = ACT_ACTIVATE; act <= ACT_DELETE; act++) {
			struct tu_dev d;
			tu_dev_make(&d, c.in.id, n++, REG_MANUAL, (enum reg_status)from);
			CHECK_RC(reg_dev_add(r, &d.in, &ADMIN), 0);
			CHECK(status_of(r, d.in.id) == (enum reg_status)from);
			int rc;
			switch (act) {
			case ACT_ACTIVATE: rc = reg_dev_set_status(r, d.in.id, REG_ACTIVE, &ADMIN); break;
			case ACT_DEACTIVATE: rc = reg_dev_set_status(r, d.in.id, REG_INACTIVE, &ADMIN); break;
			case ACT_REVOKE: rc = reg_dev_set_status(r, d.in.id, REG_REVOKED, &ADMIN); break;
			default: rc = reg_dev_delete(r, d.in.id, &ADMIN); break;
			}
			if (rc != table[from][act].rc || status_of(r, d.in.id) != table[from][act].after) {
				fprintf(stderr, "state table: from %s action %d: rc %d status %s, want %d %s\n",
					reg_status_name((enum reg_status)from), act, rc,
					reg_status_name(status_of(r, d.in.id)),
					table[from][act].rc,
					reg_status_name(table[from][act].after));
				exit(1);
			}
			/* PENDING_ACTIVATION is not an action */
			if (status_of(r, d.in.id))
				CHECK_RC(reg_dev_set_status(r, d.in.id, REG_PENDING_ACTIVATION, &ADMIN), -EINVAL);
		}
	}
	uint8_t nobody[32] = { 1 };
	CHECK_RC(reg_dev_set_status(r, nobody, REG_ACTIVE, &ADMIN), -ENOENT);
	CHECK_RC(reg_dev_delete(r, nobody, &ADMIN), -ENOENT);
	CHECK_RC(reg_dev_set_status(r, nobody, (enum reg_status)9, &ADMIN), -EINVAL);

	/* counts follow: 16 added, 3 deleted (INACTIVE, PENDING, REVOKED
	 * rows), statuses as the table says */
	struct reg_counts k;
	reg_counts_mt(r, &k);
	CHECK(k.devices == 13);
	uint64_t per[5] = { 0 };
	for (int from = REG_ACTIVE; from <= REG_REVOKED; from++)
		for (int act = ACT_ACTIVATE; act <= ACT_DELETE; act++)
			per[table[from][act].after]++;
	for (int s = REG_ACTIVE; s <= REG_REVOKED; s++)
		CHECK(k.dev_status[s] == per[s]);
	CHECK_RC(reg_close(r), 0);

	/* the same after reopening */
	r = open_ok(dir);
	struct reg_counts k2;
	reg_counts_mt(r, &k2);
	CHECK(k2.devices == k.devices);
	for (int s = REG_ACTIVE; s <= REG_REVOKED; s++)
		CHECK(k2.dev_status[s] == k.dev_status[s]);
	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
}

/* ---- registration rules: CA policy, serials, tombstones ---------------- */

static void test_registration(void)
{
	char *dir = tu_tmpdir();
	struct registry *r = open_ok(dir);
	struct tu_ca ca, ca2, manual_ca;
	struct tu_dev a, b, d;
	struct reg_device got;

	tu_ca_make(&ca, 1, true, REG_PENDING_ACTIVATION);
	tu_ca_make(&ca2, 2, true, REG_ACTIVE);
	tu_ca_make(&manual_ca, 3, false, REG_ACTIVE);
	CHECK_RC(reg_ca_add(r, &ca.in, &ADMIN), 0);
	CHECK_RC(reg_ca_add(r, &ca2.in, &ADMIN), 0);
	CHECK_RC(reg_ca_add(r, &manual_ca.in, &ADMIN), 0);

	/* unknown CA; CA policy for automatic registration */
	uint8_t unknown[32];
	tu_id(unknown, 99, 3);
	tu_dev_make(&a, unknown, 1, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -ENOENT);
	tu_dev_make(&a, manual_ca.in.id, 1, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -EPERM);
	a.in.how = REG_MANUAL;
	CHECK_RC(reg_dev_add(r, &a.in, &ADMIN), 0);
	CHECK(status_of(r, a.in.id) == REG_ACTIVE);     /* manual default */

	/* AUTO takes the CA's initial status */
	tu_dev_make(&a, ca.in.id, 10, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), 0);
	CHECK_RC(reg_dev_get_mt(r, a.in.id, &got), 0);
	CHECK(got.status == REG_PENDING_ACTIVATION && got.how == REG_AUTO);
	CHECK(strcmp(got.created_by, "auto") == 0 && got.created == AUTO.now);
	CHECK(tu_dev_matches(&got, 10));
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -EEXIST);

	/* an INACTIVE CA refuses automatic registration */
	CHECK_RC(reg_ca_set_status(r, ca2.in.id, REG_INACTIVE, &ADMIN), 0);
	tu_dev_make(&d, ca2.in.id, 20, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &d.in, &AUTO), -EPERM);
	CHECK_RC(reg_ca_set_status(r, ca2.in.id, REG_ACTIVE, &ADMIN), 0);

	/* serials are unique per CA: another ID with a's serial */
	tu_dev_make(&b, ca.in.id, 11, REG_MANUAL, REG_INACTIVE);
	memcpy(b.serial, a.serial, sizeof b.serial);
	CHECK_RC(reg_dev_add(r, &b.in, &ADMIN), -EEXIST);
	/* ... but the same serial under another CA is another certificate */
	tu_dev_make(&d, ca2.in.id, 12, REG_MANUAL, 0);
	memcpy(d.serial, a.serial, sizeof d.serial);
	CHECK_RC(reg_dev_add(r, &d.in, &ADMIN), 0);
	CHECK_RC(reg_dev_by_serial_mt(r, ca2.in.id, a.serial, 8, &got), 0);
	CHECK(memcmp(got.id, d.in.id, 32) == 0);
	CHECK_RC(reg_dev_by_serial_mt(r, ca.in.id, a.serial, 8, &got), 0);
	CHECK(memcmp(got.id, a.in.id, 32) == 0);

	/* a deleted (not revoked) certificate frees its serial and may come back */
	CHECK_RC(reg_dev_delete(r, a.in.id, &ADMIN), 0);   /* PENDING: deletable */
	CHECK_RC(reg_dev_get_mt(r, a.in.id, &got), -ENOENT);
	CHECK_RC(reg_dev_by_serial_mt(r, ca.in.id, a.serial, 8, &got), -ENOENT);
	CHECK(!reg_dev_revoked_mt(r, a.in.id));
	CHECK_RC(reg_dev_add(r, &b.in, &ADMIN), 0);         /* b takes the serial */
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -EEXIST);    /* a cannot come back now */
	CHECK_RC(reg_dev_delete(r, b.in.id, &ADMIN), 0);
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), 0);          /* now it can */
	CHECK(status_of(r, a.in.id) == REG_PENDING_ACTIVATION);
	/* same ID, other serial: not the same certificate */
	CHECK_RC(reg_dev_set_status(r, a.in.id, REG_INACTIVE, &ADMIN), 0);
	CHECK_RC(reg_dev_delete(r, a.in.id, &ADMIN), 0);
	struct tu_dev a2 = a;
	a2.in.serial = a2.serial;
	a2.serial[7] ^= 1;
	CHECK_RC(reg_dev_add(r, &a2.in, &AUTO), -EINVAL);
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), 0);

	/* revoked then deleted: the revocation stays on record */
	CHECK_RC(reg_dev_set_status(r, a.in.id, REG_REVOKED, &ADMIN), 0);
	CHECK(reg_dev_revoked_mt(r, a.in.id));
	CHECK(reg_serial_revoked_mt(r, ca.in.id, a.serial, 8));
	CHECK_RC(reg_dev_delete(r, a.in.id, &ADMIN), 0);
	CHECK_RC(reg_dev_get_mt(r, a.in.id, &got), -ENOENT);
	CHECK(reg_dev_revoked_mt(r, a.in.id));
	CHECK(reg_serial_revoked_mt(r, ca.in.id, a.serial, 8));
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -EKEYREVOKED);
	b.in.how = REG_AUTO;
	b.in.status = 0;
	CHECK_RC(reg_dev_add(r, &b.in, &AUTO), -EKEYREVOKED);       /* same serial */
	b.in.how = REG_MANUAL;
	b.in.status = REG_ACTIVE;
	CHECK_RC(reg_dev_add(r, &b.in, &ADMIN), 1);                 /* stored REVOKED */
	CHECK(status_of(r, b.in.id) == REG_REVOKED);
	CHECK_RC(reg_dev_set_status(r, b.in.id, REG_ACTIVE, &ADMIN), -EPERM);
	CHECK_RC(reg_dev_delete(r, b.in.id, &ADMIN), 0);
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -EKEYREVOKED);

	/* revocation of a serial never seen (CRL import), then registration */
	struct tu_dev f;
	tu_dev_make(&f, ca2.in.id, 30, REG_AUTO, 0);
	CHECK(!reg_serial_revoked_mt(r, ca2.in.id, f.serial, 8));
	CHECK_RC(reg_revoke_serial(r, ca2.in.id, f.serial, 8, &ADMIN), 1);
	CHECK_RC(reg_revoke_serial(r, ca2.in.id, f.serial, 8, &ADMIN), 0);
	CHECK(reg_serial_revoked_mt(r, ca2.in.id, f.serial, 8));
	CHECK(!reg_serial_revoked_mt(r, ca.in.id, f.serial, 8));
	CHECK(!reg_dev_revoked_mt(r, f.in.id));         /* never seen by ID */
	CHECK_RC(reg_dev_add(r, &f.in, &AUTO), -EKEYREVOKED);
	f.in.how = REG_MANUAL;
	CHECK_RC(reg_dev_add(r, &f.in, &ADMIN), 1);
	CHECK(status_of(r, f.in.id) == REG_REVOKED);
	CHECK(reg_dev_revoked_mt(r, f.in.id));

	/* revoking the serial of a registered certificate revokes it */
	struct tu_dev g;
	tu_dev_make(&g, ca2.in.id, 31, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &g.in, &AUTO), 0);
	CHECK(status_of(r, g.in.id) == REG_ACTIVE);
	CHECK_RC(reg_revoke_serial(r, ca2.in.id, g.serial, 8, &ADMIN), 1);
	CHECK(status_of(r, g.in.id) == REG_REVOKED);
	CHECK_RC(reg_revoke_serial(r, ca2.in.id, g.serial, 8, &ADMIN), 0);

	/* ... and of a deleted one keeps it from coming back */
	struct tu_dev h;
	tu_dev_make(&h, ca2.in.id, 32, REG_MANUAL, REG_INACTIVE);
	CHECK_RC(reg_dev_add(r, &h.in, &ADMIN), 0);
	CHECK_RC(reg_dev_delete(r, h.in.id, &ADMIN), 0);
	CHECK(!reg_dev_revoked_mt(r, h.in.id));
	CHECK_RC(reg_revoke_serial(r, ca2.in.id, h.serial, 8, &ADMIN), 1);
	CHECK(reg_dev_revoked_mt(r, h.in.id));
	h.in.how = REG_AUTO;
	CHECK_RC(reg_dev_add(r, &h.in, &AUTO), -EKEYREVOKED);

	/* input bounds: nothing is truncated */
	struct tu_dev x;
	tu_dev_make(&x, ca2.in.id, 40, REG_MANUAL, 0);
	char longname[REG_NAME_MAX + 2];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	x.in.ou = longname;
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), -ENAMETOOLONG);
	longname[REG_NAME_MAX] = 0;                   /* exactly the bound */
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), 0);
	CHECK_RC(reg_dev_get_mt(r, x.in.id, &got), 0);
	CHECK(got.ou_len == REG_NAME_MAX && strcmp(got.ou, longname) == 0);
	tu_dev_make(&x, ca2.in.id, 41, REG_MANUAL, 0);
	uint8_t bigserial[REG_SERIAL_MAX + 1] = { 1 };
	x.in.serial = bigserial;
	x.in.serial_len = sizeof bigserial;
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), -ENAMETOOLONG);
	x.in.serial_len = 0;
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), -EINVAL);
	tu_dev_make(&x, ca2.in.id, 41, REG_MANUAL, 0);
	x.in.how = 0;
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), -EINVAL);
	x.in.how = REG_MANUAL;
	x.in.der_len = 0;
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), -EINVAL);
	x.in.der_len = REG_DER_MAX + 1;
	CHECK_RC(reg_dev_add(r, &x.in, &ADMIN), -EMSGSIZE);
	x.in.der_len = sizeof x.der;
	char longactor[REG_ACTOR_MAX + 2];
	memset(longactor, 'a', sizeof longactor - 1);
	longactor[sizeof longactor - 1] = 0;
	struct reg_by lb = { longactor, 0 };
	CHECK_RC(reg_dev_add(r, &x.in, &lb), -ENAMETOOLONG);
	CHECK_RC(reg_revoke_serial(r, ca.in.id, bigserial, sizeof bigserial, &ADMIN), -ENAMETOOLONG);
	CHECK_RC(reg_revoke_serial(r, ca.in.id, bigserial, 0, &ADMIN), -EINVAL);

	/* everything survives a reopen, digest for digest */
	uint64_t dg = digest(r);
	struct reg_counts k1, k2;
	reg_counts_mt(r, &k1);
	CHECK_RC(reg_close(r), 0);
	r = open_ok(dir);
	CHECK(digest(r) == dg);
	reg_counts_mt(r, &k2);
	CHECK(k1.devices == k2.devices && k1.cas == k2.cas);
	CHECK(reg_dev_revoked_mt(r, a.in.id) && reg_dev_revoked_mt(r, h.in.id));
	CHECK(reg_serial_revoked_mt(r, ca2.in.id, f.serial, 8));
	CHECK_RC(reg_dev_add(r, &a.in, &AUTO), -EKEYREVOKED);
	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
}

/* ---- binding ------------------------------------------------------------- */

static void test_bind(void)
{
	char *dir = tu_tmpdir();
	struct registry *r = open_ok(dir);
	struct tu_ca ca;
	struct tu_dev d;
	struct reg_device got;

	tu_ca_make(&ca, 1, true, REG_ACTIVE);
	CHECK_RC(reg_ca_add(r, &ca.in, &ADMIN), 0);
	tu_dev_make(&d, ca.in.id, 1, REG_MANUAL, 0);
	d.in.client_id = "pump-7";
	CHECK_RC(reg_dev_add(r, &d.in, &ADMIN), 0);
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(strcmp(got.client_id, "pump-7") == 0 && got.client_id_len == 6);

	CHECK_RC(reg_dev_bind(r, d.in.id, "pump-8", 6, &ADMIN), 0);
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(strcmp(got.client_id, "pump-8") == 0);
	uint64_t v = got.version;
	CHECK_RC(reg_dev_bind(r, d.in.id, "pump-8", 6, &ADMIN), 0);     /* unchanged */
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(got.version == v);
	/* the binding survives status changes */
	CHECK_RC(reg_dev_set_status(r, d.in.id, REG_INACTIVE, &ADMIN), 0);
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(strcmp(got.client_id, "pump-8") == 0 && got.status == REG_INACTIVE);
	CHECK_RC(reg_dev_bind(r, d.in.id, NULL, 0, &ADMIN), 0);         /* unbind */
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(got.client_id_len == 0 && got.client_id[0] == 0 &&
	      got.status == REG_INACTIVE);

	char big[REG_CLIENT_MAX + 1];
	memset(big, 'c', sizeof big);
	CHECK_RC(reg_dev_bind(r, d.in.id, big, sizeof big, &ADMIN), -ENAMETOOLONG);
	CHECK_RC(reg_dev_bind(r, d.in.id, big, REG_CLIENT_MAX, &ADMIN), 0);
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(got.client_id_len == REG_CLIENT_MAX);
	CHECK_RC(reg_dev_bind(r, d.in.id, "a\0b", 3, &ADMIN), -EINVAL);
	uint8_t nobody[32] = { 2 };
	CHECK_RC(reg_dev_bind(r, nobody, "x", 1, &ADMIN), -ENOENT);
	CHECK_RC(reg_close(r), 0);
	r = open_ok(dir);
	CHECK_RC(reg_dev_get_mt(r, d.in.id, &got), 0);
	CHECK(got.client_id_len == REG_CLIENT_MAX && got.status == REG_INACTIVE);
	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
}

/* ---- history -------------------------------------------------------------- */

struct hist {
	int n;
	struct reg_event ev[16];
	char actor[16][32];
	char client[16][32];
};

static int hist_cb(void *ctx, const struct reg_event *ev)
{
	struct hist *h = ctx;

	CHECK(h->n < 16);
	h->ev[h->n] = *ev;
	snprintf(h->actor[h->n], 32, "%s", ev->actor);
	snprintf(h->client[h->n], 32, "%s", ev->client_id);
	h->n++;
	return 0;
}

static void test_history(void)
{
	char *dir = tu_tmpdir();
	struct registry *r = open_ok(dir);
	struct tu_ca ca;
	struct tu_dev d;
	struct reg_by bob = { "admin:bob", 1720000000 };
	struct reg_by crl = { "crl:import", 1720000100 };

	tu_ca_make(&ca, 1, true, REG_PENDING_ACTIVATION);
	CHECK_RC(reg_ca_add(r, &ca.in, &ADMIN), 0);
	tu_dev_make(&d, ca.in.id, 5, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &d.in, &AUTO), 0);
	CHECK_RC(reg_dev_bind(r, d.in.id, "m1", 2, &bob), 0);
	CHECK_RC(reg_dev_set_status(r, d.in.id, REG_ACTIVE, &bob), 0);
	CHECK_RC(reg_dev_set_status(r, d.in.id, REG_INACTIVE, &bob), 0);
	CHECK_RC(reg_dev_delete(r, d.in.id, &bob), 0);
	CHECK_RC(reg_dev_add(r, &d.in, &AUTO), 0);             /* second life */
	CHECK_RC(reg_revoke_serial(r, ca.in.id, d.serial, 8, &crl), 1);
	CHECK_RC(reg_dev_delete(r, d.in.id, &bob), 0);

	for (int pass = 0; pass < 2; pass++) {
		struct hist h;
		memset(&h, 0, sizeof h);
		CHECK_RC(reg_dev_history_mt(r, d.in.id, hist_cb, &h), 0);
		static const struct {
			enum reg_event_kind kind;
			enum reg_status status;
			const char *actor, *client;
		} want[] = {
			{ REG_EV_ADDED, REG_PENDING_ACTIVATION, "auto", "" },
			{ REG_EV_BOUND, REG_PENDING_ACTIVATION, "admin:bob", "m1" },
			{ REG_EV_STATUS, REG_ACTIVE, "admin:bob", "m1" },
			{ REG_EV_STATUS, REG_INACTIVE, "admin:bob", "m1" },
			{ REG_EV_DELETED, REG_INACTIVE, "admin:bob", "" },
			{ REG_EV_ADDED, REG_PENDING_ACTIVATION, "auto", "" },
			{ REG_EV_STATUS, REG_REVOKED, "crl:import", "" },
			{ REG_EV_DELETED, REG_REVOKED, "admin:bob", "" },
		};
		CHECK(h.n == (int)(sizeof want / sizeof want[0]));
		for (int i = 0; i < h.n; i++) {
			CHECK(h.ev[i].kind == want[i].kind);
			CHECK(h.ev[i].status == want[i].status);
			CHECK(strcmp(h.actor[i], want[i].actor) == 0);
			CHECK(strcmp(h.client[i], want[i].client) == 0);
			CHECK(i == 0 || h.ev[i].seq > h.ev[i - 1].seq);
		}
		CHECK(h.ev[0].how == REG_AUTO && h.ev[1].time == bob.now &&
		      h.ev[6].time == crl.now);
		CHECK_RC(reg_close(r), 0);
		r = open_ok(dir);
	}
	uint8_t nobody[32] = { 3 };
	struct hist h2 = { 0 };
	CHECK_RC(reg_dev_history_mt(r, nobody, hist_cb, &h2), -ENOENT);
	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
}

/* ---- batches and the durable view -------------------------------------- */

static void test_batch(void)
{
	char *dir = tu_tmpdir();
	struct registry *r = open_ok(dir), *r2;
	struct tu_ca ca;
	struct tu_dev d[5];
	struct reg_device got;

	tu_ca_make(&ca, 1, true, REG_ACTIVE);
	CHECK_RC(reg_ca_add(r, &ca.in, &ADMIN), 0);
	tu_dev_make(&d[0], ca.in.id, 0, REG_AUTO, 0);
	CHECK_RC(reg_dev_add(r, &d[0].in, &AUTO), 0);
	uint64_t g0 = reg_generation_mt(r);

	CHECK_RC(reg_begin(r), 0);
	for (int i = 1; i < 5; i++) {
		tu_dev_make(&d[i], ca.in.id, (uint64_t)i, REG_AUTO, 0);
		CHECK_RC(reg_dev_add(r, &d[i].in, &AUTO), 0);
	}
	CHECK_RC(reg_dev_set_status(r, d[0].in.id, REG_INACTIVE, &ADMIN), 0);
	/* the writer sees its uncommitted changes ... */
	CHECK_RC(reg_dev_add(r, &d[3].in, &AUTO), -EEXIST);
	CHECK_RC(reg_dev_delete(r, d[0].in.id, &ADMIN), 0);
	CHECK_RC(reg_dev_delete(r, d[0].in.id, &ADMIN), -ENOENT);
	/* ... readers do not, until they are durable */
	CHECK_RC(reg_dev_get_mt(r, d[3].in.id, &got), -ENOENT);
	CHECK_RC(reg_dev_by_serial_mt(r, ca.in.id, d[3].serial, 8, &got), -ENOENT);
	CHECK_RC(reg_dev_get_mt(r, d[0].in.id, &got), 0);
	CHECK(got.status == REG_ACTIVE);
	CHECK(reg_generation_mt(r) == g0);
	struct reg_counts k;
	reg_counts_mt(r, &k);
	CHECK(k.devices == 4);                  /* the writer's counters */
	CHECK_RC(reg_begin(r), 0);              /* nested */
	CHECK_RC(reg_commit(r), 0);
	CHECK_RC(reg_dev_get_mt(r, d[3].in.id, &got), -ENOENT);
	CHECK_RC(reg_commit(r), 0);
	CHECK_RC(reg_commit(r), -EINVAL);
	CHECK(reg_generation_mt(r) == g0 + 6);
	CHECK_RC(reg_dev_get_mt(r, d[3].in.id, &got), 0);
	CHECK_RC(reg_dev_get_mt(r, d[0].in.id, &got), -ENOENT);

	/* one process at a time */
	CHECK_RC(reg_open(&r2, dir, err, sizeof err), -EWOULDBLOCK);
	CHECK(strstr(err, "in use"));

	/* close commits an open batch */
	CHECK_RC(reg_begin(r), 0);
	CHECK_RC(reg_dev_set_status(r, d[4].in.id, REG_INACTIVE, &ADMIN), 0);
	CHECK_RC(reg_close(r), 0);
	r = open_ok(dir);
	CHECK(status_of(r, d[4].in.id) == REG_INACTIVE);
	CHECK_RC(reg_close(r), 0);
	tu_rmdir(dir);
	free(dir);
}

/* ---- interrupted writes and damage ---------------------------------------- */

/* Record offsets of a registry image (walks the lengths). */
static int record_offsets(const uint8_t *buf, size_t len, uint64_t *offs, int max)
{
	int n = 0;

	for (uint64_t off = REGF_HDR_SIZE; off + sizeof(struct regf_rec) <= len && n < max;) {
		const struct regf_rec *h = (const void *)(buf + off);
		if (h->magic != REGF_REC_MAGIC || h->len == 0)
			break;
		offs[n++] = off;
		off += h->len;
	}
	return n;
}

static void build_small(struct registry *r, int ndev, struct tu_ca *ca)
{
	tu_ca_make(ca, 1, true, REG_ACTIVE);
	CHECK_RC(reg_ca_add(r, &ca->in, &ADMIN), 0);
	for (int i = 0; i < ndev; i++) {
		struct tu_dev d;
		tu_dev_make(&d, ca->in.id, (uint64_t)i, REG_AUTO, 0);
		CHECK_RC(reg_dev_add(r, &d.in, &AUTO), 0);
	}
}

static void test_truncation(void)
{
	char *dir = tu_tmpdir(), *dir2 = tu_tmpdir();
	char path[4200], path2[4200];
	struct registry *r = open_ok(dir);
	struct tu_ca ca;
	struct reg_counts k;
	uint8_t *img;
	size_t img_len;

	path_in(path, sizeof path, dir);
	path_in(path2, sizeof path2, dir2);
	build_small(r, 4, &ca);
	reg_counts_mt(r, &k);
	uint64_t start = k.file_bytes;
	uint64_t before = digest(r);
	struct tu_dev last;
	tu_dev_make(&last, ca.in.id, 77, REG_AUTO, 0);
	last.in.client_id = "the-last-one";
	CHECK_RC(reg_dev_add(r, &last.in, &AUTO), 0);
	reg_counts_mt(r, &k);
	uint64_t end = k.file_bytes;
	uint64_t after = digest(r);
	CHECK(end > start + 300);

	/* the file as a crash (no close) leaves it */
	read_file(path, &img, &img_len);
	CHECK(img_len >= end);
	CHECK_RC(reg_close(r), 0);

	int discarded = 0;
	for (uint64_t cut = start; cut <= end; cut++) {
		struct registry *q;
		write_file(path2, img, cut);
		int rc = reg_open(&q, dir2, err, sizeof err);
		if (rc) {
			fprintf(stderr, "cut at %llu: %d %s\n", (unsigned long long)cut, rc, err);
			exit(1);
		}
		CHECK(digest(q) == (cut == end ? after : before));
		if (cut > start && cut < end) {
			CHECK(strstr(err, "discarded"));
			discarded++;
		} else {
			CHECK(err[0] == 0);
		}
		/* the recovered file takes new writes and reopens */
		if (cut % 97 == 0 || cut == start + 1) {
			struct tu_dev n;
			tu_dev_make(&n, ca.in.id, 1000 + cut, REG_AUTO, 0);
			CHECK_RC(reg_dev_add(q, &n.in, &AUTO), 0);
			CHECK_RC(reg_close(q), 0);
			CHECK_RC(reg_open(&q, dir2, err, sizeof err), 0);
			CHECK(err[0] == 0);
			struct reg_device got;
			CHECK_RC(reg_dev_get_mt(q, n.in.id, &got), 0);
		}
		CHECK_RC(reg_close(q), 0);
	}
	CHECK(discarded == (int)(end - start - 1));

	/* unwritten pages inside the last record (zeros), file length kept */
	for (uint64_t hole = start; hole < end; hole += 64) {
		struct registry *q;
		uint8_t *copy = malloc(img_len);
		memcpy(copy, img, img_len);
		memset(copy + hole, 0, 64 > end - hole ? end - hole : 64);
		write_file(path2, copy, img_len);
		free(copy);
		CHECK_RC(reg_open(&q, dir2, err, sizeof err), 0);
		CHECK(strstr(err, "discarded"));
		CHECK(digest(q) == before);
		CHECK_RC(reg_close(q), 0);
	}
	free(img);
	tu_rmdir(dir);
	tu_rmdir(dir2);
	free(dir);
	free(dir2);
}

static void test_damage(void)
{
	char *dir = tu_tmpdir(), *dir2 = tu_tmpdir();
	char path[4200], path2[4200], want[64];
	struct registry *r = open_ok(dir), *q;
	struct tu_ca ca;
	uint8_t *img;
	size_t img_len;
	uint64_t offs[32];

	path_in(path, sizeof path, dir);
	path_in(path2, sizeof path2, dir2);
	build_small(r, 5, &ca);
	CHECK_RC(reg_close(r), 0);
	read_file(path, &img, &img_len);
	int n = record_offsets(img, img_len, offs, 32);
	CHECK(n == 7);          /* CA, 5 devices, close mark */
	CHECK(offs[n - 1] + 96 == img_len);             /* the close mark, last */

	/* every byte of a middle record, and of the last device record (the
	 * close mark after it proves it was on disk) */
	int targets[2] = { 3, n - 2 };
	for (int t = 0; t < 2; t++) {
		uint64_t from = offs[targets[t]], to = offs[targets[t] + 1];
		snprintf(want, sizeof want, "offset %llu ", (unsigned long long)from);
		for (uint64_t i = from; i < to; i++) {
			img[i] ^= 0x5a;
			write_file(path2, img, img_len);
			img[i] ^= 0x5a;
			int rc = reg_open(&q, dir2, err, sizeof err);
			if (rc != -EBADMSG || !strstr(err, want)) {
				fprintf(stderr, "flip at %llu: rc %d: %s\n", (unsigned long long)i, rc, err);
				exit(1);
			}
		}
	}
	printf("  damage message: %s\n", err);

	/* a record whose checksum is right but whose change is illegal */
	{
		uint8_t *copy = malloc(img_len);
		memcpy(copy, img, img_len);
		struct regf_hdr *fh = (void *)copy;
		struct regf_rec *h = (void *)(copy + offs[2]);
		struct regf_dev_add *b = (void *)(copy + offs[2] + sizeof *h);
		CHECK(h->type == REGF_DEV_ADD);
		memcpy(b->id, copy + offs[1] + sizeof *h, 32);  /* same ID twice */
		h->prev = offs[1];
		h->check = regf_checksum(fh->salt, h, h->len);
		write_file(path2, copy, img_len);
		CHECK_RC(reg_open(&q, dir2, err, sizeof err), -EBADMSG);
		CHECK(strstr(err, "inconsistent") && strstr(err, "already registered"));
		free(copy);
	}
	/* the header */
	for (size_t i = 0; i < REGF_HDR_SIZE; i++) {
		img[i] ^= 0x01;
		write_file(path2, img, img_len);
		img[i] ^= 0x01;
		CHECK_RC(reg_open(&q, dir2, err, sizeof err), -EBADMSG);
	}
	{
		struct regf_hdr h;
		memcpy(&h, img, sizeof h);
		h.version = 2;
		h.check = XXH3_64bits(&h, offsetof(struct regf_hdr, check));
		uint8_t *copy = malloc(img_len);
		memcpy(copy, img, img_len);
		memcpy(copy, &h, sizeof h);
		write_file(path2, copy, img_len);
		free(copy);
		CHECK_RC(reg_open(&q, dir2, err, sizeof err), -EPROTONOSUPPORT);
		CHECK(strstr(err, "version 2"));
	}
	for (size_t len = 0; len < REGF_HDR_SIZE; len += 7) {
		write_file(path2, img, len);
		CHECK_RC(reg_open(&q, dir2, err, sizeof err), -EBADMSG);
		CHECK(strstr(err, "shorter than a registry header") || strstr(err, "bad magic"));
	}
	/* a record out of sequence (two files glued) */
	{
		uint8_t *copy = malloc(img_len * 2);
		memcpy(copy, img, img_len);
		memcpy(copy + img_len, img + REGF_HDR_SIZE, img_len - REGF_HDR_SIZE);
		write_file(path2, copy, img_len * 2 - REGF_HDR_SIZE);
		free(copy);
		CHECK_RC(reg_open(&q, dir2, err, sizeof err), -EBADMSG);
		CHECK(strstr(err, "sequence"));
	}
	/* the intact file still opens, unchanged by all this */
	write_file(path2, img, img_len);
	CHECK_RC(reg_open(&q, dir2, err, sizeof err), 0);
	struct reg_counts k;
	reg_counts_mt(q, &k);
	CHECK(k.devices == 5 && k.cas == 1);
	CHECK_RC(reg_close(q), 0);
	free(img);
	tu_rmdir(dir);
	tu_rmdir(dir2);
	free(dir);
	free(dir2);
}

/* ---- many records ----------------------------------------------------------- */

static void test_many(void)
{
	const char *big = getenv("VOUCH_BIG");
	uint64_t n = big && *big == '1' ? 10000000 : 200000;
	char *dir = tu_tmpdir();
	char path[4200];
	struct registry *r = open_ok(dir);
	struct tu_ca ca;
	struct tu_dev d;
	double t0 = tu_now();

	path_in(path, sizeof path, dir);
	tu_ca_make(&ca, 1, true, REG_ACTIVE);
	CHECK_RC(reg_ca_add(r, &ca.in, &ADMIN), 0);
	CHECK_RC(reg_begin(r), 0);
	for (uint64_t i = 0; i < n; i++) {
		tu_dev_make(&d, ca.in.id, i, REG_AUTO, 0);
		CHECK_RC(reg_dev_add(r, &d.in, &AUTO), 0);
		if (i % 10000 == 9999) {
			CHECK_RC(reg_commit(r), 0);
			CHECK_RC(reg_begin(r), 0);
		}
		if (i % 5 == 0)     /* some history too */
			CHECK_RC(reg_dev_set_status(r, d.in.id, REG_INACTIVE, &ADMIN), 0);
	}
	CHECK_RC(reg_commit(r), 0);
	double t_build = tu_now() - t0;
	CHECK_RC(reg_close(r), 0);

	struct stat st;
	CHECK(stat(path, &st) == 0);
	t0 = tu_now();
	r = open_ok(dir);
	double t_warm = tu_now() - t0;
	CHECK_RC(reg_close(r), 0);

	/* again with the file's pages evicted from the page cache */
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	t0 = tu_now();
	r = open_ok(dir);
	double t_cold = tu_now() - t0;

	struct reg_counts k;
	reg_counts_mt(r, &k);
	CHECK(k.devices == n && k.dev_status[REG_INACTIVE] == (n + 4) / 5 &&
	      k.dev_status[REG_ACTIVE] == n - (n + 4) / 5);

	t0 = tu_now();
	struct reg_device got;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t id[32];
		tu_id(id, i, 7);
		CHECK_RC(reg_dev_get_mt(r, id, &got), 0);
		CHECK(got.status == (i % 5 == 0 ? REG_INACTIVE : REG_ACTIVE));
		if (i % 1000 == 0)
			CHECK(tu_dev_matches(&got, i));
	}
	double t_get = tu_now() - t0;
	t0 = tu_now();
	for (uint64_t i = 0; i < n; i += 3) {
		tu_dev_make(&d, ca.in.id, i, REG_AUTO, 0);
		CHECK_RC(reg_dev_by_serial_mt(r, ca.in.id, d.serial, 8, &got), 0);
		CHECK(memcmp(got.id, d.in.id, 32) == 0);
	}
	double t_ser = tu_now() - t0;
	uint8_t miss[32];
	tu_id(miss, n + 1, 7);
	CHECK_RC(reg_dev_get_mt(r, miss, &got), -ENOENT);
	CHECK_RC(reg_close(r), 0);

	printf("  %llu devices, file %.1f MiB: build %.2f s, open warm %.3f s, open cold %.3f s, "
	       "get %.0f ns, by serial %.0f ns (incl. test overhead)\n",
	       (unsigned long long)n, (double)st.st_size / (1 << 20), t_build,
	       t_warm, t_cold, t_get * 1e9 / (double)n,
	       t_ser * 1e9 / (double)((n + 2) / 3));
	tu_rmdir(dir);
	free(dir);
}

/* ---- the fuzz corpus (VOUCH_GEN_CORPUS=dir) -------------------------------- */

static const char *corpus_dir;
static int corpus_n;

static void emit(const char *name, int mode, const uint8_t *buf, size_t len)
{
	char p[4200];
	uint8_t *m = malloc(len + 1);

	m[0] = (uint8_t)mode;
	memcpy(m + 1, buf, len);
	snprintf(p, sizeof p, "%s/%s-m%d", corpus_dir, name, mode);
	write_file(p, m, len + 1);
	free(m);
	corpus_n++;
}

static void emit_modes(const char *name, const uint8_t *buf, size_t len)
{
	for (int mode = 0; mode < 4; mode++)
		emit(name, mode, buf, len);
}

/* A small registry exercising every record type; small DERs. */
static void small_history(struct registry *r, int ndev)
{
	struct tu_ca ca[2];
	struct tu_dev d;

	tu_ca_make(&ca[0], 1, true, REG_ACTIVE);
	tu_ca_make(&ca[1], 2, false, REG_PENDING_ACTIVATION);
	ca[0].in.der_len = ca[1].in.der_len = 16;
	CHECK_RC(reg_ca_add(r, &ca[0].in, &ADMIN), 0);
	CHECK_RC(reg_ca_add(r, &ca[1].in, &ADMIN), 0);
	for (int i = 0; i < ndev; i++) {
		tu_dev_make(&d, ca[i % 2].in.id, (uint64_t)i, i % 2 ? REG_MANUAL : REG_AUTO, 0);
		d.in.der_len = 16;
		CHECK(reg_dev_add(r, &d.in, i % 2 ? &ADMIN : &AUTO) >= 0);
		switch (i % 6) {
		case 1: CHECK_RC(reg_dev_bind(r, d.in.id, "bound", 5, &ADMIN), 0); break;
		case 2: CHECK_RC(reg_dev_set_status(r, d.in.id, REG_INACTIVE, &ADMIN), 0);
			CHECK_RC(reg_dev_delete(r, d.in.id, &ADMIN), 0); break;
		case 3: CHECK_RC(reg_dev_set_status(r, d.in.id, REG_REVOKED, &ADMIN), 0);
			CHECK_RC(reg_dev_delete(r, d.in.id, &ADMIN), 0); break;
		case 4: CHECK_RC(reg_revoke_serial(r, d.in.issuer, d.serial, 8, &ADMIN), 1); break;
		case 5: CHECK_RC(reg_dev_set_status(r, d.in.id, REG_INACTIVE, &ADMIN), 0);
			CHECK_RC(reg_dev_delete(r, d.in.id, &ADMIN), 0);
			CHECK_RC(reg_dev_add(r, &d.in, &ADMIN), 0); break;
		}
	}
	uint8_t unseen[3] = { 9, 9, 9 };
	CHECK_RC(reg_revoke_serial(r, ca[0].in.id, unseen, 3, &ADMIN), 1);
	CHECK_RC(reg_ca_set_status(r, ca[1].in.id, REG_INACTIVE, &ADMIN), 0);
	CHECK_RC(reg_ca_set_auto(r, ca[0].in.id, true, REG_PENDING_ACTIVATION, &ADMIN), 0);
}

static void gen_corpus(void)
{
	char *dir = tu_tmpdir();
	char path[4200], name[64];
	struct registry *r;
	uint8_t *img, *open_img;
	size_t len, open_len;
	uint64_t offs[256];
	struct reg_counts k;

	path_in(path, sizeof path, dir);
	/* a new, empty registry */
	r = open_ok(dir);
	CHECK_RC(reg_close(r), 0);
	read_file(path, &img, &len);
	emit_modes("empty", img, len);
	free(img);
	unlink(path);

	/* a small one, as a crash leaves it (log end, then zeros) ... */
	r = open_ok(dir);
	small_history(r, 12);
	reg_counts_mt(r, &k);
	read_file(path, &open_img, &open_len);
	open_len = k.file_bytes + 64;
	emit_modes("crashed", open_img, open_len);
	/* ... and cleanly closed */
	CHECK_RC(reg_close(r), 0);
	read_file(path, &img, &len);
	emit_modes("small", img, len);
	int n = record_offsets(img, len, offs, 256);

	/* cut: in the header, in a record header, in a body, before the end */
	uint64_t cuts[] = { 0, 9, 63, 64 + 20, offs[1] + 30, offs[n / 2] + 57,
			    offs[n - 2] + 13, len - 1 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		snprintf(name, sizeof name, "cut%zu", i);
		emit(name, 0, img, cuts[i]);
		emit(name, 3, img, cuts[i]);
	}
	/* damage: one flipped byte in the header, in the middle, in the last
	 * record; zeros over the middle */
	uint64_t flips[] = { 3, 20, offs[n / 2] + 4, offs[n / 2] + 60,
			     offs[n - 2] + 40, len - 5 };
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		img[flips[i]] ^= 0x21;
		snprintf(name, sizeof name, "flip%zu", i);
		emit(name, 0, img, len);
		emit(name, 1, img, len);
		img[flips[i]] ^= 0x21;
	}
	{
		uint8_t *z = malloc(len);
		memcpy(z, img, len);
		memset(z + offs[n / 2], 0, offs[n / 2 + 1] - offs[n / 2]);
		emit("zeroed", 0, z, len);
		/* an illegal change with a good checksum: status byte of a
		 * DEV_STATE set to an impossible transition */
		memcpy(z, img, len);
		for (int i = 0; i < n; i++) {
			struct regf_rec *h = (void *)(z + offs[i]);
			if (h->type == REGF_DEV_STATE) {
				((struct regf_dev_state *)(void *)(h + 1))->status = REG_PENDING_ACTIVATION;
				break;
			}
		}
		emit("illegal", 1, z, len);
		emit("illegal", 3, z, len);
		/* two logs glued: sequence numbers restart */
		uint8_t *g = malloc(len * 2);
		memcpy(g, img, len);
		memcpy(g + len, img + REGF_HDR_SIZE, len - REGF_HDR_SIZE);
		emit("glued", 0, g, len * 2 - REGF_HDR_SIZE);
		emit("glued", 1, g, len * 2 - REGF_HDR_SIZE);
		/* a header of a later version */
		memcpy(z, img, len);
		((struct regf_hdr *)(void *)z)->version = 2;
		emit("version2", 1, z, len);
		free(g);
		free(z);
	}
	free(img);
	free(open_img);
	unlink(path);

	/* a bigger one with a batch */
	r = open_ok(dir);
	CHECK_RC(reg_begin(r), 0);
	small_history(r, 40);
	CHECK_RC(reg_commit(r), 0);
	CHECK_RC(reg_close(r), 0);
	read_file(path, &img, &len);
	emit("batch", 0, img, len);
	emit("batch", 3, img, len);
	free(img);
	tu_rmdir(dir);
	free(dir);
	printf("wrote %d corpus files to %s\n", corpus_n, corpus_dir);
}

int main(void)
{
	corpus_dir = getenv("VOUCH_GEN_CORPUS");
	if (corpus_dir) {
		gen_corpus();
		return 0;
	}
	test_ca_rules();
	printf("ok ca rules\n");
	test_state_table();
	printf("ok state table\n");
	test_registration();
	printf("ok registration, serials, tombstones\n");
	test_bind();
	printf("ok bind\n");
	test_history();
	printf("ok history\n");
	test_batch();
	printf("ok batch and durable view\n");
	test_truncation();
	printf("ok truncation at every offset of the last record\n");
	test_damage();
	printf("ok damage\n");
	test_many();
	printf("ok many\n");
	return 0;
}
