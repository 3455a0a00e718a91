#!/bin/sh
# Build wolfSSL from Debian's own source package (the version libwolfssl-dev
# has, with Debian's patches applied) with wolfSSL's x86-64 assembly for
# P-256 (SP math), and install it under build/wolfssl-asm/ for
# `make WOLFSSL=asm`. Debian's build has no SP assembly: with it a core
# signs about 3x as many P-256 signatures, and verifies 5x as many with
# fresh keys (docs/wolfssl-asm.md).
#
# Idempotent: does nothing when build/wolfssl-asm/ already holds a build of
# the same Debian version with the same configure flags.
#
#   scripts/wolfssl-asm.sh            build (if needed)
#   WOLFSSL_ASM_FEATURES=debian ...   Debian's full feature set (--enable-distro)
#                                     instead of the smaller one vouch needs
#   WOLFSSL_ASM_EXTRA="--flag -DX=1"  more configure flags / -D defines (e.g.
#                                     -DMAX_CHAIN_DEPTH=4, docs/wolfssl-asm.md)
#   WOLFSSL_ASM_DIR=DIR               install there (default build/wolfssl-asm;
#                                     the source tree goes to DIR-src)
#   JOBS=N                            parallel make (default 2)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${WOLFSSL_ASM_DIR:-$ROOT/build/wolfssl-asm}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
WORK=$OUT-src
JOBS=${JOBS:-2}
FEATURES=${WOLFSSL_ASM_FEATURES:-lean}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

say() { echo "wolfssl-asm: $*"; }
die() { echo "wolfssl-asm: $*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the SP assembly is x86-64 only (this is $(uname -m))"

# The same version as Debian's library, so that headers, ABI and patches
# match what the default build links.
VER=$(dpkg-query -W -f='${source:Version}' libwolfssl-dev 2>/dev/null) ||
	die "libwolfssl-dev is not installed (run make deps first)"
[ -n "$VER" ] || die "cannot tell the version of libwolfssl-dev"

# Tools: dpkg-source (dpkg-dev) unpacks and patches, dpkg-buildflags gives
# Debian's flags; the orig tarball has no configure script, so autoreconf
# too (Debian's build does the same).
missing=""
for p in dpkg-dev autoconf automake libtool make gcc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing$missing"
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# SP math with the x86-64 assembly (P-256/P-384 and RSA/DH of common
# sizes), AES-NI/AVX for AES-GCM, SHA-2 and ChaCha20-Poly1305.
ASM_FLAGS="--enable-sp=yes --enable-sp-asm --enable-intelasm"

# What Debian's debian/rules passes.
DEBIAN_FLAGS="--enable-distro --enable-pkcs11 --disable-examples"

# What vouch's code calls, and nothing that costs memory per connection
# without a caller (see docs/wolfssl-asm.md for which call needs which):
#   opensslextra   verify_cb (wolfSSL_X509_STORE_CTX_get_ex_data), the
#                  TLS 1.2 session cache (wolfSSL_i2d/d2i_SSL_SESSION,
#                  wolfSSL_SESSION_get_id), the tests' wolfSSL_get1_session
#   (no sessioncerts: tls/server.c copies the client's chain in its verify
#   callback for the handshake only; SESSION_CERTS would keep 2 x 9 x 2 KB
#   in every connection's WOLFSSL_SESSION for its whole life)
#   atomicuser     wolfSSL_GetServerWriteKey/IV (tls_conn_refuse's alert)
#   pkcallbacks    wolfSSL_CTX_SetEccVerifyCb (skipping known signatures)
#   session-ticket, certgen/certreq/certext/keygen (tls/pki.c), ...
LEAN_FLAGS="--enable-shared --enable-static --disable-examples
 --enable-tls13 --enable-session-ticket --enable-extended-master
 --enable-supportedcurves --enable-secure-renegotiation-info
 --enable-ecc --enable-eccshamir --enable-fpecc --enable-curve25519 --enable-rsa --enable-rsapss --enable-aesgcm
 --enable-chacha --enable-poly1305 --enable-sha384 --enable-sha512
 --enable-certgen --enable-certreq --enable-certext --enable-keygen
 --enable-opensslextra --enable-atomicuser
 --enable-pkcallbacks --enable-altcertchains --disable-oldtls --disable-dtls"
# FP_ECC: with SP math, a per-thread cache (static, ~256 KB) of tables for
# the last points used (the CA keys of device certificates): P-256 verify
# and ECDH about 2x (docs/wolfssl-asm.md).
# X25519: what OpenSSL clients (mosquitto, Python) send as their TLS 1.3
# key share; without it every such handshake takes a HelloRetryRequest.
# Behaviour vouch relies on (Debian gets these through --enable-all):
# subjectAltName in wc_MakeCert (tls/pki.c);
# the verify callback sees every certificate, successes included; external
# session cache callbacks; ex_data on X509_STORE_CTX; the ticket layout.
LEAN_DEFS="-DWOLFSSL_ALT_NAMES -DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_VERIFY_CB_ALL_CERTS
 -DHAVE_EXT_CACHE -DHAVE_EX_DATA -DWOLFSSL_TICKET_HAVE_ID
 -DWOLFSSL_FORCE_CACHE_ON_TICKET -DNO_SESSION_CACHE_REF
 -DWOLFSSL_TLS13_NO_PEEK_HANDSHAKE_DONE -DWOLFSSL_EXTRA_ALERTS"

case $FEATURES in
debian) FLAGS="$DEBIAN_FLAGS $ASM_FLAGS"; DEFS="" ;;
lean)   FLAGS="$LEAN_FLAGS $ASM_FLAGS"; DEFS=$LEAN_DEFS ;;
*)      die "WOLFSSL_ASM_FEATURES must be lean or debian, not '$FEATURES'" ;;
esac
for x in ${WOLFSSL_ASM_EXTRA:-}; do
	case $x in
	-D*|-U*) DEFS="$DEFS $x" ;;
	--*)     FLAGS="$FLAGS $x" ;;
	*)       die "WOLFSSL_ASM_EXTRA: '$x' is neither --configure-flag nor -DDEFINE" ;;
	esac
done
# one line each (configure caches these; a newline upsets it)
FLAGS=$(printf '%s' "$FLAGS" | tr -s ' \n' '  ')
DEFS=$(printf '%s' "$DEFS" | tr -s ' \n' '  ')
# Debian's hardening flags (debian/rules: hardening=+all).
BASE_CFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
BASE_CPPFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)
BASE_LDFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
STAMP_WANT=$(printf '%s\n' "version $VER" "features $FEATURES" "flags $FLAGS" \
	"defs $DEFS" "cflags $BASE_CFLAGS $BASE_CPPFLAGS" | tr -s ' \n' ' ')

if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP_WANT" ] &&
   [ -f "$OUT/lib/libwolfssl.a" ]; then
	exit 0
fi
say "building wolfSSL $VER ($FEATURES features + SP x86-64 assembly) into $OUT"


# apt-get source needs a deb-src entry. Debian 12's deb822 file has
# "Types: deb" only: add the same URIs and suites as deb-src, in a file of
# our own (nothing else is touched).
has_src() {
	grep -qsE '^[[:space:]]*Types:.*deb-src' /etc/apt/sources.list.d/*.sources ||
		grep -qsE '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list \
			/etc/apt/sources.list.d/*.list
}
need_update=0
if ! has_src; then
	src=/etc/apt/sources.list.d/vouch-deb-src.sources
	say "adding deb-src entries ($src)"
	tmp=$(mktemp)
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
		     /Types:[^\n]*deb/ && /URIs:[^\n]*debian\.org/ {
			gsub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >>"$tmp"
	done
	if [ -f /etc/apt/sources.list ]; then
		sed -n 's/^[[:space:]]*deb[[:space:]]\(.*debian\.org.*\)/deb-src \1/p' \
			/etc/apt/sources.list >>"$tmp"
	fi
	[ -s "$tmp" ] || { rm -f "$tmp"; die "no Debian apt source found to add deb-src for"; }
	$SUDO install -m 0644 "$tmp" "$src"
	rm -f "$tmp"
	need_update=1
fi
if [ $need_update = 1 ]; then
	$SUDO apt-get update -qq
fi

# Fresh source tree every time (a half-built tree is not worth trusting).
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
apt-get source -qq "wolfssl=$VER" >get.log 2>&1 || { cat get.log >&2; die "apt-get source wolfssl=$VER failed"; }
SRC=$(find . -maxdepth 1 -type d -name 'wolfssl-*' | head -n 1)
if [ -z "$SRC" ] || [ ! -f "$SRC/configure.ac" ]; then
	die "no unpacked source in $WORK"
fi
cd "$SRC"
say "autoreconf, configure"
autoreconf -fi >"$WORK/autoreconf.log" 2>&1 || { tail -20 "$WORK/autoreconf.log" >&2; die "autoreconf failed"; }
# shellcheck disable=SC2086
./configure --prefix="$OUT" --libdir="$OUT/lib" $FLAGS \
	CFLAGS="$BASE_CFLAGS" CPPFLAGS="$BASE_CPPFLAGS $DEFS" LDFLAGS="$BASE_LDFLAGS" \
	>"$WORK/configure.log" 2>&1 || { tail -30 "$WORK/configure.log" >&2; die "configure failed (see $WORK/configure.log)"; }
grep -q 'WOLFSSL_SP_X86_64_ASM' wolfssl/options.h ||
	die "configure did not enable the SP x86-64 assembly (see $WORK/configure.log)"
say "make -j$JOBS (a few minutes)"
make -j"$JOBS" >"$WORK/make.log" 2>&1 || { tail -30 "$WORK/make.log" >&2; die "make failed (see $WORK/make.log)"; }
rm -rf "$OUT"
make install >"$WORK/install.log" 2>&1 || { tail -20 "$WORK/install.log" >&2; die "make install failed"; }
# --enable-distro does not install options.h (Debian's package adds it):
# without it vouch would compile against /usr/include's and link this.
[ -f "$OUT/include/wolfssl/options.h" ] || install -m 0644 wolfssl/options.h "$OUT/include/wolfssl/"
# wolfSSL's own benchmark stays in the source tree (its libtool wrapper
# runs it against this build, not Debian's library of the same soname):
#   build/wolfssl-asm-src/wolfssl-*/wolfcrypt/benchmark/benchmark -ecc -p256
printf '%s' "$STAMP_WANT" >"$OUT/.stamp"
say "done: $OUT (options: $OUT/include/wolfssl/options.h)"
