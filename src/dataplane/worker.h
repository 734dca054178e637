/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-worker helpers shared by the receive dispatch and the forwarding code. */
#ifndef DP_WORKER_H
#define DP_WORKER_H

#include "dataplane/dp.h"
#include "dataplane/snapshot.h"

/** The worker loop, launched on each worker lcore; @arg is its struct dp_worker. */
int dp_worker_main(void *arg);

/**
 * Receive stage: @n frames received on port @port, sorted by ethertype and
 * taken through every later stage (and what they decrypt, again) against
 * snapshot @s. Transmission stays staged until dp_tx_flush().
 */
void dp_worker_rx(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		  struct rte_mbuf **pkts, uint16_t n);

/**
 * What one loop does after receiving: queued ICMP errors, the crypto
 * operations finished so far (and what inbound SAs decrypted, through the
 * stages again; the others stay in flight), reassembly timeouts, and the
 * transmit staging of every port. Returns the number of crypto operations
 * finished.
 */
unsigned int dp_worker_finish(struct dp_worker *w, const struct dp_snapshot *s);

/**
 * Frames the control thread injected (ARP/ND, packets held for a neighbour
 * now resolved): sent before a loop receives, so that none is overtaken.
 * @pkts is scratch for @burst mbufs. Returns how many.
 */
uint16_t dp_worker_inject(struct dp_worker *w, struct rte_mbuf **pkts, uint16_t burst);

static inline void dp_count(struct dp_worker *w, uint16_t port, enum dp_counter c)
{
	w->cnt[port].v[c]++;
}

static inline void dp_drop(struct dp_worker *w, uint16_t port, struct rte_mbuf *m,
			   enum dp_counter c)
{
	w->cnt[port].v[c]++;
	rte_pktmbuf_free(m);
}

/** Transmit what is staged for ethdev @eth_id now. */
void dp_tx_flush(struct dp_worker *w, uint16_t eth_id);

/** Stage @m for transmission on ethdev @eth_id; flushed at the end of the loop. */
static inline void dp_tx(struct dp_worker *w, uint16_t eth_id, struct rte_mbuf *m)
{
	struct dp_txbuf *b = &w->tx[eth_id];

	if (unlikely(b->n == DP_MAX_BURST))
		dp_tx_flush(w, eth_id);
	b->pkts[b->n++] = m;
}

/** Send @m to the kernel through @port's exception TAP. */
static inline void dp_punt(struct dp_worker *w, uint16_t port, struct rte_mbuf *m)
{
	uint16_t tap = dp.ports[port].tap_id;

	if (tap == DP_NO_PORT) {
		dp_drop(w, port, m, DP_CNT_drop_no_exception);
		return;
	}
	dp_count(w, port, DP_CNT_punt_kernel);
	dp_tx(w, tap, m);
}

/** Hand @m to the control thread. */
static inline void dp_to_control(struct dp_worker *w, uint16_t port, struct rte_mbuf *m,
				 enum dp_ctrl_kind kind, enum dp_counter c)
{
	dp_meta(m)->kind = kind;
	if (unlikely(rte_ring_mp_enqueue(dp.ctrl, m) != 0)) {
		dp_drop(w, port, m, DP_CNT_drop_ctrl_full);
		return;
	}
	dp_count(w, port, c);
}

#endif
