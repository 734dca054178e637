/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A security association on the dataplane: the rte_ipsec SA, its crypto
 * session, and the per-worker counters. Created once when the store adds the
 * SA; snapshots only point at it. The functions that process its packets are
 * chosen here, once, from its direction, protocol, mode, encapsulation, outer
 * family and crypto path.
 */
#ifndef DP_SA_H
#define DP_SA_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ipsec.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_spinlock.h>

#include "control/ipsec.h"
#include "dataplane/esp_native_out.h"

struct dp_worker;
struct dp_snapshot;
struct dp_sa;

#define DP_SA_COUNTERS(X)                                                                          \
	X(packets, "packets protected (out) or accepted (in)")                                     \
	X(bytes, "bytes of those packets, before (out) or after (in) IPsec")                       \
	X(drop_auth, "inbound: integrity check failed")                                            \
	X(drop_replay, "inbound: sequence number replayed or left of the window")                  \
	X(drop_pad, "inbound: invalid padding or trailer after decryption")                        \
	X(drop_len, "inbound: truncated ESP or payload not a multiple of the block size")          \
	X(drop_policy, "inbound: decrypted packet outside the SA's policy (RFC 4301 5.2)")         \
	X(drop_ecn, "inbound: outer CE on a Not-ECT inner packet (RFC 6040 4.2)")                  \
	X(drop_crypto, "crypto device refused or failed the operation")                            \
	X(drop_other, "other processing error (no room for headers, bad inner header)")            \
	X(drop_bundle, "outbound: the next SA of its bundle is gone; dropped, never sent with "    \
		       "fewer layers")                                                             \
	X(uncompressed, "outbound IPComp: sent without compression (small or incompressible, "     \
			"RFC 3173 2.2)")                                                           \
	X(drop_decomp, "inbound IPComp: the DEFLATE stream did not decompress")                    \
	X(drop_bomb, "inbound IPComp: decompressed beyond the MTU-derived bound")                  \
	X(natt_remap, "inbound: authenticated ESP-in-UDP from a new peer address or port, "        \
		      "reported")

enum dp_sa_counter {
#define DP_SA_CNT_ENUM(n, h) DP_SA_CNT_##n,
	DP_SA_COUNTERS(DP_SA_CNT_ENUM)
#undef DP_SA_CNT_ENUM
		DP_SA_CNT_MAX
};

extern const char *const dp_sa_counter_names[DP_SA_CNT_MAX];

/* One worker's counters of an SA, on its own cache lines. @grp_gen/@grp are
 * that worker's scratch while it groups a burst by SA (policy.c). */
struct dp_sa_counters {
	uint32_t grp_gen;
	uint16_t grp;
	/* Outbound: the route and neighbour entry of the SA's peer as this
	 * worker last looked them up (dp_output_peer()), valid while the
	 * snapshot's and the neighbour table's generations are these. Beside
	 * the packet counters: one line for a burst's SA. */
	uint32_t peer_ngen;
	uint64_t peer_sgen; /* 0: never looked up (snapshots count from 1) */
	const struct dp_nexthop *peer_nh;
	struct dp_neigh *peer_neigh;
	uint64_t v[DP_SA_CNT_MAX];
	/* Inbound ESP-in-UDP: the last new peer mapping this worker saw after
	 * authentication (esp_in.c), for the control thread (a seqlock: odd
	 * @nat_seq while the worker writes). */
	uint32_t nat_seq;
	uint16_t nat_sport;
	uint8_t nat_src[16];
	uint64_t nat_ms;
} __rte_cache_aligned;

/* A worker reports an SA's new peer mapping at most this often. */
#define DP_NATT_REPORT_MS 1000

/**
 * The packet work of one SA before its crypto: lengths and offsets lib/ipsec
 * wants, what the finish needs remembered. Returns how many of @mb go on
 * (the others are freed and counted).
 */
typedef uint16_t (*dp_xform_prepare_t)(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
				       uint16_t n);

/**
 * The packet work of one SA after its crypto: mb[0..k) succeeded, mb[k..n)
 * failed (counted and freed here). The finished packets are handed on:
 * outbound to the output stage (or the next SA of a bundle), inbound back to
 * the worker as a new sub-burst (w->st.again). Consumes every mbuf.
 */
typedef void (*dp_xform_finish_t)(struct dp_worker *w, const struct dp_snapshot *s,
				  struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k, uint16_t n);

/*
 * One SA's transform: a prepare/finish pair chosen once when the SA is made
 * (dp_sa_create) for its direction, protocol, mode, UDP encapsulation and
 * outer family, as DPDK's lib/ipsec picks esp_outb_tun_prepare or
 * esp_outb_trs_prepare. Between the two runs lib/ipsec and the crypto, CPU
 * or queue (crypto.c). AH and IPComp add their own pairs in ah.c and
 * ipcomp.c.
 */
typedef void (*dp_xform_run_t)(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			       struct rte_mbuf **mb, uint16_t n);

struct dp_xform_ops {
	dp_xform_prepare_t prepare;
	dp_xform_finish_t finish;
	/* A transform without cryptodev (IPComp: compressdev) runs the whole
	 * group here instead of prepare → crypto → finish; NULL for the others. */
	dp_xform_run_t run;
};

/* The most SAs one policy applies in a bundle (IPComp, ESP, AH: RFC 4301 §4.5). */
#define DP_BUNDLE_MAX 3

/*
 * The first two cache lines are all a worker reads for an outbound packet:
 * with thousands of SAs in use they are cold, and policy.c prefetches them
 * (and xform.c the lib/ipsec SA and crypto session they point to) a burst
 * stage ahead.
 */
struct dp_sa {
	struct rte_ipsec_session ss; /* first: lib/ipsec hands it back from crypto ops */
	struct rte_ipsec_sa *rsa;
	const struct dp_xform_ops *xf; /* this SA's transform (a static table) */
	/* The crypto step between xf's prepare and finish: the cryptodev's
	 * (dp_crypto_run) or the native engine's (ESP: esp_native_out.c's
	 * framing and crypto, esp_native_in.c's without lib/ipsec; AH:
	 * dp_ah_imb_run), chosen once. */
	dp_xform_run_t crypto;
	struct dp_sa_counters *cnt; /* [n_workers], in the SA's allocation */
	volatile uint64_t first_use_ms;
	uint8_t dst[16];   /* outbound: where the ESP packets go (cfg.dst) */
	uint16_t overhead; /* outbound: bytes added besides padding and trailer (mtu.h) */
	/* Out, tunnel over IPv4: the one's complement sum (raw 16-bit words) of
	 * the outer header's constant fields, for its checksum (esp_out.c) */
	uint32_t tun4_sum;
	uint8_t outer_family;
	uint8_t mode;	   /* cfg.mode */
	bool sync;	   /* CPU crypto, else the worker's cryptodev queue pair */
	uint8_t prep_fail; /* enum dp_sa_counter for what lib/ipsec's prepare refuses */
	bool frag_outer;   /* outbound: the protected packet may leave without DF (frag.c) */
	bool bundled;	   /* out: a bundle's inner layer once (kept): finish hands on to @outer */
	uint8_t iv_len;	   /* explicit IV bytes in each packet */
	uint8_t icv_len;
	uint8_t block;	    /* ciphertext alignment */
	uint8_t rsa_lines;  /* cache lines of *rsa, to prefetch */
	uint8_t nout_lines; /* of @nout (native outbound ESP: no *rsa read) */
	uint8_t ses_lines;  /* of the crypto session: its header and keys */
	uint8_t hkey_line;  /* native: the GHASH keys' lines, from this one ... */
	uint8_t hkey_lines; /* ... this many (0: none apart) */
	bool serial;	    /* in, several workers: process() one worker at a time (lock) */
	/* Control thread, the choice of the transform, and the rare paths. */
	uint8_t dev;	      /* index into dp_crypto.devs */
	bool native;	      /* crypto by imb.c; ss.crypto.ses is its key schedule */
	uint8_t inner_family; /* tunnel mode: what the SA carries outbound */
	bool udp_encap;	      /* cfg.udp_encap */
	/* The knobs of ipsec(4) as they were when the SA was made: a reload
	 * changes them for new SAs only, never under a packet. */
	bool ecn;		/* RFC 6040 on encapsulation and decapsulation */
	bool copy_df;		/* out, tunnel, outer IPv4: DF follows the inner packet's */
	uint8_t dfbit;		/* enum dps_dfbit */
	uint8_t ttl;		/* outer TTL / hop limit (tunnel) */
	bool ah_cleartos;	/* AH: IPv4 TOS out of the ICV */
	uint16_t ah_offsetmask; /* AH: IPv4 flags and fragment offset ANDed with this in the ICV */
	uint8_t ah_len;		/* AH: its header's length, IV, ICV and padding included */
	uint32_t ah_salt;	/* AH with AES-GMAC: the nonce's salt (RFC 4543 §3.1) */
	/* Out: the last sequence number used, for the SAs dpsec numbers itself
	 * (AH, and the native engine's ESP: esp_native_out.c; lib/ipsec numbers
	 * the ESP SAs it frames). Starts at cfg.seq_start. */
	uint64_t out_sqn;
	/* Out, in a bundle: the SA applied after this one (RFC 4301 §4.5). Set
	 * (with @bundled) by the control thread when a policy binds a bundle,
	 * NULL when that SA is deleted: the packets then drop (drop_bundle). */
	struct dp_sa *outer;
	/* Inbound with several workers: lib/ipsec lets one thread at a time run
	 * rte_ipsec_pkt_process() (the replay window's update) on an SA; dpsec's
	 * own window is updated under the same lock. */
	rte_spinlock_t lock;
	/* In: the anti-replay window that decides (replay.h, esp_in.c); NULL
	 * when replay_window is 0. */
	struct dp_replay *replay;
	struct dps_sa cfg;
	/* Control thread: NAT mapping reports seen (sum of the workers' nat_seq)
	 * and the mapping last sent to the key daemons (pfkey_emul/events.c). */
	uint64_t nat_seen;
	uint16_t nat_sent_sport;
	uint8_t nat_sent_src[16];
	uint32_t id;	 /* store's handle */
	uint32_t size;	 /* bytes of the SA's one allocation (its parts: sa.c) */
	uint64_t add_ms; /* for lifetimes */
	/* Out, native engine's ESP: what esp_native_out.c writes into each packet */
	struct dp_esp_nout nout;
};

/* Where sa->cnt is: right after the dp_sa, in its allocation (sa.c). */
#define DP_SA_CNT_OFF RTE_ALIGN_CEIL(sizeof(struct dp_sa), RTE_CACHE_LINE_SIZE)

/** Worker @worker's counters of @sa, found without reading @sa (sa->cnt). */
static inline struct dp_sa_counters *dp_sa_cnt(const struct dp_sa *sa, unsigned int worker)
{
	return (struct dp_sa_counters *)((uintptr_t)sa + DP_SA_CNT_OFF) + worker;
}

/** Prefetch what a worker reads of @sa after its first two lines. */
static inline void dp_sa_prefetch_state(const struct dp_sa *sa, unsigned int worker)
{
	const uint8_t *r = (const uint8_t *)sa->rsa, *c = (const uint8_t *)sa->ss.crypto.ses;

	rte_prefetch0(&sa->cnt[worker]);
	for (unsigned int i = 0; i < sa->rsa_lines; i++)
		rte_prefetch0(r + i * RTE_CACHE_LINE_SIZE);
	for (unsigned int i = 0; i < sa->nout_lines; i++)
		rte_prefetch0((const uint8_t *)&sa->nout + i * RTE_CACHE_LINE_SIZE);
	for (unsigned int i = 0; i < sa->ses_lines; i++)
		rte_prefetch0(c + i * RTE_CACHE_LINE_SIZE);
	/* an SA without a key (IPComp) has no GHASH lines either */
	for (unsigned int i = 0; i < sa->hkey_lines; i++)
		rte_prefetch0(c + (sa->hkey_line + i) * RTE_CACHE_LINE_SIZE);
}

/**
 * Create the dataplane SA for @cfg. @inner_family is the family of the
 * packets an outbound tunnel SA carries (AF_INET or AF_INET6). Returns NULL
 * and sets @err and rte_errno on failure: ENOTSUP (no device supports it, bad
 * parameters), ENOBUFS (crypto.sessions sessions exist), ENOMEM (out of
 * hugepage memory); @err names the setting or resource to raise.
 */
struct dp_sa *dp_sa_create(const struct dps_sa *cfg, int inner_family,
			   const struct dps_ipsec_defaults *def, char *err, size_t errlen);

/** Free @sa; no snapshot may reference it any more. */
void dp_sa_free(struct dp_sa *sa);

/** Sum of @sa's counters over the workers. */
void dp_sa_counters(const struct dp_sa *sa, struct dp_sa_counters *out);

static inline void dp_sa_count(struct dp_sa *sa, unsigned int worker, enum dp_sa_counter c,
			       uint64_t n)
{
	sa->cnt[worker].v[c] += n;
}

/** Free mb[from..to) and count them as @c on @sa. */
static inline void dp_sa_drop(struct dp_sa *sa, unsigned int worker, struct rte_mbuf **mb,
			      uint16_t from, uint16_t to, enum dp_sa_counter c)
{
	if (from >= to)
		return;
	sa->cnt[worker].v[c] += to - from;
	rte_pktmbuf_free_bulk(&mb[from], to - from);
}

#endif
