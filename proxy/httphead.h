/* SPDX-License-Identifier: MIT */
/*
 * httphead — a strict, bounded parser for an HTTP/1.x request head.
 *
 * sluice peeks at a client's first bytes (MSG_PEEK: they stay in the socket
 * and are forwarded unchanged) to spot a WebSocket upgrade and to answer a
 * malformed head with 400 before any backend sees it. The parser is pure: it
 * reads only BUF[0..min(LEN, MAX_BYTES)), keeps no state between calls (a
 * caller re-parses from the start when more bytes arrive; that is linear in
 * the head and cheap for the usual few hundred bytes) and does not allocate.
 *
 * It follows RFC 9112 strictly: exactly one SP between the request-line
 * parts, CRLF line endings only (a bare CR or LF anywhere is an error), no
 * obs-fold, no whitespace before a header colon, no control characters but
 * HTAB in field values, HTTP/1.0 or HTTP/1.1 only, exactly one Host in 1.1,
 * and the request-smuggling rules: conflicting Content-Length values,
 * Transfer-Encoding with Content-Length, Transfer-Encoding in HTTP/1.0 and a
 * Transfer-Encoding whose final coding is not chunked are all rejected.
 */
#ifndef SLUICE_HTTPHEAD_H
#define SLUICE_HTTPHEAD_H

#include <stddef.h>
#include <stdint.h>

enum httphead_status {
	HTTPHEAD_NEED_MORE, /* every byte so far may begin a valid head */
	HTTPHEAD_OK,	    /* a whole, valid head; see struct httphead */
	HTTPHEAD_BAD,	    /* malformed: answer 400 and close */
	HTTPHEAD_TOO_BIG,   /* no blank line within MAX_BYTES, or too many headers */
};

#define HTTPHEAD_METHOD_MAX 15 /* longer methods are BAD */

struct httphead {
	uint32_t head_len;	   /* bytes up to and including the blank line */
	uint8_t version_minor;	   /* 0 or 1 */
	uint8_t upgrade_websocket; /* GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade */
	uint8_t keep_alive;	   /* asked for: 1.1 unless "close", 1.0 only with "keep-alive" */
	uint8_t has_body;	   /* Content-Length > 0 or Transfer-Encoding present */
	uint16_t nheaders;	   /* header lines */
	char method[HTTPHEAD_METHOD_MAX + 1]; /* NUL-terminated */
	uint64_t content_length;   /* valid when has_body without Transfer-Encoding */
	const char *reason;	   /* on BAD/TOO_BIG: static English for logs; else NULL */
};

/*
 * Parse the request head at BUF, of which LEN bytes have arrived so far,
 * allowing at most MAX_BYTES for the whole head (request line, header lines
 * and the blank line) and MAX_HEADERS header lines (at most 65535). Bytes
 * past the blank line (a body, pipelined requests) are not looked at.
 *
 * Returns HTTPHEAD_OK with *H filled in; HTTPHEAD_NEED_MORE when the head is
 * incomplete but valid so far and LEN < MAX_BYTES; HTTPHEAD_BAD or
 * HTTPHEAD_TOO_BIG with H->reason set. On other than OK the remaining
 * fields of *H are unspecified. Fields are only meaningful on OK.
 */
enum httphead_status httphead_parse(const char *buf, size_t len, size_t max_bytes,
				    unsigned max_headers, struct httphead *h);

#endif
