#!/usr/bin/env bash
# Bad request heads on a mode = "http" listener: oversized, binary garbage,
# bare LF, NUL, space before the colon get 400; a head that never ends and a
# slowloris are closed after timeouts.head_ms; each is counted; neighbour
# connections — on the same daemon and the same listener — are unaffected.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
web_and_raw 1500
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
