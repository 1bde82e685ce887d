// SPDX-License-Identifier: MIT
/*
 * The admin endpoint's bearer token: token files (what is accepted, the
 * loose-permission flag), and a real server on loopback asked with no token,
 * a wrong one, one differing in the last character, a prefix, the right one,
 * a replaced one, and /healthz, which needs none.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "userspace/admin.h"
#include "tests/unit/test.h"

static char dir[] = "/tmp/sluice-test-admin-XXXXXX";

/* Write TEXT to a file in DIR with MODE; its path in PATH. */
static void put(const char *name, const char *text, mode_t mode, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static int read_token(const char *text, mode_t mode, char *token, int *loose)
{
	char path[128], err[512];

	put("t", text, mode, path, sizeof(path));
	return admin_token_read(path, token, ADMIN_TOKEN_MAX, loose, err, sizeof(err));
}

static void test_files(void)
{
	char token[ADMIN_TOKEN_MAX], long_token[ADMIN_TOKEN_MAX + 8], err[512];
	int loose = -1;

	CHECK_EQ(read_token("abcdefghijklmnop\n", 0600, token, &loose), 0);
	CHECK(strcmp(token, "abcdefghijklmnop") == 0);
	CHECK_EQ(loose, 0);
	CHECK_EQ(read_token("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==\r\n", 0640, token, &loose), 0);
	CHECK(strcmp(token, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==") == 0);
	CHECK_EQ(loose, 1);
	CHECK_EQ(read_token("a-b.c_d~e+f/g0123456", 0604, token, &loose), 0); /* no newline */
	CHECK_EQ(loose, 1);
	CHECK_EQ(read_token("short\n", 0600, token, NULL), -EINVAL);
	CHECK_EQ(read_token("", 0600, token, NULL), -EINVAL);
	CHECK_EQ(read_token("abcdefghijklmnop qrs\n", 0600, token, NULL), -EINVAL);
	CHECK_EQ(read_token("abcdefghijklmnop\nsecond line\n", 0600, token, NULL), -EINVAL);
	CHECK_EQ(read_token("abcdefghijklmnop==x\n", 0600, token, NULL), -EINVAL);
	CHECK_EQ(read_token("abcdefghijklmnop\n\n", 0600, token, NULL), -EINVAL);
	memset(long_token, 'a', ADMIN_TOKEN_MAX - 1);
	long_token[ADMIN_TOKEN_MAX - 1] = 0;
	CHECK_EQ(read_token(long_token, 0600, token, NULL), 0);
	CHECK_EQ(strlen(token), ADMIN_TOKEN_MAX - 1);
	long_token[ADMIN_TOKEN_MAX - 1] = 'a';
	long_token[ADMIN_TOKEN_MAX] = 0;
	CHECK_EQ(read_token(long_token, 0600, token, NULL), -EINVAL);
	CHECK_EQ(admin_token_read("/nonexistent/token", token, sizeof(token), NULL, err, sizeof(err)),
		 -ENOENT);
	CHECK(strstr(err, "/nonexistent/token") != NULL);
	CHECK_EQ(admin_token_read(dir, token, sizeof(token), NULL, err, sizeof(err)), -EINVAL);
}

static void handler(const char *method, const char *path, struct admin_resp *r, void *arg)
{
	(void)method;
	(void)arg;
	admin_printf(r, "seen %s\n", path);
}

/* Status of GET PATH with TOKEN (NULL: none). */
static int get(const struct cfg_addr *addr, const char *path, const char *token)
{
	char *body = NULL;
	int status = admin_request(addr, "GET", path, token, &body, 2000);

	if (status == 200)
		CHECK(body && strncmp(body, "seen ", 5) == 0);
	if (status == 401)
		CHECK(body && strstr(body, "Bearer") != NULL);
	free(body);
	return status;
}

static void test_server(void)
{
	const char *token = "s3cr3t-t0ken-0123456789abcdef";
	char text[64], err[256], wrong[64];
	struct cfg_addr addr;
	struct admin *a = NULL;

	/* a port of our own: a few tries around one derived from the pid */
	for (int i = 0; i < 20 && !a; i++) {
		snprintf(text, sizeof(text), "127.0.0.1:%d",
			 20000 + (getpid() * 7 + i * 131) % 30000);
		CHECK_EQ(config_parse_addr(text, &addr), 0);
		a = admin_start(&addr, token, handler, NULL, err, sizeof(err));
	}
	CHECK(a != NULL);
	if (!a)
		return;
	CHECK_EQ(get(&addr, "/metrics", NULL), 401);
	CHECK_EQ(get(&addr, "/metrics", "wrong-token-0123456789abcdef"), 401);
	snprintf(wrong, sizeof(wrong), "%s", token);
	wrong[strlen(wrong) - 1] ^= 1; /* the last character differs */
	CHECK_EQ(get(&addr, "/metrics", wrong), 401);
	snprintf(wrong, sizeof(wrong), "%.*s", (int)strlen(token) - 1, token); /* a prefix */
	CHECK_EQ(get(&addr, "/metrics", wrong), 401);
	snprintf(wrong, sizeof(wrong), "%sx", token); /* one longer */
	CHECK_EQ(get(&addr, "/metrics", wrong), 401);
	CHECK_EQ(get(&addr, "/metrics", token), 200);
	CHECK_EQ(get(&addr, "/status.json?x=1", token), 200);
	CHECK_EQ(get(&addr, "/healthz", NULL), 200);
	CHECK_EQ(get(&addr, "/healthz?probe=1", NULL), 200);
	CHECK_EQ(get(&addr, "/healthzz", NULL), 401);

	/* a reload's new token: the old one is refused at once */
	admin_set_token(a, "another-token-0123456789");
	CHECK_EQ(get(&addr, "/metrics", token), 401);
	CHECK_EQ(get(&addr, "/metrics", "another-token-0123456789"), 200);
	/* no token: open again */
	admin_set_token(a, "");
	CHECK_EQ(get(&addr, "/metrics", NULL), 200);
	admin_stop(a);
	admin_set_token(NULL, "x");
	admin_stop(NULL);
}

int main(void)
{
	char path[128];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_files();
	test_server();
	snprintf(path, sizeof(path), "%s/t", dir);
	unlink(path);
	rmdir(dir);
	return test_result("test_admin");
}
