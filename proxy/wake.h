/* SPDX-License-Identifier: MIT */
/*
 * wake — one worker telling another that its waiting clients may try now
 * (MSG_WAKE over MSG_RING). A leaf: admission wakes workers without
 * depending on the worker loop that receives the message.
 */
#ifndef SLUICE_WAKE_H
#define SLUICE_WAKE_H

struct worker;

/* Worker ID's ring is FD (-1: gone). */
void wake_register(unsigned id, int fd);
/* Tell worker ID (not W itself) to let its waiting clients try now. */
void wake_worker(struct worker *w, unsigned id);

#endif
