// SPDX-License-Identifier: MIT
/*
 * loadgen — benchmark clients for sluice, one program with several modes.
 *
 *   loadgen MODE -c ADDR:PORT [options]
 *
 * Modes (see usage()):
 *   idle   open -n connections, one request/reply each so the proxy has a
 *          backend connection too, hold them idle, and report how much the
 *          resident memory of --pid grew per connection.
 *
 * Structure, so that more modes (rr, connrate, bulk, storm) slot in:
 *   - one option parser for every mode (struct lg_opts); a mode reads what it
 *     needs and ignores the rest;
 *   - an epoll client engine (struct lg_engine) that owns the connections:
 *     non-blocking connect, send one request, parse one reply (HTTP with
 *     Content-Length, or a fixed-size echo), then hands the connection back to
 *     the mode through struct lg_ops callbacks. The engine keeps no global
 *     state, so a threaded mode can run one engine per thread;
 *   - a table of modes at the bottom, dispatched by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench/bench_util.h"

#define LG_MAX_PIDS 64
#define LG_REPLY_HEAD_MAX 4096
#define LG_ECHO_MSG_LEN 16

/* ---- options ----------------------------------------------------------- */

struct lg_opts {
	const char *target;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint64_t conns;	      /* -n: connections */
	uint64_t inflight;    /* --inflight: connects in progress at once */
	uint64_t hold_ms;     /* --hold-ms: idle time before measuring */
	uint64_t warmup;      /* --warmup: connections opened and closed before measuring */
	uint64_t timeout_ms;  /* --timeout-ms: the whole run's deadline */
	uint64_t duration_ms; /* -d: for time-based modes */
	uint64_t rate;	      /* -r: for rate-based modes (per second) */
	bool echo;	      /* --echo: talk to an echo backend, not HTTP */
	long pids[LG_MAX_PIDS];
	unsigned int npids;
	bool verbose;
};

/* ---- engine ------------------------------------------------------------ */

enum lg_state {
	LG_FREE = 0,
	LG_CONNECTING,
	LG_SENDING,
	LG_READING,
	LG_IDLE, /* reply read; the mode owns the connection */
};

struct lg_conn {
	int fd;
	enum lg_state state;
	uint32_t idx;
	uint32_t sent;
	uint64_t t_start; /* CLOCK_MONOTONIC ns when the current step began */
	/* reply parser */
	char *head;	  /* HTTP head being assembled */
	uint32_t head_len;
	uint64_t body_left;
	bool head_done;
	uint32_t echo_left;
	bool server_close; /* reply said "Connection: close" */
};

struct lg_engine;

/*
 * What a mode does with connections. Every callback may be NULL. A callback
 * that closes the connection must do so with lg_conn_close().
 */
struct lg_ops {
	/* TCP connected; the engine sends the request next. */
	void (*on_connect)(struct lg_engine *e, struct lg_conn *c);
	/* A complete reply arrived; the connection is LG_IDLE. */
	void (*on_reply)(struct lg_engine *e, struct lg_conn *c);
	/* Connect, send or receive failed, or the peer closed (ERR is -errno). */
	void (*on_error)(struct lg_engine *e, struct lg_conn *c, int err);
};

struct lg_engine {
	const struct lg_opts *o;
	const struct lg_ops *ops;
	void *mode;
	int epfd;
	struct lg_conn *conns;
	uint32_t nconns;
	const char *req;
	size_t req_len;
	char scratch[64 * 1024];
};

static int lg_engine_init(struct lg_engine *e, const struct lg_opts *o, const struct lg_ops *ops,
			  void *mode, uint32_t nconns)
{
	static const char http_req[] = "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: sluice-loadgen\r\n\r\n";
	static const char echo_req[LG_ECHO_MSG_LEN + 1] = "sluice-loadgen!\n";
	uint32_t i;

	memset(e, 0, sizeof(*e));
	e->o = o;
	e->ops = ops;
	e->mode = mode;
	e->req = o->echo ? echo_req : http_req;
	e->req_len = o->echo ? LG_ECHO_MSG_LEN : sizeof(http_req) - 1;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0)
		return -errno;
	e->conns = calloc(nconns, sizeof(*e->conns));
	if (!e->conns)
		return -ENOMEM;
	e->nconns = nconns;
	for (i = 0; i < nconns; i++) {
		e->conns[i].fd = -1;
		e->conns[i].idx = i;
	}
	return 0;
}

static void lg_conn_close(struct lg_engine *e, struct lg_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->head);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->idx = (uint32_t)(c - e->conns);
}

static void lg_engine_free(struct lg_engine *e)
{
	uint32_t i;

	if (!e)
		return;
	for (i = 0; e->conns && i < e->nconns; i++)
		lg_conn_close(e, &e->conns[i]);
	free(e->conns);
	if (e->epfd >= 0)
		close(e->epfd);
}

static int lg_conn_events(struct lg_engine *e, struct lg_conn *c, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	return epoll_ctl(e->epfd, op, c->fd, &ev) ? -errno : 0;
}

static void lg_fail(struct lg_engine *e, struct lg_conn *c, int err)
{
	if (e->ops->on_error)
		e->ops->on_error(e, c, err);
	else
		lg_conn_close(e, c);
}

/* Start a non-blocking connect on the free slot C. 0 or -errno. */
static int lg_conn_open(struct lg_engine *e, struct lg_conn *c)
{
	int one = 1, err;

	c->fd = socket(e->o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t_start = bench_now_ns(CLOCK_MONOTONIC);
	c->state = LG_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&e->o->addr, e->o->addr_len) && errno != EINPROGRESS) {
		err = -errno;
		lg_conn_close(e, c);
		return err;
	}
	err = lg_conn_events(e, c, EPOLLOUT, EPOLL_CTL_ADD);
	if (err)
		lg_conn_close(e, c);
	return err;
}

/* Send (the rest of) the request. 0 or -errno. */
static int lg_conn_send(struct lg_engine *e, struct lg_conn *c)
{
	while (c->sent < e->req_len) {
		ssize_t n = send(c->fd, e->req + c->sent, e->req_len - c->sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* Still registered for EPOLLOUT since the connect. */
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		c->sent += (uint32_t)n;
	}
	c->state = LG_READING;
	c->head_len = 0;
	c->head_done = false;
	c->body_left = 0;
	c->echo_left = LG_ECHO_MSG_LEN;
	return lg_conn_events(e, c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

/*
 * Feed reply bytes. Returns 1 when the reply is complete, 0 when more is
 * needed, -errno on a malformed or oversized reply.
 */
static int lg_reply_feed(struct lg_engine *e, struct lg_conn *c, const char *buf, size_t len)
{
	const char *end, *v;
	size_t vlen, take, i;

	if (e->o->echo) {
		if (len > c->echo_left)
			return -EPROTO;
		c->echo_left -= (uint32_t)len;
		return c->echo_left == 0;
	}
	if (!c->head_done) {
		if (!c->head) {
			c->head = malloc(LG_REPLY_HEAD_MAX);
			if (!c->head)
				return -ENOMEM;
		}
		take = len < LG_REPLY_HEAD_MAX - c->head_len ? len : LG_REPLY_HEAD_MAX - c->head_len;
		memcpy(c->head + c->head_len, buf, take);
		c->head_len += (uint32_t)take;
		end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
		if (!end)
			return c->head_len == LG_REPLY_HEAD_MAX ? -E2BIG : 0;
		if (c->head_len < 12 || memcmp(c->head, "HTTP/1.", 7))
			return -EPROTO;
		c->head_done = true;
		v = bench_http_header(c->head, (size_t)(end - c->head), "content-length:", &vlen);
		if (!v)
			return -EPROTO; /* this client only speaks Content-Length */
		for (i = 0; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
			c->body_left = c->body_left * 10 + (uint64_t)(v[i] - '0');
		v = bench_http_header(c->head, (size_t)(end - c->head), "connection:", &vlen);
		c->server_close = v && bench_memcasemem(v, vlen, "close");
		/* Bytes past the head in this chunk belong to the body. */
		len = c->head_len - (size_t)(end + 4 - c->head);
		free(c->head);
		c->head = NULL;
		c->head_len = 0;
	}
	if (len > c->body_left)
		return -EPROTO; /* one request in flight: nothing may follow the body */
	c->body_left -= len;
	return c->body_left == 0;
}

static void lg_conn_readable(struct lg_engine *e, struct lg_conn *c)
{
	ssize_t n = recv(c->fd, e->scratch, sizeof(e->scratch), 0);
	int r;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		lg_fail(e, c, n == 0 ? -ECONNRESET : -errno);
		return;
	}
	if (c->state != LG_READING) {
		lg_fail(e, c, -EPROTO); /* data nobody asked for */
		return;
	}
	r = lg_reply_feed(e, c, e->scratch, (size_t)n);
	if (r < 0) {
		lg_fail(e, c, r);
	} else if (r == 1) {
		c->state = LG_IDLE;
		if (e->ops->on_reply)
			e->ops->on_reply(e, c);
	}
}

static void lg_conn_event(struct lg_engine *e, struct lg_conn *c, uint32_t events)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	switch (c->state) {
	case LG_CONNECTING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err) {
			lg_fail(e, c, -err);
			return;
		}
		if (e->ops->on_connect)
			e->ops->on_connect(e, c);
		c->sent = 0;
		c->state = LG_SENDING;
		err = lg_conn_send(e, c);
		break;
	case LG_SENDING:
		err = lg_conn_send(e, c);
		break;
	case LG_READING:
	case LG_IDLE:
		lg_conn_readable(e, c);
		return;
	case LG_FREE:
		return;
	}
	if (err)
		lg_fail(e, c, err);
}

/*
 * Run the event loop until DONE(e) says so or DEADLINE_NS (CLOCK_MONOTONIC)
 * passes. Returns 0 when DONE, -ETIMEDOUT at the deadline, -errno on error.
 */
static int lg_engine_run(struct lg_engine *e, uint64_t deadline_ns, bool (*done)(struct lg_engine *))
{
	struct epoll_event evs[256];

	for (;;) {
		uint64_t now = bench_now_ns(CLOCK_MONOTONIC);
		int i, n, wait_ms;

		if (done && done(e))
			return 0;
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		wait_ms = (int)((deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
		if (wait_ms > 100)
			wait_ms = 100;
		n = epoll_wait(e->epfd, evs, 256, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n; i++)
			lg_conn_event(e, evs[i].data.ptr, evs[i].events);
	}
}

/* ---- mode: idle -------------------------------------------------------- */

struct idle_state {
	uint32_t next;	   /* next slot to open */
	uint32_t inflight; /* connecting or waiting for the reply */
	uint32_t ready;	   /* replied and idle */
	uint32_t failed;
	uint32_t dropped;  /* went away while idle */
	int first_err;
};

static void idle_refill(struct lg_engine *e)
{
	struct idle_state *st = e->mode;

	while (st->inflight < e->o->inflight && st->next < e->nconns) {
		int err = lg_conn_open(e, &e->conns[st->next++]);

		if (err) {
			st->failed++;
			if (!st->first_err)
				st->first_err = err;
			continue;
		}
		st->inflight++;
	}
}

static void idle_on_reply(struct lg_engine *e, struct lg_conn *c)
{
	struct idle_state *st = e->mode;

	st->inflight--;
	st->ready++;
	idle_refill(e);
}

static void idle_on_error(struct lg_engine *e, struct lg_conn *c, int err)
{
	struct idle_state *st = e->mode;

	if (c->state == LG_IDLE) {
		st->ready--;
		st->dropped++;
	} else {
		st->inflight--;
		st->failed++;
	}
	if (!st->first_err)
		st->first_err = err;
	lg_conn_close(e, c);
	idle_refill(e);
}

static bool idle_all_open(struct lg_engine *e)
{
	struct idle_state *st = e->mode;

	return st->next == e->nconns && st->inflight == 0;
}

static long rss_sum_kib(const struct lg_opts *o)
{
	long sum = 0;
	unsigned int i;

	for (i = 0; i < o->npids; i++) {
		long kib = bench_rss_kib(o->pids[i]);

		if (kib < 0)
			return kib;
		sum += kib;
	}
	return sum;
}

/*
 * The proxy's memory is measured as a difference of VmRSS: after the
 * connections are open and have been idle for --hold-ms, minus before. Each
 * connection carried one request and reply, so the proxy also holds its
 * backend connection and whatever buffers it keeps for an idle pair.
 */
static int mode_idle(const struct lg_opts *o)
{
	static const struct lg_ops ops = {
		.on_reply = idle_on_reply,
		.on_error = idle_on_error,
	};
	struct idle_state st = { 0 };
	struct lg_engine *e;
	uint64_t t0, deadline;
	long before = 0, after = 0;
	double per_conn = 0;
	int err, ret = 1;

	if (o->conns == 0) {
		fprintf(stderr, "loadgen idle: -n is required\n");
		return 2;
	}
	if (o->warmup) {
		/*
		 * Warm-up: the same kind of connections, opened, used once and
		 * closed, so that memory a proxy allocates once and reuses (buffer
		 * pools, rings, tables) is in place before the baseline is taken.
		 */
		struct idle_state wst = { 0 };

		e = malloc(sizeof(*e));
		if (!e || lg_engine_init(e, o, &ops, &wst, (uint32_t)o->warmup)) {
			fprintf(stderr, "loadgen idle: out of memory\n");
			free(e);
			return 1;
		}
		idle_refill(e);
		lg_engine_run(e, bench_now_ns(CLOCK_MONOTONIC) + o->timeout_ms * NSEC_PER_MSEC,
			      idle_all_open);
		lg_engine_free(e);
		free(e);
		usleep(1000 * 1000); /* let the proxy see the closes */
	}
	e = malloc(sizeof(*e));
	if (!e || lg_engine_init(e, o, &ops, &st, (uint32_t)o->conns)) {
		fprintf(stderr, "loadgen idle: out of memory\n");
		free(e);
		return 1;
	}
	if (o->npids) {
		before = rss_sum_kib(o);
		if (before < 0) {
			fprintf(stderr, "loadgen idle: rss: %s\n", strerror((int)-before));
			goto out;
		}
	}

	t0 = bench_now_ns(CLOCK_MONOTONIC);
	deadline = t0 + o->timeout_ms * NSEC_PER_MSEC;
	idle_refill(e);
	err = lg_engine_run(e, deadline, idle_all_open);
	if (err)
		fprintf(stderr, "loadgen idle: opening: %s\n", strerror(-err));
	if (o->verbose)
		fprintf(stderr, "loadgen idle: %u open in %.3f s, %u failed\n", st.ready,
			(double)(bench_now_ns(CLOCK_MONOTONIC) - t0) / NSEC_PER_SEC, st.failed);

	/* Hold: keep serving events so that drops are noticed. */
	lg_engine_run(e, bench_now_ns(CLOCK_MONOTONIC) + o->hold_ms * NSEC_PER_MSEC, NULL);

	if (o->npids) {
		after = rss_sum_kib(o);
		if (after < 0) {
			fprintf(stderr, "loadgen idle: rss: %s\n", strerror((int)-after));
			goto out;
		}
	}
	if (st.ready)
		per_conn = (double)(after - before) * 1024.0 / st.ready;
	printf("conns=%u rss_before_kib=%ld rss_after_kib=%ld bytes_per_conn=%.0f failed=%u "
	       "dropped=%u\n",
	       st.ready, before, after, per_conn, st.failed, st.dropped);
	fflush(stdout);
	if (st.first_err && (st.failed || st.dropped))
		fprintf(stderr, "loadgen idle: first error: %s\n", strerror(-st.first_err));
	ret = st.ready == o->conns ? 0 : 1;
out:
	lg_engine_free(e);
	free(e);
	return ret;
}

/* ---- main: option parsing and mode table -------------------------------- */

struct lg_mode {
	const char *name;
	const char *help;
	int (*run)(const struct lg_opts *o);
};

static const struct lg_mode lg_modes[] = {
	{ "idle", "open -n connections, one request each, hold idle, report RSS of --pid",
	  mode_idle },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out,
		"usage: loadgen MODE -c ADDR:PORT [options]\n"
		"  -c, --connect ADDR:PORT   target (loopback only)\n"
		"  -n, --conns N             connections\n"
		"  -d, --duration-ms MS      run time of time-based modes\n"
		"  -r, --rate N              per-second rate of rate-based modes\n"
		"  -p, --pid PID[,PID..]     processes whose RSS to measure (repeatable)\n"
		"      --hold-ms MS          idle time before measuring (default 1000)\n"
		"      --warmup N            first open and close N connections, so that pools\n"
		"                            the proxy keeps for good are not counted as growth\n"
		"      --inflight N          connects in progress at once (default 256)\n"
		"      --timeout-ms MS       deadline for the whole run (default 60000)\n"
		"      --echo                echo backend: 16-byte message instead of HTTP\n"
		"  -v, --verbose\n"
		"modes:\n");
	for (i = 0; i < sizeof(lg_modes) / sizeof(lg_modes[0]); i++)
		fprintf(out, "  %-8s %s\n", lg_modes[i].name, lg_modes[i].help);
}

static int parse_pids(struct lg_opts *o, const char *text)
{
	char *copy = strdup(text), *tok, *save = NULL;
	uint64_t v;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->npids == LG_MAX_PIDS || bench_parse_u64(tok, 1 << 30, &v) || !v) {
			err = -EINVAL;
			break;
		}
		o->pids[o->npids++] = (long)v;
	}
	free(copy);
	return err;
}

static int parse_args(int argc, char **argv, struct lg_opts *o)
{
	enum { OPT_HOLD = 256, OPT_INFLIGHT, OPT_TIMEOUT, OPT_ECHO, OPT_WARMUP };
	static const struct option lopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "conns", required_argument, NULL, 'n' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "pid", required_argument, NULL, 'p' },
		{ "hold-ms", required_argument, NULL, OPT_HOLD },
		{ "inflight", required_argument, NULL, OPT_INFLIGHT },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "echo", no_argument, NULL, OPT_ECHO },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, len;

	while ((c = getopt_long(argc, argv, "c:n:d:r:p:vh", lopts, NULL)) != -1) {
		int err = 0;

		switch (c) {
		case 'c':
			o->target = optarg;
			break;
		case 'n':
			err = bench_parse_u64(optarg, 1000000, &o->conns);
			break;
		case 'd':
			err = bench_parse_u64(optarg, 24 * 3600 * 1000ULL, &o->duration_ms);
			break;
		case 'r':
			err = bench_parse_u64(optarg, 10000000, &o->rate);
			break;
		case 'p':
			err = parse_pids(o, optarg);
			break;
		case OPT_HOLD:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->hold_ms);
			break;
		case OPT_INFLIGHT:
			err = bench_parse_u64(optarg, 100000, &o->inflight);
			if (!err && !o->inflight)
				err = -EINVAL;
			break;
		case OPT_TIMEOUT:
			err = bench_parse_u64(optarg, 24 * 3600 * 1000ULL, &o->timeout_ms);
			break;
		case OPT_ECHO:
			o->echo = true;
			break;
		case OPT_WARMUP:
			err = bench_parse_u64(optarg, 1000000, &o->warmup);
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			err = -EINVAL;
		}
		if (err) {
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc || !o->target) {
		usage(stderr);
		return -EINVAL;
	}
	len = bench_parse_addr(o->target, &o->addr);
	if (len < 0) {
		fprintf(stderr, "loadgen: bad address: %s\n", o->target);
		return -EINVAL;
	}
	o->addr_len = (socklen_t)len;
	return 0;
}

int main(int argc, char **argv)
{
	struct lg_opts o = {
		.inflight = 256,
		.hold_ms = 1000,
		.timeout_ms = 60000,
	};
	const struct lg_mode *m = NULL;
	uint64_t nofile;
	size_t i;

	if (argc < 2 || argv[1][0] == '-') {
		usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	for (i = 0; i < sizeof(lg_modes) / sizeof(lg_modes[0]); i++)
		if (!strcmp(argv[1], lg_modes[i].name))
			m = &lg_modes[i];
	if (!m) {
		fprintf(stderr, "loadgen: unknown mode: %s\n", argv[1]);
		usage(stderr);
		return 2;
	}
	/* getopt starts after the mode word. */
	if (parse_args(argc - 1, argv + 1, &o))
		return 2;

	signal(SIGPIPE, SIG_IGN);
	nofile = bench_raise_nofile();
	if (o.conns + 16 > nofile) {
		fprintf(stderr, "loadgen: -n %llu needs more descriptors than the limit %llu\n",
			(unsigned long long)o.conns, (unsigned long long)nofile);
		return 2;
	}
	return m->run(&o);
}
