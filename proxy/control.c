// SPDX-License-Identifier: MIT
#include "proxy/control.h"

#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
			*cap += sv->rate;
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
		struct drain_req *r = aligned_alloc(16, sizeof(*r));
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

void control_handle(struct daemon *d, const char *path, struct admin_resp *r)
{
	const char *q = strchr(path, '?');
	char name[CFG_NAME_MAX + 80];
	struct snapshot *s;
	struct backend *be;
	double cap;
	size_t plen = q ? (size_t)(q - path) : strlen(path);
	int enable;

	if (plen == 7 && strncmp(path, "/enable", 7) == 0)
		enable = 1;
	else if (plen == 6 && strncmp(path, "/drain", 6) == 0)
		enable = 0;
	else {
		r->status = 404;
		admin_printf(r, "unknown command; POST /drain?backend=NAME or /enable?backend=NAME\n");
		return;
	}
	if (!q || strncmp(q + 1, "backend=", 8) != 0 || !q[9] || strlen(q + 9) >= sizeof(name)) {
		r->status = 400;
		admin_printf(r, "which backend? ?backend=NAME (a server's name or address)\n");
		return;
	}
	strcpy(name, q + 9);
	s = daemon_snapshot(d);
	be = find_backend(s, name, &cap);
	if (!be) {
		r->status = 404;
		admin_printf(r, "no backend named \"%s\"\n", name);
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
