/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A security association on the dataplane: the rte_ipsec SA, its crypto
 * session, and the per-worker counters. Created once when the store adds the
 * SA; snapshots only point at it. The functions that process its packets are
 * chosen here, once, from its direction, mode and crypto path.
 */
#ifndef DP_SA_H
#define DP_SA_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ipsec.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include "control/ipsec.h"

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
	X(drop_other, "other processing error (no room for headers, bad inner header)")

enum dp_sa_counter {
#define DP_SA_CNT_ENUM(n, h) DP_SA_CNT_##n,
	DP_SA_COUNTERS(DP_SA_CNT_ENUM)
#undef DP_SA_CNT_ENUM
		DP_SA_CNT_MAX
};

extern const char *const dp_sa_counter_names[DP_SA_CNT_MAX];

/* One worker's counters of an SA, on its own cache lines. @grp_gen/@grp are
 * that worker's scratch while it groups a burst by SA (fwd.c). */
struct dp_sa_counters {
	uint32_t grp_gen;
	uint16_t grp;
	uint64_t v[DP_SA_CNT_MAX];
} __rte_cache_aligned;

/** Runs one group of packets of @sa through IPsec; consumes every mbuf. */
typedef void (*dp_sa_run_t)(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
			    struct rte_mbuf **mb, uint16_t n);

/*
 * The first two cache lines are all a worker reads for an outbound packet:
 * with thousands of SAs in use they are cold, and fwd.c prefetches them (and
 * the lib/ipsec SA and crypto session they point to) a burst stage ahead.
 */
struct dp_sa {
	struct rte_ipsec_session ss; /* first: lib/ipsec hands it back from crypto ops */
	struct rte_ipsec_sa *rsa;
	dp_sa_run_t run;	    /* sync (CPU crypto) or async (cryptodev queue) */
	struct dp_sa_counters *cnt; /* [n_workers] */
	volatile uint64_t first_use_ms;
	uint8_t dst[16];   /* outbound: where the ESP packets go (cfg.dst) */
	uint16_t overhead; /* outbound: bytes added besides padding and trailer (esp_out.c) */
	uint8_t dev;	   /* index into dp_crypto.devs */
	uint8_t outer_family;
	uint8_t inner_family; /* tunnel mode: what the SA carries outbound */
	uint8_t mode;	      /* cfg.mode */
	bool udp_encap;	      /* cfg.udp_encap */
	bool copy_df;
	bool frag_outer; /* outbound: the protected packet may leave without DF (frag.c) */
	uint8_t iv_len;	 /* explicit IV bytes in each packet */
	uint8_t icv_len;
	uint8_t block;	   /* ciphertext alignment */
	uint8_t rsa_lines; /* cache lines of *rsa, to prefetch */
	uint8_t ses_lines; /* of the crypto session: its header and keys */
	/* Control thread, and the rare paths. */
	struct dps_sa cfg;
	uint32_t id;	 /* store's handle */
	uint64_t add_ms; /* for lifetimes */
};

/** Prefetch what a worker reads of @sa after its first two lines. */
static inline void dp_sa_prefetch_state(const struct dp_sa *sa, unsigned int worker)
{
	const uint8_t *r = (const uint8_t *)sa->rsa, *c = (const uint8_t *)sa->ss.crypto.ses;

	rte_prefetch0(&sa->cnt[worker]);
	for (unsigned int i = 0; i < sa->rsa_lines; i++)
		rte_prefetch0(r + i * RTE_CACHE_LINE_SIZE);
	for (unsigned int i = 0; i < sa->ses_lines; i++)
		rte_prefetch0(c + i * RTE_CACHE_LINE_SIZE);
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
