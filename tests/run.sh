#!/usr/bin/env bash
# Run every test: unit programs (build/tests/*.t) and integration scenarios
# (tests/integration/NN-*.sh). One line per test; the last line is exactly
# "N passed, N failed, N skipped". Exit status 0 only if none failed.
# A test exits 0 (pass), 77 (skip; its last output line says why) or anything
# else (fail). A test that runs past its time limit is killed and fails.
#   tests/run.sh [PATTERN...]    only tests whose name contains a PATTERN
set -u
cd "$(dirname "$0")/.."
export SLUICE_SRC=$PWD
B=${B:-build}
logs=$B/tests/logs
mkdir -p "$logs"

tests=()
for t in "$B"/tests/*.t tests/integration/[0-9][0-9]-*.sh; do
	[ -e "$t" ] && tests+=("$t")
done

selected() {
	[ $# -le 1 ] && return 0
	local name=$1; shift
	for p in "$@"; do [[ $name == *"$p"* ]] && return 0; done
	return 1
}

passed=0 failed=0 skipped=0 failures=()
for t in "${tests[@]}"; do
	case $t in
	*.t) name=unit/$(basename "$t" .t); limit=120 ;;
	*) name=integration/$(basename "$t" .sh)
	   limit=$(sed -n 's/^# timeout: *\([0-9]*\).*/\1/p' "$t" | head -1); limit=${limit:-300} ;;
	esac
	selected "$name" "$@" || continue
	log=$logs/$(echo "$name" | tr / _).log
	start=$(date +%s%N)
	timeout -k 10 "$limit" "$t" >"$log" 2>&1 </dev/null
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	secs=$((ms / 1000)).$((ms % 1000 / 100))
	case $rc in
	0) passed=$((passed + 1)); printf 'PASS  %-44s %6ss\n' "$name" "$secs" ;;
	77) skipped=$((skipped + 1))
	    printf 'SKIP  %-44s %6ss  %s\n' "$name" "$secs" "$(tail -n 1 "$log")" ;;
	*) failed=$((failed + 1)); failures+=("$name")
	   why=""; [ $rc -eq 124 ] || [ $rc -eq 137 ] && why=" (timed out after ${limit}s)"
	   printf 'FAIL  %-44s %6ss  exit %d%s\n' "$name" "$secs" "$rc" "$why"
	   sed 's/^/      | /' "$log" | tail -n 25 ;;
	esac
done
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]} (logs in $logs/)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
