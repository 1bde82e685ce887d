/* SPDX-License-Identifier: MIT */
/*
 * tls — the TLS pump: what a connection with TLS on either side does when
 * its receives and sends complete (proxy/tls.c). The records themselves,
 * SSL objects over the worker's buffers, are proxy/tlsrec.h's. Steps
 * return what they ask of conn.c (enum step); STEP_KICK asks conn.c to go
 * on with the connection (conn.c's tls_go: tls_decrypt, the handshake and
 * head for admission, tls_move, the receives).
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdint.h>

struct worker;
struct conn;

/* Send what TLS side SIDE has ready, unless a send on it is in flight. */
void tls_flush(struct worker *w, struct conn *c, unsigned side);
/* Decrypt what waits on either side, where its half may take it. */
int tls_decrypt(struct worker *w, struct conn *c);
/* Move both halves on: plaintext to its sink, encrypted where the sink is TLS; FINs. */
int tls_move(struct worker *w, struct conn *c);
/* Half H's TLS source received RES bytes into buffer BID (or ended, or failed). */
int tls_on_recv(struct worker *w, struct conn *c, unsigned h, int res, uint16_t bid);
/* A send of TLS side H^1's ciphertext (half H's sink) completed with RES. */
int tls_on_send(struct worker *w, struct conn *c, unsigned h, int res);

#endif
