/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The policy-failure log: the workers' records (polog.h) through one MP/SC
 * ring of fixed-size elements, formatted and logged by the control thread.
 */
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dataplane/polog.h"
#include "dataplane/sa.h"
#include "dataplane/spd.h"

#define POLOG_RING_SIZE 256
#define POLOG_BURST	32

static struct {
	struct rte_ring *ring;
	uint32_t interval_ms;
	uint64_t last_ms; /* when the last record was logged */
	bool logged;	  /* any record logged yet */
	uint64_t pending; /* drops not logged since the last record */
	bool held;	  /* @hold waits for the interval to end */
	struct dp_polog_rec hold;
} polog;

int dp_polog_init(uint32_t interval_ms)
{
	uint64_t cycles = (uint64_t)interval_ms * rte_get_tsc_hz() / 1000;

	polog.interval_ms = interval_ms;
	if (interval_ms == 0)
		return 0;
	polog.ring = rte_ring_create_elem("dps_polog", sizeof(struct dp_polog_rec), POLOG_RING_SIZE,
					  SOCKET_ID_ANY, RING_F_SC_DEQ);
	if (polog.ring == NULL) {
		DP_LOG(ERR, "policy log ring: %s", rte_strerror(rte_errno));
		return -1;
	}
	for (unsigned int i = 0; i < dp.n_workers; i++)
		dp.workers[i].polog_cycles = cycles ? cycles : 1;
	return 0;
}

void dp_polog_fini(void)
{
	rte_ring_free(polog.ring);
	memset(&polog, 0, sizeof(polog));
}

static void rec_common(struct dp_polog_rec *r, struct dp_worker *w, uint16_t port,
		       enum dp_polog_reason reason, const struct dp_sa *sa, uint64_t now)
{
	r->reason = reason;
	r->port = port;
	r->worker = (uint8_t)w->id;
	r->sa_id = sa != NULL ? sa->id : DP_POLOG_NONE;
	r->suppressed = w->polog_supp;
	w->polog_supp = 0;
	w->polog_next = now + w->polog_cycles;
}

static void rec_send(struct dp_worker *w, struct dp_polog_rec *r)
{
	if (rte_ring_mp_enqueue_elem(polog.ring, r, sizeof(*r)) != 0)
		w->polog_supp += 1 + r->suppressed;
}

void dp_polog_note(struct dp_worker *w, uint16_t port, struct rte_mbuf *m,
		   enum dp_polog_reason reason, const struct dp_policy *p, const struct dp_sa *sa,
		   uint64_t now)
{
	struct dp_polog_rec r = {0};
	uint32_t len = rte_pktmbuf_data_len(m);

	rec_common(&r, w, port, reason, sa, now);
	r.policy_id = p != NULL ? p->id : DP_POLOG_NONE;
	if (len > RTE_ETHER_HDR_LEN)
		dp_polog_decode(&r, rte_pktmbuf_mtod_offset(m, const uint8_t *, RTE_ETHER_HDR_LEN),
				len - RTE_ETHER_HDR_LEN);
	rec_send(w, &r);
}

void dp_polog_note_sa(struct dp_worker *w, struct rte_mbuf *m, enum dp_polog_reason reason,
		      const struct dp_sa *sa, uint64_t now)
{
	struct dp_polog_rec r = {0};
	int8_t port = m->port < RTE_MAX_ETHPORTS ? dp.port_of_eth[m->port] : -1;

	rec_common(&r, w, port < 0 ? DP_NO_PORT : (uint16_t)port, reason, sa, now);
	r.family = sa->cfg.src.family;
	r.proto = sa->cfg.proto == DPS_PROTO_AH	      ? IPPROTO_AH
		  : sa->cfg.proto == DPS_PROTO_IPCOMP ? IPPROTO_COMP
						      : IPPROTO_ESP;
	memcpy(r.src, &sa->cfg.src.v6, r.family == AF_INET6 ? 16 : 4);
	memcpy(r.dst, &sa->cfg.dst.v6, r.family == AF_INET6 ? 16 : 4);
	r.spi = sa->cfg.spi;
	r.has_spi = 1;
	rec_send(w, &r);
}

static void emit(const struct dp_polog_rec *r, uint64_t suppressed, uint64_t now_ms)
{
	const char *pname = r->port < dp.n_ports ? dp.ports[r->port].cfg->name : NULL;
	char line[256];

	dp_polog_format(r, suppressed, pname, line, sizeof(line));
	DP_LOG(WARNING, "policy-fail: %s", line);
	polog.logged = true;
	polog.last_ms = now_ms;
	polog.pending = 0;
}

/*
 * Workers send at most one record per interval each; the first that arrives
 * inside the interval is held and logged as soon as the interval ends, so
 * that the two limits in series do not make the period up to twice as long.
 */
void dp_polog_drain(uint64_t now_ms)
{
	struct dp_polog_rec recs[POLOG_BURST];
	unsigned int n;

	if (polog.ring == NULL)
		return;
	if (polog.held && now_ms - polog.last_ms >= polog.interval_ms) {
		emit(&polog.hold, polog.pending, now_ms);
		polog.held = false;
	}
	n = rte_ring_sc_dequeue_burst_elem(polog.ring, recs, sizeof(recs[0]), POLOG_BURST, NULL);
	for (unsigned int i = 0; i < n; i++) {
		const struct dp_polog_rec *r = &recs[i];

		if (!polog.logged || now_ms - polog.last_ms >= polog.interval_ms) {
			emit(r, polog.pending + r->suppressed, now_ms);
		} else if (!polog.held) {
			polog.hold = *r;
			polog.held = true;
			polog.pending += r->suppressed;
		} else {
			polog.pending += 1 + r->suppressed;
		}
	}
}
