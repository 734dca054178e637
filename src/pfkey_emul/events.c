/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Messages the "kernel" originates. ACQUIRE: workers count, per outbound
 * policy, the packets they dropped because the policy requires an SA that
 * does not exist (they never send them in clear); this thread turns a
 * growing count into one ACQUIRE per policy, repeated after acquire_retry_s
 * while no SA arrives, and at most acquire_rate per second overall. EXPIRE:
 * built for the lifetime checks of the control plane. Also the last-use
 * time of each policy (SPDGET's LIFETIME_CURRENT), from its hit counters.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/store.h"
#include "dataplane/dp.h"
#include "dataplane/spd.h"
#include "pfkey_emul/server.h"

struct pol_state {
	uint32_t id;
	uint64_t hits, no_sa; /* counts seen at the last poll */
	uint64_t use_time;    /* epoch seconds */
	uint64_t acquired_ms; /* last ACQUIRE, 0 = none outstanding */
};

static struct {
	unsigned int n, cap;
	struct pol_state *v; /* sorted by id */
	unsigned int n_next, cap_next;
	struct pol_state *next;
	uint32_t seq;
	double tokens;
	uint64_t last_ms;
	uint8_t buf[PFK_REPLY_MAX];
	uint64_t now_ms;
} ev;

static int by_id(const void *a, const void *b)
{
	uint32_t x = ((const struct pol_state *)a)->id, y = ((const struct pol_state *)b)->id;

	return x < y ? -1 : x > y;
}

static struct pol_state *find(uint32_t id)
{
	unsigned int lo = 0, hi = ev.n;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (ev.v[mid].id == id)
			return &ev.v[mid];
		if (ev.v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

uint64_t pfk_events_policy_use(uint32_t id)
{
	const struct pol_state *s = find(id);

	return s ? s->use_time : 0;
}

/* The SA endpoints to negotiate: tunnel endpoints, or the selector's hosts. */
static void endpoints(const struct dps_policy *p, struct dps_addr *src, struct dps_addr *dst)
{
	const struct dps_ipsec_req *r = &p->reqs[p->n_reqs - 1];

	for (unsigned int i = 0; i < p->n_reqs; i++)
		if (p->reqs[i].mode == DPS_MODE_TUNNEL)
			r = &p->reqs[i];
	if (r->mode == DPS_MODE_TUNNEL) {
		*src = r->tun_src;
		*dst = r->tun_dst;
	} else {
		*src = p->sel.src.addr;
		*dst = p->sel.dst.addr;
	}
}

static void acquire(const struct dps_policy *p)
{
	struct dps_addr src, dst;
	uint8_t satype = pfk_proto_satype(p->reqs[p->n_reqs - 1].proto);
	long n;

	endpoints(p, &src, &dst);
	n = pfk_build_acquire(ev.buf, sizeof(ev.buf), ++ev.seq, satype, &src, &dst, p, pfk_algs());
	if (n < 0) {
		DP_LOG(ERR, "pfkey: cannot build ACQUIRE for policy %u", p->id);
		return;
	}
	DP_LOG(INFO, "pfkey: ACQUIRE for policy %u", p->id);
	pfk_send(NULL, ev.buf, (size_t)n, PFK_TO_REGISTERED, satype);
}

static bool wants_acquire(const struct dps_store_policy *e, struct pol_state *s, uint64_t no_sa)
{
	const struct dps_policy *p = &e->p;
	uint64_t retry = pfk_cfg()->acquire_retry_s * 1000ull;

	if (no_sa == s->no_sa || p->dir != DPS_DIR_OUT || p->n_reqs == 0)
		return false;
	if (s->acquired_ms && ev.now_ms - s->acquired_ms < retry)
		return false;
	return pfk_registered(pfk_proto_satype(p->reqs[p->n_reqs - 1].proto));
}

static int visit(const struct dps_store_policy *e, void *arg)
{
	struct pol_state *s, *old;
	uint64_t hits = 0, no_sa = dps_store_policy_no_sa(e);

	(void)arg;
	for (unsigned int w = 0; w < dp.n_workers; w++)
		hits += e->hits[w].n;
	old = find(e->p.id);
	if (ev.n_next == ev.cap_next) {
		unsigned int cap = ev.cap_next ? ev.cap_next * 2 : 256;
		void *v = realloc(ev.next, cap * sizeof(*ev.next));

		if (v == NULL)
			return 1;
		ev.next = v;
		ev.cap_next = cap;
	}
	s = &ev.next[ev.n_next++];
	/* a policy first seen: its counters started at 0 when it was made, so
	 * packets it dropped before this poll ask for an SA too */
	*s = old ? *old : (struct pol_state){.id = e->p.id};
	if (hits != s->hits)
		s->use_time = (uint64_t)time(NULL);
	s->hits = hits;
	if (no_sa == s->no_sa && s->acquired_ms &&
	    ev.now_ms - s->acquired_ms >= pfk_cfg()->acquire_retry_s * 1000ull)
		s->acquired_ms = 0; /* quiet for a whole retry period: answered */
	if (wants_acquire(e, s, no_sa) && ev.tokens >= 1) {
		ev.tokens -= 1;
		s->acquired_ms = ev.now_ms;
		acquire(&e->p);
	}
	s->no_sa = no_sa;
	return 0;
}

void pfk_events_poll(uint64_t now_ms)
{
	double rate = pfk_cfg()->acquire_rate;
	struct pol_state *t;

	ev.now_ms = now_ms;
	if (ev.last_ms)
		ev.tokens += rate * (double)(now_ms - ev.last_ms) / 1000.0;
	else
		ev.tokens = rate;
	if (ev.tokens > rate)
		ev.tokens = rate;
	ev.last_ms = now_ms;
	ev.n_next = 0;
	dps_store_walk_policies(visit, NULL);
	qsort(ev.next, ev.n_next, sizeof(*ev.next), by_id);
	/* swap: deleted policies are gone from the new list */
	t = ev.v;
	ev.v = ev.next;
	ev.next = t;
	ev.n = ev.n_next;
	unsigned int c = ev.cap;

	ev.cap = ev.cap_next;
	ev.cap_next = c;
}

void pfk_events_expire(const struct dps_store_sa *s, int hard)
{
	uint8_t satype = pfk_proto_satype(s->cfg.proto);
	struct pfk_sa_state st;
	long n;

	pfk_sa_state(s, &st);
	n = pfk_build_expire(ev.buf, sizeof(ev.buf), ++ev.seq, &s->cfg, &st, hard);
	if (n > 0)
		pfk_send(NULL, ev.buf, (size_t)n, PFK_TO_REGISTERED, satype);
}
