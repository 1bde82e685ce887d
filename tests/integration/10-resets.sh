#!/usr/bin/env bash
# Resets cross the proxy: a backend that resets makes the client see a reset;
# a client that resets makes the backend see one. No slot is left behind.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend rst 1 rst
backend echo 2 echo
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = (
  { name = "r"; address = "10.77.0.1:8080"; pool = "rst"; },
  { name = "e"; address = "10.77.0.1:8081"; pool = "echo"; }
);
pools = (
  { name = "rst"; servers = ( { address = "$(be_addr 1):9000"; } ); },
  { name = "echo"; servers = ( { address = "$(be_addr 2):9000"; } ); }
);
CONF
sluiced_start "$T/s.conf"
in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 20 -p 20 >"$T/r.log" 2>&1
cat "$T/r.log"
[ "$(kv failed "$T/r.log")" = 20 ] || fail "clients of a resetting backend should fail"
grep -qi 'reset' "$T/r.log" || fail "clients did not see a reset"
in_lb "$TPEER" echo-clients -c 10.77.0.1:8081 -n 30 -p 10 --reset >"$T/c.log" 2>&1 || { cat "$T/c.log"; fail "resetting clients"; }
wait_for 5 stat_eq echo resets 30 ||
	fail "backend saw $(stat echo resets) resets, expected 30"
wait_for 5 metric_eq sluice_connections_active 0 ||
	fail "connections left active"
for b in "rst\",backend=\"$(be_addr 1):9000\",address=\"$(be_addr 1):9000" "echo\",backend=\"$(be_addr 2):9000\",address=\"$(be_addr 2):9000"; do
	[ "$(metric "sluice_backend_connections{pool=\"$b\"}")" = 0 ] || fail "backend slot leaked: $b"
done
say "ok"
