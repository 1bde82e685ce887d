#!/usr/bin/env bash
# rate = "auto" when the backends' capacity changes in the middle of a storm:
# 8000 naive clients (2 s of patience) at two backends burning 2 ms of CPU per
# new connection, until 3 s into the storm, when the cost doubles (a busy
# host, a bad deploy), until 7 s, when it is back to 2 ms. The learned rate
# must follow it down at once (no collapse: everyone back, at most 1.10
# backend accepts per client) and climb back within 5 s of the recovery while
# clients still wait. The rate in force is read from /metrics every 200 ms.
# Under SAN=1 (sluiced several times slower) it is 3000 clients at backends of
# 4 ms (8 ms when slow), and only that everyone gets back is checked: the
# figures are printed, not judged.
# The load generators run at a higher priority than the backends: clients
# live on machines of their own, and one that misses its own deadline
# because the CPU is taken is not what is being measured.
# timeout: 150
. "$(dirname "$0")/lib.sh"
netns_setup
N=8000 DOWN=3 UP=7 COST=2000 SANB=0
san_build && N=3000 DOWN=3 UP=7 COST=4000 SANB=1
t_start=$(date +%s%N)
# the schedule counts from the backends' start: the storm starts about a second later
cost_backends "" "$COST" --cost-schedule "$((DOWN + 1)):$((2 * COST)),$((UP + 1)):$COST"
storm_conf "$T/s.conf" 'queue = { max = 20000; timeout_ms = "auto"; };' 'rate = "auto";'
sluiced_start "$T/s.conf"
# wait so that the storm starts 1 s after the backends did
while [ $(($(date +%s%N) - t_start)) -lt 1000000000 ]; do sleep 0.02; done
rate_sampler "$T/rates"
storm_pair "$N" --give-up-ms 2000 --max-ms 60000
kill "${PIDS[-1]}"
grep 'learn:' "$T/sluiced.log" | sed 's/^/    /' | head -40
stop_cost_backends ""
python3 - "$N" "$DOWN" "$UP" "$T/rates" "$T/storm1.json" "$T/storm2.json" "$T/b1.json" "$T/b2.json" "$SANB" <<'PY' ||
import json, sys
n, down, up = int(sys.argv[1]), float(sys.argv[2]) * 1000, float(sys.argv[3]) * 1000
san = sys.argv[9] == "1"
rates = []
for line in open(sys.argv[4]):
    f = line.split()
    if len(f) == 3 and f[1].isdigit() and f[2].isdigit():
        rates.append((int(f[0]), int(f[1]) + int(f[2])))
s = [json.load(open(f)) for f in sys.argv[5:7]]
acc = sum(json.load(open(f))["accepted"] for f in sys.argv[7:9])
back = sum(x["reconnected"] for x in s)
t100 = max(x["t100_ms"] or float("inf") for x in s)
def window(a, b):
    v = [r for t, r in rates if a <= t < b]
    return max(v) if v else 0, (sum(v) / len(v) if v else 0)
before = window(down - 1000, down)[1]          # the rate it had learned
during = window(down + 1000, up)[1]            # after a second of the slower backends
after = [t for t, r in rates if t >= up and r >= 0.8 * before]
climb = (after[0] - up) if after else None
print(f"{back}/{n} back, all after {t100} ms; {acc / n:.3f} backend accepts per client")
print(f"rate (both backends): {before:.0f}/s before the cost doubled, {during:.0f}/s with it "
      f"doubled, back to 80 % of {before:.0f} {climb} ms after it recovered")
for t, r in rates[:: 5]:
    print(f"    t={t / 1000:5.1f} s  rate {r}/s")
ok = back == n and acc <= 1.10 * n and during <= 0.8 * before
ok = ok and climb is not None and climb <= 5000
if san:
    ok = back == n
sys.exit(0 if ok else 1)
PY
	fail "the learned rate did not follow the capacity"
say "ok"
