#!/usr/bin/env bash
# A backend that is down from the start, and one killed while clients keep
# coming: clients land on the live backends (retried on another backend, not
# failed), the dead ones are marked down and counted as failures.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner
backend b2 2 banner
# b3 (10.77.0.13:9000) never listens: connects are refused
write_conf "$T/s.conf" 2 round_robin 1 2 3
sluiced_start "$T/s.conf"

client r1 echo-clients -c 10.77.0.1:8080 -n 300 -p 30 --banner || fail "clients failed with b3 down"
[ -z "$(kv backend.b3 "$T/r1.log")" ] || fail "a client reached b3"
fails=$(backend_metric sluice_backend_connect_failures_total app 3)
say "connect failures on b3: $fails"
[ "${fails:-0}" -ge 1 ] || fail "failures on b3 were not counted"
[ "$(backend_metric sluice_backend_up app 3)" = 0 ] ||
	fail "b3 not marked down"

# kill b2 while a long run of clients is under way
in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 4000 -p 20 --banner --rounds 30 >"$T/r2.log" 2>&1 &
RUN=$!
sleep 1
kill "$PID_b2"
wait_exit "$PID_b2" 5 || fail "b2 did not exit"
say "killed b2"
kill -0 "$RUN" 2>/dev/null || fail "the client run ended before b2 died; make it longer"
wait "$RUN"; rc=$?
cat "$T/r2.log"
b1=$(kv backend.b1 "$T/r2.log"); b2=$(kv backend.b2 "$T/r2.log"); failed=$(kv failed "$T/r2.log")
# clients connected to b2 when it died lose their connection (nothing can save
# those); every client that arrived afterwards must land on b1
[ "${failed:-0}" -le 20 ] || fail "$failed clients failed; at most the 20 in flight on b2 may"
[ $(( $(kv ok "$T/r2.log") + ${failed:-0} )) -eq 4000 ] || fail "clients unaccounted for"
[ "${b1:-0}" -ge 2500 ] || fail "only ${b1:-0} clients landed on b1 after b2 died"
client r3 echo-clients -c 10.77.0.1:8080 -n 200 -p 20 --banner || fail "clients failed after b2 died"
[ "$(kv backend.b1 "$T/r3.log")" = 200 ] || fail "clients should all land on b1 now"
say "ok"
