/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * When an ICMP error may be sent about a packet (RFC 1812 §4.3.2.7, RFC 4443
 * §2.4(e)): pure functions of the packet's bytes from its IP header on, apart
 * from icmp.c so that they are tested on their own (tests/unit/test_icmp_rules.c).
 */
#ifndef DP_ICMP_RULES_H
#define DP_ICMP_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ICMPv4 error types (RFC 792, RFC 1812 §4.3.2.7): unreachable, source
 * quench, redirect, time exceeded, parameter problem. */
static inline bool dp_icmp4_type_is_error(uint8_t t)
{
	return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
}

/**
 * A "fragmentation needed" is due about the IPv4 packet at @ip (@len bytes
 * available): it has DF, it is not a fragment other than the first, its
 * source is one host (not 0, loopback, multicast, broadcast or class E), and
 * it is not itself an ICMP error.
 */
static inline bool dp_icmp4_wants_error(const uint8_t *ip, uint32_t len)
{
	uint32_t hl = (ip[0] & 0xf) * 4u;
	uint16_t frag = (uint16_t)(ip[6] << 8 | ip[7]);
	uint8_t s0 = ip[12];
	bool src_zero = !(ip[12] | ip[13] | ip[14] | ip[15]);

	if (!(frag & 0x4000) || (frag & 0x1fff))
		return false;
	if (src_zero || s0 == 127 || s0 >= 0xe0)
		return false;
	if (ip[9] == 1 /* ICMP */ && len > hl)
		return !dp_icmp4_type_is_error(ip[hl]);
	return true;
}

/**
 * A "packet too big" is due about the IPv6 packet at @ip6 (@len bytes): its
 * source is not unspecified, loopback or multicast, and it is not an ICMPv6
 * error (types below 128, RFC 4443 §2.1).
 */
static inline bool dp_icmp6_wants_error(const uint8_t *ip6, uint32_t len)
{
	static const uint8_t zero[16], loop[16] = {[15] = 1};
	const uint8_t *src = ip6 + 8;

	if (src[0] == 0xff || !memcmp(src, zero, 16) || !memcmp(src, loop, 16))
		return false;
	if (ip6[6] == 58 /* ICMPv6 */ && len > 40)
		return ip6[40] >= 128;
	return true;
}

#endif
