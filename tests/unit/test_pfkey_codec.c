// SPDX-License-Identifier: BSD-3-Clause
/*
 * Unit tests for the PF_KEY v2 codec (src/pfkey_emul/codec.c, codec_out.c).
 *
 * Test messages are laid out by hand here with the structs of
 * linux/pfkeyv2.h, in the extension order strongSwan 5.9.8's kernel-pfkey
 * plugin sends them (not ascending: SA2 before SRC), never with the code
 * under test. Built messages are checked by walking their bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ipsec.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pfkey_emul/codec.h"

/* ---- a hand-made message ---- */

struct msg {
	uint8_t b[4096] __attribute__((aligned(8)));
	size_t len;
};

static struct sadb_msg *m_hdr(struct msg *m)
{
	return (struct sadb_msg *)m->b;
}

static void m_init(struct msg *m, uint8_t type, uint8_t satype)
{
	struct sadb_msg *h = m_hdr(m);

	memset(m, 0, sizeof(*m));
	h->sadb_msg_version = PF_KEY_V2;
	h->sadb_msg_type = type;
	h->sadb_msg_satype = satype;
	h->sadb_msg_seq = 42;
	h->sadb_msg_pid = 4242;
	m->len = sizeof(*h);
	h->sadb_msg_len = (uint16_t)(m->len / 8);
}

/* An extension of @bytes (rounded up to words), zeroed, header set; the message length follows. */
static void *m_ext(struct msg *m, uint16_t type, size_t bytes)
{
	struct sadb_ext *e = (struct sadb_ext *)(m->b + m->len);
	size_t size = (bytes + 7) & ~(size_t)7;

	e->sadb_ext_len = (uint16_t)(size / 8);
	e->sadb_ext_type = type;
	m->len += size;
	m_hdr(m)->sadb_msg_len = (uint16_t)(m->len / 8);
	return e;
}

/* A sockaddr for @ip (v4 or v6) at @p; returns its size. */
static size_t put_sockaddr(uint8_t *p, const char *ip, uint16_t port)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};

	if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
		memcpy(p, &sin, sizeof(sin));
		return sizeof(sin);
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	memcpy(p, &sin6, sizeof(sin6));
	return sizeof(sin6);
}

static struct sadb_address *m_addr(struct msg *m, uint16_t type, const char *ip, uint8_t plen,
				   uint8_t proto, uint16_t port)
{
	size_t sl = strchr(ip, ':') ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	struct sadb_address *a = m_ext(m, type, sizeof(*a) + sl);

	a->sadb_address_proto = proto;
	a->sadb_address_prefixlen = plen;
	put_sockaddr((uint8_t *)(a + 1), ip, port);
	return a;
}

static struct sadb_sa *m_sa(struct msg *m, uint32_t spi, uint8_t auth, uint8_t enc)
{
	struct sadb_sa *s = m_ext(m, SADB_EXT_SA, sizeof(*s));

	s->sadb_sa_spi = htonl(spi);
	s->sadb_sa_replay = 32;
	s->sadb_sa_state = SADB_SASTATE_MATURE;
	s->sadb_sa_auth = auth;
	s->sadb_sa_encrypt = enc;
	return s;
}

static struct sadb_x_sa2 *m_sa2(struct msg *m, uint8_t mode, uint32_t reqid)
{
	struct sadb_x_sa2 *s = m_ext(m, SADB_X_EXT_SA2, sizeof(*s));

	s->sadb_x_sa2_mode = mode;
	s->sadb_x_sa2_reqid = reqid;
	return s;
}

static struct sadb_key *m_key(struct msg *m, uint16_t type, unsigned int bits, uint8_t fill)
{
	struct sadb_key *k = m_ext(m, type, sizeof(*k) + (bits + 7) / 8);

	k->sadb_key_bits = (uint16_t)bits;
	for (unsigned int i = 0; i < (bits + 7) / 8; i++)
		((uint8_t *)(k + 1))[i] = (uint8_t)(fill + i);
	return k;
}

static struct sadb_lifetime *m_lifetime(struct msg *m, uint16_t type, uint32_t packets,
					uint64_t bytes, uint64_t add, uint64_t use)
{
	struct sadb_lifetime *l = m_ext(m, type, sizeof(*l));

	l->sadb_lifetime_allocations = packets;
	l->sadb_lifetime_bytes = bytes;
	l->sadb_lifetime_addtime = add;
	l->sadb_lifetime_usetime = use;
	return l;
}

static void m_natt(struct msg *m, uint8_t type, uint16_t sport, uint16_t dport)
{
	struct sadb_x_nat_t_type *t = m_ext(m, SADB_X_EXT_NAT_T_TYPE, sizeof(*t));
	struct sadb_x_nat_t_port *p;

	t->sadb_x_nat_t_type_type = type;
	p = m_ext(m, SADB_X_EXT_NAT_T_SPORT, sizeof(*p));
	p->sadb_x_nat_t_port_port = htons(sport);
	p = m_ext(m, SADB_X_EXT_NAT_T_DPORT, sizeof(*p));
	p->sadb_x_nat_t_port_port = htons(dport);
}

/* X_POLICY without requests; add them with m_req (the policy must be the last extension). */
static struct sadb_x_policy *m_policy(struct msg *m, uint16_t type, uint8_t dir, uint32_t id,
				      uint32_t prio)
{
	struct sadb_x_policy *p = m_ext(m, SADB_X_EXT_POLICY, sizeof(*p));

	p->sadb_x_policy_type = type;
	p->sadb_x_policy_dir = dir;
	p->sadb_x_policy_id = id;
	p->sadb_x_policy_priority = prio;
	return p;
}

/* An ipsecrequest appended to the last extension @p; @src/@dst: tunnel endpoints or NULL. */
static struct sadb_x_ipsecrequest *m_req(struct msg *m, struct sadb_x_policy *p, uint16_t proto,
					 uint8_t mode, uint8_t level, uint32_t reqid,
					 const char *src, const char *dst)
{
	struct sadb_x_ipsecrequest *rq = (void *)(m->b + m->len);
	size_t len = sizeof(*rq);

	memset(rq, 0, sizeof(*rq));
	if (src) {
		len += put_sockaddr((uint8_t *)rq + len, src, 0);
		len += put_sockaddr((uint8_t *)rq + len, dst, 0);
	}
	rq->sadb_x_ipsecrequest_len = (uint16_t)len; /* bytes */
	rq->sadb_x_ipsecrequest_proto = proto;
	rq->sadb_x_ipsecrequest_mode = mode;
	rq->sadb_x_ipsecrequest_level = level;
	rq->sadb_x_ipsecrequest_reqid = reqid;
	len = (len + 7) & ~(size_t)7;
	m->len += len;
	p->sadb_x_policy_len = (uint16_t)(p->sadb_x_policy_len + len / 8);
	m_hdr(m)->sadb_msg_len = (uint16_t)(m->len / 8);
	return rq;
}

static int parse(struct msg *m, struct pfk_msg *pm)
{
	return pfk_parse(m->b, m->len, pm);
}

static void addr_is(const struct dps_addr *a, const char *ip)
{
	struct dps_addr want = {0};

	if (inet_pton(AF_INET, ip, &want.v4) == 1)
		want.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &want.v6) == 1)
		want.family = AF_INET6;
	assert_int_equal(a->family, want.family);
	if (want.family == AF_INET)
		assert_memory_equal(&a->v4, &want.v4, sizeof(want.v4));
	else
		assert_memory_equal(&a->v6, &want.v6, sizeof(want.v6));
}

/* ---- charon's messages ---- */

/* charon's ADD of an inbound AES-GCM-128 tunnel SA behind a NAT (kernel_pfkey_ipsec.c add_sa). */
static void charon_add_gcm_natt(struct msg *m)
{
	m_init(m, SADB_ADD, SADB_SATYPE_ESP);
	m_sa(m, 0xc1a2b3c4, SADB_AALG_NONE, SADB_X_EALG_AES_GCM_ICV16);
	m_sa2(m, IPSEC_MODE_TUNNEL, 7);
	m_addr(m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 0, 0, 0);
	m_addr(m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, 0, 0);
	m_lifetime(m, SADB_EXT_LIFETIME_SOFT, 0, 0, 2700, 0);
	m_lifetime(m, SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0);
	m_key(m, SADB_EXT_KEY_ENCRYPT, 160, 0x10);
	m_natt(m, UDP_ENCAP_ESPINUDP, 4500, 4501);
}

/* charon's SPDADD of an outbound tunnel policy: ESP, level unique, reqid 7. */
static struct sadb_x_policy *charon_spdadd_tunnel(struct msg *m)
{
	struct sadb_x_policy *p;

	m_init(m, SADB_X_SPDADD, SADB_SATYPE_UNSPEC);
	m_addr(m, SADB_EXT_ADDRESS_SRC, "10.1.0.0", 16, IPSEC_PROTO_ANY, 0);
	m_addr(m, SADB_EXT_ADDRESS_DST, "10.2.0.0", 16, IPSEC_PROTO_ANY, 0);
	p = m_policy(m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 383615);
	m_req(m, p, IPPROTO_ESP, IPSEC_MODE_TUNNEL, IPSEC_LEVEL_UNIQUE, 7, "192.0.2.1",
	      "198.51.100.2");
	return p;
}

static void test_parse_charon_add_gcm_natt_in_charon_order(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_add_gcm_natt(&m);
	assert_int_equal(parse(&m, &pm), 0);
	assert_ptr_equal(pm.hdr, m.b);
	assert_ptr_equal(pm.ext[SADB_EXT_SA], m.b + 16);
	assert_ptr_equal(pm.ext[SADB_X_EXT_SA2], m.b + 32);
	assert_ptr_equal(pm.ext[SADB_EXT_ADDRESS_SRC], m.b + 48);
	assert_non_null(pm.ext[SADB_EXT_KEY_ENCRYPT]);
	assert_non_null(pm.ext[SADB_X_EXT_NAT_T_DPORT]);
	assert_null(pm.ext[SADB_EXT_KEY_AUTH]);
	assert_null(pm.ext[SADB_EXT_LIFETIME_CURRENT]);
}

static void test_sa_from_charon_add_gcm_natt(void **state)
{
	static const uint8_t key[20] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
					0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23};
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	charon_add_gcm_natt(&m);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.spi, 0xc1a2b3c4);
	assert_int_equal(sa.proto, DPS_PROTO_ESP);
	assert_int_equal(sa.mode, DPS_MODE_TUNNEL);
	assert_int_equal(sa.reqid, 7);
	addr_is(&sa.src, "198.51.100.2");
	addr_is(&sa.dst, "192.0.2.1");
	assert_int_equal(sa.enc_alg, DPS_ENC_AES_GCM);
	assert_int_equal(sa.enc_key_len, 20); /* 16-byte key + 4-byte salt, RFC 4106 §8.1 */
	assert_memory_equal(sa.enc_key, key, sizeof(key));
	assert_int_equal(sa.auth_alg, DPS_AUTH_NONE);
	assert_int_equal(sa.auth_key_len, 0);
	assert_int_equal(sa.replay_window, 32);
	assert_true(sa.udp_encap);
	assert_int_equal(sa.encap_sport, 4500);
	assert_int_equal(sa.encap_dport, 4501);
	assert_int_equal(sa.soft.add_s, 2700);
	assert_int_equal(sa.hard.add_s, 3600);
	assert_int_equal(sa.hard.packets, 0);
	/* Left to the caller. */
	assert_int_equal(sa.dir, 0);
	assert_int_equal(sa.ttl, 0);
	assert_int_equal(sa.dfbit, 0);
	assert_false(sa.esn);
}

static void test_sa_from_update_cbc_sha256_v6_transport(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	m_init(&m, SADB_UPDATE, SADB_SATYPE_ESP);
	m_sa(&m, 0x01020304, SADB_X_AALG_SHA2_256HMAC, SADB_X_EALG_AESCBC);
	m_sa2(&m, IPSEC_MODE_TRANSPORT, 9);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "2001:db8::1", 128, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "2001:db8::2", 128, 0, 0);
	m_lifetime(&m, SADB_EXT_LIFETIME_SOFT, 900, 1000000, 0, 50);
	m_lifetime(&m, SADB_EXT_LIFETIME_HARD, 1000, 2000000, 0, 60);
	m_key(&m, SADB_EXT_KEY_AUTH, 256, 0xa0);
	m_key(&m, SADB_EXT_KEY_ENCRYPT, 256, 0x40);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.spi, 0x01020304);
	assert_int_equal(sa.mode, DPS_MODE_TRANSPORT);
	assert_int_equal(sa.reqid, 9);
	addr_is(&sa.src, "2001:db8::1");
	addr_is(&sa.dst, "2001:db8::2");
	assert_int_equal(sa.enc_alg, DPS_ENC_AES_CBC);
	assert_int_equal(sa.enc_key_len, 32);
	assert_int_equal(sa.enc_key[0], 0x40);
	assert_int_equal(sa.enc_key[31], 0x40 + 31);
	assert_int_equal(sa.auth_alg, DPS_AUTH_HMAC_SHA256_128);
	assert_int_equal(sa.auth_key_len, 32);
	assert_int_equal(sa.auth_key[31], 0xa0 + 31);
	assert_int_equal(sa.soft.packets, 900);
	assert_int_equal(sa.soft.bytes, 1000000);
	assert_int_equal(sa.soft.use_s, 50);
	assert_int_equal(sa.hard.packets, 1000);
	assert_int_equal(sa.hard.bytes, 2000000);
	assert_int_equal(sa.hard.use_s, 60);
	assert_false(sa.udp_encap);
}

static void test_sa_from_ah_sha1(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	m_init(&m, SADB_ADD, SADB_SATYPE_AH);
	m_sa(&m, 0x1000, SADB_AALG_SHA1HMAC, SADB_EALG_NONE);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.2", 32, 0, 0);
	m_key(&m, SADB_EXT_KEY_AUTH, 160, 1);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.proto, DPS_PROTO_AH);
	assert_int_equal(sa.mode, DPS_MODE_TRANSPORT); /* no SA2: Linux's default */
	assert_int_equal(sa.auth_alg, DPS_AUTH_HMAC_SHA1_96);
	assert_int_equal(sa.auth_key_len, 20);
	assert_int_equal(sa.enc_key_len, 0);
}

static void test_sa_from_ipcomp_deflate_and_rejects_lzs(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	m_init(&m, SADB_ADD, SADB_X_SATYPE_IPCOMP);
	m_sa(&m, 0x4321, SADB_AALG_NONE, SADB_X_CALG_DEFLATE);
	m_sa2(&m, IPSEC_MODE_TUNNEL, 3);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.2", 32, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.proto, DPS_PROTO_IPCOMP);
	assert_int_equal(sa.spi, 0x4321);
	assert_int_equal(sa.mode, DPS_MODE_TUNNEL);
	((struct sadb_sa *)(m.b + 16))->sadb_sa_encrypt = SADB_X_CALG_LZS;
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), ENOSYS);
}

/* An ESP ADD with the given algorithms and key sizes (0 bits: no key extension). */
static int esp_add(uint8_t aalg, unsigned int abits, uint8_t ealg, unsigned int ebits,
		   struct dps_sa *sa)
{
	struct pfk_msg pm;
	struct msg m;

	m_init(&m, SADB_ADD, SADB_SATYPE_ESP);
	m_sa(&m, 0x2000, aalg, ealg);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.2", 32, 0, 0);
	if (abits)
		m_key(&m, SADB_EXT_KEY_AUTH, abits, 0);
	if (ebits)
		m_key(&m, SADB_EXT_KEY_ENCRYPT, ebits, 0);
	assert_int_equal(parse(&m, &pm), 0);
	return pfk_sa_from_msg(&pm, sa);
}

static void test_sa_esp_algorithm_combinations(void **state)
{
	struct dps_sa sa;

	(void)state;
	/* NULL cipher with integrity: charon sends KEY_ENCRYPT with 0 bits; absent is fine too. */
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 160, SADB_EALG_NULL, 0, &sa), 0);
	assert_int_equal(sa.enc_alg, DPS_ENC_NULL);
	assert_int_equal(sa.enc_key_len, 0);
	/* RFC 4303 §3.2.1: NULL encryption and no integrity together are not allowed. */
	assert_int_equal(esp_add(SADB_AALG_NONE, 0, SADB_EALG_NULL, 0, &sa), EINVAL);
	/* Encryption-only ESP is legal but dpsec does not run it. */
	assert_int_equal(esp_add(SADB_AALG_NONE, 0, SADB_X_EALG_AESCBC, 128, &sa), ENOSYS);
	/* AEAD carries its own ICV. */
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 160, SADB_X_EALG_AES_GCM_ICV16, 160, &sa),
			 EINVAL);
	assert_int_equal(esp_add(SADB_AALG_NONE, 0, SADB_X_EALG_NULL_AES_GMAC, 288, &sa), 0);
	assert_int_equal(sa.enc_alg, DPS_ENC_AES_GMAC);
	assert_int_equal(sa.enc_key_len, 36);
	assert_int_equal(esp_add(SADB_X_AALG_SHA2_512HMAC, 512, SADB_X_EALG_AESCTR, 224, &sa), 0);
	assert_int_equal(sa.enc_alg, DPS_ENC_AES_CTR);
	assert_int_equal(sa.enc_key_len, 28);
	assert_int_equal(sa.auth_alg, DPS_AUTH_HMAC_SHA512_256);
	assert_int_equal(sa.auth_key_len, 64);
	/* Unsupported algorithms and key sizes: ENOSYS as Linux. */
	assert_int_equal(esp_add(SADB_AALG_NONE, 0, SADB_X_EALG_AES_GCM_ICV8, 160, &sa), ENOSYS);
	assert_int_equal(esp_add(SADB_AALG_NONE, 0, SADB_X_EALG_AES_GCM_ICV12, 160, &sa), ENOSYS);
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 160, SADB_EALG_3DESCBC, 192, &sa), ENOSYS);
	assert_int_equal(esp_add(SADB_AALG_MD5HMAC, 128, SADB_X_EALG_AESCBC, 128, &sa), ENOSYS);
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 160, SADB_X_EALG_AESCBC, 136, &sa), ENOSYS);
	/* Missing keys, a key without an algorithm, no cipher at all. */
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 0, SADB_X_EALG_AESCBC, 128, &sa), EINVAL);
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 160, SADB_X_EALG_AESCBC, 0, &sa), EINVAL);
	assert_int_equal(esp_add(SADB_AALG_NONE, 160, SADB_X_EALG_AES_GCM_ICV16, 160, &sa), EINVAL);
	assert_int_equal(esp_add(SADB_AALG_SHA1HMAC, 160, SADB_EALG_NONE, 0, &sa), EINVAL);
}

static void test_enc_and_auth_alg_mapping(void **state)
{
	static const struct {
		uint8_t id;
		unsigned int bits;
		int err;
		uint8_t alg, len;
	} enc[] = {
		{SADB_EALG_NULL, 0, 0, DPS_ENC_NULL, 0},
		{SADB_EALG_NULL, 64, ENOSYS, 0, 0},
		{SADB_X_EALG_AESCBC, 128, 0, DPS_ENC_AES_CBC, 16},
		{SADB_X_EALG_AESCBC, 192, 0, DPS_ENC_AES_CBC, 24},
		{SADB_X_EALG_AESCBC, 256, 0, DPS_ENC_AES_CBC, 32},
		{SADB_X_EALG_AESCBC, 160, ENOSYS, 0, 0},
		{SADB_X_EALG_AESCTR, 160, 0, DPS_ENC_AES_CTR, 20},
		{SADB_X_EALG_AESCTR, 288, 0, DPS_ENC_AES_CTR, 36},
		{SADB_X_EALG_AESCTR, 128, ENOSYS, 0, 0}, /* nonce missing */
		{SADB_X_EALG_AES_GCM_ICV16, 160, 0, DPS_ENC_AES_GCM, 20},
		{SADB_X_EALG_AES_GCM_ICV16, 224, 0, DPS_ENC_AES_GCM, 28},
		{SADB_X_EALG_AES_GCM_ICV16, 288, 0, DPS_ENC_AES_GCM, 36},
		{SADB_X_EALG_AES_GCM_ICV8, 160, ENOSYS, 0, 0},
		{SADB_X_EALG_AES_GCM_ICV12, 160, ENOSYS, 0, 0},
		{SADB_X_EALG_NULL_AES_GMAC, 160, 0, DPS_ENC_AES_GMAC, 20},
		{SADB_EALG_DESCBC, 64, ENOSYS, 0, 0},
		{SADB_X_EALG_CAMELLIACBC, 128, ENOSYS, 0, 0},
		{28, 288, 0, DPS_ENC_CHACHA20_POLY1305, 36}, /* dpsec's id: RFC 7634's IKEv2 one */
		{28, 256, ENOSYS, 0, 0},		     /* salt missing */
		{SADB_X_EALG_AES_CCM_ICV12, 288, ENOSYS, 0,
		 0}, /* FreeBSD's ChaCha id is Linux's CCM */
	};
	static const struct {
		uint8_t id;
		unsigned int bits;
		int err;
		uint8_t alg, len;
	} auth[] = {
		{SADB_AALG_NONE, 0, 0, DPS_AUTH_NONE, 0},
		{SADB_AALG_SHA1HMAC, 160, 0, DPS_AUTH_HMAC_SHA1_96, 20},
		{SADB_X_AALG_SHA2_256HMAC, 256, 0, DPS_AUTH_HMAC_SHA256_128, 32},
		{SADB_X_AALG_SHA2_384HMAC, 384, 0, DPS_AUTH_HMAC_SHA384_192, 48},
		{SADB_X_AALG_SHA2_512HMAC, 512, 0, DPS_AUTH_HMAC_SHA512_256, 64},
		{SADB_X_AALG_SHA2_256HMAC, 128, ENOSYS, 0, 0},
		{SADB_AALG_MD5HMAC, 128, ENOSYS, 0, 0},
		{SADB_X_AALG_AES_XCBC_MAC, 128, ENOSYS, 0, 0},
	};
	uint8_t alg, len;

	(void)state;
	for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
		alg = len = 0xee;
		assert_int_equal(pfk_enc_alg(enc[i].id, enc[i].bits, &alg, &len), enc[i].err);
		if (!enc[i].err) {
			assert_int_equal(alg, enc[i].alg);
			assert_int_equal(len, enc[i].len);
			assert_int_equal(pfk_sadb_ealg(alg), enc[i].id);
		}
	}
	for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
		alg = len = 0xee;
		assert_int_equal(pfk_auth_alg(auth[i].id, auth[i].bits, &alg, &len), auth[i].err);
		if (!auth[i].err) {
			assert_int_equal(alg, auth[i].alg);
			assert_int_equal(len, auth[i].len);
			assert_int_equal(pfk_sadb_aalg(alg), auth[i].id);
		}
	}
}

static void test_satype_proto_mapping(void **state)
{
	(void)state;
	assert_int_equal(pfk_satype_proto(SADB_SATYPE_ESP), 50);
	assert_int_equal(pfk_satype_proto(SADB_SATYPE_AH), 51);
	assert_int_equal(pfk_satype_proto(SADB_X_SATYPE_IPCOMP), 108);
	assert_int_equal(pfk_satype_proto(SADB_SATYPE_UNSPEC), 0);
	assert_int_equal(pfk_satype_proto(SADB_SATYPE_RSVP), 0);
	assert_int_equal(pfk_proto_satype(50), SADB_SATYPE_ESP);
	assert_int_equal(pfk_proto_satype(51), SADB_SATYPE_AH);
	assert_int_equal(pfk_proto_satype(108), SADB_X_SATYPE_IPCOMP);
	assert_int_equal(pfk_proto_satype(6), SADB_SATYPE_UNSPEC);
}

static void test_sa_mode_from_sa2(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;
	struct sadb_x_sa2 *sa2;

	(void)state;
	m_init(&m, SADB_ADD, SADB_SATYPE_ESP);
	m_sa(&m, 0x2000, SADB_AALG_NONE, SADB_X_EALG_AES_GCM_ICV16);
	sa2 = m_sa2(&m, IPSEC_MODE_ANY, 1);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.2", 32, 0, 0);
	m_key(&m, SADB_EXT_KEY_ENCRYPT, 160, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.mode, DPS_MODE_TRANSPORT); /* af_key.c: ANY is transport */
	sa2->sadb_x_sa2_mode = IPSEC_MODE_BEET;
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), ENOSYS);
	sa2->sadb_x_sa2_mode = 4;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_sa_rejects_one_lifetime_limit_alone(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	m_init(&m, SADB_ADD, SADB_SATYPE_ESP);
	m_sa(&m, 0x2000, SADB_AALG_NONE, SADB_X_EALG_AES_GCM_ICV16);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.2", 32, 0, 0);
	m_key(&m, SADB_EXT_KEY_ENCRYPT, 160, 0);
	m_lifetime(&m, SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), EINVAL);
}

static void natt_add(struct msg *m, uint8_t type, uint16_t sport, uint16_t dport)
{
	m_init(m, SADB_ADD, SADB_SATYPE_ESP);
	m_sa(m, 0x2000, SADB_AALG_NONE, SADB_X_EALG_AES_GCM_ICV16);
	m_addr(m, SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32, 0, 0);
	m_addr(m, SADB_EXT_ADDRESS_DST, "192.0.2.2", 32, 0, 0);
	m_key(m, SADB_EXT_KEY_ENCRYPT, 160, 0);
	m_natt(m, type, sport, dport);
}

static void test_sa_natt_types_and_ports(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	natt_add(&m, UDP_ENCAP_ESPINUDP_NON_IKE, 4500, 4500);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), ENOSYS);
	natt_add(&m, UDP_ENCAP_L2TPINUDP, 4500, 4500);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), EINVAL);
	natt_add(&m, UDP_ENCAP_ESPINUDP, 0, 4500);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), EINVAL);
	natt_add(&m, UDP_ENCAP_ESPINUDP, 1024, 4500);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.encap_sport, 1024);
	assert_int_equal(sa.encap_dport, 4500);
}

/* ---- every message type parses ---- */

static void build_spd(struct msg *m, uint8_t type, bool addresses, bool policy, uint32_t id)
{
	m_init(m, type, SADB_SATYPE_UNSPEC);
	if (policy)
		m_policy(m, IPSEC_POLICY_DISCARD, IPSEC_DIR_INBOUND, id, 0);
	if (addresses) {
		m_addr(m, SADB_EXT_ADDRESS_SRC, "10.0.0.0", 8, 6, 0);
		m_addr(m, SADB_EXT_ADDRESS_DST, "10.1.0.0", 16, 6, 443);
	}
}

static void test_parse_accepts_every_message_type(void **state)
{
	struct sadb_x_kmaddress *kma;
	struct sadb_spirange *r;
	struct sadb_x_policy *p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	/* GETSPI: SRC, DST, SPIRANGE (charon's default range). */
	m_init(&m, SADB_GETSPI, SADB_SATYPE_ESP);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	r = m_ext(&m, SADB_EXT_SPIRANGE, sizeof(*r));
	r->sadb_spirange_min = 0xc0000000;
	r->sadb_spirange_max = 0xcfffffff;
	assert_int_equal(parse(&m, &pm), 0);
	assert_ptr_equal(pm.ext[SADB_EXT_SPIRANGE], r);

	charon_add_gcm_natt(&m);
	m_hdr(&m)->sadb_msg_type = SADB_UPDATE;
	assert_int_equal(parse(&m, &pm), 0);

	m_init(&m, SADB_DELETE, SADB_SATYPE_ESP);
	m_sa(&m, 0xc0000001, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	m_hdr(&m)->sadb_msg_type = SADB_GET;
	assert_int_equal(parse(&m, &pm), 0);

	/* ACQUIRE from a daemon: a bare header with the error of a failed negotiation. */
	m_init(&m, SADB_ACQUIRE, SADB_SATYPE_ESP);
	m_hdr(&m)->sadb_msg_errno = ETIMEDOUT;
	assert_int_equal(parse(&m, &pm), 0);

	m_init(&m, SADB_REGISTER, SADB_SATYPE_ESP);
	assert_int_equal(parse(&m, &pm), 0);
	m_hdr(&m)->sadb_msg_satype = SADB_SATYPE_RSVP; /* af_key.c accepts any up to SATYPE_MAX */
	assert_int_equal(parse(&m, &pm), 0);

	/* EXPIRE as the kernel sends it. */
	m_init(&m, SADB_EXPIRE, SADB_SATYPE_ESP);
	m_sa(&m, 0xc0000001, 0, SADB_X_EALG_AES_GCM_ICV16);
	m_lifetime(&m, SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0);
	m_lifetime(&m, SADB_EXT_LIFETIME_CURRENT, 10, 1000, 1700000000, 1700000100);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	m_sa2(&m, IPSEC_MODE_TUNNEL, 7);
	assert_int_equal(parse(&m, &pm), 0);

	m_init(&m, SADB_FLUSH, SADB_SATYPE_UNSPEC);
	assert_int_equal(parse(&m, &pm), 0);
	m_init(&m, SADB_DUMP, SADB_SATYPE_UNSPEC);
	assert_int_equal(parse(&m, &pm), 0);
	m_init(&m, SADB_X_PROMISC, 1);
	assert_int_equal(parse(&m, &pm), 0);

	charon_spdadd_tunnel(&m);
	assert_int_equal(parse(&m, &pm), 0);
	m_hdr(&m)->sadb_msg_type = SADB_X_SPDUPDATE;
	assert_int_equal(parse(&m, &pm), 0);
	m_hdr(&m)->sadb_msg_type = SADB_X_SPDSETIDX;
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDDELETE, true, true, 0);
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDGET, false, true, 8 + 1);
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDDELETE2, false, true, 8 + 1);
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDACQUIRE, false, true, 17);
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDEXPIRE, true, true, 17);
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDDUMP, false, false, 0);
	assert_int_equal(parse(&m, &pm), 0);
	build_spd(&m, SADB_X_SPDFLUSH, false, false, 0);
	assert_int_equal(parse(&m, &pm), 0);

	m_init(&m, SADB_X_NAT_T_NEW_MAPPING, SADB_SATYPE_ESP);
	m_sa(&m, 0xc0000001, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "203.0.113.9", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	m_natt(&m, UDP_ENCAP_ESPINUDP, 61000, 4500);
	assert_int_equal(parse(&m, &pm), 0);

	/* MIGRATE: selector, KMADDRESS, a policy whose requests carry old and new endpoints. */
	m_init(&m, SADB_X_MIGRATE, SADB_SATYPE_UNSPEC);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "10.1.0.0", 16, IPSEC_PROTO_ANY, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "10.2.0.0", 16, IPSEC_PROTO_ANY, 0);
	kma = m_ext(&m, SADB_X_EXT_KMADDRESS, sizeof(*kma) + 2 * sizeof(struct sockaddr_in));
	put_sockaddr((uint8_t *)(kma + 1), "192.0.2.1", 0);
	put_sockaddr((uint8_t *)(kma + 1) + sizeof(struct sockaddr_in), "198.51.100.2", 0);
	p = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
	m_req(&m, p, IPPROTO_ESP, IPSEC_MODE_TUNNEL, IPSEC_LEVEL_UNIQUE, 7, "192.0.2.1",
	      "198.51.100.2");
	m_req(&m, p, IPPROTO_ESP, IPSEC_MODE_TUNNEL, IPSEC_LEVEL_UNIQUE, 7, "192.0.2.1",
	      "198.51.100.77");
	assert_int_equal(parse(&m, &pm), 0);
	assert_ptr_equal(pm.ext[SADB_X_EXT_KMADDRESS], kma);
}

/* ---- dpsec's extensions (pfkeyv2_ext.h) ---- */

static void valid_delete(struct msg *m);

/* The values strongSwan's kernel-pfkey compiles in from pfkeyv2_ext.h (FreeBSD's where free). */
static void test_ext_header_ids(void **state)
{
	(void)state;
	assert_int_equal(SADB_X_EXT_SA_REPLAY, 27);
	assert_int_equal(SADB_X_EXT_NEW_ADDRESS_SRC, 28);
	assert_int_equal(SADB_X_EXT_NEW_ADDRESS_DST, 29);
	assert_int_equal(SADB_X_SAFLAGS_ESN, 0x400);
	assert_int_equal(SADB_X_EALG_CHACHA20POLY1305, 28);
	assert_int_equal(sizeof(struct sadb_x_sa_replay), 8);
	/* None collides with Linux's own. */
	assert_true(SADB_X_EXT_SA_REPLAY > SADB_X_EXT_FILTER);
	assert_int_equal(SADB_X_SAFLAGS_ESN & (SADB_SAFLAGS_PFS | SADB_SAFLAGS_NOPMTUDISC |
					       SADB_SAFLAGS_DECAP_DSCP | SADB_SAFLAGS_NOECN),
			 0);
}

static struct sadb_x_sa_replay *m_replay(struct msg *m, uint32_t window)
{
	struct sadb_x_sa_replay *r = m_ext(m, SADB_X_EXT_SA_REPLAY, sizeof(*r));

	r->sadb_x_sa_replay_replay = window;
	return r;
}

/* charon (built with pfkeyv2_ext.h) add_sa: replay_window = 1024, esn, ChaCha20-Poly1305. */
static void charon_add_chacha_esn_1024(struct msg *m)
{
	struct sadb_sa *s;

	m_init(m, SADB_ADD, SADB_SATYPE_ESP);
	s = m_sa(m, 0xc1a2b3c5, SADB_AALG_NONE, 28);
	s->sadb_sa_replay = 32; /* min(window, 32): what it puts in sadb_sa on Linux */
	s->sadb_sa_flags = 0x400;
	m_replay(m, 1024);
	m_sa2(m, IPSEC_MODE_TUNNEL, 7);
	m_addr(m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 0, 0, 0);
	m_addr(m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, 0, 0);
	m_key(m, SADB_EXT_KEY_ENCRYPT, 288, 0x30);
}

static void test_sa_replay_esn_chacha_from_charon(void **state)
{
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	charon_add_chacha_esn_1024(&m);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.replay_window, 1024);
	assert_true(sa.esn);
	assert_int_equal(sa.enc_alg, DPS_ENC_CHACHA20_POLY1305);
	assert_int_equal(sa.enc_key_len, 36);
	assert_int_equal(sa.enc_key[35], 0x30 + 35);
	assert_int_equal(sa.auth_alg, DPS_AUTH_NONE);
	/* Up to 65536 (ipsec.replay_window's limit in YAML), 4096 among them. */
	((struct sadb_x_sa_replay *)pm.ext[SADB_X_EXT_SA_REPLAY])->sadb_x_sa_replay_replay = 4096;
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.replay_window, 4096);
	((struct sadb_x_sa_replay *)pm.ext[SADB_X_EXT_SA_REPLAY])->sadb_x_sa_replay_replay = 65536;
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	((struct sadb_x_sa_replay *)pm.ext[SADB_X_EXT_SA_REPLAY])->sadb_x_sa_replay_replay = 65537;
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), EINVAL);
	/* ChaCha20-Poly1305 is an AEAD: an integrity algorithm with it is refused. */
	charon_add_chacha_esn_1024(&m);
	((struct sadb_sa *)(m.b + sizeof(struct sadb_msg)))->sadb_sa_auth =
		SADB_X_AALG_SHA2_256HMAC;
	m_key(&m, SADB_EXT_KEY_AUTH, 256, 1);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), EINVAL);
	/* A plain-Linux plugin: no SA_REPLAY, no flag: sadb_sa_replay, no ESN. */
	charon_add_gcm_natt(&m);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	assert_int_equal(sa.replay_window, 32);
	assert_false(sa.esn);
}

/* SA_REPLAY and NEW_ADDRESS_* are used by ADD/UPDATE only; elsewhere ignored. */
static void test_ext_sets_of_dpsec_extensions(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_add_chacha_esn_1024(&m);
	m_addr(&m, SADB_X_EXT_NEW_ADDRESS_SRC, "198.51.100.9", 0, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_non_null(pm.ext[SADB_X_EXT_SA_REPLAY]);
	assert_null(pm.ext[SADB_X_EXT_NEW_ADDRESS_SRC]); /* ADD has no endpoints to move */
	m_hdr(&m)->sadb_msg_type = SADB_UPDATE;
	assert_int_equal(parse(&m, &pm), 0);
	assert_non_null(pm.ext[SADB_X_EXT_NEW_ADDRESS_SRC]);
	valid_delete(&m);
	m_replay(&m, 1024);
	assert_int_equal(parse(&m, &pm), 0);
	assert_null(pm.ext[SADB_X_EXT_SA_REPLAY]);
	/* A NEW_ADDRESS is an address: checked as one in every message. */
	valid_delete(&m);
	m_addr(&m, SADB_X_EXT_NEW_ADDRESS_DST, "192.0.2.1", 33, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

/* charon's MOBIKE update_sa: the GET reply's extensions, then NEW_ADDRESS_SRC/DST if changed. */
static void test_new_addresses_from_charon_update(void **state)
{
	struct dps_addr src, dst;
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;

	(void)state;
	charon_add_gcm_natt(&m);
	m_hdr(&m)->sadb_msg_type = SADB_UPDATE;
	m_addr(&m, SADB_X_EXT_NEW_ADDRESS_SRC, "198.51.100.77", 0, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	addr_is(&sa.src, "198.51.100.2"); /* the SA it names */
	src = sa.src;
	dst = sa.dst;
	assert_int_equal(pfk_new_addresses(&pm, &src, &dst), 0);
	addr_is(&src, "198.51.100.77");
	addr_is(&dst, "192.0.2.1");
	/* Only DST moves. */
	charon_add_gcm_natt(&m);
	m_hdr(&m)->sadb_msg_type = SADB_UPDATE;
	m_addr(&m, SADB_X_EXT_NEW_ADDRESS_DST, "192.0.2.200", 0, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	src = sa.src;
	dst = sa.dst;
	assert_int_equal(pfk_new_addresses(&pm, &src, &dst), 0);
	addr_is(&src, "198.51.100.2");
	addr_is(&dst, "192.0.2.200");
	/* A move to the other family for one end only. */
	charon_add_gcm_natt(&m);
	m_hdr(&m)->sadb_msg_type = SADB_UPDATE;
	m_addr(&m, SADB_X_EXT_NEW_ADDRESS_DST, "2001:db8::1", 0, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	src = sa.src;
	dst = sa.dst;
	assert_int_equal(pfk_new_addresses(&pm, &src, &dst), EINVAL);
	/* Neither: nothing moves. */
	charon_add_gcm_natt(&m);
	m_hdr(&m)->sadb_msg_type = SADB_UPDATE;
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	src = sa.src;
	dst = sa.dst;
	assert_int_equal(pfk_new_addresses(&pm, &src, &dst), 0);
	addr_is(&src, "198.51.100.2");
	addr_is(&dst, "192.0.2.1");
}

/* The GET reply charon's update_sa copies: ESN in sadb_sa_flags, window clamped to 8 bits, no ext
 * > 25. */
static void test_build_sa_reports_esn_and_clamped_window(void **state)
{
	struct pfk_sa_state st = {SADB_SASTATE_MATURE, 1, 2, 3, 4};
	struct sadb_msg h = {.sadb_msg_version = PF_KEY_V2,
			     .sadb_msg_type = SADB_GET,
			     .sadb_msg_satype = SADB_SATYPE_ESP};
	const struct sadb_sa *s;
	struct pfk_msg pm;
	struct dps_sa sa;
	struct msg m;
	long n;

	(void)state;
	charon_add_chacha_esn_1024(&m);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &sa), 0);
	n = pfk_build_sa(m.b, sizeof(m.b), &h, &sa, &st, true);
	assert_true(n > 0);
	assert_int_equal(pfk_parse(m.b, (size_t)n, &pm), 0);
	s = (const void *)pm.ext[SADB_EXT_SA];
	assert_int_equal(s->sadb_sa_flags, 0x400);
	assert_int_equal(s->sadb_sa_replay, 255);
	assert_int_equal(s->sadb_sa_encrypt, 28);
	assert_null(pm.ext[SADB_X_EXT_SA_REPLAY]);
	for (size_t off = sizeof(struct sadb_msg); off < (size_t)n;) {
		const struct sadb_ext *e = (const void *)(m.b + off);

		assert_true(e->sadb_ext_type <= PFK_EXT_SEND_MAX);
		off += e->sadb_ext_len * 8u;
	}
	sa.esn = false;
	n = pfk_build_sa(m.b, sizeof(m.b), &h, &sa, &st, true);
	assert_int_equal(pfk_parse(m.b, (size_t)n, &pm), 0);
	assert_int_equal(((const struct sadb_sa *)pm.ext[SADB_EXT_SA])->sadb_sa_flags, 0);
}

/* af_key.c pfkey_send_new_mapping's layout, plus X_SA2 for charon; read byte by byte. */
static void test_build_new_mapping_as_linux_plus_sa2(void **state)
{
	struct dps_sa sa = {.spi = 0xc1a2b3c4,
			    .proto = DPS_PROTO_ESP,
			    .mode = DPS_MODE_TUNNEL,
			    .reqid = 7,
			    .udp_encap = true,
			    .encap_sport = 4500,
			    .encap_dport = 4500};
	static const uint16_t want[] = {SADB_EXT_SA,	      SADB_X_EXT_SA2,
					SADB_EXT_ADDRESS_SRC, SADB_X_EXT_NAT_T_SPORT,
					SADB_EXT_ADDRESS_DST, SADB_X_EXT_NAT_T_DPORT};
	const struct sadb_msg *h;
	struct dps_addr nsrc = {0};
	struct sockaddr_in sin;
	struct pfk_msg pm;
	uint8_t b[512] __attribute__((aligned(8)));
	size_t off = sizeof(struct sadb_msg), i = 0;
	long n;

	(void)state;
	sa.src.family = sa.dst.family = nsrc.family = AF_INET;
	inet_pton(AF_INET, "198.51.100.2", &sa.src.v4);
	inet_pton(AF_INET, "192.0.2.1", &sa.dst.v4);
	inet_pton(AF_INET, "203.0.113.9", &nsrc.v4);
	n = pfk_build_new_mapping(b, sizeof(b), 99, &sa, &nsrc, 61000);
	assert_true(n > 0);
	h = (const void *)b;
	assert_int_equal(h->sadb_msg_type, 23);
	assert_int_equal(h->sadb_msg_satype, SADB_SATYPE_ESP);
	assert_int_equal(h->sadb_msg_pid, 0);
	assert_int_equal(h->sadb_msg_seq, 99);
	assert_int_equal(h->sadb_msg_len * 8, n);
	while (off < (size_t)n) {
		const struct sadb_ext *e = (const void *)(b + off);

		assert_true(i < 6);
		assert_int_equal(e->sadb_ext_type, want[i]);
		switch (e->sadb_ext_type) {
		case SADB_EXT_SA:
			assert_int_equal(ntohl(((const struct sadb_sa *)e)->sadb_sa_spi),
					 0xc1a2b3c4);
			break;
		case SADB_X_EXT_SA2:
			assert_int_equal(((const struct sadb_x_sa2 *)e)->sadb_x_sa2_reqid, 7);
			assert_int_equal(((const struct sadb_x_sa2 *)e)->sadb_x_sa2_mode,
					 IPSEC_MODE_TUNNEL);
			break;
		case SADB_EXT_ADDRESS_SRC:
		case SADB_EXT_ADDRESS_DST:
			memcpy(&sin, (const uint8_t *)e + sizeof(struct sadb_address), sizeof(sin));
			assert_int_equal(sin.sin_family, AF_INET);
			assert_int_equal(ntohl(sin.sin_addr.s_addr),
					 e->sadb_ext_type == SADB_EXT_ADDRESS_SRC ? 0xc6336402
										  : 0xcb007109);
			break;
		default:
			assert_int_equal(ntohs(((const struct sadb_x_nat_t_port *)e)
						       ->sadb_x_nat_t_port_port),
					 e->sadb_ext_type == SADB_X_EXT_NAT_T_SPORT ? 4500 : 61000);
		}
		off += e->sadb_ext_len * 8u;
		i++;
	}
	assert_int_equal(i, 6);
	assert_int_equal(pfk_parse(b, (size_t)n, &pm), 0);
}

/* ---- which extensions Linux accepts, per message type (af_key.c) ---- */

#define X(t)  (1u << (t))
#define ADDRS (X(SADB_EXT_ADDRESS_SRC) | X(SADB_EXT_ADDRESS_DST))

/*
 * From Linux's net/key/af_key.c (read, not copied): parse_exthdrs accepts
 * every extension type 1..SADB_EXT_MAX in every message (minimum size,
 * duplicates, address length/prefix, key bits and SEC_CTX length are its
 * only checks) and skips higher types; the handler then needs these:
 * pfkey_getspi SRC+DST of one family; pfkey_add (ADD, UPDATE) via
 * pfkey_msg2xfrm_state SA+SRC+DST; pfkey_delete and pfkey_get SA+SRC+DST;
 * pfkey_spdadd (SPDADD, SPDUPDATE, SPDSETIDX) and pfkey_spddelete
 * X_POLICY+SRC+DST; pfkey_spdget (SPDGET, SPDDELETE2) X_POLICY;
 * pfkey_migrate X_POLICY+SRC+DST; pfkey_acquire, pfkey_register,
 * pfkey_flush, pfkey_dump, pfkey_promisc, pfkey_spddump, pfkey_spdflush
 * nothing. EXPIRE, SPDACQUIRE, SPDEXPIRE and NAT_T_NEW_MAPPING have no
 * handler (EOPNOTSUPP from the server); the codec parses them as the
 * kernel sends them (what its builders produce), with the extensions
 * those carry required.
 */
static const struct linux_rule {
	uint8_t type, satype;
	uint32_t required;
} linux_rules[] = {
	{SADB_GETSPI, SADB_SATYPE_ESP, ADDRS},
	{SADB_UPDATE, SADB_SATYPE_ESP, X(SADB_EXT_SA) | ADDRS},
	{SADB_ADD, SADB_SATYPE_ESP, X(SADB_EXT_SA) | ADDRS},
	{SADB_DELETE, SADB_SATYPE_ESP, X(SADB_EXT_SA) | ADDRS},
	{SADB_GET, SADB_SATYPE_ESP, X(SADB_EXT_SA) | ADDRS},
	{SADB_ACQUIRE, SADB_SATYPE_ESP, 0},
	{SADB_REGISTER, SADB_SATYPE_ESP, 0},
	{SADB_EXPIRE, SADB_SATYPE_ESP, X(SADB_EXT_SA) | ADDRS | X(SADB_EXT_LIFETIME_CURRENT)},
	{SADB_FLUSH, SADB_SATYPE_UNSPEC, 0},
	{SADB_DUMP, SADB_SATYPE_UNSPEC, 0},
	{SADB_X_PROMISC, 1, 0},
	{SADB_X_SPDUPDATE, 0, X(SADB_X_EXT_POLICY) | ADDRS},
	{SADB_X_SPDADD, 0, X(SADB_X_EXT_POLICY) | ADDRS},
	{SADB_X_SPDDELETE, 0, X(SADB_X_EXT_POLICY) | ADDRS},
	{SADB_X_SPDGET, 0, X(SADB_X_EXT_POLICY)},
	{SADB_X_SPDACQUIRE, 0, X(SADB_X_EXT_POLICY)},
	{SADB_X_SPDDUMP, 0, 0},
	{SADB_X_SPDFLUSH, 0, 0},
	{SADB_X_SPDSETIDX, 0, X(SADB_X_EXT_POLICY) | ADDRS},
	{SADB_X_SPDEXPIRE, 0, X(SADB_X_EXT_POLICY)},
	{SADB_X_SPDDELETE2, 0, X(SADB_X_EXT_POLICY)},
	{SADB_X_NAT_T_NEW_MAPPING, SADB_SATYPE_ESP,
	 X(SADB_EXT_SA) | ADDRS | X(SADB_X_EXT_NAT_T_SPORT) | X(SADB_X_EXT_NAT_T_DPORT)},
	{SADB_X_MIGRATE, 0, X(SADB_X_EXT_POLICY) | ADDRS},
};

/* A valid extension of @type (generic content only), IPv4 where it is an address. */
static void m_any_ext(struct msg *m, uint16_t type)
{
	struct sadb_x_sec_ctx *ctx;

	switch (type) {
	case SADB_EXT_ADDRESS_SRC:
	case SADB_EXT_ADDRESS_DST:
	case SADB_EXT_ADDRESS_PROXY:
	case SADB_X_EXT_NAT_T_OA:
	case SADB_X_EXT_NEW_ADDRESS_SRC:
	case SADB_X_EXT_NEW_ADDRESS_DST:
		m_addr(m, type, "192.0.2.9", 32, 0, 0);
		return;
	case SADB_EXT_KEY_AUTH:
	case SADB_EXT_KEY_ENCRYPT:
		m_key(m, type, 0, 0);
		return;
	case SADB_X_EXT_SEC_CTX:
		ctx = m_ext(m, type, sizeof(*ctx) + 3);
		ctx->sadb_x_ctx_len = 3;
		return;
	case SADB_EXT_LIFETIME_CURRENT:
	case SADB_EXT_LIFETIME_HARD:
	case SADB_EXT_LIFETIME_SOFT:
		m_ext(m, type, sizeof(struct sadb_lifetime));
		return;
	case SADB_EXT_IDENTITY_SRC:
	case SADB_EXT_IDENTITY_DST:
		m_ext(m, type, sizeof(struct sadb_ident));
		return;
	case SADB_EXT_SENSITIVITY:
		m_ext(m, type, sizeof(struct sadb_sens));
		return;
	case SADB_EXT_SA:
	case SADB_EXT_SPIRANGE:
	case SADB_X_EXT_POLICY:
		m_ext(m, type, 16);
		return;
	case SADB_X_EXT_SA2:
		m_ext(m, type, sizeof(struct sadb_x_sa2));
		return;
	case SADB_X_EXT_FILTER:
		m_ext(m, type, sizeof(struct sadb_x_filter));
		return;
	case SADB_X_EXT_KMADDRESS:
		m_ext(m, type, sizeof(struct sadb_x_kmaddress) + 2 * sizeof(struct sockaddr_in));
		put_sockaddr(m->b + m->len - 2 * sizeof(struct sockaddr_in), "192.0.2.1", 0);
		put_sockaddr(m->b + m->len - sizeof(struct sockaddr_in), "192.0.2.2", 0);
		return;
	default: /* PROPOSAL, SUPPORTED_*, KMPRIVATE, NAT_T_TYPE/PORTS, SA_REPLAY */
		m_ext(m, type, 8);
		return;
	}
}

/* The smallest valid message of @r's type: its required extensions, in ascending order. */
static void linux_base(struct msg *m, const struct linux_rule *r, uint32_t without)
{
	uint32_t want = r->required & ~without;

	m_init(m, r->type, r->satype);
	for (uint16_t t = 1; t <= PFK_EXT_MAX; t++) {
		if (!(want & X(t)))
			continue;
		if (t == SADB_EXT_SA)
			m_sa(m, 0xc0000001, SADB_X_AALG_SHA2_256HMAC, SADB_X_EALG_AESCBC);
		else if (t == SADB_X_EXT_POLICY)
			m_policy(m, IPSEC_POLICY_DISCARD, IPSEC_DIR_OUTBOUND, 8 + 1, 0);
		else if (t == SADB_X_EXT_NAT_T_SPORT || t == SADB_X_EXT_NAT_T_DPORT)
			((struct sadb_x_nat_t_port *)m_ext(m, t, 8))->sadb_x_nat_t_port_port =
				htons(4500);
		else
			m_any_ext(m, t);
	}
}

static void test_linux_acceptance_table(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(linux_rules) / sizeof(linux_rules[0]); i++) {
		const struct linux_rule *r = &linux_rules[i];

		print_message("message type %u\n", r->type);
		linux_base(&m, r, 0);
		assert_int_equal(parse(&m, &pm), 0);
		/* Every extension type Linux knows (and dpsec's own), added to it: accepted. */
		for (uint16_t t = 1; t <= PFK_EXT_MAX; t++) {
			if (r->required & X(t))
				continue;
			linux_base(&m, r, 0);
			m_any_ext(&m, t);
			if (parse(&m, &pm) != 0)
				fail_msg("message type %u refuses extension type %u", r->type, t);
		}
		/* Beyond them: skipped, as parse_exthdrs does. */
		linux_base(&m, r, 0);
		m_ext(&m, PFK_EXT_MAX + 1, 8);
		m_ext(&m, 200, 24);
		assert_int_equal(parse(&m, &pm), 0);
		/* Every required extension missing: EINVAL, the handlers' answer. */
		for (uint16_t t = 1; t <= PFK_EXT_MAX; t++) {
			if (!(r->required & X(t)))
				continue;
			linux_base(&m, r, X(t));
			if (parse(&m, &pm) != EINVAL)
				fail_msg("message type %u accepts a missing extension %u", r->type,
					 t);
		}
		/* What parse_exthdrs rejects, in any message: a duplicate, a bad address. */
		linux_base(&m, r, 0);
		m_any_ext(&m, SADB_EXT_ADDRESS_PROXY);
		m_any_ext(&m, SADB_EXT_ADDRESS_PROXY);
		assert_int_equal(parse(&m, &pm), EINVAL);
		linux_base(&m, r, 0);
		m_addr(&m, SADB_X_EXT_NAT_T_OA, "192.0.2.1", 40, 0, 0);
		assert_int_equal(parse(&m, &pm), EINVAL);
	}
}

/*
 * openiked (OpenBSD's iked on Linux) sends SADB_X_EXT_SA2 in SPDUPDATE and
 * SPDDELETE: Linux ignores it, so do we (it was refused with EINVAL).
 */
static void test_parse_iked_sa2_in_spd_messages(void **state)
{
	static const uint8_t types[] = {SADB_X_SPDUPDATE, SADB_X_SPDADD, SADB_X_SPDDELETE};
	struct dps_policy pol;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(types); i++) {
		struct sadb_x_policy *p;

		m_init(&m, types[i], SADB_SATYPE_ESP);
		m_addr(&m, SADB_EXT_ADDRESS_SRC, "10.1.0.0", 16, IPSEC_PROTO_ANY, 0);
		m_addr(&m, SADB_EXT_ADDRESS_DST, "10.2.0.0", 16, IPSEC_PROTO_ANY, 0);
		m_sa2(&m, IPSEC_MODE_TUNNEL, 5);
		p = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
		m_req(&m, p, IPPROTO_ESP, IPSEC_MODE_TUNNEL, IPSEC_LEVEL_REQUIRE, 0, "192.0.2.1",
		      "198.51.100.2");
		assert_int_equal(parse(&m, &pm), 0);
		assert_null(pm.ext[SADB_X_EXT_SA2]);
		assert_int_equal(pfk_policy_from_msg(&pm, &pol), 0);
		assert_int_equal(pol.dir, DPS_DIR_OUT);
		assert_int_equal(pol.n_reqs, 1);
	}
}

/* ---- every error of pfk_parse ---- */

/* A valid DELETE to break in one place. */
static void valid_delete(struct msg *m)
{
	m_init(m, SADB_DELETE, SADB_SATYPE_ESP);
	m_sa(m, 0xc0000001, 0, 0);
	m_addr(m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
}

static void test_parse_rejects_short_header(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_FLUSH, SADB_SATYPE_UNSPEC);
	assert_int_equal(pfk_parse(m.b, 8, &pm), EMSGSIZE);
	assert_int_equal(pfk_parse(m.b, 0, &pm), EMSGSIZE);
}

static void test_parse_rejects_wrong_version(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	m_hdr(&m)->sadb_msg_version = 1;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_nonzero_reserved(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	m_hdr(&m)->sadb_msg_reserved = 1;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_length_mismatch(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	m_hdr(&m)->sadb_msg_len++;
	assert_int_equal(parse(&m, &pm), EMSGSIZE);
	m_hdr(&m)->sadb_msg_len -= 2;
	assert_int_equal(parse(&m, &pm), EMSGSIZE);
	m_hdr(&m)->sadb_msg_len++;
	assert_int_equal(pfk_parse(m.b, m.len + 4, &pm), EMSGSIZE);
}

static void test_parse_rejects_message_type_0_and_above_max(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_RESERVED, SADB_SATYPE_UNSPEC);
	assert_int_equal(parse(&m, &pm), EINVAL);
	m_init(&m, SADB_MAX + 1, SADB_SATYPE_UNSPEC);
	assert_int_equal(parse(&m, &pm), EINVAL); /* af_key.c pfkey_get_base_msg */
}

static void test_parse_rejects_unhandled_type_with_eopnotsupp(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_X_PCHANGE, SADB_SATYPE_UNSPEC);
	assert_int_equal(parse(&m, &pm), EOPNOTSUPP);
}

static void test_parse_rejects_zero_length_extension(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_ext *e;

	(void)state;
	valid_delete(&m);
	e = m_ext(&m, SADB_X_EXT_SA2, 8);
	e->sadb_ext_len = 0;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_extension_beyond_message(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_ext *e;

	(void)state;
	valid_delete(&m);
	e = m_ext(&m, SADB_X_EXT_SA2, sizeof(struct sadb_x_sa2));
	e->sadb_ext_len = 3; /* one word more than the message has */
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_extension_type_0(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	m_ext(&m, SADB_EXT_RESERVED, 8);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

/* Linux's parse_exthdrs skips types above its SADB_EXT_MAX; dpsec's own end at PFK_EXT_MAX. */
static void test_parse_skips_extension_type_above_max(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	m_ext(&m, PFK_EXT_MAX + 1, 8);
	m_ext(&m, 0xffff, 16);
	m_ext(&m, 0xffff, 8); /* not even a duplicate: Linux never records them */
	assert_int_equal(parse(&m, &pm), 0);
	assert_non_null(pm.ext[SADB_EXT_SA]);
}

static void test_parse_rejects_duplicate_extension(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_missing_required_extension(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_DELETE, SADB_SATYPE_ESP);
	m_sa(&m, 0xc0000001, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
	build_spd(&m, SADB_X_SPDADD, true, false, 0); /* no X_POLICY */
	assert_int_equal(parse(&m, &pm), EINVAL);
	build_spd(&m, SADB_X_SPDGET, false, false, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

/*
 * An extension a message type does not use is accepted and ignored, its
 * contents unchecked (af_key.c's handlers never look at it): only the
 * generic checks of parse_exthdrs apply.
 */
static void test_parse_ignores_extension_not_used(void **state)
{
	struct sadb_x_policy *pol;
	struct sadb_spirange *r;
	struct sadb_key *k;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	valid_delete(&m);
	r = m_ext(&m, SADB_EXT_SPIRANGE, sizeof(*r));
	r->sadb_spirange_min = 2; /* inverted: GETSPI would refuse it */
	r->sadb_spirange_max = 1;
	pol = m_policy(&m, 77, 99, 0, 0); /* type and dir out of range */
	assert_int_equal(parse(&m, &pm), 0);
	assert_null(pm.ext[SADB_EXT_SPIRANGE]);
	assert_null(pm.ext[SADB_X_EXT_POLICY]);
	assert_non_null(pm.ext[SADB_EXT_SA]);
	(void)pol;
	m_init(&m, SADB_FLUSH, SADB_SATYPE_UNSPEC);
	m_sa(&m, 1, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_null(pm.ext[SADB_EXT_SA]);
	/* The generic checks still apply to ignored extensions. */
	m_init(&m, SADB_FLUSH, SADB_SATYPE_UNSPEC);
	k = m_key(&m, SADB_EXT_KEY_AUTH, 64, 0);
	k->sadb_key_bits = 65; /* beyond its 8 bytes */
	assert_int_equal(parse(&m, &pm), EINVAL);
	m_init(&m, SADB_X_SPDFLUSH, SADB_SATYPE_UNSPEC);
	m_addr(&m, SADB_EXT_ADDRESS_PROXY, "192.0.2.1", 33, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_extension_shorter_than_its_struct(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_ext *e;

	(void)state;
	m_init(&m, SADB_DELETE, SADB_SATYPE_ESP);
	e = m_ext(&m, SADB_EXT_SA, 8); /* struct sadb_sa is 16 bytes */
	(void)e;
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_bad_address_family(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_address *a;

	(void)state;
	valid_delete(&m);
	a = (struct sadb_address *)(m.b + 32);
	((struct sockaddr_in *)(a + 1))->sin_family = AF_UNIX;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_address_length_not_of_its_family(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_address *a;

	(void)state;
	/* An IPv6 sockaddr announced in the 3 words of an IPv4 one. */
	m_init(&m, SADB_DELETE, SADB_SATYPE_ESP);
	m_sa(&m, 0xc0000001, 0, 0);
	a = m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.2", 32, 0, 0);
	((struct sockaddr_in *)(a + 1))->sin_family = AF_INET6;
	m_addr(&m, SADB_EXT_ADDRESS_DST, "2001:db8::1", 128, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_address_family_mismatch(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_DELETE, SADB_SATYPE_ESP);
	m_sa(&m, 0xc0000001, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "192.0.2.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "2001:db8::1", 128, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_prefixlen_beyond_family(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	build_spd(&m, SADB_X_SPDDELETE, false, true, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "10.0.0.0", 33, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "10.0.0.0", 8, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
	build_spd(&m, SADB_X_SPDDELETE, false, true, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "2001:db8::", 128, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "2001:db8::", 129, 0, 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_key_bits_beyond_extension(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_key *k;

	(void)state;
	charon_add_gcm_natt(&m);
	k = m_key(&m, SADB_EXT_KEY_AUTH, 160, 0); /* 8 + 20 bytes: 4 words, room for 192 bits */
	k->sadb_key_bits = 192;
	assert_int_equal(parse(&m, &pm), 0);
	k->sadb_key_bits = 193;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_inverted_spirange(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_spirange *r;

	(void)state;
	m_init(&m, SADB_GETSPI, SADB_SATYPE_ESP);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	r = m_ext(&m, SADB_EXT_SPIRANGE, sizeof(*r));
	r->sadb_spirange_min = 0xcfffffff;
	r->sadb_spirange_max = 0xc0000000;
	assert_int_equal(parse(&m, &pm), EINVAL);
	r->sadb_spirange_min = r->sadb_spirange_max;
	assert_int_equal(parse(&m, &pm), 0);
}

static void test_parse_rejects_ipcomp_cpi_range_above_16_bits(void **state)
{
	struct pfk_msg pm;
	struct msg m;
	struct sadb_spirange *r;

	(void)state;
	m_init(&m, SADB_GETSPI, SADB_X_SATYPE_IPCOMP);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "198.51.100.2", 32, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "192.0.2.1", 32, 0, 0);
	r = m_ext(&m, SADB_EXT_SPIRANGE, sizeof(*r));
	r->sadb_spirange_min = 0x100; /* charon's CPI range */
	r->sadb_spirange_max = 0xefff;
	assert_int_equal(parse(&m, &pm), 0);
	r->sadb_spirange_max = 0x10000;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_satype_not_allowed_for_message(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_add_gcm_natt(&m);
	m_hdr(&m)->sadb_msg_satype = SADB_SATYPE_UNSPEC;
	assert_int_equal(parse(&m, &pm), EINVAL);
	valid_delete(&m);
	m_hdr(&m)->sadb_msg_satype = SADB_SATYPE_RSVP;
	assert_int_equal(parse(&m, &pm), EINVAL);
	m_init(&m, SADB_FLUSH, SADB_SATYPE_OSPFV2);
	assert_int_equal(parse(&m, &pm), EINVAL);
	m_init(&m, SADB_REGISTER, SADB_SATYPE_MAX + 1);
	assert_int_equal(parse(&m, &pm), EINVAL);
	/* SPD messages ignore it, as Linux. */
	build_spd(&m, SADB_X_SPDFLUSH, false, false, 0);
	m_hdr(&m)->sadb_msg_satype = 77;
	assert_int_equal(parse(&m, &pm), 0);
}

static void test_parse_rejects_ipsecrequest_too_short(void **state)
{
	struct sadb_x_ipsecrequest *rq;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_spdadd_tunnel(&m);
	rq = (struct sadb_x_ipsecrequest *)(m.b + 16 + 24 + 24 + 16);
	assert_int_equal(rq->sadb_x_ipsecrequest_len, 48);
	rq->sadb_x_ipsecrequest_len = 8;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_ipsecrequest_overflowing_policy(void **state)
{
	struct sadb_x_ipsecrequest *rq;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_spdadd_tunnel(&m);
	rq = (struct sadb_x_ipsecrequest *)(m.b + 16 + 24 + 24 + 16);
	rq->sadb_x_ipsecrequest_len = 56; /* 8 bytes more than the policy holds */
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_tunnel_request_without_endpoints(void **state)
{
	struct sadb_x_policy *p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	build_spd(&m, SADB_X_SPDADD, true, false, 0);
	p = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
	m_req(&m, p, IPPROTO_ESP, IPSEC_MODE_TUNNEL, IPSEC_LEVEL_REQUIRE, 0, NULL, NULL);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_tunnel_endpoints_of_two_families(void **state)
{
	struct sadb_x_ipsecrequest *rq;
	struct sadb_x_policy *p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	build_spd(&m, SADB_X_SPDADD, true, false, 0);
	p = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
	rq = m_req(&m, p, IPPROTO_ESP, IPSEC_MODE_TUNNEL, IPSEC_LEVEL_REQUIRE, 0, "192.0.2.1",
		   "192.0.2.2");
	assert_int_equal(parse(&m, &pm), 0);
	((struct sockaddr_in *)((uint8_t *)(rq + 1) + sizeof(struct sockaddr_in)))->sin_family =
		AF_INET6;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_bad_ipsecrequest_fields(void **state)
{
	struct sadb_x_ipsecrequest *rq;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_spdadd_tunnel(&m);
	rq = (struct sadb_x_ipsecrequest *)(m.b + 16 + 24 + 24 + 16);
	rq->sadb_x_ipsecrequest_proto = IPPROTO_TCP;
	assert_int_equal(parse(&m, &pm), EINVAL);
	rq->sadb_x_ipsecrequest_proto = IPPROTO_ESP;
	rq->sadb_x_ipsecrequest_mode = IPSEC_MODE_ANY;
	assert_int_equal(parse(&m, &pm), EINVAL);
	rq->sadb_x_ipsecrequest_mode = IPSEC_MODE_TUNNEL;
	rq->sadb_x_ipsecrequest_level = IPSEC_LEVEL_UNIQUE + 1;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_policy_type_and_dir_out_of_range(void **state)
{
	struct sadb_x_policy *p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	p = charon_spdadd_tunnel(&m);
	p->sadb_x_policy_type = IPSEC_POLICY_BYPASS + 1;
	assert_int_equal(parse(&m, &pm), EINVAL);
	p->sadb_x_policy_type = IPSEC_POLICY_IPSEC;
	p->sadb_x_policy_dir = IPSEC_DIR_MAX;
	assert_int_equal(parse(&m, &pm), EINVAL);
}

static void test_parse_rejects_malformed_variable_extensions(void **state)
{
	struct sadb_x_kmaddress *kma;
	struct sadb_x_sec_ctx *ctx;
	struct sadb_sens *sens;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	/* PROPOSAL: whole sadb_combs only. */
	m_init(&m, SADB_ACQUIRE, SADB_SATYPE_ESP);
	m_ext(&m, SADB_EXT_PROPOSAL, sizeof(struct sadb_prop) + 8);
	assert_int_equal(parse(&m, &pm), EINVAL);
	/* SEC_CTX: its length must be that of the context (af_key.c verify_sec_ctx_len). */
	charon_spdadd_tunnel(&m);
	ctx = m_ext(&m, SADB_X_EXT_SEC_CTX, sizeof(*ctx) + 8);
	ctx->sadb_x_ctx_len = 8;
	assert_int_equal(parse(&m, &pm), 0);
	ctx->sadb_x_ctx_len = 20;
	assert_int_equal(parse(&m, &pm), EINVAL);
	/* SENSITIVITY: the bitmaps must fit. */
	valid_delete(&m);
	sens = m_ext(&m, SADB_EXT_SENSITIVITY, sizeof(*sens) + 8);
	sens->sadb_sens_sens_len = 1;
	assert_int_equal(parse(&m, &pm), 0);
	sens->sadb_sens_integ_len = 1;
	assert_int_equal(parse(&m, &pm), EINVAL);
	/* KMADDRESS: a pair of sockaddrs. */
	m_init(&m, SADB_X_MIGRATE, SADB_SATYPE_UNSPEC);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "10.1.0.0", 16, IPSEC_PROTO_ANY, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "10.2.0.0", 16, IPSEC_PROTO_ANY, 0);
	m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
	kma = m_ext(&m, SADB_X_EXT_KMADDRESS, sizeof(*kma) + sizeof(struct sockaddr_in));
	put_sockaddr((uint8_t *)(kma + 1), "192.0.2.1", 0);
	assert_int_equal(parse(&m, &pm), EINVAL);
}

/* ---- policies ---- */

static void test_policy_from_charon_spdadd_tunnel(void **state)
{
	struct dps_policy p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	charon_spdadd_tunnel(&m);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), 0);
	assert_int_equal(p.id, 0);
	assert_int_equal(p.dir, DPS_DIR_OUT);
	assert_int_equal(p.priority, 383615);
	assert_int_equal(p.action, DPS_ACTION_PROTECT);
	addr_is(&p.sel.src.addr, "10.1.0.0");
	assert_int_equal(p.sel.src.len, 16);
	addr_is(&p.sel.dst.addr, "10.2.0.0");
	assert_int_equal(p.sel.dst.len, 16);
	assert_int_equal(p.sel.proto, 255);
	assert_int_equal(p.sel.sport_lo, 0);
	assert_int_equal(p.sel.sport_hi, 65535);
	assert_int_equal(p.sel.dport_lo, 0);
	assert_int_equal(p.sel.dport_hi, 65535);
	assert_int_equal(p.n_reqs, 1);
	assert_int_equal(p.reqs[0].proto, DPS_PROTO_ESP);
	assert_int_equal(p.reqs[0].mode, DPS_MODE_TUNNEL);
	assert_int_equal(p.reqs[0].level, DPS_LEVEL_UNIQUE);
	assert_int_equal(p.reqs[0].reqid, 7);
	addr_is(&p.reqs[0].tun_src, "192.0.2.1");
	addr_is(&p.reqs[0].tun_dst, "198.51.100.2");
}

static void test_policy_ipcomp_then_esp_transport_v6_inbound(void **state)
{
	struct sadb_x_policy *x;
	struct dps_policy p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_X_SPDADD, SADB_SATYPE_UNSPEC);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "2001:db8::2", 128, IPPROTO_TCP, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "2001:db8::1", 128, IPPROTO_TCP, 22);
	x = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_INBOUND, 0, 1000);
	m_req(&m, x, IPPROTO_COMP, IPSEC_MODE_TRANSPORT, IPSEC_LEVEL_USE, 0, NULL, NULL);
	m_req(&m, x, IPPROTO_ESP, IPSEC_MODE_TRANSPORT, IPSEC_LEVEL_REQUIRE, 0, NULL, NULL);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), 0);
	assert_int_equal(p.dir, DPS_DIR_IN);
	assert_int_equal(p.sel.proto, IPPROTO_TCP);
	assert_int_equal(p.sel.sport_lo, 0);
	assert_int_equal(p.sel.sport_hi, 65535);
	assert_int_equal(p.sel.dport_lo, 22);
	assert_int_equal(p.sel.dport_hi, 22);
	assert_int_equal(p.n_reqs, 2);
	assert_int_equal(p.reqs[0].proto, DPS_PROTO_IPCOMP);
	assert_int_equal(p.reqs[0].level, DPS_LEVEL_USE);
	assert_int_equal(p.reqs[1].proto, DPS_PROTO_ESP);
	assert_int_equal(p.reqs[1].mode, DPS_MODE_TRANSPORT);
	assert_int_equal(p.reqs[1].level, DPS_LEVEL_REQUIRE);
	assert_int_equal(p.reqs[1].tun_src.family, 0);
}

static void icmp_policy(struct msg *m, uint8_t proto, const char *src, const char *dst,
			uint16_t type, uint16_t code)
{
	m_init(m, SADB_X_SPDADD, SADB_SATYPE_UNSPEC);
	m_addr(m, SADB_EXT_ADDRESS_SRC, src, 0, proto, type);
	m_addr(m, SADB_EXT_ADDRESS_DST, dst, 0, proto, code);
	m_policy(m, IPSEC_POLICY_NONE, IPSEC_DIR_FWD, 0, 0);
}

static void test_policy_icmp_type_and_code_in_ports(void **state)
{
	struct dps_policy p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	/* charon's bypass for ICMPv6 neighbour solicitation: type 135, any code. */
	icmp_policy(&m, IPPROTO_ICMPV6, "::", "::", 135, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), 0);
	assert_int_equal(p.dir, DPS_DIR_FWD);
	assert_int_equal(p.action, DPS_ACTION_BYPASS);
	assert_int_equal(p.sel.proto, IPPROTO_ICMPV6);
	assert_int_equal(p.sel.sport_lo, 135);
	assert_int_equal(p.sel.sport_hi, 135);
	assert_int_equal(p.sel.dport_lo, 0);
	assert_int_equal(p.sel.dport_hi, 255);
	icmp_policy(&m, IPPROTO_ICMP, "0.0.0.0", "0.0.0.0", 3, 4);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), 0);
	assert_int_equal(p.sel.sport_lo, 3);
	assert_int_equal(p.sel.sport_hi, 3);
	assert_int_equal(p.sel.dport_lo, 4);
	assert_int_equal(p.sel.dport_hi, 4);
	icmp_policy(&m, IPPROTO_ICMP, "0.0.0.0", "0.0.0.0", 256, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
}

static void test_policy_proto_0_means_any(void **state)
{
	struct dps_policy p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_X_SPDADD, SADB_SATYPE_UNSPEC);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "10.0.0.0", 8, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "10.0.0.0", 8, 0, 0);
	m_policy(&m, IPSEC_POLICY_DISCARD, IPSEC_DIR_INBOUND, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), 0);
	assert_int_equal(p.sel.proto, 255);
	assert_int_equal(p.action, DPS_ACTION_DISCARD);
	assert_int_equal(p.n_reqs, 0);
}

static void test_policy_rejects_unusable_actions_dirs_and_requests(void **state)
{
	struct sadb_x_policy *x;
	struct dps_policy p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	/* PROTECT without requests. */
	build_spd(&m, SADB_X_SPDADD, true, false, 0);
	x = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
	/* More requests than DPS_MAX_IPSEC_REQS. */
	for (int i = 0; i < DPS_MAX_IPSEC_REQS + 1; i++)
		m_req(&m, x, IPPROTO_ESP, IPSEC_MODE_TRANSPORT, IPSEC_LEVEL_REQUIRE, 0, NULL, NULL);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
	/* BEET requests. */
	build_spd(&m, SADB_X_SPDADD, true, false, 0);
	x = m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
	m_req(&m, x, IPPROTO_ESP, IPSEC_MODE_BEET, IPSEC_LEVEL_REQUIRE, 0, NULL, NULL);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
	/* ENTRUST / BYPASS are socket-policy types; direction ANY is no direction. */
	build_spd(&m, SADB_X_SPDADD, true, false, 0);
	x = m_policy(&m, IPSEC_POLICY_ENTRUST, IPSEC_DIR_OUTBOUND, 0, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
	x->sadb_x_policy_type = IPSEC_POLICY_BYPASS;
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
	x->sadb_x_policy_type = IPSEC_POLICY_NONE;
	x->sadb_x_policy_dir = IPSEC_DIR_ANY;
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
}

/* charon's SPDDELETE names the policy by selector, direction and type, without requests. */
static void test_policy_from_charon_spddelete_without_requests(void **state)
{
	struct dps_policy p;
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	m_init(&m, SADB_X_SPDDELETE, SADB_SATYPE_UNSPEC);
	m_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_FWD, 0, 0);
	m_addr(&m, SADB_EXT_ADDRESS_SRC, "10.2.0.0", 16, IPSEC_PROTO_ANY, 0);
	m_addr(&m, SADB_EXT_ADDRESS_DST, "10.1.0.0", 16, IPSEC_PROTO_ANY, 0);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), 0);
	assert_int_equal(p.dir, DPS_DIR_FWD);
	assert_int_equal(p.action, DPS_ACTION_PROTECT);
	assert_int_equal(p.n_reqs, 0);
	addr_is(&p.sel.src.addr, "10.2.0.0");
	assert_int_equal(p.sel.dst.len, 16);
	/* The same policy in an SPDADD installs nothing: EINVAL. */
	m_hdr(&m)->sadb_msg_type = SADB_X_SPDADD;
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &p), EINVAL);
}

static void test_policy_spdget_carries_id(void **state)
{
	struct pfk_msg pm;
	struct msg m;

	(void)state;
	build_spd(&m, SADB_X_SPDGET, false, true, 8 * 5 + 1);
	assert_int_equal(parse(&m, &pm), 0);
	assert_int_equal(
		((const struct sadb_x_policy *)pm.ext[SADB_X_EXT_POLICY])->sadb_x_policy_id, 41);
}

/* ---- builders ---- */

/*
 * Walk a built message as charon would: extension types 1..25, each at
 * least one word, no duplicates, lengths adding up to sadb_msg_len. Returns
 * a bitmap of the types seen.
 */
static uint32_t walk(const uint8_t *b, long len)
{
	const struct sadb_msg *h = (const void *)b;
	uint32_t seen = 0;
	long off = sizeof(*h);

	assert_true(len >= (long)sizeof(*h));
	assert_int_equal(len % 8, 0);
	assert_int_equal(h->sadb_msg_len * 8, len);
	assert_int_equal(h->sadb_msg_version, PF_KEY_V2);
	assert_int_equal(h->sadb_msg_reserved, 0);
	while (off < len) {
		const struct sadb_ext *e = (const void *)(b + off);

		assert_true(e->sadb_ext_len >= 1);
		assert_true(e->sadb_ext_type >= 1 && e->sadb_ext_type <= PFK_EXT_SEND_MAX);
		assert_false(seen & (1u << e->sadb_ext_type));
		seen |= 1u << e->sadb_ext_type;
		off += e->sadb_ext_len * 8;
		assert_true(off <= len);
	}
	return seen;
}

#define BIT(t) (1u << (t))

static void gcm_natt_sa(struct dps_sa *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->spi = 0xc1a2b3c4;
	sa->proto = DPS_PROTO_ESP;
	sa->mode = DPS_MODE_TUNNEL;
	inet_pton(AF_INET, "192.0.2.1", &sa->src.v4);
	sa->src.family = AF_INET;
	inet_pton(AF_INET, "198.51.100.2", &sa->dst.v4);
	sa->dst.family = AF_INET;
	sa->reqid = 7;
	sa->enc_alg = DPS_ENC_AES_GCM;
	sa->enc_key_len = 20;
	for (int i = 0; i < 20; i++)
		sa->enc_key[i] = (uint8_t)(0x80 + i);
	sa->replay_window = 32;
	sa->udp_encap = true;
	sa->encap_sport = 4500;
	sa->encap_dport = 4500;
	sa->soft.add_s = 2700;
	sa->hard.add_s = 3600;
	sa->hard.bytes = 1ull << 40;
	sa->hard.packets = 1000000;
}

static void assert_sa_equal(const struct dps_sa *a, const struct dps_sa *b)
{
	assert_int_equal(a->spi, b->spi);
	assert_int_equal(a->proto, b->proto);
	assert_int_equal(a->mode, b->mode);
	assert_memory_equal(&a->src, &b->src, sizeof(a->src));
	assert_memory_equal(&a->dst, &b->dst, sizeof(a->dst));
	assert_int_equal(a->reqid, b->reqid);
	assert_int_equal(a->enc_alg, b->enc_alg);
	assert_int_equal(a->enc_key_len, b->enc_key_len);
	assert_memory_equal(a->enc_key, b->enc_key, a->enc_key_len);
	assert_int_equal(a->auth_alg, b->auth_alg);
	assert_int_equal(a->auth_key_len, b->auth_key_len);
	assert_memory_equal(a->auth_key, b->auth_key, a->auth_key_len);
	assert_int_equal(a->replay_window, b->replay_window);
	assert_int_equal(a->udp_encap, b->udp_encap);
	assert_int_equal(a->encap_sport, b->encap_sport);
	assert_int_equal(a->encap_dport, b->encap_dport);
	assert_memory_equal(&a->soft, &b->soft, sizeof(a->soft));
	assert_memory_equal(&a->hard, &b->hard, sizeof(a->hard));
}

static const struct sadb_msg get_req = {
	.sadb_msg_version = PF_KEY_V2,
	.sadb_msg_type = SADB_GET,
	.sadb_msg_satype = SADB_SATYPE_ESP,
	.sadb_msg_len = 2,
	.sadb_msg_seq = 17,
	.sadb_msg_pid = 999,
};

static void test_build_get_reply_has_what_charon_update_copies(void **state)
{
	struct pfk_sa_state st = {SADB_SASTATE_MATURE, 12, 3456, 1700000000, 1700000060};
	uint8_t buf[PFK_REPLY_MAX];
	const struct sadb_lifetime *cur;
	const struct sadb_sa *s;
	struct pfk_msg pm;
	struct dps_sa sa;
	long n;

	(void)state;
	gcm_natt_sa(&sa);
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, &st, true);
	/* hdr 16 + SA 16 + 3 lifetimes 96 + SRC/DST 48 + KEY_ENCRYPT 32 + SA2 16 + NAT-T 24 */
	assert_int_equal(n, 248);
	assert_int_equal(walk(buf, n),
			 BIT(SADB_EXT_SA) | BIT(SADB_EXT_LIFETIME_CURRENT) |
				 BIT(SADB_EXT_LIFETIME_HARD) | BIT(SADB_EXT_LIFETIME_SOFT) |
				 BIT(SADB_EXT_ADDRESS_SRC) | BIT(SADB_EXT_ADDRESS_DST) |
				 BIT(SADB_EXT_KEY_ENCRYPT) | BIT(SADB_X_EXT_SA2) |
				 BIT(SADB_X_EXT_NAT_T_TYPE) | BIT(SADB_X_EXT_NAT_T_SPORT) |
				 BIT(SADB_X_EXT_NAT_T_DPORT));
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_seq, 17);
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_pid, 999);
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_errno, 0);
	/* SA first, SPI in network order. */
	s = (const struct sadb_sa *)(buf + 16);
	assert_int_equal(s->sadb_sa_exttype, SADB_EXT_SA);
	assert_memory_equal(&s->sadb_sa_spi, "\xc1\xa2\xb3\xc4", 4);
	assert_int_equal(s->sadb_sa_encrypt, SADB_X_EALG_AES_GCM_ICV16);
	assert_int_equal(s->sadb_sa_auth, SADB_AALG_NONE);
	assert_int_equal(s->sadb_sa_replay, 32);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	cur = (const void *)pm.ext[SADB_EXT_LIFETIME_CURRENT];
	assert_int_equal(cur->sadb_lifetime_allocations, 12);
	assert_int_equal(cur->sadb_lifetime_bytes, 3456);
	assert_int_equal(cur->sadb_lifetime_addtime, 1700000000);
	assert_int_equal(cur->sadb_lifetime_usetime, 1700000060);
	/* 20 key bytes padded to 24 with zeroes. */
	assert_int_equal(((const struct sadb_key *)pm.ext[SADB_EXT_KEY_ENCRYPT])->sadb_key_bits,
			 160);
	assert_memory_equal((const uint8_t *)pm.ext[SADB_EXT_KEY_ENCRYPT] + 28, "\0\0\0\0", 4);
}

static void test_build_sa_round_trips_through_parse(void **state)
{
	uint8_t buf[PFK_REPLY_MAX];
	struct dps_sa sa, back;
	struct pfk_msg pm;
	long n;

	(void)state;
	/* IPv4 tunnel, AES-GCM, NAT-T. */
	gcm_natt_sa(&sa);
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, true);
	assert_true(n > 0);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &back), 0);
	assert_sa_equal(&sa, &back);

	/* IPv6 transport, AES-CBC-256 + HMAC-SHA-384. */
	memset(&sa, 0, sizeof(sa));
	sa.spi = 0x100;
	sa.proto = DPS_PROTO_ESP;
	sa.src.family = sa.dst.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::a", &sa.src.v6);
	inet_pton(AF_INET6, "2001:db8::b", &sa.dst.v6);
	sa.enc_alg = DPS_ENC_AES_CBC;
	sa.enc_key_len = 32;
	sa.auth_alg = DPS_AUTH_HMAC_SHA384_192;
	sa.auth_key_len = 48;
	memset(sa.auth_key, 0x5a, 48);
	sa.soft.use_s = 10;
	sa.hard.use_s = 20;
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, true);
	assert_true(n > 0);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &back), 0);
	assert_sa_equal(&sa, &back);

	/* NULL encryption: no KEY_ENCRYPT on the wire (as Linux), still translates. */
	sa.enc_alg = DPS_ENC_NULL;
	sa.enc_key_len = 0;
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, true);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_null(pm.ext[SADB_EXT_KEY_ENCRYPT]);
	assert_int_equal(pfk_sa_from_msg(&pm, &back), 0);
	assert_sa_equal(&sa, &back);

	/* AH. */
	sa.proto = DPS_PROTO_AH;
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, true);
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_satype, SADB_SATYPE_AH);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(pfk_sa_from_msg(&pm, &back), 0);
	assert_sa_equal(&sa, &back);
}

static void test_build_sa_without_keys_omits_them(void **state)
{
	uint8_t buf[PFK_REPLY_MAX];
	struct dps_sa sa;
	long n;

	(void)state;
	gcm_natt_sa(&sa);
	sa.auth_alg = DPS_AUTH_HMAC_SHA1_96;
	sa.auth_key_len = 20;
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, false);
	assert_false(walk(buf, n) & (BIT(SADB_EXT_KEY_AUTH) | BIT(SADB_EXT_KEY_ENCRYPT)));
	n = pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, true);
	assert_true(walk(buf, n) & BIT(SADB_EXT_KEY_AUTH));
}

static void test_build_sa_reports_emsgsize_when_buffer_small(void **state)
{
	uint8_t buf[PFK_REPLY_MAX];
	struct dps_sa sa;

	(void)state;
	gcm_natt_sa(&sa);
	assert_int_equal(pfk_build_sa(buf, 64, &get_req, &sa, NULL, true), -EMSGSIZE);
	assert_int_equal(pfk_build_sa(buf, 8, &get_req, &sa, NULL, true), -EMSGSIZE);
	assert_int_equal(pfk_build_sa(buf, 247, &get_req, &sa, NULL, true), -EMSGSIZE);
	assert_int_equal(pfk_build_sa(buf, 248, &get_req, &sa, NULL, true), 248);
}

static void test_build_expire_hard_and_soft(void **state)
{
	struct pfk_sa_state st = {SADB_SASTATE_MATURE, 5, 500, 1700000000, 0};
	uint8_t buf[PFK_REPLY_MAX];
	const struct sadb_lifetime *l;
	struct pfk_msg pm;
	struct dps_sa sa;
	uint32_t seen;
	long n;

	(void)state;
	gcm_natt_sa(&sa);
	n = pfk_build_expire(buf, sizeof(buf), 0, &sa, &st, true);
	seen = walk(buf, n);
	assert_int_equal(seen & (BIT(SADB_EXT_SA) | BIT(SADB_X_EXT_SA2) |
				 BIT(SADB_EXT_ADDRESS_SRC) | BIT(SADB_EXT_ADDRESS_DST) |
				 BIT(SADB_EXT_LIFETIME_HARD) | BIT(SADB_EXT_LIFETIME_CURRENT) |
				 BIT(SADB_EXT_LIFETIME_SOFT) | BIT(SADB_EXT_KEY_AUTH) |
				 BIT(SADB_EXT_KEY_ENCRYPT)),
			 BIT(SADB_EXT_SA) | BIT(SADB_X_EXT_SA2) | BIT(SADB_EXT_ADDRESS_SRC) |
				 BIT(SADB_EXT_ADDRESS_DST) | BIT(SADB_EXT_LIFETIME_HARD) |
				 BIT(SADB_EXT_LIFETIME_CURRENT));
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_type, SADB_EXPIRE);
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_pid, 0);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(((const struct sadb_sa *)pm.ext[SADB_EXT_SA])->sadb_sa_state,
			 SADB_SASTATE_DEAD);
	l = (const void *)pm.ext[SADB_EXT_LIFETIME_HARD];
	assert_int_equal(l->sadb_lifetime_addtime, 3600);
	assert_int_equal(l->sadb_lifetime_allocations, 1000000);
	n = pfk_build_expire(buf, sizeof(buf), 3, &sa, &st, false);
	seen = walk(buf, n);
	assert_true(seen & BIT(SADB_EXT_LIFETIME_SOFT));
	assert_false(seen & BIT(SADB_EXT_LIFETIME_HARD));
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(((const struct sadb_sa *)pm.ext[SADB_EXT_SA])->sadb_sa_state,
			 SADB_SASTATE_DYING);
	assert_int_equal(pm.hdr->sadb_msg_seq, 3);
}

static void test_build_getspi_reply_with_larval_sa(void **state)
{
	struct sadb_msg req = get_req;
	uint8_t buf[PFK_REPLY_MAX];
	struct pfk_msg pm;
	struct pfk_out o;
	struct dps_addr a = {.family = AF_INET};
	long n;

	(void)state;
	req.sadb_msg_type = SADB_GETSPI;
	inet_pton(AF_INET, "192.0.2.9", &a.v4);
	pfk_out_begin(&o, buf, sizeof(buf), &req);
	pfk_out_larval(&o, 0xc0000123);
	pfk_out_address(&o, SADB_EXT_ADDRESS_SRC, &a, 32, 0, 0);
	pfk_out_address(&o, SADB_EXT_ADDRESS_DST, &a, 32, 0, 0);
	n = pfk_out_end(&o);
	assert_int_equal(n, 16 + 16 + 24 + 24);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_memory_equal((const uint8_t *)pm.ext[SADB_EXT_SA] + 4, "\xc0\x00\x01\x23", 4);
	assert_int_equal(((const struct sadb_sa *)pm.ext[SADB_EXT_SA])->sadb_sa_state,
			 SADB_SASTATE_LARVAL);
}

static void tunnel_policy(struct dps_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->id = 8 * 3 + 1; /* Linux: index | dir, dir OUT */
	p->dir = DPS_DIR_OUT;
	p->priority = 383615;
	p->sel.src.addr.family = p->sel.dst.addr.family = AF_INET;
	inet_pton(AF_INET, "10.1.0.0", &p->sel.src.addr.v4);
	p->sel.src.len = 16;
	inet_pton(AF_INET, "10.2.0.0", &p->sel.dst.addr.v4);
	p->sel.dst.len = 16;
	p->sel.proto = 255;
	p->sel.sport_hi = p->sel.dport_hi = 65535;
	p->action = DPS_ACTION_PROTECT;
	p->n_reqs = 2;
	p->reqs[0].proto = DPS_PROTO_IPCOMP;
	p->reqs[0].mode = DPS_MODE_TUNNEL;
	p->reqs[0].level = DPS_LEVEL_USE;
	p->reqs[1].proto = DPS_PROTO_ESP;
	p->reqs[1].mode = DPS_MODE_TUNNEL;
	p->reqs[1].level = DPS_LEVEL_UNIQUE;
	p->reqs[1].reqid = 7;
	for (int i = 0; i < 2; i++) {
		p->reqs[i].tun_src.family = p->reqs[i].tun_dst.family = AF_INET6;
		inet_pton(AF_INET6, "2001:db8::1", &p->reqs[i].tun_src.v6);
		inet_pton(AF_INET6, "2001:db8::2", &p->reqs[i].tun_dst.v6);
	}
}

static void test_build_policy_round_trips_with_id(void **state)
{
	struct sadb_msg req = get_req;
	uint8_t buf[PFK_REPLY_MAX];
	const struct sadb_x_policy *x;
	const struct sadb_lifetime *cur;
	struct dps_policy p, back;
	struct pfk_msg pm;
	long n;

	(void)state;
	req.sadb_msg_type = SADB_X_SPDADD;
	tunnel_policy(&p);
	n = pfk_build_policy(buf, sizeof(buf), &req, &p, 1700000000, 1700000005);
	/* hdr 16 + SRC/DST 48 + 3 lifetimes 96 + X_POLICY 16 + 2 x (16 + 56) */
	assert_int_equal(n, 320);
	assert_int_equal(walk(buf, n),
			 BIT(SADB_EXT_ADDRESS_SRC) | BIT(SADB_EXT_ADDRESS_DST) |
				 BIT(SADB_EXT_LIFETIME_HARD) | BIT(SADB_EXT_LIFETIME_SOFT) |
				 BIT(SADB_EXT_LIFETIME_CURRENT) | BIT(SADB_X_EXT_POLICY));
	assert_int_equal(((struct sadb_msg *)buf)->sadb_msg_satype, SADB_SATYPE_UNSPEC);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	x = (const void *)pm.ext[SADB_X_EXT_POLICY];
	assert_int_equal(x->sadb_x_policy_id, 25);
	assert_int_equal(x->sadb_x_policy_dir, IPSEC_DIR_OUTBOUND);
	assert_int_equal(x->sadb_x_policy_type, IPSEC_POLICY_IPSEC);
	assert_int_equal(x->sadb_x_policy_len, (16 + 2 * 72) / 8);
	assert_int_equal(((const struct sadb_x_ipsecrequest *)(x + 1))->sadb_x_ipsecrequest_len,
			 72);
	cur = (const void *)pm.ext[SADB_EXT_LIFETIME_CURRENT];
	assert_int_equal(cur->sadb_lifetime_usetime, 1700000005);
	assert_int_equal(pfk_policy_from_msg(&pm, &back), 0);
	assert_memory_equal(&back, &p, sizeof(p));

	/* A bypass for ICMPv6 type 135 on IPv6, inbound. */
	memset(&p, 0, sizeof(p));
	p.id = 8 * 4;
	p.dir = DPS_DIR_IN;
	p.sel.src.addr.family = p.sel.dst.addr.family = AF_INET6;
	p.sel.proto = IPPROTO_ICMPV6;
	p.sel.sport_lo = p.sel.sport_hi = 135;
	p.sel.dport_hi = 255;
	p.action = DPS_ACTION_BYPASS;
	n = pfk_build_policy(buf, sizeof(buf), &req, &p, 0, 0);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(pfk_policy_from_msg(&pm, &back), 0);
	assert_memory_equal(&back, &p, sizeof(p));
}

static void test_build_acquire_for_charon(void **state)
{
	struct pfk_algs algs = {.n_auth = 2, .n_enc = 2};
	uint8_t buf[PFK_REPLY_MAX];
	const struct sadb_x_policy *x;
	const struct sadb_comb *c;
	const struct sadb_prop *prop;
	struct dps_addr src = {.family = AF_INET}, dst = {.family = AF_INET};
	struct dps_policy p;
	struct pfk_msg pm;
	long n;

	(void)state;
	algs.auth[0] = (struct sadb_alg){SADB_AALG_SHA1HMAC, 0, 160, 160, 0};
	algs.auth[1] = (struct sadb_alg){SADB_X_AALG_SHA2_256HMAC, 0, 256, 256, 0};
	algs.enc[0] = (struct sadb_alg){SADB_X_EALG_AESCBC, 16, 128, 256, 0};
	algs.enc[1] = (struct sadb_alg){SADB_X_EALG_AES_GCM_ICV16, 8, 160, 288, 0};
	tunnel_policy(&p);
	inet_pton(AF_INET, "192.0.2.1", &src.v4);
	inet_pton(AF_INET, "198.51.100.2", &dst.v4);
	n = pfk_build_acquire(buf, sizeof(buf), 77, SADB_SATYPE_ESP, &src, &dst, &p, &algs);
	assert_int_equal(walk(buf, n), BIT(SADB_EXT_ADDRESS_SRC) | BIT(SADB_EXT_ADDRESS_DST) |
					       BIT(SADB_X_EXT_POLICY) | BIT(SADB_EXT_PROPOSAL));
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(pm.hdr->sadb_msg_pid, 0);
	assert_int_equal(pm.hdr->sadb_msg_seq, 77);
	assert_int_equal(pm.hdr->sadb_msg_type, SADB_ACQUIRE);
	x = (const void *)pm.ext[SADB_X_EXT_POLICY];
	assert_int_equal(x->sadb_x_policy_dir, IPSEC_DIR_OUTBOUND);
	assert_int_equal(x->sadb_x_policy_id, 25);
	assert_int_equal(x->sadb_x_policy_len, 2);
	/* CBC x 2 integrity algorithms, GCM alone: 3 combinations. */
	prop = (const void *)pm.ext[SADB_EXT_PROPOSAL];
	assert_int_equal(prop->sadb_prop_len * 8, 8 + 3 * 72);
	assert_int_equal(prop->sadb_prop_replay, 32);
	c = (const void *)(prop + 1);
	assert_int_equal(c[0].sadb_comb_encrypt, SADB_X_EALG_AESCBC);
	assert_int_equal(c[0].sadb_comb_auth, SADB_AALG_SHA1HMAC);
	assert_int_equal(c[1].sadb_comb_auth, SADB_X_AALG_SHA2_256HMAC);
	assert_int_equal(c[2].sadb_comb_encrypt, SADB_X_EALG_AES_GCM_ICV16);
	assert_int_equal(c[2].sadb_comb_auth, SADB_AALG_NONE);
	assert_int_equal(c[2].sadb_comb_encrypt_maxbits, 288);
	assert_int_equal(c[2].sadb_comb_hard_addtime, 86400);
	/* AH: integrity algorithms alone. */
	n = pfk_build_acquire(buf, sizeof(buf), 78, SADB_SATYPE_AH, &src, &dst, &p, &algs);
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	prop = (const void *)pm.ext[SADB_EXT_PROPOSAL];
	assert_int_equal(prop->sadb_prop_len * 8, 8 + 2 * 72);
}

static void test_build_register_reply_lists_algorithms(void **state)
{
	struct pfk_algs algs = {.n_auth = 1, .n_enc = 3};
	struct sadb_msg req = get_req;
	uint8_t buf[PFK_REPLY_MAX];
	struct pfk_msg pm;
	struct pfk_out o;
	long n;

	(void)state;
	req.sadb_msg_type = SADB_REGISTER;
	algs.auth[0] = (struct sadb_alg){SADB_AALG_SHA1HMAC, 0, 160, 160, 0};
	algs.enc[2] = (struct sadb_alg){SADB_X_EALG_AES_GCM_ICV16, 8, 160, 288, 0};
	pfk_out_begin(&o, buf, sizeof(buf), &req);
	pfk_out_supported(&o, &algs);
	n = pfk_out_end(&o);
	assert_int_equal(n, 16 + 16 + 32);
	assert_int_equal(walk(buf, n),
			 BIT(SADB_EXT_SUPPORTED_AUTH) | BIT(SADB_EXT_SUPPORTED_ENCRYPT));
	assert_int_equal(pfk_parse(buf, (size_t)n, &pm), 0);
	assert_int_equal(
		((const struct sadb_alg *)((const uint8_t *)pm.ext[SADB_EXT_SUPPORTED_ENCRYPT] +
					   8))[2]
			.sadb_alg_id,
		SADB_X_EALG_AES_GCM_ICV16);
}

static void test_build_error_is_request_header_with_errno(void **state)
{
	struct sadb_msg req = get_req, out;
	uint8_t buf[PFK_REPLY_MAX];

	(void)state;
	req.sadb_msg_len = 40;
	assert_int_equal(pfk_build_error(buf, sizeof(buf), &req, ESRCH), 16);
	memcpy(&out, buf, sizeof(out));
	assert_int_equal(out.sadb_msg_len, 2);
	assert_int_equal(out.sadb_msg_errno, ESRCH);
	assert_int_equal(out.sadb_msg_type, SADB_GET);
	assert_int_equal(out.sadb_msg_seq, 17);
	assert_int_equal(out.sadb_msg_pid, 999);
	assert_int_equal(out.sadb_msg_satype, SADB_SATYPE_ESP);
	assert_int_equal(pfk_build_error(buf, 15, &req, ESRCH), -EMSGSIZE);
}

static void test_builders_reject_unknown_address_family(void **state)
{
	uint8_t buf[PFK_REPLY_MAX];
	struct dps_sa sa;

	(void)state;
	gcm_natt_sa(&sa);
	sa.dst.family = 0;
	assert_int_equal(pfk_build_sa(buf, sizeof(buf), &get_req, &sa, NULL, true), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_charon_add_gcm_natt_in_charon_order),
		cmocka_unit_test(test_sa_from_charon_add_gcm_natt),
		cmocka_unit_test(test_sa_from_update_cbc_sha256_v6_transport),
		cmocka_unit_test(test_sa_from_ah_sha1),
		cmocka_unit_test(test_sa_from_ipcomp_deflate_and_rejects_lzs),
		cmocka_unit_test(test_sa_esp_algorithm_combinations),
		cmocka_unit_test(test_enc_and_auth_alg_mapping),
		cmocka_unit_test(test_satype_proto_mapping),
		cmocka_unit_test(test_sa_mode_from_sa2),
		cmocka_unit_test(test_sa_rejects_one_lifetime_limit_alone),
		cmocka_unit_test(test_sa_natt_types_and_ports),
		cmocka_unit_test(test_parse_accepts_every_message_type),
		cmocka_unit_test(test_linux_acceptance_table),
		cmocka_unit_test(test_ext_header_ids),
		cmocka_unit_test(test_sa_replay_esn_chacha_from_charon),
		cmocka_unit_test(test_ext_sets_of_dpsec_extensions),
		cmocka_unit_test(test_new_addresses_from_charon_update),
		cmocka_unit_test(test_build_sa_reports_esn_and_clamped_window),
		cmocka_unit_test(test_build_new_mapping_as_linux_plus_sa2),
		cmocka_unit_test(test_parse_iked_sa2_in_spd_messages),
		cmocka_unit_test(test_parse_rejects_short_header),
		cmocka_unit_test(test_parse_rejects_wrong_version),
		cmocka_unit_test(test_parse_rejects_nonzero_reserved),
		cmocka_unit_test(test_parse_rejects_length_mismatch),
		cmocka_unit_test(test_parse_rejects_message_type_0_and_above_max),
		cmocka_unit_test(test_parse_rejects_unhandled_type_with_eopnotsupp),
		cmocka_unit_test(test_parse_rejects_zero_length_extension),
		cmocka_unit_test(test_parse_rejects_extension_beyond_message),
		cmocka_unit_test(test_parse_rejects_extension_type_0),
		cmocka_unit_test(test_parse_skips_extension_type_above_max),
		cmocka_unit_test(test_parse_rejects_duplicate_extension),
		cmocka_unit_test(test_parse_rejects_missing_required_extension),
		cmocka_unit_test(test_parse_ignores_extension_not_used),
		cmocka_unit_test(test_parse_rejects_extension_shorter_than_its_struct),
		cmocka_unit_test(test_parse_rejects_bad_address_family),
		cmocka_unit_test(test_parse_rejects_address_length_not_of_its_family),
		cmocka_unit_test(test_parse_rejects_address_family_mismatch),
		cmocka_unit_test(test_parse_rejects_prefixlen_beyond_family),
		cmocka_unit_test(test_parse_rejects_key_bits_beyond_extension),
		cmocka_unit_test(test_parse_rejects_inverted_spirange),
		cmocka_unit_test(test_parse_rejects_ipcomp_cpi_range_above_16_bits),
		cmocka_unit_test(test_parse_rejects_satype_not_allowed_for_message),
		cmocka_unit_test(test_parse_rejects_ipsecrequest_too_short),
		cmocka_unit_test(test_parse_rejects_ipsecrequest_overflowing_policy),
		cmocka_unit_test(test_parse_rejects_tunnel_request_without_endpoints),
		cmocka_unit_test(test_parse_rejects_tunnel_endpoints_of_two_families),
		cmocka_unit_test(test_parse_rejects_bad_ipsecrequest_fields),
		cmocka_unit_test(test_parse_rejects_policy_type_and_dir_out_of_range),
		cmocka_unit_test(test_parse_rejects_malformed_variable_extensions),
		cmocka_unit_test(test_policy_from_charon_spdadd_tunnel),
		cmocka_unit_test(test_policy_ipcomp_then_esp_transport_v6_inbound),
		cmocka_unit_test(test_policy_icmp_type_and_code_in_ports),
		cmocka_unit_test(test_policy_proto_0_means_any),
		cmocka_unit_test(test_policy_rejects_unusable_actions_dirs_and_requests),
		cmocka_unit_test(test_policy_from_charon_spddelete_without_requests),
		cmocka_unit_test(test_policy_spdget_carries_id),
		cmocka_unit_test(test_build_get_reply_has_what_charon_update_copies),
		cmocka_unit_test(test_build_sa_round_trips_through_parse),
		cmocka_unit_test(test_build_sa_without_keys_omits_them),
		cmocka_unit_test(test_build_sa_reports_emsgsize_when_buffer_small),
		cmocka_unit_test(test_build_expire_hard_and_soft),
		cmocka_unit_test(test_build_getspi_reply_with_larval_sa),
		cmocka_unit_test(test_build_policy_round_trips_with_id),
		cmocka_unit_test(test_build_acquire_for_charon),
		cmocka_unit_test(test_build_register_reply_lists_algorithms),
		cmocka_unit_test(test_build_error_is_request_header_with_errno),
		cmocka_unit_test(test_builders_reject_unknown_address_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
