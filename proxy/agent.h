/* SPDX-License-Identifier: MIT */
/*
 * agent — one reply line of a backend's agent port: HAProxy's agent-check
 * protocol plus sluice's rate:R word.
 *
 * The line is words separated by spaces, tabs and/or commas, any case,
 * ending at the first LF or CR (so at "\r\n" too) or at the end of the
 * buffer. A '#' ends the words (also inside one: "down#db unreachable") and
 * the rest of the line is a description. The words:
 *
 *   up, down, fail, stopped   health: the backend's service works or not
 *   ready, drain, maint       admin state: take traffic, only existing
 *                             connections, nothing
 *   N%                        weight as a percentage of the configured
 *                             weight, 0..256
 *   maxconn:N                 connection limit, 0..AGENT_NUM_MAX
 *   rate:R                    new connections per second, 0..AGENT_NUM_MAX
 *
 * As in HAProxy, words may come in any order, the last of a kind wins, and a
 * word that is unknown or out of range ("maxconn:99999999999", "300%") is
 * ignored, so a reply with no usable word at all parses as nothing: HAS 0.
 */
#ifndef SLUICE_AGENT_H
#define SLUICE_AGENT_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_LINE_MAX 512 /* bytes before the line ending */
#define AGENT_WEIGHT_MAX 256
#define AGENT_NUM_MAX 2147483647u /* maxconn and rate, as HAProxy's int */

enum agent_health {
	AGENT_UP = 1,
	AGENT_DOWN,
	AGENT_FAIL,
	AGENT_STOPPED,
};

enum agent_admin {
	AGENT_READY = 1,
	AGENT_DRAIN,
	AGENT_MAINT,
};

/* Which fields of struct agent_reply the line set. */
#define AGENT_HAS_HEALTH (1u << 0)
#define AGENT_HAS_ADMIN (1u << 1)
#define AGENT_HAS_WEIGHT (1u << 2)
#define AGENT_HAS_MAXCONN (1u << 3)
#define AGENT_HAS_RATE (1u << 4)

struct agent_reply {
	uint32_t has;	     /* AGENT_HAS_*; 0: nothing usable */
	uint8_t health;	     /* enum agent_health */
	uint8_t admin;	     /* enum agent_admin */
	uint16_t weight_pct; /* 0..AGENT_WEIGHT_MAX */
	uint32_t maxconn;
	uint32_t rate;	     /* new connections per second */
	const char *desc;    /* after '#', trimmed, within the caller's buffer; NULL if none */
	size_t desc_len;
};

/*
 * Parse the reply line at BUF (LEN bytes; what follows the first line is
 * ignored) into *R. R->desc points into BUF. 0, or -EINVAL when the line is
 * longer than AGENT_LINE_MAX bytes or contains a NUL byte; *R is then empty.
 */
int agent_parse(const char *buf, size_t len, struct agent_reply *r);

#endif
