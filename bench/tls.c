/*
 * bench/tls.c - TLS for vouch-bench: the pool of client certificates
 * (--cert-dir DIR of NAME.crt/NAME.key pairs, or one --cert/--key), one
 * wolfSSL client context per loop thread, and the per-connection session
 * that reads and writes the connection's non-blocking socket.
 *
 * Certificates and keys stay PEM in memory; each connection loads its pair
 * into its own WOLFSSL object, which is cheap next to the handshake's
 * public-key work. Without --resume sessions are never kept and every
 * handshake is full. With it each loop keeps one session per certificate
 * of the pool (taken once the CONNACK is in, so that a TLS 1.3 ticket sent
 * after the handshake is part of it) and offers it to the next connections
 * made with that certificate: per thread, so no locking.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "bench/bench.h"
#include "tls/pki.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void say(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > (1 << 20)) {
		fclose(f);
		return -EINVAL;
	}
	uint8_t *p = malloc((size_t)st.st_size);
	if (!p) {
		fclose(f);
		return -ENOMEM;
	}
	size_t n = fread(p, 1, (size_t)st.st_size, f);
	fclose(f);
	if (n != (size_t)st.st_size) {
		free(p);
		return -EIO;
	}
	*out = p;
	*len = n;
	return 0;
}

/* Check that the pair loads and that the key is the certificate's. */
static int check_pair(const struct bcert *c, char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (!ctx)
		return -ENOMEM;
	int rc = 0;
	if (wolfSSL_CTX_use_certificate_chain_buffer(ctx, c->crt, (long)c->crt_len) != WOLFSSL_SUCCESS) {
		say(err, errlen, "%s: not a PEM certificate", c->name);
		rc = -EINVAL;
	} else if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, c->key, (long)c->key_len,
						     WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
		say(err, errlen, "%s: not a PEM private key", c->name);
		rc = -EINVAL;
	} else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS || tls_pki_pem_pair_matches((const char *)c->crt, c->crt_len, (const char *)c->key, c->key_len) != 1) {
		say(err, errlen, "%s: the key does not match the certificate", c->name);
		rc = -EINVAL;
	}
	wolfSSL_CTX_free(ctx);
	return rc;
}

static int pool_add(struct bpool *pool, const char *name, const char *crt,
		    const char *key, char *err, size_t errlen)
{
	struct bcert c = { 0 };
	int rc = read_file(crt, &c.crt, &c.crt_len);
	if (rc) {
		say(err, errlen, "%s: %s", crt, rc == -EINVAL ? "empty or too large" : strerror(-rc));
		return rc;
	}
	rc = read_file(key, &c.key, &c.key_len);
	if (rc) {
		say(err, errlen, "%s: %s", key, rc == -EINVAL ? "empty or too large" : strerror(-rc));
		free(c.crt);
		return rc;
	}
	c.name = strdup(name);
	if (!c.name)
		rc = -ENOMEM;
	else
		rc = check_pair(&c, err, errlen);
	if (!rc) {
		struct bcert *v = realloc(pool->v, (pool->n + 1) * sizeof *v);
		if (!v) {
			rc = -ENOMEM;
		} else {
			pool->v = v;
			pool->v[pool->n++] = c;
			return 1;
		}
	}
	if (rc == -ENOMEM)
		say(err, errlen, "out of memory");
	free(c.name);
	free(c.crt);
	free(c.key);
	return rc;
}

/* See bench/bench.h. */
int bpool_load_pair(struct bpool *pool, const char *crt, const char *key,
		    char *err, size_t errlen)
{
	return pool_add(pool, crt, crt, key, err, errlen);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* See bench/bench.h. */
int bpool_load_dir(struct bpool *pool, const char *dir, char *err,
		   size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		say(err, errlen, "%s: %s", dir, strerror(e));
		return -e;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		/* NAME.crt, not NAME.chain.crt (vouchctl writes both) */
		if (l <= 4 || strcmp(de->d_name + l - 4, ".crt") != 0 ||
		    (l > 10 && !strcmp(de->d_name + l - 10, ".chain.crt")))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nv = realloc(names, cap * sizeof *nv);
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			names = nv;
		}
		names[n] = strndup(de->d_name, l - 4);
		if (!names[n]) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (!rc && n)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n && rc >= 0; i++) {
		char crt[4096], key[4096];
		snprintf(crt, sizeof crt, "%s/%s.crt", dir, names[i]);
		snprintf(key, sizeof key, "%s/%s.key", dir, names[i]);
		if (access(key, R_OK) != 0)
			continue; /* a CA or server certificate kept alongside */
		int r = pool_add(pool, names[i], crt, key, err, errlen);
		if (r < 0)
			rc = r;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == -ENOMEM)
		say(err, errlen, "out of memory");
	if (rc < 0)
		return rc;
	if (!pool->n) {
		say(err, errlen, "%s: no NAME.crt with a NAME.key", dir);
		return -ENOENT;
	}
	return (int)pool->n;
}

/* See bench/bench.h. */
void bpool_free(struct bpool *pool)
{
	for (size_t i = 0; i < pool->n; i++) {
		free(pool->v[i].name);
		free(pool->v[i].crt);
		free(pool->v[i].key);
	}
	free(pool->v);
	pool->v = NULL;
	pool->n = 0;
}

/* See bench/bench.h. */
struct WOLFSSL_CTX *btls_ctx_new(const struct bench_opts *o, char *err,
				 size_t errlen)
{
	WOLFSSL_METHOD *m = o->tls_version == 12 ? wolfTLSv1_2_client_method()
			  : o->tls_version == 13 ? wolfTLSv1_3_client_method()
						 : wolfSSLv23_client_method();
	WOLFSSL_CTX *ctx = m ? wolfSSL_CTX_new(m) : NULL;
	if (!ctx) {
		say(err, errlen, "cannot make a TLS context");
		return NULL;
	}
	if (!o->tls_version)
		wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2);
	if (o->resume) {
		/* sessions are kept by hand (btls_resume_keep), never in
		 * wolfSSL's process-wide cache; tickets for TLS 1.2 too */
		wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_CLIENT |
						   WOLFSSL_SESS_CACHE_NO_INTERNAL);
		if (wolfSSL_CTX_UseSessionTicket(ctx) != WOLFSSL_SUCCESS) {
			say(err, errlen, "cannot enable session tickets");
			wolfSSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		/* a session is never offered again: keep none */
		wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	}
	if (o->cafile) {
		if (wolfSSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != WOLFSSL_SUCCESS) {
			say(err, errlen, "%s: cannot load CA certificates", o->cafile);
			wolfSSL_CTX_free(ctx);
			return NULL;
		}
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

/* See bench/bench.h. */
int btls_attach(struct WOLFSSL_CTX *ctx, const struct bpool *pool,
		struct bconn *c)
{
	WOLFSSL *ssl = wolfSSL_new(ctx);
	if (!ssl)
		return -ENOMEM;
	if (pool && pool->n) {
		const struct bcert *ce = &pool->v[c->gidx % pool->n];
		if (wolfSSL_use_certificate_chain_buffer(ssl, ce->crt, (long)ce->crt_len) != WOLFSSL_SUCCESS ||
		    wolfSSL_use_PrivateKey_buffer(ssl, ce->key, (long)ce->key_len,
						  WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			wolfSSL_free(ssl);
			return -EINVAL;
		}
	}
	if (wolfSSL_set_fd(ssl, c->fd) != WOLFSSL_SUCCESS) {
		wolfSSL_free(ssl);
		return -EINVAL;
	}
	c->ssl = ssl;
	return 0;
}

/* See bench/bench.h. */
int btls_resume_setup(struct bthread *th, size_t ncerts)
{
	th->sess = calloc(ncerts ? ncerts : 1, sizeof *th->sess);
	th->sess_state = calloc(ncerts ? ncerts : 1, 1);
	return th->sess && th->sess_state ? 0 : -ENOMEM;
}

/* See bench/bench.h. */
void btls_resume_free(struct bthread *th, size_t ncerts)
{
	if (th->sess)
		for (size_t i = 0; i < ncerts; i++)
			if (th->sess[i])
				wolfSSL_SESSION_free(th->sess[i]);
	free(th->sess);
	free(th->sess_state);
	th->sess = NULL;
	th->sess_state = NULL;
}

static uint32_t cert_of(const struct bthread *th, const struct bconn *c)
{
	size_t n = th->b->pool->n ? th->b->pool->n : 1;
	return (uint32_t)(c->gidx % n);
}

/* See bench/bench.h. */
bool btls_resume_may_start(struct bthread *th, struct bconn *c)
{
	return th->sess_state[cert_of(th, c)] != 1;
}

/* See bench/bench.h. */
void btls_resume_started(struct bthread *th, struct bconn *c)
{
	uint8_t *s = &th->sess_state[cert_of(th, c)];
	c->resume_first = *s == 0;
	c->resume_asked = false;
	if (*s == 0)
		*s = 1;
}

/* See bench/bench.h. */
void btls_resume_offer(struct bthread *th, struct bconn *c)
{
	uint32_t k = cert_of(th, c);
	if (th->sess_state[k] != 2 || !th->sess[k])
		return;
	/* a session wolfSSL will not take (expired) is a full handshake */
	c->resume_asked = wolfSSL_set_session(c->ssl, th->sess[k]) == WOLFSSL_SUCCESS;
}

/* See bench/bench.h. */
bool btls_resume_keep(struct bthread *th, struct bconn *c)
{
	uint32_t k = cert_of(th, c);
	bool reused = wolfSSL_session_reused(c->ssl) != 0;
	if (reused || (!c->resume_first && !c->resume_asked))
		return reused;
	/* the first full handshake with this certificate, or an offered
	 * session the server did not take: keep this one instead */
	WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
	if (s) {
		if (th->sess[k])
			wolfSSL_SESSION_free(th->sess[k]);
		th->sess[k] = s;
		th->sess_state[k] = 2;
	} else if (c->resume_first) {
		th->sess_state[k] = 0;
	}
	c->resume_first = false;
	return false;
}

/* See bench/bench.h. */
void btls_resume_failed(struct bthread *th, struct bconn *c)
{
	if (c->resume_first) {
		c->resume_first = false;
		th->sess_state[cert_of(th, c)] = 0; /* the next one tries */
	}
}
