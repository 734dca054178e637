/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An index from keys to positions in an array the caller owns (the store's
 * SA and policy tables): open addressing with linear probing, the keys never
 * copied in -- the caller hashes the entry at a position and says whether the
 * entry at a position is the one looked for. Appends are indexed at once; a
 * deletion that moves the array's last entry into the hole is followed in
 * place (remove, then moved), with backward-shift deletion so that no
 * tombstone slows later lookups. Marked stale (after the array changed
 * behind its back), it is rebuilt at the next lookup. Control thread only.
 */
#ifndef DPS_POS_INDEX_H
#define DPS_POS_INDEX_H

#include <stdbool.h>
#include <stdint.h>

struct dps_pos_index {
	uint32_t cap;  /* power of two, > 2 * entries */
	int32_t *slot; /* position + 1, 0 = empty */
	bool stale;
	uint32_t (*hash)(unsigned int pos); /* the key hash of the entry at pos */
};

#define DPS_POS_INDEX_INIT(h)                                                                      \
	{                                                                                          \
		.stale = true, .hash = (h)                                                         \
	}

/** Position of the entry @match accepts among the @n, whose key hashes to @h; -1 if none.
 *  Rebuilds a stale index first (and scans the @n if memory is short). */
int dps_pos_index_find(struct dps_pos_index *ix, unsigned int n, uint32_t h,
		       bool (*match)(unsigned int pos, const void *key), const void *key);
/** The array grew by one entry, now @n long (the new one at n - 1). */
void dps_pos_index_appended(struct dps_pos_index *ix, unsigned int n);
/** The entry at @pos leaves the array. Call while the array still holds every entry
 *  where the index says (the hash callback reads them). */
void dps_pos_index_remove(struct dps_pos_index *ix, unsigned int pos);
/** The entry at @from is about to move to @to (after a remove of @to's entry). */
void dps_pos_index_moved(struct dps_pos_index *ix, unsigned int from, unsigned int to);
void dps_pos_index_free(struct dps_pos_index *ix);

#endif
