/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Messages the "kernel" originates. ACQUIRE: workers count, per outbound
 * policy, the packets they dropped because the policy requires an SA that
 * does not exist (they never send them in clear); this thread turns a
 * growing count into one ACQUIRE per policy, repeated after acquire_retry_s
 * while no SA arrives, and at most acquire_rate per second overall. EXPIRE:
 * built for the lifetime checks of the control plane. Also the last-use
 * time of each policy (SPDGET's LIFETIME_CURRENT), from its hit counters.
 * X_NAT_T_NEW_MAPPING: workers note, per inbound ESP-in-UDP SA, an
 * authenticated packet from a new peer address or port (esp_in.c); this
 * thread sends one message per SA and new mapping to registered clients.
 */
#define DP_LOG_TYPE dps_logtype_pfkey /* common/log.h */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "control/store.h"
#include "dataplane/dp.h"
#include "dataplane/sa.h"
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

/* One worker's report, read under its seqlock; false while it is being written or if none. */
static bool nat_report(const struct dp_sa_counters *c, uint8_t src[16], uint16_t *sport,
		       uint64_t *ms)
{
	uint32_t s1 = __atomic_load_n(&c->nat_seq, __ATOMIC_ACQUIRE);

	if (s1 == 0 || (s1 & 1))
		return false;
	memcpy(src, c->nat_src, 16);
	*sport = c->nat_sport;
	*ms = c->nat_ms;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&c->nat_seq, __ATOMIC_RELAXED) == s1;
}

static int nat_visit(const struct dps_store_sa *e, void *arg)
{
	const struct dps_sa *sa = &e->cfg;
	struct dp_sa *d = e->dp;
	uint8_t src[16], best_src[16];
	uint16_t sport, best_sport = 0;
	uint64_t sum = 0, ms, best_ms = 0;
	struct dps_addr a;
	bool found = false;
	long n;

	(void)arg;
	if (e->origin != DPS_ORIGIN_PFKEY || sa->dir != DPS_DIR_IN || !sa->udp_encap)
		return 0;
	for (unsigned int w = 0; w < dp.n_workers; w++)
		sum += __atomic_load_n(&d->cnt[w].nat_seq, __ATOMIC_ACQUIRE);
	if (sum == d->nat_seen)
		return 0;
	/* The newest complete report; one being written is taken at the next poll. */
	for (unsigned int w = 0; w < dp.n_workers; w++) {
		if (!nat_report(&d->cnt[w], src, &sport, &ms)) {
			if (__atomic_load_n(&d->cnt[w].nat_seq, __ATOMIC_RELAXED) & 1)
				return 0;
			continue;
		}
		if (!found || ms > best_ms) {
			memcpy(best_src, src, sizeof(src));
			best_sport = sport;
			best_ms = ms;
			found = true;
		}
	}
	d->nat_seen = sum;
	if (!found || (best_sport == d->nat_sent_sport &&
		       memcmp(best_src, d->nat_sent_src, sizeof(best_src)) == 0))
		return 0; /* the change already sent (another worker saw it too) */
	memcpy(d->nat_sent_src, best_src, sizeof(best_src));
	d->nat_sent_sport = best_sport;
	memset(&a, 0, sizeof(a));
	a.family = sa->src.family;
	memcpy(a.family == AF_INET ? (void *)&a.v4 : (void *)&a.v6, best_src,
	       a.family == AF_INET ? 4 : 16);
	if (!pfk_registered(SADB_SATYPE_ESP))
		return 0;
	n = pfk_build_new_mapping(ev.buf, sizeof(ev.buf), ++ev.seq, sa, &a, best_sport);
	if (n < 0) {
		DP_LOG(ERR, "pfkey: cannot build NEW_MAPPING for SA 0x%x", sa->spi);
		return 0;
	}
	DP_LOG(INFO, "pfkey: NAT mapping of SA 0x%x changed: port %u -> %u", sa->spi,
	       sa->encap_sport, best_sport);
	pfk_send(NULL, ev.buf, (size_t)n, PFK_TO_REGISTERED, SADB_SATYPE_ESP);
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
	dps_store_scan_sas(nat_visit, NULL);
	dps_store_scan_policies(visit, NULL);
	if (ev.n_next) /* qsort's base may not be NULL, even for no element */
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

/*
 * A configuration reload's change, sent to every socket with pid and seq 0:
 * Linux broadcasts so the SAs and policies changed through netlink (ip xfrm),
 * and monitors (dpsecctl monitor, PROMISC sockets) see them. Key daemons
 * ignore what they did not ask for.
 */
void pfk_events_config(const struct dps_sa *sa, const struct dps_policy *pol, bool added)
{
	struct sadb_msg h = {.sadb_msg_version = PF_KEY_V2};
	long n;

	if (sa != NULL) {
		struct pfk_sa_state st = {.state = added ? SADB_SASTATE_MATURE : SADB_SASTATE_DEAD};

		h.sadb_msg_type = added ? SADB_ADD : SADB_DELETE;
		h.sadb_msg_satype = pfk_proto_satype(sa->proto);
		n = pfk_build_sa(ev.buf, sizeof(ev.buf), &h, sa, &st, false);
	} else {
		h.sadb_msg_type = added ? SADB_X_SPDADD : SADB_X_SPDDELETE;
		n = pfk_build_policy(ev.buf, sizeof(ev.buf), &h, pol, (uint64_t)time(NULL), 0);
	}
	if (n > 0)
		pfk_send(NULL, ev.buf, (size_t)n, PFK_TO_ALL, h.sadb_msg_satype);
	else
		DP_LOG(ERR, "pfkey: cannot build the notification of a reloaded %s",
		       sa != NULL ? "SA" : "policy");
}
