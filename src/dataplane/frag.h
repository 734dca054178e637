/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IP fragmentation and reassembly through DPDK's rte_ip_frag: fragments for
 * packets that do not fit the egress link and may be fragmented (RFC 791
 * §2.3, RFC 4301 §8.1 post-encryption, RFC 8200 §4.5 when the gateway is the
 * source), and reassembly of the ESP and UDP fragments addressed to the
 * gateway, one table per worker.
 */
#ifndef DP_FRAG_H
#define DP_FRAG_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include "control/config.h"

struct dp_worker;

/** Create the fragmenter's pools and every worker's reassembly table. */
int dp_frag_init(const struct dps_config *cfg);

/** Free what dp_frag_init() made (held fragments included). */
void dp_frag_fini(void);

#define DP_FRAG_MAX_OUT 64 /* fragments of one packet; more is drop_frag */

/**
 * Cut @m (Ethernet + IP, larger than @mtu) into fragments for port
 * @out_port, each with @m's Ethernet header, into @out (DP_FRAG_MAX_OUT).
 * IPv4 with DF is dropped (drop_mtu); IPv6 is fragmented, so only pass IPv6
 * the gateway originates. Consumes @m; returns the number of fragments.
 */
int32_t dp_frag(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, uint16_t mtu,
		uint16_t out_port, int family, struct rte_mbuf **out);

/**
 * @m (Ethernet + IP, received on @in, for the gateway) is a fragment. Returns
 * @m untouched when it is not ESP or UDP (left to the kernel), NULL when the
 * table keeps it (or dropped it: drop_reasm), or the whole datagram in one
 * segment with a valid header.
 */
struct rte_mbuf *dp_reasm(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, int v6);

/** Once per loop: discard expired datagrams and free what reassembly dropped. */
void dp_reasm_tick(struct dp_worker *w);

/** An IPv4 fragment, or an IPv6 packet with a Fragment header first. */
static inline bool dp_is_fragment(const struct rte_mbuf *m, int v6)
{
	const void *ip = rte_pktmbuf_mtod_offset(m, const void *, RTE_ETHER_HDR_LEN);

	if (v6)
		return ((const struct rte_ipv6_hdr *)ip)->proto == IPPROTO_FRAGMENT;
	return rte_ipv4_frag_pkt_is_fragmented(ip);
}

/** IPv4 without DF: what may be fragmented on the way. */
static inline bool dp_may_fragment4(const struct rte_mbuf *m)
{
	const struct rte_ipv4_hdr *ip =
		rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

	return (ip->version_ihl >> 4) == 4 &&
	       !(ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));
}

#endif
