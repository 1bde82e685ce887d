#!/usr/bin/env bash
# rate = "auto" under steady load: patient clients (60 s) arrive evenly at
# about 1.5 times what two backends burning 2 ms per new connection can take,
# for 12 s, each leaving 100 ms after its echo, so the queue never empties and
# the learned rate is what limits them the whole time. From 4 s on (once
# learned) the rate in force, both backends together, is read from /metrics
# every 200 ms: it must hold steady — the mean within 0.5..1.2 x the
# backends' capacity measured just before, and at least 70 % of the samples
# within +/-15 % of the mean (the figures are printed; runs here had 85-100 %
# in it, at 0.81-0.82 x capacity). A controller that saws between a cut and a climb, or
# drifts, fails. Under SAN=1 (sluiced several times slower) only that the
# clients get through is checked. The load generators run at a higher
# priority than the backends, as in tests 44 and 45.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
N=18000 SPREAD=12000 COST=2000 SANB=0
san_build && N=3000 COST=8000 SANB=1

# the backends' capacity, as in test 44: patient clients straight at them
cap=1
[ $SANB = 1 ] || {
	cost_backends cap "$COST"
	pids=()
	for s in 1 2; do
		in_lb nice -n -10 "$BUILD/bench/loadgen" storm -c "$(be_addr "$s"):9000" -n 2000 --policy naive \
			--proto tcp --give-up-ms 60000 --max-ms 30000 --hold-ms 100 --seed "$s" --json \
			>"$T/cap$s.json" 2>"$T/cap$s.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { cat "$T"/cap*.err; fail "capacity run failed"; }; done
	stop_cost_backends cap
	cap=$(python3 -c 'import json,sys; print(int(4000 / (max(json.load(open(f))["t100_ms"] for f in sys.argv[1:]) / 1000)))' \
		"$T/cap1.json" "$T/cap2.json")
	say "capacity: $cap new connections/s, both backends"
}

cost_backends "" "$COST"
storm_conf "$T/s.conf" 'queue = { max = 20000; timeout_ms = "auto"; };' 'rate = "auto";'
sluiced_start "$T/s.conf"
rate_sampler "$T/rates"
storm_pair "$N" --give-up-ms 60000 --max-ms 90000 --hold-ms 100 --spread-ms "$SPREAD"
kill "${PIDS[-1]}"
grep 'learn:' "$T/sluiced.log" | sed 's/^/    /' | head -20
stop_cost_backends ""
python3 - "$N" "$SPREAD" "$cap" "$T/rates" "$T/storm1.json" "$T/storm2.json" "$SANB" <<'PY' ||
import json, sys
n, spread, cap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
san = sys.argv[7] == "1"
s = [json.load(open(f)) for f in sys.argv[5:7]]
back = sum(x["reconnected"] for x in s)
rates = []
for line in open(sys.argv[4]):
    f = line.split()
    if len(f) == 3 and f[1].isdigit() and f[2].isdigit():
        rates.append((int(f[0]), int(f[1]) + int(f[2])))
v = [r for t, r in rates if 4000 <= t < spread]
print(f"{back}/{n} served")
if not v:
    sys.exit("no rate samples")
mean = sum(v) / len(v)
inside = sum(1 for r in v if abs(r - mean) <= 0.15 * mean) / len(v)
ratio = "" if san else f" ({mean / cap:.2f} x capacity)"
print(f"rate in force from 4 s to {spread / 1000:.0f} s, both backends: mean {mean:.0f}/s"
      f"{ratio}, {min(v)}..{max(v)}, {inside * 100:.0f} % of "
      f"{len(v)} samples within +/-15 % of the mean")
for t, r in rates[::5]:
    print(f"    t={t / 1000:5.1f} s  rate {r}/s")
ok = back == n
if not san:
    ok = ok and 0.5 * cap <= mean <= 1.2 * cap and inside >= 0.7
sys.exit(0 if ok else 1)
PY
	fail "the learned rate did not hold steady under steady load"
say "ok"
