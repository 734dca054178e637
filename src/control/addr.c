// SPDX-License-Identifier: BSD-3-Clause
/* IPv4/IPv6 addresses and prefixes: parsing, comparing, printing (see control/addr.h). */
#include "control/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int dps_addr_parse(const char *s, struct dps_addr *out)
{
	struct dps_addr a;

	if (!s || !out)
		return -1;
	memset(&a, 0, sizeof(a)); /* callers compare addresses with memcmp */
	if (strchr(s, ':')) {
		a.family = AF_INET6;
		if (inet_pton(AF_INET6, s, &a.v6) != 1)
			return -1;
	} else {
		a.family = AF_INET;
		if (inet_pton(AF_INET, s, &a.v4) != 1)
			return -1;
	}
	*out = a;
	return 0;
}

int dps_prefix_parse(const char *s, struct dps_prefix *out)
{
	char buf[INET6_ADDRSTRLEN];
	struct dps_prefix p;
	const char *slash;
	unsigned int len = 0, max;
	size_t n;

	if (!s || !out)
		return -1;
	slash = strchr(s, '/');
	n = slash ? (size_t)(slash - s) : strlen(s);
	if (!n || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(&p, 0, sizeof(p));
	if (dps_addr_parse(buf, &p.addr))
		return -1;
	max = p.addr.family == AF_INET ? 32 : 128;
	if (!slash) {
		len = max;
	} else {
		const char *d = slash + 1;

		/* Plain decimal: no sign, no spaces, no leading zeros, at most 3 digits. */
		if (!*d || strlen(d) > 3 || (d[0] == '0' && d[1]))
			return -1;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return -1;
			len = len * 10 + (unsigned int)(*d - '0');
		}
		if (len > max)
			return -1;
	}
	p.len = (uint8_t)len;
	*out = p;
	return 0;
}

static size_t dps_addr_bytes(const struct dps_addr *a)
{
	return a->family == AF_INET ? 4 : 16;
}

static const uint8_t *dps_addr_raw(const struct dps_addr *a)
{
	return a->family == AF_INET ? (const uint8_t *)&a->v4 : a->v6.s6_addr;
}

bool dps_addr_eq(const struct dps_addr *a, const struct dps_addr *b)
{
	return a->family == b->family &&
	       !memcmp(dps_addr_raw(a), dps_addr_raw(b), dps_addr_bytes(a));
}

const char *dps_addr_unusable(const struct dps_addr *a)
{
	const uint8_t *b = dps_addr_raw(a);
	static const uint8_t zero[16];

	if (!memcmp(b, zero, dps_addr_bytes(a)))
		return "is the unspecified address";
	if (a->family == AF_INET && b[0] >= 224 && b[0] <= 239)
		return "is a multicast address";
	if (a->family == AF_INET && a->v4.s_addr == INADDR_BROADCAST)
		return "is the broadcast address";
	if (a->family == AF_INET6 && IN6_IS_ADDR_MULTICAST(&a->v6))
		return "is a multicast address";
	return NULL;
}

bool dps_prefix_has_host_bits(const struct dps_prefix *p)
{
	const uint8_t *b = dps_addr_raw(&p->addr);
	size_t i, n = dps_addr_bytes(&p->addr);

	for (i = p->len / 8; i < n; i++) {
		uint8_t keep = i == p->len / 8u ? (uint8_t)(0xff00 >> (p->len % 8)) : 0;

		if (b[i] & ~keep)
			return true;
	}
	return false;
}

const char *dps_addr_str(const struct dps_addr *a, char *buf, size_t len)
{
	if (!buf || !len)
		return "";
	if (a && (a->family == AF_INET || a->family == AF_INET6) &&
	    inet_ntop(a->family, dps_addr_raw(a), buf, (socklen_t)len))
		return buf;
	snprintf(buf, len, "?");
	return buf;
}
