// SPDX-License-Identifier: MIT
#include "proxy/httphead.h"

#include <string.h>

/*
 * Byte classes (RFC 9110 5.6.2, 5.5): C_T tchar, the bytes of a token
 * (method, field name); C_V VCHAR, the bytes of a request-target; C_F the
 * bytes of a field value: VCHAR, SP, HTAB and obs-text. The ranges do not
 * overlap, so each byte is listed once.
 */
#define C_T 1
#define C_V 2
#define C_F 4
#define TVF (C_T | C_V | C_F)
#define VF (C_V | C_F)

static const uint8_t ctab[256] = {
	['\t'] = C_F,	     [' '] = C_F,	 ['!'] = TVF,	      ['"'] = VF,
	['#' ... '\''] = TVF, ['(' ... ')'] = VF, ['*' ... '+'] = TVF, [','] = VF,
	['-' ... '.'] = TVF, ['/'] = VF,	 ['0' ... '9'] = TVF, [':' ... '@'] = VF,
	['A' ... 'Z'] = TVF, ['[' ... ']'] = VF, ['^' ... 'z'] = TVF, ['{'] = VF,
	['|'] = TVF,	     ['}'] = VF,	 ['~'] = TVF,	      [0x80 ... 0xff] = C_F,
};

/* What we learned from the header lines, judged when the head is complete. */
struct fields {
	uint8_t minor;
	uint8_t hosts;
	uint8_t conn_upgrade, conn_close, conn_keep_alive;
	uint8_t upgrade_websocket;
	uint8_t te, te_chunked; /* te_chunked: the last coding seen is chunked */
	uint8_t cl;
	uint64_t cl_value;
};

static inline uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* S[0..N) equals the lowercase literal LIT, ignoring ASCII case. */
static int ieq(const uint8_t *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n && lit[i]; i++)
		if (lower(s[i]) != (uint8_t)lit[i])
			return 0;
	return i == n && !lit[i];
}

static inline int ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/*
 * Step through the comma-separated list S[*POS..N) (RFC 9110 5.6.1): the next
 * non-empty element, trimmed of OWS, as *E and *ELEN. Empty elements are skipped,
 * as the list syntax requires. 0 when the list is exhausted.
 */
static int list_next(const uint8_t *s, size_t n, size_t *pos, const uint8_t **e, size_t *elen)
{
	size_t i = *pos;

	while (i < n) {
		size_t a, z;

		while (i < n && (ows(s[i]) || s[i] == ','))
			i++;
		a = i;
		while (i < n && s[i] != ',')
			i++;
		z = i;
		while (z > a && ows(s[z - 1]))
			z--;
		if (z > a) {
			*e = s + a;
			*elen = z - a;
			*pos = i;
			return 1;
		}
	}
	*pos = i;
	return 0;
}

/* Content-Length = 1*DIGIT, within 64 bits. */
static int parse_length(const uint8_t *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

/*
 * One complete header line: NAME[0..NLEN) and the value V[0..VLEN) without
 * its surrounding OWS. Only the fields that decide framing, upgrade and
 * persistence are looked at. NULL, or why the head is bad.
 */
static const char *field(struct fields *f, const uint8_t *name, size_t nlen, const uint8_t *v,
			 size_t vlen)
{
	const uint8_t *e;
	size_t elen, pos = 0;
	uint64_t x;

	switch (nlen) {
	case 4:
		if (!ieq(name, nlen, "host"))
			break;
		if (f->hosts++)
			return "duplicate Host";
		break;
	case 7:
		if (!ieq(name, nlen, "upgrade"))
			break;
		while (list_next(v, vlen, &pos, &e, &elen))
			if (ieq(e, elen, "websocket"))
				f->upgrade_websocket = 1;
		break;
	case 10:
		if (!ieq(name, nlen, "connection"))
			break;
		while (list_next(v, vlen, &pos, &e, &elen)) {
			if (ieq(e, elen, "upgrade"))
				f->conn_upgrade = 1;
			else if (ieq(e, elen, "close"))
				f->conn_close = 1;
			else if (ieq(e, elen, "keep-alive"))
				f->conn_keep_alive = 1;
		}
		break;
	case 14:
		if (!ieq(name, nlen, "content-length"))
			break;
		/* Lists ("5, 5") are legal but never sent; refusing them is simpler. */
		if (parse_length(v, vlen, &x))
			return "bad Content-Length";
		if (f->cl && f->cl_value != x)
			return "conflicting Content-Length";
		if (f->te)
			return "Transfer-Encoding with Content-Length";
		f->cl = 1;
		f->cl_value = x;
		break;
	case 17:
		if (!ieq(name, nlen, "transfer-encoding"))
			break;
		/* RFC 9112 6.1: a 1.0 message with Transfer-Encoding has faulty framing. */
		if (f->minor == 0)
			return "Transfer-Encoding in HTTP/1.0";
		if (f->cl)
			return "Transfer-Encoding with Content-Length";
		if (!list_next(v, vlen, &pos, &e, &elen))
			return "empty Transfer-Encoding";
		do
			f->te_chunked = ieq(e, elen, "chunked");
		while (list_next(v, vlen, &pos, &e, &elen));
		f->te = 1;
		break;
	}
	return NULL;
}

/* Why byte C cannot appear where a token or value byte was expected. */
static const char *bad_byte(uint8_t c, const char *otherwise)
{
	if (c == '\n')
		return "bare LF";
	if (c == '\r')
		return otherwise;
	if (c == 0)
		return "NUL byte";
	if (c < 0x20 || c == 0x7f)
		return "control character";
	return otherwise;
}

#define NEED(i)                                                                                    \
	do {                                                                                       \
		if ((i) >= end)                                                                    \
			return HTTPHEAD_NEED_MORE;                                                 \
	} while (0)

#define FAIL(why)                                                                                  \
	do {                                                                                       \
		h->reason = (why);                                                                 \
		return HTTPHEAD_BAD;                                                               \
	} while (0)

/*
 * The request line at B[0..END): method SP request-target SP HTTP/1.x CRLF.
 * On OK, *POS is the offset of the first header line.
 */
static enum httphead_status request_line(const uint8_t *b, size_t end, size_t *pos,
					 struct httphead *h)
{
	static const char proto[] = "HTTP/1.";
	size_t i = 0, t;

	for (; i < end && (ctab[b[i]] & C_T); i++) {
		if (i == HTTPHEAD_METHOD_MAX)
			FAIL("method too long");
		h->method[i] = (char)b[i];
	}
	NEED(i);
	if (b[i] != ' ') {
		if (i == 0 && b[i] == '\r')
			FAIL("empty request line");
		FAIL(bad_byte(b[i], "method"));
	}
	if (i == 0)
		FAIL("method");

	t = ++i;
	while (i < end && (ctab[b[i]] & C_V))
		i++;
	NEED(i);
	if (b[i] != ' ') {
		if (i == t)
			FAIL(b[i] == '\r' ? "empty request target"
					  : bad_byte(b[i], "request target"));
		if (b[i] == '\r')
			FAIL("HTTP/0.9 request");
		FAIL(bad_byte(b[i], "request target"));
	}
	if (i == t)
		FAIL("extra space in request line");

	i++;
	for (size_t k = 0; k < sizeof(proto) - 1; k++, i++) {
		NEED(i);
		if (b[i] != (uint8_t)proto[k])
			FAIL(b[i] == ' ' && k == 0 ? "extra space in request line"
						   : bad_byte(b[i], "bad version"));
	}
	NEED(i);
	if (b[i] != '0' && b[i] != '1')
		FAIL(bad_byte(b[i], "bad version"));
	h->version_minor = b[i] - '0';
	i++;
	NEED(i);
	if (b[i] != '\r')
		FAIL(bad_byte(b[i], "bad version"));
	i++;
	NEED(i);
	if (b[i] != '\n')
		FAIL("bare CR");
	*pos = i + 1;
	return HTTPHEAD_OK;
}

static enum httphead_status parse(const uint8_t *b, size_t end, unsigned max_headers,
				  struct httphead *h)
{
	struct fields f = { 0 };
	enum httphead_status st;
	const char *why;
	size_t i;

	st = request_line(b, end, &i, h);
	if (st != HTTPHEAD_OK)
		return st;
	f.minor = h->version_minor;

	for (;;) {
		size_t name, nlen, v, z;

		NEED(i);
		if (b[i] == '\r') {
			NEED(i + 1);
			if (b[i + 1] != '\n')
				FAIL("bare CR");
			h->head_len = (uint32_t)(i + 2);
			break;
		}
		if (ows(b[i]))
			FAIL("obs-fold");
		if (!(ctab[b[i]] & C_T))
			FAIL(bad_byte(b[i], "header name"));
		if (h->nheaders >= max_headers) {
			h->reason = "too many headers";
			return HTTPHEAD_TOO_BIG;
		}

		name = i;
		while (i < end && (ctab[b[i]] & C_T))
			i++;
		NEED(i);
		if (b[i] != ':') {
			if (ows(b[i]))
				FAIL("space before colon");
			if (b[i] == '\r')
				FAIL("header without colon");
			FAIL(bad_byte(b[i], "header name"));
		}
		nlen = i - name;

		i++;
		while (i < end && ows(b[i]))
			i++;
		v = i;
		/* the hot loop: most of a head is field values */
		while (i < end && (ctab[b[i]] & C_F))
			i++;
		NEED(i);
		if (b[i] != '\r')
			FAIL(bad_byte(b[i], "header value"));
		z = i;
		while (z > v && ows(b[z - 1]))
			z--;
		NEED(i + 1);
		if (b[i + 1] != '\n')
			FAIL("bare CR");
		i += 2;
		h->nheaders++;

		why = field(&f, b + name, nlen, b + v, z - v);
		if (why)
			FAIL(why);
	}

	if (f.minor == 1 && !f.hosts)
		FAIL("missing Host");
	/* RFC 9112 6.3: otherwise the body's length cannot be known */
	if (f.te && !f.te_chunked)
		FAIL("Transfer-Encoding not chunked");

	h->upgrade_websocket = f.minor == 1 && f.upgrade_websocket && f.conn_upgrade &&
			       !strcmp(h->method, "GET");
	h->keep_alive = f.minor == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
	h->has_body = f.te || f.cl_value > 0;
	h->content_length = f.te ? 0 : f.cl_value;
	return HTTPHEAD_OK;
}

enum httphead_status httphead_parse(const char *buf, size_t len, size_t max_bytes,
				    unsigned max_headers, struct httphead *h)
{
	size_t end = len < max_bytes ? len : max_bytes;
	enum httphead_status st;

	memset(h, 0, sizeof(*h));
	if (max_headers > UINT16_MAX)
		max_headers = UINT16_MAX;
	/* the head length must fit its field */
	if (end > UINT32_MAX)
		end = UINT32_MAX;

	st = parse((const uint8_t *)buf, end, max_headers, h);
	/* out of bytes at the limit rather than at the end of what arrived */
	if (st == HTTPHEAD_NEED_MORE && (end < len || len >= max_bytes)) {
		h->reason = "head too big";
		return HTTPHEAD_TOO_BIG;
	}
	return st;
}
