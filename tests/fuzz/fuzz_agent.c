// SPDX-License-Identifier: MIT
/*
 * fuzz_agent — proxy/agent.c on arbitrary bytes, against a reference written
 * straight from agent.h's description (line, words, '#', the bounds), so a
 * difference is a bug in one of the two; plus the promises that stand alone:
 * 0 or -EINVAL, nothing set on -EINVAL, values in range, the description
 * inside the buffer.
 */
#include <errno.h>
#include <string.h>

#include "proxy/agent.h"
#include "tests/fuzz/fuzz.h"

static int is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

/* All of S[0..N) are digits, N > 0, and their value is at most MAX. */
static int ref_number(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v <= max)
			v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return 0;
	*out = (uint32_t)v;
	return 1;
}

static void ref_word(struct agent_reply *r, const char *w, size_t n)
{
	static const char *const health[] = { "up", "down", "fail", "stopped" };
	static const char *const admin[] = { "ready", "drain", "maint" };
	char lw[AGENT_LINE_MAX + 1];
	uint32_t v;

	for (size_t i = 0; i < n; i++)
		lw[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] - 'A' + 'a' : w[i]);
	lw[n] = 0;
	if (lw[n - 1] == '%') {
		if (ref_number(lw, n - 1, AGENT_WEIGHT_MAX, &v)) {
			r->has |= AGENT_HAS_WEIGHT;
			r->weight_pct = (uint16_t)v;
		}
	} else if (!strncmp(lw, "maxconn:", 8)) {
		if (ref_number(lw + 8, n - 8, AGENT_NUM_MAX, &v)) {
			r->has |= AGENT_HAS_MAXCONN;
			r->maxconn = v;
		}
	} else if (!strncmp(lw, "rate:", 5)) {
		if (ref_number(lw + 5, n - 5, AGENT_NUM_MAX, &v)) {
			r->has |= AGENT_HAS_RATE;
			r->rate = v;
		}
	} else {
		for (unsigned i = 0; i < 4; i++)
			if (!strcmp(lw, health[i])) {
				r->has |= AGENT_HAS_HEALTH;
				r->health = (uint8_t)(AGENT_UP + i);
			}
		for (unsigned i = 0; i < 3; i++)
			if (!strcmp(lw, admin[i])) {
				r->has |= AGENT_HAS_ADMIN;
				r->admin = (uint8_t)(AGENT_READY + i);
			}
	}
}

static int ref_parse(const char *b, size_t len, struct agent_reply *r)
{
	size_t end = 0, words_end, i;
	const char *hash;

	memset(r, 0, sizeof(*r));
	while (end < len && b[end] != '\r' && b[end] != '\n')
		end++;
	if (end > AGENT_LINE_MAX || memchr(b, 0, end))
		return -EINVAL;
	hash = memchr(b, '#', end);
	words_end = hash ? (size_t)(hash - b) : end;
	for (i = 0; i < words_end;) {
		size_t w = i;

		while (i < words_end && !is_sep(b[i]))
			i++;
		if (i > w)
			ref_word(r, b + w, i - w);
		else
			i++;
	}
	if (hash) {
		size_t a = words_end + 1, z = end;

		while (a < z && (b[a] == ' ' || b[a] == '\t'))
			a++;
		while (z > a && (b[z - 1] == ' ' || b[z - 1] == '\t'))
			z--;
		r->desc = b + a;
		r->desc_len = z - a;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	struct agent_reply r, want;
	int rc, want_rc;

	FUZZ_CHECK(buf);
	memcpy(buf, data, size);
	rc = agent_parse(buf, size, &r);
	want_rc = ref_parse(buf, size, &want);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	FUZZ_CHECK(rc == want_rc);
	if (rc) {
		FUZZ_CHECK(r.has == 0 && !r.desc && r.desc_len == 0);
		goto out;
	}
	FUZZ_CHECK(!(r.has & ~(AGENT_HAS_HEALTH | AGENT_HAS_ADMIN | AGENT_HAS_WEIGHT |
			       AGENT_HAS_MAXCONN | AGENT_HAS_RATE)));
	FUZZ_CHECK(r.weight_pct <= AGENT_WEIGHT_MAX);
	FUZZ_CHECK(r.maxconn <= AGENT_NUM_MAX && r.rate <= AGENT_NUM_MAX);
	FUZZ_CHECK(!(r.has & AGENT_HAS_HEALTH) ||
		   (r.health >= AGENT_UP && r.health <= AGENT_STOPPED));
	FUZZ_CHECK(!(r.has & AGENT_HAS_ADMIN) ||
		   (r.admin >= AGENT_READY && r.admin <= AGENT_MAINT));
	FUZZ_CHECK(!r.desc || (r.desc >= buf && r.desc + r.desc_len <= buf + size));
	FUZZ_CHECK(r.desc_len <= AGENT_LINE_MAX);

	FUZZ_CHECK(r.has == want.has);
	FUZZ_CHECK(r.health == want.health && r.admin == want.admin);
	FUZZ_CHECK(r.weight_pct == want.weight_pct);
	FUZZ_CHECK(r.maxconn == want.maxconn && r.rate == want.rate);
	FUZZ_CHECK(r.desc == want.desc && r.desc_len == want.desc_len);
out:
	free(buf);
	return 0;
}
