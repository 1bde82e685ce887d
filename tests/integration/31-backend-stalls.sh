#!/usr/bin/env bash
# Backends that stall, with timeouts = { connect_ms = 500; backend_wait_ms =
# 1500; idle_s = 6 }:
#  - b1 accepts and then never reads: 50 clients each try to push 200 MB
#    through sluiced. Buffering stays bounded — sluiced's RSS grows by less
#    than its buffer pool (32 MiB here) + 16 MiB while 10 GB wait to be sent —
#    and nothing spins: sluiced uses under 100 ms of CPU in 3 s of the stall.
#    Meanwhile 10 clients chatting with another backend are served normally.
#    No byte moves once the buffers are full, so idle_s closes all 50 about
#    6 s after their last byte, and the ledger gives their slots back.
#  - b2 is hung (SIGSTOP) with a listen backlog of 1: once its accept queue
#    is full its SYNs go unanswered and connects time out after connect_ms
#    (after three in a row b2 counts as down, and its clients are closed at
#    once); a client whose connect got into the queue before is closed by
#    idle_s. Every client of b2 is closed within idle_s + 2 s, none before
#    connect_ms.
# (09-timeouts: connect and idle timeouts against dropped SYNs and idle
# clients; 35-buffer-exhaustion: a pool too small for its connections.)
# A limit this stays within: a connection pushing into a stalled backend
# holds up to 4 of its worker's buffers until idle_s, so 256 per worker
# leave room even if all 50 land on one worker. A quarter of the pool's size
# in such connections on one worker holds all of it, and that worker's other
# connections stall too (with 128 buffers, an uneven SO_REUSEPORT split of
# the 50 did that to the chatter below now and then).
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 stall --threads 2
backend b2 2 echo --backlog 1
backend b3 3 echo
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { connect_ms = 500; backend_wait_ms = 1500; idle_s = 6; };
buffers = { count = 256; size = 65536; };
listeners = ( { name = "deaf"; address = "10.77.0.1:8080"; pool = "deaf"; },
              { name = "hung"; address = "10.77.0.1:8081"; pool = "hung"; },
              { name = "fine"; address = "10.77.0.1:8082"; pool = "fine"; } );
pools = ( { name = "deaf"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; } ); },
          { name = "hung"; retries = 10; servers = ( { name = "b2"; address = "$(be_addr 2):9000"; } ); },
          { name = "fine"; servers = ( { name = "b3"; address = "$(be_addr 3):9000"; } ); } );
CONF
sluiced_start "$T/s.conf"
kill -STOP "$PID_b2"
rss0=$(rss_kb "$SLUICED_PID")

bg push "$LB" "$TPEER" stream -c 10.77.0.1:8080 -n 50 --push --bytes 200m --wait-close-ms 15000 \
	--timeout-ms 30000
PUSH=$LAST_PID
bg hung "$LB" "$TPEER" stream -c 10.77.0.1:8081 -n 10 --push --bytes 64 --wait-close-ms 15000 \
	--timeout-ms 30000
HUNG=$LAST_PID
wait_for 10 grep -q ready "$T/push.log" || fail "pushing clients not up: $(cat "$T/push.log")"
wait_for 5 stat_eq b1 active 50 || fail "b1 holds $(stat b1 active) connections, expected 50"
sleep 1 # every buffer on the way fills up
bg fine "$LB" "$TPEER" chatter -c 10.77.0.1:8082 -n 10 --duration-ms 2000 --interval-ms 50 \
	--io-timeout-ms 1000
FINE=$LAST_PID
cpu=$(cpu_over "$SLUICED_PID" 3)
rss1=$(rss_kb "$SLUICED_PID")
wait_exit "$FINE" 10 || fail "clients of b3 did not finish"
cat "$T/fine.log"
[ "$EXIT_STATUS" = 0 ] && [ "$(kv msgs "$T/fine.log")" -ge 300 ] ||
	fail "clients of a healthy backend were not served while b1 stalled"
say "b1 stalled with 50 x 200 MB to send: sluiced RSS $rss0 -> $rss1 KiB, $cpu ms of CPU in 3 s"
[ $((rss1 - rss0)) -lt $((48 * 1024)) ] || fail "RSS grew by $(((rss1 - rss0) / 1024)) MiB: buffering not bounded"
[ "$cpu" -lt 150 ] || fail "sluiced busy while stalled: $cpu ms of CPU in 3 s"

wait_exit "$PUSH" 15 || fail "pushing clients not closed by idle_s"
cat "$T/push.log"
[ "$(kv closed_by_peer "$T/push.log")" = 50 ] || fail "not all pushing clients were closed"
first=$(kv first_close_ms "$T/push.log"); last=$(kv last_close_ms "$T/push.log")
say "pushing clients closed $first..$last ms after they were up (idle_s 6)"
[ "$first" -ge 5000 ] && [ "$last" -le 9000 ] || fail "idle close at $first..$last ms; idle_s is 6"
[ "$(kv sent "$T/push.log")" -lt $((50 * 200 * 1048576)) ] || fail "all data went through a stalled backend?"
wait_for 3 ledger_eq 1 0 || fail "ledger of b1: $(ledger 1)"

wait_exit "$HUNG" 15 || fail "clients of the hung backend not closed"
cat "$T/hung.log"
[ "$(kv closed_by_peer "$T/hung.log")" = 10 ] || fail "not all clients of the hung backend were closed"
first=$(kv first_close_ms "$T/hung.log"); last=$(kv last_close_ms "$T/hung.log")
say "clients of the hung backend closed $first..$last ms after they were up"
[ "$first" -ge 450 ] && [ "$last" -le 8000 ] ||
	fail "closed at $first..$last ms: connect_ms 500, idle_s 6"
grep -q "backend $(be_addr 2):9000: connect: timed out" "$T/sluiced.log" || fail "connect timeouts not logged"
f=$(backend_metric sluice_backend_connect_failures_total hung 2)
r=$(metric 'sluice_refused_total{pool="hung",reason="down"}')
say "hung backend: $f connects timed out, $r clients refused"
[ "${f:-0}" -ge 2 ] && [ "${r:-0}" -ge 1 ] || fail "connect timeouts not counted"
n=$(metric 'sluice_connections_closed_total{reason="idle_timeout"}')
[ "$n" -ge 50 ] || fail "idle closes counted: $n"
kill -CONT "$PID_b2"
wait_for 5 metric_eq sluice_connections_active 0 || fail "connections left: $(metric sluice_connections_active)"
say "ok"
