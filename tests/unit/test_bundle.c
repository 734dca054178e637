/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SA bundles in src/dataplane/spd.c (RFC 4301 §4.5): what a policy of several
 * requests resolves to, and the inbound check of RFC 4301 §5.2 over the SAs a
 * packet came through, outermost first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/sa.h"
#include "dataplane/spd.h"

int dp_logtype;

static const struct dps_ipsec_defaults defs = {
	.esp_trans_deflev = DPS_LEVEL_REQUIRE,
	.esp_net_deflev = DPS_LEVEL_REQUIRE,
	.ah_trans_deflev = DPS_LEVEL_REQUIRE,
	.ah_net_deflev = DPS_LEVEL_REQUIRE,
};

static struct dps_ipsec_req req(uint8_t proto, uint8_t mode, uint8_t level, uint32_t reqid)
{
	return (struct dps_ipsec_req){.proto = proto, .mode = mode, .level = level, .reqid = reqid};
}

/* charon's [ipcomp, esp] tunnel: IPComp carries the tunnel, ESP is transport
 * over its outer header (kernel_pfkey_ipsec.c add_policy_internal). */
static struct dps_policy ipcomp_esp(uint8_t dir, uint8_t ipcomp_level)
{
	struct dps_policy p = {.id = 8, .dir = dir, .action = DPS_ACTION_PROTECT, .n_reqs = 2};

	p.reqs[0] = req(DPS_PROTO_IPCOMP, DPS_MODE_TUNNEL, ipcomp_level, 7);
	p.reqs[1] = req(DPS_PROTO_ESP, DPS_MODE_TRANSPORT, DPS_LEVEL_UNIQUE, 7);
	return p;
}

static struct dp_sa sa_of(uint8_t proto, uint8_t mode, uint32_t reqid)
{
	struct dp_sa sa;

	memset(&sa, 0, sizeof(sa));
	sa.cfg.proto = proto;
	sa.cfg.mode = mode;
	sa.cfg.reqid = reqid;
	sa.cfg.dir = DPS_DIR_IN;
	sa.mode = mode;
	return sa;
}

static void test_out_bundle_protects_only_with_its_first_sa_bound(void **state)
{
	struct dps_policy p = ipcomp_esp(DPS_DIR_OUT, DPS_LEVEL_UNIQUE);
	struct dp_sa first = sa_of(DPS_PROTO_IPCOMP, DPS_MODE_TUNNEL, 7);
	struct dp_policy dp;

	(void)state;
	dp_policy_resolve(&dp, &p, &first, NULL, &defs);
	assert_int_equal(dp.verdict, DP_V_PROTECT);
	assert_ptr_equal(dp.sa, &first);
	assert_int_equal(dp.n_bundle, 2);
	assert_int_equal(dp.bundle[0].proto, DPS_PROTO_IPCOMP);
	assert_int_equal(dp.bundle[1].proto, DPS_PROTO_ESP);
	/* a layer missing: the binder gives no SA; drop and ACQUIRE, never clear */
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_int_equal(dp.verdict, DP_V_NO_SA);
}

static void test_out_bundle_passes_in_clear_only_when_every_level_is_use(void **state)
{
	struct dps_policy p = ipcomp_esp(DPS_DIR_OUT, DPS_LEVEL_USE);
	struct dp_policy dp;

	(void)state;
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_int_equal(dp.verdict, DP_V_NO_SA); /* ESP is unique */
	p.reqs[1].level = DPS_LEVEL_USE;
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_int_equal(dp.verdict, DP_V_BYPASS);
}

static void test_in_bundle_requires_ipsec_when_a_layer_is_required(void **state)
{
	/* charon's inbound IPComp request is level use, its ESP unique */
	struct dps_policy p = ipcomp_esp(DPS_DIR_IN, DPS_LEVEL_USE);
	struct dp_policy dp;

	(void)state;
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_int_equal(dp.verdict, DP_V_REQUIRE_IN);
	assert_null(dp.sa);
	assert_int_equal(dp.n_bundle, 2);
}

static void test_in_bundle_accepts_its_layers_in_wire_order_only(void **state)
{
	struct dps_policy p = ipcomp_esp(DPS_DIR_FWD, DPS_LEVEL_USE);
	struct dp_sa esp = sa_of(DPS_PROTO_ESP, DPS_MODE_TRANSPORT, 7);
	struct dp_sa comp = sa_of(DPS_PROTO_IPCOMP, DPS_MODE_TUNNEL, 7);
	struct dp_sa other = sa_of(DPS_PROTO_ESP, DPS_MODE_TRANSPORT, 9);
	struct dp_policy dp;

	(void)state;
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	/* outer IP / ESP / IPComp / inner IP: ESP undone first */
	assert_true(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp, &comp}, 2));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&comp, &esp}, 2));
	/* a skipped required layer: IPComp alone */
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&comp}, 1));
	/* RFC 3173 §2.2: IPComp may be absent (transport: nothing left to undo) */
	assert_true(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp}, 1));
	/* another reqid's ESP, or a layer too many */
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&other, &comp}, 2));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp, &esp, &comp}, 3));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp}, 0));
}

static void test_esp_ah_bundle_wants_ah_outermost(void **state)
{
	struct dps_policy p = {.dir = DPS_DIR_IN, .action = DPS_ACTION_PROTECT, .n_reqs = 2};
	struct dp_sa esp = sa_of(DPS_PROTO_ESP, DPS_MODE_TUNNEL, 3);
	struct dp_sa ah = sa_of(DPS_PROTO_AH, DPS_MODE_TRANSPORT, 4);
	struct dp_policy dp;

	(void)state;
	p.reqs[0] = req(DPS_PROTO_ESP, DPS_MODE_TUNNEL, DPS_LEVEL_REQUIRE, 3);
	p.reqs[1] = req(DPS_PROTO_AH, DPS_MODE_TRANSPORT, DPS_LEVEL_REQUIRE, 4);
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_true(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&ah, &esp}, 2));
	/* AH is no IPComp: it may not be skipped */
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp}, 1));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&ah}, 1));
}

static void test_single_request_policy_accepts_one_sa_only(void **state)
{
	struct dps_policy p = {.dir = DPS_DIR_IN, .action = DPS_ACTION_PROTECT, .n_reqs = 1};
	struct dp_sa esp = sa_of(DPS_PROTO_ESP, DPS_MODE_TRANSPORT, 3);
	struct dp_sa ah = sa_of(DPS_PROTO_AH, DPS_MODE_TRANSPORT, 4);
	struct dp_policy dp;

	(void)state;
	p.reqs[0] = req(DPS_PROTO_ESP, DPS_MODE_TRANSPORT, DPS_LEVEL_REQUIRE, 3);
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_int_equal(dp.n_bundle, 0);
	assert_true(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp}, 1));
	/* ESP inside an AH it did not ask for */
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&ah, &esp}, 2));
}

static void test_three_layer_bundle_skips_only_ipcomp(void **state)
{
	/* [ipcomp, esp, ah] tunnel: outer IP / AH / ESP / IPComp / inner IP */
	struct dps_policy p = ipcomp_esp(DPS_DIR_FWD, DPS_LEVEL_REQUIRE);
	struct dp_sa ah = sa_of(DPS_PROTO_AH, DPS_MODE_TRANSPORT, 7);
	struct dp_sa esp = sa_of(DPS_PROTO_ESP, DPS_MODE_TRANSPORT, 7);
	struct dp_sa comp = sa_of(DPS_PROTO_IPCOMP, DPS_MODE_TUNNEL, 7);
	struct dp_policy dp;

	(void)state;
	p.n_reqs = 3;
	p.reqs[2] = req(DPS_PROTO_AH, DPS_MODE_TRANSPORT, DPS_LEVEL_REQUIRE, 7);
	dp_policy_resolve(&dp, &p, NULL, NULL, &defs);
	assert_int_equal(dp.n_bundle, 3);
	assert_true(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&ah, &esp, &comp}, 3));
	/* RFC 3173 §2.2: IPComp absent, even at level require */
	assert_true(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&ah, &esp}, 2));
	/* a skipped AH or ESP, or both */
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp, &comp}, 2));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&ah, &comp}, 2));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&comp}, 1));
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp}, 1));
	/* out of order */
	assert_false(dp_policy_accepts_chain(&dp, (struct dp_sa *[]){&esp, &ah, &comp}, 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_bundle_protects_only_with_its_first_sa_bound),
		cmocka_unit_test(test_out_bundle_passes_in_clear_only_when_every_level_is_use),
		cmocka_unit_test(test_in_bundle_requires_ipsec_when_a_layer_is_required),
		cmocka_unit_test(test_in_bundle_accepts_its_layers_in_wire_order_only),
		cmocka_unit_test(test_esp_ah_bundle_wants_ah_outermost),
		cmocka_unit_test(test_single_request_policy_accepts_one_sa_only),
		cmocka_unit_test(test_three_layer_bundle_skips_only_ipcomp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
