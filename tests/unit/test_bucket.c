// SPDX-License-Identifier: MIT
/*
 * The token-bucket arithmetic the BPF programs run (bpf/bucket.h), here in
 * userspace: refill, burst cap, the clock going backwards, huge gaps, limits
 * changing under a running bucket, and concurrent claims from threads.
 */
#include <linux/types.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "bpf/sluice.h"
#include "bpf/bucket.h"
#include "tests/unit/test.h"

#define MS 1000000ull
#define SEC 1000000000ull

struct bucket {
	__u64 interval, tau, tat;
};

static struct bucket mk(__u32 rate, __u32 burst)
{
	struct bucket b = { 0 };

	sl_bucket_params(rate, burst, &b.interval, &b.tau);
	return b;
}

static int claim(struct bucket *b, __u64 now)
{
	return sl_gcra_claim(&b->tat, now, b->interval, b->tau);
}

/* Claims that succeed at NOW, up to MAX tries. */
static int drain(struct bucket *b, __u64 now, int max)
{
	int n = 0;

	while (n < max && claim(b, now))
		n++;
	return n;
}

struct race {
	struct bucket *b;
	__u32 *ledger;
	__u32 max;
	__u64 now;
	int got, slots;
	pthread_barrier_t *start;
};

static void *racer(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(r->start);
	for (int i = 0; i < 100000; i++) {
		if (claim(r->b, r->now))
			r->got++;
		if (sl_ledger_claim(r->ledger, r->max))
			r->slots++;
	}
	return NULL;
}

int main(void)
{
	struct bucket b;
	__u64 t = 1000 * SEC;

	/* params: 100/s is 10 ms apart; burst b means tau = (b - 1) intervals */
	b = mk(100, 10);
	CHECK_EQ(b.interval, 10 * MS);
	CHECK_EQ(b.tau, 90 * MS);
	b = mk(0, 10);
	CHECK_EQ(b.interval, 0);
	CHECK_EQ(drain(&b, t, 1000), 1000); /* no rate: never refuses */
	b = mk(3000000000u, 5);
	CHECK_EQ(b.interval, 1); /* faster than 1/ns still gets a positive interval */

	/* burst cap: an idle bucket admits exactly burst at once, then nothing */
	b = mk(100, 10);
	CHECK_EQ(drain(&b, t, 1000), 10);
	CHECK_EQ(sl_gcra_tokens(b.tat, t, b.interval, b.tau, 10), 0);
	CHECK_EQ(sl_gcra_wait(b.tat, t, b.interval, b.tau), 10 * MS);
	/* refill: one token per interval, never more than burst */
	CHECK_EQ(drain(&b, t + 9 * MS, 1000), 0);
	CHECK_EQ(drain(&b, t + 10 * MS, 1000), 1);
	CHECK_EQ(drain(&b, t + 55 * MS, 1000), 4);
	CHECK_EQ(sl_gcra_tokens(b.tat, t + 10 * SEC, b.interval, b.tau, 10), 10);
	CHECK_EQ(drain(&b, t + 10 * SEC, 1000), 10);

	/* over a long stretch the admitted rate is the configured one */
	b = mk(300, 50);
	{
		int n = 0;

		for (__u64 now = t; now < t + 10 * SEC; now += 1 * MS)
			n += drain(&b, now, 1000);
		/* burst + rate * 10 s, give or take the last partial interval */
		CHECK(n >= 50 + 3000 - 1 && n <= 50 + 3000 + 1);
	}
	/* no window of 100 ms ever sees more than burst + rate/10 + 1 */
	b = mk(100, 10);
	{
		int per_ms[3000] = { 0 };

		for (int ms = 0; ms < 3000; ms++)
			per_ms[ms] = drain(&b, t + (__u64)ms * MS, 1000);
		for (int s = 0; s + 100 <= 3000; s++) {
			int w = 0;

			for (int k = s; k < s + 100; k++)
				w += per_ms[k];
			CHECK(w <= 10 + 10 + 1);
		}
	}

	/* huge elapsed time: idle for years, then a burst, nothing more */
	b = mk(100, 10);
	CHECK_EQ(drain(&b, t, 1000), 10);
	CHECK_EQ(drain(&b, t + 100ull * 365 * 24 * 3600 * SEC, 1000), 10);
	/* the clock near its end: no overflow in the comparisons */
	b = mk(100, 10);
	CHECK_EQ(drain(&b, UINT64_MAX - 200 * MS, 1000), 10);

	/* clock going backwards: tat far ahead of now counts as one token, then
	 * the bucket is back in step — never a lock-out */
	b = mk(100, 10);
	CHECK_EQ(drain(&b, t, 1000), 10);
	b.tat = t + 3600 * SEC; /* state from a clock an hour ahead */
	CHECK_EQ(sl_gcra_wait(b.tat, t, b.interval, b.tau), 0);
	CHECK_EQ(sl_gcra_tokens(b.tat, t, b.interval, b.tau, 10), 1);
	CHECK_EQ(drain(&b, t, 1000), 1);
	CHECK(b.tat <= t + b.tau + b.interval);
	CHECK_EQ(drain(&b, t + 5 * MS, 1000), 0);
	CHECK_EQ(drain(&b, t + 10 * MS, 1000), 1);
	/* two CPUs' clock reads a little apart are no clock jump: still refused */
	b = mk(100, 1);
	CHECK_EQ(drain(&b, t, 1000), 1);
	CHECK_EQ(drain(&b, t - 1000, 1000), 0);
	/* the same clock going back by a little: ordinary waiting */
	b = mk(100, 10);
	CHECK_EQ(drain(&b, t, 1000), 10);
	CHECK_EQ(drain(&b, t - 5 * MS, 1000), 0);
	CHECK_EQ(drain(&b, t + 10 * MS, 1000), 1);

	/* limits change under a running bucket (a reload): the new ones apply
	 * from the token already scheduled */
	b = mk(10, 1); /* 100 ms apart */
	CHECK_EQ(drain(&b, t, 1000), 1);
	sl_bucket_params(1000, 1, &b.interval, &b.tau); /* faster */
	CHECK_EQ(drain(&b, t + 1 * MS, 1000), 0);
	CHECK_EQ(drain(&b, t + 100 * MS, 1000), 1);
	CHECK_EQ(drain(&b, t + 101 * MS, 1000), 1); /* 1 ms apart from now on */
	sl_bucket_params(1, 1, &b.interval, &b.tau);    /* slower */
	CHECK_EQ(drain(&b, t + 103 * MS, 1000), 1);     /* the 1 ms slot was free */
	CHECK_EQ(drain(&b, t + 600 * MS, 1000), 0);     /* 1 s apart from now on */
	CHECK_EQ(drain(&b, t + 1103 * MS, 1000), 1);
	CHECK_EQ(drain(&b, t + 1200 * MS, 1000), 0);

	/* the ledger: never past max, never below zero */
	{
		__u32 active = 0;

		for (int i = 0; i < 5; i++)
			CHECK(sl_ledger_claim(&active, 5));
		CHECK(!sl_ledger_claim(&active, 5));
		CHECK_EQ(active, 5);
		for (int i = 0; i < 7; i++)
			sl_ledger_release(&active);
		CHECK_EQ(active, 0);
		for (int i = 0; i < 1000; i++)
			CHECK(sl_ledger_claim(&active, 0)); /* 0: no limit */
		CHECK_EQ(active, 1000);
	}

	/* concurrent claims: 4 threads at one instant get exactly burst tokens
	 * and exactly max slots between them */
	for (int round = 0; round < 20; round++) {
		pthread_barrier_t start;
		pthread_t th[4];
		struct race r[4];
		__u32 ledger = 0;
		int got = 0, slots = 0;

		b = mk(50, 777);
		pthread_barrier_init(&start, NULL, 4);
		for (int i = 0; i < 4; i++) {
			r[i] = (struct race){ .b = &b, .ledger = &ledger, .max = 333, .now = t,
					      .start = &start };
			pthread_create(&th[i], NULL, racer, &r[i]);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			got += r[i].got;
			slots += r[i].slots;
		}
		pthread_barrier_destroy(&start);
		CHECK_EQ(got, 777);
		CHECK_EQ(slots, 333);
		CHECK_EQ(ledger, 333);
		if (test_failures)
			break;
	}
	return test_result("bucket");
}
