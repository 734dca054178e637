/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The policy stage (RFC 4301 §5): the inbound check of what arrives for the
 * gateway (in SPD) or to be forwarded (fwd SPD, then in), the outbound SPD
 * for what leaves (bypass, discard, protect), the default policy, and the
 * count of packets dropped for want of an SA that makes the PF_KEY server
 * send an ACQUIRE. It reads the input stage's sub-bursts (w->st.local,
 * w->st.fwd, w->st.out) and fills the later stages': w->st.clear for the
 * output stage, w->st.grp (one group per SA) for the transforms.
 */
#ifndef DP_POLICY_H
#define DP_POLICY_H

#include <stdbool.h>

#include <rte_mbuf.h>

#include "dataplane/snapshot.h"

struct dp_worker;

/**
 * The inbound check of port @in's sub-bursts of family @v6: what is for the
 * gateway goes to its kernel, what is forwarded to the outbound SPD (w->st.out).
 * @decrypted: the packets came out of an inbound SA (dp_meta()->via).
 */
void dp_policy_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
		  bool decrypted);

/**
 * The outbound SPD over w->st.out: bypass to w->st.clear, protect to the
 * SA's group in w->st.grp, the rest dropped. @routed: the packets have a
 * next hop (forwarded, or originated by the dataplane), else they came from
 * the gateway's kernel and leave by port @in as they are.
 */
void dp_policy_out(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
		   bool routed);

/**
 * Packets the gateway's kernel sent on port @port's TAP, of family @v6: its
 * IKE always bypasses (as charon's per-socket policies make it in a kernel),
 * the rest goes through the outbound SPD.
 */
void dp_policy_kernel(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port, int v6,
		      struct rte_mbuf **pkts, uint16_t n);

#endif
