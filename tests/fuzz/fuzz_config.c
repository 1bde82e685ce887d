// SPDX-License-Identifier: MIT
/*
 * fuzz_config — userspace/config.c (libconfig's parser, then sluice's
 * validation) on arbitrary text, checking what config.h promises:
 *   - a config xor an error text; every error line "NAME:LINE: SETTING: msg";
 *   - a loaded config within its documented bounds: counts under their
 *     CFG_MAX_*, names and texts NUL-terminated, every listener's pool an
 *     index into pools, names unique (config_*_index finds each at its own
 *     index), addresses of the family their length says;
 *   - everything freed (config_free, the error text), so LeakSanitizer
 *     reports any leak as a crash.
 *
 * Host names. A server or listener address may be a host name, which
 * config.c resolves with getaddrinfo(): a fuzzer would send DNS queries,
 * slowly and not hermetically. This program defines its own getaddrinfo and
 * freeaddrinfo, which the link prefers to libc's (and to ASan's interceptor,
 * a weak alias): no lookups, the same answer every time. "localhost" is
 * 127.0.0.1, a name under .invalid does not resolve, any other name gets an
 * address from a hash of it, IPv4 in 10/8 or IPv6 in 2001:db8::/32.
 * LLVMFuzzerInitialize checks that the stand-in is the one called.
 *
 * One leak is not ours: libconfig 1.5 drops the string token that is the
 * lookahead at a syntax error (`x "y"`; see load_text in config.c), built by
 * its lexer with strbuf_append. That allocation site is suppressed, built
 * into this program so a reproducer behaves the same when run by hand; any
 * other leak, including from the settings tree libconfig builds, still fails.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "tests/fuzz/fuzz.h"
#include "userspace/config.h"

#define NAME "fuzz.conf"

static unsigned long stub_calls;

struct stub_ai {
	struct addrinfo ai;
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa;
};

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static const char invalid[] = ".invalid";
	size_t len = node ? strlen(node) : 0;
	uint32_t h = 2166136261u;
	struct stub_ai *x;
	uint16_t port = 0;

	stub_calls++;
	*res = NULL;
	if (!node)
		return EAI_NONAME;
	if (len && node[len - 1] == '.')
		len--;
	if (len >= sizeof(invalid) - 1 &&
	    !strncasecmp(node + len - (sizeof(invalid) - 1), invalid, sizeof(invalid) - 1))
		return EAI_NONAME;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)(node[i] | 0x20)) * 16777619u;
	if (service)
		port = (uint16_t)strtoul(service, NULL, 10);

	x = calloc(1, sizeof(*x));
	if (!x)
		return EAI_MEMORY;
	x->ai.ai_socktype = SOCK_STREAM;
	x->ai.ai_protocol = IPPROTO_TCP;
	x->ai.ai_addr = (struct sockaddr *)&x->sa;
	if (len == 9 && !strncasecmp(node, "localhost", 9)) {
		x->sa.in.sin_family = AF_INET;
		x->sa.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		x->sa.in.sin_port = htons(port);
	} else if (h & 1) {
		x->sa.in6.sin6_family = AF_INET6;
		x->sa.in6.sin6_addr.s6_addr[0] = 0x20;
		x->sa.in6.sin6_addr.s6_addr[1] = 0x01;
		x->sa.in6.sin6_addr.s6_addr[2] = 0x0d;
		x->sa.in6.sin6_addr.s6_addr[3] = 0xb8;
		memcpy(&x->sa.in6.sin6_addr.s6_addr[12], &h, 4);
		x->sa.in6.sin6_port = htons(port);
	} else {
		x->sa.in.sin_family = AF_INET;
		x->sa.in.sin_addr.s_addr = htonl(0x0a000000u | (h >> 8));
		x->sa.in.sin_port = htons(port);
	}
	x->ai.ai_family = x->sa.in.sin_family;
	x->ai.ai_addrlen = x->ai.ai_family == AF_INET ? sizeof(x->sa.in) : sizeof(x->sa.in6);
	*res = &x->ai;
	return 0;
}

/* Only ever given what the stand-in above returned. */
void freeaddrinfo(struct addrinfo *res)
{
	free(res);
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct cfg_addr a;

	if (config_parse_addr("fuzz-probe.example:80", &a) || stub_calls != 1) {
		fprintf(stderr, "fuzz_config: the getaddrinfo stand-in is not the one called;"
				" config host names would be looked up in DNS\n");
		abort();
	}
	return 0;
}

static void check_str(const char *s, size_t size)
{
	FUZZ_CHECK(strnlen(s, size) < size);
}

static void check_addr(const struct cfg_addr *a)
{
	check_str(a->text, sizeof(a->text));
	if (a->ss.ss_family == AF_INET)
		FUZZ_CHECK(a->len == sizeof(struct sockaddr_in));
	else
		FUZZ_CHECK(a->ss.ss_family == AF_INET6 && a->len == sizeof(struct sockaddr_in6));
	FUZZ_CHECK(a->text[0]);
}

static void check_config(const struct sl_config *c)
{
	FUZZ_CHECK(c->path && !strcmp(c->path, NAME));
	FUZZ_CHECK(c->workers >= 1 && c->workers <= CFG_MAX_WORKERS);
	FUZZ_CHECK(c->nlisteners >= 1 && c->nlisteners <= CFG_MAX_LISTENERS && c->listeners);
	FUZZ_CHECK(c->npools >= 1 && c->npools <= CFG_MAX_POOLS && c->pools);
	FUZZ_CHECK(c->buffers.count && !(c->buffers.count & (c->buffers.count - 1)));
	check_str(c->log.access, sizeof(c->log.access));
	check_str(c->bpf.pin_path, sizeof(c->bpf.pin_path));
	check_str(c->bpf.cgroup, sizeof(c->bpf.cgroup));
	if (c->admin.enabled)
		check_addr(&c->admin.addr);

	for (unsigned i = 0; i < c->npools; i++) {
		const struct cfg_pool *p = &c->pools[i];

		check_str(p->name, sizeof(p->name));
		FUZZ_CHECK(config_pool_index(c, p->name) == (int)i);
		FUZZ_CHECK(p->nservers >= 1 && p->nservers <= CFG_MAX_SERVERS && p->servers);
		FUZZ_CHECK(p->retry_after.min_s <= p->retry_after.max_s);
		FUZZ_CHECK(p->retry_after.jitter_permille <= 1000);
		check_str(p->health.http_path, sizeof(p->health.http_path));
		check_str(p->synthetic.send, sizeof(p->synthetic.send));
		check_str(p->synthetic.expect, sizeof(p->synthetic.expect));
		for (unsigned j = 0; j < p->nservers; j++) {
			check_str(p->servers[j].name, sizeof(p->servers[j].name));
			check_addr(&p->servers[j].addr);
		}
	}
	for (unsigned i = 0; i < c->nlisteners; i++) {
		const struct cfg_listener *l = &c->listeners[i];

		check_str(l->name, sizeof(l->name));
		FUZZ_CHECK(config_listener_index(c, l->name) == (int)i);
		FUZZ_CHECK(l->pool < c->npools);
		check_addr(&l->addr);
		FUZZ_CHECK(l->syn_gate.ninterfaces <= CFG_MAX_IFACES);
		for (unsigned j = 0; j < l->syn_gate.ninterfaces; j++)
			check_str(l->syn_gate.interfaces[j], CFG_IFNAME_MAX);
	}
}

/* Every line "NAME:LINE: SETTING: message", LINE from 1 to the last line. */
static void check_errors(const char *errors, const char *text)
{
	size_t lines = 1;
	const char *p = errors;

	for (const char *t = text; *t; t++)
		lines += *t == '\n';
	FUZZ_CHECK(*p);
	while (*p) {
		const char *nl = strchr(p, '\n');
		unsigned long line;
		char *end;

		FUZZ_CHECK(nl);
		FUZZ_CHECK(!strncmp(p, NAME ":", sizeof(NAME)));
		p += sizeof(NAME);
		FUZZ_CHECK(*p >= '0' && *p <= '9');
		line = strtoul(p, &end, 10);
		FUZZ_CHECK(line >= 1 && line <= lines);
		FUZZ_CHECK(end[0] == ':' && end[1] == ' ');
		p = end + 2;
		/* the setting: a path, no spaces */
		while (p < nl && *p != ' ')
			p++;
		FUZZ_CHECK(p < nl && p[-1] == ':');
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_config *cfg;
	char *text, *errors = (char *)1;

	/* config_load refuses a NUL byte; from a string it would end the text */
	if (memchr(data, 0, size))
		return 0;
	text = malloc(size + 1);
	FUZZ_CHECK(text);
	memcpy(text, data, size);
	text[size] = 0;

	errno = 0;
	cfg = config_load_string(text, NAME, &errors);
	if (cfg) {
		FUZZ_CHECK(!errors);
		check_config(cfg);
	} else {
		FUZZ_CHECK(errno == EINVAL || errno == ENOMEM);
		FUZZ_CHECK(errors || errno == ENOMEM);
		if (errors)
			check_errors(errors, text);
	}
	config_free(cfg);
	free(errors);
	free(text);
	return 0;
}
