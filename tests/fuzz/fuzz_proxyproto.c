// SPDX-License-Identifier: MIT
/*
 * fuzz_proxyproto — proxy/proxyproto.c, both ways, checking what
 * proxyproto.h promises:
 *   - parse on arbitrary bytes: -1, 0 or a length within the input; a
 *     header's addresses are both AF_INET, both AF_INET6 or both AF_UNSPEC;
 *     a v1 header ends in CRLF within PP_V1_MAX bytes, a v2 header is 16
 *     bytes plus its length field. Built again from the addresses it gave,
 *     a TCP header parses to the same addresses, and is the same bytes when
 *     the input was already canonical (v1 TCP4; v2 without TLVs).
 *   - Prefixes: below a header's length every prefix needs more, from it
 *     on every one gives the same header; once a prefix is malformed every
 *     longer one is; "need more" never turns into a header shorter than
 *     what was offered.
 *   - build from addresses taken from the input (IPv4, IPv6, IPv4-mapped,
 *     and mixes): parse(build(x)) == x with mapped addresses announced as
 *     IPv4 (unless beside a real IPv6 one), and a mix of IPv4 and real IPv6
 *     refused; one byte less room than the header needs is refused too.
 *
 * Input: the whole input is parsed; its first 38 bytes, when there are
 * that many, also choose a header to build: byte 0 bit 0 the version, bits
 * 1-2 the families (IPv4, IPv6, both mapped, one mapped or one IPv4 beside
 * IPv6), then 16 bytes of source, 16 of destination, 2 + 2 of ports, 1 that
 * picks which end is the odd one out in a mix.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/proxyproto.h"
#include "tests/fuzz/fuzz.h"

/* Parse the first LEN bytes of DATA from an exact-size heap copy. */
static int parse_n(const uint8_t *data, size_t len, struct sockaddr_storage *src,
		   struct sockaddr_storage *dst)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	FUZZ_CHECK(copy);
	memcpy(copy, data, len);
	rc = proxyproto_parse(copy, len, src, dst);
	free(copy);
	return rc;
}

static int same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return a->ss_family == AF_UNSPEC;
}

/* What one header must satisfy on its own. */
static void check_header(const uint8_t *d, size_t size, int rc, const struct sockaddr_storage *s,
			 const struct sockaddr_storage *t)
{
	size_t n = (size_t)rc;
	uint8_t out[PP_MAX];
	size_t built;

	FUZZ_CHECK(n <= size);
	FUZZ_CHECK(s->ss_family == t->ss_family);
	FUZZ_CHECK(s->ss_family == AF_UNSPEC || s->ss_family == AF_INET ||
		   s->ss_family == AF_INET6);
	if (d[0] == 'P') {
		FUZZ_CHECK(n >= 15 && n <= PP_V1_MAX);
		FUZZ_CHECK(!memcmp(d, "PROXY ", 6));
		FUZZ_CHECK(d[n - 2] == '\r' && d[n - 1] == '\n');
		/* the first CRLF ends it */
		for (size_t i = 0; i + 2 < n; i++)
			FUZZ_CHECK(!(d[i] == '\r' && d[i + 1] == '\n'));
	} else {
		FUZZ_CHECK(n >= PP_V2_HDR && n == PP_V2_HDR + ((size_t)d[14] << 8 | d[15]));
		FUZZ_CHECK((d[12] & 0xf0) == 0x20);
	}
	if (s->ss_family == AF_UNSPEC)
		return;
	built = proxyproto_build(d[0] == 'P' ? PP_V1 : PP_V2, (const struct sockaddr *)s,
				 (const struct sockaddr *)t, out, sizeof(out));
	FUZZ_CHECK(built > 0);
	{
		struct sockaddr_storage s2, t2;

		FUZZ_CHECK(parse_n(out, built, &s2, &t2) == (int)built);
		FUZZ_CHECK(same(&s2, s) && same(&t2, t));
	}
	/* canonical inputs come back byte for byte */
	if ((d[0] == 'P' && s->ss_family == AF_INET) ||
	    (d[0] != 'P' && n == (s->ss_family == AF_INET ? 28u : 52u)))
		FUZZ_CHECK(built == n && !memcmp(out, d, n));
}

static void check_parse(const uint8_t *data, size_t size)
{
	struct sockaddr_storage s, t, ps, pt;
	int rc, r, bad = 0;
	size_t step;

	rc = parse_n(data, size, &s, &t);
	FUZZ_CHECK(rc >= -1);
	if (rc > 0) {
		check_header(data, size, rc, &s, &t);
		FUZZ_CHECK(parse_n(data, (size_t)rc, &ps, &pt) == rc);
		FUZZ_CHECK(same(&ps, &s) && same(&pt, &t));
		FUZZ_CHECK(parse_n(data, (size_t)rc - 1, NULL, NULL) == 0);
	} else if (rc == 0 && size) {
		/* only as long as a header could still be that long */
		if (data[0] == 'P')
			FUZZ_CHECK(size < PP_V1_MAX);
		else
			FUZZ_CHECK(size < PP_V2_HDR + 65535);
	}

	/* Prefixes: every one of a short input, about 64 of a long one. */
	step = size <= 256 ? 1 : size / 64;
	for (size_t k = 0; k < size; k += step) {
		r = parse_n(data, k, &ps, &pt);
		if (rc > 0 && k >= (size_t)rc) {
			FUZZ_CHECK(r == rc && same(&ps, &s) && same(&pt, &t));
		} else if (rc >= 0) {
			FUZZ_CHECK(r == 0);
		} else {
			FUZZ_CHECK(r == 0 || r == -1);
			FUZZ_CHECK(!bad || r == -1);
			bad |= r == -1;
		}
	}
}

/* ---- building ----------------------------------------------------------------- */

enum { FAM_V4, FAM_V6, FAM_MAPPED, FAM_MIX };

static void set4(struct sockaddr_storage *ss, const uint8_t *a, const uint8_t *p)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	memcpy(&in->sin_addr, a, 4);
	memcpy(&in->sin_port, p, 2);
}

static void set6(struct sockaddr_storage *ss, const uint8_t *a, const uint8_t *p, int mapped)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_addr, a, 16);
	if (mapped) {
		memset(in6->sin6_addr.s6_addr, 0, 10);
		in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
	}
	memcpy(&in6->sin6_port, p, 2);
}

/* SS as announced: an IPv4-mapped address as IPv4, unless KEEP. */
static void announced(struct sockaddr_storage *want, const struct sockaddr_storage *ss, int keep)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	*want = *ss;
	if (ss->ss_family == AF_INET6 && !keep && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		set4(want, in6->sin6_addr.s6_addr + 12, (const uint8_t *)&in6->sin6_port);
}

static int is_real6(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	return ss->ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
}

static void check_build(const uint8_t *d)
{
	enum pp_version v = d[0] & 1 ? PP_V2 : PP_V1;
	int fam = (d[0] >> 1) & 3, odd = d[37] & 1, keep;
	struct sockaddr_storage s, t, ws, wt, ps, pt;
	uint8_t out[PP_MAX];
	size_t n;

	switch (fam) {
	case FAM_V4:
		set4(&s, d + 1, d + 33);
		set4(&t, d + 17, d + 35);
		break;
	case FAM_V6:
		set6(&s, d + 1, d + 33, 0);
		set6(&t, d + 17, d + 35, 0);
		break;
	case FAM_MAPPED:
		set6(&s, d + 1, d + 33, 1);
		set6(&t, d + 17, d + 35, 1);
		break;
	default:
		/* byte 37 bit 1: the other end is mapped (fine) or IPv4 (refused) */
		set6(&s, d + 1, d + 33, 0);
		if (d[37] & 2)
			set6(&t, d + 17, d + 35, 1);
		else
			set4(&t, d + 17, d + 35);
		if (odd) {
			struct sockaddr_storage x = s;

			s = t;
			t = x;
		}
		break;
	}
	/* a mapped end stays IPv6 beside a real IPv6 one */
	keep = is_real6(&s) || is_real6(&t);
	announced(&ws, &s, keep);
	announced(&wt, &t, keep);

	n = proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&t, out, sizeof(out));
	/* IPv4 beside real IPv6 cannot be announced */
	if (ws.ss_family != wt.ss_family) {
		FUZZ_CHECK(n == 0);
		return;
	}
	FUZZ_CHECK(n > 0 && n <= PP_MAX);
	if (v == PP_V1)
		FUZZ_CHECK(n <= PP_V1_MAX);
	else
		FUZZ_CHECK(n == (ws.ss_family == AF_INET ? 28u : 52u));
	FUZZ_CHECK(parse_n(out, n, &ps, &pt) == (int)n);
	FUZZ_CHECK(same(&ps, &ws) && same(&pt, &wt));
	for (size_t k = 0; k < n; k++)
		FUZZ_CHECK(parse_n(out, k, NULL, NULL) == 0);
	FUZZ_CHECK(proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&t, out, n) == n);
	FUZZ_CHECK(proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&t, out, n - 1) ==
		   0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(data, size);
	if (size >= 38)
		check_build(data);
	return 0;
}
