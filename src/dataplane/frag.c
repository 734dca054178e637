/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fragmentation and reassembly with rte_ip_frag. The fragmenter builds each
 * fragment as a small direct mbuf holding its IP header, chained to an
 * indirect mbuf that points into the original packet's data, so the payload
 * is never copied. Reassembly chains the fragments behind the first one; the
 * datagram is then made one segment again, because the crypto devices and
 * the rest of the dataplane read packets as one buffer.
 */
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_random.h>

#include "dataplane/cksum.h"
#include "dataplane/frag.h"
#include "dataplane/worker.h"

/* Ethernet and the largest IP header a fragment carries (IPv4 with options,
 * IPv6 with its Fragment header), after the usual headroom. */
#define DIRECT_ROOM	 (RTE_PKTMBUF_HEADROOM + 128)
#define WHOLE_PER_WORKER 256 /* reassembled datagrams a worker may have in flight */
#define BUCKET_ENTRIES	 16  /* the table's associativity (a power of 2) */

static struct rte_mempool *direct, *indirect, *whole;

/* Room for the largest datagram rte_ip_frag reassembles from fragments that
 * each fit the largest MTU, capped by what an mbuf can hold. */
static uint16_t whole_room(const struct dps_config *cfg)
{
	unsigned int max_mtu = 0;

	for (unsigned int i = 0; i < cfg->n_ports; i++)
		max_mtu = RTE_MAX(max_mtu, (unsigned int)cfg->ports[i].mtu);
	return (uint16_t)RTE_MIN(65535u, RTE_PKTMBUF_HEADROOM + RTE_ETHER_HDR_LEN +
						 RTE_LIBRTE_IP_FRAG_MAX_FRAG * max_mtu);
}

static int pools_create(const struct dps_config *cfg)
{
	uint16_t priv = RTE_ALIGN(sizeof(struct dp_meta), RTE_MBUF_PRIV_ALIGN);
	/* A fragment may wait in a transmit ring as long as any frame. */
	unsigned int n = cfg->dataplane.mbufs;

	direct = rte_pktmbuf_pool_create("dps_frag_direct", n, 256, priv, DIRECT_ROOM,
					 SOCKET_ID_ANY);
	indirect = rte_pktmbuf_pool_create("dps_frag_indirect", n, 256, 0, 0, SOCKET_ID_ANY);
	whole = rte_pktmbuf_pool_create("dps_reasm", cfg->n_workers * WHOLE_PER_WORKER, 32, priv,
					whole_room(cfg), SOCKET_ID_ANY);
	if (direct == NULL || indirect == NULL || whole == NULL) {
		DP_LOG(ERR, "cannot create the fragmentation pools: %s", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

/* Two-way hashing into buckets of BUCKET_ENTRIES: twice max_flows entries. */
static int table_create(struct dp_worker *w, const struct dps_reasm_cfg *c)
{
	int socket = (int)rte_lcore_to_socket_id(w->lcore);
	uint64_t cycles = rte_get_tsc_hz() * c->timeout_ms / 1000;

	w->reasm = rte_ip_frag_table_create((c->max_flows + BUCKET_ENTRIES - 1) / BUCKET_ENTRIES,
					    BUCKET_ENTRIES, c->max_flows, cycles, socket);
	w->death_row = rte_zmalloc_socket("dps_death_row", sizeof(*w->death_row),
					  RTE_CACHE_LINE_SIZE, socket);
	if (w->reasm == NULL || w->death_row == NULL) {
		DP_LOG(ERR, "worker %u: cannot create a reassembly table of %u datagrams", w->id,
		       c->max_flows);
		return -1;
	}
	return 0;
}

int dp_frag_init(const struct dps_config *cfg)
{
	if (pools_create(cfg) < 0)
		return -1;
	for (unsigned int i = 0; i < dp.n_workers; i++)
		if (table_create(&dp.workers[i], &cfg->dataplane.reasm) < 0)
			return -1;
	return 0;
}

void dp_frag_fini(void)
{
	for (unsigned int i = 0; i < dp.n_workers; i++) {
		struct dp_worker *w = &dp.workers[i];

		if (w->reasm != NULL)
			rte_ip_frag_table_destroy(w->reasm);
		if (w->death_row != NULL)
			rte_ip_frag_free_death_row(w->death_row, 0);
		rte_free(w->death_row);
		w->reasm = NULL;
		w->death_row = NULL;
	}
	rte_mempool_free(direct);
	rte_mempool_free(indirect);
	rte_mempool_free(whole);
	direct = indirect = whole = NULL;
}

/* @m's bytes in one new mbuf of @pool; @m is freed either way. */
static struct rte_mbuf *copy_flat(struct rte_mbuf *m, struct rte_mempool *pool)
{
	struct rte_mbuf *c = rte_pktmbuf_alloc(pool);
	uint32_t len = rte_pktmbuf_pkt_len(m);
	const void *p;
	char *d;

	if (c == NULL || (d = rte_pktmbuf_append(c, len)) == NULL) {
		rte_pktmbuf_free(c);
		rte_pktmbuf_free(m);
		return NULL;
	}
	p = rte_pktmbuf_read(m, 0, len, d);
	if (p != d)
		memcpy(d, p, len);
	c->port = m->port;
	rte_pktmbuf_free(m);
	return c;
}

/*
 * rte_ip_frag leaves the IPv4 header checksum 0 and the IPv6 Identification
 * 0: one random Identification per packet (RFC 8200 §4.5, RFC 7739 §5).
 */
static struct rte_mbuf *frag_finish(struct rte_mbuf *f, const struct rte_ether_hdr *eth, int family,
				    rte_be32_t id6, uint16_t port)
{
	struct rte_ether_hdr *e = (struct rte_ether_hdr *)rte_pktmbuf_prepend(f, sizeof(*e));

	*e = *eth; /* DIRECT_ROOM leaves the headroom for it */
	if (family == AF_INET) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(e + 1);

		dp_ip4_cksum_set(ip);
	} else {
		struct rte_ipv6_fragment_ext *fh =
			(struct rte_ipv6_fragment_ext *)((struct rte_ipv6_hdr *)(e + 1) + 1);

		fh->id = id6;
	}
	/* A device that cannot send chained mbufs gets each fragment in one. */
	if (unlikely(!dp.ports[port].tx_multiseg))
		return copy_flat(f, dp.pool);
	return f;
}

int32_t dp_frag(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, uint16_t mtu,
		uint16_t out_port, int family, struct rte_mbuf **out)
{
	struct rte_mbuf *frag[DP_FRAG_MAX_OUT];
	struct rte_ether_hdr eth = *rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint16_t port = m->port;
	rte_be32_t id6 = (rte_be32_t)rte_rand();
	int32_t k, n = 0;

	if (family == AF_INET && !dp_may_fragment4(m)) {
		dp_drop(w, in, m, DP_CNT_drop_mtu);
		return 0;
	}
	rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN); /* rte_ip_frag starts at the IP header */
	if (family == AF_INET)
		k = rte_ipv4_fragment_packet(m, frag, DP_FRAG_MAX_OUT, mtu, direct, indirect);
	else
		k = rte_ipv6_fragment_packet(m, frag, DP_FRAG_MAX_OUT, mtu, direct, indirect);
	rte_pktmbuf_free(m); /* the fragments keep its data alive */
	if (unlikely(k < 0)) {
		dp_count(w, in, DP_CNT_drop_frag);
		return 0;
	}
	dp_count(w, in, DP_CNT_frag_out);
	for (int32_t i = 0; i < k; i++) {
		struct rte_mbuf *f = frag_finish(frag[i], &eth, family, id6, out_port);

		if (unlikely(f == NULL)) {
			dp_count(w, in, DP_CNT_drop_frag);
			continue;
		}
		f->port = port;
		dp_count(w, in, DP_CNT_frag_created);
		out[n++] = f;
	}
	return n;
}

/* What reassembly dropped, counted per fragment on the port it came in on. */
static void death_row_flush(struct dp_worker *w)
{
	struct rte_ip_frag_death_row *dr = w->death_row;

	for (uint32_t i = 0; i < dr->cnt; i++)
		w->cnt[dp.port_of_eth[dr->row[i]->port]].v[DP_CNT_drop_reasm] +=
			dr->row[i]->nb_segs;
	rte_ip_frag_free_death_row(dr, 0);
}

/* In the first fragment's buffer when it has the room, else in one of the
 * reassembly pool's. */
static struct rte_mbuf *linear(struct dp_worker *w, uint16_t in, struct rte_mbuf *m)
{
	uint16_t segs = m->nb_segs;

	if (rte_pktmbuf_linearize(m) == 0)
		return m;
	m = copy_flat(m, whole);
	if (unlikely(m == NULL))
		w->cnt[in].v[DP_CNT_drop_reasm] += segs;
	return m;
}

/*
 * Only ESP, AH and UDP (ESP-in-UDP, RFC 3948, whose ports only the first fragment
 * shows) are reassembled: the dataplane must see them whole. The kernel
 * reassembles the rest itself from the exception TAP.
 */
struct rte_mbuf *dp_reasm(struct dp_worker *w, uint16_t in, struct rte_mbuf *m, int v6)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	struct rte_ipv6_fragment_ext *fh = (struct rte_ipv6_fragment_ext *)(ip + 40);
	uint64_t now = rte_rdtsc();
	uint8_t proto;

	if (v6 && rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + 40 + sizeof(*fh))
		return m;
	proto = v6 ? fh->next_header : ((struct rte_ipv4_hdr *)ip)->next_proto_id;
	if (proto != IPPROTO_ESP && proto != IPPROTO_AH && proto != IPPROTO_UDP)
		return m;
	m->l2_len = RTE_ETHER_HDR_LEN;
	m->l3_len = v6 ? 40 + sizeof(*fh) : rte_ipv4_hdr_len((struct rte_ipv4_hdr *)ip);
	/* rte_ip_frag never checks the death row's room: keep room for one datagram. */
	if (w->death_row->cnt > RTE_IP_FRAG_DEATH_ROW_MBUF_LEN - RTE_LIBRTE_IP_FRAG_MAX_FRAG - 1)
		death_row_flush(w);
	if (v6)
		m = rte_ipv6_frag_reassemble_packet(w->reasm, w->death_row, m, now,
						    (struct rte_ipv6_hdr *)ip, fh);
	else
		m = rte_ipv4_frag_reassemble_packet(w->reasm, w->death_row, m, now,
						    (struct rte_ipv4_hdr *)ip);
	if (m == NULL || (m = linear(w, in, m)) == NULL)
		return NULL;
	if (!v6) { /* rte_ip_frag zeroes the checksum of the new header */
		struct rte_ipv4_hdr *h =
			rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

		dp_ip4_cksum_set(h);
	}
	dp_count(w, in, DP_CNT_reasm_done);
	return m;
}

void dp_reasm_tick(struct dp_worker *w)
{
	rte_ip_frag_table_del_expired_entries(w->reasm, w->death_row, rte_rdtsc());
	if (w->death_row->cnt)
		death_row_flush(w);
}
