// SPDX-License-Identifier: BSD-3-Clause
/*
 * Unit tests for the larval SA table (src/pfkey_emul/larval.c): its hash
 * index, with deletions that move entries, against a plain array searched
 * one by one, over thousands of random additions, removals and lookups.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pfkey_emul/larval.h"

#define KEYS 4000 /* small key space: many collisions, re-adds after removal */

struct ref {
	uint32_t spi;
	uint8_t proto;
	struct dps_addr dst;
};

static struct ref ref[KEYS];
static unsigned int n_ref;

static void key(unsigned int k, struct dps_sa *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->spi = 0x100 + k % 1000;
	sa->proto = k % 2 ? DPS_PROTO_ESP : DPS_PROTO_AH;
	if (k % 3) {
		sa->dst.family = AF_INET;
		sa->dst.v4.s_addr = htonl(0x0a000000u + k / 1000);
	} else {
		sa->dst.family = AF_INET6;
		sa->dst.v6.s6_addr[0] = 0x20;
		sa->dst.v6.s6_addr[15] = (uint8_t)(k / 1000);
	}
	sa->src.family = sa->dst.family;
}

static int ref_find(const struct dps_sa *sa)
{
	for (unsigned int i = 0; i < n_ref; i++)
		if (ref[i].spi == sa->spi && ref[i].proto == sa->proto &&
		    dps_addr_eq(&ref[i].dst, &sa->dst))
			return (int)i;
	return -1;
}

static void assert_same_as_reference(void)
{
	assert_int_equal(pfk_larval_count(), n_ref);
	for (unsigned int k = 0; k < KEYS; k++) {
		struct dps_sa sa;
		int pos;

		key(k, &sa);
		pos = pfk_larval_find(sa.spi, &sa.dst, sa.proto);
		if (ref_find(&sa) < 0) {
			assert_int_equal(pos, -1);
			continue;
		}
		assert_true(pos >= 0 && (unsigned int)pos < pfk_larval_count());
		assert_int_equal(pfk_larval_at((unsigned int)pos)->sa.spi, sa.spi);
		assert_int_equal(pfk_larval_at((unsigned int)pos)->sa.proto, sa.proto);
		assert_true(dps_addr_eq(&pfk_larval_at((unsigned int)pos)->sa.dst, &sa.dst));
	}
}

static void test_larval_index_agrees_with_a_scan_under_random_changes(void **state)
{
	(void)state;
	srand(7);
	n_ref = 0;
	for (unsigned int step = 0; step < 40000; step++) {
		unsigned int k = (unsigned int)rand() % KEYS;
		struct dps_sa sa;
		int pos;

		key(k, &sa);
		pos = pfk_larval_find(sa.spi, &sa.dst, sa.proto);
		assert_int_equal(pos >= 0, ref_find(&sa) >= 0);
		/* grow to about 3000, then shrink and grow again */
		if (pos < 0 && (step / 10000) % 2 == 0) {
			assert_int_equal(pfk_larval_add(&sa, step), 0);
			ref[n_ref++] = (struct ref){sa.spi, sa.proto, sa.dst};
		} else if (pos >= 0 && ((step / 10000) % 2 || rand() % 4 == 0)) {
			pfk_larval_remove((unsigned int)pos);
			ref[ref_find(&sa)] = ref[--n_ref];
		}
		if (step % 2000 == 0)
			assert_same_as_reference();
	}
	assert_same_as_reference();
	/* removal by position, as expiry does: every other one, from the end */
	for (unsigned int i = pfk_larval_count(); i-- > 0;) {
		if (i % 2)
			continue;
		struct dps_sa sa = pfk_larval_at(i)->sa;

		pfk_larval_remove(i);
		ref[ref_find(&sa)] = ref[--n_ref];
	}
	assert_same_as_reference();
	pfk_larval_clear();
	n_ref = 0;
	assert_same_as_reference();
}

static void test_larval_keeps_expiry_and_addresses(void **state)
{
	struct dps_sa sa;
	const struct pfk_larval *l;

	(void)state;
	key(5, &sa);
	sa.src.v4.s_addr = htonl(0xc0000201);
	assert_int_equal(pfk_larval_add(&sa, 12345), 0);
	l = pfk_larval_at((unsigned int)pfk_larval_find(sa.spi, &sa.dst, sa.proto));
	assert_int_equal(l->expires_ms, 12345);
	assert_true(dps_addr_eq(&l->sa.src, &sa.src));
	/* another protocol, same SPI and destination: a different key */
	assert_int_equal(pfk_larval_find(sa.spi, &sa.dst, DPS_PROTO_AH), -1);
	pfk_larval_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_larval_index_agrees_with_a_scan_under_random_changes),
		cmocka_unit_test(test_larval_keeps_expiry_and_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
