/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dataplane counters. Each worker owns one block per port and is the only
 * writer, so increments are plain stores; readers (telemetry) sum the blocks.
 */
#ifndef DP_COUNTERS_H
#define DP_COUNTERS_H

#include <stdint.h>

/* X(name, help): the name is what telemetry and dpsecctl show. */
#define DP_COUNTERS(X)                                                                             \
	X(rx_packets, "packets received from the port")                                            \
	X(rx_bytes, "bytes received from the port")                                                \
	X(tx_packets, "packets handed to the port")                                                \
	X(tx_bytes, "bytes handed to the port")                                                    \
	X(fwd_ipv4, "IPv4 packets forwarded")                                                      \
	X(fwd_ipv6, "IPv6 packets forwarded")                                                      \
	X(punt_kernel, "packets for the gateway itself sent to the exception TAP")                 \
	X(from_kernel, "packets from the exception TAP sent out of the port")                      \
	X(arp_nd_in, "ARP and ND packets handed to the control thread")                            \
	X(neigh_wait, "packets handed to the control thread to wait for ARP/ND")                   \
	X(ipsec_in, "ESP packets for the gateway handed to an inbound SA")                         \
	X(ipsec_out, "packets protected by an outbound SA and sent")                               \
	X(natt_keepalive, "NAT-T keepalives absorbed (RFC 3948 2.3)")                              \
	X(frag_out, "packets sent as fragments: IPv4 without DF, or ESP once protected")           \
	X(frag_created, "fragments sent for them")                                                 \
	X(reasm_done, "ESP and UDP datagrams for the gateway reassembled from fragments")          \
	X(drop_no_route, "dropped: no route to the destination")                                   \
	X(drop_ttl_expired, "dropped: TTL or hop limit exhausted")                                 \
	X(drop_malformed, "dropped: truncated or invalid Ethernet/IP header")                      \
	X(drop_bad_cksum, "dropped: IPv4 header checksum invalid")                                 \
	X(drop_l2_other, "dropped: unsupported ethertype or frame not addressed to us")            \
	X(drop_mtu, "dropped: larger than the egress MTU")                                         \
	X(drop_frag, "dropped: could not be fragmented (no mbufs, too many fragments)")            \
	X(drop_reasm, "fragments dropped by reassembly: timed out, table full, invalid")           \
	X(drop_no_exception, "dropped: for the gateway but the port has no exception TAP")         \
	X(drop_unresolved, "dropped: next hop could not be resolved or its queue was full")        \
	X(drop_ctrl_full, "dropped: control ring full")                                            \
	X(drop_policy, "dropped: a discard policy, or no policy and def_policy discard")           \
	X(drop_no_sa, "dropped: policy requires IPsec and no SA exists yet")                       \
	X(drop_plaintext, "dropped: plaintext where the inbound policy requires IPsec")            \
	X(drop_unknown_spi, "dropped: ESP for an SPI with no inbound SA")                          \
	X(drop_proto_off, "dropped: ESP, AH or IPComp for the gateway, protocol disabled "         \
			  "(ipsec.*_enable)")                                                      \
	X(drop_esp_malformed, "dropped: ESP or ESP-in-UDP too short to carry an SPI")              \
	X(drop_unknown_cpi, "dropped: IPComp for a CPI with no inbound SA")                        \
	X(drop_ipcomp_malformed, "dropped: IPComp too short to carry a CPI and a payload")         \
	X(drop_tx_full, "dropped: transmit queue full")                                            \
	X(icmp_ptb_sent, "ICMP fragmentation needed / ICMPv6 packet too big sent to a sender")     \
	X(icmp_ratelimited, "ICMP errors not sent: over dataplane.icmp_rate")

enum dp_counter {
#define DP_CNT_ENUM(name, help) DP_CNT_##name,
	DP_COUNTERS(DP_CNT_ENUM)
#undef DP_CNT_ENUM
		DP_CNT_MAX
};

extern const char *const dp_counter_names[DP_CNT_MAX];

struct dp_counters {
	uint64_t v[DP_CNT_MAX];
};

#endif
