/* SPDX-License-Identifier: MIT */
/*
 * wsframe — where the frames are in the server→client bytes of an upgraded
 * WebSocket connection (RFC 6455), so that sluice can inject a Close frame
 * when it drains the connection without splitting a frame or a fragmented
 * message.
 *
 * The tracker sees every byte sluice forwards from the backend to the
 * client, in order, in chunks of any size: first the backend's
 * "HTTP/1.1 101" response head, skipped up to and including its blank line,
 * then frames. Only frame headers are parsed (at most 14 bytes, taken one
 * byte at a time across chunks); payloads are skipped by count, so a chunk
 * costs O(header bytes in it), never O(payload). Frames may be masked even
 * though a server must not mask; RSV bits are passed through because an
 * extension (permessage-deflate) may have been negotiated. Non-minimal
 * length encodings are accepted: they do not change where a frame ends.
 */
#ifndef SLUICE_WSFRAME_H
#define SLUICE_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/* The longest response head skipped before giving up on the stream. */
#define WSFRAME_HEAD_MAX 65536
/* The longest Close reason, and the largest Close frame wsframe_close writes. */
#define WSFRAME_REASON_MAX 123
#define WSFRAME_CLOSE_MAX (2 + 2 + WSFRAME_REASON_MAX)

/* Zero-initialised, or after wsframe_init: before the response head. */
struct wsframe {
	uint64_t left;	    /* payload bytes left, or the extended length being read */
	uint32_t head;	    /* response-head bytes seen */
	uint8_t phase;	    /* private: enum in wsframe.c */
	uint8_t need;	    /* header bytes left in this phase; CRLFCRLF progress in the head */
	uint8_t match;	    /* status-line bytes of the response head matched */
	uint8_t masked;	    /* the current frame carries a masking key */
	uint8_t control;    /* the current frame is a control frame */
	uint8_t in_message; /* a fragmented data message has begun and not ended */
	uint8_t closed;	    /* the server sent a Close frame */
	uint8_t pad;
};

/* Reset T to the start of a stream: expecting the 101 response head. */
void wsframe_init(struct wsframe *t);

/*
 * Account for the next LEN bytes of the server→client stream at BUF. 0, or
 * -EPROTO when the bytes are not a WebSocket stream: a response head other
 * than "HTTP/1.1 101", a bare LF in it or a head over WSFRAME_HEAD_MAX; a
 * reserved opcode; a continuation outside a fragmented message or a new data
 * frame inside one; a control frame that is fragmented or longer than 125
 * bytes; a 64-bit length with its high bit set; any byte after the server's
 * Close frame. The error is sticky: every later call returns -EPROTO, and
 * the caller should stop tracking and close without a Close frame.
 */
int wsframe_feed(struct wsframe *t, const uint8_t *buf, size_t len);

/*
 * 1 when the stream is between two whole messages, so a Close frame may be
 * sent now: past the response head, at a frame boundary, not inside a
 * fragmented message (a control frame between fragments does not count),
 * the server has not sent Close itself and no error was seen. 0 otherwise.
 */
int wsframe_at_boundary(const struct wsframe *t);

/*
 * Write an unmasked (server→client) Close frame into OUT, which has room for
 * WSFRAME_CLOSE_MAX bytes: status CODE, then REASON (NULL for none) cut to
 * WSFRAME_REASON_MAX bytes, never inside a UTF-8 sequence. CODE 0 writes a
 * Close with no body (and no reason). Returns the frame's length.
 */
size_t wsframe_close(uint8_t *out, uint16_t code, const char *reason);

#endif
