#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/tls_profile.sh — where sluiced's CPU goes per TLS handshake.
#
# One sluiced (1 worker, a TLS listener with an ECDSA P-256 certificate and a
# ticket key file, no handshake budget) in front of build/bench/backend's echo
# on loopback; `loadgen connrate --tls` (or --tls-resume with MODE=resumed)
# keeps 64 handshakes in flight (each: connect, handshake, one echo, close)
# while `perf record --call-graph dwarf` samples sluiced for PROFILE_SECONDS. Prints
# sluiced's CPU per handshake (from /proc), the share of each library and the
# kernel (self time), and the inclusive share of OpenSSL's exported entry
# points and sluiced's own functions (dwarf unwinding: libcrypto has no frame
# pointers; its internal functions show as addresses without debug symbols).
#
#   bench/tls_profile.sh [full|resumed]      (PROFILE_SECONDS=3, PORT=28443)
#
# Output also in build/bench/results/tls-profile-MODE-TIME.txt. Processes
# started here are stopped by PID. Needs perf.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-full}
SECONDS_=${PROFILE_SECONDS:-3}
PORT=${PORT:-28443}
BE_PORT=$((PORT - 443))
W=$(mktemp -d --suffix=.sluice-tlsprof)
OUT=$ROOT/build/bench/results
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "tls_profile: needs perf (linux-perf)" >&2; exit 1; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
(umask 077
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=bench.sluice.test -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null &&
 openssl rand 80 | base64 -w0 >"$W/tickets.key") || exit 1
cat >"$W/s.conf" <<CONF
workers = 1;
admin = { address = ""; };
bpf = { enabled = false; };
listeners = ( { name = "t"; address = "127.0.0.1:$PORT"; pool = "p";
  tls = { certificates = ( { cert = "$W/cert.pem"; key = "$W/key.pem"; } );
          ticket_keys = "$W/tickets.key"; full_per_s = 0; resumed_per_s = 0; }; } );
pools = ( { name = "p"; servers = ( { address = "127.0.0.1:$BE_PORT"; rate = 0; } ); } );
CONF
"$ROOT/build/bench/backend" --mode echo --listen "127.0.0.1:$BE_PORT" --ready "$W/be.ready" \
	--max-seconds 120 >/dev/null 2>&1 &
pids+=($!)
taskset -c 1 "$ROOT/build/sluiced" -c "$W/s.conf" >"$W/sluiced.log" 2>&1 &
spid=$!
pids+=($spid)
sleep 1
flag=--tls
[ "$MODE" = resumed ] && flag=--tls-resume
lg() { taskset -c 0 "$ROOT/build/bench/loadgen" connrate -c "127.0.0.1:$PORT" --proto tcp $flag -n 64 -d "$1"; }
lg 500 >/dev/null 2>&1 # warm-up
c0=$(awk '{ print $14 + $15 }' "/proc/$spid/stat")
lg $((SECONDS_ * 1000 + 1000)) >"$W/lg.out" 2>&1 &
lpid=$!
sleep 0.5
perf record --call-graph dwarf,16384 -F 499 -p "$spid" -o "$W/perf.data" -- sleep "$SECONDS_" \
	>"$W/perf.log" 2>&1
wait "$lpid"
c1=$(awk '{ print $14 + $15 }' "/proc/$spid/stat")
n=$(grep -o 'tls_full=[0-9]* tls_resumed=[0-9]*' "$W/lg.out" | awk -F'[= ]' '{ print $2 + $4 }')
hz=$(getconf CLK_TCK)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
{
	echo "TLS 1.3 $MODE handshakes through sluiced, 64 in flight; commit $(git -C "$ROOT" rev-parse --short HEAD)"
	echo "sluiced CPU per handshake: $(( (c1 - c0) * 1000000 / hz / ${n:-1} )) us ($n handshakes, $(grep -o 'tls_cipher=[^ ]*' "$W/lg.out"))"
	echo
	echo "self time by object:"
	perf report -i "$W/perf.data" --no-children --sort dso --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -8
	echo
	echo "inclusive time, OpenSSL entry points and sluiced's functions (over 1%):"
	perf report -i "$W/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' | grep -v '0x0000' |
		grep -E '(EVP|SSL|ssl|tls|OSSL|ossl|CRYPTO|OPENSSL|EC_|BN_|ASN1|HMAC|i2d|d2i|RAND|conn_|relay|admit|malloc|free|strcmp)' |
		awk '$1 + 0 >= 1' | head -40
} | tee "$OUT/tls-profile-$MODE-$stamp.txt"
[ -n "${DEBUG:-}" ] && cat "$W/lg.out" "$W/perf.log" "$W/sluiced.log"
