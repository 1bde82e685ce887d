// SPDX-License-Identifier: MIT
#include "proxy/daemon.h"

struct snapshot *daemon_snapshot(struct daemon *d)
{
	struct snapshot *s;

	pthread_mutex_lock(&d->lock);
	s = d->cur;
	snapshot_get(s);
	pthread_mutex_unlock(&d->lock);
	return s;
}
