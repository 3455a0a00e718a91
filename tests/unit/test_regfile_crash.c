/*
 * Crash safety of the registry file. A child process makes random changes
 * (registrations, status actions, bindings, deletions, serial revocations,
 * CA changes, some grouped in batches) and reports each one on a pipe:
 * what it is about to do, and the result once the call has returned (for a
 * batch, once reg_commit has returned). The parent kills it with SIGKILL at
 * a random moment, opens the file, and checks it against its own model of
 * the state table: every acknowledged change must be there, and of the
 * change in flight either nothing or (for a batch) a prefix. The model also
 * checks every return code the child saw. Repeated for 100 seeds on the same
 * file, which therefore goes through many recoveries.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "registry/regfile.h"
#include "tests/unit/regfile_util.h"

#define POOL    160     /* devices 0..POOL-1 have their own serial ... */
#define ALIASES 16      /* ... POOL..POOL+ALIASES-1 reuse device (k-POOL)'s */
#define NDEV    (POOL + ALIASES)
#define ROUNDS  100

static struct tu_ca cas[2];

/* ---- the model -------------------------------------------------------------- */

enum life { ABSENT = 0, LIVE, GONE_REVOKED };

struct mdev {
	enum life life;
	bool seen;
	enum reg_status status;
	char client[24];
};

struct model {
	struct mdev dev[NDEV];
	bool ser_revoked[POOL];         /* by serial slot (aliases share) */
	enum reg_status ca_status[2];
	bool ca_auto[2];
};

static int serial_slot(int k)
{
	return k < POOL ? k : k - POOL;
}

static int ca_of(int k)
{
	return serial_slot(k) % 2;
}

static void make_dev(struct tu_dev *d, int k, enum reg_how how, enum reg_status s)
{
	int slot = serial_slot(k);

	tu_dev_make(d, cas[ca_of(k)].in.id, (uint64_t)k, how, s);
	if (k >= POOL) {
		struct tu_dev orig;
		tu_dev_make(&orig, cas[ca_of(k)].in.id, (uint64_t)slot, how, s);
		memcpy(d->serial, orig.serial, sizeof d->serial);
	}
}

/* The live device holding k's serial, other than k, or -1. */
static int serial_holder(const struct model *m, int k)
{
	int slot = serial_slot(k);
	int other = k < POOL ? slot + POOL : slot;

	if (other < NDEV && m->dev[other].life == LIVE)
		return other;
	return -1;
}

/* Whether k's (issuer, serial) is revoked. */
static bool model_serial_revoked(const struct model *m, int k)
{
	int h = m->dev[k].life == LIVE ? k : serial_holder(m, k);

	return h >= 0 ? m->dev[h].status == REG_REVOKED
		      : m->ser_revoked[serial_slot(k)];
}

/* What reg_dev_revoked_mt should say of device k. */
static bool model_dev_revoked(const struct model *m, int k)
{
	const struct mdev *d = &m->dev[k];

	if (!d->seen)
		return false;
	if (d->life == GONE_REVOKED || (d->life == LIVE && d->status == REG_REVOKED))
		return true;
	return model_serial_revoked(m, k);
}

struct op {
	char kind;      /* a(dd) s(tatus) b(ind) d(elete) r(evoke serial) c(a status) u (ca auto) */
	int k;          /* device, or CA */
	int arg;        /* how*10+status / status / client number / - / - / status / auto */
};

/* Apply op to the model as the state table says; returns the expected rc. */
static int model_apply(struct model *m, const struct op *o)
{
	struct mdev *d = &m->dev[o->k < NDEV ? o->k : 0];

	switch (o->kind) {
	case 'a': {
		enum reg_how how = (enum reg_how)(o->arg / 10);
		enum reg_status want = (enum reg_status)(o->arg % 10);
		int c = ca_of(o->k), ret = 0;
		if (d->life == LIVE)
			return -EEXIST;
		if (how == REG_AUTO) {
			if (m->ca_status[c] != REG_ACTIVE || !m->ca_auto[c])
				return -EPERM;
			if (!want)
				want = c == 0 ? REG_ACTIVE : REG_PENDING_ACTIVATION;
		} else if (!want) {
			want = REG_ACTIVE;
		}
		if (serial_holder(m, o->k) >= 0)
			return -EEXIST;
		if (d->life == GONE_REVOKED || m->ser_revoked[serial_slot(o->k)]) {
			if (how == REG_AUTO)
				return -EKEYREVOKED;
			if (want != REG_REVOKED)
				ret = 1;
			want = REG_REVOKED;
		}
		d->life = LIVE;
		d->seen = true;
		d->status = want;
		d->client[0] = 0;
		return ret;
	}
	case 's':
		if (d->life != LIVE)
			return -ENOENT;
		if ((int)d->status == o->arg)
			return 0;
		if (d->status == REG_REVOKED)
			return -EPERM;
		d->status = (enum reg_status)o->arg;
		return 0;
	case 'b':
		if (d->life != LIVE)
			return -ENOENT;
		if (o->arg)
			snprintf(d->client, sizeof d->client, "cl-%d", o->arg);
		else
			d->client[0] = 0;
		return 0;
	case 'd':
		if (d->life != LIVE)
			return -ENOENT;
		if (d->status == REG_ACTIVE)
			return -EBUSY;
		if (d->status == REG_REVOKED) {
			d->life = GONE_REVOKED;
			m->ser_revoked[serial_slot(o->k)] = true;
		} else {
			d->life = ABSENT;
		}
		return 0;
	case 'r': {
		int h = d->life == LIVE ? o->k : serial_holder(m, o->k);
		if (h >= 0) {
			if (m->dev[h].status == REG_REVOKED)
				return 0;
			m->dev[h].status = REG_REVOKED;
			return 1;
		}
		if (m->ser_revoked[serial_slot(o->k)])
			return 0;
		m->ser_revoked[serial_slot(o->k)] = true;
		return 1;
	}
	case 'c':
		m->ca_status[o->k] = (enum reg_status)o->arg;
		return 0;
	case 'u':
		m->ca_auto[o->k] = o->arg;
		return 0;
	}
	abort();
}

static int do_op(struct registry *r, const struct op *o)
{
	static const struct reg_by by = { "crash-test", 0 };
	struct tu_dev d;
	char client[24];

	switch (o->kind) {
	case 'a':
		make_dev(&d, o->k, (enum reg_how)(o->arg / 10), (enum reg_status)(o->arg % 10));
		return reg_dev_add(r, &d.in, &by);
	case 's':
		make_dev(&d, o->k, REG_MANUAL, 0);
		return reg_dev_set_status(r, d.in.id, (enum reg_status)o->arg, &by);
	case 'b':
		make_dev(&d, o->k, REG_MANUAL, 0);
		if (!o->arg)
			return reg_dev_bind(r, d.in.id, NULL, 0, &by);
		snprintf(client, sizeof client, "cl-%d", o->arg);
		return reg_dev_bind(r, d.in.id, client, strlen(client), &by);
	case 'd':
		make_dev(&d, o->k, REG_MANUAL, 0);
		return reg_dev_delete(r, d.in.id, &by);
	case 'r':
		make_dev(&d, o->k, REG_MANUAL, 0);
		return reg_revoke_serial(r, d.in.issuer, d.serial, sizeof d.serial, &by);
	case 'c':
		return reg_ca_set_status(r, cas[o->k].in.id, (enum reg_status)o->arg, &by);
	case 'u':
		return reg_ca_set_auto(r, cas[o->k].in.id, o->arg, 0, &by);
	}
	abort();
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct op random_op(uint64_t *s)
{
	struct op o = { 0, (int)(rnd(s) % NDEV), 0 };
	static const enum reg_status st[3] = { REG_ACTIVE, REG_INACTIVE, REG_REVOKED };

	switch (rnd(s) % 20) {
	case 0: case 1: case 2: case 3: case 4: case 5:
		o.kind = 'a';
		o.arg = (int)(rnd(s) % 2 + 1) * 10 + (int)(rnd(s) % 5);
		break;
	case 6: case 7: case 8: case 9: case 10:
		o.kind = 's';
		o.arg = st[rnd(s) % 3 == 2 && rnd(s) % 3 ? 0 : rnd(s) % 3];
		break;
	case 11: case 12:
		o.kind = 'b';
		o.arg = (int)(rnd(s) % 4 ? rnd(s) % 1000 : 0);
		break;
	case 13: case 14: case 15: case 16:
		o.kind = 'd';
		break;
	case 17:
		o.kind = 'r';
		break;
	case 18:
		o.kind = 'c';
		o.k = (int)(rnd(s) % 2);
		o.arg = rnd(s) % 4 ? REG_ACTIVE : REG_INACTIVE;
		break;
	default:
		o.kind = 'u';
		o.k = (int)(rnd(s) % 2);
		o.arg = rnd(s) % 4 != 0;
		break;
	}
	return o;
}

/* ---- the child -------------------------------------------------------------- */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[128];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (write(fd, line, (size_t)n) != n)   /* < PIPE_BUF: atomic */
		_exit(3);
}

static void child(const char *dir, uint64_t seed, int fd)
{
	struct registry *r;
	char err[512];

	if (reg_open(&r, dir, err, sizeof err)) {
		fprintf(stderr, "child: %s\n", err);
		_exit(2);
	}
	say(fd, "O\n");
	for (;;) {
		if (rnd(&seed) % 10 == 0) {
			int n = (int)(rnd(&seed) % 7) + 2;
			if (reg_begin(r))
				_exit(4);
			say(fd, "B\n");
			for (int i = 0; i < n; i++) {
				struct op o = random_op(&seed);
				say(fd, "I %c %d %d\n", o.kind, o.k, o.arg);
				say(fd, "R %d\n", do_op(r, &o));
			}
			say(fd, "C %d\n", reg_commit(r));
		} else {
			struct op o = random_op(&seed);
			say(fd, "I %c %d %d\n", o.kind, o.k, o.arg);
			say(fd, "D %d\n", do_op(r, &o));
		}
	}
}

/* ---- the parent ------------------------------------------------------------- */

static bool same_as(const struct registry *r, const struct model *m, bool report)
{
	struct reg_counts k;
	uint64_t live = 0, per[REG_STATUS_COUNT] = { 0 };

	for (int i = 0; i < NDEV; i++) {
		struct tu_dev d;
		struct reg_device got;
		const struct mdev *e = &m->dev[i];
		make_dev(&d, i, REG_MANUAL, 0);
		int rc = reg_dev_get_mt(r, d.in.id, &got);
		bool ok;
		if (e->life == LIVE) {
			live++;
			per[e->status]++;
			ok = rc == 0 && got.status == e->status &&
			     strcmp(got.client_id, e->client) == 0 &&
			     got.serial_len == 8 &&
			     memcmp(got.serial, d.serial, 8) == 0 &&
			     memcmp(got.der, d.der, sizeof d.der) == 0 &&
			     strcmp(got.cn, d.cn) == 0;
		} else {
			ok = rc == -ENOENT;
		}
		bool revoked = model_dev_revoked(m, i);
		ok = ok && reg_dev_revoked_mt(r, d.in.id) == revoked;
		if (!ok) {
			if (report)
				fprintf(stderr, "device %d: model life %d status %d client '%s' revoked %d; file rc %d status %d client '%s' revoked %d\n",
					i, e->life, e->status, e->client, revoked, rc,
					rc ? 0 : got.status, rc ? "" : got.client_id,
					reg_dev_revoked_mt(r, d.in.id));
			return false;
		}
	}
	for (int s = 0; s < POOL; s++) {
		struct tu_dev d;
		make_dev(&d, s, REG_MANUAL, 0);
		bool want = model_serial_revoked(m, s);
		if (reg_serial_revoked_mt(r, d.in.issuer, d.serial, 8) != want) {
			if (report)
				fprintf(stderr, "serial %d: model revoked %d\n", s, want);
			return false;
		}
	}
	for (int c = 0; c < 2; c++) {
		struct reg_ca got;
		if (reg_ca_get_mt(r, cas[c].in.id, &got) ||
		    got.status != m->ca_status[c] || got.auto_register != m->ca_auto[c]) {
			if (report)
				fprintf(stderr, "CA %d differs\n", c);
			return false;
		}
	}
	reg_counts_mt(r, &k);
	if (k.devices != live)
		return false;
	for (int s = 1; s < REG_STATUS_COUNT; s++)
		if (k.dev_status[s] != per[s])
			return false;
	return true;
}

int main(void)
{
	char *dir = tu_tmpdir();
	char err[512];
	struct registry *r;
	struct model m;
	uint64_t seed = 0x5eed5eed12345ull;
	double t0 = tu_now();
	int acked_total = 0, inflight_applied = 0, torn = 0;

	memset(&m, 0, sizeof m);
	tu_ca_make(&cas[0], 1, true, REG_ACTIVE);
	tu_ca_make(&cas[1], 2, true, REG_PENDING_ACTIVATION);
	CHECK_RC(reg_open(&r, dir, err, sizeof err), 0);
	CHECK_RC(reg_ca_add(r, &cas[0].in, NULL), 0);
	CHECK_RC(reg_ca_add(r, &cas[1].in, NULL), 0);
	CHECK_RC(reg_close(r), 0);
	m.ca_status[0] = m.ca_status[1] = REG_ACTIVE;
	m.ca_auto[0] = m.ca_auto[1] = true;

	for (int round = 0; round < ROUNDS; round++) {
		int p[2];
		CHECK(pipe(p) == 0);
		uint64_t child_seed = rnd(&seed) | 1;
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(dir, child_seed, p[1]);
		}
		close(p[1]);
		usleep((useconds_t)(rnd(&seed) % 40000));
		kill(pid, SIGKILL);
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		/* replay what the child said */
		FILE *f = fdopen(p[0], "r");
		char line[128];
		struct op pending[16];
		int results[16];
		int npending = 0, nresults = 0, acked = 0;
		bool in_batch = false, single = false;
		while (fgets(line, sizeof line, f)) {
			struct op o;
			int rc;
			if (line[0] == 'O') {
				continue;
			} else if (line[0] == 'B') {
				in_batch = true;
				npending = 0;
				nresults = 0;
			} else if (line[0] == 'I') {
				CHECK(sscanf(line, "I %c %d %d", &o.kind, &o.k, &o.arg) == 3);
				CHECK(npending < 16);
				pending[npending++] = o;
				single = !in_batch;
			} else if (line[0] == 'R') {
				/* a result inside a batch: checked at commit */
				CHECK(sscanf(line, "R %d", &results[nresults++]) == 1);
			} else if (line[0] == 'D') {
				CHECK(sscanf(line, "D %d", &rc) == 1);
				int want = model_apply(&m, &pending[0]);
				if (rc != want) {
					fprintf(stderr, "round %d: op %c %d %d returned %d, model says %d\n",
						round, pending[0].kind, pending[0].k, pending[0].arg, rc, want);
					return 1;
				}
				npending = 0;
				single = false;
				acked++;
			} else if (line[0] == 'C') {
				CHECK(sscanf(line, "C %d", &rc) == 1);
				CHECK(rc == 0);
				CHECK(nresults == npending);
				for (int i = 0; i < npending; i++) {
					int want = model_apply(&m, &pending[i]);
					if (results[i] != want) {
						fprintf(stderr, "round %d: batched op %c %d %d returned %d, model says %d\n",
							round, pending[i].kind, pending[i].k,
							pending[i].arg, results[i], want);
						return 1;
					}
				}
				acked += npending;
				npending = 0;
				in_batch = false;
			}
		}
		fclose(f);
		(void)single;

		CHECK_RC(reg_open(&r, dir, err, sizeof err), 0);
		if (err[0])
			torn++;
		/* acknowledged changes, plus a prefix of what was in flight */
		bool found = false;
		for (int n = 0; n <= npending && !found; n++) {
			struct model c = m;
			for (int i = 0; i < n; i++)
				model_apply(&c, &pending[i]);
			if (same_as(r, &c, false)) {
				found = true;
				m = c;
				inflight_applied += n > 0;
			}
		}
		if (!found) {
			fprintf(stderr, "round %d: the file matches no acknowledged state (%d in flight)\n",
				round, npending);
			struct model c = m;
			for (int i = 0; i < npending; i++) {
				fprintf(stderr, "  in flight: %c %d %d -> %d\n", pending[i].kind,
					pending[i].k, pending[i].arg, i < nresults ? results[i] : 99);
				model_apply(&c, &pending[i]);
			}
			same_as(r, &m, true);
			same_as(r, &c, true);
			return 1;
		}
		CHECK_RC(reg_close(r), 0);
		acked_total += acked;
	}
	double dt = tu_now() - t0;
	printf("ok %d kills, %d acknowledged changes verified, in-flight change present after %d kills, %d recoveries with a notice, %.1f s\n",
	       ROUNDS, acked_total, inflight_applied, torn, dt);
	CHECK(acked_total > ROUNDS);    /* the test did something */
	tu_rmdir(dir);
	free(dir);
	return 0;
}
