/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IPComp (RFC 3173) with DEFLATE (RFC 2394) on a compression device
 * (compress.c): the transforms of IPComp SAs.
 */
#ifndef DP_IPCOMP_H
#define DP_IPCOMP_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "dataplane/sa.h"

#define DP_IPCOMP_HDR_LEN 4 /* next header, flags, CPI */

/** The transform of the IPComp SA @sa (outbound or inbound). */
const struct dp_xform_ops *dp_ipcomp_ops(const struct dp_sa *sa);

struct dp_worker;
struct dp_snapshot;
struct dp_ipsec;

/** Whether the IP-in-IP packet @m for the gateway comes from an inbound IPComp
 * tunnel SA's peer to its destination (one SAD lookup: a rare path). */
bool dp_ipcomp_ipip_sa(const struct dp_ipsec *ipsec, struct rte_mbuf *m, int v6);

/**
 * Take the IPComp packets, and the IP-in-IP ones of IPComp tunnels, out of
 * the @n packets for the gateway (pkts, compacted): each goes to its inbound
 * SA, by <CPI, destination> or <destination, source>; unknown CPIs are
 * dropped (drop_unknown_cpi), as is IP-in-IP no SA claims any more.
 * Returns how many packets are left (ESP).
 */
uint16_t dp_ipcomp_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		      struct rte_mbuf **pkts, uint16_t n, int v6);

#endif
