#!/usr/bin/env bash
# The safeguard: a program detached with bpftool while sluiced runs — the
# backend gate from its cgroup, the SYN gate from its interface — is back
# within 2 s, said in the log and counted in sluice_bpf_reattach_total; the
# limit holds again afterwards.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo
BPFTOOL=$(command -v bpftool || echo /usr/sbin/bpftool)
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 500; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app";
                syn_gate = { rate = 10000; interfaces = ["v$LB"]; }; } );
pools = ( { name = "app"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 5; } ); } );
CONF
sluiced_start "$T/s.conf"
[ "$(metric sluice_bpf_programs_attached)" = 4 ] && [ "$(metric sluice_bpf_programs_expected)" = 4 ] ||
	fail "expected 4 programs attached"

for what in connect4 xdp_v$LB; do
	before=$(metric sluice_bpf_reattach_total)
	"$BPFTOOL" link detach pinned "$PIN/link_$what" || fail "bpftool could not detach $what"
	t0=$(date +%s%N)
	wait_for 3 metric_eq sluice_bpf_reattach_total $((before + 1)) || fail "$what not re-attached"
	ms=$((($(date +%s%N) - t0) / 1000000))
	say "$what detached with bpftool; attached again after $ms ms"
	[ $ms -le 2000 ] || fail "took $ms ms"
	wait_for 2 metric_eq sluice_bpf_programs_attached 4 || fail "not all attached"
done
grep -q 'safeguard: sl_connect4 was detached' "$T/sluiced.log" || fail "no log line for connect4"
grep -q "safeguard: SYN gate was removed from v$LB" "$T/sluiced.log" || fail "no log line for XDP"
n=$("$BPFTOOL" cgroup show "$(cgroup_dir)" | grep -c sl_connect4)
[ "$n" = 1 ] || fail "$n copies of sl_connect4 attached"
# the limit is enforced again: 5 of 8 get a backend
client c echo-clients -c 10.77.0.1:8080 -n 8 -p 8 --hold --io-timeout-ms 3000
[ "$(kv ok "$T/c.log")" = 5 ] || fail "max_conns = 5 not enforced after re-attach"
say "ok"
