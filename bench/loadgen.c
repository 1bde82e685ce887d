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
 *   storm  -n clients that were all just disconnected reconnect at once and
 *          retry by --policy until each is through; reports how long the
 *          herd took to get back and how many attempts it cost.
 *   rr     -n persistent connections in a request/reply loop (tcp echo,
 *          HTTP keep-alive or WebSocket frames): req/s and latency.
 *   connrate  -n connection attempts in flight, each connect, one request,
 *          reply, close: conn/s, connect and transaction latency, errors.
 *   bulk   -n connections streaming to an echo server: Gbit/s received.
 *
 * --tls puts a TLS client handshake on every connection of idle, rr,
 * connrate and bulk (full handshakes; with --tls-resume every connection
 * offers the session of a first, priming connection).
 *
 * Structure, so that more modes slot in:
 *   - one option parser for every mode (struct lg_opts); a mode reads what it
 *     needs and ignores the rest;
 *   - a client engine (struct lg_engine) that owns the connections:
 *     non-blocking connect, send one request, parse one reply (HTTP with
 *     Content-Length, or a fixed-size echo), then hands the connection back to
 *     the mode through struct lg_ops callbacks. The engine keeps no global
 *     state, so a threaded mode can run one engine per thread;
 *   - storm has its own loop (retries, per-client timers); rr, connrate and
 *     bulk share the flow engine (struct flow), built for throughput;
 *   - a table of modes at the bottom, dispatched by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench/bench_util.h"
#include "bench/evring.h"

#define LG_MAX_PIDS 64
#define LG_REPLY_HEAD_MAX 4096
#define LG_ECHO_MSG_LEN 16

/* ---- options ----------------------------------------------------------- */

enum lg_policy {
	LG_POLICY_NONE = 0,
	LG_POLICY_NAIVE,       /* retry at once */
	LG_POLICY_BACKOFF,     /* exponential backoff, full jitter */
	LG_POLICY_RETRY_AFTER, /* obey a 503's Retry-After, else backoff */
};

enum lg_proto {
	LG_PROTO_DEFAULT = 0, /* the mode's own default */
	LG_PROTO_TCP,
	LG_PROTO_HTTP,
	LG_PROTO_WS,
};

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
	bool hold_set;	      /* --hold-ms was given (storm: else hold to the end) */
	/* storm */
	enum lg_policy policy;	       /* --policy */
	enum lg_proto proto;	       /* --proto */
	bool ws;		       /* --proto ws (storm: else tcp) */
	uint64_t connect_timeout_ms;   /* --connect-timeout-ms */
	uint64_t give_up_ms;	       /* --give-up-ms: one attempt's patience */
	uint64_t max_ms;	       /* --max-ms: the whole storm's deadline */
	uint64_t spread_ms;	       /* --spread-ms: first attempts spread over this */
	uint64_t backoff_base_ms;      /* --backoff-base-ms */
	uint64_t backoff_max_ms;       /* --backoff-max-ms */
	uint64_t seed;		       /* --seed */
	bool seed_set;
	const char *series;	       /* --series FILE: CSV per 100 ms */
	const char *cdf;	       /* --cdf FILE: rr, connrate latency CDF */
	bool json;		       /* --json: JSON report instead of the line */
	bool once;		       /* --once (queue): no client is replaced */
	/* rr, connrate, bulk */
	uint64_t size;		       /* --size: message or chunk bytes */
	bool size_set;
	uint64_t warmup_ms;	       /* --warmup-ms: run, not counted */
	/* TLS: rr, connrate, bulk, idle */
	bool tls;	       /* --tls */
	bool tls_resume;       /* --tls-resume: offer the priming session */
	int tls_version;       /* --tls-version: 0 (negotiate), TLS1_2_VERSION, .. */
	const char *sni;       /* --sni */
	SSL_CTX *tls_ctx;      /* made by main() when --tls; shared, read-only */
	SSL_SESSION *tls_sess; /* --tls-resume: what every connection offers */
};

/* ---- TLS (client side) --------------------------------------------------- */

/*
 * OpenSSL runs over the socket itself (a socket BIO). Both engines below are
 * readiness loops (io_uring polls, bench/evring.h) over non-blocking sockets, so SSL_read/SSL_write take the place
 * of recv/send and SSL_ERROR_WANT_READ/WANT_WRITE the place of EAGAIN: the
 * record layer does exactly one recv or send per step and stops at EAGAIN,
 * and a poll reports the socket, not the SSL object.
 *
 * Edge-triggered loops need one more guarantee: no bytes may hide in a buffer
 * a poll cannot see. read_ahead stays off, so OpenSSL reads a record's header
 * and then exactly its body, never past it; and every SSL_read is given at
 * least a whole record's room (16 KiB), so no plaintext is left pending in
 * the SSL object either. What is left is what the kernel holds, which raises
 * the next edge.
 *
 * Resumption: OpenSSL offers a TLS 1.3 session object at most once (it is
 * marked used), so each connection gets its own SSL_SESSION_dup of the
 * priming session. The priming connection waits for the server's
 * NewSessionTicket, which in TLS 1.3 arrives after the handshake: its
 * session is only taken once it is resumable.
 */
#define LG_ETLS (-EBADE) /* a TLS protocol failure (SSL_ERROR_SSL) */

/*
 * What SSL_read/SSL_write/SSL_do_handshake's return R means, as our I/O
 * functions say it: -EAGAIN (want read or write), 0 (the peer closed:
 * close_notify, or EOF), -errno, or LG_ETLS.
 */
static int lg_tls_result(SSL *ssl, int r)
{
	int saved = errno;

	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return saved && saved != EAGAIN ? -saved : 0;
	default:
		ERR_clear_error();
		return LG_ETLS;
	}
}

/* recv() or SSL_read(): bytes (> 0), 0 at EOF, -EAGAIN, -errno, LG_ETLS. */
static ssize_t lg_io_recv(int fd, SSL *ssl, void *buf, size_t len)
{
	ssize_t n;
	int r;

	if (!ssl) {
		n = recv(fd, buf, len, 0);
		return n < 0 ? -errno : n;
	}
	ERR_clear_error();
	r = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	return r > 0 ? r : lg_tls_result(ssl, r);
}

/* send() or SSL_write(): bytes (> 0), -EAGAIN, -errno, LG_ETLS. */
static ssize_t lg_io_send(int fd, SSL *ssl, const void *buf, size_t len)
{
	ssize_t n;
	int r;

	if (!ssl) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		return n < 0 ? -errno : n;
	}
	ERR_clear_error();
	r = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0)
		return r;
	r = lg_tls_result(ssl, r);
	return r ? r : -EPIPE; /* a close while writing */
}

/* A client SSL on FD, offering the priming session if there is one; NULL on ENOMEM. */
static SSL *lg_tls_new(const struct lg_opts *o, int fd)
{
	SSL *ssl = SSL_new(o->tls_ctx);

	if (!ssl)
		return NULL;
	if (!SSL_set_fd(ssl, fd) || (o->sni && !SSL_set_tlsext_host_name(ssl, o->sni))) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	if (o->tls_sess) {
		SSL_SESSION *dup = SSL_SESSION_dup(o->tls_sess);

		if (!dup || !SSL_set_session(ssl, dup)) {
			SSL_SESSION_free(dup);
			SSL_free(ssl);
			return NULL;
		}
		SSL_SESSION_free(dup); /* the SSL holds its own reference */
	}
	return ssl;
}

/*
 * One handshake step: 1 done, 0 waiting (-EAGAIN's case: the socket will say
 * when), or the failure as lg_tls_result() says it (0 there, EOF, becomes
 * -ECONNRESET here: the server closed in the middle of the handshake).
 */
static int lg_tls_handshake(SSL *ssl)
{
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(ssl);
	if (r == 1)
		return 1;
	r = lg_tls_result(ssl, r);
	return r == -EAGAIN ? 0 : r ? r : -ECONNRESET;
}

/* What every TLS report adds: handshakes by kind and what was negotiated. */
struct lg_tls_stats {
	uint64_t full, resumed;
	const char *version; /* static strings from OpenSSL */
	const char *cipher;
};

static void lg_tls_note(struct lg_tls_stats *t, SSL *ssl)
{
	if (SSL_session_reused(ssl))
		t->resumed++;
	else
		t->full++;
	if (!t->version) {
		t->version = SSL_get_version(ssl);
		t->cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
	}
}

/*
 * Whether SSL's session can be offered. TLS 1.3: only once a ticket came;
 * SSL_SESSION_is_resumable alone says yes earlier, because the client's
 * session holds the legacy session id the server echoed.
 */
static bool lg_tls_resumable(SSL *ssl)
{
	SSL_SESSION *s = SSL_get0_session(ssl);

	return s && SSL_SESSION_is_resumable(s) &&
	       (SSL_version(ssl) < TLS1_3_VERSION || SSL_SESSION_has_ticket(s));
}

/*
 * The priming connection (--tls-resume): a blocking connect, a handshake,
 * one request (REQ, LEN bytes: the mode's own, so that the server answers)
 * and reading until the session is resumable, i.e. until the server's
 * ticket has arrived (TLS 1.3), or for TLS 1.2 at once. Returns the session
 * or NULL with a message on stderr.
 */
static SSL_SESSION *lg_tls_prime(const struct lg_opts *o, const char *req, size_t len)
{
	struct timeval tv = { .tv_sec = 5 };
	SSL_SESSION *sess = NULL;
	const char *why = "no resumable session within 5 s";
	char buf[16384];
	uint64_t deadline = bench_now_ns(CLOCK_MONOTONIC) + 5 * NSEC_PER_SEC;
	SSL *ssl = NULL;
	bool sent = false;
	int fd, r;

	fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (const struct sockaddr *)&o->addr, o->addr_len)) {
		why = strerror(errno);
		goto out;
	}
	ssl = SSL_new(o->tls_ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || (o->sni && !SSL_set_tlsext_host_name(ssl, o->sni))) {
		why = "out of memory";
		goto out;
	}
	ERR_clear_error();
	if (SSL_connect(ssl) != 1) {
		why = "handshake failed";
		goto out;
	}
	while (bench_now_ns(CLOCK_MONOTONIC) < deadline) {
		if (lg_tls_resumable(ssl)) {
			/*
			 * A copy: SSL_free of a connection that was not shut
			 * down marks its session not resumable (OpenSSL's
			 * ssl_clear_bad_session), and ours must outlive it.
			 */
			sess = SSL_SESSION_dup(SSL_get0_session(ssl));
			break;
		}
		if (!sent) {
			ERR_clear_error();
			if (SSL_write(ssl, req, (int)len) != (int)len) {
				why = "sending the request failed";
				break;
			}
			sent = true;
		}
		/* The ticket is processed inside SSL_read, before any reply. */
		ERR_clear_error();
		r = SSL_read(ssl, buf, sizeof(buf));
		if (r <= 0 && !lg_tls_resumable(ssl)) {
			why = "the server closed before sending a session ticket";
			break;
		}
	}
out:
	if (!sess)
		fprintf(stderr, "loadgen: --tls-resume: priming connection: %s\n", why);
	if (sess)
		SSL_shutdown(ssl); /* close_notify: a clean end, as a browser's */
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return sess;
}

/* ---- engine ------------------------------------------------------------ */

enum lg_state {
	LG_FREE = 0,
	LG_CONNECTING,
	LG_HANDSHAKE, /* --tls */
	LG_SENDING,
	LG_READING,
	LG_IDLE, /* reply read; the mode owns the connection */
};

struct lg_conn {
	int fd;
	enum lg_state state;
	SSL *ssl; /* --tls */
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
	struct evring ev;
	struct lg_conn *conns;
	uint32_t nconns;
	const char *req;
	size_t req_len;
	struct lg_tls_stats tls;
	char scratch[64 * 1024]; /* >= a TLS record: see "TLS (client side)" */
};

static int lg_engine_init(struct lg_engine *e, const struct lg_opts *o, const struct lg_ops *ops,
			  void *mode, uint32_t nconns)
{
	static const char http_req[] = "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: sluice-loadgen\r\n\r\n";
	static const char echo_req[LG_ECHO_MSG_LEN + 1] = "sluice-loadgen!\n";
	uint32_t i;
	int err;

	memset(e, 0, sizeof(*e));
	e->o = o;
	e->ops = ops;
	e->mode = mode;
	e->req = o->echo ? echo_req : http_req;
	e->req_len = o->echo ? LG_ECHO_MSG_LEN : sizeof(http_req) - 1;
	err = evr_init(&e->ev, 16384);
	if (err)
		return err;
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
	SSL_free(c->ssl); /* no close_notify: the connection is just dropped */
	if (c->fd >= 0) {
		evr_forget(&e->ev, c->fd);
		close(c->fd);
	}
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
	evr_exit(&e->ev);
}

static int lg_conn_events(struct lg_engine *e, struct lg_conn *c, uint32_t events, int op)
{
	return evr_ctl(&e->ev, op, c->fd, events, (uintptr_t)c);
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
		ssize_t n = lg_io_send(c->fd, c->ssl, e->req + c->sent, e->req_len - c->sent);

		if (n < 0) {
			if (n == -EINTR)
				continue;
			/* Registered for EPOLLOUT since the connect (or the handshake). */
			if (n == -EAGAIN)
				return 0;
			return (int)n;
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
	ssize_t n = lg_io_recv(c->fd, c->ssl, e->scratch, sizeof(e->scratch));
	int r;

	if (n == -EAGAIN || n == -EINTR)
		return; /* TLS: a record not whole yet, or a ticket with no data */
	if (n <= 0) {
		lg_fail(e, c, n == 0 ? -ECONNRESET : (int)n);
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
		if (e->o->tls) {
			c->ssl = lg_tls_new(e->o, c->fd);
			if (!c->ssl) {
				lg_fail(e, c, -ENOMEM);
				return;
			}
			c->state = LG_HANDSHAKE;
		}
		/* fall through */
	case LG_HANDSHAKE:
		if (c->state == LG_HANDSHAKE) {
			/*
			 * Level-triggered: wait for what the handshake wants,
			 * then for EPOLLOUT to send the request.
			 */
			err = lg_tls_handshake(c->ssl);
			if (err == 0) {
				err = lg_conn_events(
				    e, c, SSL_want_write(c->ssl) ? EPOLLOUT : EPOLLIN | EPOLLRDHUP,
				    EPOLL_CTL_MOD);
				break;
			}
			if (err < 0)
				break;
			lg_tls_note(&e->tls, c->ssl);
			err = lg_conn_events(e, c, EPOLLOUT, EPOLL_CTL_MOD);
			if (err)
				break;
		}
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
		n = evr_wait(&e->ev, evs, 256, wait_ms);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
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
	       "dropped=%u",
	       st.ready, before, after, per_conn, st.failed, st.dropped);
	if (o->tls)
		printf(" tls_full=%llu tls_resumed=%llu tls_version=%s tls_cipher=%s",
		       (unsigned long long)e->tls.full, (unsigned long long)e->tls.resumed,
		       e->tls.version ? e->tls.version : "-", e->tls.cipher ? e->tls.cipher : "-");
	printf("\n");
	fflush(stdout);
	if (st.first_err && (st.failed || st.dropped))
		fprintf(stderr, "loadgen idle: first error: %s\n", strerror(-st.first_err));
	ret = st.ready == o->conns ? 0 : 1;
out:
	lg_engine_free(e);
	free(e);
	return ret;
}

/* ---- mode: storm ------------------------------------------------------- */

/*
 * storm: -n clients that were all just disconnected reconnect at once (each
 * first attempt at a uniform time in [0, --spread-ms]) and keep at it until
 * they are through or --max-ms passes.
 *
 * One attempt: non-blocking connect; then for tcp one 16-byte message and its
 * echo; for ws an HTTP/1.1 upgrade request, "101" with a checked
 * Sec-WebSocket-Accept, one masked text frame and its echo. The echo is the
 * success: the client is "reconnected" and holds the connection (to the end
 * of the run, or for --hold-ms). Anything else fails the attempt and the
 * client closes its socket:
 *   gave up  no success within --give-up-ms of the attempt's start (or no
 *            connect within --connect-timeout-ms): the client's own patience,
 *            which is what makes a server's late work wasted;
 *   refused  RST (ECONNREFUSED, ECONNRESET, EPIPE), EOF, a ws close frame, or
 *            an HTTP status other than 101 (503 counted apart);
 *   error    anything else (local errors such as EADDRNOTAVAIL, or a reply
 *            that is not the echo).
 * The next attempt follows --policy: naive at once; backoff after
 * U(0, min(max, base * 2^k)) with k = failed attempts - 1 (AWS "full
 * jitter": the first retry waits up to base); retry-after waits exactly the
 * Retry-After of a 503 when there is one, else like backoff.
 *
 * Not built on lg_engine: that engine's one-request/one-reply lifecycle has
 * no retries, per-client timers or upgrade handshake. Here one event loop and
 * one min-heap of deadlines (struct bench_heap: start, give-up, retry, end of
 * hold; one per client) drive everything, so nothing polls: the loop sleeps
 * until the next event or the next deadline. A client has at most one socket
 * at a time.
 *
 * New sockets are only opened from timers, never while a batch of events is
 * being handled, so a stale event in a batch (its client failed earlier in the
 * same batch) can only find that client without a socket, and is ignored.
 */

#define STORM_OUT_MAX 384
#define STORM_RX_MAX 64
#define STORM_HEAD_MAX 4096
#define STORM_BUCKET_MS 100
#define STORM_NO_RETRY_AFTER UINT64_MAX
#define STORM_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum storm_state {
	ST_WAITING = 0, /* before the first attempt, or sleeping before a retry */
	ST_CONNECTING,
	ST_SENDING,	/* the echo message, or the upgrade request */
	ST_HEAD,	/* ws: reading the response head */
	ST_FRAME,	/* ws: sending the masked frame */
	ST_ECHO,	/* reading the echo: raw bytes, or a ws frame */
	ST_HOLDING,	/* reconnected; the connection stays open */
	ST_DONE,	/* reconnected, then closed (hold over, or dropped) */
};

enum storm_why {
	SW_GAVE_UP,
	SW_RST,	 /* refused: ECONNREFUSED, ECONNRESET, EPIPE */
	SW_EOF,	 /* refused: orderly close, or a ws close frame */
	SW_503,	 /* refused: HTTP 503 */
	SW_HTTP, /* refused: another HTTP status than 101 */
	SW_ERROR,
};

struct storm_client {
	int fd;
	uint8_t state;	/* enum storm_state */
	uint8_t rx_len;
	uint16_t out_len, out_off;
	uint32_t events;   /* what fd is registered for (evring) */
	uint32_t attempts; /* started so far */
	uint32_t head_len;
	uint64_t t_attempt; /* CLOCK_MONOTONIC ns the current attempt started */
	char *head;	    /* ws: the response head being assembled */
	char msg[LG_ECHO_MSG_LEN + 1]; /* what must come back */
	char key[32];	    /* ws: Sec-WebSocket-Key of this attempt */
	char rx[STORM_RX_MAX];
	char out[STORM_OUT_MAX];
};

struct storm_bucket {
	uint32_t started, ok, gave_up, refused;
};

struct storm {
	const struct lg_opts *o;
	struct storm_client *cl;
	uint32_t n;
	struct evring ev;
	struct bench_heap timers;
	struct bench_rng rng;
	uint64_t t0, deadline, t_end;
	uint32_t pending;     /* clients whose business is not over */
	uint32_t reconnected;
	uint64_t *t_success;  /* ns after t0 of each success, in order */
	struct storm_bucket *series;
	uint32_t nbuckets;
	/* counters */
	uint64_t attempts, gave_up, rst, eof, http_503, http_other, errors;
	uint32_t dropped;     /* held connections the server closed */
	uint32_t cut;	      /* attempts still running at the deadline */
	int first_err;
	int loop_err;
	char scratch[4096];
};

static struct storm_bucket *storm_bucket(struct storm *s, uint64_t now)
{
	uint64_t i = now > s->t0 ? (now - s->t0) / (STORM_BUCKET_MS * NSEC_PER_MSEC) : 0;

	return &s->series[i < s->nbuckets ? i : s->nbuckets - 1];
}

static uint32_t storm_idx(struct storm *s, struct storm_client *c)
{
	return (uint32_t)(c - s->cl);
}

static void storm_close(struct storm *s, struct storm_client *c)
{
	if (c->fd >= 0) {
		evr_forget(&s->ev, c->fd);
		close(c->fd);
	}
	c->fd = -1;
	c->events = 0;
	free(c->head);
	c->head = NULL;
	c->head_len = 0;
	c->rx_len = 0;
}

static int storm_watch(struct storm *s, struct storm_client *c, uint32_t events)
{
	int err;

	if (c->events == events)
		return 0;
	err = evr_ctl(&s->ev, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, events,
		      storm_idx(s, c));
	if (err)
		return err;
	c->events = events;
	return 0;
}

/* How long to sleep before the next attempt, in ns. */
static uint64_t storm_retry_delay(struct storm *s, struct storm_client *c, uint64_t retry_after)
{
	const struct lg_opts *o = s->o;
	uint64_t cap = o->backoff_max_ms;
	uint32_t k = c->attempts ? c->attempts - 1 : 0;

	if (o->policy == LG_POLICY_NAIVE)
		return 0;
	if (o->policy == LG_POLICY_RETRY_AFTER && retry_after != STORM_NO_RETRY_AFTER)
		return retry_after;
	if (k < 63 && o->backoff_base_ms <= (o->backoff_max_ms >> k))
		cap = o->backoff_base_ms << k;
	return bench_rng_below(&s->rng, cap * NSEC_PER_MSEC + 1);
}

/* The attempt failed: count it, close, and schedule the next one. */
static void storm_fail(struct storm *s, struct storm_client *c, enum storm_why why, int err,
		       uint64_t retry_after)
{
	uint64_t now = bench_now_ns(CLOCK_MONOTONIC);
	struct storm_bucket *b = storm_bucket(s, now);

	switch (why) {
	case SW_GAVE_UP:
		s->gave_up++;
		b->gave_up++;
		break;
	case SW_RST:
		s->rst++;
		b->refused++;
		break;
	case SW_EOF:
		s->eof++;
		b->refused++;
		break;
	case SW_503:
		s->http_503++;
		b->refused++;
		break;
	case SW_HTTP:
		s->http_other++;
		b->refused++;
		break;
	case SW_ERROR:
		s->errors++;
		if (!s->first_err)
			s->first_err = err;
		break;
	}
	storm_close(s, c);
	c->state = ST_WAITING;
	bench_heap_set(&s->timers, storm_idx(s, c), now + storm_retry_delay(s, c, retry_after));
}

static void storm_fail_errno(struct storm *s, struct storm_client *c, int err)
{
	bool refused = err == -ECONNREFUSED || err == -ECONNRESET || err == -EPIPE;

	storm_fail(s, c, refused ? SW_RST : SW_ERROR, err, STORM_NO_RETRY_AFTER);
}

static void storm_success(struct storm *s, struct storm_client *c)
{
	uint64_t now = bench_now_ns(CLOCK_MONOTONIC);

	s->t_success[s->reconnected++] = now - s->t0;
	storm_bucket(s, now)->ok++;
	c->state = ST_HOLDING;
	free(c->head);
	c->head = NULL;
	if (s->o->hold_set) {
		bench_heap_set(&s->timers, storm_idx(s, c), now + s->o->hold_ms * NSEC_PER_MSEC);
	} else {
		bench_heap_cancel(&s->timers, storm_idx(s, c));
		s->pending--;
	}
}

/* Start an attempt: socket, non-blocking connect, the connect deadline. */
static void storm_attempt(struct storm *s, struct storm_client *c)
{
	const struct lg_opts *o = s->o;
	uint64_t now = bench_now_ns(CLOCK_MONOTONIC), patience;
	int one = 1, err;

	c->attempts++;
	s->attempts++;
	storm_bucket(s, now)->started++;
	c->t_attempt = now;
	c->state = ST_CONNECTING;
	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		storm_fail(s, c, SW_ERROR, -errno, STORM_NO_RETRY_AFTER);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addr_len) && errno != EINPROGRESS) {
		storm_fail_errno(s, c, -errno);
		return;
	}
	err = storm_watch(s, c, EPOLLOUT);
	if (err) {
		storm_fail(s, c, SW_ERROR, err, STORM_NO_RETRY_AFTER);
		return;
	}
	patience = o->connect_timeout_ms < o->give_up_ms ? o->connect_timeout_ms : o->give_up_ms;
	bench_heap_set(&s->timers, storm_idx(s, c), now + patience * NSEC_PER_MSEC);
}

/* The first thing to send once connected: the echo message or the upgrade. */
static int storm_request(struct storm *s, struct storm_client *c)
{
	uint8_t raw[16];
	unsigned int i;
	int len;

	snprintf(c->msg, sizeof(c->msg), "%07x:%07x\n", storm_idx(s, c) & 0xfffffffu,
		 c->attempts & 0xfffffffu);
	c->out_off = 0;
	if (!s->o->ws) {
		memcpy(c->out, c->msg, LG_ECHO_MSG_LEN);
		c->out_len = LG_ECHO_MSG_LEN;
		return 0;
	}
	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)bench_rng_next(&s->rng);
	bench_base64(raw, sizeof(raw), c->key);
	len = snprintf(c->out, sizeof(c->out),
		       "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		       "User-Agent: sluice-loadgen\r\n\r\n",
		       s->o->target, c->key);
	if (len < 0 || (size_t)len >= sizeof(c->out))
		return -E2BIG;
	c->out_len = (uint16_t)len;
	return 0;
}

/* A masked text frame carrying c->msg (a client must mask, RFC 6455 5.3). */
static void storm_frame(struct storm *s, struct storm_client *c)
{
	uint64_t m = bench_rng_next(&s->rng);
	unsigned int i;

	c->out[0] = (char)0x81; /* FIN, text */
	c->out[1] = (char)(0x80 | LG_ECHO_MSG_LEN);
	for (i = 0; i < 4; i++)
		c->out[2 + i] = (char)(m >> (8 * i));
	for (i = 0; i < LG_ECHO_MSG_LEN; i++)
		c->out[6 + i] = (char)(c->msg[i] ^ c->out[2 + i % 4]);
	c->out_len = 6 + LG_ECHO_MSG_LEN;
	c->out_off = 0;
}

static void storm_echo(struct storm *s, struct storm_client *c);

/* Send what is left of c->out, then wait for the answer. */
static void storm_flush(struct storm *s, struct storm_client *c)
{
	int err;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				err = storm_watch(s, c, EPOLLOUT);
				if (err)
					storm_fail(s, c, SW_ERROR, err, STORM_NO_RETRY_AFTER);
				return;
			}
			storm_fail_errno(s, c, -errno);
			return;
		}
		c->out_off += (uint16_t)n;
	}
	c->state = c->state == ST_SENDING && s->o->ws ? ST_HEAD : ST_ECHO;
	err = storm_watch(s, c, EPOLLIN | EPOLLRDHUP);
	if (err) {
		storm_fail(s, c, SW_ERROR, err, STORM_NO_RETRY_AFTER);
		return;
	}
	/* Bytes that came with the 101 may already hold (part of) the echo. */
	if (c->state == ST_ECHO && c->rx_len)
		storm_echo(s, c);
}

/* Retry-After as delta-seconds, in ns; an HTTP-date or garbage counts as none. */
static uint64_t storm_retry_after(const char *head, size_t len)
{
	const char *v = bench_http_header(head, len, "retry-after:", &len);
	uint64_t secs = 0;
	size_t i;

	if (!v || !len || len > 7)
		return STORM_NO_RETRY_AFTER;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return STORM_NO_RETRY_AFTER;
		secs = secs * 10 + (uint64_t)(v[i] - '0');
	}
	return secs * NSEC_PER_SEC;
}

/* ws: the response head is complete up to END (its blank line included). */
static void storm_head(struct storm *s, struct storm_client *c, const char *end)
{
	size_t hlen = (size_t)(end - c->head), rest = c->head_len - hlen, vlen;
	char want[64], both[sizeof(c->key) + sizeof(STORM_WS_GUID)];
	const char *v, *h = c->head;
	unsigned int status;
	uint8_t digest[20];

	if (hlen < 16 || memcmp(h, "HTTP/1.", 7) || h[8] != ' ' || h[9] < '0' || h[9] > '9' ||
	    h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9') {
		storm_fail(s, c, SW_ERROR, -EPROTO, STORM_NO_RETRY_AFTER);
		return;
	}
	status = (unsigned int)((h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0'));
	if (status == 503) {
		storm_fail(s, c, SW_503, -EBUSY, storm_retry_after(h, hlen));
		return;
	}
	if (status != 101) {
		storm_fail(s, c, SW_HTTP, -EPROTO, STORM_NO_RETRY_AFTER);
		return;
	}
	snprintf(both, sizeof(both), "%s%s", c->key, STORM_WS_GUID);
	bench_sha1(both, strlen(both), digest);
	bench_base64(digest, sizeof(digest), want);
	v = bench_http_header(h, hlen, "sec-websocket-accept:", &vlen);
	if (!v || vlen != strlen(want) || memcmp(v, want, vlen) || rest > sizeof(c->rx)) {
		storm_fail(s, c, SW_ERROR, -EPROTO, STORM_NO_RETRY_AFTER);
		return;
	}
	memcpy(c->rx, end, rest);
	c->rx_len = (uint8_t)rest;
	free(c->head);
	c->head = NULL;
	c->head_len = 0;
	storm_frame(s, c);
	c->state = ST_FRAME;
	storm_flush(s, c);
}

/* tcp: the 16 bytes back; ws: a frame with them (pings and pongs skipped). */
static void storm_echo(struct storm *s, struct storm_client *c)
{
	if (!s->o->ws) {
		if (c->rx_len < LG_ECHO_MSG_LEN)
			return;
		if (memcmp(c->rx, c->msg, LG_ECHO_MSG_LEN))
			storm_fail(s, c, SW_ERROR, -EPROTO, STORM_NO_RETRY_AFTER);
		else
			storm_success(s, c);
		return;
	}
	while (c->rx_len >= 2) {
		uint8_t b0 = (uint8_t)c->rx[0], b1 = (uint8_t)c->rx[1], op = b0 & 0x0f;
		size_t plen = b1 & 0x7f, hdr = 2 + (b1 & 0x80 ? 4 : 0), i;
		char payload[STORM_RX_MAX];

		if (hdr + plen > sizeof(c->rx)) { /* also 126/127: longer than ours */
			storm_fail(s, c, SW_ERROR, -EPROTO, STORM_NO_RETRY_AFTER);
			return;
		}
		if (c->rx_len < hdr + plen)
			return;
		if (op == 0x8) {
			storm_fail(s, c, SW_EOF, -ECONNRESET, STORM_NO_RETRY_AFTER);
			return;
		}
		if (op == 0x1 || op == 0x2) {
			for (i = 0; i < plen; i++)
				payload[i] = (char)(c->rx[hdr + i] ^ (hdr == 6 ? c->rx[2 + i % 4] : 0));
			if ((b0 & 0x80) && plen == LG_ECHO_MSG_LEN &&
			    !memcmp(payload, c->msg, LG_ECHO_MSG_LEN))
				storm_success(s, c);
			else
				storm_fail(s, c, SW_ERROR, -EPROTO, STORM_NO_RETRY_AFTER);
			return;
		}
		c->rx_len = (uint8_t)(c->rx_len - hdr - plen);
		memmove(c->rx, c->rx + hdr + plen, c->rx_len);
	}
}

static void storm_readable(struct storm *s, struct storm_client *c)
{
	const char *end;
	char *dst;
	size_t room;
	ssize_t n;

	if (c->state == ST_HEAD) {
		if (!c->head && !(c->head = malloc(STORM_HEAD_MAX))) {
			storm_fail(s, c, SW_ERROR, -ENOMEM, STORM_NO_RETRY_AFTER);
			return;
		}
		dst = c->head + c->head_len;
		room = STORM_HEAD_MAX - c->head_len;
	} else {
		dst = c->rx + c->rx_len;
		room = sizeof(c->rx) - c->rx_len;
	}
	n = recv(c->fd, dst, room, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		storm_fail_errno(s, c, -errno);
		return;
	}
	if (n == 0) {
		storm_fail(s, c, SW_EOF, -ECONNRESET, STORM_NO_RETRY_AFTER);
		return;
	}
	if (c->state == ST_ECHO) {
		c->rx_len = (uint8_t)(c->rx_len + n);
		storm_echo(s, c);
		return;
	}
	c->head_len += (uint32_t)n;
	end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
	if (end)
		storm_head(s, c, end + 4);
	else if (c->head_len == STORM_HEAD_MAX)
		storm_fail(s, c, SW_ERROR, -E2BIG, STORM_NO_RETRY_AFTER);
}

/* A held connection: anything but EAGAIN or stray bytes means it is gone. */
static void storm_held(struct storm *s, struct storm_client *c)
{
	ssize_t n = recv(c->fd, s->scratch, sizeof(s->scratch), 0);

	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return;
	s->dropped++;
	storm_close(s, c);
	c->state = ST_DONE;
	if (s->o->hold_set) {
		bench_heap_cancel(&s->timers, storm_idx(s, c));
		s->pending--;
	}
}

static void storm_event(struct storm *s, struct storm_client *c)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	switch ((enum storm_state)c->state) {
	case ST_CONNECTING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen))
			err = errno;
		if (err) {
			storm_fail_errno(s, c, -err);
			return;
		}
		err = storm_request(s, c);
		if (err) {
			storm_fail(s, c, SW_ERROR, err, STORM_NO_RETRY_AFTER);
			return;
		}
		/* The give-up deadline replaces the connect deadline. */
		bench_heap_set(&s->timers, storm_idx(s, c),
			       c->t_attempt + s->o->give_up_ms * NSEC_PER_MSEC);
		c->state = ST_SENDING;
		storm_flush(s, c);
		return;
	case ST_SENDING:
	case ST_FRAME:
		storm_flush(s, c);
		return;
	case ST_HEAD:
	case ST_ECHO:
		storm_readable(s, c);
		return;
	case ST_HOLDING:
		storm_held(s, c);
		return;
	case ST_WAITING:
	case ST_DONE:
		return; /* a stale event of a socket closed earlier in this batch */
	}
}

static void storm_timer(struct storm *s, struct storm_client *c)
{
	switch ((enum storm_state)c->state) {
	case ST_WAITING:
		storm_attempt(s, c);
		return;
	case ST_CONNECTING:
	case ST_SENDING:
	case ST_HEAD:
	case ST_FRAME:
	case ST_ECHO:
		storm_fail(s, c, SW_GAVE_UP, -ETIMEDOUT, STORM_NO_RETRY_AFTER);
		return;
	case ST_HOLDING: /* --hold-ms is over */
		storm_close(s, c);
		c->state = ST_DONE;
		s->pending--;
		return;
	case ST_DONE:
		return;
	}
}

static void storm_loop(struct storm *s)
{
	struct epoll_event evs[512];

	for (;;) {
		uint64_t now = bench_now_ns(CLOCK_MONOTONIC), at;
		uint32_t id, fired = 0;
		int i, n, wait_ms;

		if (!s->pending || now >= s->deadline)
			break;
		/*
		 * Due timers. A timer re-armed while firing (naive: retry at once)
		 * gets a later clock reading than NOW and waits for the next pass,
		 * after the events had their turn; the count bound is a second guard.
		 */
		while (fired++ < s->n && bench_heap_peek(&s->timers, &id, &at) && at <= now) {
			bench_heap_cancel(&s->timers, id);
			storm_timer(s, &s->cl[id]);
		}
		if (!s->pending)
			break;
		now = bench_now_ns(CLOCK_MONOTONIC);
		if (!bench_heap_peek(&s->timers, &id, &at) || at > s->deadline)
			at = s->deadline;
		wait_ms = at <= now ? 0 : (int)((at - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
		n = evr_wait(&s->ev, evs, (int)(sizeof(evs) / sizeof(evs[0])), wait_ms);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			s->loop_err = n;
			break;
		}
		for (i = 0; i < n; i++)
			storm_event(s, &s->cl[(uint32_t)evs[i].data.u64]);
	}
	s->t_end = bench_now_ns(CLOCK_MONOTONIC);
}

/* ms after the start when PCT % of the clients were back, or -1 if never. */
static double storm_time_to(const struct storm *s, unsigned int pct)
{
	uint64_t need = ((uint64_t)s->n * pct + 99) / 100;

	if (!need)
		need = 1;
	if (need > s->reconnected)
		return -1;
	return (double)s->t_success[need - 1] / NSEC_PER_MSEC;
}

static int storm_write_series(const struct storm *s, const char *path)
{
	uint64_t last = (s->t_end - s->t0) / (STORM_BUCKET_MS * NSEC_PER_MSEC), total = 0, i;
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	if (last >= s->nbuckets)
		last = s->nbuckets - 1;
	fprintf(f, "t_ms,attempts_started,successes,gave_up,refused,reconnected_total\n");
	for (i = 0; i <= last; i++) {
		const struct storm_bucket *b = &s->series[i];

		total += b->ok;
		fprintf(f, "%llu,%u,%u,%u,%u,%llu\n", (unsigned long long)(i * STORM_BUCKET_MS),
			b->started, b->ok, b->gave_up, b->refused, (unsigned long long)total);
	}
	return fclose(f) ? -errno : 0;
}

static void storm_print_ms(double ms, bool json)
{
	if (ms < 0)
		fputs(json ? "null" : "-", stdout);
	else
		printf("%.1f", ms);
}

static void storm_report(const struct storm *s)
{
	static const unsigned int pcts[] = { 50, 90, 99, 100 };
	static const char *const policies[] = { "none", "naive", "backoff", "retry-after" };
	const struct lg_opts *o = s->o;
	uint32_t max_attempts = 0, i;
	uint64_t refused = s->rst + s->eof + s->http_503 + s->http_other;
	bool j = o->json;

	for (i = 0; i < s->n; i++)
		if (s->cl[i].attempts > max_attempts)
			max_attempts = s->cl[i].attempts;
	printf(j ? "{\"mode\":\"storm\",\"policy\":\"%s\",\"proto\":\"%s\",\"clients\":%u,"
		   "\"reconnected\":%u,\"never_reconnected\":%u"
		 : "storm policy=%s proto=%s clients=%u reconnected=%u never_reconnected=%u",
	       policies[o->policy], o->ws ? "ws" : "tcp", s->n, s->reconnected,
	       s->n - s->reconnected);
	for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		printf(j ? ",\"t%u_ms\":" : " t%u_ms=", pcts[i]);
		storm_print_ms(storm_time_to(s, pcts[i]), j);
	}
	printf(j ? ",\"attempts\":%llu,\"attempts_per_client\":%.2f,\"attempts_max\":%u,"
		   "\"gave_up\":%llu,\"refused\":%llu,\"refused_rst\":%llu,\"refused_eof\":%llu,"
		   "\"http_503\":%llu,\"http_other\":%llu,\"errors\":%llu,\"cut_at_deadline\":%u,"
		   "\"dropped_while_held\":%u,\"elapsed_ms\":%.1f,\"give_up_ms\":%llu,"
		   "\"max_ms\":%llu,\"spread_ms\":%llu,\"seed\":%llu}\n"
		 : " attempts=%llu attempts_per_client=%.2f attempts_max=%u gave_up=%llu "
		   "refused=%llu refused_rst=%llu refused_eof=%llu http_503=%llu http_other=%llu "
		   "errors=%llu cut_at_deadline=%u dropped_while_held=%u elapsed_ms=%.1f "
		   "give_up_ms=%llu max_ms=%llu spread_ms=%llu seed=%llu\n",
	       (unsigned long long)s->attempts, (double)s->attempts / s->n, max_attempts,
	       (unsigned long long)s->gave_up, (unsigned long long)refused,
	       (unsigned long long)s->rst, (unsigned long long)s->eof,
	       (unsigned long long)s->http_503, (unsigned long long)s->http_other,
	       (unsigned long long)s->errors, s->cut, s->dropped,
	       (double)(s->t_end - s->t0) / NSEC_PER_MSEC, (unsigned long long)o->give_up_ms,
	       (unsigned long long)o->max_ms, (unsigned long long)o->spread_ms,
	       (unsigned long long)o->seed);
	fflush(stdout);
}

static void storm_free(struct storm *s)
{
	uint32_t i;

	if (!s)
		return;
	for (i = 0; s->cl && i < s->n; i++)
		storm_close(s, &s->cl[i]);
	free(s->cl);
	free(s->t_success);
	free(s->series);
	bench_heap_free(&s->timers);
	evr_exit(&s->ev);
	free(s);
}

static int mode_storm(const struct lg_opts *o)
{
	struct storm *s;
	uint32_t i;
	int err, ret = 1;

	if (!o->conns || o->policy == LG_POLICY_NONE) {
		fprintf(stderr, "loadgen storm: -n and --policy are required\n");
		return 2;
	}
	if (o->proto == LG_PROTO_HTTP) {
		fprintf(stderr, "loadgen storm: --proto tcp or ws\n");
		return 2;
	}
	if (!o->give_up_ms || !o->connect_timeout_ms || !o->max_ms) {
		fprintf(stderr, "loadgen storm: timeouts must be positive\n");
		return 2;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		fprintf(stderr, "loadgen storm: out of memory\n");
		return 1;
	}
	s->o = o;
	s->n = (uint32_t)o->conns;
	s->rng.s = o->seed;
	s->nbuckets = (uint32_t)(o->max_ms / STORM_BUCKET_MS + 2);
	s->cl = calloc(s->n, sizeof(*s->cl));
	s->t_success = calloc(s->n, sizeof(*s->t_success));
	s->series = calloc(s->nbuckets, sizeof(*s->series));
	if (!s->cl || !s->t_success || !s->series || bench_heap_init(&s->timers, s->n)) {
		fprintf(stderr, "loadgen storm: out of memory\n");
		goto out;
	}
	err = evr_init(&s->ev, 16384);
	if (err) {
		fprintf(stderr, "loadgen storm: io_uring: %s\n", strerror(-err));
		goto out;
	}
	for (i = 0; i < s->n; i++)
		s->cl[i].fd = -1;

	s->pending = s->n;
	s->t0 = bench_now_ns(CLOCK_MONOTONIC);
	s->deadline = s->t0 + o->max_ms * NSEC_PER_MSEC;
	for (i = 0; i < s->n; i++)
		bench_heap_set(&s->timers, i,
			       s->t0 + bench_rng_below(&s->rng, o->spread_ms * NSEC_PER_MSEC + 1));
	storm_loop(s);
	if (s->loop_err) {
		fprintf(stderr, "loadgen storm: waiting for events: %s\n", strerror(-s->loop_err));
		goto out;
	}
	for (i = 0; i < s->n; i++)
		if (s->cl[i].state >= ST_CONNECTING && s->cl[i].state <= ST_ECHO)
			s->cut++;
	storm_report(s);
	if (s->first_err && o->verbose)
		fprintf(stderr, "loadgen storm: first error: %s\n", strerror(-s->first_err));
	if (o->series) {
		err = storm_write_series(s, o->series);
		if (err) {
			fprintf(stderr, "loadgen storm: %s: %s\n", o->series, strerror(-err));
			goto out;
		}
	}
	ret = 0;
out:
	storm_free(s);
	return ret;
}

/* ---- rr, connrate, bulk: the flow engine -------------------------------- */

/*
 * One engine for the three throughput modes. Each of -n slots owns at most
 * one socket at a time and runs a small state machine:
 *
 *   WAIT -> CONNECTING -> [UPGRADE] -> EXCHANGE -> ...
 *
 *   rr        EXCHANGE repeats on the same connection: the next request is
 *             sent the moment a reply is complete, from inside the read
 *             handler. A failure closes the connection and the slot
 *             reconnects after FL_RETRY_NS; a server that closes after a
 *             complete reply ("Connection: close", EOF) is a reconnect, not an
 *             error.
 *   connrate  after the reply the client closes (tcp, ws), or waits for the
 *             server's FIN (http, LINGER) so that the server is the one that
 *             closes; then the slot opens the next connection at once.
 *   bulk      BULK: write --size chunks and read whatever comes back.
 *
 * Events. rr and connrate register each socket once, edge-triggered, for
 * IN|OUT|RDHUP, so the steady state changes no registration at all: one recv and
 * one send per request. Edge-triggered means a handler must read until EAGAIN
 * or until it knows the queue is empty: a reply that is complete leaves
 * nothing behind (one request in flight, the server only answers), and a
 * short read drained the queue (anything arriving later raises a new edge).
 * The exception is a FIN that was already queued when the event was reported
 * (EPOLLRDHUP in the event): then we read on until recv returns 0. Reads per
 * event are bounded; past the bound the slot's timer is set to now and the
 * reading resumes from the timer, after other slots had their turn. bulk is
 * level-triggered: one recv and one send per event, which shares the loop
 * fairly and cannot deadlock (both directions are always serviced).
 *
 * Stale events. A slot may close and reopen inside one batch of events; the
 * event's cookie carries the slot index and a generation bumped by every
 * close, and an event of an older generation is dropped.
 *
 * Timers. The bench_heap holds at most one deadline per slot: a retry after
 * a failure (WAIT), or a read resumption. Timeouts (connect, reply) are not
 * in the heap, which would cost two heap operations per request: a scan over
 * the slots every FL_SCAN_NS finds the overdue ones, so a timeout fires up to
 * FL_SCAN_NS late.
 *
 * Nothing is allocated per request or per connection: the HTTP head buffer
 * (only needed when a head spans reads) and the ws frame buffer are made the
 * first time a slot needs them and kept.
 */

#define FL_HEAD_MAX 4096
#define FL_SCRATCH (256 * 1024)
#define FL_READS_PER_EVENT 64
#define FL_RETRY_NS (1 * NSEC_PER_MSEC)
#define FL_ANA_MAX_NS (128 * NSEC_PER_MSEC)
#define FL_SCAN_NS (20 * NSEC_PER_MSEC)
#define FL_WS_REQ_MAX 512
#define FL_DEFAULT_DURATION_MS 5000
#define FL_SIZE_MAX (16U << 20)

enum fl_kind { FL_RR, FL_CONNRATE, FL_BULK };

enum fl_state {
	FS_WAIT = 0, /* no socket: before the start, or sleeping before a retry */
	FS_CONNECTING,
	FS_HANDSHAKE, /* --tls: the client handshake */
	FS_UPGRADE,   /* ws: upgrade request going out, reading the 101 */
	FS_EXCHANGE,  /* request going out, reading the reply */
	FS_LINGER,    /* connrate http: reply read, waiting for the server's FIN */
	FS_BULK,
};

enum fl_rx {
	RX_HEAD,       /* http: the response head */
	RX_BODY,       /* http: Content-Length bytes, or up to EOF */
	RX_ECHO,       /* tcp: the message back */
	RX_WS_HDR,     /* ws: a frame header */
	RX_WS_PAYLOAD, /* ws: its payload */
};

/* Error kinds, in report order. */
enum fl_err {
	FE_REFUSED,	 /* ECONNREFUSED */
	FE_RESET,	 /* ECONNRESET, EPIPE */
	FE_CLOSED,	 /* orderly close (FIN, ws Close) before the reply was complete */
	FE_TIMEOUT,	 /* connect or reply took longer than the patience */
	FE_ADDRNOTAVAIL, /* no local port left: the slot backs off */
	FE_STATUS,	 /* http: not 2xx; ws upgrade: not 101 */
	FE_PROTO,	 /* malformed or unexpected reply, echo mismatch */
	FE_TLS,		 /* --tls: a TLS alert or protocol failure */
	FE_OTHER,
	FE_KINDS,
};

static const char *const fl_err_names[FE_KINDS] = {
    "refused",	  "reset",     "closed",  "timeout",   "addrnotavail",
    "bad_status", "proto_err", "tls_err", "other_err",
};

/* Internal codes for what has no errno of its own. */
#define FL_EOF (-ESHUTDOWN)
#define FL_BAD_STATUS (-EBADMSG)

struct fl_conn {
	int fd;
	SSL *ssl;	   /* --tls */
	uint32_t gen;	   /* bumped by every close: tells stale events apart */
	uint8_t state;	   /* enum fl_state */
	uint8_t rx;	   /* enum fl_rx */
	uint8_t wsh_len;   /* ws: header bytes gathered */
	bool in_msg;	   /* ws: inside our (possibly fragmented) echo */
	bool skip;	   /* ws: the current frame is not ours (a tick, a ping) */
	bool fin;	   /* ws: the current frame ends its message */
	bool srv_close;	   /* http: the reply said "Connection: close" */
	bool until_eof;	   /* http: no Content-Length, the body ends at EOF */
	bool eof;	   /* the server's FIN was read */
	bool framed;	   /* ws rr: buf holds this connection's frame */
	uint16_t status;   /* http: of the reply being read */
	uint32_t head_len; /* bytes in head */
	uint32_t out_len, out_off;
	const char *out;   /* what is being sent */
	uint64_t left;	   /* body, echo or payload bytes still to come */
	uint64_t got;	   /* tcp/ws: bytes of the message verified so far */
	uint64_t t_conn;   /* connect() was called (ns) */
	uint64_t t_req;	   /* the current request started (ns) */
	uint64_t deadline; /* the current step's timeout (ns), 0: none */
	uint64_t rx_bytes, rx_base; /* bulk: received, and at the warm-up's end */
	char *head;	   /* http/ws: a head that spans reads (FL_HEAD_MAX) */
	uint8_t *buf;	   /* ws: the upgrade request, then the masked frame */
	uint32_t buf_cap, frame_len;
	char key[28];	   /* ws: Sec-WebSocket-Key of this connection */
	uint8_t wsh[14];
};

struct fl_stats {
	uint64_t ok;	     /* rr: replies; connrate: transactions; 2xx/101 + echo */
	uint64_t attempts;   /* connect() calls */
	uint64_t connects;   /* established */
	uint64_t reconnects; /* rr: the server closed after a complete reply */
	uint64_t rx_bytes, tx_bytes;
	uint64_t err[FE_KINDS];
};

struct flow {
	const struct lg_opts *o;
	enum fl_kind kind;
	enum lg_proto proto;
	uint32_t n;
	uint64_t size;
	struct fl_conn *c;
	struct evring ev;
	uint32_t ep_events;
	struct bench_heap timers;
	struct bench_rng rng;
	uint64_t ana_backoff; /* ns; doubles with each EADDRNOTAVAIL, reset by a connect */
	uint64_t dur_ms;      /* -d, or its default */
	uint64_t t0, t_meas, t_end, t_stop, next_scan;
	bool measuring;
	int first_err;
	int loop_err;
	struct fl_stats st;
	struct bench_hist lat;	/* rr: request; connrate: connect() to full reply */
	struct bench_hist conn; /* connect() to established */
	struct bench_hist hs;	/* --tls: connect() to the handshake done */
	struct lg_tls_stats tls;
	char *msg;		/* tcp/ws: the --size byte message; bulk: the chunk */
	char *req;		/* http: the request */
	uint32_t req_len;
	char scratch[FL_SCRATCH];
};

static void fl_open(struct flow *f, struct fl_conn *c);
static void fl_request(struct flow *f, struct fl_conn *c, uint64_t now);
static void fl_readable(struct flow *f, struct fl_conn *c, uint32_t events);

static uint32_t fl_idx(const struct flow *f, const struct fl_conn *c)
{
	return (uint32_t)(c - f->c);
}

static void fl_close(struct flow *f, struct fl_conn *c)
{
	SSL_free(c->ssl); /* no close_notify: see fl_reply */
	c->ssl = NULL;
	if (c->fd >= 0) {
		evr_forget(&f->ev, c->fd);
		close(c->fd);
	}
	c->fd = -1;
	c->gen++;
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->head_len = 0;
	c->deadline = 0;
	c->eof = false;
	c->framed = false;
	c->state = FS_WAIT;
	bench_heap_cancel(&f->timers, fl_idx(f, c));
}

static enum fl_err fl_classify(int err)
{
	switch (err) {
	case -ECONNREFUSED:
		return FE_REFUSED;
	case -ECONNRESET:
	case -EPIPE:
		return FE_RESET;
	case FL_EOF:
		return FE_CLOSED;
	case -ETIMEDOUT:
		return FE_TIMEOUT;
	case -EADDRNOTAVAIL:
		return FE_ADDRNOTAVAIL;
	case FL_BAD_STATUS:
		return FE_STATUS;
	case -EPROTO:
	case -E2BIG:
		return FE_PROTO;
	case LG_ETLS:
		return FE_TLS;
	default:
		return FE_OTHER;
	}
}

/*
 * The connection failed: count it by kind, close, and retry after a short
 * sleep so that a target that refuses at once is not hammered in a spin.
 * EADDRNOTAVAIL (no ephemeral port left, typically TIME_WAIT build-up) backs
 * off exponentially across the slots until a connect succeeds again.
 */
static void fl_fail(struct flow *f, struct fl_conn *c, int err)
{
	enum fl_err kind = fl_classify(err);
	uint64_t delay = FL_RETRY_NS;

	f->st.err[kind]++;
	if (!f->first_err && kind != FE_STATUS)
		f->first_err = err;
	if (kind == FE_ADDRNOTAVAIL) {
		delay = f->ana_backoff;
		if (f->ana_backoff < FL_ANA_MAX_NS)
			f->ana_backoff *= 2;
	}
	fl_close(f, c);
	bench_heap_set(&f->timers, fl_idx(f, c), bench_now_ns(CLOCK_MONOTONIC) + delay);
}

/* Send what is left of c->out. 0 (done, or EAGAIN: an edge will come) or -errno. */
static int fl_flush(struct flow *f, struct fl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = lg_io_send(c->fd, c->ssl, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0) {
			if (n == -EINTR)
				continue;
			return n == -EAGAIN ? 0 : (int)n;
		}
		c->out_off += (uint32_t)n;
		f->st.tx_bytes += (uint64_t)n;
	}
	return 0;
}

static void fl_send(struct flow *f, struct fl_conn *c, const void *buf, uint32_t len)
{
	int err;

	c->out = buf;
	c->out_len = len;
	c->out_off = 0;
	err = fl_flush(f, c);
	if (err)
		fl_fail(f, c, err);
}

/*
 * Gather a response head. Returns 1 with *H and *HLEN set (the head, blank
 * line included) and *USED the bytes of P it took, 0 when P was all taken
 * and more is needed, -E2BIG. The common case, a head in one read, is parsed
 * in place; only a head that spans reads is copied into c->head.
 */
static int fl_head(struct fl_conn *c, const char *p, size_t len, const char **h, size_t *hlen,
		   size_t *used)
{
	const char *end;
	size_t take, from;

	if (!c->head_len) {
		end = memmem(p, len, "\r\n\r\n", 4);
		if (end) {
			*h = p;
			*hlen = *used = (size_t)(end + 4 - p);
			return 1;
		}
	}
	if (!c->head && !(c->head = malloc(FL_HEAD_MAX)))
		return -ENOMEM;
	take = len < FL_HEAD_MAX - c->head_len ? len : FL_HEAD_MAX - c->head_len;
	from = c->head_len > 3 ? c->head_len - 3 : 0;
	memcpy(c->head + c->head_len, p, take);
	c->head_len += (uint32_t)take;
	end = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
	if (!end) {
		*used = take;
		return c->head_len == FL_HEAD_MAX ? -E2BIG : 0;
	}
	*h = c->head;
	*hlen = (size_t)(end + 4 - c->head);
	*used = take - (c->head_len - *hlen);
	c->head_len = 0;
	return 1;
}

/* "HTTP/1.x NNN ..." -> NNN, or -EPROTO. */
static int fl_status(const char *h, size_t len)
{
	if (len < 12 || memcmp(h, "HTTP/1.", 7) || h[8] != ' ' || h[9] < '1' || h[9] > '5' ||
	    h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9')
		return -EPROTO;
	return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

/* Set up the body of the http reply whose head is H. 0 or -EPROTO. */
static int fl_http_head(struct fl_conn *c, const char *h, size_t hlen)
{
	const char *v;
	size_t vlen, i;
	int status = fl_status(h, hlen);

	if (status < 0)
		return status;
	c->status = (uint16_t)status;
	v = bench_http_header(h, hlen, "connection:", &vlen);
	c->srv_close = v && bench_memcasemem(v, vlen, "close");
	c->left = 0;
	c->until_eof = false;
	c->rx = RX_BODY;
	if (status == 204 || status == 304 || status < 200)
		return status < 200 ? -EPROTO : 0; /* no 1xx expected on a plain GET */
	v = bench_http_header(h, hlen, "content-length:", &vlen);
	if (!v) {
		if (bench_http_header(h, hlen, "transfer-encoding:", &vlen))
			return -EPROTO; /* this client does not do chunked */
		c->until_eof = true;
		c->srv_close = true;
		return 0;
	}
	if (!vlen || vlen > 15)
		return -EPROTO;
	for (i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EPROTO;
		c->left = c->left * 10 + (uint64_t)(v[i] - '0');
	}
	return 0;
}

/*
 * Feed reply bytes to the parser of the current request. Returns 1 when the
 * reply is complete (*USED says how much of P it took), 0 when all of P was
 * taken and more is needed, -errno on a bad reply.
 */
static int fl_feed(struct flow *f, struct fl_conn *c, const char *p, size_t len, size_t *used)
{
	size_t take, at = 0;
	int r;

	switch (c->rx) {
	case RX_HEAD: {
		const char *h;
		size_t hlen;

		r = fl_head(c, p, len, &h, &hlen, &take);
		if (r <= 0) {
			*used = len;
			return r;
		}
		r = fl_http_head(c, h, hlen);
		if (r)
			return r;
		at = take;
	}
		/* fall through */
	case RX_BODY:
		take = len - at < c->left ? len - at : c->left;
		c->left -= take;
		*used = at + take;
		return !c->until_eof && !c->left;
	case RX_ECHO:
		take = len < c->left ? len : c->left;
		if (memcmp(p, f->msg + c->got, take))
			return -EPROTO;
		c->got += take;
		c->left -= take;
		*used = take;
		return !c->left;
	case RX_WS_HDR:
	case RX_WS_PAYLOAD:
		break;
	}

	/* ws: our echo is the data frames after our frame; ticks and pings are skipped. */
	for (;;) {
		if (c->rx == RX_WS_HDR) {
			size_t need = 2;
			uint64_t plen;
			uint8_t op, l7;
			unsigned int i;

			if (c->wsh_len >= 2) {
				l7 = c->wsh[1] & 0x7f;
				need += (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (c->wsh[1] & 0x80 ? 4 : 0);
			}
			if (c->wsh_len < need) {
				if (at == len)
					break;
				take = need - c->wsh_len < len - at ? need - c->wsh_len : len - at;
				memcpy(c->wsh + c->wsh_len, p + at, take);
				c->wsh_len = (uint8_t)(c->wsh_len + take);
				at += take;
				continue; /* need grows once the second byte is in */
			}
			op = c->wsh[0] & 0x0f;
			l7 = c->wsh[1] & 0x7f;
			if ((c->wsh[1] & 0x80) || (c->wsh[0] & 0x70))
				return -EPROTO; /* a server must not mask; no extensions */
			if (l7 < 126) {
				plen = l7;
			} else if (l7 == 126) {
				plen = (uint64_t)c->wsh[2] << 8 | c->wsh[3];
			} else {
				for (plen = 0, i = 2; i < 10; i++)
					plen = plen << 8 | c->wsh[i];
			}
			c->wsh_len = 0;
			c->fin = c->wsh[0] & 0x80;
			if (op == 0x8)
				return FL_EOF;
			if (op == 0x2 || op == 0x0) {
				if ((op == 0x0) != c->in_msg || plen > f->size - c->got)
					return -EPROTO;
				c->in_msg = true;
				c->skip = false;
			} else if ((op == 0x1 && !c->in_msg) || op == 0x9 || op == 0xa) {
				c->skip = true; /* a pushed tick, or a ping or pong */
			} else {
				return -EPROTO;
			}
			c->left = plen;
			c->rx = RX_WS_PAYLOAD;
		}
		take = len - at < c->left ? len - at : c->left;
		if (!c->skip) {
			if (memcmp(p + at, f->msg + c->got, take))
				return -EPROTO;
			c->got += take;
		}
		c->left -= take;
		at += take;
		if (c->left)
			break;
		c->rx = RX_WS_HDR;
		if (!c->skip && c->fin) {
			if (c->got != f->size)
				return -EPROTO;
			*used = at;
			return 1;
		}
	}
	*used = len;
	return 0;
}

/* ws: the upgrade request of a fresh key. */
static int fl_upgrade(struct flow *f, struct fl_conn *c)
{
	uint8_t raw[16];
	unsigned int i;
	int len;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)bench_rng_next(&f->rng);
	bench_base64(raw, sizeof(raw), c->key);
	len = snprintf((char *)c->buf, c->buf_cap,
		       "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		       "User-Agent: sluice-loadgen\r\n\r\n",
		       f->o->target, c->key);
	if (len < 0 || (uint32_t)len >= c->buf_cap)
		return -E2BIG;
	c->state = FS_UPGRADE;
	fl_send(f, c, c->buf, (uint32_t)len);
	return 0;
}

/* ws: the 101 head H is in; check it and send the masked frame. 0 or -errno. */
static int fl_upgraded(struct flow *f, struct fl_conn *c, const char *h, size_t hlen)
{
	char want[32];
	const char *v;
	size_t vlen;
	int status = fl_status(h, hlen);

	if (status < 0)
		return status;
	if (status != 101)
		return FL_BAD_STATUS;
	bench_ws_accept(c->key, strlen(c->key), want);
	v = bench_http_header(h, hlen, "sec-websocket-accept:", &vlen);
	if (!v || vlen != strlen(want) || memcmp(v, want, vlen))
		return -EPROTO;
	fl_request(f, c, bench_now_ns(CLOCK_MONOTONIC));
	return 0;
}

/* Start a request on the connected slot C: reset the parser and send. */
static void fl_request(struct flow *f, struct fl_conn *c, uint64_t now)
{
	c->state = FS_EXCHANGE;
	c->t_req = now;
	c->got = 0;
	c->head_len = 0;
	if (f->kind == FL_RR)
		c->deadline = now + f->o->give_up_ms * NSEC_PER_MSEC;
	switch (f->proto) {
	case LG_PROTO_HTTP:
		c->rx = RX_HEAD;
		fl_send(f, c, f->req, f->req_len);
		return;
	case LG_PROTO_WS: {
		uint64_t m = bench_rng_next(&f->rng);
		uint8_t mask[4] = { (uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16),
				    (uint8_t)(m >> 24) };

		/*
		 * rr masks the frame once per connection and resends it: the
		 * server's work is the same, and ours stays O(1) per request.
		 */
		c->rx = RX_WS_HDR;
		c->wsh_len = 0;
		c->in_msg = false;
		if (!c->framed)
			c->frame_len = (uint32_t)bench_ws_frame(c->buf, 0x2, f->msg, f->size, mask);
		c->framed = f->kind == FL_RR;
		fl_send(f, c, c->buf, c->frame_len);
		return;
	}
	default:
		c->rx = RX_ECHO;
		c->left = f->size;
		fl_send(f, c, f->msg, (uint32_t)f->size);
		return;
	}
}

/* The current request got its complete reply. */
static void fl_reply(struct flow *f, struct fl_conn *c)
{
	uint64_t now = bench_now_ns(CLOCK_MONOTONIC);
	bool closing = c->srv_close || c->eof;

	if (f->proto == LG_PROTO_HTTP && (c->status < 200 || c->status > 299)) {
		f->st.err[FE_STATUS]++;
	} else {
		f->st.ok++;
		bench_hist_record(&f->lat, now - (f->kind == FL_RR ? c->t_req : c->t_conn));
	}
	if (f->kind == FL_RR) {
		if (f->proto == LG_PROTO_HTTP && closing) {
			f->st.reconnects++;
			fl_close(f, c);
			fl_open(f, c);
			return;
		}
		fl_request(f, c, now);
		return;
	}
	/* connrate: the server closes first for http, we do for tcp and ws. */
	if (f->proto == LG_PROTO_HTTP && !c->eof) {
		c->state = FS_LINGER;
		return;
	}
	fl_close(f, c);
	fl_open(f, c);
}

/*
 * Bytes arrived on a slot in UPGRADE, EXCHANGE or LINGER. Returns 1 when the
 * slot is between requests (nothing more can be queued), 0 to read on, -1
 * when the connection is gone (closed, failed or reopened).
 */
static int fl_input(struct flow *f, struct fl_conn *c, const char *p, size_t len)
{
	uint32_t gen = c->gen;
	size_t used = 0;
	int r;

	f->st.rx_bytes += len;
	while (len) {
		switch ((enum fl_state)c->state) {
		case FS_UPGRADE: {
			const char *h;
			size_t hlen;

			r = fl_head(c, p, len, &h, &hlen, &used);
			if (r == 1)
				r = fl_upgraded(f, c, h, hlen);
			else if (r == 0)
				return 0;
			break;
		}
		case FS_EXCHANGE:
			r = fl_feed(f, c, p, len, &used);
			if (r == 0)
				return 0;
			if (r == 1) {
				fl_reply(f, c);
				r = 0;
				if (c->gen != gen || c->state == FS_WAIT)
					return -1;
				/* Only ws may have more queued: a tick after the echo. */
				if (used < len && (f->proto != LG_PROTO_WS || c->state != FS_EXCHANGE))
					r = -EPROTO;
				else if (used == len)
					return c->state == FS_EXCHANGE ? 1 : 0;
			}
			break;
		default: /* LINGER, or anything else that should get no bytes */
			r = -EPROTO;
			break;
		}
		if (r < 0) {
			fl_fail(f, c, r);
			return -1;
		}
		if (c->gen != gen)
			return -1;
		p += used;
		len -= used;
	}
	return 0;
}

/* The server's FIN. */
static void fl_eof(struct flow *f, struct fl_conn *c)
{
	c->eof = true;
	if (c->state == FS_LINGER) {
		fl_close(f, c);
		fl_open(f, c);
	} else if (c->state == FS_EXCHANGE && c->rx == RX_BODY && c->until_eof) {
		fl_reply(f, c); /* until_eof implies srv_close: rr reconnects */
	} else {
		fl_fail(f, c, FL_EOF);
	}
}

/* Read until EAGAIN, a drained queue, or the end of a reply (see above). */
static void fl_readable(struct flow *f, struct fl_conn *c, uint32_t events)
{
	uint32_t gen = c->gen, i;

	for (i = 0; i < FL_READS_PER_EVENT; i++) {
		ssize_t n = lg_io_recv(c->fd, c->ssl, f->scratch, sizeof(f->scratch));
		int r;

		if (n < 0) {
			if (n == -EINTR)
				continue;
			if (n != -EAGAIN)
				fl_fail(f, c, (int)n);
			return;
		}
		if (n == 0) {
			fl_eof(f, c);
			return;
		}
		r = fl_input(f, c, f->scratch, (size_t)n);
		if (r < 0 || c->gen != gen)
			return;
		/*
		 * A short read drained the socket; not so with TLS, where one
		 * SSL_read returns one record: read on until WANT_READ.
		 */
		if ((r == 1 || (!c->ssl && (size_t)n < sizeof(f->scratch))) &&
		    !(events & EPOLLRDHUP))
			return;
	}
	/* Still more: resume from the timer, after the other slots. */
	bench_heap_set(&f->timers, fl_idx(f, c), bench_now_ns(CLOCK_MONOTONIC));
}

/* TCP, and TLS if any, are up: start the mode's business. */
static void fl_ready(struct flow *f, struct fl_conn *c, uint64_t now)
{
	int err;

	c->deadline = f->kind == FL_CONNRATE ? c->t_conn + f->o->give_up_ms * NSEC_PER_MSEC : 0;
	if (f->kind == FL_BULK) {
		c->state = FS_BULK;
		return;
	}
	if (f->proto != LG_PROTO_WS) {
		fl_request(f, c, now);
		return;
	}
	if (f->kind == FL_RR)
		c->deadline = now + f->o->give_up_ms * NSEC_PER_MSEC;
	if (!c->buf) {
		c->buf_cap = (uint32_t)(f->size + 14 > FL_WS_REQ_MAX ? f->size + 14 : FL_WS_REQ_MAX);
		c->buf = malloc(c->buf_cap);
		if (!c->buf) {
			fl_fail(f, c, -ENOMEM);
			return;
		}
	}
	err = fl_upgrade(f, c);
	if (err)
		fl_fail(f, c, err);
}

/* --tls: one handshake step; when it is done, the mode's business starts. */
static void fl_handshake(struct flow *f, struct fl_conn *c)
{
	uint64_t now;
	int r = lg_tls_handshake(c->ssl);

	if (r == 0)
		return; /* edge-triggered IN|OUT: the socket says when to go on */
	if (r < 0) {
		fl_fail(f, c, r);
		return;
	}
	now = bench_now_ns(CLOCK_MONOTONIC);
	lg_tls_note(&f->tls, c->ssl);
	bench_hist_record(&f->hs, now - c->t_conn);
	fl_ready(f, c, now);
}

static void fl_connected(struct flow *f, struct fl_conn *c)
{
	uint64_t now = bench_now_ns(CLOCK_MONOTONIC);

	f->st.connects++;
	f->ana_backoff = FL_RETRY_NS;
	bench_hist_record(&f->conn, now - c->t_conn);
	if (!f->o->tls) {
		fl_ready(f, c, now);
		return;
	}
	c->ssl = lg_tls_new(f->o, c->fd);
	if (!c->ssl) {
		fl_fail(f, c, -ENOMEM);
		return;
	}
	c->state = FS_HANDSHAKE;
	/* connrate: the patience covers the handshake too; else a handshake's own */
	c->deadline = (f->kind == FL_CONNRATE ? c->t_conn : now) + f->o->give_up_ms * NSEC_PER_MSEC;
	fl_handshake(f, c);
}

/* Open the slot's next connection (non-blocking connect). */
static void fl_open(struct flow *f, struct fl_conn *c)
{
	const struct lg_opts *o = f->o;
	uint64_t now = bench_now_ns(CLOCK_MONOTONIC);
	int one = 1, r, err;

	f->st.attempts++;
	c->t_conn = now;
	c->deadline = now + o->connect_timeout_ms * NSEC_PER_MSEC;
	c->state = FS_CONNECTING;
	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fl_fail(f, c, -errno);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = connect(c->fd, (const struct sockaddr *)&o->addr, o->addr_len);
	if (r && errno != EINPROGRESS) {
		fl_fail(f, c, -errno);
		return;
	}
	err = evr_ctl(&f->ev, EPOLL_CTL_ADD, c->fd, f->ep_events,
		      (uint64_t)c->gen << 32 | fl_idx(f, c));
	if (err) {
		fl_fail(f, c, err);
		return;
	}
	if (!r)
		fl_connected(f, c);
}

static void fl_bulk_event(struct flow *f, struct fl_conn *c, uint32_t events)
{
	ssize_t n;

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
		n = lg_io_recv(c->fd, c->ssl, f->scratch, sizeof(f->scratch));
		if (n == 0) {
			fl_fail(f, c, FL_EOF);
			return;
		}
		if (n < 0 && n != -EAGAIN && n != -EINTR) {
			fl_fail(f, c, (int)n);
			return;
		}
		if (n > 0) {
			c->rx_bytes += (uint64_t)n;
			f->st.rx_bytes += (uint64_t)n;
		}
	}
	if (events & EPOLLOUT) {
		/* The chunk goes out whole, in as many sends as the socket wants. */
		n = lg_io_send(c->fd, c->ssl, f->msg + c->out_off, f->size - c->out_off);
		if (n < 0 && n != -EAGAIN && n != -EINTR) {
			fl_fail(f, c, (int)n);
			return;
		}
		if (n > 0) {
			f->st.tx_bytes += (uint64_t)n;
			c->out_off = (uint32_t)((c->out_off + (uint64_t)n) % f->size);
		}
	}
}

static void fl_event(struct flow *f, struct fl_conn *c, uint32_t events)
{
	uint32_t gen = c->gen;
	socklen_t elen;
	int err;

	switch ((enum fl_state)c->state) {
	case FS_WAIT:
		return;
	case FS_CONNECTING:
		err = 0;
		elen = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen))
			err = errno;
		if (err) {
			fl_fail(f, c, -err);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		fl_connected(f, c);
		if (c->gen != gen || c->state == FS_WAIT || c->state == FS_HANDSHAKE ||
		    f->kind == FL_BULK)
			return;
		break;
	case FS_HANDSHAKE:
		/*
		 * bulk is level-triggered: while the handshake waits for the
		 * server, EPOLLOUT keeps firing and this step answers WANT_READ
		 * again. A few idle loops per connection, once: not worth two
		 * registration changes.
		 */
		fl_handshake(f, c);
		return; /* the server says nothing before our request */
	case FS_BULK:
		fl_bulk_event(f, c, events);
		return;
	case FS_UPGRADE:
	case FS_EXCHANGE:
	case FS_LINGER:
		if (c->out_off < c->out_len && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
			err = fl_flush(f, c);
			if (err) {
				fl_fail(f, c, err);
				return;
			}
		}
		break;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		fl_readable(f, c, events);
}

/* A slot's heap deadline: a retry (WAIT), or reading resumed after the bound. */
static void fl_timer(struct flow *f, struct fl_conn *c)
{
	if (c->state == FS_WAIT)
		fl_open(f, c);
	else if (c->state >= FS_UPGRADE && c->state <= FS_LINGER && c->fd >= 0)
		fl_readable(f, c, EPOLLIN | EPOLLRDHUP);
}

static void fl_scan(struct flow *f, uint64_t now)
{
	uint32_t i;

	for (i = 0; i < f->n; i++) {
		struct fl_conn *c = &f->c[i];

		if (!c->deadline || now < c->deadline || c->state == FS_WAIT)
			continue;
		if (c->state == FS_LINGER) { /* the reply was counted; the FIN never came */
			fl_close(f, c);
			fl_open(f, c);
		} else {
			fl_fail(f, c, -ETIMEDOUT);
		}
	}
}

/* The warm-up is over: what happened so far does not count. */
static void fl_measure(struct flow *f, uint64_t now)
{
	uint32_t i;

	memset(&f->st, 0, sizeof(f->st));
	bench_hist_reset(&f->lat);
	bench_hist_reset(&f->conn);
	bench_hist_reset(&f->hs);
	f->tls.full = f->tls.resumed = 0; /* version and cipher stay */
	for (i = 0; i < f->n; i++)
		f->c[i].rx_base = f->c[i].rx_bytes;
	f->first_err = 0;
	f->t_meas = now;
	f->measuring = true;
}

static void fl_loop(struct flow *f)
{
	struct epoll_event evs[512];

	for (;;) {
		uint64_t now = bench_now_ns(CLOCK_MONOTONIC), at, t;
		uint32_t id, fired = 0;
		int i, n, wait_ms;

		if (!f->measuring && now >= f->t_meas)
			fl_measure(f, now);
		if (now >= f->t_end)
			break;
		/* Due timers; one re-armed while firing waits for the next pass. */
		while (fired++ < f->n && bench_heap_peek(&f->timers, &id, &at) && at <= now) {
			bench_heap_cancel(&f->timers, id);
			fl_timer(f, &f->c[id]);
		}
		if (now >= f->next_scan) {
			fl_scan(f, now);
			f->next_scan = now + FL_SCAN_NS;
		}
		at = f->measuring ? f->t_end : f->t_meas;
		if (f->next_scan < at)
			at = f->next_scan;
		if (bench_heap_peek(&f->timers, &id, &t) && t < at)
			at = t;
		wait_ms = at <= now ? 0 : (int)((at - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
		n = evr_wait(&f->ev, evs, (int)(sizeof(evs) / sizeof(evs[0])), wait_ms);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			f->loop_err = n;
			break;
		}
		for (i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)evs[i].data.u64, gen = (uint32_t)(evs[i].data.u64 >> 32);

			if (idx < f->n && f->c[idx].gen == gen)
				fl_event(f, &f->c[idx], evs[i].events);
		}
	}
	f->t_stop = bench_now_ns(CLOCK_MONOTONIC);
}

/* ---- reports: one line of key=value, or one JSON object ------------------ */

static void kv_begin(bool json, const char *mode)
{
	printf(json ? "{\"mode\":\"%s\"" : "%s", mode);
}

static void kv_str(bool json, const char *key, const char *v)
{
	printf(json ? ",\"%s\":\"%s\"" : " %s=%s", key, v);
}

static void kv_u64(bool json, const char *key, uint64_t v)
{
	printf(json ? ",\"%s\":%llu" : " %s=%llu", key, (unsigned long long)v);
}

static void kv_dbl(bool json, const char *key, double v, int prec)
{
	printf(json ? ",\"%s\":%.*f" : " %s=%.*f", key, prec, v);
}

/* The Q-quantile of H (ns) in us; "-" (null) when H is empty. Q > 1: the mean. */
static void kv_us(bool json, const char *key, const struct bench_hist *h, double q)
{
	if (!h->count)
		printf(json ? ",\"%s\":null" : " %s=-", key);
	else
		kv_dbl(json, key,
		       (q > 1 ? (double)h->sum / (double)h->count : (double)bench_hist_quantile(h, q)) /
			       NSEC_PER_USEC,
		       1);
}

static void kv_lat(bool json, const char *prefix, const struct bench_hist *h)
{
	static const struct {
		const char *name;
		double q;
	} qs[] = { { "p50", 0.5 },	{ "p90", 0.9 },	  { "p99", 0.99 },
		   { "p999", 0.999 }, { "max", 1.0 }, { "mean", 2.0 } };
	char key[48];
	size_t i;

	for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		snprintf(key, sizeof(key), "%s%s_us", prefix, qs[i].name);
		kv_us(json, key, h, qs[i].q);
	}
}

static void fl_report(const struct flow *f)
{
	static const char *const modes[] = { "rr", "connrate", "bulk" };
	static const char *const protos[] = { "http", "tcp", "http", "ws" };
	const struct lg_opts *o = f->o;
	double secs = (double)(f->t_stop - f->t_meas) / NSEC_PER_SEC;
	uint64_t errors = 0;
	bool j = o->json;
	unsigned int k;

	if (secs <= 0)
		secs = 1e-9;
	for (k = 0; k < FE_KINDS; k++)
		errors += f->st.err[k];
	kv_begin(j, modes[f->kind]);
	kv_str(j, "proto", protos[f->proto]);
	kv_u64(j, f->kind == FL_CONNRATE ? "inflight" : "conns", f->n);
	kv_u64(j, "size", f->proto == LG_PROTO_HTTP ? 0 : f->size);
	kv_u64(j, "duration_ms", f->dur_ms);
	kv_u64(j, "warmup_ms", o->warmup_ms);
	switch (f->kind) {
	case FL_RR:
		kv_u64(j, "requests", f->st.ok);
		kv_dbl(j, "req_per_s", (double)f->st.ok / secs, 1);
		kv_lat(j, "", &f->lat);
		break;
	case FL_CONNRATE:
		kv_u64(j, "conns", f->st.ok);
		kv_dbl(j, "conn_per_s", (double)f->st.ok / secs, 1);
		kv_u64(j, "attempts", f->st.attempts);
		kv_lat(j, "connect_", &f->conn);
		kv_lat(j, "txn_", &f->lat);
		break;
	case FL_BULK: {
		double lo = 0, hi = 0;
		uint32_t i;

		for (i = 0; i < f->n; i++) {
			double g = (double)(f->c[i].rx_bytes - f->c[i].rx_base) * 8 / secs / 1e9;

			if (!i || g < lo)
				lo = g;
			if (!i || g > hi)
				hi = g;
		}
		kv_dbl(j, "gbit_s", (double)f->st.rx_bytes * 8 / secs / 1e9, 3);
		kv_dbl(j, "conn_min_gbit_s", lo, 3);
		kv_dbl(j, "conn_max_gbit_s", hi, 3);
		break;
	}
	}
	if (o->tls) {
		kv_str(j, "tls_version", f->tls.version ? f->tls.version : "-");
		kv_str(j, "tls_cipher", f->tls.cipher ? f->tls.cipher : "-");
		kv_u64(j, "tls_full", f->tls.full);
		kv_u64(j, "tls_resumed", f->tls.resumed);
		kv_dbl(j, "handshakes_per_s", (double)(f->tls.full + f->tls.resumed) / secs, 1);
		kv_lat(j, "hs_", &f->hs);
	}
	kv_u64(j, "errors", errors);
	for (k = 0; k < FE_KINDS; k++)
		kv_u64(j, fl_err_names[k], f->st.err[k]);
	kv_u64(j, "connects", f->st.connects);
	if (f->kind == FL_RR)
		kv_u64(j, "reconnects", f->st.reconnects);
	kv_u64(j, "rx_bytes", f->st.rx_bytes);
	kv_u64(j, "tx_bytes", f->st.tx_bytes);
	kv_dbl(j, "elapsed_ms", secs * 1000, 1);
	printf(j ? "}\n" : "\n");
	fflush(stdout);
}

static void fl_free(struct flow *f)
{
	uint32_t i;

	if (!f)
		return;
	for (i = 0; f->c && i < f->n; i++) {
		SSL_free(f->c[i].ssl);
		if (f->c[i].fd >= 0)
			close(f->c[i].fd);
		free(f->c[i].head);
		free(f->c[i].buf);
	}
	free(f->c);
	free(f->msg);
	free(f->req);
	bench_heap_free(&f->timers);
	evr_exit(&f->ev);
	free(f);
}

static int fl_run(const struct lg_opts *o, enum fl_kind kind)
{
	static const char *const names[] = { "rr", "connrate", "bulk" };
	enum lg_proto proto = o->proto ? o->proto : kind == FL_BULK ? LG_PROTO_TCP : LG_PROTO_HTTP;
	struct flow *f = NULL;
	uint64_t i;
	int len, err, ret = 1;

	if (kind == FL_BULK && proto != LG_PROTO_TCP) {
		fprintf(stderr, "loadgen bulk: only --proto tcp\n");
		return 2;
	}
	if (o->size_set && !o->size) {
		fprintf(stderr, "loadgen %s: --size must be positive\n", names[kind]);
		return 2;
	}
	if (!o->give_up_ms || !o->connect_timeout_ms) {
		fprintf(stderr, "loadgen %s: timeouts must be positive\n", names[kind]);
		return 2;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto oom;
	f->o = o;
	f->kind = kind;
	f->proto = proto;
	f->n = (uint32_t)(o->conns ? o->conns : kind == FL_BULK ? 4 : 64);
	f->size = o->size_set ? o->size : kind == FL_BULK ? 128 * 1024 : 64;
	f->rng.s = o->seed;
	f->ana_backoff = FL_RETRY_NS;
	f->dur_ms = o->duration_ms ? o->duration_ms : FL_DEFAULT_DURATION_MS;
	f->ep_events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | (kind == FL_BULK ? 0 : EPOLLET);
	f->c = calloc(f->n, sizeof(*f->c));
	f->msg = malloc(f->size);
	if (!f->c || !f->msg || bench_heap_init(&f->timers, f->n))
		goto oom;
	for (i = 0; i < f->size; i++)
		f->msg[i] = "sluice-loadgen: 0123456789abcdefghijklmnopqrstuvwxyz\n"[i % 54];
	if (proto == LG_PROTO_HTTP) {
		f->req = malloc(FL_WS_REQ_MAX);
		if (!f->req)
			goto oom;
		len = snprintf(f->req, FL_WS_REQ_MAX,
			       "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-loadgen\r\n%s\r\n",
			       o->target, kind == FL_CONNRATE ? "Connection: close\r\n" : "");
		if (len < 0 || len >= FL_WS_REQ_MAX)
			goto oom;
		f->req_len = (uint32_t)len;
	}
	for (i = 0; i < f->n; i++)
		f->c[i].fd = -1;
	err = evr_init(&f->ev, 16384);
	if (err) {
		fprintf(stderr, "loadgen %s: io_uring: %s\n", names[kind], strerror(-err));
		goto out;
	}

	f->t0 = bench_now_ns(CLOCK_MONOTONIC);
	f->t_meas = f->t0 + o->warmup_ms * NSEC_PER_MSEC;
	f->t_end = f->t_meas + f->dur_ms * NSEC_PER_MSEC;
	f->next_scan = f->t0 + FL_SCAN_NS;
	if (!o->warmup_ms)
		fl_measure(f, f->t0);
	for (i = 0; i < f->n; i++)
		fl_open(f, &f->c[i]);
	fl_loop(f);
	if (f->loop_err) {
		fprintf(stderr, "loadgen %s: waiting for events: %s\n", names[kind], strerror(-f->loop_err));
		goto out;
	}
	fl_report(f);
	if (o->cdf && kind != FL_BULK) {
		err = bench_hist_write_cdf(&f->lat, o->cdf);
		if (err) {
			fprintf(stderr, "loadgen %s: %s: %s\n", names[kind], o->cdf, strerror(-err));
			goto out;
		}
	}
	if (f->first_err && o->verbose)
		fprintf(stderr, "loadgen %s: first error: %s\n", names[kind], strerror(-f->first_err));
	ret = (kind == FL_BULK ? f->st.rx_bytes : f->st.ok) ? 0 : 1;
	goto out;
oom:
	fprintf(stderr, "loadgen %s: out of memory\n", names[kind]);
out:
	fl_free(f);
	return ret;
}

static int mode_rr(const struct lg_opts *o)
{
	return fl_run(o, FL_RR);
}

static int mode_connrate(const struct lg_opts *o)
{
	return fl_run(o, FL_CONNRATE);
}

static int mode_bulk(const struct lg_opts *o)
{
	return fl_run(o, FL_BULK);
}

/* ---- main: option parsing and mode table -------------------------------- */

/* ---- mode: queue --------------------------------------------------------- */

/*
 * queue: keep -n clients waiting in a proxy's admission queue, and measure
 * what the proxy spends per client that comes and goes while the queue
 * stays that long. Each client connects, sends one 16-byte message and
 * waits for its echo, which comes only once the proxy lets it through to a
 * backend (tcp, backend --mode echo). A client ends in one of three ways:
 *   left      it gave up: every 1/-r s one waiting client, chosen at random,
 *             closes its socket (-r 0: none do);
 *   admitted  its echo came back: it closes at once;
 *   refused   the proxy closed it (FIN or RST) without the echo, e.g. at its
 *             queue timeout.
 * Every client that ends is replaced by a new one at once (unless --once),
 * so the number waiting stays -n. Once all -n are waiting, --warmup-ms
 * passes, then -d ms are measured: the counts above and the CPU time of the
 * --pid processes (from schedstat, exact), giving CPU per client that left
 * (cpu_us_per_leave, with its replacement's arrival) and per client admitted
 * (cpu_us_per_admit, with its replacement's). Run it so that one of the two
 * dominates: no admissions (the backend full) and -r R, or -r 0 and a
 * backend that takes clients at a steady rate.
 * --once: nothing is replaced, nobody leaves during --warmup-ms, and the run
 * ends once every client ended or -d passed; then the clients still there
 * all close at once.
 */
enum q_state {
	Q_IDLE = 0,	/* no socket */
	Q_CONNECTING,
	Q_WAITING,	/* message sent, no echo yet */
};

struct q_client {
	int fd;
	uint8_t state;
	uint8_t rx_len;
};

struct qrun {
	const struct lg_opts *o;
	struct q_client *cl;
	uint32_t *idle; /* clients without a socket that are to get one, a stack */
	uint32_t nidle;
	uint32_t n, connecting, waiting, live;
	struct evring ev;
	struct bench_rng rng;
	bool measuring;
	/* counted while measuring (all of them before the window, for the fill) */
	uint64_t left, admitted, refused, errors, arrived;
	int first_err;
	char scratch[256];
};

static void q_close(struct qrun *q, struct q_client *c)
{
	if (c->fd >= 0) {
		evr_forget(&q->ev, c->fd);
		close(c->fd);
	}
	if (c->state == Q_CONNECTING)
		q->connecting--;
	else if (c->state == Q_WAITING)
		q->waiting--;
	if (c->state != Q_IDLE)
		q->live--;
	c->fd = -1;
	c->state = Q_IDLE;
	c->rx_len = 0;
}

/* C ended (WHY: a counter): it gets a new socket soon, unless --once. */
static void q_end(struct qrun *q, struct q_client *c, uint64_t *why)
{
	(*why)++;
	q_close(q, c);
	if (!q->o->once)
		q->idle[q->nidle++] = (uint32_t)(c - q->cl);
}

static void q_open(struct qrun *q, struct q_client *c)
{
	const struct lg_opts *o = q->o;
	uint32_t id = (uint32_t)(c - q->cl);
	int one = 1, err;

	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = -errno;
		goto fail;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addr_len) && errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	err = evr_ctl(&q->ev, EPOLL_CTL_ADD, c->fd, EPOLLOUT, id);
	if (err)
		goto fail;
	c->state = Q_CONNECTING;
	q->connecting++;
	q->live++;
	q->arrived++;
	return;
fail:
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	q->errors++;
	if (!q->first_err)
		q->first_err = err;
}

static void q_event(struct qrun *q, struct q_client *c, uint32_t events)
{
	char msg[LG_ECHO_MSG_LEN + 1];
	uint32_t id = (uint32_t)(c - q->cl);
	int err = 0;
	socklen_t len = sizeof(err);
	ssize_t r;

	snprintf(msg, sizeof(msg), "%015x\n", id);
	if (c->state == Q_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
			q_end(q, c, &q->refused);
			return;
		}
		if (send(c->fd, msg, LG_ECHO_MSG_LEN, MSG_NOSIGNAL) != LG_ECHO_MSG_LEN) {
			q_end(q, c, &q->refused);
			return;
		}
		c->state = Q_WAITING;
		q->connecting--;
		q->waiting++;
		if (evr_ctl(&q->ev, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP, id))
			q_end(q, c, &q->errors);
		return;
	}
	if (c->state != Q_WAITING)
		return;
	r = recv(c->fd, q->scratch, sizeof(q->scratch), 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		q_end(q, c, &q->refused); /* FIN or RST: turned away */
		return;
	}
	if (c->rx_len + r > LG_ECHO_MSG_LEN ||
	    memcmp(q->scratch, msg + c->rx_len, (size_t)r) != 0) {
		q_end(q, c, &q->errors);
		return;
	}
	c->rx_len = (uint8_t)(c->rx_len + r);
	if (c->rx_len == LG_ECHO_MSG_LEN)
		q_end(q, c, &q->admitted);
	(void)events;
}

/* One waiting client, picked at random, gives up. */
static void q_leave_one(struct qrun *q)
{
	for (int tries = 0; tries < 64 && q->waiting; tries++) {
		struct q_client *c = &q->cl[bench_rng_below(&q->rng, q->n)];

		if (c->state == Q_WAITING) {
			q_end(q, c, &q->left);
			return;
		}
	}
}

/*
 * Run until DEADLINE (ns) or, with UNTIL_FULL, until all -n wait. Replaces
 * ended clients (unless --once), at most --inflight connecting at once, and
 * lets one client leave every 1/-r s when LEAVE.
 */
static int q_loop(struct qrun *q, uint64_t deadline, bool until_full, bool leave)
{
	const struct lg_opts *o = q->o;
	struct epoll_event evs[512];
	uint64_t step = leave && o->rate ? NSEC_PER_SEC / o->rate : 0;
	uint64_t next_leave = bench_now_ns(CLOCK_MONOTONIC) + step;

	for (;;) {
		uint64_t now = bench_now_ns(CLOCK_MONOTONIC), until = deadline;
		int n, i, wait_ms;

		if (now >= deadline)
			return 0;
		if (until_full && (q->waiting == q->n || (!q->nidle && !q->connecting)))
			return 0;
		if (o->once && !q->live && !q->nidle && !until_full)
			return 0;
		while (step && now >= next_leave) {
			q_leave_one(q);
			next_leave += step;
		}
		/* (re)fill: a bounded number of connects in progress */
		while (q->nidle && q->connecting < o->inflight) {
			struct q_client *c = &q->cl[q->idle[--q->nidle]];

			q_open(q, c);
			if (c->state == Q_IDLE && !o->once) {
				/* a local error (counted): try again on the next pass */
				q->idle[q->nidle++] = (uint32_t)(c - q->cl);
				break;
			}
		}
		if (step && next_leave < until)
			until = next_leave;
		wait_ms = until <= now ? 0 : (int)((until - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
		if (q->nidle && q->connecting < o->inflight)
			wait_ms = wait_ms > 1 ? 1 : wait_ms; /* more to open soon */
		n = evr_wait(&q->ev, evs, (int)(sizeof(evs) / sizeof(evs[0])), wait_ms);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
		for (i = 0; i < n; i++)
			q_event(q, &q->cl[(uint32_t)evs[i].data.u64], evs[i].events);
	}
}

static long long q_cpu_ns(const struct lg_opts *o)
{
	long long sum = 0;

	for (unsigned int i = 0; i < o->npids; i++) {
		long long ns = bench_cpu_ns(o->pids[i]);

		if (ns < 0)
			return ns;
		sum += ns;
	}
	return sum;
}

static int mode_queue(const struct lg_opts *o)
{
	struct qrun *q;
	uint64_t t0, fill_ns, window_ns;
	long long cpu0 = 0, cpu1 = 0;
	double cpu_us;
	int err, ret = 1;

	if (!o->conns || o->conns > UINT32_MAX) {
		fprintf(stderr, "loadgen queue: -n is required\n");
		return 2;
	}
	q = calloc(1, sizeof(*q));
	if (!q || !(q->cl = calloc(o->conns, sizeof(*q->cl))) ||
	    !(q->idle = calloc(o->conns, sizeof(*q->idle)))) {
		fprintf(stderr, "loadgen queue: out of memory\n");
		if (q)
			free(q->cl);
		free(q);
		return 1;
	}
	q->o = o;
	q->n = (uint32_t)o->conns;
	q->rng.s = o->seed;
	for (uint32_t i = 0; i < q->n; i++) {
		q->cl[i].fd = -1;
		q->idle[q->nidle++] = q->n - 1 - i;
	}
	err = evr_init(&q->ev, 32768);
	if (err) {
		fprintf(stderr, "loadgen queue: io_uring: %s\n", strerror(-err));
		goto out_free;
	}

	/* fill: every client waiting (with --once, each opened exactly once) */
	t0 = bench_now_ns(CLOCK_MONOTONIC);
	err = q_loop(q, t0 + o->timeout_ms * NSEC_PER_MSEC, true, false);
	fill_ns = bench_now_ns(CLOCK_MONOTONIC) - t0;
	if (err || q->waiting != q->n) {
		fprintf(stderr, "loadgen queue: %u of %u waiting after %.1f s (%s)\n", q->waiting,
			q->n, (double)fill_ns / NSEC_PER_SEC,
			err ? strerror(-err) : q->first_err ? strerror(-q->first_err) : "deadline");
		goto out;
	}
	/* steady state before measuring; with --once, all just wait */
	if (o->warmup_ms)
		err = q_loop(q, bench_now_ns(CLOCK_MONOTONIC) + o->warmup_ms * NSEC_PER_MSEC, false,
			     !o->once);
	if (err)
		goto out;

	/* the measured window */
	q->left = q->admitted = q->refused = q->errors = q->arrived = 0;
	cpu0 = q_cpu_ns(o);
	t0 = bench_now_ns(CLOCK_MONOTONIC);
	err = q_loop(q, t0 + o->duration_ms * NSEC_PER_MSEC, false, true);
	window_ns = bench_now_ns(CLOCK_MONOTONIC) - t0;
	cpu1 = q_cpu_ns(o);
	if (err) {
		fprintf(stderr, "loadgen queue: waiting for events: %s\n", strerror(-err));
		goto out;
	}
	cpu_us = cpu0 >= 0 && cpu1 >= 0 ? (double)(cpu1 - cpu0) / 1000.0 : -1;
	kv_begin(o->json, "queue");
	kv_u64(o->json, "conns", q->n);
	kv_u64(o->json, "rate", o->rate);
	kv_dbl(o->json, "fill_ms", (double)fill_ns / NSEC_PER_MSEC, 0);
	kv_dbl(o->json, "duration_ms", (double)window_ns / NSEC_PER_MSEC, 0);
	kv_u64(o->json, "left", q->left);
	kv_u64(o->json, "admitted", q->admitted);
	kv_u64(o->json, "refused", q->refused);
	kv_u64(o->json, "errors", q->errors);
	kv_u64(o->json, "arrived", q->arrived);
	kv_u64(o->json, "waiting_end", q->waiting);
	kv_dbl(o->json, "cpu_ms", cpu_us / 1000, 1);
	kv_dbl(o->json, "cpu_us_per_leave", q->left ? cpu_us / (double)q->left : 0, 1);
	kv_dbl(o->json, "cpu_us_per_admit", q->admitted ? cpu_us / (double)q->admitted : 0, 1);
	printf(o->json ? "}\n" : "\n");
	fflush(stdout);
	if (q->first_err && o->verbose)
		fprintf(stderr, "loadgen queue: first error: %s\n", strerror(-q->first_err));
	ret = q->errors ? 1 : 0;
out:
	for (uint32_t i = 0; i < q->n; i++)
		q_close(q, &q->cl[i]);
	evr_exit(&q->ev);
out_free:
	free(q->idle);
	free(q->cl);
	free(q);
	return ret;
}

struct lg_mode {
	const char *name;
	const char *help;
	int (*run)(const struct lg_opts *o);
};

static const struct lg_mode lg_modes[] = {
	{ "idle", "open -n connections, one request each, hold idle, report RSS of --pid",
	  mode_idle },
	{ "storm", "-n clients reconnect at once, retrying by --policy; time and attempts to recover",
	  mode_storm },
	{ "rr", "-n connections in a request/reply loop for -d ms: req/s, latency", mode_rr },
	{ "connrate", "-n connects in flight, each one request then close: conn/s, latency, errors",
	  mode_connrate },
	{ "bulk", "-n connections stream to an echo server both ways: Gbit/s received", mode_bulk },
	{ "queue", "keep -n clients waiting in a proxy's queue for -d ms, -r leaving per s: CPU of --pid per client",
	  mode_queue },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(
	    out,
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
	    "storm options (loadgen storm -c ADDR -n N --policy P):\n"
	    "      --policy naive|backoff|retry-after\n"
	    "                            after a failed attempt: retry at once; sleep\n"
	    "                            U(0, min(max, base*2^k)), k = failures-1; or wait\n"
	    "                            a 503's Retry-After (ws), else like backoff\n"
	    "      --proto tcp|ws        tcp: 16-byte echo (backend --mode echo); ws: HTTP\n"
	    "                            upgrade, then one masked frame and its echo\n"
	    "      --connect-timeout-ms MS  give up a connect after MS (default 2000)\n"
	    "      --give-up-ms MS       give up an attempt after MS (default 2000)\n"
	    "      --max-ms MS           the storm's deadline (default 60000)\n"
	    "      --hold-ms MS          close a reconnected client after MS (default: hold\n"
	    "                            until every client is back or --max-ms)\n"
	    "      --spread-ms MS        first attempts uniform over MS (default 0)\n"
	    "      --backoff-base-ms MS  (default 100)\n"
	    "      --backoff-max-ms MS   (default 10000)\n"
	    "      --seed N              random seed (default: from the clock; reported)\n"
	    "      --series FILE         CSV per 100 ms: t_ms,attempts_started,successes,\n"
	    "                            gave_up,refused,reconnected_total\n"
	    "      --json                report as JSON instead of one line\n"
	    "rr, connrate, bulk options (loadgen rr|connrate|bulk -c ADDR [options]):\n"
	    "      --proto tcp|http|ws   tcp: --size bytes to an echo server (backend --mode\n"
	    "                            echo), the same bytes must come back; http: GET /\n"
	    "                            (backend --mode http), a 2xx with Content-Length\n"
	    "                            (or up to EOF); rr keeps the connection alive,\n"
	    "                            connrate sends Connection: close and lets the server\n"
	    "                            close; ws: HTTP upgrade (101 and Sec-WebSocket-Accept\n"
	    "                            checked), then masked binary frames of --size bytes\n"
	    "                            echoed by backend --mode ws (pushed text frames are\n"
	    "                            skipped). Default http; bulk is tcp only\n"
	    "  -n N                      rr, bulk: connections; connrate: connection attempts\n"
	    "                            in flight (default 64; bulk 4)\n"
	    "  -d MS                     measured time (default 5000)\n"
	    "      --warmup-ms MS        run this long before measuring (default 0)\n"
	    "      --size BYTES          tcp/ws message (default 64); bulk: bytes per write\n"
	    "                            (default 131072); at most 16 MiB\n"
	    "      --connect-timeout-ms MS  a connect slower than MS is a timeout (2000)\n"
	    "      --give-up-ms MS       rr: per reply; connrate: per transaction (2000)\n"
	    "      --seed N              ws keys and masks\n"
	    "      --json                one JSON object instead of the line: the same keys\n"
	    "                            plus \"mode\"; a latency is null when there was none\n"
	    "      --cdf FILE            rr, connrate: the latency distribution (rr: request;\n"
	    "                            connrate: connect() to the whole reply), one line\n"
	    "                            per histogram bucket: \"us fraction_at_or_below\"\n"
	    "queue options (loadgen queue -c ADDR -n N [options]; tcp, backend --mode echo):\n"
	    "  -n N                      clients kept waiting; each sends 16 bytes and waits\n"
	    "                            for their echo, which comes once the proxy admits it\n"
	    "  -r R                      one random waiting client leaves (closes) every 1/R s\n"
	    "  -d MS                     measured window, after all N wait and --warmup-ms\n"
	    "  -p PID                    whose CPU time (schedstat) the window reports\n"
	    "      --inflight N          connects in progress at once (default 256)\n"
	    "      --timeout-ms MS       deadline for all N to be waiting (default 60000)\n"
	    "      --once                no replacements: each client once; they all wait\n"
	    "                            through --warmup-ms, the window ends early when\n"
	    "                            none is left\n"
	    "  A client that leaves, is admitted (echo back, then it closes) or is refused\n"
	    "  (closed by the proxy) is replaced at once. Reports left= admitted= refused=\n"
	    "  errors= arrived= waiting_end= cpu_ms= cpu_us_per_leave= cpu_us_per_admit=\n"
	    "  (--json: the same as one object).\n"
	    "TLS (idle, rr, connrate, bulk; not storm):\n"
	    "      --tls                 a TLS client handshake on every connection (no\n"
	    "                            certificate check; the handshake signature is)\n"
	    "      --tls-resume          implies --tls: a first connection gets a session\n"
	    "                            (waiting for the TLS 1.3 ticket), then every\n"
	    "                            connection offers a copy of it\n"
	    "      --tls-version 1.2|1.3 only this version (default: negotiate)\n"
	    "      --sni NAME            server name to send\n"
	    "  With --tls, reports add tls_version= tls_cipher= tls_full= tls_resumed=\n"
	    "  (handshakes by kind) and, for rr, connrate and bulk, handshakes_per_s=\n"
	    "  and hs_{p50,p90,p99,p999,max,mean}_us= (connect() to handshake done);\n"
	    "  TLS failures count as tls_err=.\n"
	    "  rr: each connection sends a request when the previous reply is complete.\n"
	    "      rr proto= conns= size= duration_ms= warmup_ms= requests= req_per_s=\n"
	    "         p50_us= p90_us= p99_us= p999_us= max_us= mean_us= errors= ERRORS\n"
	    "         connects= reconnects= rx_bytes= tx_bytes= elapsed_ms=\n"
	    "      latency: request sent to reply complete. A failed connection is reopened\n"
	    "      after 1 ms; a server that closes after a whole reply is a reconnect.\n"
	    "  connrate: each slot connects, sends one request, reads the whole reply,\n"
	    "      closes (tcp, ws: the client first; http: after the server's FIN), and\n"
	    "      starts over at once (after a failure: 1 ms later).\n"
	    "      connrate proto= inflight= size= duration_ms= warmup_ms= conns= conn_per_s=\n"
	    "         attempts= connect_{p50,p90,p99,p999,max,mean}_us=\n"
	    "         txn_{p50,p90,p99,p999,max,mean}_us= errors= ERRORS connects=\n"
	    "         rx_bytes= tx_bytes= elapsed_ms=\n"
	    "      connect: connect() to established; txn: connect() to the reply complete.\n"
	    "      EADDRNOTAVAIL (no ephemeral port) backs off 1, 2, .. 128 ms until a\n"
	    "      connect succeeds again.\n"
	    "  bulk: each connection writes --size chunks and reads the echo, unchecked.\n"
	    "      bulk proto=tcp conns= size= duration_ms= warmup_ms= gbit_s=\n"
	    "         conn_min_gbit_s= conn_max_gbit_s= errors= ERRORS connects= rx_bytes=\n"
	    "         tx_bytes= elapsed_ms=\n"
	    "      gbit_s: bytes received by all connections; min/max: per connection.\n"
	    "  ERRORS: refused= reset= closed= (FIN or ws Close before the reply)\n"
	    "      timeout= addrnotavail= bad_status= (http not 2xx, ws not 101)\n"
	    "      proto_err= (bad reply, echo mismatch) other_err=; errors is their sum.\n"
	    "  Latencies in us from a log-linear histogram (error under 0.5 %%); counters\n"
	    "  and rates cover the -d ms after the warm-up. Exit 1 if nothing succeeded.\n"
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
	enum {
		OPT_HOLD = 256,
		OPT_INFLIGHT,
		OPT_TIMEOUT,
		OPT_ECHO,
		OPT_WARMUP,
		OPT_POLICY,
		OPT_PROTO,
		OPT_CONNECT_TIMEOUT,
		OPT_GIVE_UP,
		OPT_MAX,
		OPT_SPREAD,
		OPT_BACKOFF_BASE,
		OPT_BACKOFF_MAX,
		OPT_SEED,
		OPT_SERIES,
		OPT_CDF,
		OPT_JSON,
		OPT_SIZE,
		OPT_WARMUP_MS,
		OPT_TLS,
		OPT_TLS_RESUME,
		OPT_TLS_VERSION,
		OPT_SNI,
		OPT_ONCE,
	};
	static const struct option lopts[] = {
	    {"connect", required_argument, NULL, 'c'},
	    {"conns", required_argument, NULL, 'n'},
	    {"duration-ms", required_argument, NULL, 'd'},
	    {"rate", required_argument, NULL, 'r'},
	    {"pid", required_argument, NULL, 'p'},
	    {"hold-ms", required_argument, NULL, OPT_HOLD},
	    {"inflight", required_argument, NULL, OPT_INFLIGHT},
	    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	    {"echo", no_argument, NULL, OPT_ECHO},
	    {"warmup", required_argument, NULL, OPT_WARMUP},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"proto", required_argument, NULL, OPT_PROTO},
	    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	    {"give-up-ms", required_argument, NULL, OPT_GIVE_UP},
	    {"max-ms", required_argument, NULL, OPT_MAX},
	    {"spread-ms", required_argument, NULL, OPT_SPREAD},
	    {"backoff-base-ms", required_argument, NULL, OPT_BACKOFF_BASE},
	    {"backoff-max-ms", required_argument, NULL, OPT_BACKOFF_MAX},
	    {"seed", required_argument, NULL, OPT_SEED},
	    {"series", required_argument, NULL, OPT_SERIES},
	    {"cdf", required_argument, NULL, OPT_CDF},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"size", required_argument, NULL, OPT_SIZE},
	    {"warmup-ms", required_argument, NULL, OPT_WARMUP_MS},
	    {"tls", no_argument, NULL, OPT_TLS},
	    {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
	    {"tls-version", required_argument, NULL, OPT_TLS_VERSION},
	    {"sni", required_argument, NULL, OPT_SNI},
	    {"once", no_argument, NULL, OPT_ONCE},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
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
			o->hold_set = true;
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
		case OPT_POLICY:
			if (!strcmp(optarg, "naive"))
				o->policy = LG_POLICY_NAIVE;
			else if (!strcmp(optarg, "backoff"))
				o->policy = LG_POLICY_BACKOFF;
			else if (!strcmp(optarg, "retry-after"))
				o->policy = LG_POLICY_RETRY_AFTER;
			else
				err = -EINVAL;
			break;
		case OPT_PROTO:
			if (!strcmp(optarg, "tcp"))
				o->proto = LG_PROTO_TCP;
			else if (!strcmp(optarg, "http"))
				o->proto = LG_PROTO_HTTP;
			else if (!strcmp(optarg, "ws"))
				o->proto = LG_PROTO_WS;
			else
				err = -EINVAL;
			o->ws = o->proto == LG_PROTO_WS;
			break;
		case OPT_CONNECT_TIMEOUT:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->connect_timeout_ms);
			break;
		case OPT_GIVE_UP:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->give_up_ms);
			break;
		case OPT_MAX:
			err = bench_parse_u64(optarg, 24 * 3600 * 1000ULL, &o->max_ms);
			break;
		case OPT_SPREAD:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->spread_ms);
			break;
		case OPT_BACKOFF_BASE:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->backoff_base_ms);
			break;
		case OPT_BACKOFF_MAX:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->backoff_max_ms);
			break;
		case OPT_SEED:
			err = bench_parse_u64(optarg, UINT64_MAX, &o->seed);
			o->seed_set = true;
			break;
		case OPT_SERIES:
			o->series = optarg;
			break;
		case OPT_CDF:
			o->cdf = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_SIZE:
			err = bench_parse_u64(optarg, FL_SIZE_MAX, &o->size);
			o->size_set = true;
			break;
		case OPT_WARMUP_MS:
			err = bench_parse_u64(optarg, 3600 * 1000, &o->warmup_ms);
			break;
		case OPT_TLS:
			o->tls = true;
			break;
		case OPT_TLS_RESUME:
			o->tls = o->tls_resume = true;
			break;
		case OPT_TLS_VERSION:
			if (!strcmp(optarg, "1.2"))
				o->tls_version = TLS1_2_VERSION;
			else if (!strcmp(optarg, "1.3"))
				o->tls_version = TLS1_3_VERSION;
			else
				err = -EINVAL;
			break;
		case OPT_ONCE:
			o->once = true;
			break;
		case OPT_SNI:
			o->sni = optarg;
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

/* The client context every --tls connection shares. */
static SSL_CTX *lg_tls_ctx(const struct lg_opts *o, bool idle)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	/*
	 * No chain verification (the server's handshake signature is still
	 * checked: TLS demands it); no client-side cache: sessions are offered
	 * only by --tls-resume, explicitly. A server that closes without
	 * close_notify is an EOF, as for a browser. idle holds thousands of
	 * connections: their record buffers go back between records.
	 */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				  (idle ? SSL_MODE_RELEASE_BUFFERS : 0));
	if (o->tls_version && (!SSL_CTX_set_min_proto_version(ctx, o->tls_version) ||
			       !SSL_CTX_set_max_proto_version(ctx, o->tls_version))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * --tls: the context, and with --tls-resume the session every connection
 * offers, from a priming connection that sends what MODE would (so that the
 * server answers). 0, or 1 with a message.
 */
static int lg_tls_setup(struct lg_opts *o, const char *mode)
{
	static const char ws_req[] =
	    "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n";
	static const char http_req[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
	static const char echo_req[] = "sluice-loadgen!\n";
	bool idle = !strcmp(mode, "idle");
	enum lg_proto proto = o->proto;

	if (!strcmp(mode, "storm")) {
		fprintf(stderr, "loadgen storm: no --tls\n");
		return 1;
	}
	o->tls_ctx = lg_tls_ctx(o, idle);
	if (!o->tls_ctx) {
		fprintf(stderr, "loadgen: TLS client context: %s\n",
			ERR_reason_error_string(ERR_get_error()));
		return 1;
	}
	if (!o->tls_resume)
		return 0;
	if (idle)
		proto = o->echo ? LG_PROTO_TCP : LG_PROTO_HTTP;
	else if (!proto)
		proto = !strcmp(mode, "bulk") ? LG_PROTO_TCP : LG_PROTO_HTTP;
	if (proto == LG_PROTO_WS)
		o->tls_sess = lg_tls_prime(o, ws_req, sizeof(ws_req) - 1);
	else if (proto == LG_PROTO_HTTP)
		o->tls_sess = lg_tls_prime(o, http_req, sizeof(http_req) - 1);
	else
		o->tls_sess = lg_tls_prime(o, echo_req, sizeof(echo_req) - 1);
	return o->tls_sess ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct lg_opts o = {
		.inflight = 256,
		.hold_ms = 1000,
		.timeout_ms = 60000,
		.connect_timeout_ms = 2000,
		.give_up_ms = 2000,
		.max_ms = 60000,
		.backoff_base_ms = 100,
		.backoff_max_ms = 10000,
	};
	const struct lg_mode *m = NULL;
	uint64_t nofile;
	size_t i;
	int ret;

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
	if (!o.seed_set)
		o.seed = bench_now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);

	signal(SIGPIPE, SIG_IGN);
	nofile = bench_raise_nofile();
	if (o.conns + 16 > nofile) {
		fprintf(stderr, "loadgen: -n %llu needs more descriptors than the limit %llu\n",
			(unsigned long long)o.conns, (unsigned long long)nofile);
		return 2;
	}
	if (o.tls && lg_tls_setup(&o, m->name))
		return 1;
	ret = m->run(&o);
	SSL_SESSION_free(o.tls_sess);
	SSL_CTX_free(o.tls_ctx);
	return ret;
}
