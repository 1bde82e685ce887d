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

#include <linux/types.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bpf/sluice.h"
#include "bpf/bucket.h"
#include "userspace/config.h"

/* consecutive failed connects that mark a backend down, and for how long */
#define BACKEND_FAIL_DOWN 3
#define BACKEND_DOWN_MS 2000
/* a backend at max_conns: how soon to look again (a slot frees unannounced) */
#define BACKEND_FULL_RETRY_NS 10000000ull
/* backend_kernel_wait(): the ledger is full */
#define BACKEND_WAIT_FULL (UINT64_MAX - 1)
/* backend_kernel_wait(): the kernel's limits do not apply, nothing to wait for */
#define BACKEND_NO_WAIT 0

/*
 * Set-up latency (backend connect to its first byte) in SETUP_BINS bins:
 * bin k holds [SETUP_T0_NS * 1.5^k, SETUP_T0_NS * 1.5^(k+1)), the first
 * everything below, the last everything above (100 us .. 25 s).
 */
#define SETUP_BINS 32
#define SETUP_T0_NS 100000.0
#define SETUP_GROWTH 1.5

#define BE_SRC_SLOTS (CFG_MAX_SOURCES + 1)
_Static_assert(BE_SRC_SLOTS <= 7, "a connection keeps its source slot + 1 in 3 bits");

struct backend_wstats {
	_Atomic uint64_t connects;  /* backend connections established */
	_Atomic uint64_t failures;  /* failed or timed out connects */
	_Atomic uint64_t refused_full; /* connects the kernel refused: max_conns */
	_Atomic uint64_t refused_rate; /* connects the kernel refused: no token */
	uint32_t pending; /* connects this worker submitted, not yet completed */
	_Atomic uint64_t bytes_out; /* client → backend */
	_Atomic uint64_t bytes_in;  /* backend → client */
	_Atomic uint64_t answered;   /* set-ups whose backend sent its first byte */
	_Atomic uint64_t wasted;     /* admitted clients that left before their backend answered */
	_Atomic uint64_t unanswered; /* backends that closed or reset before answering */
	_Atomic uint32_t setup_hist[SETUP_BINS]; /* answered set-ups by latency */
} __attribute__((aligned(64)));

/*
 * What the main thread learns of a backend (proxy/learn.c), published for
 * the workers (admission), health.c (the rate in force) and the admin page.
 */
struct backend_learned {
	_Atomic uint32_t rate;      /* rate = "auto": the rate to enforce; 0: none yet */
	_Atomic uint32_t state;     /* enum ratectl_state */
	_Atomic uint32_t p50_us, p99_us, base_us; /* set-up latency, last seconds */
	_Atomic uint32_t setup_us;  /* what a set-up is expected to take now */
	const char *_Atomic why;    /* the controller's last reason (static string) */
};

struct backend {
	_Atomic int refs;
	struct cfg_addr addr;
	_Atomic uint32_t active;          /* connections connecting or open */
	_Atomic uint32_t fails;           /* consecutive failed connects */
	_Atomic uint64_t down_until_ms;   /* monotonic; 0 = not down */
	/*
	 * Health, set by the main thread's checks (proxy/health.c) and, for
	 * hc_down, by workers whose connects fail `fall` times in a row while
	 * active checks watch the backend (they alone bring it back).
	 */
	_Atomic int checked;    /* active health checks watch it */
	_Atomic uint32_t fall;  /* consecutive failed connects that mark it down */
	_Atomic int hc_down;    /* failed its health checks */
	_Atomic int agent_down; /* its agent says down, fail or stopped */
	_Atomic int drained;    /* agent drain/maint: no new clients */
	_Atomic int op_drained; /* sluicectl drain: no new clients, connections closed, paced */
	/* what the main thread watches, for /status and alerts */
	_Atomic uint64_t hc_last_ms; /* monotonic ms of the last health check; 0: none */
	_Atomic int hc_last_ok;
	_Atomic int starved;     /* no new connection for starved_after_s while its peers had some */
	_Atomic uint32_t ov_rate, ov_max; /* sluicectl set: overrides until the next reload (UINT32_MAX: none) */
	/*
	 * With a fleet (proxy/fleet.c): this host's part of the backend's
	 * max_conns, rate and burst, which are fleet totals (UINT32_MAX: no
	 * part, the configured value applies). Written by the main thread.
	 */
	_Atomic uint32_t fleet_max, fleet_rate, fleet_burst;
	_Atomic uint64_t synth_ok, synth_fail; /* synthetic checks through sluice to it */
	/*
	 * The kernel's ledger and bucket for this address (shared memory,
	 * written by the BPF programs), or NULL without BPF. Set by the main
	 * thread when a config is applied; stable for the life of the object.
	 */
	volatile struct sl_backend *_Atomic kb;
	/*
	 * Source ports: connections to this backend per local source address
	 * (slot 0: the kernel's choice; others: pools' `source` addresses,
	 * added by the main thread, never removed). Each source address has
	 * backend_ports() ephemeral ports for this backend.
	 */
	struct be_src {
		struct sockaddr_storage addr;
		socklen_t len;
		_Atomic uint32_t used;
		_Atomic int full; /* a connect found no port left: skipped until one closes */
	} src[BE_SRC_SLOTS];
	unsigned nsrc; /* slots in use beyond 0 (main thread) */
	struct backend_learned learned;
	struct learn_be *learn;           /* proxy/learn.c's state (main thread) */
	struct backend *next;             /* registry list (main thread) */
	struct backend_wstats ws[CFG_MAX_WORKERS];
};

struct learn_be;

/* Ephemeral ports a source address has for one backend (ip_local_port_range). */
uint32_t backend_ports(void);
/* Read ip_local_port_range again (main thread: at start and reloads). */
void backend_ports_load(void);
/* BE's slot for source address A (added if new; 0, the kernel's choice, when full). */
unsigned backend_src_slot(struct backend *be, const struct cfg_addr *a);
/* A connection from slot SLOT to BE closed (or never connected). */
static inline void backend_src_release(struct backend *be, unsigned slot)
{
	atomic_fetch_sub_explicit(&be->src[slot].used, 1, memory_order_relaxed);
	atomic_store_explicit(&be->src[slot].full, 0, memory_order_relaxed);
}

/* The set-up latency bin of NS nanoseconds. */
static inline unsigned backend_setup_bin(uint64_t ns)
{
	unsigned k = 0;
	double edge = SETUP_T0_NS * SETUP_GROWTH;

	while (k < SETUP_BINS - 1 && (double)ns >= edge) {
		edge *= SETUP_GROWTH;
		k++;
	}
	return k;
}

/* The backend for ADDR with a new reference: the existing one or a new one. */
struct backend *backend_get(const struct cfg_addr *addr);
/* Drop a reference; the last one unlinks and frees it. NULL is fine. */
void backend_put(struct backend *be);

/* Visit every registered backend (main or admin thread; takes the registry lock). */
void backend_foreach(void (*fn)(struct backend *be, void *arg), void *arg);

/* May a new connection be tried on BE now? */
static inline int backend_usable(const struct backend *be, uint64_t now_ms)
{
	return !atomic_load_explicit(&be->hc_down, memory_order_relaxed) &&
	       !atomic_load_explicit(&be->agent_down, memory_order_relaxed) &&
	       !atomic_load_explicit(&be->drained, memory_order_relaxed) &&
	       !atomic_load_explicit(&be->op_drained, memory_order_relaxed) &&
	       atomic_load_explicit(&be->down_until_ms, memory_order_relaxed) <= now_ms;
}

/*
 * Would the kernel admit one more connect to BE at NOW_NS from WORKER? 0 if
 * so (or if BE has no kernel limits); otherwise the ns until a token is
 * due, or BACKEND_WAIT_FULL when the ledger is full (no telling when a
 * slot frees). The worker's own connects in flight count as taken: the
 * kernel consumes their slot and token only when it sees them, and several
 * clients must not all go for the one token in sight. The kernel decides in
 * the end; this only spares futile connects.
 */
static inline uint64_t backend_kernel_wait(const struct backend *be, unsigned worker,
					   uint64_t now_ns)
{
	volatile struct sl_backend *kb = atomic_load_explicit(&be->kb, memory_order_acquire);
	uint32_t pending = be->ws[worker].pending;
	uint64_t interval, tau, tat, tokens;

	if (!kb)
		return 0;
	if (kb->max_conns && kb->active + pending >= kb->max_conns)
		return BACKEND_WAIT_FULL;
	interval = kb->bucket.interval_ns;
	if (!interval)
		return 0;
	tau = kb->bucket.tau_ns;
	tat = kb->bucket.tat_ns;
	tokens = sl_gcra_tokens(tat, now_ns, interval, tau, UINT32_MAX);
	if (tokens > pending)
		return 0;
	/* the token after those already spoken for (an idle bucket's tat is in the past) */
	tat = (tat > now_ns ? tat : now_ns) + (uint64_t)pending * interval;
	return tat > now_ns + tau ? tat - now_ns - tau : 0;
}

/* A connect to BE succeeded: it is up again. */
void backend_connect_ok(struct backend *be, unsigned worker);
/*
 * A connect to BE failed. Watched by health checks: after `fall` in a row it
 * is down until they see it up. Otherwise: after BACKEND_FAIL_DOWN in a row
 * it is down for BACKEND_DOWN_MS, then one client probes it.
 */
void backend_connect_failed(struct backend *be, unsigned worker, uint64_t now_ms);

/*
 * Synthetic checks: the main thread connects through a listener from local
 * port PORT and wants the worker that accepts it to go to BE. 0 or -ENOSPC.
 * A worker asks backend_synth_lookup(peer port) for the backend, or NULL.
 */
int backend_synth_register(uint16_t port, struct backend *be);
void backend_synth_unregister(uint16_t port);
struct backend *backend_synth_lookup(uint16_t port);

/* Sum a per-worker counter over all workers. */
uint64_t backend_sum(const struct backend *be, size_t offset);
#define backend_total(be, field) backend_sum((be), __builtin_offsetof(struct backend_wstats, field))

#endif
