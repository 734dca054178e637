/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The anti-replay window of an inbound SA, kept beside lib/ipsec's.
 *
 * lib/ipsec 22.11 marks a sequence number seen through a 32-bit mask
 * (esn_inb_update_sqn: `uint32_t bit = (uint64_t)1 << (sqn & 63)`), so the
 * upper 32 positions of each 64-bit word of its window are never marked and
 * replays of those sequence numbers (sqn mod 64 >= 32) are accepted. lib/ipsec
 * still decides what is new and what is left of the window; this window only
 * answers "accepted before?" for the packets lib/ipsec let through after their
 * integrity check (RFC 4303 3.4.3), and marks them. One writer per SA, as for
 * lib/ipsec's own window.
 *
 * Bit per sequence number in 64-bit words, a power of two of them, the words
 * the right edge moves into cleared as it moves (RFC 6479). No DPDK: unit
 * tested on its own (tests/unit/test_replay.c).
 */
#ifndef DP_REPLAY_H
#define DP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dp_replay {
	uint64_t top;  /* highest sequence number accepted (ESN: all 64 bits) */
	uint32_t win;  /* window, in packets */
	uint32_t mask; /* words - 1 */
	uint64_t word[];
};

static inline uint32_t dp_replay_words(uint32_t win)
{
	uint32_t need = (win + 63) / 64 + 1, n = 1;

	while (n < need)
		n <<= 1;
	return n;
}

/** Bytes of a window of @win packets. */
static inline size_t dp_replay_size(uint32_t win)
{
	return sizeof(struct dp_replay) + dp_replay_words(win) * sizeof(uint64_t);
}

/** An empty window of @win packets whose right edge is @start (0 for a new SA). */
static inline void dp_replay_init(struct dp_replay *r, uint32_t win, uint64_t start)
{
	r->top = start;
	r->win = win;
	r->mask = dp_replay_words(win) - 1;
	for (uint32_t i = 0; i <= r->mask; i++)
		r->word[i] = 0;
}

/** ESN: the 64-bit sequence number whose low half is @low (RFC 4303 A2.1). */
static inline uint64_t dp_replay_esn(const struct dp_replay *r, uint32_t low)
{
	uint32_t tl = (uint32_t)r->top, th = (uint32_t)(r->top >> 32);
	uint32_t bottom = tl - r->win + 1; /* modulo 2^32 */

	if (tl >= r->win - 1) /* the window lies within one subspace */
		th += low < bottom;
	else if (th != 0) /* the window spans two subspaces */
		th -= low >= bottom;
	return (uint64_t)th << 32 | low;
}

/** Mark @seq accepted. False if it was already, or lies left of the window. */
static inline bool dp_replay_accept(struct dp_replay *r, uint64_t seq)
{
	uint64_t bit = UINT64_C(1) << (seq & 63), *w;

	if (seq > r->top) {
		uint64_t from = (r->top >> 6) + 1, n = (seq >> 6) - (r->top >> 6);

		if (n > (uint64_t)r->mask + 1)
			n = (uint64_t)r->mask + 1;
		for (uint64_t i = 0; i < n; i++)
			r->word[(from + i) & r->mask] = 0;
		r->top = seq;
	} else if (seq == 0 || seq + r->win < r->top) {
		return false;
	}
	w = &r->word[(seq >> 6) & r->mask];
	if (*w & bit)
		return false;
	*w |= bit;
	return true;
}

#endif
