#!/usr/bin/env bash
# Synthetic check: sluiced sends "PING\n" through its own listener, pinned to
# each backend in turn, and wants "PING" back. b1 echoes and passes; b2
# accepts connections (its TCP health check passes) but never answers, so
# only the synthetic check sees it fail. Once b2 is gone its health check
# takes it down, and the synthetic check fails with a refusal, never by
# falling back to b1. Clients keep flowing to b1 throughout.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 echo
backend b2 2 sink
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; } );
pools = ( { name = "app";
    health = { interval_ms = 200; timeout_ms = 300; rise = 1; fall = 1; };
    synthetic = { interval_ms = 200; timeout_ms = 300; send = "PING\\n"; expect = "PING"; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; },
                { name = "b2"; address = "$(be_addr 2):9000"; } ); } );
CONF
sluiced_start "$T/s.conf"
synth() { metric "sluice_synthetic_checks_total{pool=\"app\",backend=\"$1\",address=\"$(be_addr "${1#b}"):9000\",result=\"$2\"}"; }
ge() { [ "${1:-0}" -ge "$2" ]; }
for i in $(seq 50); do
	ge "$(synth b1 ok)" 3 && ge "$(synth b2 fail)" 3 && break
	sleep 0.1
done
say "b1 ok=$(synth b1 ok) fail=$(synth b1 fail); b2 ok=$(synth b2 ok) fail=$(synth b2 fail)"
ge "$(synth b1 ok)" 3 || fail "b1's synthetic checks do not pass"
ge "$(synth b2 fail)" 3 || fail "b2's synthetic checks do not fail"
[ "$(synth b1 fail)" = 0 ] || fail "a check pinned to b1 failed"
[ "$(synth b2 ok)" = 0 ] || fail "a check pinned to b2 passed (it went to b1?)"
[ "$(backend_metric sluice_backend_up app 2)" = 1 ] || fail "b2 should pass its TCP health check"
grep -q "synthetic: through 10.77.0.1:8080 to backend $(be_addr 2):9000: no reply in time" \
	"$T/sluiced.log" || fail "the failure is not logged"
grep -q "synthetic:.*$(be_addr 1):9000" "$T/sluiced.log" && fail "b1 logged as failing"
in_lb python3 -c "import urllib.request; print(urllib.request.urlopen('http://$ADMIN/status').read().decode())" \
	>"$T/status.html" || fail "no /status"
grep -Eq "<td>b2</td>.*<td>0 ok, [0-9]+ failed</td></tr>" "$T/status.html" ||
	fail "/status does not show b2's failing synthetic checks"

kill "$PID_b2"; wait "$PID_b2" 2>/dev/null
wait_for 3 metric_eq "sluice_backend_up{pool=\"app\",backend=\"b2\",address=\"$(be_addr 2):9000\"}" 0 ||
	fail "b2 not down"
f0=$(synth b2 fail) o0=$(synth b1 ok)
client c echo-clients -c 10.77.0.1:8080 -n 40 -p 10 --rounds 2 || fail "clients failed"
for i in $(seq 30); do
	ge "$(synth b2 fail)" $((f0 + 3)) && ge "$(synth b1 ok)" $((o0 + 3)) && break
	sleep 0.1
done
say "b2 down: b1 ok=$(synth b1 ok); b2 ok=$(synth b2 ok) fail=$(synth b2 fail)"
ge "$(synth b2 fail)" $((f0 + 3)) || fail "b2's checks stopped"
[ "$(synth b2 ok)" = 0 ] || fail "a check pinned to a down b2 passed"
ge "$(synth b1 ok)" $((o0 + 3)) || fail "b1's checks stopped"
say "ok"
