/* SPDX-License-Identifier: MIT */
/*
 * privs — who sluiced runs as after start. Starting needs root: bpffs may
 * have to be mounted, the programs loaded (CAP_BPF, CAP_NET_ADMIN), the
 * process moved into its cgroup. Running needs little, because the kernel
 * checks privilege when a BPF object is made and then trusts whoever holds
 * its fd: maps are read and written, links made, swapped and detached through
 * fds sluiced opened as root. So once the BPF side is set up, sluiced becomes
 * the configured `user`/`group` and keeps only:
 *
 *   CAP_NET_BIND_SERVICE  a reload may add a listener (or admin) port < 1024
 *   CAP_NET_ADMIN         SO_MARK on health-check sockets (the backend gate
 *                         lets marked sockets through; CAP_NET_RAW would do
 *                         only since Linux 5.17)
 *   CAP_BPF               only where the kernel still wants it for bpf() on
 *                         fds it already holds: before Linux 6.5 every bpf()
 *                         command failed without it under the default
 *                         kernel.unprivileged_bpf_disabled; probed at start
 *
 * It is done in the main thread before any other thread exists (capset(2)
 * changes the calling thread only), and before the listeners are bound, so
 * every socket sluiced owns — at start or after a reload — belongs to the
 * same user, and a second sluiced (same user) can share the SO_REUSEPORT
 * groups during a handover.
 */
#ifndef SLUICE_PRIVS_H
#define SLUICE_PRIVS_H

#include <stddef.h>

#include "userspace/config.h"
#include "userspace/ebpf.h"

/*
 * Become CFG->user/group (no user: stay as started, with a warning when that
 * is root) keeping the capabilities above; hand the pinned BPF objects of E
 * (NULL: bpf off) to that user first, since the safeguard re-pins links as
 * that user. Must run while the caller is the only thread. Warns about files
 * a reload reads that the user cannot read. 0, or -errno and a reason in ERR.
 */
int privs_drop(const struct sl_config *cfg, struct ebpf *e, char *err, size_t errlen);

#endif
