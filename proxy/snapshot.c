// SPDX-License-Identifier: MIT
#include "proxy/snapshot.h"
#include "userspace/tlsctx.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int listen_socket(const struct cfg_listener *l)
{
	int fd, one = 1, err;

	fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    /* accepted sockets inherit it: we forward what we get, at once */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		goto fail;
	if (l->addr.ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) ||
	    listen(fd, (int)l->backlog))
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

static void lsock_close_fds(struct lsock *ls)
{
	for (unsigned i = 0; i < ls->nfds; i++)
		if (ls->fds[i] >= 0)
			close(ls->fds[i]);
}

static struct lsock *lsock_open(const struct cfg_listener *l, unsigned nworkers, char *err,
				size_t errlen)
{
	struct lsock *ls = calloc(1, sizeof(*ls));

	if (!ls) {
		snprintf(err, errlen, "listener %s: out of memory", l->name);
		return NULL;
	}
	atomic_init(&ls->refs, 1);
	ls->addr = l->addr;
	for (unsigned i = 0; i < nworkers; i++) {
		int fd = listen_socket(l);

		if (fd < 0) {
			snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name,
				 l->addr.text, strerror(-fd));
			lsock_close_fds(ls);
			free(ls);
			return NULL;
		}
		ls->fds[ls->nfds++] = fd;
	}
	return ls;
}

static void lsock_put(struct lsock *ls, int close_fds)
{
	if (!ls || atomic_fetch_sub(&ls->refs, 1) != 1)
		return;
	/* fds handed to workers are theirs to close; only never-used ones are ours */
	if (close_fds)
		lsock_close_fds(ls);
	free(ls);
}

static struct lsock *lsock_find(const struct snapshot *prev, const struct cfg_addr *addr)
{
	if (!prev)
		return NULL;
	for (unsigned i = 0; i < prev->nlisteners; i++) {
		struct lsock *ls = prev->listeners[i].ls;

		if (strcmp(ls->addr.text, addr->text) == 0)
			return ls;
	}
	return NULL;
}

static void pool_stats_put(struct pool_stats *ps)
{
	if (ps && atomic_fetch_sub(&ps->refs, 1) == 1)
		free(ps);
}

/* PREV's counters for a pool of this name, or new ones. */
static struct pool_stats *pool_stats_get(const struct snapshot *prev, const char *name)
{
	struct pool_stats *ps;

	for (unsigned i = 0; prev && i < prev->npools; i++) {
		ps = prev->pools[i].stats;
		if (strcmp(ps->name, name) == 0) {
			atomic_fetch_add(&ps->refs, 1);
			return ps;
		}
	}
	ps = calloc(1, sizeof(*ps));
	if (ps) {
		atomic_init(&ps->refs, 1);
		snprintf(ps->name, sizeof(ps->name), "%s", name);
	}
	return ps;
}

static void listener_stats_put(struct listener_stats *ls)
{
	if (ls && atomic_fetch_sub(&ls->refs, 1) == 1) {
		free(ls->learn);
		free(ls);
	}
}

static struct listener_stats *listener_stats_get(const struct snapshot *prev, const char *name)
{
	struct listener_stats *ls;

	for (unsigned i = 0; prev && i < prev->nlisteners; i++) {
		ls = prev->listeners[i].stats;
		if (strcmp(ls->name, name) == 0) {
			atomic_fetch_add(&ls->refs, 1);
			return ls;
		}
	}
	ls = calloc(1, sizeof(*ls));
	if (ls) {
		atomic_init(&ls->refs, 1);
		snprintf(ls->name, sizeof(ls->name), "%s", name);
	}
	return ls;
}

/* TLS contexts, their first error line into ERR. */
static struct tls_server *tls_build_server(const struct sl_config *cfg, unsigned i, char *err,
					   size_t errlen)
{
	char *e = NULL;
	struct tls_server *ts = tlsctx_server_new(&cfg->listeners[i], i, cfg->path, &e);

	if (!ts)
		snprintf(err, errlen, "%.*s", e ? (int)strcspn(e, "\n") : 13,
			 e ? e : "out of memory");
	free(e);
	return ts;
}

static SSL_CTX *tls_build_client(const struct sl_config *cfg, unsigned i, char *err,
				 size_t errlen)
{
	char *e = NULL;
	SSL_CTX *ctx = tlsctx_client_new(&cfg->pools[i], i, cfg->path, &e);

	if (!ctx)
		snprintf(err, errlen, "%.*s", e ? (int)strcspn(e, "\n") : 13,
			 e ? e : "out of memory");
	free(e);
	return ctx;
}

static void snapshot_free(struct snapshot *s, int close_new_fds)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->npools; i++) {
		for (unsigned j = 0; j < s->pools[i].nbe; j++)
			backend_put(s->pools[i].be[j]);
		free(s->pools[i].be);
		free(s->pools[i].src);
		pool_stats_put(s->pools[i].stats);
		SSL_CTX_free(s->pools[i].tls_ctx);
	}
	for (unsigned i = 0; i < s->nlisteners; i++) {
		lsock_put(s->listeners[i].ls, close_new_fds);
		listener_stats_put(s->listeners[i].stats);
		tlsctx_server_free(s->listeners[i].tls);
	}
	free(s->pools);
	free(s->listeners);
	config_free(s->cfg);
	free(s);
}

struct snapshot *snapshot_build(struct sl_config *cfg, const struct snapshot *prev,
				unsigned nworkers, uint64_t gen, char *err, size_t errlen)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	unsigned i, j;

	if (!s)
		goto oom;
	atomic_init(&s->refs, 1);
	s->gen = gen;
	s->pools = calloc(cfg->npools, sizeof(*s->pools));
	s->listeners = calloc(cfg->nlisteners, sizeof(*s->listeners));
	if (!s->pools || !s->listeners)
		goto oom;
	for (i = 0; i < cfg->npools; i++) {
		struct snap_pool *p = &s->pools[i];

		p->cfg = &cfg->pools[i];
		p->index = i;
		p->be = calloc(p->cfg->nservers, sizeof(*p->be));
		p->stats = pool_stats_get(prev, p->cfg->name);
		s->npools++;
		if (!p->be || !p->stats)
			goto oom;
		for (unsigned w = 0; w < CFG_MAX_WORKERS; w++)
			atomic_init(&p->heads[w], UINT64_MAX);
		p->src = calloc(p->cfg->nservers, sizeof(*p->src));
		if (!p->src)
			goto oom;
		for (j = 0; j < p->cfg->nservers; j++) {
			p->be[j] = backend_get(&p->cfg->servers[j].addr);
			if (!p->be[j])
				goto oom;
			p->nbe++;
			for (unsigned k = 0; k < p->cfg->nsources; k++)
				p->src[j][k] = p->cfg->sources[k].ss.ss_family ==
						       p->be[j]->addr.ss.ss_family
						       ? (uint8_t)backend_src_slot(p->be[j], &p->cfg->sources[k])
						       : BE_SRC_NONE;
		}
		if (p->cfg->tls.enabled && !(p->tls_ctx = tls_build_client(cfg, i, err, errlen)))
			goto fail;
	}
	for (i = 0; i < cfg->nlisteners; i++) {
		struct snap_listener *l = &s->listeners[i];
		struct lsock *ls = lsock_find(prev, &cfg->listeners[i].addr);

		l->cfg = &cfg->listeners[i];
		l->pool = &s->pools[l->cfg->pool];
		l->stats = listener_stats_get(prev, l->cfg->name);
		/* counted now, so a failure below frees what this entry holds */
		s->nlisteners++;
		if (!l->stats)
			goto oom;
		if (l->cfg->tls.enabled) {
			const struct cfg_tls *t = &l->cfg->tls;

			l->tls = tls_build_server(cfg, i, err, errlen);
			if (!l->tls)
				goto fail;
			sl_bucket_params(t->full_per_s, t->full_burst, &l->hs_interval[HS_FULL],
					 &l->hs_tau[HS_FULL]);
			sl_bucket_params(t->resumed_per_s, t->resumed_burst,
					 &l->hs_interval[HS_RESUMED], &l->hs_tau[HS_RESUMED]);
		}
		if (ls && ls->nfds == nworkers) {
			atomic_fetch_add(&ls->refs, 1);
		} else {
			ls = lsock_open(l->cfg, nworkers, err, errlen);
			if (!ls)
				goto fail;
		}
		l->ls = ls;
	}
	s->cfg = cfg;
	return s;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	if (s) {
		/*
		 * Sockets opened for this snapshot were never handed out: drop
		 * our references, closing what only we held. Reused ones keep
		 * their other references and stay open.
		 */
		s->cfg = NULL;
		snapshot_free(s, 1);
	}
	return NULL;
}

void snapshot_discard(struct snapshot *s)
{
	snapshot_free(s, 1);
}

void snapshot_put(struct snapshot *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		snapshot_free(s, 0);
}

struct snap_listener *snapshot_find_lsock(struct snapshot *s, const struct lsock *ls)
{
	for (unsigned i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].ls == ls)
			return &s->listeners[i];
	return NULL;
}
