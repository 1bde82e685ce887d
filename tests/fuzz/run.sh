#!/usr/bin/env bash
# Run libFuzzer targets built by `make fuzz-build`, FUZZ_JOBS at a time
# (default 2: the machine has two cores, and a target uses one), each for
# FUZZ_SECONDS on a working copy of its seed corpus: tests/fuzz/corpus/NAME is
# copied into $B/fuzz/corpus/NAME, which keeps what the fuzzer adds, so the
# repository is never written to. One line per target as it ends, then
# "fuzz: N passed, N failed"; exit non-zero if any target crashed, leaked,
# timed out, ran out of memory, broke an invariant or ran less than
# FUZZ_SECONDS. Reproducers are left in $B/fuzz/artifacts/NAME/, logs in
# $B/fuzz/logs/NAME.log.
#   tests/fuzz/run.sh NAME...      e.g. tests/fuzz/run.sh config httphead
# Reproduce one crash: $B/fuzz/fuzz_NAME $B/fuzz/artifacts/NAME/crash-...
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-2}
[ $# -gt 0 ] || { echo "usage: $0 NAME..." >&2; exit 2; }

# Run one target; print its line (all at once, so parallel jobs do not
# interleave) and leave PASS or FAIL in $B/fuzz/logs/NAME.status.
run_one() {
	local name=$1 bin=$B/fuzz/fuzz_$1 corpus=$B/fuzz/corpus/$1 art=$B/fuzz/artifacts/$1
	local log=$B/fuzz/logs/$1.log status=$B/fuzz/logs/$1.status
	local args rc start secs runs eps last cov ft corp stats out

	echo FAIL >"$status"
	if [ ! -x "$bin" ]; then
		printf 'FAIL  fuzz_%-12s not built (%s)\n' "$name" "$bin"
		return
	fi
	rm -rf "$art"
	mkdir -p "$corpus" "$art"
	if [ -d "tests/fuzz/corpus/$name" ]; then
		cp -n "tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	args=(-max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048
	      -max_len=16384 -print_final_stats=1 -artifact_prefix="$art/")
	[ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
	start=$(date +%s)
	# a whole minute of silence is fine; a hang shows up as -timeout
	UBSAN_OPTIONS=print_stacktrace=1 "$bin" "${args[@]}" "$corpus" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$(($(date +%s) - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
	stats=$(printf '%3ss  runs %-9s exec/s %-7s cov %-5s ft %-6s corpus %s' "$secs" \
		"${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
	# libFuzzer also exits 0 when it stops early (e.g. -runs): count that as a failure
	if [ $rc -eq 0 ] && [ "$secs" -lt "$FUZZ_SECONDS" ]; then
		out=$(printf 'FAIL  fuzz_%-12s stopped after %ss of %ss  %s' "$name" "$secs" \
			"$FUZZ_SECONDS" "$stats")
	elif [ $rc -eq 0 ]; then
		out=$(printf 'PASS  fuzz_%-12s %s' "$name" "$stats")
		echo PASS >"$status"
	else
		out=$(printf 'FAIL  fuzz_%-12s exit %d  %s\n' "$name" "$rc" "$stats"
		      grep -E 'ERROR: |invariant broken|runtime error|SUMMARY' "$log" | head -5 |
			sed 's/^/      | /'
		      ls "$art" | sed "s|^|      reproducer: $art/|")
	fi
	printf '%s\n' "$out"
}

mkdir -p "$B/fuzz/logs"
running=0
for name in "$@"; do
	if [ "$running" -ge "$FUZZ_JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
	run_one "$name" &
	running=$((running + 1))
done
wait

passed=0 failed=()
for name in "$@"; do
	if [ "$(cat "$B/fuzz/logs/$name.status" 2>/dev/null)" = PASS ]; then
		passed=$((passed + 1))
	else
		failed+=("$name")
	fi
done
[ ${#failed[@]} -eq 0 ] || echo "fuzz: failed: ${failed[*]} (logs in $B/fuzz/logs/)"
echo "fuzz: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
