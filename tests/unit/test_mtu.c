/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/mtu.h: what an SA adds to a packet and what fits a link once
 * protected. Expected values are computed by hand from the header sizes:
 * IPv4 20 and IPv6 40 bytes (RFC 791, RFC 8200), UDP 8 (RFC 768, RFC 3948),
 * ESP header 8 (SPI + sequence number, RFC 4303 §2), explicit IV 8 for
 * AES-GCM (RFC 4106 §3.1) and 16 for AES-CBC (RFC 3602 §3), ICV 16 for
 * AES-GCM-16 and HMAC-SHA2-256-128 (RFC 4868), 12 for HMAC-SHA1-96
 * (RFC 2404), and the ESP trailer (pad length, next header) 2, the payload
 * and trailer padded to 4 bytes (GCM) or the 16-byte AES block (CBC).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/mtu.h"

static void test_overhead_of_each_mode_family_and_encapsulation(void **state)
{
	(void)state;
	/* tunnel, IPv4 outer, AES-GCM: 20 + 8 + 8 + 16 */
	assert_int_equal(dp_esp_overhead(true, false, false, 8, 16), 52);
	/* tunnel, IPv6 outer, NAT-T, AES-GCM: 40 + 8 + 8 + 8 + 16 */
	assert_int_equal(dp_esp_overhead(true, true, true, 8, 16), 80);
	/* transport, AES-CBC + HMAC-SHA2-256-128: 8 + 16 + 16 */
	assert_int_equal(dp_esp_overhead(false, false, false, 16, 16), 40);
	/* transport, NAT-T, AES-CBC + HMAC-SHA1-96: 8 + 8 + 16 + 12 */
	assert_int_equal(dp_esp_overhead(false, false, true, 16, 12), 44);
	/* transport never adds an outer header, whatever the family */
	assert_int_equal(dp_esp_overhead(false, true, false, 8, 16), 32);
}

static void test_protected_length_pads_payload_and_trailer_to_the_block(void **state)
{
	(void)state;
	/* tunnel GCM, 1400-byte packet: 1400 + 2 padded to 1404; 52 + 1404 */
	assert_int_equal(dp_esp_protected_len(1400, 0, 52, 4), 1456);
	/* 1402 + 2 = 1404 needs no padding */
	assert_int_equal(dp_esp_protected_len(1402, 0, 52, 4), 1456);
	/* transport CBC-SHA256 behind a 20-byte IPv4 header, 1000 bytes: payload
	 * 980 + 2 padded to 992; 20 + 40 + 992 */
	assert_int_equal(dp_esp_protected_len(1000, 20, 40, 16), 1052);
	/* a 60-byte IPv6 packet in transport mode (40-byte header kept): 20 + 2
	 * padded to 32; 40 + 40 + 32 */
	assert_int_equal(dp_esp_protected_len(60, 40, 40, 16), 112);
}

static void test_inner_mtu_is_the_largest_packet_that_fits(void **state)
{
	(void)state;
	/* tunnel GCM over a 1500 link: 1500 - 52 = 1448 (a multiple of 4) - 2 */
	assert_int_equal(dp_esp_inner_mtu(1500, 0, 52, 4), 1446);
	assert_true(dp_esp_protected_len(1446, 0, 52, 4) <= 1500);
	assert_true(dp_esp_protected_len(1447, 0, 52, 4) > 1500);
	/* tunnel CBC-SHA1 (overhead 20 + 8 + 16 + 12 = 56): 1444 rounded down to
	 * 1440 - 2, as Linux's esp4_get_mtu() */
	assert_int_equal(dp_esp_inner_mtu(1500, 0, 56, 16), 1438);
	assert_true(dp_esp_protected_len(1438, 0, 56, 16) <= 1500);
	assert_true(dp_esp_protected_len(1439, 0, 56, 16) > 1500);
	/* IPv6 outer with NAT-T over 1280: 1200 - 2 */
	assert_int_equal(dp_esp_inner_mtu(1280, 0, 80, 4), 1198);
	/* transport CBC-SHA256 behind 20 bytes over 1500: 20 + (1440 & ~15 =
	 * 1440) - 2 */
	assert_int_equal(dp_esp_inner_mtu(1500, 20, 40, 16), 1458);
	assert_true(dp_esp_protected_len(1458, 20, 40, 16) <= 1500);
	assert_true(dp_esp_protected_len(1459, 20, 40, 16) > 1500);
}

static void test_inner_mtu_of_a_link_too_small_for_any_packet_is_zero(void **state)
{
	(void)state;
	assert_int_equal(dp_esp_inner_mtu(55, 0, 52, 4), 0);
	assert_int_equal(dp_esp_inner_mtu(70, 20, 40, 16), 0);
	/* just large enough: one block of payload and trailer, 4 - 2 = 2 bytes */
	assert_int_equal(dp_esp_inner_mtu(56, 0, 52, 4), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overhead_of_each_mode_family_and_encapsulation),
		cmocka_unit_test(test_protected_length_pads_payload_and_trailer_to_the_block),
		cmocka_unit_test(test_inner_mtu_is_the_largest_packet_that_fits),
		cmocka_unit_test(test_inner_mtu_of_a_link_too_small_for_any_packet_is_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
