/* SPDX-License-Identifier: MIT */
/*
 * health — what the main thread learns about backends and what it makes of
 * it: active health checks (a TCP connect, or an HTTP GET expecting 2xx/3xx)
 * with rise/fall and jittered intervals; agent checks (HAProxy's agent-check
 * line plus sluice's rate:R, proxy/agent.c); and the limits each backend
 * gets in the kernel right now — its configured max_conns and rate, ramped
 * up over slow_start_s after it comes up, capped by what its agent asks.
 *
 * Probes run on the main thread's io_uring; each operation carries a linked
 * timeout, so a probe never hangs. Probe sockets carry SL_MARK_CHECK: the
 * backend gate lets them through, so a backend at its limits is not judged
 * down because of them.
 */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <liburing.h>
#include <stdint.h>

#include "proxy/snapshot.h"
#include "userspace/ebpf.h"

struct health;

/* Probes submit on RING (the caller's, single-threaded). NULL on ENOMEM. */
struct health *health_new(struct io_uring *ring, struct ebpf *e);
void health_free(struct health *h);

/*
 * S is in service: probe its backends as its pools say. Backends new to
 * sluice since the last call start their slow start (not those of the
 * first call: at start-up backends are taken to be up and warm).
 */
void health_sync(struct health *h, struct snapshot *s, uint64_t now_ms);

/* Start probes that are due, update limits in the kernel. Call often (~100 ms). */
void health_tick(struct health *h, uint64_t now_ms);

/* A completion whose user_data is one of health's (ud_op UD_PROBE_CONNECT/SEND/RECV). */
void health_on_cqe(struct health *h, void *ptr, int op, int res, uint64_t now_ms);

/*
 * Once a second: flag backends of S that got no new connection for their
 * pool's starved_after_s while a peer in the pool did (sluice_backend_starved).
 */
void health_watch(struct health *h, struct snapshot *s, uint64_t now_ms);

/* Checks done since start: passed and failed (for the metrics). */
void health_counts(const struct health *h, uint64_t *ok, uint64_t *fail);

#endif
