/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/control/pos_index.c against a model: an array of keys that grows by
 * appends and shrinks by moving its last entry into the hole, as the store's
 * tables do. After every operation each key present is found at its
 * position and keys absent are not found. A poor hash (few distinct values)
 * makes long probe runs that wrap around the table's end, where backward-shift
 * deletion is easiest to get wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "control/pos_index.h"

#define MAX 6000

static uint32_t keys[MAX];
static unsigned int n;
static uint32_t hash_mod = 7; /* distinct hash values */
static uint32_t rnd_state = 99;

static uint32_t rnd(uint32_t m)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) % m;
}

static uint32_t key_hash(uint32_t k)
{
	/* the low bits pick the slot: a hash with hash_mod values, spread over the
	 * table so that runs start near its end too */
	return (k % hash_mod) * 0x9e3779b1u;
}

static uint32_t pos_hash(unsigned int pos)
{
	return key_hash(keys[pos]);
}

static bool match(unsigned int pos, const void *key)
{
	return keys[pos] == *(const uint32_t *)key;
}

static int find(struct dps_pos_index *ix, uint32_t k)
{
	return dps_pos_index_find(ix, n, key_hash(k), match, &k);
}

static bool present(uint32_t k, unsigned int *pos)
{
	for (unsigned int i = 0; i < n; i++)
		if (keys[i] == k) {
			*pos = i;
			return true;
		}
	return false;
}

static void append(struct dps_pos_index *ix)
{
	uint32_t k;
	unsigned int dummy;

	do
		k = rnd(4 * MAX);
	while (present(k, &dummy));
	keys[n++] = k;
	dps_pos_index_appended(ix, n);
}

/* The store's deletion: out of the index, the last entry into the hole. */
static void delete_at(struct dps_pos_index *ix, unsigned int i)
{
	unsigned int last = n - 1;

	dps_pos_index_remove(ix, i);
	if (i != last)
		dps_pos_index_moved(ix, last, i);
	keys[i] = keys[last];
	n--;
}

static void check_all(struct dps_pos_index *ix)
{
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(find(ix, keys[i]), (int)i);
	for (unsigned int t = 0; t < 20; t++) {
		uint32_t k = rnd(4 * MAX);
		unsigned int pos;

		assert_int_equal(find(ix, k), present(k, &pos) ? (int)pos : -1);
	}
}

static void run(uint32_t modulus, unsigned int target, unsigned int ops)
{
	struct dps_pos_index ix = DPS_POS_INDEX_INIT(pos_hash);

	hash_mod = modulus;
	n = 0;
	for (unsigned int op = 0; op < ops; op++) {
		/* drift around target: grow, shrink, and both near a table size */
		if (n == 0 || (n < MAX && rnd(2 * target) >= n))
			append(&ix);
		else
			delete_at(&ix, rnd(n));
		if (op % 7 == 0 || n < 40)
			check_all(&ix);
	}
	check_all(&ix);
	/* everything out, one by one, from the front, then the index is empty */
	while (n) {
		uint32_t k = keys[0];

		delete_at(&ix, 0);
		assert_int_equal(find(&ix, k), -1);
	}
	for (uint32_t i = 0; i < ix.cap; i++)
		assert_int_equal(ix.slot[i], 0);
	dps_pos_index_free(&ix);
}

static void test_clustered_small(void **state)
{
	(void)state;
	run(3, 20, 20000); /* one or three long runs in a 64-slot table */
}

static void test_clustered_medium(void **state)
{
	(void)state;
	run(61, 300, 20000);
}

static void test_spread_large(void **state)
{
	(void)state;
	run(1u << 30, 2500, 15000); /* growth past several table sizes */
}

/* Marked stale (the caller changed the array behind its back), the index is
 * rebuilt and removes/moves before the rebuild are no-ops. */
static void test_stale_rebuild(void **state)
{
	struct dps_pos_index ix = DPS_POS_INDEX_INIT(pos_hash);

	(void)state;
	hash_mod = 13;
	n = 0;
	for (unsigned int i = 0; i < 100; i++)
		append(&ix);
	check_all(&ix);
	ix.stale = true;
	keys[5] = keys[--n]; /* behind its back */
	delete_at(&ix, 7);
	check_all(&ix);
	dps_pos_index_free(&ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clustered_small),
		cmocka_unit_test(test_clustered_medium),
		cmocka_unit_test(test_spread_large),
		cmocka_unit_test(test_stale_rebuild),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
