/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rate of intel-ipsec-mb's AES-128-GCM alone, without cryptodev: what
 * the native engine (src/dataplane/imb.c) calls per packet, the direct API,
 * in place, with ESP's 8-byte AAD and 16-byte tag, over a ring of buffers the
 * size of the benchmark's pcap. Built and run by scripts/bench/bench.py.
 * STYLE compares the library's ways of making the same call (issue 12):
 * "direct" (the default, what imb.c calls), "iuf" (the init/update/finalize
 * form, what imb.c calls for a packet in several segments), "burst" and
 * "nocheck" (IMB_CIPHER_GCM jobs through IMB_SUBMIT_BURST or
 * IMB_SUBMIT_BURST_NOCHECK, BURST jobs at a time: a worker's sub-burst).
 * "hmac" is AH's instead: HMAC-SHA2-256-128 of BURST buffers through one
 * IMB_SUBMIT_HASH_BURST, the states of key ^ ipad / key ^ opad hashed once,
 * what the native engine calls for an AH SA (imb.c: dp_imb_hmac).
 *
 *   imb_rate SIZE OPS [STYLE [BURST]]  ->  "SIZE OPS wall_ns cpu_ns version"
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <intel-ipsec-mb.h>

#define RING 256 /* as many buffers as the main pcaps have frames */

static uint64_t ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

enum style { DIRECT, IUF, BURST, NOCHECK, HMAC };

static const struct gcm_key_data *gkey;
static uint8_t aad[8];

static void one_iuf(IMB_MGR *m, uint8_t *p, unsigned long size, const uint8_t *iv, uint8_t *tag)
{
	struct gcm_context_data ctx;

	IMB_AES128_GCM_INIT(m, gkey, &ctx, iv, aad, sizeof(aad));
	IMB_AES128_GCM_ENC_UPDATE(m, gkey, &ctx, p, p, size);
	IMB_AES128_GCM_ENC_FINALIZE(m, gkey, &ctx, tag, 16);
}

/* n jobs as the PMD crypto_aesni_mb fills them for AES-GCM encryption */
static void jobs_burst(IMB_MGR *m, uint8_t **p, unsigned long size, uint8_t (*iv)[12],
		       uint8_t (*tag)[16], uint32_t n, bool check)
{
	IMB_JOB *jobs[IMB_MAX_BURST_SIZE];
	uint32_t got = IMB_GET_NEXT_BURST(m, n, jobs), done;

	if (got < n) {
		IMB_FLUSH_BURST(m, IMB_MAX_BURST_SIZE, jobs);
		got = IMB_GET_NEXT_BURST(m, n, jobs);
	}
	for (uint32_t i = 0; i < got; i++) {
		IMB_JOB *j = jobs[i];

		j->cipher_mode = IMB_CIPHER_GCM;
		j->hash_alg = IMB_AUTH_AES_GMAC;
		j->cipher_direction = IMB_DIR_ENCRYPT;
		j->chain_order = IMB_ORDER_CIPHER_HASH;
		j->enc_keys = j->dec_keys = gkey;
		j->key_len_in_bytes = IMB_KEY_128_BYTES;
		j->src = j->dst = p[i];
		j->cipher_start_src_offset_in_bytes = 0;
		j->msg_len_to_cipher_in_bytes = size;
		j->hash_start_src_offset_in_bytes = 0;
		j->msg_len_to_hash_in_bytes = size;
		j->iv = iv[i];
		j->iv_len_in_bytes = 12;
		j->u.GCM.aad = aad;
		j->u.GCM.aad_len_in_bytes = sizeof(aad);
		j->auth_tag_output = tag[i];
		j->auth_tag_output_len_in_bytes = 16;
	}
	done = check ? IMB_SUBMIT_BURST(m, got, jobs) : IMB_SUBMIT_BURST_NOCHECK(m, got, jobs);
	if (done < got)
		done += IMB_FLUSH_BURST(m, got - done, jobs);
	if (done != n || jobs[0]->status != IMB_STATUS_COMPLETED) {
		fprintf(stderr, "burst: %u of %u done, errno %d\n", done, n, imb_get_errno(m));
		exit(1);
	}
}

/* n HMAC-SHA2-256-128 jobs as imb.c's dp_imb_hmac fills them */
static void hmac_burst(IMB_MGR *m, IMB_JOB *jobs, uint8_t **p, unsigned long size,
		       uint8_t (*tag)[16], uint32_t n, const uint8_t *ipad, const uint8_t *opad)
{
	for (uint32_t i = 0; i < n; i++) {
		IMB_JOB *j = &jobs[i];

		j->chain_order = IMB_ORDER_HASH_CIPHER;
		j->cipher_mode = IMB_CIPHER_NULL;
		j->cipher_direction = IMB_DIR_ENCRYPT;
		j->hash_alg = IMB_AUTH_HMAC_SHA_256;
		j->src = p[i];
		j->hash_start_src_offset_in_bytes = 0;
		j->msg_len_to_hash_in_bytes = size;
		j->auth_tag_output = tag[i];
		j->auth_tag_output_len_in_bytes = 16;
		j->u.HMAC._hashed_auth_key_xor_ipad = ipad;
		j->u.HMAC._hashed_auth_key_xor_opad = opad;
	}
	if (IMB_SUBMIT_HASH_BURST(m, jobs, n, IMB_AUTH_HMAC_SHA_256) != n) {
		fprintf(stderr, "hash burst: errno %d\n", imb_get_errno(m));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static struct gcm_key_data key;
	struct gcm_context_data ctx;
	uint8_t k[16], iv[12], aad[8], tag[16];
	uint64_t w0, c0, w1, c1;
	unsigned long size, ops;
	uint8_t *buf;
	IMB_MGR *m;

	enum style st = DIRECT;
	uint32_t burst = 32;
	static uint8_t ivs[IMB_MAX_BURST_SIZE][12], tags[IMB_MAX_BURST_SIZE][16];
	static IMB_JOB hjobs[IMB_MAX_BURST_SIZE];
	uint8_t blk[64], ipad[32] __attribute__((aligned(16))),
		opad[32] __attribute__((aligned(16)));
	uint8_t *ps[IMB_MAX_BURST_SIZE];

	if (argc < 3 || argc > 5)
		return 2;
	size = strtoul(argv[1], NULL, 0);
	ops = strtoul(argv[2], NULL, 0);
	if (argc >= 4)
		st = !strcmp(argv[3], "iuf")	   ? IUF
		     : !strcmp(argv[3], "burst")   ? BURST
		     : !strcmp(argv[3], "nocheck") ? NOCHECK
		     : !strcmp(argv[3], "hmac")	   ? HMAC
						   : DIRECT;
	if (argc == 5)
		burst = (uint32_t)strtoul(argv[4], NULL, 0);
	if (burst == 0 || burst > IMB_MAX_BURST_SIZE || RING % burst)
		return 2;
	buf = aligned_alloc(64, RING * ((size + 63) & ~63ul));
	m = alloc_mb_mgr(0);
	if (buf == NULL || m == NULL)
		return 1;
	init_mb_mgr_auto(m, NULL);
	memset(k, 0x5a, sizeof(k));
	memset(iv, 0x11, sizeof(iv));
	memset(aad, 0x22, sizeof(aad));
	gkey = &key;
	memset(buf, 0x33, RING * ((size + 63) & ~63ul));
	IMB_AES128_GCM_PRE(m, k, &key);
	memset(blk, 0x36 ^ 0x5a, sizeof(blk)); /* a 64-byte HMAC key of 0x5a */
	IMB_SHA256_ONE_BLOCK(m, blk, ipad);
	memset(blk, 0x5c ^ 0x5a, sizeof(blk));
	IMB_SHA256_ONE_BLOCK(m, blk, opad);
	for (unsigned long i = 0; i < RING; i++) /* warm: the buffers and the code */
		IMB_AES128_GCM_ENC(m, &key, &ctx, buf + i * ((size + 63) & ~63ul),
				   buf + i * ((size + 63) & ~63ul), size, iv, aad, sizeof(aad), tag,
				   sizeof(tag));
	w0 = ns(CLOCK_MONOTONIC);
	c0 = ns(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned long i = 0; i < ops && st <= IUF; i++) {
		uint8_t *p = buf + (i % RING) * ((size + 63) & ~63ul);

		iv[11] = (uint8_t)i; /* a new nonce per packet, as ESP's */
		if (st == IUF)
			one_iuf(m, p, size, iv, tag);
		else
			IMB_AES128_GCM_ENC(m, &key, &ctx, p, p, size, iv, aad, sizeof(aad), tag,
					   sizeof(tag));
	}
	for (unsigned long i = 0; i < ops && st == HMAC; i += burst) {
		for (uint32_t j = 0; j < burst; j++)
			ps[j] = buf + ((i + j) % RING) * ((size + 63) & ~63ul);
		hmac_burst(m, hjobs, ps, size, tags, burst, ipad, opad);
	}
	for (unsigned long i = 0; i < ops && (st == BURST || st == NOCHECK); i += burst) {
		for (uint32_t j = 0; j < burst; j++) {
			ps[j] = buf + ((i + j) % RING) * ((size + 63) & ~63ul);
			memcpy(ivs[j], iv, 12);
			ivs[j][11] = (uint8_t)(i + j);
		}
		jobs_burst(m, ps, size, ivs, tags, burst, st == BURST);
	}
	c1 = ns(CLOCK_THREAD_CPUTIME_ID);
	w1 = ns(CLOCK_MONOTONIC);
	printf("%lu %lu %" PRIu64 " %" PRIu64 " %s\n", size, ops, w1 - w0, c1 - c0,
	       imb_get_version_str());
	free_mb_mgr(m);
	free(buf);
	return 0;
}
