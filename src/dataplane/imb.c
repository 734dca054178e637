/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The native crypto engine (imb.h): the key schedules of the SAs it runs
 * (struct dp_imb_key, in each SA's allocation), the workers' intel-ipsec-mb
 * managers, and what the ESP and AH paths share of the library's calls.
 * ESP's packets are framed and checked by esp_native_out.c and
 * esp_native_in.c, which call the library themselves; a packet in several
 * segments takes dp_imb_gcm_chain. An AH SA (ah.c, no lib/ipsec SA) keeps its HMAC's precomputed
 * inner and outer states here, and the worker's jobs hash a sub-burst in one call (dp_imb_hmac).
 */
#include <stdlib.h>
#include <string.h>

#include <intel-ipsec-mb.h>
#include <rte_crypto.h>
#include <rte_cryptodev.h>
#include <rte_ipsec.h>
#include <rte_malloc.h>

#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/imb.h"
#include "dataplane/sa.h"

#define GCM_TAG_LEN  16
#define GCM_SALT_LEN 4

_Static_assert(CRYPTO_SESS_OPAQUE_DATA_OFF == 0, "lib/ipsec's opaque data is the key's first word");

static struct {
	bool ready;
	IMB_MGR *ctl; /* the control thread's, for key schedules */
	IMB_MGR *mgr[DPS_MAX_WORKERS];
	IMB_JOB *jobs[DPS_MAX_WORKERS];
} imb;

_Static_assert(DP_MAX_BURST <= IMB_MAX_BURST_SIZE, "a sub-burst is one burst of jobs");

static IMB_MGR *mgr_create(void)
{
	IMB_MGR *m = alloc_mb_mgr(0);
	IMB_ARCH arch;

	if (m == NULL)
		return NULL;
	init_mb_mgr_auto(m, &arch);
	if (arch < IMB_ARCH_SSE || imb_get_errno(m) != 0) {
		free_mb_mgr(m);
		return NULL;
	}
	return m;
}

int dp_imb_init(unsigned int n_workers)
{
	imb.ctl = mgr_create();
	if (imb.ctl == NULL || !(imb.ctl->features & IMB_FEATURE_AESNI)) {
		DP_LOG(NOTICE, "native crypto engine off: no AES-NI (intel-ipsec-mb %s)",
		       imb_get_version_str());
		dp_imb_fini();
		return 0;
	}
	for (unsigned int i = 0; i < n_workers; i++) {
		struct dp_worker *w = &dp.workers[i];

		imb.mgr[i] = mgr_create();
		imb.jobs[i] = rte_zmalloc("dps_imb_jobs", sizeof(IMB_JOB) * DP_MAX_BURST,
					  RTE_CACHE_LINE_SIZE);
		if (imb.mgr[i] == NULL || imb.jobs[i] == NULL) {
			DP_LOG(ERR, "native crypto engine: out of memory");
			dp_imb_fini();
			return -1;
		}
		w->imb = imb.mgr[i];
		w->imb_job = imb.jobs[i];
	}
	imb.ready = true;
	DP_LOG(INFO, "native crypto engine: intel-ipsec-mb %s, AES-GCM%s, AH's HMAC-SHA1/SHA2%s",
	       imb_get_version_str(), imb.ctl->features & IMB_FEATURE_VAES ? " (VAES)" : "",
	       imb.ctl->features & IMB_FEATURE_SHANI ? " (SHA-NI)" : "");
	return 0;
}

void dp_imb_fini(void)
{
	for (unsigned int i = 0; i < DPS_MAX_WORKERS; i++) {
		if (imb.mgr[i] != NULL)
			free_mb_mgr(imb.mgr[i]);
		rte_free(imb.jobs[i]);
		dp.workers[i].imb = NULL;
		dp.workers[i].imb_job = NULL;
	}
	if (imb.ctl != NULL)
		free_mb_mgr(imb.ctl);
	memset(&imb, 0, sizeof(imb));
}

/* AH's HMACs (RFC 2404, RFC 4868): the library's hash, its block, the ICV */
static const struct {
	uint8_t alg; /* IMB_HASH_ALG */
	uint8_t block;
	uint8_t tag_len;
} hmac_desc[] = {
	[DPS_AUTH_HMAC_SHA1_96] = {IMB_AUTH_HMAC_SHA_1, 64, 12},
	[DPS_AUTH_HMAC_SHA256_128] = {IMB_AUTH_HMAC_SHA_256, 64, 16},
	[DPS_AUTH_HMAC_SHA384_192] = {IMB_AUTH_HMAC_SHA_384, 128, 24},
	[DPS_AUTH_HMAC_SHA512_256] = {IMB_AUTH_HMAC_SHA_512, 128, 32},
};

/* RFC 2104 §2 hashes a key longer than the block first: no key here is. */
_Static_assert(DPS_MAX_KEY_LEN <= 64, "every HMAC key fits the hash's block");

static bool hmac_fits(const struct dps_sa *cfg)
{
	return cfg->auth_alg < RTE_DIM(hmac_desc) && hmac_desc[cfg->auth_alg].alg != 0;
}

bool dp_imb_fits(const struct dps_sa *cfg)
{
	if (!imb.ready || dp.cfg->crypto.engine != DPS_ENGINE_NATIVE)
		return false;
	if (cfg->proto == DPS_PROTO_AH) /* AES-GMAC stays on the crypto devices */
		return hmac_fits(cfg);
	return cfg->proto == DPS_PROTO_ESP && cfg->enc_alg == DPS_ENC_AES_GCM &&
	       (cfg->enc_key_len == 16 + GCM_SALT_LEN || cfg->enc_key_len == 32 + GCM_SALT_LEN);
}

unsigned int dp_imb_key_lines(const struct dps_sa *cfg)
{
	/* the header line, then the two HMAC states, or the expanded AES keys
	 * (15 round keys at most) with, for the SSE to AVX-512 (not VAES)
	 * code, its 8 GHASH keys and their Karatsuba halves right after them */
	unsigned int n = 15 * 16, vaes = IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ;

	if (cfg->proto == DPS_PROTO_AH)
		return 1 + 2 * HMAC_STATE / RTE_CACHE_LINE_SIZE;
	if (imb.ctl->used_arch != IMB_ARCH_AVX512 || (imb.ctl->features & vaes) != vaes)
		n += 2 * 8 * 16;
	return 1 + RTE_ALIGN_CEIL(n, RTE_CACHE_LINE_SIZE) / RTE_CACHE_LINE_SIZE;
}

/*
 * The VAES code (intel-ipsec-mb's gcm_keys_vaes_avx512.asm) keeps the GHASH
 * keys from HashKey^48 down to HashKey^1, the last at the end of the
 * schedule: a packet of n blocks reads HashKey^n..^1, 16 at a time. Those of
 * up to 16 blocks (256 bytes: every 64-byte packet and the tail of any
 * other) are the last 256 bytes.
 */
unsigned int dp_imb_hkey_lines(unsigned int *first)
{
	unsigned int vaes = IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ;
	size_t end = offsetof(struct dp_imb_key, gcm) + 15 * 16 + 48 * 16;

	if (imb.ctl->used_arch != IMB_ARCH_AVX512 || (imb.ctl->features & vaes) != vaes)
		return 0;
	*first = (unsigned int)((end - 16 * 16) / RTE_CACHE_LINE_SIZE);
	return (unsigned int)(RTE_ALIGN_CEIL(end, RTE_CACHE_LINE_SIZE) / RTE_CACHE_LINE_SIZE) -
	       *first;
}

bool dp_imb_gcm_chain(IMB_MGR *m, const struct dp_imb_key *k, struct rte_mbuf *seg, uint32_t off,
		      uint32_t left, const uint8_t *iv, const uint8_t *aad, uint8_t *tag, bool enc)
{
	struct gcm_context_data ctx;
	const bool k256 = k->k256;

	if (k256)
		IMB_AES256_GCM_INIT(m, &k->gcm, &ctx, iv, aad, k->aad_len);
	else
		IMB_AES128_GCM_INIT(m, &k->gcm, &ctx, iv, aad, k->aad_len);
	for (; seg != NULL && left > 0; seg = seg->next) {
		uint8_t *p;
		uint32_t len;

		if (off >= seg->data_len) {
			off -= seg->data_len;
			continue;
		}
		p = rte_pktmbuf_mtod_offset(seg, uint8_t *, off);
		len = RTE_MIN(left, (uint32_t)seg->data_len - off);
		if (enc && k256)
			IMB_AES256_GCM_ENC_UPDATE(m, &k->gcm, &ctx, p, p, len);
		else if (enc)
			IMB_AES128_GCM_ENC_UPDATE(m, &k->gcm, &ctx, p, p, len);
		else if (k256)
			IMB_AES256_GCM_DEC_UPDATE(m, &k->gcm, &ctx, p, p, len);
		else
			IMB_AES128_GCM_DEC_UPDATE(m, &k->gcm, &ctx, p, p, len);
		left -= len;
		off = 0;
	}
	if (left > 0)
		return false;
	if (enc && k256)
		IMB_AES256_GCM_ENC_FINALIZE(m, &k->gcm, &ctx, tag, GCM_TAG_LEN);
	else if (enc)
		IMB_AES128_GCM_ENC_FINALIZE(m, &k->gcm, &ctx, tag, GCM_TAG_LEN);
	else if (k256)
		IMB_AES256_GCM_DEC_FINALIZE(m, &k->gcm, &ctx, tag, GCM_TAG_LEN);
	else
		IMB_AES128_GCM_DEC_FINALIZE(m, &k->gcm, &ctx, tag, GCM_TAG_LEN);
	return true;
}

/* The hash's state after one block: the library's compression function, as
 * its own HMAC precompute (and crypto_aesni_mb's) calls it. */
static void one_block(uint8_t alg, const uint8_t *blk, uint8_t *state)
{
	switch (alg) {
	case IMB_AUTH_HMAC_SHA_1:
		IMB_SHA1_ONE_BLOCK(imb.ctl, blk, state);
		break;
	case IMB_AUTH_HMAC_SHA_256:
		IMB_SHA256_ONE_BLOCK(imb.ctl, blk, state);
		break;
	case IMB_AUTH_HMAC_SHA_384:
		IMB_SHA384_ONE_BLOCK(imb.ctl, blk, state);
		break;
	default:
		IMB_SHA512_ONE_BLOCK(imb.ctl, blk, state);
		break;
	}
}

/* RFC 2104 §2: H(K ^ opad, H(K ^ ipad, text)); the first block of each is
 * the same for every packet, hashed once here. */
static void hmac_precompute(struct dp_imb_key *k, const struct dps_sa *cfg)
{
	uint8_t blk[128] __rte_aligned(16);
	uint8_t block = hmac_desc[cfg->auth_alg].block;

	k->hash = hmac_desc[cfg->auth_alg].alg;
	k->tag_len = hmac_desc[cfg->auth_alg].tag_len;
	memset(blk, 0x36, block);
	for (unsigned int i = 0; i < cfg->auth_key_len; i++)
		blk[i] ^= cfg->auth_key[i];
	one_block(k->hash, blk, k->hmac.ipad);
	memset(blk, 0x5c, block);
	for (unsigned int i = 0; i < cfg->auth_key_len; i++)
		blk[i] ^= cfg->auth_key[i];
	one_block(k->hash, blk, k->hmac.opad);
	explicit_bzero(blk, sizeof(blk));
}

size_t dp_imb_key_size(void)
{
	return RTE_ALIGN_CEIL(sizeof(struct dp_imb_key), RTE_CACHE_LINE_SIZE);
}

struct dp_imb_key *dp_imb_key_init(void *mem, const struct dps_sa *cfg)
{
	bool k256 = cfg->enc_key_len == 32 + GCM_SALT_LEN;
	struct dp_imb_key *k = mem;

	if (cfg->proto == DPS_PROTO_AH) {
		hmac_precompute(k, cfg);
		return k;
	}
	/* RFC 4106 §8.1: the key material is the AES key, then the 4-byte salt
	 * (which lib/ipsec puts in the nonce). */
	if (k256)
		IMB_AES256_GCM_PRE(imb.ctl, cfg->enc_key, &k->gcm);
	else
		IMB_AES128_GCM_PRE(imb.ctl, cfg->enc_key, &k->gcm);
	k->k256 = k256;
	k->aad_len = cfg->esn ? 12 : 8; /* SPI, sequence number (RFC 4106 §5) */
	memcpy(k->salt, cfg->enc_key + (k256 ? 32 : 16), GCM_SALT_LEN);
	return k;
}

uint16_t dp_imb_hmac(struct dp_worker *w, const struct dp_imb_key *k, const uint8_t *const *src,
		     const uint32_t *len, uint8_t *const *tag, uint16_t n)
{
	IMB_JOB *job = w->imb_job;

	for (uint16_t i = 0; i < n; i++) {
		IMB_JOB *j = &job[i];

		j->chain_order = IMB_ORDER_HASH_CIPHER;
		j->cipher_mode = IMB_CIPHER_NULL;
		j->cipher_direction = IMB_DIR_ENCRYPT;
		j->hash_alg = (IMB_HASH_ALG)k->hash;
		j->src = src[i];
		j->hash_start_src_offset_in_bytes = 0;
		j->msg_len_to_hash_in_bytes = len[i];
		j->auth_tag_output = tag[i];
		j->auth_tag_output_len_in_bytes = k->tag_len;
		j->u.HMAC._hashed_auth_key_xor_ipad = k->hmac.ipad;
		j->u.HMAC._hashed_auth_key_xor_opad = k->hmac.opad;
	}
	/* synchronous: every job is done on return (none is left in the
	 * manager, no flush); 0 if the library refused one */
	return (uint16_t)IMB_SUBMIT_HASH_BURST(w->imb, job, n, (IMB_HASH_ALG)k->hash);
}
