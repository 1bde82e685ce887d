/* SPDX-License-Identifier: MIT */
/*
 * control — what operators change at run time through the admin endpoint:
 *   POST /drain?backend=NAME   no new clients for it; its connections are
 *                              closed at the drain pace (drain.period_s)
 *   POST /enable?backend=NAME  back in rotation
 *   POST /set?backend=NAME&rate=N&max_conns=N
 *                              limits in force until the next reload (either
 *                              or both; within what the kernel map holds)
 *   POST /reload               SIGHUP, and the outcome: the new generation or why not
 * NAME is a server's name or address. Drains and limits set here last until
 * the next reload.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include "userspace/admin.h"

struct daemon;

/* Handle a POST; fills R (status and a one-line answer). */
void control_handle(struct daemon *d, const char *path, struct admin_resp *r);

#endif
