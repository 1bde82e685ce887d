// SPDX-License-Identifier: MIT
/*
 * tpeer - the test peer for sluice: the servers and clients that the
 * integration tests put on either side of sluiced.
 *
 * One binary, one command per role (see usage_text). Everything is bounded
 * in time by --timeout-ms, every client prints one line of key=value pairs
 * and exits 0 only on full success, bad arguments exit 2.
 *
 * Data is a deterministic stream so that a sender and a verifier in
 * different processes agree without storing anything: byte i of the stream
 * with key K is byte (i % 8) of the little-endian word
 * splitmix64_mix(K + (i / 8 + 1) * golden). The generator is counter based,
 * so any offset can be produced directly, which is what lets the source
 * server regenerate after a partial send and the verifiers check data in
 * whatever pieces recv() hands them. Keys come from --seed:
 * stream_key(seed, 0) is the main stream (bulk, source, halfclose-*),
 * stream_key(seed, i + 1) is connection i of echo-clients/chatter/stream,
 * so data crossed between connections is caught as a mismatch.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "proxy/proxyproto.h"

#define NS_PER_MS UINT64_C(1000000)
#define IO_CHUNK (64 * 1024)		/* client recv/send buffer */
#define SRV_SCRATCH (256 * 1024)	/* server per-thread recv buffer */
#define SRC_CHUNK (64 * 1024)		/* source mode: bytes generated per send */
#define ECHO_PENDING_MAX (256 * 1024)	/* echo: stop reading above this */
#define BULK_CHUNK (256 * 1024)
#define MAX_FAIL_PRINT 5
#define NAME_MAX_LEN 64			/* --id and banner names */
#define LINE_MAX_LEN 128		/* banner line buffer */
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define FNV_INIT 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static const char usage_text[] =
	"usage: tpeer COMMAND [OPTIONS]\n"
	"\n"
	"Test peer for sluice. ADDR is a literal address and port: 127.0.0.1:9000 or\n"
	"[::1]:9000. Byte counts accept a k/m/g/t suffix (powers of 1024). Data is a\n"
	"splitmix64 stream chosen by --seed (default 1); checksums are FNV-1a 64,\n"
	"printed as 16 lowercase hex digits.\n"
	"\n"
	"Server:\n"
	"  tpeer serve -l ADDR --mode MODE [--id NAME] [--stats FILE] [--ready FILE]\n"
	"              [--threads N]\n"
	"    --mode echo            echo everything; at the client's EOF finish sending,\n"
	"                           shutdown(SHUT_WR), close\n"
	"    --mode banner          send \"NAME\\n\" on accept, then echo\n"
	"    --mode sink            read to EOF, reply \"bytes=N fnv=HEX16\\n\", close\n"
	"    --mode source --bytes B  send B stream bytes then shutdown(SHUT_WR), read\n"
	"                           to EOF counting bytes that arrive after our FIN\n"
	"    --mode rst             close every accepted connection with an RST\n"
	"    --mode refuse-after N  echo the first N connections, then stop listening\n"
	"                           (N also as refuse-after=N or --after N)\n"
	"    --mode stall           accept, then never read nor write (a hung server);\n"
	"                           a connection is closed only when its peer leaves\n"
	"    --id NAME              name for stats and banner (default tpeer)\n"
	"    --ready FILE           written (\"port=P\") once listening; port 0 = any\n"
	"    --stats FILE           key=value lines, rewritten (tmp + rename) every\n"
	"                           100 ms and at exit: id mode accepted active\n"
	"                           max_active bytes_in bytes_out closed resets errors\n"
	"                           + sink_done | source_done after_fin_bytes |\n"
	"                           rst_sent | refused\n"
	"    --threads N            N SO_REUSEPORT listeners, one epoll each (default 1)\n"
	"    --proxy                (echo, banner, refuse-after) every connection must\n"
	"                           begin with a PROXY protocol header, v1 or v2; it is\n"
	"                           answered with \"proxy SRCIP SRCPORT DSTIP DSTPORT\\n\"\n"
	"                           (\"proxy local\\n\" for v2 LOCAL or v1 UNKNOWN), then\n"
	"                           the mode goes on (the banner after that line). A\n"
	"                           malformed or missing header closes the connection.\n"
	"                           Stats: proxy_v1 proxy_v2 proxy_bad\n"
	"    --backlog N            listen() backlog (default 65535; the kernel caps it\n"
	"                           at net.core.somaxconn)\n"
	"    SIGTERM/SIGINT: write stats, print them on stdout, exit 0.\n"
	"\n"
	"Clients (one summary line on stdout; exit 0 only on full success):\n"
	"  tpeer echo-clients -c ADDR -n N [-p P] [--size B] [--rounds R] [--hold]\n"
	"              [--banner] [--proxy-line] [--reset]\n"
	"    N connections, at most P (default N) unfinished at once; each reads the\n"
	"    line \"proxy ...\" if --proxy-line (it must name this connection's own\n"
	"    address and port, then the address and port it connected to), the\n"
	"    banner line if --banner, then R (default 1) rounds of B (default 64)\n"
	"    bytes sent and verified. --hold keeps finished connections open until\n"
	"    all N finished (needs P = N). --reset closes each finished connection\n"
	"    with an RST (SO_LINGER 0) instead of a FIN.\n"
	"    -> ok= failed= max_open= elapsed_ms= backend.NAME=count...\n"
	"  tpeer bulk -c ADDR --bytes B            (against echo)\n"
	"    a writer thread sends B bytes then shutdown(SHUT_WR); the reader checks\n"
	"    every byte, exactly B then EOF.\n"
	"    -> bytes= fnv= secs= mbps=   (mbps: megabits per second)\n"
	"  tpeer halfclose-client -c ADDR --bytes B  (against sink)\n"
	"    send B bytes, shutdown(SHUT_WR), expect \"bytes=B fnv=HEX16\\n\" then EOF.\n"
	"    -> ok= bytes= fnv=\n"
	"  tpeer halfclose-server -c ADDR --bytes B --send S  (against source)\n"
	"    read exactly B stream bytes and EOF, then send S bytes, shutdown(SHUT_WR),\n"
	"    wait until our FIN is acked, expect EOF and no reset.\n"
	"    -> ok= received= sent=\n"
	"  tpeer chatter -c ADDR -n N --duration-ms D [--interval-ms I] [--size B]\n"
	"              [--banner] [--proxy-line] [-p P] [--rounds R]\n"
	"    open N connections (P connecting at once, default 200; each does R\n"
	"    untimed echo rounds first, default 0), then for D ms each\n"
	"    sends B (default 32) bytes every I (default 100) ms, start jittered, and\n"
	"    wants the echo within --io-timeout-ms (default 5000); then each does\n"
	"    shutdown(SHUT_WR) and waits for EOF. Any close, reset, timeout or\n"
	"    mismatch is a failure.\n"
	"    -> conns= msgs= failures= connect_failures= p50_us= p99_us= max_us=\n"
	"       backend.NAME=count... (round trips of the echoes)\n"
	"  tpeer hold -c ADDR -n N [--banner] [--proxy-line] [--wait-close-ms W] [-p P]\n"
	"    open N connections (P at once, default 200), one 16-byte echo round each,\n"
	"    print \"ready\" once all are open, then wait up to W ms (default 0) for\n"
	"    the peer to close them (times measured from \"ready\"). If some could not\n"
	"    be opened it prints the summary at once (no \"ready\") and exits 1.\n"
	"    W = 0: hold until SIGTERM/SIGINT, then close all and exit 0.\n"
	"    -> open= closed_by_peer= first_close_ms= last_close_ms= resets= stray_bytes=\n"
	"       max_closes_1s= (the most closes in any 1 s window)\n"
	"  tpeer stream -c ADDR -n N [-p P] [--window WIN] [--push [--bytes B]]\n"
	"              [--duration-ms D] [--wait-close-ms W] [--reset]\n"
	"    open N connections (P at once, default 200), print \"ready\" once all are\n"
	"    open, then stream on all of them at once. Echo (default): each keeps up\n"
	"    to WIN (default 64k) stream bytes unanswered, checks every byte echoed;\n"
	"    one with bytes unanswered and no progress for --io-timeout-ms is\n"
	"    \"stuck\". --push: only send (never read, not even what a server sends\n"
	"    first), at most B bytes each (default\n"
	"    no limit). After D ms (0: never) the ones still open finish: echo does\n"
	"    shutdown(SHUT_WR) and wants the rest echoed and EOF (\"clean\"); push\n"
	"    closes (with an RST if --reset). With --wait-close-ms the run also ends\n"
	"    that long after \"ready\"; SIGUSR1 brings the end of D at once. A close by\n"
	"    the peer is counted, not a failure.\n"
	"    -> open= failed= sent= received= min_received= closed_by_peer= resets=\n"
	"       clean= stuck= mismatches= first_close_ms= last_close_ms=\n"
	"       last_close_epoch_ms= (close times from \"ready\"; epoch: CLOCK_REALTIME)\n"
	"    exit 0 when all opened, none stuck or mismatched, deadline not hit.\n"
	"  tpeer connect-only -c ADDR -n N [-p P]\n"
	"    connect N times (P at once, default 100), close at once. Exit 0 unless\n"
	"    the deadline hit; the caller judges the numbers. Failures by kind:\n"
	"    refused (RST to our SYN), reset (handshake done, then RST before we\n"
	"    looked), timed_out.\n"
	"    -> ok= failed= refused= reset= timed_out= elapsed_ms=\n"
	"\n"
	"Common options:\n"
	"  --seed S                data stream seed (default 1)\n"
	"  --timeout-ms T          overall deadline (default 60000, 0 = none); when it\n"
	"                          passes, report and exit 1\n"
	"  --connect-timeout-ms T  per connection attempt (default 5000)\n"
	"  --io-timeout-ms T       longest wait for progress (default 10000; chatter:\n"
	"                          per message, default 5000)\n"
	"  -h, --help              this text\n"
	"Failure reasons (first few) go to stderr. Exit: 0 ok, 1 failed or deadline,\n"
	"2 bad arguments.\n";

/* ---- options ------------------------------------------------------------ */

/* Index of each option in long_opts, also its bit in the per-command masks. */
enum opt_idx {
	X_LISTEN,
	X_CONNECT,
	X_COUNT,
	X_PARALLEL,
	X_MODE,
	X_ID,
	X_STATS,
	X_READY,
	X_THREADS,
	X_BYTES,
	X_SEND,
	X_SEED,
	X_SIZE,
	X_ROUNDS,
	X_HOLD,
	X_BANNER,
	X_CTMO,
	X_IOTMO,
	X_TIMEOUT,
	X_DURATION,
	X_INTERVAL,
	X_WAITCLOSE,
	X_AFTER,
	X_RESET,
	X_PROXY,
	X_PROXYLINE,
	X_BACKLOG,
	X_PUSH,
	X_WINDOW,
	X_HELP,
	X_NR
};

#define OB(x) (1u << (x))
#define LONG_ONLY(x) (256 + (x))

static const struct option long_opts[] = {
	[X_LISTEN] = { "listen", required_argument, NULL, 'l' },
	[X_CONNECT] = { "connect", required_argument, NULL, 'c' },
	[X_COUNT] = { "count", required_argument, NULL, 'n' },
	[X_PARALLEL] = { "parallel", required_argument, NULL, 'p' },
	[X_MODE] = { "mode", required_argument, NULL, LONG_ONLY(X_MODE) },
	[X_ID] = { "id", required_argument, NULL, LONG_ONLY(X_ID) },
	[X_STATS] = { "stats", required_argument, NULL, LONG_ONLY(X_STATS) },
	[X_READY] = { "ready", required_argument, NULL, LONG_ONLY(X_READY) },
	[X_THREADS] = { "threads", required_argument, NULL, LONG_ONLY(X_THREADS) },
	[X_BYTES] = { "bytes", required_argument, NULL, LONG_ONLY(X_BYTES) },
	[X_SEND] = { "send", required_argument, NULL, LONG_ONLY(X_SEND) },
	[X_SEED] = { "seed", required_argument, NULL, LONG_ONLY(X_SEED) },
	[X_SIZE] = { "size", required_argument, NULL, LONG_ONLY(X_SIZE) },
	[X_ROUNDS] = { "rounds", required_argument, NULL, LONG_ONLY(X_ROUNDS) },
	[X_HOLD] = { "hold", no_argument, NULL, LONG_ONLY(X_HOLD) },
	[X_BANNER] = { "banner", no_argument, NULL, LONG_ONLY(X_BANNER) },
	[X_CTMO] = { "connect-timeout-ms", required_argument, NULL, LONG_ONLY(X_CTMO) },
	[X_IOTMO] = { "io-timeout-ms", required_argument, NULL, LONG_ONLY(X_IOTMO) },
	[X_TIMEOUT] = { "timeout-ms", required_argument, NULL, LONG_ONLY(X_TIMEOUT) },
	[X_DURATION] = { "duration-ms", required_argument, NULL, LONG_ONLY(X_DURATION) },
	[X_INTERVAL] = { "interval-ms", required_argument, NULL, LONG_ONLY(X_INTERVAL) },
	[X_WAITCLOSE] = { "wait-close-ms", required_argument, NULL, LONG_ONLY(X_WAITCLOSE) },
	[X_AFTER] = { "after", required_argument, NULL, LONG_ONLY(X_AFTER) },
	[X_RESET] = { "reset", no_argument, NULL, LONG_ONLY(X_RESET) },
	[X_PROXY] = { "proxy", no_argument, NULL, LONG_ONLY(X_PROXY) },
	[X_PROXYLINE] = { "proxy-line", no_argument, NULL, LONG_ONLY(X_PROXYLINE) },
	[X_BACKLOG] = { "backlog", required_argument, NULL, LONG_ONLY(X_BACKLOG) },
	[X_PUSH] = { "push", no_argument, NULL, LONG_ONLY(X_PUSH) },
	[X_WINDOW] = { "window", required_argument, NULL, LONG_ONLY(X_WINDOW) },
	[X_HELP] = { "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

enum srv_mode { SM_ECHO, SM_BANNER, SM_SINK, SM_SOURCE, SM_RST, SM_REFUSE, SM_STALL, SM_NR };
static const char *const srv_mode_names[SM_NR] = {
	"echo", "banner", "sink", "source", "rst", "refuse-after", "stall",
};

struct opts {
	const char *cmd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *addr_str;
	int mode;
	uint64_t after;
	const char *id;
	const char *stats;
	const char *ready;
	uint64_t threads;
	uint64_t bytes;
	uint64_t send;
	uint64_t seed;
	uint64_t n;
	uint64_t parallel;
	uint64_t size;
	uint64_t rounds;
	bool hold;
	bool banner;
	bool reset;
	bool proxy;		/* serve: a PROXY header first */
	bool proxy_line;	/* clients: a "proxy ..." line first */
	bool push;
	uint64_t backlog;
	uint64_t window;
	uint64_t connect_tmo_ms;
	uint64_t io_tmo_ms;
	uint64_t timeout_ms;
	uint64_t duration_ms;
	uint64_t interval_ms;
	uint64_t wait_close_ms;
	uint32_t seen;		/* OB(X_*) of the options given */
};

static struct opts opt;
static uint64_t deadline_ns;	/* 0: no overall deadline */
static unsigned long fails_noted;

/* ---- messages, time ------------------------------------------------------ */

static void __attribute__((format(printf, 1, 2), noreturn)) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("tpeer: ", stderr);
	if (opt.cmd)
		fprintf(stderr, "%s: ", opt.cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see tpeer -h)\n", stderr);
	exit(2);
}

static void verrmsg(const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	fprintf(stderr, "tpeer: %s: %s\n", opt.cmd ? opt.cmd : "main", buf);
}

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrmsg(fmt, ap);
	va_end(ap);
}

/* Per-connection failures: only the first few are worth reading. */
static void vnote_fail(const char *fmt, va_list ap)
{
	fails_noted++;
	if (fails_noted <= MAX_FAIL_PRINT)
		verrmsg(fmt, ap);
	else if (fails_noted == MAX_FAIL_PRINT + 1)
		errmsg("(further failures not shown)");
}

static void __attribute__((format(printf, 1, 2))) note_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnote_fail(fmt, ap);
	va_end(ap);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool deadline_passed(uint64_t now)
{
	return deadline_ns && now >= deadline_ns;
}

/* Milliseconds from now until t, rounded up, at most cap. */
static int ms_until(uint64_t t, uint64_t now, int cap)
{
	uint64_t ms;

	if (t <= now)
		return 0;
	ms = (t - now + NS_PER_MS - 1) / NS_PER_MS;
	return ms < (uint64_t)cap ? (int)ms : cap;
}

static const char *err_str(int err)
{
	if (err == ETIME)
		return "overall deadline (--timeout-ms) reached";
	if (err == ETIMEDOUT)
		return "timed out";
	return strerror(err);
}

/* ---- data: stream and checksum ------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t stream_key(uint64_t seed, uint64_t idx)
{
	return mix64(mix64(seed) + mix64(idx));
}

static inline uint64_t stream_word(uint64_t key, uint64_t k)
{
	return htole64(mix64(key + (k + 1) * GOLDEN));
}

/* Fill buf with stream bytes [off, off + len). */
static void stream_fill(uint64_t key, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t k = off >> 3, w;
	unsigned skip = off & 7;

	if (skip && len) {
		size_t n = 8 - skip < len ? 8 - skip : len;

		w = stream_word(key, k++);
		memcpy(p, (uint8_t *)&w + skip, n);
		p += n;
		len -= n;
	}
	for (; len >= 8; len -= 8, p += 8) {
		w = stream_word(key, k++);
		memcpy(p, &w, 8);
	}
	if (len) {
		w = stream_word(key, k);
		memcpy(p, &w, len);
	}
}

/* Index of the first byte of buf that differs from the stream at off, or len. */
static size_t stream_check(uint64_t key, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	uint8_t exp[4096];
	size_t done = 0;

	while (done < len) {
		size_t n = len - done < sizeof(exp) ? len - done : sizeof(exp);

		stream_fill(key, off + done, exp, n);
		if (memcmp(exp, b + done, n)) {
			size_t i = 0;

			while (exp[i] == b[done + i])
				i++;
			return done + i;
		}
		done += n;
	}
	return len;
}

static uint64_t fnv1a(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* ---- sockets ------------------------------------------------------------- */

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Close with SO_LINGER {1, 0}: the peer gets an RST instead of a FIN. */
static void rst_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/*
 * Start a non-blocking connect to opt.addr. Returns 0 when connected at
 * once, 1 when in progress (*fdp is set either way), -errno on failure.
 */
static int connect_start(int *fdp)
{
	int fd, err;

	*fdp = -1;
	fd = socket(opt.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen) == 0) {
		*fdp = fd;
		return 0;
	}
	if (errno == EINPROGRESS) {
		*fdp = fd;
		return 1;
	}
	err = errno;
	close(fd);
	return -err;
}

/*
 * Wait until fd is ready for events, for at most io_ms and never past the
 * overall deadline. Returns 0 when ready (errors included: the next call
 * reports them), -ETIMEDOUT, -ETIME (deadline) or -ECANCELED when *stop
 * became set.
 */
static int wait_fd(int fd, short events, uint64_t io_ms, const int *stop)
{
	uint64_t now = now_ns(), until = now + io_ms * NS_PER_MS;
	bool dl = false;

	if (deadline_ns && deadline_ns < until) {
		until = deadline_ns;
		dl = true;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, ms_until(until, now, 100));

		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))
			return -ECANCELED;
		now = now_ns();
		if (now >= until)
			return dl ? -ETIME : -ETIMEDOUT;
	}
}

/* Blocking-style connect with --connect-timeout-ms. Returns 0 or -errno. */
static int connect_wait(int *fdp)
{
	int r = connect_start(fdp), err;

	if (r <= 0)
		return r;
	r = wait_fd(*fdp, POLLOUT, opt.connect_tmo_ms, NULL);
	if (!r) {
		err = sock_error(*fdp);
		r = err ? -err : 0;
	}
	if (r) {
		close(*fdp);
		*fdp = -1;
	}
	return r;
}

static int send_wait(int fd, const void *buf, size_t len, const int *stop)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
		int w;

		if (r >= 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		w = wait_fd(fd, POLLOUT, opt.io_tmo_ms, stop);
		if (w)
			return w;
	}
	return 0;
}

/* Returns bytes received, 0 at EOF, or -errno. */
static ssize_t recv_wait(int fd, void *buf, size_t len, const int *stop)
{
	for (;;) {
		ssize_t r = recv(fd, buf, len, 0);
		int w;

		if (r >= 0)
			return r;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		w = wait_fd(fd, POLLIN, opt.io_tmo_ms, stop);
		if (w)
			return w;
	}
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Refuse up front what cannot work: N connections need N descriptors. */
static void check_fds(uint64_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return;
	if (need + 32 > rl.rlim_cur)
		usage_error("%" PRIu64 " connections need more file descriptors than "
			    "RLIMIT_NOFILE (%llu) allows",
			    need, (unsigned long long)rl.rlim_cur);
}

/* Write path atomically (tmp file + rename), so readers never see half. */
static int write_file_atomic(const char *path, const char *buf, size_t len)
{
	char tmp[PATH_MAX];
	int fd, err = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t r = write(fd, buf, len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		buf += r;
		len -= (size_t)r;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/*
 * IP and port of SS as text; UNMAP writes an IPv4-mapped IPv6 address as
 * the IPv4 address it is (as a PROXY header announces it).
 */
static void addr_text(const struct sockaddr_storage *ss, bool unmap, char *ip, size_t size,
		      unsigned *port)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)size);
		*port = ntohs(in->sin_port);
	} else if (unmap && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, ip, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
	} else {
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
	}
}

/* ---- serve ----------------------------------------------------------------- */

/* Totals across worker threads; updated with relaxed atomics. */
struct srv_stats {
	uint64_t accepted;
	uint64_t active;
	uint64_t max_active;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t closed;
	uint64_t resets;
	uint64_t errors;
	uint64_t sink_done;
	uint64_t source_done;
	uint64_t after_fin_bytes;
	uint64_t refused;
	uint64_t rst_sent;
	uint64_t accept_errors;
	uint64_t proxy_v1;	/* --proxy: headers parsed, by version */
	uint64_t proxy_v2;
	uint64_t proxy_bad;	/* --proxy: malformed, or EOF before a whole header */
};

#define SST_ADD(f, v) __atomic_add_fetch(&sst.f, (uint64_t)(v), __ATOMIC_RELAXED)
#define SST_GET(f) __atomic_load_n(&sst.f, __ATOMIC_RELAXED)

struct sconn {
	struct sconn *prev, *next;
	int fd;
	uint32_t ev;		/* epoll interest currently registered */
	int err;		/* errno that ends the connection, 0 while fine */
	bool rd_eof;
	bool wr_shut;
	bool replied;
	bool pp_wait;		/* --proxy: the header is not whole yet */
	bool drop;		/* close without counting an error */
	uint8_t *hdr;		/* --proxy: what came so far, header and after */
	size_t hdr_len;
	uint8_t *out;		/* pending output [out_off, out_len) */
	size_t out_off, out_len, out_cap;
	uint64_t nin;
	uint64_t fnv;
	uint64_t sent;		/* source: stream bytes sent */
};

struct worker {
	pthread_t tid;
	int ep;
	int lfd;
	bool lregistered;
	uint64_t lresume;	/* accept paused (EMFILE) until then */
	uint8_t *scratch;
	struct sconn head;	/* list of live connections */
};

static struct srv_stats sst;
static struct worker *workers;
static unsigned nworkers;
static int srv_stop;
static int listeners_down;
static uint64_t refuse_seen;
static uint64_t src_key;
static char banner_line[NAME_MAX_LEN + 2];
static size_t banner_len;

static void sst_active_inc(void)
{
	uint64_t a = SST_ADD(active, 1), m = SST_GET(max_active);

	while (a > m && !__atomic_compare_exchange_n(&sst.max_active, &m, a, true,
						     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * refuse-after: stop listening everywhere. shutdown() on a listening socket
 * takes it out of LISTEN (queued connections are reset, new SYNs refused)
 * while the descriptor stays valid, so no other thread can race on a
 * closed and reused fd number; the fds are closed by main at exit.
 */
static void listeners_shutdown(void)
{
	if (__atomic_exchange_n(&listeners_down, 1, __ATOMIC_ACQ_REL))
		return;
	for (unsigned i = 0; i < nworkers; i++)
		shutdown(workers[i].lfd, SHUT_RDWR);
}

static void srv_listen_ctl(struct worker *w, bool on)
{
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = NULL };

	if (on && !w->lregistered) {
		if (!epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ee))
			w->lregistered = true;
	} else if (!on && w->lregistered) {
		epoll_ctl(w->ep, EPOLL_CTL_DEL, w->lfd, NULL);
		w->lregistered = false;
	}
}

static int out_append(struct sconn *c, const void *p, size_t len)
{
	size_t pend = c->out_len - c->out_off;

	if (c->out_off && c->out_cap - c->out_len < len) {
		memmove(c->out, c->out + c->out_off, pend);
		c->out_off = 0;
		c->out_len = pend;
	}
	if (c->out_cap - c->out_len < len) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		uint8_t *n;

		while (cap - c->out_len < len)
			cap *= 2;
		n = realloc(c->out, cap);
		if (!n)
			return -ENOMEM;
		c->out = n;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
	return 0;
}

static size_t srv_pending(const struct sconn *c)
{
	return c->out_len - c->out_off;
}

static bool srv_is_echo(void)
{
	return opt.mode == SM_ECHO || opt.mode == SM_BANNER || opt.mode == SM_REFUSE;
}

static bool srv_wants_read(const struct sconn *c)
{
	if (c->rd_eof || opt.mode == SM_STALL)
		return false;
	return !srv_is_echo() || srv_pending(c) <= ECHO_PENDING_MAX;
}

/* Send what is pending, then (source) more of the stream. */
static void srv_flush(struct worker *w, struct sconn *c)
{
	ssize_t r;

	while (c->out_off < c->out_len) {
		r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				c->err = errno;
			return;
		}
		SST_ADD(bytes_out, r);
		c->out_off += (size_t)r;
	}
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = c->out_cap = 0;
	if (opt.mode != SM_SOURCE)
		return;
	while (c->sent < opt.bytes) {
		size_t n = opt.bytes - c->sent < SRC_CHUNK ? opt.bytes - c->sent : SRC_CHUNK;

		stream_fill(src_key, c->sent, w->scratch, n);
		r = send(c->fd, w->scratch, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				c->err = errno;
			return;
		}
		SST_ADD(bytes_out, r);
		c->sent += (uint64_t)r;
		if ((size_t)r < n)
			return;
	}
}

/* Echo data: straight back when nothing is queued, the rest is queued. */
static void srv_echo(struct sconn *c, const uint8_t *p, size_t len)
{
	size_t off = 0;

	if (!srv_pending(c)) {
		ssize_t r = send(c->fd, p, len, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				c->err = errno;
				return;
			}
			r = 0;
		}
		SST_ADD(bytes_out, r);
		off = (size_t)r;
	}
	if (off < len && out_append(c, p + off, len - off))
		c->err = ENOMEM;
}

/*
 * --proxy: bytes that came before the header was whole. Once it is, the
 * "proxy ..." line (and the banner) are queued, and what came after the
 * header is the mode's data.
 */
static void srv_proxy_input(struct sconn *c, const uint8_t *p, size_t len)
{
	char line[2 * INET6_ADDRSTRLEN + 32], sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
	struct sockaddr_storage src, dst;
	unsigned sport, dport;
	uint8_t *nb;
	int rc, n;

	nb = realloc(c->hdr, c->hdr_len + len);
	if (!nb) {
		c->err = ENOMEM;
		return;
	}
	c->hdr = nb;
	memcpy(c->hdr + c->hdr_len, p, len);
	c->hdr_len += len;
	rc = proxyproto_parse(c->hdr, c->hdr_len, &src, &dst);
	if (rc == 0)
		return;
	if (rc < 0) {
		SST_ADD(proxy_bad, 1);
		c->drop = true;
		return;
	}
	if (c->hdr[0] == 'P')
		SST_ADD(proxy_v1, 1);
	else
		SST_ADD(proxy_v2, 1);
	if (src.ss_family == AF_UNSPEC) {
		n = snprintf(line, sizeof(line), "proxy local\n");
	} else {
		addr_text(&src, false, sip, sizeof(sip), &sport);
		addr_text(&dst, false, dip, sizeof(dip), &dport);
		n = snprintf(line, sizeof(line), "proxy %s %u %s %u\n", sip, sport, dip, dport);
	}
	c->pp_wait = false;
	if (out_append(c, line, (size_t)n) ||
	    (opt.mode == SM_BANNER && out_append(c, banner_line, banner_len))) {
		c->err = ENOMEM;
		return;
	}
	/* queued behind the line: srv_echo sends directly only when nothing is */
	if ((size_t)rc < c->hdr_len)
		srv_echo(c, c->hdr + rc, c->hdr_len - (size_t)rc);
	free(c->hdr);
	c->hdr = NULL;
	c->hdr_len = 0;
}

static void srv_read(struct worker *w, struct sconn *c)
{
	for (int i = 0; i < 8 && srv_wants_read(c); i++) {
		ssize_t r = recv(c->fd, w->scratch, SRV_SCRATCH, 0);

		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				c->err = errno;
			return;
		}
		if (r == 0) {
			c->rd_eof = true;
			return;
		}
		SST_ADD(bytes_in, r);
		switch (opt.mode) {
		case SM_SINK:
			c->nin += (uint64_t)r;
			c->fnv = fnv1a(c->fnv, w->scratch, (size_t)r);
			break;
		case SM_SOURCE:
			c->nin += (uint64_t)r;
			if (c->wr_shut)
				SST_ADD(after_fin_bytes, r);
			break;
		default:
			if (c->pp_wait)
				srv_proxy_input(c, w->scratch, (size_t)r);
			else
				srv_echo(c, w->scratch, (size_t)r);
			if (c->err || c->drop)
				return;
			break;
		}
		if (r < SRV_SCRATCH)
			return;
	}
}

static void srv_close(struct worker *w, struct sconn *c)
{
	if (c->err == ECONNRESET || c->err == EPIPE)
		SST_ADD(resets, 1);
	else if (c->err)
		SST_ADD(errors, 1);
	close(c->fd);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	free(c->out);
	free(c->hdr);
	free(c);
	SST_ADD(closed, 1);
	__atomic_sub_fetch(&sst.active, 1, __ATOMIC_RELAXED);
}

/* After any progress: finish the connection or set what it waits for. */
static void srv_step(struct worker *w, struct sconn *c)
{
	struct epoll_event ee;
	uint32_t ev = 0;

	if (c->err) {
		srv_close(w, c);
		return;
	}
	switch (opt.mode) {
	case SM_SINK:
		if (c->rd_eof && !c->replied) {
			char line[80];
			int n = snprintf(line, sizeof(line), "bytes=%" PRIu64 " fnv=%016" PRIx64 "\n",
					 c->nin, c->fnv);

			c->replied = true;
			if (out_append(c, line, (size_t)n)) {
				c->err = ENOMEM;
				srv_close(w, c);
				return;
			}
			srv_flush(w, c);
			if (c->err) {
				srv_close(w, c);
				return;
			}
		}
		if (c->replied && !srv_pending(c)) {
			SST_ADD(sink_done, 1);
			srv_close(w, c);
			return;
		}
		if (!c->rd_eof)
			ev |= EPOLLIN;
		if (srv_pending(c))
			ev |= EPOLLOUT;
		break;
	case SM_SOURCE:
		if (c->sent == opt.bytes && !c->wr_shut) {
			shutdown(c->fd, SHUT_WR);
			c->wr_shut = true;
		}
		if (c->wr_shut && c->rd_eof) {
			SST_ADD(source_done, 1);
			srv_close(w, c);
			return;
		}
		if (!c->rd_eof)
			ev |= EPOLLIN;
		if (!c->wr_shut)
			ev |= EPOLLOUT;
		break;
	default:
		if (c->pp_wait && c->rd_eof) {
			/* no header at all, or only part of one */
			SST_ADD(proxy_bad, 1);
			c->drop = true;
		}
		if (c->drop) {
			srv_close(w, c);
			return;
		}
		if (c->rd_eof && !srv_pending(c)) {
			shutdown(c->fd, SHUT_WR);
			srv_close(w, c);
			return;
		}
		if (srv_wants_read(c))
			ev |= EPOLLIN;
		if (srv_pending(c))
			ev |= EPOLLOUT;
		break;
	}
	if (ev != c->ev) {
		ee.events = ev;
		ee.data.ptr = c;
		if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ee)) {
			c->err = errno;
			srv_close(w, c);
			return;
		}
		c->ev = ev;
	}
}

static void srv_event(struct worker *w, struct sconn *c, uint32_t events)
{
	if (events & EPOLLERR)
		c->err = sock_error(c->fd);
	if (opt.mode == SM_STALL) {
		/* never reads: the peer leaving (FIN, RST) is all it notices */
		if (!c->err && (events & (EPOLLRDHUP | EPOLLHUP)))
			c->err = sock_error(c->fd);
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			srv_close(w, c);
		return;
	}
	if (!c->err && (events & (EPOLLIN | EPOLLHUP)) && srv_wants_read(c))
		srv_read(w, c);
	if (!c->err)
		srv_flush(w, c);
	srv_step(w, c);
}

static void srv_new_conn(struct worker *w, int fd)
{
	struct epoll_event ee;
	struct sconn *c;
	bool last = false;

	if (opt.mode == SM_RST) {
		rst_close(fd);
		SST_ADD(accepted, 1);
		SST_ADD(closed, 1);
		SST_ADD(rst_sent, 1);
		return;
	}
	if (opt.mode == SM_REFUSE) {
		uint64_t idx = __atomic_fetch_add(&refuse_seen, 1, __ATOMIC_RELAXED);

		/* another thread's listener took one more before the shutdown */
		if (idx >= opt.after) {
			rst_close(fd);
			SST_ADD(refused, 1);
			listeners_shutdown();
			return;
		}
		last = idx + 1 == opt.after;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rst_close(fd);
		SST_ADD(accept_errors, 1);
		return;
	}
	c->fd = fd;
	c->fnv = FNV_INIT;
	set_nodelay(fd);
	SST_ADD(accepted, 1);
	sst_active_inc();
	c->next = w->head.next;
	c->prev = &w->head;
	w->head.next->prev = c;
	w->head.next = c;
	c->pp_wait = opt.proxy;
	/* with --proxy the banner follows the "proxy ..." line */
	if (opt.mode == SM_BANNER && !opt.proxy && out_append(c, banner_line, banner_len))
		c->err = ENOMEM;
	c->ev = opt.mode == SM_STALL ? EPOLLRDHUP : EPOLLIN;
	ee.events = c->ev;
	ee.data.ptr = c;
	if (!c->err && epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ee))
		c->err = errno;
	if (opt.mode == SM_STALL) {
		if (c->err)
			srv_close(w, c);
		return;
	}
	if (!c->err)
		srv_flush(w, c);
	srv_step(w, c);
	if (last)
		listeners_shutdown();
}

static void srv_accept(struct worker *w)
{
	static uint64_t last_log;

	for (int i = 0; i < 256; i++) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			srv_new_conn(w, fd);
			if (__atomic_load_n(&listeners_down, __ATOMIC_RELAXED))
				return;
			continue;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno == ECONNABORTED)
			continue;
		if (__atomic_load_n(&listeners_down, __ATOMIC_RELAXED))
			return;
		SST_ADD(accept_errors, 1);
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* level-triggered: would spin, so pause accepting for a moment */
			uint64_t now = now_ns(), prev = __atomic_load_n(&last_log, __ATOMIC_RELAXED);

			if (now - prev > 1000 * NS_PER_MS) {
				__atomic_store_n(&last_log, now, __ATOMIC_RELAXED);
				errmsg("accept: %s (pausing 100 ms)", strerror(errno));
			}
			srv_listen_ctl(w, false);
			w->lresume = now + 100 * NS_PER_MS;
		}
		return;
	}
}

static void *srv_worker(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];

	while (!__atomic_load_n(&srv_stop, __ATOMIC_RELAXED)) {
		int n = epoll_wait(w->ep, evs, 256, 100);

		if (n < 0 && errno != EINTR) {
			errmsg("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;

			if (c)
				srv_event(w, c, evs[i].events);
			else if (!__atomic_load_n(&listeners_down, __ATOMIC_RELAXED))
				srv_accept(w);
		}
		if (__atomic_load_n(&listeners_down, __ATOMIC_RELAXED))
			srv_listen_ctl(w, false);
		else if (!w->lregistered && now_ns() >= w->lresume)
			srv_listen_ctl(w, true);
	}
	return NULL;
}

static int srv_stats_text(char *buf, size_t size, char sep)
{
	int n;

	n = snprintf(buf, size,
		     "id=%s%cmode=%s%caccepted=%" PRIu64 "%cactive=%" PRIu64
		     "%cmax_active=%" PRIu64 "%cbytes_in=%" PRIu64 "%cbytes_out=%" PRIu64
		     "%cclosed=%" PRIu64 "%cresets=%" PRIu64 "%cerrors=%" PRIu64
		     "%caccept_errors=%" PRIu64,
		     opt.id, sep, srv_mode_names[opt.mode], sep, SST_GET(accepted), sep,
		     SST_GET(active), sep, SST_GET(max_active), sep, SST_GET(bytes_in), sep,
		     SST_GET(bytes_out), sep, SST_GET(closed), sep, SST_GET(resets), sep,
		     SST_GET(errors), sep, SST_GET(accept_errors));
	switch (opt.mode) {
	case SM_SINK:
		n += snprintf(buf + n, size - (size_t)n, "%csink_done=%" PRIu64, sep,
			      SST_GET(sink_done));
		break;
	case SM_SOURCE:
		n += snprintf(buf + n, size - (size_t)n,
			      "%csource_done=%" PRIu64 "%cafter_fin_bytes=%" PRIu64, sep,
			      SST_GET(source_done), sep, SST_GET(after_fin_bytes));
		break;
	case SM_RST:
		n += snprintf(buf + n, size - (size_t)n, "%crst_sent=%" PRIu64, sep,
			      SST_GET(rst_sent));
		break;
	case SM_REFUSE:
		n += snprintf(buf + n, size - (size_t)n, "%crefused=%" PRIu64, sep,
			      SST_GET(refused));
		break;
	}
	if (opt.proxy)
		n += snprintf(buf + n, size - (size_t)n,
			      "%cproxy_v1=%" PRIu64 "%cproxy_v2=%" PRIu64 "%cproxy_bad=%" PRIu64,
			      sep, SST_GET(proxy_v1), sep, SST_GET(proxy_v2), sep,
			      SST_GET(proxy_bad));
	n += snprintf(buf + n, size - (size_t)n, "\n");
	return n;
}

static void srv_write_stats(void)
{
	static bool warned;
	char buf[1024];
	int n, err;

	if (!opt.stats)
		return;
	n = srv_stats_text(buf, sizeof(buf), '\n');
	err = write_file_atomic(opt.stats, buf, (size_t)n);
	if (err && !warned) {
		warned = true;
		errmsg("%s: %s", opt.stats, strerror(-err));
	}
}

static int srv_listen_socket(uint16_t port)
{
	struct sockaddr_storage a = opt.addr;
	int fd, one = 1;

	if (a.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&a)->sin_port = htons(port);
	fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* only when asked: a stale server on the port must make bind fail */
	if (nworkers > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto err;
	if (bind(fd, (struct sockaddr *)&a, opt.addrlen) || listen(fd, (int)opt.backlog))
		goto err;
	return fd;
err:
	one = errno;
	close(fd);
	return -one;
}

static uint16_t addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
	return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

static int run_serve(void)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	uint16_t port = addr_port(&opt.addr);
	sigset_t set;
	char line[1024];
	int rc = 1, err;
	unsigned started = 0;

	if (opt.mode == SM_SOURCE && !(opt.seen & OB(X_BYTES)))
		usage_error("--mode source needs --bytes");
	if (opt.mode != SM_SOURCE && (opt.seen & OB(X_BYTES)))
		usage_error("--bytes applies to --mode source only");
	if (opt.mode != SM_REFUSE && (opt.seen & OB(X_AFTER)))
		usage_error("--after applies to --mode refuse-after only");
	if (opt.proxy && !srv_is_echo())
		usage_error("--proxy applies to --mode echo, banner and refuse-after");

	src_key = stream_key(opt.seed, 0);
	banner_len = (size_t)snprintf(banner_line, sizeof(banner_line), "%s\n", opt.id);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	nworkers = (unsigned)opt.threads;
	workers = calloc(nworkers, sizeof(*workers));
	if (!workers) {
		errmsg("out of memory");
		return 1;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		w->lfd = -1;
		w->ep = -1;
		w->head.next = w->head.prev = &w->head;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		w->lfd = srv_listen_socket(port);
		if (w->lfd < 0) {
			errmsg("listen on %s: %s", opt.addr_str, strerror(-w->lfd));
			goto out;
		}
		if (i == 0 && getsockname(w->lfd, (struct sockaddr *)&bound, &blen) == 0)
			port = addr_port(&bound);
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->scratch = malloc(SRV_SCRATCH);
		if (w->ep < 0 || !w->scratch) {
			errmsg("epoll/scratch: %s", strerror(errno));
			goto out;
		}
		srv_listen_ctl(w, true);
	}
	for (; started < nworkers; started++) {
		err = pthread_create(&workers[started].tid, NULL, srv_worker, &workers[started]);
		if (err) {
			errmsg("pthread_create: %s", strerror(err));
			goto stop;
		}
	}
	if (opt.mode == SM_REFUSE && opt.after == 0)
		listeners_shutdown();
	if (opt.ready) {
		int n = snprintf(line, sizeof(line), "port=%u\n", port);

		err = write_file_atomic(opt.ready, line, (size_t)n);
		if (err) {
			errmsg("%s: %s", opt.ready, strerror(-err));
			goto stop;
		}
	}
	for (;;) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * NS_PER_MS };
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			rc = 0;
			break;
		}
		if (deadline_passed(now_ns())) {
			errmsg("%s", err_str(ETIME));
			break;
		}
		srv_write_stats();
	}
stop:
	__atomic_store_n(&srv_stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);
	/* counters are final now: connections still open are not counted closed */
	srv_write_stats();
	srv_stats_text(line, sizeof(line), ' ');
	fputs(line, stdout);
	fflush(stdout);
out:
	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		while (w->head.next != &w->head) {
			struct sconn *c = w->head.next;

			w->head.next = c->next;
			close(c->fd);
			free(c->out);
			free(c->hdr);
			free(c);
		}
		if (w->lfd >= 0)
			close(w->lfd);
		if (w->ep >= 0)
			close(w->ep);
		free(w->scratch);
	}
	free(workers);
	return rc;
}

/* ---- client engine: connect, banner, echo rounds -------------------------- */

enum cl_state {
	CL_IDLE,	/* not started */
	CL_CONNECTING,
	CL_PROXY,	/* reading the "proxy ..." line */
	CL_BANNER,	/* reading the banner line */
	CL_ROUNDS,	/* echo rounds */
	CL_OPEN,	/* opened and kept open (counted ok) */
	CL_CLOSING,	/* chatter: shutdown(SHUT_WR) sent, waiting for EOF */
	CL_DONE,	/* closed */
};

struct cl {
	int fd;
	uint32_t idx;
	uint32_t ev;
	uint8_t state;
	bool reg;		/* registered with epoll */
	bool estab;		/* counted in eng.estab */
	bool busy;		/* chatter: a message is outstanding */
	uint16_t line_len;
	uint64_t key;
	uint64_t round;		/* echo round, or chatter message number */
	uint64_t sent, rcvd;	/* within the current round/message */
	uint64_t deadline;
	uint64_t next_send;	/* chatter */
	char line[LINE_MAX_LEN];
};

struct tally_ent {
	char name[NAME_MAX_LEN + 1];
	uint64_t count;
};

/*
 * Opens n connections, at most par of them unfinished at once. Each one
 * connects, reads a banner line if asked, does `rounds` echo rounds of
 * `size` bytes, and is then closed, or kept open (CL_OPEN) when `keep`.
 * A kept connection that is closed or sent data while the others are still
 * opening has failed ("lost"). Commands then run their own phase on the
 * kept connections.
 */
struct eng {
	int ep;
	struct cl *c;
	uint64_t n, par, size, rounds;
	bool banner, keep, proxy_line;
	uint64_t next;		/* next connection to start */
	uint64_t inflight;	/* started, not finished */
	uint64_t finished;	/* ok + failed */
	uint64_t ok;		/* finished opening and not lost since */
	uint64_t failed;	/* failed while opening */
	uint64_t lost;		/* failed after opening (kept connections) */
	uint64_t estab, max_estab;
	uint64_t refused, reset, ctimeout;	/* connect failures by kind */
	bool timed_out, got_sig;
	uint64_t io_ns;
	uint64_t ivl_ns;	/* chatter */
	uint64_t msgs;		/* chatter */
	uint32_t *lat_us;	/* chatter: each echo's round trip, µs (nlat of them) */
	uint64_t nlat, caplat;
	uint8_t *sbuf, *rbuf;
	struct tally_ent *tally;
	size_t ntally;
};

static void tally_add(struct eng *e, const char *name)
{
	struct tally_ent *t;
	size_t i, len;

	for (i = 0; i < e->ntally; i++) {
		if (!strcmp(e->tally[i].name, name)) {
			e->tally[i].count++;
			return;
		}
	}
	t = realloc(e->tally, (e->ntally + 1) * sizeof(*t));
	if (!t)
		return;
	e->tally = t;
	t = &e->tally[e->ntally++];
	len = strnlen(name, sizeof(t->name) - 1);
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	/* keep the summary line parseable */
	for (char *p = t->name; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
			*p = '_';
	}
	t->count = 1;
}

static int tally_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tally_ent *)a)->name, ((const struct tally_ent *)b)->name);
}

static void tally_print(struct eng *e)
{
	if (e->ntally)
		qsort(e->tally, e->ntally, sizeof(*e->tally), tally_cmp);
	for (size_t i = 0; i < e->ntally; i++)
		printf(" backend.%s=%" PRIu64, e->tally[i].name, e->tally[i].count);
}

static void cl_close_fd(struct eng *e, struct cl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->reg = false;
	if (c->estab) {
		c->estab = false;
		e->estab--;
	}
}

/* C's business is over: close (with an RST under --reset) and mark it done. */
static void cl_done(struct eng *e, struct cl *c)
{
	if (opt.reset && c->fd >= 0) {
		rst_close(c->fd);
		c->fd = -1;
	}
	cl_close_fd(e, c);
	c->state = CL_DONE;
}

static void __attribute__((format(printf, 3, 4))) cl_fail(struct eng *e, struct cl *c,
							   const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	switch (c->state) {
	case CL_DONE:
		return;
	case CL_OPEN:
	case CL_CLOSING:
		e->ok--;
		e->lost++;
		break;
	default:
		e->inflight--;
		e->finished++;
		e->failed++;
		break;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	note_fail("conn %u: %s", c->idx, buf);
	cl_close_fd(e, c);
	c->state = CL_DONE;
}

static int cl_set_ev(struct eng *e, struct cl *c, uint32_t ev)
{
	struct epoll_event ee = { .events = ev, .data.ptr = c };

	if (c->reg && c->ev == ev)
		return 0;
	if (epoll_ctl(e->ep, c->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ee)) {
		cl_fail(e, c, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	c->reg = true;
	c->ev = ev;
	return 0;
}

static void cl_finish(struct eng *e, struct cl *c)
{
	e->inflight--;
	e->finished++;
	e->ok++;
	if (!e->keep) {
		cl_done(e, c);
		return;
	}
	c->state = CL_OPEN;
	/* stream --push never reads: what arrives stays in the socket */
	cl_set_ev(e, c, opt.push ? EPOLLRDHUP : EPOLLIN);
}

/* Send the rest of the current round/message; -1 when the connection failed. */
static int cl_send(struct eng *e, struct cl *c)
{
	while (c->sent < e->size) {
		size_t n = e->size - c->sent < IO_CHUNK ? e->size - c->sent : IO_CHUNK;
		ssize_t r;

		stream_fill(c->key, c->round * e->size + c->sent, e->sbuf, n);
		r = send(c->fd, e->sbuf, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			cl_fail(e, c, "send: %s", strerror(errno));
			return -1;
		}
		c->sent += (uint64_t)r;
		if (c->state == CL_ROUNDS)
			c->deadline = now_ns() + e->io_ns;
		if ((size_t)r < n)
			break;
	}
	return 0;
}

static void cl_begin_rounds(struct eng *e, struct cl *c)
{
	if (!e->rounds) {
		cl_finish(e, c);
		return;
	}
	c->state = CL_ROUNDS;
	c->round = 0;
	c->sent = c->rcvd = 0;
	c->deadline = now_ns() + e->io_ns;
	if (cl_send(e, c))
		return;
	cl_set_ev(e, c, EPOLLIN | (c->sent < e->size ? EPOLLOUT : 0));
}

/* After the "proxy ..." line, if any: the banner, if any, then the rounds. */
static void cl_greeted(struct eng *e, struct cl *c)
{
	if (e->banner) {
		c->state = CL_BANNER;
		c->line_len = 0;
		cl_set_ev(e, c, EPOLLIN);
		return;
	}
	cl_begin_rounds(e, c);
}

static void cl_connected(struct eng *e, struct cl *c)
{
	c->estab = true;
	if (++e->estab > e->max_estab)
		e->max_estab = e->estab;
	c->deadline = now_ns() + e->io_ns;
	if (e->proxy_line) {
		c->state = CL_PROXY;
		c->line_len = 0;
		cl_set_ev(e, c, EPOLLIN);
		return;
	}
	cl_greeted(e, c);
}

/*
 * --proxy-line: "proxy SRC SPORT DST DPORT", which must be this connection
 * as the far end of the proxy saw it arrive: our own address and port, and
 * the address and port we connected to. Read up to its LF and no further
 * (a banner may follow at once): peeked, then only the line is taken.
 */
static void cl_read_proxy(struct eng *e, struct cl *c)
{
	char want[LINE_MAX_LEN], me_ip[INET6_ADDRSTRLEN], peer_ip[INET6_ADDRSTRLEN], *nl;
	size_t room = sizeof(c->line) - 1 - c->line_len, take;
	struct sockaddr_storage me, peer;
	socklen_t mlen = sizeof(me), plen = sizeof(peer);
	unsigned me_port, peer_port;
	ssize_t r = recv(c->fd, c->line + c->line_len, room, MSG_PEEK);

	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			cl_fail(e, c, "recv proxy line: %s", strerror(errno));
		return;
	}
	if (r == 0) {
		cl_fail(e, c, "EOF before the proxy line");
		return;
	}
	nl = memchr(c->line + c->line_len, '\n', (size_t)r);
	take = nl ? (size_t)(nl - (c->line + c->line_len)) + 1 : (size_t)r;
	if (recv(c->fd, c->line + c->line_len, take, 0) != (ssize_t)take) {
		cl_fail(e, c, "recv proxy line: %s", strerror(errno));
		return;
	}
	c->line_len += (uint16_t)take;
	if (!nl) {
		if (c->line_len == sizeof(c->line) - 1)
			cl_fail(e, c, "proxy line too long");
		return;
	}
	c->line[c->line_len - 1] = '\0';
	if (getsockname(c->fd, (struct sockaddr *)&me, &mlen) ||
	    getpeername(c->fd, (struct sockaddr *)&peer, &plen)) {
		cl_fail(e, c, "getsockname/getpeername: %s", strerror(errno));
		return;
	}
	addr_text(&me, true, me_ip, sizeof(me_ip), &me_port);
	addr_text(&peer, true, peer_ip, sizeof(peer_ip), &peer_port);
	snprintf(want, sizeof(want), "proxy %s %u %s %u", me_ip, me_port, peer_ip, peer_port);
	if (strcmp(c->line, want)) {
		cl_fail(e, c, "got \"%s\", want \"%s\"", c->line, want);
		return;
	}
	cl_greeted(e, c);
}

static void cl_read_banner(struct eng *e, struct cl *c)
{
	size_t room = sizeof(c->line) - 1 - c->line_len;
	ssize_t r = recv(c->fd, c->line + c->line_len, room, 0);
	char *nl;

	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			cl_fail(e, c, "recv banner: %s", strerror(errno));
		return;
	}
	if (r == 0) {
		cl_fail(e, c, "EOF before the banner line");
		return;
	}
	c->line_len += (uint16_t)r;
	nl = memchr(c->line, '\n', c->line_len);
	if (!nl) {
		if (c->line_len == sizeof(c->line) - 1)
			cl_fail(e, c, "banner line too long");
		return;
	}
	if (nl + 1 != c->line + c->line_len) {
		cl_fail(e, c, "data after the banner line");
		return;
	}
	*nl = '\0';
	tally_add(e, c->line);
	cl_begin_rounds(e, c);
}

static void cl_recv(struct eng *e, struct cl *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, e->rbuf, IO_CHUNK, 0);
		size_t bad;

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			cl_fail(e, c, "recv in round %" PRIu64 ": %s", c->round, strerror(errno));
			return;
		}
		if (r == 0) {
			cl_fail(e, c, "early EOF in round %" PRIu64 " after %" PRIu64 " of %" PRIu64
				" bytes", c->round, c->rcvd, e->size);
			return;
		}
		if (c->rcvd + (uint64_t)r > c->sent) {
			cl_fail(e, c, "received more than was sent in round %" PRIu64, c->round);
			return;
		}
		bad = stream_check(c->key, c->round * e->size + c->rcvd, e->rbuf, (size_t)r);
		if (bad != (size_t)r) {
			cl_fail(e, c, "data mismatch at byte %" PRIu64 " of round %" PRIu64,
				c->rcvd + bad, c->round);
			return;
		}
		c->rcvd += (uint64_t)r;
		c->deadline = now_ns() + e->io_ns;
		if (c->rcvd == e->size) {
			if (++c->round == e->rounds) {
				cl_finish(e, c);
				return;
			}
			c->sent = c->rcvd = 0;
			if (cl_send(e, c))
				return;
		}
	}
	cl_set_ev(e, c, EPOLLIN | (c->sent < e->size ? EPOLLOUT : 0));
}

/* A kept connection must stay quiet while the others open. */
static void cl_idle_read(struct eng *e, struct cl *c)
{
	ssize_t r = recv(c->fd, e->rbuf, IO_CHUNK, 0);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r < 0)
		cl_fail(e, c, "while held open: %s", strerror(errno));
	else if (r == 0)
		cl_fail(e, c, "closed by peer while held open");
	else
		cl_fail(e, c, "unexpected %zd bytes while held open", r);
}

/*
 * ECONNRESET here means the handshake completed and the peer reset the
 * connection before we looked; ECONNREFUSED means nobody accepted it.
 */
static void eng_connect_fail(struct eng *e, struct cl *c, int err)
{
	if (err == ECONNREFUSED)
		e->refused++;
	else if (err == ECONNRESET)
		e->reset++;
	else if (err == ETIMEDOUT)
		e->ctimeout++;
	cl_fail(e, c, "connect: %s", strerror(err));
}

static void eng_start_one(struct eng *e)
{
	struct cl *c = &e->c[e->next];
	int r;

	c->idx = (uint32_t)e->next++;
	c->key = stream_key(opt.seed, c->idx + 1ULL);
	c->state = CL_CONNECTING;
	e->inflight++;
	r = connect_start(&c->fd);
	if (r < 0) {
		eng_connect_fail(e, c, -r);
		return;
	}
	c->deadline = now_ns() + opt.connect_tmo_ms * NS_PER_MS;
	if (r == 0) {
		cl_connected(e, c);
		return;
	}
	cl_set_ev(e, c, EPOLLOUT);
}

static void eng_event(struct eng *e, struct cl *c, uint32_t events)
{
	int err;

	switch (c->state) {
	case CL_CONNECTING:
		err = sock_error(c->fd);
		if (err)
			eng_connect_fail(e, c, err);
		else if (!(events & EPOLLOUT))
			cl_fail(e, c, "connect: hang-up");
		else
			cl_connected(e, c);
		return;
	case CL_PROXY:
		cl_read_proxy(e, c);
		return;
	case CL_BANNER:
		cl_read_banner(e, c);
		return;
	case CL_ROUNDS:
		if ((events & EPOLLOUT) && cl_send(e, c))
			return;
		cl_recv(e, c);
		return;
	case CL_OPEN:
		if (opt.push)
			cl_fail(e, c, "closed by peer while held open");
		else
			cl_idle_read(e, c);
		return;
	default:
		return;
	}
}

static void eng_scan(struct eng *e, uint64_t now)
{
	for (uint64_t i = 0; i < e->next; i++) {
		struct cl *c = &e->c[i];

		if (now < c->deadline)
			continue;
		switch (c->state) {
		case CL_CONNECTING:
			e->ctimeout++;
			cl_fail(e, c, "connect timed out after %" PRIu64 " ms", opt.connect_tmo_ms);
			break;
		case CL_PROXY:
			cl_fail(e, c, "no proxy line within %" PRIu64 " ms", opt.io_tmo_ms);
			break;
		case CL_BANNER:
			cl_fail(e, c, "no banner line within %" PRIu64 " ms", opt.io_tmo_ms);
			break;
		case CL_ROUNDS:
			cl_fail(e, c, "no progress for %" PRIu64 " ms in round %" PRIu64
				" (sent %" PRIu64 ", received %" PRIu64 " of %" PRIu64 ")",
				opt.io_tmo_ms, c->round, c->sent, c->rcvd, e->size);
			break;
		default:
			break;
		}
	}
}

/* Give up on everything not finished yet (deadline or signal). */
static void eng_abort(struct eng *e, const char *why)
{
	for (uint64_t i = 0; i < e->next; i++) {
		struct cl *c = &e->c[i];

		if (c->state >= CL_CONNECTING && c->state <= CL_ROUNDS)
			cl_fail(e, c, "%s", why);
	}
	e->failed += e->n - e->next;
	e->finished += e->n - e->next;
	e->next = e->n;
}

static void eng_signal(struct eng *e, int sigfd)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == sizeof(si))
		e->got_sig = true;
}

static int eng_init(struct eng *e, uint64_t n, uint64_t par, uint64_t size, uint64_t rounds,
		    bool keep)
{
	memset(e, 0, sizeof(*e));
	e->n = n;
	e->par = par;
	e->size = size;
	e->rounds = rounds;
	e->banner = opt.banner;
	e->proxy_line = opt.proxy_line;
	e->keep = keep;
	e->io_ns = opt.io_tmo_ms * NS_PER_MS;
	e->ep = epoll_create1(EPOLL_CLOEXEC);
	e->c = calloc(n, sizeof(*e->c));
	e->sbuf = malloc(IO_CHUNK);
	e->rbuf = malloc(IO_CHUNK);
	if (e->ep < 0 || !e->c || !e->sbuf || !e->rbuf) {
		errmsg("setup: %s", strerror(errno ? errno : ENOMEM));
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++)
		e->c[i].fd = -1;
	return 0;
}

static void eng_free(struct eng *e)
{
	if (e->c) {
		for (uint64_t i = 0; i < e->n; i++) {
			if (e->c[i].fd >= 0)
				close(e->c[i].fd);
		}
	}
	if (e->ep >= 0)
		close(e->ep);
	free(e->c);
	free(e->sbuf);
	free(e->rbuf);
	free(e->tally);
}

/* Run the opening phase; sigfd >= 0 is registered with a NULL pointer. */
static void eng_run(struct eng *e, int sigfd)
{
	struct epoll_event evs[256];
	uint64_t next_scan = 0, now;

	while (e->finished < e->n && !e->got_sig) {
		while (e->next < e->n && e->inflight < e->par)
			eng_start_one(e);
		if (e->finished >= e->n)
			break;
		int nev = epoll_wait(e->ep, evs, 256, 10);

		if (nev < 0 && errno != EINTR) {
			errmsg("epoll_wait: %s", strerror(errno));
			e->timed_out = true;
			break;
		}
		for (int i = 0; i < nev; i++) {
			struct cl *c = evs[i].data.ptr;

			if (c)
				eng_event(e, c, evs[i].events);
			else
				eng_signal(e, sigfd);
		}
		now = now_ns();
		if (deadline_passed(now)) {
			e->timed_out = true;
			break;
		}
		if (now >= next_scan) {
			next_scan = now + 10 * NS_PER_MS;
			eng_scan(e, now);
		}
	}
	if (e->timed_out)
		eng_abort(e, err_str(ETIME));
	else if (e->got_sig)
		eng_abort(e, "interrupted by a signal");
}

/* ---- echo-clients, connect-only ----------------------------------------------- */

static int run_echo_clients(void)
{
	struct eng e;
	uint64_t t0 = now_ns();
	int rc = 1;

	if (!(opt.seen & OB(X_PARALLEL)))
		opt.parallel = opt.n;
	if (opt.hold && opt.parallel < opt.n)
		usage_error("--hold needs -p equal to -n (all connections open at once)");
	check_fds(opt.parallel < opt.n ? opt.parallel : opt.n);
	if (eng_init(&e, opt.n, opt.parallel, opt.size, opt.rounds, opt.hold))
		goto out;
	eng_run(&e, -1);
	for (uint64_t i = 0; i < e.n; i++) {
		if (e.c[i].state == CL_OPEN) {
			cl_close_fd(&e, &e.c[i]);
			e.c[i].state = CL_DONE;
		}
	}
	printf("ok=%" PRIu64 " failed=%" PRIu64 " max_open=%" PRIu64 " elapsed_ms=%" PRIu64, e.ok,
	       e.failed + e.lost, e.max_estab, (now_ns() - t0) / NS_PER_MS);
	tally_print(&e);
	printf("%s\n", e.timed_out ? " timeout=1" : "");
	rc = e.ok == opt.n && !e.timed_out ? 0 : 1;
out:
	eng_free(&e);
	return rc;
}

static int run_connect_only(void)
{
	struct eng e;
	uint64_t t0 = now_ns();
	int rc = 1;

	if (!(opt.seen & OB(X_PARALLEL)))
		opt.parallel = 100;
	check_fds(opt.parallel < opt.n ? opt.parallel : opt.n);
	if (eng_init(&e, opt.n, opt.parallel, 0, 0, false))
		goto out;
	e.banner = false;
	eng_run(&e, -1);
	printf("ok=%" PRIu64 " failed=%" PRIu64 " refused=%" PRIu64 " reset=%" PRIu64
	       " timed_out=%" PRIu64 " elapsed_ms=%" PRIu64 "%s\n",
	       e.ok, e.failed, e.refused, e.reset, e.ctimeout, (now_ns() - t0) / NS_PER_MS,
	       e.timed_out ? " timeout=1" : "");
	rc = e.timed_out ? 1 : 0;
out:
	eng_free(&e);
	return rc;
}

/* ---- chatter ----------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static void chat_start(struct eng *e, struct cl *c, uint64_t now)
{
	c->busy = true;
	c->sent = c->rcvd = 0;
	c->deadline = now + e->io_ns;
	if (cl_send(e, c))
		return;
	cl_set_ev(e, c, EPOLLIN | (c->sent < e->size ? EPOLLOUT : 0));
}

static void chat_shutdown(struct eng *e, struct cl *c, uint64_t now)
{
	if (shutdown(c->fd, SHUT_WR)) {
		cl_fail(e, c, "shutdown: %s", strerror(errno));
		return;
	}
	c->state = CL_CLOSING;
	c->deadline = now + e->io_ns;
	cl_set_ev(e, c, EPOLLIN);
}

static void chat_event(struct eng *e, struct cl *c, uint32_t events)
{
	uint64_t now = now_ns();

	if (c->state != CL_OPEN && c->state != CL_CLOSING)
		return;
	if (c->state == CL_OPEN && (events & EPOLLOUT) && c->busy && cl_send(e, c))
		return;
	for (;;) {
		ssize_t r = recv(c->fd, e->rbuf, IO_CHUNK, 0);
		size_t bad;

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			cl_fail(e, c, "recv: %s", strerror(errno));
			return;
		}
		if (r == 0) {
			if (c->state == CL_CLOSING) {
				cl_close_fd(e, c);
				c->state = CL_DONE;
			} else {
				cl_fail(e, c, "closed by peer after %" PRIu64 " messages", c->round);
			}
			return;
		}
		if (c->state == CL_CLOSING || !c->busy || c->rcvd + (uint64_t)r > c->sent) {
			cl_fail(e, c, "unexpected data (message %" PRIu64 ")", c->round);
			return;
		}
		bad = stream_check(c->key, c->round * e->size + c->rcvd, e->rbuf, (size_t)r);
		if (bad != (size_t)r) {
			cl_fail(e, c, "data mismatch at byte %" PRIu64 " of message %" PRIu64,
				c->rcvd + bad, c->round);
			return;
		}
		c->rcvd += (uint64_t)r;
		if (c->rcvd == e->size) {
			uint64_t rtt = (now - (c->deadline - e->io_ns)) / 1000;

			if (e->nlat == e->caplat) {
				uint64_t cap = e->caplat ? 2 * e->caplat : 4096;
				uint32_t *v = realloc(e->lat_us, cap * sizeof(*v));

				if (v) {
					e->lat_us = v;
					e->caplat = cap;
				}
			}
			if (e->nlat < e->caplat)
				e->lat_us[e->nlat++] = rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
			e->msgs++;
			c->busy = false;
			c->round++;
			/* keep the rhythm, but never send a burst to catch up */
			c->next_send += e->ivl_ns;
			if (c->next_send < now)
				c->next_send = now;
		}
	}
	if (c->state == CL_OPEN)
		cl_set_ev(e, c, EPOLLIN | (c->busy && c->sent < e->size ? EPOLLOUT : 0));
}

/* Timers of every connection: send, echo timeout, end of run. Returns live ones. */
static uint64_t chat_scan(struct eng *e, uint64_t now, uint64_t end)
{
	uint64_t live = 0;

	for (uint64_t i = 0; i < e->n; i++) {
		struct cl *c = &e->c[i];

		if (c->state == CL_CLOSING) {
			live++;
			if (now >= c->deadline)
				cl_fail(e, c, "no EOF within %" PRIu64 " ms after shutdown",
					opt.io_tmo_ms);
			continue;
		}
		if (c->state != CL_OPEN)
			continue;
		live++;
		if (c->busy) {
			if (now >= c->deadline)
				cl_fail(e, c, "no echo within %" PRIu64 " ms (message %" PRIu64 ")",
					opt.io_tmo_ms, c->round);
		} else if (now >= end) {
			chat_shutdown(e, c, now);
		} else if (now >= c->next_send) {
			chat_start(e, c, now);
		}
	}
	return live;
}

static void chat_run(struct eng *e)
{
	struct epoll_event evs[256];
	uint64_t t0 = now_ns(), end = t0 + opt.duration_ms * NS_PER_MS, next_scan = 0, now;

	e->ivl_ns = opt.interval_ms * NS_PER_MS;
	for (uint64_t i = 0; i < e->n; i++) {
		struct cl *c = &e->c[i];

		c->next_send = t0 + mix64(c->key ^ opt.seed) % e->ivl_ns;
		c->busy = false;
		c->round = 0;
	}
	for (;;) {
		now = now_ns();
		if (deadline_passed(now)) {
			e->timed_out = true;
			break;
		}
		if (now >= next_scan) {
			next_scan = now + 2 * NS_PER_MS;
			if (!chat_scan(e, now, end))
				break;
		}
		int nev = epoll_wait(e->ep, evs, 256, 2);

		if (nev < 0 && errno != EINTR) {
			errmsg("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < nev; i++)
			chat_event(e, evs[i].data.ptr, evs[i].events);
	}
	for (uint64_t i = 0; i < e->n; i++) {
		struct cl *c = &e->c[i];

		if (c->state == CL_OPEN || c->state == CL_CLOSING)
			cl_fail(e, c, "%s", e->timed_out ? err_str(ETIME) : "epoll failed");
	}
}

static int run_chatter(void)
{
	struct eng e;
	int rc = 1;

	if (!(opt.seen & OB(X_PARALLEL)))
		opt.parallel = 200;
	if (!(opt.seen & OB(X_IOTMO)))
		opt.io_tmo_ms = 5000;
	check_fds(opt.n);
	if (eng_init(&e, opt.n, opt.parallel, opt.size,
		     opt.seen & OB(X_ROUNDS) ? opt.rounds : 0, true))
		goto out;
	eng_run(&e, -1);
	if (!e.timed_out)
		chat_run(&e);
	printf("conns=%" PRIu64 " msgs=%" PRIu64 " failures=%" PRIu64 " connect_failures=%" PRIu64,
	       e.ok + e.lost, e.msgs, e.lost, e.failed);
	if (e.nlat) {
		qsort(e.lat_us, e.nlat, sizeof(*e.lat_us), cmp_u32);
		printf(" p50_us=%u p99_us=%u max_us=%u", e.lat_us[e.nlat / 2],
		       e.lat_us[e.nlat * 99 / 100], e.lat_us[e.nlat - 1]);
	}
	free(e.lat_us);
	tally_print(&e);
	printf("%s\n", e.timed_out ? " timeout=1" : "");
	rc = !e.lost && !e.failed && !e.timed_out ? 0 : 1;
out:
	eng_free(&e);
	return rc;
}

/* ---- hold ----------------------------------------------------------------------- */

static int run_hold(void)
{
	/* closes by the peer per 100 ms since all were open (2 minutes) */
	enum { HOLD_SLOTS = 1200 };
	static uint64_t close_slots[HOLD_SLOTS];
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = NULL }, evs[256];
	uint64_t t0, now, wait_end = 0, closed = 0, resets = 0, stray = 0;
	int64_t first = -1, last = -1;
	struct eng e;
	sigset_t set;
	int sigfd = -1, rc = 1;

	if (!(opt.seen & OB(X_PARALLEL)))
		opt.parallel = 200;
	check_fds(opt.n);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (eng_init(&e, opt.n, opt.parallel, 16, 1, true))
		goto out;
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0 || epoll_ctl(e.ep, EPOLL_CTL_ADD, sigfd, &ee)) {
		errmsg("signalfd: %s", strerror(errno));
		goto out;
	}
	eng_run(&e, sigfd);
	if (e.ok != opt.n) {
		printf("open=%" PRIu64 " failed=%" PRIu64 " closed_by_peer=0 first_close_ms=-1"
		       " last_close_ms=-1%s\n",
		       e.ok, e.failed + e.lost, e.timed_out ? " timeout=1" : "");
		goto out;
	}
	printf("ready\n");
	fflush(stdout);
	t0 = now_ns();
	if (opt.wait_close_ms)
		wait_end = t0 + opt.wait_close_ms * NS_PER_MS;
	for (;;) {
		uint64_t limit = UINT64_MAX;
		int nev;

		now = now_ns();
		if (deadline_passed(now)) {
			e.timed_out = true;
			break;
		}
		if (e.got_sig || (wait_end && (now >= wait_end || closed == opt.n)))
			break;
		if (wait_end)
			limit = wait_end;
		if (deadline_ns && deadline_ns < limit)
			limit = deadline_ns;
		nev = epoll_wait(e.ep, evs, 256, limit == UINT64_MAX ? 1000 : ms_until(limit, now, 1000));
		if (nev < 0 && errno != EINTR) {
			errmsg("epoll_wait: %s", strerror(errno));
			break;
		}
		now = now_ns();
		for (int i = 0; i < nev; i++) {
			struct cl *c = evs[i].data.ptr;
			bool gone = false;

			if (!c) {
				eng_signal(&e, sigfd);
				continue;
			}
			if (c->state != CL_OPEN)
				continue;
			for (;;) {
				ssize_t r = recv(c->fd, e.rbuf, IO_CHUNK, 0);

				if (r > 0) {
					stray += (uint64_t)r;
					continue;
				}
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					break;
				if (r < 0 && errno == ECONNRESET)
					resets++;
				gone = true;
				break;
			}
			if (!gone)
				continue;
			last = (int64_t)((now - t0) / NS_PER_MS);
			if (first < 0)
				first = last;
			if (last / 100 < HOLD_SLOTS)
				close_slots[last / 100]++;
			closed++;
			cl_close_fd(&e, c);
			c->state = CL_DONE;
		}
	}
	{
		/* the most closes in any 1 s window (ten 100 ms slots), and per second */
		uint64_t max1s = 0;

		for (int64_t i = 0; first >= 0 && i <= last / 100 && i < HOLD_SLOTS; i++) {
			uint64_t w1 = 0;

			for (int64_t k = i; k < i + 10 && k < HOLD_SLOTS; k++)
				w1 += close_slots[k];
			if (w1 > max1s)
				max1s = w1;
		}
		printf("open=%" PRIu64 " closed_by_peer=%" PRIu64 " first_close_ms=%" PRId64
		       " last_close_ms=%" PRId64 " resets=%" PRIu64 " stray_bytes=%" PRIu64
		       " max_closes_1s=%" PRIu64 "%s\n",
		       opt.n, closed, first, last, resets, stray, max1s,
		       e.timed_out ? " timeout=1" : "");
	}
	if (e.timed_out)
		rc = 1;
	else if (!opt.wait_close_ms)
		rc = e.got_sig ? 0 : 1;
	else
		rc = closed == opt.n ? 0 : 1;
out:
	if (sigfd >= 0)
		close(sigfd);
	eng_free(&e);
	return rc;
}

/* ---- stream ---------------------------------------------------------------------- */

/* What the streaming phase found, for the summary line. */
struct stream_sum {
	uint64_t closed, resets, clean, stuck, mismatches, sent, received;
	int64_t first, last;	/* ms from "ready" of closes by the peer; -1: none */
	uint64_t last_epoch_ms;
};

static uint64_t epoch_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The connection ended on the peer's side (FIN or RST) before we finished. */
static void st_peer_closed(struct eng *e, struct cl *c, struct stream_sum *s, uint64_t t0,
			   int err)
{
	int64_t ms = (int64_t)((now_ns() - t0) / NS_PER_MS);

	s->closed++;
	if (err == ECONNRESET || err == EPIPE)
		s->resets++;
	if (s->first < 0)
		s->first = ms;
	s->last = ms;
	s->last_epoch_ms = epoch_ms();
	cl_close_fd(e, c);
	c->state = CL_DONE;
}

/* What a streaming connection waits for next. */
static void st_interest(struct eng *e, struct cl *c)
{
	uint32_t ev = EPOLLRDHUP;
	bool more = !(opt.seen & OB(X_BYTES)) || c->sent < opt.bytes;

	if (c->state == CL_OPEN && more && (opt.push || c->sent - c->rcvd < opt.window))
		ev |= EPOLLOUT;
	if (!opt.push)
		ev |= EPOLLIN;
	cl_set_ev(e, c, ev);
}

static void st_send(struct eng *e, struct cl *c, struct stream_sum *s, uint64_t t0)
{
	for (;;) {
		uint64_t room = opt.push ? IO_CHUNK : opt.window - (c->sent - c->rcvd);
		size_t n = room < IO_CHUNK ? (size_t)room : IO_CHUNK;
		ssize_t r;

		if ((opt.seen & OB(X_BYTES)) && opt.bytes - c->sent < n)
			n = (size_t)(opt.bytes - c->sent);
		if (!n)
			return;
		stream_fill(c->key, c->sent, e->sbuf, n);
		r = send(c->fd, e->sbuf, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				st_peer_closed(e, c, s, t0, errno);
			return;
		}
		if (c->sent == c->rcvd)
			c->deadline = now_ns() + e->io_ns; /* something unanswered again */
		c->sent += (uint64_t)r;
		s->sent += (uint64_t)r;
		if ((size_t)r < n)
			return;
	}
}

static void st_recv(struct eng *e, struct cl *c, struct stream_sum *s, uint64_t t0)
{
	for (;;) {
		ssize_t r = recv(c->fd, e->rbuf, IO_CHUNK, 0);
		size_t bad;

		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				st_peer_closed(e, c, s, t0, errno);
			return;
		}
		if (r == 0) {
			if (c->state == CL_CLOSING && c->rcvd == c->sent) {
				s->clean++;
				cl_close_fd(e, c);
				c->state = CL_DONE;
			} else {
				st_peer_closed(e, c, s, t0, 0);
			}
			return;
		}
		if (c->rcvd + (uint64_t)r > c->sent) {
			s->mismatches++;
			cl_fail(e, c, "received more than was sent");
			return;
		}
		bad = stream_check(c->key, c->rcvd, e->rbuf, (size_t)r);
		if (bad != (size_t)r) {
			s->mismatches++;
			cl_fail(e, c, "data mismatch at byte %" PRIu64, c->rcvd + bad);
			return;
		}
		c->rcvd += (uint64_t)r;
		s->received += (uint64_t)r;
		c->deadline = now_ns() + e->io_ns;
	}
}

static void st_event(struct eng *e, struct cl *c, uint32_t events, struct stream_sum *s,
		     uint64_t t0)
{
	if (c->state != CL_OPEN && c->state != CL_CLOSING)
		return;
	if (opt.push) {
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			st_peer_closed(e, c, s, t0, sock_error(c->fd));
			return;
		}
	} else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		st_recv(e, c, s, t0);
	}
	if (c->state == CL_OPEN && (events & EPOLLOUT))
		st_send(e, c, s, t0);
	if (c->state == CL_OPEN || c->state == CL_CLOSING)
		st_interest(e, c);
}

/* The run is over for C: echo says so with a FIN and waits; push just closes. */
static void st_finish(struct eng *e, struct cl *c)
{
	if (opt.push) {
		cl_done(e, c);
		return;
	}
	if (shutdown(c->fd, SHUT_WR)) {
		cl_fail(e, c, "shutdown: %s", strerror(errno));
		return;
	}
	c->state = CL_CLOSING;
	c->deadline = now_ns() + e->io_ns;
	st_interest(e, c);
}

static int run_stream(void)
{
	struct stream_sum s = { .first = -1, .last = -1 };
	struct epoll_event evs[256];
	uint64_t t0, now, end = 0, wait_end = 0, min_rcvd = UINT64_MAX, next_scan = 0;
	bool finishing = false;
	struct signalfd_siginfo si;
	sigset_t usr1;
	int sigfd = -1;
	struct eng e;
	int rc = 1;

	if (!(opt.seen & OB(X_PARALLEL)))
		opt.parallel = 200;
	check_fds(opt.n);
	if (eng_init(&e, opt.n, opt.parallel, 0, 0, true))
		goto out;
	eng_run(&e, -1);
	if (e.ok != opt.n) {
		printf("open=%" PRIu64 " failed=%" PRIu64 "%s\n", e.ok, e.failed + e.lost,
		       e.timed_out ? " timeout=1" : "");
		goto out;
	}
	/* SIGUSR1: the end comes now, as --duration-ms would bring it */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	sigfd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
	printf("ready\n");
	fflush(stdout);
	t0 = now_ns();
	if (opt.duration_ms)
		end = t0 + opt.duration_ms * NS_PER_MS;
	if (opt.wait_close_ms)
		wait_end = t0 + opt.wait_close_ms * NS_PER_MS;
	for (uint64_t i = 0; i < e.n; i++) {
		e.c[i].sent = e.c[i].rcvd = 0;
		e.c[i].deadline = UINT64_MAX;
		st_interest(&e, &e.c[i]);
	}
	for (;;) {
		uint64_t live = 0;
		int nev;

		now = now_ns();
		if (deadline_passed(now)) {
			e.timed_out = true;
			break;
		}
		if (wait_end && now >= wait_end)
			break;
		if (sigfd >= 0 && read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			end = now;
		if (end && now >= end && !finishing) {
			finishing = true;
			for (uint64_t i = 0; i < e.n; i++)
				if (e.c[i].state == CL_OPEN)
					st_finish(&e, &e.c[i]);
		}
		for (uint64_t i = 0; i < e.n; i++) {
			struct cl *c = &e.c[i];

			if (c->state != CL_OPEN && c->state != CL_CLOSING)
				continue;
			live++;
			/* push never hears back: only echo can be stuck (or its EOF late) */
			if (now >= next_scan && !opt.push &&
			    (c->sent != c->rcvd || c->state == CL_CLOSING) && now >= c->deadline) {
				s.stuck++;
				cl_fail(&e, c, "stuck: no %s for %" PRIu64 " ms (sent %" PRIu64
					", received %" PRIu64 ")", c->sent != c->rcvd ? "echo" : "EOF",
					opt.io_tmo_ms, c->sent, c->rcvd);
			}
		}
		if (now >= next_scan)
			next_scan = now + 10 * NS_PER_MS;
		if (!live)
			break;
		nev = epoll_wait(e.ep, evs, 256, 10);
		if (nev < 0 && errno != EINTR) {
			errmsg("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < nev; i++)
			st_event(&e, evs[i].data.ptr, evs[i].events, &s, t0);
	}
	for (uint64_t i = 0; i < e.n; i++)
		if (e.c[i].rcvd < min_rcvd)
			min_rcvd = e.c[i].rcvd;
	printf("open=%" PRIu64 " failed=%" PRIu64 " sent=%" PRIu64 " received=%" PRIu64
	       " min_received=%" PRIu64 " closed_by_peer=%" PRIu64 " resets=%" PRIu64
	       " clean=%" PRIu64 " stuck=%" PRIu64 " mismatches=%" PRIu64 " first_close_ms=%" PRId64
	       " last_close_ms=%" PRId64 " last_close_epoch_ms=%" PRIu64 "%s\n",
	       opt.n, e.failed, s.sent, s.received, min_rcvd, s.closed, s.resets, s.clean,
	       s.stuck, s.mismatches, s.first, s.last, s.last_epoch_ms,
	       e.timed_out ? " timeout=1" : "");
	rc = !s.stuck && !s.mismatches && !e.timed_out ? 0 : 1;
out:
	if (sigfd >= 0)
		close(sigfd);
	eng_free(&e);
	return rc;
}

/* ---- bulk, halfclose-client, halfclose-server ------------------------------------ */

struct bulk_writer {
	int fd;
	uint64_t key;
	uint64_t fnv;
	uint64_t sent;
	int err;
	int stop;
};

static void *bulk_write(void *arg)
{
	struct bulk_writer *bw = arg;
	uint8_t *buf = malloc(BULK_CHUNK);

	if (!buf) {
		bw->err = -ENOMEM;
		return NULL;
	}
	while (bw->sent < opt.bytes) {
		size_t n = opt.bytes - bw->sent < BULK_CHUNK ? opt.bytes - bw->sent : BULK_CHUNK;

		stream_fill(bw->key, bw->sent, buf, n);
		bw->fnv = fnv1a(bw->fnv, buf, n);
		bw->err = send_wait(bw->fd, buf, n, &bw->stop);
		if (bw->err)
			break;
		bw->sent += n;
	}
	if (!bw->err && shutdown(bw->fd, SHUT_WR))
		bw->err = -errno;
	free(buf);
	return NULL;
}

static int run_bulk(void)
{
	struct bulk_writer bw = { .fd = -1, .fnv = FNV_INIT };
	uint64_t key = stream_key(opt.seed, 0), got = 0, t0;
	uint8_t *buf = malloc(BULK_CHUNK);
	pthread_t tid;
	double secs;
	bool ok = false;
	int r;

	if (!buf) {
		errmsg("out of memory");
		return 1;
	}
	r = connect_wait(&bw.fd);
	if (r) {
		errmsg("connect %s: %s", opt.addr_str, err_str(-r));
		goto out;
	}
	t0 = now_ns();
	bw.key = key;
	r = pthread_create(&tid, NULL, bulk_write, &bw);
	if (r) {
		errmsg("pthread_create: %s", strerror(r));
		goto out;
	}
	for (;;) {
		ssize_t n = recv_wait(bw.fd, buf, BULK_CHUNK, NULL);
		size_t bad;

		if (n < 0) {
			errmsg("recv after %" PRIu64 " bytes: %s", got, err_str((int)-n));
			break;
		}
		if (n == 0) {
			if (got == opt.bytes)
				ok = true;
			else
				errmsg("EOF after %" PRIu64 " of %" PRIu64 " bytes", got, opt.bytes);
			break;
		}
		if (got + (uint64_t)n > opt.bytes) {
			errmsg("received more than the %" PRIu64 " bytes sent", opt.bytes);
			break;
		}
		bad = stream_check(key, got, buf, (size_t)n);
		if (bad != (size_t)n) {
			errmsg("data mismatch at byte %" PRIu64, got + bad);
			break;
		}
		got += (uint64_t)n;
	}
	if (!ok) {
		/* unblock the writer */
		__atomic_store_n(&bw.stop, 1, __ATOMIC_RELAXED);
		shutdown(bw.fd, SHUT_RDWR);
	}
	pthread_join(tid, NULL);
	if (bw.err && ok) {
		errmsg("send after %" PRIu64 " bytes: %s", bw.sent, err_str(-bw.err));
		ok = false;
	}
	secs = (double)(now_ns() - t0) / 1e9;
	printf("bytes=%" PRIu64 " fnv=%016" PRIx64 " secs=%.3f mbps=%.1f%s\n", got, bw.fnv, secs,
	       secs > 0 ? (double)got * 8 / secs / 1e6 : 0.0, ok ? "" : " ok=0");
out:
	if (bw.fd >= 0)
		close(bw.fd);
	free(buf);
	return ok ? 0 : 1;
}

static int run_halfclose_client(void)
{
	uint64_t key = stream_key(opt.seed, 0), fnv = FNV_INIT, off = 0;
	uint8_t *buf = malloc(BULK_CHUNK);
	char reply[128], want[128];
	size_t rlen = 0;
	bool ok = false;
	int fd = -1, r;

	if (!buf) {
		errmsg("out of memory");
		return 1;
	}
	r = connect_wait(&fd);
	if (r) {
		errmsg("connect %s: %s", opt.addr_str, err_str(-r));
		goto out;
	}
	while (off < opt.bytes) {
		size_t n = opt.bytes - off < BULK_CHUNK ? opt.bytes - off : BULK_CHUNK;

		stream_fill(key, off, buf, n);
		fnv = fnv1a(fnv, buf, n);
		r = send_wait(fd, buf, n, NULL);
		if (r) {
			errmsg("send after %" PRIu64 " bytes: %s", off, err_str(-r));
			goto out;
		}
		off += n;
	}
	if (shutdown(fd, SHUT_WR)) {
		errmsg("shutdown: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = recv_wait(fd, reply + rlen, sizeof(reply) - 1 - rlen, NULL);

		if (n < 0) {
			errmsg("recv reply: %s", err_str((int)-n));
			goto out;
		}
		if (n == 0)
			break;
		rlen += (size_t)n;
		if (rlen == sizeof(reply) - 1) {
			errmsg("reply too long");
			goto out;
		}
	}
	reply[rlen] = '\0';
	snprintf(want, sizeof(want), "bytes=%" PRIu64 " fnv=%016" PRIx64 "\n", opt.bytes, fnv);
	if (strcmp(reply, want)) {
		errmsg("reply '%.*s', expected '%.*s'", (int)strcspn(reply, "\n"), reply,
		       (int)strcspn(want, "\n"), want);
		goto out;
	}
	ok = true;
out:
	printf("ok=%d bytes=%" PRIu64 " fnv=%016" PRIx64 "\n", ok, off, fnv);
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok ? 0 : 1;
}

/* Wait until our FIN is acknowledged (or the connection was reset). */
static int wait_fin_acked(int fd)
{
	uint64_t until = now_ns() + opt.io_tmo_ms * NS_PER_MS;

	for (;;) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		uint64_t now;

		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
			return -errno;
		if (ti.tcpi_state == TCP_CLOSE)
			return 0;
		now = now_ns();
		if (deadline_passed(now))
			return -ETIME;
		if (now >= until)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

static int run_halfclose_server(void)
{
	uint64_t key = stream_key(opt.seed, 0), got = 0, sent = 0;
	uint8_t *buf = malloc(BULK_CHUNK);
	bool ok = false;
	ssize_t n;
	int fd = -1, r;

	if (!buf) {
		errmsg("out of memory");
		return 1;
	}
	r = connect_wait(&fd);
	if (r) {
		errmsg("connect %s: %s", opt.addr_str, err_str(-r));
		goto out;
	}
	for (;;) {
		size_t bad;

		n = recv_wait(fd, buf, BULK_CHUNK, NULL);
		if (n < 0) {
			errmsg("recv after %" PRIu64 " bytes: %s", got, err_str((int)-n));
			goto out;
		}
		if (n == 0)
			break;
		if (got + (uint64_t)n > opt.bytes) {
			errmsg("received more than %" PRIu64 " bytes", opt.bytes);
			goto out;
		}
		bad = stream_check(key, got, buf, (size_t)n);
		if (bad != (size_t)n) {
			errmsg("data mismatch at byte %" PRIu64, got + bad);
			goto out;
		}
		got += (uint64_t)n;
	}
	if (got != opt.bytes) {
		errmsg("EOF after %" PRIu64 " of %" PRIu64 " bytes", got, opt.bytes);
		goto out;
	}
	/* the server's FIN is in; the other direction must still carry data */
	key = stream_key(opt.seed, 1);
	while (sent < opt.send) {
		size_t len = opt.send - sent < BULK_CHUNK ? opt.send - sent : BULK_CHUNK;

		stream_fill(key, sent, buf, len);
		r = send_wait(fd, buf, len, NULL);
		if (r) {
			errmsg("send after the peer's FIN, %" PRIu64 " bytes in: %s", sent,
			       err_str(-r));
			goto out;
		}
		sent += len;
	}
	if (shutdown(fd, SHUT_WR)) {
		errmsg("shutdown: %s", strerror(errno));
		goto out;
	}
	r = wait_fin_acked(fd);
	if (r) {
		errmsg("waiting for our FIN to be acked: %s", err_str(-r));
		goto out;
	}
	/* a reset after the peer's FIN shows in SO_ERROR, not in recv() */
	r = sock_error(fd);
	if (r) {
		errmsg("connection ended with: %s", strerror(r));
		goto out;
	}
	n = recv(fd, buf, BULK_CHUNK, 0);
	if (n != 0) {
		errmsg("after close: %s", n > 0 ? "unexpected data" : strerror(errno));
		goto out;
	}
	ok = true;
out:
	printf("ok=%d received=%" PRIu64 " sent=%" PRIu64 "\n", ok, got, sent);
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok ? 0 : 1;
}

/* ---- arguments, main ---------------------------------------------------------- */

#define COMMON (OB(X_SEED) | OB(X_TIMEOUT) | OB(X_HELP))
#define CLIENT (COMMON | OB(X_CONNECT) | OB(X_CTMO) | OB(X_IOTMO))

struct cmd {
	const char *name;
	int (*run)(void);
	uint32_t allowed;
	uint32_t required;
};

static const struct cmd cmds[] = {
	{ "serve", run_serve,
	  COMMON | OB(X_LISTEN) | OB(X_MODE) | OB(X_ID) | OB(X_STATS) | OB(X_READY) |
		  OB(X_THREADS) | OB(X_BYTES) | OB(X_AFTER) | OB(X_PROXY) | OB(X_BACKLOG),
	  OB(X_LISTEN) | OB(X_MODE) },
	{ "echo-clients", run_echo_clients,
	  CLIENT | OB(X_COUNT) | OB(X_PARALLEL) | OB(X_SIZE) | OB(X_ROUNDS) | OB(X_HOLD) |
		  OB(X_BANNER) | OB(X_RESET) | OB(X_PROXYLINE),
	  OB(X_CONNECT) | OB(X_COUNT) },
	{ "bulk", run_bulk, CLIENT | OB(X_BYTES), OB(X_CONNECT) | OB(X_BYTES) },
	{ "halfclose-client", run_halfclose_client, CLIENT | OB(X_BYTES),
	  OB(X_CONNECT) | OB(X_BYTES) },
	{ "halfclose-server", run_halfclose_server, CLIENT | OB(X_BYTES) | OB(X_SEND),
	  OB(X_CONNECT) | OB(X_BYTES) | OB(X_SEND) },
	{ "chatter", run_chatter,
	  CLIENT | OB(X_COUNT) | OB(X_PARALLEL) | OB(X_DURATION) | OB(X_INTERVAL) |
		  OB(X_SIZE) | OB(X_BANNER) | OB(X_PROXYLINE) | OB(X_ROUNDS),
	  OB(X_CONNECT) | OB(X_COUNT) | OB(X_DURATION) },
	{ "hold", run_hold,
	  CLIENT | OB(X_COUNT) | OB(X_PARALLEL) | OB(X_BANNER) | OB(X_PROXYLINE) |
		  OB(X_WAITCLOSE),
	  OB(X_CONNECT) | OB(X_COUNT) },
	{ "connect-only", run_connect_only, CLIENT | OB(X_COUNT) | OB(X_PARALLEL),
	  OB(X_CONNECT) | OB(X_COUNT) },
	{ "stream", run_stream,
	  CLIENT | OB(X_COUNT) | OB(X_PARALLEL) | OB(X_WINDOW) | OB(X_PUSH) | OB(X_BYTES) |
		  OB(X_DURATION) | OB(X_WAITCLOSE) | OB(X_RESET),
	  OB(X_CONNECT) | OB(X_COUNT) },
};

static int opt_index(int val)
{
	switch (val) {
	case 'l':
		return X_LISTEN;
	case 'c':
		return X_CONNECT;
	case 'n':
		return X_COUNT;
	case 'p':
		return X_PARALLEL;
	case 'h':
		return X_HELP;
	default:
		return val >= 256 && val < 256 + X_NR ? val - 256 : -1;
	}
}

static int parse_u64(const char *s, uint64_t *out, bool sizes)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (sizes && *end) {
		unsigned shift;

		switch (*end) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		case 't':
		case 'T':
			shift = 40;
			break;
		default:
			return -EINVAL;
		}
		end++;
		if (v > (UINT64_MAX >> shift))
			return -ERANGE;
		v <<= shift;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static uint64_t num_arg(int idx, const char *val, bool sizes, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (parse_u64(val, &v, sizes) || v < min || v > max)
		usage_error("--%s: bad value '%s' (want %" PRIu64 "..%" PRIu64 "%s)",
			    long_opts[idx].name, val, min, max, sizes ? ", k/m/g/t suffix" : "");
	return v;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *lenp,
		      bool allow_port0)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *e;
	uint64_t p;
	size_t hl;
	bool v6 = false;

	if (s[0] == '[') {
		e = strchr(s, ']');
		if (!e || e[1] != ':')
			return -EINVAL;
		s++;
		hl = (size_t)(e - s);
		port = e + 2;
		v6 = true;
	} else {
		e = strrchr(s, ':');
		if (!e)
			return -EINVAL;
		hl = (size_t)(e - s);
		port = e + 1;
	}
	if (!hl || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (parse_u64(port, &p, false) || p > 65535 || (!p && !allow_port0))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		*lenp = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		*lenp = sizeof(*a);
	}
	return 0;
}

static void parse_mode(const char *val)
{
	size_t len = strlen("refuse-after");

	for (int m = 0; m < SM_NR; m++) {
		if (!strcmp(val, srv_mode_names[m])) {
			opt.mode = m;
			return;
		}
	}
	if (!strncmp(val, "refuse-after", len) && (val[len] == '=' || val[len] == ':')) {
		opt.mode = SM_REFUSE;
		opt.after = num_arg(X_AFTER, val + len + 1, false, 0, UINT32_MAX);
		opt.seen |= OB(X_AFTER);
		return;
	}
	usage_error("--mode: unknown mode '%s' (echo, banner, sink, source, rst, "
		    "refuse-after N, stall)",
		    val);
}

static void parse_args(int argc, char **argv, const struct cmd *cmd)
{
	const uint64_t ms_max = 1000000000ULL; /* ~11 days */
	int c, idx;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hl:c:n:p:", long_opts, NULL)) != -1) {
		if (c == '?') {
			if (optopt)
				usage_error("unknown option -%c", optopt);
			usage_error("unknown option %s", argv[optind - 1]);
		}
		if (c == ':')
			usage_error("option %s needs a value", argv[optind - 1]);
		idx = opt_index(c);
		if (idx < 0)
			usage_error("unknown option");
		if (idx == X_HELP) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (!(cmd->allowed & OB(idx)))
			usage_error("option --%s does not apply", long_opts[idx].name);
		opt.seen |= OB(idx);
		switch (idx) {
		case X_LISTEN:
		case X_CONNECT:
			opt.addr_str = optarg;
			if (parse_addr(optarg, &opt.addr, &opt.addrlen, idx == X_LISTEN))
				usage_error("--%s: bad address '%s' (want 127.0.0.1:PORT or "
					    "[::1]:PORT)",
					    long_opts[idx].name, optarg);
			break;
		case X_COUNT:
			opt.n = num_arg(idx, optarg, false, 1, 1000000);
			break;
		case X_PARALLEL:
			opt.parallel = num_arg(idx, optarg, false, 1, 1000000);
			break;
		case X_MODE:
			parse_mode(optarg);
			break;
		case X_ID:
			if (!*optarg || strlen(optarg) > NAME_MAX_LEN ||
			    strpbrk(optarg, " \t\r\n="))
				usage_error("--id: want 1..%d characters, no spaces or '='",
					    NAME_MAX_LEN);
			opt.id = optarg;
			break;
		case X_STATS:
			opt.stats = optarg;
			break;
		case X_READY:
			opt.ready = optarg;
			break;
		case X_THREADS:
			opt.threads = num_arg(idx, optarg, false, 1, 256);
			break;
		case X_BYTES:
			opt.bytes = num_arg(idx, optarg, true, 0, UINT64_MAX);
			break;
		case X_SEND:
			opt.send = num_arg(idx, optarg, true, 0, UINT64_MAX);
			break;
		case X_SEED:
			opt.seed = num_arg(idx, optarg, false, 0, UINT64_MAX);
			break;
		case X_SIZE:
			opt.size = num_arg(idx, optarg, true, 1, 1ULL << 40);
			break;
		case X_ROUNDS:
			opt.rounds = num_arg(idx, optarg, false, 0, UINT32_MAX);
			break;
		case X_HOLD:
			opt.hold = true;
			break;
		case X_BANNER:
			opt.banner = true;
			break;
		case X_RESET:
			opt.reset = true;
			break;
		case X_PROXY:
			opt.proxy = true;
			break;
		case X_PROXYLINE:
			opt.proxy_line = true;
			break;
		case X_PUSH:
			opt.push = true;
			break;
		case X_BACKLOG:
			opt.backlog = num_arg(idx, optarg, false, 0, 65535);
			break;
		case X_WINDOW:
			opt.window = num_arg(idx, optarg, true, 1, 1ULL << 30);
			break;
		case X_CTMO:
			opt.connect_tmo_ms = num_arg(idx, optarg, false, 1, ms_max);
			break;
		case X_IOTMO:
			opt.io_tmo_ms = num_arg(idx, optarg, false, 1, ms_max);
			break;
		case X_TIMEOUT:
			opt.timeout_ms = num_arg(idx, optarg, false, 0, ms_max);
			break;
		case X_DURATION:
			opt.duration_ms = num_arg(idx, optarg, false, 0, ms_max);
			break;
		case X_INTERVAL:
			opt.interval_ms = num_arg(idx, optarg, false, 1, ms_max);
			break;
		case X_WAITCLOSE:
			opt.wait_close_ms = num_arg(idx, optarg, false, 0, ms_max);
			break;
		case X_AFTER:
			opt.after = num_arg(idx, optarg, false, 0, UINT32_MAX);
			break;
		}
	}
	/* "--mode refuse-after N": N is the one positional argument allowed */
	if (optind < argc && opt.mode == SM_REFUSE && !(opt.seen & OB(X_AFTER)) &&
	    (opt.seen & OB(X_MODE))) {
		opt.after = num_arg(X_AFTER, argv[optind++], false, 0, UINT32_MAX);
		opt.seen |= OB(X_AFTER);
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	for (idx = 0; idx < X_NR; idx++) {
		if ((cmd->required & OB(idx)) && !(opt.seen & OB(idx)))
			usage_error("missing --%s", long_opts[idx].name);
	}
	if (opt.mode == SM_REFUSE && !(opt.seen & OB(X_AFTER)))
		usage_error("--mode refuse-after needs a count N");
}

int main(int argc, char **argv)
{
	const struct cmd *cmd = NULL;

	if (argc < 2) {
		fputs("tpeer: missing command (see tpeer -h)\n", stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(argv[1], cmds[i].name))
			cmd = &cmds[i];
	}
	if (!cmd) {
		fprintf(stderr, "tpeer: unknown command '%s' (see tpeer -h)\n", argv[1]);
		return 2;
	}
	opt.cmd = cmd->name;
	opt.id = "tpeer";
	opt.threads = 1;
	opt.seed = 1;
	opt.size = 64;
	opt.rounds = 1;
	opt.connect_tmo_ms = 5000;
	opt.io_tmo_ms = 10000;
	opt.timeout_ms = 60000;
	opt.interval_ms = 100;
	opt.backlog = 65535;
	opt.window = 64 * 1024;
	parse_args(argc - 1, argv + 1, cmd);
	if (!strcmp(cmd->name, "chatter") && !(opt.seen & OB(X_SIZE)))
		opt.size = 32;

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (opt.timeout_ms)
		deadline_ns = now_ns() + opt.timeout_ms * NS_PER_MS;
	return cmd->run();
}
