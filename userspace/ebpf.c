// SPDX-License-Identifier: MIT
#include "userspace/ebpf.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <mntent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "bpf/bucket.h"
#include "bpf/sluice.skel.h"
#include "userspace/log.h"

#define MAX_XDP 64

enum hook { HOOK_CONNECT4, HOOK_CONNECT6, HOOK_RELEASE, NHOOKS };

static const struct {
	const char *name; /* program name, also in the link's pin name */
	enum bpf_attach_type type;
} hooks[NHOOKS] = {
	[HOOK_CONNECT4] = { "sl_connect4", BPF_CGROUP_INET4_CONNECT },
	[HOOK_CONNECT6] = { "sl_connect6", BPF_CGROUP_INET6_CONNECT },
	[HOOK_RELEASE] = { "sl_sock_release", BPF_CGROUP_INET_SOCK_RELEASE },
};

struct xdp_attach {
	char ifname[CFG_IFNAME_MAX];
	int ifindex;
	struct bpf_link *link;
};

struct ebpf {
	struct sluice_bpf *skel;
	char pin[CFG_PATH_MAX];
	char pinref[CFG_PATH_MAX]; /* the pin directory through pinfd, for pins made at run time */
	char cgroup[PATH_MAX + CFG_PATH_MAX];
	int cgfd;
	int pinfd; /* the pin directory, flock'ed while processes change shared state */
	struct bpf_link *links[NHOOKS];
	struct xdp_attach xdp[MAX_XDP];
	unsigned nxdp;
	struct sl_backend *backends;
	struct sl_listener *listeners;
	size_t backends_len, listeners_len;
	uint64_t reattached;
	_Atomic unsigned nattached; /* as last counted on the main thread, for the admin one */
};

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t ebpf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct sl_addr to_key(const struct cfg_addr *a)
{
	struct sl_addr k;

	memset(&k, 0, sizeof(k));
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)&a->ss;

		k.ip[0] = in->sin_addr.s_addr;
		k.port = in->sin_port;
		k.family = SL_AF_INET;
	} else {
		const struct sockaddr_in6 *in6 = (const void *)&a->ss;

		memcpy(k.ip, &in6->sin6_addr, 16);
		k.port = in6->sin6_port;
		k.family = SL_AF_INET6;
	}
	return k;
}

static void key_text(const struct sl_addr *k, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (k->family == SL_AF_INET) {
		inet_ntop(AF_INET, k->ip, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(k->port));
	} else {
		inet_ntop(AF_INET6, k->ip, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(k->port));
	}
}

/* ---- file systems: bpffs for pins, cgroup v2 for the gate ----------------- */

static int is_fs(const char *path, long magic)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == magic;
}

/* mkdir -p, mode 0700 for what is created */
static int mkdirs(const char *path)
{
	char buf[PATH_MAX];

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Links are pinned, unpinned and reopened at run time (the safeguard, a
 * reload naming a new interface, the exit), when sluiced may no longer be
 * root. The pin directory is then its user's, but its parents need not be
 * searchable by that user (/sys/fs/bpf is often 0700 root): so those paths go
 * through /proc/self/fd/PINFD, which reaches the directory without walking
 * its parents — when /proc is there and leads to the same directory.
 */
static void set_pinref(struct ebpf *e)
{
	struct stat a, b;

	snprintf(e->pinref, sizeof(e->pinref), "/proc/self/fd/%d", e->pinfd);
	if (fstat(e->pinfd, &a) || stat(e->pinref, &b) || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino)
		snprintf(e->pinref, sizeof(e->pinref), "%s", e->pin);
}

static int setup_pin_dir(struct ebpf *e, const char *pin, char *err, size_t errlen)
{
	char parent[PATH_MAX];
	int ret;

	/* the nearest existing ancestor tells which file system the pins land on */
	snprintf(parent, sizeof(parent), "%s", pin);
	while (access(parent, F_OK) != 0) {
		char *slash = strrchr(parent, '/');

		if (!slash || slash == parent) {
			strcpy(parent, "/");
			break;
		}
		*slash = 0;
	}
	if (!is_fs(parent, BPF_FS_MAGIC)) {
		if (strncmp(pin, "/sys/fs/bpf/", 12) != 0) {
			fmt_err(err, errlen, "bpf.pin_path %s is not on a bpf file system", pin);
			return -EINVAL;
		}
		/* the usual place, not mounted yet: mount it */
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
			fmt_err(err, errlen, "cannot mount bpffs on /sys/fs/bpf: %s",
				strerror(errno));
			return -errno;
		}
		log_info("bpf: mounted bpffs on /sys/fs/bpf");
	}
	ret = mkdirs(pin);
	if (ret) {
		fmt_err(err, errlen, "bpf.pin_path %s: %s", pin, strerror(-ret));
		return ret;
	}
	/* pinned maps hold who is connected where: owner only */
	chmod(pin, 0700);
	e->pinfd = open(pin, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->pinfd < 0) {
		fmt_err(err, errlen, "bpf.pin_path %s: %s", pin, strerror(errno));
		return -errno;
	}
	snprintf(e->pin, sizeof(e->pin), "%s", pin);
	set_pinref(e);
	return 0;
}

static int cgroup2_mount(char *out, size_t len)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2") == 0) {
			snprintf(out, len, "%s", m->mnt_dir);
			ret = 0;
			break;
		}
	}
	endmntent(f);
	return ret;
}

static int join_cgroup(struct ebpf *e, const char *name, char *err, size_t errlen)
{
	char mnt[PATH_MAX], procs[sizeof(e->cgroup) + 16], pid[32];
	int fd, n, ret;

	if (cgroup2_mount(mnt, sizeof(mnt))) {
		fmt_err(err, errlen, "no cgroup v2 file system mounted (see /proc/mounts)");
		return -ENOENT;
	}
	if (name[0] == '/') {
		size_t ml = strlen(mnt);

		if (strncmp(name, mnt, ml) != 0 || (name[ml] != '/' && name[ml] != 0)) {
			fmt_err(err, errlen, "bpf.cgroup %s is not under the cgroup v2 mount %s",
				name, mnt);
			return -EINVAL;
		}
		snprintf(e->cgroup, sizeof(e->cgroup), "%s", name);
	} else {
		snprintf(e->cgroup, sizeof(e->cgroup), "%s/%s", mnt, name);
	}
	ret = mkdirs(e->cgroup);
	if (ret || !is_fs(e->cgroup, CGROUP2_SUPER_MAGIC)) {
		fmt_err(err, errlen, "cgroup %s: %s", e->cgroup,
			ret ? strerror(-ret) : "not a cgroup v2 directory");
		return ret ? ret : -EINVAL;
	}
	/* the whole process, all threads; sockets take the cgroup of their creator */
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", e->cgroup);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (fd < 0 || write(fd, pid, (size_t)n) != n) {
		fmt_err(err, errlen, "cannot join cgroup %s: %s", e->cgroup, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	e->cgfd = open(e->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->cgfd < 0) {
		fmt_err(err, errlen, "cgroup %s: %s", e->cgroup, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Are we the only process in the cgroup? */
static int cgroup_alone(const struct ebpf *e)
{
	char path[sizeof(e->cgroup) + 16], line[64];
	int others = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", e->cgroup);
	f = fopen(path, "re");
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f))
		if (atoi(line) != (int)getpid())
			others++;
	fclose(f);
	return others == 0;
}

/* ---- programs and links ------------------------------------------------------ */

static struct bpf_program *hook_prog(struct ebpf *e, enum hook h)
{
	switch (h) {
	case HOOK_CONNECT4: return e->skel->progs.sl_connect4;
	case HOOK_CONNECT6: return e->skel->progs.sl_connect6;
	default: return e->skel->progs.sl_sock_release;
	}
}

static void link_pin_path(const struct ebpf *e, const char *what, char *buf, size_t len)
{
	snprintf(buf, len, "%s/link_%s", e->pinref, what);
}

/*
 * Attach PROG through a link pinned at PIN: take over a pinned link (swap
 * the program in atomically, so there is no moment without the gate), or
 * make one with ATTACH and pin it.
 */
static struct bpf_link *link_take(struct bpf_program *prog, const char *pin,
				  struct bpf_link *(*attach)(const struct bpf_program *, int), int target)
{
	struct bpf_link *l = bpf_link__open(pin);

	if (l) {
		if (bpf_link__update_program(l, prog) == 0)
			return l;
		/* detached or stale: start over */
		bpf_link__destroy(l);
		unlink(pin);
	}
	l = attach(prog, target);
	if (!l)
		return NULL;
	if (bpf_link__pin(l, pin)) {
		int ret = -errno;

		bpf_link__destroy(l);
		errno = -ret;
		return NULL;
	}
	return l;
}

static struct bpf_link *attach_cgroup(const struct bpf_program *p, int fd)
{
	return bpf_program__attach_cgroup(p, fd);
}

static struct bpf_link *attach_xdp(const struct bpf_program *p, int ifindex)
{
	return bpf_program__attach_xdp(p, ifindex);
}

/*
 * Out of descriptors or memory: a query that failed this way says nothing
 * about what is attached, and the safeguard must not act on it (it would
 * unlink the pinned links it then cannot re-create).
 */
static int cannot_tell(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/*
 * Is the link of FD still attached (an XDP link: to interface XDP_IFINDEX)?
 * A cgroup link names its cgroup, an XDP link its interface; both read 0
 * once the link is detached (bpftool link detach, the cgroup or the
 * interface gone). Asking the link needs no privilege, unlike BPF_PROG_QUERY
 * (CAP_NET_ADMIN) or naming the programs found there (BPF_PROG_GET_FD_BY_ID:
 * CAP_SYS_ADMIN): the safeguard must work after sluiced dropped root.
 * -errno when it cannot be told now.
 */
static int link_attached(int fd, int xdp_ifindex)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return cannot_tell(errno) ? -errno : 0;
	if (xdp_ifindex)
		return info.type == BPF_LINK_TYPE_XDP && (int)info.xdp.ifindex == xdp_ifindex;
	return info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id != 0;
}

/*
 * Attached: our own link, or the one pinned at PIN. The pin is how several
 * sluiced processes share one gate: a new one takes the pinned link over and
 * swaps its program in, and whichever process re-attached a detached gate
 * pinned its new link there. Counting the pinned link keeps the others from
 * attaching a second copy (which would count each connect twice).
 * 1, 0, or -errno: cannot tell now.
 */
static int attached(const struct bpf_link *own, const char *pin, int xdp_ifindex)
{
	int fd, ret;

	if (own) {
		ret = link_attached(bpf_link__fd(own), xdp_ifindex);
		if (ret)
			return ret;
	}
	fd = bpf_obj_get(pin);
	if (fd < 0)
		return cannot_tell(errno) ? -errno : 0;
	ret = link_attached(fd, xdp_ifindex);
	close(fd);
	return ret;
}

/* 1: our program is attached to hook H, 0: it is not, -errno: cannot tell now. */
static int hook_attached(const struct ebpf *e, enum hook h)
{
	char pin[PATH_MAX];

	link_pin_path(e, hooks[h].name + 3, pin, sizeof(pin));
	return attached(e->links[h], pin, 0);
}

/* The same for the SYN gate on X's interface. */
static int xdp_attached(const struct ebpf *e, const struct xdp_attach *x)
{
	char pin[PATH_MAX];

	link_pin_path(e, "xdp_", pin, sizeof(pin));
	strncat(pin, x->ifname, sizeof(pin) - strlen(pin) - 1);
	return attached(x->link, pin, x->ifindex);
}

static void count_attached(struct ebpf *e);
static int pins_secure(struct ebpf *e, uid_t uid, gid_t gid);

static const char *xdp_mode(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q))
		return "?";
	switch (q.attach_mode) {
	case XDP_ATTACHED_DRV: return "native";
	case XDP_ATTACHED_SKB: return "generic";
	case XDP_ATTACHED_HW: return "offloaded";
	default: return "?";
	}
}

static int xdp_attach_one(struct ebpf *e, const char *ifname, char *err, size_t errlen)
{
	struct xdp_attach *x;
	char pin[PATH_MAX];
	int ifindex = (int)if_nametoindex(ifname);

	if (!ifindex) {
		fmt_err(err, errlen, "syn_gate: interface %s: %s", ifname, strerror(errno));
		return -ENODEV;
	}
	if (e->nxdp == MAX_XDP) {
		fmt_err(err, errlen, "syn_gate: more than %d interfaces", MAX_XDP);
		return -E2BIG;
	}
	x = &e->xdp[e->nxdp];
	snprintf(x->ifname, sizeof(x->ifname), "%s", ifname);
	x->ifindex = ifindex;
	link_pin_path(e, "xdp_", pin, sizeof(pin));
	strncat(pin, ifname, sizeof(pin) - strlen(pin) - 1);
	/*
	 * A link (not a plain attach) so that nothing else silently replaces
	 * it; the kernel picks native mode where the driver has it.
	 */
	x->link = link_take(e->skel->progs.sl_syn_gate, pin, attach_xdp, ifindex);
	if (!x->link) {
		fmt_err(err, errlen, "syn_gate: attach XDP to %s: %s", ifname, strerror(errno));
		return -errno;
	}
	e->nxdp++;
	log_info("bpf: SYN gate on %s (%s XDP)", ifname, xdp_mode(ifindex));
	return 0;
}

static void xdp_detach_one(struct ebpf *e, unsigned i)
{
	char pin[PATH_MAX];

	link_pin_path(e, "xdp_", pin, sizeof(pin));
	strncat(pin, e->xdp[i].ifname, sizeof(pin) - strlen(pin) - 1);
	bpf_link__detach(e->xdp[i].link);
	bpf_link__destroy(e->xdp[i].link);
	unlink(pin);
	log_info("bpf: SYN gate removed from %s", e->xdp[i].ifname);
	e->xdp[i] = e->xdp[--e->nxdp];
}

/* ---- open ----------------------------------------------------------------- */

static void *map_mmap(struct bpf_map *m, size_t *len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t sz = (size_t)bpf_map__value_size(m) * bpf_map__max_entries(m);
	void *p;

	sz = (sz + (size_t)page - 1) & ~((size_t)page - 1);
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(m), 0);
	if (p == MAP_FAILED)
		return NULL;
	*len = sz;
	return p;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* warnings are sluice's to report, once, with context */
	if (level == LIBBPF_WARN && getenv("SLUICE_BPF_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

struct ebpf *ebpf_open(const struct sl_config *cfg, char *err, size_t errlen)
{
	struct ebpf *e = calloc(1, sizeof(*e));
	struct bpf_map *m;
	char path[PATH_MAX];
	int ret;

	if (!e) {
		fmt_err(err, errlen, "out of memory");
		return NULL;
	}
	e->cgfd = e->pinfd = -1;
	libbpf_set_print(libbpf_quiet);
	if (setup_pin_dir(e, cfg->bpf.pin_path, err, errlen) ||
	    join_cgroup(e, cfg->bpf.cgroup, err, errlen))
		goto fail;
	flock(e->pinfd, LOCK_EX);
	e->skel = sluice_bpf__open();
	if (!e->skel) {
		fmt_err(err, errlen, "bpf: open: %s", strerror(errno));
		goto fail_locked;
	}
	/* every map pinned: reused when a previous sluiced left it, created otherwise */
	bpf_object__for_each_map(m, e->skel->obj) {
		snprintf(path, sizeof(path), "%s/%s", e->pin, bpf_map__name(m));
		bpf_map__set_pin_path(m, path);
	}
	ret = sluice_bpf__load(e->skel);
	if (ret) {
		fmt_err(err, errlen,
			"bpf: load: %s (a pinned map from another version? remove %s to start over)",
			strerror(-ret), e->pin);
		goto fail_locked;
	}
	for (int h = 0; h < NHOOKS; h++) {
		link_pin_path(e, hooks[h].name + 3, path, sizeof(path));
		e->links[h] = link_take(hook_prog(e, h), path, attach_cgroup, e->cgfd);
		if (!e->links[h]) {
			fmt_err(err, errlen, "bpf: attach %s to %s: %s", hooks[h].name, e->cgroup,
				strerror(errno));
			goto fail_locked;
		}
	}
	e->backends = map_mmap(e->skel->maps.backends, &e->backends_len);
	e->listeners = map_mmap(e->skel->maps.listeners, &e->listeners_len);
	if (!e->backends || !e->listeners) {
		fmt_err(err, errlen, "bpf: mmap: %s", strerror(errno));
		goto fail_locked;
	}
	count_attached(e);
	ret = pins_secure(e, (uid_t)-1, (gid_t)-1);
	if (ret)
		log_warn("bpf: %s: cannot make the pins owner-only: %s", e->pin, strerror(-ret));
	flock(e->pinfd, LOCK_UN);
	log_info("bpf: backend gate attached to cgroup %s; maps pinned in %s", e->cgroup, e->pin);
	return e;
fail_locked:
	flock(e->pinfd, LOCK_UN);
fail:
	ebpf_close(e, 0);
	return NULL;
}

/* ---- apply ------------------------------------------------------------------ */

/* Slots taken in an index map (hash: sl_addr → slot). */
static void used_slots(int idx_fd, unsigned char *used, unsigned max)
{
	struct sl_addr k, next;
	__u32 slot;
	void *prev = NULL;

	while (bpf_map_get_next_key(idx_fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(idx_fd, &next, &slot) == 0 && slot < max)
			used[slot] = 1;
		k = next;
		prev = &k;
	}
}

static int free_slot(unsigned char *used, unsigned max, unsigned *cursor)
{
	for (; *cursor < max; (*cursor)++)
		if (!used[*cursor])
			return (int)(*cursor)++;
	return -1;
}

static int lookup_slot(int idx_fd, const struct sl_addr *k, __u32 *slot)
{
	return bpf_map_lookup_elem(idx_fd, k, slot);
}

/* Backend addresses of CFG, each once (a server may be in several pools). */
static unsigned unique_servers(const struct sl_config *cfg, const struct cfg_server **out,
			       unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->npools; i++) {
		for (unsigned j = 0; j < cfg->pools[i].nservers; j++) {
			const struct cfg_server *sv = &cfg->pools[i].servers[j];
			unsigned k;

			for (k = 0; k < n; k++)
				if (strcmp(out[k]->addr.text, sv->addr.text) == 0)
					break;
			if (k == n && n < max)
				out[n++] = sv;
		}
	}
	return n;
}

/* V split over HOSTS, at least 1 (0 stays 0: no limit). */
static __u32 split(__u32 v, unsigned hosts)
{
	return v && v / hosts == 0 ? 1 : v / hosts;
}

/*
 * SV's limits into B. HOSTS: in a fleet the configured limits are totals,
 * and until the fleet says this host's part (proxy/fleet.c, through the
 * main thread's limits in force) it holds an even split of them: never
 * more than the totals, whatever the other hosts do.
 */
static void backend_fill(struct sl_backend *b, const struct cfg_server *sv, int fresh,
			 unsigned hosts)
{
	__u64 interval, tau;
	__u32 rate = split(sv->rate, hosts), burst = split(sv->burst, hosts);

	if (fresh) {
		/* a slot nobody holds: start from a clean ledger and a full bucket */
		memset(b, 0, sizeof(*b));
	}
	b->max_conns = split(sv->max_conns, hosts);
	if (sv->rate_auto && (b->flags & SL_BF_AUTO) && b->rate) {
		/* learned before this config or this process: keep it (proxy/learn.c) */
		__atomic_store_n(&b->in_use, 1, __ATOMIC_RELEASE);
		return;
	}
	if (sv->rate_auto) {
		rate = sv->rate; /* where learning starts: each host's own */
		burst = sv->burst;
	}
	sl_bucket_params(rate, burst, &interval, &tau);
	b->bucket.interval_ns = interval;
	b->bucket.tau_ns = tau;
	b->rate = rate;
	b->burst = burst;
	b->flags = sv->rate_auto ? SL_BF_AUTO : 0;
	__atomic_store_n(&b->in_use, 1, __ATOMIC_RELEASE);
}

static void listener_fill(struct sl_listener *l, const struct cfg_syn_gate *g, int fresh)
{
	__u64 interval, tau;

	if (fresh)
		memset(l, 0, sizeof(*l));
	sl_bucket_params(g->rate, g->burst, &interval, &tau);
	l->bucket.interval_ns = interval;
	l->bucket.tau_ns = tau;
	sl_bucket_params(g->source_rate, g->source_burst, &interval, &tau);
	l->src.interval_ns = interval;
	l->src.tau_ns = tau;
	l->prefix_v4 = (__u8)g->source_prefix_v4;
	l->prefix_v6 = (__u8)g->source_prefix_v6;
	l->rate = g->rate;
	l->burst = g->burst;
	l->source_rate = g->source_rate;
	l->source_burst = g->source_burst;
	__atomic_store_n(&l->in_use, 1, __ATOMIC_RELEASE);
}

int ebpf_apply(struct ebpf *e, const struct sl_config *cfg, char *err, size_t errlen)
{
	static const struct cfg_server *servers[SL_MAX_BACKENDS + 1];
	unsigned char bused[SL_MAX_BACKENDS] = { 0 }, lused[SL_MAX_LISTENERS] = { 0 };
	int bidx = bpf_map__fd(e->skel->maps.backend_idx);
	int lidx = bpf_map__fd(e->skel->maps.listener_idx);
	const char *ifaces[MAX_XDP];
	unsigned nsv, nifaces = 0, need = 0, bcur = 0, lcur = 0, nfree = 0;
	struct sl_addr k;
	__u32 slot;
	int ret = 0;

	nsv = unique_servers(cfg, servers, SL_MAX_BACKENDS + 1);
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_syn_gate *g = &cfg->listeners[i].syn_gate;

		for (unsigned j = 0; g->enabled && j < g->ninterfaces; j++) {
			unsigned f;

			for (f = 0; f < nifaces; f++)
				if (strcmp(ifaces[f], g->interfaces[j]) == 0)
					break;
			if (f == nifaces) {
				if (nifaces == MAX_XDP) {
					fmt_err(err, errlen, "syn_gate: more than %d interfaces", MAX_XDP);
					return -E2BIG;
				}
				ifaces[nifaces++] = g->interfaces[j];
			}
		}
	}
	flock(e->pinfd, LOCK_EX);

	/* capacity first, so a config that does not fit changes nothing */
	used_slots(bidx, bused, SL_MAX_BACKENDS);
	for (unsigned i = 0; i < SL_MAX_BACKENDS; i++)
		nfree += !bused[i];
	for (unsigned i = 0; i < nsv; i++) {
		k = to_key(&servers[i]->addr);
		need += lookup_slot(bidx, &k, &slot) != 0;
	}
	if (nsv > SL_MAX_BACKENDS || need > nfree) {
		fmt_err(err, errlen, "bpf: %u backends do not fit in %u free slots (removed "
			"backends keep theirs until their last connection closes)", need, nfree);
		ret = -ENOSPC;
		goto out;
	}
	for (unsigned i = 0; i < nsv; i++) {
		int fresh = 0;

		k = to_key(&servers[i]->addr);
		if (lookup_slot(bidx, &k, &slot)) {
			slot = (__u32)free_slot(bused, SL_MAX_BACKENDS, &bcur);
			fresh = 1;
		}
		/* the entry before the index: the kernel never sees a slot without limits */
		backend_fill(&e->backends[slot], servers[i], fresh,
			     cfg->fleet.enabled ? cfg->fleet.hosts : 1);
		if (fresh && bpf_map_update_elem(bidx, &k, &slot, BPF_ANY)) {
			fmt_err(err, errlen, "bpf: backend %s: %s", servers[i]->addr.text,
				strerror(errno));
			ret = -errno;
			goto out;
		}
	}
	/* backends no longer configured: out of use; their slot is freed when empty */
	{
		struct sl_addr cur, next;
		void *prev = NULL;

		while (bpf_map_get_next_key(bidx, prev, &next) == 0) {
			unsigned i;

			for (i = 0; i < nsv; i++) {
				k = to_key(&servers[i]->addr);
				if (memcmp(&k, &next, sizeof(k)) == 0)
					break;
			}
			if (i == nsv && bpf_map_lookup_elem(bidx, &next, &slot) == 0 &&
			    slot < SL_MAX_BACKENDS)
				__atomic_store_n(&e->backends[slot].in_use, 0, __ATOMIC_RELEASE);
			cur = next;
			prev = &cur;
		}
	}

	/* listeners with a SYN gate; the others leave the map */
	used_slots(lidx, lused, SL_MAX_LISTENERS);
	{
		struct sl_addr cur, next;
		void *prev = NULL;

		while (bpf_map_get_next_key(lidx, prev, &next) == 0) {
			int keep = 0;

			for (unsigned i = 0; i < cfg->nlisteners; i++) {
				k = to_key(&cfg->listeners[i].addr);
				keep |= cfg->listeners[i].syn_gate.enabled &&
					memcmp(&k, &next, sizeof(k)) == 0;
			}
			cur = next;
			if (!keep && bpf_map_lookup_elem(lidx, &cur, &slot) == 0) {
				bpf_map_delete_elem(lidx, &cur);
				if (slot < SL_MAX_LISTENERS) {
					e->listeners[slot].in_use = 0;
					lused[slot] = 0;
				}
				prev = NULL; /* the walk restarts after a delete */
				continue;
			}
			prev = &cur;
		}
	}
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		int fresh = 0;

		if (!l->syn_gate.enabled)
			continue;
		k = to_key(&l->addr);
		if (lookup_slot(lidx, &k, &slot)) {
			int s = free_slot(lused, SL_MAX_LISTENERS, &lcur);

			if (s < 0) {
				fmt_err(err, errlen, "bpf: no room for the SYN gate of %s", l->name);
				ret = -ENOSPC;
				goto out;
			}
			slot = (__u32)s;
			fresh = 1;
		}
		listener_fill(&e->listeners[slot], &l->syn_gate, fresh);
		if (fresh && bpf_map_update_elem(lidx, &k, &slot, BPF_ANY)) {
			fmt_err(err, errlen, "bpf: listener %s: %s", l->name, strerror(errno));
			ret = -errno;
			goto out;
		}
	}

	/* XDP: attach where newly named, detach where no longer named */
	for (unsigned i = 0; i < e->nxdp;) {
		unsigned f;

		for (f = 0; f < nifaces; f++)
			if (strcmp(ifaces[f], e->xdp[i].ifname) == 0)
				break;
		if (f == nifaces)
			xdp_detach_one(e, i);
		else
			i++;
	}
	for (unsigned f = 0; f < nifaces; f++) {
		unsigned i;

		for (i = 0; i < e->nxdp; i++)
			if (strcmp(ifaces[f], e->xdp[i].ifname) == 0)
				break;
		if (i == e->nxdp) {
			ret = xdp_attach_one(e, ifaces[f], err, errlen);
			if (ret)
				goto out;
		}
	}
out:
	count_attached(e);
	flock(e->pinfd, LOCK_UN);
	return ret;
}

int ebpf_backend_limits(struct ebpf *e, const struct cfg_addr *addr, uint32_t max_conns,
			uint32_t rate, uint32_t burst)
{
	volatile struct sl_backend *b = ebpf_backend(e, addr);
	__u64 interval, tau;

	if (!b)
		return -ENOENT;
	sl_bucket_params(rate, burst, &interval, &tau);
	b->max_conns = max_conns;
	b->bucket.interval_ns = interval;
	b->bucket.tau_ns = tau;
	b->rate = rate;
	b->burst = burst;
	return 0;
}

volatile struct sl_backend *ebpf_backend(struct ebpf *e, const struct cfg_addr *addr)
{
	struct sl_addr k = to_key(addr);
	__u32 slot;

	if (!e || lookup_slot(bpf_map__fd(e->skel->maps.backend_idx), &k, &slot) ||
	    slot >= SL_MAX_BACKENDS)
		return NULL;
	return &e->backends[slot];
}

volatile struct sl_listener *ebpf_listener(struct ebpf *e, const struct cfg_addr *addr)
{
	struct sl_addr k = to_key(addr);
	__u32 slot;

	if (!e || lookup_slot(bpf_map__fd(e->skel->maps.listener_idx), &k, &slot) ||
	    slot >= SL_MAX_LISTENERS)
		return NULL;
	return &e->listeners[slot];
}

/* ---- ownership, for a sluiced that drops root ------------------------------- */

/*
 * Mode MODE and owner UID:GID ((uid_t)-1, (gid_t)-1: as it is) for NAME in
 * DFD ("." for DFD itself). The mode first, while root still owns it: once
 * given away, chmod would need CAP_FOWNER. A restart finds the pins owned by
 * the user: if a mode must change, root takes the pin back first (CAP_CHOWN).
 */
static int secure_one(int dfd, const char *name, const struct stat *st, mode_t mode, uid_t uid,
		      gid_t gid)
{
	int flags = strcmp(name, ".") == 0 ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW;
	const char *path = flags == AT_EMPTY_PATH ? "" : name;
	uid_t want_uid = uid == (uid_t)-1 ? st->st_uid : uid, cur_uid = st->st_uid;
	gid_t want_gid = gid == (gid_t)-1 ? st->st_gid : gid;

	if ((st->st_mode & 07777) != mode) {
		if (cur_uid != geteuid()) {
			if (fchownat(dfd, path, geteuid(), (gid_t)-1, flags))
				return -errno;
			cur_uid = geteuid();
		}
		if (flags == AT_EMPTY_PATH ? fchmod(dfd, mode) : fchmodat(dfd, name, mode, 0))
			return -errno;
	}
	if ((cur_uid != want_uid || st->st_gid != want_gid) &&
	    fchownat(dfd, path, want_uid, want_gid, flags))
		return -errno;
	return 0;
}

/*
 * The pin directory 0700 and what is in it 0600 (directories 0700), owned by
 * UID:GID ((uid_t)-1, (gid_t)-1: owner unchanged). The pinned maps tell who
 * is connected where and let whoever opens them change the limits: nobody
 * but sluiced's own user (and root) may. BPF_OBJ_PIN makes 0600 objects
 * already; this also tightens what an older version or a hand left behind.
 */
static int pins_secure(struct ebpf *e, uid_t uid, gid_t gid)
{
	int dfd = openat(e->pinfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		int r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(e->pinfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || S_ISLNK(st.st_mode))
			continue;
		r = secure_one(e->pinfd, de->d_name, &st, S_ISDIR(st.st_mode) ? 0700 : 0600, uid,
			       gid);
		ret = ret ? ret : r;
	}
	closedir(d);
	if (fstat(e->pinfd, &st) == 0) {
		int r = secure_one(e->pinfd, ".", &st, 0700, uid, gid);

		ret = ret ? ret : r;
	}
	return ret;
}

int ebpf_set_owner(struct ebpf *e, uid_t uid, gid_t gid)
{
	int ret;

	flock(e->pinfd, LOCK_EX);
	ret = pins_secure(e, uid, gid);
	flock(e->pinfd, LOCK_UN);
	return ret;
}

int ebpf_probe(struct ebpf *e)
{
	struct sl_addr k;
	int ret = bpf_map_get_next_key(bpf_map__fd(e->skel->maps.backend_idx), NULL, &k);

	/* an empty map answers ENOENT: allowed all the same */
	return ret == 0 || ret == -ENOENT ? 0 : ret;
}

const char *ebpf_pin_path(const struct ebpf *e)
{
	return e ? e->pin : "";
}

/* ---- the safeguard ------------------------------------------------------------ */

int ebpf_check(struct ebpf *e)
{
	char path[PATH_MAX];
	int restored = 0;

	flock(e->pinfd, LOCK_EX);
	for (int h = 0; h < NHOOKS; h++) {
		struct bpf_link *l;

		if (hook_attached(e, h) != 0) /* attached, or cannot tell now */
			continue;
		link_pin_path(e, hooks[h].name + 3, path, sizeof(path));
		unlink(path);
		l = link_take(hook_prog(e, h), path, attach_cgroup, e->cgfd);
		if (!l) {
			log_error("bpf: safeguard: %s is detached from %s and cannot be attached "
				  "again: %s", hooks[h].name, e->cgroup, strerror(errno));
			continue;
		}
		bpf_link__destroy(e->links[h]);
		e->links[h] = l;
		restored++;
		log_warn("bpf: safeguard: %s was detached from %s; attached again", hooks[h].name,
			 e->cgroup);
	}
	for (unsigned i = 0; i < e->nxdp; i++) {
		struct xdp_attach *x = &e->xdp[i];
		struct bpf_link *l;

		if (xdp_attached(e, x) != 0) /* attached, or cannot tell now */
			continue;
		link_pin_path(e, "xdp_", path, sizeof(path));
		strncat(path, x->ifname, sizeof(path) - strlen(path) - 1);
		unlink(path);
		l = link_take(e->skel->progs.sl_syn_gate, path, attach_xdp, x->ifindex);
		if (!l) {
			log_error("bpf: safeguard: SYN gate is gone from %s and cannot be attached "
				  "again: %s", x->ifname, strerror(errno));
			continue;
		}
		bpf_link__destroy(x->link);
		x->link = l;
		restored++;
		log_warn("bpf: safeguard: SYN gate was removed from %s; attached again",
			 x->ifname);
	}
	/*
	 * Slots of removed backends come free once their last connection is
	 * gone. Only a process in the cgroup connecting to such an address in
	 * the instant between this check and the delete could then hold a slot
	 * that gets reused: sluiced itself no longer connects there.
	 */
	{
		int bidx = bpf_map__fd(e->skel->maps.backend_idx);
		struct sl_addr cur, next;
		void *prev = NULL;
		__u32 slot;

		while (bpf_map_get_next_key(bidx, prev, &next) == 0) {
			cur = next;
			if (bpf_map_lookup_elem(bidx, &cur, &slot) == 0 && slot < SL_MAX_BACKENDS &&
			    !__atomic_load_n(&e->backends[slot].in_use, __ATOMIC_ACQUIRE) &&
			    !__atomic_load_n(&e->backends[slot].active, __ATOMIC_ACQUIRE)) {
				bpf_map_delete_elem(bidx, &cur);
				prev = NULL;
				continue;
			}
			prev = &cur;
		}
	}
	count_attached(e);
	flock(e->pinfd, LOCK_UN);
	e->reattached += (uint64_t)restored;
	return restored;
}

/*
 * Count what is attached, on the thread that changes the links: the admin
 * thread only reads the count (the links themselves may be replaced under it).
 */
static void count_attached(struct ebpf *e)
{
	unsigned n = 0;

	for (int h = 0; h < NHOOKS; h++)
		n += hook_attached(e, h) > 0;
	for (unsigned i = 0; i < e->nxdp; i++)
		n += xdp_attached(e, &e->xdp[i]) > 0;
	atomic_store(&e->nattached, n);
}

unsigned ebpf_attached(const struct ebpf *e)
{
	return e ? atomic_load(&e->nattached) : 0;
}

unsigned ebpf_expected(const struct ebpf *e)
{
	return e ? NHOOKS + e->nxdp : 0;
}

uint64_t ebpf_reattached(const struct ebpf *e)
{
	return e ? e->reattached : 0;
}

const char *ebpf_cgroup_path(const struct ebpf *e)
{
	return e ? e->cgroup : "";
}

void ebpf_close(struct ebpf *e, int detach)
{
	char path[PATH_MAX];

	if (!e)
		return;
	if (e->pinfd >= 0)
		flock(e->pinfd, LOCK_EX);
	if (detach && e->cgfd >= 0 && !cgroup_alone(e)) {
		log_info("bpf: other processes remain in %s; programs stay attached", e->cgroup);
		detach = 0;
	}
	while (detach && e->nxdp)
		xdp_detach_one(e, e->nxdp - 1);
	for (unsigned i = 0; i < e->nxdp; i++)
		bpf_link__destroy(e->xdp[i].link);
	for (int h = 0; h < NHOOKS; h++) {
		if (!e->links[h])
			continue;
		if (detach) {
			bpf_link__detach(e->links[h]);
			link_pin_path(e, hooks[h].name + 3, path, sizeof(path));
			unlink(path);
		}
		bpf_link__destroy(e->links[h]);
	}
	if (detach)
		log_info("bpf: programs detached; maps stay pinned in %s", e->pin);
	if (e->backends)
		munmap(e->backends, e->backends_len);
	if (e->listeners)
		munmap(e->listeners, e->listeners_len);
	sluice_bpf__destroy(e->skel);
	if (e->cgfd >= 0)
		close(e->cgfd);
	if (e->pinfd >= 0) {
		flock(e->pinfd, LOCK_UN);
		close(e->pinfd);
	}
	free(e);
}

/* ---- reading the pins, for sluicectl ------------------------------------------- */

static int pinned_fd(const char *pin, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", pin, name);
	return bpf_obj_get(path);
}

static void dump_links(const char *pin, FILE *out)
{
	static const char *const names[] = { "connect4", "connect6", "sock_release" };

	fprintf(out, "programs:");
	for (unsigned i = 0; i < 3; i++) {
		char path[PATH_MAX];
		struct bpf_link_info info;
		__u32 len = sizeof(info);
		int fd;

		snprintf(path, sizeof(path), "%s/link_%s", pin, names[i]);
		fd = bpf_obj_get(path);
		memset(&info, 0, sizeof(info));
		if (fd < 0) {
			fprintf(out, " %s=none", names[i]);
			continue;
		}
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.cgroup.cgroup_id)
			fprintf(out, " %s=attached", names[i]);
		else
			fprintf(out, " %s=detached", names[i]);
		close(fd);
	}
	fprintf(out, "\n");
}

int ebpf_dump(const char *pin, FILE *out)
{
	int bidx = pinned_fd(pin, "backend_idx"), barr = pinned_fd(pin, "backends");
	int lidx = pinned_fd(pin, "listener_idx"), larr = pinned_fd(pin, "listeners");
	struct sl_addr cur, next;
	void *prev = NULL;
	uint64_t now = ebpf_now_ns();
	char text[80];
	__u32 slot;
	int ret = 0;

	if (bidx < 0 || barr < 0 || lidx < 0 || larr < 0) {
		ret = -errno;
		goto out;
	}
	fprintf(out, "pinned state in %s\n", pin);
	dump_links(pin, out);
	fprintf(out, "\n%-26s %-4s %8s %8s %7s %6s %7s %9s %10s %10s %10s %10s\n", "BACKEND", "USE",
		"ACTIVE", "MAX", "RATE", "BURST", "TOKENS", "NEXT_MS", "ADMITTED", "FULL", "RATE_REF",
		"RELEASED");
	while (bpf_map_get_next_key(bidx, prev, &next) == 0) {
		struct sl_backend b;
		char max[16] = "-";

		cur = next;
		prev = &cur;
		if (bpf_map_lookup_elem(bidx, &cur, &slot) || bpf_map_lookup_elem(barr, &slot, &b))
			continue;
		key_text(&cur, text, sizeof(text));
		if (b.max_conns)
			snprintf(max, sizeof(max), "%u", b.max_conns);
		fprintf(out, "%-26s %-4s %8u %8s %7u %6u %7llu %9.1f %10llu %10llu %10llu %10llu\n",
			text, b.in_use ? "yes" : "no", b.active, max, b.rate, b.burst,
			(unsigned long long)sl_gcra_tokens(b.bucket.tat_ns, now, b.bucket.interval_ns,
							   b.bucket.tau_ns, b.burst),
			sl_gcra_wait(b.bucket.tat_ns, now, b.bucket.interval_ns, b.bucket.tau_ns) / 1e6,
			(unsigned long long)b.admitted, (unsigned long long)b.refused_full,
			(unsigned long long)b.refused_rate, (unsigned long long)b.released);
	}
	fprintf(out, "\n%-26s %7s %6s %7s %6s %7s %10s %10s %10s\n", "SYN GATE", "RATE", "BURST",
		"SRCRATE", "SRCBUR", "PREFIX", "PASSED", "DROP_RATE", "DROP_SRC");
	prev = NULL;
	while (bpf_map_get_next_key(lidx, prev, &next) == 0) {
		struct sl_listener l;
		char pfx[16];

		cur = next;
		prev = &cur;
		if (bpf_map_lookup_elem(lidx, &cur, &slot) || bpf_map_lookup_elem(larr, &slot, &l))
			continue;
		key_text(&cur, text, sizeof(text));
		snprintf(pfx, sizeof(pfx), "/%u,/%u", l.prefix_v4, l.prefix_v6);
		fprintf(out, "%-26s %7u %6u %7u %6u %7s %10llu %10llu %10llu\n", text, l.rate,
			l.burst, l.source_rate, l.source_burst, pfx, (unsigned long long)l.passed,
			(unsigned long long)l.dropped_rate, (unsigned long long)l.dropped_source);
	}
out:
	if (bidx >= 0)
		close(bidx);
	if (barr >= 0)
		close(barr);
	if (lidx >= 0)
		close(lidx);
	if (larr >= 0)
		close(larr);
	return ret;
}
