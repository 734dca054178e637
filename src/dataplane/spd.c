/* SPDX-License-Identifier: BSD-3-Clause */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_acl.h>
#include <rte_ip.h>

#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/spd.h"

enum { F4_PROTO, F4_SRC, F4_DST, F4_SPORT, F4_DPORT, F4_N };
enum { F6_PROTO, F6_SRC0, F6_DST0 = F6_SRC0 + 4, F6_SPORT = F6_DST0 + 4, F6_DPORT, F6_N };

RTE_ACL_RULE_DEF(acl4_rule, F4_N);
RTE_ACL_RULE_DEF(acl6_rule, F6_N);

static const struct rte_acl_field_def defs4[F4_N] = {
	{RTE_ACL_FIELD_TYPE_BITMASK, 1, F4_PROTO, 0, offsetof(struct dp_acl4_key, proto)},
	{RTE_ACL_FIELD_TYPE_MASK, 4, F4_SRC, 1, offsetof(struct dp_acl4_key, src)},
	{RTE_ACL_FIELD_TYPE_MASK, 4, F4_DST, 2, offsetof(struct dp_acl4_key, dst)},
	{RTE_ACL_FIELD_TYPE_RANGE, 2, F4_SPORT, 3, offsetof(struct dp_acl4_key, sport)},
	{RTE_ACL_FIELD_TYPE_RANGE, 2, F4_DPORT, 3, offsetof(struct dp_acl4_key, dport)},
};

static struct rte_acl_field_def defs6[F6_N];

static void defs6_init(void)
{
	defs6[F6_PROTO] = (struct rte_acl_field_def){RTE_ACL_FIELD_TYPE_BITMASK, 1, F6_PROTO, 0,
						     offsetof(struct dp_acl6_key, proto)};
	for (unsigned int i = 0; i < 4; i++) {
		defs6[F6_SRC0 + i] =
			(struct rte_acl_field_def){RTE_ACL_FIELD_TYPE_MASK, 4, F6_SRC0 + i, 1 + i,
						   offsetof(struct dp_acl6_key, src) + 4 * i};
		defs6[F6_DST0 + i] =
			(struct rte_acl_field_def){RTE_ACL_FIELD_TYPE_MASK, 4, F6_DST0 + i, 5 + i,
						   offsetof(struct dp_acl6_key, dst) + 4 * i};
	}
	defs6[F6_SPORT] = (struct rte_acl_field_def){RTE_ACL_FIELD_TYPE_RANGE, 2, F6_SPORT, 9,
						     offsetof(struct dp_acl6_key, sport)};
	defs6[F6_DPORT] = (struct rte_acl_field_def){RTE_ACL_FIELD_TYPE_RANGE, 2, F6_DPORT, 9,
						     offsetof(struct dp_acl6_key, dport)};
}

static void rule_common(struct rte_acl_field *f, const struct dps_selector *s, int fproto,
			int fsport, int fdport)
{
	f[fproto].value.u8 = s->proto == 255 ? 0 : s->proto;
	f[fproto].mask_range.u8 = s->proto == 255 ? 0 : 0xff;
	f[fsport].value.u16 = s->sport_lo;
	f[fsport].mask_range.u16 = s->sport_hi;
	f[fdport].value.u16 = s->dport_lo;
	f[fdport].mask_range.u16 = s->dport_hi;
}

static void rule4(struct acl4_rule *r, const struct dps_selector *s)
{
	rule_common(r->field, s, F4_PROTO, F4_SPORT, F4_DPORT);
	r->field[F4_SRC].value.u32 = rte_be_to_cpu_32(s->src.addr.v4.s_addr);
	r->field[F4_SRC].mask_range.u32 = s->src.len;
	r->field[F4_DST].value.u32 = rte_be_to_cpu_32(s->dst.addr.v4.s_addr);
	r->field[F4_DST].mask_range.u32 = s->dst.len;
}

static void prefix6(struct rte_acl_field *f, const struct dps_prefix *p)
{
	for (unsigned int i = 0; i < 4; i++) {
		uint32_t w;
		int bits = (int)p->len - 32 * (int)i;

		memcpy(&w, &p->addr.v6.s6_addr[4 * i], 4);
		f[i].value.u32 = rte_be_to_cpu_32(w);
		f[i].mask_range.u32 = bits <= 0 ? 0 : bits >= 32 ? 32 : (uint32_t)bits;
	}
}

static void rule6(struct acl6_rule *r, const struct dps_selector *s)
{
	rule_common(r->field, s, F6_PROTO, F6_SPORT, F6_DPORT);
	prefix6(&r->field[F6_SRC0], &s->src);
	prefix6(&r->field[F6_DST0], &s->dst);
}

/* Which compiled contexts a policy goes into. */
static bool in_ctx(const struct dps_policy *p, enum dp_spd_ctx c)
{
	switch (c) {
	case DP_SPD_OUT:
		return p->dir == DPS_DIR_OUT;
	case DP_SPD_IN:
		return p->dir == DPS_DIR_IN;
	default:
		return p->dir == DPS_DIR_FWD || p->dir == DPS_DIR_IN;
	}
}

static struct rte_acl_ctx *ctx_build(const struct dp_spd_entry *e, unsigned int n, int v6,
				     enum dp_spd_ctx c, uint64_t gen)
{
	char name[RTE_ACL_NAMESIZE];
	unsigned int nf = v6 ? F6_N : F4_N, count = 0;
	struct rte_acl_param prm = {
		.name = name,
		.socket_id = SOCKET_ID_ANY,
		.rule_size = RTE_ACL_RULE_SZ(nf),
		.max_rule_num = n,
	};
	struct rte_acl_config cfg = {.num_categories = 1, .num_fields = nf};
	struct rte_acl_ctx *ctx;
	union {
		struct acl4_rule r4;
		struct acl6_rule r6;
	} r;

	snprintf(name, sizeof(name), "dps_spd%d%d_%" PRIu64, v6, (int)c, gen);
	ctx = rte_acl_create(&prm);
	if (ctx == NULL)
		return NULL;
	for (unsigned int i = 0; i < n; i++) {
		const struct dps_policy *p = e[i].p;
		/* fwd policies take precedence over in policies in the fwd context */
		uint32_t rank = i + (c == DP_SPD_FWD && p->dir == DPS_DIR_IN ? n : 0);

		if (!in_ctx(p, c) || (p->sel.src.addr.family == AF_INET6) != v6)
			continue;
		memset(&r, 0, sizeof(r));
		if (v6)
			rule6(&r.r6, &p->sel);
		else
			rule4(&r.r4, &p->sel);
		r.r4.data.category_mask = 1;
		r.r4.data.priority = RTE_ACL_MAX_PRIORITY - 1 - (int32_t)rank;
		r.r4.data.userdata = i + 1;
		if (rte_acl_add_rules(ctx, (struct rte_acl_rule *)&r, 1) != 0)
			goto fail;
		count++;
	}
	if (count == 0) {
		rte_acl_free(ctx);
		return NULL;
	}
	memcpy(cfg.defs, v6 ? defs6 : defs4, nf * sizeof(cfg.defs[0]));
	if (rte_acl_build(ctx, &cfg) != 0)
		goto fail;
	return ctx;
fail:
	rte_acl_free(ctx);
	return (struct rte_acl_ctx *)-1;
}

/* The request the dataplane applies: ESP, else AH (RFC 4302). IPComp and
 * bundles are not run on the dataplane yet: another required request makes
 * the policy unsatisfiable. */
static const struct dps_ipsec_req *esp_request(const struct dps_policy *p,
					       const struct dps_ipsec_defaults *d, bool *missing)
{
	const struct dps_ipsec_req *esp = NULL;

	*missing = false;
	for (unsigned int i = 0; i < p->n_reqs; i++)
		if (p->reqs[i].proto == DPS_PROTO_ESP ||
		    (p->reqs[i].proto == DPS_PROTO_AH && esp == NULL))
			esp = &p->reqs[i];
	for (unsigned int i = 0; i < p->n_reqs; i++)
		if (&p->reqs[i] != esp && dp_level_of(d, &p->reqs[i]) != DPS_LEVEL_USE)
			*missing = true;
	return esp;
}

static void policy_resolve(struct dp_policy *dp, const struct dp_spd_entry *e,
			   const struct dps_ipsec_defaults *d)
{
	const struct dps_policy *p = e->p;
	const struct dps_ipsec_req *req;
	bool missing;

	dp->id = p->id;
	dp->dir = p->dir;
	dp->hits = e->hits;
	if (p->action != DPS_ACTION_PROTECT) {
		dp->verdict =
			dp_verdict_resolve(p->dir, p->action, DPS_LEVEL_DEFAULT, false, false);
		return;
	}
	req = esp_request(p, d, &missing);
	if (req != NULL)
		dp->req = *req;
	dp->sa = missing || p->dir != DPS_DIR_OUT ? NULL : e->out_sa;
	dp->verdict = dp_verdict_resolve(p->dir, p->action,
					 req != NULL ? dp_level_of(d, req) : DPS_LEVEL_DEFAULT,
					 missing, dp->sa != NULL);
}

static struct dp_acl_set *acl_set_build(const struct dp_spd_entry *e, unsigned int n, uint64_t gen)
{
	struct dp_acl_set *set = calloc(1, sizeof(*set));

	if (set == NULL)
		return NULL;
	set->refs = 1;
	for (int v6 = 0; v6 < 2; v6++) {
		for (int c = 0; c < DP_SPD_NCTX; c++) {
			set->acl[v6][c] = ctx_build(e, n, v6, c, gen);
			if (set->acl[v6][c] == (struct rte_acl_ctx *)-1) {
				set->acl[v6][c] = NULL;
				DP_LOG(ERR, "cannot compile the SPD");
				dp_acl_set_put(set);
				return NULL;
			}
		}
	}
	return set;
}

void dp_acl_set_put(struct dp_acl_set *set)
{
	if (set == NULL || --set->refs > 0)
		return;
	for (int v6 = 0; v6 < 2; v6++)
		for (int c = 0; c < DP_SPD_NCTX; c++)
			rte_acl_free(set->acl[v6][c]);
	free(set);
}

struct dp_spd *dp_spd_build(const struct dp_spd_entry *e, unsigned int n,
			    const struct dps_ipsec_defaults *def, uint64_t gen,
			    const struct dp_spd *same_rules)
{
	struct dp_spd *spd = calloc(1, sizeof(*spd));

	if (spd == NULL || (n && (spd->pol = calloc(n, sizeof(*spd->pol))) == NULL))
		goto fail;
	if (defs6[F6_SRC0].size == 0)
		defs6_init();
	spd->gen = gen;
	spd->n_pol = n;
	spd->def_verdict[0] = def->def_policy4 == DPS_ACTION_DISCARD ? DP_V_DISCARD : DP_V_BYPASS;
	spd->def_verdict[1] = def->def_policy6 == DPS_ACTION_DISCARD ? DP_V_DISCARD : DP_V_BYPASS;
	for (unsigned int i = 0; i < n; i++)
		policy_resolve(&spd->pol[i], &e[i], def);
	if (same_rules != NULL && same_rules->set != NULL && same_rules->n_pol == n) {
		spd->set = same_rules->set;
		spd->set->refs++;
	} else {
		spd->set = acl_set_build(e, n, gen);
		if (spd->set == NULL)
			goto fail;
	}
	memcpy(spd->acl, spd->set->acl, sizeof(spd->acl));
	return spd;
fail:
	dp_spd_free(spd);
	return NULL;
}

void dp_spd_free(struct dp_spd *spd)
{
	if (spd == NULL)
		return;
	dp_acl_set_put(spd->set);
	free(spd->pol);
	free(spd);
}

static inline void l4_ports(uint8_t proto, const uint8_t *l4, uint32_t avail, uint16_t *sport,
			    uint16_t *dport)
{
	*sport = 0;
	*dport = 0;
	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) && avail >= 4) {
		memcpy(sport, l4, 2);
		memcpy(dport, l4 + 2, 2);
	} else if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) && avail >= 2) {
		/* PF_KEY convention: ICMP type in the source port, code in the destination. */
		*sport = rte_cpu_to_be_16(l4[0]);
		*dport = rte_cpu_to_be_16(l4[1]);
	}
}

void dp_spd_key4(struct dp_acl4_key *k, const struct rte_ipv4_hdr *ip, uint32_t l3_len)
{
	uint32_t hl = rte_ipv4_hdr_len(ip);
	bool first_frag = (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) == 0;

	k->proto = ip->next_proto_id;
	k->src = ip->src_addr;
	k->dst = ip->dst_addr;
	l4_ports(k->proto, (const uint8_t *)ip + hl, first_frag ? l3_len - hl : 0, &k->sport,
		 &k->dport);
}

void dp_spd_key6(struct dp_acl6_key *k, const struct rte_ipv6_hdr *ip6, uint32_t l3_len)
{
	k->proto = ip6->proto;
	memcpy(k->src, ip6->src_addr, 16);
	memcpy(k->dst, ip6->dst_addr, 16);
	l4_ports(k->proto, (const uint8_t *)(ip6 + 1), l3_len - sizeof(*ip6), &k->sport, &k->dport);
}

void dp_spd_lookup(const struct dp_spd *spd, int v6, enum dp_spd_ctx ctx, const uint8_t **keys,
		   const struct dp_policy **res, uint16_t n)
{
	const struct rte_acl_ctx *acl = spd->acl[v6][ctx];
	uint32_t r[DP_MAX_BURST];

	if (acl == NULL) {
		for (uint16_t i = 0; i < n; i++)
			res[i] = NULL;
		return;
	}
	rte_acl_classify(acl, keys, r, n, 1);
	for (uint16_t i = 0; i < n; i++)
		res[i] = r[i] ? &spd->pol[r[i] - 1] : NULL;
}

static bool addr_eq(const struct dps_addr *a, const struct dps_addr *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? a->v4.s_addr == b->v4.s_addr
				    : memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
}

int dp_policy_accepts(const struct dp_policy *p, const struct dp_sa *sa)
{
	const struct dps_ipsec_req *r = &p->req;

	if (r->proto != sa->cfg.proto || r->mode != sa->cfg.mode)
		return 0;
	if (r->reqid)
		return r->reqid == sa->cfg.reqid;
	if (r->mode == DPS_MODE_TUNNEL)
		return addr_eq(&r->tun_src, &sa->cfg.src) && addr_eq(&r->tun_dst, &sa->cfg.dst);
	return 1;
}
