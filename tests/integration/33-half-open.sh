#!/usr/bin/env bash
# Half-open clients: clients on the backend host (their packets cross the
# veth) vanish without a FIN — their traffic to and from sluiced is dropped
# by iptables, then they are killed, so sluiced hears nothing, ever. 100 of
# them were idle on an echo backend; 50 were being sent data by a backend
# that keeps pushing (sluiced's sends to them block, with buffers queued).
# timeouts.idle_s (3 s) reclaims every one: none closed before, all within
# idle_s + 2 s; their backend connections are closed and the kernel's ledger
# gives the slots back; clients of the same daemon are served throughout.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
command -v iptables >/dev/null || fail "iptables missing: make deps installs it"
backend e1 1 echo
backend src 2 source --bytes 1g
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { idle_s = 3; };
listeners = ( { name = "echo"; address = "10.77.0.1:8080"; pool = "echo"; },
              { name = "push"; address = "10.77.0.1:8081"; pool = "push"; } );
pools = ( { name = "echo"; servers = ( { name = "e1"; address = "$(be_addr 1):9000"; max_conns = 1000; } ); },
          { name = "push"; servers = ( { name = "src"; address = "$(be_addr 2):9000"; max_conns = 1000; } ); } );
CONF
sluiced_start "$T/s.conf"
# the clients run on the backend host, beside the backends but on other ports
bg idle "$BE" "$TPEER" hold -c 10.77.0.1:8080 -n 100 --timeout-ms 30000
IDLE=$LAST_PID
bg pushed "$BE" "$TPEER" stream -c 10.77.0.1:8081 -n 50 --push --bytes 1 --timeout-ms 30000
PUSHED=$LAST_PID
wait_for 10 grep -q ready "$T/idle.log" || fail "idle clients not up: $(cat "$T/idle.log")"
wait_for 10 grep -q ready "$T/pushed.log" || fail "pushed clients not up: $(cat "$T/pushed.log")"
wait_for 5 ledger_eq 1 100 && wait_for 5 ledger_eq 2 50 || fail "ledger $(ledger 1) + $(ledger 2)"
# the clients vanish: nothing of theirs reaches sluiced any more, nor it them
in_be iptables -A OUTPUT -p tcp -d 10.77.0.1 --dport 8080:8081 -j DROP &&
	in_be iptables -A INPUT -p tcp -s 10.77.0.1 --sport 8080:8081 -j DROP ||
	skip "kernel without netfilter: cannot make clients vanish"
kill -9 "$IDLE" "$PUSHED"
wait "$IDLE" "$PUSHED" 2>/dev/null
t0=$(date +%s%N)
say "150 clients vanished without a FIN; the source backend has sent $(stat src bytes_out) bytes"
[ "$(stat src bytes_out)" -gt 1000000 ] || fail "the source backend is not pushing"
client live echo-clients -c 10.77.0.1:8080 -n 50 --rounds 5 || fail "live clients not served"
# not before idle_s: every vanished client still holds its connection at 2 s
sleep "$(awk -v t0="$t0" -v now="$(date +%s%N)" 'BEGIN { d = (t0 + 2e9 - now) / 1e9; print (d > 0 ? d : 0) }')"
n=$(metric sluice_connections_active)
say "2 s after they vanished: $n connections open"
[ "$n" = 150 ] || fail "$n connections open 2 s after the clients vanished; idle_s is 3"
wait_for 3 metric_eq sluice_connections_active 0 ||
	fail "$(metric sluice_connections_active) half-open connections not reclaimed within idle_s + 2 s"
ms=$((($(date +%s%N) - t0) / 1000000))
say "all reclaimed $ms ms after the clients vanished"
[ "$(metric 'sluice_connections_closed_total{reason="idle_timeout"}')" = 150 ] || fail "idle closes counted"
wait_for 2 ledger_eq 1 0 && wait_for 2 ledger_eq 2 0 || fail "ledger $(ledger 1) + $(ledger 2) after"
wait_for 2 stat_eq e1 active 0 && wait_for 2 stat_eq src active 0 ||
	fail "backend connections not closed: e1 $(stat e1 active), src $(stat src active)"
say "ok"
