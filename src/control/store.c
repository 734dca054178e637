/* SPDX-License-Identifier: BSD-3-Clause */
#define DP_LOG_TYPE dps_logtype_store /* common/log.h */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "control/pos_index.h"
#include "control/store.h"
#include "control/store_state.h"
#include "control/wipe.h"
#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/sad.h"
#include "dataplane/snapshot.h"
#include "dataplane/spd.h"

struct dps_store_state dps_store = {
	.lock = PTHREAD_MUTEX_INITIALIZER, .in_changed = true, .sad_rebuild = true};

/*
 * The policies' hit counters (a cache line per worker) come from slabs of
 * hugepage memory: as rte_malloc elements of their own each paid a 64-byte
 * header, as much again as the counters of one worker. A freed one is
 * reused; the slabs go at dps_store_fini.
 */
#define HITS_SLAB (64 * 1024)

_Static_assert(sizeof(struct dp_hits) * DPS_MAX_WORKERS <= HITS_SLAB, "a slab holds counters");

static struct {
	pthread_mutex_t lock;
	void *free; /* a list through each free one's first word */
	unsigned int n, cap;
	void **slab;
} hits_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct dp_hits *hits_alloc(void)
{
	size_t sz = sizeof(struct dp_hits) * dp.n_workers;
	void *h = NULL;

	pthread_mutex_lock(&hits_pool.lock);
	if (hits_pool.free == NULL && hits_pool.n == hits_pool.cap) {
		unsigned int cap = hits_pool.cap ? hits_pool.cap * 2 : 16;
		void **v = realloc(hits_pool.slab, cap * sizeof(*v));

		if (v == NULL)
			goto out;
		hits_pool.slab = v;
		hits_pool.cap = cap;
	}
	if (hits_pool.free == NULL) {
		uint8_t *slab = rte_malloc("dps_hits", HITS_SLAB, RTE_CACHE_LINE_SIZE);

		if (slab == NULL)
			goto out;
		hits_pool.slab[hits_pool.n++] = slab;
		for (size_t off = HITS_SLAB / sz * sz; off >= sz; off -= sz) {
			*(void **)(slab + off - sz) = hits_pool.free;
			hits_pool.free = slab + off - sz;
		}
	}
	h = hits_pool.free;
	hits_pool.free = *(void **)h;
	memset(h, 0, sz);
out:
	pthread_mutex_unlock(&hits_pool.lock);
	return h;
}

void dps_hits_free(struct dp_hits *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&hits_pool.lock);
	*(void **)h = hits_pool.free;
	hits_pool.free = h;
	pthread_mutex_unlock(&hits_pool.lock);
}

static void hits_pool_fini(void)
{
	for (unsigned int i = 0; i < hits_pool.n; i++)
		rte_free(hits_pool.slab[i]);
	free(hits_pool.slab);
	hits_pool.slab = NULL;
	hits_pool.free = NULL;
	hits_pool.n = hits_pool.cap = 0;
}

static int grow(void **v, unsigned int *cap, unsigned int n, size_t elt)
{
	void *p;

	if (n < *cap)
		return 0;
	/* st.sas holds keys: the old array must not stay behind in freed memory */
	p = dps_realloc_wiped(*v, *cap * elt, (*cap ? *cap * 2 : 64) * elt);
	if (p == NULL)
		return -ENOMEM;
	*v = p;
	*cap = *cap ? *cap * 2 : 64;
	return 0;
}

/* Under the lock: the per-protocol totals read the dead list (ipsec_stats.c). */
static int bury(struct dp_sa *sa)
{
	int rc = 0;

	if (sa == NULL)
		return 0;
	dps_spd_sa_gone(sa);
	pthread_mutex_lock(&dps_store.lock);
	if (grow((void **)&dps_store.dead, &dps_store.cap_dead, dps_store.n_dead,
		 sizeof(*dps_store.dead)) < 0)
		rc = -ENOMEM;
	else
		dps_store.dead[dps_store.n_dead++] = sa;
	pthread_mutex_unlock(&dps_store.lock);
	return rc;
}

/* Remember an inbound SA's change for the live tables; if memory is short,
 * the next commit builds them whole. */
static void sad_op(bool add, struct dp_sa *sa)
{
	if (dps_store.sad_rebuild)
		return;
	if (grow((void **)&dps_store.sad_ops, &dps_store.cap_sad_ops, dps_store.n_sad_ops,
		 sizeof(*dps_store.sad_ops)) < 0) {
		dps_store.sad_rebuild = true;
		return;
	}
	dps_store.sad_ops[dps_store.n_sad_ops++] = (struct dp_sad_op){.add = add, .sa = sa};
}

unsigned int dps_out_sa_first(uint32_t reqid)
{
	unsigned int lo = 0, hi = dps_store.n_out_reqid;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (dps_store.out_reqid[mid].reqid < reqid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void out_reqid_change(const struct dps_sa *c, bool add)
{
	struct dps_out_key k = {.reqid = c->reqid, .spi = c->spi, .proto = c->proto, .dst = c->dst};
	unsigned int i;

	if (c->dir != DPS_DIR_OUT || c->reqid == 0 || dps_store.out_reqid_bad)
		return;
	i = dps_out_sa_first(c->reqid);
	if (add) {
		if (grow((void **)&dps_store.out_reqid, &dps_store.cap_out_reqid,
			 dps_store.n_out_reqid, sizeof(*dps_store.out_reqid)) < 0) {
			dps_store.out_reqid_bad = true;
			return;
		}
		memmove(&dps_store.out_reqid[i + 1], &dps_store.out_reqid[i],
			(dps_store.n_out_reqid - i) * sizeof(k));
		dps_store.out_reqid[i] = k;
		dps_store.n_out_reqid++;
		return;
	}
	for (; i < dps_store.n_out_reqid && dps_store.out_reqid[i].reqid == c->reqid; i++) {
		const struct dps_out_key *o = &dps_store.out_reqid[i];

		if (o->spi == c->spi && o->proto == c->proto && dps_addr_eq(&o->dst, &c->dst)) {
			memmove(&dps_store.out_reqid[i], &dps_store.out_reqid[i + 1],
				(dps_store.n_out_reqid - i - 1) * sizeof(k));
			dps_store.n_out_reqid--;
			return;
		}
	}
}

/*
 * Positions in dps_store.sas / dps_store.pol by key (pos_index.h), so that a key
 * daemon installing or tearing down tens of thousands of SAs and policies does
 * not scan them all for every message. A deletion moves the last entry into the
 * hole: the tables are in no order (walks that show them sort, see
 * dps_store_walk_sas).
 */
static uint32_t mix(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u; /* FNV-1a */
	return h;
}

static uint32_t addr_hash(uint32_t h, const struct dps_addr *a)
{
	h = mix(h, &a->family, 1);
	return a->family == AF_INET ? mix(h, &a->v4, 4) : mix(h, &a->v6, 16);
}

static uint32_t sa_key_hash(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	return addr_hash(mix(mix(2166136261u, &spi, 4), &proto, 1), dst);
}

static uint32_t pol_key_hash(uint8_t dir, const struct dps_selector *sel)
{
	uint32_t h = mix(2166136261u, &dir, 1);

	h = addr_hash(mix(h, &sel->src.len, 1), &sel->src.addr);
	h = addr_hash(mix(h, &sel->dst.len, 1), &sel->dst.addr);
	h = mix(h, &sel->proto, 1);
	h = mix(h, &sel->sport_lo, 2);
	h = mix(h, &sel->sport_hi, 2);
	h = mix(h, &sel->dport_lo, 2);
	return mix(h, &sel->dport_hi, 2);
}

static uint32_t sa_hash(unsigned int i)
{
	return sa_key_hash(dps_store.sas[i].cfg.spi, &dps_store.sas[i].cfg.dst,
			   dps_store.sas[i].cfg.proto);
}

static uint32_t pol_hash(unsigned int i)
{
	return pol_key_hash(dps_store.pol[i].p.dir, &dps_store.pol[i].p.sel);
}

static uint32_t id_hash(unsigned int i)
{
	return mix(2166136261u, &dps_store.pol[i].p.id, 4);
}

/* bumped when entries change position (under the lock): walks sort again */
static uint64_t sa_gen = 1, pol_gen = 1;

/* The tables' positions in the order walks show them (dps_store_walk_sas). */
struct order {
	uint32_t *v;
	unsigned int n, cap;
	uint64_t gen; /* of the positions it was made for */
};

static struct order sa_order, pol_order;

static struct dps_pos_index sa_ix = DPS_POS_INDEX_INIT(sa_hash),
			    pol_ix = DPS_POS_INDEX_INIT(pol_hash),
			    id_ix = DPS_POS_INDEX_INIT(id_hash); /* policies by id */

struct sa_key {
	uint32_t spi;
	const struct dps_addr *dst;
	uint8_t proto;
};

static bool sa_match(unsigned int pos, const void *key)
{
	const struct sa_key *k = key;
	const struct dps_sa *c = &dps_store.sas[pos].cfg;

	return c->spi == k->spi && c->proto == k->proto && dps_addr_eq(&c->dst, k->dst);
}

int dps_store_sa_pos(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	struct sa_key k = {spi, dst, proto};

	return dps_pos_index_find(&sa_ix, dps_store.n_sas, sa_key_hash(spi, dst, proto), sa_match,
				  &k);
}

const struct dps_store_sa *dps_store_sa_find(uint32_t spi, const struct dps_addr *dst,
					     uint8_t proto)
{
	int i = dps_store_sa_pos(spi, dst, proto);

	return i < 0 ? NULL : &dps_store.sas[i];
}

static int inner_family(const struct dps_sa *c)
{
	/* no policy of the other family on this side: the answer cannot differ */
	if (dps_store.pol_fam[c->dir == DPS_DIR_OUT][c->dst.family == AF_INET] == 0)
		return c->dst.family;
	return dps_sa_inner_family(c, &dps_store.pol[0].p, dps_store.n_pol,
				   sizeof(dps_store.pol[0]));
}

/* Insert an SA whose dataplane object exists already. */
int dps_store_sa_insert(const struct dps_sa *sa, struct dp_sa *d, enum dps_origin origin)
{
	struct dps_store_sa *e;

	pthread_mutex_lock(&dps_store.lock);
	if (grow((void **)&dps_store.sas, &dps_store.cap_sas, dps_store.n_sas,
		 sizeof(*dps_store.sas)) < 0) {
		pthread_mutex_unlock(&dps_store.lock);
		dp_sa_free(d);
		return -ENOMEM;
	}
	e = &dps_store.sas[dps_store.n_sas++];
	/* every field: the slot may have held a deleted SA (soft_expired...); the
	 * keys copied straight in, not through a temporary on the stack */
	memset(e, 0, sizeof(*e));
	e->id = ++dps_store.next_sa_id;
	e->origin = origin;
	e->cfg = *sa;
	e->dp = d;
	d->id = e->id;
	pthread_mutex_unlock(&dps_store.lock);
	dps_pos_index_appended(&sa_ix, dps_store.n_sas);
	if (sa->dir == DPS_DIR_OUT && sa->mode == DPS_MODE_TUNNEL)
		dps_store.out_inner[d->inner_family == AF_INET6]++;
	if (sa->dir == DPS_DIR_IN) {
		dps_store.in_changed = true;
		sad_op(true, d);
	}
	out_reqid_change(sa, true);
	dps_spd_sa_changed(sa);
	return 0;
}

struct dp_sa *dps_store_sa_make(const struct dps_sa *sa, int inner,
				const struct dps_ipsec_defaults *def, char *err, size_t errlen)
{
	if (sa->dir != DPS_DIR_IN && sa->dir != DPS_DIR_OUT) {
		snprintf(err, errlen, "SA direction must be in or out");
		rte_errno = ENOTSUP;
		return NULL;
	}
	if (!dps_proto_enabled(def, sa->proto)) {
		snprintf(err, errlen, "%s is disabled (ipsec.%s_enable: false)",
			 dps_ipsec_proto_name(sa->proto), dps_ipsec_proto_name(sa->proto));
		return NULL;
	}
	return dp_sa_create(sa, inner, def, err, errlen);
}

int dps_store_sa_add(const struct dps_sa *sa, enum dps_origin origin, char *err, size_t errlen)
{
	struct dp_sa *d;

	if (origin == DPS_ORIGIN_RESTORED)
		origin = DPS_ORIGIN_PFKEY;
	if (dps_store_sa_pos(sa->spi, &sa->dst, sa->proto) >= 0) {
		snprintf(err, errlen, "SA exists");
		return -EEXIST;
	}
	d = dps_store_sa_make(sa, inner_family(sa), &dps_store.def, err, errlen);
	if (d == NULL) /* out of sessions or memory, or not runnable */
		return rte_errno == ENOBUFS || rte_errno == ENOMEM ? -rte_errno : -ENOTSUP;
	if (dps_store_sa_insert(sa, d, origin) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int dps_store_sa_delete(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	int i = dps_store_sa_pos(spi, dst, proto);
	struct dps_sa gone;
	unsigned int last;

	if (i < 0)
		return -ESRCH;
	if (bury(dps_store.sas[i].dp) < 0)
		return -ENOMEM;
	if (dps_store.sas[i].cfg.dir == DPS_DIR_IN) {
		dps_store.in_changed = true;
		sad_op(false, dps_store.sas[i].dp);
	}
	if (dps_store.sas[i].cfg.dir == DPS_DIR_OUT && dps_store.sas[i].cfg.mode == DPS_MODE_TUNNEL)
		dps_store.out_inner[dps_store.sas[i].dp->inner_family == AF_INET6]--;
	gone = dps_store.sas[i].cfg;
	last = dps_store.n_sas - 1;
	dps_pos_index_remove(&sa_ix, (unsigned int)i);
	if ((unsigned int)i != last)
		dps_pos_index_moved(&sa_ix, last, (unsigned int)i);
	pthread_mutex_lock(&dps_store.lock);
	if ((unsigned int)i != last) {
		dps_store.sas[i] = dps_store.sas[last];
		sa_gen++;
	}
	dps_store.n_sas--;
	/* the slot left behind: the last SA, moved into the hole, or the deleted one */
	dps_wipe(&dps_store.sas[last], sizeof(*dps_store.sas));
	pthread_mutex_unlock(&dps_store.lock);
	out_reqid_change(&gone, false);
	dps_spd_sa_changed(&gone); /* policies bound to it let go */
	return 0;
}

bool dps_selector_eq(const struct dps_selector *a, const struct dps_selector *b)
{
	return dps_addr_eq(&a->src.addr, &b->src.addr) && a->src.len == b->src.len &&
	       dps_addr_eq(&a->dst.addr, &b->dst.addr) && a->dst.len == b->dst.len &&
	       a->proto == b->proto && a->sport_lo == b->sport_lo && a->sport_hi == b->sport_hi &&
	       a->dport_lo == b->dport_lo && a->dport_hi == b->dport_hi;
}

/*
 * lib/ipsec fixes an outbound tunnel SA's inner family (the ESP next header)
 * when the SA is made. A key daemon adds SAs before their policies, so an SA
 * made with a guess is made again, the right way, when the policy that uses it
 * arrives -- unless it already carried traffic (its sequence numbers must not
 * start over), which is logged.
 */
static void rebind_unused(const struct dps_policy *p)
{
	int fam = p->sel.src.addr.family;

	if (p->dir != DPS_DIR_OUT || p->action != DPS_ACTION_PROTECT ||
	    dps_store.out_inner[fam == AF_INET] == 0) /* no SA carries the other family */
		return;
	for (unsigned int i = 0; i < dps_store.n_sas; i++) {
		struct dps_store_sa *s = &dps_store.sas[i];
		struct dp_sa_counters c;
		struct dp_sa *d;
		char why[128];
		bool uses = false;

		if (s->cfg.dir != DPS_DIR_OUT || s->cfg.mode != DPS_MODE_TUNNEL ||
		    s->dp->inner_family == fam)
			continue;
		for (unsigned int r = 0; r < p->n_reqs; r++)
			uses |= dps_req_matches_sa(&p->reqs[r], &s->cfg, &p->sel);
		if (!uses)
			continue;
		dp_sa_counters(s->dp, &c);
		if (c.v[DP_SA_CNT_packets] || c.v[DP_SA_CNT_drop_crypto] ||
		    c.v[DP_SA_CNT_drop_other]) {
			DP_LOG(WARNING,
			       "SA 0x%x carries another family already: policy %u cannot use it",
			       s->cfg.spi, p->id);
			continue;
		}
		d = dps_store_sa_make(&s->cfg, fam, &dps_store.def, why, sizeof(why));
		if (d == NULL || bury(s->dp) < 0) {
			DP_LOG(ERR, "SA 0x%x: cannot remake it for policy %u: %s", s->cfg.spi,
			       p->id, d == NULL ? why : "out of memory");
			dp_sa_free(d);
			continue;
		}
		d->id = s->id;
		dps_store.out_inner[s->dp->inner_family == AF_INET6]--;
		dps_store.out_inner[d->inner_family == AF_INET6]++;
		pthread_mutex_lock(&dps_store.lock);
		s->dp = d;
		pthread_mutex_unlock(&dps_store.lock);
		dps_spd_sa_changed(&s->cfg); /* policies bound to the old one take the new */
	}
}

struct pol_key {
	uint8_t dir;
	const struct dps_selector *sel;
};

static bool pol_match(unsigned int pos, const void *key)
{
	const struct pol_key *k = key;

	return dps_store.pol[pos].p.dir == k->dir &&
	       dps_selector_eq(&dps_store.pol[pos].p.sel, k->sel);
}

static int policy_index(uint8_t dir, const struct dps_selector *sel)
{
	struct pol_key k = {dir, sel};

	return dps_pos_index_find(&pol_ix, dps_store.n_pol, pol_key_hash(dir, sel), pol_match, &k);
}

int dps_store_policy_add(struct dps_policy *p, enum dps_origin origin, char *err, size_t errlen)
{
	struct dps_store_policy *e;
	struct dp_hits *hits;

	if (policy_index(p->dir, &p->sel) >= 0) {
		snprintf(err, errlen, "a policy with this direction and selector exists");
		return -EEXIST;
	}
	hits = hits_alloc();
	if (hits == NULL) {
		snprintf(err, errlen,
			 "out of hugepage memory: reserve more hugepages (vm.nr_hugepages)");
		return -ENOMEM;
	}
	pthread_mutex_lock(&dps_store.lock);
	if (grow((void **)&dps_store.pol, &dps_store.cap_pol, dps_store.n_pol,
		 sizeof(*dps_store.pol)) < 0) {
		pthread_mutex_unlock(&dps_store.lock);
		dps_hits_free(hits);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Linux numbering: index in steps of 8, the direction in the low bits. A
	 * restored policy keeps the id its key daemon knows it by. */
	if (origin == DPS_ORIGIN_RESTORED && p->id && dps_store_policy_get(p->id) == NULL) {
		if ((p->id >> 3) > dps_store.next_pol_index)
			dps_store.next_pol_index = p->id >> 3;
		origin = DPS_ORIGIN_PFKEY;
	} else {
		p->id = (++dps_store.next_pol_index << 3) | p->dir;
		origin = origin == DPS_ORIGIN_RESTORED ? DPS_ORIGIN_PFKEY : origin;
	}
	e = &dps_store.pol[dps_store.n_pol++];
	e->dp = NULL;
	e->build_id = 0;
	e->stale_gen = 0;
	e->p = *p;
	e->origin = origin;
	e->seq = ++dps_store.next_seq;
	e->hits = hits;
	e->add_time = (uint64_t)time(NULL);
	pthread_mutex_unlock(&dps_store.lock);
	dps_pos_index_appended(&pol_ix, dps_store.n_pol);
	dps_pos_index_appended(&id_ix, dps_store.n_pol);
	dps_store.pol_fam[p->dir == DPS_DIR_OUT][p->sel.src.addr.family == AF_INET6]++;
	rebind_unused(p);
	dps_spd_policy_added(&dps_store.pol[dps_store.n_pol - 1]);
	return 0;
}

const struct dps_store_policy *dps_store_policy_find(uint8_t dir, const struct dps_selector *sel)
{
	int i = policy_index(dir, sel);

	return i < 0 ? NULL : &dps_store.pol[i];
}

static bool id_match(unsigned int pos, const void *key)
{
	return dps_store.pol[pos].p.id == *(const uint32_t *)key;
}

/* Position of policy @id, or -1: restoring 100 000 policies checks each id. */
static int policy_pos(uint32_t id)
{
	return dps_pos_index_find(&id_ix, dps_store.n_pol, mix(2166136261u, &id, 4), id_match, &id);
}

const struct dps_store_policy *dps_store_policy_get(uint32_t id)
{
	int i = policy_pos(id);

	return i < 0 ? NULL : &dps_store.pol[i];
}

int dps_store_policy_update(struct dps_policy *p, enum dps_origin origin)
{
	int i = policy_index(p->dir, &p->sel);
	struct dps_policy old;

	if (i < 0)
		return -ENOENT;
	if (dps_store.pol[i].origin != origin)
		return -EEXIST;
	p->id = dps_store.pol[i].p.id;
	if (dps_policy_same(&dps_store.pol[i].p, p))
		return 0; /* charon updates every policy of each new CHILD_SA with itself */
	old = dps_store.pol[i].p;
	pthread_mutex_lock(&dps_store.lock);
	dps_store.pol[i].p = *p;
	pthread_mutex_unlock(&dps_store.lock);
	/* same direction and selector: pol_fam unchanged */
	rebind_unused(p);
	dps_spd_policy_updated(&dps_store.pol[i], &old);
	return 0;
}

uint64_t dps_store_policy_no_sa(const struct dps_store_policy *p)
{
	uint64_t n = 0;

	for (unsigned int w = 0; w < dp.n_workers; w++)
		n += p->hits[w].no_sa;
	return n;
}

unsigned int dps_store_sa_flush(uint8_t proto, enum dps_origin origin)
{
	unsigned int n = 0;

	for (unsigned int j = dps_store.n_sas; j-- > 0;) {
		const struct dps_sa *c = &dps_store.sas[j].cfg;

		if (dps_store.sas[j].origin == origin && (proto == 0 || c->proto == proto) &&
		    dps_store_sa_delete(c->spi, &c->dst, c->proto) == 0)
			n++;
	}
	return n;
}

unsigned int dps_store_policy_flush(enum dps_origin origin)
{
	unsigned int n = 0;

	for (unsigned int j = dps_store.n_pol; j-- > 0;)
		if (dps_store.pol[j].origin == origin &&
		    dps_store_policy_delete(dps_store.pol[j].p.id) == 0)
			n++;
	return n;
}

int dps_store_sa_set_lifetimes(uint32_t id, const struct dps_lifetime *soft,
			       const struct dps_lifetime *hard)
{
	for (unsigned int i = 0; i < dps_store.n_sas; i++) {
		if (dps_store.sas[i].id != id)
			continue;
		pthread_mutex_lock(&dps_store.lock);
		dps_store.sas[i].cfg.soft = *soft;
		dps_store.sas[i].cfg.hard = *hard;
		dps_store.sas[i].soft_expired = false;
		pthread_mutex_unlock(&dps_store.lock);
		return 0;
	}
	return -ESRCH;
}

void dps_store_sa_set_soft_expired(uint32_t id)
{
	for (unsigned int i = 0; i < dps_store.n_sas; i++)
		if (dps_store.sas[i].id == id)
			dps_store.sas[i].soft_expired = true;
}

int dps_store_policy_delete(uint32_t id)
{
	int i = policy_pos(id);
	unsigned int last;

	if (i < 0)
		return -ENOENT;
	/* Workers count hits into it until the next publish. */
	if (grow((void **)&dps_store.dead_hits, &dps_store.cap_dead_hits, dps_store.n_dead_hits,
		 sizeof(*dps_store.dead_hits)) < 0)
		return -ENOMEM;
	dps_store.dead_hits[dps_store.n_dead_hits++] = dps_store.pol[i].hits;
	dps_spd_policy_deleted(&dps_store.pol[i]);
	dps_store.pol_fam[dps_store.pol[i].p.dir == DPS_DIR_OUT]
			 [dps_store.pol[i].p.sel.src.addr.family == AF_INET6]--;
	last = dps_store.n_pol - 1;
	dps_pos_index_remove(&pol_ix, (unsigned int)i);
	dps_pos_index_remove(&id_ix, (unsigned int)i);
	if ((unsigned int)i != last) {
		dps_pos_index_moved(&pol_ix, last, (unsigned int)i);
		dps_pos_index_moved(&id_ix, last, (unsigned int)i);
	}
	pthread_mutex_lock(&dps_store.lock);
	if ((unsigned int)i != last) {
		dps_store.pol[i] = dps_store.pol[last];
		pol_gen++;
	}
	dps_store.n_pol--;
	pthread_mutex_unlock(&dps_store.lock);
	return 0;
}

const struct dps_ipsec_defaults *dps_store_defaults(void)
{
	return &dps_store.def;
}

int dps_store_init(const struct dps_config *cfg, char *err, size_t errlen)
{
	char why[256];
	int rc;

	dps_store.def = cfg->ipsec;
	/* Policies first: they tell which inner family each tunnel SA carries. */
	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		struct dps_policy p = cfg->policies[i];

		rc = dps_store_policy_add(&p, DPS_ORIGIN_CONFIG, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "%s: policies[%u]: %s", cfg->path, i, why);
			return -1;
		}
	}
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		rc = dps_store_sa_add(&cfg->sas[i], DPS_ORIGIN_CONFIG, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "%s: sas[%u] (spi 0x%x): %s", cfg->path, i,
				 cfg->sas[i].spi, why);
			return -1;
		}
	}
	if (dps_store_commit() < 0) {
		snprintf(err, errlen, "cannot compile the SPD/SAD");
		return -1;
	}
	return 0;
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;

	return x < y ? -1 : x > y;
}

static bool ptr_in(void *const *sorted, unsigned int n, const void *p)
{
	return p != NULL && bsearch(&p, sorted, n, sizeof(*sorted), ptr_cmp) != NULL;
}

int dps_store_undo_begin(struct dps_store_undo *u)
{
	const struct dps_store_state *s = &dps_store;

	*u = (struct dps_store_undo){
		.def = s->def,
		.n_sas = s->n_sas,
		.n_pol = s->n_pol,
		.n_dead = s->n_dead,
		.n_dead_hits = s->n_dead_hits,
		.next_sa_id = s->next_sa_id,
		.next_pol_index = s->next_pol_index,
		.next_seq = s->next_seq,
	};
	memcpy(u->pol_fam, s->pol_fam, sizeof(u->pol_fam));
	memcpy(u->out_inner, s->out_inner, sizeof(u->out_inner));
	u->sas = malloc((s->n_sas + 1) * sizeof(*u->sas));
	u->pol = malloc((s->n_pol + 1) * sizeof(*u->pol));
	u->dp = malloc((s->n_sas + 1) * sizeof(*u->dp));
	u->hits = malloc((s->n_pol + 1) * sizeof(*u->hits));
	if (u->sas == NULL || u->pol == NULL || u->dp == NULL || u->hits == NULL) {
		dps_store_undo_end(u);
		return -ENOMEM;
	}
	memcpy(u->sas, s->sas, s->n_sas * sizeof(*u->sas));
	memcpy(u->pol, s->pol, s->n_pol * sizeof(*u->pol));
	for (unsigned int i = 0; i < s->n_sas; i++)
		u->dp[i] = s->sas[i].dp;
	for (unsigned int i = 0; i < s->n_pol; i++)
		u->hits[i] = s->pol[i].hits;
	qsort(u->dp, s->n_sas, sizeof(*u->dp), ptr_cmp);
	qsort(u->hits, s->n_pol, sizeof(*u->hits), ptr_cmp);
	return 0;
}

static int out_key_cmp(const void *a, const void *b)
{
	const struct dps_out_key *x = a, *y = b;

	return x->reqid < y->reqid ? -1 : x->reqid > y->reqid;
}

/* The out SAs' reqid index made again from the tables (after an undo). */
static void out_reqid_rebuild(void)
{
	dps_store.n_out_reqid = 0;
	dps_store.out_reqid_bad = false;
	for (unsigned int i = 0; i < dps_store.n_sas; i++) {
		const struct dps_sa *c = &dps_store.sas[i].cfg;

		if (c->dir != DPS_DIR_OUT || c->reqid == 0)
			continue;
		if (grow((void **)&dps_store.out_reqid, &dps_store.cap_out_reqid,
			 dps_store.n_out_reqid, sizeof(*dps_store.out_reqid)) < 0) {
			dps_store.out_reqid_bad = true;
			return;
		}
		dps_store.out_reqid[dps_store.n_out_reqid++] = (struct dps_out_key){
			.reqid = c->reqid, .spi = c->spi, .proto = c->proto, .dst = c->dst};
	}
	qsort(dps_store.out_reqid, dps_store.n_out_reqid, sizeof(*dps_store.out_reqid),
	      out_key_cmp);
}

/*
 * What was made since dps_store_undo_begin() was never published (the live
 * SPD is in batch mode during a reload, spd_live.c); a failed commit may
 * still have compiled policies bound to it. So nothing is freed here: what was made goes to the
 * dead lists, freed after the next publish, and the SPD and inbound SAD are compiled whole at the
 * next commit. What was deleted or replaced since then sits in the dead lists; it is still in
 * force, so it goes back into the tables instead.
 */
void dps_store_undo(struct dps_store_undo *u)
{
	struct dps_store_state *s = &dps_store;
	unsigned int n_made = 0, n_hits = 0, n_dead;
	struct dp_sa **made = calloc(s->n_sas + 1, sizeof(*made));
	struct dp_hits **hits = calloc(s->n_pol + 1, sizeof(*hits));

	for (unsigned int i = 0; i < s->n_sas; i++)
		if (!ptr_in((void *const *)u->dp, u->n_sas, s->sas[i].dp) && made != NULL)
			made[n_made++] = s->sas[i].dp;
	for (unsigned int i = 0; i < s->n_pol; i++)
		if (!ptr_in((void *const *)u->hits, u->n_pol, s->pol[i].hits) && hits != NULL)
			hits[n_hits++] = s->pol[i].hits;
	/* capacities only grow: the saved tables fit */
	pthread_mutex_lock(&s->lock);
	if (s->n_sas > u->n_sas) /* the keys of SAs added since */
		explicit_bzero(&s->sas[u->n_sas], (s->n_sas - u->n_sas) * sizeof(*s->sas));
	memcpy(s->sas, u->sas, u->n_sas * sizeof(*s->sas));
	memcpy(s->pol, u->pol, u->n_pol * sizeof(*s->pol));
	s->n_sas = u->n_sas;
	s->n_pol = u->n_pol;
	sa_gen++;
	pol_gen++;
	/* the dead list shrinks with the tables' restore: no SA is in both at once */
	n_dead = s->n_dead;
	s->n_dead = u->n_dead;
	pthread_mutex_unlock(&s->lock);
	/* made and deleted since: dead still (and only once) */
	for (unsigned int i = u->n_dead; i < n_dead; i++)
		if (!ptr_in((void *const *)u->dp, u->n_sas, s->dead[i]) && made != NULL)
			made[n_made++] = s->dead[i];
	for (unsigned int i = u->n_dead_hits; i < s->n_dead_hits; i++)
		if (!ptr_in((void *const *)u->hits, u->n_pol, s->dead_hits[i]) && hits != NULL)
			hits[n_hits++] = s->dead_hits[i];
	s->n_dead_hits = u->n_dead_hits;
	for (unsigned int i = 0; i < n_made; i++)
		if (bury(made[i]) < 0)
			DP_LOG(ERR, "reload undo: out of memory: an SA leaked");
	for (unsigned int i = 0; i < n_hits; i++) {
		if (grow((void **)&s->dead_hits, &s->cap_dead_hits, s->n_dead_hits,
			 sizeof(*s->dead_hits)) < 0) {
			DP_LOG(ERR, "reload undo: out of memory: policy counters leaked");
			continue;
		}
		s->dead_hits[s->n_dead_hits++] = hits[i];
	}
	if (made == NULL || hits == NULL)
		DP_LOG(ERR, "reload undo: out of memory: what the reload made is leaked");
	free(made);
	free(hits);
	for (unsigned int i = 0; i < s->n_pol; i++) {
		s->pol[i].in_recent = false;
		s->pol[i].build_id = 0;
	}
	s->def = u->def;
	s->next_sa_id = u->next_sa_id;
	s->next_pol_index = u->next_pol_index;
	s->next_seq = u->next_seq;
	memcpy(s->pol_fam, u->pol_fam, sizeof(s->pol_fam));
	memcpy(s->out_inner, u->out_inner, sizeof(s->out_inner));
	out_reqid_rebuild();
	/* the next commit compiles the SPD and the inbound SAD afresh */
	s->in_changed = true;
	s->n_sad_ops = 0;
	s->sad_rebuild = true;
	dps_spd_batch_end(false);
	sa_ix.stale = pol_ix.stale = id_ix.stale = true;
	dps_store_undo_end(u);
}

void dps_store_undo_end(struct dps_store_undo *u)
{
	if (u->sas != NULL) /* keys */
		explicit_bzero(u->sas, u->n_sas * sizeof(*u->sas));
	free(u->sas);
	free(u->pol);
	free(u->dp);
	free(u->hits);
	u->sas = NULL;
	u->pol = NULL;
	u->dp = NULL;
	u->hits = NULL;
}

void dps_store_fini(void)
{
	dps_compile_fini();
	dps_spd_fini();
	for (unsigned int i = 0; i < dps_store.n_sas; i++)
		dp_sa_free(dps_store.sas[i].dp);
	for (unsigned int i = 0; i < dps_store.n_pol; i++)
		dps_hits_free(dps_store.pol[i].hits);
	for (unsigned int i = 0; i < dps_store.n_dead; i++)
		dp_sa_free(dps_store.dead[i]);
	for (unsigned int i = 0; i < dps_store.n_dead_hits; i++)
		dps_hits_free(dps_store.dead_hits[i]);
	hits_pool_fini();
	dps_pos_index_free(&sa_ix);
	dps_pos_index_free(&pol_ix);
	dps_pos_index_free(&id_ix);
	free(sa_order.v);
	free(pol_order.v);
	sa_order = pol_order = (struct order){0};
	sa_gen++;
	pol_gen++;
	memset(dps_store.pol_fam, 0, sizeof(dps_store.pol_fam));
	memset(dps_store.out_inner, 0, sizeof(dps_store.out_inner));
	dps_free_wiped(dps_store.sas, dps_store.cap_sas * sizeof(*dps_store.sas));
	free(dps_store.pol);
	free(dps_store.dead);
	free(dps_store.dead_hits);
	free(dps_store.sad_ops);
	dps_store.sad_ops = NULL;
	free(dps_store.out_reqid);
	dps_store.out_reqid = NULL;
	dps_store.n_out_reqid = dps_store.cap_out_reqid = 0;
	dps_store.out_reqid_bad = false;
	dps_store.n_sad_ops = dps_store.cap_sad_ops = 0;
	dps_store.sad_rebuild = true;
	dps_store.sas = NULL;
	dps_store.pol = NULL;
	dps_store.dead = NULL;
	dps_store.dead_hits = NULL;
	dps_store.n_sas = dps_store.n_pol = dps_store.n_dead = dps_store.n_dead_hits = 0;
	dps_store.cap_sas = dps_store.cap_pol = dps_store.cap_dead = dps_store.cap_dead_hits = 0;
}

void dps_store_counts(unsigned int *sas, unsigned int *policies)
{
	pthread_mutex_lock(&dps_store.lock);
	*sas = dps_store.n_sas;
	*policies = dps_store.n_pol;
	pthread_mutex_unlock(&dps_store.lock);
}

void dps_store_scan_sas(int (*fn)(const struct dps_store_sa *, void *), void *arg)
{
	pthread_mutex_lock(&dps_store.lock);
	for (unsigned int i = 0; i < dps_store.n_sas; i++)
		if (fn(&dps_store.sas[i], arg))
			break;
	pthread_mutex_unlock(&dps_store.lock);
}

void dps_store_scan_policies(int (*fn)(const struct dps_store_policy *, void *), void *arg)
{
	pthread_mutex_lock(&dps_store.lock);
	for (unsigned int i = 0; i < dps_store.n_pol; i++)
		if (fn(&dps_store.pol[i], arg))
			break;
	pthread_mutex_unlock(&dps_store.lock);
}

/*
 * Deletions move the last entry into the hole: the tables are in insertion
 * order only until the first one. Walks go through positions sorted by SA id
 * or policy seq (both grow with every addition), kept between walks (a dump
 * walks once per page): appends extend the order as it is, a deletion or an
 * undo (a new generation) has it sorted again. Under the store's lock, so the
 * comparators may read the tables.
 */

static int by_sa_id(const void *a, const void *b)
{
	uint32_t x = dps_store.sas[*(const uint32_t *)a].id,
		 y = dps_store.sas[*(const uint32_t *)b].id;

	return (x > y) - (x < y);
}

static int by_pol_seq(const void *a, const void *b)
{
	uint64_t x = dps_store.pol[*(const uint32_t *)a].seq,
		 y = dps_store.pol[*(const uint32_t *)b].seq;

	return (x > y) - (x < y);
}

/* The @n positions in order, or NULL (out of memory: table order). */
static const uint32_t *order_of(struct order *o, unsigned int n, uint64_t gen,
				int (*cmp)(const void *, const void *))
{
	unsigned int from = o->gen == gen && o->n <= n ? o->n : 0;

	if (n > o->cap) {
		unsigned int cap = n < 256 ? 256 : n + n / 2;
		uint32_t *v = realloc(o->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		o->v = v;
		o->cap = cap;
	}
	for (unsigned int i = from; i < n; i++)
		o->v[i] = i;	/* appended since: after every older entry */
	if (from == 0 && n > 1) /* o->v is NULL until the first entry */
		qsort(o->v, n, sizeof(*o->v), cmp);
	o->n = n;
	o->gen = gen;
	return o->v;
}

void dps_store_walk_sas(int (*fn)(const struct dps_store_sa *, void *), void *arg)
{
	const uint32_t *v;

	pthread_mutex_lock(&dps_store.lock);
	v = order_of(&sa_order, dps_store.n_sas, sa_gen, by_sa_id);
	for (unsigned int i = 0; i < dps_store.n_sas; i++)
		if (fn(&dps_store.sas[v ? v[i] : i], arg))
			break;
	pthread_mutex_unlock(&dps_store.lock);
}

void dps_store_walk_policies(int (*fn)(const struct dps_store_policy *, void *), void *arg)
{
	const uint32_t *v;

	pthread_mutex_lock(&dps_store.lock);
	v = order_of(&pol_order, dps_store.n_pol, pol_gen, by_pol_seq);
	for (unsigned int i = 0; i < dps_store.n_pol; i++)
		if (fn(&dps_store.pol[v ? v[i] : i], arg))
			break;
	pthread_mutex_unlock(&dps_store.lock);
}
