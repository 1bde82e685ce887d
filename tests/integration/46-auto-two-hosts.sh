#!/usr/bin/env bash
# Two load-balancer hosts, each its own network namespace, its own sluiced
# with its own pinned maps and cgroup (so its own kernel ledger and buckets),
# both on rate = "auto" and timeout_ms = "auto", in front of the same two
# backends (2 ms of CPU per new connection), with no coordinator. A storm of
# 4000 naive clients (2 s of patience) arrives split over the two hosts.
# Each host learns from the latency it sees, as TCP flows share a link: the
# backends' combined accepts in any second stay within 10 % of the capacity
# measured first with patient clients straight at them, everyone is back,
# and the backends do at most 1.10 set-ups per client.
# Under SAN=1 it is 1500 clients.
# The load generators run at a higher priority than the backends: clients
# live on machines of their own, and one that misses its own deadline
# because the CPU is taken is not what is being measured.
# timeout: 200
. "$(dirname "$0")/lib.sh"
netns_setup
N=4000
san_build && N=1500

# storm NS OUT ADDR CLIENTS GIVE_UP_MS SEED: one loadgen, in the background (STORM_PID)
storm() {
	nsenter --net="/run/netns/$1" nice -n -10 "$BUILD/bench/loadgen" storm -c "$3" -n "$4" --policy naive \
		--proto tcp --give-up-ms "$5" --connect-timeout-ms "$5" --max-ms 60000 --seed "$6" \
		--json >"$T/$2.json" 2>"$T/$2.err" &
	STORM_PID=$!
}

# 1. capacity: patient clients straight at the backends
cost_backends cap 2000
storm "$LB" cap1 "$(be_addr 1):9000" $((N / 2)) 60000 1; p1=$STORM_PID
storm "$LB" cap2 "$(be_addr 2):9000" $((N / 2)) 60000 2; p2=$STORM_PID
wait "$p1" && wait "$p2" || fail "capacity run failed"
stop_cost_backends cap

# 2. the second host, and a sluiced on each
lb_host 2
conf() { # FILE BPF_CONF
	cat >"$1" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$2
timeouts = { backend_wait_ms = 60000; };
drain = { period_s = 0; grace_s = 1; };
listeners = ( { name = "front"; address = "0.0.0.0:8080"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; queue = { max = 10000; timeout_ms = "auto"; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = "auto"; },
                { name = "b2"; address = "$(be_addr 2):9000"; rate = "auto"; } ); } );
CONF
}
conf "$T/h1.conf" "$BPF_CONF"
conf "$T/h2.conf" "$HOST_BPF_CONF"
cost_backends two 2000
sluiced_start "$T/h1.conf"
H1=$SLUICED_PID
bg sluiced2 "$HOST_NS" "$SLUICED" -c "$T/h2.conf"
H2=$LAST_PID
wait_for 5 in_ns "$HOST_NS" "$SLUICECTL" -a "$ADMIN" metrics || fail "the second sluiced did not start"
storm "$LB" h1 10.77.0.1:8080 $((N / 2)) 2000 3; p1=$STORM_PID
storm "$HOST_NS" h2 "$HOST_ADDR:8080" $((N / 2)) 2000 4; p2=$STORM_PID
wait "$p1" && wait "$p2" || { cat "$T"/h*.err; fail "storm failed"; }
for h in 1 2; do
	ns=$([ $h = 1 ] && echo "$LB" || echo "$HOST_NS")
	nsenter --net="/run/netns/$ns" "$SLUICECTL" -a "$ADMIN" metrics |
		awk '/^sluice_backend_rate\{|^sluice_pool_patience/ { print "    host '$h': " $0 }'
done
kill "$H1" "$H2"
wait_exit "$H1" 10 && wait_exit "$H2" 10 || fail "sluiced did not stop"
stop_cost_backends two
grep -h 'learn:' "$T/sluiced.log" "$T/sluiced2.log" | head -8 | sed 's/^/    /'

python3 - "$N" "$T" <<'PY' || fail "two hosts on auto overran the backends or collapsed"
import json, sys
n, t = int(sys.argv[1]), sys.argv[2]
def per_second(tag):
    """Both backends' accepts in every 1 s window (10 ms buckets, aligned on each start)."""
    b = [json.load(open(f"{t}/{tag}b{i}.json")) for i in (1, 2)]
    a = [x["accepts_per_10ms"] for x in b]
    shift = round((b[1]["start_unix_ms"] - b[0]["start_unix_ms"]) / 10)
    m = max(len(a[0]), len(a[1]) + shift)
    tot = [0] * m
    for i, v in enumerate(a[0]):
        tot[i] += v
    for i, v in enumerate(a[1]):
        if 0 <= i + shift < m:
            tot[i + shift] += v
    win = [sum(tot[i:i + 100]) for i in range(0, max(1, m - 100))]
    return max(win), sum(x["accepted"] for x in b)
cap_peak, _ = per_second("cap")
peak, acc = per_second("two")
s = [json.load(open(f"{t}/{h}.json")) for h in ("h1", "h2")]
back = sum(x["reconnected"] for x in s)
t100 = max(x["t100_ms"] or float("inf") for x in s)
print(f"capacity: {cap_peak} accepts in the busiest second of the patient run")
print(f"two hosts on auto: {back}/{n} back, all after {t100} ms; busiest second {peak} accepts "
      f"({peak / cap_peak:.2f} x capacity); {acc / n:.3f} backend accepts per client")
ok = back == n and peak <= 1.10 * cap_peak and acc <= 1.10 * n
sys.exit(0 if ok else 1)
PY
say "ok"
