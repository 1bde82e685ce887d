// SPDX-License-Identifier: MIT
/*
 * sluiced — the main thread. It loads the config, opens the listening
 * sockets, starts the workers and then only waits on its own ring: signals
 * arrive there through a signalfd (the handlers-do-nothing rule holds
 * trivially: there are no handlers), workers report their exit there.
 *
 * SIGHUP: build a complete new snapshot (config parsed and validated, new
 * sockets bound, backends resolved); only if every part succeeded, hand it
 * to each worker with IORING_OP_MSG_RING. Workers switch over between two
 * completions; connections keep the snapshot they were accepted under.
 * SIGTERM/SIGINT: workers stop accepting and wait up to drain.grace_s for
 * their connections, then close the rest; sluiced exits 0 when all are done.
 */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "proxy/daemon.h"
#include "proxy/fleet.h"
#include "proxy/health.h"
#include "proxy/learn.h"
#include "proxy/privs.h"
#include "proxy/sdnotify.h"
#include "version.h"
#include "proxy/stats.h"
#include "proxy/udata.h"
#include "userspace/admin.h"
#include "userspace/config.h"
#include "userspace/tlsctx.h"
#include "userspace/log.h"

struct main_loop {
	struct io_uring ring;
	int sfd;
	struct signalfd_siginfo si;
	unsigned exited;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sluiced -c FILE [-t] [-l LEVEL]\n"
		   "  -c FILE   configuration file (libconfig syntax)\n"
		   "  -t        validate the configuration and exit: 0 valid, 1 not\n"
		   "  -l LEVEL  log level: debug, info, warn, error (default info)\n"
		   "  -V        print the version and exit\n"
		   "signals: SIGHUP reloads the file, SIGTERM/SIGINT stop gracefully\n");
}

static void print_errors(const char *errors)
{
	/* one log line per error line, so each keeps its file:line: prefix */
	const char *p = errors;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		log_error("config: %.*s", n, p);
		p += n + (nl ? 1 : 0);
	}
}

static void raise_nofile(void)
{
	struct rlimit rl;

	/* every proxied connection holds two descriptors */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int send_msg(struct main_loop *m, struct worker *w, enum worker_msg type, void *ptr)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&m->ring);

	if (!sqe) {
		io_uring_submit(&m->ring);
		sqe = io_uring_get_sqe(&m->ring);
	}
	io_uring_prep_msg_ring(sqe, worker_ring_fd(w), type, ud_pack(ptr, UD_MSG), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Put the kernel limits of S's config in force and point each backend at
 * its kernel entry. Before S is served: on failure S is discarded.
 */
static int apply_limits(struct daemon *d, struct snapshot *s, char *err, size_t errlen)
{
	int ret;

	if (!d->ebpf)
		return 0;
	ret = ebpf_apply(d->ebpf, s->cfg, err, errlen);
	if (ret)
		return ret;
	for (unsigned i = 0; i < s->npools; i++)
		for (unsigned j = 0; j < s->pools[i].nbe; j++) {
			struct backend *be = s->pools[i].be[j];

			atomic_store_explicit(&be->kb, ebpf_backend(d->ebpf, &be->addr),
					      memory_order_release);
		}
	return 0;
}

/*
 * New connections per second the pools of S can take in all: the pace a
 * drain must not exceed, or the reconnects it causes would queue up. 0 when
 * some backend has no rate limit (nothing to bound it by).
 */
static double admit_capacity(const struct snapshot *s)
{
	double sum = 0;

	for (unsigned i = 0; i < s->npools; i++)
		for (unsigned j = 0; j < s->pools[i].nbe; j++) {
			const struct cfg_server *sv = &s->pools[i].cfg->servers[j];
			uint32_t rate = sv->rate_auto ? atomic_load(&s->pools[i].be[j]->learned.rate)
						      : sv->rate;

			if (!rate)
				return 0;
			sum += rate;
		}
	return sum;
}

/* Ask every worker to drain, paced: all of it, or a backend's, or a listener's. */
static void send_drain(struct daemon *d, struct main_loop *m, enum worker_msg type,
		       enum drain_kind kind, const void *target, double cap)
{
	const struct sl_config *cfg = d->cur->cfg;

	for (unsigned i = 0; i < d->nworkers; i++) {
		struct drain_req *r = aligned_alloc(16, sizeof(*r));

		if (!r) {
			log_error("drain: out of memory");
			continue;
		}
		*r = (struct drain_req){ .kind = kind, .target = target,
					 .period_s = cfg->drain.period_s, .cap_per_s = cap,
					 .nworkers = d->nworkers, .grace_s = cfg->drain.grace_s };
		send_msg(m, d->workers[i], type, r);
	}
	io_uring_submit(&m->ring);
}

/* What OLD had and NEW has not: drained, at the drain pace. */
static void drain_removed(struct daemon *d, struct main_loop *m, const struct snapshot *old,
			  const struct snapshot *new)
{
	for (unsigned i = 0; i < old->npools; i++) {
		for (unsigned j = 0; j < old->pools[i].nbe; j++) {
			const struct backend *be = old->pools[i].be[j];
			int kept = 0;

			for (unsigned k = 0; k < new->npools && !kept; k++)
				for (unsigned l = 0; l < new->pools[k].nbe && !kept; l++)
					kept = new->pools[k].be[l] == be;
			if (!kept) {
				log_info("reload: backend %s removed: draining its connections",
					 be->addr.text);
				send_drain(d, m, MSG_DRAIN, DRAIN_BACKEND, be, admit_capacity(new));
			}
		}
	}
	for (unsigned i = 0; i < old->nlisteners; i++) {
		const struct lsock *ls = old->listeners[i].ls;

		if (!snapshot_find_lsock((struct snapshot *)new, ls)) {
			log_info("reload: listener %s removed: draining its connections",
				 old->listeners[i].cfg->name);
			send_drain(d, m, MSG_DRAIN, DRAIN_LISTENER, ls, admit_capacity(new));
		}
	}
}

static int level_from_cli;

/* Log level, and the access log (re)opened: a reload is how it is rotated. */
static void apply_logging(struct daemon *d, const struct sl_config *cfg)
{
	int ret;

	if (!level_from_cli)
		log_set_level((enum log_level)cfg->log.level);
	ret = log_access_open(cfg->log.access);
	if (ret)
		log_error("log: access log %s: %s", cfg->log.access, strerror(-ret));
}

static void reload(struct daemon *d, struct main_loop *m)
{
	char err[512], *errors = NULL, token[ADMIN_TOKEN_MAX];
	struct sl_config *cfg;
	struct snapshot *s, *old = d->cur;

	log_info("reload: reading %s", d->config_path);
	err[0] = 0;
	cfg = config_load(d->config_path, &errors);
	if (!cfg) {
		print_errors(errors);
		snprintf(err, sizeof(err), "%s", errors ? errors : "cannot read the config");
		free(errors);
		goto fail;
	}
	if (cfg->workers != d->nworkers)
		log_warn("reload: workers = %u takes effect at restart; running %u", cfg->workers,
			 d->nworkers);
	if (cfg->buffers.count != old->cfg->buffers.count ||
	    cfg->buffers.size != old->cfg->buffers.size)
		log_warn("reload: buffers take effect at restart");
	if (strcmp(cfg->user, old->cfg->user) || strcmp(cfg->group, old->cfg->group))
		log_warn("reload: user and group take effect at restart");
	if (cfg->admin.enabled != old->cfg->admin.enabled ||
	    strcmp(cfg->admin.addr.text, old->cfg->admin.addr.text))
		log_warn("reload: admin.address takes effect at restart (admin.token_file at once)");
	/* read by the user sluiced runs as now: it must be able to */
	if (admin_token_load(cfg, token, sizeof(token), err, sizeof(err))) {
		log_error("reload: %s", err);
		config_free(cfg);
		goto fail;
	}
	if (cfg->bpf.enabled != old->cfg->bpf.enabled ||
	    strcmp(cfg->bpf.pin_path, old->cfg->bpf.pin_path) ||
	    strcmp(cfg->bpf.cgroup, old->cfg->bpf.cgroup)) {
		snprintf(err, sizeof(err), "the bpf settings take effect at restart");
		log_error("reload: %s; change them back or restart", err);
		config_free(cfg);
		goto fail;
	}
	s = snapshot_build(cfg, old, d->nworkers, old->gen + 1, err, sizeof(err));
	if (!s) {
		log_error("reload: %s", err);
		config_free(cfg);
		goto fail;
	}
	if (apply_limits(d, s, err, sizeof(err))) {
		log_error("reload: %s", err);
		snapshot_discard(s);
		goto fail;
	}
	pthread_mutex_lock(&d->lock);
	d->cur = s;
	pthread_mutex_unlock(&d->lock);
	admin_set_token(d->admin, token);
	explicit_bzero(token, sizeof(token));
	apply_logging(d, cfg);
	for (unsigned i = 0; i < d->nworkers; i++) {
		snapshot_get(s);
		send_msg(m, d->workers[i], MSG_ADOPT, s);
	}
	io_uring_submit(&m->ring);
	drain_removed(d, m, old, s);
	health_sync(d->health, s, mono_ms());
	fleet_configure(d->fleet, s);
	backend_ports_load();
	learn_tick(s, mono_ms());
	health_tick(d->health, mono_ms());
	snapshot_put(old);
	atomic_fetch_add(&d->reloads_ok, 1);
	atomic_store(&d->last_reload_ok, (uint64_t)time(NULL));
	log_info("reload: generation %llu in service: %u listeners, %u pools",
		 (unsigned long long)s->gen, s->nlisteners, s->npools);
	return;
fail:
	pthread_mutex_lock(&d->lock);
	snprintf(d->last_reload_error, sizeof(d->last_reload_error), "%s", err);
	pthread_mutex_unlock(&d->lock);
	atomic_fetch_add(&d->reloads_failed, 1);
	log_error("reload: failed; still serving generation %llu", (unsigned long long)old->gen);
}

static void stop(struct daemon *d, struct main_loop *m)
{
	if (atomic_exchange(&d->stopping, 1)) {
		log_info("stop: already stopping");
		return;
	}
	log_info("stop: closing listeners; connections drained over %u s, then %u s of grace",
		 d->cur->cfg->drain.period_s, d->cur->cfg->drain.grace_s);
	sdnotify_send("STOPPING=1");
	send_drain(d, m, MSG_STOP, DRAIN_ALL, NULL, admit_capacity(d->cur));
}

static void arm_signal_read(struct main_loop *m)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&m->ring);

	io_uring_prep_read(sqe, m->sfd, &m->si, sizeof(m->si), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(m, UD_SIGNAL));
}

static int main_loop_run(struct daemon *d, struct main_loop *m)
{
	uint64_t next_check = mono_ms() + 1000, next_watch = next_check;

	arm_signal_read(m);
	while (!(d->stopping && m->exited == d->nworkers)) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret = io_uring_submit_and_wait_timeout(&m->ring, &cqe, 1, &ts, NULL);

		if (ret < 0 && ret != -EINTR && ret != -ETIME) {
			log_error("main: io_uring: %s", strerror(-ret));
			return 1;
		}
		/* the safeguard: once a second, programs still attached? */
		if (d->ebpf && mono_ms() >= next_check) {
			next_check = mono_ms() + 1000;
			ebpf_check(d->ebpf);
		}
		if (!d->stopping) {
			learn_tick(d->cur, mono_ms());
			fleet_tick(d->fleet, mono_ms());
			health_tick(d->health, mono_ms());
			if (mono_ms() >= next_watch) {
				next_watch = mono_ms() + 1000;
				health_watch(d->health, d->cur, mono_ms());
			}
		}
		io_uring_for_each_cqe(&m->ring, head, cqe)
		{
			n++;
			switch (ud_op(cqe->user_data)) {
			case UD_SIGNAL:
				if (cqe->res == (int)sizeof(m->si)) {
					if (m->si.ssi_signo == SIGHUP)
						reload(d, m);
					else
						stop(d, m);
				}
				arm_signal_read(m);
				break;
			case UD_MSG:
				if (cqe->res == MSG_WORKER_EXIT)
					m->exited++;
				break;
			case UD_PROBE_CONNECT:
			case UD_PROBE_SEND:
			case UD_PROBE_RECV:
				health_on_cqe(d->health, ud_ptr(cqe->user_data), ud_op(cqe->user_data),
					      cqe->res, mono_ms());
				break;
			case UD_FLEET_READ:
			case UD_FLEET_WRITE:
				fleet_on_cqe(d->fleet, ud_ptr(cqe->user_data), ud_op(cqe->user_data),
					     cqe->res);
				break;
			default:
				break;
			}
		}
		io_uring_cq_advance(&m->ring, n);
	}
	return 0;
}

/*
 * Which path TLS records take. Kernel TLS offload needs the kernel's "tls"
 * ULP; sluice encrypts in its workers (OpenSSL over io_uring buffers) either
 * way, and says which one the kernel would have allowed.
 */
static void log_tls_path(const struct snapshot *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->nlisteners; i++)
		n += s->listeners[i].tls != NULL;
	for (unsigned i = 0; i < s->npools; i++)
		n += s->pools[i].tls_ctx != NULL;
	if (!n)
		return;
	if (tlsctx_ktls_available())
		log_info("tls: kernel TLS is available but not used: records are encrypted in the "
			 "workers (OpenSSL over io_uring buffers)");
	else
		log_info("tls: kernel TLS not available (no \"tls\" TCP ULP: CONFIG_TLS off or "
			 "module not loaded): records are encrypted in the workers (OpenSSL over "
			 "io_uring buffers)");
}

int main(int argc, char **argv)
{
	static struct daemon d = { .lock = PTHREAD_MUTEX_INITIALIZER };
	static struct main_loop m;
	const char *path = NULL;
	int test_only = 0, opt, ret = 1;
	char *errors = NULL, err[512];
	struct sl_config *cfg;
	struct admin *admin = NULL;
	enum log_level level;
	sigset_t mask;

	while ((opt = getopt(argc, argv, "c:tl:Vh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		case 'l':
			if (log_level_parse(optarg, &level)) {
				fprintf(stderr, "sluiced: -l: unknown level \"%s\"\n", optarg);
				return 1;
			}
			log_set_level(level);
			level_from_cli = 1;
			break;
		case 'V':
			printf("sluiced %s\n", SLUICE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 1;
	}

	cfg = config_load(path, &errors);
	if (test_only) {
		if (cfg && tlsctx_check(cfg, &errors)) {
			config_free(cfg);
			cfg = NULL;
		}
		if (!cfg) {
			fputs(errors ? errors : "config: cannot load\n", stderr);
			free(errors);
			return 1;
		}
		printf("%s: configuration is valid (%u listeners, %u pools, %u workers)\n", path,
		       cfg->nlisteners, cfg->npools, cfg->workers);
		config_free(cfg);
		return 0;
	}
	if (!cfg) {
		print_errors(errors);
		free(errors);
		return 1;
	}

	if (cfg->log.syslog)
		log_to_syslog("sluiced");
	if (!level_from_cli)
		log_set_level((enum log_level)cfg->log.level);
	/* signals are read from the main ring; no thread may take them */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	d.config_path = path;
	d.nworkers = cfg->workers;
	d.start_time = (uint64_t)time(NULL);
	if (cfg->bpf.enabled) {
		/* first: the cgroup must be joined before any thread or socket exists */
		d.ebpf = ebpf_open(cfg, err, sizeof(err));
		if (!d.ebpf) {
			log_error("start: %s", err);
			config_free(cfg);
			return 1;
		}
	} else {
		log_warn("start: bpf.enabled = false: no kernel-enforced limits");
	}
	/*
	 * Root's part is done: from here on sluiced runs as cfg->user with a
	 * few capabilities (proxy/privs.h), before any thread, socket or log
	 * file exists, so all of them belong to that user.
	 */
	if (privs_drop(cfg, d.ebpf, err, sizeof(err))) {
		log_error("start: %s", err);
		ebpf_close(d.ebpf, 1);
		config_free(cfg);
		return 1;
	}
	apply_logging(&d, cfg);
	d.cur = snapshot_build(cfg, NULL, d.nworkers, 1, err, sizeof(err));
	if (!d.cur || apply_limits(&d, d.cur, err, sizeof(err))) {
		log_error("start: %s", err);
		if (d.cur)
			snapshot_discard(d.cur);
		else
			config_free(cfg);
		ebpf_close(d.ebpf, 1);
		return 1;
	}
	atomic_store(&d.last_reload_ok, d.start_time);
	m.sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	ret = io_uring_queue_init(256, &m.ring, 0);
	if (m.sfd < 0 || ret) {
		log_error("start: signalfd/io_uring: %s", strerror(ret ? -ret : errno));
		return 1;
	}
	for (unsigned i = 0; i < d.nworkers; i++) {
		snapshot_get(d.cur);
		d.workers[i] = worker_start(i, d.cur, m.ring.ring_fd);
		if (!d.workers[i]) {
			log_error("start: worker %u: %s", i, strerror(errno));
			/* the ones already running stop like on SIGTERM */
			d.nworkers = i;
			stop(&d, &m);
			main_loop_run(&d, &m);
			ret = 1;
			goto out;
		}
	}
	d.health = health_new(&m.ring, d.ebpf);
	if (!d.health) {
		log_error("start: out of memory");
		ret = 1;
		goto out;
	}
	health_sync(d.health, d.cur, mono_ms());
	backend_ports_load();
	d.fleet = fleet_new(&m.ring);
	if (!d.fleet) {
		log_error("start: out of memory");
		ret = 1;
		goto out;
	}
	fleet_configure(d.fleet, d.cur);
	learn_tick(d.cur, mono_ms());
	if (d.cur->cfg->admin.enabled) {
		char token[ADMIN_TOKEN_MAX];

		if (admin_token_load(d.cur->cfg, token, sizeof(token), err, sizeof(err)) == 0)
			admin = admin_start(&d.cur->cfg->admin.addr, token, stats_handle, &d, err,
					    sizeof(err));
		explicit_bzero(token, sizeof(token));
		if (!admin)
			log_warn("admin: %s; running without the admin endpoint", err);
	}
	d.admin = admin;
	log_info("start: sluiced %s, %u workers, %u listeners, %u pools, config %s",
		 SLUICE_VERSION, d.nworkers, d.cur->nlisteners, d.cur->npools, path);
	log_tls_path(d.cur);
	sdnotify_send("READY=1");
	ret = main_loop_run(&d, &m);
	log_info("stop: all connections closed, exiting");
out:
	admin_stop(admin);
	for (unsigned i = 0; i < d.nworkers; i++)
		worker_join(d.workers[i]);
	health_free(d.health);
	fleet_free(d.fleet);
	snapshot_put(d.cur);
	/* every connection is closed by now: the programs may go */
	ebpf_close(d.ebpf, 1);
	io_uring_queue_exit(&m.ring);
	close(m.sfd);
	return ret ? 1 : 0;
}
