#!/bin/sh
# `make run`: start vouchd with embedded defaults in ./vouch-data.
# First run: makes a demo CA, the broker's server certificate and one device
# certificate (vouchctl pki), then registers the CA with automatic
# registration on, so any device certificate it signs connects over mutual
# TLS and is registered on its first connection.
set -eu
B=${1:-build/release}
D=${VOUCH_DATA:-vouch-data}
CTL="$B/vouchctl"
ADMIN=127.0.0.1:8081
mkdir -p "$D/demo"
if [ ! -f "$D/demo/ca.crt" ]; then
	echo "vouch: making a demo CA, a server certificate and two device certificates in $D/demo"
	"$CTL" pki ca --out "$D/demo" --name ca --cn "vouch demo CA" --o vouch >/dev/null
	"$CTL" pki server --ca-cert "$D/demo/ca.crt" --ca-key "$D/demo/ca.key" --out "$D/demo" \
		--name server --dns localhost --ip 127.0.0.1 >/dev/null
	for dev in device1 device2; do
		"$CTL" pki device --ca-cert "$D/demo/ca.crt" --ca-key "$D/demo/ca.key" --out "$D/demo" \
			--name $dev --cn $dev >/dev/null
	done
fi
"$B/vouchd" --listen 0.0.0.0:1883 --tls-listen 0.0.0.0:8883 --data-dir "$D" \
	--cert "$D/demo/server.crt" --key "$D/demo/server.key" --admin-listen "$ADMIN" \
	--plain-role admin &	# a demo: plain-TCP watchers see $SYS/certificates and $SYS/presence
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' INT TERM
ok=""
for _ in $(seq 50); do
	if VOUCH_URL="http://$ADMIN" "$CTL" ca list >/dev/null 2>&1; then ok=1; break; fi
	kill -0 $pid 2>/dev/null || exit 1
	sleep 0.1
done
[ -n "$ok" ] || { echo "vouch: the admin API did not come up" >&2; kill $pid; exit 1; }
if ! VOUCH_URL="http://$ADMIN" "$CTL" ca get "$("$CTL" --json pki show "$D/demo/ca.crt" | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' | head -1)" >/dev/null 2>&1; then
	code=$(VOUCH_URL="http://$ADMIN" "$CTL" --json ca code | sed -n 's/.*"registrationCode": *"\([0-9a-f]*\)".*/\1/p')
	"$CTL" pki verification --ca-cert "$D/demo/ca.crt" --ca-key "$D/demo/ca.key" --code "$code" \
		--out "$D/demo" --name verification --force >/dev/null
	VOUCH_URL="http://$ADMIN" "$CTL" ca register --ca-cert "$D/demo/ca.crt" \
		--verification-cert "$D/demo/verification.crt" --auto on >/dev/null
	echo "vouch: registered the demo CA with automatic registration on"
fi
cat <<MSG

vouch is running (pid $pid): MQTT on 1883, MQTT over mutual TLS on 8883,
admin API on http://$ADMIN. Connect a device with its certificate:

  mosquitto_sub -h localhost -p 8883 --cafile $D/demo/ca.crt \\
      --cert $D/demo/device2.crt --key $D/demo/device2.key -t 'demo/#' -v
  mosquitto_pub -h localhost -p 8883 --cafile $D/demo/ca.crt \\
      --cert $D/demo/device1.crt --key $D/demo/device1.key -t demo/hello -m hi

New devices: $CTL pki device --ca-cert $D/demo/ca.crt --ca-key $D/demo/ca.key --out DIR --name NAME
List certificates: VOUCH_URL=http://$ADMIN $CTL cert list
Ctrl-C stops the broker.
MSG
wait $pid
