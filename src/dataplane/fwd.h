/* SPDX-License-Identifier: BSD-3-Clause */
/* The input stage (fwd.c): checks, FIB and TTL of a received sub-burst. */
#ifndef DP_FWD_H
#define DP_FWD_H

#include <stdbool.h>

#include <rte_mbuf.h>

#include "dataplane/snapshot.h"

struct dp_worker;

/**
 * The input stage for @n IPv4 (dp_fwd_input4) or IPv6 (dp_fwd_input6)
 * packets received on port @in: checks, one bulk FIB lookup, TTL, and the
 * drops of forwarding. Fills w->st.esp (ESP for the gateway), w->st.local
 * and w->st.fwd. @decrypted: the packets came out of an inbound SA.
 */
void dp_fwd_input4(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
		   struct rte_mbuf **pkts, uint16_t n, bool decrypted);
void dp_fwd_input6(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
		   struct rte_mbuf **pkts, uint16_t n, bool decrypted);

/**
 * The input stage for a packet the dataplane originates for the gateway (an
 * ICMP error, from port @port's address): routed, then to the outbound SPD
 * (w->st.out) like the gateway's own packets, or to the port's TAP when it is
 * for the gateway's kernel.
 */
void dp_fwd_originated(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		       struct rte_mbuf *m);

#endif
