/* SPDX-License-Identifier: MIT */
/*
 * tlsrec — TLS records of a connection, over the worker's buffers.
 *
 * OpenSSL never touches a socket. Each TLS side of a connection (0: the
 * client, sluice serving; 1: the backend, sluice as client) has a BIO that
 * reads from the buffer the last receive filled and writes into an "out"
 * buffer the worker sends. Plaintext goes through the connection's halves
 * as usual: what a TLS source decrypts is appended to its half's queue, and
 * a TLS sink encrypts from its half's queue into its out buffer just before
 * sending (proxy/tls.c drives the sockets). Buffers come from the worker
 * (provided-buffer ring for receives, a userspace pool for decrypted and
 * encrypted bytes) and go back as soon as they are consumed, and OpenSSL
 * releases its record buffers between records (SSL_MODE_RELEASE_BUFFERS):
 * an idle TLS connection holds its SSL object and nothing else.
 */
#ifndef SLUICE_TLSREC_H
#define SLUICE_TLSREC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct conn;
struct tls_server;
struct cfg_pool;
struct ssl_ctx_st;

enum tls_res {
	TLS_OK = 0,      /* did what it could; wants more input (or has nothing to do) */
	TLS_BLOCKED = 1, /* the half's queue or the out buffer is full: call again once drained */
	TLS_STARVED = 2, /* no free buffer: call again when one is back */
	TLS_EOF = 3,     /* the peer sent close_notify */
	TLS_ERR = -1,    /* the connection cannot go on (logged, rate-limited) */
};

/* Side 0 of C becomes a TLS server with TS's contexts. 0 or -ENOMEM. */
int tls_start_server(struct worker *w, struct conn *c, const struct tls_server *ts);
/* Side 1 of C becomes a TLS client of pool P's backend at ADDR. 0 or -errno. */
int tls_start_client(struct worker *w, struct conn *c, struct ssl_ctx_st *ctx,
		     const struct cfg_pool *p, const struct sockaddr *addr);
/* Free C's TLS state and every buffer it holds. */
void tls_free(struct worker *w, struct conn *c);

/*
 * LEN received bytes in buffer BID from side SIDE's socket: taken (the
 * buffer is returned when consumed), then decrypted into half SIDE's queue.
 */
enum tls_res tls_input(struct worker *w, struct conn *c, unsigned side, uint16_t bid,
		       uint32_t len);
/* Go on decrypting what SIDE holds (after the queue or out buffer drained). */
enum tls_res tls_pump(struct worker *w, struct conn *c, unsigned side);
/* Does SIDE hold received bytes not decrypted yet? (Then no new receive.) */
int tls_pending_input(struct worker *w, struct conn *c, unsigned side);

/* Encrypt half H's queued plaintext into side H^1's out buffer (the sink). */
enum tls_res tls_encrypt(struct worker *w, struct conn *c, unsigned h);
/* Bytes of SIDE's out buffer waiting to be sent: *P and the count (0: none). */
uint32_t tls_out(struct worker *w, struct conn *c, unsigned side, const char **p);
/* A send of N bytes of SIDE's out buffer is submitted. */
void tls_out_sending(struct worker *w, struct conn *c, unsigned side, uint32_t n);
/*
 * N bytes of SIDE's out buffer were sent; the buffer goes back once empty.
 * 1 when that was less than the send asked for (the sink's buffer is full).
 */
int tls_out_sent(struct worker *w, struct conn *c, unsigned side, uint32_t n);
/*
 * SIDE's sink did not take its ciphertext at once: what is left, and half
 * SIDE^1's queued plaintext encrypted behind it, move into memory of the
 * connection's own (the pool buffers go back); nothing more is encrypted
 * for SIDE until it is sent (tls_out, tls_out_sent), except by calling this
 * again for plaintext that arrives meanwhile. 0, or -1 on failure.
 */
int tls_stall(struct worker *w, struct conn *c, unsigned side);
/* Since when (ms) SIDE's stalled sink took no byte; 0 when it is not stalled. */
uint64_t tls_stall_since(struct worker *w, const struct conn *c, unsigned side);
/* SIDE's half is stalled: its undecrypted ciphertext moves out of the ring buffer. 0 or -1. */
int tls_park_input(struct worker *w, struct conn *c, unsigned side);
/* Write SIDE's close_notify once: 1 when written now, 0 if done before. */
int tls_close_notify(struct worker *w, struct conn *c, unsigned side);
/* Encrypt sluice's own bytes (an answer, a Close frame) for SIDE. 0 or -1. */
int tls_write(struct worker *w, struct conn *c, unsigned side, const void *buf, size_t len);

/* Is SIDE's handshake done? *RESUMED: did it resume a session. */
int tls_handshake_done(struct worker *w, struct conn *c, unsigned side, int *resumed);
/* Which protocol ALPN chose on side 0 ("" when none): for the access log. */
const char *tls_alpn(struct worker *w, struct conn *c);
/* The worker is going away: its per-slot table goes too. */
void tls_worker_free(struct worker *w);

#endif
