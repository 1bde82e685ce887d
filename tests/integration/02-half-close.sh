#!/usr/bin/env bash
# Half-close both ways: a client FIN reaches the backend while the backend
# still answers; a backend FIN reaches the client while the client still sends.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend sink 1 sink
write_conf "$T/sink.conf" 2 least_conn 1
sluiced_start "$T/sink.conf"

# client → backend FIN: the sink answers only after EOF, so the answer proves
# the FIN was forwarded and the backend→client half stayed open
for bytes in 1 100000 5000000; do
	in_lb "$TPEER" halfclose-client -c 10.77.0.1:8080 --bytes "$bytes" >"$T/hc.log" 2>&1 ||
		{ cat "$T/hc.log"; fail "client half-close with $bytes bytes"; }
	say "client FIN first, $bytes bytes: $(cat "$T/hc.log")"
done
wait_for 2 stat_eq sink sink_done 3 || fail "sink saw $(stat sink sink_done) clean EOFs, expected 3"

# backend → client FIN: the source sends and shuts down, then reads what the
# client sends after that FIN
kill "$PID_sink"
backend src 2 source --bytes 2000000
write_conf "$T/src.conf" 2 least_conn 2
cp "$T/src.conf" "$T/sink.conf"
kill -HUP "$SLUICED_PID"
wait_for 5 sh -c "grep -q 'generation 2 in service' $T/sluiced.log" || fail "reload"
for k in 1 2; do
	in_lb "$TPEER" halfclose-server -c 10.77.0.1:8080 --bytes 2000000 --send 300000 >"$T/hs.log" 2>&1 ||
		{ cat "$T/hs.log"; fail "server half-close"; }
	say "backend FIN first: $(cat "$T/hs.log")"
done
wait_for 5 stat_eq src source_done 2 ||
	fail "source saw $(stat src source_done) EOFs after its own FIN, expected 2"
wait_for 2 stat_eq src after_fin_bytes 600000 ||
	fail "backend got $(stat src after_fin_bytes) bytes after its FIN, expected 600000"
say "ok"
