# Shared by the integration scenarios; source it first thing.
#
# Topology: two network namespaces joined by a veth pair —
#   $LB  the load-balancer host: sluiced and the clients; 10.77.0.1/24
#   $BE  the backend host: the test servers; 10.77.0.2/24 and, for several
#        backends, extra addresses 10.77.0.11..19 (be_addr N)
# Each scenario gets its own pair (names carry the PID), so scenarios could
# run side by side. Everything started with `bg` is killed by PID on exit,
# and the namespaces are deleted.
set -u
SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=$SRC/build
TPEER=$BUILD/tests/tools/tpeer
SLUICED=$BUILD/sluiced
SLUICECTL=$BUILD/sluicectl
T=$(mktemp -d /tmp/sluice-test.XXXXXX)
LB=slb$$
BE=sbe$$
PIDS=()
# what a scenario adds beyond $LB, $BE, $PIN and $CGROUP (more hosts): removed on exit too
EXTRA_NS=() EXTRA_PINS=() EXTRA_CGROUPS=()
ADMIN=127.0.0.1:9901
# each scenario's own BPF state: pinned maps and the cgroup sluiced joins
PIN=/sys/fs/bpf/sluice-test-$$
CGROUP=sluice-test-$$
BPF_CONF="bpf = { pin_path = \"$PIN\"; cgroup = \"$CGROUP\"; };"

say() { echo "[$(date +%T.%3N)] $*"; }
fail() { say "FAIL: $*"; exit 1; }
skip() { say "skipping"; echo "$*"; exit 77; }

cleanup() {
	local rc=$?
	local pid alive n
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	# up to 3 s to exit on their own (so a SAN=1 build can report leaks)
	for n in $(seq 30); do
		alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
	wait 2>/dev/null
	for ns in "$LB" "$BE" "${EXTRA_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$PIN" "${EXTRA_PINS[@]}"
	cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	for g in "$CGROUP" "${EXTRA_CGROUPS[@]}"; do
		[ -n "$cg" ] && [ -d "$cg/$g" ] && rmdir "$cg/$g" 2>/dev/null
	done
	# under SAN=1 a report in any process's log fails the scenario; a
	# connection state move sluiced calls a bug (proxy/conn.h) does in any build
	if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:\|bug: connection' "$T"/*.log 2>/dev/null; then
		grep -A 20 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:\|bug: connection' "$T"/*.log | head -60
		echo "FAIL: sanitizer report or bug above"
		rc=1
	fi
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		for f in "$T"/*.log; do
			[ -e "$f" ] || continue
			echo "---- $(basename "$f") (last 15 lines)"; tail -n 15 "$f"
		done
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
	command -v ip >/dev/null || skip "needs iproute2 (ip)"
	[ -x "$SLUICED" ] && [ -x "$TPEER" ] || fail "build first: make test-build"
}

# Create $LB and $BE and the veth between them.
netns_setup() {
	need_root
	ip netns add "$LB" || skip "cannot create network namespaces"
	ip netns add "$BE" || fail "ip netns add $BE"
	ip link add "v$LB" type veth peer name "v$BE" || fail "veth"
	ip link set "v$LB" netns "$LB"
	ip link set "v$BE" netns "$BE"
	ip -n "$LB" addr add 10.77.0.1/24 dev "v$LB"
	ip -n "$BE" addr add 10.77.0.2/24 dev "v$BE"
	for i in 1 2 3 4 5 6 7 8 9; do ip -n "$BE" addr add "10.77.0.1$i/24" dev "v$BE"; done
	for ns in "$LB" "$BE"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$LB" link set "v$LB" up
	ip -n "$BE" link set "v$BE" up
	# enough room for thousands of connections through one address pair
	ip netns exec "$LB" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
	ip netns exec "$BE" sysctl -qw net.core.somaxconn=8192
	ip netns exec "$LB" sysctl -qw net.core.somaxconn=8192
}

# lb_host N: one more load-balancer host, $LB<N>, 10.7<6+N>.0.1/24 on its own veth to $BE
# (10.7<6+N>.0.2), routed to the backends; its own pin path and cgroup. Sets HOST_NS,
# HOST_ADDR, HOST_BPF_CONF.
lb_host() {
	local n=$1 ns="slb${1}x$$" net="10.7$((6 + $1)).0"
	ip netns add "$ns" || fail "ip netns add $ns"
	EXTRA_NS+=("$ns")
	ip link add "v$ns" type veth peer name "w$ns" || fail "veth for $ns"
	ip link set "v$ns" netns "$ns"
	ip link set "w$ns" netns "$BE"
	ip -n "$ns" addr add "$net.1/24" dev "v$ns"
	ip -n "$BE" addr add "$net.2/24" dev "w$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "v$ns" up
	ip -n "$BE" link set "w$ns" up
	ip -n "$ns" route add 10.77.0.0/24 via "$net.2"
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
	ip netns exec "$ns" sysctl -qw net.core.somaxconn=8192
	HOST_NS=$ns HOST_ADDR=$net.1
	EXTRA_PINS+=("$PIN-$n")
	EXTRA_CGROUPS+=("$CGROUP-$n")
	HOST_BPF_CONF="bpf = { pin_path = \"$PIN-$n\"; cgroup = \"$CGROUP-$n\"; };"
}

be_addr() { echo "10.77.0.1$1"; }   # address of backend N (1..9)
# Enter only the network namespace: `ip netns exec` also remounts /sys, which
# would hide the host's /sys/fs/bpf (pinned maps) and /sys/fs/cgroup.
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
in_lb() { in_ns "$LB" "$@"; }
in_be() { in_ns "$BE" "$@"; }

# bg NAME NS CMD...: start CMD in namespace NS, output in $T/NAME.log; sets $LAST_PID.
bg() {
	local name=$1 ns=$2; shift 2
	# a command, not a function: $! must be the process itself, for signals
	nsenter --net="/run/netns/$ns" "$@" >"$T/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# wait_for TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds.
wait_for() {
	local deadline=$(($(date +%s%N) + $1 * 1000000000)); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# backend NAME N MODE [ARGS...]: a tpeer server on be_addr N port 9000.
backend() {
	local name=$1 n=$2 mode=$3; shift 3
	bg "$name" "$BE" "$TPEER" serve -l "$(be_addr "$n"):9000" --mode "$mode" --id "$name" \
		--stats "$T/$name.stats" --ready "$T/$name.ready" --timeout-ms 3600000 "$@"
	eval "PID_$name=$LAST_PID"
	wait_for 5 test -e "$T/$name.ready" || fail "backend $name did not start"
}

# cost_backends TAG COST_US [ARGS...]: two bench/backend echo servers, on be_addr 1
# and 2, that burn COST_US of CPU per new connection (a session's set-up cost);
# PID_<TAG>b1, PID_<TAG>b2; their summaries go to $T/<TAG>b1.json, $T/<TAG>b2.json.
cost_backends() {
	local tag=$1 cost=$2 i; shift 2
	for i in 1 2; do
		bg "${tag}b$i" "$BE" "$BUILD/bench/backend" --mode echo --listen "$(be_addr $i):9000" \
			--conn-cost-us "$cost" --backlog 8192 --summary "$T/${tag}b$i.json" \
			--ready "$T/${tag}b$i.ready" --max-seconds 100 "$@"
		eval "PID_${tag}b$i=$LAST_PID"
		wait_for 5 test -e "$T/${tag}b$i.ready" || fail "backend $i did not start"
	done
}
# stop_cost_backends TAG: stop both (they write their summaries then) and wait.
stop_cost_backends() {
	local p1 p2
	eval "p1=\$PID_${1}b1 p2=\$PID_${1}b2"
	kill "$p1" "$p2"
	wait_exit "$p1" 5 && wait_exit "$p2" 5 || fail "backends did not exit"
}
# cost_accepted TAG: the connections both accepted.
cost_accepted() {
	python3 -c 'import json,sys; print(sum(json.load(open(f))["accepted"] for f in sys.argv[1:]))' \
		"$T/${1}b1.json" "$T/${1}b2.json"
}

# rate_sampler OUT: every 200 ms, "MS RATE1 RATE2" into OUT: the ms since now and
# the rate in force of pool app's b1 and b2 (/metrics); its PID is the last of PIDS.
rate_sampler() {
	local out=$1 t0
	t0=$(date +%s%N)
	( while :; do
		echo "$((($(date +%s%N) - t0) / 1000000)) $(backend_metric sluice_backend_rate app 1)" \
			"$(backend_metric sluice_backend_rate app 2)"
		sleep 0.2
	  done ) >"$out" 2>/dev/null &
	PIDS+=($!)
}

# storm_pair N ARGS...: two loadgen storms of N/2 naive tcp clients each (seeds 1
# and 2) at the listener 10.77.0.1:8080, at nice -10, with ARGS; waits for both.
# Reports in $T/storm1.json and $T/storm2.json.
storm_pair() {
	local n=$1 s pids=(); shift
	for s in 1 2; do
		in_lb nice -n -10 "$BUILD/bench/loadgen" storm -c 10.77.0.1:8080 -n $((n / 2)) \
			--policy naive --proto tcp --seed $s --json "$@" \
			>"$T/storm$s.json" 2>"$T/storm$s.err" &
		pids+=($!)
	done
	for s in "${pids[@]}"; do wait "$s" || { cat "$T"/storm*.err; fail "storm failed"; }; done
}

# stat NAME KEY: a value from a tpeer server's stats file.
stat() { sed -n "s/^$2=//p" "$T/$1.stats" 2>/dev/null | head -1; }

# sluiced CONF: start sluiced in $LB and wait for its admin endpoint.
sluiced_start() {
	bg sluiced "$LB" "$SLUICED" -c "$1"
	SLUICED_PID=$LAST_PID
	wait_for 5 in_lb "$SLUICECTL" -a "$ADMIN" metrics || fail "sluiced did not start"
}

ctl() { in_lb "$SLUICECTL" -a "$ADMIN" "$@"; }

# web_and_raw HEAD_MS: the daemon the request-head tests share. An HTTP
# backend (bench/backend, be_addr 1) behind listener "web" (mode http,
# 10.77.0.1:8080, pool web, server b1) and a tpeer echo server e2 (be_addr 2)
# behind "raw" (tcp, :8081, pool raw); timeouts.head_ms = HEAD_MS; 2 workers.
# Started, config in $T/s.conf.
web_and_raw() {
	bg be "$BE" "$BUILD/bench/backend" --mode http --listen "$(be_addr 1):9000" --ready "$T/be.ready"
	wait_for 5 test -e "$T/be.ready" || fail "backend did not start"
	backend e2 2 echo
	cat >"$T/s.conf" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { head_ms = $1; };
listeners = ( { name = "web"; address = "10.77.0.1:8080"; mode = "http"; pool = "web"; },
              { name = "raw"; address = "10.77.0.1:8081"; mode = "tcp"; pool = "raw"; } );
pools = ( { name = "web"; servers = ( { name = "b1"; address = "$(be_addr 1):9000"; } ); },
          { name = "raw"; servers = ( { name = "e2"; address = "$(be_addr 2):9000"; } ); } );
CONF
	sluiced_start "$T/s.conf"
}

# The cgroup sluiced joins (for processes a test puts beside it).
cgroup_dir() { echo "$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)/$CGROUP"; }

# ledger N: the kernel's live-connection count for backend bN, read from the
# pinned maps (works with sluiced stopped).
ledger() {
	"$SLUICECTL" bpf "$PIN" | awk -v a="$(be_addr "$1"):9000" '$1 == a { print $3; exit }'
}
ledger_eq() { [ "$(ledger "$1")" = "$2" ]; }
# bpf_col N COLUMN: a column of backend bN's row in `sluicectl bpf`
bpf_col() {
	"$SLUICECTL" bpf "$PIN" | awk -v a="$(be_addr "$1"):9000" -v c="$2" '
		$1 == "BACKEND" { for (i = 1; i <= NF; i++) if ($i == c) col = i }
		$1 == a { print $col; exit }'
}

# metric 'NAME{LABELS}': the value of one sample from /metrics ("" if absent).
metric() { ctl metrics | awk -v m="$1" '$1 == m { print $2; exit }'; }
# metric_eq 'NAME{LABELS}' VALUE; stat_eq NAME KEY VALUE — for wait_for
metric_eq() { [ "$(metric "$1")" = "$2" ]; }
stat_eq() { [ "$(stat "$1" "$2")" = "$3" ]; }
# backend_metric NAME POOL N: a per-backend sample for backend bN of write_conf
backend_metric() { metric "$1{pool=\"$2\",backend=\"b$3\",address=\"$(be_addr "$3"):9000\"}"; }

# client NAME ARGS...: run a tpeer client in $LB in the foreground; log kept.
client() {
	local name=$1; shift
	in_lb "$TPEER" "$@" >"$T/$name.log" 2>&1
	local rc=$?
	cat "$T/$name.log"
	return $rc
}

# kv KEY FILE: value of KEY=... on a tpeer summary line.
kv() { grep -o "\b$1=[^ ]*" "$2" | head -1 | cut -d= -f2; }

# Wait for a PID to exit (up to TIMEOUT_S); its status in $EXIT_STATUS.
wait_exit() {
	local pid=$1 t=$2 deadline
	deadline=$(($(date +%s) + t))
	while kill -0 "$pid" 2>/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
	wait "$pid"
	EXIT_STATUS=$?
	return 0
}

# A config with one tcp listener on 10.77.0.1:8080 and a pool of backends N...
# conf FILE WORKERS BALANCE N... [-- EXTRA top-level settings]
# The servers get $SERVER_OPTS (e.g. "rate = 0;": no learned rate limit) when it is set.
write_conf() {
	local f=$1 workers=$2 balance=$3; shift 3
	local servers="" sep="" extra=""
	while [ $# -gt 0 ]; do
		if [ "$1" = "--" ]; then shift; extra="$*"; break; fi
		servers="$servers$sep{ name = \"b$1\"; address = \"$(be_addr "$1"):9000\"; ${SERVER_OPTS:-} }"
		sep=", "; shift
	done
	cat >"$f" <<CONF
workers = $workers;
admin = { address = "$ADMIN"; };
$BPF_CONF
$extra
listeners = ( { name = "front"; address = "10.77.0.1:8080"; mode = "tcp"; pool = "app"; } );
pools = ( { name = "app"; balance = "$balance"; servers = ( $servers ); } );
CONF
}

# storm_conf FILE [POOL_OPTS] [SERVER_OPTS]: the storm tests' daemon: 2 workers,
# listener "front" (10.77.0.1:8080, backlog 8192) to pool "app" with POOL_OPTS
# and servers b1, b2 (be_addr 1 and 2) with SERVER_OPTS; backend_wait_ms 60 s,
# drain with no period and 1 s of grace.
storm_conf() {
	local f=$1 pool=${2:-} srv=${3:-}
	cat >"$f" <<CONF
workers = 2;
admin = { address = "$ADMIN"; };
$BPF_CONF
timeouts = { backend_wait_ms = 60000; };
drain = { period_s = 0; grace_s = 1; };
listeners = ( { name = "front"; address = "10.77.0.1:8080"; pool = "app"; backlog = 8192; } );
pools = ( { name = "app"; $pool
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; $srv },
                { name = "b2"; address = "$(be_addr 2):9000"; $srv } ); } );
CONF
}

# Is this an ASan/UBSan build (make SAN=1)? Several times slower: scenarios
# that measure capacity scale their load down under it.
san_build() { ldd "$SLUICED" 2>/dev/null | grep -q libasan; }

# tls_certs: self-signed certificates in $T for names a.test (ECDSA P-256 and
# RSA 2048) and b.test (ECDSA), private keys 0600, and a ticket key file
# $T/tickets.key (one key: base64 of 80 random bytes).
tls_certs() {
	command -v openssl >/dev/null || skip "needs the openssl command"
	local n
	for n in a b; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=$n.test" -addext "subjectAltName=DNS:$n.test" \
			-keyout "$T/$n-ec.key" -out "$T/$n-ec.crt" 2>/dev/null || fail "openssl req"
	done
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=a.test" \
		-addext "subjectAltName=DNS:a.test" -keyout "$T/a-rsa.key" -out "$T/a-rsa.crt" \
		2>/dev/null || fail "openssl req rsa"
	chmod 600 "$T"/*.key
	tls_ticket_key >"$T/tickets.key"
	chmod 600 "$T/tickets.key"
}
tls_ticket_key() { openssl rand 80 | base64 -w0; echo; }

# s_client ARGS...: openssl s_client in $LB, stdin sent then held open 1 s.
s_client() {
	local input=$1; shift
	(printf '%s' "$input"; sleep 1) | in_lb timeout 10 openssl s_client "$@" 2>&1
}

# cpu_ms PID: user + system CPU time PID has used so far, in ms (all threads).
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"; }
# cpu_us PID: the same in us, exact (the run time of each of its threads, schedstat).
cpu_us() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ ns += $1 } END { print int(ns / 1000) }'; }
# rss_kb PID: its resident memory, in KiB.
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
# cpu_over PID SECONDS: CPU ms PID uses in the next SECONDS.
cpu_over() { local c0; c0=$(cpu_ms "$1"); sleep "$2"; echo $(($(cpu_ms "$1") - c0)); }
