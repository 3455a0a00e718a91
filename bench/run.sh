#!/bin/sh
# bench/run.sh - `make bench`: a short standard set of vouch-bench runs on
# 127.0.0.1, printed as tables.
#
#  1. plain MQTT: vouchd (2 shards) on a free port; pub/sub runs with
#     256-byte payloads (QoS 0 1->1, QoS 0 and QoS 1 4->4, QoS 1 1->100
#     fan-out, unpaced; QoS 1 1->1 at 1000 msg/s for latency under light
#     load) and a flood of 2000 connections held for a second (broker RSS
#     per connection). The same runs against mosquitto when it is
#     installed, in the same run, for comparison.
#  2. mutual TLS: a CA, the broker's certificate and 50 device certificates
#     (vouchctl pki), vouchd with --tls-listen and its admin API, the CA
#     registered with automatic registration (registration code,
#     verification certificate, POST /api/v1/cas), then a TLS connect flood
#     (full handshakes, certificates round-robin) and TLS pub/sub with the
#     certificates' CNs as client IDs.
#
# Every server it starts is stopped by PID on exit. Numbers are measured,
# once, on this machine, with the load generator on the same cores as the
# broker: read them as a comparison within one run, not as absolutes.
#
# Environment: VOUCH_BUILD (default build/release), BENCH_DURATION seconds
# per pub/sub run (default 3), BENCH_THREADS loops of vouch-bench (default 1).
set -eu

B=${VOUCH_BUILD:-build/release}
BENCH="$B/vouch-bench"
VOUCHD="$B/vouchd"
CTL="$B/vouchctl"
DUR=${BENCH_DURATION:-3}
THREADS=${BENCH_THREADS:-1}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

for f in "$BENCH" "$VOUCHD" "$CTL"; do
	[ -x "$f" ] || { echo "bench: $f is missing (run make first)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "bench: curl is needed for the TLS section" >&2; exit 1; }

WORK=$(mktemp -d /tmp/vouch-bench.XXXXXX)
PIDS=""
FAILED=0

stop_servers() {
	for p in $PIDS; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $PIDS; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	PIDS=""
}
cleanup() {
	stop_servers
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Many connections: the servers inherit the raised limit (dash has -n, -H).
# shellcheck disable=SC3045
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID NAME: until something listens on 127.0.0.1:PORT.
wait_port() {
	i=0
	while ! "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null; do
		if ! kill -0 "$2" 2>/dev/null || [ $i -ge 100 ]; then
			echo "bench: $3 did not start; its log:" >&2
			tail -20 "$WORK/$3.log" >&2 || true
			exit 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

# The table printer: reads vouch-bench --json output.
cat >"$WORK/fmt.py" <<'PYEOF'
import json, sys

def ms(us):
    return "%.2f" % (us / 1000.0)

def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None

kind, broker, test, path = sys.argv[1:5]
j = load(path)
if kind == "ps-head":
    print("%-10s %-26s %10s %10s %8s %8s %8s %8s %9s" % (
        "broker", "pub/sub test", "in msg/s", "out msg/s", "loss %",
        "p50 ms", "p90 ms", "p99 ms", "max ms"))
elif kind == "cf-head":
    print("%-10s %-26s %10s %9s %8s %8s %8s %8s %11s" % (
        "broker", "connect test", "conn/s", "ok", "p50 ms", "p90 ms",
        "p99 ms", "max ms", "RSS/conn"))
elif j is None:
    print("%-10s %-26s failed (see above)" % (broker, test))
elif kind == "ps":
    l = j["latency"]
    print("%-10s %-26s %10.0f %10.0f %8.3f %8s %8s %8s %9s" % (
        broker, test, j["msgs_in_per_s"], j["msgs_out_per_s"], j["loss_pct"],
        ms(l["p50_us"]), ms(l["p90_us"]), ms(l["p99_us"]), ms(l["max_us"])))
else:
    l = j["latency"]
    rss = j.get("broker_rss", {}).get("per_connection_bytes")
    print("%-10s %-26s %10.0f %9s %8s %8s %8s %8s %11s" % (
        broker, test, j["connects_per_s"],
        "%d/%d" % (j["succeeded"], j["connections"]),
        ms(l["p50_us"]), ms(l["p90_us"]), ms(l["p99_us"]), ms(l["max_us"]),
        "%.1f KiB" % (rss / 1024.0) if rss is not None else "-"))
if j is not None and kind in ("ps", "cf") and j.get("first_error"):
    print("%-10s   first error: %s" % ("", j["first_error"]))
PYEOF

# run_bench OUT ARGS...: vouch-bench --json into OUT; a failure leaves OUT
# empty and its message on stderr.
run_bench() {
	out=$1
	shift
	if ! "$BENCH" "$@" --threads "$THREADS" --json >"$out" 2>"$out.err"; then
		echo "bench: vouch-bench $* failed:" >&2
		cat "$out.err" >&2
		: >"$out"
		FAILED=$((FAILED + 1))
	fi
}

echo "vouch bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr);" \
	"vouch-bench with $THREADS thread(s) on the same machine"
echo

# ---- 1. plain MQTT: vouchd, and mosquitto for comparison ----
VPORT=$(free_port)
mkdir -p "$WORK/data"
"$VOUCHD" --listen "127.0.0.1:$VPORT" --admin-listen off --shards 2 \
	--data-dir "$WORK/data" --log-level warn >"$WORK/vouchd.log" 2>&1 &
VPID=$!
PIDS="$PIDS $VPID"
wait_port "$VPORT" "$VPID" vouchd

MOSQ=$(command -v mosquitto || true)
[ -n "$MOSQ" ] || { [ -x /usr/sbin/mosquitto ] && MOSQ=/usr/sbin/mosquitto; } || true
MPORT=""
if [ -n "$MOSQ" ]; then
	MPORT=$(free_port)
	cat >"$WORK/mosquitto.conf" <<EOF
listener $MPORT 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
EOF
	"$MOSQ" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
	MPID=$!
	PIDS="$PIDS $MPID"
	wait_port "$MPORT" "$MPID" mosquitto
	echo "comparing with $("$MOSQ" -h 2>/dev/null | head -1) (defaults: 20 in flight, 1000 queued per client)"
else
	echo "mosquitto not installed: no comparison (apt-get install mosquitto)"
fi
echo "pub/sub: 256-byte payloads, ${DUR} s per run, MQTT 3.1.1; unpaced runs measure throughput" \
	"under overload (brokers drop past their queue limits: that is the loss column)"
echo

"$PY" "$WORK/fmt.py" ps-head - - -
n=0
for t in "QoS 0 1->1 unpaced|--qos 0 --publishers 1 --subscribers 1" \
	"QoS 0 4->4 unpaced|--qos 0 --publishers 4 --subscribers 4" \
	"QoS 1 4->4 unpaced|--qos 1 --publishers 4 --subscribers 4" \
	"QoS 1 1->100 unpaced|--qos 1 --publishers 1 --subscribers 100" \
	"QoS 1 1->1 1000/s|--qos 1 --publishers 1 --subscribers 1 --rate 1000"; do
	name=${t%%|*}
	args=${t#*|}
	n=$((n + 1))
	# shellcheck disable=SC2086
	run_bench "$WORK/ps$n.v.json" pubsub --port "$VPORT" $args --size 256 --duration "$DUR" --drain 3
	"$PY" "$WORK/fmt.py" ps vouchd "$name" "$WORK/ps$n.v.json"
	if [ -n "$MPORT" ]; then
		# shellcheck disable=SC2086
		run_bench "$WORK/ps$n.m.json" pubsub --port "$MPORT" $args --size 256 --duration "$DUR" --drain 3
		"$PY" "$WORK/fmt.py" ps mosquitto "$name" "$WORK/ps$n.m.json"
	fi
done
echo

"$PY" "$WORK/fmt.py" cf-head - - -
run_bench "$WORK/cf.v.json" connect --port "$VPORT" --connections 2000 --hold 1 --broker-pid "$VPID"
"$PY" "$WORK/fmt.py" cf vouchd "2000 plain, held 1 s" "$WORK/cf.v.json"
if [ -n "$MPORT" ]; then
	run_bench "$WORK/cf.m.json" connect --port "$MPORT" --connections 2000 --hold 1 --broker-pid "$MPID"
	"$PY" "$WORK/fmt.py" cf mosquitto "2000 plain, held 1 s" "$WORK/cf.m.json"
fi
stop_servers
echo

# ---- 2. mutual TLS with a pool of device certificates ----
P="$WORK/pki"
mkdir -p "$P/devices"
"$CTL" pki ca --out "$P" --name ca --cn "vouch bench CA" >/dev/null
"$CTL" pki server --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --out "$P" --name server >/dev/null
seq 1 50 | xargs -P 4 -I N "$CTL" pki device --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" \
	--out "$P/devices" --name "device-N" >/dev/null

PPORT=$(free_port)
TPORT=$(free_port)
APORT=$(free_port)
ADMIN="http://127.0.0.1:$APORT"
mkdir -p "$WORK/tlsdata"
"$VOUCHD" --listen "127.0.0.1:$PPORT" --tls-listen "127.0.0.1:$TPORT" \
	--cert "$P/server.crt" --key "$P/server.key" --admin-listen "127.0.0.1:$APORT" \
	--signup-rate 1000 --shards 2 --data-dir "$WORK/tlsdata" --log-level warn \
	>"$WORK/vouchd-tls.log" 2>&1 &
TPID=$!
PIDS="$PIDS $TPID"
wait_port "$TPORT" "$TPID" vouchd-tls
wait_port "$APORT" "$TPID" vouchd-tls

code=$(curl -fsS "$ADMIN/api/v1/registration-code" |
	"$PY" -c 'import json, sys; print(json.load(sys.stdin)["registrationCode"])')
"$CTL" pki verification --ca-cert "$P/ca.crt" --ca-key "$P/ca.key" --code "$code" \
	--out "$P" --name verification >/dev/null
"$PY" -c 'import json, sys
print(json.dumps({"caCertificate": open(sys.argv[1]).read(),
                  "verificationCertificate": open(sys.argv[2]).read(),
                  "autoRegistration": True}))' "$P/ca.crt" "$P/verification.crt" >"$P/register.json"
status=$(curl -sS -o "$P/register.out" -w '%{http_code}' -X POST \
	-H 'Content-Type: application/json' --data @"$P/register.json" "$ADMIN/api/v1/cas")
if [ "$status" != 201 ]; then
	echo "bench: registering the CA failed (HTTP $status): $(cat "$P/register.out")" >&2
	exit 1
fi
TLS="--port $TPORT --cafile $P/ca.crt --cert-dir $P/devices"
echo "mutual TLS: 50 device certificates (EC P-256) used round-robin, CA registered with" \
	"automatic registration (--signup-rate 1000); every handshake is a full one"
echo

"$PY" "$WORK/fmt.py" cf-head - - -
# shellcheck disable=SC2086
run_bench "$WORK/tcf.json" connect $TLS --connections 2000 --client-id-prefix tls- --hold 1 --broker-pid "$TPID"
"$PY" "$WORK/fmt.py" cf vouchd "2000 TLS, held 1 s" "$WORK/tcf.json"
# shellcheck disable=SC2086
run_bench "$WORK/tcf12.json" connect $TLS --connections 1000 --tls-version 1.2
"$PY" "$WORK/fmt.py" cf vouchd "1000 TLS 1.2, CN as ID" "$WORK/tcf12.json"
echo
"$PY" "$WORK/fmt.py" ps-head - - -
n=0
for t in "TLS QoS 0 1->1 unpaced|--qos 0 --publishers 1 --subscribers 1" \
	"TLS QoS 1 4->4 unpaced|--qos 1 --publishers 4 --subscribers 4" \
	"TLS QoS 1 1->1 1000/s|--qos 1 --publishers 1 --subscribers 1 --rate 1000"; do
	name=${t%%|*}
	args=${t#*|}
	n=$((n + 1))
	# shellcheck disable=SC2086
	run_bench "$WORK/tps$n.json" pubsub $TLS $args --size 256 --duration "$DUR" --drain 3
	"$PY" "$WORK/fmt.py" ps vouchd "$name" "$WORK/tps$n.json"
done
echo
echo "vouch-bench --help for the options; bench/README.md for what the columns mean"
if [ "$FAILED" -ne 0 ]; then
	echo "bench: $FAILED run(s) failed" >&2
	exit 1
fi
