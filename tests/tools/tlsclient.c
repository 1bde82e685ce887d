// SPDX-License-Identifier: MIT
/*
 * tlsclient - TLS clients for sluice's tests: N connections (at most P at
 * once) that each do a handshake, send B bytes, check that the same bytes
 * come back (an echo backend), and close with close_notify. Non-blocking,
 * one poll loop, so thousands can wait on sluice's handshake queue at once.
 *
 *   tlsclient -c ADDR [-n N] [-p P] [--bytes B] [--sni NAME] [--alpn PROTO]
 *             [--tls12 | --tls13] [--sess-in FILE] [--sess-out FILE]
 *             [--timeout-ms MS] [--ca FILE] [--no-ticket]
 *
 * --sess-out saves the session of the first connection that got one (for a
 * later --sess-in, which every connection then offers). One line on stdout:
 *   ok= failed= resumed= full= timeouts= elapsed_ms= hs_p50_ms= hs_p99_ms=
 *   hs_max_ms= alpn= subject=
 * Exit 0 only if every connection succeeded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

enum st { ST_IDLE, ST_CONNECT, ST_HANDSHAKE, ST_IO, ST_SHUTDOWN, ST_DRAIN, ST_DONE };

struct cl {
	int fd;
	enum st st;
	SSL *ssl;
	uint64_t start_ns, hs_ns;
	size_t sent, got;
	uint64_t seed;
};

static SSL_CTX *ctx;
static SSL_SESSION *sess_in;
static const char *sess_out, *sni;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static size_t nbytes = 64;
static unsigned ok, failed, resumed, full, timeouts;
static char alpn_seen[32] = "-", subject[128] = "-";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* byte I of connection SEED's stream */
static uint8_t stream(uint64_t seed, size_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + (i / 8 + 1) * 0xbf58476d1ce4e5b9ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (uint8_t)(z >> (8 * (i % 8)));
}

static int parse_addr(const char *s)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	struct sockaddr_in *in = (struct sockaddr_in *)&addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
	size_t hl;

	if (!colon)
		return -1;
	hl = (size_t)(colon - s);
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = 0;
	memset(&addr, 0, sizeof(addr));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(colon + 1));
		addrlen = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(colon + 1));
		addrlen = sizeof(*in6);
		return 0;
	}
	return -1;
}

static void finish(struct cl *c, int good)
{
	static const char *const states[] = { "idle", "connect", "handshake", "io", "shutdown",
					      "drain", "done" };

	if (!good && failed < 5) {
		unsigned long e = ERR_peek_last_error();
		char buf[160] = "";

		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "tlsclient: conn %llu failed in %s (sent %zu, got %zu) %s%s\n",
			(unsigned long long)c->seed, states[c->st], c->sent, c->got, buf,
			e ? "" : strerror(errno));
	}
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
	c->st = ST_DONE;
	if (good)
		ok++;
	else
		failed++;
}

static void start(struct cl *c, uint64_t seed)
{
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->seed = seed;
	c->start_ns = now_ns();
	c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->fd = -1;
		finish(c, 0);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&addr, addrlen) && errno != EINPROGRESS) {
		finish(c, 0);
		return;
	}
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_connect_state(c->ssl);
	if (sni)
		SSL_set_tlsext_host_name(c->ssl, sni);
	if (sess_in) {
		/* a copy each: OpenSSL offers a TLS 1.3 session object once */
		SSL_SESSION *dup = SSL_SESSION_dup(sess_in);

		SSL_set_session(c->ssl, dup ? dup : sess_in);
		SSL_SESSION_free(dup);
	}
	c->st = ST_HANDSHAKE;
}

/* One step of C; returns the poll events it waits for (0: done). */
static short step(struct cl *c)
{
	unsigned char buf[16384];
	int n, err;

	for (;;) {
		ERR_clear_error();
		switch (c->st) {
		case ST_HANDSHAKE:
			n = SSL_do_handshake(c->ssl);
			if (n == 1) {
				const unsigned char *p;
				unsigned len;
				X509 *x;

				c->hs_ns = now_ns() - c->start_ns;
				if (SSL_session_reused(c->ssl))
					resumed++;
				else
					full++;
				SSL_get0_alpn_selected(c->ssl, &p, &len);
				if (len && len < sizeof(alpn_seen)) {
					memcpy(alpn_seen, p, len);
					alpn_seen[len] = 0;
				}
				x = SSL_get1_peer_certificate(c->ssl);
				if (x) {
					X509_NAME_oneline(X509_get_subject_name(x), subject,
							  sizeof(subject));
					X509_free(x);
				}
				c->st = ST_IO;
				continue;
			}
			break;
		case ST_IO: {
			int progress = 0;

			/* write and read in turn: the echo comes back while we send */
			if (c->sent < nbytes) {
				size_t k = nbytes - c->sent < sizeof(buf) ? nbytes - c->sent : sizeof(buf);

				for (size_t i = 0; i < k; i++)
					buf[i] = stream(c->seed, c->sent + i);
				n = SSL_write(c->ssl, buf, (int)k);
				if (n > 0) {
					c->sent += (size_t)n;
					progress = 1;
				} else {
					err = SSL_get_error(c->ssl, n);
					if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
						return -1;
				}
			}
			if (c->got < nbytes) {
				ERR_clear_error();
				n = SSL_read(c->ssl, buf, sizeof(buf));
				if (n > 0) {
					for (int i = 0; i < n; i++)
						if (buf[i] != stream(c->seed, c->got + (size_t)i))
							return -1;
					c->got += (size_t)n;
					progress = 1;
				} else {
					err = SSL_get_error(c->ssl, n);
					if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
						return -1;
				}
			}
			if (progress)
				continue;
			if (c->sent == nbytes && c->got == nbytes) {
				c->st = ST_SHUTDOWN;
				continue;
			}
			return (short)(POLLIN | (c->sent < nbytes ? POLLOUT : 0));
		}
		case ST_SHUTDOWN:
			/* a TLS 1.3 ticket comes after the handshake: wait for it to save it */
			if (sess_out && !SSL_SESSION_is_resumable(SSL_get0_session(c->ssl))) {
				n = SSL_read(c->ssl, buf, sizeof(buf));
				if (n > 0)
					continue;
				break;
			}
			/* the first session is what a later run offers */
			if (sess_out && SSL_get0_session(c->ssl)) {
				FILE *f = fopen(sess_out, "w");

				if (f) {
					PEM_write_SSL_SESSION(f, SSL_get0_session(c->ssl));
					fclose(f);
				}
				sess_out = NULL;
			}
			/* close_notify and FIN, then wait for the other side's end */
			SSL_shutdown(c->ssl);
			shutdown(c->fd, SHUT_WR);
			c->st = ST_DRAIN;
			continue;
		case ST_DRAIN:
			n = SSL_read(c->ssl, buf, sizeof(buf));
			if (n > 0)
				continue;
			err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_WANT_READ)
				return POLLIN;
			/* close_notify, EOF or a reset: the connection has ended */
			finish(c, 1);
			return 0;
		default:
			return 0;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			return POLLIN;
		if (err == SSL_ERROR_WANT_WRITE)
			return POLLOUT;
		return -1;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", 1, 0, 'b' }, { "sni", 1, 0, 's' }, { "alpn", 1, 0, 'a' },
		{ "tls12", 0, 0, '2' }, { "tls13", 0, 0, '3' }, { "sess-in", 1, 0, 'i' },
		{ "sess-out", 1, 0, 'o' }, { "timeout-ms", 1, 0, 't' }, { "ca", 1, 0, 'C' },
		{ "no-ticket", 0, 0, 'T' }, { 0 } };
	unsigned n = 1, par = 0, next = 0, live = 0, nhs = 0;
	uint64_t timeout_ms = 10000, t0, *hs;
	const char *alpn = NULL, *ca = NULL, *target = NULL;
	int ver = 0, o, no_ticket = 0;
	struct pollfd *pfd;
	struct cl *cl;
	struct rlimit rl;

	while ((o = getopt_long(argc, argv, "c:n:p:", opts, NULL)) != -1) {
		switch (o) {
		case 'c': target = optarg; break;
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': par = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b': nbytes = strtoull(optarg, NULL, 10); break;
		case 's': sni = optarg; break;
		case 'a': alpn = optarg; break;
		case '2': ver = TLS1_2_VERSION; break;
		case '3': ver = TLS1_3_VERSION; break;
		case 'i': {
			FILE *f = fopen(optarg, "r");

			sess_in = f ? PEM_read_SSL_SESSION(f, NULL, NULL, NULL) : NULL;
			if (f)
				fclose(f);
			if (!sess_in) {
				fprintf(stderr, "tlsclient: %s: no session\n", optarg);
				return 2;
			}
			break;
		}
		case 'o': sess_out = optarg; break;
		case 't': timeout_ms = strtoull(optarg, NULL, 10); break;
		case 'C': ca = optarg; break;
		case 'T': no_ticket = 1; break;
		default:
			fprintf(stderr, "usage: tlsclient -c ADDR [-n N] [-p P] [--bytes B] [--sni NAME] "
					"[--alpn P] [--tls12|--tls13] [--sess-in F] [--sess-out F] "
					"[--timeout-ms MS] [--ca FILE] [--no-ticket]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (!target || parse_addr(target) || !n) {
		fprintf(stderr, "tlsclient: -c ADDR (a literal address and port) and -n N >= 1\n");
		return 2;
	}
	if (!par || par > n)
		par = n;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < par + 64) {
		rl.rlim_cur = rl.rlim_max < par + 64 ? rl.rlim_max : par + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (ver) {
		SSL_CTX_set_min_proto_version(ctx, ver);
		SSL_CTX_set_max_proto_version(ctx, ver);
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (no_ticket)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET); /* TLS 1.2: resume by session id */
	if (ca) {
		if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
			fprintf(stderr, "tlsclient: %s: cannot load\n", ca);
			return 2;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (alpn) {
		unsigned char wire[256];
		size_t l = strlen(alpn);

		if (l == 0 || l > 255)
			return 2;
		wire[0] = (unsigned char)l;
		memcpy(wire + 1, alpn, l);
		SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)l + 1);
	}
	cl = calloc(par, sizeof(*cl));
	pfd = calloc(par, sizeof(*pfd));
	hs = calloc(n, sizeof(*hs));
	if (!cl || !pfd || !hs)
		return 2;
	for (unsigned i = 0; i < par; i++)
		cl[i].st = ST_IDLE;
	t0 = now_ns();
	while (next < n || live) {
		uint64_t now = now_ns();

		for (unsigned i = 0; i < par; i++) {
			struct cl *c = &cl[i];
			short ev;

			if ((c->st == ST_IDLE || c->st == ST_DONE) && next < n) {
				start(c, ++next);
				if (c->st != ST_DONE)
					live++;
			}
			pfd[i].fd = -1;
			if (c->st == ST_IDLE || c->st == ST_DONE)
				continue;
			if (now > c->start_ns && now - c->start_ns > timeout_ms * 1000000ull) {
				timeouts++;
				finish(c, 0);
				live--;
				continue;
			}
			ev = step(c);
			if (c->hs_ns && nhs < n && c->st != ST_HANDSHAKE) {
				hs[nhs++] = c->hs_ns;
				c->hs_ns = 0;
			}
			if (ev < 0) {
				finish(c, 0);
				live--;
			} else if (ev == 0) {
				live--;
			} else {
				pfd[i].fd = c->fd;
				pfd[i].events = ev;
			}
		}
		if (live)
			poll(pfd, par, 50);
	}
	/* insertion sort is fine for test sizes */
	for (unsigned i = 1; i < nhs; i++)
		for (unsigned j = i; j && hs[j - 1] > hs[j]; j--) {
			uint64_t t = hs[j];

			hs[j] = hs[j - 1];
			hs[j - 1] = t;
		}
	printf("ok=%u failed=%u resumed=%u full=%u timeouts=%u elapsed_ms=%llu hs_p50_ms=%.1f "
	       "hs_p99_ms=%.1f hs_max_ms=%.1f alpn=%s subject=%s\n",
	       ok, failed, resumed, full, timeouts,
	       (unsigned long long)((now_ns() - t0) / 1000000),
	       nhs ? hs[nhs / 2] / 1e6 : 0.0, nhs ? hs[(nhs * 99) / 100 < nhs ? (nhs * 99) / 100 : nhs - 1] / 1e6 : 0.0,
	       nhs ? hs[nhs - 1] / 1e6 : 0.0, alpn_seen, subject);
	free(hs);
	free(pfd);
	free(cl);
	if (sess_in)
		SSL_SESSION_free(sess_in);
	SSL_CTX_free(ctx);
	return failed ? 1 : 0;
}
