#!/usr/bin/env bash
# Several backends behind 2 workers: every client is served, least_conn spreads
# them evenly, both workers take connections, per-backend counters add up.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
for i in 1 2 3; do backend "b$i" "$i" banner; done
# no rate limit: learned rates (the default) differ per backend at first and would
# send clients where tokens are, which is not what least_conn's spread is
SERVER_OPTS="rate = 0;" write_conf "$T/s.conf" 2 least_conn 1 2 3
sluiced_start "$T/s.conf"

client clients echo-clients -c 10.77.0.1:8080 -n 900 -p 60 --rounds 4 --size 512 --banner ||
	fail "clients failed"
[ "$(kv ok "$T/clients.log")" = 900 ] || fail "not every client was served"
for i in 1 2 3; do
	n=$(kv "backend.b$i" "$T/clients.log")
	say "backend b$i served $n clients"
	[ "${n:-0}" -ge 200 ] || fail "b$i got $n of 900 clients: least_conn should spread them"
done
# each worker accepted a share (SO_REUSEPORT spreads by 4-tuple hash)
for w in 0 1; do
	n=$(metric "sluice_worker_connections_accepted_total{worker=\"$w\"}")
	say "worker $w accepted $n"
	[ "${n:-0}" -ge 100 ] || fail "worker $w accepted ${n:-0}: both workers must serve"
done
total=0
for i in 1 2 3; do
	c=$(backend_metric sluice_backend_connects_total app "$i")
	total=$((total + ${c:-0}))
done
[ "$total" -eq 900 ] || fail "backend connects add up to $total, expected 900"
wait_for 3 metric_eq sluice_connections_active 0 ||
	fail "connections still active after all clients closed"
say "ok"
