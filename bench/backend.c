// SPDX-License-Identifier: MIT
/*
 * backend — a fast, boring benchmark backend.
 *
 *   backend [--mode http|echo|ws] [--listen ADDR:PORT] [--threads N] [--body BYTES]
 *           [--conn-cost-us N] [--summary FILE] [--ready FILE] [--backlog N]
 *           [--max-seconds S] [--push-ms N] [--cost-schedule S:US,...]
 *
 * Every thread owns an epoll instance and its own SO_REUSEPORT listening
 * socket, so the kernel spreads new connections over the threads and a
 * connection lives on the thread that accepted it: no locks on the data path.
 *
 * http: a minimal HTTP/1.1 server. Each request head (ended by CRLFCRLF; a
 *       Content-Length body is skipped) gets "200 OK" with a body of --body
 *       bytes. Keep-alive unless the request says "Connection: close".
 *       Pipelined requests are answered in order.
 * echo: bytes are sent back as they come. When the peer half-closes, what is
 *       still buffered is flushed, then our side is shut down too.
 * ws:   a WebSocket (RFC 6455) echo server. The HTTP/1.1 upgrade request
 *       (head at most 8 KiB) gets "101 Switching Protocols"; a plain
 *       "GET /healthz" gets "200 OK" and a close; anything else "400" and a
 *       close. Then every data frame comes back unmasked with the same
 *       opcode, FIN bit and length (so fragmented messages are echoed
 *       fragment by fragment), Ping gets Pong, and a Close is answered with a
 *       Close carrying the same code before the connection is closed. A
 *       protocol error (unmasked client frame, RSV bits, bad opcode, bad
 *       fragmentation, oversized control frame) gets Close 1002. With
 *       --push-ms N every connection also gets a text message "tick SEQ"
 *       (SEQ = 1, 2, ...) every N ms, the first one at least N ms after the
 *       upgrade, always between two of its echoed messages.
 *
 * --conn-cost-us burns that much thread CPU time for every accepted connection
 * before it is served, on the event loop itself: it models a backend that pays
 * for auth or session restore on each (re)connect, which is what turns a
 * reconnect storm into an overload. The stall shows up in the loop lag.
 * The cost can change while it runs, as a backend's does in an incident:
 * --cost-schedule 10:4000,20:2000 makes it 4000 us from 10 s after the start
 * and 2000 us again from 20 s; SIGUSR1 doubles it, SIGUSR2 halves it.
 *
 * On SIGTERM/SIGINT the summary (--summary, JSON) is written and the process
 * exits 0. Loop lag is the time one loop iteration spends working between two
 * epoll_wait() calls: how long a newly ready event can wait to be looked at.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench/bench_util.h"

#define SCRATCH_SIZE (64 * 1024)
#define MAX_HEAD (16 * 1024)
#define MAX_EVENTS 256
#define ACCEPT_BATCH 32
#define BUCKET_MS 10
#define LAG_BUCKETS 1088
#define WS_MAX_HEAD (8 * 1024)
#define WS_WBUF_SIZE (64 * 1024)
#define WS_CTL_MAX 125
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum mode { MODE_HTTP, MODE_ECHO, MODE_WS };

struct options {
	enum mode mode;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned int threads;
	uint64_t body;
	uint64_t conn_cost_us;
	struct {
		uint64_t at_ms, cost_us;
	} sched[8]; /* --cost-schedule, in time order */
	unsigned int nsched;
	uint64_t backlog;
	uint64_t max_seconds;
	uint64_t push_ms;
	const char *summary;
	const char *ready;
};

/*
 * ws: the frame parser of one upgraded connection. Payload is never buffered:
 * a data frame's header is answered at once with the echo's header (same FIN,
 * opcode and length) and its payload is unmasked into the output as it
 * arrives, so memory per connection stays bounded whatever the message size.
 * Only a control frame's payload (at most 125 bytes) is kept until complete.
 */
struct ws {
	uint8_t hdr[14]; /* the frame header being assembled */
	uint8_t hdr_len;
	uint8_t opcode;	 /* of the current frame */
	bool fin;
	bool in_frame;	 /* header done, payload still coming */
	bool in_message; /* a data message is being echoed: no tick now */
	bool tick_due;	 /* a --push-ms tick waits for a message boundary */
	uint8_t mask[4];
	uint8_t ctl_len;
	uint8_t ctl[WS_CTL_MAX];
	uint64_t left; /* payload bytes of the current frame still to come */
	uint64_t off;  /* payload bytes of the current frame seen so far */
	uint64_t ticks;
	uint64_t quiet_until_ns; /* no tick before: --push-ms after the upgrade */
};

/* One client connection. Buffers exist only while something is pending. */
struct conn {
	int fd;
	bool want_close;  /* http, ws: close once the output is flushed */
	bool peer_eof;	  /* echo: peer half-closed; finish after the flush */
	bool out_armed;	  /* waiting for EPOLLOUT, EPOLLIN is off */
	char *in;	  /* http, ws: an incomplete request head */
	uint32_t in_len;
	char *out;	  /* unsent output */
	uint32_t out_len;
	uint32_t out_off;
	uint64_t body_skip; /* http: request body bytes still to discard */
	struct ws *ws;	    /* ws: set once upgraded */
	struct conn *prev, *next; /* the worker's list, to free them all at exit */
};

struct worker {
	pthread_t tid;
	unsigned int idx;
	int epfd;
	int lfd;
	int wakefd;
	int pushfd;	/* ws: the --push-ms timerfd, or -1 */
	char *scratch;
	uint8_t *wbuf;	/* ws: output gathered for one connection */
	size_t wlen;
	struct conn *conns;
	uint64_t requests;
	uint64_t ws_upgrades, ws_messages, ws_closes, ws_pings, ws_pushes, ws_errors;
	uint64_t ws_health, ws_bad_heads;
	uint64_t lag_max_ns;
	uint64_t lag_hist[LAG_BUCKETS];
};

static struct options opt = {
	.mode = MODE_HTTP,
	.threads = 1,
	.body = 64,
	.backlog = 4096,
	.max_seconds = 3600,
};

static char *resp_keep, *resp_close;
static size_t resp_keep_len, resp_close_len;

static uint64_t start_ns;	       /* CLOCK_MONOTONIC at startup */
static uint64_t start_unix_ms;
static _Atomic uint32_t *accept_buckets; /* accepts per BUCKET_MS since start */
static size_t nbuckets;
static _Atomic uint64_t accepted_total;
static _Atomic int64_t conns_now;
static _Atomic int64_t conns_max;
static _Atomic uint64_t accept_errors;
static atomic_bool stopping;

/* Epoll tags for the non-connection fds of a worker. */
static char tag_listener, tag_wake, tag_push;

/* ---- loop lag histogram: log-linear, 32 sub-buckets per power of two ---- */

static unsigned int lag_bucket(uint64_t us)
{
	unsigned int e, idx;

	if (us < 64)
		return (unsigned int)us;
	e = 63 - (unsigned int)__builtin_clzll(us);
	idx = 64 + (e - 6) * 32 + (unsigned int)((us >> (e - 5)) & 31);
	return idx < LAG_BUCKETS ? idx : LAG_BUCKETS - 1;
}

/* Upper bound (exclusive) in microseconds of bucket IDX. */
static uint64_t lag_bucket_upper(unsigned int idx)
{
	unsigned int e, sub;

	if (idx < 64)
		return idx + 1;
	e = (idx - 64) / 32 + 6;
	sub = (idx - 64) % 32;
	return (uint64_t)(33 + sub) << (e - 5);
}

/* ---- connection helpers ------------------------------------------------ */

static void conn_free(struct worker *w, struct conn *c)
{
	if (!c)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else if (w->conns == c)
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->fd >= 0) {
		close(c->fd);
		atomic_fetch_sub(&conns_now, 1);
	}
	free(c->in);
	free(c->out);
	free(c->ws);
	free(c);
}

static int conn_set_events(struct worker *w, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	return epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) ? -errno : 0;
}

/* Keep the unsent tail of BUF in c->out. 0 or -ENOMEM. */
static int conn_stash(struct conn *c, const char *buf, size_t len)
{
	size_t pending = c->out_len - c->out_off;
	char *n;

	if (pending + len > UINT32_MAX)
		return -ENOMEM;
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_len = (uint32_t)pending;
		c->out_off = 0;
	}
	n = realloc(c->out, pending + len);
	if (!n)
		return -ENOMEM;
	memcpy(n + pending, buf, len);
	c->out = n;
	c->out_len = (uint32_t)(pending + len);
	return 0;
}

/*
 * Try to send what is pending in c->out. Returns 1 when everything is out,
 * 0 when the socket is full (EPOLLOUT armed, EPOLLIN off for backpressure),
 * -errno on error.
 */
static int conn_flush(struct worker *w, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if (!c->out_armed) {
				int err = conn_set_events(w, c, EPOLLOUT);

				if (err)
					return err;
				c->out_armed = true;
			}
			return 0;
		}
		c->out_off += (uint32_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->out_armed) {
		int err = conn_set_events(w, c, EPOLLIN | EPOLLRDHUP);

		if (err)
			return err;
		c->out_armed = false;
	}
	return 1;
}

/* Send LEN bytes at BUF, stashing what the socket does not take. Like conn_flush. */
static int conn_send(struct worker *w, struct conn *c, const char *buf, size_t len)
{
	ssize_t n = 0;

	if (c->out_off == c->out_len) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			n = 0;
		}
		if ((size_t)n == len)
			return 1;
	}
	if (conn_stash(c, buf + n, len - (size_t)n))
		return -ENOMEM;
	return conn_flush(w, c);
}

/*
 * The final step of a connection that asked for "Connection: close": the
 * response is out. Closing with unread input would make the kernel answer
 * with RST and could destroy the response in flight, so if the client sent
 * more (it should not have), shut down our side and let the reads drain it.
 * Returns true when the connection was freed.
 */
static bool conn_finish_close(struct worker *w, struct conn *c)
{
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0) {
		shutdown(c->fd, SHUT_WR);
		return false;
	}
	conn_free(w, c);
	return true;
}

/* ---- http -------------------------------------------------------------- */

static bool head_wants_close(const char *head, size_t len)
{
	size_t vlen;
	const char *v = bench_http_header(head, len, "connection:", &vlen);

	return v && bench_memcasemem(v, vlen, "close");
}

static uint64_t head_content_length(const char *head, size_t len)
{
	size_t vlen;
	const char *v = bench_http_header(head, len, "content-length:", &vlen);
	uint64_t cl = 0;
	size_t i;

	if (!v)
		return 0;
	for (i = 0; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
		cl = cl * 10 + (uint64_t)(v[i] - '0');
	return cl;
}

/*
 * Answer every complete request in DATA[0..LEN). Keeps an incomplete head in
 * c->in. Returns 0, or -errno when the connection must be dropped.
 */
static int http_consume(struct worker *w, struct conn *c, const char *data, size_t len)
{
	size_t pos = 0;
	unsigned int nresp = 0;
	int err = 0;

	while (pos < len && !c->want_close) {
		const char *end;

		if (c->body_skip) {
			size_t skip = len - pos < c->body_skip ? len - pos : c->body_skip;

			c->body_skip -= skip;
			pos += skip;
			continue;
		}
		end = memmem(data + pos, len - pos, "\r\n\r\n", 4);
		if (!end)
			break;
		c->body_skip = head_content_length(data + pos, (size_t)(end - (data + pos)));
		c->want_close = head_wants_close(data + pos, (size_t)(end - (data + pos)));
		pos = (size_t)(end - data) + 4;
		nresp++;
	}
	w->requests += nresp;

	/* A leftover: keep the incomplete head for the next read. */
	if (pos < len && !c->want_close) {
		char *keep;

		if (len - pos > MAX_HEAD)
			return -E2BIG;
		if (data == c->in) {
			memmove(c->in, c->in + pos, len - pos);
		} else {
			keep = realloc(c->in, MAX_HEAD + SCRATCH_SIZE);
			if (!keep)
				return -ENOMEM;
			memcpy(keep, data + pos, len - pos);
			c->in = keep;
		}
		c->in_len = (uint32_t)(len - pos);
	} else {
		free(c->in);
		c->in = NULL;
		c->in_len = 0;
	}

	while (nresp > 0 && err >= 0) {
		bool last = nresp == 1;

		if (last && c->want_close)
			err = conn_send(w, c, resp_close, resp_close_len);
		else
			err = conn_send(w, c, resp_keep, resp_keep_len);
		nresp--;
	}
	return err < 0 ? err : 0;
}

static int http_readable(struct worker *w, struct conn *c)
{
	char *buf = w->scratch;
	size_t have = 0;
	ssize_t n;

	/* Append to an incomplete head; c->in has room for one more read. */
	if (c->in) {
		buf = c->in;
		have = c->in_len;
	}
	n = recv(c->fd, buf + have, SCRATCH_SIZE, 0);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (c->want_close)
		return 0; /* draining after our final response */
	return http_consume(w, c, buf, have + (size_t)n);
}

/* ---- echo -------------------------------------------------------------- */

static int echo_readable(struct worker *w, struct conn *c)
{
	ssize_t n = recv(c->fd, w->scratch, SCRATCH_SIZE, 0);
	int err;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0) {
		c->peer_eof = true;
		if (c->out_off < c->out_len)
			return 0; /* finish in conn_writable */
		shutdown(c->fd, SHUT_WR);
		return -ECONNRESET;
	}
	err = conn_send(w, c, w->scratch, (size_t)n);
	return err < 0 ? err : 0;
}

/* ---- ws ---------------------------------------------------------------- */

/*
 * Output of a ws connection is gathered in the worker's wbuf (the 101, the
 * frame headers, unmasked payload, pongs, ticks) and handed to conn_send in
 * one piece, instead of a send() per frame. Only one connection uses wbuf at
 * a time; every path that fills it drains it before returning to the loop.
 */
static int ws_drain(struct worker *w, struct conn *c)
{
	int err;

	if (!w->wlen)
		return 0;
	err = conn_send(w, c, (const char *)w->wbuf, w->wlen);
	w->wlen = 0;
	return err < 0 ? err : 0;
}

/* Queue LEN (at most WS_WBUF_SIZE) bytes. 0 or -errno. */
static int ws_put(struct worker *w, struct conn *c, const void *buf, size_t len)
{
	if (w->wlen + len > WS_WBUF_SIZE) {
		int err = ws_drain(w, c);

		if (err)
			return err;
	}
	memcpy(w->wbuf + w->wlen, buf, len);
	w->wlen += len;
	return 0;
}

/* Unmask LEN bytes of SRC into DST; OFF is the payload offset of SRC[0]. */
static void ws_unmask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
		      uint64_t off)
{
	uint8_t m[8];
	uint64_t m64, v;
	size_t i;

	for (i = 0; i < 8; i++)
		m[i] = mask[(off + i) & 3];
	memcpy(&m64, m, sizeof(m64));
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&v, src + i, sizeof(v));
		v ^= m64;
		memcpy(dst + i, &v, sizeof(v));
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ m[i & 7];
}

/* Queue the unmasked echo of LEN payload bytes of the current frame. */
static int ws_put_payload(struct worker *w, struct conn *c, const uint8_t *p, size_t len)
{
	struct ws *ws = c->ws;

	while (len) {
		size_t n = WS_WBUF_SIZE - w->wlen;

		if (!n) {
			int err = ws_drain(w, c);

			if (err)
				return err;
			continue;
		}
		if (n > len)
			n = len;
		ws_unmask(w->wbuf + w->wlen, p, n, ws->mask, ws->off);
		w->wlen += n;
		ws->off += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* Queue an unmasked frame header: FIN and OPCODE in B0, payload of LEN bytes. */
static int ws_put_header(struct worker *w, struct conn *c, uint8_t b0, uint64_t len)
{
	uint8_t h[10];
	size_t n = 0;
	int i;

	h[n++] = b0;
	if (len < 126) {
		h[n++] = (uint8_t)len;
	} else if (len <= 0xffff) {
		h[n++] = 126;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = 127;
		for (i = 7; i >= 0; i--)
			h[n++] = (uint8_t)(len >> (8 * i));
	}
	return ws_put(w, c, h, n);
}

/* Queue our Close (CODE, or none when 0); nothing is read or sent after it. */
static int ws_put_close(struct worker *w, struct conn *c, unsigned int code)
{
	uint8_t f[4] = { 0x88, 0, (uint8_t)(code >> 8), (uint8_t)code };

	c->want_close = true;
	if (!code)
		return ws_put(w, c, f, 2);
	f[1] = 2;
	return ws_put(w, c, f, 4);
}

static int ws_protocol_error(struct worker *w, struct conn *c)
{
	w->ws_errors++;
	return ws_put_close(w, c, 1002);
}

/*
 * Queue the due tick, if this is a place where a message may start: not
 * inside an echoed message (a data frame must not be cut, nor the fragments
 * of one message interleaved with another), and not behind output the peer
 * is not reading (the tick then waits for the flush; due ticks coalesce).
 */
static int ws_put_tick(struct worker *w, struct conn *c)
{
	struct ws *ws = c->ws;
	char msg[32];
	int len, err;

	if (!ws->tick_due || ws->in_message || c->want_close || c->out_off < c->out_len)
		return 0;
	ws->tick_due = false;
	len = snprintf(msg, sizeof(msg), "tick %llu", (unsigned long long)++ws->ticks);
	err = ws_put_header(w, c, 0x81, (uint64_t)len);
	if (!err)
		err = ws_put(w, c, msg, (size_t)len);
	if (!err)
		w->ws_pushes++;
	return err;
}

/* The header in ws->hdr is complete: check it, and start the echo. */
static int ws_frame_start(struct worker *w, struct conn *c)
{
	struct ws *ws = c->ws;
	uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
	uint64_t len = b1 & 0x7f;
	size_t i, n = 2;

	ws->opcode = b0 & 0x0f;
	ws->fin = b0 & 0x80;
	if (len == 126) {
		len = (uint64_t)ws->hdr[2] << 8 | ws->hdr[3];
		n = 4;
	} else if (len == 127) {
		for (len = 0, i = 2; i < 10; i++)
			len = len << 8 | ws->hdr[i];
		n = 10;
	}
	/* No extension was negotiated, so no RSV bit; the MSB of a length is 0. */
	if ((b0 & 0x70) || len >> 63)
		return ws_protocol_error(w, c);
	memcpy(ws->mask, ws->hdr + n, 4);
	ws->left = len;
	ws->off = 0;
	ws->ctl_len = 0;
	ws->in_frame = true;

	switch (ws->opcode) {
	case 0x0: /* continuation */
	case 0x1: /* text */
	case 0x2: /* binary */
		/* A continuation needs an open message, text/binary must not have one. */
		if ((ws->opcode == 0) != ws->in_message)
			return ws_protocol_error(w, c);
		ws->in_message = true;
		return ws_put_header(w, c, (uint8_t)(b0 & 0x8f), len);
	case 0x8: /* close */
	case 0x9: /* ping */
	case 0xa: /* pong */
		if (!ws->fin || len > WS_CTL_MAX || (ws->opcode == 0x8 && len == 1))
			return ws_protocol_error(w, c);
		return 0;
	default:
		return ws_protocol_error(w, c);
	}
}

/* The current frame's payload is all in. */
static int ws_frame_end(struct worker *w, struct conn *c)
{
	struct ws *ws = c->ws;
	int err = 0;

	ws->in_frame = false;
	ws->hdr_len = 0;
	switch (ws->opcode) {
	case 0x0:
	case 0x1:
	case 0x2:
		if (ws->fin) {
			ws->in_message = false;
			w->ws_messages++;
			err = ws_put_tick(w, c);
		}
		break;
	case 0x8:
		w->ws_closes++;
		err = ws_put_close(w, c,
				   ws->ctl_len >= 2 ? (unsigned int)ws->ctl[0] << 8 | ws->ctl[1] : 0);
		break;
	case 0x9:
		w->ws_pings++;
		err = ws_put_header(w, c, 0x8a, ws->ctl_len);
		if (!err)
			err = ws_put(w, c, ws->ctl, ws->ctl_len);
		break;
	default: /* an unsolicited pong */
		break;
	}
	return err;
}

/*
 * Run LEN bytes of client frames at P through the parser, queueing the
 * answers in wbuf (the caller drains it). Stops at our Close. 0 or -errno.
 */
static int ws_consume(struct worker *w, struct conn *c, const uint8_t *p, size_t len)
{
	struct ws *ws = c->ws;
	int err = 0;

	while (!err && !c->want_close && (len || (ws->in_frame && !ws->left))) {
		if (!ws->in_frame) {
			size_t need = 2, take;

			if (ws->hdr_len >= 2) {
				uint8_t l7 = ws->hdr[1] & 0x7f;

				need += (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
			}
			take = need - ws->hdr_len < len ? need - ws->hdr_len : len;
			memcpy(ws->hdr + ws->hdr_len, p, take);
			ws->hdr_len = (uint8_t)(ws->hdr_len + take);
			p += take;
			len -= take;
			/* Clients must mask: refuse before waiting for a key. */
			if (ws->hdr_len == 2 && !(ws->hdr[1] & 0x80))
				err = ws_protocol_error(w, c);
			else if (ws->hdr_len == need && need > 2)
				err = ws_frame_start(w, c);
			continue;
		}
		if (ws->left) {
			size_t take = ws->left < len ? (size_t)ws->left : len;

			if (ws->opcode & 0x8) {
				ws_unmask(ws->ctl + ws->ctl_len, p, take, ws->mask, ws->off);
				ws->ctl_len = (uint8_t)(ws->ctl_len + take);
				ws->off += take;
			} else {
				err = ws_put_payload(w, c, p, take);
			}
			ws->left -= take;
			p += take;
			len -= take;
			if (ws->left)
				continue;
		}
		if (!err)
			err = ws_frame_end(w, c);
	}
	return err;
}

static const char ws_resp_health[] = "HTTP/1.1 200 OK\r\nServer: sluice-bench\r\n"
				     "Content-Type: text/plain\r\nContent-Length: 3\r\n"
				     "Connection: close\r\n\r\nok\n";
static const char ws_resp_bad[] = "HTTP/1.1 400 Bad Request\r\nServer: sluice-bench\r\n"
				  "Sec-WebSocket-Version: 13\r\n"
				  "Content-Type: text/plain\r\nContent-Length: 12\r\n"
				  "Connection: close\r\n\r\nbad request\n";

/*
 * Answer the request head at HEAD (LEN bytes, up to its blank line): 101 and
 * a parser for what follows, 200 for a health check, or 400. Queues the
 * answer in wbuf. 0 or -errno.
 */
static int ws_handshake(struct worker *w, struct conn *c, const char *head, size_t len)
{
	const char *eol = memchr(head, '\r', len), *path = head + 4, *v;
	char both[64 + sizeof(WS_GUID)], accept[32], resp[160];
	size_t plen = 0, vlen;
	uint8_t digest[20];
	int n;

	w->requests++;
	if (!eol || len < 4 || memcmp(head, "GET ", 4))
		goto bad;
	while (path + plen < eol && path[plen] != ' ')
		plen++;
	if (path + plen + 9 > eol || memcmp(path + plen, " HTTP/1.", 8))
		goto bad;

	v = bench_http_header(head, len, "upgrade:", &vlen);
	if (!v) {
		if ((plen == 8 && !memcmp(path, "/healthz", 8)) ||
		    (plen > 8 && !memcmp(path, "/healthz?", 9))) {
			w->ws_health++;
			c->want_close = true;
			return ws_put(w, c, ws_resp_health, sizeof(ws_resp_health) - 1);
		}
		goto bad;
	}
	if (!bench_memcasemem(v, vlen, "websocket"))
		goto bad;
	v = bench_http_header(head, len, "connection:", &vlen);
	if (!v || !bench_memcasemem(v, vlen, "upgrade"))
		goto bad;
	v = bench_http_header(head, len, "sec-websocket-version:", &vlen);
	if (!v || vlen != 2 || memcmp(v, "13", 2))
		goto bad;
	v = bench_http_header(head, len, "sec-websocket-key:", &vlen);
	if (!v || !vlen || vlen > 64)
		goto bad;

	c->ws = calloc(1, sizeof(*c->ws));
	if (!c->ws)
		return -ENOMEM;
	c->ws->quiet_until_ns = bench_now_ns(CLOCK_MONOTONIC) + opt.push_ms * NSEC_PER_MSEC;
	memcpy(both, v, vlen);
	memcpy(both + vlen, WS_GUID, sizeof(WS_GUID) - 1);
	bench_sha1(both, vlen + sizeof(WS_GUID) - 1, digest);
	bench_base64(digest, sizeof(digest), accept);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		     accept);
	w->ws_upgrades++;
	return ws_put(w, c, resp, (size_t)n);
bad:
	w->ws_bad_heads++;
	c->want_close = true;
	return ws_put(w, c, ws_resp_bad, sizeof(ws_resp_bad) - 1);
}

/*
 * Before the upgrade: gather the request head (in c->in once it spans reads,
 * never more than WS_MAX_HEAD bytes), answer it, and feed what came after it
 * to the frame parser.
 */
static int ws_read_head(struct worker *w, struct conn *c)
{
	char *buf = w->scratch, *end;
	size_t have = 0, room = SCRATCH_SIZE, hlen;
	ssize_t n;
	int err;

	if (c->in) {
		buf = c->in;
		have = c->in_len;
		room = WS_MAX_HEAD - have;
	}
	n = recv(c->fd, buf + have, room, 0);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	have += (size_t)n;

	end = memmem(buf, have, "\r\n\r\n", 4);
	hlen = end ? (size_t)(end - buf) + 4 : have;
	if (hlen > WS_MAX_HEAD || (!end && have == WS_MAX_HEAD)) {
		w->ws_bad_heads++;
		w->requests++;
		c->want_close = true;
		err = ws_put(w, c, ws_resp_bad, sizeof(ws_resp_bad) - 1);
	} else if (!end) {
		if (!c->in) {
			c->in = malloc(WS_MAX_HEAD);
			if (!c->in)
				return -ENOMEM;
			memcpy(c->in, buf, have);
		}
		c->in_len = (uint32_t)have;
		return 0;
	} else {
		err = ws_handshake(w, c, buf, hlen);
		if (!err && c->ws)
			err = ws_consume(w, c, (const uint8_t *)buf + hlen, have - hlen);
	}
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	if (!err)
		err = ws_drain(w, c);
	w->wlen = 0;
	return err;
}

static int ws_readable(struct worker *w, struct conn *c)
{
	ssize_t n;
	int err;

	if (!c->ws && !c->want_close)
		return ws_read_head(w, c);
	n = recv(c->fd, w->scratch, SCRATCH_SIZE, 0);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (c->want_close)
		return 0; /* draining after our final answer */
	err = ws_consume(w, c, (const uint8_t *)w->scratch, (size_t)n);
	if (!err)
		err = ws_drain(w, c);
	w->wlen = 0;
	return err;
}

/* Output is flushed: send a tick that waited for it. */
static int ws_flushed(struct worker *w, struct conn *c)
{
	int err;

	if (!c->ws || !c->ws->tick_due)
		return 0;
	err = ws_put_tick(w, c);
	if (!err)
		err = ws_drain(w, c);
	w->wlen = 0;
	return err;
}

/*
 * The --push-ms timer: every upgraded connection gets a tick, now or at its
 * next boundary. One timer per worker, so ticks of all its connections go out
 * together; a connection's first tick waits at least --push-ms after its
 * upgrade, which leaves a client's first exchange alone (loadgen storm takes
 * anything but its echo as an error).
 */
static void ws_push(struct worker *w)
{
	struct conn *c, *next;
	uint64_t expirations, now = bench_now_ns(CLOCK_MONOTONIC);

	if (read(w->pushfd, &expirations, sizeof(expirations)) < 0)
		return;
	for (c = w->conns; c; c = next) {
		next = c->next;
		if (!c->ws || c->want_close || now < c->ws->quiet_until_ns)
			continue;
		c->ws->tick_due = true;
		if (ws_flushed(w, c) < 0)
			conn_free(w, c);
	}
}

/* ---- event loop -------------------------------------------------------- */

/* The cost of a new connection now: SIGUSR1/SIGUSR2 change it, and so does the schedule. */
static _Atomic uint64_t cost_now_us;
static _Atomic unsigned int sched_next;

static uint64_t conn_cost(void)
{
	unsigned int k = atomic_load_explicit(&sched_next, memory_order_relaxed);

	if (k < opt.nsched &&
	    bench_now_ns(CLOCK_MONOTONIC) - start_ns >= opt.sched[k].at_ms * NSEC_PER_MSEC &&
	    atomic_compare_exchange_strong(&sched_next, &k, k + 1))
		atomic_store(&cost_now_us, opt.sched[k].cost_us);
	return atomic_load_explicit(&cost_now_us, memory_order_relaxed);
}

static void burn_cpu_us(uint64_t us)
{
	uint64_t until = bench_now_ns(CLOCK_THREAD_CPUTIME_ID) + us * NSEC_PER_USEC;

	while (bench_now_ns(CLOCK_THREAD_CPUTIME_ID) < until)
		;
}

static void note_accept(void)
{
	uint64_t slot = (bench_now_ns(CLOCK_MONOTONIC) - start_ns) / (BUCKET_MS * NSEC_PER_MSEC);
	int64_t now, max;

	atomic_fetch_add(&accepted_total, 1);
	if (slot >= nbuckets)
		slot = nbuckets - 1;
	atomic_fetch_add_explicit(&accept_buckets[slot], 1, memory_order_relaxed);

	now = atomic_fetch_add(&conns_now, 1) + 1;
	max = atomic_load(&conns_max);
	while (now > max && !atomic_compare_exchange_weak(&conns_max, &max, now))
		;
}

static void worker_accept(struct worker *w)
{
	int i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct epoll_event ev;
		struct conn *c;
		uint64_t cost;
		int one = 1;
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				atomic_fetch_add(&accept_errors, 1);
			if (errno == EMFILE || errno == ENFILE)
				usleep(1000); /* do not spin on a full fd table */
			return;
		}
		note_accept();
		cost = conn_cost();
		if (cost)
			burn_cpu_us(cost);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			atomic_fetch_sub(&conns_now, 1);
			continue;
		}
		c->fd = fd;
		c->next = w->conns;
		if (c->next)
			c->next->prev = c;
		w->conns = c;
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = c;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev))
			conn_free(w, c);
	}
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
	int err = 0;

	/*
	 * While output is pending only EPOLLOUT is asked for, but EPOLLERR and
	 * EPOLLHUP come anyway and are level-triggered: flushing is what turns
	 * them into an error and a close, instead of a busy loop.
	 */
	if (c->out_armed) {
		err = conn_flush(w, c);
		if (err == 1) {
			if (c->want_close && conn_finish_close(w, c))
				return;
			if (c->peer_eof) {
				shutdown(c->fd, SHUT_WR);
				err = -ECONNRESET;
			} else {
				err = ws_flushed(w, c);
			}
		}
	} else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		if (opt.mode == MODE_HTTP)
			err = http_readable(w, c);
		else if (opt.mode == MODE_WS)
			err = ws_readable(w, c);
		else
			err = echo_readable(w, c);
		if (err == 0 && c->want_close && !c->out_armed && c->out_off == c->out_len &&
		    !c->in && conn_finish_close(w, c))
			return;
	}
	if (err < 0)
		conn_free(w, c);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[MAX_EVENTS];

	while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
		uint64_t t0, lag;
		bool push;
		int i, n = epoll_wait(w->epfd, evs, MAX_EVENTS, 1000);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("backend: epoll_wait");
			break;
		}
		t0 = bench_now_ns(CLOCK_MONOTONIC);
		push = false;
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &tag_listener)
				worker_accept(w);
			else if (p == &tag_wake)
				break;
			else if (p == &tag_push)
				push = true;
			else
				conn_event(w, p, evs[i].events);
		}
		/* After the batch: a push may free connections that have events in it. */
		if (push)
			ws_push(w);
		lag = bench_now_ns(CLOCK_MONOTONIC) - t0;
		if (lag > w->lag_max_ns)
			w->lag_max_ns = lag;
		w->lag_hist[lag_bucket(lag / NSEC_PER_USEC)]++;
	}
	return NULL;
}

/* ---- setup and summary ------------------------------------------------- */

static void worker_destroy(struct worker *w)
{
	while (w->conns)
		conn_free(w, w->conns);
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->wakefd >= 0)
		close(w->wakefd);
	if (w->pushfd >= 0)
		close(w->pushfd);
	if (w->epfd >= 0)
		close(w->epfd);
	free(w->scratch);
	free(w->wbuf);
}

static int listen_socket(void)
{
	int one = 1;
	int fd = socket(opt.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&opt.addr, opt.addr_len) ||
	    listen(fd, (int)opt.backlog)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int worker_init(struct worker *w, unsigned int idx)
{
	struct epoll_event ev = { .events = EPOLLIN };

	w->idx = idx;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return -errno;
	w->scratch = malloc(SCRATCH_SIZE);
	if (!w->scratch)
		return -ENOMEM;
	w->lfd = listen_socket();
	if (w->lfd < 0)
		return w->lfd;
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wakefd < 0)
		return -errno;
	ev.data.ptr = &tag_listener;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &ev))
		return -errno;
	ev.data.ptr = &tag_wake;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev))
		return -errno;
	if (opt.mode != MODE_WS)
		return 0;
	w->wbuf = malloc(WS_WBUF_SIZE);
	if (!w->wbuf)
		return -ENOMEM;
	if (opt.push_ms) {
		struct itimerspec its = {
			.it_interval.tv_sec = (time_t)(opt.push_ms / 1000),
			.it_interval.tv_nsec = (long)(opt.push_ms % 1000 * NSEC_PER_MSEC),
		};

		its.it_value = its.it_interval;
		w->pushfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (w->pushfd < 0 || timerfd_settime(w->pushfd, 0, &its, NULL))
			return -errno;
		ev.data.ptr = &tag_push;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->pushfd, &ev))
			return -errno;
	}
	return 0;
}

static int build_responses(void)
{
	char head[256];
	int i;

	for (i = 0; i < 2; i++) {
		int hl = snprintf(head, sizeof(head),
				  "HTTP/1.1 200 OK\r\nServer: sluice-bench\r\n"
				  "Content-Type: text/plain\r\nContent-Length: %llu\r\n%s\r\n",
				  (unsigned long long)opt.body, i ? "Connection: close\r\n" : "");
		size_t len = (size_t)hl + opt.body;
		char *r = malloc(len);

		if (!r)
			return -ENOMEM;
		memcpy(r, head, (size_t)hl);
		memset(r + hl, 'x', opt.body);
		if (i) {
			resp_close = r;
			resp_close_len = len;
		} else {
			resp_keep = r;
			resp_keep_len = len;
		}
	}
	return 0;
}

static int write_summary(const char *path, struct worker *ws)
{
	static const char *const mode_names[] = { "http", "echo", "ws" };
	uint64_t hist[LAG_BUCKETS] = { 0 }, total = 0, seen = 0, lag_max = 0, requests = 0;
	uint64_t upgrades = 0, messages = 0, closes = 0, pings = 0, pushes = 0, errors = 0;
	uint64_t health = 0, bad_heads = 0;
	uint64_t p99_us = 0;
	size_t last = 0, i;
	unsigned int t;
	char tmp[4096];
	FILE *f;

	for (t = 0; t < opt.threads; t++) {
		for (i = 0; i < LAG_BUCKETS; i++)
			hist[i] += ws[t].lag_hist[i];
		if (ws[t].lag_max_ns > lag_max)
			lag_max = ws[t].lag_max_ns;
		requests += ws[t].requests;
		upgrades += ws[t].ws_upgrades;
		messages += ws[t].ws_messages;
		closes += ws[t].ws_closes;
		pings += ws[t].ws_pings;
		pushes += ws[t].ws_pushes;
		errors += ws[t].ws_errors;
		health += ws[t].ws_health;
		bad_heads += ws[t].ws_bad_heads;
	}
	for (i = 0; i < LAG_BUCKETS; i++)
		total += hist[i];
	for (i = 0; i < LAG_BUCKETS && total; i++) {
		seen += hist[i];
		if (seen * 100 >= total * 99) {
			p99_us = lag_bucket_upper((unsigned int)i);
			break;
		}
	}
	if (p99_us * NSEC_PER_USEC > lag_max)
		p99_us = lag_max / NSEC_PER_USEC;
	for (i = 0; i < nbuckets; i++)
		if (atomic_load(&accept_buckets[i]))
			last = i + 1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f,
		"{\"mode\":\"%s\",\"threads\":%u,\"conn_cost_us\":%llu,\"start_unix_ms\":%llu,"
		"\"accepted\":%llu,\"accept_errors\":%llu,\"max_concurrent\":%lld,"
		"\"requests\":%llu,\"loop_lag_max_ms\":%.3f,\"loop_lag_p99_ms\":%.3f,"
		"\"loop_iterations\":%llu,\"bucket_ms\":%d,\"accepts_per_10ms\":[",
		mode_names[opt.mode], opt.threads,
		(unsigned long long)opt.conn_cost_us, (unsigned long long)start_unix_ms,
		(unsigned long long)atomic_load(&accepted_total),
		(unsigned long long)atomic_load(&accept_errors), (long long)atomic_load(&conns_max),
		(unsigned long long)requests, (double)lag_max / NSEC_PER_MSEC,
		(double)p99_us / 1000.0, (unsigned long long)total, BUCKET_MS);
	for (i = 0; i < last; i++)
		fprintf(f, "%s%u", i ? "," : "", atomic_load(&accept_buckets[i]));
	fprintf(f, "]");
	if (opt.mode == MODE_WS)
		fprintf(f,
			",\"push_ms\":%llu,\"ws_upgrades\":%llu,\"ws_messages\":%llu,"
			"\"ws_closes\":%llu,\"ws_pings\":%llu,\"ws_pushes\":%llu,"
			"\"ws_protocol_errors\":%llu,\"healthz\":%llu,\"bad_heads\":%llu",
			(unsigned long long)opt.push_ms, (unsigned long long)upgrades,
			(unsigned long long)messages, (unsigned long long)closes,
			(unsigned long long)pings, (unsigned long long)pushes,
			(unsigned long long)errors, (unsigned long long)health,
			(unsigned long long)bad_heads);
	fprintf(f, "}\n");
	if (fclose(f))
		return -errno;
	return rename(tmp, path) ? -errno : 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: backend [--mode http|echo|ws] [--listen ADDR:PORT] [--threads N]\n"
		"               [--body BYTES] [--conn-cost-us N] [--summary FILE] [--ready FILE]\n"
		"               [--backlog N] [--max-seconds S] [--push-ms N]\n"
		"               [--cost-schedule S:US[,S:US...]]\n"
		"  --cost-schedule  the per-connection cost becomes US at S seconds after the\n"
		"                start (up to 8 steps, in time order); SIGUSR1 doubles the cost,\n"
		"                SIGUSR2 halves it\n"
		"  --push-ms N   ws: send every connection a text message \"tick SEQ\" every\n"
		"                N ms (default 0: never)\n");
}

/* "S:US,S:US,...": seconds (may have a fraction) and a cost, in time order. */
static int parse_schedule(const char *text)
{
	const char *p = text;

	opt.nsched = 0;
	while (*p) {
		char *end;
		double at = strtod(p, &end);
		unsigned long long us;

		if (end == p || *end != ':' || at < 0 || opt.nsched == 8)
			return -EINVAL;
		p = end + 1;
		us = strtoull(p, &end, 10);
		if (end == p || us > 10 * 1000 * 1000 || (*end && *end != ','))
			return -EINVAL;
		opt.sched[opt.nsched].at_ms = (uint64_t)(at * 1000);
		opt.sched[opt.nsched].cost_us = us;
		if (opt.nsched && opt.sched[opt.nsched].at_ms < opt.sched[opt.nsched - 1].at_ms)
			return -EINVAL;
		opt.nsched++;
		p = *end ? end + 1 : end;
	}
	return opt.nsched ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "body", required_argument, NULL, 'b' },
		{ "conn-cost-us", required_argument, NULL, 'C' },
		{ "summary", required_argument, NULL, 's' },
		{ "ready", required_argument, NULL, 'r' },
		{ "backlog", required_argument, NULL, 'B' },
		{ "max-seconds", required_argument, NULL, 'M' },
		{ "push-ms", required_argument, NULL, 'P' },
		{ "cost-schedule", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_addr = "127.0.0.1:18000";
	uint64_t v;
	int c, len;

	while ((c = getopt_long(argc, argv, "m:l:t:b:C:s:r:B:M:P:S:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "http"))
				opt.mode = MODE_HTTP;
			else if (!strcmp(optarg, "echo"))
				opt.mode = MODE_ECHO;
			else if (!strcmp(optarg, "ws"))
				opt.mode = MODE_WS;
			else
				goto bad;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 't':
			if (bench_parse_u64(optarg, 256, &v) || !v)
				goto bad;
			opt.threads = (unsigned int)v;
			break;
		case 'b':
			if (bench_parse_u64(optarg, 64 << 20, &opt.body))
				goto bad;
			break;
		case 'C':
			if (bench_parse_u64(optarg, 10 * 1000 * 1000, &opt.conn_cost_us))
				goto bad;
			break;
		case 's':
			opt.summary = optarg;
			break;
		case 'r':
			opt.ready = optarg;
			break;
		case 'B':
			if (bench_parse_u64(optarg, 1 << 20, &opt.backlog) || !opt.backlog)
				goto bad;
			break;
		case 'M':
			if (bench_parse_u64(optarg, 7 * 24 * 3600, &opt.max_seconds) ||
			    !opt.max_seconds)
				goto bad;
			break;
		case 'P':
			if (bench_parse_u64(optarg, 3600 * 1000, &opt.push_ms))
				goto bad;
			break;
		case 'S':
			if (parse_schedule(optarg))
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	len = bench_parse_addr(listen_addr, &opt.addr);
	if (len < 0) {
		fprintf(stderr, "backend: bad address: %s\n", listen_addr);
		return -EINVAL;
	}
	opt.addr_len = (socklen_t)len;
	return 0;
bad:
	usage(stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct worker *ws = NULL;
	sigset_t sigs;
	unsigned int i, started = 0;
	int sig, err, ret = 1;

	if (parse_args(argc, argv))
		return 2;

	signal(SIGPIPE, SIG_IGN);
	/* Block the stop signals in every thread; main collects them with sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	atomic_store(&cost_now_us, opt.conn_cost_us);

	bench_raise_nofile();
	start_ns = bench_now_ns(CLOCK_MONOTONIC);
	start_unix_ms = bench_now_ns(CLOCK_REALTIME) / NSEC_PER_MSEC;
	nbuckets = opt.max_seconds * 1000 / BUCKET_MS;
	accept_buckets = calloc(nbuckets, sizeof(*accept_buckets));
	ws = calloc(opt.threads, sizeof(*ws));
	if (!accept_buckets || !ws || build_responses()) {
		fprintf(stderr, "backend: out of memory\n");
		goto out;
	}
	for (i = 0; i < opt.threads; i++)
		ws[i].epfd = ws[i].lfd = ws[i].wakefd = ws[i].pushfd = -1;

	for (i = 0; i < opt.threads; i++) {
		err = worker_init(&ws[i], i);
		if (err) {
			fprintf(stderr, "backend: listen: %s\n", strerror(-err));
			goto out;
		}
	}
	for (i = 0; i < opt.threads; i++) {
		err = pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
		if (err) {
			fprintf(stderr, "backend: pthread_create: %s\n", strerror(err));
			goto stop;
		}
		started++;
	}
	if (opt.ready) {
		int fd = open(opt.ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0) {
			fprintf(stderr, "backend: %s: %s\n", opt.ready, strerror(errno));
			goto stop;
		}
		close(fd);
	}

	for (;;) {
		uint64_t cost;

		sig = 0;
		err = sigwait(&sigs, &sig);
		if (err == EINTR)
			continue;
		if (sig != SIGUSR1 && sig != SIGUSR2)
			break;
		cost = atomic_load(&cost_now_us);
		cost = sig == SIGUSR1 ? (cost ? cost * 2 : 1000) : cost / 2;
		atomic_store(&cost_now_us, cost);
		fprintf(stderr, "backend: cost per new connection now %llu us\n",
			(unsigned long long)cost);
	}
	ret = 0;
stop:
	atomic_store(&stopping, true);
	for (i = 0; i < started; i++) {
		uint64_t one = 1;

		if (write(ws[i].wakefd, &one, sizeof(one)) < 0)
			perror("backend: wake");
	}
	for (i = 0; i < started; i++)
		pthread_join(ws[i].tid, NULL);
	if (opt.summary) {
		err = write_summary(opt.summary, ws);
		if (err) {
			fprintf(stderr, "backend: summary: %s: %s\n", opt.summary, strerror(-err));
			ret = 1;
		}
	}
out:
	for (i = 0; ws && i < opt.threads; i++)
		worker_destroy(&ws[i]);
	free(ws);
	free(accept_buckets);
	free(resp_keep);
	free(resp_close);
	return ret;
}
