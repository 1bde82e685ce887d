// SPDX-License-Identifier: MIT
/*
 * test_ratectl — proxy/ratectl.c against a simulated backend: a fluid queue
 * that sets up CAP sessions a second, each BASE ms of work once it is at the
 * front; a session's latency is BASE plus the queue ahead of it over CAP.
 * Clients are endless (the rate is always what limits them) and give up
 * after PATIENCE: a session whose latency exceeds it is wasted. 100 ms
 * intervals, as sluiced runs it. Scenarios: steady, capacity halved and
 * doubled, noise, a backend that never answers first, a stalled backend,
 * a baseline that moves, a clock jump.
 */
#include "proxy/ratectl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "tests/unit/test.h"

#define DT 0.1

struct sim {
	double cap, base_ms, patience_ms, queue; /* queue: sessions waiting at the backend */
	double noise; /* relative latency noise, +/- */
	uint64_t rng;
	int silent;   /* never answers first */
	double wasted_total, admitted_total;
};

static double rnd(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (double)(s->rng >> 11) / (double)(1ull << 53);
}

/* One interval at RATE: what the controller would see. */
static struct ratectl_obs sim_step(struct sim *s, double rate)
{
	struct ratectl_obs o = { .dt_s = DT, .limited = 1, .patience_ms = s->patience_ms };
	double in = rate * DT, served = s->cap * DT, lat;

	s->queue += in;
	if (served > s->queue)
		served = s->queue;
	s->queue -= served;
	lat = s->base_ms + (s->cap > 0 ? s->queue / s->cap * 1000.0 : 1e9);
	lat *= 1.0 + s->noise * (2 * rnd(s) - 1);
	o.admitted = (uint32_t)lround(in);
	s->admitted_total += in;
	if (s->silent)
		return o;
	if (lat > s->patience_ms) {
		/* the clients at the back of the queue give up on it */
		o.wasted = (uint32_t)lround(served);
		s->wasted_total += served;
	} else {
		o.answered = (uint32_t)lround(served);
	}
	o.lat_ms = lat;
	return o;
}

/* Run SECONDS; the rates of each interval into OUT (may be NULL). */
static double run(struct ratectl *rc, struct sim *s, double seconds, double *out)
{
	int n = (int)(seconds / DT);

	for (int i = 0; i < n; i++) {
		struct ratectl_obs o = sim_step(s, rc->rate);

		ratectl_step(rc, &o);
		if (out)
			out[i] = rc->rate;
	}
	return rc->rate;
}

static void span(const double *v, int n, double *lo, double *hi, double *mean)
{
	*lo = INFINITY;
	*hi = 0;
	*mean = 0;
	for (int i = 0; i < n; i++) {
		*lo = v[i] < *lo ? v[i] : *lo;
		*hi = v[i] > *hi ? v[i] : *hi;
		*mean += v[i] / n;
	}
}

/* From 50/s against 400/s: near capacity within a few seconds, then steady. */
static void test_steady(void)
{
	struct sim s = { .cap = 400, .base_ms = 2, .patience_ms = 2000, .rng = 1 };
	struct ratectl rc;
	double r[500], lo, hi, mean;

	ratectl_init(&rc, 50, 10, 0);
	run(&rc, &s, 3, r);
	CHECK(rc.rate >= 0.6 * s.cap);
	run(&rc, &s, 50, r);
	span(r + 300, 200, &lo, &hi, &mean);
	printf("steady: mean %.0f/s (capacity %.0f), %.0f..%.0f, queue %.1f\n", mean, s.cap, lo,
	       hi, s.queue);
	CHECK(mean >= 0.75 * s.cap && mean <= 1.05 * s.cap);
	CHECK(lo >= 0.85 * mean && hi <= 1.15 * mean);
	CHECK(s.wasted_total == 0);
}

/* Capacity halves: the rate follows before a client gives up; doubles: it climbs back. */
static void test_steps(void)
{
	struct sim s = { .cap = 400, .base_ms = 2, .patience_ms = 2000, .rng = 2 };
	struct ratectl rc;
	double r[100], lo, hi, mean;

	ratectl_init(&rc, 50, 10, 0);
	run(&rc, &s, 20, NULL);
	s.cap = 200;
	run(&rc, &s, 2, r);
	printf("halved: %.0f/s after 2 s, queue %.0f sessions, wasted %.0f\n", rc.rate, s.queue,
	       s.wasted_total);
	CHECK(rc.rate <= 1.1 * s.cap);
	CHECK(s.wasted_total == 0);
	run(&rc, &s, 10, r);
	span(r, 100, &lo, &hi, &mean);
	CHECK(mean <= 1.05 * s.cap && mean >= 0.6 * s.cap);
	s.cap = 400;
	run(&rc, &s, 5, r);
	printf("doubled again: %.0f/s after 5 s\n", rc.rate);
	CHECK(rc.rate >= 0.7 * s.cap);
	CHECK(s.wasted_total == 0);
}

/* Latency noise of +/-40 %: no collapse, no overrun. */
static void test_noise(void)
{
	struct sim s = { .cap = 400, .base_ms = 10, .patience_ms = 2000, .noise = 0.4, .rng = 3 };
	struct ratectl rc;
	double r[400], lo, hi, mean;

	ratectl_init(&rc, 50, 10, 0);
	run(&rc, &s, 10, NULL);
	run(&rc, &s, 40, r);
	span(r, 400, &lo, &hi, &mean);
	printf("noise: mean %.0f/s, %.0f..%.0f\n", mean, lo, hi);
	CHECK(mean >= 0.6 * s.cap && mean <= 1.05 * s.cap);
	CHECK(s.wasted_total == 0);
}

/* Nothing to measure (a backend that never speaks first): the rate never falls. */
static void test_silent(void)
{
	struct sim s = { .cap = 400, .base_ms = 2, .patience_ms = 2000, .silent = 1 };
	struct ratectl rc;
	double prev = 50;

	ratectl_init(&rc, 50, 10, 2000);
	for (int i = 0; i < 500; i++) {
		struct ratectl_obs o = sim_step(&s, rc.rate);

		ratectl_step(&rc, &o);
		CHECK(rc.rate >= prev && rc.rate <= 2000);
		prev = rc.rate;
	}
}

/* A backend that stopped answering: down to rate_min, never below. */
static void test_floor(void)
{
	struct sim s = { .cap = 400, .base_ms = 2, .patience_ms = 2000, .rng = 4 };
	struct ratectl rc;

	ratectl_init(&rc, 50, 10, 0);
	run(&rc, &s, 10, NULL);
	s.cap = 0;
	for (int i = 0; i < 200; i++) {
		struct ratectl_obs o = sim_step(&s, rc.rate);

		o.answered = 0;
		o.wasted = o.admitted; /* every client leaves before an answer */
		ratectl_step(&rc, &o);
		CHECK(rc.rate >= 10);
	}
	CHECK(rc.rate == 10);
	CHECK(rc.state == RC_FLOOR);
}

/* Each set-up now costs 300 ms more, at a load far below capacity: not a queue. */
static void test_baseline_moves(void)
{
	struct sim s = { .cap = 400, .base_ms = 2, .patience_ms = 5000, .rng = 5 };
	struct ratectl rc;

	ratectl_init(&rc, 50, 10, 100);
	run(&rc, &s, 10, NULL);
	CHECK(rc.rate == 100);
	s.base_ms = 302;
	run(&rc, &s, 15, NULL);
	printf("baseline moved: %.0f/s 15 s later (base %.0f ms)\n", rc.rate, rc.base_ms);
	CHECK(rc.rate >= 90);
}

/*
 * A queue that drains slowly (the backend's capacity fell, and what it
 * answers overstates what it can take): the latency falls by 10 ms an
 * interval from 400 ms while answers keep up with admissions. That is a
 * queue going, not a new baseline: the base stays where it was.
 */
static void test_slow_drain(void)
{
	struct ratectl rc;
	struct ratectl_obs o = { .dt_s = DT, .limited = 1, .patience_ms = 2000 };
	double worst = 0;

	ratectl_init(&rc, 300, 10, 0);
	for (int i = 0; i < 20; i++) {
		o.admitted = o.answered = (uint32_t)lround(rc.rate * DT);
		o.lat_ms = 2;
		ratectl_step(&rc, &o);
	}
	for (double lat = 400; lat > 2; lat -= 10) {
		o.admitted = (uint32_t)lround(rc.rate * DT);
		o.answered = o.admitted + 1;
		o.lat_ms = lat;
		ratectl_step(&rc, &o);
		worst = rc.base_ms > worst ? rc.base_ms : worst;
	}
	printf("slow drain: base at most %.1f ms, rate %.0f/s\n", worst, rc.rate);
	CHECK(worst < 10);
}

/* A clock that jumps (an interval of 0, negative or of minutes): nothing changes. */
static void test_clock_jump(void)
{
	struct sim s = { .cap = 400, .base_ms = 2, .patience_ms = 2000, .rng = 6 };
	struct ratectl rc;
	double before;
	enum ratectl_state st;
	struct ratectl_obs o;

	ratectl_init(&rc, 50, 10, 0);
	run(&rc, &s, 5, NULL);
	before = rc.rate;
	st = rc.state;
	o = sim_step(&s, rc.rate);
	o.dt_s = -3;
	CHECK(ratectl_step(&rc, &o) == before);
	o.dt_s = 0;
	CHECK(ratectl_step(&rc, &o) == before);
	o.dt_s = 600;
	o.lat_ms = 1e6;
	CHECK(ratectl_step(&rc, &o) == before);
	CHECK(rc.state == st);
}

int main(void)
{
	test_steady();
	test_steps();
	test_noise();
	test_silent();
	test_floor();
	test_baseline_moves();
	test_slow_drain();
	test_clock_jump();
	return test_result("test_ratectl");
}
