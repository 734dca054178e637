/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Outbound ESP: packets a policy protects, grouped by SA. lib/ipsec adds the
 * ESP header, trailer and (tunnel) the outer header from the SA's template;
 * then the outer packet is routed like any other.
 */
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_ipsec.h>
#include <rte_udp.h>

#include "dataplane/cksum.h"
#include "dataplane/crypto.h"
#include "dataplane/esp.h"
#include "dataplane/frag.h"
#include "dataplane/fwd.h"
#include "dataplane/icmp.h"
#include "dataplane/worker.h"

/* The IP header ESP goes behind: none in tunnel mode (it goes in front of
 * the whole packet), the packet's own in transport mode. */
static inline uint32_t kept_hdr(const struct dp_sa *sa, const struct rte_mbuf *m)
{
	const struct rte_ipv4_hdr *ip =
		rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

	if (sa->mode == DPS_MODE_TUNNEL)
		return 0;
	return (ip->version_ihl >> 4) == 4 ? rte_ipv4_hdr_len(ip) : sizeof(struct rte_ipv6_hdr);
}

/*
 * The next hop and neighbour of @sa's peer. They cannot change within one
 * loop of the worker (same snapshot, no quiescent state yet), so the last
 * answer is kept for the SAs that follow to the same peer.
 */
static const struct dp_nexthop *peer_route(struct dp_worker *w, const struct dp_snapshot *s,
					   const struct dp_sa *sa, const struct dp_neigh **neigh)
{
	typeof(w->peer) *p = &w->peer;

	if (p->loop != w->loops || p->s != s || p->family != sa->outer_family ||
	    memcmp(p->dst, sa->dst, sizeof(p->dst)) != 0) {
		p->loop = w->loops;
		p->s = s;
		p->family = sa->outer_family;
		memcpy(p->dst, sa->dst, sizeof(p->dst));
		p->nh = dp_route1(s, sa->outer_family, sa->dst);
		p->neigh = dp_output_neigh(p->nh, sa->outer_family, sa->dst);
	}
	*neigh = p->neigh;
	return p->nh;
}

/*
 * RFC 4301 §8.2.1: a packet that will not fit the path once protected is
 * discarded before crypto is spent on it, and its sender is told the largest
 * packet that fits: the link MTU less the SA's overhead, with the payload
 * plus its 2-byte trailer rounded down to the cipher's block (RFC 4303 §2.4),
 * as Linux's esp4_get_mtu() does. IPv4 without DF goes on when the SA's
 * outer header may lack DF: it is fragmented once protected (RFC 4301 §8.1,
 * as the BSD and Linux kernels do; dp_esp_out_finish()).
 */
uint16_t dp_esp_out_fit(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
			const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n, bool hop_done)
{
	const struct dp_neigh *neigh;
	const struct dp_nexthop *nh = peer_route(w, s, sa, &neigh);
	uint32_t mtu;
	uint16_t k = 0;

	if (nh->type != DP_NH_ONLINK && nh->type != DP_NH_GATEWAY)
		return n; /* counted drop_no_route after the crypto */
	mtu = dp.ports[nh->port].mtu;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t h = kept_hdr(sa, m), l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;

		if (likely(h + sa->overhead + RTE_ALIGN_CEIL(l3 - h + 2, sa->block) <= mtu)) {
			mb[k++] = m;
			continue;
		}
		if (sa->frag_outer && dp_may_fragment4(m)) {
			mb[k++] = m;
			continue;
		}
		/* a link too small for any packet: icmp.c announces the minimum */
		dp_icmp_too_big(w, in, m,
				mtu >= h + sa->overhead + sa->block
					? h + RTE_ALIGN_FLOOR(mtu - sa->overhead - h, sa->block) - 2
					: 0,
				hop_done);
		dp_drop(w, in, m, DP_CNT_drop_mtu);
	}
	return k;
}

/* lib/ipsec expects l2_len/l3_len; remember the inner DF bit for dfbit=copy. */
static void out_prepare(const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		const struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(mb[i], struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
		bool v4 = (ip->version_ihl >> 4) == 4;

		dp_meta(mb[i])->pre_len = rte_pktmbuf_pkt_len(mb[i]) - RTE_ETHER_HDR_LEN;
		/* One store: setting the two bitfields apart stalls on a store
		 * forwarding of the first into the second. */
		mb[i]->tx_offload = rte_mbuf_tx_offload(
			RTE_ETHER_HDR_LEN, v4 ? rte_ipv4_hdr_len(ip) : sizeof(struct rte_ipv6_hdr),
			0, 0, 0, 0, 0);
		if (sa->copy_df)
			dp_meta(mb[i])->df = v4 && (ip->fragment_offset &
						    rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));
	}
}

void dp_esp_out_sync(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		     struct rte_mbuf **mb, uint16_t n)
{
	uint16_t k, done;

	out_prepare(sa, mb, n);
	k = rte_ipsec_pkt_cpu_prepare(&sa->ss, mb, n);
	dp_sa_drop(sa, w->id, mb, k, n, DP_SA_CNT_drop_other);
	done = rte_ipsec_pkt_process(&sa->ss, mb, k);
	dp_sa_drop(sa, w->id, mb, done, k, DP_SA_CNT_drop_crypto);
	dp_esp_out_finish(w, s, sa, mb, done);
}

void dp_esp_out_async(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		      struct rte_mbuf **mb, uint16_t n)
{
	(void)s;
	out_prepare(sa, mb, n);
	dp_crypto_enqueue(w, sa, mb, n, DP_SA_CNT_drop_other);
}

/*
 * lib/ipsec rewrites the length, id and TOS of the outer (tunnel) or the
 * original (transport) IPv4 header but leaves its checksum alone. With
 * dfbit=copy the outer DF follows the inner one (RFC 4301 §8.1).
 */
static void outer4_fix(const struct dp_sa *sa, struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip =
		rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

	if (sa->copy_df && dp_meta(m)->df)
		ip->fragment_offset |= rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	dp_ip4_cksum_set(ip);
}

/*
 * RFC 3948 in transport mode, which lib/ipsec 22.11 only does for tunnels:
 * a UDP header goes between the IP header and ESP.
 */
static bool trs_udp_encap(const struct dp_sa *sa, struct rte_mbuf *m)
{
	uint32_t hl = m->l3_len;
	uint8_t *old = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t *p = (uint8_t *)rte_pktmbuf_prepend(m, sizeof(struct rte_udp_hdr));
	struct rte_udp_hdr *udp;

	if (p == NULL)
		return false;
	memmove(p, old, RTE_ETHER_HDR_LEN + hl);
	udp = (struct rte_udp_hdr *)(p + RTE_ETHER_HDR_LEN + hl);
	udp->src_port = rte_cpu_to_be_16(sa->cfg.encap_sport);
	udp->dst_port = rte_cpu_to_be_16(sa->cfg.encap_dport);
	udp->dgram_len = rte_cpu_to_be_16(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN - hl);
	udp->dgram_cksum = 0; /* IPv4: RFC 3948 §2.1; IPv6: filled by udp6_cksum() */
	if (sa->outer_family == AF_INET) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + RTE_ETHER_HDR_LEN);

		ip->next_proto_id = IPPROTO_UDP;
		ip->total_length = rte_cpu_to_be_16(rte_be_to_cpu_16(ip->total_length) + 8);
	} else {
		struct rte_ipv6_hdr *ip6 = (struct rte_ipv6_hdr *)(p + RTE_ETHER_HDR_LEN);

		ip6->proto = IPPROTO_UDP;
		ip6->payload_len = rte_cpu_to_be_16(rte_be_to_cpu_16(ip6->payload_len) + 8);
	}
	return true;
}

/* RFC 8200 §8.1: over IPv6 a UDP checksum of 0 is invalid (lib/ipsec leaves 0). */
static void udp6_cksum(struct rte_mbuf *m)
{
	struct rte_ipv6_hdr *ip6 =
		rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip6 + 1);

	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip6, udp);
}

void dp_esp_out_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		       struct rte_mbuf **mb, uint16_t n)
{
	const struct dp_nexthop *nh;
	const struct dp_neigh *neigh;
	uint64_t bytes = 0;
	uint16_t sent = 0, mtu;
	bool big;

	if (n == 0)
		return;
	if (unlikely(sa->first_use_ms == 0))
		sa->first_use_ms = dp_now_ms();
	/* Every packet of an SA goes to the same peer: one route and neighbour
	 * lookup per group at most. */
	nh = peer_route(w, s, sa, &neigh);
	mtu = nh->type == DP_NH_ONLINK || nh->type == DP_NH_GATEWAY ? dp.ports[nh->port].mtu
								    : UINT16_MAX;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint16_t in = dp.port_of_eth[m->port];

		if (sa->udp_encap && sa->mode == DPS_MODE_TRANSPORT && !trs_udp_encap(sa, m)) {
			dp_sa_drop(sa, w->id, &mb[i], 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		/* dp_esp_out_fit() kept only packets that fit or may be fragmented:
		 * a safety net. Too big once protected: not sent, so neither counted
		 * as protected. */
		big = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > mtu;
		if (unlikely(big && !sa->frag_outer)) {
			dp_drop(w, in, m, DP_CNT_drop_mtu);
			continue;
		}
		if (sa->outer_family == AF_INET)
			outer4_fix(sa, m);
		else if (sa->udp_encap)
			udp6_cksum(m);
		bytes += dp_meta(m)->pre_len;
		sent++;
		dp_count(w, in, DP_CNT_ipsec_out);
		if (unlikely(big)) /* outer IPv4 with DF set (dfbit=copy): drop_mtu there */
			dp_frag_output(w, in, m, nh, neigh, sa->outer_family, sa->dst);
		else
			dp_output_to(w, in, m, nh, neigh, sa->outer_family, sa->dst);
	}
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, sent);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
}
