// SPDX-License-Identifier: BSD-3-Clause
/* IPv4/IPv6 addresses and prefixes: parsing (see control/addr.h). */
#include "control/addr.h"

#include <arpa/inet.h>
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
