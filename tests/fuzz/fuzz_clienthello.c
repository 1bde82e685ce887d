// SPDX-License-Identifier: MIT
/*
 * fuzz_clienthello — proxy/clienthello.c on arbitrary bytes, checking what
 * clienthello.h promises:
 *   - every result on its own: a known status; OK with sni and alpn
 *     NUL-terminated, '!'..'~' only, sni lowercase, only CH_RESUME_* bits
 *     and no session-id resumption alongside TLS 1.3; otherwise *ci zero but
 *     for need, need only on NEED_MORE, beyond the bytes offered and within
 *     CH_MAX, and no NEED_MORE once CH_MAX bytes are there;
 *   - left to right: a prefix whose answer is not NEED_MORE has the answer
 *     (and the info) of the whole input and of the input with bytes
 *     appended; a prefix's need is never beyond where the hello ends;
 *   - records do not matter: an OK stream's records, checked here by a
 *     walker of their own, hold exactly the hello, and the same message in
 *     other records parses the same.
 *
 * Input: byte 0 = 22 (a handshake record): the bytes are the stream as it
 * comes. Otherwise the rest is the body of a ClientHello message, wrapped
 * here in a handshake header and in records of byte 0 bytes (0: up to
 * 16384), so the fuzzer reaches the extensions without finding valid
 * framing first; it is also parsed in the largest records, which must give
 * the same answer while both streams fit in CH_MAX.
 */
#include <string.h>

#include "proxy/clienthello.h"
#include "tests/fuzz/fuzz.h"

/* room for a body of 16 KiB in 1-byte records */
#define STREAM_MAX (6 * 65536)

static uint8_t stream_a[STREAM_MAX], stream_b[STREAM_MAX], msg[STREAM_MAX];

static void check_one(size_t len, enum ch_result res, const struct ch_info *ci)
{
	static const struct ch_info zero;
	struct ch_info z = *ci;

	FUZZ_CHECK(res >= CH_OK && res <= CH_TOO_BIG);
	if (res != CH_OK) {
		z.need = 0;
		FUZZ_CHECK(!memcmp(&z, &zero, sizeof(z)));
		if (res == CH_NEED_MORE)
			FUZZ_CHECK(len < CH_MAX &&
				   (!ci->need || (ci->need > len && ci->need <= CH_MAX)));
		else
			FUZZ_CHECK(!ci->need);
		return;
	}
	FUZZ_CHECK(!ci->need);
	FUZZ_CHECK(
	    !(ci->resume & ~(unsigned)(CH_RESUME_PSK | CH_RESUME_TICKET | CH_RESUME_SESSION_ID)));
	FUZZ_CHECK(ci->tls13 <= 1);
	FUZZ_CHECK(!(ci->tls13 && (ci->resume & CH_RESUME_SESSION_ID)));
	FUZZ_CHECK(clienthello_resumes(ci) == !!ci->resume);
	FUZZ_CHECK(memchr(ci->sni, 0, sizeof(ci->sni)));
	FUZZ_CHECK(memchr(ci->alpn, 0, sizeof(ci->alpn)));
	for (const char *p = ci->sni; *p; p++)
		FUZZ_CHECK(*p >= '!' && *p <= '~' && !(*p >= 'A' && *p <= 'Z'));
	for (const char *p = ci->alpn; *p; p++)
		FUZZ_CHECK(*p >= '!' && *p <= '~');
}

/* Parse the first LEN bytes of S from an exact-size heap copy. */
static enum ch_result parse(const uint8_t *s, size_t len, struct ch_info *ci)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum ch_result res;

	FUZZ_CHECK(copy);
	memcpy(copy, s, len);
	memset(ci, 0xa5, sizeof(*ci));
	res = clienthello_parse(copy, len, ci);
	free(copy);
	check_one(len, res, ci);
	return res;
}

static int same(enum ch_result ra, const struct ch_info *a, enum ch_result rb,
		const struct ch_info *b)
{
	if (ra != rb)
		return 0;
	if (ra != CH_OK)
		return 1;
	return a->resume == b->resume && a->tls13 == b->tls13 && !strcmp(a->sni, b->sni) &&
	       !strcmp(a->alpn, b->alpn);
}

/* M in handshake records of at most REC bytes. */
static size_t frame(const uint8_t *m, size_t len, size_t rec, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i += rec) {
		size_t k = len - i < rec ? len - i : rec;

		out[n++] = 22;
		out[n++] = 3;
		out[n++] = 1;
		out[n++] = (uint8_t)(k >> 8);
		out[n++] = (uint8_t)k;
		memcpy(out + n, m + i, k);
		n += k;
	}
	return n;
}

/*
 * Prefixes of S (all of a short one, about 64 of a long one) against the
 * answer RES/CI for all N bytes: once not NEED_MORE, the same; each need
 * within where the hello ends (END, when known, else SIZE_MAX).
 */
static void check_prefixes(const uint8_t *s, size_t n, enum ch_result res, const struct ch_info *ci,
			   size_t end)
{
	size_t step = n <= 128 ? 1 : n / 48;
	struct ch_info p;
	enum ch_result r;
	int settled = 0;

	for (size_t k = 0; k < n; k += step) {
		r = parse(s, k, &p);
		if (r == CH_NEED_MORE) {
			FUZZ_CHECK(!settled);
			FUZZ_CHECK(p.need <= end);
			continue;
		}
		settled = 1;
		FUZZ_CHECK(same(r, &p, res, ci));
	}
}

/*
 * The handshake message in an OK stream, by a walker of its own: records of
 * type 22, version 3.1-3.4, length 1..16640, the last one ending exactly
 * where the message does, all within CH_MAX. Returns the stream bytes used.
 */
static size_t reassemble(const uint8_t *s, size_t n, size_t *msg_len)
{
	size_t pos = 0, m = 0, want = SIZE_MAX, rlen, k;

	while (m < want) {
		FUZZ_CHECK(pos + 5 <= n);
		FUZZ_CHECK(s[pos] == 22 && s[pos + 1] == 3 && s[pos + 2] >= 1 && s[pos + 2] <= 4);
		rlen = (size_t)s[pos + 3] << 8 | s[pos + 4];
		FUZZ_CHECK(rlen >= 1 && rlen <= 16384 + 256);
		pos += 5;
		FUZZ_CHECK(pos + rlen <= n);
		k = rlen < want - m ? rlen : want - m;
		FUZZ_CHECK(k == rlen);
		memcpy(msg + m, s + pos, k);
		m += k;
		pos += rlen;
		if (want == SIZE_MAX && m >= 4)
			want = 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
	}
	FUZZ_CHECK(m == want && msg[0] == 1);
	FUZZ_CHECK(pos <= CH_MAX);
	*msg_len = m;
	return pos;
}

/* The message in records of REC: the answer RES/CI if it fits, else TOO_BIG. */
static void check_reframed(size_t msg_len, size_t rec, enum ch_result res, const struct ch_info *ci)
{
	size_t n = frame(msg, msg_len, rec, stream_b);
	struct ch_info p;
	enum ch_result r = parse(stream_b, n, &p);

	if (n <= CH_MAX)
		FUZZ_CHECK(same(r, &p, res, ci));
	else
		FUZZ_CHECK(r == CH_TOO_BIG || (r == CH_BAD && res == CH_BAD));
}

static void raw_stream(const uint8_t *data, size_t size)
{
	struct ch_info ci, p;
	enum ch_result res, r;
	size_t end = SIZE_MAX, msg_len;
	uint8_t *twice;

	res = parse(data, size, &ci);
	if (res == CH_OK) {
		end = reassemble(data, size, &msg_len);
		/* the hello is complete exactly at END: one byte less needs exactly END */
		r = parse(data, end - 1, &p);
		FUZZ_CHECK(r == CH_NEED_MORE && p.need == end);
		check_reframed(msg_len, 1 + (size + data[size - 1]) % 300, res, &ci);
		check_reframed(msg_len, 16384, res, &ci);
	}
	check_prefixes(data, size, res, &ci, end);

	/* more bytes after a final answer change nothing */
	twice = malloc(2 * size);
	FUZZ_CHECK(twice);
	memcpy(twice, data, size);
	memcpy(twice + size, data, size);
	r = parse(twice, 2 * size, &p);
	FUZZ_CHECK(res == CH_NEED_MORE || same(r, &p, res, &ci));
	free(twice);
}

static void body(uint8_t rec, const uint8_t *data, size_t size)
{
	struct ch_info ca, cb, p;
	enum ch_result ra, rb;
	size_t na, nb;

	msg[0] = 1;
	msg[1] = (uint8_t)(size >> 16);
	msg[2] = (uint8_t)(size >> 8);
	msg[3] = (uint8_t)size;
	memcpy(msg + 4, data, size);
	na = frame(msg, size + 4, rec ? rec : 16384, stream_a);
	nb = frame(msg, size + 4, 16384, stream_b);
	ra = parse(stream_a, na, &ca);
	rb = parse(stream_b, nb, &cb);
	/* whole streams of well-formed records */
	FUZZ_CHECK(ra != CH_NEED_MORE && ra != CH_NOT_TLS);
	FUZZ_CHECK(rb != CH_NEED_MORE && rb != CH_NOT_TLS);
	if (na <= CH_MAX)
		FUZZ_CHECK(same(ra, &ca, rb, &cb));
	else
		FUZZ_CHECK(ra == CH_TOO_BIG || (ra == CH_BAD && rb == CH_BAD));
	FUZZ_CHECK(nb <= CH_MAX || rb == CH_TOO_BIG);
	if (ra == CH_OK) {
		FUZZ_CHECK(parse(stream_a, na - 1, &p) == CH_NEED_MORE && p.need == na);
		check_prefixes(stream_a, na, ra, &ca, na);
	} else {
		check_prefixes(stream_a, na, ra, &ca, SIZE_MAX);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ch_info ci;

	if (!size) {
		FUZZ_CHECK(parse(data, 0, &ci) == CH_NEED_MORE && !ci.need);
		return 0;
	}
	if (data[0] == 22) {
		raw_stream(data, size);
		return 0;
	}
	FUZZ_CHECK(parse(data, size, &ci) == CH_NOT_TLS);
	if (size - 1 <= 65536)
		body(data[0], data + 1, size - 1);
	return 0;
}
