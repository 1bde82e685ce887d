#!/usr/bin/env bash
# A backend killed with SIGKILL while 200 clients stream through it (echoed
# data checked byte by byte): every one of them sees its connection end (FIN
# or RST) within 1.5 s, the kernel's ledger gives all 200 slots back, nothing
# stays open in sluiced, and sluiced stays healthy: 20 clients streaming
# through the same daemon to another backend are not disturbed, new clients
# are served at once, and the killed backend gets clients again once it is
# back. (05-dead-backend: clients move to the other backends of a pool.)
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 echo --threads 2
backend b2 2 echo
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "one"; address = "10.77.0.1:8080"; pool = "one"; },
              { name = "two"; address = "10.77.0.1:8081"; pool = "two"; } );
pools = ( { name = "one"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 1000; } ); },
          { name = "two"; servers = ( { name = "b2"; address = "$(be_addr 2):9000"; max_conns = 1000; } ); } );
CONF
sluiced_start "$T/s.conf"

bg victims "$LB" "$TPEER" stream -c 10.77.0.1:8080 -n 200 --window 256k --wait-close-ms 15000 \
	--timeout-ms 30000
VICTIMS=$LAST_PID
bg others "$LB" "$TPEER" stream -c 10.77.0.1:8081 -n 20 --window 64k --duration-ms 4000 \
	--timeout-ms 30000
OTHERS=$LAST_PID
wait_for 10 grep -q ready "$T/victims.log" || fail "200 streaming clients not up: $(cat "$T/victims.log")"
wait_for 5 ledger_eq 1 200 || fail "ledger of b1: $(ledger 1) with 200 clients"
# mid-stream: a second's worth of data through, then the kill
sleep 1
wait_for 5 sh -c "[ \$(sed -n 's/^bytes_in=//p' $T/b1.stats) -gt 20000000 ]" || fail "no data flowing to b1"
t_kill=$(date +%s%3N)
kill -9 "$PID_b1"
wait "$PID_b1" 2>/dev/null
say "b1 killed with $(stat b1 active) connections streaming"
wait_exit "$VICTIMS" 10 || fail "streaming clients of b1 still open 10 s after the kill"
cat "$T/victims.log"
[ "$(kv closed_by_peer "$T/victims.log")" = 200 ] || fail "not every client of b1 saw its connection end"
[ "$(kv mismatches "$T/victims.log")" = 0 ] && [ "$(kv stuck "$T/victims.log")" = 0 ] ||
	fail "data corrupted or stuck before the kill"
last=$(($(kv last_close_epoch_ms "$T/victims.log") - t_kill))
say "the last client of b1 saw its close $last ms after the kill ($(kv resets "$T/victims.log") by RST)"
[ "$last" -le 1500 ] || fail "closes took $last ms after the kill"
wait_for 2 ledger_eq 1 0 || fail "ledger of b1: $(ledger 1) after the kill; expected 0"
[ "$(bpf_col 1 ADMITTED)" = "$(bpf_col 1 RELEASED)" ] ||
	fail "b1: admitted $(bpf_col 1 ADMITTED), released $(bpf_col 1 RELEASED)"

# sluiced is fine: the other backend's clients went on, new ones are served
client new2 echo-clients -c 10.77.0.1:8081 -n 50 -p 50 --rounds 3 || fail "new clients to b2 after the kill"
wait_exit "$OTHERS" 10 || fail "clients of b2 did not finish"
cat "$T/others.log"
[ "$(kv clean "$T/others.log")" = 20 ] || fail "clients of b2 were disturbed by b1's death"
# b1 comes back: its pool's clients are served again (after its down period)
rm -f "$T/b1.ready"
backend b1 1 echo --threads 2
wait_for 10 in_lb "$TPEER" echo-clients -c 10.77.0.1:8080 -n 20 || fail "b1 back, but no client gets through"
client new1 echo-clients -c 10.77.0.1:8080 -n 50 -p 50 --rounds 3 || fail "clients to b1 after its restart"
wait_for 5 metric_eq sluice_connections_active 0 ||
	fail "connections left in sluiced: $(metric sluice_connections_active)"
wait_for 2 ledger_eq 1 0 || fail "ledger of b1: $(ledger 1)"
say "ok"
