/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The native crypto engine: ESP's AES-GCM (128 and 256) through
 * intel-ipsec-mb's direct API, as VPP's ipsecmb engine and Open vSwitch do,
 * without the cryptodev framework around it. lib/ipsec still frames the
 * packets, numbers and checks them (its lookaside preparation fills crypto
 * ops, which never reach a device); only the crypto call is dpsec's.
 */
#ifndef DP_IMB_H
#define DP_IMB_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "control/ipsec.h"

struct dp_worker;
struct dp_snapshot;
struct dp_sa;
struct dp_imb_key;

/**
 * Set the engine up for @n_workers workers: a manager each (and one for the
 * control thread's key schedules), their crypto ops. Without AES-NI or
 * intel-ipsec-mb the engine stays off (not an error); -1 when memory lacks.
 */
int dp_imb_init(unsigned int n_workers);

/** Free the managers and ops. */
void dp_imb_fini(void);

/** Whether the native engine runs SA @cfg: AES-GCM with a 128 or 256-bit
 * key, the engine on (crypto.engine: native) and usable on this CPU. */
bool dp_imb_fits(const struct dps_sa *cfg);

/** Bytes of a key schedule (a multiple of the cache line). */
size_t dp_imb_key_size(void);

/**
 * Make the key schedule of @cfg's AES-GCM key (control thread) in @mem:
 * dp_imb_key_size() zeroed bytes of hugepage memory, cache-line aligned
 * (the SA's own allocation, sa.c). Its first 8 bytes are lib/ipsec's
 * session opaque data (it takes the key for its session handle). Wiped with
 * the memory it lives in.
 */
struct dp_imb_key *dp_imb_key_init(void *mem, const struct dps_sa *cfg);

/** Cache lines of a key to prefetch from its start: its header and AES
 * round keys (and the GHASH keys that follow them, but for VAES). */
unsigned int dp_imb_key_lines(void);

/** The lines of a key's GHASH keys a packet of up to 256 bytes reads when
 * they are not after the round keys (VAES): how many, from line @first. */
unsigned int dp_imb_hkey_lines(unsigned int *first);

/**
 * The crypto step of a native SA's chain: lib/ipsec prepares @n packets of
 * @sa, the worker's manager encrypts or decrypts them, lib/ipsec processes
 * them, and the SA's finish takes them.
 */
void dp_imb_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		struct rte_mbuf **mb, uint16_t n);

#endif
