/* SPDX-License-Identifier: BSD-3-Clause */
/* IPv4/IPv6 addresses and prefixes as the control plane keeps them (network order). */
#ifndef DPS_ADDR_H
#define DPS_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dps_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct dps_prefix {
	struct dps_addr addr;
	uint8_t len;
};

/** Parse "a.b.c.d", "x::y" into @out. Returns 0 or -1. */
int dps_addr_parse(const char *s, struct dps_addr *out);

/** Parse "addr/len" into @out (len defaults to the full length). Returns 0 or -1. */
int dps_prefix_parse(const char *s, struct dps_prefix *out);

/** True if @a and @b are the same family and address. */
bool dps_addr_eq(const struct dps_addr *a, const struct dps_addr *b);

/** Why @a cannot be a host's address (interface, next hop, neighbour), or NULL. */
const char *dps_addr_unusable(const struct dps_addr *a);

/** True if @p has bits set beyond its length, i.e. is not a network prefix. */
bool dps_prefix_has_host_bits(const struct dps_prefix *p);

/** Format @a into @buf (INET6_ADDRSTRLEN is enough). */
const char *dps_addr_str(const struct dps_addr *a, char *buf, size_t len);

#endif
