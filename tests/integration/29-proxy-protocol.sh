#!/usr/bin/env bash
# PROXY protocol towards backends: one pool with proxy_protocol = "v2", one
# with "v1". The backends (tpeer --proxy) take a header at the start of every
# connection and answer "proxy SRCIP SRCPORT DSTIP DSTPORT"; each client checks
# that line against its own socket (source: the client's address and port,
# destination: the listener's), then its echo rounds. A server of the v2 pool
# refuses connects, so clients sent there first are retried: the retried
# connect must carry its header too. The backends count headers by version
# and reject a connection without one (checked first, so the counts mean
# something).
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
backend b1 1 banner --proxy
backend b2 2 banner --proxy
# b3 (10.77.0.13:9000) never listens: connects are refused

# a backend really wants the header: plain bytes are turned away
in_lb "$TPEER" echo-clients -c "$(be_addr 1):9000" -n 1 --timeout-ms 5000 >"$T/plain.log" 2>&1 &&
	fail "b1 served a client that sent no PROXY header"
wait_for 3 stat_eq b1 proxy_bad 1 || fail "b1 did not count the connection without a header"

cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = (
  { name = "front2"; address = "10.77.0.1:8080"; mode = "tcp"; pool = "pp2"; },
  { name = "front1"; address = "10.77.0.1:8081"; mode = "tcp"; pool = "pp1"; }
);
pools = (
  { name = "pp2"; balance = "round_robin"; retries = 2; proxy_protocol = "v2";
    servers = ( { name = "b3"; address = "$(be_addr 3):9000"; },
                { name = "b1"; address = "$(be_addr 1):9000"; } ); },
  { name = "pp1"; proxy_protocol = "v1";
    servers = ( { name = "b2"; address = "$(be_addr 2):9000"; } ); }
);
CONF
"$SLUICED" -t -c "$T/s.conf" >"$T/check.log" 2>&1 || { cat "$T/check.log"; fail "config rejected"; }
sluiced_start "$T/s.conf"

client v2 echo-clients -c 10.77.0.1:8080 -n 200 -p 20 --rounds 3 --size 1000 --banner \
	--proxy-line --io-timeout-ms 3000 --timeout-ms 30000 ||
	fail "clients through the v2 pool failed"
[ "$(kv ok "$T/v2.log")" = 200 ] || fail "not every client of the v2 pool was served"
[ "$(kv backend.b1 "$T/v2.log")" = 200 ] || fail "v2 pool clients should all land on b1"
fails=$(backend_metric sluice_backend_connect_failures_total pp2 3)
say "connect failures on b3 (retried on b1): ${fails:-0}"
[ "${fails:-0}" -ge 1 ] || fail "no connect was retried: the retry path went untested"

client v1 echo-clients -c 10.77.0.1:8081 -n 200 -p 20 --rounds 3 --size 1000 --banner \
	--proxy-line --io-timeout-ms 3000 --timeout-ms 30000 ||
	fail "clients through the v1 pool failed"
[ "$(kv ok "$T/v1.log")" = 200 ] || fail "not every client of the v1 pool was served"
[ "$(kv backend.b2 "$T/v1.log")" = 200 ] || fail "v1 pool clients should all land on b2"

# one header per backend connection, of the pool's version, none malformed
wait_for 3 stat_eq b1 proxy_v2 200 || fail "b1 parsed $(stat b1 proxy_v2) v2 headers, want 200"
wait_for 3 stat_eq b2 proxy_v1 200 || fail "b2 parsed $(stat b2 proxy_v1) v1 headers, want 200"
[ "$(stat b1 proxy_v1)" = 0 ] || fail "b1 got v1 headers from the v2 pool"
[ "$(stat b2 proxy_v2)" = 0 ] || fail "b2 got v2 headers from the v1 pool"
[ "$(stat b1 proxy_bad)" = 1 ] || fail "b1 saw $(stat b1 proxy_bad) bad headers (1 was ours)"
[ "$(stat b2 proxy_bad)" = 0 ] || fail "b2 saw $(stat b2 proxy_bad) bad headers"
wait_for 3 metric_eq sluice_connections_active 0 ||
	fail "connections still active after all clients closed"
say "ok"
