/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The poll-mode worker: receive bursts from its queues, sort each burst by
 * ethertype, and drive the stages of the packet path over the sub-bursts
 * (stage.h), one way; then flush per-port transmit staging once per loop.
 * Also carries the exception path back: what the kernel sends on a port's TAP
 * leaves through the port, and the ICMP errors the loop raised.
 */
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "dataplane/capture.h"
#include "dataplane/crypto.h"
#include "dataplane/esp.h"
#include "dataplane/frag.h"
#include "dataplane/fwd.h"
#include "dataplane/icmp.h"
#include "dataplane/output.h"
#include "dataplane/policy.h"
#include "dataplane/worker.h"
#include "dataplane/xform.h"

/* Bursts of finished crypto operations one loop collects at most: more than
 * the loop can have enqueued. What is not finished yet waits for a later
 * loop, in flight across quiescent states (dp_crypto_settle). */
#define CRYPTO_POLLS 8
/* Microseconds a stopping worker waits for the devices at most. */
#define CRYPTO_DRAIN_US 100000

static inline bool l2_for_us(const struct rte_ether_hdr *eth, const struct dp_port *p)
{
	return rte_is_multicast_ether_addr(&eth->dst_addr) ||
	       rte_is_same_ether_addr(&eth->dst_addr, &p->mac);
}

/*
 * The stages after receive for a sub-burst of one family from port @in, in
 * order: input (checks, FIB, TTL) → policy (inbound check, outbound SPD) →
 * transforms (inbound SAs, then the outbound SAs' groups) → output (what
 * leaves in clear). Decrypted packets come back in w->st.again; the worker
 * feeds them through here again (refeed()), never a stage itself.
 */
static void ip_stages(struct dp_worker *w, const struct dp_snapshot *s, uint16_t in, int v6,
		      struct rte_mbuf **pkts, uint16_t n, bool decrypted)
{
	struct dp_stages *st = &w->st;

	if (v6)
		dp_fwd_input6(w, s, in, pkts, n, decrypted);
	else
		dp_fwd_input4(w, s, in, pkts, n, decrypted);
	dp_policy_in(w, s, in, v6, decrypted);
	if (st->out.n)
		dp_policy_out(w, s, in, v6, true);
	if (st->n_esp) {
		dp_esp_in(w, s, in, st->esp, st->n_esp, v6);
		st->n_esp = 0;
	}
	if (st->n_grp)
		dp_xform_out(w, s, in, true);
	if (st->clear.n)
		dp_output_clear(w, s, in, v6);
}

/* The decrypted packets of the last stages' run, as new sub-bursts of one
 * port and family each. Their inner packets are never taken for ESP again,
 * so this ends. The stages may decrypt more (a bundle's next layer) into
 * w->st.again while a sub-burst runs: the run's packets are copied out first. */
static void refeed(struct dp_worker *w, const struct dp_snapshot *s)
{
	struct rte_mbuf *a[DP_MAX_BURST], *v[2][DP_MAX_BURST];

	while (w->st.n_again) {
		uint16_t n = w->st.n_again, nv[2] = {0, 0}, i;
		uint16_t eth = w->st.again[0]->port, port;
		rte_be16_t type =
			rte_pktmbuf_mtod(w->st.again[0], struct rte_ether_hdr *)->ether_type;

		memcpy(a, w->st.again, n * sizeof(a[0]));
		w->st.n_again = 0;
		/* The common case, one SA's or one port's packets of one family:
		 * one sub-burst as it is */
		for (i = 1; i < n; i++)
			if (a[i]->port != eth ||
			    rte_pktmbuf_mtod(a[i], struct rte_ether_hdr *)->ether_type != type)
				break;
		if (likely(i == n)) {
			ip_stages(w, s, dp.port_of_eth[eth], type == RTE_BE16(RTE_ETHER_TYPE_IPV6),
				  a, n, true);
			continue;
		}
		port = dp.port_of_eth[eth];
		for (i = 0; i < n; i++) {
			struct rte_mbuf *m = a[i];
			int v6 = rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type ==
				 RTE_BE16(RTE_ETHER_TYPE_IPV6);
			uint16_t p = dp.port_of_eth[m->port];

			if (unlikely(p != port)) {
				for (int f = 0; f < 2; f++)
					if (nv[f])
						ip_stages(w, s, port, f, v[f], nv[f], true);
				nv[0] = nv[1] = 0;
				port = p;
			}
			v[v6][nv[v6]++] = m;
		}
		for (int f = 0; f < 2; f++)
			if (nv[f])
				ip_stages(w, s, port, f, v[f], nv[f], true);
	}
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
		ip_stages(w, s, port, 0, v4, n4, false);
	if (n6)
		ip_stages(w, s, port, 1, v6, n6, false);
	refeed(w, s);
}

/* Packets the gateway's kernel sent on port @port's TAP: the outbound policy
 * still applies (transport mode for the gateway's own traffic), then the
 * transforms and output. The TAP has the port's MAC and the kernel resolved
 * the destination itself: what passes in clear leaves unchanged. */
static void from_kernel(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
			struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *v[2][DP_MAX_BURST];
	uint16_t nv[2] = {0, 0};

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		int v6 = eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV6);
		bool ip = v6 || eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV4);

		if (!s->ipsec->active || !ip ||
		    rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN + (v6 ? 40 : 20))
			dp_tx(w, dp.ports[port].eth_id, m);
		else
			v[v6][nv[v6]++] = m;
	}
	for (int v6 = 0; v6 < 2; v6++) {
		if (nv[v6] == 0)
			continue;
		dp_policy_kernel(w, s, port, v6, v[v6], nv[v6]);
		if (w->st.n_grp)
			dp_xform_out(w, s, port, false);
		if (w->st.clear.n)
			dp_output_clear(w, s, port, v6);
	}
}

/* What the kernel sends on a TAP goes out of its port. */
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
		from_kernel(w, s, p, pkts, n);
		total += n;
	}
	return total;
}

/* The ICMP errors queued during the loop (icmp.c), sent as the gateway's own
 * packets: route, outbound SPD (an error may itself be protected), transforms,
 * output. */
static void originate(struct dp_worker *w, const struct dp_snapshot *s)
{
	for (uint16_t i = 0; i < w->n_icmp; i++) {
		struct rte_mbuf *m = w->icmp[i];
		uint16_t port = w->icmp_port[i];
		int v6 = rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type ==
			 RTE_BE16(RTE_ETHER_TYPE_IPV6);

		dp_fwd_originated(w, s, port, m);
		if (w->st.out.n)
			dp_policy_out(w, s, port, v6, true);
		if (w->st.n_grp)
			dp_xform_out(w, s, port, false);
		if (w->st.clear.n)
			dp_output_clear(w, s, port, v6);
	}
	w->n_icmp = 0;
}

uint16_t dp_worker_inject(struct dp_worker *w, struct rte_mbuf **pkts, uint16_t burst)
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

/* The crypto operations finished so far, through their SAs' finish; what
 * inbound SAs decrypted goes through the stages again (against this loop's
 * snapshot), and the ICMP errors that raises are sent at once. Then they
 * are published as finished: nothing of this loop refers to their SAs any
 * more. */
static unsigned int collect(struct dp_worker *w, const struct dp_snapshot *s)
{
	unsigned int work = 0;

	for (unsigned int i = 0; w->inflight && i < CRYPTO_POLLS; i++) {
		uint16_t n = dp_crypto_poll(w, s);

		if (n == 0)
			break;
		work += n;
		refeed(w, s);
		if (w->n_icmp)
			originate(w, s);
	}
	dp_crypto_publish(w);
	return work;
}

unsigned int dp_worker_finish(struct dp_worker *w, const struct dp_snapshot *s)
{
	unsigned int work = 0;

	/* Before the crypto: an error may itself be protected. */
	if (w->n_icmp)
		originate(w, s);
	if (w->inflight)
		work = collect(w, s);
	dp_reasm_tick(w);
	flush(w);
	return work;
}

/* A stopping worker: what is in flight comes back and leaves, for as long as
 * a device may reasonably take; what never does is given up. */
static void drain(struct dp_worker *w)
{
	const struct dp_snapshot *s = __atomic_load_n(&dp.snap, __ATOMIC_ACQUIRE);

	for (unsigned int us = 0; w->inflight && us < CRYPTO_DRAIN_US; us++) {
		if (dp_worker_finish(w, s) == 0)
			rte_delay_us_block(1);
	}
	dp_crypto_abandon(w);
	flush(w);
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

		dp_cap_load(w);
		/* First what the control thread sends, among it the packets it
		 * held for a neighbour now resolved: a packet received after the
		 * resolution must not overtake them. */
		work += dp_worker_inject(w, pkts, burst);
		for (unsigned int q = 0; q < w->n_rxq; q++) {
			uint16_t n =
				rte_eth_rx_burst(w->rxq[q].eth_id, w->rxq[q].queue, pkts, burst);

			if (n) {
				dp_worker_rx(w, s, w->rxq[q].port, pkts, n);
				work += n;
			}
		}
		work += poll_taps(w, s, pkts, burst);
		work += dp_worker_finish(w, s);
		rte_rcu_qsbr_quiescent(dp.rcu, w->id);
		w->loops++;
		/* Operations in flight come back within a device's latency: no
		 * sleep before they do. */
		if (work || w->inflight)
			empty = 0;
		else
			idle(w, &empty);
	}
	drain(w);
	rte_rcu_qsbr_thread_offline(dp.rcu, w->id);
	rte_rcu_qsbr_thread_unregister(dp.rcu, w->id);
	return 0;
}
