/* SPDX-License-Identifier: BSD-3-Clause */
/* Inbound SA lookup by <SPI, destination> with rte_ipsec_sad, one per family. */
#ifndef DP_SAD_H
#define DP_SAD_H

#include <stdint.h>

struct rte_ipsec_sad;
struct dp_sa;

/** Build the SADs for @n inbound SAs. 0, or -1 (logged). */
int dp_sad_build(struct dp_sa *const *sas, unsigned int n, uint64_t gen,
		 struct rte_ipsec_sad *sad[2]);

#endif
