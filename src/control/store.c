/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_malloc.h>

#include "control/store.h"
#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/sad.h"
#include "dataplane/snapshot.h"
#include "dataplane/spd.h"

#define NATT_DEFAULT_PORT 4500

static struct {
	struct dps_ipsec_defaults def;
	unsigned int n_sas, cap_sas;
	struct dps_store_sa *sas;
	unsigned int n_pol, cap_pol;
	struct dps_store_policy *pol;
	unsigned int n_dead, cap_dead;
	struct dp_sa **dead; /* replaced or deleted: freed after the next publish */
	unsigned int n_dead_hits, cap_dead_hits;
	struct dp_hits **dead_hits; /* counters of deleted policies, likewise */
	uint32_t next_sa_id;
	uint32_t next_pol_index;
	uint64_t next_seq;
	uint64_t gen;
	/* since the last publish: the classifiers / the inbound SA tables must be rebuilt */
	bool rules_changed, in_changed;
	/* shortcuts past whole-table scans: policies by [out][v6] selector family, and
	 * outbound tunnel SAs by [v6] inner family */
	unsigned int pol_fam[2][2], out_inner[2];
	pthread_mutex_t lock;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER, .rules_changed = true, .in_changed = true};

static int grow(void **v, unsigned int *cap, unsigned int n, size_t elt)
{
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*v, (*cap ? *cap * 2 : 64) * elt);
	if (p == NULL)
		return -ENOMEM;
	*v = p;
	*cap = *cap ? *cap * 2 : 64;
	return 0;
}

static int bury(struct dp_sa *sa)
{
	if (sa == NULL)
		return 0;
	if (grow((void **)&st.dead, &st.cap_dead, st.n_dead, sizeof(*st.dead)) < 0)
		return -ENOMEM;
	st.dead[st.n_dead++] = sa;
	return 0;
}

/*
 * Positions in st.sas / st.pol by key (open addressing), so that a key
 * daemon installing tens of thousands of SAs and policies does not scan them
 * all for every message. Appends are indexed at once; a deletion moves the
 * entries after it, so it only marks the index stale: the next lookup
 * rebuilds it.
 */
struct pos_index {
	uint32_t cap;  /* power of two, > 2 * entries */
	int32_t *slot; /* position + 1, 0 = empty */
	bool stale;
};

static struct pos_index sa_ix = {.stale = true}, pol_ix = {.stale = true};

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

static uint32_t entry_hash(const struct pos_index *ix, unsigned int i)
{
	if (ix == &sa_ix)
		return sa_key_hash(st.sas[i].cfg.spi, &st.sas[i].cfg.dst, st.sas[i].cfg.proto);
	return pol_key_hash(st.pol[i].p.dir, &st.pol[i].p.sel);
}

static void ix_put(struct pos_index *ix, uint32_t h, unsigned int pos)
{
	uint32_t k = h & (ix->cap - 1);

	while (ix->slot[k])
		k = (k + 1) & (ix->cap - 1);
	ix->slot[k] = (int32_t)pos + 1;
}

/* Rebuild for @n entries; false (and the caller scans) if memory is short. */
static bool ix_rebuild(struct pos_index *ix, unsigned int n)
{
	uint32_t cap = 64;
	int32_t *slot;

	while (cap < 2 * n + 2)
		cap *= 2;
	slot = calloc(cap, sizeof(*slot));
	if (slot == NULL)
		return false;
	free(ix->slot);
	ix->slot = slot;
	ix->cap = cap;
	for (unsigned int i = 0; i < n; i++)
		ix_put(ix, entry_hash(ix, i), i);
	ix->stale = false;
	return true;
}

/* Entry @pos was appended to an array of @n entries (pos = n - 1). */
static void ix_appended(struct pos_index *ix, unsigned int n)
{
	if (ix->stale || 2 * n + 2 > ix->cap)
		ix->stale = true;
	else
		ix_put(ix, entry_hash(ix, n - 1), n - 1);
}

static void ix_free(struct pos_index *ix)
{
	free(ix->slot);
	*ix = (struct pos_index){.stale = true};
}

/* Position of the entry @match accepts among @n, through @ix (a scan if it cannot be built). */
static int ix_find(struct pos_index *ix, unsigned int n, uint32_t h,
		   bool (*match)(unsigned int pos, const void *key), const void *key)
{
	if (ix->stale && !ix_rebuild(ix, n)) {
		for (unsigned int i = 0; i < n; i++)
			if (match(i, key))
				return (int)i;
		return -1;
	}
	for (uint32_t k = h & (ix->cap - 1); ix->slot[k]; k = (k + 1) & (ix->cap - 1))
		if (match((unsigned int)ix->slot[k] - 1, key))
			return ix->slot[k] - 1;
	return -1;
}

struct sa_key {
	uint32_t spi;
	const struct dps_addr *dst;
	uint8_t proto;
};

static bool sa_match(unsigned int pos, const void *key)
{
	const struct sa_key *k = key;
	const struct dps_sa *c = &st.sas[pos].cfg;

	return c->spi == k->spi && c->proto == k->proto && dps_addr_eq(&c->dst, k->dst);
}

static int sa_index(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	struct sa_key k = {spi, dst, proto};

	return ix_find(&sa_ix, st.n_sas, sa_key_hash(spi, dst, proto), sa_match, &k);
}

const struct dps_store_sa *dps_store_sa_find(uint32_t spi, const struct dps_addr *dst,
					     uint8_t proto)
{
	int i = sa_index(spi, dst, proto);

	return i < 0 ? NULL : &st.sas[i];
}

/* What a tunnel SA carries: the family of a policy of its direction that uses it. */
static bool req_matches_sa(const struct dps_ipsec_req *r, const struct dps_sa *c,
			   const struct dps_selector *sel)
{
	if (r->proto != c->proto || r->mode != c->mode)
		return false;
	if (r->reqid)
		return r->reqid == c->reqid;
	if (r->mode == DPS_MODE_TUNNEL)
		return dps_addr_eq(&r->tun_src, &c->src) && dps_addr_eq(&r->tun_dst, &c->dst);
	/* transport without reqid: the selector names the peer host */
	return sel->dst.len == (sel->dst.addr.family == AF_INET ? 32 : 128) &&
	       dps_addr_eq(&sel->dst.addr, &c->dst);
}

static int inner_family_in(const struct dps_sa *c, const struct dps_policy *pols, unsigned int n,
			   size_t stride)
{
	for (unsigned int i = 0; i < n; i++) {
		const struct dps_policy *p = (const void *)((const char *)pols + i * stride);

		if ((p->dir == DPS_DIR_OUT) != (c->dir == DPS_DIR_OUT))
			continue;
		for (unsigned int r = 0; r < p->n_reqs; r++)
			if (req_matches_sa(&p->reqs[r], c, &p->sel))
				return p->sel.src.addr.family;
	}
	return c->dst.family;
}

static int inner_family(const struct dps_sa *c)
{
	/* no policy of the other family on this side: the answer cannot differ */
	if (st.pol_fam[c->dir == DPS_DIR_OUT][c->dst.family == AF_INET] == 0)
		return c->dst.family;
	return inner_family_in(c, &st.pol[0].p, st.n_pol, sizeof(st.pol[0]));
}

/* Insert an SA whose dataplane object exists already. */
static int sa_insert(const struct dps_sa *sa, struct dp_sa *d, enum dps_origin origin)
{
	struct dps_store_sa *e;

	pthread_mutex_lock(&st.lock);
	if (grow((void **)&st.sas, &st.cap_sas, st.n_sas, sizeof(*st.sas)) < 0) {
		pthread_mutex_unlock(&st.lock);
		dp_sa_free(d);
		return -ENOMEM;
	}
	e = &st.sas[st.n_sas++];
	/* every field: the slot may have held a deleted SA (soft_expired...) */
	*e = (struct dps_store_sa){.id = ++st.next_sa_id, .origin = origin, .cfg = *sa, .dp = d};
	d->id = e->id;
	pthread_mutex_unlock(&st.lock);
	ix_appended(&sa_ix, st.n_sas);
	if (sa->dir == DPS_DIR_OUT && sa->mode == DPS_MODE_TUNNEL)
		st.out_inner[d->inner_family == AF_INET6]++;
	st.in_changed |= sa->dir == DPS_DIR_IN;
	return 0;
}

/* @def: the ipsec(4) knobs the SA keeps for its life (those of the
 * configuration that adds it: a reload's own for the SAs it adds). */
static struct dp_sa *sa_make(const struct dps_sa *sa, int inner,
			     const struct dps_ipsec_defaults *def, char *err, size_t errlen)
{
	if (sa->dir != DPS_DIR_IN && sa->dir != DPS_DIR_OUT) {
		snprintf(err, errlen, "SA direction must be in or out");
		return NULL;
	}
	return dp_sa_create(sa, inner, def, err, errlen);
}

int dps_store_sa_add(const struct dps_sa *sa, enum dps_origin origin, char *err, size_t errlen)
{
	struct dp_sa *d;

	if (origin == DPS_ORIGIN_RESTORED)
		origin = DPS_ORIGIN_PFKEY;
	if (sa_index(sa->spi, &sa->dst, sa->proto) >= 0) {
		snprintf(err, errlen, "SA exists");
		return -EEXIST;
	}
	d = sa_make(sa, inner_family(sa), &st.def, err, errlen);
	if (d == NULL)
		return -ENOTSUP;
	return sa_insert(sa, d, origin);
}

int dps_store_sa_delete(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	int i = sa_index(spi, dst, proto);

	if (i < 0)
		return -ESRCH;
	if (bury(st.sas[i].dp) < 0)
		return -ENOMEM;
	st.in_changed |= st.sas[i].cfg.dir == DPS_DIR_IN;
	if (st.sas[i].cfg.dir == DPS_DIR_OUT && st.sas[i].cfg.mode == DPS_MODE_TUNNEL)
		st.out_inner[st.sas[i].dp->inner_family == AF_INET6]--;
	sa_ix.stale = true;
	pthread_mutex_lock(&st.lock);
	memmove(&st.sas[i], &st.sas[i + 1], (st.n_sas - i - 1) * sizeof(*st.sas));
	st.n_sas--;
	pthread_mutex_unlock(&st.lock);
	return 0;
}

static bool sel_eq(const struct dps_selector *a, const struct dps_selector *b)
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
	    st.out_inner[fam == AF_INET] == 0) /* no SA carries the other family */
		return;
	for (unsigned int i = 0; i < st.n_sas; i++) {
		struct dps_store_sa *s = &st.sas[i];
		struct dp_sa_counters c;
		struct dp_sa *d;
		char why[128];
		bool uses = false;

		if (s->cfg.dir != DPS_DIR_OUT || s->cfg.mode != DPS_MODE_TUNNEL ||
		    s->dp->inner_family == fam)
			continue;
		for (unsigned int r = 0; r < p->n_reqs; r++)
			uses |= req_matches_sa(&p->reqs[r], &s->cfg, &p->sel);
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
		d = sa_make(&s->cfg, fam, &st.def, why, sizeof(why));
		if (d == NULL || bury(s->dp) < 0) {
			DP_LOG(ERR, "SA 0x%x: cannot remake it for policy %u: %s", s->cfg.spi,
			       p->id, d == NULL ? why : "out of memory");
			dp_sa_free(d);
			continue;
		}
		d->id = s->id;
		st.out_inner[s->dp->inner_family == AF_INET6]--;
		st.out_inner[d->inner_family == AF_INET6]++;
		pthread_mutex_lock(&st.lock);
		s->dp = d;
		pthread_mutex_unlock(&st.lock);
	}
}

struct pol_key {
	uint8_t dir;
	const struct dps_selector *sel;
};

static bool pol_match(unsigned int pos, const void *key)
{
	const struct pol_key *k = key;

	return st.pol[pos].p.dir == k->dir && sel_eq(&st.pol[pos].p.sel, k->sel);
}

static int policy_index(uint8_t dir, const struct dps_selector *sel)
{
	struct pol_key k = {dir, sel};

	return ix_find(&pol_ix, st.n_pol, pol_key_hash(dir, sel), pol_match, &k);
}

int dps_store_policy_add(struct dps_policy *p, enum dps_origin origin, char *err, size_t errlen)
{
	struct dps_store_policy *e;
	struct dp_hits *hits;

	if (policy_index(p->dir, &p->sel) >= 0) {
		snprintf(err, errlen, "a policy with this direction and selector exists");
		return -EEXIST;
	}
	hits = rte_zmalloc(NULL, sizeof(*hits) * dp.n_workers, RTE_CACHE_LINE_SIZE);
	if (hits == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&st.lock);
	if (grow((void **)&st.pol, &st.cap_pol, st.n_pol, sizeof(*st.pol)) < 0) {
		pthread_mutex_unlock(&st.lock);
		rte_free(hits);
		return -ENOMEM;
	}
	/* Linux numbering: index in steps of 8, the direction in the low bits. A
	 * restored policy keeps the id its key daemon knows it by. */
	if (origin == DPS_ORIGIN_RESTORED && p->id && dps_store_policy_get(p->id) == NULL) {
		if ((p->id >> 3) > st.next_pol_index)
			st.next_pol_index = p->id >> 3;
		origin = DPS_ORIGIN_PFKEY;
	} else {
		p->id = (++st.next_pol_index << 3) | p->dir;
		origin = origin == DPS_ORIGIN_RESTORED ? DPS_ORIGIN_PFKEY : origin;
	}
	e = &st.pol[st.n_pol++];
	e->p = *p;
	e->origin = origin;
	e->seq = ++st.next_seq;
	e->hits = hits;
	e->add_time = (uint64_t)time(NULL);
	pthread_mutex_unlock(&st.lock);
	ix_appended(&pol_ix, st.n_pol);
	st.pol_fam[p->dir == DPS_DIR_OUT][p->sel.src.addr.family == AF_INET6]++;
	st.rules_changed = true;
	rebind_unused(p);
	return 0;
}

const struct dps_store_policy *dps_store_policy_find(uint8_t dir, const struct dps_selector *sel)
{
	int i = policy_index(dir, sel);

	return i < 0 ? NULL : &st.pol[i];
}

const struct dps_store_policy *dps_store_policy_get(uint32_t id)
{
	for (unsigned int i = 0; i < st.n_pol; i++)
		if (st.pol[i].p.id == id)
			return &st.pol[i];
	return NULL;
}

static bool policy_same(const struct dps_policy *a, const struct dps_policy *b);

int dps_store_policy_update(struct dps_policy *p, enum dps_origin origin)
{
	int i = policy_index(p->dir, &p->sel);

	if (i < 0)
		return -ENOENT;
	if (st.pol[i].origin != origin)
		return -EEXIST;
	p->id = st.pol[i].p.id;
	if (policy_same(&st.pol[i].p, p))
		return 0; /* charon updates every policy of each new CHILD_SA with itself */
	pthread_mutex_lock(&st.lock);
	st.pol[i].p = *p;
	pthread_mutex_unlock(&st.lock);
	st.rules_changed = true; /* same direction and selector: pol_fam unchanged */
	rebind_unused(p);
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

	for (unsigned int j = st.n_sas; j-- > 0;) {
		const struct dps_sa *c = &st.sas[j].cfg;

		if (st.sas[j].origin == origin && (proto == 0 || c->proto == proto) &&
		    dps_store_sa_delete(c->spi, &c->dst, c->proto) == 0)
			n++;
	}
	return n;
}

unsigned int dps_store_policy_flush(enum dps_origin origin)
{
	unsigned int n = 0;

	for (unsigned int j = st.n_pol; j-- > 0;)
		if (st.pol[j].origin == origin && dps_store_policy_delete(st.pol[j].p.id) == 0)
			n++;
	return n;
}

int dps_store_sa_set_lifetimes(uint32_t id, const struct dps_lifetime *soft,
			       const struct dps_lifetime *hard)
{
	for (unsigned int i = 0; i < st.n_sas; i++) {
		if (st.sas[i].id != id)
			continue;
		pthread_mutex_lock(&st.lock);
		st.sas[i].cfg.soft = *soft;
		st.sas[i].cfg.hard = *hard;
		st.sas[i].soft_expired = false;
		pthread_mutex_unlock(&st.lock);
		return 0;
	}
	return -ESRCH;
}

void dps_store_sa_set_soft_expired(uint32_t id)
{
	for (unsigned int i = 0; i < st.n_sas; i++)
		if (st.sas[i].id == id)
			st.sas[i].soft_expired = true;
}

int dps_store_policy_delete(uint32_t id)
{
	for (unsigned int i = 0; i < st.n_pol; i++) {
		if (st.pol[i].p.id != id)
			continue;
		/* Workers count hits into it until the next publish. */
		if (grow((void **)&st.dead_hits, &st.cap_dead_hits, st.n_dead_hits,
			 sizeof(*st.dead_hits)) < 0)
			return -ENOMEM;
		st.dead_hits[st.n_dead_hits++] = st.pol[i].hits;
		st.rules_changed = true;
		pol_ix.stale = true;
		st.pol_fam[st.pol[i].p.dir == DPS_DIR_OUT]
			  [st.pol[i].p.sel.src.addr.family == AF_INET6]--;
		pthread_mutex_lock(&st.lock);
		memmove(&st.pol[i], &st.pol[i + 1], (st.n_pol - i - 1) * sizeof(*st.pol));
		st.n_pol--;
		pthread_mutex_unlock(&st.lock);
		return 0;
	}
	return -ENOENT;
}

/* The newest outbound SA a policy's ESP request matches (the newest wins a rekey). */
/* Outbound SAs by reqid, built once per commit: binding policies to SAs is
 * then a binary search, not a walk of every SA for every policy. */
struct by_reqid {
	unsigned int n;
	const struct dps_store_sa **v; /* out SAs with a reqid, sorted by reqid */
	unsigned int n_any;
	const struct dps_store_sa **any; /* out SAs without one */
};

static int reqid_cmp(const void *a, const void *b)
{
	const struct dps_store_sa *x = *(const struct dps_store_sa *const *)a;
	const struct dps_store_sa *y = *(const struct dps_store_sa *const *)b;

	return x->cfg.reqid < y->cfg.reqid ? -1 : x->cfg.reqid > y->cfg.reqid;
}

static int by_reqid_build(struct by_reqid *x)
{
	x->n = x->n_any = 0;
	x->v = calloc(st.n_sas + 1, sizeof(*x->v));
	x->any = calloc(st.n_sas + 1, sizeof(*x->any));
	if (x->v == NULL || x->any == NULL)
		return -1;
	for (unsigned int i = 0; i < st.n_sas; i++) {
		if (st.sas[i].cfg.dir != DPS_DIR_OUT)
			continue;
		if (st.sas[i].cfg.reqid)
			x->v[x->n++] = &st.sas[i];
		x->any[x->n_any++] = &st.sas[i]; /* a request without reqid may take any */
	}
	qsort(x->v, x->n, sizeof(*x->v), reqid_cmp);
	return 0;
}

static void by_reqid_free(struct by_reqid *x)
{
	free(x->v);
	free(x->any);
}

static void consider(struct dp_sa **best, const struct dps_ipsec_req *r, const struct dps_policy *p,
		     const struct dps_store_sa *s)
{
	if (req_matches_sa(r, &s->cfg, &p->sel) && (*best == NULL || s->id > (*best)->id))
		*best = s->dp;
}

/* The newest outbound SA a policy's ESP request matches (the newest wins a rekey). */
static struct dp_sa *out_sa(const struct dps_policy *p, const struct by_reqid *x)
{
	struct dp_sa *best = NULL;

	for (unsigned int r = 0; r < p->n_reqs; r++) {
		const struct dps_ipsec_req *q = &p->reqs[r];
		unsigned int lo = 0, hi = x->n;

		if (q->proto != DPS_PROTO_ESP)
			continue;
		if (q->reqid == 0) {
			for (unsigned int i = 0; i < x->n_any; i++)
				consider(&best, q, p, x->any[i]);
			continue;
		}
		while (lo < hi) { /* first SA with this reqid */
			unsigned int mid = (lo + hi) / 2;

			if (x->v[mid]->cfg.reqid < q->reqid)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < x->n && x->v[lo]->cfg.reqid == q->reqid; lo++)
			consider(&best, q, p, x->v[lo]);
	}
	return best;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct dps_policy *pa = ((const struct dp_spd_entry *)a)->p;
	const struct dps_policy *pb = ((const struct dp_spd_entry *)b)->p;
	const struct dps_store_policy *sa =
		(const void *)((const char *)pa - offsetof(struct dps_store_policy, p));
	const struct dps_store_policy *sb =
		(const void *)((const char *)pb - offsetof(struct dps_store_policy, p));

	if (pa->priority != pb->priority)
		return pa->priority < pb->priority ? -1 : 1;
	return sa->seq < sb->seq ? -1 : sa->seq > sb->seq;
}

static struct dp_spd *spd_build(void)
{
	struct dp_spd_entry *e = calloc(st.n_pol ? st.n_pol : 1, sizeof(*e));
	struct by_reqid x = {0};
	struct dp_spd *spd;

	if (e == NULL || by_reqid_build(&x) < 0) {
		free(e);
		by_reqid_free(&x);
		return NULL;
	}
	for (unsigned int i = 0; i < st.n_pol; i++) {
		e[i].p = &st.pol[i].p;
		e[i].hits = st.pol[i].hits;
		e[i].out_sa = st.pol[i].p.dir == DPS_DIR_OUT ? out_sa(&st.pol[i].p, &x) : NULL;
	}
	by_reqid_free(&x);
	qsort(e, st.n_pol, sizeof(*e), entry_cmp);
	spd = dp_spd_build(e, st.n_pol, &st.def, st.gen,
			   st.rules_changed ? NULL : dp.snap->ipsec->spd);
	free(e);
	return spd;
}

static int sad_build(struct dp_ipsec *ipsec)
{
	struct dp_sa **in = calloc(st.n_sas ? st.n_sas : 1, sizeof(*in));
	unsigned int n = 0;
	int rc;

	if (in == NULL)
		return -1;
	for (unsigned int i = 0; i < st.n_sas; i++) {
		const struct dps_sa *c = &st.sas[i].cfg;

		if (c->dir != DPS_DIR_IN)
			continue;
		in[n++] = st.sas[i].dp;
		if (!c->udp_encap)
			continue;
		uint16_t port = rte_cpu_to_be_16(c->encap_dport);
		bool known = false;

		for (unsigned int p = 0; p < ipsec->n_natt_ports; p++)
			known |= ipsec->natt_ports[p] == port;
		if (!known && ipsec->n_natt_ports < RTE_DIM(ipsec->natt_ports))
			ipsec->natt_ports[ipsec->n_natt_ports++] = port;
	}
	if (!st.in_changed && dp.snap->ipsec->sad_set != NULL) {
		ipsec->sad_set = dp.snap->ipsec->sad_set;
		ipsec->sad_set->refs++;
	} else {
		ipsec->sad_set = calloc(1, sizeof(*ipsec->sad_set));
		rc = ipsec->sad_set ? dp_sad_build(in, n, st.gen, ipsec->sad_set->sad) : -1;
		if (rc < 0) {
			free(ipsec->sad_set);
			ipsec->sad_set = NULL;
			free(in);
			return -1;
		}
		ipsec->sad_set->refs = 1;
	}
	memcpy(ipsec->sad, ipsec->sad_set->sad, sizeof(ipsec->sad));
	free(in);
	return 0;
}

int dps_store_commit(void)
{
	struct dp_ipsec *ipsec = calloc(1, sizeof(*ipsec));
	struct dp_snapshot *snap;

	if (ipsec == NULL)
		return -1;
	st.gen++;
	/* ESP-in-UDP on 4500 is always recognised, so IKE's port is never mistaken. */
	ipsec->natt_ports[ipsec->n_natt_ports++] = rte_cpu_to_be_16(NATT_DEFAULT_PORT);
	ipsec->active = st.n_pol || st.n_sas || st.def.def_policy4 == DPS_ACTION_DISCARD ||
			st.def.def_policy6 == DPS_ACTION_DISCARD;
	ipsec->spd = spd_build();
	if (ipsec->spd == NULL || sad_build(ipsec) < 0) {
		dp_ipsec_free(ipsec);
		return -1;
	}
	snap = dp_snapshot_with_ipsec(ipsec);
	if (snap == NULL) {
		dp_ipsec_free(ipsec);
		return -1;
	}
	dp_snapshot_publish(snap); /* returns after every worker let go of the old one */
	st.rules_changed = st.in_changed = false;
	for (unsigned int i = 0; i < st.n_dead; i++)
		dp_sa_free(st.dead[i]);
	for (unsigned int i = 0; i < st.n_dead_hits; i++)
		rte_free(st.dead_hits[i]);
	st.n_dead = st.n_dead_hits = 0;
	return 0;
}

static bool lifetime_eq(const struct dps_lifetime *a, const struct dps_lifetime *b)
{
	return a->bytes == b->bytes && a->packets == b->packets && a->add_s == b->add_s &&
	       a->use_s == b->use_s;
}

/* Field by field: padding may differ between two copies of the same SA. */
static bool sa_same(const struct dps_sa *a, const struct dps_sa *b)
{
	return a->spi == b->spi && a->proto == b->proto && a->mode == b->mode && a->dir == b->dir &&
	       dps_addr_eq(&a->src, &b->src) && dps_addr_eq(&a->dst, &b->dst) &&
	       a->reqid == b->reqid && a->enc_alg == b->enc_alg &&
	       a->enc_key_len == b->enc_key_len &&
	       memcmp(a->enc_key, b->enc_key, a->enc_key_len) == 0 && a->auth_alg == b->auth_alg &&
	       a->auth_key_len == b->auth_key_len &&
	       memcmp(a->auth_key, b->auth_key, a->auth_key_len) == 0 &&
	       a->replay_window == b->replay_window && a->esn == b->esn &&
	       a->udp_encap == b->udp_encap && a->encap_sport == b->encap_sport &&
	       a->encap_dport == b->encap_dport && a->ttl == b->ttl && a->dfbit == b->dfbit &&
	       lifetime_eq(&a->soft, &b->soft) && lifetime_eq(&a->hard, &b->hard);
}

static bool req_same(const struct dps_ipsec_req *a, const struct dps_ipsec_req *b)
{
	return a->proto == b->proto && a->mode == b->mode && a->level == b->level &&
	       a->reqid == b->reqid &&
	       (a->mode != DPS_MODE_TUNNEL ||
		(dps_addr_eq(&a->tun_src, &b->tun_src) && dps_addr_eq(&a->tun_dst, &b->tun_dst)));
}

static bool policy_same(const struct dps_policy *a, const struct dps_policy *b)
{
	if (a->dir != b->dir || a->priority != b->priority || !sel_eq(&a->sel, &b->sel) ||
	    a->action != b->action || a->n_reqs != b->n_reqs)
		return false;
	for (unsigned int r = 0; r < a->n_reqs; r++)
		if (!req_same(&a->reqs[r], &b->reqs[r]))
			return false;
	return true;
}

struct reload {
	bool *sa_keep, *pol_keep; /* [current] unchanged configuration objects */
	struct dp_sa **made;	  /* [cfg->n_sas] created for new SAs, NULL if kept */
};

static void reload_free(struct reload *r, unsigned int n_new)
{
	for (unsigned int i = 0; r->made != NULL && i < n_new; i++)
		dp_sa_free(r->made[i]);
	free(r->sa_keep);
	free(r->pol_keep);
	free(r->made);
}

/* Everything that can fail, before anything changes. */
static int reload_plan(const struct dps_config *cfg, struct reload *r, char *err, size_t errlen)
{
	r->sa_keep = calloc(st.n_sas + 1, sizeof(bool));
	r->pol_keep = calloc(st.n_pol + 1, sizeof(bool));
	r->made = calloc(cfg->n_sas + 1, sizeof(*r->made));
	if (r->sa_keep == NULL || r->pol_keep == NULL || r->made == NULL)
		return -ENOMEM;
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		const struct dps_sa *c = &cfg->sas[i];
		int j = sa_index(c->spi, &c->dst, c->proto);

		if (j >= 0 && st.sas[j].origin == DPS_ORIGIN_CONFIG && sa_same(&st.sas[j].cfg, c)) {
			r->sa_keep[j] = true;
			continue;
		}
		if (j >= 0 && st.sas[j].origin != DPS_ORIGIN_CONFIG) {
			snprintf(err, errlen, "sas[%u]: SPI 0x%x is taken by a key daemon's SA", i,
				 c->spi);
			return -EEXIST;
		}
		r->made[i] = sa_make(
			c,
			inner_family_in(c, cfg->policies, cfg->n_policies, sizeof(*cfg->policies)),
			&cfg->ipsec, err, errlen);
		if (r->made[i] == NULL)
			return -ENOTSUP;
	}
	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		const struct dps_policy *c = &cfg->policies[i];

		for (unsigned int j = 0; j < st.n_pol; j++) {
			const struct dps_store_policy *e = &st.pol[j];

			if (e->p.dir != c->dir || !sel_eq(&e->p.sel, &c->sel))
				continue;
			if (e->origin != DPS_ORIGIN_CONFIG) {
				snprintf(err, errlen,
					 "policies[%u]: a key daemon installed this one", i);
				return -EEXIST;
			}
			r->pol_keep[j] = policy_same(&e->p, c);
		}
	}
	return 0;
}

int dps_store_reload(const struct dps_config *cfg, char *err, size_t errlen)
{
	struct reload r = {0};
	int rc = reload_plan(cfg, &r, err, errlen);

	if (rc < 0) {
		reload_free(&r, cfg->n_sas);
		return rc;
	}
	for (unsigned int j = st.n_pol; j-- > 0;)
		if (st.pol[j].origin == DPS_ORIGIN_CONFIG && !r.pol_keep[j])
			dps_store_policy_delete(st.pol[j].p.id);
	for (unsigned int j = st.n_sas; j-- > 0;) {
		const struct dps_sa *c = &st.sas[j].cfg;

		if (st.sas[j].origin == DPS_ORIGIN_CONFIG && !r.sa_keep[j])
			dps_store_sa_delete(c->spi, &c->dst, c->proto);
	}
	st.def = cfg->ipsec;
	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		struct dps_policy p = cfg->policies[i];
		char why[128];

		/* an unchanged one is still there: EEXIST is expected */
		dps_store_policy_add(&p, DPS_ORIGIN_CONFIG, why, sizeof(why));
	}
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		if (r.made[i] != NULL && sa_insert(&cfg->sas[i], r.made[i], DPS_ORIGIN_CONFIG) == 0)
			r.made[i] = NULL;
	}
	reload_free(&r, cfg->n_sas);
	if (dps_store_commit() < 0) {
		snprintf(err, errlen, "cannot compile the SPD/SAD");
		return -1;
	}
	return 0;
}

int dps_store_init(const struct dps_config *cfg, char *err, size_t errlen)
{
	char why[256];
	int rc;

	st.def = cfg->ipsec;
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

void dps_store_fini(void)
{
	for (unsigned int i = 0; i < st.n_sas; i++)
		dp_sa_free(st.sas[i].dp);
	for (unsigned int i = 0; i < st.n_pol; i++)
		rte_free(st.pol[i].hits);
	for (unsigned int i = 0; i < st.n_dead; i++)
		dp_sa_free(st.dead[i]);
	for (unsigned int i = 0; i < st.n_dead_hits; i++)
		rte_free(st.dead_hits[i]);
	ix_free(&sa_ix);
	ix_free(&pol_ix);
	memset(st.pol_fam, 0, sizeof(st.pol_fam));
	memset(st.out_inner, 0, sizeof(st.out_inner));
	free(st.sas);
	free(st.pol);
	free(st.dead);
	free(st.dead_hits);
	st.sas = NULL;
	st.pol = NULL;
	st.dead = NULL;
	st.dead_hits = NULL;
	st.n_sas = st.n_pol = st.n_dead = st.n_dead_hits = 0;
	st.cap_sas = st.cap_pol = st.cap_dead = st.cap_dead_hits = 0;
}

void dps_store_walk_sas(int (*fn)(const struct dps_store_sa *, void *), void *arg)
{
	pthread_mutex_lock(&st.lock);
	for (unsigned int i = 0; i < st.n_sas; i++)
		if (fn(&st.sas[i], arg))
			break;
	pthread_mutex_unlock(&st.lock);
}

void dps_store_walk_policies(int (*fn)(const struct dps_store_policy *, void *), void *arg)
{
	pthread_mutex_lock(&st.lock);
	for (unsigned int i = 0; i < st.n_pol; i++)
		if (fn(&st.pol[i], arg))
			break;
	pthread_mutex_unlock(&st.lock);
}
