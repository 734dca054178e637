/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The policy stage: the SPD lookups of a sub-burst and what their verdicts
 * mean (verdict.h). The classifiers run on a whole sub-burst at once
 * (rte_acl); protected packets are grouped per SA for the transforms.
 */
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/capture.h"
#include "dataplane/policy.h"
#include "dataplane/polog.h"
#include "dataplane/sa.h"
#include "dataplane/spd.h"
#include "dataplane/worker.h"

#define IKE_PORT      500
#define IKE_NATT_PORT 4500

static inline uint8_t verdict_of(const struct dp_spd *spd, const struct dp_policy *p, int v6,
				 unsigned int wid)
{
	if (p == NULL)
		return spd->def_verdict[v6];
	p->hits[wid].n++;
	return p->verdict;
}

/* Solaris' *_accept_clear: ICMP, IGMP or PIM in clear through a require
 * policy (the first next header of IPv6, as the SPD key takes it). */
static bool accept_clear(uint8_t bits, struct rte_mbuf *m, int v6)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
	uint8_t proto = v6 ? ip[6] : ip[9];

	return ((bits & DP_CLEAR_ICMP) && proto == (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)) ||
	       ((bits & DP_CLEAR_IGMP) && !v6 && proto == IPPROTO_IGMP) ||
	       ((bits & DP_CLEAR_PIM) && proto == IPPROTO_PIM);
}

/* The SAs that decrypted @m, outermost first, are what the bundle policy @p
 * (or a packet of several layers) asks for. */
static bool via_accepted(const struct dp_policy *p, struct rte_mbuf *m)
{
	const struct dp_meta *mt = dp_meta(m);
	struct dp_sa *via[DP_VIA_MAX];

	if (mt->n_via == 0 || mt->n_via > DP_VIA_MAX)
		return false;
	for (unsigned int i = 0; i + 1 < mt->n_via; i++)
		via[i] = mt->via_prev[i];
	via[mt->n_via - 1] = mt->via;
	return dp_policy_accepts_chain(p, via, mt->n_via);
}

/* The acceptance of the last (policy, SA) pair of a decrypted sub-burst,
 * mostly one SA's packets under one policy: policies and the SA fields the
 * check reads never change under a worker. */
struct accept_memo {
	const struct dp_policy *p;
	const struct dp_sa *sa;
	bool ok;
};

/* The SAs that decrypted @m are what @p asks for, the common single SA
 * under a one-request policy answered from @mm when it is the last pair. */
static inline bool accepted(struct accept_memo *mm, const struct dp_policy *p, struct rte_mbuf *m)
{
	const struct dp_meta *mt = dp_meta(m);

	if (likely(mt->n_via == 1 && p->n_bundle == 0)) {
		if (p != mm->p || mt->via != mm->sa) {
			mm->p = p;
			mm->sa = mt->via;
			mm->ok = dp_policy_accepts(p, mt->via);
		}
		return mm->ok;
	}
	return via_accepted(p, m);
}

/* RFC 4301 §5.2 for one packet; false when it was dropped. */
static __rte_always_inline bool inbound_ok(struct dp_worker *w, const struct dp_spd *spd,
					   uint16_t in, struct rte_mbuf *m,
					   const struct dp_policy *p, int v6, bool decrypted,
					   struct accept_memo *mm)
{
	uint8_t v = verdict_of(spd, p, v6, w->id);
	struct dp_sa *via = decrypted ? dp_meta(m)->via : NULL;

	switch (dp_inbound_check(v, decrypted, via != NULL && p != NULL && accepted(mm, p, m))) {
	case DP_IN_PASS:
		return true;
	case DP_IN_DROP_SA_POLICY:
		dp_polog(w, in, m, DP_POLOG_sa_policy, p, via);
		dp_sa_count(via, w->id, DP_SA_CNT_drop_policy, 1);
		rte_pktmbuf_free(m);
		return false;
	case DP_IN_DROP_POLICY:
		dp_polog(w, in, m, DP_POLOG_discard, p, NULL);
		dp_drop(w, in, m, DP_CNT_drop_policy);
		return false;
	default:
		if (unlikely(spd->accept_clear) && accept_clear(spd->accept_clear, m, v6))
			return true;
		dp_polog(w, in, m, DP_POLOG_plaintext, p, NULL);
		dp_drop(w, in, m, DP_CNT_drop_plaintext);
		return false;
	}
}

static inline void to_burst(struct dp_burst *b, struct rte_mbuf *m, const struct dp_nexthop *nh,
			    const uint8_t *key)
{
	b->m[b->n] = m;
	b->nh[b->n] = nh;
	b->key[b->n++] = key;
}

/* The inbound check of the sub-bursts for the gateway and to be forwarded;
 * specialised for received and decrypted sub-bursts. */
static __rte_always_inline void policy_in(struct dp_worker *w, const struct dp_spd *spd,
					  uint16_t in, int v6, const bool decrypted)
{
	struct dp_stages *st = &w->st;
	/* the capture's in-clear point: decrypted packets that passed */
	const bool cap = decrypted && w->cap != NULL;
	struct accept_memo mm = {NULL, NULL, false};
	bool both;

	/* the input stage made their keys (fwd.c: sort_out) */
	dp_spd_lookup(spd, v6, DP_SPD_IN, st->local.key, st->pol, st->local.n);
	for (uint16_t i = 0; i < st->local.n; i++)
		if (inbound_ok(w, spd, in, st->local.m[i], st->pol[i], v6, decrypted, &mm)) {
			if (unlikely(cap))
				dp_cap_pkt(w, DP_CAP_IN_CLEAR, st->local.m[i], in, st->pol[i],
					   dp_meta(st->local.m[i])->via, 0);
			dp_punt(w, in, st->local.m[i]);
		}
	/* What passes is classified against the out SPD next: when one trie
	 * holds both contexts, both answers from one walk, the out one kept
	 * for dp_policy_out() */
	both = dp_spd_one_walk(spd, v6);
	if (both)
		dp_spd_lookup_fwd_out(spd, v6, st->fwd.key, st->pol, st->fwd_out, st->fwd.n);
	else
		dp_spd_lookup(spd, v6, DP_SPD_FWD, st->fwd.key, st->pol, st->fwd.n);
	for (uint16_t i = 0; i < st->fwd.n; i++)
		if (inbound_ok(w, spd, in, st->fwd.m[i], st->pol[i], v6, decrypted, &mm)) {
			if (unlikely(cap))
				dp_cap_pkt(w, DP_CAP_IN_CLEAR, st->fwd.m[i], in, st->pol[i],
					   dp_meta(st->fwd.m[i])->via, 0);
			if (both && st->out_pre == st->out.n)
				st->out_pol[st->out_pre++] = st->fwd_out[i];
			to_burst(&st->out, st->fwd.m[i], st->fwd.nh[i], st->fwd.key[i]);
		}
	st->local.n = st->fwd.n = 0;
}

void dp_policy_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
		  bool decrypted)
{
	struct dp_stages *st = &w->st;

	if (!s->ipsec->active) {
		for (uint16_t i = 0; i < st->local.n; i++)
			dp_punt(w, in, st->local.m[i]);
		for (uint16_t i = 0; i < st->fwd.n; i++)
			to_burst(&st->clear, st->fwd.m[i], st->fwd.nh[i], NULL);
		st->local.n = st->fwd.n = 0;
		return;
	}
	if (decrypted)
		policy_in(w, s->ipsec->spd, in, v6, true);
	else
		policy_in(w, s->ipsec->spd, in, v6, false);
}

/*
 * Append @m to @sa's group of the burst. The worker's slot in the SA's
 * counters remembers which group that is (stamped with the burst's @gen), so
 * a burst spread over many SAs costs no search; a stale stamp is caught by
 * checking the group really holds @sa.
 */
static inline void protect(struct dp_stages *st, unsigned int wid, struct dp_sa *sa,
			   struct rte_mbuf *m)
{
	struct dp_sa_counters *c = &sa->cnt[wid];
	struct dp_sa_group *g = st->grp;
	uint16_t i = c->grp;

	if (c->grp_gen != st->gen || i >= st->n_grp || g[i].sa != sa) {
		i = st->n_grp++;
		g[i].sa = sa;
		g[i].n = 0;
		c->grp_gen = st->gen;
		c->grp = i;
	}
	g[i].m[g[i].n++] = m;
}

/*
 * With thousands of SAs in use, a packet's policy, SA, counters, lib/ipsec
 * SA and crypto session are all likely cold, and each is found through the
 * previous one. Missing on them one packet at a time costs a chain of memory
 * latencies per packet; asking for a whole burst's lines one stage at a time
 * overlaps them (the transforms prefetch the last two, xform.c).
 */
static void prefetch_policies(const struct dp_policy **pol, uint16_t n, unsigned int wid)
{
	const struct dp_policy *p;

	/* A policy already asked for by the previous packet is skipped: the
	 * common burst of one flow costs a compare per packet and stage. The
	 * SA's counters sit at a fixed place after it: asked for with it, not
	 * one more dependent load later. */
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
			rte_prefetch0(dp_sa_cnt(p->sa, wid));
		}
	}
}

void dp_policy_out(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
		   bool routed)
{
	struct dp_stages *st = &w->st;
	struct dp_burst *b = &st->out;
	const struct dp_spd *spd = s->ipsec->spd;
	const struct dp_policy **pol = st->pol;

	if (b->n == 0)
		return;
	if (st->out_pre == b->n) /* all classified with the fwd SPD */
		pol = st->out_pol;
	else
		dp_spd_lookup(spd, v6, DP_SPD_OUT, b->key, pol, b->n);
	st->out_pre = 0;
	prefetch_policies(pol, b->n, w->id);
	if (unlikely(w->cap != NULL)) /* the capture's out-clear point */
		for (uint16_t i = 0; i < b->n; i++)
			if (pol[i] != NULL && pol[i]->verdict == DP_V_PROTECT)
				dp_cap_pkt(w, DP_CAP_OUT_CLEAR, b->m[i], in, pol[i], pol[i]->sa, 0);
	st->gen++;
	for (uint16_t i = 0; i < b->n; i++) {
		struct rte_mbuf *m = b->m[i];

		switch (verdict_of(spd, pol[i], v6, w->id)) {
		case DP_V_BYPASS:
			to_burst(&st->clear, m, routed ? b->nh[i] : NULL, NULL);
			break;
		case DP_V_PROTECT:
			protect(st, w->id, pol[i]->sa, m);
			break;
		case DP_V_NO_SA:
			pol[i]->hits[w->id].no_sa++; /* seen by the PF_KEY server: ACQUIRE */
			dp_polog(w, in, m, DP_POLOG_no_sa, pol[i], NULL);
			dp_drop(w, in, m, DP_CNT_drop_no_sa);
			break;
		default:
			dp_polog(w, in, m, DP_POLOG_discard, pol[i], NULL);
			dp_drop(w, in, m, DP_CNT_drop_policy);
		}
	}
	b->n = 0;
}

/* The gateway's own IKE traffic always bypasses the SPD, as charon's
 * per-socket bypass policies make it do in a kernel. */
static inline bool is_ike(const union dp_acl_key *k, int v6)
{
	uint8_t proto = v6 ? k->k6.proto : k->k4.proto;
	uint16_t sp = v6 ? k->k6.sport : k->k4.sport, dp_ = v6 ? k->k6.dport : k->k4.dport;

	return proto == IPPROTO_UDP &&
	       (sp == RTE_BE16(IKE_PORT) || sp == RTE_BE16(IKE_NATT_PORT) ||
		dp_ == RTE_BE16(IKE_PORT) || dp_ == RTE_BE16(IKE_NATT_PORT));
}

void dp_policy_kernel(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port, int v6,
		      struct rte_mbuf **pkts, uint16_t n)
{
	struct dp_stages *st = &w->st;

	for (uint16_t i = 0; i < n; i++) {
		dp_spd_key(pkts[i], v6, &st->keys[i]);
		if (is_ike(&st->keys[i], v6))
			to_burst(&st->clear, pkts[i], NULL, NULL);
		else
			to_burst(&st->out, pkts[i], NULL, (const uint8_t *)&st->keys[i]);
	}
	dp_policy_out(w, s, port, v6, false);
}
