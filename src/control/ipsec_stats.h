/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-protocol IPsec totals (OpenBSD's espstat, ahstat, ipcompstat; netstat
 * -s -p esp): packets and bytes in and out, and every drop cause, over every
 * SA of a protocol the daemon ever had. The workers count per SA only; an
 * SA's counts are added to its protocol's retired totals when the SA is
 * freed after its deletion was published, so totals survive deletion and
 * never go back.
 */
#ifndef DPS_IPSEC_STATS_H
#define DPS_IPSEC_STATS_H

#include <stdint.h>

#include "dataplane/sa.h"

enum dps_stats_proto {
	DPS_STATS_ESP,
	DPS_STATS_AH,
	DPS_STATS_IPCOMP,
	DPS_STATS_NPROTO,
};

extern const char *const dps_stats_proto_names[DPS_STATS_NPROTO];

struct dps_ipsec_stats {
	uint64_t sas; /* SAs in force now */
	uint64_t in_packets, in_bytes, out_packets, out_bytes;
	uint64_t drop[DP_SA_CNT_MAX]; /* the SA drop causes (indices of drop_*), both directions */
	/* From the port counters: ESP (AH too, for now) with no inbound SA for
	 * its SPI, IPComp for its CPI; ESP too short to carry an SPI, IPComp a
	 * CPI and a payload. */
	uint64_t drop_unknown_spi;
	uint64_t drop_malformed;
};

/** The protocol slot of IP protocol @proto (50, 51, 108), or -1. */
int dps_stats_proto(uint8_t proto);

/** Add dead SA @sa's final counts to its protocol's totals (store lock held). */
void dps_ipsec_stats_retire(const struct dp_sa *sa);

/** The totals of protocol slot @p: retired, in force, and deleted but not yet freed. */
void dps_ipsec_stats_get(enum dps_stats_proto p, struct dps_ipsec_stats *out);

#endif
