#!/usr/bin/env bash
# A reload with an invalid config (or one whose new listener cannot bind)
# changes nothing: the error is logged with file and line, counted, and
# serving goes on with the old config, existing connections untouched.
# timeout: 90
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner
write_conf "$T/s.conf" 2 least_conn 1
cp "$T/s.conf" "$T/good.conf"
sluiced_start "$T/s.conf"
in_lb "$TPEER" chatter -c 10.77.0.1:8080 -n 200 --duration-ms 6000 --interval-ms 100 --banner \
	>"$T/chatter.log" 2>&1 &
CHAT=$!
sleep 1

# 1: a syntax error
echo 'workers = ;' >>"$T/s.conf"
kill -HUP "$SLUICED_PID"
wait_for 5 sh -c "grep -q 'reload: failed' $T/sluiced.log" || fail "failed reload not logged"
grep -q "s.conf:[0-9]*: " "$T/sluiced.log" || fail "error does not name file and line"
# 2: valid syntax, bad content (unknown pool)
sed 's/pool = "app"/pool = "nope"/' "$T/good.conf" >"$T/s.conf"
kill -HUP "$SLUICED_PID"
wait_for 5 sh -c "[ \$(grep -c 'reload: failed' $T/sluiced.log) -ge 2 ]" || fail "second failure not logged"
# 3: a new listener on an address that cannot be bound (not on this host)
sed 's/^listeners = ( /listeners = ( { name = "x"; address = "192.0.2.1:80"; pool = "app"; }, /' \
	"$T/good.conf" >"$T/s.conf"
kill -HUP "$SLUICED_PID"
wait_for 5 sh -c "[ \$(grep -c 'reload: failed' $T/sluiced.log) -ge 3 ]" || fail "third failure not logged"
grep -q 'cannot listen on 192.0.2.1:80' "$T/sluiced.log" || fail "bind failure not explained"

[ "$(metric 'sluice_config_reloads_total{result="failure"}')" = 3 ] || fail "failures not counted"
[ "$(metric 'sluice_config_generation')" = 1 ] || fail "generation changed"
client probe echo-clients -c 10.77.0.1:8080 -n 50 --banner || fail "not serving after failed reloads"
wait "$CHAT" || { cat "$T/chatter.log"; fail "connections disturbed by failed reloads"; }
# and a good reload still works afterwards
cp "$T/good.conf" "$T/s.conf"
kill -HUP "$SLUICED_PID"
wait_for 5 sh -c "grep -q 'generation 2 in service' $T/sluiced.log" || fail "good reload after bad ones"
say "ok"
