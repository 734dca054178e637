/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SA binding: whether an SA may serve a policy's request (its reqid, else its
 * tunnel endpoints, else for transport the peer host of its selector; which
 * of several wins is spd_live.c's: the newest), and which inner family a
 * tunnel SA carries. Pure functions of the store's objects: no dataplane.
 */
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
