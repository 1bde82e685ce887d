/* SPDX-License-Identifier: MIT */
/*
 * control — what operators change at run time through the admin endpoint:
 *   POST /drain?backend=NAME   no new clients for it; its connections are
 *                              closed at the drain pace (drain.period_s)
 *   POST /enable?backend=NAME  back in rotation
 * NAME is a server's name or address. Kept until the next reload changes
 * the backend's configuration.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include "userspace/admin.h"

struct daemon;

/* Handle a POST; fills R (status and a one-line answer). */
void control_handle(struct daemon *d, const char *path, struct admin_resp *r);

#endif
