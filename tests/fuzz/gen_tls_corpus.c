/*
 * tests/fuzz/gen_tls_corpus.c - makes the seed corpus of fuzz_tls and its
 * fixed certificates (fuzz_tls_certs.h). Not part of the build; run by
 * hand when the seeds need remaking (the certificates are valid for 20
 * years from the day they were made):
 *
 *   make build/release/libvouch.a
 *   cc -O1 -std=gnu11 -D_GNU_SOURCE -I. -Itests/unit -DVOUCH_NO_JEMALLOC \
 *      -o /tmp/gen_tls_corpus tests/fuzz/gen_tls_corpus.c \
 *      build/release/libvouch.a -lwolfssl -luring -lxxhash -lmicrohttpd \
 *      -ljansson -lcurl -lpthread -lm
 *   /tmp/gen_tls_corpus tests/fuzz
 *
 * Each seed is a control byte (see fuzz_tls.c) and everything a wolfSSL
 * client sent to a real tls_server during one connection attempt, flights
 * concatenated: TLS 1.2 and 1.3, EC and RSA devices, a chain with an
 * intermediate, no certificate, expired, CA as leaf, an unknown CA, the
 * wrong key, every suite, ticket requests and resumption attempts (their
 * tickets do not decrypt in the fuzzer's process: the refusal path), then
 * cut copies and junk.
 */
#include "tls_harness.h"

static struct made srv_cert, dev_ca, dev_ec, dev_rsa, inter, dev_inter, other_ca,
	dev_other, dev_expired, ca_leaf;
static struct tls_server *srv;
static struct shard gsh;
static const char *outdir;
static int nseeds;

static void put_seed(const char *name, uint8_t control, const uint8_t *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/corpus/fuzz_tls/%s", outdir, name);
	uint8_t *buf = malloc(n + 1);
	MUST(buf);
	buf[0] = control;
	memcpy(buf + 1, p, n);
	MUST(tls_pki_file_write(path, buf, n + 1, 0644, true) == 0);
	free(buf);
	nseeds++;
}

/* Everything the client sends during one attempt. */
static size_t capture(WOLFSSL_CTX *cctx, WOLFSSL_SESSION *resume, bool ticket,
		      uint8_t *out, size_t cap, WOLFSSL_SESSION **sess_out)
{
	struct link *l = calloc(1, sizeof *l);
	MUST(l);
	link_open(l, &gsh, srv, cctx);
	l->up.echo = true;
	if (ticket)
		MUST(wolfSSL_UseSessionTicket(l->cl) == WOLFSSL_SUCCESS);
	if (resume)
		MUST(wolfSSL_set_session(l->cl, resume) == WOLFSSL_SUCCESS);
	size_t n = 0;
	bool done = false;
	for (int i = 0; i < 50 && !l->gone; i++) {
		if (!done) {
			int r = wolfSSL_connect(l->cl);
			if (r == WOLFSSL_SUCCESS) {
				done = true;
				wolfSSL_write(l->cl, "\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03"
					      "fzz", 18);
			} else if (wolfSSL_get_error(l->cl, r) != WOLFSSL_ERROR_WANT_READ) {
				done = true;
			}
		}
		MUST(n + l->c2s_len <= cap);
		memcpy(out + n, l->c2s, l->c2s_len);
		n += l->c2s_len;
		bool a = feed(l), b = collect(l);
		if (done) {
			char tmp[256];
			wolfSSL_read(l->cl, tmp, sizeof tmp); /* tickets */
		}
		if (!a && !b && done)
			break;
	}
	if (sess_out)
		*sess_out = !l->gone && tls_conn_handshake_done(l->c) ?
			wolfSSL_get1_session(l->cl) : NULL;
	if (!l->gone)
		conn_close(l->sh, l->c, false);
	wolfSSL_free(l->cl);
	free(l);
	return n;
}

static void seeds_for(const char *tag, WOLFSSL_CTX *cctx, bool ticket, bool cuts)
{
	static uint8_t buf[1 << 17];
	char name[128];
	WOLFSSL_SESSION *s = NULL;
	size_t n = capture(cctx, NULL, ticket, buf, sizeof buf, &s);
	MUST(n > 0);
	snprintf(name, sizeof name, "%s-whole", tag);
	put_seed(name, 0x00, buf, n);
	snprintf(name, sizeof name, "%s-pieces7-known", tag);
	put_seed(name, 0x80 | 7, buf, n);
	if (cuts) {
		/* the ClientHello's record alone, and cut inside it */
		size_t rec = 5 + ((size_t)buf[3] << 8 | buf[4]);
		if (rec > n)
			rec = n;
		snprintf(name, sizeof name, "%s-hello", tag);
		put_seed(name, 0x00, buf, rec);
		snprintf(name, sizeof name, "%s-hello-cut", tag);
		put_seed(name, 0x03, buf, rec / 2);
		snprintf(name, sizeof name, "%s-cut-late", tag);
		put_seed(name, 0x00, buf, n - n / 4);
	}
	if (s) {
		/* a resumption attempt with the ticket or session of the
		 * first connection */
		n = capture(cctx, s, ticket, buf, sizeof buf, NULL);
		snprintf(name, sizeof name, "%s-resume", tag);
		put_seed(name, 0x00, buf, n);
		wolfSSL_SESSION_free(s);
	}
}

static void header_file(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/fuzz_tls_certs.h", outdir);
	FILE *f = fopen(path, "w");
	MUST(f);
	char pem[8192], key[8192];
	MUST(tls_pem_encode("CERTIFICATE", srv_cert.der, srv_cert.len, pem, sizeof pem) > 0);
	MUST(tls_pki_key_pem(srv_cert.key, key, sizeof key) > 0);
	fprintf(f, "/*\n * tests/fuzz/fuzz_tls_certs.h - the fixed server certificate, its key and\n"
		" * the trust anchor of fuzz_tls (made by gen_tls_corpus.c with the seeds:\n"
		" * the seeds' client certificates are signed by this CA). Test data only.\n */\n"
		"#ifndef VOUCH_FUZZ_TLS_CERTS_H\n#define VOUCH_FUZZ_TLS_CERTS_H\n\n");
	fprintf(f, "static const char fuzz_tls_server_pem[] =\n");
	for (char *line = strtok(pem, "\n"); line; line = strtok(NULL, "\n"))
		fprintf(f, "\t\"%s\\n\"\n", line);
	fprintf(f, "\t;\n\nstatic const char fuzz_tls_server_key[] =\n");
	for (char *line = strtok(key, "\n"); line; line = strtok(NULL, "\n"))
		fprintf(f, "\t\"%s\\n\"\n", line);
	fprintf(f, "\t;\n\nstatic const unsigned char fuzz_tls_ca_der[] = {");
	for (size_t i = 0; i < dev_ca.len; i++)
		fprintf(f, "%s0x%02x,", i % 12 ? " " : "\n\t", dev_ca.der[i]);
	fprintf(f, "\n};\n\n#endif\n");
	fclose(f);
}

int main(int argc, char **argv)
{
	MUST(argc == 2);
	outdir = argv[1];
	now = (int64_t)time(NULL);
	wolfSSL_Init();
	int64_t nb = now - 86400, na = now + 20 * 365 * 86400LL;
	make(&srv_ca, TLS_PKI_ROOT_CA, "Fuzz Server CA", TLS_KEY_EC, 256, NULL, nb, na);
	make(&srv_cert, TLS_PKI_SERVER, "localhost", TLS_KEY_EC, 256, &srv_ca, nb, na);
	make(&dev_ca, TLS_PKI_ROOT_CA, "Fuzz Devices CA", TLS_KEY_EC, 256, NULL, nb, na);
	make(&dev_ec, TLS_PKI_DEVICE, "fuzz-ec", TLS_KEY_EC, 256, &dev_ca, nb, na);
	make(&dev_rsa, TLS_PKI_DEVICE, "fuzz-rsa", TLS_KEY_RSA, 2048, &dev_ca, nb, na);
	make(&inter, TLS_PKI_INTERMEDIATE_CA, "Fuzz Intermediate", TLS_KEY_EC, 256, &dev_ca, nb, na);
	make(&dev_inter, TLS_PKI_DEVICE, "fuzz-inter", TLS_KEY_EC, 256, &inter, nb, na);
	make(&other_ca, TLS_PKI_ROOT_CA, "Fuzz Other CA", TLS_KEY_EC, 256, NULL, nb, na);
	make(&dev_other, TLS_PKI_DEVICE, "fuzz-other", TLS_KEY_EC, 256, &other_ca, nb, na);
	make(&dev_expired, TLS_PKI_DEVICE, "fuzz-expired", TLS_KEY_EC, 256, &dev_ca,
	     now - 30 * 86400, now - 86400);
	make(&ca_leaf, TLS_PKI_INTERMEDIATE_CA, "Fuzz CA leaf", TLS_KEY_EC, 256, &dev_ca, nb, na);

	snprintf(dir, sizeof dir, "/tmp/gen_tls.XXXXXX");
	MUST(mkdtemp(dir));
	snprintf(cert_path, sizeof cert_path, "%s/server.crt", dir);
	snprintf(key_path, sizeof key_path, "%s/server.key", dir);
	write_pem_cert(cert_path, &srv_cert);
	write_pem_key(key_path, &srv_cert);
	char err[256];
	MUST(tls_server_new(&srv, cert_path, key_path, true, err, sizeof err) == 0);
	MUST(tls_server_add_ca_mt(srv, dev_ca.der, dev_ca.len) == 0);
	shard_init(&gsh);
	char path[512];
	snprintf(path, sizeof path, "%s/corpus/fuzz_tls", outdir);
	mkdir(path, 0755);
	header_file();

	static const struct {
		const char *tag;
		int v;
		const struct made *leaf, *extra;
		const struct made *key;     /* wrong key when set */
		const char *suites;
		bool ticket, cuts;
	} kinds[] = {
		{ "t13-ec", 0x0304, &dev_ec, NULL, NULL, NULL, false, true },
		{ "t12-ec", 0x0303, &dev_ec, NULL, NULL, NULL, false, true },
		{ "t12-ec-ticket", 0x0303, &dev_ec, NULL, NULL, NULL, true, false },
		{ "t13-rsa", 0x0304, &dev_rsa, NULL, NULL, NULL, false, false },
		{ "t12-rsa", 0x0303, &dev_rsa, NULL, NULL, NULL, true, false },
		{ "t13-chain", 0x0304, &dev_inter, &inter, NULL, NULL, false, false },
		{ "t12-chain", 0x0303, &dev_inter, &inter, NULL, NULL, false, true },
		{ "t13-nocert", 0x0304, NULL, NULL, NULL, NULL, false, false },
		{ "t12-nocert", 0x0303, NULL, NULL, NULL, NULL, false, false },
		{ "t12-expired", 0x0303, &dev_expired, NULL, NULL, NULL, false, false },
		{ "t12-caleaf", 0x0303, &ca_leaf, NULL, NULL, NULL, false, false },
		{ "t12-unknownca", 0x0303, &dev_other, NULL, NULL, NULL, false, false },
		{ "t12-wrongkey", 0x0303, &dev_ec, NULL, &dev_other, NULL, false, false },
		{ "t13-chacha", 0x0304, &dev_ec, NULL, NULL, "TLS13-CHACHA20-POLY1305-SHA256", false, false },
		{ "t13-aes256", 0x0304, &dev_ec, NULL, NULL, "TLS13-AES256-GCM-SHA384", false, false },
		{ "t12-chacha", 0x0303, &dev_ec, NULL, NULL, "ECDHE-ECDSA-CHACHA20-POLY1305", false, false },
		{ "t12-aes256", 0x0303, &dev_ec, NULL, NULL, "ECDHE-ECDSA-AES256-GCM-SHA384", false, false },
		{ "t12-nocommon", 0x0303, &dev_ec, NULL, NULL, "ECDHE-ECDSA-AES128-SHA256", false, false },
	};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		WOLFSSL_CTX *c = client_ctx(kinds[i].v, kinds[i].leaf, kinds[i].extra,
					    kinds[i].key ? kinds[i].key->key : NULL,
					    kinds[i].suites);
		seeds_for(kinds[i].tag, c, kinds[i].ticket, kinds[i].cuts);
		wolfSSL_CTX_free(c);
	}

	static const struct {
		const char *name;
		const char *p;
		size_t n;
		uint8_t control;
	} junk[] = {
		{ "junk-mqtt-connect", "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14, 0 },
		{ "junk-http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 0 },
		{ "junk-header-only", "\x16\x03\x01\x00\x40", 5, 0 },
		{ "junk-too-long", "\x16\x03\x01\xff\xff", 5, 0 },
		{ "junk-empty-hello", "\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9, 0 },
		{ "junk-alert", "\x15\x03\x01\x00\x02\x02\x28", 7, 0 },
		{ "junk-ccs", "\x14\x03\x03\x00\x01\x01", 6, 0 },
		{ "junk-appdata", "\x17\x03\x03\x00\x05hello", 10, 1 },
		{ "junk-sslv2", "\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10", 11, 0 },
		{ "junk-zero", "", 0, 0 },
	};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
		put_seed(junk[i].name, junk[i].control, (const uint8_t *)junk[i].p, junk[i].n);

	printf("gen_tls_corpus: %d seeds\n", nseeds);
	tls_server_free(srv);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	return 0;
}
