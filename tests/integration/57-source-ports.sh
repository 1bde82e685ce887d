#!/usr/bin/env bash
# Source ports as a resource. The load-balancer host's ip_local_port_range is
# narrowed to 100 ports, and its pool names two source addresses: sluiced
# counts what is left per source and backend (sluice_backend_source_ports_free),
# puts connections beyond the first source's 100 on the second, and once
# both are spent refuses new clients at once, counted as reason="ports" and
# logged, rather than failing connects. Closing connections gives the ports
# back. The clients connect from the backend host, whose ports are not
# narrowed.
# timeout: 120
. "$(dirname "$0")/lib.sh"
netns_setup
ip -n "$LB" addr add 10.77.0.3/24 dev "v$LB"
ip netns exec "$LB" sysctl -qw net.ipv4.ip_local_port_range="20000 20099"
backend e1 1 echo

cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; backlog = 1024; } );
pools = ( { name = "app"; source = [ "10.77.0.1", "10.77.0.3" ];
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 1000; rate = 10000; } ); } );
CONF
sluiced_start "$T/s.conf"
free_of() { metric "sluice_backend_source_ports_free{pool=\"app\",backend=\"b1\",address=\"$(be_addr 1):9000\",source=\"$1\"}"; }
[ "$(free_of 10.77.0.1)" = 100 ] && [ "$(free_of 10.77.0.3)" = 100 ] ||
	fail "free ports at start: $(free_of 10.77.0.1) and $(free_of 10.77.0.3), not 100 each"

# hold CLIENTS OUT: that many clients, each an echo and then held open until
# $T/release exists; OUT gets "served N refused M"
hold() {
	in_be python3 - "$1" "$T" >"$T/$2" 2>&1 <<'PY' &
import socket, sys, os, time
n, t = int(sys.argv[1]), sys.argv[2]
socks, served, refused = [], 0, 0
for i in range(n):
    s = socket.create_connection(("10.77.0.1", 8080), timeout=5)
    try:
        s.sendall(b"0123456789abcdef")
        got = b""
        while len(got) < 16:
            b = s.recv(16 - len(got))
            if not b:
                break
            got += b
        if got == b"0123456789abcdef":
            served += 1
            socks.append(s)
        else:
            refused += 1
            s.close()
    except OSError:
        refused += 1
        s.close()
print(f"served {served} refused {refused}", flush=True)
deadline = time.time() + 60
while not os.path.exists(f"{t}/release") and time.time() < deadline:
    time.sleep(0.05)
for s in socks:
    s.close()
PY
	HOLD_PID=$!
}

hold 150 h1.out
wait_for 20 grep -q served "$T/h1.out" || fail "the first 150 clients did not finish"
[ "$(cat "$T/h1.out")" = "served 150 refused 0" ] || fail "first 150: $(cat "$T/h1.out")"
a=$(free_of 10.77.0.1) b=$(free_of 10.77.0.3)
say "150 held: free ports $a on 10.77.0.1, $b on 10.77.0.3"
[ $((a + b)) -eq 50 ] || fail "free ports $a + $b, not 200 - 150"
n=$(in_lb ss -Htn state established "dst $(be_addr 1):9000" | awk '{ print $3 }' | grep -c '^10.77.0.3:')
[ "$n" -ge 50 ] || fail "only $n backend connections from the second source"
P1=$HOLD_PID

hold 60 h2.out
wait_for 20 grep -q served "$T/h2.out" || fail "the next 60 clients did not finish"
say "60 more: $(cat "$T/h2.out")"
[ "$(cat "$T/h2.out")" = "served 50 refused 10" ] || fail "beyond 200 ports: $(cat "$T/h2.out")"
r=$(metric 'sluice_refused_total{pool="app",reason="ports"}')
[ "${r:-0}" -eq 10 ] || fail "refused for ports counted ${r:-0}, not 10"
grep -q 'no source port left to any backend' "$T/sluiced.log" || fail "the refusal was not logged"
[ "$(metric 'sluice_backend_connect_failures_total{pool="app",backend="b1",address="'"$(be_addr 1)"':9000"}')" = 0 ] ||
	fail "connects failed instead of being refused early"

touch "$T/release"
wait "$P1" "$HOLD_PID"
wait_for 5 [ "$(free_of 10.77.0.1)" = 100 ] || fail "ports not given back: $(free_of 10.77.0.1)"
wait_for 5 [ "$(free_of 10.77.0.3)" = 100 ] || fail "ports not given back on the second source"
say "all closed: every port back"
say "ok"
