/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The immutable state workers read: routes now, SPD/SAD later. A change builds
 * a new snapshot off the hot path and publishes it; the old one is freed only
 * after every worker has passed an RCU quiescent state.
 */
#ifndef DP_SNAPSHOT_H
#define DP_SNAPSHOT_H

#include <stdint.h>

#include "control/config.h"

struct rte_fib;
struct rte_fib6;

enum dp_nh_type {
	DP_NH_NONE,    /* no route: index 0, the FIBs' default */
	DP_NH_LOCAL,   /* one of the gateway's own addresses */
	DP_NH_ONLINK,  /* destination is a neighbour on port */
	DP_NH_GATEWAY, /* via gw on port */
};

struct dp_nexthop {
	uint8_t type;
	uint16_t port;
	struct dps_addr gw;
};

struct dp_snapshot {
	uint64_t gen;
	struct rte_fib *fib4;
	struct rte_fib6 *fib6;
	unsigned int n_nh;
	struct dp_nexthop *nh;
};

/** Build a snapshot from @cfg. NULL on failure (logged). */
struct dp_snapshot *dp_snapshot_build(const struct dps_config *cfg);

/** Make @s the workers' snapshot; frees the previous one after an RCU grace period. */
void dp_snapshot_publish(struct dp_snapshot *s);

/** Free a snapshot no worker can see. */
void dp_snapshot_free(struct dp_snapshot *s);

#endif
