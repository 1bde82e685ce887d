#!/usr/bin/env bash
# The command lines: `sluiced -t -c FILE` validates (0 good, 1 bad, errors
# naming file:line:setting), bad arguments are refused with a usage message,
# `sluicectl check` agrees with `sluiced -t`, sluicectl reports an unreachable
# daemon clearly.
# timeout: 30
. "$(dirname "$0")/lib.sh"
cd "$SRC"
# `sluiced -t` loads the files a config names (certificates, keys, ticket keys):
# a good config naming files under /etc/sluice/ is checked with them made in $T.
with_files() {
	local f=$1 p b stem alg
	grep -q '/etc/sluice/' "$f" || { echo "$f"; return; }
	mkdir -p "$T/etc"
	for p in $(grep -o '/etc/sluice/[A-Za-z0-9._-]*' "$f" | sort -u); do
		b=$(basename "$p") stem=${b%.*}
		case $b in
		tickets.key) openssl rand 80 | base64 -w0 >"$T/etc/$b" ;;
		*.crt | *.pem)
			alg="ec -pkeyopt ec_paramgen_curve:P-256"
			[[ $stem == *rsa* ]] && alg=rsa:2048
			# shellcheck disable=SC2086
			openssl req -x509 -newkey $alg -nodes -days 2 -subj "/CN=$stem.test" \
				-keyout "$T/etc/$stem.key" -out "$T/etc/$b" 2>/dev/null || fail "openssl req" ;;
		esac
	done
	chmod 600 "$T"/etc/*
	sed "s|/etc/sluice/|$T/etc/|g" "$f" >"$T/files.conf"
	echo "$T/files.conf"
}
n=0
for f in tests/config/good/*.conf; do
	g=$(with_files "$f")
	"$SLUICED" -t -c "$g" >"$T/out" 2>&1 || { cat "$T/out"; fail "sluiced -t rejects good $f"; }
	grep -q "configuration is valid" "$T/out" || fail "no confirmation for $f"
	"$SLUICECTL" check "$g" >/dev/null 2>&1 || fail "sluicectl check rejects good $f"
	n=$((n + 1))
done
# and a file it names that is missing or not what it should be is an error with its line
g=$(with_files tests/config/good/tls.conf)
rm "$T/etc/feed.crt"
"$SLUICED" -t -c "$g" >"$T/out" 2>&1 && fail "a missing certificate was accepted"
grep -q "^$g:12: listeners\[1\].tls.certificates\[0\].cert: cannot read" "$T/out" ||
	fail "missing certificate: $(cat "$T/out")"
cp "$T/etc/chat-ec.key" "$T/etc/feed.crt"
"$SLUICED" -t -c "$g" >"$T/out" 2>&1 && fail "a key given as certificate was accepted"
echo garbage >"$T/etc/tickets.key"
"$SLUICED" -t -c "$g" >"$T/out" 2>&1 && fail "a bad ticket key file was accepted"
grep -q "listeners\[0\].tls.ticket_keys" "$T/out" || fail "bad ticket key file: $(cat "$T/out")"

for f in tests/config/bad/*.conf; do
	"$SLUICED" -t -c "$f" >"$T/out" 2>&1 && fail "sluiced -t accepts bad $f"
	[ $? -eq 1 ] || fail "exit status for bad $f is not 1"
	grep -q "^$f:[0-9][0-9]*: " "$T/out" || { cat "$T/out"; fail "error for $f lacks FILE:LINE:"; }
	"$SLUICECTL" check "$f" >/dev/null 2>&1 && fail "sluicectl check accepts bad $f"
	n=$((n + 1))
done
say "$n config files judged alike by sluiced -t and sluicectl check"

"$SLUICED" -t -c /nonexistent.conf >"$T/out" 2>&1 && fail "missing file accepted"
grep -qi "nonexistent.conf" "$T/out" || fail "missing file not named: $(cat "$T/out")"
for args in "" "-c" "-x" "-c a b" "-l loud -c tests/config/good/minimal.conf"; do
	# shellcheck disable=SC2086
	"$SLUICED" $args >"$T/out" 2>&1 && fail "sluiced accepted: '$args'"
	grep -qi "usage\|unknown\|option" "$T/out" || fail "no explanation for '$args': $(cat "$T/out")"
done
"$SLUICECTL" frobnicate >"$T/out" 2>&1; [ $? -eq 2 ] || fail "sluicectl unknown command status"
"$SLUICECTL" -a 127.0.0.1:1 status >"$T/out" 2>&1 && fail "status with no daemon succeeded"
grep -q "127.0.0.1:1" "$T/out" || fail "unreachable daemon not named: $(cat "$T/out")"
"$SLUICECTL" -a nonsense status >"$T/out" 2>&1; [ $? -eq 2 ] || fail "bad admin address status"
"$SLUICED" -V | grep -q '^sluiced ' || fail "-V"
say "ok"
