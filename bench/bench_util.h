/* SPDX-License-Identifier: MIT */
/*
 * bench_util — small helpers shared by the benchmark programs in bench/.
 * Header-only on purpose: the Makefile builds each bench .c file into its own
 * binary with no shared objects, so everything here is static.
 */
#ifndef SLUICE_BENCH_UTIL_H
#define SLUICE_BENCH_UTIL_H

#include <arpa/inet.h>
#include <dirent.h>
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

/*
 * CPU time in ns that process PID has used (all its threads, user and
 * system), or a negative errno: the sum of each thread's run time from
 * /proc/PID/task/TID/schedstat, exact to the ns where clock ticks are 10 ms.
 */
static inline long long bench_cpu_ns(long pid)
{
	char path[96];
	long long sum = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		unsigned long long ns;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/schedstat", pid, d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread just ended */
		if (fscanf(f, "%llu", &ns) == 1)
			sum += (long long)ns;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

/* ---- random numbers ------------------------------------------------------ */

/*
 * splitmix64: small, fast, and good enough for jitter, spreads and keys. Not
 * for anything secret. Seed it with any value (0 included).
 */
struct bench_rng {
	uint64_t s;
};

static inline uint64_t bench_rng_next(struct bench_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, N) (0 when N is 0); the modulo bias is below 2^-40 for N < 2^24. */
static inline uint64_t bench_rng_below(struct bench_rng *r, uint64_t n)
{
	return n ? bench_rng_next(r) % n : 0;
}

/* ---- base64 and SHA-1 (for the WebSocket handshake) ----------------------- */

/*
 * Standard base64 (with padding) of the LEN bytes at IN into OUT, which must
 * hold 4 * ((LEN + 2) / 3) + 1 bytes. Returns the length written (NUL not
 * counted).
 */
static inline size_t bench_base64(const uint8_t *in, size_t len, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = tbl[(v >> 6) & 63];
		out[o++] = tbl[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static inline uint32_t bench_rol32(uint32_t x, unsigned int n)
{
	return (x << n) | (x >> (32 - n));
}

static inline void bench_sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f, k, t;
	unsigned int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 80; i++)
		w[i] = bench_rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (i = 0; i < 80; i++) {
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = bench_rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = bench_rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/*
 * SHA-1 of the LEN bytes at DATA into OUT. Only for Sec-WebSocket-Accept,
 * which RFC 6455 defines with SHA-1; kept here so the bench tools need no
 * crypto library.
 */
static inline void bench_sha1(const void *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
	const uint8_t *p = data;
	size_t full = len & ~(size_t)63, rest = len - full, tlen, i;
	uint64_t bits = (uint64_t)len * 8;
	uint8_t tail[128];

	for (i = 0; i < full; i += 64)
		bench_sha1_block(h, p + i);
	memset(tail, 0, sizeof(tail));
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	tlen = rest + 1 + 8 <= 64 ? 64 : 128;
	for (i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (i = 0; i < tlen; i += 64)
		bench_sha1_block(h, tail + i);
	for (i = 0; i < 20; i++)
		out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* ---- timers: a min-heap of deadlines, one per slot ------------------------ */

/*
 * For event loops where each of CAP slots (clients, connections) has at most
 * one pending deadline: a give-up timeout, a backoff sleep, a hold. Setting a
 * slot's timer again moves it; set, cancel and pop are O(log n), the earliest
 * deadline is O(1). Slot ids are 0..CAP-1; keys are any uint64_t (ns).
 */
#define BENCH_HEAP_NONE UINT32_MAX

struct bench_heap {
	uint32_t *ids;	/* heap order: ids[0] has the smallest key */
	uint32_t *pos;	/* by slot: its index in ids, or BENCH_HEAP_NONE */
	uint64_t *keys; /* by slot */
	uint32_t n, cap;
};

static inline void bench_heap_free(struct bench_heap *h)
{
	if (!h)
		return;
	free(h->ids);
	free(h->pos);
	free(h->keys);
	memset(h, 0, sizeof(*h));
}

/* 0 or -ENOMEM. */
static inline int bench_heap_init(struct bench_heap *h, uint32_t cap)
{
	uint32_t i;

	memset(h, 0, sizeof(*h));
	h->ids = calloc(cap ? cap : 1, sizeof(*h->ids));
	h->pos = calloc(cap ? cap : 1, sizeof(*h->pos));
	h->keys = calloc(cap ? cap : 1, sizeof(*h->keys));
	if (!h->ids || !h->pos || !h->keys) {
		bench_heap_free(h);
		return -ENOMEM;
	}
	for (i = 0; i < cap; i++)
		h->pos[i] = BENCH_HEAP_NONE;
	h->cap = cap;
	return 0;
}

static inline void bench_heap_swap(struct bench_heap *h, uint32_t i, uint32_t j)
{
	uint32_t t = h->ids[i];

	h->ids[i] = h->ids[j];
	h->ids[j] = t;
	h->pos[h->ids[i]] = i;
	h->pos[h->ids[j]] = j;
}

static inline void bench_heap_sift(struct bench_heap *h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h->keys[h->ids[p]] <= h->keys[h->ids[i]])
			break;
		bench_heap_swap(h, i, p);
		i = p;
	}
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && h->keys[h->ids[l]] < h->keys[h->ids[m]])
			m = l;
		if (r < h->n && h->keys[h->ids[r]] < h->keys[h->ids[m]])
			m = r;
		if (m == i)
			break;
		bench_heap_swap(h, i, m);
		i = m;
	}
}

/* Arm (or move) slot ID's timer to KEY. */
static inline void bench_heap_set(struct bench_heap *h, uint32_t id, uint64_t key)
{
	h->keys[id] = key;
	if (h->pos[id] == BENCH_HEAP_NONE) {
		h->ids[h->n] = id;
		h->pos[id] = h->n++;
	}
	bench_heap_sift(h, h->pos[id]);
}

/* Disarm slot ID's timer, if it has one. */
static inline void bench_heap_cancel(struct bench_heap *h, uint32_t id)
{
	uint32_t i = h->pos[id], moved;

	if (i == BENCH_HEAP_NONE)
		return;
	h->pos[id] = BENCH_HEAP_NONE;
	if (i == --h->n)
		return;
	moved = h->ids[h->n];
	h->ids[i] = moved;
	h->pos[moved] = i;
	bench_heap_sift(h, i);
}

/* The earliest timer: 1 with *ID and *KEY set, or 0 when none is armed. */
static inline int bench_heap_peek(const struct bench_heap *h, uint32_t *id, uint64_t *key)
{
	if (!h->n)
		return 0;
	*id = h->ids[0];
	*key = h->keys[h->ids[0]];
	return 1;
}

/* ---- WebSocket client helpers --------------------------------------------- */

#define BENCH_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/*
 * Sec-WebSocket-Accept for the key KEY (KLEN bytes, at most 64) into OUT,
 * which must hold 29 bytes. Returns the length written (28).
 */
static inline size_t bench_ws_accept(const char *key, size_t klen, char out[29])
{
	char both[64 + sizeof(BENCH_WS_GUID)];
	uint8_t digest[20];

	if (klen > 64)
		klen = 64;
	memcpy(both, key, klen);
	memcpy(both + klen, BENCH_WS_GUID, sizeof(BENCH_WS_GUID) - 1);
	bench_sha1(both, klen + sizeof(BENCH_WS_GUID) - 1, digest);
	return bench_base64(digest, sizeof(digest), out);
}

/*
 * A client frame (FIN set, opcode OP, masked with MASK) carrying the LEN
 * bytes at PAYLOAD, written to OUT, which must hold LEN + 14 bytes. Returns
 * the frame's length.
 */
static inline size_t bench_ws_frame(uint8_t *out, uint8_t op, const void *payload, size_t len,
				    const uint8_t mask[4])
{
	const uint8_t *p = payload;
	size_t n = 0, i;

	out[n++] = (uint8_t)(0x80 | (op & 0x0f));
	if (len < 126) {
		out[n++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		out[n++] = 0x80 | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	memcpy(out + n, mask, 4);
	n += 4;
	for (i = 0; i < len; i++)
		out[n + i] = p[i] ^ mask[i & 3];
	return n + len;
}

/* ---- latency histogram: log-linear, HDR-style ------------------------------ */

/*
 * Values (typically ns) are counted in buckets that are exact below 128 and,
 * above, split every power of two [2^e, 2^(e+1)) into 128 equal sub-buckets,
 * so a bucket is at most 1/128 of its values wide. A quantile is reported as
 * the middle of its bucket, clamped to the exact min and max seen: at most
 * 1/256 (0.4 %) off the true sample. Values from 2^42 (73 min in ns) up all
 * fall in the last bucket. Fixed size (37 KiB), no allocation per value.
 */
#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB (1U << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_TOP_BIT 42
#define BENCH_HIST_BUCKETS ((BENCH_HIST_TOP_BIT - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t count, sum, min, max;
	uint64_t b[BENCH_HIST_BUCKETS];
};

static inline void bench_hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

static inline uint32_t bench_hist_index(uint64_t v)
{
	unsigned int e;

	if (v < BENCH_HIST_SUB)
		return (uint32_t)v;
	e = 63 - (unsigned int)__builtin_clzll(v);
	if (e >= BENCH_HIST_TOP_BIT)
		return BENCH_HIST_BUCKETS - 1;
	return BENCH_HIST_SUB * (e - BENCH_HIST_SUB_BITS + 1) +
	       (uint32_t)((v >> (e - BENCH_HIST_SUB_BITS)) - BENCH_HIST_SUB);
}

/* The smallest value of bucket IDX; *WIDTH is how many values it holds. */
static inline uint64_t bench_hist_bucket_low(uint32_t idx, uint64_t *width)
{
	unsigned int e, sub;

	if (idx < BENCH_HIST_SUB) {
		*width = 1;
		return idx;
	}
	e = idx / BENCH_HIST_SUB + BENCH_HIST_SUB_BITS - 1;
	sub = idx % BENCH_HIST_SUB;
	*width = 1ULL << (e - BENCH_HIST_SUB_BITS);
	return (uint64_t)(BENCH_HIST_SUB + sub) << (e - BENCH_HIST_SUB_BITS);
}

static inline void bench_hist_record(struct bench_hist *h, uint64_t v)
{
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += v;
	h->b[bench_hist_index(v)]++;
}

/*
 * The Q-quantile (0 < Q <= 1): the value of rank ceil(Q * count), within the
 * bound above. 0 when the histogram is empty.
 */
static inline uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	double r = q * (double)h->count;
	uint64_t rank = (uint64_t)r, seen = 0, low, width, v;
	uint32_t i;

	if (!h->count)
		return 0;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank >= h->count)
		return h->max;
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			break;
	}
	low = bench_hist_bucket_low(i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1, &width);
	v = low + width / 2;
	return v < h->min ? h->min : v > h->max ? h->max : v;
}

/*
 * The distribution as a CDF in PATH: for each non-empty bucket, its upper
 * end in microseconds and the fraction of samples at or below it.
 */
static inline int bench_hist_write_cdf(const struct bench_hist *h, const char *path)
{
	uint64_t seen = 0, low, width;
	FILE *f = fopen(path, "we");
	uint32_t i;

	if (!f)
		return -errno;
	for (i = 0; i < BENCH_HIST_BUCKETS && seen < h->count; i++) {
		if (!h->b[i])
			continue;
		seen += h->b[i];
		low = bench_hist_bucket_low(i, &width);
		fprintf(f, "%.1f %.6f\n", (double)(low + width) / 1e3, (double)seen / (double)h->count);
	}
	return fclose(f) ? -errno : 0;
}

#endif /* SLUICE_BENCH_UTIL_H */
