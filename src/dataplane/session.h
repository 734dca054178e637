/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Crypto sessions (one per SA) in mempools made on demand: a gateway with a
 * handful of SAs keeps one small pool, one with 100 000 tunnels gets as many
 * pools as it needs, up to crypto.sessions sessions in all. A full pool never
 * refuses an SA while memory and that limit allow. Control thread only, but
 * for dp_session_count().
 */
#ifndef DP_SESSION_H
#define DP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <rte_crypto_sym.h>

/** Sessions per pool: the first pool and each one made when all are full. */
#define DP_SESSION_POOL_SIZE 8192u

/**
 * Get ready to make at most @max sessions of devices @dev_ids[0..@n_devs)
 * (the pool element fits the largest device's private data); makes the first
 * pool. 0, or -1 (logged).
 */
int dp_session_init(unsigned int max, const uint8_t *dev_ids, unsigned int n_devs);

/** Free every pool; every session must be freed already. */
void dp_session_fini(void);

/** The first pool: what a queue pair is given for sessionless operations. */
struct rte_mempool *dp_session_pool0(void);

/** Size of one session's memory (its pool element), for prefetching. */
unsigned int dp_session_size(void);

/**
 * A session of device @dev_id for transforms @x. NULL on failure with
 * rte_errno set and @err saying why, naming the setting or resource to raise:
 * ENOBUFS when crypto.sessions sessions exist, ENOMEM when no hugepage
 * memory is left for another pool, or the device's own error.
 */
void *dp_session_create(uint8_t dev_id, struct rte_crypto_sym_xform *x, char *err, size_t errlen);

/** Give @ses (of device @dev_id) back to its pool. */
void dp_session_free(uint8_t dev_id, void *ses);

/** Sessions in use, and the room of the pools made so far (any thread). */
void dp_session_count(unsigned int *used, unsigned int *room, unsigned int *pools);

#endif
