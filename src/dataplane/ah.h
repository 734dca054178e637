/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AH (RFC 4302), dpsec's own framing: lib/ipsec does ESP only. The ICV is an
 * auth-only cryptodev session over the whole IP packet with its mutable
 * fields zeroed (RFC 4302 §3.3.3.1), plus the high half of an extended
 * sequence number (§2.5.1); CPU crypto where the device offers it, else the
 * worker's queue pair, both through the same crypto.c machinery as ESP (the
 * SA's rte_ipsec_session carries AH's own prepare and process functions).
 */
#ifndef DP_AH_H
#define DP_AH_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "dataplane/crypto.h"
#include "dataplane/sa.h"

#define DP_AH_HDR_LEN 12 /* next header, length, reserved, SPI, sequence number */

struct dp_worker;
struct dp_snapshot;

/**
 * The offset of the AH header in IPv6 packet @ip (@len bytes), walking the
 * Hop-by-Hop, Routing and Destination Options headers before it; 0 when the
 * packet carries no AH there.
 */
static inline uint32_t dp_ah_off6(const uint8_t *ip, uint32_t len)
{
	uint32_t off = 40;
	uint8_t nh = ip[6];

	while (nh == 0 || nh == 43 || nh == 60) {
		if (off + 2 > len)
			return 0;
		nh = ip[off];
		off += ((uint32_t)ip[off + 1] + 1) * 8;
	}
	return nh == 51 && off + DP_AH_HDR_LEN <= len ? off : 0;
}

/**
 * Make @sa (its cfg, counters and knobs filled) an AH SA: the crypto session
 * for @x, or with @key (the SA's key slot, sa.c) the native engine's HMAC
 * states there (imb.c), the rte_ipsec_session's functions, the lengths. 0 or
 * -errno.
 */
int dp_ah_init(struct dp_sa *sa, struct dp_xforms *x, void *key);

/**
 * The crypto step of an AH SA on the native engine (sa->crypto): the
 * worker's intel-ipsec-mb manager computes the ICVs of @n prepared packets
 * (outbound into AH; inbound compared in constant time with the received
 * ones), then the SA's process and finish as for the crypto devices.
 */
void dp_ah_imb_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		   struct rte_mbuf **mb, uint16_t n);

/** The transform of AH SA @sa (either direction). */
const struct dp_xform_ops *dp_ah_ops(const struct dp_sa *sa);

/**
 * The inbound AH entry: AH packets for the gateway's addresses, received on
 * @port; their SAs found, runs of one SA through its transform.
 */
void dp_ah_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
	      struct rte_mbuf **pkts, uint16_t n, int v6);

#endif
