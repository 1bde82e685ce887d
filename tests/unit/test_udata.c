// SPDX-License-Identifier: MIT
/* user_data packing: every op round-trips with every aligned pointer. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/udata.h"
#include "tests/unit/test.h"

int main(void)
{
	static char arena[4096] __attribute__((aligned(64)));
	void *ptrs[] = { NULL, arena, arena + UD_ALIGN, arena + 64 * 7,
			 (void *)(uintptr_t)0x7ffffffff000ull, (void *)(uintptr_t)~UD_OP_MASK };

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
	CHECK_EQ(UD_RECV_1, UD_RECV + 1);
	CHECK_EQ(UD_SEND_1, UD_SEND + 1);
	/* heap objects used as user_data are aligned enough */
	for (int i = 0; i < 100; i++) {
		void *m = aligned_alloc(UD_ALIGN, 48);

		CHECK(((uintptr_t)m & UD_OP_MASK) == 0);
		free(m);
	}
	return test_result("udata");
}
