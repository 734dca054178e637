/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The output stage. A packet arrives here routed: in clear from the policy
 * stage (a burst, its next hops from the input stage's bulk FIB lookup), or
 * protected from an SA's transform (a group, to the SA's peer). It leaves
 * through the neighbour table to the egress port's transmit staging, as
 * fragments when it is IPv4 without DF larger than the link (RFC 791 §2.3),
 * or to the control thread to wait for ARP/ND.
 */
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>

#include "dataplane/frag.h"
#include "dataplane/icmp.h"
#include "dataplane/mtu.h"
#include "dataplane/neigh.h"
#include "dataplane/output.h"
#include "dataplane/sa.h"
#include "dataplane/worker.h"

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

static inline bool nh_routed(const struct dp_nexthop *nh)
{
	return nh->type == DP_NH_ONLINK || nh->type == DP_NH_GATEWAY;
}

/* Next hop: the gateway of the route, or the destination itself when on-link. */
static inline const void *nh_addr(const struct dp_nexthop *nh, const void *dst)
{
	return nh->type == DP_NH_GATEWAY ? (const void *)&nh->gw.v4 : dst;
}

static const struct dp_neigh *neigh_of(const struct dp_nexthop *nh, int family, const void *dst)
{
	if (!nh_routed(nh))
		return NULL;
	return dp_neigh_lookup(dp.neigh, nh->port, family, nh_addr(nh, dst));
}

/*
 * The next hop and neighbour of @sa's peer, kept in the worker's counter line
 * of the SA from one loop to the next. The route is the snapshot's: kept while
 * the snapshot is the same one (its generation). The neighbour entry is kept
 * while no entry was added or removed (the table's generation): a removed one
 * is freed only after a grace period that began after the count changed, so
 * a worker that reads it unchanged holds a live entry to the end of its loop.
 * Its state and MAC are read each time, as a lookup would.
 */
const struct dp_nexthop *dp_output_peer(struct dp_worker *w, const struct dp_snapshot *s,
					const struct dp_sa *sa, const struct dp_neigh **neigh)
{
	struct dp_sa_counters *c = dp_sa_cnt(sa, w->id);
	uint32_t ngen = __atomic_load_n(&dp.neigh->gen, __ATOMIC_ACQUIRE);

	if (unlikely(c->peer_sgen != s->gen || c->peer_ngen != ngen)) {
		c->peer_sgen = s->gen;
		c->peer_ngen = ngen;
		c->peer_nh = dp_route1(s, sa->outer_family, sa->dst);
		c->peer_neigh = nh_routed(c->peer_nh) ? dp_neigh_find(dp.neigh, c->peer_nh->port,
								      sa->outer_family,
								      nh_addr(c->peer_nh, sa->dst))
						      : NULL;
	}
	*neigh = dp_neigh_usable(c->peer_neigh);
	return c->peer_nh;
}

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

/* The SAs of @sa's bundle, innermost first (@sa the first): how many. */
static unsigned int bundle_chain(const struct dp_sa *sa, const struct dp_sa **c)
{
	unsigned int k = 0;

	c[k++] = sa;
	while (k < DP_BUNDLE_MAX && c[k - 1]->bundled &&
	       (c[k] = __atomic_load_n(&c[k - 1]->outer, __ATOMIC_ACQUIRE)) != NULL)
		k++;
	return k;
}

/* What IPComp adds at worst: a payload that does not shrink leaves without
 * IPComp header (RFC 3173 §2.2), in tunnel mode behind the outer header; ESP
 * and AH as mtu.h says. */
static inline uint32_t layer_len(const struct dp_sa *o, uint32_t len, uint32_t kept)
{
	if (o->cfg.proto == DPS_PROTO_IPCOMP)
		return len + o->overhead;
	return dp_esp_protected_len(len, kept, o->overhead, o->block);
}

static inline uint32_t layer_inner_mtu(const struct dp_sa *o, uint32_t mtu, uint32_t kept)
{
	if (o->cfg.proto == DPS_PROTO_IPCOMP)
		return mtu > o->overhead ? mtu - o->overhead : 0;
	return dp_esp_inner_mtu(mtu, kept, o->overhead, o->block);
}

/* The header each layer goes behind in transport mode: the packet's own
 * (@h), or the outer header of the last tunnel layer before it. */
static inline uint32_t layer_kept(const struct dp_sa *o, uint32_t *hdr)
{
	uint32_t kept = o->mode == DPS_MODE_TUNNEL ? 0 : *hdr;

	if (o->mode == DPS_MODE_TUNNEL)
		*hdr = o->outer_family == AF_INET6 ? sizeof(struct rte_ipv6_hdr)
						   : sizeof(struct rte_ipv4_hdr);
	return kept;
}

/* dp_output_fit() for the first SA of a bundle: every layer counted. */
static uint16_t fit_bundle(struct dp_worker *w, uint16_t in, const struct dp_sa *sa,
			   struct rte_mbuf **mb, uint16_t n, bool hop_done, uint32_t mtu)
{
	const struct dp_sa *c[DP_BUNDLE_MAX];
	unsigned int nc = bundle_chain(sa, c);
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t h = kept_hdr(sa, m), len = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
		uint32_t hdr = h, kept[DP_BUNDLE_MAX], inner;

		for (unsigned int j = 0; j < nc; j++) {
			kept[j] = layer_kept(c[j], &hdr);
			len = layer_len(c[j], len, kept[j]);
		}
		if (len <= mtu || (sa->frag_outer && dp_may_fragment4(m))) {
			mb[k++] = m;
			continue;
		}
		inner = mtu;
		for (unsigned int j = nc; j-- > 0 && inner;)
			inner = layer_inner_mtu(c[j], inner, kept[j]);
		dp_icmp_too_big(w, in, m, inner, hop_done);
		dp_drop(w, in, m, DP_CNT_drop_mtu);
	}
	return k;
}

/*
 * RFC 4301 §8.2.1: a packet that will not fit the path once protected is
 * discarded before crypto is spent on it, and its sender is told the largest
 * packet that fits (mtu.h). IPv4 without DF goes on when the SA's outer
 * header may lack DF: it is fragmented once protected (RFC 4301 §8.1, as the
 * BSD and Linux kernels do).
 */
uint16_t dp_output_fit(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
		       const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n, bool hop_done)
{
	const struct dp_neigh *neigh;
	const struct dp_nexthop *nh = dp_output_peer(w, s, sa, &neigh);
	uint32_t mtu;
	uint16_t k = 0;

	if (!nh_routed(nh))
		return n; /* counted drop_no_route after the crypto */
	mtu = dp.ports[nh->port].mtu;
	if (unlikely(sa->bundled))
		return fit_bundle(w, in, sa, mb, n, hop_done, mtu);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t h = kept_hdr(sa, m), l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;

		if (likely(dp_esp_protected_len(l3, h, sa->overhead, sa->block) <= mtu) ||
		    (sa->frag_outer && dp_may_fragment4(m))) {
			mb[k++] = m;
			continue;
		}
		dp_icmp_too_big(w, in, m, dp_esp_inner_mtu(mtu, h, sa->overhead, sa->block),
				hop_done);
		dp_drop(w, in, m, DP_CNT_drop_mtu);
	}
	return k;
}

/* Ethernet rewritten and staged, or handed to the control thread to resolve. */
static void l2_out(struct dp_worker *w, uint16_t in, struct rte_mbuf *m,
		   const struct dp_nexthop *nh, const struct dp_neigh *n, int family,
		   const void *dst)
{
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
	memcpy(&meta->nh.v4, nh_addr(nh, dst), family == AF_INET ? 4 : 16);
	dp_to_control(w, in, m, DP_CTRL_RESOLVE, DP_CNT_neigh_wait);
}

void dp_output_frag(struct dp_worker *w, uint16_t in, struct rte_mbuf *m,
		    const struct dp_nexthop *nh, const struct dp_neigh *n, int family,
		    const void *dst)
{
	struct rte_mbuf *f[DP_FRAG_MAX_OUT];
	uint8_t addr[16];
	int32_t k;

	memcpy(addr, dst, family == AF_INET ? 4 : 16); /* @dst may lie in @m */
	k = dp_frag(w, in, m, dp.ports[nh->port].mtu, nh->port, family, f);
	for (int32_t i = 0; i < k; i++)
		l2_out(w, in, f[i], nh, n, family, addr);
}

void dp_output_to(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, const struct dp_nexthop *nh,
		  const struct dp_neigh *n, int family, const void *dst)
{
	if (unlikely(!nh_routed(nh))) {
		dp_drop(w, in, m, DP_CNT_drop_no_route);
		return;
	}
	/* RFC 791 §2.3: IPv4 without DF is fragmented on the way; a router never
	 * fragments IPv6 (RFC 8200 §5). */
	if (unlikely(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > dp.ports[nh->port].mtu)) {
		if (family == AF_INET)
			dp_output_frag(w, in, m, nh, n, family, dst);
		else
			dp_drop(w, in, m, DP_CNT_drop_mtu);
		return;
	}
	l2_out(w, in, m, nh, n, family, dst);
}

static inline const void *ip_dst(struct rte_mbuf *m, int v6)
{
	return rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN + (v6 ? 24 : 16));
}

/* Two addresses compared as words: memcmp of a length known only at run
 * time is a libc call per packet. */
static inline bool addr_eq(const void *a, const void *b, int v6)
{
	uint64_t x[2], y[2];
	uint32_t x4, y4;

	if (v6) {
		memcpy(x, a, 16);
		memcpy(y, b, 16);
		return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
	}
	memcpy(&x4, a, 4);
	memcpy(&y4, b, 4);
	return x4 == y4;
}

/*
 * A burst mostly goes to few neighbours: a packet to the same next hop as
 * the one before (the same gateway, or on-link the same destination) takes
 * its neighbour without a hash lookup. Within one loop of the worker the
 * entry stays alive: it is freed only after the worker's quiescent report.
 */
void dp_output_clear(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6)
{
	struct dp_burst *b = &w->st.clear;
	int family = v6 ? AF_INET6 : AF_INET;
	size_t alen = v6 ? 16 : 4;
	const struct dp_nexthop *last = NULL;
	const struct dp_neigh *neigh = NULL;
	uint8_t last_dst[16];

	(void)s;
	for (uint16_t i = 0; i < b->n; i++) {
		struct rte_mbuf *m = b->m[i];
		const struct dp_nexthop *nh = b->nh[i];
		const void *dst;

		if (nh == NULL) { /* from the gateway's kernel: out of its port */
			dp_tx(w, dp.ports[in].eth_id, m);
			continue;
		}
		dst = ip_dst(m, v6);
		if (nh != last || (nh->type != DP_NH_GATEWAY && !addr_eq(dst, last_dst, v6))) {
			last = nh;
			memcpy(last_dst, dst, alen);
			neigh = neigh_of(nh, family, dst);
		}
		dp_output_to(w, in, m, nh, neigh, family, dst);
	}
	b->n = 0;
}
