/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound ESP: ESP and ESP-in-UDP (RFC 3948) packets for the gateway's
 * addresses. UDP encapsulation is removed here, the SA found with
 * rte_ipsec_sad, lib/ipsec checks the sequence number, decrypts and strips
 * the headers (for a native AES-GCM SA, dpsec does: esp_native_in.c); the
 * inner packet goes back to the worker, which feeds it to
 * the input stage: the inbound policy check (RFC 4301 §5.2) and forwarding
 * like any other.
 */
#include <rte_cryptodev.h>
#include <rte_esp.h>
#include <rte_ip.h>
#include <rte_ipsec.h>
#include <rte_ipsec_sad.h>
#include <rte_udp.h>

#include "dataplane/ah.h"
#include "dataplane/cksum.h"
#include "dataplane/crypto.h"
#include "dataplane/esp.h"
#include "dataplane/ipcomp.h"
#include "dataplane/polog.h"
#include "dataplane/replay.h"
#include "dataplane/sad.h"
#include "dataplane/worker.h"
#include "dataplane/xform.h"

#define ESP_HDR_LEN 8 /* SPI + sequence number */

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

/* rte_ipsec_sad's key of the packet whose IP header is @ip, its ESP header @esp. */
static inline void sad_key(const uint8_t *ip, const uint8_t *esp, int v6,
			   union rte_ipsec_sad_key *k)
{
	if (v6) {
		memcpy(&k->v6.spi, esp, 4);
		memcpy(k->v6.dip, ip + 24, 16);
		memcpy(k->v6.sip, ip + 8, 16);
	} else {
		memcpy(&k->v4.spi, esp, 4);
		memcpy(&k->v4.dip, ip + 16, 4);
		memcpy(&k->v4.sip, ip + 12, 4);
	}
}

/*
 * Keep only ESP: set AH aside in @ah (ah.c takes it), absorb keepalives, send
 * IKE to the kernel, drop runts. For what stays, in the same pass: its SAD
 * key, and what the SA's finish needs of the ESP header, which lib/ipsec
 * strips: the length, to tell a bad trailer from a replay (in_failure()),
 * and the sequence number, for dpsec's anti-replay verdict
 * (dp_esp_in_replay()).
 */
static uint16_t esp_only(struct dp_worker *w, uint16_t port, struct rte_mbuf **pkts, uint16_t n,
			 int v6, struct rte_mbuf **ah, uint16_t *nah, union rte_ipsec_sad_key *keys)
{
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
		uint8_t proto = v6 ? ip[6] : ip[9];
		struct dp_meta *mt = dp_meta(m);
		const uint8_t *esp;

		if (proto == IPPROTO_AH || (v6 && (proto == 0 || proto == 43 || proto == 60))) {
			ah[(*nah)++] = m;
			continue;
		}
		mt->natt_sport = 0;
		if (proto == IPPROTO_UDP) {
			const uint8_t *udp = ip + (v6 ? sizeof(struct rte_ipv6_hdr)
						      : rte_ipv4_hdr_len((const void *)ip));

			/* The outer source port before the UDP header goes (NAT mapping changes).
			 */
			mt->natt_sport = (uint16_t)(udp[0] << 8 | udp[1]);
			switch (natt_decap(m, v6)) {
			case NATT_KEEPALIVE:
				dp_drop(w, port, m, DP_CNT_natt_keepalive);
				continue;
			case NATT_IKE:
				dp_punt(w, port, m);
				continue;
			case NATT_BAD:
				dp_drop_note(w, port, m, DP_DROP_malformed, NULL);
				dp_drop(w, port, m, DP_CNT_drop_esp_malformed);
				continue;
			case NATT_ESP:
				ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
				mt->natt_src_off = (uint16_t)(ip + (v6 ? 8 : 12) -
							      (const uint8_t *)m->buf_addr);
				break;
			}
		}
		m->tx_offload = rte_mbuf_tx_offload(RTE_ETHER_HDR_LEN,
						    v6 ? sizeof(struct rte_ipv6_hdr)
						       : rte_ipv4_hdr_len((const void *)ip),
						    0, 0, 0, 0, 0);
		mt->outer_ecn = v6 ? (ip[1] >> 4) & 3 : ip[1] & 3;
		if (rte_pktmbuf_pkt_len(m) < (uint32_t)m->l2_len + m->l3_len + ESP_HDR_LEN) {
			dp_drop_note(w, port, m, DP_DROP_malformed, NULL);
			dp_drop(w, port, m, DP_CNT_drop_esp_malformed);
			continue;
		}
		esp = ip + m->l3_len;
		sad_key(ip, esp, v6, &keys[k]);
		mt->pre_len = rte_pktmbuf_pkt_len(m);
		mt->esp_seq = rte_be_to_cpu_32(((const struct rte_esp_hdr *)esp)->seq);
		pkts[k++] = m;
	}
	return k;
}

void dp_esp_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
	       struct rte_mbuf **pkts, uint16_t n, int v6)
{
	union rte_ipsec_sad_key keys[DP_MAX_BURST];
	void *sa[DP_MAX_BURST];
	struct rte_mbuf *grp[DP_MAX_BURST];
	struct rte_mbuf *ah[DP_MAX_BURST];
	struct dp_sa *cur = NULL;
	uint16_t ng = 0, nah = 0;

	/* IPComp (ipcomp.c) and AH (ah.c) have their own entries */
	if (s->ipsec->sad[DP_SAD_IPCOMP + v6] != NULL)
		n = dp_ipcomp_in(w, s, port, pkts, n, v6);
	n = esp_only(w, port, pkts, n, v6, ah, &nah, keys);
	if (nah)
		dp_ah_in(w, s, port, ah, nah, v6);
	if (n == 0)
		return;
	if (s->ipsec->sad[v6] == NULL)
		memset(sa, 0, sizeof(sa[0]) * n);
	else
		dp_sad_lookup_runs(s->ipsec->sad[v6], keys, sa, n, v6);
	/* Runs of packets of one SA go to it together, in arrival order. */
	for (uint16_t i = 0; i < n; i++) {
		struct dp_sa *x = sa[i];

		if (x == NULL || x->cfg.proto != DPS_PROTO_ESP) {
			dp_polog(w, port, pkts[i], DP_POLOG_unknown_spi, NULL, NULL);
			dp_drop(w, port, pkts[i], DP_CNT_drop_unknown_spi);
			continue;
		}
		if (!esp_len_ok(x, pkts[i])) {
			dp_sa_fail(w, x, &pkts[i], 0, 1, DP_SA_CNT_drop_len);
			continue;
		}
		if (x != cur && ng) {
			dp_xform_run(w, s, cur, grp, ng);
			ng = 0;
		}
		cur = x;
		dp_count(w, port, DP_CNT_ipsec_in);
		grp[ng++] = pkts[i];
	}
	if (ng)
		dp_xform_run(w, s, cur, grp, ng);
}

/* The length and sequence number were taken with the SAD key (esp_only()). */
static uint16_t esp_inb_prepare(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
				uint16_t n)
{
	(void)w;
	(void)sa;
	(void)mb;
	return n;
}

/*
 * DPDK 22.11's lib/ipsec records sequence numbers 32..63 modulo 64 nowhere in
 * its window (esn_inb_update_sqn keeps the bit in 32 bits) and accepts their
 * replays: its window screens packets before the crypto, this one decides.
 * The high half of an extended number is reconstructed from the same top as
 * lib/ipsec's process just used (both windows take the same packets right of
 * the window), so it is the one the ICV covered.
 */
uint16_t dp_esp_in_replay(struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k)
{
	struct dp_replay *r = sa->replay;
	struct rte_mbuf *rej[DP_MAX_BURST];
	uint16_t good = 0, nr = 0;

	for (uint16_t i = 0; i < k; i++) {
		if (likely(dp_replay_update(r, dp_replay_seq(r, dp_meta(mb[i])->esp_seq))))
			mb[good++] = mb[i];
		else
			rej[nr++] = mb[i];
	}
	memcpy(&mb[good], rej, nr * sizeof(rej[0]));
	return good;
}

/*
 * lib/ipsec puts failures after the good packets without saying why (and
 * esp_native_in.c leaves its own in the same states). A
 * failed integrity check is flagged on the mbuf; a packet whose trailer was
 * invalid is left as it was; one that passed that but not the final replay
 * window update (lib/ipsec's: a duplicate within the burst; dpsec's, any
 * replay: dp_esp_in_replay()) has been shortened.
 */
static enum dp_sa_counter in_failure(struct rte_mbuf *m)
{
	if (m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED)
		return DP_SA_CNT_drop_auth;
	if (rte_pktmbuf_pkt_len(m) == dp_meta(m)->pre_len)
		return DP_SA_CNT_drop_pad;
	return DP_SA_CNT_drop_replay;
}

#define ECN_NOT_ECT 0
#define ECN_CE	    3

/* RFC 6040 §4.2: CE outside, Not-ECT inside: the inner packet cannot carry the
 * congestion mark, so it is dropped. */
static inline bool ecn_drop(struct rte_mbuf *m, const uint8_t *ip, int v6)
{
	uint8_t inner = v6 ? (ip[1] >> 4) & 3 : ip[1] & 3;

	return dp_meta(m)->outer_ecn == ECN_CE && inner == ECN_NOT_ECT;
}

/*
 * Give the decrypted packet the Ethernet header of a frame sent to the port
 * (tunnel mode left the inner packet at the start; transport kept the outer
 * frame), so that the input stage takes it as received. lib/ipsec changes
 * IPv4 fields (ECN on decapsulation, length and protocol in transport mode)
 * without the checksum: recompute it.
 */
static inline enum dp_sa_counter inner_l2(struct rte_mbuf *m, int *v6, const bool tunnel,
					  const bool ecn)
{
	struct rte_ether_hdr *eth;
	uint8_t *ip;

	if (tunnel) {
		ip = rte_pktmbuf_mtod(m, uint8_t *);
		if (rte_pktmbuf_data_len(m) < 20 || ((ip[0] >> 4) != 4 && (ip[0] >> 4) != 6))
			return DP_SA_CNT_drop_other;
		*v6 = (ip[0] >> 4) == 6;
		if (ecn && ecn_drop(m, ip, *v6))
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
		dp_ip4_cksum_set((struct rte_ipv4_hdr *)ip);
		/* just computed: the input stage need not check it again */
		m->ol_flags =
			(m->ol_flags & ~RTE_MBUF_F_RX_IP_CKSUM_MASK) | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
	}
	return DP_SA_CNT_MAX;
}

/*
 * An authenticated, non-replayed ESP-in-UDP packet (it passed lib/ipsec's
 * ICV and replay checks) from another address or port than the SA's peer:
 * the peer's NAT mapping changed (RFC 3948 §5, Linux's xfrm km_new_mapping).
 * The worker notes it in its own slot, once per change and at most once per
 * DP_NATT_REPORT_MS; the control thread polls the slots and tells the key
 * daemons (SADB_X_NAT_T_NEW_MAPPING). No logging, no syscall here.
 */
static inline void natt_seen(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf *m)
{
	const struct dp_meta *md = dp_meta(m);
	struct dp_sa_counters *c = &sa->cnt[w->id];
	bool v6 = sa->cfg.src.family == AF_INET6;
	size_t alen = v6 ? 16 : 4;
	const uint8_t *src;
	uint64_t now;

	if (md->natt_sport == 0)
		return;
	/* Tunnel mode: the outer header is still in the buffer, before the data;
	 * transport mode: lib/ipsec moved it forward, it is the packet's header. */
	src = sa->mode == DPS_MODE_TUNNEL
		      ? (const uint8_t *)m->buf_addr + md->natt_src_off
		      : rte_pktmbuf_mtod_offset(m, const uint8_t *,
						RTE_ETHER_HDR_LEN + (v6 ? 8 : 12));
	if (md->natt_sport == sa->cfg.encap_sport && memcmp(src, &sa->cfg.src.v6, alen) == 0)
		return;
	if (c->nat_seq && md->natt_sport == c->nat_sport && memcmp(src, c->nat_src, alen) == 0)
		return; /* reported already */
	now = dp_now_ms();
	if (c->nat_seq && now - c->nat_ms < DP_NATT_REPORT_MS)
		return;
	__atomic_store_n(&c->nat_seq, c->nat_seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset(c->nat_src, 0, sizeof(c->nat_src));
	memcpy(c->nat_src, src, alen);
	c->nat_sport = md->natt_sport;
	c->nat_ms = now;
	__atomic_store_n(&c->nat_seq, c->nat_seq + 1, __ATOMIC_RELEASE);
	c->v[DP_SA_CNT_natt_remap]++;
}

/* The finish of every inbound ESP SA, specialised by the constant flags. The
 * decrypted packets go back to the worker, which feeds them to the input
 * stage as a new sub-burst. */
static inline void esp_inb_finish(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
				  uint16_t k, uint16_t n, const bool tunnel, const bool ecn)
{
	struct dp_stages *st = &w->st;
	const bool natt = sa->udp_encap;
	uint16_t na = st->n_again, good = 0;
	uint64_t bytes = 0;

	for (uint16_t i = k; i < n; i++)
		dp_sa_fail(w, sa, &mb[i], 0, 1, in_failure(mb[i]));
	if (k && sa->first_use_ms == 0)
		sa->first_use_ms = dp_now_ms();
	for (uint16_t i = 0; i < k; i++) {
		enum dp_sa_counter bad;
		int v6;

		if (natt)
			natt_seen(w, sa, mb[i]);
		bad = inner_l2(mb[i], &v6, tunnel, ecn);
		if (unlikely(bad != DP_SA_CNT_MAX || na == DP_MAX_BURST)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1,
				   bad != DP_SA_CNT_MAX ? bad : DP_SA_CNT_drop_other);
			continue;
		}
		bytes += rte_pktmbuf_pkt_len(mb[i]) - RTE_ETHER_HDR_LEN;
		dp_meta_via_push(dp_meta(mb[i]), sa);
		st->again[na++] = mb[i];
		good++;
	}
	st->n_again = na;
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, good);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
}

static void esp_inb_tun_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			       struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	(void)s;
	esp_inb_finish(w, sa, mb, k, n, true, false);
}

static void esp_inb_tun_ecn_finish(struct dp_worker *w, const struct dp_snapshot *s,
				   struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	(void)s;
	esp_inb_finish(w, sa, mb, k, n, true, true);
}

static void esp_inb_trs_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			       struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	(void)s;
	esp_inb_finish(w, sa, mb, k, n, false, false);
}

static const struct dp_xform_ops esp_inb_tun = {.prepare = esp_inb_prepare,
						.finish = esp_inb_tun_finish};
static const struct dp_xform_ops esp_inb_tun_ecn = {.prepare = esp_inb_prepare,
						    .finish = esp_inb_tun_ecn_finish};
static const struct dp_xform_ops esp_inb_trs = {.prepare = esp_inb_prepare,
						.finish = esp_inb_trs_finish};

const struct dp_xform_ops *dp_esp_in_ops(const struct dp_sa *sa)
{
	if (sa->mode != DPS_MODE_TUNNEL)
		return &esp_inb_trs;
	return sa->ecn ? &esp_inb_tun_ecn : &esp_inb_tun;
}
