#!/usr/bin/env bash
# Refusals that spread the herd: 1000 clients refused in the same instant by
# a pool admitting 50/s are told to come back at times spread over about
# 1000/50 = 20 s (plus up to 50% jitter): no single Retry-After value goes to
# more than 10% of them — the spread comes from the arithmetic, not rounding.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
bg be "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 1):9000" --ready "$T/be.ready"
wait_for 5 test -e "$T/be.ready" || fail "backend did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; mode = "http"; pool = "app"; } );
pools = ( { name = "app"; queue = { max = 0; };
    retry_after = { min_s = 1; max_s = 120; jitter = 0.5; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = 50; burst = 1; } ); } );
CONF
sluiced_start "$T/s.conf"
in_lb python3 "$SRC/tests/tools/httpprobe.py" burst 10.77.0.1:8080 1000 >"$T/burst.json" ||
	fail "probe failed"
cat "$T/burst.json"
python3 - "$T/burst.json" <<'PY' || fail "Retry-After values not spread as they should be"
import json, sys
d = json.load(open(sys.argv[1]))
ra = d["retry_after"]
n503 = d["statuses"].get("503", 0)
top = ra["most_common"][1]
print(f"{n503} refused in {d['secs']} s; Retry-After {ra['min']}..{ra['max']} s; "
      f"the most common value went to {top} ({100 * top / n503:.1f}%)")
ok = n503 >= 990 and ra["count"] == n503 and ra["min"] >= 1
ok = ok and 18 <= ra["max"] <= 32          # ~20 s of schedule, up to +50% jitter
ok = ok and top <= n503 / 10
sys.exit(0 if ok else 1)
PY
[ "$(metric 'sluice_refused_total{pool="app",reason="rate"}')" -ge 990 ] || fail "refusals not counted"
say "ok"
