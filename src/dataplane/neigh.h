/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Neighbour table (ARP for IPv4, ND for IPv6).
 *
 * Workers only look entries up (lock-free rte_hash reads); the control thread
 * owns every change: it answers ARP/ND for the gateway's addresses, learns,
 * resolves next hops while holding a bounded queue of packets, and ages
 * entries out. Entries are freed after an RCU grace period.
 */
#ifndef DP_NEIGH_H
#define DP_NEIGH_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_hash.h>

#include "control/config.h"
#include "dataplane/neigh_state.h"

/* 32 bytes: rte_hash has a vectorised compare for that length, not for 20. */
struct dp_neigh_key {
	uint16_t port;
	uint8_t family;
	uint8_t pad;
	uint8_t addr[16];
	uint8_t pad2[12];
};

struct dp_neigh {
	/* Read by workers. */
	struct rte_ether_addr mac;
	volatile uint8_t state;
	volatile uint8_t used; /* set by workers, cleared when the entry is confirmed */
	/* Control thread only. */
	struct dp_neigh_key key;
	uint64_t confirmed_ms;
	uint64_t probe_ms;
	unsigned int probes;
	unsigned int n_held;
	struct rte_mbuf **held;
	struct dp_neigh *next;
};

struct dp_neigh_table {
	struct rte_hash *hash;
	/* Counts the entries added to and removed from @hash (control thread,
	 * release; before an entry's grace period begins): a worker that read
	 * it unchanged (acquire) may keep using an entry it found before, to
	 * the end of its loop (dp_output_peer()). */
	uint32_t gen;
};

static inline void dp_neigh_key_make(struct dp_neigh_key *k, uint16_t port, int family,
				     const void *addr)
{
	memset(k, 0, sizeof(*k));
	k->port = port;
	k->family = family;
	memcpy(k->addr, addr, family == AF_INET ? 4 : 16);
}

/** Worker lookup: the entry of (@port, @family, @addr), usable or not, or NULL. */
static inline struct dp_neigh *dp_neigh_find(const struct dp_neigh_table *t, uint16_t port,
					     int family, const void *addr)
{
	struct dp_neigh_key k;
	void *data;

	dp_neigh_key_make(&k, port, family, addr);
	if (rte_hash_lookup_data(t->hash, &k, &data) < 0)
		return NULL;
	return data;
}

/** Worker: @n (may be NULL) if it holds a usable MAC, marked used, else NULL. */
static inline struct dp_neigh *dp_neigh_usable(struct dp_neigh *n)
{
	if (n == NULL || n->state == DP_NEIGH_INCOMPLETE)
		return NULL;
	if (!n->used)
		n->used = 1;
	return n;
}

/** Worker lookup: the entry if it holds a usable MAC, else NULL. */
static inline struct dp_neigh *dp_neigh_lookup(const struct dp_neigh_table *t, uint16_t port,
					       int family, const void *addr)
{
	return dp_neigh_usable(dp_neigh_find(t, port, family, addr));
}

struct dp_neigh_table *dp_neigh_create(const struct dps_neigh_params *p);
void dp_neigh_destroy(struct dp_neigh_table *t);

/** Add a permanent entry (configuration). */
int dp_neigh_add_static(struct dp_neigh_table *t, uint16_t port, const struct dps_addr *a,
			const uint8_t mac[6]);

/* Control thread: packets the workers handed over (consumed). */
void dp_neigh_input_arp(struct dp_neigh_table *t, struct rte_mbuf *m);
void dp_neigh_input_nd(struct dp_neigh_table *t, struct rte_mbuf *m);
void dp_neigh_resolve(struct dp_neigh_table *t, struct rte_mbuf *m);

/** Control thread: probes, retransmissions, ageing. */
void dp_neigh_timer(struct dp_neigh_table *t, uint64_t now_ms);

/** Visit every entry under the table lock (telemetry thread). */
void dp_neigh_walk(struct dp_neigh_table *t,
		   void (*fn)(const struct dp_neigh *, uint64_t now_ms, void *), void *arg);

#endif
