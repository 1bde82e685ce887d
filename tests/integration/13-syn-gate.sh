#!/usr/bin/env bash
# The XDP SYN gate (native XDP on the LB's veth) holds SYN floods to the
# token buckets of a listener's syn_gate, and touches nothing else:
#  - a flood from many /24s at 10x the rate: passed SYNs = burst + rate x
#    duration within 10%, counted by the BPF table and, independently, by an
#    iptables counter in the LB's INPUT (which sees only what XDP passed);
#  - a simultaneous flood to a port with no listener passes completely;
#  - per-source limit: one /24 flooding far above source_rate is held to
#    about its source bucket, while eight other /24s (each under the source
#    limit, together under the listener rate) get nearly all SYNs in;
#  - IPv6: a flood from fd88::/32 to [fd77::1]:8080 is held to the bucket;
#  - afterwards, real clients from the BE host get through every gate;
#  - sluice_syn_total in /metrics agrees with `sluicectl bpf`.
# The floods use spoofed sources; the LB routes them back via the BE host
# (which drops the SYN-ACKs), so no reverse-path check gets in the way.
# timeout: 120
. "$(dirname "$0")/lib.sh"
SYNFLOOD=$BUILD/tests/tools/synflood
netns_setup
[ -x "$SYNFLOOD" ] || fail "build first: make test-build (synflood)"
for t in iptables ip6tables; do
	command -v $t >/dev/null || fail "$t missing: make deps installs it"
done
in_lb iptables -N SYNCNT 2>/dev/null || skip "kernel without netfilter: cannot count SYNs"
in_lb ip6tables -N SYNCNT 2>/dev/null || skip "kernel without IPv6 netfilter: cannot count SYNs"

# IPv6 on the veth, and routes back to the spoofed source nets
ip -n "$LB" addr add fd77::1/64 dev "v$LB" nodad || fail "IPv6 address on v$LB"
ip -n "$BE" addr add fd77::2/64 dev "v$BE" nodad || fail "IPv6 address on v$BE"
ip -n "$LB" route add 10.88.0.0/16 via 10.77.0.2 || fail "route 10.88/16"
ip -n "$LB" -6 route add fd88::/32 via fd77::2 || fail "route fd88::/32"
for c in all default "v$LB"; do in_lb sysctl -qw "net.ipv4.conf.$c.rp_filter=0"; done
LBMAC=$(ip -n "$LB" -o link show "v$LB" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$LBMAC" ] || fail "no MAC for v$LB"

# Counters in the LB's INPUT, after XDP: one rule per thing measured. The
# rules only count (no target); SYNCNT is jumped to from INPUT.
count_rule() { local t=$1; shift; in_lb "$t" -A SYNCNT -p tcp --syn "$@" || fail "$t rule $*"; }
count_rule iptables --dport 8080 -d 10.77.0.1
count_rule iptables --dport 9999 -d 10.77.0.1
for n in 1 2 3 4 5 6 7 8 9; do count_rule iptables --dport 8081 -s "10.88.$n.0/24"; done
count_rule ip6tables --dport 8080 -d fd77::1
in_lb iptables -I INPUT -j SYNCNT
in_lb ip6tables -I INPUT -j SYNCNT
# ipt_count TOOL MATCH...: packets counted by the SYNCNT rule whose text has
# all of MATCH (e.g. "dpt:8080")
ipt_count() {
	local t=$1; shift
	in_lb "$t" -nvxL SYNCNT | awk -v pat="$*" '
		BEGIN { n = split(pat, p, " ") }
		NR > 2 { ok = 1; for (i = 1; i <= n; i++) if (index($0, p[i]) == 0) ok = 0
			 if (ok) { print $1; exit } }'
}

backend b1 1 echo
cat >"$T/s.conf" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = (
  { name = "front"; address = "10.77.0.1:8080"; pool = "app";
    syn_gate = { rate = 200; burst = 50; interfaces = ["v$LB"]; }; },
  { name = "persrc"; address = "10.77.0.1:8081"; pool = "app";
    syn_gate = { rate = 200; burst = 50; interfaces = ["v$LB"];
                 source_prefix_v4 = 24; source_rate = 20; source_burst = 20; }; },
  { name = "front6"; address = "[fd77::1]:8080"; pool = "app";
    syn_gate = { rate = 200; burst = 50; interfaces = ["v$LB"]; }; }
);
pools = ( { name = "app"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; } ); } );
CONF
sluiced_start "$T/s.conf"
grep -q "SYN gate on v$LB (native XDP)" "$T/sluiced.log" ||
	{ grep -i "syn gate" "$T/sluiced.log"; fail "no native XDP SYN gate on v$LB"; }
say "SYN gate on v$LB in native XDP mode"

# flood NAME DST SYNFLOOD-ARGS...: a bounded flood from $BE, summary in $T/NAME.log
flood() {
	local name=$1 dst=$2; shift 2
	in_be timeout 20 "$SYNFLOOD" -i "v$BE" --dst "$dst" --dst-mac "$LBMAC" "$@" \
		>"$T/$name.log" 2>"$T/$name.err" || { cat "$T/$name.err"; fail "synflood $name"; }
}
# gate_row LISTENER-KEY: "PASSED DROP_RATE DROP_SRC" from `sluicectl bpf`
gate_row() {
	"$SLUICECTL" bpf "$PIN" | awk -v k="$1" '/^SYN GATE/ { g = 1; next }
		g && $1 == k { print $(NF - 2), $(NF - 1), $NF; exit }'
}
# within ACTUAL EXPECTED PCT: |actual - expected| <= PCT% of expected
within() { awk -v a="$1" -v e="$2" -v p="$3" 'BEGIN { d = a - e; if (d < 0) d = -d; exit !(d <= e * p / 100) }'; }

# ---- listener bucket, many sources, plus an ungated port alongside ---------
src16=()
for n in $(seq 0 4 252); do src16+=(--src-net "10.88.$n.0/24"); done   # 64 /24s
flood f8080 10.77.0.1:8080 "${src16[@]}" --rate 2000 --duration-ms 3000 &
fp1=$!
flood f9999 10.77.0.1:9999 "${src16[@]}" --rate 1000 --duration-ms 3000 &
fp2=$!
wait $fp1 || fail "flood to 8080 failed"
wait $fp2 || fail "flood to 9999 failed"
sleep 0.3   # let the veth's queue drain into the counters
cat "$T/f8080.log" "$T/f9999.log"
sent=$(kv sent "$T/f8080.log") secs=$(kv secs "$T/f8080.log")
[ "$(kv enobufs "$T/f8080.log")" = 0 ] || say "note: flood hit ENOBUFS (retried)"
read -r pass drate dsrc <<<"$(gate_row 10.77.0.1:8080)"
ipt=$(ipt_count iptables "dpt:8080" "10.77.0.1")
expect=$(awk -v s="$secs" 'BEGIN { printf "%d", 50 + 200 * s }')
say "8080: sent=$sent in ${secs}s; expected passed ~$expect; bpf passed=$pass drop_rate=$drate drop_src=$dsrc; iptables=$ipt"
[ "$sent" -ge 5000 ] || fail "flood too small to mean anything: $sent"
within "$pass" "$expect" 10 || fail "BPF passed $pass, bucket allows ~$expect"
within "$ipt" "$expect" 10 || fail "iptables counted $ipt, bucket allows ~$expect"
[ "$pass" -eq "$ipt" ] || fail "BPF passed $pass but iptables counted $ipt"
[ $((pass + drate + dsrc)) -eq "$sent" ] || fail "BPF saw $((pass + drate + dsrc)) SYNs of $sent"
[ "$dsrc" -eq 0 ] || fail "source drops with no source limit: $dsrc"
sent9=$(kv sent "$T/f9999.log")
ipt9=$(ipt_count iptables "dpt:9999")
say "9999 (no listener): sent=$sent9 iptables=$ipt9"
[ "$sent9" -gt 0 ] || fail "no flood to port 9999"
[ "$ipt9" -eq "$sent9" ] || fail "port 9999: $ipt9 of $sent9 SYNs passed"

# ---- per-source limit --------------------------------------------------------
# 10.88.1.0/24 at 1000/s (50x its source rate of 20/s); 10.88.2-9.0/24 at
# 10/s each (half their source rate; 80/s together, well under the listener's
# 200/s even with the 20/s the loud /24 gets through)
others=()
for n in 2 3 4 5 6 7 8 9; do others+=(--src-net "10.88.$n.0/24"); done
flood loud 10.77.0.1:8081 --src-net 10.88.1.0/24 --rate 1000 --duration-ms 3000 &
fp1=$!
flood quiet 10.77.0.1:8081 "${others[@]}" --rate 80 --duration-ms 3000 &
fp2=$!
wait $fp1 || fail "loud flood failed"
wait $fp2 || fail "quiet flood failed"
sleep 0.3
cat "$T/loud.log" "$T/quiet.log"
lsent=$(kv sent "$T/loud.log") lsecs=$(kv secs "$T/loud.log")
qsent=$(kv sent "$T/quiet.log")
lpass=$(ipt_count iptables "dpt:8081" "10.88.1.0/24")
qpass=0
for n in 2 3 4 5 6 7 8 9; do
	c=$(ipt_count iptables "dpt:8081" "10.88.$n.0/24")
	[ "$c" -gt 0 ] || fail "nothing from 10.88.$n.0/24 got in"
	qpass=$((qpass + c))
done
lexpect=$(awk -v s="$lsecs" 'BEGIN { printf "%d", 20 + 20 * s }')
read -r pass drate dsrc <<<"$(gate_row 10.77.0.1:8081)"
say "8081 loud /24: sent=$lsent passed=$lpass (source bucket allows ~$lexpect)"
say "8081 8 quiet /24s: sent=$qsent passed=$qpass"
say "8081 bpf: passed=$pass drop_rate=$drate drop_src=$dsrc"
[ "$lsent" -ge 2000 ] || fail "loud flood too small: $lsent"
within "$lpass" "$lexpect" 10 || fail "loud /24 passed $lpass, its source bucket allows ~$lexpect"
[ $((qpass * 100)) -ge $((qsent * 98)) ] || fail "quiet /24s: only $qpass of $qsent passed"
[ "$pass" -eq $((lpass + qpass)) ] || fail "BPF passed $pass, iptables $((lpass + qpass))"
[ "$dsrc" -ge $((lsent - lexpect * 11 / 10)) ] || fail "source drops $dsrc too few"
[ "$drate" -eq 0 ] || fail "listener bucket dropped $drate with traffic under its rate"

# ---- IPv6 --------------------------------------------------------------------
flood f6 "[fd77::1]:8080" --src-net fd88::/32 --rate 2000 --duration-ms 3000
sleep 0.3
cat "$T/f6.log"
sent=$(kv sent "$T/f6.log") secs=$(kv secs "$T/f6.log")
read -r pass drate dsrc <<<"$(gate_row "[fd77::1]:8080")"
ipt=$(ipt_count ip6tables "dpt:8080")
expect=$(awk -v s="$secs" 'BEGIN { printf "%d", 50 + 200 * s }')
say "[fd77::1]:8080: sent=$sent in ${secs}s; expected passed ~$expect; bpf passed=$pass drop_rate=$drate; ip6tables=$ipt"
[ "$sent" -ge 5000 ] || fail "v6 flood too small: $sent"
within "$pass" "$expect" 10 || fail "v6 BPF passed $pass, bucket allows ~$expect"
within "$ipt" "$expect" 10 || fail "v6 ip6tables counted $ipt, bucket allows ~$expect"
[ "$pass" -eq "$ipt" ] || fail "v6 BPF passed $pass but ip6tables counted $ipt"
[ $((pass + drate + dsrc)) -eq "$sent" ] || fail "v6: BPF saw $((pass + drate + dsrc)) of $sent"

# ---- real clients from the BE host are served through the gates -----------
# (from $BE, so their SYNs cross v$LB and the gate; a client in $LB would
# reach 10.77.0.1 over loopback, past XDP). The buckets refilled meanwhile.
for l in front:10.77.0.1:8080 persrc:10.77.0.1:8081 "front6:[fd77::1]:8080"; do
	name=${l%%:*} key=${l#*:}
	read -r p0 _ <<<"$(gate_row "$key")"
	in_be "$TPEER" echo-clients -c "$key" -n 20 -p 5 >"$T/cl-$name.log" 2>&1 ||
		{ cat "$T/cl-$name.log"; fail "clients to $key failed"; }
	read -r p1 _ <<<"$(gate_row "$key")"
	say "$key: 20 clients from the BE host served; gate passed $((p1 - p0)) SYNs"
	[ "$(kv ok "$T/cl-$name.log")" = 20 ] || fail "not every client to $key was served"
	[ $((p1 - p0)) -ge 20 ] || fail "the gate of $key did not see the clients' SYNs"
done

# ---- /metrics agrees with the BPF table --------------------------------------
for l in front:10.77.0.1:8080 persrc:10.77.0.1:8081 "front6:[fd77::1]:8080"; do
	name=${l%%:*} key=${l#*:}
	read -r pass drate dsrc <<<"$(gate_row "$key")"
	m=""
	for v in pass drop_rate drop_source; do
		m="$m $(metric "sluice_syn_total{listener=\"$name\",verdict=\"$v\"}")"
	done
	say "$name: bpf $pass $drate $dsrc; metrics$m"
	[ "$m" = " $pass $drate $dsrc" ] || fail "metrics for $name disagree with the BPF table"
done
say "ok"
