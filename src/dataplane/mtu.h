/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The arithmetic of what fits once protected (RFC 4303 §2.4, RFC 4301 §8.2.1),
 * apart from the packets so that it is tested on its own (tests/unit/test_mtu.c).
 * @kept: the IP header ESP goes behind (transport mode), 0 in tunnel mode;
 * @overhead: what dp_esp_overhead() says; @block: the cipher's payload
 * alignment, a power of 2.
 */
#ifndef DP_MTU_H
#define DP_MTU_H

#include <stdbool.h>
#include <stdint.h>

#define DP_ESP_HDR_LEN 8 /* SPI + sequence number */
#define DP_UDP_HDR_LEN 8
#define DP_IP4_HDR_LEN 20
#define DP_IP6_HDR_LEN 40

/** Bytes an SA adds besides padding and the 2-byte trailer: outer IP header
 * (tunnel), UDP (NAT-T, RFC 3948), ESP header, explicit IV and ICV. */
static inline uint16_t dp_esp_overhead(bool tunnel, bool outer_v6, bool udp, uint8_t iv_len,
				       uint8_t icv_len)
{
	return (uint16_t)((tunnel ? (outer_v6 ? DP_IP6_HDR_LEN : DP_IP4_HDR_LEN) : 0) +
			  (udp ? DP_UDP_HDR_LEN : 0) + DP_ESP_HDR_LEN + iv_len + icv_len);
}

/** The IP length of an @l3-byte packet once protected: its payload and the
 * 2-byte trailer padded to @block (RFC 4303 §2.4). */
static inline uint32_t dp_esp_protected_len(uint32_t l3, uint32_t kept, uint32_t overhead,
					    uint32_t block)
{
	return kept + overhead + ((l3 - kept + 2 + block - 1) & ~(block - 1));
}

/** The largest packet that fits @mtu once protected, as Linux's esp4_get_mtu();
 * 0 when the link is too small for any (icmp.c then announces the minimum). */
static inline uint32_t dp_esp_inner_mtu(uint32_t mtu, uint32_t kept, uint32_t overhead,
					uint32_t block)
{
	if (mtu < kept + overhead + block)
		return 0;
	return kept + ((mtu - overhead - kept) & ~(block - 1)) - 2;
}

#endif
