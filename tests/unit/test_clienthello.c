// SPDX-License-Identifier: MIT
/*
 * The ClientHello peek parser, on real hellos from OpenSSL clients (TLS 1.2
 * only, TLS 1.3 with SNI and ALPN, and resuming clients of each kind, whose
 * resumption is proven by finishing the handshake against an in-process
 * server), every prefix and several record splits of them, hand-built
 * hellos for each rule, and random and mutated bytes. Every parse reads from
 * a heap copy of exactly the bytes offered, so ASan catches any read past
 * them.
 *
 * With CH_DUMP=DIR in the environment the hellos are also written to DIR as
 * seeds for tests/fuzz/fuzz_clienthello.c: raw streams (first byte 22) and
 * message bodies behind a record-size byte (see that file).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/clienthello.h"
#include "tests/unit/test.h"

#define BUF (1 << 17)

struct hello {
	const char *name;
	uint8_t *raw; /* the client's first flight: the hello in records */
	size_t len;
	const uint8_t *msg; /* the handshake message in it */
	size_t msg_len;
};

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* What every result must satisfy, whatever the input. */
static void check_any(size_t len, enum ch_result res, const struct ch_info *ci)
{
	static const struct ch_info zero;
	struct ch_info z = *ci;

	CHECK(res >= CH_OK && res <= CH_TOO_BIG);
	if (res != CH_OK) {
		z.need = 0;
		CHECK(!memcmp(&z, &zero, sizeof(z)));
		if (res == CH_NEED_MORE) {
			CHECK(ci->need == 0 || ci->need > len);
			CHECK(ci->need <= CH_MAX);
			CHECK(len < CH_MAX);
		} else {
			CHECK_EQ(ci->need, 0);
		}
		return;
	}
	CHECK_EQ(ci->need, 0);
	CHECK(!(ci->resume & ~7u));
	CHECK(ci->tls13 <= 1);
	CHECK(!(ci->tls13 && (ci->resume & CH_RESUME_SESSION_ID)));
	CHECK(clienthello_resumes(ci) == (ci->resume != 0));
	CHECK(strnlen(ci->sni, sizeof(ci->sni)) < sizeof(ci->sni));
	CHECK(strnlen(ci->alpn, sizeof(ci->alpn)) < sizeof(ci->alpn));
	for (const char *p = ci->sni; *p; p++)
		CHECK(*p >= '!' && *p <= '~' && !(*p >= 'A' && *p <= 'Z'));
	for (const char *p = ci->alpn; *p; p++)
		CHECK(*p >= '!' && *p <= '~');
}

/* Parse the first LEN bytes of S from an exact-size heap copy. */
static enum ch_result parse(const uint8_t *s, size_t len, struct ch_info *ci)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum ch_result res;

	memcpy(copy, s, len);
	memset(ci, 0xa5, sizeof(*ci));
	res = clienthello_parse(copy, len, ci);
	free(copy);
	check_any(len, res, ci);
	return res;
}

static int same_info(const struct ch_info *a, const struct ch_info *b)
{
	return a->resume == b->resume && a->tls13 == b->tls13 && !strcmp(a->sni, b->sni) &&
	       !strcmp(a->alpn, b->alpn);
}

/* MSG in handshake records of at most REC bytes, record version 0x0301. */
static size_t frame(const uint8_t *msg, size_t len, size_t rec, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i += rec) {
		size_t k = len - i < rec ? len - i : rec;

		out[n++] = 22;
		out[n++] = 3;
		out[n++] = 1;
		out[n++] = (uint8_t)(k >> 8);
		out[n++] = (uint8_t)k;
		memcpy(out + n, msg + i, k);
		n += k;
	}
	return n;
}

static void dump(const char *name, int pre, const uint8_t *s, size_t len)
{
	const char *dir = getenv("CH_DUMP");
	char path[512];
	FILE *f;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "test_clienthello: %s: %s\n", path, strerror(errno));
		test_failures++;
		return;
	}
	if (pre >= 0)
		fputc(pre, f);
	fwrite(s, 1, len, f);
	fclose(f);
}

/* ---- real hellos from OpenSSL --------------------------------------------- */

static SSL_CTX *server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!key || !x || !ctx)
		goto err;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"sluice-test",
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (!X509_sign(x, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		goto err;
	/* the session cache and ticket keys of this context serve every resumption below */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sluice", 6);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
err:
	ERR_print_errors_fp(stderr);
	X509_free(x);
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL *new_ssl(SSL_CTX *ctx, int server)
{
	SSL *ssl = SSL_new(ctx);

	SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	return ssl;
}

/* What FROM wrote, to TO's input; the first flight also to *OUT. */
static void move(SSL *from, SSL *to, uint8_t **out, size_t *out_len)
{
	BIO *w = SSL_get_wbio(from);
	uint8_t buf[4096];
	int n;

	while ((n = BIO_read(w, buf, sizeof(buf))) > 0) {
		if (out) {
			*out = realloc(*out, *out_len + (size_t)n);
			memcpy(*out + *out_len, buf, (size_t)n);
			*out_len += (size_t)n;
		}
		BIO_write(SSL_get_rbio(to), buf, n);
	}
}

static int step(SSL *ssl, int *done)
{
	int rc;

	if (*done)
		return 0;
	rc = SSL_do_handshake(ssl);
	if (rc == 1)
		*done = 1;
	else if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ)
		return -1;
	return 0;
}

/*
 * A whole handshake between a new client and server; the client's first
 * flight is the hello. Returns the client's session, tickets read, or NULL.
 */
static SSL_SESSION *handshake(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *resume, const char *sni,
			      struct hello *h, int *reused)
{
	static const uint8_t alpn[] = "\x02h2\x08http/1.1";
	SSL *c = new_ssl(cctx, 0), *s = new_ssl(sctx, 1);
	SSL_SESSION *sess = NULL;
	int c_done = 0, s_done = 0, rc;
	uint8_t byte;

	h->raw = NULL;
	h->len = 0;
	if (resume)
		SSL_set_session(c, resume);
	if (sni) {
		SSL_set_tlsext_host_name(c, sni);
		SSL_set_alpn_protos(c, alpn, sizeof(alpn) - 1);
	}
	for (int i = 0; i < 20 && !(c_done && s_done); i++) {
		if (step(c, &c_done))
			goto out;
		move(c, s, i == 0 ? &h->raw : NULL, &h->len);
		if (step(s, &s_done))
			goto out;
		move(s, c, NULL, NULL);
	}
	if (!c_done || !s_done)
		goto out;
	/* TLS 1.3 tickets come after the handshake: let the client read them */
	rc = SSL_read(c, &byte, 1);
	if (rc > 0 || SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
		goto out;
	*reused = SSL_session_reused(c);
	sess = SSL_get1_session(c);
	/* freed without a shutdown, a session is dropped from the caches as bad */
	SSL_shutdown(c);
	SSL_shutdown(s);
out:
	if (!sess)
		ERR_print_errors_fp(stderr);
	SSL_free(c);
	SSL_free(s);
	return sess;
}

/* The handshake message in the hello, which OpenSSL sends in one record; 0 if it is. */
static int split_hello(struct hello *h)
{
	int one =
	    h->len > 5 + 4 && h->raw[0] == 22 && ((size_t)h->raw[3] << 8 | h->raw[4]) == h->len - 5;

	CHECK(one);
	h->msg = h->raw + 5;
	h->msg_len = h->len - 5;
	return one ? 0 : -1;
}

static SSL_CTX *client_ctx(int max_version, long options)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_max_proto_version(ctx, max_version);
	SSL_CTX_set_options(ctx, options);
	return ctx;
}

/* Fresh and resumed hellos for one kind of client; 0 if they could be made. */
static int client_pair(SSL_CTX *sctx, int max_version, long options, const char *sni,
		       struct hello *fresh, struct hello *resumed)
{
	SSL_CTX *cctx = client_ctx(max_version, options);
	SSL_SESSION *s1 = NULL, *s2 = NULL;
	int reused = -1, rc = -1;

	s1 = handshake(cctx, sctx, NULL, sni, fresh, &reused);
	CHECK(s1 != NULL);
	CHECK_EQ(reused, 0);
	if (!s1)
		goto out;
	CHECK(SSL_SESSION_is_resumable(s1));
	s2 = handshake(cctx, sctx, s1, sni, resumed, &reused);
	CHECK(s2 != NULL);
	/* the hello below is classified as resumption: prove the server took it so */
	CHECK_EQ(reused, 1);
	if (s2 && !split_hello(fresh) && !split_hello(resumed))
		rc = 0;
out:
	SSL_SESSION_free(s1);
	SSL_SESSION_free(s2);
	SSL_CTX_free(cctx);
	return rc;
}

/* The legacy session id's length in a one-record hello. */
static unsigned sid_len(const struct hello *h)
{
	return h->raw[5 + 4 + 2 + 32];
}

/* Every prefix, and the hello in records of several sizes, with every prefix of those. */
static void check_hello_everywhere(const struct hello *h, const struct ch_info *want)
{
	static const size_t recs[] = {1, 2, 7, 100, 255, 16384};
	static uint8_t s[BUF];
	struct ch_info ci;
	size_t n;

	for (size_t k = 0; k < h->len; k++) {
		CHECK_EQ(parse(h->raw, k, &ci), CH_NEED_MORE);
		/* one record: its header tells all there is to know */
		CHECK_EQ(ci.need, k < 5 ? 0 : h->len);
	}
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		size_t last_need = 0;

		n = frame(h->msg, h->msg_len, recs[i], s);
		CHECK_EQ(parse(s, n, &ci), CH_OK);
		CHECK(same_info(&ci, want));
		for (size_t k = 0; k < n; k++) {
			CHECK_EQ(parse(s, k, &ci), CH_NEED_MORE);
			/* a lower bound, so it never shrinks and never overshoots */
			if (ci.need) {
				CHECK(ci.need >= last_need && ci.need <= n);
				last_need = ci.need;
			}
		}
		CHECK_EQ(last_need, n);
	}

	/* what follows the hello's record is not looked at: a CCS, early data, junk */
	memcpy(s, h->raw, h->len);
	memcpy(s + h->len, "\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x05hello", 17);
	CHECK_EQ(parse(s, h->len + 17, &ci), CH_OK);
	CHECK(same_info(&ci, want));
	memcpy(s + h->len, "GET / HTTP/1.1\r\n", 16);
	CHECK_EQ(parse(s, h->len + 16, &ci), CH_OK);
	CHECK(same_info(&ci, want));
	/* but within it, after the hello, is an error */
	n = h->len - 5 + 1;
	s[3] = (uint8_t)(n >> 8);
	s[4] = (uint8_t)n;
	s[h->len] = 0;
	CHECK_EQ(parse(s, h->len + 1, &ci), CH_BAD);
	CHECK_EQ(parse(s, h->len, &ci), CH_BAD);
	/* the message's length disagreeing with what is in it */
	memcpy(s, h->raw, h->len);
	s[8]++;
	CHECK(parse(s, h->len, &ci) != CH_OK);
	s[8] -= 2;
	CHECK_EQ(parse(s, h->len, &ci), CH_BAD);
}

/* Flip, delete and duplicate bytes: any answer but a crash or a broken promise. */
static void mutate(const struct hello *h, unsigned rounds)
{
	static uint8_t s[BUF];
	struct ch_info ci, cf;
	enum ch_result res;
	size_t n;

	for (unsigned r = 0; r < rounds; r++) {
		n = h->len;
		memcpy(s, h->raw, n);
		for (unsigned f = 1 + next() % 4; f; f--) {
			size_t at = next() % n;

			switch (next() % 4) {
			case 0:
				s[at] = (uint8_t)next();
				break;
			case 1:
				s[at] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 2:
				if (n > 1) {
					memmove(s + at, s + at + 1, n - at - 1);
					n--;
				}
				break;
			case 3:
				memmove(s + at + 1, s + at, n - at);
				n++;
				break;
			}
		}
		res = parse(s, n, &cf);
		/* an answer other than NEED_MORE is final: it holds for a shorter prefix too */
		n = next() % (n + 1);
		if (parse(s, n, &ci) != CH_NEED_MORE) {
			CHECK_EQ(parse(s, n, &ci), res);
			if (res == CH_OK)
				CHECK(same_info(&ci, &cf));
		}
	}
}

static void test_openssl(void)
{
	struct hello h12 = {.name = "tls12"}, h12_ticket = {.name = "tls12-ticket"};
	struct hello h12_sid_fresh = {.name = "tls12-sid-fresh"}, h12_sid = {.name = "tls12-sid"};
	struct hello h13 = {.name = "tls13-sni-alpn"}, h13_psk = {.name = "tls13-psk"};
	struct hello *all[] = {&h12, &h12_ticket, &h12_sid_fresh, &h12_sid, &h13, &h13_psk};
	SSL_CTX *sctx = server_ctx();
	struct ch_info ci;
	int ok;

	CHECK(sctx != NULL);
	if (!sctx)
		return;
	ok = !client_pair(sctx, TLS1_2_VERSION, 0, NULL, &h12, &h12_ticket);
	ok &= !client_pair(sctx, TLS1_2_VERSION, SSL_OP_NO_TICKET, NULL, &h12_sid_fresh, &h12_sid);
	ok &= !client_pair(sctx, TLS1_3_VERSION, 0, "Www.Example.COM", &h13, &h13_psk);
	SSL_CTX_free(sctx);
	if (!ok)
		goto out;

	/* a TLS 1.2-only client with nothing to resume: full */
	CHECK_EQ(parse(h12.raw, h12.len, &ci), CH_OK);
	CHECK_EQ(ci.tls13, 0);
	CHECK_EQ(ci.resume, 0);
	CHECK(!clienthello_resumes(&ci));
	CHECK(!strcmp(ci.sni, "") && !strcmp(ci.alpn, ""));
	CHECK_EQ(sid_len(&h12), 0);
	check_hello_everywhere(&h12, &ci);

	/* resuming with a ticket (OpenSSL also sends the session id it derived from it) */
	CHECK_EQ(parse(h12_ticket.raw, h12_ticket.len, &ci), CH_OK);
	CHECK_EQ(ci.tls13, 0);
	CHECK(ci.resume & CH_RESUME_TICKET);
	CHECK(!(ci.resume & CH_RESUME_PSK));
	CHECK(clienthello_resumes(&ci));
	check_hello_everywhere(&h12_ticket, &ci);

	/* no tickets: the server's session cache, by session id */
	CHECK_EQ(parse(h12_sid_fresh.raw, h12_sid_fresh.len, &ci), CH_OK);
	CHECK_EQ(ci.resume, 0);
	CHECK_EQ(parse(h12_sid.raw, h12_sid.len, &ci), CH_OK);
	CHECK_EQ(ci.resume, CH_RESUME_SESSION_ID);
	CHECK_EQ(ci.tls13, 0);
	CHECK(sid_len(&h12_sid) > 0);
	check_hello_everywhere(&h12_sid, &ci);

	/*
	 * TLS 1.3 with SNI and ALPN: a full handshake although the session id
	 * is 32 random bytes (middlebox compatibility), the name lowercased.
	 */
	CHECK_EQ(parse(h13.raw, h13.len, &ci), CH_OK);
	CHECK_EQ(ci.tls13, 1);
	CHECK_EQ(ci.resume, 0);
	CHECK_EQ(sid_len(&h13), 32);
	CHECK(!strcmp(ci.sni, "www.example.com"));
	CHECK(!strcmp(ci.alpn, "h2"));
	check_hello_everywhere(&h13, &ci);

	CHECK_EQ(parse(h13_psk.raw, h13_psk.len, &ci), CH_OK);
	CHECK_EQ(ci.tls13, 1);
	CHECK_EQ(ci.resume, CH_RESUME_PSK);
	CHECK(!strcmp(ci.sni, "www.example.com"));
	CHECK(!strcmp(ci.alpn, "h2"));
	check_hello_everywhere(&h13_psk, &ci);

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char name[64];
		static uint8_t s[BUF];

		mutate(all[i], 3000);
		dump(all[i]->name, -1, all[i]->raw, all[i]->len);
		snprintf(name, sizeof(name), "%s-rec100", all[i]->name);
		dump(name, -1, s, frame(all[i]->msg, all[i]->msg_len, 100, s));
		snprintf(name, sizeof(name), "%s-body", all[i]->name);
		dump(name, 100, all[i]->msg + 4, all[i]->msg_len - 4);
	}
out:
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->raw);
}

/* ---- hand-built hellos ---------------------------------------------------- */

struct b {
	uint8_t d[BUF];
	size_t n;
};

static void put(struct b *b, const void *s, size_t n)
{
	memcpy(b->d + b->n, s, n);
	b->n += n;
}

static void put8(struct b *b, unsigned v)
{
	b->d[b->n++] = (uint8_t)v;
}

static void put16(struct b *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v);
}

static void put24(struct b *b, unsigned v)
{
	put8(b, v >> 16);
	put16(b, v);
}

/* An extension: type and data. */
static void ext(struct b *b, unsigned type, const void *data, size_t n)
{
	put16(b, type);
	put16(b, (unsigned)n);
	put(b, data, n);
}

/* A hello message: session id of SID bytes, EXT_LEN bytes of extensions (-1: no block). */
static size_t msg(uint8_t *out, unsigned sid, const uint8_t *exts, long ext_len)
{
	static struct b b;
	size_t body;

	b.n = 0;
	put8(&b, 1);
	put24(&b, 0);
	put16(&b, 0x0303);
	for (unsigned i = 0; i < 32; i++)
		put8(&b, i);
	put8(&b, sid);
	for (unsigned i = 0; i < sid; i++)
		put8(&b, 0xee);
	put16(&b, 4);
	put(&b, "\x13\x01\xc0\x2f", 4);
	put8(&b, 1);
	put8(&b, 0);
	if (ext_len >= 0) {
		put16(&b, (unsigned)ext_len);
		put(&b, exts, (size_t)ext_len);
	}
	body = b.n - 4;
	b.d[1] = (uint8_t)(body >> 16);
	b.d[2] = (uint8_t)(body >> 8);
	b.d[3] = (uint8_t)body;
	memcpy(out, b.d, b.n);
	return b.n;
}

/* Parse the hello made of SID and the extensions in E, in one record. */
static enum ch_result parse_exts(unsigned sid, const struct b *e, struct ch_info *ci)
{
	static uint8_t m[BUF], s[BUF];
	size_t n = msg(m, sid, e->d, (long)e->n);

	return parse(s, frame(m, n, 16384, s), ci);
}

static const uint8_t v13[] = "\x04\x03\x04\x03\x03"; /* supported_versions: 1.3, 1.2 */
static const uint8_t modes[] = "\x01\x01";	     /* psk_dhe_ke */

/* A PSK with NIDS identities and NBINDERS binders. */
static void psk(struct b *e, unsigned nids, unsigned nbinders)
{
	struct b p = {.n = 0};

	put16(&p, nids * (2 + 5 + 4));
	for (unsigned i = 0; i < nids; i++) {
		put16(&p, 5);
		put(&p, "tickt", 5);
		put(&p, "\0\0\0\1", 4);
	}
	put16(&p, nbinders * 33);
	for (unsigned i = 0; i < nbinders; i++) {
		put8(&p, 32);
		for (unsigned j = 0; j < 32; j++)
			put8(&p, j);
	}
	ext(e, 41, p.d, p.n);
}

static void test_built(void)
{
	static uint8_t m[BUF], s[BUF];
	static struct b e;
	struct ch_info ci;
	size_t n;

	/* no extension block at all (TLS 1.2 and older may): fine */
	n = msg(m, 0, NULL, -1);
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_OK);
	CHECK_EQ(ci.resume, 0);
	dump("built-noext-body", 7, m + 4, n - 4);
	/* a session id without TLS 1.3 is a resumption; with it, it is not */
	n = msg(m, 32, NULL, -1);
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_OK);
	CHECK_EQ(ci.resume, CH_RESUME_SESSION_ID);
	e.n = 0;
	ext(&e, 43, v13, 5);
	CHECK_EQ(parse_exts(32, &e, &ci), CH_OK);
	CHECK_EQ(ci.resume, 0);
	CHECK_EQ(ci.tls13, 1);
	/* supported_versions with 1.2 only */
	e.n = 0;
	ext(&e, 43, "\x02\x03\x03", 3);
	CHECK_EQ(parse_exts(32, &e, &ci), CH_OK);
	CHECK_EQ(ci.resume, CH_RESUME_SESSION_ID);
	CHECK_EQ(ci.tls13, 0);

	/* session id, cipher suites, compression methods */
	n = msg(m, 33, NULL, -1);
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	n = msg(m, 0, NULL, -1);
	m[4 + 2 + 32 + 1 + 1] = 3; /* suites length odd */
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	m[4 + 2 + 32 + 1 + 1] = 0; /* empty */
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	n = msg(m, 0, NULL, -1);
	m[n - 2] = 0; /* no compression method */
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	n = msg(m, 0, NULL, -1);
	m[4] = 2; /* legacy_version 2.x */
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);

	/* the extensions block: exactly to the end, one byte of it is not one */
	e.n = 0;
	ext(&e, 43, v13, 5);
	n = msg(m, 0, e.d, (long)e.n);
	m[n - e.n - 1]++;
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	m[n - e.n - 1] -= 2;
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	n = msg(m, 0, NULL, -1);
	m[n++] = 0;
	m[3]++;
	CHECK_EQ(parse(s, frame(m, n, 16384, s), &ci), CH_BAD);
	/* an extension running past the block */
	e.n = 0;
	ext(&e, 0x1234, "abc", 3);
	e.d[3] = 4;
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);

	/* unknown and GREASE extensions are opaque; a type only once */
	e.n = 0;
	ext(&e, 0x0a0a, "", 0);
	ext(&e, 0x1234, "\xff\x00\x01", 3);
	ext(&e, 21, "\0\0\0\0\0\0", 6);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
	ext(&e, 0x1234, "", 0);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 43, v13, 5);
	ext(&e, 43, v13, 5);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);

	/* SNI */
	e.n = 0;
	ext(&e, 0, "\x00\x0e\x00\x00\013Example.COM", 16);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
	CHECK(!strcmp(ci.sni, "example.com"));
	e.d[4 + 5 + 7] = ' ';
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.d[4 + 5 + 7] = 0;
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.d[4 + 5 + 7] = 0x80;
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 0, "\x00\x03\x00\x00\x00", 5); /* empty name */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 0, "\x00\x04\x01\x00\x01x", 6); /* name type 1 */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 0, "\x00\x08\x00\x00\x01x\x00\x00\x01y", 11); /* two names */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 0, "", 0);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	for (unsigned len = 254; len <= 256; len++) {
		static struct b sn;

		sn.n = 0;
		put16(&sn, len + 3);
		put8(&sn, 0);
		put16(&sn, len);
		for (unsigned i = 0; i < len; i++)
			put8(&sn, 'A' + i % 26);
		e.n = 0;
		ext(&e, 0, sn.d, sn.n);
		CHECK_EQ(parse_exts(0, &e, &ci), len <= 255 ? CH_OK : CH_BAD);
		CHECK_EQ(strlen(ci.sni), len <= 255 ? len : 0);
		CHECK(len > 255 || (ci.sni[0] == 'a' && ci.sni[25] == 'z'));
	}

	/* ALPN: the first printable name that fits */
	e.n = 0;
	ext(&e, 16, "\x00\x0c\x02\x0a\x0a\x02h2\x05h2c/1", 14);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
	CHECK(!strcmp(ci.alpn, "h2"));
	{
		static struct b al;

		al.n = 0;
		put16(&al, 1 + 64 + 1 + 8);
		put8(&al, 64);
		for (unsigned i = 0; i < 64; i++)
			put8(&al, 'x');
		put(&al, "\x08http/1.1", 9);
		e.n = 0;
		ext(&e, 16, al.d, al.n);
		CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
		CHECK(!strcmp(ci.alpn, "http/1.1"));
		al.d[2] = 63;
		al.d[1]--;
		memmove(al.d + 3 + 63, al.d + 3 + 64, 9);
		al.n--;
		e.n = 0;
		ext(&e, 16, al.d, al.n);
		CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
		CHECK_EQ(strlen(ci.alpn), 63);
	}
	e.n = 0;
	ext(&e, 16, "\x00\x00", 2);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 16, "\x00\x03\x00\x01x", 5); /* an empty name */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 16, "\x00\x03\x03h2", 5); /* a name past the list */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);

	/* session_ticket: empty is "I take tickets", with data it is a resumption */
	e.n = 0;
	ext(&e, 35, "", 0);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
	CHECK_EQ(ci.resume, 0);
	e.n = 0;
	ext(&e, 35, "0123456789", 10);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
	CHECK_EQ(ci.resume, CH_RESUME_TICKET);

	/* pre_shared_key: last, after psk_key_exchange_modes, one binder per identity */
	e.n = 0;
	ext(&e, 43, v13, 5);
	ext(&e, 45, modes, 2);
	psk(&e, 2, 2);
	CHECK_EQ(parse_exts(32, &e, &ci), CH_OK);
	CHECK_EQ(ci.resume, CH_RESUME_PSK);
	CHECK_EQ(ci.tls13, 1);
	n = msg(m, 32, e.d, (long)e.n);
	dump("built-psk-body", 3, m + 4, n - 4);
	ext(&e, 0x1234, "", 0);
	CHECK_EQ(parse_exts(32, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 43, v13, 5);
	psk(&e, 1, 1);
	CHECK_EQ(parse_exts(32, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 45, modes, 2);
	psk(&e, 2, 1);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 45, modes, 2);
	psk(&e, 1, 2);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 45, modes, 2);
	psk(&e, 0, 0);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 45, modes, 2);
	ext(&e, 41, "\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x21\x20", 12); /* empty identity */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);

	/* inner lengths of the list-shaped extensions */
	e.n = 0;
	ext(&e, 43, "\x03\x03\x04\x03", 4); /* odd list */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 43, "\x04\x03\x04", 3); /* past the extension */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 10, "\x00\x04\x00\x1d\x00\x17", 6);
	ext(&e, 13, "\x00\x02\x04\x03", 4);
	ext(&e, 51, "\x00\x06\x00\x1d\x00\x02\xaa\xbb", 8);
	ext(&e, 11, "\x01\x00", 2);
	ext(&e, 23, "", 0);
	ext(&e, 0xff01, "\x00", 1);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_OK);
	e.n = 0;
	ext(&e, 10, "\x00\x03\x00\x1d\x00", 5);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 51, "\x00\x06\x00\x1d\x00\x03\xaa\xbb", 8);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 51, "\x00\x04\x00\x1d\x00\x00", 6); /* an empty key */
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
	e.n = 0;
	ext(&e, 23, "x", 1);
	CHECK_EQ(parse_exts(0, &e, &ci), CH_BAD);
}

/* ---- records and streams that are not a hello ---------------------------- */

static void test_records(void)
{
	static uint8_t m[BUF], s[BUF];
	static struct b e;
	struct ch_info ci;
	size_t n, sn;

	CHECK_EQ(parse((const uint8_t *)"", 0, &ci), CH_NEED_MORE);
	CHECK_EQ(ci.need, 0);
	CHECK_EQ(parse((const uint8_t *)"\x16", 1, &ci), CH_NEED_MORE);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03", 2, &ci), CH_NEED_MORE);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x02", 4, &ci), CH_NEED_MORE);
	CHECK_EQ(ci.need, 0);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x02\x00", 5, &ci), CH_NEED_MORE);
	CHECK_EQ(ci.need, 5 + 512);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9, &ci),
		 CH_NEED_MORE);
	CHECK_EQ(ci.need, 5 + 512);
	/* the message goes on past its record: at least one more header */
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x00\x04\x01\x00\x01\xfc", 9, &ci),
		 CH_NEED_MORE);
	CHECK_EQ(ci.need, 9 + 5 + 0x1fc);

	/* not TLS */
	CHECK_EQ(parse((const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &ci), CH_NOT_TLS);
	CHECK_EQ(parse((const uint8_t *)"G", 1, &ci), CH_NOT_TLS);
	CHECK_EQ(parse((const uint8_t *)"PRI * HTTP/2.0\r\n", 16, &ci), CH_NOT_TLS);
	/* an SSLv2-compatible hello (two-byte header with the high bit) */
	CHECK_EQ(parse((const uint8_t *)"\x80\x2e\x01\x03\x01\x00\x15", 7, &ci), CH_NOT_TLS);
	CHECK_EQ(parse((const uint8_t *)"\x15\x03\x01\x00\x02\x02\x28", 7, &ci), CH_NOT_TLS);

	/* record headers, judged byte by byte */
	CHECK_EQ(parse((const uint8_t *)"\x16\x02", 2, &ci), CH_BAD);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x00", 3, &ci), CH_BAD);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x05", 3, &ci), CH_BAD);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x04\x00\x00", 5, &ci), CH_BAD);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x03\x41\x01", 5, &ci), CH_BAD);
	/* a record that is not too long, but for a hello at the start of the stream */
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x03\x41\x00", 5, &ci), CH_TOO_BIG);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x03\x3f\xfc", 5, &ci), CH_TOO_BIG);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x03\x3f\xfb", 5, &ci), CH_NEED_MORE);
	CHECK_EQ(ci.need, CH_MAX);
	/* not a ClientHello */
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x00\x04\x02", 6, &ci), CH_BAD);

	e.n = 0;
	ext(&e, 0, "\x00\x0e\x00\x00\013example.com", 16);
	ext(&e, 43, v13, 5);
	n = msg(m, 32, e.d, (long)e.n);
	dump("built-sni-body", 50, m + 4, n - 4);
	/* another content type before the hello is whole */
	sn = frame(m, n, 50, s);
	CHECK_EQ(parse(s, sn, &ci), CH_OK);
	CHECK(!strcmp(ci.sni, "example.com"));
	for (unsigned type = 0; type < 256; type++) {
		s[55] = (uint8_t)type;
		CHECK_EQ(parse(s, sn, &ci), type == 22 ? CH_OK : CH_BAD);
		CHECK_EQ(parse(s, 56, &ci), type == 22 ? CH_NEED_MORE : CH_BAD);
	}
	s[55] = 22;
	s[57] = 0; /* a record version in the middle */
	CHECK_EQ(parse(s, sn, &ci), CH_BAD);
	s[57] = 4;
	CHECK_EQ(parse(s, sn, &ci), CH_OK);
	/* an empty record in the middle */
	memmove(s + 60, s + 55, sn - 55);
	memcpy(s + 55, "\x16\x03\x01\x00\x00", 5);
	CHECK_EQ(parse(s, sn + 5, &ci), CH_BAD);
}

/* A hello of exactly TOTAL bytes, in records of REC: an unknown extension pads it. */
static size_t padded(uint8_t *s, size_t total, size_t rec)
{
	static uint8_t m[BUF], zero[BUF];
	static struct b e;
	size_t base, n, pad;

	e.n = 0;
	ext(&e, 0xfe00, "", 0);
	base = msg(m, 0, e.d, (long)e.n);
	/* records needed for a message of N bytes: ceil(N / rec) */
	for (pad = 0;; pad++) {
		n = base + pad;
		if (n + 5 * ((n + rec - 1) / rec) >= total)
			break;
	}
	e.n = 0;
	ext(&e, 0xfe00, zero, pad);
	n = msg(m, 0, e.d, (long)e.n);
	return frame(m, n, rec, s);
}

static void test_too_big(void)
{
	static uint8_t s[BUF];
	struct ch_info ci;
	size_t n;

	/* the message length alone */
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x40\x00\x01\xff\xff\xff", 9, &ci),
		 CH_TOO_BIG);
	CHECK_EQ(parse((const uint8_t *)"\x16\x03\x01\x40\x00\x01\x00\x40\x00", 9, &ci),
		 CH_TOO_BIG);
	/* one record: the hello may end at byte CH_MAX, not after */
	n = padded(s, CH_MAX, 16384);
	CHECK_EQ(n, CH_MAX);
	CHECK_EQ(parse(s, n, &ci), CH_OK);
	CHECK_EQ(parse(s, n - 1, &ci), CH_NEED_MORE);
	CHECK_EQ(ci.need, CH_MAX);
	n = padded(s, CH_MAX + 1, 16384 + 256);
	CHECK_EQ(n, CH_MAX + 1);
	CHECK_EQ(parse(s, 9, &ci), CH_TOO_BIG);
	CHECK_EQ(parse(s, n, &ci), CH_TOO_BIG);
	/* in records of 1000: the record headers count too, found at the first that tells */
	n = padded(s, CH_MAX, 1000);
	CHECK_EQ(n, CH_MAX);
	CHECK_EQ(parse(s, n, &ci), CH_OK);
	n = padded(s, CH_MAX + 1, 1000);
	CHECK_EQ(parse(s, n, &ci), CH_TOO_BIG);
	CHECK_EQ(parse(s, 16 * 1005, &ci), CH_TOO_BIG);
	CHECK_EQ(parse(s, 15 * 1005, &ci), CH_NEED_MORE);
	/* a caller that peeks more than CH_MAX gets no more looked at */
	CHECK_EQ(parse(s, CH_MAX + 5000, &ci), CH_TOO_BIG);
	/* 1-byte records: past CH_MAX long before the message is whole */
	n = padded(s, CH_MAX + 1, 1);
	CHECK_EQ(parse(s, n, &ci), CH_TOO_BIG);
}

/* Random streams behind a valid first record header, and pure noise. */
static void test_random(void)
{
	static uint8_t s[4096];
	struct ch_info ci;

	for (unsigned r = 0; r < 20000; r++) {
		size_t n = 5 + next() % (sizeof(s) - 5);

		for (size_t i = 0; i < n; i++)
			s[i] = (uint8_t)next();
		if (r & 1)
			memcpy(s, "\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03", 11);
		parse(s, n, &ci);
	}
}

int main(void)
{
	test_records();
	test_built();
	test_too_big();
	test_random();
	test_openssl();
	return test_result("clienthello");
}
