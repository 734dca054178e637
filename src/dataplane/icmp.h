/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ICMP errors the dataplane itself originates: "fragmentation needed"
 * (RFC 1191) and ICMPv6 "packet too big" (RFC 8201) for packets that do not
 * fit the egress link, with or without IPsec overhead (RFC 4301 §8.2.1).
 * Built while the offending packet is at hand, rate limited per worker, and
 * queued on the worker (w->icmp), which sends them at the end of its loop
 * like the gateway's own packets (worker.c).
 */
#ifndef DP_ICMP_H
#define DP_ICMP_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

struct dp_worker;
struct dp_snapshot;

/** Fill @w's token bucket from dataplane.icmp_rate / icmp_burst. */
void dp_icmp_init(struct dp_worker *w);

/**
 * @m (Ethernet + IP, received on port @in) does not fit a link of @mtu bytes
 * (the next-hop MTU to announce). Queue an ICMP error to its source when RFC
 * 1191 / RFC 8201 call for one (IPv4 with DF, or IPv6; never about an ICMP
 * error, a later fragment or a source that cannot be answered) and the
 * worker's bucket has a token. @m is left to the caller. @hop_done: its TTL or
 * hop limit was already decremented; the quoted copy gets it back.
 */
void dp_icmp_too_big(struct dp_worker *w, uint16_t in, const struct rte_mbuf *m, uint32_t mtu,
		     bool hop_done);

#endif
