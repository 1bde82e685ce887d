/* SPDX-License-Identifier: MIT */
/*
 * bench_util — small helpers shared by the benchmark programs in bench/.
 * Header-only on purpose: the Makefile builds each bench .c file into its own
 * binary with no shared objects, so everything here is static.
 */
#ifndef SLUICE_BENCH_UTIL_H
#define SLUICE_BENCH_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define NSEC_PER_USEC 1000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL

/* Nanoseconds on CLOCK. */
static inline uint64_t bench_now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * Parse "A.B.C.D:PORT" or "[V6]:PORT" into SS. Returns the address length,
 * or -EINVAL.
 */
static inline int bench_parse_addr(const char *text, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	char *end;
	unsigned long port;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	colon = strrchr(text, ':');
	if (!colon)
		return -EINVAL;
	hlen = (size_t)(colon - text);
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || colon[1] == '\0' || port > 65535)
		return -EINVAL;

	if (host[0] == '[' && host[hlen - 1] == ']') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return sizeof(*sin);
	}
}

/* Parse a non-negative decimal integer no larger than MAX. 0 or -EINVAL. */
static inline int bench_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!text || !*text || *text == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit now
 * in force (the old one if raising failed).
 */
static inline uint64_t bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/*
 * Case-insensitive search for NEEDLE (lower case) in the LEN bytes at HAY.
 * Returns a pointer to the match or NULL.
 */
static inline const char *bench_memcasemem(const char *hay, size_t len, const char *needle)
{
	size_t nlen = strlen(needle);
	size_t i, j;

	if (nlen > len)
		return NULL;
	for (i = 0; i + nlen <= len; i++) {
		for (j = 0; j < nlen; j++) {
			char c = hay[i + j];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (c != needle[j])
				break;
		}
		if (j == nlen)
			return hay + i;
	}
	return NULL;
}

/*
 * Value of header NAME (lower case, with the colon, e.g. "connection:") in the
 * request or response head HEAD of LEN bytes (the first line excluded). Sets
 * *VLEN and returns the value with surrounding blanks trimmed, or NULL.
 */
static inline const char *bench_http_header(const char *head, size_t len, const char *name,
					    size_t *vlen)
{
	const char *p = head, *end = head + len;
	size_t nlen = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;

		if (p != head && (size_t)(line_end - p) >= nlen &&
		    bench_memcasemem(p, nlen, name) == p) {
			const char *v = p + nlen, *ve = line_end;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = line_end + 1;
	}
	return NULL;
}

/*
 * Resident set size in KiB of process PID (VmRSS from /proc/PID/status), or a
 * negative errno.
 */
static inline long bench_rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

#endif /* SLUICE_BENCH_UTIL_H */
