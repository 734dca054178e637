/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The neighbour state machine, without the table, the packets or DPDK
 * (neigh.c applies its decisions; tests/unit/test_neigh_state.c proves them):
 *
 *   new next hop ──▶ INCOMPLETE ── reply ──▶ REACHABLE ── reachable_ms, used ──▶ PROBE
 *                     │ broadcast probe,       │  ▲                               │ unicast
 *                     │ every retrans_ms       │  └────────── reply ──────────────┘ probes
 *                     └── probes unanswered ── ┴── reachable_ms, unused ──▶ removed ◀┘
 *
 * A reply with another MAC for a resolved entry replaces the entry (workers
 * read the MAC without a lock and must never see it half written). STATIC
 * entries never change.
 */
#ifndef DP_NEIGH_STATE_H
#define DP_NEIGH_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "control/config.h"

enum dp_neigh_state {
	DP_NEIGH_INCOMPLETE, /* being resolved: packets wait in the control thread */
	DP_NEIGH_REACHABLE,  /* confirmed within reachable_ms */
	DP_NEIGH_PROBE,	     /* reachable time passed while in use: re-probing */
	DP_NEIGH_STATIC,     /* from the configuration, never ages */
};

/* What the timer does to an entry. */
enum dp_neigh_timer_action {
	DP_NEIGH_KEEP,		/* nothing yet */
	DP_NEIGH_PROBE_BCAST,	/* ask again by broadcast ARP / solicited-node NS */
	DP_NEIGH_PROBE_UNICAST, /* ask the known MAC again */
	DP_NEIGH_REMOVE,	/* aged out unused, or never answered */
};

/* What a proof of a neighbour's MAC (ARP, NA) does to an entry. */
enum dp_neigh_learn_action {
	DP_NEIGH_LEARN_IGNORE,	/* static, or unknown and not worth creating */
	DP_NEIGH_LEARN_CONFIRM, /* (now) reachable with this MAC */
	DP_NEIGH_LEARN_REPLACE, /* the MAC moved: a fresh entry, then confirm */
};

/**
 * The timer's decision for an entry at @now (ms). @state and @probes are
 * updated when the entry enters PROBE; the caller sends the probe it is told
 * to and counts it.
 */
static inline enum dp_neigh_timer_action dp_neigh_timer_step(uint8_t *state, unsigned int *probes,
							     bool used, uint64_t confirmed_ms,
							     uint64_t probe_ms, uint64_t now,
							     const struct dps_neigh_params *p)
{
	switch (*state) {
	case DP_NEIGH_REACHABLE:
		if (now - confirmed_ms < p->reachable_ms)
			return DP_NEIGH_KEEP;
		if (!used)
			return DP_NEIGH_REMOVE;
		*state = DP_NEIGH_PROBE;
		*probes = 0;
		return DP_NEIGH_PROBE_UNICAST;
	case DP_NEIGH_INCOMPLETE:
	case DP_NEIGH_PROBE:
		if (now - probe_ms < p->retrans_ms)
			return DP_NEIGH_KEEP;
		if (*probes >= p->probes)
			return DP_NEIGH_REMOVE;
		return *state == DP_NEIGH_PROBE ? DP_NEIGH_PROBE_UNICAST : DP_NEIGH_PROBE_BCAST;
	default:
		return DP_NEIGH_KEEP;
	}
}

/**
 * What a neighbour's proof of its MAC does: @exists whether an entry is
 * there, @create whether one may be made for it (a reply or a request for
 * us, not a gratuitous ARP from a stranger), @same_mac whether the entry
 * already holds that MAC.
 */
static inline enum dp_neigh_learn_action dp_neigh_learn_step(bool exists, uint8_t state,
							     bool create, bool same_mac)
{
	if (!exists)
		return create ? DP_NEIGH_LEARN_CONFIRM : DP_NEIGH_LEARN_IGNORE;
	if (state == DP_NEIGH_STATIC)
		return DP_NEIGH_LEARN_IGNORE;
	if (state != DP_NEIGH_INCOMPLETE && !same_mac)
		return DP_NEIGH_LEARN_REPLACE;
	return DP_NEIGH_LEARN_CONFIRM;
}

/** Whether one more packet may wait for an entry that holds @n_held. */
static inline bool dp_neigh_may_hold(unsigned int n_held, const struct dps_neigh_params *p)
{
	return n_held < p->queue_len;
}

#endif
