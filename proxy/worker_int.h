/* SPDX-License-Identifier: MIT */
/*
 * worker_int — a worker's context, as every module of it sees it: struct
 * worker (its ring, buffers, timers, snapshots, counters) and the small
 * helpers over it (submission, buffers, counters, the descriptor budget).
 * It calls nothing: modules of a worker build on it (proxy/conn.h for a
 * connection). Not for use outside a worker.
 */
#ifndef SLUICE_WORKER_INT_H
#define SLUICE_WORKER_INT_H

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/snapshot.h"
#include "proxy/timer.h"
#include "proxy/udata.h"
#include "proxy/worker.h"
#include "userspace/log.h"

#define NO_BID 0xffff /* no buffer (bids: ring [0, nbufs), userspace pool [nbufs, nbufs + nx)) */
#define ACCEPT_BACKOFF_MS 100

enum timer_kind { TK_CONN = 1, TK_LISTENER, TK_GRACE, TK_WAITQ, TK_DRAIN, TK_HSQ };

struct conn;
struct spill;

/* A doubly linked list of connections, NULL-terminated, with its length. */
struct clist {
	struct conn *head, *tail;
	uint32_t n;
};

/* A snapshot as one worker uses it: released when current no more and empty. */
struct wgen {
	struct snapshot *snap;
	uint32_t nconns;
	struct wgen *next;
	struct clist *queues; /* per pool of the snapshot: this worker's waiting clients */
	struct clist *hsq;    /* per listener and enum hs_kind: waiting for a handshake token */
	uint32_t nwaiting;    /* in all of them */
};

struct wlistener {
	struct worker *w;
	struct lsock *ls;
	struct snap_listener *sl; /* in the current snapshot; NULL once removed */
	struct timer_node timer;  /* accept back-off */
	int fd;
	uint8_t armed;
	uint8_t closing;
	struct wlistener *next;
};

struct conn_chunk;

/* A drain in progress: connections picked at its start, in random order. */
struct drain_job {
	struct {
		struct conn *c;
		uint32_t serial;
	} *v;
	uint32_t n, next;
	double per_tick; /* closes per 100 ms */
	double credit;
	struct drain_job *next_job;
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct io_uring ring;
	int main_ring_fd;
	sem_t ready;
	int start_err;
	struct snapshot *initial; /* handed to the thread, adopted once its ring is up */

	struct io_uring_buf_ring *br;
	char *bufs;
	uint32_t nbufs, bufsize, bufs_out;
	/*
	 * A userspace pool of buffers of the same size, for bytes sluice makes
	 * itself: TLS plaintext and ciphertext. Pages are touched on first use.
	 */
	char *xbufs;
	uint16_t *xfree; /* free bids, a stack */
	uint32_t nx, nxfree;
	struct tls_conn **tlsv; /* per slot: TLS state of connections with CF2_TLS* */
	uint32_t ntlsv;
	struct spill **spills; /* per slot and half (slot * 2 + h): HALF_SPILL's bytes */
	uint32_t nspills;

	struct timer_heap timers;
	struct timer_node grace;
	struct timer_node waitq_timer;
	struct timer_node hsq_timer; /* the next handshake token is due */
	uint64_t now;    /* ms, CLOCK_MONOTONIC, once per loop */
	uint64_t now_ns; /* the same in ns: the kernel buckets' clock */
	uint64_t rng;    /* xorshift state: Retry-After jitter, drain order */

	struct wgen *gen; /* current, head of the list */
	struct wlistener *listeners;
	unsigned nlisteners;

	struct conn_chunk *chunks;
	uint32_t nslots;           /* connection slots allocated */
	/*
	 * With an access log: each slot's client address, taken at accept (by
	 * close a peer that reset or finished is nobody's peer any more).
	 * Grown to nslots when needed; NULL without an access log.
	 */
	union peer_addr {
		sa_family_t family; /* 0: unknown */
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} *peers;
	uint32_t npeers;
	struct conn *free_conns;
	struct clist starved; /* open connections waiting for a buffer, oldest first */
	struct clist settle;  /* connections a bulk run of admission decided on (conn_defer) */
	struct drain_job *drains;
	struct timer_node drain_timer;
	uint32_t serial;
	uint64_t nconns;      /* slots in use */
	uint32_t nwaiting;    /* clients in this worker's wait queues */
	int stopping;
	int done;
	struct log_rl rl;
	/*
	 * Out of descriptors (EMFILE, ENFILE; or ENOBUFS, ENOMEM) until this
	 * ms: accepting waits, and so do accepted clients' backend sockets
	 * (w_nofd). rl_nofd: the shortage is logged once per interval.
	 */
	uint64_t nofd_until;
	struct log_rl rl_nofd;

	struct worker_stats stats;
} __attribute__((aligned(64)));

#define BUF_GROUP 0

/* ---- small shared helpers ---------------------------------------------------- */

static inline void stat_inc(_Atomic uint64_t *c)
{
	/* single writer: a relaxed load+store, no locked instruction */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_dec(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - 1,
			      memory_order_relaxed);
}

/* For counters several workers write (per pool): a real atomic add. */
static inline void stat_shared_inc(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* 32-bit counters that wrap: the reader takes differences. */
static inline void stat_inc32(_Atomic uint32_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void stat_shared_inc32(_Atomic uint32_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/*
 * An SQE, submitting what is queued when the SQ is full. Submission only
 * fails for reasons that leave nothing to do but retry (EINTR, EAGAIN), so
 * this never returns NULL.
 */
static inline struct io_uring_sqe *w_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&w->ring)))
		io_uring_submit(&w->ring);
	return sqe;
}

/*
 * A table of per-slot pointers (*V, *N entries) made to hold NEED: grown,
 * the new entries NULL. 0, or -1 without memory (the table is unchanged).
 */
static inline int slot_table_fit(void **v, uint32_t *n, uint32_t need, size_t elem)
{
	char *p;

	if (need <= *n)
		return 0;
	p = realloc(*v, (size_t)need * elem);
	if (!p)
		return -1;
	memset(p + (size_t)*n * elem, 0, (size_t)(need - *n) * elem);
	*v = p;
	*n = need;
	return 0;
}

/* Where buffer BID's bytes are. */
static inline char *w_buf(struct worker *w, uint16_t bid)
{
	return bid < w->nbufs ? w->bufs + (size_t)bid * w->bufsize
			      : w->xbufs + (size_t)(bid - w->nbufs) * w->bufsize;
}

/* A buffer of the userspace pool, or NO_BID when none is free. */
static inline uint16_t w_xbuf_get(struct worker *w)
{
	return w->nxfree ? w->xfree[--w->nxfree] : NO_BID;
}

/* Give buffer BID back: to the ring, or to the userspace pool. */
static inline void w_buf_return(struct worker *w, uint16_t bid)
{
	if (bid >= w->nbufs) {
		w->xfree[w->nxfree++] = bid;
		return;
	}
	io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * w->bufsize, w->bufsize, bid,
			      io_uring_buf_ring_mask(w->nbufs), 0);
	io_uring_buf_ring_advance(w->br, 1);
	w->bufs_out--;
}

#define DRAIN_TICK_MS 100
#define DRAIN_WS_MS 5000 /* a WebSocket waits this long at most for a message boundary */

static inline uint64_t w_random(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/*
 * ERR from WHAT: if it says descriptors (or kernel memory) ran out, pause
 * accepting, and accepted clients' backend sockets, for ACCEPT_BACKOFF_MS
 * (clients wait in the kernel's accept queue, costing nothing; admission's
 * descriptor budget holds the others), log it once per interval, return 1;
 * otherwise 0. Whatever is tried next fails the same way until a
 * connection closes, and a shortage repeats ten times a second.
 */
static inline int w_nofd(struct worker *w, int err, const char *what)
{
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return 0;
	w->nofd_until = w->now + ACCEPT_BACKOFF_MS;
	log_ratelimited(&w->rl_nofd, LOG_LVL_WARN,
			"worker %u: %s: %s; accepting paused, retried every %u ms", w->id, what,
			strerror(err), ACCEPT_BACKOFF_MS);
	return 1;
}

#endif
