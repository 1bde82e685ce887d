// SPDX-License-Identifier: MIT
/*
 * Relaying. A connection pairs a client socket (fd[0]) with a backend
 * socket (fd[1]) and moves bytes in two independent halves: half 0
 * receives from the client and sends to the backend, half 1 the other way
 * round.
 *
 * Buffers. Receives use the worker's provided-buffer ring (IOSQE_BUFFER_SELECT),
 * so the kernel picks a buffer only when data arrives: an idle connection has
 * a receive armed but holds no buffer. A received buffer belongs to its half
 * until the send of its last byte completes; then it goes back to the ring.
 *
 * Backpressure. A plain half receives one buffer, sends it and receives
 * again only once the send is done; every send is first tried without
 * waiting (MSG_DONTWAIT). What the sink does not take at once is moved out
 * of the shared buffer into the connection's own spill (at most one
 * receive's worth), the buffer goes back to the ring, and the rest is sent
 * from the spill, waiting, while the half receives nothing: the data waits
 * in the kernel's socket buffers, where TCP flow control pushes back on the
 * sender, and a peer that stops reading holds no buffer anyone else needs.
 * While a half's sink is stalled a poll watches its source for a reset, and
 * a sink that takes no byte for timeouts.send_stall_ms ends the connection
 * (conn.c's deadline).
 *
 * Half-close. EOF on a half's source, once its queue is sent, becomes
 * shutdown(SHUT_WR) on its sink; the connection is closed when both halves
 * are done. An error on either socket (a reset among them) aborts both, and
 * the other side is closed with SO_LINGER 0 so it sees a reset too.
 */
#include "proxy/relay.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "proxy/backend.h"
#include "proxy/conn.h"
#include "proxy/tlsrec.h"

void half_recv(struct worker *w, struct conn *c, unsigned h)
{
	struct io_uring_sqe *sqe = w_sqe(w);

	io_uring_prep_recv(sqe, c->fd[h], NULL, w->bufsize, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	conn_op(c, sqe, UD_RECV + h);
	c->half[h].flags |= HALF_RECV;
}

struct spill *half_spill_of(const struct worker *w, const struct conn *c, unsigned h)
{
	return c->slot < w->nspills / 2 ? w->spills[c->slot * 2 + h] : NULL;
}

/*
 * What half H owed its stalled sink is sent (a plain sink's spill, or a TLS
 * sink's ciphertext, tls_stall): the half goes back to the shared buffers.
 */
void half_unspill(struct worker *w, struct conn *c, unsigned h)
{
	if (c->slot < w->nspills / 2) {
		free(w->spills[c->slot * 2 + h]);
		w->spills[c->slot * 2 + h] = NULL;
	}
	c->half[h].flags &= (uint8_t)~HALF_SPILL;
}

/*
 * Send half H's next bytes: from its spill, waiting for the sink to take
 * them; else from the head buffer, without waiting, so a sink that cannot
 * take them now says so at once (-EAGAIN, or a short count).
 */
void half_send(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	struct io_uring_sqe *sqe = w_sqe(w);

	if (hf->flags & HALF_SPILL) {
		struct spill *sp = half_spill_of(w, c, h);

		io_uring_prep_send(sqe, c->fd[h ^ 1], sp->data + sp->off, sp->len - sp->off,
				   MSG_NOSIGNAL);
	} else {
		io_uring_prep_send(sqe, c->fd[h ^ 1], w_buf(w, hf->bid[hf->head]) + hf->sent,
				   hf->len[hf->head] - hf->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	conn_op(c, sqe, UD_SEND + h);
	hf->flags |= HALF_SEND;
}

int stall_nomem(struct worker *w, struct conn *c)
{
	log_ratelimited(&w->rl, LOG_LVL_WARN, "worker %u: no memory to hold a stalled send", w->id);
	return step_abort(3);
}

/*
 * Half H's sink is stalled, what it owes the sink is out of the shared
 * buffers: receive no more on H (HALF_SPILL, which also starts the send
 * stall's deadline), move a TLS source's undecrypted bytes out of the ring
 * too, and watch the source for a reset.
 */
int half_stalled(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	struct io_uring_sqe *sqe;

	if ((c->flags2 & CF2_TLS(h)) && tls_park_input(w, c, h))
		return stall_nomem(w, c);
	if (!(hf->flags & HALF_SPILL)) {
		hf->flags |= HALF_SPILL;
		stat_inc(&w->stats.spills);
	}
	if (!(c->ops & ud_conn_bit(UD_HUP + h))) {
		/* no mask: a poll always reports errors and hang-ups */
		sqe = w_sqe(w);
		io_uring_prep_poll_add(sqe, c->fd[h], 0);
		conn_op(c, sqe, UD_HUP + h);
	}
	return STEP_GO;
}

/*
 * Half H's sink did not take all it was given: move every unsent byte of
 * the half's queue into a spill of the connection's own, give the buffers
 * back, and watch the source for a reset while the sink catches up. (A
 * half receives only once its send is done, so nothing arrives for it
 * while it is spilled.)
 */
static int half_spill(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];
	struct spill *n;
	uint32_t total = 0;

	for (unsigned i = 0; i < hf->count; i++) {
		unsigned k = (hf->head + i) % HALF_QMAX;

		total += hf->len[k] - (i ? 0 : hf->sent);
	}
	if (slot_table_fit((void **)&w->spills, &w->nspills, w->nslots * 2, sizeof(*w->spills)))
		return stall_nomem(w, c);
	n = malloc(sizeof(*n) + total);
	if (!n)
		return stall_nomem(w, c);
	n->len = 0;
	n->off = 0;
	for (; hf->count; hf->count--, hf->head = (hf->head + 1) % HALF_QMAX, hf->sent = 0) {
		uint32_t m = hf->len[hf->head] - hf->sent;

		memcpy(n->data + n->len, w_buf(w, hf->bid[hf->head]) + hf->sent, m);
		n->len += m;
		w_buf_return(w, hf->bid[hf->head]);
	}
	n->since = w->now;
	w->spills[c->slot * 2 + h] = n;
	hf->head = 0;
	hf->sent = 0;
	return half_stalled(w, c, h);
}

int relay_on_hup(struct worker *w, struct conn *c, unsigned h, int res)
{
	/*
	 * A reset sets the socket's error. A hang-up without one is a FIN met
	 * by sluice's own shutdown (both ways done), and a FIN alone is not
	 * the end either: what the source sent is still owed to the sink.
	 */
	if (res > 0 && (res & POLLERR))
		return step_abort(1u << (h ^ 1));
	return STEP_GO;
}

/*
 * Half H's source finished and everything it sent is out: pass the FIN on.
 * shutdown() is called directly rather than submitted: io_uring runs a
 * shutdown in its worker threads (it may block for some protocols), and
 * that hand-off costs more than the call itself, which for TCP only queues
 * a FIN and never blocks.
 */
int half_shut(struct worker *w, struct conn *c, unsigned h)
{
	c->half[h].flags |= HALF_DONE;
	if (c->half[h ^ 1].flags & HALF_DONE)
		return STEP_CLOSE; /* the other way is finished already: close() sends this FIN */
	if (shutdown(c->fd[h ^ 1], SHUT_WR) < 0)
		return step_abort(1u << h);
	return STEP_GO;
}

int half_may_recv(const struct conn *c, unsigned h)
{
	if (c->state == CONN_OPEN)
		return 1;
	return h == 0 && (c->flags2 & CF2_TLS0) &&
	       (c->state == CONN_TLS || c->state == CONN_HEAD);
}

void half_resume(struct worker *w, struct conn *c, unsigned h)
{
	struct half *hf = &c->half[h];

	if (hf->flags & (HALF_RECV | HALF_EOF | HALF_STARVED | HALF_SPILL) || hf->count ||
	    !half_may_recv(c, h))
		return;
	/* a TLS sink still in its handshake takes no plaintext: the source waits in the kernel */
	if (c->state == CONN_OPEN && (c->flags2 & CF2_TLS(h ^ 1)) &&
	    !tls_handshake_done(w, c, h ^ 1, NULL))
		return;
	/* ciphertext not decrypted yet (its plaintext had no room) comes first */
	if ((c->flags2 & CF2_TLS(h)) && tls_pending_input(w, c, h))
		return;
	half_recv(w, c, h);
}

void starve_list(struct worker *w, struct conn *c)
{
	if (!(c->flags & CF_LISTED)) {
		c->flags |= CF_LISTED;
		clist_append(&w->starved, c);
	}
}

void half_starve(struct worker *w, struct conn *c, unsigned h)
{
	c->half[h].flags |= HALF_STARVED;
	stat_inc(&w->stats.nobufs);
	starve_list(w, c);
}

int ws_ready(struct worker *w, struct conn *c)
{
	const char *p;

	return (c->flags & CF_WS) && !c->half[1].count &&
	       !(c->half[1].flags & (HALF_SEND | HALF_SPILL)) &&
	       !((c->flags2 & CF2_TLS0) && tls_out(w, c, 0, &p)) && wsframe_at_boundary(&c->ws);
}

/* Half H's plain source received RES bytes into buffer BID (or ended, or failed). */
int relay_on_recv(struct worker *w, struct conn *c, unsigned h, int res, uint16_t bid)
{
	struct half *hf = &c->half[h];
	int tls = c->flags2 & (CF2_TLS0 | CF2_TLS1);

	if (res > 0) {
		unsigned tail = (hf->head + hf->count) % HALF_QMAX;

		/* a WebSocket's server→client frames, followed so a drain can close between them */
		if (h == 1 && (c->flags & CF_WS) &&
		    wsframe_feed(&c->ws, (const uint8_t *)w_buf(w, bid), (size_t)res))
			c->flags &= ~CF_WS;
		hf->bid[tail] = bid;
		hf->len[tail] = (uint32_t)res;
		hf->count++;
		c->active_ms = w->now;
		if ((hf->flags & HALF_SPILL) && (c->flags2 & CF2_TLS(h ^ 1))) {
			/*
			 * received while the TLS sink's send was out (a TLS sink's
			 * half may): encrypted behind what the stalled sink owes
			 */
			return tls_stall(w, c, h ^ 1) ? stall_nomem(w, c) : STEP_GO;
		}
		if (tls)
			return STEP_KICK; /* plaintext for a TLS sink */
		if (!(hf->flags & HALF_SEND))
			half_send(w, c, h);
		half_resume(w, c, h);
		return STEP_GO;
	}
	if (res == 0) {
		hf->flags |= HALF_EOF;
		if (tls)
			return STEP_KICK;
		if (!hf->count && !(hf->flags & HALF_SEND))
			return half_shut(w, c, h);
		return STEP_GO;
	}
	if (res == -ENOBUFS) {
		half_starve(w, c, h);
		return STEP_GO;
	}
	/* the source failed (a reset, mostly): the sink gets a reset too */
	return step_abort(1u << (h ^ 1));
}

/* A send to half H's plain sink completed with RES. */
int relay_on_send(struct worker *w, struct conn *c, unsigned h, int res)
{
	struct half *hf = &c->half[h];
	struct backend_wstats *bs;
	int step;

	if (res == -EAGAIN && !(hf->flags & HALF_SPILL)) {
		/* the sink's buffer is full: keep the bytes aside, wait for it there */
		if (!(step = half_spill(w, c, h)))
			half_send(w, c, h);
		return step;
	}
	if (res <= 0)
		return step_abort(1u << h); /* the sink is gone: reset the source as well */
	bs = &c->be->ws[w->id];
	stat_add(h == 0 ? &bs->bytes_out : &bs->bytes_in, (uint64_t)res);
	c->bytes[h] += (uint64_t)res;
	c->active_ms = w->now;
	if (hf->flags & HALF_SPILL) {
		struct spill *sp = half_spill_of(w, c, h);

		sp->off += (uint32_t)res;
		sp->since = w->now;
		if (sp->off < sp->len) {
			half_send(w, c, h);
			return STEP_GO;
		}
		half_unspill(w, c, h);
	} else {
		hf->sent += (uint32_t)res;
		if (hf->sent < hf->len[hf->head]) {
			/* a short send: the sink's buffer filled up */
			if (!(step = half_spill(w, c, h)))
				half_send(w, c, h);
			return step;
		}
		w_buf_return(w, hf->bid[hf->head]);
		hf->head = (hf->head + 1) % HALF_QMAX;
		hf->count--;
		hf->sent = 0;
	}
	if (c->flags2 & (CF2_TLS0 | CF2_TLS1))
		return STEP_KICK;
	if (h == 1 && !hf->count && (c->flags & CF_DRAIN) && ws_ready(w, c))
		return STEP_WS_CLOSE;
	if (hf->count)
		half_send(w, c, h);
	else if ((hf->flags & HALF_EOF) && (step = half_shut(w, c, h)))
		return step;
	half_resume(w, c, h);
	return STEP_GO;
}
