/* SPDX-License-Identifier: MIT */
/*
 * clienthello — a strict, bounded parser for the TLS ClientHello a client
 * sends first, peeked (MSG_PEEK) before any crypto so that full and resumed
 * handshakes can be admitted from separate budgets.
 *
 * The parser is pure: it reads only BUF[0..min(LEN, CH_MAX)), keeps no
 * state between calls (a caller re-parses from the start when more bytes
 * arrive), does not allocate, and decides left to right: once a prefix of
 * the stream gives an answer other than CH_NEED_MORE, every longer prefix
 * gives the same answer (and the same struct ch_info). Record headers are
 * judged byte by byte, so a stream that is not TLS is refused at once.
 *
 * The hello may be split over several handshake records (content type 22,
 * record version 0x0301..0x0304); records after the one the hello ends in
 * are not looked at (early data, a middlebox-compatibility CCS), but bytes
 * after the hello inside its own last record are an error. Every length is
 * checked against the one that encloses it; the extensions sluice reads and
 * the common list-shaped ones (groups, signature algorithms, key shares...)
 * are checked inside too; any other extension is opaque bytes.
 */
#ifndef SLUICE_CLIENTHELLO_H
#define SLUICE_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

#define CH_MAX 16384 /* most bytes sluice will peek for one ClientHello */

enum ch_result {
	CH_OK = 0,    /* a whole, valid ClientHello; see struct ch_info */
	CH_NEED_MORE, /* valid so far, incomplete */
	CH_NOT_TLS,   /* the first byte is not a handshake record (HTTP, SSLv2...) */
	CH_BAD,	      /* malformed records or hello: close */
	CH_TOO_BIG,   /* the hello cannot end within the first CH_MAX bytes */
};

enum { CH_RESUME_PSK = 1, CH_RESUME_TICKET = 2, CH_RESUME_SESSION_ID = 4 };

struct ch_info {
	unsigned resume; /* CH_RESUME_* offered by the client */
	unsigned tls13;	 /* supported_versions lists TLS 1.3 */
	char sni[256];	 /* server_name host_name, "" if none */
	char alpn[64];	 /* first ALPN protocol offered, "" if none */
	size_t need;	 /* CH_NEED_MORE: total bytes needed, when known (else 0) */
};

/*
 * Parse the ClientHello at the start of BUF, of which LEN bytes have arrived.
 *
 * CH_OK fills in *CI: RESUME has CH_RESUME_PSK for a pre_shared_key
 * extension (it has at least one identity), CH_RESUME_TICKET for a non-empty
 * session_ticket extension, CH_RESUME_SESSION_ID for a non-empty legacy
 * session id, but only when TLS 1.3 is not offered (a TLS 1.3 client sends a
 * random one for middlebox compatibility). SNI is the host_name, lowercased
 * (1..255 bytes of '!'..'~', else CH_BAD). ALPN is the first protocol name
 * in the list that is 1..63 bytes of '!'..'~' ("" if none is: a GREASE or
 * binary name is skipped).
 *
 * CH_NEED_MORE sets CI->need to a lower bound on the bytes the hello needs,
 * always more than LEN, when the lengths read so far tell one (else 0): the
 * end of the record being read, or further when the hello's length says it
 * goes on past it. Never returned for LEN >= CH_MAX.
 *
 * On any other result *CI is all zero but for need.
 */
enum ch_result clienthello_parse(const uint8_t *buf, size_t len, struct ch_info *ci);

/* 1 when the hello should be admitted as a resumed handshake */
static inline int clienthello_resumes(const struct ch_info *ci)
{
	return ci->resume != 0;
}

#endif
