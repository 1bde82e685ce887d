// SPDX-License-Identifier: MIT
#include "proxy/balance.h"

int balance_pick(struct snap_pool *p, uint64_t tried, unsigned worker, uint64_t now_ns,
		 uint64_t *wait_ns, unsigned *limited)
{
	unsigned why = 0;
	unsigned n = p->nbe, start, best_active = UINT32_MAX;
	uint64_t now_ms = now_ns / 1000000, wait = UINT64_MAX;
	int best = -1;

	*wait_ns = UINT64_MAX;
	if (n == 0)
		return -1;
	start = atomic_fetch_add_explicit(&p->rr, 1, memory_order_relaxed) % n;
	for (unsigned k = 0; k < n; k++) {
		unsigned i = (start + k) % n;
		const struct backend *be = p->be[i];
		uint64_t kw;
		uint32_t active, ports;

		if ((tried & balance_bit(i)) || !backend_usable(be, now_ms))
			continue;
		balance_source(p, i, &ports);
		if (!ports) {
			why |= BALANCE_PORTS;
			continue;
		}
		kw = backend_kernel_wait(be, worker, now_ns);
		if (kw) {
			if (kw == BACKEND_WAIT_FULL) {
				why |= BALANCE_FULL;
				kw = BACKEND_FULL_RETRY_NS;
			} else {
				why |= BALANCE_RATE;
			}
			if (kw < wait)
				wait = kw;
			continue;
		}
		if (p->cfg->balance == CFG_BAL_ROUND_ROBIN)
			return (int)i;
		active = atomic_load_explicit(&be->active, memory_order_relaxed);
		if (active < best_active) {
			best_active = active;
			best = (int)i;
		}
	}
	if (best < 0)
		*wait_ns = wait;
	if (limited)
		*limited = why;
	return best;
}
