// SPDX-License-Identifier: MIT
#include "proxy/ratectl.h"

#include <math.h>

#define RC_ALPHA_MIN_MS 10.0 /* a queue shorter than this is noise, not a queue */
#define RC_BETA_MAX_MS 200.0 /* the longest queue tolerated when patience is long */
#define RC_STANDING_S 0.5    /* a queue over 2 alpha this long is eased off */
#define RC_PATIENCE_MS 10000.0 /* patience assumed when none is known */
/* growth per second; an interval grows by the power of its length */
#define RC_SLOW_START 4.0 /* x4 a second: x1.15 per 100 ms */
#define RC_PROBE 0.2      /* +20 % of the rate a second */
#define RC_CUT_MIN 0.9 /* a cut takes at least 10 % off */
#define RC_CUT_MAX 0.5 /* and at most half */
#define RC_RECOVER 2.0 /* x2 a second, climbing back towards the rate before a cut */
#define RC_HOLD_MAX_S 2.0
#define RC_DT_MAX_S 5.0 /* a longer interval is a stall or a clock jump: skipped */

static const char *const state_names[RC_STATES] = {
	"start", "probing", "steady", "backoff", "floor",
};

const char *ratectl_state_name(enum ratectl_state s)
{
	return (unsigned)s < RC_STATES ? state_names[s] : "?";
}

static double clamp(const struct ratectl *rc, double r)
{
	if (rc->max > 0 && r > rc->max)
		r = rc->max;
	return r < rc->min ? rc->min : r;
}

void ratectl_init(struct ratectl *rc, double rate, double min, double max)
{
	*rc = (struct ratectl){ .min = min > 0 ? min : 1, .max = max, .state = RC_START,
				.why = "start" };
	rc->rate = clamp(rc, rate);
}

static void base_push(struct ratectl *rc, double lat)
{
	double m = lat;

	rc->win[rc->iwin] = lat;
	rc->iwin = (rc->iwin + 1) % RC_WINDOW;
	if (rc->nwin < RC_WINDOW)
		rc->nwin++;
	for (unsigned i = 0; i < rc->nwin; i++)
		if (rc->win[i] < m)
			m = rc->win[i];
	rc->base_ms = m;
}

/* The latency LAT is what a set-up costs now, not a queue: start the window over. */
static void base_reset(struct ratectl *rc, double lat)
{
	rc->nwin = rc->iwin = 0;
	base_push(rc, lat);
}

/* Cut to TO (within RC_CUT_MAX..RC_CUT_MIN of the rate); LAT: the queue's latency now, or 0. */
static void cut(struct ratectl *rc, const struct ratectl_obs *o, double to, double lat,
		const char *why)
{
	double r = to < rc->rate * RC_CUT_MIN ? to : rc->rate * RC_CUT_MIN;

	if (r < rc->rate * RC_CUT_MAX)
		r = rc->rate * RC_CUT_MAX;
	rc->pre_cut = rc->rate;

	rc->rate = clamp(rc, r);
	rc->state = rc->rate <= rc->min ? RC_FLOOR : RC_BACKOFF;
	rc->why = why;
	/* cuts in a row are one episode: its latency is the first cut's */
	if (rc->cut_lat_ms <= 0)
		rc->cut_lat_ms = lat;
	/* the cut shows once the queue it leaves has drained: wait that long */
	rc->hold = 2 + (unsigned)(lat / (o->dt_s * 1000.0));
	if (rc->hold > RC_HOLD_MAX_S / o->dt_s)
		rc->hold = (unsigned)(RC_HOLD_MAX_S / o->dt_s);
}

double ratectl_step(struct ratectl *rc, const struct ratectl_obs *o)
{
	double patience = o->patience_ms > 0 ? o->patience_ms : RC_PATIENCE_MS;
	double alpha, beta, mu, probing;
	int judged = o->answered >= RC_MIN_SAMPLES && o->lat_ms >= 0;
	int queued, wasted, failed, backlog, behind;

	if (!(o->dt_s > 0) || o->dt_s > RC_DT_MAX_S)
		return rc->rate; /* no interval to speak of */
	mu = o->answered / o->dt_s;
	probing = rc->probing_s;
	rc->probing_s = 0; /* unless this interval probes too */
	rc->queue_ms = 0;
	if (judged) {
		rc->lat_ms = o->lat_ms;
		base_push(rc, o->lat_ms);
		rc->queue_ms = o->lat_ms - rc->base_ms;
		rc->mu = rc->mu > 0 ? 0.6 * rc->mu + 0.4 * mu : mu;
	}
	alpha = rc->base_ms * 0.5 > RC_ALPHA_MIN_MS ? rc->base_ms * 0.5 : RC_ALPHA_MIN_MS;
	beta = patience / 10 < RC_BETA_MAX_MS ? patience / 10 : RC_BETA_MAX_MS;
	if (beta < 4 * alpha)
		beta = 4 * alpha;
	queued = judged && rc->queue_ms > beta;
	/*
	 * Admitted faster than answered: a queue is building, though latency
	 * does not show it yet. Smoothed: a set-up begun at the end of one
	 * interval is answered in the next.
	 */
	rc->backlog = 0.7 * rc->backlog +
		      0.3 * ((double)o->admitted - o->answered - o->wasted - o->failed);
	rc->admitted = 0.7 * rc->admitted + 0.3 * o->admitted;
	backlog = judged && rc->backlog > (rc->admitted / 5.0 > 3 ? rc->admitted / 5.0 : 3);
	/* half of what it is given left unanswered, interval after interval: it fell behind */
	behind = backlog && rc->backlog > (rc->admitted / 2.0 > 5 ? rc->admitted / 2.0 : 5) &&
		 rc->queue_ms > alpha;
	wasted = o->wasted && o->wasted * 50 > o->admitted;
	failed = o->failed && o->failed * 20 > o->admitted;

	/* answers keep up with admissions, yet the latency stays up: not a queue */
	if (queued && rc->cut_lat_ms > 0 && o->answered >= o->admitted &&
	    rc->lat_ms >= 0.8 * rc->cut_lat_ms) {
		rc->drained++;
	} else {
		rc->drained = 0;
		rc->cut_lat_ms = 0; /* the queue answered the cut: the episode is over */
	}
	rc->good *= 1.0 - 0.02 * o->dt_s;
	if (judged && o->limited && rc->queue_ms < alpha && !backlog && rc->rate > rc->good)
		rc->good = rc->rate;
	if (rc->hold) {
		rc->hold--;
		return rc->rate;
	}
	/*
	 * A queue that stood at the episode's first cut is gone within five
	 * times its length at the rates cut since (the first cut alone drains
	 * it in about one): latency that stays that long is not a queue.
	 */
	if (rc->drained >= 3 &&
	    rc->drained * o->dt_s * 1000.0 >= 5 * (rc->cut_lat_ms - rc->base_ms)) {
		base_reset(rc, rc->lat_ms);
		rc->queue_ms = 0;
		rc->drained = 0;
		rc->state = RC_STEADY;
		rc->why = "baseline moved";
		return rc->rate;
	}
	if (failed) {
		cut(rc, o, rc->rate * 0.5, judged ? o->lat_ms : 0, "failures");
		return rc->rate;
	}
	if (queued || behind) {
		double drain = 1.0 - rc->queue_ms / RC_DRAIN_MS;

		cut(rc, o, rc->mu * (drain > 0.5 ? drain : 0.5), o->lat_ms, "queueing");
		return rc->rate;
	}
	if (wasted) {
		/* nothing answered at all: the backend is stuck, halve */
		cut(rc, o, judged ? rc->mu * 0.9 : o->answered ? rc->rate * 0.8 : rc->rate * 0.5,
		    judged ? o->lat_ms : 0, "clients left first");
		return rc->rate;
	}
	if (judged && rc->queue_ms > 2 * alpha)
		rc->standing++;
	else
		rc->standing = 0;
	if (rc->standing * o->dt_s >= RC_STANDING_S) {
		rc->rate = clamp(rc, rc->rate * 0.95);
		rc->standing = 0;
		rc->state = rc->rate <= rc->min ? RC_FLOOR : RC_STEADY;
		rc->why = "standing queue";
		return rc->rate;
	}
	if (!o->limited || (judged && rc->queue_ms >= alpha) || backlog) {
		/* a queue, or one building: slow start is over */
		if (rc->state != RC_START || o->limited)
			rc->state = RC_STEADY;
		rc->why = !o->limited ? "demand below rate" : backlog ? "backlog building"
								       : "small queue";
		return rc->rate;
	}
	if (rc->state == RC_START) {
		double little = rc->base_ms > 0 ? 800.0 / rc->base_ms : 0;

		rc->rate = clamp(rc, rc->rate * pow(RC_SLOW_START, o->dt_s));
		if (judged && little > rc->rate)
			rc->rate = clamp(rc, little);
	} else if (rc->rate < 0.8 * (rc->pre_cut > rc->good ? rc->pre_cut : rc->good)) {
		rc->rate = clamp(rc, rc->rate * pow(RC_RECOVER, o->dt_s));
		rc->state = RC_PROBING;
	} else {
		/*
		 * Near where it last held, or past it: the probe doubles every
		 * second it finds no queue (BIC's max probing), up to the
		 * recovery's pace.
		 */
		double pace = RC_PROBE * pow(2.0, floor(probing)), step;

		if (pace > RC_RECOVER - 1)
			pace = RC_RECOVER - 1;
		step = rc->rate * pace * o->dt_s;
		rc->rate = clamp(rc, rc->rate + (step > 1 ? step : 1));
		rc->state = RC_PROBING;
		rc->probing_s = probing + o->dt_s;
	}
	rc->why = "no queue";
	return rc->rate;
}
