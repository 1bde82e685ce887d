#!/usr/bin/env bash
# Clients parked in the wait queue of a full backend, then gone: half of them
# are turned away by queue.timeout_ms while all are still waiting, then the
# other half (a more patient pool on the same backend) close on their own,
# 5000 a second. First with 2000 clients, then with 15000. Each time every
# client is released (client_gone and queue_timeout add up), none reaches the
# backend (it accepted only the one connection that holds its single slot),
# and the kernel ledger is exact. sluiced's CPU per client (its CPU over the
# episode less what it spends idle over the same time) must not grow with the
# number waiting: at 15000 at most 1.5 x what it was at 2000, and under a
# generous absolute bound. A teardown whose cost grows with the requests
# pending on the ring (a cancel by descriptor compares against every one of
# them) fails both. Under SAN=1 (several times slower) the episodes are 800
# and 6000 clients.
# timeout: 150
. "$(dirname "$0")/lib.sh"
netns_setup
SMALL=2000 LARGE=15000 BOUND_US=100 RATIO_PCT=150 QTIMEOUT=5000
san_build && SMALL=800 LARGE=6000 BOUND_US=1000 QTIMEOUT=8000
bg b1 "$BE" "$BUILD/bench/backend" --mode echo --listen "$(be_addr 1):9000" \
	--summary "$T/b1.json" --ready "$T/b1.ready" --max-seconds 140
PID_b1=$LAST_PID
wait_for 5 test -e "$T/b1.ready" || fail "backend did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 120000; };
listeners = ( { name = "brief"; address = "10.77.0.1:8080"; pool = "brief"; backlog = 8192; },
              { name = "patient"; address = "10.77.0.1:8081"; pool = "patient"; backlog = 8192; } );
pools = ( { name = "brief"; queue = { max = 20000; timeout_ms = $QTIMEOUT; };
            servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 1; } ); },
          { name = "patient"; queue = { max = 20000; timeout_ms = 100000; };
            servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 1; } ); } );
CONF
sluiced_start "$T/s.conf"
# the backend's one slot is taken for the whole test
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 1
wait_for 5 grep -q ready "$T/hold.log" || fail "holder not connected"
wait_for 5 ledger_eq 1 1 || fail "ledger $(ledger 1), want 1"

gone_total() { metric 'sluice_refused_total{pool="patient",reason="client_gone"}'; }
late_total() { metric 'sluice_refused_total{pool="brief",reason="queue_timeout"}'; }

# episode N: N clients park, half time out, then half leave. Sets EP_US (CPU per client).
episode() {
	local n=$1 half=$(($1 / 2)) cpu0 cpu gone0 late0 qa qb
	gone0=$(gone_total) late0=$(late_total)
	cpu0=$(cpu_us "$SLUICED_PID")
	# patient: parked, then (after the brief ones timed out) leaving on their own
	bg "qa$n" "$LB" "$BUILD/bench/loadgen" queue -c 10.77.0.1:8081 -n "$half" --once \
		-r 5000 --warmup-ms $((QTIMEOUT + 3000)) -d 20000 --timeout-ms $((QTIMEOUT - 2000))
	qa=$LAST_PID
	# brief: parked until sluiced turns them away
	bg "qb$n" "$LB" "$BUILD/bench/loadgen" queue -c 10.77.0.1:8080 -n "$half" --once \
		-r 0 -d $((QTIMEOUT + 20000)) --timeout-ms $((QTIMEOUT - 2000))
	qb=$LAST_PID
	wait_exit "$qb" $((QTIMEOUT / 1000 + 30)) || fail "$n: the brief clients were not turned away"
	[ "$EXIT_STATUS" = 0 ] || fail "$n: brief clients: $(cat "$T/qb$n.log")"
	wait_exit "$qa" $((QTIMEOUT / 1000 + 30)) || fail "$n: the patient clients did not leave"
	[ "$EXIT_STATUS" = 0 ] || fail "$n: patient clients: $(cat "$T/qa$n.log")"
	say "$n: turned away: $(cat "$T/qb$n.log")"
	say "$n: left: $(cat "$T/qa$n.log")"
	[ "$(kv refused "$T/qb$n.log")" = "$half" ] || fail "$n: not all brief clients were turned away"
	[ "$(kv left "$T/qa$n.log")" = "$half" ] || fail "$n: not all patient clients left"
	wait_for 5 metric_eq sluice_connections_active 1 ||
		fail "$n: $(metric sluice_connections_active) connections active, want the holder's 1"
	cpu=$(($(cpu_us "$SLUICED_PID") - cpu0 - IDLE_US))
	[ $(($(gone_total) - gone0)) = "$half" ] || fail "$n: client_gone $(($(gone_total) - gone0))"
	[ $(($(late_total) - late0)) = "$half" ] || fail "$n: queue_timeout $(($(late_total) - late0))"
	ledger_eq 1 1 || fail "$n: ledger $(ledger 1), want 1 (the holder)"
	EP_US=$((cpu / n))
	say "$n clients: sluiced spent $((cpu / 1000)) ms of CPU beyond idle, $EP_US us per client"
}

# what sluiced spends doing nothing over an episode's time (timers, checks)
IDLE_US=$(c0=$(cpu_us "$SLUICED_PID"); sleep $((QTIMEOUT / 1000 + 4)); echo $(($(cpu_us "$SLUICED_PID") - c0)))
say "idle: $IDLE_US us of CPU in $((QTIMEOUT / 1000 + 4)) s"
episode "$SMALL"; small_us=$EP_US
episode "$LARGE"; large_us=$EP_US
say "CPU per client: $small_us us at $SMALL, $large_us us at $LARGE" \
	"(limits: ${RATIO_PCT}% of the first, $BOUND_US us)"
[ "$large_us" -le $((small_us * RATIO_PCT / 100)) ] ||
	fail "CPU per client grew with the queue: $small_us -> $large_us us"
[ "$large_us" -le "$BOUND_US" ] || fail "$large_us us per client, over $BOUND_US"
kill "$PID_b1"; wait_exit "$PID_b1" 5 || fail "backend did not exit"
acc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accepted"])' "$T/b1.json")
[ "$acc" = 1 ] || fail "the backend accepted $acc connections, want only the holder's"
say "ok"
