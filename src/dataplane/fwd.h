/* SPDX-License-Identifier: BSD-3-Clause */
/* Routing and output shared by forwarding and IPsec (fwd.c). */
#ifndef DP_FWD_H
#define DP_FWD_H

#include <rte_mbuf.h>

#include "dataplane/snapshot.h"

struct dp_worker;
struct dp_sa;

/** Route one destination (network-order address bytes of @family). */
const struct dp_nexthop *dp_route1(const struct dp_snapshot *s, int family, const void *dst);

/**
 * Send @m (Ethernet + IP, TTL already handled) toward @nh: MTU check,
 * neighbour lookup, L2 rewrite, staging; or hand it to the control thread
 * to wait for ARP/ND. @dst points at the packet's destination address.
 */
void dp_output(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf *m,
	       const struct dp_nexthop *nh, int family, const void *dst);

struct dp_neigh;

/** The neighbour @nh leads to for @dst, or NULL (unresolved, or no route). */
const struct dp_neigh *dp_output_neigh(const struct dp_nexthop *nh, int family, const void *dst);

/** dp_output() with the neighbour already looked up (a group of packets to one peer). */
void dp_output_to(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, const struct dp_nexthop *nh,
		  const struct dp_neigh *n, int family, const void *dst);

/**
 * Forward a burst of IPv4 (dp_fwd4) or IPv6 (dp_fwd6) packets received on
 * @in. @via is NULL for packets that arrived in clear, or the inbound SA
 * that decrypted all of them.
 */
void dp_fwd4(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf **pkts,
	     uint16_t n, struct dp_sa *via);
void dp_fwd6(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf **pkts,
	     uint16_t n, struct dp_sa *via);

/**
 * A packet the dataplane originates for the gateway (an ICMP error, from
 * port @port's address): routed, then the outbound SPD like the gateway's own
 * packets (bypass, discard or protect); to the port's TAP when it is for the
 * gateway's kernel.
 */
void dp_fwd_local(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		  struct rte_mbuf *m);

/** Packets the gateway's kernel sent on @port's TAP: outbound policy, then out. */
void dp_from_kernel(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		    struct rte_mbuf **pkts, uint16_t n);

#endif
