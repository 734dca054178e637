/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dataplane lifecycle: build every object the workers use from the
 * configuration, launch the workers, and serve them from the control thread.
 */
#include <stdlib.h>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "dataplane/capture.h"
#include "dataplane/dp.h"
#include "dataplane/frag.h"
#include "dataplane/neigh.h"
#include "dataplane/polog.h"
#include "dataplane/port.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker.h"

#define CTRL_RING_SIZE	 4096
#define INJECT_RING_SIZE 2048
#define CTRL_BURST	 64
#define NEIGH_TIMER_MS	 100

struct dp dp;
int dp_logtype = RTE_LOGTYPE_USER1;
int dps_logtype_pfkey = RTE_LOGTYPE_USER1;
int dps_logtype_store = RTE_LOGTYPE_USER1;

const char *const dp_counter_names[DP_CNT_MAX] = {
#define DP_CNT_NAME(name, help) #name,
	DP_COUNTERS(DP_CNT_NAME)
#undef DP_CNT_NAME
};

uint64_t dp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int pool_create(const struct dps_config *cfg)
{
	unsigned int max_mtu = 0;

	for (unsigned int i = 0; i < cfg->n_ports; i++)
		max_mtu = RTE_MAX(max_mtu, (unsigned int)cfg->ports[i].mtu);
	/* One segment per frame, whatever the MTU, with room for IPsec headers later. */
	uint16_t room = RTE_PKTMBUF_HEADROOM +
			RTE_MAX(2048u, RTE_ALIGN_CEIL(max_mtu + RTE_ETHER_HDR_LEN + 128, 64));

	dp.pool = rte_pktmbuf_pool_create("dps_pkt", cfg->dataplane.mbufs, 256,
					  RTE_ALIGN(sizeof(struct dp_meta), RTE_MBUF_PRIV_ALIGN),
					  room, SOCKET_ID_ANY);
	if (dp.pool == NULL)
		DP_LOG(ERR, "cannot create a pool of %u mbufs: %s", cfg->dataplane.mbufs,
		       rte_strerror(rte_errno));
	return dp.pool == NULL ? -1 : 0;
}

static int rcu_create(void)
{
	size_t sz = rte_rcu_qsbr_get_memsize(dp.n_workers);

	dp.rcu = rte_zmalloc("dps_rcu", sz, RTE_CACHE_LINE_SIZE);
	if (dp.rcu == NULL || rte_rcu_qsbr_init(dp.rcu, dp.n_workers) != 0) {
		DP_LOG(ERR, "cannot create the RCU variable");
		return -1;
	}
	return 0;
}

static int workers_create(const struct dps_config *cfg)
{
	char name[RTE_RING_NAMESIZE];

	dp.n_workers = cfg->n_workers;
	for (unsigned int i = 0; i < cfg->n_workers; i++) {
		struct dp_worker *w = &dp.workers[i];
		const struct dps_worker_cfg *wc = &cfg->workers[i];

		w->id = i;
		w->lcore = wc->lcore;
		if (!rte_lcore_is_enabled(wc->lcore) || wc->lcore == rte_get_main_lcore()) {
			DP_LOG(ERR, "worker %u: lcore %u is not an enabled worker lcore", i,
			       wc->lcore);
			return -1;
		}
		snprintf(name, sizeof(name), "dps_inject%u", i);
		w->inject = rte_ring_create(name, INJECT_RING_SIZE, SOCKET_ID_ANY,
					    RING_F_SP_ENQ | RING_F_SC_DEQ);
		w->cnt = rte_zmalloc(NULL, sizeof(*w->cnt) * DPS_MAX_PORTS, RTE_CACHE_LINE_SIZE);
		w->tx = rte_zmalloc(NULL, sizeof(*w->tx) * RTE_MAX_ETHPORTS, RTE_CACHE_LINE_SIZE);
		if (w->inject == NULL || w->cnt == NULL || w->tx == NULL)
			return -1;
	}
	dp.ctrl = rte_ring_create("dps_ctrl", CTRL_RING_SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
	return dp.ctrl == NULL ? -1 : 0;
}

/* Resolve the configured (port, queue) pairs to ethdev ids now that ports exist. */
static void workers_bind_queues(const struct dps_config *cfg)
{
	for (unsigned int i = 0; i < cfg->n_workers; i++) {
		struct dp_worker *w = &dp.workers[i];

		w->n_rxq = cfg->workers[i].n_rxq;
		for (unsigned int q = 0; q < w->n_rxq; q++) {
			w->rxq[q].port = cfg->workers[i].rxq[q].port;
			w->rxq[q].queue = cfg->workers[i].rxq[q].queue;
			w->rxq[q].eth_id = dp.ports[w->rxq[q].port].eth_id;
		}
	}
}

int dp_init(const struct dps_config *cfg)
{
	dp.cfg = cfg;
	memset(dp.port_of_eth, -1, sizeof(dp.port_of_eth));
	if (pool_create(cfg) < 0 || workers_create(cfg) < 0 || rcu_create() < 0 ||
	    dp_frag_init(cfg) < 0)
		return -1;
	dp.n_ports = cfg->n_ports;
	for (uint16_t i = 0; i < cfg->n_ports; i++) {
		if (dp_port_setup(i) < 0)
			return -1;
	}
	workers_bind_queues(cfg);
	if (dp_polog_init(cfg->ipsec.policy_log_interval_ms) < 0 || dp_cap_init() < 0)
		return -1;
	dp.neigh = dp_neigh_create(&cfg->neigh);
	if (dp.neigh == NULL)
		return -1;
	for (unsigned int i = 0; i < cfg->n_neighs; i++) {
		const struct dps_neigh_cfg *n = &cfg->neighs[i];

		if (dp_neigh_add_static(dp.neigh, n->port, &n->addr, n->mac) < 0)
			return -1;
	}
	dp.snap = dp_snapshot_build(cfg);
	return dp.snap == NULL ? -1 : 0;
}

int dp_start(void)
{
	for (uint16_t i = 0; i < dp.n_ports; i++) {
		if (dp_port_start(i) < 0)
			return -1;
	}
	for (unsigned int i = 0; i < dp.n_workers; i++) {
		if (rte_eal_remote_launch(dp_worker_main, &dp.workers[i], dp.workers[i].lcore) !=
		    0) {
			DP_LOG(ERR, "cannot launch worker %u on lcore %u", i, dp.workers[i].lcore);
			return -1;
		}
	}
	return 0;
}

void dp_halt(void)
{
	__atomic_store_n(&dp.quit, true, __ATOMIC_RELAXED);
	rte_eal_mp_wait_lcore();
}

void dp_stop(void)
{
	dp_halt();
	for (unsigned int i = 0; i < dp.n_workers; i++) {
		struct dp_worker *w = &dp.workers[i];
		struct rte_mbuf *m;

		while (w->inject != NULL && rte_ring_dequeue(w->inject, (void **)&m) == 0)
			rte_pktmbuf_free(m);
		for (unsigned int e = 0; w->tx != NULL && e < RTE_MAX_ETHPORTS; e++)
			rte_pktmbuf_free_bulk(w->tx[e].pkts, w->tx[e].n);
		rte_ring_free(w->inject);
		rte_free(w->cnt);
		rte_free(w->tx);
	}
	if (dp.ctrl != NULL) {
		struct rte_mbuf *m;

		while (rte_ring_dequeue(dp.ctrl, (void **)&m) == 0)
			rte_pktmbuf_free(m);
		rte_ring_free(dp.ctrl);
	}
	dp_polog_fini();
	dp_cap_fini();
	dp_neigh_destroy(dp.neigh);
	for (uint16_t i = 0; i < dp.n_ports; i++)
		dp_port_close(i);
	dp_snapshot_free(dp.snap);
	dp_frag_fini(); /* holds mbufs of dp.pool */
	rte_free(dp.rcu);
	rte_mempool_free(dp.pool);
	memset(&dp, 0, sizeof(dp));
}

void dp_inject(struct rte_mbuf *m, uint16_t eth_id)
{
	/* Worker 0 transmits for the control thread: it has a tx queue on every port. */
	m->port = eth_id;
	if (rte_ring_sp_enqueue(dp.workers[0].inject, m) != 0) {
		dp_ctl_count(dp.port_of_eth[eth_id], DP_CNT_drop_ctrl_full, 1);
		rte_pktmbuf_free(m);
	}
}

void dp_control_poll(void)
{
	static uint64_t next_timer;
	struct rte_mbuf *pkts[CTRL_BURST];
	unsigned int n = rte_ring_sc_dequeue_burst(dp.ctrl, (void **)pkts, CTRL_BURST, NULL);
	uint64_t now;

	for (unsigned int i = 0; i < n; i++) {
		switch (dp_meta(pkts[i])->kind) {
		case DP_CTRL_ARP:
			dp_neigh_input_arp(dp.neigh, pkts[i]);
			break;
		case DP_CTRL_ND:
			dp_neigh_input_nd(dp.neigh, pkts[i]);
			break;
		case DP_CTRL_RESOLVE:
			dp_neigh_resolve(dp.neigh, pkts[i]);
			break;
		default:
			rte_pktmbuf_free(pkts[i]);
		}
	}
	now = dp_now_ms();
	dp_polog_drain(now);
	dp_cap_poll();
	if (now >= next_timer) {
		dp_neigh_timer(dp.neigh, now);
		next_timer = now + NEIGH_TIMER_MS;
	}
}

static void counters_add(struct dp_counters *out, const struct dp_counters *in)
{
	for (unsigned int c = 0; c < DP_CNT_MAX; c++)
		out->v[c] += __atomic_load_n(&in->v[c], __ATOMIC_RELAXED);
}

void dp_port_counters(unsigned int port, struct dp_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int w = 0; w < dp.n_workers; w++)
		counters_add(out, &dp.workers[w].cnt[port]);
	counters_add(out, &dp.ctl_cnt[port]);
}

void dp_worker_counters(unsigned int w, struct dp_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int p = 0; p < dp.n_ports; p++)
		counters_add(out, &dp.workers[w].cnt[p]);
}
