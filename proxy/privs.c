// SPDX-License-Identifier: MIT
/*
 * privs — the drop itself, in raw syscalls (capget/capset, prctl): no libcap.
 *
 * Order matters, and each step needs what the previous ones leave:
 *   1. as root: the pinned BPF objects go to the user, RLIMIT_MEMLOCK is
 *      lifted (io_uring charges ring and buffer-ring memory to it for a user
 *      without CAP_IPC_LOCK, and per user, not per process);
 *   2. PR_SET_KEEPCAPS, then groups, gid, uid: without KEEPCAPS the kernel
 *      empties the permitted set when the last uid 0 goes;
 *   3. capset: permitted = what is kept + CAP_BPF (to probe) + CAP_SETPCAP
 *      (to trim the bounding set), effective = what is kept;
 *   4. the probe: a bpf() call on a map fd with CAP_BPF not effective. If the
 *      kernel refuses it, CAP_BPF stays;
 *   5. the bounding set trimmed to what is kept (needs CAP_SETPCAP
 *      effective), ambient cleared, then the final capset drops CAP_SETPCAP
 *      and, if the probe passed, CAP_BPF; no_new_privs set, as sluiced never
 *      executes anything.
 * glibc's setresuid() changes every thread (it signals them), capset() only
 * the caller: hence the single-thread check first.
 */
#include "proxy/privs.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "userspace/log.h"

#define BIT(c) (1ull << (c))

/* what sluiced needs once started; see privs.h for why each */
#define KEEP (BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_NET_ADMIN))
/* kept only if the kernel asks for it (the probe) */
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#define MAYBE BIT(CAP_BPF)

// clang-format off
static const char *const cap_names[] = {
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
	"cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
	"cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw",
	"cap_ipc_lock", "cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot",
	"cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
	"cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
	"cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override",
	"cap_mac_admin", "cap_syslog", "cap_wake_alarm", "cap_block_suspend", "cap_audit_read",
	"cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
};
// clang-format on

/* "cap_net_bind_service,cap_net_admin" for MASK ("none" for 0) into BUF. */
static const char *privs_names(uint64_t mask, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = 0;
	for (unsigned c = 0; c < 64 && off < len; c++) {
		int n;

		if (!(mask & BIT(c)))
			continue;
		if (c < sizeof(cap_names) / sizeof(cap_names[0]))
			n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", cap_names[c]);
		else
			n = snprintf(buf + off, len - off, "%scap_%u", off ? "," : "", c);
		off += n > 0 ? (size_t)n : 0;
	}
	if (!mask)
		snprintf(buf, len, "none");
	return buf;
}

static int cap_get(uint64_t *eff, uint64_t *prm)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return -errno;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

/* Permitted PRM, effective EFF, inheritable none (nothing is executed). */
static int cap_set(uint64_t prm, uint64_t eff)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[0].permitted = (uint32_t)prm;
	d[1].permitted = (uint32_t)(prm >> 32);
	d[0].effective = (uint32_t)eff;
	d[1].effective = (uint32_t)(eff >> 32);
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static unsigned cap_last(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	unsigned last = CAP_LAST_CAP;

	if (f) {
		if (fscanf(f, "%u", &last) != 1 || last > 63)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

/* Threads of this process (entries in /proc/self/task), or -errno. */
static int nthreads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Look up USER (and GROUP, or the user's primary group). */
static int resolve(const struct sl_config *cfg, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char buf[16384];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	int ret;

	ret = getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &pwp);
	if (!pwp) {
		snprintf(err, errlen, "user \"%s\": %s", cfg->user,
			 ret ? strerror(ret) : "no such user");
		return ret ? -ret : -ENOENT;
	}
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	if (!cfg->group[0])
		return 0;
	ret = getgrnam_r(cfg->group, &gr, buf, sizeof(buf), &grp);
	if (!grp) {
		snprintf(err, errlen, "group \"%s\": %s", cfg->group,
			 ret ? strerror(ret) : "no such group");
		return ret ? -ret : -ENOENT;
	}
	*gid = gr.gr_gid;
	return 0;
}

static const char *group_name(gid_t gid, char *buf, size_t len)
{
	char tmp[16384];
	struct group gr, *grp = NULL;

	if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &grp) == 0 && grp)
		snprintf(buf, len, "%s", gr.gr_name);
	else
		snprintf(buf, len, "%u", (unsigned)gid);
	return buf;
}

/* A file a reload reads again: warn now if the user will not be able to. */
static void check_readable(const char *what, const char *path)
{
	/* access() checks the real uid: by now the user's */
	if (path && *path && access(path, R_OK) != 0)
		log_warn("privileges: %s %s is not readable by the user sluiced runs as (%s): "
			 "a reload will fail until it is", what, path, strerror(errno));
}

int privs_drop(const struct sl_config *cfg, struct ebpf *e, char *err, size_t errlen)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	uint64_t eff = 0, prm = 0, keep = KEEP;
	unsigned last = cap_last();
	char names[256], gname[64], *user = NULL;
	uid_t uid;
	gid_t gid;
	int ret, n;

	if (!cfg->user[0]) {
		if (geteuid() == 0)
			log_warn("privileges: running as root; set user (and group) in the config "
				 "to drop root after start");
		return 0;
	}
	ret = resolve(cfg, &uid, &gid, err, errlen);
	if (ret)
		return ret;
	if (uid == 0) {
		log_warn("privileges: user = \"%s\" is root: nothing dropped", cfg->user);
		return 0;
	}
	/* -errno: no /proc to count them; main() calls this before any thread anyway */
	n = nthreads();
	if (n > 1) {
		snprintf(err, errlen, "privileges: %d threads running; the drop must come first",
			 n);
		return -EBUSY;
	}
	/* 1. still root */
	if (e) {
		ret = ebpf_set_owner(e, uid, gid);
		if (ret) {
			snprintf(err, errlen, "privileges: giving %s to %s: %s",
				 ebpf_pin_path(e), cfg->user, strerror(-ret));
			return ret;
		}
	}
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited)) {
		struct rlimit rl;

		/* about 0.6 MiB per worker ring, plus the main thread's, per user */
		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur < ((rlim_t)cfg->workers + 1) << 20)
			log_warn("privileges: RLIMIT_MEMLOCK is %llu KiB and cannot be raised (%s): "
				 "io_uring charges its rings to it once sluiced is not root, about "
				 "1 MiB per worker; raise it (LimitMEMLOCK=infinity, ulimit -l)",
				 (unsigned long long)rl.rlim_cur >> 10, strerror(errno));
	}

	/* 2. groups, gid, uid; capabilities survive thanks to KEEPCAPS */
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
		user = strdup(cfg->user);
		if (!user || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || initgroups(user, gid) ||
		    setresgid(gid, gid, gid) || setresuid(uid, uid, uid)) {
			ret = -errno;
			snprintf(err, errlen, "privileges: cannot become %s (uid %u, gid %u): %s",
				 cfg->user, (unsigned)uid, (unsigned)gid, strerror(errno));
			goto out;
		}
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}

	/* 3. */
	ret = cap_get(&eff, &prm);
	if (ret)
		goto fail_caps;
	if ((prm & KEEP) != KEEP)
		log_warn("privileges: %s not there to keep (a capability bounding set?): see "
			 "README, Privileges", privs_names(KEEP & ~prm, names, sizeof(names)));
	keep &= prm;
	ret = cap_set((keep | MAYBE | BIT(CAP_SETPCAP)) & prm, keep);
	if (ret)
		goto fail_caps;

	/* 4. can bpf() be used on our fds without CAP_BPF? */
	if (e && (prm & MAYBE) && ebpf_probe(e) == -EPERM) {
		keep |= MAYBE;
		log_info("privileges: this kernel wants CAP_BPF for bpf() on open fds: kept");
	}

	/* 5. */
	ret = cap_set((keep | BIT(CAP_SETPCAP)) & prm, (keep | BIT(CAP_SETPCAP)) & prm);
	if (ret)
		goto fail_caps;
	for (unsigned c = 0; c <= last; c++) {
		if (keep & BIT(c) || prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1)
			continue;
		if (!(prm & BIT(CAP_SETPCAP))) {
			log_warn("privileges: the capability bounding set keeps %s and more: no "
				 "CAP_SETPCAP to trim it", privs_names(BIT(c), names, sizeof(names)));
			break;
		}
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0)) {
			ret = -errno;
			goto fail_caps;
		}
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	ret = cap_set(keep, keep);
	if (ret)
		goto fail_caps;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		log_warn("privileges: no_new_privs: %s", strerror(errno));
	if (e && ebpf_probe(e)) {
		snprintf(err, errlen, "privileges: bpf maps unusable after the drop: %s",
			 strerror(-ebpf_probe(e)));
		ret = -EPERM;
		goto out;
	}
	log_info("privileges: running as user %s (uid %u), group %s (gid %u); capabilities "
		 "kept: %s", cfg->user, (unsigned)uid, group_name(gid, gname, sizeof(gname)),
		 (unsigned)gid, privs_names(keep, names, sizeof(names)));
	check_readable("the config file", cfg->path);
	check_readable("admin.token_file", cfg->admin.token_file);
	ret = 0;
	goto out;
fail_caps:
	snprintf(err, errlen, "privileges: capabilities: %s", strerror(-ret));
out:
	free(user);
	return ret;
}
