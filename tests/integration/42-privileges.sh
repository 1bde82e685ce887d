#!/usr/bin/env bash
# Privileges and the admin token. sluiced is started as root with
# user = "nobody": the main process and every thread end up uid/gid nobody
# with CAP_NET_BIND_SERVICE and CAP_NET_ADMIN only (plus CAP_BPF on a kernel
# that wants it for bpf() on open fds) in the effective, permitted and
# bounding sets, none inheritable or ambient, no_new_privs set; its sockets
# and the access log belong to nobody; the pin directory is nobody's 0700 and
# every pinned object 0600, unreadable by another user. It still proxies;
# health checks still pass the backend gate (SO_MARK) while the backend is
# full; a SIGHUP reload changes a kernel limit, adds a listener on port 443
# and rotates the token; a reload that cannot read the token file fails and
# keeps the running config; the safeguard re-attaches a cgroup program and
# the XDP program detached by hand (its new pins nobody's too); SIGTERM
# detaches everything and exits 0. The admin endpoint answers 401 with
# WWW-Authenticate: Bearer without the token or with a wrong one, 200 with
# it (sluicectl --token-file, $SLUICE_ADMIN_TOKEN_FILE, -c FILE), and
# /healthz without it.
# timeout: 150
. "$(dirname "$0")/lib.sh"
# The pins one level below a directory only root can search (as /sys/fs/bpf
# often is): sluiced, no longer root, must still pin and unpin links there.
PIN_TOP=$PIN
PIN=$PIN/inner
BPF_CONF="bpf = { pin_path = \"$PIN\"; cgroup = \"$CGROUP\"; };"
trap 'rc=$?; rm -rf "$PIN_TOP"; (exit $rc); cleanup' EXIT
netns_setup
id nobody >/dev/null 2>&1 || skip "needs a user nobody"
BPFTOOL=$(command -v bpftool || echo /usr/sbin/bpftool)
NOBODY_UID=$(id -u nobody)
NOBODY_GID=$(id -g nobody)
backend e1 1 echo

# what nobody must read on a reload lives in a directory of its own
chmod 711 "$T"
mkdir -p "$T/etc" "$T/log"
new_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
TOKEN=$(new_token)
echo "$TOKEN" >"$T/etc/token"
chmod 644 "$T/etc/token" # loose on purpose: sluiced must warn
conf() { # conf MAX_CONNS [EXTRA_LISTENER]
	cat >"$T/etc/s.conf" <<CONF
workers = 2;
user = "nobody";
admin = { address = "$ADMIN"; token_file = "$T/etc/token"; };
$BPF_CONF
log = { access = "$T/log/access.log"; };
timeouts = { backend_wait_ms = 500; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app";
                syn_gate = { rate = 10000; interfaces = ["v$LB"]; }; } ${2:-} );
pools = ( { name = "app"; health = { interval_ms = 200; timeout_ms = 150; rise = 1; fall = 2; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = $1; } ); } );
CONF
}
conf 5
chown -R nobody: "$T/etc" "$T/log"
chmod 700 "$T/etc" "$T/log"
chmod 600 "$T/etc/s.conf"

# lib.sh's stat() reads tpeer stats files
perm() { command stat -c '%a %U' "$1"; }
ctl() { in_lb "$SLUICECTL" -a "$ADMIN" --token-file "$T/etc/token" "$@"; }
bg sluiced "$LB" "$SLUICED" -c "$T/etc/s.conf"
SLUICED_PID=$LAST_PID
wait_for 5 ctl metrics || fail "sluiced did not start"
grep -q "privileges: running as user nobody" "$T/sluiced.log" || fail "no privilege drop logged"
grep -q "token file $T/etc/token is readable by its group or others" "$T/sluiced.log" ||
	fail "no warning about a world-readable token file"

# ---- credentials of the process and of every thread
ntasks=0
for st in /proc/"$SLUICED_PID"/task/*/status; do
	name=$(awk '$1 == "Name:" { print $2 }' "$st")
	uids=$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "$st")
	gids=$(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' "$st")
	groups=$(awk '$1 == "Groups:" { $1 = ""; print }' "$st")
	cap() { awk -v k="$1:" '$1 == k { print $2 }' "$st"; }
	say "task $(basename "$(dirname "$st")") ($name): uid $uids gid $gids groups$groups" \
	    "eff $(cap CapEff) prm $(cap CapPrm) bnd $(cap CapBnd) inh $(cap CapInh) amb $(cap CapAmb)"
	[ "$uids" = "$NOBODY_UID $NOBODY_UID $NOBODY_UID $NOBODY_UID" ] || fail "uids $uids"
	[ "$gids" = "$NOBODY_GID $NOBODY_GID $NOBODY_GID $NOBODY_GID" ] || fail "gids $gids"
	for g in $groups; do [ "$g" != 0 ] || fail "still in group root"; done
	eff=$((16#$(cap CapEff)))
	# CAP_NET_BIND_SERVICE (10) and CAP_NET_ADMIN (12); CAP_BPF (39) only if the kernel wants it
	[ $eff -eq $((1 << 10 | 1 << 12)) ] || [ $eff -eq $((1 << 10 | 1 << 12 | 1 << 39)) ] ||
		fail "effective capabilities $(cap CapEff)"
	[ $((16#$(cap CapPrm))) -eq $eff ] && [ $((16#$(cap CapBnd))) -eq $eff ] ||
		fail "permitted $(cap CapPrm) / bounding $(cap CapBnd) differ from effective $(cap CapEff)"
	[ $((16#$(cap CapInh))) -eq 0 ] && [ $((16#$(cap CapAmb))) -eq 0 ] || fail "inheritable or ambient set"
	[ "$(awk '$1 == "NoNewPrivs:" { print $2 }' "$st")" = 1 ] || fail "no_new_privs not set"
	ntasks=$((ntasks + 1))
done
# main, 2 workers, the admin thread
[ $ntasks -ge 4 ] || fail "only $ntasks threads"
say "all $ntasks threads: uid/gid nobody, capabilities $(awk '$1 == "CapEff:" { print $2 }' /proc/"$SLUICED_PID"/status)"
[ "$(in_lb ss -Hltne 'sport = :8080' | grep -c "uid:$NOBODY_UID ")" = 2 ] || fail "listening sockets not nobody's"

# ---- the pins: nobody's, owner only
[ "$(perm "$PIN_TOP")" = "700 root" ] || fail "pin directory's parent: $(perm "$PIN_TOP")"
[ "$(perm "$PIN")" = "700 nobody" ] || fail "pin directory: $(perm "$PIN")"
for f in "$PIN"/*; do
	[ "$(perm "$f")" = "600 nobody" ] || fail "$f: $(perm "$f")"
done
say "pins: $(ls "$PIN" | wc -l) objects, 0600, nobody's, in a 0700 directory"
"$SLUICECTL" bpf "$PIN" >/dev/null || fail "root cannot read the pins"
if setpriv --reuid=12345 --regid=12345 --clear-groups "$SLUICECTL" bpf "$PIN" >"$T/other.log" 2>&1; then
	fail "another user can read the pinned maps"
fi
say "another user: $(head -1 "$T/other.log")"

# ---- it proxies; the access log is written by nobody
client c1 echo-clients -c 10.77.0.1:8080 -n 20 -p 4 || fail "clients through the proxy"
[ "$(kv ok "$T/c1.log")" = 20 ] || fail "not every client got through"
wait_for 3 sh -c "[ \$(wc -l <$T/log/access.log) -ge 20 ]" || fail "access log not written"
[ "$(perm "$T/log/access.log")" = "640 nobody" ] || fail "access log: $(perm "$T/log/access.log")"

# ---- the admin token
http() { # http PATH [AUTHORIZATION-HEADER-VALUE]: prints the status line and the headers
	in_lb python3 - "$ADMIN" "$@" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
s = socket.create_connection((host, int(port)), timeout=3)
auth = 'authorization: %s\r\n' % sys.argv[3] if len(sys.argv) > 3 else ''
s.sendall(('GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n' % (sys.argv[2], auth)).encode())
data = b''
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b'\r\n\r\n', 1)[0].decode().replace('\r\n', '\n'))
PY
}
out=$(http /metrics)
echo "$out" | head -1 | grep -q '^HTTP/1.1 401' || fail "no token: $out"
echo "$out" | grep -q '^WWW-Authenticate: Bearer realm="sluice"$' || fail "no WWW-Authenticate: $out"
out=$(http /metrics "Bearer $(new_token)")
echo "$out" | head -1 | grep -q '^HTTP/1.1 401' || fail "wrong token: $out"
echo "$out" | grep -q 'error="invalid_token"' || fail "wrong token not called invalid: $out"
out=$(http /metrics "Bearer ${TOKEN:0:20}")
echo "$out" | head -1 | grep -q '^HTTP/1.1 401' || fail "a prefix of the token: $out"
out=$(http /metrics "bearer  $TOKEN")
echo "$out" | head -1 | grep -q '^HTTP/1.1 200' || fail "right token: $out"
out=$(http /healthz)
echo "$out" | head -1 | grep -q '^HTTP/1.1 200' || fail "/healthz wants a token: $out"
grep -q 'admin: /metrics from 127.0.0.1: no token' "$T/sluiced.log" || fail "refusal not logged"
if in_lb "$SLUICECTL" -a "$ADMIN" status >"$T/ctl.log" 2>&1; then fail "sluicectl without a token"; fi
grep -q 'a token is required' "$T/ctl.log" || fail "sluicectl: $(cat "$T/ctl.log")"
SLUICE_ADMIN_TOKEN_FILE=$T/etc/token in_lb "$SLUICECTL" -a "$ADMIN" status >/dev/null ||
	fail "sluicectl with SLUICE_ADMIN_TOKEN_FILE"
in_lb "$SLUICECTL" -c "$T/etc/s.conf" backends >/dev/null || fail "sluicectl -c (admin.token_file)"
say "admin: 401 without or with a wrong token, 200 with it; /healthz open"

# ---- health checks pass the gate (SO_MARK, CAP_NET_ADMIN) while b1 is full
bg hold "$LB" "$TPEER" hold -c 10.77.0.1:8080 -n 5 --wait-close-ms 0 --timeout-ms 60000
HOLD=$LAST_PID
wait_for 10 grep -q ready "$T/hold.log" || fail "5 connections not up"
wait_for 5 ledger_eq 1 5 || fail "ledger $(ledger 1), expected 5"
p0=$(metric 'sluice_health_checks_total{result="pass"}')
sleep 1.2
p1=$(metric 'sluice_health_checks_total{result="pass"}')
say "b1 full (ledger 5 of 5): health checks passed $p0 -> $p1, b1 up: $(backend_metric sluice_backend_up app 1)"
[ "$p1" -ge $((p0 + 3)) ] || fail "health checks do not pass while b1 is full"
[ "$(backend_metric sluice_backend_up app 1)" = 1 ] || fail "b1 judged down while full"
kill "$HOLD"
wait_for 5 ledger_eq 1 0 || fail "ledger $(ledger 1) after the hold"

# ---- SIGHUP: a new limit, a new listener on a privileged port, a new token
chmod 600 "$T/etc/token"
OLD=$TOKEN
TOKEN=$(new_token)
echo "$TOKEN" >"$T/etc/token"
conf 7 ', { name = "low"; address = "10.77.0.1:443"; pool = "app"; }'
kill -HUP "$SLUICED_PID"
wait_for 5 grep -q 'generation 2 in service' "$T/sluiced.log" || fail "reload as nobody failed"
[ "$(bpf_col 1 MAX)" = 7 ] || fail "max_conns not 7 in the kernel after the reload"
client c443 echo-clients -c 10.77.0.1:443 -n 10 -p 2 || fail "listener on port 443 added by the reload"
[ "$(in_lb ss -Hltne 'sport = :443' | grep -c "uid:$NOBODY_UID ")" = 2 ] || fail "port 443 sockets"
out=$(http /metrics "Bearer $OLD")
echo "$out" | head -1 | grep -q '^HTTP/1.1 401' || fail "the old token still works after the reload"
ctl metrics >/dev/null || fail "the new token does not work"
[ "$(grep -c 'is readable by its group or others' "$T/sluiced.log")" = 1 ] || fail "warned again after chmod 600"
say "reload as nobody: max_conns 7, listener on :443, token rotated"
# a token file nobody cannot read: the reload fails, generation 2 keeps serving
chown root: "$T/etc/token"
kill -HUP "$SLUICED_PID"
wait_for 5 grep -q 'still serving generation 2' "$T/sluiced.log" || fail "reload did not fail"
grep -q "reload: admin.token_file $T/etc/token: Permission denied" "$T/sluiced.log" ||
	fail "no reason for the failed reload"
chown nobody: "$T/etc/token"
ctl metrics >/dev/null || fail "token lost by the failed reload"

# ---- the safeguard, as nobody
for what in connect4 xdp_v$LB; do
	before=$(metric sluice_bpf_reattach_total)
	"$BPFTOOL" link detach pinned "$PIN/link_$what" || fail "bpftool could not detach $what"
	wait_for 3 metric_eq sluice_bpf_reattach_total $((before + 1)) || fail "$what not re-attached"
	[ "$(perm "$PIN/link_$what")" = "600 nobody" ] || fail "new pin of $what: $(perm "$PIN/link_$what")"
done
grep -q 'safeguard: sl_connect4 was detached' "$T/sluiced.log" || fail "no log line for connect4"
grep -q "safeguard: SYN gate was removed from v$LB" "$T/sluiced.log" || fail "no log line for XDP"
[ "$(metric sluice_bpf_programs_attached)" = 4 ] || fail "not all programs attached"
[ "$("$BPFTOOL" cgroup show "$(cgroup_dir)" | grep -c sl_connect4)" = 1 ] || fail "sl_connect4 attached twice"
client c2 echo-clients -c 10.77.0.1:8080 -n 10 -p 10 --hold --io-timeout-ms 3000
[ "$(kv ok "$T/c2.log")" = 7 ] || fail "max_conns = 7 not enforced after re-attach"
say "safeguard as nobody: connect4 and XDP re-attached, limit holds"

# ---- clean stop: programs detached without privileges
kill -TERM "$SLUICED_PID"
wait_exit "$SLUICED_PID" 20 || fail "sluiced did not stop"
[ "$EXIT_STATUS" = 0 ] || fail "exit status $EXIT_STATUS"
grep -q 'programs detached' "$T/sluiced.log" || fail "programs not detached"
[ -z "$("$BPFTOOL" cgroup show "$(cgroup_dir)" 2>/dev/null | grep sl_)" ] || fail "cgroup programs left"
ip -n "$LB" link show "v$LB" | grep -q xdp && fail "XDP left on v$LB"
ls "$PIN" | grep -q '^link_' && fail "link pins left: $(ls "$PIN")"
[ -e "$PIN/backends" ] || fail "maps not pinned any more"
say "ok"
