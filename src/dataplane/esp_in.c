/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound ESP: ESP and ESP-in-UDP (RFC 3948) packets for the gateway's
 * addresses. UDP encapsulation is removed here, the SA found with
 * rte_ipsec_sad, lib/ipsec checks the sequence number, decrypts and strips
 * the headers; the inner packet then goes through the inbound policy check
 * (RFC 4301 §5.2) and forwarding like any other.
 */
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_ipsec.h>
#include <rte_ipsec_group.h>
#include <rte_ipsec_sad.h>
#include <rte_udp.h>

#include "dataplane/cksum.h"
#include "dataplane/crypto.h"
#include "dataplane/esp.h"
#include "dataplane/fwd.h"
#include "dataplane/replay.h"
#include "dataplane/worker.h"

#define ESP_HDR_LEN 8 /* SPI + sequence number */

dp_sa_run_t dp_esp_runner(const struct dp_sa *sa)
{
	bool cpu = sa->ss.type == RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO;

	if (sa->cfg.dir == DPS_DIR_OUT)
		return cpu ? dp_esp_out_sync : dp_esp_out_async;
	return cpu ? dp_esp_in_sync : dp_esp_in_async;
}

enum natt_kind { NATT_ESP, NATT_IKE, NATT_KEEPALIVE, NATT_BAD };

/*
 * RFC 3948 §2.2: after the UDP header, four zero bytes mark IKE, a single
 * 0xff byte is a keepalive, anything else is ESP. ESP loses its UDP header.
 */
static enum natt_kind natt_decap(struct rte_mbuf *m, int v6)
{
	uint8_t *l2 = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t *ip = l2 + RTE_ETHER_HDR_LEN;
	uint32_t hl = v6 ? sizeof(struct rte_ipv6_hdr) : rte_ipv4_hdr_len((void *)ip);
	uint32_t plen =
		rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN - hl - sizeof(struct rte_udp_hdr);
	const uint8_t *pl = ip + hl + sizeof(struct rte_udp_hdr);

	if (plen == 1 && pl[0] == 0xff)
		return NATT_KEEPALIVE;
	if (plen >= 4 && pl[0] == 0 && pl[1] == 0 && pl[2] == 0 && pl[3] == 0)
		return NATT_IKE;
	if (plen < ESP_HDR_LEN)
		return NATT_BAD;
	memmove(l2 + sizeof(struct rte_udp_hdr), l2, RTE_ETHER_HDR_LEN + hl);
	rte_pktmbuf_adj(m, sizeof(struct rte_udp_hdr));
	ip += sizeof(struct rte_udp_hdr);
	if (v6) {
		struct rte_ipv6_hdr *h = (void *)ip;

		h->proto = IPPROTO_ESP;
		h->payload_len = rte_cpu_to_be_16(rte_be_to_cpu_16(h->payload_len) - 8);
	} else {
		struct rte_ipv4_hdr *h = (void *)ip;

		h->next_proto_id = IPPROTO_ESP;
		h->total_length = rte_cpu_to_be_16(rte_be_to_cpu_16(h->total_length) - 8);
		dp_ip4_cksum_set(h);
	}
	return NATT_ESP;
}

/* Lengths lib/ipsec would reject, checked here so that they count as such. */
static bool esp_len_ok(const struct dp_sa *sa, const struct rte_mbuf *m)
{
	int32_t ct = (int32_t)rte_pktmbuf_pkt_len(m) - m->l2_len - m->l3_len - ESP_HDR_LEN -
		     sa->iv_len - sa->icv_len;

	return ct >= 2 && ct % sa->block == 0;
}

static void sad_keys(struct rte_mbuf **m, uint16_t n, int v6, union rte_ipsec_sad_key *k,
		     const union rte_ipsec_sad_key **kp)
{
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *ip = rte_pktmbuf_mtod_offset(m[i], uint8_t *, RTE_ETHER_HDR_LEN);
		const uint8_t *esp = ip + m[i]->l3_len;

		if (v6) {
			memcpy(&k[i].v6.spi, esp, 4);
			memcpy(k[i].v6.dip, ip + 24, 16);
			memcpy(k[i].v6.sip, ip + 8, 16);
		} else {
			memcpy(&k[i].v4.spi, esp, 4);
			memcpy(&k[i].v4.dip, ip + 16, 4);
			memcpy(&k[i].v4.sip, ip + 12, 4);
		}
		kp[i] = &k[i];
	}
}

/* Keep only ESP: absorb keepalives, send IKE to the kernel, drop runts. */
static uint16_t esp_only(struct dp_worker *w, uint16_t port, struct rte_mbuf **pkts, uint16_t n,
			 int v6)
{
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
		uint8_t proto = v6 ? ip[6] : ip[9];

		if (proto == IPPROTO_UDP) {
			switch (natt_decap(m, v6)) {
			case NATT_KEEPALIVE:
				dp_drop(w, port, m, DP_CNT_natt_keepalive);
				continue;
			case NATT_IKE:
				dp_punt(w, port, m);
				continue;
			case NATT_BAD:
				dp_drop(w, port, m, DP_CNT_drop_esp_malformed);
				continue;
			case NATT_ESP:
				ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
				break;
			}
		}
		m->tx_offload = rte_mbuf_tx_offload(RTE_ETHER_HDR_LEN,
						    v6 ? sizeof(struct rte_ipv6_hdr)
						       : rte_ipv4_hdr_len((const void *)ip),
						    0, 0, 0, 0, 0);
		dp_meta(m)->outer_ecn = v6 ? (ip[1] >> 4) & 3 : ip[1] & 3;
		if (rte_pktmbuf_pkt_len(m) < (uint32_t)m->l2_len + m->l3_len + ESP_HDR_LEN) {
			dp_drop(w, port, m, DP_CNT_drop_esp_malformed);
			continue;
		}
		pkts[k++] = m;
	}
	return k;
}

/* The ESP header is there: esp_only checked the length. */
static inline uint32_t esp_sqn(const struct rte_mbuf *m)
{
	uint32_t buf, sqn;
	const void *p = rte_pktmbuf_read(m, (uint32_t)m->l2_len + m->l3_len + 4, 4, &buf);

	memcpy(&sqn, p, 4); /* unaligned behind an IPv4 header */
	return rte_be_to_cpu_32(sqn);
}

void dp_esp_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
	       struct rte_mbuf **pkts, uint16_t n, int v6)
{
	union rte_ipsec_sad_key keys[DP_MAX_BURST];
	const union rte_ipsec_sad_key *kp[DP_MAX_BURST];
	void *sa[DP_MAX_BURST];
	struct rte_mbuf *grp[DP_MAX_BURST];
	struct dp_sa *cur = NULL;
	uint16_t ng = 0;

	n = esp_only(w, port, pkts, n, v6);
	if (n == 0)
		return;
	sad_keys(pkts, n, v6, keys, kp);
	if (s->ipsec->sad[v6] == NULL)
		memset(sa, 0, sizeof(sa[0]) * n);
	else
		rte_ipsec_sad_lookup(s->ipsec->sad[v6], kp, sa, n);
	/* Runs of packets of one SA go to it together, in arrival order. */
	for (uint16_t i = 0; i < n; i++) {
		struct dp_sa *x = sa[i];

		if (x == NULL) {
			dp_drop(w, port, pkts[i], DP_CNT_drop_unknown_spi);
			continue;
		}
		if (!esp_len_ok(x, pkts[i])) {
			dp_sa_count(x, w->id, DP_SA_CNT_drop_len, 1);
			rte_pktmbuf_free(pkts[i]);
			continue;
		}
		if (x != cur && ng) {
			cur->run(w, s, cur, grp, ng);
			ng = 0;
		}
		cur = x;
		dp_count(w, port, DP_CNT_ipsec_in);
		dp_meta(pkts[i])->pre_len = rte_pktmbuf_pkt_len(pkts[i]);
		dp_meta(pkts[i])->esp_sqn = esp_sqn(pkts[i]);
		grp[ng++] = pkts[i];
	}
	if (ng)
		cur->run(w, s, cur, grp, ng);
}

void dp_esp_in_sync(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		    struct rte_mbuf **mb, uint16_t n)
{
	uint16_t k = rte_ipsec_pkt_cpu_prepare(&sa->ss, mb, n);

	/* Lengths were checked: what prepare refuses is outside the replay window. */
	dp_sa_drop(sa, w->id, mb, k, n, DP_SA_CNT_drop_replay);
	dp_esp_in_finish(w, s, sa, mb, rte_ipsec_pkt_process(&sa->ss, mb, k), k);
}

void dp_esp_in_async(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		     struct rte_mbuf **mb, uint16_t n)
{
	(void)s;
	/* Lengths were checked: what prepare refuses is outside the replay window. */
	dp_crypto_enqueue(w, sa, mb, n, DP_SA_CNT_drop_replay);
}

/*
 * lib/ipsec puts failures after the good packets without saying why. A
 * failed integrity check is flagged on the mbuf; a packet whose trailer was
 * invalid is left as it was; one that passed that but not the final replay
 * window update (a duplicate within the burst) has been shortened.
 */
static enum dp_sa_counter in_failure(struct rte_mbuf *m)
{
	if (m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED)
		return DP_SA_CNT_drop_auth;
	if (rte_pktmbuf_pkt_len(m) == dp_meta(m)->pre_len)
		return DP_SA_CNT_drop_pad;
	return DP_SA_CNT_drop_replay;
}

/*
 * Give the decrypted packet the Ethernet header of a frame sent to the port
 * (tunnel mode left the inner packet at the start; transport kept the outer
 * frame), so that forwarding and the exception TAP take it as received.
 * lib/ipsec changes IPv4 fields (ECN on decapsulation, length and protocol in
 * transport mode) without the checksum: recompute it.
 */
#define ECN_NOT_ECT 0
#define ECN_CE	    3

/* RFC 6040 §4.2: CE outside, Not-ECT inside: the inner packet cannot carry the
 * congestion mark, so it is dropped. */
static bool ecn_drop(struct rte_mbuf *m, const uint8_t *ip, int v6)
{
	uint8_t inner = v6 ? (ip[1] >> 4) & 3 : ip[1] & 3;

	return dp_meta(m)->outer_ecn == ECN_CE && inner == ECN_NOT_ECT;
}

static enum dp_sa_counter inner_l2(struct dp_sa *sa, struct rte_mbuf *m, int *v6)
{
	struct rte_ether_hdr *eth;
	uint8_t *ip;

	if (sa->cfg.mode == DPS_MODE_TUNNEL) {
		ip = rte_pktmbuf_mtod(m, uint8_t *);
		if (rte_pktmbuf_data_len(m) < 20 || ((ip[0] >> 4) != 4 && (ip[0] >> 4) != 6))
			return DP_SA_CNT_drop_other;
		*v6 = (ip[0] >> 4) == 6;
		if (dp.cfg->ipsec.ecn && ecn_drop(m, ip, *v6))
			return DP_SA_CNT_drop_ecn;
		eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, RTE_ETHER_HDR_LEN);
		if (eth == NULL)
			return DP_SA_CNT_drop_other;
		eth->src_addr = (struct rte_ether_addr){0};
		eth->ether_type = rte_cpu_to_be_16(*v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	} else {
		eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		*v6 = eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV6);
		ip = (uint8_t *)(eth + 1);
	}
	eth->dst_addr = dp.ports[dp.port_of_eth[m->port]].mac;
	if (!*v6) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		dp_ip4_cksum_set(h);
	}
	return DP_SA_CNT_MAX;
}

/* lib/ipsec accepted @m (integrity checked, within its window): accepted before? */
static inline bool replay_ok(struct dp_sa *sa, struct rte_mbuf *m)
{
	uint32_t low = dp_meta(m)->esp_sqn;

	return dp_replay_accept(sa->replay,
				sa->cfg.esn ? dp_replay_esn(sa->replay, low) : (uint64_t)low);
}

void dp_esp_in_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		      struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	struct rte_mbuf *fam[2][DP_MAX_BURST];
	uint16_t nf[2] = {0, 0};
	uint64_t bytes = 0;
	uint16_t port = 0;

	for (uint16_t i = k; i < n; i++) {
		dp_sa_count(sa, w->id, in_failure(mb[i]), 1);
		rte_pktmbuf_free(mb[i]);
	}
	if (k && sa->first_use_ms == 0)
		sa->first_use_ms = dp_now_ms();
	for (uint16_t i = 0; i < k; i++) {
		enum dp_sa_counter bad;
		int v6;

		if (sa->replay != NULL && !replay_ok(sa, mb[i])) {
			dp_sa_count(sa, w->id, DP_SA_CNT_drop_replay, 1);
			rte_pktmbuf_free(mb[i]);
			continue;
		}
		bad = inner_l2(sa, mb[i], &v6);
		if (bad != DP_SA_CNT_MAX) {
			dp_sa_count(sa, w->id, bad, 1);
			rte_pktmbuf_free(mb[i]);
			continue;
		}
		bytes += rte_pktmbuf_pkt_len(mb[i]) - RTE_ETHER_HDR_LEN;
		port = dp.port_of_eth[mb[i]->port];
		fam[v6][nf[v6]++] = mb[i];
	}
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, nf[0] + nf[1]);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
	/* An SA arrives on one port; counters of a mixed group go to the last one. */
	if (nf[0])
		dp_fwd4(w, s, port, fam[0], nf[0], sa);
	if (nf[1])
		dp_fwd6(w, s, port, fam[1], nf[1], sa);
}

uint16_t dp_crypto_poll(struct dp_worker *w, const struct dp_snapshot *s)
{
	struct rte_crypto_op *cop[DP_MAX_BURST];
	struct rte_mbuf *mb[DP_MAX_BURST];
	struct rte_ipsec_group grp[DP_MAX_BURST];
	uint16_t total = 0;

	for (unsigned int d = 0; d < dp_crypto.n_devs && w->inflight; d++) {
		uint16_t n =
			rte_cryptodev_dequeue_burst(dp_crypto.devs[d].id, w->id, cop, DP_MAX_BURST);
		uint32_t ng;

		if (n == 0)
			continue;
		w->inflight -= n;
		total += n;
		ng = rte_ipsec_pkt_crypto_group((const struct rte_crypto_op **)(uintptr_t)cop, mb,
						grp, n);
		rte_mempool_put_bulk(dp_crypto.op_pool, (void **)cop, n);
		for (uint32_t g = 0; g < ng; g++) {
			struct dp_sa *sa = grp[g].id.ptr; /* the session is the SA's first member */
			uint16_t cnt = grp[g].cnt;
			uint16_t k = rte_ipsec_pkt_process(&sa->ss, grp[g].m, cnt);

			if (sa->cfg.dir == DPS_DIR_IN) {
				dp_esp_in_finish(w, s, sa, grp[g].m, k, cnt);
				continue;
			}
			if (k < cnt) {
				dp_sa_count(sa, w->id, DP_SA_CNT_drop_crypto, cnt - k);
				rte_pktmbuf_free_bulk(&grp[g].m[k], cnt - k);
			}
			dp_esp_out_finish(w, s, sa, grp[g].m, k);
		}
	}
	return total;
}
