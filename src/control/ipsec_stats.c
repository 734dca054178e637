/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-protocol IPsec totals, from the SAs' own counters: no counting of
 * their own on the workers' path. Read by the telemetry thread under the
 * store's lock, which also covers the list of deleted SAs waiting to be
 * freed (bury() and the free after a publish take it), so an SA is counted
 * exactly once at any moment: in force, dead, or retired.
 */
#include <string.h>

#include "control/ipsec_stats.h"
#include "control/store_state.h"
#include "dataplane/dp.h"

const char *const dps_stats_proto_names[DPS_STATS_NPROTO] = {"esp", "ah", "ipcomp"};

static struct dps_ipsec_stats retired[DPS_STATS_NPROTO];

int dps_stats_proto(uint8_t proto)
{
	switch (proto) {
	case DPS_PROTO_ESP:
		return DPS_STATS_ESP;
	case DPS_PROTO_AH:
		return DPS_STATS_AH;
	case DPS_PROTO_IPCOMP:
		return DPS_STATS_IPCOMP;
	}
	return -1;
}

static void add_sa(struct dps_ipsec_stats *t, const struct dp_sa *sa)
{
	struct dp_sa_counters c;
	bool in = sa->cfg.dir == DPS_DIR_IN;

	dp_sa_counters(sa, &c);
	*(in ? &t->in_packets : &t->out_packets) += c.v[DP_SA_CNT_packets];
	*(in ? &t->in_bytes : &t->out_bytes) += c.v[DP_SA_CNT_bytes];
	for (unsigned int i = 0; i < DP_SA_CNT_MAX; i++)
		if (i != DP_SA_CNT_packets && i != DP_SA_CNT_bytes)
			t->drop[i] += c.v[i];
}

void dps_ipsec_stats_retire(const struct dp_sa *sa)
{
	int p = sa != NULL ? dps_stats_proto(sa->cfg.proto) : -1;

	if (p >= 0)
		add_sa(&retired[p], sa);
}

void dps_ipsec_stats_get(enum dps_stats_proto p, struct dps_ipsec_stats *out)
{
	pthread_mutex_lock(&dps_store.lock);
	*out = retired[p];
	for (unsigned int i = 0; i < dps_store.n_sas; i++) {
		if (dps_stats_proto(dps_store.sas[i].cfg.proto) == (int)p) {
			add_sa(out, dps_store.sas[i].dp);
			out->sas++;
		}
	}
	for (unsigned int i = 0; i < dps_store.n_dead; i++)
		if (dps_stats_proto(dps_store.dead[i]->cfg.proto) == (int)p)
			add_sa(out, dps_store.dead[i]);
	pthread_mutex_unlock(&dps_store.lock);
	if (p == DPS_STATS_AH)
		return;
	for (unsigned int port = 0; port < dp.n_ports; port++) {
		struct dp_counters c;
		bool esp = p == DPS_STATS_ESP;

		dp_port_counters(port, &c);
		out->drop_unknown_spi +=
			c.v[esp ? DP_CNT_drop_unknown_spi : DP_CNT_drop_unknown_cpi];
		out->drop_malformed +=
			c.v[esp ? DP_CNT_drop_esp_malformed : DP_CNT_drop_ipcomp_malformed];
	}
}
