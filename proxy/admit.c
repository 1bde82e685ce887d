// SPDX-License-Identifier: MIT
/*
 * Admission: how an accepted client gets a backend, or a refusal that
 * spreads the herd instead of feeding it.
 *
 * The head. On a mode = "http" listener the client's request head is read
 * with MSG_PEEK: the bytes stay in the socket, cost no userspace buffer while
 * the client waits, and are forwarded unchanged once a backend is there. A
 * head that arrives in pieces raises SO_RCVLOWAT so the next poll fires only
 * when more has come. The parser (httphead.c) is strict and bounded; a bad
 * head gets 400, a slow one is closed after timeouts.head_ms.
 *
 * Budgets. A client may go to a backend when every budget in `budgets` has
 * something for it now; each says how long until it will, and why not. The
 * backends' kernel ledgers and buckets are the one budget so far (read from
 * the BPF maps, the kernel enforcing them at connect()); handshake budgets
 * join the list in front. The queue only ever looks at budgets through it.
 *
 * The queue. A client no budget can take now waits in its pool's queue: a
 * FIFO per worker, plus what the workers share in struct snap_pool — the
 * count for queue.max, a ticket per client in arrival order, and each
 * worker's oldest ticket. A worker lets its oldest client go only when it is
 * within FAIR_SLACK tickets of the oldest of all workers, so clients get in
 * in arrival order whichever worker accepted them. With queue.order =
 * "adaptive", a queue whose oldest client has waited QUEUE_CONGESTED_MS
 * (CoDel's interval: a queue that stood that long is not a burst passing)
 * lets its newest go first instead, each worker its own: in a standing
 * queue the newest have the most patience left, and the oldest are the
 * ones about to give up. Nothing polls: a worker
 * wakes when the next token is due (computed from the bucket), when a slot
 * frees on it, or when a slot might have freed elsewhere (BACKEND_FULL_RETRY_NS).
 * A waiting client costs its socket and its slot; a poll on its socket
 * notices when it leaves (FIN, RST), and it is dropped at once, so no
 * backend ever does work for a client that has given up.
 *
 * Refusals. A client that cannot be taken — queue full, waited too long, no
 * backend up — gets 503 with a Retry-After on an http listener, a FIN on a
 * tcp one. Retry-After follows a virtual schedule per pool: each refusal
 * takes the next free slot after everyone queued, one admission interval
 * apart, so clients refused in the same instant are told to come back at
 * times spread over the whole window, then each gets up to
 * retry_after.jitter more on top.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/admit.h"

#include "proxy/balance.h"
#include "proxy/clienthello.h"
#include "proxy/httphead.h"
#include "proxy/patience.h"
#include "proxy/conn.h"
#include "proxy/proxyproto.h"
#include "proxy/tlsrec.h"
#include "proxy/wake.h"

#define HEAD_MAX 8192
#define HEAD_MAX_HEADERS 100
#define FAIR_SLACK 8
#define QUEUE_CONGESTED_MS 100
#define RESPOND_MS 2000

static int connect_next(struct worker *w, struct conn *c);

/* ---- budgets -------------------------------------------------------------- */

struct budget {
	const char *name;
	/*
	 * ns until C could draw from this budget (0: now; UINT64_MAX: it
	 * cannot, nothing to wait for); *WHY collects BALANCE_FULL/RATE.
	 */
	uint64_t (*wait)(struct worker *w, struct conn *c, unsigned *why);
};

static uint64_t backend_budget(struct worker *w, struct conn *c, unsigned *why)
{
	uint64_t wait;
	unsigned limited = 0;

	if (balance_pick(c->pool, 0, w->id, w->now_ns, &wait, &limited) >= 0)
		return 0;
	*why |= limited;
	return wait;
}

/* Descriptors ran out a moment ago (w_nofd): wait before trying again. */
static uint64_t fd_budget(struct worker *w, struct conn *c, unsigned *why)
{
	return w->nofd_until > w->now ? (w->nofd_until - w->now) * 1000000 : 0;
}

static const struct budget budgets[] = {
	{ "descriptors", fd_budget },
	{ "backend", backend_budget },
};

static uint64_t budgets_wait(struct worker *w, struct conn *c, unsigned *why)
{
	uint64_t wait = 0;

	*why = 0;
	for (unsigned i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++) {
		uint64_t b = budgets[i].wait(w, c, why);

		if (b > wait)
			wait = b;
	}
	return wait;
}

/* ---- pool-wide state ---------------------------------------------------------- */

/* Admissions per second the pool can take now: the sum of its backends' rates. */
static double pool_rate(const struct snap_pool *p, uint64_t now_ms)
{
	double rate = 0;

	for (unsigned i = 0; i < p->nbe; i++) {
		const struct backend *be = p->be[i];
		volatile struct sl_backend *kb = be->kb;

		if (!backend_usable(be, now_ms))
			continue;
		if (!kb || !kb->bucket.interval_ns) {
			/* unlimited: the pace is whatever frees slots; assume brisk */
			rate += 100;
			continue;
		}
		rate += 1e9 / (double)kb->bucket.interval_ns;
	}
	return rate > 0.1 ? rate : 0.1;
}

static void publish_head(struct worker *w, struct snap_pool *p, const struct clist *q)
{
	atomic_store_explicit(&p->heads[w->id], q->head ? q->head->ticket : UINT64_MAX,
			      memory_order_release);
}

/* The oldest ticket waiting on another worker, and which worker holds it. */
static uint64_t others_oldest(const struct snap_pool *p, unsigned me, unsigned *who)
{
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < CFG_MAX_WORKERS; i++) {
		uint64_t t;

		if (i == me)
			continue;
		t = atomic_load_explicit(&p->heads[i], memory_order_acquire);
		if (t < min) {
			min = t;
			*who = i;
		}
	}
	return min;
}

/* How long to let another worker's older clients go first: about one token. */
static uint64_t fair_wait(const struct snap_pool *p)
{
	uint64_t wait = BACKEND_FULL_RETRY_NS;

	for (unsigned i = 0; i < p->nbe; i++) {
		volatile struct sl_backend *kb = p->be[i]->kb;

		if (kb && kb->bucket.interval_ns && kb->bucket.interval_ns < wait)
			wait = kb->bucket.interval_ns;
	}
	return wait < 1000000 ? 1000000 : wait;
}

static void waitq_arm(struct worker *w, uint64_t wait_ns)
{
	uint64_t when = w->now + (wait_ns + 999999) / 1000000;

	if (!timer_queued(&w->waitq_timer) || when < w->waitq_timer.when)
		timer_set(&w->timers, &w->waitq_timer, when);
}

static void wait_histogram(struct pool_stats *ps, uint64_t waited_ms)
{
	unsigned k = 0;

	/* buckets: <= 10 ms * 2^k for k = 0..14, then +Inf */
	while (k < 15 && waited_ms > (10ull << k))
		k++;
	stat_shared_inc(&ps->wait_hist[k]);
	atomic_fetch_add_explicit(&ps->wait_sum_us, waited_ms * 1000, memory_order_relaxed);
}

/* ---- polls on the client -------------------------------------------------------- */

/* Wake when more of the client's first bytes came (SO_RCVLOWAT says how many), or it left. */
static void poll_more(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = w_sqe(w);

	io_uring_prep_poll_add(sqe, c->fd[0], POLLIN | POLLRDHUP | POLLHUP | POLLERR);
	conn_op(c, sqe, UD_MORE);
}

/* Watch a client that waits (its bytes stay in the socket) for its departure. */
static void poll_gone(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->ops & (ud_conn_bit(UD_MORE) | ud_conn_bit(UD_GONE)))
		return; /* a poll in flight sees a departure too */
	sqe = w_sqe(w);
	io_uring_prep_poll_add(sqe, c->fd[0], POLLRDHUP | POLLHUP | POLLERR);
	conn_op(c, sqe, UD_GONE);
}


/* ---- what admission learns: set-ups and patience --------------------------------------- */

/*
 * A client of pool P that LEFT (or, if not, was still there) MS after it
 * arrived: one observation of its patience (proxy/patience.h).
 */
static void patience_note(struct snap_pool *p, int left, uint64_t ms)
{
	unsigned k = patience_bin(ms);

	stat_shared_inc32(left ? &p->stats->pat_left[k] : &p->stats->pat_stayed[k]);
}

static uint64_t since_arrival(const struct worker *w, const struct conn *c)
{
	return w->now > c->accepted_ms ? w->now - c->accepted_ms : 0;
}

void admit_setup_start(struct worker *w, struct conn *c)
{
	/* the connect began at attempt_ms: anchored to now_ns, exact on average */
	c->ticket = w->now_ns - (w->now - c->attempt_ms) * 1000000ull;
	c->flags2 |= CF2_SETUP;
}

void admit_setup_end(struct worker *w, struct conn *c, enum setup_end how)
{
	struct backend_wstats *bs;

	if (!(c->flags2 & CF2_SETUP) || !c->be)
		return;
	c->flags2 &= (uint8_t)~CF2_SETUP;
	bs = &c->be->ws[w->id];
	switch (how) {
	case SETUP_ANSWERED:
		stat_inc(&bs->answered);
		stat_inc32(&bs->setup_hist[backend_setup_bin(w->now_ns > c->ticket ?
								     w->now_ns - c->ticket : 0)]);
		patience_note(c->pool, 0, since_arrival(w, c));
		break;
	case SETUP_WASTED:
		stat_inc(&bs->wasted);
		patience_note(c->pool, 1, since_arrival(w, c));
		break;
	case SETUP_UNANSWERED:
		stat_inc(&bs->unanswered);
		break;
	}
}

/* The pool's learned patience in ms (0: none, or the pool's timeout is not auto). */
static uint32_t pool_patience(const struct snap_pool *p)
{
	if (!p->cfg->queue.timeout_auto)
		return 0;
	return atomic_load_explicit(&p->stats->patience_ms, memory_order_relaxed);
}

/*
 * How long C may wait for its backend, from its arrival, on a pool whose
 * patience was learned: long enough that the set-up it then needs is done
 * before 80 % of the patience is (the estimate is where a tenth of the
 * clients have gone), and at least half the patience.
 */
static uint64_t patience_limit_ms(const struct conn *c, uint32_t patience)
{
	uint32_t setup = atomic_load_explicit(&c->pool->stats->setup_ms, memory_order_relaxed);
	double limit = patience * 0.8 - setup;

	/* a set-up as long as the patience itself still lets the first half of it try */
	return limit > patience * 0.5 ? (uint64_t)limit : patience / 2;
}

/*
 * How long C stays in the queue: the limit above, except for one client in
 * PATIENCE_EXPLORE, which waits PATIENCE_EXPLORE_X times the patience (see
 * patience.h). An explorer that reaches the head past the limit is turned
 * away, not sent to a backend: whether it left before, or was still there,
 * is what it is for, and admitting it late would risk backend work.
 */
static uint64_t queue_limit_ms(const struct conn *c, uint32_t patience)
{
	if (c->serial % PATIENCE_EXPLORE == 0)
		return (uint64_t)(patience * PATIENCE_EXPLORE_X);
	return patience_limit_ms(c, patience);
}

/* ---- sluice's own answers ---------------------------------------------------------- */

static unsigned retry_after_s(struct worker *w, struct snap_pool *p)
{
	const struct cfg_pool *cfg = p->cfg;
	uint64_t now = w->now_ns, q = atomic_load_explicit(&p->queued, memory_order_relaxed);
	uint64_t step = (uint64_t)(1e9 / pool_rate(p, w->now)), old, base, next;
	double secs, u;

	/*
	 * The virtual schedule: this client's turn comes after everyone
	 * queued and after every client refused before it, one admission
	 * interval apart. A CAS, since every worker refuses into the same one.
	 */
	old = atomic_load_explicit(&p->retry_slot_ns, memory_order_relaxed);
	do {
		base = now + q * step;
		if (old > base)
			base = old;
		next = base + step;
	} while (!atomic_compare_exchange_weak_explicit(&p->retry_slot_ns, &old, next,
							memory_order_relaxed, memory_order_relaxed));
	secs = (double)(next - now) / 1e9;
	u = (double)(w_random(w) >> 11) / (double)(1ull << 53);
	secs += secs * (double)cfg->retry_after.jitter_permille / 1000.0 * u;
	if (secs < cfg->retry_after.min_s)
		secs = cfg->retry_after.min_s;
	if (secs > cfg->retry_after.max_s)
		secs = cfg->retry_after.max_s;
	return (unsigned)ceil(secs);
}

static void resp_send(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = w_sqe(w);

	io_uring_prep_send(sqe, c->fd[0], c->resp, c->resp_len, MSG_NOSIGNAL);
	conn_op(c, sqe, UD_RESP);
}

/* Read the head (or what was peeked of a bad one) out of the socket first. */
static void resp_consume(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = w_sqe(w);

	io_uring_prep_recv(sqe, c->fd[0], NULL, c->head_len < w->bufsize ? c->head_len : w->bufsize,
			   0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	conn_op(c, sqe, UD_CONSUME);
}

/*
 * Answer STATUS and close. The head is read out first: closing a socket
 * with unread data sends a reset, which could destroy the answer before the
 * client reads it.
 */
static int respond(struct worker *w, struct conn *c, int status, unsigned retry_after)
{
	static const char body503[] = "sluice: the service is busy; retry after the time given\n";
	static const char body400[] = "sluice: bad request head\n";
	char buf[512];
	int n;

	if (status == 503)
		n = snprintf(buf, sizeof(buf),
			     "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %u\r\n"
			     "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
			     "Connection: close\r\n\r\n%s",
			     retry_after, sizeof(body503) - 1, body503);
	else
		n = snprintf(buf, sizeof(buf),
			     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			     sizeof(body400) - 1, body400);
	if (c->flags2 & CF2_TLS0) {
		/* encrypted into the out buffer, then close_notify; closed once sent */
		if (tls_write(w, c, 0, buf, (size_t)n))
			return step_abort(0);
		tls_close_notify(w, c, 0);
		conn_to(c, CONN_RESPONDING);
		c->attempt_ms = w->now;
		return STEP_KICK;
	}
	c->resp = malloc((size_t)n + 1);
	if (!c->resp)
		return step_abort(0);
	memcpy(c->resp, buf, (size_t)n + 1);
	c->resp_len = (uint32_t)n;
	conn_to(c, CONN_RESPONDING);
	c->attempt_ms = w->now;
	if (c->head_len && !(c->flags & CF_CONSUMED))
		resp_consume(w, c);
	else
		resp_send(w, c);
	return STEP_GO;
}

/* C gets no backend: count why, and answer as its listener speaks. */
static int refuse(struct worker *w, struct conn *c, enum refusal why)
{
	struct snap_pool *p = c->pool;

	c->refusal = (uint8_t)why;
	stat_shared_inc(&p->stats->refused[why]);
	stat_inc(&w->stats.refused);
	if (why == REFUSE_CLIENT_GONE || why == REFUSE_HANDSHAKE || !(c->flags & CF_HTTP))
		return step_abort(0); /* tcp: a plain close, FIN */
	return respond(w, c, 503, retry_after_s(w, p));
}

/* ---- the queue ----------------------------------------------------------------------- */

static struct clist *queue_of(struct conn *c)
{
	return &c->gen->queues[c->pool->index];
}

/* Newest first? (queue.order = "adaptive", and Q's oldest has waited long.) */
static int queue_lifo(const struct worker *w, const struct snap_pool *p, const struct clist *q)
{
	return p->cfg->queue.order == CFG_QO_ADAPTIVE && q->head &&
	       w->now - q->head->attempt_ms >= QUEUE_CONGESTED_MS;
}

static void dequeue(struct worker *w, struct conn *c)
{
	struct clist *q = queue_of(c);

	clist_remove(q, c);
	c->flags &= ~CF_LISTED;
	c->gen->nwaiting--;
	w->nwaiting--;
	atomic_fetch_sub_explicit(&c->pool->queued, 1, memory_order_relaxed);
	publish_head(w, c->pool, q);
}

static void hsq_leave(struct worker *w, struct conn *c);

void admit_forget(struct worker *w, struct conn *c)
{
	if (c->state == CONN_WAITING && (c->flags & CF_LISTED))
		dequeue(w, c);
	else if (c->state == CONN_HSWAIT && (c->flags & CF_LISTED))
		hsq_leave(w, c);
}

/*
 * Every budget is spent for now: wait in the pool's queue, in arrival
 * order, for WAIT_NS (the next token) or a freed slot. WHY: what held it.
 */
static int enqueue(struct worker *w, struct conn *c, uint64_t wait_ns, unsigned why)
{
	struct snap_pool *p = c->pool;
	struct clist *q = queue_of(c);
	int again = c->flags & CF_WAITED;

	if (!again && atomic_fetch_add_explicit(&p->queued, 1, memory_order_relaxed) >=
			      p->cfg->queue.max) {
		atomic_fetch_sub_explicit(&p->queued, 1, memory_order_relaxed);
		/* queue.max = 0: no queueing, say what was lacking */
		return refuse(w, c, p->cfg->queue.max ? REFUSE_QUEUE_FULL :
				    why & BALANCE_FULL ? REFUSE_FULL : REFUSE_RATE);
	}
	if (again) {
		/* refused at the connect after all: first to go again, its place kept */
		atomic_fetch_add_explicit(&p->queued, 1, memory_order_relaxed);
		if (queue_lifo(w, p, q))
			clist_append(q, c);
		else
			clist_prepend(q, c);
	} else {
		c->ticket = atomic_fetch_add_explicit(&p->tickets, 1, memory_order_relaxed);
		c->attempt_ms = w->now;
		c->flags |= CF_WAITED;
		stat_shared_inc(&p->stats->queued_total);
		clist_append(q, c);
	}
	c->refusal = REFUSE_QUEUE_TIMEOUT;
	conn_to(c, CONN_WAITING);
	c->flags |= CF_LISTED;
	c->gen->nwaiting++;
	w->nwaiting++;
	publish_head(w, p, q);
	poll_gone(w, c);
	waitq_arm(w, wait_ns);
	return STEP_GO;
}

/* Let this worker's waiting clients of pool P go, as budgets and fairness allow. */
static uint64_t run_pool(struct worker *w, struct snap_pool *p, struct clist *q)
{
	struct conn *c;
	unsigned who = 0;
	uint64_t theirs;

	while (q->head) {
		int lifo = queue_lifo(w, p, q);
		unsigned why;
		uint64_t wait;
		int step;

		c = lifo ? q->tail : q->head;
		wait = budgets_wait(w, c, &why);

		if (wait == UINT64_MAX) {
			/* nothing left to wait for: every backend is down */
			dequeue(w, c);
			conn_defer(w, c, refuse(w, c, REFUSE_DOWN));
			continue;
		}
		if (wait)
			return wait;
		theirs = lifo ? UINT64_MAX : others_oldest(p, w->id, &who);
		if (theirs != UINT64_MAX && c->ticket > theirs + FAIR_SLACK) {
			/* older clients on another worker first: tell it they may go */
			wake_worker(w, who);
			return fair_wait(p);
		}
		dequeue(w, c);
		c->waited_ms = (uint32_t)(w->now - c->attempt_ms);
		wait_histogram(p->stats, c->waited_ms);
		if (!(c->flags2 & CF2_PINNED))
			c->tried = 0;
		conn_to(c, CONN_CONNECTING);
		step = connect_next(w, c);
		if (c->state == CONN_WAITING && !step)
			return 1000000; /* back in the queue at once: let the kernel's state settle */
		conn_defer(w, c, step);
	}
	return UINT64_MAX;
}

void admit_run(struct worker *w)
{
	uint64_t min_wait = UINT64_MAX;

	for (struct wgen *g = w->gen; g; g = g->next) {
		if (!g->nwaiting)
			continue;
		for (unsigned i = 0; i < g->snap->npools; i++) {
			if (g->queues[i].n) {
				uint64_t wait = run_pool(w, &g->snap->pools[i], &g->queues[i]);

				if (wait < min_wait)
					min_wait = wait;
			}
		}
	}
	if (min_wait != UINT64_MAX)
		waitq_arm(w, min_wait);
}

void admit_released(struct worker *w, struct snap_pool *p)
{
	struct clist *q;
	unsigned who = 0;
	uint64_t mine = UINT64_MAX, theirs;

	/*
	 * The slot is free once the close is submitted, at the end of this
	 * loop: whoever holds the pool's oldest waiter goes next — here, or
	 * woken on its own worker (a slot freed here may be its turn).
	 */
	if (p && w->gen) {
		for (struct wgen *g = w->gen; g; g = g->next) {
			if (p->index < g->snap->npools && &g->snap->pools[p->index] == p) {
				q = &g->queues[p->index];
				mine = q->head ? q->head->ticket : UINT64_MAX;
				break;
			}
		}
		theirs = others_oldest(p, w->id, &who);
		if (theirs < mine)
			wake_worker(w, who);
	}
	if (w->nwaiting)
		timer_set(&w->timers, &w->waitq_timer, w->now + 1);
}

/* ---- backend connect ------------------------------------------------------------------ */

/*
 * Find C a backend and connect to it, or put it in the queue, or refuse
 * it: what the budgets, its patience and its retries allow.
 */
static int connect_next(struct worker *w, struct conn *c)
{
	const struct sl_config *cfg = c->gen->snap->cfg;
	struct io_uring_sqe *sqe;
	struct backend *be;
	unsigned limited = 0;
	uint64_t wait;
	uint32_t patience, ports;
	unsigned slot;
	int idx, fd, one = 1;

	if (w->now - c->accepted_ms >= cfg->timeouts.backend_wait_ms)
		return refuse(w, c, c->refusal < REFUSE_COUNT ? c->refusal : REFUSE_DOWN);
	patience = pool_patience(c->pool);
	if (patience && since_arrival(w, c) > patience_limit_ms(c, patience)) {
		/* it would give up before its backend answered: tell it now, spare the backend */
		patience_note(c->pool, 0, since_arrival(w, c));
		return refuse(w, c, REFUSE_QUEUE_TIMEOUT);
	}
	idx = balance_pick(c->pool, c->tried, w->id, w->now_ns, &wait, &limited);
	if (idx < 0 && (c->flags2 & CF2_PINNED)) {
		/* a synthetic check: its backend or nothing */
		return limited ? enqueue(w, c, wait, limited) : refuse(w, c, REFUSE_DOWN);
	}
	if (idx < 0 && c->tried) {
		if (!limited) {
			/* all tried and retries left: go round again (down ones stay skipped) */
			c->tried = 0;
			idx = balance_pick(c->pool, 0, w->id, w->now_ns, &wait, &limited);
		} else if (balance_pick(c->pool, 0, w->id, w->now_ns, &wait, &limited) >= 0) {
			/*
			 * Refused by the kernel though its state looked fine a
			 * moment ago (another worker took the slot or token):
			 * pause briefly rather than spin on connects.
			 */
			wait = 1000000;
		}
	}
	if (idx < 0 && wait == UINT64_MAX && (limited & BALANCE_PORTS)) {
		log_ratelimited(&w->rl, LOG_LVL_WARN,
				"worker %u: pool %s: no source port left to any backend (%u ports per "
				"source address and backend: add addresses to the pool's source)",
				w->id, c->pool->cfg->name, backend_ports());
		return refuse(w, c, REFUSE_PORTS);
	}
	if (idx < 0)
		return wait != UINT64_MAX ? enqueue(w, c, wait, limited) : refuse(w, c, REFUSE_DOWN);
	be = c->pool->be[idx];
	c->tried |= balance_bit((unsigned)idx);
	c->tries++;
	slot = balance_source(c->pool, (unsigned)idx, &ports);
	fd = socket(be->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (w_nofd(w, errno, "backend socket")) {
			/*
			 * Not the backend's fault nor the client's: it waits
			 * (holding just its own descriptor) and tries again
			 * when the descriptor budget allows.
			 */
			c->tried &= ~balance_bit((unsigned)idx);
			c->tries--;
			return enqueue(w, c, fd_budget(w, c, NULL), 0);
		}
		log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: backend socket: %s", w->id,
				strerror(errno));
		return refuse(w, c, REFUSE_DOWN);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* a source of the pool's: its port is chosen at connect, per destination */
	if (slot && (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) ||
		     bind(fd, (const struct sockaddr *)&be->src[slot].addr, be->src[slot].len))) {
		log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: pool %s: bind to a source: %s",
				w->id, c->pool->cfg->name, strerror(errno));
		close(fd);
		return refuse(w, c, REFUSE_DOWN);
	}
	atomic_fetch_add_explicit(&be->src[slot].used, 1, memory_order_relaxed);
	c->src = (uint8_t)(slot + 1) & 7;
	c->fd[1] = fd;
	c->be = be;
	conn_to(c, CONN_CONNECTING);
	atomic_fetch_add_explicit(&be->active, 1, memory_order_relaxed);
	be->ws[w->id].pending++;
	sqe = w_sqe(w);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&be->addr.ss, be->addr.len);
	conn_op(c, sqe, UD_CONNECT);
	c->attempt_ms = w->now;
	return STEP_GO;
}

/*
 * The pool wants a PROXY protocol header: the first bytes on the new backend
 * connection, before any of the client's (and before a backend TLS
 * handshake). A socket that has just connected has an empty send buffer, so
 * one non-blocking send takes the whole header or the connection is broken.
 */
static int proxy_header(struct worker *w, struct conn *c)
{
	struct sockaddr_storage src, dst;
	socklen_t sl = sizeof(src), dl = sizeof(dst);
	uint8_t hdr[PP_MAX];
	size_t n;

	if (getpeername(c->fd[0], (struct sockaddr *)&src, &sl) ||
	    getsockname(c->fd[0], (struct sockaddr *)&dst, &dl))
		return -1; /* the client is gone already */
	n = proxyproto_build((enum pp_version)c->pool->cfg->proxy_protocol,
			     (struct sockaddr *)&src, (struct sockaddr *)&dst, hdr, sizeof(hdr));
	if (!n || send(c->fd[1], hdr, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n) {
		log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: backend %s: PROXY header not sent",
				w->id, c->be->addr.text);
		return -1;
	}
	return 0;
}

int admit_on_connect(struct worker *w, struct conn *c, int res)
{
	struct backend *be = c->be;

	if (res == 0) {
		backend_connect_ok(be, w->id);
		stat_shared_inc(&c->pool->stats->admitted_total);
		if (c->pool->cfg->proxy_protocol != CFG_PP_OFF && proxy_header(w, c))
			return step_abort(0);
		return STEP_OPEN;
	}
	/* nothing else is pending on this socket: close it right here */
	close(c->fd[1]);
	c->fd[1] = -1;
	if (c->src) {
		backend_src_release(be, c->src - 1u);
		/*
		 * No port left from that source to this backend, though the
		 * count said there were (other sockets use them): the source
		 * is skipped for it until one of its connections closes.
		 */
		if (res == -EADDRNOTAVAIL)
			atomic_store_explicit(&be->src[c->src - 1u].full, 1, memory_order_relaxed);
	}
	c->src = 0;
	c->be = NULL;
	atomic_fetch_sub_explicit(&be->active, 1, memory_order_relaxed);
	if (res == -EADDRNOTAVAIL) {
		c->tries--;
		log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: backend %s: no source port left "
				"(EADDRNOTAVAIL)", w->id, be->addr.text);
		return connect_next(w, c);
	}
	if (res == -SL_ERR_FULL || res == -SL_ERR_RATE) {
		/*
		 * The kernel held the backend to its limits: no fault of the
		 * backend's and no retry spent. Another backend, or wait.
		 */
		c->tries--;
		stat_inc(res == -SL_ERR_FULL ? &be->ws[w->id].refused_full
					     : &be->ws[w->id].refused_rate);
		return connect_next(w, c);
	}
	backend_connect_failed(be, w->id, w->now);
	log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: backend %s: connect: %s", w->id,
			be->addr.text, res == -ECANCELED ? "timed out" : strerror(-res));
	if (!(c->flags2 & CF2_PINNED) && c->tries <= c->pool->cfg->retries)
		return connect_next(w, c);
	return refuse(w, c, REFUSE_DOWN);
}

/* ---- TLS: the ClientHello, handshake budgets and queue ---------------------------------- */

static void hello_peek(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = w_sqe(w);
	unsigned len = w->bufsize < CH_MAX ? w->bufsize : CH_MAX;

	io_uring_prep_recv(sqe, c->fd[0], NULL, len, MSG_PEEK);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	conn_op(c, sqe, UD_PEEK);
}

static unsigned hs_kind_of(const struct conn *c)
{
	return c->flags2 & CF2_RESUMED ? HS_RESUMED : HS_FULL;
}

static struct clist *hsq_of(struct conn *c)
{
	return &c->gen->hsq[(size_t)(c->sl - c->gen->snap->listeners) * HS_KINDS + hs_kind_of(c)];
}

static void hs_charge(__u64 *tat, uint64_t now, uint64_t interval);

/*
 * The bucket of C's listener for handshakes of kind K: the one learned
 * (full_per_s or resumed_per_s = "auto", proxy/learn.c), or the snapshot's.
 */
static void hs_budget(const struct conn *c, unsigned k, uint64_t *interval, uint64_t *tau)
{
	uint64_t i = atomic_load_explicit(&c->lst->hs_auto_interval[k], memory_order_relaxed);

	if (i) {
		*interval = i;
		*tau = atomic_load_explicit(&c->lst->hs_auto_tau[k], memory_order_relaxed);
		return;
	}
	*interval = c->sl->hs_interval[k];
	*tau = c->sl->hs_tau[k];
}

/*
 * Count C's handshake once it is done (by what it turned out to be): 1 if
 * it is. Whatever comes with the client's Finished (its close_notify, a
 * FIN) is seen only after this, so a handshake done is never a failure.
 */
static int hs_done(struct worker *w, struct conn *c)
{
	int resumed = 0;

	if (c->flags2 & CF2_HS_DONE)
		return 1;
	if (!tls_handshake_done(w, c, 0, &resumed))
		return 0;
	c->flags2 |= CF2_HS_DONE;
	/* how long it took, for the budget it drew from (hs_begin put the start in ticket) */
	stat_shared_inc(&c->lst->hs_ended[hs_kind_of(c)]);
	stat_shared_inc32(&c->lst->hs_hist[hs_kind_of(c)][backend_setup_bin(
		w->now_ns > c->ticket ? w->now_ns - c->ticket : 0)]);
	stat_shared_inc(&c->lst->hs_done[resumed ? HS_RESUMED : HS_FULL]);
	if ((c->flags2 & CF2_RESUMED) && !resumed) {
		/* it drew a cheap token and cost a full handshake: charge that too */
		uint64_t interval, tau;

		stat_shared_inc(&c->lst->resume_misses);
		hs_budget(c, HS_FULL, &interval, &tau);
		hs_charge(&c->lst->hs_tat[HS_FULL], w->now_ns, interval);
	}
	return 1;
}

void admit_tls_failed(struct worker *w, struct conn *c, enum hs_fail why)
{
	if (c->state == CONN_HELLO || (c->state == CONN_TLS && !hs_done(w, c))) {
		stat_shared_inc(&c->lst->hs_failed[why]);
		/* in the middle of its handshake: crypto spent for nobody */
		if (c->state == CONN_TLS && why == HSF_CLOSED)
			stat_shared_inc(&c->lst->hs_left[hs_kind_of(c)]);
	}
}

/* Take a token from the listener's bucket for C's kind of handshake. */
static int hs_claim(struct worker *w, struct conn *c)
{
	unsigned k = hs_kind_of(c);
	uint64_t interval, tau;

	hs_budget(c, k, &interval, &tau);
	return sl_gcra_claim(&c->lst->hs_tat[k], w->now_ns, interval, tau);
}

/*
 * Would C's handshake, started now, end after its handshake_ms? (What a
 * handshake takes now is learned, proxy/learn.c.) Then it is better told
 * at once than given crypto it will not finish.
 */
static int hs_too_late(const struct worker *w, const struct conn *c)
{
	uint64_t deadline = c->accepted_ms + c->gen->snap->cfg->timeouts.handshake_ms;
	uint64_t expect = atomic_load_explicit(&c->lst->hs_expect_us[hs_kind_of(c)],
					       memory_order_relaxed) / 1000;

	return w->now + expect >= deadline;
}

/* A token is C's: the handshake starts (the hello is still in the socket). */
static int hs_begin(struct worker *w, struct conn *c)
{
	if (tls_start_server(w, c, c->sl->tls)) {
		log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: tls: out of memory", w->id);
		return step_abort(0);
	}
	conn_to(c, CONN_TLS);
	c->ticket = w->now_ns; /* the handshake's start, until hs_done (the queue needs it later) */
	stat_shared_inc(&c->lst->hs_begun[hs_kind_of(c)]);
	return STEP_KICK; /* receives start */
}

/* C's hello said what kind of handshake it wants: a token now, the queue, or out. */
static int hs_admit(struct worker *w, struct conn *c)
{
	unsigned k = hs_kind_of(c);
	struct clist *q;

	if (hs_claim(w, c))
		return hs_begin(w, c);
	if (atomic_fetch_add_explicit(&c->lst->hs_waiting[k], 1, memory_order_relaxed) >=
	    c->sl->cfg->tls.queue_max) {
		atomic_fetch_sub_explicit(&c->lst->hs_waiting[k], 1, memory_order_relaxed);
		stat_shared_inc(&c->lst->hs_refused[k]);
		return refuse(w, c, REFUSE_HANDSHAKE);
	}
	stat_shared_inc(&c->lst->hs_queued[k]);
	q = hsq_of(c);
	clist_append(q, c);
	conn_to(c, CONN_HSWAIT);
	c->flags |= CF_LISTED;
	c->attempt_ms = w->now;
	/* the hello waits in the socket: only a departure wakes the poll */
	poll_gone(w, c);
	if (q->head == c) {
		uint64_t interval, tau, wait;

		hs_budget(c, k, &interval, &tau);
		wait = sl_gcra_wait(c->lst->hs_tat[k], w->now_ns, interval, tau);
		uint64_t when = w->now + (wait + 999999) / 1000000;

		if (!timer_queued(&w->hsq_timer) || when < w->hsq_timer.when)
			timer_set(&w->timers, &w->hsq_timer, when);
	}
	return STEP_GO;
}

static void hsq_leave(struct worker *w, struct conn *c)
{
	(void)w;
	clist_remove(hsq_of(c), c);
	c->flags &= ~CF_LISTED;
	atomic_fetch_sub_explicit(&c->lst->hs_waiting[hs_kind_of(c)], 1, memory_order_relaxed);
}

void admit_hsq_run(struct worker *w)
{
	uint64_t min_wait = UINT64_MAX;

	for (struct wgen *g = w->gen; g; g = g->next) {
		for (size_t i = 0; i < (size_t)g->snap->nlisteners * HS_KINDS; i++) {
			struct clist *q = &g->hsq[i];
			struct conn *c;

			while ((c = q->head)) {
				unsigned k = hs_kind_of(c);
				uint64_t wait, interval, tau;

				if (hs_too_late(w, c)) {
					/* its time is up before a handshake could be done */
					hsq_leave(w, c);
					stat_shared_inc(&c->lst->hs_refused[k]);
					conn_defer(w, c, refuse(w, c, REFUSE_HANDSHAKE));
					continue;
				}
				if (hs_claim(w, c)) {
					hsq_leave(w, c);
					conn_defer(w, c, hs_begin(w, c));
					continue;
				}
				hs_budget(c, k, &interval, &tau);
				wait = sl_gcra_wait(c->lst->hs_tat[k], w->now_ns, interval, tau);
				if (wait < min_wait)
					min_wait = wait;
				break;
			}
		}
	}
	if (min_wait != UINT64_MAX)
		timer_set(&w->timers, &w->hsq_timer,
			  w->now + (min_wait ? (min_wait + 999999) / 1000000 : 1));
}

static int hello_parsed(struct worker *w, struct conn *c, const uint8_t *buf, int len)
{
	struct ch_info ci;
	enum ch_result r = clienthello_parse(buf, (size_t)len, &ci);
	int lowat = 1;

	switch (r) {
	case CH_OK:
		if (c->flags & CF_LOWAT) {
			setsockopt(c->fd[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
			c->flags &= ~CF_LOWAT;
		}
		if (clienthello_resumes(&ci))
			c->flags2 |= CF2_RESUMED;
		return hs_admit(w, c);
	case CH_NEED_MORE:
		if (c->flags2 & CF2_PEER_EOF)
			return step_hs_failed(HSF_CLOSED, 0);
		lowat = ci.need > (size_t)len && ci.need <= CH_MAX ? (int)ci.need : len + 1;
		setsockopt(c->fd[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
		c->flags |= CF_LOWAT;
		poll_more(w, c);
		return STEP_GO;
	default:
		log_ratelimited(&w->rl, LOG_LVL_INFO, "worker %u: %s on TLS listener %s", w->id,
				r == CH_NOT_TLS ? "not TLS" :
				r == CH_TOO_BIG ? "oversized ClientHello" : "malformed ClientHello",
				c->sl->cfg->name);
		return step_hs_failed(r == CH_NOT_TLS ? HSF_NOT_TLS : HSF_BAD_HELLO, 0);
	}
}

/* Force one token out of a bucket, even below empty (a resumption that turned full). */
static void hs_charge(__u64 *tat, uint64_t now, uint64_t interval)
{
	__u64 old = *(volatile __u64 *)tat;

	if (!interval)
		return;
	while (!__atomic_compare_exchange_n(tat, &old, (old > now ? old : now) + interval, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* The head of a TLS client, decrypted into half[0]: whole, short or bad. */
static int tls_head(struct worker *w, struct conn *c)
{
	struct half *hf = &c->half[0];
	struct httphead h;
	enum httphead_status st;
	size_t len = hf->count ? hf->len[hf->head] : 0;

	if (!len)
		return STEP_GO;
	st = httphead_parse(w_buf(w, hf->bid[hf->head]), len, HEAD_MAX, HEAD_MAX_HEADERS, &h);
	if (st == HTTPHEAD_NEED_MORE && hf->count == 1 && len < w->bufsize && len <= HEAD_MAX)
		return STEP_GO; /* more comes; the head stays where it is and goes on unchanged */
	if (st == HTTPHEAD_OK) {
		if (h.upgrade_websocket)
			c->flags |= CF_WS;
		conn_to(c, CONN_CONNECTING);
		return connect_next(w, c);
	}
	stat_inc(&w->stats.bad_heads);
	log_ratelimited(&w->rl, LOG_LVL_INFO, "worker %u: bad request head: %s", w->id,
			st == HTTPHEAD_NEED_MORE ? "too long" : h.reason ? h.reason : "?");
	c->refusal = END_BAD_HEAD;
	return respond(w, c, 400, 0);
}

int admit_tls_input(struct worker *w, struct conn *c)
{
	if (c->state == CONN_TLS) {
		if (!hs_done(w, c))
			return STEP_GO;
		c->attempt_ms = w->now;
		if (!(c->flags & CF_HTTP)) {
			conn_to(c, CONN_CONNECTING);
			return connect_next(w, c);
		}
		conn_to(c, CONN_HEAD);
	}
	return c->state == CONN_HEAD ? tls_head(w, c) : STEP_GO;
}

/* ---- deadlines ---------------------------------------------------------------------------- */

uint64_t admit_deadline(const struct conn *c)
{
	const struct sl_config *cfg = c->gen->snap->cfg;
	uint64_t cap = c->accepted_ms + cfg->timeouts.backend_wait_ms, t;
	uint32_t patience;

	switch (c->state) {
	case CONN_HELLO:
	case CONN_HSWAIT:
	case CONN_TLS:
		return c->accepted_ms + cfg->timeouts.handshake_ms;
	case CONN_HEAD:
		/* a TLS client's head time starts when its handshake is done */
		return (c->flags2 & CF2_TLS0 ? c->attempt_ms : c->accepted_ms) +
		       cfg->timeouts.head_ms;
	case CONN_CONNECTING:
		t = c->attempt_ms + cfg->timeouts.connect_ms;
		return t < cap ? t : cap;
	case CONN_WAITING:
		patience = pool_patience(c->pool);
		t = patience ? c->accepted_ms + queue_limit_ms(c, patience)
			     : c->attempt_ms + c->pool->cfg->queue.timeout_ms;
		return t < cap ? t : cap;
	case CONN_RESPONDING:
		return c->attempt_ms + RESPOND_MS;
	default:
		return UINT64_MAX;
	}
}

int admit_timer(struct worker *w, struct conn *c)
{
	switch (c->state) {
	case CONN_HELLO:
	case CONN_TLS:
		return step_hs_failed(HSF_TIMEOUT, 0);
	case CONN_HSWAIT:
		/* no token came in time: turned away like a full queue */
		hsq_leave(w, c);
		stat_shared_inc(&c->lst->hs_refused[hs_kind_of(c)]);
		return refuse(w, c, REFUSE_HANDSHAKE);
	case CONN_HEAD:
		stat_inc(&w->stats.head_timeouts);
		c->refusal = END_HEAD_TIMEOUT;
		return step_abort(0);
	case CONN_CONNECTING:
		/*
		 * The connect completes with -ECANCELED and is retried or
		 * failed there. Cancel by user_data, not by descriptor: the
		 * cancel is done at submission, but keying it to this
		 * connection's connect keeps it from ever touching a reused fd.
		 */
		conn_cancel(w, c, UD_CONNECT);
		return STEP_GO;
	case CONN_WAITING:
		/* still there when its time was up: it would have waited longer */
		patience_note(c->pool, 0, since_arrival(w, c));
		dequeue(w, c);
		return refuse(w, c, c->refusal);
	case CONN_RESPONDING:
		return step_abort(0);
	default:
		return STEP_GO;
	}
}

/* ---- the request head ------------------------------------------------------------------------- */

static void head_peek(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = w_sqe(w);
	unsigned len = w->bufsize < HEAD_MAX + 1 ? w->bufsize : HEAD_MAX + 1;

	io_uring_prep_recv(sqe, c->fd[0], NULL, len, MSG_PEEK);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	conn_op(c, sqe, UD_PEEK);
}

/*
 * A synthetic check of sluice's own, through this listener to one backend
 * (proxy/health.c)? Then every other backend counts as tried already.
 */
static void pin_synthetic(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct backend *be;
	uint16_t port;

	if (getpeername(c->fd[0], (struct sockaddr *)&ss, &len))
		return;
	port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
	be = backend_synth_lookup(port);
	for (unsigned i = 0; be && i < c->pool->nbe; i++) {
		if (c->pool->be[i] == be) {
			c->tried = ~balance_bit(i);
			c->flags2 |= CF2_PINNED;
			return;
		}
	}
}

int admit_start(struct worker *w, struct conn *c)
{
	c->refusal = END_NONE;
	if (c->pool->cfg->synthetic.enabled)
		pin_synthetic(c);
	if (c->sl->tls) {
		conn_to(c, CONN_HELLO);
		hello_peek(w, c);
		return STEP_GO;
	}
	if (c->flags & CF_HTTP) {
		conn_to(c, CONN_HEAD);
		head_peek(w, c);
		return STEP_GO;
	}
	conn_to(c, CONN_CONNECTING);
	return connect_next(w, c);
}

static int head_parsed(struct worker *w, struct conn *c, const char *buf, int len)
{
	struct httphead h;
	enum httphead_status st = httphead_parse(buf, (size_t)len, HEAD_MAX, HEAD_MAX_HEADERS, &h);
	int lowat = 1;

	switch (st) {
	case HTTPHEAD_OK:
		c->head_len = (uint16_t)h.head_len;
		if (h.upgrade_websocket)
			c->flags |= CF_WS;
		if (c->flags & CF_LOWAT) {
			setsockopt(c->fd[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
			c->flags &= ~CF_LOWAT;
		}
		conn_to(c, CONN_CONNECTING);
		return connect_next(w, c);
	case HTTPHEAD_NEED_MORE:
		if (c->flags2 & CF2_PEER_EOF) {
			/* it stopped sending half way through its head */
			c->refusal = END_BAD_HEAD;
			stat_inc(&w->stats.bad_heads);
			return step_abort(0);
		}
		/* wake when more than what is there has come, not before */
		lowat = len + 1;
		setsockopt(c->fd[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
		c->flags |= CF_LOWAT;
		poll_more(w, c);
		return STEP_GO;
	default:
		stat_inc(&w->stats.bad_heads);
		log_ratelimited(&w->rl, LOG_LVL_INFO, "worker %u: bad request head: %s", w->id,
				h.reason ? h.reason : "?");
		c->head_len = (uint16_t)len;
		c->refusal = END_BAD_HEAD;
		return respond(w, c, 400, 0);
	}
}

int admit_on_peek(struct worker *w, struct conn *c, int res, uint16_t bid)
{
	int step;

	if (res > 0) {
		if (c->state == CONN_HELLO)
			step = hello_parsed(w, c, (const uint8_t *)w_buf(w, bid), res);
		else
			step = head_parsed(w, c, w_buf(w, bid), res);
		w_buf_return(w, bid);
		return step;
	}
	if (res == -ENOBUFS) {
		/* no buffer to peek into: look again when one is back */
		c->flags |= CF_LISTED;
		clist_append(&w->starved, c);
		return STEP_GO;
	}
	/* closed or failed before the head was whole */
	return step_hs_failed(HSF_CLOSED, res < 0 ? 1u : 0u);
}

int admit_on_consume(struct worker *w, struct conn *c, int res, uint16_t bid)
{
	if (bid != NO_BID)
		w_buf_return(w, bid);
	c->flags |= CF_CONSUMED;
	if (res < 0)
		return step_abort(0);
	resp_send(w, c);
	return STEP_GO;
}

void admit_peek_resume(struct worker *w, struct conn *c)
{
	if (c->state == CONN_HELLO)
		hello_peek(w, c);
	else
		head_peek(w, c);
}

int admit_on_poll(struct worker *w, struct conn *c, int res)
{
	int gone = res > 0 && (res & (POLLRDHUP | POLLHUP | POLLERR));

	if (res == -ECANCELED)
		return STEP_GO;
	switch (c->state) {
	case CONN_HEAD:
		/* a TLS client's head is read through TLS: that read sees it leave */
		if (c->flags2 & CF2_TLS0)
			return STEP_GO;
		/* fall through */
	case CONN_HELLO:
		if (gone && !(res & POLLIN))
			return step_hs_failed(HSF_CLOSED, 0);
		/* after a FIN, one last look: what is there is all there will be */
		if (gone)
			c->flags2 |= CF2_PEER_EOF;
		admit_peek_resume(w, c);
		return STEP_GO;
	case CONN_HSWAIT:
		if (!gone) {
			poll_gone(w, c);
			return STEP_GO;
		}
		/* it gave up waiting for a handshake: no crypto was spent on it */
		patience_note(c->pool, 1, since_arrival(w, c));
		hsq_leave(w, c);
		stat_shared_inc(&c->lst->hs_failed[HSF_CLOSED]);
		return refuse(w, c, REFUSE_CLIENT_GONE);
	case CONN_WAITING:
	case CONN_CONNECTING:
		if (!gone) {
			poll_gone(w, c);
			return STEP_GO;
		}
		/* the client gave up: it leaves the queue, and no backend sees it */
		patience_note(c->pool, 1, since_arrival(w, c));
		if (c->state == CONN_WAITING)
			dequeue(w, c);
		return refuse(w, c, REFUSE_CLIENT_GONE);
	default:
		return STEP_GO;
	}
}
