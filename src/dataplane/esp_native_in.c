/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound ESP of the SAs the native engine runs (AES-GCM, RFC 4106), without
 * lib/ipsec and without crypto ops, as VPP's ipsecmb engine does: dpsec's
 * own window screens the sequence numbers, the worker's intel-ipsec-mb
 * manager decrypts each packet in place and the tag is compared here, the
 * trailer checked and the headers stripped. The mbufs are left as lib/ipsec's
 * process leaves them (esp_in.c's finish takes them on either path): tunnel
 * mode, the inner packet at the data start, the outer header still in the
 * buffer before it (natt_seen() reads it); transport mode, the IP header
 * moved forward onto the payload.
 *
 * A failure is left in the state esp_in.c's in_failure() reads: a wrong ICV
 * flagged on the mbuf, an invalid trailer with the length unchanged, a
 * replay (the window's verdict after the ICV) shortened.
 */
#include <rte_esp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include "dataplane/dp.h"
#include "dataplane/esp_native_in.h"
#include "dataplane/imb.h"
#include "dataplane/polog.h"
#include "dataplane/replay.h"
#include "dataplane/sa.h"
#include "dataplane/worker.h"

#define ESP_HDR_LEN  8	/* SPI, sequence number */
#define GCM_IV_LEN   8	/* the explicit IV (RFC 4106 §3.1) */
#define GCM_TAG_LEN  16 /* the ICV */
#define ESP_TAIL_LEN 2	/* pad length, next header */
#define ECN_CE	     3

/* Bytes before the ciphertext, from the ESP header */
#define ESP_HEAD (ESP_HDR_LEN + GCM_IV_LEN)

/*
 * The full sequence numbers of @n packets of @sa (their high half, with ESN,
 * reconstructed from the window: RFC 4303 A2.1) into @seq, screened against
 * the window before the crypto (RFC 4303 §3.4.3; the verdict is after the
 * ICV, under the lock: a read here may be stale, never unsafe). A packet in
 * several segments must have its headers, ESP header and IV in the first.
 * Returns how many go on, first in @mb; after them the replays (@nrep) and
 * the others (drop_len).
 */
static inline uint16_t screen(const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n,
			      uint64_t *seq, uint16_t *nrep)
{
	const struct dp_replay *r = sa->replay;
	struct rte_mbuf *rej[DP_MAX_BURST], *len[DP_MAX_BURST];
	uint16_t k = 0, nl = 0;

	*nrep = 0;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		uint32_t low = dp_meta(m)->esp_seq;
		uint64_t s = r != NULL ? dp_replay_seq(r, low) : low;

		if (unlikely(m->nb_segs > 1) &&
		    rte_pktmbuf_data_len(m) < (uint32_t)m->l2_len + m->l3_len + ESP_HEAD) {
			len[nl++] = m;
			continue;
		}
		if (r != NULL && !dp_replay_check(r, s)) {
			rej[(*nrep)++] = m;
			continue;
		}
		seq[k] = s;
		mb[k++] = m;
	}
	memcpy(&mb[k], rej, *nrep * sizeof(rej[0]));
	memcpy(&mb[k + *nrep], len, nl * sizeof(len[0]));
	return k;
}

/* The nonce (RFC 4106 §4): the salt of the key material, the explicit IV. */
static inline void gcm_nonce(uint8_t *nonce, const struct dp_imb_key *k, const uint8_t *esp)
{
	memcpy(nonce, k->salt, sizeof(k->salt));
	memcpy(nonce + sizeof(k->salt), esp + ESP_HDR_LEN, GCM_IV_LEN);
}

/* The AAD (RFC 4106 §5): SPI and sequence number as they travel, or with
 * ESN SPI, the high half, the low half. */
static inline const uint8_t *gcm_aad(uint8_t *buf, const struct dp_imb_key *k, const uint8_t *esp,
				     uint64_t seq)
{
	rte_be32_t hi = rte_cpu_to_be_32((uint32_t)(seq >> 32));

	if (k->aad_len == ESP_HDR_LEN)
		return esp;
	memcpy(buf, esp, 4);
	memcpy(buf + 4, &hi, 4);
	memcpy(buf + 8, esp + 4, 4);
	return buf;
}

/* Decrypt @len bytes at @p in place, the tag into @tag: a packet in one
 * segment. */
static inline void gcm_dec(IMB_MGR *mgr, const struct dp_imb_key *k, uint8_t *p, uint32_t len,
			   const uint8_t *nonce, const uint8_t *aad, uint8_t *tag, const bool k256)
{
	struct gcm_context_data ctx;

	if (k256)
		IMB_AES256_GCM_DEC(mgr, &k->gcm, &ctx, p, p, len, nonce, aad, k->aad_len, tag,
				   GCM_TAG_LEN);
	else
		IMB_AES128_GCM_DEC(mgr, &k->gcm, &ctx, p, p, len, nonce, aad, k->aad_len, tag,
				   GCM_TAG_LEN);
}

/*
 * RFC 4303 §2.4 and §2.6, as lib/ipsec checks them: the padding within the
 * plaintext and its bytes 1, 2, 3...; in tunnel mode, the next header the
 * SA carries (@nh: anything else, a dummy packet's 59 too, is refused).
 * @pl: the plaintext's last @plen bytes (all of its trailer, but at most
 * 257), @ptlen the plaintext's length.
 */
static inline bool trailer_ok(const uint8_t *pl, uint32_t plen, uint32_t ptlen, int nh)
{
	uint8_t pad = pl[plen - 2], bad = 0;

	if ((uint32_t)pad + ESP_TAIL_LEN > ptlen)
		return false;
	for (uint32_t i = 0; i < pad; i++)
		bad |= pl[plen - 2 - pad + i] ^ (uint8_t)(i + 1);
	return bad == 0 && (nh < 0 || pl[plen - 1] == nh);
}

/* Cut @len bytes off the end of @m, freeing the segments left empty of
 * packet (lib/ipsec's mbuf_cut_seg_ofs). */
static void tail_cut(struct rte_mbuf *m, uint32_t len)
{
	uint32_t keep = rte_pktmbuf_pkt_len(m) - len;
	struct rte_mbuf *seg = m;

	while (keep > seg->data_len) {
		keep -= seg->data_len;
		seg = seg->next;
	}
	seg->data_len = (uint16_t)keep;
	if (seg->next != NULL) {
		struct rte_mbuf *rest = seg->next;

		seg->next = NULL;
		for (struct rte_mbuf *x = rest; x != NULL; x = x->next)
			m->nb_segs--;
		rte_pktmbuf_free(rest);
	}
	m->pkt_len -= len;
}

/*
 * Transport mode: the IP header's protocol becomes the trailer's next
 * header, its length the packet's (lib/ipsec's update_trs_l3hdr). An IPv6
 * header with extension headers (l3_len) has its last one's next header
 * changed; if they do not add up to l3_len, nothing is.
 */
static void trs_l3(struct rte_mbuf *m, uint8_t *ip, uint8_t nh, bool v6)
{
	uint32_t l3 = rte_pktmbuf_pkt_len(m) - m->l2_len;
	uint8_t *pnh;

	if (!v6) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->next_proto_id = nh;
		h->total_length = rte_cpu_to_be_16((uint16_t)l3);
		return;
	}
	pnh = ip + 6;
	if (m->l3_len > sizeof(struct rte_ipv6_hdr)) {
		uint32_t off = sizeof(struct rte_ipv6_hdr);

		while (off < m->l3_len) {
			pnh = ip + off;
			off += ((uint32_t)ip[off + 1] + 1) * 8;
		}
		if (off != m->l3_len)
			return;
	}
	*pnh = nh;
	((struct rte_ipv6_hdr *)ip)->payload_len =
		rte_cpu_to_be_16((uint16_t)(l3 - sizeof(struct rte_ipv6_hdr)));
}

/* RFC 6040 §4.2 (ipsec(4)'s ecn knob), as lib/ipsec decapsulates: CE outside
 * marks an ECT inner packet CE (the finish drops a Not-ECT one). */
static inline void ecn_decap(struct rte_mbuf *m, uint8_t *ip, bool in6)
{
	if (dp_meta(m)->outer_ecn != ECN_CE)
		return;
	if (in6 && ((ip[1] >> 4) & 3) != 0)
		ip[1] |= ECN_CE << 4;
	else if (!in6 && (ip[1] & 3) != 0)
		ip[1] |= ECN_CE;
}

/*
 * Remove ESP from an authenticated packet with a valid trailer of @tl bytes
 * (padding, pad length, next header @nh, ICV): lib/ipsec's tun_process or
 * trs_process layout and mbuf fields.
 */
static inline void strip(const struct dp_sa *sa, struct rte_mbuf *m, uint32_t tl, uint8_t nh,
			 const bool tunnel)
{
	uint32_t hl = m->l2_len + m->l3_len;
	uint8_t *op = rte_pktmbuf_mtod(m, uint8_t *);

	tail_cut(m, tl);
	rte_pktmbuf_adj(m, (uint16_t)(tunnel ? hl + ESP_HEAD : ESP_HEAD));
	m->ol_flags &= ~RTE_MBUF_F_RX_SEC_OFFLOAD;
	if (tunnel) {
		if (sa->ecn)
			ecn_decap(m, rte_pktmbuf_mtod(m, uint8_t *), sa->inner_family == AF_INET6);
		m->packet_type = RTE_PTYPE_UNKNOWN;
		m->l2_len = 0;
		m->l3_len = 0;
		return;
	}
	memmove(op + ESP_HEAD, op, hl);
	trs_l3(m, op + ESP_HEAD + m->l2_len, nh, sa->outer_family == AF_INET6);
	m->packet_type &= RTE_PTYPE_L2_MASK | RTE_PTYPE_L3_MASK;
}

/*
 * Decrypt and check packet @m (full sequence number @seq) and strip it.
 * False if the ICV is wrong (the mbuf flagged) or the trailer invalid
 * (the mbuf's length unchanged).
 */
static inline bool open_one(IMB_MGR *mgr, const struct dp_imb_key *k, const struct dp_sa *sa,
			    struct rte_mbuf *m, uint64_t seq, int nh, const bool tunnel,
			    const bool k256)
{
	uint32_t off = m->l2_len + m->l3_len, ct;
	uint8_t *esp = rte_pktmbuf_mtod_offset(m, uint8_t *, off);
	uint8_t nonce[12], aadb[12], tag[GCM_TAG_LEN], tail[GCM_TAG_LEN + 258];
	const uint8_t *aad = gcm_aad(aadb, k, esp, seq), *pl, *icv;
	uint32_t plen;

	gcm_nonce(nonce, k, esp);
	/* esp_len_ok(): at least the trailer, whole blocks */
	ct = rte_pktmbuf_pkt_len(m) - off - ESP_HEAD - GCM_TAG_LEN;
	if (likely(m->nb_segs == 1)) {
		uint8_t *p = esp + ESP_HEAD;

		gcm_dec(mgr, k, p, ct, nonce, aad, tag, k256);
		icv = p + ct;
		plen = ct;
		pl = p;
	} else {
		/* dp_reasm linearizes what it reassembles: no packet in several
		 * segments comes here today, this keeps it correct if one does */
		if (!dp_imb_gcm_chain(mgr, k, m, off + ESP_HEAD, ct, nonce, aad, tag, false)) {
			m->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
			return false;
		}
		/* the trailer and ICV, wherever the segments end */
		plen = RTE_MIN(ct, 257u);
		pl = rte_pktmbuf_read(m, off + ESP_HEAD + ct - plen, plen + GCM_TAG_LEN, tail);
		icv = pl + plen;
	}
	if (!dp_imb_tag_equal(tag, icv)) {
		m->ol_flags |= RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED;
		return false;
	}
	if (!trailer_ok(pl, plen, ct, nh))
		return false;
	strip(sa, m, GCM_TAG_LEN + ESP_TAIL_LEN + pl[plen - 2], pl[plen - 1], tunnel);
	return true;
}

/*
 * The verdict of the window on the authenticated packets mb[0..k) (RFC 4303
 * §3.4.3): the accepted are recorded and stay first, the replays (a
 * duplicate within the burst too) go after them. With several workers, one
 * at a time (sa->lock).
 */
static inline uint16_t replay_update(struct dp_sa *sa, struct rte_mbuf **mb, const uint64_t *seq,
				     uint16_t k)
{
	struct rte_mbuf *rej[DP_MAX_BURST];
	uint16_t good = 0, nr = 0;

	if (sa->serial)
		rte_spinlock_lock(&sa->lock);
	for (uint16_t i = 0; i < k; i++) {
		if (likely(dp_replay_update(sa->replay, seq[i])))
			mb[good++] = mb[i];
		else
			rej[nr++] = mb[i];
	}
	if (sa->serial)
		rte_spinlock_unlock(&sa->lock);
	memcpy(&mb[good], rej, nr * sizeof(rej[0]));
	return good;
}

/* One sub-burst of one SA, specialised by the constant mode and key size. */
static inline void native_in(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			     struct rte_mbuf **mb, uint16_t n, const bool tunnel, const bool k256)
{
	const struct dp_imb_key *k = (const struct dp_imb_key *)sa->ss.crypto.ses;
	int nh = !tunnel ? -1 : sa->inner_family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	struct rte_mbuf *bad[DP_MAX_BURST];
	uint64_t seq[DP_MAX_BURST];
	uint16_t ok, nrep, good = 0, nb = 0;

	ok = screen(sa, mb, n, seq, &nrep);
	dp_sa_fail(w, sa, mb, ok, ok + nrep, DP_SA_CNT_drop_replay);
	dp_sa_fail(w, sa, mb, ok + nrep, n, DP_SA_CNT_drop_len);
	for (uint16_t i = 0; i < ok; i++) {
		if (likely(open_one(w->imb, k, sa, mb[i], seq[i], nh, tunnel, k256))) {
			seq[good] = seq[i];
			mb[good++] = mb[i];
		} else {
			bad[nb++] = mb[i];
		}
	}
	if (sa->replay != NULL)
		good = replay_update(sa, mb, seq, good);
	memcpy(&mb[ok - nb], bad, nb * sizeof(bad[0]));
	sa->xf->finish(w, s, sa, mb, good, ok);
}

#define NATIVE_IN_FN(name, tunnel, k256)                                                           \
	static void name(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,       \
			 struct rte_mbuf **mb, uint16_t n)                                         \
	{                                                                                          \
		native_in(w, s, sa, mb, n, tunnel, k256);                                          \
	}

NATIVE_IN_FN(native_in_tun128, true, false)
NATIVE_IN_FN(native_in_tun256, true, true)
NATIVE_IN_FN(native_in_trs128, false, false)
NATIVE_IN_FN(native_in_trs256, false, true)

dp_xform_run_t dp_esp_native_in_run(const struct dp_sa *sa)
{
	const struct dp_imb_key *k = (const struct dp_imb_key *)sa->ss.crypto.ses;

	if (sa->mode == DPS_MODE_TUNNEL)
		return k->k256 ? native_in_tun256 : native_in_tun128;
	return k->k256 ? native_in_trs256 : native_in_trs128;
}
