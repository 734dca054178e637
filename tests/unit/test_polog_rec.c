/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/polog_rec.h: the policy-failure record a worker decodes from
 * a dropped packet, and the line the control thread logs. Packets are written
 * out byte by byte from RFC 791 (IPv4), RFC 8200 (IPv6), RFC 792 (ICMP),
 * RFC 768 (UDP), RFC 4303 §2 (ESP) and RFC 4302 §2 (AH) layouts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/polog_rec.h"

/* 10.0.0.1 > 192.168.1.2, ICMP echo request (type 8 code 0). */
static const uint8_t icmp4[] = {0x45, 0, 0,   28,  0, 1, 0, 0, 64,   1,	   0, 0, 10, 0,
				0,    1, 192, 168, 1, 2, 8, 0, 0xf7, 0xff, 0, 0, 0,  0};

static void test_decode_icmp4_echo_type_and_code(void **state)
{
	struct dp_polog_rec r = {0};
	const uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {192, 168, 1, 2};

	(void)state;
	dp_polog_decode(&r, icmp4, sizeof(icmp4));
	assert_int_equal(r.family, AF_INET);
	assert_int_equal(r.proto, 1);
	assert_memory_equal(r.src, src, 4);
	assert_memory_equal(r.dst, dst, 4);
	assert_true(r.has_l4);
	assert_int_equal(r.sport, 8);
	assert_int_equal(r.dport, 0);
	assert_false(r.has_spi);
}

static void test_decode_non_first_fragment_has_no_ports(void **state)
{
	uint8_t frag[sizeof(icmp4)];
	struct dp_polog_rec r = {0};

	(void)state;
	memcpy(frag, icmp4, sizeof(frag));
	frag[7] = 185; /* fragment offset 185 * 8 */
	dp_polog_decode(&r, frag, sizeof(frag));
	assert_int_equal(r.family, AF_INET);
	assert_false(r.has_l4);
}

static void test_decode_ipv6_udp_ports(void **state)
{
	uint8_t p[48] = {0x60, 0, 0, 0, 0, 8, 17, 64};
	struct dp_polog_rec r = {0};

	(void)state;
	p[8] = 0x20, p[9] = 0x01, p[10] = 0x0d, p[11] = 0xb8, p[23] = 1; /* 2001:db8::1 */
	p[24] = 0x20, p[25] = 0x01, p[26] = 0x0d, p[27] = 0xb8, p[39] = 2;
	p[40] = 0x30, p[41] = 0x39; /* 12345 */
	p[42] = 0x00, p[43] = 0x35; /* 53 */
	dp_polog_decode(&r, p, sizeof(p));
	assert_int_equal(r.family, AF_INET6);
	assert_int_equal(r.proto, 17);
	assert_int_equal(r.sport, 12345);
	assert_int_equal(r.dport, 53);
	assert_int_equal(r.src[15], 1);
	assert_int_equal(r.dst[15], 2);
}

static void test_decode_esp_and_ah_spi(void **state)
{
	uint8_t esp[28] = {0x45, 0, 0, 28, 0, 0, 0,    0,    64,   50,	 0, 0, 1, 2,
			   3,	 4, 5, 6,  7, 8, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1};
	uint8_t ah[32] = {0x45, 0, 0, 32, 0, 0, 0, 0, 64,   51,	  0,	0,    1, 2, 3, 4,
			  5,	6, 7, 8,  4, 4, 0, 0, 0x00, 0x00, 0x12, 0x34, 0, 0, 0, 1};
	struct dp_polog_rec r = {0};

	(void)state;
	dp_polog_decode(&r, esp, sizeof(esp));
	assert_true(r.has_spi);
	assert_int_equal(r.spi, 0xdeadbeef);
	memset(&r, 0, sizeof(r));
	dp_polog_decode(&r, ah, sizeof(ah));
	assert_true(r.has_spi);
	assert_int_equal(r.spi, 0x1234);
}

/* RFC 3173 §2.2: next header, flags, then the 16-bit CPI. */
static void test_decode_and_format_ipcomp_cpi(void **state)
{
	uint8_t ipcomp[28] = {0x45, 0, 0,   28, 0, 0, 0, 0, 64,	  108,	0,    0,    192,  0,
			      2,    1, 192, 0,	2, 2, 4, 0, 0x12, 0x34, 0xff, 0xff, 0xff, 0xff};
	struct dp_polog_rec r = {.reason = DP_POLOG_bomb, .sa_id = 9};
	char line[256];

	(void)state;
	dp_polog_decode(&r, ipcomp, sizeof(ipcomp));
	assert_true(r.has_spi);
	assert_int_equal(r.spi, 0x1234);
	dp_polog_format(&r, 2, "wan", line, sizeof(line));
	assert_string_equal(line, "reason bomb port wan policy - sa 9 ipcomp 192.0.2.1 > 192.0.2.2 "
				  "cpi 0x1234 suppressed 2");
	r.reason = DP_POLOG_decomp;
	dp_polog_format(&r, 0, "wan", line, sizeof(line));
	assert_string_equal(line,
			    "reason decomp port wan policy - sa 9 ipcomp 192.0.2.1 > 192.0.2.2 "
			    "cpi 0x1234 suppressed 0");
}

static void test_decode_refuses_truncated_and_non_ip(void **state)
{
	struct dp_polog_rec r = {0};
	const uint8_t arp[28] = {0, 1, 8, 0, 6, 4};

	(void)state;
	dp_polog_decode(&r, icmp4, 19);
	assert_int_equal(r.family, 0);
	dp_polog_decode(&r, arp, sizeof(arp));
	assert_int_equal(r.family, 0);
	dp_polog_decode(&r, icmp4, 21); /* header whole, ICMP cut after one byte */
	assert_int_equal(r.family, AF_INET);
	assert_false(r.has_l4);
}

static void test_format_names_reason_ids_and_suppressed(void **state)
{
	struct dp_polog_rec r = {.reason = DP_POLOG_plaintext, .policy_id = 17, .port = 1};
	char line[256];

	(void)state;
	dp_polog_decode(&r, icmp4, sizeof(icmp4));
	dp_polog_format(&r, 41, "wan", line, sizeof(line));
	assert_string_equal(line, "reason plaintext port wan policy 17 sa - icmp 10.0.0.1 > "
				  "192.168.1.2 type 8 code 0 suppressed 41");
	r = (struct dp_polog_rec){.reason = DP_POLOG_replay,
				  .sa_id = 3,
				  .has_spi = 1,
				  .spi = 0x2001,
				  .family = AF_INET,
				  .proto = 50};
	memcpy(r.src, (uint8_t[]){192, 0, 2, 1}, 4);
	memcpy(r.dst, (uint8_t[]){192, 0, 2, 2}, 4);
	dp_polog_format(&r, 0, NULL, line, sizeof(line));
	assert_string_equal(line, "reason replay port ? policy - sa 3 esp 192.0.2.1 > 192.0.2.2 "
				  "spi 0x00002001 suppressed 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_icmp4_echo_type_and_code),
		cmocka_unit_test(test_decode_non_first_fragment_has_no_ports),
		cmocka_unit_test(test_decode_ipv6_udp_ports),
		cmocka_unit_test(test_decode_esp_and_ah_spi),
		cmocka_unit_test(test_decode_and_format_ipcomp_cpi),
		cmocka_unit_test(test_decode_refuses_truncated_and_non_ip),
		cmocka_unit_test(test_format_names_reason_ids_and_suppressed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
