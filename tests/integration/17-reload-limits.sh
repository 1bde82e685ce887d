#!/usr/bin/env bash
# SIGHUP changes max_conns and rate in the kernel in place: the ledger is not
# reset (connections already open still count), the new limit holds at once,
# and clients that cannot get a slot wait in the queue and are closed after
# backend_wait_ms, counted by reason.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo
conf() {
	cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 1500; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; } );
pools = ( { name = "app"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = $1; rate = $2; burst = 100; } ); } );
CONF
}
conf 50 1000
sluiced_start "$T/s.conf"
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 30 --wait-close-ms 0 --timeout-ms 60000
wait_for 10 grep -q ready "$T/hold.log" || fail "30 connections not up"
wait_for 5 ledger_eq 1 30 || fail "ledger $(ledger 1), expected 30"

conf 40 200
kill -HUP "$SLUICED_PID"
wait_for 5 grep -q 'generation 2 in service' "$T/sluiced.log" || fail "reload"
say "after reload: ledger $(ledger 1), max $(bpf_col 1 MAX), rate $(bpf_col 1 RATE)"
[ "$(ledger 1)" = 30 ] || fail "the reload reset the ledger to $(ledger 1)"
[ "$(bpf_col 1 MAX)" = 40 ] && [ "$(bpf_col 1 RATE)" = 200 ] || fail "new limits not in the kernel"
[ "$(metric 'sluice_backend_max_connections{pool="app",backend="b1",address="10.77.0.11:9000"}')" = 40 ] ||
	fail "metrics do not show the new max_conns"

# 20 more: 10 fit under the new max_conns, 10 wait 1.5 s and are closed
client more echo-clients -c 10.77.0.1:8080 -n 20 -p 20 --hold --io-timeout-ms 5000
ok=$(kv ok "$T/more.log"); failed=$(kv failed "$T/more.log")
say "of 20 more clients: $ok got in, $failed were turned away"
[ "$ok" = 10 ] && [ "$failed" = 10 ] || fail "expected 10 in and 10 out under max_conns = 40"
[ "$(metric 'sluice_refused_total{pool="app",reason="queue_timeout"}')" = 10 ] ||
	fail "refused_total{queue_timeout} = $(metric 'sluice_refused_total{pool="app",reason="queue_timeout"}')"
wait_for 5 ledger_eq 1 30 || fail "ledger $(ledger 1) after the 10 left"

# raise the limit: room again, the 30 still counted
conf 100 1000
kill -HUP "$SLUICED_PID"
wait_for 5 grep -q 'generation 3 in service' "$T/sluiced.log" || fail "reload"
client more2 echo-clients -c 10.77.0.1:8080 -n 60 -p 60 --hold || fail "60 more under max_conns = 100"
wait_for 5 ledger_eq 1 30 || fail "ledger $(ledger 1)"
say "ok"
