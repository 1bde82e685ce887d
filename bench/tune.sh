#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/tune.sh — find sluiced's per-backend rate, burst and queue timeout
# for a backend of a given capacity, by sweeping them against a reconnect
# storm of naive clients on loopback.
#
#   bench/tune.sh CAPACITY_PER_S [COST_US]
#        the backend takes CAPACITY_PER_S new connections per second; it is
#        simulated by build/bench/backend --conn-cost-us COST_US (default
#        1e6 / CAPACITY_PER_S: exactly that capacity, given a whole CPU)
#   bench/tune.sh --measure [COST_US]
#        measure the capacity of build/bench/backend --conn-cost-us COST_US
#        (default 2000) first: patient clients all connect at once and the
#        backend's accepts per 10 ms give its sustained rate
#
# The sweep: rate = RATES_PCT of the capacity, burst = BURSTS_PCT of the
# rate (at least 1), queue timeout_ms = TIMEOUTS_MS (around the clients'
# patience: a timeout shorter than GIVE_UP_MS turns away clients that would
# have waited; longer ones only matter to clients more patient than these);
# every combination is
# run once, each with a fresh backend and a fresh sluiced (one pool, one
# server with that rate and burst, queue max 10000, backend_wait_ms equal
# to the queue timeout so that the timeout is what is swept), against
# CLIENTS naive clients that all reconnect at once, give up an attempt after
# GIVE_UP_MS and retry at once — the client behaviour that turns a storm into
# a collapse.
#
# What counts, per run: time until every client is back (t100), clients
# never back by the run's deadline, attempts per client, backend accepts
# per client (1.00: the backend did no work for a client that had already
# left) and the peak of backend accepts per 100 ms.
#
# The recommendation is the fastest run (lowest t100) among those that kept
# the backend under its capacity — and of the runs within 3 % of the fastest
# (a tie, one run each on shared CPUs) the one with the lowest rate, for
# headroom, then the least backend work per client, then the lowest peak,
# then the longest queue timeout:
#   - peak accepts per 100 ms <= capacity / 10 x 1.1, and
#   - backend accepts per client <= MAX_WASTE (default 1.10), and
#   - every client back by the deadline.
# The second test is there because a backend whose accept loop burns CPU per
# connection (as this one does, and as real ones do) cannot accept faster
# than its capacity however hard it is pushed: an overloaded backend shows
# up as a growing accept queue, clients that give up inside it, and backend
# work for clients that left — as waste, not as a higher peak.
#
# Bounded: every run has a deadline (twice the time the rate needs for the
# herd, plus GIVE_UP_MS), and the sweep stops starting runs once BUDGET_S
# (default 300) is spent, saying so. On 2 cores the client, sluiced and
# the backend share the CPUs: one run per setting, so neighbouring settings
# within a few percent of each other are a tie — the table shows them all.
#
# The backend runs at BACKEND_NICE (-10): on a shared machine the load
# generator and sluiced compete with it for CPU, and its capacity is CPU
# time (see bench/run.sh, the storm).
#
# Knobs (environment): CLIENTS (default 3 s of capacity, 200..3000: more than
# one give-up at every rate swept, so clients do give up and retry),
# GIVE_UP_MS=2000, RATES_PCT="60 75 90 100", BURSTS_PCT="2 10",
# TIMEOUTS_MS="1000 2000 5000", MAX_WASTE=1.10, BUDGET_S=300, WORKERS=1,
# BACKEND_NICE=-10. 24 settings by default: 111 s for a capacity of 400/s here.
#
# Output: a table and a ready-to-paste config snippet on stdout; JSON and
# Markdown in build/bench/results/tune-<timestamp>.{json,md}; raw files in
# build/bench/work/tune/.

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

B=build/bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
WORK=$B/work/tune
RESULTS=$B/results
PORT_BACKEND=18040
PORT_LISTEN=18041
ADMIN=127.0.0.1:19941
BPF_PIN=/sys/fs/bpf/sluice-tune-$$
BPF_CGROUP=sluice-tune-$$

GIVE_UP_MS=${GIVE_UP_MS:-2000}
RATES_PCT=${RATES_PCT:-"60 75 90 100"}
BURSTS_PCT=${BURSTS_PCT:-"2 10"}
TIMEOUTS_MS=${TIMEOUTS_MS:-"1000 2000 5000"}
MAX_WASTE=${MAX_WASTE:-1.10}
BUDGET_S=${BUDGET_S:-300}
WORKERS=${WORKERS:-1}
BACKEND_NICE=${BACKEND_NICE:--10}

usage() {
	echo "usage: bench/tune.sh CAPACITY_PER_S [COST_US] | bench/tune.sh --measure [COST_US]" >&2
	exit 2
}

cleanup() {
	local cg
	trap - EXIT INT TERM
	stop_all
	rm -rf "$BPF_PIN"
	cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$cg" ] && [ -d "$cg/$BPF_CGROUP" ] && rmdir "$cg/$BPF_CGROUP" 2>/dev/null
	return 0
}

# ---- one backend, one storm ----------------------------------------------------
BACKEND_PID=

start_backend() { # DIR COST_US
	cost_backend "$PORT_BACKEND" "$2" "$BACKEND_NICE" 600 "$1/b"
	BACKEND_PID=$COST_BE_PID
	wait_ready "$1/b" "$BACKEND_PID"
}

# storm DIR PORT N GIVE_UP_MS MAX_MS: one loadgen process; writes lg.json
# and t0 (unix ms just before the clients start).
storm() {
	local d=$1 pid rc
	date +%s%3N >"$d/t0"
	timeout -k 5 $(($5 / 1000 + 30)) "$B/loadgen" storm -c "127.0.0.1:$2" -n "$3" \
		--policy naive --proto tcp --give-up-ms "$4" --connect-timeout-ms "$4" \
		--max-ms "$5" --seed 1 --series "$d/lg.csv" --json >"$d/lg.json" 2>"$d/lg.err" &
	pid=$!
	STARTED_PIDS+=("$pid")
	wait "$pid"
	rc=$?
	forget_pid "$pid"
	return $rc
}

# summary DIR N: one run as JSON — the loadgen report plus the backend's
# accepts per 100 ms, aligned on t0 (see bench/run.sh storm_summary).
summary() {
	jq -n --slurpfile l "$1/lg.json" --slurpfile b "$1/b.json" \
		--argjson t0 "$(cat "$1/t0")" --argjson n "$2" '
		def at($a; $i): if $i >= 0 and $i < ($a | length) then $a[$i] else 0 end;
		$l[0] as $g | $b[0] as $be
		| (($t0 - $be.start_unix_ms) / $be.bucket_ms | round) as $sh
		| (100 / $be.bucket_ms | round) as $k | $be.accepts_per_10ms as $a
		| [range(0; ((($a | length) - $sh) / $k | ceil)) as $i
		   | [range($sh + $i * $k; $sh + ($i + 1) * $k) | at($a; .)] | add] as $acc
		| {reconnected: $g.reconnected, never: $g.never_reconnected,
		   t50_ms: $g.t50_ms, t90_ms: $g.t90_ms, t99_ms: $g.t99_ms, t100_ms: $g.t100_ms,
		   attempts_per_client: $g.attempts_per_client, gave_up: $g.gave_up,
		   refused: $g.refused, errors: $g.errors,
		   accepted: $be.accepted, accepts_per_client: ($be.accepted / $n),
		   peak_per_100ms: ($acc | max // 0), loop_lag_max_ms: $be.loop_lag_max_ms}'
}

# ---- capacity ----------------------------------------------------------------------
# measure_capacity COST_US: new connections per second the backend sustains,
# median of 3 runs. Patient clients (they never give up) all connect at once;
# the backend drains its accept queue as fast as its CPU allows; the rate is
# taken between 10 % and 90 % of the accepts, away from the ramps.
measure_capacity() {
	local cost=$1 n r d caps=() max_ms
	n=$((3000000 / cost))
	((n < 300)) && n=300
	((n > 3000)) && n=3000
	max_ms=$((n * cost / 1000 * 3 + 5000))
	for r in 1 2 3; do
		d=$WORK/measure-$r
		rm -rf "$d"; mkdir -p "$d"
		start_backend "$d" "$cost" || die "backend did not start: $(cat "$d/b.log")"
		storm "$d" "$PORT_BACKEND" "$n" "$max_ms" "$max_ms" ||
			die "loadgen failed: $(cat "$d/lg.err")"
		stop_started "$BACKEND_PID"
		caps+=("$(jq -r '.accepts_per_10ms as $a | .bucket_ms as $ms | ($a | add) as $tot
			| [foreach $a[] as $x (0; . + $x)] as $cum
			| (first(range(0; $a | length) | select($cum[.] >= 0.1 * $tot))) as $i10
			| (first(range(0; $a | length) | select($cum[.] >= 0.9 * $tot))) as $i90
			| if $i90 > $i10 then ($cum[$i90] - $cum[$i10]) * 1000 / (($i90 - $i10) * $ms)
			  else $tot * 1000 / ($ms * (($a | length) + 1)) end | round' "$d/b.json")")
		log "measure #$r: $n patient clients, backend at ${cost} us/connection: ${caps[-1]} accepts/s"
	done
	printf '%s\n' "${caps[@]}" | sort -n | sed -n 2p
}

# ---- main ----------------------------------------------------------------------------
main() {
	local cap cost mode t0 stamp n rp bp to rate burst max_ms d i runs=0 skipped=0 row
	local rows=$WORK/rows.jsonl json md limit
	case ${1:-} in
	--measure) mode=measured cost=${2:-2000} ;;
	''|-h|--help) usage ;;
	*) mode=given cap=$1 cost=${2:-} ;;
	esac
	if [ "$mode" = given ]; then
		[[ $cap =~ ^[0-9]+$ ]] && [ "$cap" -ge 10 ] || die "CAPACITY_PER_S: a whole number >= 10"
		[ -n "$cost" ] || cost=$((1000000 / cap))
	fi
	[[ $cost =~ ^[0-9]+$ ]] && [ "$cost" -ge 1 ] || die "COST_US: a whole number >= 1"
	[ "$(id -u)" = 0 ] || die "sluiced needs root for its BPF limits"
	command -v jq >/dev/null || make --no-print-directory deps >/dev/null || die "needs jq"
	[ -x build/sluiced ] || die "build/sluiced missing: run make first"
	mkdir -p "$WORK" "$RESULTS" || exit 1
	make --no-print-directory "$B/backend" "$B/loadgen" >"$WORK/make.log" 2>&1 ||
		{ cat "$WORK/make.log" >&2; die "building bench tools failed"; }
	for i in $PORT_BACKEND $PORT_LISTEN "${ADMIN##*:}"; do
		port_listening "$i" && die "port $i is already in use"
	done
	t0=$(date +%s)
	stamp=$(date +%Y%m%d-%H%M%S)

	if [ "$mode" = measured ]; then
		log "measuring the capacity of backend --conn-cost-us $cost"
		cap=$(measure_capacity "$cost")
		[[ $cap =~ ^[0-9]+$ ]] && [ "$cap" -ge 10 ] || die "capacity measurement failed"
	fi
	n=${CLIENTS:-$((3 * cap))}
	((n < 200)) && n=200
	((n > 3000)) && n=3000
	limit=$(awk -v c="$cap" 'BEGIN { printf "%.1f", c / 10 * 1.1 }')
	log "capacity $cap/s ($mode), backend at $cost us CPU per connection; storm of $n naive clients" \
		"(give up after $GIVE_UP_MS ms); peak limit $limit accepts per 100 ms; budget ${BUDGET_S} s"

	: >"$rows"
	# Highest rate first: if the budget runs out, what is left unmeasured is
	# the slow end of the sweep.
	for rp in $(tr ' ' '\n' <<<"$RATES_PCT" | sort -rn); do
		rate=$(((cap * rp + 50) / 100))
		((rate < 1)) && rate=1
		# twice what the rate needs for the herd, plus one give-up
		max_ms=$((2 * n * 1000 / rate + GIVE_UP_MS))
		for bp in $BURSTS_PCT; do
			burst=$(((rate * bp + 50) / 100))
			((burst < 1)) && burst=1
			for to in $TIMEOUTS_MS; do
				if (($(date +%s) - t0 + max_ms / 1000 + 2 > BUDGET_S)); then
					skipped=$((skipped + 1))
					continue
				fi
				d=$WORK/r$rate-b$burst-t$to
				rm -rf "$d"; mkdir -p "$d"
				if ! run_one "$d" "$rate" "$burst" "$to" "$n" "$max_ms" "$cost"; then
					log "rate $rate burst $burst timeout $to: failed (see $d)"
					continue
				fi
				runs=$((runs + 1))
				row=$(summary "$d" "$n" | jq -c --argjson rate "$rate" --argjson rp "$rp" \
					--argjson burst "$burst" --argjson bp "$bp" --argjson to "$to" \
					--argjson limit "$limit" --argjson waste "$MAX_WASTE" \
					'{rate: $rate, rate_pct: $rp, burst: $burst, burst_pct: $bp,
					  timeout_ms: $to} + .
					 | .ok = (.never == 0 and .t100_ms != null and
						  .peak_per_100ms <= $limit and .accepts_per_client <= $waste)')
				echo "$row" >>"$rows"
				log "$(jq -r '"rate \(.rate) burst \(.burst) timeout \(.timeout_ms): back \(.reconnected), t100 \(.t100_ms // "-") ms, accepts/client \(.accepts_per_client), peak \(.peak_per_100ms)/100 ms\(if .ok then "" else " (out)" end)"' <<<"$row")"
			done
		done
	done
	[ "$skipped" -gt 0 ] && log "budget of ${BUDGET_S} s spent: $skipped settings not run"
	[ "$runs" -gt 0 ] || die "no run succeeded"
	json=$RESULTS/tune-$stamp.json md=$RESULTS/tune-$stamp.md
	report "$rows" "$json" "$cap" "$mode" "$cost" "$n" "$limit" "$skipped" \
		$(($(date +%s) - t0)) >"$json" || die "report failed"
	render "$json" | tee "$md"
	log "results: $json $md"
}

# run_one DIR RATE BURST TIMEOUT_MS N MAX_MS COST_US: fresh backend, fresh
# sluiced, one storm.
run_one() {
	local d=$1 rate=$2 burst=$3 to=$4 n=$5 max_ms=$6 cost=$7 pid i rc=0
	cat >"$d/sluiced.conf" <<EOF
workers = $WORKERS;
admin = { address = "$ADMIN"; };
bpf = { pin_path = "$BPF_PIN"; cgroup = "$BPF_CGROUP"; };
timeouts = { backend_wait_ms = $to; };
drain = { period_s = 0; grace_s = 1; };
listeners = ( { name = "tune"; address = "127.0.0.1:$PORT_LISTEN"; mode = "tcp"; pool = "app"; backlog = 4096; } );
pools = ( { name = "app"; queue = { max = 10000; timeout_ms = $to; };
    servers = ( { name = "b1"; address = "127.0.0.1:$PORT_BACKEND"; rate = $rate; burst = $burst; } ); } );
EOF
	start_backend "$d" "$cost" || { stop_started "$BACKEND_PID"; return 1; }
	rm -rf "$BPF_PIN"   # no tokens or ledger left by the previous run
	build/sluiced -c "$d/sluiced.conf" >"$d/sluiced.log" 2>&1 &
	pid=$!
	STARTED_PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do
		port_listening "$PORT_LISTEN" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if port_listening "$PORT_LISTEN"; then
		storm "$d" "$PORT_LISTEN" "$n" "$GIVE_UP_MS" "$max_ms" || rc=1
		kill -0 "$pid" 2>/dev/null || rc=1
	else
		rc=1
	fi
	stop_started "$pid" "$BACKEND_PID"
	sleep 0.3   # TIME_WAIT churn and CPU settle
	return $rc
}

# report ROWS ...: the sweep and the recommendation as JSON.
report() {
	jq -s --argjson cap "$3" --arg mode "$4" --argjson cost "$5" --argjson n "$6" \
		--argjson limit "$7" --argjson skipped "$8" --argjson secs "$9" \
		--argjson give "$GIVE_UP_MS" --argjson waste "$MAX_WASTE" \
		--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg commit "$(git describe --always --dirty 2>/dev/null || echo unknown)" '
		# within 3 % of the fastest is a tie (one run each, shared CPUs):
		# of those, the lowest rate (most headroom), then the least waste,
		# then the lowest peak, then the longest queue timeout
		(map(select(.ok)) | sort_by(.t100_ms, .t99_ms)) as $fast
		| ($fast[0].t100_ms // 0) as $best
		| ($fast | map(select(.t100_ms <= $best * 1.03))
		   | sort_by(.rate, .accepts_per_client, .peak_per_100ms, -.timeout_ms, .t100_ms))
		  as $tie
		| ($tie + ($fast - $tie)) as $pass
		| {date: $date, commit: $commit, runtime_s: $secs,
		   capacity_per_s: $cap, capacity: $mode, conn_cost_us: $cost,
		   storm: {clients: $n, policy: "naive", proto: "tcp", give_up_ms: $give},
		   criteria: {peak_per_100ms_max: $limit, accepts_per_client_max: $waste,
			      never_reconnected: 0},
		   settings_not_run: $skipped,
		   fastest_t100_ms: (if $fast == [] then null else $best end),
		   recommended: ($pass[0] // null),
		   runner_up: ($pass[1:4]),
		   # the fastest with 15 % or more headroom, to show what the margin costs
		   with_headroom: ($fast | map(select(.rate_pct <= 85)) | .[0] // null),
		   runs: .}' "$1"
}

# render JSON: the table and the snippet.
render() {
	jq -r '
		def ms: if . == null then "-" else (. | round | tostring) end;
		def f2: (. * 100 | round) as $x
			| "\($x / 100 | floor).\($x % 100 | tostring | if length < 2 then "0" + . else . end)";
		. as $r
		| "# sluice tuning — \($r.date)",
		  "",
		  "- backend capacity: \($r.capacity_per_s) new connections/s (\($r.capacity); simulated by backend --conn-cost-us \($r.conn_cost_us))",
		  "- storm: \($r.storm.clients) naive tcp clients reconnect at once, give up an attempt after \($r.storm.give_up_ms) ms and retry at once; one run per setting; \($r.runs | length) runs in \($r.runtime_s) s\(if $r.settings_not_run > 0 then " (\($r.settings_not_run) settings not run: time budget)" else "" end)",
		  "- kept under capacity: peak backend accepts per 100 ms ≤ \($r.criteria.peak_per_100ms_max), backend accepts per client ≤ \($r.criteria.accepts_per_client_max), every client back",
		  "",
		  "| rate/s (% of capacity) | burst (% of rate) | queue timeout_ms | back | t50 ms | t99 ms | t100 ms | attempts/client | backend accepts/client | peak accepts/100 ms | under capacity |",
		  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
		  ($r.runs | sort_by(-.rate, .burst, .timeout_ms)[]
		   | "| \(.rate) (\(.rate_pct)%) | \(.burst) (\(.burst_pct)%) | \(.timeout_ms) | \(.reconnected)/\($r.storm.clients) | \(.t50_ms | ms) | \(.t99_ms | ms) | \(.t100_ms | ms) | \(.attempts_per_client | f2) | \(.accepts_per_client | f2) | \(.peak_per_100ms) | \(if .ok then "yes" else "no" end) |"),
		  "",
		  (if $r.recommended == null then
		     "No setting kept the backend under capacity and got everyone back: the capacity is probably lower than \($r.capacity_per_s)/s here (the machine is shared), or the storm needs a longer deadline. Try a lower capacity."
		   else ($r.recommended as $w |
		     "Recommended: rate \($w.rate) (\($w.rate_pct)% of capacity), burst \($w.burst), queue timeout \($w.timeout_ms) ms — all \($w.reconnected) clients back in \($w.t100_ms | ms) ms (t50 \($w.t50_ms | ms) ms, t99 \($w.t99_ms | ms) ms), \($w.attempts_per_client | f2) attempts per client, \($w.accepts_per_client | f2) backend accepts per client, peak \($w.peak_per_100ms) accepts per 100 ms (limit \($r.criteria.peak_per_100ms_max)).",
		     (if ($r.runner_up | length) > 0 then
		       "Fastest run: \($r.fastest_t100_ms | ms) ms; within 3 % is a tie, and of a tie the lowest rate is recommended. Next: " + ($r.runner_up | map("rate \(.rate) burst \(.burst) timeout \(.timeout_ms): t100 \(.t100_ms | ms) ms, \(.accepts_per_client | f2) accepts/client, peak \(.peak_per_100ms)") | join("; ")) + ". One run each on a shared machine: a few percent apart is a tie."
		      else empty end),
		     (if $w.rate_pct > 85 and $r.with_headroom != null then ($r.with_headroom as $h |
		       "This rate is \($w.rate_pct)% of the capacity: a backend that gets slower (a busier host, GC, a deploy) falls behind it, and clients then give up inside its accept queue. With headroom, rate \($h.rate) (\($h.rate_pct)%) burst \($h.burst) timeout \($h.timeout_ms) got everyone back in \($h.t100_ms | ms) ms (\((($h.t100_ms / $w.t100_ms - 1) * 100) | round)% slower).")
		      else empty end),
		     "",
		     "```",
		     "# per backend of this capacity (\($r.capacity_per_s) new connections/s): one servers entry each",
		     "servers = (",
		     "  { name = \"app1\"; address = \"HOST:PORT\"; rate = \($w.rate); burst = \($w.burst); }",
		     ");",
		     "# in the pool: max = at least as many clients as may reconnect at once",
		     "queue = { max = 10000; timeout_ms = \($w.timeout_ms); };",
		     "# top level, as in the sweep: a client waits at most min(timeout_ms, backend_wait_ms)",
		     "timeouts = { backend_wait_ms = \($w.timeout_ms); };",
		     "```")
		   end)' "$1"
}

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
main "$@"; exit $?
