/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/control/binding.c: which SA an outbound protect policy uses. A request
 * with a reqid takes an SA of that reqid; one without takes the SA between
 * its tunnel endpoints (tunnel mode) or to the host its selector names
 * (transport mode); when a rekey leaves two candidates, the newer SA (higher
 * store id) wins; with none the policy is unbound (the dataplane then drops
 * and ACQUIREs). Also the inner family a tunnel SA is made for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/store_state.h"

static struct dps_addr ip(const char *s)
{
	struct dps_addr a;

	assert_int_equal(dps_addr_parse(s, &a), 0);
	return a;
}

static struct dps_prefix net(const char *s)
{
	struct dps_prefix p;

	assert_int_equal(dps_prefix_parse(s, &p), 0);
	return p;
}

/* An ESP SA as the store keeps it. */
static struct dps_store_sa sa(uint32_t id, uint8_t dir, uint8_t mode, const char *src,
			      const char *dst, uint32_t reqid)
{
	return (struct dps_store_sa){
		.id = id,
		.cfg = {.spi = 0x1000 + id,
			.proto = DPS_PROTO_ESP,
			.mode = mode,
			.dir = dir,
			.src = ip(src),
			.dst = ip(dst),
			.reqid = reqid},
	};
}

/* An outbound protect policy from 10.1.0.0/24 to @dst with one ESP request. */
static struct dps_policy out_policy(const char *dst, uint8_t mode, uint32_t reqid,
				    const char *tun_src, const char *tun_dst)
{
	struct dps_policy p = {
		.dir = DPS_DIR_OUT,
		.action = DPS_ACTION_PROTECT,
		.sel = {.src = net("10.1.0.0/24"),
			.dst = net(dst),
			.proto = 255,
			.sport_hi = 65535,
			.dport_hi = 65535},
		.n_reqs = 1,
		.reqs = {{.proto = DPS_PROTO_ESP,
			  .mode = mode,
			  .level = DPS_LEVEL_REQUIRE,
			  .reqid = reqid}},
	};

	if (tun_src != NULL) {
		p.reqs[0].tun_src = ip(tun_src);
		p.reqs[0].tun_dst = ip(tun_dst);
	}
	return p;
}

/* The id of the SA @p binds to among @n at @sas, 0 for none. */
static uint32_t bound(const struct dps_policy *p, const struct dps_store_sa *sas, unsigned int n)
{
	struct dps_by_reqid x;
	const struct dps_store_sa *s;

	assert_int_equal(dps_by_reqid_build(&x, sas, n), 0);
	s = dps_policy_out_sa(p, &x);
	dps_by_reqid_free(&x);
	return s ? s->id : 0;
}

static void test_binding_by_reqid_ignores_endpoints(void **state)
{
	/* SA 1 joins the policy's tunnel endpoints but has another reqid; SA 2 has
	 * the reqid and other endpoints: the reqid decides. */
	const struct dps_store_sa sas[] = {
		sa(1, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 9),
		sa(2, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "198.51.100.7", 5),
		sa(3, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 0),
	};
	struct dps_policy p =
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 5, "192.0.2.1", "192.0.2.2");

	(void)state;
	assert_int_equal(bound(&p, sas, 3), 2);
	p.reqs[0].reqid = 7; /* no SA has it: unbound, not the endpoints' SA */
	assert_int_equal(bound(&p, sas, 3), 0);
}

static void test_binding_without_reqid_by_tunnel_endpoints(void **state)
{
	const struct dps_store_sa sas[] = {
		sa(1, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.3", 0), /* other peer */
		sa(2, DPS_DIR_IN, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 0),  /* inbound */
		sa(3, DPS_DIR_OUT, DPS_MODE_TRANSPORT, "192.0.2.1", "192.0.2.2", 0), /* mode */
		sa(4, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.9", "192.0.2.2", 0),    /* source */
		sa(5, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 42),
	};
	const struct dps_policy p =
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 0, "192.0.2.1", "192.0.2.2");

	(void)state;
	/* A request without reqid takes an SA with one too (Linux: reqid 0 is "any"). */
	assert_int_equal(bound(&p, sas, 5), 5);
	assert_int_equal(bound(&p, sas, 4), 0);
}

static void test_binding_transport_without_reqid_by_selector_host(void **state)
{
	const struct dps_store_sa sas[] = {
		sa(1, DPS_DIR_OUT, DPS_MODE_TRANSPORT, "10.1.0.1", "10.1.0.7", 0),
		sa(2, DPS_DIR_OUT, DPS_MODE_TRANSPORT, "10.1.0.1", "10.1.0.8", 0),
	};
	const struct dps_policy host = out_policy("10.1.0.8/32", DPS_MODE_TRANSPORT, 0, NULL, NULL);
	const struct dps_policy subnet =
		out_policy("10.1.0.0/24", DPS_MODE_TRANSPORT, 0, NULL, NULL);

	(void)state;
	assert_int_equal(bound(&host, sas, 2), 2);
	/* A selector of many hosts names no peer: no SA can be chosen for it. */
	assert_int_equal(bound(&subnet, sas, 2), 0);
}

static void test_binding_newest_sa_wins_during_a_rekey(void **state)
{
	/* The rekeyed SA (id 8) is installed while the old one (id 3) lives on:
	 * the policy moves to the new one whatever the order of the table. */
	const struct dps_store_sa by_reqid[] = {
		sa(8, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 5),
		sa(3, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 5),
		sa(9, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 6),
	};
	const struct dps_store_sa by_ends[] = {
		sa(3, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 0),
		sa(8, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 0),
		sa(9, DPS_DIR_IN, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 0),
	};
	const struct dps_policy with_reqid =
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 5, "192.0.2.1", "192.0.2.2");
	const struct dps_policy without =
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 0, "192.0.2.1", "192.0.2.2");

	(void)state;
	assert_int_equal(bound(&with_reqid, by_reqid, 3), 8);
	assert_int_equal(bound(&with_reqid, by_reqid + 1, 2), 3); /* the old one alone */
	assert_int_equal(bound(&without, by_ends, 3), 8);
}

static void test_binding_unbound_without_an_esp_sa(void **state)
{
	const struct dps_store_sa sas[] = {
		sa(1, DPS_DIR_IN, DPS_MODE_TUNNEL, "192.0.2.2", "192.0.2.1", 5),
	};
	struct dps_policy p =
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 5, "192.0.2.1", "192.0.2.2");
	struct dps_store_sa ah = sa(2, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 5);

	(void)state;
	assert_int_equal(bound(&p, NULL, 0), 0);
	assert_int_equal(bound(&p, sas, 1), 0);
	/* An AH request binds an AH SA, never an ESP one, and an ESP request no
	 * AH SA. */
	ah.cfg.proto = DPS_PROTO_AH;
	assert_int_equal(bound(&p, &ah, 1), 0);
	p.reqs[0].proto = DPS_PROTO_AH;
	assert_int_equal(bound(&p, &ah, 1), 2);
	ah.cfg.proto = DPS_PROTO_ESP;
	assert_int_equal(bound(&p, &ah, 1), 0);
}

static void test_inner_family_from_the_policy_that_uses_the_sa(void **state)
{
	struct dps_store_sa s = sa(1, DPS_DIR_OUT, DPS_MODE_TUNNEL, "192.0.2.1", "192.0.2.2", 5);
	struct dps_policy pols[2] = {
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 9, "192.0.2.1", "192.0.2.2"),
		out_policy("10.9.0.0/16", DPS_MODE_TUNNEL, 5, "192.0.2.1", "192.0.2.2"),
	};

	(void)state;
	/* IPv6 traffic in an IPv4 tunnel: the policy of reqid 5 says so. */
	pols[1].sel.src = net("2001:db8:1::/64");
	pols[1].sel.dst = net("2001:db8:9::/64");
	assert_int_equal(dps_sa_inner_family(&s.cfg, pols, 2, sizeof(pols[0])), AF_INET6);
	/* No policy uses it (yet: a key daemon adds SAs first): the outer family. */
	assert_int_equal(dps_sa_inner_family(&s.cfg, pols, 1, sizeof(pols[0])), AF_INET);
	/* An inbound SA is not told by outbound policies. */
	s.cfg.dir = DPS_DIR_IN;
	assert_int_equal(dps_sa_inner_family(&s.cfg, pols, 2, sizeof(pols[0])), AF_INET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binding_by_reqid_ignores_endpoints),
		cmocka_unit_test(test_binding_without_reqid_by_tunnel_endpoints),
		cmocka_unit_test(test_binding_transport_without_reqid_by_selector_host),
		cmocka_unit_test(test_binding_newest_sa_wins_during_a_rekey),
		cmocka_unit_test(test_binding_unbound_without_an_esp_sa),
		cmocka_unit_test(test_inner_family_from_the_policy_that_uses_the_sa),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
