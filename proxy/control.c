// SPDX-License-Identifier: MIT
#include "proxy/control.h"

#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/daemon.h"
#include "proxy/udata.h"
#include "userspace/log.h"

/*
 * The admin thread talks to workers the way main does, with MSG_RING, from
 * a small ring of its own (one thread: no locking).
 */
static struct io_uring ring;
static int ring_ok;

static struct backend *find_backend(struct snapshot *s, const char *name, double *cap)
{
	struct backend *found = NULL;

	*cap = 0;
	for (unsigned i = 0; i < s->npools; i++) {
		for (unsigned j = 0; j < s->pools[i].nbe; j++) {
			const struct cfg_server *sv = &s->pools[i].cfg->servers[j];

			if (strcmp(sv->name, name) == 0 || strcmp(sv->addr.text, name) == 0) {
				found = s->pools[i].be[j];
				continue;
			}
			*cap += sv->rate_auto ? atomic_load(&s->pools[i].be[j]->learned.rate)
					      : sv->rate;
		}
	}
	return found;
}

static int drain(struct daemon *d, struct snapshot *s, struct backend *be, double cap)
{
	if (!ring_ok) {
		if (io_uring_queue_init(64, &ring, 0))
			return -1;
		ring_ok = 1;
	}
	for (unsigned i = 0; i < d->nworkers; i++) {
		struct drain_req *r = malloc(sizeof(*r));
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		if (!r || !sqe) {
			free(r);
			return -1;
		}
		*r = (struct drain_req){ .kind = DRAIN_BACKEND, .target = be,
					 .period_s = s->cfg->drain.period_s, .cap_per_s = cap,
					 .nworkers = d->nworkers };
		io_uring_prep_msg_ring(sqe, worker_ring_fd(d->workers[i]), MSG_DRAIN,
				       ud_pack(r, UD_MSG), 0);
		io_uring_sqe_set_data64(sqe, 0);
	}
	io_uring_submit_and_wait(&ring, d->nworkers);
	io_uring_cq_advance(&ring, io_uring_cq_ready(&ring));
	return 0;
}

/* The value of KEY=... in the query string Q (after '?'), or -1; -2 if malformed. */
static long long query_num(const char *q, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		char *end;
		long long v;

		if (strncmp(p, key, kl) != 0 || p[kl] != '=')
			continue;
		v = strtoll(p + kl + 1, &end, 10);
		if (end == p + kl + 1 || (*end && *end != '&') || v < 0 || v > 10000000)
			return -2;
		return v;
	}
	return -1;
}

static void reload_and_wait(struct daemon *d, struct admin_resp *r)
{
	uint64_t ok0 = atomic_load(&d->reloads_ok), bad0 = atomic_load(&d->reloads_failed);
	struct timespec pause = { .tv_nsec = 20000000 };

	kill(getpid(), SIGHUP);
	for (int i = 0; i < 500; i++) {
		if (atomic_load(&d->reloads_ok) != ok0) {
			struct snapshot *s = daemon_snapshot(d);

			admin_printf(r, "reload: generation %llu in service\n", (unsigned long long)s->gen);
			snapshot_put(s);
			return;
		}
		if (atomic_load(&d->reloads_failed) != bad0) {
			r->status = 409;
			pthread_mutex_lock(&d->lock);
			admin_printf(r, "reload failed; still serving the previous config:\n%s\n",
				     d->last_reload_error);
			pthread_mutex_unlock(&d->lock);
			return;
		}
		nanosleep(&pause, NULL);
	}
	r->status = 504;
	admin_printf(r, "reload: no outcome within 10 s\n");
}

void control_handle(struct daemon *d, const char *path, struct admin_resp *r)
{
	const char *q = strchr(path, '?');
	char name[CFG_NAME_MAX + 80];
	struct snapshot *s;
	struct backend *be;
	double cap;
	size_t plen = q ? (size_t)(q - path) : strlen(path), nlen;
	int enable = 0, set = 0;

	if (plen == 7 && strncmp(path, "/reload", 7) == 0) {
		reload_and_wait(d, r);
		return;
	}
	if (plen == 7 && strncmp(path, "/enable", 7) == 0)
		enable = 1;
	else if (plen == 4 && strncmp(path, "/set", 4) == 0)
		set = 1;
	else if (!(plen == 6 && strncmp(path, "/drain", 6) == 0)) {
		r->status = 404;
		admin_printf(r, "unknown command; POST /drain, /enable, /set?backend=NAME, /reload\n");
		return;
	}
	nlen = q ? strcspn(q + 9, "&") : 0;
	if (!q || strncmp(q + 1, "backend=", 8) != 0 || !nlen || nlen >= sizeof(name)) {
		r->status = 400;
		admin_printf(r, "which backend? ?backend=NAME (a server's name or address)\n");
		return;
	}
	memcpy(name, q + 9, nlen);
	name[nlen] = 0;
	s = daemon_snapshot(d);
	be = find_backend(s, name, &cap);
	if (!be) {
		r->status = 404;
		admin_printf(r, "no backend named \"%s\"\n", name);
	} else if (set) {
		long long rate = query_num(q + 1, "rate"), max = query_num(q + 1, "max_conns");

		if (rate == -2 || max == -2 || (rate < 0 && max < 0)) {
			r->status = 400;
			admin_printf(r, "set what? rate=N and/or max_conns=N (0..10000000; 0: no limit)\n");
		} else {
			if (rate >= 0)
				atomic_store(&be->ov_rate, (uint32_t)rate);
			if (max >= 0)
				atomic_store(&be->ov_max, (uint32_t)max);
			log_info("control: backend %s: rate %lld, max_conns %lld until the next reload",
				 be->addr.text, rate, max);
			admin_printf(r, "backend %s:%s%lld%s%lld until the next reload\n", be->addr.text,
				     rate >= 0 ? " rate " : "", rate >= 0 ? rate : 0,
				     max >= 0 ? " max_conns " : "", max >= 0 ? max : 0);
		}
	} else if (enable) {
		atomic_store(&be->op_drained, 0);
		log_info("control: backend %s enabled", be->addr.text);
		admin_printf(r, "backend %s enabled\n", be->addr.text);
	} else {
		/* no new clients at once; the open ones at the drain pace */
		atomic_store(&be->op_drained, 1);
		if (drain(d, s, be, cap)) {
			r->status = 500;
			admin_printf(r, "backend %s: no new clients, but its connections could not "
					"be drained\n", be->addr.text);
		} else {
			log_info("control: backend %s drained over %u s", be->addr.text,
				 s->cfg->drain.period_s);
			admin_printf(r, "backend %s draining over %u s\n", be->addr.text,
				     s->cfg->drain.period_s);
		}
	}
	snapshot_put(s);
}
