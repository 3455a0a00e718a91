#!/bin/bash
# tests/integration/test_pki_devices.sh - `vouchctl pki devices`, the bulk
# issuer for load tests, checked with the openssl CLI and Python's ssl
# (OpenSSL), not with vouch's own parser:
#   - 200 certificates with --threads 2 and --start 5: exactly dev5..dev204,
#     .crt 0644 and .key 0600, no chain or temporary files; every certificate
#     verifies against the CA (openssl verify), every key belongs to its
#     certificate (ssl load_cert_chain), CN = file name, serials unique and
#     16 bytes, EC P-256, and the extensions equal those of `pki device`;
#   - a second run without --force refuses (exit 1, one line on stderr) and
#     changes nothing, also when only part of the range exists; --force
#     replaces the files;
#   - a failure half-way (a target that is a directory, with --force)
#     removes the files the run wrote;
#   - bad flags: exit 2, one line on stderr, nothing on stdout, no directory.
#
# Runs from run.sh's "shell" phase or by hand:
#   VOUCH_BUILD=build/release bash tests/integration/test_pki_devices.sh
# Without the openssl CLI it says "skipped" and exits 0.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${VOUCH_BUILD:-build/release}
V="$B/vouchctl"
PY=/usr/bin/python3

if ! command -v openssl >/dev/null 2>&1; then
	echo "skipped: no openssl CLI"
	exit 0
fi
if [ ! -x "$V" ]; then
	echo "FAILED: no $V (build it first)"
	exit 1
fi

T=$(mktemp -d /tmp/vouch-pkidev.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/integration/shcheck.sh
# run DESC CMD... : must exit 0
run() {
	local desc=$1
	shift
	if timeout 120 "$@" >"$T/out" 2>"$T/err"; then
		pass
	else
		fail "$desc (exit $?)"
		sed 's/^/    /' "$T/out" "$T/err"
	fi
}
# refuse DESC CODE CMD... : must exit with CODE, one line on stderr, nothing on stdout
refuse() {
	local desc=$1 want=$2 rc
	shift 2
	timeout 120 "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" = "$want" ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" = 1 ]; then
		pass
	else
		fail "$desc: exit $rc (want $want), $(wc -l <"$T/err") lines on stderr, $(wc -c <"$T/out") bytes on stdout"
		sed 's/^/    /' "$T/out" "$T/err"
	fi
}
same() {
	if [ "$2" = "$3" ]; then pass; else fail "$1: '$2' != '$3'"; fi
}
has() {
	case "$2" in
	*"$3"*) pass ;;
	*) fail "$1: '$3' not in '$2'" ;;
	esac
}
# A listing of a directory with modes and contents: equal listings, equal trees.
snapshot() { (cd "$1" && find . -printf '%p %m %s\n' | sort && find . -type f -print0 | sort -z | xargs -0r sha256sum); }

P="$T/pki"
D="$P/devices"
run "ca" $V pki ca --out "$P" --name ca --cn "bulk test CA"
run "one device" $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" --name single

# ---- 200 certificates ---------------------------------------------------------------
run "devices --count 200 --threads 2" $V pki devices --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" \
	--out "$D" --count 200 --start 5 --threads 2
same "one summary line" "$(wc -l <"$T/out")" 1
has "summary" "$(cat "$T/out")" "200 certificates in "
has "summary threads" "$(cat "$T/out")" "2 threads"
same "nothing on stderr" "$(wc -c <"$T/err")" 0

same "400 files" "$(ls "$D" | wc -l)" 400
want=$(for i in $(seq 5 204); do echo "dev$i.crt"; echo "dev$i.key"; done | sort)
same "file names dev5..dev204" "$(ls "$D" | sort)" "$want"
same "certificate modes" "$(stat -c %a "$D"/*.crt | sort -u)" 644
same "key modes" "$(stat -c %a "$D"/*.key | sort -u)" 600

# openssl verify: one line "FILE: OK" per certificate
(cd "$D" && openssl verify -CAfile "$P/ca.crt" -purpose sslclient dev*.crt) >"$T/verify" 2>&1
same "openssl verify: all OK" "$(grep -c ': OK$' "$T/verify")" 200
same "openssl verify: nothing else" "$(grep -vc ': OK$' "$T/verify")" 0

# every key loads with its certificate (OpenSSL checks that they match); a
# crossed pair must not, or the check proves nothing
$PY - "$D" >"$T/py" 2>&1 <<'EOF'
import ssl, sys, os
d = sys.argv[1]
bad = 0
names = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".crt"))
for n in names:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_cert_chain(os.path.join(d, n + ".crt"), os.path.join(d, n + ".key"))
    except ssl.SSLError as e:
        print("mismatch", n, e)
        bad += 1
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
try:
    ctx.load_cert_chain(os.path.join(d, names[0] + ".crt"), os.path.join(d, names[1] + ".key"))
    print("crossed pair accepted")
    bad += 1
except ssl.SSLError:
    pass
print("pairs", len(names), "bad", bad)
EOF
same "keys match certificates" "$(tail -1 "$T/py")" "pairs 200 bad 0"

# CN, serial, curve of each certificate: one openssl run over all of them
for i in $(seq 5 204); do cat "$D/dev$i.crt"; done >"$T/all.pem"
openssl storeutl -noout -text -certs "$T/all.pem" 2>&1 | awk '
	/Serial Number:/ { getline; gsub(/ /, ""); serial = $0 }
	/^ *Subject: CN=/ { sub(/^ *Subject: CN=/, ""); cn = $0 }
	/NIST CURVE:/ { print cn, serial, $3 }' >"$T/parsed"
for i in $(seq 5 204); do echo "dev$i"; done | paste -d' ' - "$T/parsed" >"$T/fields"
same "200 certificates parsed" "$(wc -l <"$T/parsed")" 200
same "CN is the file name" "$(awk '$1 != $2' "$T/fields" | wc -l)" 0
same "serials unique" "$(awk '{print $3}' "$T/fields" | sort -u | wc -l)" 200
same "serials 16 bytes" "$(awk '{ if (split($3, b, ":") != 16) print }' "$T/fields" | wc -l)" 0
same "EC P-256" "$(awk '$4 != "P-256"' "$T/fields" | wc -l)" 0
ext() { openssl x509 -in "$1" -noout -ext basicConstraints,keyUsage,extendedKeyUsage 2>&1; }
same "profile of pki device" "$(ext "$D/dev77.crt")" "$(ext "$P/single.crt")"
same "issuer" "$(openssl x509 -in "$D/dev5.crt" -noout -issuer)" "$(openssl x509 -in "$P/single.crt" -noout -issuer)"
days=$(( ($(date -d "$(openssl x509 -in "$D/dev5.crt" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
same "365 days" "$days" 364

# ---- refusing to overwrite -----------------------------------------------------------
snapshot "$D" >"$T/before"
refuse "second run" 1 $V pki devices --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$D" \
	--count 200 --start 5 --threads 2
has "names the file" "$(cat "$T/err")" "exists (--force replaces it)"
refuse "overlapping range" 1 $V pki devices --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$D" \
	--count 10 --start 200
snapshot "$D" >"$T/after"
if cmp -s "$T/before" "$T/after"; then pass; else fail "a refused run changed $D"; diff "$T/before" "$T/after" | head; fi

run "--force" $V pki devices --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$D" \
	--count 3 --start 5 --force --json
has "--json" "$(cat "$T/out")" '"count":3'
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | sed 's/../&:/g; s/:$//' | tr A-F a-f; }
old_serial() { awk -v n="$1" '$1 == n {print $3}' "$T/fields"; }
s_new=$(serial "$D/dev5.crt")
[ -n "$s_new" ] && [ "$(old_serial dev5)" != "$s_new" ] && pass || fail "--force did not replace dev5.crt"
same "dev8 left alone" "$(serial "$D/dev8.crt")" "$(old_serial dev8)"
run "replaced pair verifies" openssl verify -CAfile "$P/ca.crt" "$D/dev5.crt"
same "still 400 files" "$(ls "$D" | wc -l)" 400

# ---- a failure half-way takes back what it wrote -------------------------------------
F="$T/half"
mkdir -p "$F/x40.key"
refuse "target is a directory" 1 $V pki devices --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$F" \
	--prefix x --count 80 --threads 2 --force
has "reason" "$(cat "$T/err")" "x40.key"
same "files removed" "$(ls "$F")" "x40.key"

# ---- usage -------------------------------------------------------------------------
U="$T/unused"
C=(--ca-cert "$P/ca.crt" --ca-key "$P/ca.key")
refuse "no --count" 2 $V pki devices "${C[@]}" --out "$U"
refuse "no --out" 2 $V pki devices "${C[@]}" --count 5
refuse "no --ca-key" 2 $V pki devices --ca-cert "$P/ca.crt" --out "$U" --count 5
refuse "--count 0" 2 $V pki devices "${C[@]}" --out "$U" --count 0
refuse "--count x" 2 $V pki devices "${C[@]}" --out "$U" --count x
refuse "--count 10000001" 2 $V pki devices "${C[@]}" --out "$U" --count 10000001
refuse "--threads 0" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --threads 0
refuse "--threads 257" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --threads 257
refuse "--days 0" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --days 0
refuse "--start -1" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --start -1
refuse "--start past the end" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --start 999999999
refuse "--prefix with /" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --prefix a/b
refuse "--prefix empty" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --prefix ""
refuse "--prefix too long" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --prefix "$(printf 'p%.0s' $(seq 64))"
refuse "unknown flag" 2 $V pki devices "${C[@]}" --out "$U" --count 5 --name x
refuse "operand" 2 $V pki devices "${C[@]}" --out "$U" --count 5 extra
refuse "--count without value" 2 $V pki devices "${C[@]}" --out "$U" --count
[ -e "$U" ] && fail "a usage error created $U" || pass
refuse "missing CA" 1 $V pki devices --ca-cert "$T/none" --ca-key "$P/ca.key" --out "$U" --count 5
refuse "CA key of another CA" 1 $V pki devices --ca-cert "$P/ca.crt" --ca-key "$D/dev6.key" --out "$U" --count 5
refuse "device as CA" 1 $V pki devices --ca-cert "$D/dev6.crt" --ca-key "$D/dev6.key" --out "$U" --count 5
[ -e "$U" ] && fail "a refused run created $U" || pass
run "--help" $V pki devices --help
has "--help says no fsync" "$(cat "$T/out")" "without fsync"
run "pki --help" $V pki --help
has "pki --help lists devices" "$(cat "$T/out")" "devices"

summary
