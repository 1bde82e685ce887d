#!/usr/bin/env bash
# TLS termination: TLS 1.2 and 1.3 (openssl s_client and tests/tools/tlsclient),
# SNI picks the certificate, ECDSA or RSA by what the client accepts, ALPN,
# bulk data both ways intact, resumption by ticket and by session id, across
# a restart and across two sluiced sharing a ticket key file, key rotation on
# SIGHUP, TLS to a backend (verified, with SNI), and npm ws over wss.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
tls_certs
TLSC=$BUILD/tests/tools/tlsclient
# c.test: signed by a CA of ours, with that CA's OCSP response to staple
(
	cd "$T" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca \
		-keyout ca.key -out ca.crt &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=c.test \
		-addext subjectAltName=DNS:c.test -keyout c.key -out c.csr &&
	openssl x509 -req -in c.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-copy_extensions copy -out c.crt &&
	printf 'V\t%s\t\t%s\tunknown\t/CN=c.test\n' "$(date -u -d +2days +%y%m%d%H%M%SZ)" \
		"$(openssl x509 -in c.crt -noout -serial | cut -d= -f2)" >index.txt &&
	openssl ocsp -issuer ca.crt -cert c.crt -reqout req.der -no_nonce &&
	openssl ocsp -index index.txt -rsigner ca.crt -rkey ca.key -CA ca.crt -reqin req.der \
		-respout c.ocsp -ndays 1 && chmod 600 c.key
) >/dev/null 2>&1 || fail "cannot make the OCSP fixtures"

backend e1 1 echo --threads 2
bg wsb "$BE" "$BUILD/bench/backend" --mode ws --listen "$(be_addr 2):9000" \
	--ready "$T/wsb.ready" --max-seconds 100
wait_for 5 test -e "$T/wsb.ready" || fail "ws backend did not start"
bg wsp "$BE" "$BUILD/bench/backend" --mode ws --push-ms 50 --listen "$(be_addr 3):9000" \
	--ready "$T/wsp.ready" --max-seconds 100
wait_for 5 test -e "$T/wsp.ready" || fail "pushing ws backend did not start"

# LISTENERS_EXTRA: more listeners; PORT: the TLS listener's port
tls_conf() {
	cat >"$1" <<CONF
workers = 2;
admin = { address = "$2"; };
$BPF_CONF
drain = { period_s = 1; grace_s = 5; };
listeners = (
  { name = "tls"; address = "10.77.0.1:$3"; pool = "app";
    tls = { certificates = ( { cert = "$T/a-ec.crt"; key = "$T/a-ec.key"; },
                             { cert = "$T/a-rsa.crt"; key = "$T/a-rsa.key"; },
                             { cert = "$T/b-ec.crt"; key = "$T/b-ec.key"; },
                             { cert = "$T/c.crt"; key = "$T/c.key"; ocsp = "$T/c.ocsp"; } );
            ticket_keys = "$T/tickets.key"; alpn = [ "h2", "http/1.1" ]; }; },
  { name = "wss"; address = "10.77.0.1:$(($3 + 1))"; mode = "http"; pool = "ws";
    tls = { certificates = ( { cert = "$T/a-ec.crt"; key = "$T/a-ec.key"; } ); }; },
  { name = "plain"; address = "10.77.0.1:$(($3 + 2))"; pool = "via_tls"; },
  { name = "wssd"; address = "10.77.0.1:$(($3 + 3))"; mode = "http"; pool = "wsd";
    tls = { certificates = ( { cert = "$T/a-ec.crt"; key = "$T/a-ec.key"; } ); }; } );
pools = ( { name = "app"; servers = ( { address = "$(be_addr 1):9000"; } ); },
          { name = "ws"; servers = ( { address = "$(be_addr 2):9000"; } ); },
          { name = "wsd"; servers = ( { name = "wsp"; address = "$(be_addr 3):9000"; } ); },
          { name = "via_tls"; servers = ( { address = "10.77.0.1:$3"; } );
            tls = { verify = true; ca_file = "$T/a-ec.crt"; sni = "a.test"; }; } );
CONF
}
tls_conf "$T/s.conf" "$ADMIN" 8443
sluiced_start "$T/s.conf"
grep -q 'kernel TLS' "$T/sluiced.log" || fail "no log line on the TLS record path"
say "$(grep -o 'tls: kernel TLS[^:]*' "$T/sluiced.log")"

# versions, SNI, key types, ALPN
for v in tls1_2 tls1_3; do
	out=$(s_client $'ping\n' -connect 10.77.0.1:8443 -$v -servername b.test -alpn h2,http/1.1)
	grep -q "Protocol *: ${v/tls1_/TLSv1.}" <<<"$out" || fail "$v: $(grep Protocol <<<"$out")"
	grep -q "subject=CN *= *b.test" <<<"$out" || fail "$v: SNI b.test: $(grep subject= <<<"$out")"
	grep -q "ALPN protocol: h2" <<<"$out" || fail "$v: ALPN: $(grep ALPN <<<"$out")"
	grep -qx ping <<<"$out" || fail "$v: no echo"
	say "$v: SNI b.test, ALPN h2, echo ok"
done
out=$(s_client x -connect 10.77.0.1:8443 -servername a.test)
grep -q "subject=CN *= *a.test" <<<"$out" || fail "SNI a.test"
grep -q "Server public key is 256 bit" <<<"$out" || fail "a.test should be ECDSA by default"
out=$(s_client x -connect 10.77.0.1:8443 -tls1_2 -servername a.test -sigalgs RSA-PSS+SHA256:RSA+SHA256)
grep -q "Server public key is 2048 bit" <<<"$out" || fail "an RSA-only client should get the RSA certificate"
out=$(s_client x -connect 10.77.0.1:8443 -servername a.test -alpn http/1.1)
grep -q "ALPN protocol: http/1.1" <<<"$out" || fail "ALPN http/1.1"
say "ECDSA by default, RSA for an RSA-only client, ALPN by server preference"
out=$(s_client x -connect 10.77.0.1:8443 -servername c.test -status -CAfile "$T/ca.crt")
grep -q "OCSP Response Status: successful" <<<"$out" && grep -q "Cert Status: good" <<<"$out" ||
	fail "no OCSP staple for c.test: $(grep -i ocsp <<<"$out")"
grep -q "Verify return code: 0" <<<"$out" || fail "c.test does not verify against its CA"
out=$(s_client x -connect 10.77.0.1:8443 -servername a.test -status)
grep -q "OCSP response: no response sent" <<<"$out" || fail "a.test has no staple to send"
say "OCSP staple sent for c.test (Cert Status: good), none for a.test"

# bulk both ways, many connections
in_lb "$TLSC" -c 10.77.0.1:8443 -n 8 -p 8 --bytes 8000000 --sni a.test >"$T/bulk.log" ||
	fail "bulk: $(cat "$T/bulk.log")"
in_lb "$TLSC" -c 10.77.0.1:8443 -n 500 -p 100 --bytes 3000 --tls12 >"$T/many.log" ||
	fail "many: $(cat "$T/many.log")"
say "bulk 8 x 8 MB echoed intact; 500 TLS 1.2 connections ok"

# resumption: TLS 1.3 ticket, TLS 1.2 ticket, TLS 1.2 session id (cache)
in_lb "$TLSC" -c 10.77.0.1:8443 --tls13 --sess-out "$T/s13" >/dev/null || fail "first 1.3"
in_lb "$TLSC" -c 10.77.0.1:8443 --tls12 --sess-out "$T/s12" >/dev/null || fail "first 1.2"
in_lb "$TLSC" -c 10.77.0.1:8443 --tls12 --no-ticket --sess-out "$T/sid" >/dev/null || fail "first sid"
for s in "s13 --tls13" "s12 --tls12" "sid --tls12 --no-ticket"; do
	set -- $s
	in_lb "$TLSC" -c 10.77.0.1:8443 -n 20 --sess-in "$T/$1" "${@:2}" >"$T/r.log" || fail "resume $1"
	[ "$(kv resumed "$T/r.log")" = 20 ] || fail "$1: $(cat "$T/r.log")"
done
out=$(s_client x -connect 10.77.0.1:8443 -sess_in "$T/s13")
grep -q "^Reused, TLSv1.3" <<<"$out" || fail "s_client did not resume: $(grep -E '^(New|Reused)' <<<"$out")"
say "resumed: TLS 1.3 ticket, TLS 1.2 ticket, TLS 1.2 session id"
[ "$(metric 'sluice_tls_handshakes_total{listener="tls",kind="resumed"}')" -ge 61 ] ||
	fail "resumed handshakes not counted: $(ctl metrics | grep handshakes_total)"

# across a restart (same key file), and a second process sharing it
kill "$SLUICED_PID"
wait_exit "$SLUICED_PID" 10 || fail "sluiced did not stop"
sluiced_start "$T/s.conf"
in_lb "$TLSC" -c 10.77.0.1:8443 -n 5 --sess-in "$T/s13" >"$T/r.log" || fail "after restart"
[ "$(kv resumed "$T/r.log")" = 5 ] || fail "no resumption after a restart: $(cat "$T/r.log")"
tls_conf "$T/s2.conf" 127.0.0.1:9902 9443
sed -i "s|$BPF_CONF||" "$T/s2.conf"
echo 'bpf = { enabled = false; };' >>"$T/s2.conf"
bg sluiced2 "$LB" "$SLUICED" -c "$T/s2.conf"
wait_for 5 in_lb "$SLUICECTL" -a 127.0.0.1:9902 metrics || fail "second sluiced did not start"
in_lb "$TLSC" -c 10.77.0.1:9443 -n 5 --sess-in "$T/s13" >"$T/r.log" || fail "second process"
[ "$(kv resumed "$T/r.log")" = 5 ] || fail "no resumption on the second process: $(cat "$T/r.log")"
say "resumed after a restart and on a second sluiced sharing the key file"

# rotation: a new key on top still decrypts old tickets; dropping the old one ends them
cp "$T/tickets.key" "$T/old.key"
{ tls_ticket_key; cat "$T/old.key"; } >"$T/tickets.key"
kill -HUP "$SLUICED_PID"
wait_for 5 metric_eq 'sluice_config_reloads_total{result="success"}' 1 || fail "reload"
in_lb "$TLSC" -c 10.77.0.1:8443 -n 3 --sess-in "$T/s13" --sess-out "$T/s13new" >"$T/r.log" || fail "rotated"
[ "$(kv resumed "$T/r.log")" = 3 ] || fail "an old ticket should still resume: $(cat "$T/r.log")"
head -1 "$T/tickets.key" >"$T/new.key" && cp "$T/new.key" "$T/tickets.key"
kill -HUP "$SLUICED_PID"
wait_for 5 metric_eq 'sluice_config_reloads_total{result="success"}' 2 || fail "reload 2"
in_lb "$TLSC" -c 10.77.0.1:8443 -n 3 --sess-in "$T/s13" >"$T/r.log" || fail "retired"
[ "$(kv full "$T/r.log")" = 3 ] || fail "a retired key's ticket must not resume: $(cat "$T/r.log")"
in_lb "$TLSC" -c 10.77.0.1:8443 -n 3 --sess-in "$T/s13new" >"$T/r.log" || fail "renewed"
[ "$(kv resumed "$T/r.log")" = 3 ] || fail "a renewed ticket should resume: $(cat "$T/r.log")"
say "rotation on SIGHUP: older keys decrypt, retired keys do not, tickets are renewed"

# TLS to a backend: plain client -> sluiced -> (TLS, verified, SNI a.test) -> sluiced -> echo
client via echo-clients -c 10.77.0.1:8445 -n 50 -p 25 --size 20000 >/dev/null ||
	fail "TLS to the backend: $(cat "$T/via.log")"
say "plain -> TLS backend (verify on, SNI): 50 echoes ok"
sed -i 's|ca_file = "[^"]*"|ca_file = "'"$T"'/b-ec.crt"|' "$T/s.conf"
kill -HUP "$SLUICED_PID"
wait_for 5 metric_eq 'sluice_config_reloads_total{result="success"}' 3 || fail "reload 3"
client via2 echo-clients -c 10.77.0.1:8445 -n 3 --timeout-ms 5000 >/dev/null &&
	fail "a backend certificate the CA does not sign must fail verification"
grep -q "tls (backend)" "$T/sluiced.log" || fail "verification failure not logged"
say "a backend certificate from another CA is refused: $(grep -o 'tls (backend): [^"]*' "$T/sluiced.log" | head -1)"

# npm ws over wss, through an http-mode TLS listener to a WebSocket backend
command -v node >/dev/null && [ -d "$SRC/tests/ws/node_modules/ws" ] ||
	fail "node and npm ws missing: make deps installs them"
# a self-signed certificate: the client does not verify it
in_lb env NODE_TLS_REJECT_UNAUTHORIZED=0 node "$SRC/tests/ws/echo_client.js" \
	wss://10.77.0.1:8444/chat 50 20000 >"$T/wss.log" 2>&1 || fail "wss: $(cat "$T/wss.log")"
grep -q '"ok":50' "$T/wss.log" || fail "wss: $(cat "$T/wss.log")"
say "npm ws over wss: 50 echoes ok"
say "metrics: $(ctl metrics | grep -E '^sluice_tls_handshakes_total' | tr '\n' ' ')"

# a drained backend's wss clients get Close 1012 between two messages, encrypted
bg drain "$LB" env NODE_TLS_REJECT_UNAUTHORIZED=0 node "$SRC/tests/ws/drain_client.js" \
	wss://10.77.0.1:8446/chat 20 20000
DRAIN=$LAST_PID
wait_for 10 grep -q ready "$T/drain.log" || fail "wss clients not up: $(cat "$T/drain.log")"
sleep 0.5
ctl drain wsp >/dev/null || fail "sluicectl drain wsp"
wait_exit "$DRAIN" 20 || fail "wss clients were not closed"
python3 -c "
import json, sys
d = json.loads(open('$T/drain.log').read().splitlines()[-1])
sys.exit(0 if d['opened'] == 20 and d['codes'].get('1012') == 20 and d['messages'] > 20 else 1)
" || fail "wss drain: $(tail -1 "$T/drain.log")"
say "wss drain: $(tail -1 "$T/drain.log")"
