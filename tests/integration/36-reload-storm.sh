#!/usr/bin/env bash
# 100 SIGHUP reloads in about 10 s (one every 100 ms, each waited for) under
# load: 500 connections chatting (every message echoed and checked) and a
# stream of new clients connecting throughout. Every other config moves new
# clients to the other pool and changes the backends' max_conns in the
# kernel. Not one connection is dropped, not one new client fails, the echo
# data is intact, all 100 reloads are counted as successes (generation 101),
# and sluiced holds as many descriptors afterwards as before (nothing leaks
# per reload). (06-reload-under-load: 20 reloads, each one's routing checked.)
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner --threads 2
backend b2 2 banner --threads 2
conf() { # conf FILE POOL MAX_CONNS
	cat >"$1" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "$2"; } );
pools = ( { name = "one"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = $3; } ); },
          { name = "two"; servers = ( { name = "b2"; address = "$(be_addr 2):9000"; max_conns = $3; } ); } );
CONF
}
conf "$T/a.conf" one 5000
conf "$T/b.conf" two 4000
cp "$T/a.conf" "$T/s.conf"
sluiced_start "$T/s.conf"
fds0=$(ls "/proc/$SLUICED_PID/fd" | wc -l)

bg chatter "$LB" "$TPEER" chatter -c 10.77.0.1:8080 -n 500 --duration-ms 11500 --interval-ms 100 \
	--banner --timeout-ms 60000
CHAT=$LAST_PID
wait_for 20 stat_eq b1 active 500 || fail "chatter did not get its 500 connections up: $(stat b1 active)"
# new clients throughout, in batches of 200 (10 at a time) until the reloads end
( while [ ! -e "$T/stop" ]; do
	in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 200 -p 10 --banner --rounds 2 >>"$T/newcomers.log" 2>&1 ||
		exit 1
done ) &
NEW=$!
t0=$(date +%s%N)
for i in $(seq 1 100); do
	if [ $((i % 2)) -eq 1 ]; then cp "$T/b.conf" "$T/s.conf"; else cp "$T/a.conf" "$T/s.conf"; fi
	kill -HUP "$SLUICED_PID"
	wait_for 3 grep -q "generation $((i + 1)) in service" "$T/sluiced.log" ||
		fail "reload $i not applied: $(grep 'reload' "$T/sluiced.log" | tail -2)"
	# one every 100 ms
	sleep "$(awk -v t0="$t0" -v i="$i" -v now="$(date +%s%N)" \
		'BEGIN { d = (t0 + i * 1e8 - now) / 1e9; print (d > 0 ? d : 0) }')"
done
ms=$((($(date +%s%N) - t0) / 1000000))
say "100 reloads in $ms ms"
[ $ms -le 15000 ] || fail "100 reloads took $ms ms"
touch "$T/stop"
wait "$NEW" || { tail -n 3 "$T/newcomers.log"; fail "new clients failed during the reloads"; }
grep -q 'failed=[1-9]' "$T/newcomers.log" && fail "new clients failed during the reloads"
n=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^ok=/) { sub("ok=", "", $i); s += $i } } END { print s + 0 }' "$T/newcomers.log")
say "$n new clients served during the reloads, on both pools"
[ "$n" -ge 1000 ] && grep -q 'backend.b1' "$T/newcomers.log" && grep -q 'backend.b2' "$T/newcomers.log" ||
	fail "too few new clients ($n) or not moved by the reloads"
wait "$CHAT"; rc=$?
cat "$T/chatter.log"
[ $rc -eq 0 ] && [ "$(kv failures "$T/chatter.log")" = 0 ] && [ "$(kv conns "$T/chatter.log")" = 500 ] ||
	fail "established connections were disturbed by the reloads"
[ "$(metric 'sluice_config_reloads_total{result="success"}')" = 100 ] || fail "reloads counted"
[ "$(metric 'sluice_config_reloads_total{result="failure"}')" = 0 ] || fail "failed reloads"
[ "$(metric sluice_config_generation)" = 101 ] || fail "generation $(metric sluice_config_generation)"
wait_for 5 metric_eq sluice_connections_active 0 || fail "connections left: $(metric sluice_connections_active)"
wait_for 2 ledger_eq 1 0 && wait_for 2 ledger_eq 2 0 || fail "ledger $(ledger 1) + $(ledger 2)"
wait_for 3 sh -c "[ \$(ls /proc/$SLUICED_PID/fd | wc -l) = $fds0 ]" ||
	fail "sluiced holds $(ls "/proc/$SLUICED_PID/fd" | wc -l) descriptors after the reloads, $fds0 before"
say "ok"
