// SPDX-License-Identifier: MIT
#include "proxy/learn.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/bucket.h"
#include "proxy/ratectl.h"
#include "userspace/log.h"

#define RECENT 20 /* intervals the published latency quantiles cover (2 s) */

/* What learning keeps of a backend (main thread only; freed with it). */
struct learn_be {
	uint64_t tick;     /* the last tick that visited it */
	uint64_t connects, answered, wasted, unanswered, failures, refused_rate;
	uint32_t hist[SETUP_BINS];
	uint32_t recent[RECENT][SETUP_BINS];
	unsigned irecent;
	int auto_rate;     /* its server has rate = "auto" */
	struct ratectl rc;
	uint32_t logged_rate;
	enum ratectl_state logged_state;
};

/* What learning keeps of a TLS listener's handshake budgets (main thread only). */
struct listener_learn {
	uint64_t begun[HS_KINDS], ended[HS_KINDS], left[HS_KINDS], timeouts;
	uint32_t hist[HS_KINDS][SETUP_BINS];
	uint32_t recent[HS_KINDS][RECENT][SETUP_BINS];
	unsigned irecent;
	int on[HS_KINDS];
	struct ratectl rc[HS_KINDS];
	uint32_t logged[HS_KINDS];
};

static uint64_t ticks;
static uint64_t last_step_ms;
static unsigned nworkers = CFG_MAX_WORKERS; /* what is summed over; set by learn_tick */

/* A per-worker counter of BE summed over the workers there are. */
static uint64_t wsum(const struct backend *be, size_t off)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < nworkers; i++)
		sum += atomic_load_explicit((const _Atomic uint64_t *)((const char *)&be->ws[i] + off),
					    memory_order_relaxed);
	return sum;
}
#define WSUM(be, field) wsum((be), offsetof(struct backend_wstats, field))

double learn_quantile_ms(const uint32_t *hist, double q)
{
	uint64_t n = 0, acc = 0;

	for (unsigned k = 0; k < SETUP_BINS; k++)
		n += hist[k];
	if (!n)
		return -1;
	for (unsigned k = 0; k < SETUP_BINS; k++) {
		if (!hist[k])
			continue;
		if ((double)(acc + hist[k]) >= q * (double)n) {
			/* log-interpolated inside the bin */
			double f = (q * (double)n - (double)acc) / hist[k];

			return SETUP_T0_NS * pow(SETUP_GROWTH, (double)k + f) / 1e6;
		}
		acc += hist[k];
	}
	return SETUP_T0_NS * pow(SETUP_GROWTH, SETUP_BINS) / 1e6;
}

static struct learn_be *learn_of(struct backend *be, const struct cfg_server *sv)
{
	struct learn_be *lb = be->learn;
	volatile struct sl_backend *kb;
	double start;

	if (!lb) {
		lb = calloc(1, sizeof(*lb));
		if (!lb)
			return NULL;
		/* counting starts now: what workers counted before is history */
		for (unsigned i = 0; i < nworkers; i++)
			for (unsigned k = 0; k < SETUP_BINS; k++)
				lb->hist[k] += atomic_load(&be->ws[i].setup_hist[k]);
		lb->connects = WSUM(be, connects);
		lb->answered = WSUM(be, answered);
		lb->wasted = WSUM(be, wasted);
		lb->unanswered = WSUM(be, unanswered);
		lb->failures = WSUM(be, failures);
		be->learn = lb;
	}
	if (sv->rate_auto && !lb->auto_rate) {
		/* a restart or a reload resumes from the rate the kernel holds */
		kb = atomic_load(&be->kb);
		start = kb && (kb->flags & SL_BF_AUTO) && kb->rate ? kb->rate : sv->rate;
		ratectl_init(&lb->rc, start, sv->rate_min, sv->rate_max);
		lb->auto_rate = 1;
		lb->logged_rate = (uint32_t)start;
		atomic_store(&be->learned.rate, (uint32_t)start);
		atomic_store(&be->learned.state, RC_START);
		atomic_store(&be->learned.why, "start");
		if (kb)
			lb->refused_rate = kb->refused_rate;
	} else if (!sv->rate_auto && lb->auto_rate) {
		lb->auto_rate = 0;
		atomic_store(&be->learned.rate, 0);
	}
	return lb;
}

static uint64_t diff(uint64_t *last, uint64_t now)
{
	uint64_t d = now - *last;

	*last = now;
	return d;
}

/* The shortest patience among the pools of S that send clients to BE (ms; 0: none known). */
static double patience_for(const struct snapshot *s, const struct backend *be)
{
	double min = 0;

	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];
		double v;

		for (unsigned j = 0; j < p->nbe; j++) {
			if (p->be[j] != be)
				continue;
			v = p->cfg->queue.timeout_auto ? atomic_load(&p->stats->patience_ms)
						       : p->cfg->queue.timeout_ms;
			if (v > 0 && (min == 0 || v < min))
				min = v;
		}
	}
	return min;
}

/* Do clients of S wait for BE? (A pool of BE's has clients in its queue.) */
static int waiting_for(const struct snapshot *s, const struct backend *be)
{
	for (unsigned i = 0; i < s->npools; i++)
		for (unsigned j = 0; j < s->pools[i].nbe; j++)
			if (s->pools[i].be[j] == be && atomic_load(&s->pools[i].queued))
				return 1;
	return 0;
}

static void step_backend(const struct snapshot *s, struct backend *be, struct learn_be *lb,
			 double dt_s)
{
	uint32_t cur[SETUP_BINS] = { 0 }, d[SETUP_BINS], all[SETUP_BINS] = { 0 };
	volatile struct sl_backend *kb = atomic_load(&be->kb);
	struct ratectl_obs o = { .dt_s = dt_s };
	double p50, p99;
	uint64_t refused = 0;

	for (unsigned i = 0; i < nworkers; i++)
		for (unsigned k = 0; k < SETUP_BINS; k++)
			cur[k] += atomic_load_explicit(&be->ws[i].setup_hist[k],
						       memory_order_relaxed);
	for (unsigned k = 0; k < SETUP_BINS; k++) {
		d[k] = cur[k] - lb->hist[k];
		lb->hist[k] = cur[k];
	}
	memcpy(lb->recent[lb->irecent], d, sizeof(d));
	lb->irecent = (lb->irecent + 1) % RECENT;
	for (unsigned r = 0; r < RECENT; r++)
		for (unsigned k = 0; k < SETUP_BINS; k++)
			all[k] += lb->recent[r][k];
	p50 = learn_quantile_ms(all, 0.5);
	p99 = learn_quantile_ms(all, 0.99);
	if (p50 >= 0) {
		/* expected set-up: the recent median, or the last interval's p90 when it is worse */
		double now90 = learn_quantile_ms(d, 0.9);

		atomic_store(&be->learned.p50_us, (uint32_t)(p50 * 1000));
		atomic_store(&be->learned.p99_us, (uint32_t)(p99 * 1000));
		atomic_store(&be->learned.setup_us,
			     (uint32_t)((now90 > p50 ? now90 : p50) * 1000));
	}

	o.admitted = (uint32_t)diff(&lb->connects, WSUM(be, connects));
	o.answered = (uint32_t)diff(&lb->answered, WSUM(be, answered));
	o.wasted = (uint32_t)diff(&lb->wasted, WSUM(be, wasted));
	o.failed = (uint32_t)diff(&lb->unanswered, WSUM(be, unanswered));
	o.failed += (uint32_t)diff(&lb->failures, WSUM(be, failures));
	o.lat_ms = learn_quantile_ms(d, 0.5);
	if (kb)
		refused = diff(&lb->refused_rate, kb->refused_rate);
	if (!lb->auto_rate)
		return;
	o.limited = refused > 0 || waiting_for(s, be);
	o.patience_ms = patience_for(s, be);
	ratectl_step(&lb->rc, &o);

	uint32_t rate = (uint32_t)lround(lb->rc.rate);

	atomic_store(&be->learned.rate, rate ? rate : 1);
	atomic_store(&be->learned.state, lb->rc.state);
	atomic_store(&be->learned.why, lb->rc.why);
	atomic_store(&be->learned.base_us, (uint32_t)(lb->rc.base_ms * 1000));
	/* a line when the rate moved by a quarter since the last one, or hit the floor */
	if ((lb->rc.state == RC_FLOOR && lb->logged_state != RC_FLOOR) ||
	    fabs((double)rate - lb->logged_rate) > 0.25 * lb->logged_rate) {
		log_info("learn: backend %s: rate %u/s (%s: %s; set-up p50 %.1f ms, base %.1f ms, "
			 "%u answered, %u left first, %u failed in %.2f s)",
			 be->addr.text, rate, ratectl_state_name(lb->rc.state), lb->rc.why,
			 o.lat_ms, lb->rc.base_ms, o.answered, o.wasted, o.failed, dt_s);
		lb->logged_rate = rate;
		lb->logged_state = lb->rc.state;
	}
}

static void step_pool(struct snap_pool *p, double dt_s)
{
	struct pool_stats *ps = p->stats;
	uint32_t left[PATIENCE_BINS], stayed[PATIENCE_BINS], setup = 0;
	double est;

	for (unsigned k = 0; k < PATIENCE_BINS; k++) {
		uint32_t l = atomic_load(&ps->pat_left[k]), st = atomic_load(&ps->pat_stayed[k]);

		left[k] = l - ps->seen_left[k];
		stayed[k] = st - ps->seen_stayed[k];
		ps->seen_left[k] = l;
		ps->seen_stayed[k] = st;
	}
	est = patience_update(&ps->patience, left, stayed, dt_s);
	if ((uint32_t)est != atomic_load(&ps->patience_ms)) {
		uint32_t was = atomic_load(&ps->patience_ms);

		if (!was || fabs(est - was) > 0.25 * was)
			log_info("learn: pool %s: clients' patience %.1f s", ps->name, est / 1000);
		atomic_store(&ps->patience_ms, (uint32_t)est);
	}
	/* what a set-up takes on its slowest backend, for how long a client may wait */
	for (unsigned j = 0; j < p->nbe; j++) {
		uint32_t us = atomic_load(&p->be[j]->learned.setup_us);

		if (us / 1000 > setup)
			setup = us / 1000;
	}
	atomic_store(&ps->setup_ms, setup);
}

static const char *const hs_names[HS_KINDS] = { "full", "resumed" };

/*
 * A TLS listener's handshake budgets on "auto": the same controller as a
 * backend's rate, fed with sluice's own handshakes — their duration from
 * the token to the end (a worker short of CPU makes it grow), clients that
 * left in the middle (crypto spent for nobody), handshakes that ran out of
 * handshake_ms — so that a flood of full handshakes cannot push those in
 * progress past what clients wait.
 */
static void step_listener(struct snap_listener *l, double dt_s)
{
	const struct cfg_tls *t = &l->cfg->tls;
	struct listener_stats *ls = l->stats;
	struct listener_learn *ll = ls->learn;
	uint64_t timeouts = atomic_load(&ls->hs_failed[HSF_TIMEOUT]);

	if (!ll) {
		ll = calloc(1, sizeof(*ll));
		if (!ll)
			return;
		ls->learn = ll;
		ll->timeouts = timeouts;
		for (unsigned k = 0; k < HS_KINDS; k++) {
			ll->begun[k] = atomic_load(&ls->hs_begun[k]);
			ll->ended[k] = atomic_load(&ls->hs_ended[k]);
			ll->left[k] = atomic_load(&ls->hs_left[k]);
			for (unsigned b = 0; b < SETUP_BINS; b++)
				ll->hist[k][b] = atomic_load(&ls->hs_hist[k][b]);
		}
	}
	for (unsigned k = 0; k < HS_KINDS; k++) {
		int on = k == HS_FULL ? t->full_auto : t->resumed_auto;
		uint32_t start = k == HS_FULL ? t->full_per_s : t->resumed_per_s;
		uint32_t d[SETUP_BINS], rate, burst;
		struct ratectl_obs o = { .dt_s = dt_s };
		__u64 interval, tau;

		for (unsigned b = 0; b < SETUP_BINS; b++) {
			uint32_t cur = atomic_load(&ls->hs_hist[k][b]);

			d[b] = cur - ll->hist[k][b];
			ll->hist[k][b] = cur;
		}
		/* what a handshake takes now, for the workers' last-moment check */
		{
			uint32_t all[SETUP_BINS] = { 0 };
			double p90;

			memcpy(ll->recent[k][ll->irecent], d, sizeof(d));
			for (unsigned r = 0; r < RECENT; r++)
				for (unsigned b = 0; b < SETUP_BINS; b++)
					all[b] += ll->recent[k][r][b];
			p90 = learn_quantile_ms(all, 0.9);
			if (p90 >= 0)
				atomic_store(&ls->hs_expect_us[k], (uint32_t)(p90 * 1000));
		}
		o.admitted = (uint32_t)diff(&ll->begun[k], atomic_load(&ls->hs_begun[k]));
		o.answered = (uint32_t)diff(&ll->ended[k], atomic_load(&ls->hs_ended[k]));
		o.wasted = (uint32_t)diff(&ll->left[k], atomic_load(&ls->hs_left[k]));
		if (!on) {
			if (ll->on[k]) {
				/* back to a fixed budget: the snapshot's holds again */
				atomic_store(&ls->hs_auto_interval[k], 0);
				atomic_store(&ls->hs_auto_rate[k], 0);
				ll->on[k] = 0;
			}
			continue;
		}
		if (!ll->on[k]) {
			ratectl_init(&ll->rc[k], start, 10, 0);
			ll->on[k] = 1;
			ll->logged[k] = start;
		}
		o.lat_ms = learn_quantile_ms(d, 0.5);
		/* handshakes that timed out are failures of the full budget's */
		if (k == HS_FULL)
			o.failed = (uint32_t)diff(&ll->timeouts, timeouts);
		o.limited = atomic_load(&ls->hs_waiting[k]) > 0;
		o.patience_ms = l->pool->cfg->queue.timeout_auto ? atomic_load(&l->pool->stats->patience_ms)
								 : 0;
		ratectl_step(&ll->rc[k], &o);
		rate = (uint32_t)lround(ll->rc[k].rate);
		burst = rate / 10 ? rate / 10 : 1;
		sl_bucket_params(rate, burst, &interval, &tau);
		atomic_store(&ls->hs_auto_tau[k], tau);
		atomic_store(&ls->hs_auto_interval[k], interval);
		atomic_store(&ls->hs_auto_rate[k], rate);
		atomic_store(&ls->hs_auto_state[k], ll->rc[k].state);
		if (fabs((double)rate - ll->logged[k]) > 0.25 * ll->logged[k]) {
			log_info("learn: listener %s: %s handshakes %u/s (%s: %s; handshake p50 %.1f ms, "
				 "base %.1f ms, %u done, %u left midway in %.2f s)",
				 ls->name, hs_names[k], rate, ratectl_state_name(ll->rc[k].state),
				 ll->rc[k].why, o.lat_ms, ll->rc[k].base_ms, o.answered, o.wasted, dt_s);
			ll->logged[k] = rate;
		}
	}
	ll->irecent = (ll->irecent + 1) % RECENT;
}

void learn_tick(struct snapshot *s, uint64_t now_ms)
{
	double dt_s;
	int step;

	if (!s)
		return;
	/* workers are fixed at start: a reload that asks for more waits for a restart */
	if (s->cfg->workers && s->cfg->workers < CFG_MAX_WORKERS && nworkers == CFG_MAX_WORKERS)
		nworkers = s->cfg->workers;
	step = now_ms - last_step_ms >= LEARN_INTERVAL_MS;
	dt_s = last_step_ms ? (double)(now_ms - last_step_ms) / 1000.0 : 0;
	ticks++;
	for (unsigned i = 0; i < s->npools; i++) {
		struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			struct backend *be = p->be[j];
			struct learn_be *lb = learn_of(be, &p->cfg->servers[j]);

			if (!lb || lb->tick == ticks)
				continue;
			lb->tick = ticks;
			if (step && dt_s > 0)
				step_backend(s, be, lb, dt_s);
		}
	}
	if (step) {
		for (unsigned i = 0; i < s->npools && dt_s > 0; i++)
			step_pool(&s->pools[i], dt_s);
		for (unsigned i = 0; i < s->nlisteners && dt_s > 0; i++)
			if (s->listeners[i].tls)
				step_listener(&s->listeners[i], dt_s);
		last_step_ms = now_ms;
	}
}
