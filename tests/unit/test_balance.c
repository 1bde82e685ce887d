// SPDX-License-Identifier: MIT
/* Backend choice: least_conn, round_robin, tried and down backends. */
#include <stdlib.h>
#include <string.h>

#include "proxy/balance.h"
#include "tests/unit/test.h"

#define NB 3

static struct cfg_pool cfgp;
static uint64_t wait_ns;
static struct snap_pool pool;
static struct backend *be[NB];

static void setup(enum cfg_balance bal)
{
	static struct cfg_server servers[NB];
	char text[32];

	for (int i = 0; i < NB; i++) {
		struct cfg_addr a;

		snprintf(text, sizeof(text), "10.0.0.%d:9000", i + 1);
		CHECK_EQ(config_parse_addr(text, &a), 0);
		servers[i].addr = a;
		if (!be[i])
			be[i] = backend_get(&a);
		atomic_store(&be[i]->active, 0);
		atomic_store(&be[i]->fails, 0);
		atomic_store(&be[i]->down_until_ms, 0);
	}
	memset(&cfgp, 0, sizeof(cfgp));
	cfgp.balance = bal;
	cfgp.servers = servers;
	cfgp.nservers = NB;
	pool.cfg = &cfgp;
	pool.be = be;
	pool.nbe = NB;
	atomic_store(&pool.rr, 0);
}

/* pick as worker 0 at NOW_MS */
static int pick(uint64_t tried, uint64_t now_ms)
{
	return balance_pick(&pool, tried, 0, now_ms * 1000000ull, &wait_ns, NULL);
}

int main(void)
{
	int count[NB] = { 0 }, idx;

	/* least_conn, all equal: ties rotate, so picks spread evenly */
	setup(CFG_BAL_LEAST_CONN);
	for (int k = 0; k < 300; k++)
		count[pick(0, 0)]++;
	for (int i = 0; i < NB; i++)
		CHECK_EQ(count[i], 100);

	/* least_conn follows the live counts */
	atomic_store(&be[0]->active, 5);
	atomic_store(&be[1]->active, 2);
	atomic_store(&be[2]->active, 9);
	for (int k = 0; k < 10; k++)
		CHECK_EQ(pick(0, 0), 1);

	/* connections that stay open keep least_conn level */
	setup(CFG_BAL_LEAST_CONN);
	memset(count, 0, sizeof(count));
	for (int k = 0; k < 99; k++) {
		idx = pick(0, 0);
		atomic_fetch_add(&be[idx]->active, 1);
		count[idx]++;
	}
	for (int i = 0; i < NB; i++)
		CHECK_EQ(count[i], 33);

	/* a tried backend is not picked again; all tried: none */
	setup(CFG_BAL_LEAST_CONN);
	idx = pick(balance_bit(0) | balance_bit(1), 0);
	CHECK_EQ(idx, 2);
	CHECK_EQ(pick(balance_bit(0) | balance_bit(1) | balance_bit(2), 0), -1);

	/* round_robin takes them in turn and skips a down one */
	setup(CFG_BAL_ROUND_ROBIN);
	for (int k = 0; k < 9; k++)
		CHECK_EQ(pick(0, 0), k % NB);
	for (int f = 0; f < BACKEND_FAIL_DOWN; f++)
		backend_connect_failed(be[1], 0, 1000);
	CHECK(!backend_usable(be[1], 1000));
	memset(count, 0, sizeof(count));
	for (int k = 0; k < 30; k++)
		count[pick(0, 1000)]++;
	CHECK_EQ(count[1], 0);
	CHECK_EQ(count[0] + count[2], 30);

	/* fewer failures than the threshold do not mark it down */
	setup(CFG_BAL_ROUND_ROBIN);
	for (int f = 0; f < BACKEND_FAIL_DOWN - 1; f++)
		backend_connect_failed(be[2], 0, 1000);
	CHECK(backend_usable(be[2], 1000));

	/* down expires by itself; a success clears the failure count */
	for (int f = 0; f < BACKEND_FAIL_DOWN; f++)
		backend_connect_failed(be[2], 0, 1000);
	CHECK(!backend_usable(be[2], 1000 + BACKEND_DOWN_MS - 1));
	CHECK(backend_usable(be[2], 1000 + BACKEND_DOWN_MS));
	backend_connect_failed(be[2], 0, 5000); /* the probe after expiry fails: down again */
	CHECK(!backend_usable(be[2], 5001));
	backend_connect_ok(be[2], 0);
	CHECK(backend_usable(be[2], 5001));
	CHECK_EQ(atomic_load(&be[2]->fails), 0);

	/* every backend down: nothing to pick */
	setup(CFG_BAL_LEAST_CONN);
	for (int i = 0; i < NB; i++)
		for (int f = 0; f < BACKEND_FAIL_DOWN; f++)
			backend_connect_failed(be[i], 0, 0);
	CHECK_EQ(pick(0, 1), -1);

	/* kernel limits: a full ledger or an empty bucket is skipped, with a wait */
	{
		static struct sl_backend kb[NB];
		uint64_t now = 10 * SL_NSEC_PER_SEC;

		setup(CFG_BAL_LEAST_CONN);
		memset(kb, 0, sizeof(kb));
		for (int i = 0; i < NB; i++)
			atomic_store(&be[i]->kb, &kb[i]);
		kb[0].max_conns = 5;
		kb[0].active = 5; /* full */
		/* b1: 10/s, burst 1, a token was just taken: next one in 100 ms */
		sl_bucket_params(10, 1, &kb[1].bucket.interval_ns, &kb[1].bucket.tau_ns);
		kb[1].bucket.tat_ns = now + 100000000ull;
		/* b2: 10/s, burst 1, idle: a token is there */
		sl_bucket_params(10, 1, &kb[2].bucket.interval_ns, &kb[2].bucket.tau_ns);
		for (int k = 0; k < 5; k++)
			CHECK_EQ(balance_pick(&pool, 0, 0, now, &wait_ns, NULL), 2);
		/* with b2's token spoken for by a connect in flight: nothing, b1 in 100 ms */
		be[2]->ws[0].pending = 1;
		CHECK_EQ(balance_pick(&pool, balance_bit(0), 0, now, &wait_ns, NULL), -1);
		CHECK_EQ(wait_ns, 100000000ull);
		/* two spoken for: the second token after the one in flight, 200 ms */
		be[2]->ws[0].pending = 2;
		CHECK_EQ(balance_pick(&pool, balance_bit(0) | balance_bit(1), 0, now, &wait_ns, NULL), -1);
		CHECK_EQ(wait_ns, 200000000ull);
		be[2]->ws[0].pending = 1;
		/* with the full one in the running, its look-again interval is the soonest */
		CHECK_EQ(balance_pick(&pool, 0, 0, now, &wait_ns, NULL), -1);
		CHECK_EQ(wait_ns, BACKEND_FULL_RETRY_NS);
		/* another worker's connects in flight are not ours to count */
		CHECK_EQ(balance_pick(&pool, 0, 1, now, &wait_ns, NULL), 2);
		be[2]->ws[0].pending = 0;
		/* only the full one left: look again soon */
		CHECK_EQ(balance_pick(&pool, balance_bit(1) | balance_bit(2), 0, now, &wait_ns, NULL), -1);
		CHECK_EQ(wait_ns, BACKEND_FULL_RETRY_NS);
		/* a slot frees */
		kb[0].active = 4;
		CHECK_EQ(balance_pick(&pool, balance_bit(1) | balance_bit(2), 0, now, &wait_ns, NULL), 0);
		/* ... and is spoken for by our own connect in flight */
		be[0]->ws[0].pending = 1;
		CHECK_EQ(balance_pick(&pool, balance_bit(1) | balance_bit(2), 0, now, &wait_ns, NULL), -1);
		be[0]->ws[0].pending = 0;
		/* all down: nothing to wait for */
		for (int i = 0; i < NB; i++)
			for (int f = 0; f < BACKEND_FAIL_DOWN; f++)
				backend_connect_failed(be[i], 0, 10000);
		CHECK_EQ(balance_pick(&pool, 0, 0, now, &wait_ns, NULL), -1);
		CHECK(wait_ns == UINT64_MAX);
		for (int i = 0; i < NB; i++)
			atomic_store(&be[i]->kb, NULL);
	}

	/* the registry hands out one object per address */
	{
		struct backend *again = backend_get(&be[0]->addr);

		CHECK(again == be[0]);
		CHECK_EQ(atomic_load(&again->refs), 2);
		backend_put(again);
	}
	for (int i = 0; i < NB; i++)
		backend_put(be[i]);
	return test_result("balance");
}
