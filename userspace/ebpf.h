/* SPDX-License-Identifier: MIT */
/*
 * ebpf — sluice's BPF programs from userspace: load them, pin their maps
 * and links under bpf.pin_path, move the process into bpf.cgroup and attach
 * the backend gate there, attach the SYN gate to the configured interfaces,
 * write the config's limits into the maps, watch that everything stays
 * attached, and read the state back.
 *
 * State outlives the process on purpose. Maps are pinned, so the ledger
 * (live connections per backend) survives a restart and is shared by an old
 * and a new sluiced running side by side. Links are pinned too, so when
 * sluiced is killed the kernel still runs sock_release for each socket it
 * closes on the dead process's behalf, and the ledger stays exact. A clean
 * exit detaches the programs when no other process is left in the cgroup.
 *
 * The libbpf skeleton stays inside ebpf.c.
 */
#ifndef SLUICE_EBPF_H
#define SLUICE_EBPF_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <linux/types.h>

#include "bpf/sluice.h"
#include "userspace/config.h"

struct ebpf;

/*
 * Set up from CFG->bpf: mount bpffs if needed, join the cgroup (the calling
 * process, with all its threads, before it opens backend sockets), load the
 * programs reusing pinned maps, attach or take over the pinned links. NULL
 * with a one-line reason in ERR on failure.
 */
struct ebpf *ebpf_open(const struct sl_config *cfg, char *err, size_t errlen);

/*
 * Put CFG's limits in force: every backend address gets a slot (kept if it
 * had one: its ledger and bucket state go on), listeners with a syn_gate get
 * theirs, XDP is attached to the interfaces named and detached from those no
 * longer named. Checks capacity before changing anything. 0, or -errno and
 * a reason in ERR.
 */
int ebpf_apply(struct ebpf *e, const struct sl_config *cfg, char *err, size_t errlen);

/*
 * Limits in force for backend ADDR now, below what the config says while it
 * ramps up (slow start) or while its agent asks for less. Written in place:
 * ledger and bucket state are kept. 0, or -ENOENT if ADDR has no slot.
 */
int ebpf_backend_limits(struct ebpf *e, const struct cfg_addr *addr, uint32_t max_conns,
			uint32_t rate, uint32_t burst);

/* The kernel's entry for backend ADDR (shared memory, live), or NULL. */
volatile struct sl_backend *ebpf_backend(struct ebpf *e, const struct cfg_addr *addr);

/* The kernel's entry for the SYN gate of listener ADDR, or NULL. */
volatile struct sl_listener *ebpf_listener(struct ebpf *e, const struct cfg_addr *addr);

/*
 * The safeguard: verify every program is still attached where it belongs
 * and attach again what is missing (logging it). Also frees the slots of
 * removed backends once their last connection is gone. Returns how many
 * attachments were restored, or -errno.
 */
int ebpf_check(struct ebpf *e);

/*
 * Programs attached (cgroup hooks plus one per XDP interface), as counted
 * at the last open, apply or check (so at most a second old); safe to call
 * from another thread.
 */
unsigned ebpf_attached(const struct ebpf *e);
/* Attachments restored by ebpf_check since start. */
/* How many programs should be attached: the cgroup hooks and one XDP per interface. */
unsigned ebpf_expected(const struct ebpf *e);
uint64_t ebpf_reattached(const struct ebpf *e);
/* Where the ebpf state lives, for messages. */
const char *ebpf_cgroup_path(const struct ebpf *e);
const char *ebpf_pin_path(const struct ebpf *e);

/*
 * Give the pin directory and every object pinned in it to UID:GID (the user
 * sluiced is about to become: the safeguard and reloads pin links as that
 * user), owner-only (0700, 0600). Needs root. 0 or -errno.
 */
int ebpf_set_owner(struct ebpf *e, uid_t uid, gid_t gid);

/*
 * One harmless bpf() call on a map sluiced holds (a key lookup): 0 if the
 * calling thread's privileges are enough for the bpf() calls a running
 * sluiced makes, -EPERM if not (kernels before 6.5 want CAP_BPF for any
 * bpf() command under kernel.unprivileged_bpf_disabled).
 */
int ebpf_probe(struct ebpf *e);

/*
 * Release. DETACH: also detach the programs, unless other processes remain
 * in the cgroup (another sluiced taking over). Maps stay pinned. NULL is fine.
 */
void ebpf_close(struct ebpf *e, int detach);

/* Clock of the buckets (CLOCK_MONOTONIC, ns), as bpf_ktime_get_ns(). */
uint64_t ebpf_now_ns(void);

/*
 * Print the state kept in the pinned maps under PIN_PATH — ledger and bucket
 * per backend, SYN gate per listener — without sluiced running. 0 or -errno.
 */
int ebpf_dump(const char *pin_path, FILE *out);

#endif
