/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transforms stage: each SA's own chain (struct dp_xform_ops in sa.h),
 * prepare → lib/ipsec and crypto (crypto.c) → finish.
 */
#ifndef DP_XFORM_H
#define DP_XFORM_H

#include <stdbool.h>

#include "dataplane/capture.h"
#include "dataplane/crypto.h"
#include "dataplane/sa.h"

struct dp_worker;
struct dp_snapshot;

/** Run @n packets through @sa's transform; consumes every mbuf. An armed
 * capture's in-cipher point is here, for every protocol. */
static inline void dp_xform_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
				struct rte_mbuf **mb, uint16_t n)
{
	if (unlikely(w->cap != NULL) && sa->cfg.dir == DPS_DIR_IN)
		dp_cap_burst(w, DP_CAP_IN_CIPHER, mb, n, sa);
	if (sa->xf->run != NULL) {
		sa->xf->run(w, s, sa, mb, n);
		return;
	}
	n = sa->xf->prepare(w, sa, mb, n);
	if (n)
		sa->crypto(w, s, sa, mb, n);
}

/**
 * The packets an inner SA of a bundle finished (sa->bundled): they go to the
 * next SA's transform (sa->outer), or, that SA gone, are dropped and counted
 * (drop_bundle), never sent with fewer layers. Consumes every mbuf.
 */
void dp_xform_bundle_next(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			  struct rte_mbuf **mb, uint16_t n);

/**
 * The outbound transforms of the groups the policy stage made (w->st.grp):
 * what does not fit the path once protected is left out (output.c), the rest
 * runs through its SA. @hop_done: the packets were forwarded (TTL already
 * decremented, for the ICMP error's quote).
 */
void dp_xform_out(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, bool hop_done);

#endif
