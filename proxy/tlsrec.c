// SPDX-License-Identifier: MIT
/*
 * TLS records of a connection; see tlsrec.h. The worker receives and sends,
 * OpenSSL only transforms bytes between buffers:
 *
 *   received ciphertext (ring buffer, side s) --SSL_read--> half[s]'s queue
 *   half[h]'s queue --SSL_write--> out buffer of side h^1 --send--> fd[h^1]
 *
 * The BIO under each SSL reads the one buffer the last receive filled (and
 * gives it back as soon as it is read out) and writes into the side's out
 * buffer, taking one from the worker's userspace pool when it needs it and
 * returning it once sent. When the out buffer is full or no buffer is free,
 * the BIO says "retry" and OpenSSL keeps the rest of its record until the
 * worker calls again, so nothing here blocks and nothing grows unbounded.
 *
 * A peer that stops reading must not keep shared buffers: when a sink does
 * not take its ciphertext at once (tls_stall), what is left of the out
 * buffer, and the half's queued plaintext encrypted behind it, move into
 * memory of the connection's own and the pool buffer goes back; nothing
 * more is encrypted for that sink until it is sent. Ciphertext received
 * for a stalled half moves out of its ring buffer the same way
 * (tls_park_input).
 */
#include "proxy/tlsrec.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/backend.h"
#include "proxy/conn.h"
#include "userspace/tlsctx.h"

/* Record overhead of a receive's worth of plaintext, and then some. */
#define TLS_OWN_SLACK 1024

enum side_flags {
	TS_STARVED = 1 << 0, /* the BIO wanted an out buffer and none was free */
	TS_NOTIFY = 1 << 1,  /* close_notify written (or given up on) */
	TS_FAILED = 1 << 2,  /* a fatal error: its session is not kept */
	TS_HOLD = 1 << 3,    /* the sink is stalled: out is own_out, nothing more is written */
	TS_GROW = 1 << 4,    /* (within tls_stall) writes append to own_out */
};

struct tls_side {
	SSL *ssl;
	struct worker *w;
	uint32_t in_off, in_len;   /* received ciphertext in in_bid not read yet */
	uint32_t out_len, out_sent; /* ciphertext in out_bid, and how much of it is sent */
	uint32_t out_flight;        /* bytes of the send in flight (tls_out_sending) */
	uint16_t in_bid, out_bid;
	uint8_t flags;
	char *own_in;  /* received ciphertext moved out of the ring: its half is stalled */
	char *own_out; /* TS_HOLD: ciphertext its sink did not take, out of the pool */
	uint32_t own_cap; /* own_out's size: room for one more receive's worth behind */
	uint64_t since; /* TS_HOLD: the sink's last progress, ms */
};

struct tls_conn {
	struct tls_side s[2];
};

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* ---- the BIO over worker buffers ------------------------------------------- */

static int bio_read(BIO *b, char *out, int len)
{
	struct tls_side *s = BIO_get_data(b);
	uint32_t n = s->in_len - s->in_off;

	BIO_clear_retry_flags(b);
	if (!n || len <= 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	if (n > (uint32_t)len)
		n = (uint32_t)len;
	memcpy(out, (s->own_in ? s->own_in : w_buf(s->w, s->in_bid)) + s->in_off, n);
	s->in_off += n;
	if (s->in_off == s->in_len) {
		/* read out: the receive buffer goes straight back */
		if (s->own_in) {
			free(s->own_in);
			s->own_in = NULL;
		} else {
			w_buf_return(s->w, s->in_bid);
			s->in_bid = NO_BID;
		}
		s->in_off = s->in_len = 0;
	}
	return (int)n;
}

static int bio_write(BIO *b, const char *in, int len)
{
	struct tls_side *s = BIO_get_data(b);
	struct worker *w = s->w;
	uint32_t n;

	BIO_clear_retry_flags(b);
	if (s->flags & TS_HOLD) {
		char *p;

		if (!(s->flags & TS_GROW) || len <= 0) {
			BIO_set_retry_write(b);
			return -1;
		}
		if (s->out_len + (uint32_t)len > s->own_cap) {
			/* never move the buffer under a send in flight */
			if (s->out_flight) {
				BIO_set_retry_write(b);
				return -1;
			}
			p = realloc(s->own_out, (size_t)s->out_len + (size_t)len);
			if (!p)
				return -1;
			s->own_out = p;
			s->own_cap = s->out_len + (uint32_t)len;
		}
		memcpy(s->own_out + s->out_len, in, (size_t)len);
		s->out_len += (uint32_t)len;
		return len;
	}
	if (s->out_bid == NO_BID) {
		s->out_bid = w_xbuf_get(w);
		if (s->out_bid == NO_BID) {
			s->flags |= TS_STARVED;
			BIO_set_retry_write(b);
			return -1;
		}
		s->out_len = s->out_sent = 0;
	}
	n = w->bufsize - s->out_len;
	if (!n || len <= 0) {
		BIO_set_retry_write(b);
		return -1;
	}
	if (n > (uint32_t)len)
		n = (uint32_t)len;
	memcpy(w_buf(w, s->out_bid) + s->out_len, in, n);
	s->out_len += n;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice");

	if (!m || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
	    !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
		BIO_meth_free(m);
		return;
	}
	bio_method = m;
}

/* ---- a connection's TLS state ------------------------------------------------ */

static struct tls_conn *tls_of(struct worker *w, const struct conn *c)
{
	return c->slot < w->ntlsv ? w->tlsv[c->slot] : NULL;
}

static struct tls_side *side_of(struct worker *w, const struct conn *c, unsigned side)
{
	struct tls_conn *t = tls_of(w, c);

	return t && t->s[side].ssl ? &t->s[side] : NULL;
}

/* The connection's TLS state, made on first use (slots are per worker). */
static struct tls_conn *tls_get(struct worker *w, struct conn *c)
{
	struct tls_conn *t;

	if (c->slot >= w->ntlsv &&
	    slot_table_fit((void **)&w->tlsv, &w->ntlsv, w->nslots, sizeof(*w->tlsv)))
		return NULL;
	t = w->tlsv[c->slot];
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		for (unsigned i = 0; i < 2; i++) {
			t->s[i].w = w;
			t->s[i].in_bid = t->s[i].out_bid = NO_BID;
		}
		w->tlsv[c->slot] = t;
	}
	return t;
}

static int side_start(struct worker *w, struct conn *c, unsigned side, SSL_CTX *ctx,
		      SSL **out)
{
	struct tls_conn *t;
	SSL *ssl;
	BIO *b;

	pthread_once(&bio_once, bio_init);
	if (!bio_method || !(t = tls_get(w, c)))
		return -ENOMEM;
	ssl = SSL_new(ctx);
	b = ssl ? BIO_new(bio_method) : NULL;
	if (!b) {
		SSL_free(ssl);
		return -ENOMEM;
	}
	BIO_set_data(b, &t->s[side]);
	SSL_set_bio(ssl, b, b);
	t->s[side].ssl = ssl;
	t->s[side].flags = 0;
	c->flags2 |= CF2_TLS(side);
	*out = ssl;
	return 0;
}

int tls_start_server(struct worker *w, struct conn *c, const struct tls_server *ts)
{
	SSL *ssl;
	int ret = side_start(w, c, 0, tlsctx_server_ctx(ts), &ssl);

	if (ret == 0)
		SSL_set_accept_state(ssl);
	return ret;
}

int tls_start_client(struct worker *w, struct conn *c, struct ssl_ctx_st *ctx,
		     const struct cfg_pool *p, const struct sockaddr *addr)
{
	SSL *ssl;
	int ret = side_start(w, c, 1, ctx, &ssl);

	if (ret)
		return ret;
	if (tlsctx_client_prepare(ssl, p, addr))
		return -EINVAL; /* freed with the connection */
	SSL_set_connect_state(ssl);
	return 0;
}

void tls_free(struct worker *w, struct conn *c)
{
	struct tls_conn *t = tls_of(w, c);

	if (!t)
		return;
	for (unsigned i = 0; i < 2; i++) {
		struct tls_side *s = &t->s[i];

		if (s->ssl) {
			/*
			 * A connection that ended without an error keeps its
			 * session resumable even if no close_notify went out
			 * (OpenSSL would otherwise drop it from the cache).
			 */
			if (!(s->flags & TS_FAILED))
				SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
			SSL_free(s->ssl);
		}
		if (s->in_bid != NO_BID)
			w_buf_return(w, s->in_bid);
		if (s->out_bid != NO_BID)
			w_buf_return(w, s->out_bid);
		free(s->own_in);
		free(s->own_out);
	}
	free(t);
	w->tlsv[c->slot] = NULL;
	c->flags2 &= (uint8_t)~(CF2_TLS0 | CF2_TLS1);
}

/* ---- errors --------------------------------------------------------------------- */

/* What SSL_get_error says about RET from an operation on S, as a tls_res. */
static enum tls_res side_error(struct worker *w, struct tls_side *s, int ret, unsigned side)
{
	int err = SSL_get_error(s->ssl, ret);
	unsigned long e;
	char buf[160];

	switch (err) {
	case SSL_ERROR_WANT_READ:
		return TLS_OK;
	case SSL_ERROR_WANT_WRITE:
		if (s->flags & TS_STARVED) {
			s->flags &= (uint8_t)~TS_STARVED;
			return TLS_STARVED;
		}
		return TLS_BLOCKED;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_EOF;
	default:
		break;
	}
	s->flags |= TS_FAILED;
	e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", err == SSL_ERROR_SYSCALL ? "unexpected end" : "?");
	log_ratelimited(&w->rl, LOG_LVL_INFO, "worker %u: tls (%s): %s", w->id,
			side ? "backend" : "client", buf);
	ERR_clear_error();
	return TLS_ERR;
}

/* ---- decrypting ------------------------------------------------------------------- */

enum tls_res tls_pump(struct worker *w, struct conn *c, unsigned side)
{
	struct tls_side *s = side_of(w, c, side);
	struct half *hf = &c->half[side];

	if (!s)
		return TLS_OK;
	if (hf->flags & HALF_SPILL)
		return TLS_BLOCKED; /* its plain sink is stalled */
	for (;;) {
		unsigned tail = (hf->head + hf->count + HALF_QMAX - 1) % HALF_QMAX;
		int fresh = 0, n;
		char *p;

		if (!hf->count || hf->len[tail] == w->bufsize) {
			uint16_t bid;

			/* one buffer of plaintext at a time: what a stalled sink may hold is bounded */
			if (hf->count)
				return TLS_BLOCKED;
			bid = w_xbuf_get(w);
			if (bid == NO_BID)
				return TLS_STARVED;
			tail = (hf->head + hf->count) % HALF_QMAX;
			hf->bid[tail] = bid;
			hf->len[tail] = 0;
			hf->count++;
			fresh = 1;
		}
		p = w_buf(w, hf->bid[tail]) + hf->len[tail];
		ERR_clear_error();
		n = SSL_read(s->ssl, p, (int)(w->bufsize - hf->len[tail]));
		if (n > 0) {
			hf->len[tail] += (uint32_t)n;
			/* a WebSocket's server→client frames, for a drain to close between */
			if (side == 1 && (c->flags & CF_WS) &&
			    wsframe_feed(&c->ws, (const uint8_t *)p, (size_t)n))
				c->flags &= ~CF_WS;
			continue;
		}
		if (fresh) {
			/* nothing came: the buffer goes back, no empty entry queued */
			hf->count--;
			w_buf_return(w, hf->bid[tail]);
		}
		return side_error(w, s, n, side);
	}
}

enum tls_res tls_input(struct worker *w, struct conn *c, unsigned side, uint16_t bid,
		       uint32_t len)
{
	struct tls_side *s = side_of(w, c, side);

	if (!s || s->in_bid != NO_BID) {
		w_buf_return(w, bid);
		return TLS_ERR;
	}
	s->in_bid = bid;
	s->in_off = 0;
	s->in_len = len;
	return tls_pump(w, c, side);
}

int tls_pending_input(struct worker *w, struct conn *c, unsigned side)
{
	struct tls_side *s = side_of(w, c, side);

	return s && (s->in_bid != NO_BID || s->own_in);
}

int tls_park_input(struct worker *w, struct conn *c, unsigned side)
{
	struct tls_side *s = side_of(w, c, side);
	uint32_t n;

	if (!s || s->in_bid == NO_BID)
		return 0;
	n = s->in_len - s->in_off;
	s->own_in = malloc(n ? n : 1);
	if (!s->own_in)
		return -1;
	memcpy(s->own_in, w_buf(w, s->in_bid) + s->in_off, n);
	w_buf_return(w, s->in_bid);
	s->in_bid = NO_BID;
	s->in_off = 0;
	s->in_len = n;
	return 0;
}

/* ---- encrypting --------------------------------------------------------------------- */

enum tls_res tls_encrypt(struct worker *w, struct conn *c, unsigned h)
{
	struct tls_side *s = side_of(w, c, h ^ 1);
	struct half *hf = &c->half[h];
	int n;

	if (!s)
		return TLS_ERR;
	if ((s->flags & (TS_HOLD | TS_GROW)) == TS_HOLD)
		return TLS_BLOCKED; /* its sink is stalled */
	if (!SSL_is_init_finished(s->ssl)) {
		/* a client side starts (or goes on with) its handshake */
		ERR_clear_error();
		n = SSL_do_handshake(s->ssl);
		if (n != 1)
			return side_error(w, s, n, h ^ 1);
	}
	while (hf->count) {
		uint32_t left = hf->len[hf->head] - hf->sent;

		ERR_clear_error();
		n = SSL_write(s->ssl, w_buf(w, hf->bid[hf->head]) + hf->sent, (int)left);
		if (n <= 0)
			return side_error(w, s, n, h ^ 1);
		hf->sent += (uint32_t)n;
		c->bytes[h] += (uint64_t)n;
		if (c->be)
			stat_add(h == 0 ? &c->be->ws[w->id].bytes_out : &c->be->ws[w->id].bytes_in,
				 (uint64_t)n);
		if (hf->sent == hf->len[hf->head]) {
			w_buf_return(w, hf->bid[hf->head]);
			hf->head = (hf->head + 1) % HALF_QMAX;
			hf->count--;
			hf->sent = 0;
		}
	}
	return TLS_OK;
}

int tls_write(struct worker *w, struct conn *c, unsigned side, const void *buf, size_t len)
{
	struct tls_side *s = side_of(w, c, side);
	int n;

	if (!s || !SSL_is_init_finished(s->ssl))
		return -1;
	ERR_clear_error();
	n = SSL_write(s->ssl, buf, (int)len);
	if (n != (int)len) {
		/* an answer of a few hundred bytes fits an empty out buffer whole */
		ERR_clear_error();
		return -1;
	}
	return 0;
}

int tls_close_notify(struct worker *w, struct conn *c, unsigned side)
{
	struct tls_side *s = side_of(w, c, side);
	int n;

	if (!s || (s->flags & TS_NOTIFY))
		return 0;
	s->flags |= TS_NOTIFY;
	if (!SSL_is_init_finished(s->ssl))
		return 0;
	ERR_clear_error();
	n = SSL_shutdown(s->ssl);
	if (n < 0) {
		/* no room for the alert now: the FIN alone ends it */
		ERR_clear_error();
		return 0;
	}
	return (s->out_bid != NO_BID || s->own_out) && s->out_len > s->out_sent;
}

/* ---- sending -------------------------------------------------------------------------- */

uint32_t tls_out(struct worker *w, struct conn *c, unsigned side, const char **p)
{
	struct tls_side *s = side_of(w, c, side);

	if (!s || (s->out_bid == NO_BID && !s->own_out) || s->out_sent == s->out_len)
		return 0;
	*p = (s->own_out ? s->own_out : w_buf(w, s->out_bid)) + s->out_sent;
	return s->out_len - s->out_sent;
}

/* A stalled sink's ciphertext is all sent: the side goes back to pool buffers. */
static void own_out_done(struct tls_side *s)
{
	free(s->own_out);
	s->own_out = NULL;
	s->flags &= (uint8_t)~TS_HOLD;
}

void tls_out_sending(struct worker *w, struct conn *c, unsigned side, uint32_t n)
{
	struct tls_side *s = side_of(w, c, side);

	if (s)
		s->out_flight = n;
}

int tls_out_sent(struct worker *w, struct conn *c, unsigned side, uint32_t n)
{
	struct tls_side *s = side_of(w, c, side);
	int short_send;

	if (!s || (s->out_bid == NO_BID && !s->own_out))
		return 0;
	short_send = n < s->out_flight;
	s->out_flight = 0;
	s->out_sent += n;
	if (s->own_out)
		s->since = w->now;
	if (s->out_sent >= s->out_len) {
		if (s->own_out) {
			own_out_done(s);
		} else {
			w_buf_return(w, s->out_bid);
			s->out_bid = NO_BID;
		}
		s->out_len = s->out_sent = 0;
	}
	return short_send;
}

int tls_stall(struct worker *w, struct conn *c, unsigned side)
{
	struct tls_side *s = side_of(w, c, side);
	uint32_t left;
	enum tls_res r;

	if (!s)
		return -1;
	if (s->flags & TS_HOLD)
		goto behind; /* stalled already: more plaintext came */
	left = s->out_bid != NO_BID ? s->out_len - s->out_sent : 0;
	/*
	 * Room for the half's queued plaintext and one receive more (what a
	 * receive already out may bring), encrypted: the buffer then need not
	 * move while its send is in flight.
	 */
	s->own_cap = left + w->bufsize + TLS_OWN_SLACK;
	for (unsigned i = 0; i < c->half[side ^ 1].count; i++)
		s->own_cap += w->bufsize;
	s->own_out = malloc(s->own_cap);
	if (!s->own_out)
		return -1;
	s->out_flight = 0; /* no send is out: this is called from its completion */
	if (left)
		memcpy(s->own_out, w_buf(w, s->out_bid) + s->out_sent, left);
	if (s->out_bid != NO_BID)
		w_buf_return(w, s->out_bid);
	s->out_bid = NO_BID;
	s->out_len = left;
	s->out_sent = 0;
	s->since = w->now;
	s->flags |= TS_HOLD;
behind:
	/* the half's plaintext, encrypted behind it: its buffers go back too */
	s->flags |= TS_GROW;
	r = tls_encrypt(w, c, side ^ 1);
	s->flags &= (uint8_t)~TS_GROW;
	if (r == TLS_ERR)
		return -1;
	if (!s->out_len)
		own_out_done(s); /* nothing was left after all */
	return 0;
}

uint64_t tls_stall_since(struct worker *w, const struct conn *c, unsigned side)
{
	struct tls_side *s = side_of(w, c, side);

	return s && (s->flags & TS_HOLD) ? s->since : 0;
}

/* ---- state ------------------------------------------------------------------------------ */

int tls_handshake_done(struct worker *w, struct conn *c, unsigned side, int *resumed)
{
	struct tls_side *s = side_of(w, c, side);

	if (!s || !SSL_is_init_finished(s->ssl))
		return 0;
	if (resumed)
		*resumed = SSL_session_reused(s->ssl);
	return 1;
}

const char *tls_alpn(struct worker *w, struct conn *c)
{
	static __thread char proto[32];
	struct tls_side *s = side_of(w, c, 0);
	const unsigned char *p = NULL;
	unsigned len = 0;

	proto[0] = 0;
	if (s)
		SSL_get0_alpn_selected(s->ssl, &p, &len);
	if (p && len < sizeof(proto)) {
		memcpy(proto, p, len);
		proto[len] = 0;
	}
	return proto;
}

void tls_worker_free(struct worker *w)
{
	free(w->tlsv);
	w->tlsv = NULL;
	w->ntlsv = 0;
}
