/* SPDX-License-Identifier: MIT */
/*
 * ratectl — the controller behind rate = "auto": how many new sessions per
 * second a backend can take now, from what the last interval showed.
 *
 * A backend that gets new sessions faster than it can set them up queues
 * them (in its accept queue, its event loop, its thread pool), and the time
 * from connect to its first byte grows by the queue it built. Below its
 * capacity that time stays near what one set-up costs. So the controller
 * keeps a baseline (the lowest interval median over the last RC_WINDOW
 * intervals) and reads the excess as queueing delay, like TCP Vegas reads
 * RTT above the base RTT as packets queued:
 *   - no queue (excess under alpha) and clients waiting for tokens: grow,
 *     fourfold a second until the first sign of a queue (slow start; and
 *     from at least 0.8 / baseline at once: whatever its concurrency, a
 *     backend that sets up a session in that time with no queue takes at
 *     least 1 / baseline a second, by Little's law), then
 *     by a fifth a second, the step doubling every second no queue shows
 *     (BIC's max probing: capacity that grew is found in a few seconds),
 *     up to twofold a second; a backend that answers a fifth fewer set-ups than it was
 *     given is building a queue its latency does not show yet: no growth;
 *   - a queue between alpha and beta: hold; one that stands over twice
 *     alpha for half a second: ease off by 5 % (Vegas keeps its queue small,
 *     not merely bounded);
 *   - a queue over beta (or over alpha with half of the set-ups given it
 *     left unanswered, interval after interval), admitted clients leaving before their backend
 *     answered, or failures: cut to what the backend answered in the
 *     interval, less what drains the queue it built within RC_DRAIN_MS,
 *     and never by less than 10 % (the last interval overdrove it);
 *   then hold for a queue's time before judging again, and climb back
 *   twofold a second to 80 % of the rate before the cut, or of the highest
 *   rate lately held with no queue (capacity that came back), then as above.
 * beta scales with the clients' patience: a queue a tenth of it (at most
 * 200 ms, at least four alphas) is the most a set-up may wait, so clients
 * never give up on a backend that is merely busy, and the stall of a busy
 * host (the backend off the CPU for a moment, its queue then draining) is
 * not read as a backend that cannot keep up: with a twentieth, such stalls
 * cut the rate by up to half every second or two of a storm, and everyone
 * was back in 1.24-1.37 x N / capacity instead of 1.16-1.25 (test 44).
 * The baseline moves: the window forgets in RC_WINDOW
 * intervals, and when cuts drained nothing (answers kept up with
 * admissions, yet the latency stayed for five times the queue it read at
 * the first cut, long after a real queue would have gone) the latency is
 * taken as the new base. A queue that drains slowly is not a new base.
 * Pure arithmetic, no clock of its own: the caller feeds intervals.
 */
#ifndef SLUICE_RATECTL_H
#define SLUICE_RATECTL_H

#include <stdint.h>

#define RC_WINDOW 100      /* intervals the baseline remembers (10 s at 100 ms) */
#define RC_MIN_SAMPLES 3   /* answers an interval needs for its latency to count */
#define RC_DRAIN_MS 1000.0 /* a backend's queue is drained within this after a cut */

enum ratectl_state {
	RC_START,   /* slow start: nothing has pushed back yet */
	RC_PROBING, /* growing: no queue and clients wait for tokens */
	RC_STEADY,  /* holding: a small queue, or nobody waits for tokens */
	RC_BACKOFF, /* cut: the backend queued, or clients left before it answered */
	RC_FLOOR,   /* held at rate_min although the backend pushes back */
	RC_STATES,
};

/* What one control interval showed for one backend. */
struct ratectl_obs {
	double dt_s;        /* the interval's length */
	uint32_t admitted;  /* connects established */
	uint32_t answered;  /* set-ups whose backend answered (its first byte) */
	double lat_ms;      /* median set-up latency of those (connect to first byte) */
	uint32_t wasted;    /* admitted clients that left before their backend answered */
	uint32_t failed;    /* failed connects; backends that closed or reset before answering */
	int limited;        /* clients waited for this backend's tokens */
	double patience_ms; /* how long clients stay (0: unknown) */
};

struct ratectl {
	double rate, min, max;
	enum ratectl_state state;
	const char *why; /* what the last change was for, for the log and /status */
	double base_ms;  /* baseline set-up latency; 0: none yet */
	double lat_ms;   /* the last interval's median, when it had one */
	double queue_ms; /* lat_ms - base_ms */
	double win[RC_WINDOW];
	unsigned nwin, iwin;
	unsigned hold;     /* intervals to wait after a cut */
	unsigned drained;  /* intervals in a row: answers kept up, yet a queue */
	unsigned standing; /* intervals in a row with a queue over 2 alpha */
	double cut_lat_ms; /* the latency at the first cut of a queue that stays; 0: none */
	double pre_cut;    /* the rate before the last cut: climbing back to it is quicker */
	double good;       /* the highest rate held with no queue lately (fades 2 % a second) */
	double probing_s;  /* seconds in a row it probed near or past good and pre_cut */
	double mu;         /* answers a second, smoothed over a few intervals */
	double backlog, admitted; /* set-ups given and not answered, and given, smoothed */
};

/* Start at RATE within [MIN, MAX] (MAX 0: no upper bound). */
void ratectl_init(struct ratectl *rc, double rate, double min, double max);

/* One interval's observations: returns the rate to enforce from now. */
double ratectl_step(struct ratectl *rc, const struct ratectl_obs *o);

/* The state's name: "start", "probing", "steady", "backoff", "floor". */
const char *ratectl_state_name(enum ratectl_state s);

#endif
