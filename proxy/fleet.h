/* SPDX-License-Identifier: MIT */
/*
 * fleet — several sluice hosts sharing backend limits through Redis
 * (config `fleet`). With it, a server's max_conns, rate and burst are the
 * backend's totals across every host of the fleet (same key prefix). Each
 * host publishes, every heartbeat, its ledger, waiting clients and
 * admissions per backend and the part it wants (proxy/share.h); Redis
 * grants it what the other hosts' grants leave, atomically, so the grants
 * never sum past a total; the host writes its grant into its own kernel
 * maps: every host's kernel still enforces every limit.
 *
 * Redis is spoken to from the main thread's io_uring (polls on a
 * non-blocking socket, through OpenSSL with fleet tls), hiredis formatting
 * the commands and parsing the replies; admission never waits for it. Modes:
 * coordinated (a reply within two heartbeats); lease (Redis slow or gone:
 * the last grants are kept until lease_ms after the last reply; no other
 * host can take them before that, their key lives that long); static
 * (then, or before Redis ever answered: total / the last known number of
 * hosts). Every change of mode is logged and counted. Hosts also publish a
 * digest of their pools and backends: a host whose set differs from the
 * others' is flagged (drift) on every host.
 */
#ifndef SLUICE_FLEET_H
#define SLUICE_FLEET_H

#include <liburing.h>
#include <stdint.h>

struct fleet;
struct snapshot;
struct admin_resp;

enum fleet_mode { FLEET_OFF, FLEET_COORDINATED, FLEET_LEASE, FLEET_STATIC, FLEET_MODES };

/* The fleet of the main loop on RING; inactive until a config with `fleet`. */
struct fleet *fleet_new(struct io_uring *ring);
void fleet_free(struct fleet *f);
/* The config in service is S (at start and after each reload). */
void fleet_configure(struct fleet *f, struct snapshot *s);
/* Heartbeats, timeouts, modes, parts: call every pass of the main loop. */
void fleet_tick(struct fleet *f, uint64_t now_ms);
/* A completion of the fleet's (ud_op UD_FLEET_READ or UD_FLEET_WRITE). */
void fleet_on_cqe(struct fleet *f, void *ptr, int op, int res);

/* For the admin endpoint (any thread). */
void fleet_metrics(struct fleet *f, struct admin_resp *r);
void fleet_text(struct fleet *f, struct admin_resp *r);
/* "off", "coordinated", "lease", "static"; and whether this host's config differs. */
const char *fleet_mode_name(enum fleet_mode m);
enum fleet_mode fleet_mode(struct fleet *f, int *drift);

#endif
