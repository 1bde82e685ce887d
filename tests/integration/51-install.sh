#!/usr/bin/env bash
# `make install DESTDIR=D` lays out the expected tree, for the default
# PREFIX (/usr/local) and for PREFIX=/usr: exactly the binaries, man pages,
# unit, configuration, alert rules, dashboard and documentation, with their
# modes; the unit names the installed sluiced and configuration and passes
# `systemd-analyze verify`; the installed configuration passes `sluiced -t`;
# a second install keeps a configuration already there. The Makefile adds
# a packager's CFLAGS/CPPFLAGS/LDFLAGS to its own instead of losing them;
# `make check` installs nothing; a missing kernel BTF is explained.
# timeout: 120
. "$(dirname "$0")/lib.sh"
[ -x "$SLUICED" ] || fail "build first: make"
cd "$SRC" || fail "cd $SRC"
docs=(README.md LICENSE)
for d in docs/*.md; do [ -e "$d" ] && docs+=("$d"); done

# layout PREFIX: the files make install must put under DESTDIR, with modes
layout() {
	local p=${1#/}
	{
		echo "755 $p/sbin/sluiced"
		echo "755 $p/bin/sluicectl"
		echo "644 $p/share/man/man8/sluiced.8"
		echo "644 $p/share/man/man8/sluicectl.8"
		echo "644 $p/share/man/man5/sluice.conf.5"
		echo "644 $p/lib/systemd/system/sluiced.service"
		echo "644 etc/sluice/sluice.conf"
		echo "644 $p/share/sluice/alerts.yml"
		echo "644 $p/share/sluice/sluice-full.conf"
		echo "644 $p/share/sluice/grafana/sluice.json"
		for d in "${docs[@]}"; do echo "644 $p/share/doc/sluice/$(basename "$d")"; done
	} | sort
}

for prefix in /usr/local /usr; do
	root=$T/root$(echo "$prefix" | tr / _)
	make --no-print-directory install DESTDIR="$root" PREFIX="$prefix" >"$T/install.log" 2>&1 ||
		{ cat "$T/install.log"; fail "make install PREFIX=$prefix"; }
	(cd "$root" && find . -type f -printf '%m %P\n' | sort) >"$T/got.txt"
	layout "$prefix" >"$T/want.txt"
	diff -u "$T/want.txt" "$T/got.txt" || fail "make install PREFIX=$prefix: unexpected tree"
	say "PREFIX=$prefix: $(wc -l <"$T/got.txt") files, as expected"
	cmp -s "$root$prefix/sbin/sluiced" "$SLUICED" || fail "the installed sluiced is not build/sluiced"

	unit=$root$prefix/lib/systemd/system/sluiced.service
	grep -qx "ExecStart=$prefix/sbin/sluiced -c /etc/sluice/sluice.conf" "$unit" ||
		fail "unit: $(grep ^ExecStart= "$unit")"
	grep -qx "ExecStartPre=$prefix/sbin/sluiced -t -c /etc/sluice/sluice.conf" "$unit" ||
		fail "unit: $(grep ^ExecStartPre= "$unit")"
	if command -v systemd-analyze >/dev/null; then
		# verify wants ExecStart= to exist on this host: point it into DESTDIR
		mkdir -p "$T/unit"
		sed "s#$prefix/sbin/sluiced#$root$prefix/sbin/sluiced#g" "$unit" >"$T/unit/sluiced.service"
		MANPATH=$root$prefix/share/man systemd-analyze verify "$T/unit/sluiced.service" >"$T/verify.log" 2>&1
		rc=$?
		[ $rc -eq 0 ] && [ ! -s "$T/verify.log" ] || { cat "$T/verify.log"; fail "systemd-analyze verify (PREFIX=$prefix)"; }
	fi
	MANPATH=$root$prefix/share/man man -w sluice.conf >/dev/null || fail "man finds no installed sluice.conf(5)"
	"$root$prefix/sbin/sluiced" -t -c "$root/etc/sluice/sluice.conf" || fail "installed sluice.conf is not valid"
done

# an operator's configuration survives a reinstall
echo "# edited" >>"$root/etc/sluice/sluice.conf"
make --no-print-directory install DESTDIR="$root" PREFIX=/usr >"$T/install.log" 2>&1 || fail "second install"
grep -q "KEEP .*sluice.conf" "$T/install.log" || fail "the second install did not say it kept the configuration"
tail -1 "$root/etc/sluice/sluice.conf" | grep -qx "# edited" || fail "the second install replaced the configuration"

# a packager's flags are added to sluice's, not put in their place
make --no-print-directory -n -B B="$T/b" CFLAGS="-O1 -fstack-protector-strong" \
	CPPFLAGS="-D_FORTIFY_SOURCE=2" LDFLAGS="-Wl,-z,now" "$T/b/proxy/main.o" "$T/b/sluicectl" >"$T/n.txt" 2>&1
cc_line=$(grep -- "-c -o $T/b/proxy/main.o" "$T/n.txt")
for f in -std=gnu11 -D_GNU_SOURCE "-I$T/b" -O1 -fstack-protector-strong -D_FORTIFY_SOURCE=2; do
	[[ " $cc_line " == *" $f "* ]] || fail "compile line lacks $f: $cc_line"
done
ld_line=$(grep -- "-o $T/b/sluicectl " "$T/n.txt")
for f in -pthread -Wl,-z,now; do
	[[ " $ld_line " == *" $f "* ]] || fail "link line lacks $f: $ld_line"
done
say "CFLAGS/CPPFLAGS/LDFLAGS from the command line are added to sluice's own"

# make check: the unit tests, nothing installed
make --no-print-directory -n check >"$T/check.txt" 2>&1 || fail "make -n check"
grep -q "tests/run.sh unit/" "$T/check.txt" || fail "make check does not run the unit tests"
! grep -q "apt-get\|npm \| install " "$T/check.txt" || fail "make check would install something"

# no kernel BTF: the build says what to do
make --no-print-directory B="$T/nobtf" VMLINUX_BTF="$T/missing" "$T/nobtf/vmlinux.h" >"$T/btf.log" 2>&1 &&
	fail "a build without BTF succeeded"
grep -q "VMLINUX_BTF=" "$T/btf.log" && grep -q CONFIG_DEBUG_INFO_BTF "$T/btf.log" ||
	{ cat "$T/btf.log"; fail "no advice for a missing BTF"; }
say "without BTF: $(head -1 "$T/btf.log")"
say "ok"
