#!/usr/bin/env bash
# Timeouts: a backend that never answers the SYN is given up after
# timeouts.connect_ms and the client is retried on another backend; when no
# backend answers, timeouts.backend_wait_ms caps the client's wait; an idle
# connection is closed after timeouts.idle_s.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner
# 10.77.0.2 is the backend host; its ports 9998 and 9999 drop SYNs (nothing answers)
command -v iptables >/dev/null || fail "iptables missing: make deps installs it"
in_be iptables -A INPUT -p tcp --dport 9998:9999 -j DROP || skip "kernel without netfilter: cannot drop SYNs"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { connect_ms = 1000; backend_wait_ms = 1500; idle_s = 2; };
listeners = (
  { name = "front"; address = "10.77.0.1:8080"; pool = "mixed"; },
  { name = "black"; address = "10.77.0.1:8081"; pool = "hole"; }
);
pools = (
  { name = "mixed"; balance = "round_robin"; retries = 2;
    servers = ( { name = "hole"; address = "10.77.0.2:9999"; }, { name = "b1"; address = "$(be_addr 1):9000"; } ); },
  { name = "hole"; retries = 10; servers = ( { address = "10.77.0.2:9998"; } ); }
);
CONF
sluiced_start "$T/s.conf"

# connect timeout → retried on b1: every client gets through
client mixed echo-clients -c 10.77.0.1:8080 -n 20 -p 20 --banner || fail "clients failed"
[ "$(kv backend.b1 "$T/mixed.log")" = 20 ] || fail "clients not moved to b1"
f=$(metric "sluice_backend_connect_failures_total{pool=\"mixed\",backend=\"hole\",address=\"10.77.0.2:9999\"}")
say "timed-out connects to the black hole: $f"
[ "${f:-0}" -ge 1 ] || fail "connect timeouts not counted"

# nothing answers: the one backend is tried again (retries), and the client
# is closed once backend_wait_ms is spent, in the middle of the second try
t0=$(date +%s%N)
in_lb "$TPEER" echo-clients -c 10.77.0.1:8081 -n 1 --io-timeout-ms 10000 >"$T/hole.log" 2>&1
ms=$((($(date +%s%N) - t0) / 1000000))
say "black-hole client closed after $ms ms"
[ "$(kv failed "$T/hole.log")" = 1 ] || fail "black-hole client should fail"
[ $ms -ge 1200 ] && [ $ms -le 3000 ] || fail "closed after $ms ms; backend_wait_ms is 1500"
[ "$(metric 'sluice_refused_total{pool="hole",reason="down"}')" -ge 1 ] || fail "not counted"

# idle: a connection with no traffic either way is closed after idle_s
in_lb "$TPEER" hold -c 10.77.0.1:8080 -n 10 --banner --wait-close-ms 8000 >"$T/idle.log" 2>&1 ||
	{ cat "$T/idle.log"; fail "idle connections not closed"; }
cat "$T/idle.log"
last=$(kv last_close_ms "$T/idle.log")
[ "$last" -ge 1500 ] && [ "$last" -le 4000 ] || fail "idle close after $last ms; idle_s is 2"
[ "$(metric 'sluice_connections_closed_total{reason="idle_timeout"}')" -ge 10 ] || fail "idle closes not counted"
say "ok"
