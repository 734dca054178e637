/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The immutable state workers read: routes, and the IPsec part (SPD, SAD).
 * A change builds a new snapshot off the hot path and publishes it; the old
 * one is freed only after every worker has passed an RCU quiescent state.
 * Parts that did not change are shared between generations (reference
 * counted by the control thread, the only one that builds or frees).
 */
#ifndef DP_SNAPSHOT_H
#define DP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "control/config.h"

struct rte_fib;
struct rte_fib6;
struct rte_ipsec_sad;
struct dp_spd;

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

struct dp_routes {
	unsigned int refs;
	struct rte_fib *fib4;
	struct rte_fib6 *fib6;
	unsigned int n_nh;
	struct dp_nexthop *nh;
};

struct dp_ipsec {
	unsigned int refs;
	bool active; /* any policy or SA: else plain forwarding */
	struct dp_spd *spd;
	/* inbound SAs, one copy of the store's double-buffered tables (sad.h),
	 * not owned: ESP and AH [v6], IPComp [DP_SAD_IPCOMP + v6] (NULL: none) */
	struct rte_ipsec_sad *sad[4];
	uint16_t natt_ports[4]; /* UDP destination ports carrying ESP (RFC 3948) */
	unsigned int n_natt_ports;
	uint8_t proto_off; /* DP_OFF_*: protocols ipsec.*_enable switched off */
};

#define DP_OFF_ESP    1
#define DP_OFF_AH     2
#define DP_OFF_IPCOMP 4

struct dp_snapshot {
	uint64_t gen;
	struct dp_routes *routes;
	struct dp_ipsec *ipsec;
};

/** The first snapshot: routes from @cfg, no IPsec state. NULL on failure (logged). */
struct dp_snapshot *dp_snapshot_build(const struct dps_config *cfg);

/** A snapshot with the current routes and @ipsec (which it takes over). */
struct dp_snapshot *dp_snapshot_with_ipsec(struct dp_ipsec *ipsec);

/** Make @s the workers' snapshot; frees the previous one after an RCU grace period. */
void dp_snapshot_publish(struct dp_snapshot *s);

/** Drop a reference to @s's parts and free it. No worker may see it. */
void dp_snapshot_free(struct dp_snapshot *s);

/** Free an IPsec part (SPD, SADs). */
void dp_ipsec_free(struct dp_ipsec *ipsec);

#endif
