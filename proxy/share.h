/* SPDX-License-Identifier: MIT */
/*
 * share — one host's part of a backend's fleet-wide budget (proxy/fleet.c),
 * from what every live host published: a pure function of its inputs, so
 * every host computing its own part from the same inputs gets parts that
 * sum to at most the total.
 *
 * Connections: what is open stays where it is (a host's part is at least
 * its ledger, in_use); what is left of the total is split among hosts, a
 * twentieth evenly (a floor, so a host that had no clients a moment ago
 * can admit the first ones of a storm without waiting a heartbeat) and the
 * rest in proportion to the clients each has waiting (Doorman's
 * proportional share). Where everyone's wants fit, each gets them and the
 * rest evenly. Rate: a twentieth evenly, the rest in proportion to each
 * host's demand (its waiting clients plus its admissions in the last
 * second). These are what a host asks for; what it gets is granted by
 * Redis, within what the others hold (proxy/fleet.c).
 */
#ifndef SLUICE_SHARE_H
#define SLUICE_SHARE_H

#include <stdint.h>

struct share_host {
	uint32_t in_use;  /* connections to the backend it holds (its kernel ledger) */
	uint32_t waiting; /* its clients waiting for a backend of the pool(s) */
	uint32_t admits;  /* its connects let through in the last second */
};

/* Host ME's part of TOTAL connections among the N hosts H (TOTAL > 0). */
uint32_t share_conns(uint32_t total, const struct share_host *h, unsigned n, unsigned me);
/* Host ME's part of TOTAL new connections a second (TOTAL > 0). */
uint32_t share_rate(uint32_t total, const struct share_host *h, unsigned n, unsigned me);

#endif
