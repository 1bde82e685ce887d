// SPDX-License-Identifier: MIT
/*
 * fuzz_httphead — proxy/httphead.c on arbitrary bytes, with the limits the
 * proxy uses (proxy/admit.c: 8192 bytes, 100 headers), checking what
 * httphead.h promises:
 *   - OK: head_len within what was offered and the limit, ending in the
 *     blank line, every CR and LF in it paired, nheaders = its lines - 2,
 *     the method the request line's first word, reason NULL;
 *     the same result from exactly head_len bytes (bytes after the head are
 *     not looked at) and with max_bytes = head_len or max_headers = nheaders;
 *     NEED_MORE from head_len - 1 bytes; TOO_BIG with a limit one lower.
 *   - NEED_MORE only below max_bytes; BAD and TOO_BIG always give a reason.
 *   - Prefixes: once a prefix is not NEED_MORE, every longer prefix gives
 *     the same answer as the whole input ("every byte so far may begin a
 *     valid head" is what NEED_MORE means).
 */
#include <string.h>

#include "proxy/httphead.h"
#include "tests/fuzz/fuzz.h"

#define MAX 8192
#define MAXH 100

/* Parse the first LEN bytes of DATA from an exact-size heap copy. */
static enum httphead_status parse_n(const uint8_t *data, size_t len, size_t max_bytes,
				    unsigned max_headers, struct httphead *h)
{
	char *copy = malloc(len ? len : 1);
	enum httphead_status st;

	FUZZ_CHECK(copy);
	memcpy(copy, data, len);
	st = httphead_parse(copy, len, max_bytes, max_headers, h);
	free(copy);
	return st;
}

static int is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int same_head(const struct httphead *a, const struct httphead *b)
{
	return a->head_len == b->head_len && a->version_minor == b->version_minor &&
	       a->upgrade_websocket == b->upgrade_websocket && a->keep_alive == b->keep_alive &&
	       a->has_body == b->has_body && a->nheaders == b->nheaders &&
	       !strcmp(a->method, b->method) && a->content_length == b->content_length &&
	       a->reason == b->reason;
}

/* Same status, and the same result or the same reason. */
static int same(enum httphead_status sa, const struct httphead *a, enum httphead_status sb,
		const struct httphead *b)
{
	if (sa != sb)
		return 0;
	if (sa == HTTPHEAD_OK)
		return same_head(a, b);
	return a->reason && b->reason && !strcmp(a->reason, b->reason);
}

/* What one result must satisfy on its own. */
static void check_one(const uint8_t *d, size_t len, size_t max_bytes, unsigned max_headers,
		      enum httphead_status st, const struct httphead *h)
{
	size_t mlen, lines = 0;

	switch (st) {
	case HTTPHEAD_NEED_MORE:
		FUZZ_CHECK(len < max_bytes);
		FUZZ_CHECK(!h->reason);
		break;
	case HTTPHEAD_BAD:
	case HTTPHEAD_TOO_BIG:
		FUZZ_CHECK(h->reason && h->reason[0]);
		break;
	case HTTPHEAD_OK:
		FUZZ_CHECK(!h->reason);
		FUZZ_CHECK(h->head_len >= 4 && h->head_len <= len && h->head_len <= max_bytes);
		FUZZ_CHECK(!memcmp(d + h->head_len - 4, "\r\n\r\n", 4));
		for (size_t i = 0; i < h->head_len; i++) {
			FUZZ_CHECK(d[i] != 0);
			if (d[i] == '\r')
				FUZZ_CHECK(i + 1 < h->head_len && d[i + 1] == '\n');
			if (d[i] == '\n') {
				FUZZ_CHECK(i > 0 && d[i - 1] == '\r');
				lines++;
			}
		}
		/* the request line, the header lines, the blank line */
		FUZZ_CHECK(lines >= 2 && h->nheaders == lines - 2);
		FUZZ_CHECK(h->nheaders <= max_headers);
		FUZZ_CHECK(h->version_minor <= 1);
		FUZZ_CHECK(h->upgrade_websocket <= 1 && h->keep_alive <= 1 && h->has_body <= 1);
		mlen = strnlen(h->method, sizeof(h->method));
		FUZZ_CHECK(mlen >= 1 && mlen <= HTTPHEAD_METHOD_MAX);
		FUZZ_CHECK(!memcmp(h->method, d, mlen) && d[mlen] == ' ');
		for (size_t i = 0; i < mlen; i++)
			FUZZ_CHECK(is_tchar((uint8_t)h->method[i]));
		FUZZ_CHECK(h->has_body || h->content_length == 0);
		if (h->upgrade_websocket)
			FUZZ_CHECK(h->version_minor == 1 && !strcmp(h->method, "GET"));
		break;
	default:
		FUZZ_CHECK(!"unknown status");
	}
}

static enum httphead_status parse_checked(const uint8_t *d, size_t len, size_t max_bytes,
					  unsigned max_headers, struct httphead *h)
{
	enum httphead_status st = parse_n(d, len, max_bytes, max_headers, h);

	check_one(d, len, max_bytes, max_headers, st, h);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httphead full, h;
	enum httphead_status st, s;
	size_t step, k;
	int settled = 0;

	st = parse_checked(data, size, MAX, MAXH, &full);

	if (st == HTTPHEAD_OK) {
		uint32_t hl = full.head_len;

		s = parse_checked(data, hl, MAX, MAXH, &h);
		FUZZ_CHECK(same(s, &h, st, &full));
		s = parse_checked(data, size, hl, MAXH, &h);
		FUZZ_CHECK(same(s, &h, st, &full));
		s = parse_checked(data, hl - 1, MAX, MAXH, &h);
		FUZZ_CHECK(s == HTTPHEAD_NEED_MORE);
		s = parse_checked(data, size, hl - 1, MAXH, &h);
		FUZZ_CHECK(s == HTTPHEAD_TOO_BIG);
		s = parse_checked(data, size, MAX, full.nheaders, &h);
		FUZZ_CHECK(same(s, &h, st, &full));
		if (full.nheaders) {
			s = parse_checked(data, size, MAX, full.nheaders - 1u, &h);
			FUZZ_CHECK(s == HTTPHEAD_TOO_BIG);
		}
	}

	/* Prefixes: every one of a short input, about 64 of a long one. */
	step = size <= 256 ? 1 : size / 64;
	for (k = 0; k < size; k += step) {
		s = parse_checked(data, k, MAX, MAXH, &h);
		if (s == HTTPHEAD_NEED_MORE) {
			FUZZ_CHECK(!settled);
			continue;
		}
		settled = 1;
		FUZZ_CHECK(same(s, &h, st, &full));
	}
	return 0;
}
