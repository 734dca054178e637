/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The policy-failure log (Solaris ipsec_policy_log_interval): a worker that
 * drops a packet for a policy reason hands a decoded record (polog_rec.h) to
 * the control thread through a ring, at most one per interval per worker;
 * the control thread logs at most one per interval overall, with the count
 * of drops suppressed since the last. Workers never format or log. The same
 * calls feed the capture's drop point (capture.h) while one is armed.
 */
#ifndef DP_POLOG_H
#define DP_POLOG_H

#include <rte_cycles.h>

#include "dataplane/capture.h"
#include "dataplane/polog_rec.h"
#include "dataplane/sa.h"
#include "dataplane/worker.h"

struct dp_policy;
struct dp_sa;

/** Create the ring and set each worker's interval (dp_init; 0 ms: no log). */
int dp_polog_init(uint32_t interval_ms);

/** Free the ring (dp_stop). */
void dp_polog_fini(void);

/** Control thread: log what the workers handed over, rate-limited (dp_control_poll). */
void dp_polog_drain(uint64_t now_ms);

/* The cold halves of dp_polog() and dp_polog_sa(): copy a record out. */
void dp_polog_note(struct dp_worker *w, uint16_t port, struct rte_mbuf *m,
		   enum dp_polog_reason reason, const struct dp_policy *p, const struct dp_sa *sa,
		   uint64_t now);
void dp_polog_note_sa(struct dp_worker *w, struct rte_mbuf *m, enum dp_polog_reason reason,
		      const struct dp_sa *sa, uint64_t now);

/* Whether this worker may write a record now; else the drop is only counted
 * as suppressed. Off: one predictable branch; on: a TSC read per drop. */
static inline bool dp_polog_due(struct dp_worker *w, uint64_t *now)
{
	if (likely(w->polog_cycles == 0))
		return false;
	*now = rte_rdtsc();
	if (*now < w->polog_next) {
		w->polog_supp++;
		return false;
	}
	return true;
}

/**
 * Note the drop of @m (Ethernet + IP, received on dataplane port @port) for
 * @reason under policy @p and SA @sa (either may be NULL). Call before @m is
 * freed.
 */
static inline void dp_polog(struct dp_worker *w, uint16_t port, struct rte_mbuf *m,
			    enum dp_polog_reason reason, const struct dp_policy *p,
			    const struct dp_sa *sa)
{
	uint64_t now;

	if (unlikely(w->cap != NULL))
		dp_cap_pkt(w, DP_CAP_DROP, m, port, p, sa, reason);
	if (unlikely(dp_polog_due(w, &now)))
		dp_polog_note(w, port, m, reason, p, sa, now);
}

/**
 * Note an inbound SA's failure (@reason auth, replay, decomp or bomb) of @m: lib/ipsec may
 * have stripped its headers, so the record carries the SA's endpoints and SPI.
 */
static inline void dp_polog_sa(struct dp_worker *w, struct rte_mbuf *m, enum dp_polog_reason reason,
			       const struct dp_sa *sa)
{
	uint64_t now;

	if (unlikely(w->cap != NULL))
		dp_cap_pkt(w, DP_CAP_DROP, m, DP_NO_PORT, NULL, sa, reason);
	if (unlikely(dp_polog_due(w, &now)))
		dp_polog_note_sa(w, m, reason, sa, now);
}

/**
 * Note the drop of @m for a reason that is no policy failure (a DP_DROP_*):
 * the capture's drop point takes it, the log does not. The caller counts it.
 */
static inline void dp_drop_note(struct dp_worker *w, uint16_t port, struct rte_mbuf *m,
				enum dp_polog_reason reason, const struct dp_sa *sa)
{
	if (unlikely(w->cap != NULL))
		dp_cap_pkt(w, DP_CAP_DROP, m, port, NULL, sa, reason);
}

/** The drop reason of an SA's drop counter. */
static inline enum dp_polog_reason dp_sa_drop_reason(enum dp_sa_counter c)
{
	switch (c) {
	case DP_SA_CNT_drop_auth:
		return DP_POLOG_auth;
	case DP_SA_CNT_drop_replay:
		return DP_POLOG_replay;
	case DP_SA_CNT_drop_policy:
		return DP_POLOG_sa_policy;
	case DP_SA_CNT_drop_decomp:
		return DP_POLOG_decomp;
	case DP_SA_CNT_drop_bomb:
		return DP_POLOG_bomb;
	case DP_SA_CNT_drop_pad:
		return DP_DROP_padding;
	case DP_SA_CNT_drop_len:
		return DP_DROP_length;
	case DP_SA_CNT_drop_ecn:
		return DP_DROP_ecn;
	case DP_SA_CNT_drop_crypto:
		return DP_DROP_crypto;
	case DP_SA_CNT_drop_bundle:
		return DP_DROP_bundle;
	default:
		return DP_DROP_other;
	}
}

/**
 * dp_sa_drop() that every drop point sees: @sa's packets mb[@from..@to) are
 * counted under @c and freed, each first logged (a policy failure) or noted
 * for the capture (any other reason).
 */
static inline void dp_sa_fail(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
			      uint16_t from, uint16_t to, enum dp_sa_counter c)
{
	enum dp_polog_reason r = dp_sa_drop_reason(c);

	for (uint16_t i = from; i < to; i++) {
		if (r < DP_POLOG_MAX)
			dp_polog_sa(w, mb[i], r, sa);
		else
			dp_drop_note(w, DP_NO_PORT, mb[i], r, sa);
	}
	dp_sa_drop(sa, w->id, mb, from, to, c);
}

#endif
