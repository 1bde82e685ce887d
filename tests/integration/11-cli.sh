#!/usr/bin/env bash
# The command lines: `sluiced -t -c FILE` validates (0 good, 1 bad, errors
# naming file:line:setting), bad arguments are refused with a usage message,
# `sluicectl check` agrees with `sluiced -t`, sluicectl reports an unreachable
# daemon clearly.
# timeout: 30
. "$(dirname "$0")/lib.sh"
cd "$SRC"
n=0
for f in tests/config/good/*.conf; do
	"$SLUICED" -t -c "$f" >"$T/out" 2>&1 || { cat "$T/out"; fail "sluiced -t rejects good $f"; }
	grep -q "configuration is valid" "$T/out" || fail "no confirmation for $f"
	"$SLUICECTL" check "$f" >/dev/null 2>&1 || fail "sluicectl check rejects good $f"
	n=$((n + 1))
done
for f in tests/config/bad/*.conf; do
	"$SLUICED" -t -c "$f" >"$T/out" 2>&1 && fail "sluiced -t accepts bad $f"
	[ $? -eq 1 ] || fail "exit status for bad $f is not 1"
	grep -q "^$f:[0-9][0-9]*: " "$T/out" || { cat "$T/out"; fail "error for $f lacks FILE:LINE:"; }
	"$SLUICECTL" check "$f" >/dev/null 2>&1 && fail "sluicectl check accepts bad $f"
	n=$((n + 1))
done
say "$n config files judged alike by sluiced -t and sluicectl check"

"$SLUICED" -t -c /nonexistent.conf >"$T/out" 2>&1 && fail "missing file accepted"
grep -qi "nonexistent.conf" "$T/out" || fail "missing file not named: $(cat "$T/out")"
for args in "" "-c" "-x" "-c a b" "-l loud -c tests/config/good/minimal.conf"; do
	# shellcheck disable=SC2086
	"$SLUICED" $args >"$T/out" 2>&1 && fail "sluiced accepted: '$args'"
	grep -qi "usage\|unknown\|option" "$T/out" || fail "no explanation for '$args': $(cat "$T/out")"
done
"$SLUICECTL" frobnicate >"$T/out" 2>&1; [ $? -eq 2 ] || fail "sluicectl unknown command status"
"$SLUICECTL" -a 127.0.0.1:1 status >"$T/out" 2>&1 && fail "status with no daemon succeeded"
grep -q "127.0.0.1:1" "$T/out" || fail "unreachable daemon not named: $(cat "$T/out")"
"$SLUICECTL" -a nonsense status >"$T/out" 2>&1; [ $? -eq 2 ] || fail "bad admin address status"
"$SLUICED" -V | grep -q '^sluiced ' || fail "-V"
say "ok"
