/*
 * bench/tls.c - TLS for vouch-bench: the pool of client certificates
 * (--cert-dir DIR of NAME.crt/NAME.key pairs, or one --cert/--key), one
 * wolfSSL client context per loop thread, and the per-connection session
 * that reads and writes the connection's non-blocking socket.
 *
 * Certificates and keys stay PEM in memory; each connection loads its pair
 * into its own WOLFSSL object, which is cheap next to the handshake's
 * public-key work. Sessions are never resumed: every handshake is full.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "bench/bench.h"

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
	} else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
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
	/* a session is never offered again: keep none */
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
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
