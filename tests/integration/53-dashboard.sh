#!/usr/bin/env bash
# examples/grafana/sluice.json: a Grafana dashboard whose every PromQL
# expression returns data from a real Prometheus that scraped a running
# sluiced. sluiced serves a plain and a TLS listener (a SYN gate on the
# first) in front of a pool of two backends, one at a fixed rate and one
# learning its rate, a fleet of one host through a real redis-server; a
# little traffic goes through (clients admitted and
# refused, full and resumed handshakes); Prometheus scrapes /metrics every
# second; then each panel's expression, with the dashboard's variables put
# in, is asked of Prometheus's HTTP API and must return at least one series.
# timeout: 150
. "$(dirname "$0")/lib.sh"
netns_setup
command -v prometheus >/dev/null || fail "prometheus missing: make deps installs it"
DASH=$SRC/examples/grafana/sluice.json
TLSC=$BUILD/tests/tools/tlsclient
[ -x "$TLSC" ] || fail "build first: make test-build"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$DASH" || fail "$DASH is not JSON"
tls_certs
backend b1 1 echo
backend b2 2 echo
# a fleet of one host, for the fleet panels: a real redis-server
command -v redis-server >/dev/null || fail "redis-server missing: make deps installs it"
bg redis "$BE" redis-server --bind "$(be_addr 9)" --port 6379 --save "" --appendonly no \
	--protected-mode no --dir "$T"
wait_for 5 in_be redis-cli -h "$(be_addr 9)" ping || fail "redis-server did not start"
cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
fleet = { redis = "$(be_addr 9):6379"; host = "lb"; hosts = 1; heartbeat_ms = 200; lease_ms = 2000; };
listeners = (
  { name = "front"; address = "10.77.0.1:8080"; mode = "tcp"; pool = "app";
    syn_gate = { rate = 10000; interfaces = ["v$LB"]; }; },
  { name = "secure"; address = "10.77.0.1:8443"; mode = "tcp"; pool = "app";
    tls = { certificates = ( { cert = "$T/a-ec.crt"; key = "$T/a-ec.key"; } );
            ticket_keys = "$T/tickets.key"; full_per_s = "auto"; resumed_per_s = "auto"; }; }
);
pools = ( { name = "app"; queue = { max = 5; timeout_ms = 200; };
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 20; rate = 20; burst = 2; },
                { name = "b2"; address = "$(be_addr 2):9000"; max_conns = 20; } ); } );
CONF
sluiced_start "$T/s.conf"
cat >"$T/prom.yml" <<PROM
global: { scrape_interval: 1s }
scrape_configs:
  - job_name: sluice
    static_configs: [ { targets: [ "$ADMIN" ] } ]
PROM
bg prometheus "$LB" prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address=127.0.0.1:9090

start=$(date +%s)
# a little traffic for 8 s: clients in, some refused (queue of 5, 200 ms),
# full and resumed TLS handshakes
in_lb "$TLSC" -c 10.77.0.1:8443 --sess-out "$T/sess" >/dev/null || fail "first handshake"
for i in $(seq 8); do
	# from the backend host, over the veth: through the SYN gate
	in_be "$TPEER" echo-clients -c 10.77.0.1:8080 -n 60 -p 60 >"$T/c$i.log" 2>&1
	in_lb "$TLSC" -c 10.77.0.1:8443 -n 5 -p 5 >/dev/null || fail "full handshakes"
	in_lb "$TLSC" -c 10.77.0.1:8443 -n 5 -p 5 --sess-in "$T/sess" >/dev/null || fail "resumed handshakes"
	sleep 1
done
end=$(date +%s)
for i in $(seq 40); do
	in_lb python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:9090/-/ready", timeout=1)' \
		2>/dev/null && break
	sleep 0.25
done

# every panel's expression over the run, the dashboard's variables set to
# All and $__rate_interval to 4 scrape intervals (what Grafana picks for 1 s)
in_lb python3 - "$DASH" "$start" "$end" <<'PY' || fail "dashboard expressions without data"
import json, math, sys, urllib.parse, urllib.request
dash, start, end = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
api = "http://127.0.0.1:9090/api/v1/"
def get(path, **params):
    u = api + path + "?" + urllib.parse.urlencode(params, doseq=True)
    d = json.load(urllib.request.urlopen(u, timeout=5))
    if d["status"] != "success":
        raise SystemExit(f"{path}: {d}")
    return d["data"]
def subst(e):
    for v in ("instance", "pool", "backend", "listener"):
        e = e.replace("$" + v, ".*")
    return e.replace("$__rate_interval", "4s")
bad = 0
values = {}
exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
for title, e in exprs:
    r = get("query_range", query=subst(e), start=start, end=end, step=1)["result"]
    pts = [float(v) for s in r for _, v in s["values"] if not math.isnan(float(v))]
    values[e] = pts
    if not pts:
        print(f"NO DATA  {title}: {e}"); bad = 1
    else:
        print(f"ok {len(r):2d} series, max {max(pts):10.4g}  {title}: {e[:90]}")
# the variables' own queries: label_values(SELECTOR, LABEL)
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    q = v["query"]["query"]
    sel, label = q[len("label_values("):-1].rsplit(", ", 1)
    got = get(f"label/{label}/values", **{"match[]": subst(sel), "start": start, "end": end})
    print(f"variable {v['name']}: {got}")
    if not got:
        bad = 1
# traffic flowed: clients admitted, both kinds of handshake, some refused
def peak(needle):
    return max((max(p) for e, p in values.items() if needle in e and p), default=0)
for needle in ("rate(sluice_admitted_total", "rate(sluice_tls_handshakes_total", "rate(sluice_syn_total"):
    print(f"peak of {needle}: {peak(needle):.3g}")
    if peak(needle) <= 0:
        print(f"{needle}: no traffic seen"); bad = 1
print(f"{len(exprs)} expressions in {sum(1 for p in dash['panels'] if p.get('targets'))} panels")
sys.exit(bad)
PY
say "ok"
