// SPDX-License-Identifier: MIT
/*
 * A fleet of sluice hosts through Redis; see fleet.h.
 *
 * Grants. Each host's part is granted by Redis, atomically, in one script
 * call per heartbeat: the host sends its state and, per backend, the part
 * it wants (computed with proxy/share.h from the last view, never less
 * than the connections it holds); the script grants it what it wants of
 * what the other live hosts' grants leave, stores state and grants under
 * PREFIX:host:NAME with an expiry of lease_ms plus a heartbeat, and
 * returns every live host's state and grants. So the grants never sum past
 * a total, whatever the order and timing of the heartbeats: a host gives
 * back at its own heartbeat, the others take at theirs. A host's
 * connections stay within its grant (its kernel enforces it), so the
 * backends' totals hold but for what a host admits between the script
 * call and its new grant reaching its kernel (one round trip).
 *
 * A host that stops is gone from the others' view when its key expires:
 * after lease_ms, the time it may itself keep its last grant without
 * Redis, so no grant is taken from a host that may still be using it.
 *
 * A state is text: "1 DIGEST\n" then one line per backend, "ADDRESS
 * IN_USE WAITING ADMITS\n"; grants: "ADDRESS MAX_CONNS RATE\n".
 */
#include "proxy/fleet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/backend.h"
#include "proxy/share.h"
#include "proxy/snapshot.h"
#include "proxy/udata.h"
#include "userspace/admin.h"
#include "userspace/log.h"

#define FLEET_MAX_HOSTS 64
#define STATE_MAX 65536
#define RECONNECT_MS 1000

/*
 * KEYS: the hosts set, this host's key. ARGV: name, state, expiry (ms), the
 * hosts' key prefix, wants ("ADDRESS TOTAL_MAX WANT_MAX TOTAL_RATE WANT_RATE
 * IN_USE\n" per backend). Returns NAME, PTTL, STATE, GRANTS for every live
 * host, this one last.
 */
static const char script[] =
	"local used, out = {}, {} "
	"for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
	"  if n ~= ARGV[1] then "
	"    local k = ARGV[4] .. n "
	"    local v = redis.call('HMGET', k, 'state', 'grants') "
	"    if v[1] then "
	"      for a, m, r in string.gmatch(v[2] or '', '(%S+) (%d+) (%d+)\\n') do "
	"        local u = used[a] or {0, 0} "
	"        u[1] = u[1] + tonumber(m); u[2] = u[2] + tonumber(r); used[a] = u "
	"      end "
	"      out[#out + 1] = n; out[#out + 1] = redis.call('PTTL', k) "
	"      out[#out + 1] = v[1]; out[#out + 1] = v[2] or '' "
	"    else redis.call('SREM', KEYS[1], n) end "
	"  end "
	"end "
	"local g = {} "
	"for a, tm, wm, tr, wr, iu in string.gmatch(ARGV[5], "
	"    '(%S+) (%d+) (%d+) (%d+) (%d+) (%d+)\\n') do "
	"  local u = used[a] or {0, 0} "
	"  local m = math.max(0, math.min(math.max(tonumber(wm), tonumber(iu)), tonumber(tm) - u[1])) "
	"  local r = math.max(0, math.min(tonumber(wr), tonumber(tr) - u[2])) "
	"  g[#g + 1] = a .. ' ' .. m .. ' ' .. r .. '\\n' "
	"end "
	"g = table.concat(g) "
	"redis.call('HSET', KEYS[2], 'state', ARGV[2], 'grants', g) "
	"redis.call('PEXPIRE', KEYS[2], ARGV[3]) "
	"redis.call('SADD', KEYS[1], ARGV[1]) "
	"out[#out + 1] = ARGV[1]; out[#out + 1] = tonumber(ARGV[3]) "
	"out[#out + 1] = ARGV[2]; out[#out + 1] = g "
	"return out";

#define FC_QMAX 8 /* replies a connection may await at once */

struct fleet;
typedef void reply_fn(struct fleet *f, redisReply *reply, void *arg);

enum fc_state { FC_CONNECTING, FC_HANDSHAKE, FC_READY };

/*
 * One connection to Redis (or a sentinel) and its polls on the main ring.
 * hiredis formats the commands and parses the replies; the bytes go over
 * a non-blocking socket, through OpenSSL when the fleet says tls.
 */
struct fconn {
	struct fleet *f;
	int fd;                    /* -1 once closed */
	SSL *ssl;                  /* TLS to Redis; NULL: plain */
	uint8_t state, sentinel;   /* enum fc_state; a sentinel, asked where the master is */
	uint8_t want[2], armed[2]; /* [0]: readable, [1]: writable */
	uint8_t busy;              /* within fc_event: it frees FC, not fc_close */
	char *out;                 /* formatted commands not sent yet */
	size_t out_len, out_off;
	redisReader *reader;
	struct {
		reply_fn *fn;
		void *arg;
	} q[FC_QMAX];              /* replies awaited, in order */
	unsigned qhead, qlen;
	char ip[64];               /* the address connected to */
	char peer[80];             /* "redis 10.0.0.5:6379", for the log */
	struct fconn *next;        /* on f->gone: closed, its polls still out */
};

/* What a host published about one backend, and its part as computed here. */
struct fhost_be {
	struct share_host sh;
	uint32_t want_max, want_rate;   /* its part by proxy/share.h, from this view */
	uint32_t grant_max, grant_rate; /* what Redis granted it at its last heartbeat */
	uint8_t has; /* the host's config has this backend */
};

struct fhost {
	char name[64];
	uint32_t age_ms;
	uint64_t digest;
};

/* A backend of the config in service. */
struct fbe {
	struct backend *be;
	uint32_t total_max, total_rate, total_burst; /* fleet totals (0: no such limit) */
	uint64_t last_admitted, last_at;             /* the kernel's count, for ADMITS */
	uint32_t admits, waiting, in_use;
	uint32_t part_max, part_rate;                /* in force here (UINT32_MAX: none) */
	uint32_t want_max, want_rate;                /* asked for at the next heartbeat */
	struct fhost_be *hosts;                      /* [FLEET_MAX_HOSTS], the last view */
};

struct fleet {
	struct io_uring *ring;
	pthread_mutex_t lock; /* the view, against the admin thread */
	struct snapshot *snap;
	int enabled;
	char redis_ip[64];
	int redis_port;
	/* Redis through Sentinel: ask sentinels[next] where the master is, then connect */
	struct {
		char ip[64];
		int port;
	} sentinels[CFG_MAX_SENTINELS];
	unsigned nsentinels, sentinel_next;
	char master[64];
	int master_known;
	SSL_CTX *tls;      /* TLS to Redis and the sentinels; NULL: plain */
	struct cfg_redis_tls tls_cfg; /* what it was made from */
	int tls_broken;    /* the config asks for TLS, and no context could be made of it */
	char host[64], prefix[64];
	char password[256];
	uint32_t database, heartbeat_ms, lease_ms, expect_hosts;
	uint64_t digest;

	struct fconn *conn;
	struct fconn *gone; /* connections waiting for their polls' completions */
	int ready;           /* connected, AUTH and SELECT sent */
	uint64_t next_connect, next_beat, sent_at;
	int inflight;
	uint64_t last_ok; /* ms of the last good reply; 0: never */

	enum fleet_mode mode;
	unsigned known_hosts; /* live hosts at the last good reply */
	struct fbe *bes;
	unsigned nbes;
	struct fhost hosts[FLEET_MAX_HOSTS];
	unsigned nhosts;
	int drift;

	_Atomic uint64_t transitions[FLEET_MODES], errors, beats;
	struct log_rl rl;
};

const char *fleet_mode_name(enum fleet_mode m)
{
	static const char *const names[] = { "off", "coordinated", "lease", "static" };

	return m < FLEET_MODES ? names[m] : "?";
}

/* ---- hiredis on the main ring ------------------------------------------------------ */

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(ring)))
		io_uring_submit(ring);
	return sqe;
}

/* FC is done with: off the gone list, freed. */
static void fc_free(struct fconn *fc)
{
	for (struct fconn **pp = &fc->f->gone; *pp; pp = &(*pp)->next) {
		if (*pp == fc) {
			*pp = fc->next;
			break;
		}
	}
	free(fc);
}

static void fc_arm(struct fconn *fc)
{
	for (unsigned i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe;

		if (!fc->want[i] || fc->armed[i])
			continue;
		sqe = sqe_get(fc->f->ring);
		io_uring_prep_poll_add(sqe, fc->fd, i ? POLLOUT : POLLIN);
		io_uring_sqe_set_data64(sqe, ud_pack(fc, i ? UD_FLEET_WRITE : UD_FLEET_READ));
		fc->armed[i] = 1;
	}
}

/* FC is closed: every reply it awaited is NULL; freed once its polls are back. */
static void fc_close(struct fconn *fc)
{
	struct fleet *f = fc->f;

	if (fc->fd < 0)
		return;
	if (f->conn == fc) {
		f->conn = NULL;
		f->ready = 0;
		f->inflight = 0;
		if (!fc->sentinel)
			f->master_known = 0; /* through sentinels: where is the master now? */
	}
	while (fc->qlen) {
		unsigned k = fc->qhead;

		fc->qhead = (fc->qhead + 1) % FC_QMAX;
		fc->qlen--;
		fc->q[k].fn(f, NULL, fc->q[k].arg);
	}
	for (unsigned i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe;

		fc->want[i] = 0;
		if (!fc->armed[i])
			continue;
		sqe = sqe_get(f->ring);
		io_uring_prep_poll_remove(sqe, ud_pack(fc, i ? UD_FLEET_WRITE : UD_FLEET_READ));
		io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	}
	if (fc->ssl)
		SSL_free(fc->ssl);
	fc->ssl = NULL;
	close(fc->fd);
	fc->fd = -1;
	if (fc->reader)
		redisReaderFree(fc->reader);
	fc->reader = NULL;
	free(fc->out);
	fc->out = NULL;
	if (fc->armed[0] || fc->armed[1] || fc->busy) {
		fc->next = f->gone;
		f->gone = fc;
		return;
	}
	free(fc);
}

/* What went wrong on FC, logged (rate-limited) and counted; FC is closed. */
static void fc_fail(struct fconn *fc, const char *what)
{
	atomic_fetch_add(&fc->f->errors, 1);
	log_ratelimited(&fc->f->rl, LOG_LVL_WARN, "fleet: %s: %s", fc->peer, what);
	if (fc->sentinel && fc->f->nsentinels)
		fc->f->sentinel_next = (fc->f->sentinel_next + 1) % fc->f->nsentinels;
	fc_close(fc);
}

/* The reason of OpenSSL's last error (the queue cleared), or NULL if it has none. */
static const char *tls_reason(void)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	return e ? ERR_reason_error_string(e) : NULL;
}

/* The last TLS error on FC, for the log. */
static const char *fc_tls_error(char *buf, size_t size)
{
	const char *r = tls_reason();

	snprintf(buf, size, "TLS: %s", r ? r : "connection lost");
	return buf;
}

/* Send what waits. -1: FC is closed. */
static int fc_flush(struct fconn *fc)
{
	char err[160];

	while (fc->out_off < fc->out_len) {
		size_t left = fc->out_len - fc->out_off;
		ssize_t n;

		if (fc->ssl) {
			int r = SSL_write(fc->ssl, fc->out + fc->out_off, left > INT32_MAX ? INT32_MAX
											  : (int)left);

			if (r <= 0) {
				int e = SSL_get_error(fc->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
					fc->want[e == SSL_ERROR_WANT_WRITE] = 1;
					return 0;
				}
				fc_fail(fc, fc_tls_error(err, sizeof(err)));
				return -1;
			}
			n = r;
		} else {
			n = send(fc->fd, fc->out + fc->out_off, left, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				fc->want[1] = 1;
				return 0;
			}
			if (n < 0) {
				fc_fail(fc, strerror(errno));
				return -1;
			}
		}
		fc->out_off += (size_t)n;
	}
	fc->out_len = fc->out_off = 0;
	fc->want[1] = 0;
	return 0;
}

/* Read what came, hand each whole reply to what awaited it. */
static void fc_read(struct fconn *fc)
{
	char buf[16384], err[160];

	for (;;) {
		ssize_t n;
		void *reply;

		if (fc->ssl) {
			int r = SSL_read(fc->ssl, buf, sizeof(buf));

			if (r <= 0) {
				int e = SSL_get_error(fc->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					fc->want[1] = 1;
					return;
				}
				fc_fail(fc, e == SSL_ERROR_ZERO_RETURN ? "closed"
								       : fc_tls_error(err, sizeof(err)));
				return;
			}
			n = r;
		} else {
			n = recv(fc->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				fc_fail(fc, n ? strerror(errno) : "closed");
				return;
			}
		}
		if (redisReaderFeed(fc->reader, buf, (size_t)n) != REDIS_OK) {
			fc_fail(fc, "bad reply");
			return;
		}
		while (fc->fd >= 0) {
			unsigned k;

			if (redisReaderGetReply(fc->reader, &reply) != REDIS_OK) {
				fc_fail(fc, fc->reader->errstr[0] ? fc->reader->errstr : "bad reply");
				return;
			}
			if (!reply)
				break;
			if (!fc->qlen) {
				freeReplyObject(reply);
				fc_fail(fc, "a reply nobody asked for");
				return;
			}
			k = fc->qhead;
			fc->qhead = (fc->qhead + 1) % FC_QMAX;
			fc->qlen--;
			fc->q[k].fn(fc->f, reply, fc->q[k].arg);
			freeReplyObject(reply);
		}
		if (fc->fd < 0)
			return;
	}
}

/* FC is connected (and through TLS, if so): the commands queued behind it go. */
static void fc_ready(struct fconn *fc)
{
	fc->state = FC_READY;
	fc->want[0] = 1;
	fc->want[1] = 0;
	if (!fc->sentinel && fc->ssl)
		log_info("fleet: connected to %s over TLS (%s) as host %s", fc->peer,
			 SSL_get_version(fc->ssl), fc->f->host);
	else if (!fc->sentinel)
		log_info("fleet: connected to %s as host %s", fc->peer, fc->f->host);
	fc_flush(fc);
}

/* Go on with the TLS handshake. */
static void fc_handshake(struct fconn *fc)
{
	char err[160];
	int r = SSL_connect(fc->ssl), e;

	if (r == 1) {
		fc_ready(fc);
		return;
	}
	e = SSL_get_error(fc->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		fc->want[0] = e == SSL_ERROR_WANT_READ;
		fc->want[1] = e == SSL_ERROR_WANT_WRITE;
		return;
	}
	fc_fail(fc, fc_tls_error(err, sizeof(err)));
}

/*
 * FC's connect completed: TLS over it, verifying the certificate against
 * fleet.tls.name, or else the address it was reached at.
 */
static void fc_tls_start(struct fconn *fc)
{
	struct fleet *f = fc->f;

	fc->ssl = SSL_new(f->tls);
	if (!fc->ssl || !SSL_set_fd(fc->ssl, fc->fd)) {
		fc_fail(fc, "TLS: out of memory");
		return;
	}
	if (f->tls_cfg.name[0]) {
		SSL_set_tlsext_host_name(fc->ssl, f->tls_cfg.name);
		SSL_set1_host(fc->ssl, f->tls_cfg.name);
	} else {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(fc->ssl), fc->ip);
	}
	fc->state = FC_HANDSHAKE;
	fc_handshake(fc);
}

/* A poll of FC's came back (I: 0 readable, 1 writable). */
static void fc_event(struct fconn *fc, unsigned i)
{
	struct fleet *f = fc->f;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	fc->armed[i] = 0;
	fc->busy = 1;
	if (fc->fd >= 0 && fc->state == FC_CONNECTING && i == 1) {
		if (getsockopt(fc->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr)
			fc_fail(fc, strerror(soerr ? soerr : errno));
		else if (f->tls)
			fc_tls_start(fc);
		else
			fc_ready(fc);
	} else if (fc->fd >= 0 && fc->state == FC_HANDSHAKE) {
		fc_handshake(fc);
	} else if (fc->fd >= 0 && fc->state == FC_READY) {
		fc_read(fc);
		if (fc->fd >= 0 && fc->out_len)
			fc_flush(fc);
	}
	fc->busy = 0;
	if (fc->fd >= 0)
		fc_arm(fc);
	else if (!fc->armed[0] && !fc->armed[1])
		fc_free(fc);
}

void fleet_on_cqe(struct fleet *f, void *ptr, int op, int res)
{
	(void)f;
	(void)res; /* readable, writable, an error or a hang-up: the read or write says which */
	fc_event(ptr, op == UD_FLEET_WRITE);
}

/* Queue a command on FC; FN gets its reply (NULL if FC closes first). 0, or -1. */
static int fc_command(struct fconn *fc, reply_fn *fn, void *arg, const char *fmt, ...)
{
	va_list ap;
	char *cmd, *n;
	int len;

	if (fc->fd < 0 || fc->qlen == FC_QMAX)
		return -1;
	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	if (len < 0)
		return -1;
	n = realloc(fc->out, fc->out_len + (size_t)len);
	if (!n) {
		free(cmd);
		return -1;
	}
	memcpy(n + fc->out_len, cmd, (size_t)len);
	free(cmd);
	fc->out = n;
	fc->out_len += (size_t)len;
	fc->q[(fc->qhead + fc->qlen) % FC_QMAX].fn = fn;
	fc->q[(fc->qhead + fc->qlen) % FC_QMAX].arg = arg;
	fc->qlen++;
	if (fc->state == FC_READY && !fc->busy && fc_flush(fc) == 0)
		fc_arm(fc);
	else if (fc->state == FC_READY)
		fc->want[1] = 1;
	return 0;
}

/* A sentinel's answer: where the master is. Then the master is connected to. */
static void on_master(struct fleet *f, redisReply *reply, void *arg)
{
	struct fconn *fc = arg;

	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    reply->element[1]->type == REDIS_REPLY_STRING) {
		if (strcmp(f->redis_ip, reply->element[0]->str) ||
		    f->redis_port != atoi(reply->element[1]->str))
			log_info("fleet: %s: master %s is at %s:%s", fc->peer, f->master,
				 reply->element[0]->str, reply->element[1]->str);
		snprintf(f->redis_ip, sizeof(f->redis_ip), "%s", reply->element[0]->str);
		f->redis_port = atoi(reply->element[1]->str);
		f->master_known = 1;
		f->next_connect = 0; /* at once */
	} else if (reply) {
		atomic_fetch_add(&f->errors, 1);
		log_ratelimited(&f->rl, LOG_LVL_WARN, "fleet: %s does not know master %s%s%s",
				fc->peer, f->master, reply->type == REDIS_REPLY_ERROR ? ": " : "",
				reply->type == REDIS_REPLY_ERROR ? reply->str : "");
		f->sentinel_next = (f->sentinel_next + 1) % f->nsentinels;
	}
	if (reply)
		fc_close(fc);
}

/* A reply to AUTH or SELECT: an error ends the connection (and says why). */
static void on_setup_reply(struct fleet *f, redisReply *reply, void *what)
{
	if (!reply || reply->type != REDIS_REPLY_ERROR)
		return;
	log_ratelimited(&f->rl, LOG_LVL_ERROR, "fleet: redis %s: %s", (const char *)what,
			reply->str);
	if (f->conn)
		fc_close(f->conn);
}

static void fleet_connect(struct fleet *f, uint64_t now)
{
	int ask = f->nsentinels && !f->master_known;
	const char *ip = ask ? f->sentinels[f->sentinel_next].ip : f->redis_ip;
	int port = ask ? f->sentinels[f->sentinel_next].port : f->redis_port;
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	struct fconn *fc;

	f->next_connect = now + RECONNECT_MS;
	if (f->tls_broken)
		return; /* never in plain what the config says must be TLS */
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		len = sizeof(*a6);
	} else {
		log_ratelimited(&f->rl, LOG_LVL_WARN, "fleet: %s \"%s\" is not an address",
				ask ? "sentinel" : "redis", ip);
		return;
	}
	fc = calloc(1, sizeof(*fc));
	if (!fc || !(fc->reader = redisReaderCreate())) {
		free(fc);
		return;
	}
	fc->f = f;
	fc->sentinel = (uint8_t)ask;
	snprintf(fc->ip, sizeof(fc->ip), "%s", ip);
	snprintf(fc->peer, sizeof(fc->peer), ss.ss_family == AF_INET6 ? "%s [%s]:%d" : "%s %s:%d",
		 ask ? "sentinel" : "redis", ip, port);
	fc->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fc->fd < 0 || (connect(fc->fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)) {
		atomic_fetch_add(&f->errors, 1);
		log_ratelimited(&f->rl, LOG_LVL_WARN, "fleet: %s: %s", fc->peer, strerror(errno));
		if (ask)
			f->sentinel_next = (f->sentinel_next + 1) % f->nsentinels;
		if (fc->fd >= 0)
			close(fc->fd);
		redisReaderFree(fc->reader);
		free(fc);
		return;
	}
	setsockopt(fc->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	fc->state = FC_CONNECTING;
	fc->want[1] = 1; /* the connect completes when writable */
	f->conn = fc;
	if (ask) {
		fc_command(fc, on_master, fc, "SENTINEL get-master-addr-by-name %s", f->master);
	} else {
		/* queued behind the connect: sent once it is up */
		if (f->password[0])
			fc_command(fc, on_setup_reply, "AUTH", "AUTH %s", f->password);
		if (f->database)
			fc_command(fc, on_setup_reply, "SELECT", "SELECT %u", f->database);
		f->ready = 1;
	}
	fc_arm(fc);
}

static void fleet_disconnect(struct fleet *f)
{
	if (f->conn)
		fc_close(f->conn); /* awaited replies get NULL */
	f->conn = NULL;
	f->ready = 0;
	f->inflight = 0;
}

/* ---- state ---------------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s, uint64_t h)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/*
 * The digest of a config's pools and backends with their limits: the same
 * on hosts whose sets are the same, whatever their order.
 */
static uint64_t config_digest(const struct snapshot *s)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < s->npools; i++) {
		const struct cfg_pool *pc = s->pools[i].cfg;

		for (unsigned j = 0; j < pc->nservers; j++) {
			const struct cfg_server *sv = &pc->servers[j];
			char line[256];

			snprintf(line, sizeof(line), "%s|%s|%u|%u|%d", pc->name, sv->addr.text,
				 sv->max_conns, sv->rate, sv->rate_auto);
			sum += fnv1a(line, 0xcbf29ce484222325ull);
		}
	}
	return sum;
}

static struct fbe *fbe_of(struct fleet *f, const char *addr)
{
	for (unsigned i = 0; i < f->nbes; i++)
		if (strcmp(f->bes[i].be->addr.text, addr) == 0)
			return &f->bes[i];
	return NULL;
}

/* This host's state: what it holds, waits for and admits per backend. */
static int state_build(struct fleet *f, char *buf, size_t size, uint64_t now)
{
	size_t off;
	int n;

	n = snprintf(buf, size, "1 %016" PRIx64 "\n", f->digest);
	if (n < 0 || (size_t)n >= size)
		return -1;
	off = (size_t)n;
	for (unsigned i = 0; i < f->nbes; i++) {
		struct fbe *b = &f->bes[i];
		volatile struct sl_backend *kb = atomic_load(&b->be->kb);
		uint64_t admitted = kb ? kb->admitted : 0;
		uint32_t in_use = kb ? kb->active : (uint32_t)atomic_load(&b->be->active);

		if (b->last_at && now > b->last_at && admitted >= b->last_admitted)
			b->admits = (uint32_t)((admitted - b->last_admitted) * 1000 / (now - b->last_at));
		b->last_admitted = admitted;
		b->last_at = now;
		b->waiting = 0;
		for (unsigned p = 0; p < f->snap->npools; p++)
			for (unsigned j = 0; j < f->snap->pools[p].nbe; j++)
				if (f->snap->pools[p].be[j] == b->be)
					b->waiting += atomic_load(&f->snap->pools[p].queued);
		b->in_use = in_use;
		n = snprintf(buf + off, size - off, "%s %u %u %u\n", b->be->addr.text, in_use,
			     b->waiting, b->admits);
		if (n < 0 || (size_t)n >= size - off)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* What this host asks for, per backend (after state_build: IN_USE is fresh). */
static int wants_build(struct fleet *f, char *buf, size_t size)
{
	size_t off = 0;
	int n;

	buf[0] = 0;
	for (unsigned i = 0; i < f->nbes; i++) {
		struct fbe *b = &f->bes[i];

		n = snprintf(buf + off, size - off, "%s %u %u %u %u %u\n", b->be->addr.text,
			     b->total_max, b->want_max, b->total_rate, b->want_rate, b->in_use);
		if (n < 0 || (size_t)n >= size - off)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* What this host enforces for B: its part, at least 1 (0 is "no limit" to the kernel). */
static void part_apply(struct fbe *b, uint32_t max, uint32_t rate)
{
	uint32_t burst;

	b->part_max = b->total_max ? (max ? max : 1) : UINT32_MAX;
	b->part_rate = b->total_rate ? (rate ? rate : 1) : UINT32_MAX;
	burst = b->total_rate ? (uint32_t)((uint64_t)b->total_burst * b->part_rate / b->total_rate)
			      : 0;
	atomic_store(&b->be->fleet_burst, burst ? burst : 1);
	atomic_store(&b->be->fleet_max, b->part_max);
	atomic_store(&b->be->fleet_rate, b->part_rate);
}

/* Static parts: each total over the hosts last known (never more than the total). */
static void parts_static(struct fleet *f)
{
	unsigned n = f->known_hosts ? f->known_hosts : f->expect_hosts ? f->expect_hosts : 1;

	for (unsigned i = 0; i < f->nbes; i++) {
		struct fbe *b = &f->bes[i];

		part_apply(b, b->total_max / n, b->total_rate / n);
		/* what to ask for when Redis is back: the same, until a view says better */
		b->want_max = b->total_max / n;
		b->want_rate = b->total_rate / n;
	}
}

static void mode_set(struct fleet *f, enum fleet_mode m)
{
	if (f->mode == m)
		return;
	if (m == FLEET_STATIC && f->mode == FLEET_OFF)
		log_info("fleet: static until redis answers: each backend's limits split evenly "
			 "over %u hosts (fleet hosts)", f->expect_hosts);
	else if (m == FLEET_STATIC)
		log_warn("fleet: %s -> static: no redis reply for %u ms; each backend's limits "
			 "split evenly over the %u hosts last known",
			 fleet_mode_name(f->mode), f->lease_ms,
			 f->known_hosts ? f->known_hosts : f->expect_hosts);
	else if (m == FLEET_LEASE)
		log_warn("fleet: coordinated -> lease: redis silent; the last parts hold for %u ms",
			 f->lease_ms);
	else
		log_info("fleet: %s -> %s with %u hosts", fleet_mode_name(f->mode), fleet_mode_name(m),
			 f->known_hosts);
	atomic_fetch_add(&f->transitions[m], 1);
	f->mode = m;
}

/* ---- a heartbeat's reply --------------------------------------------------------------- */

/*
 * The line of TEXT (LEN bytes) at *OFF into LINE (cut to SIZE - 1, no
 * newline); *OFF moves past it. 0 at the end of TEXT.
 */
static int next_line(const char *text, size_t len, size_t *off, char *line, size_t size)
{
	const char *nl;
	size_t l;

	if (*off >= len)
		return 0;
	nl = memchr(text + *off, '\n', len - *off);
	l = (nl ? (size_t)(nl - text) : len) - *off;
	memcpy(line, text + *off, l < size ? l : size - 1);
	line[l < size ? l : size - 1] = 0;
	*off += l + 1;
	return 1;
}

/* Host H's state TEXT, into the view. */
static void state_parse(struct fleet *f, unsigned h, const char *text, size_t len)
{
	char line[320];
	size_t off = 0;
	int first = 1;

	f->hosts[h].digest = 0;
	while (next_line(text, len, &off, line, sizeof(line))) {
		char addr[128];
		unsigned in_use, waiting, admits;
		struct fbe *b;

		if (first) {
			first = 0;
			if (sscanf(line, "1 %" SCNx64, &f->hosts[h].digest) != 1)
				return; /* a version this host does not speak */
			continue;
		}
		if (sscanf(line, "%127s %u %u %u", addr, &in_use, &waiting, &admits) != 4 ||
		    !(b = fbe_of(f, addr)))
			continue;
		b->hosts[h].has = 1;
		b->hosts[h].sh = (struct share_host){ in_use, waiting, admits };
	}
}

/* Host H's grants TEXT, into the view. */
static void grants_parse(struct fleet *f, unsigned h, const char *text, size_t len)
{
	char line[256];
	size_t off = 0;

	while (next_line(text, len, &off, line, sizeof(line))) {
		char addr[128];
		unsigned m, r;
		struct fbe *b;

		if (sscanf(line, "%127s %u %u", addr, &m, &r) == 3 && (b = fbe_of(f, addr))) {
			b->hosts[h].grant_max = m;
			b->hosts[h].grant_rate = r;
		}
	}
}

/* Every host's part of B by proxy/share.h, from the view: what this one asks for next. */
static void wants_compute(struct fleet *f, struct fbe *b, unsigned me)
{
	struct share_host sh[FLEET_MAX_HOSTS];
	unsigned idx[FLEET_MAX_HOSTS], n = 0;

	for (unsigned h = 0; h < f->nhosts; h++) {
		if (!b->hosts[h].has)
			continue;
		idx[n] = h;
		sh[n++] = b->hosts[h].sh;
	}
	for (unsigned k = 0; k < n; k++) {
		struct fhost_be *hb = &b->hosts[idx[k]];

		hb->want_max = b->total_max ? share_conns(b->total_max, sh, n, k) : 0;
		hb->want_rate = b->total_rate ? share_rate(b->total_rate, sh, n, k) : 0;
		if (idx[k] == me) {
			b->want_max = hb->want_max;
			b->want_rate = hb->want_rate;
		}
	}
}

static void on_beat(struct fleet *f, redisReply *reply, void *arg)
{
	uint64_t now = f->sent_at; /* close enough: the reply came within a timeout */
	unsigned me = FLEET_MAX_HOSTS;
	int drift = 0;

	(void)arg;
	f->inflight = 0;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 4 ||
	    !reply->elements) {
		atomic_fetch_add(&f->errors, 1);
		log_ratelimited(&f->rl, LOG_LVL_WARN, "fleet: heartbeat: %s",
				!reply ? "no reply"
				: reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		/* a replica now (a failover): the sentinels know the new master */
		if (reply && reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "READONLY", 8) &&
		    f->conn)
			fc_close(f->conn);
		return;
	}
	pthread_mutex_lock(&f->lock);
	f->nhosts = 0;
	for (unsigned i = 0; i < f->nbes; i++)
		memset(f->bes[i].hosts, 0, FLEET_MAX_HOSTS * sizeof(*f->bes[i].hosts));
	for (size_t i = 0; i + 3 < reply->elements && f->nhosts < FLEET_MAX_HOSTS; i += 4) {
		redisReply *name = reply->element[i], *ttl = reply->element[i + 1],
			   *val = reply->element[i + 2], *gr = reply->element[i + 3];
		struct fhost *h = &f->hosts[f->nhosts];
		long long left, life = (long long)f->lease_ms + f->heartbeat_ms;

		if (name->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
		    gr->type != REDIS_REPLY_STRING || ttl->type != REDIS_REPLY_INTEGER)
			continue;
		snprintf(h->name, sizeof(h->name), "%.*s", (int)name->len, name->str);
		left = ttl->integer;
		h->age_ms = left >= 0 && left <= life ? (uint32_t)(life - left) : 0;
		state_parse(f, f->nhosts, val->str, val->len);
		grants_parse(f, f->nhosts, gr->str, gr->len);
		if (strcmp(h->name, f->host) == 0)
			me = f->nhosts;
		f->nhosts++;
	}
	for (unsigned h = 0; h < f->nhosts; h++)
		if (f->hosts[h].digest != f->digest)
			drift = 1;
	if (me < f->nhosts) {
		f->known_hosts = f->nhosts;
		for (unsigned i = 0; i < f->nbes; i++) {
			struct fbe *b = &f->bes[i];

			part_apply(b, b->hosts[me].grant_max, b->hosts[me].grant_rate);
			wants_compute(f, b, me);
		}
		f->last_ok = now;
		atomic_fetch_add(&f->beats, 1);
	}
	if (drift && !f->drift)
		log_warn("fleet: config drift: not every host has the same pools and backends "
			 "(sluicectl fleet shows whose)");
	else if (!drift && f->drift)
		log_info("fleet: config drift resolved");
	f->drift = drift;
	if (me < f->nhosts)
		mode_set(f, FLEET_COORDINATED);
	pthread_mutex_unlock(&f->lock);
}

static void beat(struct fleet *f, uint64_t now)
{
	static char state[STATE_MAX], wants[STATE_MAX];
	char hosts_key[96], my_key[160], host_prefix[96], ttl[16];

	if (state_build(f, state, sizeof(state), now) || wants_build(f, wants, sizeof(wants))) {
		log_ratelimited(&f->rl, LOG_LVL_WARN, "fleet: state too large to publish");
		return;
	}
	snprintf(hosts_key, sizeof(hosts_key), "%s:hosts", f->prefix);
	snprintf(host_prefix, sizeof(host_prefix), "%s:host:", f->prefix);
	snprintf(my_key, sizeof(my_key), "%s%s", host_prefix, f->host);
	/* no grant of a host is taken back while it may still use it (its lease) */
	snprintf(ttl, sizeof(ttl), "%u", f->lease_ms + f->heartbeat_ms);
	if (fc_command(f->conn, on_beat, NULL, "EVAL %s 2 %s %s %s %s %s %s %s", script, hosts_key,
		       my_key, f->host, state, ttl, host_prefix, wants)) {
		atomic_fetch_add(&f->errors, 1);
		return;
	}
	f->inflight = 1;
	f->sent_at = now;
}

void fleet_tick(struct fleet *f, uint64_t now)
{
	uint64_t timeout;

	if (!f || !f->enabled)
		return;
	timeout = 2ull * f->heartbeat_ms < 500 ? 500 : 2ull * f->heartbeat_ms;
	if (f->inflight && now - f->sent_at > timeout) {
		/* a slow Redis: parts stay as they are; a fresh connection is tried */
		atomic_fetch_add(&f->errors, 1);
		log_ratelimited(&f->rl, LOG_LVL_WARN, "fleet: redis did not answer within %llu ms",
				(unsigned long long)timeout);
		fleet_disconnect(f);
	}
	if (!f->conn && now >= f->next_connect)
		fleet_connect(f, now);
	if (f->conn && f->ready && !f->inflight && now >= f->next_beat) {
		f->next_beat = now + f->heartbeat_ms;
		beat(f, now);
	}
	pthread_mutex_lock(&f->lock);
	if (f->last_ok && now - f->last_ok <= timeout + f->heartbeat_ms)
		; /* coordinated: set by the reply */
	else if (f->last_ok && now - f->last_ok < f->lease_ms)
		mode_set(f, FLEET_LEASE);
	else if (f->mode != FLEET_STATIC) {
		mode_set(f, FLEET_STATIC);
		parts_static(f);
	}
	pthread_mutex_unlock(&f->lock);
}

/* ---- config ---------------------------------------------------------------------------- */

static void fleet_clear(struct fleet *f)
{
	for (unsigned i = 0; i < f->nbes; i++) {
		atomic_store(&f->bes[i].be->fleet_max, UINT32_MAX);
		atomic_store(&f->bes[i].be->fleet_rate, UINT32_MAX);
		atomic_store(&f->bes[i].be->fleet_burst, UINT32_MAX);
		free(f->bes[i].hosts);
	}
	free(f->bes);
	f->bes = NULL;
	f->nbes = 0;
}

static int read_password(const char *path, char *out, size_t size)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	if (!fp)
		return -1;
	if (!fgets(out, (int)size, fp))
		out[0] = 0;
	fclose(fp);
	n = strcspn(out, "\r\n");
	out[n] = 0;
	return 0;
}

/* A client context for T (with T->enabled), or NULL after saying why. */
static SSL_CTX *tls_context(const struct cfg_redis_tls *t)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *why;

	if (ctx) {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if ((t->ca[0] ? SSL_CTX_load_verify_locations(ctx, t->ca, NULL)
			      : SSL_CTX_set_default_verify_paths(ctx)) == 1 &&
		    (!t->cert[0] ||
		     (SSL_CTX_use_certificate_chain_file(ctx, t->cert) == 1 &&
		      SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) == 1 &&
		      SSL_CTX_check_private_key(ctx) == 1)))
			return ctx;
	}
	why = tls_reason();
	log_error("fleet: tls: %s; no connection to redis until a reload fixes it",
		  why ? why : "cannot set up");
	SSL_CTX_free(ctx);
	return NULL;
}

static int tls_cfg_same(const struct cfg_redis_tls *a, const struct cfg_redis_tls *b)
{
	return a->enabled == b->enabled && !strcmp(a->ca, b->ca) && !strcmp(a->name, b->name) &&
	       !strcmp(a->cert, b->cert) && !strcmp(a->key, b->key);
}

/* A's address as text (no brackets) and its port. */
static void addr_split(const struct cfg_addr *a, char *ip, size_t size, int *port)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->ss;

	if (a->ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &a6->sin6_addr, ip, (socklen_t)size);
		*port = ntohs(a6->sin6_port);
	} else {
		inet_ntop(AF_INET, &a4->sin_addr, ip, (socklen_t)size);
		*port = ntohs(a4->sin_port);
	}
}

void fleet_configure(struct fleet *f, struct snapshot *s)
{
	const struct sl_config *cfg = s->cfg;
	char ip[64], pw[256] = "";
	int port = 0, changed, tls_changed;

	pthread_mutex_lock(&f->lock);
	fleet_clear(f);
	if (f->snap)
		snapshot_put(f->snap);
	f->snap = NULL;
	if (!cfg->fleet.enabled) {
		if (f->enabled)
			log_info("fleet: off; every limit is this host's own");
		fleet_disconnect(f);
		f->enabled = 0;
		f->mode = FLEET_OFF;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	snapshot_get(s);
	f->snap = s;
	addr_split(&cfg->fleet.redis, ip, sizeof(ip), &port);
	if (cfg->fleet.password_file[0] &&
	    read_password(cfg->fleet.password_file, pw, sizeof(pw)))
		log_error("fleet: password_file %s: %s; connecting without AUTH",
			  cfg->fleet.password_file, strerror(errno));
	if (cfg->fleet.nsentinels) {
		int same = f->nsentinels == cfg->fleet.nsentinels &&
			   !strcmp(f->master, cfg->fleet.master);

		for (unsigned i = 0; i < cfg->fleet.nsentinels; i++) {
			char sip[64];
			int sport;

			addr_split(&cfg->fleet.sentinels[i], sip, sizeof(sip), &sport);
			same &= !strcmp(sip, f->sentinels[i].ip) && sport == f->sentinels[i].port;
			snprintf(f->sentinels[i].ip, sizeof(f->sentinels[i].ip), "%s", sip);
			f->sentinels[i].port = sport;
		}
		f->nsentinels = cfg->fleet.nsentinels;
		snprintf(f->master, sizeof(f->master), "%s", cfg->fleet.master);
		if (!same || !f->enabled) {
			f->master_known = 0;
			f->sentinel_next = 0;
			snprintf(ip, sizeof(ip), "%s", f->redis_ip); /* whatever the sentinels say */
			port = f->redis_port;
			f->redis_port = -1; /* reconnect */
		} else {
			snprintf(ip, sizeof(ip), "%s", f->redis_ip);
			port = f->redis_port;
		}
	} else {
		f->nsentinels = 0;
		f->master_known = 0;
	}
	/*
	 * TLS: a context made again at every reload (certificate files
	 * rotated in place are read again); changed settings reconnect.
	 */
	tls_changed = !tls_cfg_same(&cfg->fleet.tls, &f->tls_cfg);
	SSL_CTX_free(f->tls);
	f->tls = cfg->fleet.tls.enabled ? tls_context(&cfg->fleet.tls) : NULL;
	f->tls_broken = cfg->fleet.tls.enabled && !f->tls;
	f->tls_cfg = cfg->fleet.tls;
	changed = !f->enabled || strcmp(ip, f->redis_ip) || port != f->redis_port || tls_changed ||
		  strcmp(pw, f->password) || cfg->fleet.database != f->database ||
		  strcmp(cfg->fleet.host, f->host) || strcmp(cfg->fleet.prefix, f->prefix);
	snprintf(f->redis_ip, sizeof(f->redis_ip), "%s", ip);
	f->redis_port = port;
	snprintf(f->password, sizeof(f->password), "%s", pw);
	explicit_bzero(pw, sizeof(pw));
	f->database = cfg->fleet.database;
	snprintf(f->host, sizeof(f->host), "%s", cfg->fleet.host);
	snprintf(f->prefix, sizeof(f->prefix), "%s", cfg->fleet.prefix);
	f->heartbeat_ms = cfg->fleet.heartbeat_ms;
	f->lease_ms = cfg->fleet.lease_ms;
	f->expect_hosts = cfg->fleet.hosts;
	f->digest = config_digest(s);
	/* every backend once, with its totals */
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			const struct cfg_server *sv = &p->cfg->servers[j];
			struct fbe *b, *nb;

			if (fbe_of(f, p->be[j]->addr.text))
				continue;
			nb = realloc(f->bes, (f->nbes + 1) * sizeof(*nb));
			if (!nb)
				continue;
			f->bes = nb;
			b = &f->bes[f->nbes];
			memset(b, 0, sizeof(*b));
			b->hosts = calloc(FLEET_MAX_HOSTS, sizeof(*b->hosts));
			if (!b->hosts)
				continue;
			b->be = p->be[j];
			b->total_max = sv->max_conns;
			/* a learned rate is each host's own: its controller finds its part */
			b->total_rate = sv->rate_auto ? 0 : sv->rate;
			b->total_burst = sv->burst;
			b->part_max = b->part_rate = UINT32_MAX;
			f->nbes++;
		}
	}
	if (changed) {
		fleet_disconnect(f);
		f->next_connect = 0;
		f->last_ok = 0;
		f->known_hosts = 0;
		log_info("fleet: on: host %s, redis %s:%d, prefix %s, heartbeat %u ms, lease %u ms",
			 f->host, f->redis_ip, f->redis_port, f->prefix, f->heartbeat_ms,
			 f->lease_ms);
		f->enabled = 1;
		/* until a reply says otherwise: never more than an even split */
		mode_set(f, FLEET_STATIC);
	}
	/* the view was of the old config's backends: the next heartbeat now */
	f->nhosts = 0;
	f->next_beat = 0;
	parts_static(f);
	pthread_mutex_unlock(&f->lock);
}

struct fleet *fleet_new(struct io_uring *ring)
{
	struct fleet *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->ring = ring;
	pthread_mutex_init(&f->lock, NULL);
	f->rl.interval_ms = 5000;
	f->rl.burst = 3;
	return f;
}

void fleet_free(struct fleet *f)
{
	if (!f)
		return;
	fleet_disconnect(f);
	fleet_clear(f);
	/* the ring goes with the process: polls still out will not complete */
	while (f->gone)
		fc_free(f->gone);
	SSL_CTX_free(f->tls);
	if (f->snap)
		snapshot_put(f->snap);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* ---- the admin endpoint ------------------------------------------------------------------ */

enum fleet_mode fleet_mode(struct fleet *f, int *drift)
{
	enum fleet_mode m;

	pthread_mutex_lock(&f->lock);
	m = f->mode;
	if (drift)
		*drift = f->drift;
	pthread_mutex_unlock(&f->lock);
	return m;
}

void fleet_metrics(struct fleet *f, struct admin_resp *r)
{
	pthread_mutex_lock(&f->lock);
	if (!f->enabled) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	admin_printf(r, "# HELP sluice_fleet_mode How this host sets its part of the fleet's limits.\n"
			"# TYPE sluice_fleet_mode gauge\n");
	for (unsigned m = FLEET_COORDINATED; m < FLEET_MODES; m++)
		admin_printf(r, "sluice_fleet_mode{mode=\"%s\"} %d\n", fleet_mode_name(m),
			     f->mode == m);
	admin_printf(r, "# HELP sluice_fleet_mode_changes_total Changes of mode, by the mode entered.\n"
			"# TYPE sluice_fleet_mode_changes_total counter\n");
	for (unsigned m = FLEET_COORDINATED; m < FLEET_MODES; m++)
		admin_printf(r, "sluice_fleet_mode_changes_total{mode=\"%s\"} %llu\n",
			     fleet_mode_name(m), (unsigned long long)atomic_load(&f->transitions[m]));
	admin_printf(r, "# HELP sluice_fleet_hosts Live hosts in the fleet at the last heartbeat.\n"
			"# TYPE sluice_fleet_hosts gauge\nsluice_fleet_hosts %u\n", f->nhosts);
	admin_printf(r, "# HELP sluice_fleet_drift 1 when not every host has the same pools and backends.\n"
			"# TYPE sluice_fleet_drift gauge\nsluice_fleet_drift %d\n", f->drift);
	admin_printf(r, "# HELP sluice_fleet_errors_total Redis errors and heartbeats that timed out.\n"
			"# TYPE sluice_fleet_errors_total counter\nsluice_fleet_errors_total %llu\n",
		     (unsigned long long)atomic_load(&f->errors));
	admin_printf(r, "# HELP sluice_fleet_heartbeats_total Heartbeats answered.\n"
			"# TYPE sluice_fleet_heartbeats_total counter\nsluice_fleet_heartbeats_total %llu\n",
		     (unsigned long long)atomic_load(&f->beats));
	admin_printf(r, "# HELP sluice_fleet_share This host's part of a backend's fleet-wide limit.\n"
			"# TYPE sluice_fleet_share gauge\n");
	for (unsigned p = 0; f->snap && p < f->snap->npools; p++) {
		const struct snap_pool *sp = &f->snap->pools[p];

		for (unsigned j = 0; j < sp->nbe; j++) {
			struct fbe *b = fbe_of(f, sp->be[j]->addr.text);
			const char *name = sp->cfg->servers[j].name;

			if (!b)
				continue;
			if (b->total_max)
				admin_printf(r, "sluice_fleet_share{pool=\"%s\",backend=\"%s\",limit=\"max_conns\"} %u\n",
					     sp->cfg->name, name, b->part_max);
			if (b->total_rate)
				admin_printf(r, "sluice_fleet_share{pool=\"%s\",backend=\"%s\",limit=\"rate\"} %u\n",
					     sp->cfg->name, name, b->part_rate);
		}
	}
	pthread_mutex_unlock(&f->lock);
}

void fleet_text(struct fleet *f, struct admin_resp *r)
{
	pthread_mutex_lock(&f->lock);
	if (!f->enabled) {
		admin_printf(r, "fleet: off (no fleet in the config): every limit is this host's own\n");
		pthread_mutex_unlock(&f->lock);
		return;
	}
	admin_printf(r, "fleet: %s, host %s, redis %s:%d, prefix %s, %u hosts%s\n",
		     fleet_mode_name(f->mode), f->host, f->redis_ip, f->redis_port, f->prefix,
		     f->mode == FLEET_COORDINATED ? f->nhosts : f->known_hosts,
		     f->drift ? ", CONFIG DRIFT" : "");
	admin_printf(r, "%-24s %10s %18s %s\n", "HOST", "AGE_MS", "DIGEST", "");
	for (unsigned h = 0; h < f->nhosts; h++)
		admin_printf(r, "%-24s %10u %018" PRIx64 " %s%s\n", f->hosts[h].name,
			     f->hosts[h].age_ms, f->hosts[h].digest,
			     strcmp(f->hosts[h].name, f->host) ? "" : "(this host)",
			     f->hosts[h].digest != f->digest ? " differs" : "");
	for (unsigned i = 0; i < f->nbes; i++) {
		struct fbe *b = &f->bes[i];

		admin_printf(r, "\nbackend %s: max_conns %u, rate %u (fleet totals; 0: none)\n",
			     b->be->addr.text, b->total_max, b->total_rate);
		admin_printf(r, "  %-22s %8s %8s %8s %9s %9s %9s %9s\n", "HOST", "IN_USE", "WAITING",
			     "ADMITS/S", "PART_MAX", "PART_RATE", "WANT_MAX", "WANT_RATE");
		for (unsigned h = 0; h < f->nhosts; h++) {
			struct fhost_be *hb = &b->hosts[h];

			if (!hb->has) {
				admin_printf(r, "  %-22s (not in its config)\n", f->hosts[h].name);
				continue;
			}
			admin_printf(r, "  %-22s %8u %8u %8u %9u %9u %9u %9u\n", f->hosts[h].name,
				     hb->sh.in_use, hb->sh.waiting, hb->sh.admits, hb->grant_max,
				     hb->grant_rate, hb->want_max, hb->want_rate);
		}
		if (f->mode != FLEET_COORDINATED)
			admin_printf(r, "  in force here (%s): max_conns %u, rate %u\n",
				     fleet_mode_name(f->mode), b->part_max, b->part_rate);
	}
	pthread_mutex_unlock(&f->lock);
}
