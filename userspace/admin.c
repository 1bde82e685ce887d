// SPDX-License-Identifier: MIT
#include "userspace/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static void serve_one(struct admin *a, int fd)
{
	struct timeval tv = { .tv_sec = ADMIN_IO_TIMEOUT_MS / 1000 };
	struct admin_resp r = { .status = 200, .content_type = "text/plain; charset=utf-8" };
	char req[ADMIN_REQ_MAX + 1], method[16], path[1024], head[256];
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
	} else {
		a->fn(method, path, &r, a->arg);
	}
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
		     r.status, status_text(r.status), r.content_type, r.len);
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
		fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
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
		serve_one(a, fd);
		close(fd);
	}
	return NULL;
}

struct admin *admin_start(const struct cfg_addr *addr, admin_handler_fn fn, void *arg, char *err,
			  size_t errlen)
{
	struct admin *a = calloc(1, sizeof(*a));
	int one = 1;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->fn = fn;
	a->arg = arg;
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
	log_info("admin: listening on %s", addr->text);
	return a;
fail:
	if (a->fd >= 0)
		close(a->fd);
	if (a->stop_pipe[0] >= 0) {
		close(a->stop_pipe[0]);
		close(a->stop_pipe[1]);
	}
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
	free(a);
}

int admin_request(const struct cfg_addr *addr, const char *method, const char *path, char **body,
		  int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	char req[1200], *buf = NULL, *p;
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
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n",
		     method, path);
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
	free(buf);
	close(fd);
	return status;
}
