/*
 * Provisioning by CSR on the registrar thread (API in registry/provision.h):
 * the signup limit, the request's checks, signing with the issuing CA,
 * registration (durable before the answer), the lifecycle event, and the
 * answer on the requester's response topic. Every refusal is answered too,
 * with a reason; nothing is written unless the certificate is issued.
 */
#include "registry/provision.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/log.h"
#include "registry/limiter.h"
#include "registry/regfile.h"
#include "registry/registrar-int.h"
#include "tls/cert.h"
#include "tls/pki.h"

#define FILE_MAX (1u << 20)

struct rg_provision {
	uint8_t *ca_der;
	size_t ca_len;
	uint8_t ca_id[REG_ID_LEN];
	char ca_cn[TLS_CERT_NAME_MAX + 1];
	struct tls_pki_key *key;
};

/* ---- set-up --------------------------------------------------------------- */

static int load_ca(struct rg_provision *p, const char *path, char *err, size_t errlen)
{
	struct tls_cert_info ci;
	char *pem = NULL;
	size_t len;
	int rc = tls_pki_file_read(path, FILE_MAX, &pem, &len);

	if (rc) {
		snprintf(err, errlen, "--issuing-ca: cannot read '%s': %s", path, strerror(-rc));
		return rc;
	}
	p->ca_der = malloc(len ? len : 1);
	rc = p->ca_der ? tls_cert_pem_to_der(pem, len, p->ca_der, len) : -ENOMEM;
	free(pem);
	if (rc <= 0) {
		snprintf(err, errlen, "--issuing-ca: '%s' has no PEM certificate", path);
		return rc ? rc : -EINVAL;
	}
	p->ca_len = (size_t)rc;
	if (tls_cert_parse(p->ca_der, p->ca_len, &ci) != 0 || !ci.is_ca) {
		snprintf(err, errlen, "--issuing-ca: '%s' is not a CA certificate", path);
		return -EINVAL;
	}
	memcpy(p->ca_id, ci.id, REG_ID_LEN);
	memcpy(p->ca_cn, ci.cn, sizeof p->ca_cn);
	return 0;
}

static int load_key(struct rg_provision *p, const char *path, char *err, size_t errlen)
{
	struct tls_cert_info ci;
	uint8_t spki[1024];
	char *pem = NULL;
	size_t len;
	int rc = tls_pki_file_read(path, FILE_MAX, &pem, &len), n;

	if (rc) {
		snprintf(err, errlen, "--issuing-key: cannot read '%s': %s", path, strerror(-rc));
		return rc;
	}
	rc = tls_pki_key_from_pem(pem, len, &p->key);
	explicit_bzero(pem, len);
	free(pem);
	if (rc) {
		snprintf(err, errlen, "--issuing-key: '%s' is not a usable private key: %s", path,
			 strerror(-rc));
		return rc;
	}
	n = tls_pki_key_spki(p->key, spki, sizeof spki);
	if (n < 0 || tls_cert_parse(p->ca_der, p->ca_len, &ci) != 0 ||
	    ci.spki.len != (size_t)n || memcmp(ci.spki.ptr, spki, (size_t)n) != 0) {
		snprintf(err, errlen, "--issuing-key: '%s' is not the key of the --issuing-ca certificate",
			 path);
		return -EKEYREJECTED;
	}
	return 0;
}

/* See registry/provision.h. */
int rg_provision_init(struct rg_provision **out, const char *ca_file,
		      const char *key_file, char *err, size_t errlen)
{
	struct rg_provision *p;
	int rc;

	*out = NULL;
	if ((!ca_file || !*ca_file) && (!key_file || !*key_file))
		return 0;
	if (!ca_file || !*ca_file || !key_file || !*key_file) {
		snprintf(err, errlen, "--issuing-ca and --issuing-key go together");
		return -EINVAL;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "provisioning: out of memory");
		return -ENOMEM;
	}
	rc = load_ca(p, ca_file, err, errlen);
	if (rc == 0)
		rc = load_key(p, key_file, err, errlen);
	if (rc) {
		rg_provision_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* See registry/provision.h. */
void rg_provision_free(struct rg_provision *p)
{
	if (!p)
		return;
	tls_pki_key_free(p->key);
	free(p->ca_der);
	free(p);
}

/* ---- answers -------------------------------------------------------------- */

/* One request's fields, pointing into its data. */
struct preq {
	const char *resp;
	size_t resp_len;
	const uint8_t *corr;
	size_t corr_len;
	const char *cid;
	size_t cid_len;
	const char *payload;
	size_t payload_len;
};

/* Publish `o` (taken) on the response topic, or by the v3.1.1 convention. */
static void answer(struct registrar *g, const struct preq *q, bool accepted, json_t *o)
{
	char topic[512];
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!s) {
		log_warn("provision: out of memory for an answer");
		return;
	}
	if (q->resp_len) {
		snprintf(topic, sizeof topic, "%.*s", (int)q->resp_len, q->resp);
	} else if (q->cid_len == 0 || memchr(q->cid, '+', q->cid_len) ||
		   memchr(q->cid, '#', q->cid_len) ||
		   q->cid_len + sizeof PROVISION_TOPIC "/rejected/" > sizeof topic) {
		log_warn("provision: no response topic and no usable client ID: answer dropped");
		free(s);
		return;
	} else {
		snprintf(topic, sizeof topic, "%s/%s/%.*s", PROVISION_TOPIC,
			 accepted ? "accepted" : "rejected", (int)q->cid_len, q->cid);
	}
	rg_publish_corr(g, topic, s, q->corr, q->corr_len);
	free(s);
}

static void refuse(struct registrar *g, const struct preq *q, const char *code,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void refuse(struct registrar *g, const struct preq *q, const char *code,
		   const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_info("provision: refused for client \"%.*s\": %s", (int)q->cid_len, q->cid, msg);
	answer(g, q, false, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

/* ---- the request ----------------------------------------------------------- */

/* The CSR's DER from the payload: PEM, or JSON {"csr": "<PEM>"}. Returns
 * the length, or -1 with *why. */
static int csr_der(const struct preq *q, uint8_t *der, size_t cap, const char **why)
{
	char label[TLS_PEM_LABEL_MAX + 1];
	const char *text = q->payload;
	size_t len = q->payload_len, pos = 0, i = 0;
	json_t *o = NULL, *v;
	int n = -1;

	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && text[i] == '{') {
		o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
		v = json_object_get(o, "csr");
		if (!json_is_string(v)) {
			*why = "the payload is JSON without a \"csr\" string";
			json_decref(o);
			return -1;
		}
		text = json_string_value(v);
		len = json_string_length(v);
	}
	for (;;) {
		n = tls_pem_next(text, len, &pos, label, sizeof label, der, cap);
		if (n < 0 || !strcmp(label, "CERTIFICATE REQUEST") ||
		    !strcmp(label, "NEW CERTIFICATE REQUEST"))
			break;
	}
	json_decref(o);
	if (n < 0)
		*why = n == -ENOENT ? "no CERTIFICATE REQUEST PEM block in the payload" :
		       "the CERTIFICATE REQUEST PEM block is broken";
	return n < 0 ? -1 : n;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);    /* the limiter's clock */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void provision(struct registrar *g, const struct preq *q, const uint8_t claim[REG_ID_LEN])
{
	struct rg_provision *p = g->prov;
	struct tls_csr_info csr;
	struct tls_cert_info ci;
	struct tls_pki_spec spec;
	struct reg_device d;
	struct reg_ca ca;
	uint8_t req[8192], cert[TLS_PKI_DER_MAX];
	char actor[REG_ACTOR_MAX + 1], hex[2 * REG_ID_LEN + 1];
	const char *why = NULL;
	int n, rc;

	if (!p) {
		refuse(g, q, "not_configured", "provisioning is off: vouchd runs without --issuing-ca");
		return;
	}
	if (reg_ca_get_mt(g->reg, p->ca_id, &ca) != 0) {
		refuse(g, q, "issuing_ca_not_registered",
		       "the issuing CA \"%s\" is not a registered CA", p->ca_cn);
		return;
	}
	if (ca.status != REG_ACTIVE) {
		refuse(g, q, "issuing_ca_inactive", "the issuing CA \"%s\" is %s", p->ca_cn,
		       reg_status_name(ca.status));
		return;
	}
	if (!reg_limiter_ready(&g->lim, now_ns())) {
		refuse(g, q, "over_limit", "over the signup limit, retry");
		return;
	}
	n = csr_der(q, req, sizeof req, &why);
	if (n < 0) {
		refuse(g, q, "bad_request", "%s", why);
		return;
	}
	rc = tls_csr_parse(req, (size_t)n, &csr);
	if (rc) {
		refuse(g, q, "bad_csr", "not a well-formed PKCS#10 request%s",
		       rc == -ENAMETOOLONG ? " (a name is too long)" : "");
		return;
	}
	rc = tls_csr_verify(&csr);
	if (rc) {
		refuse(g, q, "bad_csr_signature", "%s",
		       rc == -EOPNOTSUPP ? "the request's signature algorithm is not accepted" :
		       "the request's signature does not verify with its key");
		return;
	}
	tls_pki_spec_init(&spec, TLS_PKI_DEVICE, (int64_t)time(NULL), PROVISION_DAYS);
	n = tls_pki_sign_csr(req, (size_t)n, &spec,
			     &(struct tls_pki_issuer){ .cert = p->ca_der, .cert_len = p->ca_len,
						       .key = p->key },
			     cert, sizeof cert);
	if (n < 0) {
		refuse(g, q, n == -EINVAL || n == -ENAMETOOLONG ? "bad_csr" : "internal",
		       "cannot issue a certificate for this request: %s", strerror(-n));
		return;
	}
	if (tls_cert_parse(cert, (size_t)n, &ci) != 0) {
		refuse(g, q, "internal", "the issued certificate does not parse");
		return;
	}
	tls_hex(claim, 8, hex);
	snprintf(actor, sizeof actor, "provision:%s", hex);
	struct reg_dev_in in = {
		.serial = ci.serial, .serial_len = ci.serial_len,
		.cn = ci.cn, .o = ci.o, .ou = ci.ou,
		.not_before = ci.not_before, .not_after = ci.not_after,
		.status = ca.auto_status,       /* the CA's initial status */
		.how = REG_MANUAL,
		.der = cert, .der_len = (size_t)n,
	};
	memcpy(in.id, ci.id, REG_ID_LEN);
	memcpy(in.issuer, p->ca_id, REG_ID_LEN);
	rc = reg_dev_add(g->reg, &in, &(struct reg_by){ .actor = actor });
	if (rc < 0 || reg_dev_get_mt(g->reg, ci.id, &d) != 0) {
		refuse(g, q, "internal", "cannot register the certificate: %s",
		       strerror(rc < 0 ? -rc : EIO));
		return;
	}
	reg_limiter_take(&g->lim, now_ns());
	rg_notify_dev(g, ci.id);
	rg_publish_dev(g, "registered", &d, actor);
	tls_hex(ci.id, REG_ID_LEN, hex);
	log_info("provision: certificate \"%s\" (%.16s...) issued to client \"%.*s\" by %s",
		 ci.cn, hex, (int)q->cid_len, q->cid, actor);
	size_t cap = tls_pem_size("CERTIFICATE", (size_t)n);
	char *pem = malloc(cap);

	if (!pem || tls_pem_encode("CERTIFICATE", cert, (size_t)n, pem, cap) < 0) {
		free(pem);
		refuse(g, q, "internal", "out of memory");
		return;
	}
	answer(g, q, true, json_pack("{s:s, s:s, s:s}", "certificateId", hex,
				     "certificatePem", pem, "status", reg_status_name(d.status)));
	free(pem);
}

/* See registry/provision.h. */
void rg_provision(struct registrar *g, struct provision_req *rq)
{
	struct preq q;
	const uint8_t *d = rq->data;

	q.resp = (const char *)d;
	q.resp_len = rq->resp_len;
	d += rq->resp_len;
	q.corr = rq->corr_len ? d : NULL;
	q.corr_len = rq->corr_len;
	d += rq->corr_len;
	q.cid = (const char *)d;
	q.cid_len = rq->cid_len;
	d += rq->cid_len;
	q.payload = (const char *)d;
	q.payload_len = rq->payload_len;
	provision(g, &q, rq->claim_id);
	free(rq);
}
