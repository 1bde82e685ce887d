// SPDX-License-Identifier: MIT
#include "proxy/clienthello.h"

#include <string.h>

#define REC_HDR 5	      /* type, version, length */
#define REC_MAX (16384 + 256) /* the longest record accepted */
#define HS_HDR 4	      /* type, 24-bit length */
#define HS_CLIENT_HELLO 1
#define CT_HANDSHAKE 22

enum {
	EXT_SERVER_NAME = 0,
	EXT_SUPPORTED_GROUPS = 10,
	EXT_EC_POINT_FORMATS = 11,
	EXT_SIGNATURE_ALGORITHMS = 13,
	EXT_ALPN = 16,
	EXT_ENCRYPT_THEN_MAC = 22,
	EXT_EXTENDED_MASTER_SECRET = 23,
	EXT_SESSION_TICKET = 35,
	EXT_PRE_SHARED_KEY = 41,
	EXT_EARLY_DATA = 42,
	EXT_SUPPORTED_VERSIONS = 43,
	EXT_COOKIE = 44,
	EXT_PSK_KEY_EXCHANGE_MODES = 45,
	EXT_POST_HANDSHAKE_AUTH = 49,
	EXT_SIGNATURE_ALGORITHMS_CERT = 50,
	EXT_KEY_SHARE = 51,
	EXT_RENEGOTIATION_INFO = 0xff01,
};

/*
 * A reader of the handshake message where it lies in the caller's buffer:
 * the message is the concatenation of the records' fragments, so reading
 * steps over record headers, checking each as it gets to it. Positions are
 * kept twice: POS in the buffer, OFF in the message.
 *
 * The bound. A hello ends where a record ends (bytes after it in its record
 * are an error), so once the message length is known the fewest bytes of
 * BUF it can end in follow from where the reader is: the end of the current
 * record if the rest of the message fits in it, else the end of the record,
 * one more record header and what the message still lacks. That changes
 * only when the length becomes known and at record headers, so checking it
 * (or, before the length is known, the end of the record) against CH_MAX
 * there finds a hello too big for the peek buffer as soon as the bytes tell,
 * and keeps every read below CH_MAX.
 */
struct rd {
	const uint8_t *buf;
	size_t len;	/* bytes of BUF that may be read */
	size_t pos;	/* next byte of BUF */
	size_t rec_end; /* end of the current record in BUF; == POS between records */
	size_t off;	/* next byte of the message */
	size_t msg_end; /* the message's length, header included; 0 until known */
	size_t need;	/* CH_NEED_MORE: see clienthello.h */
};

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		enum ch_result _res = (expr);                                                      \
		if (_res != CH_OK)                                                                 \
			return _res;                                                               \
	} while (0)

/* The fewest bytes of BUF the hello can end in, as far as the reader knows. */
static size_t min_end(const struct rd *r)
{
	size_t left, in_rec = r->rec_end - r->pos;

	if (!r->msg_end)
		return r->rec_end;
	left = r->msg_end - r->off;
	if (left <= in_rec)
		return r->rec_end;
	return r->rec_end + REC_HDR + (left - in_rec);
}

static enum ch_result check_bound(const struct rd *r)
{
	return min_end(r) > CH_MAX ? CH_TOO_BIG : CH_OK;
}

static enum ch_result need_more(struct rd *r)
{
	/* between records, before the length is known, nothing is */
	r->need = r->msg_end || r->pos < r->rec_end ? min_end(r) : 0;
	return CH_NEED_MORE;
}

/* Step over the header of the record at POS, judging each byte that is there. */
static enum ch_result next_record(struct rd *r)
{
	const uint8_t *h = r->buf + r->pos;
	size_t have = r->len - r->pos, rlen;

	if (have >= 1 && h[0] != CT_HANDSHAKE)
		return r->pos ? CH_BAD : CH_NOT_TLS;
	if (have >= 2 && h[1] != 3)
		return CH_BAD;
	if (have >= 3 && (h[2] < 1 || h[2] > 4))
		return CH_BAD;
	if (have < REC_HDR)
		return need_more(r);
	rlen = (size_t)h[3] << 8 | h[4];
	if (!rlen || rlen > REC_MAX)
		return CH_BAD;
	r->pos += REC_HDR;
	r->rec_end = r->pos + rlen;
	return check_bound(r);
}

/* The next N bytes of the message, into DST unless it is NULL. */
static enum ch_result take(struct rd *r, uint8_t *dst, size_t n)
{
	size_t k;

	if (r->msg_end && n > r->msg_end - r->off)
		return CH_BAD;
	while (n) {
		if (r->pos == r->rec_end)
			TRY(next_record(r));
		k = r->rec_end - r->pos;
		if (k > r->len - r->pos)
			k = r->len - r->pos;
		if (k > n)
			k = n;
		if (!k)
			return need_more(r);
		if (dst) {
			memcpy(dst, r->buf + r->pos, k);
			dst += k;
		}
		r->pos += k;
		r->off += k;
		n -= k;
	}
	return CH_OK;
}

static enum ch_result get_n(struct rd *r, unsigned bytes, size_t *v)
{
	uint8_t b[4];

	TRY(take(r, b, bytes));
	*v = 0;
	for (unsigned i = 0; i < bytes; i++)
		*v = *v << 8 | b[i];
	return CH_OK;
}

/* A length of BYTES bytes that must be at least MIN and end exactly at END. */
static enum ch_result get_len_to(struct rd *r, unsigned bytes, size_t end, size_t min, size_t *v)
{
	if (end - r->off < bytes)
		return CH_BAD;
	TRY(get_n(r, bytes, v));
	return *v < min || *v != end - r->off ? CH_BAD : CH_OK;
}

/* A length of BYTES bytes, at least MIN, whose bytes fit before END. */
static enum ch_result get_len_in(struct rd *r, unsigned bytes, size_t end, size_t min, size_t *v)
{
	if (end - r->off < bytes)
		return CH_BAD;
	TRY(get_n(r, bytes, v));
	return *v < min || *v > end - r->off ? CH_BAD : CH_OK;
}

static int graphic(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~')
			return 0;
	return 1;
}

/*
 * server_name: a list of exactly one host_name (the only name type there
 * is; OpenSSL refuses anything else too), copied lowercased.
 */
static enum ch_result ext_server_name(struct rd *r, size_t end, struct ch_info *ci)
{
	uint8_t name[255];
	size_t n, type;

	TRY(get_len_to(r, 2, end, 1, &n));
	TRY(get_n(r, 1, &type));
	if (type != 0)
		return CH_BAD;
	TRY(get_len_to(r, 2, end, 1, &n));
	if (n > sizeof(name))
		return CH_BAD;
	TRY(take(r, name, n));
	if (!graphic(name, n))
		return CH_BAD;
	for (size_t i = 0; i < n; i++)
		ci->sni[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	ci->sni[n] = 0;
	return CH_OK;
}

static enum ch_result ext_alpn(struct rd *r, size_t end, struct ch_info *ci)
{
	uint8_t name[255];
	size_t n;

	TRY(get_len_to(r, 2, end, 2, &n));
	while (r->off < end) {
		TRY(get_len_in(r, 1, end, 1, &n));
		TRY(take(r, name, n));
		if (!ci->alpn[0] && n < sizeof(ci->alpn) && graphic(name, n)) {
			memcpy(ci->alpn, name, n);
			ci->alpn[n] = 0;
		}
	}
	return CH_OK;
}

static enum ch_result ext_supported_versions(struct rd *r, size_t end, struct ch_info *ci)
{
	size_t n, v;

	TRY(get_len_to(r, 1, end, 2, &n));
	if (n & 1)
		return CH_BAD;
	while (r->off < end) {
		TRY(get_n(r, 2, &v));
		if (v == 0x0304)
			ci->tls13 = 1;
	}
	return CH_OK;
}

/* OfferedPsks: identities (opaque<1..>, a 32-bit age), then one binder each. */
static enum ch_result ext_pre_shared_key(struct rd *r, size_t end)
{
	size_t n, ids_end, nids = 0;

	TRY(get_len_in(r, 2, end, 7, &n));
	ids_end = r->off + n;
	while (r->off < ids_end) {
		TRY(get_len_in(r, 2, ids_end, 1, &n));
		if (ids_end - r->off < n + 4)
			return CH_BAD;
		TRY(take(r, NULL, n + 4));
		nids++;
	}
	TRY(get_len_to(r, 2, end, 33, &n));
	while (r->off < end) {
		TRY(get_len_in(r, 1, end, 32, &n));
		TRY(take(r, NULL, n));
		if (!nids--)
			return CH_BAD;
	}
	return nids ? CH_BAD : CH_OK;
}

static enum ch_result ext_key_share(struct rd *r, size_t end)
{
	size_t n;

	TRY(get_len_to(r, 2, end, 0, &n));
	while (r->off < end) {
		if (end - r->off < 2)
			return CH_BAD;
		TRY(take(r, NULL, 2));
		TRY(get_len_in(r, 2, end, 1, &n));
		TRY(take(r, NULL, n));
	}
	return CH_OK;
}

/* A list of 16-bit values behind a BYTES-byte length, exactly filling the extension. */
static enum ch_result ext_list16(struct rd *r, unsigned bytes, size_t end)
{
	size_t n;

	TRY(get_len_to(r, bytes, end, 2, &n));
	return n & 1 ? CH_BAD : take(r, NULL, n);
}

/*
 * One extension's body, ending at END. Those sluice reads and those with a
 * fixed shape are checked to the byte; the rest are skipped unread.
 */
static enum ch_result extension(struct rd *r, unsigned type, size_t end, struct ch_info *ci)
{
	size_t n = end - r->off;

	switch (type) {
	case EXT_SERVER_NAME:
		return ext_server_name(r, end, ci);
	case EXT_ALPN:
		return ext_alpn(r, end, ci);
	case EXT_SUPPORTED_VERSIONS:
		return ext_supported_versions(r, end, ci);
	case EXT_PRE_SHARED_KEY:
		ci->resume |= CH_RESUME_PSK;
		return ext_pre_shared_key(r, end);
	case EXT_SESSION_TICKET:
		if (n)
			ci->resume |= CH_RESUME_TICKET;
		return take(r, NULL, n);
	case EXT_KEY_SHARE:
		return ext_key_share(r, end);
	case EXT_SUPPORTED_GROUPS:
	case EXT_SIGNATURE_ALGORITHMS:
	case EXT_SIGNATURE_ALGORITHMS_CERT:
		return ext_list16(r, 2, end);
	case EXT_EC_POINT_FORMATS:
	case EXT_PSK_KEY_EXCHANGE_MODES:
		TRY(get_len_to(r, 1, end, 1, &n));
		return take(r, NULL, n);
	case EXT_COOKIE:
		TRY(get_len_to(r, 2, end, 1, &n));
		return take(r, NULL, n);
	case EXT_RENEGOTIATION_INFO:
		TRY(get_len_to(r, 1, end, 0, &n));
		return take(r, NULL, n);
	case EXT_ENCRYPT_THEN_MAC:
	case EXT_EXTENDED_MASTER_SECRET:
	case EXT_EARLY_DATA:
	case EXT_POST_HANDSHAKE_AUTH:
		return n ? CH_BAD : CH_OK;
	default:
		return take(r, NULL, n);
	}
}

/*
 * The extensions block, exactly to the end of the message. A type may come
 * once (a bit per type: 8 KiB of stack, no cap on how many there are);
 * pre_shared_key comes last and after psk_key_exchange_modes, as RFC 8446
 * 4.2 and 4.2.9 require and OpenSSL enforces.
 */
static enum ch_result extensions(struct rd *r, struct ch_info *ci)
{
	uint64_t seen[65536 / 64];
	size_t type, n, end;

	TRY(get_len_to(r, 2, r->msg_end, 0, &n));
	memset(seen, 0, sizeof(seen));
	while (r->off < r->msg_end) {
		if (ci->resume & CH_RESUME_PSK)
			return CH_BAD;
		if (r->msg_end - r->off < 4)
			return CH_BAD;
		TRY(get_n(r, 2, &type));
		if (seen[type / 64] >> (type % 64) & 1)
			return CH_BAD;
		seen[type / 64] |= 1ull << (type % 64);
		if (type == EXT_PRE_SHARED_KEY &&
		    !(seen[EXT_PSK_KEY_EXCHANGE_MODES / 64] >> (EXT_PSK_KEY_EXCHANGE_MODES % 64) &
		      1))
			return CH_BAD;
		TRY(get_len_in(r, 2, r->msg_end, 0, &n));
		end = r->off + n;
		TRY(extension(r, (unsigned)type, end, ci));
		if (r->off != end)
			return CH_BAD;
	}
	return CH_OK;
}

static enum ch_result hello(struct rd *r, struct ch_info *ci)
{
	size_t v, sid_len;

	TRY(get_n(r, 1, &v));
	if (v != HS_CLIENT_HELLO)
		return CH_BAD;
	TRY(get_n(r, 3, &v));
	r->msg_end = HS_HDR + v;
	TRY(check_bound(r));

	/* legacy_version, random */
	TRY(get_n(r, 2, &v));
	if (v >> 8 != 3)
		return CH_BAD;
	TRY(take(r, NULL, 32));
	TRY(get_n(r, 1, &sid_len));
	if (sid_len > 32)
		return CH_BAD;
	TRY(take(r, NULL, sid_len));
	TRY(get_n(r, 2, &v));
	if (!v || v & 1)
		return CH_BAD;
	TRY(take(r, NULL, v));
	TRY(get_n(r, 1, &v));
	if (!v)
		return CH_BAD;
	TRY(take(r, NULL, v));
	/* a hello without extensions ends here (TLS 1.2 and older) */
	if (r->off < r->msg_end)
		TRY(extensions(r, ci));

	/* the hello is the last thing in its record: nothing may follow it there */
	if (r->pos != r->rec_end)
		return CH_BAD;
	if (sid_len && !ci->tls13)
		ci->resume |= CH_RESUME_SESSION_ID;
	return CH_OK;
}

enum ch_result clienthello_parse(const uint8_t *buf, size_t len, struct ch_info *ci)
{
	struct rd r = {.buf = buf, .len = len < CH_MAX ? len : CH_MAX};
	enum ch_result res;

	memset(ci, 0, sizeof(*ci));
	res = hello(&r, ci);
	if (res != CH_OK) {
		memset(ci, 0, sizeof(*ci));
		if (res == CH_NEED_MORE)
			ci->need = r.need;
	}
	return res;
}
