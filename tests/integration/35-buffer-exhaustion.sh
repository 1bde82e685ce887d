#!/usr/bin/env bash
# Provided-buffer exhaustion: each worker has 16 buffers of 1 KiB for 25
# streaming connections (two directions each), so receives keep finding the
# ring empty (-ENOBUFS). For 4 s, 50 clients each keep 64 KiB of echoed
# data in flight, every byte checked, while bursts of HTTP requests arrive
# on a mode = "http" listener (whose head peeks need buffers too). A
# starved receive must be re-armed when buffers come back: no connection
# dropped or stuck (5 s without progress), none starved out, data intact,
# every request answered. And no herd: only as many starved receives are
# re-armed as there are buffers free, so failed receives stay within twice
# the buffers' worth of data moved (re-arming every starved one made it 3.5x).
# (A sink that stops reading keeps no buffer at all: 54-stalled-peers.)
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo --threads 2
bg web "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 2):9000" --ready "$T/web.ready"
wait_for 5 test -e "$T/web.ready" || fail "http backend did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
buffers = { count = 16; size = 1024; };
listeners = ( { name = "raw"; address = "10.77.0.1:8080"; pool = "echo"; },
              { name = "web"; address = "10.77.0.1:8081"; mode = "http"; pool = "web"; } );
pools = ( { name = "echo"; servers = ( { name = "e1"; address = "$(be_addr 1):9000"; } ); },
          { name = "web"; servers = ( { name = "w2"; address = "$(be_addr 2):9000"; } ); } );
CONF
sluiced_start "$T/s.conf"
bg stream "$LB" "$TPEER" stream -c 10.77.0.1:8080 -n 50 --window 64k --duration-ms 4000 \
	--io-timeout-ms 5000 --timeout-ms 30000
STREAM=$LAST_PID
wait_for 10 grep -q ready "$T/stream.log" || fail "streaming clients not up: $(cat "$T/stream.log")"
sleep 0.5
for i in 1 2 3; do
	in_lb python3 "$SRC/tests/tools/httpprobe.py" burst 10.77.0.1:8081 50 >"$T/burst.json"
	grep -q '"200": 50' "$T/burst.json" || fail "http requests not all answered: $(cat "$T/burst.json")"
	sleep 0.3
done
wait_exit "$STREAM" 20 || fail "streaming clients did not finish"
cat "$T/stream.log"
[ "$EXIT_STATUS" = 0 ] || fail "streaming clients failed (stuck or data mismatch)"
[ "$(kv clean "$T/stream.log")" = 50 ] && [ "$(kv closed_by_peer "$T/stream.log")" = 0 ] ||
	fail "connections dropped under buffer exhaustion"
[ "$(kv min_received "$T/stream.log")" -ge 262144 ] ||
	fail "a connection was starved: only $(kv min_received "$T/stream.log") bytes in 4 s"
nobufs=$(metric sluice_buffer_exhausted_total)
moved=$((2 * $(kv received "$T/stream.log")))
say "receives that found no buffer: $nobufs; buffers' worth of data moved: $((moved / 1024))"
[ "$nobufs" -gt 0 ] || fail "the buffer ring was never empty: the test proves nothing"
[ "$nobufs" -le $((2 * moved / 1024)) ] || fail "herd of failed receives: $nobufs for $((moved / 1024)) buffers"
wait_for 5 metric_eq sluice_connections_active 0 || fail "connections left: $(metric sluice_connections_active)"
say "ok"
