/* SPDX-License-Identifier: MIT */
/*
 * conn — a connection: its state, how it moves from one state to the next,
 * and how its operations are submitted and completed.
 *
 * The modules below conn.c (relay.c: plain forwarding; tls.c: the TLS
 * pump; admit.c: head, hello, queue, connect, refusals) never end, open or
 * time a connection themselves: each step they take returns what it asks
 * of conn.c (enum step), which acts on it in one place (conn_act). So the
 * module graph reads top-down: worker.c -> conn.c -> relay.c, tls.c,
 * admit.c -> tlsrec.c, balance.c, backend.c and the kernel's state.
 */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "proxy/worker_int.h"
#include "proxy/wsframe.h"

#define HALF_QMAX 4

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
	uint8_t tries : 5; /* connects that failed: bounded by the pool's retries (16) */
	uint8_t src : 3;   /* its backend socket's source: be->src[src - 1] (0: none counted) */
	uint8_t refusal; /* enum refusal to count if it ends without a backend; REFUSE_COUNT: none */
	uint8_t flags;   /* enum conn_flags */
	uint8_t flags2;   /* enum conn_flags2 */
	uint8_t step;     /* on w->settle: what admission decided for it (conn_defer) */
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
	 * Its operations in flight: ud_conn_bit(OP) for ud_pack(c, OP)
	 * (conn_op). Set when submitted, cleared by conn_complete when the
	 * completion comes; the slot is freed only when it is 0, so no
	 * completion finds it reused.
	 */
	uint16_t ops;
	uint32_t waited_ms; /* in the wait queue */
	uint64_t bytes[2];  /* per half: client→backend, backend→client */
	struct half half[2];
	struct wsframe ws; /* CF_WS: where the backend→client frames stand */
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct conn) <= 256, "keep a connection within 256 bytes");
_Static_assert(UD_CONN_LAST - UD_CONN_FIRST < 16, "a connection's ops fit in conn.ops");

/*
 * The state machine. A connection's state is written only by conn_to(),
 * which holds every move to the table of moves allowed (conn.c's
 * conn_moves[]): a move not in it is a bug, logged where it happens (and
 * fatal in checked builds, SAN=1, so the test suite catches it).
 */
extern const uint16_t conn_moves[CONN_CLOSING + 1];

static inline void conn_to(struct conn *c, enum conn_state to)
{
	if (!(conn_moves[c->state] & (1u << to))) {
		log_error("bug: connection slot %u moved from state %u to %u", c->slot, c->state,
			  to);
#ifdef SLUICE_CHECKED
		abort();
#endif
	}
	c->state = (uint8_t)to;
}

static inline int conn_gone(const struct conn *c)
{
	return c->state == CONN_CLOSING || c->state == CONN_FREE;
}

/*
 * What a step of relay.c, tls.c or admit.c asks of conn.c. An abort
 * carries the sides to reset (bit i: fd[i] closed with SO_LINGER 0, so a
 * reset on one side reaches the other) and, for a client whose handshake
 * was under way, how it failed (enum hs_fail + 1; 0: no failure to count).
 */
enum step {
	STEP_GO = 0,   /* carry on: it is done, or waits for a completion */
	STEP_DROP,     /* the completion meant nothing now: free it if nothing else is in flight */
	STEP_CLOSE,    /* both ways finished with a FIN: close both sockets */
	STEP_OPEN,     /* the backend is connected (and greeted): start moving bytes */
	STEP_KICK,     /* TLS: let it go on (decrypt, hand over, send, receive) */
	STEP_WS_CLOSE, /* a drained WebSocket is between two messages: send it Close */
	STEP_ABORT = 0x20, /* | reset mask (bits 0-1) | handshake failure + 1 (bits 2-4) */
};

static inline int step_abort(unsigned rst_mask)
{
	return STEP_ABORT | (int)rst_mask;
}

static inline int step_hs_failed(enum hs_fail why, unsigned rst_mask)
{
	return STEP_ABORT | (int)rst_mask | ((int)why + 1) << 2;
}


/* ---- lists of connections (struct clist) ---------------------------------------- */

static inline void clist_append(struct clist *l, struct conn *c)
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

static inline void clist_prepend(struct clist *l, struct conn *c)
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

static inline void clist_remove(struct clist *l, struct conn *c)
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

/*
 * A bulk run of admission (the queues, the handshake queues) decided STEP
 * for C, which is on no list now: conn.c acts on it when the run is over
 * (conn_settle), so admission never ends or opens a connection itself.
 */
static inline void conn_defer(struct worker *w, struct conn *c, int step)
{
	c->step = (uint8_t)step;
	clist_append(&w->settle, c);
}

/* ---- submission ---------------------------------------------------------------- */

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
	c->ops |= ud_conn_bit(op);
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

	if (!(c->ops & ud_conn_bit(op)))
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


/* ---- conn.c, for worker.c -------------------------------------------------------- */

#define CHUNK_CONNS 1024

/* Connection slots are allocated CHUNK_CONNS at a time and never moved. */
struct conn_chunk {
	struct conn_chunk *next;
	struct conn conns[CHUNK_CONNS];
};

/* A client was accepted on SL as FD. */
void conn_start(struct worker *w, struct snap_listener *sl, int fd);
/* A completion of one of C's operations (ud_conn_op(OP)). */
void conn_complete(struct worker *w, struct conn *c, enum ud_op op, struct io_uring_cqe *cqe);
/* C's deadline timer fired. */
void conn_timer(struct worker *w, struct conn *c);
/* Tear C down; RST_MASK bit i: close fd[i] with a reset. */
void conn_abort(struct worker *w, struct conn *c, unsigned rst_mask);
/* A paced drain picked C (open): a Close frame at a message boundary, or closed. */
void conn_drain(struct worker *w, struct conn *c);
/* Buffers came back: let connections that waited for one go on. */
void conn_starved_run(struct worker *w);
/* The wait-queue timer: let waiting clients try again. */
void conn_queue_run(struct worker *w);
/* The handshake-queue timer: let clients waiting for a handshake token go. */
void conn_hsq_run(struct worker *w);
/* G (a snapshot as this worker uses it) goes if it is neither current nor in use. */
void gen_release(struct worker *w, struct wgen *g);

#endif
