// SPDX-License-Identifier: MIT
/*
 * A worker: one thread, one io_uring, its share of every listener (each
 * worker accepts on a SO_REUSEPORT socket of its own), and the connections
 * it accepted, which never leave it. Here: the loop, the provided buffers,
 * listeners and accepting, snapshots (config reloads), messages from other
 * threads, paced drains and the stop. A connection's own life is
 * proxy/conn.c's.
 *
 * Admission. The kernel (bpf/sluice.bpf.c) refuses a backend connect that
 * would exceed the backend's max_conns or rate, with SL_ERR_FULL or
 * SL_ERR_RATE. That is not a failure of the backend: the client tries the
 * pool's other backends, and when every one is full or out of tokens it
 * waits in the worker's FIFO (costing its socket and its slot, nothing
 * else) until a token is due or a slot frees, at most backend_wait_ms
 * (proxy/admit.c). Balancing reads the same shared kernel state first, so
 * connects the kernel would refuse are mostly not even tried.
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

#include "proxy/conn.h"
#include "proxy/tlsrec.h"
#include "proxy/wake.h"

#define RING_ENTRIES 4096

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

static void on_accept(struct worker *w, struct wlistener *wl, struct io_uring_cqe *cqe)
{
	if (cqe->res >= 0) {
		if (wl->sl && !w->stopping)
			conn_start(w, wl->sl, cqe->res);
		else
			close(cqe->res);
	}
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
		if (!w_nofd(w, -cqe->res, "accept"))
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
			wl = malloc(sizeof(*wl));
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
				conn_drain(w, c);
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
			conn_abort(w, c, 0);
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

	if (ud_conn_op(op)) {
		conn_complete(w, ptr, op, cqe);
		return;
	}
	switch (op) {
	case UD_ACCEPT:
		on_accept(w, ptr, cqe);
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
			conn_timer(w, (struct conn *)((char *)t - offsetof(struct conn, timer)));
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
			conn_queue_run(w);
			break;
		case TK_DRAIN:
			drain_tick(w);
			break;
		case TK_HSQ:
			conn_hsq_run(w);
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
		conn_starved_run(w);
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
		wake_register(id, w->ring.ring_fd);
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
