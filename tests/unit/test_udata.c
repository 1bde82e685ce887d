// SPDX-License-Identifier: MIT
/* user_data packing: every op round-trips with every pointer. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/udata.h"
#include "tests/unit/test.h"

int main(void)
{
	static char arena[4096];
	void *ptrs[] = { NULL, arena, arena + 1, arena + 7, arena + 64 * 7 + 3,
			 (void *)(uintptr_t)0x7ffffffff000ull, (void *)(uintptr_t)UD_PTR_MASK };

	for (unsigned p = 0; p < sizeof(ptrs) / sizeof(ptrs[0]); p++) {
		for (unsigned op = 0; op < UD_OP_COUNT; op++) {
			uint64_t ud = ud_pack(ptrs[p], (enum ud_op)op);

			CHECK(ud_ptr(ud) == ptrs[p]);
			CHECK_EQ(ud_op(ud), op);
		}
	}
	/* paired ops give their half back */
	CHECK_EQ(ud_half(UD_RECV, UD_RECV), 0);
	CHECK_EQ(ud_half(UD_RECV_1, UD_RECV), 1);
	CHECK_EQ(ud_half(UD_SEND_1, UD_SEND), 1);
	CHECK_EQ(ud_half(UD_HUP_1, UD_HUP), 1);
	CHECK_EQ(UD_RECV_1, UD_RECV + 1);
	CHECK_EQ(UD_SEND_1, UD_SEND + 1);
	CHECK_EQ(UD_HUP_1, UD_HUP + 1);
	/* a connection's ops each have a bit of their own in a 16-bit set */
	CHECK(UD_CONN_LAST - UD_CONN_FIRST < 16);
	for (unsigned a = UD_CONN_FIRST; a <= UD_CONN_LAST; a++) {
		CHECK(ud_conn_op((enum ud_op)a));
		for (unsigned b = UD_CONN_FIRST; b < a; b++)
			CHECK((ud_conn_bit((enum ud_op)a) & ud_conn_bit((enum ud_op)b)) == 0);
	}
	CHECK(!ud_conn_op(UD_ACCEPT));
	CHECK(!ud_conn_op(UD_MSG));
	/* heap objects of any alignment */
	for (int i = 0; i < 100; i++) {
		char *m = malloc(48 + (size_t)i);
		uint64_t ud = ud_pack(m + i % 8, UD_MSG);

		CHECK(ud_ptr(ud) == m + i % 8);
		free(m);
	}
	return test_result("udata");
}
