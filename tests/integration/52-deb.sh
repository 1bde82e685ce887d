#!/usr/bin/env bash
# `make deb` builds build/sluice_VERSION_ARCH.deb with dpkg-buildpackage
# (here with DEB_BUILD_OPTIONS=nocheck: the suite runs the unit tests); lintian reports no error
# and no warning; the maintainer scripts stop sluiced on removal only (not
# on upgrade); `dpkg -i` installs it: the sluice system user is made,
# /etc/sluice/sluice.conf is a conffile, the unit is installed but neither
# enabled nor started (no sluiced runs from the package), `sluiced -t` passes
# on the installed configuration, `systemd-analyze verify` on the installed
# unit, man renders every page; the README's five-minute configuration runs
# on the installed sluiced as user sluice (backends up, clients through, a
# reload); `dpkg -r` then `dpkg -P` remove every file.
# Whatever the test added (the package, the user) is removed on exit.
# timeout: 240
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
for t in dpkg-buildpackage dh lintian man; do
	command -v $t >/dev/null || fail "$t missing: make deps installs it"
done
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'ok installed'; then
	fail "a sluice package is installed on this host already; this test would replace it"
fi
user_existed=0
getent passwd sluice >/dev/null && user_existed=1

deb_cleanup() {
	local rc=$? pid n alive
	# the processes first: userdel refuses a user who still runs one
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for n in $(seq 30); do
		alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
	wait 2>/dev/null
	dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'installed\|config-files' &&
		dpkg -P sluice >/dev/null 2>&1
	if [ $user_existed -eq 0 ] && getent passwd sluice >/dev/null; then
		userdel sluice 2>/dev/null
		getent group sluice >/dev/null && groupdel sluice 2>/dev/null
	fi
	(exit $rc)
	cleanup
}
trap deb_cleanup EXIT

# dpkg waits for nobody: retry while another dpkg or apt holds its lock
dpkg_retry() {
	local i
	for i in $(seq 60); do
		dpkg "$@" >"$T/dpkg.log" 2>&1 && return 0
		grep -q 'lock' "$T/dpkg.log" || { cat "$T/dpkg.log"; return 1; }
		sleep 1
	done
	cat "$T/dpkg.log"
	return 1
}

cd "$SRC" || fail "cd $SRC"
start=$(date +%s)
# nocheck: the unit tests the package build would run are the suite's own
DEB_BUILD_OPTIONS=nocheck make --no-print-directory deb >"$T/make-deb.log" 2>&1 ||
	{ cat "$T/make-deb.log"; fail "make deb"; }
deb=$(sed -n 's/^  DEB     //p' "$T/make-deb.log")
version=$(dpkg-parsechangelog -S Version)
[ "$deb" = "build/sluice_${version}_$(dpkg --print-architecture).deb" ] && [ -s "$deb" ] ||
	fail "expected build/sluice_${version}_ARCH.deb, got '$deb'"
say "make deb: $deb in $(($(date +%s) - start)) s ($(command stat -c %s "$deb") bytes)"

lintian --fail-on error,warning "$deb" >"$T/lintian.log" 2>&1
rc=$?
cat "$T/lintian.log"
[ $rc -eq 0 ] || fail "lintian: errors or warnings"
! grep -q '^[EW]: ' "$T/lintian.log" || fail "lintian: errors or warnings"
say "lintian: no error, no warning"

# an upgrade neither stops nor restarts a running sluiced (closing every
# connection is the operator's call); removal stops it
dpkg-deb -e "$deb" "$T/control" || fail "dpkg-deb -e"
! grep -qs 'stop\|restart' "$T/control/preinst" "$T/control/postinst" ||
	fail "the package stops or restarts sluiced on install or upgrade"
grep -q '"$1" = "remove" ] && .*' "$T/control/prerm" && grep -q "deb-systemd-invoke stop 'sluiced.service'" "$T/control/prerm" ||
	fail "the package does not stop sluiced on removal"

# ---- install
dpkg_retry -i "$deb" || fail "dpkg -i"
pw=$(getent passwd sluice) || fail "no sluice user after install"
IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
say "user: $pw"
[ "$uid" -lt 1000 ] || fail "sluice is not a system user (uid $uid)"
[ "$home" = /nonexistent ] || fail "home $home"
case $shell in */nologin|*/false) ;; *) fail "login shell $shell" ;; esac
dpkg-query -W -f='${Conffiles}\n' sluice | grep -q '^ /etc/sluice/sluice.conf ' ||
	fail "/etc/sluice/sluice.conf is not a conffile"
[ -x /usr/sbin/sluiced ] && [ -x /usr/bin/sluicectl ] || fail "binaries not installed"
unit=/lib/systemd/system/sluiced.service
[ -f "$unit" ] || fail "unit not installed"
ls /etc/systemd/system/*.wants/sluiced.service 2>/dev/null && fail "the package enabled sluiced"
for p in /proc/[0-9]*; do
	[ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/sluiced ] && fail "the package started sluiced (pid ${p#/proc/})"
done
say "installed; the unit is neither enabled nor started"

/usr/sbin/sluiced -t -c /etc/sluice/sluice.conf || fail "sluiced -t on the installed configuration"
/usr/bin/sluicectl check /etc/sluice/sluice.conf >/dev/null || fail "sluicectl check"
/usr/sbin/sluiced -V | grep -q '^sluiced ' || fail "sluiced -V"
systemd-analyze verify "$unit" >"$T/verify.log" 2>&1
rc=$?
cat "$T/verify.log"
[ $rc -eq 0 ] && [ ! -s "$T/verify.log" ] || fail "systemd-analyze verify $unit"
for page in sluiced.8 sluicectl.8 sluice.conf.5; do
	f=$(man -w "${page%.*}" 2>/dev/null | tr ':' '\n' | grep "/usr/share/man/man${page##*.}/$page.gz")
	[ -n "$f" ] || fail "man -w finds no installed $page"
	MANWIDTH=80 man --warnings -l "$f" >"$T/page.txt" 2>"$T/warn.log" || fail "man -l $f"
	[ ! -s "$T/warn.log" ] && [ "$(wc -l <"$T/page.txt")" -gt 40 ] || { cat "$T/warn.log"; fail "man -l $f"; }
done
say "sluiced -t, systemd-analyze verify and man -l pass on the installed files"
for f in /usr/share/sluice/alerts.yml /usr/share/sluice/grafana/sluice.json /usr/share/sluice/sluice-full.conf; do
	[ -s "$f" ] || fail "$f missing"
done

# ---- the README's five minutes, on the installed package: its step 2
# configuration (addresses moved into this test's hosts; its own pin path
# and cgroup, as no systemd unit holds one here), /usr/sbin/sluiced started
# as the unit's ExecStart does, dropping to the package's user; sluicectl
# sees both backends, clients get through, a reload and `set` work
netns_setup
for i in 1 2; do
	bg "app$i" "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr $i):9000" --ready "$T/app$i.ready"
	wait_for 5 test -e "$T/app$i.ready" || fail "backend app$i did not start"
done
python3 - "$SRC/README.md" >"$T/step2.conf" <<'PY' || fail "no step 2 configuration in the README"
import re, sys
m = re.search(r"2\. \*\*Configure\.\*\*.*?```\n(.*?)```", open(sys.argv[1]).read(), re.S)
print(re.sub(r"^ {3}", "", m.group(1), flags=re.M), end="")
PY
sed -i 's/10\.0\.0\.1\([12]\):9000/10.77.0.1\1:9000/g' "$T/step2.conf"
conf=/etc/sluice/sluice.conf
grep -v '^listeners\|^pools\|^  \|^);\|^bpf' "$conf" >"$T/head.conf"
{ cat "$T/head.conf"; echo "$BPF_CONF"; cat "$T/step2.conf"; } >"$conf"
/usr/sbin/sluiced -t -c "$conf" >/dev/null || { cat "$conf"; fail "README step 2 does not check out"; }
bg installed "$LB" /usr/sbin/sluiced -c "$conf"
wait_for 5 in_lb /usr/bin/sluicectl backends || { cat "$T/installed.log"; fail "the installed sluiced did not start"; }
SLUICECTL=/usr/bin/sluicectl
ctl backends >"$T/backends.txt"
cat "$T/backends.txt"
grep -q "app1 .*10.77.0.11:9000 .* up " "$T/backends.txt" && grep -q "app2 .*10.77.0.12:9000 .* up " "$T/backends.txt" ||
	fail "sluicectl backends does not show app1 and app2 up"
pid=$(pgrep -f "^/usr/sbin/sluiced -c $conf" | head -1)
[ "$(awk '$1 == "Uid:" { print $2 }' "/proc/$pid/status")" = "$uid" ] || fail "the installed sluiced did not drop to user sluice"
# mode "http": 50 HTTP requests, each on a connection of its own
in_lb python3 -c '
import urllib.request
for _ in range(50):
    r = urllib.request.urlopen("http://10.77.0.1:8080/", timeout=5)
    assert r.status == 200, r.status
    r.read()
' || fail "HTTP clients through the installed sluiced"
sed -i 's/max_conns = 10000; },/max_conns = 5000; },/' "$conf"
ctl reload | grep -q 'generation 2 in service' || fail "reload as user sluice"
ctl set app1 rate=10 | grep -q 'until the next reload' || fail "sluicectl set"
say "the installed sluiced runs as sluice (uid $uid): backends up, 50 HTTP requests through, reload and set work"
kill "$pid"
wait_exit "$pid" 10 || fail "the installed sluiced did not stop on SIGTERM"

# ---- remove, then purge
dpkg -L sluice | while read -r f; do [ -f "$f" ] && echo "$f"; done >"$T/files.txt"
dpkg_retry -r sluice || fail "dpkg -r"
left=$(grep -v '^/etc/' "$T/files.txt" | while read -r f; do [ -e "$f" ] && echo "$f"; done)
[ -z "$left" ] || fail "dpkg -r left: $left"
[ -f /etc/sluice/sluice.conf ] || fail "dpkg -r removed the conffile (only a purge should)"
dpkg_retry -P sluice || fail "dpkg -P"
[ ! -e /etc/sluice ] || fail "dpkg -P left /etc/sluice"
say "dpkg -r removed $(wc -l <"$T/files.txt") files, dpkg -P the configuration"
say "ok"
