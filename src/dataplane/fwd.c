/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forwarding of a burst: header checks, one bulk FIB lookup, TTL or hop-limit
 * decrement, then the policy engine (RFC 4301 §5: inbound check, outbound
 * discard/bypass/protect) and output through the neighbour table. Packets for
 * the gateway go to the exception TAP, ESP for the gateway to its SA (whole:
 * fragments of it are reassembled first, frag.c). IPv4 without DF that does
 * not fit the egress link leaves as fragments.
 */
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/cksum.h"
#include "dataplane/esp.h"
#include "dataplane/frag.h"
#include "dataplane/fwd.h"
#include "dataplane/icmp.h"
#include "dataplane/neigh.h"
#include "dataplane/sa.h"
#include "dataplane/spd.h"
#include "dataplane/worker.h"

#define ICMP6_ND_NS   135
#define ICMP6_ND_NA   136
#define IKE_PORT      500
#define IKE_NATT_PORT 4500

enum cls {
	C_DONE,	     /* dropped or handed over already */
	C_LOCAL,     /* for the gateway: exception TAP */
	C_LOCAL_ESP, /* ESP or ESP-in-UDP for the gateway: inbound SA */
	C_FWD,	     /* to be forwarded */
};

union acl_key {
	struct dp_acl4_key k4;
	struct dp_acl6_key k6;
};

/* The per-burst scratch of the policy stage. */
struct burst {
	uint16_t n;
	struct rte_mbuf *m[DP_MAX_BURST];
	const struct dp_nexthop *nh[DP_MAX_BURST];
	const uint8_t *key[DP_MAX_BURST];
};

const struct dp_nexthop *dp_route1(const struct dp_snapshot *s, int family, const void *dst)
{
	uint64_t nh;

	if (family == AF_INET) {
		uint32_t a;

		memcpy(&a, dst, 4);
		a = rte_be_to_cpu_32(a);
		rte_fib_lookup_bulk(s->routes->fib4, &a, &nh, 1);
	} else {
		uint8_t a[1][RTE_FIB6_IPV6_ADDR_SIZE];

		memcpy(a[0], dst, 16);
		rte_fib6_lookup_bulk(s->routes->fib6, a, &nh, 1);
	}
	return &s->routes->nh[nh];
}

/* Next hop: the gateway of the route, or the destination itself when on-link. */
static inline const void *nh_addr(const struct dp_nexthop *nh, const void *dst)
{
	return nh->type == DP_NH_GATEWAY ? (const void *)&nh->gw.v4 : dst;
}

const struct dp_neigh *dp_output_neigh(const struct dp_nexthop *nh, int family, const void *dst)
{
	if (nh->type != DP_NH_ONLINK && nh->type != DP_NH_GATEWAY)
		return NULL;
	return dp_neigh_lookup(dp.neigh, nh->port, family, nh_addr(nh, dst));
}

void dp_output_to(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, const struct dp_nexthop *nh,
		  const struct dp_neigh *n, int family, const void *dst)
{
	const void *addr;

	if (unlikely(nh->type != DP_NH_ONLINK && nh->type != DP_NH_GATEWAY)) {
		dp_drop(w, in, m, DP_CNT_drop_no_route);
		return;
	}
	/* RFC 791 §2.3: IPv4 without DF is fragmented on the way; a router never
	 * fragments IPv6 (RFC 8200 §5). */
	if (unlikely(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > dp.ports[nh->port].mtu)) {
		if (family == AF_INET)
			dp_frag_output(w, in, m, nh, n, family, dst);
		else
			dp_drop(w, in, m, DP_CNT_drop_mtu);
		return;
	}
	addr = nh_addr(nh, dst);
	if (likely(n != NULL)) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

		eth->dst_addr = n->mac;
		eth->src_addr = dp.ports[nh->port].mac;
		dp_tx(w, dp.ports[nh->port].eth_id, m);
		return;
	}
	struct dp_meta *meta = dp_meta(m);

	meta->out_port = nh->port;
	meta->nh.family = family;
	memcpy(&meta->nh.v4, addr, family == AF_INET ? 4 : 16);
	dp_to_control(w, in, m, DP_CTRL_RESOLVE, DP_CNT_neigh_wait);
}

void dp_output(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf *m,
	       const struct dp_nexthop *nh, int family, const void *dst)
{
	(void)s;
	dp_output_to(w, in, m, nh, dp_output_neigh(nh, family, dst), family, dst);
}

static inline const void *ip_dst(struct rte_mbuf *m, int v6)
{
	return rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN + (v6 ? 24 : 16));
}

static inline void build_key(struct rte_mbuf *m, int v6, union acl_key *k)
{
	uint32_t l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
	const void *ip = rte_pktmbuf_mtod_offset(m, void *, RTE_ETHER_HDR_LEN);

	if (v6)
		dp_spd_key6(&k->k6, ip, l3);
	else
		dp_spd_key4(&k->k4, ip, l3);
}

static inline uint8_t verdict_of(const struct dp_spd *spd, const struct dp_policy *p, int v6,
				 unsigned int wid)
{
	if (p == NULL)
		return spd->def_verdict[v6];
	p->hits[wid].n++;
	return p->verdict;
}

/*
 * RFC 4301 §5.2: a packet that arrived in clear may pass only a policy that
 * does not require IPsec; one that was decrypted only a policy that accepts
 * the SA it came through.
 */
static inline bool inbound_ok(struct dp_worker *w, const struct dp_spd *spd, uint16_t in,
			      struct rte_mbuf *m, const struct dp_policy *p, int v6,
			      struct dp_sa *via)
{
	uint8_t v = verdict_of(spd, p, v6, w->id);

	if (via != NULL) {
		if ((v == DP_V_REQUIRE_IN || v == DP_V_USE_IN) && dp_policy_accepts(p, via))
			return true;
		dp_sa_count(via, w->id, DP_SA_CNT_drop_policy, 1);
		rte_pktmbuf_free(m);
		return false;
	}
	if (v == DP_V_BYPASS || v == DP_V_USE_IN)
		return true;
	dp_drop(w, in, m, v == DP_V_DISCARD ? DP_CNT_drop_policy : DP_CNT_drop_plaintext);
	return false;
}

struct sa_group {
	struct dp_sa *sa;
	uint16_t n;
	struct rte_mbuf *m[DP_MAX_BURST];
};

/* Group distance at which the crypto state of a later SA group is prefetched. */
#define SA_PREFETCH_AHEAD 4

/*
 * Append @m to @sa's group of the burst. The worker's slot in the SA's
 * counters remembers which group that is (stamped with the burst's @gen), so
 * a burst spread over many SAs costs no search; a stale stamp is caught by
 * checking the group really holds @sa.
 */
static inline void protect(struct sa_group *g, uint16_t *ng, uint32_t gen, unsigned int wid,
			   struct dp_sa *sa, struct rte_mbuf *m)
{
	struct dp_sa_counters *c = &sa->cnt[wid];
	uint16_t i = c->grp;

	if (c->grp_gen != gen || i >= *ng || g[i].sa != sa) {
		i = (*ng)++;
		g[i].sa = sa;
		g[i].n = 0;
		c->grp_gen = gen;
		c->grp = i;
	}
	g[i].m[g[i].n++] = m;
}

/*
 * With thousands of SAs in use, a packet's policy, SA, counters, lib/ipsec
 * SA and crypto session are all likely cold, and each is found through the
 * previous one. Missing on them one packet at a time costs a chain of memory
 * latencies per packet; asking for a whole burst's lines one stage at a time
 * overlaps them.
 */
static void prefetch_policies(const struct dp_policy **pol, uint16_t n, unsigned int wid)
{
	const struct dp_policy *p;

	/* A policy already asked for by the previous packet is skipped: the
	 * common burst of one flow costs a compare per packet and stage. */
	for (uint16_t i = 0; i < n; i++)
		if ((p = pol[i]) != NULL && (i == 0 || p != pol[i - 1]))
			rte_prefetch0(p);
	for (uint16_t i = 0; i < n; i++) {
		if ((p = pol[i]) == NULL || (i > 0 && p == pol[i - 1]))
			continue;
		rte_prefetch0(&p->hits[wid]);
		if (p->sa != NULL) {
			rte_prefetch0(p->sa);
			rte_prefetch0((const uint8_t *)p->sa + RTE_CACHE_LINE_SIZE);
		}
	}
	for (uint16_t i = 0; i < n; i++)
		if ((p = pol[i]) != NULL && (i == 0 || p != pol[i - 1]) && p->sa != NULL)
			rte_prefetch0(&p->sa->cnt[wid]);
}

/* The outbound SPD for packets about to leave: bypass, discard, or protect. */
static void outbound(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
		     struct burst *b, bool routed)
{
	const struct dp_spd *spd = s->ipsec->spd;
	const struct dp_policy *pol[DP_MAX_BURST];
	static __thread struct sa_group g[DP_MAX_BURST];
	static __thread uint32_t gen;
	uint16_t ng = 0;

	dp_spd_lookup(spd, v6, DP_SPD_OUT, b->key, pol, b->n);
	prefetch_policies(pol, b->n, w->id);
	gen++;
	for (uint16_t i = 0; i < b->n; i++) {
		struct rte_mbuf *m = b->m[i];

		switch (verdict_of(spd, pol[i], v6, w->id)) {
		case DP_V_BYPASS:
			if (routed)
				dp_output(w, s, in, m, b->nh[i], v6 ? AF_INET6 : AF_INET,
					  ip_dst(m, v6));
			else
				dp_tx(w, dp.ports[in].eth_id, m);
			break;
		case DP_V_PROTECT:
			protect(g, &ng, gen, w->id, pol[i]->sa, m);
			break;
		case DP_V_NO_SA:
			pol[i]->hits[w->id].no_sa++; /* seen by the PF_KEY server: ACQUIRE */
			dp_drop(w, in, m, DP_CNT_drop_no_sa);
			break;
		default:
			dp_drop(w, in, m, DP_CNT_drop_policy);
		}
	}
	for (uint16_t i = 0; i < ng && i < SA_PREFETCH_AHEAD; i++)
		dp_sa_prefetch_state(g[i].sa, w->id);
	for (uint16_t i = 0; i < ng; i++) {
		uint16_t k;

		if (i + SA_PREFETCH_AHEAD < ng)
			dp_sa_prefetch_state(g[i + SA_PREFETCH_AHEAD].sa, w->id);
		k = dp_esp_out_fit(w, s, in, g[i].sa, g[i].m, g[i].n, routed);
		if (k)
			g[i].sa->run(w, s, g[i].sa, g[i].m, k);
	}
}

/* ESP (protocol 50) or ESP-in-UDP on one of the NAT-T ports, for the gateway. */
static inline bool is_esp(const struct dp_ipsec *ipsec, struct rte_mbuf *m, int v6)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint32_t hl = v6 ? sizeof(struct rte_ipv6_hdr) : rte_ipv4_hdr_len((const void *)ip);
	uint8_t proto = v6 ? ((const struct rte_ipv6_hdr *)ip)->proto
			   : ((const struct rte_ipv4_hdr *)ip)->next_proto_id;
	const struct rte_udp_hdr *udp = (const void *)(ip + hl);

	if (proto == IPPROTO_ESP)
		return true;
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

/* After the FIB: local delivery, ESP, inbound policy, outbound policy. */
static void policy_stage(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
			 struct rte_mbuf **pkts, const struct dp_nexthop **nh, const uint8_t *cls,
			 uint16_t n, struct dp_sa *via)
{
	const struct dp_ipsec *ipsec = s->ipsec;
	union acl_key keys[DP_MAX_BURST];
	struct burst loc, fwd, out;
	struct rte_mbuf *esp[DP_MAX_BURST];
	const struct dp_policy *pol[DP_MAX_BURST];
	uint16_t nesp = 0;

	loc.n = fwd.n = out.n = 0;
	if (!ipsec->active) {
		for (uint16_t i = 0; i < n; i++) {
			if (cls[i] == C_FWD)
				dp_output(w, s, in, pkts[i], nh[i], v6 ? AF_INET6 : AF_INET,
					  ip_dst(pkts[i], v6));
			else if (cls[i] != C_DONE)
				dp_punt(w, in, pkts[i]);
		}
		return;
	}
	for (uint16_t i = 0; i < n; i++) {
		struct burst *b = cls[i] == C_FWD ? &fwd : &loc;

		if (cls[i] == C_DONE)
			continue;
		if (cls[i] == C_LOCAL_ESP && via == NULL) {
			/* RFC 4303 §3.4.1: ESP is reassembled before it is processed. */
			if (unlikely(dp_is_fragment(pkts[i], v6)) &&
			    (pkts[i] = dp_reasm(w, in, pkts[i], v6)) == NULL)
				continue;
			if (is_esp(ipsec, pkts[i], v6)) {
				esp[nesp++] = pkts[i];
				continue;
			}
		}
		build_key(pkts[i], v6, &keys[i]);
		b->key[b->n] = (const uint8_t *)&keys[i];
		b->nh[b->n] = nh[i];
		b->m[b->n++] = pkts[i];
	}
	if (nesp)
		dp_esp_in(w, s, in, esp, nesp, v6);
	dp_spd_lookup(ipsec->spd, v6, DP_SPD_IN, loc.key, pol, loc.n);
	for (uint16_t i = 0; i < loc.n; i++)
		if (inbound_ok(w, ipsec->spd, in, loc.m[i], pol[i], v6, via))
			dp_punt(w, in, loc.m[i]);
	dp_spd_lookup(ipsec->spd, v6, DP_SPD_FWD, fwd.key, pol, fwd.n);
	for (uint16_t i = 0; i < fwd.n; i++) {
		if (!inbound_ok(w, ipsec->spd, in, fwd.m[i], pol[i], v6, via))
			continue;
		out.key[out.n] = fwd.key[i];
		out.nh[out.n] = fwd.nh[i];
		out.m[out.n++] = fwd.m[i];
	}
	if (out.n)
		outbound(w, s, in, v6, &out, true);
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
	uint16_t new =
		rte_cpu_to_be_16((uint16_t)((ip->time_to_live - 1) << 8 | ip->next_proto_id));
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
	    !dp_ip4_cksum_ok(ip, hlen))
		return DP_CNT_drop_bad_cksum;
	return DP_CNT_MAX;
}

/* Classify one routed packet; handles the drops of plain forwarding. */
static inline uint8_t route_class(struct dp_worker *w, uint16_t in, struct rte_mbuf *m,
				  const struct dp_nexthop *nh, uint8_t *ttl, bool mcast_dst)
{
	switch (nh->type) {
	case DP_NH_LOCAL:
		return C_LOCAL_ESP; /* refined by is_esp() in the policy stage */
	case DP_NH_NONE:
		if (mcast_dst) /* broadcast and multicast are the gateway's */
			return C_LOCAL;
		dp_drop(w, in, m, DP_CNT_drop_no_route);
		return C_DONE;
	}
	if (unlikely(l2_multicast(m))) {
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

void dp_fwd4(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf **pkts,
	     uint16_t n, struct dp_sa *via)
{
	uint32_t dst[DP_MAX_BURST];
	uint64_t nhi[DP_MAX_BURST];
	const struct dp_nexthop *nh[DP_MAX_BURST];
	uint8_t cls[DP_MAX_BURST];
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
	for (uint16_t i = 0; i < k; i++) {
		struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(pkts[i], struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

		nh[i] = &s->routes->nh[nhi[i]];
		cls[i] = route_class(w, in, pkts[i], nh[i], &ip->time_to_live,
				     dst[i] == UINT32_MAX || (dst[i] >> 28) == 0xe);
		if (cls[i] == C_FWD) {
			ttl_decrement(ip);
			dp_count(w, in, DP_CNT_fwd_ipv4);
		}
	}
	policy_stage(w, s, in, 0, pkts, nh, cls, k, via);
}

static inline bool is_nd(struct rte_mbuf *m, const struct rte_ipv6_hdr *ip6)
{
	const uint8_t *icmp = (const uint8_t *)(ip6 + 1);

	return ip6->proto == IPPROTO_ICMPV6 &&
	       rte_pktmbuf_data_len(m) >= RTE_ETHER_HDR_LEN + sizeof(*ip6) + 24 &&
	       (icmp[0] == ICMP6_ND_NS || icmp[0] == ICMP6_ND_NA);
}

void dp_fwd6(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, struct rte_mbuf **pkts,
	     uint16_t n, struct dp_sa *via)
{
	uint8_t dst[DP_MAX_BURST][RTE_FIB6_IPV6_ADDR_SIZE];
	uint64_t nhi[DP_MAX_BURST];
	const struct dp_nexthop *nh[DP_MAX_BURST];
	uint8_t cls[DP_MAX_BURST];
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
		if (unlikely(via == NULL && is_nd(m, ip6))) {
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
	for (uint16_t i = 0; i < k; i++) {
		struct rte_ipv6_hdr *ip6 =
			rte_pktmbuf_mtod_offset(pkts[i], struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);

		nh[i] = &s->routes->nh[nhi[i]];
		cls[i] = route_class(w, in, pkts[i], nh[i], &ip6->hop_limits, false);
		if (cls[i] == C_FWD) {
			ip6->hop_limits--;
			dp_count(w, in, DP_CNT_fwd_ipv6);
		}
	}
	policy_stage(w, s, in, 1, pkts, nh, cls, k, via);
}

/* The gateway's own IKE traffic always bypasses the SPD, as charon's
 * per-socket bypass policies make it do in a kernel. */
static inline bool is_ike(const union acl_key *k, int v6)
{
	uint8_t proto = v6 ? k->k6.proto : k->k4.proto;
	uint16_t sp = v6 ? k->k6.sport : k->k4.sport, dp_ = v6 ? k->k6.dport : k->k4.dport;

	return proto == IPPROTO_UDP &&
	       (sp == RTE_BE16(IKE_PORT) || sp == RTE_BE16(IKE_NATT_PORT) ||
		dp_ == RTE_BE16(IKE_PORT) || dp_ == RTE_BE16(IKE_NATT_PORT));
}

void dp_from_kernel(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		    struct rte_mbuf **pkts, uint16_t n)
{
	union acl_key keys[DP_MAX_BURST];
	struct burst b[2];

	b[0].n = b[1].n = 0;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		int v6 = eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV6);
		bool ip = v6 || eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV4);

		if (!s->ipsec->active || !ip ||
		    rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + (v6 ? 40 : 20)) {
			dp_tx(w, dp.ports[port].eth_id, m);
			continue;
		}
		build_key(m, v6, &keys[i]);
		if (is_ike(&keys[i], v6)) {
			dp_tx(w, dp.ports[port].eth_id, m);
			continue;
		}
		b[v6].key[b[v6].n] = (const uint8_t *)&keys[i];
		b[v6].m[b[v6].n++] = m;
	}
	for (int v6 = 0; v6 < 2; v6++)
		if (b[v6].n)
			outbound(w, s, port, v6, &b[v6], false);
}

void dp_fwd_local(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		  struct rte_mbuf *m)
{
	int v6 = rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type ==
		 RTE_BE16(RTE_ETHER_TYPE_IPV6);
	const struct dp_nexthop *nh = dp_route1(s, v6 ? AF_INET6 : AF_INET, ip_dst(m, v6));
	union acl_key key;
	struct burst b;

	if (nh->type == DP_NH_LOCAL) { /* the gateway's kernel sent the packet */
		dp_punt(w, port, m);
		return;
	}
	if (!s->ipsec->active) {
		dp_output(w, s, port, m, nh, v6 ? AF_INET6 : AF_INET, ip_dst(m, v6));
		return;
	}
	build_key(m, v6, &key);
	b.n = 1;
	b.m[0] = m;
	b.nh[0] = nh;
	b.key[0] = (const uint8_t *)&key;
	outbound(w, s, port, v6, &b, true);
}
