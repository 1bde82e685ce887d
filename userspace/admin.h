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

/* Room for a token and its NUL; a token is ADMIN_TOKEN_MIN..ADMIN_TOKEN_MAX-1 characters. */
#define ADMIN_TOKEN_MAX 256
#define ADMIN_TOKEN_MIN 16

/*
 * Read the token of PATH: one line of RFC 6750 token68 characters
 * (A-Z a-z 0-9 - . _ ~ + / and trailing =), ADMIN_TOKEN_MIN.. characters; a
 * final newline is fine. 0 and the token in TOKEN (LEN >= ADMIN_TOKEN_MAX);
 * or -errno and a reason in ERR. *LOOSE (may be NULL) says whether the file
 * is readable by its group or others.
 */
int admin_token_read(const char *path, char *token, size_t len, int *loose, char *err,
		     size_t errlen);

/*
 * CFG's token, for the daemon: "" when admin.token_file is unset; warns in
 * the log when the file is group- or world-readable. 0, or -errno and a
 * reason in ERR.
 */
int admin_token_load(const struct sl_config *cfg, char *token, size_t len, char *err,
		     size_t errlen);

/*
 * Listen on ADDR and serve with FN; TOKEN ("" or NULL: none) is what
 * requests must carry. NULL and a reason in ERR on failure.
 */
struct admin *admin_start(const struct cfg_addr *addr, const char *token, admin_handler_fn fn,
			  void *arg, char *err, size_t errlen);

/* Replace the token (a reload); "" or NULL: none asked. NULL A is fine. Thread-safe. */
void admin_set_token(struct admin *a, const char *token);

/* Stop the thread and close the socket; NULL is fine. */
void admin_stop(struct admin *a);

/*
 * Client side, for sluicectl and tests: send "METHOD PATH" to ADDR, with
 * TOKEN as bearer token unless NULL, and put the response body in *BODY
 * (malloc'd). Returns the HTTP status, or -errno.
 */
int admin_request(const struct cfg_addr *addr, const char *method, const char *path,
		  const char *token, char **body, int timeout_ms);

#endif
