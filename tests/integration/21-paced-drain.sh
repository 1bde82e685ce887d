#!/usr/bin/env bash
# SIGTERM with 2000 open connections and drain.period_s = 10: the closes are
# spread over the period (no 1 s window closes more than 2000/10 x 1.2 +
# burst), every WebSocket client (npm ws) receives Close 1012 before its TCP
# connection ends — while the backend keeps pushing messages, so the Close
# must fall between them — and sluiced exits 0 within period + grace.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
command -v node >/dev/null && [ -d "$SRC/tests/ws/node_modules/ws" ] ||
	fail "node and npm ws missing: make deps installs them"
bg ws "$BE" "$BUILD/bench/backend" --mode ws --push-ms 50 --listen "$(be_addr 1):9000" \
	--ready "$T/ws.ready" --max-seconds 100
wait_for 5 test -e "$T/ws.ready" || fail "ws backend did not start"
backend e2 2 echo --threads 2
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
drain = { period_s = 10; grace_s = 5; };
listeners = ( { name = "ws"; address = "10.77.0.1:8080"; mode = "http"; pool = "ws"; },
              { name = "raw"; address = "10.77.0.1:8081"; pool = "raw"; } );
pools = ( { name = "ws"; servers = ( { address = "$(be_addr 1):9000"; } ); },
          { name = "raw"; servers = ( { address = "$(be_addr 2):9000"; } ); } );
CONF
sluiced_start "$T/s.conf"
bg node "$LB" node "$SRC/tests/ws/drain_client.js" ws://10.77.0.1:8080/chat 100 60000
NODE=$LAST_PID
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8081 -n 1900 -p 200 --wait-close-ms 40000 --timeout-ms 60000
HOLD=$LAST_PID
wait_for 20 grep -q ready "$T/node.log" || fail "WebSocket clients not up: $(cat "$T/node.log")"
wait_for 20 grep -q ready "$T/hold.log" || fail "tcp clients not up"
[ "$(metric sluice_connections_active)" = 2000 ] || fail "expected 2000 open, $(metric sluice_connections_active)"
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$SLUICED_PID"
wait_exit "$SLUICED_PID" 25 || fail "sluiced still running"
ms=$((($(date +%s%N) - t0) / 1000000))
say "sluiced exited $EXIT_STATUS after $ms ms (period 10 s + grace 5 s)"
[ "$EXIT_STATUS" = 0 ] && [ $ms -le 15500 ] || fail "exit"
wait_exit "$NODE" 10 || fail "node clients did not finish"
wait_exit "$HOLD" 10 || fail "hold did not finish"
ws=$(tail -n 1 "$T/node.log"); say "WebSocket clients: $ws"
python3 -c "
import json, sys
d = json.loads('''$ws''')
sys.exit(0 if d['opened'] == 100 and d['codes'].get('1012') == 100 and d['messages'] > 100 else 1)
" || fail "not every WebSocket client got Close 1012 (1006: dropped without one)"
cat "$T/hold.log"
max1s=$(kv max_closes_1s "$T/hold.log"); last=$(kv last_close_ms "$T/hold.log")
say "tcp clients: closed over $last ms, at most $max1s in one second"
[ "$(kv closed_by_peer "$T/hold.log")" = 1900 ] || fail "not all closed"
[ "$max1s" -le $((2000 / 10 * 12 / 10 + 10)) ] || fail "$max1s closes in one second"
[ "$last" -ge 8000 ] || fail "closed within $last ms: not spread over 10 s"
say "ok"
