/* SPDX-License-Identifier: MIT */
/*
 * udata — what an io_uring completion is about, packed into its user_data.
 *
 * The op is the top byte, the object's address the rest: user-space
 * addresses on x86-64 and arm64 Linux are below 2^56 (five-level paging
 * included), so any pointer fits and no object needs a special alignment.
 * One shift and one mask give both; the dispatcher switches on the op.
 * Each op means one thing. Direction-carrying ops come in pairs: OP + 0 is
 * client→backend, OP + 1 is backend→client.
 */
#ifndef SLUICE_UDATA_H
#define SLUICE_UDATA_H

#include <stdint.h>

enum ud_op {
	UD_IGNORE = 0, /* completions nobody waits for: close, cancels, MSG_RING sends */
	UD_ACCEPT,     /* ptr: struct wlistener; a multishot accept */
	/* a connection's own operations, UD_CONN_FIRST..UD_CONN_LAST: at most one of each in flight */
	UD_CONNECT,    /* ptr: struct conn; the backend connect */
	UD_RECV,       /* ptr: struct conn; recv on the half's source (2 ops) */
	UD_RECV_1,
	UD_SEND,       /* ptr: struct conn; send to the half's sink (2 ops) */
	UD_SEND_1,
	UD_HUP,        /* ptr: struct conn; a poll for a reset of a stalled half's source (2 ops) */
	UD_HUP_1,
	UD_PEEK,       /* ptr: struct conn; a peek at the client's first bytes (hello or head) */
	UD_MORE,       /* ptr: struct conn; a poll for more of them (SO_RCVLOWAT raised) */
	UD_GONE,       /* ptr: struct conn; a poll for the departure of a waiting client */
	UD_CONSUME,    /* ptr: struct conn; reading a refused head out before the answer */
	UD_RESP,       /* ptr: struct conn; the send of sluice's own answer (400, 503, Close) */
	/* the main thread's */
	UD_MSG,        /* ptr: payload of a message from another thread; res: its type */
	UD_SIGNAL,     /* ptr: main loop; a signalfd read */
	UD_TICK,       /* ptr: owner of a periodic timeout */
	UD_PROBE_CONNECT, /* ptr: a health check's probe (proxy/health.c) */
	UD_PROBE_SEND,
	UD_PROBE_RECV,
	UD_FLEET_READ,    /* ptr: a Redis connection of the fleet's (proxy/fleet.c); readable */
	UD_FLEET_WRITE,   /* the same; writable */
	UD_OP_COUNT,
};

#define UD_CONN_FIRST UD_CONNECT
#define UD_CONN_LAST UD_RESP

#define UD_OP_SHIFT 56
#define UD_PTR_MASK ((1ull << UD_OP_SHIFT) - 1)

_Static_assert(sizeof(void *) == 8, "udata packs a 64-bit address");
_Static_assert(UD_OP_COUNT <= 256, "ud_op must fit in the top byte");

static inline uint64_t ud_pack(const void *ptr, enum ud_op op)
{
	return (uint64_t)(uintptr_t)ptr | (uint64_t)op << UD_OP_SHIFT;
}

static inline enum ud_op ud_op(uint64_t ud)
{
	return (enum ud_op)(ud >> UD_OP_SHIFT);
}

static inline void *ud_ptr(uint64_t ud)
{
	return (void *)(uintptr_t)(ud & UD_PTR_MASK);
}

/* Is OP one of a connection's own operations (ptr: struct conn)? */
static inline int ud_conn_op(enum ud_op op)
{
	return op >= UD_CONN_FIRST && op <= UD_CONN_LAST;
}

/* OP's bit in a connection's set of operations in flight. */
static inline uint16_t ud_conn_bit(enum ud_op op)
{
	return (uint16_t)(1u << (op - UD_CONN_FIRST));
}

/* The half (0: client→backend, 1: backend→client) a paired op is about. */
static inline unsigned ud_half(enum ud_op op, enum ud_op base)
{
	return (unsigned)(op - base);
}

#endif
