// SPDX-License-Identifier: MIT
#include "proxy/health.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/agent.h"
#include "proxy/proxyproto.h"
#include "proxy/udata.h"
#include "userspace/log.h"

#define SLOW_START_FLOOR 0.05 /* a backend that just came up gets 5% of its limits */

enum probe_kind { PK_HEALTH, PK_AGENT, PK_SYNTH };
enum probe_state { PS_IDLE, PS_CONNECT, PS_SEND, PS_RECV };

struct probe {
	struct health *h;
	struct backend *be; /* a reference */
	enum probe_kind kind;
	struct cfg_addr addr; /* where the probe connects */
	char path[CFG_PATH_MAX]; /* PK_HEALTH: the GET, "" for a TCP check */
	uint32_t interval_ms, timeout_ms, rise, fall;
	int fd;
	int state;
	int seen; /* named by the snapshot in service */
	int dead; /* removed while an operation was in flight */
	uint64_t next_at;
	uint32_t ok_run, fail_run;
	size_t got;
	char buf[AGENT_LINE_MAX + 1];
	char req[PP_MAX + CFG_PATH_MAX + 160];
	enum cfg_proxy_protocol pp; /* PK_HEALTH: the pool's PROXY header goes first */
	char expect[CFG_PATH_MAX]; /* PK_SYNTH: what must come back */
	uint16_t port;             /* PK_SYNTH: our local port, registered */
	int last_ok;               /* PK_SYNTH: to log only changes */
	struct probe *next;
};

/* What health keeps per backend: its limits as configured and as in force. */
struct bstate {
	struct backend *be; /* a reference */
	uint32_t cfg_max, cfg_rate, cfg_burst, slow_s;
	int rate_auto, burst_set; /* the rate is learned (be->learned.rate); burst given */
	uint64_t up_since; /* ms; 0: no ramp */
	uint32_t agent_max, agent_rate; /* UINT32_MAX: the agent sets no cap */
	uint32_t cur_max, cur_rate, cur_burst;
	int applied;
	uint64_t last_connects, last_progress; /* starvation watch */
	int seen;
	struct bstate *next;
};

struct health {
	struct io_uring *ring;
	struct ebpf *ebpf;
	struct probe *probes;
	struct bstate *states;
	int synced;
	uint64_t rng;
	uint64_t ok, fail;
	int mark_warned; /* SO_MARK refused: said once */
};

static uint64_t rnd(struct health *h)
{
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 7;
	h->rng ^= h->rng << 17;
	return h->rng;
}

static struct io_uring_sqe *sqe_get(struct health *h)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(h->ring)))
		io_uring_submit(h->ring);
	return sqe;
}

/*
 * The first SQE of a linked pair (operation + its timeout): both must go in
 * the same submission, so make room for two first.
 */
static struct io_uring_sqe *sqe_linked(struct health *h)
{
	if (io_uring_sq_space_left(h->ring) < 2)
		io_uring_submit(h->ring);
	return sqe_get(h);
}

struct health *health_new(struct io_uring *ring, struct ebpf *e)
{
	struct health *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ring = ring;
	h->ebpf = e;
	h->rng = 0x2545f4914f6cdd1dull ^ (uint64_t)(uintptr_t)h;
	return h;
}

static void probe_free(struct probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	backend_put(p->be);
	free(p);
}

void health_free(struct health *h)
{
	if (!h)
		return;
	while (h->probes) {
		struct probe *p = h->probes;

		h->probes = p->next;
		probe_free(p);
	}
	while (h->states) {
		struct bstate *b = h->states;

		h->states = b->next;
		backend_put(b->be);
		free(b);
	}
	free(h);
}

/* ---- configuration ------------------------------------------------------- */

static struct bstate *bstate_for(struct health *h, struct backend *be, uint64_t now)
{
	struct bstate *b;

	for (b = h->states; b; b = b->next)
		if (b->be == be)
			return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->be = backend_get(&be->addr);
	b->agent_max = b->agent_rate = UINT32_MAX;
	b->last_progress = now;
	b->last_connects = backend_total(be, connects);
	atomic_store(&be->ov_rate, UINT32_MAX);
	atomic_store(&be->ov_max, UINT32_MAX);
	/* added by a reload: it ramps up; at start-up backends are taken as warm */
	b->up_since = h->synced ? now : 0;
	b->next = h->states;
	h->states = b;
	return b;
}

static struct probe *probe_for(struct health *h, struct backend *be, enum probe_kind kind,
			       uint64_t now)
{
	struct probe *p;

	for (p = h->probes; p; p = p->next)
		if (p->be == be && p->kind == kind && !p->dead)
			return p;
	p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->h = h;
	p->be = backend_get(&be->addr);
	p->kind = kind;
	p->fd = -1;
	p->next_at = now; /* spread below, once the interval is known */
	p->next = h->probes;
	h->probes = p;
	return p;
}

/*
 * Where a synthetic check of POOL connects: the first listener that serves
 * it (a wildcard address is reached on loopback). -ENOENT when none does.
 */
static int synth_target(const struct snapshot *s, const struct snap_pool *pool,
			struct cfg_addr *to)
{
	for (unsigned i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i].pool != pool)
			continue;
		*to = s->listeners[i].cfg->addr;
		if (to->ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&to->ss;

			if (in->sin_addr.s_addr == htonl(INADDR_ANY))
				in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&to->ss;

			if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
				in6->sin6_addr = in6addr_loopback;
		}
		return 0;
	}
	return -ENOENT;
}

void health_sync(struct health *h, struct snapshot *s, uint64_t now)
{
	struct probe *p, **pp;
	struct bstate *b, **bp;

	for (p = h->probes; p; p = p->next)
		p->seen = 0;
	for (b = h->states; b; b = b->next)
		b->seen = 0;
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *pool = &s->pools[i];
		const struct cfg_pool *pc = pool->cfg;

		for (unsigned j = 0; j < pool->nbe; j++) {
			const struct cfg_server *sv = &pc->servers[j];
			struct backend *be = pool->be[j];

			b = bstate_for(h, be, now);
			if (b) {
				b->seen = 1;
				b->cfg_max = sv->max_conns;
				b->cfg_rate = sv->rate;
				b->cfg_burst = sv->burst;
				b->rate_auto = sv->rate_auto;
				b->burst_set = sv->burst_set;
				b->slow_s = pc->slow_start_s > b->slow_s || !b->applied
						    ? pc->slow_start_s
						    : b->slow_s;
				b->applied = 0;
				/* a reload ends an operator's run-time overrides */
				atomic_store(&be->ov_rate, UINT32_MAX);
				atomic_store(&be->ov_max, UINT32_MAX);
			}
			if (pc->health.enabled && (p = probe_for(h, be, PK_HEALTH, now))) {
				int fresh = !p->interval_ms;

				p->seen = 1;
				p->addr = be->addr;
				snprintf(p->path, sizeof(p->path), "%s", pc->health.http_path);
				p->pp = pc->proxy_protocol;
				p->interval_ms = pc->health.interval_ms;
				p->timeout_ms = pc->health.timeout_ms;
				p->rise = pc->health.rise;
				p->fall = pc->health.fall;
				if (fresh)
					p->next_at = now + rnd(h) % p->interval_ms;
				atomic_store(&be->checked, 1);
				atomic_store(&be->fall, pc->health.fall);
			}
			if (pc->synthetic.enabled && (p = probe_for(h, be, PK_SYNTH, now))) {
				int fresh = !p->interval_ms;

				p->seen = 1;
				if (synth_target(s, pool, &p->addr))
					p->seen = 0; /* no listener serves the pool */
				snprintf(p->req, sizeof(p->req), "%s", pc->synthetic.send);
				snprintf(p->expect, sizeof(p->expect), "%s", pc->synthetic.expect);
				p->interval_ms = pc->synthetic.interval_ms;
				p->timeout_ms = pc->synthetic.timeout_ms;
				if (fresh) {
					p->next_at = now + rnd(h) % p->interval_ms;
					p->last_ok = 1;
				}
			}
			if (sv->agent.enabled && (p = probe_for(h, be, PK_AGENT, now))) {
				int fresh = !p->interval_ms;

				p->seen = 1;
				p->addr = be->addr;
				if (p->addr.ss.ss_family == AF_INET)
					((struct sockaddr_in *)&p->addr.ss)->sin_port =
						htons((uint16_t)sv->agent.port);
				else
					((struct sockaddr_in6 *)&p->addr.ss)->sin6_port =
						htons((uint16_t)sv->agent.port);
				p->interval_ms = sv->agent.interval_ms;
				p->timeout_ms = sv->agent.interval_ms / 2;
				if (fresh)
					p->next_at = now + rnd(h) % p->interval_ms;
			}
		}
	}
	/* no longer named: probes go (once idle), backends forget their checks */
	for (pp = &h->probes; (p = *pp);) {
		if (p->seen || p->dead) {
			pp = &p->next;
			continue;
		}
		if (p->kind == PK_HEALTH) {
			atomic_store(&p->be->checked, 0);
			atomic_store(&p->be->hc_down, 0);
		} else {
			atomic_store(&p->be->agent_down, 0);
			atomic_store(&p->be->drained, 0);
		}
		if (p->state != PS_IDLE) {
			p->dead = 1; /* freed when its operation completes */
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		probe_free(p);
	}
	for (bp = &h->states; (b = *bp);) {
		if (b->seen) {
			bp = &b->next;
			continue;
		}
		*bp = b->next;
		backend_put(b->be);
		free(b);
	}
	h->synced = 1;
}

/* ---- limits in force --------------------------------------------------------- */

static uint32_t scaled(uint32_t v, double f)
{
	double x = (double)v * f;

	return v == 0 ? 0 : x < 1 ? 1 : (uint32_t)x;
}

static uint32_t capped(uint32_t v, uint32_t cap)
{
	if (cap == UINT32_MAX)
		return v;
	/* 0 means "no limit" in the kernel: an agent's cap of 0 is "nothing new" */
	if (cap == 0)
		return 1;
	return v == 0 || cap < v ? cap : v;
}

static void apply_limits(struct health *h, struct bstate *b, uint64_t now)
{
	double f = 1.0;
	uint32_t max, rate, burst, ov, cfg_burst;

	if (b->up_since && b->slow_s) {
		double t = (double)(now - b->up_since) / (1000.0 * b->slow_s);

		if (t >= 1.0)
			b->up_since = 0; /* ramp done */
		else
			f = t < SLOW_START_FLOOR ? SLOW_START_FLOOR : t;
	}
	max = b->cfg_max;
	rate = b->cfg_rate;
	cfg_burst = b->cfg_burst;
	if (b->rate_auto && (ov = atomic_load(&b->be->learned.rate))) {
		rate = ov;
		if (!b->burst_set)
			cfg_burst = rate / 10 ? rate / 10 : 1;
	}
	/* in a fleet, the configured values are totals: this host has its part */
	if ((ov = atomic_load(&b->be->fleet_max)) != UINT32_MAX)
		max = ov;
	if ((ov = atomic_load(&b->be->fleet_rate)) != UINT32_MAX) {
		rate = ov;
		cfg_burst = atomic_load(&b->be->fleet_burst);
	}
	ov = atomic_load(&b->be->ov_max);
	if (ov != UINT32_MAX)
		max = ov;
	ov = atomic_load(&b->be->ov_rate);
	if (ov != UINT32_MAX)
		rate = ov;
	max = capped(scaled(max, f), b->agent_max);
	burst = scaled(rate && cfg_burst > rate ? rate : cfg_burst, f);
	rate = capped(scaled(rate, f), b->agent_rate);
	if (rate && burst > rate)
		burst = rate;
	if (!burst)
		burst = 1;
	if (b->applied && max == b->cur_max && rate == b->cur_rate && burst == b->cur_burst)
		return;
	if (ebpf_backend_limits(h->ebpf, &b->be->addr, max, rate, burst) == 0) {
		b->cur_max = max;
		b->cur_rate = rate;
		b->cur_burst = burst;
		b->applied = 1;
	}
}

/* ---- probes ---------------------------------------------------------------------- */

static void op_timeout(struct health *h, struct probe *p)
{
	struct io_uring_sqe *sqe = sqe_get(h);
	struct __kernel_timespec ts = {
		.tv_sec = p->timeout_ms / 1000,
		.tv_nsec = (long long)(p->timeout_ms % 1000) * 1000000,
	};

	/* the timespec is copied at submission (liburing prep + submit below) */
	io_uring_prep_link_timeout(sqe, &ts, 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	io_uring_submit(h->ring);
}

/*
 * A synthetic check goes through sluice like a client, so the worker that
 * accepts it must know which backend it is for: bind first, register the
 * local port, then connect (proxy/admit.c pins the connection by it).
 */
static int synth_bind(struct probe *p)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = p->addr.ss.ss_family;
	if (bind(p->fd, (struct sockaddr *)&ss, p->addr.len) ||
	    getsockname(p->fd, (struct sockaddr *)&ss, &len))
		return -errno;
	p->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return backend_synth_register(p->port, p->be);
}

static void probe_start(struct health *h, struct probe *p)
{
	static const unsigned mark = SL_MARK_CHECK;
	struct io_uring_sqe *sqe;

	p->fd = socket(p->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		log_warn("health: %s: socket: %s", p->addr.text, strerror(errno));
		p->next_at += p->interval_ms;
		return;
	}
	if (p->kind == PK_SYNTH) {
		if (synth_bind(p)) {
			close(p->fd);
			p->fd = -1;
			p->next_at += p->interval_ms;
			return;
		}
	} else {
		/* past the backend gate: a check is not a client */
		if (setsockopt(p->fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) &&
		    !h->mark_warned) {
			/* SO_MARK needs CAP_NET_ADMIN: see proxy/privs.h */
			log_warn("health: SO_MARK: %s: checks count against the backends' limits",
				 strerror(errno));
			h->mark_warned = 1;
		}
	}
	p->got = 0;
	p->state = PS_CONNECT;
	sqe = sqe_linked(h);
	io_uring_prep_connect(sqe, p->fd, (const struct sockaddr *)&p->addr.ss, p->addr.len);
	io_uring_sqe_set_data64(sqe, ud_pack(p, UD_PROBE_CONNECT));
	sqe->flags |= IOSQE_IO_LINK;
	op_timeout(h, p);
}

static void probe_recv(struct health *h, struct probe *p)
{
	struct io_uring_sqe *sqe = sqe_linked(h);

	p->state = PS_RECV;
	io_uring_prep_recv(sqe, p->fd, p->buf + p->got, sizeof(p->buf) - 1 - p->got, 0);
	io_uring_sqe_set_data64(sqe, ud_pack(p, UD_PROBE_RECV));
	sqe->flags |= IOSQE_IO_LINK;
	op_timeout(h, p);
}

/*
 * A health check of a pool that speaks PROXY protocol to its backends
 * starts with a header too, naming the check's own connection (as the
 * protocol's authors suggest for checks). 0 when there is none to send.
 */
static size_t probe_proxy_header(struct probe *p)
{
	struct sockaddr_storage self, peer;
	socklen_t sl = sizeof(self), pl = sizeof(peer);

	if (p->kind != PK_HEALTH || p->pp == CFG_PP_OFF ||
	    getsockname(p->fd, (struct sockaddr *)&self, &sl) ||
	    getpeername(p->fd, (struct sockaddr *)&peer, &pl))
		return 0;
	return proxyproto_build((enum pp_version)p->pp, (struct sockaddr *)&self,
				(struct sockaddr *)&peer, (uint8_t *)p->req, PP_MAX);
}

static void probe_send(struct health *h, struct probe *p)
{
	struct io_uring_sqe *sqe = sqe_linked(h);
	size_t hdr = p->kind == PK_SYNTH ? 0 : probe_proxy_header(p);
	int n = p->kind == PK_SYNTH
			? (int)strlen(p->req)
			: (int)hdr + snprintf(p->req + hdr, sizeof(p->req) - hdr,
					      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
					      "sluice-health\r\nConnection: close\r\n\r\n",
					      p->path, p->addr.text);

	p->state = PS_SEND;
	io_uring_prep_send(sqe, p->fd, p->req, (size_t)n, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_pack(p, UD_PROBE_SEND));
	sqe->flags |= IOSQE_IO_LINK;
	op_timeout(h, p);
}

static void health_result(struct health *h, struct probe *p, int ok, const char *why,
			  uint64_t now)
{
	struct backend *be = p->be;

	atomic_store(&be->hc_last_ms, now);
	atomic_store(&be->hc_last_ok, ok);
	if (ok) {
		h->ok++;
		p->fail_run = 0;
		p->ok_run++;
		if (atomic_load(&be->hc_down) && p->ok_run >= p->rise) {
			struct bstate *b = bstate_for(h, be, now);

			atomic_store(&be->fails, 0);
			atomic_store(&be->down_until_ms, 0);
			atomic_store(&be->hc_down, 0);
			if (b)
				b->up_since = now; /* slow start */
			log_info("health: backend %s up (%u checks passed)", be->addr.text,
				 p->ok_run);
		}
		return;
	}
	h->fail++;
	p->ok_run = 0;
	p->fail_run++;
	if (!atomic_load(&be->hc_down) && p->fail_run >= p->fall) {
		atomic_store(&be->hc_down, 1);
		log_warn("health: backend %s down (%u checks failed: %s)", be->addr.text,
			 p->fail_run, why);
	}
}

static void agent_result(struct health *h, struct probe *p, uint64_t now)
{
	struct agent_reply r;
	struct bstate *b = bstate_for(h, p->be, now);
	struct backend *be = p->be;

	if (!b || agent_parse(p->buf, p->got, &r) || !r.has)
		return;
	if (r.has & AGENT_HAS_HEALTH) {
		int down = r.health != AGENT_UP;

		if (atomic_exchange(&be->agent_down, down) != down) {
			log_info("agent: backend %s says %s", be->addr.text, down ? "down" : "up");
			if (!down)
				b->up_since = now;
		}
	}
	if (r.has & AGENT_HAS_ADMIN) {
		int drained = r.admin != AGENT_READY;

		if (atomic_exchange(&be->drained, drained) != drained)
			log_info("agent: backend %s says %s", be->addr.text,
				 drained ? "drain" : "ready");
	}
	if (r.has & AGENT_HAS_MAXCONN)
		b->agent_max = r.maxconn;
	if (r.has & AGENT_HAS_RATE)
		b->agent_rate = r.rate;
}

static void synth_result(struct health *h, struct probe *p, int ok, const char *why)
{
	atomic_fetch_add(ok ? &p->be->synth_ok : &p->be->synth_fail, 1);
	if (ok != p->last_ok)
		log_warn("synthetic: through %s to backend %s: %s", p->addr.text, p->be->addr.text,
			 ok ? "passes again" : why);
	p->last_ok = ok;
}

static void probe_done(struct health *h, struct probe *p, int ok, const char *why, uint64_t now)
{
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->port) {
		backend_synth_unregister(p->port);
		p->port = 0;
	}
	p->state = PS_IDLE;
	if (p->dead) {
		struct probe **pp;

		for (pp = &h->probes; *pp; pp = &(*pp)->next) {
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		}
		probe_free(p);
		return;
	}
	if (p->kind == PK_HEALTH)
		health_result(h, p, ok, why, now);
	else if (p->kind == PK_SYNTH)
		synth_result(h, p, ok, why);
	else if (ok)
		agent_result(h, p, now);
	/* the next one jittered by up to 10%, so checks of many backends spread out */
	p->next_at = now + p->interval_ms - p->interval_ms / 10 +
		     rnd(h) % (p->interval_ms / 5 + 1);
}

/* An HTTP status line with 2xx or 3xx? */
static int status_ok(const char *buf, size_t len)
{
	return len >= 12 && memcmp(buf, "HTTP/1.", 7) == 0 && buf[8] == ' ' &&
	       (buf[9] == '2' || buf[9] == '3');
}

void health_on_cqe(struct health *h, void *ptr, int op, int res, uint64_t now)
{
	struct probe *p = ptr;

	if (p->dead && res >= 0 && p->state != PS_IDLE) {
		probe_done(h, p, 0, "removed", now);
		return;
	}
	switch (op) {
	case UD_PROBE_CONNECT:
		if (res < 0) {
			probe_done(h, p, 0, res == -ECANCELED ? "timed out" : strerror(-res), now);
		} else if (p->kind == PK_AGENT) {
			probe_recv(h, p);
		} else if (p->kind == PK_SYNTH || p->path[0]) {
			probe_send(h, p);
		} else {
			probe_done(h, p, 1, NULL, now);
		}
		return;
	case UD_PROBE_SEND:
		if (res < 0)
			probe_done(h, p, 0, "send failed", now);
		else
			probe_recv(h, p);
		return;
	case UD_PROBE_RECV:
		if (res > 0) {
			p->got += (size_t)res;
			p->buf[p->got] = 0;
			if (p->kind == PK_SYNTH) {
				if (memmem(p->buf, p->got, p->expect, strlen(p->expect))) {
					probe_done(h, p, 1, NULL, now);
					return;
				}
				if (p->got < sizeof(p->buf) - 1) {
					probe_recv(h, p);
					return;
				}
			} else if (!memchr(p->buf, '\n', p->got) && p->got < sizeof(p->buf) - 1) {
				probe_recv(h, p);
				return;
			}
		}
		if (p->kind == PK_SYNTH)
			probe_done(h, p, 0,
				   res == -ECANCELED ? "no reply in time" :
				   p->got ? "unexpected reply" : "closed without a reply", now);
		else if (p->kind == PK_AGENT)
			probe_done(h, p, p->got > 0, "no reply", now);
		else
			probe_done(h, p, status_ok(p->buf, p->got),
				   p->got ? "bad status" : res == -ECANCELED ? "timed out" : "no reply",
				   now);
		return;
	}
}

void health_tick(struct health *h, uint64_t now)
{
	for (struct probe *p = h->probes; p; p = p->next)
		if (!p->dead && p->state == PS_IDLE && p->next_at <= now)
			probe_start(h, p);
	if (h->ebpf)
		for (struct bstate *b = h->states; b; b = b->next)
			apply_limits(h, b, now);
}

static struct bstate *bstate_find(struct health *h, const struct backend *be)
{
	for (struct bstate *b = h->states; b; b = b->next)
		if (b->be == be)
			return b;
	return NULL;
}

void health_watch(struct health *h, struct snapshot *s, uint64_t now)
{
	for (struct bstate *b = h->states; b; b = b->next) {
		uint64_t c = backend_total(b->be, connects);

		if (c != b->last_connects) {
			b->last_connects = c;
			b->last_progress = now;
		}
	}
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];
		uint64_t window = (uint64_t)p->cfg->starved_after_s * 1000, peers = 0;

		for (unsigned j = 0; j < p->nbe; j++) {
			struct bstate *b = bstate_find(h, p->be[j]);

			if (b && b->last_progress > peers)
				peers = b->last_progress;
		}
		for (unsigned j = 0; j < p->nbe; j++) {
			struct bstate *b = bstate_find(h, p->be[j]);
			int starved = window && b && now - b->last_progress > window &&
				      now - peers <= window;

			if (!b)
				continue;
			if (atomic_exchange(&p->be[j]->starved, starved) != starved && starved)
				log_warn("watch: backend %s (pool %s) got no new connection for %u s "
					 "while its peers did", p->be[j]->addr.text, p->cfg->name,
					 p->cfg->starved_after_s);
		}
	}
}

void health_counts(const struct health *h, uint64_t *ok, uint64_t *fail)
{
	*ok = h ? h->ok : 0;
	*fail = h ? h->fail : 0;
}
