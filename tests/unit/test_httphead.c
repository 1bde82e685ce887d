// SPDX-License-Identifier: MIT
/*
 * The request-head parser: real heads, every split point, the malformed
 * heads it must refuse (with the reason it gives), and random and mutated
 * bytes. Every parse reads from a heap copy of exactly the bytes offered,
 * so ASan catches any read past them.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/httphead.h"
#include "tests/unit/test.h"

#define MAX 8192
#define MAXH 100

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Parse the first LEN bytes of S from an exact-size heap copy. */
static enum httphead_status parse_n(const char *s, size_t len, size_t max_bytes,
				    unsigned max_headers, struct httphead *h)
{
	char *copy = malloc(len ? len : 1);
	enum httphead_status st;

	memcpy(copy, s, len);
	st = httphead_parse(copy, len, max_bytes, max_headers, h);
	free(copy);
	return st;
}

static enum httphead_status parse(const char *s, struct httphead *h)
{
	return parse_n(s, strlen(s), MAX, MAXH, h);
}

static const char chrome[] =
	"GET /chat?room=1 HTTP/1.1\r\n"
	"Host: example.com:8000\r\n"
	"Connection: Upgrade\r\n"
	"Pragma: no-cache\r\n"
	"Cache-Control: no-cache\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
	"Chrome/124.0.0.0 Safari/537.36\r\n"
	"Upgrade: websocket\r\n"
	"Origin: https://example.com\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Accept-Encoding: gzip, deflate, br, zstd\r\n"
	"Accept-Language: en-US,en;q=0.9\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	"\r\n";

static const char firefox[] =
	"GET /ws HTTP/1.1\r\n"
	"Host: localhost:9000\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n"
	"Accept: */*\r\n"
	"Accept-Language: en-US,en;q=0.5\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Origin: http://localhost:9000\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate\r\n"
	"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
	"Connection: keep-alive, Upgrade\r\n"
	"Sec-Fetch-Dest: empty\r\n"
	"Sec-Fetch-Mode: websocket\r\n"
	"Sec-Fetch-Site: same-origin\r\n"
	"Pragma: no-cache\r\n"
	"Cache-Control: no-cache\r\n"
	"Upgrade: websocket\r\n"
	"\r\n";

static const char curl[] = "GET /index.html HTTP/1.1\r\n"
			   "Host: example.com\r\n"
			   "User-Agent: curl/8.5.0\r\n"
			   "Accept: */*\r\n"
			   "\r\n";

static const char http10[] = "GET / HTTP/1.0\r\n"
			     "Connection: Keep-Alive\r\n"
			     "User-Agent: ApacheBench/2.3\r\n"
			     "\r\n";

static const char post[] = "POST /api/v1/items HTTP/1.1\r\n"
			   "Host: api.example.com\r\n"
			   "Content-Type: application/json\r\n"
			   "Content-Length: 13\r\n"
			   "Content-Length: 13\r\n"
			   "X-Odd:\tvalue with\ttabs and \xc3\xa9 obs-text \t \r\n"
			   "X-Empty:\r\n"
			   "Connection: close\r\n"
			   "\r\n";

static const char chunked[] = "PUT /up HTTP/1.1\r\n"
			      "Host: h\r\n"
			      "Transfer-Encoding: gzip\r\n"
			      "transfer-encoding: CHUNKED\r\n"
			      "\r\n";

static void test_good(void)
{
	struct httphead h;

	CHECK_EQ(parse(chrome, &h), HTTPHEAD_OK);
	CHECK_EQ(h.head_len, strlen(chrome));
	CHECK_EQ(h.version_minor, 1);
	CHECK_EQ(h.upgrade_websocket, 1);
	CHECK_EQ(h.keep_alive, 1);
	CHECK_EQ(h.nheaders, 12);
	CHECK(!strcmp(h.method, "GET"));
	CHECK(h.reason == NULL);
	CHECK_EQ(h.has_body, 0);

	CHECK_EQ(parse(firefox, &h), HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 1);
	CHECK_EQ(h.nheaders, 16);

	CHECK_EQ(parse(curl, &h), HTTPHEAD_OK);
	CHECK_EQ(h.head_len, strlen(curl));
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(h.keep_alive, 1);
	CHECK_EQ(h.nheaders, 3);

	CHECK_EQ(parse(http10, &h), HTTPHEAD_OK);
	CHECK_EQ(h.version_minor, 0);
	CHECK_EQ(h.keep_alive, 1);
	CHECK_EQ(parse("GET / HTTP/1.0\r\n\r\n", &h), HTTPHEAD_OK);
	CHECK_EQ(h.keep_alive, 0);
	CHECK_EQ(h.nheaders, 0);
	CHECK_EQ(h.head_len, 18);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.keep_alive, 0);
	CHECK_EQ(parse("GET / HTTP/1.0\r\nConnection: close,,keep-alive\r\n\r\n", &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.keep_alive, 0);

	CHECK_EQ(parse(post, &h), HTTPHEAD_OK);
	CHECK(!strcmp(h.method, "POST"));
	CHECK_EQ(h.keep_alive, 0);
	CHECK_EQ(h.has_body, 1);
	CHECK_EQ(h.content_length, 13);

	CHECK_EQ(parse(chunked, &h), HTTPHEAD_OK);
	CHECK_EQ(h.has_body, 1);

	/* a 15-byte method is the longest that fits */
	CHECK_EQ(parse("ABCDEFGHIJKLMNO * HTTP/1.1\r\nHost: a\r\n\r\n", &h), HTTPHEAD_OK);
	CHECK(!strcmp(h.method, "ABCDEFGHIJKLMNO"));

	/* absolute-form and authority-form targets, an empty Host */
	CHECK_EQ(parse("GET http://a.example/x?y=%20 HTTP/1.1\r\nHost: a.example\r\n\r\n", &h),
		 HTTPHEAD_OK);
	CHECK_EQ(parse("CONNECT a.example:443 HTTP/1.1\r\nHost:\r\n\r\n", &h), HTTPHEAD_OK);

	/* upgrade lookalikes: a valid head, but not a WebSocket upgrade */
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &h), HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
		       &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
		       "Connection: upgrade\r\n\r\n",
		       &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(parse("get / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
		       "Connection: upgrade\r\n\r\n",
		       &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(parse("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrades\r\n"
		       "Upgrade: websocket\r\n\r\n",
		       &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 0);
	/* token lists, any case, several lines */
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nUPGRADE: foo/2, WebSocket \r\n"
		       "connection: x\r\nCONNECTION: ,\tUPGRADE ,\r\n\r\n",
		       &h),
		 HTTPHEAD_OK);
	CHECK_EQ(h.upgrade_websocket, 1);
}

static void test_pipelined(void)
{
	char buf[1024];
	struct httphead h;
	size_t n = strlen(curl);

	snprintf(buf, sizeof(buf), "%s%s", curl, "GET /2 HTTP/1.1\r\nHost: example.com\r\n\r\n");
	CHECK_EQ(parse(buf, &h), HTTPHEAD_OK);
	CHECK_EQ(h.head_len, n);
	/* a body with bytes the head may not contain does not matter */
	memcpy(buf, post, sizeof(post) - 1);
	memcpy(buf + sizeof(post) - 1, "\0\n\r\x01{\"a\": 1}", 13);
	CHECK_EQ(parse_n(buf, sizeof(post) - 1 + 13, MAX, MAXH, &h), HTTPHEAD_OK);
	CHECK_EQ(h.head_len, sizeof(post) - 1);
	/* anything after the head, right at the limit */
	CHECK_EQ(parse_n(buf, sizeof(post) - 1 + 13, sizeof(post) - 1, MAXH, &h), HTTPHEAD_OK);
	CHECK_EQ(parse_n(buf, sizeof(post) - 1 + 13, sizeof(post) - 2, MAXH, &h),
		 HTTPHEAD_TOO_BIG);
}

/* Every proper prefix of a good head needs more; the whole parses the same. */
static void test_splits(void)
{
	static const char *const heads[] = { chrome, firefox, curl, http10, post, chunked };
	struct httphead h, whole;

	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		size_t n = strlen(heads[k]);

		CHECK_EQ(parse(heads[k], &whole), HTTPHEAD_OK);
		for (size_t i = 0; i < n; i++) {
			enum httphead_status st = parse_n(heads[k], i, MAX, MAXH, &h);

			CHECK_EQ(st, HTTPHEAD_NEED_MORE);
			if (st != HTTPHEAD_NEED_MORE)
				fprintf(stderr, "  head %zu, prefix %zu: %s\n", k, i,
					h.reason ? h.reason : "?");
			/* the same prefix when it is all the limit allows */
			if (i)
				CHECK_EQ(parse_n(heads[k], i, i, MAXH, &h), HTTPHEAD_TOO_BIG);
		}
		CHECK_EQ(parse_n(heads[k], n, n, MAXH, &h), HTTPHEAD_OK);
		CHECK_EQ(h.head_len, whole.head_len);
		CHECK_EQ(h.nheaders, whole.nheaders);
		CHECK_EQ(h.keep_alive, whole.keep_alive);
		CHECK_EQ(h.upgrade_websocket, whole.upgrade_websocket);
		CHECK_EQ(parse_n(heads[k], n, n - 1, MAXH, &h), HTTPHEAD_TOO_BIG);
		CHECK_EQ(parse_n(heads[k], n, MAX, whole.nheaders, &h), HTTPHEAD_OK);
		if (whole.nheaders)
			CHECK_EQ(parse_n(heads[k], n, MAX, whole.nheaders - 1, &h),
				 HTTPHEAD_TOO_BIG);
	}
}

#define S(lit) lit, sizeof(lit) - 1
#define RL "GET / HTTP/1.1\r\n"
#define HOST "Host: a\r\n"

struct bad {
	const char *in;
	size_t len;
	enum httphead_status st;
	const char *reason;
};

static const struct bad bads[] = {
	{ S("GET / HTTP/1.1\nHost: a\r\n\r\n"), HTTPHEAD_BAD, "bare LF" },
	{ S(RL "Host: a\n\r\n"), HTTPHEAD_BAD, "bare LF" },
	{ S(RL HOST "\n"), HTTPHEAD_BAD, "bare LF" },
	{ S("\n"), HTTPHEAD_BAD, "bare LF" },
	{ S("GET / HTTP/1.1\rHost: a\r\n\r\n"), HTTPHEAD_BAD, "bare CR" },
	{ S(RL "Host: a\rb\r\n\r\n"), HTTPHEAD_BAD, "bare CR" },
	{ S(RL HOST "\r\r\n"), HTTPHEAD_BAD, "bare CR" },
	{ S(RL HOST "X-A: b\r\n c\r\n\r\n"), HTTPHEAD_BAD, "obs-fold" },
	{ S(RL "\tHost: a\r\n\r\n"), HTTPHEAD_BAD, "obs-fold" },
	{ S(RL "Host : a\r\n\r\n"), HTTPHEAD_BAD, "space before colon" },
	{ S(RL "Host\t: a\r\n\r\n"), HTTPHEAD_BAD, "space before colon" },
	{ S(RL "Host: a\0b\r\n\r\n"), HTTPHEAD_BAD, "NUL byte" },
	{ S("GET /\0 HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "NUL byte" },
	{ S("\0GET / HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "NUL byte" },
	{ S(RL "X-A: b\x01\r\n\r\n"), HTTPHEAD_BAD, "control character" },
	{ S(RL "X-A: b\x7f\r\n\r\n"), HTTPHEAD_BAD, "control character" },
	/* a TLS ClientHello sent to the plain port */
	{ S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), HTTPHEAD_BAD, "control character" },
	{ S("\xff\xfe\xfd garbage"), HTTPHEAD_BAD, "method" },
	{ S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET / HTTP/2\r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET / HTTP/1.2\r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET / HTTP/1.10\r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET / HTTP/1.1 \r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET / http/1.1\r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET / HTTP/0.9\r\n\r\n"), HTTPHEAD_BAD, "bad version" },
	{ S("GET /\r\n"), HTTPHEAD_BAD, "HTTP/0.9 request" },
	{ S("GET  / HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "extra space in request line" },
	{ S("GET /  HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "extra space in request line" },
	{ S(" GET / HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "method" },
	{ S("GET\t/ HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "control character" },
	{ S("GE(T / HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "method" },
	{ S("ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "method too long" },
	{ S("GET \r\n\r\n"), HTTPHEAD_BAD, "empty request target" },
	{ S("GET /\xc3\xa9 HTTP/1.1\r\n\r\n"), HTTPHEAD_BAD, "request target" },
	{ S("\r\n\r\n"), HTTPHEAD_BAD, "empty request line" },
	{ S("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTPHEAD_BAD, "empty request line" },
	{ S(RL "Host\r\n\r\n"), HTTPHEAD_BAD, "header without colon" },
	{ S(RL ": a\r\n\r\n"), HTTPHEAD_BAD, "header name" },
	{ S(RL "X(y): a\r\n\r\n"), HTTPHEAD_BAD, "header name" },
	{ S(RL "\xc3\xa9: a\r\n\r\n"), HTTPHEAD_BAD, "header name" },
	{ S(RL "\r\n"), HTTPHEAD_BAD, "missing Host" },
	{ S(RL HOST "host: b\r\n\r\n"), HTTPHEAD_BAD, "duplicate Host" },
	{ S("GET / HTTP/1.0\r\n" HOST HOST "\r\n"), HTTPHEAD_BAD, "duplicate Host" },
	{ S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  HTTPHEAD_BAD, "Transfer-Encoding with Content-Length" },
	{ S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	  HTTPHEAD_BAD, "Transfer-Encoding with Content-Length" },
	{ S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"),
	  HTTPHEAD_BAD, "conflicting Content-Length" },
	{ S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5, 5\r\n\r\n"), HTTPHEAD_BAD,
	  "bad Content-Length" },
	{ S("POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n"), HTTPHEAD_BAD,
	  "bad Content-Length" },
	{ S("POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n"), HTTPHEAD_BAD,
	  "bad Content-Length" },
	{ S("POST / HTTP/1.1\r\n" HOST "Content-Length: 99999999999999999999\r\n\r\n"),
	  HTTPHEAD_BAD, "bad Content-Length" },
	{ S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTPHEAD_BAD,
	  "Transfer-Encoding in HTTP/1.0" },
	{ S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, gzip\r\n\r\n"), HTTPHEAD_BAD,
	  "Transfer-Encoding not chunked" },
	{ S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: x\r\n\r\n"),
	  HTTPHEAD_BAD, "Transfer-Encoding not chunked" },
	{ S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: , \r\n\r\n"), HTTPHEAD_BAD,
	  "empty Transfer-Encoding" },
	/* incomplete, not malformed: the head just has not ended yet */
	{ S(RL HOST), HTTPHEAD_NEED_MORE, NULL },
	{ S(RL HOST "\r"), HTTPHEAD_NEED_MORE, NULL },
	{ S(""), HTTPHEAD_NEED_MORE, NULL },
};

static void test_bad(void)
{
	struct httphead h;
	char *big;
	size_t n;

	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		enum httphead_status st = parse_n(b->in, b->len, MAX, MAXH, &h);

		CHECK_EQ(st, b->st);
		if (st != b->st || (b->reason && (!h.reason || strcmp(h.reason, b->reason)))) {
			fprintf(stderr, "  case %zu: got %d \"%s\", want %d \"%s\"\n", i, st,
				h.reason ? h.reason : "(null)", b->st,
				b->reason ? b->reason : "(null)");
			test_failures++;
		}
		if (!b->reason)
			CHECK(h.reason == NULL);
	}

	/* 20 KiB of valid headers against an 8 KiB limit */
	big = malloc(20 * 1024 + 64);
	n = (size_t)sprintf(big, RL HOST);
	while (n < 20 * 1024)
		n += (size_t)sprintf(big + n, "X-Filler-%05zu: %s\r\n", n,
				     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	n += (size_t)sprintf(big + n, "\r\n");
	CHECK_EQ(parse_n(big, n, 8192, 1000, &h), HTTPHEAD_TOO_BIG);
	CHECK(h.reason && !strcmp(h.reason, "head too big"));
	CHECK_EQ(parse_n(big, 8191, 8192, 1000, &h), HTTPHEAD_NEED_MORE);
	CHECK_EQ(parse_n(big, 8192, 8192, 1000, &h), HTTPHEAD_TOO_BIG);
	CHECK_EQ(parse_n(big, n, 1 << 20, 1000, &h), HTTPHEAD_OK);
	CHECK_EQ(h.head_len, n);
	/* too many headers, well within the byte limit */
	CHECK_EQ(parse_n(big, n, 1 << 20, 100, &h), HTTPHEAD_TOO_BIG);
	CHECK(h.reason && !strcmp(h.reason, "too many headers"));
	/* a malformed byte within the limit is BAD even when the limit is also hit */
	big[100] = '\n';
	CHECK_EQ(parse_n(big, n, 8192, 1000, &h), HTTPHEAD_BAD);
	CHECK_EQ(parse_n(big, n, 0, 1000, &h), HTTPHEAD_TOO_BIG);
	free(big);
}

static void check_any(const char *buf, size_t len, size_t max_bytes)
{
	struct httphead h;
	enum httphead_status st = parse_n(buf, len, max_bytes, 64, &h);

	switch (st) {
	case HTTPHEAD_OK:
		CHECK(h.head_len <= len);
		CHECK(h.head_len <= max_bytes);
		CHECK(h.head_len >= 18);
		CHECK(h.reason == NULL);
		CHECK(!memcmp(buf + h.head_len - 4, "\r\n\r\n", 4) ||
		      !memcmp(buf + h.head_len - 2, "\r\n", 2));
		CHECK(strlen(h.method) >= 1 && strlen(h.method) <= HTTPHEAD_METHOD_MAX);
		/* the head alone parses the same, and every prefix of it needs more */
		CHECK_EQ(parse_n(buf, h.head_len, h.head_len, 64, &h), HTTPHEAD_OK);
		CHECK_EQ(parse_n(buf, next() % h.head_len, max_bytes, 64, &h),
			 HTTPHEAD_NEED_MORE);
		break;
	case HTTPHEAD_NEED_MORE:
		CHECK(len < max_bytes);
		CHECK(h.reason == NULL);
		if (len)
			CHECK_EQ(parse_n(buf, next() % len, max_bytes, 64, &h),
				 HTTPHEAD_NEED_MORE);
		break;
	case HTTPHEAD_BAD:
	case HTTPHEAD_TOO_BIG:
		CHECK(h.reason != NULL && h.reason[0]);
		break;
	default:
		CHECK(!"status out of range");
	}
}

/* Random bytes, bytes from a head's alphabet, and mutated good heads. */
static void test_random(void)
{
	static const char alpha[] = "GET / HTTP/1.1\r\n:Host a,\tupgrade websocket Content-Length"
				    "Transfer-Encoding chunked 0123456789";
	static const char *const heads[] = { chrome, firefox, curl, http10, post, chunked };
	char buf[1024];

	for (int round = 0; round < 300000 && test_failures < 20; round++) {
		size_t len = next() % sizeof(buf);
		size_t max_bytes = next() % 4 ? sizeof(buf) : next() % sizeof(buf);

		switch (round % 3) {
		case 0:
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)next();
			break;
		case 1:
			memcpy(buf, RL, sizeof(RL) - 1);
			for (size_t i = next() % 3 ? sizeof(RL) - 1 : 0; i < len; i++)
				buf[i] = alpha[next() % (sizeof(alpha) - 1)];
			break;
		case 2: {
			const char *src = heads[next() % (sizeof(heads) / sizeof(heads[0]))];
			size_t n = strlen(src);
			int flips = (int)(next() % 4);

			memcpy(buf, src, n);
			for (int f = 0; f < flips; f++) {
				size_t at = next() % n;

				switch (next() % 4) {
				case 0:
					buf[at] = (char)next();
					break;
				case 1:
					buf[at] = "\r\n \t:\0,"[next() % 7];
					break;
				case 2: /* delete a byte */
					memmove(buf + at, buf + at + 1, n - at - 1);
					n--;
					break;
				case 3: /* duplicate a byte */
					if (n + 1 < sizeof(buf)) {
						memmove(buf + at + 1, buf + at, n - at);
						n++;
					}
					break;
				}
			}
			len = next() % 2 ? n : next() % (n + 1);
			break;
		}
		}
		check_any(buf, len, max_bytes);
	}
}

int main(void)
{
	test_good();
	test_pipelined();
	test_splits();
	test_bad();
	test_random();
	return test_result("httphead");
}
