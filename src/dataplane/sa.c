/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_errno.h>
#include <rte_esp.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_udp.h>

#include "control/wipe.h"
#include "dataplane/ah.h"
#include "dataplane/compress.h"
#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/esp.h"
#include "dataplane/esp_native_in.h"
#include "dataplane/esp_native_out.h"
#include "dataplane/imb.h"
#include "dataplane/ipcomp.h"
#include "dataplane/mtu.h"
#include "dataplane/replay.h"
#include "dataplane/sa.h"
#include "dataplane/session.h"

const char *const dp_sa_counter_names[DP_SA_CNT_MAX] = {
#define DP_SA_CNT_NAME(n, h) #n,
	DP_SA_COUNTERS(DP_SA_CNT_NAME)
#undef DP_SA_CNT_NAME
};

/*
 * How much of lib/ipsec's SA and of the crypto session a worker prefetches
 * (sa.h): the SA's header, sequence number and tunnel template (an inbound
 * SA's replay window follows, touched one bucket at a time), and the
 * session's header and cipher keys, where crypto_aesni_mb keeps the expanded
 * AES and GHASH keys.
 */
#define RSA_PREFETCH_LINES 4u
#define SES_PREFETCH_LINES 12u

/* Ethernet (addresses filled at transmission) + outer IP header, the template
 * lib/ipsec prepends to every outbound tunnel packet. */
struct tun_hdr {
	struct rte_ether_hdr eth;
	union {
		struct rte_ipv4_hdr v4;
		struct rte_ipv6_hdr v6;
	};
} __rte_packed __rte_aligned(2);

static uint32_t tun_template(struct tun_hdr *h, const struct dps_sa *c)
{
	uint8_t proto = c->udp_encap ? IPPROTO_UDP : IPPROTO_ESP;

	memset(h, 0, sizeof(*h));
	if (c->dst.family == AF_INET) {
		h->eth.ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
		h->v4.version_ihl = RTE_IPV4_VHL_DEF;
		h->v4.time_to_live = c->ttl;
		h->v4.next_proto_id = proto;
		h->v4.src_addr = c->src.v4.s_addr;
		h->v4.dst_addr = c->dst.v4.s_addr;
		if (c->dfbit == DPS_DF_SET)
			h->v4.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
		return sizeof(h->eth) + sizeof(h->v4);
	}
	h->eth.ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	h->v6.vtc_flow = rte_cpu_to_be_32(6u << 28);
	h->v6.proto = proto;
	h->v6.hop_limits = c->ttl;
	memcpy(h->v6.src_addr, &c->src.v6, 16);
	memcpy(h->v6.dst_addr, &c->dst.v6, 16);
	return sizeof(h->eth) + sizeof(h->v6);
}

/* The raw 16-bit words of the outer IPv4 template without the fields lib/ipsec
 * or the finish set per packet (TOS, length, id, flags): esp_out.c adds those. */
static uint32_t tun4_sum(const struct rte_ipv4_hdr *tmpl)
{
	struct rte_ipv4_hdr ip = *tmpl;
	uint16_t w[sizeof(ip) / 2];
	uint32_t sum = 0;

	ip.type_of_service = 0;
	ip.total_length = 0;
	ip.packet_id = 0;
	ip.fragment_offset = 0;
	ip.hdr_checksum = 0;
	memcpy(w, &ip, sizeof(w));
	for (unsigned int i = 0; i < RTE_DIM(w); i++)
		sum += w[i];
	return sum;
}

static void fill_prm(struct rte_ipsec_sa_prm *prm, const struct dps_sa *c,
		     const struct dp_xforms *x, struct tun_hdr *h, int inner_family, bool ecn)
{
	struct rte_security_ipsec_xform *ix = &prm->ipsec_xform;
	bool out = c->dir == DPS_DIR_OUT;

	memset(prm, 0, sizeof(*prm));
	/* Several workers may send on one outbound SA (atomic sequence numbers)
	 * or receive for one inbound SA: the replay window is then read through
	 * lib/ipsec's reader copy while one worker at a time updates it (sa->lock). */
	prm->flags = dp.n_workers > 1 ? RTE_IPSEC_SAFLAG_SQN_ATOM : 0;
	ix->spi = c->spi;
	ix->salt = x->salt;
	ix->proto = RTE_SECURITY_IPSEC_SA_PROTO_ESP;
	ix->direction = out ? RTE_SECURITY_IPSEC_SA_DIR_EGRESS : RTE_SECURITY_IPSEC_SA_DIR_INGRESS;
	ix->mode = c->mode == DPS_MODE_TUNNEL ? RTE_SECURITY_IPSEC_SA_MODE_TUNNEL
					      : RTE_SECURITY_IPSEC_SA_MODE_TRANSPORT;
	ix->replay_win_sz = c->replay_window;
	ix->options.esn = c->esn;
	ix->esn.value = c->seq_start; /* lib/ipsec: first outbound SQN, inbound window edge */
	/* RFC 6040 normal mode and DSCP copy on encapsulation. On decapsulation
	 * lib/ipsec 22.11 copies CE inward when either flag is set (and copies no
	 * DSCP): with ecn off, both stay off inbound, and nothing is propagated. */
	ix->options.ecn = ecn;
	ix->options.copy_dscp = out || ecn;
	prm->crypto_xform = x->first;
	if (c->mode != DPS_MODE_TUNNEL) {
		/* lib/ipsec reads the IP version of transport SAs from here */
		prm->trs.proto = c->dst.family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
		return;
	}
	ix->tunnel.type = c->dst.family == AF_INET ? RTE_SECURITY_IPSEC_TUNNEL_IPV4
						   : RTE_SECURITY_IPSEC_TUNNEL_IPV6;
	/* Inbound UDP encapsulation is removed before lib/ipsec sees the packet. */
	if (out && c->udp_encap) {
		ix->options.udp_encap = 1;
		ix->udp.sport = c->encap_sport; /* host order: lib/ipsec converts */
		ix->udp.dport = c->encap_dport;
	}
	prm->tun.hdr_len = tun_template(h, c);
	prm->tun.hdr_l3_off = sizeof(struct rte_ether_hdr);
	prm->tun.next_proto = inner_family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	prm->tun.hdr = h;
}

/*
 * A native SA's key schedule (imb.c), kept as the handle of a lookaside
 * lib/ipsec session that no packet uses: esp_native_out.c and
 * esp_native_in.c frame and check its packets without lib/ipsec. The
 * session and lib/ipsec's SA are still made, and checked by lib/ipsec.
 */
static int native_session_create(struct dp_sa *sa, void *key, char *err, size_t errlen)
{
	int rc;

	sa->ss.crypto.ses = (void *)dp_imb_key_init(key, &sa->cfg);
	sa->native = true;
	sa->ss.type = RTE_SECURITY_ACTION_TYPE_NONE;
	sa->ss.sa = sa->rsa;
	rc = rte_ipsec_session_prepare(&sa->ss);
	if (rc < 0)
		snprintf(err, errlen, "lib/ipsec refused the session: %s", rte_strerror(-rc));
	return rc;
}

static int session_create(struct dp_sa *sa, struct dp_xforms *x, char *err, size_t errlen)
{
	const struct dp_crypto_dev *d = &dp_crypto.devs[sa->dev];
	int rc;

	sa->ss.crypto.ses = dp_session_create(d->id, x->first, err, errlen);
	if (sa->ss.crypto.ses == NULL)
		return -rte_errno;
	sa->ss.crypto.dev_id = d->id;
	/* lib/ipsec 22.11 has no synchronous outbound AES-GMAC: use the queue. */
	bool gmac_out = sa->cfg.enc_alg == DPS_ENC_AES_GMAC && sa->cfg.dir == DPS_DIR_OUT;

	sa->ss.type = d->cpu_crypto && dp.cfg->crypto.cpu_crypto && !gmac_out
			      ? RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO
			      : RTE_SECURITY_ACTION_TYPE_NONE;
	sa->ss.sa = sa->rsa;
	rc = rte_ipsec_session_prepare(&sa->ss);
	if (rc < 0)
		snprintf(err, errlen, "lib/ipsec refused the session: %s", rte_strerror(-rc));
	return rc;
}

/*
 * The width of an inbound SA's window (0: none). A native ESP SA's is
 * dpsec's alone (esp_native_in.c), which then follows lib/ipsec's rule: with
 * ESN at least 64 even when replay_window is 0, the high half needs a top.
 */
static uint32_t replay_width(const struct dps_sa *cfg, bool native)
{
	if (cfg->dir != DPS_DIR_IN)
		return 0;
	if (native && cfg->proto == DPS_PROTO_ESP && cfg->esn && cfg->replay_window == 0)
		return 64;
	return cfg->replay_window;
}

/*
 * dpsec's anti-replay window (replay.h), which decides after lib/ipsec's: the
 * same width and top. An ESN SA's high half is reconstructed with the width
 * lib/ipsec uses for it, at least 64 (its sa.c), so that both find the same
 * number.
 */
static void replay_init(struct dp_sa *sa, void *mem)
{
	uint32_t win = replay_width(&sa->cfg, sa->native);

	sa->replay = mem;
	dp_replay_init(sa->replay, win, sa->cfg.esn ? RTE_MAX(win, 64u) : 0, sa->cfg.seq_start);
}

/*
 * Where the parts of an SA sit in its one allocation: the dp_sa, the
 * workers' counters, lib/ipsec's SA, the native key schedule, the replay
 * window; each part cache-line aligned, absent ones 0 bytes. One rte_malloc
 * element instead of five saves four element headers (64 bytes each) and
 * their rounding, and keeps an SA's lines together.
 */
struct sa_layout {
	size_t cnt, rsa, key, replay, size;
};

static struct sa_layout sa_layout(size_t rsa, size_t key, size_t replay)
{
	struct sa_layout l;

	l.cnt = DP_SA_CNT_OFF;
	l.rsa = l.cnt + sizeof(struct dp_sa_counters) * dp.n_workers;
	l.key = l.rsa + RTE_ALIGN_CEIL(rsa, RTE_CACHE_LINE_SIZE);
	l.replay = l.key + RTE_ALIGN_CEIL(key, RTE_CACHE_LINE_SIZE);
	l.size = l.replay + RTE_ALIGN_CEIL(replay, RTE_CACHE_LINE_SIZE);
	return l;
}

static struct dp_sa *sa_alloc(const struct sa_layout *l)
{
	uint8_t *p = rte_zmalloc("dps_sa", l->size, RTE_CACHE_LINE_SIZE);
	struct dp_sa *sa = (struct dp_sa *)p;

	if (sa == NULL)
		return NULL;
	sa->cnt = (struct dp_sa_counters *)(p + l->cnt);
	sa->size = (uint32_t)l->size;
	return sa;
}

/* The knobs and endpoints every SA keeps (sa.h), whatever its protocol. */
static void sa_common(struct dp_sa *sa, const struct dps_sa *cfg, int inner_family,
		      const struct dps_ipsec_defaults *def)
{
	sa->cfg = *cfg;
	sa->outer_family = cfg->dst.family;
	memcpy(sa->dst, &cfg->dst.v6, cfg->dst.family == AF_INET ? 4 : 16);
	sa->mode = cfg->mode;
	sa->udp_encap = cfg->udp_encap;
	sa->inner_family = cfg->mode == DPS_MODE_TUNNEL ? inner_family : cfg->dst.family;
	sa->ecn = def->ecn;
	sa->ah_cleartos = def->ah_cleartos;
	sa->dfbit = cfg->dfbit;
	sa->ttl = cfg->ttl;
	sa->copy_df = cfg->mode == DPS_MODE_TUNNEL && cfg->dfbit == DPS_DF_COPY &&
		      cfg->dst.family == AF_INET;
	sa->frag_outer = cfg->dir == DPS_DIR_OUT &&
			 (cfg->mode == DPS_MODE_TUNNEL
				  ? cfg->dst.family == AF_INET6 || cfg->dfbit != DPS_DF_SET
				  : cfg->dst.family == AF_INET);
	sa->add_ms = dp_now_ms();
}

/*
 * An IPComp SA (ipcomp.c): no lib/ipsec SA, no crypto session, the
 * compression device's. At worst a packet leaves uncompressed: it grows by
 * the outer header (tunnel) and nothing else (the MTU check, output.c, keeps
 * 2 bytes of ESP trailer besides: conservative by 2 bytes).
 */
static struct dp_sa *ipcomp_create(const struct dps_sa *cfg, int inner_family,
				   const struct dps_ipsec_defaults *def, char *err, size_t errlen)
{
	struct dp_sa *sa;

	if (!dp_compress.ready) {
		snprintf(err, errlen, "IPComp needs a compress device, and none started");
		return NULL;
	}
	struct sa_layout l = sa_layout(0, 0, 0);

	sa = sa_alloc(&l);
	if (sa == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sa_common(sa, cfg, inner_family, def);
	sa->block = 1;
	sa->overhead = cfg->mode != DPS_MODE_TUNNEL ? 0
		       : cfg->dst.family == AF_INET ? sizeof(struct rte_ipv4_hdr)
						    : sizeof(struct rte_ipv6_hdr);
	sa->sync = true;
	sa->crypto = dp_crypto_run; /* not called: IPComp's transform runs the whole group */
	rte_spinlock_init(&sa->lock);
	sa->xf = dp_ipcomp_ops(sa);
	return sa;
}

static struct dp_sa *sa_create(const struct dps_sa *cfg, int inner_family,
			       const struct dps_ipsec_defaults *def, char *err, size_t errlen)
{
	struct rte_ipsec_sa_prm prm;
	/* on every way out: the keys live on only in the session */
	struct dp_xforms x __attribute__((cleanup(dp_xforms_wipe)));
	struct sa_layout l;
	struct tun_hdr h;
	const char *why;
	struct dp_sa *sa;
	int dev, sz = 0, rc;
	bool native, ah = cfg->proto == DPS_PROTO_AH;
	int inner = cfg->mode == DPS_MODE_TUNNEL ? inner_family : cfg->dst.family;

	if (dp_crypto_xforms(cfg, &x, &why) < 0) {
		snprintf(err, errlen, "%s", why);
		rte_errno = ENOTSUP;
		return NULL;
	}
	native = dp_imb_fits(cfg);
	dev = native ? 0 : dp_crypto_pick(&x);
	if (dev < 0) {
		snprintf(err, errlen, "no configured crypto device supports this SA's algorithms");
		rte_errno = ENOTSUP;
		return NULL;
	}
	if (!ah) { /* AH has no lib/ipsec SA: ah.c */
		fill_prm(&prm, cfg, &x, &h, inner, def->ecn);
		sz = rte_ipsec_sa_size(&prm);
		if (sz < 0) {
			snprintf(err, errlen, "lib/ipsec refused the SA parameters: %s",
				 rte_strerror(-sz));
			rte_errno = ENOTSUP;
			return NULL;
		}
	}
	l = sa_layout(sz, native ? dp_imb_key_size() : 0,
		      replay_width(cfg, native) > 0 ? dp_replay_size(replay_width(cfg, native))
						    : 0);
	sa = sa_alloc(&l);
	if (sa == NULL)
		goto nomem;
	sa->cfg = *cfg;
	sa->dev = dev;
	sa->outer_family = cfg->dst.family;
	memcpy(sa->dst, &cfg->dst.v6, cfg->dst.family == AF_INET ? 4 : 16);
	sa->mode = cfg->mode;
	sa->udp_encap = cfg->udp_encap;
	sa->inner_family = inner;
	sa->ecn = def->ecn;
	sa->ah_cleartos = def->ah_cleartos;
	sa->dfbit = cfg->dfbit;
	sa->ttl = cfg->ttl;
	sa->copy_df = cfg->mode == DPS_MODE_TUNNEL && cfg->dfbit == DPS_DF_COPY &&
		      cfg->dst.family == AF_INET;
	/* Whether an IPv4 packet without DF may be protected even when its ESP
	 * will not fit the link, and be fragmented once protected (RFC 4301 §8.1):
	 * the outer IPv4 header lacks DF unless dfbit is set; transport mode
	 * keeps the packet's own header; the gateway is the source of an outer
	 * IPv6 header, which it may fragment (RFC 8200 §4.5). */
	sa->frag_outer = cfg->dir == DPS_DIR_OUT &&
			 (cfg->mode == DPS_MODE_TUNNEL
				  ? cfg->dst.family == AF_INET6 || cfg->dfbit != DPS_DF_SET
				  : cfg->dst.family == AF_INET);
	sa->iv_len = x.iv_len;
	sa->icv_len = x.icv_len;
	sa->block = x.block;
	/* Outer IP (tunnel), UDP (NAT-T), ESP header, IV and ICV: what an
	 * outbound packet grows by, besides padding and the 2-byte trailer. */
	sa->overhead = dp_esp_overhead(cfg->mode == DPS_MODE_TUNNEL, cfg->dst.family == AF_INET6,
				       cfg->udp_encap, x.iv_len, x.icv_len);
	sa->add_ms = dp_now_ms();
	sa->out_sqn = cfg->seq_start;
	sa->ah_offsetmask = def->ah_offsetmask;
	if (ah) { /* no lib/ipsec SA: ah.c */
		rc = dp_ah_init(sa, &x, native ? (uint8_t *)sa + l.key : NULL);
		if (rc < 0) {
			snprintf(err, errlen, "%s refused the AH session: %s",
				 native ? "the native engine" : "the crypto device",
				 rte_strerror(-rc));
			dp_sa_free(sa);
			return NULL;
		}
		goto made;
	}
	if (cfg->mode == DPS_MODE_TUNNEL && cfg->dst.family == AF_INET)
		sa->tun4_sum = tun4_sum(&h.v4);
	sa->rsa = (struct rte_ipsec_sa *)((uint8_t *)sa + l.rsa);
	prm.userdata = (uintptr_t)sa;
	/* a native SA's packets never read lib/ipsec's SA (esp_native_in.c,
	 * esp_native_out.c) */
	sa->rsa_lines = native ? 0
			       : RTE_MIN((unsigned int)RTE_ALIGN_CEIL(sz, RTE_CACHE_LINE_SIZE) /
						 RTE_CACHE_LINE_SIZE,
					 RSA_PREFETCH_LINES);
	sa->ses_lines =
		native ? dp_imb_key_lines(cfg)
		       : RTE_MIN(dp_session_size() / RTE_CACHE_LINE_SIZE, SES_PREFETCH_LINES);
	if (native) { /* ESP's AES-GCM (an AH SA went to made: above) */
		unsigned int first = 0;

		sa->hkey_lines = (uint8_t)dp_imb_hkey_lines(&first);
		sa->hkey_line = (uint8_t)first;
	}
	rc = rte_ipsec_sa_init(sa->rsa, &prm, sz);
	if (rc < 0) {
		snprintf(err, errlen, "lib/ipsec refused the SA: %s", rte_strerror(-rc));
		rc = -ENOTSUP;
		sa->rsa = NULL; /* nothing for rte_ipsec_sa_fini */
	} else {
		rc = native ? native_session_create(sa, (uint8_t *)sa + l.key, err, errlen)
			    : session_create(sa, &x, err, errlen);
	}
	if (rc >= 0 && native && cfg->dir == DPS_DIR_OUT) {
		/* dpsec frames these (esp_native_out.c): lib/ipsec's SA stays unread */
		bool v4 = cfg->dst.family == AF_INET;

		dp_esp_native_out_init(sa, x.salt, v4 ? (const void *)&h.v4 : (const void *)&h.v6,
				       v4 ? sizeof(h.v4) : sizeof(h.v6));
	}
	memset(&x, 0, sizeof(x)); /* keys live on only in the session */
	if (rc < 0) {
		dp_sa_free(sa);
		rte_errno = -rc;
		return NULL;
	}
made:
	if (l.replay < l.size)
		replay_init(sa, (uint8_t *)sa + l.replay);
	sa->sync = sa->ss.type == RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO || sa->native;
	if (!sa->native)
		sa->crypto = dp_crypto_run;
	else if (cfg->proto == DPS_PROTO_AH)
		sa->crypto = dp_ah_imb_run;
	else if (cfg->dir == DPS_DIR_IN)
		sa->crypto = dp_esp_native_in_run(sa);
	/* else outbound ESP: chosen with its framing (dp_esp_native_out_init) */
	sa->serial = cfg->dir == DPS_DIR_IN && dp.n_workers > 1;
	rte_spinlock_init(&sa->lock);
	/* Lengths were checked before (esp_in.c): what lib/ipsec's prepare
	 * refuses inbound is outside the replay window. */
	sa->prep_fail = cfg->dir == DPS_DIR_IN ? DP_SA_CNT_drop_replay : DP_SA_CNT_drop_other;
	if (ah)
		sa->xf = dp_ah_ops(sa);
	else
		sa->xf = cfg->dir == DPS_DIR_OUT ? dp_esp_out_ops(sa) : dp_esp_in_ops(sa);
	return sa;
nomem:
	snprintf(err, errlen, "out of hugepage memory: reserve more hugepages (vm.nr_hugepages)");
	memset(&x, 0, sizeof(x));
	rte_errno = ENOMEM;
	return NULL;
}

struct dp_sa *dp_sa_create(const struct dps_sa *cfg, int inner_family,
			   const struct dps_ipsec_defaults *def, char *err, size_t errlen)
{
	struct dp_sa *sa;

	if (cfg->proto == DPS_PROTO_IPCOMP)
		return ipcomp_create(cfg, inner_family, def, err, errlen);
	sa = sa_create(cfg, inner_family, def, err, errlen);

	/* the session's set-up (the PMD's key schedule, HMAC pads) ran below */
	dps_stack_wipe();
	return sa;
}

/*
 * The keys go with the SA. DPDK 22.11's rte_cryptodev_sym_session_free has
 * the PMD clear the session (sym_session_clear; the public
 * rte_cryptodev_sym_session_clear of older releases is gone) and then zeroes
 * the session's private data, where crypto_aesni_mb keeps the expanded keys
 * (whose first round keys are the key itself) and crypto_openssl its copy.
 * rte_free zeroes only memory it knows to be clean (not a "dirty" hugepage
 * segment): the copy in sa->cfg and the native key schedule are wiped here.
 */
void dp_sa_free(struct dp_sa *sa)
{
	if (sa == NULL)
		return;
	if (!sa->native && sa->ss.crypto.ses != NULL)
		dp_session_free(dp_crypto.devs[sa->dev].id, sa->ss.crypto.ses);
	if (sa->rsa != NULL)
		rte_ipsec_sa_fini(sa->rsa);
	/* the SA's one allocation: the native key schedule and the copy of the
	 * keys in sa->cfg with it */
	explicit_bzero(sa, sa->size);
	rte_free(sa);
}

void dp_sa_counters(const struct dp_sa *sa, struct dp_sa_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int w = 0; w < dp.n_workers; w++)
		for (unsigned int c = 0; c < DP_SA_CNT_MAX; c++)
			out->v[c] += __atomic_load_n(&sa->cnt[w].v[c], __ATOMIC_RELAXED);
}
