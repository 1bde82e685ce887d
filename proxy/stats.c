// SPDX-License-Identifier: MIT
#include "proxy/stats.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "proxy/daemon.h"
#include "version.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct totals {
	uint64_t accepted, active, no_backend, backend_wait, closed_full, closed_rate, idle_timeouts,
		resets, accept_errors, nobufs, grace_closed;
};

static void sum_workers(struct daemon *d, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < d->nworkers; i++) {
		const struct worker_stats *s = worker_stats(d->workers[i]);

		t->accepted += LOAD(s->accepted);
		t->active += LOAD(s->active);
		t->no_backend += LOAD(s->no_backend);
		t->backend_wait += LOAD(s->backend_wait);
		t->closed_full += LOAD(s->closed_full);
		t->closed_rate += LOAD(s->closed_rate);
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

/* What the kernel's maps say, per backend and per SYN gate. */
static void kernel_metrics(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	static const char *const names[] = {
		"sluice_backend_ledger_connections", "sluice_backend_max_connections",
		"sluice_backend_admitted_total", "sluice_backend_kernel_refused_total",
		"sluice_backend_tokens",
	};
	static const char *const helps[] = {
		"Connections holding a slot of the kernel's ledger (all processes in the cgroup).",
		"max_conns in force (0: no limit).",
		"Backend connects the kernel let through.",
		"Backend connects the kernel refused, by reason.",
		"Tokens in the backend's new-connection bucket now (burst when no rate limit).",
	};
	static const char *const types[] = { "gauge", "gauge", "counter", "counter", "gauge" };
	uint64_t now = ebpf_now_ns();

	if (!d->ebpf)
		return;
	for (unsigned k = 0; k < 5; k++) {
		metric_head(r, names[k], types[k], helps[k]);
		for (unsigned i = 0; i < s->npools; i++) {
			const struct snap_pool *p = &s->pools[i];

			for (unsigned j = 0; j < p->nbe; j++) {
				volatile struct sl_backend *kb = p->be[j]->kb;
				const char *lbl = "{pool=\"%s\",backend=\"%s\",address=\"%s\"%s} %llu\n";
				const char *pool = p->cfg->name, *name = p->cfg->servers[j].name;
				const char *addr = p->be[j]->addr.text;

				if (!kb)
					continue;
				admin_printf(r, "%s", names[k]);
				switch (k) {
				case 0:
					admin_printf(r, lbl, pool, name, addr, "",
						     (unsigned long long)kb->active);
					break;
				case 1:
					admin_printf(r, lbl, pool, name, addr, "",
						     (unsigned long long)kb->max_conns);
					break;
				case 2:
					admin_printf(r, lbl, pool, name, addr, "",
						     (unsigned long long)kb->admitted);
					break;
				case 3:
					admin_printf(r, lbl, pool, name, addr, ",reason=\"full\"",
						     (unsigned long long)kb->refused_full);
					admin_printf(r, "%s", names[k]);
					admin_printf(r, lbl, pool, name, addr, ",reason=\"rate\"",
						     (unsigned long long)kb->refused_rate);
					break;
				default:
					admin_printf(r, lbl, pool, name, addr, "",
						     (unsigned long long)sl_gcra_tokens(
							     kb->bucket.tat_ns, now,
							     kb->bucket.interval_ns, kb->bucket.tau_ns,
							     kb->burst ? kb->burst : 1));
				}
			}
		}
	}
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
	admin_printf(r, "sluice_connections_closed_total{reason=\"no_backend\"} %llu\n",
		     (unsigned long long)(t.no_backend - t.backend_wait - t.closed_full - t.closed_rate));
	admin_printf(r, "sluice_connections_closed_total{reason=\"backend_wait\"} %llu\n",
		     (unsigned long long)t.backend_wait);
	admin_printf(r, "sluice_connections_closed_total{reason=\"full\"} %llu\n",
		     (unsigned long long)t.closed_full);
	admin_printf(r, "sluice_connections_closed_total{reason=\"rate\"} %llu\n",
		     (unsigned long long)t.closed_rate);
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
	kernel_metrics(d, s, r);

	static const struct {
		const char *name, *type, *help;
	} be_metrics[] = {
		{ "sluice_backend_connections", "gauge", "Backend connections connecting or open." },
		{ "sluice_backend_up", "gauge", "1 when the backend takes new connections." },
		{ "sluice_backend_connects_total", "counter", "Backend connections established." },
		{ "sluice_backend_connect_failures_total", "counter", "Failed backend connects." },
		{ "sluice_backend_bytes_total", "counter", "Bytes proxied, by direction." },
	};
	for (unsigned k = 0; k < sizeof(be_metrics) / sizeof(be_metrics[0]); k++) {
		metric_head(r, be_metrics[k].name, be_metrics[k].type, be_metrics[k].help);
		for (unsigned i = 0; i < s->npools; i++) {
			const struct snap_pool *p = &s->pools[i];

			for (unsigned j = 0; j < p->nbe; j++) {
				const struct backend *be = p->be[j];
				const char *pool = p->cfg->name, *name = p->cfg->servers[j].name;
				const char *fmt = "%s{pool=\"%s\",backend=\"%s\",address=\"%s\"%s} %llu\n";
				unsigned long long v;

				switch (k) {
				case 0: v = LOAD(be->active); break;
				case 1: v = (unsigned long long)backend_is_up(be); break;
				case 2: v = backend_total(be, connects); break;
				case 3: v = backend_total(be, failures); break;
				default:
					admin_printf(r, fmt, be_metrics[k].name, pool, name, be->addr.text,
						     ",direction=\"to_backend\"",
						     (unsigned long long)backend_total(be, bytes_out));
					v = backend_total(be, bytes_in);
					admin_printf(r, fmt, be_metrics[k].name, pool, name, be->addr.text,
						     ",direction=\"to_client\"", v);
					continue;
				}
				admin_printf(r, fmt, be_metrics[k].name, pool, name, be->addr.text, "", v);
			}
		}
	}
}

static void status_text(struct daemon *d, struct snapshot *s, struct admin_resp *r)
{
	struct totals t;

	sum_workers(d, &t);
	admin_printf(r, "sluiced %s  generation %llu  workers %u  reloads ok %llu failed %llu\n",
		     SLUICE_VERSION, (unsigned long long)s->gen, d->nworkers,
		     (unsigned long long)LOAD(d->reloads_ok),
		     (unsigned long long)LOAD(d->reloads_failed));
	admin_printf(r, "connections: accepted %llu  active %llu  no_backend %llu  resets %llu\n\n",
		     (unsigned long long)t.accepted, (unsigned long long)t.active,
		     (unsigned long long)t.no_backend, (unsigned long long)t.resets);
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
		     "\"connections\":{\"accepted\":%llu,\"active\":%llu,\"no_backend\":%llu,"
		     "\"resets\":%llu,\"idle_timeouts\":%llu},\"listeners\":[",
		     SLUICE_VERSION, (unsigned long long)s->gen, d->nworkers,
		     (unsigned long long)LOAD(d->reloads_ok),
		     (unsigned long long)LOAD(d->reloads_failed), (unsigned long long)t.accepted,
		     (unsigned long long)t.active, (unsigned long long)t.no_backend,
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
