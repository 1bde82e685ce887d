#!/usr/bin/env bash
# SIGTERM: listeners close at once (new clients are refused), open
# connections keep working until they end or drain.grace_s runs out, then
# sluiced closes the rest and exits 0 within the grace period.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 echo
write_conf "$T/s.conf" 2 least_conn 1 -- "drain = { grace_s = 4; };"
sluiced_start "$T/s.conf"

# 1: connections that outlive the grace period are closed by sluice at its end
in_lb "$TPEER" hold -c 10.77.0.1:8080 -n 300 --wait-close-ms 20000 >"$T/hold.log" 2>&1 &
HOLD=$!
wait_for 10 grep -q ready "$T/hold.log" || fail "hold clients not ready"
# and connections that are busy keep exchanging data during the grace period
in_lb "$TPEER" chatter -c 10.77.0.1:8080 -n 50 --duration-ms 2500 --interval-ms 50 \
	>"$T/chatter.log" 2>&1 &
CHAT=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$SLUICED_PID"
sleep 0.3
in_lb "$TPEER" connect-only -c 10.77.0.1:8080 -n 5 >"$T/refused.log" 2>&1
[ "$(kv ok "$T/refused.log")" = 0 ] || fail "new connections accepted after SIGTERM: $(cat "$T/refused.log")"
wait "$CHAT" || { cat "$T/chatter.log"; fail "busy connections were cut during the grace period"; }
wait_exit "$SLUICED_PID" 15 || fail "sluiced still running 15 s after SIGTERM"
ms=$((($(date +%s%N) - t0) / 1000000))
say "sluiced exited with $EXIT_STATUS after $ms ms"
[ "$EXIT_STATUS" -eq 0 ] || fail "exit status $EXIT_STATUS"
[ $ms -ge 3500 ] && [ $ms -le 7000 ] || fail "exit after $ms ms; grace_s is 4"
wait "$HOLD" || { cat "$T/hold.log"; fail "held connections were not closed by sluice"; }
cat "$T/hold.log"

# 2: when every connection ends early, sluiced exits early
sluiced_start "$T/s.conf"
client few echo-clients -c 10.77.0.1:8080 -n 20 || fail "clients"
t0=$(date +%s%N)
kill -TERM "$SLUICED_PID"
wait_exit "$SLUICED_PID" 10 || fail "no exit"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$EXIT_STATUS" -eq 0 ] && [ $ms -lt 2000 ] || fail "idle sluiced took $ms ms / status $EXIT_STATUS"
say "ok (idle stop in $ms ms)"
