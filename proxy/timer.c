// SPDX-License-Identifier: MIT
#include "proxy/timer.h"

#include <errno.h>
#include <stdlib.h>

static void heap_place(struct timer_heap *h, uint32_t i, struct timer_node *t)
{
	h->v[i] = t;
	t->idx = i;
}

static void sift_up(struct timer_heap *h, uint32_t i)
{
	struct timer_node *t = h->v[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (h->v[parent]->when <= t->when)
			break;
		heap_place(h, i, h->v[parent]);
		i = parent;
	}
	heap_place(h, i, t);
}

static void sift_down(struct timer_heap *h, uint32_t i)
{
	struct timer_node *t = h->v[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		uint64_t mw = t->when;

		if (l < h->n && h->v[l]->when < mw) {
			m = l;
			mw = h->v[l]->when;
		}
		if (l + 1 < h->n && h->v[l + 1]->when < mw)
			m = l + 1;
		if (m == i)
			break;
		heap_place(h, i, h->v[m]);
		i = m;
	}
	heap_place(h, i, t);
}

int timer_set(struct timer_heap *h, struct timer_node *t, uint64_t when)
{
	if (timer_queued(t)) {
		uint64_t old = t->when;

		t->when = when;
		if (when < old)
			sift_up(h, t->idx);
		else if (when > old)
			sift_down(h, t->idx);
		return 0;
	}
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 256;
		struct timer_node **v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	t->when = when;
	heap_place(h, h->n++, t);
	sift_up(h, t->idx);
	return 0;
}

void timer_cancel(struct timer_heap *h, struct timer_node *t)
{
	uint32_t i = t->idx;
	struct timer_node *last;

	if (i == TIMER_NONE)
		return;
	t->idx = TIMER_NONE;
	if (--h->n == i)
		return;
	/* move the last node into the hole; it may belong above or below it */
	last = h->v[h->n];
	heap_place(h, i, last);
	if (last->when < t->when)
		sift_up(h, i);
	else
		sift_down(h, i);
}

struct timer_node *timer_pop_due(struct timer_heap *h, uint64_t now)
{
	struct timer_node *t = timer_first(h);

	if (!t || t->when > now)
		return NULL;
	timer_cancel(h, t);
	return t;
}

void timer_heap_free(struct timer_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
