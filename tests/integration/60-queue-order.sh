#!/usr/bin/env bash
# queue.order: which waiting client goes when a slot frees. Two pools side by
# side, each with one backend of max_conns = 1 held by a first client; five
# clients (A1..A5) queue, then, 300 ms later, five more (B1..B5); the holder
# leaves and each client leaves once its echo came, so they go one at a
# time. "fifo" serves them in arrival order. "adaptive" (the default) does
# too while its oldest client has waited under 100 ms, and newest first
# once the queue stood longer: B5..B1 then A5..A1. Nobody is lost, nothing
# is refused, and both ledgers are 0 afterwards.
# timeout: 60
. "$(dirname "$0")/lib.sh"
netns_setup
backend e1 1 echo
backend e2 2 echo
cat >"$T/s.conf" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$BPF_CONF
listeners = ( { name = "f"; address = "10.77.0.1:8080"; mode = "tcp"; pool = "fifo"; },
              { name = "a"; address = "10.77.0.1:8081"; mode = "tcp"; pool = "adaptive"; } );
pools = ( { name = "fifo"; queue = { timeout_ms = 30000; order = "fifo"; };
            servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 1; rate = 0; } ); },
          { name = "adaptive"; queue = { timeout_ms = 30000; };
            servers = ( { name = "b2"; address = "$(be_addr 2):9000"; max_conns = 1; rate = 0; } ); } );
CONF
sluiced_start "$T/s.conf"

order() { # PORT: the names in the order their echoes came
	in_lb python3 - "$1" <<'PY'
import selectors, socket, sys, time
port = int(sys.argv[1])
def conn(name):
    s = socket.create_connection(("10.77.0.1", port), timeout=10)
    s.sendall(name.encode() + b"\n")
    return s
holder = conn("H")
assert holder.recv(16) == b"H\n", "the holder got no echo"
sel = selectors.DefaultSelector()
for g in ("A", "B"):
    for i in range(1, 6):
        sel.register(conn(f"{g}{i}"), selectors.EVENT_READ, f"{g}{i}")
        time.sleep(0.01)
    time.sleep(0.3)
holder.close()
got, deadline = [], time.time() + 20
while len(got) < 10 and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        data = key.fileobj.recv(16)
        if data != (key.data + "\n").encode():
            sys.exit(f"{key.data}: {data!r}")
        got.append(key.data)
        sel.unregister(key.fileobj)
        key.fileobj.close()
print(" ".join(got))
PY
}
fifo=$(order 8080) || fail "fifo pool: $fifo"
say "fifo: $fifo"
[ "$fifo" = "A1 A2 A3 A4 A5 B1 B2 B3 B4 B5" ] || fail "fifo did not serve in arrival order"
adaptive=$(order 8081) || fail "adaptive pool: $adaptive"
say "adaptive: $adaptive"
[ "$adaptive" = "B5 B4 B3 B2 B1 A5 A4 A3 A2 A1" ] || fail "adaptive did not serve newest first in a standing queue"
wait_for 3 ledger_eq 1 0 || fail "ledger of b1: $(ledger 1)"
wait_for 3 ledger_eq 2 0 || fail "ledger of b2: $(ledger 2)"
for p in fifo adaptive; do
	r=$(ctl metrics | awk -v p="pool=\"$p\"" '$1 ~ /^sluice_refused_total/ && index($1, p) { s += $2 } END { print s + 0 }')
	[ "$r" = 0 ] || fail "pool $p refused $r clients"
done
say "ok"
