#!/usr/bin/env bash
# What rate = "auto" learned outlives a reload and a restart: sluiced learns
# the rate of two backends under a storm, then a SIGHUP reload and a new
# sluiced on the same pinned maps both start from it, not from the start
# value (50/s), and the learned rate is what the kernel enforces.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
cost_backends "" 1000
storm_conf "$T/s.conf"
rates() { echo "$(backend_metric sluice_backend_rate app 1) $(backend_metric sluice_backend_rate app 2)"; }
sluiced_start "$T/s.conf"
read -r s1 s2 <<<"$(rates)"
say "rates at start: $s1 $s2 (nothing learned)"
in_lb nice -n -10 "$BUILD/bench/loadgen" storm -c 10.77.0.1:8080 -n 3000 --policy naive --proto tcp \
	--give-up-ms 2000 --max-ms 30000 --seed 1 --json >"$T/storm.json" 2>"$T/storm.err" ||
	{ cat "$T/storm.err"; fail "storm failed"; }
read -r l1 l2 <<<"$(rates)"
say "rates learned under the storm: $l1 $l2"
[ "$l1" -ge 150 ] && [ "$l2" -ge 150 ] || fail "nothing much was learned: $l1 $l2"
kill -HUP "$SLUICED_PID"
wait_for 5 grep -q 'reload: generation 2' "$T/sluiced.log" || fail "reload"
read -r r1 r2 <<<"$(rates)"
say "after a reload: $r1 $r2"
kill "$SLUICED_PID"; wait_exit "$SLUICED_PID" 10 || fail "sluiced did not stop"
# the kernel's bucket still holds the learned rate, with nobody running
"$SLUICECTL" bpf "$PIN" >"$T/bpf.txt" || fail "sluicectl bpf"
mv "$T/sluiced.log" "$T/sluiced-1.log"
sluiced_start "$T/s.conf"
read -r n1 n2 <<<"$(rates)"
say "after a restart: $n1 $n2"
python3 - "$l1" "$l2" "$r1" "$r2" "$n1" "$n2" <<'PY' || fail "what was learned did not survive"
import sys
l1, l2, r1, r2, n1, n2 = map(int, sys.argv[1:])
# a controller keeps moving: within a factor of 2 of the learned rate, and far from the start (50)
ok = all(0.5 * l <= x <= 2 * l for l, x in ((l1, r1), (l2, r2), (l1, n1), (l2, n2)))
sys.exit(0 if ok else 1)
PY
say "ok"
