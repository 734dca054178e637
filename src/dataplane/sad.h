/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound SA lookup with rte_ipsec_sad, for each address family one table
 * of ESP and AH and one of IPComp: ESP and AH by <SPI, destination> (AH with the unspecified
 * source, sad.c); IPComp by <CPI, destination>, and its tunnel SAs also by
 * <DP_SAD_IPIP, destination, source> for the packets their peer sent
 * uncompressed, as IP-in-IP (RFC 3173 §2.2).
 *
 * rte_ipsec_sad's own concurrent mode takes a reader lock in every lookup, so
 * the tables are double-buffered instead: two copies, workers read the one a
 * snapshot points to, the control thread changes the other, publishes it,
 * waits for an RCU grace period and applies the same change to the first.
 * Each change is O(1); a full build only when a copy runs out of room.
 */
#ifndef DP_SAD_H
#define DP_SAD_H

#include <stdbool.h>
#include <stdint.h>

#include <string.h>

#include <rte_ipsec_sad.h>

#include "dataplane/stage.h"

struct dp_sa;

/* The tables of each copy: ESP and AH [v6], IPComp [DP_SAD_IPCOMP + v6]. */
#define DP_SAD_IPCOMP 2
#define DP_SAD_N      4
/* The SPI of the key an IPComp tunnel SA's uncompressed IP-in-IP is found
 * by: CPIs are 16 bits, so it is no CPI. */
#define DP_SAD_IPIP 0x10000u

/* One change of the inbound SAs. */
struct dp_sad_op {
	bool add;
	struct dp_sa *sa; /* for a deletion, alive until after the grace period */
};

/* The two copies of each table. Control thread only. */
struct dp_sad_pair {
	struct rte_ipsec_sad *sad[2][DP_SAD_N]; /* [copy][table] */
	/* per table: room and keys of the <SPI, destination> hash (SAs keyed
	 * so) and of the <SPI, destination, source> one (AH, IP-in-IP) */
	unsigned int cap[DP_SAD_N], n[DP_SAD_N], cap3[DP_SAD_N], n3[DP_SAD_N];
	int read; /* the copy the published snapshot points to */
};

/** Build both copies for @n inbound SAs, with room to grow. 0, or -1 (logged). */
int dp_sad_pair_build(struct dp_sad_pair *p, struct dp_sa *const *sas, unsigned int n);

/** True if the copies have room for @ops (else: build them again). */
bool dp_sad_pair_fits(const struct dp_sad_pair *p, const struct dp_sad_op *ops, unsigned int n);

/** Apply @ops to copy @copy. 0, or -1 (logged): that copy is then inconsistent. */
int dp_sad_apply(struct dp_sad_pair *p, int copy, const struct dp_sad_op *ops, unsigned int n);

/**
 * The tables of copy @copy a snapshot points to (@sad, DP_SAD_N of them): an
 * IPComp table without SAs is NULL, so that protocol 108 and IP-in-IP stay
 * the gateway's while no IPComp SA exists (fwd.c).
 */
void dp_sad_pair_view(const struct dp_sad_pair *p, int copy, struct rte_ipsec_sad **sad);

/** Destroy both copies. */
void dp_sad_pair_free(struct dp_sad_pair *p);

/* The runs of equal keys among @n > 0 keys @k of family @v6: the first key
 * of each in @uk, each key's run in @run; returns the number of runs. */
static __rte_always_inline uint16_t dp_sad_runs(const union rte_ipsec_sad_key *k, uint16_t n,
						const union rte_ipsec_sad_key **uk, uint8_t *run,
						const int v6)
{
	uint16_t nu = 1;

	uk[0] = &k[0];
	run[0] = 0;
	for (uint16_t i = 1; i < n; i++) {
		if (v6 ? memcmp(&k[i].v6, &k[i - 1].v6, sizeof(k->v6)) != 0
		       : memcmp(&k[i].v4, &k[i - 1].v4, sizeof(k->v4)) != 0)
			uk[nu++] = &k[i];
		run[i] = nu - 1;
	}
	return nu;
}

/*
 * Look up the @n > 0 keys @k of family @v6 in @sad: @sa[i] is key i's SA or
 * NULL. rte_ipsec_sad_lookup() hashes each key in each of its three tables
 * (SPI; SPI and destination; SPI, destination and source) and compares keys
 * with memcmp: a third of an inbound 64 B packet's cost. A burst from one
 * peer is mostly runs of one SA: each run of equal keys is looked up once
 * (ESP, and AH, whose packets were looked up one by one before: 15 % of an
 * AH packet's work outside the hash at 1420 B).
 */
static inline void dp_sad_lookup_runs(const struct rte_ipsec_sad *sad,
				      const union rte_ipsec_sad_key *k, void **sa, uint16_t n,
				      int v6)
{
	const union rte_ipsec_sad_key *uk[DP_MAX_BURST];
	void *us[DP_MAX_BURST];
	uint8_t run[DP_MAX_BURST];
	uint16_t nu = v6 ? dp_sad_runs(k, n, uk, run, 1) : dp_sad_runs(k, n, uk, run, 0);

	rte_ipsec_sad_lookup(sad, uk, us, nu);
	for (uint16_t i = 0; i < n; i++)
		sa[i] = us[run[i]];
}

#endif
