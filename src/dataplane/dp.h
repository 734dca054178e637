/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane instance: ports, workers, rings between workers and the
 * control thread, and the RCU-published snapshot the workers read.
 */
#ifndef DP_DP_H
#define DP_DP_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "common/log.h"
#include "control/config.h"
#include "dataplane/counters.h"
#include "dataplane/stage.h"

#define DP_NO_PORT    UINT16_MAX
#define DP_ICMP_QUEUE 32 /* ICMP errors one worker may queue in one loop */
#define DP_VIA_MAX    3	 /* SAs one packet may come through inbound: DP_BUNDLE_MAX (sa.h) */

struct dp_snapshot;
struct dp_sa;
struct dp_cap_spec;
struct dp_neigh_table;
struct rte_ip_frag_tbl;
struct rte_ip_frag_death_row;
struct dp_snapshot;
struct dp_nexthop;
struct dp_neigh;
struct dp_crypto_hold;

/* Why a packet travels from a worker to the control thread. */
enum dp_ctrl_kind {
	DP_CTRL_ARP,	 /* ARP frame received on in_port */
	DP_CTRL_ND,	 /* ICMPv6 neighbour discovery received on in_port */
	DP_CTRL_RESOLVE, /* routed packet waiting for nh on out_port */
};

/* Per-packet metadata, in the mbuf private area. */
struct dp_meta {
	uint8_t kind;	   /* enum dp_ctrl_kind */
	uint8_t df;	   /* outbound ESP: inner DF bit, for dfbit=copy */
	uint8_t outer_ecn; /* inbound ESP: ECN field of the outer header */
	uint16_t out_port; /* dataplane port index */
	/* Between an SA's prepare and finish, and waiting for a next hop after
	 * the transforms: never both, and the area stays 40 bytes. */
	union {
		struct {
			uint32_t pre_len; /* ESP: length before lib/ipsec processing */
			uint32_t esp_seq; /* inbound ESP: the sequence number, host order */
			/* Inbound ESP-in-UDP, for NAT mapping changes (esp_in.c): the
			 * outer UDP source port (0: not encapsulated) and where the
			 * outer source address is, from buf_addr (tunnel mode: lib/ipsec
			 * only moves data_off past the outer header). */
			uint16_t natt_sport;
			uint16_t natt_src_off;
			/* AH (ah.c): where its header starts, from the IP header */
			uint16_t ah_off;
		};
		struct dps_addr nh; /* next hop to resolve */
	};
	struct dp_sa *via; /* decrypted: the inbound SA (RFC 4301 §5.2 check) */
	/* Decrypted by a bundle: the SAs before @via, outermost first, and how
	 * many SAs in all (set 0 when a packet from the wire enters the IPsec
	 * stage). */
	uint8_t n_via;
	struct dp_sa *via_prev[DP_VIA_MAX - 1];
};

/* Record that inbound SA @sa decrypted @m (after the SAs recorded before). */
static inline void dp_meta_via_push(struct dp_meta *mt, struct dp_sa *sa)
{
	if (mt->n_via)
		mt->via_prev[mt->n_via - 1] = mt->via;
	mt->via = sa;
	mt->n_via++;
}

static inline struct dp_meta *dp_meta(struct rte_mbuf *m)
{
	return rte_mbuf_to_priv(m);
}

struct dp_port {
	uint16_t eth_id; /* ethdev port id of the device */
	uint16_t tap_id; /* ethdev port id of the exception TAP, or DP_NO_PORT */
	uint16_t mtu;
	uint16_t nb_rxq;
	bool tx_multiseg; /* the device sends chained mbufs (fragments, frag.c) */
	struct rte_ether_addr mac;
	struct in6_addr ll6; /* link-local address derived from mac */
	const struct dps_port_cfg *cfg;
};

/* A worker's transmit staging for one ethdev port. */
struct dp_txbuf {
	uint16_t n;
	struct rte_mbuf *pkts[DP_MAX_BURST];
};

struct dp_worker {
	unsigned int id;
	unsigned int lcore;
	struct rte_ring *inject; /* control -> worker: ready-to-send frames, m->port = ethdev id */
	unsigned int n_rxq;
	struct {
		uint16_t port; /* dataplane port index */
		uint16_t eth_id;
		uint16_t queue;
	} rxq[DPS_MAX_WORKER_RXQ];
	uint64_t idle_sleeps;
	uint64_t loops;
	uint16_t ip_id;		 /* IPv4 identification of the outer headers IPComp adds */
	uint32_t inflight;	 /* crypto operations enqueued, not yet dequeued */
	struct dp_counters *cnt; /* [n_ports], written by this worker only */
	struct dp_txbuf *tx;	 /* [RTE_MAX_ETHPORTS] staging, by ethdev id */
	/* ICMP errors (icmp.c): a token bucket in TSC cycles, and this loop's queue */
	uint64_t icmp_cost;
	uint64_t icmp_tokens;
	uint64_t icmp_last;
	uint16_t n_icmp;
	uint16_t icmp_port[DP_ICMP_QUEUE];
	struct rte_mbuf *icmp[DP_ICMP_QUEUE];
	/* reassembly of fragments for the gateway (frag.c) */
	struct rte_ip_frag_tbl *reasm;
	struct rte_ip_frag_death_row *death_row;
	/* the sub-bursts between the stages of the packet path (stage.h) */
	struct dp_stages st;
	/* The native crypto engine (imb.c): this worker's intel-ipsec-mb
	 * manager and AH's hash jobs, reused each burst */
	struct IMB_MGR *imb;
	struct IMB_JOB *imb_job;
	/* Operator features, after everything the packet path reads (so that
	 * they move none of it): */
	/* The policy-failure log (polog.h): TSC cycles between records (0: off),
	 * when the next may go, drops not recorded since the last */
	uint64_t polog_cycles;
	uint64_t polog_next;
	uint64_t polog_supp;
	/* The armed capture (capture.h), loaded once per loop: NULL, none */
	const struct dp_cap_spec *cap;
	uint32_t cap_gen;
	uint64_t cap_tokens;
	uint64_t cap_last;
	uint64_t cap_skipped; /* only ever grows; the control thread takes differences */
	/* The queue path (crypto.c), per device: operations enqueued on this
	 * worker's queue pair, operations finished, and `done`, the finished
	 * count published at the end of the loop that took their packets through
	 * every stage; all only grow. The control thread frees an SA only once
	 * `done` has reached what `enq` was after the grace period
	 * (dp_crypto_settle): operations stay in flight across loops. */
	uint64_t cq_enq[DPS_MAX_CRYPTODEVS] __rte_cache_aligned;
	uint64_t cq_fin[DPS_MAX_CRYPTODEVS];
	uint64_t cq_done[DPS_MAX_CRYPTODEVS];
	struct dp_crypto_hold *hold; /* [devices], with crypto.queue_latency_us */
} __rte_cache_aligned;

struct dp {
	const struct dps_config *cfg;
	struct rte_mempool *pool;
	unsigned int n_ports;
	struct dp_port ports[DPS_MAX_PORTS];
	int8_t port_of_eth[RTE_MAX_ETHPORTS]; /* ethdev id -> port index, -1 */
	unsigned int n_workers;
	struct dp_worker workers[DPS_MAX_WORKERS];
	struct rte_ring *ctrl; /* workers -> control (MP/SC) */
	struct rte_rcu_qsbr *rcu;
	struct dp_snapshot *snap; /* current snapshot, read by workers */
	struct dp_neigh_table *neigh;
	struct dp_counters ctl_cnt[DPS_MAX_PORTS]; /* written by the control thread only */
	bool eth_is_tap[RTE_MAX_ETHPORTS];
	volatile bool quit;
};

extern struct dp dp;

/** Set up pool, ports, TAPs, rings, RCU, neighbour table and the first snapshot. */
int dp_init(const struct dps_config *cfg);

/** Start ports and launch the workers on their lcores. */
int dp_start(void);

/** Stop the workers and wait for them (idempotent). */
void dp_halt(void);

/** Stop workers, stop and close ports, free everything dp_init() made. */
void dp_stop(void);

/** One pass of the control thread's dataplane duties (ctrl ring, neighbour timers). */
void dp_control_poll(void);

/** Hand a frame to a worker for transmission on ethdev @eth_id (control thread only). */
void dp_inject(struct rte_mbuf *m, uint16_t eth_id);

/** Sum of every worker's counters for port @port into @out. */
void dp_port_counters(unsigned int port, struct dp_counters *out);

/** Sum of worker @w's counters over all ports into @out. */
void dp_worker_counters(unsigned int w, struct dp_counters *out);

/** Count @n on port @port from the control thread. */
static inline void dp_ctl_count(uint16_t port, enum dp_counter c, uint64_t n)
{
	if (port < DPS_MAX_PORTS)
		dp.ctl_cnt[port].v[c] += n;
}

#endif
