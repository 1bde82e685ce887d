// SPDX-License-Identifier: MIT
/*
 * test_patience — proxy/patience.c: bins, the Kaplan-Meier estimate on
 * known populations, and the closed loop sluice runs: clients whose wait
 * for a backend is random, who leave at their patience, turned away at
 * 0.9 x the estimate (one in PATIENCE_EXPLORE waits PATIENCE_EXPLORE_X x
 * the estimate), the estimate updated every 250 ms. It must find 1, 2 and
 * 5 s of patience within 30 %, and follow clients that become more or
 * less patient.
 */
#include "proxy/patience.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/unit/test.h"

static uint64_t rng = 42;

static double uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / (double)(1ull << 53);
}

static void test_bins(void)
{
	CHECK_EQ(patience_bin(0), 0);
	CHECK_EQ(patience_bin(50), 0);
	CHECK_EQ(patience_bin(1000000000), PATIENCE_BINS - 1);
	for (unsigned k = 1; k < PATIENCE_BINS - 1; k++) {
		double lo = patience_bin_ms(k);

		CHECK_EQ(patience_bin((uint64_t)ceil(lo * 1.001)), k);
		CHECK_EQ(patience_bin((uint64_t)floor(lo * 0.999)), k - 1);
	}
}

/* Every client would wait up to 4 s; all have 2 s of patience. */
static void test_known(void)
{
	struct patience p;
	uint32_t left[PATIENCE_BINS] = { 0 }, stayed[PATIENCE_BINS] = { 0 };
	double est;

	memset(&p, 0, sizeof(p));
	CHECK(patience_update(&p, left, stayed, 0.25) == 0);
	for (int i = 0; i < 2000; i++) {
		double wait = uniform() * 4000;

		if (wait > 2000)
			left[patience_bin(2000 + (uint64_t)(uniform() * 20))]++;
		else
			stayed[patience_bin((uint64_t)wait)]++;
	}
	est = patience_update(&p, left, stayed, 0.25);
	printf("known 2 s: estimate %.0f ms\n", est);
	CHECK(est > 1800 && est < 2200);
}

/*
 * The closed loop, for SECONDS: 200 clients a second arrive, each would
 * wait exp(mean WAIT_MS) for its backend and leaves at its patience
 * (PATIENCE_MS, times 1 +/- 10 %) unless sluice turns it away first.
 */
static double loop(struct patience *p, double patience_ms, double wait_ms, double seconds)
{
	uint32_t left[PATIENCE_BINS], stayed[PATIENCE_BINS];
	unsigned n = 0;

	for (double t = 0; t < seconds; t += 0.25) {
		memset(left, 0, sizeof(left));
		memset(stayed, 0, sizeof(stayed));
		for (int i = 0; i < 50; i++, n++) {
			double wait = -wait_ms * log(1.0 - uniform());
			double mine = patience_ms * (0.9 + 0.2 * uniform());
			double limit = p->est_ms > 0 ? 0.9 * p->est_ms : 10000;

			if (n % PATIENCE_EXPLORE == 0 && p->est_ms > 0)
				limit = PATIENCE_EXPLORE_X * p->est_ms;
			if (mine < wait && mine < limit)
				left[patience_bin((uint64_t)mine)]++;
			else
				stayed[patience_bin((uint64_t)(wait < limit ? wait : limit))]++;
		}
		patience_update(p, left, stayed, 0.25);
	}
	return p->est_ms;
}

static void test_loop(void)
{
	static const double patience[] = { 1000, 2000, 5000 };

	for (unsigned i = 0; i < 3; i++) {
		struct patience p;
		double est;

		memset(&p, 0, sizeof(p));
		est = loop(&p, patience[i], 3000, 60);
		printf("loop: patience %.0f ms, estimate %.0f ms\n", patience[i], est);
		CHECK(est > 0.7 * patience[i] && est < 1.3 * patience[i]);
	}
}

/* Clients become more patient (1 s, then 5 s), then less (1 s again). */
static void test_follow(void)
{
	struct patience p;
	double est;

	memset(&p, 0, sizeof(p));
	loop(&p, 1000, 6000, 60);
	est = loop(&p, 5000, 6000, 120);
	printf("follow: 1 s -> 5 s: estimate %.0f ms after 120 s\n", est);
	CHECK(est > 0.7 * 5000 && est < 1.3 * 5000);
	est = loop(&p, 1000, 6000, 10);
	printf("follow: 5 s -> 1 s: estimate %.0f ms after 10 s\n", est);
	CHECK(est > 0.7 * 1000 && est < 1.3 * 1000);
}

int main(void)
{
	test_bins();
	test_known();
	test_loop();
	test_follow();
	return test_result("test_patience");
}
