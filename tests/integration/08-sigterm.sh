#!/usr/bin/env bash
# SIGTERM: listeners close at once (new clients are refused); open
# connections are closed at a pace spread over drain.period_s (not all at
# once: every closed client reconnects somewhere); stragglers get
# drain.grace_s more; sluiced exits 0 within period + grace. An idle sluiced
# exits at once.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 echo
write_conf "$T/s.conf" 2 least_conn 1 -- "drain = { period_s = 3; grace_s = 2; };"
sluiced_start "$T/s.conf"

bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 300 --wait-close-ms 20000 --timeout-ms 40000
HOLD=$LAST_PID
wait_for 10 grep -q ready "$T/hold.log" || fail "hold clients not ready"
t0=$(date +%s%N)
kill -TERM "$SLUICED_PID"
sleep 0.3
in_lb "$TPEER" connect-only -c 10.77.0.1:8080 -n 5 >"$T/refused.log" 2>&1
[ "$(kv ok "$T/refused.log")" = 0 ] || fail "new connections accepted after SIGTERM: $(cat "$T/refused.log")"
wait_exit "$SLUICED_PID" 15 || fail "sluiced still running 15 s after SIGTERM"
ms=$((($(date +%s%N) - t0) / 1000000))
say "sluiced exited with $EXIT_STATUS after $ms ms"
[ "$EXIT_STATUS" -eq 0 ] || fail "exit status $EXIT_STATUS"
[ $ms -ge 2500 ] && [ $ms -le 6000 ] || fail "exit after $ms ms; period_s 3 + grace_s 2"
wait_exit "$HOLD" 10 || fail "hold client did not finish"
cat "$T/hold.log"
[ "$(kv closed_by_peer "$T/hold.log")" = 300 ] || fail "not every connection was closed"
last=$(kv last_close_ms "$T/hold.log"); first=$(kv first_close_ms "$T/hold.log")
max1s=$(kv max_closes_1s "$T/hold.log")
say "closes from $first to $last ms after SIGTERM, at most $max1s in any second (pace 100/s)"
[ "$last" -ge 2000 ] || fail "closed within $last ms: not spread over period_s"
[ "$max1s" -le $((300 / 3 * 12 / 10 + 10)) ] || fail "$max1s closes in one second"

# an idle sluiced exits at once
sluiced_start "$T/s.conf"
client few echo-clients -c 10.77.0.1:8080 -n 20 || fail "clients"
t0=$(date +%s%N)
kill -TERM "$SLUICED_PID"
wait_exit "$SLUICED_PID" 10 || fail "no exit"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$EXIT_STATUS" -eq 0 ] && [ $ms -lt 2000 ] || fail "idle sluiced took $ms ms / status $EXIT_STATUS"
say "ok (idle stop in $ms ms)"
