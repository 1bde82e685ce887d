// SPDX-License-Identifier: MIT
/* Backend choice: least_conn, round_robin, tried and down backends. */
#include <stdlib.h>
#include <string.h>

#include "proxy/balance.h"
#include "tests/unit/test.h"

#define NB 3

static struct cfg_pool cfgp;
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

int main(void)
{
	int count[NB] = { 0 }, idx;

	/* least_conn, all equal: ties rotate, so picks spread evenly */
	setup(CFG_BAL_LEAST_CONN);
	for (int k = 0; k < 300; k++)
		count[balance_pick(&pool, 0, 0)]++;
	for (int i = 0; i < NB; i++)
		CHECK_EQ(count[i], 100);

	/* least_conn follows the live counts */
	atomic_store(&be[0]->active, 5);
	atomic_store(&be[1]->active, 2);
	atomic_store(&be[2]->active, 9);
	for (int k = 0; k < 10; k++)
		CHECK_EQ(balance_pick(&pool, 0, 0), 1);

	/* connections that stay open keep least_conn level */
	setup(CFG_BAL_LEAST_CONN);
	memset(count, 0, sizeof(count));
	for (int k = 0; k < 99; k++) {
		idx = balance_pick(&pool, 0, 0);
		atomic_fetch_add(&be[idx]->active, 1);
		count[idx]++;
	}
	for (int i = 0; i < NB; i++)
		CHECK_EQ(count[i], 33);

	/* a tried backend is not picked again; all tried: none */
	setup(CFG_BAL_LEAST_CONN);
	idx = balance_pick(&pool, balance_bit(0) | balance_bit(1), 0);
	CHECK_EQ(idx, 2);
	CHECK_EQ(balance_pick(&pool, balance_bit(0) | balance_bit(1) | balance_bit(2), 0), -1);

	/* round_robin takes them in turn and skips a down one */
	setup(CFG_BAL_ROUND_ROBIN);
	for (int k = 0; k < 9; k++)
		CHECK_EQ(balance_pick(&pool, 0, 0), k % NB);
	for (int f = 0; f < BACKEND_FAIL_DOWN; f++)
		backend_connect_failed(be[1], 0, 1000);
	CHECK(!backend_usable(be[1], 1000));
	memset(count, 0, sizeof(count));
	for (int k = 0; k < 30; k++)
		count[balance_pick(&pool, 0, 1000)]++;
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
	CHECK_EQ(balance_pick(&pool, 0, 1), -1);

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
