// SPDX-License-Identifier: MIT
#include "proxy/stats.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "proxy/control.h"
#include "proxy/daemon.h"
#include "proxy/health.h"
#include "version.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct totals {
	uint64_t accepted, active, refused, bad_heads, head_timeouts, idle_timeouts,
		resets, accept_errors, nobufs, grace_closed;
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
	/* from the kernel's maps; absent without BPF */
	BV_LEDGER, BV_MAX, BV_ADMITTED, BV_REFUSED_FULL, BV_REFUSED_RATE, BV_TOKENS,
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

			for (unsigned j = 0; j < p->nbe; j++) {
				int ok;
				unsigned long long v = be_value(p->be[j], be_series[k].v, now, &ok);

				if (ok)
					admin_printf(r,
						     "%s{pool=\"%s\",backend=\"%s\",address=\"%s\"%s} %llu\n",
						     be_series[k].name, p->cfg->name,
						     p->cfg->servers[j].name, p->be[j]->addr.text,
						     be_series[k].labels, v);
			}
		}
	}
}

static const char *const refusal_names[REFUSE_COUNT] = {
	[REFUSE_FULL] = "full",
	[REFUSE_RATE] = "rate",
	[REFUSE_QUEUE_FULL] = "queue_full",
	[REFUSE_QUEUE_TIMEOUT] = "queue_timeout",
	[REFUSE_DOWN] = "down",
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
	admin_printf(r, "sluice_connections_closed_total{reason=\"reset\"} %llu\n",
		     (unsigned long long)t.resets);
	admin_printf(r, "sluice_connections_closed_total{reason=\"grace\"} %llu\n",
		     (unsigned long long)t.grace_closed);
	metric_head(r, "sluice_accept_errors_total", "counter", "Failed accepts (EMFILE, ...).");
	admin_printf(r, "sluice_accept_errors_total %llu\n", (unsigned long long)t.accept_errors);
	metric_head(r, "sluice_buffer_exhausted_total", "counter",
		    "Receives that found the provided-buffer ring empty.");
	admin_printf(r, "sluice_buffer_exhausted_total %llu\n", (unsigned long long)t.nobufs);

	metric_head(r, "sluice_bpf_programs_attached", "gauge",
		    "BPF programs attached now: connect4, connect6, sock_release, one XDP per interface.");
	admin_printf(r, "sluice_bpf_programs_attached %u\n", ebpf_attached(d->ebpf));
	metric_head(r, "sluice_bpf_reattach_total", "counter",
		    "Programs found detached by the safeguard and attached again.");
	admin_printf(r, "sluice_bpf_reattach_total %llu\n",
		     (unsigned long long)ebpf_reattached(d->ebpf));
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
}

static void status_text(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	struct totals t;

	sum_workers(d, &t);
	admin_printf(r, "sluiced %s  generation %llu  workers %u  reloads ok %llu failed %llu\n",
		     SLUICE_VERSION, (unsigned long long)s->gen, d->nworkers,
		     (unsigned long long)LOAD(d->reloads_ok),
		     (unsigned long long)LOAD(d->reloads_failed));
	admin_printf(r, "connections: accepted %llu  active %llu  refused %llu  resets %llu\n\n",
		     (unsigned long long)t.accepted, (unsigned long long)t.active,
		     (unsigned long long)t.refused, (unsigned long long)t.resets);
	admin_printf(r, "%-16s %-24s %-6s %s\n", "LISTENER", "ADDRESS", "MODE", "POOL");
	for (unsigned i = 0; i < s->nlisteners; i++)
		admin_printf(r, "%-16s %-24s %-6s %s\n", s->listeners[i].cfg->name,
			     s->listeners[i].cfg->addr.text, "tcp", s->listeners[i].pool->cfg->name);
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
		admin_printf(r, "%s{\"name\":\"%s\",\"address\":\"%s\",\"pool\":\"%s\"}", i ? "," : "",
			     s->listeners[i].cfg->name, s->listeners[i].cfg->addr.text,
			     s->listeners[i].pool->cfg->name);
	admin_printf(r, "],\"pools\":[");
	for (unsigned i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];

		admin_printf(r, "%s{\"name\":\"%s\",\"backends\":[", i ? "," : "", p->cfg->name);
		for (unsigned j = 0; j < p->nbe; j++) {
			const struct backend *be = p->be[j];

			admin_printf(r,
				     "%s{\"name\":\"%s\",\"address\":\"%s\",\"up\":%s,\"active\":%u,"
				     "\"connects\":%llu,\"failures\":%llu,\"bytes_to_backend\":%llu,"
				     "\"bytes_to_client\":%llu}",
				     j ? "," : "", p->cfg->servers[j].name, be->addr.text,
				     backend_is_up(be) ? "true" : "false", LOAD(be->active),
				     (unsigned long long)backend_total(be, connects),
				     (unsigned long long)backend_total(be, failures),
				     (unsigned long long)backend_total(be, bytes_out),
				     (unsigned long long)backend_total(be, bytes_in));
		}
		admin_printf(r, "]}");
	}
	admin_printf(r, "]}\n");
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
	} else if (strcmp(path, "/status.txt") == 0) {
		status_text(d, s, r);
	} else if (strcmp(path, "/status.json") == 0) {
		status_json(d, s, r);
	} else {
		r->status = 404;
		admin_printf(r, "not found; try /metrics, /status.txt, /status.json, /healthz\n");
	}
	snapshot_put(s);
}
