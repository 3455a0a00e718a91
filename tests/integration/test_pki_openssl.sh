#!/bin/bash
# tests/integration/test_pki_openssl.sh - cross-checks `vouchctl pki` with
# the openssl CLI, the tool the clouds' guides use: openssl must verify the
# chains vouchctl builds (root -> device, root -> intermediate -> device),
# find the fields where we put them, match keys with certificates, accept our
# CSRs, and refuse expired and not-yet-valid certificates; vouchctl in turn
# must sign openssl's CSRs with openssl's CA and key, and refuse a tampered
# CSR. Also checks vouchctl's usage and error conventions (exit 2 / 1, one
# line on stderr) and file modes.
#
# Runs from run.sh's "shell" phase or by hand:
#   VOUCH_BUILD=build/release bash tests/integration/test_pki_openssl.sh
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

T=$(mktemp -d /tmp/vouch-pki.XXXXXX)
trap 'rm -rf "$T"' EXIT
P="$T/pki"
. tests/integration/shcheck.sh
# run DESC CMD... : must exit 0
run() {
	local desc=$1
	shift
	if "$@" >"$T/out" 2>"$T/err"; then
		pass
	else
		fail "$desc (exit $?)"
		sed 's/^/    /' "$T/out" "$T/err"
	fi
}
# refuse DESC CODE CMD... : must exit with CODE
refuse() {
	local desc=$1 want=$2 rc
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" = "$want" ]; then
		pass
	else
		fail "$desc: exit $rc, want $want"
		sed 's/^/    /' "$T/out" "$T/err"
	fi
}
# same DESC A B : two strings equal
same() {
	if [ "$2" = "$3" ]; then
		pass
	else
		fail "$1: '$2' != '$3'"
	fi
}
# has DESC HAYSTACK NEEDLE
has() {
	case "$2" in
	*"$3"*) pass ;;
	*) fail "$1: '$3' not in '$2'" ;;
	esac
}
json() { # FILE KEY -> value of KEY in the JSON object (or first array element)
	$PY -c 'import json,sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
v = d[sys.argv[2]]
print("null" if v is None else (str(v).lower() if isinstance(v, bool) else v))' "$1" "$2"
}
der_sha256() { openssl x509 -in "$1" -outform der | sha256sum | cut -d' ' -f1; }
pub_of_cert() { openssl x509 -in "$1" -noout -pubkey; }
pub_of_key() { openssl pkey -in "$1" -pubout; }

# ---- a root CA (EC) ------------------------------------------------------
run "pki ca" $V --json pki ca --out "$P" --cn "Vouch Root" --o vouch --c CN
cp "$T/out" "$T/ca.json"
same "ca subject" "$(openssl x509 -in "$P/ca.crt" -noout -subject)" \
	"subject=C = CN, O = vouch, CN = Vouch Root"
has "ca basicConstraints" "$(openssl x509 -in "$P/ca.crt" -noout -ext basicConstraints)" "CA:TRUE"
has "ca keyUsage" "$(openssl x509 -in "$P/ca.crt" -noout -ext keyUsage)" \
	"Certificate Sign, CRL Sign"
run "ca self-verifies" openssl verify -CAfile "$P/ca.crt" "$P/ca.crt"
same "ca key matches" "$(pub_of_key "$P/ca.key")" "$(pub_of_cert "$P/ca.crt")"
run "ca key checks" openssl pkey -in "$P/ca.key" -noout -check
same "ca key is PKCS#8" "$(head -1 "$P/ca.key")" "-----BEGIN PRIVATE KEY-----"
same "ca key mode" "$(stat -c %a "$P/ca.key")" 600
same "ca cert mode" "$(stat -c %a "$P/ca.crt")" 644
same "ca id" "$(json "$T/ca.json" id)" "$(der_sha256 "$P/ca.crt")"
same "ca serial" "$(json "$T/ca.json" serial)" \
	"$(openssl x509 -in "$P/ca.crt" -noout -serial | cut -d= -f2 | tr A-F a-f)"
same "ca skid" "$(json "$T/ca.json" skid)" \
	"$(openssl x509 -in "$P/ca.crt" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :' | tr A-F a-f)"

# ---- an RSA intermediate -------------------------------------------------
run "pki intermediate" $V pki intermediate --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" \
	--out "$P" --name inter --cn "Vouch Intermediate" --key rsa --bits 3072
has "inter pathlen" "$(openssl x509 -in "$P/inter.crt" -noout -ext basicConstraints)" \
	"CA:TRUE, pathlen:0"
run "inter verifies" openssl verify -CAfile "$P/ca.crt" "$P/inter.crt"
same "inter key matches" "$(pub_of_key "$P/inter.key")" "$(pub_of_cert "$P/inter.crt")"
same "inter issuer is ca subject" "$(openssl x509 -in "$P/inter.crt" -noout -issuer_hash)" \
	"$(openssl x509 -in "$P/ca.crt" -noout -subject_hash)"
has "inter is RSA 3072" "$(openssl x509 -in "$P/inter.crt" -noout -text)" "Public-Key: (3072 bit)"

# ---- devices -------------------------------------------------------------
run "device via intermediate" $V --json pki device --ca-cert "$P/inter.crt" \
	--ca-key "$P/inter.key" --out "$P" --name dev1 --o IoV --ou MQTT --chain "$P/ca.crt"
cp "$T/out" "$T/dev1.json"
run "device chain verifies" openssl verify -CAfile "$P/ca.crt" -untrusted "$P/inter.crt" \
	-purpose sslclient "$P/dev1.crt"
refuse "device without the intermediate" 2 openssl verify -CAfile "$P/ca.crt" "$P/dev1.crt"
run "device chain file verifies" openssl verify -CAfile "$P/ca.crt" \
	-untrusted "$P/dev1.chain.crt" "$P/dev1.crt"
same "chain file: device, intermediate, root" "$(grep -c 'BEGIN CERTIFICATE' "$P/dev1.chain.crt")" 3
same "chain file starts with the device" \
	"$(openssl x509 -in "$P/dev1.chain.crt" -outform der | sha256sum | cut -d' ' -f1)" \
	"$(der_sha256 "$P/dev1.crt")"
same "device subject" "$(openssl x509 -in "$P/dev1.crt" -noout -subject)" \
	"subject=O = IoV, OU = MQTT, CN = dev1"
same "device id is SHA-256 of DER" "$(json "$T/dev1.json" id)" "$(der_sha256 "$P/dev1.crt")"
same "device key matches" "$(pub_of_key "$P/dev1.key")" "$(pub_of_cert "$P/dev1.crt")"
has "device EKU" "$(openssl x509 -in "$P/dev1.crt" -noout -ext extendedKeyUsage)" \
	"TLS Web Client Authentication"
has "device keyUsage" "$(openssl x509 -in "$P/dev1.crt" -noout -ext keyUsage)" "Digital Signature"
has "device CA:FALSE" "$(openssl x509 -in "$P/dev1.crt" -noout -ext basicConstraints)" "CA:FALSE"
same "device AKID = intermediate SKID" \
	"$(openssl x509 -in "$P/dev1.crt" -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ')" \
	"$(openssl x509 -in "$P/inter.crt" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')"
run "device valid now" openssl x509 -in "$P/dev1.crt" -noout -checkend 0
same "dev1 key mode" "$(stat -c %a "$P/dev1.key")" 600

run "RSA device" $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" \
	--name dev2 --key rsa --cn SN0001 --o IoV --c CN --st ZheJiang --l HangZhou --days 30
run "RSA device verifies" openssl verify -CAfile "$P/ca.crt" -purpose sslclient "$P/dev2.crt"
same "RSA modulus matches" "$(openssl rsa -in "$P/dev2.key" -noout -modulus 2>/dev/null)" \
	"$(openssl x509 -in "$P/dev2.crt" -noout -modulus)"
has "RSA keyUsage" "$(openssl x509 -in "$P/dev2.crt" -noout -ext keyUsage)" \
	"Digital Signature, Key Encipherment"
same "RSA device subject" "$(openssl x509 -in "$P/dev2.crt" -noout -subject)" \
	"subject=C = CN, ST = ZheJiang, L = HangZhou, O = IoV, CN = SN0001"
same "chain file: device and root" "$(grep -c 'BEGIN CERTIFICATE' "$P/dev2.chain.crt")" 2
has "30 days" "$(openssl x509 -in "$P/dev2.crt" -noout -checkend $((29 * 86400)) ; echo rc=$?)" "rc=0"
has "not 31 days" "$(openssl x509 -in "$P/dev2.crt" -noout -checkend $((31 * 86400)) ; echo rc=$?)" "rc=1"

run "expired device" $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" \
	--name old --expired
refuse "expired refused by openssl" 2 openssl verify -CAfile "$P/ca.crt" "$P/old.crt"
has "expired reason" "$(cat "$T/out" "$T/err")" "certificate has expired"
refuse "expired by checkend" 1 openssl x509 -in "$P/old.crt" -noout -checkend 0

run "future device" $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" \
	--name future --not-before-days 2 --days 10
refuse "not yet valid refused by openssl" 2 openssl verify -CAfile "$P/ca.crt" "$P/future.crt"
has "not yet valid reason" "$(cat "$T/out" "$T/err")" "certificate is not yet valid"

run "given serial" $V --json pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" \
	--name ser --serial 00:C0:FF:EE:01
same "serial" "$(openssl x509 -in "$P/ser.crt" -noout -serial)" "serial=C0FFEE01"

# ---- server and verification certificates -------------------------------
run "server" $V pki server --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" --name broker
has "server SAN" "$(openssl x509 -in "$P/broker.crt" -noout -ext subjectAltName)" \
	"DNS:localhost, IP Address:127.0.0.1"
run "server verifies for TLS servers" openssl verify -CAfile "$P/ca.crt" -purpose sslserver \
	-verify_hostname localhost "$P/broker.crt"
run "server verifies for 127.0.0.1" openssl verify -CAfile "$P/ca.crt" -verify_ip 127.0.0.1 \
	"$P/broker.crt"

run "other CA" $V pki ca --out "$T/other" --cn "Vouch Root"
CODE=3f9a1c0e5b7d4a2f8e6c1b0a9d8e7f6a
run "verification" $V --json pki verification --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" \
	--code $CODE --out "$P"
same "verification CN is the code" "$(openssl x509 -in "$P/verification.crt" -noout -subject)" \
	"subject=CN = $CODE"
run "verification signed by the CA key" openssl verify -CAfile "$P/ca.crt" "$P/verification.crt"
refuse "verification not signed by another CA key" 2 openssl verify -CAfile "$T/other/ca.crt" \
	"$P/verification.crt"
refuse "verification key is its own" 1 cmp -s <(pub_of_key "$P/verification.key") \
	<(pub_of_cert "$P/ca.crt")

# ---- CSRs ------------------------------------------------------------------
run "pki csr" $V pki csr --key-out "$P/c.key" --cn "csr device" --o IoV --key rsa --out "$P/c.csr"
run "openssl verifies our CSR" openssl req -in "$P/c.csr" -noout -verify
same "CSR subject" "$(openssl req -in "$P/c.csr" -noout -subject)" "subject=O = IoV, CN = csr device"
same "CSR key matches" "$(openssl req -in "$P/c.csr" -noout -pubkey)" "$(pub_of_key "$P/c.key")"
run "sign our CSR" $V pki sign-csr --ca-cert "$P/inter.crt" --ca-key "$P/inter.key" \
	--csr "$P/c.csr" --out "$P/c.crt"
run "signed CSR verifies" openssl verify -CAfile "$P/ca.crt" -untrusted "$P/inter.crt" "$P/c.crt"
same "signed CSR subject" "$(openssl x509 -in "$P/c.crt" -noout -subject)" \
	"subject=O = IoV, CN = csr device"

# openssl's CA, key and CSR, as in the guides; vouchctl signs.
O="$T/ossl"
mkdir -p "$O"
openssl genrsa -out "$O/CA.key" 2048 2>/dev/null
openssl req -x509 -new -key "$O/CA.key" -sha256 -days 365 -out "$O/CA.crt" \
	-subj "/C=CN/ST=ZheJiang/L=HangZhou/O=IoV/CN=Guide CA" 2>/dev/null
openssl ecparam -genkey -name prime256v1 -out "$O/client.key" 2>/dev/null
openssl req -new -key "$O/client.key" -out "$O/client.csr" \
	-subj "/C=CN/ST=ZheJiang/L=HangZhou/O=IoV/CN=SN0001" 2>/dev/null
run "sign openssl CSR with openssl CA" $V --json pki sign-csr --ca-cert "$O/CA.crt" \
	--ca-key "$O/CA.key" --csr "$O/client.csr" --out "$O/client.crt"
cp "$T/out" "$T/client.json"
run "openssl verifies it" openssl verify -CAfile "$O/CA.crt" -purpose sslclient "$O/client.crt"
same "issuer is the CA subject" "$(openssl x509 -in "$O/client.crt" -noout -issuer_hash)" \
	"$(openssl x509 -in "$O/CA.crt" -noout -subject_hash)"
same "subject kept" "$(openssl x509 -in "$O/client.crt" -noout -subject)" \
	"subject=C = CN, ST = ZheJiang, L = HangZhou, O = IoV, CN = SN0001"
same "key kept" "$(pub_of_cert "$O/client.crt")" "$(pub_of_key "$O/client.key")"
run "device from openssl CA and SEC1 key" $V pki device --ca-cert "$O/CA.crt" \
	--ca-key "$O/CA.key" --out "$O" --name d --key-in "$O/client.key"
run "openssl verifies that too" openssl verify -CAfile "$O/CA.crt" "$O/d.crt"
same "existing key certified" "$(pub_of_cert "$O/d.crt")" "$(pub_of_key "$O/client.key")"

# A tampered CSR: one subject letter changed, signature left alone.
openssl req -in "$O/client.csr" -outform der -out "$O/client.csr.der"
$PY - "$O/client.csr.der" "$O/bad.csr.der" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"HangZhou")
b[i] = ord("X")
open(sys.argv[2], "wb").write(b)
EOF
refuse "tampered CSR refused" 1 $V pki sign-csr --ca-cert "$O/CA.crt" --ca-key "$O/CA.key" \
	--csr "$O/bad.csr.der" --out "$O/bad.crt"
has "tampered CSR reason" "$(cat "$T/err")" "signature does not verify"
refuse "nothing written for it" 1 test -e "$O/bad.crt"

# ---- show ------------------------------------------------------------------
run "show openssl certificate" $V --json pki show "$O/CA.crt"
cp "$T/out" "$T/show.json"
same "show id" "$(json "$T/show.json" id)" "$(der_sha256 "$O/CA.crt")"
same "show serial" "$(json "$T/show.json" serial | sed 's/^0*//')" \
	"$(openssl x509 -in "$O/CA.crt" -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')"
same "show subject" "$(json "$T/show.json" subject)" "C=CN, ST=ZheJiang, L=HangZhou, O=IoV, CN=Guide CA"
same "show ca" "$(json "$T/show.json" ca)" "true"
same "show self-signed" "$(json "$T/show.json" self_signed)" "true"
run "show a chain" $V --json pki show "$P/dev1.chain.crt"
same "three certificates" "$($PY -c 'import json,sys; print(len(json.load(sys.stdin)))' <"$T/out")" 3
run "show DER and CSR" $V pki show "$O/client.csr.der" "$P/c.csr"
has "csr shown" "$(cat "$T/out")" "signature_ok: yes"

# ---- conventions -----------------------------------------------------------
one_line_err() {
	local desc=$1
	shift
	refuse "$desc" 2 "$@"
	same "$desc: one line on stderr" "$(wc -l <"$T/err")" 1
}
one_line_err "unknown option" $V pki device --bogus
one_line_err "missing --out" $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key"
one_line_err "missing command" $V pki
one_line_err "unknown group" $V nosuch
one_line_err "bad --days" $V pki ca --out "$T/x" --days 0
one_line_err "bad --key" $V pki ca --out "$T/x" --key dsa
one_line_err "exclusive options" $V pki device --ca-cert a --ca-key b --out c --expired \
	--not-before-days 1
refuse "wrong CA key" 1 $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/inter.key" --out "$P" \
	--name wrong
same "wrong CA key: one line" "$(wc -l <"$T/err")" 1
refuse "nothing written with the wrong key" 1 test -e "$P/wrong.crt"
refuse "existing files kept" 1 $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" \
	--out "$P" --name dev1
same "dev1 unchanged" "$(json "$T/dev1.json" id)" "$(der_sha256 "$P/dev1.crt")"
run "--force replaces" $V pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" \
	--name dev1 --force
refuse "replaced" 1 test "$(json "$T/dev1.json" id)" = "$(der_sha256 "$P/dev1.crt")"
for c in ca intermediate device server verification csr sign-csr show; do
	run "$c --help" $V pki $c --help
done
run "pki --help" $V pki --help
run "--help" $V --help
refuse "missing file" 1 $V pki show "$T/none"
ls "$P" | grep -q tmp && fail "temporary files left in $P" || pass

summary
