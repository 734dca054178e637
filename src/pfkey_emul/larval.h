/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Larval SAs: SPIs reserved by GETSPI until an UPDATE makes them SAs (or
 * they lapse). A key daemon that starts thousands of tunnels at once holds
 * as many reservations, so the table grows, and it is found by key through
 * a hash index, not scanned: every ADD, UPDATE, DELETE and GET looks in it.
 * No DPDK: unit-tested in tests/unit/test_larval.c.
 */
#ifndef PFK_LARVAL_H
#define PFK_LARVAL_H

#include <stdint.h>

#include "control/ipsec.h"

/** Reservations at most: a key daemon gone wild cannot take all memory. */
#define PFK_LARVAL_MAX (1u << 20)

struct pfk_larval {
	struct dps_sa sa; /* spi, proto, src, dst */
	uint64_t expires_ms;
};

/** Add a reservation (its key must not be present). 0, -ENOBUFS (PFK_LARVAL_MAX), -ENOMEM. */
int pfk_larval_add(const struct dps_sa *sa, uint64_t expires_ms);

/** Position of <@spi, @dst, @proto>, or -1. */
int pfk_larval_find(uint32_t spi, const struct dps_addr *dst, uint8_t proto);

/** How many there are; positions are 0..count-1. */
unsigned int pfk_larval_count(void);

/** The reservation at @pos. */
const struct pfk_larval *pfk_larval_at(unsigned int pos);

/** Remove the reservation at @pos; the last one takes its position. */
void pfk_larval_remove(unsigned int pos);

/** Remove them all and free the memory. */
void pfk_larval_clear(void);

#endif
