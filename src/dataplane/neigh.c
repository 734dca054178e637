/* SPDX-License-Identifier: BSD-3-Clause */
#include <pthread.h>
#include <stdlib.h>

#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_malloc.h>

#include "dataplane/dp.h"
#include "dataplane/neigh.h"

#define ND_NS		135
#define ND_NA		136
#define ND_OPT_SLLA	1
#define ND_OPT_TLLA	2
#define ND_NA_ROUTER	0x80000000u
#define ND_NA_SOLICITED 0x40000000u
#define ND_NA_OVERRIDE	0x20000000u

/* ICMPv6 neighbour discovery body after the 4-byte ICMPv6 header (RFC 4861 §4.3/4.4). */
struct nd_msg {
	uint8_t type;
	uint8_t code;
	uint16_t cksum;
	uint32_t flags; /* NA flags; reserved in NS */
	uint8_t target[16];
} __rte_packed;

struct nd_lla_opt {
	uint8_t type;
	uint8_t len; /* in units of 8 bytes */
	uint8_t mac[RTE_ETHER_ADDR_LEN];
} __rte_packed;

static const struct dps_neigh_params *params;
static struct dp_neigh *entries; /* every entry, for timers and telemetry */
static unsigned int n_entries;
static pthread_mutex_t walk_lock = PTHREAD_MUTEX_INITIALIZER;

struct dp_neigh_table *dp_neigh_create(const struct dps_neigh_params *p)
{
	struct dp_neigh_table *t = calloc(1, sizeof(*t));
	struct rte_hash_parameters hp = {
		.name = "dps_neigh",
		.entries = p->max_entries,
		.key_len = sizeof(struct dp_neigh_key),
		.socket_id = SOCKET_ID_ANY,
		/* Workers read while the control thread writes. */
		.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
	};

	if (t == NULL)
		return NULL;
	params = p;
	t->hash = rte_hash_create(&hp);
	if (t->hash == NULL) {
		DP_LOG(ERR, "cannot create the neighbour table: %s", rte_strerror(rte_errno));
		free(t);
		return NULL;
	}
	return t;
}

static void held_drop(struct dp_neigh *n)
{
	rte_pktmbuf_free_bulk(n->held, n->n_held);
	dp_ctl_count(n->key.port, DP_CNT_drop_unresolved, n->n_held);
	n->n_held = 0;
}

static void entry_free(struct dp_neigh *n)
{
	held_drop(n);
	free(n->held);
	free(n);
}

void dp_neigh_destroy(struct dp_neigh_table *t)
{
	if (t == NULL)
		return;
	while (entries != NULL) {
		struct dp_neigh *n = entries;

		entries = n->next;
		entry_free(n);
	}
	n_entries = 0;
	rte_hash_free(t->hash);
	free(t);
}

static struct dp_neigh *entry_find(struct dp_neigh_table *t, const struct dp_neigh_key *k)
{
	void *data;

	return rte_hash_lookup_data(t->hash, k, &data) < 0 ? NULL : data;
}

static struct dp_neigh *entry_new(struct dp_neigh_table *t, const struct dp_neigh_key *k)
{
	struct dp_neigh *n = calloc(1, sizeof(*n));

	if (n == NULL || n_entries >= params->max_entries)
		goto fail;
	n->key = *k;
	n->held = calloc(params->queue_len ? params->queue_len : 1, sizeof(*n->held));
	if (n->held == NULL || rte_hash_add_key_data(t->hash, k, n) < 0)
		goto fail;
	__atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&walk_lock);
	n->next = entries;
	entries = n;
	n_entries++;
	pthread_mutex_unlock(&walk_lock);
	return n;
fail:
	if (n != NULL)
		free(n->held);
	free(n);
	return NULL;
}

/* Unlink, wait until no worker can hold the pointer, then free. */
static void entry_delete(struct dp_neigh_table *t, struct dp_neigh *n)
{
	int32_t pos = rte_hash_del_key(t->hash, &n->key);

	/* before the grace period: a worker that still sees the old count
	 * is in a loop the synchronisation below waits for */
	__atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_RELEASE);

	pthread_mutex_lock(&walk_lock);
	for (struct dp_neigh **pp = &entries; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	n_entries--;
	pthread_mutex_unlock(&walk_lock);
	rte_rcu_qsbr_synchronize(dp.rcu, RTE_QSBR_THRID_INVALID);
	if (pos >= 0)
		rte_hash_free_key_with_position(t->hash, pos);
	entry_free(n);
}

static void send_held(struct dp_neigh *n)
{
	const struct dp_port *p = &dp.ports[n->key.port];

	for (unsigned int i = 0; i < n->n_held; i++) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(n->held[i], struct rte_ether_hdr *);

		eth->dst_addr = n->mac;
		eth->src_addr = p->mac;
		dp_inject(n->held[i], p->eth_id);
	}
	n->n_held = 0;
}

/* A neighbour proved its MAC: create or refresh the entry, release waiting packets. */
static void learn(struct dp_neigh_table *t, uint16_t port, int family, const void *addr,
		  const struct rte_ether_addr *mac, bool create)
{
	struct dp_neigh_key k;
	struct dp_neigh *n;

	if (rte_is_zero_ether_addr(mac) || !rte_is_unicast_ether_addr(mac))
		return;
	dp_neigh_key_make(&k, port, family, addr);
	n = entry_find(t, &k);
	switch (dp_neigh_learn_step(n != NULL, n ? n->state : 0, create,
				    n && rte_is_same_ether_addr(&n->mac, mac))) {
	case DP_NEIGH_LEARN_IGNORE:
		return;
	case DP_NEIGH_LEARN_REPLACE:
		/* Workers must never see a half-written address. */
		entry_delete(t, n);
		n = NULL;
		break;
	case DP_NEIGH_LEARN_CONFIRM:
		break;
	}
	if (n == NULL && (n = entry_new(t, &k)) == NULL)
		return;
	n->mac = *mac;
	n->confirmed_ms = dp_now_ms();
	n->probes = 0;
	n->used = 0;
	__atomic_store_n(&n->state, DP_NEIGH_REACHABLE, __ATOMIC_RELEASE);
	send_held(n);
}

int dp_neigh_add_static(struct dp_neigh_table *t, uint16_t port, const struct dps_addr *a,
			const uint8_t mac[6])
{
	struct dp_neigh_key k;
	struct dp_neigh *n;

	dp_neigh_key_make(&k, port, a->family,
			  a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6);
	n = entry_find(t, &k);
	if (n == NULL && (n = entry_new(t, &k)) == NULL)
		return -1;
	memcpy(&n->mac, mac, 6);
	__atomic_store_n(&n->state, DP_NEIGH_STATIC, __ATOMIC_RELEASE);
	return 0;
}

/* The port's address to speak from toward @target: one in the same prefix, else the first. */
static bool port_src(uint16_t port, int family, const void *target, void *out)
{
	const struct dps_port_cfg *pc = dp.ports[port].cfg;
	const uint8_t *tb = target;
	bool found = false;

	for (unsigned int i = 0; i < pc->n_addrs; i++) {
		const struct dps_prefix *pf = &pc->addrs[i];
		const uint8_t *ab =
			family == AF_INET ? (const uint8_t *)&pf->addr.v4 : pf->addr.v6.s6_addr;
		unsigned int bits = 0;

		if (pf->addr.family != family)
			continue;
		while (bits < pf->len &&
		       ((ab[bits / 8] ^ tb[bits / 8]) & (0x80 >> (bits % 8))) == 0)
			bits++;
		if (!found || bits == pf->len)
			memcpy(out, ab, family == AF_INET ? 4 : 16);
		found = true;
		if (bits == pf->len)
			return true;
	}
	if (family == AF_INET6) {
		memcpy(out, &dp.ports[port].ll6, 16);
		return true;
	}
	return found;
}

static bool port_owns(uint16_t port, int family, const void *addr)
{
	const struct dps_port_cfg *pc = dp.ports[port].cfg;

	if (family == AF_INET6 && memcmp(addr, &dp.ports[port].ll6, 16) == 0)
		return true;
	for (unsigned int i = 0; i < pc->n_addrs; i++) {
		const struct dps_addr *a = &pc->addrs[i].addr;

		if (a->family == family &&
		    memcmp(addr, family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6,
			   family == AF_INET ? 4 : 16) == 0)
			return true;
	}
	return false;
}

static struct rte_mbuf *frame_alloc(uint16_t port, const struct rte_ether_addr *dst,
				    uint16_t ether_type, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(dp.pool);
	struct rte_ether_hdr *eth;

	if (m == NULL)
		return NULL;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eth) + len);
	if (eth == NULL) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	eth->dst_addr = *dst;
	eth->src_addr = dp.ports[port].mac;
	eth->ether_type = rte_cpu_to_be_16(ether_type);
	return m;
}

static void arp_send(uint16_t port, uint16_t op, const struct rte_ether_addr *dst, uint32_t sip,
		     const struct rte_ether_addr *tha, uint32_t tip)
{
	struct rte_mbuf *m = frame_alloc(port, dst, RTE_ETHER_TYPE_ARP, sizeof(struct rte_arp_hdr));
	struct rte_arp_hdr *arp;

	if (m == NULL)
		return;
	arp = rte_pktmbuf_mtod_offset(m, struct rte_arp_hdr *, sizeof(struct rte_ether_hdr));
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(op);
	arp->arp_data.arp_sha = dp.ports[port].mac;
	arp->arp_data.arp_sip = sip;
	arp->arp_data.arp_tha = *tha;
	arp->arp_data.arp_tip = tip;
	dp_inject(m, dp.ports[port].eth_id);
}

static void icmp6_finish(struct rte_ipv6_hdr *ip6, struct nd_msg *nd)
{
	nd->cksum = 0;
	nd->cksum = rte_ipv6_udptcp_cksum(ip6, nd);
}

/* NS or NA with one link-layer address option. */
static void nd_send(uint16_t port, uint8_t type, const struct rte_ether_addr *eth_dst,
		    const uint8_t src[16], const uint8_t dst[16], const uint8_t target[16],
		    uint32_t flags)
{
	uint16_t plen = sizeof(struct nd_msg) + sizeof(struct nd_lla_opt);
	struct rte_mbuf *m =
		frame_alloc(port, eth_dst, RTE_ETHER_TYPE_IPV6, sizeof(struct rte_ipv6_hdr) + plen);
	struct rte_ipv6_hdr *ip6;
	struct nd_msg *nd;
	struct nd_lla_opt *opt;

	if (m == NULL)
		return;
	ip6 = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, sizeof(struct rte_ether_hdr));
	ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip6->payload_len = rte_cpu_to_be_16(plen);
	ip6->proto = IPPROTO_ICMPV6;
	ip6->hop_limits = 255; /* RFC 4861 §7.1: receivers check it */
	memcpy(ip6->src_addr, src, 16);
	memcpy(ip6->dst_addr, dst, 16);
	nd = (struct nd_msg *)(ip6 + 1);
	nd->type = type;
	nd->code = 0;
	nd->flags = rte_cpu_to_be_32(flags);
	memcpy(nd->target, target, 16);
	opt = (struct nd_lla_opt *)(nd + 1);
	opt->type = type == ND_NS ? ND_OPT_SLLA : ND_OPT_TLLA;
	opt->len = 1;
	memcpy(opt->mac, &dp.ports[port].mac, RTE_ETHER_ADDR_LEN);
	icmp6_finish(ip6, nd);
	dp_inject(m, dp.ports[port].eth_id);
}

/* Broadcast (ARP) or solicited-node multicast (ND) unless we know where it was. */
static bool probe(struct dp_neigh *n, bool unicast)
{
	static const struct rte_ether_addr bcast = {
		.addr_bytes = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	static const struct rte_ether_addr zero;
	uint16_t port = n->key.port;
	uint8_t src[16];

	n->probe_ms = dp_now_ms();
	n->probes++;
	if (!port_src(port, n->key.family, n->key.addr, src))
		return false;
	if (n->key.family == AF_INET) {
		uint32_t sip, tip;

		memcpy(&sip, src, 4);
		memcpy(&tip, n->key.addr, 4);
		arp_send(port, RTE_ARP_OP_REQUEST, unicast ? &n->mac : &bcast, sip, &zero, tip);
	} else {
		uint8_t dst[16] = {0xff, 0x02, [11] = 0x01, [12] = 0xff};
		struct rte_ether_addr mdst = {.addr_bytes = {0x33, 0x33, 0xff}};

		memcpy(&dst[13], &n->key.addr[13], 3);
		memcpy(&mdst.addr_bytes[3], &n->key.addr[13], 3);
		if (unicast) {
			memcpy(dst, n->key.addr, 16);
			mdst = n->mac;
		}
		nd_send(port, ND_NS, &mdst, src, dst, n->key.addr, 0);
	}
	return true;
}

static void punt_to_kernel(struct rte_mbuf *m, uint16_t port)
{
	if (dp.ports[port].tap_id == DP_NO_PORT) {
		rte_pktmbuf_free(m);
		return;
	}
	dp_inject(m, dp.ports[port].tap_id);
}

void dp_neigh_input_arp(struct dp_neigh_table *t, struct rte_mbuf *m)
{
	uint16_t port = dp.port_of_eth[m->port];
	struct rte_arp_hdr *arp;
	uint16_t op;

	if (rte_pktmbuf_data_len(m) < sizeof(struct rte_ether_hdr) + sizeof(*arp))
		goto drop;
	arp = rte_pktmbuf_mtod_offset(m, struct rte_arp_hdr *, sizeof(struct rte_ether_hdr));
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4)
		goto drop;
	op = rte_be_to_cpu_16(arp->arp_opcode);
	const struct rte_arp_ipv4 *d = &arp->arp_data;
	bool for_us = port_owns(port, AF_INET, &d->arp_tip);

	if (op == RTE_ARP_OP_REQUEST && for_us) {
		/* RFC 826: the requester is worth knowing, it is about to talk to us. */
		learn(t, port, AF_INET, &d->arp_sip, &d->arp_sha, true);
		arp_send(port, RTE_ARP_OP_REPLY, &d->arp_sha, d->arp_tip, &d->arp_sha, d->arp_sip);
	} else if (op == RTE_ARP_OP_REPLY && for_us) {
		learn(t, port, AF_INET, &d->arp_sip, &d->arp_sha, true);
		/* The kernel behind the TAP may have asked too (IKE, ping from the gateway). */
		punt_to_kernel(m, port);
		return;
	} else if (d->arp_sip == d->arp_tip) {
		learn(t, port, AF_INET, &d->arp_sip, &d->arp_sha, false); /* gratuitous */
	}
drop:
	rte_pktmbuf_free(m);
}

static const struct nd_lla_opt *nd_find_lla(const struct nd_msg *nd, size_t len, uint8_t type)
{
	size_t off = sizeof(*nd);

	while (off + 2 <= len) {
		const uint8_t *o = (const uint8_t *)nd + off;
		size_t olen = (size_t)o[1] * 8;

		if (olen == 0 || off + olen > len)
			return NULL; /* RFC 4861 §4.6: zero-length options invalidate the packet */
		if (o[0] == type && olen >= sizeof(struct nd_lla_opt))
			return (const struct nd_lla_opt *)o;
		off += olen;
	}
	return NULL;
}

void dp_neigh_input_nd(struct dp_neigh_table *t, struct rte_mbuf *m)
{
	static const uint8_t unspec[16];
	static const uint8_t all_nodes[16] = {0xff, 0x02, [15] = 0x01};
	uint16_t port = dp.port_of_eth[m->port];
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip6 = (struct rte_ipv6_hdr *)(eth + 1);
	struct nd_msg *nd = (struct nd_msg *)(ip6 + 1);
	size_t len = rte_be_to_cpu_16(ip6->payload_len);
	const struct nd_lla_opt *lla;
	struct rte_ether_addr mac;
	uint16_t ck = nd->cksum;

	/* The worker checked the IPv6 header length; RFC 4861 §7.1.1 validity checks. */
	if (len < sizeof(*nd) || ip6->hop_limits != 255 || nd->code != 0)
		goto drop;
	nd->cksum = 0;
	uint16_t want = rte_ipv6_udptcp_cksum(ip6, nd);

	nd->cksum = ck;
	if (ck != want && !(ck == 0 && want == 0xffff))
		goto drop;
	if (nd->type == ND_NS) {
		bool dad = memcmp(ip6->src_addr, unspec, 16) == 0;

		if (!port_owns(port, AF_INET6, nd->target))
			goto drop;
		lla = nd_find_lla(nd, len, ND_OPT_SLLA);
		if (!dad && lla != NULL) {
			memcpy(&mac, lla->mac, sizeof(mac));
			learn(t, port, AF_INET6, ip6->src_addr, &mac, true);
		}
		nd_send(port, ND_NA, &eth->src_addr, nd->target, dad ? all_nodes : ip6->src_addr,
			nd->target, ND_NA_ROUTER | ND_NA_OVERRIDE | (dad ? 0 : ND_NA_SOLICITED));
	} else if (nd->type == ND_NA) {
		lla = nd_find_lla(nd, len, ND_OPT_TLLA);
		if (lla != NULL)
			memcpy(&mac, lla->mac, sizeof(mac));
		else
			mac = eth->src_addr;
		learn(t, port, AF_INET6, nd->target, &mac, true);
		punt_to_kernel(m, port);
		return;
	}
drop:
	rte_pktmbuf_free(m);
}

void dp_neigh_resolve(struct dp_neigh_table *t, struct rte_mbuf *m)
{
	struct dp_meta *meta = dp_meta(m);
	uint16_t port = meta->out_port;
	struct dp_neigh_key k;
	struct dp_neigh *n;

	dp_neigh_key_make(&k, port, meta->nh.family,
			  meta->nh.family == AF_INET ? (const void *)&meta->nh.v4
						     : (const void *)&meta->nh.v6);
	n = entry_find(t, &k);
	if (n == NULL) {
		n = entry_new(t, &k);
		if (n == NULL)
			goto drop;
		if (!probe(n, false)) {
			entry_delete(t, n);
			goto drop;
		}
	}
	if (!dp_neigh_may_hold(n->n_held, params))
		goto drop;
	n->held[n->n_held++] = m;
	if (n->state != DP_NEIGH_INCOMPLETE)
		send_held(n); /* resolved while the packet was in the ring */
	return;
drop:
	dp_ctl_count(port, DP_CNT_drop_unresolved, 1);
	rte_pktmbuf_free(m);
}

void dp_neigh_timer(struct dp_neigh_table *t, uint64_t now)
{
	struct dp_neigh *n = entries, *next;

	for (; n != NULL; n = next) {
		uint8_t state = n->state;

		next = n->next;
		switch (dp_neigh_timer_step(&state, &n->probes, n->used, n->confirmed_ms,
					    n->probe_ms, now, params)) {
		case DP_NEIGH_KEEP:
			break;
		case DP_NEIGH_REMOVE:
			entry_delete(t, n);
			break;
		case DP_NEIGH_PROBE_BCAST:
			probe(n, false);
			break;
		case DP_NEIGH_PROBE_UNICAST:
			n->state = state;
			probe(n, true);
			break;
		}
	}
}

void dp_neigh_walk(struct dp_neigh_table *t, void (*fn)(const struct dp_neigh *, uint64_t, void *),
		   void *arg)
{
	uint64_t now = dp_now_ms();

	(void)t;
	pthread_mutex_lock(&walk_lock);
	for (const struct dp_neigh *n = entries; n != NULL; n = n->next)
		fn(n, now, arg);
	pthread_mutex_unlock(&walk_lock);
}
