/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Outbound ESP: packets a policy protects, grouped by SA. lib/ipsec adds the
 * ESP header, trailer and (tunnel) the outer header from the SA's template;
 * then the outer packet is routed like any other.
 */
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_ipsec.h>

#include "dataplane/crypto.h"
#include "dataplane/esp.h"
#include "dataplane/fwd.h"
#include "dataplane/worker.h"

/* lib/ipsec expects l2_len/l3_len; remember the inner DF bit for dfbit=copy. */
static void out_prepare(const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		const struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(mb[i], struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
		bool v4 = (ip->version_ihl >> 4) == 4;

		dp_meta(mb[i])->pre_len = rte_pktmbuf_pkt_len(mb[i]) - RTE_ETHER_HDR_LEN;
		mb[i]->l2_len = RTE_ETHER_HDR_LEN;
		mb[i]->l3_len = v4 ? rte_ipv4_hdr_len(ip) : sizeof(struct rte_ipv6_hdr);
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
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
}

void dp_esp_out_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		       struct rte_mbuf **mb, uint16_t n)
{
	const struct dp_nexthop *nh;
	const struct dp_neigh *neigh;
	uint64_t bytes = 0;

	if (n == 0)
		return;
	if (unlikely(sa->first_use_ms == 0))
		sa->first_use_ms = dp_now_ms();
	/* Every packet of an SA goes to the same peer: one route and neighbour
	 * lookup per group. */
	nh = dp_route1(s, sa->outer_family, &sa->cfg.dst.v4);
	neigh = dp_output_neigh(nh, sa->outer_family, &sa->cfg.dst.v4);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint16_t in = dp.port_of_eth[m->port];

		bytes += dp_meta(m)->pre_len;
		if (sa->outer_family == AF_INET)
			outer4_fix(sa, m);
		dp_count(w, in, DP_CNT_ipsec_out);
		dp_output_to(w, in, m, nh, neigh, sa->outer_family, &sa->cfg.dst.v4);
	}
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, n);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
}
