// SPDX-License-Identifier: MIT
#include "proxy/share.h"

uint32_t share_conns(uint32_t total, const struct share_host *h, unsigned n, unsigned me)
{
	uint64_t used = 0, want = 0, avail, floor, rest;

	if (!n || me >= n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		used += h[i].in_use;
		want += h[i].waiting;
	}
	if (used >= total)
		return h[me].in_use; /* over (a host just died, or joined): nothing new anywhere */
	avail = total - used;
	if (want <= avail) {
		/* every waiting client fits: those, and the rest evenly */
		return (uint32_t)(h[me].in_use + h[me].waiting + (avail - want) / n);
	}
	floor = avail / 20 / n;
	rest = avail - floor * n;
	return (uint32_t)(h[me].in_use + floor + rest * h[me].waiting / want);
}

uint32_t share_rate(uint32_t total, const struct share_host *h, unsigned n, unsigned me)
{
	uint64_t demand = 0, floor, rest;

	if (!n || me >= n)
		return 0;
	for (unsigned i = 0; i < n; i++)
		demand += (uint64_t)h[i].waiting + h[i].admits;
	if (!demand)
		return total / n;
	floor = total / 20 / n;
	rest = total - floor * n;
	return (uint32_t)(floor + rest * ((uint64_t)h[me].waiting + h[me].admits) / demand);
}
