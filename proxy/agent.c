// SPDX-License-Identifier: MIT
#include "proxy/agent.h"

#include <errno.h>
#include <string.h>

static inline int sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

static inline char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* W[0..N) equals the lowercase literal LIT, ignoring ASCII case. */
static int ieq(const char *w, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n && lit[i]; i++)
		if (lower(w[i]) != lit[i])
			return 0;
	return i == n && !lit[i];
}

/* W[0..N) is 1*DIGIT not above MAX: 0 and *OUT set, else -1. */
static int number(const char *w, size_t n, uint32_t max, uint32_t *out)
{
	uint64_t x = 0;

	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(w[i] - '0');
		/* MAX < 2^32, so this stops X long before it could wrap */
		if (x > max)
			return -1;
	}
	*out = (uint32_t)x;
	return 0;
}

static const struct {
	const char *word;
	uint8_t health, admin;
} states[] = {
	{ "up", AGENT_UP, 0 },	       { "down", AGENT_DOWN, 0 },   { "fail", AGENT_FAIL, 0 },
	{ "stopped", AGENT_STOPPED, 0 }, { "ready", 0, AGENT_READY }, { "drain", 0, AGENT_DRAIN },
	{ "maint", 0, AGENT_MAINT },
};

/* One word, W[0..N), N > 0. Unknown and out-of-range words change nothing. */
static void word(struct agent_reply *r, const char *w, size_t n)
{
	uint32_t x;

	if (w[n - 1] == '%') {
		if (!number(w, n - 1, AGENT_WEIGHT_MAX, &x)) {
			r->weight_pct = (uint16_t)x;
			r->has |= AGENT_HAS_WEIGHT;
		}
		return;
	}
	if (n > 8 && ieq(w, 8, "maxconn:")) {
		if (!number(w + 8, n - 8, AGENT_NUM_MAX, &x)) {
			r->maxconn = x;
			r->has |= AGENT_HAS_MAXCONN;
		}
		return;
	}
	if (n > 5 && ieq(w, 5, "rate:")) {
		if (!number(w + 5, n - 5, AGENT_NUM_MAX, &x)) {
			r->rate = x;
			r->has |= AGENT_HAS_RATE;
		}
		return;
	}
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		if (!ieq(w, n, states[i].word))
			continue;
		if (states[i].health) {
			r->health = states[i].health;
			r->has |= AGENT_HAS_HEALTH;
		} else {
			r->admin = states[i].admin;
			r->has |= AGENT_HAS_ADMIN;
		}
		return;
	}
}

int agent_parse(const char *buf, size_t len, struct agent_reply *r)
{
	size_t end, i, w;

	memset(r, 0, sizeof(*r));

	/* the line: up to the first CR or LF, at most AGENT_LINE_MAX bytes */
	for (end = 0; end < len && buf[end] != '\n' && buf[end] != '\r'; end++)
		if (end == AGENT_LINE_MAX || buf[end] == '\0')
			return -EINVAL;

	for (i = 0; i < end;) {
		if (sep(buf[i])) {
			i++;
			continue;
		}
		if (buf[i] == '#') {
			size_t z = end;

			for (i++; i < end && (buf[i] == ' ' || buf[i] == '\t'); i++)
				;
			while (z > i && (buf[z - 1] == ' ' || buf[z - 1] == '\t'))
				z--;
			r->desc = buf + i;
			r->desc_len = z - i;
			break;
		}
		for (w = i; i < end && !sep(buf[i]) && buf[i] != '#'; i++)
			;
		word(r, buf + w, i - w);
	}
	return 0;
}
