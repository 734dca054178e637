/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PF_KEY v2 codec, output side: the messages the "kernel" sends, with the
 * extension sets and order of Linux af_key.c (pfkey_xfrm_state2msg,
 * pfkey_xfrm_policy2msg, pfkey_send_acquire, key_notify_sa_expire), so that
 * strongSwan's kernel-pfkey finds what it reads without NULL checks. All
 * lengths are in 8-byte words, padding is zero, SPIs and ports are in
 * network order, and no extension type above PFK_EXT_SEND_MAX is emitted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ipsec.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <string.h>

#include "pfkey_emul/codec.h"

/* Linux's proposal lifetimes (af_key.c dump_esp_combs), seconds. */
#define COMB_HARD_ADD (24 * 60 * 60)
#define COMB_SOFT_ADD (20 * 60 * 60)
#define COMB_HARD_USE (8 * 60 * 60)
#define COMB_SOFT_USE (7 * 60 * 60)

void pfk_out_begin(struct pfk_out *o, void *buf, size_t cap, const struct sadb_msg *hdr)
{
	o->buf = buf;
	o->cap = cap > PFK_MSG_MAX ? PFK_MSG_MAX : cap;
	o->len = 0;
	o->err = 0;
	if (o->cap < sizeof(*hdr)) {
		o->err = EMSGSIZE;
		return;
	}
	memcpy(o->buf, hdr, sizeof(*hdr));
	o->len = sizeof(*hdr);
}

/* @size zeroed bytes (a multiple of 8) at the end of the message, or NULL. */
static void *out_put(struct pfk_out *o, size_t size)
{
	void *p;

	if (o->err)
		return NULL;
	if (size > o->cap - o->len) {
		o->err = EMSGSIZE;
		return NULL;
	}
	p = o->buf + o->len;
	memset(p, 0, size);
	o->len += size;
	return p;
}

/* An extension of @size bytes (rounded up to words) with its header filled in. */
static void *out_ext(struct pfk_out *o, uint16_t type, size_t size)
{
	struct sadb_ext *e;

	size = (size + 7) & ~(size_t)7;
	e = out_put(o, size);
	if (e) {
		e->sadb_ext_len = (uint16_t)(size / 8);
		e->sadb_ext_type = type;
	}
	return e;
}

long pfk_out_end(struct pfk_out *o)
{
	struct sadb_msg *h = (struct sadb_msg *)o->buf;

	if (o->err)
		return -o->err;
	h->sadb_msg_len = (uint16_t)(o->len / 8);
	return (long)o->len;
}

static size_t sockaddr_size(uint8_t family)
{
	return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static uint8_t full_prefix(uint8_t family)
{
	return family == AF_INET6 ? 128 : 32;
}

/* A sockaddr_in/in6 (port in host order) at @p, which is zeroed. */
static void sockaddr_put(uint8_t *p, const struct dps_addr *a, uint16_t port)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;

	if (a->family == AF_INET6) {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		sin6.sin6_addr = a->v6;
		memcpy(p, &sin6, sizeof(sin6));
	} else {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		sin.sin_addr = a->v4;
		memcpy(p, &sin, sizeof(sin));
	}
}

void pfk_out_address(struct pfk_out *o, uint16_t type, const struct dps_addr *a, uint8_t prefixlen,
		     uint8_t proto, uint16_t port)
{
	struct sadb_address *ad;

	if (a->family != AF_INET && a->family != AF_INET6) {
		if (!o->err)
			o->err = EINVAL;
		return;
	}
	ad = out_ext(o, type, sizeof(*ad) + sockaddr_size(a->family));
	if (!ad)
		return;
	ad->sadb_address_proto = proto;
	ad->sadb_address_prefixlen = prefixlen;
	sockaddr_put((uint8_t *)(ad + 1), a, port);
}

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void pfk_out_lifetime(struct pfk_out *o, uint16_t type, const struct dps_lifetime *l)
{
	struct sadb_lifetime *lt = out_ext(o, type, sizeof(*lt));

	if (!lt)
		return;
	lt->sadb_lifetime_allocations = clamp32(l->packets);
	lt->sadb_lifetime_bytes = l->bytes;
	lt->sadb_lifetime_addtime = l->add_s;
	lt->sadb_lifetime_usetime = l->use_s;
}

/* ---- SAs ---- */

static void out_sa(struct pfk_out *o, const struct dps_sa *sa, uint8_t state)
{
	struct sadb_sa *s = out_ext(o, SADB_EXT_SA, sizeof(*s));

	if (!s)
		return;
	s->sadb_sa_spi = htonl(sa->spi);
	s->sadb_sa_replay = sa->replay_window > 255 ? 255 : (uint8_t)sa->replay_window;
	if (sa->esn) /* dpsec's flag (pfkeyv2_ext.h): charon's UPDATE copies it back */
		s->sadb_sa_flags |= SADB_X_SAFLAGS_ESN;
	s->sadb_sa_state = state;
	s->sadb_sa_auth = pfk_sadb_aalg(sa->auth_alg);
	/* KAME overloads sadb_sa_encrypt with the compression algorithm; AH has none. */
	if (sa->proto == DPS_PROTO_IPCOMP)
		s->sadb_sa_encrypt = SADB_X_CALG_DEFLATE;
	else if (sa->proto == DPS_PROTO_ESP)
		s->sadb_sa_encrypt = pfk_sadb_ealg(sa->enc_alg);
}

/* SA endpoints: proto 0, full prefix, no port (af_key.c __pfkey_xfrm_state2msg). */
static void out_sa_addresses(struct pfk_out *o, const struct dps_sa *sa)
{
	pfk_out_address(o, SADB_EXT_ADDRESS_SRC, &sa->src, full_prefix(sa->src.family), 0, 0);
	pfk_out_address(o, SADB_EXT_ADDRESS_DST, &sa->dst, full_prefix(sa->dst.family), 0, 0);
}

static void out_sa2_natt(struct pfk_out *o, const struct dps_sa *sa)
{
	struct sadb_x_nat_t_port *port;
	struct sadb_x_nat_t_type *type;
	struct sadb_x_sa2 *sa2;

	sa2 = out_ext(o, SADB_X_EXT_SA2, sizeof(*sa2));
	if (sa2) {
		sa2->sadb_x_sa2_mode =
			sa->mode == DPS_MODE_TUNNEL ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT;
		sa2->sadb_x_sa2_reqid = sa->reqid;
	}
	if (!sa->udp_encap)
		return;
	type = out_ext(o, SADB_X_EXT_NAT_T_TYPE, sizeof(*type));
	if (type)
		type->sadb_x_nat_t_type_type = UDP_ENCAP_ESPINUDP;
	port = out_ext(o, SADB_X_EXT_NAT_T_SPORT, sizeof(*port));
	if (port)
		port->sadb_x_nat_t_port_port = htons(sa->encap_sport);
	port = out_ext(o, SADB_X_EXT_NAT_T_DPORT, sizeof(*port));
	if (port)
		port->sadb_x_nat_t_port_port = htons(sa->encap_dport);
}

void pfk_out_sa_ids(struct pfk_out *o, const struct dps_sa *sa, uint8_t state)
{
	out_sa(o, sa, state);
	out_sa_addresses(o, sa);
	out_sa2_natt(o, sa);
}

static void out_current(struct pfk_out *o, const struct pfk_sa_state *st)
{
	struct dps_lifetime cur = {0};

	if (st) {
		cur.packets = st->packets;
		cur.bytes = st->bytes;
		cur.add_s = st->add_time;
		cur.use_s = st->use_time;
	}
	pfk_out_lifetime(o, SADB_EXT_LIFETIME_CURRENT, &cur);
}

void pfk_out_lifetimes(struct pfk_out *o, const struct dps_sa *sa, const struct pfk_sa_state *st,
		       bool limits)
{
	/* Linux sends HARD and SOFT even when unlimited (all zero); charon copies them in UPDATE.
	 */
	if (limits) {
		pfk_out_lifetime(o, SADB_EXT_LIFETIME_HARD, &sa->hard);
		pfk_out_lifetime(o, SADB_EXT_LIFETIME_SOFT, &sa->soft);
	}
	out_current(o, st);
}

static void out_key(struct pfk_out *o, uint16_t type, const uint8_t *key, uint8_t len)
{
	struct sadb_key *k;

	if (!len)
		return; /* Linux omits zero-length keys (NULL encryption) */
	k = out_ext(o, type, sizeof(*k) + len);
	if (!k)
		return;
	k->sadb_key_bits = (uint16_t)(len * 8);
	memcpy(k + 1, key, len);
}

void pfk_out_keys(struct pfk_out *o, const struct dps_sa *sa)
{
	uint8_t alen = sa->auth_key_len > DPS_MAX_KEY_LEN ? DPS_MAX_KEY_LEN : sa->auth_key_len;
	uint8_t elen = sa->enc_key_len > DPS_MAX_KEY_LEN ? DPS_MAX_KEY_LEN : sa->enc_key_len;

	if (sa->auth_alg != DPS_AUTH_NONE)
		out_key(o, SADB_EXT_KEY_AUTH, sa->auth_key, alen);
	out_key(o, SADB_EXT_KEY_ENCRYPT, sa->enc_key, elen);
}

void pfk_out_larval(struct pfk_out *o, uint32_t spi)
{
	struct sadb_sa *s = out_ext(o, SADB_EXT_SA, sizeof(*s));

	if (s) {
		s->sadb_sa_spi = htonl(spi);
		s->sadb_sa_state = SADB_SASTATE_LARVAL;
	}
}

static void reply_header(struct sadb_msg *h, const struct sadb_msg *req, uint8_t satype)
{
	*h = *req;
	h->sadb_msg_version = PF_KEY_V2;
	h->sadb_msg_errno = 0;
	h->sadb_msg_satype = satype;
	h->sadb_msg_len = 0;
	h->sadb_msg_reserved = 0;
}

long pfk_build_sa(void *buf, size_t cap, const struct sadb_msg *hdr, const struct dps_sa *sa,
		  const struct pfk_sa_state *st, bool keys)
{
	struct sadb_msg h;
	struct pfk_out o;

	reply_header(&h, hdr, pfk_proto_satype(sa->proto));
	pfk_out_begin(&o, buf, cap, &h);
	/* Linux order: SA, HARD, SOFT, CURRENT, SRC, DST, keys, SA2, NAT-T. */
	out_sa(&o, sa, st ? st->state : SADB_SASTATE_MATURE);
	pfk_out_lifetimes(&o, sa, st, true);
	out_sa_addresses(&o, sa);
	if (keys)
		pfk_out_keys(&o, sa);
	out_sa2_natt(&o, sa);
	return pfk_out_end(&o);
}

long pfk_build_expire(void *buf, size_t cap, uint32_t seq, const struct dps_sa *sa,
		      const struct pfk_sa_state *st, bool hard)
{
	struct sadb_msg h = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = SADB_EXPIRE,
		.sadb_msg_satype = pfk_proto_satype(sa->proto),
		.sadb_msg_seq = seq,
	};
	struct pfk_out o;

	pfk_out_begin(&o, buf, cap, &h);
	/* A hard-expired xfrm state is reported DEAD, a soft-expired one DYING. */
	out_sa(&o, sa, hard ? SADB_SASTATE_DEAD : SADB_SASTATE_DYING);
	if (hard)
		pfk_out_lifetime(&o, SADB_EXT_LIFETIME_HARD, &sa->hard);
	else
		pfk_out_lifetime(&o, SADB_EXT_LIFETIME_SOFT, &sa->soft);
	out_current(&o, st);
	out_sa_addresses(&o, sa);
	out_sa2_natt(&o, sa);
	return pfk_out_end(&o);
}

long pfk_build_new_mapping(void *buf, size_t cap, uint32_t seq, const struct dps_sa *sa,
			   const struct dps_addr *new_src, uint16_t new_sport)
{
	struct sadb_msg h = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = SADB_X_NAT_T_NEW_MAPPING,
		.sadb_msg_satype = SADB_SATYPE_ESP,
		.sadb_msg_seq = seq,
	};
	struct sadb_x_nat_t_port *port;
	struct sadb_x_sa2 *sa2;
	struct pfk_out o;

	pfk_out_begin(&o, buf, cap, &h);
	out_sa(&o, sa, SADB_SASTATE_MATURE);
	/* dpsec: Linux sends no SA2; charon's kernel-pfkey drops the message without it. */
	sa2 = out_ext(&o, SADB_X_EXT_SA2, sizeof(*sa2));
	if (sa2) {
		sa2->sadb_x_sa2_mode =
			sa->mode == DPS_MODE_TUNNEL ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT;
		sa2->sadb_x_sa2_reqid = sa->reqid;
	}
	/* af_key.c pfkey_send_new_mapping: old source and its port, new source and its port. */
	pfk_out_address(&o, SADB_EXT_ADDRESS_SRC, &sa->src, full_prefix(sa->src.family), 0, 0);
	port = out_ext(&o, SADB_X_EXT_NAT_T_SPORT, sizeof(*port));
	if (port)
		port->sadb_x_nat_t_port_port = htons(sa->encap_sport);
	pfk_out_address(&o, SADB_EXT_ADDRESS_DST, new_src, full_prefix(new_src->family), 0, 0);
	port = out_ext(&o, SADB_X_EXT_NAT_T_DPORT, sizeof(*port));
	if (port)
		port->sadb_x_nat_t_port_port = htons(new_sport);
	return pfk_out_end(&o);
}

/* ---- policies ---- */

static uint8_t policy_type(uint8_t action)
{
	switch (action) {
	case DPS_ACTION_BYPASS:
		return IPSEC_POLICY_NONE;
	case DPS_ACTION_PROTECT:
		return IPSEC_POLICY_IPSEC;
	default:
		return IPSEC_POLICY_DISCARD;
	}
}

static uint8_t policy_dir(uint8_t dir)
{
	switch (dir) {
	case DPS_DIR_IN:
		return IPSEC_DIR_INBOUND;
	case DPS_DIR_OUT:
		return IPSEC_DIR_OUTBOUND;
	default:
		return IPSEC_DIR_FWD;
	}
}

static size_t request_size(const struct dps_ipsec_req *r)
{
	if (r->mode != DPS_MODE_TUNNEL)
		return sizeof(struct sadb_x_ipsecrequest);
	return sizeof(struct sadb_x_ipsecrequest) + 2 * sockaddr_size(r->tun_src.family);
}

static void out_request(uint8_t *p, const struct dps_ipsec_req *r)
{
	struct sadb_x_ipsecrequest *rq = (void *)p;
	size_t sl = sockaddr_size(r->tun_src.family);

	rq->sadb_x_ipsecrequest_len = (uint16_t)request_size(r); /* bytes */
	rq->sadb_x_ipsecrequest_proto = r->proto;
	rq->sadb_x_ipsecrequest_mode =
		r->mode == DPS_MODE_TUNNEL ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT;
	rq->sadb_x_ipsecrequest_level = r->level;
	rq->sadb_x_ipsecrequest_reqid = r->reqid;
	if (r->mode == DPS_MODE_TUNNEL) {
		sockaddr_put(p + sizeof(*rq), &r->tun_src, 0);
		sockaddr_put(p + sizeof(*rq) + sl, &r->tun_dst, 0);
	}
}

static void out_x_policy(struct pfk_out *o, const struct dps_policy *p, uint8_t type, uint8_t dir,
			 unsigned int n_reqs)
{
	struct sadb_x_policy *pol;
	size_t size = sizeof(*pol);
	uint8_t *q;

	for (unsigned int i = 0; i < n_reqs; i++) {
		const struct dps_ipsec_req *r = &p->reqs[i];

		if (r->mode == DPS_MODE_TUNNEL &&
		    (r->tun_src.family != r->tun_dst.family ||
		     (r->tun_src.family != AF_INET && r->tun_src.family != AF_INET6))) {
			if (!o->err)
				o->err = EINVAL;
			return;
		}
		size += request_size(r);
	}
	pol = out_ext(o, SADB_X_EXT_POLICY, size);
	if (!pol)
		return;
	pol->sadb_x_policy_type = type;
	pol->sadb_x_policy_dir = dir;
	pol->sadb_x_policy_id = p->id;
	pol->sadb_x_policy_priority = p->priority;
	q = (uint8_t *)(pol + 1);
	for (unsigned int i = 0; i < n_reqs; i++) {
		out_request(q, &p->reqs[i]);
		q += request_size(&p->reqs[i]);
	}
}

/*
 * A selector port range as PF_KEY can say it: one value, or 0 for "any".
 * Other ranges (YAML can set them) have no PF_KEY form and read as "any".
 */
static uint16_t sel_port(uint16_t lo, uint16_t hi)
{
	return lo == hi ? lo : 0;
}

void pfk_out_policy(struct pfk_out *o, const struct dps_policy *p, uint64_t add_time,
		    uint64_t use_time)
{
	const struct dps_selector *s = &p->sel;
	struct dps_lifetime none = {0}, cur = {.add_s = add_time, .use_s = use_time};
	unsigned int n = p->n_reqs > DPS_MAX_IPSEC_REQS ? DPS_MAX_IPSEC_REQS : p->n_reqs;

	/* Linux order: SRC, DST, HARD, SOFT, CURRENT, X_POLICY; policies have no limits here. */
	pfk_out_address(o, SADB_EXT_ADDRESS_SRC, &s->src.addr, s->src.len, s->proto,
			sel_port(s->sport_lo, s->sport_hi));
	pfk_out_address(o, SADB_EXT_ADDRESS_DST, &s->dst.addr, s->dst.len, s->proto,
			sel_port(s->dport_lo, s->dport_hi));
	pfk_out_lifetime(o, SADB_EXT_LIFETIME_HARD, &none);
	pfk_out_lifetime(o, SADB_EXT_LIFETIME_SOFT, &none);
	pfk_out_lifetime(o, SADB_EXT_LIFETIME_CURRENT, &cur);
	out_x_policy(o, p, policy_type(p->action), policy_dir(p->dir),
		     p->action == DPS_ACTION_PROTECT ? n : 0);
}

long pfk_build_policy(void *buf, size_t cap, const struct sadb_msg *hdr, const struct dps_policy *p,
		      uint64_t add_time, uint64_t use_time)
{
	struct sadb_msg h;
	struct pfk_out o;

	reply_header(&h, hdr, SADB_SATYPE_UNSPEC); /* af_key.c key_pol_get_resp */
	pfk_out_begin(&o, buf, cap, &h);
	pfk_out_policy(&o, p, add_time, use_time);
	return pfk_out_end(&o);
}

/* ---- REGISTER and ACQUIRE ---- */

static void out_supported(struct pfk_out *o, uint16_t type, const struct sadb_alg *algs,
			  unsigned int n)
{
	struct sadb_supported *sup;

	if (n > 16)
		n = 16;
	if (!n)
		return; /* Linux omits an empty list */
	sup = out_ext(o, type, sizeof(*sup) + n * sizeof(*algs));
	if (sup)
		memcpy(sup + 1, algs, n * sizeof(*algs));
}

void pfk_out_supported(struct pfk_out *o, const struct pfk_algs *a)
{
	out_supported(o, SADB_EXT_SUPPORTED_AUTH, a->auth, a->n_auth);
	out_supported(o, SADB_EXT_SUPPORTED_ENCRYPT, a->enc, a->n_enc);
}

/* Ciphers with their own ICV pair with "no authentication" only. */
static bool ealg_is_combined(uint8_t id)
{
	switch (id) {
	case SADB_X_EALG_AES_CCM_ICV8:
	case SADB_X_EALG_AES_CCM_ICV12:
	case SADB_X_EALG_AES_CCM_ICV16:
	case SADB_X_EALG_AES_GCM_ICV8:
	case SADB_X_EALG_AES_GCM_ICV12:
	case SADB_X_EALG_AES_GCM_ICV16:
	case SADB_X_EALG_NULL_AES_GMAC:
		return true;
	default:
		return false;
	}
}

static void comb_fill(struct sadb_comb *c, const struct sadb_alg *e, const struct sadb_alg *au)
{
	if (e) {
		c->sadb_comb_encrypt = e->sadb_alg_id;
		c->sadb_comb_encrypt_minbits = e->sadb_alg_minbits;
		c->sadb_comb_encrypt_maxbits = e->sadb_alg_maxbits;
	}
	if (au) {
		c->sadb_comb_auth = au->sadb_alg_id;
		c->sadb_comb_auth_minbits = au->sadb_alg_minbits;
		c->sadb_comb_auth_maxbits = au->sadb_alg_maxbits;
	}
	c->sadb_comb_hard_addtime = COMB_HARD_ADD;
	c->sadb_comb_soft_addtime = COMB_SOFT_ADD;
	c->sadb_comb_hard_usetime = COMB_HARD_USE;
	c->sadb_comb_soft_usetime = COMB_SOFT_USE;
}

/* The combinations, written to @c when non-NULL; returns how many. */
static size_t proposal_combs(const struct pfk_algs *a, struct sadb_comb *c)
{
	unsigned int ne = a->n_enc > 16 ? 16 : a->n_enc, na = a->n_auth > 16 ? 16 : a->n_auth;
	size_t n = 0;

	if (!ne) {
		for (unsigned int k = 0; k < na; k++, n++)
			if (c)
				comb_fill(&c[n], NULL, &a->auth[k]);
		return n;
	}
	for (unsigned int i = 0; i < ne; i++) {
		if (!na || ealg_is_combined(a->enc[i].sadb_alg_id)) {
			if (c)
				comb_fill(&c[n], &a->enc[i], NULL);
			n++;
			continue;
		}
		for (unsigned int k = 0; k < na; k++, n++)
			if (c)
				comb_fill(&c[n], &a->enc[i], &a->auth[k]);
	}
	return n;
}

void pfk_out_proposal(struct pfk_out *o, const struct pfk_algs *a)
{
	size_t n = proposal_combs(a, NULL);
	struct sadb_prop *prop;

	prop = out_ext(o, SADB_EXT_PROPOSAL, sizeof(*prop) + n * sizeof(struct sadb_comb));
	if (!prop)
		return;
	prop->sadb_prop_replay = IPSEC_REPLAYWSIZE;
	proposal_combs(a, (struct sadb_comb *)(prop + 1));
}

long pfk_build_acquire(void *buf, size_t cap, uint32_t seq, uint8_t satype,
		       const struct dps_addr *src, const struct dps_addr *dst,
		       const struct dps_policy *p, const struct pfk_algs *a)
{
	struct sadb_msg h = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = SADB_ACQUIRE,
		.sadb_msg_satype = satype,
		.sadb_msg_seq = seq,
	};
	struct pfk_algs ah;
	struct pfk_out o;

	if (src->family != dst->family)
		return -EINVAL;
	pfk_out_begin(&o, buf, cap, &h);
	pfk_out_address(&o, SADB_EXT_ADDRESS_SRC, src, full_prefix(src->family), 0, 0);
	pfk_out_address(&o, SADB_EXT_ADDRESS_DST, dst, full_prefix(dst->family), 0, 0);
	/* af_key.c pfkey_send_acquire: type IPSEC, dir OUT, no requests. */
	out_x_policy(&o, p, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0);
	if (satype == SADB_SATYPE_AH) {
		ah = *a;
		ah.n_enc = 0;
		a = &ah;
	}
	if (satype == SADB_SATYPE_AH || satype == SADB_SATYPE_ESP)
		pfk_out_proposal(&o, a);
	return pfk_out_end(&o);
}

long pfk_build_error(void *buf, size_t cap, const struct sadb_msg *req, int err)
{
	struct sadb_msg h = *req;

	if (cap < sizeof(h))
		return -EMSGSIZE;
	h.sadb_msg_errno = (uint8_t)(err < 0 ? -err : err);
	h.sadb_msg_len = sizeof(h) / 8;
	memcpy(buf, &h, sizeof(h));
	return sizeof(h);
}
