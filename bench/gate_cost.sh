#!/usr/bin/env bash
# What the BPF backend gate costs per proxied connection, measured exactly
# rather than as a throughput difference inside the machine's noise: the
# kernel's own run-time statistics of the gate programs (kernel.bpf_stats_enabled)
# against sluiced's CPU time, over the same wrk "Connection: close" run.
#   bench/gate_cost.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
DUR=${1:-5}
B=build
W=$B/bench/work/gate
PIN=/sys/fs/bpf/sluice-gatecost
CG=sluice-gatecost
mkdir -p "$W"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	sysctl -qw kernel.bpf_stats_enabled="$OLD_STATS"
	rm -rf "$PIN"
	cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -d "$cg/$CG" ] && rmdir "$cg/$CG" 2>/dev/null
	return 0
}
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled)
trap cleanup EXIT
command -v wrk >/dev/null || { echo "gate_cost: needs wrk (make bench installs it)"; exit 1; }
taskset -c 1 "$B/bench/backend" --mode http --listen 127.0.0.1:18100 --ready "$W/be.ready" >/dev/null 2>&1 &
PIDS+=($!)
cat >"$W/s.conf" <<CONF
workers = 1;
bpf = { pin_path = "$PIN"; cgroup = "$CG"; };
admin = { address = "127.0.0.1:18190"; };
listeners = ( { name = "b"; address = "127.0.0.1:18101"; pool = "p"; } );
pools = ( { name = "p"; servers = ( { address = "127.0.0.1:18100"; max_conns = 1000000; rate = 10000000; burst = 10000000; } ); } );
CONF
taskset -c 1 "$B/sluiced" -c "$W/s.conf" 2>"$W/sluiced.log" &
SL=$!
PIDS+=($SL)
for i in $(seq 50); do [ -e "$W/be.ready" ] && "$B/sluicectl" -a 127.0.0.1:18190 metrics >/dev/null 2>&1 && break; sleep 0.1; done
sysctl -qw kernel.bpf_stats_enabled=1
prog() { # NAME FIELD: run_cnt or run_time_ns of the gate program NAME
	bpftool -j prog show name "$1" 2>/dev/null | python3 -c "
import json, sys
d = json.load(sys.stdin)
print(sum(p.get('$2', 0) for p in (d if isinstance(d, list) else [d])))"
}
cpu() { awk '{ print $14 + $15 }' "/proc/$SL/stat"; }   # utime + stime, clock ticks
c0=$(prog sl_connect4 run_cnt); t0=$(prog sl_connect4 run_time_ns)
r0=$(prog sl_sock_release run_cnt); rt0=$(prog sl_sock_release run_time_ns)
u0=$(cpu)
out=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" -H 'Connection: close' http://127.0.0.1:18101/ | grep Requests/sec)
c1=$(prog sl_connect4 run_cnt); t1=$(prog sl_connect4 run_time_ns)
r1=$(prog sl_sock_release run_cnt); rt1=$(prog sl_sock_release run_time_ns)
u1=$(cpu)
python3 - "$c0" "$c1" "$t0" "$t1" "$r0" "$r1" "$rt0" "$rt1" "$u0" "$u1" "$(getconf CLK_TCK)" "$out" <<'PY'
import sys
c0, c1, t0, t1, r0, r1, rt0, rt1, u0, u1, hz = map(float, sys.argv[1:12])
conns = c1 - c0
connect_ns = (t1 - t0) / conns
release_ns = (rt1 - rt0) / (r1 - r0)
# every proxied connection: one backend connect, two socket releases
gate_ns = connect_ns + 2 * release_ns
cpu_ns = (u1 - u0) / hz * 1e9 / conns
print(f"wrk: {sys.argv[12].strip()}")
print(f"connections: {conns:.0f}; connect4 {connect_ns:.0f} ns/run; sock_release {release_ns:.0f} ns/run")
print(f"gate per proxied connection: {gate_ns:.0f} ns; sluiced CPU per connection: {cpu_ns:.0f} ns")
print(f"gate share of sluiced's CPU per connection: {100 * gate_ns / cpu_ns:.2f} %")
PY
