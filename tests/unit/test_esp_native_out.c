/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/esp_native_out.c on a packet in two segments: the trailer
 * and ICV go into the last segment and AES-GCM runs over the chain (the
 * library's init/update/finalize form), and the packet on the wire is the
 * one the same SA frames from the packet in one segment. The one-segment
 * framing is lib/ipsec's byte for byte (tests/integration/
 * test_esp_native_out.py); no path of the daemon hands outbound ESP a chain
 * today (reassembly makes datagrams linear, frag.c), hence this test. The
 * engine needs AES-NI: without it the test is skipped.
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

static struct dp_sa *gcm_sa(uint8_t mode)
{
	struct dps_ipsec_defaults def = {.ecn = true};
	struct dps_sa c = {.spi = 0x1234,
			   .proto = DPS_PROTO_ESP,
			   .mode = mode,
			   .dir = DPS_DIR_OUT,
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
	sa->xf = &capture_ops;
	return sa;
}

/* Ethernet, IPv4 (TOS with ECN), UDP, PAYLOAD bytes: in one segment, or in
 * two split @split bytes in. */
static struct rte_mbuf *packet(uint32_t split)
{
	uint8_t f[MAX_PKT] = {0};
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint32_t len = RTE_ETHER_HDR_LEN + sizeof(*ip) + sizeof(*udp) + PAYLOAD;
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool), *m2;

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
	if (split == 0)
		split = len;
	memcpy(rte_pktmbuf_append(m, (uint16_t)split), f, split);
	if (split < len) {
		m2 = rte_pktmbuf_alloc(pool);
		assert_non_null(m2);
		memcpy(rte_pktmbuf_append(m2, (uint16_t)(len - split)), f + split, len - split);
		assert_int_equal(rte_pktmbuf_chain(m, m2), 0);
	}
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

int main(void)
{
	char *args[] = {"test_esp_native_out",
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
	};

	if (rte_eal_init(RTE_DIM(args) - 1, args) < 0) {
		fprintf(stderr, "test_esp_native_out: cannot start the EAL\n");
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
