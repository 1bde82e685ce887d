/* SPDX-License-Identifier: MIT */
/*
 * evring — socket readiness from io_uring, behind epoll's interface: the
 * load generator's loops (idle, storm, rr/connrate/bulk) register sockets,
 * change what they wait for and collect events exactly as they would with
 * epoll, and the waiting is io_uring polls.
 *
 * Why readiness rather than io_uring reads and writes: the client side of a
 * TLS benchmark is OpenSSL on a socket, which reads and writes by itself and
 * can only be told when to try again; one mechanism serves plain and TLS
 * connections alike, and a connection holds no buffer while it waits.
 *
 * Semantics, matched to epoll's:
 *   - level-triggered (no EPOLLET): a one-shot poll; after its event is
 *     handed out, the socket is polled again at the next evr_wait, so a
 *     socket still ready then reports again, as epoll would;
 *   - edge-triggered (EPOLLET): a multishot poll, one event per wakeup,
 *     re-armed if the kernel ends it;
 *   - MOD and DEL remove the armed poll and take effect at the next wait;
 *     events of an older registration are dropped by a generation kept in
 *     each poll's user_data (fd in the low half, generation in the high).
 * One difference matters: a pending poll holds a reference to the socket, so
 * closing the descriptor does not end it (epoll forgets a closed socket by
 * itself). Call evr_forget() before close(); a socket left armed would stay
 * open until evr_exit().
 */
#ifndef SLUICE_BENCH_EVRING_H
#define SLUICE_BENCH_EVRING_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define EVR_UD_IGNORE UINT64_MAX /* poll removals: their completions carry nothing */

struct evr_fd {
	uint64_t data;	 /* handed back in epoll_event.data.u64 */
	uint32_t events; /* poll mask, EPOLLET stripped */
	uint32_t gen;	 /* bumped by every ADD, MOD and DEL */
	uint8_t reg;	 /* registered */
	uint8_t et;	 /* edge-triggered: multishot */
	uint8_t armed;	 /* a poll of this generation is in the kernel */
	uint8_t queued;	 /* in the to-arm list */
};

struct evring {
	struct io_uring ring;
	struct evr_fd *fds;
	uint32_t nfds;
	int *arm; /* descriptors to poll at the next evr_wait */
	uint32_t narm, carm;
	int ready; /* ring set up */
};

static inline int evr_init(struct evring *r, unsigned int cq_entries)
{
	struct io_uring_params p;
	int err;

	memset(r, 0, sizeof(*r));
	memset(&p, 0, sizeof(p));
	/* only this thread submits; completions are reaped only when it waits */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	p.cq_entries = cq_entries;
	err = io_uring_queue_init_params(1024, &r->ring, &p);
	if (err == -EINVAL) { /* older kernel */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		err = io_uring_queue_init_params(1024, &r->ring, &p);
	}
	if (err)
		return err;
	r->ready = 1;
	return 0;
}

static inline void evr_exit(struct evring *r)
{
	if (r->ready)
		io_uring_queue_exit(&r->ring); /* cancels every poll */
	free(r->fds);
	free(r->arm);
	memset(r, 0, sizeof(*r));
}

static inline struct io_uring_sqe *evr_sqe(struct evring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) { /* queue full: hand what is there to the kernel, then retry */
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

static inline uint64_t evr_ud(int fd, const struct evr_fd *e)
{
	return (uint64_t)e->gen << 32 | (uint32_t)fd;
}

static inline int evr_disarm(struct evring *r, int fd, struct evr_fd *e)
{
	struct io_uring_sqe *sqe;

	if (!e->armed)
		return 0;
	sqe = evr_sqe(r);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, evr_ud(fd, e));
	io_uring_sqe_set_data64(sqe, EVR_UD_IGNORE);
	e->armed = 0;
	return 0;
}

static inline int evr_queue(struct evring *r, int fd, struct evr_fd *e)
{
	if (e->queued)
		return 0;
	if (r->narm == r->carm) {
		uint32_t c = r->carm ? r->carm * 2 : 256;
		int *a = realloc(r->arm, c * sizeof(*a));

		if (!a)
			return -ENOMEM;
		r->arm = a;
		r->carm = c;
	}
	r->arm[r->narm++] = fd;
	e->queued = 1;
	return 0;
}

/*
 * epoll_ctl: OP is EPOLL_CTL_ADD, _MOD or _DEL; DATA comes back as
 * epoll_event.data.u64. Returns 0 or -errno. ADD of a descriptor still
 * registered replaces the registration: the number was closed and reused.
 */
static inline int evr_ctl(struct evring *r, int op, int fd, uint32_t events, uint64_t data)
{
	struct evr_fd *e;
	int err;

	if (fd < 0)
		return -EBADF;
	if ((uint32_t)fd >= r->nfds) {
		uint32_t n = r->nfds ? r->nfds : 1024;
		struct evr_fd *t;

		if (op != EPOLL_CTL_ADD)
			return -ENOENT;
		while (n <= (uint32_t)fd)
			n *= 2;
		t = realloc(r->fds, n * sizeof(*t));
		if (!t)
			return -ENOMEM;
		memset(t + r->nfds, 0, (n - r->nfds) * sizeof(*t));
		r->fds = t;
		r->nfds = n;
	}
	e = &r->fds[fd];
	if (op != EPOLL_CTL_ADD && !e->reg)
		return -ENOENT;
	err = evr_disarm(r, fd, e);
	if (err)
		return err;
	e->gen++;
	if (op == EPOLL_CTL_DEL) {
		e->reg = 0;
		return 0;
	}
	e->reg = 1;
	e->et = !!(events & EPOLLET);
	e->events = events & ~(uint32_t)EPOLLET;
	e->data = data;
	return evr_queue(r, fd, e);
}

/* Before close(FD): end its poll, which holds the socket open. */
static inline void evr_forget(struct evring *r, int fd)
{
	if (fd >= 0 && (uint32_t)fd < r->nfds && r->fds[fd].reg)
		evr_ctl(r, EPOLL_CTL_DEL, fd, 0, 0);
}

/*
 * epoll_wait: arm what is due, wait up to TIMEOUT_MS (0: do not wait) for a
 * first event, and fill EVS with at most MAX. Returns the count or -errno
 * (-EINTR: interrupted, call again).
 */
static inline int evr_wait(struct evring *r, struct epoll_event *evs, int max, int timeout_ms)
{
	struct io_uring_cqe *cqe;
	unsigned int head, seen = 0;
	uint32_t i;
	int n = 0, err;

	for (i = 0; i < r->narm; i++) {
		int fd = r->arm[i];
		struct evr_fd *e = &r->fds[fd];
		struct io_uring_sqe *sqe;

		e->queued = 0;
		if (!e->reg || e->armed)
			continue;
		sqe = evr_sqe(r);
		if (!sqe) { /* keep the rest for the next call */
			memmove(r->arm, r->arm + i, (r->narm - i) * sizeof(*r->arm));
			r->narm -= i;
			for (i = 0; i < r->narm; i++)
				r->fds[r->arm[i]].queued = 1;
			goto wait;
		}
		if (e->et)
			io_uring_prep_poll_multishot(sqe, fd, e->events);
		else
			io_uring_prep_poll_add(sqe, fd, e->events);
		io_uring_sqe_set_data64(sqe, evr_ud(fd, e));
		e->armed = 1;
	}
	r->narm = 0;
wait:
	if (timeout_ms > 0) {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ms / 1000,
			.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
		};

		err = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
		if (err == -ETIME)
			return 0;
	} else {
		err = io_uring_submit_and_get_events(&r->ring);
	}
	if (err < 0)
		return err;

	io_uring_for_each_cqe(&r->ring, head, cqe) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		uint32_t fd = (uint32_t)ud;
		struct evr_fd *e;

		if (n == max)
			break;
		seen++;
		if (ud == EVR_UD_IGNORE || fd >= r->nfds)
			continue;
		e = &r->fds[fd];
		if (!e->reg || e->gen != (uint32_t)(ud >> 32))
			continue; /* an older registration's */
		if (!(cqe->flags & IORING_CQE_F_MORE)) {
			e->armed = 0; /* one-shot fired, or the kernel ended a multishot */
			if (evr_queue(r, (int)fd, e))
				continue;
		}
		if (cqe->res == -ECANCELED)
			continue;
		evs[n].events = cqe->res < 0 ? EPOLLERR : (uint32_t)cqe->res;
		evs[n].data.u64 = e->data;
		n++;
	}
	io_uring_cq_advance(&r->ring, seen);
	return n;
}

#endif
