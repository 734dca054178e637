/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The outbound side of the transforms stage: the groups of a burst, one per
 * SA, each checked against its peer's link and run through its SA's chain.
 * The inbound side starts in the protocol's file (esp_in.c: dp_esp_in), which
 * finds the SAs.
 */
#include "dataplane/xform.h"
#include "dataplane/output.h"
#include "dataplane/polog.h"
#include "dataplane/worker.h"

_Static_assert(DP_VIA_MAX == DP_BUNDLE_MAX, "an inbound packet comes through a bundle's SAs");

/* Group distance at which the crypto state of a later SA group is prefetched. */
#define SA_PREFETCH_AHEAD 4

void dp_xform_out(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, bool hop_done)
{
	struct dp_stages *st = &w->st;
	uint16_t ng = st->n_grp;

	for (uint16_t i = 0; i < ng && i < SA_PREFETCH_AHEAD; i++)
		dp_sa_prefetch_state(st->grp[i].sa, w->id);
	for (uint16_t i = 0; i < ng; i++) {
		struct dp_sa_group *g = &st->grp[i];
		uint16_t k;

		if (i + SA_PREFETCH_AHEAD < ng)
			dp_sa_prefetch_state(st->grp[i + SA_PREFETCH_AHEAD].sa, w->id);
		k = dp_output_fit(w, s, in, g->sa, g->m, g->n, hop_done);
		if (k)
			dp_xform_run(w, s, g->sa, g->m, k);
	}
	st->n_grp = 0;
}

/* No recursion into an earlier stage: the next layer's transform runs on
 * the same group, at most DP_BUNDLE_MAX deep. */
void dp_xform_bundle_next(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			  struct rte_mbuf **mb, uint16_t n)
{
	struct dp_sa *o = __atomic_load_n(&sa->outer, __ATOMIC_ACQUIRE);

	if (unlikely(o == NULL)) {
		dp_sa_fail(w, sa, mb, 0, n, DP_SA_CNT_drop_bundle);
		return;
	}
	dp_xform_run(w, s, o, mb, n);
}
