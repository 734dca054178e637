/* SPDX-License-Identifier: BSD-3-Clause */
/* Routing tables (rte_fib for IPv4, rte_fib6 for IPv6) of a snapshot. */
#ifndef DP_ROUTE_H
#define DP_ROUTE_H

#include "dataplane/snapshot.h"

/** FIBs and next-hop table from @cfg: local, connected and static routes. NULL on failure. */
struct dp_routes *dp_routes_build(const struct dps_config *cfg, uint64_t gen);

/** Free routing tables no worker can see. */
void dp_routes_free(struct dp_routes *r);

#endif
