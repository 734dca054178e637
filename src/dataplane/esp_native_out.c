/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Outbound ESP of the native engine's AES-GCM SAs (esp_native_out.h): the
 * framing lib/ipsec 22.11 does for a lookaside session (its esp_outb.c,
 * iph.h, pad.h), done here for the sub-burst and then the crypto call for
 * each packet, no crypto op between. esp_out.c's prepare and finish stay
 * around it: lengths and the inner DF before, checksums, counters and
 * output after.
 */
#include <string.h>

#include <intel-ipsec-mb.h>
#include <rte_esp.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "dataplane/esp_native_out.h"
#include "dataplane/imb.h"
#include "dataplane/polog.h"
#include "dataplane/sa.h"
#include "dataplane/worker.h"

#define ICV_LEN 16 /* RFC 4106 §6: the full 16-byte tag */
#define IV_LEN	8  /* RFC 4106 §3.1: the explicit IV, here the sequence number */
/* ESP header and IV: what follows the outer (or transport) IP header */
#define ESP_HLEN (sizeof(struct rte_esp_hdr) + IV_LEN)
/* lib/ipsec refuses a packet whose last segment lacks room for its trailer,
 * ICV, the high sequence half it puts before the ICV for an ESN SA and the
 * AAD after it (struct aead_gcm_aad): the same packets are refused here. */
#define AAD_ROOM 16

_Static_assert(sizeof(struct dp_esp_nout) == RTE_CACHE_LINE_SIZE, "one line per SA");

/* RFC 4303 §2.4: padding to 4 bytes, the pad bytes 1, 2, 3 */
static const uint8_t pad_bytes[4] = {1, 2, 3, 4};

/* Where the ciphertext and its ICV are, once a packet is framed. */
struct framed {
	uint8_t *esp;	 /* the ESP header, in the first segment */
	uint8_t *icv;	 /* after the trailer, in the last segment */
	uint32_t off;	 /* of the ciphertext from the packet's start */
	uint32_t len;	 /* of the ciphertext: payload, padding, trailer */
	uint8_t ip_next; /* transport: the protocol ESP now carries */
};

/*
 * Pad, trailer and room for the ICV after the payload's @plen bytes (RFC
 * 4303 §2.4-2.8) in the last segment, which had @room bytes to spare beyond
 * the ICV. Returns the length to encrypt, 0 when there is no room.
 */
static inline uint32_t append_trailer(struct rte_mbuf *m, struct rte_mbuf *ml, uint32_t plen,
				      uint32_t room, uint8_t next, struct framed *f)
{
	uint32_t clen = RTE_ALIGN_CEIL(plen + sizeof(struct rte_esp_tail), 4);
	uint32_t tlen = clen - plen + ICV_LEN; /* padding, trailer, ICV */
	uint8_t *pt, npad = (uint8_t)(clen - plen - sizeof(struct rte_esp_tail));

	if (unlikely(tlen + room > rte_pktmbuf_tailroom(ml)))
		return 0;
	pt = rte_pktmbuf_mtod_offset(ml, uint8_t *, ml->data_len);
	ml->data_len += tlen;
	m->pkt_len += tlen;
	/* four pad bytes whatever the count: the trailer and the ICV overwrite
	 * what is beyond it */
	memcpy(pt, pad_bytes, sizeof(pad_bytes));
	pt[npad] = npad;
	pt[npad + 1] = next;
	f->icv = pt + npad + sizeof(struct rte_esp_tail);
	return clen;
}

static inline void esp_header(const struct dp_esp_nout *t, uint8_t *esp, uint64_t seq)
{
	struct rte_esp_hdr *h = (struct rte_esp_hdr *)esp;
	rte_be64_t iv = rte_cpu_to_be_64(seq);

	h->spi = t->spi;
	h->seq = rte_cpu_to_be_32((uint32_t)seq);
	/* RFC 4106 §3.1: the IV is the (64-bit) sequence number, unique per key */
	memcpy(esp + sizeof(*h), &iv, sizeof(iv));
}

/* The TOS of the inner IPv4 header or the traffic class of the inner IPv6 one. */
static inline uint8_t inner_tos(const uint8_t *ip, const bool in6)
{
	return in6 ? (uint8_t)((ip[0] & 0x0f) << 4 | ip[1] >> 4) : ip[1];
}

/*
 * Tunnel mode (RFC 4303 §3.1.2): the outer header from the template before
 * ESP, its length, id (the sequence number's low 16 bits, as lib/ipsec) and
 * TOS per packet: DSCP copied, and ECN too with the ecn knob (RFC 6040 §4.1,
 * normal mode); the checksum is the finish's. Specialised by the constant
 * outer family and UDP encapsulation (RFC 3948).
 */
static inline bool frame_tun(const struct dp_esp_nout *t, struct rte_mbuf *m, uint64_t seq,
			     struct framed *f, const bool out6, const bool udp)
{
	const uint32_t iplen = out6 ? sizeof(struct rte_ipv6_hdr) : sizeof(struct rte_ipv4_hdr);
	const uint32_t hdr = iplen + (udp ? sizeof(struct rte_udp_hdr) : 0);
	const uint32_t hlen = RTE_ETHER_HDR_LEN + hdr + ESP_HLEN;
	struct rte_mbuf *ml = rte_pktmbuf_lastseg(m);
	uint32_t l2 = m->l2_len, plen = rte_pktmbuf_pkt_len(m) - l2, len;
	uint8_t *ph, *ip, tos;

	f->len = append_trailer(m, ml, plen, AAD_ROOM + (t->esn ? 4 : 0), t->next, f);
	if (f->len == 0)
		return false;
	ph = (uint8_t *)rte_pktmbuf_prepend(m, (uint16_t)(hlen - l2));
	if (unlikely(ph == NULL))
		return false; /* the trailer stays: the packet is dropped */
	m->tx_offload =
		(m->tx_offload & ~rte_mbuf_tx_offload(RTE_LEN2MASK(RTE_MBUF_L2_LEN_BITS, uint64_t),
						      RTE_LEN2MASK(RTE_MBUF_L3_LEN_BITS, uint64_t),
						      0, 0, 0, 0, 0)) |
		rte_mbuf_tx_offload(RTE_ETHER_HDR_LEN, hdr, 0, 0, 0, 0, 0);
	memset(ph, 0, 2 * RTE_ETHER_ADDR_LEN);
	memcpy(ph + 2 * RTE_ETHER_ADDR_LEN, &t->eth_type, sizeof(t->eth_type));
	ip = ph + RTE_ETHER_HDR_LEN;
	memcpy(ip, t->hdr, hdr);
	tos = inner_tos(ph + hlen, t->in6) & t->tos_mask;
	len = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
	if (out6) {
		struct rte_ipv6_hdr *o = (struct rte_ipv6_hdr *)ip;

		o->payload_len = rte_cpu_to_be_16((uint16_t)(len - iplen));
		o->vtc_flow |= rte_cpu_to_be_32((uint32_t)tos << RTE_IPV6_HDR_TC_SHIFT);
	} else {
		struct rte_ipv4_hdr *o = (struct rte_ipv4_hdr *)ip;

		o->total_length = rte_cpu_to_be_16((uint16_t)len);
		o->packet_id = rte_cpu_to_be_16((uint16_t)seq);
		o->type_of_service |= tos;
	}
	if (udp)
		((struct rte_udp_hdr *)(ip + iplen))->dgram_len =
			rte_cpu_to_be_16((uint16_t)(len - iplen));
	f->esp = ip + hdr;
	f->off = hlen;
	esp_header(t, f->esp, seq);
	return true;
}

/*
 * The byte of an IPv6 header, or of its last extension header within @l3
 * bytes, that names the next protocol; NULL if the extension headers do not
 * end at @l3 (lib/ipsec's update_trs_l3hdr). esp_out.c's prepare sets @l3
 * to the fixed header: the loop is for a caller that counts extensions in.
 */
static inline uint8_t *ip6_next_hdr(uint8_t *ip, uint32_t l3)
{
	uint8_t *p = ip, *end = ip + l3, *nh = &((struct rte_ipv6_hdr *)ip)->proto;
	size_t len = sizeof(struct rte_ipv6_hdr);
	int proto = *nh;

	while (p + len < end) {
		p += len;
		nh = p;
		proto = rte_ipv6_get_next_ext(p, proto, &len);
		if (proto < 0)
			return NULL;
	}
	return p + len == end ? nh : NULL;
}

/*
 * Transport mode (RFC 4303 §3.1.1): ESP between the IP header (with its
 * extension headers: l3_len) and the payload; the header's protocol becomes
 * ESP, its length grows. The family is the SA's (its addresses').
 */
static inline bool frame_trs(const struct dp_esp_nout *t, struct rte_mbuf *m, uint64_t seq,
			     struct framed *f, const bool v6)
{
	struct rte_mbuf *ml = rte_pktmbuf_lastseg(m);
	uint32_t l2 = m->l2_len, uh = l2 + m->l3_len, plen = rte_pktmbuf_pkt_len(m) - uh;
	uint8_t *ph, *ip, *nh;

	ip = rte_pktmbuf_mtod_offset(m, uint8_t *, l2);
	nh = v6 ? ip6_next_hdr(ip, m->l3_len) : &((struct rte_ipv4_hdr *)ip)->next_proto_id;
	if (unlikely(nh == NULL))
		return false;
	f->ip_next = *nh;
	f->len = append_trailer(m, ml, plen, AAD_ROOM + (t->esn ? 4 : 0), f->ip_next, f);
	if (f->len == 0)
		return false;
	ph = (uint8_t *)rte_pktmbuf_prepend(m, ESP_HLEN);
	if (unlikely(ph == NULL))
		return false;
	memmove(ph, ph + ESP_HLEN, uh);
	nh -= ESP_HLEN;
	*nh = IPPROTO_ESP;
	ip = ph + l2;
	if (v6)
		((struct rte_ipv6_hdr *)ip)->payload_len = rte_cpu_to_be_16(
			(uint16_t)(rte_pktmbuf_pkt_len(m) - l2 - sizeof(struct rte_ipv6_hdr)));
	else
		((struct rte_ipv4_hdr *)ip)->total_length =
			rte_cpu_to_be_16((uint16_t)(rte_pktmbuf_pkt_len(m) - l2));
	f->esp = ph + uh;
	f->off = uh + ESP_HLEN;
	esp_header(t, f->esp, seq);
	return true;
}

/* A framed packet's nonce and AAD (RFC 4106 §4-5), made with the framing. */
struct gcm_in {
	uint8_t nonce[16] __rte_aligned(16); /* salt, IV */
	rte_be32_t aad[4];		     /* SPI, (ESN: high half,) sequence number */
};

static inline void gcm_in_fill(struct gcm_in *g, const struct dp_esp_nout *t,
			       const struct framed *f, uint64_t seq)
{
	memcpy(g->nonce, &t->salt, sizeof(t->salt));
	memcpy(g->nonce + sizeof(t->salt), f->esp + sizeof(struct rte_esp_hdr), IV_LEN);
	g->aad[0] = t->spi;
	g->aad[1] = rte_cpu_to_be_32((uint32_t)(t->esn ? seq >> 32 : seq));
	g->aad[2] = rte_cpu_to_be_32((uint32_t)seq); /* ESN: the low half after the high */
}

/* The ICV follows the trailer. */
static inline bool encrypt(IMB_MGR *mgr, const struct dp_imb_key *k, struct rte_mbuf *m,
			   const struct framed *f, const struct gcm_in *g, const bool k256)
{
	struct gcm_context_data ctx;
	uint8_t *ct = f->esp + ESP_HLEN;

	if (unlikely(m->nb_segs > 1))
		return dp_imb_gcm_chain(mgr, k, m, f->off, f->len, g->nonce,
					(const uint8_t *)g->aad, f->icv, true);
	if (k256)
		IMB_AES256_GCM_ENC(mgr, &k->gcm, &ctx, ct, ct, f->len, g->nonce,
				   (const uint8_t *)g->aad, k->aad_len, f->icv, ICV_LEN);
	else
		IMB_AES128_GCM_ENC(mgr, &k->gcm, &ctx, ct, ct, f->len, g->nonce,
				   (const uint8_t *)g->aad, k->aad_len, f->icv, ICV_LEN);
	return true;
}

/*
 * One sub-burst of one SA, specialised by the constant mode, outer family,
 * UDP encapsulation (tunnel; transport's is the finish's) and key size.
 * Sequence numbers as lib/ipsec's (its esn_outb_update_sqn): the SA's
 * counter moves by the whole sub-burst, atomically since two workers may
 * share the SA; without ESN the counter never cycles (RFC 4303 §3.3.3), and
 * like lib/ipsec the last number it refuses to use is 2^32 - 1 itself.
 * Every packet is framed before any is encrypted: AES-GCM's wide loads of
 * the trailer, nonce and AAD just written would wait for those narrow
 * stores to retire (no store-to-load forwarding across them).
 */
static inline void nout_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			    struct rte_mbuf **mb, uint16_t n, const bool tun, const bool out6,
			    const bool udp, const bool k256)
{
	const struct dp_imb_key *k = (const struct dp_imb_key *)sa->ss.crypto.ses;
	const struct dp_esp_nout *t = &sa->nout;
	uint64_t seq = __atomic_fetch_add(&sa->out_sqn, n, __ATOMIC_RELAXED);
	struct framed f[DP_MAX_BURST];
	struct gcm_in g[DP_MAX_BURST];
	uint16_t nf = 0, ok = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		bool framed;

		seq++;
		if (unlikely(!t->esn && seq >= UINT32_MAX)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, (enum dp_sa_counter)sa->prep_fail);
			continue;
		}
		framed = tun ? frame_tun(t, m, seq, &f[nf], out6, udp)
			     : frame_trs(t, m, seq, &f[nf], out6);
		if (unlikely(!framed)) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, (enum dp_sa_counter)sa->prep_fail);
			continue;
		}
		gcm_in_fill(&g[nf], t, &f[nf], seq);
		mb[nf++] = m;
	}
	for (uint16_t i = 0; i < nf; i++) {
		if (unlikely(!encrypt(w->imb, k, mb[i], &f[i], &g[i], k256))) {
			dp_sa_fail(w, sa, &mb[i], 0, 1, DP_SA_CNT_drop_crypto);
			continue;
		}
		mb[ok++] = mb[i];
	}
	sa->xf->finish(w, s, sa, mb, ok, ok);
}

#define NOUT_RUN(name, tun, out6, udp, k256)                                                       \
	static void name(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,       \
			 struct rte_mbuf **mb, uint16_t n)                                         \
	{                                                                                          \
		nout_run(w, s, sa, mb, n, tun, out6, udp, k256);                                   \
	}

NOUT_RUN(nout_tun4_128, true, false, false, false)
NOUT_RUN(nout_tun4_256, true, false, false, true)
NOUT_RUN(nout_tun4_udp_128, true, false, true, false)
NOUT_RUN(nout_tun4_udp_256, true, false, true, true)
NOUT_RUN(nout_tun6_128, true, true, false, false)
NOUT_RUN(nout_tun6_256, true, true, false, true)
NOUT_RUN(nout_tun6_udp_128, true, true, true, false)
NOUT_RUN(nout_tun6_udp_256, true, true, true, true)
NOUT_RUN(nout_trs4_128, false, false, false, false)
NOUT_RUN(nout_trs4_256, false, false, false, true)
NOUT_RUN(nout_trs6_128, false, true, false, false)
NOUT_RUN(nout_trs6_256, false, true, false, true)

/* [tunnel][outer IPv6][UDP][AES-256] */
static const dp_xform_run_t nout_runs[2][2][2][2] = {
	{{{nout_trs4_128, nout_trs4_256}, {nout_trs4_128, nout_trs4_256}},
	 {{nout_trs6_128, nout_trs6_256}, {nout_trs6_128, nout_trs6_256}}},
	{{{nout_tun4_128, nout_tun4_256}, {nout_tun4_udp_128, nout_tun4_udp_256}},
	 {{nout_tun6_128, nout_tun6_256}, {nout_tun6_udp_128, nout_tun6_udp_256}}},
};

void dp_esp_native_out_init(struct dp_sa *sa, uint32_t salt, const void *ip, uint8_t ip_len)
{
	const struct dp_imb_key *k = (const struct dp_imb_key *)sa->ss.crypto.ses;
	struct dp_esp_nout *t = &sa->nout;
	bool tun = sa->mode == DPS_MODE_TUNNEL, out6 = sa->outer_family == AF_INET6;
	bool udp = tun && sa->udp_encap;

	memset(t, 0, sizeof(*t));
	t->spi = rte_cpu_to_be_32(sa->cfg.spi);
	t->salt = salt;
	t->esn = sa->cfg.esn;
	t->in6 = sa->inner_family == AF_INET6;
	if (tun) {
		t->eth_type = rte_cpu_to_be_16(out6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
		memcpy(t->hdr, ip, ip_len);
		t->hdr_len = ip_len;
		if (udp) { /* RFC 3948 §2.1: no UDP checksum (IPv6's is the finish's) */
			struct rte_udp_hdr *u = (struct rte_udp_hdr *)(t->hdr + ip_len);

			u->src_port = rte_cpu_to_be_16(sa->cfg.encap_sport);
			u->dst_port = rte_cpu_to_be_16(sa->cfg.encap_dport);
			t->hdr_len += sizeof(*u);
		}
		t->next = t->in6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
		/* DSCP always, as esp_out.c's lib/ipsec SAs (sa.c's fill_prm) */
		t->tos_mask = RTE_IPV4_HDR_DSCP_MASK | (sa->ecn ? RTE_IPV4_HDR_ECN_MASK : 0);
	}
	/* lib/ipsec's first number is seq_start itself, or 1 (its esp_outb_init):
	 * out_sqn is the last one used */
	sa->out_sqn = RTE_MAX(sa->cfg.seq_start, (uint64_t)1) - 1;
	sa->nout_lines = 1;
	sa->crypto = nout_runs[tun][out6][udp][k->k256];
}
