#!/usr/bin/env bash
# sluicectl drain BACKEND: the backend gets no new clients at once, its open
# connections are closed at the drain pace (not all at once), the others are
# untouched; sluicectl enable puts it back in rotation.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner
backend b2 2 banner
# no rate limit: a learned one would send a client refused a token to the other
# backend, and the 100/100 split round robin promises is what is checked
SERVER_OPTS="rate = 0;" write_conf "$T/s.conf" 2 round_robin 1 2 -- "drain = { period_s = 3; grace_s = 2; };"
sluiced_start "$T/s.conf"
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 200 --banner --wait-close-ms 10000 --timeout-ms 30000
HOLD=$LAST_PID
wait_for 10 grep -q ready "$T/hold.log" || fail "held connections not up"
wait_for 5 stat_eq b1 active 100 || fail "b1 holds $(stat b1 active), expected 100"
ctl drain b1 || fail "sluicectl drain"
client during echo-clients -c 10.77.0.1:8080 -n 50 --banner || fail "clients during the drain"
[ "$(kv backend.b2 "$T/during.log")" = 50 ] || fail "new clients went to the drained b1"
[ "$(backend_metric sluice_backend_up app 1)" = 0 ] || fail "b1 not out of rotation"
wait_exit "$HOLD" 15 || fail "hold did not end"
cat "$T/hold.log"
[ "$(kv closed_by_peer "$T/hold.log")" = 100 ] || fail "b1's 100 connections should close, b2's stay"
last=$(kv last_close_ms "$T/hold.log"); max1s=$(kv max_closes_1s "$T/hold.log")
say "b1's connections drained within $last ms, at most $max1s per second (pace ~33/s)"
[ "$last" -ge 2000 ] && [ "$max1s" -le 50 ] || fail "not paced"
[ "$(stat b2 active)" = 0 ] || true
ctl enable b1 || fail "sluicectl enable"
client after echo-clients -c 10.77.0.1:8080 -n 50 --banner || fail "clients after enable"
[ "$(kv backend.b1 "$T/after.log")" -ge 20 ] || fail "b1 not back in rotation"
ctl drain nosuch >"$T/nosuch.log" 2>&1 && fail "draining an unknown backend succeeded"
grep -q 'no backend named' "$T/nosuch.log" || fail "unknown backend not explained"
say "ok"
