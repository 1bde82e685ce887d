#!/usr/bin/env bash
# max_conns held by the kernel: 500 clients through 2 workers to a backend
# with max_conns = 50 — the backend never holds more than 50 at once, all 500
# are served over time, and the ledger is 0 afterwards. A plain connect()
# from another process put in sluiced's cgroup is refused by the kernel when
# the backend is full; a process outside the cgroup is not affected.
# timeout: 180
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo --threads 2
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 60000; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; } );
pools = ( { name = "app"; queue = { timeout_ms = 60000; }; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 50; } ); } );
CONF
sluiced_start "$T/s.conf"

# 500 clients at once, each holding its backend for 300 echo rounds; meanwhile
# the backend host's kernel is asked every few ms how many connections to
# the backend are established
( while :; do in_be ss -Htn state established '( sport = :9000 )' | wc -l; sleep 0.003; done ) \
	>"$T/established.txt" 2>/dev/null &
SAMPLER=$!
# and the ledger itself, the count the kernel enforces
( while :; do "$SLUICECTL" bpf "$PIN" | awk -v a="$(be_addr 1):9000" '$1 == a { print $3 }'; sleep 0.003; done ) \
	>"$T/ledger.txt" 2>/dev/null &
LSAMPLER=$!
wait_for 5 test -s "$T/established.txt" || fail "sampler did not start"
client flood echo-clients -c 10.77.0.1:8080 -n 500 -p 500 --rounds 300 --size 64 \
	--io-timeout-ms 60000 --timeout-ms 150000 || fail "not every client was served"
kill "$SAMPLER" "$LSAMPLER"; wait "$SAMPLER" "$LSAMPLER" 2>/dev/null
[ "$(kv ok "$T/flood.log")" = 500 ] || fail "served $(kv ok "$T/flood.log") of 500"
wait_for 2 stat_eq e1 accepted 500 || fail "backend accepted $(stat e1 accepted), expected 500"
led=$(sort -n "$T/ledger.txt" | tail -1)
est=$(sort -n "$T/established.txt" | tail -1)
say "ledger, most seen: $led over $(wc -l <"$T/ledger.txt") samples (max_conns 50)"
say "established at the backend, most seen: $est over $(wc -l <"$T/established.txt") samples"
[ "$led" -le 50 ] || fail "the ledger held $led slots; max_conns is 50"
[ "$led" -ge 40 ] || fail "ledger peak $led: the limit was never reached, so this proved nothing"
# the backend host's view is a cross-check, not exact: `ss` dumps the socket
# table in chunks while connections churn (a closing socket and its successor
# can both land in one dump), and a FIN sluice sent may still be in flight;
# the ledger above is the count the kernel enforces
[ "$est" -le 55 ] || fail "$est connections established to the backend at once; max_conns is 50"
# the backend program counts a connection until it closes its socket: a slot
# frees when sluice closes its end after both FINs, and the program may accept
# the next client a moment before it closes the finished one — at most one
# such straggler per worker
peak=$(stat e1 max_active)
say "the backend program's own count peaked at $peak"
[ "$peak" -le 52 ] || fail "the backend program held $peak connections at once"
for w in 0 1; do
	n=$(metric "sluice_worker_connections_accepted_total{worker=\"$w\"}")
	[ "${n:-0}" -ge 50 ] || fail "worker $w accepted ${n:-0}: both workers must take part"
done
refused=$(metric 'sluice_backend_kernel_refused_total{pool="app",backend="b1",address="10.77.0.11:9000",reason="full"}')
say "connects the kernel refused as full: $refused"
wait_for 5 ledger_eq 1 0 || fail "ledger is $(ledger 1) after every client closed"
[ "$(bpf_col 1 ADMITTED)" = "$(bpf_col 1 RELEASED)" ] || fail "admitted != released"

# the backend full (50 held through sluice), a plain connect from a process
# in sluiced's cgroup is refused by the kernel, whoever makes it
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 50 --wait-close-ms 0 --timeout-ms 60000
HOLD=$LAST_PID
wait_for 10 grep -q ready "$T/hold.log" || fail "could not hold 50 connections"
wait_for 5 ledger_eq 1 50 || fail "ledger $(ledger 1), expected 50"
sh -c "echo \$\$ > $(cgroup_dir)/cgroup.procs && exec nsenter --net=/run/netns/$LB \
	$TPEER connect-only -c $(be_addr 1):9000 -n 3" >"$T/incg.log" 2>&1
cat "$T/incg.log"
[ "$(kv ok "$T/incg.log")" = 0 ] || fail "a process in sluiced's cgroup got past max_conns"
in_lb "$TPEER" connect-only -c "$(be_addr 1):9000" -n 3 >"$T/outcg.log" 2>&1
[ "$(kv ok "$T/outcg.log")" = 3 ] || fail "a process outside the cgroup was affected: $(cat "$T/outcg.log")"
kill "$HOLD"
wait_for 5 ledger_eq 1 0 || fail "ledger $(ledger 1) after the held connections closed"
say "ok"
