/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SA binding: whether an SA may serve a policy's request (its reqid, else its
 * tunnel endpoints, else for transport the peer host of its selector; which
 * of several wins is spd_live.c's: the newest), and which inner family a
 * tunnel SA carries. Pure functions of the store's objects: no dataplane.
 */
#include <stdlib.h>

#include "control/store_state.h"

bool dps_req_matches_sa(const struct dps_ipsec_req *r, const struct dps_sa *c,
			const struct dps_selector *sel)
{
	if (r->proto != c->proto || r->mode != c->mode)
		return false;
	if (r->reqid)
		return r->reqid == c->reqid;
	if (r->mode == DPS_MODE_TUNNEL)
		return dps_addr_eq(&r->tun_src, &c->src) && dps_addr_eq(&r->tun_dst, &c->dst);
	/* transport without reqid: the selector names the peer host */
	return sel->dst.len == (sel->dst.addr.family == AF_INET ? 32 : 128) &&
	       dps_addr_eq(&sel->dst.addr, &c->dst);
}

int dps_sa_inner_family(const struct dps_sa *c, const struct dps_policy *pols, unsigned int n,
			size_t stride)
{
	for (unsigned int i = 0; i < n; i++) {
		const struct dps_policy *p = (const void *)((const char *)pols + i * stride);

		if ((p->dir == DPS_DIR_OUT) != (c->dir == DPS_DIR_OUT))
			continue;
		for (unsigned int r = 0; r < p->n_reqs; r++)
			if (dps_req_matches_sa(&p->reqs[r], c, &p->sel))
				return p->sel.src.addr.family;
	}
	return c->dst.family;
}

static int reqid_cmp(const void *a, const void *b)
{
	const struct dps_store_sa *x = *(const struct dps_store_sa *const *)a;
	const struct dps_store_sa *y = *(const struct dps_store_sa *const *)b;

	return x->cfg.reqid < y->cfg.reqid ? -1 : x->cfg.reqid > y->cfg.reqid;
}

int dps_by_reqid_build(struct dps_by_reqid *x, const struct dps_store_sa *sas, unsigned int n)
{
	x->n = x->n_any = x->n_uniq = 0;
	x->uniq = NULL;
	x->v = calloc(n + 1, sizeof(*x->v));
	x->any = calloc(n + 1, sizeof(*x->any));
	if (x->v == NULL || x->any == NULL)
		return -1;
	for (unsigned int i = 0; i < n; i++) {
		if (sas[i].cfg.dir != DPS_DIR_OUT)
			continue;
		if (sas[i].cfg.reqid)
			x->v[x->n++] = &sas[i];
		x->any[x->n_any++] = &sas[i]; /* a request without reqid may take any */
	}
	qsort(x->v, x->n, sizeof(*x->v), reqid_cmp);
	return 0;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool u32_in(const uint32_t *v, unsigned int n, uint32_t k)
{
	return n && bsearch(&k, v, n, sizeof(*v), u32_cmp) != NULL;
}

/*
 * The seeds' level unique (KAME setkey "unique:N", ipsec(4)): the policy has
 * an SA of its own, the one with its reqid, which no other policy takes.
 * Collect the reqids outbound unique ESP requests own.
 */
int dps_by_reqid_unique(struct dps_by_reqid *x, const struct dps_policy *pols, unsigned int n,
			size_t stride)
{
	x->n_uniq = 0;
	x->uniq = calloc(n + 1, sizeof(*x->uniq));
	if (x->uniq == NULL)
		return -1;
	for (unsigned int i = 0; i < n; i++) {
		const struct dps_policy *p = (const void *)((const char *)pols + i * stride);

		for (unsigned int r = 0; p->dir == DPS_DIR_OUT && r < p->n_reqs; r++)
			if (p->reqs[r].proto == DPS_PROTO_ESP &&
			    p->reqs[r].level == DPS_LEVEL_UNIQUE && p->reqs[r].reqid)
				x->uniq[x->n_uniq++] = p->reqs[r].reqid;
	}
	qsort(x->uniq, x->n_uniq, sizeof(*x->uniq), u32_cmp);
	return 0;
}

void dps_by_reqid_free(struct dps_by_reqid *x)
{
	free(x->v);
	free(x->any);
	free(x->uniq);
}

/* An SA a unique request owns goes to the unique requests with its reqid only. */
bool dps_unique_excludes(const uint32_t *uniq, unsigned int n, const struct dps_ipsec_req *r,
			 const struct dps_sa *c)
{
	if (!c->reqid || !u32_in(uniq, n, c->reqid))
		return false;
	return r->level != DPS_LEVEL_UNIQUE || r->reqid != c->reqid;
}

static void consider(const struct dps_store_sa **best, const struct dps_by_reqid *x,
		     const struct dps_ipsec_req *r, const struct dps_policy *p,
		     const struct dps_store_sa *s)
{
	if (dps_req_matches_sa(r, &s->cfg, &p->sel) &&
	    !dps_unique_excludes(x->uniq, x->n_uniq, r, &s->cfg) &&
	    (*best == NULL || s->id > (*best)->id))
		*best = s;
}

const struct dps_store_sa *dps_policy_out_sa(const struct dps_policy *p,
					     const struct dps_by_reqid *x)
{
	const struct dps_store_sa *best = NULL;

	for (unsigned int r = 0; r < p->n_reqs; r++) {
		const struct dps_ipsec_req *q = &p->reqs[r];
		unsigned int lo = 0, hi = x->n;

		if (!dps_req_bound(p, q))
			continue;
		if (q->reqid == 0) {
			for (unsigned int i = 0; i < x->n_any; i++)
				consider(&best, x, q, p, x->any[i]);
			continue;
		}
		while (lo < hi) { /* first SA with this reqid */
			unsigned int mid = (lo + hi) / 2;

			if (x->v[mid]->cfg.reqid < q->reqid)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < x->n && x->v[lo]->cfg.reqid == q->reqid; lo++)
			consider(&best, x, q, p, x->v[lo]);
	}
	return best;
}
