#!/usr/bin/env bash
# Active health checks and slow start: a killed backend is marked down within
# fall x interval and gets no new clients (its peer takes them); when it is
# back it ramps up over slow_start_s, so at half of slow_start_s its admitted
# rate is about half the configured rate — in the kernel's bucket and at the
# backend itself.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
start_b1() {
	bg b1 "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 1):9000" --threads 2 \
		--summary "$T/b1-$1.json" --ready "$T/b1.ready" --max-seconds 80
	B1=$LAST_PID
	wait_for 5 test -e "$T/b1.ready" || fail "b1 did not start"
	rm -f "$T/b1.ready"
}
start_b1 first
bg b2 "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 2):9000" --ready "$T/b2.ready" --max-seconds 80
wait_for 5 test -e "$T/b2.ready" || fail "b2 did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 30000; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; },
              { name = "solo"; address = "10.77.0.1:8081"; pool = "solo"; } );
pools = ( { name = "app"; queue = { timeout_ms = 30000; };
    health = { interval_ms = 200; timeout_ms = 150; rise = 2; fall = 3; http_path = "/healthz"; };
    slow_start_s = 6;
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = 200; burst = 10; },
                { name = "b2"; address = "$(be_addr 2):9000"; } ); },
  # b1 alone (the same backend, the same kernel bucket), to measure its rate
  { name = "solo"; queue = { timeout_ms = 30000; }; slow_start_s = 6;
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; rate = 200; burst = 10; } ); } );
CONF
sluiced_start "$T/s.conf"
sleep 1
[ "$(backend_metric sluice_backend_up app 1)" = 1 ] || fail "b1 not up at start"

kill "$B1"; t0=$(date +%s%N)
wait_for 3 sh -c "[ \"\$(nsenter --net=/run/netns/$LB $SLUICECTL -a $ADMIN metrics | awk '\$1 ~ /^sluice_backend_up.*b1\"/ {print \$2; exit}')\" = 0 ]" ||
	fail "b1 not marked down"
ms=$((($(date +%s%N) - t0) / 1000000))
say "b1 marked down $ms ms after it died (fall 3 x interval 200 ms, +jitter, +timeout)"
[ $ms -le 1200 ] || fail "took $ms ms"
in_lb "$BUILD/bench/loadgen" idle -c 10.77.0.1:8080 -n 50 --hold-ms 100 >"$T/down.log" 2>&1 ||
	{ cat "$T/down.log"; fail "clients failed while b1 was down"; }
c1=$(backend_metric sluice_backend_connects_total app 1)
say "connects to b1 while down: ${c1:-0}"
[ "${c1:-0}" = 0 ] || fail "b1 got clients while down"

# back up: rise 2 checks, then a 6 s ramp from 5% to 200/s
start_b1 second
wait_for 3 sh -c "grep -q 'backend $(be_addr 1):9000 up' $T/sluiced.log" || fail "b1 not back up"
t_up=$(date +%s%N)
sleep 2.5
# a flood of clients for b1 alone across the middle of the ramp, counted at b1
in_lb "$BUILD/bench/loadgen" idle -c 10.77.0.1:8081 -n 400 --hold-ms 100 --timeout-ms 20000 >/dev/null 2>&1 &
sleep 0.5
rate=$(bpf_col 1 RATE)
at=$((($(date +%s%N) - t_up) / 1000000))
say "$at ms into a 6 s slow start, the kernel's rate for b1 is $rate/s (configured 200)"
want=$((200 * at / 6000))
[ "$rate" -ge $((want - 25)) ] && [ "$rate" -le $((want + 25)) ] ||
	fail "rate $rate, expected about $want at $at ms of the ramp"
[ $at -ge 2500 ] && [ $at -le 3500 ] || fail "sampled at $at ms, not near half of the ramp"
sleep 0.7
kill "$B1"; wait "$B1" 2>/dev/null
python3 - "$T/b1-second.json" "$t_up" <<'PY' || fail "admitted rate off the ramp"
import json, sys
d = json.load(open(sys.argv[1]))
b = d["accepts_per_10ms"]
start = d["start_unix_ms"]
# health checks land on b1 too, one per 200 ms: the flood starts at the first
# 100 ms with more than a handful of accepts
first = next(i for i in range(len(b)) if sum(b[i:i + 10]) >= 5)
win = b[first + 20:first + 100]          # 0.2 s..1.0 s after the flood reached b1
rate = sum(win) / 0.8
# the flood spans 2.5 s..3.5 s of a 6 s ramp to 200/s: about 83..117/s
print(f"b1 accepted {sum(b)} connections; {rate:.0f}/s in the middle of the ramp (half of 200: 100)")
sys.exit(0 if 75 <= rate <= 130 else 1)
PY
say "ok"
