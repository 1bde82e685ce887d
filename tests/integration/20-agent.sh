#!/usr/bin/env bash
# Agent check: a backend's agent (here a tiny server that answers one line)
# says "maxconn:10"; within one interval the kernel's limit for the backend
# is 10, below the configured 100; "drain" takes it out of rotation and
# "ready" brings it back.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo
bg agent "$BE" "$TPEER" serve -l "$(be_addr 1):9100" --mode banner --id "maxconn:10" \
	--ready "$T/agent.ready" --timeout-ms 600000
AGENT=$LAST_PID
wait_for 5 test -e "$T/agent.ready" || fail "agent did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; } );
pools = ( { name = "app"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 100;
    agent = { port = 9100; interval_ms = 300; }; } ); } );
CONF
sluiced_start "$T/s.conf"
t0=$(date +%s%N)
wait_for 3 sh -c "[ \"\$($SLUICECTL bpf $PIN | awk '\$1 == \"$(be_addr 1):9000\" {print \$4}')\" = 10 ]" ||
	fail "max_conns is $(bpf_col 1 MAX), expected the agent's 10"
say "agent's maxconn:10 in the kernel after $((($(date +%s%N) - t0) / 1000000)) ms"
[ "$(backend_metric sluice_backend_max_connections app 1)" = 10 ] || fail "metric"
client c echo-clients -c 10.77.0.1:8080 -n 15 -p 15 --hold --io-timeout-ms 1500
[ "$(kv ok "$T/c.log")" = 10 ] || fail "the agent's maxconn:10 did not hold"

kill "$AGENT"; wait "$AGENT" 2>/dev/null
bg agent2 "$BE" "$TPEER" serve -l "$(be_addr 1):9100" --mode banner --id "drain" \
	--ready "$T/agent2.ready" --timeout-ms 600000
AGENT=$LAST_PID
wait_for 3 grep -q "says drain" "$T/sluiced.log" || fail "drain not applied"
[ "$(backend_metric sluice_backend_up app 1)" = 0 ] || fail "drained backend still takes clients"
kill "$AGENT"; wait "$AGENT" 2>/dev/null
bg agent3 "$BE" "$TPEER" serve -l "$(be_addr 1):9100" --mode banner --id "ready,maxconn:50" \
	--ready "$T/agent3.ready" --timeout-ms 600000
wait_for 3 grep -q "says ready" "$T/sluiced.log" || fail "ready not applied"
wait_for 3 sh -c "[ \"\$($SLUICECTL bpf $PIN | awk '\$1 == \"$(be_addr 1):9000\" {print \$4}')\" = 50 ]" ||
	fail "max_conns $(bpf_col 1 MAX), expected 50"
say "ok"
