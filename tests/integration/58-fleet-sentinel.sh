#!/usr/bin/env bash
# A fleet whose Redis is highly available through Sentinel: a master, a
# replica and a sentinel (real redis-server and redis-sentinel processes,
# started here). Two sluice hosts name only the sentinel and the master's
# name: they ask it where the master is and coordinate. The master is
# killed: the sentinel promotes the replica, the hosts find the new master
# through the sentinel and coordinate again; their grants never sum past
# the totals meanwhile.
# timeout: 120
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null ||
	skip "redis-server or redis-sentinel not installed (make deps installs them)"
netns_setup
M=$(be_addr 9) R=$(be_addr 8) S=$(be_addr 7)
bg master "$BE" redis-server --bind "$M" --port 6379 --save "" --appendonly no --protected-mode no \
	--repl-diskless-sync-delay 0 --dir "$T" --dbfilename master.rdb
MASTER_PID=$LAST_PID
bg replica "$BE" redis-server --bind "$R" --port 6379 --save "" --appendonly no --protected-mode no \
	--replicaof "$M" 6379 --replica-announce-ip "$R" --repl-diskless-sync-delay 0 \
	--dir "$T" --dbfilename replica.rdb
wait_for 5 in_be redis-cli -h "$M" ping || fail "master did not start"
wait_for 5 in_be redis-cli -h "$R" ping || fail "replica did not start"
wait_for 10 sh -c "nsenter --net=/run/netns/$BE redis-cli -h $R info replication | grep -q master_link_status:up" ||
	fail "replica not in sync"
cat >"$T/sentinel.conf" <<CONF
bind $S
port 26379
protected-mode no
sentinel monitor mymaster $M 6379 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
CONF
bg sentinel "$BE" redis-sentinel "$T/sentinel.conf"
wait_for 5 in_be redis-cli -h "$S" -p 26379 ping || fail "sentinel did not start"
# the sentinel learns of replicas from the master's INFO: before the failover, it must know it
wait_for 15 sh -c "nsenter --net=/run/netns/$BE redis-cli -h $S -p 26379 sentinel replicas mymaster | grep -q '^$R\$'" ||
	fail "the sentinel does not know the replica"

host_conf() { # FILE NAME ADDR BPF
	cat >"$1" <<CONF
workers = 1;
admin = { address = "$ADMIN"; };
$4
fleet = { sentinels = [ "$S:26379" ]; master = "mymaster"; host = "$2";
          heartbeat_ms = 200; lease_ms = 2000; hosts = 2; };
listeners = ( { name = "front"; address = "$3:8080"; pool = "app"; } );
pools = ( { name = "app";
    servers = ( { name = "b1"; address = "$(be_addr 1):9000"; max_conns = 100; rate = 100; } ); } );
CONF
}
lb_host 2; NS2=$HOST_NS
host_conf "$T/h1.conf" h1 10.77.0.1 "$BPF_CONF"
host_conf "$T/h2.conf" h2 "$HOST_ADDR" "$HOST_BPF_CONF"
sluiced_start "$T/h1.conf"; H1=$SLUICED_PID
bg sluiced2 "$NS2" "$SLUICED" -c "$T/h2.conf"; H2=$LAST_PID
hctl() { local ns=$LB; [ "$1" = 2 ] && ns=$NS2; shift; in_ns "$ns" "$SLUICECTL" -a "$ADMIN" "$@"; }
hmetric() { hctl "$1" metrics | awk -v m="$2" '$1 == m { print $2; exit }'; }
coordinated() { [ "$(hmetric "$1" 'sluice_fleet_mode{mode="coordinated"}')" = 1 ] &&
	[ "$(hmetric "$1" sluice_fleet_hosts)" = 2 ]; }
part() { hmetric "$1" "sluice_fleet_share{pool=\"app\",backend=\"b1\",limit=\"max_conns\"}"; }
for h in 1 2; do wait_for 5 coordinated $h || { hctl $h fleet; fail "host $h not coordinated"; }; done
hctl 1 fleet | head -1 | grep -q "redis $M:6379" || fail "host 1 does not use the master: $(hctl 1 fleet | head -1)"
grep -q "master mymaster is at $M:6379" "$T/sluiced.log" || fail "no log of the master found"
say "both hosts coordinated through the sentinel (master $M)"

kill -9 "$MASTER_PID"
wait_for 15 sh -c "nsenter --net=/run/netns/$BE redis-cli -h $S -p 26379 sentinel get-master-addr-by-name mymaster | grep -q $R" ||
	fail "the sentinel did not promote the replica"
say "the sentinel promoted $R"
for h in 1 2; do
	wait_for 10 sh -c "nsenter --net=/run/netns/$([ $h = 1 ] && echo $LB || echo $NS2) $SLUICECTL -a $ADMIN fleet | head -1 | grep -q 'coordinated.*redis $R:6379'" ||
		{ hctl $h fleet; fail "host $h did not follow the new master"; }
done
s=$(($(part 1) + $(part 2)))
[ "$s" -le 100 ] || fail "grants sum to $s > 100 after the failover"
say "both hosts coordinated through the new master; grants sum to $s"
kill "$H1" "$H2"
wait_exit "$H1" 10 && wait_exit "$H2" 10 || fail "sluiced did not stop"
say "ok"
