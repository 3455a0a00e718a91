/*
 * Fuzz the registry file's open path: the input is a file image, written to
 * a memfd and opened, walked (every device and CA, their history and
 * lookups), written to and reopened. A damaged image must be refused with
 * a message, never crash; an image that opens must stay consistent.
 *
 * The first input byte selects a mode:
 *   bit 0  recompute the header and record checksums before opening, so
 *          mutations reach the record layout and state-table checks
 *          instead of stopping at a checksum;
 *   bit 1  after a successful open, make changes, close, and require the
 *          file to reopen with them (what the writer appends to a file it
 *          accepted must be acceptable).
 * The rest is the file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "registry/regfile-int.h"
#include "registry/regfile.h"

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz_regfile: %s\n", #c); abort(); } } while (0)

static void fix_checksums(uint8_t *buf, size_t size)
{
	struct regf_hdr *h = (void *)buf;

	if (size < sizeof(*h) || memcmp(h->magic, REGF_MAGIC, 8) != 0)
		return;
	h->check = XXH3_64bits(h, offsetof(struct regf_hdr, check));
	for (uint64_t off = REGF_HDR_SIZE; off + sizeof(struct regf_rec) <= size;) {
		struct regf_rec *r = (void *)(buf + off);
		if (r->magic != REGF_REC_MAGIC || r->len < sizeof(*r) ||
		    r->len % 8 || r->len > size - off)
			break;
		r->check = regf_checksum(h->salt, r, r->len);
		off += r->len;
	}
}

struct walk {
	const struct registry *r;
	uint64_t devices, cas;
};

static int hist_cb(void *ctx, const struct reg_event *ev)
{
	uint64_t *last = ctx;

	FZ_CHECK(ev->seq > *last);
	FZ_CHECK(ev->actor && ev->client_id);
	*last = ev->seq;
	return 0;
}

static int dev_cb(void *ctx, const struct reg_device *d)
{
	struct walk *w = ctx;
	struct reg_device again;
	uint64_t last = 0;

	w->devices++;
	FZ_CHECK(d->status >= REG_ACTIVE && d->status <= REG_REVOKED);
	FZ_CHECK(strlen(d->cn) == d->cn_len && strlen(d->client_id) == d->client_id_len);
	FZ_CHECK(d->serial_len >= 1 && d->serial_len <= REG_SERIAL_MAX);
	FZ_CHECK(reg_dev_get_mt(w->r, d->id, &again) == 0 && again.version == d->version);
	FZ_CHECK(reg_dev_by_serial_mt(w->r, d->issuer, d->serial, d->serial_len, &again) == 0);
	FZ_CHECK(memcmp(again.id, d->id, REG_ID_LEN) == 0);
	FZ_CHECK(reg_dev_revoked_mt(w->r, d->id) == (d->status == REG_REVOKED));
	FZ_CHECK(reg_serial_revoked_mt(w->r, d->issuer, d->serial, d->serial_len) ==
		 (d->status == REG_REVOKED));
	FZ_CHECK(reg_dev_history_mt(w->r, d->id, hist_cb, &last) == 0);
	FZ_CHECK(last == d->version);
	return 0;
}

static int ca_cb(void *ctx, const struct reg_ca *c)
{
	struct walk *w = ctx;
	struct reg_ca again;

	w->cas++;
	FZ_CHECK(c->status == REG_ACTIVE || c->status == REG_INACTIVE);
	FZ_CHECK(reg_ca_get_mt(w->r, c->id, &again) == 0 && again.version == c->version);
	return 0;
}

static void walk(const struct registry *r)
{
	struct walk w = { r, 0, 0 };
	struct reg_counts k;

	FZ_CHECK(reg_dev_foreach_mt(r, dev_cb, &w) == 0);
	FZ_CHECK(reg_ca_foreach_mt(r, ca_cb, &w) == 0);
	reg_counts_mt(r, &k);
	FZ_CHECK(k.devices == w.devices && k.cas == w.cas);
}

/* Changes a valid registry must accept; returns the device's ID. */
static void write_some(struct registry *r, uint8_t dev_id[32])
{
	static const uint8_t der[40] = { 0x30, 0x26 };
	static const uint8_t serial[3] = { 0x7f, 0x01, 0x02 };
	struct reg_by by = { "fuzz", 1 };
	struct reg_ca_in ca = { .serial = serial, .serial_len = 3, .cn = "fuzz-ca",
				.auto_register = true, .der = der, .der_len = sizeof der };
	struct reg_dev_in d = { .serial = serial, .serial_len = 3, .cn = "fuzz-dev",
				.how = REG_AUTO, .der = der, .der_len = sizeof der };

	memset(ca.id, 0xCA, 32);
	memset(dev_id, 0xDE, 32);
	memcpy(d.id, dev_id, 32);
	memcpy(d.issuer, ca.id, 32);
	int rc = reg_ca_add(r, &ca, &by);
	FZ_CHECK(rc == 0 || rc == -EEXIST);
	if (rc == -EEXIST) {
		reg_ca_set_status(r, ca.id, REG_ACTIVE, &by);
		reg_ca_set_auto(r, ca.id, true, REG_ACTIVE, &by);
	}
	rc = reg_dev_add(r, &d, &by);
	FZ_CHECK(rc == 0 || rc == -EEXIST || rc == -EKEYREVOKED);
	reg_dev_bind(r, dev_id, "fz", 2, &by);
	reg_dev_set_status(r, dev_id, REG_INACTIVE, &by);
	reg_revoke_serial(r, ca.id, (const uint8_t *)"\x01", 1, &by);
	reg_begin(r);
	reg_dev_set_status(r, dev_id, REG_ACTIVE, &by);
	reg_revoke_serial(r, ca.id, (const uint8_t *)"\x02", 1, &by);
	FZ_CHECK(reg_commit(r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct registry *r;
	char err[512], path[64];
	uint8_t *buf;
	int fd, rc;

	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	buf = malloc(size ? size : 1);
	FZ_CHECK(buf);
	memcpy(buf, data, size);
	if (mode & 1)
		fix_checksums(buf, size);

	fd = memfd_create("fuzz-registry", MFD_CLOEXEC);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(write(fd, buf, size) == (ssize_t)size);
	free(buf);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

	memset(err, 'x', sizeof err);
	rc = reg_open_file(&r, path, err, sizeof err);
	FZ_CHECK(memchr(err, 0, sizeof err));           /* always a string */
	if (getenv("FUZZ_REGFILE_VERBOSE"))
		fprintf(stderr, "mode %d, %zu bytes: open %d %s\n", mode, size, rc, err);
	if (rc) {
		FZ_CHECK(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
		FZ_CHECK(err[0]);                       /* and says why */
		close(fd);
		return 0;
	}
	walk(r);
	if (mode & 2) {
		uint8_t id[32];
		struct reg_device d;
		write_some(r, id);
		walk(r);
		FZ_CHECK(reg_close(r) == 0);
		rc = reg_open_file(&r, path, err, sizeof err);
		if (rc)
			fprintf(stderr, "fuzz_regfile: reopen after writing: %s\n", err);
		FZ_CHECK(rc == 0 && err[0] == 0);
		walk(r);
		rc = reg_dev_get_mt(r, id, &d);
		FZ_CHECK(rc == 0 || rc == -ENOENT);
	}
	FZ_CHECK(reg_close(r) == 0);
	close(fd);
	return 0;
}
