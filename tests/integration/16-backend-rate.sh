#!/usr/bin/env bash
# The kernel's new-connection bucket: rate = 100, burst = 10, and a flood of
# 2000 clients at once. Counted at the backend, accepts in any 100 ms window
# never exceed burst + 10 + 1, the mean rate is within 10% of 100/s, and
# every client is served (they wait their turn in sluice, not in the backend).
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
bg be "$BE" "$BUILD/bench/backend" --mode echo --listen "$(be_addr 1):9000" --threads 2 \
	--summary "$T/be.json" --ready "$T/be.ready" --max-seconds 100
BEPID=$LAST_PID
wait_for 5 test -e "$T/be.ready" || fail "backend did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 60000; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; } );
pools = ( { name = "app"; queue = { timeout_ms = 60000; }; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = 100; burst = 10; } ); } );
CONF
sluiced_start "$T/s.conf"
client flood echo-clients -c 10.77.0.1:8080 -n 2000 -p 2000 --io-timeout-ms 60000 \
	--connect-timeout-ms 10000 --timeout-ms 90000 || fail "not every client was served"
kill "$BEPID"
wait_exit "$BEPID" 5 || fail "backend did not exit"
python3 - "$T/be.json" <<'PY' || fail "the backend's accepts broke the bucket"
import json, sys
d = json.load(open(sys.argv[1]))
b = d["accepts_per_10ms"]
assert d["bucket_ms"] == 10
first = next(i for i, n in enumerate(b) if n)
last = max(i for i, n in enumerate(b) if n)
total = sum(b)
windows = [sum(b[i:i + 10]) for i in range(first, last + 1)]
peak = max(windows)
# the burst is spent at once; after it, one token per 10 ms
secs = (last - first + 1) / 100
mean = (total - 10) / secs
print(f"accepts={total} over {secs:.2f} s, mean {mean:.1f}/s, peak {peak} per 100 ms")
ok = total == 2000 and peak <= 10 + 10 + 1 and abs(mean - 100) <= 10
sys.exit(0 if ok else 1)
PY
r=$(metric 'sluice_backend_kernel_refused_total{pool="app",backend="b1",address="10.77.0.11:9000",reason="rate"}')
say "connects refused by the kernel for want of a token: $r (for 2000 admitted)"
wait_for 5 ledger_eq 1 0 || fail "ledger $(ledger 1)"
say "ok"
