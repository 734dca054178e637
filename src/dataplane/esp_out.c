/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Outbound ESP: packets a policy protects, grouped by SA. lib/ipsec adds the
 * ESP header, trailer and (tunnel) the outer header from the SA's template,
 * or for the native engine's SAs esp_native_out.c does, the same bytes; then
 * the outer packet is routed like any other.
 */
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_ipsec.h>
#include <rte_udp.h>

#include "dataplane/capture.h"
#include "dataplane/cksum.h"
#include "dataplane/esp.h"
#include "dataplane/output.h"
#include "dataplane/polog.h"
#include "dataplane/worker.h"
#include "dataplane/xform.h"

/* lib/ipsec expects l2_len/l3_len; the finish counts bytes as they came. */
static inline void outb_prepare(struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n,
				const bool copy_df)
{
	(void)sa;
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
		if (copy_df) /* dfbit=copy: the finish sets the outer DF from the inner one */
			dp_meta(mb[i])->df = v4 && (ip->fragment_offset &
						    rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));
	}
}

static uint16_t esp_outb_prepare(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
				 uint16_t n)
{
	(void)w;
	outb_prepare(sa, mb, n, false);
	return n;
}

static uint16_t esp_outb_copydf_prepare(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
					uint16_t n)
{
	(void)w;
	outb_prepare(sa, mb, n, true);
	return n;
}

/*
 * lib/ipsec rewrites the length, id and TOS of the outer (tunnel) or the
 * original (transport) IPv4 header but leaves its checksum alone. With
 * dfbit=copy the outer DF follows the inner one (RFC 4301 §8.1).
 */
static inline void outer4_fix(struct rte_mbuf *m, const bool copy_df)
{
	struct rte_ipv4_hdr *ip =
		rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

	if (copy_df && dp_meta(m)->df)
		ip->fragment_offset |= rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	dp_ip4_cksum_set(ip);
}

/*
 * The outer IPv4 header of a tunnel SA: lib/ipsec has just written it in
 * pieces (its template, then length, id and TOS), and a wide load across
 * those stores stalls until they retire (no store-to-load forwarding): the
 * checksum takes the constant fields' sum from the SA (sa->tun4_sum) and
 * reads each changing field alone (RFC 1071: summed as raw words).
 */
static inline void outer4_tun_fix(const struct dp_sa *sa, struct rte_mbuf *m, const bool copy_df)
{
	struct rte_ipv4_hdr *ip =
		rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
	uint64_t sum;

	if (copy_df && dp_meta(m)->df)
		ip->fragment_offset |= rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	sum = (uint64_t)sa->tun4_sum + ((uint32_t)ip->type_of_service << 8) + ip->total_length +
	      ip->packet_id + ip->fragment_offset;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->hdr_checksum = (uint16_t)~sum;
}

/*
 * RFC 3948 in transport mode, which lib/ipsec 22.11 only does for tunnels:
 * a UDP header goes between the IP header and ESP.
 */
static inline bool trs_udp_encap(const struct dp_sa *sa, struct rte_mbuf *m)
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
static inline void udp6_cksum(struct rte_mbuf *m)
{
	struct rte_ipv6_hdr *ip6 =
		rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip6 + 1);

	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip6, udp);
}

/*
 * The finish of every outbound ESP SA, specialised by the constant flags
 * (outer family, dfbit=copy, RFC 3948 in transport mode): header fix-ups,
 * then the group goes to the SA's peer (output.c).
 */
static inline void esp_outb_finish(struct dp_worker *w, const struct dp_snapshot *s,
				   struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k, uint16_t n,
				   const bool v4, const bool tun4, const bool copy_df,
				   const bool trs_udp, const bool udp6)
{
	const struct dp_nexthop *nh;
	const struct dp_neigh *neigh;
	uint64_t bytes = 0;
	uint16_t sent = 0, mtu, nn = 0;
	const bool cap = w->cap != NULL; /* once per group, not per packet */
	const bool bundled = sa->bundled;
	bool big;

	dp_sa_fail(w, sa, mb, k, n, DP_SA_CNT_drop_crypto);
	if (k == 0)
		return;
	if (unlikely(sa->first_use_ms == 0))
		sa->first_use_ms = dp_now_ms();
	/* Every packet of an SA goes to the same peer: one route and neighbour
	 * lookup per group at most. */
	nh = dp_output_peer(w, s, sa, &neigh);
	mtu = nh->type == DP_NH_ONLINK || nh->type == DP_NH_GATEWAY ? dp.ports[nh->port].mtu
								    : UINT16_MAX;
	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = mb[i];
		uint16_t in = dp.port_of_eth[m->port];

		if (trs_udp && !trs_udp_encap(sa, m)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		/* dp_output_fit() kept only packets that fit or may be fragmented:
		 * a safety net. Too big once protected: not sent, so neither counted
		 * as protected. */
		big = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > mtu;
		if (unlikely(big && !sa->frag_outer)) {
			dp_drop(w, in, m, DP_CNT_drop_mtu);
			continue;
		}
		if (tun4)
			outer4_tun_fix(sa, m, copy_df);
		else if (v4)
			outer4_fix(m, copy_df);
		else if (udp6)
			udp6_cksum(m);
		bytes += dp_meta(m)->pre_len;
		sent++;
		if (unlikely(bundled)) { /* the next layer's: mb[0..nn) */
			mb[nn++] = m;
			continue;
		}
		if (unlikely(cap)) /* the capture's out-cipher point */
			dp_cap_pkt(w, DP_CAP_OUT_CIPHER, m, in, NULL, sa, 0);
		dp_count(w, in, DP_CNT_ipsec_out);
		if (unlikely(big)) /* outer IPv4 with DF set (dfbit=copy): drop_mtu there */
			dp_output_frag(w, in, m, nh, neigh, sa->outer_family, sa->dst);
		else
			dp_output_to(w, in, m, nh, neigh, sa->outer_family, sa->dst);
	}
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, sent);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
	if (unlikely(nn))
		dp_xform_bundle_next(w, s, sa, mb, nn);
}

#define ESP_OUTB_FINISH(name, v4, tun4, copy_df, trs_udp, udp6)                                    \
	static void name(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,       \
			 struct rte_mbuf **mb, uint16_t k, uint16_t n)                             \
	{                                                                                          \
		esp_outb_finish(w, s, sa, mb, k, n, v4, tun4, copy_df, trs_udp, udp6);             \
	}

ESP_OUTB_FINISH(esp_outb_tun4_finish, true, true, false, false, false)
ESP_OUTB_FINISH(esp_outb_trs4_finish, true, false, false, false, false)
ESP_OUTB_FINISH(esp_outb_tun4_copydf_finish, true, true, true, false, false)
ESP_OUTB_FINISH(esp_outb_trs4_udp_finish, true, false, false, true, false)
ESP_OUTB_FINISH(esp_outb_ip6_finish, false, false, false, false, false)
ESP_OUTB_FINISH(esp_outb_tun6_udp_finish, false, false, false, false, true)
ESP_OUTB_FINISH(esp_outb_trs6_udp_finish, false, false, false, true, true)

static const struct dp_xform_ops esp_outb_tun4 = {.prepare = esp_outb_prepare,
						  .finish = esp_outb_tun4_finish};
static const struct dp_xform_ops esp_outb_trs4 = {.prepare = esp_outb_prepare,
						  .finish = esp_outb_trs4_finish};
static const struct dp_xform_ops esp_outb_tun4_copydf = {.prepare = esp_outb_copydf_prepare,
							 .finish = esp_outb_tun4_copydf_finish};
static const struct dp_xform_ops esp_outb_trs4_udp = {.prepare = esp_outb_prepare,
						      .finish = esp_outb_trs4_udp_finish};
static const struct dp_xform_ops esp_outb_ip6 = {.prepare = esp_outb_prepare,
						 .finish = esp_outb_ip6_finish};
static const struct dp_xform_ops esp_outb_tun6_udp = {.prepare = esp_outb_prepare,
						      .finish = esp_outb_tun6_udp_finish};
static const struct dp_xform_ops esp_outb_trs6_udp = {.prepare = esp_outb_prepare,
						      .finish = esp_outb_trs6_udp_finish};

const struct dp_xform_ops *dp_esp_out_ops(const struct dp_sa *sa)
{
	bool v4 = sa->outer_family == AF_INET;

	/* copy_df only in tunnel mode over IPv4 (dp_sa_create) */
	if (v4 && sa->copy_df)
		return &esp_outb_tun4_copydf;
	if (v4 && sa->mode == DPS_MODE_TUNNEL) /* lib/ipsec adds any UDP header */
		return &esp_outb_tun4;
	if (!sa->udp_encap)
		return v4 ? &esp_outb_trs4 : &esp_outb_ip6;
	if (sa->mode == DPS_MODE_TUNNEL)
		return &esp_outb_tun6_udp; /* lib/ipsec adds the UDP header */
	return v4 ? &esp_outb_trs4_udp : &esp_outb_trs6_udp;
}
