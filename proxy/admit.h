/* SPDX-License-Identifier: MIT */
/*
 * admit — how an accepted client gets a backend, or a refusal: its TLS
 * hello and handshake budget, its request head, the wait queue, the
 * backend connect and sluice's own answers (proxy/admit.c).
 *
 * The contract with conn.c: a function that takes a step for one
 * connection returns what it asks of conn.c (enum step, proxy/conn.h) and
 * moves the connection's state itself only with conn_to(); admission never
 * ends, opens or times a connection. A run over many connections (the
 * queues) hands each one it decided on to conn_defer(). The deadline of a
 * connection in admission's states is admission's to say (admit_deadline);
 * conn.c re-arms the timer whenever a step changed the state.
 */
#ifndef SLUICE_ADMIT_H
#define SLUICE_ADMIT_H

#include <stdint.h>

#include "proxy/snapshot.h"

struct worker;
struct conn;

/* A client was accepted (its state CONN_FREE): its hello, its head, or a backend. */
int admit_start(struct worker *w, struct conn *c);
/* The backend connect completed with RES. */
int admit_on_connect(struct worker *w, struct conn *c, int res);
/* A peek at the client's first bytes (CONN_HELLO, CONN_HEAD): RES bytes in buffer BID. */
int admit_on_peek(struct worker *w, struct conn *c, int res, uint16_t bid);
/* A refused head was read out of the socket (CONN_RESPONDING): now the answer. */
int admit_on_consume(struct worker *w, struct conn *c, int res, uint16_t bid);
/* A poll on the client (UD_MORE, UD_GONE): more of its first bytes came, or it left. */
int admit_on_poll(struct worker *w, struct conn *c, int res);
/* A peek that found no buffer: a buffer is back, peek again. */
void admit_peek_resume(struct worker *w, struct conn *c);
/* A TLS client's handshake or head moved on (CONN_TLS, CONN_HEAD): what next. */
int admit_tls_input(struct worker *w, struct conn *c);
/* A TLS client is going before its handshake was done: count why. */
void admit_tls_failed(struct worker *w, struct conn *c, enum hs_fail why);

/* When C's deadline is, in a state admission owns (UINT64_MAX: none). */
uint64_t admit_deadline(const struct conn *c);
/* C's deadline passed in a state admission owns. */
int admit_timer(struct worker *w, struct conn *c);

/* The wait-queue timer: let waiting clients try (each decided on: conn_defer). */
void admit_run(struct worker *w);
/* The handshake-queue timer: let clients waiting for a token go (conn_defer). */
void admit_hsq_run(struct worker *w);
/* C is going away: take it out of any wait queue. */
void admit_forget(struct worker *w, struct conn *c);
/* A connection to a backend of pool P closed here: a waiting client may go. */
void admit_released(struct worker *w, struct snap_pool *p);

/* How a set-up ended (CF2_SETUP), for what admission learns. */
enum setup_end {
	SETUP_ANSWERED,   /* the backend's first byte came */
	SETUP_WASTED,     /* the client left first */
	SETUP_UNANSWERED, /* the backend closed or reset first */
};
/* C's backend connection is up: its set-up is timed from the connect. */
void admit_setup_start(struct worker *w, struct conn *c);
/* C's set-up ended HOW (clears CF2_SETUP). */
void admit_setup_end(struct worker *w, struct conn *c, enum setup_end how);

#endif
