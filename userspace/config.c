// SPDX-License-Identifier: MIT
/*
 * config — libconfig file → validated struct sl_config.
 *
 * The parser is a set of key tables, one per group. Each entry names a key,
 * the handler that reads it, where the value goes (an offset from the struct
 * the group fills) and its bounds. A group is parsed in table order, then its
 * members are checked for names the table does not know. Table order matters
 * at the top level: pools come before listeners so a listener's `pool` can be
 * resolved while the listener is parsed.
 *
 * Adding a key is one table line; a check that a range cannot express goes in
 * the entry's `check` callback, a cross-key check in the group's post-parse
 * code (see parse_listeners, parse_pools).
 *
 * Errors are collected, not fatal: the whole file is checked so an operator
 * sees every problem in one `sluiced -t`. They are sorted by line at the end.
 * Only a syntax error stops early, since nothing after it can be trusted:
 * libconfig's own, or one of the two things libconfig 1.5 would let through
 * that we treat as syntax (see scan_source).
 */
#include "userspace/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error collection ---------------------------------------------------- */

struct cfg_error {
	int line;
	unsigned seq; /* keeps errors on one line in the order found */
	char *text;
};

struct pctx {
	const char *name; /* the file as the caller named it, for messages */
	struct sl_config *cfg;
	struct cfg_error *errs;
	unsigned nerrs, cap;
	int oom;
	/* setting path of the value being parsed, e.g. "pools[0].servers[1]" */
	char path[256];
	size_t plen;
};

static void add_error(struct pctx *pc, const char *file, int line, const char *setting,
		      const char *fmt, va_list ap)
{
	struct cfg_error *e;
	char msg[512];
	char *text;

	if (pc->nerrs == pc->cap) {
		unsigned cap = pc->cap ? pc->cap * 2 : 8;

		e = realloc(pc->errs, cap * sizeof(*e));
		if (!e) {
			pc->oom = 1;
			return;
		}
		pc->errs = e;
		pc->cap = cap;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (asprintf(&text, "%s:%d: %s: %s\n", file, line, setting, msg) < 0) {
		pc->oom = 1;
		return;
	}
	e = &pc->errs[pc->nerrs];
	e->line = line;
	e->seq = pc->nerrs;
	e->text = text;
	pc->nerrs++;
}

static void perr_at(struct pctx *pc, const char *file, int line, const char *setting,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void perr_at(struct pctx *pc, const char *file, int line, const char *setting,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_error(pc, file, line, setting, fmt, ap);
	va_end(ap);
}

/* Line of S; a setting libconfig gave no line takes its nearest parent's. */
static int setting_line(const config_setting_t *s)
{
	for (; s; s = config_setting_parent(s)) {
		if (config_setting_source_line(s))
			return config_setting_source_line(s);
	}
	return 1;
}

/* Report an error about S, whose path is the current one. */
static void perr(struct pctx *pc, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void perr(struct pctx *pc, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_error(pc, pc->name, setting_line(s), pc->path, fmt, ap);
	va_end(ap);
}

static int cmp_error(const void *a, const void *b)
{
	const struct cfg_error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Join the collected errors, sorted by line, into one malloc'd text. */
static char *join_errors(struct pctx *pc)
{
	size_t len = 1, off = 0;
	char *out;

	qsort(pc->errs, pc->nerrs, sizeof(*pc->errs), cmp_error);
	for (unsigned i = 0; i < pc->nerrs; i++)
		len += strlen(pc->errs[i].text);
	out = malloc(len);
	if (!out)
		return NULL;
	for (unsigned i = 0; i < pc->nerrs; i++) {
		size_t n = strlen(pc->errs[i].text);

		memcpy(out + off, pc->errs[i].text, n);
		off += n;
	}
	out[off] = '\0';
	return out;
}

static void free_errors(struct pctx *pc)
{
	for (unsigned i = 0; i < pc->nerrs; i++)
		free(pc->errs[i].text);
	free(pc->errs);
	pc->errs = NULL;
	pc->nerrs = pc->cap = 0;
}

/* ---- setting path -------------------------------------------------------- */

static size_t path_push(struct pctx *pc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append to the path; returns the length to pop back to. */
static size_t path_push(struct pctx *pc, const char *fmt, ...)
{
	size_t old = pc->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(pc->path + old, sizeof(pc->path) - old, fmt, ap);
	va_end(ap);
	if (n > 0)
		pc->plen += (size_t)n;
	/* a path too deep to print is cut, never overrun */
	if (pc->plen >= sizeof(pc->path))
		pc->plen = sizeof(pc->path) - 1;
	return old;
}

static size_t path_push_key(struct pctx *pc, const char *key)
{
	return path_push(pc, "%s%s", pc->plen ? "." : "", key);
}

static size_t path_push_index(struct pctx *pc, unsigned i)
{
	return path_push(pc, "[%u]", i);
}

static void path_pop(struct pctx *pc, size_t old)
{
	pc->plen = old;
	pc->path[old] = '\0';
}

/* ---- key tables ---------------------------------------------------------- */

struct cfg_key;
typedef void key_fn(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		    void *base);

_Static_assert(sizeof(enum cfg_mode) == sizeof(int) && sizeof(enum cfg_balance) == sizeof(int) &&
		       sizeof(enum cfg_proxy_protocol) == sizeof(int) &&
		       sizeof(enum cfg_queue_order) == sizeof(int),
	       "parse_enum stores an int");

/* one string value of an enum-like key */
struct cfg_enum {
	const char *text;
	int value;
};

struct cfg_key {
	const char *name;
	key_fn *parse;
	size_t off;     /* where the value goes, from the struct the group fills */
	int64_t min, max;
	const void *arg; /* sub-table, enum table, ... (per handler) */
	const char *(*check)(int64_t v); /* extra integer check: NULL or why not */
	unsigned flags;
};

// clang-format off
/* KEY_NAME's field is a char[CFG_NAME_MAX]; KEY_ENUM's an enum, int-sized */
#define KF_REQUIRED	0x1
#define KF_WILDCARD_OK	0x2 /* address may be 0.0.0.0 / [::] */
#define KF_EMPTY_OK	0x4 /* address may be "" (feature off; addr.len = 0) */

#define KEY_U32(key, type, field, lo, hi) \
	{ .name = key, .parse = parse_u32, .off = offsetof(type, field), .min = lo, .max = hi }
#define KEY_U32_CHECK(key, type, field, lo, hi, fn) \
	{ .name = key, .parse = parse_u32, .off = offsetof(type, field), .min = lo, .max = hi, \
	  .check = fn }
#define KEY_NAME(key, type, field, fl) \
	{ .name = key, .parse = parse_name, .off = offsetof(type, field), .flags = fl }
#define KEY_ADDR(key, type, field, fl) \
	{ .name = key, .parse = parse_addr_key, .off = offsetof(type, field), .flags = fl }
#define KEY_ENUM(key, type, field, table, fl) \
	{ .name = key, .parse = parse_enum, .off = offsetof(type, field), .arg = table, \
	  .flags = fl }
#define KEY_PERMILLE(key, type, field) \
	{ .name = key, .parse = parse_permille, .off = offsetof(type, field) }
#define KEY_BOOL(key, type, field) \
	{ .name = key, .parse = parse_bool, .off = offsetof(type, field) }
#define KEY_GROUP(key, table) { .name = key, .parse = parse_subgroup, .arg = table }
#define KEY_CUSTOM(key, fn, fl) { .name = key, .parse = fn, .flags = fl }
#define KEY_END { .name = NULL }
// clang-format on

/*
 * VALUE quoted for an error message: an error is one line, so a value with a
 * newline (or any control byte) must not break it. Long values are cut.
 */
static const char *quote(char *buf, size_t size, const char *value)
{
	size_t n = 0;

	buf[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (n + 8 >= size) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		if (*p < 0x20 || *p == 0x7f)
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", *p);
		else if (*p == '"' || *p == '\\')
			n += (size_t)snprintf(buf + n, size - n, "\\%c", *p);
		else
			buf[n++] = (char)*p;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

static const char *type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group { ... }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array [ ... ]";
	case CONFIG_TYPE_LIST:
		return "a list ( ... )";
	default:
		return "an unknown type";
	}
}

static int expect_type(struct pctx *pc, const config_setting_t *s, int type, const char *what)
{
	int t = config_setting_type(s);

	if (t == type || (type == CONFIG_TYPE_INT && t == CONFIG_TYPE_INT64))
		return 1;
	perr(pc, s, "expected %s, got %s", what, type_name(s));
	return 0;
}

static void parse_group(struct pctx *pc, const config_setting_t *g, const struct cfg_key *keys,
			void *base);

static void parse_subgroup(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	if (expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		parse_group(pc, s, k->arg, base);
}

static int get_int(struct pctx *pc, const config_setting_t *s, int64_t min, int64_t max,
		   int64_t *v)
{
	if (!expect_type(pc, s, CONFIG_TYPE_INT, "an integer"))
		return 0;
	*v = config_setting_get_int64(s);
	if (*v < min || *v > max) {
		perr(pc, s, "value %lld out of range (%lld..%lld)", (long long)*v, (long long)min,
		     (long long)max);
		return 0;
	}
	return 1;
}

static void parse_u32(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		      void *base)
{
	const char *why;
	int64_t v;

	if (!get_int(pc, s, k->min, k->max, &v))
		return;
	if (k->check) {
		why = k->check(v);
		if (why) {
			perr(pc, s, "value %lld %s", (long long)v, why);
			return;
		}
	}
	*(uint32_t *)((char *)base + k->off) = (uint32_t)v;
}

static const char *get_string(struct pctx *pc, const config_setting_t *s)
{
	if (!expect_type(pc, s, CONFIG_TYPE_STRING, "a string"))
		return NULL;
	return config_setting_get_string(s);
}

/* A fraction 0.0..1.0 (a float, or the integers 0 and 1), stored in 1/1000. */
static void parse_permille(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	double v;

	if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
		v = config_setting_get_float(s);
	} else if (config_setting_type(s) == CONFIG_TYPE_INT ||
		   config_setting_type(s) == CONFIG_TYPE_INT64) {
		v = (double)config_setting_get_int64(s);
	} else {
		perr(pc, s, "expected a number from 0.0 to 1.0, got %s", type_name(s));
		return;
	}
	if (!(v >= 0.0 && v <= 1.0)) {
		perr(pc, s, "value %g out of range (0.0..1.0)", v);
		return;
	}
	*(uint32_t *)((char *)base + k->off) = (uint32_t)(v * 1000.0 + 0.5);
}

/* An HTTP request path for health checks: "/" and visible ASCII, no spaces. */
static void parse_http_path(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			    void *base)
{
	const char *v = get_string(pc, s);
	char q[96];
	size_t len;

	if (!v)
		return;
	len = strlen(v);
	if (len == 0 || len >= CFG_PATH_MAX || v[0] != '/') {
		perr(pc, s, "http_path %s must start with / (at most %d characters)",
		     quote(q, sizeof(q), v), CFG_PATH_MAX - 1);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f) {
			perr(pc, s, "http_path %s: spaces and control characters are not allowed",
			     quote(q, sizeof(q), v));
			return;
		}
	}
	strcpy((char *)base + k->off, v);
}

static void parse_bool(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		       void *base)
{
	if (expect_type(pc, s, CONFIG_TYPE_BOOL, "true or false"))
		*(int *)((char *)base + k->off) = config_setting_get_bool(s);
}

/*
 * A file system path for sluice's own state: plain characters only, no "..",
 * so a config cannot point it somewhere surprising. ABSOLUTE: must start
 * with '/'; otherwise it may also be a relative name.
 */
static int check_path(struct pctx *pc, const config_setting_t *s, const char *v, int absolute)
{
	size_t len = strlen(v);
	char q[96];

	if (len == 0 || len >= CFG_PATH_MAX) {
		perr(pc, s, "path must be 1..%d characters", CFG_PATH_MAX - 1);
		return 0;
	}
	if (absolute && v[0] != '/') {
		perr(pc, s, "%s is not an absolute path", quote(q, sizeof(q), v));
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-' || c == '/')
			continue;
		perr(pc, s, "invalid character in path %s (allowed: A-Z a-z 0-9 _ . - /)",
		     quote(q, sizeof(q), v));
		return 0;
	}
	if (strstr(v, "..")) {
		perr(pc, s, "path %s must not contain \"..\"", quote(q, sizeof(q), v));
		return 0;
	}
	return 1;
}

static void parse_pin_path(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	struct sl_config *cfg = base;
	const char *v = get_string(pc, s);

	if (v && check_path(pc, s, v, 1))
		strcpy(cfg->bpf.pin_path, v);
}

static void parse_cgroup(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			 void *base)
{
	struct sl_config *cfg = base;
	const char *v = get_string(pc, s);

	if (v && check_path(pc, s, v, 0))
		strcpy(cfg->bpf.cgroup, v);
}

/* An absolute file path into the char[CFG_PATH_MAX] at the key's offset. */
static void parse_file(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		       void *base)
{
	const char *v = get_string(pc, s);

	if (v && check_path(pc, s, v, 1))
		strcpy((char *)base + k->off, v);
}

/* Names end up in metric labels and log lines: keep them plain. */
static int check_name(struct pctx *pc, const config_setting_t *s, const char *v)
{
	size_t len = strlen(v);
	char q[96];

	if (len == 0) {
		perr(pc, s, "name must not be empty");
		return 0;
	}
	if (len >= CFG_NAME_MAX) {
		perr(pc, s, "name too long (%zu characters, max %d)", len, CFG_NAME_MAX - 1);
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-')
			continue;
		perr(pc, s, "invalid character in name %s (allowed: A-Z a-z 0-9 _ . -)",
		     quote(q, sizeof(q), v));
		return 0;
	}
	return 1;
}

static void parse_name(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		       void *base)
{
	const char *v = get_string(pc, s);

	if (v && check_name(pc, s, v))
		strcpy((char *)base + k->off, v);
}

static void parse_enum(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		       void *base)
{
	const struct cfg_enum *e;
	const char *v = get_string(pc, s);
	char choices[256], q[96];
	size_t off = 0;

	if (!v)
		return;
	for (e = k->arg; e->text; e++) {
		if (strcmp(v, e->text) == 0) {
			*(int *)((char *)base + k->off) = e->value;
			return;
		}
	}
	choices[0] = '\0';
	for (e = k->arg; e->text && off < sizeof(choices); e++) {
		int n = snprintf(choices + off, sizeof(choices) - off, "%s\"%s\"",
				 off ? ", " : "", e->text);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	perr(pc, s, "unsupported %s %s (supported: %s)", k->name, quote(q, sizeof(q), v), choices);
}

static int parse_addr(const char *text, struct cfg_addr *addr, const char **why);

static int addr_is_wildcard(const struct cfg_addr *a)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;

	if (a->ss.ss_family == AF_INET)
		return in->sin_addr.s_addr == htonl(INADDR_ANY);
	if (a->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
	return 0;
}

/* Is TEXT a literal IPv4 or IPv6 address (no name to look up)? */
static int addr_is_numeric(const char *text)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, text, buf) == 1 || inet_pton(AF_INET6, text, buf) == 1;
}

static void parse_addr_key(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	struct cfg_addr *dst = (struct cfg_addr *)((char *)base + k->off);
	const char *v = get_string(pc, s);
	const char *why = NULL;
	struct cfg_addr a;
	char q[96];
	int err;

	if (!v)
		return;
	quote(q, sizeof(q), v);
	if (!*v && (k->flags & KF_EMPTY_OK)) {
		memset(dst, 0, sizeof(*dst));
		return;
	}
	err = parse_addr(v, &a, &why);
	if (err == -ENOENT) {
		perr(pc, s, "cannot resolve %s%s%s", q, why ? ": " : "", why ? why : "");
		return;
	}
	if (err) {
		perr(pc, s, "invalid address %s (%s)", q, why ? why : strerror(-err));
		return;
	}
	if (!(k->flags & KF_WILDCARD_OK) && addr_is_wildcard(&a)) {
		perr(pc, s, "invalid address %s (a wildcard address is not allowed here)", q);
		return;
	}
	*dst = a;
}

/*
 * Parse group G with KEYS into BASE: each known key present is handed to its
 * parser, missing required keys and unknown keys are reported. Defaults are
 * whatever BASE held before.
 */
static void parse_group(struct pctx *pc, const config_setting_t *g, const struct cfg_key *keys,
			void *base)
{
	const struct cfg_key *k;
	config_setting_t *s;
	size_t old;
	int n;

	for (k = keys; k->name; k++) {
		s = config_setting_get_member(g, k->name);
		old = path_push_key(pc, k->name);
		if (s)
			k->parse(pc, s, k, base);
		else if (k->flags & KF_REQUIRED)
			perr(pc, g, "missing required setting");
		path_pop(pc, old);
	}
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const char *name;

		s = config_setting_get_elem(g, (unsigned)i);
		name = config_setting_name(s);
		for (k = keys; k->name; k++) {
			if (strcmp(k->name, name) == 0)
				break;
		}
		if (k->name)
			continue;
		old = path_push_key(pc, name);
		perr(pc, s, "unknown setting");
		path_pop(pc, old);
	}
}

/* ---- lists of groups ----------------------------------------------------- */

/* a string member that must differ between the elements of one list */
struct cfg_unique {
	const char *key;  /* the member */
	const char *what; /* "listener name", for the message */
	size_t off;       /* its char[] in the element; "" when unset or invalid */
};

struct cfg_list {
	const char *what;      /* "listeners" */
	const char *empty_msg; /* error for an empty list */
	unsigned max;
	size_t size; /* of one element */
	size_t line_off; /* the element's int line */
	const struct cfg_key *keys;
	void (*defaults)(void *elem);
	/* after the element's keys: derived values (EL is its group) */
	void (*done)(void *elem, const config_setting_t *el);
	struct cfg_unique unique[2];
};

/* Line of member KEY of group G, or of G when KEY is absent. */
static int member_line(const config_setting_t *g, const char *key)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	return setting_line(s ? s : g);
}

/*
 * Report each element of LIST whose member U->key repeats an earlier one.
 * ELEMS are the parsed elements, IDX their positions in LIST (an element
 * that was not a group has none). Only a member set explicitly is reported:
 * a value derived from another member (a server's default name) clashes
 * through that member already.
 */
static void check_unique(struct pctx *pc, const config_setting_t *list,
			 const struct cfg_list *spec, const struct cfg_unique *u, const char *elems,
			 const unsigned *idx, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const char *vi = elems + i * spec->size + u->off;
		const config_setting_t *ei = config_setting_get_elem(list, idx[i]);
		const config_setting_t *si = config_setting_get_member(ei, u->key);

		if (!*vi || !si)
			continue;
		for (unsigned j = 0; j < i; j++) {
			const char *vj = elems + j * spec->size + u->off;
			const config_setting_t *ej = config_setting_get_elem(list, idx[j]);
			size_t old;

			if (strcmp(vi, vj) != 0)
				continue;
			old = path_push_index(pc, idx[i]);
			path_push_key(pc, u->key);
			perr(pc, si, "duplicate %s \"%s\" (first at line %d)", u->what, vi,
			     member_line(ej, u->key));
			path_pop(pc, old);
			break;
		}
	}
}

/*
 * Parse list S of groups as SPEC says. Returns the calloc'd elements (also
 * when some had errors: the caller owns them) and their number in *COUNT;
 * NULL when there are none.
 */
static void *parse_list(struct pctx *pc, const config_setting_t *s, const struct cfg_list *spec,
			unsigned *count)
{
	unsigned *idx = NULL; /* list position of each parsed element */
	char *elems = NULL;
	unsigned n = 0;
	int len;

	*count = 0;
	if (!expect_type(pc, s, CONFIG_TYPE_LIST, "a list ( ... )"))
		goto out;
	len = config_setting_length(s);
	if (len == 0) {
		perr(pc, s, "%s", spec->empty_msg);
		goto out;
	}
	if ((unsigned)len > spec->max) {
		perr(pc, s, "too many %s (%d, max %u)", spec->what, len, spec->max);
		goto out;
	}
	elems = calloc((size_t)len, spec->size);
	idx = calloc((size_t)len, sizeof(*idx));
	if (!elems || !idx) {
		pc->oom = 1;
		goto out;
	}
	for (int i = 0; i < len; i++) {
		const config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
		char *e = elems + n * spec->size;
		size_t old = path_push_index(pc, (unsigned)i);

		if (expect_type(pc, el, CONFIG_TYPE_GROUP, "a group { ... }")) {
			if (spec->defaults)
				spec->defaults(e);
			*(int *)(e + spec->line_off) = setting_line(el);
			parse_group(pc, el, spec->keys, e);
			if (spec->done)
				spec->done(e, el);
			idx[n++] = (unsigned)i;
		}
		path_pop(pc, old);
	}
	for (size_t u = 0; u < ARRAY_SIZE(spec->unique) && spec->unique[u].key; u++)
		check_unique(pc, s, spec, &spec->unique[u], elems, idx, n);
	*count = n;
out:
	free(idx);
	if (!n) {
		free(elems);
		elems = NULL;
	}
	return elems;
}

/* ---- servers ------------------------------------------------------------- */

static const struct cfg_key agent_keys[] = {
	KEY_U32("port", struct cfg_server, agent.port, 1, 65535),
	KEY_U32("interval_ms", struct cfg_server, agent.interval_ms, 100, 3600000),
	KEY_END
};

static void parse_agent(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			void *base)
{
	struct cfg_server *sv = base;

	if (!expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		return;
	sv->agent.enabled = 1;
	sv->agent.interval_ms = 2000;
	parse_group(pc, s, agent_keys, sv);
	if (!config_setting_get_member(s, "port"))
		perr(pc, s, "agent needs a port");
}

/*
 * An integer in [K->min, K->max], or the string "auto": *(int *)(base +
 * K->arg's offset) says which. K->arg points at the offset of that flag.
 */
static void parse_u32_or_auto(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			      void *base)
{
	const size_t *flag_off = k->arg;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);

		if (strcmp(v, "auto") != 0) {
			char q[96];

			perr(pc, s, "expected an integer or \"auto\", got %s",
			     quote(q, sizeof(q), v));
			return;
		}
		*(int *)((char *)base + *flag_off) = 1;
		return;
	}
	*(int *)((char *)base + *flag_off) = 0;
	parse_u32(pc, s, k, base);
}

static const size_t rate_auto_off = offsetof(struct cfg_server, rate_auto);

static const struct cfg_key server_keys[] = {
	KEY_ADDR("address", struct cfg_server, addr, KF_REQUIRED),
	KEY_CUSTOM("agent", parse_agent, 0),
	KEY_NAME("name", struct cfg_server, name, 0),
	KEY_U32("max_conns", struct cfg_server, max_conns, 0, 10000000),
	{ .name = "rate", .parse = parse_u32_or_auto, .off = offsetof(struct cfg_server, rate),
	  .min = 0, .max = 10000000, .arg = &rate_auto_off },
	KEY_U32("rate_min", struct cfg_server, rate_min, 1, 10000000),
	KEY_U32("rate_max", struct cfg_server, rate_max, 1, 10000000),
	KEY_U32("burst", struct cfg_server, burst, 1, 10000000),
	KEY_END
};

/* An auto rate starts here (a restart resumes from what was learned). */
#define RATE_AUTO_START 50

static void server_done(void *elem, const config_setting_t *el)
{
	struct cfg_server *sv = elem;
	size_t len;

	sv->burst_set = config_setting_get_member(el, "burst") != NULL;
	/* no rate given: learned (auto_defaults() takes it back where nothing can enforce it) */
	sv->rate_default = !config_setting_get_member(el, "rate");
	if (sv->rate_default)
		sv->rate_auto = 1;
	if (sv->rate_auto) {
		if (!config_setting_get_member(el, "rate_min"))
			sv->rate_min = 10;
		if (!config_setting_get_member(el, "rate_max"))
			sv->rate_max = 1000000;
		sv->rate = RATE_AUTO_START < sv->rate_min ? sv->rate_min
			 : RATE_AUTO_START > sv->rate_max ? sv->rate_max
							  : RATE_AUTO_START;
	}
	if (!sv->burst_set)
		sv->burst = sv->rate / 10 ? sv->rate / 10 : 1;

	if (sv->name[0] || config_setting_get_member(el, "name"))
		return;
	/* fits: the longest address text is "[" + 45 + "]:65535" */
	len = strnlen(sv->addr.text, sizeof(sv->name) - 1);
	memcpy(sv->name, sv->addr.text, len);
	sv->name[len] = '\0';
}

/* Two entries for one backend would double its share and its limits. */
static const struct cfg_list server_list = {
	.what = "servers",
	.empty_msg = "pool has no servers",
	.max = CFG_MAX_SERVERS,
	.size = sizeof(struct cfg_server),
	.line_off = offsetof(struct cfg_server, line),
	.keys = server_keys,
	.done = server_done,
	.unique = {
		{ "address", "server address", offsetof(struct cfg_server, addr.text) },
		{ "name", "server name", offsetof(struct cfg_server, name) },
	},
};

static void parse_servers(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			  void *base)
{
	struct cfg_pool *p = base;

	p->servers = parse_list(pc, s, &server_list, &p->nservers);
}

/* ---- TLS to backends ------------------------------------------------------ */

/* A DNS name for SNI: letters, digits, '-' and '.', labels of 1..63. */
static void parse_sni(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		      void *base)
{
	const char *v = get_string(pc, s);
	size_t len, label = 0;
	char q[96];
	int bad;

	if (!v)
		return;
	len = strlen(v);
	bad = len == 0 || len >= CFG_HOST_MAX || v[0] == '.' || v[len - 1] == '.';
	for (size_t i = 0; !bad && i < len; i++) {
		char c = v[i];

		if (c == '.') {
			bad = label == 0;
			label = 0;
			continue;
		}
		bad = !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-') || ++label > 63;
	}
	if (bad) {
		perr(pc, s, "bad server name %s", quote(q, sizeof(q), v));
		return;
	}
	strcpy((char *)base + k->off, v);
}

static const struct cfg_key backend_tls_keys[] = {
	KEY_BOOL("verify", struct cfg_backend_tls, verify),
	{ .name = "ca_file", .parse = parse_file, .off = offsetof(struct cfg_backend_tls, ca_file) },
	{ .name = "sni", .parse = parse_sni, .off = offsetof(struct cfg_backend_tls, sni) },
	KEY_END
};

static void parse_backend_tls(struct pctx *pc, const config_setting_t *s,
			      const struct cfg_key *k, void *base)
{
	struct cfg_backend_tls *t = &((struct cfg_pool *)base)->tls;

	if (!expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		return;
	t->enabled = 1;
	t->verify = 1;
	parse_group(pc, s, backend_tls_keys, t);
}

/* ---- pools --------------------------------------------------------------- */

static const struct cfg_enum balance_names[] = {
	{ "least_conn", CFG_BAL_LEAST_CONN },
	{ "round_robin", CFG_BAL_ROUND_ROBIN },
	{ NULL, 0 },
};

static const struct cfg_enum proxy_protocol_names[] = {
	{ "off", CFG_PP_OFF },
	{ "v1", CFG_PP_V1 },
	{ "v2", CFG_PP_V2 },
	{ NULL, 0 },
};

static const size_t timeout_auto_off = offsetof(struct cfg_pool, queue.timeout_auto);

static const struct cfg_enum queue_order_names[] = {
	{ "fifo", CFG_QO_FIFO },
	{ "adaptive", CFG_QO_ADAPTIVE },
	{ NULL, 0 },
};

static const struct cfg_key queue_keys[] = {
	KEY_U32("max", struct cfg_pool, queue.max, 0, 10000000),
	{ .name = "timeout_ms", .parse = parse_u32_or_auto,
	  .off = offsetof(struct cfg_pool, queue.timeout_ms), .min = 1, .max = 3600000,
	  .arg = &timeout_auto_off },
	KEY_ENUM("order", struct cfg_pool, queue.order, queue_order_names, 0),
	KEY_END
};

static const struct cfg_key retry_after_keys[] = {
	KEY_U32("min_s", struct cfg_pool, retry_after.min_s, 0, 86400),
	KEY_U32("max_s", struct cfg_pool, retry_after.max_s, 1, 86400),
	KEY_PERMILLE("jitter", struct cfg_pool, retry_after.jitter_permille),
	KEY_END
};

static const struct cfg_key health_keys[] = {
	KEY_U32("interval_ms", struct cfg_pool, health.interval_ms, 100, 3600000),
	KEY_U32("timeout_ms", struct cfg_pool, health.timeout_ms, 10, 600000),
	KEY_U32("rise", struct cfg_pool, health.rise, 1, 100),
	KEY_U32("fall", struct cfg_pool, health.fall, 1, 100),
	{ .name = "http_path", .parse = parse_http_path, .off = offsetof(struct cfg_pool, health.http_path) },
	KEY_END
};

/* A payload string: printable bytes, CR, LF and TAB (libconfig's "\r\n\t" escapes). */
static void parse_payload(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			  void *base)
{
	const char *v = get_string(pc, s);
	char *out = (char *)base + k->off, q[96];
	size_t n = 0;

	if (!v)
		return;
	for (const char *p = v; *p; p++) {
		char c = *p;

		if (n + 1 >= CFG_PATH_MAX) {
			perr(pc, s, "longer than %d bytes", CFG_PATH_MAX - 1);
			return;
		}
		if (((unsigned char)c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f) {
			perr(pc, s, "%s: control bytes other than CR, LF, TAB", quote(q, sizeof(q), v));
			return;
		}
		out[n++] = c;
	}
	out[n] = 0;
	if (!n)
		perr(pc, s, "must not be empty");
}

static const struct cfg_key synthetic_keys[] = {
	KEY_U32("interval_ms", struct cfg_pool, synthetic.interval_ms, 100, 3600000),
	KEY_U32("timeout_ms", struct cfg_pool, synthetic.timeout_ms, 10, 600000),
	{ .name = "send", .parse = parse_payload, .off = offsetof(struct cfg_pool, synthetic.send),
	  .flags = KF_REQUIRED },
	{ .name = "expect", .parse = parse_payload,
	  .off = offsetof(struct cfg_pool, synthetic.expect), .flags = KF_REQUIRED },
	KEY_END
};

static void parse_synthetic(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			    void *base)
{
	struct cfg_pool *p = base;

	if (expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }")) {
		p->synthetic.enabled = 1;
		parse_group(pc, s, synthetic_keys, p);
	}
}

static void parse_health(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			 void *base)
{
	struct cfg_pool *p = base;

	if (expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }")) {
		p->health.enabled = 1;
		parse_group(pc, s, health_keys, p);
	}
}

/*
 * Each string of array S (1..MAX of them; "give 1..MAX WHAT" otherwise; a
 * non-array: "expected EXAMPLE"), handed to ELEM with its path in messages:
 * ELEM returns 0 to go on with the next, -1 to stop.
 */
typedef int elem_fn(struct pctx *pc, const config_setting_t *e, const char *v, void *base);

static void parse_string_array(struct pctx *pc, const config_setting_t *s, const char *example,
			       unsigned max, const char *what, elem_fn *elem, void *base)
{
	int n;

	if (!expect_type(pc, s, CONFIG_TYPE_ARRAY, example))
		return;
	n = config_setting_length(s);
	if (n < 1 || (unsigned)n > max) {
		perr(pc, s, "give 1..%u %s", max, what);
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		size_t old = path_push_index(pc, (unsigned)i);
		const char *v = get_string(pc, e);
		int stop = !v || elem(pc, e, v, base);

		path_pop(pc, old);
		if (stop)
			return;
	}
}

/* An address without a port, for binding a backend connection's source. */
static int source_elem(struct pctx *pc, const config_setting_t *e, const char *v, void *base)
{
	struct cfg_pool *p = base;
	const char *why = NULL;
	struct cfg_addr a;
	char q[96], text[96];

	quote(q, sizeof(q), v);
	/* a literal address, no port, no name */
	snprintf(text, sizeof(text), strchr(v, ':') ? "[%s]:1" : "%s:1", v);
	if (!addr_is_numeric(v) || parse_addr(text, &a, &why) || addr_is_wildcard(&a)) {
		perr(pc, e, "invalid source address %s (an IPv4 or IPv6 address, no port)", q);
		return -1;
	}
	if (a.ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a.ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&a.ss)->sin6_port = 0;
	for (unsigned j = 0; j < p->nsources; j++) {
		if (memcmp(&p->sources[j].ss, &a.ss, sizeof(a.ss)) == 0) {
			perr(pc, e, "source address %s listed twice", q);
			return -1;
		}
	}
	snprintf(a.text, sizeof(a.text), "%s", v);
	p->sources[p->nsources++] = a;
	return 0;
}

static void parse_sources(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			  void *base)
{
	parse_string_array(pc, s, "an array of addresses [ \"10.0.0.2\", ... ]", CFG_MAX_SOURCES,
			   "source addresses", source_elem, base);
}

static const struct cfg_key pool_keys[] = {
	KEY_NAME("name", struct cfg_pool, name, KF_REQUIRED),
	KEY_ENUM("balance", struct cfg_pool, balance, balance_names, 0),
	KEY_U32("retries", struct cfg_pool, retries, 0, 16),
	KEY_ENUM("proxy_protocol", struct cfg_pool, proxy_protocol, proxy_protocol_names, 0),
	KEY_GROUP("queue", queue_keys),
	KEY_GROUP("retry_after", retry_after_keys),
	KEY_CUSTOM("health", parse_health, 0),
	KEY_CUSTOM("synthetic", parse_synthetic, 0),
	KEY_CUSTOM("tls", parse_backend_tls, 0),
	KEY_U32("slow_start_s", struct cfg_pool, slow_start_s, 0, 86400),
	KEY_U32("starved_after_s", struct cfg_pool, starved_after_s, 0, 86400),
	KEY_CUSTOM("source", parse_sources, 0),
	KEY_CUSTOM("servers", parse_servers, KF_REQUIRED),
	KEY_END
};

static void pool_defaults(void *elem)
{
	struct cfg_pool *p = elem;

	p->balance = CFG_BAL_LEAST_CONN;
	p->retries = 2;
	p->proxy_protocol = CFG_PP_OFF;
	p->queue.max = 10000;
	p->queue.timeout_ms = 10000;
	p->queue.timeout_auto = 1; /* until timeout_ms is given */
	p->queue.order = CFG_QO_ADAPTIVE;
	p->retry_after.min_s = 1;
	p->retry_after.max_s = 120;
	p->retry_after.jitter_permille = 500;
	p->health.interval_ms = 2000;
	p->health.timeout_ms = 1000;
	p->health.rise = 2;
	p->health.fall = 3;
	p->starved_after_s = 60;
	p->synthetic.interval_ms = 10000;
	p->synthetic.timeout_ms = 2000;
}

static const struct cfg_list pool_list = {
	.what = "pools",
	.empty_msg = "no pools configured",
	.max = CFG_MAX_POOLS,
	.size = sizeof(struct cfg_pool),
	.line_off = offsetof(struct cfg_pool, line),
	.keys = pool_keys,
	.defaults = pool_defaults,
	.unique = { { "name", "pool name", offsetof(struct cfg_pool, name) } },
};

static void parse_pools(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			void *base)
{
	struct sl_config *cfg = base;

	cfg->pools = parse_list(pc, s, &pool_list, &cfg->npools);
}

/* ---- listeners ----------------------------------------------------------- */

static const struct cfg_enum mode_names[] = {
	{ "tcp", CFG_MODE_TCP },
	{ "http", CFG_MODE_HTTP },
	{ NULL, 0 },
};

/* Pools are parsed first (see top_keys), so the name resolves right here. */
static void parse_pool_ref(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	struct cfg_listener *l = base;
	const char *v = get_string(pc, s);
	int i;

	if (!v || !check_name(pc, s, v))
		return;
	i = config_pool_index(pc->cfg, v);
	if (i < 0) {
		perr(pc, s, "no pool named \"%s\"", v);
		return;
	}
	l->pool = (unsigned)i;
}

static int interface_elem(struct pctx *pc, const config_setting_t *e, const char *v, void *base)
{
	struct cfg_syn_gate *g = base;
	size_t len = strlen(v);
	char q[96];

	if (len == 0 || len >= CFG_IFNAME_MAX || strpbrk(v, "/ \t\n:")) {
		perr(pc, e, "bad interface name %s", quote(q, sizeof(q), v));
		return -1;
	}
	for (unsigned j = 0; j < g->ninterfaces; j++) {
		if (strcmp(g->interfaces[j], v) == 0) {
			perr(pc, e, "interface %s listed twice", quote(q, sizeof(q), v));
			return -1;
		}
	}
	strcpy(g->interfaces[g->ninterfaces++], v);
	return 0;
}

static void parse_interfaces(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			     void *base)
{
	parse_string_array(pc, s, "an array of interface names [ \"eth0\", ... ]", CFG_MAX_IFACES,
			   "interfaces", interface_elem, base);
}

static const struct cfg_key syn_gate_keys[] = {
	KEY_U32("rate", struct cfg_syn_gate, rate, 1, 100000000),
	KEY_U32("burst", struct cfg_syn_gate, burst, 1, 100000000),
	KEY_CUSTOM("interfaces", parse_interfaces, KF_REQUIRED),
	KEY_U32("source_prefix_v4", struct cfg_syn_gate, source_prefix_v4, 1, 32),
	KEY_U32("source_prefix_v6", struct cfg_syn_gate, source_prefix_v6, 1, 128),
	KEY_U32("source_rate", struct cfg_syn_gate, source_rate, 0, 100000000),
	KEY_U32("source_burst", struct cfg_syn_gate, source_burst, 1, 100000000),
	KEY_END
};

static void parse_syn_gate(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	struct cfg_syn_gate *g = &((struct cfg_listener *)base)->syn_gate;

	if (!expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		return;
	g->enabled = 1;
	g->source_prefix_v4 = 24;
	g->source_prefix_v6 = 56;
	parse_group(pc, s, syn_gate_keys, g);
	if (!config_setting_get_member(s, "rate")) {
		perr(pc, s, "syn_gate needs a rate (SYNs per second)");
		return;
	}
	if (!config_setting_get_member(s, "burst"))
		g->burst = g->rate;
	if (!config_setting_get_member(s, "source_burst"))
		g->source_burst = g->source_rate ? g->source_rate : 1;
}

/* ---- TLS ------------------------------------------------------------------ */

static const struct cfg_key cert_keys[] = {
	{ .name = "cert", .parse = parse_file, .off = offsetof(struct cfg_cert, cert),
	  .flags = KF_REQUIRED },
	{ .name = "key", .parse = parse_file, .off = offsetof(struct cfg_cert, key) },
	{ .name = "ocsp", .parse = parse_file, .off = offsetof(struct cfg_cert, ocsp) },
	KEY_END
};

static void cert_done(void *elem, const config_setting_t *el)
{
	struct cfg_cert *c = elem;

	if (!c->key[0])
		memcpy(c->key, c->cert, sizeof(c->key)); /* key and chain in one file */
}

static const struct cfg_list cert_list = {
	.what = "certificates",
	.empty_msg = "tls needs at least one certificate",
	.max = CFG_MAX_CERTS,
	.size = sizeof(struct cfg_cert),
	.line_off = offsetof(struct cfg_cert, line),
	.keys = cert_keys,
	.done = cert_done,
	.unique = { { "cert", "certificate", offsetof(struct cfg_cert, cert) } },
};

static void parse_certs(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			void *base)
{
	struct cfg_tls *t = base;

	t->certs = parse_list(pc, s, &cert_list, &t->ncerts);
}

/* ALPN protocol names: printable, no spaces or commas, 1..31 bytes. */
static void parse_alpn(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		       void *base)
{
	struct cfg_tls *t = base;
	int n;

	if (!expect_type(pc, s, CONFIG_TYPE_ARRAY, "an array of protocol names [ \"h2\", ... ]"))
		return;
	n = config_setting_length(s);
	if (n > CFG_MAX_ALPN) {
		perr(pc, s, "at most %d protocols", CFG_MAX_ALPN);
		return;
	}
	t->nalpn = 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		size_t old = path_push_index(pc, (unsigned)i), len;
		const char *v = get_string(pc, e);
		char q[96];
		int bad = 0;

		if (!v) {
			path_pop(pc, old);
			return;
		}
		len = strlen(v);
		bad = len == 0 || len >= CFG_ALPN_MAX;
		for (size_t j = 0; !bad && j < len; j++)
			bad = v[j] <= ' ' || v[j] > '~' || v[j] == ',';
		if (bad)
			perr(pc, e, "bad protocol name %s (1..%d printable characters, no spaces)",
			     quote(q, sizeof(q), v), CFG_ALPN_MAX - 1);
		else
			strcpy(t->alpn[t->nalpn++], v);
		path_pop(pc, old);
	}
}

/* An OpenSSL cipher list: names, ':' '+' '-' '!' '@' '=' and digits. */
static void parse_ciphers(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			  void *base)
{
	const char *v = get_string(pc, s);
	char q[96];
	size_t len;

	if (!v)
		return;
	len = strlen(v);
	if (len == 0 || len >= CFG_CIPHERS_MAX ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:+-!@=_.") !=
		    len) {
		perr(pc, s, "bad cipher list %s", quote(q, sizeof(q), v));
		return;
	}
	strcpy((char *)base + k->off, v);
}

static const struct cfg_enum tls_version_names[] = {
	{ "1.2", CFG_TLS12 }, { "1.3", CFG_TLS13 }, { NULL, 0 },
};

static const size_t full_auto_off = offsetof(struct cfg_tls, full_auto);
static const size_t resumed_auto_off = offsetof(struct cfg_tls, resumed_auto);

static const struct cfg_key tls_keys[] = {
	KEY_CUSTOM("certificates", parse_certs, KF_REQUIRED),
	KEY_CUSTOM("alpn", parse_alpn, 0),
	KEY_ENUM("min_version", struct cfg_tls, min_version, tls_version_names, 0),
	{ .name = "ciphers", .parse = parse_ciphers, .off = offsetof(struct cfg_tls, ciphers) },
	{ .name = "ciphersuites", .parse = parse_ciphers,
	  .off = offsetof(struct cfg_tls, ciphersuites) },
	{ .name = "ticket_keys", .parse = parse_file, .off = offsetof(struct cfg_tls, ticket_keys) },
	KEY_U32("session_cache", struct cfg_tls, session_cache, 0, 10000000),
	{ .name = "full_per_s", .parse = parse_u32_or_auto, .off = offsetof(struct cfg_tls, full_per_s),
	  .min = 0, .max = 10000000, .arg = &full_auto_off },
	KEY_U32("full_burst", struct cfg_tls, full_burst, 1, 10000000),
	{ .name = "resumed_per_s", .parse = parse_u32_or_auto,
	  .off = offsetof(struct cfg_tls, resumed_per_s), .min = 0, .max = 10000000,
	  .arg = &resumed_auto_off },
	KEY_U32("resumed_burst", struct cfg_tls, resumed_burst, 1, 10000000),
	KEY_U32("queue_max", struct cfg_tls, queue_max, 0, 10000000),
	KEY_END
};

static void parse_tls(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
		      void *base)
{
	struct cfg_tls *t = &((struct cfg_listener *)base)->tls;

	if (!expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		return;
	t->enabled = 1;
	t->min_version = CFG_TLS12;
	t->session_cache = 20000;
	t->queue_max = 1000;
	strcpy(t->alpn[0], "http/1.1");
	t->nalpn = 1;
	parse_group(pc, s, tls_keys, t);
	/* auto: learning starts from 200 a second (full) and 2000 (resumed) */
	if (t->full_auto)
		t->full_per_s = 200;
	if (t->resumed_auto)
		t->resumed_per_s = 2000;
	if (!config_setting_get_member(s, "full_burst"))
		t->full_burst = t->full_per_s / 10 ? t->full_per_s / 10 : 1;
	if (!config_setting_get_member(s, "resumed_burst"))
		t->resumed_burst = t->resumed_per_s / 10 ? t->resumed_per_s / 10 : 1;
}

static const struct cfg_key listener_keys[] = {
	KEY_NAME("name", struct cfg_listener, name, KF_REQUIRED),
	KEY_ADDR("address", struct cfg_listener, addr, KF_REQUIRED | KF_WILDCARD_OK),
	KEY_ENUM("mode", struct cfg_listener, mode, mode_names, 0),
	KEY_CUSTOM("pool", parse_pool_ref, KF_REQUIRED),
	KEY_U32("backlog", struct cfg_listener, backlog, 1, 65535),
	KEY_CUSTOM("syn_gate", parse_syn_gate, 0),
	KEY_CUSTOM("tls", parse_tls, 0),
	KEY_END
};

static void listener_defaults(void *elem)
{
	struct cfg_listener *l = elem;

	l->mode = CFG_MODE_TCP;
	l->backlog = 4096;
}

/*
 * Listeners bind with SO_REUSEPORT, so two on one address would not fail at
 * bind: they would silently share the connections.
 */
static const struct cfg_list listener_list = {
	.what = "listeners",
	.empty_msg = "no listeners configured",
	.max = CFG_MAX_LISTENERS,
	.size = sizeof(struct cfg_listener),
	.line_off = offsetof(struct cfg_listener, line),
	.keys = listener_keys,
	.defaults = listener_defaults,
	.unique = {
		{ "name", "listener name", offsetof(struct cfg_listener, name) },
		{ "address", "listener address", offsetof(struct cfg_listener, addr.text) },
	},
};

static void parse_listeners(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			    void *base)
{
	struct sl_config *cfg = base;

	cfg->listeners = parse_list(pc, s, &listener_list, &cfg->nlisteners);
}

/* ---- top level ----------------------------------------------------------- */

static const char *check_pow2(int64_t v)
{
	return v > 0 && (v & (v - 1)) == 0 ? NULL : "is not a power of two";
}

static void parse_token_file(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			     void *base)
{
	struct sl_config *cfg = base;
	const char *v = get_string(pc, s);

	if (v && check_path(pc, s, v, 1))
		snprintf(cfg->admin.token_file, sizeof(cfg->admin.token_file), "%s", v);
}

static const struct cfg_key admin_keys[] = {
	KEY_ADDR("address", struct sl_config, admin.addr, KF_WILDCARD_OK | KF_EMPTY_OK),
	KEY_CUSTOM("token_file", parse_token_file, 0),
	KEY_END
};

/*
 * A user or group name as useradd(8) takes it (a letter, digit or _ first;
 * then those, . and -; at most 32), so what the daemon looks up at start is
 * a plain name: no numeric ids, no spaces, nothing an NSS backend could read
 * another way.
 */
static void parse_account(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			  void *base)
{
	const char *v = get_string(pc, s);
	size_t len;
	char q[96];

	if (!v)
		return;
	len = strlen(v);
	if (len == 0 || len >= CFG_USER_MAX) {
		perr(pc, s, "%s must be 1..%d characters", k->name, CFG_USER_MAX - 1);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		    (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '-')))
			continue;
		perr(pc, s, "invalid %s name %s (allowed: A-Z a-z 0-9 _, then also . -)", k->name,
		     quote(q, sizeof(q), v));
		return;
	}
	if (strspn(v, "0123456789") == len) {
		perr(pc, s, "%s %s is a number: give the name", k->name, quote(q, sizeof(q), v));
		return;
	}
	strcpy((char *)base + k->off, v);
}

static const struct cfg_key timeouts_keys[] = {
	KEY_U32("connect_ms", struct sl_config, timeouts.connect_ms, 1, 600000),
	KEY_U32("idle_s", struct sl_config, timeouts.idle_s, 1, 604800),
	KEY_U32("backend_wait_ms", struct sl_config, timeouts.backend_wait_ms, 1, 3600000),
	KEY_U32("head_ms", struct sl_config, timeouts.head_ms, 1, 600000),
	KEY_U32("handshake_ms", struct sl_config, timeouts.handshake_ms, 1, 600000),
	KEY_U32("send_stall_ms", struct sl_config, timeouts.send_stall_ms, 1, 3600000),
	KEY_END
};

static const struct cfg_key drain_keys[] = {
	KEY_U32("period_s", struct sl_config, drain.period_s, 0, 86400),
	KEY_U32("grace_s", struct sl_config, drain.grace_s, 0, 86400),
	KEY_END
};

static const struct cfg_key buffers_keys[] = {
	KEY_U32_CHECK("count", struct sl_config, buffers.count, 16, 32768, check_pow2),
	KEY_U32("size", struct sl_config, buffers.size, 1024, 1048576),
	KEY_END
};

static void parse_access(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			 void *base)
{
	struct sl_config *cfg = base;
	const char *v = get_string(pc, s);

	if (v && (!*v || check_path(pc, s, v, 1)))
		snprintf(cfg->log.access, sizeof(cfg->log.access), "%s", v);
}

static const struct cfg_enum level_names[] = {
	{ "debug", 0 }, { "info", 1 }, { "warn", 2 }, { "error", 3 }, { NULL, 0 },
};

static const struct cfg_key log_keys[] = {
	KEY_ENUM("level", struct sl_config, log.level, level_names, 0),
	KEY_BOOL("syslog", struct sl_config, log.syslog),
	KEY_CUSTOM("access", parse_access, 0),
	KEY_END
};

static const struct cfg_key bpf_keys[] = {
	KEY_BOOL("enabled", struct sl_config, bpf.enabled),
	KEY_CUSTOM("pin_path", parse_pin_path, 0),
	KEY_CUSTOM("cgroup", parse_cgroup, 0),
	KEY_END
};

/* A sentinel's HOST:PORT; a bad one is reported and the next looked at. */
static int sentinel_elem(struct pctx *pc, const config_setting_t *e, const char *v, void *base)
{
	struct sl_config *cfg = base;
	const char *why = NULL;
	struct cfg_addr a;
	char q[96];

	if (parse_addr(v, &a, &why) == 0 && !addr_is_wildcard(&a))
		cfg->fleet.sentinels[cfg->fleet.nsentinels++] = a;
	else
		perr(pc, e, "invalid sentinel address %s (HOST:PORT)", quote(q, sizeof(q), v));
	return 0;
}

static void parse_sentinels(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			    void *base)
{
	parse_string_array(pc, s, "an array of addresses [ \"10.0.0.7:26379\", ... ]",
			   CFG_MAX_SENTINELS, "sentinels", sentinel_elem, base);
}

/* A DNS name for certificate verification: letters, digits, '-', '.', at most 253. */
static void parse_tls_name(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			   void *base)
{
	struct sl_config *cfg = base;
	const char *v = get_string(pc, s);
	char q[96];

	if (!v)
		return;
	if (!*v || strlen(v) > 253 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					  "0123456789-.") != strlen(v)) {
		perr(pc, s, "invalid name %s (a DNS name)", quote(q, sizeof(q), v));
		return;
	}
	snprintf(cfg->fleet.tls.name, sizeof(cfg->fleet.tls.name), "%s", v);
}

static const struct cfg_key fleet_tls_keys[] = {
	{ .name = "ca", .parse = parse_file, .off = offsetof(struct sl_config, fleet.tls.ca) },
	KEY_CUSTOM("name", parse_tls_name, 0),
	{ .name = "cert", .parse = parse_file, .off = offsetof(struct sl_config, fleet.tls.cert) },
	{ .name = "key", .parse = parse_file, .off = offsetof(struct sl_config, fleet.tls.key) },
	KEY_END
};

static void parse_fleet_tls(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			    void *base)
{
	struct sl_config *cfg = base;

	if (!expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		return;
	cfg->fleet.tls.enabled = 1;
	parse_group(pc, s, fleet_tls_keys, cfg);
	if (!cfg->fleet.tls.cert[0] != !cfg->fleet.tls.key[0])
		perr(pc, s, "fleet tls: give cert and key together, or neither");
}

static const struct cfg_key fleet_keys[] = {
	KEY_ADDR("redis", struct sl_config, fleet.redis, 0),
	KEY_CUSTOM("sentinels", parse_sentinels, 0),
	KEY_NAME("master", struct sl_config, fleet.master, 0),
	KEY_CUSTOM("tls", parse_fleet_tls, 0),
	KEY_NAME("host", struct sl_config, fleet.host, 0),
	KEY_NAME("prefix", struct sl_config, fleet.prefix, 0),
	KEY_U32("database", struct sl_config, fleet.database, 0, 1000),
	{ .name = "password_file", .parse = parse_file,
	  .off = offsetof(struct sl_config, fleet.password_file) },
	KEY_U32("heartbeat_ms", struct sl_config, fleet.heartbeat_ms, 50, 10000),
	KEY_U32("lease_ms", struct sl_config, fleet.lease_ms, 100, 600000),
	KEY_U32("hosts", struct sl_config, fleet.hosts, 1, 64),
	KEY_END
};

static void parse_fleet(struct pctx *pc, const config_setting_t *s, const struct cfg_key *k,
			void *base)
{
	struct sl_config *cfg = base;

	if (!expect_type(pc, s, CONFIG_TYPE_GROUP, "a group { ... }"))
		return;
	cfg->fleet.enabled = 1;
	cfg->fleet.heartbeat_ms = 300;
	cfg->fleet.lease_ms = 3000;
	cfg->fleet.hosts = 2;
	snprintf(cfg->fleet.prefix, sizeof(cfg->fleet.prefix), "sluice");
	parse_group(pc, s, fleet_keys, cfg);
	if (!cfg->fleet.redis.len && !cfg->fleet.nsentinels)
		perr(pc, s, "fleet needs redis (HOST:PORT), or sentinels and master");
	if (cfg->fleet.nsentinels && !cfg->fleet.master[0])
		perr(pc, s, "fleet sentinels need master (the name the sentinels monitor)");
	if (cfg->fleet.lease_ms < 2 * cfg->fleet.heartbeat_ms)
		perr(pc, s, "fleet lease_ms (%u) must be at least twice heartbeat_ms (%u)",
		     cfg->fleet.lease_ms, cfg->fleet.heartbeat_ms);
	if (!cfg->fleet.host[0] && gethostname(cfg->fleet.host, sizeof(cfg->fleet.host)))
		perr(pc, s, "fleet host: no hostname to default to; give host");
	cfg->fleet.host[sizeof(cfg->fleet.host) - 1] = 0;
}

static const struct cfg_key top_keys[] = {
	KEY_U32("workers", struct sl_config, workers, 1, CFG_MAX_WORKERS),
	{ .name = "user", .parse = parse_account, .off = offsetof(struct sl_config, user) },
	{ .name = "group", .parse = parse_account, .off = offsetof(struct sl_config, group) },
	KEY_GROUP("bpf", bpf_keys),
	KEY_GROUP("log", log_keys),
	KEY_GROUP("admin", admin_keys),
	KEY_GROUP("timeouts", timeouts_keys),
	KEY_GROUP("drain", drain_keys),
	KEY_GROUP("buffers", buffers_keys),
	KEY_CUSTOM("fleet", parse_fleet, 0),
	KEY_CUSTOM("pools", parse_pools, 0), /* before listeners: they refer to pools */
	KEY_CUSTOM("listeners", parse_listeners, KF_REQUIRED),
	KEY_END
};

static void config_defaults(struct sl_config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->workers = ncpu < 1 ? 1 : ncpu > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : (unsigned)ncpu;
	cfg->admin.enabled = 1;
	/* cannot fail: a numeric literal */
	parse_addr("127.0.0.1:9901", &cfg->admin.addr, NULL);
	cfg->timeouts.connect_ms = 3000;
	cfg->timeouts.idle_s = 3600;
	cfg->timeouts.backend_wait_ms = 10000;
	cfg->timeouts.head_ms = 5000;
	cfg->timeouts.handshake_ms = 10000;
	cfg->timeouts.send_stall_ms = 60000; /* NGINX's send_timeout */
	cfg->drain.period_s = 30;
	cfg->drain.grace_s = 60;
	cfg->buffers.count = 512;
	cfg->buffers.size = 65536;
	cfg->log.level = 1;
	cfg->bpf.enabled = 1;
	strcpy(cfg->bpf.pin_path, "/sys/fs/bpf/sluice");
	strcpy(cfg->bpf.cgroup, "sluice");
}

static void check_pools(struct pctx *pc)
{
	const struct sl_config *cfg = pc->cfg;
	char path[64];

	for (unsigned i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *p = &cfg->pools[i];

		if (p->retry_after.min_s > p->retry_after.max_s) {
			snprintf(path, sizeof(path), "pools[%u].retry_after", i);
			perr_at(pc, pc->name, p->line, path, "min_s (%u) is above max_s (%u)",
				p->retry_after.min_s, p->retry_after.max_s);
		}
		if (p->synthetic.enabled) {
			unsigned l = 0;

			while (l < cfg->nlisteners && cfg->listeners[l].pool != i)
				l++;
			if (l == cfg->nlisteners) {
				snprintf(path, sizeof(path), "pools[%u].synthetic", i);
				perr_at(pc, pc->name, p->line, path,
					"a synthetic check goes through a listener, and none serves "
					"pool \"%s\"", p->name);
			}
		}
	}
}

/* A group alone would leave sluiced root with another gid: say what is meant. */
static void check_account(struct pctx *pc, const config_setting_t *root)
{
	const config_setting_t *g = config_setting_get_member(root, "group");

	if (g && pc->cfg->group[0] && !pc->cfg->user[0])
		perr_at(pc, pc->name, setting_line(g), "group",
			"group without user: set user too (group alone drops nothing)");
}

/*
 * What is left unset is learned: a server without `rate` gets rate =
 * "auto" and a queue without `timeout_ms` timeout_ms = "auto". Not where
 * BPF is off, though: the kernel enforces the rate, so without it a server
 * has no rate limit, as before.
 */
static void auto_defaults(struct pctx *pc)
{
	struct sl_config *cfg = pc->cfg;

	for (unsigned i = 0; i < cfg->npools; i++) {
		for (unsigned j = 0; j < cfg->pools[i].nservers; j++) {
			struct cfg_server *sv = &cfg->pools[i].servers[j];

			if (!sv->rate_default || cfg->bpf.enabled)
				continue;
			sv->rate_auto = 0;
			sv->rate = 0;
			sv->rate_min = sv->rate_max = 0;
			if (!sv->burst_set)
				sv->burst = 1;
		}
	}
}

/* rate_min and rate_max bound what "auto" learns: nothing else. */
static void check_auto_rates(struct pctx *pc)
{
	const struct sl_config *cfg = pc->cfg;
	char path[64];

	for (unsigned i = 0; i < cfg->npools; i++) {
		for (unsigned j = 0; j < cfg->pools[i].nservers; j++) {
			const struct cfg_server *sv = &cfg->pools[i].servers[j];

			snprintf(path, sizeof(path), "pools[%u].servers[%u]", i, j);
			if (!sv->rate_auto && (sv->rate_min || sv->rate_max))
				perr_at(pc, pc->name, sv->line, path,
					"rate_min and rate_max go with rate = \"auto\"");
			else if (sv->rate_auto && sv->rate_min > sv->rate_max)
				perr_at(pc, pc->name, sv->line, path,
					"rate_min %u is above rate_max %u", sv->rate_min,
					sv->rate_max);
		}
	}
}

/* Limits are the kernel's to enforce: without BPF they would be a silent lie. */
static void check_bpf_needed(struct pctx *pc)
{
	const struct sl_config *cfg = pc->cfg;
	char path[64];

	if (cfg->bpf.enabled)
		return;
	for (unsigned i = 0; i < cfg->npools; i++) {
		for (unsigned j = 0; j < cfg->pools[i].nservers; j++) {
			const struct cfg_server *sv = &cfg->pools[i].servers[j];

			if (!sv->max_conns && !sv->rate && !sv->rate_auto)
				continue;
			snprintf(path, sizeof(path), "pools[%u].servers[%u]", i, j);
			perr_at(pc, pc->name, sv->line, path,
				"max_conns and rate are enforced by BPF, but bpf.enabled = false");
		}
	}
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		if (!cfg->listeners[i].syn_gate.enabled)
			continue;
		snprintf(path, sizeof(path), "listeners[%u].syn_gate", i);
		perr_at(pc, pc->name, cfg->listeners[i].line, path,
			"the SYN gate is a BPF program, but bpf.enabled = false");
	}
}

/*
 * The kernel keeps one ledger and one bucket per backend address, so a
 * server named in several pools must carry the same limits in each.
 */
static void check_shared_servers(struct pctx *pc)
{
	const struct sl_config *cfg = pc->cfg;

	for (unsigned i = 0; i < cfg->npools; i++) {
		for (unsigned j = 0; j < cfg->pools[i].nservers; j++) {
			const struct cfg_server *a = &cfg->pools[i].servers[j];

			for (unsigned k = i + 1; k < cfg->npools; k++) {
				for (unsigned m = 0; m < cfg->pools[k].nservers; m++) {
					const struct cfg_server *b = &cfg->pools[k].servers[m];
					char path[64];

					if (strcmp(a->addr.text, b->addr.text) != 0 ||
					    (a->max_conns == b->max_conns && a->rate == b->rate &&
					     a->burst == b->burst && a->rate_auto == b->rate_auto &&
					     a->rate_min == b->rate_min && a->rate_max == b->rate_max))
						continue;
					snprintf(path, sizeof(path), "pools[%u].servers[%u]", k, m);
					perr_at(pc, pc->name, b->line, path,
						"server %s has other limits here than in pool \"%s\" "
						"(line %d): max_conns, rate and burst must match",
						b->addr.text, cfg->pools[i].name, a->line);
				}
			}
		}
	}
}

/* ---- what libconfig 1.5 would accept silently ---------------------------- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_xdigit(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
	       c == '-' || c == '*';
}

/* Would libconfig 1.5 read the literal TOK (no L suffix) without wrapping? */
static int int_literal_fits(const char *tok, size_t len, int hex)
{
	char buf[64];
	long long v;
	char *end;

	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, tok, len);
	buf[len] = '\0';
	errno = 0;
	if (hex) {
		/* a hex literal is a bit pattern: 0xFFFFFFFF is -1, which is fine */
		unsigned long long u = strtoull(buf, &end, 16);

		return errno == 0 && u <= 0xffffffffULL;
	}
	v = strtoll(buf, &end, 10);
	return errno == 0 && v >= INT_MIN && v <= INT_MAX;
}

/*
 * Two things libconfig 1.5 would take without a word, found in the source
 * ourselves (skipping strings and comments) and reported like syntax errors:
 *
 * - SCAN_INCLUDE: `@include`. libconfig opens the file at parse time,
 *   relative to the daemon's CWD, and nothing here could check its integer
 *   literals or name it as the file passed; one file is the whole config.
 * - SCAN_INTS: an integer literal without the L suffix is read into an int
 *   and wraps: `workers = 4294967297;` would load as 1.
 *
 * Returns how many were found.
 */
#define SCAN_INCLUDE	0x1
#define SCAN_INTS	0x2

static int scan_source(struct pctx *pc, const char *p, unsigned what)
{
	int line = 1, found = 0;

	while (*p) {
		const char *tok;
		int hex = 0;

		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '@' && strncmp(p, "@include", 8) == 0) {
			if (what & SCAN_INCLUDE) {
				perr_at(pc, pc->name, line, "syntax", "@include is not supported");
				found++;
			}
			p += 8;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
				line += *p == '\n';
			p += *p ? 2 : 0;
		} else if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				line += *p == '\n';
			}
			p += *p ? 1 : 0;
		} else if (is_ident(*p) && !is_digit(*p) && *p != '-') {
			while (is_ident(*p))
				p++;
		} else if (is_digit(*p) || ((*p == '-' || *p == '+') && is_digit(p[1]))) {
			tok = p;
			p += *p == '-' || *p == '+';
			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
				hex = 1;
				for (p += 2; is_xdigit(*p); p++)
					;
			} else {
				while (is_digit(*p))
					p++;
			}
			if (*p == 'L') {
				p++;
				continue;
			}
			if (!hex && (*p == '.' || *p == 'e' || *p == 'E')) {
				/* a float: skip the rest of it */
				while (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' ||
				       ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')))
					p++;
				continue;
			}
			if ((what & SCAN_INTS) && !int_literal_fits(tok, (size_t)(p - tok), hex)) {
				perr_at(pc, pc->name, line, "syntax",
					"integer %.*s does not fit in 32 bits "
					"(add L for a 64-bit value)",
					(int)(p - tok), tok);
				found++;
			}
		} else {
			p++;
		}
	}
	return found;
}

/* ---- addresses ----------------------------------------------------------- */

static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (!is_digit(*s))
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 65535)
			return -EINVAL;
	}
	if (v == 0)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/*
 * RFC 1123 host name. Checked before getaddrinfo so that garbage never costs
 * a DNS round trip, and so that glibc's inet_aton leniency ("10.1", "0x7f.1")
 * cannot turn a typo into an address: the last label must not be numeric.
 */
static int valid_hostname(const char *h)
{
	size_t len = strlen(h), label = 0;
	int numeric = 1;

	if (len && h[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? h[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || h[i - 1] == '-')
				return 0;
			if (i == len && numeric)
				return 0;
			label = 0;
			numeric = 1;
			continue;
		}
		if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c == '-' && label > 0)))
			return 0;
		numeric &= is_digit(c);
		label++;
	}
	return 1;
}

static void addr_set_text(struct cfg_addr *a, uint16_t port)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;

		in->sin_port = htons(port);
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(a->text, sizeof(a->text), "%s:%u", ip, port);
		a->len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;

		in6->sin6_port = htons(port);
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(a->text, sizeof(a->text), "[%s]:%u", ip, port);
		a->len = sizeof(*in6);
	}
}

static int resolve(const char *host, const char *port_s, struct cfg_addr *a, const char **why)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL, *ai;
	int rc, err = -ENOENT;

	rc = getaddrinfo(host, port_s, &hints, &res);
	if (rc) {
		*why = gai_strerror(rc);
		err = rc == EAI_MEMORY ? -ENOMEM : -ENOENT;
		goto out;
	}
	*why = "no IPv4 or IPv6 address";
	for (ai = res; ai; ai = ai->ai_next) {
		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    ai->ai_addrlen <= sizeof(a->ss)) {
			memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
			err = 0;
			break;
		}
	}
out:
	if (res)
		freeaddrinfo(res);
	return err;
}

/*
 * Parse TEXT into ADDR. On failure *WHY (when WHY is not NULL) says what is
 * wrong, in words fit for an error message; ADDR is untouched.
 */
static int parse_addr(const char *text, struct cfg_addr *addr, const char **why)
{
	struct sockaddr_in6 *in6;
	struct sockaddr_in *in;
	const char *port_s, *dummy;
	struct cfg_addr a;
	char host[256];
	size_t hlen;
	uint16_t port;
	int err = -EINVAL;

	if (!why)
		why = &dummy;
	*why = "expected HOST:PORT";
	memset(&a, 0, sizeof(a));
	in = (struct sockaddr_in *)&a.ss;
	in6 = (struct sockaddr_in6 *)&a.ss;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close) {
			*why = "missing ']' after IPv6 address";
			goto out;
		}
		if (close[1] != ':') {
			*why = "expected [IPV6]:PORT";
			goto out;
		}
		hlen = (size_t)(close - text - 1);
		port_s = close + 2;
		if (hlen == 0 || hlen >= sizeof(host))
			goto out;
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		if (parse_port(port_s, &port)) {
			*why = "port must be 1..65535";
			goto out;
		}
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			*why = "bad IPv6 address";
			goto out;
		}
		a.ss.ss_family = AF_INET6;
	} else {
		port_s = strrchr(text, ':');
		if (!port_s)
			goto out;
		hlen = (size_t)(port_s - text);
		port_s++;
		if (memchr(text, ':', hlen)) {
			*why = "an IPv6 address needs brackets: [ADDR]:PORT";
			goto out;
		}
		if (hlen == 0 || hlen >= sizeof(host))
			goto out;
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		if (parse_port(port_s, &port)) {
			*why = "port must be 1..65535";
			goto out;
		}
		if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
			a.ss.ss_family = AF_INET;
		} else if (strspn(host, "0123456789.") == hlen) {
			*why = "bad IPv4 address";
			goto out;
		} else if (!valid_hostname(host)) {
			*why = "bad host name";
			goto out;
		} else {
			err = resolve(host, port_s, &a, why);
			if (err)
				goto out;
		}
	}
	addr_set_text(&a, port);
	*addr = a;
	err = 0;
out:
	return err;
}

int config_parse_addr(const char *text, struct cfg_addr *addr)
{
	if (!text || !addr)
		return -EINVAL;
	return parse_addr(text, addr, NULL);
}

/* ---- loading ------------------------------------------------------------- */

static struct sl_config *load_text(const char *text, const char *name, char **errors)
{
	struct pctx pc = { .name = name };
	struct sl_config *cfg;
	config_t lc;
	int err = 0;

	config_init(&lc);
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name))) {
		err = ENOMEM;
		goto out;
	}
	pc.cfg = cfg;
	config_defaults(cfg);
	/* before libconfig gets to open the included file */
	if (scan_source(&pc, text, SCAN_INCLUDE))
		goto out;
	/*
	 * libconfig 1.5 leaks a string token that is the lookahead at a syntax
	 * error (`x "y"`): a few bytes per failed load, nothing we can free.
	 */
	if (!config_read_string(&lc, text)) {
		int line = config_error_line(&lc);

		perr_at(&pc, name, line > 0 ? line : 1, "syntax", "%s", config_error_text(&lc));
		goto out;
	}
	if (scan_source(&pc, text, SCAN_INTS))
		goto out;
	parse_group(&pc, config_root_setting(&lc), top_keys, cfg);
	cfg->admin.enabled = cfg->admin.addr.len != 0;
	check_account(&pc, config_root_setting(&lc));
	check_shared_servers(&pc);
	auto_defaults(&pc);
	check_auto_rates(&pc);
	check_bpf_needed(&pc);
	check_pools(&pc);
out:
	config_destroy(&lc);
	if (pc.oom)
		err = ENOMEM;
	else if (!err && pc.nerrs)
		err = EINVAL;
	if (errors)
		*errors = err && pc.nerrs ? join_errors(&pc) : NULL;
	free_errors(&pc);
	if (err) {
		config_free(cfg);
		cfg = NULL;
		errno = err;
	}
	return cfg;
}

/* Read all of PATH into a NUL-terminated buffer; 0 or -errno. */
static int read_file(const char *path, char **text, size_t *len)
{
	size_t cap = 16384, n = 0;
	char *buf = NULL, *nb;
	int fd, err = 0;
	ssize_t r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (n + 1 >= cap) {
			/* a config is small; this bounds a mistaken -c /dev/zero */
			if (cap >= 64u << 20) {
				err = -EFBIG;
				goto out;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				err = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return err;
}

struct sl_config *config_load(const char *path, char **errors)
{
	struct sl_config *cfg = NULL;
	char *text = NULL;
	size_t len = 0;
	int err;

	if (errors)
		*errors = NULL;
	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	err = read_file(path, &text, &len);
	if (err) {
		/* line 0: the file as a whole */
		if (errors && asprintf(errors, "%s:0: file: cannot read: %s\n", path,
				       strerror(-err)) < 0)
			*errors = NULL;
		errno = -err;
		goto out;
	}
	if (strlen(text) != len) {
		/* libconfig would silently stop reading at the NUL */
		int line = 1;

		for (const char *p = text; *p; p++)
			line += *p == '\n';
		if (errors && asprintf(errors, "%s:%d: syntax: NUL byte in file\n", path,
				       line) < 0)
			*errors = NULL;
		errno = EINVAL;
		goto out;
	}
	cfg = load_text(text, path, errors);
out:
	free(text);
	return cfg;
}

struct sl_config *config_load_string(const char *text, const char *name, char **errors)
{
	if (errors)
		*errors = NULL;
	if (!text) {
		errno = EINVAL;
		return NULL;
	}
	return load_text(text, name ? name : "<string>", errors);
}

void config_free(struct sl_config *cfg)
{
	if (!cfg)
		return;
	for (unsigned i = 0; i < cfg->npools; i++)
		free(cfg->pools[i].servers);
	free(cfg->pools);
	for (unsigned i = 0; i < cfg->nlisteners; i++)
		free(cfg->listeners[i].tls.certs);
	free(cfg->listeners);
	free(cfg->path);
	free(cfg);
}

int config_pool_index(const struct sl_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (unsigned i = 0; i < cfg->npools; i++) {
		if (strcmp(cfg->pools[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

int config_listener_index(const struct sl_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}
