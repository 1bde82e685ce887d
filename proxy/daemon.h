/* SPDX-License-Identifier: MIT */
/*
 * daemon — the state of one sluiced process that outlives any one config:
 * its workers, the current snapshot, reload history. Owned by the main
 * thread; the admin thread reads it through daemon_snapshot() and atomics.
 */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "proxy/snapshot.h"
#include "proxy/worker.h"
#include "userspace/ebpf.h"

struct daemon {
	const char *config_path;
	unsigned nworkers;
	struct worker *workers[CFG_MAX_WORKERS];
	uint64_t start_time; /* unix seconds */

	pthread_mutex_t lock; /* guards cur against readers on other threads */
	struct snapshot *cur;
	struct ebpf *ebpf; /* NULL when bpf.enabled = false */
	struct health *health;
	struct fleet *fleet; /* proxy/fleet.h: inactive without `fleet` in the config */
	struct admin *admin; /* NULL when off: a reload gives it a new token */

	_Atomic uint64_t reloads_ok;
	_Atomic uint64_t reloads_failed;
	_Atomic uint64_t last_reload_ok; /* unix seconds of the last good load */
	char last_reload_error[512];     /* why the last reload failed (under lock) */
	_Atomic int stopping;
};

/* The current snapshot with a new reference (put it when done). */
struct snapshot *daemon_snapshot(struct daemon *d);

#endif
