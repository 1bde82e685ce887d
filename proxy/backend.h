/* SPDX-License-Identifier: MIT */
/*
 * backend — the servers sluice connects to, as long-lived objects keyed by
 * address. A backend outlives the configs that name it: a reload that keeps
 * an address keeps its object, so its live-connection count (what least_conn
 * balances on), its failure state and its counters carry over; a backend
 * removed from the config stays alive while connections still use it.
 *
 * The registry (lookup, create) is used by the main thread only. The
 * counters are read and written by every worker: `active` and the failure
 * state are shared atomics; traffic counters are per worker, one cache line
 * each, written only by their worker.
 */
#ifndef SLUICE_BACKEND_H
#define SLUICE_BACKEND_H

#include <stdatomic.h>
#include <stdint.h>

#include "userspace/config.h"

/* consecutive failed connects that mark a backend down, and for how long */
#define BACKEND_FAIL_DOWN 3
#define BACKEND_DOWN_MS 2000

struct backend_wstats {
	_Atomic uint64_t connects;  /* backend connections established */
	_Atomic uint64_t failures;  /* failed or timed out connects */
	_Atomic uint64_t bytes_out; /* client → backend */
	_Atomic uint64_t bytes_in;  /* backend → client */
} __attribute__((aligned(64)));

struct backend {
	_Atomic int refs;
	struct cfg_addr addr;
	_Atomic uint32_t active;          /* connections connecting or open */
	_Atomic uint32_t fails;           /* consecutive failed connects */
	_Atomic uint64_t down_until_ms;   /* monotonic; 0 = not down */
	struct backend *next;             /* registry list (main thread) */
	struct backend_wstats ws[CFG_MAX_WORKERS];
};

/* The backend for ADDR with a new reference: the existing one or a new one. */
struct backend *backend_get(const struct cfg_addr *addr);
/* Drop a reference; the last one unlinks and frees it. NULL is fine. */
void backend_put(struct backend *be);

/* Visit every registered backend (main or admin thread; takes the registry lock). */
void backend_foreach(void (*fn)(struct backend *be, void *arg), void *arg);

/* May a new connection be tried on BE now? (down state expires by itself) */
static inline int backend_usable(const struct backend *be, uint64_t now_ms)
{
	return atomic_load_explicit(&be->down_until_ms, memory_order_relaxed) <= now_ms;
}

/* A connect to BE succeeded: it is up again. */
void backend_connect_ok(struct backend *be, unsigned worker);
/* A connect to BE failed; after BACKEND_FAIL_DOWN in a row it is down for BACKEND_DOWN_MS. */
void backend_connect_failed(struct backend *be, unsigned worker, uint64_t now_ms);

/* Sum a per-worker counter over all workers. */
uint64_t backend_sum(const struct backend *be, size_t offset);
#define backend_total(be, field) backend_sum((be), __builtin_offsetof(struct backend_wstats, field))

#endif
