/* SPDX-License-Identifier: MIT */
/*
 * balance — choose the backend of a pool for a new connection.
 *
 * least_conn picks the usable backend with the fewest live connections
 * (connecting or open, across all workers); round_robin takes them in turn.
 * Both start their scan at a rotating cursor, so ties spread evenly instead
 * of piling onto the first backend. A backend is skipped when it is down
 * (backend_usable), when this client already tried it, or when its kernel
 * limits would refuse a connect now (backend_kernel_wait).
 */
#ifndef SLUICE_BALANCE_H
#define SLUICE_BALANCE_H

#include <stdint.h>

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
int balance_pick(struct snap_pool *p, uint64_t tried, unsigned worker, uint64_t now_ns,
		 uint64_t *wait_ns, unsigned *limited);

#endif
