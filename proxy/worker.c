// SPDX-License-Identifier: MIT
/*
 * The data path. A connection pairs a client socket (fd[0]) with a backend
 * socket (fd[1]) and moves bytes in two independent halves: half 0 receives
 * from the client and sends to the backend, half 1 the other way round.
 *
 * Buffers. Receives use the worker's provided-buffer ring (IOSQE_BUFFER_SELECT),
 * so the kernel picks a buffer only when data arrives: an idle connection has
 * a receive armed but holds no buffer. A received buffer belongs to its half
 * until the send of its last byte completes; then it goes back to the ring.
 *
 * Backpressure. A plain half receives one buffer, sends it and receives
 * again only once the send is done; every send is first tried without
 * waiting (MSG_DONTWAIT). What the sink does not take at once is moved out
 * of the shared buffer into the connection's own spill (at most one
 * receive's worth), the buffer goes back to the ring, and the rest is sent
 * from the spill, waiting, while the half receives nothing: the data waits
 * in the kernel's socket buffers, where TCP flow control pushes back on the
 * sender, and a peer that stops reading holds no buffer anyone else needs.
 * While a half's sink is stalled a poll watches its source for a reset, and
 * a sink that takes no byte for timeouts.send_stall_ms ends the connection.
 *
 * Half-close. EOF on a half's source, once its queue is sent, becomes
 * shutdown(SHUT_WR) on its sink; the connection is freed when both halves
 * are done. An error on either socket (a reset among them) aborts both, and
 * the other side is closed with SO_LINGER 0 so it sees a reset too.
 *
 * Lifetime. Every submission is marked in c->ops (conn_op) and dispatch
 * unmarks it when its completion comes; a connection's slot and descriptors
 * are released only when nothing is in flight, so no completion can ever
 * find its connection reused. Aborting cancels whatever is still pending,
 * each operation by its own user_data: a cost that does not grow with the
 * number of other requests on the ring (thousands of waiting clients' polls).
 *
 * Admission. The kernel (bpf/sluice.bpf.c) refuses a backend connect that
 * would exceed the backend's max_conns or rate, with SL_ERR_FULL or
 * SL_ERR_RATE. That is not a failure of the backend: the client tries the
 * pool's other backends, and when every one is full or out of tokens it
 * waits in the worker's FIFO (costing its socket and this slot, nothing
 * else) until a token is due or a slot frees, at most backend_wait_ms.
 * Balancing reads the same shared kernel state first, so connects the
 * kernel would refuse are mostly not even tried.
 */
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <semaphore.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "proxy/tls.h"
#include "proxy/worker_int.h"

#define RING_ENTRIES 4096
#define CHUNK_CONNS 1024
#define ACCEPT_BACKOFF_MS 100

struct conn_chunk {
	struct conn_chunk *next;
	struct conn conns[CHUNK_CONNS];
};

/* Every worker's ring, for MSG_WAKE between workers; -1 until it is up. */
static _Atomic int ring_fds[CFG_MAX_WORKERS] = { [0 ... CFG_MAX_WORKERS - 1] = -1 };

void worker_wake(struct worker *w, unsigned id)
{
	struct io_uring_sqe *sqe;
	int fd = atomic_load_explicit(&ring_fds[id], memory_order_acquire);

	if (id == w->id || fd < 0)
		return;
	sqe = w_sqe(w);
	io_uring_prep_msg_ring(sqe, fd, MSG_WAKE, ud_pack(NULL, UD_MSG), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void clock_update(struct worker *w)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	w->now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	w->now = w->now_ns / 1000000;
}

/* ---- provided buffers ------------------------------------------------- */

static int bufs_init(struct worker *w, uint32_t count, uint32_t size)
{
	struct io_uring_buf_reg reg = { 0 };
	size_t ring_bytes = count * sizeof(struct io_uring_buf);
	int ret;

	w->nbufs = count;
	w->bufsize = size;
	w->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->br == MAP_FAILED)
		return -errno;
	/* pages are touched as buffers are first used, not all up front */
	w->bufs = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->bufs == MAP_FAILED)
		return -errno;
	reg.ring_addr = (uint64_t)(uintptr_t)w->br;
	reg.ring_entries = count;
	reg.bgid = BUF_GROUP;
	ret = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (ret)
		return ret;
	io_uring_buf_ring_init(w->br);
	for (uint32_t i = 0; i < count; i++)
		io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * size, size, (unsigned short)i,
				      io_uring_buf_ring_mask(count), (int)i);
	io_uring_buf_ring_advance(w->br, (int)count);
	/* the userspace pool (TLS): as many again, bids after the ring's */
	w->nx = count < NO_BID - count ? count : NO_BID - count;
	w->xbufs = mmap(NULL, (size_t)w->nx * size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	w->xfree = malloc(w->nx * sizeof(*w->xfree));
	if (w->xbufs == MAP_FAILED || !w->xfree)
		return -ENOMEM;
	/* handed out lowest first, so the pages in use stay few */
	for (uint32_t i = 0; i < w->nx; i++)
		w->xfree[i] = (uint16_t)(count + w->nx - 1 - i);
	w->nxfree = w->nx;
	return 0;
}

/* ---- connection slots --------------------------------------------------- */

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

void clist_append(struct clist *l, struct conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
}

void clist_prepend(struct clist *l, struct conn *c)
{
	c->prev = NULL;
	c->next = l->head;
	if (l->head)
		l->head->prev = c;
	else
		l->tail = c;
	l->head = c;
	l->n++;
}

void clist_remove(struct clist *l, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->next = c->prev = NULL;
	l->n--;
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

static void gen_release(struct worker *w, struct wgen *g)
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

static const char *end_name(const struct conn *c)
{
	static const char *const refused[REFUSE_COUNT] = {
		"refused:full", "refused:rate", "refused:queue_full", "refused:queue_timeout",
		"refused:down", "client_gone", "refused:handshake",
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

/* Half H's spill, if it has one (HALF_SPILL). */
static struct spill *half_spill_of(const struct worker *w, const struct conn *c, unsigned h)
{
	return c->slot < w->nspills / 2 ? w->spills[c->slot * 2 + h] : NULL;
}

/*
 * What half H owed its stalled sink is sent (a plain sink's spill, or a TLS
 * sink's ciphertext, tls_stall): the half goes back to the shared buffers.
 */
static void half_unspill(struct worker *w, struct conn *c, unsigned h)
{
	if (c->slot < w->nspills / 2) {
		free(w->spills[c->slot * 2 + h]);
		w->spills[c->slot * 2 + h] = NULL;
	}
	c->half[h].flags &= (uint8_t)~HALF_SPILL;
}

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
	c->state = CONN_FREE;
	c->next = w->free_conns;
	w->free_conns = c;
	w->nconns--;
}

static void conn_maybe_free(struct worker *w, struct conn *c)
{
	if (!c->ops)
		conn_free(w, c);
}

void worker_conn_done(struct worker *w, struct conn *c)
{
	conn_maybe_free(w, c);
}

/*
 * Tear a connection down. RST_MASK bit i: close fd[i] with a reset
 * (SO_LINGER 0) rather than a FIN, so a reset on one side reaches the other.
 */
void worker_conn_abort(struct worker *w, struct conn *c, unsigned rst_mask)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	if (c->state == CONN_CLOSING)
		return;
	conn_unlist(w, c);
	c->state = CONN_CLOSING;
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

/* ---- timers ---------------------------------------------------------------- */

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

void worker_conn_timer_arm(struct worker *w, struct conn *c)
{
	if (timer_set(&w->timers, &c->timer, conn_deadline(w, c)))
		worker_conn_abort(w, c, 0);
}

/* ---- forwarding ------------------------------------------------------------ */

static int conn_gone(const struct conn *c)
{
	return c->state == CONN_CLOSING || c->state == CONN_FREE;
}


static void half_recv(struct worker *w, struct conn *c, unsigned h)
{
	struct io_uring_sqe *sqe = w_sqe(w);

	io_uring_prep_recv(sqe, c->fd[h], NULL, w->bufsize, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	conn_op(c, sqe, UD_RECV + h);
	c->half[h].flags |= HALF_RECV;
}

/*
 * Send half H's next bytes: from its spill, waiting for the sink to take
 * them; else from the head buffer, without waiting, so a sink that cannot
 * take them now says so at once (-EAGAIN, or a short count).
 */
static void half_send(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	struct io_uring_sqe *sqe = w_sqe(w);

	if (hf->flags & HALF_SPILL) {
		struct spill *sp = half_spill_of(w, c, h);

		io_uring_prep_send(sqe, c->fd[h ^ 1], sp->data + sp->off, sp->len - sp->off,
				   MSG_NOSIGNAL);
	} else {
		io_uring_prep_send(sqe, c->fd[h ^ 1], w_buf(w, hf->bid[hf->head]) + hf->sent,
				   hf->len[hf->head] - hf->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	conn_op(c, sqe, UD_SEND + h);
	hf->flags |= HALF_SEND;
}

/* No memory to keep what a stalled sink owes: the connection ends. Returns -1. */
static int stall_nomem(struct worker *w, struct conn *c)
{
	log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: no memory to hold a stalled send", w->id);
	worker_conn_abort(w, c, 3);
	return -1;
}

/*
 * Half H's sink is stalled, what it owes the sink is out of the shared
 * buffers: receive no more on H (HALF_SPILL), move a TLS source's
 * undecrypted bytes out of the ring too, time the stall, and watch the
 * source for a reset. 0, or -1 (the connection is aborted).
 */
static int half_stalled(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	struct io_uring_sqe *sqe;

	if ((c->flags2 & CF2_TLS(h)) && tls_park_input(w, c, h))
		return stall_nomem(w, c);
	if (!(hf->flags & HALF_SPILL)) {
		hf->flags |= HALF_SPILL;
		stat_inc(&w->stats.spills);
		worker_conn_timer_arm(w, c); /* the send stall's deadline */
	}
	if (!(c->ops & (1u << (UD_HUP + h)))) {
		/* no mask: a poll always reports errors and hang-ups */
		sqe = w_sqe(w);
		io_uring_prep_poll_add(sqe, c->fd[h], 0);
		conn_op(c, sqe, UD_HUP + h);
	}
	return 0;
}

/*
 * Half H's sink did not take all it was given: move every unsent byte of
 * the half's queue into a spill of the connection's own, give the buffers
 * back, and watch the source for a reset while the sink catches up. (A
 * half receives only once its send is done, so nothing arrives for it
 * while it is spilled.) 0, or -1 without memory (the connection is aborted).
 */
static int half_spill(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	struct spill *n;
	uint32_t total = 0;

	for (unsigned i = 0; i < hf->count; i++) {
		unsigned k = (hf->head + i) % HALF_QMAX;

		total += hf->len[k] - (i ? 0 : hf->sent);
	}
	if (slot_table_fit((void **)&w->spills, &w->nspills, w->nslots * 2, sizeof(*w->spills)))
		return stall_nomem(w, c);
	n = malloc(sizeof(*n) + total);
	if (!n)
		return stall_nomem(w, c);
	n->len = 0;
	n->off = 0;
	for (; hf->count; hf->count--, hf->head = (hf->head + 1) % HALF_QMAX, hf->sent = 0) {
		uint32_t m = hf->len[hf->head] - hf->sent;

		memcpy(n->data + n->len, w_buf(w, hf->bid[hf->head]) + hf->sent, m);
		n->len += m;
		w_buf_return(w, hf->bid[hf->head]);
	}
	n->since = w->now;
	w->spills[c->slot * 2 + h] = n;
	hf->head = 0;
	hf->sent = 0;
	return half_stalled(w, c, h);
}

/* A poll on half H's source while its sink was stalled: a reset ends the connection. */
static void on_hup(struct worker *w, struct conn *c, unsigned h, int res)
{
	if (conn_gone(c)) {
		conn_maybe_free(w, c);
		return;
	}
	/*
	 * A reset sets the socket's error. A hang-up without one is a FIN met
	 * by sluice's own shutdown (both ways done), and a FIN alone is not
	 * the end either: what the source sent is still owed to the sink.
	 */
	if (res > 0 && (res & POLLERR))
		worker_conn_abort(w, c, 1u << (h ^ 1));
}

/* Both directions ended with a FIN: close both sockets. */
static void conn_close_clean(struct worker *w, struct conn *c)
{
	c->refusal = END_OK;
	c->state = CONN_CLOSING;
	timer_cancel(&w->timers, &c->timer);
	conn_maybe_free(w, c);
}

/*
 * Half H's source finished and everything it sent is out: pass the FIN on.
 * shutdown() is called directly rather than submitted: io_uring runs a
 * shutdown in its worker threads (it may block for some protocols), and
 * that hand-off costs more than the call itself, which for TCP only queues
 * a FIN and never blocks.
 */
static void half_shut(struct worker *w, struct conn *c, unsigned h)
{
	c->half[h].flags |= HALF_DONE;
	if (c->half[h ^ 1].flags & HALF_DONE) {
		/* the other way is finished already: close() sends this FIN */
		conn_close_clean(w, c);
		return;
	}
	if (shutdown(c->fd[h ^ 1], SHUT_WR) < 0)
		worker_conn_abort(w, c, 1u << h);
}

/* May half H receive in C's state? (A TLS client is read during its handshake and head.) */
static int half_may_recv(const struct conn *c, unsigned h)
{
	if (c->state == CONN_OPEN)
		return 1;
	return h == 0 && (c->flags2 & CF2_TLS0) &&
	       (c->state == CONN_TLS || c->state == CONN_HEAD);
}

/* Re-arm the half's receive if nothing stops it. */
static void half_resume(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];

	if (hf->flags & (HALF_RECV | HALF_EOF | HALF_STARVED | HALF_SPILL) || hf->count ||
	    !half_may_recv(c, h))
		return;
	/* a TLS sink still in its handshake takes no plaintext: the source waits in the kernel */
	if (c->state == CONN_OPEN && (c->flags2 & CF2_TLS(h ^ 1)) &&
	    !tls_handshake_done(w, c, h ^ 1, NULL))
		return;
	/* ciphertext not decrypted yet (its plaintext had no room) comes first */
	if ((c->flags2 & CF2_TLS(h)) && tls_pending_input(w, c, h))
		return;
	half_recv(w, c, h);
}

static void starve_list(struct worker *w, struct conn *c)
{
	if (!(c->flags & CF_LISTED)) {
		c->flags |= CF_LISTED;
		clist_append(&w->starved, c);
	}
}

static void half_starve(struct worker *w, struct conn *c, unsigned h)
{
	c->half[h].flags |= HALF_STARVED;
	stat_inc(&w->stats.nobufs);
	starve_list(w, c);
}

static void tls_progress(struct worker *w, struct conn *c);

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
static void starved_run(struct worker *w)
{
	uint32_t n = w->starved.n, avail = w->nbufs - w->bufs_out;

	while (n-- && w->starved.head && (avail || w->nxfree)) {
		struct conn *c = w->starved.head;
		unsigned halves = !!(c->half[0].flags & HALF_STARVED) +
				  !!(c->half[1].flags & HALF_STARVED);
		unsigned need = halves ? halves : 1; /* a head peek takes one */
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
			tls_progress(w, c);
			continue;
		}
		if (c->state == CONN_HEAD) {
			admit_head_resume(w, c);
			continue;
		}
		for (unsigned h = 0; h < 2; h++)
			half_resume(w, c, h);
	}
}

/* A drained WebSocket may get its Close frame now: between two whole messages. */
static int ws_ready(struct worker *w, struct conn *c)
{
	const char *p;

	return (c->flags & CF_WS) && !c->half[1].count &&
	       !(c->half[1].flags & (HALF_SEND | HALF_SPILL)) &&
	       !((c->flags2 & CF2_TLS0) && tls_out(w, c, 0, &p)) && wsframe_at_boundary(&c->ws);
}

static void tls_flush(struct worker *w, struct conn *c, unsigned side);

/*
 * Tell a drained WebSocket client that the service restarts (Close 1012)
 * rather than dropping it, so it reconnects as a planned event. Forwarding
 * stops: what is in flight is cancelled first (cancels are done at
 * submission, in order, so the Close frame's send is not among them), and
 * the connection closes once the frame is sent.
 */
static void ws_close(struct worker *w, struct conn *c)
{
	uint8_t frame[2 + 2 + 123];
	size_t len = wsframe_close(frame, 1012, "service restart");
	struct io_uring_sqe *sqe;

	if (!(c->flags2 & CF2_TLS0)) {
		c->resp = malloc(len);
		if (!c->resp) {
			worker_conn_abort(w, c, 0);
			return;
		}
		memcpy(c->resp, frame, len);
		c->resp_len = (uint32_t)len;
	} else if (tls_write(w, c, 0, frame, len)) {
		worker_conn_abort(w, c, 0);
		return;
	}
	conn_cancel_all(w, c);
	c->state = CONN_RESPONDING;
	c->attempt_ms = w->now;
	worker_conn_timer_arm(w, c);
	stat_inc(&w->stats.ws_closes);
	if (c->flags2 & CF2_TLS0) {
		tls_close_notify(w, c, 0);
		tls_flush(w, c, 0);
		return;
	}
	sqe = w_sqe(w);
	io_uring_prep_send(sqe, c->fd[0], c->resp, c->resp_len, MSG_NOSIGNAL);
	conn_op(c, sqe, UD_RESP);
}

/* ---- TLS on either side ------------------------------------------------------ */

/* Send what TLS side SIDE has ready, unless a send on it is in flight. */
static void tls_flush(struct worker *w, struct conn *c, unsigned side)
{
	struct half *hf = &c->half[side ^ 1];
	struct io_uring_sqe *sqe;
	const char *p;
	uint32_t n;

	if (hf->flags & HALF_SEND || c->fd[side] < 0 || !(n = tls_out(w, c, side, &p)))
		return;
	sqe = w_sqe(w);
	/* forwarding: tried without waiting, as a plain half's (see half_send) */
	io_uring_prep_send(sqe, c->fd[side], p, n,
			   c->state == CONN_OPEN && !(hf->flags & HALF_SPILL)
				   ? MSG_NOSIGNAL | MSG_DONTWAIT
				   : MSG_NOSIGNAL);
	tls_out_sending(w, c, side, n);
	conn_op(c, sqe, UD_SEND + (side ^ 1));
	hf->flags |= HALF_SEND;
}

/*
 * What a TLS operation on SIDE came to: 0 to go on, -1 when the connection
 * is being torn down.
 */
static int tls_result(struct worker *w, struct conn *c, unsigned side, enum tls_res r)
{
	switch (r) {
	case TLS_OK:
	case TLS_BLOCKED:
		return 0;
	case TLS_STARVED:
		stat_inc(&w->stats.nobufs);
		/* waiting or connecting clients are not read: they go on once open */
		if (half_may_recv(c, 0) || c->state == CONN_OPEN) {
			c->flags2 |= CF2_XSTARVED;
			starve_list(w, c);
		}
		return 0;
	case TLS_EOF:
		if (c->state != CONN_OPEN) {
			admit_tls_failed(w, c, HSF_CLOSED);
			worker_conn_abort(w, c, 0);
			return -1;
		}
		c->half[side].flags |= HALF_EOF;
		return 0;
	default:
		if (c->state != CONN_OPEN) {
			admit_tls_failed(w, c, HSF_ERROR);
			worker_conn_abort(w, c, 0);
		} else {
			worker_conn_abort(w, c, 1u << (side ^ 1));
		}
		return -1;
	}
}

/*
 * Move half H on: its plaintext to a plain sink, or encrypted into a TLS
 * sink's out buffer and sent; at its end, close_notify and then the FIN.
 * Plaintext moves only while open; a TLS sink's own bytes (handshake,
 * tickets, an answer) go out in any state. -1: the connection is going.
 */
static int half_push(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	unsigned k = h ^ 1;
	const char *p;

	if (hf->flags & HALF_SEND)
		return 0;
	if (c->flags2 & CF2_TLS(k)) {
		if (c->state == CONN_OPEN && tls_result(w, c, k, tls_encrypt(w, c, h)))
			return -1;
		if (tls_out(w, c, k, &p)) {
			tls_flush(w, c, k);
			return 0;
		}
	} else if (c->state == CONN_OPEN && hf->count) {
		half_send(w, c, h);
		return 0;
	}
	if (c->state != CONN_OPEN || hf->count || !(hf->flags & HALF_EOF) ||
	    (hf->flags & HALF_DONE))
		return 0;
	if ((c->flags2 & CF2_TLS(k)) && tls_close_notify(w, c, k)) {
		tls_flush(w, c, k);
		return 0;
	}
	half_shut(w, c, h);
	return conn_gone(c) ? -1 : 0;
}

/*
 * Everything a TLS connection can do now: decrypt what waits, let the
 * handshake and head logic see it, move both halves, receive again.
 */
static void tls_progress(struct worker *w, struct conn *c)
{
	for (unsigned s = 0; s < 2; s++) {
		if ((c->flags2 & CF2_TLS(s)) && tls_pending_input(w, c, s) &&
		    (half_may_recv(c, s) || c->state == CONN_OPEN) &&
		    tls_result(w, c, s, tls_pump(w, c, s)))
			return;
	}
	if (c->state == CONN_TLS || (c->state == CONN_HEAD && (c->flags2 & CF2_TLS0))) {
		/* the handshake may be done, the head may be whole */
		tls_flush(w, c, 0);
		admit_tls_input(w, c);
		if (conn_gone(c) || c->state == CONN_RESPONDING)
			return;
	}
	if (c->state == CONN_RESPONDING) {
		tls_flush(w, c, 0);
		return;
	}
	for (unsigned h = 0; h < 2; h++)
		if (half_push(w, c, h))
			return;
	if (c->state == CONN_OPEN && (c->flags & CF_DRAIN) && ws_ready(w, c)) {
		ws_close(w, c);
		return;
	}
	for (unsigned h = 0; h < 2; h++)
		half_resume(w, c, h);
}

void worker_tls_kick(struct worker *w, struct conn *c)
{
	tls_progress(w, c);
}

static void on_recv_tls(struct worker *w, struct conn *c, unsigned h, int res, uint16_t bid)
{
	if (res > 0) {
		c->active_ms = w->now;
		if (tls_result(w, c, h, tls_input(w, c, h, bid, (uint32_t)res)))
			return;
		tls_progress(w, c);
		return;
	}
	if (res == 0 && c->state == CONN_OPEN) {
		c->half[h].flags |= HALF_EOF;
		tls_progress(w, c);
		return;
	}
	if (res == -ENOBUFS) {
		half_starve(w, c, h);
		return;
	}
	if (c->state != CONN_OPEN) {
		admit_tls_failed(w, c, HSF_CLOSED);
		worker_conn_abort(w, c, res < 0 ? 1u : 0u);
		return;
	}
	worker_conn_abort(w, c, 1u << (h ^ 1));
}

static void on_recv(struct worker *w, struct conn *c, unsigned h, struct io_uring_cqe *cqe)
{
	struct half *hf = &c->half[h];
	int res = cqe->res;
	int tls = c->flags2 & (CF2_TLS0 | CF2_TLS1);
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

	hf->flags &= ~HALF_RECV;
	if (cqe->flags & IORING_CQE_F_BUFFER)
		w->bufs_out++;
	if (c->state != CONN_OPEN &&
	    !(tls && (half_may_recv(c, h) || c->state == CONN_CONNECTING ||
		      c->state == CONN_WAITING))) {
		/* closing, or answering (a Close frame): the bytes go nowhere */
		if (cqe->flags & IORING_CQE_F_BUFFER)
			w_buf_return(w, bid);
		conn_maybe_free(w, c);
		return;
	}
	if ((c->flags2 & CF2_SETUP) && res != -ENOBUFS) {
		/* the backend's first byte, or the end of a set-up it never answered */
		if (h == 1)
			admit_setup_end(w, c, res > 0 ? SETUP_ANSWERED
					: c->half[0].flags & HALF_EOF ? SETUP_WASTED
								       : SETUP_UNANSWERED);
		else if (res < 0)
			admit_setup_end(w, c, SETUP_WASTED);
	}
	if (c->flags2 & CF2_TLS(h)) {
		on_recv_tls(w, c, h, res, bid);
		return;
	}
	if (res > 0) {
		unsigned tail = (hf->head + hf->count) % HALF_QMAX;

		/* a WebSocket's server→client frames, followed so a drain can close between them */
		if (h == 1 && (c->flags & CF_WS) &&
		    wsframe_feed(&c->ws, (const uint8_t *)w_buf(w, bid), (size_t)res))
			c->flags &= ~CF_WS;
		hf->bid[tail] = bid;
		hf->len[tail] = (uint32_t)res;
		hf->count++;
		c->active_ms = w->now;
		if ((hf->flags & HALF_SPILL) && (c->flags2 & CF2_TLS(h ^ 1))) {
			/*
			 * received while the TLS sink's send was out (a TLS sink's
			 * half may): encrypted behind what the stalled sink owes
			 */
			if (tls_stall(w, c, h ^ 1))
				stall_nomem(w, c);
			return;
		}
		if (tls) {
			/* plaintext for a TLS sink */
			tls_progress(w, c);
			return;
		}
		if (!(hf->flags & HALF_SEND))
			half_send(w, c, h);
		half_resume(w, c, h);
		return;
	}
	if (res == 0) {
		hf->flags |= HALF_EOF;
		if (tls)
			tls_progress(w, c);
		else if (!hf->count && !(hf->flags & HALF_SEND))
			half_shut(w, c, h);
		return;
	}
	if (res == -ENOBUFS) {
		half_starve(w, c, h);
		return;
	}
	/* the source failed (a reset, mostly): the sink gets a reset too */
	worker_conn_abort(w, c, 1u << (h ^ 1));
}

/*
 * Half H's TLS sink (side H^1) did not take its ciphertext at once: hold
 * the rest in the connection's own memory (tls_stall) and wait for the
 * sink there.
 */
static void tls_stall_half(struct worker *w, struct conn *c, unsigned h)
{
	if (tls_stall(w, c, h ^ 1)) {
		stall_nomem(w, c);
		return;
	}
	if (!tls_stall_since(w, c, h ^ 1)) {
		tls_progress(w, c); /* it was all sent after all */
		return;
	}
	if (half_stalled(w, c, h))
		return;
	tls_flush(w, c, h ^ 1);
}

/* A send of TLS side H^1's ciphertext completed. */
static void on_send_tls(struct worker *w, struct conn *c, unsigned h, int res)
{
	struct half *hf = &c->half[h];
	const char *p;
	int short_send;

	if (res == -EAGAIN && c->state == CONN_OPEN && !(hf->flags & HALF_SPILL)) {
		tls_stall_half(w, c, h);
		return;
	}
	if (res <= 0) {
		if (c->state != CONN_OPEN)
			admit_tls_failed(w, c, HSF_CLOSED);
		worker_conn_abort(w, c, c->state == CONN_OPEN ? 1u << h : 0u);
		return;
	}
	c->active_ms = w->now;
	short_send = tls_out_sent(w, c, h ^ 1, (uint32_t)res);
	if (c->state == CONN_OPEN) {
		if (!(hf->flags & HALF_SPILL) && short_send) {
			/* a short send: the sink's buffer filled up */
			tls_stall_half(w, c, h);
			return;
		}
		if ((hf->flags & HALF_SPILL) && !tls_stall_since(w, c, h ^ 1))
			half_unspill(w, c, h);
	}
	if (c->state == CONN_RESPONDING && !tls_out(w, c, h ^ 1, &p)) {
		/* sluice's answer is out: close (a FIN) */
		worker_conn_abort(w, c, 0);
		return;
	}
	tls_progress(w, c);
}

static void on_send(struct worker *w, struct conn *c, unsigned h, int res)
{
	struct half *hf = &c->half[h];
	struct backend_wstats *bs;
	int tls = c->flags2 & (CF2_TLS0 | CF2_TLS1);

	hf->flags &= ~HALF_SEND;
	/*
	 * Closing, or answering: only a TLS client's answer still goes on
	 * (a cancelled forward completes here and is done with).
	 */
	if (conn_gone(c) ||
	    (c->state != CONN_OPEN && !(h == 1 && (c->flags2 & CF2_TLS0) &&
					(c->state != CONN_RESPONDING || res != -ECANCELED)))) {
		conn_maybe_free(w, c);
		return;
	}
	if (c->flags2 & CF2_TLS(h ^ 1)) {
		on_send_tls(w, c, h, res);
		return;
	}
	if (res == -EAGAIN && !(hf->flags & HALF_SPILL)) {
		/* the sink's buffer is full: keep the bytes aside, wait for it there */
		if (!half_spill(w, c, h))
			half_send(w, c, h);
		return;
	}
	if (res <= 0) {
		/* the sink is gone: reset the source as well */
		worker_conn_abort(w, c, 1u << h);
		return;
	}
	bs = &c->be->ws[w->id];
	stat_add(h == 0 ? &bs->bytes_out : &bs->bytes_in, (uint64_t)res);
	c->bytes[h] += (uint64_t)res;
	c->active_ms = w->now;
	if (hf->flags & HALF_SPILL) {
		struct spill *sp = half_spill_of(w, c, h);

		sp->off += (uint32_t)res;
		sp->since = w->now;
		if (sp->off < sp->len) {
			half_send(w, c, h);
			return;
		}
		half_unspill(w, c, h);
	} else {
		hf->sent += (uint32_t)res;
		if (hf->sent < hf->len[hf->head]) {
			/* a short send: the sink's buffer filled up */
			if (!half_spill(w, c, h))
				half_send(w, c, h);
			return;
		}
		w_buf_return(w, hf->bid[hf->head]);
		hf->head = (hf->head + 1) % HALF_QMAX;
		hf->count--;
		hf->sent = 0;
	}
	if (tls) {
		tls_progress(w, c);
		return;
	}
	if (h == 1 && !hf->count && (c->flags & CF_DRAIN) && ws_ready(w, c)) {
		ws_close(w, c);
		return;
	}
	if (hf->count)
		half_send(w, c, h);
	else if (hf->flags & HALF_EOF)
		half_shut(w, c, h);
	half_resume(w, c, h);
}

/* ---- a connection's life ---------------------------------------------------- */

void worker_conn_open(struct worker *w, struct conn *c)
{
	c->state = CONN_OPEN;
	c->active_ms = w->now;
	admit_setup_start(w, c);
	/*
	 * A poll that watched for the client leaving while it waited stays
	 * armed: it fires when the client closes and is ignored then, or is
	 * cancelled with the rest if sluiced closes first. Cancelling it here
	 * would cost a look-up among every request pending on the ring's
	 * hash bucket, for each client admitted.
	 */
	worker_conn_timer_arm(w, c);
	if (c->pool->tls_ctx) {
		int ret = tls_start_client(w, c, c->pool->tls_ctx, c->pool->cfg,
					   (const struct sockaddr *)&c->be->addr.ss);

		if (ret) {
			log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: backend %s: tls: %s",
					w->id, c->be->addr.text, strerror(-ret));
			worker_conn_abort(w, c, 0);
			return;
		}
	}
	if (c->flags2 & (CF2_TLS0 | CF2_TLS1)) {
		/* a client's first bytes may be decrypted already; a backend handshake starts */
		tls_progress(w, c);
		return;
	}
	half_recv(w, c, 0);
	half_recv(w, c, 1);
}

static void on_conn_timer(struct worker *w, struct conn *c)
{
	uint64_t deadline = conn_deadline(w, c);

	if (deadline > w->now) {
		/* activity moved it: lazy deadlines are checked only when due */
		worker_conn_timer_arm(w, c);
		return;
	}
	if (c->state == CONN_OPEN) {
		for (unsigned h = 0; h < 2; h++) {
			if (half_stall_deadline(w, c, h) <= w->now) {
				/* a reset, so the kernel frees what the sink never took */
				stat_inc(&w->stats.send_stalls);
				c->refusal = END_SEND_STALL;
				worker_conn_abort(w, c, 1u << (h ^ 1));
				return;
			}
		}
		if (!(c->flags & CF_DRAIN)) {
			stat_inc(&w->stats.idle_timeouts);
			c->refusal = END_IDLE;
		}
		worker_conn_abort(w, c, 0);
		return;
	}
	admit_timer(w, c);
}

/* ---- listeners --------------------------------------------------------------- */

static void listener_arm(struct worker *w, struct wlistener *wl)
{
	struct io_uring_sqe *sqe = w_sqe(w);

	io_uring_prep_multishot_accept(sqe, wl->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	io_uring_sqe_set_data64(sqe, ud_pack(wl, UD_ACCEPT));
	wl->armed = 1;
}

static void listener_free(struct worker *w, struct wlistener *wl)
{
	close(wl->fd);
	for (struct wlistener **pp = &w->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == wl) {
			*pp = wl->next;
			break;
		}
	}
	w->nlisteners--;
	free(wl);
}

/*
 * Stop accepting on WL and close its socket. Clients still in this socket's
 * accept queue are reset by the kernel; the other workers' sockets for the
 * same address go on (a removed listener's are all closed).
 */
static void listener_close(struct worker *w, struct wlistener *wl)
{
	struct io_uring_sqe *sqe;

	if (wl->closing)
		return;
	wl->closing = 1;
	wl->sl = NULL;
	timer_cancel(&w->timers, &wl->timer);
	if (!wl->armed) {
		listener_free(w, wl);
		return;
	}
	/* the accept ends with -ECANCELED; on_accept frees it then */
	sqe = w_sqe(w);
	io_uring_prep_cancel64(sqe, ud_pack(wl, UD_ACCEPT), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
}

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

	if (!sl || !sl->pool->cfg->queue.timeout_auto ||
	    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || len < sizeof(ti))
		return 0;
	lag = ti.tcpi_last_ack_recv > ti.tcpi_last_data_recv ? ti.tcpi_last_ack_recv
							     : ti.tcpi_last_data_recv;
	return lag < w->now && lag < 60000 ? lag : 0;
}

static void conn_start(struct worker *w, struct wlistener *wl, int fd)
{
	struct conn *c;

	if (!wl->sl || w->stopping || !(c = conn_alloc(w))) {
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
	c->accepted_ms = w->now - arrival_lag_ms(w, wl->sl, fd);
	c->attempt_ms = w->now;
	c->gen = w->gen;
	c->gen->nconns++;
	c->pool = wl->sl->pool;
	c->sl = wl->sl;
	c->lst = wl->sl->stats;
	stat_shared_inc(&c->lst->accepted);
	stat_shared_inc(&c->lst->active);
	if (wl->sl->cfg->mode == CFG_MODE_HTTP)
		c->flags |= CF_HTTP;
	admit_start(w, c);
}

/*
 * Descriptors ran out (or kernel memory). Nothing is wrong with the client
 * at hand, and whatever we try next fails the same way until a connection
 * closes: so accepting stops for ACCEPT_BACKOFF_MS (clients wait in the
 * kernel's accept queue, costing us nothing), clients already accepted wait
 * that long before trying for a backend socket again (admit.c's descriptor
 * budget), and listeners are re-armed only once those clients had their
 * turn. Logged once per interval: a shortage repeats ten times a second.
 */
int worker_nofd(struct worker *w, int err, const char *what)
{
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return 0;
	w->nofd_until = w->now + ACCEPT_BACKOFF_MS;
	log_ratelimited(&w->rl_nofd, LOG_LVL_WARN,
			"worker %u: %s: %s; accepting paused, retried every %u ms", w->id, what,
			strerror(err), ACCEPT_BACKOFF_MS);
	return 1;
}

static void on_accept(struct worker *w, struct wlistener *wl, struct io_uring_cqe *cqe)
{
	if (cqe->res >= 0)
		conn_start(w, wl, cqe->res);
	if (cqe->flags & IORING_CQE_F_MORE)
		return;
	wl->armed = 0;
	if (wl->closing) {
		listener_free(w, wl);
		return;
	}
	if (cqe->res < 0) {
		/*
		 * EMFILE, ENFILE, ENOMEM...: the multishot accept ended. Back
		 * off instead of spinning; clients wait in the accept queue.
		 */
		stat_inc(&w->stats.accept_errors);
		if (!worker_nofd(w, -cqe->res, "accept"))
			log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: accept on %s: %s", w->id,
					wl->ls->addr.text, strerror(-cqe->res));
		if (timer_set(&w->timers, &wl->timer, w->now + ACCEPT_BACKOFF_MS) == 0)
			return;
	}
	listener_arm(w, wl);
}

/* ---- snapshots and messages ---------------------------------------------------- */

static int worker_adopt(struct worker *w, struct snapshot *snap)
{
	struct wgen *g = calloc(1, sizeof(*g)), *old = w->gen;
	struct wlistener *wl, *next;

	if (g) {
		g->queues = calloc(snap->npools ? snap->npools : 1, sizeof(*g->queues));
		g->hsq = calloc(snap->nlisteners ? snap->nlisteners * HS_KINDS : 1,
				sizeof(*g->hsq));
	}
	if (!g || !g->queues || !g->hsq) {
		if (g) {
			free(g->queues);
			free(g->hsq);
		}
		free(g);
		snapshot_put(snap);
		return -ENOMEM;
	}
	g->snap = snap;
	g->next = w->gen;
	w->gen = g;
	if (old)
		gen_release(w, old);
	for (wl = w->listeners; wl; wl = wl->next)
		wl->sl = NULL;
	for (unsigned i = 0; i < snap->nlisteners; i++) {
		struct snap_listener *sl = &snap->listeners[i];

		for (wl = w->listeners; wl; wl = wl->next)
			if (wl->ls == sl->ls && !wl->closing)
				break;
		if (!wl) {
			wl = aligned_alloc(UD_ALIGN, sizeof(*wl));
			if (!wl) {
				log_error("worker %u: listener %s: out of memory", w->id,
					  sl->cfg->name);
				continue;
			}
			memset(wl, 0, sizeof(*wl));
			wl->w = w;
			wl->ls = sl->ls;
			wl->fd = sl->ls->fds[w->id];
			timer_node_init(&wl->timer, TK_LISTENER);
			wl->next = w->listeners;
			w->listeners = wl;
			w->nlisteners++;
			if (!w->stopping)
				listener_arm(w, wl);
		}
		wl->sl = sl;
	}
	for (wl = w->listeners; wl; wl = next) {
		next = wl->next;
		if (!wl->sl)
			listener_close(w, wl);
	}
	return 0;
}

/* ---- paced drain ----------------------------------------------------------------- */

/*
 * Closing connections on purpose must not cause the flood sluice exists to
 * prevent: every client closed reconnects. So a drain closes the chosen
 * connections a few at a time, in random order (no client population
 * reconnects in step), at n / period_s per second and never faster than the
 * cap (what the remaining backends admit), each worker its own share. A
 * WebSocket gets a Close frame (1012, service restart) between two messages
 * instead of a dropped connection.
 */
static int drain_match(const struct drain_req *r, const struct conn *c)
{
	switch (r->kind) {
	case DRAIN_BACKEND:
		return c->be == r->target;
	case DRAIN_LISTENER:
		return c->sl->ls == r->target;
	default:
		return 1;
	}
}

static void drain_one(struct worker *w, struct conn *c)
{
	if (c->state != CONN_OPEN || (c->flags & CF_DRAIN))
		return;
	stat_inc(&w->stats.drained);
	c->refusal = END_DRAIN;
	if (!(c->flags & CF_WS)) {
		worker_conn_abort(w, c, 0);
		return;
	}
	c->flags |= CF_DRAIN;
	c->attempt_ms = w->now;
	if (ws_ready(w, c))
		ws_close(w, c);
	else
		worker_conn_timer_arm(w, c); /* DRAIN_WS_MS for a boundary to come */
}

static void drain_add(struct worker *w, const struct drain_req *r)
{
	struct drain_job *j = calloc(1, sizeof(*j));
	uint32_t cap = 0;
	double per_s;

	if (!j)
		goto fail;
	for (struct conn_chunk *ch = w->chunks; ch; ch = ch->next)
		for (unsigned i = 0; i < CHUNK_CONNS; i++)
			cap += ch->conns[i].state == CONN_OPEN && drain_match(r, &ch->conns[i]);
	j->v = calloc(cap ? cap : 1, sizeof(*j->v));
	if (!j->v)
		goto fail;
	for (struct conn_chunk *ch = w->chunks; ch; ch = ch->next) {
		for (unsigned i = 0; i < CHUNK_CONNS; i++) {
			struct conn *c = &ch->conns[i];
			uint32_t k;

			if (c->state != CONN_OPEN || !drain_match(r, c))
				continue;
			/* inside-out Fisher-Yates: a random order as they are collected */
			k = (uint32_t)(w_random(w) % (j->n + 1));
			j->v[j->n] = j->v[k];
			j->v[k].c = c;
			j->v[k].serial = c->serial;
			j->n++;
		}
	}
	per_s = r->period_s ? (double)j->n / r->period_s : (double)j->n * 10;
	if (r->cap_per_s > 0 && per_s > r->cap_per_s / (r->nworkers ? r->nworkers : 1))
		per_s = r->cap_per_s / (r->nworkers ? r->nworkers : 1);
	j->per_tick = per_s * DRAIN_TICK_MS / 1000.0;
	/* the first close at once, not one tick later */
	j->credit = j->per_tick < 1 ? 1 : j->per_tick;
	j->next_job = w->drains;
	w->drains = j;
	log_info("worker %u: draining %u connections at %.1f/s", w->id, j->n, per_s);
	timer_set(&w->timers, &w->drain_timer, w->now);
	return;
fail:
	free(j);
	log_error("worker %u: drain: out of memory; connections stay", w->id);
}

static void drain_tick(struct worker *w)
{
	struct drain_job **jp = &w->drains, *j;

	while ((j = *jp)) {
		while (j->credit >= 1 && j->next < j->n) {
			struct conn *c = j->v[j->next].c;

			if (c->serial == j->v[j->next].serial && c->state == CONN_OPEN) {
				drain_one(w, c);
				j->credit -= 1;
			}
			j->next++;
		}
		if (j->next == j->n) {
			*jp = j->next_job;
			free(j->v);
			free(j);
			continue;
		}
		j->credit += j->per_tick;
		jp = &j->next_job;
	}
	if (w->drains)
		timer_set(&w->timers, &w->drain_timer, w->now + DRAIN_TICK_MS);
}

static void worker_stop(struct worker *w, const struct drain_req *r)
{
	struct wlistener *wl, *next;

	if (w->stopping)
		return;
	w->stopping = 1;
	for (wl = w->listeners; wl; wl = next) {
		next = wl->next;
		listener_close(w, wl);
	}
	drain_add(w, r);
	timer_set(&w->timers, &w->grace,
		  w->now + ((uint64_t)r->period_s + r->grace_s) * 1000);
}

/* Grace ran out: close what is left (pacing belongs to the drain, not here). */
static void worker_grace_expired(struct worker *w)
{
	for (struct conn_chunk *ch = w->chunks; ch; ch = ch->next) {
		for (unsigned i = 0; i < CHUNK_CONNS; i++) {
			struct conn *c = &ch->conns[i];

			if (c->state == CONN_FREE || c->state == CONN_CLOSING)
				continue;
			stat_inc(&w->stats.grace_closed);
			c->refusal = END_GRACE;
			worker_conn_abort(w, c, 0);
		}
	}
}

static void on_msg(struct worker *w, void *ptr, int type)
{
	switch (type) {
	case MSG_ADOPT:
		if (w->stopping) {
			snapshot_put(ptr);
			break;
		}
		if (worker_adopt(w, ptr))
			log_error("worker %u: cannot adopt new config: out of memory", w->id);
		break;
	case MSG_STOP:
		worker_stop(w, ptr);
		free(ptr);
		break;
	case MSG_DRAIN:
		if (!w->stopping)
			drain_add(w, ptr);
		free(ptr);
		break;
	case MSG_WAKE:
		timer_set(&w->timers, &w->waitq_timer, w->now);
		break;
	default:
		log_warn("worker %u: unknown message %d", w->id, type);
	}
}

/* ---- loop ----------------------------------------------------------------------- */

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	enum ud_op op = ud_op(cqe->user_data);
	void *ptr = ud_ptr(cqe->user_data);

	/* a connection's operation is done with: the one place it is uncounted */
	if (ud_conn_op(op))
		((struct conn *)ptr)->ops &= (uint16_t)~(1u << op);
	switch (op) {
	case UD_ACCEPT:
		on_accept(w, ptr, cqe);
		break;
	case UD_CONNECT:
		admit_on_connect(w, ptr, cqe->res);
		break;
	case UD_HEAD:
		admit_on_head(w, ptr, cqe);
		break;
	case UD_POLL:
		admit_on_poll(w, ptr, cqe->res);
		break;
	case UD_RESP:
		admit_on_resp(w, ptr, cqe->res);
		break;
	case UD_RECV:
	case UD_RECV_1:
		on_recv(w, ptr, ud_half(op, UD_RECV), cqe);
		break;
	case UD_SEND:
	case UD_SEND_1:
		on_send(w, ptr, ud_half(op, UD_SEND), cqe->res);
		break;
	case UD_HUP:
	case UD_HUP_1:
		on_hup(w, ptr, ud_half(op, UD_HUP), cqe->res);
		break;
	case UD_MSG:
		on_msg(w, ptr, cqe->res);
		break;
	default:
		break;
	}
}

static void run_timers(struct worker *w)
{
	struct timer_node *t;

	while ((t = timer_pop_due(&w->timers, w->now))) {
		switch (t->kind) {
		case TK_CONN:
			on_conn_timer(w, (struct conn *)((char *)t - offsetof(struct conn, timer)));
			break;
		case TK_LISTENER: {
			struct wlistener *wl =
				(struct wlistener *)((char *)t - offsetof(struct wlistener, timer));

			if (wl->closing || wl->armed)
				break;
			/* short of descriptors: the clients we hold get them first */
			if (w->nofd_until > w->now &&
			    timer_set(&w->timers, &wl->timer, w->nofd_until + 1) == 0)
				break;
			listener_arm(w, wl);
			break;
		}
		case TK_GRACE:
			worker_grace_expired(w);
			break;
		case TK_WAITQ:
			admit_run(w);
			break;
		case TK_DRAIN:
			drain_tick(w);
			break;
		case TK_HSQ:
			admit_hsq_run(w);
			break;
		}
	}
}

static void worker_loop(struct worker *w)
{
	while (!(w->stopping && w->nconns == 0 && w->nlisteners == 0)) {
		struct __kernel_timespec ts, *tsp = NULL;
		struct timer_node *t = timer_first(&w->timers);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		if (t) {
			uint64_t d = t->when > w->now ? t->when - w->now : 0;

			ts.tv_sec = (long long)(d / 1000);
			ts.tv_nsec = (long long)(d % 1000) * 1000000;
			tsp = &ts;
		}
		io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, tsp, NULL);
		clock_update(w);
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		run_timers(w);
		starved_run(w);
		atomic_store_explicit(&w->stats.bufs_ring, w->bufs_out, memory_order_relaxed);
		atomic_store_explicit(&w->stats.bufs_user, w->nx - w->nxfree, memory_order_relaxed);
	}
}

static void worker_teardown(struct worker *w)
{
	struct conn_chunk *ch;
	struct wgen *g;

	while ((ch = w->chunks)) {
		w->chunks = ch->next;
		free(ch);
	}
	free(w->peers);
	w->peers = NULL;
	while (w->drains) {
		struct drain_job *j = w->drains;

		w->drains = j->next_job;
		free(j->v);
		free(j);
	}
	while ((g = w->gen)) {
		w->gen = g->next;
		snapshot_put(g->snap);
		free(g->queues);
		free(g->hsq);
		free(g);
	}
	tls_worker_free(w);
	for (uint32_t i = 0; i < w->nspills; i++)
		free(w->spills[i]);
	free(w->spills);
	timer_heap_free(&w->timers);
	io_uring_queue_exit(&w->ring);
	if (w->br && w->br != MAP_FAILED)
		munmap(w->br, w->nbufs * sizeof(struct io_uring_buf));
	if (w->bufs && w->bufs != MAP_FAILED)
		munmap(w->bufs, (size_t)w->nbufs * w->bufsize);
	if (w->xbufs && w->xbufs != MAP_FAILED)
		munmap(w->xbufs, (size_t)w->nx * w->bufsize);
	free(w->xfree);
	w->br = NULL;
	w->bufs = NULL;
	w->xbufs = NULL;
	w->xfree = NULL;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct io_uring_params p = { 0 };
	struct snapshot *snap = w->initial;
	struct io_uring_sqe *sqe;
	int ret;

	w->initial = NULL;
	/*
	 * SINGLE_ISSUER + DEFER_TASKRUN: only this thread submits, and
	 * completion work runs when it asks for events, not on interrupts —
	 * fewer context switches, better batching. The ring is created here
	 * because the creating thread becomes its only submitter.
	 */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
		  IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = RING_ENTRIES * 4;
	ret = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	if (ret == 0) {
		ret = bufs_init(w, snap->cfg->buffers.count, snap->cfg->buffers.size);
		if (ret)
			worker_teardown(w);
	}
	w->start_err = ret;
	if (ret) {
		snapshot_put(snap);
		sem_post(&w->ready);
		return NULL;
	}
	clock_update(w);
	w->rl.interval_ms = 5000;
	w->rl.burst = 5;
	w->rl_nofd.interval_ms = 5000;
	w->rl_nofd.burst = 1;
	worker_adopt(w, snap);
	sem_post(&w->ready);

	worker_loop(w);

	sqe = w_sqe(w);
	io_uring_prep_msg_ring(sqe, w->main_ring_fd, MSG_WORKER_EXIT, ud_pack(w, UD_MSG), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	io_uring_submit(&w->ring);
	w->done = 1;
	return NULL;
}

struct worker *worker_start(unsigned id, struct snapshot *snap, int main_ring_fd)
{
	struct worker *w = aligned_alloc(64, sizeof(*w));
	int ret;

	if (!w) {
		snapshot_put(snap);
		return NULL;
	}
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->main_ring_fd = main_ring_fd;
	w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)id << 32) ^ (uint64_t)(uintptr_t)w;
	timer_node_init(&w->grace, TK_GRACE);
	timer_node_init(&w->waitq_timer, TK_WAITQ);
	timer_node_init(&w->drain_timer, TK_DRAIN);
	timer_node_init(&w->hsq_timer, TK_HSQ);
	sem_init(&w->ready, 0, 0);
	w->initial = snap;
	ret = pthread_create(&w->thread, NULL, worker_main, w);
	if (ret) {
		snapshot_put(snap);
		free(w);
		errno = ret;
		return NULL;
	}
	while (sem_wait(&w->ready) && errno == EINTR)
		;
	if (!w->start_err)
		atomic_store_explicit(&ring_fds[id], w->ring.ring_fd, memory_order_release);
	if (w->start_err) {
		pthread_join(w->thread, NULL);
		errno = -w->start_err;
		sem_destroy(&w->ready);
		free(w);
		return NULL;
	}
	return w;
}

int worker_ring_fd(const struct worker *w)
{
	return w->ring.ring_fd;
}

const struct worker_stats *worker_stats(const struct worker *w)
{
	return &w->stats;
}

void worker_join(struct worker *w)
{
	if (!w)
		return;
	pthread_join(w->thread, NULL);
	worker_teardown(w);
	sem_destroy(&w->ready);
	free(w);
}
