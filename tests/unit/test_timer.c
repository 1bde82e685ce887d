// SPDX-License-Identifier: MIT
/* The deadline heap against a brute-force model, under random operations. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/timer.h"
#include "tests/unit/test.h"

#define N 5000

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(void)
{
	static struct timer_node nodes[N];
	static int queued[N];
	struct timer_heap h = { 0 };
	uint64_t now = 0;
	int live = 0;

	for (int i = 0; i < N; i++)
		timer_node_init(&nodes[i], 1);

	for (int round = 0; round < 200000; round++) {
		int i = (int)(next() % N);

		switch (next() % 4) {
		case 0: /* insert or move */
		case 1:
			if (!queued[i])
				live++;
			CHECK_EQ(timer_set(&h, &nodes[i], now + next() % 10000), 0);
			queued[i] = 1;
			break;
		case 2: /* cancel */
			if (queued[i])
				live--;
			timer_cancel(&h, &nodes[i]);
			queued[i] = 0;
			break;
		case 3: { /* advance time, pop what is due, in order */
			uint64_t last = 0;
			struct timer_node *t;

			now += next() % 200;
			while ((t = timer_pop_due(&h, now))) {
				int k = (int)(t - nodes);

				CHECK(t->when <= now);
				CHECK(t->when >= last);
				CHECK(queued[k]);
				CHECK(!timer_queued(t));
				last = t->when;
				queued[k] = 0;
				live--;
			}
			/* nothing due is left, and the model agrees on what is queued */
			for (int k = 0; k < N; k += 97)
				if (queued[k])
					CHECK(nodes[k].when > now);
			break;
		}
		}
		CHECK_EQ(h.n, live);
		if (test_failures > 20)
			break;
	}
	/* heap property over the whole array */
	for (uint32_t k = 1; k < h.n; k++)
		CHECK(h.v[(k - 1) / 2]->when <= h.v[k]->when);
	for (uint32_t k = 0; k < h.n; k++)
		CHECK_EQ(h.v[k]->idx, k);
	timer_heap_free(&h);
	return test_result("timer");
}
