#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/run.sh — sluice benchmark orchestration.
#
#   bench/run.sh quick          direct vs sluiced vs HAProxy vs NGINX (<= 10 min)
#
# Every system sits in front of the SAME backends (build/bench/backend for
# HTTP, an iperf3 server for throughput), started once for the whole run.
# Each measurement starts the proxy under test fresh, runs one scenario,
# and stops it again: only one proxy runs at a time, and nothing (pools,
# cached buffers, allocator state) carries over from one scenario to the next.
# Repeats are interleaved (A B C D, A B C D, ...) so that machine noise is
# spread over all systems. On 2 cores, absolute numbers mean little: read the
# ratios between columns, measured side by side in this one run.
#
# Knobs (environment):
#   WORKERS=1           worker threads/processes of every proxy
#   BACKEND_THREADS=1   threads of build/bench/backend
#   REPEATS=3           repeats per (system, scenario)
#   DURATION=5          seconds per wrk / iperf3 run
#   IDLE_CONNS=5000     connections held by the idle-memory scenario
#   SYSTEMS="direct sluiced sluiced-nogate haproxy nginx"
#                       sluiced runs with its BPF backend gate attached and limits
#                       too high to refuse anything (what the gate costs per
#                       connect); sluiced-nogate is the same with bpf.enabled = false
#   SCENARIOS="wrk_ka wrk_close iperf idle idle_warm"
#   PIN=1               taskset placement: CPU_CLIENT=0, CPU_PROXY=1 (0-1 when
#                       WORKERS>1), CPU_BACKEND=1; PIN=0 lets the scheduler place
#
# Results: build/bench/results/quick-<timestamp>.{json,md}; per-run logs and
# generated configs under build/bench/work/.

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

B=build/bench
WORK=$B/work
RESULTS=$B/results

WORKERS=${WORKERS:-1}
BACKEND_THREADS=${BACKEND_THREADS:-1}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-5}
IDLE_CONNS=${IDLE_CONNS:-5000}
SYSTEMS=${SYSTEMS:-"direct sluiced sluiced-nogate haproxy nginx"}
# CPU placement on 2 cores (measured, see setup_pinning): the client alone on
# CPU 0, the proxy and the backends sharing CPU 1.
PIN=${PIN:-1}
CPU_CLIENT=${CPU_CLIENT:-0}
CPU_BACKEND=${CPU_BACKEND:-1}
if [ "$WORKERS" -gt 1 ]; then CPU_PROXY=${CPU_PROXY:-0-1}; else CPU_PROXY=${CPU_PROXY:-1}; fi

# Ports: backends, then one listen port per proxy, then admin ports.
PORT_HTTP=18000
PORT_IPERF=18010
declare -A PROXY_LISTEN=([sluiced]=18001 [haproxy]=18002 [nginx]=18003 [sluiced-nogate]=18004)
SLUICED_ADMIN=19901
BPF_PIN=/sys/fs/bpf/sluice-bench
BPF_CGROUP=sluice-bench

NGINX_STREAM_SO=/usr/lib/nginx/modules/ngx_stream_module.so
DEB_PKGS="haproxy nginx libnginx-mod-stream wrk iperf3 gnuplot-nox jq"

# ---- scenarios: the one place where they are listed ------------------------
# add_scenario NAME UPSTREAM(http|iperf) UNIT DECIMALS RUNNER LABEL
# A runner is called as RUNNER PORT RSS_PIDS and prints one number, or "NA"
# when the scenario does not apply to the system; non-zero exit = failed.
SCENARIO_ORDER=()
declare -A SC_UPSTREAM SC_UNIT SC_DEC SC_RUN SC_LABEL
add_scenario() {
	SCENARIO_ORDER+=("$1")
	SC_UPSTREAM[$1]=$2 SC_UNIT[$1]=$3 SC_DEC[$1]=$4 SC_RUN[$1]=$5 SC_LABEL[$1]=$6
}
add_scenario wrk_ka    http  req/s   0 run_wrk_ka  "HTTP keep-alive, wrk -t1 -c64 (req/s)"
add_scenario wrk_close http  conn/s  0 run_wrk_close "HTTP Connection: close, wrk -t1 -c64 (conn/s)"
add_scenario iperf     iperf Gbit/s  2 run_iperf   "TCP bulk, iperf3 -P4 (Gbit/s)"
add_scenario idle      http  B/conn  0 run_idle    "idle memory, ${IDLE_CONNS} conns, cold process (bytes/conn, lower is better)"
add_scenario idle_warm http  B/conn  0 run_idle_warm "idle memory, ${IDLE_CONNS} conns after a warm-up (bytes/conn, lower is better)"
SCENARIOS=${SCENARIOS:-"${SCENARIO_ORDER[*]}"}

# ---- helpers ----------------------------------------------------------------
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

STARTED_PIDS=()

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL. Only for our own PIDs.
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop in 10 s, killing it"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

stop_all() {
	local pid
	for pid in "${STARTED_PIDS[@]}"; do
		stop_pid "$pid"
	done
	STARTED_PIDS=()
}

forget_pid() {
	local pid keep=()
	for pid in "${STARTED_PIDS[@]}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	STARTED_PIDS=("${keep[@]}")
}

port_listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

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

# median: numbers on stdin, one a line -> "median min max n".
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "NA NA NA 0"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		print m, v[1], v[NR], NR }'
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
IPERF_PID=

start_http_backend() {
	local i
	rm -f "$WORK/backend.ready"
	"${PIN_BACKEND[@]}" "$B/backend" --mode http --listen "127.0.0.1:$PORT_HTTP" \
		--threads "$BACKEND_THREADS" --ready "$WORK/backend.ready" \
		--summary "$WORK/backend-summary.json" >>"$WORK/logs/backend.log" 2>&1 &
	BACKEND_PID=$!
	STARTED_PIDS+=("$BACKEND_PID")
	for ((i = 0; i < 100; i++)); do
		[ -e "$WORK/backend.ready" ] && break
		kill -0 "$BACKEND_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -e "$WORK/backend.ready" ] || die "backend did not start: $(cat "$WORK/logs/backend.log")"
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
	start_iperf_server
}

# The backends live for the whole run; restart one that died, and say so.
ensure_backends() {
	if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
		log "warning: the HTTP backend died; restarting it"
		stop_pid "$BACKEND_PID"; forget_pid "$BACKEND_PID"
		start_http_backend
	fi
	if ! kill -0 "$IPERF_PID" 2>/dev/null; then
		stop_pid "$IPERF_PID"; forget_pid "$IPERF_PID"
		start_iperf_server
	fi
}

# ---- proxies ----------------------------------------------------------------
PROXY_PID=      # the process we started (nginx: the master)
PROXY_PORT=     # where clients connect
RSS_PIDS=       # comma-separated processes that hold the proxied connections

gen_sluiced() { # UPSTREAM_PORT CONF SYSTEM
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
listeners = ( { name = "bench"; address = "127.0.0.1:${PROXY_LISTEN[$3]}"; mode = "tcp"; pool = "p"; } );
pools = ( { name = "p"; servers = ( { address = "127.0.0.1:$1"; $limits } ); } );
EOF
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

# start_proxy SYSTEM UPSTREAM_PORT: sets PROXY_PID, PROXY_PORT, RSS_PIDS.
start_proxy() {
	local sys=$1 up=$2 conf log="$WORK/logs/$1.log" i
	PROXY_PID= RSS_PIDS= PROXY_PORT=${PROXY_LISTEN[$sys]:-$up}
	case $sys in
	direct)
		return 0 ;;
	sluiced|sluiced-nogate)
		[ -x build/sluiced ] || return 1
		conf=$WORK/$sys.conf; gen_sluiced "$up" "$conf" "$sys"
		"${PIN_PROXY[@]}" build/sluiced -c "$conf" >>"$log" 2>&1 & ;;
	haproxy)
		conf=$WORK/haproxy.cfg; gen_haproxy "$up" "$conf"
		"${PIN_PROXY[@]}" haproxy -db -f "$conf" >>"$log" 2>&1 & ;;
	nginx)
		conf=$WORK/nginx.conf; gen_nginx "$up" "$conf"
		"${PIN_PROXY[@]}" nginx -c "$ROOT/$conf" -p "$ROOT/$WORK/" -e "$ROOT/$WORK/logs/nginx-error.log" \
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
run_wrk_close() { run_wrk "$1" -H 'Connection: close'; }

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

# ---- measurement loop -----------------------------------------------------------
declare -A SYS_STATUS   # "ok" or why the system is n/a
SAMPLES=                # TSV: system scenario rep value

upstream_port() { [ "${SC_UPSTREAM[$1]}" = iperf ] && echo "$PORT_IPERF" || echo "$PORT_HTTP"; }

measure() { # SYSTEM SCENARIO REP
	local sys=$1 sc=$2 rep=$3 up value
	up=$(upstream_port "$sc")
	RUN_LOG=$WORK/logs/$sys-$sc-$rep.log
	ensure_backends
	if ! start_proxy "$sys" "$up"; then
		if [ "$rep" = 1 ] && [ "${SYS_STATUS[$sys]}" = untried ]; then
			SYS_STATUS[$sys]="failed to start"
			[[ $sys == sluiced* ]] && [ ! -x build/sluiced ] && SYS_STATUS[$sys]="build/sluiced missing"
			log "$sys: n/a (${SYS_STATUS[$sys]}); skipping it"
		fi
		printf '%s\t%s\t%s\tERR\n' "$sys" "$sc" "$rep" >>"$SAMPLES"
		return
	fi
	SYS_STATUS[$sys]=ok
	value=$(${SC_RUN[$sc]} "$PROXY_PORT" "$RSS_PIDS") || value=ERR
	[ -n "$value" ] || value=ERR
	if [ -n "$PROXY_PID" ] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
		log "warning: $sys died during $sc"
		value=ERR
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
write_results() { # STAMP SECONDS
	local stamp=$1 secs=$2 json=$RESULTS/quick-$1.json md=$RESULTS/quick-$1.md
	local sys sc meta=$WORK/scenarios.tsv status=$WORK/status.tsv stats=$WORK/stats.tsv
	: >"$meta"; : >"$status"; : >"$stats"
	for sc in $SCENARIOS; do
		printf '%s\t%s\t%s\t%s\n' "$sc" "${SC_UNIT[$sc]}" "${SC_DEC[$sc]}" "${SC_LABEL[$sc]}" >>"$meta"
		for sys in $SYSTEMS; do
			printf '%s\t%s\t%s\n' "$sys" "$sc" "$(awk -F'\t' -v s="$sys" -v c="$sc" \
				'$1 == s && $2 == c && $4 ~ /^[0-9.eE+-]+$/ { print $4 }' "$SAMPLES" |
				median)" >>"$stats"
		done
	done
	for sys in $SYSTEMS; do
		printf '%s\t%s\n' "$sys" "${SYS_STATUS[$sys]}" >>"$status"
	done

	jq -n --rawfile samples "$SAMPLES" --rawfile meta "$meta" --rawfile status "$status" \
		--rawfile stats "$stats" --arg date "$DATE" --arg commit "$COMMIT" \
		--arg kernel "$KERNEL" --arg cpu "$CPU" --argjson secs "$secs" \
		--argjson workers "$WORKERS" --argjson backend_threads "$BACKEND_THREADS" \
		--argjson repeats "$REPEATS" --argjson duration "$DURATION" \
		--argjson idle_conns "$IDLE_CONNS" --arg pin "$PIN_DESC" \
		--argjson busy "$BUSY_BEFORE" --arg load_end "$LOAD_END" '
		def rows($t): $t | split("\n") | map(select(length > 0) | split("\t"));
		def num: if test("^[0-9.eE+-]+$") then tonumber else null end;
		(rows($stats) | map({system: .[0], scenario: .[1]} +
			(.[2] | split(" ") | {median: (.[0] | num), min: (.[1] | num),
			 max: (.[2] | num), n: (.[3] | tonumber)}))) as $st
		| {date: $date, commit: $commit, kernel: $kernel, cpu: $cpu, runtime_s: $secs,
		   cpu_busy_before_pct: $busy, loadavg_end: $load_end,
		   config: {workers: $workers, backend_threads: $backend_threads,
			    repeats: $repeats, duration_s: $duration, idle_conns: $idle_conns,
			    pinning: $pin},
		   systems: (rows($status) | map({key: .[0], value: .[1]}) | from_entries),
		   scenarios: (rows($meta) | map({key: .[0], value: {unit: .[1], label: .[3]}})
			       | from_entries),
		   samples: (rows($samples) | map({system: .[0], scenario: .[1],
			     rep: (.[2] | tonumber), value: (.[3] | num)})),
		   medians: ($st | group_by(.scenario) | map({key: .[0].scenario,
			     value: (map({key: .system, value: del(.system, .scenario)})
				     | from_entries)}) | from_entries)}
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

	jq -r --arg systems "$SYSTEMS" --rawfile meta "$meta" '
		def fmt($d): if . == null then "n/a"
			elif $d == 0 then (. | round | tostring)
			else ((. * pow(10; $d) | round) / pow(10; $d) | tostring) end;
		($systems | split(" ") | map(select(length > 0))) as $sys
		| (($meta | split("\n") | map(select(length > 0) | split("\t")
			    | {key: .[0], value: {dec: (.[2] | tonumber), label: .[3]}}))) as $sc
		| . as $r
		| "# sluice quick benchmark — \($r.date)",
		  "",
		  "- commit: `\($r.commit)`; kernel \($r.kernel); CPU: \($r.cpu)",
		  "- workers per proxy: \($r.config.workers); backend threads: \($r.config.backend_threads); repeats: \($r.config.repeats) (interleaved); \($r.config.duration_s) s per run; pinning: \($r.config.pinning)",
		  "- machine: \($r.cpu_busy_before_pct)% CPU busy before the run; load average at the end \($r.loadavg_end) (other work on the machine makes every number noisy)",
		  "- runtime: \($r.runtime_s) s; cells: median [min–max] over repeats; n/a: \([$r.systems | to_entries[] | select(.value != "ok") | "\(.key) (\(.value))"] | if length == 0 then "none" else join(", ") end)",
		  "",
		  "| metric | \($sys | join(" | ")) | sluiced/haproxy | gate/no-gate |",
		  "|---|\($sys | map("---:") | join("|"))|---:|---:|",
		  ($sc[] | .key as $k | .value.dec as $d
		   | "| \(.value.label) | \($sys | map(. as $s | $r.medians[$k][$s]
			| if . == null or .median == null then "n/a"
			  else "\(.median | fmt($d)) [\(.min | fmt($d))–\(.max | fmt($d))]" end)
			| join(" | ")) | \($r.ratio_sluiced_haproxy[$k] | fmt(2)) | \($r.ratio_gate[$k] | fmt(3)) |")
		' "$json" >"$md" || die "writing $md failed"
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

quick() {
	local t0 stamp rep sc sys p
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
	for p in $PORT_HTTP $PORT_IPERF "${PROXY_LISTEN[@]}" $SLUICED_ADMIN; do
		port_listening "$p" && die "port $p is already in use"
	done

	DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	COMMIT=$(git describe --always --dirty 2>/dev/null || echo unknown)
	KERNEL=$(uname -r)
	CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
	setup_pinning
	BUSY_BEFORE=$(cpu_busy_pct)
	[ "$BUSY_BEFORE" -gt 20 ] &&
		log "warning: the machine is ${BUSY_BEFORE}% busy before the run: expect noise"
	for sys in $SYSTEMS; do SYS_STATUS[$sys]=untried; done
	log "quick: systems: $SYSTEMS; scenarios: $SCENARIOS; workers $WORKERS; repeats $REPEATS; pinning: $PIN_DESC"

	start_backend
	for ((rep = 1; rep <= REPEATS; rep++)); do
		for sc in $SCENARIOS; do
			for sys in $SYSTEMS; do
				case ${SYS_STATUS[$sys]} in
				untried|ok) measure "$sys" "$sc" "$rep" ;;
				*) printf '%s\t%s\t%s\tERR\n' "$sys" "$sc" "$rep" >>"$SAMPLES" ;;
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
	quick) quick ;;
	*) echo "usage: bench/run.sh quick" >&2; return 2 ;;
	esac
}

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# One line, so bash has read all of it before it runs: editing this file
# during a run cannot change what the running instance executes next.
main "$@"; exit $?
