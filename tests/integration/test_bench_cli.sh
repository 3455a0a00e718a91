#!/bin/bash
# tests/integration/test_bench_cli.sh - vouch-bench's command line, in all
# four modes (pubsub, connect, signup, hold): every kind of bad usage (no
# or unknown mode, unknown flag, missing value, bad or out-of-range numbers,
# an option of another mode, --cert without --key, --resume without TLS,
# --ping-interval without a hold, bad --source-addrs, more --procs than
# connections, an unresolvable host, a stray operand, too few certificates
# for pubsub or signup) exits with status 2, one line on stderr and
# nothing on stdout;
# certificates that cannot be used (a missing or empty --cert-dir, a
# missing key file, a --cert that is not PEM) exit with 1 (README: "a run
# that cannot happen at all") and one line; `--help` and
# `<mode> --help` exit 0 with the usage on stdout and nothing on stderr.
# No broker is needed: every case stops before connecting.
#
# Runs from run.sh's "shell" phase or by hand:
#   VOUCH_BUILD=build/release bash tests/integration/test_bench_cli.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${VOUCH_BUILD:-build/release}
VB="$B/vouch-bench"
V="$B/vouchctl"

if [ ! -x "$VB" ] || [ ! -x "$V" ]; then
	echo "FAILED: no $VB or $V (build them first)"
	exit 1
fi

T=$(mktemp -d /tmp/vouch-benchcli.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/integration/shcheck.sh

# status WANT DESC ARGS... : vouch-bench ARGS exits with WANT, prints one
# line starting "vouch-bench" on stderr and nothing on stdout
status() {
	local want=$1 desc=$2 rc lines
	shift 2
	timeout 30 "$VB" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	lines=$(wc -l <"$T/err")
	if [ "$rc" = "$want" ] && [ ! -s "$T/out" ] && [ "$lines" = 1 ] &&
		grep -q '^vouch-bench' "$T/err"; then
		pass
	else
		fail "$desc: exit $rc (want $want), $lines lines on stderr, $(wc -c <"$T/out") bytes on stdout"
		sed 's/^/    /' "$T/out" "$T/err" | head -10
	fi
}
usage() { status 2 "$@"; }
# mentions DESC TEXT: the last stderr line names TEXT
mentions() {
	if grep -qF -- "$2" "$T/err"; then pass; else
		fail "$1: '$2' not in: $(cat "$T/err")"
	fi
}
# help DESC ARGS... : exit 0, usage on stdout, nothing on stderr
help() {
	local desc=$1 rc
	shift
	timeout 30 "$VB" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	if [ "$rc" = 0 ] && grep -q '^usage: vouch-bench' "$T/out" && [ ! -s "$T/err" ]; then
		pass
	else
		fail "$desc: exit $rc, $(wc -l <"$T/out") lines on stdout, $(wc -c <"$T/err") bytes on stderr"
		sed 's/^/    /' "$T/err" | head -5
	fi
}

# ---- help ------------------------------------------------------------------------
help "--help" --help
help "-h" -h
help "pubsub --help" pubsub --help
help "connect --help" connect --help
help "connect -h" connect -h
help "signup --help" signup --help
help "hold --help" hold --help
help "help after valid flags" pubsub --qos 1 --help
grep -q -- '--publishers' <("$VB" pubsub --help) && pass || fail "pubsub --help lacks --publishers"
grep -q -- '--connections' <("$VB" connect --help) && pass || fail "connect --help lacks --connections"
grep -q -- '--cert-dir' <("$VB" connect --help) && pass || fail "connect --help lacks --cert-dir"

# ---- modes -----------------------------------------------------------------------
usage "no mode"
mentions "no mode" "which mode"
usage "unknown mode" flood
mentions "unknown mode" "unknown mode 'flood'"
usage "empty mode" ""
usage "flag instead of mode" --port 1883
usage "mode in capitals" PUBSUB

# ---- flags -----------------------------------------------------------------------
for m in pubsub connect signup hold; do
	# signup refuses to run without --cert-dir: give it one, so that
	# each case fails for the reason it tests
	X=()
	[ $m = signup ] && X=(--cert-dir "$T")
	usage "$m unknown flag" $m --bogus
	mentions "$m unknown flag" "--bogus"
	usage "$m short flag" $m -x
	usage "$m missing value" $m --port
	mentions "$m missing value" "needs a value"
	usage "$m stray operand" $m extra
	mentions "$m stray operand" "unexpected argument 'extra'"
	for v in 0 65536 -1 abc "" 1883x 99999999999999999999; do
		usage "$m --port '$v'" $m --port "$v"
	done
	for v in 0 1025 x; do usage "$m --threads $v" $m --threads "$v"; done
	for v in 3 6 1.0 ""; do usage "$m --version '$v'" $m --version "$v"; done
	for v in -1 65536; do usage "$m --keepalive $v" $m --keepalive "$v"; done
	for v in 0 0.001 3601 nan inf -1 1s; do usage "$m --timeout $v" $m --timeout "$v"; done
	for v in 0 1000001; do usage "$m --concurrency $v" $m --concurrency "$v"; done
	for v in -1 1e8 nan inf; do usage "$m --rate $v" $m --rate "$v"; done
	usage "$m --client-id-prefix too long" $m --client-id-prefix "$(printf 'c%.0s' $(seq 101))"
	usage "$m --tls-version 1.1" $m --tls-version 1.1
	usage "$m --cert without --key" $m --cert "$T/a.crt"
	mentions "$m --cert without --key" "--cert and --key go together"
	usage "$m --key without --cert" $m --key "$T/a.key"
	usage "$m --cert-dir and --cert" $m --cert-dir "$T" --cert "$T/a.crt" --key "$T/a.key"
	mentions "$m --cert-dir and --cert" "not both"
	usage "$m unresolvable --host" $m "${X[@]}" --host bad..name
	mentions "$m unresolvable --host" "--host bad..name"
	usage "$m error after good flags" $m --threads 2 --port 1 --qos 9
	usage "$m --rate nan after --quiet" $m --quiet --rate nan
done

# the connection floods: connect, signup, hold
for m in connect signup hold; do
	X=()
	[ $m = signup ] && X=(--cert-dir "$T")
	for v in 0 257 x; do usage "$m --procs $v" $m --procs "$v"; done
	for v in x 10.0.0.256 10.0.0.2-10.0.0.1 10.0.0.0-10.1.0.0 ::1 "10.0.0.1-" \
		"$(printf '1%.0s' $(seq 70))"; do
		usage "$m --source-addrs '${v:0:20}'" $m --source-addrs "$v"
	done
	usage "$m --source-addrs with an IPv6 --host" $m "${X[@]}" --host ::1 --source-addrs 127.0.0.1
	mentions "$m --source-addrs with an IPv6 --host" "not IPv4"
done
usage "pubsub --procs" pubsub --procs 2
usage "pubsub --source-addrs" pubsub --source-addrs 127.0.0.1
usage "connect --procs past --connections" connect --connections 2 --procs 3
mentions "connect --procs past --connections" "more processes than --connections"
usage "hold --procs past --connections" hold --connections 2 --procs 3

# --resume: TLS only, connect and hold only
for m in connect hold; do
	usage "$m --resume without TLS" $m --resume
	mentions "$m --resume without TLS" "--resume needs TLS"
done
usage "pubsub --resume" pubsub --resume
usage "signup --resume" signup --cert-dir "$T" --resume

# --ping-interval: with a hold, at most --keepalive
usage "connect --ping-interval without --hold" connect --ping-interval 1
mentions "connect --ping-interval without --hold" "only with --hold"
for v in 0 0.001 86401 x; do usage "hold --ping-interval $v" hold --ping-interval "$v"; done
usage "hold --ping-interval past --keepalive" hold --keepalive 10 --ping-interval 11
mentions "hold --ping-interval past --keepalive" "more than --keepalive"
usage "signup --ping-interval" signup --cert-dir "$T" --ping-interval 1
usage "pubsub --ping-interval" pubsub --ping-interval 1

# hold's --duration, connect's --hold
for v in 0 0.01 86401 nan; do usage "hold --duration $v" hold --duration "$v"; done
usage "hold --hold" hold --hold 1
usage "signup --duration" signup --cert-dir "$T" --duration 1
usage "signup --hold" signup --cert-dir "$T" --hold 1

# signup: the certificates are required
usage "signup without --cert-dir" signup
mentions "signup without --cert-dir" "--cert-dir DIR"
usage "signup with --cert" signup --cert "$T/a.crt" --key "$T/a.key"
for v in 0 10000001 x; do usage "signup --connections $v" signup --cert-dir "$T" --connections "$v"; done

# pubsub only
for v in 0 1000001 x; do
	usage "--publishers $v" pubsub --publishers "$v"
	usage "--subscribers $v" pubsub --subscribers "$v"
	usage "--topics $v" pubsub --topics "$v"
done
for v in -1 3 x; do usage "--qos $v" pubsub --qos "$v"; done
for v in 0 7 16777217; do usage "--size $v" pubsub --size "$v"; done
for v in 0 0.05 86401 nan; do usage "--duration $v" pubsub --duration "$v"; done
for v in -1 3601; do usage "--drain $v" pubsub --drain "$v"; done
for v in 0 65536; do usage "--inflight $v" pubsub --inflight "$v"; done
for v in "" a/b "a+" "#"; do usage "--shared '$v'" pubsub --shared "$v"; done
for v in "" "a/+" "a/#" "$(printf 't%.0s' $(seq 201))"; do
	usage "--topic-prefix '${v:0:10}'" pubsub --topic-prefix "$v"
done
usage "connect flag in pubsub" pubsub --connections 5
mentions "connect flag in pubsub" "not an option of this mode"
usage "--hold in pubsub" pubsub --hold 1

# connect only
for v in 0 10000001 x; do usage "--connections $v" connect --connections "$v"; done
for v in -1 86401 nan; do usage "--hold $v" connect --hold "$v"; done
for v in 0 -5 x; do usage "--broker-pid $v" connect --broker-pid "$v"; done
true &
gone=$!
wait "$gone"
usage "--broker-pid of no process" connect --broker-pid "$gone"
mentions "--broker-pid of no process" "no process $gone"
for m in connect signup; do
	for f in --publishers --subscribers --topics --qos --size --duration --drain --inflight \
		--shared --topic-prefix; do
		usage "pubsub flag $f in $m" $m $f 1
	done
done
for f in --publishers --qos --size --drain --shared; do
	usage "pubsub flag $f in hold" hold $f 1
done

# ---- certificates ----------------------------------------------------------------
P="$T/pki"
if timeout 60 "$V" pki ca --out "$P" --name ca >/dev/null &&
	timeout 60 "$V" pki devices --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P/two" \
		--count 2 --threads 1 >/dev/null; then
	pass
else
	fail "vouchctl could not make the certificates"
fi
# pubsub needs a certificate per connection when the client IDs are the CNs
usage "pubsub with 2 certificates for 4 connections" pubsub --cert-dir "$P/two" \
	--publishers 2 --subscribers 2
mentions "too few certificates" "4 connections share 2 certificates"
usage "pubsub with one --cert for 2 connections" pubsub --cert "$P/two/dev0.crt" \
	--key "$P/two/dev0.key"
# signup uses each certificate once
usage "signup --connections past the certificates" signup --cert-dir "$P/two" --connections 3
mentions "signup --connections past the certificates" "only 2 certificates"
usage "signup --procs past the certificates" signup --cert-dir "$P/two" --procs 3
mentions "signup --procs past the certificates" "more processes than certificates"
# unreadable certificates: the run cannot happen (1), the reason on one line
status 1 "signup: missing --cert-dir" signup --cert-dir "$T/none"
mentions "signup: missing --cert-dir" "$T/none"
status 1 "missing --cert-dir" connect --cert-dir "$T/none" --connections 1
mentions "missing --cert-dir" "$T/none"
mkdir -p "$T/empty"
status 1 "empty --cert-dir" connect --cert-dir "$T/empty" --connections 1
mentions "empty --cert-dir" "no NAME.crt with a NAME.key"
status 1 "missing --key file" connect --cert "$P/two/dev0.crt" --key "$T/none.key" --connections 1
mentions "missing --key file" "$T/none.key"
status 1 "--cert not PEM" connect --cert "$P/ca.key" --key "$P/two/dev0.key" --connections 1
mentions "--cert not PEM" "not a PEM certificate"

summary
