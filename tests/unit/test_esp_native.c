/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The native engine's ESP on packets in two segments, which no path of the
 * daemon makes today (reassembly makes datagrams linear, frag.c), hence
 * this test. Outbound (esp_native_out.c): the trailer and ICV go into the
 * last segment and AES-GCM runs over the chain (the library's
 * init/update/finalize form), and the packet on the wire is the one the
 * same SA frames from the packet in one segment; the one-segment framing is
 * lib/ipsec's byte for byte (tests/integration/test_esp_native_out.py).
 * Inbound (esp_native_in.c): that ESP packet split in two anywhere past its
 * ESP header and IV (in the ciphertext, the padding, the ICV) is decrypted,
 * checked and stripped to the packet the one-segment copy gives, the
 * original inner packet in tunnel mode; a flipped byte in the second
 * segment fails the ICV. The engine needs AES-NI: without it the tests are
 * skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "control/config.h"
#include "dataplane/dp.h"
#include "dataplane/esp_native_in.h"
#include "dataplane/imb.h"
#include "dataplane/sa.h"

#define PAYLOAD 300 /* UDP payload bytes */
#define MAX_PKT 512

static struct rte_mempool *pool;
static struct dps_config cfg;
/* what the SA's finish was handed */
static struct rte_mbuf *done[4];
static uint16_t n_done;

static void capture(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		    struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	(void)w, (void)s, (void)sa;
	assert_int_equal(k, n);
	for (uint16_t i = 0; i < k; i++)
		done[n_done++] = mb[i];
}

static const struct dp_xform_ops capture_ops = {.finish = capture};

/* what an inbound SA's finish was handed: the good packets first */
static uint16_t in_k, in_n;

static void capture_in(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		       struct rte_mbuf **mb, uint16_t k, uint16_t n)
{
	(void)w, (void)s, (void)sa;
	in_k = k;
	in_n = n;
	for (uint16_t i = 0; i < n; i++)
		done[n_done++] = mb[i];
}

static const struct dp_xform_ops capture_in_ops = {.finish = capture_in};

static struct dp_sa *gcm_sa_dir(uint8_t mode, uint8_t dir)
{
	struct dps_ipsec_defaults def = {.ecn = true};
	struct dps_sa c = {.spi = 0x1234,
			   .proto = DPS_PROTO_ESP,
			   .mode = mode,
			   .dir = dir,
			   .enc_alg = DPS_ENC_AES_GCM,
			   .enc_key_len = 20,
			   .ttl = 64,
			   .replay_window = 64};
	char err[256];
	struct dp_sa *sa;

	c.src.family = c.dst.family = AF_INET;
	c.src.v4.s_addr = RTE_BE32(UINT32_C(0xc0000201));
	c.dst.v4.s_addr = RTE_BE32(UINT32_C(0xc0000202));
	for (unsigned int i = 0; i < c.enc_key_len; i++)
		c.enc_key[i] = (uint8_t)(0x40 + i);
	sa = dp_sa_create(&c, AF_INET, &def, err, sizeof(err));
	if (sa == NULL)
		fail_msg("dp_sa_create: %s", err);
	assert_true(sa->native);
	sa->xf = dir == DPS_DIR_OUT ? &capture_ops : &capture_in_ops;
	return sa;
}

static struct dp_sa *gcm_sa(uint8_t mode)
{
	return gcm_sa_dir(mode, DPS_DIR_OUT);
}

/* The @len bytes at @f into the empty mbuf @m: in it alone, or (@split > 0)
 * the first @split bytes in it and the rest in a second segment. */
static void chain_of(struct rte_mbuf *m, const uint8_t *f, uint32_t len, uint32_t split)
{
	struct rte_mbuf *m2;

	if (split == 0)
		split = len;
	memcpy(rte_pktmbuf_append(m, (uint16_t)split), f, split);
	if (split < len) {
		m2 = rte_pktmbuf_alloc(pool);
		assert_non_null(m2);
		memcpy(rte_pktmbuf_append(m2, (uint16_t)(len - split)), f + split, len - split);
		assert_int_equal(rte_pktmbuf_chain(m, m2), 0);
	}
}

/* Ethernet, IPv4 (TOS with ECN), UDP, PAYLOAD bytes: in one segment, or in
 * two split @split bytes in. */
static struct rte_mbuf *packet(uint32_t split)
{
	uint8_t f[MAX_PKT] = {0};
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint32_t len = RTE_ETHER_HDR_LEN + sizeof(*ip) + sizeof(*udp) + PAYLOAD;
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	assert_non_null(m);
	((struct rte_ether_hdr *)f)->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0xb9;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(len - RTE_ETHER_HDR_LEN));
	ip->time_to_live = 63;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = RTE_BE32(UINT32_C(0x0a000001));
	ip->dst_addr = RTE_BE32(UINT32_C(0x0a000101));
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = RTE_BE16(1000);
	udp->dst_port = RTE_BE16(2000);
	udp->dgram_len = rte_cpu_to_be_16(sizeof(*udp) + PAYLOAD);
	for (unsigned int i = 0; i < PAYLOAD; i++)
		((uint8_t *)(udp + 1))[i] = (uint8_t)(i * 7);
	chain_of(m, f, len, split);
	m->tx_offload = rte_mbuf_tx_offload(RTE_ETHER_HDR_LEN, sizeof(*ip), 0, 0, 0, 0, 0);
	return m;
}

/* @mode's SA, a fresh one for each form (both number from 1), frames the
 * packet whole and in two segments split at @split: the same bytes. */
static void check_split(uint8_t mode, uint32_t split)
{
	struct dp_sa *one = gcm_sa(mode), *two = gcm_sa(mode);
	struct rte_mbuf *a = packet(0), *b = packet(split);
	uint8_t x[MAX_PKT], y[MAX_PKT];
	uint16_t last_len = rte_pktmbuf_lastseg(b)->data_len;

	n_done = 0;
	one->crypto(&dp.workers[0], NULL, one, &a, 1);
	two->crypto(&dp.workers[0], NULL, two, &b, 1);
	assert_int_equal(n_done, 2);
	assert_int_equal(b->nb_segs, 2);
	/* padding, trailer and ICV in the last segment */
	assert_int_equal(rte_pktmbuf_lastseg(b)->data_len - last_len,
			 rte_pktmbuf_pkt_len(a) - (RTE_ETHER_HDR_LEN + 20 + 8 + PAYLOAD) -
				 (mode == DPS_MODE_TUNNEL ? 20 + 16 : 16));
	assert_int_equal(rte_pktmbuf_pkt_len(a), rte_pktmbuf_pkt_len(b));
	assert_true(rte_pktmbuf_pkt_len(a) <= MAX_PKT);
	assert_memory_equal(rte_pktmbuf_read(a, 0, rte_pktmbuf_pkt_len(a), x),
			    rte_pktmbuf_read(b, 0, rte_pktmbuf_pkt_len(b), y),
			    rte_pktmbuf_pkt_len(a));
	rte_pktmbuf_free(a);
	rte_pktmbuf_free(b);
	dp_sa_free(one);
	dp_sa_free(two);
}

static void test_tunnel_chain_frames_as_one_segment(void **state)
{
	(void)state;
	if (!dp.workers[0].imb)
		skip();
	check_split(DPS_MODE_TUNNEL, RTE_ETHER_HDR_LEN + 20 + 8 + 101); /* mid-block */
	check_split(DPS_MODE_TUNNEL, RTE_ETHER_HDR_LEN + 20 + 8 + PAYLOAD - 1);
}

static void test_transport_chain_frames_as_one_segment(void **state)
{
	(void)state;
	if (!dp.workers[0].imb)
		skip();
	check_split(DPS_MODE_TRANSPORT, RTE_ETHER_HDR_LEN + 20 + 8 + 101);
	check_split(DPS_MODE_TRANSPORT, RTE_ETHER_HDR_LEN + 20 + 1);
}

/* The @len bytes at @f as a received ESP frame (Ethernet, IPv4, ESP), in
 * one segment or, @split > 0, in two split @split bytes in; the fields
 * esp_in.c sets before an SA's crypto step. */
static struct rte_mbuf *esp_frame(const uint8_t *f, uint32_t len, uint32_t split)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	uint32_t seq;

	assert_non_null(m);
	chain_of(m, f, len, split);
	m->tx_offload = rte_mbuf_tx_offload(RTE_ETHER_HDR_LEN, 20, 0, 0, 0, 0, 0);
	memset(dp_meta(m), 0, sizeof(struct dp_meta));
	memcpy(&seq, f + RTE_ETHER_HDR_LEN + 20 + 4, 4);
	dp_meta(m)->esp_seq = rte_be_to_cpu_32(seq);
	dp_meta(m)->pre_len = len;
	return m;
}

/* Run @m through a fresh inbound SA of @mode; whether it passed. */
static bool open_in(uint8_t mode, struct rte_mbuf **m)
{
	struct dp_sa *in = gcm_sa_dir(mode, DPS_DIR_IN);

	assert_true(in->crypto == dp_esp_native_in_run(in));
	n_done = 0;
	in->crypto(&dp.workers[0], NULL, in, m, 1);
	assert_int_equal(n_done, 1);
	assert_int_equal(in_n, 1);
	*m = done[0];
	dp_sa_free(in);
	return in_k == 1;
}

/* The ESP frame @mode's SA makes of packet(0) is opened whole and split at
 * each of @splits (bytes from its end): the same packet each time, the
 * original inner one in tunnel mode; with a byte of the second segment
 * flipped, the ICV fails. */
static void check_in_split(uint8_t mode, const uint32_t *from_end, unsigned int n_splits)
{
	struct dp_sa *out = gcm_sa(mode);
	struct rte_mbuf *p = packet(0), *orig = packet(0), *one;
	uint8_t e[MAX_PKT], x[MAX_PKT], y[MAX_PKT], o[MAX_PKT];
	uint32_t len, plen;

	n_done = 0;
	out->crypto(&dp.workers[0], NULL, out, &p, 1);
	assert_int_equal(n_done, 1);
	len = rte_pktmbuf_pkt_len(done[0]);
	assert_true(len <= MAX_PKT);
	memcpy(e, rte_pktmbuf_read(done[0], 0, len, e), len);
	rte_pktmbuf_free(done[0]);
	dp_sa_free(out);

	one = esp_frame(e, len, 0);
	assert_true(open_in(mode, &one));
	plen = rte_pktmbuf_pkt_len(one);
	memcpy(x, rte_pktmbuf_read(one, 0, plen, x), plen);
	if (mode == DPS_MODE_TUNNEL) { /* the inner packet, without its Ethernet header */
		assert_int_equal(plen, rte_pktmbuf_pkt_len(orig) - RTE_ETHER_HDR_LEN);
		assert_memory_equal(x, rte_pktmbuf_read(orig, RTE_ETHER_HDR_LEN, plen, o), plen);
	}
	for (unsigned int i = 0; i < n_splits; i++) {
		struct rte_mbuf *two = esp_frame(e, len, len - from_end[i]);

		assert_int_equal(two->nb_segs, 2);
		assert_true(open_in(mode, &two));
		assert_int_equal(rte_pktmbuf_pkt_len(two), plen);
		assert_memory_equal(rte_pktmbuf_read(two, 0, plen, y), x, plen);
		rte_pktmbuf_free(two);

		e[len - 1 - (from_end[i] - 1) / 2] ^= 0x01; /* in the second segment */
		two = esp_frame(e, len, len - from_end[i]);
		assert_false(open_in(mode, &two));
		assert_true(two->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED);
		rte_pktmbuf_free(two);
		e[len - 1 - (from_end[i] - 1) / 2] ^= 0x01;
	}
	rte_pktmbuf_free(one);
	rte_pktmbuf_free(orig);
}

/* Split points from the end of the ESP frame: in the ciphertext's payload,
 * in the padding and trailer (the ICV is the last 16 bytes), in the ICV. */
static const uint32_t in_splits[] = {16 + 2 + 150, 16 + 2, 16 + 1, 8, 1};

static void test_tunnel_chain_opens_as_one_segment(void **state)
{
	(void)state;
	if (!dp.workers[0].imb)
		skip();
	check_in_split(DPS_MODE_TUNNEL, in_splits, RTE_DIM(in_splits));
}

static void test_transport_chain_opens_as_one_segment(void **state)
{
	(void)state;
	if (!dp.workers[0].imb)
		skip();
	check_in_split(DPS_MODE_TRANSPORT, in_splits, RTE_DIM(in_splits));
}

int main(void)
{
	char *args[] = {"test_esp_native",
			"--no-huge",
			"--no-pci",
			"--no-shconf",
			"-m",
			"128",
			"-l",
			"0",
			"--log-level=error",
			"--no-telemetry",
			NULL};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tunnel_chain_frames_as_one_segment),
		cmocka_unit_test(test_transport_chain_frames_as_one_segment),
		cmocka_unit_test(test_tunnel_chain_opens_as_one_segment),
		cmocka_unit_test(test_transport_chain_opens_as_one_segment),
	};

	if (rte_eal_init(RTE_DIM(args) - 1, args) < 0) {
		fprintf(stderr, "test_esp_native: cannot start the EAL\n");
		return 1;
	}
	pool = rte_pktmbuf_pool_create("t", 64, 0, RTE_CACHE_LINE_SIZE, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	if (pool == NULL)
		return 1;
	cfg.crypto.engine = DPS_ENGINE_NATIVE;
	dp.cfg = &cfg;
	dp.n_workers = 1;
	if (dp_imb_init(1) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
