/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rate of intel-ipsec-mb's AES-128-GCM alone, without cryptodev: what
 * the native engine (src/dataplane/imb.c) calls per packet, the direct API,
 * in place, with ESP's 8-byte AAD and 16-byte tag, over a ring of buffers the
 * size of the benchmark's pcap. Built and run by scripts/bench/bench.py.
 *
 *   imb_rate SIZE OPS   ->  "SIZE OPS wall_ns cpu_ns"
 */
#include <inttypes.h>
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

int main(int argc, char **argv)
{
	static struct gcm_key_data key;
	struct gcm_context_data ctx;
	uint8_t k[16], iv[12], aad[8], tag[16];
	uint64_t w0, c0, w1, c1;
	unsigned long size, ops;
	uint8_t *buf;
	IMB_MGR *m;

	if (argc != 3)
		return 2;
	size = strtoul(argv[1], NULL, 0);
	ops = strtoul(argv[2], NULL, 0);
	buf = aligned_alloc(64, RING * ((size + 63) & ~63ul));
	m = alloc_mb_mgr(0);
	if (buf == NULL || m == NULL)
		return 1;
	init_mb_mgr_auto(m, NULL);
	memset(k, 0x5a, sizeof(k));
	memset(iv, 0x11, sizeof(iv));
	memset(aad, 0x22, sizeof(aad));
	memset(buf, 0x33, RING * ((size + 63) & ~63ul));
	IMB_AES128_GCM_PRE(m, k, &key);
	for (unsigned long i = 0; i < RING; i++) /* warm: the buffers and the code */
		IMB_AES128_GCM_ENC(m, &key, &ctx, buf + i * ((size + 63) & ~63ul),
				   buf + i * ((size + 63) & ~63ul), size, iv, aad, sizeof(aad), tag,
				   sizeof(tag));
	w0 = ns(CLOCK_MONOTONIC);
	c0 = ns(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned long i = 0; i < ops; i++) {
		uint8_t *p = buf + (i % RING) * ((size + 63) & ~63ul);

		iv[11] = (uint8_t)i; /* a new nonce per packet, as ESP's */
		IMB_AES128_GCM_ENC(m, &key, &ctx, p, p, size, iv, aad, sizeof(aad), tag,
				   sizeof(tag));
	}
	c1 = ns(CLOCK_THREAD_CPUTIME_ID);
	w1 = ns(CLOCK_MONOTONIC);
	printf("%lu %lu %" PRIu64 " %" PRIu64 " %s\n", size, ops, w1 - w0, c1 - c0,
	       imb_get_version_str());
	free_mb_mgr(m);
	free(buf);
	return 0;
}
