/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Compiling the store into the dataplane: the SPD (policies in priority
 * order, each outbound one bound to its SA) and the SAD (inbound SAs, NAT-T
 * ports), published as a new snapshot through RCU; what the old snapshot
 * held is freed only after every worker let go of it.
 */
#include <stdlib.h>
#include <string.h>

#include <rte_malloc.h>

#include "control/ipsec_stats.h"
#include "control/store.h"
#include "control/store_state.h"
#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/sad.h"
#include "dataplane/snapshot.h"
#include "dataplane/spd.h"

#define NATT_DEFAULT_PORT 4500

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
	struct dp_spd_entry *e = calloc(dps_store.n_pol ? dps_store.n_pol : 1, sizeof(*e));
	struct dps_by_reqid x = {0};
	struct dp_spd *spd;

	if (e == NULL || dps_by_reqid_build(&x, dps_store.sas, dps_store.n_sas) < 0 ||
	    dps_by_reqid_unique(&x, dps_store.n_pol ? &dps_store.pol[0].p : NULL, dps_store.n_pol,
				sizeof(*dps_store.pol)) < 0) {
		free(e);
		dps_by_reqid_free(&x);
		return NULL;
	}
	for (unsigned int i = 0; i < dps_store.n_pol; i++) {
		e[i].p = &dps_store.pol[i].p;
		e[i].hits = dps_store.pol[i].hits;
		if (dps_store.pol[i].p.dir == DPS_DIR_OUT) {
			const struct dps_store_sa *out = dps_policy_out_sa(&dps_store.pol[i].p, &x);

			e[i].out_sa = out ? out->dp : NULL;
		}
	}
	dps_by_reqid_free(&x);
	qsort(e, dps_store.n_pol, sizeof(*e), entry_cmp);
	spd = dp_spd_build(e, dps_store.n_pol, &dps_store.def, dps_store.gen,
			   dps_store.rules_changed ? NULL : dp.snap->ipsec->spd);
	free(e);
	return spd;
}

static int sad_build(struct dp_ipsec *ipsec)
{
	struct dp_sa **in = calloc(dps_store.n_sas ? dps_store.n_sas : 1, sizeof(*in));
	unsigned int n = 0;
	int rc;

	if (in == NULL)
		return -1;
	for (unsigned int i = 0; i < dps_store.n_sas; i++) {
		const struct dps_sa *c = &dps_store.sas[i].cfg;

		if (c->dir != DPS_DIR_IN)
			continue;
		in[n++] = dps_store.sas[i].dp;
		if (!c->udp_encap)
			continue;
		uint16_t port = rte_cpu_to_be_16(c->encap_dport);
		bool known = false;

		for (unsigned int p = 0; p < ipsec->n_natt_ports; p++)
			known |= ipsec->natt_ports[p] == port;
		if (!known && ipsec->n_natt_ports < RTE_DIM(ipsec->natt_ports))
			ipsec->natt_ports[ipsec->n_natt_ports++] = port;
	}
	if (!dps_store.in_changed && dp.snap->ipsec->sad_set != NULL) {
		ipsec->sad_set = dp.snap->ipsec->sad_set;
		ipsec->sad_set->refs++;
	} else {
		ipsec->sad_set = calloc(1, sizeof(*ipsec->sad_set));
		rc = ipsec->sad_set ? dp_sad_build(in, n, dps_store.gen, ipsec->sad_set->sad) : -1;
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
	unsigned int n_dead;

	if (ipsec == NULL)
		return -1;
	dps_store.gen++;
	/* ESP-in-UDP on 4500 is always recognised, so IKE's port is never mistaken. */
	ipsec->natt_ports[ipsec->n_natt_ports++] = rte_cpu_to_be_16(NATT_DEFAULT_PORT);
	ipsec->active = dps_store.n_pol || dps_store.n_sas ||
			dps_store.def.def_policy4 == DPS_ACTION_DISCARD ||
			dps_store.def.def_policy6 == DPS_ACTION_DISCARD;
	ipsec->proto_off = (dps_store.def.esp_enable ? 0 : DP_OFF_ESP) |
			   (dps_store.def.ah_enable ? 0 : DP_OFF_AH) |
			   (dps_store.def.ipcomp_enable ? 0 : DP_OFF_IPCOMP);
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
	dps_store.rules_changed = dps_store.in_changed = false;
	/* No worker holds the dead SAs now: their counts are final. They join
	 * their protocol's totals as they leave the dead list, in one step. */
	pthread_mutex_lock(&dps_store.lock);
	n_dead = dps_store.n_dead;
	for (unsigned int i = 0; i < n_dead; i++)
		dps_ipsec_stats_retire(dps_store.dead[i]);
	dps_store.n_dead = 0;
	pthread_mutex_unlock(&dps_store.lock);
	for (unsigned int i = 0; i < n_dead; i++)
		dp_sa_free(dps_store.dead[i]);
	for (unsigned int i = 0; i < dps_store.n_dead_hits; i++)
		rte_free(dps_store.dead_hits[i]);
	dps_store.n_dead_hits = 0;
	return 0;
}
