// SPDX-License-Identifier: BSD-3-Clause
/*
 * Decoding for dpsecctl monitor. It reads what dpsecd's PF_KEY server sends
 * (RFC 2367 with the Linux extensions), not what a client sends: EXPIRE and
 * ACQUIRE carry extensions no request may, so the extensions are walked
 * here by their lengths rather than through the server's request validator.
 * Shown: SA and policy additions, updates, deletions and flushes (whoever
 * made them: a key daemon, or a configuration reload with pid 0), SPI
 * allocations, EXPIREs and ACQUIREs. Not shown: failed requests, and
 * replies to GET, DUMP, REGISTER and PROMISC (they change nothing).
 */

#include <arpa/inet.h>
#include <linux/ipsec.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "control/dpsecctl_monitor.h"
#include "control/dpsecctl_view.h"

struct msg {
	const struct sadb_msg *hdr;
	const struct sadb_ext *ext[SADB_EXT_MAX + 1];
};

struct buf {
	char *p;
	size_t cap, len;
};

static void __attribute__((format(printf, 2, 3))) put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->len >= b->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len = b->len + (size_t)n < b->cap ? b->len + (size_t)n : b->cap - 1;
}

static int split(const void *data, size_t len, struct msg *m)
{
	const uint8_t *p = data;
	size_t off = sizeof(struct sadb_msg);

	memset(m, 0, sizeof(*m));
	if (len < sizeof(struct sadb_msg))
		return -1;
	m->hdr = data;
	if (m->hdr->sadb_msg_version != PF_KEY_V2 || (size_t)m->hdr->sadb_msg_len * 8 != len)
		return -1;
	while (off < len) {
		const struct sadb_ext *e = (const void *)(p + off);
		size_t elen;

		if (len - off < sizeof(*e))
			return -1;
		elen = (size_t)e->sadb_ext_len * 8;
		if (elen < sizeof(*e) || elen > len - off)
			return -1;
		if (e->sadb_ext_type <= SADB_EXT_MAX)
			m->ext[e->sadb_ext_type] = e;
		off += elen;
	}
	return 0;
}

static const char *satype_name(uint8_t t)
{
	switch (t) {
	case SADB_SATYPE_ESP:
		return "esp";
	case SADB_SATYPE_AH:
		return "ah";
	case SADB_X_SATYPE_IPCOMP:
		return "ipcomp";
	case SADB_SATYPE_UNSPEC:
		return "all";
	}
	return "?";
}

/* An address extension as "addr" or, with @prefix, "addr/len". */
static void address(struct buf *b, const struct sadb_ext *e, bool prefix)
{
	const struct sadb_address *a = (const void *)e;
	const struct sockaddr *sa = (const void *)(a + 1);
	size_t room = (size_t)e->sadb_ext_len * 8 - sizeof(*a);
	char s[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET && room >= sizeof(struct sockaddr_in))
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, s,
			  sizeof(s));
	else if (sa->sa_family == AF_INET6 && room >= sizeof(struct sockaddr_in6))
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, s,
			  sizeof(s));
	if (prefix)
		put(b, "%s/%u", s, a->sadb_address_prefixlen);
	else
		put(b, "%s", s);
}

static void endpoints(struct buf *b, const struct msg *m, bool prefix)
{
	if (!m->ext[SADB_EXT_ADDRESS_SRC] || !m->ext[SADB_EXT_ADDRESS_DST])
		return;
	put(b, " ");
	address(b, m->ext[SADB_EXT_ADDRESS_SRC], prefix);
	put(b, " -> ");
	address(b, m->ext[SADB_EXT_ADDRESS_DST], prefix);
}

/*
 * " spi 0x... esp tunnel SRC -> DST reqid N". A DELETE's reply is the
 * request with SA and addresses (RFC 2367 3.1.4): its X_SA2 says nothing,
 * so a deletion (@ids_only) shows the SA's identity alone.
 */
static void sa_body(struct buf *b, const struct msg *m, bool ids_only)
{
	const struct sadb_sa *sa = (const void *)m->ext[SADB_EXT_SA];
	const struct sadb_x_sa2 *sa2 = ids_only ? NULL : (const void *)m->ext[SADB_X_EXT_SA2];

	if (sa)
		put(b, " spi 0x%08x", ntohl(sa->sadb_sa_spi));
	put(b, " %s", satype_name(m->hdr->sadb_msg_satype));
	if (sa2 && sa2->sadb_x_sa2_mode == IPSEC_MODE_TUNNEL)
		put(b, " tunnel");
	else if (sa2 && sa2->sadb_x_sa2_mode == IPSEC_MODE_TRANSPORT)
		put(b, " transport");
	endpoints(b, m, false);
	if (sa2 && sa2->sadb_x_sa2_reqid)
		put(b, " reqid %u", sa2->sadb_x_sa2_reqid);
}

static void sa_line(struct buf *b, const struct msg *m, const char *what)
{
	put(b, "sa %s", what);
	sa_body(b, m, m->hdr->sadb_msg_type == SADB_DELETE);
}

static const char *const dirs[] = {"any", "in", "out", "fwd"};

static void policy_line(struct buf *b, const struct msg *m, const char *what)
{
	const struct sadb_x_policy *p = (const void *)m->ext[SADB_X_EXT_POLICY];
	const struct sadb_address *src = (const void *)m->ext[SADB_EXT_ADDRESS_SRC];
	char num[8];

	put(b, "policy %s", what);
	if (p) {
		put(b, " id %u %s", p->sadb_x_policy_id, dirs[p->sadb_x_policy_dir & 3]);
		put(b, " %s",
		    p->sadb_x_policy_type == IPSEC_POLICY_IPSEC	    ? "protect"
		    : p->sadb_x_policy_type == IPSEC_POLICY_DISCARD ? "discard"
								    : "bypass");
	}
	endpoints(b, m, true);
	if (src)
		put(b, " proto %s", dps_view_proto_name(src->sadb_address_proto, num, sizeof(num)));
}

static void expire_line(struct buf *b, const struct msg *m)
{
	put(b, "expire %s", m->ext[SADB_EXT_LIFETIME_HARD] ? "hard" : "soft");
	sa_body(b, m, false);
}

int dps_monitor_format(const void *data, size_t len, char *out, size_t cap)
{
	struct buf b = {.p = out, .cap = cap};
	struct msg m;

	if (cap == 0)
		return -1;
	out[0] = '\0';
	if (split(data, len, &m))
		return -1;
	if (m.hdr->sadb_msg_errno)
		return 0;
	switch (m.hdr->sadb_msg_type) {
	case SADB_ADD:
		sa_line(&b, &m, "add");
		break;
	case SADB_UPDATE:
		sa_line(&b, &m, "update");
		break;
	case SADB_DELETE:
		sa_line(&b, &m, "delete");
		break;
	case SADB_GETSPI:
		sa_line(&b, &m, "allocated");
		break;
	case SADB_FLUSH:
		put(&b, "sa flush %s", satype_name(m.hdr->sadb_msg_satype));
		break;
	case SADB_EXPIRE:
		expire_line(&b, &m);
		return (int)b.len;
	case SADB_ACQUIRE:
		put(&b, "acquire %s", satype_name(m.hdr->sadb_msg_satype));
		endpoints(&b, &m, false);
		if (m.ext[SADB_X_EXT_POLICY])
			put(&b, " policy %u",
			    ((const struct sadb_x_policy *)(const void *)m.ext[SADB_X_EXT_POLICY])
				    ->sadb_x_policy_id);
		return (int)b.len;
	case SADB_X_SPDADD:
		policy_line(&b, &m, "add");
		break;
	case SADB_X_SPDUPDATE:
		policy_line(&b, &m, "update");
		break;
	case SADB_X_SPDDELETE:
	case SADB_X_SPDDELETE2:
		policy_line(&b, &m, "delete");
		break;
	case SADB_X_SPDFLUSH:
		put(&b, "policy flush");
		break;
	default:
		return 0;
	}
	/* Changes: who made them (a reload's have pid 0, as the kernel's own). */
	if (m.hdr->sadb_msg_pid)
		put(&b, " (pid %u)", m.hdr->sadb_msg_pid);
	else
		put(&b, " (config)");
	return (int)b.len;
}
