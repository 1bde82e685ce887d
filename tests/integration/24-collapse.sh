#!/usr/bin/env bash
# The reconnect storm that collapses unprotected backends, through sluice:
# 4000 clients that give up after 2 s and retry at once (the client
# behaviour in the MURAL post-mortem) all reconnect at the same moment to a
# pool of 2 backends that each burn 2 ms of CPU per new connection and are
# configured at rate = 300. Through sluice every client is back within
# 2 x 4000/600 s, and the backends accept about one connection per client
# (at most 1.25; straight at the backends it is several): a client that gave
# up left the queue at once and never reached a backend. The margins are for
# a shared machine: a client can still give up while its connect is on the
# way, and that costs the backend an accept; bench/run.sh measures it.
# (Without sluice the same clients collapse these backends: bench/run.sh.)
# Under SAN=1 (sluiced and the load generator several times slower) the storm
# is 1500 clients: what is checked stays the same.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
N=4000
san_build && N=1500
for i in 1 2; do
	bg "b$i" "$BE" "$BUILD/bench/backend" --mode echo --listen "$(be_addr $i):9000" \
		--conn-cost-us 2000 --summary "$T/b$i.json" --ready "$T/b$i.ready" --max-seconds 100
	eval "PID_b$i=$LAST_PID"
	wait_for 5 test -e "$T/b$i.ready" || fail "backend $i did not start"
done
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 60000; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; queue = { max = 10000; timeout_ms = 60000; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = 300; burst = 30; },
                { name = "b2"; address = "$(be_addr 2):9000"; rate = 300; burst = 30; } ); } );
CONF
sluiced_start "$T/s.conf"
in_lb "$BUILD/bench/loadgen" storm -c 10.77.0.1:8080 -n "$N" --policy naive --proto tcp \
	--give-up-ms 2000 --max-ms 40000 --seed 1 --json >"$T/storm.json" 2>"$T/storm.err" ||
	{ cat "$T/storm.err"; fail "storm run failed"; }
kill "$PID_b1" "$PID_b2"
wait_exit "$PID_b1" 5 && wait_exit "$PID_b2" 5 || fail "backends did not exit"
python3 - "$N" "$T/storm.json" "$T/b1.json" "$T/b2.json" <<'PY' || fail "the storm was not absorbed"
import json, sys
n = int(sys.argv[1])
s = json.load(open(sys.argv[2]))
acc = sum(json.load(open(f))["accepted"] for f in sys.argv[3:])
print(json.dumps({k: s[k] for k in s if not isinstance(s[k], (list, dict))}))
t100 = s.get("t100_ms")
back = s.get("reconnected")
print(f"reconnected {back}/{n}, all back after {t100} ms (limit {2 * n / 600 * 1000:.0f}); "
      f"attempts/client {s.get('attempts_per_client')}; backend accepts {acc} "
      f"({acc / n:.3f} per client)")
ok = back == n and t100 is not None and t100 <= 2 * n / 600 * 1000
ok = ok and acc <= n * 1.25
sys.exit(0 if ok else 1)
PY
gone=$(metric 'sluice_refused_total{pool="app",reason="client_gone"}')
say "clients that gave up while waiting, dropped before any backend saw them: $gone"
say "ok"
