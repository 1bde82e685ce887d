// SPDX-License-Identifier: MIT
/*
 * A connection's life, in one place: its slot, its state, its completions,
 * its deadline, its end.
 *
 * States. A client accepted on a listener starts in admission (admit.c):
 * CONN_HELLO and CONN_HSWAIT/CONN_TLS for a TLS listener, CONN_HEAD for an
 * http one, then CONN_CONNECTING, perhaps CONN_WAITING in its pool's queue,
 * CONN_OPEN once its backend is connected (relay.c and tls.c move the
 * bytes), CONN_RESPONDING while sluice's own answer goes out, CONN_CLOSING
 * until nothing of it is in flight, then CONN_FREE. conn_moves[] below is
 * every move there is; conn_to() holds each one to it.
 *
 * Completions. Every submission is marked in c->ops (conn_op) and
 * conn_complete unmarks it when its completion comes, returns the buffer a
 * receive took when nobody will read it, and drops completions of a
 * connection that is closing; the handlers below it see only completions
 * that mean something. A slot and its descriptors are released only when
 * nothing is in flight, so no completion can ever find its connection
 * reused. Aborting cancels whatever is still pending, each operation by its
 * own user_data: a cost that does not grow with the number of other
 * requests on the ring (thousands of waiting clients' polls).
 *
 * Steps. Handlers return what they ask (enum step); conn_act does it: open,
 * close, abort, a TLS connection's next move, a Close frame. Afterwards the
 * deadline timer is re-armed if what it depends on changed (deadline_key).
 */
#include "proxy/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/admit.h"
#include "proxy/backend.h"
#include "proxy/relay.h"
#include "proxy/tls.h"
#include "proxy/tlsrec.h"

#define M(s) (1u << (s))
const uint16_t conn_moves[CONN_CLOSING + 1] = {
	[CONN_FREE] = M(CONN_HELLO) | M(CONN_HEAD) | M(CONN_CONNECTING),
	[CONN_HELLO] = M(CONN_HSWAIT) | M(CONN_TLS) | M(CONN_CLOSING),
	[CONN_HSWAIT] = M(CONN_TLS) | M(CONN_CLOSING),
	[CONN_TLS] = M(CONN_HEAD) | M(CONN_CONNECTING) | M(CONN_CLOSING),
	[CONN_HEAD] = M(CONN_CONNECTING) | M(CONN_RESPONDING) | M(CONN_CLOSING),
	[CONN_CONNECTING] = M(CONN_CONNECTING) | M(CONN_WAITING) | M(CONN_OPEN) |
			    M(CONN_RESPONDING) | M(CONN_CLOSING),
	[CONN_WAITING] = M(CONN_CONNECTING) | M(CONN_RESPONDING) | M(CONN_CLOSING),
	[CONN_OPEN] = M(CONN_RESPONDING) | M(CONN_CLOSING),
	[CONN_RESPONDING] = M(CONN_CLOSING),
	[CONN_CLOSING] = M(CONN_FREE),
};
#undef M

/* ---- slots ---------------------------------------------------------------------- */

static struct conn *conn_alloc(struct worker *w)
{
	struct conn *c = w->free_conns;
	uint32_t slot;

	if (!c) {
		struct conn_chunk *ch = aligned_alloc(64, sizeof(*ch));

		if (!ch)
			return NULL;
		ch->next = w->chunks;
		w->chunks = ch;
		/* pushed in reverse so slots are handed out in address order */
		for (int i = CHUNK_CONNS - 1; i >= 0; i--) {
			ch->conns[i].state = CONN_FREE;
			ch->conns[i].slot = w->nslots + (uint32_t)i;
			ch->conns[i].next = w->free_conns;
			w->free_conns = &ch->conns[i];
		}
		c = w->free_conns;
		w->nslots += CHUNK_CONNS;
	}
	w->free_conns = c->next;
	slot = c->slot;
	memset(c, 0, sizeof(*c));
	c->slot = slot;
	timer_node_init(&c->timer, TK_CONN);
	c->fd[0] = c->fd[1] = -1;
	c->serial = ++w->serial;
	wsframe_init(&c->ws);
	w->nconns++;
	return c;
}

/* Off whatever list C is on: a wait queue (waiting) or the starved list. */
static void conn_unlist(struct worker *w, struct conn *c)
{
	if (!(c->flags & CF_LISTED))
		return;
	if (c->state == CONN_WAITING || c->state == CONN_HSWAIT) {
		admit_forget(w, c);
		return;
	}
	clist_remove(&w->starved, c);
	c->flags &= ~CF_LISTED;
}

void gen_release(struct worker *w, struct wgen *g)
{
	struct wgen **pp;

	if (g == w->gen || g->nconns)
		return;
	for (pp = &w->gen; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	snapshot_put(g->snap);
	free(g->queues);
	free(g->hsq);
	free(g);
}

/* ---- the access log ----------------------------------------------------------- */

static const char *end_name(const struct conn *c)
{
	static const char *const refused[REFUSE_COUNT] = {
		"refused:full", "refused:rate", "refused:queue_full", "refused:queue_timeout",
		"refused:down", "client_gone", "refused:handshake", "refused:ports",
	};
	static const char *const ends[] = {
		"unknown", "ok", "reset", "idle_timeout", "drained", "grace", "bad_head",
		"head_timeout", "send_stall",
	};

	if (c->refusal < REFUSE_COUNT)
		return refused[c->refusal];
	if ((size_t)(c->refusal - END_NONE) < sizeof(ends) / sizeof(ends[0]))
		return ends[c->refusal - END_NONE];
	return "unknown";
}

/* With an access log: remember the client's address of a connection just accepted. */
static void peer_remember(struct worker *w, const struct conn *c)
{
	socklen_t len = sizeof(union peer_addr);

	if (c->slot >= w->npeers) {
		union peer_addr *n = realloc(w->peers, w->nslots * sizeof(*n));

		if (!n)
			return; /* the line says client=- */
		memset(n + w->npeers, 0, (w->nslots - w->npeers) * sizeof(*n));
		w->peers = n;
		w->npeers = w->nslots;
	}
	if (getpeername(c->fd[0], (struct sockaddr *)&w->peers[c->slot], &len))
		w->peers[c->slot].family = 0;
}

/* One line per connection: who, where to, how much, how long, how it ended. */
static void access_line(struct worker *w, const struct conn *c)
{
	const union peer_addr *pa = c->slot < w->npeers ? &w->peers[c->slot] : NULL;
	char ip[INET6_ADDRSTRLEN], client[INET6_ADDRSTRLEN + 10] = "-";

	if (pa && pa->family == AF_INET && inet_ntop(AF_INET, &pa->in.sin_addr, ip, sizeof(ip)))
		snprintf(client, sizeof(client), "%s:%u", ip, ntohs(pa->in.sin_port));
	else if (pa && pa->family == AF_INET6 &&
		 inet_ntop(AF_INET6, &pa->in6.sin6_addr, ip, sizeof(ip)))
		snprintf(client, sizeof(client), "[%s]:%u", ip, ntohs(pa->in6.sin6_port));
	log_access("client=%s listener=%s pool=%s backend=%s bytes_to_backend=%llu "
		   "bytes_to_client=%llu duration_ms=%llu wait_ms=%u end=%s", client,
		   c->lst ? c->lst->name : "?", c->pool ? c->pool->cfg->name : "?",
		   c->be ? c->be->addr.text : "-", (unsigned long long)c->bytes[0],
		   (unsigned long long)c->bytes[1], (unsigned long long)(w->now - c->accepted_ms),
		   c->waited_ms, end_name(c));
}

/* ---- the end -------------------------------------------------------------------- */

static void conn_free(struct worker *w, struct conn *c)
{
	/* never answered: wasted if the client had finished (it left), else no verdict */
	if ((c->flags2 & CF2_SETUP) && (c->half[0].flags & HALF_EOF))
		admit_setup_end(w, c, SETUP_WASTED);
	if (log_access_enabled())
		access_line(w, c);
	if (c->flags2 & (CF2_TLS0 | CF2_TLS1))
		tls_free(w, c);
	for (int h = 0; h < 2; h++) {
		struct half *hf = &c->half[h];

		for (; hf->count; hf->count--, hf->head = (hf->head + 1) % HALF_QMAX)
			w_buf_return(w, hf->bid[hf->head]);
		if (hf->flags & HALF_SPILL)
			half_unspill(w, c, (unsigned)h);
	}
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] >= 0) {
			struct io_uring_sqe *sqe = w_sqe(w);

			io_uring_prep_close(sqe, c->fd[i]);
			io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		}
	}
	if (c->be) {
		if (c->src)
			backend_src_release(c->be, c->src - 1u);
		atomic_fetch_sub_explicit(&c->be->active, 1, memory_order_relaxed);
		/* its kernel slot frees with the close: let a waiting client try */
		admit_released(w, c->pool);
	}
	timer_cancel(&w->timers, &c->timer);
	conn_unlist(w, c);
	free(c->resp);
	c->gen->nconns--;
	gen_release(w, c->gen);
	stat_dec(&w->stats.active);
	atomic_fetch_sub_explicit(&c->lst->active, 1, memory_order_relaxed);
	conn_to(c, CONN_FREE);
	c->next = w->free_conns;
	w->free_conns = c;
	w->nconns--;
}

static void conn_maybe_free(struct worker *w, struct conn *c)
{
	if (!c->ops)
		conn_free(w, c);
}

/*
 * Tear a connection down. RST_MASK bit i: close fd[i] with a reset
 * (SO_LINGER 0) rather than a FIN, so a reset on one side reaches the other.
 */
void conn_abort(struct worker *w, struct conn *c, unsigned rst_mask)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	if (c->state == CONN_CLOSING)
		return;
	conn_unlist(w, c);
	conn_to(c, CONN_CLOSING);
	timer_cancel(&w->timers, &c->timer);
	if (rst_mask) {
		stat_inc(&w->stats.resets);
		if (c->refusal == END_NONE || c->refusal == REFUSE_COUNT)
			c->refusal = END_RESET;
	}
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] < 0)
			continue;
		if (rst_mask & (1u << i))
			setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	}
	conn_cancel_all(w, c);
	conn_maybe_free(w, c);
}

/* Both directions ended with a FIN: close both sockets. */
static void conn_close_clean(struct worker *w, struct conn *c)
{
	c->refusal = END_OK;
	conn_to(c, CONN_CLOSING);
	timer_cancel(&w->timers, &c->timer);
	conn_maybe_free(w, c);
}

/* ---- the deadline ------------------------------------------------------------- */

/* When half H's sink will have taken nothing for send_stall_ms (UINT64_MAX: not stalled). */
static uint64_t half_stall_deadline(const struct worker *w, const struct conn *c, unsigned h)
{
	uint64_t since;

	if (!(c->half[h].flags & HALF_SPILL))
		return UINT64_MAX;
	since = c->flags2 & CF2_TLS(h ^ 1) ? tls_stall_since((struct worker *)w, c, h ^ 1)
					   : half_spill_of(w, c, h)->since;
	return since + c->gen->snap->cfg->timeouts.send_stall_ms;
}

static uint64_t conn_deadline(const struct worker *w, const struct conn *c)
{
	uint64_t idle, stall;

	if (c->state != CONN_OPEN)
		return admit_deadline(c);
	idle = c->active_ms + (uint64_t)c->gen->snap->cfg->timeouts.idle_s * 1000;
	if ((c->flags & CF_DRAIN) && c->attempt_ms + DRAIN_WS_MS < idle)
		idle = c->attempt_ms + DRAIN_WS_MS; /* no boundary came in time */
	for (unsigned h = 0; h < 2; h++)
		if ((stall = half_stall_deadline(w, c, h)) < idle)
			idle = stall;
	return idle;
}

/*
 * What can bring C's deadline nearer: its state, a drain, a stalled sink.
 * Activity only moves it later, and a timer that fires early finds that
 * out (conn_timer): deadlines are lazy.
 */
static unsigned deadline_key(const struct conn *c)
{
	return c->state | (c->flags & CF_DRAIN) << 8 | (c->half[0].flags & HALF_SPILL) << 16 |
	       (c->half[1].flags & HALF_SPILL) << 24;
}

static void conn_timer_arm(struct worker *w, struct conn *c)
{
	if (timer_set(&w->timers, &c->timer, conn_deadline(w, c)))
		conn_abort(w, c, 0);
}

/* ---- steps --------------------------------------------------------------------- */

/*
 * Tell a drained WebSocket client that the service restarts (Close 1012)
 * rather than dropping it, so it reconnects as a planned event. Forwarding
 * stops: what is in flight is cancelled first (cancels are done at
 * submission, in order, so the Close frame's send is not among them), and
 * the connection closes once the frame is sent.
 */
static int ws_close(struct worker *w, struct conn *c)
{
	uint8_t frame[2 + 2 + 123];
	size_t len = wsframe_close(frame, 1012, "service restart");
	struct io_uring_sqe *sqe;

	if (!(c->flags2 & CF2_TLS0)) {
		c->resp = malloc(len);
		if (!c->resp)
			return step_abort(0);
		memcpy(c->resp, frame, len);
		c->resp_len = (uint32_t)len;
	} else if (tls_write(w, c, 0, frame, len)) {
		return step_abort(0);
	}
	conn_cancel_all(w, c);
	conn_to(c, CONN_RESPONDING);
	c->attempt_ms = w->now;
	stat_inc(&w->stats.ws_closes);
	if (c->flags2 & CF2_TLS0) {
		tls_close_notify(w, c, 0);
		tls_flush(w, c, 0);
		return STEP_GO;
	}
	sqe = w_sqe(w);
	io_uring_prep_send(sqe, c->fd[0], c->resp, c->resp_len, MSG_NOSIGNAL);
	conn_op(c, sqe, UD_RESP);
	return STEP_GO;
}

/* The backend is connected: start moving bytes. */
static int conn_open(struct worker *w, struct conn *c)
{
	conn_to(c, CONN_OPEN);
	c->active_ms = w->now;
	admit_setup_start(w, c);
	/*
	 * A poll that watched for the client leaving while it waited stays
	 * armed: it fires when the client closes and is ignored then, or is
	 * cancelled with the rest if sluiced closes first. Cancelling it here
	 * would cost a look-up among every request pending on the ring's
	 * hash bucket, for each client admitted.
	 */
	if (c->pool->tls_ctx) {
		int ret = tls_start_client(w, c, c->pool->tls_ctx, c->pool->cfg,
					   (const struct sockaddr *)&c->be->addr.ss);

		if (ret) {
			log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: backend %s: tls: %s",
					w->id, c->be->addr.text, strerror(-ret));
			return step_abort(0);
		}
	}
	if (c->flags2 & (CF2_TLS0 | CF2_TLS1))
		return STEP_KICK; /* a client's first bytes may be decrypted already; a backend handshake starts */
	half_recv(w, c, 0);
	half_recv(w, c, 1);
	return STEP_GO;
}

/*
 * Everything a TLS connection can do now: decrypt what waits, let
 * admission see the handshake and head, move both halves, receive again.
 */
static int tls_go(struct worker *w, struct conn *c)
{
	int step;

	if ((step = tls_decrypt(w, c)))
		return step;
	if (c->state == CONN_TLS || (c->state == CONN_HEAD && (c->flags2 & CF2_TLS0))) {
		/* the handshake may be done, the head may be whole */
		tls_flush(w, c, 0);
		if ((step = admit_tls_input(w, c)) || c->state == CONN_RESPONDING)
			return step;
	}
	if (c->state == CONN_RESPONDING) {
		tls_flush(w, c, 0);
		return STEP_GO;
	}
	if ((step = tls_move(w, c)))
		return step;
	if (c->state == CONN_OPEN && (c->flags & CF_DRAIN) && ws_ready(w, c))
		return STEP_WS_CLOSE;
	for (unsigned h = 0; h < 2; h++)
		half_resume(w, c, h);
	return STEP_GO;
}

/* Do what STEP asks of C, and whatever that asks in turn. */
static void conn_act(struct worker *w, struct conn *c, int step)
{
	for (;;) {
		switch (step) {
		case STEP_GO:
			return;
		case STEP_KICK:
			step = tls_go(w, c);
			break;
		case STEP_OPEN:
			step = conn_open(w, c);
			break;
		case STEP_WS_CLOSE:
			step = ws_close(w, c);
			break;
		case STEP_CLOSE:
			conn_close_clean(w, c);
			return;
		default: {
			unsigned hsf = (unsigned)step >> 2 & 7;

			if (hsf)
				admit_tls_failed(w, c, (enum hs_fail)(hsf - 1));
			conn_abort(w, c, (unsigned)step & 3);
			return;
		}
		}
	}
}

/*
 * Act on STEP, then re-arm C's timer if what its deadline depends on
 * changed from KEY, or if it is not armed and a deadline lies ahead (a
 * timer that fired and found nothing to end yet).
 */
static void conn_step(struct worker *w, struct conn *c, int step, unsigned key)
{
	conn_act(w, c, step);
	if (conn_gone(c))
		return;
	if (deadline_key(c) != key ||
	    (!timer_queued(&c->timer) && conn_deadline(w, c) > w->now))
		conn_timer_arm(w, c);
}

/* Act on what a bulk run of admission decided for each connection (conn_defer). */
static void conn_settle(struct worker *w)
{
	struct conn *c;

	while ((c = w->settle.head)) {
		int step = c->step;

		clist_remove(&w->settle, c);
		c->step = 0;
		conn_step(w, c, step, ~0u); /* its state changed: its deadline too */
	}
}

void conn_queue_run(struct worker *w)
{
	admit_run(w);
	conn_settle(w);
}

void conn_hsq_run(struct worker *w)
{
	admit_hsq_run(w);
	conn_settle(w);
}

/* ---- completions ------------------------------------------------------------------ */

/* May a receive on half H that completed now be read, in C's state? */
static int conn_reads(const struct conn *c, unsigned h)
{
	return c->state == CONN_OPEN ||
	       ((c->flags2 & (CF2_TLS0 | CF2_TLS1)) &&
		(half_may_recv(c, h) || c->state == CONN_CONNECTING || c->state == CONN_WAITING));
}

/* A receive on half H: the backend's first byte, or the end of a set-up it never answered. */
static void setup_seen(struct worker *w, struct conn *c, unsigned h, int res)
{
	if (!(c->flags2 & CF2_SETUP) || res == -ENOBUFS)
		return;
	if (h == 1)
		admit_setup_end(w, c, res > 0 ? SETUP_ANSWERED
				: c->half[0].flags & HALF_EOF ? SETUP_WASTED
							       : SETUP_UNANSWERED);
	else if (res < 0)
		admit_setup_end(w, c, SETUP_WASTED);
}

/* One completion of a live connection: which module's it is, in C's state. */
static int conn_event(struct worker *w, struct conn *c, enum ud_op op, int res, uint16_t bid)
{
	unsigned h;

	switch (op) {
	case UD_CONNECT:
		return c->state == CONN_CONNECTING ? admit_on_connect(w, c, res) : STEP_GO;
	case UD_PEEK:
		if (c->state == CONN_HELLO || c->state == CONN_HEAD)
			return admit_on_peek(w, c, res, bid);
		break;
	case UD_CONSUME:
		if (c->state == CONN_RESPONDING)
			return admit_on_consume(w, c, res, bid);
		break;
	case UD_MORE:
	case UD_GONE:
		return admit_on_poll(w, c, res);
	case UD_RESP:
		/* sent or not, the answer is all there is: close (a FIN) */
		free(c->resp);
		c->resp = NULL;
		return step_abort(0);
	case UD_RECV:
	case UD_RECV_1:
		h = ud_half(op, UD_RECV);
		c->half[h].flags &= ~HALF_RECV;
		if (!conn_reads(c, h))
			break; /* answering (a Close frame): the bytes go nowhere */
		setup_seen(w, c, h, res);
		if (c->flags2 & CF2_TLS(h))
			return tls_on_recv(w, c, h, res, bid);
		return relay_on_recv(w, c, h, res, bid);
	case UD_SEND:
	case UD_SEND_1:
		h = ud_half(op, UD_SEND);
		c->half[h].flags &= ~HALF_SEND;
		/* answering: only a TLS client's answer goes on (a cancelled forward is done with) */
		if (c->state != CONN_OPEN &&
		    !(h == 1 && (c->flags2 & CF2_TLS0) &&
		      (c->state != CONN_RESPONDING || res != -ECANCELED)))
			return STEP_GO;
		if (c->flags2 & CF2_TLS(h ^ 1))
			return tls_on_send(w, c, h, res);
		return relay_on_send(w, c, h, res);
	case UD_HUP:
	case UD_HUP_1:
		return relay_on_hup(w, c, ud_half(op, UD_HUP), res);
	default:
		return STEP_GO;
	}
	if (bid != NO_BID)
		w_buf_return(w, bid);
	return STEP_GO;
}

void conn_complete(struct worker *w, struct conn *c, enum ud_op op, struct io_uring_cqe *cqe)
{
	uint16_t bid = NO_BID;
	unsigned key;

	/* the operation is done with: the one place it is uncounted */
	c->ops &= (uint16_t)~ud_conn_bit(op);
	if (op == UD_CONNECT)
		c->be->ws[w->id].pending--;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		w->bufs_out++;
		bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (cqe->res <= 0 || conn_gone(c)) {
			w_buf_return(w, bid);
			bid = NO_BID;
		}
	}
	if (conn_gone(c)) {
		conn_maybe_free(w, c);
		return;
	}
	key = deadline_key(c);
	conn_step(w, c, conn_event(w, c, op, cqe->res, bid), key);
}

void conn_timer(struct worker *w, struct conn *c)
{
	uint64_t deadline = conn_deadline(w, c);
	unsigned key = deadline_key(c);
	int step = step_abort(0);

	if (deadline > w->now) {
		/* activity moved it: lazy deadlines are checked only when due */
		conn_timer_arm(w, c);
		return;
	}
	if (c->state != CONN_OPEN) {
		conn_step(w, c, admit_timer(w, c), key);
		return;
	}
	for (unsigned h = 0; h < 2; h++) {
		if (half_stall_deadline(w, c, h) <= w->now) {
			/* a reset, so the kernel frees what the sink never took */
			stat_inc(&w->stats.send_stalls);
			c->refusal = END_SEND_STALL;
			conn_abort(w, c, 1u << (h ^ 1));
			return;
		}
	}
	if (!(c->flags & CF_DRAIN)) {
		stat_inc(&w->stats.idle_timeouts);
		c->refusal = END_IDLE;
	}
	conn_act(w, c, step);
}

/* ---- from the worker ------------------------------------------------------------ */

/*
 * How long ago the client connected, as far as its patience goes: the time
 * it spent in the kernel's accept queue, from TCP_INFO (since the handshake
 * completed, or since its first bytes). Under load that queue holds clients
 * for a good part of a second, and a pool that learns patience (queue
 * timeout_ms = "auto") must count it, or it sends clients to backends when
 * their time is already up. 0 elsewhere: a getsockopt per client saved.
 */
static uint64_t arrival_lag_ms(const struct worker *w, const struct snap_listener *sl, int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	uint32_t lag;

	if (!sl->pool->cfg->queue.timeout_auto ||
	    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || len < sizeof(ti))
		return 0;
	lag = ti.tcpi_last_ack_recv > ti.tcpi_last_data_recv ? ti.tcpi_last_ack_recv
							     : ti.tcpi_last_data_recv;
	return lag < w->now && lag < 60000 ? lag : 0;
}

void conn_start(struct worker *w, struct snap_listener *sl, int fd)
{
	struct conn *c = conn_alloc(w);

	if (!c) {
		close(fd);
		return;
	}
	stat_inc(&w->stats.accepted);
	stat_inc(&w->stats.active);
	c->fd[0] = fd;
	if (log_access_enabled())
		peer_remember(w, c);
	else if (c->slot < w->npeers)
		w->peers[c->slot].family = 0; /* the access log may be opened by a reload */
	c->accepted_ms = w->now - arrival_lag_ms(w, sl, fd);
	c->attempt_ms = w->now;
	c->gen = w->gen;
	c->gen->nconns++;
	c->pool = sl->pool;
	c->sl = sl;
	c->lst = sl->stats;
	stat_shared_inc(&c->lst->accepted);
	stat_shared_inc(&c->lst->active);
	if (sl->cfg->mode == CFG_MODE_HTTP)
		c->flags |= CF_HTTP;
	conn_step(w, c, admit_start(w, c), ~0u);
}

void conn_drain(struct worker *w, struct conn *c)
{
	unsigned key = deadline_key(c);

	if (c->state != CONN_OPEN || (c->flags & CF_DRAIN))
		return;
	stat_inc(&w->stats.drained);
	c->refusal = END_DRAIN;
	if (!(c->flags & CF_WS)) {
		conn_abort(w, c, 0);
		return;
	}
	/* a Close frame at the next message boundary, within DRAIN_WS_MS */
	c->flags |= CF_DRAIN;
	c->attempt_ms = w->now;
	conn_step(w, c, ws_ready(w, c) ? STEP_WS_CLOSE : STEP_GO, key);
}

/*
 * Buffers came back: let starved connections go on, oldest first, each when
 * the kind of buffer it waits for is there (a receive needs the ring, TLS
 * plaintext and ciphertext the userspace pool) — and only as many receives
 * as there are ring buffers free: a starved half has data waiting, so a
 * receive re-armed without a buffer for it fails with -ENOBUFS at once, and
 * re-arming them all whenever one buffer is back is a busy loop of failed
 * receives. Each one listed now gets one turn at most (it may list itself
 * again if it is still short); the next loop resumes the next ones.
 */
void conn_starved_run(struct worker *w)
{
	uint32_t n = w->starved.n, avail = w->nbufs - w->bufs_out;

	while (n-- && w->starved.head && (avail || w->nxfree)) {
		struct conn *c = w->starved.head;
		unsigned halves = !!(c->half[0].flags & HALF_STARVED) +
				  !!(c->half[1].flags & HALF_STARVED);
		unsigned need = halves ? halves : 1; /* a peek takes one */
		int ring = halves || !(c->flags2 & CF2_XSTARVED);

		clist_remove(&w->starved, c);
		if (!((ring && avail) || ((c->flags2 & CF2_XSTARVED) && w->nxfree))) {
			clist_append(&w->starved, c); /* what it needs is still out */
			continue;
		}
		c->flags &= ~CF_LISTED;
		c->flags2 &= (uint8_t)~CF2_XSTARVED;
		if (ring)
			avail -= avail < need ? avail : need;
		for (unsigned h = 0; h < 2; h++)
			c->half[h].flags &= ~HALF_STARVED;
		if (c->flags2 & (CF2_TLS0 | CF2_TLS1)) {
			conn_step(w, c, STEP_KICK, deadline_key(c));
			continue;
		}
		if (c->state == CONN_HEAD || c->state == CONN_HELLO) {
			admit_peek_resume(w, c);
			continue;
		}
		for (unsigned h = 0; h < 2; h++)
			half_resume(w, c, h);
	}
}
