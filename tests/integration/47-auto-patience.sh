#!/usr/bin/env bash
# queue timeout_ms = "auto" learns the clients' patience: three storms of
# 4000 naive clients, whose patience is 1 s, 2 s and 5 s (separate runs, a
# fresh sluiced each), at two backends slow enough (4 ms of CPU per new
# connection) that the queue is longer than any of them will wait. The
# learned patience must be within 30 % of the clients' own, and the
# backends must do little more than one set-up per client in each (a client
# is not sent to a backend after the point where it would leave). The load
# generators run at a higher priority than the backends: clients live on
# machines of their own, and one that misses its own deadline because the
# CPU is taken is not what is being measured.
# Under SAN=1 (sluiced several times slower) it is 1500 clients at 8 ms per
# connection, and the backend work is printed, not judged.
# timeout: 240
. "$(dirname "$0")/lib.sh"
netns_setup
N=4000 COST=4000 SANB=0
san_build && N=1500 COST=8000 SANB=1
results=()
for patience in 1000 2000 5000; do
	for i in 1 2; do
		bg "b$i-$patience" "$BE" "$BUILD/bench/backend" --mode echo \
			--listen "$(be_addr $i):9000" --conn-cost-us "$COST" --backlog 8192 \
			--summary "$T/b$i-$patience.json" --ready "$T/b$i-$patience.ready" --max-seconds 100
		eval "PID_b$i=$LAST_PID"
		wait_for 5 test -e "$T/b$i-$patience.ready" || fail "backend $i did not start"
	done
	storm_conf "$T/s.conf" 'queue = { max = 10000; timeout_ms = "auto"; };' 'rate = "auto";'
	rm -rf "$PIN"
	sluiced_start "$T/s.conf"
	pids=()
	for s in 1 2; do
		in_lb nice -n -10 "$BUILD/bench/loadgen" storm -c 10.77.0.1:8080 -n $((N / 2)) \
			--policy naive --proto tcp --give-up-ms "$patience" --connect-timeout-ms "$patience" \
			--max-ms 60000 --seed $s --json >"$T/storm$s-$patience.json" 2>"$T/storm$s.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { cat "$T"/storm*.err; fail "storm failed"; }; done
	learned=$(metric 'sluice_pool_patience_seconds{pool="app"}')
	kill "$SLUICED_PID"; wait_exit "$SLUICED_PID" 10 || fail "sluiced did not stop"
	kill "$PID_b1" "$PID_b2"
	wait_exit "$PID_b1" 5 && wait_exit "$PID_b2" 5 || fail "backends did not exit"
	mv "$T/sluiced.log" "$T/sluiced-$patience.log"
	results+=("$patience $learned $T/storm1-$patience.json $T/storm2-$patience.json $T/b1-$patience.json $T/b2-$patience.json")
done
python3 - "$N" "$SANB" "${results[@]}" <<'PY' || fail "the learned patience or the backend work is off"
import json, sys
n, ok, san = int(sys.argv[1]), True, sys.argv[2] == "1"
for r in sys.argv[3:]:
    p, learned, s1, s2, b1, b2 = r.split()
    p, learned = int(p), float(learned) * 1000
    s = [json.load(open(f)) for f in (s1, s2)]
    acc = sum(json.load(open(f))["accepted"] for f in (b1, b2))
    back = sum(x["reconnected"] for x in s)
    t100 = max(x["t100_ms"] or float("inf") for x in s)
    att = sum(x["attempts"] for x in s)
    good = back == n and abs(learned - p) <= 0.3 * p and (san or acc <= 1.10 * n)
    print(f"patience {p} ms: learned {learned:.0f} ms ({learned / p:.2f} x); {back}/{n} back, "
          f"all after {t100} ms; {acc / n:.3f} backend accepts per client; "
          f"{att / n:.2f} attempts per client{'' if good else '  <- FAIL'}")
    ok = ok and good
sys.exit(0 if ok else 1)
PY
say "ok"
