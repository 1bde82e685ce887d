// SPDX-License-Identifier: MIT
#include "proxy/wake.h"

#include <stdatomic.h>

#include "proxy/worker_int.h"

/* Every worker's ring, for MSG_WAKE between workers; -1 until it is up. */
static _Atomic int ring_fds[CFG_MAX_WORKERS] = { [0 ... CFG_MAX_WORKERS - 1] = -1 };

void wake_register(unsigned id, int fd)
{
	atomic_store_explicit(&ring_fds[id], fd, memory_order_release);
}

void wake_worker(struct worker *w, unsigned id)
{
	struct io_uring_sqe *sqe;
	int fd = atomic_load_explicit(&ring_fds[id], memory_order_acquire);

	if (id == w->id || fd < 0)
		return;
	sqe = w_sqe(w);
	io_uring_prep_msg_ring(sqe, fd, MSG_WAKE, ud_pack(NULL, UD_MSG), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(NULL, UD_IGNORE));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}
