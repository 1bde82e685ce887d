# shellcheck shell=bash
# bench/lib.sh — what the benchmark scripts share: logging, the processes a
# script started (every one is stopped by its PID, never by name), and the
# CPU-burning echo backend the storm and the tuning sweep run against.
# Sourced after the script has cd'ed to the repository root and set B.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

forget_pid() {
	local pid keep=()
	for pid in "${STARTED_PIDS[@]}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	STARTED_PIDS=("${keep[@]}")
}

# stop_started PID...: stop each and forget it.
stop_started() {
	local pid
	for pid in "$@"; do
		[ -n "$pid" ] || continue
		stop_pid "$pid"
		forget_pid "$pid"
	done
}

# stop_all: every process still on the list.
stop_all() {
	local pid
	for pid in "${STARTED_PIDS[@]}"; do
		stop_pid "$pid"
	done
	STARTED_PIDS=()
}

port_listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# cost_backend PORT COST_US NICE MAX_SECONDS PREFIX: an echo backend (one
# thread) that burns COST_US of CPU per new connection, started in the
# background as COST_BE_PID. PREFIX.ready appears once it listens,
# PREFIX.json (its summary) when it exits; its output goes to PREFIX.log.
COST_BE_PID=
cost_backend() {
	rm -f "$5.ready"
	nice -n "$3" "$B/backend" --mode echo --listen "127.0.0.1:$1" --threads 1 \
		--conn-cost-us "$2" --backlog 4096 --max-seconds "$4" \
		--ready "$5.ready" --summary "$5.json" >>"$5.log" 2>&1 &
	COST_BE_PID=$!
	STARTED_PIDS+=("$COST_BE_PID")
}

# wait_ready PREFIX PID: up to 5 s for PREFIX.ready while PID is alive.
wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$1.ready" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
