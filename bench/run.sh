#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/run.sh — sluice benchmark orchestration.
#
#   bench/run.sh quick          direct vs sluiced vs HAProxy vs NGINX (<= 10 min on
#                               2 cores; what `make bench` runs)
#   bench/run.sh full           the same, plus sluiced without BPF, with longer
#                               runs and more repeats (5 x 10 s: several times
#                               as long)
#
# Every system sits in front of the SAME backends (build/bench/backend for
# HTTP and for the TCP echo the TLS scenarios use, an iperf3 server for
# throughput), started once for the whole run;
# the reconnect storm (scenario "storm", below) starts its own two backends
# fresh for every run, because what it measures is what happens to them.
# Each measurement starts the proxy under test fresh, runs one scenario,
# and stops it again: only one proxy runs at a time, and nothing (pools,
# cached buffers, allocator state) carries over from one scenario to the next.
# Repeats are interleaved (A B C D, A B C D, ...) so that machine noise is
# spread over all systems. On 2 cores, absolute numbers mean little: read the
# ratios between columns, measured side by side in this one run.
#
# Knobs (environment; the suite sets the defaults shown as quick/full):
#   WORKERS=1           worker threads/processes of every proxy (sluiced
#                       workers, HAProxy nbthread, NGINX worker_processes)
#   BACKEND_THREADS=1   threads of build/bench/backend
#   REPEATS=3/5         repeats per (system, scenario)
#   DURATION=3/10       seconds per wrk / iperf3 / loadgen run
#   IDLE_CONNS=5000     connections held by the idle-memory scenarios
#   TLS_IDLE_CONNS=2000/5000  TLS connections held by tls_idle
#   TLS_INFLIGHT=64     tls_full/tls_resumed: handshakes in flight at once
#   SYSTEMS="direct sluiced sluiced-auto haproxy haproxy-best nginx" (quick; full
#                       adds sluiced-nogate)
#                       sluiced runs with its BPF backend gate attached and limits
#                       too high to refuse anything (what the gate costs per
#                       connect); sluiced-nogate is the same with bpf.enabled = false.
#                       sluiced-auto and haproxy-best take part in the storms only:
#                       sluiced with no number set, HAProxy with a backlog of 64
#   SCENARIOS="wrk_ka wrk_close iperf idle idle_warm tls_full tls_resumed
#              tls_bulk tls_idle storm storm_slow queue"
#   STORM_N=4000        storm: naive clients (two loadgen processes of N/2)
#   STORM_MAX_MS=15000  storm: deadline of one storm run (clients not back by
#                       then count as never reconnected)
#   STORM_COST_US=2000  storm: CPU each backend burns per new connection
#   STORM_GIVE_UP_MS=2000  storm: a client's patience per attempt
#   STORM_RATE=200 STORM_BURST=20  storm: sluiced's per-backend rate and burst
#   STORM_ORDER=        storm: sluiced's queue.order (fifo or adaptive; unset: its default)
#   STORM_TIMEOUT_MS=60000  storm: sluiced's queue timeout (and backend_wait_ms) with
#                       a fixed rate; bench/tune.sh recommends all three for a capacity
#   STORM_BACKEND_NICE=-10  storm: the backends' nice value (see below)
#   QUEUE_NS="1000 5000 15000"  queue: clients kept waiting in sluiced's queue
#   QUEUE_RATE=500      queue: clients leaving per second (leave phase), and
#                       the backend's rate (admit phase)
#   PIN=1               taskset placement: CPU_CLIENT=0, CPU_PROXY=1 (0-1 when
#                       WORKERS>1), CPU_BACKEND=1; PIN=0 lets the scheduler place
#
# TLS (tls_*): every proxy terminates TLS with the same ECDSA P-256
# certificate and key (made for the run with openssl), in front of the echo
# backend: sluiced (a TLS listener, full_per_s and resumed_per_s unlimited,
# a ticket_keys file), HAProxy ("bind ... ssl crt", tune.ssl.* at their
# defaults) and NGINX stream ("listen ... ssl", ssl_certificate); "direct"
# has no TLS column. The clients are build/bench/loadgen --tls: TLS 1.3 as
# negotiated (TLS_AES_256_GCM_SHA384 with these defaults), no
# certificate check, no close_notify. tls_full and tls_resumed are connrate
# runs (connect, handshake, one 64-byte echo, close; TLS_INFLIGHT at once):
# every connection of tls_resumed offers a copy of one priming session, and a
# run in which any handshake was not resumed is not a result. tls_bulk: 4
# connections stream 128 KiB writes through the proxy to the echo and back.
# tls_idle: TLS_IDLE_CONNS connections that each carried one echo, held idle:
# RSS growth of the proxy per connection, as for idle, after a warm-up of
# 100 TLS connections (see run_tls_idle). tls_full and tls_resumed also
# report the proxy's CPU time per handshake, the steadier figure on a shared
# machine.
#
# The reconnect storm (after tests/integration/24-collapse.sh): STORM_N clients
# that were all just disconnected reconnect at the same instant, give up an
# attempt after STORM_GIVE_UP_MS and retry at once (naive), against two
# echo backends (one thread each) that burn STORM_COST_US of CPU per new
# connection — at 2 ms each can take ~500 new connections/s with a whole CPU.
# Each system gets the same clients and fresh backends; what counts is how
# fast everyone is back and how much backend work it cost (accepts per
# client: 1.0 is no waste; a backend that accepts a connection whose client
# already gave up burns its 2 ms for nothing, and that is the collapse).
# The storm runs unpinned (PIN does not apply to it): its backends' capacity
# is CPU time, and pinning both to one CPU would halve it below what sluiced
# is configured to admit. On this shared 2-core machine the load generator,
# the proxy and other people's work compete with the backends for that CPU,
# while in production backends have hosts of their own; so the backends run
# at STORM_BACKEND_NICE (-10), which gives them the CPU they ask for first.
# The default rate (2 x 200/s = 0.8 CPU of backend work) leaves room for the
# rest. How each proxy is configured for it: gen_*_storm.
#
# The queue scenario (sluiced only; tests/integration/39-queue-departures.sh):
# what a client costs sluiced while thousands wait, for each N of QUEUE_NS.
# loadgen queue keeps N clients waiting in one pool's queue and replaces every
# one that ends, so the queue stays N long. Leave phase: the pool's backend
# admits 1 a second, and QUEUE_RATE waiting clients a second give up (close);
# sluiced's CPU per client that left (its replacement's arrival included).
# Admit phase: nobody gives up, and the backend (the echo) takes QUEUE_RATE a
# second; CPU per client admitted (connect, one echo, close, and its
# replacement's arrival). Each phase: all N waiting, 1 s of warm-up, then
# DURATION s measured, from sluiced's threads' schedstat. What matters is
# how the figures move with N: a cost per client that grows with the queue
# turns a storm quadratic. The storm rows also give the proxy's CPU per client
# attempt (connects the clients started), for every proxy.
#
# Results: build/bench/results/SUITE-<timestamp>.{json,md}, and with the storm
# SUITE-<timestamp>-storm-accepts.png (backend accepts per 100 ms over time)
# and SUITE-<timestamp>-storm-cdf.png (share of clients back over time), both
# from the median repeat of each system; with TLS SUITE-<timestamp>-tls-latency.png
# (connection latency CDFs, full and resumed, each system's median repeat);
# per-run logs, generated configs, latency distributions (*.log.cdf) and raw
# storm files (build/bench/work/storm/SYSTEM-REP/) under build/bench/work/.

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

B=build/bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
WORK=$B/work
RESULTS=$B/results

SUITE=${1:-quick}
case $SUITE in
full) _rep=5 _dur=10 _tls_idle=5000 _sys="direct sluiced sluiced-auto sluiced-nogate haproxy haproxy-best nginx" ;;
*) _rep=3 _dur=3 _tls_idle=2000 _sys="direct sluiced sluiced-auto haproxy haproxy-best nginx" ;;
esac
WORKERS=${WORKERS:-1}
BACKEND_THREADS=${BACKEND_THREADS:-1}
REPEATS=${REPEATS:-$_rep}
DURATION=${DURATION:-$_dur}
IDLE_CONNS=${IDLE_CONNS:-5000}
TLS_IDLE_CONNS=${TLS_IDLE_CONNS:-$_tls_idle}
TLS_INFLIGHT=${TLS_INFLIGHT:-64}
SYSTEMS=${SYSTEMS:-$_sys}
STORM_N=${STORM_N:-4000}
STORM_MAX_MS=${STORM_MAX_MS:-15000}
STORM_COST_US=${STORM_COST_US:-2000}
STORM_GIVE_UP_MS=${STORM_GIVE_UP_MS:-2000}
STORM_RATE=${STORM_RATE:-200}
STORM_BURST=${STORM_BURST:-20}
STORM_TIMEOUT_MS=${STORM_TIMEOUT_MS:-60000}
STORM_ORDER=${STORM_ORDER:-}
STORM_BACKEND_NICE=${STORM_BACKEND_NICE:--10}
QUEUE_NS=${QUEUE_NS:-"1000 5000 15000"}
QUEUE_RATE=${QUEUE_RATE:-500}
# sluiced-nogate cannot take part: without BPF there is no rate limit to set.
STORM_SYSTEMS="direct sluiced sluiced-auto haproxy haproxy-best nginx"
# Systems that only take part in the storms: their set-ups are for a storm.
STORM_ONLY="sluiced-auto haproxy-best"
# No proxy, no TLS to terminate; sluiced-nogate's TLS is sluiced's.
TLS_SYSTEMS="sluiced haproxy nginx"
# The queue scenario measures sluiced's own queue.
QUEUE_SYSTEMS="sluiced"
# CPU placement on 2 cores (measured, see setup_pinning): the client alone on
# CPU 0, the proxy and the backends sharing CPU 1.
PIN=${PIN:-1}
CPU_CLIENT=${CPU_CLIENT:-0}
CPU_BACKEND=${CPU_BACKEND:-1}
if [ "$WORKERS" -gt 1 ]; then CPU_PROXY=${CPU_PROXY:-0-1}; else CPU_PROXY=${CPU_PROXY:-1}; fi

# Ports: backends, then one listen port per proxy, then admin ports.
PORT_HTTP=18000
PORT_IPERF=18010
PORT_ECHO=18011            # the TLS scenarios' echo backend
PORT_STORM=(18020 18021)   # the storm's two backends
declare -A PROXY_LISTEN=([sluiced]=18001 [haproxy]=18002 [nginx]=18003 [sluiced-nogate]=18004
	[sluiced-auto]=18006 [haproxy-best]=18007)
PORT_QUEUE_ADMIT=18005     # queue: sluiced's second listener (the admit phase)
PORT_QUEUE_BE=18012        # queue: the leave phase's echo backend
SLUICED_ADMIN=19901
# Per run (PID): a second bench/run.sh on the machine must not share, or
# remove, this one's pinned maps and cgroup.
BPF_PIN=/sys/fs/bpf/sluice-bench-$$
BPF_CGROUP=sluice-bench-$$
TLS_DIR=$WORK/tls

NGINX_STREAM_SO=/usr/lib/nginx/modules/ngx_stream_module.so
DEB_PKGS="haproxy nginx libnginx-mod-stream wrk iperf3 gnuplot-nox jq"

# ---- scenarios: the one place where they are listed ------------------------
# add_scenario NAME UPSTREAM(http|iperf|tls|storm) UNIT DECIMALS RUNNER LABEL
# A runner is called as RUNNER PORT RSS_PIDS and prints one number, or "NA"
# when the scenario does not apply to the system; non-zero exit = failed.
# A scenario with result rows (add_row) prints one number per row, in the
# order the rows were added (storm has its own path: measure_storm).
# Each row is reported like a scenario of its own.
# UPSTREAM tls: the proxy terminates TLS in front of the echo backend
# (gen_*_tls); such a scenario runs only on the systems in TLS_SYSTEMS.
SCENARIO_ORDER=()
declare -A SC_UPSTREAM SC_UNIT SC_DEC SC_RUN SC_LABEL SC_ROWS
add_scenario() {
	SCENARIO_ORDER+=("$1")
	SC_UPSTREAM[$1]=$2 SC_UNIT[$1]=$3 SC_DEC[$1]=$4 SC_RUN[$1]=$5 SC_LABEL[$1]=$6
}
add_row() { # SCENARIO ROW UNIT DECIMALS LABEL
	SC_ROWS[$1]="${SC_ROWS[$1]:+${SC_ROWS[$1]} }$2"
	SC_UNIT[$2]=$3 SC_DEC[$2]=$4 SC_LABEL[$2]=$5
}
rows_of() { echo "${SC_ROWS[$1]:-$1}"; }
add_scenario wrk_ka    http  req/s   0 run_wrk_ka  "HTTP keep-alive, wrk -t1 -c64 (req/s)"
add_scenario wrk_close http  conn/s  0 run_wrk_close "HTTP Connection: close"
add_row wrk_close wrk_close     conn/s  0 "HTTP Connection: close, wrk -t1 -c64 (conn/s)"
add_row wrk_close wrk_close_cpu us      1 "HTTP Connection: close: proxy CPU per connection (µs, lower is better)"
add_scenario iperf     iperf Gbit/s  2 run_iperf   "TCP bulk, iperf3 -P4 (Gbit/s)"
add_scenario idle      http  B/conn  0 run_idle    "idle memory, ${IDLE_CONNS} conns, cold process (bytes/conn, lower is better)"
add_scenario idle_warm http  B/conn  0 run_idle_warm "idle memory, ${IDLE_CONNS} conns after a warm-up (bytes/conn, lower is better)"
add_scenario tls_full    tls handshakes/s 0 run_tls_full "TLS full handshakes"
add_row tls_full tls_full handshakes/s 0 "TLS 1.3 full handshakes, ${TLS_INFLIGHT} in flight (handshakes/s)"
add_row tls_full tls_full_cpu us 0 "TLS 1.3 full handshake: proxy CPU per handshake (µs, lower is better)"
add_scenario tls_resumed tls handshakes/s 0 run_tls_resumed "TLS resumed handshakes"
add_row tls_resumed tls_resumed handshakes/s 0 "TLS 1.3 resumed handshakes, ${TLS_INFLIGHT} in flight (handshakes/s)"
add_row tls_resumed tls_resumed_cpu us 0 "TLS 1.3 resumed handshake: proxy CPU per handshake (µs, lower is better)"
add_scenario tls_bulk    tls Gbit/s  2 run_tls_bulk "TLS bulk, 4 connections through to an echo (Gbit/s)"
add_scenario tls_idle    tls B/conn  0 run_tls_idle "TLS idle memory, ${TLS_IDLE_CONNS} conns after 100 (bytes/conn, lower is better)"
# storm_rows SCENARIO LABEL: the rows of one storm scenario
storm_rows() {
	local sc=$1 st=$2
	add_scenario "$sc" storm - 0 - "$st"
	add_row "$sc" "${sc}_t50"      ms     0 "${st}: time to 50% reconnected (ms, lower is better)"
	add_row "$sc" "${sc}_t90"      ms     0 "${st}: time to 90% reconnected (ms, lower is better)"
	add_row "$sc" "${sc}_t99"      ms     0 "${st}: time to 99% reconnected (ms, lower is better)"
	add_row "$sc" "${sc}_t100"     ms     0 "${st}: time to 100% reconnected (ms, lower is better)"
	add_row "$sc" "${sc}_never"    clients 0 "${st}: never reconnected within $((STORM_MAX_MS / 1000)) s (clients who gave up for good, lower is better)"
	add_row "$sc" "${sc}_attempts" attempts 2 "${st}: attempts per client (lower is better)"
	add_row "$sc" "${sc}_gave_up"  attempts 2 "${st}: attempts abandoned per client after ${STORM_GIVE_UP_MS} ms, each retried at once (lower is better)"
	add_row "$sc" "${sc}_accepts"  accepts 2 "${st}: backend accepts per client (1.00: one each)"
	add_row "$sc" "${sc}_wasted"   accepts 0 "${st}: backend accepts for clients that had already given up (wasted, lower is better)"
	add_row "$sc" "${sc}_peak"     accepts 0 "${st}: peak backend accepts per 100 ms, both backends (sluiced's fixed limit 2 x (rate/10 + burst) = $((2 * (STORM_RATE / 10 + STORM_BURST))))"
	add_row "$sc" "${sc}_cpu"      us     0 "${st}: proxy CPU per client attempt (µs, lower is better)"
}
storm_rows storm "storm, ${STORM_N} naive clients"
storm_rows storm_slow "storm, backends twice as slow ($((2 * STORM_COST_US)) µs per connection), every set-up unchanged"
add_scenario queue     queue us      1 run_queue   "clients waiting in the queue"
for _n in $QUEUE_NS; do
	add_row queue "queue_leave_$_n" us 1 "queue, $_n waiting: sluiced CPU per client that gives up, $QUEUE_RATE/s (µs, lower is better)"
done
for _n in $QUEUE_NS; do
	add_row queue "queue_admit_$_n" us 1 "queue, $_n waiting: sluiced CPU per client admitted, $QUEUE_RATE/s (µs, lower is better)"
done
SCENARIOS=${SCENARIOS:-"${SCENARIO_ORDER[*]}"}

# ---- helpers ----------------------------------------------------------------

# Command prefixes that pin each role to its CPUs (empty unless PIN=1). They are
# arrays, not a function, so that "${PIN_PROXY[@]}" cmd & leaves $! = cmd's PID
# (taskset execs the command).
#
# Why this placement (measured here, 3 layouts x 2 rounds, interleaved):
#  - client + backend on one CPU, proxy alone on the other: the client/backend
#    CPU saturates first, every proxy lands near the same number and the
#    differences between proxies vanish. Not a proxy benchmark.
#  - unpinned: the scheduler moves wrk, proxy and backend around; repeats
#    spread 5-10 % on a quiet machine.
#  - client alone, proxy + backend sharing a CPU (the default): repeats
#    within 2-3 % on a quiet machine and the proxies separate clearly; the
#    price is that the proxy competes with the backend, so absolute req/s
#    is lower than unpinned. "direct" gets client and backend on separate
#    CPUs, as unpinned.
# Other work on the machine (2x swings between rounds were seen) outweighs
# all of this: that is why runs interleave and the header reports CPU busy.
PIN_CLIENT=() PIN_PROXY=() PIN_BACKEND=()
setup_pinning() {
	if [ "$PIN" = 1 ]; then
		PIN_CLIENT=(taskset -c "$CPU_CLIENT")
		PIN_PROXY=(taskset -c "$CPU_PROXY")
		PIN_BACKEND=(taskset -c "$CPU_BACKEND")
		PIN_DESC="client cpu $CPU_CLIENT, proxy cpu $CPU_PROXY, backend cpu $CPU_BACKEND"
	else
		PIN_DESC="none"
	fi
}




# wait_listen PORT PID: up to 5 s for PORT to listen while PID is alive.
wait_listen() {
	local port=$1 pid=$2 i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		port_listening "$port" && return 0
		sleep 0.05
	done
	return 1
}

# median: numbers on stdin, one a line -> "median min max n". "inf" (a storm
# level not reached by the deadline) sorts last and is kept as "inf".
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "NA NA NA 0"; exit }
		if (NR % 2) m = v[(NR + 1) / 2]
		else if (v[NR / 2 + 1] == "inf") m = "inf"
		else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
		print m, v[1], v[NR], NR }'
}

# cpu_ticks PID[,PID..]: user + system clock ticks the processes have used.
cpu_ticks() {
	local p t=0
	for p in ${1//,/ }; do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# cpu_busy_pct: how busy all CPUs are over one second, from /proc/stat. Other
# work on the machine makes every number noisy; the header reports it.
cpu_busy_pct() {
	local a b
	a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y)
		busy = y[1] - x[1]; idle = y[2] - x[2]
		printf "%.0f\n", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

install_deps() {
	local p missing=()
	for p in $DEB_PKGS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -q "${missing[@]}" ||
		{ apt-get update -q && apt-get install -y -q "${missing[@]}"; }; } \
		>"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; die "apt-get install failed"; }
}

build_tools() {
	make --no-print-directory "$B/backend" "$B/loadgen" >"$WORK/make.log" 2>&1 ||
		{ cat "$WORK/make.log" >&2; die "building bench tools failed"; }
}

# ---- backends ---------------------------------------------------------------
BACKEND_PID=
ECHO_PID=
IPERF_PID=

# start_bench_backend MODE PORT NAME: its PID is the last of STARTED_PIDS.
start_bench_backend() {
	local mode=$1 port=$2 name=$3 i pid
	rm -f "$WORK/$name.ready"
	"${PIN_BACKEND[@]}" "$B/backend" --mode "$mode" --listen "127.0.0.1:$port" \
		--threads "$BACKEND_THREADS" --ready "$WORK/$name.ready" \
		--summary "$WORK/$name-summary.json" >>"$WORK/logs/$name.log" 2>&1 &
	pid=$!
	STARTED_PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do
		[ -e "$WORK/$name.ready" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -e "$WORK/$name.ready" ] || die "$name did not start: $(cat "$WORK/logs/$name.log")"
}

start_http_backend() {
	start_bench_backend http "$PORT_HTTP" backend
	BACKEND_PID=${STARTED_PIDS[-1]}
}

start_echo_backend() {
	start_bench_backend echo "$PORT_ECHO" echo-backend
	ECHO_PID=${STARTED_PIDS[-1]}
}

start_iperf_server() {
	"${PIN_BACKEND[@]}" iperf3 -s -p "$PORT_IPERF" -B 127.0.0.1 \
		>>"$WORK/logs/iperf3-server.log" 2>&1 &
	IPERF_PID=$!
	STARTED_PIDS+=("$IPERF_PID")
	wait_listen "$PORT_IPERF" "$IPERF_PID" ||
		die "iperf3 server did not start: $(cat "$WORK/logs/iperf3-server.log")"
}

start_backend() {
	start_http_backend
	start_echo_backend
	start_iperf_server
}

# The backends live for the whole run; restart one that died, and say so.
ensure_backends() {
	if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
		log "warning: the HTTP backend died; restarting it"
		stop_started "$BACKEND_PID"
		start_http_backend
	fi
	if ! kill -0 "$ECHO_PID" 2>/dev/null; then
		log "warning: the echo backend died; restarting it"
		stop_started "$ECHO_PID"
		start_echo_backend
	fi
	if ! kill -0 "$IPERF_PID" 2>/dev/null; then
		stop_started "$IPERF_PID"
		start_iperf_server
	fi
}

# ---- proxies ----------------------------------------------------------------
PROXY_PID=      # the process we started (nginx: the master)
PROXY_PORT=     # where clients connect
RSS_PIDS=       # comma-separated processes that hold the proxied connections

gen_sluiced() { # UPSTREAM_PORT CONF SYSTEM [LISTENER_SETTINGS]
	local bpf limits=""
	if [ "$3" = sluiced ]; then
		# the gate runs in full (ledger CAS, token CAS, socket storage,
		# release) but never refuses
		bpf="bpf = { pin_path = \"$BPF_PIN\"; cgroup = \"$BPF_CGROUP\"; };"
		limits="max_conns = 1000000; rate = 10000000; burst = 10000000;"
	else
		bpf="bpf = { enabled = false; };"
	fi
	cat >"$2" <<EOF
workers = $WORKERS;
admin = { address = "127.0.0.1:$SLUICED_ADMIN"; };
$bpf
listeners = ( { name = "bench"; address = "127.0.0.1:${PROXY_LISTEN[$3]}"; mode = "tcp"; pool = "p";
    ${4:-} } );
pools = ( { name = "p"; servers = ( { address = "127.0.0.1:$1"; $limits } ); } );
EOF
}

# The queue scenario's sluiced (see the top of the file): a listener per
# phase, each with its own pool and queue, deep and patient enough to hold
# every client for the whole run.
gen_sluiced_queue() { # - CONF
	cat >"$2" <<EOF
workers = $WORKERS;
admin = { address = "127.0.0.1:$SLUICED_ADMIN"; };
bpf = { pin_path = "$BPF_PIN"; cgroup = "$BPF_CGROUP"; };
timeouts = { backend_wait_ms = 3600000; };
listeners = ( { name = "leave"; address = "127.0.0.1:${PROXY_LISTEN[sluiced]}"; mode = "tcp"; pool = "leave"; backlog = 4096; },
              { name = "admit"; address = "127.0.0.1:$PORT_QUEUE_ADMIT"; mode = "tcp"; pool = "admit"; backlog = 4096; } );
pools = ( { name = "leave"; queue = { max = 20000; timeout_ms = 3600000; };
            servers = ( { address = "127.0.0.1:$PORT_QUEUE_BE"; rate = 1; burst = 1; } ); },
          { name = "admit"; queue = { max = 20000; timeout_ms = 3600000; };
            servers = ( { address = "127.0.0.1:$PORT_ECHO"; rate = $QUEUE_RATE; burst = 10; } ); } );
EOF
}

# ---- TLS: one certificate for every proxy -------------------------------------
# ECDSA P-256, made for the run: cert.pem + key.pem (sluiced), the two in one
# PEM (HAProxy's crt; NGINX takes it for both directives), and sluiced's
# ticket key file.
make_tls_files() {
	mkdir -p "$TLS_DIR" || return 1
	(umask 077
	 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=bench.sluice.test -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" &&
	 cat "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >"$TLS_DIR/combined.pem" &&
	 openssl rand 80 | base64 -w0 >"$TLS_DIR/tickets.key") >"$WORK/logs/openssl.log" 2>&1
}

gen_sluiced_tls() { # UPSTREAM_PORT CONF SYSTEM
	# full_per_s/resumed_per_s 0: no handshake budget (unlimited), so that
	# what is measured is the handshake itself.
	gen_sluiced "$1" "$2" "$3" "tls = { certificates = ( { cert = \"$ROOT/$TLS_DIR/cert.pem\"; key = \"$ROOT/$TLS_DIR/key.pem\"; } );
            ticket_keys = \"$ROOT/$TLS_DIR/tickets.key\"; full_per_s = 0; resumed_per_s = 0; };"
}

gen_haproxy_tls() { # UPSTREAM_PORT CONF
	# tune.ssl.* at their defaults (session cache 20000, tickets on with
	# keys of its own); HAProxy takes the key from the crt PEM.
	gen_haproxy "$1" "$2"
	sed -i "s|^\tbind 127.0.0.1:${PROXY_LISTEN[haproxy]}\$|& ssl crt $ROOT/$TLS_DIR/combined.pem|" "$2"
	grep -q ' ssl crt ' "$2"
}

gen_nginx_tls() { # UPSTREAM_PORT CONF
	# ssl_session_tickets on (the default, keys of its own), no session
	# cache (the default): TLS 1.3 resumes by ticket. ssl_protocols is
	# spelled out: NGINX before 1.23.4 leaves TLS 1.3 off by default, and a
	# TLS 1.2 resumption (no key exchange at all) is not the same work.
	gen_nginx "$1" "$2"
	sed -i -e "s|^\t\tlisten 127.0.0.1:${PROXY_LISTEN[nginx]};|\t\tlisten 127.0.0.1:${PROXY_LISTEN[nginx]} ssl;\n\t\tssl_protocols TLSv1.2 TLSv1.3;\n\t\tssl_certificate $ROOT/$TLS_DIR/combined.pem;\n\t\tssl_certificate_key $ROOT/$TLS_DIR/combined.pem;|" "$2"
	grep -q ' ssl;' "$2"
}

gen_haproxy() { # UPSTREAM_PORT CONF
	# maxconn 9000: HAProxy sizes its own fd limit from maxconn (two per
	# proxied connection plus spares) and must stay under the hard limit of
	# 20000 here. No "log" lines: no logging. No "option splice-*": plain
	# recv/send copies, like the other systems by default.
	cat >"$2" <<EOF
global
	nbthread $WORKERS
	maxconn 9000
defaults
	mode tcp
	maxconn 9000
	timeout connect 5s
	timeout client 1h
	timeout server 1h
frontend bench
	bind 127.0.0.1:${PROXY_LISTEN[haproxy]}
	default_backend be
backend be
	server s1 127.0.0.1:$1
EOF
}

gen_nginx() { # UPSTREAM_PORT CONF
	# worker_connections counts both sides of a proxied connection;
	# worker_rlimit_nofile stays under the hard limit of 20000. Error log
	# at "crit" into the work dir is as close to "no logging" as nginx goes;
	# the stream module has no access log unless one is configured.
	cat >"$2" <<EOF
load_module $NGINX_STREAM_SO;
daemon off;
worker_processes $WORKERS;
worker_rlimit_nofile 19500;
pid $ROOT/$WORK/nginx.pid;
error_log $ROOT/$WORK/logs/nginx-error.log crit;
events {
	worker_connections 19000;
}
stream {
	upstream be {
		server 127.0.0.1:$1;
	}
	server {
		listen 127.0.0.1:${PROXY_LISTEN[nginx]};
		proxy_pass be;
		proxy_connect_timeout 5s;
		proxy_timeout 1h;
	}
}
EOF
}

# The queue scenario: for each N, the leave phase then the admit phase (see
# the top of the file), against the one sluiced; prints the leave figures for
# every N, then the admit figures.
run_queue() { # PORT RSS_PIDS
	local n phase port rate out leave=() admit=() rc=0 be
	cost_backend "$PORT_QUEUE_BE" 0 0 $((DURATION * 40 + 300)) "$WORK/queue-be"
	be=$COST_BE_PID
	wait_ready "$WORK/queue-be" "$be" || { stop_started "$be"; return 1; }
	for n in $QUEUE_NS; do
		for phase in leave admit; do
			if [ $phase = leave ]; then port=$1 rate=$QUEUE_RATE; else port=$PORT_QUEUE_ADMIT rate=0; fi
			out=$("${PIN_CLIENT[@]}" timeout --foreground -k 5 $((DURATION + 90)) \
				"$B/loadgen" queue -c "127.0.0.1:$port" -n "$n" -r "$rate" --inflight 512 \
				--warmup-ms 1000 -d $((DURATION * 1000)) --timeout-ms 60000 -p "$2" \
				--seed "$n" 2>>"$RUN_LOG") || { rc=1; break 2; }
			echo "$phase $out" >>"$RUN_LOG"
			if [ $phase = leave ]; then
				leave+=("$(sed -n 's/.*cpu_us_per_leave=\([0-9.]*\).*/\1/p' <<<"$out")")
			else
				admit+=("$(sed -n 's/.*cpu_us_per_admit=\([0-9.]*\).*/\1/p' <<<"$out")")
			fi
			sleep 0.5 # the last phase's clients leave
		done
	done
	stop_started "$be"
	[ $rc = 0 ] || return 1
	echo "${leave[*]} ${admit[*]}"
}

# ---- the storm's proxy configurations ---------------------------------------------
# Each proxy balances over both storm backends (least connections: sluiced's
# default) and listens with a backlog of 4096 (net.core.somaxconn here; NGINX
# would otherwise use 511). Clients hold their connection once it echoed, to
# the end of the run, so a concurrent-connection limit per backend must let
# each end up with its 2000: a limit under that would lock the rest out for
# good, and a limit over it does not slow the herd down. What spreads a storm
# is a limit on NEW connections per second, and only sluiced and HAProxy
# have one.
STORM_MAXCONN=$((STORM_N * 5 / 8))   # per backend: its half of the clients + 25 %

gen_sluiced_storm() { # - CONF SYSTEM
	# tests/integration/24-collapse.sh: rate and burst per backend, enforced
	# by the kernel at connect(); the rest wait in the pool's queue (up to
	# 10000, 60 s), and one that gives up leaves it at once, before any
	# backend sees it. drain: a stop closes what is left at once (nothing
	# should be left: the clients have gone when the proxy is stopped).
	# sluiced-auto sets no number: rate and queue timeout are learned
	# (tests/integration/44-auto-storm.sh).
	local limits="rate = $STORM_RATE; burst = $STORM_BURST;" timeout=$STORM_TIMEOUT_MS wait=$STORM_TIMEOUT_MS
	if [ "$3" = sluiced-auto ]; then
		limits='rate = "auto";' timeout='"auto"' wait=60000
	fi
	cat >"$2" <<EOF
workers = $WORKERS;
admin = { address = "127.0.0.1:$SLUICED_ADMIN"; };
bpf = { pin_path = "$BPF_PIN"; cgroup = "$BPF_CGROUP"; };
timeouts = { backend_wait_ms = $wait; };
drain = { period_s = 0; grace_s = 1; };
listeners = ( { name = "storm"; address = "127.0.0.1:${PROXY_LISTEN[$3]}"; mode = "tcp"; pool = "app"; backlog = 4096; } );
pools = ( { name = "app"; queue = { max = 10000; timeout_ms = $timeout;${STORM_ORDER:+ order = "$STORM_ORDER";} };
    servers = ( { name = "b1"; address = "127.0.0.1:${PORT_STORM[0]}"; $limits },
                { name = "b2"; address = "127.0.0.1:${PORT_STORM[1]}"; $limits } ); } );
EOF
}

gen_haproxy_storm() { # - CONF SYSTEM
	# HAProxy's closest equivalent of sluiced's setup:
	#  - "rate-limit sessions" on the frontend: at most 2 x STORM_RATE new
	#    sessions per second (sluiced's per-backend rate times two); the
	#    rest stay in the kernel's accept queue. It is per frontend, not per
	#    server: HAProxy has no per-server rate of new connections.
	#  - "maxconn" per server with a server queue ("timeout queue 60s", like
	#    sluiced's queue.timeout_ms): sized to what a backend must hold here
	#    (STORM_MAXCONN, see above), so the queue only takes over if the
	#    balance goes wrong; maxconn limits concurrency, not the rate.
	#  - "option abortonclose": a client that closes while in the server
	#    queue is dropped before a server connection is made.
	# What it cannot do: a client that gives up while still in the kernel's
	# accept queue is accepted later anyway and its connection forwarded to
	# a backend, which pays for it. haproxy-best is what its experts would
	# use against that: the same with a listen backlog of 64, so that a full
	# backlog drops SYNs (the clients' kernels retry them) instead of keeping
	# connections whose clients give up before they are accepted.
	local backlog=4096
	[ "$3" = haproxy-best ] && backlog=64
	cat >"$2" <<EOF
global
	nbthread $WORKERS
	maxconn 9000
defaults
	mode tcp
	maxconn 9000
	timeout connect 5s
	timeout client 1h
	timeout server 1h
	timeout queue 60s
frontend storm
	bind 127.0.0.1:${PROXY_LISTEN[$3]}
	backlog $backlog
	rate-limit sessions $((2 * STORM_RATE))
	default_backend be
backend be
	balance leastconn
	option abortonclose
	server b1 127.0.0.1:${PORT_STORM[0]} maxconn $STORM_MAXCONN
	server b2 127.0.0.1:${PORT_STORM[1]} maxconn $STORM_MAXCONN
EOF
}

gen_nginx_storm() { # - CONF
	# NGINX stream has "max_conns" per upstream server (a concurrency limit,
	# sized like HAProxy's maxconn) and nothing else that applies: no queue
	# (open-source NGINX has no "queue" directive; at max_conns a client is
	# closed at once), and no limit on the rate of new TCP connections
	# (limit_conn counts concurrent connections per key; proxy_*_rate limit
	# bytes). So it relays the storm as it comes.
	cat >"$2" <<EOF
load_module $NGINX_STREAM_SO;
daemon off;
worker_processes $WORKERS;
worker_rlimit_nofile 19500;
pid $ROOT/$WORK/nginx.pid;
error_log $ROOT/$WORK/logs/nginx-error.log crit;
events {
	worker_connections 19000;
}
stream {
	upstream be {
		least_conn;
		server 127.0.0.1:${PORT_STORM[0]} max_conns=$STORM_MAXCONN;
		server 127.0.0.1:${PORT_STORM[1]} max_conns=$STORM_MAXCONN;
	}
	server {
		listen 127.0.0.1:${PROXY_LISTEN[nginx]} backlog=4096;
		proxy_pass be;
		proxy_connect_timeout 5s;
		proxy_timeout 1h;
	}
}
EOF
}

# start_proxy SYSTEM UPSTREAM_PORT|tls|storm: sets PROXY_PID, PROXY_PORT,
# RSS_PIDS. "tls" makes the proxy terminate TLS in front of the echo backend
# (gen_*_tls); "storm" puts it in front of the storm's two backends,
# configured for the storm (gen_*_storm), and unpinned.
start_proxy() {
	local sys=$1 up=$2 conf log="$WORK/logs/$1.log" i sfx="" pin=("${PIN_PROXY[@]}")
	PROXY_PID= RSS_PIDS= PROXY_PORT=${PROXY_LISTEN[$sys]:-$up}
	[ "$up" = storm ] && sfx=_storm pin=()
	[ "$up" = queue ] && sfx=_queue
	[ "$up" = tls ] && sfx=_tls up=$PORT_ECHO
	case $sys in
	direct)
		return 0 ;;
	sluiced|sluiced-nogate|sluiced-auto)
		[ -x build/sluiced ] || return 1
		# No state from the previous sluiced (tokens, ledger) in the maps.
		rm -rf "$BPF_PIN"
		conf=$WORK/$sys.conf; gen_sluiced$sfx "$up" "$conf" "$sys" || return 1
		"${pin[@]}" build/sluiced -c "$conf" >>"$log" 2>&1 & ;;
	haproxy|haproxy-best)
		conf=$WORK/$sys.cfg; gen_haproxy$sfx "$up" "$conf" "$sys" || return 1
		"${pin[@]}" haproxy -db -f "$conf" >>"$log" 2>&1 & ;;
	nginx)
		conf=$WORK/nginx.conf; gen_nginx$sfx "$up" "$conf" || return 1
		"${pin[@]}" nginx -c "$ROOT/$conf" -p "$ROOT/$WORK/" -e "$ROOT/$WORK/logs/nginx-error.log" \
			>>"$log" 2>&1 & ;;
	*)
		return 1 ;;
	esac
	PROXY_PID=$!
	STARTED_PIDS+=("$PROXY_PID")
	if ! wait_listen "$PROXY_PORT" "$PROXY_PID"; then
		stop_proxy
		return 1
	fi
	case $sys in
	nginx)
		# The master only accepts signals; the workers hold the
		# connections, so their RSS is what a connection costs.
		for ((i = 0; i < 50; i++)); do
			RSS_PIDS=$(pgrep -P "$PROXY_PID" | paste -sd, -)
			[ "$(tr ',' '\n' <<<"$RSS_PIDS" | grep -c .)" -ge "$WORKERS" ] && break
			sleep 0.05
		done ;;
	*)
		# sluiced and HAProxy (nbthread) are one process with threads.
		RSS_PIDS=$PROXY_PID ;;
	esac
	return 0
}

stop_proxy() {
	[ -n "$PROXY_PID" ] || return 0
	stop_pid "$PROXY_PID"
	forget_pid "$PROXY_PID"
	PROXY_PID=
}

# ---- scenario runners ---------------------------------------------------------
# Each prints one number (or NA) on stdout; raw tool output goes to $RUN_LOG.
RUN_LOG=/dev/null

run_wrk() { # PORT [wrk args...]
	local port=$1; shift
	"${PIN_CLIENT[@]}" timeout --foreground -k 5 $((DURATION + 20)) \
		wrk -t1 -c64 -d"${DURATION}s" "$@" "http://127.0.0.1:$port/" >"$RUN_LOG" 2>&1 ||
		return 1
	# Errors (non-2xx, socket errors other than the connect/close churn) are
	# kept in the log; a run where most requests failed is not a result.
	grep -q 'Non-2xx' "$RUN_LOG" && log "warning: non-2xx responses, see $RUN_LOG"
	awk '/^Requests\/sec:/ { print $2; found = 1 } END { exit !found }' "$RUN_LOG"
}
run_wrk_ka() { run_wrk "$1"; }
# Connection: close also prints the proxy's CPU time (user + system) per
# connection over the run: the rate moves with whatever else the machine
# runs, the CPU a connection costs much less. "direct" has no proxy: NA.
run_wrk_close() { # PORT RSS_PIDS
	local t0 t1 rate
	t0=$(cpu_ticks "$2")
	rate=$(run_wrk "$1" -H 'Connection: close') || return 1
	t1=$(cpu_ticks "$2")
	awk -v r="$rate" -v p="$2" -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
		/ requests in / { n = $1 }
		END { if (p == "" || n <= 0) print r, "NA"; else printf "%s %.1f\n", r, ticks / hz * 1e6 / n }' \
		"$RUN_LOG"
}

run_iperf() { # PORT
	"${PIN_CLIENT[@]}" timeout --foreground -k 5 $((DURATION + 20)) \
		iperf3 -c 127.0.0.1 -p "$1" -P4 -t "$DURATION" -J --connect-timeout 3000 \
		>"$RUN_LOG" 2>&1 || return 1
	jq -e '.end.sum_received.bits_per_second / 1e9' "$RUN_LOG"
}

# Idle memory: RSS growth of the proxy / connections held. "cold" measures a
# fresh process, so one-time allocations (buffer pools, rings) count as
# growth; "warm" first opens and closes as many connections, so what remains
# is what each held connection costs.
run_idle() { # PORT RSS_PIDS [WARMUP]
	[ -n "$2" ] || { echo NA; return 0; }   # direct: no proxy to weigh
	"${PIN_CLIENT[@]}" timeout --foreground -k 5 150 \
		"$B/loadgen" idle -c "127.0.0.1:$1" -n "$IDLE_CONNS" --pid "$2" \
		--warmup "${3:-0}" --hold-ms 1000 --timeout-ms 60000 >"$RUN_LOG" 2>&1 || return 1
	sed -n 's/.*bytes_per_conn=\([0-9.-]*\).*/\1/p' "$RUN_LOG" | grep .
}
run_idle_warm() { run_idle "$1" "$2" "$IDLE_CONNS"; }

# TLS: loadgen --tls through the proxy to the echo backend. The JSON report
# goes to $RUN_LOG, stderr next to it. A run is a result only if TLS was
# 1.3 was negotiated (every system alike), handshakes were of the kind asked
# for, and at most 1 % of the connections failed.
#
# Handshake runs also print the proxy's CPU time per handshake (user +
# system, from /proc/PID/stat over the whole loadgen run, which has no
# warm-up so that its counts cover the same time): a rate on a shared machine
# moves with whatever else runs, the CPU a handshake costs much less.
run_tls_flow() { # PORT RSS_PIDS KIND(full|resumed|bulk) LOADGEN_ARGS...
	local port=$1 pids=$2 kind=$3 t0 t1 warm=500 cdf=()
	shift 3
	# handshake runs keep their latency distribution for plot_tls_latency
	[ "$kind" = bulk ] || { warm=0; cdf=(--cdf "$RUN_LOG.cdf"); }
	t0=$(cpu_ticks "$pids")
	"${PIN_CLIENT[@]}" timeout --foreground -k 5 $((DURATION + 30)) \
		"$B/loadgen" "$@" -c "127.0.0.1:$port" -d $((DURATION * 1000)) --warmup-ms $warm \
		"${cdf[@]}" --json >"$RUN_LOG" 2>"$RUN_LOG.err" || return 1
	t1=$(cpu_ticks "$pids")
	jq -er --arg k "$kind" --argjson ticks $((t1 - t0)) --argjson hz "$(getconf CLK_TCK)" '
		if .tls_version == "-" then "no TLS handshake" | halt_error(1)
		elif .tls_version != "TLSv1.3" then "negotiated \(.tls_version), not TLS 1.3\n" | halt_error(1)
		elif $k == "full" and .tls_resumed > 0 then "\(.tls_resumed) handshakes resumed\n" | halt_error(1)
		elif $k == "resumed" and .tls_full > 0 then "\(.tls_full) handshakes not resumed\n" | halt_error(1)
		elif .errors > ((.conns // .connects) / 100) then "\(.errors) errors\n" | halt_error(1)
		elif $k == "bulk" then .gbit_s
		else "\(.handshakes_per_s) \($ticks / $hz * 1e6 / ([.tls_full + .tls_resumed, 1] | max))" end' \
		"$RUN_LOG" 2>>"$RUN_LOG.err" ||
		{ log "warning: not a result: $(tail -c 300 "$RUN_LOG.err")"; return 1; }
}
run_tls_full() { # PORT RSS_PIDS
	[ -n "$2" ] || { echo NA NA; return 0; }
	run_tls_flow "$1" "$2" full connrate --proto tcp --tls -n "$TLS_INFLIGHT"
}
run_tls_resumed() {
	[ -n "$2" ] || { echo NA NA; return 0; }
	run_tls_flow "$1" "$2" resumed connrate --proto tcp --tls-resume -n "$TLS_INFLIGHT"
}
run_tls_bulk() {
	[ -n "$2" ] || { echo NA; return 0; }
	run_tls_flow "$1" "$2" bulk bulk --tls -n 4
}
# The idle method over TLS: full handshakes, one echo each, then held; RSS
# growth of the proxy per connection. The warm-up is 100 connections, not
# as many as are measured (idle_warm): it pays what the first TLS
# connections cost once (OpenSSL's per-thread state, first touch of rings
# and pools), while a warm-up of N connections would leave N connections'
# worth of freed heap in the allocator for the measured ones to reuse.
run_tls_idle() { # PORT RSS_PIDS
	[ -n "$2" ] || { echo NA; return 0; }
	"${PIN_CLIENT[@]}" timeout --foreground -k 5 150 \
		"$B/loadgen" idle -c "127.0.0.1:$1" --echo --tls -n "$TLS_IDLE_CONNS" --pid "$2" \
		--warmup 100 --hold-ms 1000 --timeout-ms 60000 >"$RUN_LOG" 2>&1 || return 1
	grep -q "tls_full=$TLS_IDLE_CONNS .*tls_version=TLSv1.3 " "$RUN_LOG" || return 1
	sed -n 's/.*bytes_per_conn=\([0-9.-]*\).*/\1/p' "$RUN_LOG" | grep .
}

# ---- the reconnect storm ------------------------------------------------------------
STORM_BE_PIDS=()

# start_storm_backends DIR COST_US: two fresh echo backends, one thread each.
start_storm_backends() {
	local d=$1 i
	STORM_BE_PIDS=()
	for i in 1 2; do
		cost_backend "${PORT_STORM[i - 1]}" "$2" "$STORM_BACKEND_NICE" \
			$((STORM_MAX_MS / 1000 + 120)) "$d/b$i"
		STORM_BE_PIDS+=("$COST_BE_PID")
	done
	for i in 1 2; do
		wait_ready "$d/b$i" "${STORM_BE_PIDS[i - 1]}" || return 1
	done
}

# stop_storm_backends: SIGTERM makes each write its summary.
stop_storm_backends() {
	stop_started "${STORM_BE_PIDS[@]}"
	STORM_BE_PIDS=()
}

# storm_clients DIR PORT1 PORT2: the herd, as two loadgen processes of half
# the clients each (seeds 1 and 2), started together. Two processes for
# every system, so that the client side is the same everywhere: for
# "direct" each one is pointed at one backend (a perfect split, the best
# any balancer could do), for the proxies both at the proxy. Their
# per-100 ms series are merged afterwards (storm_summary).
storm_clients() {
	local d=$1 i pid rc=0 pids=() n ports=("$2" "$3")
	date +%s%3N >"$d/t0"
	for i in 1 2; do
		n=$((i == 1 ? STORM_N / 2 : STORM_N - STORM_N / 2))
		timeout -k 5 $((STORM_MAX_MS / 1000 + 30)) \
			"$B/loadgen" storm -c "127.0.0.1:${ports[i - 1]}" -n "$n" \
			--policy naive --proto tcp --give-up-ms "$STORM_GIVE_UP_MS" \
			--max-ms "$STORM_MAX_MS" --seed "$i" --series "$d/lg$i.csv" --json \
			>"$d/lg$i.json" 2>"$d/lg$i.err" &
		pid=$!
		pids+=("$pid")
		STARTED_PIDS+=("$pid")
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || rc=1
		forget_pid "$pid"
	done
	return $rc
}

# storm_summary DIR: one run's results as JSON on stdout, from the two
# loadgens (reports and per-100 ms CSV series) and the two backends'
# summaries (accepts per 10 ms since each backend started).
#   t50/t90/t99: from the merged per-100 ms series, interpolated inside the
#     100 ms bucket, and clamped between the two loadgens' own values (the
#     merged quantile always lies between them); t100: the later of the two
#     (exact). "inf": not reached by the deadline.
#   accepts_per_100ms: both backends, aligned on the moment the clients were
#     started (t0) through each backend's start time; peak_per_100ms is its
#     maximum.
storm_summary() {
	local d=$1
	jq -n --slurpfile l1 "$d/lg1.json" --slurpfile l2 "$d/lg2.json" \
		--rawfile c1 "$d/lg1.csv" --rawfile c2 "$d/lg2.csv" \
		--slurpfile b1 "$d/b1.json" --slurpfile b2 "$d/b2.json" \
		--argjson t0 "$(cat "$d/t0")" --argjson n "$STORM_N" \
		--argjson ticks "$(if [ -s "$d/cpu1" ]; then echo $(($(cat "$d/cpu1") - $(cat "$d/cpu0"))); else echo null; fi)" \
		--argjson hz "$(getconf CLK_TCK)" '
		def csv: split("\n")[1:] | map(select(length > 0) | split(",") | map(tonumber));
		def at($a; $i): if $i >= 0 and $i < ($a | length) then $a[$i] else 0 end;
		def bins($b): (($t0 - $b.start_unix_ms) / $b.bucket_ms | round) as $sh
			| (100 / $b.bucket_ms | round) as $k | $b.accepts_per_10ms as $a
			| [range(0; ((($a | length) - $sh) / $k | ceil)) as $i
			   | [range($sh + $i * $k; $sh + ($i + 1) * $k) | at($a; .)] | add];
		$l1[0] as $a | $l2[0] as $b
		| ($c1 | csv | map(.[2])) as $ok1 | ($c2 | csv | map(.[2])) as $ok2
		| (bins($b1[0])) as $acc1 | (bins($b2[0])) as $acc2
		| ([($ok1 | length), ($ok2 | length), ($acc1 | length), ($acc2 | length)] | max) as $len
		| [range(0; $len) as $i | at($ok1; $i) + at($ok2; $i)] as $ok
		| [foreach $ok[] as $x (0; . + $x)] as $cum
		| [range(0; $len) as $i | at($acc1; $i) + at($acc2; $i)] as $acc
		| def q($p):
			((($n * $p + 99) / 100) | floor) as $need
			| [$a["t\($p)_ms"], $b["t\($p)_ms"]] as $own
			| (first(range(0; $len) | select($cum[.] >= $need)) // null) as $i
			| if $i == null then "inf"
			  else (($i * 100) + 100 * ($need - (if $i > 0 then $cum[$i - 1] else 0 end))
				/ $ok[$i]) as $t
				| ($own | map(select(. != null)) | min) as $lo
				| (if ($own | any(. == null)) then $t else ($own | max) end) as $hi
				| [[$t, $lo] | max, $hi] | min
			  end;
		{reconnected: ($a.reconnected + $b.reconnected),
		 never: ($a.never_reconnected + $b.never_reconnected),
		 t50_ms: q(50), t90_ms: q(90), t99_ms: q(99),
		 t100_ms: (if $a.t100_ms == null or $b.t100_ms == null then "inf"
			   else [$a.t100_ms, $b.t100_ms] | max end),
		 attempts_per_client: (($a.attempts + $b.attempts) / $n),
		 proxy_cpu_us_per_attempt: (if $ticks == null then null
			else $ticks / $hz * 1e6 / ([$a.attempts + $b.attempts, 1] | max) end),
		 gave_up_per_client: (($a.gave_up + $b.gave_up) / $n),
		 accepts_per_client: (($b1[0].accepted + $b2[0].accepted) / $n),
		 # every success is one accepted connection that echoed; the
		 # rest of what the backends accepted was for clients who left
		 wasted: ([$b1[0].accepted + $b2[0].accepted - $a.reconnected - $b.reconnected, 0] | max),
		 backend_accepted: [$b1[0].accepted, $b2[0].accepted],
		 peak_per_100ms: ($acc | max // 0),
		 gave_up: ($a.gave_up + $b.gave_up), refused: ($a.refused + $b.refused),
		 errors: ($a.errors + $b.errors), cut_at_deadline: ($a.cut_at_deadline + $b.cut_at_deadline),
		 elapsed_ms: ([$a.elapsed_ms, $b.elapsed_ms] | max),
		 backend_loop_lag_max_ms: ([$b1[0].loop_lag_max_ms, $b2[0].loop_lag_max_ms] | max),
		 accepts_per_100ms: $acc,
		 reconnected_pct: ($cum | map(. * 100 / $n))}'
}

# measure_storm SYSTEM REP SCENARIO: one storm run, fresh backends; appends one
# sample per row of SCENARIO (storm: backends of STORM_COST_US; storm_slow:
# twice as slow, every configuration unchanged).
measure_storm() {
	local sys=$1 rep=$2 sc=$3 d=$WORK/$3/$1-$2 row p1 p2 rows cost=$STORM_COST_US
	[ "$sc" = storm_slow ] && cost=$((2 * STORM_COST_US))
	rows=$(rows_of "$sc")
	if [[ " $STORM_SYSTEMS " != *" $sys "* ]]; then
		for row in $rows; do printf '%s\t%s\t%s\tNA\n' "$sys" "$row" "$rep" >>"$SAMPLES"; done
		return
	fi
	rm -rf "$d"
	mkdir -p "$d"
	RUN_LOG=$d/run.log
	if ! start_storm_backends "$d" "$cost"; then
		log "warning: storm backends did not start: $(cat "$d"/b*.log)"
		stop_storm_backends
		for row in $rows; do printf '%s\t%s\t%s\tERR\n' "$sys" "$row" "$rep" >>"$SAMPLES"; done
		return
	fi
	if ! start_proxy "$sys" storm; then
		if [ "$rep" = 1 ] && [ "${SYS_STATUS[$sys]}" = untried ]; then
			SYS_STATUS[$sys]="failed to start"
			log "$sys: n/a (${SYS_STATUS[$sys]}); skipping it"
		fi
		stop_storm_backends
		for row in $rows; do printf '%s\t%s\t%s\tERR\n' "$sys" "$row" "$rep" >>"$SAMPLES"; done
		return
	fi
	SYS_STATUS[$sys]=ok
	if [ "$sys" = direct ]; then
		p1=${PORT_STORM[0]} p2=${PORT_STORM[1]}
	else
		p1=$PROXY_PORT p2=$PROXY_PORT
	fi
	# the proxy's CPU over the storm, per client attempt (storm_summary)
	[ -n "$RSS_PIDS" ] && cpu_ticks "$RSS_PIDS" >"$d/cpu0"
	storm_clients "$d" "$p1" "$p2" || log "warning: a storm client failed: $(cat "$d"/lg*.err)"
	[ -n "$RSS_PIDS" ] && cpu_ticks "$RSS_PIDS" >"$d/cpu1"
	if [ -n "$PROXY_PID" ] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
		log "warning: $sys died during the storm"
		: >"$d/lg1.json"   # not a result
	fi
	stop_proxy
	stop_storm_backends
	if ! storm_summary "$d" >"$d/summary.json" 2>>"$d/run.log"; then
		log "warning: $sys $sc #$rep: no result (see $d)"
		rm -f "$d/summary.json"
		for row in $rows; do printf '%s\t%s\t%s\tERR\n' "$sys" "$row" "$rep" >>"$SAMPLES"; done
		return
	fi
	jq -r --arg sys "$sys" --arg rep "$rep" --arg sc "$sc" '
		[["t50", .t50_ms], ["t90", .t90_ms], ["t99", .t99_ms],
		 ["t100", .t100_ms], ["never", .never],
		 ["attempts", .attempts_per_client], ["gave_up", .gave_up_per_client],
		 ["accepts", .accepts_per_client], ["wasted", .wasted],
		 ["peak", .peak_per_100ms],
		 ["cpu", (.proxy_cpu_us_per_attempt // "NA")]][]
		| [$sys, "\($sc)_\(.[0])", $rep, (.[1] | tostring)] | @tsv' "$d/summary.json" >>"$SAMPLES"
	log "$sys $sc #$rep: $(jq -r '"back \(.reconnected)/'"$STORM_N"', t50 \(.t50_ms) t100 \(.t100_ms) ms, attempts/client \(.attempts_per_client), accepts/client \(.accepts_per_client), wasted \(.wasted), peak \(.peak_per_100ms)/100 ms, backend lag max \(.backend_loop_lag_max_ms) ms, proxy CPU per attempt \(.proxy_cpu_us_per_attempt // "-") us"' "$d/summary.json")"
	sleep 0.5
}

# ---- measurement loop -----------------------------------------------------------
declare -A SYS_STATUS   # "ok" or why the system is n/a
SAMPLES=                # TSV: system scenario rep value

upstream_port() {
	case ${SC_UPSTREAM[$1]} in
	iperf) echo "$PORT_IPERF" ;;
	tls) echo tls ;;
	queue) echo queue ;;
	*) echo "$PORT_HTTP" ;;
	esac
}

measure() { # SYSTEM SCENARIO REP
	local sys=$1 sc=$2 rep=$3 up value row
	if [ "${SC_UPSTREAM[$sc]}" = storm ]; then
		measure_storm "$sys" "$rep" "$sc"
		return
	fi
	if [[ " $STORM_ONLY " == *" $sys "* ]] ||
	   { [ "${SC_UPSTREAM[$sc]}" = tls ] && [[ " $TLS_SYSTEMS " != *" $sys "* ]]; } ||
	   { [ "${SC_UPSTREAM[$sc]}" = queue ] && [[ " $QUEUE_SYSTEMS " != *" $sys "* ]]; }; then
		for row in $(rows_of "$sc"); do
			printf '%s\t%s\t%s\tNA\n' "$sys" "$row" "$rep" >>"$SAMPLES"
		done
		return
	fi
	up=$(upstream_port "$sc")
	RUN_LOG=$WORK/logs/$sys-$sc-$rep.log
	ensure_backends
	if ! start_proxy "$sys" "$up"; then
		if [ "$rep" = 1 ] && [ "${SYS_STATUS[$sys]}" = untried ]; then
			SYS_STATUS[$sys]="failed to start"
			[[ $sys == sluiced* ]] && [ ! -x build/sluiced ] && SYS_STATUS[$sys]="build/sluiced missing"
			log "$sys: n/a (${SYS_STATUS[$sys]}); skipping it"
		fi
		for row in $(rows_of "$sc"); do
			printf '%s\t%s\t%s\tERR\n' "$sys" "$row" "$rep" >>"$SAMPLES"
		done
		return
	fi
	SYS_STATUS[$sys]=ok
	value=$(${SC_RUN[$sc]} "$PROXY_PORT" "$RSS_PIDS") || value=ERR
	[ -n "$value" ] || value=ERR
	if [ -n "$PROXY_PID" ] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
		log "warning: $sys died during $sc"
		value=ERR
	fi
	if [ -n "${SC_ROWS[$sc]:-}" ]; then
		# one value per row; a failed run fails every row
		local vals i=0
		read -ra vals <<<"$value"
		for row in ${SC_ROWS[$sc]}; do
			[ "$value" = ERR ] && vals[i]=ERR
			printf '%s\t%s\t%s\t%s\n' "$sys" "$row" "$rep" "${vals[i]:-ERR}" >>"$SAMPLES"
			i=$((i + 1))
		done
		stop_proxy
		log "$sys $sc #$rep: $value"
		sleep 0.5
		return
	fi
	stop_proxy
	# An aborted iperf3 test can leave the server stuck in it ("busy").
	if [ "$value" = ERR ] && [ "${SC_UPSTREAM[$sc]}" = iperf ]; then
		log "restarting the iperf3 server after a failed run"
		stop_pid "$IPERF_PID"   # ensure_backends starts a new one
	fi
	log "$sys $sc #$rep: $value ${SC_UNIT[$sc]}"
	printf '%s\t%s\t%s\t%s\n' "$sys" "$sc" "$rep" "$value" >>"$SAMPLES"
	sleep 0.5   # let TIME_WAIT churn and CPU settle between runs
}

# ---- report -----------------------------------------------------------------------
# storm_median_rep SYSTEM: the repeat whose storm result is the median one,
# ranked by (clients never back, time to 100 %, accepts per client).
storm_median_rep() {
	local sys=$1 rep f
	for ((rep = 1; rep <= REPEATS; rep++)); do
		f=$WORK/storm/$sys-$rep/summary.json
		[ -s "$f" ] || continue
		jq -r --arg rep "$rep" '[.never, (if .t100_ms == "inf" then 1e18 else .t100_ms end),
			.accepts_per_client, $rep] | @tsv' "$f"
	done | sort -k1,1g -k2,2g -k3,3g | awk '{ r[NR] = $4 } END { if (NR) print r[int((NR + 1) / 2)] }'
}

# storm_series: {SYSTEM: {rep, some results, accepts_per_100ms,
# reconnected_pct}} of each system's median repeat, in SYSTEMS order.
storm_series() {
	local sys rep
	for sys in $SYSTEMS; do
		[[ " $STORM_SYSTEMS " == *" $sys "* ]] || continue
		rep=$(storm_median_rep "$sys")
		[ -n "$rep" ] || continue
		jq -c --arg sys "$sys" --argjson rep "$rep" \
			'{($sys): {rep: $rep, reconnected, t100_ms, accepts_per_client, peak_per_100ms,
				   accepts_per_100ms, reconnected_pct}}' \
			"$WORK/storm/$sys-$rep/summary.json"
	done | jq -s 'add // {}'
}

# plot_storm STAMP SERIES_JSON: the two storm figures (PNG) from the median
# repeats. Backend accepts: one panel per system, stacked on the same axes
# (four step lines at up to 100 per 100 ms on one plot hide each other); the
# CDF: one plot. Data files go to the work dir, the figures next to the tables.
plot_storm() {
	local stamp=$1 series=$2 sys dat n=0 key rate cdf=() gp=$WORK/storm.gp
	local png_acc=$RESULTS/$SUITE-$1-storm-accepts.png png_cdf=$RESULTS/$SUITE-$1-storm-cdf.png
	local xmax=$((STORM_MAX_MS / 1000)) cap=$((2 * 100000 / STORM_COST_US))
	local systems colors=("#d62728" "#1f77b4" "#2ca02c" "#9467bd" "#ff7f0e")
	systems=$(jq -r 'keys_unsorted[]' "$series")
	[ -n "$systems" ] || return 0
	{
		cat <<EOF
set terminal pngcairo size 1200,$((200 + 220 * $(wc -w <<<"$systems"))) font "sans,12"
set output "$png_acc"
set grid
set xrange [0:$xmax]
set yrange [0:$((cap * 3 / 2))]
set ytics $((cap / 5))
set lmargin 12
set rmargin 4
set key inside top right horizontal maxrows 1 width 2 samplen 3
set ylabel "accepts per 100 ms"
set multiplot layout $(wc -w <<<"$systems"),1 title "Reconnect storm: new connections accepted by the 2 backends per 100 ms (median repeat of each system)\\n$STORM_N naive clients give up after $((STORM_GIVE_UP_MS / 1000)) s and retry at once; each backend burns $((STORM_COST_US / 1000)) ms CPU per new connection" font "sans,13"
EOF
		for sys in $systems; do
			dat=$WORK/storm-plot-$sys.dat
			# bucket start (s), accepts in it, bucket end (s), % back by its end
			jq -r --arg s "$sys" '.[$s] | .accepts_per_100ms as $a | .reconnected_pct as $p
				| range(0; $a | length) as $i
				| "\($i / 10) \($a[$i]) \(($i + 1) / 10) \($p[$i] // $p[-1] // 0)"' \
				"$series" >"$dat"
			key=$(jq -r --arg s "$sys" --argjson n "$STORM_N" '.[$s]
				| "\($s) (repeat \(.rep)): \(.reconnected)/\($n) back"
				  + (if .t100_ms == "inf" then " by the deadline" else " in \(.t100_ms / 1000 * 10 | round / 10) s" end)
				  + ", \(.accepts_per_client * 100 | round / 100) backend accepts per client"' "$series")
			rate=
			case $sys in
			sluiced) rate=", $((2 * STORM_RATE / 10)) with lines lc rgb 'black' dt 2 lw 1.5 title 'admission rate: 2 x $STORM_RATE/s'" ;;
			haproxy) rate=", $((2 * STORM_RATE / 10)) with lines lc rgb 'black' dt 2 lw 1.5 title 'rate-limit sessions $((2 * STORM_RATE))/s'" ;;
			esac
			n=$((n + 1))
			[ "$n" -eq "$(wc -w <<<"$systems")" ] &&
				echo "set xlabel 'time since all clients were disconnected (s)'"
			echo "set title '$key'"
			echo "plot '$dat' using 1:2 with steps lc rgb '${colors[(n - 1) % 5]}' lw 2 title 'backend accepts', $cap with lines lc rgb 'gray40' dt 3 lw 1.5 title 'capacity with a whole CPU per backend'$rate"
			key=$(jq -r --arg s "$sys" --argjson n "$STORM_N" '.[$s]
				| "\($s) (repeat \(.rep)): " + (if .t100_ms == "inf"
				  then "\(.reconnected * 1000 / $n | round / 10)% back by '"$xmax"' s"
				  else "all back in \(.t100_ms / 1000 * 10 | round / 10) s" end)' "$series")
			cdf+=("'$dat' using 3:4 with lines lc rgb '${colors[(n - 1) % 5]}' lw 2.5 title '$key'")
		done
		cat <<EOF
unset multiplot
reset
set terminal pngcairo size 1300,650 font "sans,12"
set output "$png_cdf"
set grid
set xrange [0:$xmax]
set title "Reconnect storm: share of the $STORM_N clients reconnected over time (CDF, median repeat)\\nnaive clients give up after $((STORM_GIVE_UP_MS / 1000)) s and retry at once; flat below 100 %: clients who never got back"
set xlabel "time since all clients were disconnected (s)"
set ylabel "clients reconnected (%)"
set yrange [0:100]
set key outside right top vertical box
plot $(IFS=,; echo "${cdf[*]}")
EOF
	} >"$gp"
	gnuplot "$gp" >"$WORK/logs/gnuplot.log" 2>&1 ||
		{ log "warning: gnuplot failed: $(cat "$WORK/logs/gnuplot.log")"; return 0; }
	log "plots: $png_acc $png_cdf"
}

# plot_tls_latency STAMP: CDFs of connection latency (connect to the echo
# reply, the TLS handshake included) for full and resumed handshakes, one
# line per system, from each system's repeat with the median handshake rate.
plot_tls_latency() {
	local stamp=$1 sc sys rep f gp=$WORK/tls-latency.gp lines n
	local png=$RESULTS/$SUITE-$stamp-tls-latency.png colors=("#1f77b4" "#2ca02c" "#9467bd" "#ff7f0e")
	compgen -G "$WORK/logs/*-tls_*.log.cdf" >/dev/null || return 0
	{
		cat <<EOF
set terminal pngcairo size 1300,550 font "sans,12"
set output "$png"
set grid
set logscale x
set xlabel "connect() to the echo reply, handshake included (ms, log scale)"
set ylabel "connections (%)"
set yrange [0:100]
set key top left
set multiplot layout 1,2 title "TLS 1.3 connection latency, $TLS_INFLIGHT handshakes in flight (CDF; each system's repeat with the median rate)" font "sans,13"
EOF
		for sc in tls_full tls_resumed; do
			lines=() n=0
			for sys in $TLS_SYSTEMS; do
				[[ " $SYSTEMS " == *" $sys "* ]] || continue
				n=$((n + 1))
				rep=$(awk -F'\t' -v s="$sys" -v c="$sc" '$1 == s && $2 == c && $4 ~ /^[0-9.]+$/ { print $4, $3 }' \
					"$SAMPLES" | sort -g | awk '{ r[NR] = $2 } END { if (NR) print r[int((NR + 1) / 2)] }')
				f=$WORK/logs/$sys-$sc-$rep.log.cdf
				[ -n "$rep" ] && [ -s "$f" ] || continue
				lines+=("'$f' using (\$1 / 1000):(\$2 * 100) with steps lw 2 lc rgb '${colors[(n - 1) % 4]}' title '$sys (repeat $rep)'")
			done
			echo "set title '${sc#tls_} handshakes'"
			if [ ${#lines[@]} -gt 0 ]; then
				echo "plot $(IFS=,; echo "${lines[*]}")"
			else
				echo "set label 1 'no result' at graph 0.5, 0.5 center"
				echo "plot NaN notitle"
				echo "unset label 1"
			fi
		done
		echo "unset multiplot"
	} >"$gp"
	gnuplot "$gp" >"$WORK/logs/gnuplot-tls.log" 2>&1 ||
		{ log "warning: gnuplot failed: $(cat "$WORK/logs/gnuplot-tls.log")"; return 0; }
	log "plot: $png"
}

write_results() { # STAMP SECONDS
	local stamp=$1 secs=$2 json=$RESULTS/$SUITE-$1.json md=$RESULTS/$SUITE-$1.md
	local sys sc row meta=$WORK/scenarios.tsv status=$WORK/status.tsv stats=$WORK/stats.tsv
	local series=$WORK/storm-series.json storm_cfg=null tls_cfg=null neg f
	: >"$meta"; : >"$status"; : >"$stats"
	for sc in $SCENARIOS; do
		for row in $(rows_of "$sc"); do
			printf '%s\t%s\t%s\t%s\n' "$row" "${SC_UNIT[$row]}" "${SC_DEC[$row]}" \
				"${SC_LABEL[$row]}" >>"$meta"
			for sys in $SYSTEMS; do
				# median min max n, then how many repeats never got there
				printf '%s\t%s\t%s %s\n' "$sys" "$row" "$(awk -F'\t' -v s="$sys" -v c="$row" \
					'$1 == s && $2 == c && $4 ~ /^([0-9.eE+-]+|inf)$/ { print $4 }' "$SAMPLES" |
					median)" "$(awk -F'\t' -v s="$sys" -v c="$row" \
					'$1 == s && $2 == c && $4 == "inf" { k++ } END { print k + 0 }' "$SAMPLES")" \
					>>"$stats"
			done
		done
	done
	for sys in $SYSTEMS; do
		printf '%s\t%s\n' "$sys" "${SYS_STATUS[$sys]}" >>"$status"
	done
	if [[ " $SCENARIOS " == *" tls_"* ]]; then
		# what was negotiated, from the first full-handshake run that worked
		neg=null
		for f in "$WORK"/logs/*-tls_full-*.log; do
			[ -s "$f" ] && neg=$(jq -c '{version: .tls_version, cipher: .tls_cipher}' "$f" 2>/dev/null) &&
				break
			neg=null
		done
		tls_cfg=$(jq -n --argjson inflight "$TLS_INFLIGHT" --argjson idle "$TLS_IDLE_CONNS" \
			--argjson neg "$neg" --arg systems "$TLS_SYSTEMS" \
			'{certificate: "ECDSA P-256 (the same for every proxy)", negotiated: $neg,
			  handshakes_in_flight: $inflight, idle_conns: $idle,
			  sluiced: "full_per_s = 0, resumed_per_s = 0 (unlimited), ticket_keys file",
			  haproxy: "bind ... ssl crt, tune.ssl.* defaults",
			  nginx: "listen ... ssl, ssl_protocols TLSv1.2 TLSv1.3, ssl_certificate, defaults",
			  systems: ($systems | split(" "))}')
	fi
	echo '{}' >"$series"
	if [[ " $SCENARIOS " == *" storm "* ]]; then
		storm_series >"$series" || echo '{}' >"$series"
		storm_cfg=$(jq -n --argjson n "$STORM_N" --argjson max "$STORM_MAX_MS" \
			--argjson cost "$STORM_COST_US" --argjson give "$STORM_GIVE_UP_MS" \
			--argjson rate "$STORM_RATE" --argjson burst "$STORM_BURST" \
			--argjson maxconn "$STORM_MAXCONN" --arg systems "$STORM_SYSTEMS" \
			'{clients: $n, max_ms: $max, conn_cost_us: $cost, give_up_ms: $give,
			  policy: "naive", proto: "tcp", backends: 2, loadgen_processes: 2,
			  sluiced: {rate: $rate, burst: $burst, queue_max: 10000, queue_timeout_ms: 60000},
			  haproxy: {rate_limit_sessions: (2 * $rate), maxconn_per_server: $maxconn,
				    timeout_queue_ms: 60000},
			  nginx: {max_conns_per_server: $maxconn},
			  systems: ($systems | split(" ")), pinning: "none",
			  backend_nice: '"$STORM_BACKEND_NICE"'}')
	fi

	jq -n --rawfile samples "$SAMPLES" --rawfile meta "$meta" --rawfile status "$status" \
		--rawfile stats "$stats" --arg date "$DATE" --arg commit "$COMMIT" \
		--arg suite "$SUITE" --argjson tls "$tls_cfg" \
		--arg kernel "$KERNEL" --arg cpu "$CPU" --argjson secs "$secs" \
		--argjson workers "$WORKERS" --argjson backend_threads "$BACKEND_THREADS" \
		--argjson repeats "$REPEATS" --argjson duration "$DURATION" \
		--argjson idle_conns "$IDLE_CONNS" --arg pin "$PIN_DESC" \
		--argjson busy "$BUSY_BEFORE" --arg load_end "$LOAD_END" \
		--argjson storm "$storm_cfg" --slurpfile series "$series" '
		def rows($t): $t | split("\n") | map(select(length > 0) | split("\t"));
		def num: if test("^[0-9.eE+-]+$") then tonumber else null end;
		(rows($stats) | map({system: .[0], scenario: .[1]} +
			(.[2] | split(" ") | {median: (.[0] | num), min: (.[1] | num),
			 max: (.[2] | num), n: (.[3] | tonumber)}
			 + (if .[4] != "0" then {unreached: (.[4] | tonumber)} else {} end)))) as $st
		| {suite: $suite, date: $date, commit: $commit, kernel: $kernel, cpu: $cpu, runtime_s: $secs,
		   cpu_busy_before_pct: $busy, loadavg_end: $load_end,
		   config: ({workers: $workers, backend_threads: $backend_threads,
			    repeats: $repeats, duration_s: $duration, idle_conns: $idle_conns,
			    pinning: $pin} + (if $storm != null then {storm: $storm} else {} end)
			    + (if $tls != null then {tls: $tls} else {} end)),
		   systems: (rows($status) | map({key: .[0], value: .[1]}) | from_entries),
		   # storm rows: "unreached" = repeats in which that share of the
		   # clients was not back by the deadline (their value is null)
		   scenarios: (rows($meta) | map({key: .[0], value: {unit: .[1], label: .[3]}})
			       | from_entries),
		   samples: (rows($samples) | map({system: .[0], scenario: .[1],
			     rep: (.[2] | tonumber), value: (.[3] | num)}
			     + (if .[3] == "inf" then {unreached: true} else {} end))),
		   medians: ($st | group_by(.scenario) | map({key: .[0].scenario,
			     value: (map({key: .system, value: del(.system, .scenario)})
				     | from_entries)}) | from_entries)}
		| if $storm != null then .storm_series = $series[0] else . end
		| .ratio_sluiced_haproxy = (.medians | with_entries(.value |= (
			if (.sluiced.median // null) != null and (.haproxy.median // 0) != 0
			then .sluiced.median / .haproxy.median else null end)))
		# what the BPF backend gate costs: sluiced with it / without it
		| .ratio_gate = (.medians | with_entries(.value |= (
			if (.sluiced.median // null) != null and (.["sluiced-nogate"].median // 0) != 0
			then .sluiced.median / .["sluiced-nogate"].median else null end)))
		# The same ratio per repeat: neighbours in time share the noise.
		| .ratio_sluiced_haproxy_per_rep = (.samples | group_by(.scenario)
			| map({key: .[0].scenario, value: (group_by(.rep) | map(
				(map(select(.system == "sluiced"))[0].value) as $s
				| (map(select(.system == "haproxy"))[0].value) as $h
				| if $s != null and $h != null and $h != 0 then $s / $h
				  else null end))}) | from_entries)
		' >"$json" || die "writing $json failed"

	jq -r --arg systems "$SYSTEMS" --rawfile meta "$meta" --arg stamp "$stamp" '
		def fmt($d): if . == null then "n/a"
			elif $d == 0 then (. | round | tostring)
			else ((. * pow(10; $d) | round) / pow(10; $d) | tostring) end;
		($systems | split(" ") | map(select(length > 0))) as $sys
		# a column for what the BPF gate costs, when sluiced-nogate ran
		| (($sys | index(["sluiced-nogate"])) != null) as $gate
		| (($meta | split("\n") | map(select(length > 0) | split("\t")
			    | {key: .[0], value: {dec: (.[2] | tonumber), label: .[3]}}))) as $sc
		| . as $r
		| ($r.config.storm.max_ms // 0) as $dl
		# a null with "unreached" repeats: not back by the deadline
		| def cell($d): (.unreached // 0) as $u
			| def v: if . == null then (if $u > 0 then ">\($dl)" else "n/a" end) else fmt($d) end;
			"\(.median | v) [\(.min | v)–\(.max | v)]";
		"# sluice \($r.suite) benchmark — \($r.date)",
		  "",
		  "- commit: `\($r.commit)`; kernel \($r.kernel); CPU: \($r.cpu)",
		  "- workers per proxy: \($r.config.workers); backend threads: \($r.config.backend_threads); repeats: \($r.config.repeats) (interleaved); \($r.config.duration_s) s per run; pinning: \($r.config.pinning)",
		  "- machine: \($r.cpu_busy_before_pct)% CPU busy before the run; load average at the end \($r.loadavg_end) (other work on the machine makes every number noisy)",
		  "- runtime: \($r.runtime_s) s; cells: median [min–max] over repeats; n/a: \([$r.systems | to_entries[] | select(.value != "ok") | "\(.key) (\(.value))"] | if length == 0 then "none" else join(", ") end)",
		  (if $r.config.storm then
		   ($r.config.storm as $s |
		   "- storm: \($s.clients) naive tcp clients (2 loadgen processes) give up an attempt after \($s.give_up_ms) ms and retry at once; deadline \($s.max_ms) ms (\">\($s.max_ms)\": not reached); 2 fresh echo backends burning \($s.conn_cost_us) µs CPU per new connection, at nice \($s.backend_nice); unpinned. sluiced: rate \($s.sluiced.rate) burst \($s.sluiced.burst) per backend + queue; sluiced-auto: no number set (rate and queue timeout learned); HAProxy: rate-limit sessions \($s.haproxy.rate_limit_sessions), maxconn \($s.haproxy.maxconn_per_server) per server + queue, listen backlog 4096; haproxy-best: the same with a listen backlog of 64; NGINX: max_conns \($s.nginx.max_conns_per_server) (no queue, no rate limit). storm_slow: the same with backends burning twice as much per connection and every set-up unchanged. Figures: \($r.suite)-\($stamp)-storm-accepts.png, \($r.suite)-\($stamp)-storm-cdf.png")
		   else empty end),
		  (if $r.config.tls then ($r.config.tls as $t |
		   "- TLS: one ECDSA P-256 certificate for every proxy; negotiated \($t.negotiated.version // "?") \($t.negotiated.cipher // "?"); clients: loadgen --tls, \($t.handshakes_in_flight) handshakes in flight (each: connect, handshake, one 64-byte echo, close), no certificate check; sluiced: \($t.sluiced); HAProxy: \($t.haproxy); NGINX: \($t.nginx); no TLS for direct")
		   else empty end),
		  "",
		  "| metric | \($sys | join(" | ")) | sluiced/haproxy |\(if $gate then " gate/no-gate |" else "" end)",
		  "|---|\($sys | map("---:") | join("|"))|---:|\(if $gate then "---:|" else "" end)",
		  ($sc[] | .key as $k | .value.dec as $d
		   | "| \(.value.label) | \($sys | map(. as $s | $r.medians[$k][$s]
			| if . == null or (.median == null and (.unreached // 0) == 0) then "n/a"
			  else cell($d) end)
			| join(" | ")) | \($r.ratio_sluiced_haproxy[$k] | fmt(2)) |\(if $gate then " \($r.ratio_gate[$k] | fmt(3)) |" else "" end)")
		' "$json" >"$md" || die "writing $md failed"
	[ "$(jq 'length' "$series")" -gt 0 ] && plot_storm "$stamp" "$series"
	plot_tls_latency "$stamp"
	cat "$md"
	log "results: $json"
}

# ---- main -------------------------------------------------------------------------
cleanup() {
	local cg
	trap - EXIT INT TERM
	stop_all
	# the gated sluiced's BPF state: pinned maps and its cgroup
	rm -rf "$BPF_PIN"
	cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$cg" ] && [ -d "$cg/$BPF_CGROUP" ] && rmdir "$cg/$BPF_CGROUP" 2>/dev/null
	return 0
}

# suite: quick or full (the defaults differ, see the top of the file)
suite() {
	local t0 stamp rep sc sys p row
	t0=$(date +%s)
	stamp=$(date +%Y%m%d-%H%M%S)
	mkdir -p "$WORK/logs" "$RESULTS" || exit 1
	rm -f "$WORK"/logs/*.log
	SAMPLES=$WORK/samples.tsv
	: >"$SAMPLES"

	install_deps
	build_tools
	[ -e "$NGINX_STREAM_SO" ] || die "nginx stream module not found at $NGINX_STREAM_SO"

	# Refuse to run on top of someone else's listener: we would measure it.
	for p in $PORT_HTTP $PORT_IPERF $PORT_ECHO "${PORT_STORM[@]}" "${PROXY_LISTEN[@]}" \
		$PORT_QUEUE_ADMIT $PORT_QUEUE_BE \
		$SLUICED_ADMIN; do
		port_listening "$p" && die "port $p is already in use"
	done
	if [[ " $SCENARIOS " == *" tls_"* ]]; then
		make_tls_files || die "making the TLS certificate failed: $(cat "$WORK/logs/openssl.log")"
	fi

	DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	COMMIT=$(git describe --always --dirty 2>/dev/null || echo unknown)
	KERNEL=$(uname -r)
	CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
	setup_pinning
	BUSY_BEFORE=$(cpu_busy_pct)
	[ "$BUSY_BEFORE" -gt 20 ] &&
		log "warning: the machine is ${BUSY_BEFORE}% busy before the run: expect noise"
	for sys in $SYSTEMS; do SYS_STATUS[$sys]=untried; done
	log "$SUITE: systems: $SYSTEMS; scenarios: $SCENARIOS; workers $WORKERS; repeats $REPEATS; pinning: $PIN_DESC"

	start_backend
	for ((rep = 1; rep <= REPEATS; rep++)); do
		for sc in $SCENARIOS; do
			for sys in $SYSTEMS; do
				case ${SYS_STATUS[$sys]} in
				untried|ok) measure "$sys" "$sc" "$rep" ;;
				*) for row in $(rows_of "$sc"); do
					printf '%s\t%s\t%s\tERR\n' "$sys" "$row" "$rep" >>"$SAMPLES"
				   done ;;
				esac
			done
		done
	done
	stop_all   # the backend writes its summary on SIGTERM
	LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
	write_results "$stamp" $(($(date +%s) - t0))
}

main() {
	case ${1:-} in
	quick|full) suite ;;
	*) echo "usage: bench/run.sh quick|full" >&2; return 2 ;;
	esac
}

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# One line, so bash has read all of it before it runs: editing this file
# during a run cannot change what the running instance executes next.
main "$@"; exit $?
