/* SPDX-License-Identifier: MIT */
/*
 * stats — what the admin endpoint answers: /metrics (Prometheus text
 * format), /status.txt (a table for sluicectl), /status.json, /healthz.
 * Read-only: counters are loaded relaxed, the snapshot by reference.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include "userspace/admin.h"

/* admin_handler_fn; ARG is the struct daemon. */
void stats_handle(const char *method, const char *path, struct admin_resp *r, void *arg);

#endif
