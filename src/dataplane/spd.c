/* SPDX-License-Identifier: BSD-3-Clause */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static pthread_once_t defs6_once = PTHREAD_ONCE_INIT;

static void prefix_bytes(uint8_t *out, uint8_t *len_out, const struct dps_prefix *p, int v6)
{
	unsigned int nb = v6 ? 16 : 4, len = p->len;

	memcpy(out, v6 ? (const void *)&p->addr.v6 : (const void *)&p->addr.v4, nb);
	for (unsigned int i = 0; i < nb; i++) {
		int bits = (int)len - 8 * (int)i;

		out[i] &= bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
	}
	*len_out = (uint8_t)len;
}

void dp_rule_make(struct dp_rule *r, const struct dps_policy *p, uint64_t seq, uint32_t slot)
{
	const struct dps_selector *s = &p->sel;

	memset(r, 0, sizeof(*r));
	r->slot = slot;
	r->prio = p->priority;
	r->seq = seq;
	r->dir = p->dir;
	r->v6 = s->src.addr.family == AF_INET6;
	r->proto = s->proto == 255 ? 0 : s->proto;
	r->sport_lo = s->sport_lo;
	r->sport_hi = s->sport_hi;
	r->dport_lo = s->dport_lo;
	r->dport_hi = s->dport_hi;
	prefix_bytes(r->src, &r->src_len, &s->src, r->v6);
	prefix_bytes(r->dst, &r->dst_len, &s->dst, r->v6);
}

static void rule_common(struct rte_acl_field *f, const struct dp_rule *s, int fproto, int fsport,
			int fdport)
{
	f[fproto].value.u8 = s->proto;
	f[fproto].mask_range.u8 = s->proto == 0 ? 0 : 0xff;
	f[fsport].value.u16 = s->sport_lo;
	f[fsport].mask_range.u16 = s->sport_hi;
	f[fdport].value.u16 = s->dport_lo;
	f[fdport].mask_range.u16 = s->dport_hi;
}

static uint32_t word(const uint8_t *b)
{
	uint32_t w;

	memcpy(&w, b, 4);
	return rte_be_to_cpu_32(w);
}

static void rule4(struct acl4_rule *r, const struct dp_rule *s)
{
	rule_common(r->field, s, F4_PROTO, F4_SPORT, F4_DPORT);
	r->field[F4_SRC].value.u32 = word(s->src);
	r->field[F4_SRC].mask_range.u32 = s->src_len;
	r->field[F4_DST].value.u32 = word(s->dst);
	r->field[F4_DST].mask_range.u32 = s->dst_len;
}

static void prefix6(struct rte_acl_field *f, const uint8_t *a, unsigned int len)
{
	for (unsigned int i = 0; i < 4; i++) {
		int bits = (int)len - 32 * (int)i;

		f[i].value.u32 = word(&a[4 * i]);
		f[i].mask_range.u32 = bits <= 0 ? 0 : bits >= 32 ? 32 : (uint32_t)bits;
	}
}

static void rule6(struct acl6_rule *r, const struct dp_rule *s)
{
	rule_common(r->field, s, F6_PROTO, F6_SPORT, F6_DPORT);
	prefix6(&r->field[F6_SRC0], s->src, s->src_len);
	prefix6(&r->field[F6_DST0], s->dst, s->dst_len);
}

bool dp_rule_in_ctx(const struct dp_rule *r, enum dp_spd_ctx c)
{
	switch (c) {
	case DP_SPD_OUT:
		return r->dir == DPS_DIR_OUT;
	case DP_SPD_IN:
		return r->dir == DPS_DIR_IN;
	default:
		return r->dir == DPS_DIR_FWD || r->dir == DPS_DIR_IN;
	}
}

static inline bool pfx_match(const uint8_t *a, const uint8_t *net, unsigned int len)
{
	unsigned int full = len / 8, rem = len % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	return rem == 0 || ((a[full] ^ net[full]) & (uint8_t)(0xff << (8 - rem))) == 0;
}

bool dp_rule_match(const struct dp_rule *r, const uint8_t *key)
{
	const uint8_t *src, *dst;
	uint16_t sp, dpt;

	if (r->proto != 0 && key[0] != r->proto)
		return false;
	if (r->v6) {
		const struct dp_acl6_key *k = (const void *)key;

		src = k->src;
		dst = k->dst;
		sp = rte_be_to_cpu_16(k->sport);
		dpt = rte_be_to_cpu_16(k->dport);
	} else {
		const struct dp_acl4_key *k = (const void *)key;

		src = (const uint8_t *)&k->src;
		dst = (const uint8_t *)&k->dst;
		sp = rte_be_to_cpu_16(k->sport);
		dpt = rte_be_to_cpu_16(k->dport);
	}
	return sp >= r->sport_lo && sp <= r->sport_hi && dpt >= r->dport_lo && dpt <= r->dport_hi &&
	       pfx_match(src, r->src, r->src_len) && pfx_match(dst, r->dst, r->dst_len);
}

/* Rank of a rule in context @c: fwd policies before in policies in the fwd
 * context, then priority, then age. */
static inline bool rule_before(const struct dp_rule *a, const struct dp_rule *b, enum dp_spd_ctx c)
{
	if (c == DP_SPD_FWD && a->dir != b->dir && (a->dir == DPS_DIR_IN || b->dir == DPS_DIR_IN))
		return b->dir == DPS_DIR_IN;
	if (a->prio != b->prio)
		return a->prio < b->prio;
	return a->seq < b->seq;
}

/* The SPD context of rule @r in classifier @a, or DP_SPD_NCTX if none. */
static enum dp_spd_ctx acl_ctx_of(const struct dp_rule *r, enum dp_acl_ctx a)
{
	if (a == DP_ACL_IN)
		return r->dir == DPS_DIR_IN ? DP_SPD_IN : DP_SPD_NCTX;
	return r->dir == DPS_DIR_OUT ? DP_SPD_OUT : DP_SPD_FWD; /* fwd and in policies */
}

/* The contexts (DP_ACL_FO_*) of the rules of family @v6 in the fwd-out trie. */
static uint8_t fo_of(const struct dp_rule *rules, unsigned int n, int v6)
{
	uint8_t fo = 0;

	for (unsigned int i = 0; i < n; i++)
		if (rules[i].v6 == v6)
			fo |= acl_ctx_of(&rules[i], DP_ACL_FWD_OUT) == DP_SPD_OUT ? DP_ACL_FO_OUT
										  : DP_ACL_FO_FWD;
	return fo;
}

/* The category of context @c in a fwd-out trie of contexts @fo (rte_acl's
 * result @stride apart per packet, from the first one). */
static inline unsigned int fo_cat(uint8_t fo, enum dp_spd_ctx c)
{
	return fo == (DP_ACL_FO_FWD | DP_ACL_FO_OUT) && c == DP_SPD_OUT ? 1 : 0;
}

static struct rte_acl_ctx *ctx_build(const struct dp_rule *rules, unsigned int n, int v6,
				     enum dp_acl_ctx a, uint8_t fo, unsigned int gen)
{
	char name[RTE_ACL_NAMESIZE];
	unsigned int nf = v6 ? F6_N : F4_N, count = 0;
	struct rte_acl_param prm = {
		.name = name,
		.socket_id = SOCKET_ID_ANY,
		.rule_size = RTE_ACL_RULE_SZ(nf),
	};
	struct rte_acl_config cfg = {
		.num_categories = fo == (DP_ACL_FO_FWD | DP_ACL_FO_OUT) ? DP_ACL_CATS : 1,
		.num_fields = nf,
	};
	struct rte_acl_ctx *ctx;
	union {
		struct acl4_rule r4;
		struct acl6_rule r6;
	} r;

	for (unsigned int i = 0; i < n; i++)
		count += acl_ctx_of(&rules[i], a) != DP_SPD_NCTX && rules[i].v6 == v6;
	if (count == 0)
		return NULL;
	/* the context keeps room for this many rules as long as it lives */
	prm.max_rule_num = count;
	snprintf(name, sizeof(name), "dps_spd%d%d_%u", v6, (int)a, gen);
	ctx = rte_acl_create(&prm);
	if (ctx == NULL)
		return (struct rte_acl_ctx *)-1;
	for (unsigned int i = 0; i < n; i++) {
		const struct dp_rule *p = &rules[i];
		enum dp_spd_ctx c = acl_ctx_of(p, a);
		/* fwd policies take precedence over in policies in the fwd
		 * context; a rule is of one category, ranked among its own */
		uint32_t rank = i + (c == DP_SPD_FWD && p->dir == DPS_DIR_IN ? n : 0);

		if (c == DP_SPD_NCTX || p->v6 != v6)
			continue;
		memset(&r, 0, sizeof(r));
		if (v6)
			rule6(&r.r6, p);
		else
			rule4(&r.r4, p);
		r.r4.data.category_mask = 1u << fo_cat(fo, c);
		r.r4.data.priority = RTE_ACL_MAX_PRIORITY - 1 - (int32_t)rank;
		r.r4.data.userdata = p->slot + 1;
		if (rte_acl_add_rules(ctx, (struct rte_acl_rule *)&r, 1) != 0)
			goto fail;
	}
	memcpy(cfg.defs, v6 ? defs6 : defs4, nf * sizeof(cfg.defs[0]));
	if (rte_acl_build(ctx, &cfg) != 0)
		goto fail;
	return ctx;
fail:
	rte_acl_free(ctx);
	return (struct rte_acl_ctx *)-1;
}

/* The request of a policy of one request (a bundle's are all applied), or,
 * of a bundle, the one whose level decides (ESP, else AH). */
static const struct dps_ipsec_req *esp_request(const struct dps_policy *p,
					       const struct dps_ipsec_defaults *d, bool *missing)
{
	const struct dps_ipsec_req *esp = NULL;

	*missing = false;
	if (p->n_reqs == 1 && p->reqs[0].proto == DPS_PROTO_IPCOMP)
		return &p->reqs[0];
	for (unsigned int i = 0; i < p->n_reqs; i++)
		if (p->reqs[i].proto == DPS_PROTO_ESP ||
		    (p->reqs[i].proto == DPS_PROTO_AH && esp == NULL))
			esp = &p->reqs[i];
	for (unsigned int i = 0; i < p->n_reqs; i++)
		if (&p->reqs[i] != esp && dp_level_of(d, &p->reqs[i]) != DPS_LEVEL_USE)
			*missing = true;
	return esp;
}

size_t dp_policy_size(const struct dps_policy *p)
{
	size_t n = p->action == DPS_ACTION_PROTECT && p->n_reqs > 1 ? p->n_reqs : 0;

	return offsetof(struct dp_policy, bundle) + n * sizeof(p->reqs[0]);
}

void dp_policy_resolve(struct dp_policy *dp, const struct dps_policy *p, struct dp_sa *out_sa,
		       struct dp_hits *hits, const struct dps_ipsec_defaults *d)
{
	const struct dps_ipsec_req *req;
	bool missing;

	memset(dp, 0, dp_policy_size(p));
	dp->id = p->id;
	dp->dir = p->dir;
	dp->hits = hits;
	if (p->action != DPS_ACTION_PROTECT) {
		dp->verdict =
			dp_verdict_resolve(p->dir, p->action, DPS_LEVEL_DEFAULT, false, false);
		return;
	}
	req = esp_request(p, d, &missing);
	if (req != NULL)
		dp->req = *req;
	if (p->n_reqs > 1) {
		/* A bundle: every layer or none. Traffic may pass in clear only
		 * when every request's level is use. */
		bool use = true;

		dp->n_bundle = (uint8_t)p->n_reqs;
		memcpy(dp->bundle, p->reqs, p->n_reqs * sizeof(p->reqs[0]));
		for (unsigned int i = 0; i < p->n_reqs; i++)
			use &= dp_level_of(d, &p->reqs[i]) == DPS_LEVEL_USE;
		dp->sa = p->dir != DPS_DIR_OUT ? NULL : out_sa;
		dp->verdict = dp_verdict_resolve(p->dir, p->action,
						 use ? DPS_LEVEL_USE : DPS_LEVEL_REQUIRE, false,
						 dp->sa != NULL);
		return;
	}
	dp->sa = missing || p->dir != DPS_DIR_OUT ? NULL : out_sa;
	dp->verdict = dp_verdict_resolve(p->dir, p->action,
					 req != NULL ? dp_level_of(d, req) : DPS_LEVEL_DEFAULT,
					 missing, dp->sa != NULL);
}

static int rule_cmp(const void *a, const void *b)
{
	const struct dp_rule *x = a, *y = b;

	if (x->prio != y->prio)
		return x->prio < y->prio ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct dp_acl_set *dp_acl_set_build(struct dp_rule *rules, unsigned int n, uint32_t *perm)
{
	static unsigned int gen;
	struct dp_acl_set *set = calloc(1, sizeof(*set));
	unsigned int g = __atomic_add_fetch(&gen, 1, __ATOMIC_RELAXED);

	pthread_once(&defs6_once, defs6_init);
	if (set == NULL) {
		free(rules);
		return NULL;
	}
	set->refs = 1;
	set->n = n;
	set->rules = rules;
	qsort(rules, n, sizeof(*rules), rule_cmp);
	for (unsigned int i = 0; i < n; i++) {
		if (perm != NULL)
			perm[rules[i].slot] = i;
		rules[i].slot = i;
	}
	for (int v6 = 0; v6 < 2; v6++) {
		set->fo[v6] = fo_of(rules, n, v6);
		for (int c = 0; c < DP_ACL_NCTX; c++) {
			set->acl[v6][c] =
				ctx_build(rules, n, v6, c, c == DP_ACL_IN ? 0 : set->fo[v6], g);
			if (set->acl[v6][c] == (struct rte_acl_ctx *)-1) {
				set->acl[v6][c] = NULL;
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
		for (int c = 0; c < DP_ACL_NCTX; c++)
			rte_acl_free(set->acl[v6][c]);
	free(set->rules);
	free(set);
}

void dp_spd_free(struct dp_spd *spd)
{
	if (spd == NULL)
		return;
	dp_acl_set_put(spd->set);
	free(spd);
}

/* The best live main rule for @key when the classifier's answer was deleted:
 * the rules are in rank order, so the first live match (fwd policies first
 * in the fwd context). Only until the next build drops the deleted ones. */
static const struct dp_rule *main_scan(const struct dp_spd *spd, int v6, enum dp_spd_ctx c,
				       const uint8_t *key, const struct dp_policy **pol)
{
	const struct dp_acl_set *set = spd->set;

	for (int pass = 0; pass < (c == DP_SPD_FWD ? 2 : 1); pass++) {
		for (unsigned int i = 0; i < set->n; i++) {
			const struct dp_rule *r = &set->rules[i];
			const struct dp_policy *p;

			if (r->v6 != v6 || !dp_rule_in_ctx(r, c) ||
			    (c == DP_SPD_FWD && (r->dir == DPS_DIR_IN) != pass))
				continue;
			p = __atomic_load_n(&spd->slot[r->slot], __ATOMIC_ACQUIRE);
			if (p != NULL && dp_rule_match(r, key)) {
				*pol = p;
				return r;
			}
		}
	}
	return NULL;
}

static inline uint32_t dst_hash(const uint8_t *dst, unsigned int len)
{
	uint32_t h = 2166136261u ^ len;
	unsigned int full = len / 8, rem = len % 8;

	for (unsigned int i = 0; i < full; i++)
		h = (h ^ dst[i]) * 16777619u;
	if (rem)
		h = (h ^ (dst[full] & (uint8_t)(0xff << (8 - rem)))) * 16777619u;
	return h ^ (h >> 15);
}

void dp_recent_free(struct dp_recent *r)
{
	if (r == NULL)
		return;
	free(r->head);
	free(r->next);
	free(r->rules);
	free(r->pol);
	free(r);
}

struct dp_recent *dp_recent_new(uint32_t cap)
{
	struct dp_recent *r = calloc(1, sizeof(*r));
	uint32_t buckets = 16;

	if (r == NULL)
		return NULL;
	cap = cap < 16 ? 16 : cap;
	while (buckets < 2 * cap)
		buckets *= 2;
	r->cap = cap;
	r->mask = buckets - 1;
	r->head = calloc(buckets, sizeof(*r->head));
	r->next = calloc(cap, sizeof(*r->next));
	r->rules = calloc(cap, sizeof(*r->rules));
	r->pol = calloc(cap, sizeof(*r->pol));
	if (r->head == NULL || r->next == NULL || r->rules == NULL || r->pol == NULL) {
		dp_recent_free(r);
		return NULL;
	}
	return r;
}

int dp_recent_add(struct dp_recent *r, const struct dp_rule *rule, struct dp_policy *p)
{
	uint32_t i = r->n, b = dst_hash(rule->dst, rule->dst_len) & r->mask;
	bool known = false;

	if (i == r->cap)
		return -1;
	for (uint32_t l = 0; l < r->n_len; l++)
		known |= r->lens[l] == rule->dst_len;
	if (!known) {
		r->lens[r->n_len] = rule->dst_len;
		__atomic_store_n(&r->n_len, r->n_len + 1, __ATOMIC_RELEASE);
	}
	r->rules[i] = *rule;
	r->pol[i] = p;
	r->next[i] = r->head[b];
	__atomic_store_n(&r->head[b], i + 1, __ATOMIC_RELEASE);
	r->n = i + 1;
	return (int)i;
}

void dp_recent_set(struct dp_recent *r, uint32_t i, struct dp_policy *p)
{
	__atomic_store_n(&r->pol[i], p, __ATOMIC_RELEASE);
}

struct dp_recent *dp_recent_grow(const struct dp_recent *r)
{
	struct dp_recent *g = dp_recent_new(2 * r->cap);

	if (g == NULL)
		return NULL;
	for (uint32_t i = 0; i < r->n; i++)
		dp_recent_add(g, &r->rules[i], r->pol[i]);
	return g;
}

/* The best live recent rule for @key in context @c, if better than @best;
 * @n_len: the index's count of lengths, read once per burst. */
static inline void recent_best(const struct dp_recent *r, uint32_t n_len, int v6, enum dp_spd_ctx c,
			       const uint8_t *key, const struct dp_rule *best,
			       const struct dp_policy **pol)
{
	const uint8_t *dst = v6 ? ((const struct dp_acl6_key *)key)->dst
				: (const uint8_t *)&((const struct dp_acl4_key *)key)->dst;

	for (unsigned int l = 0; l < n_len; l++) {
		unsigned int len = r->lens[l];
		uint32_t i =
			__atomic_load_n(&r->head[dst_hash(dst, len) & r->mask], __ATOMIC_ACQUIRE);

		for (; i; i = r->next[i - 1]) {
			const struct dp_rule *q = &r->rules[i - 1];
			const struct dp_policy *qp;

			if (q->dst_len != len || !dp_rule_in_ctx(q, c) ||
			    (best != NULL && !rule_before(q, best, c)) || !dp_rule_match(q, key))
				continue;
			qp = __atomic_load_n(&r->pol[i - 1], __ATOMIC_ACQUIRE);
			if (qp != NULL) {
				best = q;
				*pol = qp;
			}
		}
	}
}

/* The policies of context @ctx for @n keys from the main classifier's
 * answers @r (every @stride-th; 0: no match) and the recent policies (@n_len
 * lengths, read once for the burst by the caller). */
static __rte_always_inline void resolve(const struct dp_spd *spd, int v6, enum dp_spd_ctx ctx,
					const uint8_t **keys, const uint32_t *r,
					unsigned int stride, uint32_t n_len,
					const struct dp_policy **res, uint16_t n)
{
	if (n_len == 0) { /* the main classifiers alone: one load per packet */
		for (uint16_t i = 0; i < n; i++) {
			const struct dp_policy *p = NULL;
			uint32_t ri = r[i * stride];

			if (ri && unlikely((p = __atomic_load_n(&spd->slot[ri - 1],
								__ATOMIC_ACQUIRE)) == NULL))
				main_scan(spd, v6, ctx, keys[i], &p);
			res[i] = p;
		}
		return;
	}
	for (uint16_t i = 0; i < n; i++) {
		const struct dp_rule *best = NULL;
		const struct dp_policy *p = NULL;
		uint32_t ri = r[i * stride];

		if (ri) {
			p = __atomic_load_n(&spd->slot[ri - 1], __ATOMIC_ACQUIRE);
			if (p != NULL)
				best = &spd->set->rules[ri - 1];
			else
				best = main_scan(spd, v6, ctx, keys[i], &p);
		}
		recent_best(spd->recent[v6], n_len, v6, ctx, keys[i], best, &p);
		res[i] = p;
	}
}

/* The recent policies' lengths, once for the burst (a length is written
 * before the count, release): a burst sees the index of one moment, and an
 * empty one costs no test per packet. */
static inline uint32_t recent_lens(const struct dp_spd *spd, int v6)
{
	const struct dp_recent *recent = spd->recent[v6];

	return recent != NULL ? __atomic_load_n(&recent->n_len, __ATOMIC_ACQUIRE) : 0;
}

/* The main classifier of context @ctx for family @v6: NULL when it has no
 * rule of @ctx; @cats: its results per packet, @cat: the context's among them. */
static inline const struct rte_acl_ctx *
acl_of(const struct dp_spd *spd, int v6, enum dp_spd_ctx ctx, unsigned int *cats, unsigned int *cat)
{
	uint8_t fo = spd->fo[v6];

	*cats = 1;
	*cat = 0;
	if (ctx == DP_SPD_IN)
		return spd->acl[v6][DP_ACL_IN];
	if (!(fo & (ctx == DP_SPD_OUT ? DP_ACL_FO_OUT : DP_ACL_FO_FWD)))
		return NULL;
	*cat = fo_cat(fo, ctx);
	/* the fwd category is the first: its results alone, one per packet */
	*cats = *cat ? DP_ACL_CATS : 1;
	return spd->acl[v6][DP_ACL_FWD_OUT];
}

void dp_spd_lookup(const struct dp_spd *spd, int v6, enum dp_spd_ctx ctx, const uint8_t **keys,
		   const struct dp_policy **res, uint16_t n)
{
	uint32_t r[DP_MAX_BURST * DP_ACL_CATS], n_len;
	unsigned int cats, cat;
	const struct rte_acl_ctx *acl = acl_of(spd, v6, ctx, &cats, &cat);

	if (n == 0)
		return;
	n_len = recent_lens(spd, v6);
	if (acl == NULL && n_len == 0) { /* no policy of this family and direction */
		memset(res, 0, n * sizeof(res[0]));
		return;
	}
	if (acl != NULL)
		rte_acl_classify(acl, keys, r, n, cats);
	else
		memset(r, 0, n * cats * sizeof(r[0]));
	if (cats == 1) /* the common case, its stride a constant */
		resolve(spd, v6, ctx, keys, r, 1, n_len, res, n);
	else
		resolve(spd, v6, ctx, keys, r + cat, DP_ACL_CATS, n_len, res, n);
}

void dp_spd_lookup_fwd_out(const struct dp_spd *spd, int v6, const uint8_t **keys,
			   const struct dp_policy **fwd, const struct dp_policy **out, uint16_t n)
{
	uint32_t r[DP_MAX_BURST * DP_ACL_CATS];

	if (!dp_spd_one_walk(spd, v6) || n == 0) {
		/* one context or none in the trie: a walk for each */
		dp_spd_lookup(spd, v6, DP_SPD_FWD, keys, fwd, n);
		dp_spd_lookup(spd, v6, DP_SPD_OUT, keys, out, n);
		return;
	}
	rte_acl_classify(spd->acl[v6][DP_ACL_FWD_OUT], keys, r, n, DP_ACL_CATS);
	resolve(spd, v6, DP_SPD_FWD, keys, r, DP_ACL_CATS, recent_lens(spd, v6), fwd, n);
	resolve(spd, v6, DP_SPD_OUT, keys, r + 1, DP_ACL_CATS, recent_lens(spd, v6), out, n);
}

static bool addr_eq(const struct dps_addr *a, const struct dps_addr *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? a->v4.s_addr == b->v4.s_addr
				    : memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
}

static __rte_always_inline int req_accepts(const struct dps_ipsec_req *r, const struct dp_sa *sa)
{
	if (r->proto != sa->cfg.proto || r->mode != sa->cfg.mode)
		return 0;
	if (r->reqid)
		return r->reqid == sa->cfg.reqid;
	if (r->mode == DPS_MODE_TUNNEL)
		return addr_eq(&r->tun_src, &sa->cfg.src) && addr_eq(&r->tun_dst, &sa->cfg.dst);
	return 1;
}

int dp_policy_accepts(const struct dp_policy *p, const struct dp_sa *sa)
{
	return req_accepts(&p->req, sa);
}

int dp_policy_accepts_chain(const struct dp_policy *p, struct dp_sa *const *via, unsigned int n)
{
	unsigned int i = 0;

	if (p->n_bundle == 0)
		return n == 1 && req_accepts(&p->req, via[0]);
	/* the outermost request was undone first */
	for (unsigned int j = p->n_bundle; j-- > 0;) {
		if (i < n && req_accepts(&p->bundle[j], via[i]))
			i++;
		else if (p->bundle[j].proto != DPS_PROTO_IPCOMP)
			return 0;
	}
	return i == n;
}
