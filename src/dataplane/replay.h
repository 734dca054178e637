/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The anti-replay window of an inbound SA (RFC 4303 §3.4.3), dpsec's own,
 * without DPDK (esp_in.c applies it; tests/unit/test_replay.c proves it).
 *
 * The window holds the W sequence numbers top-W+1..top, top being the
 * highest one authenticated so far. A number above top moves the window
 * right; one inside it is accepted once; one left of it is too old. The bits
 * live in a ring of 64-bit words (RFC 6479): a number's bit is its value
 * modulo the ring's size, and moving right clears whole words, never shifts.
 * The ring has room for W + 63 bits, so the window's oldest word never shares
 * a word with its newest.
 *
 * With extended sequence numbers (RFC 4303 §2.2.1) only the low 32 bits
 * travel; the high ones are reconstructed from top (Appendix A2.1).
 *
 * The window may be updated only with packets whose integrity was verified
 * (§3.4.3): dp_replay_check() may screen packets before, the verdict is
 * dp_replay_update()'s after. One writer at a time (the caller's business).
 */
#ifndef DP_REPLAY_H
#define DP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_REPLAY_WORD_BITS 64u

struct dp_replay {
	uint64_t top;	  /* highest authenticated sequence number, 0: none yet */
	uint32_t win;	  /* W, in packets (> 0) */
	uint32_t esn_win; /* ESN: the window the high bits are reconstructed with; 0: no ESN */
	uint32_t mask;	  /* words in bits[] - 1 (a power of 2 - 1) */
	uint64_t bits[];  /* bit s % (words * 64) for sequence number s */
};

/** Bytes a window of @win packets takes (struct and bits). */
size_t dp_replay_size(uint32_t win);

/**
 * Make @r (dp_replay_size(@win) bytes) an empty window of @win packets whose
 * top is @top (0 for a new SA). @esn_win: 0 without extended sequence
 * numbers, else the window width their high half is reconstructed with
 * (normally @win).
 */
void dp_replay_init(struct dp_replay *r, uint32_t win, uint32_t esn_win, uint64_t top);

/**
 * The full sequence number of a packet that carries @low (RFC 4303 A2.1):
 * with ESN, the high half that puts it in or right of the window when it can
 * be (else the one that makes it too old); without, @low itself.
 */
static inline uint64_t dp_replay_seq(const struct dp_replay *r, uint32_t low)
{
	uint32_t tl = (uint32_t)r->top, th = (uint32_t)(r->top >> 32);
	uint32_t bl = tl - r->esn_win + 1; /* window's bottom, modulo 2^32 */

	if (r->esn_win == 0)
		return low;
	if (tl >= r->esn_win - 1) /* case A: the window in one 2^32 subspace */
		th += low < bl;
	else if (th != 0) /* case B: the window spans two subspaces */
		th -= low >= bl;
	return (uint64_t)th << 32 | low;
}

static inline bool dp_replay_seen(const struct dp_replay *r, uint64_t seq)
{
	return r->bits[(seq / DP_REPLAY_WORD_BITS) & r->mask] >> (seq % DP_REPLAY_WORD_BITS) & 1;
}

/** Whether @seq (dp_replay_seq) would be accepted now; @r is not changed. */
static inline bool dp_replay_check(const struct dp_replay *r, uint64_t seq)
{
	if (seq > r->top)
		return true;
	return seq != 0 && r->top - seq < r->win && !dp_replay_seen(r, seq);
}

/**
 * Accept @seq (dp_replay_seq) of an authenticated packet and record it, or
 * refuse it: 0 (never valid), a duplicate, or left of the window.
 */
static inline bool dp_replay_update(struct dp_replay *r, uint64_t seq)
{
	uint64_t word = seq / DP_REPLAY_WORD_BITS;

	if (seq > r->top) {
		/* clear the words the window enters, at most the whole ring */
		uint64_t last = r->top / DP_REPLAY_WORD_BITS;
		uint64_t n =
			word - last > (uint64_t)r->mask + 1 ? (uint64_t)r->mask + 1 : word - last;

		for (uint64_t i = 1; i <= n; i++)
			r->bits[(last + i) & r->mask] = 0;
		r->top = seq;
	} else if (!dp_replay_check(r, seq)) {
		return false;
	}
	r->bits[word & r->mask] |= UINT64_C(1) << (seq % DP_REPLAY_WORD_BITS);
	return true;
}

#endif
