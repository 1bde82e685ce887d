// SPDX-License-Identifier: MIT
/*
 * The kernel/user ABI keeps its layout: sizes and offsets the BPF object was
 * built with. A change here must be deliberate (pinned maps from an older
 * sluiced would no longer match).
 */
#include <linux/types.h>
#include <stddef.h>

#include "bpf/sluice.h"
#include "tests/unit/test.h"

int main(void)
{
	CHECK_EQ(sizeof(struct sl_addr), 20);
	CHECK_EQ(offsetof(struct sl_addr, port), 16);
	CHECK_EQ(sizeof(struct sl_bucket), 24);
	CHECK_EQ(sizeof(struct sl_backend), 80);
	CHECK_EQ(offsetof(struct sl_backend, bucket), 8);
	CHECK_EQ(offsetof(struct sl_backend, bucket) % 8, 0);
	CHECK_EQ(offsetof(struct sl_backend, admitted), 32);
	CHECK_EQ(sizeof(struct sl_listener), 96);
	CHECK_EQ(offsetof(struct sl_listener, passed) % 8, 0);
	CHECK_EQ(sizeof(struct sl_src_key), 24);
	CHECK_EQ(sizeof(struct sl_src), 8);
	CHECK_EQ(sizeof(struct sl_sk), 8);
	/* every 64-bit field the BPF side updates atomically is 8-byte aligned */
	CHECK_EQ(offsetof(struct sl_backend, bucket.tat_ns) % 8, 0);
	CHECK_EQ(offsetof(struct sl_listener, bucket.tat_ns) % 8, 0);
	CHECK_EQ(offsetof(struct sl_src, tat_ns) % 8, 0);
	/* the refusal errnos are the kernel's EUSERS and ETIME */
	CHECK_EQ(SL_ERR_FULL, 87);
	CHECK_EQ(SL_ERR_RATE, 62);
	return test_result("bpf_abi");
}
