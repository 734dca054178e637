/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include <rte_rcu_qsbr.h>

#include "dataplane/dp.h"
#include "dataplane/route.h"
#include "dataplane/snapshot.h"

static uint64_t snapshot_gen;

struct dp_snapshot *dp_snapshot_build(const struct dps_config *cfg)
{
	struct dp_snapshot *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->gen = ++snapshot_gen;
	if (dp_routes_build(s, cfg, s->gen) < 0) {
		dp_snapshot_free(s);
		return NULL;
	}
	return s;
}

void dp_snapshot_free(struct dp_snapshot *s)
{
	if (s == NULL)
		return;
	dp_routes_free(s);
	free(s);
}

void dp_snapshot_publish(struct dp_snapshot *s)
{
	struct dp_snapshot *old = __atomic_exchange_n(&dp.snap, s, __ATOMIC_RELEASE);

	/* Workers report a quiescent state once per loop, between bursts: after
	 * this no worker holds a pointer into the old snapshot. */
	if (old != NULL) {
		rte_rcu_qsbr_synchronize(dp.rcu, RTE_QSBR_THRID_INVALID);
		dp_snapshot_free(old);
	}
}
