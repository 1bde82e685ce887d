#!/usr/bin/env bash
# Handshake budgets that learn (full_per_s = "auto", resumed_per_s = "auto"):
# a flood of 3000 full TLS handshakes at once, and 200 clients resuming a
# session in the middle of it. sluice times its own handshakes and steers
# the full-handshake budget by them, so the flood is let in at what the
# workers can do without the handshakes in progress slowing down: none
# that started times out (a client whose handshake_ms would run out before
# a handshake could be done is told so rather than started), every
# full-handshake client gets in within handshake_ms (15 s, queue time
# included), and the resuming clients, on a budget of their own, get in at
# once rather than behind the flood.
# Under SAN=1 (crypto several times slower) it is 1000 full handshakes.
# timeout: 150
. "$(dirname "$0")/lib.sh"
netns_setup
tls_certs
TLSC=$BUILD/tests/tools/tlsclient
N=3000
san_build && N=1000
backend e1 1 echo --threads 2
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { handshake_ms = 15000; backend_wait_ms = 30000; };
listeners = (
  { name = "flood"; address = "10.77.0.1:8443"; pool = "app";
    tls = { certificates = ( { cert = "$T/a-ec.crt"; key = "$T/a-ec.key"; } );
            ticket_keys = "$T/tickets.key";
            full_per_s = "auto"; resumed_per_s = "auto"; queue_max = 5000; }; } );
pools = ( { name = "app"; servers = ( { address = "$(be_addr 1):9000"; rate = 0; } ); } );
CONF
sluiced_start "$T/s.conf"
m() { metric "$1"; }
in_lb "$TLSC" -c 10.77.0.1:8443 --sess-out "$T/sess" >/dev/null || fail "first handshake"
sleep 0.2
bg full "$LB" "$TLSC" -c 10.77.0.1:8443 -n "$N" -p "$N" --timeout-ms 60000
FULL=$LAST_PID
sleep 0.3
in_lb "$TLSC" -c 10.77.0.1:8443 -n 200 -p 200 --sess-in "$T/sess" >"$T/res.log" ||
	fail "resuming clients: $(cat "$T/res.log")"
wait_exit "$FULL" 90 || fail "full-handshake clients did not finish"
say "full:    $(cat "$T/full.log")"
say "resumed: $(cat "$T/res.log")"
grep 'learn: listener' "$T/sluiced.log" | head -10 | sed 's/^/    /'
timeouts=$(m 'sluice_tls_handshake_failures_total{listener="flood",reason="timeout"}')
closed=$(m 'sluice_tls_handshake_failures_total{listener="flood",reason="closed"}')
refused=$(m 'sluice_tls_handshake_refused_total{listener="flood",kind="full"}')
rate=$(m 'sluice_tls_handshake_rate{listener="flood",kind="full"}')
say "full handshakes learned at $rate/s; timed out $timeouts, refused $refused, clients gone $closed"
[ "$EXIT_STATUS" = 0 ] || fail "full-handshake clients failed"
[ "$(kv ok "$T/full.log")" = "$N" ] || fail "$(kv ok "$T/full.log") of $N full handshakes"
[ "$timeouts" = 0 ] && [ "$refused" = 0 ] || fail "handshakes timed out or were refused"
[ "$(kv resumed "$T/res.log")" = 200 ] || fail "every resuming client should resume"
awk -v r="$(kv hs_max_ms "$T/res.log")" -v f="$(kv hs_p50_ms "$T/full.log")" 'BEGIN { exit !(r * 2 < f) }' ||
	fail "resuming clients waited behind the full ones (max $(kv hs_max_ms "$T/res.log") ms vs full p50 $(kv hs_p50_ms "$T/full.log") ms)"
say "ok"
