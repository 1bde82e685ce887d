#!/usr/bin/env bash
# Reload adds and removes listeners: an added listener accepts at once, a
# removed one stops accepting (connects are refused) and the connections it
# accepted are drained at the drain pace — not dropped at once; a listener
# kept across the reload keeps its socket and its connections are untouched.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner
conf() { # conf FILE PORT...: one listener per port, all to pool app
	local f=$1 sep="" l=""; shift
	for p in "$@"; do l="$l$sep{ name = \"l$p\"; address = \"10.77.0.1:$p\"; pool = \"app\"; }"; sep=", "; done
	cat >"$f" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
drain = { period_s = 4; grace_s = 2; };
listeners = ( $l );
pools = ( { name = "app"; servers = ( { address = "$(be_addr 1):9000"; } ); } );
CONF
}
conf "$T/s.conf" 8080 8081
sluiced_start "$T/s.conf"
for p in 8080 8081; do
	client "p$p" echo-clients -c "10.77.0.1:$p" -n 20 --banner || fail "listener $p not serving"
done
# long-lived connections on the listener that is about to go away, and on one that stays
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 100 --banner --wait-close-ms 15000 --timeout-ms 30000
HOLD=$LAST_PID
in_lb "$TPEER" chatter -c 10.77.0.1:8081 -n 50 --duration-ms 6000 --interval-ms 100 --banner \
	>"$T/chatter.log" 2>&1 &
CHAT=$!
wait_for 10 grep -q ready "$T/hold.log" || fail "held connections not up"
wait_for 10 stat_eq b1 active 150 || fail "connections not up: $(stat b1 active)"

conf "$T/s.conf" 8081 8082
kill -HUP "$SLUICED_PID"
wait_for 5 grep -q 'generation 2 in service' "$T/sluiced.log" || fail "reload not applied"
sleep 0.3
in_lb "$TPEER" connect-only -c 10.77.0.1:8080 -n 10 >"$T/old.log" 2>&1
[ "$(kv ok "$T/old.log")" = 0 ] || fail "removed listener still accepts: $(cat "$T/old.log")"
client p8082 echo-clients -c 10.77.0.1:8082 -n 50 --banner || fail "added listener not serving"
client p8081 echo-clients -c 10.77.0.1:8081 -n 50 --banner || fail "kept listener not serving"
wait "$CHAT" || { cat "$T/chatter.log"; fail "connections of the kept listener were disturbed"; }
say "kept listener: $(cat "$T/chatter.log")"
wait_exit "$HOLD" 20 || fail "held connections of the removed listener not closed"
cat "$T/hold.log"
[ "$(kv closed_by_peer "$T/hold.log")" = 100 ] || fail "removed listener's connections not all drained"
last=$(kv last_close_ms "$T/hold.log"); max1s=$(kv max_closes_1s "$T/hold.log")
say "removed listener's 100 connections drained within $last ms, at most $max1s per second"
[ "$last" -ge 3000 ] || fail "drained in $last ms: not paced over period_s = 4"
[ "$max1s" -le 40 ] || fail "$max1s closes in one second (pace 25/s)"
say "ok"
