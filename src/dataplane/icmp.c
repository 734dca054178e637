/* SPDX-License-Identifier: BSD-3-Clause */
#include <rte_cycles.h>
#include <rte_ip.h>

#include "dataplane/cksum.h"
#include "dataplane/icmp.h"
#include "dataplane/icmp_rules.h"
#include "dataplane/worker.h"

#define ICMP4_UNREACH	    3
#define ICMP4_FRAG_NEEDED   4
#define ICMP6_TOO_BIG	    2
#define ICMP4_MAX_LEN	    576u  /* RFC 1812 §4.3.2.3: the whole error */
#define ICMP6_MAX_LEN	    1280u /* RFC 4443 §2.4(c) */
#define IPV4_MIN_MTU	    68u	  /* RFC 791 */
#define IPV6_MIN_MTU	    1280u /* RFC 8200 §5 */
#define ICMP_ERR_TTL	    64
#define TOS_INTERNETCONTROL 0xc0 /* RFC 1812 §4.3.2.5: precedence 6 */

struct icmp_hdr {
	uint8_t type;
	uint8_t code;
	rte_be16_t cksum;
	rte_be32_t data; /* v4: unused:16 + next-hop MTU:16; v6: MTU:32 */
} __rte_packed;

void dp_icmp_init(struct dp_worker *w)
{
	const struct dps_dataplane_cfg *c = &dp.cfg->dataplane;

	w->icmp_cost = c->icmp_rate ? rte_get_tsc_hz() / c->icmp_rate : 0;
	w->icmp_tokens = w->icmp_cost * c->icmp_burst;
	w->icmp_last = rte_get_tsc_cycles();
}

/* A token bucket counted in TSC cycles: one error costs hz / rate of them. */
static bool token(struct dp_worker *w)
{
	uint64_t now = rte_get_tsc_cycles(), cap = w->icmp_cost * dp.cfg->dataplane.icmp_burst;

	if (w->icmp_cost == 0)
		return false;
	w->icmp_tokens += now - w->icmp_last;
	w->icmp_last = now;
	if (w->icmp_tokens > cap)
		w->icmp_tokens = cap;
	if (w->icmp_tokens < w->icmp_cost)
		return false;
	w->icmp_tokens -= w->icmp_cost;
	return true;
}

static bool prefix_has(const struct dps_prefix *p, const uint8_t *a)
{
	const uint8_t *b = (const uint8_t *)&p->addr.v4;
	unsigned int full = p->len / 8, rest = p->len % 8;

	if (memcmp(a, b, full))
		return false;
	return rest == 0 || ((a[full] ^ b[full]) & (0xff00 >> rest)) == 0;
}

/* The gateway's address on @port to answer @to from: the one on @to's
 * subnet, else the first of the family; IPv6 falls back to the link-local. */
static bool source_addr(uint16_t port, int family, const uint8_t *to, uint8_t *out)
{
	const struct dps_port_cfg *pc = dp.ports[port].cfg;
	const struct dps_prefix *pick = NULL;

	for (unsigned int i = 0; i < pc->n_addrs; i++) {
		const struct dps_prefix *p = &pc->addrs[i];

		if (p->addr.family != family)
			continue;
		if (pick == NULL || prefix_has(p, to))
			pick = p;
		if (prefix_has(p, to))
			break;
	}
	if (pick != NULL)
		memcpy(out, &pick->addr.v4, family == AF_INET ? 4 : 16);
	else if (family == AF_INET6)
		memcpy(out, &dp.ports[port].ll6, 16);
	return pick != NULL || family == AF_INET6;
}

static inline uint16_t cksum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Ethernet with the port's MAC both ways (rewritten when routed out; right as
 * it is when the error goes to the port's TAP), then room for the IP packet. */
static uint8_t *frame(struct rte_mbuf *e, uint16_t port, uint16_t type, uint32_t l3)
{
	struct rte_ether_hdr *eth =
		(struct rte_ether_hdr *)rte_pktmbuf_append(e, RTE_ETHER_HDR_LEN + l3);

	if (eth == NULL)
		return NULL;
	eth->dst_addr = dp.ports[port].mac;
	eth->src_addr = dp.ports[port].mac;
	eth->ether_type = rte_cpu_to_be_16(type);
	return (uint8_t *)(eth + 1);
}

/* The offending packet from its IP header on, as much as fits in @len. */
static void quote(const struct rte_mbuf *m, uint8_t *dst, uint32_t len)
{
	const void *p = rte_pktmbuf_read(m, RTE_ETHER_HDR_LEN, len, dst);

	if (p != dst)
		memcpy(dst, p, len);
}

static struct rte_mbuf *build4(const struct rte_mbuf *m, uint16_t in, uint32_t mtu, bool hop_done)
{
	const struct rte_ipv4_hdr *oip =
		rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
	uint32_t q = RTE_MIN(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN,
			     ICMP4_MAX_LEN - sizeof(struct rte_ipv4_hdr) - sizeof(struct icmp_hdr));
	uint32_t len = sizeof(struct rte_ipv4_hdr) + sizeof(struct icmp_hdr) + q;
	struct rte_mbuf *e = rte_pktmbuf_alloc(dp.pool);
	struct rte_ipv4_hdr *ip;
	struct icmp_hdr *ic;

	if (e == NULL ||
	    (ip = (struct rte_ipv4_hdr *)frame(e, in, RTE_ETHER_TYPE_IPV4, len)) == NULL ||
	    !source_addr(in, AF_INET, (const uint8_t *)&oip->src_addr, (uint8_t *)&ip->src_addr)) {
		rte_pktmbuf_free(e);
		return NULL;
	}
	ic = (struct icmp_hdr *)(ip + 1);
	quote(m, (uint8_t *)(ic + 1), q);
	if (hop_done) { /* quote what the sender sent */
		struct rte_ipv4_hdr *qip = (struct rte_ipv4_hdr *)(ic + 1);

		qip->time_to_live++;
		dp_ip4_cksum_set(qip);
	}
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = TOS_INTERNETCONTROL;
	ip->total_length = rte_cpu_to_be_16(len);
	ip->packet_id = 0;
	ip->fragment_offset = 0;
	ip->time_to_live = ICMP_ERR_TTL;
	ip->next_proto_id = IPPROTO_ICMP;
	ip->dst_addr = oip->src_addr;
	dp_ip4_cksum_set(ip);
	ic->type = ICMP4_UNREACH;
	ic->code = ICMP4_FRAG_NEEDED;
	ic->data = rte_cpu_to_be_32(RTE_MAX(mtu, IPV4_MIN_MTU) & 0xffff);
	ic->cksum = 0;
	ic->cksum = cksum_fold(rte_raw_cksum(ic, sizeof(*ic) + q));
	return e;
}

static struct rte_mbuf *build6(const struct rte_mbuf *m, uint16_t in, uint32_t mtu, bool hop_done)
{
	const struct rte_ipv6_hdr *oip =
		rte_pktmbuf_mtod_offset(m, const struct rte_ipv6_hdr *, RTE_ETHER_HDR_LEN);
	uint32_t q = RTE_MIN(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN,
			     ICMP6_MAX_LEN - sizeof(struct rte_ipv6_hdr) - sizeof(struct icmp_hdr));
	uint32_t len = sizeof(struct rte_ipv6_hdr) + sizeof(struct icmp_hdr) + q;
	struct rte_mbuf *e = rte_pktmbuf_alloc(dp.pool);
	struct rte_ipv6_hdr *ip6;
	struct icmp_hdr *ic;

	if (e == NULL ||
	    (ip6 = (struct rte_ipv6_hdr *)frame(e, in, RTE_ETHER_TYPE_IPV6, len)) == NULL ||
	    !source_addr(in, AF_INET6, oip->src_addr, ip6->src_addr)) {
		rte_pktmbuf_free(e);
		return NULL;
	}
	ic = (struct icmp_hdr *)(ip6 + 1);
	quote(m, (uint8_t *)(ic + 1), q);
	if (hop_done)
		((struct rte_ipv6_hdr *)(ic + 1))->hop_limits++;
	ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip6->payload_len = rte_cpu_to_be_16(len - sizeof(*ip6));
	ip6->proto = IPPROTO_ICMPV6;
	ip6->hop_limits = ICMP_ERR_TTL;
	memcpy(ip6->dst_addr, oip->src_addr, 16);
	ic->type = ICMP6_TOO_BIG;
	ic->code = 0;
	ic->data = rte_cpu_to_be_32(RTE_MAX(mtu, IPV6_MIN_MTU));
	ic->cksum = 0;
	ic->cksum = cksum_fold((uint32_t)rte_ipv6_phdr_cksum(ip6, 0) +
			       rte_raw_cksum(ic, sizeof(*ic) + q));
	return e;
}

void dp_icmp_too_big(struct dp_worker *w, uint16_t in, const struct rte_mbuf *m, uint32_t mtu,
		     bool hop_done)
{
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const void *ip = eth + 1;
	bool v6 = eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV6);
	struct rte_mbuf *e;

	uint32_t len = rte_pktmbuf_data_len(m) - RTE_ETHER_HDR_LEN;

	if (v6 ? !dp_icmp6_wants_error(ip, len) : !dp_icmp4_wants_error(ip, len))
		return;
	if (w->n_icmp == DP_ICMP_QUEUE || !token(w)) {
		dp_count(w, in, DP_CNT_icmp_ratelimited);
		return;
	}
	e = v6 ? build6(m, in, mtu, hop_done) : build4(m, in, mtu, hop_done);
	if (e == NULL)
		return;
	w->icmp_port[w->n_icmp] = in;
	w->icmp[w->n_icmp++] = e;
	dp_count(w, in, DP_CNT_icmp_ptb_sent);
}
