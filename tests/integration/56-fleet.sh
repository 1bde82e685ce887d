#!/usr/bin/env bash
# A fleet: three load-balancer hosts, each its own network namespace with its
# own sluiced, pinned maps and cgroup (its own kernel ledger and buckets), in
# front of two backends whose max_conns = 100 and rate = 100 (burst 10) are
# fleet totals, coordinated through a real redis-server the test starts.
# Clients hold their connection 1 s, so both limits bind.
# A. Baseline: one host alone with the whole budget, N clients: T1.
# A2. Even storm, NE clients spread over the three hosts: everyone served
#    within the totals (as below).
# B. Uneven storm (90 % of N on one host): everyone served; each backend's
#    peak concurrency within 100 + 3 (a host's part is at least 1) and its
#    accepts in any second within 100 + 10 + 6; the busy host holds most of
#    the budget; everyone back within 1.2 x T1.
# C. Even storm, one host SIGKILLed 1 s in and its clients coming back
#    through the other two: once its key expires (lease_ms + a heartbeat)
#    and within a second more, the survivors' parts sum to the whole
#    budget; the totals hold; every survivors' and re-routed client served.
# D0. Redis silent mid-storm (SIGSTOP): lease, admission goes on within
#    the totals, coordinated again when it answers.
# D. Redis killed mid-storm: lease (the parts held, their sum within the
#    totals), then static parts (100 / 2 hosts); the storm completes within
#    the totals; Redis back: coordinated; each change logged and counted.
# E. Config drift: a reload that drops a backend on one host is reported by
#    the other within seconds.
# N = 600; 3000 in A2 (1500 under SAN=1).
# timeout: 300
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || skip "redis-server not installed (make deps installs it)"
netns_setup
REDIS=$(be_addr 9)
HB=200
LEASE=2000
N=600
NE=3000
san_build && NE=1500

redis_start() {
	bg redis "$BE" redis-server --bind "$REDIS" --port 6379 --save "" --appendonly no \
		--protected-mode no --dir "$T"
	REDIS_PID=$LAST_PID
	wait_for 5 in_be redis-cli -h "$REDIS" ping || fail "redis-server did not start"
}

# host_conf FILE NAME ADDR BPF_CONF FLEET(0|1) [SERVERS]: one host's config
host_conf() {
	local servers=${6:-"{ name = \"b1\"; address = \"$(be_addr 1):9000\"; max_conns = 100; rate = 100; },
                { name = \"b2\"; address = \"$(be_addr 2):9000\"; max_conns = 100; rate = 100; }"}
	local fleet=""
	[ "$5" = 1 ] && fleet="fleet = { redis = \"$REDIS:6379\"; host = \"$2\"; heartbeat_ms = $HB; lease_ms = $LEASE; hosts = 3; };"
	cat >"$1" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$4
timeouts = { backend_wait_ms = 60000; };
drain = { period_s = 0; grace_s = 1; };
$fleet
listeners = ( { name = "front"; address = "$3:8080"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; queue = { max = 10000; timeout_ms = 60000; };
    servers = ( $servers ); } );
CONF
}

NS1=$LB ADDR1=10.77.0.1 BPF1=$BPF_CONF
lb_host 2; NS2=$HOST_NS ADDR2=$HOST_ADDR BPF2=$HOST_BPF_CONF
lb_host 3; NS3=$HOST_NS ADDR3=$HOST_ADDR BPF3=$HOST_BPF_CONF
hctl() { local ns; eval "ns=\$NS$1"; shift; in_ns "$ns" "$SLUICECTL" -a "$ADMIN" "$@"; }
hmetric() { hctl "$1" metrics | awk -v m="$2" '$1 == m { print $2; exit }'; }
metric_is() { [ "$(hmetric "$1" "$2")" = "$3" ]; }
host_start() { # N FLEET
	local ns addr bpf
	eval "ns=\$NS$1 addr=\$ADDR$1 bpf=\$BPF$1"
	host_conf "$T/h$1.conf" "h$1" "$addr" "$bpf" "$2"
	bg "sluiced$1" "$ns" "$SLUICED" -c "$T/h$1.conf"
	eval "H$1=$LAST_PID"
	wait_for 5 hctl "$1" metrics || fail "sluiced on host $1 did not start"
}
host_stop() { local p; eval "p=\$H$1"; kill "$p"; wait_exit "$p" 10 || fail "host $1 did not stop"; }
coordinated() { # HOST NHOSTS
	metric_is "$1" 'sluice_fleet_mode{mode="coordinated"}' 1 &&
		metric_is "$1" sluice_fleet_hosts "$2"
}
# parts_sum LIMIT BACKEND HOSTS...: the sum of the hosts' parts
parts_sum() {
	local lim=$1 be=$2 sum=0 h v; shift 2
	for h in "$@"; do
		v=$(hmetric "$h" "sluice_fleet_share{pool=\"app\",backend=\"$be\",limit=\"$lim\"}")
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
parts_at_least() { local min=$1; shift; [ "$(parts_sum "$@")" -ge "$min" ]; }
# storm HOST TAG CLIENTS SEED: clients that retry at once and hold 1 s, in the background
storm() {
	local ns addr
	eval "ns=\$NS$1 addr=\$ADDR$1"
	nsenter --net="/run/netns/$ns" nice -n -10 "$BUILD/bench/loadgen" storm -c "$addr:8080" \
		-n "$3" --policy naive --proto tcp --give-up-ms 60000 --connect-timeout-ms 60000 \
		--hold-ms 1000 --max-ms 60000 --seed "$4" --json >"$T/$2.json" 2>"$T/$2.err" &
	STORM_PID=$!
}
# judge TAG STORMS...: the backends of TAG (stopped) held the totals; every client of STORMS back
judge() {
	local tag=$1; shift
	python3 - "$T" "$tag" "$@" <<'PY'
import json, sys
t, tag, storms = sys.argv[1], sys.argv[2], sys.argv[3:]
ok = True
for i in (1, 2):
    b = json.load(open(f"{t}/{tag}b{i}.json"))
    a = b["accepts_per_10ms"]
    peak = max(sum(a[k:k + 100]) for k in range(0, max(1, len(a) - 99)))
    print(f"    backend {i}: {b['accepted']} accepted, peak concurrency {b['max_concurrent']} "
          f"(total 100), busiest second {peak} accepts (total rate 100, burst 10)")
    ok &= b["max_concurrent"] <= 103 and peak <= 116
s = [json.load(open(f"{t}/{x}.json")) for x in storms]
back, n = sum(x["reconnected"] for x in s), sum(x["clients"] for x in s)
print(f"    clients back: {back} of {n}, the last after {max(x['t100_ms'] or 0 for x in s):.0f} ms")
sys.exit(0 if ok and back == n else 1)
PY
}
t100() { python3 -c 'import json,sys; print(max(json.load(open(f))["t100_ms"] or 1e9 for f in sys.argv[1:]))' "$@"; }

redis_start

# A. one host with the whole budget
cost_backends a 200
host_start 1 0
storm 1 a1 "$N" 1; wait "$STORM_PID" || fail "baseline storm failed"
stop_cost_backends a
judge a a1 || fail "one host overran its own limits"
host_stop 1
T1=$(t100 "$T/a1.json")
say "A. one host, whole budget: $N clients back after $T1 ms"

# B. three hosts, 90 % of the clients on one
for h in 1 2 3; do host_start $h 1; done
for h in 1 2 3; do
	wait_for 5 coordinated $h 3 || { hctl $h fleet; fail "host $h: not coordinated with 3 hosts"; }
done
s=$(parts_sum max_conns b1 1 2 3)
[ "$s" -le 100 ] || fail "idle parts of b1's max_conns sum to $s > 100"
# A2. an even storm of NE clients
cost_backends e 200
storm 1 e1 $((NE / 3)) 12; p1=$STORM_PID
storm 2 e2 $((NE / 3)) 13; p2=$STORM_PID
storm 3 e3 $((NE / 3)) 14; p3=$STORM_PID
wait "$p1" && wait "$p2" && wait "$p3" || { cat "$T"/e?.err; fail "even storm failed"; }
stop_cost_backends e
judge e e1 e2 e3 || fail "the fleet overran a backend's totals, or clients were lost"
say "A2. $NE clients over three hosts: back after $(t100 "$T/e1.json" "$T/e2.json" "$T/e3.json") ms"

cost_backends b 200
storm 1 b1 $((N * 9 / 10)) 2; p1=$STORM_PID
storm 2 b2 $((N / 20)) 3; p2=$STORM_PID
storm 3 b3 $((N / 20)) 4; p3=$STORM_PID
sleep 1.5
busy=$(parts_sum max_conns b1 1); quiet=$(parts_sum max_conns b1 2)
say "B. mid-storm parts of b1's max_conns: busy host $busy, a quiet host $quiet"
hctl 1 fleet | sed 's/^/    /'
[ "$busy" -gt $((3 * quiet)) ] || fail "the busy host does not hold most of the budget"
wait "$p1" && wait "$p2" && wait "$p3" || { cat "$T"/b?.err; fail "storm failed"; }
stop_cost_backends b
judge b b1 b2 b3 || fail "the fleet overran a backend's totals, or clients were lost"
TB=$(t100 "$T/b1.json" "$T/b2.json" "$T/b3.json")
say "B. uneven over three hosts: back after $TB ms, $(python3 -c "print(f'{$TB / $T1:.2f}')") x one host's"
python3 -c "import sys; sys.exit(0 if $TB <= 1.2 * $T1 else 1)" ||
	fail "the fleet took more than 1.2 x one host's time"

# C. an even storm; host 3 killed 1 s in, its clients come back through hosts 1 and 2
cost_backends c 200
storm 1 c1 $((N / 3)) 5; p1=$STORM_PID
storm 2 c2 $((N / 3)) 6; p2=$STORM_PID
storm 3 c3 $((N / 3)) 7; p3=$STORM_PID
sleep 1
kill -9 "$H3"; t0=$(date +%s%N)
kill "$p3" 2>/dev/null
storm 1 c1r $((N / 6)) 8; q1=$STORM_PID
storm 2 c2r $((N / 6)) 9; q2=$STORM_PID
wait_for $(((LEASE + HB) / 1000 + 2)) coordinated 1 2 || { hctl 1 fleet; fail "host 1 still sees 3 hosts"; }
wait_for 2 parts_at_least 98 max_conns b1 1 2 ||
	fail "survivors' parts of b1's max_conns sum to $(parts_sum max_conns b1 1 2), not 100"
say "C. host 3 killed: survivors hold b1's whole max_conns after $((($(date +%s%N) - t0) / 1000000)) ms"
wait "$p1" && wait "$p2" && wait "$q1" && wait "$q2" || { cat "$T"/c*.err; fail "storm failed"; }
stop_cost_backends c
judge c c1 c2 c1r c2r || fail "the totals broke when a host died, or clients were lost"

# D0. redis stops answering (SIGSTOP: connected, silent) mid-storm: admission goes on
cost_backends z 200
storm 1 z1 $((N / 2)) 15; p1=$STORM_PID
storm 2 z2 $((N / 2)) 16; p2=$STORM_PID
sleep 0.5
kill -STOP "$REDIS_PID"
wait_for 3 metric_is 1 'sluice_fleet_mode{mode="lease"}' 1 || { kill -CONT "$REDIS_PID"; fail "no lease with redis silent"; }
sleep 1
kill -CONT "$REDIS_PID"
wait "$p1" && wait "$p2" || { cat "$T"/z?.err; fail "storm failed with redis silent"; }
stop_cost_backends z
judge z z1 z2 || fail "the totals broke with redis silent, or clients were lost"
wait_for 5 coordinated 1 2 || { hctl 1 fleet; fail "not coordinated after redis answered again"; }
say "D0. redis silent mid-storm: lease, the storm went on within the totals, coordinated again"

# D. redis killed mid-storm
cost_backends d 200
storm 1 d1 $((N / 2)) 10; p1=$STORM_PID
storm 2 d2 $((N / 2)) 11; p2=$STORM_PID
sleep 1
kill "$REDIS_PID"; wait_exit "$REDIS_PID" 5 || fail "redis did not stop"
wait_for 2 metric_is 1 'sluice_fleet_mode{mode="lease"}' 1 || fail "no lease after redis went"
s=$(parts_sum max_conns b1 1 2)
[ "$s" -le 100 ] || fail "parts in lease sum to $s > 100"
wait_for $((LEASE / 1000 + 2)) metric_is 1 'sluice_fleet_mode{mode="static"}' 1 ||
	fail "not static after the lease"
wait_for 2 metric_is 2 'sluice_fleet_mode{mode="static"}' 1 || fail "host 2 not static after the lease"
for h in 1 2; do
	v=$(parts_sum max_conns b1 $h)
	[ "$v" = 50 ] || fail "host $h: static part of b1's max_conns is $v, not 100 / 2"
done
say "D. redis gone: lease (parts summing to $s), then static (50 each)"
wait "$p1" && wait "$p2" || { cat "$T"/d?.err; fail "storm failed with redis gone"; }
stop_cost_backends d
judge d d1 d2 || fail "the totals broke with redis gone, or clients were lost"
redis_start
wait_for 5 coordinated 1 2 || { hctl 1 fleet; fail "not coordinated again with redis back"; }
for m in lease static coordinated; do
	n=$(hmetric 1 "sluice_fleet_mode_changes_total{mode=\"$m\"}")
	[ "${n:-0}" -ge 1 ] || fail "change to $m not counted"
done
grep -q 'fleet: coordinated -> lease' "$T/sluiced1.log" && grep -q -- '-> static' "$T/sluiced1.log" ||
	fail "mode changes not logged"
say "D. redis back: coordinated again; changes logged and counted"

# E. drift: host 2 reloads without b2
host_conf "$T/h2.conf" h2 "$ADDR2" "$BPF2" 1 \
	"{ name = \"b1\"; address = \"$(be_addr 1):9000\"; max_conns = 100; rate = 100; }"
kill -HUP "$H2"
wait_for 5 metric_is 1 sluice_fleet_drift 1 || { hctl 1 fleet; fail "host 1 did not see the drift"; }
hctl 1 fleet | grep -q differs || fail "sluicectl fleet does not say whose config differs"
hctl 1 status | grep -q 'config drift' || fail "status does not say drift"
say "E. drift on host 2 seen by host 1"
host_stop 1; host_stop 2
say "ok"
