// SPDX-License-Identifier: MIT
#include "userspace/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "userspace/log.h"

#define ADMIN_REQ_MAX 8192
#define ADMIN_IO_TIMEOUT_MS 2000
#define ADMIN_BACKOFF_MS 100

struct admin {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	admin_handler_fn fn;
	void *arg;
	pthread_mutex_t lock; /* guards token: a reload replaces it */
	char token[ADMIN_TOKEN_MAX];
	struct log_rl denied_rl; /* admin thread only */
};

void admin_printf(struct admin_resp *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = r->cap - r->len;

		va_start(ap, fmt);
		n = vsnprintf(r->body ? r->body + r->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			r->len += (size_t)n;
			return;
		}
		size_t cap = r->cap ? r->cap * 2 : 4096;
		while (cap - r->len <= (size_t)n)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return;
		r->body = b;
		r->cap = cap;
	}
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- the token ------------------------------------------------------------ */

static int token68_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int admin_token_read(const char *path, char *token, size_t len, int *loose, char *err,
		     size_t errlen)
{
	char buf[ADMIN_TOKEN_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t i;
	int fd, ret = 0;

	token[0] = 0;
	/* O_NONBLOCK: a FIFO put there must not hang the reload */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		snprintf(err, errlen, "admin.token_file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "admin.token_file %s: not a regular file", path);
		ret = -EINVAL;
		goto out;
	}
	if (loose)
		*loose = (st.st_mode & 0077) != 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		ret = -errno;
		snprintf(err, errlen, "admin.token_file %s: %s", path, strerror(errno));
		goto out;
	}
	buf[n] = 0;
	/* one line: the token, then at most a newline (CRLF from an editor too) */
	for (i = 0; token68_char(buf[i]); i++)
		;
	i += strspn(buf + i, "=");
	if ((buf[i] && strcmp(buf + i, "\n") && strcmp(buf + i, "\r\n")) ||
	    i < ADMIN_TOKEN_MIN || i >= ADMIN_TOKEN_MAX || i >= len) {
		snprintf(err, errlen, "admin.token_file %s: want one line of %d to %d characters "
			 "A-Z a-z 0-9 - . _ ~ + / (and trailing =)", path, ADMIN_TOKEN_MIN,
			 ADMIN_TOKEN_MAX - 1);
		ret = -EINVAL;
		goto out;
	}
	memcpy(token, buf, i);
	token[i] = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return ret;
}

int admin_token_load(const struct sl_config *cfg, char *token, size_t len, char *err,
		     size_t errlen)
{
	int loose = 0, ret;

	token[0] = 0;
	if (!cfg->admin.token_file[0])
		return 0;
	ret = admin_token_read(cfg->admin.token_file, token, len, &loose, err, errlen);
	if (ret == 0 && loose)
		log_warn("admin: token file %s is readable by its group or others: whoever "
			 "reads it can drain backends (chmod 600)", cfg->admin.token_file);
	return ret;
}

void admin_set_token(struct admin *a, const char *token)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	snprintf(a->token, sizeof(a->token), "%s", token ? token : "");
	pthread_mutex_unlock(&a->lock);
}

/*
 * The credentials of the "Authorization: Bearer X" header of the request
 * head REQ (NUL-terminated), in *CRED and *LEN; 0 if there is none.
 */
static int bearer(const char *req, const char **cred, size_t *len)
{
	const char *line = strchr(req, '\n');

	while (line && *++line && *line != '\r' && *line != '\n') {
		const char *v = line + 14, *end;

		if (strncasecmp(line, "authorization:", 14) == 0) {
			v += strspn(v, " \t");
			if (strncasecmp(v, "bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
				return 0;
			v += 6;
			v += strspn(v, " \t");
			for (end = v; token68_char(*end) || *end == '='; end++)
				;
			*cred = v;
			*len = (size_t)(end - v);
			return 1;
		}
		line = strchr(line, '\n');
	}
	return 0;
}

/*
 * Does CRED (LEN bytes, from the client) equal TOKEN? The time taken
 * depends on the length of TOKEN only, never on where a guess goes wrong.
 */
static int token_equal(const char *cred, size_t len, const char *token)
{
	size_t tlen = strlen(token);
	volatile unsigned char diff = len != tlen;

	for (size_t i = 0; i < tlen; i++)
		diff |= (unsigned char)token[i] ^ (unsigned char)(i < len ? cred[i] : 0);
	return diff == 0;
}

/* 0 if REQ may go on; else the WWW-Authenticate value to answer 401 with. */
static const char *check_token(struct admin *a, const char *req, const char *path,
			       const struct sockaddr_storage *peer)
{
	char token[ADMIN_TOKEN_MAX], ip[INET6_ADDRSTRLEN] = "?";
	const char *cred, *why = NULL;
	size_t len;

	/* the load balancer's probe carries no secret, and tells none */
	if (strcmp(path, "/healthz") == 0 || strncmp(path, "/healthz?", 9) == 0)
		return NULL;
	pthread_mutex_lock(&a->lock);
	memcpy(token, a->token, sizeof(token));
	pthread_mutex_unlock(&a->lock);
	if (!token[0])
		return NULL;
	if (!bearer(req, &cred, &len))
		why = "Bearer realm=\"sluice\"";
	else if (!token_equal(cred, len, token))
		why = "Bearer realm=\"sluice\", error=\"invalid_token\"";
	explicit_bzero(token, sizeof(token));
	if (why) {
		if (peer->ss_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, ip,
				  sizeof(ip));
		else if (peer->ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, ip,
				  sizeof(ip));
		log_ratelimited(&a->denied_rl, LOG_LVL_WARN, "admin: %s from %s: %s", path, ip,
				strchr(why, ',') ? "wrong token" : "no token");
	}
	return why;
}

/* ---- serving ---------------------------------------------------------------- */

static void serve_one(struct admin *a, int fd, const struct sockaddr_storage *peer)
{
	struct timeval tv = { .tv_sec = ADMIN_IO_TIMEOUT_MS / 1000 };
	struct admin_resp r = { .status = 200, .content_type = "text/plain; charset=utf-8" };
	char req[ADMIN_REQ_MAX + 1], method[16], path[1024], head[384], auth[96] = "";
	const char *challenge;
	size_t got = 0;
	int n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (got < ADMIN_REQ_MAX) {
		ssize_t k = recv(fd, req + got, ADMIN_REQ_MAX - got, 0);

		if (k <= 0)
			return;
		got += (size_t)k;
		req[got] = 0;
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[got] = 0;
	if (sscanf(req, "%15s %1023s HTTP/1.%*d", method, path) != 2 || path[0] != '/') {
		r.status = 400;
		admin_printf(&r, "bad request\n");
	} else if ((challenge = check_token(a, req, path, peer))) {
		r.status = 401;
		admin_printf(&r, "unauthorized: this endpoint wants \"Authorization: Bearer TOKEN\" "
			     "(sluicectl --token-file FILE)\n");
		snprintf(auth, sizeof(auth), "WWW-Authenticate: %s\r\n", challenge);
	} else {
		a->fn(method, path, &r, a->arg);
	}
	explicit_bzero(req, sizeof(req));
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
		     r.status, status_text(r.status), r.content_type, r.len, auth);
	if (write_all(fd, head, (size_t)n) == 0 && r.len && strcmp(method, "HEAD") != 0)
		write_all(fd, r.body, r.len);
	free(r.body);
}

static void *admin_main(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[2] = { { .fd = a->fd, .events = POLLIN },
				 { .fd = a->stop_pipe[0], .events = POLLIN } };

	for (;;) {
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);

		memset(&peer, 0, sizeof(peer));
		fd = accept4(a->fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd < 0) {
			/*
			 * Out of descriptors or memory: the request stays in the
			 * backlog and poll() says so at once, so wait a little
			 * (still listening for stop) instead of spinning on it.
			 */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				poll(&pfd[1], 1, ADMIN_BACKOFF_MS);
			continue;
		}
		serve_one(a, fd, &peer);
		close(fd);
	}
	return NULL;
}

struct admin *admin_start(const struct cfg_addr *addr, const char *token, admin_handler_fn fn,
			  void *arg, char *err, size_t errlen)
{
	struct admin *a = calloc(1, sizeof(*a));
	int one = 1;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->fn = fn;
	a->arg = arg;
	pthread_mutex_init(&a->lock, NULL);
	snprintf(a->token, sizeof(a->token), "%s", token ? token : "");
	a->denied_rl.interval_ms = 10000;
	a->denied_rl.burst = 5;
	a->stop_pipe[0] = a->stop_pipe[1] = -1;
	a->fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->fd < 0 || setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(a->fd, (const struct sockaddr *)&addr->ss, addr->len) || listen(a->fd, 64) ||
	    pipe2(a->stop_pipe, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr->text, strerror(errno));
		goto fail;
	}
	errno = pthread_create(&a->thread, NULL, admin_main, a);
	if (errno) {
		snprintf(err, errlen, "thread: %s", strerror(errno));
		goto fail;
	}
	log_info("admin: listening on %s%s", addr->text,
		 a->token[0] ? " (bearer token required, except /healthz)" : "");
	return a;
fail:
	if (a->fd >= 0)
		close(a->fd);
	if (a->stop_pipe[0] >= 0) {
		close(a->stop_pipe[0]);
		close(a->stop_pipe[1]);
	}
	pthread_mutex_destroy(&a->lock);
	explicit_bzero(a->token, sizeof(a->token));
	free(a);
	return NULL;
}

void admin_stop(struct admin *a)
{
	if (!a)
		return;
	(void)!write(a->stop_pipe[1], "x", 1);
	pthread_join(a->thread, NULL);
	close(a->fd);
	close(a->stop_pipe[0]);
	close(a->stop_pipe[1]);
	pthread_mutex_destroy(&a->lock);
	explicit_bzero(a->token, sizeof(a->token));
	free(a);
}

int admin_request(const struct cfg_addr *addr, const char *method, const char *path,
		  const char *token, char **body, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	char req[1200 + ADMIN_TOKEN_MAX + 32], auth[ADMIN_TOKEN_MAX + 32] = "", *buf = NULL, *p;
	size_t len = 0, cap = 0;
	int fd, n, status = -EPROTO;

	*body = NULL;
	fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len)) {
		status = -errno;
		goto out;
	}
	if (token && *token)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: sluice\r\n%sConnection: close\r\n\r\n", method, path,
		     auth);
	explicit_bzero(auth, sizeof(auth));
	if (n < 0 || (size_t)n >= sizeof(req)) {
		status = -E2BIG;
		goto out;
	}
	if (write_all(fd, req, (size_t)n)) {
		status = -errno;
		goto out;
	}
	for (;;) {
		ssize_t k;

		if (cap - len < 4096) {
			char *b = realloc(buf, cap ? cap * 2 : 16384);

			if (!b) {
				status = -ENOMEM;
				goto out;
			}
			buf = b;
			cap = cap ? cap * 2 : 16384;
		}
		k = recv(fd, buf + len, cap - len - 1, 0);
		if (k < 0) {
			status = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	buf[len] = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !(p = strstr(buf, "\r\n\r\n"))) {
		status = -EPROTO;
		goto out;
	}
	*body = strdup(p + 4);
	if (!*body)
		status = -ENOMEM;
out:
	explicit_bzero(req, sizeof(req));
	free(buf);
	close(fd);
	return status;
}
