#!/usr/bin/env bash
# A reconnect storm against a rate limit: 3000 WebSocket clients arrive within
# 200 ms at a pool whose backend takes rate = 300 (burst 30), queue.max 1000,
# queue timeout 5 s. The kernel's bucket lets at most burst + rate x T through
# in any T; the backend timestamps its accepts, which a busy host delays by a
# few ms, so any 100 ms of them may hold at most burst + rate x 120 ms + 1 and
# any second burst + rate x 1.02 s + 1; clients beyond the queue (or too long in it) get 503 with a
# Retry-After; clients that obey it all get in; none is let in above the limits.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
bg ws "$BE" "$BUILD/bench/backend" --mode ws --listen "$(be_addr 1):9000" --threads 2 \
	--summary "$T/ws.json" --ready "$T/ws.ready" --max-seconds 100
WS=$LAST_PID
wait_for 5 test -e "$T/ws.ready" || fail "ws backend did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 60000; };
listeners = ( { name = "ws"; address = "10.77.0.1:8080"; mode = "http"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; queue = { max = 1000; timeout_ms = 5000; };
    retry_after = { min_s = 1; max_s = 60; jitter = 0.5; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = 300; burst = 30; max_conns = 5000; } ); } );
CONF
sluiced_start "$T/s.conf"
in_lb "$BUILD/bench/loadgen" storm -c 10.77.0.1:8080 -n 3000 --policy retry-after --proto ws \
	--spread-ms 200 --give-up-ms 20000 --max-ms 70000 --seed 2 --json >"$T/storm.json" 2>"$T/storm.err" ||
	{ cat "$T/storm.err"; fail "storm run failed"; }
kill "$WS"; wait_exit "$WS" 5 || fail "backend did not exit"
python3 - "$T/storm.json" "$T/ws.json" <<'PY' || fail "the storm was not spread as it should be"
import json, sys
s = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
acc = b["accepts_per_10ms"]
peak = max(sum(acc[i:i + 10]) for i in range(len(acc)))
peak1 = max(sum(acc[i:i + 100]) for i in range(len(acc)))
lim, lim1 = 30 + int(300 * 0.12) + 1, 30 + int(300 * 1.02) + 1
print(f"reconnected {s['reconnected']}/3000 in {s['t100_ms']} ms; 503s {s['http_503']}; "
      f"attempts/client {s['attempts_per_client']}; backend accepted {b['accepted']}, "
      f"at most {peak} in any 100 ms (limit {lim}), {peak1} in any second (limit {lim1})")
ok = s["reconnected"] == 3000 and s["http_503"] > 0 and peak <= lim and peak1 <= lim1
ok = ok and b["accepted"] <= 3000 * 1.02
sys.exit(0 if ok else 1)
PY
full=$(metric 'sluice_refused_total{pool="app",reason="queue_full"}')
late=$(metric 'sluice_refused_total{pool="app",reason="queue_timeout"}')
say "503 reasons: queue_full $full, queue_timeout $late"
[ "$(ledger 1)" = 0 ] || fail "ledger $(ledger 1) after all closed"
say "ok"
