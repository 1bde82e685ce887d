// SPDX-License-Identifier: MIT
/* Fleet shares: parts never sum past the total, open connections stay, demand is served. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/share.h"
#include "tests/unit/test.h"

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? (uint32_t)(rng % n) : 0;
}

int main(void)
{
	struct share_host h[8];

	/* random fleets: the sum of every host's own part is within the total */
	for (int round = 0; round < 20000; round++) {
		unsigned n = 1 + rnd(8);
		uint32_t total = 1 + rnd(round % 2 ? 200 : 100000);
		uint64_t sc = 0, sr = 0, used = 0;

		for (unsigned i = 0; i < n; i++) {
			h[i].in_use = rnd(round % 3 ? total / n + 1 : total);
			h[i].waiting = rnd(4) ? rnd(5000) : 0;
			h[i].admits = rnd(3) ? rnd(1000) : 0;
			used += h[i].in_use;
		}
		for (unsigned i = 0; i < n; i++) {
			uint32_t c = share_conns(total, h, n, i), r = share_rate(total, h, n, i);

			CHECK(c >= h[i].in_use); /* open connections count where they are */
			sc += c;
			sr += r;
		}
		CHECK(sr <= total);
		if (used <= total)
			CHECK(sc <= total);
		else
			CHECK(sc == used); /* over: nothing new anywhere */
	}

	/* one host with all the demand gets nearly all of the budget */
	h[0] = (struct share_host){ 0, 900, 0 };
	h[1] = (struct share_host){ 0, 0, 0 };
	h[2] = (struct share_host){ 0, 0, 0 };
	CHECK(share_conns(100, h, 3, 0) >= 90);
	CHECK(share_conns(100, h, 3, 1) >= 1); /* the floor: an idle host can start */
	CHECK(share_rate(100, h, 3, 0) >= 90);
	CHECK(share_rate(100, h, 3, 2) >= 1);

	/* wants that fit: each gets its own and the rest evenly */
	h[0] = (struct share_host){ 10, 5, 0 };
	h[1] = (struct share_host){ 20, 5, 0 };
	CHECK_EQ(share_conns(100, h, 2, 0), 10 + 5 + 30);
	CHECK_EQ(share_conns(100, h, 2, 1), 20 + 5 + 30);

	/* no demand anywhere: the rate evenly */
	h[0] = (struct share_host){ 0, 0, 0 };
	h[1] = (struct share_host){ 0, 0, 0 };
	CHECK_EQ(share_rate(100, h, 2, 0), 50);

	/* a host that died: the survivors' parts cover the whole total */
	h[0] = (struct share_host){ 40, 100, 50 };
	h[1] = (struct share_host){ 40, 100, 50 };
	CHECK(share_conns(100, h, 2, 0) + share_conns(100, h, 2, 1) >= 98);
	CHECK(share_rate(100, h, 2, 0) + share_rate(100, h, 2, 1) >= 98);
	/* degenerate calls */
	CHECK_EQ(share_conns(100, h, 0, 0), 0);
	CHECK_EQ(share_rate(100, h, 2, 5), 0);
	return test_result("share");
}
