/* SPDX-License-Identifier: MIT */
/*
 * proxyproto — the PROXY protocol header (HAProxy's proxy-protocol.txt, v1
 * and v2) that sluice puts in front of a backend connection so the backend
 * learns the client's address and the address the client connected to.
 *
 * v1 is one text line, "PROXY TCP4 SRC DST SPORT DPORT\r\n" (TCP6 for IPv6),
 * at most PP_V1_MAX bytes. v2 is binary: a 12-byte signature, version and
 * command (0x21: v2, PROXY), family and protocol (0x11: TCP over IPv4, 0x21:
 * TCP over IPv6), the length of what follows, then both addresses and both
 * ports in network order; TLVs may follow within that length.
 *
 * sluice only builds headers; the parser is for the tests, the fuzz target
 * and the test backend (tests/tools/tpeer.c), and is strict: whatever the
 * spec does not allow is malformed.
 */
#ifndef SLUICE_PROXYPROTO_H
#define SLUICE_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PP_MAX 232	/* largest header sluice builds (v2 with IPv6 + room) */
#define PP_V1_MAX 107	/* longest v1 line the spec allows, CRLF included */
#define PP_V2_HDR 16	/* v2: signature, ver/cmd, family, length */

/* Values of cfg_pool.proxy_protocol (userspace/config.h) too. */
enum pp_version { PP_OFF = 0, PP_V1 = 1, PP_V2 = 2 };

/*
 * Header announcing a TCP connection from SRC to DST (both AF_INET or both
 * AF_INET6; IPv4-mapped IPv6 addresses are announced as IPv4, unless the
 * other address is a real IPv6 one) into OUT, CAP bytes. Returns its
 * length, 0 if it cannot be built: V is PP_OFF or unknown, a family is
 * neither AF_INET nor AF_INET6, one is AF_INET and the other real IPv6, or
 * CAP is too small (PP_MAX always fits).
 */
size_t proxyproto_build(enum pp_version v, const struct sockaddr *src, const struct sockaddr *dst,
			uint8_t *out, size_t cap);

/*
 * Parse a header at the start of BUF (LEN bytes; what follows the header is
 * not looked at). Returns the header's length (> 0) and fills *SRC and *DST
 * (either may be NULL); 0 when every byte so far may begin a valid header
 * but it is not whole yet; -1 when it is malformed. A longer BUF never turns
 * -1 into anything else, nor a length into another answer.
 *
 * Accepted: v1 TCP4 and TCP6 with exact tokens (single spaces, IPv4 as four
 * decimal numbers without leading zeros, IPv6 in hex groups, ports 0..65535
 * without leading zeros), CRLF within PP_V1_MAX bytes; v2 PROXY over TCP with
 * IPv4 or IPv6, its TLVs skipped (but their lengths must add up). Accepted
 * without addresses (*SRC and *DST get family AF_UNSPEC: use the
 * connection's own): v1 "UNKNOWN", v2 LOCAL (whatever its family), and v2
 * PROXY with a family the spec defines that is not TCP (UNSPEC, UDP, UNIX).
 */
int proxyproto_parse(const uint8_t *buf, size_t len, struct sockaddr_storage *src,
		     struct sockaddr_storage *dst);

#endif
