/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/cksum.h: the five-word IPv4 header checksum must agree with
 * DPDK's generic one on every header, and with a published example.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/cksum.h"

/* The worked example of the IPv4 header checksum (RFC 1071 §3 method): a
 * UDP datagram from 192.168.0.1 to 192.168.0.199, checksum 0xb861. */
static const uint8_t example[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
				    0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};

static void test_cksum_accepts_the_published_example(void **state)
{
	(void)state;
	assert_true(dp_ip4_cksum_ok((const struct rte_ipv4_hdr *)example, 20));
}

static void test_cksum_set_reproduces_the_published_example(void **state)
{
	struct rte_ipv4_hdr h;

	(void)state;
	memcpy(&h, example, sizeof(h));
	h.hdr_checksum = 0x1234;
	dp_ip4_cksum_set(&h);
	assert_memory_equal(&h, example, sizeof(h));
}

static void test_cksum_rejects_a_changed_byte(void **state)
{
	uint8_t h[20];

	(void)state;
	for (unsigned int i = 0; i < sizeof(h); i++) {
		memcpy(h, example, sizeof(h));
		h[i] ^= 0x01;
		assert_false(dp_ip4_cksum_ok((const struct rte_ipv4_hdr *)h, 20));
	}
}

/* Random headers, and headers whose sums carry a lot (bytes near 0xff):
 * the same verdict and the same checksum as rte_raw_cksum / rte_ipv4_cksum. */
static void test_cksum_agrees_with_dpdk_on_random_headers(void **state)
{
	(void)state;
	srandom(1071);
	for (unsigned int n = 0; n < 200000; n++) {
		struct rte_ipv4_hdr h, want;
		uint8_t *b = (uint8_t *)&h;

		for (unsigned int i = 0; i < sizeof(h); i++)
			b[i] = n % 4 == 0 ? (uint8_t)(0xf0 | (random() & 0x0f)) : (uint8_t)random();
		h.version_ihl = 0x45;
		assert_int_equal(dp_ip4_cksum_ok(&h, 20), rte_raw_cksum(&h, 20) == 0xffff);
		want = h;
		want.hdr_checksum = 0;
		want.hdr_checksum = rte_ipv4_cksum(&want);
		dp_ip4_cksum_set(&h);
		assert_int_equal(h.hdr_checksum, want.hdr_checksum);
		assert_true(dp_ip4_cksum_ok(&h, 20));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cksum_accepts_the_published_example),
		cmocka_unit_test(test_cksum_set_reproduces_the_published_example),
		cmocka_unit_test(test_cksum_rejects_a_changed_byte),
		cmocka_unit_test(test_cksum_agrees_with_dpdk_on_random_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
