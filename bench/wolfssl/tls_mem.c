/*
 * bench/wolfssl/tls_mem.c - wolfSSL heap that one mutual-TLS server
 * connection keeps after its handshake, with the wolfSSL this config links
 * (build/<config>/tls-mem: Debian's, or WOLFSSL=asm's).
 *
 * Every wolfSSL allocation goes through counting wrappers
 * (wolfSSL_SetAllocators, before anything else). The server is vouch's own
 * transport (tls/server.h) on the fake shard of the unit tests
 * (tests/unit/tls_harness.h); the clients are wolfSSL clients with P-256
 * device certificates, over memory. N connections handshake and exchange
 * one record each (so the TLS 1.3 ticket goes out); then the clients are
 * freed and what is still allocated, over the level before the first
 * connection, is divided by N. vouch's own per-connection state (struct
 * tls_conn, identity records) comes from malloc, not counted here.
 *
 *   tls-mem [--connections N] [--tls 1.2|1.3] [--sizes]   one line of JSON
 *   (--sizes: what the connections keep, by block size, on stderr)
 */
#include "tests/unit/tls_harness.h"

#include <stdatomic.h>

struct hdr {
	size_t size;
	unsigned long long seq;          /* allocation number */
	struct hdr *prev, *next;         /* every live block (32 bytes: keeps
					    16-byte alignment) */
};

static long long live, peak;
static unsigned long long n_allocs;
static struct hdr *blocks;

static void link_block(struct hdr *h)
{
	h->prev = NULL;
	h->next = blocks;
	if (blocks)
		blocks->prev = h;
	blocks = h;
}

static void unlink_block(struct hdr *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		blocks = h->next;
	if (h->next)
		h->next->prev = h->prev;
}

static void account(long long d)
{
	live += d;
	if (live > peak)
		peak = live;
}

static void *cnt_malloc(size_t n)
{
	struct hdr *h = malloc(sizeof *h + n);
	if (!h)
		return NULL;
	h->size = n;
	h->seq = ++n_allocs;
	link_block(h);
	account((long long)n);
	return h + 1;
}

static void cnt_free(void *p)
{
	if (!p)
		return;
	struct hdr *h = (struct hdr *)p - 1;
	account(-(long long)h->size);
	unlink_block(h);
	free(h);
}

static void *cnt_realloc(void *p, size_t n)
{
	if (!p)
		return cnt_malloc(n);
	struct hdr *h = (struct hdr *)p - 1;
	size_t old = h->size;
	unlink_block(h);
	struct hdr *nh = realloc(h, sizeof *nh + n);
	if (!nh) {
		link_block(h);
		return NULL;
	}
	nh->size = n;
	link_block(nh);
	account((long long)n - (long long)old);
	return nh + 1;
}

#define MAX_CONNS 1024
#define WARMUP 100

/* --sizes: the blocks still live that were allocated after `since`, by
 * size (count x bytes), largest total first. */
static void print_sizes(unsigned long long since, int n)
{
	enum { MAXS = 256 };
	size_t size[MAXS];
	long cnt[MAXS];
	int k = 0;
	for (struct hdr *h = blocks; h; h = h->next) {
		if (h->seq <= since)
			continue;
		int i = 0;
		while (i < k && size[i] != h->size)
			i++;
		if (i == k) {
			if (k == MAXS)
				continue;
			size[k] = h->size;
			cnt[k++] = 0;
		}
		cnt[i]++;
	}
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k; b++)
			if ((long long)size[b] * cnt[b] > (long long)size[a] * cnt[a]) {
				size_t ts = size[a];
				long tc = cnt[a];
				size[a] = size[b];
				cnt[a] = cnt[b];
				size[b] = ts;
				cnt[b] = tc;
			}
	fprintf(stderr, "live blocks per connection (blocks x bytes):\n");
	for (int i = 0; i < k; i++)
		fprintf(stderr, "  %6.2f x %7zu\n", (double)cnt[i] / n, size[i]);
}

static struct made dev_ca, dev;
static struct shard sh;
static struct link links[MAX_CONNS];

int main(int argc, char **argv)
{
	int n = 200, version = 0x0304;
	bool sizes = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc) {
			n = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--sizes") == 0) {
			sizes = true;
		} else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
			const char *v = argv[++i];
			version = strcmp(v, "1.2") == 0 ? 0x0303 : strcmp(v, "1.3") == 0 ? 0x0304 : 0;
		} else {
			fprintf(stderr, "tls-mem: unknown argument '%s' (--connections N, --tls 1.2|1.3, --sizes)\n",
				argv[i]);
			return 2;
		}
	}
	if (n < 1 || n > MAX_CONNS || version == 0) {
		fprintf(stderr, "tls-mem: --connections must be 1..%d, --tls 1.2 or 1.3\n", MAX_CONNS);
		return 2;
	}
	MUST(wolfSSL_SetAllocators(cnt_malloc, cnt_free, cnt_realloc) == 0);
	now = (int64_t)time(NULL);
	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	struct made srv_cert;
	server_files("tls_mem", &srv_cert);
	make(&dev_ca, TLS_PKI_ROOT_CA, "Devices CA", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&dev, TLS_PKI_DEVICE, "dev", TLS_KEY_EC, 256, &dev_ca, 0, 0);
	memset(&sh, 0, sizeof sh);
	sh.rt = &rt;
	sh.ops = &ops;
	sh.cap_slots = MAX_CONNS + 1;
	sh.conns = calloc(sh.cap_slots, sizeof *sh.conns);
	sh.free_slots = calloc(sh.cap_slots, sizeof *sh.free_slots);
	MUST(sh.conns && sh.free_slots);

	struct tls_server *srv;
	char err[256] = "";
	MUST(tls_server_new(&srv, cert_path, key_path, true, err, sizeof err) == 0);
	MUST(tls_server_add_ca_mt(srv, dev_ca.der, dev_ca.len) == 0);
	WOLFSSL_CTX *cctx = client_ctx(version, &dev, NULL, NULL, NULL);

	/* Connections first to fill what wolfCrypt keeps per thread (the
	 * FP_ECC point cache of Debian's build: grows over the first dozens
	 * of handshakes, then stays), so that it is not counted per
	 * connection; it is reported on its own. */
	long long setup = live;
	for (int w = 0; w < WARMUP; w++) {
		struct link *l = &links[0];
		link_open(l, &sh, srv, cctx);
		l->up.echo = true;
		int hs = handshake(l);
		if (hs != 0)
			fprintf(stderr, "tls-mem: handshake: %d (alert %d)\n", hs,
				last_alert_rx(l->cl));
		MUST(hs == 0 && roundtrip(l, "warm-up") == 0);
		link_close(l);
	}
	long long thread_cache = live - setup;
	long long base = live;
	unsigned long long base_seq = n_allocs;
	peak = live;
	long long one_peak = -1;
	for (int i = 0; i < n; i++) {
		struct link *l = &links[i];
		link_open(l, &sh, srv, cctx);
		l->up.echo = true;
		MUST(handshake(l) == 0);
		MUST(roundtrip(l, "hello") == 0);
		MUST(tls_conn_identity(l->c) != NULL);
		if (i == 0)
			one_peak = peak - base;
	}
	long long with_clients = live - base;
	for (int i = 0; i < n; i++) {
		wolfSSL_free(links[i].cl);
		links[i].cl = NULL;
	}
	long long kept = live - base;
	if (sizes)
		print_sizes(base_seq, n);
	printf("{\"tls\":\"%s\",\"connections\":%d,\"server_bytes_per_conn\":%lld,"
	       "\"server_and_client_bytes_per_conn\":%lld,\"handshake_peak_bytes\":%lld,"
	       "\"per_thread_cache_bytes\":%lld,\"failures\":%d}\n",
	       version == 0x0304 ? "1.3" : "1.2", n, kept / n, with_clients / n,
	       one_peak, thread_cache, failures);
	for (int i = 0; i < n; i++) {
		conn_close(&sh, links[i].c, false);
	}
	wolfSSL_CTX_free(cctx);
	tls_server_free(srv);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	return failures ? 1 : 0;
}
