#!/bin/sh
# `make run`: start vouchd with embedded defaults in ./vouch-data.
set -eu
B=${1:-build/release}
mkdir -p vouch-data
echo "vouch: starting $B/vouchd on 0.0.0.0:1883 (Ctrl-C stops it)"
echo "  try: mosquitto_sub -h 127.0.0.1 -p 1883 -t 'demo/#' -v"
echo "       mosquitto_pub -h 127.0.0.1 -p 1883 -t demo/hello -m hi"
exec "$B/vouchd" --data-dir vouch-data
