// SPDX-License-Identifier: MIT
#include "proxy/backend.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/log.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct backend *registry;

struct backend *backend_get(const struct cfg_addr *addr)
{
	struct backend *be;

	pthread_mutex_lock(&registry_lock);
	for (be = registry; be; be = be->next) {
		if (strcmp(be->addr.text, addr->text) == 0) {
			atomic_fetch_add(&be->refs, 1);
			goto out;
		}
	}
	be = aligned_alloc(64, sizeof(*be));
	if (!be)
		goto out;
	memset(be, 0, sizeof(*be));
	atomic_init(&be->refs, 1);
	atomic_init(&be->fleet_max, UINT32_MAX);
	atomic_init(&be->fleet_rate, UINT32_MAX);
	atomic_init(&be->fleet_burst, UINT32_MAX);
	be->addr = *addr;
	be->next = registry;
	registry = be;
out:
	pthread_mutex_unlock(&registry_lock);
	return be;
}

void backend_put(struct backend *be)
{
	struct backend **pp;

	if (!be || atomic_fetch_sub(&be->refs, 1) != 1)
		return;
	pthread_mutex_lock(&registry_lock);
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == be) {
			*pp = be->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	free(be->learn);
	free(be);
}

void backend_foreach(void (*fn)(struct backend *be, void *arg), void *arg)
{
	pthread_mutex_lock(&registry_lock);
	for (struct backend *be = registry; be; be = be->next)
		fn(be, arg);
	pthread_mutex_unlock(&registry_lock);
}

/*
 * Few entries (one per backend checked at a time), written by the main
 * thread only: the backend pointer is published before the port, and
 * cleared after, so a worker never pairs a port with a stale backend.
 */
#define SYNTH_SLOTS 256
static struct {
	_Atomic uint32_t port; /* 0: free */
	struct backend *_Atomic be;
} synth[SYNTH_SLOTS];

int backend_synth_register(uint16_t port, struct backend *be)
{
	for (unsigned i = 0; i < SYNTH_SLOTS; i++) {
		if (atomic_load(&synth[i].port))
			continue;
		atomic_store_explicit(&synth[i].be, be, memory_order_relaxed);
		atomic_store_explicit(&synth[i].port, port, memory_order_release);
		return 0;
	}
	return -ENOSPC;
}

void backend_synth_unregister(uint16_t port)
{
	for (unsigned i = 0; i < SYNTH_SLOTS; i++) {
		if (atomic_load(&synth[i].port) == port) {
			atomic_store_explicit(&synth[i].port, 0, memory_order_release);
			atomic_store_explicit(&synth[i].be, NULL, memory_order_relaxed);
		}
	}
}

struct backend *backend_synth_lookup(uint16_t port)
{
	for (unsigned i = 0; i < SYNTH_SLOTS; i++)
		if (atomic_load_explicit(&synth[i].port, memory_order_acquire) == port)
			return atomic_load_explicit(&synth[i].be, memory_order_relaxed);
	return NULL;
}

void backend_connect_ok(struct backend *be, unsigned worker)
{
	atomic_fetch_add_explicit(&be->ws[worker].connects, 1, memory_order_relaxed);
	if (atomic_load_explicit(&be->fails, memory_order_relaxed)) {
		atomic_store_explicit(&be->fails, 0, memory_order_relaxed);
		atomic_store_explicit(&be->down_until_ms, 0, memory_order_relaxed);
	}
}

void backend_connect_failed(struct backend *be, unsigned worker, uint64_t now_ms)
{
	atomic_fetch_add_explicit(&be->ws[worker].failures, 1, memory_order_relaxed);
	uint32_t fails = atomic_fetch_add_explicit(&be->fails, 1, memory_order_relaxed) + 1;
	uint32_t fall = atomic_load_explicit(&be->fall, memory_order_relaxed);

	if (atomic_load_explicit(&be->checked, memory_order_relaxed)) {
		/* passive health: down until the active checks see it rise */
		if (fails >= (fall ? fall : BACKEND_FAIL_DOWN) &&
		    !atomic_exchange_explicit(&be->hc_down, 1, memory_order_relaxed))
			log_warn("health: backend %s down after %u failed connects", be->addr.text,
				 fails);
		return;
	}
	/*
	 * Circuit breaker: after BACKEND_FAIL_DOWN failures in a row the
	 * backend gets no new clients for BACKEND_DOWN_MS; then one more try
	 * is let through (the counter stays high, so a failure re-arms it at
	 * once and a success clears it).
	 */
	if (fails >= BACKEND_FAIL_DOWN)
		atomic_store_explicit(&be->down_until_ms, now_ms + BACKEND_DOWN_MS,
				      memory_order_relaxed);
}

uint64_t backend_sum(const struct backend *be, size_t offset)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < CFG_MAX_WORKERS; i++) {
		const _Atomic uint64_t *p = (const void *)((const char *)&be->ws[i] + offset);

		sum += atomic_load_explicit(p, memory_order_relaxed);
	}
	return sum;
}

static _Atomic uint32_t ports_per_source = 28232; /* Linux's default range, 32768..60999 */

uint32_t backend_ports(void)
{
	return atomic_load_explicit(&ports_per_source, memory_order_relaxed);
}

void backend_ports_load(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	unsigned lo, hi;

	if (!f)
		return;
	if (fscanf(f, "%u %u", &lo, &hi) == 2 && hi >= lo)
		atomic_store(&ports_per_source, hi - lo + 1);
	fclose(f);
}

unsigned backend_src_slot(struct backend *be, const struct cfg_addr *a)
{
	unsigned i;

	for (i = 1; i <= be->nsrc; i++)
		if (be->src[i].len == a->len && memcmp(&be->src[i].addr, &a->ss, a->len) == 0)
			return i;
	if (i >= BE_SRC_SLOTS)
		return 0;
	memcpy(&be->src[i].addr, &a->ss, a->len);
	be->src[i].len = a->len;
	be->nsrc = i;
	return i;
}
