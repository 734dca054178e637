/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A policy-failure record (Solaris ipsec_policy_log_interval): what a worker
 * hands the control thread about a packet IPsec dropped for a policy reason,
 * already decoded into fixed fields so that the control thread only formats.
 * Pure: no DPDK (tests/unit/test_polog_rec.c).
 */
#ifndef DP_POLOG_REC_H
#define DP_POLOG_REC_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* X(name): the reason as the log line names it. */
#define DP_POLOG_REASONS(X)                                                                        \
	X(plaintext)   /* in clear where the inbound policy requires IPsec */                      \
	X(no_sa)       /* require/unique policy, no outbound SA */                                 \
	X(sa_policy)   /* decrypted, outside its SA's policy (RFC 4301 5.2) */                     \
	X(discard)     /* a discard policy, or def_policy discard */                               \
	X(unknown_spi) /* ESP or AH for an SPI, IPComp for a CPI, with no inbound SA */            \
	X(auth)	       /* integrity check failed */                                                \
	X(replay)      /* sequence number replayed or left of the window */                        \
	X(decomp)      /* IPComp: the payload did not decompress */                                \
	X(bomb)	       /* IPComp: the payload decompressed beyond the MTU-derived bound */

/* X(name): drops IPsec counts that are no policy failure: the capture's drop
 * point shows them with these reasons; the policy-failure log leaves them out. */
#define DP_DROP_REASONS(X)                                                                         \
	X(proto_off) /* ESP, AH or IPComp for the gateway, that protocol disabled */               \
	X(malformed) /* ESP, ESP-in-UDP, AH or IPComp too short for its header */                  \
	X(length)    /* ESP or AH length invalid for its SA (block size, ICV) */                   \
	X(padding)   /* ESP padding or trailer invalid after decryption */                         \
	X(ecn)	     /* outer CE over a Not-ECT inner packet (RFC 6040 4.2) */                     \
	X(crypto)    /* the crypto device refused or failed the operation */                       \
	X(bundle)    /* outbound: the next SA of its bundle is gone */                             \
	X(other)     /* no room for headers, bad inner header, out of resources */

/* The policy reasons first (DP_POLOG_*, below DP_POLOG_MAX), then the others
 * (DP_DROP_*, below DP_DROP_MAX). */
enum dp_polog_reason {
#define DP_POLOG_ENUM(n) DP_POLOG_##n,
	DP_POLOG_REASONS(DP_POLOG_ENUM)
#undef DP_POLOG_ENUM
		DP_POLOG_MAX,
	DP_DROP_BEFORE_FIRST = DP_POLOG_MAX - 1,
#define DP_DROP_ENUM(n) DP_DROP_##n,
	DP_DROP_REASONS(DP_DROP_ENUM)
#undef DP_DROP_ENUM
		DP_DROP_MAX
};

static const char *const dp_polog_reason_names[DP_DROP_MAX] = {
#define DP_POLOG_NAME(n) #n,
	DP_POLOG_REASONS(DP_POLOG_NAME) DP_DROP_REASONS(DP_POLOG_NAME)
#undef DP_POLOG_NAME
};

#define DP_POLOG_NONE 0 /* no policy / no SA id */

/* One record; a multiple of 4 bytes (an rte_ring element). Ports in host
 * order; for ICMP/ICMPv6 @sport is the type and @dport the code. */
struct dp_polog_rec {
	uint64_t suppressed; /* the worker's drops not recorded since its last record */
	uint32_t policy_id;  /* DP_POLOG_NONE: no policy */
	uint32_t sa_id;	     /* DP_POLOG_NONE: no SA */
	uint32_t spi;	     /* host order; ESP/AH, or IPComp's CPI */
	uint16_t port;	     /* dataplane port index */
	uint16_t sport, dport;
	uint8_t reason; /* enum dp_polog_reason */
	uint8_t family; /* AF_INET, AF_INET6, 0: not IP */
	uint8_t proto;
	uint8_t worker;
	uint8_t has_l4; /* ports or type/code decoded */
	uint8_t has_spi;
	uint8_t src[16], dst[16];
};

/* Ports of TCP/UDP/SCTP/UDP-Lite, ICMP's type and code, the SPI of ESP and AH,
 * the CPI of IPComp, from L4 bytes @l4 (@len of them). */
static inline void dp_polog_decode_l4(struct dp_polog_rec *r, const uint8_t *l4, uint32_t len)
{
	switch (r->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
	case IPPROTO_UDPLITE:
		if (len >= 4) {
			r->sport = (uint16_t)(l4[0] << 8 | l4[1]);
			r->dport = (uint16_t)(l4[2] << 8 | l4[3]);
			r->has_l4 = 1;
		}
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (len >= 2) {
			r->sport = l4[0];
			r->dport = l4[1];
			r->has_l4 = 1;
		}
		break;
	case IPPROTO_ESP:
		if (len >= 4) {
			r->spi = (uint32_t)l4[0] << 24 | (uint32_t)l4[1] << 16 |
				 (uint32_t)l4[2] << 8 | l4[3];
			r->has_spi = 1;
		}
		break;
	case IPPROTO_AH: /* RFC 4302 §2: next header, length, reserved, SPI */
		if (len >= 8) {
			r->spi = (uint32_t)l4[4] << 24 | (uint32_t)l4[5] << 16 |
				 (uint32_t)l4[6] << 8 | l4[7];
			r->has_spi = 1;
		}
		break;
	case IPPROTO_COMP: /* RFC 3173 §2.2: next header, flags, CPI */
		if (len >= 4) {
			r->spi = (uint32_t)l4[2] << 8 | l4[3];
			r->has_spi = 1;
		}
		break;
	default:
		break;
	}
}

/* Decode the IP packet @ip of @len bytes into @r's addresses, protocol and L4
 * fields. IPv6 extension headers are not walked: the protocol is the first
 * next header (what the SPD key also uses for a non-first fragment). */
static inline void dp_polog_decode(struct dp_polog_rec *r, const uint8_t *ip, uint32_t len)
{
	uint32_t hl;

	r->family = 0;
	r->has_l4 = 0;
	if (len >= 20 && ip[0] >> 4 == 4 && (hl = (uint32_t)(ip[0] & 0xf) * 4) >= 20 && len >= hl) {
		r->family = AF_INET;
		r->proto = ip[9];
		memset(r->src, 0, sizeof(r->src));
		memset(r->dst, 0, sizeof(r->dst));
		memcpy(r->src, ip + 12, 4);
		memcpy(r->dst, ip + 16, 4);
		/* only a first fragment carries the L4 header */
		if ((((uint32_t)ip[6] << 8 | ip[7]) & 0x1fff) == 0)
			dp_polog_decode_l4(r, ip + hl, len - hl);
	} else if (len >= 40 && ip[0] >> 4 == 6) {
		r->family = AF_INET6;
		r->proto = ip[6];
		memcpy(r->src, ip + 8, 16);
		memcpy(r->dst, ip + 24, 16);
		dp_polog_decode_l4(r, ip + 40, len - 40);
	}
}

static inline const char *dp_polog_proto_name(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ESP:
		return "esp";
	case IPPROTO_AH:
		return "ah";
	case IPPROTO_COMP:
		return "ipcomp";
	case IPPROTO_ICMPV6:
		return "icmp6";
	case IPPROTO_SCTP:
		return "sctp";
	default:
		snprintf(buf, len, "proto-%u", proto);
		return buf;
	}
}

/**
 * The log line of @r (without prefix), e.g. "reason plaintext port 0 policy 3
 * sa - icmp 10.0.0.1 > 10.1.0.2 type 8 code 0 suppressed 12". @port_name may
 * be NULL. Returns snprintf's result.
 */
static inline int dp_polog_format(const struct dp_polog_rec *r, uint64_t suppressed,
				  const char *port_name, char *buf, size_t len)
{
	char src[INET6_ADDRSTRLEN] = "?", dst[INET6_ADDRSTRLEN] = "?", pn[16], pol[16] = "-",
	     sa[16] = "-", l4[48] = "", spi[24] = "";
	const char *reason = r->reason < DP_POLOG_MAX ? dp_polog_reason_names[r->reason] : "?";

	if (r->family != 0) {
		inet_ntop(r->family, r->src, src, sizeof(src));
		inet_ntop(r->family, r->dst, dst, sizeof(dst));
	}
	if (r->policy_id != DP_POLOG_NONE)
		snprintf(pol, sizeof(pol), "%u", r->policy_id);
	if (r->sa_id != DP_POLOG_NONE)
		snprintf(sa, sizeof(sa), "%u", r->sa_id);
	if (r->has_l4 && (r->proto == IPPROTO_ICMP || r->proto == IPPROTO_ICMPV6))
		snprintf(l4, sizeof(l4), " type %u code %u", r->sport, r->dport);
	else if (r->has_l4)
		snprintf(l4, sizeof(l4), " sport %u dport %u", r->sport, r->dport);
	if (r->has_spi && r->proto == IPPROTO_COMP)
		snprintf(spi, sizeof(spi), " cpi 0x%04x", r->spi);
	else if (r->has_spi)
		snprintf(spi, sizeof(spi), " spi 0x%08x", r->spi);
	return snprintf(buf, len,
			"reason %s port %s policy %s sa %s %s %s > %s%s%s suppressed %llu", reason,
			port_name ? port_name : "?", pol, sa,
			r->family ? dp_polog_proto_name(r->proto, pn, sizeof(pn)) : "non-ip", src,
			dst, l4, spi, (unsigned long long)suppressed);
}

#endif
