// SPDX-License-Identifier: MIT
/*
 * The WebSocket frame-boundary tracker against a model: streams of frames of
 * every length class, fed whole, byte by byte and in random chunks, with the
 * boundary checked after every chunk; protocol errors; the Close frame.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wsframe.h"
#include "tests/unit/test.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char head101[] = "HTTP/1.1 101 Switching Protocols\r\n"
			      "Upgrade: websocket\r\n"
			      "Connection: Upgrade\r\n"
			      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
			      "\r\n";

/*
 * A stream under construction, and the model: at[i] is 1 when the tracker
 * must report a boundary after the first i bytes.
 */
struct stream {
	uint8_t *b;
	uint8_t *at;
	size_t n, cap;
	int in_message; /* model: inside a fragmented message */
	int closed;
};

static void put(struct stream *s, const void *p, size_t n, int boundary_after)
{
	if (s->n + n + 1 > s->cap) {
		while (s->n + n + 1 > s->cap)
			s->cap = s->cap ? s->cap * 2 : 4096;
		s->b = realloc(s->b, s->cap);
		s->at = realloc(s->at, s->cap);
	}
	if (p)
		memcpy(s->b + s->n, p, n);
	else
		memset(s->b + s->n, 0x5a, n);
	memset(s->at + s->n + 1, 0, n);
	s->n += n;
	s->at[s->n] = (uint8_t)boundary_after;
}

static void stream_init(struct stream *s, const char *head)
{
	memset(s, 0, sizeof(*s));
	put(s, NULL, 0, 0);
	put(s, head, strlen(head), 1);
}

/* Append one frame header and LEN payload bytes, and update the model. */
static void frame(struct stream *s, int fin, unsigned op, int masked, uint64_t len)
{
	uint8_t h[14];
	size_t n = 0;

	h[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (len < 126) {
		h[n++] = (uint8_t)((masked ? 0x80 : 0) | len);
	} else if (len <= 0xffff) {
		h[n++] = (uint8_t)((masked ? 0x80 : 0) | 126);
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = (uint8_t)((masked ? 0x80 : 0) | 127);
		for (int k = 7; k >= 0; k--)
			h[n++] = (uint8_t)(len >> (8 * k));
	}
	if (masked)
		for (int k = 0; k < 4; k++)
			h[n++] = (uint8_t)next();
	if (op == 0 || op == 1 || op == 2)
		s->in_message = !fin;
	if (op == 8)
		s->closed = 1;
	put(s, h, n, 0);
	put(s, NULL, len, !s->in_message && !s->closed);
}

/* Feed S in chunks from SPLIT (0: whole), checking the boundary after each. */
static void feed_checked(const struct stream *s, size_t (*split)(size_t left))
{
	struct wsframe t;
	size_t i = 0;
	int errs = 0;

	wsframe_init(&t);
	CHECK_EQ(wsframe_at_boundary(&t), 0);
	while (i < s->n && errs < 5) {
		size_t k = split ? split(s->n - i) : s->n - i;
		/* an exact-size copy, so ASan sees any read past the chunk */
		uint8_t *chunk = malloc(k);
		int rc;

		memcpy(chunk, s->b + i, k);
		rc = wsframe_feed(&t, chunk, k);
		free(chunk);
		i += k;
		if (rc != 0 || wsframe_at_boundary(&t) != s->at[i]) {
			fprintf(stderr, "  at %zu of %zu: rc %d boundary %d, want %d\n", i, s->n,
				rc, wsframe_at_boundary(&t), s->at[i]);
			test_failures++;
			errs++;
		}
	}
	CHECK_EQ(wsframe_feed(&t, NULL, 0), 0);
}

static size_t split_1(size_t left)
{
	return 1;
}

static size_t split_random(size_t left)
{
	size_t k;

	switch (next() % 4) {
	case 0:
		k = 1 + next() % 3;
		break;
	case 1:
		k = 1 + next() % 20;
		break;
	default:
		k = 1 + next() % 70000;
		break;
	}
	return k < left ? k : left;
}

static void test_lengths(void)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 65537 };
	struct stream s;

	/* each length class on its own, every split, masked or not */
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		for (int masked = 0; masked < 2; masked++) {
			stream_init(&s, head101);
			frame(&s, 1, 2, masked, lens[k]);
			frame(&s, 1, 1, masked, 3);
			feed_checked(&s, NULL);
			feed_checked(&s, split_1);
			for (int r = 0; r < 20; r++)
				feed_checked(&s, split_random);
			free(s.b);
			free(s.at);
		}
	}
}

/* A fragmented message with control frames between its fragments. */
static void test_fragments(void)
{
	struct stream s;

	stream_init(&s, "HTTP/1.1 101\r\n\r\n");
	frame(&s, 1, 1, 0, 5);	   /* whole text message */
	frame(&s, 0, 1, 0, 10);	   /* first fragment */
	frame(&s, 1, 9, 0, 4);	   /* ping inside: still no message boundary */
	frame(&s, 0, 0, 0, 0);	   /* empty middle fragment */
	frame(&s, 1, 0xa, 1, 0);   /* masked empty pong */
	frame(&s, 0, 0, 1, 300);   /* masked middle fragment */
	frame(&s, 1, 0, 0, 7);	   /* final fragment: boundary */
	frame(&s, 1, 9, 0, 125);   /* ping between messages: boundary */
	frame(&s, 0, 2, 0, 70000); /* fragmented binary */
	frame(&s, 1, 0, 0, 0);	   /* ended by an empty final fragment */
	frame(&s, 1, 8, 0, 2);	   /* the server's Close: never a boundary after */
	CHECK_EQ(s.at[s.n], 0);
	feed_checked(&s, NULL);
	feed_checked(&s, split_1);
	for (int r = 0; r < 50; r++)
		feed_checked(&s, split_random);
	free(s.b);
	free(s.at);
}

/* Random valid streams, random chunks. */
static void test_random_streams(void)
{
	for (int round = 0; round < 300; round++) {
		struct stream s;
		int nframes = 1 + (int)(next() % 60);

		stream_init(&s, head101);
		for (int f = 0; f < nframes; f++) {
			int masked = next() % 8 == 0;
			uint64_t len;

			switch (next() % 8) {
			case 0:
				len = 0;
				break;
			case 1:
				len = 126 + next() % 70000;
				break;
			default:
				len = next() % 126;
				break;
			}
			if (next() % 4 == 0) {
				frame(&s, 1, 9 + (unsigned)(next() % 2), masked, len % 126);
			} else {
				unsigned op = s.in_message ? 0 : 1 + (unsigned)(next() % 2);

				frame(&s, next() % 3 != 0, op, masked, len);
			}
		}
		if (next() % 4 == 0)
			frame(&s, 1, 8, 0, next() % 126);
		feed_checked(&s, split_random);
		feed_checked(&s, split_random);
		free(s.b);
		free(s.at);
	}
}

/* A 2^32-byte frame, fed in 1 MiB chunks of payload. */
static void test_huge(void)
{
	static const uint8_t hdr[] = { 0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0 };
	static uint8_t zero[1 << 20];
	struct wsframe t;
	int ok = 1;

	wsframe_init(&t);
	CHECK_EQ(wsframe_feed(&t, (const uint8_t *)head101, sizeof(head101) - 1), 0);
	CHECK_EQ(wsframe_at_boundary(&t), 1);
	CHECK_EQ(wsframe_feed(&t, hdr, sizeof(hdr)), 0);
	for (uint64_t left = 1ull << 32; left; left -= sizeof(zero)) {
		ok &= !wsframe_at_boundary(&t);
		ok &= wsframe_feed(&t, zero, sizeof(zero)) == 0;
	}
	CHECK(ok);
	CHECK_EQ(wsframe_at_boundary(&t), 1);

	/* the largest legal length is accepted, one more bit is not */
	{
		static const uint8_t max[] = { 0x82, 127, 0x7f, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
		static const uint8_t bad[] = { 0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0 };

		CHECK_EQ(wsframe_feed(&t, max, sizeof(max)), 0);
		CHECK_EQ(t.left, INT64_MAX - 3);
		CHECK_EQ(wsframe_at_boundary(&t), 0);
		wsframe_init(&t);
		CHECK_EQ(wsframe_feed(&t, (const uint8_t *)head101, sizeof(head101) - 1), 0);
		CHECK_EQ(wsframe_feed(&t, bad, sizeof(bad)), -EPROTO);
	}
}

/* Feed HEAD then FRAMES; the result of the last feed. */
static int feed2(const char *head, const uint8_t *frames, size_t n, struct wsframe *t)
{
	int rc;

	wsframe_init(t);
	rc = wsframe_feed(t, (const uint8_t *)head, strlen(head));
	if (rc || !n)
		return rc;
	return wsframe_feed(t, frames, n);
}

#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

static void test_errors(void)
{
	struct wsframe t;
	char *big;

	/* not a 101 response head */
	CHECK_EQ(feed2("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, 0, &t), -EPROTO);
	CHECK_EQ(feed2("HTTP/1.0 101 Switching Protocols\r\n\r\n", NULL, 0, &t), -EPROTO);
	CHECK_EQ(feed2("HTTP/1.1 1010\r\n\r\n", NULL, 0, &t), -EPROTO);
	CHECK_EQ(feed2("http/1.1 101 x\r\n\r\n", NULL, 0, &t), -EPROTO);
	CHECK_EQ(feed2("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n", NULL, 0, &t),
		 -EPROTO);
	CHECK_EQ(feed2("HTTP/1.1 101 x\r\nA: b\r\r\n\r\n", NULL, 0, &t), -EPROTO);
	CHECK_EQ(feed2("HTTP/1.1 101 x\r\n\n", NULL, 0, &t), -EPROTO);
	CHECK_EQ(wsframe_at_boundary(&t), 0);
	/* an endless head */
	big = malloc(WSFRAME_HEAD_MAX + 64);
	strcpy(big, "HTTP/1.1 101 x\r\n");
	for (size_t n = strlen(big); n < WSFRAME_HEAD_MAX + 32; n += 16)
		strcpy(big + n, "X-Pad: 1234567\r\n");
	CHECK_EQ(feed2(big, NULL, 0, &t), -EPROTO);
	free(big);
	/* an incomplete head is fine, but no boundary yet */
	CHECK_EQ(feed2("HTTP/1.1 101 Switching Protocols\r\n", NULL, 0, &t), 0);
	CHECK_EQ(wsframe_at_boundary(&t), 0);
	CHECK_EQ(feed2("HTTP/1.1 101\r\n\r", NULL, 0, &t), 0);
	CHECK_EQ(wsframe_at_boundary(&t), 0);

	/* reserved opcodes */
	for (unsigned op = 3; op <= 7; op++)
		CHECK_EQ(feed2(head101, B((uint8_t)(0x80 | op), 0), &t), -EPROTO);
	for (unsigned op = 0xb; op <= 0xf; op++)
		CHECK_EQ(feed2(head101, B((uint8_t)(0x80 | op), 0), &t), -EPROTO);
	/* continuation with no message; a new message inside one */
	CHECK_EQ(feed2(head101, B(0x80, 0), &t), -EPROTO);
	CHECK_EQ(feed2(head101, B(0x01, 1, 'a', 0x82, 0), &t), -EPROTO);
	CHECK_EQ(feed2(head101, B(0x01, 1, 'a', 0x01, 0), &t), -EPROTO);
	/* control frames: too long, fragmented */
	CHECK_EQ(feed2(head101, B(0x89, 126, 0, 126), &t), -EPROTO);
	CHECK_EQ(feed2(head101, B(0x89, 127), &t), -EPROTO);
	CHECK_EQ(feed2(head101, B(0x88, 0xfe), &t), -EPROTO);
	CHECK_EQ(feed2(head101, B(0x09, 0), &t), -EPROTO);
	CHECK_EQ(feed2(head101, B(0x89, 125), &t), 0);
	/* anything after the server's Close */
	CHECK_EQ(feed2(head101, B(0x88, 2, 0x03, 0xe8), &t), 0);
	CHECK_EQ(wsframe_at_boundary(&t), 0);
	CHECK_EQ(wsframe_feed(&t, B(0x81, 0)), -EPROTO);
	/* RSV bits pass (permessage-deflate sets RSV1) */
	CHECK_EQ(feed2(head101, B(0xc1, 1, 'x'), &t), 0);
	CHECK_EQ(wsframe_at_boundary(&t), 1);

	/* errors are sticky */
	CHECK_EQ(feed2(head101, B(0x83, 0), &t), -EPROTO);
	CHECK_EQ(wsframe_feed(&t, B(0x81, 0)), -EPROTO);
	CHECK_EQ(wsframe_feed(&t, NULL, 0), -EPROTO);
	CHECK_EQ(wsframe_at_boundary(&t), 0);

	/* zero-initialised is the same as wsframe_init */
	{
		struct wsframe z = { 0 };

		CHECK_EQ(wsframe_feed(&z, (const uint8_t *)head101, sizeof(head101) - 1), 0);
		CHECK_EQ(wsframe_at_boundary(&z), 1);
	}
}

/* Random bytes after a good head never break the bounds; errors stay errors. */
static void test_garbage(void)
{
	uint8_t buf[256];

	for (int round = 0; round < 100000; round++) {
		struct wsframe t;
		int rc = 0, dead = 0;

		wsframe_init(&t);
		if (round % 4)
			rc = wsframe_feed(&t, (const uint8_t *)head101, sizeof(head101) - 1);
		for (int c = 0; c < 8; c++) {
			size_t n = next() % sizeof(buf);
			uint8_t *chunk = malloc(n ? n : 1);

			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)next();
			memcpy(chunk, buf, n);
			rc = wsframe_feed(&t, chunk, n);
			free(chunk);
			CHECK(rc == 0 || rc == -EPROTO);
			if (dead)
				CHECK_EQ(rc, -EPROTO);
			dead = rc != 0;
			if (dead)
				CHECK_EQ(wsframe_at_boundary(&t), 0);
		}
	}
}

static void test_close(void)
{
	uint8_t *out = malloc(WSFRAME_CLOSE_MAX);
	char reason[300];
	struct wsframe t;
	size_t n;

	n = wsframe_close(out, 1012, "service restart");
	CHECK_EQ(n, 4 + 15);
	CHECK_EQ(out[0], 0x88);
	CHECK_EQ(out[1], 2 + 15);
	CHECK_EQ(out[2], 0x03);
	CHECK_EQ(out[3], 0xf4);
	CHECK(!memcmp(out + 4, "service restart", 15));
	/* the tracker reads it back as a whole Close */
	CHECK_EQ(feed2(head101, out, n, &t), 0);
	CHECK_EQ(t.closed, 1);
	CHECK_EQ(wsframe_at_boundary(&t), 0);

	n = wsframe_close(out, 1001, NULL);
	CHECK_EQ(n, 4);
	CHECK(!memcmp(out, "\x88\x02\x03\xe9", 4));
	n = wsframe_close(out, 1000, "");
	CHECK_EQ(n, 4);
	n = wsframe_close(out, 0, "ignored");
	CHECK_EQ(n, 2);
	CHECK(!memcmp(out, "\x88\x00", 2));

	/* cut at 123 bytes */
	memset(reason, 'a', sizeof(reason));
	reason[sizeof(reason) - 1] = 0;
	n = wsframe_close(out, 1012, reason);
	CHECK_EQ(n, WSFRAME_CLOSE_MAX);
	CHECK_EQ(out[1], 125);
	reason[123] = 0;
	CHECK_EQ(wsframe_close(out, 1012, reason), WSFRAME_CLOSE_MAX);
	/* ... but not inside a UTF-8 sequence: "é" at bytes 122-123 goes */
	memset(reason, 'a', sizeof(reason));
	reason[122] = (char)0xc3;
	reason[123] = (char)0xa9;
	reason[200] = 0;
	n = wsframe_close(out, 1012, reason);
	CHECK_EQ(n, 4 + 122);
	CHECK_EQ(out[1], 2 + 122);
	/* "€" (3 bytes) at 121-123 goes; at 120-122 it stays */
	reason[121] = (char)0xe2;
	reason[122] = (char)0x82;
	reason[123] = (char)0xac;
	CHECK_EQ(wsframe_close(out, 1012, reason), 4 + 121);
	memset(reason, 'a', 124);
	reason[120] = (char)0xe2;
	reason[121] = (char)0x82;
	reason[122] = (char)0xac;
	CHECK_EQ(wsframe_close(out, 1012, reason), 4 + 123);
	free(out);
}

int main(void)
{
	CHECK(sizeof(struct wsframe) <= 32);
	test_lengths();
	test_fragments();
	test_random_streams();
	test_huge();
	test_errors();
	test_garbage();
	test_close();
	return test_result("wsframe");
}
