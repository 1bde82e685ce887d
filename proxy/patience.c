// SPDX-License-Identifier: MIT
#include "proxy/patience.h"

#include <math.h>

unsigned patience_bin(uint64_t ms)
{
	double x = (double)ms / PATIENCE_T0_MS;
	int k;

	if (x < PATIENCE_GROWTH)
		return 0;
	k = (int)(log(x) / log(PATIENCE_GROWTH));
	return k >= PATIENCE_BINS ? PATIENCE_BINS - 1 : (unsigned)k;
}

double patience_bin_ms(unsigned k)
{
	return PATIENCE_T0_MS * pow(PATIENCE_GROWTH, (double)k);
}

/*
 * Kaplan-Meier over the bins (as a life table): the time at which the share still waiting
 * falls to 1 - PATIENCE_QUANTILE, interpolated inside its bin (log time);
 * or, when it never does within the bins anyone was seen in, -(the end of
 * the last bin where someone was at risk): a lower bound.
 */
static double km_quantile(const struct patience_bins *p)
{
	double at_risk = 0, s = 1.0, target = 1.0 - PATIENCE_QUANTILE;
	int last = -1;

	for (int k = 0; k < PATIENCE_BINS; k++)
		at_risk += p->left[k] + p->stayed[k];
	for (int k = 0; k < PATIENCE_BINS; k++) {
		double next, n;

		if (at_risk < 1e-9)
			break;
		last = k;
		/*
		 * The actuarial correction: those still there who stopped being
		 * watched inside this bin were at risk for half of it, on
		 * average. Without it, clients turned away just before their
		 * patience ran out, in the bin where the others leave, hide
		 * the departures.
		 */
		n = at_risk - p->stayed[k] / 2;
		next = n > 0 ? s * (1.0 - p->left[k] / n) : s;
		if (next <= target) {
			double f = (s - target) / (s - next);

			return PATIENCE_T0_MS * pow(PATIENCE_GROWTH, (double)k + f);
		}
		s = next;
		at_risk -= p->left[k] + p->stayed[k];
	}
	return last < 0 ? 0 : -patience_bin_ms((unsigned)last + 1);
}

/*
 * The median time at which those who left did: where there is no estimate
 * yet and Kaplan-Meier cannot say (too many were still there past the
 * departures), the departures alone are the safer first guess.
 */
static double left_median(const struct patience_bins *b)
{
	double n = 0, acc = 0;

	for (int k = 0; k < PATIENCE_BINS; k++)
		n += b->left[k];
	for (int k = 0; k < PATIENCE_BINS; k++) {
		if (acc + b->left[k] >= n / 2 && b->left[k] > 0)
			return PATIENCE_T0_MS *
			       pow(PATIENCE_GROWTH, (double)k + (n / 2 - acc) / b->left[k]);
		acc += b->left[k];
	}
	return 0;
}

/* Decay B by DT_S at HALF_LIFE_S, add the new counts; returns the departures it holds. */
static double bins_add(struct patience_bins *b, const uint32_t *left, const uint32_t *stayed,
		       double dt_s, double half_life_s)
{
	double decay = dt_s > 0 ? pow(0.5, dt_s / half_life_s) : 1.0, nleft = 0;

	for (int k = 0; k < PATIENCE_BINS; k++) {
		b->left[k] = b->left[k] * decay + left[k];
		b->stayed[k] = b->stayed[k] * decay + stayed[k];
		nleft += b->left[k];
	}
	return nleft;
}

double patience_update(struct patience *p, const uint32_t *left, const uint32_t *stayed,
		       double dt_s)
{
	double nslow = bins_add(&p->slow, left, stayed, dt_s, PATIENCE_HALF_LIFE_S);
	double nfast = bins_add(&p->fast, left, stayed, dt_s, PATIENCE_FAST_S), q;

	if (nslow < PATIENCE_MIN_LEFT)
		return p->est_ms; /* too few have left to say: keep what was learned */
	q = km_quantile(&p->slow);
	if (q > 0) {
		p->est_ms = q;
	} else if (-q > p->est_ms) {
		/*
		 * They stay longer than we thought, or too few left to tell
		 * among those still there: grow towards it, a tenth a second
		 * at most, so that a few long stays do not throw it far.
		 */
		double cap = p->est_ms > 0 ? p->est_ms * (1.0 + PATIENCE_GROW_PER_S * dt_s)
					   : left_median(&p->slow);

		p->est_ms = -q < cap ? -q : cap;
	}
	if (nfast >= PATIENCE_MIN_LEFT) {
		q = km_quantile(&p->fast);
		if (q > 0 && q < p->est_ms)
			p->est_ms = q; /* lately they leave sooner */
	}
	return p->est_ms;
}
