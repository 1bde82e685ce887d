/* SPDX-License-Identifier: MIT */
/*
 * snapshot — the daemon's runtime view of one config: listening sockets and
 * pools resolved to backend objects. Built whole on the main thread (at start
 * and on SIGHUP); either every part of it is ready or it is not used. It is
 * immutable once built and reference counted: each worker holds a reference
 * while it still has connections accepted under it.
 *
 * Listening sockets live in `struct lsock`, one per address, with one
 * SO_REUSEPORT socket per worker. A new snapshot takes over the lsock of a
 * listener whose address did not change, so a reload never closes a socket
 * with clients in its accept queue. Each worker owns the descriptor of its
 * own socket: it arms accept on it and closes it when a snapshot without
 * that address is adopted, or at shutdown.
 */
#ifndef SLUICE_SNAPSHOT_H
#define SLUICE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "proxy/backend.h"
#include "proxy/patience.h"
#include "userspace/config.h"

struct lsock {
	_Atomic int refs;
	struct cfg_addr addr;
	unsigned nfds;
	int fds[CFG_MAX_WORKERS];
};

#define BE_SRC_NONE 0xff

/* Why a client was turned away or lost before reaching a backend. */
enum refusal {
	REFUSE_FULL,          /* waited for a slot (max_conns) until its time was up */
	REFUSE_RATE,          /* waited for a token (rate) until its time was up */
	REFUSE_QUEUE_FULL,    /* the queue held queue.max clients already */
	REFUSE_QUEUE_TIMEOUT, /* waited queue.timeout_ms without the pool being limited */
	REFUSE_DOWN,          /* no backend up */
	REFUSE_CLIENT_GONE,   /* the client left while it waited: no backend was bothered */
	REFUSE_HANDSHAKE,     /* TLS: the handshake queue was full, or it waited handshake_ms */
	REFUSE_PORTS,         /* no source port left to any backend (ip_local_port_range) */
	REFUSE_COUNT,
};

/*
 * Counters of a pool that outlive snapshots: a reload that keeps the pool's
 * name keeps its counts. Written by workers with relaxed atomics.
 */
struct pool_stats {
	_Atomic int refs;
	char name[CFG_NAME_MAX];
	_Atomic uint64_t refused[REFUSE_COUNT];
	_Atomic uint64_t queued_total;   /* clients that had to wait */
	_Atomic uint64_t admitted_total; /* clients that got a backend */
	_Atomic uint64_t wait_hist[16];  /* queue waits: le 2^k * 10 ms, k = 0..14, +Inf */
	_Atomic uint64_t wait_sum_us;
	/*
	 * The clients' patience (proxy/patience.h): workers count who left
	 * and who was still there, by time since arrival; the main thread
	 * learns from them (proxy/learn.c) and publishes patience_ms (0:
	 * nothing learned) and setup_ms, what its backends take to answer.
	 */
	_Atomic uint32_t pat_left[PATIENCE_BINS], pat_stayed[PATIENCE_BINS];
	_Atomic uint32_t patience_ms, setup_ms;
	/* main thread only */
	uint32_t seen_left[PATIENCE_BINS], seen_stayed[PATIENCE_BINS];
	struct patience patience;
};

struct snap_pool {
	const struct cfg_pool *cfg;
	struct backend **be;
	unsigned nbe;
	/* per backend, per `source` address: the backend's slot (BE_SRC_NONE: other family) */
	uint8_t (*src)[CFG_MAX_SOURCES];
	unsigned index;      /* in the snapshot's pools */
	_Atomic uint32_t rr; /* round-robin cursor, also breaks least_conn ties */
	struct pool_stats *stats;
	/*
	 * The wait queue, shared by the workers: each keeps its own FIFO of
	 * the pool's waiting clients and publishes the ticket of its oldest,
	 * so a token goes to the globally oldest waiter (within the tokens in
	 * sight), and queue.max holds across workers.
	 */
	_Atomic uint32_t queued;
	_Atomic uint64_t tickets;
	_Atomic uint64_t heads[CFG_MAX_WORKERS]; /* UINT64_MAX: no waiter there */
	_Atomic uint64_t retry_slot_ns; /* the Retry-After schedule, see worker.c */
	struct ssl_ctx_st *tls_ctx; /* TLS to the backends, or NULL */
};

/* TLS handshakes, by what the ClientHello asked for. */
enum hs_kind { HS_FULL, HS_RESUMED, HS_KINDS };

/* Why a TLS client never finished its handshake. */
enum hs_fail {
	HSF_NOT_TLS,   /* the first bytes were not a TLS record */
	HSF_BAD_HELLO, /* a malformed or oversized ClientHello */
	HSF_TIMEOUT,   /* not done within timeouts.handshake_ms (queue time included) */
	HSF_ERROR,     /* OpenSSL failed it: alert, no shared cipher, bad record... */
	HSF_CLOSED,    /* the client left before it was done */
	HSF_COUNT,
};

struct listener_learn;

/*
 * Counters of a listener that outlive snapshots, like struct pool_stats;
 * the handshake buckets and queue counts live here too, so a reload neither
 * refills the buckets nor forgets who waits.
 */
struct listener_stats {
	_Atomic int refs;
	char name[CFG_NAME_MAX];
	_Atomic uint64_t accepted; /* client connections accepted */
	_Atomic uint64_t active;   /* ... still open */
	__u64 hs_tat[HS_KINDS];  /* GCRA state of the handshake buckets (CAS, bpf/bucket.h) */
	_Atomic uint32_t hs_waiting[HS_KINDS]; /* in the handshake queues, all workers */
	_Atomic uint64_t hs_done[HS_KINDS];    /* handshakes completed, by what they were */
	_Atomic uint64_t hs_queued[HS_KINDS];  /* clients that waited for a handshake token */
	_Atomic uint64_t hs_failed[HSF_COUNT];
	_Atomic uint64_t hs_refused[HS_KINDS]; /* turned away: queue full or waited too long */
	_Atomic uint64_t resume_misses;        /* offered a ticket or session, got a full one */
	/*
	 * Handshake budgets set to "auto" (proxy/learn.c): workers time each
	 * handshake from its start to its end, by the budget it drew from,
	 * and count clients that left in the middle; the main thread runs a
	 * controller per budget and publishes the bucket in force (0: none
	 * yet, the snapshot's start values hold).
	 */
	_Atomic uint64_t hs_begun[HS_KINDS], hs_left[HS_KINDS], hs_ended[HS_KINDS];
	_Atomic uint32_t hs_hist[HS_KINDS][SETUP_BINS];
	_Atomic uint64_t hs_auto_interval[HS_KINDS], hs_auto_tau[HS_KINDS];
	_Atomic uint32_t hs_auto_rate[HS_KINDS], hs_auto_state[HS_KINDS];
	_Atomic uint32_t hs_expect_us[HS_KINDS]; /* what a handshake takes now (p90, last 2 s) */
	struct listener_learn *learn; /* main thread only; freed with these stats */
};

struct tls_server;

struct snap_listener {
	const struct cfg_listener *cfg;
	struct lsock *ls;
	struct snap_pool *pool;
	struct listener_stats *stats;
	struct tls_server *tls;              /* NULL: plain TCP */
	__u64 hs_interval[HS_KINDS], hs_tau[HS_KINDS]; /* handshake budgets (0: unlimited) */
};

struct snapshot {
	_Atomic int refs;
	uint64_t gen; /* 1 for the first, +1 per successful reload */
	struct sl_config *cfg;
	struct snap_listener *listeners;
	unsigned nlisteners;
	struct snap_pool *pools;
	unsigned npools;
};

/*
 * Build a snapshot from CFG for NWORKERS workers, reusing open sockets of
 * PREV (may be NULL). On success the snapshot owns CFG and holds one
 * reference. On failure returns NULL, leaves CFG to the caller, writes a
 * one-line reason into ERR and closes any socket it opened.
 */
struct snapshot *snapshot_build(struct sl_config *cfg, const struct snapshot *prev,
				unsigned nworkers, uint64_t gen, char *err, size_t errlen);

static inline void snapshot_get(struct snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Drop a reference; the last one frees it (NULL is fine). */
void snapshot_put(struct snapshot *s);

/*
 * Throw away a snapshot that was built but never handed to a worker,
 * closing the sockets it opened (those it shares with PREV stay open).
 * It owned its config: that goes too.
 */
void snapshot_discard(struct snapshot *s);

/* The listener of S that uses LS, or NULL. */
struct snap_listener *snapshot_find_lsock(struct snapshot *s, const struct lsock *ls);

#endif
