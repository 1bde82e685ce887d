// SPDX-License-Identifier: MIT
/*
 * fuzz_wsframe — proxy/wsframe.c: the frame tracker fed an arbitrary stream
 * byte by byte, in fuzzer-chosen chunks and whole, each compared with a
 * reference that reads the whole stream at once, written from wsframe.h:
 * where the head ends, where each frame ends, whether that is a message
 * boundary, and at which byte the stream stops being WebSocket. So the
 * tracker must answer the same after every chunk whatever the chunking,
 * errors must be sticky, and a byte-by-byte tracker must be in the same
 * state as a chunked one at every chunk end. wsframe_close is checked too.
 *
 * Input: byte 0 = flags: bits 0-3 the number N of chunk-size bytes that
 * follow (0: the whole stream in one call), bit 4 put a canned 101 head in
 * front of the stream (so the fuzzer need not find one); then N bytes of
 * chunk sizes, used in turn (0..127 as is, 128..255 as (s - 127) * 97, so
 * empty feeds and chunks up to ~12 KiB both happen); the rest is the stream.
 */
#include <errno.h>
#include <string.h>

#include "proxy/wsframe.h"
#include "tests/fuzz/fuzz.h"

#define NO_ERR SIZE_MAX

static const char head101[] = "HTTP/1.1 101 Switching Protocols\r\n"
			      "Upgrade: websocket\r\n"
			      "Connection: Upgrade\r\n"
			      "\r\n";

/*
 * The reference: BND[o] = 1 when a Close may be injected after the first o
 * bytes (BND has N + 1 entries). Returns the index of the byte at which the
 * stream is first not WebSocket, or NO_ERR.
 */
static size_t ref_run(const uint8_t *s, size_t n, uint8_t *bnd)
{
	static const char status[] = "HTTP/1.1 101";
	int in_msg = 0, closed = 0;
	size_t i = 0;

	memset(bnd, 0, n + 1);
	for (size_t k = 0; k < sizeof(status) - 1; k++, i++) {
		if (i >= n)
			return NO_ERR;
		if (s[i] != (uint8_t)status[k])
			return i;
	}
	if (i >= n)
		return NO_ERR;
	if (s[i] != ' ' && s[i] != '\r')
		return i;
	/* up to the first CRLFCRLF, with no CR or LF out of a CRLF pair */
	for (;; i++) {
		if (i >= n)
			return NO_ERR;
		if (i >= WSFRAME_HEAD_MAX)
			return i;
		if (s[i] == '\n' && s[i - 1] != '\r')
			return i;
		if (s[i - 1] == '\r' && s[i] != '\n')
			return i;
		if (s[i] == '\n' && !memcmp(s + i - 3, "\r\n\r", 3))
			break;
	}
	bnd[++i] = 1;

	for (;;) {
		unsigned fin, op, control, masked, l7;
		uint64_t len = 0;

		if (i >= n)
			return NO_ERR;
		fin = s[i] & 0x80;
		op = s[i] & 0x0f;
		control = op >= 8;
		if (closed)
			return i;
		if (control) {
			if (op > 0xa || !fin)
				return i;
			closed = op == 8;
		} else if (op == 0) {
			if (!in_msg)
				return i;
			in_msg = !fin;
		} else if (op == 1 || op == 2) {
			if (in_msg)
				return i;
			in_msg = !fin;
		} else {
			return i;
		}
		if (++i >= n)
			return NO_ERR;
		masked = s[i] >> 7;
		l7 = s[i] & 0x7f;
		if (control && l7 > 125)
			return i;
		i++;
		if (l7 < 126) {
			len = l7;
		} else {
			for (unsigned k = 0; k < (l7 == 126 ? 2u : 8u); k++, i++) {
				if (i >= n)
					return NO_ERR;
				len = len << 8 | s[i];
			}
			if (len >> 63)
				return i - 1;
		}
		/* I is at most the input's size and LEN below 2^63: no overflow */
		if (i + (masked ? 4 : 0) + len > n)
			return NO_ERR;
		i += (masked ? 4 : 0) + len;
		bnd[i] = !in_msg && !closed;
	}
}

static int same_state(const struct wsframe *a, const struct wsframe *b)
{
	return a->left == b->left && a->head == b->head && a->phase == b->phase &&
	       a->need == b->need && a->match == b->match && a->masked == b->masked &&
	       a->control == b->control && a->in_message == b->in_message &&
	       a->closed == b->closed;
}

/* Feed S[A..A+K) from an exact-size heap copy. */
static int feed_copy(struct wsframe *t, const uint8_t *s, size_t a, size_t k)
{
	uint8_t *chunk = malloc(k ? k : 1);
	int rc;

	FUZZ_CHECK(chunk);
	memcpy(chunk, s + a, k);
	rc = wsframe_feed(t, chunk, k);
	free(chunk);
	return rc;
}

/* After the first O bytes: what the reference says the tracker must answer. */
static void check_at(const struct wsframe *t, int rc, size_t o, size_t err, const uint8_t *bnd)
{
	int dead = err != NO_ERR && err < o;

	FUZZ_CHECK(rc == (dead ? -EPROTO : 0));
	FUZZ_CHECK(wsframe_at_boundary(t) == (dead ? 0 : bnd[o]));
}

static void check_close(const uint8_t *s, size_t n)
{
	uint8_t *out = malloc(WSFRAME_CLOSE_MAX);
	char *reason = malloc(n + 1);
	uint16_t code = n >= 2 ? (uint16_t)(s[0] << 8 | s[1]) : 1000;
	size_t len, rlen, nr;
	struct wsframe t;

	FUZZ_CHECK(out && reason);
	memcpy(reason, s, n);
	reason[n] = 0;
	/* the reason: whatever follows the code, up to a NUL */
	memmove(reason, reason + (n >= 2 ? 2 : 0), n + 1 - (n >= 2 ? 2 : 0));
	rlen = strlen(reason);
	len = wsframe_close(out, code, n % 3 ? reason : NULL);
	if (!(n % 3))
		rlen = 0;
	FUZZ_CHECK(out[0] == 0x88);
	if (!code) {
		FUZZ_CHECK(len == 2 && out[1] == 0);
		goto out;
	}
	FUZZ_CHECK(len >= 4 && len <= WSFRAME_CLOSE_MAX);
	nr = len - 4;
	FUZZ_CHECK(out[1] == 2 + nr && out[2] == code >> 8 && out[3] == (code & 0xff));
	FUZZ_CHECK(!memcmp(out + 4, reason, nr));
	if (rlen <= WSFRAME_REASON_MAX) {
		FUZZ_CHECK(nr == rlen);
	} else {
		/* cut at the last sequence start at or before byte 123 */
		FUZZ_CHECK(nr == 0 || ((uint8_t)reason[nr] & 0xc0) != 0x80);
		for (size_t j = nr + 1; j <= WSFRAME_REASON_MAX; j++)
			FUZZ_CHECK(((uint8_t)reason[j] & 0xc0) == 0x80);
	}
	/* the tracker reads it back as one whole Close */
	wsframe_init(&t);
	FUZZ_CHECK(feed_copy(&t, (const uint8_t *)head101, 0, sizeof(head101) - 1) == 0);
	FUZZ_CHECK(feed_copy(&t, out, 0, len) == 0);
	FUZZ_CHECK(t.closed && !wsframe_at_boundary(&t));
out:
	free(reason);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sizes;
	size_t nsizes, n, err, a, c;
	struct wsframe *bytewise, t, z = { 0 };
	uint8_t *s, *bnd, flags;
	int rc, moved;

	if (size < 1)
		return 0;
	flags = data[0];
	nsizes = flags & 0x0f;
	if (size < 1 + nsizes)
		return 0;
	sizes = data + 1;
	data += 1 + nsizes;
	size -= 1 + nsizes;

	/* the stream, with the canned head in front when asked */
	n = size + (flags & 0x10 ? sizeof(head101) - 1 : 0);
	s = malloc(n ? n : 1);
	bnd = malloc(n + 1);
	bytewise = malloc((n + 1) * sizeof(*bytewise));
	FUZZ_CHECK(s && bnd && bytewise);
	memcpy(s, head101, n - size);
	memcpy(s + n - size, data, size);
	err = ref_run(s, n, bnd);

	/* byte by byte, keeping the state after each byte */
	wsframe_init(&bytewise[0]);
	check_at(&bytewise[0], 0, 0, err, bnd);
	for (size_t o = 1; o <= n; o++) {
		bytewise[o] = bytewise[o - 1];
		rc = feed_copy(&bytewise[o], s, o - 1, 1);
		check_at(&bytewise[o], rc, o, err, bnd);
	}

	/* the whole stream at once, into a zero-initialised tracker */
	rc = feed_copy(&z, s, 0, n);
	check_at(&z, rc, n, err, bnd);
	FUZZ_CHECK(wsframe_feed(&z, NULL, 0) == (err != NO_ERR ? -EPROTO : 0));
	if (err == NO_ERR)
		FUZZ_CHECK(same_state(&z, &bytewise[n]));

	/*
	 * In the fuzzer's chunks: the sizes in turn, at least once each, until
	 * the stream is used up; a round of sizes that are all 0 is followed by
	 * the rest of the stream in one chunk.
	 */
	if (nsizes) {
		wsframe_init(&t);
		for (a = 0, c = 0, moved = 0; a < n || c < nsizes; c++) {
			uint8_t sz = sizes[c % nsizes];
			size_t k = sz < 128 ? sz : (size_t)(sz - 127) * 97;

			if (c && c % nsizes == 0) {
				if (!moved)
					k = n - a;
				moved = 0;
			}
			if (k > n - a)
				k = n - a;
			moved |= k != 0;
			rc = feed_copy(&t, s, a, k);
			a += k;
			check_at(&t, rc, a, err, bnd);
			if (err == NO_ERR || a <= err)
				FUZZ_CHECK(same_state(&t, &bytewise[a]));
		}
	}

	check_close(data, size);
	free(bytewise);
	free(bnd);
	free(s);
	return 0;
}
