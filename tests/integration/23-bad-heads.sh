#!/usr/bin/env bash
# Bad request heads on a mode = "http" listener: oversized, binary garbage,
# bare LF, NUL, space before the colon get 400; a head that never ends and a
# slowloris are closed after timeouts.head_ms; each is counted; neighbour
# connections — on the same daemon and the same listener — are unaffected.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
bg be "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 1):9000" --ready "$T/be.ready"
wait_for 5 test -e "$T/be.ready" || fail "backend did not start"
backend e2 2 echo
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { head_ms = 1500; };
listeners = ( { name = "web"; address = "10.77.0.1:8080"; mode = "http"; pool = "web"; },
              { name = "raw"; address = "10.77.0.1:8081"; mode = "tcp"; pool = "raw"; } );
pools = ( { name = "web"; servers = ( { address = "$(be_addr 1):9000"; } ); },
          { name = "raw"; servers = ( { address = "$(be_addr 2):9000"; } ); } );
CONF
sluiced_start "$T/s.conf"
in_lb "$TPEER" chatter -c 10.77.0.1:8081 -n 100 --duration-ms 8000 --interval-ms 100 \
	>"$T/chatter.log" 2>&1 &
CHAT=$!
for kind in oversized garbage bare-lf nul space-colon no-blank-line slow; do
	got=$(in_lb python3 "$SRC/tests/tools/httpprobe.py" bad 10.77.0.1:8080 $kind)
	say "$kind: $got"
	case $kind in
	no-blank-line|slow) [ "$got" = closed ] || fail "$kind: expected a timeout close, got $got" ;;
	*) [ "$got" = 400 ] || fail "$kind: expected 400, got $got" ;;
	esac
	# good requests on the same listener go on working
	in_lb python3 "$SRC/tests/tools/httpprobe.py" burst 10.77.0.1:8080 20 >"$T/good.json"
	grep -q '"200": 20' "$T/good.json" || fail "good requests failed after $kind: $(cat "$T/good.json")"
done
wait "$CHAT" || { cat "$T/chatter.log"; fail "neighbour connections were disturbed"; }
say "neighbours: $(cat "$T/chatter.log")"
bad=$(metric 'sluice_connections_closed_total{reason="bad_head"}')
slow=$(metric 'sluice_connections_closed_total{reason="head_timeout"}')
say "counted: bad_head $bad, head_timeout $slow"
[ "$bad" = 5 ] && [ "$slow" = 2 ] || fail "counts"
[ "$(metric sluice_connections_active)" -le 100 ] || fail "connections leaked"
say "ok"
