/* SPDX-License-Identifier: MIT */
/*
 * worker_int — what the modules of a worker share: the connection and the
 * worker themselves, and the calls between worker.c (loop, listeners,
 * forwarding, a connection's lifetime) and admit.c (request head, backend
 * choice, connect, wait queue, refusals). Not for use outside a worker.
 */
#ifndef SLUICE_WORKER_INT_H
#define SLUICE_WORKER_INT_H

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
#include "proxy/wsframe.h"
#include "userspace/log.h"

#define HALF_QMAX 4
#define NO_BID 0xffff /* no buffer (bids: ring [0, nbufs), userspace pool [nbufs, nbufs + nx)) */

enum timer_kind { TK_CONN = 1, TK_LISTENER, TK_GRACE, TK_WAITQ, TK_DRAIN, TK_HSQ };

enum half_flags {
	HALF_RECV = 1 << 0,    /* a receive is in flight */
	HALF_SEND = 1 << 1,    /* a send is in flight */
	HALF_EOF = 1 << 2,     /* the source sent FIN */
	HALF_DONE = 1 << 3,    /* FIN forwarded: nothing more goes this way */
	HALF_STARVED = 1 << 4, /* data waits but the buffer ring was empty */
	HALF_SPILL = 1 << 5,   /* the sink did not take it all: the rest is in a spill */
};

/*
 * What a half's sink did not take at once: its unsent bytes, moved out of
 * the worker's shared buffers into memory of the connection's own, so a
 * peer that stops reading holds no buffer another connection needs. The
 * half receives nothing more until the spill is sent: the kernel's socket
 * buffers and TCP's flow control hold the rest. At most one receive's
 * worth (buffers.size) per direction.
 */
struct spill {
	uint64_t since; /* ms: the sink's last progress, or the stall's start */
	uint32_t len, off;
	char data[];
};

struct half {
	uint16_t bid[HALF_QMAX];
	uint32_t len[HALF_QMAX];
	uint32_t sent; /* bytes of the head buffer already sent */
	uint8_t head, count, flags;
};

enum conn_state {
	CONN_FREE = 0,
	CONN_HELLO,      /* TLS: peeking at the ClientHello */
	CONN_HSWAIT,     /* TLS: waiting for a handshake token */
	CONN_TLS,        /* TLS: handshake in progress */
	CONN_HEAD,       /* mode http: waiting for the whole request head */
	CONN_CONNECTING, /* a backend connect in flight */
	CONN_WAITING,    /* in the pool's wait queue */
	CONN_OPEN,       /* forwarding */
	CONN_RESPONDING, /* sending sluice's own answer (400, 503), then closing */
	CONN_CLOSING,
};

enum conn_flags {
	CF_HTTP = 1 << 0,    /* accepted on a mode = "http" listener */
	CF_WS = 1 << 1,      /* the head asked for a WebSocket upgrade */
	CF_POLL = 1 << 2,    /* a poll on the client is armed (head data, or client gone) */
	CF_LISTED = 1 << 3,  /* on a list: the starved list (open) or a wait queue (waiting) */
	CF_LOWAT = 1 << 4,   /* SO_RCVLOWAT was raised to wait for more of the head */
	CF_WAITED = 1 << 5,  /* went through the wait queue */
	CF_CONSUMED = 1 << 6, /* the head was read out of the socket (responding) */
	CF_DRAIN = 1 << 7,    /* being drained: a Close frame goes out at the next boundary */
};

enum conn_flags2 {
	CF2_PINNED = 1 << 0,  /* a synthetic check's: to its one backend, no other */
	CF2_TLS0 = 1 << 1,    /* TLS with the client (w->tlsv[slot]) */
	CF2_TLS1 = 1 << 2,    /* TLS with the backend */
	CF2_RESUMED = 1 << 3, /* its ClientHello offered a session: drew from resumed_per_s */
	CF2_PEER_EOF = 1 << 4, /* the client finished sending before its head or hello was whole */
	CF2_HS_DONE = 1 << 5,  /* its handshake was counted as done */
	CF2_XSTARVED = 1 << 6, /* TLS: waits for a buffer of the userspace pool */
	CF2_SETUP = 1 << 7,    /* open, its backend has not answered yet (ticket: since when, ns) */
};
#define CF2_TLS(side) (CF2_TLS0 << (side))

/*
 * How a connection ended, for the access log: in the same byte as its
 * refusal reason (enum refusal, below REFUSE_COUNT), after those.
 */
enum conn_end {
	END_NONE = REFUSE_COUNT,
	END_OK,       /* FIN both ways */
	END_RESET,    /* a reset or error on either side */
	END_IDLE,     /* timeouts.idle_s */
	END_DRAIN,    /* a paced drain */
	END_GRACE,    /* drain.grace_s ran out */
	END_BAD_HEAD, /* answered 400 */
	END_HEAD_TIMEOUT,
	END_SEND_STALL, /* timeouts.send_stall_ms */
};

struct wgen;
struct tls_conn;

struct conn {
	struct timer_node timer;
	int fd[2]; /* client, backend */
	uint8_t state;
	uint8_t tries;   /* connects that failed: bounded by the pool's retries */
	uint8_t refusal; /* enum refusal to count if it ends without a backend; REFUSE_COUNT: none */
	uint8_t flags;   /* enum conn_flags */
	uint8_t flags2;   /* enum conn_flags2 */
	uint16_t head_len; /* mode http: bytes of the request head, still in the socket */
	uint64_t accepted_ms;
	uint64_t attempt_ms; /* current connect attempt, or when it began waiting */
	uint64_t active_ms;  /* last byte either way */
	uint64_t tried;      /* balance_bit() of backends tried */
	uint64_t ticket;     /* place in the pool's wait queue; open: see CF2_SETUP */
	uint32_t serial;     /* tells a reused slot from the connection a drain picked */
	uint32_t slot;       /* its index among the worker's slots (w->peers) */
	struct snap_listener *sl; /* the listener that accepted it, in c->gen's snapshot */
	struct listener_stats *lst;
	struct backend *be;
	struct snap_pool *pool;
	struct wgen *gen;
	struct conn *next, *prev; /* free list; starved list or wait queue */
	char *resp;               /* CONN_RESPONDING: the answer being sent (malloc'd) */
	uint16_t resp_len;
	/*
	 * Its operations in flight: bit OP for ud_pack(c, OP) (conn_op). Set
	 * when submitted, cleared by dispatch when the completion comes; the
	 * slot is freed only when it is 0, so no completion finds it reused.
	 */
	uint16_t ops;
	uint32_t waited_ms; /* in the wait queue */
	uint64_t bytes[2];  /* per half: client→backend, backend→client */
	struct half half[2];
	struct wsframe ws; /* CF_WS: where the backend→client frames stand */
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct conn) <= 256, "keep a connection within 256 bytes");
_Static_assert(_Alignof(struct conn) >= UD_ALIGN, "udata needs aligned objects");
_Static_assert(UD_CONN_LAST < 16, "a connection's ops fit in conn.ops");

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
} __attribute__((aligned(UD_ALIGN)));

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
	 * (worker_nofd). rl_nofd: the shortage is logged once per interval.
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
 * SQE, just prepared, is C's operation OP: its user_data says so and C
 * counts it in flight. Every operation of a connection goes through here.
 * Each OP is in flight at most once, so a teardown can cancel them one by
 * one by user_data, which the kernel finds by hash: a cancel by descriptor
 * compares against every request pending on the ring instead, a cost that
 * grows with the number of waiting clients.
 */
static inline void conn_op(struct conn *c, struct io_uring_sqe *sqe, enum ud_op op)
{
	io_uring_sqe_set_data64(sqe, ud_pack(c, op));
	c->ops |= (uint16_t)(1u << op);
}

/*
 * Cancel C's operation OP if it is in flight: it completes with -ECANCELED,
 * or with its own result if it finished first. The cancel itself is not
 * counted in C's ops and names nothing but a user_data value, so C may be
 * freed before the cancel's own completion (posted only if it failed: the
 * op was done already) without harm. It cannot hit a later operation that
 * reuses C's slot either: C is freed only once OP has completed, and an
 * operation prepared after this cancel is issued after it, in SQ order.
 */
static inline void conn_cancel(struct worker *w, struct conn *c, enum ud_op op)
{
	struct io_uring_sqe *sqe;

	if (!(c->ops & (1u << op)))
		return;
	sqe = w_sqe(w);
	io_uring_prep_cancel64(sqe, ud_pack(c, op), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* Cancel every operation of C's in flight. */
static inline void conn_cancel_all(struct worker *w, struct conn *c)
{
	for (unsigned op = UD_CONN_FIRST; op <= UD_CONN_LAST; op++)
		conn_cancel(w, c, (enum ud_op)op);
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

void clist_append(struct clist *l, struct conn *c);
void clist_prepend(struct clist *l, struct conn *c);
void clist_remove(struct clist *l, struct conn *c);

/* ---- worker.c, for admit.c ------------------------------------------------------- */

/* Tell worker ID (not W itself) to let its waiting clients try now. */
void worker_wake(struct worker *w, unsigned id);

/* Tear C down; RST_MASK bit i: close fd[i] with a reset. */
void worker_conn_abort(struct worker *w, struct conn *c, unsigned rst_mask);
/* (Re)queue C's deadline timer from its state. */
void worker_conn_timer_arm(struct worker *w, struct conn *c);
/*
 * WHAT failed with ERR: if ERR says descriptors (or memory) ran out, pause
 * accepting and backend sockets for a moment, log it (rate limited) and
 * return 1; otherwise 0.
 */
int worker_nofd(struct worker *w, int err, const char *what);
/* The backend is connected: start moving bytes. */
void worker_conn_open(struct worker *w, struct conn *c);
/* A completion of C's came back after it began closing: free it when the last one has. */
void worker_conn_done(struct worker *w, struct conn *c);

/* ---- admit.c, for worker.c --------------------------------------------------------- */

/* A client was accepted on a listener of MODE: read its head, or find it a backend. */
void admit_start(struct worker *w, struct conn *c);
void admit_on_connect(struct worker *w, struct conn *c, int res);
/* A UD_HEAD completion: a peek at the request head, or reading it out to answer. */
void admit_on_head(struct worker *w, struct conn *c, struct io_uring_cqe *cqe);
/* A UD_POLL completion: more of the head arrived, or the client left. */
void admit_on_poll(struct worker *w, struct conn *c, int res);
/* A UD_RESP completion: sluice's own answer was sent. */
void admit_on_resp(struct worker *w, struct conn *c, int res);
/* When C's deadline is, in a state admit.c owns. */
uint64_t admit_deadline(const struct conn *c);
/* C's deadline passed in a state admit.c owns. */
void admit_timer(struct worker *w, struct conn *c);
/* The wait-queue timer: let waiting clients try again. */
void admit_run(struct worker *w);
/* C is going away: take it out of any wait queue. */
void admit_forget(struct worker *w, struct conn *c);
/* A connection to a backend of pool P closed here: a waiting client may go. */
void admit_released(struct worker *w, struct snap_pool *p);
/* A head peek that found no buffer: a buffer is back, peek again. */
void admit_head_resume(struct worker *w, struct conn *c);
/* A TLS client's handshake or head moved on (CONN_TLS, CONN_HEAD): what next. */
void admit_tls_input(struct worker *w, struct conn *c);
/* A TLS client is going before its handshake was done: count why. */
void admit_tls_failed(struct worker *w, struct conn *c, enum hs_fail why);
/* The handshake-queue timer: let clients waiting for a handshake token go. */
void admit_hsq_run(struct worker *w);

/* How a set-up ended (CF2_SETUP), for what admission learns. */
enum setup_end {
	SETUP_ANSWERED,   /* the backend's first byte came */
	SETUP_WASTED,     /* the client left first */
	SETUP_UNANSWERED, /* the backend closed or reset first */
};
/* C's backend connection is up: its set-up is timed from the connect. */
void admit_setup_start(struct worker *w, struct conn *c);
/* C's set-up ended HOW (clears CF2_SETUP). */
void admit_setup_end(struct worker *w, struct conn *c, enum setup_end how);

/* ---- worker.c, for admit.c (TLS) ------------------------------------------------------ */

/*
 * Let a TLS connection go on: receive, send what is encrypted (sluice's own
 * answer too, closing once it is out in CONN_RESPONDING), decrypt what waits.
 */
void worker_tls_kick(struct worker *w, struct conn *c);

#endif
