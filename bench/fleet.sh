#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/fleet.sh — a reconnect storm through a tier of three sluice hosts
# with one of them killed at its start, under three ways of holding the
# backends' limits: a fleet through Redis (max_conns and rate are totals,
# shared), static shares (each host configured with 1/3 of the totals), and
# per-host full budgets (each host configured with the whole totals, as
# without coordination).
#
# Hosts are network namespaces, each with its own sluiced, pinned maps and
# cgroup (tests/integration/lib.sh), in front of two bench/backend echo
# servers that burn COST us of CPU per new connection; a real redis-server
# coordinates the fleet. Host 3 is SIGKILLed just before the storm and its
# share of the clients reconnects through hosts 1 and 2: N clients that
# give up after GIVE_UP_MS and retry at once.
#
# Knobs: N=1500 COST=5000 TOTAL_RATE=150 TOTAL_MAX=1000 (per backend)
#        GIVE_UP_MS=2000 MAX_MS=30000
# Output: a table (time until everyone is back, backend set-ups per client,
# the backends' peak concurrency and busiest second against the totals),
# also in build/bench/results/fleet-TIME.md. Needs root (namespaces, BPF).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-1500}
COST=${COST:-5000}
TOTAL_RATE=${TOTAL_RATE:-150}
TOTAL_MAX=${TOTAL_MAX:-1000}
GIVE_UP_MS=${GIVE_UP_MS:-2000}
MAX_MS=${MAX_MS:-30000}
export SLUICE_SRC=$ROOT
# shellcheck source=../tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
command -v redis-server >/dev/null || skip "redis-server not installed (make deps)"
netns_setup
OUT=$ROOT/build/bench/results
mkdir -p "$OUT"
REDIS=$(be_addr 9)
bg redis "$BE" redis-server --bind "$REDIS" --port 6379 --save "" --appendonly no --protected-mode no --dir "$T"
wait_for 5 in_be redis-cli -h "$REDIS" ping || fail "redis-server did not start"
NS1=$LB ADDR1=10.77.0.1 BPF1=$BPF_CONF
lb_host 2; NS2=$HOST_NS ADDR2=$HOST_ADDR BPF2=$HOST_BPF_CONF
lb_host 3; NS3=$HOST_NS ADDR3=$HOST_ADDR BPF3=$HOST_BPF_CONF

# conf HOST MODE: MODE fleet (totals, shared), static (1/3 each), full (the totals each)
conf() {
	local h=$1 mode=$2 rate=$TOTAL_RATE max=$TOTAL_MAX fleet="" addr bpf
	eval "addr=\$ADDR$h bpf=\$BPF$h"
	case $mode in
	static) rate=$((TOTAL_RATE / 3)) max=$((TOTAL_MAX / 3)) ;;
	fleet) fleet="fleet = { redis = \"$REDIS:6379\"; host = \"h$h\"; heartbeat_ms = 200; lease_ms = 1000; hosts = 3; };" ;;
	esac
	cat >"$T/h$h-$mode.conf" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$bpf
timeouts = { backend_wait_ms = 60000; };
drain = { period_s = 0; grace_s = 1; };
$fleet
listeners = ( { name = "front"; address = "$addr:8080"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; queue = { max = 20000; timeout_ms = 60000; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = $max; rate = $rate; },
                { name = "b2"; address = "$(be_addr 2):9000"; max_conns = $max; rate = $rate; } ); } );
CONF
}

run() { # MODE
	local mode=$1 h ns pids=() p
	cost_backends "$mode" "$COST"
	for h in 1 2 3; do
		conf $h "$mode"
		eval "ns=\$NS$h"
		bg "sluiced-$mode-$h" "$ns" "$SLUICED" -c "$T/h$h-$mode.conf"
		eval "H$h=$LAST_PID"
		wait_for 5 in_ns "$ns" "$SLUICECTL" -a "$ADMIN" metrics || fail "host $h ($mode) did not start"
	done
	[ "$mode" = fleet ] && sleep 1 # coordinated before the storm
	kill -9 "$H3"
	for h in 1 2; do
		eval "ns=\$NS$h addr=\$ADDR$h"
		nsenter --net="/run/netns/$ns" nice -n -10 "$BUILD/bench/loadgen" storm -c "$addr:8080" \
			-n $((N / 2)) --policy naive --proto tcp --give-up-ms "$GIVE_UP_MS" \
			--connect-timeout-ms "$GIVE_UP_MS" --max-ms "$MAX_MS" --seed "$h" --json \
			>"$T/$mode-s$h.json" 2>"$T/$mode-s$h.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	for h in 1 2; do p=$(eval "echo \$H$h"); kill "$p"; wait_exit "$p" 10; done
	stop_cost_backends "$mode"
}

for mode in fleet static full; do
	say "storm with $mode limits"
	run $mode
done
stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$T" "$N" "$TOTAL_RATE" "$TOTAL_MAX" "$COST" <<'PY' | tee "$OUT/fleet-$stamp.md"
import json, sys
t, n, rate, mx, cost = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"Three sluice hosts, one killed as {n} clients (2 s of patience, naive retries) reconnect "
      f"through the other two; two backends at {cost} us of CPU per new connection, each with "
      f"totals rate {rate}/s and max_conns {mx}.\n")
print("| limits | everyone back (s) | backend set-ups per client | peak concurrency per backend | busiest second per backend (accepts) |")
print("|---|---|---|---|---|")
names = {"fleet": "fleet (totals shared through Redis)", "static": "static 1/3 per host",
         "full": "the totals on every host"}
for mode in ("fleet", "static", "full"):
    s = [json.load(open(f"{t}/{mode}-s{h}.json")) for h in (1, 2)]
    b = [json.load(open(f"{t}/{mode}b{i}.json")) for i in (1, 2)]
    back = sum(x["reconnected"] for x in s)
    t100 = max((x["t100_ms"] or float("inf")) for x in s) / 1000
    acc = sum(x["accepted"] for x in b)
    peaks = []
    for x in b:
        a = x["accepts_per_10ms"]
        peaks.append(max(sum(a[k:k + 100]) for k in range(0, max(1, len(a) - 99))))
    when = f"{t100:.1f}" if back == n else f"not all ({back} of {n})"
    print(f"| {names[mode]} | {when} | {acc / n:.2f} | {max(x['max_concurrent'] for x in b)} (total {mx}) "
          f"| {max(peaks)} (total {rate}) |")
PY
say "table in $OUT/fleet-$stamp.md"
