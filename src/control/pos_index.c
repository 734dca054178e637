/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include "control/pos_index.h"

static void put(struct dps_pos_index *ix, uint32_t h, unsigned int pos)
{
	uint32_t k = h & (ix->cap - 1);

	while (ix->slot[k])
		k = (k + 1) & (ix->cap - 1);
	ix->slot[k] = (int32_t)pos + 1;
}

/* Rebuild for @n entries; false (and the caller scans) if memory is short. */
static bool rebuild(struct dps_pos_index *ix, unsigned int n)
{
	uint32_t cap = 64;
	int32_t *slot;

	while (cap < 2 * n + 2)
		cap *= 2;
	slot = calloc(cap, sizeof(*slot));
	if (slot == NULL)
		return false;
	free(ix->slot);
	ix->slot = slot;
	ix->cap = cap;
	for (unsigned int i = 0; i < n; i++)
		put(ix, ix->hash(i), i);
	ix->stale = false;
	return true;
}

int dps_pos_index_find(struct dps_pos_index *ix, unsigned int n, uint32_t h,
		       bool (*match)(unsigned int pos, const void *key), const void *key)
{
	if (ix->stale && !rebuild(ix, n)) {
		for (unsigned int i = 0; i < n; i++)
			if (match(i, key))
				return (int)i;
		return -1;
	}
	for (uint32_t k = h & (ix->cap - 1); ix->slot[k]; k = (k + 1) & (ix->cap - 1))
		if (match((unsigned int)ix->slot[k] - 1, key))
			return ix->slot[k] - 1;
	return -1;
}

void dps_pos_index_appended(struct dps_pos_index *ix, unsigned int n)
{
	if (ix->stale || 2 * n + 2 > ix->cap)
		ix->stale = true; /* grown at the next lookup */
	else
		put(ix, ix->hash(n - 1), n - 1);
}

/* The slot holding @pos, or -1. */
static int64_t slot_of(const struct dps_pos_index *ix, unsigned int pos)
{
	for (uint32_t k = ix->hash(pos) & (ix->cap - 1); ix->slot[k]; k = (k + 1) & (ix->cap - 1))
		if (ix->slot[k] == (int32_t)pos + 1)
			return k;
	return -1;
}

void dps_pos_index_remove(struct dps_pos_index *ix, unsigned int pos)
{
	uint32_t m, hole;
	int64_t k;

	if (ix->stale)
		return;
	k = slot_of(ix, pos);
	if (k < 0) {
		ix->stale = true; /* not indexed (cannot happen): rebuilt at the next lookup */
		return;
	}
	m = ix->cap - 1;
	hole = (uint32_t)k;
	ix->slot[hole] = 0;
	/* the rest of the probe run: an entry whose home lies cyclically in
	 * (hole, j] is still found; any other moves back into the hole */
	for (uint32_t j = (hole + 1) & m; ix->slot[j]; j = (j + 1) & m) {
		uint32_t home = ix->hash((unsigned int)ix->slot[j] - 1) & m;

		if (hole <= j ? hole < home && home <= j : hole < home || home <= j)
			continue;
		ix->slot[hole] = ix->slot[j];
		ix->slot[j] = 0;
		hole = j;
	}
}

void dps_pos_index_moved(struct dps_pos_index *ix, unsigned int from, unsigned int to)
{
	int64_t k;

	if (ix->stale)
		return;
	k = slot_of(ix, from);
	if (k < 0)
		ix->stale = true;
	else
		ix->slot[k] = (int32_t)to + 1;
}

void dps_pos_index_free(struct dps_pos_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = 0;
	ix->stale = true;
}
