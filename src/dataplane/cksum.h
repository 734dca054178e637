/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The IPv4 header checksum (RFC 791, RFC 1071) of the common header without
 * options, summed as five 32-bit words instead of DPDK's generic loop over
 * 16-bit ones: the dataplane verifies it on every packet it forwards, and
 * every IPv4 header it builds or changes (outer ESP headers, decrypted and
 * NAT-T packets, fragments, ICMP errors) gets it from here.
 */
#ifndef DP_CKSUM_H
#define DP_CKSUM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_ip.h>

/* One's complement sum of the 20 bytes at @hdr, folded to 16 bits. Folding
 * 64 to 32 bits keeps the value modulo 2^32 - 1, a multiple of 2^16 - 1. */
static inline uint16_t dp_ip4_sum20(const void *hdr)
{
	uint32_t w[5];
	uint64_t sum;

	memcpy(w, hdr, sizeof(w));
	sum = (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4];
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/** True if the header checksum of @ip (@hlen bytes) is valid. */
static inline bool dp_ip4_cksum_ok(const struct rte_ipv4_hdr *ip, uint32_t hlen)
{
	if (unlikely(hlen != sizeof(*ip)))
		return rte_raw_cksum(ip, hlen) == 0xffff;
	return dp_ip4_sum20(ip) == 0xffff;
}

/** Set the header checksum of @ip. */
static inline void dp_ip4_cksum_set(struct rte_ipv4_hdr *ip)
{
	ip->hdr_checksum = 0;
	if (unlikely(rte_ipv4_hdr_len(ip) != sizeof(*ip)))
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	else
		ip->hdr_checksum = (uint16_t)~dp_ip4_sum20(ip);
}

#endif
