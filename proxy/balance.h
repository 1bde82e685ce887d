/* SPDX-License-Identifier: MIT */
/*
 * balance — choose the backend of a pool for a new connection.
 *
 * least_conn picks the usable backend with the fewest live connections
 * (connecting or open, across all workers); round_robin takes them in turn.
 * Both start their scan at a rotating cursor, so ties spread evenly instead
 * of piling onto the first backend. A backend is skipped when it is down
 * (backend_usable), when this client already tried it, when its kernel
 * limits would refuse a connect now (backend_kernel_wait), or when no
 * source address has an ephemeral port left for it (balance_source).
 */
#ifndef SLUICE_BALANCE_H
#define SLUICE_BALANCE_H

#include <stdint.h>

#include "proxy/backend.h"
#include "proxy/snapshot.h"

/* Bit for backend I in a client's set of tried backends. */
static inline uint64_t balance_bit(unsigned i)
{
	return 1ull << (i & 63);
}

/*
 * Index of the chosen backend of P at NOW_NS, or -1 when none is usable,
 * untried and admissible. Backends the kernel would refuse right now (full
 * ledger, empty bucket) are skipped; then *WAIT_NS is how long until the
 * first of them may admit (UINT64_MAX when none is merely limited: all
 * down or tried), and *LIMITED says what held them back (BALANCE_FULL,
 * BALANCE_RATE, or both). LIMITED may be NULL.
 */
#define BALANCE_FULL 1u
#define BALANCE_RATE 2u
#define BALANCE_PORTS 4u /* no source port left to it (not waited for: refused) */
int balance_pick(struct snap_pool *p, uint64_t tried, unsigned worker, uint64_t now_ns,
		 uint64_t *wait_ns, unsigned *limited);

/*
 * The source to connect to P's backend J from: the slot of the backend's
 * (struct be_src) with the most free ports among P's source addresses of
 * its family, or slot 0 (the kernel's choice of address) when P names none
 * of that family. *FREE: its free ports (0: none left anywhere).
 */
static inline unsigned balance_source(const struct snap_pool *p, unsigned j, uint32_t *free)
{
	const struct backend *be = p->be[j];
	uint32_t ports = backend_ports(), best_free = 0, used;
	unsigned best = 0, any = 0;

	for (unsigned k = 0; k < p->cfg->nsources; k++) {
		unsigned slot = p->src[j][k];

		if (slot == BE_SRC_NONE)
			continue;
		any = 1;
		if (atomic_load_explicit(&be->src[slot].full, memory_order_relaxed))
			continue;
		used = atomic_load_explicit(&be->src[slot].used, memory_order_relaxed);
		if (used < ports && ports - used > best_free) {
			best_free = ports - used;
			best = slot;
		}
	}
	if (!any) {
		used = atomic_load_explicit(&be->src[0].used, memory_order_relaxed);
		best_free = atomic_load_explicit(&be->src[0].full, memory_order_relaxed) ||
					    used >= ports
				    ? 0
				    : ports - used;
	}
	*free = best_free;
	return best;
}

#endif
