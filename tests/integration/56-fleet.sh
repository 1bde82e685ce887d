#!/usr/bin/env bash
# A fleet: three load-balancer hosts, each its own network namespace with its
# own sluiced, pinned maps and cgroup (its own kernel ledger and buckets), in
# front of two backends whose max_conns = 100 and rate = 100 are fleet
# totals, coordinated through a real redis-server the test starts.
# 1. Uneven storm: 90 % of the clients on one host, each holding its
#    connection 2 s: every client served; each backend's peak concurrency
#    within 100 + 3 (a part is at least 1 per host), its accepts in any
#    second within 100 + burst 10 + 6 (a heartbeat's slack); the busy host
#    held most of the budget.
# 2. One host SIGKILLed: within three heartbeats and a second the survivors
#    see two hosts and their parts of max_conns sum to the whole 100.
# 3. Redis killed: lease, then static parts (100 / 2 hosts) after lease_ms,
#    nothing locks up (a client still gets through); Redis back:
#    coordinated again; each change logged and counted.
# 4. Config drift: a reload that drops a backend on one host is reported
#    by the other within seconds.
# timeout: 180
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || skip "redis-server not installed (make deps installs it)"
netns_setup
REDIS=$(be_addr 9)
HB=200
LEASE=2000

bg redis "$BE" redis-server --bind "$REDIS" --port 6379 --save "" --appendonly no \
	--protected-mode no
REDIS_PID=$LAST_PID
wait_for 5 in_be redis-cli -h "$REDIS" ping || fail "redis-server did not start"

cost_backends fl 200

# host_conf FILE NAME ADDR BPF_CONF [SERVERS]: one host's config
host_conf() {
	local servers=${5:-"{ name = \"b1\"; address = \"$(be_addr 1):9000\"; max_conns = 100; rate = 100; },
                { name = \"b2\"; address = \"$(be_addr 2):9000\"; max_conns = 100; rate = 100; }"}
	cat >"$1" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$4
timeouts = { backend_wait_ms = 60000; };
drain = { period_s = 0; grace_s = 1; };
fleet = { redis = "$REDIS:6379"; host = "$2"; heartbeat_ms = $HB; lease_ms = $LEASE; hosts = 3; };
listeners = ( { name = "front"; address = "$3:8080"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; queue = { max = 10000; timeout_ms = 60000; };
    servers = ( $servers ); } );
CONF
}

NS1=$LB ADDR1=10.77.0.1
lb_host 2; NS2=$HOST_NS ADDR2=$HOST_ADDR BPF2=$HOST_BPF_CONF
lb_host 3; NS3=$HOST_NS ADDR3=$HOST_ADDR BPF3=$HOST_BPF_CONF
host_conf "$T/h1.conf" h1 "$ADDR1" "$BPF_CONF"
host_conf "$T/h2.conf" h2 "$ADDR2" "$BPF2"
host_conf "$T/h3.conf" h3 "$ADDR3" "$BPF3"
sluiced_start "$T/h1.conf"; H1=$SLUICED_PID
bg sluiced2 "$NS2" "$SLUICED" -c "$T/h2.conf"; H2=$LAST_PID
bg sluiced3 "$NS3" "$SLUICED" -c "$T/h3.conf"; H3=$LAST_PID
hctl() { local ns; eval "ns=\$NS$1"; shift; in_ns "$ns" "$SLUICECTL" -a "$ADMIN" "$@"; }
hmetric() { hctl "$1" metrics | awk -v m="$2" '$1 == m { print $2; exit }'; }
for h in 2 3; do wait_for 5 hctl $h metrics || fail "sluiced on host $h did not start"; done

coordinated() { # HOST NHOSTS
	[ "$(hmetric "$1" 'sluice_fleet_mode{mode="coordinated"}')" = 1 ] &&
		[ "$(hmetric "$1" sluice_fleet_hosts)" = "$2" ]
}
for h in 1 2 3; do
	wait_for 5 coordinated $h 3 || { hctl $h fleet; fail "host $h: not coordinated with 3 hosts"; }
done
say "three hosts coordinated"
hctl 1 fleet | sed 's/^/    /'

# parts_sum LIMIT BACKEND HOSTS...: the sum of the hosts' parts
parts_sum() {
	local lim=$1 be=$2 sum=0 h v; shift 2
	for h in "$@"; do
		v=$(hmetric "$h" "sluice_fleet_share{pool=\"app\",backend=\"$be\",limit=\"$lim\"}")
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
# metric_is HOST METRIC VALUE; parts_at_least MIN LIMIT BACKEND HOSTS... (for wait_for)
metric_is() { [ "$(hmetric "$1" "$2")" = "$3" ]; }
parts_at_least() { local min=$1; shift; [ "$(parts_sum "$@")" -ge "$min" ]; }
s=$(parts_sum max_conns b1 1 2 3)
[ "$s" -le 100 ] || fail "idle parts of b1's max_conns sum to $s > 100"

# 1. an uneven storm: 540 clients on host 1, 30 on each of the others
storm() { # NS OUT ADDR CLIENTS SEED
	nsenter --net="/run/netns/$1" nice -n -10 "$BUILD/bench/loadgen" storm -c "$3:8080" -n "$4" \
		--policy naive --proto tcp --give-up-ms 60000 --connect-timeout-ms 60000 \
		--hold-ms 2000 --max-ms 60000 --seed "$5" --json >"$T/$2.json" 2>"$T/$2.err" &
	STORM_PID=$!
}
storm "$NS1" s1 "$ADDR1" 540 1; p1=$STORM_PID
storm "$NS2" s2 "$ADDR2" 30 2; p2=$STORM_PID
storm "$NS3" s3 "$ADDR3" 30 3; p3=$STORM_PID
sleep 2
busy=$(parts_sum max_conns b1 1); quiet=$(parts_sum max_conns b1 2)
say "mid-storm parts of b1's max_conns: busy host $busy, a quiet host $quiet"
[ "$busy" -gt "$quiet" ] || fail "the busy host does not hold most of the budget"
wait "$p1" && wait "$p2" && wait "$p3" || { cat "$T"/s*.err; fail "storm failed"; }

# 2. host 3 killed: the survivors take over its part
kill -9 "$H3"
t0=$(date +%s%N)
wait_for $((3 * HB / 1000 + 2)) coordinated 1 2 || { hctl 1 fleet; fail "host 1 still sees 3 hosts"; }
wait_for 2 parts_at_least 98 max_conns b1 1 2 ||
	fail "survivors' parts of b1's max_conns sum to $(parts_sum max_conns b1 1 2), not ~100"
say "host 3 gone: survivors hold b1's whole max_conns after $((($(date +%s%N) - t0) / 1000000)) ms"

stop_cost_backends fl
python3 - "$T" <<'PY' || fail "the fleet overran a backend's totals"
import json, sys
t = sys.argv[1]
ok = True
for i in (1, 2):
    b = json.load(open(f"{t}/flb{i}.json"))
    a = b["accepts_per_10ms"]
    peak = max(sum(a[k:k + 100]) for k in range(0, max(1, len(a) - 99)))
    print(f"backend {i}: {b['accepted']} accepted, peak concurrency {b['max_concurrent']} "
          f"(total 100), busiest second {peak} accepts (total rate 100, burst 10)")
    ok &= b["max_concurrent"] <= 103 and peak <= 116
s = [json.load(open(f"{t}/s{h}.json")) for h in (1, 2, 3)]
back = sum(x["reconnected"] for x in s)
print(f"clients back: {back} of 600, last after {max(x['t100_ms'] or 0 for x in s)} ms")
ok &= back == 600
sys.exit(0 if ok else 1)
PY
cost_backends fl2 0

# 3. Redis killed: lease, then static; back: coordinated
kill "$REDIS_PID"; wait_exit "$REDIS_PID" 5 || fail "redis did not stop"
wait_for 2 metric_is 1 'sluice_fleet_mode{mode="lease"}' 1 || fail "no lease after redis went"
wait_for $((LEASE / 1000 + 2)) metric_is 1 'sluice_fleet_mode{mode="static"}' 1 ||
	fail "not static after the lease"
s=$(parts_sum max_conns b1 1 2)
[ "$s" -le 100 ] || fail "static parts sum to $s > 100"
say "redis gone: lease, then static parts (b1 max_conns: $s over 2 hosts)"
in_lb timeout 5 bash -c "exec 3<>/dev/tcp/$ADDR1/8080; printf 0123456789abcdef >&3; head -c 16 <&3" |
	grep -q 0123456789abcdef || fail "no client got through with redis gone"
bg redis2 "$BE" redis-server --bind "$REDIS" --port 6379 --save "" --appendonly no \
	--protected-mode no
wait_for 5 coordinated 1 2 || { hctl 1 fleet; fail "not coordinated again with redis back"; }
for m in lease static coordinated; do
	n=$(hmetric 1 "sluice_fleet_mode_changes_total{mode=\"$m\"}")
	[ "${n:-0}" -ge 1 ] || fail "change to $m not counted"
done
grep -q 'fleet: coordinated -> lease' "$T/sluiced.log" && grep -q -- '-> static' "$T/sluiced.log" ||
	fail "mode changes not logged"
say "redis back: coordinated again; changes logged and counted"

# 4. drift: host 2 reloads without b2
host_conf "$T/h2.conf" h2 "$ADDR2" "$BPF2" \
	"{ name = \"b1\"; address = \"$(be_addr 1):9000\"; max_conns = 100; rate = 100; }"
kill -HUP "$H2"
wait_for 5 metric_is 1 sluice_fleet_drift 1 || { hctl 1 fleet; fail "host 1 did not see the drift"; }
hctl 1 fleet | grep -q differs || fail "sluicectl fleet does not say whose config differs"
hctl 1 status | grep -q 'config drift' || fail "status does not say drift"
say "drift on host 2 seen by host 1"
kill "$H1" "$H2"
wait_exit "$H1" 10 && wait_exit "$H2" 10 || fail "sluiced did not stop"
say "ok"
