#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/syn_gate.sh — how cheaply is a SYN flood dropped? sluice's XDP SYN
# gate against iptables hashlimit doing the same job, side by side.
#
#   bench/syn_gate.sh           (root, after make test-build; ~45 s)
#
# Two network namespaces joined by one veth pair, made here and removed on
# exit: $SND runs build/tests/tools/synflood as fast as it can (--rate 0)
# from 64 random /24s of 10.88.0.0/16 to 10.66.0.2:8080 in $RCV, where
# sluiced holds the listener. Every system enforces the same limit on SYNs
# to that listener: a 200/s bucket of burst 50, one bucket for the port
# (not per source):
#
#   xdp        sluiced with a syn_gate on the listener: native XDP on the
#              veth, excess SYNs XDP_DROPped before an skb reaches the stack.
#   hashlimit  sluiced without syn_gate, and in $RCV
#                iptables -t raw -A PREROUTING -p tcp --syn -d 10.66.0.2
#                  --dport 8080 -m hashlimit --hashlimit-above 200/sec
#                  --hashlimit-burst 50 --hashlimit-mode dstport -j DROP
#              raw PREROUTING, not filter INPUT: it is the earliest hook an
#              iptables rule can drop in — before conntrack (not loaded
#              here anyway) and before the route lookup that INPUT would add
#              for every dropped SYN — so it is the cheapest way iptables
#              can do this job, the fair counterpart of XDP. --hashlimit-mode
#              dstport gives one bucket for the port, like the listener's
#              bucket (srcip with --hashlimit-srcmask 24 would be the
#              counterpart of source_rate).
#   none       (opt-in) no filter: every SYN reaches TCP (SYN cookies), the
#              cost of not dropping.
#
# Counting: the same rule in $RCV's filter INPUT (-p tcp --syn --dport 8080)
# counts what got through in every system; drops come from the filter's own
# counter (the BPF table's DROP_RATE, the hashlimit rule's packets); "lost"
# is what the generator sent that neither saw (queues overflowing before
# the filter, when the receiver cannot keep up).
#
# The receive path is the same for every system: GRO is on for the
# receiving veth (ethtool -K gro on; installed if missing) and TSO off on
# the sending one, which gives it a NAPI instance that veth uses for every
# frame: each crosses veth's ptr_ring and is handled in veth's NAPI poll — XDP runs there first when attached, then GRO and the
# stack (raw PREROUTING, where hashlimit sits). As on a NIC, with or
# without XDP; without GRO or XDP a veth would use the backlog instead,
# and the systems would differ in more than the filter.
#
# CPU placement (LAYOUT=split, the default): the generator is pinned to CPU
# 0, and the veth's NAPI runs threaded (sysfs `threaded` = 1) with its
# kthread pinned to CPU 1, so all receive work (XDP, GRO, IP, netfilter,
# TCP for what passes) runs in that one thread. Its run time over the flood
# (/proc/PID/schedstat, in ns: exact, and blind to whatever else runs on the
# machine) is the receiver's cost, reported as % of a CPU and as ns per SYN
# received (1e9 / that = SYNs one CPU could drop per second). When CPU 1 is saturated, "dropped SYN/s"
# is that capacity; when it is not, the generator (or veth's ring, which
# pushes back with ENOBUFS) is the limit and ns/SYN is the number to read.
# sluiced sits on CPU 1 too (it is part of the receiver; idle here).
# LAYOUT=shared pins only the generator and leaves NAPI in softirq, inline
# on the generator's CPU; the receiver's cost is then the machine's softirq
# time (tick-sampled at CONFIG_HZ, so coarse), and what one system saves
# the generator spends on sending more.
# Caveat in XDP's disfavour: on veth the SYN already is an skb when XDP
# sees it (the generator's AF_PACKET built it, and veth may copy it for
# XDP headroom); on a physical NIC native XDP runs before any skb exists.
# Other work on the machine adds to CPU 1's busy time: runs are interleaved
# (xdp hashlimit, xdp hashlimit, ...) and the report gives medians, and
# how busy the machine was just before.
#
# Knobs (environment): REPEATS=3, DURATION_MS=3000, SYSTEMS="xdp hashlimit"
# (add "none" for the baseline), LAYOUT=split|shared, CPU_FLOOD=0, CPU_RX=1.
# Results: build/bench/results/syn_gate-<timestamp>.{json,md}.
# Bounded: each flood stops after DURATION_MS (and is killed after 30 s).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPEATS=${REPEATS:-3}
DURATION_MS=${DURATION_MS:-3000}
SYSTEMS=${SYSTEMS:-"xdp hashlimit"}
LAYOUT=${LAYOUT:-split}
CPU_FLOOD=${CPU_FLOOD:-0}
CPU_RX=${CPU_RX:-1}
RATE=200
BURST=50

SLUICED=$ROOT/build/sluiced
SLUICECTL=$ROOT/build/sluicectl
SYNFLOOD=$ROOT/build/tests/tools/synflood
RESULTS=$ROOT/build/bench/results
SND=sbs$$
RCV=sbr$$
PIN=/sys/fs/bpf/sluice-bench-$$
CGROUP=sluice-bench-$$
ADMIN=127.0.0.1:19911
W=$(mktemp -d /tmp/sluice-bench-syn.XXXXXX)
SLUICED_PID=


in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
in_rcv() { in_ns "$RCV" "$@"; }
# the receiver's sysfs (per-device files of $RCV): `ip netns exec` mounts it
rcv_sysfs() { ip netns exec "$RCV" sh -c "$1"; }
xdp_on() { ip -n "$RCV" link show "v$RCV" | grep -q 'prog/xdp'; }

stop_sluiced() {
	local i
	[ -n "$SLUICED_PID" ] || return 0
	kill -TERM "$SLUICED_PID" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$SLUICED_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SLUICED_PID" 2>/dev/null
	wait "$SLUICED_PID" 2>/dev/null
	SLUICED_PID=
	# a clean stop detaches the SYN gate; if sluiced had to be killed its
	# pinned XDP link outlives it on purpose, and removing the pins is what
	# detaches it, a moment later (the kernel frees a link's last reference
	# from a workqueue). Either way the next run starts without XDP.
	rm -rf "$PIN"
	for ((i = 0; i < 40; i++)); do
		[ -e "/run/netns/$RCV" ] && xdp_on || return 0
		sleep 0.05
	done
	die "XDP still attached to v$RCV after sluiced stopped and its pins were removed"
}

cleanup() {
	local rc=$? cg
	stop_sluiced
	ip netns del "$SND" 2>/dev/null
	ip netns del "$RCV" 2>/dev/null
	cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$cg" ] && [ -d "$cg/$CGROUP" ] && rmdir "$cg/$CGROUP" 2>/dev/null
	rm -rf "$W"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"
for f in "$SLUICED" "$SLUICECTL" "$SYNFLOOD"; do
	[ -x "$f" ] || die "$f missing: make test-build"
done
command -v iptables >/dev/null || die "iptables missing: make deps"
if ! command -v ethtool >/dev/null; then
	log "installing ethtool"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -q ethtool || { apt-get update -q && apt-get install -y -q ethtool; }; } \
		>"$W/apt.log" 2>&1 || { cat "$W/apt.log" >&2; die "cannot install ethtool"; }
fi
case $LAYOUT in
split) [ "$(nproc)" -ge 2 ] || die "LAYOUT=split needs 2 CPUs" ;;
shared) ;;
*) die "LAYOUT is split or shared" ;;
esac

# ---- namespaces -------------------------------------------------------------
ip netns add "$SND" || die "cannot create network namespaces"
ip netns add "$RCV" || die "ip netns add $RCV"
ip link add "v$SND" type veth peer name "v$RCV" || die "veth"
ip link set "v$SND" netns "$SND"
ip link set "v$RCV" netns "$RCV"
ip -n "$SND" addr add 10.66.0.1/24 dev "v$SND"
ip -n "$RCV" addr add 10.66.0.2/24 dev "v$RCV"
for ns in "$SND" "$RCV"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "v$ns" up
done
# replies to the spoofed sources go back to $SND (which drops them); no
# reverse-path filter in the way
ip -n "$RCV" route add 10.88.0.0/16 via 10.66.0.1
for c in all default "v$RCV"; do in_rcv sysctl -qw "net.ipv4.conf.$c.rp_filter=0"; done
in_rcv iptables -N SYNPASS || die "iptables in $RCV"
in_rcv iptables -A SYNPASS -p tcp --syn -d 10.66.0.2 --dport 8080
in_rcv iptables -A INPUT -j SYNPASS
RCVMAC=$(ip -n "$RCV" -o link show "v$RCV" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$RCVMAC" ] || die "no MAC for v$RCV"
SRCNETS=()
for n in $(seq 0 4 252); do SRCNETS+=(--src-net "10.88.$n.0/24"); done
in_rcv ethtool -K "v$RCV" gro on >/dev/null || die "cannot turn GRO on for v$RCV"
# veth hands a frame to the peer's NAPI only if GRO could use it, i.e. (for
# a frame from a socket) if the sending end has no TSO; the SYNs are not
# segmented either way
in_ns "$SND" ethtool -K "v$SND" tso off >/dev/null || die "cannot turn TSO off for v$SND"
PIN_RX=()
if [ "$LAYOUT" = split ]; then
	rcv_sysfs "echo 1 > /sys/class/net/v$RCV/threaded" || die "threaded NAPI on v$RCV"
	PIN_RX=(taskset -c "$CPU_RX")
fi

# write_conf SYSTEM: sluiced's config for one run
write_conf() {
	local gate=""
	[ "$1" = xdp ] && gate="syn_gate = { rate = $RATE; burst = $BURST; interfaces = [\"v$RCV\"]; };"
	cat >"$W/s.conf" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
bpf = { pin_path = "$PIN"; cgroup = "$CGROUP"; };
listeners = ( { name = "front"; address = "10.66.0.2:8080"; pool = "app"; $gate } );
pools = ( { name = "app"; servers = ( { name = "b1"; address = "10.66.0.1:9000"; } ); } );
CONF
}

start_sluiced() {
	local i
	write_conf "$1"
	# nsenter itself, not the in_rcv function: $! must be sluiced (nsenter
	# execs it), not a subshell that a signal would leave sluiced behind
	"${PIN_RX[@]}" nsenter --net="/run/netns/$RCV" "$SLUICED" -c "$W/s.conf" \
		>"$W/sluiced.log" 2>&1 &
	SLUICED_PID=$!
	for ((i = 0; i < 100; i++)); do
		in_rcv "$SLUICECTL" -a "$ADMIN" metrics >/dev/null 2>&1 && return 0
		kill -0 "$SLUICED_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$W/sluiced.log" >&2
	die "sluiced did not start"
}

napi_pids() { ps -eo pid=,comm= | awk -v d="napi/v$RCV-" 'index($2, d) == 1 { print $1 }'; }
# napi_to_rx: pin the veth's NAPI kthread(s) to CPU_RX (checked every run:
# attaching XDP could recreate the NAPI instance)
napi_to_rx() {
	local pid n=0
	[ "$(rcv_sysfs "cat /sys/class/net/v$RCV/threaded")" = 1 ] || die "v$RCV: NAPI not threaded"
	for pid in $(napi_pids); do
		taskset -pc "$CPU_RX" "$pid" >/dev/null || die "cannot pin NAPI thread $pid"
		n=$((n + 1))
	done
	[ $n -gt 0 ] || die "no NAPI thread for v$RCV"
}

# chain_count TABLE CHAIN: packets of the chain's first rule
chain_count() { in_rcv iptables -t "$1" -nvxL "$2" | awk 'NR == 3 { print $1; exit }'; }
# rx_ns: the receiver's CPU time so far, in ns — the run time of the veth's
# NAPI thread(s) (split), or the whole machine's softirq time (shared; /proc/stat
# counts in USER_HZ ticks)
rx_ns() {
	local pid t=0 hz
	if [ "$LAYOUT" = split ]; then
		for pid in $(napi_pids); do
			t=$((t + $(cut -d' ' -f1 "/proc/$pid/schedstat")))
		done
		echo "$t"
	else
		hz=$(getconf CLK_TCK)
		awk -v hz="$hz" '$1 == "cpu" { printf "%.0f\n", $8 * 1e9 / hz }' /proc/stat
	fi
}
busy_pct() {
	local a b
	a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y)
		busy = y[1] - x[1]; idle = y[2] - x[2]
		printf "%.0f\n", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

# run SYSTEM REPEAT: one flood; appends a result line to $W/runs
run() {
	local sys=$1 rep=$2 t0 t1 sent secs passed dropped
	start_sluiced "$sys"
	case $sys in
	xdp)
		grep -q "SYN gate on v$RCV (native XDP)" "$W/sluiced.log" ||
			{ cat "$W/sluiced.log" >&2; die "no native XDP on v$RCV"; }
		;;
	hashlimit)
		# a new name each run: a fresh bucket, as a fresh sluiced has
		in_rcv iptables -t raw -A PREROUTING -p tcp --syn -d 10.66.0.2 --dport 8080 \
			-m hashlimit --hashlimit-above "$RATE/sec" --hashlimit-burst "$BURST" \
			--hashlimit-mode dstport --hashlimit-name "synb$rep" -j DROP ||
			die "hashlimit rule" ;;
	none) ;;
	*) die "unknown system $sys" ;;
	esac
	if [ "$sys" = xdp ]; then xdp_on || die "XDP not attached"; else xdp_on && die "XDP left attached"; fi
	[ "$LAYOUT" = split ] && napi_to_rx
	in_rcv iptables -Z SYNPASS
	sleep 0.3
	t0=$(rx_ns)
	in_ns "$SND" taskset -c "$CPU_FLOOD" timeout 30 "$SYNFLOOD" -i "v$SND" --dst 10.66.0.2:8080 \
		--dst-mac "$RCVMAC" "${SRCNETS[@]}" --rate 0 --duration-ms "$DURATION_MS" \
		>"$W/flood.log" 2>"$W/flood.err" || { cat "$W/flood.err" >&2; die "synflood failed"; }
	t1=$(rx_ns)
	sleep 0.2   # the queues drain into the counters
	sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$W/flood.log")
	secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' "$W/flood.log")
	passed=$(chain_count filter SYNPASS)
	case $sys in
	xdp) dropped=$("$SLUICECTL" bpf "$PIN" | awk '/^SYN GATE/ { g = 1; next }
		g && $1 == "10.66.0.2:8080" { print $(NF - 1); exit }') ;;
	hashlimit) dropped=$(chain_count raw PREROUTING)
		in_rcv iptables -t raw -F PREROUTING ;;
	none) dropped=0 ;;
	esac
	stop_sluiced
	echo "$sys $rep ${sent:-0} ${secs:-0} ${dropped:-0} ${passed:-0} $((t1 - t0))" >>"$W/runs"
	log "$sys #$rep: $(cat "$W/flood.log") dropped=$dropped passed=$passed rx_ms=$(((t1 - t0) / 1000000))"
}

busy=$(busy_pct)
log "synflood --rate 0 for ${DURATION_MS} ms; limit ${RATE}/s burst $BURST; layout $LAYOUT" \
	"(flood cpu $CPU_FLOOD$([ "$LAYOUT" = split ] && echo ", receiver cpu $CPU_RX")); machine busy before: $busy%"
: >"$W/runs"
for ((r = 1; r <= REPEATS; r++)); do
	for s in $SYSTEMS; do run "$s" "$r"; done
done

# ---- report -------------------------------------------------------------------
mkdir -p "$RESULTS"
stamp=$(date +%Y%m%d-%H%M%S)
# rows: system repeat offered/s dropped/s passed/s lost% rxcpu% rx-ns/SYN sent dropped passed
awk '{
	sent = $3; secs = ($4 > 0 ? $4 : 1); drop = $5; pass = $6; rx = $7 / 1e9
	recv = drop + pass
	printf "%s %d %.0f %.0f %.0f %.2f %.1f %.0f %d %d %d\n", $1, $2, sent / secs,
		drop / secs, pass / secs, (sent > 0 ? 100 * (sent - recv) / sent : 0),
		100 * rx / secs, (recv > 0 ? rx * 1e9 / recv : 0), sent, drop, pass
}' "$W/runs" >"$W/rows"
# col_median SYSTEM COLUMN: median of one column of $W/rows over a system's runs
col_median() {
	awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$W/rows" | sort -g | awk '{ v[NR] = $1 }
		END { print NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : 0 }'
}
if [ "$LAYOUT" = split ]; then rxcol="receiver CPU % (NAPI thread)"; else rxcol="softirq % of a CPU"; fi
md=$RESULTS/syn_gate-$stamp.md
{
	echo "SYN flood: synflood --rate 0, ${DURATION_MS} ms x $REPEATS, limit ${RATE}/s burst $BURST;" \
		"layout $LAYOUT; $(nproc) CPUs, kernel $(uname -r); machine busy before: $busy%"
	echo
	echo "| system | run | offered SYN/s | dropped SYN/s | passed SYN/s | lost % | $rxcol | receiver ns/SYN |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	awk '{ printf "| %s | %d | %d | %d | %d | %.2f | %.1f | %d |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$W/rows"
	for s in $SYSTEMS; do
		m=()
		for col in 3 4 5 6 7 8; do m+=("$(col_median "$s" "$col")"); done
		printf '| **%s** | median | **%.0f** | **%.0f** | %.0f | %.2f | %.1f | **%.0f** |\n' "$s" "${m[@]}"
	done
} >"$md"
json=$RESULTS/syn_gate-$stamp.json
{
	printf '{"benchmark":"syn_gate","when":"%s","kernel":"%s","cpus":%d,"layout":"%s",' \
		"$stamp" "$(uname -r)" "$(nproc)" "$LAYOUT"
	printf '"flood_cpu":%d,"rx_cpu":%s,"duration_ms":%d,"rate":%d,"burst":%d,"busy_before_pct":%d,"runs":[' \
		"$CPU_FLOOD" "$([ "$LAYOUT" = split ] && echo "$CPU_RX" || echo null)" "$DURATION_MS" \
		"$RATE" "$BURST" "$busy"
	awk 'NR > 1 { printf "," }
	{ printf "{\"system\":\"%s\",\"repeat\":%d,\"offered_pps\":%s,\"dropped_pps\":%s,\"passed_pps\":%s,\"lost_pct\":%s,\"rx_cpu_pct\":%s,\"rx_ns_per_syn\":%s,\"sent\":%s,\"dropped\":%s,\"passed\":%s}",
		$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$W/rows"
	echo ']}'
} >"$json"
cat "$md"
log "results: $md $json"
