/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The kernel/user ABI of sluice's BPF programs: map keys and values, limits,
 * the errnos a refused connect() returns. Included by the BPF programs (after
 * vmlinux.h) and by userspace (after <linux/types.h>). Every type has a fixed
 * layout with explicit padding; tests/unit/test_bpf_abi.c checks the sizes.
 *
 * Maps (pinned under bpf.pin_path, so their state survives a restart):
 *   backend_idx   hash   struct sl_addr → __u32 slot in `backends`
 *   backends      array  struct sl_backend [SL_MAX_BACKENDS], mmap-able:
 *                        the ledger, the token bucket, counters
 *   listener_idx  hash   struct sl_addr → __u32 slot in `listeners`
 *   listeners     array  struct sl_listener [SL_MAX_LISTENERS], mmap-able
 *   src_buckets   LRU    struct sl_src_key → struct sl_src (per source prefix)
 *   sk_slots      socket storage: struct sl_sk, the slot a socket holds
 */
#ifndef SLUICE_BPF_ABI_H
#define SLUICE_BPF_ABI_H

#define SL_MAX_BACKENDS 4096
#define SL_MAX_LISTENERS 256
#define SL_SRC_ENTRIES 65536

/*
 * connect() to a backend the kernel refuses: the errno says why.
 * EUSERS: the backend holds max_conns connections from this cgroup.
 * ETIME:  the backend's new-connection bucket is empty; a token is due at
 *         the time sl_gcra_wait() computes from the shared state.
 */
#define SL_ERR_FULL 87 /* EUSERS */
#define SL_ERR_RATE 62 /* ETIME */

#define SL_AF_INET 2
#define SL_AF_INET6 10

/*
 * SO_MARK of sluice's own health-check and agent sockets: the backend gate
 * lets them through without a slot or a token, so a backend at its limits
 * is not judged down by its own limits.
 */
#define SL_MARK_CHECK 0x51ce0001u

/* An IP address and TCP port; IPv4 in ip[0], the rest zero. Network order. */
struct sl_addr {
	__u32 ip[4];
	__u16 port;
	__u16 family;
};

/*
 * A token bucket as GCRA state: `tat` is the theoretical arrival time of the
 * next admission; admission at `now` is allowed while tat <= now + tau. One
 * 64-bit word of state, so claims are a single compare-and-swap. See
 * bpf/bucket.h. interval_ns == 0 means no rate limit.
 */
struct sl_bucket {
	__u64 interval_ns; /* 1e9 / rate */
	__u64 tau_ns;      /* (burst - 1) * interval: how far ahead tat may run */
	__u64 tat_ns;
};

struct sl_backend {
	__u32 max_conns; /* 0: no limit */
	__u32 active;    /* the ledger: sockets in the cgroup holding a slot */
	struct sl_bucket bucket;
	__u64 admitted;     /* connects let through */
	__u64 refused_full; /* connects refused: max_conns reached */
	__u64 refused_rate; /* connects refused: no token */
	__u64 released;     /* slots given back */
	__u32 rate, burst;  /* in force, for display (and, with SL_BF_AUTO, to resume from) */
	__u32 in_use;       /* 1 while a config names this slot */
	__u32 flags;        /* SL_BF_*; the BPF programs do not read it */
};

/* sl_backend.flags: the rate is learned (rate = "auto"), not configured. */
#define SL_BF_AUTO 1u

struct sl_listener {
	struct sl_bucket bucket;     /* all SYNs to this listener */
	struct sl_bucket src;        /* template for each source prefix: interval, tau */
	__u8 prefix_v4, prefix_v6;   /* bits of the source address that make a prefix */
	__u8 pad[2];
	__u32 in_use;
	__u64 passed;          /* SYNs let through */
	__u64 dropped_rate;    /* dropped: listener bucket empty */
	__u64 dropped_source;  /* dropped: the source prefix's bucket empty */
	__u32 rate, burst, source_rate, source_burst; /* as configured */
};

struct sl_src_key {
	__u32 listener; /* slot */
	__u32 family;
	__u32 ip[4];    /* masked to the prefix */
};

struct sl_src {
	__u64 tat_ns;
};

/* What a socket holds: 1 + its backend slot, or 0. */
struct sl_sk {
	__u32 slot1;
	__u32 pad;
};

#endif
