/* SPDX-License-Identifier: MIT */
/*
 * balance — choose the backend of a pool for a new connection.
 *
 * least_conn picks the usable backend with the fewest live connections
 * (connecting or open, across all workers); round_robin takes them in turn.
 * Both start their scan at a rotating cursor, so ties spread evenly instead
 * of piling onto the first backend. A backend is skipped when it is down
 * (backend_usable) or when this client already tried it.
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

/* Index of the chosen backend of P, or -1 when none is usable and untried. */
int balance_pick(struct snap_pool *p, uint64_t tried, uint64_t now_ms);

#endif
