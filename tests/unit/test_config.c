// SPDX-License-Identifier: MIT
/*
 * test_config — userspace/config.c: address parsing, defaults, every key,
 * and the sample files under tests/config/:
 *   good/NAME.conf must load (from the file and from a string, identically);
 *   bad/NAME.conf must fail with an error containing the substring on their
 *   first line ("# expect: ..."), at the line given by an optional second
 *   line ("# line: N"), every error line shaped "FILE:LINE: SETTING: msg".
 * Data files are found from the repo root: $SLUICE_SRC, else the CWD.
 * Exit 0 pass, 1 fail.
 */
#include "userspace/config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		checks++;                                                       \
		if (!(cond)) {                                                  \
			failures++;                                             \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

static char root[PATH_MAX];

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				buf = NULL;
				goto out;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
	} while (r > 0);
	buf[n] = '\0';
	if (len)
		*len = n;
out:
	fclose(f);
	return buf;
}

/* ---- config_parse_addr --------------------------------------------------- */

static void test_parse_addr(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *text; /* normalised, when rc == 0 */
		int family;
	} cases[] = {
		{ "1.2.3.4:80", 0, "1.2.3.4:80", AF_INET },
		{ "0.0.0.0:8080", 0, "0.0.0.0:8080", AF_INET },
		{ "10.0.0.1:065535", 0, "10.0.0.1:65535", AF_INET },
		{ "[::1]:80", 0, "[::1]:80", AF_INET6 },
		{ "[::]:1", 0, "[::]:1", AF_INET6 },
		{ "[2001:db8::1]:443", 0, "[2001:db8::1]:443", AF_INET6 },
		{ "[2001:0DB8:0:0:0:0:0:1]:443", 0, "[2001:db8::1]:443", AF_INET6 },
		{ "[::ffff:10.0.0.1]:80", 0, "[::ffff:10.0.0.1]:80", AF_INET6 },
		{ "localhost:80", 0, NULL, 0 }, /* v4 or v6, whichever resolves first */
		{ "", -EINVAL, NULL, 0 },
		{ "10.0.0.1", -EINVAL, NULL, 0 },
		{ "10.0.0.1:", -EINVAL, NULL, 0 },
		{ ":80", -EINVAL, NULL, 0 },
		{ "10.0.0.1:0", -EINVAL, NULL, 0 },
		{ "10.0.0.1:65536", -EINVAL, NULL, 0 },
		{ "10.0.0.1:70000", -EINVAL, NULL, 0 },
		{ "10.0.0.1:-1", -EINVAL, NULL, 0 },
		{ "10.0.0.1:+80", -EINVAL, NULL, 0 },
		{ "10.0.0.1:80x", -EINVAL, NULL, 0 },
		{ "10.0.0.1:http", -EINVAL, NULL, 0 },
		{ "10.0.0.256:80", -EINVAL, NULL, 0 },
		{ "10.1:80", -EINVAL, NULL, 0 },    /* inet_aton would take it */
		{ "0x7f.1:80", -EINVAL, NULL, 0 },  /* likewise */
		{ "[::1:80", -EINVAL, NULL, 0 },
		{ "[::1]80", -EINVAL, NULL, 0 },
		{ "[::1]:", -EINVAL, NULL, 0 },
		{ "[]:80", -EINVAL, NULL, 0 },
		{ "[1.2.3.4]:80", -EINVAL, NULL, 0 },
		{ "[::g]:80", -EINVAL, NULL, 0 },
		{ "::1:80", -EINVAL, NULL, 0 },
		{ "not a host:80", -EINVAL, NULL, 0 },
		{ "under_score:80", -EINVAL, NULL, 0 },
		{ "-lead.example:80", -EINVAL, NULL, 0 },
		{ "trail-.example:80", -EINVAL, NULL, 0 },
		{ "a..b:80", -EINVAL, NULL, 0 },
		{ "sluice-test.invalid:80", -ENOENT, NULL, 0 }, /* RFC 6761: never resolves */
	};
	struct cfg_addr a;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		memset(&a, 0xa5, sizeof(a));
		rc = config_parse_addr(cases[i].in, &a);
		CHECK(rc == cases[i].rc, "\"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
		if (rc || cases[i].rc)
			continue;
		if (cases[i].text)
			CHECK(strcmp(a.text, cases[i].text) == 0,
			      "\"%s\": text \"%s\", want \"%s\"", cases[i].in, a.text,
			      cases[i].text);
		if (cases[i].family)
			CHECK(a.ss.ss_family == cases[i].family, "\"%s\": family %d", cases[i].in,
			      a.ss.ss_family);
		if (a.ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;

			CHECK(a.len == sizeof(*in), "\"%s\": len %u", cases[i].in, (unsigned)a.len);
			CHECK(in->sin_port != 0, "\"%s\": port", cases[i].in);
		} else {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.ss;

			CHECK(a.ss.ss_family == AF_INET6, "\"%s\": family %d", cases[i].in,
			      a.ss.ss_family);
			CHECK(a.len == sizeof(*in6), "\"%s\": len %u", cases[i].in,
			      (unsigned)a.len);
			CHECK(in6->sin6_port != 0, "\"%s\": port", cases[i].in);
		}
	}

	CHECK(config_parse_addr("192.0.2.7:8443", &a) == 0, "parse");
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;

		CHECK(ntohs(in->sin_port) == 8443, "port %u", ntohs(in->sin_port));
		CHECK(ntohl(in->sin_addr.s_addr) == 0xc0000207, "addr %08x",
		      ntohl(in->sin_addr.s_addr));
	}
	CHECK(config_parse_addr("[2001:db8::5]:9", &a) == 0, "parse");
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.ss;
		struct in6_addr want;

		inet_pton(AF_INET6, "2001:db8::5", &want);
		CHECK(ntohs(in6->sin6_port) == 9, "port %u", ntohs(in6->sin6_port));
		CHECK(memcmp(&in6->sin6_addr, &want, sizeof(want)) == 0, "addr");
	}
	CHECK(config_parse_addr(NULL, &a) == -EINVAL, "NULL text");
}

/* ---- loading from strings ------------------------------------------------ */

static const char minimal[] =
	"listeners = ( { name = \"ws\"; address = \"127.0.0.1:8080\"; pool = \"app\"; } );\n"
	"pools = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9000\"; } ); } );\n";

static void test_defaults(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want_workers = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (unsigned)ncpu;
	struct sl_config *cfg;
	char *errs = (char *)1;

	cfg = config_load_string(minimal, "mem.conf", &errs);
	CHECK(cfg != NULL, "minimal: %s", errs ? errs : "(no errors)");
	CHECK(errs == NULL, "errors set on success");
	if (!cfg) {
		free(errs);
		return;
	}
	CHECK(strcmp(cfg->path, "mem.conf") == 0, "path %s", cfg->path);
	CHECK(cfg->workers == want_workers, "workers %u, want %u", cfg->workers, want_workers);
	CHECK(cfg->admin.enabled == 1, "admin enabled");
	CHECK(strcmp(cfg->admin.addr.text, "127.0.0.1:9901") == 0, "admin %s",
	      cfg->admin.addr.text);
	CHECK(cfg->admin.addr.len == sizeof(struct sockaddr_in), "admin len");
	CHECK(cfg->admin.token_file[0] == 0, "token_file %s", cfg->admin.token_file);
	CHECK(cfg->user[0] == 0 && cfg->group[0] == 0, "user %s group %s", cfg->user, cfg->group);
	CHECK(cfg->timeouts.connect_ms == 3000, "connect_ms %u", cfg->timeouts.connect_ms);
	CHECK(cfg->timeouts.idle_s == 3600, "idle_s %u", cfg->timeouts.idle_s);
	CHECK(cfg->timeouts.backend_wait_ms == 10000, "backend_wait_ms %u",
	      cfg->timeouts.backend_wait_ms);
	CHECK(cfg->drain.period_s == 30, "period_s %u", cfg->drain.period_s);
	CHECK(cfg->drain.grace_s == 60, "grace_s %u", cfg->drain.grace_s);
	CHECK(cfg->buffers.count == 512, "count %u", cfg->buffers.count);
	CHECK(cfg->buffers.size == 65536, "size %u", cfg->buffers.size);
	CHECK(cfg->nlisteners == 1, "nlisteners %u", cfg->nlisteners);
	CHECK(cfg->npools == 1, "npools %u", cfg->npools);
	if (cfg->nlisteners == 1 && cfg->npools == 1) {
		const struct cfg_listener *l = &cfg->listeners[0];
		const struct cfg_pool *p = &cfg->pools[0];

		CHECK(strcmp(l->name, "ws") == 0, "listener name %s", l->name);
		CHECK(strcmp(l->addr.text, "127.0.0.1:8080") == 0, "listener addr %s",
		      l->addr.text);
		CHECK(l->mode == CFG_MODE_TCP, "mode %d", l->mode);
		CHECK(l->pool == 0, "pool %u", l->pool);
		CHECK(l->backlog == 4096, "backlog %u", l->backlog);
		CHECK(l->line == 1, "listener line %d", l->line);
		CHECK(strcmp(p->name, "app") == 0, "pool name %s", p->name);
		CHECK(p->balance == CFG_BAL_LEAST_CONN, "balance %d", p->balance);
		CHECK(p->retries == 2, "retries %u", p->retries);
		CHECK(p->proxy_protocol == CFG_PP_OFF, "proxy_protocol %d", p->proxy_protocol);
		CHECK(p->nservers == 1, "nservers %u", p->nservers);
		CHECK(p->line == 2, "pool line %d", p->line);
		if (p->nservers == 1) {
			CHECK(strcmp(p->servers[0].name, "127.0.0.1:9000") == 0, "server name %s",
			      p->servers[0].name);
			CHECK(strcmp(p->servers[0].addr.text, "127.0.0.1:9000") == 0,
			      "server addr %s", p->servers[0].addr.text);
			CHECK(p->servers[0].line == 2, "server line %d", p->servers[0].line);
		}
	}
	CHECK(config_pool_index(cfg, "app") == 0, "pool index");
	CHECK(config_pool_index(cfg, "nope") == -1, "pool index absent");
	CHECK(config_listener_index(cfg, "ws") == 0, "listener index");
	CHECK(config_listener_index(cfg, "app") == -1, "listener index absent");
	CHECK(config_pool_index(NULL, "app") == -1, "pool index NULL");
	config_free(cfg);
}

/* "auto" for a server's rate and a pool's queue timeout, with their bounds and defaults. */
static void test_auto(void)
{
	static const char text[] =
		"listeners = ( { name = \"ws\"; address = \"127.0.0.1:8080\"; pool = \"app\"; } );\n"
		"pools = ( { name = \"app\"; queue = { timeout_ms = \"auto\"; };\n"
		"  servers = ( { address = \"10.0.0.1:80\"; rate = \"auto\"; },\n"
		"    { address = \"10.0.0.2:80\"; rate = \"auto\"; rate_min = 100; rate_max = 800; burst = 40; },\n"
		"    { address = \"10.0.0.3:80\"; rate = 300; } ); } );\n";
	struct sl_config *cfg;
	char *errs = NULL;

	cfg = config_load_string(text, "auto.conf", &errs);
	CHECK(cfg != NULL, "auto: %s", errs ? errs : "");
	free(errs);
	if (!cfg || cfg->npools != 1 || cfg->pools[0].nservers != 3) {
		config_free(cfg);
		return;
	}
	const struct cfg_pool *p = &cfg->pools[0];
	const struct cfg_server *a = &p->servers[0], *b = &p->servers[1], *c = &p->servers[2];

	CHECK(p->queue.timeout_auto == 1, "timeout_auto %d", p->queue.timeout_auto);
	CHECK(p->queue.timeout_ms == 10000, "timeout_ms where nothing is learned %u",
	      p->queue.timeout_ms);
	CHECK(a->rate_auto && a->rate_min == 10 && a->rate_max == 1000000,
	      "auto defaults: %d %u %u", a->rate_auto, a->rate_min, a->rate_max);
	CHECK(a->rate == 50 && a->burst == 5 && !a->burst_set, "auto start rate %u burst %u",
	      a->rate, a->burst);
	CHECK(b->rate_auto && b->rate_min == 100 && b->rate_max == 800 && b->rate == 100,
	      "bounded auto: %u..%u from %u", b->rate_min, b->rate_max, b->rate);
	CHECK(b->burst == 40 && b->burst_set, "auto burst given %u", b->burst);
	CHECK(!c->rate_auto && c->rate == 300 && c->burst == 30, "fixed rate %u burst %u",
	      c->rate, c->burst);
	CHECK(p->queue.order == CFG_QO_ADAPTIVE, "queue order by default %d", p->queue.order);
	config_free(cfg);
}

/* queue.order: "fifo" or "adaptive", nothing else. */
static void test_queue_order(void)
{
	static const char head[] =
		"listeners = ( { name = \"ws\"; address = \"127.0.0.1:8080\"; pool = \"app\"; } );\n"
		"pools = ( { name = \"app\"; queue = { order = ";
	static const char tail[] = "; }; servers = ( { address = \"10.0.0.1:80\"; } ); } );\n";
	static const struct {
		const char *v;
		int order; /* -1: refused */
	} cases[] = {
		{ "\"fifo\"", CFG_QO_FIFO },
		{ "\"adaptive\"", CFG_QO_ADAPTIVE },
		{ "\"lifo\"", -1 },
		{ "\"FIFO\"", -1 },
		{ "1", -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512], *errs = NULL;
		struct sl_config *cfg;

		snprintf(text, sizeof(text), "%s%s%s", head, cases[i].v, tail);
		cfg = config_load_string(text, "o.conf", &errs);
		if (cases[i].order < 0) {
			CHECK(!cfg && errs && strstr(errs, "o.conf:2: pools[0].queue.order: "),
			      "order %s accepted: %s", cases[i].v, errs ? errs : "");
		} else {
			CHECK(cfg && cfg->pools[0].queue.order == (enum cfg_queue_order)cases[i].order,
			      "order %s: %s", cases[i].v, errs ? errs : "");
		}
		free(errs);
		config_free(cfg);
	}
}

/* One string with several mistakes: every one reported, sorted by line. */
static void test_all_errors(void)
{
	static const char text[] =
		"workers = 0;\n"                                               /* 1 */
		"timeouts = { connect_ms = \"3s\";\n"                         /* 2 */
		"  idle_s = -5; };\n"                                          /* 3 */
		"listeners = (\n"                                              /* 4 */
		"  { name = \"ws\"; address = \"127.0.0.1\"; pool = \"nope\";\n" /* 5 */
		"    colour = 1; }\n"                                          /* 6 */
		");\n"                                                         /* 7 */
		"pools = ( { name = \"app\"; balance = \"fastest\"; servers = (); } );\n"; /* 8 */
	static const char *const want[] = {
		"m.conf:1: workers: value 0 out of range (1..64)\n",
		"m.conf:2: timeouts.connect_ms: expected an integer, got a string\n",
		"m.conf:3: timeouts.idle_s: value -5 out of range (1..604800)\n",
		"m.conf:5: listeners[0].address: "
		"invalid address \"127.0.0.1\" (expected HOST:PORT)\n",
		"m.conf:5: listeners[0].pool: no pool named \"nope\"\n",
		"m.conf:6: listeners[0].colour: unknown setting\n",
		"m.conf:8: pools[0].balance: "
		"unsupported balance \"fastest\" (supported: \"least_conn\", \"round_robin\")\n",
		"m.conf:8: pools[0].servers: pool has no servers\n",
	};
	char expect[2048] = "";
	char *errs = NULL;
	struct sl_config *cfg;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		strcat(expect, want[i]);
	errno = 0;
	cfg = config_load_string(text, "m.conf", &errs);
	CHECK(cfg == NULL, "loaded");
	CHECK(errno == EINVAL, "errno %d", errno);
	CHECK(errs && strcmp(errs, expect) == 0, "got:\n%swant:\n%s", errs ? errs : "(null)",
	      expect);
	free(errs);
	config_free(cfg);

	/* a syntax error names the string's NAME and the line, and stops there */
	cfg = config_load_string("workers = 1;\nfoo = ;\nbar = 1;\n", "s.conf", &errs);
	CHECK(cfg == NULL, "loaded");
	CHECK(errs && strcmp(errs, "s.conf:2: syntax: syntax error\n") == 0, "got %s",
	      errs ? errs : "(null)");
	free(errs);

	/* a literal libconfig would wrap is caught, even when it wraps into range */
	cfg = config_load_string("drain = { grace_s = 4294967356; };\n", "w.conf", &errs);
	CHECK(cfg == NULL, "loaded");
	CHECK(errs && strstr(errs, "w.conf:1: syntax: integer 4294967356 does not fit"), "got %s",
	      errs ? errs : "(null)");
	free(errs);
	/* ... but not inside strings or comments */
	cfg = config_load_string("# 99999999999\n/* 99999999999\n */ // 99999999999\n"
				 "admin = { address = \"99999999999\"; };\n", "c.conf", &errs);
	CHECK(errs && !strstr(errs, "does not fit") && strstr(errs, "c.conf:4: admin.address"),
	      "got %s", errs ? errs : "(null)");
	free(errs);
	config_free(cfg);

	/* errors may be NULL */
	errno = 0;
	CHECK(config_load_string("workers = 0;\n", "x", NULL) == NULL && errno == EINVAL,
	      "NULL errors");
	CHECK(config_load_string(NULL, "x", &errs) == NULL && errno == EINVAL && !errs,
	      "NULL text");
	config_free(NULL);
}

/* Values that are only valid at their edges, set from a string. */
static void test_edges(void)
{
	static const char *const good[] = {
		"buffers = { count = 16; size = 1024; };",
		"buffers = { count = 32768; size = 1048576; };",
		"workers = 1;",
		"workers = 0x40;",
		"drain = { period_s = 86400; grace_s = 0; };",
		"timeouts = { connect_ms = 600000; idle_s = 604800; backend_wait_ms = 3600000L; };",
	};
	char text[1024];
	char *errs;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct sl_config *cfg;

		snprintf(text, sizeof(text), "%s\n%s", good[i], minimal);
		cfg = config_load_string(text, "e.conf", &errs);
		CHECK(cfg != NULL, "\"%s\": %s", good[i], errs ? errs : "");
		free(errs);
		config_free(cfg);
	}
}

/* ---- sample files -------------------------------------------------------- */

static struct sl_config *load_file(const char *name, char **errs)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/tests/config/good/%s", root, name);
	return config_load(path, errs);
}

static void test_full(void)
{
	char *errs = NULL;
	struct sl_config *cfg = load_file("full.conf", &errs);
	const struct cfg_pool *p;
	const struct cfg_listener *l;

	CHECK(cfg != NULL, "full.conf: %s", errs ? errs : "");
	free(errs);
	if (!cfg)
		return;
	CHECK(cfg->workers == 3, "workers %u", cfg->workers);
	CHECK(cfg->admin.enabled && strcmp(cfg->admin.addr.text, "127.0.0.1:9999") == 0,
	      "admin %s", cfg->admin.addr.text);
	CHECK(cfg->timeouts.connect_ms == 2500, "connect_ms");
	CHECK(cfg->timeouts.idle_s == 600, "idle_s");
	CHECK(cfg->timeouts.backend_wait_ms == 20000, "backend_wait_ms");
	CHECK(cfg->drain.period_s == 10, "period_s");
	CHECK(cfg->drain.grace_s == 90, "grace_s");
	CHECK(cfg->buffers.count == 2048, "count");
	CHECK(cfg->buffers.size == 8192, "size");
	CHECK(cfg->nlisteners == 1 && cfg->npools == 1, "counts");
	if (cfg->nlisteners != 1 || cfg->npools != 1)
		goto out;
	l = &cfg->listeners[0];
	p = &cfg->pools[0];
	CHECK(strcmp(l->name, "ws") == 0, "name");
	CHECK(strcmp(l->addr.text, "0.0.0.0:8080") == 0, "addr %s", l->addr.text);
	CHECK(l->mode == CFG_MODE_TCP && l->pool == 0 && l->backlog == 1024, "listener");
	CHECK(l->line == 8, "line %d", l->line);
	CHECK(strcmp(p->name, "realtime") == 0, "pool name");
	CHECK(p->balance == CFG_BAL_ROUND_ROBIN, "balance");
	CHECK(p->retries == 5, "retries");
	CHECK(p->proxy_protocol == CFG_PP_V2, "proxy_protocol %d", p->proxy_protocol);
	CHECK(p->nservers == 2, "nservers");
	if (p->nservers == 2) {
		CHECK(strcmp(p->servers[0].name, "rt-1") == 0, "server 0 name");
		CHECK(strcmp(p->servers[1].name, "rt-2") == 0, "server 1 name");
		CHECK(strcmp(p->servers[1].addr.text, "10.0.0.12:9000") == 0, "server 1 addr");
		CHECK(p->servers[0].line == 13 && p->servers[1].line == 14, "server lines %d %d",
		      p->servers[0].line, p->servers[1].line);
	}
out:
	config_free(cfg);
}

static void test_samples(void)
{
	char *errs = NULL;
	struct sl_config *cfg;

	cfg = load_file("ipv6.conf", &errs);
	CHECK(cfg != NULL, "ipv6.conf: %s", errs ? errs : "");
	free(errs);
	if (cfg && cfg->nlisteners == 2 && cfg->npools == 1 && cfg->pools[0].nservers == 3) {
		CHECK(strcmp(cfg->admin.addr.text, "[::1]:9901") == 0, "admin");
		CHECK(strcmp(cfg->listeners[0].addr.text, "[::]:8080") == 0, "l0");
		CHECK(cfg->listeners[0].addr.ss.ss_family == AF_INET6, "l0 family");
		CHECK(strcmp(cfg->pools[0].servers[1].addr.text, "[2001:db8::2]:443") == 0,
		      "normalised %s", cfg->pools[0].servers[1].addr.text);
		CHECK(strcmp(cfg->pools[0].servers[1].name, "[2001:db8::2]:443") == 0,
		      "default name %s", cfg->pools[0].servers[1].name);
	} else {
		CHECK(0, "ipv6.conf shape");
	}
	config_free(cfg);

	cfg = load_file("proxy_protocol.conf", &errs);
	CHECK(cfg != NULL, "proxy_protocol.conf: %s", errs ? errs : "");
	free(errs);
	if (cfg && cfg->npools == 4) {
		CHECK(cfg->pools[0].proxy_protocol == CFG_PP_V1, "text");
		CHECK(cfg->pools[1].proxy_protocol == CFG_PP_V2, "binary");
		CHECK(cfg->pools[2].proxy_protocol == CFG_PP_OFF, "plain");
		CHECK(cfg->pools[3].proxy_protocol == CFG_PP_OFF, "default");
	} else {
		CHECK(0, "proxy_protocol.conf shape");
	}
	config_free(cfg);

	cfg = load_file("admin_disabled.conf", &errs);
	CHECK(cfg && !cfg->admin.enabled, "admin_disabled.conf: %s", errs ? errs : "");
	free(errs);
	config_free(cfg);

	cfg = load_file("defaults.conf", &errs);
	CHECK(cfg && cfg->admin.enabled && cfg->timeouts.connect_ms == 3000 &&
		      cfg->drain.grace_s == 60 && cfg->buffers.count == 512,
	      "defaults.conf: %s", errs ? errs : "");
	free(errs);
	config_free(cfg);

	cfg = load_file("privileges.conf", &errs);
	CHECK(cfg && strcmp(cfg->user, "sluice") == 0 && strcmp(cfg->group, "sluice-ro") == 0 &&
		      strcmp(cfg->admin.token_file, "/etc/sluice/admin.token") == 0,
	      "privileges.conf: %s", errs ? errs : "");
	free(errs);
	config_free(cfg);

	cfg = load_file("user_only.conf", &errs);
	CHECK(cfg && strcmp(cfg->user, "_sluice.svc-1") == 0 && cfg->group[0] == 0,
	      "user_only.conf: %s", errs ? errs : "");
	free(errs);
	config_free(cfg);

	cfg = load_file("multi.conf", &errs);
	CHECK(cfg != NULL, "multi.conf: %s", errs ? errs : "");
	free(errs);
	if (cfg && cfg->nlisteners == 4 && cfg->npools == 4) {
		CHECK(cfg->workers == 4, "workers");
		CHECK(cfg->listeners[1].pool == (unsigned)config_pool_index(cfg, "realtime"),
		      "ws-alt pool");
		CHECK(cfg->listeners[2].pool == (unsigned)config_pool_index(cfg, "api"),
		      "api pool");
		CHECK(cfg->listeners[3].pool == 2, "chat pool %u", cfg->listeners[3].pool);
		CHECK(config_listener_index(cfg, "chat.v2") == 3, "listener index");
		CHECK(cfg->pools[2].balance == CFG_BAL_ROUND_ROBIN, "balance");
		CHECK(strcmp(cfg->pools[1].servers[1].name, "b") == 0, "server name");
	} else {
		CHECK(0, "multi.conf shape");
	}
	config_free(cfg);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.conf names in DIR; NULL-terminated, caller frees. */
static char **list_conf(const char *dir, unsigned *n)
{
	char **names = NULL, **nn;
	struct dirent *de;
	DIR *d = opendir(dir);

	*n = 0;
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		nn = realloc(names, (*n + 2) * sizeof(*names));
		if (!nn)
			break;
		names = nn;
		names[(*n)++] = strdup(de->d_name);
		names[*n] = NULL;
	}
	closedir(d);
	if (names)
		qsort(names, *n, sizeof(*names), cmp_str);
	return names;
}

static void free_list(char **names)
{
	for (char **p = names; p && *p; p++)
		free(*p);
	free(names);
}

static int same_config(const struct sl_config *a, const struct sl_config *b)
{
	if (a->workers != b->workers || a->admin.enabled != b->admin.enabled ||
	    strcmp(a->user, b->user) || strcmp(a->group, b->group) ||
	    strcmp(a->admin.token_file, b->admin.token_file) ||
	    memcmp(&a->admin.addr, &b->admin.addr, sizeof(a->admin.addr)) ||
	    memcmp(&a->timeouts, &b->timeouts, sizeof(a->timeouts)) ||
	    memcmp(&a->drain, &b->drain, sizeof(a->drain)) ||
	    memcmp(&a->buffers, &b->buffers, sizeof(a->buffers)) ||
	    a->nlisteners != b->nlisteners || a->npools != b->npools)
		return 0;
	for (unsigned i = 0; i < a->nlisteners; i++) {
		struct cfg_listener l = a->listeners[i], m = b->listeners[i];

		/* the certificate lists are compared by content, not address */
		if (l.tls.ncerts != m.tls.ncerts ||
		    (l.tls.ncerts &&
		     memcmp(l.tls.certs, m.tls.certs, l.tls.ncerts * sizeof(*l.tls.certs))))
			return 0;
		l.tls.certs = m.tls.certs = NULL;
		if (memcmp(&l, &m, sizeof(l)))
			return 0;
	}
	for (unsigned i = 0; i < a->npools; i++) {
		const struct cfg_pool *p = &a->pools[i], *q = &b->pools[i];

		if (strcmp(p->name, q->name) || p->balance != q->balance ||
		    p->retries != q->retries || p->proxy_protocol != q->proxy_protocol ||
		    p->nservers != q->nservers || p->line != q->line ||
		    memcmp(p->servers, q->servers, p->nservers * sizeof(*p->servers)))
			return 0;
	}
	return 1;
}

static unsigned test_good_dir(void)
{
	char dir[PATH_MAX + 32], path[PATH_MAX * 2];
	unsigned n;
	char **names;

	snprintf(dir, sizeof(dir), "%s/tests/config/good", root);
	names = list_conf(dir, &n);
	for (unsigned i = 0; i < n; i++) {
		struct sl_config *cfg, *cfg2;
		char *errs = NULL, *text;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		cfg = config_load(path, &errs);
		CHECK(cfg != NULL, "%s:\n%s", names[i], errs ? errs : "(no errors)");
		CHECK(errs == NULL, "%s: errors set on success", names[i]);
		free(errs);
		text = slurp(path, NULL);
		cfg2 = text ? config_load_string(text, path, NULL) : NULL;
		CHECK(cfg && cfg2 && same_config(cfg, cfg2), "%s: file and string loads differ",
		      names[i]);
		free(text);
		config_free(cfg);
		config_free(cfg2);
	}
	free_list(names);
	return n;
}

/*
 * Check one error text against the file it came from: every line
 * "PATH:LINE: SETTING: message" with 0 < LINE <= NLINES; returns the line of
 * the first error containing EXPECT, or 0.
 */
static int check_error_lines(const char *name, const char *path, const char *errs,
			     unsigned nlines, const char *expect)
{
	size_t plen = strlen(path);
	int found = 0;

	for (const char *p = errs; *p;) {
		const char *eol = strchr(p, '\n');
		char *end;
		long line;

		CHECK(eol != NULL, "%s: error text does not end in a newline", name);
		if (!eol)
			break;
		CHECK(strncmp(p, path, plen) == 0 && p[plen] == ':', "%s: line \"%.*s\" lacks FILE",
		      name, (int)(eol - p), p);
		if (strncmp(p, path, plen) == 0 && p[plen] == ':') {
			line = strtol(p + plen + 1, &end, 10);
			CHECK(end > p + plen + 1 && line > 0 && (unsigned long)line <= nlines &&
				      end[0] == ':' && end[1] == ' ',
			      "%s: bad LINE in \"%.*s\"", name, (int)(eol - p), p);
			/* then "SETTING: message" */
			CHECK(memmem(end + 2, (size_t)(eol - end - 2), ": ", 2) != NULL,
			      "%s: no SETTING in \"%.*s\"", name, (int)(eol - p), p);
			if (!found && memmem(p, (size_t)(eol - p), expect, strlen(expect)))
				found = (int)line;
		}
		p = eol + 1;
	}
	return found;
}

static unsigned test_bad_dir(void)
{
	char dir[PATH_MAX + 32], path[PATH_MAX * 2];
	unsigned n;
	char **names;

	snprintf(dir, sizeof(dir), "%s/tests/config/bad", root);
	names = list_conf(dir, &n);
	for (unsigned i = 0; i < n; i++) {
		char expect[256] = "", *errs = NULL, *errs2 = NULL, *text, *nl;
		struct sl_config *cfg;
		unsigned nlines = 0;
		int want_line = 0, line;
		size_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		text = slurp(path, &len);
		CHECK(text && strncmp(text, "# expect: ", 10) == 0,
		      "%s: first line is not \"# expect: ...\"", names[i]);
		if (!text || strncmp(text, "# expect: ", 10) != 0) {
			free(text);
			continue;
		}
		nl = strchr(text, '\n');
		snprintf(expect, sizeof(expect), "%.*s", nl ? (int)(nl - text - 10) : 0, text + 10);
		if (nl && strncmp(nl + 1, "# line: ", 8) == 0)
			want_line = atoi(nl + 9);
		for (size_t k = 0; k < len; k++)
			nlines += text[k] == '\n';
		nlines += len && text[len - 1] != '\n';

		errno = 0;
		cfg = config_load(path, &errs);
		CHECK(cfg == NULL, "%s: loaded", names[i]);
		CHECK(errno == EINVAL, "%s: errno %d", names[i], errno);
		CHECK(errs != NULL, "%s: no error text", names[i]);
		if (errs) {
			CHECK(strstr(errs, expect) != NULL, "%s: want \"%s\" in:\n%s", names[i],
			      expect, errs);
			line = check_error_lines(names[i], path, errs, nlines, expect);
			CHECK(!want_line || line == want_line, "%s: error at line %d, want %d:\n%s",
			      names[i], line, want_line, errs);
		}
		/* the same text from memory gives the same errors */
		CHECK(config_load_string(text, path, &errs2) == NULL, "%s: loaded from string",
		      names[i]);
		CHECK(errs && errs2 && strcmp(errs, errs2) == 0, "%s: string errors differ:\n%s",
		      names[i], errs2 ? errs2 : "(null)");
		free(errs);
		free(errs2);
		free(text);
		config_free(cfg);
	}
	free_list(names);
	return n;
}

static void test_read_errors(void)
{
	char path[] = "/tmp/sluice-test-config-XXXXXX";
	char want[PATH_MAX + 64];
	char *errs = NULL;
	FILE *f;
	int fd;

	errno = 0;
	CHECK(config_load("/nonexistent/sluice.conf", &errs) == NULL && errno == ENOENT,
	      "errno %d", errno);
	CHECK(errs && strcmp(errs, "/nonexistent/sluice.conf:0: file: cannot read: "
				   "No such file or directory\n") == 0,
	      "got %s", errs ? errs : "(null)");
	free(errs);

	errno = 0;
	CHECK(config_load("/", &errs) == NULL && errno == EISDIR, "directory: errno %d", errno);
	free(errs);

	/* libconfig would stop at a NUL and load half a file */
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	if (fd < 0)
		return;
	f = fdopen(fd, "w");
	fputs(minimal, f);
	fputc('\0', f);
	fputs("workers = 0;\n", f);
	fclose(f);
	errno = 0;
	CHECK(config_load(path, &errs) == NULL && errno == EINVAL, "NUL: errno %d", errno);
	snprintf(want, sizeof(want), "%s:3: syntax: NUL byte in file\n", path);
	CHECK(errs && strcmp(errs, want) == 0, "got %s", errs ? errs : "(null)");
	free(errs);
	unlink(path);
}

/*
 * examples/sluice-full.conf, the example with every setting, loads and keeps
 * every group; examples/sluice.conf, what `make install` and the package put
 * in /etc/sluice, loads too. (Neither names a file sluiced reads at start
 * here: TLS files are loaded by tlsctx, not by config_load.)
 */
static void test_examples(void)
{
	char path[PATH_MAX + 32], *errs = NULL;
	struct sl_config *cfg;

	snprintf(path, sizeof(path), "%s/examples/sluice-full.conf", root);
	cfg = config_load(path, &errs);
	CHECK(cfg != NULL, "%s: %s", path, errs ? errs : strerror(errno));
	if (cfg) {
		const struct cfg_pool *p = &cfg->pools[0];
		const struct cfg_listener *tl = &cfg->listeners[1];

		CHECK(cfg->workers == 2 && cfg->user[0] && cfg->group[0] && cfg->log.level == 1 &&
			      cfg->admin.token_file[0] && cfg->npools == 1 && cfg->nlisteners == 2,
		      "sluice-full.conf: top-level settings lost");
		CHECK(cfg->listeners[0].syn_gate.enabled && cfg->listeners[0].syn_gate.source_rate &&
			      tl->tls.enabled && tl->tls.ncerts == 2 && tl->tls.certs[1].ocsp[0] &&
			      tl->tls.ticket_keys[0] && tl->tls.queue_max,
		      "sluice-full.conf: listener groups lost");
		CHECK(p->synthetic.enabled && p->health.enabled && p->tls.enabled &&
			      p->proxy_protocol == CFG_PP_OFF && p->queue.timeout_auto &&
			      p->slow_start_s == 30 && p->starved_after_s == 60,
		      "sluice-full.conf: pool groups lost");
		CHECK(p->nservers == 2 && p->servers[0].agent.enabled && p->servers[0].rate == 300 &&
			      !p->servers[0].rate_auto && p->servers[1].rate_auto &&
			      p->servers[1].rate_min == 10 && p->servers[1].rate_max == 5000,
		      "sluice-full.conf: servers lost");
		config_free(cfg);
	}
	free(errs);
	errs = NULL;

	snprintf(path, sizeof(path), "%s/examples/sluice.conf", root);
	cfg = config_load(path, &errs);
	CHECK(cfg != NULL, "%s: %s", path, errs ? errs : strerror(errno));
	if (cfg) {
		CHECK(strcmp(cfg->user, "sluice") == 0 && cfg->bpf.enabled &&
			      cfg->pools[0].servers[0].rate_auto,
		      "sluice.conf: not the packaged starting point");
		config_free(cfg);
	}
	free(errs);
}

int main(void)
{
	const char *src = getenv("SLUICE_SRC");
	char probe[PATH_MAX + 32];
	unsigned ngood, nbad;

	snprintf(root, sizeof(root), "%s", src && *src ? src : ".");
	snprintf(probe, sizeof(probe), "%s/tests/config/bad", root);
	if (access(probe, R_OK) != 0) {
		fprintf(stderr, "test_config: %s: %s (run from the repo root or set SLUICE_SRC)\n",
			probe, strerror(errno));
		return 1;
	}

	test_parse_addr();
	test_defaults();
	test_auto();
	test_queue_order();
	test_all_errors();
	test_edges();
	test_full();
	test_samples();
	test_examples();
	ngood = test_good_dir();
	nbad = test_bad_dir();
	test_read_errors();

	/* the sample sets are part of what this test claims to cover */
	CHECK(ngood >= 6, "only %u good configs", ngood);
	CHECK(nbad >= 25, "only %u bad configs", nbad);

	printf("test_config: %u good, %u bad configs; %d checks, %d failed\n", ngood, nbad,
	       checks, failures);
	return failures ? 1 : 0;
}
