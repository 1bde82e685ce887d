// SPDX-License-Identifier: MIT
/*
 * proxyproto — building and parsing PROXY protocol headers.
 *
 * Addresses are written by hand rather than with inet_ntop: glibc writes an
 * IPv4-mapped address as "::ffff:10.0.0.1", which the spec's v1 grammar
 * (hex groups only) does not allow, and our own parser would reject it.
 *
 * The parser answers "need more" only while every byte so far can still
 * begin a valid header, so the answer for a prefix never contradicts the
 * answer for the whole (the fuzz target checks this): v1 is checked as far as
 * it goes before its CRLF arrives, v2 field by field as the bytes come.
 */
#include "proxy/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* One end of the announced connection. */
struct pp_end {
	int family;	  /* AF_INET or AF_INET6 */
	int mapped;	  /* AF_INET taken from an IPv4-mapped IPv6 address */
	uint8_t addr[16]; /* the first 4 for AF_INET */
	uint16_t port;	  /* host order */
};

/* SA as an end, IPv4-mapped IPv6 as IPv4; -1 for another family. */
static int end_of(const struct sockaddr *sa, struct pp_end *e)
{
	memset(e, 0, sizeof(*e));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		e->family = AF_INET;
		memcpy(e->addr, &in->sin_addr, 4);
		e->port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		e->port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			e->family = AF_INET;
			e->mapped = 1;
			memcpy(e->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			e->family = AF_INET6;
			memcpy(e->addr, &in6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

/* Back to the IPv4-mapped IPv6 address it came from. */
static void end_unmap(struct pp_end *e)
{
	memmove(e->addr + 12, e->addr, 4);
	memset(e->addr, 0, 10);
	e->addr[10] = e->addr[11] = 0xff;
	e->family = AF_INET6;
}

/* RFC 5952 text of an IPv6 address, hex groups only: at most 39 characters. */
static void fmt_ip6(char *out, size_t size, const uint8_t *a)
{
	int best = -1, bestlen = 1, i, n;
	uint16_t g[8];
	size_t len = 0;

	for (i = 0; i < 8; i++)
		g[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
	/* the longest run of two or more zero groups, the first of equals */
	for (i = 0; i < 8; i++) {
		for (n = 0; i + n < 8 && !g[i + n]; n++)
			;
		if (n > bestlen) {
			best = i;
			bestlen = n;
		}
		i += n;
	}
	for (i = 0; i < 8 && len + 6 < size; i++) {
		if (i == best) {
			out[len++] = ':';
			if (i == 0)
				out[len++] = ':';
			i += bestlen - 1;
			continue;
		}
		len += (size_t)snprintf(out + len, size - len, "%x", g[i]);
		if (i < 7)
			out[len++] = ':';
	}
	out[len] = '\0';
}

static void fmt_addr(char *out, size_t size, const struct pp_end *e)
{
	if (e->family == AF_INET)
		snprintf(out, size, "%u.%u.%u.%u", e->addr[0], e->addr[1], e->addr[2], e->addr[3]);
	else
		fmt_ip6(out, size, e->addr);
}

size_t proxyproto_build(enum pp_version v, const struct sockaddr *src, const struct sockaddr *dst,
			uint8_t *out, size_t cap)
{
	struct pp_end s, d;
	char line[PP_V1_MAX + 1], sa[48], da[48];
	size_t alen, n;
	int len;

	if ((v != PP_V1 && v != PP_V2) || !src || !dst || !out)
		return 0;
	if (end_of(src, &s) || end_of(dst, &d))
		return 0;
	if (s.family != d.family) {
		/* one real IPv6 end: announce the other as the mapped address it was */
		if (s.mapped)
			end_unmap(&s);
		else if (d.mapped)
			end_unmap(&d);
		else
			return 0;
	}
	if (v == PP_V1) {
		fmt_addr(sa, sizeof(sa), &s);
		fmt_addr(da, sizeof(da), &d);
		len = snprintf(line, sizeof(line), "PROXY TCP%c %s %s %u %u\r\n",
			       s.family == AF_INET ? '4' : '6', sa, da, s.port, d.port);
		if (len < 0 || (size_t)len > PP_V1_MAX || (size_t)len > cap)
			return 0;
		memcpy(out, line, (size_t)len);
		return (size_t)len;
	}
	alen = s.family == AF_INET ? 4 : 16;
	n = PP_V2_HDR + 2 * alen + 4;
	if (cap < n)
		return 0;
	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = 0x21; /* version 2, PROXY */
	out[13] = s.family == AF_INET ? 0x11 : 0x21;
	out[14] = 0;
	out[15] = (uint8_t)(n - PP_V2_HDR);
	memcpy(out + 16, s.addr, alen);
	memcpy(out + 16 + alen, d.addr, alen);
	out[16 + 2 * alen] = (uint8_t)(s.port >> 8);
	out[17 + 2 * alen] = (uint8_t)s.port;
	out[18 + 2 * alen] = (uint8_t)(d.port >> 8);
	out[19 + 2 * alen] = (uint8_t)d.port;
	return n;
}

/* ---- parsing ----------------------------------------------------------------- */

static void set_addr(struct sockaddr_storage *ss, int family, const uint8_t *addr, uint16_t port)
{
	if (!ss)
		return;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, addr, 4);
		in->sin_port = htons(port);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, addr, 16);
		in6->sin6_port = htons(port);
	}
	/* AF_UNSPEC: left zeroed */
}

static int is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int is_xdigit(uint8_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Four decimal numbers 0..255 joined by dots, no leading zeros: 0 or -1. */
static int parse_ip4(const uint8_t *s, size_t n, uint8_t *out)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t start;

		if (part) {
			if (i >= n || s[i] != '.')
				return -1;
			i++;
		}
		start = i;
		while (i < n && is_digit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return -1;
		out[part] = (uint8_t)v;
	}
	return i == n ? 0 : -1;
}

/* Hex groups and colons, one "::" at most, 128 bits in all: 0 or -1. */
static int parse_ip6(const uint8_t *s, size_t n, uint8_t *out)
{
	char text[40];

	if (n < 2 || n > 39)
		return -1;
	/* inet_pton also takes a dotted IPv4 tail, which v1 does not */
	for (size_t i = 0; i < n; i++) {
		if (!is_xdigit(s[i]) && s[i] != ':')
			return -1;
	}
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

/* 0..65535 in decimal, no leading zeros: 0 or -1. */
static int parse_port(const uint8_t *s, size_t n, uint16_t *port)
{
	unsigned v = 0;

	if (n < 1 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * Could B[0..LEN), with no CRLF in it and shorter than PP_V1_MAX, begin a
 * valid v1 line? Only bytes that no valid line can have there say no.
 */
static int v1_could_be(const uint8_t *b, size_t len)
{
	static const char *const protos[] = { "TCP4 ", "TCP6 ", "UNKNOWN" };
	size_t n = len < 6 ? len : 6;

	if (memcmp(b, "PROXY ", n))
		return 0;
	if (len <= 6)
		return 1;
	b += 6;
	len -= 6;
	for (int p = 0; p < 3; p++) {
		size_t plen = strlen(protos[p]);
		const uint8_t *rest;

		n = len < plen ? len : plen;
		if (memcmp(b, protos[p], n))
			continue;
		if (len <= plen)
			return 1;
		rest = b + plen;
		len -= plen;
		/* UNKNOWN: then a space and anything, or the CRLF */
		if (p == 2)
			return rest[0] == ' ' || (rest[0] == '\r' && len == 1);
		for (size_t i = 0; i < len; i++) {
			uint8_t c = rest[i];

			if (c == '\r' && i == len - 1)
				break;
			if (!(is_digit(c) || c == ' ' || (p == 0 && c == '.') ||
			      (p == 1 && (is_xdigit(c) || c == ':'))))
				return 0;
		}
		return 1;
	}
	return 0;
}

/* The v1 line B[0..N), CRLF excluded: 0 and the addresses set, or -1. */
static int v1_line(const uint8_t *b, size_t n, struct sockaddr_storage *src,
		   struct sockaddr_storage *dst)
{
	const uint8_t *tok[4];
	size_t tlen[4], ntok = 0, start;
	uint8_t sa[16], da[16];
	uint16_t sp, dp;
	int family, bad;

	if (n < 6 || memcmp(b, "PROXY ", 6))
		return -1;
	b += 6;
	n -= 6;
	if (n >= 7 && !memcmp(b, "UNKNOWN", 7) && (n == 7 || b[7] == ' ')) {
		set_addr(src, AF_UNSPEC, NULL, 0);
		set_addr(dst, AF_UNSPEC, NULL, 0);
		return 0;
	}
	if (n < 5 || memcmp(b, "TCP", 3) || (b[3] != '4' && b[3] != '6') || b[4] != ' ')
		return -1;
	family = b[3] == '4' ? AF_INET : AF_INET6;
	b += 5;
	n -= 5;
	/* exactly four tokens, exactly one space between them */
	start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && b[i] != ' ')
			continue;
		if (i == start || ntok == 4)
			return -1;
		tok[ntok] = b + start;
		tlen[ntok++] = i - start;
		start = i + 1;
	}
	if (ntok != 4)
		return -1;
	if (family == AF_INET)
		bad = parse_ip4(tok[0], tlen[0], sa) || parse_ip4(tok[1], tlen[1], da);
	else
		bad = parse_ip6(tok[0], tlen[0], sa) || parse_ip6(tok[1], tlen[1], da);
	if (bad || parse_port(tok[2], tlen[2], &sp) || parse_port(tok[3], tlen[3], &dp))
		return -1;
	set_addr(src, family, sa, sp);
	set_addr(dst, family, da, dp);
	return 0;
}

static int parse_v1(const uint8_t *b, size_t len, struct sockaddr_storage *src,
		    struct sockaddr_storage *dst)
{
	size_t lim = len < PP_V1_MAX ? len : PP_V1_MAX;

	/* the CRLF must end within PP_V1_MAX bytes */
	for (size_t i = 0; i + 1 < lim; i++) {
		if (b[i] == '\r' && b[i + 1] == '\n')
			return v1_line(b, i, src, dst) ? -1 : (int)(i + 2);
	}
	if (len >= PP_V1_MAX)
		return -1;
	return v1_could_be(b, len) ? 0 : -1;
}

static int parse_v2(const uint8_t *b, size_t len, struct sockaddr_storage *src,
		    struct sockaddr_storage *dst)
{
	size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig), total, alen = 0, off;
	int family = AF_UNSPEC, cmd;

	if (memcmp(b, v2_sig, n))
		return -1;
	if (len < 13)
		return 0;
	cmd = b[12] & 0x0f;
	if ((b[12] >> 4) != 2 || cmd > 1)
		return -1;
	if (len < 14)
		return 0;
	/*
	 * LOCAL: the family is to be ignored. PROXY: TCP over IPv4 or IPv6
	 * carries addresses; the spec's other families are taken as UNSPEC
	 * (the receiver falls back to the connection's own addresses), but
	 * their address block must still fit in the length.
	 */
	if (cmd == 1) {
		switch (b[13]) {
		case 0x11:
			family = AF_INET;
			alen = 12;
			break;
		case 0x21:
			family = AF_INET6;
			alen = 36;
			break;
		case 0x00:
			break;
		case 0x12:
			alen = 12;
			break;
		case 0x22:
			alen = 36;
			break;
		case 0x31:
		case 0x32:
			alen = 216;
			break;
		default:
			return -1;
		}
	}
	if (len < PP_V2_HDR)
		return 0;
	total = PP_V2_HDR + ((size_t)b[14] << 8 | b[15]);
	if (total < PP_V2_HDR + alen)
		return -1;
	if (len < total)
		return 0;
	/* TLVs: type, 16-bit length, value; each within the header */
	for (off = PP_V2_HDR + alen; cmd == 1 && off < total;) {
		if (total - off < 3)
			return -1;
		off += 3 + ((size_t)b[off + 1] << 8 | b[off + 2]);
		if (off > total)
			return -1;
	}
	if (family == AF_INET) {
		set_addr(src, AF_INET, b + 16, (uint16_t)(b[24] << 8 | b[25]));
		set_addr(dst, AF_INET, b + 20, (uint16_t)(b[26] << 8 | b[27]));
	} else if (family == AF_INET6) {
		set_addr(src, AF_INET6, b + 16, (uint16_t)(b[48] << 8 | b[49]));
		set_addr(dst, AF_INET6, b + 32, (uint16_t)(b[50] << 8 | b[51]));
	} else {
		set_addr(src, AF_UNSPEC, NULL, 0);
		set_addr(dst, AF_UNSPEC, NULL, 0);
	}
	return (int)total;
}

int proxyproto_parse(const uint8_t *buf, size_t len, struct sockaddr_storage *src,
		     struct sockaddr_storage *dst)
{
	if (!len)
		return 0;
	if (!buf)
		return -1;
	if (buf[0] == 'P')
		return parse_v1(buf, len, src, dst);
	if (buf[0] == v2_sig[0])
		return parse_v2(buf, len, src, dst);
	return -1;
}
