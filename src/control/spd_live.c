/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The live SPD: every policy change goes into the dataplane at once, at the
 * cost of the change alone, never of the whole SPD.
 *
 * Each policy owns a slot in a table the SPD points to. A new policy takes a
 * new slot and joins the recent rules (indexed by destination in front of
 * the main classifiers); a deleted one empties its slot (it stops matching at once);
 * a new SA binding or verdict is a new dp_policy stored in the slot; a new
 * rank is a new slot, the old one matching until the next publish (rerank). The main
 * classifiers are compiled again from every policy by a background thread
 * while the control thread goes on; when it is done the recent rules merge
 * into it (a new slot table, slots numbered in rank order) and the next
 * commit publishes it. Whatever a worker might still read (dp_policy, old
 * tables, old classifiers) is freed only after the publish's grace period.
 *
 * Control thread only, except the builder, which touches only its own input.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control/store.h"
#include "control/store_state.h"
#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/spd.h"

/* Policies compiled at once rather than in the background (about 0.4 ms). */
#define SMALL_SPD 64

struct ptr_vec {
	unsigned int n, cap;
	void **v;
};

static struct {
	struct dp_policy **table; /* the table the next SPD points to */
	unsigned int n, cap;
	struct dp_policy **pub; /* the table the published SPD points to, if another */
	unsigned int n_pub;
	struct dp_acl_set *set;	  /* main classifiers (a reference) */
	struct dp_recent *rec[2]; /* [v6]: policies added since the set's build */
	unsigned int n_recent;	  /* how many */
	unsigned int main_dead;	  /* slots of the set emptied since its build */
	bool changed;		  /* since the last snapshot */
	bool full; /* the next commit compiles everything (init, reload, no memory) */
	struct ptr_vec dead_pol, dead_mem, dead_rec; /* freed after the next publish */
	/* the background build */
	pthread_t thr;
	bool running;
	int done; /* atomic: the builder finished */
	uint32_t build_id;
	bool stale_build; /* a full build happened since it started: discard it */
	struct dp_rule *in;
	unsigned int n_in;
	uint32_t *perm;
	struct dp_acl_set *out;
	/* out policies' ESP requests by reqid (a multiset), and those without one */
	unsigned int n_req, cap_req;
	uint32_t *reqids;
	unsigned int n_req_any;
	/* the reqids of out policies' unique ESP requests (a multiset): their SAs
	 * are theirs alone (level unique) */
	unsigned int n_uniq, cap_uniq;
	uint32_t *uniq;
	/* Rules of an old rank still matching (dps_spd_policy_updated): the ids
	 * of their policies, emptied after the next publish. Valid while @gen,
	 * which each publish and each new slot numbering advance, is theirs. */
	struct ptr_vec stale;
	uint32_t gen;
} L = {.full = true, .gen = 1};

/* A change that must happen whole or not at all (a reload): nothing is shown
 * to the workers in place; the commit that ends it compiles everything. The
 * dataplane side of the policies deleted meanwhile waits here: an undo gives
 * the policies back. */
static bool batch;
static struct ptr_vec batch_dead;


static int vec_push(struct ptr_vec *v, void *p);

/*
 * The dp_policy objects come from slabs of their own, two sizes (a policy of
 * one request, a bundle: dp_policy_size()). Allocated one by one among the
 * PF_KEY server's short-lived buffers, they pinned most of the heap's pages
 * (20 000 tunnels: 33 MB of heap resident for 7 MB in use). A freed object
 * is reused; the slabs go at dps_spd_fini.
 */
#define POL_SLAB  (64 * 1024)
#define POL_SMALL 128
#define POL_LARGE 256

_Static_assert(offsetof(struct dp_policy, bundle) <= POL_SMALL, "a policy of one request fits");
_Static_assert(sizeof(struct dp_policy) <= POL_LARGE, "a bundle's policy fits");

static struct {
	void *free[2]; /* [bundle]: a list through each free object's first word */
	struct ptr_vec slabs;
} pool;

static struct dp_policy *pol_alloc(size_t size)
{
	int c = size > POL_SMALL;
	size_t sz = c ? POL_LARGE : POL_SMALL;
	void *p;

	if (pool.free[c] == NULL) {
		uint8_t *slab = aligned_alloc(RTE_CACHE_LINE_SIZE, POL_SLAB);

		if (slab == NULL || vec_push(&pool.slabs, slab) < 0) {
			free(slab);
			return NULL;
		}
		for (size_t off = POL_SLAB; off >= sz; off -= sz) {
			*(void **)(slab + off - sz) = pool.free[c];
			pool.free[c] = slab + off - sz;
		}
	}
	p = pool.free[c];
	pool.free[c] = *(void **)p;
	return p;
}

static void pol_free(void *p)
{
	int c;

	if (p == NULL)
		return;
	c = ((struct dp_policy *)p)->n_bundle > 0;
	*(void **)p = pool.free[c];
	pool.free[c] = p;
}

static int vec_push(struct ptr_vec *v, void *p)
{
	if (v->n == v->cap) {
		unsigned int cap = v->cap ? v->cap * 2 : 64;
		void **n = realloc(v->v, cap * sizeof(*n));

		if (n == NULL)
			return -1;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = p;
	return 0;
}

/* Something a worker may read: freed after the next publish (or at once if
 * even that cannot be recorded: then the commit is made whole, synchronously,
 * before: see L.full). */
static void bury(struct ptr_vec *v, void *p, bool is_mem)
{
	if (p == NULL)
		return;
	if (vec_push(v, p) < 0) {
		/* out of memory: leak rather than free what a worker may read */
		DP_LOG(ERR, "spd: out of memory: %s leaked", is_mem ? "a table" : "a policy");
	}
}

/* The table the published SPD reads may be another (before a growth or a
 * merge: numbered otherwise then): it keeps the old pointers, which are freed
 * only after the next publish, and that publish, which the reply waits for,
 * brings this table. */
static bool stale_live(const struct dps_store_policy *e)
{
	return e->stale_gen == L.gen;
}

/* The old rank's rule of @e gives @p (NULL: it stops matching). */
static void stale_store(struct dps_store_policy *e, struct dp_policy *p)
{
	__atomic_store_n(&L.table[e->stale_slot], p, __ATOMIC_RELEASE);
	if (e->stale_recent)
		dp_recent_set(L.rec[e->p.sel.src.addr.family == AF_INET6], e->stale_rix, p);
}

static void slot_store(struct dps_store_policy *e, struct dp_policy *p)
{
	__atomic_store_n(&L.table[e->slot], p, __ATOMIC_RELEASE);
	if (e->in_recent)
		dp_recent_set(L.rec[e->p.sel.src.addr.family == AF_INET6], e->recent_ix, p);
	if (stale_live(e)) /* the old rank's rule gives the same verdict */
		stale_store(e, p);
}

/* ---- SA binding of out policies ------------------------------------------ */

/* First position of @id in the sorted multiset @v of @n. */
static unsigned int lower(const uint32_t *v, unsigned int n, uint32_t id)
{
	unsigned int lo = 0, hi = n;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void reqids_change(const struct dps_policy *p, bool add)
{
	if (p->dir != DPS_DIR_OUT || p->action != DPS_ACTION_PROTECT)
		return;
	for (unsigned int r = 0; r < p->n_reqs; r++) {
		uint32_t id = p->reqs[r].reqid;
		unsigned int i;

		if (!dps_req_bound(p, &p->reqs[r]))
			continue;
		if (id == 0) {
			L.n_req_any = add ? L.n_req_any + 1 : L.n_req_any - (L.n_req_any > 0);
			continue;
		}
		i = lower(L.reqids, L.n_req, id);
		if (add) {
			if (L.n_req == L.cap_req) {
				unsigned int cap = L.cap_req ? 2 * L.cap_req : 256;
				uint32_t *v = realloc(L.reqids, cap * sizeof(*v));

				if (v == NULL) {
					L.n_req_any++; /* every SA change then scans: correct, slow
							*/
					continue;
				}
				L.reqids = v;
				L.cap_req = cap;
			}
			memmove(&L.reqids[i + 1], &L.reqids[i], (L.n_req - i) * sizeof(*L.reqids));
			L.reqids[i] = id;
			L.n_req++;
		} else if (i < L.n_req && L.reqids[i] == id) {
			memmove(&L.reqids[i], &L.reqids[i + 1],
				(L.n_req - i - 1) * sizeof(*L.reqids));
			L.n_req--;
		}
	}
}

static unsigned int count(const uint32_t *v, unsigned int n, uint32_t id)
{
	unsigned int i = lower(v, n, id), c = 0;

	for (; i < n && v[i] == id; i++)
		c++;
	return c;
}

/* Level unique: when a reqid gets its first unique request or loses its last
 * one, the SAs of that reqid change hands; other requests that could take
 * them (without reqid, or not unique with that reqid) are bound again. */
static void uniq_change(const struct dps_policy *p, bool add)
{
	if (p->dir != DPS_DIR_OUT || p->action != DPS_ACTION_PROTECT)
		return;
	for (unsigned int r = 0; r < p->n_reqs; r++) {
		const struct dps_ipsec_req *q = &p->reqs[r];
		unsigned int i, had;

		if (q->proto != DPS_PROTO_ESP || q->level != DPS_LEVEL_UNIQUE || !q->reqid)
			continue;
		i = lower(L.uniq, L.n_uniq, q->reqid);
		had = count(L.uniq, L.n_uniq, q->reqid);
		if (add) {
			if (L.n_uniq == L.cap_uniq) {
				unsigned int cap = L.cap_uniq ? 2 * L.cap_uniq : 256;
				uint32_t *v = realloc(L.uniq, cap * sizeof(*v));

				if (v == NULL) {
					L.full =
						true; /* rebinds everything; the entry is missing */
					continue;
				}
				L.uniq = v;
				L.cap_uniq = cap;
			}
			memmove(&L.uniq[i + 1], &L.uniq[i], (L.n_uniq - i) * sizeof(*L.uniq));
			L.uniq[i] = q->reqid;
			L.n_uniq++;
		} else if (had) {
			memmove(&L.uniq[i], &L.uniq[i + 1], (L.n_uniq - i - 1) * sizeof(*L.uniq));
			L.n_uniq--;
		}
		if (had != (add ? 0u : 1u) || L.full)
			continue;
		if (L.n_req_any == 0 &&
		    count(L.reqids, L.n_req, q->reqid) <= (add ? had + 1 : had - 1))
			continue; /* only unique requests of this reqid: nobody else to rebind */
		for (unsigned int k = dps_out_sa_first(q->reqid);
		     k < dps_store.n_out_reqid && dps_store.out_reqid[k].reqid == q->reqid; k++) {
			const struct dps_out_key *o = &dps_store.out_reqid[k];
			int pos = dps_store_sa_pos(o->spi, &o->dst, o->proto);

			if (pos >= 0)
				dps_spd_sa_changed(&dps_store.sas[pos].cfg);
		}
	}
}

static void consider(const struct dps_store_sa **best, const struct dps_ipsec_req *r,
		     const struct dps_policy *p, const struct dps_store_sa *s)
{
	if (dps_req_matches_sa(r, &s->cfg, &p->sel) &&
	    !dps_unique_excludes(L.uniq, L.n_uniq, r, &s->cfg) &&
	    (*best == NULL || s->id > (*best)->id))
		*best = s;
}

/* The newest out SA request @q of @p matches (the newest wins a rekey),
 * found through the out SAs' reqid index. */
static const struct dps_store_sa *req_sa(const struct dps_policy *p, const struct dps_ipsec_req *q)
{
	const struct dps_store_sa *best = NULL;

	if (q->reqid == 0 || dps_store.out_reqid_bad) {
		for (unsigned int i = 0; i < dps_store.n_sas; i++)
			if (dps_store.sas[i].cfg.dir == DPS_DIR_OUT)
				consider(&best, q, p, &dps_store.sas[i]);
		return best;
	}
	for (unsigned int i = dps_out_sa_first(q->reqid); i < dps_store.n_out_reqid; i++) {
		const struct dps_out_key *k = &dps_store.out_reqid[i];
		int pos;

		if (k->reqid != q->reqid)
			break;
		pos = dps_store_sa_pos(k->spi, &k->dst, k->proto);
		if (pos >= 0)
			consider(&best, q, p, &dps_store.sas[pos]);
	}
	return best;
}

/* ---- bundles ---------------------------------------------------------------- */

/* The out SAs that were ever an inner layer of a bundle (dp_sa.bundled): when
 * an SA is deleted, those whose next layer it was let go of it first. */
static struct ptr_vec bundled;

/* @a's packets go on to @b's transform (RFC 4301 §4.5). The pointer is set
 * before the flag that makes a worker follow it. */
static void bundle_link(struct dp_sa *a, struct dp_sa *b)
{
	__atomic_store_n(&a->outer, b, __ATOMIC_RELEASE);
	if (a->bundled)
		return;
	if (vec_push(&bundled, a) < 0) {
		/* cannot track it: no link, the bundle's packets drop (drop_bundle) */
		__atomic_store_n(&a->outer, NULL, __ATOMIC_RELEASE);
		DP_LOG(ERR, "spd: out of memory: SA 0x%x cannot be bound in a bundle", a->cfg.spi);
	}
	__atomic_store_n(&a->bundled, true, __ATOMIC_RELEASE);
}

void dps_spd_sa_gone(struct dp_sa *d)
{
	for (unsigned int i = 0; i < bundled.n;) {
		struct dp_sa *a = bundled.v[i];

		if (a == d) {
			bundled.v[i] = bundled.v[--bundled.n];
			continue;
		}
		if (__atomic_load_n(&a->outer, __ATOMIC_RELAXED) == d)
			__atomic_store_n(&a->outer, NULL, __ATOMIC_RELEASE);
		i++;
	}
}

/*
 * The SA an out policy applies first: that of its one request, or, of a
 * bundle, the innermost one's, with each next layer hung from the one
 * before (dp_sa.outer) -- only when every request of the bundle has its SA:
 * else none (the packets drop and ACQUIRE, never leave with fewer layers).
 */
static struct dp_sa *out_sa(const struct dps_policy *p)
{
	struct dp_sa *chain[DPS_MAX_IPSEC_REQS];

	if (p->dir != DPS_DIR_OUT || p->action != DPS_ACTION_PROTECT || p->n_reqs == 0)
		return NULL;
	for (unsigned int r = 0; r < p->n_reqs; r++) {
		const struct dps_store_sa *s = req_sa(p, &p->reqs[r]);

		if (s == NULL)
			return NULL;
		chain[r] = s->dp;
	}
	for (unsigned int r = 0; r + 1 < p->n_reqs; r++)
		bundle_link(chain[r], chain[r + 1]);
	return chain[0];
}

static int resolve(struct dps_store_policy *e, struct dp_policy **out)
{
	struct dp_policy *dp = pol_alloc(dp_policy_size(&e->p));

	if (dp == NULL)
		return -ENOMEM;
	dp_policy_resolve(dp, &e->p, out_sa(&e->p), e->hits, &dps_store.def);
	*out = dp;
	return 0;
}

/* ---- the slot table and the recent rules ---------------------------------- */

/* Room for one more slot. */
static int table_room(void)
{
	struct dp_policy **t;
	unsigned int cap;

	if (L.n < L.cap)
		return 0;
	cap = L.cap ? 2 * L.cap : 1024;
	t = calloc(cap, sizeof(*t));
	if (t == NULL)
		return -1;
	if (L.n)
		memcpy(t, L.table, L.n * sizeof(*t));
	if (L.table == L.pub)
		bury(&L.dead_mem, L.table, true); /* workers read it until the next publish */
	else
		free(L.table);
	L.table = t;
	L.cap = cap;
	return 0;
}

/* A recent rule for @e, in its family's index (grown if full). */
static int recent_push(struct dps_store_policy *e)
{
	int v6 = e->p.sel.src.addr.family == AF_INET6, i;
	struct dp_recent **r = &L.rec[v6];
	struct dp_rule rule;

	dp_rule_make(&rule, &e->p, e->seq, e->slot);
	if (*r == NULL && (*r = dp_recent_new(256)) == NULL)
		return -1;
	if ((*r)->n == (*r)->cap) {
		struct dp_recent *g = dp_recent_grow(*r);

		if (g == NULL || vec_push(&L.dead_rec, *r) < 0) {
			dp_recent_free(g);
			return -1;
		}
		*r = g; /* the published SPD reads the old one until the next publish */
	}
	i = dp_recent_add(*r, &rule, e->dp);
	e->recent_ix = (uint32_t)i;
	e->in_recent = true;
	L.n_recent++;
	return 0;
}

/* The recent indexes are replaced (merge, full build): the old ones go after the publish. */
static void recent_drop(void)
{
	for (int v6 = 0; v6 < 2; v6++) {
		if (L.rec[v6] != NULL && vec_push(&L.dead_rec, L.rec[v6]) < 0)
			DP_LOG(ERR, "spd: out of memory: a recent index leaked");
		L.rec[v6] = NULL;
	}
	L.n_recent = 0;
}

static void changed(void)
{
	L.changed = true;
}


/* A new slot and a recent rule for @e. */
static void slot_add(struct dps_store_policy *e)
{
	struct dp_policy *dp = NULL;

	e->dp = NULL;
	e->build_id = 0;
	e->in_recent = false;
	if (L.full)
		return;
	if (resolve(e, &dp) < 0 || table_room() < 0) {
		pol_free(dp);
		L.full = true;
		return;
	}
	e->slot = L.n;
	e->dp = dp;
	L.table[L.n++] = dp;
	if (recent_push(e) < 0)
		L.full = true;
	changed();
}

void dps_spd_policy_added(struct dps_store_policy *e)
{
	reqids_change(&e->p, true);
	uniq_change(&e->p, true);
	if (batch) {
		e->dp = NULL;
		L.full = true;
		return;
	}
	slot_add(e);
}

static void unslot(struct dps_store_policy *e)
{
	if (e->dp == NULL)
		return;
	slot_store(e, NULL); /* and the old rank's rule, if one still matches */
	e->stale_gen = 0;
	bury(&L.dead_pol, e->dp, false);
	e->dp = NULL;
	if (!e->in_recent)
		L.main_dead++;
	e->in_recent = false;
	changed();
}

void dps_spd_policy_deleted(struct dps_store_policy *e)
{
	reqids_change(&e->p, false);
	if (batch) {
		uniq_change(&e->p, false);
		if (e->dp != NULL && vec_push(&batch_dead, e->dp) < 0)
			DP_LOG(ERR, "spd: out of memory: a policy leaked");
		e->dp = NULL;
		L.full = true;
		return;
	}
	unslot(e);
	uniq_change(&e->p, false);
}

/*
 * A policy's new rank is a new rule in a new slot, in force when the next SPD
 * is published. Until then its old rule must go on matching: emptied at once,
 * a packet would find neither and get def_policy (bypass: a protected flow in
 * clear, as when strongSwan turns a trap policy into its CHILD_SA's with an
 * SPDUPDATE of the priority alone). The old rule gives the policy's verdict
 * (slot_store keeps both) until dps_spd_published() empties it. If an older
 * rule of this policy is kept already, the slot left now was never published
 * and goes at once.
 */
static void rerank(struct dps_store_policy *e)
{
	struct dp_policy *prev = e->dp;
	uint32_t slot = e->slot, rix = e->recent_ix;
	bool recent = e->in_recent;

	if (prev == NULL || stale_live(e)) {
		uint32_t g = e->stale_gen;

		e->stale_gen = 0; /* the unpublished slot alone */
		unslot(e);
		e->stale_gen = g;
		slot_add(e);
		/* the kept rule gives the new verdict (or, before a full
		 * compilation, the one it gave) */
		if (stale_live(e) && e->dp != NULL)
			stale_store(e, e->dp);
		return;
	}
	slot_add(e);
	if (e->dp == NULL) { /* the next commit compiles everything: the old rule stays till then */
		bury(&L.dead_pol, prev, false);
		return;
	}
	if (vec_push(&L.stale, (void *)(uintptr_t)e->p.id) < 0) {
		/* cannot empty it later: a full compilation at the next commit replaces it */
		L.full = true;
		bury(&L.dead_pol, prev, false);
		return;
	}
	e->stale_slot = slot;
	e->stale_rix = rix;
	e->stale_recent = recent;
	e->stale_gen = L.gen;
	stale_store(e, e->dp);
	bury(&L.dead_pol, prev, false);
	if (!recent)
		L.main_dead++;
}

void dps_spd_policy_updated(struct dps_store_policy *e, const struct dps_policy *old)
{
	struct dp_policy *dp;

	reqids_change(old, false);
	reqids_change(&e->p, true);
	uniq_change(&e->p, true);
	uniq_change(old, false);
	if (batch) {
		L.full = true;
		return;
	}
	if (old->priority != e->p.priority) { /* another rank: another rule */
		rerank(e);
		return;
	}
	if (L.full || e->dp == NULL)
		return;
	if (resolve(e, &dp) < 0) {
		L.full = true;
		return;
	}
	slot_store(e, dp);
	bury(&L.dead_pol, e->dp, false);
	e->dp = dp;
	changed();
}

static bool reqid_used(uint32_t reqid)
{
	unsigned int i = lower(L.reqids, L.n_req, reqid);

	return reqid != 0 && i < L.n_req && L.reqids[i] == reqid;
}

void dps_spd_sa_changed(const struct dps_sa *c)
{
	if (c->dir != DPS_DIR_OUT || L.full || (L.n_req_any == 0 && !reqid_used(c->reqid)))
		return;
	for (unsigned int i = 0; i < dps_store.n_pol; i++) {
		struct dps_store_policy *e = &dps_store.pol[i];
		struct dp_policy *dp;
		bool uses = false;

		if (e->p.dir != DPS_DIR_OUT || e->p.action != DPS_ACTION_PROTECT || e->dp == NULL)
			continue;
		for (unsigned int r = 0; r < e->p.n_reqs; r++)
			uses |= dps_req_bound(&e->p, &e->p.reqs[r]) &&
				dps_req_matches_sa(&e->p.reqs[r], c, &e->p.sel);
		if (!uses)
			continue;
		if (resolve(e, &dp) < 0) {
			L.full = true;
			return;
		}
		if (dp->sa == e->dp->sa && dp->verdict == e->dp->verdict) {
			pol_free(dp);
			continue;
		}
		slot_store(e, dp);
		bury(&L.dead_pol, e->dp, false);
		e->dp = dp;
		changed();
	}
}

void dps_spd_defaults_changed(void)
{
	L.full = true;
}

void dps_spd_batch_begin(void)
{
	batch = true;
	L.full = true;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The request multisets made again from the store's policies (after an undo). */
static void req_sets_rebuild(void)
{
	L.n_req = L.n_req_any = L.n_uniq = 0;
	for (unsigned int i = 0; i < dps_store.n_pol; i++) {
		const struct dps_policy *p = &dps_store.pol[i].p;

		if (p->dir != DPS_DIR_OUT || p->action != DPS_ACTION_PROTECT)
			continue;
		for (unsigned int r = 0; r < p->n_reqs; r++) {
			const struct dps_ipsec_req *q = &p->reqs[r];
			uint32_t **v[2] = {&L.reqids, &L.uniq};
			unsigned int *n[2] = {&L.n_req, &L.n_uniq},
				     *cap[2] = {&L.cap_req, &L.cap_uniq};

			if (!dps_req_bound(p, q))
				continue;
			if (q->reqid == 0) {
				L.n_req_any++;
				continue;
			}
			for (int k = 0; k < (q->level == DPS_LEVEL_UNIQUE ? 2 : 1); k++) {
				if (*n[k] == *cap[k]) {
					unsigned int c = *cap[k] ? 2 * *cap[k] : 256;
					uint32_t *nv = realloc(*v[k], c * sizeof(*nv));

					if (nv == NULL) { /* binding scans then: correct, slow */
						L.n_req_any++;
						continue;
					}
					*v[k] = nv;
					*cap[k] = c;
				}
				(*v[k])[(*n[k])++] = q->reqid;
			}
		}
	}
	qsort(L.reqids, L.n_req, sizeof(*L.reqids), u32_cmp);
	qsort(L.uniq, L.n_uniq, sizeof(*L.uniq), u32_cmp);
}

void dps_spd_batch_end(bool keep)
{
	batch = false;
	if (keep) {
		for (unsigned int i = 0; i < batch_dead.n; i++)
			bury(&L.dead_pol, batch_dead.v[i], false);
	} else {
		/* The tables were put back. A commit of the batch may have compiled
		 * (and buried) the policies' objects before it failed: forget them
		 * all rather than risk freeing one twice (a failed reload leaks
		 * them), and compile everything at the next commit. */
		for (unsigned int i = 0; i < dps_store.n_pol; i++)
			dps_store.pol[i].dp = NULL;
		req_sets_rebuild();
	}
	batch_dead.n = 0;
	L.full = true;
}

/* ---- builds ----------------------------------------------------------------- */

/* @t (@n slots used of @cap) becomes the slot table; the old one is freed at
 * once if no published SPD reads it, else after the next publish. */
static void table_replace(struct dp_policy **t, unsigned int n, unsigned int cap)
{
	/* numbered otherwise: the old ranks' rules are not in the new table */
	L.gen++;
	L.stale.n = 0;
	if (L.table != L.pub)
		free(L.table);
	else
		bury(&L.dead_mem, L.table, true);
	L.table = t;
	L.n = n;
	L.cap = cap;
}

/* Everything compiled now, on this thread: init, reload, or out of memory. */
static int full_build(void)
{
	unsigned int n = dps_store.n_pol, cap = 1024;
	struct dp_rule *rules = calloc(n ? n : 1, sizeof(*rules));
	uint32_t *perm = calloc(n ? n : 1, sizeof(*perm));
	struct dp_policy **dps = calloc(n ? n : 1, sizeof(*dps));
	struct dp_policy **t = NULL;
	struct dp_acl_set *set = NULL;

	while (cap < 2 * n)
		cap *= 2;
	if (rules == NULL || perm == NULL || dps == NULL || (t = calloc(cap, sizeof(*t))) == NULL)
		goto fail;
	for (unsigned int i = 0; i < n; i++) {
		if (resolve(&dps_store.pol[i], &dps[i]) < 0)
			goto fail;
		dp_rule_make(&rules[i], &dps_store.pol[i].p, dps_store.pol[i].seq, i);
	}
	set = dp_acl_set_build(rules, n, perm);
	rules = NULL; /* the set's, or freed */
	if (set == NULL)
		goto fail;
	for (unsigned int i = 0; i < n; i++) {
		struct dps_store_policy *e = &dps_store.pol[i];

		bury(&L.dead_pol, e->dp, false);
		e->dp = dps[i];
		e->slot = perm[i];
		e->build_id = 0;
		e->in_recent = false;
		t[perm[i]] = dps[i];
	}
	table_replace(t, n, cap);
	dp_acl_set_put(L.set);
	L.set = set;
	recent_drop();
	L.main_dead = 0;
	L.full = false;
	L.stale_build = L.running; /* a build under way is out of date */
	free(perm);
	free(dps);
	return 0;
fail:
	DP_LOG(ERR, "cannot compile the SPD");
	for (unsigned int i = 0; dps != NULL && i < n; i++)
		pol_free(dps[i]);
	free(rules);
	free(perm);
	free(dps);
	free(t);
	return -1;
}

static void *builder(void *arg)
{
	(void)arg;
	/* The control thread's core is also this thread's: at the lowest nice
	 * level the control thread (replies, publishes) preempts it, yet it is
	 * not starved as a SCHED_IDLE thread would be -- which matters when it is
	 * preempted inside rte_malloc's heap lock that the control thread needs. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
		DP_LOG(DEBUG, "spd: builder keeps its priority");
	L.out = dp_acl_set_build(L.in, L.n_in, L.perm);
	L.in = NULL; /* the set's, or freed */
	/* The compilation's scratch (rte_acl's build uses malloc, as much again
	 * as the classifiers) goes back to the system now, here rather than on
	 * the control thread: glibc keeps freed memory below its adaptive trim
	 * threshold, tens of megabytes at 100 000 policies. */
	malloc_trim(0);
	__atomic_store_n(&L.done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void build_start(void)
{
	unsigned int n = dps_store.n_pol;

	if (L.running || L.full || (L.n_recent == 0 && L.main_dead == 0))
		return;
	L.in = calloc(n ? n : 1, sizeof(*L.in));
	L.perm = calloc(n ? n : 1, sizeof(*L.perm));
	if (L.in == NULL || L.perm == NULL)
		goto fail;
	if (++L.build_id == 0)
		L.build_id = 1;
	for (unsigned int i = 0; i < n; i++) {
		struct dps_store_policy *e = &dps_store.pol[i];

		dp_rule_make(&L.in[i], &e->p, e->seq, i);
		e->build_ix = i;
		e->build_id = e->dp != NULL ? L.build_id : 0;
	}
	L.n_in = n;
	L.out = NULL;
	L.done = 0;
	if (pthread_create(&L.thr, NULL, builder, NULL) != 0)
		goto fail;
	L.running = true;
	return;
fail:
	free(L.in);
	free(L.perm);
	L.in = NULL;
	L.perm = NULL;
}

/* The build finished: its classifiers replace the main ones, the policies
 * added meanwhile are the recent ones, in a new slot table. */
static bool merge(void)
{
	uint32_t id = L.build_id;
	unsigned int n = L.n_in, cap = 1024, matched = 0;
	struct dp_policy **t;

	pthread_join(L.thr, NULL);
	L.running = false;
	while (cap < 2 * (dps_store.n_pol + n))
		cap *= 2;
	t = calloc(cap, sizeof(*t));
	if (L.out == NULL || L.full || L.stale_build || t == NULL) {
		L.stale_build = false;
		dp_acl_set_put(L.out);
		free(t);
		free(L.perm);
		L.perm = NULL;
		L.out = NULL;
		return false;
	}
	recent_drop();
	for (unsigned int i = 0; i < dps_store.n_pol; i++) {
		struct dps_store_policy *e = &dps_store.pol[i];
		bool built = e->build_id == id;

		e->in_recent = false;
		e->build_id = 0;
		if (e->dp == NULL)
			continue;
		e->slot = built ? L.perm[e->build_ix] : n++;
		t[e->slot] = e->dp;
		if (built)
			matched++;
		else if (recent_push(e) < 0)
			L.full = true; /* the next commit compiles everything */
	}
	table_replace(t, n, cap);
	dp_acl_set_put(L.set);
	L.set = L.out;
	L.out = NULL;
	L.main_dead = L.n_in - matched;
	free(L.perm);
	L.perm = NULL;
	L.changed = true;
	return true;
}

bool dps_spd_poll(void)
{
	if (!L.running) {
		build_start();
		return false;
	}
	if (!__atomic_load_n(&L.done, __ATOMIC_ACQUIRE))
		return false;
	return merge();
}

struct dp_spd *dps_spd_next(uint64_t gen)
{
	struct dp_spd *spd;

	/* Few policies left after deletions (a flush): compiling them now costs
	 * less than a dead main match's exact scan until the background merge. */
	if (!L.full && L.main_dead > 0 && dps_store.n_pol <= SMALL_SPD)
		L.full = true;
	if (L.full && full_build() < 0)
		return NULL;
	spd = calloc(1, sizeof(*spd));
	if (spd == NULL)
		return NULL;
	spd->gen = gen;
	spd->set = L.set;
	L.set->refs++;
	memcpy(spd->acl, L.set->acl, sizeof(spd->acl));
	memcpy(spd->fo, L.set->fo, sizeof(spd->fo));
	spd->slot = L.table;
	spd->def_verdict[0] =
		dps_store.def.def_policy4 == DPS_ACTION_DISCARD ? DP_V_DISCARD : DP_V_BYPASS;
	spd->def_verdict[1] =
		dps_store.def.def_policy6 == DPS_ACTION_DISCARD ? DP_V_DISCARD : DP_V_BYPASS;
	spd->accept_clear = (dps_store.def.icmp_accept_clear ? DP_CLEAR_ICMP : 0) |
			    (dps_store.def.igmp_accept_clear ? DP_CLEAR_IGMP : 0) |
			    (dps_store.def.pim_accept_clear ? DP_CLEAR_PIM : 0);
	spd->recent[0] = L.rec[0];
	spd->recent[1] = L.rec[1];
	return spd;
}

void dps_spd_published(void)
{
	/* the new ranks' rules are in force: the old ones stop matching */
	for (unsigned int i = 0; i < L.stale.n; i++) {
		/* spd_live.c owns the dataplane side of the store's entries */
		struct dps_store_policy *e = (struct dps_store_policy *)dps_store_policy_get(
			(uint32_t)(uintptr_t)L.stale.v[i]);

		if (e != NULL && stale_live(e)) {
			stale_store(e, NULL);
			e->stale_gen = 0;
		}
	}
	L.stale.n = 0;
	L.gen++;
	for (unsigned int i = 0; i < L.dead_pol.n; i++)
		pol_free(L.dead_pol.v[i]);
	for (unsigned int i = 0; i < L.dead_mem.n; i++)
		free(L.dead_mem.v[i]);
	for (unsigned int i = 0; i < L.dead_rec.n; i++)
		dp_recent_free(L.dead_rec.v[i]);
	L.dead_pol.n = L.dead_mem.n = L.dead_rec.n = 0;
	L.pub = L.table;
	L.changed = false;
	build_start();
}

void dps_spd_fini(void)
{
	if (L.running) {
		pthread_join(L.thr, NULL);
		L.running = false;
		dp_acl_set_put(L.out);
		free(L.perm);
	}
	for (unsigned int i = 0; i < dps_store.n_pol; i++) {
		pol_free(dps_store.pol[i].dp);
		dps_store.pol[i].dp = NULL;
	}
	for (unsigned int i = 0; i < L.dead_pol.n; i++)
		pol_free(L.dead_pol.v[i]);
	for (unsigned int i = 0; i < L.dead_mem.n; i++)
		free(L.dead_mem.v[i]);
	for (unsigned int i = 0; i < L.dead_rec.n; i++)
		dp_recent_free(L.dead_rec.v[i]);
	free(L.dead_pol.v);
	free(L.dead_mem.v);
	free(L.stale.v);
	free(L.dead_rec.v);
	if (L.pub != L.table)
		free(L.pub);
	free(L.table);
	dp_recent_free(L.rec[0]);
	dp_recent_free(L.rec[1]);
	free(L.reqids);
	free(L.uniq);
	free(batch_dead.v);
	batch_dead = (struct ptr_vec){0};
	for (unsigned int i = 0; i < pool.slabs.n; i++)
		free(pool.slabs.v[i]);
	free(pool.slabs.v);
	memset(&pool, 0, sizeof(pool));
	free(bundled.v);
	bundled = (struct ptr_vec){0};
	dp_acl_set_put(L.set);
	memset(&L, 0, sizeof(L));
	L.full = true;
	L.gen = 1;
}
