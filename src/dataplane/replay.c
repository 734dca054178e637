/* SPDX-License-Identifier: BSD-3-Clause */
#include <string.h>

#include "dataplane/replay.h"

/* The words for W + 63 bits (the window's numbers may start anywhere in a
 * word), rounded up to a power of 2 so that a word's index is a mask. */
static uint32_t ring_words(uint32_t win)
{
	uint64_t need = ((uint64_t)win + 2 * DP_REPLAY_WORD_BITS - 2) / DP_REPLAY_WORD_BITS;
	uint32_t words = 1;

	while (words < need)
		words <<= 1;
	return words;
}

size_t dp_replay_size(uint32_t win)
{
	return sizeof(struct dp_replay) + ring_words(win) * sizeof(uint64_t);
}

void dp_replay_init(struct dp_replay *r, uint32_t win, uint32_t esn_win, uint64_t top)
{
	uint32_t words = ring_words(win);

	memset(r, 0, sizeof(*r) + words * sizeof(uint64_t));
	r->top = top;
	r->win = win;
	r->esn_win = esn_win;
	r->mask = words - 1;
}
