/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Token-bucket arithmetic shared by the BPF programs and userspace (where
 * tests/unit/test_bucket.c exercises it), as GCRA — the generic cell rate
 * algorithm. A bucket of rate r and burst b is one number, tat, the
 * theoretical arrival time of the next admission:
 *
 *     T = 1e9 / r              (ns between tokens)
 *     tau = (b - 1) * T        (how far ahead of now tat may be)
 *     admit at now  iff  max(tat, now) <= now + tau,  then  tat = max(tat, now) + T
 *
 * An idle bucket (tat <= now) admits b in a row, then one per T. There is no
 * refill step and no division on the hot path, and the whole state is one
 * 64-bit word, so concurrent claims from several CPUs are a compare-and-swap
 * loop. Time is CLOCK_MONOTONIC in ns (bpf_ktime_get_ns).
 *
 * Robustness: tat can never legitimately be more than tau + T ahead of now
 * (an admission moves it to at most now + tau + T), give or take the few ns
 * between two CPUs' clock reads. If it is further ahead than that plus
 * SL_CLAMP_SLACK_NS — the clock went backwards, or state came from another
 * clock — the bucket is treated as holding one token: one claim succeeds
 * and puts tat back in range. A refusal never writes state, so clamping to a
 * refusing value would lock the bucket for as long as the clock is off.
 * A reload that makes T or tau smaller takes effect after the token already
 * scheduled (at most SL_CLAMP_SLACK_NS later). Huge gaps (a bucket idle for
 * days) need no care: max(tat, now) forgets them.
 *
 * Include after the definitions of __u64 (vmlinux.h or <linux/types.h>) and
 * of struct sl_bucket (bpf/sluice.h).
 */
#ifndef SLUICE_BPF_BUCKET_H
#define SLUICE_BPF_BUCKET_H

#ifndef SL_INLINE
#define SL_INLINE static inline __attribute__((always_inline))
#endif

#define SL_NSEC_PER_SEC 1000000000ull
#define SL_CAS_TRIES 8
#define SL_CLAMP_SLACK_NS SL_NSEC_PER_SEC

/* Interval and tau for RATE per second and BURST (>= 1); rate 0: unlimited. */
SL_INLINE void sl_bucket_params(__u32 rate, __u32 burst, __u64 *interval_ns, __u64 *tau_ns)
{
	if (rate == 0) {
		*interval_ns = 0;
		*tau_ns = 0;
		return;
	}
	*interval_ns = SL_NSEC_PER_SEC / rate;
	if (*interval_ns == 0)
		*interval_ns = 1;
	*tau_ns = (__u64)(burst ? burst - 1 : 0) * *interval_ns;
}

/*
 * One decision on state TAT at NOW. Returns 1 and the new tat in *NEXT when
 * admitted, 0 when not. Pure: the caller publishes *NEXT (with a CAS).
 */
SL_INLINE int sl_gcra_step(__u64 tat, __u64 now, __u64 interval, __u64 tau, __u64 *next)
{
	__u64 t0 = tat > now ? tat : now;

	if (t0 - now > tau + interval + SL_CLAMP_SLACK_NS)
		t0 = now + tau; /* the clock went back: one token, then back in step */
	if (t0 - now > tau)
		return 0;
	*next = t0 + interval;
	return 1;
}

/* ns from NOW until the bucket admits again (0: it would admit now). */
SL_INLINE __u64 sl_gcra_wait(__u64 tat, __u64 now, __u64 interval, __u64 tau)
{
	if (interval == 0 || tat <= now + tau)
		return 0;
	if (tat - now > tau + interval + SL_CLAMP_SLACK_NS)
		return 0; /* clamped as in sl_gcra_step: a claim would succeed */
	return tat - now - tau;
}

/* Tokens a claim could take right now (at most BURST; 0 when empty). */
SL_INLINE __u64 sl_gcra_tokens(__u64 tat, __u64 now, __u64 interval, __u64 tau, __u32 burst)
{
	__u64 t0 = tat > now ? tat : now, n;

	if (interval == 0)
		return burst;
	if (t0 - now > tau + interval + SL_CLAMP_SLACK_NS)
		return 1;
	if (t0 - now > tau)
		return 0;
	n = (now + tau - t0) / interval + 1;
	return n > burst ? burst : n;
}

/*
 * Claim one token from the bucket whose state lives at *TAT, shared with
 * other CPUs. Returns 1 if admitted. Bounded retries keep the verifier happy;
 * losing every race (SL_CAS_TRIES claims landed in between) counts as a
 * refusal, which only ever errs on the side of the limit.
 */
SL_INLINE int sl_gcra_claim(__u64 *tat, __u64 now, __u64 interval, __u64 tau)
{
	if (interval == 0)
		return 1;
	for (int i = 0; i < SL_CAS_TRIES; i++) {
		__u64 old = *(volatile __u64 *)tat, next;

		if (!sl_gcra_step(old, now, interval, tau, &next))
			return 0;
		if (__sync_val_compare_and_swap(tat, old, next) == old)
			return 1;
	}
	return 0;
}

/*
 * Take a slot of a ledger counting up to MAX (0: unlimited). Returns 1 if
 * taken. Compare-and-swap so the count never passes MAX, even for a moment.
 */
SL_INLINE int sl_ledger_claim(__u32 *active, __u32 max)
{
	for (int i = 0; i < SL_CAS_TRIES; i++) {
		__u32 old = *(volatile __u32 *)active;

		if (max && old >= max)
			return 0;
		if (__sync_val_compare_and_swap(active, old, old + 1) == old)
			return 1;
	}
	return 0;
}

/* Give a slot back; never below zero. */
SL_INLINE void sl_ledger_release(__u32 *active)
{
	for (int i = 0; i < SL_CAS_TRIES; i++) {
		__u32 old = *(volatile __u32 *)active;

		if (old == 0)
			return;
		if (__sync_val_compare_and_swap(active, old, old - 1) == old)
			return;
	}
	/* contended: an unconditional decrement, undone if it went below zero */
	if (__sync_fetch_and_sub(active, 1) == 0)
		__sync_fetch_and_add(active, 1);
}

#endif
