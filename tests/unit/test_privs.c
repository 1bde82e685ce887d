// SPDX-License-Identifier: MIT
/*
 * proxy/privs.c, each case in a child process (a drop cannot be undone):
 * no user: nothing changes; user = nobody: the process and a thread started
 * afterwards are uid/gid nobody with CAP_NET_BIND_SERVICE and CAP_NET_ADMIN
 * only (effective, permitted, bounding), none inheritable or ambient,
 * no_new_privs set; an unknown user is an error; with a second thread
 * running, the drop refuses (capset would change one thread only). Needs
 * root: exit 77 without.
 */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/privs.h"
#include "tests/unit/test.h"

#define WANT ((1ull << 10) | (1ull << 12)) /* CAP_NET_BIND_SERVICE, CAP_NET_ADMIN */

static uint64_t status_hex(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	return p ? strtoull(p + strlen(key), NULL, 16) : ~0ull;
}

static long status_long(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* /proc/thread-self/status into BUF */
static void read_status(char *buf, size_t len)
{
	FILE *f = fopen("/proc/thread-self/status", "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
}

/* The credentials of the calling thread are nobody's, with WANT (or WANT + CAP_BPF). */
static void check_creds(uid_t uid)
{
	char st[8192];
	uint64_t eff;

	read_status(st, sizeof(st));
	CHECK_EQ(status_long(st, "\nUid:\t"), uid);
	CHECK_EQ(getuid(), uid);
	CHECK_EQ(geteuid(), uid);
	eff = status_hex(st, "\nCapEff:\t");
	/* CAP_BPF is kept only where the kernel wants it; without BPF fds there is no probe */
	CHECK(eff == WANT);
	CHECK_EQ(status_hex(st, "\nCapPrm:\t"), eff);
	CHECK_EQ(status_hex(st, "\nCapBnd:\t"), eff);
	CHECK_EQ(status_hex(st, "\nCapInh:\t"), 0);
	CHECK_EQ(status_hex(st, "\nCapAmb:\t"), 0);
	CHECK_EQ(status_long(st, "\nNoNewPrivs:\t"), 1);
}

static void *thread_check(void *arg)
{
	check_creds(*(uid_t *)arg);
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

static struct sl_config *conf(const char *user)
{
	struct sl_config *cfg = calloc(1, sizeof(*cfg));

	cfg->path = strdup("/nonexistent/sluice.conf");
	cfg->workers = 1;
	snprintf(cfg->user, sizeof(cfg->user), "%s", user);
	return cfg;
}

/* Run FN in a child; its test_failures is its exit status. */
static void in_child(void (*fn)(void))
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		fn();
		_exit(test_failures ? 1 : 0);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

static void case_no_user(void)
{
	struct sl_config *cfg = conf("");
	char err[256];

	CHECK_EQ(privs_drop(cfg, NULL, err, sizeof(err)), 0);
	CHECK_EQ(geteuid(), 0);
	config_free(cfg);
}

static void case_nobody(void)
{
	struct sl_config *cfg = conf("nobody");
	struct passwd *pw = getpwnam("nobody");
	char err[256] = "";
	pthread_t t;
	uid_t uid;

	CHECK(pw != NULL);
	if (!pw)
		return;
	uid = pw->pw_uid;
	CHECK_EQ(privs_drop(cfg, NULL, err, sizeof(err)), 0);
	if (err[0])
		fprintf(stderr, "privs_drop: %s\n", err);
	check_creds(uid);
	CHECK_EQ(getgid(), pw->pw_gid);
	/* a thread started afterwards: the same */
	CHECK_EQ(pthread_create(&t, NULL, thread_check, &uid), 0);
	pthread_join(t, NULL);
	/* and root is gone for good */
	CHECK(setuid(0) != 0);
	config_free(cfg);
}

static void case_unknown(void)
{
	struct sl_config *cfg = conf("no-such-user-sluice");
	char err[256] = "";

	CHECK_EQ(privs_drop(cfg, NULL, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "no-such-user-sluice") != NULL);
	CHECK_EQ(geteuid(), 0);
	config_free(cfg);
}

static void case_threads(void)
{
	struct sl_config *cfg = conf("nobody");
	char err[256] = "";
	pthread_t t;

	CHECK_EQ(pthread_create(&t, NULL, sleeper, NULL), 0);
	CHECK_EQ(privs_drop(cfg, NULL, err, sizeof(err)), -EBUSY);
	CHECK(strstr(err, "threads") != NULL);
	CHECK_EQ(geteuid(), 0);
	config_free(cfg);
}

int main(void)
{
	if (geteuid() != 0 || !getpwnam("nobody")) {
		printf("needs root and a user nobody\n");
		return 77;
	}
	in_child(case_no_user);
	in_child(case_nobody);
	in_child(case_unknown);
	in_child(case_threads);
	return test_result("test_privs");
}
