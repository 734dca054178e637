/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ESP through lib/ipsec: outbound (esp_out.c) and inbound (esp_in.c), each
 * with a synchronous CPU-crypto runner and an asynchronous cryptodev one,
 * chosen per SA when it is created.
 */
#ifndef DP_ESP_H
#define DP_ESP_H

#include <rte_mbuf.h>

#include "dataplane/sa.h"

struct dp_worker;
struct dp_snapshot;

/** The runner for @sa's direction and crypto path. */
dp_sa_run_t dp_esp_runner(const struct dp_sa *sa);

/* esp_out.c */
/**
 * Drop (drop_mtu) the packets of @mb that would not fit the egress link once
 * protected by @sa, telling their senders the path MTU (icmp.c); the others
 * are moved to the front. Returns how many remain.
 */
uint16_t dp_esp_out_fit(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in,
			const struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n, bool hop_done);
void dp_esp_out_sync(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		     struct rte_mbuf **mb, uint16_t n);
void dp_esp_out_async(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		      struct rte_mbuf **mb, uint16_t n);
void dp_esp_out_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		       struct rte_mbuf **mb, uint16_t n);

/* esp_in.c */
/** ESP (or ESP-in-UDP) packets for the gateway's addresses, received on @port. */
void dp_esp_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
	       struct rte_mbuf **pkts, uint16_t n, int v6);
void dp_esp_in_sync(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		    struct rte_mbuf **mb, uint16_t n);
void dp_esp_in_async(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		     struct rte_mbuf **mb, uint16_t n);
void dp_esp_in_finish(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		      struct rte_mbuf **mb, uint16_t k, uint16_t n);

/**
 * Collect finished asynchronous crypto operations and complete their packets.
 * Returns the number of packets completed.
 */
uint16_t dp_crypto_poll(struct dp_worker *w, const struct dp_snapshot *s);

#endif
