// SPDX-License-Identifier: MIT
#include "userspace/tlsctx.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "userspace/log.h"

/* Mozilla's "intermediate" TLS 1.2 suites: forward secret AEADs only. */
#define DEFAULT_CIPHERS                                                                 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                   \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                   \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_GROUPS "X25519:P-256:P-384"
#define MAX_NAMES 64 /* DNS names kept per certificate for SNI */

struct ticket_key {
	unsigned char name[16], hmac[32], aes[32];
};

/* Certificates with the same names share a context (one per key type in it). */
struct cert_group {
	SSL_CTX *ctx;
	char *names[MAX_NAMES]; /* lowercase; "*.example.com" for a wildcard */
	unsigned nnames;
	int key_types[4];       /* EVP_PKEY ids loaded into ctx */
	unsigned ntypes;
};

struct ocsp_staple {
	X509 *cert; /* as loaded into its context (not owned) */
	unsigned char *der;
	long len;
};

struct tls_server {
	struct cert_group groups[CFG_MAX_CERTS];
	unsigned ngroups;
	struct ocsp_staple staples[CFG_MAX_CERTS];
	unsigned nstaples;
	unsigned char alpn[CFG_MAX_ALPN * CFG_ALPN_MAX]; /* wire format */
	unsigned alpn_len;
	struct ticket_key keys[TLS_TICKET_KEYS_MAX];
	unsigned nkeys;
	int keys_from_file;
};

static int ex_server = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
	ex_server = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- errors ---------------------------------------------------------------- */

struct errs {
	char *text;
	size_t len;
};

static void add_err(struct errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_err(struct errs *e, const char *fmt, ...)
{
	char line[1024], ossl[256] = "";
	unsigned long code = ERR_peek_last_error();
	va_list ap;
	char *n;
	int len;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (code) {
		ERR_error_string_n(code, ossl, sizeof(ossl));
		ERR_clear_error();
	}
	len = snprintf(NULL, 0, "%s%s%s\n", line, *ossl ? " (" : "", *ossl ? ossl : "");
	n = realloc(e->text, e->len + (size_t)len + 2);
	if (!n)
		return;
	e->text = n;
	snprintf(e->text + e->len, (size_t)len + 2, "%s%s%s%s\n", line, *ossl ? " (" : "",
		 *ossl ? ossl : "", *ossl ? ")" : "");
	e->len += strlen(e->text + e->len);
}

/* ---- ticket keys ------------------------------------------------------------ */

int tlsctx_read_ticket_keys(const char *path, unsigned char keys[][80], unsigned max, char *err,
			    size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[256];
	unsigned n = 0, lineno = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned char raw[120];
		size_t len = strlen(line);
		int got;

		lineno++;
		while (len && isspace((unsigned char)line[len - 1]))
			line[--len] = 0;
		if (!len || line[0] == '#')
			continue;
		if (n == max) {
			snprintf(err, errlen, "%s:%u: more than %u keys", path, lineno, max);
			goto fail;
		}
		/* base64 of 80 bytes: 108 characters, the last one '=' padding */
		got = len == 108 ? EVP_DecodeBlock(raw, (const unsigned char *)line, (int)len) : -1;
		if (got != 81 || line[107] != '=' || line[106] == '=') {
			snprintf(err, errlen,
				 "%s:%u: not a key (base64 of 80 bytes on one line: "
				 "`openssl rand 80 | base64 -w0`)",
				 path, lineno);
			goto fail;
		}
		memcpy(keys[n++], raw, 80);
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	if (!n) {
		snprintf(err, errlen, "%s: no keys", path);
		return -1;
	}
	return (int)n;
fail:
	fclose(f);
	return -1;
}

/* Random keys for listeners without a file: made once, kept for the process. */
static struct ticket_key random_key;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;

static void random_key_init(void)
{
	if (RAND_bytes((unsigned char *)&random_key, sizeof(random_key)) != 1)
		abort(); /* no randomness: nothing about TLS can be trusted */
}

/*
 * The tickets' cipher, fetched once: EVP_aes_256_cbc() would make every
 * EVP_*Init_ex look the algorithm up again in OpenSSL 3's provider store
 * (a name look-up under a lock), twice per resumed handshake.
 */
static EVP_CIPHER *ticket_cipher;
static pthread_once_t ticket_cipher_once = PTHREAD_ONCE_INIT;

static void ticket_cipher_init(void)
{
	ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
		     EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_server *ts = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ex_server);
	const struct ticket_key *k = NULL;
	OSSL_PARAM params[3];

	if (!ts || pthread_once(&ticket_cipher_once, ticket_cipher_init) || !ticket_cipher)
		return -1;
	if (enc) {
		k = &ts->keys[0];
		memcpy(name, k->name, 16);
		if (RAND_bytes(iv, 16) != 1 ||
		    !EVP_EncryptInit_ex2(cctx, ticket_cipher, k->aes, iv, NULL))
			return -1;
	} else {
		for (unsigned i = 0; i < ts->nkeys && !k; i++)
			if (!memcmp(name, ts->keys[i].name, 16))
				k = &ts->keys[i];
		if (!k)
			return 0; /* unknown key: a full handshake */
		if (!EVP_DecryptInit_ex2(cctx, ticket_cipher, k->aes, iv, NULL))
			return -1;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, 32);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(hctx, params))
		return -1;
	/* 2: valid, but issue a new ticket under the newest key */
	return enc || k == &ts->keys[0] ? 1 : 2;
}

/* ---- callbacks ---------------------------------------------------------------- */

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned inlen, void *arg)
{
	const struct tls_server *ts = arg;
	unsigned char *o;

	if (!ts->alpn_len)
		return SSL_TLSEXT_ERR_NOACK;
	/* the server's order wins */
	if (SSL_select_next_proto(&o, outlen, ts->alpn, ts->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static int name_match(const char *pattern, const char *host)
{
	const char *dot;

	if (pattern[0] != '*')
		return strcasecmp(pattern, host) == 0;
	/* "*.example.com" covers exactly one label */
	dot = strchr(host, '.');
	return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

static int sni_cb(SSL *s, int *alert, void *arg)
{
	const struct tls_server *ts = arg;
	const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	const struct cert_group *wild = NULL;

	if (!host || ts->ngroups < 2)
		return SSL_TLSEXT_ERR_OK;
	for (unsigned i = 0; i < ts->ngroups; i++) {
		const struct cert_group *g = &ts->groups[i];

		for (unsigned j = 0; j < g->nnames; j++) {
			if (g->names[j][0] != '*' && name_match(g->names[j], host)) {
				SSL_set_SSL_CTX(s, g->ctx);
				return SSL_TLSEXT_ERR_OK;
			}
			if (!wild && g->names[j][0] == '*' && name_match(g->names[j], host))
				wild = g;
		}
	}
	if (wild)
		SSL_set_SSL_CTX(s, wild->ctx);
	/* no match: the first certificate, as without SNI */
	return SSL_TLSEXT_ERR_OK;
}

static int ocsp_cb(SSL *s, void *arg)
{
	const struct tls_server *ts = arg;
	X509 *cert = SSL_get_certificate(s);

	for (unsigned i = 0; i < ts->nstaples; i++) {
		unsigned char *copy;

		if (ts->staples[i].cert != cert)
			continue;
		copy = OPENSSL_memdup(ts->staples[i].der, (size_t)ts->staples[i].len);
		if (!copy || !SSL_set_tlsext_status_ocsp_resp(s, copy, ts->staples[i].len)) {
			OPENSSL_free(copy);
			return SSL_TLSEXT_ERR_NOACK;
		}
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* ---- certificates -------------------------------------------------------------- */

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

/* The DNS names a certificate is for: its SANs, or its CN when it has none. */
static unsigned cert_names(X509 *x, char **names, unsigned max)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	unsigned n = 0;

	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && n < max; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		const unsigned char *d;
		int len;

		if (g->type != GEN_DNS)
			continue;
		d = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (len > 0 && (size_t)len == strnlen((const char *)d, (size_t)len))
			names[n++] = strndup((const char *)d, (size_t)len);
	}
	GENERAL_NAMES_free(sans);
	if (!n) {
		char cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
					      sizeof(cn)) > 0)
			names[n++] = strdup(cn);
	}
	for (unsigned i = 0; i < n; i++) {
		if (!names[i])
			return i;
		for (char *p = names[i]; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	return n;
}

static int same_names(char **a, unsigned na, char **b, unsigned nb)
{
	if (na != nb)
		return 0;
	for (unsigned i = 0; i < na; i++) {
		unsigned j = 0;

		while (j < nb && strcmp(a[i], b[j]))
			j++;
		if (j == nb)
			return 0;
	}
	return 1;
}

static void warn_readable_key(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
		log_warn("tls: %s holds secrets but can be read by %s (mode %03o); chmod 600 it", path,
			 st.st_mode & S_IROTH ? "every user" : "its group", st.st_mode & 0777);
}

static long read_file(const char *path, unsigned char **out)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long len = -1;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && len < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len)) &&
	    fread(buf, 1, (size_t)len, f) == (size_t)len) {
		*out = buf;
	} else {
		free(buf);
		len = -1;
	}
	fclose(f);
	return len;
}

/* ---- a listener's contexts --------------------------------------------------------- */

static SSL_CTX *server_ctx(const struct cfg_tls *t, const char *sid, struct tls_server *ts,
			   struct errs *e, const char *where)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		add_err(e, "%s: cannot make a TLS context", where);
		return NULL;
	}
	SSL_CTX_set_ex_data(ctx, ex_server, ts);
	SSL_CTX_set_min_proto_version(ctx, t->min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* an idle connection holds no record buffers; writes may be partial */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!SSL_CTX_set_cipher_list(ctx, t->ciphers[0] ? t->ciphers : DEFAULT_CIPHERS)) {
		add_err(e, "%s.ciphers: no usable cipher in \"%s\"", where, t->ciphers);
		goto fail;
	}
	if (t->ciphersuites[0] && !SSL_CTX_set_ciphersuites(ctx, t->ciphersuites)) {
		add_err(e, "%s.ciphersuites: no usable suite in \"%s\"", where, t->ciphersuites);
		goto fail;
	}
	SSL_CTX_set1_groups_list(ctx, DEFAULT_GROUPS);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid,
				       (unsigned)strnlen(sid, SSL_MAX_SID_CTX_LENGTH));
	if (t->session_cache) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, t->session_cache);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, ts);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, ts);
	SSL_CTX_set_tlsext_status_cb(ctx, ocsp_cb);
	SSL_CTX_set_tlsext_status_arg(ctx, ts);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Load certificate C (CFG_NAME:LINE, setting WHERE) into the group its names belong to. */
static int add_cert(struct tls_server *ts, const struct cfg_tls *t, const struct cfg_cert *c,
		    const char *sid, struct errs *e, const char *where)
{
	char *names[MAX_NAMES];
	unsigned nnames, gi;
	struct cert_group *g = NULL;
	EVP_PKEY *pk;
	X509 *x;
	int type;

	ERR_clear_error();
	errno = 0;
	x = read_cert(c->cert);

	if (!x) {
		add_err(e, "%s.cert: cannot read a PEM certificate from %s%s%s", where, c->cert,
			errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	pk = X509_get0_pubkey(x);
	type = pk ? EVP_PKEY_get_base_id(pk) : 0;
	nnames = cert_names(x, names, MAX_NAMES);
	X509_free(x);
	for (gi = 0; gi < ts->ngroups; gi++) {
		struct cert_group *cand = &ts->groups[gi];
		unsigned k = 0;

		while (k < cand->ntypes && cand->key_types[k] != type)
			k++;
		if (k == cand->ntypes && cand->ntypes < 4 &&
		    same_names(cand->names, cand->nnames, names, nnames)) {
			g = cand;
			break;
		}
	}
	if (!g) {
		g = &ts->groups[ts->ngroups];
		g->ctx = server_ctx(t, sid, ts, e, where);
		if (!g->ctx)
			goto fail;
		ts->ngroups++;
		memcpy(g->names, names, nnames * sizeof(*names));
		g->nnames = nnames;
		nnames = 0; /* owned by the group now */
	}
	if (SSL_CTX_use_certificate_chain_file(g->ctx, c->cert) != 1) {
		add_err(e, "%s.cert: cannot load the certificate chain from %s", where, c->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(g->ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		add_err(e, "%s.key: cannot load a PEM private key from %s", where, c->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(g->ctx) != 1) {
		add_err(e, "%s.key: %s does not match the certificate in %s", where, c->key,
			c->cert);
		goto fail;
	}
	warn_readable_key(c->key);
	g->key_types[g->ntypes++] = type;
	if (c->ocsp[0]) {
		struct ocsp_staple *st = &ts->staples[ts->nstaples];
		const unsigned char *p;
		OCSP_RESPONSE *r;

		st->len = read_file(c->ocsp, &st->der);
		p = st->der;
		r = st->len > 0 ? d2i_OCSP_RESPONSE(NULL, &p, st->len) : NULL;
		if (!r || OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
			add_err(e, "%s.ocsp: %s is not a successful DER OCSP response", where,
				c->ocsp);
			OCSP_RESPONSE_free(r);
			free(st->der);
			st->der = NULL;
			goto fail;
		}
		OCSP_RESPONSE_free(r);
		st->cert = SSL_CTX_get0_certificate(g->ctx);
		ts->nstaples++;
	}
	for (unsigned i = 0; i < nnames; i++)
		free(names[i]);
	return 0;
fail:
	for (unsigned i = 0; i < nnames; i++)
		free(names[i]);
	return -1;
}

static int load_keys(struct tls_server *ts, const struct cfg_tls *t, const char *listener,
		     struct errs *e, const char *where)
{
	unsigned char raw[TLS_TICKET_KEYS_MAX][80];
	char err[512];
	int n;

	if (!t->ticket_keys[0]) {
		pthread_once(&random_once, random_key_init);
		ts->keys[0] = random_key;
		ts->nkeys = 1;
		return 0;
	}
	n = tlsctx_read_ticket_keys(t->ticket_keys, raw, TLS_TICKET_KEYS_MAX, err, sizeof(err));
	if (n < 0) {
		add_err(e, "%s.ticket_keys: %s", where, err);
		return -1;
	}
	for (int i = 0; i < n; i++)
		memcpy(&ts->keys[i], raw[i], 80);
	OPENSSL_cleanse(raw, sizeof(raw));
	ts->nkeys = (unsigned)n;
	ts->keys_from_file = 1;
	warn_readable_key(t->ticket_keys);
	return 0;
}

static struct tls_server *server_new(const struct cfg_listener *l, unsigned index,
				     const char *cfg_name, struct errs *e)
{
	const struct cfg_tls *t = &l->tls;
	struct tls_server *ts = calloc(1, sizeof(*ts));
	char where[600];

	pthread_once(&ex_once, ex_init);
	if (!ts)
		return NULL;
	for (unsigned i = 0; i < t->nalpn; i++) {
		size_t len = strlen(t->alpn[i]);

		ts->alpn[ts->alpn_len++] = (unsigned char)len;
		memcpy(ts->alpn + ts->alpn_len, t->alpn[i], len);
		ts->alpn_len += (unsigned)len;
	}
	snprintf(where, sizeof(where), "%s:%d: listeners[%u].tls", cfg_name, l->line, index);
	if (load_keys(ts, t, l->name, e, where))
		goto fail;
	for (unsigned i = 0; i < t->ncerts; i++) {
		snprintf(where, sizeof(where), "%s:%d: listeners[%u].tls.certificates[%u]",
			 cfg_name, t->certs[i].line, index, i);
		if (add_cert(ts, t, &t->certs[i], l->name, e, where))
			goto fail;
	}
	return ts;
fail:
	tlsctx_server_free(ts);
	return NULL;
}

struct tls_server *tlsctx_server_new(const struct cfg_listener *l, unsigned index,
				     const char *cfg_name, char **err)
{
	struct errs e = { 0 };
	struct tls_server *ts = server_new(l, index, cfg_name, &e);

	if (!ts && !e.text)
		add_err(&e, "%s: listeners[%u].tls: out of memory", cfg_name, index);
	if (ts && !ts->keys_from_file)
		log_warn("tls: listener %s: no ticket_keys file: keys are random, so resumption "
			 "does not survive a restart or reach other hosts",
			 l->name);
	*err = e.text;
	return ts;
}

void tlsctx_server_free(struct tls_server *ts)
{
	if (!ts)
		return;
	for (unsigned i = 0; i < ts->ngroups; i++) {
		SSL_CTX_free(ts->groups[i].ctx);
		for (unsigned j = 0; j < ts->groups[i].nnames; j++)
			free(ts->groups[i].names[j]);
	}
	for (unsigned i = 0; i < ts->nstaples; i++)
		free(ts->staples[i].der);
	OPENSSL_cleanse(ts->keys, sizeof(ts->keys));
	free(ts);
}

SSL_CTX *tlsctx_server_ctx(const struct tls_server *ts)
{
	return ts->groups[0].ctx;
}

unsigned tlsctx_ticket_keys(const struct tls_server *ts, int *from_file)
{
	*from_file = ts->keys_from_file;
	return ts->nkeys;
}

/* ---- a pool's client context ------------------------------------------------------------ */

static SSL_CTX *client_new(const struct cfg_pool *p, unsigned index, const char *cfg_name,
			   struct errs *e)
{
	const struct cfg_backend_tls *t = &p->tls;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		add_err(e, "%s:%d: pools[%u].tls: cannot make a TLS context", cfg_name, p->line,
			index);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_cipher_list(ctx, DEFAULT_CIPHERS);
	if (t->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (t->ca_file[0] ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1
				  : SSL_CTX_set_default_verify_paths(ctx) != 1) {
			add_err(e, "%s:%d: pools[%u].tls.ca_file: cannot load CA certificates%s%s",
				cfg_name, p->line, index, t->ca_file[0] ? " from " : "",
				t->ca_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

SSL_CTX *tlsctx_client_new(const struct cfg_pool *p, unsigned index, const char *cfg_name,
			   char **err)
{
	struct errs e = { 0 };
	SSL_CTX *ctx = client_new(p, index, cfg_name, &e);

	*err = e.text;
	return ctx;
}

int tlsctx_client_prepare(SSL *s, const struct cfg_pool *p, const struct sockaddr *addr)
{
	const struct cfg_backend_tls *t = &p->tls;
	char ip[INET6_ADDRSTRLEN];

	if (t->sni[0] && !SSL_set_tlsext_host_name(s, t->sni))
		return -1;
	if (!t->verify)
		return 0;
	if (t->sni[0])
		return SSL_set1_host(s, t->sni) == 1 ? 0 : -1;
	if (!inet_ntop(addr->sa_family,
		       addr->sa_family == AF_INET
			       ? (const void *)&((const struct sockaddr_in *)addr)->sin_addr
			       : (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr,
		       ip, sizeof(ip)))
		return -1;
	return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), ip) == 1 ? 0 : -1;
}

/* ---- checks -------------------------------------------------------------------------------- */

int tlsctx_check(const struct sl_config *cfg, char **errors)
{
	const char *name = cfg->path ? cfg->path : "config";
	struct errs e = { 0 };

	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		struct tls_server *ts;

		if (!cfg->listeners[i].tls.enabled)
			continue;
		ts = server_new(&cfg->listeners[i], i, name, &e);
		tlsctx_server_free(ts);
	}
	for (unsigned i = 0; i < cfg->npools; i++) {
		if (cfg->pools[i].tls.enabled)
			SSL_CTX_free(client_new(&cfg->pools[i], i, name, &e));
	}
	*errors = e.text;
	return e.text ? -1 : 0;
}

int tlsctx_ktls_available(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	char line[256] = "";
	int yes = 0;

	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f)) {
		for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n"))
			yes |= strcmp(tok, "tls") == 0;
	}
	fclose(f);
	return yes;
}
