/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Crypto devices (rte_cryptodev): one queue pair per worker on every device,
 * the session pools (session.c), one crypto-op pool. An SA's session goes to the first
 * configured device whose capabilities cover its transforms.
 */
#ifndef DP_CRYPTO_H
#define DP_CRYPTO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_crypto.h>
#include <rte_cryptodev.h>

#include "control/config.h"

/* Where lib/ipsec writes the IV of a crypto op: right after the symmetric op. */
#define DP_CRYPTO_IV_OFFSET (sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op))

/* Transforms of one SA direction, in the order rte_ipsec wants them. */
struct dp_xforms {
	struct rte_crypto_sym_xform x[2];
	struct rte_crypto_sym_xform *first;
	uint32_t salt; /* GCM/CTR/GMAC/ChaCha20 nonce salt, network order */
	uint16_t icv_len;
	uint8_t iv_len; /* bytes of explicit IV in the packet */
	uint8_t block;	/* padding alignment */
	uint8_t cipher_key[DPS_MAX_KEY_LEN];
	uint8_t auth_key[DPS_MAX_KEY_LEN];
};

/** Wipe @x, keys included (its copies must not outlive the SA's creation). */
static inline void dp_xforms_wipe(struct dp_xforms *x)
{
	explicit_bzero(x, sizeof(*x));
}

struct dp_crypto_dev {
	uint8_t id;
	bool cpu_crypto; /* offers synchronous CPU crypto */
	char name[64];
};

struct dp_crypto {
	unsigned int n_devs;
	struct dp_crypto_dev devs[DPS_MAX_CRYPTODEVS];
	struct rte_mempool *op_pool;
	uint64_t lat_cycles; /* crypto.queue_latency_us in TSC cycles, 0: none */
};

extern struct dp_crypto dp_crypto;

/** Configure and start the devices named in @c, one queue pair per worker. */
int dp_crypto_init(const struct dps_crypto_cfg *c, unsigned int n_workers);

/** Stop and close the devices, free the pools. */
void dp_crypto_fini(void);

/** Translate @sa into cryptodev transforms. 0, or -ENOTSUP with @why set. */
int dp_crypto_xforms(const struct dps_sa *sa, struct dp_xforms *x, const char **why);

struct dp_worker;
struct dp_sa;

/**
 * Prepare @n packets of @sa with lib/ipsec and enqueue them on the worker's
 * queue pair of the SA's device; dp_crypto_poll() completes them. Packets
 * prepare refuses are counted as @prep_fail, the others that cannot be queued
 * as drop_crypto.
 */
void dp_crypto_enqueue(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n,
		       int prep_fail);

struct dp_snapshot;

/**
 * lib/ipsec and the crypto of @n prepared packets of @sa: at once on the CPU,
 * then the SA's finish; or enqueued on the worker's queue pair, finished by
 * dp_crypto_poll(). What lib/ipsec refuses is counted as sa->prep_fail.
 */
void dp_crypto_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		   struct rte_mbuf **mb, uint16_t n);

/**
 * Collect finished crypto operations of the worker's queue pairs (at most
 * one burst; with crypto.queue_latency_us, only those whose latency has
 * passed) and finish them through their SA's finish function. Returns the
 * number of packets completed. They count as finished once
 * dp_crypto_publish() says so.
 */
uint16_t dp_crypto_poll(struct dp_worker *w, const struct dp_snapshot *s);

/**
 * Publish how many of worker @w's operations are finished, their packets
 * through every stage: at the end of its loop, before its quiescent state.
 */
void dp_crypto_publish(struct dp_worker *w);

/**
 * A worker leaving: free the operations its FIFOs still hold and count
 * everything as finished (what a device never returned is lost with it).
 */
void dp_crypto_abandon(struct dp_worker *w);

/**
 * Control thread, after an RCU grace period: wait until every crypto
 * operation enqueued before it (and what finishing them enqueued) is
 * finished, so that the SAs they point to may be freed. Returns at once when
 * none is in flight.
 */
void dp_crypto_settle(void);

/**
 * lib/ipsec's process of @n packets of @sa whose crypto ran (failures flagged
 * on the mbufs), and for inbound SAs dpsec's anti-replay window: the good
 * ones first, their number returned.
 */
uint16_t dp_crypto_process(struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n);

/** Count and free mb[k..n), which lib/ipsec's prepare refused, as @prep_fail
 * (inbound replays are also logged as policy failures). */
void dp_crypto_prep_drop(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k,
			 uint16_t n, int prep_fail);

/** Index (into dp_crypto.devs) of the first device able to run @x, or -1. */
int dp_crypto_pick(const struct dp_xforms *x);

#endif
