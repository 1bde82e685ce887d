/* SPDX-License-Identifier: MIT */
/*
 * worker — one thread, one io_uring, its own SO_REUSEPORT socket per
 * listener, its own provided-buffer ring and its own connections. Workers
 * share nothing on the data path but the backend counters; the main thread
 * talks to them with IORING_OP_MSG_RING (adopt a snapshot, stop).
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "proxy/snapshot.h"

/* Messages between threads: the CQE's res carries the type. */
enum worker_msg {
	MSG_ADOPT = 1,   /* main → worker; ptr: a snapshot reference for the worker */
	MSG_STOP,        /* main → worker: stop accepting, finish within drain.grace_s */
	MSG_WORKER_EXIT, /* worker → main; ptr: the worker */
	MSG_WAKE,        /* worker → worker: its oldest waiting client may go now */
	MSG_DRAIN,       /* main → worker; ptr: a struct drain_req for the worker to free */
};

/* What to close, paced: every connection, a backend's, or a listener's. */
enum drain_kind { DRAIN_ALL, DRAIN_BACKEND, DRAIN_LISTENER };

struct drain_req {
	enum drain_kind kind;
	const void *target; /* struct backend * or struct lsock *; only compared */
	uint32_t period_s;  /* spread the closes over this */
	double cap_per_s;   /* and never faster than this (all workers; 0: no cap) */
	unsigned nworkers;  /* who share the cap */
	uint32_t grace_s;   /* with stop: how long stragglers get after period_s */
} __attribute__((aligned(16)));

/* Counters a worker keeps about itself; read by the admin thread. */
struct worker_stats {
	_Atomic uint64_t accepted;      /* client connections accepted */
	_Atomic uint64_t active;        /* client connections alive now */
	_Atomic uint64_t refused;       /* clients that got no backend (by reason: pool_stats) */
	_Atomic uint64_t bad_heads;     /* mode http: heads answered with 400 */
	_Atomic uint64_t head_timeouts; /* mode http: heads not whole within head_ms */
	_Atomic uint64_t idle_timeouts; /* connections closed by timeouts.idle_s */
	_Atomic uint64_t resets;        /* connections ended by a reset on either side */
	_Atomic uint64_t accept_errors; /* accept failures (EMFILE, ENOBUFS, ...) */
	_Atomic uint64_t nobufs;        /* receives that found the buffer ring empty */
	_Atomic uint64_t send_stalls;   /* connections closed by timeouts.send_stall_ms */
	_Atomic uint64_t spills;        /* sends a sink did not take at once: kept aside */
	_Atomic uint64_t grace_closed;  /* connections closed when drain.grace_s ran out */
	_Atomic uint64_t drained;       /* connections closed by a paced drain */
	_Atomic uint64_t ws_closes;     /* ... of those, WebSockets told Close 1012 */
	_Atomic uint32_t bufs_ring;     /* ring buffers held by connections now */
	_Atomic uint32_t bufs_user;     /* userspace-pool buffers (TLS) held now */
} __attribute__((aligned(64)));

struct worker;

/*
 * Start worker ID (a thread) serving SNAP; the worker takes over the
 * reference passed in. MAIN_RING_FD receives its MSG_WORKER_EXIT. Returns the
 * worker once its ring is up, or NULL with errno set.
 */
struct worker *worker_start(unsigned id, struct snapshot *snap, int main_ring_fd);

/* The ring descriptor other threads address MSG_RING messages to. */
int worker_ring_fd(const struct worker *w);

/* The worker's counters. */
const struct worker_stats *worker_stats(const struct worker *w);

/* Join the thread (after its MSG_WORKER_EXIT) and free the worker. */
void worker_join(struct worker *w);

#endif
