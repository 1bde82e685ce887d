#!/usr/bin/env bash
# 5000 connections open at the same time through 2 workers: all served, all
# held concurrently (the backend sees 5000 at once), all released afterwards.
# timeout: 180
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo --threads 2
backend e2 2 echo --threads 2
write_conf "$T/s.conf" 2 least_conn 1 2
sluiced_start "$T/s.conf"
client conc echo-clients -c 10.77.0.1:8080 -n 5000 -p 5000 --hold --size 100 --rounds 2 \
	--timeout-ms 120000 || fail "not all 5000 clients were served"
max=$(( $(stat e1 max_active) + $(stat e2 max_active) ))
say "backends held up to $(stat e1 max_active) + $(stat e2 max_active) connections"
[ "$max" -ge 5000 ] || fail "backends saw at most $max concurrent connections, expected 5000"
wait_for 10 metric_eq sluice_connections_active 0 ||
	fail "connections still active: $(metric sluice_connections_active)"
wait_for 10 stat_eq e1 active 0 && wait_for 10 stat_eq e2 active 0 ||
	fail "backend connections not released"
say "ok"
