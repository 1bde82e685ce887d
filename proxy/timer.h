/* SPDX-License-Identifier: MIT */
/*
 * timer — a binary min-heap of deadlines (milliseconds, monotonic), one per
 * worker. Nodes are embedded in their owners, so insertion, removal and
 * re-keying are O(log n) with no allocation per timer. Owners keep deadlines
 * lazily: activity moves a connection's real deadline later without touching
 * the heap; when its node comes due the owner recomputes and re-inserts.
 */
#ifndef SLUICE_TIMER_H
#define SLUICE_TIMER_H

#include <stddef.h>
#include <stdint.h>

#define TIMER_NONE UINT32_MAX

struct timer_node {
	uint64_t when; /* ms */
	uint32_t idx;  /* position in the heap, TIMER_NONE when not queued */
	uint32_t kind; /* the owner's tag: what the node is embedded in */
};

struct timer_heap {
	struct timer_node **v;
	uint32_t n, cap;
};

static inline void timer_node_init(struct timer_node *t, uint32_t kind)
{
	t->when = 0;
	t->idx = TIMER_NONE;
	t->kind = kind;
}

static inline int timer_queued(const struct timer_node *t)
{
	return t->idx != TIMER_NONE;
}

/* Queue T at WHEN, or move it there if queued. 0, or -ENOMEM. */
int timer_set(struct timer_heap *h, struct timer_node *t, uint64_t when);
/* Remove T if queued. */
void timer_cancel(struct timer_heap *h, struct timer_node *t);
/* The earliest node, or NULL. */
static inline struct timer_node *timer_first(const struct timer_heap *h)
{
	return h->n ? h->v[0] : NULL;
}
/* Pop the earliest node if it is due at NOW; NULL otherwise. */
struct timer_node *timer_pop_due(struct timer_heap *h, uint64_t now);
void timer_heap_free(struct timer_heap *h);

#endif
