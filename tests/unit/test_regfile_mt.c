/*
 * Registry file, concurrently: one writer thread registers devices (so the
 * indexes grow several times under the readers), flips statuses, binds and
 * rebinds client IDs, deletes and re-registers, in batches and singly, while
 * two reader threads look devices up by ID and by serial without locks and
 * check every snapshot they get: every field is the one derived from the
 * device number, the client ID names the same device, versions never go
 * back, and history and iteration stay consistent. Also run under
 * ThreadSanitizer (the _mt suffix).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/regfile.h"
#include "tests/unit/regfile_util.h"

#define MAXDEV   12000
#define WRITES   30000

static struct registry *reg;
static struct tu_ca ca;
static _Atomic uint64_t added;          /* devices 0..added-1 were registered */
static _Atomic bool done;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *writer(void *arg)
{
	static const struct reg_by by = { "writer", 0 };
	uint64_t seed = 0x1234567ull, n = 0, bind_no = 0;
	struct tu_dev d;
	char client[48];

	(void)arg;
	for (int w = 0; w < WRITES; w++) {
		bool batch = rnd(&seed) % 4 != 0;
		if (batch)
			CHECK_RC(reg_begin(reg), 0);
		int ops = batch ? 20 : 1;
		for (int i = 0; i < ops; i++, w++) {
			uint64_t choice = rnd(&seed) % 10;
			if ((choice < 3 || n < 100) && n < MAXDEV) {
				tu_dev_make(&d, ca.in.id, n, REG_AUTO, 0);
				CHECK_RC(reg_dev_add(reg, &d.in, &by), 0);
				n++;
				continue;
			}
			uint64_t k = rnd(&seed) % n;
			tu_dev_make(&d, ca.in.id, k, REG_MANUAL, 0);
			int rc;
			if (choice < 6) {
				enum reg_status s = rnd(&seed) % 2 ? REG_ACTIVE : REG_INACTIVE;
				rc = reg_dev_set_status(reg, d.in.id, s, &by);
				CHECK(rc == 0 || rc == -ENOENT);
			} else if (choice < 8) {
				snprintf(client, sizeof client, "c-%llu-%llu",
					 (unsigned long long)k, (unsigned long long)++bind_no);
				rc = reg_dev_bind(reg, d.in.id, client, strlen(client), &by);
				CHECK(rc == 0 || rc == -ENOENT);
			} else if (choice < 9) {
				rc = reg_dev_delete(reg, d.in.id, &by);
				CHECK(rc == 0 || rc == -EBUSY || rc == -ENOENT);
			} else {
				rc = reg_dev_add(reg, &d.in, &by);
				CHECK(rc == 0 || rc == -EEXIST);
			}
		}
		if (batch)
			CHECK_RC(reg_commit(reg), 0);
		atomic_store_explicit(&added, n, memory_order_release);
	}
	atomic_store(&done, true);
	return NULL;
}

struct rstats {
	uint64_t lookups, found, history, iter;
};

static int hist_cb(void *ctx, const struct reg_event *ev)
{
	uint64_t *last = ctx;

	CHECK(ev->seq > *last);
	CHECK(ev->kind >= REG_EV_ADDED && ev->kind <= REG_EV_DELETED);
	CHECK(ev->status >= REG_ACTIVE && ev->status <= REG_REVOKED);
	*last = ev->seq;
	return 0;
}

static int iter_cb(void *ctx, const struct reg_device *d)
{
	uint64_t *left = ctx;

	CHECK(d->status == REG_ACTIVE || d->status == REG_INACTIVE);
	CHECK(strncmp(d->cn, "dev-", 4) == 0);
	CHECK(tu_dev_matches(d, strtoull(d->cn + 4, NULL, 10)));
	return --*left == 0;
}

static void check_snapshot(const struct reg_device *d, uint64_t k)
{
	CHECK(tu_dev_matches(d, k));
	CHECK(d->status == REG_ACTIVE || d->status == REG_INACTIVE);
	CHECK(d->updated >= d->created);
	CHECK(strcmp(d->created_by, "writer") == 0 && strcmp(d->updated_by, "writer") == 0);
	if (d->client_id_len) {
		char want[32];
		int n = snprintf(want, sizeof want, "c-%llu-", (unsigned long long)k);
		CHECK(strncmp(d->client_id, want, (size_t)n) == 0);
	}
}

static void *reader(void *arg)
{
	struct rstats *st = arg;
	uint64_t seed = (uint64_t)(uintptr_t)arg | 1, gen = 0;
	uint64_t *seen = calloc(MAXDEV, sizeof(uint64_t));
	struct reg_device d;
	struct tu_dev t;

	CHECK(seen);
	while (!atomic_load(&done)) {
		uint64_t n = atomic_load_explicit(&added, memory_order_acquire);
		uint64_t g = reg_generation_mt(reg);
		CHECK(g >= gen);
		gen = g;
		if (!n)
			continue;
		for (int i = 0; i < 64; i++) {
			uint64_t k = rnd(&seed) % n;
			tu_dev_make(&t, ca.in.id, k, REG_AUTO, 0);
			st->lookups++;
			if (reg_dev_get_mt(reg, t.in.id, &d) == 0) {
				st->found++;
				check_snapshot(&d, k);
				CHECK(d.version >= seen[k]);
				seen[k] = d.version;
			}
			if (reg_dev_by_serial_mt(reg, ca.in.id, t.serial, 8, &d) == 0) {
				check_snapshot(&d, k);
				CHECK(d.version >= seen[k]);
				seen[k] = d.version;
			}
		}
		uint64_t k = rnd(&seed) % n, last = 0;
		tu_dev_make(&t, ca.in.id, k, REG_AUTO, 0);
		int rc = reg_dev_history_mt(reg, t.in.id, hist_cb, &last);
		CHECK(rc == 0 || rc == -ENOENT);
		st->history++;
		if (rnd(&seed) % 64 == 0) {
			uint64_t left = 200;
			rc = reg_dev_foreach_mt(reg, iter_cb, &left);
			CHECK(rc == 0 || rc == 1);
			st->iter++;
			struct reg_counts c;
			reg_counts_mt(reg, &c);
			CHECK(c.devices <= MAXDEV);
		}
	}
	free(seen);
	return NULL;
}

int main(void)
{
	char *dir = tu_tmpdir();
	char err[512];
	pthread_t w, rd[2];
	struct rstats st[2];
	double t0 = tu_now();

	memset(st, 0, sizeof st);
	CHECK_RC(reg_open(&reg, dir, err, sizeof err), 0);
	tu_ca_make(&ca, 1, true, REG_ACTIVE);
	CHECK_RC(reg_ca_add(reg, &ca.in, NULL), 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&rd[i], NULL, reader, &st[i]) == 0);
	CHECK(pthread_create(&w, NULL, writer, NULL) == 0);
	pthread_join(w, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);

	struct reg_counts c;
	reg_counts_mt(reg, &c);
	CHECK_RC(reg_close(reg), 0);
	printf("ok %llu devices; readers: %llu + %llu lookups (%llu + %llu found), %llu histories, %llu iterations; %.1f s\n",
	       (unsigned long long)c.devices,
	       (unsigned long long)st[0].lookups, (unsigned long long)st[1].lookups,
	       (unsigned long long)st[0].found, (unsigned long long)st[1].found,
	       (unsigned long long)(st[0].history + st[1].history),
	       (unsigned long long)(st[0].iter + st[1].iter), tu_now() - t0);
	CHECK(st[0].found > 0 && st[1].found > 0);
	tu_rmdir(dir);
	free(dir);
	return 0;
}
