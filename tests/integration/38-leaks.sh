#!/usr/bin/env bash
# Leaks: a busy life, then SIGTERM — under `make SAN=1` LeakSanitizer must
# find nothing at exit (lib.sh also fails a scenario on any sanitizer report
# in a log), and in a normal build this is a quick check that the same life
# ends with exit 0. The life: 10000 connections opened and closed (200
# between two reloads) and 200 kept open throughout, while 50 reloads add and
# remove a listener, a pool and its backend, and one reload fails; HTTP requests answered 200,
# 503 (a rate-limited pool with no queue) and 400 (bad heads), a head
# timeout; the access log on; sluicectl drain, enable, set and the status
# pages; then SIGTERM with 300 tcp connections and 20 WebSockets open — the
# WebSockets get Close 1012 — and sluiced must exit 0 within the drain.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo --threads 2
backend e2 2 echo
bg web "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 3):9000" --ready "$T/web.ready"
bg ws "$BE" "$BUILD/bench/backend" --mode ws --push-ms 50 --listen "$(be_addr 4):9000" --ready "$T/ws.ready"
wait_for 5 test -e "$T/web.ready" && wait_for 5 test -e "$T/ws.ready" || fail "http/ws backends did not start"
conf() { # conf FILE N: N = 2: with listener, pool and backend "extra"
	local extra_l="" extra_p=""
	if [ "$2" = 2 ]; then
		extra_l=", { name = \"extra\"; address = \"10.77.0.1:8083\"; pool = \"extra\"; }"
		extra_p=", { name = \"extra\"; servers = ( { name = \"e2\"; address = \"$(be_addr 2):9000\"; } ); }"
	fi
	cat >"$1" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
log = { access = "$T/access.txt"; };
timeouts = { head_ms = 1000; };
drain = { period_s = 1; grace_s = 1; };
listeners = ( { name = "raw"; address = "10.77.0.1:8080"; pool = "app"; },
              { name = "web"; address = "10.77.0.1:8081"; mode = "http"; pool = "web"; },
              { name = "ws"; address = "10.77.0.1:8082"; mode = "http"; pool = "ws"; } $extra_l );
pools = ( { name = "app"; servers = ( { name = "e1"; address = "$(be_addr 1):9000"; } ); },
          { name = "web"; queue = { max = 0; }; retry_after = { min_s = 1; max_s = 10; };
            servers = ( { name = "w3"; address = "$(be_addr 3):9000"; rate = 20; burst = 5; } ); },
          { name = "ws"; servers = ( { name = "w4"; address = "$(be_addr 4):9000"; } ); } $extra_p );
CONF
}
conf "$T/one.conf" 1
conf "$T/two.conf" 2
cp "$T/one.conf" "$T/s.conf"
sluiced_start "$T/s.conf"
if nm -u "$SLUICED" 2>/dev/null | grep -q __asan_init; then san="ASan + LeakSanitizer"; else san="normal build"; fi
say "sluiced: $san"

bg chatter "$LB" "$TPEER" chatter -c 10.77.0.1:8080 -n 200 --duration-ms 600000 --interval-ms 200 \
	--timeout-ms 600000
CHAT=$LAST_PID
gen=1
served=0
for i in $(seq 1 50); do
	in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 200 -p 50 >"$T/conns.log" 2>&1 ||
		{ cat "$T/conns.log"; fail "clients before reload $i"; }
	served=$((served + $(kv ok "$T/conns.log")))
	if [ $((i % 2)) -eq 1 ]; then cp "$T/two.conf" "$T/s.conf"; else cp "$T/one.conf" "$T/s.conf"; fi
	kill -HUP "$SLUICED_PID"
	gen=$((gen + 1))
	wait_for 5 grep -q "generation $gen in service" "$T/sluiced.log" || fail "reload $i not applied"
	case $i in
	10) in_lb python3 "$SRC/tests/tools/httpprobe.py" burst 10.77.0.1:8081 100 >"$T/burst.json"
	    grep -q '"200"' "$T/burst.json" && grep -q '"503"' "$T/burst.json" ||
		    fail "expected 200s and 503s: $(cat "$T/burst.json")" ;;
	20) for kind in oversized garbage no-blank-line; do
		    in_lb python3 "$SRC/tests/tools/httpprobe.py" bad 10.77.0.1:8081 $kind >/dev/null
	    done ;;
	30) echo 'workers = ;' >>"$T/s.conf"
	    kill -HUP "$SLUICED_PID"
	    wait_for 5 grep -q "reload: failed" "$T/sluiced.log" || fail "bad reload not rejected"
	    cp "$T/one.conf" "$T/s.conf" ;;
	39) in_lb "$TPEER" echo-clients -c 10.77.0.1:8083 -n 50 >/dev/null 2>&1 ||
		fail "clients of the listener added by reload 39" ;;
	40) for c in status backends "drain e1" "enable e1" "set e1 rate=1000" status-json "bpf $PIN"; do
		    ctl $c >/dev/null || fail "sluicectl $c"
	    done
	    ;;
	esac
done
say "50 reloads done, $served connections opened and closed"
[ "$served" = 10000 ] || fail "not all 10000 connections served"
kill -0 "$CHAT" || { cat "$T/chatter.log"; fail "the 200 long-lived connections failed"; }

bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 100 --wait-close-ms 10000 --timeout-ms 30000
HOLD=$LAST_PID
bg wsc "$LB" python3 "$SRC/tests/tools/httpprobe.py" ws-hold 10.77.0.1:8082 20 15
WSC=$LAST_PID
wait_for 10 grep -q ready "$T/hold.log" || fail "tcp connections not up"
wait_for 10 grep -q ready "$T/wsc.log" || fail "WebSockets not up: $(cat "$T/wsc.log")"
kill -TERM "$SLUICED_PID"
wait_exit "$SLUICED_PID" 10 || fail "sluiced did not exit within drain period + grace"
say "sluiced exited with $EXIT_STATUS"
[ "$EXIT_STATUS" = 0 ] || fail "exit status $EXIT_STATUS"
wait_exit "$WSC" 20 || fail "WebSocket clients did not end"
cat "$T/wsc.log"
grep -q '"close-1012": 20' "$T/wsc.log" || fail "WebSockets did not all get Close 1012"
wait_exit "$HOLD" 10 || fail "tcp clients did not end"
[ "$(kv closed_by_peer "$T/hold.log")" = 100 ] || fail "tcp connections not closed by the drain"
[ "$(wc -l <"$T/access.txt")" -ge 10000 ] || fail "access log: $(wc -l <"$T/access.txt") lines"
if grep -q 'Sanitizer\|runtime error:' "$T/sluiced.log"; then
	grep -A 15 'Sanitizer\|runtime error:' "$T/sluiced.log" | head -40
	fail "sanitizer report at exit"
fi
say "ok: no sanitizer report ($san)"
