/* SPDX-License-Identifier: MIT */
/*
 * patience — how long a pool's clients stay, learned from the ones that
 * left, behind queue.timeout_ms = "auto".
 *
 * Two kinds of observation, each a time since the client arrived:
 *   left    it went away before its backend answered (from the queue, or
 *           admitted and gone before the answer): its patience ran out here;
 *   stayed  it was still there at that time (its backend answered, or sluice
 *           turned it away): its patience is longer, by how much unknown.
 * That is survival data with censoring, and the Kaplan-Meier estimator is
 * what reads it without bias: the share of clients still waiting at t is the
 * product, over the time bins up to t, of (1 - left / at risk). The patience
 * is where that share falls to 1 - PATIENCE_QUANTILE: the time by which a
 * tenth of the clients would have gone.
 *
 * Counts are kept in logarithmic time bins (PATIENCE_GROWTH apart, from
 * PATIENCE_T0_MS), twice: decaying with a half-life of PATIENCE_HALF_LIFE_S,
 * and of PATIENCE_FAST_S. The slow set is the estimate; the fast one takes
 * over when it says clients became less patient, because that is the side
 * where a stale estimate costs backend work (clients admitted in what turns
 * out to be their last moment). A pool whose clients never
 * left yet has no estimate (0). Once sluice turns clients away before they
 * would leave, nobody leaves any more and the estimate could not follow
 * clients that became more patient: so one client in PATIENCE_EXPLORE is
 * let wait PATIENCE_EXPLORE_X times longer (the caller does that), and the
 * estimate grows when they stay.
 */
#ifndef SLUICE_PATIENCE_H
#define SLUICE_PATIENCE_H

#include <stdint.h>

#define PATIENCE_BINS 64
#define PATIENCE_T0_MS 50.0
#define PATIENCE_GROWTH 1.15 /* 64 bins: 50 ms .. 380 s */
#define PATIENCE_QUANTILE 0.1
#define PATIENCE_HALF_LIFE_S 30.0
#define PATIENCE_FAST_S 4.0
#define PATIENCE_MIN_LEFT 8.0 /* departures (decayed) before there is an estimate */
#define PATIENCE_GROW_PER_S 0.1 /* how fast an estimate grows without a crossing */
#define PATIENCE_EXPLORE 16
#define PATIENCE_EXPLORE_X 1.5

struct patience_bins {
	double left[PATIENCE_BINS];
	double stayed[PATIENCE_BINS];
};

struct patience {
	struct patience_bins slow, fast;
	double est_ms; /* 0: nothing learned */
};

/* The bin of a time of MS milliseconds. */
unsigned patience_bin(uint64_t ms);

/* Where bin K starts, in ms. */
double patience_bin_ms(unsigned k);

/*
 * Add an interval's counts (LEFT, STAYED: PATIENCE_BINS each), after
 * decaying what was there by DT_S seconds, and estimate again. Returns the
 * estimate in ms (0: none yet).
 */
double patience_update(struct patience *p, const uint32_t *left, const uint32_t *stayed,
		       double dt_s);

#endif
