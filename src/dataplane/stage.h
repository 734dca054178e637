/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sub-bursts that pass from one stage of the packet path to the next
 * (worker.c drives them): input (fwd.c) → policy (policy.c) → transforms
 * (per-SA chains, xform.c) → output (output.c). Each worker has one set, in
 * struct dp_worker: a stage fills the sub-bursts of the stages after it and
 * never calls a stage before it.
 */
#ifndef DP_STAGE_H
#define DP_STAGE_H

#include <stdint.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "dataplane/spd.h"

#define DP_MAX_BURST 64

struct dp_nexthop;
struct dp_sa;

/* A run of packets of one family that arrived on one port. @nh is the route
 * (NULL: the gateway's kernel sent it, it leaves by its port as it is), @key
 * the SPD key. */
struct dp_burst {
	uint16_t n;
	struct rte_mbuf *m[DP_MAX_BURST];
	const struct dp_nexthop *nh[DP_MAX_BURST];
	const uint8_t *key[DP_MAX_BURST];
};

union dp_acl_key {
	struct dp_acl4_key k4;
	struct dp_acl6_key k6;
};

/** The SPD key of @m (Ethernet + IP). */
static inline void dp_spd_key(struct rte_mbuf *m, int v6, union dp_acl_key *k)
{
	uint32_t l3 = rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN;
	const void *ip = rte_pktmbuf_mtod_offset(m, void *, RTE_ETHER_HDR_LEN);

	if (v6)
		dp_spd_key6(&k->k6, ip, l3);
	else
		dp_spd_key4(&k->k4, ip, l3);
}

/* The packets of one burst that one SA protects. */
struct dp_sa_group {
	struct dp_sa *sa;
	uint16_t n;
	struct rte_mbuf *m[DP_MAX_BURST];
};

struct dp_stages {
	/* input → policy */
	struct dp_burst local; /* for the gateway: the in SPD, then its kernel */
	struct dp_burst fwd;   /* routed, TTL decremented: the fwd SPD */
	/* input → transforms: ESP for the gateway */
	uint16_t n_esp;
	struct rte_mbuf *esp[DP_MAX_BURST];
	/* policy → output: what leaves in clear */
	struct dp_burst clear;
	/* policy → transforms: protected packets grouped by SA; @gen stamps a
	 * burst in the SAs' per-worker counter lines (policy.c) */
	uint32_t gen;
	uint16_t n_grp;
	struct dp_sa_group grp[DP_MAX_BURST];
	/* transforms → worker: decrypted packets, fed to input again (their SA in
	 * dp_meta()->via) */
	uint16_t n_again;
	struct rte_mbuf *again[DP_MAX_BURST];
	/* policy's own scratch */
	struct dp_burst out; /* fwd SPD passed: the out SPD next */
	/* the out policies of the first @out_pre packets of @out, classified
	 * with the fwd SPD (one walk for both, dp_spd_lookup_fwd_out()) */
	uint16_t out_pre;
	const struct dp_policy *out_pol[DP_MAX_BURST];
	union dp_acl_key keys[DP_MAX_BURST];
	const struct dp_policy *pol[DP_MAX_BURST];
	const struct dp_policy *fwd_out[DP_MAX_BURST]; /* the fwd burst's out policies */
};

#endif
