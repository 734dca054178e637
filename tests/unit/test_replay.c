/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/dataplane/replay.h: the inbound anti-replay window, as RFC 4303 §3.4.3
 * (a window of W packets right-bounded by the highest number authenticated,
 * duplicates and numbers left of it rejected) and Appendix A2.1 (the high
 * half of an extended sequence number) define it, with RFC 6479's ring of
 * words inside.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/replay.h"

static struct dp_replay *window(uint32_t win, uint32_t esn_win, uint64_t top)
{
	struct dp_replay *r = malloc(dp_replay_size(win));

	assert_non_null(r);
	dp_replay_init(r, win, esn_win, top);
	return r;
}

/* What a packet carrying @low gets, as esp_in.c asks. */
static bool accept(struct dp_replay *r, uint32_t low)
{
	return dp_replay_update(r, dp_replay_seq(r, low));
}

static void test_replay_accepts_each_seq_once(void **state)
{
	struct dp_replay *r = window(64, 0, 0);

	(void)state;
	assert_false(accept(r, 0)); /* never sent (RFC 4303 §3.3.3: the first is 1) */
	assert_true(accept(r, 1));
	assert_false(accept(r, 1));
	assert_true(accept(r, 2));
	assert_false(accept(r, 1));
	assert_false(accept(r, 2));
	assert_int_equal(r->top, 2);
	free(r);
}

/* DPDK 22.11's lib/ipsec drops the bit of numbers 32..63 modulo 64: every one
 * of them must be remembered here. */
static void test_replay_rejects_duplicate_seq_in_every_bit_position(void **state)
{
	static const uint32_t wins[] = {32, 64, 100, 1024, 4096, 65536};

	(void)state;
	for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
		uint32_t win = wins[w], last = 3 * win;
		struct dp_replay *r = window(win, 0, 0);

		for (uint32_t s = 1; s <= last; s++)
			assert_true(accept(r, s));
		for (uint32_t s = last - win + 1; s <= last; s++)
			assert_false(accept(r, s));
		assert_int_equal(r->top, last);
		free(r);
	}
}

static void test_replay_accepts_reordered_inside_window_once(void **state)
{
	struct dp_replay *r = window(64, 0, 0);

	(void)state;
	assert_true(accept(r, 100));
	for (uint32_t s = 99; s >= 37; s--) { /* 100-63 .. 99: inside */
		assert_true(accept(r, s));
		assert_false(accept(r, s));
	}
	assert_int_equal(r->top, 100);
	free(r);
}

/* Left edge: with top T and W packets, T-W+1 is the oldest accepted. */
static void test_replay_rejects_too_old(void **state)
{
	static const uint32_t wins[] = {32, 64, 100, 1000};

	(void)state;
	for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
		uint32_t win = wins[w], top = 5000;
		struct dp_replay *r = window(win, 0, 0);

		assert_true(accept(r, top));
		assert_false(accept(r, top - win));
		assert_false(accept(r, 1));
		assert_true(accept(r, top - win + 1));
		free(r);
	}
}

/* A jump of more than the ring forgets everything; after one of less, what
 * is still inside the window stays recorded, and the ring's words the window
 * entered hold nothing of the numbers that had the same bits before. */
static void test_replay_big_jump_clears_window(void **state)
{
	struct dp_replay *r = window(64, 0, 0);
	uint64_t ring = (uint64_t)(r->mask + 1) * 64, top = 1000000;

	(void)state;
	for (uint32_t s = 1; s <= 64; s++)
		assert_true(accept(r, s));
	assert_true(accept(r, top));
	assert_false(accept(r, 64));
	for (uint64_t s = top - 63; s < top; s++)
		assert_true(accept(r, (uint32_t)s));
	/* 40 to the right: top-23..top still recorded, the new ones free */
	assert_true(accept(r, top + 40));
	for (uint64_t s = top + 40 - 63; s < top + 40; s++)
		assert_int_equal(accept(r, (uint32_t)s), s > top);
	/* one ring to the right: every bit was set by the numbers one ring before */
	top += 40 + ring;
	assert_true(accept(r, (uint32_t)top));
	for (uint64_t s = top - 63; s < top; s++)
		assert_true(accept(r, (uint32_t)s));
	free(r);
}

static void test_replay_check_does_not_record(void **state)
{
	struct dp_replay *r = window(64, 0, 0);

	(void)state;
	assert_true(dp_replay_check(r, 10));
	assert_true(dp_replay_check(r, 10));
	assert_int_equal(r->top, 0);
	assert_true(accept(r, 10));
	assert_false(dp_replay_check(r, 10));
	assert_true(dp_replay_check(r, 9));
	assert_false(dp_replay_check(r, 0));
	free(r);
}

/* A restored SA (seq_start): numbers up to the given top are inside or left of
 * the window, none recorded yet. */
static void test_replay_starts_at_given_top(void **state)
{
	struct dp_replay *r = window(64, 0, 1000);

	(void)state;
	assert_false(accept(r, 936));
	assert_true(accept(r, 937));
	assert_true(accept(r, 1000));
	assert_false(accept(r, 1000));
	assert_true(accept(r, 1001));
	free(r);
}

/* Without ESN the 32 bits are the number: after 2^32 - 10 a small one is old. */
static void test_replay_without_esn_does_not_wrap(void **state)
{
	struct dp_replay *r = window(64, 0, 0);

	(void)state;
	assert_true(accept(r, UINT32_MAX - 9));
	assert_false(accept(r, 5));
	assert_true(accept(r, UINT32_MAX));
	assert_int_equal(r->top, UINT32_MAX);
	free(r);
}

/* RFC 4303 A2.1, case A (window inside one subspace): low numbers below the
 * window's bottom belong to the next subspace. */
static void test_replay_esn_case_a_moves_to_next_subspace(void **state)
{
	struct dp_replay *r = window(64, 64, 0xfffffff0ull);

	(void)state;
	assert_int_equal(dp_replay_seq(r, 0xfffffff5u), 0xfffffff5ull);
	assert_int_equal(dp_replay_seq(r, 0xffffffb1u), 0xffffffb1ull); /* bottom: Tl-W+1 */
	assert_int_equal(dp_replay_seq(r, 0xffffffb0u), 0x1ffffffb0ull);
	assert_int_equal(dp_replay_seq(r, 3), 0x100000003ull);
	assert_true(accept(r, 3));
	assert_int_equal(r->top, 0x100000003ull);
	assert_false(accept(r, 3));
	free(r);
}

/* Case B (window across the subspace boundary): numbers at or above the
 * bottom modulo 2^32 are from the previous subspace; below it, the current. */
static void test_replay_esn_case_b_reaches_previous_subspace(void **state)
{
	struct dp_replay *r = window(64, 64, 0x100000005ull);

	(void)state;
	/* bottom = 5 - 64 + 1 = 0xffffffc6 */
	assert_int_equal(dp_replay_seq(r, 0xffffffecu), 0xffffffecull);
	assert_int_equal(dp_replay_seq(r, 0xffffffc6u), 0xffffffc6ull);
	assert_int_equal(dp_replay_seq(r, 0xffffffc5u), 0x1ffffffc5ull); /* far right */
	assert_int_equal(dp_replay_seq(r, 4), 0x100000004ull);
	assert_true(accept(r, 0xffffffecu));
	assert_false(accept(r, 0xffffffecu));
	assert_true(accept(r, 4));
	assert_false(accept(r, 4));
	assert_true(accept(r, 6));
	assert_int_equal(r->top, 0x100000006ull);
	free(r);
}

/* Case B in the first subspace: nothing before it, the number stays there. */
static void test_replay_esn_first_subspace(void **state)
{
	struct dp_replay *r = window(64, 64, 10);

	(void)state;
	assert_int_equal(dp_replay_seq(r, 0xfffffff0u), 0xfffffff0ull);
	assert_int_equal(dp_replay_seq(r, 9), 9);
	free(r);
}

/* Every bit position near a subspace boundary, ESN, in order then replayed. */
static void test_replay_esn_duplicates_across_boundary(void **state)
{
	struct dp_replay *r = window(128, 128, 0xffffff00ull);

	(void)state;
	for (uint64_t s = 0xffffff01ull; s <= 0x100000100ull; s++)
		assert_true(accept(r, (uint32_t)s));
	for (uint64_t s = 0x100000100ull - 127; s <= 0x100000100ull; s++)
		assert_false(accept(r, (uint32_t)s));
	/* left of the window is the next subspace (A2.1: its ICV would fail) */
	assert_int_equal(dp_replay_seq(r, 0x80u), 0x200000080ull);
	assert_int_equal(r->top, 0x100000100ull);
	free(r);
}

/* Against a plain model: every number accepted marked in a flat bitmap, top
 * the highest, over random traffic around the window's edges and jumps. */
static void test_replay_matches_model(void **state)
{
	static const uint32_t wins[] = {32, 64, 65, 127, 128, 300, 1024};
	enum { N = 5000 };

	(void)state;
	srand(4303);
	for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
		uint32_t win = wins[w];
		uint64_t top = 0, bound = (uint64_t)N * 11 * win + 1;
		uint8_t *seen = calloc(bound / 8 + 1, 1);
		struct dp_replay *r = window(win, 0, 0);

		assert_non_null(seen);
		for (int i = 0; i < N; i++) {
			int64_t d = (int64_t)(rand() % (3 * win)) - 2 * (int64_t)win;
			uint64_t s;
			bool dup, want;

			if (rand() % 50 == 0)
				d += rand() % (8 * win); /* a jump */
			s = (int64_t)top + d < 0 ? 0 : (uint64_t)((int64_t)top + d);
			assert_true(s < bound);
			dup = seen[s / 8] >> (s % 8) & 1;
			want = s > top || (s != 0 && top - s < win && !dup);
			assert_int_equal(dp_replay_check(r, s), want);
			assert_int_equal(dp_replay_update(r, s), want);
			if (want) {
				seen[s / 8] |= 1u << (s % 8);
				top = s > top ? s : top;
			}
			assert_int_equal(r->top, top);
		}
		free(r);
		free(seen);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_accepts_each_seq_once),
		cmocka_unit_test(test_replay_rejects_duplicate_seq_in_every_bit_position),
		cmocka_unit_test(test_replay_accepts_reordered_inside_window_once),
		cmocka_unit_test(test_replay_rejects_too_old),
		cmocka_unit_test(test_replay_big_jump_clears_window),
		cmocka_unit_test(test_replay_check_does_not_record),
		cmocka_unit_test(test_replay_starts_at_given_top),
		cmocka_unit_test(test_replay_without_esn_does_not_wrap),
		cmocka_unit_test(test_replay_esn_case_a_moves_to_next_subspace),
		cmocka_unit_test(test_replay_esn_case_b_reaches_previous_subspace),
		cmocka_unit_test(test_replay_esn_first_subspace),
		cmocka_unit_test(test_replay_esn_duplicates_across_boundary),
		cmocka_unit_test(test_replay_matches_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
