/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The store's private interface: its state and the helpers that its files
 * share. store.c keeps the registry (SAs and policies, their indexes, add and
 * delete), binding.c decides which SA an outbound policy uses, compile.c
 * builds and publishes the SPD/SAD snapshot, reload.c applies a configuration
 * reload. Nothing outside those files includes this header: the public API is
 * control/store.h. Control thread only, as the store is.
 */
#ifndef DPS_STORE_STATE_H
#define DPS_STORE_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/store.h"

struct dps_out_key {
	uint32_t reqid;
	uint32_t spi;
	uint8_t proto;
	struct dps_addr dst;
};

struct dps_store_state {
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
	bool in_changed; /* since the last publish: the inbound SAs changed */
	/* inbound SA changes since the last publish, applied to the live tables
	 * (sad.h); sad_rebuild when they must be built whole instead */
	unsigned int n_sad_ops, cap_sad_ops;
	struct dp_sad_op *sad_ops;
	bool sad_rebuild;
	/* out SAs with a reqid, sorted by it: a new policy finds its SA at once */
	unsigned int n_out_reqid, cap_out_reqid;
	struct dps_out_key *out_reqid;
	bool out_reqid_bad; /* out of memory once: scan the SAs instead */
	/* shortcuts past whole-table scans: policies by [out][v6] selector family, and
	 * outbound tunnel SAs by [v6] inner family */
	unsigned int pol_fam[2][2], out_inner[2];
	pthread_mutex_t lock;
};

extern struct dps_store_state dps_store;

/* ---- registry (store.c) ---------------------------------------------------- */

/* Position of SA <spi, dst, proto> in dps_store.sas, or -1. */
int dps_store_sa_pos(uint32_t spi, const struct dps_addr *dst, uint8_t proto);

/* The dataplane object of SA @sa carrying inner family @inner under the
 * defaults @def, or NULL with @err. */
struct dp_sa *dps_store_sa_make(const struct dps_sa *sa, int inner,
				const struct dps_ipsec_defaults *def, char *err, size_t errlen);

/* Insert an SA whose dataplane object @d exists already (freed on failure). */
int dps_store_sa_insert(const struct dps_sa *sa, struct dp_sa *d, enum dps_origin origin);

bool dps_selector_eq(const struct dps_selector *a, const struct dps_selector *b);

/*
 * A change of several steps (a reload) that must happen whole or not at all:
 * dps_store_undo_begin() copies the tables, dps_store_undo() puts them back
 * and frees what was made in between, dps_store_undo_end() keeps the change.
 */
struct dps_store_undo {
	struct dps_ipsec_defaults def;
	unsigned int n_sas, n_pol, n_dead, n_dead_hits;
	struct dps_store_sa *sas; /* copies of the tables */
	struct dps_store_policy *pol;
	struct dp_sa **dp;     /* the SAs' dataplane objects, sorted */
	struct dp_hits **hits; /* the policies' counters, sorted */
	uint32_t next_sa_id;
	uint32_t next_pol_index;
	uint64_t next_seq;
	unsigned int pol_fam[2][2], out_inner[2];
};

int dps_store_undo_begin(struct dps_store_undo *u);
void dps_store_undo(struct dps_store_undo *u);
void dps_store_undo_end(struct dps_store_undo *u);

/* ---- compile (compile.c) ---------------------------------------------------- */

/* Free the dataplane tables the commits keep between publishes. */
void dps_compile_fini(void);

/* ---- live SPD (spd_live.c) ------------------------------------------------- */

/* The store tells every change; the SPD follows it at the cost of the change. */
void dps_spd_policy_added(struct dps_store_policy *e);
void dps_spd_policy_deleted(struct dps_store_policy *e);
void dps_spd_policy_updated(struct dps_store_policy *e, const struct dps_policy *old);
/* An out SA was added, deleted (already out of the store) or made again. */
void dps_spd_sa_changed(const struct dps_sa *c);
/* Dataplane SA @d is about to be freed: no bundle's SA may lead to it. */
void dps_spd_sa_gone(struct dp_sa *d);
/* The defaults changed: the next commit compiles every policy. */
void dps_spd_defaults_changed(void);
/* A reload: changes are shown to the workers only by the commit that ends
 * it, which compiles everything; dps_spd_batch_end(false) after an undo put
 * the tables back, (true) after that commit. */
void dps_spd_batch_begin(void);
void dps_spd_batch_end(bool keep);
/* The SPD for the next publish (NULL: out of memory or compile failure). */
struct dp_spd *dps_spd_next(uint64_t gen);
/* The publish is done: free what no worker reads any more, start a build. */
void dps_spd_published(void);
/* True when a background build finished and merged: commit to publish it. */
bool dps_spd_poll(void);
void dps_spd_fini(void);

/* First position of @reqid in dps_store.out_reqid. */
unsigned int dps_out_sa_first(uint32_t reqid);

/* ---- SA binding (binding.c) ------------------------------------------------ */

/* True if request @r of a policy with selector @sel may use SA @c. */
bool dps_req_matches_sa(const struct dps_ipsec_req *r, const struct dps_sa *c,
			const struct dps_selector *sel);

/* The inner family of tunnel SA @c: that of a policy of its direction among
 * @n at @pols (@stride bytes apart) that uses it, else its outer family. */
int dps_sa_inner_family(const struct dps_sa *c, const struct dps_policy *pols, unsigned int n,
			size_t stride);

/* Outbound SAs by reqid, built once per commit: binding policies to SAs is
 * then a binary search, not a walk of every SA for every policy. */
struct dps_by_reqid {
	unsigned int n;
	const struct dps_store_sa **v; /* out SAs with a reqid, sorted by reqid */
	unsigned int n_any;
	const struct dps_store_sa **any; /* out SAs without one */
	unsigned int n_uniq;
	uint32_t *uniq; /* reqids of outbound unique ESP requests, sorted */
};

/* Index the outbound SAs among the @n at @sas. 0 or -1 (out of memory). */
int dps_by_reqid_build(struct dps_by_reqid *x, const struct dps_store_sa *sas, unsigned int n);
/* Note the reqids that outbound unique requests of the @n policies at @pols
 * (@stride bytes apart) own: their SAs go to those requests only. 0 or -1. */
int dps_by_reqid_unique(struct dps_by_reqid *x, const struct dps_policy *pols, unsigned int n,
			size_t stride);
void dps_by_reqid_free(struct dps_by_reqid *x);

/* The requests of out policy @p that bind it to an SA: every one (a bundle
 * binds an SA per request). */
static inline bool dps_req_bound(const struct dps_policy *p, const struct dps_ipsec_req *q)
{
	(void)p;
	return q->proto == DPS_PROTO_ESP || q->proto == DPS_PROTO_AH ||
	       q->proto == DPS_PROTO_IPCOMP;
}

/* The newest outbound SA a policy's ESP request matches (the newest wins a rekey), or NULL. */
const struct dps_store_sa *dps_policy_out_sa(const struct dps_policy *p,
					     const struct dps_by_reqid *x);

/* True when the SA @c belongs to a unique request (its reqid is among the
 * @n sorted @uniq) other than @r: it is not @r's to take. */
bool dps_unique_excludes(const uint32_t *uniq, unsigned int n, const struct dps_ipsec_req *r,
			 const struct dps_sa *c);

/* ---- reload (reload.c) ----------------------------------------------------- */

/* Same direction, priority, selector, action and requests. */
bool dps_policy_same(const struct dps_policy *a, const struct dps_policy *b);

/** Give back a policy's hit counters (to store.c's slabs). */
void dps_hits_free(struct dp_hits *h);

#endif
