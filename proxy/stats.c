// SPDX-License-Identifier: MIT
#include "proxy/fleet.h"
#include "proxy/stats.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "proxy/control.h"
#include "proxy/daemon.h"
#include "proxy/health.h"
#include "proxy/ratectl.h"
#include "version.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct totals {
	uint64_t accepted, active, refused, bad_heads, head_timeouts, idle_timeouts,
		resets, accept_errors, nobufs, grace_closed, send_stalls, spills, bufs_ring, bufs_user;
};

static void sum_workers(struct daemon *d, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < d->nworkers; i++) {
		const struct worker_stats *s = worker_stats(d->workers[i]);

		t->accepted += LOAD(s->accepted);
		t->active += LOAD(s->active);
		t->refused += LOAD(s->refused);
		t->bad_heads += LOAD(s->bad_heads);
		t->head_timeouts += LOAD(s->head_timeouts);
		t->idle_timeouts += LOAD(s->idle_timeouts);
		t->resets += LOAD(s->resets);
		t->accept_errors += LOAD(s->accept_errors);
		t->nobufs += LOAD(s->nobufs);
		t->grace_closed += LOAD(s->grace_closed);
		t->send_stalls += LOAD(s->send_stalls);
		t->spills += LOAD(s->spills);
		t->bufs_ring += LOAD(s->bufs_ring);
		t->bufs_user += LOAD(s->bufs_user);
	}
}

static int backend_is_up(const struct backend *be)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return backend_usable(be, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static void metric_head(struct admin_resp *r, const char *name, const char *type, const char *help)
{
	admin_printf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Per-backend series: where each value comes from. */
enum be_val {
	BV_ACTIVE, BV_UP, BV_CONNECTS, BV_FAILURES, BV_BYTES_OUT, BV_BYTES_IN,
	BV_STARVED, BV_SYNTH_OK, BV_SYNTH_FAIL, /* the last two: pools with a synthetic check */
	BV_ANSWERED, BV_WASTED, BV_UNANSWERED, BV_SETUP_P50, BV_SETUP_P99, BV_SETUP_BASE,
	/* from the kernel's maps; absent without BPF */
	BV_LEDGER, BV_MAX, BV_ADMITTED, BV_REFUSED_FULL, BV_REFUSED_RATE, BV_TOKENS, BV_DRIFT,
	BV_RATE,
};

static const struct {
	const char *name, *type, *help; /* type NULL: another series of the metric above */
	const char *labels;              /* appended to pool, backend, address */
	enum be_val v;
} be_series[] = {
	{ "sluice_backend_connections", "gauge", "Backend connections connecting or open.", "",
	  BV_ACTIVE },
	{ "sluice_backend_up", "gauge", "1 when the backend takes new connections.", "", BV_UP },
	{ "sluice_backend_connects_total", "counter", "Backend connections established.", "",
	  BV_CONNECTS },
	{ "sluice_backend_connect_failures_total", "counter", "Failed backend connects.", "",
	  BV_FAILURES },
	{ "sluice_backend_bytes_total", "counter", "Bytes proxied, by direction.",
	  ",direction=\"to_backend\"", BV_BYTES_OUT },
	{ "sluice_backend_bytes_total", NULL, NULL, ",direction=\"to_client\"", BV_BYTES_IN },
	{ "sluice_backend_starved", "gauge",
	  "1 when the backend got no new connection for the pool's starved_after_s while its peers did.",
	  "", BV_STARVED },
	{ "sluice_synthetic_checks_total", "counter",
	  "Synthetic checks sent through a listener to the backend, by result.", ",result=\"ok\"",
	  BV_SYNTH_OK },
	{ "sluice_synthetic_checks_total", NULL, NULL, ",result=\"fail\"", BV_SYNTH_FAIL },
	{ "sluice_backend_ledger_connections", "gauge",
	  "Connections holding a slot of the kernel's ledger (all processes in the cgroup).", "",
	  BV_LEDGER },
	{ "sluice_backend_max_connections", "gauge", "max_conns in force (0: no limit).", "",
	  BV_MAX },
	{ "sluice_backend_admitted_total", "counter", "Backend connects the kernel let through.", "",
	  BV_ADMITTED },
	{ "sluice_backend_kernel_refused_total", "counter",
	  "Backend connects the kernel refused, by reason.", ",reason=\"full\"", BV_REFUSED_FULL },
	{ "sluice_backend_kernel_refused_total", NULL, NULL, ",reason=\"rate\"", BV_REFUSED_RATE },
	{ "sluice_backend_tokens", "gauge",
	  "Tokens in the backend's new-connection bucket now (burst when no rate limit).", "",
	  BV_TOKENS },
	{ "sluice_backend_setups_total", "counter",
	  "Backend connections by how their set-up ended: answered (the backend's first byte came), "
	  "wasted (the client left first), unanswered (the backend closed or reset first).",
	  ",result=\"answered\"", BV_ANSWERED },
	{ "sluice_backend_setups_total", NULL, NULL, ",result=\"wasted\"", BV_WASTED },
	{ "sluice_backend_setups_total", NULL, NULL, ",result=\"unanswered\"", BV_UNANSWERED },
	{ "sluice_backend_setup_p50_seconds", "gauge",
	  "Median set-up latency (backend connect to its first byte) over the last 2 s.", "",
	  BV_SETUP_P50 },
	{ "sluice_backend_setup_p99_seconds", "gauge",
	  "99th percentile of the set-up latency over the last 2 s.", "", BV_SETUP_P99 },
	{ "sluice_backend_setup_baseline_seconds", "gauge",
	  "rate = auto: the set-up latency the controller takes for no queue (windowed minimum).",
	  "", BV_SETUP_BASE },
	{ "sluice_backend_rate", "gauge",
	  "New connections per second the kernel admits to the backend now (0: no limit); learned "
	  "with rate = auto.", "", BV_RATE },
	{ "sluice_ledger_drift", "gauge",
	  "The kernel's ledger minus sluiced's own count of the backend's connections "
	  "(other processes in the cgroup, or a leak).", "", BV_DRIFT },
};

/* The value of series V for BE at NOW_NS; 0 and *ok = 0 when it has none. */
static unsigned long long be_value(const struct backend *be, enum be_val v, uint64_t now_ns,
				   int *ok)
{
	volatile struct sl_backend *kb = be->kb;

	*ok = 1;
	switch (v) {
	case BV_ACTIVE: return LOAD(be->active);
	case BV_UP: return (unsigned long long)backend_usable(be, now_ns / 1000000);
	case BV_CONNECTS: return backend_total(be, connects);
	case BV_FAILURES: return backend_total(be, failures);
	case BV_BYTES_OUT: return backend_total(be, bytes_out);
	case BV_BYTES_IN: return backend_total(be, bytes_in);
	case BV_STARVED: return (unsigned long long)LOAD(be->starved);
	case BV_SYNTH_OK: return LOAD(be->synth_ok);
	case BV_SYNTH_FAIL: return LOAD(be->synth_fail);
	case BV_ANSWERED: return backend_total(be, answered);
	case BV_WASTED: return backend_total(be, wasted);
	case BV_UNANSWERED: return backend_total(be, unanswered);
	case BV_SETUP_P50: return LOAD(be->learned.p50_us);
	case BV_SETUP_P99: return LOAD(be->learned.p99_us);
	case BV_SETUP_BASE:
		*ok = be->learn != NULL && LOAD(be->learned.rate) != 0;
		return LOAD(be->learned.base_us);
	default: break;
	}
	if (!kb) {
		*ok = 0;
		return 0;
	}
	switch (v) {
	case BV_LEDGER: return kb->active;
	case BV_MAX: return kb->max_conns;
	case BV_ADMITTED: return kb->admitted;
	case BV_REFUSED_FULL: return kb->refused_full;
	case BV_REFUSED_RATE: return kb->refused_rate;
	case BV_RATE: return kb->rate;
	case BV_DRIFT:
		/* a gauge may go below zero: printed as a signed number below */
		return (unsigned long long)((long long)kb->active - (long long)LOAD(be->active));
	default:
		return sl_gcra_tokens(kb->bucket.tat_ns, now_ns, kb->bucket.interval_ns,
				      kb->bucket.tau_ns, kb->burst ? kb->burst : 1);
	}
}

static void backend_metrics(struct snapshot *s, struct admin_resp *r)
{
	uint64_t now = ebpf_now_ns();

	for (unsigned k = 0; k < sizeof(be_series) / sizeof(be_series[0]); k++) {
		if (be_series[k].type)
			metric_head(r, be_series[k].name, be_series[k].type, be_series[k].help);
		for (unsigned i = 0; i < s->npools; i++) {
			const struct snap_pool *p = &s->pools[i];

			if ((be_series[k].v == BV_SYNTH_OK || be_series[k].v == BV_SYNTH_FAIL) &&
			    !p->cfg->synthetic.enabled)
				continue;
			for (unsigned j = 0; j < p->nbe; j++) {
				int ok;
				unsigned long long v = be_value(p->be[j], be_series[k].v, now, &ok);

				if (!ok)
					continue;
				if (be_series[k].v == BV_SETUP_P50 || be_series[k].v == BV_SETUP_P99 ||
				    be_series[k].v == BV_SETUP_BASE)
					admin_printf(r,
						     "%s{pool=\"%s\",backend=\"%s\",address=\"%s\"%s} %.6f\n",
						     be_series[k].name, p->cfg->name,
						     p->cfg->servers[j].name, p->be[j]->addr.text,
						     be_series[k].labels, (double)v / 1e6);
				else
					admin_printf(r,
						     be_series[k].v == BV_DRIFT
							     ? "%s{pool=\"%s\",backend=\"%s\",address=\"%s\"%s} %lld\n"
							     : "%s{pool=\"%s\",backend=\"%s\",address=\"%s\"%s} %llu\n",
						     be_series[k].name, p->cfg->name,
						     p->cfg->servers[j].name, p->be[j]->addr.text,
						     be_series[k].labels, v);
			}
		}
	}
}

/* Source ports: what is left from each source address to each backend. */
static void port_metrics(struct snapshot *s, struct admin_resp *r)
{
	uint32_t ports = backend_ports();

	metric_head(r, "sluice_backend_source_ports_free", "gauge",
		    "Ephemeral ports left from a source address (source=\"kernel\": the kernel's "
		    "choice) to a backend: ip_local_port_range less sluice's connections; 0 when "
		    "a connect found none.");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			const struct backend *be = p->be[j];
			unsigned any = 0;

			for (unsigned k = 0; k <= p->cfg->nsources; k++) {
				unsigned slot = k < p->cfg->nsources ? p->src[j][k] : 0;
				uint32_t used;
				char src[96];

				if (k < p->cfg->nsources && slot == BE_SRC_NONE)
					continue;
				if (k == p->cfg->nsources && any)
					break;
				any = 1;
				used = LOAD(be->src[slot].used);
				snprintf(src, sizeof(src), "%s",
					 k < p->cfg->nsources ? p->cfg->sources[k].text : "kernel");
				admin_printf(r, "sluice_backend_source_ports_free{pool=\"%s\",backend=\"%s\","
						"address=\"%s\",source=\"%s\"} %u\n",
					     p->cfg->name, p->cfg->servers[j].name, be->addr.text, src,
					     LOAD(be->src[slot].full) || used >= ports ? 0 : ports - used);
			}
		}
	}
}

/* rate = auto: what the controller is doing, one series per backend with its state. */
static void learned_metrics(struct snapshot *s, struct admin_resp *r)
{
	metric_head(r, "sluice_backend_rate_auto", "gauge",
		    "1 for a backend whose rate is learned (rate = auto), labelled with what its "
		    "controller is doing: start, probing, steady, backoff, floor.");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			if (!p->cfg->servers[j].rate_auto)
				continue;
			admin_printf(r,
				     "sluice_backend_rate_auto{pool=\"%s\",backend=\"%s\",address=\"%s\","
				     "state=\"%s\"} 1\n",
				     p->cfg->name, p->cfg->servers[j].name, p->be[j]->addr.text,
				     ratectl_state_name((enum ratectl_state)LOAD(p->be[j]->learned.state)));
		}
	}
	metric_head(r, "sluice_pool_patience_seconds", "gauge",
		    "How long the pool's clients stay, learned from those who left (0: none left yet).");
	for (unsigned i = 0; i < s->npools; i++)
		admin_printf(r, "sluice_pool_patience_seconds{pool=\"%s\"} %.3f\n",
			     s->pools[i].cfg->name, LOAD(s->pools[i].stats->patience_ms) / 1000.0);
}

static const char *const hs_kind_names[HS_KINDS] = { "full", "resumed" };
static const char *const hs_fail_names[HSF_COUNT] = {
	[HSF_NOT_TLS] = "not_tls", [HSF_BAD_HELLO] = "bad_hello", [HSF_TIMEOUT] = "timeout",
	[HSF_ERROR] = "error",     [HSF_CLOSED] = "closed",
};

/* TLS handshakes per TLS listener: by kind, failures, the handshake queue. */
static void tls_metrics(struct snapshot *s, struct admin_resp *r)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
		{ "sluice_tls_handshakes_total", "counter",
		  "TLS handshakes completed, by kind (resumed: a session was reused)." },
		{ "sluice_tls_handshake_queue_depth", "gauge",
		  "Clients waiting for a handshake token now, by the kind their ClientHello asked for." },
		{ "sluice_tls_handshake_queued_total", "counter",
		  "Clients that had to wait for a handshake token, by kind." },
		{ "sluice_tls_handshake_refused_total", "counter",
		  "Clients turned away before their handshake: queue full or handshake_ms spent waiting." },
	};

	for (unsigned k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		metric_head(r, m[k].name, m[k].type, m[k].help);
		for (unsigned i = 0; i < s->nlisteners; i++) {
			const struct listener_stats *ls = s->listeners[i].stats;

			if (!s->listeners[i].tls)
				continue;
			for (unsigned j = 0; j < HS_KINDS; j++) {
				unsigned long long v = k == 0 ? LOAD(ls->hs_done[j]) :
						       k == 1 ? LOAD(ls->hs_waiting[j]) :
						       k == 2 ? LOAD(ls->hs_queued[j]) :
								LOAD(ls->hs_refused[j]);

				admin_printf(r, "%s{listener=\"%s\",kind=\"%s\"} %llu\n", m[k].name,
					     ls->name, hs_kind_names[j], v);
			}
		}
	}
	metric_head(r, "sluice_tls_handshake_failures_total", "counter",
		    "TLS clients that never finished their handshake, by reason.");
	for (unsigned i = 0; i < s->nlisteners; i++)
		for (unsigned j = 0; s->listeners[i].tls && j < HSF_COUNT; j++)
			admin_printf(r,
				     "sluice_tls_handshake_failures_total{listener=\"%s\",reason=\"%s\"} "
				     "%llu\n",
				     s->listeners[i].stats->name, hs_fail_names[j],
				     (unsigned long long)LOAD(s->listeners[i].stats->hs_failed[j]));
	metric_head(r, "sluice_tls_handshake_rate", "gauge",
		    "Handshakes per second the listener's budget admits now, by kind (0: no limit); "
		    "learned with full_per_s or resumed_per_s = auto.");
	for (unsigned i = 0; i < s->nlisteners; i++) {
		const struct snap_listener *l = &s->listeners[i];

		for (unsigned j = 0; l->tls && j < HS_KINDS; j++) {
			int on = j == HS_FULL ? l->cfg->tls.full_auto : l->cfg->tls.resumed_auto;
			uint32_t v = on ? LOAD(l->stats->hs_auto_rate[j]) : 0;

			if (!v)
				v = j == HS_FULL ? l->cfg->tls.full_per_s : l->cfg->tls.resumed_per_s;
			admin_printf(r, "sluice_tls_handshake_rate{listener=\"%s\",kind=\"%s\"} %u\n",
				     l->stats->name, hs_kind_names[j], v);
		}
	}
	metric_head(r, "sluice_tls_resumption_misses_total", "counter",
		    "ClientHellos that offered a session but got a full handshake (charged as full).");
	for (unsigned i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].tls)
			admin_printf(r, "sluice_tls_resumption_misses_total{listener=\"%s\"} %llu\n",
				     s->listeners[i].stats->name,
				     (unsigned long long)LOAD(s->listeners[i].stats->resume_misses));
}

static const char *listener_mode(const struct snap_listener *l)
{
	if (l->cfg->mode == CFG_MODE_HTTP)
		return l->tls ? "https" : "http";
	return l->tls ? "tls" : "tcp";
}

static const char *const refusal_names[REFUSE_COUNT] = {
	[REFUSE_FULL] = "full",
	[REFUSE_RATE] = "rate",
	[REFUSE_QUEUE_FULL] = "queue_full",
	[REFUSE_QUEUE_TIMEOUT] = "queue_timeout",
	[REFUSE_DOWN] = "down",
	[REFUSE_HANDSHAKE] = "handshake",
	[REFUSE_PORTS] = "ports",
	[REFUSE_CLIENT_GONE] = "client_gone",
};

/* Refusals, queue depth and waits per pool. */
static void pool_metrics(struct snapshot *s, struct admin_resp *r)
{
	metric_head(r, "sluice_refused_total", "counter",
		    "Clients that got no backend, by pool and reason.");
	for (unsigned i = 0; i < s->npools; i++)
		for (unsigned k = 0; k < REFUSE_COUNT; k++)
			admin_printf(r, "sluice_refused_total{pool=\"%s\",reason=\"%s\"} %llu\n",
				     s->pools[i].cfg->name, refusal_names[k],
				     (unsigned long long)LOAD(s->pools[i].stats->refused[k]));
	metric_head(r, "sluice_queue_depth", "gauge", "Clients waiting in the pool's queue now.");
	for (unsigned i = 0; i < s->npools; i++)
		admin_printf(r, "sluice_queue_depth{pool=\"%s\"} %u\n", s->pools[i].cfg->name,
			     LOAD(s->pools[i].queued));
	metric_head(r, "sluice_queued_total", "counter", "Clients that had to wait for a backend.");
	for (unsigned i = 0; i < s->npools; i++)
		admin_printf(r, "sluice_queued_total{pool=\"%s\"} %llu\n", s->pools[i].cfg->name,
			     (unsigned long long)LOAD(s->pools[i].stats->queued_total));
	metric_head(r, "sluice_admitted_total", "counter", "Clients that got a backend.");
	for (unsigned i = 0; i < s->npools; i++)
		admin_printf(r, "sluice_admitted_total{pool=\"%s\"} %llu\n", s->pools[i].cfg->name,
			     (unsigned long long)LOAD(s->pools[i].stats->admitted_total));
	metric_head(r, "sluice_queue_wait_seconds", "histogram",
		    "How long clients that got a backend waited in the queue.");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct pool_stats *ps = s->pools[i].stats;
		unsigned long long cum = 0;

		for (unsigned k = 0; k < 16; k++) {
			cum += LOAD(ps->wait_hist[k]);
			if (k < 15)
				admin_printf(r,
					     "sluice_queue_wait_seconds_bucket{pool=\"%s\",le=\"%g\"} %llu\n",
					     ps->name, (double)(10ull << k) / 1000.0, cum);
			else
				admin_printf(r,
					     "sluice_queue_wait_seconds_bucket{pool=\"%s\",le=\"+Inf\"} %llu\n",
					     ps->name, cum);
		}
		admin_printf(r, "sluice_queue_wait_seconds_sum{pool=\"%s\"} %.6f\n", ps->name,
			     (double)LOAD(ps->wait_sum_us) / 1e6);
		admin_printf(r, "sluice_queue_wait_seconds_count{pool=\"%s\"} %llu\n", ps->name, cum);
	}
}

/* What the SYN gates' maps say. */
static void syn_metrics(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	if (!d->ebpf)
		return;
	metric_head(r, "sluice_syn_total", "counter", "SYNs seen by the SYN gate, by verdict.");
	for (unsigned i = 0; i < s->nlisteners; i++) {
		volatile struct sl_listener *kl = ebpf_listener(d->ebpf, &s->listeners[i].cfg->addr);
		const char *name = s->listeners[i].cfg->name;

		if (!kl || !s->listeners[i].cfg->syn_gate.enabled)
			continue;
		admin_printf(r, "sluice_syn_total{listener=\"%s\",verdict=\"pass\"} %llu\n", name,
			     (unsigned long long)kl->passed);
		admin_printf(r, "sluice_syn_total{listener=\"%s\",verdict=\"drop_rate\"} %llu\n",
			     name, (unsigned long long)kl->dropped_rate);
		admin_printf(r, "sluice_syn_total{listener=\"%s\",verdict=\"drop_source\"} %llu\n",
			     name, (unsigned long long)kl->dropped_source);
	}
}

static void metrics(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	struct totals t;

	sum_workers(d, &t);
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	metric_head(r, "sluice_build_info", "gauge", "sluiced build; always 1.");
	admin_printf(r, "sluice_build_info{version=\"%s\"} 1\n", SLUICE_VERSION);
	metric_head(r, "sluice_start_time_seconds", "gauge", "Unix time sluiced started.");
	admin_printf(r, "sluice_start_time_seconds %llu\n", (unsigned long long)d->start_time);
	metric_head(r, "sluice_workers", "gauge", "Worker threads.");
	admin_printf(r, "sluice_workers %u\n", d->nworkers);
	metric_head(r, "sluice_config_generation", "gauge", "Generation of the config in service.");
	admin_printf(r, "sluice_config_generation %llu\n", (unsigned long long)s->gen);
	metric_head(r, "sluice_config_reloads_total", "counter", "SIGHUP reloads by result.");
	admin_printf(r, "sluice_config_reloads_total{result=\"success\"} %llu\n",
		     (unsigned long long)LOAD(d->reloads_ok));
	admin_printf(r, "sluice_config_reloads_total{result=\"failure\"} %llu\n",
		     (unsigned long long)LOAD(d->reloads_failed));
	metric_head(r, "sluice_config_last_reload_success_timestamp_seconds", "gauge",
		    "Unix time the config in service was loaded.");
	admin_printf(r, "sluice_config_last_reload_success_timestamp_seconds %llu\n",
		     (unsigned long long)LOAD(d->last_reload_ok));
	metric_head(r, "sluice_connections_accepted_total", "counter", "Client connections accepted.");
	admin_printf(r, "sluice_connections_accepted_total %llu\n", (unsigned long long)t.accepted);
	metric_head(r, "sluice_worker_connections_accepted_total", "counter",
		    "Client connections accepted, by worker thread.");
	for (unsigned i = 0; i < d->nworkers; i++)
		admin_printf(r, "sluice_worker_connections_accepted_total{worker=\"%u\"} %llu\n", i,
			     (unsigned long long)LOAD(worker_stats(d->workers[i])->accepted));
	metric_head(r, "sluice_listener_connections_total", "counter",
		    "Client connections accepted, by listener.");
	for (unsigned i = 0; i < s->nlisteners; i++)
		admin_printf(r, "sluice_listener_connections_total{listener=\"%s\"} %llu\n",
			     s->listeners[i].cfg->name,
			     (unsigned long long)LOAD(s->listeners[i].stats->accepted));
	metric_head(r, "sluice_listener_connections_active", "gauge",
		    "Client connections open now, by listener.");
	for (unsigned i = 0; i < s->nlisteners; i++)
		admin_printf(r, "sluice_listener_connections_active{listener=\"%s\"} %llu\n",
			     s->listeners[i].cfg->name,
			     (unsigned long long)LOAD(s->listeners[i].stats->active));
	tls_metrics(s, r);
	metric_head(r, "sluice_connections_active", "gauge", "Client connections open now.");
	admin_printf(r, "sluice_connections_active %llu\n", (unsigned long long)t.active);
	metric_head(r, "sluice_connections_closed_total", "counter",
		    "Client connections ended by sluice, by reason.");
	admin_printf(r, "sluice_connections_closed_total{reason=\"refused\"} %llu\n",
		     (unsigned long long)t.refused);
	admin_printf(r, "sluice_connections_closed_total{reason=\"bad_head\"} %llu\n",
		     (unsigned long long)t.bad_heads);
	admin_printf(r, "sluice_connections_closed_total{reason=\"head_timeout\"} %llu\n",
		     (unsigned long long)t.head_timeouts);
	admin_printf(r, "sluice_connections_closed_total{reason=\"idle_timeout\"} %llu\n",
		     (unsigned long long)t.idle_timeouts);
	admin_printf(r, "sluice_connections_closed_total{reason=\"send_stall\"} %llu\n",
		     (unsigned long long)t.send_stalls);
	admin_printf(r, "sluice_connections_closed_total{reason=\"reset\"} %llu\n",
		     (unsigned long long)t.resets);
	admin_printf(r, "sluice_connections_closed_total{reason=\"grace\"} %llu\n",
		     (unsigned long long)t.grace_closed);
	metric_head(r, "sluice_accept_errors_total", "counter", "Failed accepts (EMFILE, ...).");
	admin_printf(r, "sluice_accept_errors_total %llu\n", (unsigned long long)t.accept_errors);
	metric_head(r, "sluice_buffer_exhausted_total", "counter",
		    "Receives that found the provided-buffer ring empty.");
	admin_printf(r, "sluice_buffer_exhausted_total %llu\n", (unsigned long long)t.nobufs);
	metric_head(r, "sluice_send_spills_total", "counter",
		    "Sends a sink did not take at once: the rest moved to the connection's own "
		    "buffer, the shared one given back.");
	admin_printf(r, "sluice_send_spills_total %llu\n", (unsigned long long)t.spills);
	metric_head(r, "sluice_buffers_in_use", "gauge",
		    "Shared buffers connections hold now: the receive ring's, the userspace "
		    "pool's (TLS).");
	admin_printf(r, "sluice_buffers_in_use{pool=\"ring\"} %llu\n",
		     (unsigned long long)t.bufs_ring);
	admin_printf(r, "sluice_buffers_in_use{pool=\"tls\"} %llu\n",
		     (unsigned long long)t.bufs_user);

	if (d->ebpf) { /* bpf.enabled = false: no kernel series at all */
		metric_head(r, "sluice_bpf_programs_attached", "gauge",
			    "BPF programs attached now: connect4, connect6, sock_release, one XDP per "
			    "interface.");
		admin_printf(r, "sluice_bpf_programs_attached %u\n", ebpf_attached(d->ebpf));
		metric_head(r, "sluice_bpf_programs_expected", "gauge",
			    "BPF programs the config wants attached.");
		admin_printf(r, "sluice_bpf_programs_expected %u\n", ebpf_expected(d->ebpf));
		metric_head(r, "sluice_bpf_reattach_total", "counter",
			    "Programs found detached by the safeguard and attached again.");
		admin_printf(r, "sluice_bpf_reattach_total %llu\n",
			     (unsigned long long)ebpf_reattached(d->ebpf));
	}
	{
		uint64_t ok, fail;

		health_counts(d->health, &ok, &fail);
		metric_head(r, "sluice_health_checks_total", "counter",
			    "Active health checks done, by result.");
		admin_printf(r, "sluice_health_checks_total{result=\"pass\"} %llu\n",
			     (unsigned long long)ok);
		admin_printf(r, "sluice_health_checks_total{result=\"fail\"} %llu\n",
			     (unsigned long long)fail);
	}
	syn_metrics(d, s, r);
	pool_metrics(s, r);
	backend_metrics(s, r);
	port_metrics(s, r);
	learned_metrics(s, r);
	if (d->fleet)
		fleet_metrics(d->fleet, r);
}

static void status_text(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	struct totals t;

	sum_workers(d, &t);
	admin_printf(r, "sluiced %s  generation %llu  workers %u  reloads ok %llu failed %llu\n",
		     SLUICE_VERSION, (unsigned long long)s->gen, d->nworkers,
		     (unsigned long long)LOAD(d->reloads_ok),
		     (unsigned long long)LOAD(d->reloads_failed));
	admin_printf(r, "connections: accepted %llu  active %llu  refused %llu  resets %llu\n",
		     (unsigned long long)t.accepted, (unsigned long long)t.active,
		     (unsigned long long)t.refused, (unsigned long long)t.resets);
	if (d->fleet && s->cfg->fleet.enabled) {
		int drift = 0;
		enum fleet_mode m = fleet_mode(d->fleet, &drift);

		admin_printf(r, "fleet: %s%s (sluicectl fleet)\n", fleet_mode_name(m),
			     drift ? ", config drift" : "");
	}
	admin_printf(r, "\n");
	admin_printf(r, "%-16s %-24s %-6s %s\n", "LISTENER", "ADDRESS", "MODE", "POOL");
	for (unsigned i = 0; i < s->nlisteners; i++)
		admin_printf(r, "%-16s %-24s %-6s %s\n", s->listeners[i].cfg->name,
			     s->listeners[i].cfg->addr.text, listener_mode(&s->listeners[i]),
			     s->listeners[i].pool->cfg->name);
	admin_printf(r, "\n%-12s %-16s %-24s %-5s %8s %10s %8s %14s %14s\n", "POOL", "BACKEND",
		     "ADDRESS", "STATE", "ACTIVE", "CONNECTS", "FAILED", "BYTES_TO_BE", "BYTES_TO_CL");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			const struct backend *be = p->be[j];

			admin_printf(r, "%-12s %-16s %-24s %-5s %8u %10llu %8llu %14llu %14llu\n",
				     p->cfg->name, p->cfg->servers[j].name, be->addr.text,
				     backend_is_up(be) ? "up" : "down", LOAD(be->active),
				     (unsigned long long)backend_total(be, connects),
				     (unsigned long long)backend_total(be, failures),
				     (unsigned long long)backend_total(be, bytes_out),
				     (unsigned long long)backend_total(be, bytes_in));
		}
	}
}

static const char *backend_state(const struct backend *be);

/* How the backend's rate is set: "fixed", or the auto controller's state. */
static const char *rate_mode(const struct cfg_server *sv, const struct backend *be)
{
	if (!sv->rate_auto)
		return "fixed";
	return ratectl_state_name((enum ratectl_state)LOAD(be->learned.state));
}

static void backends_text(struct snapshot *s, struct admin_resp *r)
{
	admin_printf(r, "%-12s %-16s %-24s %-11s %8s %8s %8s %-8s %10s %8s %9s %9s %9s %8s\n",
		     "POOL", "BACKEND", "ADDRESS", "STATE", "LEDGER", "MAX", "RATE", "RATE_BY",
		     "CONNECTS", "FAILED", "SETUP_P50", "SETUP_P99", "BASELINE", "WASTED");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			const struct backend *be = p->be[j];
			volatile struct sl_backend *kb = be->kb;
			char base[16] = "-";

			if (p->cfg->servers[j].rate_auto)
				snprintf(base, sizeof(base), "%.1fms", LOAD(be->learned.base_us) / 1e3);
			admin_printf(r,
				     "%-12s %-16s %-24s %-11s %8u %8u %8u %-8s %10llu %8llu %7.1fms "
				     "%7.1fms %9s %8llu\n",
				     p->cfg->name, p->cfg->servers[j].name, be->addr.text,
				     backend_state(be), kb ? kb->active : LOAD(be->active),
				     kb ? kb->max_conns : 0, kb ? kb->rate : 0,
				     rate_mode(&p->cfg->servers[j], be),
				     (unsigned long long)backend_total(be, connects),
				     (unsigned long long)backend_total(be, failures),
				     LOAD(be->learned.p50_us) / 1e3, LOAD(be->learned.p99_us) / 1e3, base,
				     (unsigned long long)backend_total(be, wasted));
		}
		admin_printf(r, "%-12s patience learned: %.1f s%s\n", p->cfg->name,
			     LOAD(p->stats->patience_ms) / 1000.0,
			     p->cfg->queue.timeout_auto ? " (queue timeout_ms = auto)" : "");
	}
}

static void status_json(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	struct totals t;

	sum_workers(d, &t);
	r->content_type = "application/json";
	admin_printf(r,
		     "{\"version\":\"%s\",\"generation\":%llu,\"workers\":%u,"
		     "\"reloads\":{\"success\":%llu,\"failure\":%llu},"
		     "\"connections\":{\"accepted\":%llu,\"active\":%llu,\"refused\":%llu,"
		     "\"resets\":%llu,\"idle_timeouts\":%llu},\"listeners\":[",
		     SLUICE_VERSION, (unsigned long long)s->gen, d->nworkers,
		     (unsigned long long)LOAD(d->reloads_ok),
		     (unsigned long long)LOAD(d->reloads_failed), (unsigned long long)t.accepted,
		     (unsigned long long)t.active, (unsigned long long)t.refused,
		     (unsigned long long)t.resets, (unsigned long long)t.idle_timeouts);
	for (unsigned i = 0; i < s->nlisteners; i++)
		admin_printf(r,
			     "%s{\"name\":\"%s\",\"address\":\"%s\",\"mode\":\"%s\",\"pool\":\"%s\","
			     "\"tls_handshakes\":{\"full\":%llu,\"resumed\":%llu,\"waiting\":%llu}}",
			     i ? "," : "", s->listeners[i].cfg->name, s->listeners[i].cfg->addr.text,
			     listener_mode(&s->listeners[i]), s->listeners[i].pool->cfg->name,
			     (unsigned long long)LOAD(s->listeners[i].stats->hs_done[HS_FULL]),
			     (unsigned long long)LOAD(s->listeners[i].stats->hs_done[HS_RESUMED]),
			     (unsigned long long)(LOAD(s->listeners[i].stats->hs_waiting[HS_FULL]) +
						  LOAD(s->listeners[i].stats->hs_waiting[HS_RESUMED])));
	admin_printf(r, "],\"pools\":[");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		admin_printf(r,
			     "%s{\"name\":\"%s\",\"patience_ms\":%u,\"timeout_auto\":%s,\"backends\":[",
			     i ? "," : "", p->cfg->name, LOAD(p->stats->patience_ms),
			     p->cfg->queue.timeout_auto ? "true" : "false");
		for (unsigned j = 0; j < p->nbe; j++) {
			const struct backend *be = p->be[j];

			volatile struct sl_backend *kb = be->kb;
			const char *why = LOAD(be->learned.why);

			admin_printf(r,
				     "%s{\"name\":\"%s\",\"address\":\"%s\",\"up\":%s,\"active\":%u,"
				     "\"connects\":%llu,\"failures\":%llu,\"bytes_to_backend\":%llu,"
				     "\"bytes_to_client\":%llu,\"rate\":%u,\"rate_by\":\"%s\","
				     "\"rate_why\":\"%s\",\"setup_p50_ms\":%.3f,\"setup_p99_ms\":%.3f,"
				     "\"setup_baseline_ms\":%.3f,\"setups_answered\":%llu,"
				     "\"setups_wasted\":%llu,\"setups_unanswered\":%llu}",
				     j ? "," : "", p->cfg->servers[j].name, be->addr.text,
				     backend_is_up(be) ? "true" : "false", LOAD(be->active),
				     (unsigned long long)backend_total(be, connects),
				     (unsigned long long)backend_total(be, failures),
				     (unsigned long long)backend_total(be, bytes_out),
				     (unsigned long long)backend_total(be, bytes_in), kb ? kb->rate : 0,
				     rate_mode(&p->cfg->servers[j], be),
				     p->cfg->servers[j].rate_auto && why ? why : "",
				     LOAD(be->learned.p50_us) / 1e3, LOAD(be->learned.p99_us) / 1e3,
				     LOAD(be->learned.base_us) / 1e3,
				     (unsigned long long)backend_total(be, answered),
				     (unsigned long long)backend_total(be, wasted),
				     (unsigned long long)backend_total(be, unanswered));
		}
		admin_printf(r, "]}");
	}
	admin_printf(r, "]}\n");
}

/* ---- /status: a page for people ---------------------------------------------- */

static const char *backend_state(const struct backend *be)
{
	if (LOAD(be->op_drained))
		return "drained";
	if (LOAD(be->drained))
		return "agent drain";
	if (LOAD(be->agent_down))
		return "agent down";
	if (LOAD(be->hc_down))
		return "down";
	if (!backend_is_up(be))
		return "failing";
	if (LOAD(be->starved))
		return "starved";
	return "up";
}

/*
 * One self-contained HTML page: no script, no external resources; it
 * refreshes itself every 2 s. Names are [A-Za-z0-9_.-] and addresses are
 * normalised by the config, so nothing printed needs escaping.
 */
static void status_html(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	struct timespec ts;
	uint64_t now_ms, now_ns = ebpf_now_ns();
	struct totals t;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	sum_workers(d, &t);
	r->content_type = "text/html; charset=utf-8";
	admin_printf(r,
		     "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
		     "<meta http-equiv=\"refresh\" content=\"2\"><title>sluice status</title>"
		     "<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
		     "table{border-collapse:collapse;margin:.5em 0 1.5em}"
		     "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
		     "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
		     ".up{color:#176e1a}.down,.failing,.starved,.drained{color:#b00020;font-weight:bold}"
		     "h2{margin:.8em 0 .2em;font-size:1.1em}</style></head><body>"
		     "<h1>sluice</h1><p>version %s &middot; config generation %llu &middot; "
		     "%u workers &middot; reloads %llu ok, %llu failed &middot; BPF programs "
		     "attached %u (re-attached %llu)</p>"
		     "<p>connections: %llu accepted, %llu open, %llu refused, %llu reset, "
		     "%llu bad heads</p>",
		     SLUICE_VERSION, (unsigned long long)s->gen, d->nworkers,
		     (unsigned long long)LOAD(d->reloads_ok), (unsigned long long)LOAD(d->reloads_failed),
		     ebpf_attached(d->ebpf), (unsigned long long)ebpf_reattached(d->ebpf),
		     (unsigned long long)t.accepted, (unsigned long long)t.active,
		     (unsigned long long)t.refused, (unsigned long long)t.resets,
		     (unsigned long long)t.bad_heads);

	admin_printf(r, "<h2>Listeners</h2><table id=\"listeners\"><tr><th>listener</th>"
			"<th>address</th><th>mode</th><th>pool</th><th>accepted</th><th>open</th>"
			"<th>SYNs passed</th><th>SYNs dropped</th></tr>");
	for (unsigned i = 0; i < s->nlisteners; i++) {
		const struct snap_listener *l = &s->listeners[i];
		volatile struct sl_listener *kl =
			l->cfg->syn_gate.enabled ? ebpf_listener(d->ebpf, &l->cfg->addr) : NULL;

		admin_printf(r, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%llu</td>"
				"<td>%llu</td>",
			     l->cfg->name, l->cfg->addr.text, listener_mode(l), l->pool->cfg->name,
			     (unsigned long long)LOAD(l->stats->accepted),
			     (unsigned long long)LOAD(l->stats->active));
		if (kl)
			admin_printf(r, "<td>%llu</td><td>%llu</td></tr>",
				     (unsigned long long)kl->passed,
				     (unsigned long long)(kl->dropped_rate + kl->dropped_source));
		else
			admin_printf(r, "<td>&ndash;</td><td>&ndash;</td></tr>");
	}
	admin_printf(r, "</table><h2>Pools</h2><table id=\"pools\"><tr><th>pool</th>"
			"<th>queued now</th><th>queue max</th><th>patience learned</th>"
			"<th>waited</th><th>admitted</th>");
	for (unsigned k = 0; k < REFUSE_COUNT; k++)
		admin_printf(r, "<th>refused: %s</th>", refusal_names[k]);
	admin_printf(r, "</tr>");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		admin_printf(r, "<tr><td>%s</td><td>%u</td><td>%u</td><td>%.1f s%s</td><td>%llu</td>"
				"<td>%llu</td>",
			     p->cfg->name, LOAD(p->queued), p->cfg->queue.max,
			     LOAD(p->stats->patience_ms) / 1000.0,
			     p->cfg->queue.timeout_auto ? " (auto)" : "",
			     (unsigned long long)LOAD(p->stats->queued_total),
			     (unsigned long long)LOAD(p->stats->admitted_total));
		for (unsigned k = 0; k < REFUSE_COUNT; k++)
			admin_printf(r, "<td>%llu</td>", (unsigned long long)LOAD(p->stats->refused[k]));
		admin_printf(r, "</tr>");
	}
	admin_printf(r, "</table><h2>Backends</h2><table id=\"backends\"><tr><th>backend</th>"
			"<th>pool</th><th>address</th><th>state</th><th>connections (ledger)</th>"
			"<th>max</th><th>rate /s</th><th>rate set by</th><th>set-up p50 / p99</th>"
			"<th>tokens</th><th>connects</th><th>failed</th><th>left before answer</th>"
			"<th>refused full</th><th>refused rate</th><th>last health check</th>"
			"<th>synthetic checks</th></tr>");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		for (unsigned j = 0; j < p->nbe; j++) {
			const struct backend *be = p->be[j];
			volatile struct sl_backend *kb = be->kb;
			const char *st = backend_state(be);
			uint64_t hc = LOAD(be->hc_last_ms);
			char hcs[64], max[16] = "&ndash;", rate[16] = "&ndash;", tok[24] = "&ndash;";
			char syn[64] = "&ndash;";

			if (!hc)
				snprintf(hcs, sizeof(hcs), "&ndash;");
			else
				snprintf(hcs, sizeof(hcs), "%s, %.1f s ago",
					 LOAD(be->hc_last_ok) ? "passed" : "failed",
					 (double)(now_ms - hc) / 1000.0);
			if (p->cfg->synthetic.enabled)
				snprintf(syn, sizeof(syn), "%llu ok, %llu failed",
					 (unsigned long long)LOAD(be->synth_ok),
					 (unsigned long long)LOAD(be->synth_fail));
			if (kb) {
				if (kb->max_conns)
					snprintf(max, sizeof(max), "%u", kb->max_conns);
				if (kb->rate)
					snprintf(rate, sizeof(rate), "%u", kb->rate);
				snprintf(tok, sizeof(tok), "%llu",
					 (unsigned long long)sl_gcra_tokens(
						 kb->bucket.tat_ns, now_ns, kb->bucket.interval_ns,
						 kb->bucket.tau_ns, kb->burst ? kb->burst : 1));
			}
			admin_printf(r,
				     "<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"%s\">%s</td>"
				     "<td>%u</td><td>%s</td><td>%s</td><td>%s%s%s</td>"
				     "<td>%.1f / %.1f ms</td><td>%s</td><td>%llu</td>"
				     "<td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td><td>%s</td>"
				     "<td>%s</td></tr>",
				     p->cfg->servers[j].name, p->cfg->name, be->addr.text,
				     strchr(st, ' ') ? "drained" : st, st,
				     kb ? kb->active : LOAD(be->active), max, rate,
				     rate_mode(&p->cfg->servers[j], be),
				     p->cfg->servers[j].rate_auto && LOAD(be->learned.why) ? ": " : "",
				     p->cfg->servers[j].rate_auto && LOAD(be->learned.why)
					     ? LOAD(be->learned.why) : "",
				     LOAD(be->learned.p50_us) / 1e3, LOAD(be->learned.p99_us) / 1e3, tok,
				     (unsigned long long)backend_total(be, connects),
				     (unsigned long long)backend_total(be, failures),
				     (unsigned long long)backend_total(be, wasted),
				     (unsigned long long)(kb ? kb->refused_full : 0),
				     (unsigned long long)(kb ? kb->refused_rate : 0), hcs, syn);
		}
	}
	admin_printf(r, "</table><p>Also: <a href=\"/metrics\">/metrics</a>, "
			"<a href=\"/status.json\">/status.json</a>, "
			"<a href=\"/status.txt\">/status.txt</a>.</p></body></html>\n");
}

void stats_handle(const char *method, const char *path, struct admin_resp *r, void *arg)
{
	struct daemon *d = arg;
	struct snapshot *s;

	if (strcmp(method, "POST") == 0) {
		control_handle(d, path, r);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r->status = 405;
		admin_printf(r, "method not allowed\n");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		admin_printf(r, "ok\n");
		return;
	}
	s = daemon_snapshot(d);
	if (strcmp(path, "/metrics") == 0) {
		metrics(d, s, r);
	} else if (strcmp(path, "/status") == 0 || strcmp(path, "/") == 0) {
		status_html(d, s, r);
	} else if (strcmp(path, "/status.txt") == 0) {
		status_text(d, s, r);
	} else if (strcmp(path, "/backends.txt") == 0) {
		backends_text(s, r);
	} else if (strcmp(path, "/fleet.txt") == 0) {
		fleet_text(d->fleet, r);
	} else if (strcmp(path, "/status.json") == 0) {
		status_json(d, s, r);
	} else {
		r->status = 404;
		admin_printf(r, "not found; try /status, /metrics, /status.txt, /status.json, "
				"/backends.txt, /fleet.txt, /healthz\n");
	}
	snapshot_put(s);
}
