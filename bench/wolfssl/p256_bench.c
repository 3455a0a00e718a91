/*
 * bench/wolfssl/p256_bench.c - P-256 operations per second of the wolfSSL
 * vouch links: ECDSA sign, ECDSA verify, ECDH, each on one thread for
 * --seconds. Built per config (build/<config>/p256-bench), so the default
 * build measures Debian's libwolfssl and WOLFSSL=asm the SP assembly one.
 * The numbers are what a handshake costs the broker: a TLS 1.3 mutual-auth
 * handshake signs once (CertificateVerify), verifies twice (the client's
 * leaf, unless cached, and its CertificateVerify) and does one ECDH.
 *
 * Verify and ECDH are measured twice: against one key, and against
 * NKEYS keys in turn. Debian's build has FP_ECC, a per-thread cache of
 * precomputed tables for the last points used (15): it flatters the
 * one-key figures, while a broker verifies each device's own key and
 * does ECDH with a fresh ephemeral key every handshake (the "_many"
 * figures). The CA's key is one key, though: the leaf check is the
 * one-key case.
 *
 *   p256-bench [--seconds S]     one line of JSON
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define NKEYS 64

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "p256-bench: %s failed\n", what);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	double secs = 1.0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			secs = atof(argv[++i]);
		} else {
			fprintf(stderr, "p256-bench: unknown argument '%s' (--seconds S)\n", argv[i]);
			return 2;
		}
	}
	if (secs <= 0 || secs > 60) {
		fprintf(stderr, "p256-bench: --seconds must be in (0, 60]\n");
		return 2;
	}
	WC_RNG rng;
	ecc_key a, b;
	must(wc_InitRng(&rng) == 0, "wc_InitRng");
	must(wc_ecc_init(&a) == 0 && wc_ecc_init(&b) == 0, "wc_ecc_init");
	must(wc_ecc_make_key_ex(&rng, 32, &a, ECC_SECP256R1) == 0, "make_key a");
	must(wc_ecc_make_key_ex(&rng, 32, &b, ECC_SECP256R1) == 0, "make_key b");
#ifdef ECC_TIMING_RESISTANT
	wc_ecc_set_rng(&a, &rng);
	wc_ecc_set_rng(&b, &rng);
#endif
	uint8_t hash[32], sig[ECC_MAX_SIG_SIZE], secret[32];
	memset(hash, 0x5a, sizeof hash);
	word32 sig_len = sizeof sig;
	long n_sign = 0, n_verify = 0, n_ecdh = 0, n_verify_m = 0, n_ecdh_m = 0;
	static ecc_key many[NKEYS];
	static uint8_t msig[NKEYS][ECC_MAX_SIG_SIZE];
	static word32 msig_len[NKEYS];
	for (int k = 0; k < NKEYS; k++) {
		must(wc_ecc_init(&many[k]) == 0, "wc_ecc_init");
		must(wc_ecc_make_key_ex(&rng, 32, &many[k], ECC_SECP256R1) == 0, "make_key");
#ifdef ECC_TIMING_RESISTANT
		wc_ecc_set_rng(&many[k], &rng);
#endif
		msig_len[k] = sizeof msig[k];
		must(wc_ecc_sign_hash(hash, sizeof hash, msig[k], &msig_len[k], &rng,
				      &many[k]) == 0, "sign");
	}

	double t0 = now_s(), t;
	do {
		for (int k = 0; k < 16; k++) {
			sig_len = sizeof sig;
			must(wc_ecc_sign_hash(hash, sizeof hash, sig, &sig_len, &rng, &a) == 0,
			     "sign");
		}
		n_sign += 16;
	} while ((t = now_s()) - t0 < secs);
	double sign_s = n_sign / (t - t0);

	t0 = now_s();
	do {
		for (int k = 0; k < 16; k++) {
			int ok = 0;
			must(wc_ecc_verify_hash(sig, sig_len, hash, sizeof hash, &ok, &a) == 0 &&
			     ok == 1, "verify");
		}
		n_verify += 16;
	} while ((t = now_s()) - t0 < secs);
	double verify_s = n_verify / (t - t0);

	t0 = now_s();
	do {
		for (int k = 0; k < 16; k++) {
			word32 slen = sizeof secret;
			must(wc_ecc_shared_secret(&a, &b, secret, &slen) == 0, "ecdh");
		}
		n_ecdh += 16;
	} while ((t = now_s()) - t0 < secs);
	double ecdh_s = n_ecdh / (t - t0);

	t0 = now_s();
	do {
		for (int k = 0; k < NKEYS; k++) {
			int ok = 0;
			must(wc_ecc_verify_hash(msig[k], msig_len[k], hash, sizeof hash, &ok,
						&many[k]) == 0 && ok == 1, "verify");
		}
		n_verify_m += NKEYS;
	} while ((t = now_s()) - t0 < secs);
	double verify_m_s = n_verify_m / (t - t0);

	t0 = now_s();
	do {
		for (int k = 0; k < NKEYS; k++) {
			word32 slen = sizeof secret;
			must(wc_ecc_shared_secret(&a, &many[k], secret, &slen) == 0, "ecdh");
		}
		n_ecdh_m += NKEYS;
	} while ((t = now_s()) - t0 < secs);
	double ecdh_m_s = n_ecdh_m / (t - t0);

#ifdef WOLFSSL_SP_X86_64_ASM
	const char *impl = "sp-x86_64-asm";
#elif defined(WOLFSSL_HAVE_SP_ECC)
	const char *impl = "sp-c";
#else
	const char *impl = "generic";
#endif
	printf("{\"impl\":\"%s\",\"sign_per_s\":%.0f,\"verify_per_s\":%.0f,"
	       "\"ecdh_per_s\":%.0f,\"verify_many_per_s\":%.0f,\"ecdh_many_per_s\":%.0f}\n",
	       impl, sign_s, verify_s, ecdh_s, verify_m_s, ecdh_m_s);
	for (int k = 0; k < NKEYS; k++)
		wc_ecc_free(&many[k]);
	wc_ecc_free(&a);
	wc_ecc_free(&b);
	wc_FreeRng(&rng);
	return 0;
}
