/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The SA/policy store: the only code that creates, changes and deletes SAs
 * and policies. YAML provisioning and PF_KEY both call it. Changes are
 * batched until dps_store_commit(), which applies them to the dataplane
 * (SPD, SAD), publishes it through RCU, and only then frees what it replaced.
 * Control thread only (the telemetry thread reads under the store's lock).
 */
#ifndef DPS_STORE_H
#define DPS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "control/config.h"

struct dp_sa;
struct dp_hits;
struct dp_policy;

/* Who installed an object: a configuration reload only touches its own. */
enum dps_origin {
	DPS_ORIGIN_CONFIG,
	DPS_ORIGIN_PFKEY,
	DPS_ORIGIN_RESTORED, /* for add only: a key daemon's object brought back after a restart */
};

struct dps_store_sa {
	uint32_t id;
	uint8_t origin;
	bool soft_expired; /* the soft lifetime ran out and was reported */
	struct dps_sa cfg;
	struct dp_sa *dp;
};

struct dps_store_policy {
	struct dps_policy p;
	uint8_t origin;
	uint64_t add_time;    /* seconds since the epoch */
	uint64_t seq;	      /* insertion order: ties of priority go to the oldest */
	struct dp_hits *hits; /* [n_workers] */
	/* its dataplane side (spd_live.c) */
	struct dp_policy *dp; /* what its slot holds */
	uint32_t slot;	      /* in the SPD's slot table */
	uint32_t recent_ix;   /* its entry in its family's recent index, if in_recent */
	bool in_recent;
	uint32_t build_ix; /* its rule's place in the build under way ... */
	uint32_t build_id; /* ... of this number (0: none) */
	/* After a change of rank, the rule of the old rank, which keeps matching
	 * (with the policy's verdict) until the new one is published: its slot and
	 * recent entry, valid in the generation @stale_gen of spd_live.c (0: none) */
	uint32_t stale_slot;
	uint32_t stale_rix;
	bool stale_recent;
	uint32_t stale_gen;
};

/** The system defaults in force (ipsec section, as last loaded or reloaded). */
const struct dps_ipsec_defaults *dps_store_defaults(void);
/** How many SAs and policies the store holds (any thread). */
void dps_store_counts(unsigned int *sas, unsigned int *policies);

/** Take the system defaults; load the SAs and policies of @cfg and commit. */
int dps_store_init(const struct dps_config *cfg, char *err, size_t errlen);

/** Free everything (after the workers stopped). */
void dps_store_fini(void);

/**
 * Add an SA. -EEXIST if <spi, dst, proto> exists; -ENOTSUP if no device runs
 * it; -ENOBUFS when crypto.sessions SAs exist, -ENOMEM when hugepage memory is
 * short: @err says why and names the setting to raise.
 */
int dps_store_sa_add(const struct dps_sa *sa, enum dps_origin origin, char *err, size_t errlen);

/** Delete an SA. -ESRCH if absent. */
int dps_store_sa_delete(uint32_t spi, const struct dps_addr *dst, uint8_t proto);

/** Find an SA (for reading). */
const struct dps_store_sa *dps_store_sa_find(uint32_t spi, const struct dps_addr *dst,
					     uint8_t proto);

/** Add a policy; its id is assigned and written back. -EEXIST for a duplicate. */
int dps_store_policy_add(struct dps_policy *p, enum dps_origin origin, char *err, size_t errlen);

/**
 * Make the configuration's SAs, policies and defaults those of @cfg: what is
 * unchanged stays as it is (sequence numbers, replay windows, counters), what
 * changed or went away is removed, what is new is added; one commit. All or
 * nothing: on error nothing changed. Objects PF_KEY installed are not touched.
 */
int dps_store_reload(const struct dps_config *cfg, char *err, size_t errlen);

/**
 * How a reload reports what it changed, once published: one SA (@sa) or one
 * policy (@pol), @added or removed. An SA comes without its keys. The PF_KEY
 * server registers one that broadcasts the changes, as Linux broadcasts to
 * PF_KEY sockets the SAs and policies changed through netlink.
 */
typedef void (*dps_reload_report_fn)(const struct dps_sa *sa, const struct dps_policy *pol,
				     bool added);

/** Register @fn (NULL: none). */
void dps_reload_set_report(dps_reload_report_fn fn);

/** Delete a policy by id. -ENOENT if absent. */
int dps_store_policy_delete(uint32_t id);

/** The policy of direction @dir with exactly selector @sel, or NULL. */
const struct dps_store_policy *dps_store_policy_find(uint8_t dir, const struct dps_selector *sel);

/** The policy with id @id, or NULL. */
const struct dps_store_policy *dps_store_policy_get(uint32_t id);

/**
 * Replace the policy of @p's direction and selector in place: it keeps its
 * id (written back to @p), hit counters and age, as Linux keeps the index on
 * SPDUPDATE. -ENOENT if there is none, -EEXIST if it belongs to @origin's
 * counterpart (a key daemon cannot rewrite the configuration's policies).
 */
int dps_store_policy_update(struct dps_policy *p, enum dps_origin origin);

/** Delete the SAs of @origin with protocol @proto (0: all). Returns how many. */
unsigned int dps_store_sa_flush(uint8_t proto, enum dps_origin origin);

/** Delete the policies of @origin. Returns how many. */
unsigned int dps_store_policy_flush(enum dps_origin origin);

/** Change the lifetimes of SA @id (PF_KEY UPDATE of a mature SA). -ESRCH if absent. */
int dps_store_sa_set_lifetimes(uint32_t id, const struct dps_lifetime *soft,
			       const struct dps_lifetime *hard);

/** Remember that @id's soft lifetime was reported. */
void dps_store_sa_set_soft_expired(uint32_t id);

/** Sum of a policy's no-SA drops over the workers (what ACQUIRE is raised for). */
uint64_t dps_store_policy_no_sa(const struct dps_store_policy *p);

/** Publish pending changes to the workers. 0 or -1 (the old state stays). */
int dps_store_commit(void);

/** Publish the SPD's background compilation once it is done (control loop). */
void dps_store_poll(void);

/** Visit SAs / policies in the order they were added (SA id, policy seq), under the store
 *  lock; stop when @fn returns non-zero. What lists or saves them uses these. */
void dps_store_walk_sas(int (*fn)(const struct dps_store_sa *, void *), void *arg);
void dps_store_walk_policies(int (*fn)(const struct dps_store_policy *, void *), void *arg);
/** The same in no particular order, without sorting: for periodic scans of every entry. */
void dps_store_scan_sas(int (*fn)(const struct dps_store_sa *, void *), void *arg);
void dps_store_scan_policies(int (*fn)(const struct dps_store_policy *, void *), void *arg);

#endif
