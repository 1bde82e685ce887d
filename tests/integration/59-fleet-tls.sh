#!/usr/bin/env bash
# A fleet whose Redis speaks only TLS and wants a password: two hosts reach
# it over TLS with the CA in their config (one verifying the server's name,
# the other the address it connects to), authenticate from a
# password file, use database 3, and coordinate. A third host whose config
# names the wrong server name is refused by certificate verification: it
# logs why, stays on its static part, and never falls back to plain text.
# timeout: 90
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || skip "redis-server not installed (make deps installs it)"
netns_setup
REDIS=$(be_addr 9)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=redis.test" -addext "subjectAltName=DNS:redis.test,IP:$REDIS" \
	-keyout "$T/redis.key" -out "$T/redis.crt" 2>/dev/null || fail "openssl req"
echo "s3cret-pass" >"$T/redis.pass"
chmod 600 "$T/redis.key" "$T/redis.pass"
bg redis "$BE" redis-server --bind "$REDIS" --port 0 --tls-port 6380 --tls-cert-file "$T/redis.crt" \
	--tls-key-file "$T/redis.key" --tls-ca-cert-file "$T/redis.crt" --tls-auth-clients no \
	--requirepass s3cret-pass --save "" --appendonly no --dir "$T"
wait_for 5 in_be redis-cli -h "$REDIS" -p 6380 --tls --cacert "$T/redis.crt" --sni redis.test \
	-a s3cret-pass --no-auth-warning ping || fail "redis-server (TLS) did not start"

host_conf() { # FILE NAME ADDR BPF TLS_NAME ("": verify the address)
	local name=""
	[ -n "$5" ] && name="name = \"$5\";"
	cat >"$1" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$4
fleet = { redis = "$REDIS:6380"; host = "$2"; database = 3; password_file = "$T/redis.pass";
          tls = { ca = "$T/redis.crt"; $name };
          heartbeat_ms = 200; lease_ms = 2000; hosts = 3; };
listeners = ( { name = "front"; address = "$3:8080"; pool = "app"; } );
pools = ( { name = "app";
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 90; rate = 90; } ); } );
CONF
}
lb_host 2; NS2=$HOST_NS ADDR2=$HOST_ADDR BPF2=$HOST_BPF_CONF
lb_host 3; NS3=$HOST_NS ADDR3=$HOST_ADDR BPF3=$HOST_BPF_CONF
host_conf "$T/h1.conf" h1 10.77.0.1 "$BPF_CONF" redis.test
host_conf "$T/h2.conf" h2 "$ADDR2" "$BPF2" ""
host_conf "$T/h3.conf" h3 "$ADDR3" "$BPF3" wrong.test
sluiced_start "$T/h1.conf"; H1=$SLUICED_PID
bg sluiced2 "$NS2" "$SLUICED" -c "$T/h2.conf"; H2=$LAST_PID
bg sluiced3 "$NS3" "$SLUICED" -c "$T/h3.conf"; H3=$LAST_PID
hctl() { local ns; eval "ns=\$NS$1"; shift; in_ns "$ns" "$SLUICECTL" -a "$ADMIN" "$@"; }
NS1=$LB
hmetric() { hctl "$1" metrics | awk -v m="$2" '$1 == m { print $2; exit }'; }
coordinated() { [ "$(hmetric "$1" 'sluice_fleet_mode{mode="coordinated"}')" = 1 ] &&
	[ "$(hmetric "$1" sluice_fleet_hosts)" = 2 ]; }
for h in 1 2; do wait_for 5 coordinated $h || { hctl $h fleet; fail "host $h not coordinated over TLS"; }; done
grep -q 'connected to redis .*:6380 over TLS (TLSv1.3)' "$T/sluiced.log" || fail "no TLS connection logged"
in_be redis-cli -h "$REDIS" -p 6380 --tls --cacert "$T/redis.crt" --sni redis.test -a s3cret-pass \
	--no-auth-warning -n 3 exists sluice:host:h1 | grep -q 1 || fail "host 1's key is not in database 3"
say "hosts 1 and 2 coordinated over TLS with AUTH, in database 3"
sleep 1
[ "$(hmetric 3 'sluice_fleet_mode{mode="static"}')" = 1 ] || fail "host 3 is not static"
grep -q 'certificate verify failed' "$T/sluiced3.log" || fail "host 3 did not say why"
p=$(hmetric 3 'sluice_fleet_share{pool="app",backend="b1",limit="max_conns"}')
[ "$p" = 30 ] || fail "host 3's static part is $p, not 90 / 3"
say "host 3 (wrong name): refused by verification, static part $p"
kill "$H1" "$H2" "$H3"
wait_exit "$H1" 10 && wait_exit "$H2" 10 && wait_exit "$H3" 10 || fail "sluiced did not stop"
say "ok"
