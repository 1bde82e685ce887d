#!/usr/bin/env bash
# Descriptor exhaustion: sluiced runs with RLIMIT_NOFILE room for exactly 40
# proxied connections and one descriptor more. With those 40 open, 20 more
# clients arrive: the first one accepted gets no backend socket (EMFILE), the
# next accepts fail (EMFILE). sluiced must back off — no busy loop (CPU time
# over 3 s stays low, also with an admin request waiting in the admin
# endpoint's backlog), the shortage logged at most once per 5 s per worker —
# and must not turn the waiting clients away: once the 40 close, all 20 are
# served, and new clients too. The BPF safeguard, which also needs
# descriptors to look, must not mistake "cannot tell" for "detached" (it used
# to log an error every second and unlink the pinned links).
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
command -v prlimit >/dev/null || fail "prlimit missing (util-linux): make deps installs it"
backend e1 1 echo
write_conf "$T/s.conf" 2 least_conn 1
# how many descriptors sluiced holds with this config and no client (low
# numbers only: a descriptor inherited above the limit takes no slot under it)
sluiced_start "$T/s.conf"
base=$(ls "/proc/$SLUICED_PID/fd" | awk '$1 < 1000' | wc -l)
pins=$(ls "$PIN" | sort | tr '\n' ' ')
kill "$SLUICED_PID"
wait_exit "$SLUICED_PID" 5 || fail "idle sluiced did not stop"
# room for 40 connections (2 descriptors each) + 1: odd on purpose, so that
# the last descriptor goes to a client whose backend socket then fails
limit=$((base + 2 * 40 + 1))
bg sluiced "$LB" prlimit --nofile=$limit:$limit "$SLUICED" -c "$T/s.conf"
SLUICED_PID=$LAST_PID
wait_for 5 in_lb "$SLUICECTL" -a "$ADMIN" metrics || fail "sluiced did not start"
say "sluiced: $base descriptors at rest, RLIMIT_NOFILE $limit"

bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 40 --timeout-ms 50000
HOLD=$LAST_PID
wait_for 10 grep -q ready "$T/hold.log" || fail "40 connections not served: $(cat "$T/hold.log")"
# 20 more: they wait (io timeout 20 s) — in the accept queue or, one, in sluiced
bg waiters "$LB" "$TPEER" echo-clients -c 10.77.0.1:8080 -n 20 --io-timeout-ms 20000 \
	--timeout-ms 30000
WAITERS=$LAST_PID
sleep 1
t_short=$(date +%s)
# an admin request waits in the admin endpoint's backlog: it cannot be accepted
in_lb timeout 2 "$SLUICECTL" -a "$ADMIN" metrics >/dev/null 2>&1 && fail "admin answered with no descriptor free?"
kill -0 "$WAITERS" 2>/dev/null || { cat "$T/waiters.log"; fail "the waiting clients were turned away"; }
cpu=$(cpu_over "$SLUICED_PID" 3)
say "out of descriptors: sluiced used $cpu ms of CPU in 3 s"
[ "$cpu" -le 150 ] || fail "busy loop while out of descriptors: $cpu ms of CPU in 3 s"
kill -0 "$WAITERS" 2>/dev/null || { cat "$T/waiters.log"; fail "the waiting clients were turned away"; }

# descriptors free up: the waiting clients are served, then new ones
kill "$HOLD"
wait_exit "$HOLD" 5 || fail "hold did not stop"
t_free=$(date +%s)
wait_exit "$WAITERS" 10 || fail "waiting clients not served within 10 s of descriptors freeing"
cat "$T/waiters.log"
[ "$EXIT_STATUS" = 0 ] && [ "$(kv ok "$T/waiters.log")" = 20 ] ||
	fail "clients that waited while descriptors were short were not all served"
client after echo-clients -c 10.77.0.1:8080 -n 30 || fail "new clients after recovery"

grep 'Too many open files\|suppressed' "$T/sluiced.log" | sed 's/^/    /'
# one rate limit per worker covers both causes, so the first line of a worker
# names whichever came first; failed accepts are checked by their counter below
grep -q 'Too many open files; accepting paused' "$T/sluiced.log" || fail "descriptor shortage not logged"
grep -q 'backend socket: Too many open files' "$T/sluiced.log" ||
	fail "a backend socket should have failed with EMFILE (odd descriptor count)"
n=$(grep -c 'Too many open files; accepting paused' "$T/sluiced.log")
max=$((2 * ((t_free - t_short) / 5 + 2)))
say "shortage logged $n times over $((t_free - t_short)) s (at most $max: once per 5 s per worker)"
[ "$n" -le "$max" ] || fail "EMFILE logged $n times: not rate-limited to one line per interval"
grep -q 'safeguard' "$T/sluiced.log" && fail "safeguard acted while it could not look: $(grep -m1 safeguard "$T/sluiced.log")"
[ "$(ls "$PIN" | sort | tr '\n' ' ')" = "$pins" ] || fail "pinned maps/links changed: $(ls "$PIN")"
[ "$(metric sluice_bpf_programs_attached)" = "$(metric sluice_bpf_programs_expected)" ] ||
	fail "programs attached $(metric sluice_bpf_programs_attached)"
e=$(metric sluice_accept_errors_total)
say "accept errors counted: $e"
[ "${e:-0}" -ge 1 ] || fail "accept errors not counted"
for r in down queue_full queue_timeout rate full; do
	[ "$(metric "sluice_refused_total{pool=\"app\",reason=\"$r\"}")" = 0 ] || fail "clients refused ($r)"
done
say "ok"
