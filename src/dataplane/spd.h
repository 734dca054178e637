/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Security policy database: the RFC 4301 SPD in the seeds' terms, compiled
 * into rte_acl contexts per address family and direction. Built off the hot
 * path for every change and published in a snapshot.
 */
#ifndef DP_SPD_H
#define DP_SPD_H

#include <stdint.h>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "control/ipsec.h"
#include "dataplane/verdict.h"

struct rte_acl_ctx;
struct dp_sa;

/* A policy's hit count of one worker, alone on its cache line: workers count
 * every packet, and must not bounce a shared line between cores. */
struct dp_hits {
	uint64_t n;
	uint64_t no_sa; /* out: packets dropped for want of an SA; the control thread ACQUIREs */
} __rte_cache_aligned;

enum dp_spd_ctx {
	DP_SPD_OUT, /* forwarded packets about to leave */
	DP_SPD_IN,  /* packets for the gateway itself */
	DP_SPD_FWD, /* packets arriving to be forwarded: fwd policies, then in */
	DP_SPD_NCTX,
};

/* What a worker reads for every packet comes first, on one cache line. */
struct dp_policy {
	uint8_t verdict; /* enum dp_verdict */
	uint8_t dir;
	uint32_t id;
	struct dp_sa *sa;	  /* out: the SA to apply */
	struct dp_hits *hits;	  /* [n_workers], owned by the store, survives rebuilds */
	struct dps_ipsec_req req; /* in/fwd: what an accepting SA must look like */
};

/* The compiled classifiers, shared by successive SPDs whose policies did not
 * change (only their SAs or the defaults did): compiling is the slow part. */
struct dp_acl_set {
	unsigned int refs; /* control thread only */
	struct rte_acl_ctx *acl[2][DP_SPD_NCTX];
};

#define DP_CLEAR_ICMP 1 /* ipsec.icmp_accept_clear: ICMP, ICMPv6 */
#define DP_CLEAR_IGMP 2 /* igmp_accept_clear */
#define DP_CLEAR_PIM  4 /* pim_accept_clear */

struct dp_spd {
	struct rte_acl_ctx *acl[2][DP_SPD_NCTX]; /* [v6][ctx], NULL when empty; set's */
	struct dp_acl_set *set;
	uint8_t def_verdict[2]; /* when nothing matches: discard or bypass */
	uint8_t accept_clear;	/* DP_CLEAR_*: pass an inbound require policy in clear */
	unsigned int n_pol;
	struct dp_policy *pol; /* ACL userdata = index + 1 */
	uint64_t gen;
};

/* Classification keys, in network byte order (ACL input). */
struct dp_acl4_key {
	uint8_t proto;
	uint8_t pad[3];
	uint32_t src;
	uint32_t dst;
	uint16_t sport; /* ICMP: type */
	uint16_t dport; /* ICMP: code */
};

struct dp_acl6_key {
	uint8_t proto;
	uint8_t pad[3];
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
};

/* One policy as the store hands it over for a build. */
struct dp_spd_entry {
	const struct dps_policy *p;
	struct dp_sa *out_sa; /* resolved by the store for out policies */
	struct dp_hits *hits;
};

/**
 * Compile @n entries (already sorted: first wins) into a new SPD. With
 * @same_rules, an SPD built from the same policies in the same order, its
 * classifiers are shared instead of compiled again (only the verdicts and SA
 * bindings are new). NULL on failure (logged).
 */
struct dp_spd *dp_spd_build(const struct dp_spd_entry *e, unsigned int n,
			    const struct dps_ipsec_defaults *def, uint64_t gen,
			    const struct dp_spd *same_rules);
void dp_spd_free(struct dp_spd *spd);

/** Drop a reference to compiled classifiers; the last one frees them. */
void dp_acl_set_put(struct dp_acl_set *set);

/** Fill an IPv4 key from the IP header at @ip (L4 ports or ICMP type/code if present). */
void dp_spd_key4(struct dp_acl4_key *k, const struct rte_ipv4_hdr *ip, uint32_t l3_len);
/** Fill an IPv6 key. */
void dp_spd_key6(struct dp_acl6_key *k, const struct rte_ipv6_hdr *ip6, uint32_t l3_len);

/**
 * Classify @n keys of family @v6 against context @ctx: @res[i] is the
 * matching policy or NULL.
 */
void dp_spd_lookup(const struct dp_spd *spd, int v6, enum dp_spd_ctx ctx, const uint8_t **keys,
		   const struct dp_policy **res, uint16_t n);

/** True if @sa is one the in/fwd policy @p accepts (RFC 4301 §5.2). */
int dp_policy_accepts(const struct dp_policy *p, const struct dp_sa *sa);

#endif
