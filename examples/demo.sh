#!/usr/bin/env bash
# sluice demo: two backends, sluiced in front, bursts of clients, a reload, a
# backend failure, a graceful stop. Runs on loopback, ends by itself; Ctrl-C
# stops it cleanly at any point.
set -u
cd "$(dirname "$0")/.."
B=build
TPEER=$B/tests/tools/tpeer
TLSC=$B/tests/tools/tlsclient
D=$(mktemp -d /tmp/sluice-demo.XXXXXX)
PIDS=()
FRONT=127.0.0.1:18480
CTL=("$B/sluicectl" -a 127.0.0.1:18490)

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
PIN=/sys/fs/bpf/sluice-demo
cleanup() {
	local cg
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$D" "$PIN"
	cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$cg" ] && [ -d "$cg/sluice-demo" ] && rmdir "$cg/sluice-demo" 2>/dev/null
}
trap cleanup EXIT
trap 'echo; echo "demo interrupted"; exit 130' INT TERM

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: sluiced loads BPF programs and joins a cgroup: run make demo as root"; exit 1
fi
for port in 18480 18481 18482 18483 18484 18485 18486 18490; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "demo: port $port on 127.0.0.1 is in use; stop what uses it and retry"; exit 1
	fi
done

bold "two demo backends (chat-a :18481, chat-b :18482); each greets with its name and echoes"
for b in a:18481 b:18482; do
	"$TPEER" serve -l "127.0.0.1:${b#*:}" --mode banner --id "chat-${b%%:*}" \
		--ready "$D/${b%%:*}.ready" --stats "$D/${b%%:*}.stats" --timeout-ms 600000 \
		>"$D/${b%%:*}.log" 2>&1 &
	PIDS+=($!)
	eval "PID_${b%%:*}=$!"
done
for i in $(seq 50); do [ -e "$D/a.ready" ] && [ -e "$D/b.ready" ] && break; sleep 0.1; done

bold "a self-signed certificate and a ticket key for the TLS listener, in $D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=demo \
	-keyout "$D/demo.key" -out "$D/demo.crt" 2>/dev/null || exit 1
openssl rand 80 | base64 -w0 >"$D/tickets.key"
chmod 600 "$D/demo.key" "$D/tickets.key"
conf() { sed "s|DEMO_DIR|$D|g" examples/demo.conf >"$D/demo.conf"; }
conf

bold "sluiced -t validates the config first (and loads the certificate)"
"$B/sluiced" -t -c "$D/demo.conf" || exit 1

bold "sluiced on $FRONT (2 workers, least_conn; the kernel holds each backend to 300 live and 400 new/s)"
"$B/sluiced" -c "$D/demo.conf" 2>"$D/sluiced.log" &
SLUICED=$!
PIDS+=($SLUICED)
for i in $(seq 50); do "${CTL[@]}" metrics >/dev/null 2>&1 && break; sleep 0.1; done

bold "a reconnect flood: 2000 clients at once, 3 echo rounds each"
echo "the backends could take them all in the same instant; sluice lets them in at 2 x 400/s,"
echo "so expect about (2000 - 2 x 40 burst) / 800 = 2.4 s, with no client refused:"
"$TPEER" echo-clients -c "$FRONT" -n 2000 -p 2000 --rounds 3 --size 256 --banner \
	--io-timeout-ms 15000 --timeout-ms 30000
echo
echo "what the kernel saw (sluicectl bpf: ledger, tokens, connects admitted and refused):"
"$B/sluicectl" bpf "$PIN" | sed -n '2,6p'
echo
"${CTL[@]}" status

bold "a TLS flood on :18483: 600 new clients (full handshakes) and 200 holding a session"
echo "full handshakes are spread at 200/s (about 2.9 s for 600); clients offering a session"
echo "draw from the resumed budget and get in at once, whatever the flood:"
"$TLSC" -c 127.0.0.1:18483 --bytes 0 --sess-out "$D/session" >/dev/null
sleep 0.2
"$TLSC" -c 127.0.0.1:18483 -n 600 -p 600 --bytes 0 --timeout-ms 20000 >"$D/full.log" &
FULL=$!
sleep 0.1
echo "  resuming: $("$TLSC" -c 127.0.0.1:18483 -n 200 -p 200 --bytes 0 --sess-in "$D/session")"
wait "$FULL"
echo "  full:     $(cat "$D/full.log")"
"${CTL[@]}" metrics | grep -E '^sluice_tls_handshake(s|_queued)_total' | sed 's/^/  /'

bold "admission that learns: pool feed sets no rate and no queue timeout"
echo "two backends (feed-a :18485, feed-b :18486) that burn 2 ms of CPU per new connection;"
echo "3000 clients arrive at once on :18484, each patient for 20 s. sluice measures what a"
echo "new session costs each backend and steers the kernel's rate by it; 3 s in, the demo"
echo "doubles the backends' cost per connection (a busy host, a bad deploy):"
for b in a:18485 b:18486; do
	"$B/bench/backend" --mode echo --listen "127.0.0.1:${b#*:}" --conn-cost-us 2000 \
		--backlog 4096 --max-seconds 120 --summary "$D/feed-${b%%:*}.json" \
		--ready "$D/feed-${b%%:*}.ready" >"$D/feed-${b%%:*}.log" 2>&1 &
	PIDS+=($!)
	eval "FEED_${b%%:*}=$!"
done
for i in $(seq 50); do [ -e "$D/feed-a.ready" ] && [ -e "$D/feed-b.ready" ] && break; sleep 0.1; done
rate() { "${CTL[@]}" metrics | awk -v b="$1" '$1 ~ "^sluice_backend_rate\\{.*backend=\"" b "\"" { print $2 }'; }
setup() { "${CTL[@]}" metrics | awk -v b="$1" -v q="$2" '$1 ~ "^sluice_backend_setup_" q "_seconds\\{.*backend=\"" b "\"" { printf "%.0f", $2 * 1000 }'; }
"$B/bench/loadgen" storm -c 127.0.0.1:18484 -n 3000 --policy naive --proto tcp --give-up-ms 20000 \
	--connect-timeout-ms 20000 --max-ms 60000 --seed 7 >"$D/feed.log" 2>&1 &
FEED=$!
for t in $(seq 1 16); do
	sleep 0.5
	[ "$t" = 6 ] && { kill -USR1 "$FEED_a" "$FEED_b"; echo "  -- backends now 4 ms per connection --"; }
	printf '  t=%4.1f s  rate in force: feed-a %4s/s, feed-b %4s/s; set-up p50 %3s / %3s ms\n' \
		"$(awk -v t="$t" 'BEGIN { print t * 0.5 }')" "$(rate feed-a)" "$(rate feed-b)" \
		"$(setup feed-a p50)" "$(setup feed-b p50)"
	kill -0 "$FEED" 2>/dev/null || break
done
wait "$FEED"
echo "  clients: $(cat "$D/feed.log")"
echo "  (reconnected=3000, refused=0: everyone got in, and when each connection cost the"
echo "  backends twice as much the learned rate dropped to about half within a second)"

bold "200 long-lived clients stay connected through what follows"
"$TPEER" chatter -c "$FRONT" -n 200 --duration-ms 6000 --interval-ms 250 --banner \
	>"$D/chatter.log" 2>&1 &
CHAT=$!
PIDS+=($CHAT)
sleep 1

bold "reload (SIGHUP): chat-a's max_conns drops to 100, about what its long-lived clients hold"
echo "the kernel's ledger is kept across the reload: chat-a is full, new clients go to chat-b,"
echo "and nobody already connected is touched:"
sed -i '/chat-a/s/max_conns = 300/max_conns = 100/' "$D/demo.conf"
kill -HUP "$SLUICED"
sleep 0.5
grep -o 'reload: generation.*' "$D/sluiced.log" | tail -1
"$TPEER" echo-clients -c "$FRONT" -n 500 -p 50 --banner

bold "reload back to both backends, then chat-b dies: clients land on chat-a"
conf
kill -HUP "$SLUICED"
sleep 0.5
kill "$PID_b"
wait "$PID_b" 2>/dev/null
"$TPEER" echo-clients -c "$FRONT" -n 500 -p 50 --banner
echo "(chat-b's long-lived clients lost their backend with it; the rest carry on)"

wait "$CHAT"
echo "long-lived clients: $(tail -n 1 "$D/chatter.log")"
"${CTL[@]}" status

bold "SIGTERM: listeners close, connections finish, sluiced exits 0"
kill -TERM "$SLUICED"
wait "$SLUICED"
echo "sluiced exit status: $?"
echo
echo "sluiced log:"
sed 's/^/  /' "$D/sluiced.log" | grep -v 'connect: Connection refused' | tail -n 12
