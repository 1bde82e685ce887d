#!/usr/bin/env bash
# examples/sluiced.service: `systemd-analyze verify` finds nothing to say
# about it; its stop timeout covers the default drain; and sluiced does its
# part under the unit's terms without systemd running: started (twice, the
# second time finding the pins its user owns) with only the unit's
# CapabilityBoundingSet, no_new_privs and LimitMEMLOCK, it passes its
# ExecStartPre check, says READY=1 on $NOTIFY_SOCKET once serving, reloads on
# the unit's ExecReload, says STOPPING=1 on SIGTERM and exits 0.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
id nobody >/dev/null 2>&1 || skip "needs a user nobody"
UNIT=$SRC/examples/sluiced.service
backend e1 1 echo

# unit KEY: its value in the unit file (the last one wins, as in systemd)
unit() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }

# ---- the file itself
verified=0
if command -v systemd-analyze >/dev/null; then
	# verify checks that ExecStart= exists: point it at this build
	mkdir -p "$T/unit"
	sed -e "s#/usr/local/sbin/sluiced#$SLUICED#g" -e "s#/etc/sluice/sluice.conf#$T/s.conf#g" \
		"$UNIT" >"$T/unit/sluiced.service"
	: >"$T/s.conf"
	# and that its Documentation= man pages are there: the tree's, as installed
	mkdir -p "$T/man/man5" "$T/man/man8"
	cp "$SRC"/man/*.5 "$T/man/man5/"; cp "$SRC"/man/*.8 "$T/man/man8/"
	MANPATH=$T/man systemd-analyze verify "$T/unit/sluiced.service" >"$T/verify.log" 2>&1
	rc=$?
	cat "$T/verify.log"
	# it exits 0 on unknown keys and bad values too: any output is a finding
	[ $rc -eq 0 ] && [ ! -s "$T/verify.log" ] || fail "systemd-analyze verify complains"
	if systemd-analyze security --offline=yes "$T/unit/sluiced.service" >"$T/security.log" 2>&1; then
		say "$(grep 'Overall exposure' "$T/security.log")"
	fi
	verified=1
fi
[ "$(unit Type)" = notify ] || fail "Type=$(unit Type)"
[ "$(unit KillSignal)" = SIGTERM ] || fail "KillSignal=$(unit KillSignal)"
[ "$(unit NoNewPrivileges)" = yes ] || fail "NoNewPrivileges=$(unit NoNewPrivileges)"
[ -z "$(unit AmbientCapabilities)" ] || fail "AmbientCapabilities=$(unit AmbientCapabilities)"
# drain.period_s + drain.grace_s by default: 30 + 60
[ "$(unit TimeoutStopSec)" -gt 90 ] || fail "TimeoutStopSec=$(unit TimeoutStopSec) cuts the default drain short"
caps=$(unit CapabilityBoundingSet)
[ -n "$caps" ] || fail "no CapabilityBoundingSet"
bset="-all"
for c in $caps; do
	c=${c#CAP_}
	bset="$bset,+${c,,}"
done
memlock=$(unit LimitMEMLOCK)
[ "$memlock" = infinity ] && memlock=unlimited
# raising a hard limit needs CAP_SYS_RESOURCE, which this host may not give
if ! prlimit --memlock="$memlock" true 2>/dev/null; then
	say "LimitMEMLOCK=$(unit LimitMEMLOCK) cannot be applied here (no CAP_SYS_RESOURCE): keeping $(ulimit -l) KiB"
	memlock=$(($(ulimit -l) * 1024))
fi

# ---- sluiced under the unit's terms
mkdir -p "$T/etc"
chmod 711 "$T"
cat >"$T/etc/s.conf" <<CONF
workers = 2;
user = "nobody";
admin = { address = "$ADMIN"; };
$BPF_CONF
drain = { period_s = 1; grace_s = 1; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app";
                syn_gate = { rate = 10000; interfaces = ["v$LB"]; }; } );
pools = ( { name = "app"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 50; } ); } );
CONF
chown -R nobody: "$T/etc"
chmod 700 "$T/etc"

# a stand-in for systemd's notify socket
bg notify "$LB" python3 -u -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)   # like /run/systemd/notify: sluiced is nobody by then
print("listening", flush=True)
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)
' "$T/notify.sock"
wait_for 5 grep -q listening "$T/notify.log" || fail "notify listener"

for run in 1 2; do
	say "run $run: bounding set $bset, no_new_privs, memlock $memlock"
	# ExecStartPre=
	in_lb "$SLUICED" -t -c "$T/etc/s.conf" || fail "ExecStartPre (sluiced -t) fails"
	: >"$T/notify.log"
	bg "sluiced$run" "$LB" env NOTIFY_SOCKET="$T/notify.sock" \
		prlimit --memlock="$memlock" -- \
		setpriv --bounding-set="$bset" --inh-caps=-all --no-new-privs \
		"$SLUICED" -c "$T/etc/s.conf"
	PID=$LAST_PID
	wait_for 10 grep -q 'READY=1' "$T/notify.log" || fail "no READY=1 (log: $(tail -3 "$T/sluiced$run.log"))"
	client "c$run" echo-clients -c 10.77.0.1:8080 -n 20 -p 4 || fail "not serving after READY=1"
	[ "$(awk '$1 == "Uid:" { print $2 }' /proc/"$PID"/status)" = "$(id -u nobody)" ] ||
		fail "did not drop to nobody"
	# ExecReload=
	eval "$(unit ExecReload | sed "s/\$MAINPID/$PID/")" || fail "ExecReload"
	wait_for 5 grep -q 'generation 2 in service' "$T/sluiced$run.log" || fail "reload"
	[ "$(metric sluice_bpf_programs_attached)" = 4 ] || fail "programs not attached"
	kill -TERM "$PID"
	wait_exit "$PID" 20 || fail "did not stop"
	[ "$EXIT_STATUS" = 0 ] || fail "exit status $EXIT_STATUS"
	grep -q 'STOPPING=1' "$T/notify.log" || fail "no STOPPING=1"
	grep -q 'programs detached' "$T/sluiced$run.log" || fail "programs not detached"
	say "run $run: notify said: $(tr '\n' ' ' <"$T/notify.log")"
done
[ $verified = 1 ] || skip "systemd-analyze missing: the unit file was not verified (the rest passed)"
say "ok"
