/* SPDX-License-Identifier: MIT */
/*
 * log — one line per event, key=value, to stderr:
 *     ts=2026-11-22T10:00:00.123Z level=warn msg="config: reload failed: ..."
 * Thread-safe (one write(2) per line). Hot-path events go through
 * log_ratelimited() so a flood of bad connections cannot flood the log.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdint.h>

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Lines below LEVEL are dropped. Default: info. */
void log_set_level(enum log_level level);
/* Parse "debug", "info", "warn", "error"; -EINVAL otherwise. */
int log_level_parse(const char *text, enum log_level *level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lines go to syslog (daemon facility, IDENT) instead of stderr. */
void log_to_syslog(const char *ident);

/*
 * The access log: one line per connection, written with one write(2) to a
 * file opened O_APPEND (so lines from several threads never interleave).
 * log_access_open reopens it (after a rotation); "" or NULL closes it.
 * 0 or -errno.
 */
int log_access_open(const char *path);
/* Is the access log open? (cheap; for the hot path) */
int log_access_enabled(void);
/* Write one access-log line (a timestamp is put in front). */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/*
 * A rate limit: at most BURST lines per INTERVAL_MS; the first line after a
 * quiet spell reports how many were suppressed. Zero-initialise, then set
 * interval_ms and burst. Owned by one thread.
 */
struct log_rl {
	uint32_t interval_ms;
	uint32_t burst;
	uint64_t window_start_ms;
	uint32_t printed;
	uint64_t suppressed;
};

void log_ratelimited(struct log_rl *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
