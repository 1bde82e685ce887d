/* SPDX-License-Identifier: MIT */
/*
 * tlsctx — OpenSSL contexts built from the config: a listener's server side
 * (certificates chosen by SNI and key type, ALPN, versions, ciphers, OCSP
 * staples, session tickets and cache) and a pool's client side (TLS to the
 * backends). Nothing here does I/O on connections: proxy/tls.c drives the
 * connections over io_uring.
 *
 * Session tickets. Keys come from the listener's `ticket_keys` file, one key
 * per line, base64 of 80 random bytes (16 name, 32 HMAC, 32 AES), newest
 * first: the first key encrypts new tickets, every key decrypts, and a
 * ticket under an older key is renewed under the newest. Hosts sharing the
 * file resume each other's clients; rotate by putting a new line on top and
 * reloading. Without a file, keys are random for the life of the process.
 */
#ifndef SLUICE_TLSCTX_H
#define SLUICE_TLSCTX_H

#include <openssl/ssl.h>

#include "userspace/config.h"

#define TLS_TICKET_KEYS_MAX 16

struct tls_server;

/*
 * Build listener L's contexts. NULL on failure with *ERR set (malloc'd,
 * "FILE:LINE: SETTING: message\n" lines naming CFG_NAME, caller frees).
 * Warnings (a private key others can read, no ticket key file) are logged.
 */
struct tls_server *tlsctx_server_new(const struct cfg_listener *l, unsigned index,
				     const char *cfg_name, char **err);
void tlsctx_server_free(struct tls_server *ts);
/* The context new connections start on (SNI may move them to another). */
SSL_CTX *tlsctx_server_ctx(const struct tls_server *ts);
/* How many ticket keys are in use, and whether they came from a file. */
unsigned tlsctx_ticket_keys(const struct tls_server *ts, int *from_file);

/* Pool P's client context for TLS to its backends; NULL with *ERR on failure. */
SSL_CTX *tlsctx_client_new(const struct cfg_pool *p, unsigned index, const char *cfg_name,
			   char **err);
/* Make CTX's new connection S ready for backend TLS of P (SNI, name to verify). */
int tlsctx_client_prepare(SSL *s, const struct cfg_pool *p, const struct sockaddr *addr);

/*
 * Build and drop every TLS context CFG names: what `sluiced -t` and
 * `sluicectl check` do beyond parsing. 0, or -1 with *ERRORS (malloc'd).
 */
int tlsctx_check(const struct sl_config *cfg, char **errors);

/* Load a ticket key file into KEYS (80 bytes each). Count, or -1 with ERR. */
int tlsctx_read_ticket_keys(const char *path, unsigned char keys[][80], unsigned max, char *err,
			    size_t errlen);

/* Is kernel TLS offload there (the "tls" TCP ULP)? */
int tlsctx_ktls_available(void);

#endif
