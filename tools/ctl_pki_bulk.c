/*
 * tools/ctl_pki_bulk.c - `vouchctl pki devices`: many device certificates
 * in one command, for load tests (vouch-bench --cert-dir).
 *
 * The certificates are those of `vouchctl pki device` (TLS_PKI_DEVICE, EC
 * P-256, CN = file name, 16 random serial bytes), made by tls_pki_issue_rng().
 * What makes it fast: the CA is read once; each thread keeps its own
 * wolfCrypt RNG and its own copy of the CA key (a key must not be used by
 * two threads at once) and takes indices in chunks from one counter; each
 * file is one open + write + close, without the fsync and rename of
 * tls_pki_file_write(). These are test credentials: after a crash, make
 * them again.
 *
 * Nothing is written before every target has been found free (or --force);
 * a failure half-way removes the files this run wrote.
 */
#include "tools/ctl.h"
#include "tls/cert.h"
#include "tls/pki.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 64               /* indices a thread takes at a time */
#define MAX_INDEX 999999999L   /* --start + --count - 1 at most this */
#define NAME_MAX_LEN 64        /* CN bytes (TLS_CERT_NAME_MAX) */

enum { O_CA_CERT = 0x200, O_CA_KEY, O_OUT, O_COUNT, O_PREFIX, O_START, O_DAYS,
       O_THREADS, O_FORCE };

static const struct option opts[] = {
	{ "ca-cert", required_argument, NULL, O_CA_CERT },
	{ "ca-key", required_argument, NULL, O_CA_KEY },
	{ "out", required_argument, NULL, O_OUT },
	{ "count", required_argument, NULL, O_COUNT },
	{ "prefix", required_argument, NULL, O_PREFIX },
	{ "start", required_argument, NULL, O_START },
	{ "days", required_argument, NULL, O_DAYS },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "force", no_argument, NULL, O_FORCE },
	{ NULL, 0, NULL, 0 },
};

/* Per index: what this run has written (for the clean-up after a failure). */
enum { MADE_KEY = 1, MADE_CRT = 2 };

/* One run, shared by its threads. Read-only once the threads start, but
 * for `next`, `stop`, `made[i]` (each index belongs to one thread) and the
 * first error (under `lock`). */
struct bulk {
	const char *dir, *prefix;
	long start, count, days;
	bool force;
	mode_t umask;
	int dirfd;
	int64_t now;
	const uint8_t *ca_der;
	size_t ca_len;
	const char *ca_key_pem;
	size_t ca_key_len;
	uint8_t *made;
	_Atomic long next;
	_Atomic bool stop;
	pthread_mutex_t lock;
	char err[512];
};

/* One worker's own state. */
struct worker {
	struct bulk *b;
	pthread_t tid;
	bool started;
	WC_RNG rng;
	struct tls_pki_key *ca_key;
	uint8_t der[TLS_PKI_DER_MAX];
	char crt_pem[TLS_PKI_DER_MAX * 2];
	char key_pem[TLS_PKI_KEY_DER_MAX * 2];
};

static const char *issue_error(int rc)
{
	switch (rc) {
	case -EKEYREJECTED:
		return "the CA key does not belong to the CA certificate";
	case -ENAMETOOLONG:
		return "the CN is longer than 64 bytes";
	case -EINVAL:
		return "invalid request (--prefix not UTF-8, or the CA certificate "
		       "is not a CA)";
	default:
		return strerror(-rc);
	}
}

/* Keep the first failure and stop every worker. */
static void bulk_fail(struct bulk *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bulk_fail(struct bulk *b, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&b->lock);
	if (!b->err[0]) {
		va_start(ap, fmt);
		vsnprintf(b->err, sizeof b->err, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&b->lock);
	atomic_store(&b->stop, true);
}

static void file_name(const struct bulk *b, long idx, const char *ext,
		      char *out, size_t cap)
{
	snprintf(out, cap, "%s%ld%s", b->prefix, idx, ext);
}

/* One open, one write, one close; no fsync (test credentials). Without
 * --force O_EXCL refuses a file that appeared since the check. *made gets
 * `bit` once the file is this run's (even if writing it then fails). */
static int put_file(const struct bulk *b, const char *name, const char *data,
		    size_t len, mode_t mode, uint8_t *made, uint8_t bit)
{
	int fl = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
		 (b->force ? O_TRUNC : O_EXCL);
	int fd = openat(b->dirfd, name, fl, mode), rc = 0;

	if (fd < 0)
		return -errno;
	*made |= bit;
	/* The exact mode whatever the umask or an old file had, as
	 * tls_pki_file_write() does: a key is 0600. */
	if ((b->force || (mode & b->umask)) && fchmod(fd, mode) < 0)
		rc = -errno;
	while (rc == 0 && len > 0) {
		ssize_t w = write(fd, data, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = -errno;
		else {
			data += w;
			len -= (size_t)w;
		}
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Make certificate `idx`: key, certificate, both files. */
static int make_one(struct worker *w, long idx)
{
	struct bulk *b = w->b;
	struct tls_pki_issuer issuer = { b->ca_der, b->ca_len, w->ca_key };
	struct tls_pki_key *k = NULL;
	struct tls_pki_spec spec;
	char cn[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 16];
	uint8_t *made = &b->made[idx - b->start];
	int n, kn, rc;

	snprintf(cn, sizeof cn, "%s%ld", b->prefix, idx);
	rc = tls_pki_key_generate_rng(TLS_KEY_EC, 256, &w->rng, &k);
	if (rc < 0) {
		bulk_fail(b, "key generation failed: %s", strerror(-rc));
		return rc;
	}
	tls_pki_spec_init(&spec, TLS_PKI_DEVICE, b->now, (int)b->days);
	spec.subject.cn = cn;
	n = tls_pki_issue_rng(&spec, k, &issuer, &w->rng, w->der, sizeof w->der);
	kn = n < 0 ? n : tls_pki_key_pem(k, w->key_pem, sizeof w->key_pem);
	tls_pki_key_free(k);
	if (n < 0 || kn < 0) {
		bulk_fail(b, "%s: cannot issue: %s", cn, issue_error(n < 0 ? n : kn));
		return n < 0 ? n : kn;
	}
	rc = tls_pem_encode("CERTIFICATE", w->der, (size_t)n, w->crt_pem,
			    sizeof w->crt_pem);
	if (rc < 0) {
		bulk_fail(b, "%s: cannot encode: %s", cn, strerror(-rc));
		return rc;
	}

	file_name(b, idx, ".key", name, sizeof name);
	rc = put_file(b, name, w->key_pem, (size_t)kn, 0600, made, MADE_KEY);
	memset(w->key_pem, 0, (size_t)kn);
	if (rc == 0) {
		file_name(b, idx, ".crt", name, sizeof name);
		rc = put_file(b, name, w->crt_pem, strlen(w->crt_pem), 0644, made, MADE_CRT);
	}
	if (rc == -EEXIST)
		bulk_fail(b, "%s/%s exists (--force replaces it)", b->dir, name);
	else if (rc < 0)
		bulk_fail(b, "cannot write %s/%s: %s", b->dir, name, strerror(-rc));
	return rc;
}

static void work(struct worker *w)
{
	struct bulk *b = w->b;

	while (!atomic_load(&b->stop)) {
		long base = atomic_fetch_add(&b->next, CHUNK);

		if (base >= b->count)
			return;
		for (long i = base; i < base + CHUNK && i < b->count; i++)
			if (atomic_load(&b->stop) || make_one(w, b->start + i) < 0)
				return;
	}
}

/* A started thread. wolfCrypt's fixed-point ECC cache is per thread
 * (FP_ECC with thread-local storage): each thread frees its own, the main
 * thread's goes with wolfSSL_Cleanup(). */
static void *worker_main(void *arg)
{
	work(arg);
#ifdef FP_ECC
	wc_ecc_fp_free();
#endif
	return NULL;
}

static int worker_init(struct worker *w, struct bulk *b)
{
	w->b = b;
	if (wc_InitRng(&w->rng) != 0)
		return -EIO;
	if (tls_pki_key_from_pem(b->ca_key_pem, b->ca_key_len, &w->ca_key) < 0) {
		wc_FreeRng(&w->rng);
		return -EIO;
	}
	return 0;
}

static void worker_fini(struct worker *w)
{
	tls_pki_key_free(w->ca_key);
	wc_FreeRng(&w->rng);
}

/* ---- before the run: arguments, CA, targets --------------------------- */

struct bulk_args {
	const char *ca_cert, *ca_key, *out, *prefix;
	long count, start, days, threads;
	bool force;
};

static const struct ctl_cmd *self_cmd(const struct ctl_ctx *ctx)
{
	for (const struct ctl_cmd *c = ctl_pki_group.cmds; c->name; c++)
		if (!strcmp(c->name, ctx->cmd))
			return c;
	return NULL;
}

static int digits(long v)
{
	int d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* CTL_OK, CTL_USAGE (printed), or -1 after --help. */
static int parse_args(struct ctl_ctx *ctx, int argc, char **argv, struct bulk_args *a)
{
	const struct ctl_cmd *cmd = self_cmd(ctx);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	bool have_count = false;
	int c;

	*a = (struct bulk_args){ .prefix = "dev", .days = 365,
				 .threads = cpus > 0 ? cpus : 1 };
	while ((c = ctl_getopt(ctx, cmd, argc, argv, opts)) != -1) {
		switch (c) {
		case CTL_OPT_HELP:
			return -1;
		case CTL_OPT_BAD:
			return CTL_USAGE;
		case O_CA_CERT: a->ca_cert = optarg; break;
		case O_CA_KEY: a->ca_key = optarg; break;
		case O_OUT: a->out = optarg; break;
		case O_PREFIX: a->prefix = optarg; break;
		case O_FORCE: a->force = true; break;
		case O_COUNT:
			if (ctl_parse_int(optarg, 1, 10000000, &a->count) < 0)
				return ctl_usage(ctx, "--count must be 1..10000000, not '%s'", optarg);
			have_count = true;
			break;
		case O_START:
			if (ctl_parse_int(optarg, 0, MAX_INDEX, &a->start) < 0)
				return ctl_usage(ctx, "--start must be 0..%ld, not '%s'",
						 MAX_INDEX, optarg);
			break;
		case O_DAYS:
			if (ctl_parse_int(optarg, 1, 36500, &a->days) < 0)
				return ctl_usage(ctx, "--days must be 1..36500, not '%s'", optarg);
			break;
		case O_THREADS:
			if (ctl_parse_int(optarg, 1, 256, &a->threads) < 0)
				return ctl_usage(ctx, "--threads must be 1..256, not '%s'", optarg);
			break;
		default:
			return ctl_usage(ctx, "unexpected option");
		}
	}
	if (optind < argc)
		return ctl_usage(ctx, "unexpected argument '%s'", argv[optind]);
	if (!a->ca_cert || !a->ca_key || !a->out || !have_count)
		return ctl_usage(ctx, "--ca-cert, --ca-key, --out and --count are required");
	if (!*a->prefix || strchr(a->prefix, '/'))
		return ctl_usage(ctx, "--prefix must be a plain file name");
	if (a->start + a->count - 1 > MAX_INDEX)
		return ctl_usage(ctx, "--start + --count - 1 must be at most %ld", MAX_INDEX);
	if (strlen(a->prefix) + (size_t)digits(a->start + a->count - 1) > NAME_MAX_LEN)
		return ctl_usage(ctx, "--prefix is too long: the CNs would pass 64 bytes");
	if (a->threads > a->count)
		a->threads = a->count;
	return CTL_OK;
}

/* One certificate for the longest CN, thrown away: the CA, its key and the
 * names are checked before any file is written. */
static int preflight(const struct ctl_ctx *ctx, struct worker *w, long last)
{
	struct bulk *b = w->b;
	struct tls_pki_issuer issuer = { b->ca_der, b->ca_len, w->ca_key };
	struct tls_pki_key *k;
	struct tls_pki_spec spec;
	char cn[NAME_MAX_LEN + 1];
	int n;

	snprintf(cn, sizeof cn, "%s%ld", b->prefix, last);
	n = tls_pki_key_generate_rng(TLS_KEY_EC, 256, &w->rng, &k);
	if (n < 0)
		return ctl_fail(ctx, "key generation failed: %s", strerror(-n));
	tls_pki_spec_init(&spec, TLS_PKI_DEVICE, b->now, (int)b->days);
	spec.subject.cn = cn;
	n = tls_pki_issue_rng(&spec, k, &issuer, &w->rng, w->der, sizeof w->der);
	tls_pki_key_free(k);
	if (n < 0)
		return ctl_fail(ctx, "cannot issue: %s", issue_error(n));
	return CTL_OK;
}

/* Open the output directory, making it if need be (*fresh then). The
 * descriptor, or -1 with the reason printed. */
static int open_dir(const struct ctl_ctx *ctx, const char *dir, bool *fresh)
{
	int fd;

	*fresh = mkdir(dir, 0755) == 0;
	if (!*fresh && errno != EEXIST) {
		ctl_fail(ctx, "cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		ctl_fail(ctx, "cannot open directory %s: %s", dir, strerror(errno));
	return fd;
}

/* Refuse, before writing anything, when a target exists. */
static int check_free(const struct ctl_ctx *ctx, const struct bulk *b)
{
	static const char *const ext[] = { ".crt", ".key" };
	char name[NAME_MAX_LEN + 16];

	for (long i = 0; i < b->count; i++)
		for (int e = 0; e < 2; e++) {
			file_name(b, b->start + i, ext[e], name, sizeof name);
			if (faccessat(b->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				return ctl_fail(ctx, "%s/%s exists (--force replaces it)",
						b->dir, name);
		}
	return CTL_OK;
}

/* After a failure: take back what this run wrote. */
static long remove_made(const struct bulk *b)
{
	char name[NAME_MAX_LEN + 16];
	long removed = 0;

	for (long i = 0; i < b->count; i++) {
		if (b->made[i] & MADE_KEY) {
			file_name(b, b->start + i, ".key", name, sizeof name);
			removed += unlinkat(b->dirfd, name, 0) == 0;
		}
		if (b->made[i] & MADE_CRT) {
			file_name(b, b->start + i, ".crt", name, sizeof name);
			removed += unlinkat(b->dirfd, name, 0) == 0;
		}
	}
	return removed;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int report(struct ctl_ctx *ctx, const struct bulk *b, long threads, double secs)
{
	double rate = secs > 0 ? (double)b->count / secs : 0;
	json_t *o;

	if (!ctx->json) {
		printf("%ld certificates in %.2f s (%.0f/s, %ld thread%s): %s/%s%ld..%s%ld "
		       ".crt and .key\n", b->count, secs, rate, threads,
		       threads == 1 ? "" : "s", b->dir, b->prefix, b->start, b->prefix,
		       b->start + b->count - 1);
		return CTL_OK;
	}
	o = json_object();
	if (o) {
		json_object_set_new(o, "count", json_integer(b->count));
		json_object_set_new(o, "out", json_string(b->dir));
		json_object_set_new(o, "prefix", json_string(b->prefix));
		json_object_set_new(o, "first", json_integer(b->start));
		json_object_set_new(o, "last", json_integer(b->start + b->count - 1));
		json_object_set_new(o, "threads", json_integer(threads));
		json_object_set_new(o, "seconds", json_real(secs));
		json_object_set_new(o, "per_second", json_real(rate));
	}
	return ctl_emit(ctx, o);
}

/* The worker threads: w[0] is this thread; the others are started, as
 * many as can be (the counter balances whatever number runs). */
static long run_workers(struct worker *w, long threads)
{
	long running = 1;

	for (long t = 1; t < threads; t++) {
		if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]) != 0)
			break;
		w[t].started = true;
		running++;
	}
	work(&w[0]);
	for (long t = 1; t < threads; t++)
		if (w[t].started)
			pthread_join(w[t].tid, NULL);
	return running;
}

/* See tools/ctl.h. */
int ctl_pki_devices(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct bulk_args a;
	struct bulk b = { .dirfd = -1 };
	struct worker *w = NULL;
	uint8_t *ca_der = NULL;
	char *ca_key_pem = NULL;
	long ready = 0, running;
	bool fresh = false;
	double t0;
	int rc;

	rc = parse_args(ctx, argc, argv, &a);
	if (rc)
		return rc < 0 ? CTL_OK : rc;
	t0 = mono();
	b = (struct bulk){ .dir = a.out, .prefix = a.prefix, .start = a.start,
			   .count = a.count, .days = a.days, .force = a.force,
			   .dirfd = -1, .now = time(NULL), .umask = umask(022) };
	umask(b.umask);
	pthread_mutex_init(&b.lock, NULL);
	rc = ctl_load_cert(ctx, a.ca_cert, &ca_der, &b.ca_len);
	if (!rc)
		rc = ctl_load_key(ctx, a.ca_key, NULL, &ca_key_pem, &b.ca_key_len);
	if (rc)
		goto out;
	b.ca_der = ca_der;
	b.ca_key_pem = ca_key_pem;
	w = calloc((size_t)a.threads, sizeof *w);
	b.made = calloc((size_t)a.count, 1);
	if (!w || !b.made) {
		rc = ctl_fail(ctx, "out of memory");
		goto out;
	}
	for (; ready < a.threads; ready++)
		if (worker_init(&w[ready], &b) < 0) {
			rc = ctl_fail(ctx, "cannot set up a worker (RNG or CA key)");
			goto out;
		}
	rc = preflight(ctx, &w[0], a.start + a.count - 1);
	if (rc)
		goto out;
	b.dirfd = open_dir(ctx, a.out, &fresh);
	if (b.dirfd < 0) {
		rc = CTL_ERR;
		goto out;
	}
	if (!fresh && !a.force) {
		rc = check_free(ctx, &b);
		if (rc)
			goto out;
	}

	running = run_workers(w, a.threads);
	if (b.err[0]) {
		long removed = remove_made(&b);

		rc = ctl_fail(ctx, "%s (removed the %ld files written)", b.err, removed);
		goto out;
	}
	rc = report(ctx, &b, running, mono() - t0);
out:
	for (long t = 0; t < ready; t++)
		worker_fini(&w[t]);
	if (w) {
		memset(w, 0, (size_t)a.threads * sizeof *w);
		free(w);
	}
	if (ca_key_pem) {
		memset(ca_key_pem, 0, b.ca_key_len);
		free(ca_key_pem);
	}
	free(ca_der);
	free(b.made);
	if (b.dirfd >= 0)
		close(b.dirfd);
	pthread_mutex_destroy(&b.lock);
	return rc;
}

/* See tools/ctl.h. */
const char ctl_pki_devices_help[] =
	"  --ca-cert F --ca-key F   the issuing CA (PEM or DER certificate; PEM\n"
	"                key: PKCS#8, RSA or EC)\n"
	"  --out DIR     where PREFIX<i>.crt and PREFIX<i>.key (PKCS#8, 0600) go;\n"
	"                made if missing\n"
	"  --count N     how many (1..10000000)\n"
	"  --prefix P    file name stem and CN prefix (default 'dev')\n"
	"  --start K     first index (default 0): i = K .. K+N-1\n"
	"  --days N      validity in days (default 365)\n"
	"  --threads T   worker threads (default: the online CPUs)\n"
	"  --force       replace existing files\n"
	"  The certificates are those of 'pki device' (EC P-256, clientAuth,\n"
	"  CN = file name, random serial), without chain files. TEST CREDENTIALS:\n"
	"  files are written without fsync, so a crash may leave some empty or\n"
	"  missing. Nothing is written if a target exists (without --force); a\n"
	"  failure half-way removes the files written. Prints one summary line.\n";
