/* SPDX-License-Identifier: MIT */
/*
 * learn — the main thread's half of admission that learns its numbers.
 *
 * Workers count, per backend, how its set-ups went (proxy/admit.c:
 * latency from connect to the backend's first byte, clients that left
 * before it, backends that never answered) and, per pool, how long clients
 * stayed (proxy/patience.h). Every LEARN_INTERVAL_MS, learn_tick() reads
 * those counters as differences, runs a rate controller (proxy/ratectl.h)
 * for every server with rate = "auto" and the patience estimator for every
 * pool, and publishes the results in struct backend_learned and struct
 * pool_stats: health.c writes the rates into the kernel's buckets, which
 * stay the enforcer; workers read the patience and the expected set-up
 * time when they decide how long a client may wait.
 *
 * State lives with what it is about (struct backend, struct pool_stats),
 * which outlive snapshots: a reload that keeps a backend or a pool keeps
 * what was learned. A restart starts an auto rate from the rate the
 * pinned kernel map still holds.
 */
#ifndef SLUICE_LEARN_H
#define SLUICE_LEARN_H

#include <stdint.h>

#include "proxy/snapshot.h"

#define LEARN_INTERVAL_MS 100

/*
 * Read the workers' counters for S's backends and pools and update what is
 * learned; the controllers step once per LEARN_INTERVAL_MS (NOW_MS is
 * monotonic). Backends new to learning are set up at once, so their rate
 * is known before health.c first applies limits.
 */
void learn_tick(struct snapshot *s, uint64_t now_ms);

/* The set-up latency (ms) below which a share Q of HIST's count lies; -1: empty. */
double learn_quantile_ms(const uint32_t *hist, double q);

#endif
