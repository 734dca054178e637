/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/replay.h, the inbound anti-replay window kept beside
 * lib/ipsec's: against a model that remembers every accepted sequence number
 * (accepted iff right of the edge, or not 0, not left of the window
 * (seq + win >= top) and never accepted), and RFC 4303 A2.1's ESN cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/replay.h"

#define SPACE 20000 /* sequence numbers of the model runs */

struct model {
	uint64_t top;
	uint32_t win;
	uint8_t seen[SPACE];
};

static bool model_accept(struct model *m, uint64_t seq)
{
	if (seq <= m->top && (seq == 0 || seq + m->win < m->top))
		return false;
	if (m->seen[seq])
		return false;
	m->seen[seq] = 1;
	if (seq > m->top)
		m->top = seq;
	return true;
}

static struct dp_replay *new_window(uint32_t win, uint64_t start)
{
	struct dp_replay *r = malloc(dp_replay_size(win));

	assert_non_null(r);
	dp_replay_init(r, win, start);
	return r;
}

/* The defect replay.h works around: every position of a 64-bit word. */
static void test_replay_rejects_every_bit_position(void **state)
{
	struct dp_replay *r = new_window(64, 0);

	(void)state;
	for (uint64_t s = 1; s <= 200; s++) {
		assert_true(dp_replay_accept(r, s));
		assert_false(dp_replay_accept(r, s));
		if (s > 1)
			assert_false(dp_replay_accept(r, s - 1));
	}
	free(r);
}

static void test_replay_zero_and_left_of_the_window_are_refused(void **state)
{
	struct dp_replay *r = new_window(32, 0);

	(void)state;
	assert_false(dp_replay_accept(r, 0));
	assert_true(dp_replay_accept(r, 40));
	assert_false(dp_replay_accept(r, 7));	/* 7 + 32 < 40 */
	assert_true(dp_replay_accept(r, 8));	/* 8 + 32 == 40: the window's left end */
	assert_true(dp_replay_accept(r, 1000)); /* far right: the whole window moves */
	assert_false(dp_replay_accept(r, 40));
	assert_true(dp_replay_accept(r, 999));
	free(r);
}

static void test_replay_restored_edge_starts_the_window(void **state)
{
	struct dp_replay *r = new_window(64, 5000);

	(void)state;
	assert_false(dp_replay_accept(r, 4000));
	assert_true(dp_replay_accept(r, 4990)); /* never seen, inside the window */
	assert_false(dp_replay_accept(r, 4990));
	free(r);
}

static void model_run(uint32_t win, unsigned int seed)
{
	static struct model m;
	struct dp_replay *r = new_window(win, 0);
	uint64_t base = 1;

	memset(&m, 0, sizeof(m));
	m.win = win;
	srand(seed);
	for (int i = 0; i < 200000; i++) {
		/* mostly around the edge, sometimes far behind or ahead */
		int64_t d = (rand() % (3 * (int)win + 40)) - 2 * (int)win;
		uint64_t seq;

		if (rand() % 50 == 0)
			d += rand() % (8 * (int)win);
		seq = (int64_t)base + d < 0 ? 0 : (uint64_t)((int64_t)base + d);
		if (seq >= SPACE)
			break;
		assert_int_equal(dp_replay_accept(r, seq), model_accept(&m, seq));
		assert_int_equal(r->top, m.top);
		if (rand() % 3 == 0)
			base++;
	}
	free(r);
}

static void test_replay_agrees_with_the_model(void **state)
{
	static const uint32_t wins[] = {1, 32, 63, 64, 65, 100, 128, 1024};

	(void)state;
	for (unsigned int i = 0; i < sizeof(wins) / sizeof(wins[0]); i++)
		model_run(wins[i], 7 + i);
}

/* RFC 4303 A2.1: the high half follows the window's position. */
static void test_replay_esn_high_half(void **state)
{
	struct dp_replay *r = new_window(64, 0);

	(void)state;
	/* case A, window within one subspace: T = 2^32 + 1000, W = 64 */
	r->top = (UINT64_C(1) << 32) + 1000;
	assert_int_equal(dp_replay_esn(r, 1000), (UINT64_C(1) << 32) + 1000);
	assert_int_equal(dp_replay_esn(r, 937), (UINT64_C(1) << 32) + 937); /* bottom */
	assert_int_equal(dp_replay_esn(r, 936), (UINT64_C(2) << 32) + 936); /* wrapped ahead */
	assert_int_equal(dp_replay_esn(r, 5000), (UINT64_C(1) << 32) + 5000);
	/* case B, window spans two subspaces: T = 2^32 + 10 */
	r->top = (UINT64_C(1) << 32) + 10;
	assert_int_equal(dp_replay_esn(r, 5), (UINT64_C(1) << 32) + 5);
	assert_int_equal(dp_replay_esn(r, 0xfffffff0u), 0xfffffff0u); /* previous subspace */
	assert_int_equal(dp_replay_esn(r, 100), (UINT64_C(1) << 32) + 100);
	/* case B at the very start: no subspace before the first */
	r->top = 10;
	assert_int_equal(dp_replay_esn(r, 0xfffffff0u), 0xfffffff0u);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_rejects_every_bit_position),
		cmocka_unit_test(test_replay_zero_and_left_of_the_window_are_refused),
		cmocka_unit_test(test_replay_restored_edge_starts_the_window),
		cmocka_unit_test(test_replay_agrees_with_the_model),
		cmocka_unit_test(test_replay_esn_high_half),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
