#!/usr/bin/env bash
# More than 1 GiB through the proxy, every byte checked end to end: a writer
# streams a seeded pseudo-random sequence, the echo returns it, the reader
# compares each byte and the FNV-1a of the whole stream.
# timeout: 240
. "$(dirname "$0")/lib.sh"
netns_setup
backend echo 1 echo
write_conf "$T/s.conf" 2 least_conn 1 -- "buffers = { count = 256; size = 16384; };"
sluiced_start "$T/s.conf"
bytes=$((1100 * 1024 * 1024))
client bulk bulk -c 10.77.0.1:8080 --bytes $bytes --seed 7 --timeout-ms 200000 ||
	fail "bulk transfer failed"
[ "$(kv bytes "$T/bulk.log")" = $bytes ] || fail "wrong byte count"
# the proxy's own counters saw every byte both ways
to_be=$(metric "sluice_backend_bytes_total{pool=\"app\",backend=\"b1\",address=\"$(be_addr 1):9000\",direction=\"to_backend\"}")
to_cl=$(metric "sluice_backend_bytes_total{pool=\"app\",backend=\"b1\",address=\"$(be_addr 1):9000\",direction=\"to_client\"}")
[ "$to_be" = $bytes ] && [ "$to_cl" = $bytes ] || fail "counters: to_backend=$to_be to_client=$to_cl, expected $bytes"
say "ok: $(cat "$T/bulk.log")"
