#!/usr/bin/env bash
# Slowloris on a mode = "http" listener: 200 clients send their request head
# one byte per second and never finish it. timeouts.head_ms (3 s) closes
# every one of them — within head_ms + 1.5 s, none before head_ms, none
# answered, none reaching a backend — while, on the same listener and at the
# same time, normal clients get their answers (bursts of 20 requests, all
# 200, each burst within 1 s) and WebSocket-style chatter on a tcp listener
# of the same daemon carries on. (23-bad-heads: one slow head among malformed
# ones, one at a time.)
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
web_and_raw 3000
bg chatter "$LB" "$TPEER" chatter -c 10.77.0.1:8081 -n 100 --duration-ms 5000 --interval-ms 100
CHAT=$LAST_PID
bg loris "$LB" python3 "$SRC/tests/tools/httpprobe.py" slowloris 10.77.0.1:8080 200 1 10
LORIS=$LAST_PID
sleep 0.5
bursts=0
while kill -0 "$LORIS" 2>/dev/null && [ $bursts -lt 20 ]; do
	in_lb python3 "$SRC/tests/tools/httpprobe.py" burst 10.77.0.1:8080 20 >"$T/burst.json"
	grep -q '"200": 20' "$T/burst.json" || fail "neighbours on the listener not served: $(cat "$T/burst.json")"
	secs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secs"])' "$T/burst.json")
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)' "$secs" ||
		fail "a burst of 20 requests took $secs s during the slowloris"
	bursts=$((bursts + 1))
	sleep 0.2
done
say "$bursts bursts of 20 requests served during the slowloris (the last in $secs s)"
[ $bursts -ge 3 ] || fail "too few bursts while the slowloris lasted"
wait_exit "$LORIS" 15 || fail "slowloris client did not end"
cat "$T/loris.log"
eval "$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("closed", "open", "answered", "connect_errors", "first_close_s", "last_close_s"):
    print(f"l_{k}={r[k]}")' "$T/loris.log")"
[ "$l_connect_errors" = 0 ] && [ "$l_closed" = 200 ] && [ "$l_answered" = 0 ] ||
	fail "slowloris clients: $l_closed closed, $l_open still open, $l_answered answered"
python3 -c 'import sys; f, l = map(float, sys.argv[1:]); sys.exit(0 if f >= 2.9 and l <= 4.5 else 1)' \
	"$l_first_close_s" "$l_last_close_s" ||
	fail "slowloris closed $l_first_close_s..$l_last_close_s s after connecting; head_ms is 3 s"
say "slowloris clients closed $l_first_close_s..$l_last_close_s s after connecting (head_ms 3 s)"
wait "$CHAT" || { cat "$T/chatter.log"; fail "chatter on the tcp listener was disturbed"; }
cat "$T/chatter.log"
[ "$(metric 'sluice_connections_closed_total{reason="head_timeout"}')" = 200 ] || fail "head timeouts counted"
# the slowloris never reached the backend: its connects are the neighbours' requests
c=$(backend_metric sluice_backend_connects_total web 1)
[ "$c" = $((bursts * 20)) ] || fail "backend connects $c, expected $((bursts * 20)) (only the neighbours)"
wait_for 5 metric_eq sluice_connections_active 0 || fail "connections left: $(metric sluice_connections_active)"
say "ok"
