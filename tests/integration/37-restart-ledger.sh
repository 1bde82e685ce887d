#!/usr/bin/env bash
# sluiced killed with SIGKILL under load — 300 held connections, 50 clients
# streaming data, new clients connecting and closing all the time (so
# connects are in flight at the kill) — and restarted at once while the
# load goes on, three times. The kernel's ledger counts exactly what is really there:
# with sluiced dead it falls to 0; after the restart, with 200 clients held
# through the new sluiced and the churn stopped, each backend's ledger
# equals the connections that backend really has open (counted by the
# backend itself), admitted - released equals it too, and sluiced reports no
# drift. (15-ledger-release: the same with idle connections, no load.)
# (After the first kill only the churn is left to load the later ones.)
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 echo --threads 2
backend b2 2 echo --threads 2
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; } );
pools = ( { name = "app"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 2000; },
                                      { name = "b2"; address = "$(be_addr 2):9000"; max_conns = 2000; } ); } );
CONF
sluiced_start "$T/s.conf"
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 300 --wait-close-ms 30000 --timeout-ms 60000
wait_for 10 grep -q ready "$T/hold.log" || fail "300 held connections not up"
bg stream "$LB" "$TPEER" stream -c 10.77.0.1:8080 -n 50 --window 256k --wait-close-ms 30000 --timeout-ms 60000
wait_for 10 grep -q ready "$T/stream.log" || fail "streaming clients not up"
# churn: new clients all the time; some fail while sluiced is down, that is fine
( while [ ! -e "$T/stop" ]; do
	in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 100 -p 20 --connect-timeout-ms 1000 \
		--io-timeout-ms 1000 >>"$T/churn.log" 2>&1
done ) &
CHURN=$!
sleep 1
# three times: killed under load, restarted at once (the churn goes on)
for round in 1 2 3; do
	say "load: ledger b1 $(ledger 1), b2 $(ledger 2); SIGKILL"
	kill -9 "$SLUICED_PID"
	wait "$SLUICED_PID" 2>/dev/null
	wait_for 5 sh -c "[ \"\$($SLUICECTL bpf $PIN | awk '\$1 ~ /:9000\$/ { s += \$3 } END { print s + 0 }')\" = 0 ]" ||
		fail "ledger $(ledger 1) + $(ledger 2) with sluiced dead; expected 0"
	sluiced_start "$T/s.conf"
	[ $round = 3 ] || sleep 0.5
done
say "restarted"
bg hold2 "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 200 --wait-close-ms 30000 --timeout-ms 60000
wait_for 10 grep -q ready "$T/hold2.log" || fail "200 connections through the new sluiced not up"
sleep 1
touch "$T/stop"
wait "$CHURN"
grep -q 'ok=[1-9]' "$T/churn.log" || fail "no churn client got through"
# every connection of the old process is gone at the backends, the churn is over
wait_for 5 sh -c "[ \$(( \$(sed -n 's/^active=//p' $T/b1.stats) + \$(sed -n 's/^active=//p' $T/b2.stats) )) = 200 ]" ||
	fail "backends hold $(stat b1 active) + $(stat b2 active) connections, expected 200"
for i in 1 2; do
	l=$(ledger $i); real=$(stat b$i active)
	a=$(bpf_col $i ADMITTED); r=$(bpf_col $i RELEASED)
	drift=$(backend_metric sluice_ledger_drift app $i)
	say "b$i: ledger $l, connections at the backend $real, admitted $a - released $r, drift $drift"
	[ "$l" = "$real" ] || fail "b$i: ledger $l but $real connections"
	[ $((a - r)) = "$l" ] || fail "b$i: admitted - released = $((a - r)), ledger $l"
	[ "$drift" = 0 ] || fail "b$i: sluiced reports ledger drift $drift"
done
[ "$(($(ledger 1) + $(ledger 2)))" = 200 ] || fail "ledgers do not add up to the 200 held connections"
say "ok"
