/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PF_KEY v2 codec, input side: one validating parser driven by a table of
 * which extensions each message type allows and requires (the OpenBSD
 * pfkeyv2_parsemessage.c way), then translators from validated extensions
 * to the store's SA and policy objects. Builders are in codec_out.c.
 *
 * Where Linux (net/key/af_key.c) and RFC 2367 differ we follow Linux, since
 * the client of record (strongSwan's kernel-pfkey) was written against it.
 * Deliberate deviations are marked "dpsec:".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ipsec.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <string.h>

#include "pfkey_emul/codec.h"

#define B(t)	      (1u << (t))
#define WORDS(bytes)  (((bytes) + 7) / 8)
#define SIN_WORDS     WORDS(sizeof(struct sadb_address) + sizeof(struct sockaddr_in))
#define SIN6_WORDS    WORDS(sizeof(struct sadb_address) + sizeof(struct sockaddr_in6))
#define EXT_ADDRESSES (B(SADB_EXT_ADDRESS_SRC) | B(SADB_EXT_ADDRESS_DST))
#define EXT_LIFETIMES                                                                              \
	(B(SADB_EXT_LIFETIME_CURRENT) | B(SADB_EXT_LIFETIME_HARD) | B(SADB_EXT_LIFETIME_SOFT))
#define EXT_NATT                                                                                   \
	(B(SADB_X_EXT_NAT_T_TYPE) | B(SADB_X_EXT_NAT_T_SPORT) | B(SADB_X_EXT_NAT_T_DPORT) |        \
	 B(SADB_X_EXT_NAT_T_OA))
/* Everything an SA message carries, requests and the kernel's replies alike. */
#define EXT_SA_ALL                                                                                 \
	(B(SADB_EXT_SA) | B(SADB_X_EXT_SA2) | EXT_ADDRESSES | B(SADB_EXT_ADDRESS_PROXY) |          \
	 EXT_LIFETIMES | B(SADB_EXT_KEY_AUTH) | B(SADB_EXT_KEY_ENCRYPT) |                          \
	 B(SADB_EXT_IDENTITY_SRC) | B(SADB_EXT_IDENTITY_DST) | B(SADB_EXT_SENSITIVITY) |           \
	 EXT_NATT | B(SADB_X_EXT_SEC_CTX))
/* dpsec's extensions (pfkeyv2_ext.h) an ADD/UPDATE may carry. */
#define EXT_SA_REPLAY B(SADB_X_EXT_SA_REPLAY)
#define EXT_NEW_ADDRS (B(SADB_X_EXT_NEW_ADDRESS_SRC) | B(SADB_X_EXT_NEW_ADDRESS_DST))
#define EXT_SPD_ALL   (B(SADB_X_EXT_POLICY) | EXT_ADDRESSES | EXT_LIFETIMES | B(SADB_X_EXT_SEC_CTX))

/* Which SA types a message type accepts. */
enum pfk_satype_rule {
	SAT_UNKNOWN, /* message type not handled at all: EOPNOTSUPP */
	SAT_IGNORE,  /* SPD messages: Linux never looks at it */
	SAT_REAL,    /* ESP, AH or IPComp */
	SAT_ANY,     /* those or UNSPEC (FLUSH, DUMP) */
	SAT_LE_MAX,  /* REGISTER: anything up to SADB_SATYPE_MAX, as af_key.c */
};

struct pfk_msg_rule {
	uint32_t used, required; /* bitmaps of extension types */
	uint8_t satype;		 /* enum pfk_satype_rule */
};

/*
 * Linux's af_key.c has no per-message allowed sets: parse_exthdrs accepts
 * every extension type in every message (generic checks only) and each
 * handler looks at the ones it needs. So do we: an extension outside a
 * message type's "used" set passes the generic checks and is dropped.
 * Used sets include what the kernel's own messages of that type carry
 * (GET/DUMP replies, ADD broadcasts, EXPIRE, ACQUIRE), so that everything
 * the builders produce parses again with its extensions. Required sets are
 * what the handlers need; af_key.c checks the same presences, scattered
 * over its handlers. SADB_X_PCHANGE has no handler in Linux: it stays
 * SAT_UNKNOWN.
 */
static const struct pfk_msg_rule pfk_rules[SADB_MAX + 1] = {
	[SADB_GETSPI] = {EXT_SA_ALL | B(SADB_EXT_SPIRANGE), EXT_ADDRESSES, SAT_REAL},
	[SADB_UPDATE] = {EXT_SA_ALL | EXT_SA_REPLAY | EXT_NEW_ADDRS, B(SADB_EXT_SA) | EXT_ADDRESSES,
			 SAT_REAL},
	[SADB_ADD] = {EXT_SA_ALL | EXT_SA_REPLAY, B(SADB_EXT_SA) | EXT_ADDRESSES, SAT_REAL},
	[SADB_DELETE] = {EXT_SA_ALL, B(SADB_EXT_SA) | EXT_ADDRESSES, SAT_REAL},
	[SADB_GET] = {EXT_SA_ALL, B(SADB_EXT_SA) | EXT_ADDRESSES, SAT_REAL},
	/* From a daemon: a bare header reporting a failed negotiation. */
	[SADB_ACQUIRE] = {EXT_ADDRESSES | B(SADB_EXT_ADDRESS_PROXY) | B(SADB_EXT_IDENTITY_SRC) |
				  B(SADB_EXT_IDENTITY_DST) | B(SADB_EXT_SENSITIVITY) |
				  B(SADB_EXT_PROPOSAL) | B(SADB_X_EXT_POLICY) | B(SADB_X_EXT_SA2) |
				  B(SADB_X_EXT_SEC_CTX),
			  0, SAT_ANY},
	[SADB_REGISTER] = {B(SADB_EXT_SUPPORTED_AUTH) | B(SADB_EXT_SUPPORTED_ENCRYPT), 0,
			   SAT_LE_MAX},
	[SADB_EXPIRE] = {EXT_SA_ALL & ~(B(SADB_EXT_KEY_AUTH) | B(SADB_EXT_KEY_ENCRYPT)),
			 B(SADB_EXT_SA) | EXT_ADDRESSES | B(SADB_EXT_LIFETIME_CURRENT), SAT_REAL},
	[SADB_FLUSH] = {0, 0, SAT_ANY},
	[SADB_DUMP] = {EXT_SA_ALL | B(SADB_X_EXT_FILTER), 0, SAT_ANY},
	/* Passed to promiscuous listeners as is. */
	[SADB_X_PROMISC] = {0xffffffffu, 0, SAT_IGNORE},
	[SADB_X_SPDUPDATE] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY) | EXT_ADDRESSES, SAT_IGNORE},
	[SADB_X_SPDADD] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY) | EXT_ADDRESSES, SAT_IGNORE},
	[SADB_X_SPDDELETE] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY) | EXT_ADDRESSES, SAT_IGNORE},
	[SADB_X_SPDGET] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY), SAT_IGNORE},
	[SADB_X_SPDACQUIRE] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY), SAT_IGNORE},
	[SADB_X_SPDDUMP] = {EXT_SPD_ALL, 0, SAT_IGNORE},
	[SADB_X_SPDFLUSH] = {0, 0, SAT_IGNORE},
	[SADB_X_SPDSETIDX] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY) | EXT_ADDRESSES, SAT_IGNORE},
	[SADB_X_SPDEXPIRE] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY), SAT_IGNORE},
	[SADB_X_SPDDELETE2] = {EXT_SPD_ALL, B(SADB_X_EXT_POLICY), SAT_IGNORE},
	[SADB_X_NAT_T_NEW_MAPPING] = {B(SADB_EXT_SA) | B(SADB_X_EXT_SA2) | EXT_ADDRESSES | EXT_NATT,
				      B(SADB_EXT_SA) | EXT_ADDRESSES | B(SADB_X_EXT_NAT_T_SPORT) |
					      B(SADB_X_EXT_NAT_T_DPORT),
				      SAT_REAL},
	[SADB_X_MIGRATE] = {EXT_ADDRESSES | B(SADB_X_EXT_POLICY) | B(SADB_X_EXT_KMADDRESS),
			    B(SADB_X_EXT_POLICY) | EXT_ADDRESSES, SAT_IGNORE},
};

/* Smallest valid size of each extension, in bytes (its fixed part). */
static const uint8_t pfk_ext_min[PFK_EXT_MAX + 1] = {
	[SADB_EXT_SA] = sizeof(struct sadb_sa),
	[SADB_EXT_LIFETIME_CURRENT] = sizeof(struct sadb_lifetime),
	[SADB_EXT_LIFETIME_HARD] = sizeof(struct sadb_lifetime),
	[SADB_EXT_LIFETIME_SOFT] = sizeof(struct sadb_lifetime),
	[SADB_EXT_ADDRESS_SRC] = sizeof(struct sadb_address),
	[SADB_EXT_ADDRESS_DST] = sizeof(struct sadb_address),
	[SADB_EXT_ADDRESS_PROXY] = sizeof(struct sadb_address),
	[SADB_EXT_KEY_AUTH] = sizeof(struct sadb_key),
	[SADB_EXT_KEY_ENCRYPT] = sizeof(struct sadb_key),
	[SADB_EXT_IDENTITY_SRC] = sizeof(struct sadb_ident),
	[SADB_EXT_IDENTITY_DST] = sizeof(struct sadb_ident),
	[SADB_EXT_SENSITIVITY] = sizeof(struct sadb_sens),
	[SADB_EXT_PROPOSAL] = sizeof(struct sadb_prop),
	[SADB_EXT_SUPPORTED_AUTH] = sizeof(struct sadb_supported),
	[SADB_EXT_SUPPORTED_ENCRYPT] = sizeof(struct sadb_supported),
	[SADB_EXT_SPIRANGE] = sizeof(struct sadb_spirange),
	[SADB_X_EXT_KMPRIVATE] = sizeof(struct sadb_x_kmprivate),
	[SADB_X_EXT_POLICY] = sizeof(struct sadb_x_policy),
	[SADB_X_EXT_SA2] = sizeof(struct sadb_x_sa2),
	[SADB_X_EXT_NAT_T_TYPE] = sizeof(struct sadb_x_nat_t_type),
	[SADB_X_EXT_NAT_T_SPORT] = sizeof(struct sadb_x_nat_t_port),
	[SADB_X_EXT_NAT_T_DPORT] = sizeof(struct sadb_x_nat_t_port),
	[SADB_X_EXT_NAT_T_OA] = sizeof(struct sadb_address),
	[SADB_X_EXT_SEC_CTX] = sizeof(struct sadb_x_sec_ctx),
	[SADB_X_EXT_KMADDRESS] = sizeof(struct sadb_x_kmaddress),
	[SADB_X_EXT_FILTER] = sizeof(struct sadb_x_filter),
	[SADB_X_EXT_SA_REPLAY] = sizeof(struct sadb_x_sa_replay),
	[SADB_X_EXT_NEW_ADDRESS_SRC] = sizeof(struct sadb_address),
	[SADB_X_EXT_NEW_ADDRESS_DST] = sizeof(struct sadb_address),
};

static size_t ext_bytes(const struct sadb_ext *e)
{
	return (size_t)e->sadb_ext_len * 8;
}

static size_t sockaddr_len(uint16_t family)
{
	switch (family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

static uint16_t sockaddr_family(const uint8_t *p)
{
	uint16_t f;

	memcpy(&f, p, sizeof(f));
	return f;
}

/* A sockaddr_in/in6 at @p (at least sockaddr_len(family) bytes, checked by the caller). */
static void sockaddr_get(const uint8_t *p, struct dps_addr *a, uint16_t *port)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;

	memset(a, 0, sizeof(*a));
	a->family = (uint8_t)sockaddr_family(p);
	if (a->family == AF_INET) {
		memcpy(&sin, p, sizeof(sin));
		a->v4 = sin.sin_addr;
		*port = ntohs(sin.sin_port);
	} else {
		memcpy(&sin6, p, sizeof(sin6));
		a->v6 = sin6.sin6_addr;
		*port = ntohs(sin6.sin6_port);
	}
}

/*
 * Two sockaddrs of one family in @len bytes: tunnel endpoints after an
 * ipsecrequest, KMADDRESS. Returns the family, or 0.
 */
static uint16_t sockaddr_pair_family(const uint8_t *p, size_t len)
{
	uint16_t family;
	size_t sl;

	if (len < sizeof(uint16_t))
		return 0;
	family = sockaddr_family(p);
	sl = sockaddr_len(family);
	if (!sl || len < 2 * sl || sockaddr_family(p + sl) != family)
		return 0;
	return family;
}

/* af_key.c verify_address_len: the length must be exactly that of the family. */
static int check_address(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_address *a = (const void *)e;
	const uint8_t *sa = (const uint8_t *)(a + 1);

	(void)h;
	if (ext_bytes(e) < sizeof(*a) + sizeof(uint16_t))
		return EINVAL;
	switch (sockaddr_family(sa)) {
	case AF_INET:
		return e->sadb_ext_len == SIN_WORDS && a->sadb_address_prefixlen <= 32 ? 0 : EINVAL;
	case AF_INET6:
		return e->sadb_ext_len == SIN6_WORDS && a->sadb_address_prefixlen <= 128 ? 0
											 : EINVAL;
	default:
		return EINVAL;
	}
}

static int check_key(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_key *k = (const void *)e;

	(void)h;
	return k->sadb_key_bits <= (ext_bytes(e) - sizeof(*k)) * 8 ? 0 : EINVAL;
}

static int check_spirange(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_spirange *r = (const void *)e;

	if (r->sadb_spirange_min > r->sadb_spirange_max)
		return EINVAL;
	/* IPComp CPIs are 16 bits (RFC 3173 §3.3); af_key.c verify_spi_info. */
	if (h->sadb_msg_satype == SADB_X_SATYPE_IPCOMP && r->sadb_spirange_max > 0xffff)
		return EINVAL;
	return 0;
}

static int check_sa2(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_x_sa2 *s = (const void *)e;

	(void)h;
	return s->sadb_x_sa2_mode <= IPSEC_MODE_BEET ? 0 : EINVAL;
}

static int check_sens(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_sens *s = (const void *)e;
	size_t bitmaps = ((size_t)s->sadb_sens_sens_len + s->sadb_sens_integ_len) * 8;

	(void)h;
	return sizeof(*s) + bitmaps <= ext_bytes(e) ? 0 : EINVAL;
}

static int check_proposal(const struct sadb_ext *e, const struct sadb_msg *h)
{
	(void)h;
	return (ext_bytes(e) - sizeof(struct sadb_prop)) % sizeof(struct sadb_comb) ? EINVAL : 0;
}

static int check_sec_ctx(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_x_sec_ctx *c = (const void *)e;

	(void)h;
	return e->sadb_ext_len == WORDS(sizeof(*c) + c->sadb_x_ctx_len) ? 0 : EINVAL;
}

static int check_kmaddress(const struct sadb_ext *e, const struct sadb_msg *h)
{
	(void)h;
	return sockaddr_pair_family((const uint8_t *)e + sizeof(struct sadb_x_kmaddress),
				    ext_bytes(e) - sizeof(struct sadb_x_kmaddress))
		       ? 0
		       : EINVAL;
}

static int check_filter(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_x_filter *f = (const void *)e;

	(void)h;
	return f->sadb_x_filter_splen <= 128 && f->sadb_x_filter_dplen <= 128 ? 0 : EINVAL;
}

/*
 * One ipsecrequest of @len bytes (already within the policy and at least
 * its header). Its length is in bytes, unlike everything else in PF_KEY.
 * Tunnel-mode requests carry the endpoints; so does every request of a
 * MIGRATE (old and new pairs).
 */
static int check_request(const struct sadb_x_ipsecrequest *rq, size_t len, uint8_t msg_type)
{
	const uint8_t *addrs = (const uint8_t *)(rq + 1);

	switch (rq->sadb_x_ipsecrequest_proto) {
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_COMP:
		break;
	default:
		return EINVAL;
	}
	/* Linux rejects IPSEC_MODE_ANY in a template (parse_ipsecrequest). */
	if (rq->sadb_x_ipsecrequest_mode == IPSEC_MODE_ANY ||
	    rq->sadb_x_ipsecrequest_mode > IPSEC_MODE_BEET)
		return EINVAL;
	if (rq->sadb_x_ipsecrequest_level > IPSEC_LEVEL_UNIQUE)
		return EINVAL;
	if (rq->sadb_x_ipsecrequest_mode == IPSEC_MODE_TUNNEL || msg_type == SADB_X_MIGRATE)
		if (!sockaddr_pair_family(addrs, len - sizeof(*rq)))
			return EINVAL;
	return 0;
}

static int check_policy(const struct sadb_ext *e, const struct sadb_msg *h)
{
	const struct sadb_x_policy *pol = (const void *)e;
	const uint8_t *p = (const uint8_t *)(pol + 1);
	size_t left = ext_bytes(e) - sizeof(*pol);

	if (pol->sadb_x_policy_type > IPSEC_POLICY_BYPASS ||
	    pol->sadb_x_policy_dir >= IPSEC_DIR_MAX)
		return EINVAL;
	/* As af_key.c parse_ipsecrequests: a tail shorter than a request is padding. */
	while (left >= sizeof(struct sadb_x_ipsecrequest)) {
		const struct sadb_x_ipsecrequest *rq = (const void *)p;
		size_t len = rq->sadb_x_ipsecrequest_len;
		int err;

		if (len < sizeof(*rq) || len > left)
			return EINVAL;
		err = check_request(rq, len, h->sadb_msg_type);
		if (err)
			return err;
		p += len;
		left -= len;
	}
	return 0;
}

typedef int (*pfk_ext_check)(const struct sadb_ext *e, const struct sadb_msg *h);

/* af_key.c parse_exthdrs: run on every extension of every message. */
static const pfk_ext_check pfk_ext_generic[PFK_EXT_MAX + 1] = {
	[SADB_EXT_ADDRESS_SRC] = check_address,
	[SADB_EXT_ADDRESS_DST] = check_address,
	[SADB_EXT_ADDRESS_PROXY] = check_address,
	[SADB_X_EXT_NAT_T_OA] = check_address,
	[SADB_EXT_KEY_AUTH] = check_key,
	[SADB_EXT_KEY_ENCRYPT] = check_key,
	[SADB_X_EXT_SEC_CTX] = check_sec_ctx,
	[SADB_X_EXT_NEW_ADDRESS_SRC] = check_address,
	[SADB_X_EXT_NEW_ADDRESS_DST] = check_address,
};

/* Contents: only when the message type uses the extension (Linux's handlers check them there). */
static const pfk_ext_check pfk_ext_content[PFK_EXT_MAX + 1] = {
	[SADB_EXT_SPIRANGE] = check_spirange,	  [SADB_X_EXT_SA2] = check_sa2,
	[SADB_EXT_SENSITIVITY] = check_sens,	  [SADB_EXT_PROPOSAL] = check_proposal,
	[SADB_X_EXT_KMADDRESS] = check_kmaddress, [SADB_X_EXT_FILTER] = check_filter,
	[SADB_X_EXT_POLICY] = check_policy,
};

static int check_header(const struct sadb_msg *h, size_t len)
{
	/* Error codes as af_key.c pfkey_get_base_msg. */
	if (h->sadb_msg_version != PF_KEY_V2 || h->sadb_msg_reserved != 0 ||
	    h->sadb_msg_type == SADB_RESERVED || h->sadb_msg_type > SADB_MAX)
		return EINVAL;
	if ((size_t)h->sadb_msg_len * 8 != len)
		return EMSGSIZE;
	if (pfk_rules[h->sadb_msg_type].satype == SAT_UNKNOWN)
		return EOPNOTSUPP;
	return 0;
}

static int check_satype(const struct sadb_msg *h)
{
	switch (pfk_rules[h->sadb_msg_type].satype) {
	case SAT_REAL:
		return pfk_satype_proto(h->sadb_msg_satype) ? 0 : EINVAL;
	case SAT_ANY:
		return h->sadb_msg_satype == SADB_SATYPE_UNSPEC ||
				       pfk_satype_proto(h->sadb_msg_satype)
			       ? 0
			       : EINVAL;
	case SAT_LE_MAX:
		return h->sadb_msg_satype <= SADB_SATYPE_MAX ? 0 : EINVAL;
	default:
		return 0;
	}
}

/* Walk the extensions: lengths, types, duplicates, generic checks; keep the used ones. */
static int parse_exts(const uint8_t *p, size_t left, struct pfk_msg *m, uint32_t used,
		      uint32_t *seen)
{
	while (left > 0) {
		const struct sadb_ext *e = (const void *)p;
		size_t len;
		uint16_t type;
		int err;

		if (left < sizeof(*e))
			return EINVAL;
		len = ext_bytes(e);
		type = e->sadb_ext_type;
		if (len < 8 || len > left || type == SADB_EXT_RESERVED)
			return EINVAL;
		/* As Linux: unknown types are skipped (dpsec's own end at PFK_EXT_MAX). */
		if (type <= PFK_EXT_MAX) {
			if ((*seen & B(type)) || len < pfk_ext_min[type])
				return EINVAL;
			if (pfk_ext_generic[type]) {
				err = pfk_ext_generic[type](e, m->hdr);
				if (err)
					return err;
			}
			if ((used & B(type)) && pfk_ext_content[type]) {
				err = pfk_ext_content[type](e, m->hdr);
				if (err)
					return err;
			}
			if (used & B(type))
				m->ext[type] = e;
			*seen |= B(type);
		}
		p += len;
		left -= len;
	}
	return 0;
}

static uint16_t address_family(const struct sadb_ext *e)
{
	return sockaddr_family((const uint8_t *)e + sizeof(struct sadb_address));
}

int pfk_parse(const void *buf, size_t len, struct pfk_msg *m)
{
	const struct pfk_msg_rule *rule;
	uint32_t seen = 0;
	int err;

	memset(m, 0, sizeof(*m));
	if (len < sizeof(struct sadb_msg))
		return EMSGSIZE;
	if (len > PFK_MSG_MAX)
		return EMSGSIZE;
	m->hdr = buf;
	err = check_header(m->hdr, len);
	if (err)
		return err;
	rule = &pfk_rules[m->hdr->sadb_msg_type];
	err = check_satype(m->hdr);
	if (err)
		return err;
	err = parse_exts((const uint8_t *)buf + sizeof(struct sadb_msg),
			 len - sizeof(struct sadb_msg), m, rule->used, &seen);
	if (err)
		return err;
	if ((seen & rule->required) != rule->required)
		return EINVAL;
	/* af_key.c present_and_same_family, for every message that has both. */
	if (m->ext[SADB_EXT_ADDRESS_SRC] && m->ext[SADB_EXT_ADDRESS_DST] &&
	    address_family(m->ext[SADB_EXT_ADDRESS_SRC]) !=
		    address_family(m->ext[SADB_EXT_ADDRESS_DST]))
		return EINVAL;
	return 0;
}

uint8_t pfk_satype_proto(uint8_t satype)
{
	switch (satype) {
	case SADB_SATYPE_ESP:
		return DPS_PROTO_ESP;
	case SADB_SATYPE_AH:
		return DPS_PROTO_AH;
	case SADB_X_SATYPE_IPCOMP:
		return DPS_PROTO_IPCOMP;
	default:
		return 0;
	}
}

uint8_t pfk_proto_satype(uint8_t proto)
{
	switch (proto) {
	case DPS_PROTO_ESP:
		return SADB_SATYPE_ESP;
	case DPS_PROTO_AH:
		return SADB_SATYPE_AH;
	case DPS_PROTO_IPCOMP:
		return SADB_X_SATYPE_IPCOMP;
	default:
		return SADB_SATYPE_UNSPEC;
	}
}

int pfk_address(const struct sadb_ext *e, struct dps_addr *a, uint8_t *prefixlen, uint8_t *proto,
		uint16_t *port)
{
	const struct sadb_address *sa = (const void *)e;
	uint16_t p;

	if (!e || check_address(e, NULL))
		return EINVAL;
	sockaddr_get((const uint8_t *)(sa + 1), a, &p);
	if (prefixlen)
		*prefixlen = sa->sadb_address_prefixlen;
	if (proto)
		*proto = sa->sadb_address_proto;
	if (port)
		*port = p;
	return 0;
}

/* ---- algorithms ---- */

struct pfk_alg_map {
	uint8_t sadb, dps;
	uint16_t bits[3]; /* accepted key sizes, 0 = end (NULL: no key) */
};

/* Salted modes carry 32 bits of salt/nonce after the AES key (RFC 3686 §5.1, 4106 §8.1, 4543 §3.2).
 */
static const struct pfk_alg_map pfk_ealgs[] = {
	{SADB_EALG_NULL, DPS_ENC_NULL, {0}},
	{SADB_X_EALG_AESCBC, DPS_ENC_AES_CBC, {128, 192, 256}},
	{SADB_X_EALG_AESCTR, DPS_ENC_AES_CTR, {160, 224, 288}},
	{SADB_X_EALG_AES_GCM_ICV16, DPS_ENC_AES_GCM, {160, 224, 288}},
	{SADB_X_EALG_NULL_AES_GMAC, DPS_ENC_AES_GMAC, {160, 224, 288}},
	/* dpsec's id (pfkeyv2_ext.h); 256-bit key + 32-bit salt (RFC 7634 §2). */
	{SADB_X_EALG_CHACHA20POLY1305, DPS_ENC_CHACHA20_POLY1305, {288}},
};

static const struct pfk_alg_map pfk_aalgs[] = {
	{SADB_AALG_NONE, DPS_AUTH_NONE, {0}},
	{SADB_AALG_SHA1HMAC, DPS_AUTH_HMAC_SHA1_96, {160}},
	{SADB_X_AALG_SHA2_256HMAC, DPS_AUTH_HMAC_SHA256_128, {256}},
	{SADB_X_AALG_SHA2_384HMAC, DPS_AUTH_HMAC_SHA384_192, {384}},
	{SADB_X_AALG_SHA2_512HMAC, DPS_AUTH_HMAC_SHA512_256, {512}},
};

static int alg_lookup(const struct pfk_alg_map *map, size_t n, uint8_t id, unsigned int bits,
		      uint8_t *alg, uint8_t *key_len)
{
	for (size_t i = 0; i < n; i++) {
		if (map[i].sadb != id)
			continue;
		for (size_t k = 0; k < 3; k++) {
			if (map[i].bits[k] == bits && (bits || k == 0)) {
				*alg = map[i].dps;
				*key_len = (uint8_t)(bits / 8);
				return 0;
			}
		}
		return ENOSYS; /* a key size dpsec does not run */
	}
	return ENOSYS;
}

int pfk_enc_alg(uint8_t sadb_ealg, unsigned int key_bits, uint8_t *alg, uint8_t *key_len)
{
	return alg_lookup(pfk_ealgs, sizeof(pfk_ealgs) / sizeof(pfk_ealgs[0]), sadb_ealg, key_bits,
			  alg, key_len);
}

int pfk_auth_alg(uint8_t sadb_aalg, unsigned int key_bits, uint8_t *alg, uint8_t *key_len)
{
	return alg_lookup(pfk_aalgs, sizeof(pfk_aalgs) / sizeof(pfk_aalgs[0]), sadb_aalg, key_bits,
			  alg, key_len);
}

uint8_t pfk_sadb_ealg(uint8_t dps_enc_alg)
{
	for (size_t i = 0; i < sizeof(pfk_ealgs) / sizeof(pfk_ealgs[0]); i++)
		if (pfk_ealgs[i].dps == dps_enc_alg)
			return pfk_ealgs[i].sadb;
	return SADB_EALG_NONE; /* no PF_KEY id: as Linux, report 0 */
}

uint8_t pfk_sadb_aalg(uint8_t dps_auth_alg)
{
	for (size_t i = 0; i < sizeof(pfk_aalgs) / sizeof(pfk_aalgs[0]); i++)
		if (pfk_aalgs[i].dps == dps_auth_alg)
			return pfk_aalgs[i].sadb;
	return SADB_AALG_NONE;
}

/* ---- SA translation ---- */

static const struct sadb_key *key_ext(const struct pfk_msg *m, uint16_t type)
{
	return (const struct sadb_key *)m->ext[type];
}

static unsigned int key_bits(const struct sadb_key *k)
{
	return k ? k->sadb_key_bits : 0;
}

static void key_copy(const struct sadb_key *k, uint8_t *dst, uint8_t len)
{
	if (k && len)
		memcpy(dst, k + 1, len);
}

/*
 * ESP transforms: the combinations dpsec runs. AEAD/GMAC carry their own
 * ICV; NULL without integrity is forbidden (RFC 4303 §3.2.1 / §5);
 * encryption without integrity is legal but dpsec does not implement it.
 */
static int sa_esp_algs(const struct pfk_msg *m, const struct sadb_sa *s, struct dps_sa *sa)
{
	const struct sadb_key *ke = key_ext(m, SADB_EXT_KEY_ENCRYPT);
	const struct sadb_key *ka = key_ext(m, SADB_EXT_KEY_AUTH);
	bool combined;
	int err;

	/* Linux needs KEY_ENCRYPT for ESP; dpsec lets NULL go without (its GET reply omits it). */
	if (s->sadb_sa_encrypt == SADB_EALG_NONE || (!ke && s->sadb_sa_encrypt != SADB_EALG_NULL))
		return EINVAL;
	/* A key without an algorithm, or an algorithm without a key. */
	if (s->sadb_sa_auth == SADB_AALG_NONE ? key_bits(ka) != 0 : !ka)
		return EINVAL;
	err = pfk_enc_alg(s->sadb_sa_encrypt, key_bits(ke), &sa->enc_alg, &sa->enc_key_len);
	if (!err)
		err = pfk_auth_alg(s->sadb_sa_auth, key_bits(ka), &sa->auth_alg, &sa->auth_key_len);
	if (err)
		return err;
	combined = sa->enc_alg == DPS_ENC_AES_GCM || sa->enc_alg == DPS_ENC_AES_GMAC ||
		   sa->enc_alg == DPS_ENC_CHACHA20_POLY1305;
	if (combined && sa->auth_alg != DPS_AUTH_NONE)
		return EINVAL;
	if (!combined && sa->auth_alg == DPS_AUTH_NONE)
		return sa->enc_alg == DPS_ENC_NULL ? EINVAL : ENOSYS;
	key_copy(ke, sa->enc_key, sa->enc_key_len);
	key_copy(ka, sa->auth_key, sa->auth_key_len);
	return 0;
}

static int sa_algs(const struct pfk_msg *m, const struct sadb_sa *s, struct dps_sa *sa)
{
	const struct sadb_key *ka = key_ext(m, SADB_EXT_KEY_AUTH);
	int err;

	switch (sa->proto) {
	case DPS_PROTO_ESP:
		return sa_esp_algs(m, s, sa);
	case DPS_PROTO_AH:
		if (s->sadb_sa_encrypt != SADB_EALG_NONE || s->sadb_sa_auth == SADB_AALG_NONE ||
		    !ka)
			return EINVAL;
		err = pfk_auth_alg(s->sadb_sa_auth, key_bits(ka), &sa->auth_alg, &sa->auth_key_len);
		if (err)
			return err;
		key_copy(ka, sa->auth_key, sa->auth_key_len);
		return 0;
	default:
		/* IPComp: sadb_sa_encrypt is the compression algorithm (KAME overloading). */
		if (s->sadb_sa_encrypt != SADB_X_CALG_DEFLATE)
			return ENOSYS;
		return 0;
	}
}

static void lifetime_get(const struct sadb_ext *e, struct dps_lifetime *l)
{
	const struct sadb_lifetime *lt = (const void *)e;

	l->packets = lt->sadb_lifetime_allocations;
	l->bytes = lt->sadb_lifetime_bytes;
	l->add_s = lt->sadb_lifetime_addtime;
	l->use_s = lt->sadb_lifetime_usetime;
}

static int sa_mode(const struct pfk_msg *m, struct dps_sa *sa)
{
	const struct sadb_x_sa2 *sa2 = (const void *)m->ext[SADB_X_EXT_SA2];

	if (!sa2)
		return 0; /* transport, as Linux without SA2 */
	sa->reqid = sa2->sadb_x_sa2_reqid;
	switch (sa2->sadb_x_sa2_mode) {
	case IPSEC_MODE_ANY: /* af_key.c pfkey_mode_to_xfrm: ANY is transport */
	case IPSEC_MODE_TRANSPORT:
		sa->mode = DPS_MODE_TRANSPORT;
		return 0;
	case IPSEC_MODE_TUNNEL:
		sa->mode = DPS_MODE_TUNNEL;
		return 0;
	case IPSEC_MODE_BEET:
		return ENOSYS;
	default:
		return EINVAL;
	}
}

/* RFC 3948 UDP encapsulation. dpsec: Linux accepts missing ports (0); a 0 port is unusable. */
static int sa_natt(const struct pfk_msg *m, struct dps_sa *sa)
{
	const struct sadb_x_nat_t_type *t = (const void *)m->ext[SADB_X_EXT_NAT_T_TYPE];
	const struct sadb_x_nat_t_port *sp = (const void *)m->ext[SADB_X_EXT_NAT_T_SPORT];
	const struct sadb_x_nat_t_port *dp = (const void *)m->ext[SADB_X_EXT_NAT_T_DPORT];

	if (!t)
		return 0;
	if (t->sadb_x_nat_t_type_type == UDP_ENCAP_ESPINUDP_NON_IKE)
		return ENOSYS;
	if (t->sadb_x_nat_t_type_type != UDP_ENCAP_ESPINUDP || sa->proto != DPS_PROTO_ESP || !sp ||
	    !dp || !sp->sadb_x_nat_t_port_port || !dp->sadb_x_nat_t_port_port)
		return EINVAL;
	sa->udp_encap = true;
	sa->encap_sport = ntohs(sp->sadb_x_nat_t_port_port);
	sa->encap_dport = ntohs(dp->sadb_x_nat_t_port_port);
	return 0;
}

int pfk_sa_from_msg(const struct pfk_msg *m, struct dps_sa *sa)
{
	const struct sadb_sa *s = (const void *)m->ext[SADB_EXT_SA];
	int err;

	memset(sa, 0, sizeof(*sa));
	sa->proto = pfk_satype_proto(m->hdr->sadb_msg_satype);
	if (!s || !sa->proto ||
	    pfk_address(m->ext[SADB_EXT_ADDRESS_SRC], &sa->src, NULL, NULL, NULL) ||
	    pfk_address(m->ext[SADB_EXT_ADDRESS_DST], &sa->dst, NULL, NULL, NULL) ||
	    sa->src.family != sa->dst.family)
		return EINVAL;
	/* af_key.c pfkey_msg2xfrm_state: both limits or neither. */
	if (!m->ext[SADB_EXT_LIFETIME_HARD] != !m->ext[SADB_EXT_LIFETIME_SOFT])
		return EINVAL;
	sa->spi = ntohl(s->sadb_sa_spi);
	/*
	 * Packets (Linux clamps to its 32-bit bitmap; dpsec's window is wider).
	 * sadb_sa_state is ignored as in Linux: setkey sends LARVAL in ADD.
	 */
	sa->replay_window = s->sadb_sa_replay;
	/* dpsec's extensions (pfkeyv2_ext.h): a window beyond 8 bits, 64-bit sequence numbers. */
	if (m->ext[SADB_X_EXT_SA_REPLAY]) {
		const struct sadb_x_sa_replay *r = (const void *)m->ext[SADB_X_EXT_SA_REPLAY];

		if (r->sadb_x_sa_replay_replay > PFK_REPLAY_MAX)
			return EINVAL;
		sa->replay_window = r->sadb_x_sa_replay_replay;
	}
	sa->esn = (s->sadb_sa_flags & SADB_X_SAFLAGS_ESN) != 0;
	err = sa_mode(m, sa);
	if (!err)
		err = sa_algs(m, s, sa);
	if (!err)
		err = sa_natt(m, sa);
	if (err)
		return err;
	if (m->ext[SADB_EXT_LIFETIME_HARD]) {
		lifetime_get(m->ext[SADB_EXT_LIFETIME_HARD], &sa->hard);
		lifetime_get(m->ext[SADB_EXT_LIFETIME_SOFT], &sa->soft);
	}
	return 0;
}

int pfk_new_addresses(const struct pfk_msg *m, struct dps_addr *src, struct dps_addr *dst)
{
	struct dps_addr a;

	if (m->ext[SADB_X_EXT_NEW_ADDRESS_SRC]) {
		if (pfk_address(m->ext[SADB_X_EXT_NEW_ADDRESS_SRC], &a, NULL, NULL, NULL))
			return EINVAL;
		*src = a;
	}
	if (m->ext[SADB_X_EXT_NEW_ADDRESS_DST]) {
		if (pfk_address(m->ext[SADB_X_EXT_NEW_ADDRESS_DST], &a, NULL, NULL, NULL))
			return EINVAL;
		*dst = a;
	}
	return src->family == dst->family ? 0 : EINVAL;
}

/* ---- policy translation ---- */

static bool proto_is_icmp(uint8_t proto)
{
	return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
}

/* One selector port (or ICMP type/code): 0 is "any" in PF_KEY, as in xfrm's port masks. */
static void sel_range(uint16_t port, bool icmp, uint16_t *lo, uint16_t *hi)
{
	*lo = port;
	*hi = port;
	if (!port)
		*hi = icmp ? 255 : 65535;
}

static int policy_selector(const struct pfk_msg *m, struct dps_selector *sel)
{
	uint8_t sproto, dproto;
	uint16_t sport, dport;
	bool icmp;

	if (pfk_address(m->ext[SADB_EXT_ADDRESS_SRC], &sel->src.addr, &sel->src.len, &sproto,
			&sport) ||
	    pfk_address(m->ext[SADB_EXT_ADDRESS_DST], &sel->dst.addr, &sel->dst.len, &dproto,
			&dport) ||
	    sel->src.addr.family != sel->dst.addr.family)
		return EINVAL;
	/* Linux takes the protocol from DST (pfkey_spdadd sets it twice); 0 is "any" to xfrm. */
	(void)sproto;
	sel->proto = dproto ? dproto : IPSEC_PROTO_ANY;
	icmp = proto_is_icmp(sel->proto);
	if (icmp && (sport > 255 || dport > 255))
		return EINVAL;
	sel_range(sport, icmp, &sel->sport_lo, &sel->sport_hi);
	sel_range(dport, icmp, &sel->dport_lo, &sel->dport_hi);
	return 0;
}

static int policy_request(const struct sadb_x_ipsecrequest *rq, struct dps_ipsec_req *r)
{
	const uint8_t *addrs = (const uint8_t *)(rq + 1);
	uint16_t port;

	memset(r, 0, sizeof(*r));
	r->proto = (uint8_t)rq->sadb_x_ipsecrequest_proto;
	r->level = rq->sadb_x_ipsecrequest_level; /* same numbering (enum dps_level) */
	r->reqid = rq->sadb_x_ipsecrequest_reqid;
	switch (rq->sadb_x_ipsecrequest_mode) {
	case IPSEC_MODE_TRANSPORT:
		r->mode = DPS_MODE_TRANSPORT;
		return 0;
	case IPSEC_MODE_TUNNEL:
		r->mode = DPS_MODE_TUNNEL;
		sockaddr_get(addrs, &r->tun_src, &port);
		sockaddr_get(addrs + sockaddr_len(r->tun_src.family), &r->tun_dst, &port);
		return 0;
	default:
		return EINVAL; /* BEET: not in dpsec */
	}
}

/* Messages that install a policy; charon's SPDDELETE and ACQUIRE carry type IPSEC without requests.
 */
static bool installs_policy(const struct sadb_msg *h)
{
	return h->sadb_msg_type == SADB_X_SPDADD || h->sadb_msg_type == SADB_X_SPDUPDATE ||
	       h->sadb_msg_type == SADB_X_SPDSETIDX;
}

static int policy_requests(const struct sadb_x_policy *pol, struct dps_policy *p, bool install)
{
	const uint8_t *q = (const uint8_t *)(pol + 1);
	size_t left = (size_t)pol->sadb_x_policy_len * 8 - sizeof(*pol);

	/* Lengths were checked by pfk_parse (check_policy). */
	while (left >= sizeof(struct sadb_x_ipsecrequest)) {
		const struct sadb_x_ipsecrequest *rq = (const void *)q;

		if (p->n_reqs == DPS_MAX_IPSEC_REQS || policy_request(rq, &p->reqs[p->n_reqs]))
			return EINVAL;
		p->n_reqs++;
		q += rq->sadb_x_ipsecrequest_len;
		left -= rq->sadb_x_ipsecrequest_len;
	}
	return p->n_reqs || !install ? 0 : EINVAL;
}

/* KAME/Linux IPSEC_DIR_* as the store's direction. */
static int policy_dir(uint8_t sadb_dir, uint8_t *dir)
{
	switch (sadb_dir) {
	case IPSEC_DIR_INBOUND:
		*dir = DPS_DIR_IN;
		return 0;
	case IPSEC_DIR_OUTBOUND:
		*dir = DPS_DIR_OUT;
		return 0;
	case IPSEC_DIR_FWD:
		*dir = DPS_DIR_FWD;
		return 0;
	default:
		return EINVAL;
	}
}

int pfk_policy_from_msg(const struct pfk_msg *m, struct dps_policy *p)
{
	const struct sadb_x_policy *pol = (const void *)m->ext[SADB_X_EXT_POLICY];

	memset(p, 0, sizeof(*p));
	if (!pol)
		return EINVAL;
	if (policy_dir(pol->sadb_x_policy_dir, &p->dir))
		return EINVAL;
	p->id = pol->sadb_x_policy_id;
	p->priority = pol->sadb_x_policy_priority;
	if (policy_selector(m, &p->sel))
		return EINVAL;
	switch (pol->sadb_x_policy_type) {
	case IPSEC_POLICY_DISCARD:
		p->action = DPS_ACTION_DISCARD;
		return 0;
	case IPSEC_POLICY_NONE:
		p->action = DPS_ACTION_BYPASS;
		return 0; /* requests of a non-IPsec policy are ignored, as Linux */
	case IPSEC_POLICY_IPSEC:
		p->action = DPS_ACTION_PROTECT;
		return policy_requests(pol, p, installs_policy(m->hdr));
	default:
		return EINVAL; /* ENTRUST, BYPASS: socket policies only */
	}
}

int pfk_policy_key(const struct pfk_msg *m, uint8_t *dir, struct dps_selector *sel)
{
	const struct sadb_x_policy *pol = (const void *)m->ext[SADB_X_EXT_POLICY];

	/* SPDDELETE names a policy by direction and selector; its type and requests do not matter
	 */
	if (pol == NULL || m->ext[SADB_EXT_ADDRESS_SRC] == NULL ||
	    m->ext[SADB_EXT_ADDRESS_DST] == NULL)
		return EINVAL;
	if (policy_dir(pol->sadb_x_policy_dir, dir))
		return EINVAL;
	return policy_selector(m, sel) ? EINVAL : 0;
}
