/*
 * tests/fuzz/fuzz_tls.c - libFuzzer harness for what a client can send to a
 * TLS listener before it is authenticated: the transport's input path
 * (tls/conn.c: buffering, partial records, the handshake driver) and what
 * wolfSSL calls back into during it (tls/server.c: the ticket decryption
 * of pre-shared-key identities, the session-ID cache lookup, the verify
 * callback on the client's chain, the PK verify callback with the
 * fingerprint hook).
 *
 * Input: one control byte, then the bytes the client sends. Control: bits
 * 0-6 the size of the pieces they are fed in (0: all at once), bit 7 the
 * fingerprint hook says "known" for every certificate. The server is a real
 * tls_server on a fake shard (tests/unit/tls_harness.h); its trust anchor
 * and certificate are fixed (fuzz_tls_certs.h) so that the client
 * certificates in the seeds verify: a TLS 1.2 client's Certificate message
 * is in the clear and is parsed and verified whatever the server's random
 * was, so the seeds' second flights reach the verify callback.
 *
 * Invariants checked (abort on breach): no plaintext reaches the layer
 * above before the handshake is done; the connection closes exactly once;
 * nothing but wire bytes sits in its output after a flush.
 *
 * Corpus: tests/fuzz/corpus/fuzz_tls/, made by tests/fuzz/gen_tls_corpus.c
 * (see there) from real wolfSSL client flights of every kind, plus junk.
 */
#include "../unit/tls_harness.h"
#include "fuzz_tls_certs.h"

static struct tls_server *fz_srv;
static struct shard fz_sh;
static bool fz_known;

static bool fz_known_cb(void *ctx, const uint8_t id[TLS_CERT_ID_LEN])
{
	(void)ctx;
	(void)id;
	return fz_known;
}

static void fz_cleanup(void)
{
	tls_server_free(fz_srv);
	fz_srv = NULL;
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	free(fz_sh.conns);
	free(fz_sh.free_slots);
	timer_free(&fz_sh.timers);
	tls_thread_exit();
}

static void fz_setup(void)
{
	if (fz_srv)
		return;
	wolfSSL_Init();
	snprintf(dir, sizeof dir, "/tmp/fuzz_tls.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(cert_path, sizeof cert_path, "%s/server.crt", dir);
	snprintf(key_path, sizeof key_path, "%s/server.key", dir);
	if (tls_pki_file_write(cert_path, fuzz_tls_server_pem, strlen(fuzz_tls_server_pem),
			       0644, true) != 0 ||
	    tls_pki_file_write(key_path, fuzz_tls_server_key, strlen(fuzz_tls_server_key),
			       0600, true) != 0)
		abort();
	char err[256];
	if (tls_server_new(&fz_srv, cert_path, key_path, true, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_tls: %s\n", err);
		abort();
	}
	if (tls_server_add_ca_mt(fz_srv, fuzz_tls_ca_der, sizeof fuzz_tls_ca_der) != 0)
		abort();
	tls_server_set_known_mt(fz_srv, fz_known_cb, NULL);
	shard_init(&fz_sh);
	atexit(fz_cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_setup();
	if (size == 0)
		return 0;
	size_t piece = data[0] & 0x7f;
	fz_known = data[0] & 0x80;
	data++;
	size--;
	struct upper *up = calloc(1, sizeof *up);
	if (!up)
		abort();
	struct conn *c = fake_conn(&fz_sh, up);
	if (tls_conn_start(&fz_sh, c, fz_srv) != 0)
		abort();
	uint32_t slot = c->slot;
	bool alive = true;          /* c not freed (a close may free it) */
	size_t off = 0;
	while (off < size && c->state == CONN_OPEN) {
		size_t n = size - off;
		if (piece && n > piece)
			n = piece;
		/* a buffer that dies after the call, as a ring buffer does */
		uint8_t *tmp = malloc(n);
		if (!tmp)
			abort();
		memcpy(tmp, data + off, n);
		int rc = c->tr->on_bytes(&fz_sh, c, tmp, (uint32_t)n);
		free(tmp);
		off += n;
		if (rc != 0) {
			conn_close(&fz_sh, c, true);
			alive = fz_sh.conns[slot] == c;
			break;
		}
	}
	if (alive) {
		if (!tls_conn_handshake_done(c) && up->got_len != 0)
			abort();
		if (c->seg_n && c->tr->on_flush(&fz_sh, c) != 0)
			abort();
		for (uint32_t i = 0; i < c->seg_n; i++)
			if (!c->segs[(c->seg_head + i) % c->seg_cap].wire)
				abort();
		conn_close(&fz_sh, c, false);
	}
	if (up->closed != 1)
		abort();
	free(up);
	return 0;
}
