/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/verdict.h: what a policy's action and level mean once an SA
 * is bound or not (RFC 4301 §4.4.1, the seeds' setkey levels), and the
 * inbound check of RFC 4301 §5.2 applied to each verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/verdict.h"

/* No ESP request in the policy (e.g. AH only): resolve passes DEFAULT. */
#define NO_ESP DPS_LEVEL_DEFAULT

static void test_discard_and_bypass_ignore_level_and_sa(void **state)
{
	static const uint8_t dirs[] = {DPS_DIR_IN, DPS_DIR_OUT, DPS_DIR_FWD};
	static const uint8_t levels[] = {NO_ESP, DPS_LEVEL_USE, DPS_LEVEL_REQUIRE,
					 DPS_LEVEL_UNIQUE};

	(void)state;
	for (unsigned int d = 0; d < 3; d++)
		for (unsigned int l = 0; l < 4; l++)
			for (int sa = 0; sa < 2; sa++)
				for (int miss = 0; miss < 2; miss++) {
					assert_int_equal(dp_verdict_resolve(dirs[d],
									    DPS_ACTION_DISCARD,
									    levels[l], miss, sa),
							 DP_V_DISCARD);
					assert_int_equal(dp_verdict_resolve(dirs[d],
									    DPS_ACTION_BYPASS,
									    levels[l], miss, sa),
							 DP_V_BYPASS);
				}
}

static void test_out_protect_with_an_sa_protects_at_every_level(void **state)
{
	(void)state;
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_USE, false, true),
		DP_V_PROTECT);
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_REQUIRE, false, true),
		DP_V_PROTECT);
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_UNIQUE, false, true),
		DP_V_PROTECT);
}

static void test_out_protect_without_sa_use_passes_in_clear_require_drops(void **state)
{
	(void)state;
	/* use: "protect if an SA exists, else send in clear" */
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_USE, false, false),
		DP_V_BYPASS);
	/* require/unique: dropped, and the PF_KEY server sends an ACQUIRE */
	assert_int_equal(dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_REQUIRE,
					    false, false),
			 DP_V_NO_SA);
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_UNIQUE, false, false),
		DP_V_NO_SA);
	assert_int_equal(dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, NO_ESP, false, false),
			 DP_V_NO_SA);
}

static void test_out_protect_with_a_required_request_not_run_never_protects(void **state)
{
	(void)state;
	/* another request (AH, IPComp) is required but not run by the dataplane:
	 * even a bound ESP SA must not make it look satisfied */
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_USE, true, true),
		DP_V_NO_SA);
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_REQUIRE, true, true),
		DP_V_NO_SA);
	assert_int_equal(
		dp_verdict_resolve(DPS_DIR_OUT, DPS_ACTION_PROTECT, DPS_LEVEL_USE, true, false),
		DP_V_NO_SA);
}

static void test_in_and_fwd_protect_use_accepts_clear_require_does_not(void **state)
{
	static const uint8_t dirs[] = {DPS_DIR_IN, DPS_DIR_FWD};

	(void)state;
	for (unsigned int d = 0; d < 2; d++)
		for (int sa = 0; sa < 2; sa++) { /* an inbound policy binds no SA */
			assert_int_equal(dp_verdict_resolve(dirs[d], DPS_ACTION_PROTECT,
							    DPS_LEVEL_USE, false, sa),
					 DP_V_USE_IN);
			assert_int_equal(dp_verdict_resolve(dirs[d], DPS_ACTION_PROTECT,
							    DPS_LEVEL_REQUIRE, false, sa),
					 DP_V_REQUIRE_IN);
			assert_int_equal(dp_verdict_resolve(dirs[d], DPS_ACTION_PROTECT,
							    DPS_LEVEL_UNIQUE, false, sa),
					 DP_V_REQUIRE_IN);
			assert_int_equal(dp_verdict_resolve(dirs[d], DPS_ACTION_PROTECT,
							    DPS_LEVEL_USE, true, sa),
					 DP_V_REQUIRE_IN);
			assert_int_equal(
				dp_verdict_resolve(dirs[d], DPS_ACTION_PROTECT, NO_ESP, false, sa),
				DP_V_REQUIRE_IN);
		}
}

static void test_level_default_takes_the_deflev_of_protocol_and_mode(void **state)
{
	struct dps_ipsec_defaults d = {
		.esp_trans_deflev = DPS_LEVEL_USE,
		.esp_net_deflev = DPS_LEVEL_REQUIRE,
		.ah_trans_deflev = DPS_LEVEL_REQUIRE,
		.ah_net_deflev = DPS_LEVEL_USE,
	};
	struct dps_ipsec_req r = {
		.proto = DPS_PROTO_ESP, .mode = DPS_MODE_TUNNEL, .level = DPS_LEVEL_DEFAULT};

	(void)state;
	assert_int_equal(dp_level_of(&d, &r), DPS_LEVEL_REQUIRE);
	r.mode = DPS_MODE_TRANSPORT;
	assert_int_equal(dp_level_of(&d, &r), DPS_LEVEL_USE);
	r.proto = DPS_PROTO_AH;
	assert_int_equal(dp_level_of(&d, &r), DPS_LEVEL_REQUIRE);
	r.mode = DPS_MODE_TUNNEL;
	assert_int_equal(dp_level_of(&d, &r), DPS_LEVEL_USE);
	/* a level the policy states wins over the default */
	r.level = DPS_LEVEL_UNIQUE;
	assert_int_equal(dp_level_of(&d, &r), DPS_LEVEL_UNIQUE);
	r.proto = DPS_PROTO_ESP;
	r.level = DPS_LEVEL_USE;
	assert_int_equal(dp_level_of(&d, &r), DPS_LEVEL_USE);
}

static void test_inbound_check_of_plaintext(void **state)
{
	(void)state;
	assert_int_equal(dp_inbound_check(DP_V_BYPASS, false, false), DP_IN_PASS);
	assert_int_equal(dp_inbound_check(DP_V_USE_IN, false, false), DP_IN_PASS);
	assert_int_equal(dp_inbound_check(DP_V_DISCARD, false, false), DP_IN_DROP_POLICY);
	assert_int_equal(dp_inbound_check(DP_V_REQUIRE_IN, false, false), DP_IN_DROP_PLAINTEXT);
}

static void test_inbound_check_of_decrypted_packets(void **state)
{
	static const uint8_t v[] = {DP_V_DISCARD, DP_V_BYPASS, DP_V_REQUIRE_IN, DP_V_USE_IN};

	(void)state;
	/* only a protect policy that accepts the SA lets a decrypted packet in:
	 * a bypass policy (or def_policy) does not, RFC 4301 §5.2 step 4 */
	assert_int_equal(dp_inbound_check(DP_V_REQUIRE_IN, true, true), DP_IN_PASS);
	assert_int_equal(dp_inbound_check(DP_V_USE_IN, true, true), DP_IN_PASS);
	assert_int_equal(dp_inbound_check(DP_V_DISCARD, true, true), DP_IN_DROP_SA_POLICY);
	assert_int_equal(dp_inbound_check(DP_V_BYPASS, true, true), DP_IN_DROP_SA_POLICY);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(dp_inbound_check(v[i], true, false), DP_IN_DROP_SA_POLICY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discard_and_bypass_ignore_level_and_sa),
		cmocka_unit_test(test_out_protect_with_an_sa_protects_at_every_level),
		cmocka_unit_test(test_out_protect_without_sa_use_passes_in_clear_require_drops),
		cmocka_unit_test(test_out_protect_with_a_required_request_not_run_never_protects),
		cmocka_unit_test(test_in_and_fwd_protect_use_accepts_clear_require_does_not),
		cmocka_unit_test(test_level_default_takes_the_deflev_of_protocol_and_mode),
		cmocka_unit_test(test_inbound_check_of_plaintext),
		cmocka_unit_test(test_inbound_check_of_decrypted_packets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
