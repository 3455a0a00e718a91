#!/bin/sh
# Install what vouch needs from Debian's packages, only when something is
# missing. Called by `make deps` (and by `make test` / `make run` through the
# build/.deps stamp). Safe to run again.
# `deps.sh bench` (make bench) adds Mosquitto, for the side-by-side figures.
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev liburing-dev libwolfssl-dev \
libjemalloc-dev libxxhash-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev \
mosquitto-clients python3 python3-paho-mqtt python3-xxhash python3-cryptography python3-prometheus-client \
openssl procps bc curl"
[ "${1:-}" = bench ] && PKGS="$PKGS mosquitto"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
