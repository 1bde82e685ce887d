#!/usr/bin/env bash
# 1000 established connections keep exchanging data through 20 SIGHUP reloads
# that move new connections between backends: not one is dropped, and each
# reload changes where new connections go. (Both backends stay in the config:
# the listener's pool changes. A backend removed from the config would have
# its connections drained at the drain pace — 21-paced-drain.)
# timeout: 180
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner --threads 2
backend b2 2 banner --threads 2
conf() { # conf FILE POOL: the listener routes to POOL; pools one (b1) and two (b2)
	cat >"$1" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "$2"; } );
pools = ( { name = "one"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; } ); },
          { name = "two"; servers = ( { name = "b2"; address = "$(be_addr 2):9000"; } ); } );
CONF
}
conf "$T/a.conf" one
conf "$T/b.conf" two
cp "$T/a.conf" "$T/s.conf"
sluiced_start "$T/s.conf"

in_lb "$TPEER" chatter -c 10.77.0.1:8080 -n 1000 --duration-ms 25000 --interval-ms 200 \
	--banner -p 100 --timeout-ms 90000 >"$T/chatter.log" 2>&1 &
CHAT=$!
wait_for 20 stat_eq b1 active 1000 ||
	fail "chatter did not get its 1000 connections up: $(stat b1 active)"
say "1000 connections established on b1"

for i in $(seq 1 20); do
	if [ $((i % 2)) -eq 1 ]; then cp "$T/b.conf" "$T/s.conf"; want=b2; else cp "$T/a.conf" "$T/s.conf"; want=b1; fi
	kill -HUP "$SLUICED_PID"
	gen=$((i + 1))
	wait_for 5 sh -c "grep -q 'generation $gen in service' $T/sluiced.log" || fail "reload $i not applied"
	in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 10 -p 10 --banner >"$T/probe.log" 2>&1 ||
		{ cat "$T/probe.log"; fail "probe after reload $i failed"; }
	[ "$(kv "backend.$want" "$T/probe.log")" = 10 ] ||
		fail "after reload $i new connections should go to $want: $(cat "$T/probe.log")"
	sleep 0.5
done
say "20 reloads applied, each one routed new connections as configured"
wait "$CHAT"; rc=$?
cat "$T/chatter.log"
[ $rc -eq 0 ] || fail "established connections were disturbed by the reloads"
[ "$(kv failures "$T/chatter.log")" = 0 ] || fail "chatter failures"
[ "$(kv conns "$T/chatter.log")" = 1000 ] || fail "chatter connections"
[ "$(metric 'sluice_config_reloads_total{result="success"}')" = 20 ] || fail "reload counter"
say "ok"
