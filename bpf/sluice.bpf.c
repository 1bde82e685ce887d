// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * sluice's kernel side.
 *
 * Backend gate (cgroup/connect4, cgroup/connect6, cgroup/sock_release),
 * attached to the cgroup sluiced runs in. A connect() to a configured backend
 * must take a slot of the backend's ledger (at most max_conns) and a token of
 * its new-connection bucket; if either is missing the kernel refuses the
 * connect with SL_ERR_FULL or SL_ERR_RATE, whatever the process doing it
 * believes. The slot is recorded in the socket's local storage and given
 * back by the sock_release program when the socket is closed — by sluiced,
 * or by the kernel when the process dies — so it is released exactly once,
 * whatever happened to the connection. Connects to other addresses are not
 * touched.
 *
 * SYN gate (XDP) on the configured interfaces: a SYN to a configured
 * listener address and port must take a token of the listener's bucket and
 * one of its source prefix's bucket (an LRU map, so a flood from many
 * networks cannot exhaust memory). Excess SYNs are dropped: the client's
 * kernel retransmits, a free queue. Every other packet passes untouched.
 *
 * All limits live in maps, never in .rodata, so a reload changes them in
 * place and the ledger survives it.
 */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf/sluice.h"
#include "bpf/bucket.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_TCP 6
#define SOCK_STREAM 1

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_BACKENDS);
	__type(key, struct sl_addr);
	__type(value, __u32);
} backend_idx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_MAX_BACKENDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sl_backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_LISTENERS);
	__type(key, struct sl_addr);
	__type(value, __u32);
} listener_idx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_MAX_LISTENERS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sl_listener);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_SRC_ENTRIES);
	__type(key, struct sl_src_key);
	__type(value, struct sl_src);
} src_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sl_sk);
} sk_slots SEC(".maps");

/* ---- backend gate ------------------------------------------------------- */

static __always_inline void slot_release(__u32 slot)
{
	struct sl_backend *b = bpf_map_lookup_elem(&backends, &slot);

	if (!b)
		return;
	sl_ledger_release(&b->active);
	__sync_fetch_and_add(&b->released, 1);
}

static __always_inline int admit(struct bpf_sock_addr *ctx, struct sl_addr *key)
{
	struct sl_backend *b;
	struct sl_sk *st;
	__u32 *slotp, slot;

	if (ctx->sk && ctx->sk->mark == SL_MARK_CHECK)
		return 1; /* a health or agent check of sluice's own */
	slotp = bpf_map_lookup_elem(&backend_idx, key);
	if (!slotp)
		return 1; /* not a backend of ours */
	slot = *slotp;
	b = bpf_map_lookup_elem(&backends, &slot);
	if (!b)
		return 1;
	st = bpf_sk_storage_get(&sk_slots, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		/* without storage the slot could never be given back: refuse */
		bpf_set_retval(-SL_ERR_FULL);
		return 0;
	}
	if (st->slot1 == slot + 1)
		return 1; /* connect again on a socket that holds this slot already */
	if (st->slot1) {
		/* the socket moves to another backend: give the old slot back */
		slot_release(st->slot1 - 1);
		st->slot1 = 0;
	}
	if (!sl_ledger_claim(&b->active, b->max_conns)) {
		__sync_fetch_and_add(&b->refused_full, 1);
		bpf_set_retval(-SL_ERR_FULL);
		return 0;
	}
	if (!sl_gcra_claim(&b->bucket.tat_ns, bpf_ktime_get_ns(), b->bucket.interval_ns,
			   b->bucket.tau_ns)) {
		sl_ledger_release(&b->active);
		__sync_fetch_and_add(&b->refused_rate, 1);
		bpf_set_retval(-SL_ERR_RATE);
		return 0;
	}
	st->slot1 = slot + 1;
	__sync_fetch_and_add(&b->admitted, 1);
	return 1;
}

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx)
{
	struct sl_addr key = {};

	if (ctx->type != SOCK_STREAM)
		return 1;
	key.ip[0] = ctx->user_ip4;
	key.port = (__u16)ctx->user_port;
	key.family = SL_AF_INET;
	return admit(ctx, &key);
}

SEC("cgroup/connect6")
int sl_connect6(struct bpf_sock_addr *ctx)
{
	struct sl_addr key = {};

	if (ctx->type != SOCK_STREAM)
		return 1;
	key.ip[0] = ctx->user_ip6[0];
	key.ip[1] = ctx->user_ip6[1];
	key.ip[2] = ctx->user_ip6[2];
	key.ip[3] = ctx->user_ip6[3];
	key.port = (__u16)ctx->user_port;
	key.family = SL_AF_INET6;
	return admit(ctx, &key);
}

SEC("cgroup/sock_release")
int sl_sock_release(struct bpf_sock *ctx)
{
	struct sl_sk *st = bpf_sk_storage_get(&sk_slots, ctx, 0, 0);

	if (st && st->slot1) {
		slot_release(st->slot1 - 1);
		st->slot1 = 0;
	}
	return 1;
}

/* ---- SYN gate ------------------------------------------------------------ */

static __always_inline __u32 prefix_mask(__u32 bits)
{
	/* network order mask of the first BITS (0..32) bits of a word */
	if (bits >= 32)
		return 0xffffffff;
	if (bits == 0)
		return 0;
	return bpf_htonl(~((1u << (32 - bits)) - 1));
}

static __always_inline int gate(struct sl_addr *dst, const __u32 *src, __u32 nwords)
{
	struct sl_listener *l;
	struct sl_src_key sk = {};
	struct sl_src *s, fresh = {};
	__u32 *slotp, slot, bits;
	__u64 now;

	slotp = bpf_map_lookup_elem(&listener_idx, dst);
	if (!slotp) {
		/* a wildcard listener: 0.0.0.0 / :: with this port */
		dst->ip[0] = dst->ip[1] = dst->ip[2] = dst->ip[3] = 0;
		slotp = bpf_map_lookup_elem(&listener_idx, dst);
		if (!slotp)
			return XDP_PASS;
	}
	slot = *slotp;
	l = bpf_map_lookup_elem(&listeners, &slot);
	if (!l)
		return XDP_PASS;
	now = bpf_ktime_get_ns();

	if (l->src.interval_ns) {
		bits = nwords == 1 ? l->prefix_v4 : l->prefix_v6;
		sk.listener = slot;
		sk.family = nwords == 1 ? SL_AF_INET : SL_AF_INET6;
		for (__u32 i = 0; i < 4; i++) {
			if (i >= nwords)
				break;
			sk.ip[i] = src[i] & prefix_mask(bits > 32 * i ? bits - 32 * i : 0);
		}
		s = bpf_map_lookup_elem(&src_buckets, &sk);
		if (!s) {
			bpf_map_update_elem(&src_buckets, &sk, &fresh, BPF_NOEXIST);
			s = bpf_map_lookup_elem(&src_buckets, &sk);
		}
		if (s && !sl_gcra_claim(&s->tat_ns, now, l->src.interval_ns, l->src.tau_ns)) {
			__sync_fetch_and_add(&l->dropped_source, 1);
			return XDP_DROP;
		}
	}
	if (!sl_gcra_claim(&l->bucket.tat_ns, now, l->bucket.interval_ns, l->bucket.tau_ns)) {
		__sync_fetch_and_add(&l->dropped_rate, 1);
		return XDP_DROP;
	}
	__sync_fetch_and_add(&l->passed, 1);
	return XDP_PASS;
}

SEC("xdp")
int sl_syn_gate(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct sl_addr dst = {};
	struct tcphdr *tcp;
	__u16 proto;
	void *l3;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end)
			return XDP_PASS;
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5 ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			return XDP_PASS;
		tcp = (void *)ip + ip->ihl * 4;
		if ((void *)(tcp + 1) > end || !tcp->syn || tcp->ack)
			return XDP_PASS;
		dst.ip[0] = ip->daddr;
		dst.port = tcp->dest;
		dst.family = SL_AF_INET;
		return gate(&dst, &ip->saddr, 1);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u32 src[4];

		/* SYNs with extension headers are let through, not parsed */
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > end || !tcp->syn || tcp->ack)
			return XDP_PASS;
		__builtin_memcpy(dst.ip, &ip6->daddr, 16);
		__builtin_memcpy(src, &ip6->saddr, 16);
		dst.port = tcp->dest;
		dst.family = SL_AF_INET6;
		return gate(&dst, src, 4);
	}
	return XDP_PASS;
}
