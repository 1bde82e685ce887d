// SPDX-License-Identifier: MIT
#include "proxy/wsframe.h"

#include <errno.h>
#include <string.h>

enum {
	PH_HEAD,    /* the HTTP 101 response head */
	PH_OP,	    /* first header byte: FIN, RSV, opcode; a frame boundary */
	PH_LEN,	    /* second header byte: MASK, 7-bit length */
	PH_EXT,	    /* 2 or 8 bytes of extended length */
	PH_MASK,    /* 4 bytes of masking key */
	PH_PAYLOAD, /* LEFT payload bytes */
	PH_ERR,
};

#define OP_CONT 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PONG 0xa

static const char status_line[] = "HTTP/1.1 101";
#define STATUS_LEN (sizeof(status_line) - 1)

void wsframe_init(struct wsframe *t)
{
	memset(t, 0, sizeof(*t));
}

static int fail(struct wsframe *t)
{
	t->phase = PH_ERR;
	return -EPROTO;
}

/*
 * One byte of the response head. The status line must begin "HTTP/1.1 101"
 * and the head must end in CRLFCRLF with no bare CR or LF on the way, so the
 * end is found unambiguously. NEED counts the CR LF CR LF bytes matched.
 */
static int head_byte(struct wsframe *t, uint8_t c)
{
	if (++t->head > WSFRAME_HEAD_MAX)
		return -1;
	if (t->match < STATUS_LEN) {
		if (c != (uint8_t)status_line[t->match])
			return -1;
		t->match++;
		return 0;
	}
	if (t->match == STATUS_LEN) {
		/* "101 Switching Protocols", or "101" with no reason */
		if (c != ' ' && c != '\r')
			return -1;
		t->match++;
	}
	if (c == '\r') {
		if (t->need & 1)
			return -1;
		t->need++;
	} else if (c == '\n') {
		if (!(t->need & 1))
			return -1;
		if (++t->need == 4) {
			t->phase = PH_OP;
			t->need = 0;
		}
	} else {
		if (t->need & 1)
			return -1;
		t->need = 0;
	}
	return 0;
}

/* The first header byte: is this frame allowed here? */
static int op_byte(struct wsframe *t, uint8_t c)
{
	unsigned fin = c & 0x80, op = c & 0x0f;

	/* nothing may follow the server's Close */
	if (t->closed)
		return -1;
	t->control = op >= OP_CLOSE;
	if (t->control) {
		if (op > OP_PONG || !fin)
			return -1;
		if (op == OP_CLOSE)
			t->closed = 1;
	} else if (op == OP_CONT) {
		if (!t->in_message)
			return -1;
		t->in_message = !fin;
	} else if (op == OP_TEXT || op == OP_BINARY) {
		if (t->in_message)
			return -1;
		t->in_message = !fin;
	} else {
		return -1;
	}
	t->phase = PH_LEN;
	return 0;
}

/* The length is known: the masking key, the payload, or the next frame. */
static void length_done(struct wsframe *t)
{
	if (t->masked) {
		t->phase = PH_MASK;
		t->need = 4;
	} else {
		t->phase = t->left ? PH_PAYLOAD : PH_OP;
	}
}

int wsframe_feed(struct wsframe *t, const uint8_t *buf, size_t len)
{
	size_t i = 0, n;
	uint8_t c;

	/* every iteration consumes at least one byte, or fails */
	while (i < len) {
		switch (t->phase) {
		case PH_HEAD:
			if (head_byte(t, buf[i++]))
				return fail(t);
			break;
		case PH_OP:
			if (op_byte(t, buf[i++]))
				return fail(t);
			break;
		case PH_LEN:
			c = buf[i++];
			t->masked = c >> 7;
			c &= 0x7f;
			if (t->control && c > 125)
				return fail(t);
			if (c >= 126) {
				t->phase = PH_EXT;
				t->need = c == 126 ? 2 : 8;
				t->left = 0;
			} else {
				t->left = c;
				length_done(t);
			}
			break;
		case PH_EXT:
			t->left = t->left << 8 | buf[i++];
			if (--t->need == 0) {
				if (t->left >> 63)
					return fail(t);
				length_done(t);
			}
			break;
		case PH_MASK:
			n = len - i < t->need ? len - i : t->need;
			i += n;
			t->need -= (uint8_t)n;
			if (!t->need)
				t->phase = t->left ? PH_PAYLOAD : PH_OP;
			break;
		case PH_PAYLOAD:
			n = len - i < t->left ? len - i : (size_t)t->left;
			i += n;
			t->left -= n;
			if (!t->left)
				t->phase = PH_OP;
			break;
		default:
			return -EPROTO;
		}
	}
	return t->phase == PH_ERR ? -EPROTO : 0;
}

int wsframe_at_boundary(const struct wsframe *t)
{
	return t->phase == PH_OP && !t->in_message && !t->closed;
}

size_t wsframe_close(uint8_t *out, uint16_t code, const char *reason)
{
	size_t n = 0;

	out[0] = 0x80 | OP_CLOSE;
	if (!code) {
		out[1] = 0;
		return 2;
	}
	if (reason) {
		n = strnlen(reason, WSFRAME_REASON_MAX + 1);
		if (n > WSFRAME_REASON_MAX) {
			/* back up to the first byte of a cut UTF-8 sequence */
			n = WSFRAME_REASON_MAX;
			while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80)
				n--;
		}
	}
	out[1] = (uint8_t)(2 + n);
	out[2] = (uint8_t)(code >> 8);
	out[3] = (uint8_t)code;
	if (n)
		memcpy(out + 4, reason, n);
	return 4 + n;
}
