// SPDX-License-Identifier: MIT
/*
 * The TLS pump. OpenSSL never touches a socket (proxy/tlsrec.c): the
 * worker receives ciphertext into its buffers, tlsrec decrypts it into the
 * half's queue and encrypts a half's plaintext into its TLS sink's out
 * buffer, and this file sends that buffer and receives again, in whatever
 * order the two sides allow. It also serves a client's handshake and head
 * before it is open (admission decides what they mean) and sluice's own
 * answers and Close frames (CONN_RESPONDING).
 *
 * A TLS sink that does not take its ciphertext at once (-EAGAIN or a short
 * send) moves what it owes, and its half's queued plaintext encrypted
 * behind it, into the connection's own memory (tls_stall), and the half
 * waits as a stalled plain half does (relay.c's half_stalled).
 */
#include "proxy/tls.h"

#include <errno.h>

#include "proxy/conn.h"
#include "proxy/relay.h"
#include "proxy/tlsrec.h"

void tls_flush(struct worker *w, struct conn *c, unsigned side)
{
	struct half *hf = &c->half[side ^ 1];
	struct io_uring_sqe *sqe;
	const char *p;
	uint32_t n;

	if (hf->flags & HALF_SEND || c->fd[side] < 0 || !(n = tls_out(w, c, side, &p)))
		return;
	sqe = w_sqe(w);
	/* forwarding: tried without waiting, as a plain half's (see half_send) */
	io_uring_prep_send(sqe, c->fd[side], p, n,
			   c->state == CONN_OPEN && !(hf->flags & HALF_SPILL)
				   ? MSG_NOSIGNAL | MSG_DONTWAIT
				   : MSG_NOSIGNAL);
	tls_out_sending(w, c, side, n);
	conn_op(c, sqe, UD_SEND + (side ^ 1));
	hf->flags |= HALF_SEND;
}

/* What a TLS operation on SIDE came to, as a step. */
static int tls_result(struct worker *w, struct conn *c, unsigned side, enum tls_res r)
{
	switch (r) {
	case TLS_OK:
	case TLS_BLOCKED:
		return STEP_GO;
	case TLS_STARVED:
		stat_inc(&w->stats.nobufs);
		/* waiting or connecting clients are not read: they go on once open */
		if (half_may_recv(c, 0) || c->state == CONN_OPEN) {
			c->flags2 |= CF2_XSTARVED;
			starve_list(w, c);
		}
		return STEP_GO;
	case TLS_EOF:
		if (c->state != CONN_OPEN)
			return step_hs_failed(HSF_CLOSED, 0);
		c->half[side].flags |= HALF_EOF;
		return STEP_GO;
	default:
		if (c->state != CONN_OPEN)
			return step_hs_failed(HSF_ERROR, 0);
		return step_abort(1u << (side ^ 1));
	}
}

/*
 * Move half H on: its plaintext to a plain sink, or encrypted into a TLS
 * sink's out buffer and sent; at its end, close_notify and then the FIN.
 * Plaintext moves only while open; a TLS sink's own bytes (handshake,
 * tickets, an answer) go out in any state.
 */
static int half_push(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	unsigned k = h ^ 1;
	const char *p;
	int step;

	if (hf->flags & HALF_SEND)
		return STEP_GO;
	if (c->flags2 & CF2_TLS(k)) {
		if (c->state == CONN_OPEN && (step = tls_result(w, c, k, tls_encrypt(w, c, h))))
			return step;
		if (tls_out(w, c, k, &p)) {
			tls_flush(w, c, k);
			return STEP_GO;
		}
	} else if (c->state == CONN_OPEN && hf->count) {
		half_send(w, c, h);
		return STEP_GO;
	}
	if (c->state != CONN_OPEN || hf->count || !(hf->flags & HALF_EOF) ||
	    (hf->flags & HALF_DONE))
		return STEP_GO;
	if ((c->flags2 & CF2_TLS(k)) && tls_close_notify(w, c, k)) {
		tls_flush(w, c, k);
		return STEP_GO;
	}
	return half_shut(w, c, h);
}

int tls_decrypt(struct worker *w, struct conn *c)
{
	int step;

	for (unsigned s = 0; s < 2; s++) {
		if ((c->flags2 & CF2_TLS(s)) && tls_pending_input(w, c, s) &&
		    (half_may_recv(c, s) || c->state == CONN_OPEN) &&
		    (step = tls_result(w, c, s, tls_pump(w, c, s))))
			return step;
	}
	return STEP_GO;
}

int tls_move(struct worker *w, struct conn *c)
{
	int step;

	for (unsigned h = 0; h < 2; h++)
		if ((step = half_push(w, c, h)))
			return step;
	return STEP_GO;
}

int tls_on_recv(struct worker *w, struct conn *c, unsigned h, int res, uint16_t bid)
{
	int step;

	if (res > 0) {
		c->active_ms = w->now;
		if ((step = tls_result(w, c, h, tls_input(w, c, h, bid, (uint32_t)res))))
			return step;
		return STEP_KICK;
	}
	if (res == 0 && c->state == CONN_OPEN) {
		c->half[h].flags |= HALF_EOF;
		return STEP_KICK;
	}
	if (res == -ENOBUFS) {
		half_starve(w, c, h);
		return STEP_GO;
	}
	if (c->state != CONN_OPEN)
		return step_hs_failed(HSF_CLOSED, res < 0 ? 1u : 0u);
	return step_abort(1u << (h ^ 1));
}

/*
 * Half H's TLS sink (side H^1) did not take its ciphertext at once: hold
 * the rest in the connection's own memory (tls_stall) and wait for the
 * sink there.
 */
static int tls_stall_half(struct worker *w, struct conn *c, unsigned h)
{
	int step;

	if (tls_stall(w, c, h ^ 1))
		return stall_nomem(w, c);
	if (!tls_stall_since(w, c, h ^ 1))
		return STEP_KICK; /* it was all sent after all */
	if ((step = half_stalled(w, c, h)))
		return step;
	tls_flush(w, c, h ^ 1);
	return STEP_GO;
}

int tls_on_send(struct worker *w, struct conn *c, unsigned h, int res)
{
	struct half *hf = &c->half[h];
	const char *p;
	int short_send;

	if (res == -EAGAIN && c->state == CONN_OPEN && !(hf->flags & HALF_SPILL))
		return tls_stall_half(w, c, h);
	if (res <= 0) {
		if (c->state != CONN_OPEN)
			return step_hs_failed(HSF_CLOSED, 0);
		return step_abort(1u << h);
	}
	c->active_ms = w->now;
	short_send = tls_out_sent(w, c, h ^ 1, (uint32_t)res);
	if (c->state == CONN_OPEN) {
		if (!(hf->flags & HALF_SPILL) && short_send)
			return tls_stall_half(w, c, h); /* a short send: the sink's buffer filled up */
		if ((hf->flags & HALF_SPILL) && !tls_stall_since(w, c, h ^ 1))
			half_unspill(w, c, h);
	}
	if (c->state == CONN_RESPONDING && !tls_out(w, c, h ^ 1, &p))
		return step_abort(0); /* sluice's answer is out: close (a FIN) */
	return STEP_KICK;
}
