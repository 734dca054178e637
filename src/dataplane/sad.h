/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound SA lookup by <SPI, destination> with rte_ipsec_sad, one per family.
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

struct rte_ipsec_sad;
struct dp_sa;

/* One change of the inbound SAs. */
struct dp_sad_op {
	bool add;
	struct dp_sa *sa; /* for a deletion, alive until after the grace period */
};

/* The two copies of each family's table. Control thread only. */
struct dp_sad_pair {
	struct rte_ipsec_sad *sad[2][2]; /* [copy][v6] */
	unsigned int cap[2], n[2];	 /* per family: room, SAs */
	int read;			 /* the copy the published snapshot points to */
};

/** Build both copies for @n inbound SAs, with room to grow. 0, or -1 (logged). */
int dp_sad_pair_build(struct dp_sad_pair *p, struct dp_sa *const *sas, unsigned int n);

/** True if the copies have room for @ops (else: build them again). */
bool dp_sad_pair_fits(const struct dp_sad_pair *p, const struct dp_sad_op *ops, unsigned int n);

/** Apply @ops to copy @copy. 0, or -1 (logged): that copy is then inconsistent. */
int dp_sad_apply(struct dp_sad_pair *p, int copy, const struct dp_sad_op *ops, unsigned int n);

/** Destroy both copies. */
void dp_sad_pair_free(struct dp_sad_pair *p);

#endif
