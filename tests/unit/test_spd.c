/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/spd.c's two-level classifier: main rte_acl contexts compiled
 * from the policies of one moment, the policies added since (indexed by
 * destination prefix) in front of them, the deleted ones emptied from their slots. On random
 * policy sets (both families, all contexts, priority ties, deletions in both
 * levels) and random packets, its answer must be the one of a classifier
 * compiled from scratch from the live policies.
 *
 * rte_acl allocates with rte_malloc: the test starts an EAL without
 * hugepages, PCI or shared files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rte_eal.h>

#include "dataplane/dp.h"
#include "dataplane/spd.h"

int dp_logtype;

#define ROUNDS	60
#define PACKETS 200
#define MAX_POL 240

static uint32_t rnd_state = 12345;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) % n;
}

/* Addresses from a small space, so that selectors overlap and packets match. */
static void rand_addr(struct dps_addr *a, int v6)
{
	memset(a, 0, sizeof(*a));
	a->family = v6 ? AF_INET6 : AF_INET;
	if (v6) {
		a->v6.s6_addr[0] = 0x20;
		a->v6.s6_addr[1] = 0x01;
		a->v6.s6_addr[7] = (uint8_t)rnd(4);
		a->v6.s6_addr[15] = (uint8_t)(rnd(4) << 6 | rnd(4));
	} else {
		uint8_t *b = (uint8_t *)&a->v4.s_addr;

		b[0] = 10;
		b[2] = (uint8_t)rnd(4);
		b[3] = (uint8_t)(rnd(4) << 6 | rnd(4));
	}
}

static void rand_prefix(struct dps_prefix *p, int v6)
{
	static const uint8_t len4[] = {0, 8, 16, 24, 26, 30, 32};
	static const uint8_t len6[] = {0, 16, 56, 64, 120, 122, 126, 128};

	rand_addr(&p->addr, v6);
	p->len = v6 ? len6[rnd(sizeof(len6))] : len4[rnd(sizeof(len4))];
}

static void rand_policy(struct dps_policy *p, uint32_t id)
{
	static const uint8_t dirs[] = {DPS_DIR_OUT, DPS_DIR_IN, DPS_DIR_FWD};
	static const uint8_t protos[] = {255, 255, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};
	int v6 = rnd(2);

	memset(p, 0, sizeof(*p));
	p->id = id;
	p->dir = dirs[rnd(3)];
	p->priority = rnd(3); /* ties are common */
	p->action = DPS_ACTION_BYPASS;
	rand_prefix(&p->sel.src, v6);
	rand_prefix(&p->sel.dst, v6);
	p->sel.proto = protos[rnd(sizeof(protos))];
	p->sel.sport_lo = 0;
	p->sel.sport_hi = 65535;
	p->sel.dport_lo = 0;
	p->sel.dport_hi = 65535;
	if (p->sel.proto != 255 && rnd(2)) {
		p->sel.dport_lo = (uint16_t)rnd(3);
		p->sel.dport_hi = (uint16_t)(p->sel.dport_lo + rnd(3));
	}
}

struct case_state {
	struct dps_policy pol[MAX_POL];
	struct dp_policy obj[MAX_POL];
	bool live[MAX_POL];
	uint32_t slot[MAX_POL];
	uint32_t rix[MAX_POL]; /* entry in the recent index */
};

/* A classifier from scratch: every live policy in the main contexts. */
static struct dp_spd *scratch(struct case_state *c, unsigned int n, struct dp_policy ***table)
{
	struct dp_rule *rules = calloc(n + 1, sizeof(*rules));
	uint32_t *perm = calloc(n + 1, sizeof(*perm));
	uint32_t *which = calloc(n + 1, sizeof(*which));
	struct dp_spd *spd = calloc(1, sizeof(*spd));
	unsigned int k = 0;

	assert_non_null(rules);
	assert_non_null(perm);
	assert_non_null(which);
	assert_non_null(spd);
	for (unsigned int i = 0; i < n; i++) {
		if (!c->live[i])
			continue;
		dp_rule_make(&rules[k], &c->pol[i], i + 1, k);
		which[k++] = i;
	}
	spd->set = dp_acl_set_build(rules, k, perm);
	assert_non_null(spd->set);
	*table = calloc(k + 1, sizeof(**table));
	assert_non_null(*table);
	for (unsigned int j = 0; j < k; j++)
		(*table)[perm[j]] = &c->obj[which[j]];
	memcpy(spd->acl, spd->set->acl, sizeof(spd->acl));
	memcpy(spd->fo, spd->set->fo, sizeof(spd->fo));
	spd->slot = *table;
	free(perm);
	free(which);
	return spd;
}

static void rand_key(uint8_t *key, int v6)
{
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47};
	struct dps_addr s, d;
	uint8_t proto = protos[rnd(4)];
	uint16_t sp = rte_cpu_to_be_16((uint16_t)rnd(6)), dpt = rte_cpu_to_be_16((uint16_t)rnd(6));

	rand_addr(&s, v6);
	rand_addr(&d, v6);
	if (v6) {
		struct dp_acl6_key *k = (void *)key;

		memset(k, 0, sizeof(*k));
		k->proto = proto;
		memcpy(k->src, &s.v6, 16);
		memcpy(k->dst, &d.v6, 16);
		k->sport = sp;
		k->dport = dpt;
	} else {
		struct dp_acl4_key *k = (void *)key;

		memset(k, 0, sizeof(*k));
		k->proto = proto;
		k->src = s.v4.s_addr;
		k->dst = d.v4.s_addr;
		k->sport = sp;
		k->dport = dpt;
	}
}

static unsigned int compared, matched;

/* The answer of a linear scan of the live policies, rule by rule as RFC
 * 4301's ordered SPD reads (fwd policies before in ones in the fwd context,
 * then priority, then age): independent of rte_acl. */
static const struct dp_policy *linear(const struct case_state *c, unsigned int n, int v6,
				      enum dp_spd_ctx ctx, const uint8_t *key)
{
	struct dp_rule best = {0}, r;
	int found = -1;

	for (unsigned int i = 0; i < n; i++) {
		if (!c->live[i])
			continue;
		dp_rule_make(&r, &c->pol[i], i + 1, 0);
		if (r.v6 != v6 || !dp_rule_in_ctx(&r, ctx) || !dp_rule_match(&r, key))
			continue;
		if (found >= 0) {
			bool fwd_first = ctx == DP_SPD_FWD && r.dir != best.dir;

			if (fwd_first
				    ? r.dir == DPS_DIR_IN
				    : (r.prio != best.prio ? r.prio > best.prio : r.seq > best.seq))
				continue;
		}
		best = r;
		found = (int)i;
	}
	return found < 0 ? NULL : &c->obj[found];
}

/* One case: @n_main policies compiled, then @n_recent added, then deletions. */
static void run_case(unsigned int n_main, unsigned int n_recent, unsigned int n_del)
{
	static struct case_state c;
	unsigned int n = n_main + n_recent;
	struct dp_rule *rules = calloc(n_main + 1, sizeof(*rules));
	uint32_t *perm = calloc(n_main + 1, sizeof(*perm));
	struct dp_policy **table = calloc(n + 1, sizeof(*table)), **ref_table;
	struct dp_spd two = {0}, *ref;

	assert_non_null(rules);
	assert_non_null(perm);
	assert_non_null(table);
	for (unsigned int i = 0; i < n; i++) {
		rand_policy(&c.pol[i], i);
		memset(&c.obj[i], 0, sizeof(c.obj[i]));
		c.obj[i].id = i;
		c.live[i] = true;
	}
	for (unsigned int i = 0; i < n_main; i++)
		dp_rule_make(&rules[i], &c.pol[i], i + 1, i);
	two.set = dp_acl_set_build(rules, n_main, perm);
	assert_non_null(two.set);
	memcpy(two.acl, two.set->acl, sizeof(two.acl));
	memcpy(two.fo, two.set->fo, sizeof(two.fo));
	for (unsigned int i = 0; i < n_main; i++) {
		c.slot[i] = perm[i];
		table[perm[i]] = &c.obj[i];
	}
	for (int v6 = 0; v6 < 2; v6++) /* a small index: it grows on the way */
		two.recent[v6] = n_recent ? dp_recent_new(16) : NULL;
	for (unsigned int i = n_main; i < n; i++) {
		int v6 = c.pol[i].sel.src.addr.family == AF_INET6;
		struct dp_rule rule;
		int ix;

		c.slot[i] = i;
		table[i] = &c.obj[i];
		dp_rule_make(&rule, &c.pol[i], i + 1, i);
		ix = dp_recent_add(two.recent[v6], &rule, &c.obj[i]);
		if (ix < 0) {
			struct dp_recent *g = dp_recent_grow(two.recent[v6]);

			assert_non_null(g);
			dp_recent_free(two.recent[v6]);
			two.recent[v6] = g;
			ix = dp_recent_add(g, &rule, &c.obj[i]);
		}
		assert_true(ix >= 0);
		c.rix[i] = (uint32_t)ix;
	}
	for (unsigned int d = 0; d < n_del; d++) { /* in either level */
		unsigned int i = rnd(n);

		c.live[i] = false;
		table[c.slot[i]] = NULL;
		if (i >= n_main) /* a recent one: its entry too */
			dp_recent_set(two.recent[c.pol[i].sel.src.addr.family == AF_INET6],
				      c.rix[i], NULL);
	}
	two.slot = table;
	ref = scratch(&c, n, &ref_table);
	for (int v6 = 0; v6 < 2; v6++) {
		for (int ctx = 0; ctx < DP_SPD_NCTX; ctx++) {
			uint8_t keys[PACKETS][sizeof(struct dp_acl6_key)];
			const uint8_t *kp[PACKETS];
			const struct dp_policy *a[PACKETS], *b[PACKETS];

			for (unsigned int p = 0; p < PACKETS; p++) {
				rand_key(keys[p], v6);
				kp[p] = keys[p];
			}
			const struct dp_policy *f[PACKETS], *o[PACKETS];

			for (unsigned int p = 0; p < PACKETS; p += DP_MAX_BURST) {
				uint16_t m =
					PACKETS - p < DP_MAX_BURST ? PACKETS - p : DP_MAX_BURST;

				dp_spd_lookup(&two, v6, ctx, &kp[p], &a[p], m);
				dp_spd_lookup(ref, v6, ctx, &kp[p], &b[p], m);
				/* the fwd and out contexts in one walk */
				dp_spd_lookup_fwd_out(&two, v6, &kp[p], &f[p], &o[p], m);
			}
			for (unsigned int p = 0; p < PACKETS; p++) {
				const struct dp_policy *l = linear(&c, n, v6, ctx, kp[p]);
				const struct dp_policy *fo = ctx == DP_SPD_FWD	 ? f[p]
							     : ctx == DP_SPD_OUT ? o[p]
										 : l;

				if (a[p] != b[p] || a[p] != l || fo != l)
					fail_msg("family %d context %d packet %u: two levels say "
						 "%d, from scratch %d, a linear scan %d, "
						 "fwd and out at once %d",
						 v6, ctx, p, a[p] ? (int)a[p]->id : -1,
						 b[p] ? (int)b[p]->id : -1, l ? (int)l->id : -1,
						 fo ? (int)fo->id : -1);
				compared++;
				matched += b[p] != NULL;
			}
		}
	}
	dp_acl_set_put(two.set);
	dp_recent_free(two.recent[0]);
	dp_recent_free(two.recent[1]);
	free(table);
	dp_spd_free(ref);
	free(ref_table);
	free(perm);
}

static void test_two_levels_match_a_classifier_built_from_scratch(void **state)
{
	(void)state;
	for (unsigned int r = 0; r < ROUNDS; r++) {
		unsigned int n_main = rnd(160), n_recent = rnd(60), n_del = rnd(40);

		run_case(n_main, n_recent, (n_main + n_recent) ? n_del : 0);
	}
	/* not vacuous: most packets match some policy, some none */
	assert_true(compared >= ROUNDS * 12 * PACKETS / 2);
	assert_true(matched > compared / 4);
	assert_true(matched < compared);
}

static void test_only_recent_and_only_main(void **state)
{
	(void)state;
	run_case(0, 50, 0);   /* no main context at all */
	run_case(120, 0, 0);  /* nothing recent */
	run_case(100, 0, 60); /* many deleted in main: the exact scan */
}

int main(void)
{
	char *args[] = {"test_spd", "--no-huge", "--no-pci",	      "--no-shconf",	"-m", "128",
			"-l",	    "0",	 "--log-level=error", "--no-telemetry", NULL};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_levels_match_a_classifier_built_from_scratch),
		cmocka_unit_test(test_only_recent_and_only_main),
	};

	if (rte_eal_init(RTE_DIM(args) - 1, args) < 0) {
		fprintf(stderr, "test_spd: cannot start the EAL\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
