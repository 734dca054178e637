/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The input stage of a sub-burst of one family: header checks, Ethernet
 * padding trimmed, one bulk FIB lookup, TTL or hop-limit decrement, and the
 * drops of plain forwarding (no route, TTL expired, too big with DF). Its
 * output are the sub-bursts of the stages after it (stage.h): ESP for the
 * gateway (whole: fragments of it are reassembled first, frag.c), the rest
 * for the gateway, and what is forwarded.
 */
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/ah.h"
#include "dataplane/cksum.h"
#include "dataplane/frag.h"
#include "dataplane/fwd.h"
#include "dataplane/icmp.h"
#include "dataplane/ipcomp.h"
#include "dataplane/output.h"
#include "dataplane/polog.h"
#include "dataplane/sad.h"
#include "dataplane/spd.h"
#include "dataplane/worker.h"

#define ICMP6_ND_NS 135
#define ICMP6_ND_NA 136

enum cls {
	C_DONE,	     /* dropped or handed over already */
	C_LOCAL,     /* for the gateway */
	C_LOCAL_ESP, /* for the gateway, maybe ESP or ESP-in-UDP: an inbound SA's */
	C_FWD,	     /* to be forwarded */
};

static inline const void *ip_dst(struct rte_mbuf *m, int v6)
{
	return rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN + (v6 ? 24 : 16));
}

/* is_esp() for the protocols other than ESP and AH. */
static __rte_noinline bool is_esp_other(const struct dp_ipsec *ipsec, struct rte_mbuf *m, int v6,
					uint8_t proto)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint32_t hl = v6 ? sizeof(struct rte_ipv6_hdr) : rte_ipv4_hdr_len((const void *)ip);
	const struct rte_udp_hdr *udp = (const void *)(ip + hl);

	if (v6 && (proto == 0 || proto == 43 || proto == 60)) /* AH after extension headers */
		return dp_ah_off6(ip, rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN) != 0;
	/* IPComp, and the IP-in-IP of an IPComp tunnel's peer (its uncompressed
	 * packets): other IP-in-IP stays the gateway's, under the inbound policy */
	if (proto == IPPROTO_COMP)
		return ipsec->sad[DP_SAD_IPCOMP + v6] != NULL;
	if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6)
		return ipsec->sad[DP_SAD_IPCOMP + v6] != NULL && dp_ipcomp_ipip_sa(ipsec, m, v6);
	if (proto != IPPROTO_UDP || rte_pktmbuf_pkt_len(m) < RTE_ETHER_HDR_LEN + hl + sizeof(*udp))
		return false;
	if (!v6 && (((const struct rte_ipv4_hdr *)ip)->fragment_offset &
		    rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
		return false;
	for (unsigned int i = 0; i < ipsec->n_natt_ports; i++)
		if (udp->dst_port == ipsec->natt_ports[i])
			return true;
	return false;
}

/* ESP (protocol 50) or ESP-in-UDP on one of the NAT-T ports, for the gateway;
 * also AH, IPComp. ESP and AH, the common case, are told here inline. */
static __rte_always_inline bool is_esp(const struct dp_ipsec *ipsec, struct rte_mbuf *m, int v6)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint8_t proto = v6 ? ip[6] : ip[9];

	if (proto == IPPROTO_ESP || proto == IPPROTO_AH)
		return true;
	return is_esp_other(ipsec, m, v6, proto);
}

/* ESP (or ESP-in-UDP), AH or IPComp whose ipsec.*_enable is off. */
static bool proto_off(const struct dp_ipsec *ipsec, struct rte_mbuf *m, int v6)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint8_t proto = v6 ? ip[6] : ip[9];

	if (proto == IPPROTO_AH)
		return ipsec->proto_off & DP_OFF_AH;
	if (proto == IPPROTO_COMP)
		return ipsec->proto_off & DP_OFF_IPCOMP;
	return (ipsec->proto_off & DP_OFF_ESP) && is_esp(ipsec, m, v6);
}

static inline void to_burst(struct dp_burst *b, struct rte_mbuf *m, const struct dp_nexthop *nh)
{
	b->m[b->n] = m;
	b->nh[b->n++] = nh;
}

/* The same with the packet's SPD key when an SPD is @active, made in the
 * stage's key array at @slot (the packet's place in the sub-burst: no two
 * packets share one), for the policy stage. */
static inline void to_burst_keyed(struct dp_stages *st, struct dp_burst *b, struct rte_mbuf *m,
				  const struct dp_nexthop *nh, int v6, uint16_t slot, bool active)
{
	if (active) {
		dp_spd_key(m, v6, &st->keys[slot]);
		b->key[b->n] = (const uint8_t *)&st->keys[slot];
	}
	to_burst(b, m, nh);
}

/*
 * A decrypted packet goes to the inbound SAs again only as the next layer of
 * a bundle (RFC 4301 §4.5): what a transport mode SA left is the same outer
 * header over the next protocol (IPComp after ESP, ESP after AH, or the
 * IP-in-IP of an IPComp tunnel that did not compress), at most DP_VIA_MAX
 * SAs in all. What a tunnel SA decrypted is the inner packet: the inbound
 * check decides about it, as about everything the last layer leaves.
 */
static inline bool next_layer(struct rte_mbuf *m)
{
	const struct dp_meta *mt = dp_meta(m);

	return mt->via->mode == DPS_MODE_TRANSPORT && mt->n_via < DP_VIA_MAX;
}

/*
 * Hand a classified packet to the stages after this one: ESP for the gateway
 * to its inbound SAs (whole: RFC 4303 §3.4.1, fragments are reassembled
 * first), the rest for the gateway and what is forwarded to the policy stage.
 * A decrypted packet is taken for IPsec again only as the next layer of a
 * bundle (next_layer()). Called in the same pass as the route's class, with
 * the burst's invariants (@ipsec, @active) read once by the caller.
 */
static __rte_always_inline void sort_out(struct dp_worker *w, const struct dp_ipsec *ipsec,
					 uint16_t in, int v6, struct rte_mbuf *m,
					 const struct dp_nexthop *nh, uint8_t cls, uint16_t slot,
					 const bool decrypted, const bool active)
{
	struct dp_stages *st = &w->st;

	switch (cls) {
	case C_DONE:
		return;
	case C_FWD:
		to_burst_keyed(st, &st->fwd, m, nh, v6, slot, active);
		return;
	case C_LOCAL_ESP:
		if (decrypted && !next_layer(m))
			break;
		if (unlikely(ipsec->proto_off) && proto_off(ipsec, m, v6)) {
			dp_drop_note(w, in, m, DP_DROP_proto_off, NULL);
			dp_drop(w, in, m, DP_CNT_drop_proto_off);
			return;
		}
		if (!active)
			break;
		if (unlikely(dp_is_fragment(m, v6)) && (m = dp_reasm(w, in, m, v6)) == NULL)
			return;
		if (is_esp(ipsec, m, v6)) {
			if (!decrypted)
				dp_meta(m)->n_via = 0;
			st->esp[st->n_esp++] = m;
			return;
		}
		break;
	}
	to_burst_keyed(st, &st->local, m, nh, v6, slot, active);
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
 * TTL: unlike RFC 1141's shortcut it never yields 0xffff for a zero sum. The
 * TTL is the word's high byte and at least 2 here, so m' = m - 0x0100 and
 * ~m + m' = 0xfeff whatever m: one addition to the checksum as stored (a
 * ones' complement sum is the same in either byte order, RFC 1071 §2). */
static inline void ttl_decrement(struct rte_ipv4_hdr *ip)
{
	uint32_t sum = (uint32_t)(uint16_t)~ip->hdr_checksum + RTE_BE16(0xfeff);

	ip->time_to_live--;
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
	uint32_t hlen, tlen;

	if (rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + sizeof(*ip))
		return DP_CNT_drop_malformed;
	hlen = rte_ipv4_hdr_len(ip);
	tlen = rte_be_to_cpu_16(ip->total_length); /* once: DPDK's swap is an asm statement */
	if ((ip->version_ihl >> 4) != 4 || hlen < sizeof(*ip) ||
	    rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + hlen || tlen < hlen ||
	    l3_trim(m, tlen) < 0)
		return DP_CNT_drop_malformed;
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		return DP_CNT_drop_bad_cksum;
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
	    !dp_ip4_cksum_ok(ip, hlen))
		return DP_CNT_drop_bad_cksum;
	return DP_CNT_MAX;
}

/* Classify one routed packet; handles the drops of plain forwarding. */
static inline uint8_t route_class(struct dp_worker *w, uint16_t in, struct rte_mbuf *m,
				  const struct dp_nexthop *nh, uint8_t *ttl, bool mcast_dst,
				  const bool decrypted)
{
	switch (nh->type) {
	case DP_NH_LOCAL:
		return C_LOCAL_ESP; /* refined by is_esp() */
	case DP_NH_NONE:
		if (mcast_dst) /* broadcast and multicast are the gateway's */
			return C_LOCAL;
		dp_drop(w, in, m, DP_CNT_drop_no_route);
		return C_DONE;
	}
	/* a decrypted packet's frame is the one its SA's finish made, to the
	 * port's own address */
	if (!decrypted && unlikely(l2_multicast(m))) {
		dp_drop(w, in, m, DP_CNT_drop_l2_other);
		return C_DONE;
	}
	if (unlikely(*ttl <= 1)) {
		dp_drop(w, in, m, DP_CNT_drop_ttl_expired);
		return C_DONE;
	}
	/* Too big already before any IPsec overhead: no need to go further,
	 * unless it may be fragmented (dp_output_to(), or once protected). */
	if (unlikely(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > dp.ports[nh->port].mtu) &&
	    !dp_may_fragment4(m)) {
		dp_icmp_too_big(w, in, m, dp.ports[nh->port].mtu, false);
		dp_drop(w, in, m, DP_CNT_drop_mtu);
		return C_DONE;
	}
	return C_FWD;
}

/* The route, class and sorting of the @k packets that passed the checks,
 * in one pass; specialised for received and decrypted sub-bursts. */
static __rte_always_inline void route4(struct dp_worker *w, const struct dp_snapshot *s,
				       uint16_t in, struct rte_mbuf **pkts, const uint32_t *dst,
				       const uint64_t *nhi, uint16_t k, const bool decrypted)
{
	const struct dp_ipsec *ipsec = s->ipsec;
	const bool active = ipsec->active;
	const struct dp_nexthop *nhs = s->routes->nh;

	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
		const struct dp_nexthop *nh = &nhs[nhi[i]];
		uint8_t cls = route_class(w, in, m, nh, &ip->time_to_live,
					  dst[i] == UINT32_MAX || (dst[i] >> 28) == 0xe, decrypted);

		if (cls == C_FWD) {
			ttl_decrement(ip);
			dp_count(w, in, DP_CNT_fwd_ipv4);
		}
		sort_out(w, ipsec, in, 0, m, nh, cls, i, decrypted, active);
	}
}

void dp_fwd_input4(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
		   struct rte_mbuf **pkts, uint16_t n, bool decrypted)
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
	rte_fib_lookup_bulk(s->routes->fib4, dst, nhi, k);
	if (decrypted)
		route4(w, s, in, pkts, dst, nhi, k, true);
	else
		route4(w, s, in, pkts, dst, nhi, k, false);
}

static inline bool is_nd(struct rte_mbuf *m, const struct rte_ipv6_hdr *ip6)
{
	const uint8_t *icmp = (const uint8_t *)(ip6 + 1);

	return ip6->proto == IPPROTO_ICMPV6 &&
	       rte_pktmbuf_data_len(m) >= RTE_ETHER_HDR_LEN + sizeof(*ip6) + 24 &&
	       (icmp[0] == ICMP6_ND_NS || icmp[0] == ICMP6_ND_NA);
}

static __rte_always_inline void route6(struct dp_worker *w, const struct dp_snapshot *s,
				       uint16_t in, struct rte_mbuf **pkts, const uint64_t *nhi,
				       uint16_t k, const bool decrypted)
{
	const struct dp_ipsec *ipsec = s->ipsec;
	const bool active = ipsec->active;
	const struct dp_nexthop *nhs = s->routes->nh;

	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ipv6_hdr *ip6 =
			rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);
		const struct dp_nexthop *nh = &nhs[nhi[i]];
		uint8_t cls = route_class(w, in, m, nh, &ip6->hop_limits, false, decrypted);

		if (cls == C_FWD) {
			ip6->hop_limits--;
			dp_count(w, in, DP_CNT_fwd_ipv6);
		}
		sort_out(w, ipsec, in, 1, m, nh, cls, i, decrypted, active);
	}
}

void dp_fwd_input6(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
		   struct rte_mbuf **pkts, uint16_t n, bool decrypted)
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
		if (unlikely(!decrypted && is_nd(m, ip6))) {
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
	rte_fib6_lookup_bulk(s->routes->fib6, dst, nhi, k);
	if (decrypted)
		route6(w, s, in, pkts, nhi, k, true);
	else
		route6(w, s, in, pkts, nhi, k, false);
}

void dp_fwd_originated(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		       struct rte_mbuf *m)
{
	int v6 = rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type ==
		 RTE_BE16(RTE_ETHER_TYPE_IPV6);
	const struct dp_nexthop *nh = dp_route1(s, v6 ? AF_INET6 : AF_INET, ip_dst(m, v6));
	struct dp_stages *st = &w->st;

	if (nh->type == DP_NH_LOCAL) { /* the gateway's kernel sent the packet */
		dp_punt(w, port, m);
		return;
	}
	if (!s->ipsec->active) {
		to_burst(&st->clear, m, nh);
		return;
	}
	dp_spd_key(m, v6, &st->keys[st->out.n]);
	st->out.key[st->out.n] = (const uint8_t *)&st->keys[st->out.n];
	to_burst(&st->out, m, nh);
}
