#!/bin/bash
# tests/integration/test_install.sh - `make install` produces a working tree:
#   - DESTDIR=$T PREFIX=/usr installs exactly the expected files (programs,
#     man pages, systemd unit, sysusers.d entry, /etc/vouch/vouchd.conf),
#     with the unit pointing at the installed paths; the default PREFIX is
#     /usr/local; an edited vouchd.conf survives a second install;
#   - the man pages render with groff warnings as failures (and mandoc
#     -Tlint when installed), and are true to the code: every flag of
#     `vouchd --help` is in vouchd(8) and every flag vouchd(8) names exists;
#     every group, command and option of vouchctl's help is in vouchctl(1),
#     and every option vouchctl(1) names exists;
#   - `systemd-analyze verify` accepts the unit (when installed);
#   - the installed vouchd, started with the installed config on free
#     127.0.0.1 ports, serves a mosquitto_sub over mutual TLS with
#     certificates made and registered by the installed vouchctl, a plain
#     mosquitto_pub, and /metrics; it stops on SIGTERM with status 0.
#
# Runs from run.sh's "shell" phase or by hand:
#   VOUCH_BUILD=build/release bash tests/integration/test_install.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
# run.sh may run under `make integration`: this test's make is its own
unset MAKEFLAGS MFLAGS MAKELEVEL
B=${VOUCH_BUILD:-build/release}
PY=/usr/bin/python3
SLOW=${VOUCH_SLOW:-1}
case "$B" in
*asan*) SAN=address,undefined ;;
*tsan*) SAN=thread ;;
*) SAN= ;;
esac

T=$(mktemp -d /tmp/vouch-install.XXXXXX)
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
. tests/integration/shcheck.sh
# check DESC CMD... : must exit 0
check() {
	local desc=$1
	shift
	if "$@" >"$T/out" 2>"$T/err"; then
		pass
	else
		fail "$desc (exit $?)"
		sed 's/^/    /' "$T/out" "$T/err" | head -40
	fi
}
free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the tree ---------------------------------------------------------------------
D="$T/root"
if ! make -s --no-print-directory install DESTDIR="$D" PREFIX=/usr SAN="$SAN" >"$T/make.log" 2>&1; then
	echo "FAILED: make install"
	cat "$T/make.log"
	exit 1
fi
want="etc/vouch/vouchd.conf
usr/bin/vouch-bench
usr/bin/vouchctl
usr/lib/systemd/system/vouchd.service
usr/lib/sysusers.d/vouch.conf
usr/sbin/vouchd
usr/share/man/man1/vouchctl.1
usr/share/man/man8/vouchd.8"
got=$(cd "$D" && find . -type f | sed 's|^\./||' | sort)
if [ "$got" = "$want" ]; then pass; else
	fail "installed files differ"
	diff <(echo "$want") <(echo "$got") | sed 's/^/    /'
fi
for f in usr/sbin/vouchd usr/bin/vouchctl usr/bin/vouch-bench; do
	check "$f is executable" test -x "$D/$f"
done
check "installed vouchd is the build's" cmp "$B/vouchd" "$D/usr/sbin/vouchd"
U="$D/usr/lib/systemd/system/vouchd.service"
check "unit runs /usr/sbin/vouchd with /etc/vouch/vouchd.conf" \
	grep -qx 'ExecStart=/usr/sbin/vouchd --config /etc/vouch/vouchd.conf --data-dir /var/lib/vouch' "$U"
check "unit has no placeholder left" bash -c "! grep -qE '@[A-Z]+@' '$U'"
check "unit runs as vouch" grep -qx 'User=vouch' "$U"
check "unit has its state directory" grep -qx 'StateDirectory=vouch' "$U"
check "sysusers creates vouch" grep -qE '^u vouch - ".*" /var/lib/vouch$' "$D/usr/lib/sysusers.d/vouch.conf"
check "config is not executable" test ! -x "$D/etc/vouch/vouchd.conf"

# default PREFIX, and a config the operator edited is kept
D2="$T/root2"
check "install with the default PREFIX" make -s --no-print-directory install DESTDIR="$D2" SAN="$SAN"
check "default PREFIX is /usr/local" test -x "$D2/usr/local/sbin/vouchd" -a -x "$D2/usr/local/bin/vouchctl" \
	-a -f "$D2/usr/local/share/man/man8/vouchd.8" -a -f "$D2/usr/local/etc/vouch/vouchd.conf"
check "unit follows PREFIX" grep -qx \
	'ExecStart=/usr/local/sbin/vouchd --config /usr/local/etc/vouch/vouchd.conf --data-dir /var/lib/vouch' \
	"$D2/usr/local/lib/systemd/system/vouchd.service"
echo "# edited" >>"$D2/usr/local/etc/vouch/vouchd.conf"
check "install again" make -s --no-print-directory install DESTDIR="$D2" SAN="$SAN"
check "edited config kept" grep -qx '# edited' "$D2/usr/local/etc/vouch/vouchd.conf"

# ---- man pages ----------------------------------------------------------------------
M8="$D/usr/share/man/man8/vouchd.8"
M1="$D/usr/share/man/man1/vouchctl.1"
if command -v groff >/dev/null 2>&1; then
	for m in "$M8" "$M1"; do
		LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$m" >"$T/groff.out" 2>&1
		rc=$?
		if [ $rc -eq 0 ] && [ ! -s "$T/groff.out" ]; then pass; else
			fail "groff warns about ${m##*/} (exit $rc)"
			sed 's/^/    /' "$T/groff.out"
		fi
	done
else
	echo "skipped: groff checks (no groff)"
fi
if command -v mandoc >/dev/null 2>&1; then
	for m in "$M8" "$M1"; do
		check "mandoc -Tlint ${m##*/}" mandoc -Tlint -Wwarning "$m"
	done
fi
# Rendered as plain text on very long lines, so that no flag is broken.
render() { LC_ALL=C groff -man -Tascii -rLL=2000n -rHY=0 "$1" 2>/dev/null | col -bx; }
flags() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }
if command -v groff >/dev/null 2>&1 && command -v col >/dev/null 2>&1; then
	render "$M8" >"$T/vouchd.txt"
	flags <"$T/vouchd.txt" >"$T/vouchd.man"
	"$D/usr/sbin/vouchd" --help | flags >"$T/vouchd.flags"
	check "vouchd --help lists flags" test -s "$T/vouchd.flags"
	for f in $(cat "$T/vouchd.flags"); do
		grep -qxF -- "$f" "$T/vouchd.man" && pass || fail "vouchd(8) does not document $f"
	done
	for f in $(cat "$T/vouchd.man"); do
		grep -qxF -- "$f" "$T/vouchd.flags" && pass || fail "vouchd(8) names $f, which vouchd does not have"
	done

	V="$D/usr/bin/vouchctl"
	render "$M1" >"$T/vouchctl.txt"
	flags <"$T/vouchctl.txt" >"$T/vouchctl.man"
	: >"$T/vouchctl.flags"
	"$V" --help | flags >>"$T/vouchctl.flags"
	groups=$("$V" --help | awk '/^groups:/ { g = 1; next } g && /^  [a-z]/ { print $1 }')
	check "vouchctl --help lists groups" test -n "$groups"
	for g in $groups; do
		cmds=$("$V" "$g" --help | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }')
		[ -n "$cmds" ] && pass || fail "vouchctl $g --help lists no commands"
		for c in $cmds; do
			grep -qE -- "(^| )$g $c( |$)" "$T/vouchctl.txt" && pass ||
				fail "vouchctl(1) does not document '$g $c'"
			"$V" "$g" "$c" --help | flags >"$T/cmd.flags"
			cat "$T/cmd.flags" >>"$T/vouchctl.flags"
			for f in $(cat "$T/cmd.flags"); do
				grep -qxF -- "$f" "$T/vouchctl.man" && pass ||
					fail "vouchctl(1) does not document $f of '$g $c'"
			done
		done
	done
	sort -u -o "$T/vouchctl.flags" "$T/vouchctl.flags"
	for f in $(cat "$T/vouchctl.man"); do
		grep -qxF -- "$f" "$T/vouchctl.flags" && pass ||
			fail "vouchctl(1) names $f, which no vouchctl command has"
	done
else
	echo "skipped: man pages against --help (no groff or col)"
fi

# ---- the unit -------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify a copy whose ExecStart is the DESTDIR binary (verify wants it
	# to exist); man pages are checked above
	mkdir -p "$T/unit"
	sed "s|^ExecStart=/usr/sbin/vouchd|ExecStart=$D/usr/sbin/vouchd|" "$U" >"$T/unit/vouchd.service"
	check "systemd-analyze verify" timeout 60 systemd-analyze verify --man=no "$T/unit/vouchd.service"
else
	echo "skipped: systemd-analyze verify (not installed)"
fi

# ---- the installed broker ---------------------------------------------------------------
# start_vouchd DATA: the installed vouchd with the installed config, on free
# ports of this test (MP plain, TP mutual TLS, AP admin), TLS turned on.
start_vouchd() {
	local attempt i
	for attempt in 1 2 3 4 5; do
		MP=$(free_port)
		TP=$(free_port)
		AP=$(free_port)
		sed -e "s|^listen = .*|listen = 127.0.0.1:$MP|" \
			-e "s|^admin-listen = .*|admin-listen = 127.0.0.1:$AP|" \
			-e "s|^#tls-listen = .*|tls-listen = 127.0.0.1:$TP|" \
			-e "s|^#cert = .*|cert = $DATA/server.crt|" \
			-e "s|^#key = .*|key = $DATA/server.key|" \
			"$D/etc/vouch/vouchd.conf" >"$T/vouchd.conf"
		"$D/usr/sbin/vouchd" --config "$T/vouchd.conf" --data-dir "$1" --shards 2 \
			>"$T/vouchd.log" 2>&1 &
		PID=$!
		for i in $(seq 1 $((150 * SLOW))); do
			grep -q "vouchd ready" "$T/vouchd.log" && return 0
			kill -0 "$PID" 2>/dev/null || break
			sleep 0.1
		done
		grep -q "vouchd ready" "$T/vouchd.log" && return 0
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
		PID=
		grep -qi "in use" "$T/vouchd.log" || return 1
	done
	return 1
}
# stop_vouchd: SIGTERM, exit status 0 within 10 s
stop_vouchd() {
	local i rc
	kill -TERM "$PID"
	for i in $(seq 1 $((100 * SLOW))); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PID" 2>/dev/null; then
		fail "vouchd did not stop on SIGTERM"
		return
	fi
	wait "$PID"
	rc=$?
	[ $rc -eq 0 ] && pass || fail "vouchd exit status $rc after SIGTERM"
	PID=
}
if ! command -v mosquitto_sub >/dev/null 2>&1; then
	echo "skipped: the installed broker (no mosquitto clients)"
else
	V="$D/usr/bin/vouchctl"
	P="$T/pki"
	DATA="$T/var/lib/vouch"
	mkdir -p "$DATA"
	chmod 0750 "$DATA"
	check "make a CA" "$V" pki ca --out "$P" --name fleet --cn "Fleet CA"
	check "make the server certificate" "$V" pki server --ca-cert "$P/fleet.crt" \
		--ca-key "$P/fleet.key" --out "$DATA" --name server --cn localhost --ip 127.0.0.1
	check "make a device certificate" "$V" pki device --ca-cert "$P/fleet.crt" \
		--ca-key "$P/fleet.key" --out "$P" --name sensor-1
	if start_vouchd "$DATA"; then
		pass
		check "TLS listener from the config" grep -q "listening on 127.0.0.1:$TP (MQTT over TLS)" "$T/vouchd.log"
		export VOUCH_URL="http://127.0.0.1:$AP"
		code=$("$V" ca code 2>"$T/err")
		check "registration code" test -n "$code"
		check "verification certificate" "$V" pki verification --ca-cert "$P/fleet.crt" \
			--ca-key "$P/fleet.key" --code "$code" --out "$P"
		check "register the CA" "$V" ca register --ca-cert "$P/fleet.crt" \
			--verification-cert "$P/verification.crt" --auto on
		topic="install/$$"
		timeout $((15 * SLOW)) mosquitto_sub -h 127.0.0.1 -p "$TP" --cafile "$P/fleet.crt" \
			--cert "$P/sensor-1.crt" --key "$P/sensor-1.key" -t "$topic" -C 1 -q 1 \
			>"$T/sub.out" 2>"$T/sub.err" &
		SUB=$!
		# the subscription is live once the device is registered and
		# connected; publish until it has received
		for i in $(seq 1 $((50 * SLOW))); do
			mosquitto_pub -h 127.0.0.1 -p "$MP" -t "$topic" -m "hello from $$" -q 1 \
				>/dev/null 2>&1
			kill -0 "$SUB" 2>/dev/null || break
			sleep 0.2
		done
		kill "$SUB" 2>/dev/null
		wait "$SUB"
		rc=$?
		if [ $rc -eq 0 ] && grep -qx "hello from $$" "$T/sub.out"; then pass; else
			fail "mosquitto_sub over mutual TLS did not receive (exit $rc)"
			sed 's/^/    /' "$T/sub.out" "$T/sub.err"
		fi
		check "the device was registered" bash -c "'$V' --json cert list --status ACTIVE | grep -q sensor-1"
		check "metrics" bash -c "curl -sf --max-time 10 '$VOUCH_URL/metrics' >'$T/metrics'"
		check "metrics counted the signup" grep -qx 'vouch_signups_total{outcome="registered"} 1' "$T/metrics"
		check "metrics counted a full handshake" grep -qE '^vouch_tls_handshakes_total\{type="full"\} [1-9]' "$T/metrics"
		check "metrics counted the messages" grep -qE '^vouch_messages_received_total\{shard="[01]"\} [1-9]' "$T/metrics"
		stop_vouchd
		check "the registry is in the data directory" test -s "$DATA/registry.vch"
		# docs/deploy.md: a copy of the stopped broker's registry restores
		mkdir -m 0700 "$T/restore"
		check "back up the registry" cp -p "$DATA/registry.vch" "$T/restore/"
		if start_vouchd "$T/restore"; then
			pass
			check "metrics of the restored registry" bash -c \
				"curl -sf --max-time 10 'http://127.0.0.1:$AP/metrics' >'$T/metrics'"
			check "restored device" grep -qx 'vouch_registry_certificates{status="ACTIVE"} 1' "$T/metrics"
			check "restored CA" grep -qx 'vouch_registry_cas{status="ACTIVE"} 1' "$T/metrics"
			stop_vouchd
		else
			fail "vouchd did not start on the restored registry"
			sed 's/^/    /' "$T/vouchd.log" | tail -20
		fi
	else
		fail "the installed vouchd did not start"
		sed 's/^/    /' "$T/vouchd.log" | tail -20
	fi
fi

summary
