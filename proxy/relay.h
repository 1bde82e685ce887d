/* SPDX-License-Identifier: MIT */
/*
 * relay — moving bytes between a connection's two sockets, one half at a
 * time (proxy/relay.c). The halves' primitives serve the TLS pump too
 * (proxy/tls.c); the completion handlers here are for plain sources and
 * plain sinks. Steps return what they ask of conn.c (enum step).
 */
#ifndef SLUICE_RELAY_H
#define SLUICE_RELAY_H

#include <stdint.h>

struct worker;
struct conn;
struct spill;

/* Arm half H's receive (a buffer of the ring, picked when data comes). */
void half_recv(struct worker *w, struct conn *c, unsigned h);
/* Send half H's next bytes: from its spill, waiting; else from its head buffer, not. */
void half_send(struct worker *w, struct conn *c, unsigned h);
/* May half H receive in C's state? (A TLS client is read during its handshake and head.) */
int half_may_recv(const struct conn *c, unsigned h);
/* Re-arm half H's receive if nothing stops it. */
void half_resume(struct worker *w, struct conn *c, unsigned h);
/* Half H's receive found the ring empty: it waits on the starved list. */
void half_starve(struct worker *w, struct conn *c, unsigned h);
/* C waits for a buffer (on the starved list, once). */
void starve_list(struct worker *w, struct conn *c);
/* Half H's source finished and all it sent is out: pass the FIN on. */
int half_shut(struct worker *w, struct conn *c, unsigned h);

/* Half H's spill, if it has one (HALF_SPILL). */
struct spill *half_spill_of(const struct worker *w, const struct conn *c, unsigned h);
/* What half H owed its stalled sink is sent: back to the shared buffers. */
void half_unspill(struct worker *w, struct conn *c, unsigned h);
/* Half H's sink is stalled, what it owes is out of the shared buffers: wait for it. */
int half_stalled(struct worker *w, struct conn *c, unsigned h);
/* No memory to keep what a stalled sink owes: the connection ends. */
int stall_nomem(struct worker *w, struct conn *c);

/* A drained WebSocket may get its Close frame now: between two whole messages. */
int ws_ready(struct worker *w, struct conn *c);

/* Completions on a plain source (receive) and a plain sink (send) of half H. */
int relay_on_recv(struct worker *w, struct conn *c, unsigned h, int res, uint16_t bid);
int relay_on_send(struct worker *w, struct conn *c, unsigned h, int res);
/* A poll on half H's source while its sink was stalled. */
int relay_on_hup(struct worker *w, struct conn *c, unsigned h, int res);

#endif
