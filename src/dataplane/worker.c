/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The poll-mode worker: receive bursts from its queues, sort each burst by
 * ethertype, forward, and flush per-port transmit staging once per loop.
 * Also carries the exception path back: what the kernel sends on a port's TAP
 * leaves through the port.
 */
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "dataplane/esp.h"
#include "dataplane/frag.h"
#include "dataplane/fwd.h"
#include "dataplane/icmp.h"
#include "dataplane/worker.h"

#define CRYPTO_DRAIN_SPINS 100000

static inline bool l2_for_us(const struct rte_ether_hdr *eth, const struct dp_port *p)
{
	return rte_is_multicast_ether_addr(&eth->dst_addr) ||
	       rte_is_same_ether_addr(&eth->dst_addr, &p->mac);
}

void dp_worker_rx(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
		  struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *v4[DP_MAX_BURST], *v6[DP_MAX_BURST];
	uint16_t n4 = 0, n6 = 0;
	const struct dp_port *p = &dp.ports[port];
	uint64_t bytes = 0;

	/* Written stages later: the mbuf's private area (dp_meta), which no
	 * driver touches, and its second line (l2_len, l3_len for lib/ipsec),
	 * which a driver may have left out of the cache. */
	for (uint16_t i = 0; i < n; i++) {
		rte_prefetch0(&pkts[i]->cacheline1);
		rte_prefetch0(dp_meta(pkts[i]));
	}
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

		bytes += rte_pktmbuf_pkt_len(m);
		if (unlikely(rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN)) {
			dp_drop(w, port, m, DP_CNT_drop_malformed);
			continue;
		}
		if (unlikely(!l2_for_us(eth, p))) {
			dp_drop(w, port, m, DP_CNT_drop_l2_other);
			continue;
		}
		switch (eth->ether_type) {
		case RTE_BE16(RTE_ETHER_TYPE_IPV4):
			v4[n4++] = m;
			break;
		case RTE_BE16(RTE_ETHER_TYPE_IPV6):
			v6[n6++] = m;
			break;
		case RTE_BE16(RTE_ETHER_TYPE_ARP):
			dp_to_control(w, port, m, DP_CTRL_ARP, DP_CNT_arp_nd_in);
			break;
		default:
			dp_drop(w, port, m, DP_CNT_drop_l2_other);
		}
	}
	w->cnt[port].v[DP_CNT_rx_packets] += n;
	w->cnt[port].v[DP_CNT_rx_bytes] += bytes;
	if (n4)
		dp_fwd4(w, s, port, v4, n4, NULL);
	if (n6)
		dp_fwd6(w, s, port, v6, n6, NULL);
}

/* What the kernel sends on a TAP goes out of its port: the TAP has the port's
 * MAC and the kernel resolved the destination itself. The outbound policy
 * still applies (transport mode for the gateway's own traffic). */
static uint16_t poll_taps(struct dp_worker *w, const struct dp_snapshot *s, struct rte_mbuf **pkts,
			  uint16_t burst)
{
	uint16_t total = 0;

	for (uint16_t p = 0; p < dp.n_ports; p++) {
		uint16_t tap = dp.ports[p].tap_id, n;

		if (tap == DP_NO_PORT)
			continue;
		n = rte_eth_rx_burst(tap, w->id, pkts, burst);
		if (n == 0)
			continue;
		w->cnt[p].v[DP_CNT_from_kernel] += n;
		dp_from_kernel(w, s, p, pkts, n);
		total += n;
	}
	return total;
}

static uint16_t drain_inject(struct dp_worker *w, struct rte_mbuf **pkts, uint16_t burst)
{
	unsigned int n = rte_ring_sc_dequeue_burst(w->inject, (void **)pkts, burst, NULL);

	for (unsigned int i = 0; i < n; i++)
		dp_tx(w, pkts[i]->port, pkts[i]);
	return n;
}

void dp_tx_flush(struct dp_worker *w, uint16_t eth_id)
{
	struct dp_txbuf *b = &w->tx[eth_id];
	uint16_t port = dp.port_of_eth[eth_id];
	uint16_t sent = rte_eth_tx_burst(eth_id, w->id, b->pkts, b->n);

	if (!dp.eth_is_tap[eth_id]) {
		uint64_t bytes = 0;

		for (uint16_t i = 0; i < sent; i++)
			bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
		w->cnt[port].v[DP_CNT_tx_packets] += sent;
		w->cnt[port].v[DP_CNT_tx_bytes] += bytes;
	}
	if (unlikely(sent < b->n)) {
		w->cnt[port].v[DP_CNT_drop_tx_full] += b->n - sent;
		rte_pktmbuf_free_bulk(&b->pkts[sent], b->n - sent);
	}
	b->n = 0;
}

static void flush(struct dp_worker *w)
{
	for (uint16_t p = 0; p < dp.n_ports; p++) {
		if (w->tx[dp.ports[p].eth_id].n)
			dp_tx_flush(w, dp.ports[p].eth_id);
		if (dp.ports[p].tap_id != DP_NO_PORT && w->tx[dp.ports[p].tap_id].n)
			dp_tx_flush(w, dp.ports[p].tap_id);
	}
}

unsigned int dp_worker_finish(struct dp_worker *w, const struct dp_snapshot *s,
			      struct rte_mbuf **pkts, uint16_t burst)
{
	unsigned int work = drain_inject(w, pkts, burst);

	/* Before the crypto drain: an error may itself be protected. */
	if (w->n_icmp)
		dp_icmp_flush(w, s);
	/* No crypto operation may outlive the snapshot (and SAs) it started
	 * with: collect them all before reporting a quiescent state. */
	for (unsigned int spin = 0; w->inflight && spin < CRYPTO_DRAIN_SPINS; spin++)
		work += dp_crypto_poll(w, s);
	dp_reasm_tick(w);
	flush(w);
	return work;
}

/* A short sleep after a run of empty polls keeps an idle daemon off the CPU.
 * The worker is RCU-offline while asleep so writers never wait for it. */
static void idle(struct dp_worker *w, unsigned int *empty)
{
	const struct dps_dataplane_cfg *c = &dp.cfg->dataplane;

	if (!c->idle_backoff || ++*empty < c->idle_polls)
		return;
	rte_rcu_qsbr_thread_offline(dp.rcu, w->id);
	rte_delay_us_sleep(c->idle_sleep_us);
	rte_rcu_qsbr_thread_online(dp.rcu, w->id);
	w->idle_sleeps++;
}

int dp_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	uint16_t burst = dp.cfg->dataplane.burst;
	struct rte_mbuf *pkts[DP_MAX_BURST];
	unsigned int empty = 0;

	rte_rcu_qsbr_thread_register(dp.rcu, w->id);
	rte_rcu_qsbr_thread_online(dp.rcu, w->id);
	dp_icmp_init(w);
	DP_LOG(INFO, "worker %u on lcore %u polls %u queue(s)", w->id, w->lcore, w->n_rxq);
	while (!__atomic_load_n(&dp.quit, __ATOMIC_RELAXED)) {
		const struct dp_snapshot *s = __atomic_load_n(&dp.snap, __ATOMIC_ACQUIRE);
		unsigned int work = 0;

		for (unsigned int q = 0; q < w->n_rxq; q++) {
			uint16_t n =
				rte_eth_rx_burst(w->rxq[q].eth_id, w->rxq[q].queue, pkts, burst);

			if (n) {
				dp_worker_rx(w, s, w->rxq[q].port, pkts, n);
				work += n;
			}
		}
		work += poll_taps(w, s, pkts, burst);
		work += dp_worker_finish(w, s, pkts, burst);
		rte_rcu_qsbr_quiescent(dp.rcu, w->id);
		w->loops++;
		if (work)
			empty = 0;
		else
			idle(w, &empty);
	}
	rte_rcu_qsbr_thread_offline(dp.rcu, w->id);
	rte_rcu_qsbr_thread_unregister(dp.rcu, w->id);
	return 0;
}
