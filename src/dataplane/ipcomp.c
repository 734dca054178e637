/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IPComp (RFC 3173) with DEFLATE (RFC 2394, raw DEFLATE of RFC 1951) on the
 * compression device (compress.c). Outbound, each packet's payload (tunnel:
 * the whole inner packet; transport: what follows the IP header) is
 * compressed into a fresh mbuf of the dataplane pool, with room for one byte
 * less than would make the packet smaller (RFC 3173 §2.2): a payload that
 * does not shrink, or is below compress.min_size, leaves without an IPComp
 * header (tunnel: as IP-in-IP). Inbound, the payload is decompressed into a
 * fresh mbuf no larger than the largest port MTU allows (a bigger result is
 * a decompression bomb: dropped, counted). The device runs each group to
 * completion (dp_compress_run): no operation outlives the call.
 */
#include <rte_ip.h>
#include <rte_ipsec_sad.h>

#include "dataplane/cksum.h"
#include "dataplane/compress.h"
#include "dataplane/ipcomp.h"
#include "dataplane/output.h"
#include "dataplane/polog.h"
#include "dataplane/sad.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker.h"
#include "dataplane/xform.h"

struct ipcomp_hdr {
	uint8_t nh;
	uint8_t flags;
	rte_be16_t cpi;
} __rte_packed;

static inline uint32_t ip_hdr_len(const uint8_t *ip)
{
	return (ip[0] >> 4) == 4 ? rte_ipv4_hdr_len((const void *)ip) : sizeof(struct rte_ipv6_hdr);
}

/* The traffic class / TOS of the outer header: the inner one's DSCP, its ECN
 * too with RFC 6040 normal mode (ecn on), else Not-ECT. */
static inline uint8_t outer_tos(const struct dp_sa *sa, const uint8_t *inner)
{
	uint8_t tos =
		(inner[0] >> 4) == 4 ? inner[1] : (uint8_t)((inner[0] << 4) | (inner[1] >> 4));

	return sa->ecn ? tos : tos & ~3;
}

/* Prepend the outer header of a tunnel SA to @m (at the inner packet). */
static inline bool outer_hdr(struct dp_worker *w, const struct dp_sa *sa, struct rte_mbuf *m,
			     uint8_t proto, const uint8_t *inner)
{
	uint32_t plen = rte_pktmbuf_pkt_len(m);
	uint8_t tos = outer_tos(sa, inner);
	bool inner_df =
		(inner[0] >> 4) == 4 && (((const struct rte_ipv4_hdr *)inner)->fragment_offset &
					 rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));

	if (sa->outer_family == AF_INET) {
		struct rte_ipv4_hdr *ip =
			(void *)rte_pktmbuf_prepend(m, sizeof(*ip) + RTE_ETHER_HDR_LEN);

		if (ip == NULL)
			return false;
		ip = (void *)((uint8_t *)ip + RTE_ETHER_HDR_LEN);
		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->type_of_service = tos;
		ip->total_length = rte_cpu_to_be_16(plen + sizeof(*ip));
		ip->packet_id = rte_cpu_to_be_16(w->ip_id++);
		ip->fragment_offset = sa->dfbit == DPS_DF_SET || (sa->copy_df && inner_df)
					      ? rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)
					      : 0;
		ip->time_to_live = sa->ttl;
		ip->next_proto_id = proto;
		ip->src_addr = sa->cfg.src.v4.s_addr;
		ip->dst_addr = sa->cfg.dst.v4.s_addr;
		dp_ip4_cksum_set(ip);
	} else {
		struct rte_ipv6_hdr *ip6 =
			(void *)rte_pktmbuf_prepend(m, sizeof(*ip6) + RTE_ETHER_HDR_LEN);

		if (ip6 == NULL)
			return false;
		ip6 = (void *)((uint8_t *)ip6 + RTE_ETHER_HDR_LEN);
		ip6->vtc_flow = rte_cpu_to_be_32(6u << 28 | (uint32_t)tos << 20);
		ip6->payload_len = rte_cpu_to_be_16(plen);
		ip6->proto = proto;
		ip6->hop_limits = sa->ttl;
		memcpy(ip6->src_addr, &sa->cfg.src.v6, 16);
		memcpy(ip6->dst_addr, &sa->cfg.dst.v6, 16);
	}
	rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type = rte_cpu_to_be_16(
		sa->outer_family == AF_INET ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6);
	return true;
}

/* Transport mode: the packet's own header, now before the IPComp header. */
static inline void trs_hdr(uint8_t *ip, uint32_t l3_len)
{
	if ((ip[0] >> 4) == 4) {
		struct rte_ipv4_hdr *h = (void *)ip;

		h->next_proto_id = IPPROTO_COMP;
		h->total_length = rte_cpu_to_be_16(l3_len);
		dp_ip4_cksum_set(h);
	} else {
		struct rte_ipv6_hdr *h = (void *)ip;

		h->proto = IPPROTO_COMP;
		h->payload_len = rte_cpu_to_be_16(l3_len - sizeof(*h));
	}
}

/*
 * The compressed payload in @d gets the headers of @m: the IPComp header,
 * then (transport) @m's IP header or (tunnel, by the caller) the outer one.
 * Returns the packet to send, @d; @m is freed.
 */
static inline struct rte_mbuf *to_compressed(const struct dp_sa *sa, struct rte_mbuf *m,
					     struct rte_mbuf *d, uint32_t hl, const bool tunnel)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *, RTE_ETHER_HDR_LEN);
	struct ipcomp_hdr *c = (void *)rte_pktmbuf_prepend(d, sizeof(*c));

	c->nh = tunnel ? ((ip[0] >> 4) == 4 ? IPPROTO_IPIP : IPPROTO_IPV6)
		       : ((ip[0] >> 4) == 4 ? ip[9] : ip[6]);
	c->flags = 0;
	c->cpi = rte_cpu_to_be_16((uint16_t)sa->cfg.spi);
	if (!tunnel) {
		uint8_t *h = (uint8_t *)rte_pktmbuf_prepend(d, RTE_ETHER_HDR_LEN + hl);

		memcpy(h, rte_pktmbuf_mtod(m, uint8_t *), RTE_ETHER_HDR_LEN + hl);
		trs_hdr(h + RTE_ETHER_HDR_LEN, rte_pktmbuf_pkt_len(d) - RTE_ETHER_HDR_LEN);
	}
	d->port = m->port;
	*dp_meta(d) = *dp_meta(m);
	return d;
}

/* Send the group to the SA's peer, as ESP's finish does (esp_out.c). */
static void out_send(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		     struct rte_mbuf **mb, uint16_t n)
{
	const struct dp_neigh *neigh;
	const struct dp_nexthop *nh = dp_output_peer(w, s, sa, &neigh);
	uint16_t mtu = nh->type == DP_NH_ONLINK || nh->type == DP_NH_GATEWAY
			       ? dp.ports[nh->port].mtu
			       : UINT16_MAX;
	uint64_t bytes = 0;
	uint16_t sent = 0, nn = 0;
	const bool bundled = sa->bundled;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint16_t in = dp.port_of_eth[m->port];
		bool big = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > mtu;

		if (unlikely(big && !sa->frag_outer)) {
			dp_drop(w, in, m, DP_CNT_drop_mtu);
			continue;
		}
		bytes += dp_meta(m)->pre_len;
		sent++;
		if (unlikely(bundled)) { /* the next layer's: mb[0..nn) */
			mb[nn++] = m;
			continue;
		}
		if (unlikely(w->cap != NULL)) /* the capture's out-cipher point */
			dp_cap_pkt(w, DP_CAP_OUT_CIPHER, m, in, NULL, sa, 0);
		dp_count(w, in, DP_CNT_ipsec_out);
		if (unlikely(big))
			dp_output_frag(w, in, m, nh, neigh, sa->outer_family, sa->dst);
		else
			dp_output_to(w, in, m, nh, neigh, sa->outer_family, sa->dst);
	}
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, sent);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
	if (unlikely(nn))
		dp_xform_bundle_next(w, s, sa, mb, nn);
}

/* One chunk (at most DP_COMP_BURST) of an outbound group, left in mb[0..k). */
static uint16_t out_chunk(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n,
			  const bool tunnel)
{
	struct rte_comp_op *ops[DP_COMP_BURST];
	struct rte_mbuf *dst[DP_COMP_BURST];
	uint16_t which[DP_COMP_BURST];
	uint16_t nz = 0, plain = 0, bad = 0, k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
		uint32_t hl = tunnel ? 0
				     : ip_hdr_len(rte_pktmbuf_mtod_offset(m, uint8_t *,
									  RTE_ETHER_HDR_LEN));

		dp_meta(m)->pre_len = l3;
		m->l3_len = hl;
		/* one segment in (the devices' plain case), one out: room for it */
		if (l3 - hl >= dp_compress.min_size && l3 - hl > DP_IPCOMP_HDR_LEN + 1 &&
		    m->nb_segs == 1 && l3 - hl <= dp_compress.room)
			which[nz++] = i;
	}
	/* Without resources a packet goes uncompressed, as RFC 3173 allows. */
	if (nz && rte_comp_op_bulk_alloc(dp_compress.op_pool, ops, nz) == 0)
		nz = 0;
	if (nz && rte_pktmbuf_alloc_bulk(dp.pool, dst, nz) != 0) {
		rte_comp_op_bulk_free(ops, nz);
		nz = 0;
	}
	for (uint16_t j = 0; j < nz; j++) {
		struct rte_mbuf *m = mb[which[j]];
		uint32_t p = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN - m->l3_len;
		struct rte_comp_op *op = ops[j];

		/* room for one byte less than the payload, the IPComp header counted */
		rte_pktmbuf_append(dst[j], p - DP_IPCOMP_HDR_LEN - 1);
		op->op_type = RTE_COMP_OP_STATELESS;
		op->private_xform = dp_compress.ws[w->id].comp;
		op->m_src = m;
		op->m_dst = dst[j];
		op->src.offset = RTE_ETHER_HDR_LEN + m->l3_len;
		op->src.length = p;
		op->dst.offset = 0;
		op->flush_flag = RTE_COMP_FLUSH_FINAL;
	}
	if (nz)
		dp_compress_run(w->id, ops, nz);
	for (uint16_t i = 0, j = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		const uint8_t *inner = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
		uint8_t proto = (inner[0] >> 4) == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;

		if (j < nz && which[j] == i) {
			struct rte_comp_op *op = ops[j];
			struct rte_mbuf *d = dst[j++];

			if (op->status == RTE_COMP_OP_STATUS_SUCCESS &&
			    op->produced <= rte_pktmbuf_pkt_len(d)) {
				rte_pktmbuf_trim(d, rte_pktmbuf_pkt_len(d) - op->produced);
				d = to_compressed(sa, m, d, m->l3_len, tunnel);
				/* the outer header from the inner one, still in m */
				if (tunnel && !outer_hdr(w, sa, d, IPPROTO_COMP, inner)) {
					dp_drop_note(w, DP_NO_PORT, m, DP_DROP_other, sa);
					rte_pktmbuf_free(d);
					rte_pktmbuf_free(m);
					bad++;
					continue;
				}
				rte_pktmbuf_free(m);
				mb[k++] = d;
				continue;
			}
			rte_pktmbuf_free(d); /* did not get smaller, or failed */
		}
		plain++;
		/* Uncompressed: tunnel mode sends IP-in-IP (no IPComp header). The
		 * outer header goes before the inner one, which stays in place. */
		if (tunnel) {
			rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN);
			if (!outer_hdr(w, sa, m, proto, inner)) {
				dp_drop_note(w, DP_NO_PORT, m, DP_DROP_other, sa);
				rte_pktmbuf_free(m);
				bad++;
				continue;
			}
		}
		mb[k++] = m;
	}
	if (nz)
		rte_comp_op_bulk_free(ops, nz);
	dp_sa_count(sa, w->id, DP_SA_CNT_uncompressed, plain);
	dp_sa_count(sa, w->id, DP_SA_CNT_drop_other, bad);
	return k;
}

static inline void ipcomp_out(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			      struct rte_mbuf **mb, uint16_t n, const bool tunnel)
{
	if (unlikely(sa->first_use_ms == 0) && n)
		sa->first_use_ms = dp_now_ms();
	for (uint16_t off = 0; off < n; off += DP_COMP_BURST) {
		uint16_t c = RTE_MIN(n - off, DP_COMP_BURST);

		c = out_chunk(w, sa, &mb[off], c, tunnel);
		out_send(w, s, sa, &mb[off], c);
	}
}

static void ipcomp_out_tun(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			   struct rte_mbuf **mb, uint16_t n)
{
	ipcomp_out(w, s, sa, mb, n, true);
}

static void ipcomp_out_trs(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			   struct rte_mbuf **mb, uint16_t n)
{
	ipcomp_out(w, s, sa, mb, n, false);
}

static const struct dp_xform_ops ipcomp_outb_tun = {.run = ipcomp_out_tun};
static const struct dp_xform_ops ipcomp_outb_trs = {.run = ipcomp_out_trs};

/* ---- inbound ------------------------------------------------------------- */

static inline uint8_t l3_proto(const uint8_t *ip)
{
	return (ip[0] >> 4) == 4 ? ip[9] : ip[6];
}

/* The SAD key of an IPComp or IP-in-IP packet; false if it is neither or too short. */
static inline bool in_key(struct rte_mbuf *m, int v6, union rte_ipsec_sad_key *k)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint32_t hl = v6 ? sizeof(struct rte_ipv6_hdr) : rte_ipv4_hdr_len((const void *)ip);
	uint8_t proto = l3_proto(ip);
	uint32_t spi;

	if (proto == IPPROTO_COMP) {
		if (rte_pktmbuf_pkt_len(m) < RTE_ETHER_HDR_LEN + hl + DP_IPCOMP_HDR_LEN + 1)
			return false;
		spi = (uint32_t)ip[hl + 2] << 8 | ip[hl + 3];
	} else {
		spi = DP_SAD_IPIP;
	}
	m->tx_offload = rte_mbuf_tx_offload(RTE_ETHER_HDR_LEN, hl, 0, 0, 0, 0, 0);
	memset(k, 0, sizeof(*k));
	if (v6) {
		k->v6.spi = rte_cpu_to_be_32(spi);
		memcpy(k->v6.dip, ip + 24, 16);
		memcpy(k->v6.sip, ip + 8, 16);
	} else {
		k->v4.spi = rte_cpu_to_be_32(spi);
		memcpy(&k->v4.dip, ip + 16, 4);
		memcpy(&k->v4.sip, ip + 12, 4);
	}
	return true;
}

bool dp_ipcomp_ipip_sa(const struct dp_ipsec *ipsec, struct rte_mbuf *m, int v6)
{
	union rte_ipsec_sad_key k;
	const union rte_ipsec_sad_key *kp = &k;
	void *sa = NULL;

	if (!in_key(m, v6, &k))
		return false;
	rte_ipsec_sad_lookup(ipsec->sad[DP_SAD_IPCOMP + v6], &kp, &sa, 1);
	return sa != NULL;
}

uint16_t dp_ipcomp_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		      struct rte_mbuf **pkts, uint16_t n, int v6)
{
	union rte_ipsec_sad_key keys[DP_MAX_BURST];
	const union rte_ipsec_sad_key *kp[DP_MAX_BURST];
	struct rte_mbuf *mine[DP_MAX_BURST], *grp[DP_MAX_BURST];
	void *sa[DP_MAX_BURST];
	struct dp_sa *cur = NULL;
	uint16_t k = 0, nm = 0, ng = 0;

	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *ip = rte_pktmbuf_mtod_offset(pkts[i], uint8_t *, RTE_ETHER_HDR_LEN);
		uint8_t proto = l3_proto(ip);

		if (proto != IPPROTO_COMP && proto != IPPROTO_IPIP && proto != IPPROTO_IPV6) {
			pkts[k++] = pkts[i];
			continue;
		}
		if (!in_key(pkts[i], v6, &keys[nm])) {
			dp_drop_note(w, port, pkts[i], DP_DROP_malformed, NULL);
			dp_drop(w, port, pkts[i], DP_CNT_drop_ipcomp_malformed);
			continue;
		}
		kp[nm] = &keys[nm];
		mine[nm++] = pkts[i];
	}
	if (nm == 0)
		return k;
	rte_ipsec_sad_lookup(s->ipsec->sad[DP_SAD_IPCOMP + v6], kp, sa, nm);
	for (uint16_t i = 0; i < nm; i++) {
		struct dp_sa *x = sa[i];
		bool ipip = keys[i].v4.spi == RTE_BE32(DP_SAD_IPIP);

		if (v6)
			ipip = keys[i].v6.spi == RTE_BE32(DP_SAD_IPIP);
		/* IP-in-IP from another source may match <IPIP, destination>
		 * only: it is not an IPComp tunnel's */
		if (x != NULL && ipip &&
		    memcmp(v6 ? (const void *)keys[i].v6.sip : (const void *)&keys[i].v4.sip,
			   &x->cfg.src.v6, v6 ? 16 : 4) != 0)
			x = NULL;
		if (x == NULL) { /* an unknown CPI (fwd.c let only claimed IP-in-IP in) */
			dp_polog(w, port, mine[i], DP_POLOG_unknown_spi, NULL, NULL);
			dp_drop(w, port, mine[i], DP_CNT_drop_unknown_cpi);
			continue;
		}
		/* reassembled: the device reads one segment */
		if (unlikely(mine[i]->nb_segs > 1) && rte_pktmbuf_linearize(mine[i]) != 0) {
			dp_sa_fail(w, x, &mine[i], 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		if (x != cur && ng) {
			dp_xform_run(w, s, cur, grp, ng);
			ng = 0;
		}
		cur = x;
		dp_count(w, port, DP_CNT_ipsec_in);
		grp[ng++] = mine[i];
	}
	if (ng)
		dp_xform_run(w, s, cur, grp, ng);
	return k;
}

/*
 * Give the inner packet (tunnel: at the start of @m) or the restored one
 * (transport: Ethernet and IP header kept) the Ethernet header of a frame
 * received on its port, for the input stage.
 */
static inline bool in_l2(struct rte_mbuf *m, uint16_t eth_port, const bool tunnel)
{
	struct rte_ether_hdr *eth;
	const uint8_t *ip;
	bool v6;

	if (tunnel) {
		ip = rte_pktmbuf_mtod(m, const uint8_t *);
		if (rte_pktmbuf_data_len(m) < 20 || ((ip[0] >> 4) != 4 && (ip[0] >> 4) != 6))
			return false;
		v6 = (ip[0] >> 4) == 6;
		eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, RTE_ETHER_HDR_LEN);
		if (eth == NULL)
			return false;
		eth->src_addr = (struct rte_ether_addr){0};
		eth->ether_type = rte_cpu_to_be_16(v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
		/* The inner header nobody summed (the uncompressed IP-in-IP keeps
		 * the mbuf an ESP layer may have marked): the input stage checks it. */
		m->ol_flags &= ~RTE_MBUF_F_RX_IP_CKSUM_MASK;
	} else {
		eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	}
	eth->dst_addr = dp.ports[dp.port_of_eth[eth_port]].mac;
	return true;
}

/* Transport mode: @m's IP header before the decompressed payload in @d, its
 * protocol the IPComp header's next header. */
static inline bool trs_restore(struct rte_mbuf *m, struct rte_mbuf *d)
{
	uint32_t hl = m->l3_len;
	const uint8_t *old = rte_pktmbuf_mtod(m, const uint8_t *);
	uint8_t nh = old[RTE_ETHER_HDR_LEN + hl];
	uint8_t *h = (uint8_t *)rte_pktmbuf_prepend(d, RTE_ETHER_HDR_LEN + hl);

	if (h == NULL)
		return false;
	memcpy(h, old, RTE_ETHER_HDR_LEN + hl);
	h += RTE_ETHER_HDR_LEN;
	if ((h[0] >> 4) == 4) {
		struct rte_ipv4_hdr *ip = (void *)h;

		ip->next_proto_id = nh;
		ip->total_length = rte_cpu_to_be_16(rte_pktmbuf_pkt_len(d) - RTE_ETHER_HDR_LEN);
		dp_ip4_cksum_set(ip);
	} else {
		struct rte_ipv6_hdr *ip6 = (void *)h;

		ip6->proto = nh;
		ip6->payload_len =
			rte_cpu_to_be_16(rte_pktmbuf_pkt_len(d) - RTE_ETHER_HDR_LEN - sizeof(*ip6));
	}
	return true;
}

/* One chunk of an inbound group: decompressed (or IP-in-IP stripped) packets
 * go back to the worker as a new sub-burst, marked with their SA. */
static void in_chunk(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n,
		     const bool tunnel)
{
	struct dp_stages *st = &w->st;
	struct rte_comp_op *ops[DP_COMP_BURST];
	struct rte_mbuf *dst[DP_COMP_BURST];
	uint16_t which[DP_COMP_BURST];
	uint16_t nz = 0, good = 0;
	uint64_t bytes = 0;
	/* The largest packet a port carries bounds what a payload may inflate to. */
	uint32_t bound = dp_compress.max_mtu;

	for (uint16_t i = 0; i < n; i++)
		if (l3_proto(rte_pktmbuf_mtod_offset(mb[i], uint8_t *, RTE_ETHER_HDR_LEN)) ==
		    IPPROTO_COMP)
			which[nz++] = i;
	if (nz && rte_comp_op_bulk_alloc(dp_compress.op_pool, ops, nz) == 0) {
		dp_sa_fail(w, sa, mb, 0, n, DP_SA_CNT_drop_other);
		return;
	}
	if (nz && rte_pktmbuf_alloc_bulk(dp.pool, dst, nz) != 0) {
		rte_comp_op_bulk_free(ops, nz);
		dp_sa_fail(w, sa, mb, 0, n, DP_SA_CNT_drop_other);
		return;
	}
	for (uint16_t j = 0; j < nz; j++) {
		struct rte_mbuf *m = mb[which[j]];
		uint32_t off = RTE_ETHER_HDR_LEN + m->l3_len + DP_IPCOMP_HDR_LEN;
		struct rte_comp_op *op = ops[j];

		rte_pktmbuf_append(dst[j], tunnel ? bound : bound - m->l3_len);
		op->op_type = RTE_COMP_OP_STATELESS;
		op->private_xform = dp_compress.ws[w->id].decomp;
		op->m_src = m;
		op->m_dst = dst[j];
		op->src.offset = off;
		op->src.length = rte_pktmbuf_pkt_len(m) - off;
		op->dst.offset = 0;
		op->flush_flag = RTE_COMP_FLUSH_FINAL;
	}
	if (nz)
		dp_compress_run(w->id, ops, nz);
	for (uint16_t i = 0, j = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint16_t eth_port = m->port;

		if (j < nz && which[j] == i) {
			struct rte_comp_op *op = ops[j];
			struct rte_mbuf *d = dst[j++];
			uint8_t nh = rte_pktmbuf_mtod_offset(m, uint8_t *,
							     RTE_ETHER_HDR_LEN + m->l3_len)[0];

			if (op->status != RTE_COMP_OP_STATUS_SUCCESS) {
				bool bomb =
					op->status == RTE_COMP_OP_STATUS_OUT_OF_SPACE_TERMINATED ||
					op->status == RTE_COMP_OP_STATUS_OUT_OF_SPACE_RECOVERABLE;

				rte_pktmbuf_free(d);
				dp_sa_fail(w, sa, &m, 0, 1,
					   bomb ? DP_SA_CNT_drop_bomb : DP_SA_CNT_drop_decomp);
				continue;
			}
			rte_pktmbuf_trim(d, rte_pktmbuf_pkt_len(d) - op->produced);
			d->port = eth_port;
			*dp_meta(d) = *dp_meta(m);
			if (tunnel ? nh != IPPROTO_IPIP && nh != IPPROTO_IPV6
				   : !trs_restore(m, d)) {
				rte_pktmbuf_free(d);
				dp_sa_fail(w, sa, &m, 0, 1, DP_SA_CNT_drop_other);
				continue;
			}
			rte_pktmbuf_free(m);
			m = d;
		} else {
			/* uncompressed, IP-in-IP (tunnel SAs only): the inner packet */
			rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN + m->l3_len);
		}
		if (unlikely(!in_l2(m, eth_port, tunnel) || st->n_again == DP_MAX_BURST)) {
			dp_sa_fail(w, sa, &m, 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		bytes += rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
		dp_meta_via_push(dp_meta(m), sa);
		st->again[st->n_again++] = m;
		good++;
	}
	if (nz)
		rte_comp_op_bulk_free(ops, nz);
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, good);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
}

static inline void ipcomp_in(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
			     uint16_t n, const bool tunnel)
{
	if (unlikely(sa->first_use_ms == 0) && n)
		sa->first_use_ms = dp_now_ms();
	for (uint16_t off = 0; off < n; off += DP_COMP_BURST)
		in_chunk(w, sa, &mb[off], RTE_MIN(n - off, DP_COMP_BURST), tunnel);
}

static void ipcomp_in_tun(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			  struct rte_mbuf **mb, uint16_t n)
{
	(void)s;
	ipcomp_in(w, sa, mb, n, true);
}

static void ipcomp_in_trs(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			  struct rte_mbuf **mb, uint16_t n)
{
	(void)s;
	ipcomp_in(w, sa, mb, n, false);
}

static const struct dp_xform_ops ipcomp_inb_tun = {.run = ipcomp_in_tun};
static const struct dp_xform_ops ipcomp_inb_trs = {.run = ipcomp_in_trs};

const struct dp_xform_ops *dp_ipcomp_ops(const struct dp_sa *sa)
{
	bool tunnel = sa->mode == DPS_MODE_TUNNEL;

	if (sa->cfg.dir == DPS_DIR_OUT)
		return tunnel ? &ipcomp_outb_tun : &ipcomp_outb_trs;
	return tunnel ? &ipcomp_inb_tun : &ipcomp_inb_trs;
}
