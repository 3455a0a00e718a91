/*
 * CRL imports (API in registry/crl.h): find the issuing CA, check the
 * signature, revoke every listed serial in one durable batch, then tell the
 * shards (live sessions of newly revoked certificates close at once) and
 * publish the lifecycle events. And the --crl-dir watcher, a periodic scan
 * run from the registrar's loop.
 */
#include "registry/crl.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"
#include "tls/crl.h"
#include "tls/pki.h"

static int why_set(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int why_set(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- which CA ---------------------------------------------------------- */

struct find_ctx {
	const struct tls_crl_info *crl;
	uint8_t id[REG_ID_LEN];
	bool name_match;        /* some CA has the issuer's name (and key ID) */
	bool found;             /* ... and its key signed the CRL */
	bool no_crl_sign;       /* ... but its keyUsage forbids CRL signing */
	int sig_rc;             /* the last signature check's error */
	char cn[REG_NAME_MAX + 1];
};

static int find_each(void *ctx, const struct reg_ca *ca)
{
	struct find_ctx *f = ctx;
	struct tls_cert_info ci;
	int rc;

	if (tls_cert_parse(ca->der, ca->der_len, &ci) != 0 ||
	    !tls_crl_issued_by(f->crl, &ci))
		return 0;
	f->name_match = true;
	rc = tls_crl_verify(f->crl, &ci);
	if (rc) {
		f->sig_rc = rc;
		return 0;
	}
	/* RFC 5280 4.2.1.3: a CA key that signs CRLs has cRLSign. */
	if (ci.has_key_usage && !(ci.key_usage & TLS_KU_CRL_SIGN)) {
		f->no_crl_sign = true;
		return 0;
	}
	memcpy(f->id, ca->id, REG_ID_LEN);
	snprintf(f->cn, sizeof f->cn, "%s", ca->cn);
	f->found = true;
	return 1;
}

/* ---- applying ---------------------------------------------------------- */

/* A registered certificate revoked by the import, and its status before. */
struct revoked {
	uint8_t id[REG_ID_LEN];
	enum reg_status old;
};

struct ids {
	struct revoked *v;
	size_t n, cap;
};

static int ids_add(struct ids *s, const uint8_t id[REG_ID_LEN], enum reg_status old)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void *v = realloc(s->v, cap * sizeof *s->v);

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	memcpy(s->v[s->n].id, id, REG_ID_LEN);
	s->v[s->n++].old = old;
	return 0;
}

/* Revoke every entry in one batch; the newly revoked registered IDs go to
 * *ids for the notices that follow the commit. */
static int apply(struct registrar *g, const struct tls_crl_info *crl,
		 const struct reg_by *by, struct rg_crl_result *res, struct ids *ids,
		 char *why, size_t whylen)
{
	struct tls_crl_iter it;
	struct tls_crl_entry e;
	int rc = 0, brc, crc;

	brc = reg_begin(g->reg);
	tls_crl_iter_init(crl, &it);
	while (tls_crl_iter_next(&it, &e)) {
		struct reg_device d;
		bool live = reg_dev_by_serial_mt(g->reg, res->ca_id, e.serial, e.serial_len, &d) == 0 &&
			    d.status != REG_REVOKED;

		rc = reg_revoke_serial(g->reg, res->ca_id, e.serial, e.serial_len, by);
		if (rc < 0)
			break;
		if (rc == 0) {
			res->already++;
		} else if (live) {
			res->revoked_registered++;
			rc = ids_add(ids, d.id, d.status);
			if (rc < 0)
				break;
		} else if (reg_dev_by_serial_mt(g->reg, res->ca_id, e.serial, e.serial_len, &d) == 0) {
			res->already++;         /* the certificate was REVOKED already */
		} else {
			res->revoked_unseen++;
		}
		rc = 0;
	}
	/* Without a batch each write was durable on its own. A failed write
	 * leaves the earlier ones of the batch: each is a consistent state,
	 * and the registry refuses later writes after an I/O error. */
	crc = brc == 0 ? reg_commit(g->reg) : 0;
	if (rc == 0)
		rc = crc;
	if (rc < 0)
		return why_set(why, whylen, rc, "cannot record the revocations: %s", strerror(-rc));
	return 0;
}

/* See registry/crl.h. */
int rg_crl_import(struct registrar *g, const uint8_t *data, size_t len,
		  const char *actor, struct rg_crl_result *res, char *why,
		  size_t whylen)
{
	struct tls_crl_info crl;
	struct find_ctx f = { .crl = &crl };
	struct ids ids = { 0 };
	struct reg_by by = { .actor = actor };
	uint8_t *der;
	int n, rc;

	memset(res, 0, sizeof *res);
	if (whylen)
		why[0] = '\0';
	if (len > 2 * (size_t)TLS_CRL_DER_MAX)
		return why_set(why, whylen, -EINVAL, "the file is over %u bytes", 2 * TLS_CRL_DER_MAX);
	der = malloc(len ? len : 1);
	if (!der)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	n = tls_crl_decode(data, len, der, len);
	if (n == -ENOENT) {
		rc = why_set(why, whylen, -EINVAL, "no \"X509 CRL\" PEM block and not DER");
		goto out;
	}
	if (n < 0) {
		rc = why_set(why, whylen, -EINVAL, "broken PEM");
		goto out;
	}
	rc = tls_crl_parse(der, (size_t)n, &crl);
	if (rc) {
		rc = why_set(why, whylen, -EINVAL, "not a well-formed X.509 CRL%s",
			     rc == -ENAMETOOLONG ? " (issuer name too long)" : "");
		goto out;
	}
	if (crl.delta || crl.indirect || crl.unknown_critical) {
		rc = why_set(why, whylen, -EOPNOTSUPP, "%s CRLs are not supported",
			     crl.delta ? "delta" : crl.indirect ? "indirect" :
			     "unknown critical extensions: such");
		goto out;
	}
	reg_ca_foreach_mt(g->reg, find_each, &f);
	if (!f.found) {
		if (f.no_crl_sign)
			rc = why_set(why, whylen, -EPERM, "the issuing CA's keyUsage does not allow cRLSign");
		else if (f.name_match && f.sig_rc == -EOPNOTSUPP)
			rc = why_set(why, whylen, -EOPNOTSUPP, "signature algorithm %s is not accepted",
				     tls_sig_alg_name(crl.sig_alg));
		else if (f.name_match)
			rc = why_set(why, whylen, -EBADMSG,
				     "the signature does not verify with the key of the registered CA \"%s\"",
				     crl.issuer_cn);
		else
			rc = why_set(why, whylen, -ENOENT, "no registered CA issued it (issuer \"%s\")",
				     crl.issuer_cn);
		goto out;
	}
	memcpy(res->ca_id, f.id, REG_ID_LEN);
	memcpy(res->ca_cn, f.cn, sizeof res->ca_cn);
	res->listed = (uint32_t)crl.n_revoked;
	res->this_update = crl.this_update;
	res->next_update = crl.next_update;
	res->stale = crl.next_update && crl.next_update < (int64_t)time(NULL);
	rc = apply(g, &crl, &by, res, &ids, why, whylen);
	/* Durable (or as much as was): now shards and subscribers hear of it. */
	for (size_t i = 0; i < ids.n; i++) {
		struct reg_device d;

		rg_notify_dev(g, ids.v[i].id);
		if (reg_dev_get_mt(g->reg, ids.v[i].id, &d) == 0)
			rg_publish_status(g, &d, ids.v[i].old, actor);
	}
	if (rc == 0)
		log_info("crl: \"%s\": %u listed, %u registered certificates revoked, %u unseen serials blocked, %u already revoked (%s)",
			 res->ca_cn, res->listed, res->revoked_registered, res->revoked_unseen,
			 res->already, actor);
out:
	free(ids.v);
	free(der);
	return rc;
}

/* ---- --crl-dir --------------------------------------------------------- */

/* What we know of one file of the directory. */
struct seen {
	char *name;
	off_t size;
	struct timespec mtime;
	ino_t ino;
	bool done;              /* imported, or failed and reported */
	bool present;           /* found by the current scan */
};

struct rg_crl_dir {
	char *path;
	struct seen *v;
	size_t n, cap;
	uint64_t next_ns;
};

/* See registry/crl.h. */
int rg_crl_dir_open(struct rg_crl_dir **out, const char *dir, char *err, size_t errlen)
{
	struct rg_crl_dir *d;
	DIR *dh;

	*out = NULL;
	dh = opendir(dir);
	if (!dh) {
		int rc = -errno;

		snprintf(err, errlen, "--crl-dir: cannot open '%s': %s", dir, strerror(errno));
		return rc;
	}
	closedir(dh);
	d = calloc(1, sizeof *d);
	if (!d || !(d->path = strdup(dir))) {
		free(d);
		snprintf(err, errlen, "--crl-dir: out of memory");
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

/* See registry/crl.h. */
void rg_crl_dir_free(struct rg_crl_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d->path);
	free(d);
}

static struct seen *seen_get(struct rg_crl_dir *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].name, name))
			return &d->v[i];
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct seen *v = realloc(d->v, cap * sizeof *v);

		if (!v)
			return NULL;
		d->v = v;
		d->cap = cap;
	}
	memset(&d->v[d->n], 0, sizeof d->v[d->n]);
	if (!(d->v[d->n].name = strdup(name)))
		return NULL;
	return &d->v[d->n++];
}

/* One file: import when it changed; report a failure once it is stable. */
static void scan_file(struct registrar *g, struct rg_crl_dir *d, const char *name)
{
	char path[4096], actor[REG_ACTOR_MAX + 1], why[256];
	struct rg_crl_result res;
	struct stat st;
	struct seen *s;
	bool changed;
	char *data = NULL;
	size_t len = 0;
	int rc;

	if (snprintf(path, sizeof path, "%s/%s", d->path, name) >= (int)sizeof path ||
	    stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	s = seen_get(d, name);
	if (!s)
		return;
	s->present = true;
	changed = s->size != st.st_size || s->ino != st.st_ino ||
		  s->mtime.tv_sec != st.st_mtim.tv_sec || s->mtime.tv_nsec != st.st_mtim.tv_nsec;
	if (changed) {
		s->size = st.st_size;
		s->ino = st.st_ino;
		s->mtime = st.st_mtim;
		s->done = false;
	} else if (s->done) {
		return;
	}
	snprintf(actor, sizeof actor, "crl:%s", name);
	rc = tls_pki_file_read(path, 2 * (size_t)TLS_CRL_DER_MAX, &data, &len);
	if (rc == 0)
		rc = rg_crl_import(g, (const uint8_t *)data, len, actor, &res, why, sizeof why);
	else
		snprintf(why, sizeof why, "cannot read it: %s", strerror(-rc));
	free(data);
	if (rc == 0) {
		s->done = true;
		return;
	}
	/* A file still being written fails to parse: say so only when it
	 * stayed the same for a whole scan. */
	if (!changed || rc != -EINVAL) {
		log_warn("crl: %s not applied: %s", path, why);
		s->done = true;
	}
}

/* See registry/crl.h. */
void rg_crl_dir_tick(struct registrar *g, struct rg_crl_dir *d, uint64_t now_ns)
{
	struct dirent *de;
	DIR *dh;
	size_t j = 0;

	if (!d || now_ns < d->next_ns)
		return;
	d->next_ns = now_ns + (uint64_t)RG_CRL_SCAN_MS * 1000000u;
	dh = opendir(d->path);
	if (!dh)
		return;
	for (size_t i = 0; i < d->n; i++)
		d->v[i].present = false;
	while ((de = readdir(dh)))
		if (de->d_name[0] != '.')
			scan_file(g, d, de->d_name);
	closedir(dh);
	/* Forget files that went away. */
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].present)
			d->v[j++] = d->v[i];
		else
			free(d->v[i].name);
	}
	d->n = j;
}
