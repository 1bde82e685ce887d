/* SPDX-License-Identifier: MIT */
/*
 * admin — the admin HTTP endpoint: a small HTTP/1.1 server on its own
 * thread (loopback by default), one request per connection, bounded in size
 * and time so a stuck client cannot hold it. What each path answers is up
 * to the handler given at start.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stddef.h>

#include "userspace/config.h"

struct admin_resp {
	int status;               /* default 200 */
	const char *content_type; /* default text/plain */
	char *body;
	size_t len, cap;
};

/* Append formatted text to the response body. */
void admin_printf(struct admin_resp *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fill R for METHOD and PATH (the query string, if any, follows '?' in PATH). */
typedef void (*admin_handler_fn)(const char *method, const char *path, struct admin_resp *r,
				 void *arg);

struct admin;

/* Listen on ADDR and serve with FN. NULL and a reason in ERR on failure. */
struct admin *admin_start(const struct cfg_addr *addr, admin_handler_fn fn, void *arg, char *err,
			  size_t errlen);

/* Stop the thread and close the socket; NULL is fine. */
void admin_stop(struct admin *a);

/*
 * Client side, for sluicectl and tests: send "METHOD PATH" to ADDR and put
 * the response body in *BODY (malloc'd). Returns the HTTP status, or -errno.
 */
int admin_request(const struct cfg_addr *addr, const char *method, const char *path, char **body,
		  int timeout_ms);

#endif
