/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IPv4/IPv6 forwarding of a burst: header checks, one bulk FIB lookup, TTL or
 * hop-limit decrement, then L2 rewrite from the neighbour table. Packets for
 * the gateway go to the exception TAP; unresolved next hops to the control
 * thread.
 */
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>

#include "dataplane/neigh.h"
#include "dataplane/worker.h"

#define ICMP6_ND_NS 135
#define ICMP6_ND_NA 136

static inline void l2_send(struct dp_worker *w, uint16_t out, struct rte_mbuf *m,
			   const struct dp_neigh *n)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	eth->dst_addr = n->mac;
	eth->src_addr = dp.ports[out].mac;
	dp_tx(w, dp.ports[out].eth_id, m);
}

/* Next hop: the gateway of the route, or the destination itself when on-link. */
static inline void to_neighbour(struct dp_worker *w, uint16_t in, struct rte_mbuf *m,
				const struct dp_nexthop *nh, int family, const void *dst)
{
	const void *addr =
		nh->type == DP_NH_GATEWAY
			? (family == AF_INET ? (const void *)&nh->gw.v4 : (const void *)&nh->gw.v6)
			: dst;
	const struct dp_neigh *n = dp_neigh_lookup(dp.neigh, nh->port, family, addr);

	if (likely(n != NULL)) {
		l2_send(w, nh->port, m, n);
		return;
	}
	struct dp_meta *meta = dp_meta(m);

	meta->out_port = nh->port;
	meta->nh.family = family;
	memcpy(family == AF_INET ? (void *)&meta->nh.v4 : (void *)&meta->nh.v6, addr,
	       family == AF_INET ? 4 : 16);
	dp_to_control(w, in, m, DP_CTRL_RESOLVE, DP_CNT_neigh_wait);
}

/* Strip Ethernet padding so pkt_len matches the IP length. */
static inline int l3_trim(struct rte_mbuf *m, uint32_t ip_len)
{
	uint32_t have = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;

	if (ip_len > have)
		return -1;
	if (ip_len < have)
		rte_pktmbuf_trim(m, have - ip_len);
	return 0;
}

/* RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), over the 16-bit word holding the
 * TTL: unlike RFC 1141's shortcut it never yields 0xffff for a zero sum. */
static inline void ttl_decrement(struct rte_ipv4_hdr *ip)
{
	uint16_t old = rte_cpu_to_be_16((uint16_t)(ip->time_to_live << 8 | ip->next_proto_id));
	uint16_t new = rte_cpu_to_be_16((uint16_t)((ip->time_to_live - 1) << 8 | ip->next_proto_id));
	uint32_t sum;

	ip->time_to_live--;
	sum = (uint32_t)(uint16_t)~ip->hdr_checksum + (uint16_t)~old + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->hdr_checksum = (uint16_t)~sum;
}

/* RFC 1812 §5.3.4: a unicast IP packet in a link-layer broadcast or multicast
 * frame must not be forwarded. */
static inline bool l2_multicast(struct rte_mbuf *m)
{
	return rte_is_multicast_ether_addr(&rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->dst_addr);
}

static inline enum dp_counter ip4_check(struct rte_mbuf *m, struct rte_ipv4_hdr *ip)
{
	uint32_t hlen;

	if (rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + sizeof(*ip))
		return DP_CNT_drop_malformed;
	hlen = rte_ipv4_hdr_len(ip);
	if ((ip->version_ihl >> 4) != 4 || hlen < sizeof(*ip) ||
	    rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + hlen ||
	    rte_be_to_cpu_16(ip->total_length) < hlen ||
	    l3_trim(m, rte_be_to_cpu_16(ip->total_length)) < 0)
		return DP_CNT_drop_malformed;
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		return DP_CNT_drop_bad_cksum;
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
	    rte_raw_cksum(ip, hlen) != 0xffff)
		return DP_CNT_drop_bad_cksum;
	return DP_CNT_MAX;
}

void dp_fwd4(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf **pkts,
	     uint16_t n)
{
	uint32_t dst[DP_MAX_BURST];
	uint64_t nhi[DP_MAX_BURST];
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(pkts[i], struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
		enum dp_counter bad = ip4_check(pkts[i], ip);

		if (unlikely(bad != DP_CNT_MAX)) {
			dp_drop(w, in, pkts[i], bad);
			continue;
		}
		pkts[k] = pkts[i];
		dst[k++] = rte_be_to_cpu_32(ip->dst_addr);
	}
	if (k == 0)
		return;
	rte_fib_lookup_bulk(s->fib4, dst, nhi, k);
	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
		const struct dp_nexthop *nh = &s->nh[nhi[i]];

		switch (nh->type) {
		case DP_NH_LOCAL:
			dp_punt(w, in, m);
			continue;
		case DP_NH_NONE:
			/* Broadcast and multicast are the gateway's, never routed. */
			if (dst[i] == UINT32_MAX || (dst[i] >> 28) == 0xe)
				dp_punt(w, in, m);
			else
				dp_drop(w, in, m, DP_CNT_drop_no_route);
			continue;
		}
		if (unlikely(l2_multicast(m))) {
			dp_drop(w, in, m, DP_CNT_drop_l2_other);
			continue;
		}
		if (unlikely(ip->time_to_live <= 1)) {
			dp_drop(w, in, m, DP_CNT_drop_ttl_expired);
			continue;
		}
		if (unlikely(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > dp.ports[nh->port].mtu)) {
			dp_drop(w, in, m, DP_CNT_drop_mtu);
			continue;
		}
		ttl_decrement(ip);
		dp_count(w, in, DP_CNT_fwd_ipv4);
		to_neighbour(w, in, m, nh, AF_INET, &ip->dst_addr);
	}
}

static inline bool is_nd(struct rte_mbuf *m, const struct rte_ipv6_hdr *ip6)
{
	const uint8_t *icmp = (const uint8_t *)(ip6 + 1);

	return ip6->proto == IPPROTO_ICMPV6 &&
	       rte_pktmbuf_data_len(m) >= RTE_ETHER_HDR_LEN + sizeof(*ip6) + 24 &&
	       (icmp[0] == ICMP6_ND_NS || icmp[0] == ICMP6_ND_NA);
}

void dp_fwd6(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf **pkts,
	     uint16_t n)
{
	uint8_t dst[DP_MAX_BURST][RTE_FIB6_IPV6_ADDR_SIZE];
	uint64_t nhi[DP_MAX_BURST];
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ipv6_hdr *ip6 =
			rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);

		if (unlikely(rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + sizeof(*ip6) ||
			     (rte_be_to_cpu_32(ip6->vtc_flow) >> 28) != 6 ||
			     l3_trim(m, sizeof(*ip6) + rte_be_to_cpu_16(ip6->payload_len)) < 0)) {
			dp_drop(w, in, m, DP_CNT_drop_malformed);
			continue;
		}
		if (unlikely(is_nd(m, ip6))) {
			dp_to_control(w, in, m, DP_CTRL_ND, DP_CNT_arp_nd_in);
			continue;
		}
		if (unlikely(ip6->dst_addr[0] == 0xff)) {
			dp_punt(w, in, m); /* multicast: MLD, RA, ... belong to the kernel */
			continue;
		}
		pkts[k] = m;
		memcpy(dst[k++], ip6->dst_addr, 16);
	}
	if (k == 0)
		return;
	rte_fib6_lookup_bulk(s->fib6, dst, nhi, k);
	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ipv6_hdr *ip6 =
			rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);
		const struct dp_nexthop *nh = &s->nh[nhi[i]];

		switch (nh->type) {
		case DP_NH_LOCAL:
			dp_punt(w, in, m);
			continue;
		case DP_NH_NONE:
			dp_drop(w, in, m, DP_CNT_drop_no_route);
			continue;
		}
		if (unlikely(l2_multicast(m))) {
			dp_drop(w, in, m, DP_CNT_drop_l2_other);
			continue;
		}
		if (unlikely(ip6->hop_limits <= 1)) {
			dp_drop(w, in, m, DP_CNT_drop_ttl_expired);
			continue;
		}
		if (unlikely(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > dp.ports[nh->port].mtu)) {
			dp_drop(w, in, m, DP_CNT_drop_mtu);
			continue;
		}
		ip6->hop_limits--;
		dp_count(w, in, DP_CNT_fwd_ipv6);
		to_neighbour(w, in, m, nh, AF_INET6, ip6->dst_addr);
	}
}
