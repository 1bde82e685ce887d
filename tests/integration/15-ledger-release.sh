#!/usr/bin/env bash
# Every slot of the kernel's ledger is given back exactly once, however the
# connection ends: connects to a port nobody listens on, backends that reset,
# and sluiced killed with SIGKILL while it holds 200 live connections (the
# kernel closes its sockets and the still-attached program releases them).
# The pinned state is read with sluiced stopped; a restarted sluiced takes
# the programs over instead of attaching a second copy.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
backend rst 2 rst
backend e3 3 echo
# b1 (10.77.0.11:9000) has no listener: every connect is refused
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 2000; };
listeners = (
  { name = "closed"; address = "10.77.0.1:8081"; pool = "closed"; },
  { name = "rst"; address = "10.77.0.1:8082"; pool = "rst"; },
  { name = "live"; address = "10.77.0.1:8083"; pool = "live"; }
);
pools = (
  { name = "closed"; retries = 5; servers = ( { address = "$(be_addr 1):9000"; max_conns = 10; } ); },
  { name = "rst"; servers = ( { address = "$(be_addr 2):9000"; max_conns = 10; } ); },
  { name = "live"; servers = ( { address = "$(be_addr 3):9000"; max_conns = 300; } ); }
);
CONF
sluiced_start "$T/s.conf"

client closed echo-clients -c 10.77.0.1:8081 -n 100 -p 20 --io-timeout-ms 5000
[ "$(kv failed "$T/closed.log")" = 100 ] || fail "clients of a closed port should fail"
client rst echo-clients -c 10.77.0.1:8082 -n 100 -p 20 --io-timeout-ms 5000
[ "$(kv failed "$T/rst.log")" = 100 ] || fail "clients of a resetting backend should fail"
for b in 1 2; do
	wait_for 5 ledger_eq $b 0 || fail "backend b$b: ledger $(ledger $b) after failed connects"
	a=$(bpf_col $b ADMITTED); r=$(bpf_col $b RELEASED)
	say "backend b$b: admitted $a, released $r, ledger $(ledger $b)"
	[ "$a" -gt 0 ] && [ "$a" = "$r" ] || fail "b$b: admitted $a, released $r"
done

# 200 live connections, then SIGKILL
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8083 -n 200 --wait-close-ms 30000 --timeout-ms 60000
wait_for 10 grep -q ready "$T/hold.log" || fail "200 connections not up"
wait_for 5 ledger_eq 3 200 || fail "ledger $(ledger 3) with 200 connections open"
kill -9 "$SLUICED_PID"
wait "$SLUICED_PID" 2>/dev/null
say "sluiced killed with 200 connections open"
wait_for 5 ledger_eq 3 0 || fail "ledger $(ledger 3) after SIGKILL; expected 0"
"$SLUICECTL" bpf "$PIN" | tee "$T/bpf.txt"
grep -q 'connect4=attached connect6=attached sock_release=attached' "$T/bpf.txt" ||
	fail "programs should stay attached (pinned links) when sluiced dies"
[ "$(bpf_col 3 ADMITTED)" = 200 ] && [ "$(bpf_col 3 RELEASED)" = 200 ] || fail "admitted/released"

# restart: the pinned programs are taken over, not doubled; counting goes on
sluiced_start "$T/s.conf"
n=$(bpftool cgroup show "$(cgroup_dir)" 2>/dev/null | grep -c 'sl_connect4' ||
    /usr/sbin/bpftool cgroup show "$(cgroup_dir)" | grep -c 'sl_connect4')
[ "$n" = 1 ] || fail "$n copies of sl_connect4 attached after restart"
client again echo-clients -c 10.77.0.1:8083 -n 100 -p 100 --hold || fail "clients after restart"
wait_for 5 ledger_eq 3 0 || fail "ledger $(ledger 3) after the restart's clients closed"
[ "$(bpf_col 3 ADMITTED)" = 300 ] && [ "$(bpf_col 3 RELEASED)" = 300 ] ||
	fail "after restart: admitted $(bpf_col 3 ADMITTED), released $(bpf_col 3 RELEASED)"
say "ok"
