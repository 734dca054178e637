/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Outbound ESP framed by dpsec for the native engine's AES-GCM SAs (imb.h):
 * the ESP header, IV, padding, trailer and (tunnel) outer header written
 * here and the packet encrypted with intel-ipsec-mb's direct API, without
 * lib/ipsec or crypto ops, as VPP's ipsecmb engine does. The packets are
 * byte for byte those lib/ipsec 22.11 frames (esp_out.c's path for the
 * cryptodev SAs), sequence numbers included.
 */
#ifndef DP_ESP_NATIVE_OUT_H
#define DP_ESP_NATIVE_OUT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_common.h>

#include "control/ipsec.h"

struct dp_sa;
struct dp_worker;
struct dp_snapshot;
struct rte_mbuf;

/* The outer IPv6 header and the UDP header of ESP in UDP: the most of a template. */
#define DP_NOUT_HDR_MAX (40 + 8)

/*
 * What a native outbound ESP SA writes into each packet besides the
 * sequence number: one cache line in the SA (struct dp_sa), read by every
 * packet of the sub-burst.
 */
struct dp_esp_nout {
	/* tunnel: the outer IPv4 or IPv6 header (+ UDP), lengths, id and TOS
	 * left to each packet; the Ethernet header before it is zeroed but
	 * for its type, as lib/ipsec's template (output.c fills the addresses) */
	uint8_t hdr[DP_NOUT_HDR_MAX];
	rte_be32_t spi;
	uint32_t salt;	     /* RFC 4106 §4: the nonce's first 4 bytes */
	rte_be16_t eth_type; /* tunnel: the outer family's */
	uint8_t hdr_len;     /* tunnel: bytes of @hdr in use */
	uint8_t next;	     /* tunnel: the trailer's next header (IPv4 or IPv6) */
	uint8_t tos_mask;    /* tunnel: inner TOS bits copied outward (DSCP, + ECN) */
	bool in6;	     /* tunnel: the SA carries IPv6 */
	bool esn;	     /* RFC 4303 §2.2.1: 64-bit sequence numbers */
} __rte_cache_aligned;

/**
 * Make @sa's outbound framing (control thread): its SPI and nonce salt
 * (@salt, as the key material holds it), and for a tunnel SA the outer
 * header from @ip (@ip_len bytes, a 20-byte IPv4 or 40-byte IPv6 header with
 * its constant fields set) with, for ESP in UDP (RFC 3948), the UDP header
 * after it; and choose @sa's crypto step (sa->crypto) for its mode and key
 * size. @sa's mode, families, encapsulation, ECN and configuration are set.
 */
void dp_esp_native_out_init(struct dp_sa *sa, uint32_t salt, const void *ip, uint8_t ip_len);

#endif
