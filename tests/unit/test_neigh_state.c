/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/neigh_state.h: the neighbour state machine of neigh.c, driven
 * here through whole lifetimes the way neigh.c drives it (the caller counts
 * each probe it sends and stamps its time, as probe() does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/neigh_state.h"

static const struct dps_neigh_params params = {
	.reachable_ms = 30000, .retrans_ms = 1000, .probes = 3, .queue_len = 4, .max_entries = 16};

/* An entry as neigh.c keeps it, and the probes it sent. */
struct entry {
	uint8_t state;
	bool used;
	unsigned int probes;
	uint64_t confirmed_ms, probe_ms;
	unsigned int bcast_sent, unicast_sent;
	bool removed;
};

/* neigh.c's dp_neigh_timer for one entry at @now. */
static enum dp_neigh_timer_action tick(struct entry *e, uint64_t now)
{
	enum dp_neigh_timer_action a = dp_neigh_timer_step(
		&e->state, &e->probes, e->used, e->confirmed_ms, e->probe_ms, now, &params);

	if (a == DP_NEIGH_PROBE_BCAST || a == DP_NEIGH_PROBE_UNICAST) {
		e->probes++;
		e->probe_ms = now;
		if (a == DP_NEIGH_PROBE_BCAST)
			e->bcast_sent++;
		else
			e->unicast_sent++;
	}
	e->removed |= a == DP_NEIGH_REMOVE;
	return a;
}

/* dp_neigh_resolve's new entry: incomplete, first broadcast probe sent at @now. */
static struct entry resolving(uint64_t now)
{
	struct entry e = {
		.state = DP_NEIGH_INCOMPLETE, .probes = 1, .probe_ms = now, .bcast_sent = 1};

	return e;
}

/* learn(): the reply confirmed the entry at @now. */
static void confirm(struct entry *e, uint64_t now)
{
	e->state = DP_NEIGH_REACHABLE;
	e->confirmed_ms = now;
	e->probes = 0;
	e->used = false;
}

static void test_neigh_incomplete_probes_every_retrans_ms_then_is_removed(void **state)
{
	struct entry e = resolving(5000);

	(void)state;
	assert_int_equal(tick(&e, 5999), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, 6000), DP_NEIGH_PROBE_BCAST);
	assert_int_equal(tick(&e, 6999), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, 7000), DP_NEIGH_PROBE_BCAST);
	assert_int_equal(e.state, DP_NEIGH_INCOMPLETE);
	/* three probes unanswered: the next retransmission time gives up */
	assert_int_equal(tick(&e, 7999), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, 8000), DP_NEIGH_REMOVE);
	assert_int_equal(e.bcast_sent, 3);
	assert_int_equal(e.unicast_sent, 0);
}

static void test_neigh_reply_to_an_incomplete_entry_confirms_it_whatever_the_mac(void **state)
{
	(void)state;
	/* an incomplete entry holds no MAC yet: "different" is not a move */
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_INCOMPLETE, true, false),
			 DP_NEIGH_LEARN_CONFIRM);
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_INCOMPLETE, false, false),
			 DP_NEIGH_LEARN_CONFIRM);
}

static void test_neigh_reachable_is_trusted_for_reachable_ms_then_unused_is_removed(void **state)
{
	struct entry e = resolving(0);

	(void)state;
	confirm(&e, 400);
	assert_int_equal(tick(&e, 400 + 29999), DP_NEIGH_KEEP);
	assert_int_equal(e.state, DP_NEIGH_REACHABLE);
	assert_int_equal(tick(&e, 400 + 30000), DP_NEIGH_REMOVE);
	assert_int_equal(e.bcast_sent + e.unicast_sent, 1);
}

static void test_neigh_reachable_and_used_is_probed_by_unicast_then_removed(void **state)
{
	struct entry e = resolving(0);

	(void)state;
	confirm(&e, 0);
	e.used = true; /* a worker looked it up */
	assert_int_equal(tick(&e, 30000), DP_NEIGH_PROBE_UNICAST);
	assert_int_equal(e.state, DP_NEIGH_PROBE);
	assert_int_equal(e.probes, 1);
	assert_int_equal(tick(&e, 30999), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, 31000), DP_NEIGH_PROBE_UNICAST);
	assert_int_equal(tick(&e, 32000), DP_NEIGH_PROBE_UNICAST);
	assert_int_equal(tick(&e, 33000), DP_NEIGH_REMOVE);
	assert_int_equal(e.unicast_sent, 3);
	assert_int_equal(e.bcast_sent, 1); /* the first resolution's */
}

static void test_neigh_reply_during_probe_confirms_and_restarts_the_clock(void **state)
{
	struct entry e = resolving(0);

	(void)state;
	confirm(&e, 0);
	e.used = true;
	assert_int_equal(tick(&e, 30000), DP_NEIGH_PROBE_UNICAST);
	assert_int_equal(dp_neigh_learn_step(true, e.state, true, true), DP_NEIGH_LEARN_CONFIRM);
	confirm(&e, 30200);
	/* no probe pending any more: trusted for another reachable_ms */
	assert_int_equal(tick(&e, 31200), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, 60199), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, 60200), DP_NEIGH_REMOVE); /* unused since */
}

static void test_neigh_mac_change_replaces_a_resolved_entry(void **state)
{
	(void)state;
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_REACHABLE, true, false),
			 DP_NEIGH_LEARN_REPLACE);
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_PROBE, true, false),
			 DP_NEIGH_LEARN_REPLACE);
	/* a gratuitous ARP (no create) moves a known neighbour too */
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_REACHABLE, false, false),
			 DP_NEIGH_LEARN_REPLACE);
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_REACHABLE, true, true),
			 DP_NEIGH_LEARN_CONFIRM);
}

static void test_neigh_unknown_neighbour_is_learned_only_when_allowed(void **state)
{
	(void)state;
	assert_int_equal(dp_neigh_learn_step(false, 0, true, false), DP_NEIGH_LEARN_CONFIRM);
	/* gratuitous ARP from a stranger: not worth an entry */
	assert_int_equal(dp_neigh_learn_step(false, 0, false, false), DP_NEIGH_LEARN_IGNORE);
}

static void test_neigh_static_entry_never_ages_nor_learns(void **state)
{
	struct entry e = {.state = DP_NEIGH_STATIC};

	(void)state;
	assert_int_equal(tick(&e, 0), DP_NEIGH_KEEP);
	assert_int_equal(tick(&e, UINT64_C(1) << 40), DP_NEIGH_KEEP);
	e.used = true;
	assert_int_equal(tick(&e, UINT64_C(1) << 41), DP_NEIGH_KEEP);
	assert_int_equal(e.state, DP_NEIGH_STATIC);
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_STATIC, true, false),
			 DP_NEIGH_LEARN_IGNORE);
	assert_int_equal(dp_neigh_learn_step(true, DP_NEIGH_STATIC, true, true),
			 DP_NEIGH_LEARN_IGNORE);
}

static void test_neigh_holds_at_most_queue_len_packets(void **state)
{
	struct dps_neigh_params none = params;

	(void)state;
	for (unsigned int n = 0; n < params.queue_len; n++)
		assert_true(dp_neigh_may_hold(n, &params));
	assert_false(dp_neigh_may_hold(params.queue_len, &params));
	assert_false(dp_neigh_may_hold(params.queue_len + 1, &params));
	none.queue_len = 0;
	assert_false(dp_neigh_may_hold(0, &none));
}

static void test_neigh_single_probe_setting_gives_up_after_one_retrans(void **state)
{
	struct dps_neigh_params one = params;
	struct entry e = resolving(0);

	(void)state;
	one.probes = 1;
	assert_int_equal(dp_neigh_timer_step(&e.state, &e.probes, false, 0, 0, 999, &one),
			 DP_NEIGH_KEEP);
	assert_int_equal(dp_neigh_timer_step(&e.state, &e.probes, false, 0, 0, 1000, &one),
			 DP_NEIGH_REMOVE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_neigh_incomplete_probes_every_retrans_ms_then_is_removed),
		cmocka_unit_test(
			test_neigh_reply_to_an_incomplete_entry_confirms_it_whatever_the_mac),
		cmocka_unit_test(
			test_neigh_reachable_is_trusted_for_reachable_ms_then_unused_is_removed),
		cmocka_unit_test(test_neigh_reachable_and_used_is_probed_by_unicast_then_removed),
		cmocka_unit_test(test_neigh_reply_during_probe_confirms_and_restarts_the_clock),
		cmocka_unit_test(test_neigh_mac_change_replaces_a_resolved_entry),
		cmocka_unit_test(test_neigh_unknown_neighbour_is_learned_only_when_allowed),
		cmocka_unit_test(test_neigh_static_entry_never_ages_nor_learns),
		cmocka_unit_test(test_neigh_holds_at_most_queue_len_packets),
		cmocka_unit_test(test_neigh_single_probe_setting_gives_up_after_one_retrans),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
