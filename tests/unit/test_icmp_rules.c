/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/icmp_rules.h: when the dataplane may send "fragmentation
 * needed" (RFC 1191) or "packet too big" (RFC 4443 §3.2) about a packet. No
 * error about an ICMP error, a fragment other than the first, or to a source
 * that is not one host (RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)); RFC 1191 only
 * applies to packets with DF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/icmp_rules.h"

#define DF 0x40

/* An IPv4 header (20 bytes) from @src with flags/offset @f0 @f1 and protocol
 * @proto, then 8 bytes of payload whose first byte is @type. */
static void ip4(uint8_t *p, const uint8_t src[4], uint8_t f0, uint8_t f1, uint8_t proto,
		uint8_t type)
{
	memset(p, 0, 28);
	p[0] = 0x45;
	p[3] = 28;
	p[6] = f0;
	p[7] = f1;
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	p[16] = 198, p[17] = 51, p[18] = 100, p[19] = 7;
	p[20] = type;
}

static const uint8_t host4[4] = {192, 0, 2, 1};

static void test_ipv4_with_df_from_a_host_gets_an_error(void **state)
{
	uint8_t p[28];

	(void)state;
	ip4(p, host4, DF, 0, 17, 0);
	assert_true(dp_icmp4_wants_error(p, 28));
	/* the first fragment (MF, offset 0) too */
	ip4(p, host4, DF | 0x20, 0, 17, 0);
	assert_true(dp_icmp4_wants_error(p, 28));
}

static void test_ipv4_without_df_or_a_later_fragment_gets_none(void **state)
{
	uint8_t p[28];

	(void)state;
	ip4(p, host4, 0, 0, 17, 0);
	assert_false(dp_icmp4_wants_error(p, 28));
	ip4(p, host4, DF, 185, 17, 0); /* offset 1480 */
	assert_false(dp_icmp4_wants_error(p, 28));
	ip4(p, host4, DF | 0x01, 0, 17, 0); /* offset 2048, in the high bits */
	assert_false(dp_icmp4_wants_error(p, 28));
}

static void test_ipv4_source_that_is_not_one_host_gets_none(void **state)
{
	static const uint8_t bad[][4] = {
		{0, 0, 0, 0},	      {127, 0, 0, 1}, {224, 0, 0, 1},
		{239, 255, 255, 250}, {240, 0, 0, 1}, {255, 255, 255, 255},
	};
	uint8_t p[28];

	(void)state;
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ip4(p, bad[i], DF, 0, 17, 0);
		assert_false(dp_icmp4_wants_error(p, 28));
	}
}

static void test_icmpv4_errors_get_none_queries_do(void **state)
{
	static const uint8_t errors[] = {3, 4, 5, 11, 12};
	uint8_t p[28];

	(void)state;
	for (unsigned int i = 0; i < sizeof(errors); i++) {
		ip4(p, host4, DF, 0, 1, errors[i]);
		assert_false(dp_icmp4_wants_error(p, 28));
	}
	ip4(p, host4, DF, 0, 1, 8); /* echo request */
	assert_true(dp_icmp4_wants_error(p, 28));
	ip4(p, host4, DF, 0, 1, 0); /* echo reply */
	assert_true(dp_icmp4_wants_error(p, 28));
	/* the ICMP type not in the buffer: nothing shows it is an error */
	ip4(p, host4, DF, 0, 1, 3);
	assert_true(dp_icmp4_wants_error(p, 20));
}

/* An IPv6 header from @src with next header @nh, then one byte @type. */
static void ip6(uint8_t *p, const uint8_t src[16], uint8_t nh, uint8_t type)
{
	memset(p, 0, 48);
	p[0] = 0x60;
	p[5] = 8;
	p[6] = nh;
	p[7] = 64;
	memcpy(p + 8, src, 16);
	p[24] = 0x20, p[25] = 0x01, p[26] = 0x0d, p[27] = 0xb8, p[39] = 2;
	p[40] = type;
}

static const uint8_t host6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};

static void test_ipv6_from_a_host_gets_an_error(void **state)
{
	uint8_t p[48];

	(void)state;
	ip6(p, host6, 17, 0);
	assert_true(dp_icmp6_wants_error(p, 48));
	ip6(p, host6, 58, 128); /* echo request */
	assert_true(dp_icmp6_wants_error(p, 48));
}

static void test_ipv6_unspecified_loopback_or_multicast_source_gets_none(void **state)
{
	static const uint8_t unspec[16], loop[16] = {[15] = 1}, mcast[16] = {0xff, 0x02, [15] = 1};
	uint8_t p[48];

	(void)state;
	ip6(p, unspec, 17, 0);
	assert_false(dp_icmp6_wants_error(p, 48));
	ip6(p, loop, 17, 0);
	assert_false(dp_icmp6_wants_error(p, 48));
	ip6(p, mcast, 17, 0);
	assert_false(dp_icmp6_wants_error(p, 48));
}

static void test_icmpv6_errors_get_none(void **state)
{
	uint8_t p[48];

	(void)state;
	for (uint8_t t = 1; t <= 4; t++) { /* unreachable, too big, time exceeded, parameter */
		ip6(p, host6, 58, t);
		assert_false(dp_icmp6_wants_error(p, 48));
	}
	ip6(p, host6, 58, 127);
	assert_false(dp_icmp6_wants_error(p, 48));
	ip6(p, host6, 58, 129); /* echo reply */
	assert_true(dp_icmp6_wants_error(p, 48));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_with_df_from_a_host_gets_an_error),
		cmocka_unit_test(test_ipv4_without_df_or_a_later_fragment_gets_none),
		cmocka_unit_test(test_ipv4_source_that_is_not_one_host_gets_none),
		cmocka_unit_test(test_icmpv4_errors_get_none_queries_do),
		cmocka_unit_test(test_ipv6_from_a_host_gets_an_error),
		cmocka_unit_test(test_ipv6_unspecified_loopback_or_multicast_source_gets_none),
		cmocka_unit_test(test_icmpv6_errors_get_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
