/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The output stage: routes to a peer, the neighbour table, the egress MTU
 * (ICMP errors, fragmentation) and transmit staging. The last stage of the
 * packet path: it calls none of the others.
 */
#ifndef DP_OUTPUT_H
#define DP_OUTPUT_H

#include <stdbool.h>

#include <rte_mbuf.h>

#include "dataplane/snapshot.h"

struct dp_worker;
struct dp_sa;
struct dp_neigh;

/** Route one destination (network-order address bytes of @family). */
const struct dp_nexthop *dp_route1(const struct dp_snapshot *s, int family, const void *dst);

/**
 * The next hop and neighbour of @sa's peer, kept in the worker's counter
 * line of the SA while the routes and the neighbour table's entries stay
 * the same (output.c).
 */
const struct dp_nexthop *dp_output_peer(struct dp_worker *w, const struct dp_snapshot *s,
					const struct dp_sa *sa, const struct dp_neigh **neigh);

/**
 * Drop (drop_mtu) the packets of @mb that would not fit the link toward
 * @sa's peer once protected, telling their senders the path MTU (RFC 4301
 * §8.2.1); IPv4 without DF stays when the SA may fragment its outer packet.
 * The others are moved to the front; returns how many remain.
 */
uint16_t dp_output_fit(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
		       const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n, bool hop_done);

/**
 * Send @m (Ethernet + IP, TTL handled) toward @nh with neighbour @n (NULL:
 * to the control thread to resolve): IPv4 without DF larger than the link
 * leaves as fragments, other packets too big are dropped. @dst points at the
 * packet's destination address.
 */
void dp_output_to(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, const struct dp_nexthop *nh,
		  const struct dp_neigh *n, int family, const void *dst);

/** dp_output_to() for a packet known to be too big: as fragments, IPv6 too
 * (the gateway is the source of an outer header, RFC 8200 §4.5); IPv4 with
 * DF is dropped (drop_mtu). */
void dp_output_frag(struct dp_worker *w, uint16_t in, struct rte_mbuf *m,
		    const struct dp_nexthop *nh, const struct dp_neigh *n, int family,
		    const void *dst);

/** The stage's entry for the worker: what the policy stage let go in clear
 * (w->st.clear), routed, or out of port @in unchanged when it came from the
 * gateway's kernel. */
void dp_output_clear(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6);

#endif
