/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Publishing the store to the dataplane: the live SPD (spd_live.c) and the
 * inbound SA tables, changed in place at the cost of the changes (two copies:
 * the one no worker reads is changed, published, and after the grace period
 * the other), and the NAT-T ports, in a new snapshot through RCU; what the
 * old snapshot held is freed only after every worker let go of it.
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

/* The inbound SA tables (sad.h): the copy the published snapshot points to,
 * and after a full build the pair it replaced (destroyed after the publish). */
static struct dp_sad_pair sads, sads_old;
static bool sads_second; /* the changes still go to the copy that was read */

static void natt_ports(struct dp_ipsec *ipsec)
{
	const struct dp_ipsec *prev = dp.snap->ipsec;
	bool encap = dps_store.sad_rebuild;

	/* the ports change only with an ESP-in-UDP SA: no scan of every SA otherwise */
	for (unsigned int i = 0; i < dps_store.n_sad_ops && !encap; i++)
		encap = dps_store.sad_ops[i].sa->cfg.udp_encap;
	if ((!dps_store.in_changed || !encap) && prev != NULL && prev->n_natt_ports) {
		memcpy(ipsec->natt_ports, prev->natt_ports, sizeof(ipsec->natt_ports));
		ipsec->n_natt_ports = prev->n_natt_ports;
		return;
	}
	for (unsigned int i = 0; i < dps_store.n_sas; i++) {
		const struct dps_sa *c = &dps_store.sas[i].cfg;
		uint16_t port = rte_cpu_to_be_16(c->encap_dport);
		bool known = false;

		if (c->dir != DPS_DIR_IN || !c->udp_encap)
			continue;
		for (unsigned int p = 0; p < ipsec->n_natt_ports; p++)
			known |= ipsec->natt_ports[p] == port;
		if (!known && ipsec->n_natt_ports < RTE_DIM(ipsec->natt_ports))
			ipsec->natt_ports[ipsec->n_natt_ports++] = port;
	}
}

static int sad_rebuild(void)
{
	struct dp_sa **in = calloc(dps_store.n_sas ? dps_store.n_sas : 1, sizeof(*in));
	struct dp_sad_pair p;
	unsigned int n = 0;

	if (in == NULL)
		return -1;
	for (unsigned int i = 0; i < dps_store.n_sas; i++)
		if (dps_store.sas[i].cfg.dir == DPS_DIR_IN)
			in[n++] = dps_store.sas[i].dp;
	if (dp_sad_pair_build(&p, in, n) < 0) {
		free(in);
		return -1;
	}
	free(in);
	sads_old = sads;
	sads = p;
	return 0;
}

/* The inbound tables @ipsec points to: the changes applied to the copy no
 * worker reads (applied to the other one after the publish), or a new pair. */
static int sad_prepare(struct dp_ipsec *ipsec)
{
	int w = !sads.read;

	natt_ports(ipsec);
	sads_second = false;
	if (!dps_store.sad_rebuild && dps_store.n_sad_ops == 0) {
		dp_sad_pair_view(&sads, sads.read, ipsec->sad);
		return 0;
	}
	if (dps_store.sad_rebuild ||
	    !dp_sad_pair_fits(&sads, dps_store.sad_ops, dps_store.n_sad_ops) ||
	    dp_sad_apply(&sads, w, dps_store.sad_ops, dps_store.n_sad_ops) < 0) {
		/* a failed apply left copy w half changed: it is built anew */
		if (sad_rebuild() < 0)
			return -1;
		dp_sad_pair_view(&sads, sads.read, ipsec->sad);
		return 0;
	}
	sads_second = true;
	dp_sad_pair_view(&sads, w, ipsec->sad);
	return 0;
}

/* After the publish: no worker reads the other copy (or the old pair) any more. */
static void sad_published(void)
{
	dp_sad_pair_free(&sads_old);
	if (sads_second) {
		int r = sads.read;

		sads.read = !r;
		if (dp_sad_apply(&sads, r, dps_store.sad_ops, dps_store.n_sad_ops) < 0) {
			/* the copy the next change goes to: build both again then */
			dps_store.n_sad_ops = 0;
			dps_store.sad_rebuild = true;
			return;
		}
	}
	dps_store.n_sad_ops = 0;
	dps_store.sad_rebuild = false;
}

/* The commit failed before the publish: the workers keep what they read. */
static void sad_abort(void)
{
	if (sads_old.sad[0][0] != NULL) {
		dp_sad_pair_free(&sads);
		sads = sads_old;
		memset(&sads_old, 0, sizeof(sads_old));
	}
	sads_second = false;
	dps_store.n_sad_ops = 0;
	dps_store.sad_rebuild = true; /* copy !read may hold part of the changes */
}

void dps_store_poll(void)
{
	if (dps_spd_poll() && dps_store_commit() < 0)
		DP_LOG(ERR, "cannot publish the merged SPD; the workers keep the previous one");
}

void dps_compile_fini(void)
{
	dp_sad_pair_free(&sads);
	dp_sad_pair_free(&sads_old);
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
	ipsec->spd = dps_spd_next(dps_store.gen);
	if (ipsec->spd == NULL || sad_prepare(ipsec) < 0) {
		sad_abort();
		dp_ipsec_free(ipsec);
		return -1;
	}
	snap = dp_snapshot_with_ipsec(ipsec);
	if (snap == NULL) {
		sad_abort();
		dp_ipsec_free(ipsec);
		return -1;
	}
	/* returns after every worker let go of the old one, and every crypto
	 * operation enqueued before that is finished */
	dp_snapshot_publish(snap);
	sad_published();
	dps_spd_published();
	dps_store.in_changed = false;
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
		dps_hits_free(dps_store.dead_hits[i]);
	dps_store.n_dead_hits = 0;
	return 0;
}
