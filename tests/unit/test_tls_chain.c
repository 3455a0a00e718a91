/*
 * tests/unit/test_tls_chain.c - what vouch needs of the wolfSSL it links
 * about client chains, whichever build that is (Debian's, or WOLFSSL=asm's:
 * docs/wolfssl-asm.md).
 *
 * An intermediate CA registered alone as a trust anchor (its root not
 * registered): a device presenting leaf + intermediate, as most TLS
 * stacks do when configured with their chain file, must pass as one
 * presenting its leaf alone. wolfSSL verifies the presented intermediate
 * against its issuer, the unknown root, and only WOLFSSL_ALT_CERT_CHAINS
 * lets it fall back to the anchor; a build without it refuses these
 * devices with unknown_ca. Also: the same chain with the root registered
 * too, and a device of an unregistered CA, still refused.
 */
#include "tls_harness.h"

static struct made root, inter, dev, other_root, other_dev;
static struct shard sh;
static struct tls_server *srv;

/* Handshake and one record each way; 0, or the client's error. */
static int connect_dev(int version, const struct made *leaf, const struct made *extra,
		       const struct made *want_issuer)
{
	WOLFSSL_CTX *c = client_ctx(version, leaf, extra, NULL, NULL);
	struct link *l = calloc(1, sizeof *l);
	MUST(l);
	link_open(l, &sh, srv, c);
	l->up.echo = true;
	int e = handshake(l);
	if (e == 0)
		e = roundtrip(l, "CONNECT");
	if (e == 0) {
		const struct tls_identity *id = tls_conn_identity(l->c);
		CHECK(id != NULL);
		if (id) {
			CHECK(memcmp(id->cert_id, leaf->id, TLS_CERT_ID_LEN) == 0);
			CHECK_INT(id->issuer_der_len, want_issuer->len);
			CHECK(id->issuer_der &&
			      memcmp(id->issuer_der, want_issuer->der, want_issuer->len) == 0);
		}
	}
	link_close(l);
	free(l);
	wolfSSL_CTX_free(c);
	return e;
}

int main(void)
{
	now = (int64_t)time(NULL);
	MUST(wolfSSL_Init() == WOLFSSL_SUCCESS);
	struct made srv_cert;
	server_files("test_tls_chain", &srv_cert);
	make(&root, TLS_PKI_ROOT_CA, "Devices Root", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&inter, TLS_PKI_INTERMEDIATE_CA, "Devices Issuing", TLS_KEY_EC, 256, &root, 0, 0);
	make(&dev, TLS_PKI_DEVICE, "dev", TLS_KEY_EC, 256, &inter, 0, 0);
	make(&other_root, TLS_PKI_ROOT_CA, "Other Root", TLS_KEY_EC, 256, NULL, 0, 0);
	make(&other_dev, TLS_PKI_DEVICE, "other", TLS_KEY_EC, 256, &other_root, 0, 0);
	shard_init(&sh);
	char err[256] = "";
	MUST(tls_server_new(&srv, cert_path, key_path, true, err, sizeof err) == 0);
	MUST(tls_server_add_ca_mt(srv, inter.der, inter.len) == 0);

	for (int v = 0x0303; v <= 0x0304; v++) {
		CHECK_INT(connect_dev(v, &dev, NULL, &inter), 0);
		/* needs WOLFSSL_ALT_CERT_CHAINS */
		CHECK_INT(connect_dev(v, &dev, &inter, &inter), 0);
		CHECK(connect_dev(v, &other_dev, NULL, &other_root) != 0);
	}
	MUST(tls_server_add_ca_mt(srv, root.der, root.len) == 0);
	CHECK_INT(connect_dev(0x0304, &dev, &inter, &inter), 0);

	tls_server_free(srv);
	shard_fini(&sh);
	const struct made *all[] = { &srv_ca, &srv_cert, &root, &inter, &dev,
				     &other_root, &other_dev };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		tls_pki_key_free(all[i]->key);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	tls_thread_exit();
	if (failures) {
		fprintf(stderr, "test_tls_chain: %d failures\n", failures);
		return 1;
	}
	printf("test_tls_chain: ok\n");
	return 0;
}
