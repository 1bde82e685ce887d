// SPDX-License-Identifier: MIT
/*
 * PROXY protocol headers: the spec's examples byte for byte, round trips
 * v1/v2 x IPv4/IPv6/IPv4-mapped, every truncation of a valid header is
 * "need more", malformed headers and every longer input stay malformed,
 * the builder's limits.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxyproto.h"
#include "tests/unit/test.h"
#include "userspace/config.h"

_Static_assert((int)CFG_PP_OFF == (int)PP_OFF && (int)CFG_PP_V1 == (int)PP_V1 &&
		       (int)CFG_PP_V2 == (int)PP_V2,
	       "the config stores enum pp_version values");

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct sockaddr_storage sa(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
	} else {
		fprintf(stderr, "bad test address %s\n", ip);
		abort();
	}
	return ss;
}

/* Parse the first LEN bytes of S from an exact-size heap copy. */
static int parse_n(const void *s, size_t len, struct sockaddr_storage *src,
		   struct sockaddr_storage *dst)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, s, len);
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

/*
 * H (LEN bytes) is a whole valid header: parsed as LEN with SRC and DST,
 * also with bytes after it; every shorter prefix needs more.
 */
static void check_valid(const void *h, size_t len, const struct sockaddr_storage *src,
			const struct sockaddr_storage *dst)
{
	struct sockaddr_storage s, d;
	uint8_t buf[512];
	int rc;

	memset(&s, 0xa5, sizeof(s));
	memset(&d, 0xa5, sizeof(d));
	rc = parse_n(h, len, &s, &d);
	CHECK_EQ(rc, (long long)len);
	if (rc != (int)len)
		return;
	CHECK(same(&s, src));
	CHECK(same(&d, dst));
	CHECK(len + 8 <= sizeof(buf));
	if (len + 8 > sizeof(buf))
		return;
	/* what follows the header is the client's: never looked at */
	memcpy(buf, h, len);
	memcpy(buf + len, "\r\n\0PROXY", 8);
	CHECK_EQ(parse_n(buf, len + 8, &s, &d), (long long)len);
	CHECK(same(&s, src) && same(&d, dst));
	CHECK_EQ(parse_n(buf, len, NULL, NULL), (long long)len);
	for (size_t k = 0; k < len; k++) {
		rc = parse_n(h, k, &s, &d);
		if (rc != 0) {
			fprintf(stderr, "prefix %zu of %zu: %d\n", k, len, rc);
			CHECK_EQ(rc, 0);
		}
	}
}

/* H is malformed: so is anything that starts with it; no prefix is a header. */
static void check_bad(const void *h, size_t len, const char *what)
{
	uint8_t buf[256];
	int rc;

	rc = parse_n(h, len, NULL, NULL);
	if (rc != -1) {
		fprintf(stderr, "malformed %s: %d\n", what, rc);
		CHECK_EQ(rc, -1);
	}
	for (size_t k = 0; k < len; k++) {
		rc = parse_n(h, k, NULL, NULL);
		if (rc > 0) {
			fprintf(stderr, "malformed %s: prefix %zu gives %d\n", what, k, rc);
			CHECK(rc <= 0);
		}
	}
	if (len + 16 <= sizeof(buf)) {
		memcpy(buf, h, len);
		memcpy(buf + len, "\r\n1 2 3\r\n\r\n\r\n\r\n", 16);
		CHECK_EQ(parse_n(buf, len + 16, NULL, NULL), -1);
	}
}

static void check_bad_str(const char *s)
{
	check_bad(s, strlen(s), s);
}

/* ---- the spec's examples ------------------------------------------------------ */

static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static void test_v1_examples(void)
{
	static const char ex[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
	static const char max4[] = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
	static const char max6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
				   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	static const char unk[] = "PROXY UNKNOWN\r\n";
	static const char unk_max[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
				      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct sockaddr_storage s, d, none;
	uint8_t out[PP_MAX];
	size_t n;

	memset(&none, 0, sizeof(none));
	s = sa("192.168.0.1", 56324);
	d = sa("192.168.0.11", 443);
	n = proxyproto_build(PP_V1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	CHECK_EQ(n, strlen(ex));
	CHECK(n == strlen(ex) && !memcmp(out, ex, n));
	check_valid(ex, strlen(ex), &s, &d);

	s = sa("255.255.255.255", 65535);
	d = sa("255.255.255.255", 65535);
	CHECK_EQ(strlen(max4), 56);
	n = proxyproto_build(PP_V1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	CHECK(n == 56 && !memcmp(out, max4, n));
	check_valid(max4, 56, &s, &d);

	s = sa("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	d = s;
	CHECK_EQ(strlen(max6), 104);
	n = proxyproto_build(PP_V1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	CHECK(n == 104 && !memcmp(out, max6, n));
	check_valid(max6, 104, &s, &d);

	CHECK_EQ(strlen(unk), 15);
	check_valid(unk, 15, &none, &none);
	CHECK_EQ(strlen(unk_max), PP_V1_MAX);
	check_valid(unk_max, PP_V1_MAX, &none, &none);
}

/* IPv6 in v1 is written as RFC 5952 says, in hex groups only. */
static void test_v1_ipv6_text(void)
{
	static const struct {
		const char *src, *dst, *line;
	} cases[] = {
		{ "2001:db8::1", "::", "PROXY TCP6 2001:db8::1 :: 1 2\r\n" },
		{ "2001:0db8:0000:0000:0000:0000:0000:0001", "::1",
		  "PROXY TCP6 2001:db8::1 ::1 1 2\r\n" },
		{ "1:0:2:0:3:0:4:0", "1::", "PROXY TCP6 1:0:2:0:3:0:4:0 1:: 1 2\r\n" },
		/* the longest run of zeros, the first of two as long */
		{ "1:0:0:2:0:0:3:4", "1:0:0:2:0:0:0:3",
		  "PROXY TCP6 1::2:0:0:3:4 1:0:0:2::3 1 2\r\n" },
		{ "FE80::ABCD", "1:2:3:4:5:6:7:8",
		  "PROXY TCP6 fe80::abcd 1:2:3:4:5:6:7:8 1 2\r\n" },
		/* no dotted tail, as inet_ntop would write */
		{ "::ffff:10.0.0.1", "2001:db8::2", "PROXY TCP6 ::ffff:a00:1 2001:db8::2 1 2\r\n" },
		{ "::1.2.3.4", "0:0:1::", "PROXY TCP6 ::102:304 0:0:1:: 1 2\r\n" },
	};
	uint8_t out[PP_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage s = sa(cases[i].src, 1), d = sa(cases[i].dst, 2);
		size_t n;

		n = proxyproto_build(PP_V1, (struct sockaddr *)&s, (struct sockaddr *)&d, out,
				     sizeof(out));

		if (n != strlen(cases[i].line) || memcmp(out, cases[i].line, n)) {
			fprintf(stderr, "built \"%.*s\", want \"%s\"\n", (int)n, (char *)out,
				cases[i].line);
			CHECK(0);
		}
	}
}

static void test_v2_examples(void)
{
	struct sockaddr_storage s, d, none;
	uint8_t out[PP_MAX], want[64];
	size_t n;

	memset(&none, 0, sizeof(none));
	/* TCP over IPv4: 172.19.0.1:42578 -> 172.19.0.3:80 */
	memcpy(want, sig, 12);
	memcpy(want + 12, "\x21\x11\x00\x0c"
			  "\xac\x13\x00\x01\xac\x13\x00\x03"
			  "\xa6\x52\x00\x50", 16);
	s = sa("172.19.0.1", 42578);
	d = sa("172.19.0.3", 80);
	n = proxyproto_build(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	CHECK(n == 28 && !memcmp(out, want, 28));
	check_valid(want, 28, &s, &d);

	/* TCP over IPv6: 2001:db8::1:443 -> 2001:db8::2:8080 */
	memcpy(want + 12, "\x21\x21\x00\x24", 4);
	memcpy(want + 16, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	memcpy(want + 32, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02", 16);
	memcpy(want + 48, "\x01\xbb\x1f\x90", 4);
	s = sa("2001:db8::1", 443);
	d = sa("2001:db8::2", 8080);
	n = proxyproto_build(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	CHECK(n == 52 && !memcmp(out, want, 52));
	check_valid(want, 52, &s, &d);

	/* LOCAL: no addresses, and whatever block follows is skipped */
	memcpy(want + 12, "\x20\x00\x00\x00", 4);
	check_valid(want, 16, &none, &none);
	memcpy(want + 12, "\x20\x11\x00\x05" "abcde", 9);
	check_valid(want, 21, &none, &none);
	memcpy(want + 12, "\x20\xff\x00\x01" "x", 5);
	check_valid(want, 17, &none, &none);

	/* the spec's other families under PROXY: accepted, no addresses */
	memcpy(want + 12, "\x21\x00\x00\x00", 4);
	check_valid(want, 16, &none, &none);
	memcpy(want + 12, "\x21\x12\x00\x0c" "123456789012", 16);
	check_valid(want, 28, &none, &none);
	memcpy(want + 12, "\x21\x22\x00\x24", 4);
	memset(want + 16, 7, 36);
	check_valid(want, 52, &none, &none);
	for (uint8_t fam = 0x31; fam <= 0x32; fam++) {
		uint8_t unix_hdr[PP_V2_HDR + 216];

		memcpy(unix_hdr, sig, 12);
		unix_hdr[12] = 0x21;
		unix_hdr[13] = fam;
		unix_hdr[14] = 0;
		unix_hdr[15] = 216;
		memset(unix_hdr + 16, '/', 216);
		CHECK_EQ(parse_n(unix_hdr, sizeof(unix_hdr), NULL, NULL),
			 (long long)sizeof(unix_hdr));
		CHECK_EQ(parse_n(unix_hdr, sizeof(unix_hdr) - 1, NULL, NULL), 0);
	}
}

static void test_v2_tlvs(void)
{
	struct sockaddr_storage s = sa("10.0.0.1", 1), d = sa("10.0.0.2", 2);
	uint8_t h[PP_MAX + 32], *big;
	size_t n;

	n = proxyproto_build(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d, h, sizeof(h));
	CHECK_EQ(n, 28);
	/* a NOOP TLV of 4 bytes, then an empty AUTHORITY */
	memcpy(h + 28, "\x04\x00\x04" "abcd" "\x02\x00\x00", 10);
	h[15] = 12 + 10;
	check_valid(h, 38, &s, &d);
	/* a TLV longer than the header */
	h[30] = 8;
	check_bad(h, 38, "TLV past the end");
	h[30] = 4;
	/* a TLV head cut by the length */
	h[15] = 12 + 9;
	check_bad(h, 37, "TLV head cut");
	h[15] = 12 + 8;
	check_bad(h, 36, "TLV head cut");
	/* the largest length the field allows */
	big = calloc(1, PP_V2_HDR + 65535);
	CHECK(big != NULL);
	if (!big)
		return;
	memcpy(big, h, 28);
	big[14] = 0xff;
	big[15] = 0xff;
	big[28] = 0xe0;
	big[29] = (65535 - 12 - 3) >> 8;
	big[30] = (65535 - 12 - 3) & 0xff;
	CHECK_EQ(parse_n(big, PP_V2_HDR + 65535, NULL, NULL), PP_V2_HDR + 65535);
	CHECK_EQ(parse_n(big, PP_V2_HDR + 65534, NULL, NULL), 0);
	free(big);
}

/* ---- round trips ------------------------------------------------------------------ */

/* SRC -> DST through V; announced as WANT_S -> WANT_D (NULL: as given). */
static void round_trip(enum pp_version v, const char *src, uint16_t sp, const char *dst,
		       uint16_t dp, const char *want_s, const char *want_d)
{
	struct sockaddr_storage s = sa(src, sp), d = sa(dst, dp), ws, wd;
	uint8_t out[PP_MAX];
	size_t n;

	ws = want_s ? sa(want_s, sp) : s;
	wd = want_d ? sa(want_d, dp) : d;
	n = proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	CHECK(n > 0 && n <= PP_MAX);
	if (!n) {
		fprintf(stderr, "build v%d %s %s failed\n", v, src, dst);
		return;
	}
	if (v == PP_V1) {
		CHECK(n <= PP_V1_MAX && !memcmp(out, "PROXY TCP", 9));
		CHECK(out[n - 2] == '\r' && out[n - 1] == '\n');
		CHECK(out[9] == (ws.ss_family == AF_INET ? '4' : '6'));
	} else {
		CHECK(!memcmp(out, sig, 12) && out[12] == 0x21);
		CHECK(out[13] == (ws.ss_family == AF_INET ? 0x11 : 0x21));
		CHECK_EQ(n, ws.ss_family == AF_INET ? 28 : 52);
	}
	check_valid(out, n, &ws, &wd);
	/* exactly enough room, and one byte less */
	CHECK_EQ(proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&d, out, n), n);
	CHECK_EQ(proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&d, out, n - 1), 0);
}

static void test_round_trips(void)
{
	static const char *const v6[] = {
		"::", "::1", "1::", "2001:db8::1", "1:0:0:2::3", "1:0:0:2:0:0:0:3", "fe80::1:0:0:1",
		"1:2:3:4:5:6:7:8", "0:1:2:3:4:5:6:0", "::a:b",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"::1.2.3.4", "1:0:2:0:3:0:4:0", "64:ff9b::a00:1",
	};

	for (int v = PP_V1; v <= PP_V2; v++) {
		round_trip(v, "10.77.0.1", 40000, "10.77.0.1", 8080, NULL, NULL);
		round_trip(v, "0.0.0.0", 0, "255.255.255.255", 65535, NULL, NULL);
		round_trip(v, "1.20.100.200", 1, "100.0.10.0", 10, NULL, NULL);
		for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++)
			round_trip(v, v6[i], 5000, v6[(i + 3) % (sizeof(v6) / sizeof(v6[0]))], 443,
				   NULL, NULL);
		/* mapped: as IPv4, one or both */
		round_trip(v, "::ffff:10.0.0.1", 1234, "::ffff:10.0.0.2", 80, "10.0.0.1",
			   "10.0.0.2");
		round_trip(v, "::ffff:10.0.0.1", 1234, "10.0.0.2", 80, "10.0.0.1", NULL);
		round_trip(v, "10.0.0.1", 1234, "::ffff:0.0.0.0", 80, NULL, "0.0.0.0");
		/* mapped beside real IPv6: stays IPv6 */
		round_trip(v, "::ffff:10.0.0.1", 1234, "2001:db8::2", 80, NULL, NULL);
		round_trip(v, "2001:db8::1", 1234, "::ffff:10.0.0.2", 80, NULL, NULL);
	}
}

static void test_random(void)
{
	for (int i = 0; i < 20000; i++) {
		struct sockaddr_storage s, d, ws, wd;
		uint64_t r = next(), a = next(), b = next();
		enum pp_version v = r & 1 ? PP_V2 : PP_V1;
		int fam = (r >> 1) % 3; /* IPv4, IPv6, mapped */
		uint8_t out[PP_MAX];
		size_t n;

		memset(&s, 0, sizeof(s));
		memset(&d, 0, sizeof(d));
		if (fam == 0) {
			struct sockaddr_in *x = (void *)&s, *y = (void *)&d;

			x->sin_family = y->sin_family = AF_INET;
			x->sin_addr.s_addr = (uint32_t)a;
			y->sin_addr.s_addr = (uint32_t)b;
			x->sin_port = (uint16_t)(r >> 16);
			y->sin_port = (uint16_t)(r >> 32);
		} else {
			struct sockaddr_in6 *x = (void *)&s, *y = (void *)&d;
			uint64_t zero = r >> 48; /* runs of zero groups are what compress */

			x->sin6_family = y->sin6_family = AF_INET6;
			for (int k = 0; k < 8; k++) {
				uint16_t ga = (zero >> k) & 1 ? 0 : (uint16_t)(a >> (8 * k));
				uint16_t gb = (zero >> (k + 8)) & 1 ? 0 : (uint16_t)(b >> (8 * k));

				x->sin6_addr.s6_addr[2 * k] = (uint8_t)(ga >> 8);
				x->sin6_addr.s6_addr[2 * k + 1] = (uint8_t)ga;
				y->sin6_addr.s6_addr[2 * k] = (uint8_t)(gb >> 8);
				y->sin6_addr.s6_addr[2 * k + 1] = (uint8_t)gb;
			}
			if (fam == 2) {
				memset(x->sin6_addr.s6_addr, 0, 10);
				memset(y->sin6_addr.s6_addr, 0, 10);
				x->sin6_addr.s6_addr[10] = x->sin6_addr.s6_addr[11] = 0xff;
				y->sin6_addr.s6_addr[10] = y->sin6_addr.s6_addr[11] = 0xff;
			}
			x->sin6_port = (uint16_t)(r >> 16);
			y->sin6_port = (uint16_t)(r >> 32);
		}
		n = proxyproto_build(v, (struct sockaddr *)&s, (struct sockaddr *)&d, out,
				     sizeof(out));
		CHECK(n > 0);
		ws = s;
		wd = d;
		if (fam == 2) {
			struct sockaddr_in *x = (void *)&ws, *y = (void *)&wd;
			const struct sockaddr_in6 *p = (void *)&s, *q = (void *)&d;

			memset(&ws, 0, sizeof(ws));
			memset(&wd, 0, sizeof(wd));
			x->sin_family = y->sin_family = AF_INET;
			memcpy(&x->sin_addr, p->sin6_addr.s6_addr + 12, 4);
			memcpy(&y->sin_addr, q->sin6_addr.s6_addr + 12, 4);
			x->sin_port = p->sin6_port;
			y->sin_port = q->sin6_port;
		}
		if (i < 500) {
			check_valid(out, n, &ws, &wd);
		} else {
			struct sockaddr_storage ps, pd;

			CHECK_EQ(parse_n(out, n, &ps, &pd), (long long)n);
			CHECK(same(&ps, &ws) && same(&pd, &wd));
		}
	}
}

/* ---- malformed ---------------------------------------------------------------------- */

static void test_v1_bad(void)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
		"PROXY TCP4\r\n",
		"PROXY TCP4 \r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx\r\n",
		"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.1000 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",
		"PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP6 ::1 1.2.3.4 1 2\r\n",
		"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
		"PROXY TCP6 1::2::3 ::1 1 2\r\n",
		"PROXY TCP6 12345:: ::1 1 2\r\n",
		"PROXY TCP6 :1 ::1 1 2\r\n",
		"PROXY TCP6 ::g ::1 1 2\r\n",
		"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		"PROXY TCP6 [::1] ::1 1 2\r\n",
		"PROXY TCP6 : ::1 1 2\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY UNKNOWN\r",
		"PROXY UNKNOWN\rX\r\n",
		"PROXY UNKNOW\r\n",
		"PROXY UNKNOWN\n",
	};
	static const char *const good[] = {
		"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n",
		"PROXY TCP4 10.0.0.1 192.168.100.200 9 65535\r\n",
		"PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 ::1 0 65535\r\n",
		"PROXY TCP6 FE80::ABCD ::1 1 2\r\n",
		"PROXY TCP6 :: :: 10 100\r\n",
		"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UNKNOWN \r\n",
	};
	static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
	char line[PP_V1_MAX + 16];
	int rc;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);

		/* "PROXY UNKNOWN\r" is a valid start: the LF may come next */
		if (bad[i][n - 1] == '\r' && !strchr(bad[i], '\n')) {
			CHECK_EQ(parse_n(bad[i], n, NULL, NULL), 0);
			continue;
		}
		check_bad_str(bad[i]);
	}
	check_bad(nul, sizeof(nul) - 1, "NUL in the line");

	/* the CRLF must end within 107 bytes */
	memset(line, 'a', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + 105, "\r\n", 2);
	CHECK_EQ(parse_n(line, 107, NULL, NULL), 107);
	memset(line + 105, 'a', 2);
	memcpy(line + 106, "\r\n", 2);
	CHECK_EQ(parse_n(line, 106, NULL, NULL), 0);
	CHECK_EQ(parse_n(line, 107, NULL, NULL), -1);
	CHECK_EQ(parse_n(line, 108, NULL, NULL), -1);
	memset(line + 106, 'a', 2);
	for (size_t k = 0; k < PP_V1_MAX; k++)
		CHECK_EQ(parse_n(line, k, NULL, NULL), 0);
	CHECK_EQ(parse_n(line, PP_V1_MAX, NULL, NULL), -1);
	CHECK_EQ(parse_n(line, sizeof(line), NULL, NULL), -1);

	/* a TCP4 line whose bytes are fine but too many */
	memset(line, '1', sizeof(line));
	memcpy(line, "PROXY TCP4 ", 11);
	CHECK_EQ(parse_n(line, 106, NULL, NULL), 0);
	CHECK_EQ(parse_n(line, 107, NULL, NULL), -1);

	/* a byte no valid line can hold is refused before the CRLF comes */
	CHECK_EQ(parse_n("PROXY TCP4 1.2.3.4 x", 20, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY TCP4 1:", 13, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY TCP6 1.", 13, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY TCP6 ::1 ::1 1 2\rx", 24, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXX", 5, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY X", 7, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY UNKNOWNX", 14, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY UNKNOWN\r", 14, NULL, NULL), 0);
	CHECK_EQ(parse_n("PROXY UNKNOWN\rX", 15, NULL, NULL), -1);
	CHECK_EQ(parse_n("PROXY UNKNOWN whatever\x01\xff", 24, NULL, NULL), 0);
	CHECK_EQ(parse_n("PROXY UNKNOWN junk\r\r\n", 21, NULL, NULL), 21);
	CHECK_EQ(parse_n("hello\r\n", 7, NULL, NULL), -1);
	CHECK_EQ(parse_n("", 0, NULL, NULL), 0);
	CHECK_EQ(proxyproto_parse(NULL, 0, NULL, NULL), 0);
	CHECK_EQ(proxyproto_parse(NULL, 1, NULL, NULL), -1);

	/* edges that are fine */
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t n = strlen(good[i]);

		rc = parse_n(good[i], n, NULL, NULL);
		if (rc != (int)n)
			fprintf(stderr, "valid \"%s\": %d\n", good[i], rc);
		CHECK_EQ(rc, (long long)n);
	}
}

static void test_v2_bad(void)
{
	struct sockaddr_storage s = sa("10.0.0.1", 1), d = sa("10.0.0.2", 2);
	uint8_t h[PP_MAX], b[PP_MAX];
	size_t n;

	n = proxyproto_build(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d, h, sizeof(h));
	CHECK_EQ(n, 28);
	/* every byte of the signature */
	for (size_t i = 0; i < 12; i++) {
		memcpy(b, h, n);
		b[i] ^= 0x40;
		check_bad(b, n, "signature");
	}
	/* version and command */
	static const uint8_t vc[] = { 0x11, 0x31, 0x01, 0xf1, 0x22, 0x2f, 0x23 };

	for (size_t i = 0; i < sizeof(vc); i++) {
		memcpy(b, h, n);
		b[12] = vc[i];
		check_bad(b, n, "version/command");
	}
	/* families the spec does not define */
	static const uint8_t fam[] = { 0x01, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0xff };

	for (size_t i = 0; i < sizeof(fam); i++) {
		memcpy(b, h, n);
		b[13] = fam[i];
		check_bad(b, n, "family");
	}
	/* lengths too short for the addresses */
	memcpy(b, h, n);
	b[15] = 11;
	check_bad(b, n, "IPv4 length 11");
	b[15] = 0;
	check_bad(b, 16, "IPv4 length 0");
	b[13] = 0x21;
	b[15] = 35;
	check_bad(b, n, "IPv6 length 35");
	b[13] = 0x12;
	b[15] = 11;
	check_bad(b, n, "UDP length 11");
	b[13] = 0x31;
	b[15] = 215;
	check_bad(b, n, "UNIX length 215");
	/* v2 before the signature is whole: a wrong byte is enough */
	CHECK_EQ(parse_n("\r\n\r\n\0\r\nQ", 8, NULL, NULL), 0);
	CHECK_EQ(parse_n("\r\n\r\n\0\r\nX", 8, NULL, NULL), -1);
	CHECK_EQ(parse_n("\r\n\r\n\r\n", 6, NULL, NULL), -1);
}

static void test_build_limits(void)
{
	struct sockaddr_storage s4 = sa("10.0.0.1", 1), s6 = sa("2001:db8::1", 1);
	struct sockaddr_storage un;
	uint8_t out[PP_MAX];

	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	CHECK_EQ(proxyproto_build(PP_OFF, (void *)&s4, (void *)&s4, out, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build((enum pp_version)3, (void *)&s4, (void *)&s4, out, sizeof(out)),
		 0);
	CHECK_EQ(proxyproto_build(PP_V1, (void *)&s4, (void *)&s6, out, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build(PP_V2, (void *)&s6, (void *)&s4, out, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build(PP_V1, (void *)&un, (void *)&un, out, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build(PP_V2, (void *)&s4, (void *)&un, out, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build(PP_V1, NULL, (void *)&s4, out, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build(PP_V1, (void *)&s4, (void *)&s4, NULL, sizeof(out)), 0);
	CHECK_EQ(proxyproto_build(PP_V2, (void *)&s4, (void *)&s4, out, 0), 0);
}

int main(void)
{
	test_v1_examples();
	test_v1_ipv6_text();
	test_v2_examples();
	test_v2_tlvs();
	test_round_trips();
	test_random();
	test_v1_bad();
	test_v2_bad();
	test_build_limits();
	return test_result("proxyproto");
}
