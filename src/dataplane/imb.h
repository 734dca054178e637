/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The native crypto engine: ESP's AES-GCM (128 and 256) through
 * intel-ipsec-mb's direct API, and AH's HMAC-SHA1-96 and HMAC-SHA2-256-128,
 * -384-192, -512-256 through its hash-only jobs, as VPP's ipsecmb engine and
 * Open vSwitch do, without the cryptodev framework around it. ESP is
 * dpsec's own in both directions: outbound framed and numbered by
 * esp_native_out.c, inbound checked against the window and stripped by
 * esp_native_in.c, each calling the library right away; ah.c frames AH.
 * The computation is the library's.
 */
#ifndef DP_IMB_H
#define DP_IMB_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <intel-ipsec-mb.h>
#include <rte_crypto.h>
#include <rte_mbuf.h>

#include "control/ipsec.h"

struct dp_worker;
struct dp_snapshot;
struct dp_sa;
struct dp_imb_key;

/* The largest HMAC state the library's jobs take (SHA-512's 8 words) */
#define HMAC_STATE 64

/*
 * A native SA's key (in the SA's one allocation, sa.c): the AES-GCM key
 * schedule and GHASH keys (ESP), or the HMAC's precomputed states (AH). The
 * worker's manager is w->imb.
 */
struct dp_imb_key {
	/* lib/ipsec writes its session pointer here
	 * (rte_cryptodev_sym_session_opaque_data_set, at CRYPTO_SESS_OPAQUE_DATA_OFF) */
	uint64_t opaque;
	uint8_t aad_len;
	uint8_t hash;	 /* AH: IMB_HASH_ALG of its HMAC */
	uint8_t tag_len; /* AH: the truncated ICV (RFC 2404, RFC 4868 §2.3) */
	bool k256;	 /* ESP: AES-256-GCM, else AES-128-GCM */
	uint8_t salt[4]; /* ESP: the nonce's salt, the key material's end (RFC 4106 §4, §8.1) */
	union {
		struct gcm_key_data gcm;
		/* HMAC (RFC 2104): the hash's state after one block of key ^ ipad,
		 * and after one of key ^ opad; key material as the key itself */
		struct {
			uint8_t ipad[HMAC_STATE];
			uint8_t opad[HMAC_STATE];
		} hmac;
	} __rte_aligned(64);
};

/** The ICV check in constant time: whether the 16-byte tags @a and @b are
 * equal, the difference not revealed by timing. Two words, not sixteen bytes. */
static inline bool dp_imb_tag_equal(const uint8_t *a, const uint8_t *b)
{
	uint64_t x[2], y[2];

	memcpy(x, a, sizeof(x));
	memcpy(y, b, sizeof(y));
	return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/**
 * Set the engine up for @n_workers workers: a manager each (and one for the
 * control thread's key schedules), their hash jobs. Without AES-NI or
 * intel-ipsec-mb the engine stays off (not an error); -1 when memory lacks.
 */
int dp_imb_init(unsigned int n_workers);

/** Free the managers and jobs. */
void dp_imb_fini(void);

/** Whether the native engine runs SA @cfg: ESP AES-GCM with a 128 or 256-bit
 * key, or AH with an HMAC (not AES-GMAC), the engine on (crypto.engine:
 * native) and usable on this CPU. */
bool dp_imb_fits(const struct dps_sa *cfg);

/** Bytes of a key schedule (a multiple of the cache line). */
size_t dp_imb_key_size(void);

/**
 * Make the key schedule of @cfg's AES-GCM key, or (AH) its HMAC's inner and
 * outer states (control thread), in @mem: dp_imb_key_size() zeroed bytes of
 * hugepage memory, cache-line aligned (the SA's own allocation, sa.c). Its
 * first 8 bytes are lib/ipsec's session opaque data (it takes the key for
 * its session handle). Wiped with the memory it lives in.
 */
struct dp_imb_key *dp_imb_key_init(void *mem, const struct dps_sa *cfg);

/** Cache lines of @cfg's key to prefetch from its start: its header, then
 * its HMAC states or AES round keys (and the GHASH keys that follow them,
 * but for VAES). */
unsigned int dp_imb_key_lines(const struct dps_sa *cfg);

/** The lines of a key's GHASH keys a packet of up to 256 bytes reads when
 * they are not after the round keys (VAES): how many, from line @first. */
unsigned int dp_imb_hkey_lines(unsigned int *first);

/**
 * The HMAC of an AH SA's key @k over @n buffers (@len[i] bytes at @src[i]),
 * truncated to the SA's ICV, written to @tag[i]: one burst of the worker's
 * hash-only jobs (@n <= DP_MAX_BURST), done on return. Returns @n, or 0 if
 * the library refused a job.
 */
uint16_t dp_imb_hmac(struct dp_worker *w, const struct dp_imb_key *k, const uint8_t *const *src,
		     const uint32_t *len, uint8_t *const *tag, uint16_t n);

/**
 * AES-GCM with key @k over a packet in several segments (reassembled
 * fragments), in the library's init/update/finalize form: @len bytes from
 * offset @off of the chain @seg, encrypted (@enc) or decrypted in place,
 * with the 12-byte nonce @iv and the key's AAD length of @aad; the tag goes
 * to @tag. False if the chain is shorter than @off + @len.
 */
bool dp_imb_gcm_chain(IMB_MGR *m, const struct dp_imb_key *k, struct rte_mbuf *seg, uint32_t off,
		      uint32_t len, const uint8_t *iv, const uint8_t *aad, uint8_t *tag, bool enc);

#endif
