/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AH (RFC 4302): tunnel and transport mode, IPv4 and IPv6, both directions.
 *
 * Each packet is laid out as it travels (outbound: AH and, in tunnel mode,
 * the outer header added; inbound: as received), then its IP header and the
 * extension headers before AH are copied to the mbuf's tailroom (but for an
 * inbound tunnel SA, whose outer header is dropped once verified) and their
 * mutable fields zeroed in place, as is the ICV (§3.3.3.1); with ESN the
 * sequence number's high half is appended (§2.5.1, Appendix B). The crypto
 * device, or the native engine's intel-ipsec-mb (dp_ah_imb_run), computes
 * (out) or verifies (in, against the copy of the received ICV in the
 * tailroom) the HMAC over the whole IP packet; the finish puts the saved
 * headers back and drops the appended bytes. Tailroom layout, from the
 * end of the data: the received ICV (AH_ICV_ROOM bytes), then the headers.
 */
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_ipsec.h>
#include <rte_ipsec_group.h>
#include <rte_ipsec_sad.h>

#include "dataplane/ah.h"
#include "dataplane/cksum.h"
#include "dataplane/crypto.h"
#include "dataplane/imb.h"
#include "dataplane/output.h"
#include "dataplane/polog.h"
#include "dataplane/replay.h"
#include "dataplane/sad.h"
#include "dataplane/session.h"
#include "dataplane/worker.h"
#include "dataplane/xform.h"

#define AH_ICV_ROOM 32u	   /* the largest ICV (HMAC-SHA2-512-256) */
#define AH_HDRS_MAX 256u   /* IP header and extension headers before AH we handle */
#define AH_MAX_SEGS 8u	   /* segments of a reassembled packet */
#define AH_LINEAR   65536u /* the largest IP packet */

/* CPU crypto (crypto_aesni_mb) takes one buffer per packet: a chained one
 * (reassembled) is hashed from a copy in this worker's scratch. */
static RTE_DEFINE_PER_LCORE(uint8_t, ah_linear[AH_LINEAR]);

#define ECN_NOT_ECT 0
#define ECN_CE	    3

static inline bool ah_out(const struct dp_sa *sa)
{
	return sa->cfg.dir == DPS_DIR_OUT;
}

/* The tailroom copy of the headers (after the ICV copy). */
static inline uint8_t *stash(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, uint8_t *, rte_pktmbuf_data_len(m));
}

/*
 * IPv4 options (RFC 4302 Appendix A.1): EOL, NOP, the security options,
 * Router Alert and SDMDD are immutable, every other option is zeroed whole.
 * The option number (class and number, without the copied flag) decides.
 */
static inline bool ip4_opt_immutable(uint8_t type)
{
	switch (type & 0x7f) {
	case 0:	 /* EOL */
	case 1:	 /* NOP */
	case 2:	 /* Security (130) */
	case 5:	 /* Extended Security (133) */
	case 6:	 /* Commercial Security (134) */
	case 20: /* Router Alert (148) */
	case 21: /* SDMDD (149) */
		return true;
	default:
		return false;
	}
}

/* Zero the mutable fields of IPv4 header @ip (@hl bytes with options). */
static bool ip4_zero(uint8_t *ip, uint32_t hl, const struct dp_sa *sa)
{
	uint16_t off;

	if (sa->ah_cleartos)
		ip[1] = 0;
	memcpy(&off, ip + 6, 2);
	off &= rte_cpu_to_be_16(sa->ah_offsetmask);
	memcpy(ip + 6, &off, 2);
	ip[8] = 0;  /* TTL */
	ip[10] = 0; /* header checksum */
	ip[11] = 0;
	for (uint32_t i = sizeof(struct rte_ipv4_hdr); i < hl;) {
		uint8_t t = ip[i], l;

		if (t == 0) /* end of list: the rest is padding */
			break;
		if (t == 1) {
			i++;
			continue;
		}
		if (i + 1 >= hl || (l = ip[i + 1]) < 2 || i + l > hl)
			return false;
		if (!ip4_opt_immutable(t))
			memset(ip + i, 0, l);
		i += l;
	}
	return true;
}

/*
 * Zero the mutable fields of IPv6 header @ip and of the extension headers
 * up to AH at @ah_off: traffic class, flow label, hop limit, and the data of
 * options whose "change en route" bit is set (RFC 8200 §4.2). A Routing
 * header is taken as the receiver sees it (RFC 4302 §3.3.3.1.2), which it is
 * only with no segment left.
 */
static bool ip6_zero(uint8_t *ip, uint32_t ah_off)
{
	uint32_t off = sizeof(struct rte_ipv6_hdr);
	uint8_t nh = ip[6];

	ip[0] &= 0xf0;
	ip[1] = ip[2] = ip[3] = 0;
	ip[7] = 0;
	while (off < ah_off) {
		uint8_t *x = ip + off;
		uint32_t len = ((uint32_t)x[1] + 1) * 8;

		if (off + len > ah_off)
			return false;
		if (nh == 0 || nh == 60) {
			for (uint32_t i = 2; i < len;) {
				uint32_t ol;

				if (x[i] == 0) { /* Pad1 */
					i++;
					continue;
				}
				if (i + 2 > len || i + 2 + (ol = x[i + 1]) > len)
					return false;
				if (x[i] & 0x20)
					memset(x + i + 2, 0, ol);
				i += 2 + ol;
			}
		} else if (nh != 43 || x[3] != 0) {
			return false;
		}
		nh = x[0];
		off += len;
	}
	return true;
}

/*
 * A tunnel SA's inbound packet loses its outer header once verified
 * (in_strip()): its headers are neither saved nor put back. Every other
 * packet keeps them.
 */
static inline bool hdrs_kept(const struct dp_sa *sa)
{
	return ah_out(sa) || sa->mode != DPS_MODE_TUNNEL;
}

/*
 * The common part of both directions once the packet is laid out with AH at
 * @ah_off from the IP header: ESN appended, headers saved, mutable fields
 * zeroed. Returns false when the packet cannot be handled (no room, bad
 * options).
 */
static bool icv_input(const struct dp_sa *sa, struct rte_mbuf *m, uint32_t ah_off, uint32_t hi,
		      bool v6)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint8_t *icv = ip + ah_off + DP_AH_HDR_LEN + sa->iv_len;
	uint8_t *st;

	/* A reassembled packet may be chained: its headers and AH are in the
	 * first segment, whose tailroom keeps the copies. */
	if (ah_off > AH_HDRS_MAX || m->nb_segs > AH_MAX_SEGS ||
	    rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + ah_off + sa->ah_len ||
	    rte_pktmbuf_tailroom(m) < (sa->cfg.esn ? 4 : 0) + AH_ICV_ROOM + ah_off)
		return false;
	if (sa->cfg.esn) {
		uint32_t be = rte_cpu_to_be_32(hi);
		uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, 4);

		if (p == NULL)
			return false;
		memcpy(p, &be, 4);
	}
	st = stash(m);
	if (likely(sa->icv_len == 16)) { /* the -128 HMACs: copies of a known size */
		memcpy(st, icv, 16);	 /* in: the ICV to verify */
		memset(icv, 0, 16);
	} else {
		memcpy(st, icv, sa->icv_len);
		memset(icv, 0, sa->icv_len);
	}
	if (hdrs_kept(sa))
		memcpy(st + AH_ICV_ROOM, ip, ah_off);
	dp_meta(m)->ah_off = (uint16_t)ah_off;
	m->ol_flags &= ~RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
	return v6 ? ip6_zero(ip, ah_off) : ip4_zero(ip, ah_off, sa);
}

/* Put back what icv_input() changed, but the ICV. */
static inline void icv_restore(const struct dp_sa *sa, struct rte_mbuf *m)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);

	if (hdrs_kept(sa))
		memcpy(ip, stash(m) + AH_ICV_ROOM, dp_meta(m)->ah_off);
	if (sa->cfg.esn)
		rte_pktmbuf_trim(m, 4);
}

/* ---- outbound ------------------------------------------------------------ */

static inline void ah_hdr_fill(const struct dp_sa *sa, uint8_t *ah, uint8_t nh, uint64_t seq)
{
	uint32_t spi = rte_cpu_to_be_32(sa->cfg.spi), sq = rte_cpu_to_be_32((uint32_t)seq);
	uint64_t iv = rte_cpu_to_be_64(seq);

	ah[0] = nh;
	ah[1] = sa->ah_len / 4 - 2;
	ah[2] = ah[3] = 0;
	memcpy(ah + 4, &spi, 4);
	memcpy(ah + 8, &sq, 4);
	memset(ah + DP_AH_HDR_LEN, 0, sa->ah_len - DP_AH_HDR_LEN);
	/* AES-GMAC (RFC 4543 §3.1): the IV must never repeat under a key; the
	 * 64-bit sequence number does not */
	if (sa->iv_len)
		memcpy(ah + DP_AH_HDR_LEN, &iv, sizeof(iv));
}

/* Tunnel mode: outer header and AH before the inner packet. Returns AH's offset. */
static uint32_t out_tunnel(const struct dp_sa *sa, struct rte_mbuf *m, uint64_t seq)
{
	const uint8_t *in = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	bool in4 = (in[0] >> 4) == 4, v6 = sa->outer_family == AF_INET6;
	uint8_t tos = in4 ? in[1] : (uint8_t)(in[0] << 4 | in[1] >> 4);
	bool df = in4 && (in[6] & 0x40);
	uint32_t ol = v6 ? sizeof(struct rte_ipv6_hdr) : sizeof(struct rte_ipv4_hdr);
	uint8_t *p = (uint8_t *)rte_pktmbuf_prepend(m, ol + sa->ah_len);
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;

	if (p == NULL)
		return 0;
	/* DSCP copied, ECN too with RFC 6040 normal mode (as lib/ipsec does for ESP) */
	if (!sa->ecn)
		tos &= ~3;
	memset(p, 0, RTE_ETHER_HDR_LEN + ol);
	p += RTE_ETHER_HDR_LEN;
	if (v6) {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)p;

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
		h->vtc_flow = rte_cpu_to_be_32(6u << 28 | (uint32_t)tos << 20);
		h->payload_len = rte_cpu_to_be_16(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN - ol);
		h->proto = IPPROTO_AH;
		h->hop_limits = sa->ttl;
		memcpy(h->src_addr, &sa->cfg.src.v6, 16);
		memcpy(h->dst_addr, &sa->cfg.dst.v6, 16);
	} else {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)p;

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
		h->version_ihl = RTE_IPV4_VHL_DEF;
		h->type_of_service = tos;
		h->total_length = rte_cpu_to_be_16(rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN);
		h->packet_id = rte_cpu_to_be_16((uint16_t)seq);
		if (sa->dfbit == DPS_DF_SET || (sa->copy_df && df))
			h->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
		h->time_to_live = sa->ttl;
		h->next_proto_id = IPPROTO_AH;
		h->src_addr = sa->cfg.src.v4.s_addr;
		h->dst_addr = sa->cfg.dst.v4.s_addr;
	}
	ah_hdr_fill(sa, p + ol, in4 ? IPPROTO_IPIP : IPPROTO_IPV6, seq);
	return ol;
}

/*
 * Where AH goes in an IPv6 packet, as Linux (and scapy) put it: after the
 * Hop-by-Hop, Routing and Destination Options headers, but for a Destination
 * Options header after a Routing header. @nhp: the offset of the next-header
 * byte to point at AH.
 */
static uint32_t ip6_insert_at(const uint8_t *ip, uint32_t len, uint32_t *nhp)
{
	uint32_t off = sizeof(struct rte_ipv6_hdr);
	uint8_t nh = ip[6];
	bool rt = false;

	*nhp = 6;
	while (nh == 0 || nh == 43 || nh == 60) {
		if (nh == 60 && rt)
			break;
		if (off + 2 > len)
			return 0;
		rt |= nh == 43;
		*nhp = off;
		nh = ip[off];
		off += ((uint32_t)ip[off + 1] + 1) * 8;
	}
	return off <= len ? off : 0;
}

/* Transport mode: AH after the IP header (and IPv6 extension headers). */
static uint32_t out_transport(const struct dp_sa *sa, struct rte_mbuf *m, uint64_t seq)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint32_t l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN, at, nhp;
	bool v6 = sa->outer_family == AF_INET6;
	uint8_t *p, nh;

	if (v6)
		at = ip6_insert_at(ip, l3, &nhp);
	else
		at = rte_ipv4_hdr_len((const struct rte_ipv4_hdr *)ip), nhp = 9;
	if (at == 0 || (ip[0] >> 4) != (v6 ? 6 : 4))
		return 0;
	nh = ip[nhp];
	p = (uint8_t *)rte_pktmbuf_prepend(m, sa->ah_len);
	if (p == NULL)
		return 0;
	memmove(p, p + sa->ah_len, RTE_ETHER_HDR_LEN + at);
	ip = p + RTE_ETHER_HDR_LEN;
	ip[nhp] = IPPROTO_AH;
	if (v6) {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		h->payload_len = rte_cpu_to_be_16(rte_be_to_cpu_16(h->payload_len) + sa->ah_len);
	} else {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->total_length = rte_cpu_to_be_16(rte_be_to_cpu_16(h->total_length) + sa->ah_len);
	}
	ah_hdr_fill(sa, ip + at, nh, seq);
	return at;
}

static uint16_t ah_out_prepare(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
			       uint16_t n)
{
	bool tunnel = sa->mode == DPS_MODE_TUNNEL, v6 = sa->outer_family == AF_INET6;
	uint64_t seq = __atomic_fetch_add(&sa->out_sqn, n, __ATOMIC_RELAXED);
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t at;

		seq++;
		/* RFC 4302 §3.3.3: the counter never cycles; the SA's hard
		 * lifetime should have replaced it before. */
		if (unlikely(!sa->cfg.esn && seq > UINT32_MAX)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		dp_meta(m)->pre_len = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
		at = tunnel ? out_tunnel(sa, m, seq) : out_transport(sa, m, seq);
		if (at == 0 || !icv_input(sa, m, at, (uint32_t)(seq >> 32), v6)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		mb[k++] = m;
	}
	return k;
}

static void ah_out_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			  struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	const struct dp_nexthop *nh;
	const struct dp_neigh *neigh;
	uint64_t bytes = 0;
	uint16_t sent = 0, mtu, nn = 0;
	bool v4 = sa->outer_family == AF_INET;
	const bool bundled = sa->bundled;

	for (uint16_t i = k; i < n; i++)
		icv_restore(sa, mb[i]);
	dp_sa_fail(w, sa, mb, k, n, DP_SA_CNT_drop_crypto);
	if (k == 0)
		return;
	if (unlikely(sa->first_use_ms == 0))
		sa->first_use_ms = dp_now_ms();
	nh = dp_output_peer(w, s, sa, &neigh);
	mtu = nh->type == DP_NH_ONLINK || nh->type == DP_NH_GATEWAY ? dp.ports[nh->port].mtu
								    : UINT16_MAX;
	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = mb[i];
		uint16_t in = dp.port_of_eth[m->port];
		bool big;

		icv_restore(sa, m);
		m->ol_flags &= ~(RTE_MBUF_F_RX_SEC_OFFLOAD | RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED);
		big = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN > mtu;
		if (unlikely(big && !sa->frag_outer)) {
			dp_drop(w, in, m, DP_CNT_drop_mtu);
			continue;
		}
		if (v4)
			dp_ip4_cksum_set(rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *,
								 RTE_ETHER_HDR_LEN));
		bytes += dp_meta(m)->pre_len;
		sent++;
		if (unlikely(bundled)) { /* the next layer's: mb[0..nn) */
			mb[nn++] = m;
			continue;
		}
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

/* ---- inbound ------------------------------------------------------------- */

/* The offset of AH in the IP packet of @m, 0 if none (dp_ah_in checked it is there). */
static inline uint32_t ah_offset(struct rte_mbuf *m, int v6)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint32_t l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN, hl;

	if (v6)
		return dp_ah_off6(ip, l3);
	hl = rte_ipv4_hdr_len((const struct rte_ipv4_hdr *)ip);
	return ip[9] == IPPROTO_AH && hl >= 20 && hl + DP_AH_HDR_LEN <= l3 ? hl : 0;
}

void dp_ah_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
	      struct rte_mbuf **pkts, uint16_t n, int v6)
{
	union rte_ipsec_sad_key keys[DP_MAX_BURST];
	void *sa[DP_MAX_BURST];
	struct rte_mbuf *grp[DP_MAX_BURST];
	struct dp_sa *cur = NULL;
	uint16_t k = 0, ng = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
		uint32_t l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN, iplen, off;

		/* Ethernet padding of short frames is not part of the packet. */
		iplen = v6 ? 40u + rte_be_to_cpu_16(((struct rte_ipv6_hdr *)ip)->payload_len)
			   : rte_be_to_cpu_16(((struct rte_ipv4_hdr *)ip)->total_length);
		if (iplen < l3)
			rte_pktmbuf_trim(m, l3 - iplen);
		off = iplen <= l3 ? ah_offset(m, v6) : 0;
		if (off == 0) {
			dp_drop_note(w, port, m, DP_DROP_malformed, NULL);
			dp_drop(w, port, m, DP_CNT_drop_esp_malformed);
			continue;
		}
		/* the unspecified source: AH SAs' key in the SAD (sad.c) */
		if (v6) {
			memcpy(&keys[k].v6.spi, ip + off + 4, 4);
			memcpy(keys[k].v6.dip, ip + 24, 16);
			memset(keys[k].v6.sip, 0, 16);
		} else {
			memcpy(&keys[k].v4.spi, ip + off + 4, 4);
			memcpy(&keys[k].v4.dip, ip + 16, 4);
			keys[k].v4.sip = 0;
		}
		dp_meta(m)->ah_off = (uint16_t)off;
		dp_meta(m)->outer_ecn = v6 ? (ip[1] >> 4) & 3 : ip[1] & 3;
		pkts[k++] = m;
	}
	if (k == 0)
		return;
	if (s->ipsec->sad[v6] == NULL)
		memset(sa, 0, sizeof(sa[0]) * k);
	else
		dp_sad_lookup_runs(s->ipsec->sad[v6], keys, sa, k, v6);
	for (uint16_t i = 0; i < k; i++) {
		struct dp_sa *x = sa[i];
		struct rte_mbuf *m = pkts[i];
		const uint8_t *ah;

		if (x == NULL || x->cfg.proto != DPS_PROTO_AH) {
			dp_polog(w, port, m, DP_POLOG_unknown_spi, NULL, NULL);
			dp_drop(w, port, m, DP_CNT_drop_unknown_spi);
			continue;
		}
		ah = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN + dp_meta(m)->ah_off);
		if ((ah[1] + 2u) * 4 != x->ah_len ||
		    rte_pktmbuf_pkt_len(m) <
			    (uint32_t)RTE_ETHER_HDR_LEN + dp_meta(m)->ah_off + x->ah_len) {
			dp_sa_fail(w, x, &pkts[i], 0, 1, DP_SA_CNT_drop_len);
			continue;
		}
		if (x != cur && ng) {
			dp_xform_run(w, s, cur, grp, ng);
			ng = 0;
		}
		cur = x;
		dp_count(w, port, DP_CNT_ipsec_in);
		grp[ng++] = m;
	}
	if (ng)
		dp_xform_run(w, s, cur, grp, ng);
}

/* The sequence number screened against the window (the verdict is after
 * the ICV, crypto.c), its high half guessed for the ICV (RFC 4302 B.2). */
static uint16_t ah_in_prepare(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
			      uint16_t n)
{
	bool v6 = sa->outer_family == AF_INET6;
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t off = dp_meta(m)->ah_off, low;
		const uint8_t *ah = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN + off);
		uint64_t seq;

		memcpy(&low, ah + 8, 4);
		low = rte_be_to_cpu_32(low);
		seq = sa->replay ? dp_replay_seq(sa->replay, low) : low;
		if (sa->replay && !dp_replay_check(sa->replay, seq)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, DP_SA_CNT_drop_replay);
			continue;
		}
		dp_meta(m)->pre_len = rte_pktmbuf_pkt_len(m);
		dp_meta(m)->esp_seq = low; /* dp_esp_in_replay() decides after the ICV */
		if (!icv_input(sa, m, off, (uint32_t)(seq >> 32), v6)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, DP_SA_CNT_drop_other);
			continue;
		}
		mb[k++] = m;
	}
	return k;
}

/* RFC 6040 §4.2 decapsulation: CE outside on Not-ECT inside is dropped, CE
 * on ECT is copied inward. Returns false to drop. */
static inline bool ecn_decap(struct rte_mbuf *m, uint8_t *ip, bool v6)
{
	uint8_t inner = v6 ? (ip[1] >> 4) & 3 : ip[1] & 3;

	if (dp_meta(m)->outer_ecn != ECN_CE)
		return true;
	if (inner == ECN_NOT_ECT)
		return false;
	if (v6)
		ip[1] |= ECN_CE << 4;
	else
		ip[1] |= ECN_CE;
	return true;
}

/* A Destination Options header whose options a node that knows none of them
 * may skip (RFC 8200 §4.2: the action bits 00, or padding). */
static bool dstopts_skippable(const uint8_t *x, uint32_t len)
{
	for (uint32_t i = 2; i < len;) {
		if (x[i] == 0) { /* Pad1 */
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + x[i + 1] > len || (x[i] != 1 && (x[i] >> 6) != 0))
			return false;
		i += 2 + x[i + 1];
	}
	return true;
}

/* AH out of a verified packet: the inner packet (tunnel) or the packet
 * without AH (transport), as a frame received on its port. */
static enum dp_sa_counter in_strip(const struct dp_sa *sa, struct rte_mbuf *m, int *v6)
{
	uint32_t off = dp_meta(m)->ah_off, len = sa->ah_len;
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint8_t nh = ip[off];
	struct rte_ether_hdr *eth;

	if (sa->mode == DPS_MODE_TUNNEL) {
		uint8_t *in;

		/* IPv6: Destination Options after AH are the outer packet's (Linux
		 * and scapy put a sender's there when it has a Routing header) */
		while (nh == IPPROTO_DSTOPTS && sa->outer_family == AF_INET6) {
			uint32_t at = off + len, hl;

			if (rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + at + 2 ||
			    rte_pktmbuf_data_len(m) <
				    RTE_ETHER_HDR_LEN + at + (hl = (ip[at + 1] + 1u) * 8) ||
			    !dstopts_skippable(ip + at, hl))
				return DP_SA_CNT_drop_other;
			nh = ip[at];
			len += hl;
		}
		if (nh != IPPROTO_IPIP && nh != IPPROTO_IPV6)
			return DP_SA_CNT_drop_other;
		rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN + off + len);
		in = rte_pktmbuf_mtod(m, uint8_t *);
		*v6 = nh == IPPROTO_IPV6;
		if (rte_pktmbuf_data_len(m) < (*v6 ? 40 : 20) || (in[0] >> 4) != (*v6 ? 6 : 4))
			return DP_SA_CNT_drop_other;
		if (sa->ecn && !ecn_decap(m, in, *v6))
			return DP_SA_CNT_drop_ecn;
		eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, RTE_ETHER_HDR_LEN);
		if (eth == NULL)
			return DP_SA_CNT_drop_other;
		eth->src_addr = (struct rte_ether_addr){0};
		eth->ether_type = rte_cpu_to_be_16(*v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
		ip = in;
	} else {
		uint32_t nhp = 9;

		*v6 = sa->outer_family == AF_INET6;
		if (*v6)
			for (uint32_t o = 40; o < off; o += ((uint32_t)ip[o + 1] + 1) * 8)
				nhp = o;
		if (*v6 && nhp == 9)
			nhp = 6;
		ip[nhp] = nh;
		if (*v6) {
			struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

			h->payload_len = rte_cpu_to_be_16(rte_be_to_cpu_16(h->payload_len) - len);
		} else {
			struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

			h->total_length = rte_cpu_to_be_16(rte_be_to_cpu_16(h->total_length) - len);
		}
		memmove(rte_pktmbuf_mtod_offset(m, uint8_t *, len), rte_pktmbuf_mtod(m, uint8_t *),
			RTE_ETHER_HDR_LEN + off);
		rte_pktmbuf_adj(m, len);
		eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		ip = (uint8_t *)(eth + 1);
	}
	eth->dst_addr = dp.ports[dp.port_of_eth[m->port]].mac;
	if (!*v6) {
		dp_ip4_cksum_set((struct rte_ipv4_hdr *)ip);
		/* just computed: the input stage need not sum it again (as ESP's
		 * inner_l2()) */
		m->ol_flags =
			(m->ol_flags & ~RTE_MBUF_F_RX_IP_CKSUM_MASK) | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
	}
	return DP_SA_CNT_MAX;
}

static void ah_in_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			 struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	struct dp_stages *st = &w->st;
	uint64_t bytes = 0;
	uint16_t good = 0;

	(void)s;
	/* after the ICV: failed it, or (dp_esp_in_replay) a replay */
	for (uint16_t i = k; i < n; i++)
		dp_sa_fail(w, sa, &mb[i], 0, 1,
			   mb[i]->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED
				   ? DP_SA_CNT_drop_auth
				   : DP_SA_CNT_drop_replay);
	if (k && sa->first_use_ms == 0)
		sa->first_use_ms = dp_now_ms();
	for (uint16_t i = 0; i < k; i++) {
		struct rte_mbuf *m = mb[i];
		enum dp_sa_counter bad;
		int v6;

		icv_restore(sa, m);
		m->ol_flags &= ~(RTE_MBUF_F_RX_SEC_OFFLOAD | RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED);
		bad = in_strip(sa, m, &v6);
		if (unlikely(bad != DP_SA_CNT_MAX || st->n_again == DP_MAX_BURST)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1,
				   bad != DP_SA_CNT_MAX ? bad : DP_SA_CNT_drop_other);
			continue;
		}
		bytes += rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
		dp_meta_via_push(dp_meta(m), sa);
		st->again[st->n_again++] = m;
		good++;
	}
	dp_sa_count(sa, w->id, DP_SA_CNT_packets, good);
	dp_sa_count(sa, w->id, DP_SA_CNT_bytes, bytes);
}

/* ---- the crypto: the rte_ipsec_session functions crypto.c calls ----------- */

static inline struct dp_sa *sa_of(const struct rte_ipsec_session *ss)
{
	return (struct dp_sa *)(uintptr_t)ss; /* the session is the SA's first member */
}

/* Where the ICV is written (out, in AH) or the received one is (in, tailroom). */
static inline uint32_t digest_off(const struct dp_sa *sa, struct rte_mbuf *m)
{
	return ah_out(sa) ? RTE_ETHER_HDR_LEN + dp_meta(m)->ah_off + DP_AH_HDR_LEN + sa->iv_len
			  : rte_pktmbuf_data_len(m);
}

static uint16_t ah_cop_prepare(const struct rte_ipsec_session *ss, struct rte_mbuf *mb[],
			       struct rte_crypto_op *cop[], uint16_t n)
{
	const struct dp_sa *sa = sa_of(ss);

	for (uint16_t i = 0; i < n; i++) {
		struct rte_crypto_sym_op *sym = cop[i]->sym;
		uint32_t d = digest_off(sa, mb[i]);

		rte_crypto_op_attach_sym_session(cop[i], ss->crypto.ses);
		sym->m_src = mb[i];
		sym->auth.data.offset = RTE_ETHER_HDR_LEN;
		sym->auth.data.length = rte_pktmbuf_pkt_len(mb[i]) - RTE_ETHER_HDR_LEN;
		sym->auth.digest.data = rte_pktmbuf_mtod_offset(mb[i], uint8_t *, d);
		sym->auth.digest.phys_addr = rte_pktmbuf_iova_offset(mb[i], d);
		if (sa->iv_len) { /* AES-GMAC: the nonce, salt || IV (RFC 4543 §3.1) */
			uint8_t *iv =
				rte_crypto_op_ctod_offset(cop[i], uint8_t *, DP_CRYPTO_IV_OFFSET);

			memcpy(iv, &sa->ah_salt, 4);
			memcpy(iv + 4,
			       rte_pktmbuf_mtod_offset(mb[i], uint8_t *,
						       RTE_ETHER_HDR_LEN + dp_meta(mb[i])->ah_off +
							       DP_AH_HDR_LEN),
			       8);
		}
	}
	return n;
}

static uint16_t ah_cpu_prepare(const struct rte_ipsec_session *ss, struct rte_mbuf *mb[],
			       uint16_t n)
{
	const struct dp_sa *sa = sa_of(ss);
	struct rte_crypto_vec v[DP_MAX_BURST];
	struct rte_crypto_sgl sgl[DP_MAX_BURST];
	struct rte_crypto_va_iova_ptr iv[DP_MAX_BURST], dg[DP_MAX_BURST], aad[DP_MAX_BURST];
	int32_t st[DP_MAX_BURST];
	uint16_t idx[DP_MAX_BURST], k = 0, nc = 0;
	struct rte_mbuf *chained[DP_MAX_BURST];
	union rte_crypto_sym_ofs ofs = {.raw = 0};
	struct rte_crypto_sym_vec vec = {
		.src_sgl = sgl, .iv = iv, .digest = dg, .aad = aad, .status = st};

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t d = digest_off(sa, m), len = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;

		if (!rte_pktmbuf_is_contiguous(m)) {
			chained[nc++] = m;
			continue;
		}
		v[k].base = rte_pktmbuf_mtod_offset(m, void *, RTE_ETHER_HDR_LEN);
		v[k].iova = rte_pktmbuf_iova_offset(m, RTE_ETHER_HDR_LEN);
		v[k].len = v[k].tot_len = len;
		sgl[k].vec = &v[k];
		sgl[k].num = 1;
		dg[k].va = rte_pktmbuf_mtod_offset(m, void *, d);
		dg[k].iova = rte_pktmbuf_iova_offset(m, d);
		iv[k] = aad[k] = (struct rte_crypto_va_iova_ptr){NULL, 0};
		st[k] = 0;
		idx[k++] = i;
	}
	vec.num = k;
	if (k)
		rte_cryptodev_sym_cpu_crypto_process(ss->crypto.dev_id, ss->crypto.ses, ofs, &vec);
	for (uint16_t j = 0; j < k; j++)
		if (st[j] != 0)
			mb[idx[j]]->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
	/* a chained (reassembled) packet: hashed from a copy in the scratch */
	for (uint16_t j = 0; j < nc; j++) {
		struct rte_mbuf *m = chained[j];
		uint32_t d = digest_off(sa, m), len = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;

		v[0].base = len > AH_LINEAR
				    ? NULL
				    : (void *)(uintptr_t)rte_pktmbuf_read(m, RTE_ETHER_HDR_LEN, len,
									  RTE_PER_LCORE(ah_linear));
		v[0].iova = 0;
		v[0].len = v[0].tot_len = len;
		sgl[0].vec = &v[0];
		sgl[0].num = 1;
		dg[0].va = rte_pktmbuf_mtod_offset(m, void *, d);
		dg[0].iova = rte_pktmbuf_iova_offset(m, d);
		iv[0] = aad[0] = (struct rte_crypto_va_iova_ptr){NULL, 0};
		st[0] = 0;
		vec.num = 1;
		if (v[0].base == NULL ||
		    rte_cryptodev_sym_cpu_crypto_process(ss->crypto.dev_id, ss->crypto.ses, ofs,
							 &vec) != 1 ||
		    st[0] != 0)
			m->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
	}
	return n;
}

/* The ICV check in constant time (RFC 4302 §3.4.4 leaves it to the
 * implementation: a timing difference must not tell how much matched). Every
 * ICV here is a multiple of 4 bytes (12, 16, 24, 32). */
static inline bool icv_equal(const uint8_t *a, const uint8_t *b, uint32_t len)
{
	uint64_t d = 0, x, y;
	uint32_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		d |= x ^ y;
	}
	if (i < len) { /* HMAC-SHA1-96's last 4 */
		uint32_t x4, y4;

		memcpy(&x4, a + i, 4);
		memcpy(&y4, b + i, 4);
		d |= x4 ^ y4;
	}
	return d == 0;
}

/* A chained (reassembled) packet: the library takes one buffer, so it is
 * hashed from a copy in the worker's scratch, on its own. */
static void imb_chained(struct dp_worker *w, const struct dp_sa *sa, const struct dp_imb_key *key,
			struct rte_mbuf *m)
{
	uint32_t len = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
	uint8_t *d = rte_pktmbuf_mtod_offset(m, uint8_t *, digest_off(sa, m));
	uint8_t icv[AH_ICV_ROOM];
	uint8_t *tag = ah_out(sa) ? d : icv;
	const uint8_t *p = len > AH_LINEAR ? NULL
					   : rte_pktmbuf_read(m, RTE_ETHER_HDR_LEN, len,
							      RTE_PER_LCORE(ah_linear));

	if (p == NULL || dp_imb_hmac(w, key, &p, &len, &tag, 1) != 1 ||
	    (!ah_out(sa) && !icv_equal(icv, d, sa->icv_len)))
		m->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
}

void dp_ah_imb_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		   struct rte_mbuf **mb, uint16_t n)
{
	const struct dp_imb_key *key = (const struct dp_imb_key *)sa->ss.crypto.ses;
	const uint8_t *src[DP_MAX_BURST];
	uint32_t len[DP_MAX_BURST];
	uint8_t *tag[DP_MAX_BURST], *rcv[DP_MAX_BURST];
	uint16_t idx[DP_MAX_BURST], k = 0;
	uint8_t icv[DP_MAX_BURST][AH_ICV_ROOM]; /* inbound: the computed ICVs */
	const bool out = ah_out(sa);

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint8_t *d = rte_pktmbuf_mtod_offset(m, uint8_t *, digest_off(sa, m));

		if (unlikely(!rte_pktmbuf_is_contiguous(m))) {
			imb_chained(w, sa, key, m);
			continue;
		}
		src[k] = rte_pktmbuf_mtod_offset(m, const uint8_t *, RTE_ETHER_HDR_LEN);
		len[k] = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
		/* outbound the ICV goes straight into AH; inbound d is the received one */
		tag[k] = out ? d : icv[k];
		rcv[k] = d;
		idx[k++] = i;
	}
	if (k && unlikely(dp_imb_hmac(w, key, src, len, tag, k) != k)) {
		for (uint16_t j = 0; j < k; j++)
			mb[idx[j]]->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
	} else if (!out) {
		for (uint16_t j = 0; j < k; j++)
			if (!icv_equal(icv[j], rcv[j], sa->icv_len))
				mb[idx[j]]->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
	}
	sa->xf->finish(w, s, sa, mb, dp_crypto_process(sa, mb, n), n);
}

/* The packets whose crypto failed after the others (the finish counts them). */
static uint16_t ah_process(const struct rte_ipsec_session *ss, struct rte_mbuf *mb[], uint16_t n)
{
	struct rte_mbuf *bad[DP_MAX_BURST];
	uint16_t k = 0, nb = 0;

	(void)ss;
	for (uint16_t i = 0; i < n; i++) {
		if (mb[i]->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED)
			bad[nb++] = mb[i];
		else
			mb[k++] = mb[i];
	}
	memcpy(&mb[k], bad, nb * sizeof(bad[0]));
	return k;
}

static const struct dp_xform_ops ah_out_ops = {.prepare = ah_out_prepare, .finish = ah_out_finish};
static const struct dp_xform_ops ah_in_ops = {.prepare = ah_in_prepare, .finish = ah_in_finish};

const struct dp_xform_ops *dp_ah_ops(const struct dp_sa *sa)
{
	return ah_out(sa) ? &ah_out_ops : &ah_in_ops;
}

int dp_ah_init(struct dp_sa *sa, struct dp_xforms *x, void *key)
{
	const struct dp_crypto_dev *d = &dp_crypto.devs[sa->dev];
	bool v6 = sa->cfg.dst.family == AF_INET6;
	uint32_t hdr = DP_AH_HDR_LEN + x->iv_len + x->icv_len;

	/* RFC 4302 §2.6: AH a multiple of 8 bytes over IPv6, of 4 over IPv4 */
	sa->ah_len = (uint8_t)(v6 ? RTE_ALIGN_CEIL(hdr, 8) : RTE_ALIGN_CEIL(hdr, 4));
	/* What fits (mtu.h, output.c): with no padding to align and no
	 * trailer, an overhead 2 bytes short of AH and the outer header. */
	sa->block = 1;
	sa->overhead =
		(uint16_t)((sa->mode == DPS_MODE_TUNNEL ? (v6 ? 40 : 20) : 0) + sa->ah_len - 2);
	sa->ah_salt = x->salt;
	sa->ss.pkt_func.process = ah_process;
	if (key != NULL) { /* the HMAC's states, no session: dp_ah_imb_run */
		sa->ss.crypto.ses = (void *)dp_imb_key_init(key, &sa->cfg);
		sa->native = true;
		sa->ss.type = RTE_SECURITY_ACTION_TYPE_NONE;
		sa->ses_lines = (uint8_t)dp_imb_key_lines(&sa->cfg);
		return 0;
	}
	char why[128];

	sa->ss.crypto.ses = dp_session_create(d->id, x->first, why, sizeof(why));
	if (sa->ss.crypto.ses == NULL)
		return -rte_errno ? -rte_errno : -ENOMEM;
	sa->ss.crypto.dev_id = d->id;
	/* crypto.c's poll finds the SA of a finished op from the session */
	rte_cryptodev_sym_session_opaque_data_set(sa->ss.crypto.ses, (uintptr_t)&sa->ss);
	/* AES-GMAC takes its nonce from the crypto op: the queue path */
	sa->ss.type = d->cpu_crypto && dp.cfg->crypto.cpu_crypto && x->iv_len == 0
			      ? RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO
			      : RTE_SECURITY_ACTION_TYPE_NONE;
	if (sa->ss.type == RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO)
		sa->ss.pkt_func.prepare.sync = ah_cpu_prepare;
	else
		sa->ss.pkt_func.prepare.async = ah_cop_prepare;
	return 0;
}
