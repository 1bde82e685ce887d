#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/storm.sh — reconnect-storm trials for `loadgen storm`, straight at a
# backend (no proxy): shows the collapse a naive retry loop causes and how the
# other policies recover.
#
#   bench/storm.sh tcp     build/bench/backend --mode echo --conn-cost-us COST,
#                          one fresh backend per policy
#   bench/storm.sh ws      a tiny WebSocket echo (node, written here) that pays
#                          COST per upgrade and, with WS_RATE > 0, admits at most
#                          WS_RATE upgrades/s and answers the rest 503 with a
#                          jittered Retry-After (the spreading sluice does)
#
# Knobs (environment):
#   N=4000 COST=2000 (us per new connection) MAX_MS=60000 GIVE_UP_MS=2000
#   SPREAD_MS=0 SEED=1 POLICIES="naive backoff" (tcp) / "naive backoff retry-after" (ws)
#   WS_RATE=400 PORT=24000 PIN=1 (loadgen on CPU 0, server on CPU 1)
#
# Output: one line per policy and a table; raw files in build/bench/work/storm/.
# Every process started here is stopped by its PID; every run is bounded by
# MAX_MS.

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

WHAT=${1:-tcp}
N=${N:-4000}
COST=${COST:-2000}
MAX_MS=${MAX_MS:-60000}
GIVE_UP_MS=${GIVE_UP_MS:-2000}
SPREAD_MS=${SPREAD_MS:-0}
SEED=${SEED:-1}
WS_RATE=${WS_RATE:-400}
PORT=${PORT:-24000}
PIN=${PIN:-1}
if [ "$WHAT" = ws ]; then
	POLICIES=${POLICIES:-"naive backoff retry-after"}
else
	POLICIES=${POLICIES:-"naive backoff"}
fi
W=build/bench/work/storm
LOADGEN=${LOADGEN:-build/bench/loadgen}
BACKEND=${BACKEND:-build/bench/backend}
mkdir -p "$W"

if [ "$PORT" -lt 20000 ] || [ "$PORT" -gt 29999 ]; then
	echo "storm.sh: PORT must be in 20000-29999" >&2
	exit 2
fi
make --no-print-directory tools >/dev/null || exit 1

# pin CPU CMD...: run CMD on CPU. It execs, so that `(pin ...) &` leaves $!
# the PID of CMD itself and stop_server kills the server, not a subshell.
pin() {
	local cpu=$1
	shift
	if [ "$PIN" = 1 ] && command -v taskset >/dev/null; then
		exec taskset -c "$cpu" "$@"
	fi
	exec "$@"
}

SERVER_PID=
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		SERVER_PID=
	fi
}
trap stop_server EXIT

wait_port() {
	local i
	for i in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "storm.sh: nothing listens on $PORT" >&2
	return 1
}

# A WebSocket echo server: enough RFC 6455 for loadgen (unfragmented frames
# up to 64 KiB, masked from the client), plus the admission knobs.
write_ws_server() {
	cat >"$W/ws_echo.js" <<'EOF'
'use strict';
const net = require('net');
const crypto = require('crypto');
const fs = require('fs');
const [port, costUs, rate, summary] = process.argv.slice(2).map((v, i) => (i < 3 ? Number(v) : v));
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const st = { accepted: 0, upgraded: 0, refused503: 0, frames: 0 };
let tokens = rate > 0 ? rate / 20 : 0, lastFill = Date.now(), nextSlot = 0;

function burn(us) {
	const end = process.hrtime.bigint() + BigInt(us) * 1000n;
	while (process.hrtime.bigint() < end);
}
function admit() {
	if (rate <= 0) return true;
	const now = Date.now();
	tokens = Math.min(rate / 20, tokens + ((now - lastFill) * rate) / 1000);
	lastFill = now;
	if (tokens >= 1) { tokens -= 1; return true; }
	return false;
}
function retryAfter() {
	// Queue position p at rate r: come back in about p/r s. Retry-After is
	// whole seconds, so round at random (jitter) to keep the herd spread.
	const now = Date.now();
	nextSlot = Math.max(nextSlot, now) + 1000 / rate;
	const secs = (nextSlot - now) / 1000;
	return Math.max(1, Math.floor(secs + Math.random()));
}
const srv = net.createServer((sock) => {
	st.accepted++;
	if (costUs > 0) burn(costUs);
	let buf = Buffer.alloc(0), upgraded = false;
	sock.setNoDelay(true);
	sock.on('error', () => {});
	sock.on('data', (d) => {
		buf = Buffer.concat([buf, d]);
		if (!upgraded) {
			const end = buf.indexOf('\r\n\r\n');
			if (end < 0) return;
			const head = buf.slice(0, end).toString('latin1');
			buf = buf.slice(end + 4);
			const m = /^sec-websocket-key:\s*(\S+)/im.exec(head);
			if (!m || !/^GET /.test(head)) { sock.destroy(); return; }
			if (!admit()) {
				st.refused503++;
				sock.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: ' + retryAfter() +
					'\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
				return;
			}
			const acc = crypto.createHash('sha1').update(m[1] + GUID).digest('base64');
			sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n' +
				'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + acc + '\r\n\r\n');
			upgraded = true;
			st.upgraded++;
		}
		while (buf.length >= 2) {
			const op = buf[0] & 0x0f, masked = buf[1] & 0x80;
			let len = buf[1] & 0x7f, off = 2;
			if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
			else if (len === 127) { sock.destroy(); return; }
			const need = off + (masked ? 4 : 0) + len;
			if (buf.length < need) return;
			const payload = Buffer.from(buf.slice(need - len, need));
			if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[off + (i % 4)];
			buf = buf.slice(need);
			if (op === 0x8) { sock.end(Buffer.from([0x88, 0])); return; }
			if (op === 0x9) { sock.write(Buffer.concat([Buffer.from([0x8a, len]), payload])); continue; }
			const hdr = len < 126 ? Buffer.from([0x80 | op, len])
				: Buffer.from([0x80 | op, 126, len >> 8, len & 0xff]);
			sock.write(Buffer.concat([hdr, payload]));
			st.frames++;
		}
	});
});
srv.listen({ host: '127.0.0.1', port, backlog: 4096 });
function stop() {
	if (summary) fs.writeFileSync(summary, JSON.stringify(st) + '\n');
	process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
EOF
}

start_server() { # start_server TAG
	local tag=$1
	rm -f "$W/$tag.server.json"
	if [ "$WHAT" = ws ]; then
		(pin 1 node "$W/ws_echo.js" "$PORT" "$COST" "$WS_RATE" "$W/$tag.server.json" \
			>"$W/$tag.server.log" 2>&1) &
	else
		(pin 1 "$BACKEND" --mode echo --listen "127.0.0.1:$PORT" --conn-cost-us "$COST" \
			--summary "$W/$tag.server.json" >"$W/$tag.server.log" 2>&1) &
	fi
	SERVER_PID=$!
	wait_port
}

json_num() { # json_num FILE KEY
	sed -n "s/.*\"$2\":\\([-0-9.a-z]*\\).*/\\1/p" "$1" | head -1
}

case "$WHAT" in
tcp) ;;
ws)
	command -v node >/dev/null || { echo "storm.sh: ws needs node" >&2; exit 77; }
	write_ws_server
	;;
*)
	echo "usage: bench/storm.sh tcp|ws" >&2
	exit 2
	;;
esac

declare -A ROW
for pol in $POLICIES; do
	tag="$WHAT-$pol"
	start_server "$tag" || exit 1
	(pin 0 "$LOADGEN" storm -c "127.0.0.1:$PORT" -n "$N" --policy "$pol" --proto "$WHAT" \
		--give-up-ms "$GIVE_UP_MS" --max-ms "$MAX_MS" --spread-ms "$SPREAD_MS" \
		--seed "$SEED" --series "$W/$tag.csv" --json >"$W/$tag.json")
	rc=$?
	stop_server
	if [ $rc -ne 0 ]; then
		echo "storm.sh: loadgen failed for $pol (rc $rc)" >&2
		exit 1
	fi
	r="$W/$tag.json" s="$W/$tag.server.json"
	if [ "$WHAT" = ws ]; then
		acc="$(json_num "$s" accepted) (503: $(json_num "$s" refused503))"
	else
		acc=$(json_num "$s" accepted)
	fi
	ROW[$pol]="| $pol | $(json_num "$r" reconnected)/$N | $(json_num "$r" t90_ms) | $(json_num "$r" t100_ms) | $(json_num "$r" attempts_per_client) (max $(json_num "$r" attempts_max)) | $(json_num "$r" gave_up) / $(json_num "$r" refused) | $acc |"
	echo "$pol: $(cat "$r")"
done

echo
echo "storm $WHAT: N=$N cost=${COST}us give_up=${GIVE_UP_MS}ms spread=${SPREAD_MS}ms max=${MAX_MS}ms"
echo "| policy | reconnected | t90 ms | t100 ms | attempts/client | gave up / refused | server accepts |"
echo "|---|---|---|---|---|---|---|"
for pol in $POLICIES; do echo "${ROW[$pol]}"; done
