/* SPDX-License-Identifier: BSD-3-Clause */
/* Routing tables (rte_fib for IPv4, rte_fib6 for IPv6) of a snapshot. */
#ifndef DP_ROUTE_H
#define DP_ROUTE_H

#include "dataplane/snapshot.h"

/** Fill @s's FIBs and next-hop table from @cfg: local, connected and static routes. */
int dp_routes_build(struct dp_snapshot *s, const struct dps_config *cfg, uint64_t gen);

/** Free @s's FIBs and next-hop table. */
void dp_routes_free(struct dp_snapshot *s);

#endif
