#!/usr/bin/env bash
# What operators see: promtool accepts /metrics and the alerting rules; a
# real Prometheus scrapes sluiced and returns sluice_backend_connections for
# each backend; headless Chromium renders /status with the backend table;
# the starved-backend signal fires for a backend whose connects are silently
# dropped while its peers get clients; sluicectl's commands work against the
# running daemon.
# timeout: 150
. "$(dirname "$0")/lib.sh"
netns_setup
for t in promtool prometheus chromium; do
	command -v $t >/dev/null || fail "$t missing: make deps installs it"
done
backend b1 1 banner
backend b2 2 banner
# b3 listens, but its SYNs are dropped: connects to it just time out
backend b3 3 banner
in_be iptables -A INPUT -p tcp -d "$(be_addr 3)" --dport 9000 -j DROP || fail "iptables"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { connect_ms = 300; };
log = { access = "$T/access.log"; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app";
                syn_gate = { rate = 10000; interfaces = ["v$LB"]; }; } );
pools = ( { name = "app"; balance = "round_robin"; starved_after_s = 2;
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 500; rate = 1000; },
                { name = "b2"; address = "$(be_addr 2):9000"; max_conns = 500; rate = 1000; },
                { name = "b3"; address = "$(be_addr 3):9000"; max_conns = 500; rate = 1000; } ); } );
CONF
sluiced_start "$T/s.conf"

# traffic for a while: b1 and b2 get clients, b3 none
for i in $(seq 8); do
	client t$i echo-clients -c 10.77.0.1:8080 -n 50 -p 25 --banner >/dev/null || fail "clients"
	sleep 0.5
done
for b in 1 2 3; do say "b$b starved: $(backend_metric sluice_backend_starved app $b)"; done
[ "$(backend_metric sluice_backend_starved app 3)" = 1 ] || fail "b3's starvation not flagged"
[ "$(backend_metric sluice_backend_starved app 1)" = 0 ] || fail "b1 flagged"
grep -q "backend $(be_addr 3):9000 (pool app) got no new connection" "$T/sluiced.log" || fail "not logged"

# promtool on the metrics and the rules
ctl metrics >"$T/metrics.txt" || fail "metrics"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.log" 2>&1 || { cat "$T/promtool.log"; fail "promtool rejects /metrics"; }
promtool check rules "$SRC/examples/alerts.yml" || fail "promtool rejects examples/alerts.yml"
for m in sluice_listener_connections_total sluice_listener_connections_active sluice_syn_total \
	 sluice_backend_connections sluice_backend_max_connections sluice_backend_admitted_total \
	 sluice_refused_total sluice_queue_depth sluice_queue_wait_seconds_bucket sluice_backend_up \
	 sluice_health_checks_total sluice_config_reloads_total \
	 sluice_config_last_reload_success_timestamp_seconds sluice_bpf_programs_attached sluice_bpf_programs_expected \
	 sluice_bpf_reattach_total sluice_ledger_drift sluice_build_info sluice_backend_starved; do
	grep -q "^$m[{ ]" "$T/metrics.txt" || fail "metric $m missing"
done

# a real Prometheus scrapes it
cat >"$T/prom.yml" <<PROM
global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [ "$SRC/examples/alerts.yml" ]
scrape_configs:
  - job_name: sluice
    static_configs: [ { targets: [ "$ADMIN" ] } ]
PROM
bg prometheus "$LB" prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address=127.0.0.1:9090
query() {
	in_lb python3 -c "
import json, sys, urllib.parse, urllib.request
u = 'http://127.0.0.1:9090/api/v1/query?query=' + urllib.parse.quote(sys.argv[1])
d = json.load(urllib.request.urlopen(u, timeout=2))
print(' '.join(sorted(r['metric'].get('backend', '') for r in d['data']['result'])))" "$1" 2>/dev/null
}
for i in $(seq 60); do got=$(query sluice_backend_connections); [ "$got" = "b1 b2 b3" ] && break; sleep 0.5; done
say "Prometheus query sluice_backend_connections: backends '$got'"
[ "$got" = "b1 b2 b3" ] || fail "Prometheus did not return sluice_backend_connections for each backend"

# headless Chromium renders /status
mkdir -p "$BUILD/tests"
in_lb timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$T/chrome" --dump-dom "http://$ADMIN/status" >"$T/dom.html" 2>"$T/chrome.err" ||
	{ tail -5 "$T/chrome.err"; fail "chromium could not load /status"; }
python3 - "$T/dom.html" <<'PY' || fail "the backend table is not in the DOM"
import re, sys
dom = open(sys.argv[1]).read()
m = re.search(r'<table id="backends">(.*?)</table>', dom, re.S)
rows = re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S) if m else []
cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows[1:]]
names = sorted(c[0] for c in cells)
print("backend rows in the DOM:", [(c[0], c[3]) for c in cells])
states = {"up", "down", "failing", "starved", "drained", "agent drain", "agent down"}
sys.exit(0 if names == ["b1", "b2", "b3"] and all(c[3] in states for c in cells) else 1)
PY
in_lb timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$T/chrome" --window-size=1500,900 --screenshot="$BUILD/tests/status.png" \
	"http://$ADMIN/status" >/dev/null 2>&1 || fail "screenshot"
[ -s "$BUILD/tests/status.png" ] || fail "no screenshot"
say "screenshot of /status: $BUILD/tests/status.png"

# sluicectl against the running daemon
ctl status | grep -q '^app .*b1' || fail "sluicectl status"
ctl backends >"$T/backends.txt" && grep -q "b3 .*$(be_addr 3):9000" "$T/backends.txt" || fail "sluicectl backends"
ctl set b1 rate=123 max_conns=77 | grep -q 'until the next reload' || fail "sluicectl set"
wait_for 2 sh -c "$SLUICECTL bpf $PIN | awk '\$1 == \"$(be_addr 1):9000\" { exit !(\$4 == 77 && \$5 == 123) }'" ||
	fail "set did not reach the kernel: $("$SLUICECTL" bpf "$PIN" | grep "$(be_addr 1)")"
# the access log: a line per connection; a rename and a reload rotate it
n=$(grep -c 'end=ok' "$T/access.log")
say "access log: $n lines end=ok; e.g. $(grep -m1 'end=ok' "$T/access.log")"
[ "$n" -ge 400 ] || fail "expected a line per connection (400), got $n"
grep -q 'client=10.77.0.1:[0-9]* listener=front pool=app backend=10.77.0.1[12]:9000 bytes_to_backend=64 bytes_to_client=67 ' \
	"$T/access.log" || fail "access log fields"
# the client's address is taken at accept: known even for those who closed first
[ "$(grep -c 'client=- ' "$T/access.log")" = 0 ] || fail "access log lines without the client"
mv "$T/access.log" "$T/access.log.1"
ctl reload | grep -q 'generation 2 in service' || fail "sluicectl reload"
client after echo-clients -c 10.77.0.1:8080 -n 5 --banner >/dev/null || fail "clients"
wait_for 2 test -s "$T/access.log" || fail "the access log was not reopened by the reload"
[ "$(bpf_col 1 MAX)" = 500 ] || fail "a reload should end the overrides"
cp "$T/s.conf" "$T/good.conf"; echo 'workers = ;' >>"$T/s.conf"
ctl reload >"$T/badreload.txt" 2>&1 && fail "a bad reload reported success"
grep -q 's.conf:[0-9]*: ' "$T/badreload.txt" || fail "bad reload not explained: $(cat "$T/badreload.txt")"
cp "$T/good.conf" "$T/s.conf"
"$SLUICECTL" check "$T/s.conf" >/dev/null || fail "sluicectl check"
say "ok"
