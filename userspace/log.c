// SPDX-License-Identifier: MIT
#include "userspace/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <syslog.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LVL_INFO;
static int use_syslog;
static _Atomic int access_fd = -1;

void log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_syslog = 1;
}

int log_access_open(const char *path)
{
	int fd = -1, old;

	if (path && *path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -errno;
	}
	old = atomic_exchange(&access_fd, fd);
	if (old >= 0)
		close(old);
	return 0;
}

int log_access_enabled(void)
{
	return atomic_load_explicit(&access_fd, memory_order_relaxed) >= 0;
}

void log_access(const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, fd = atomic_load_explicit(&access_fd, memory_order_relaxed);

	if (fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(fd, line, (size_t)n);
}
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_level_parse(const char *text, enum log_level *level)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[1024], msg[900];
	struct timespec ts;
	struct tm tm;
	int n, k;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (use_syslog) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };

		syslog(prio[level], "level=%s msg=\"%s\"", level_names[level], msg);
		return;
	}
	/* msg is quoted: keep it one line and its quotes escaped */
	n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, level_names[level]);
	for (k = 0; msg[k] && n < (int)sizeof(line) - 4; k++) {
		char c = msg[k];
		if (c == '"' || c == '\\')
			line[n++] = '\\';
		line[n++] = (c == '\n' || c == '\r') ? ' ' : c;
	}
	line[n++] = '"';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_ratelimited(struct log_rl *rl, enum log_level level, const char *fmt, ...)
{
	struct timespec ts;
	uint64_t now;
	va_list ap;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (now - rl->window_start_ms >= rl->interval_ms) {
		if (rl->suppressed)
			log_msg(level, "log: %llu similar lines suppressed",
				(unsigned long long)rl->suppressed);
		rl->window_start_ms = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed >= rl->burst) {
		rl->suppressed++;
		return;
	}
	rl->printed++;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
