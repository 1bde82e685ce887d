/* SPDX-License-Identifier: MIT */
/*
 * udata — what an io_uring completion is about, packed into its user_data.
 *
 * Every object that owns submissions (a connection, a worker listener, a
 * cross-thread message) is at least 16-byte aligned, so the low four bits of
 * its address are free to carry the operation. One load and one mask give
 * both; the dispatcher switches on the op. Direction-carrying ops come in
 * pairs: OP + 0 is client→backend, OP + 1 is backend→client.
 */
#ifndef SLUICE_UDATA_H
#define SLUICE_UDATA_H

#include <stdint.h>

enum ud_op {
	UD_IGNORE = 0, /* completions nobody waits for: close, cancels, MSG_RING sends */
	UD_ACCEPT,     /* ptr: struct wlistener */
	/* a connection's own operations, UD_CONN_FIRST..UD_CONN_LAST: at most one of each in flight */
	UD_CONNECT,    /* ptr: struct conn */
	UD_RECV,       /* ptr: struct conn; recv on the half's source (2 ops) */
	UD_RECV_1,
	UD_SEND,       /* ptr: struct conn; send to the half's sink (2 ops) */
	UD_SEND_1,
	UD_POLL,       /* ptr: struct conn; a poll on the client (head data, or departure) */
	UD_HEAD,       /* ptr: struct conn; a peek at the request head, or reading it out */
	UD_RESP,       /* ptr: struct conn; the send of sluice's own answer (400, 503, Close) */
	UD_HUP,        /* ptr: struct conn; a poll for a reset of the half's source (2 ops) */
	UD_HUP_1,
	UD_MSG,        /* ptr: payload of a message from another thread; res: its type */
	UD_SIGNAL,     /* ptr: main loop; a signalfd read */
	UD_TICK,       /* ptr: owner of a periodic timeout */
	UD_OP_COUNT,
};

#define UD_CONN_FIRST UD_CONNECT
#define UD_CONN_LAST UD_HUP_1

#define UD_OP_BITS 4
#define UD_OP_MASK ((uint64_t)((1u << UD_OP_BITS) - 1))
#define UD_ALIGN (1u << UD_OP_BITS)

_Static_assert(UD_OP_COUNT <= (1u << UD_OP_BITS), "ud_op must fit in UD_OP_BITS");

static inline uint64_t ud_pack(const void *ptr, enum ud_op op)
{
	return (uint64_t)(uintptr_t)ptr | (uint64_t)op;
}

static inline enum ud_op ud_op(uint64_t ud)
{
	return (enum ud_op)(ud & UD_OP_MASK);
}

static inline void *ud_ptr(uint64_t ud)
{
	return (void *)(uintptr_t)(ud & ~UD_OP_MASK);
}

/* Is OP one of a connection's own operations (ptr: struct conn)? */
static inline int ud_conn_op(enum ud_op op)
{
	return op >= UD_CONN_FIRST && op <= UD_CONN_LAST;
}

/* The half (0: client→backend, 1: backend→client) a paired op is about. */
static inline unsigned ud_half(enum ud_op op, enum ud_op base)
{
	return (unsigned)(op - base);
}

#endif
