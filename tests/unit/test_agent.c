// SPDX-License-Identifier: MIT
/*
 * Agent-check reply lines: HAProxy's documented examples, sluice's rate:R,
 * separators and line endings, out-of-range numbers, garbage, limits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/agent.h"
#include "tests/unit/test.h"

static uint64_t rng = 0x853c49e6748fea9bull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Parse LEN bytes of S from an exact-size heap copy; R->desc is then stale. */
static int parse_n(const char *s, size_t len, struct agent_reply *r, char *desc, size_t desc_size)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, s, len);
	rc = agent_parse(copy, len, r);
	if (r->desc)
		CHECK(r->desc >= copy && r->desc + r->desc_len <= copy + len);
	if (desc) {
		desc[0] = 0;
		if (r->desc && r->desc_len < desc_size) {
			memcpy(desc, r->desc, r->desc_len);
			desc[r->desc_len] = 0;
		}
	}
	free(copy);
	return rc;
}

struct want {
	const char *line;
	uint32_t has;
	uint8_t health, admin;
	uint16_t weight;
	uint32_t maxconn, rate;
	const char *desc; /* NULL: no '#' */
};

#define H AGENT_HAS_HEALTH
#define A AGENT_HAS_ADMIN
#define W AGENT_HAS_WEIGHT
#define M AGENT_HAS_MAXCONN
#define R AGENT_HAS_RATE

static const struct want cases[] = {
	/* HAProxy's documented forms */
	{ "75%\n", W, 0, 0, 75, 0, 0, NULL },
	{ "drain\n", A, 0, AGENT_DRAIN, 0, 0, 0, NULL },
	{ "maxconn:30\n", M, 0, 0, 0, 30, 0, NULL },
	{ "up 75% maxconn:30\n", H | W | M, AGENT_UP, 0, 75, 30, 0, NULL },
	{ "down#db unreachable\n", H, AGENT_DOWN, 0, 0, 0, 0, "db unreachable" },
	{ "ready,50%\n", A | W, 0, AGENT_READY, 50, 0, 0, NULL },
	{ "75%,maxconn:30,maint,down\n", H | A | W | M, AGENT_DOWN, AGENT_MAINT, 75, 30, 0, NULL },
	{ "fail # disk full\n", H, AGENT_FAIL, 0, 0, 0, 0, "disk full" },
	{ "stopped#\n", H, AGENT_STOPPED, 0, 0, 0, 0, "" },
	{ "maint", A, 0, AGENT_MAINT, 0, 0, 0, NULL },
	/* sluice's rate */
	{ "rate:200\n", R, 0, 0, 0, 0, 200, NULL },
	{ "rate:0", R, 0, 0, 0, 0, 0, NULL },
	{ "up,ready,100%,maxconn:1000,rate:50\r\n", H | A | W | M | R, AGENT_UP, AGENT_READY, 100,
	  1000, 50, NULL },
	{ "drain rate:5 maxconn:0 0%", A | R | M | W, 0, AGENT_DRAIN, 0, 0, 5, NULL },
	/* case, separators, endings */
	{ "  UP\t,, DRAIN  \r\n", H | A, AGENT_UP, AGENT_DRAIN, 0, 0, 0, NULL },
	{ "Up MaxConn:7 RATE:9 Ready", H | M | R | A, AGENT_UP, AGENT_READY, 0, 7, 9, NULL },
	{ ",,,up,,,", H, AGENT_UP, 0, 0, 0, 0, NULL },
	{ "up\r", H, AGENT_UP, 0, 0, 0, 0, NULL },
	{ "up\ndown\n", H, AGENT_UP, 0, 0, 0, 0, NULL },
	{ "up\rdown", H, AGENT_UP, 0, 0, 0, 0, NULL },
	{ "up\r\ndown\r\n", H, AGENT_UP, 0, 0, 0, 0, NULL },
	/* the last of a kind wins */
	{ "up down", H, AGENT_DOWN, 0, 0, 0, 0, NULL },
	{ "drain ready", A, 0, AGENT_READY, 0, 0, 0, NULL },
	{ "10% 20% maxconn:1 maxconn:2 rate:3 rate:4", W | M | R, 0, 0, 20, 2, 4, NULL },
	/* an out-of-range word is ignored; an earlier good one stays */
	{ "maxconn:99999999999", 0, 0, 0, 0, 0, 0, NULL },
	{ "maxconn:5 maxconn:99999999999", M, 0, 0, 0, 5, 0, NULL },
	{ "maxconn:2147483647 rate:2147483648", M, 0, 0, 0, 2147483647u, 0, NULL },
	{ "rate:184467440737095516160", 0, 0, 0, 0, 0, 0, NULL },
	{ "256% 257%", W, 0, 0, 256, 0, 0, NULL },
	{ "1000000000000000000000%", 0, 0, 0, 0, 0, 0, NULL },
	{ "007% maxconn:0010", W | M, 0, 0, 7, 10, 0, NULL },
	{ "75 %", 0, 0, 0, 0, 0, 0, NULL },
	{ "% %% 75%% -5% +5% 5.5% x%", 0, 0, 0, 0, 0, 0, NULL },
	{ "maxconn: maxconn:-1 maxconn:1x maxconn:+1 maxconn 30 maxconn=30", 0, 0, 0, 0, 0, 0,
	  NULL },
	{ "rate: rate:1.5 rate:-1 rate:1e3", 0, 0, 0, 0, 0, 0, NULL },
	/* unknown words are ignored, alone they are nothing */
	{ "hello world", 0, 0, 0, 0, 0, 0, NULL },
	{ "upx downy drained u", 0, 0, 0, 0, 0, 0, NULL },
	{ "HTTP/1.1 200 OK\r\n", 0, 0, 0, 0, 0, 0, NULL },
	{ "weight:50 up", H, AGENT_UP, 0, 0, 0, 0, NULL },
	{ "", 0, 0, 0, 0, 0, 0, NULL },
	{ "\n", 0, 0, 0, 0, 0, 0, NULL },
	{ "\r\nup", 0, 0, 0, 0, 0, 0, NULL },
	/* the description */
	{ "# only a comment", 0, 0, 0, 0, 0, 0, "only a comment" },
	{ "down \t#\t  spaced out \t \r\n", H, AGENT_DOWN, 0, 0, 0, 0, "spaced out" },
	{ "maxconn:30#up", M, 0, 0, 0, 30, 0, "up" },
	{ "down#a#b, up", H, AGENT_DOWN, 0, 0, 0, 0, "a#b, up" },
	{ "\xff\xfe up \x01\x7f", H, AGENT_UP, 0, 0, 0, 0, NULL },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct want *c = &cases[i];
		struct agent_reply r;
		char desc[600];
		int bad;

		CHECK_EQ(parse_n(c->line, strlen(c->line), &r, desc, sizeof(desc)), 0);
		bad = r.has != c->has;
		bad |= (c->has & H) && r.health != c->health;
		bad |= (c->has & A) && r.admin != c->admin;
		bad |= (c->has & W) && r.weight_pct != c->weight;
		bad |= (c->has & M) && r.maxconn != c->maxconn;
		bad |= (c->has & R) && r.rate != c->rate;
		bad |= !c->desc != !r.desc;
		bad |= c->desc && strcmp(desc, c->desc);
		if (bad) {
			fprintf(stderr, "  case %zu \"%s\": has %#x health %u admin %u weight %u",
				i, c->line, r.has, r.health, r.admin, r.weight_pct);
			fprintf(stderr, " maxconn %u rate %u desc \"%s\"\n", r.maxconn, r.rate,
				r.desc ? desc : "(none)");
			test_failures++;
		}
	}
}

static void test_limits(void)
{
	char line[AGENT_LINE_MAX + 8];
	struct agent_reply r;

	/* NUL within the line; after it, it does not matter */
	CHECK_EQ(parse_n("up\0down", 7, &r, NULL, 0), -EINVAL);
	CHECK_EQ(r.has, 0);
	CHECK_EQ(parse_n("\0", 1, &r, NULL, 0), -EINVAL);
	CHECK_EQ(parse_n("up\n\0", 4, &r, NULL, 0), 0);
	CHECK_EQ(r.has, H);
	/* the length counts only up to the buffer, not a NUL-terminated string */
	CHECK_EQ(parse_n("up down", 2, &r, NULL, 0), 0);
	CHECK_EQ(r.health, AGENT_UP);

	/* 512 bytes of line are fine, 513 are not, however the line ends */
	memset(line, ' ', sizeof(line));
	memcpy(line, "up", 2);
	memcpy(line + AGENT_LINE_MAX - 5, "drain", 5);
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX, &r, NULL, 0), 0);
	CHECK_EQ(r.has, H | A);
	line[AGENT_LINE_MAX] = '\n';
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX + 1, &r, NULL, 0), 0);
	line[AGENT_LINE_MAX] = '\r';
	line[AGENT_LINE_MAX + 1] = '\n';
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX + 2, &r, NULL, 0), 0);
	CHECK_EQ(r.has, H | A);
	line[AGENT_LINE_MAX] = ' ';
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX + 1, &r, NULL, 0), -EINVAL);
	CHECK_EQ(r.has, 0);
	line[AGENT_LINE_MAX + 1] = '\n';
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX + 2, &r, NULL, 0), -EINVAL);
	/* a long description is still part of the line */
	memset(line, 'x', sizeof(line));
	memcpy(line, "down#", 5);
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX + 1, &r, NULL, 0), -EINVAL);
	CHECK_EQ(parse_n(line, AGENT_LINE_MAX, &r, NULL, 0), 0);
	CHECK_EQ(r.desc_len, AGENT_LINE_MAX - 5);
}

/* Random lines: bounded results, descriptions inside the buffer. */
static void test_random(void)
{
	static const char *const words[] = {
		"up", "DOWN", "drain", "ready", "maint", "fail", "stopped", "75%",
		"256%", "257%", "maxconn:", "rate:", "#", " ", ",", "\t",
		"\r\n", "\n", "0", "99999999999", "x", "%",
	};
	char buf[700];

	for (int round = 0; round < 200000 && test_failures < 20; round++) {
		struct agent_reply r;
		size_t len = 0;
		int rc;

		if (round % 2) {
			len = next() % sizeof(buf);
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)next();
		} else {
			int n = (int)(next() % 40);

			for (int k = 0; k < n; k++) {
				const char *w = words[next() % (sizeof(words) / sizeof(words[0]))];
				size_t wl = strlen(w);

				if (len + wl > sizeof(buf))
					break;
				memcpy(buf + len, w, wl);
				len += wl;
			}
		}
		rc = parse_n(buf, len, &r, NULL, 0);
		CHECK(rc == 0 || rc == -EINVAL);
		if (rc) {
			CHECK_EQ(r.has, 0);
			continue;
		}
		CHECK(!(r.has & ~(H | A | W | M | R)));
		CHECK(r.weight_pct <= AGENT_WEIGHT_MAX);
		CHECK(r.maxconn <= AGENT_NUM_MAX && r.rate <= AGENT_NUM_MAX);
		CHECK(!(r.has & H) || (r.health >= AGENT_UP && r.health <= AGENT_STOPPED));
		CHECK(!(r.has & A) || (r.admin >= AGENT_READY && r.admin <= AGENT_MAINT));
		CHECK(r.desc_len <= AGENT_LINE_MAX);
	}
}

int main(void)
{
	test_cases();
	test_limits();
	test_random();
	return test_result("agent");
}
